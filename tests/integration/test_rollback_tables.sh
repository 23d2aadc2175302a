#!/usr/bin/env bash
# Integration test of the tables the rollback window does not carry back: made on the
# target during the window (a deploy's migration, a new partition), unlogged ones, on a
# managed-like target whose role is no superuser (TB_TARGET_ROLE=owner: the publication is
# FOR TABLE the tables of the cutover) and on a superuser one (FOR ALL TABLES). Black-box:
# the CLI (status, status --json, watch), the metrics, the audit trail, and SQL on both servers; every
# case ends with an independent comparison of the carried tables (counts and an md5 of the
# rows, in psql) and a look at what was not carried.
#
#   1. plan: an unlogged table on the source is a warning: not carried back
#   2. job own (not a superuser): the unlogged table is said at once; a table created on
#      the target during the window and written: "rollback would lose writes to" it in
#      status, status --json (facts.reverse.uncarried, with when), watch (an event the
#      moment it appears) and the audit trail; rollback refused (would_lose_writes, exit 1)
#      naming both; a new partition of a published table: made on the source as a
#      partition of its parent before its first change is applied, carried, recorded,
#      audited, no warning; rollback --accept-loss: rolled_back, audited, in the report; source = target
#      for the carried tables, the lost ones as the source had them
#   3. job late (not a superuser, a long reverse_interval): a table created just before
#      rollback, before the window looked: the rollback's drain finds it (the target is
#      frozen then), fails, traffic stays on the target; retry --accept-loss rolls back
#   4. job sup (a superuser target, FOR ALL TABLES): a new table is decoded: made on the
#      source from its definition before its first change, every row carried, recorded; one
#      the source cannot make (a new schema): said, the stream stops; made on the source by
#      hand, retry: carried with every row; an unlogged table made on the target: rollback
#      refused, --accept-loss; source = target
#
#   PGM_BUILD=/tmp/bd bash tests/integration/test_rollback_tables.sh   (as root or postgres)
# PGM_TEST_KEEP=1 keeps the work directory.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TB=$ROOT/tests/testbed/testbed.sh
. "$HERE/lib.sh"
. "$HERE/pgmd.sh"
# shellcheck source=tests/integration/jobs.sh
. "$HERE/jobs.sh"

t_prereq test_rollback_tables pgmoverd pgmover

WORK=$(t_tmpdir) || exit 1
BED=$WORK/bed
DMN=$WORK/daemon
T0=$(date +%s)
WATCH_PID= WATCH_JSON_PID=

cleanup() {
    [[ -n $WATCH_PID ]] && kill "$WATCH_PID" "$WATCH_JSON_PID" 2>/dev/null
    pgmd_cleanup
    wait 2>/dev/null
    t_bed_remove "$WORK" "$BED"
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------
# helpers

# rows_sig, same_rows, compare, src_admin, to_window: jobs.sh
uncarried() { jst "$1" '[.facts.reverse.uncarried[]? | .table] | join(",")'; }
has_uncarried() { [[ ,$(uncarried "$1"), == *",$2,"* ]]; }
no_uncarried() { [[ ,$(uncarried "$1"), != *",$2,"* ]]; }
warned() { jst "$1" '[.warnings[].message] | join(";")'; }
audit_has() { grep -F -- "$2" "$DMN/state/$1/audit.jsonl" | grep -cF -- "${3:-}"; }

# ---------------------------------------------------------------------------------------
# the bed: a Heroku-like source, a managed-like target (and a superuser role on it)

if ! TB_SOURCE_WAL_LEVEL=replica TB_SOURCE_PRELOAD='' TB_TARGET_ROLE=owner \
    "$TB" start "$BED" >"$WORK/testbed.log" 2>&1; then
    cat "$WORK/testbed.log" >&2
    t_fail "testbed" "could not start"
    t_summary
    exit 1
fi
# shellcheck source=/dev/null
. "$BED/env"
t_assert_eq "target: its role is no superuser" "off" "$(q "$TARGET_URL" "SELECT current_setting('is_superuser')")"
SUPER_PW=super$RANDOM$RANDOM
tq postgres "CREATE ROLE tgt_super LOGIN SUPERUSER PASSWORD '$SUPER_PW'" >/dev/null
super_url() { printf 'postgres://tgt_super:%s@127.0.0.1:%s/%s' "$SUPER_PW" "$TARGET_PORT" "$1"; }
t_assert_eq "target: ... and a superuser role for job sup" "on" \
    "$(q "$(super_url postgres)" "SELECT current_setting('is_superuser')")"

setup_ok=1
for db in own late sup; do "$TB" createdb "$BED" src "$db" >/dev/null || setup_ok=0; done
for db in t_own t_late; do "$TB" createdb "$BED" dst "$db" >/dev/null || setup_ok=0; done
"$TB" createdb "$BED" dst t_sup tgt_super >/dev/null || setup_ok=0
APP_SQL="CREATE TABLE public.kv (id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text);
         CREATE TABLE public.ev (id integer, at date, note text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
         CREATE TABLE public.ev_2025 PARTITION OF public.ev FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
         INSERT INTO public.kv (v) SELECT 'v' || i FROM generate_series(1, 30) i;
         INSERT INTO public.ev SELECT i, date '2025-01-01' + i, 'n' || i FROM generate_series(1, 20) i;"
for db in own late sup; do q "$(src_url "$db")" "$APP_SQL" >/dev/null || setup_ok=0; done
q "$(src_url own)" "CREATE UNLOGGED TABLE public.cache (k text PRIMARY KEY, v text);
                    INSERT INTO public.cache VALUES ('a', 'source')" >/dev/null || setup_ok=0
if [[ $setup_ok == 1 ]]; then t_ok "setup: databases and tables"; else
    t_fail "setup" "see $WORK"
    t_summary
    exit 1
fi
MPORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
if ! pgmd_start "$DMN" "pg_bindir = $TB_PGBIN" "metrics_listen = 127.0.0.1:$MPORT"; then
    t_fail "pgmoverd starts" "see $DMN/pgmoverd.log"
    t_summary
    exit 1
fi
t_ok "pgmoverd starts"

# ---------------------------------------------------------------------------------------
echo "# 1. plan: unlogged tables are not carried back"
plan=$(pgm --json plan --source "$(src_url own)" --target "$(tgt_url t_own)" 2>&1)
t_assert_eq "plan: an unlogged table on the source is a warning for the window" "warning" \
    "$(jq -r '.result.findings[] | select(.check == "rollback window: unlogged tables") | .status' <<<"$plan")"
t_assert_contains "plan: ... naming it, not carried back" \
    "$(jq -r '.result.findings[] | select(.check == "rollback window: unlogged tables") | .finding' <<<"$plan")" \
    "not carried back by the rollback window"
t_assert_contains "plan: ... the table" \
    "$(jq -r '.result.findings[] | select(.check == "rollback window: unlogged tables") | .finding' <<<"$plan")" "public.cache"
plan=$(pgm --json plan --source "$(src_url sup)" --target "$(super_url t_sup)" 2>&1)
t_assert_eq "plan: none without an unlogged table" "" \
    "$(jq -r '.result.findings[] | select(.check == "rollback window: unlogged tables") | .status' <<<"$plan")"

# ---------------------------------------------------------------------------------------
echo "# 2. job own: a target whose role is not a superuser"
to_window own own "$(tgt_url t_own)"
TO=$(tgt_url t_own)
t_assert_eq "own: the publication names the tables of the cutover, not the unlogged one" "f 0" \
    "$(tq t_own "SELECT CASE WHEN puballtables THEN 't' ELSE 'f' END || ' ' || count(pt.tablename) FILTER (WHERE pt.tablename = 'cache')
                   FROM pg_publication p LEFT JOIN pg_publication_tables pt ON pt.pubname = p.pubname
                  WHERE p.pubname = 'pgmover_own' GROUP BY puballtables")"
t_check "own: the unlogged table is said at once" t_wait_for 30 has_uncarried own public.cache ||
    t_detail "$(jst own '.facts.reverse')"
t_assert_contains "own: ... as a warning" "$(warned own)" "rollback would lose writes to public.cache: an unlogged table"
q "$TO" "INSERT INTO public.cache VALUES ('b', 'target')" >/dev/null

# watch from before the table exists: the warning is an event the moment it appears
pgm watch own >"$WORK/watch.out" 2>&1 &
WATCH_PID=$!
pgm --json watch own >"$WORK/watch.json" 2>&1 &
WATCH_JSON_PID=$!
sleep 1
q "$TO" "CREATE TABLE public.newt (id integer PRIMARY KEY, v text);
         INSERT INTO public.newt SELECT i, 'new ' || i FROM generate_series(1, 25) i" >/dev/null
q "$TO" "INSERT INTO public.kv (v) VALUES ('after newt')" >/dev/null
t_check "own: the new table is found (facts.reverse.uncarried)" t_wait_for 30 has_uncarried own public.newt ||
    t_detail "$(jst own '.facts.reverse')"
t_assert_eq "own: ... its kind, and when" "unpublished true" \
    "$(jst own '.facts.reverse.uncarried[] | select(.table == "public.newt") | "\(.kind) \(.detected_at != null)"')"
t_assert_contains "own: ... a warning in status --json" "$(warned own)" \
    "rollback would lose writes to public.newt: not in the reverse stream's publication"
t_assert_contains "own: ... and the one-screen status" "$(pgm status own 2>&1)" "rollback would lose writes to public.newt"
_watched() { grep -q "warning: rollback would lose writes to public.newt" "$WORK/watch.out"; }
t_check "own: ... and watch, as an event" t_wait_for 10 _watched || t_detail "$(tail -5 "$WORK/watch.out")"
_watched_json() { grep -q '"event":"warning".*rollback would lose writes to public.newt' "$WORK/watch.json"; }
t_check "own: ... watch --json: a warning event" t_wait_for 10 _watched_json || t_detail "$(tail -3 "$WORK/watch.json")"
t_assert_eq "own: ... and the metrics: two tables a rollback would lose writes to" "2" \
    "$(curl -sS --max-time 10 "http://127.0.0.1:$MPORT/metrics" |
        sed -n 's/^pgmover_job_rollback_uncarried_tables{job="own",[^}]*} //p')"
kill "$WATCH_PID" "$WATCH_JSON_PID" 2>/dev/null
wait "$WATCH_PID" "$WATCH_JSON_PID" 2>/dev/null
WATCH_PID= WATCH_JSON_PID=
t_assert_eq "own: ... in the audit trail" "1" "$(audit_has own '"reverse:uncarried"' 'lossy: rollback would lose writes to public.newt')"
t_check "own: the carried tables still reach the source" t_wait_for 30 same_rows own t_own public.kv

# rollback refused, naming both, saying what to do
out=$(pgm rollback own 2>&1)
rc=$?
t_assert_eq "own: rollback is refused (exit 1)" "1" "$rc"
t_assert_contains "own: ... naming the tables" "$out" "rollback would lose writes to public.cache, public.newt"
t_assert_contains "own: ... and the options" "$out" "pgmover rollback own --accept-loss"
t_assert_eq "own: ... code would_lose_writes" "would_lose_writes" "$(pgm --json rollback own 2>/dev/null | jq -r '.error.code')"
t_assert_eq "own: ... the job stays in the window" "rollback_window" "$(pgmd_state own)"
t_assert_eq "own: ... the refusal is audited" "2" "$(audit_has own '"refused: rollback would lose writes' '"command":"rollback"')"

# a new partition of a published table: published under its own name, which the source
# lacks: made there (a partition of its parent) before its first change is applied
q "$TO" "CREATE TABLE public.ev_2026 PARTITION OF public.ev FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
         INSERT INTO public.ev SELECT i, date '2026-01-01' + i, 'p' || i FROM generate_series(100, 109) i" >/dev/null
_carried() { [[ $(sq own "SELECT to_regclass('public.ev_2026') IS NOT NULL") == t ]] && same_rows own t_own public.ev_2026; }
t_check "own: a new partition is made on the source, its rows carried" t_wait_for 30 _carried ||
    t_detail "$(fail_detail own) $(jst own '.facts.reverse')"
t_assert_eq "own: ... the stream did not stop" "rollback_window" "$(pgmd_state own)"
t_assert_eq "own: ... a partition of the source's table" "public.ev" \
    "$(sq own "SELECT format('%I.%I', n.nspname, p.relname) FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = p.relnamespace WHERE i.inhrelid = 'public.ev_2026'::regclass")"
t_assert_eq "own: ... recorded (facts.reverse.carried)" "public.ev_2026" "$(jst own '[.facts.reverse.carried[]?.table] | join(",")')"
t_assert_eq "own: ... audited" "1" "$(audit_has own '"reverse:carried"' 'public.ev_2026 created on the source')"
t_assert_eq "own: ... not a loss" "" "$(warned own | grep -o 'public.ev_2026' | head -1)"
q "$TO" "UPDATE public.ev SET note = 'moved on' WHERE id = 105" >/dev/null
t_check "own: ... later changes of it carried too" t_wait_for 30 same_rows own t_own public.ev_2026

# accept the loss: rollback
q "$TO" "INSERT INTO public.kv (v) VALUES ('last before rollback'); INSERT INTO public.newt VALUES (99, 'lost')" >/dev/null
cmd "own: rollback --accept-loss" rollback own --accept-loss
wait_state "own: rolled_back" own rolled_back 60
t_assert_eq "own: the acceptance is audited" "1" "$(audit_has own '"rollback --accept-loss"' 'public.cache, public.newt')"
t_assert_eq "own: ... and kept in facts" "public.cache, public.newt" "$(jst own '.facts.rollback_accept_loss.tables')"
t_assert_eq "own: ... what stayed on the target" "public.cache, public.newt" "$(jst own '.facts.rollback.lost_writes_to')"
compare "own" own t_own public.kv public.ev public.ev_2025 public.ev_2026
t_assert_eq "own: the new table is not on the source (the loss accepted)" "" "$(sq own "SELECT to_regclass('public.newt')")"
t_assert_eq "own: ... its 26 rows are on the target" "26" "$(tq t_own "SELECT count(*) FROM public.newt")"
t_assert_eq "own: the unlogged table on the source is as the source had it" "a=source" \
    "$(sq own "SELECT string_agg(k || '=' || v, ',' ORDER BY k) FROM public.cache")"
if pgm report own -o "$WORK/own.html" >/dev/null 2>&1; then
    t_assert_contains "own: the report names what was not carried back" "$(cat "$WORK/own.html")" \
        "Not carried back: <code>public.newt</code>"
    t_assert_contains "own: ... and the accepted loss" "$(cat "$WORK/own.html")" "Rollback accepted losing the writes"
else
    t_fail "own: pgmover report" "$(pgm report own -o "$WORK/own.html" 2>&1)"
fi

# ---------------------------------------------------------------------------------------
echo "# 3. job late: a table made just before rollback, found by the drain"
to_window late late "$(tgt_url t_late)" --set reverse_interval=60s
TL=$(tgt_url t_late)
t_assert_eq "late: nothing uncarried so far" "" "$(uncarried late)"
q "$TL" "CREATE TABLE public.hot (id integer PRIMARY KEY); INSERT INTO public.hot VALUES (1), (2)" >/dev/null
q "$TL" "INSERT INTO public.kv (v) VALUES ('late write')" >/dev/null
cmd "late: rollback (the window has not looked yet)" rollback late
wait_state "late: the drain finds the table and fails the rollback" late failed 60
t_assert_contains "late: ... naming it" "$(jst late '.error.message')" "rollback would lose writes to public.hot"
t_assert_contains "late: ... and what to do" "$(jst late '.error.hint')" "pgmover retry late --accept-loss"
t_assert_eq "late: ... the target takes writes again" "off" \
    "$(q "$TL" "SHOW default_transaction_read_only")"
q "$TL" "INSERT INTO public.kv (v) VALUES ('after the refused rollback')" >/dev/null
out=$(pgm retry late 2>&1)
t_assert_contains "late: retry without --accept-loss is refused" "$out" "rollback would lose writes to public.hot"
cmd "late: retry --accept-loss" retry late --accept-loss
wait_state "late: rolled_back" late rolled_back 60
compare "late" late t_late public.kv public.ev
t_assert_eq "late: the table is not on the source" "" "$(sq late "SELECT to_regclass('public.hot')")"

# ---------------------------------------------------------------------------------------
echo "# 4. job sup: a superuser target (FOR ALL TABLES)"
to_window sup sup "$(super_url t_sup)"
TS=$(super_url t_sup)
t_assert_eq "sup: the publication is FOR ALL TABLES" "t" \
    "$(tq t_sup "SELECT puballtables FROM pg_publication WHERE pubname = 'pgmover_sup'")"
# a new table: decoded (FOR ALL TABLES), made on the source from its definition before its
# first change is applied
q "$TS" "CREATE TABLE public.made (id integer GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                                   v text NOT NULL DEFAULT 'x', n numeric(10,2) CHECK (n >= 0));
         INSERT INTO public.made (v, n) SELECT 'm' || i, i FROM generate_series(1, 15) i" >/dev/null
_made() { [[ $(sq sup "SELECT to_regclass('public.made') IS NOT NULL") == t ]] && same_rows sup t_sup public.made; }
t_check "sup: a new table is made on the source, every row of it carried" t_wait_for 30 _made ||
    t_detail "$(fail_detail sup) $(jst sup '.facts.reverse')"
t_assert_eq "sup: ... the stream did not stop" "rollback_window" "$(pgmd_state sup)"
defn="SELECT string_agg(format('%s %s %s %s %s', attname, format_type(atttypid, atttypmod), attnotnull, attidentity,
                                coalesce(pg_get_expr(adbin, adrelid), '')), '; ' ORDER BY attnum)
          || ' | ' || (SELECT string_agg(pg_get_constraintdef(oid), '; ' ORDER BY conname) FROM pg_constraint
                        WHERE conrelid = 'public.made'::regclass)
        FROM pg_attribute LEFT JOIN pg_attrdef ON adrelid = attrelid AND adnum = attnum
       WHERE attrelid = 'public.made'::regclass AND attnum > 0 AND NOT attisdropped"
t_assert_eq "sup: ... as the target defines it (columns, identity, default, key, check)" "$(tq t_sup "$defn")" "$(sq sup "$defn")"
t_assert_eq "sup: ... recorded (facts.reverse.carried)" "public.made" "$(jst sup '[.facts.reverse.carried[]?.table] | join(",")')"
t_assert_eq "sup: ... audited" "1" "$(audit_has sup '"reverse:carried"' "public.made created on the source from the target's definition")"
t_assert_eq "sup: ... not a loss" "" "$(uncarried sup)"
# one the source cannot make (its schema is not there): said, and its first write stops the stream
q "$TS" "CREATE SCHEMA extra; CREATE TABLE extra.t (id integer PRIMARY KEY, v text);
         INSERT INTO extra.t SELECT i, 'e' || i FROM generate_series(1, 5) i" >/dev/null
t_check "sup: a table the source cannot make is said: the source lacks it" t_wait_for 30 has_uncarried sup extra.t ||
    t_detail "$(jst sup '.facts.reverse')"
t_assert_eq "sup: ... kind missing_on_source" "missing_on_source" \
    "$(jst sup '.facts.reverse.uncarried[] | select(.table == "extra.t") | .kind')"
_stopped_sup() { [[ $(pgmd_state sup) == failed ]]; }
t_check "sup: ... its first write stops the stream" t_wait_for 30 _stopped_sup || t_detail "$(fail_detail sup)"
src_admin sup "CREATE SCHEMA extra AUTHORIZATION app_owner; CREATE TABLE extra.t (id integer PRIMARY KEY, v text);
               ALTER TABLE extra.t OWNER TO app_owner" >/dev/null
cmd "sup: retry once the source has it" retry sup
_extra() { [[ $(pgmd_state sup) == rollback_window ]] && same_rows sup t_sup extra.t; }
t_check "sup: every row of it carried (decoded since it was made)" t_wait_for 30 _extra || t_detail "$(fail_detail sup)"
t_check "sup: ... no longer a loss" t_wait_for 30 no_uncarried sup extra.t
q "$TS" "CREATE UNLOGGED TABLE public.scratch (x integer); INSERT INTO public.scratch VALUES (1)" >/dev/null
t_check "sup: an unlogged table made on the target is said" t_wait_for 30 has_uncarried sup public.scratch
out=$(pgm rollback sup 2>&1)
t_assert_contains "sup: rollback is refused" "$out" "rollback would lose writes to public.scratch"
q "$TS" "UPDATE public.kv SET v = 'sup' WHERE id = 3; INSERT INTO public.made VALUES (16, 'last')" >/dev/null
cmd "sup: rollback --accept-loss" rollback sup --accept-loss
wait_state "sup: rolled_back" sup rolled_back 60
compare "sup" sup t_sup public.kv public.ev public.made extra.t

pgmd_stop
t_assert_eq "pgmoverd stops cleanly" "0" "$?"
echo "# run time: $(($(date +%s) - T0)) s"
t_summary
