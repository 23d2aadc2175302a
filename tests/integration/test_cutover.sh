#!/usr/bin/env bash
# Integration test of cutover, the rollback window, rollback and finish (method dump),
# black-box: the CLI, the documented status fields, SQL on both servers, a real
# pgbouncer (Debian's) and pgbench.
#
#   1. pgbench runs through pgbouncer (transaction pooling, %include of the file pgmover
#      owns) against the Heroku-like source; the job freezes the source and verifies
#   2. from then on pgbench runs a script that writes whenever its server takes writes
#      (it only reads while the source is frozen) and keeps running to the end
#   3. a cutover whose PAUSE times out (a transaction held open through pgbouncer), then
#      one whose hook fails, then one whose hook ignores SIGTERM and leaves a child holding
#      its output (stopped after hook_timeout and hook_kill_grace, nothing of it left):
#      each stops, says why (the hook: which and what it printed), traffic stays on the
#      source (pgbouncer resumed), no reverse slot or publication is left
#   4. retry: traffic moves to the target with zero failed transactions and the pause
#      length reported; the DNS TTL check warns (a loopback DNS server says 300 s)
#   5. writes on the target (pgbench and by hand: keyed, identity, key-less, TOAST,
#      truncate) flow back to the source during the window; the reverse lag is reported
#   6. a rollback whose hook fails is undone (traffic stays on the target, which takes
#      writes again); retry: the writes are on the source, pgbench traffic is back on the
#      source with zero failed transactions, the target is read-only, no pgmover object left
#   7. a second job (hooks only): writes during the window (one of 100,000 rows, with
#      pgmoverd's memory bounded; another with pgmoverd killed while applying it),
#      pgmoverd killed with SIGKILL
#      and restarted (exactly once), then finish: completed, the source still frozen, no
#      pgmover object on either side, replica identities back as they were
#
#   PGM_BUILD=/tmp/bd bash tests/integration/test_cutover.sh   (as root or postgres)
# PGM_TEST_KEEP=1 keeps the work directory.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TB=$ROOT/tests/testbed/testbed.sh
. "$HERE/lib.sh"
. "$HERE/pgmd.sh"
# shellcheck source=tests/integration/jobs.sh
. "$HERE/jobs.sh"
# shellcheck source=tests/integration/pgb.sh
. "$HERE/pgb.sh"

t_prereq test_cutover pgmoverd pgmover "$PGBOUNCER"

WORK=$(t_tmpdir) || exit 1
BED=$WORK/bed
DMN=$WORK/daemon
PGB=$WORK/pgb
BENCH_PID=
DNS_PID=
T0=$(date +%s)


cleanup() {
    [[ -n $BENCH_PID ]] && kill "$BENCH_PID" 2>/dev/null
    [[ -n $DNS_PID ]] && kill "$DNS_PID" 2>/dev/null
    pgmd_cleanup
    pgb_stop
    wait 2>/dev/null
    t_bed_remove "$WORK" "$BED"
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------
# helpers

fail_detail() {
    pgm --json status "$1" 2>/dev/null | jq -c '.result | {state, error: (.error.message // null), detail: (.error.detail // null)}'
}
_state_or_failed() {
    local s
    s=$(pgmd_state "$1")
    [[ $s == "$2" || $s == failed ]]
}
wait_state() {
    local name=$1 job=$2 want=$3 timeout=$4 got
    t_wait_for "$timeout" _state_or_failed "$job" "$want"
    got=$(pgmd_state "$job")
    if [[ $got == "$want" ]]; then t_ok "$name"; else
        t_fail "$name" "job $job is '$got' after up to ${timeout}s, not '$want': $(fail_detail "$job")"
    fi
}
# pgmover objects left on the target (slots, publications) and the source (schemas)
target_leftovers() {
    {
        tq postgres "SELECT string_agg(slot_name, ',') FROM pg_replication_slots WHERE slot_name LIKE 'pgmover%'"
        tq "$1" "SELECT string_agg(pubname, ',') FROM pg_publication WHERE pubname LIKE 'pgmover%'"
    } | tr -d '\n'
}
source_leftovers() { sq "$1" "SELECT coalesce(string_agg(nspname, ','), '') FROM pg_namespace WHERE nspname LIKE 'pgmover%'"; }
# pgbench's stderr: progress lines, and an error line per failed or aborted client
bench_failed() {
    awk '/^progress:/ && match($0, /[0-9]+ failed/) { s += substr($0, RSTART, RLENGTH - 7) } END { print s + 0 }' "$WORK/bench.err"
}
bench_errors() { grep -v '^progress:' "$WORK/bench.err" | grep -ci 'error\|abort'; }
# rows changed by pgbench on a side so far
history_count() { if [[ $1 == src ]]; then sq shop "SELECT count(*) FROM pgbench_history"; else tq t_shop "SELECT count(*) FROM pgbench_history"; fi; }
_grows() {
    local side=$1 before=$2 now
    now=$(history_count "$side")
    [[ $now =~ ^[0-9]+$ && $now -gt $before ]]
}
SESSION_SQL="SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET extra_float_digits = 3; SET bytea_output = 'hex';"
rows_sig() { # SIDE DB TABLE
    local sql="$SESSION_SQL SELECT count(*) || ' ' || coalesce(md5(string_agg(row(t.*)::text, '|' ORDER BY row(t.*)::text COLLATE \"C\")), '-') FROM $3 t"
    if [[ $1 == src ]]; then sq "$2" "$sql"; else tq "$2" "$sql"; fi
}
same_rows() { [[ $(rows_sig src "$1" "$3") == "$(rows_sig dst "$2" "$3")" ]]; }

# ---------------------------------------------------------------------------------------
# the bed: clusters, data, pgbouncer, a DNS server, the daemon

if ! "$TB" start "$BED" >"$WORK/testbed.log" 2>&1; then
    cat "$WORK/testbed.log" >&2
    t_fail "testbed" "could not start"
    t_summary
    exit 1
fi
. "$BED/env"

setup_ok=1
for db in shop second third; do "$TB" createdb "$BED" src "$db" >/dev/null || setup_ok=0; done
for db in t_shop t_second t_third; do "$TB" createdb "$BED" dst "$db" >/dev/null || setup_ok=0; done
"$TB_PGBIN/pgbench" -i -s 1 -q "$(src_url shop)" >"$WORK/pgbench-init.log" 2>&1 || setup_ok=0
APP_SQL="CREATE TABLE public.kv (id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text, j jsonb,
           t timestamptz, big text);
         CREATE TABLE public.nopk (a integer, b text, p point);
         CREATE TABLE public.scratch (id serial PRIMARY KEY, note text);
         INSERT INTO public.kv (v, j, t) SELECT 'v' || i, jsonb_build_object('i', i), '2024-01-01 00:00:00+00'
           FROM generate_series(1, 50) i;
         INSERT INTO public.nopk SELECT i, 'b' || i, point(i, i) FROM generate_series(1, 20) i;
         INSERT INTO public.nopk VALUES (7, 'b7', point(7, 7));
         INSERT INTO public.scratch (note) SELECT 'n' || i FROM generate_series(1, 10) i;"
for db in shop second third; do q "$(src_url "$db")" "$APP_SQL" >/dev/null || setup_ok=0; done
# large objects: copied and verified, but not carried back by the rollback window
q "$(src_url shop)" "SELECT lo_from_bytea(0, convert_to('attachment ' || i, 'UTF8')) FROM generate_series(1, 2) i" \
    >/dev/null || setup_ok=0
if [[ $setup_ok == 1 ]]; then t_ok "setup: databases, pgbench data, app tables"; else
    t_fail "setup" "see $WORK"
    t_summary
    exit 1
fi

if pgb_start "$PGB" shop; then
    t_ok "pgbouncer starts (transaction pooling, %include of the entry file)"
else
    t_fail "pgbouncer starts" "see $PGB/pgbouncer.log"
    t_summary
    exit 1
fi
ORIGINAL_INCLUDE=$(cat "$PGB/pgmover-shop.ini")

DNS_PORT=$(free_port)
if command -v python3 >/dev/null; then
    python3 "$HERE/fakedns.py" "$DNS_PORT" 300 600 >"$WORK/dns.log" 2>&1 &
    DNS_PID=$!
    t_wait_for 10 grep -q ready "$WORK/dns.log" || echo "# fake DNS server did not start" >&2
fi

if ! pgmd_start "$DMN" "pg_bindir = $TB_PGBIN"; then
    t_fail "pgmoverd starts" "see $DMN/pgmoverd.log"
    t_summary
    exit 1
fi
t_ok "pgmoverd starts"

# ---------------------------------------------------------------------------------------
echo "# 1. pgbench through pgbouncer against the source; the job freezes and verifies"

out=$("$TB_PGBIN/pgbench" -n -c 2 -T 3 "$BOUNCER_URL" 2>&1)
t_assert_contains "pgbench through pgbouncer on the writable source" "$out" "number of failed transactions: 0"
t_assert_eq "pgbouncer reaches the source" "127.0.0.1:$SOURCE_PORT 0" "$(pgb_entry)"

HOOK_FAIL=$WORK/hook-fail
touch "$HOOK_FAIL"
out=$(pgm create nopw --source "$(src_url shop)" --target "$(tgt_url t_shop)" --method dump \
    --set pgbouncer_admin="postgres://pgbadmin:adminpw@127.0.0.1:$PGB_PORT/pgbouncer" 2>&1)
t_assert_contains "an admin URL with a password is refused at create" "$out" "passfile"
# shellcheck disable=SC2016
cmd "shop: create" create shop --source "$(src_url shop)" --target "$(tgt_url t_shop)" --method dump \
    --set pgbouncer_admin="$ADMIN_URL" --set pgbouncer_pause_timeout=2s \
    --set pgbouncer_database=shop --set pgbouncer_include="$PGB/pgmover-shop.ini" \
    --set cutover_command='if test -e '"$HOOK_FAIL"'; then echo "dns provider said no"; exit 3; fi; echo "$PGMOVER_PHASE" > '"$WORK/hook.phase" \
    --set post_cutover_command='echo "$PGMOVER_PHASE $PGMOVER_JOB" > '"$WORK/post.out" \
    --set rollback_command='if test -e '"$WORK/rollback-fail"'; then echo "not yet"; exit 4; fi; echo "$PGMOVER_PHASE" > '"$WORK/rollback.out" \
    --set dns_record=app.shop.test --set dns_server="127.0.0.1:$DNS_PORT" \
    --set reverse_interval=300ms --set rehearsal=off
cmd "shop: start" start shop
wait_state "shop: synced" shop synced 120
cmd "shop: freeze" freeze shop
wait_state "shop: verified" shop verified 120
[[ $(pgmd_state shop) == verified ]] || {
    t_summary
    exit 1
}

# ---------------------------------------------------------------------------------------
echo "# 2. pgbench (writes whenever its server takes them) from now to the end"
cat >"$WORK/rw.sql" <<'EOF'
\set aid random(1, 100000)
\set tid random(1, 10)
\set delta random(-5000, 5000)
BEGIN;
SELECT CASE WHEN current_setting('transaction_read_only') = 'off' THEN 1 ELSE 0 END AS w \gset
\if :w
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (:tid, 1, :aid, :delta, CURRENT_TIMESTAMP);
\else
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
\endif
END;
EOF
"$TB_PGBIN/pgbench" -n -c 4 -j 2 -T 900 -P 1 -R 400 -f "$WORK/rw.sql" "$BOUNCER_URL" >"$WORK/bench.out" 2>"$WORK/bench.err" &
BENCH_PID=$!
t_check "pgbench runs through pgbouncer (reads only: the source is frozen)" \
    t_wait_for 20 grep -q '^progress:' "$WORK/bench.err" ||
    t_detail "$(cat "$WORK/bench.err")"

# ---------------------------------------------------------------------------------------
echo "# 3. a PAUSE that times out, then a failing cutover hook"
"$TB_PGBIN/psql" "$BOUNCER_URL" -X -q -c "BEGIN" -c "SELECT pg_sleep(20)" -c "COMMIT" >/dev/null 2>&1 &
holder=$!
_holding() { [[ $(sq shop "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(20)%'") == 1 ]]; }
t_wait_for 10 _holding || echo "# the open transaction did not show up" >&2
cmd "timeout: cutover accepted" cutover shop
wait_state "timeout: the cutover fails" shop failed 60
t_assert_contains "timeout: the error says PAUSE timed out" "$(jst shop '.error.message')" "PAUSE timed out"
t_assert_eq "timeout: pgbouncer resumed, still on the source" "127.0.0.1:$SOURCE_PORT 0" "$(pgb_entry)"
t_assert_eq "timeout: no reverse slot or publication left on the target" "" "$(target_leftovers t_shop)"
kill "$holder" 2>/dev/null
wait "$holder" 2>/dev/null
t_assert_eq "timeout: pgbench waited but saw no failure" "0 0" "$(bench_failed) $(bench_errors)"
cmd "hook: retry accepted" retry shop
wait_state "hook: the cutover fails" shop failed 60
t_assert_contains "hook: the error names the hook" "$(jst shop '.error.message')" "cutover_command"
t_assert_contains "hook: the error says what it printed" "$(jst shop '.error.detail')" "dns provider said no"
t_assert_contains "hook: the hint says traffic stays on the source" "$(jst shop '.error.hint')" "stays on the source"
t_assert_eq "hook: pgbouncer still points at the source, not paused" "127.0.0.1:$SOURCE_PORT 0" "$(pgb_entry)"
t_assert_eq "hook: the include file is the original" "$ORIGINAL_INCLUDE" "$(cat "$PGB/pgmover-shop.ini")"
t_assert_eq "hook: no reverse slot or publication left on the target" "" "$(target_leftovers t_shop)"
t_assert_eq "hook: no progress table left on the source" "" "$(source_leftovers shop)"
grep -q '"cutover:hook:cutover_command".*failed' "$DMN/state/shop/audit.jsonl" &&
    t_ok "hook: the failure is in the audit log" || t_fail "hook: audit" "$(tail -5 "$DMN/state/shop/audit.jsonl")"
t_assert_eq "hook: pgbench saw no failure" "0 0" "$(bench_failed) $(bench_errors)"

echo "# 3b. a cutover hook that ignores SIGTERM, with a child holding its output"
HANG_MARK=pgmhang$$x$RANDOM
HANG_SLEEP=$((8000 + RANDOM % 1000))
_hang_gone() { [[ -z $(pgrep -f "$HANG_MARK|sleep $HANG_SLEEP") ]]; }
cmd "hang: set a cutover hook that will not end" set shop \
    --set cutover_command=": $HANG_MARK; trap 'echo got TERM' TERM; (trap '' TERM; exec sleep $HANG_SLEEP) & while :; do sleep 0.2; done" \
    --set hook_timeout=1s --set hook_kill_grace=1s
cmd "hang: retry accepted" retry shop
wait_state "hang: the cutover fails" shop failed 60
t_assert_contains "hang: the error says the hook timed out and was killed" "$(jst shop '.error.message')" \
    "hook cutover_command timed out after"
t_assert_contains "hang: the hook got SIGTERM first" "$(jst shop '.error.detail')" "got TERM"
t_assert_eq "hang: pgbouncer still points at the source, not paused" "127.0.0.1:$SOURCE_PORT 0" "$(pgb_entry)"
t_check "hang: no process of the hook is left" t_wait_for 10 _hang_gone ||
    t_detail "$(pgrep -af "$HANG_MARK|sleep $HANG_SLEEP")"
t_assert_eq "hang: no reverse slot or publication left on the target" "" "$(target_leftovers t_shop)"
t_assert_eq "hang: pgbench waited but saw no failure" "0 0" "$(bench_failed) $(bench_errors)"
# shellcheck disable=SC2016
cmd "hang: the cutover hook set back" set shop --set hook_timeout=60s --set hook_kill_grace=5s \
    --set cutover_command='if test -e '"$HOOK_FAIL"'; then echo "dns provider said no"; exit 3; fi; echo "$PGMOVER_PHASE" > '"$WORK/hook.phase"

# ---------------------------------------------------------------------------------------
echo "# 4. retry: cutover to the target"
rm -f "$HOOK_FAIL"
before=$(history_count dst)
cmd "cutover: retry accepted" retry shop
wait_state "cutover: rollback_window" shop rollback_window 60
t_assert_eq "cutover: pgbouncer points at the target" "127.0.0.1:$TARGET_PORT 0" "$(pgb_entry)"
pause=$(jst shop '.facts.cutover.pause_ms')
if [[ $pause =~ ^[0-9]+$ ]]; then t_ok "cutover: pause length reported: $pause ms"; else
    t_fail "cutover: pause length reported" "facts.cutover.pause_ms = $pause"
fi
echo "# pause: ${pause} ms (PAUSE itself waited $(jst shop '.facts.cutover.pgbouncer.pause_wait_ms') ms)"
t_check "cutover: pgbench writes on the target" t_wait_for 20 _grows dst "$before" ||
    t_detail "history on the target stays at $(history_count dst)"
t_assert_eq "cutover: zero failed pgbench transactions across the switch" "0 0" "$(bench_failed) $(bench_errors)"
t_assert_eq "cutover: the hook ran with PGMOVER_PHASE" "cutover" "$(cat "$WORK/hook.phase" 2>/dev/null)"
t_assert_eq "cutover: the post-cutover hook ran" "post_cutover shop" "$(cat "$WORK/post.out" 2>/dev/null)"
for st in dns:check pgbouncer:check sequences reverse:setup pgbouncer:pause hook:cutover_command pgbouncer:switch \
    pgbouncer:resume hook:post_cutover_command; do
    grep -q "\"cutover:$st\"" "$DMN/state/shop/audit.jsonl" || t_fail "cutover: audit has $st" "missing"
done
t_ok "cutover: every stage is in the audit log"
q "$(src_url shop)" "INSERT INTO public.scratch (note) VALUES ('x')" >"$WORK/frozen.out" 2>&1
t_assert_contains "cutover: the source stays frozen" "$(cat "$WORK/frozen.out")" "read-only transaction"
if [[ -n $DNS_PID ]]; then
    t_assert_eq "dns: the TTL is reported" "300" "$(jst shop '.facts.dns.ttl')"
    t_assert_contains "dns: a TTL above 60 s is a warning" "$(jst shop '[.warnings[].message] | join(";")')" "TTL of 300 s"
fi

t_assert_eq "cutover: the target's large objects are counted" "2" "$(jst shop '.facts.cutover.large_objects.count')"
t_assert_contains "cutover: a warning says the window does not carry large objects" \
    "$(jst shop '[.warnings[].message] | join(";")')" "the rollback window does not carry large objects"

# ---------------------------------------------------------------------------------------
echo "# 5. writes on the target flow back to the source"
T="$(tgt_url t_shop)"
q "$T" "SELECT lo_from_bytea(0, 'made on the target')" >/dev/null
q "$T" "INSERT INTO public.kv (v, j, t, big) VALUES ('new', '{\"a\": [1, 2]}', '2025-06-01 12:00:00.123456+02', repeat('x', 100000));
        UPDATE public.kv SET v = 'changed', j = j || '{\"u\": true}' WHERE id <= 5;
        DELETE FROM public.kv WHERE id BETWEEN 10 AND 12;
        UPDATE public.nopk SET b = 'renamed' WHERE a = 3;
        DELETE FROM public.nopk WHERE a = 4;
        UPDATE public.nopk SET b = 'one of two' WHERE ctid = (SELECT ctid FROM public.nopk WHERE a = 7 LIMIT 1);
        INSERT INTO public.nopk VALUES (NULL, NULL, NULL);
        TRUNCATE public.scratch;
        INSERT INTO public.scratch (note) VALUES ('after truncate');
        UPDATE public.scratch SET id = 5000 WHERE note = 'after truncate';" >"$WORK/target-writes.log" 2>&1 ||
    t_fail "window: writes on the target" "$(cat "$WORK/target-writes.log")"
q "$T" "UPDATE public.kv SET v = 'toast kept' WHERE v = 'new'" >/dev/null
_caught_up() { same_rows shop t_shop public.kv && same_rows shop t_shop public.nopk && same_rows shop t_shop public.scratch; }
t_check "window: the target's writes are on the source (keyed, identity, key-less, TOAST, truncate)" \
    t_wait_for 30 _caught_up ||
    t_detail "kv [$(rows_sig src shop public.kv)] vs [$(rows_sig dst t_shop public.kv)]; nopk [$(rows_sig src shop public.nopk)] vs [$(rows_sig dst t_shop public.nopk)]"
t_assert_eq "window: reverse lag reported (bytes, seconds)" "number number" "$(jst shop '.facts.reverse_lag | "\(.bytes | type) \(.seconds | type)"')"
t_assert_eq "window: REPLICA IDENTITY FULL on the key-less tables of the target" "f" \
    "$(tq t_shop "SELECT relreplident FROM pg_class WHERE oid = 'public.nopk'::regclass")"

# ---------------------------------------------------------------------------------------
echo "# 6. rollback"
touch "$WORK/rollback-fail"
cmd "rollback hook: rollback accepted" rollback shop
wait_state "rollback hook: the rollback fails" shop failed 60
t_assert_contains "rollback hook: the error names the hook" "$(jst shop '.error.message')" "rollback_command"
t_assert_eq "rollback hook: pgbouncer still on the target, not paused" "127.0.0.1:$TARGET_PORT 0" "$(pgb_entry)"
before=$(history_count dst)
t_check "rollback hook: the target takes pgbench writes again" t_wait_for 20 _grows dst "$before" ||
    t_detail "history stays at $before"
q "$(src_url shop)" "INSERT INTO public.scratch (note) VALUES ('x')" >"$WORK/frozen2.out" 2>&1
t_assert_contains "rollback hook: the source is still frozen" "$(cat "$WORK/frozen2.out")" "read-only transaction"
t_assert_eq "rollback hook: pgbench saw no failure" "0 0" "$(bench_failed) $(bench_errors)"
rm -f "$WORK/rollback-fail"
q "$T" "INSERT INTO public.kv (v) VALUES ('while failed')" >/dev/null
# a session on the target that bypasses pgbouncer: the target's freeze ends it, and spares the job's own
"$TB_PGBIN/psql" "$T" -X -q -c "SELECT pg_sleep(60)" >/dev/null 2>&1 &
direct=$!
_direct() { [[ $(tq t_shop "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)'") == 1 ]]; }
t_wait_for 10 _direct || echo "# the direct session did not show up" >&2
cmd "rollback: retry accepted" retry shop
wait_state "rollback: rolled_back" shop rolled_back 60
_direct_gone() { ! kill -0 "$direct" 2>/dev/null; }
t_wait_for 5 _direct_gone && t_ok "rollback: the target's freeze ended a session that bypassed pgbouncer" ||
    t_fail "rollback: the target's freeze ended a session that bypassed pgbouncer" "still running"
t_assert_eq "rollback: ... and counted it" "true" "$(jst shop '.facts.rollback.target_sessions_terminated >= 1')"
kill "$direct" 2>/dev/null
wait "$direct" 2>/dev/null
t_assert_eq "rollback: pgbouncer points at the source again" "127.0.0.1:$SOURCE_PORT 0" "$(pgb_entry)"
t_assert_eq "rollback: the include file is the original again" "$ORIGINAL_INCLUDE" "$(cat "$PGB/pgmover-shop.ini")"
before=$(history_count src)
t_check "rollback: pgbench traffic is back on the source (writes)" t_wait_for 20 _grows src "$before" ||
    t_detail "history on the source stays at $before"
t_assert_eq "rollback: zero failed pgbench transactions across the way back" "0 0" "$(bench_failed) $(bench_errors)"
echo "# rollback pause: $(jst shop '.facts.rollback.pause_ms') ms"
t_assert_eq "rollback: the large object made on the target is noticed" "true 3" \
    "$(jst shop '.facts.rollback.large_objects | "\(.changed) \(.count)"')"
t_assert_contains "rollback: ... and a warning says what to do" "$(jst shop '[.warnings[].message] | join(";")')" \
    "large objects were created or unlinked on the target after cutover (2 then, 3 now)"
for t in public.kv public.nopk public.scratch; do
    s=$(rows_sig src shop "$t")
    t_assert_eq "rollback: $t on the source equals the target" "$(rows_sig dst t_shop "$t")" "$s"
done
t_assert_eq "rollback: the rollback hook ran" "rollback" "$(cat "$WORK/rollback.out" 2>/dev/null)"
t_assert_eq "rollback: no slot or publication left on the target" "" "$(target_leftovers t_shop)"
t_assert_eq "rollback: no progress table left on the source" "" "$(source_leftovers shop)"
t_assert_eq "rollback: no include backup left" "" "$(ls "$PGB" | grep pgmover-orig)"
out=$(q "$T" "INSERT INTO public.scratch (note) VALUES ('late')")
t_assert_contains "rollback: the target is read-only" "$out" "read-only transaction"
sv=$(sq shop "SELECT last_value FROM pg_sequences WHERE sequencename = 'kv_id_seq'")
tv=$(tq t_shop "SELECT last_value FROM pg_sequences WHERE sequencename = 'kv_id_seq'")
[[ $sv =~ ^[0-9]+$ && $tv =~ ^[0-9]+$ && $sv -ge $tv ]] && t_ok "rollback: source sequences at least the target's ($sv >= $tv)" ||
    t_fail "rollback: source sequences raised" "source $sv, target $tv"
out=$(q "$(src_url shop)" "INSERT INTO public.kv (v) VALUES ('after rollback') RETURNING id")
[[ $out =~ ^[0-9]+$ && $out -gt $tv ]] && t_ok "rollback: a new row on the source gets a fresh identity ($out)" ||
    t_fail "rollback: fresh identity on the source" "$out"

# pgbench's writes: every history row the target had is on the source, and no account
# update was lost (TPC-B keeps sum(abalance) = sum(delta))
kill "$BENCH_PID" 2>/dev/null
wait "$BENCH_PID" 2>/dev/null
BENCH_PID=
tq t_shop "COPY (SELECT tid, bid, aid, delta, mtime FROM pgbench_history) TO STDOUT" >"$WORK/history.tsv"
chmod 0644 "$WORK/history.tsv"
missing=$($SOURCE_PSQL -d shop -tA -c "CREATE TEMP TABLE h (LIKE pgbench_history)" -c "\\copy h (tid, bid, aid, delta, mtime) FROM '$WORK/history.tsv'" \
    -c "SELECT count(*) FROM (SELECT tid, bid, aid, delta, mtime FROM h EXCEPT ALL SELECT tid, bid, aid, delta, mtime FROM pgbench_history) x" 2>&1)
t_assert_eq "rollback: every pgbench row written on the target is on the source" "0" "$missing"
t_assert_eq "rollback: no pgbench account update lost" "t" \
    "$(sq shop "SELECT (SELECT sum(abalance) FROM pgbench_accounts) = (SELECT sum(delta) FROM pgbench_history)")"
echo "# pgbench: $(grep -c '^progress:' "$WORK/bench.err") s of progress, $(history_count src) history rows"

# ---------------------------------------------------------------------------------------
echo "# 7. second job: SIGKILL in the window, then finish"
pgmd_stop
t_assert_eq "pgmoverd stops cleanly on SIGTERM" "0" "$?"
pgmd_start "$DMN" && t_assert_eq "pgmoverd restarts; the rolled back job stays so" "rolled_back" "$(pgmd_state shop)"
# its cutover hook (the only traffic switch: no pgbouncer) fails until $WORK/second-go exists
# shellcheck disable=SC2016
cmd "second: create" create second --source "$(src_url second)" --target "$(tgt_url t_second)" --method dump \
    --set rehearsal=off --set reverse_interval=200ms \
    --set cutover_command='test -e '"$WORK/second-go"' || { echo "the load balancer said no"; exit 5; }'
cmd "second: start" start second
wait_state "second: synced" second synced 120
cmd "second: freeze" freeze second
wait_state "second: verified" second verified 120
# a cutover that fails before traffic moved: never stuck frozen, thaw (or abort) works
cmd "second: cutover (hook fails)" cutover second
wait_state "second: the cutover fails" second failed 60
t_assert_eq "second: failed in cutting_over, traffic not moved: thaw, abort, retry" "thaw, abort, retry" \
    "$(jst second '.allowed_commands')"
t_assert_contains "second: the hint says traffic stays on the source" "$(jst second '.error.hint')" "stays on the source"
t_assert_eq "second: no slot or publication left by the failed cutover" "" "$(target_leftovers t_second)"
cmd "second: thaw after the failed cutover" thaw second
wait_state "second: thawed to synced" second synced 60
out=$(q "$(src_url second)" "UPDATE public.kv SET v = 'written after the failed cutover' WHERE id = 2 RETURNING 'ok'")
t_assert_eq "second: the source takes writes again" "ok" "$out"
grep -q '"thaw".*"from":"failed"' "$DMN/state/second/audit.jsonl" && t_ok "second: the thaw is audited" ||
    t_fail "second: the thaw is audited" "$(grep thaw "$DMN/state/second/audit.jsonl" | tail -2)"
cmd "second: freeze again" freeze second
wait_state "second: verified again" second verified 120
touch "$WORK/second-go"
cmd "second: cutover" cutover second
wait_state "second: rollback_window" second rollback_window 60
t_check "second: the hook moved the traffic (facts.traffic_moved_at)" test -n "$(jst second '.facts.traffic_moved_at // empty')"
t_assert_eq "second: after the cutover: rollback, finish" "rollback, finish" "$(jst second '.allowed_commands')"
t_assert_eq "second: the write made between the two freezes is on the target" "written after the failed cutover" \
    "$(tq t_second "SELECT v FROM public.kv WHERE id = 2")"
T2="$(tgt_url t_second)"
# one transaction of 2500 rows: applied in blocks of 1000 within one source transaction
q "$T2" "INSERT INTO public.scratch (note) SELECT 'w' || i FROM generate_series(1, 2500) i" >/dev/null
_second_has() { [[ $(sq second "SELECT count(*) FROM public.scratch") == "$1" ]]; }
t_check "second: a 2500-row transaction reaches the source" t_wait_for 20 _second_has 2510 ||
    t_detail "$(sq second 'SELECT count(*) FROM public.scratch')"
# one transaction of 100,000 rows of 512 bytes: read through a cursor and applied chunk by
# chunk inside one source transaction, so pgmoverd's memory does not grow with its size
# (read whole, the slot's output alone is ~100 MB of hex text)
peak_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$PGMD_PID/status"; }
peak0=$(peak_kb)
t_big=$(date +%s%N)
q "$T2" "INSERT INTO public.scratch (note) SELECT repeat(md5(i::text), 16) FROM generate_series(1, 100000) i" >/dev/null
t_check "second: a 100,000-row transaction reaches the source" t_wait_for 120 _second_has 102510 ||
    t_detail "$(sq second 'SELECT count(*) FROM public.scratch')"
echo "# 100,000 rows written on the target and on the source $((($(date +%s%N) - t_big) / 1000000)) ms later"
grown=$((($(peak_kb) - peak0) / 1024))
t_check "second: pgmoverd's peak memory grew by $grown MB for it (bounded)" test "$grown" -lt 24
# another, with pgmoverd killed while it is being applied: the half-applied source
# transaction dies with the connection, and the restarted daemon applies it whole, once
q "$T2" "INSERT INTO public.scratch (note) SELECT 'killed ' || i FROM generate_series(1, 100000) i" >/dev/null
_applying() { [[ $(sq second "SELECT count(*) FROM pg_stat_activity WHERE datname = 'second'
    AND application_name LIKE '%reverse-apply%' AND state <> 'idle'") != 0 ]]; }
t_wait_for 10 _applying
pgmd_kill9
t_assert_eq "second: killed in the middle of it: none of it on the source yet" "102510" \
    "$(sq second 'SELECT count(*) FROM public.scratch')"
t_check "second: pgmoverd restarts after SIGKILL in a large transaction" pgmd_start "$DMN" || t_detail "see log"
t_check "second: the large transaction arrived once, whole, after the kill" t_wait_for 120 _second_has 202510 ||
    t_detail "$(sq second 'SELECT count(*) FROM public.scratch')"
t_assert_eq "second: ... and no row of it twice" "100000" \
    "$(sq second "SELECT count(DISTINCT note) FROM public.scratch WHERE note LIKE 'killed %'")"
# a table made on the target after cutover (FOR ALL TABLES: this target's role is a
# superuser): the source lacks it, so the stream makes it there from the target's
# definition before it applies its first change, and carries every row of it
q "$T2" "CREATE TABLE public.added (id integer PRIMARY KEY, v text); INSERT INTO public.added VALUES (1, 'one')" >/dev/null
_added() { [[ $(pgmd_state second) == rollback_window ]] && same_rows second t_second public.added; }
t_check "second: a table made on the target is made on the source, its rows carried" t_wait_for 30 _added ||
    t_detail "$(fail_detail second) $(jst second '.facts.reverse')"
t_assert_eq "second: ... recorded (facts.reverse.carried), not a loss" "public.added " \
    "$(jst second '[.facts.reverse.carried[]?.table] | join(",")') $(jst second '[.facts.reverse.uncarried[]?.table] | join(",")')"
t_assert_eq "second: ... owned by the source's role" "app_owner" \
    "$(sq second "SELECT tableowner FROM pg_tables WHERE schemaname = 'public' AND tablename = 'added'")"
# pgmover's progress row gone from the source: the stream stops and says so, and loses
# nothing once the row is back
prog_schema=$(sq second "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'pgmover%'")
$SOURCE_PSQL -d second -c "SET default_transaction_read_only = off" \
    -c "UPDATE $prog_schema.applied SET job = 'hidden' WHERE job = 'second'" >/dev/null
q "$T2" "INSERT INTO public.scratch (note) VALUES ('while the row is gone')" >/dev/null
_progress_error() { [[ $(pgmd_state second) == failed && $(jst second '.error.message // ""') == *"progress row of job second is missing"* ]]; }
t_check "second: a missing progress row stops the stream and is named" t_wait_for 20 _progress_error ||
    t_detail "$(fail_detail second) $(jst second '.facts.reverse')"
$SOURCE_PSQL -d second -c "SET default_transaction_read_only = off" \
    -c "UPDATE $prog_schema.applied SET job = 'second' WHERE job = 'hidden'" >/dev/null
cmd "second: retry once the row is back" retry second
t_check "second: ... and the stream goes on once it is back" t_wait_for 30 same_rows second t_second public.scratch ||
    t_detail "$(fail_detail second) $(jst second '.facts.reverse')"
# a stream of small transactions while the daemon dies
(for i in $(seq 1 60); do q "$T2" "INSERT INTO public.scratch (note) VALUES ('k$i'); UPDATE public.kv SET v = 'k$i' WHERE id = 1" >/dev/null; sleep 0.02; done) &
writer=$!
sleep 0.4
pgmd_kill9
wait "$writer"
t_check "second: pgmoverd restarts after SIGKILL" pgmd_start "$DMN" || t_detail "see log"
t_assert_eq "second: still in the window" "rollback_window" "$(pgmd_state second)"
t_check "second: every write arrived exactly once after the kill" \
    t_wait_for 30 same_rows second t_second public.scratch ||
    t_detail "source [$(rows_sig src second public.scratch)] target [$(rows_sig dst t_second public.scratch)]"
t_check "second: updates arrived in order" t_wait_for 10 same_rows second t_second public.kv ||
    t_detail "$(sq second 'SELECT v FROM public.kv WHERE id = 1')"
cmd "second: finish" finish second
wait_state "second: completed" second completed 60
t_assert_eq "second: no slot or publication left on the target" "" "$(target_leftovers t_second)"
t_assert_eq "second: no progress table left on the source" "" "$(source_leftovers second)"
t_assert_eq "second: replica identity of the key-less table back to default" "d" \
    "$(tq t_second "SELECT relreplident FROM pg_class WHERE oid = 'public.nopk'::regclass")"
out=$(q "$(src_url second)" "INSERT INTO public.scratch (note) VALUES ('x')")
t_assert_contains "second: the source stays frozen after completed" "$out" "read-only transaction"
out=$(q "$T2" "INSERT INTO public.scratch (note) VALUES ('x') RETURNING 'ok'")
t_assert_eq "second: the target takes writes" "ok" "$out"

# ---------------------------------------------------------------------------------------
echo "# 8. third job: no traffic switch at all, then a cutover that fails; abort"
cmd "third: create (neither pgbouncer nor cutover_command)" create third --source "$(src_url third)" \
    --target "$(tgt_url t_third)" --method dump --set rehearsal=off
cmd "third: start" start third
wait_state "third: synced" third synced 120
cmd "third: freeze" freeze third
wait_state "third: verified" third verified 120
out=$(pgm cutover third 2>&1)
rc=$?
t_check "third: cutover without a traffic switch is refused (exit $rc)" test "$rc" -ne 0
t_assert_contains "third: ... saying nothing would move the traffic" "$out" "has no traffic switch"
t_assert_contains "third: ... and how to go on" "$out" "--no-traffic-switch"
t_assert_eq "third: ... and the job stays verified" "verified" "$(pgmd_state third)"
grep -q '"cutover".*refused: no traffic switch' "$DMN/state/third/audit.jsonl" &&
    t_ok "third: the refusal is audited" || t_fail "third: the refusal is audited" "$(tail -2 "$DMN/state/third/audit.jsonl")"
# a publication of the name the job would use: the reverse setup fails, before traffic moves
tq t_third "CREATE PUBLICATION pgmover_third" >/dev/null
cmd "third: cutover --no-traffic-switch accepted" cutover third --no-traffic-switch
wait_state "third: the cutover fails at the reverse setup" third failed 60
t_assert_contains "third: the error names the publication" "$(jst third '.error.message')" "pgmover_third"
t_assert_eq "third: thaw, abort, retry" "thaw, abort, retry" "$(jst third '.allowed_commands')"
cmd "third: abort after the failed cutover" abort third
wait_state "third: aborted" third aborted 60
out=$(q "$(src_url third)" "UPDATE public.kv SET v = 'after abort' WHERE id = 1 RETURNING 'ok'")
t_assert_eq "third: the source takes writes after the abort" "ok" "$out"
t_assert_eq "third: the publication pgmover did not create is still there" "pgmover_third" \
    "$(tq t_third "SELECT string_agg(pubname, ',') FROM pg_publication")"
t_assert_eq "third: no slot left" "" "$(tq postgres "SELECT string_agg(slot_name, ',') FROM pg_replication_slots WHERE slot_name = 'pgmover_third'")"
t_assert_eq "third: no progress table left on the source" "" "$(source_leftovers third)"
tq t_third "DROP PUBLICATION pgmover_third" >/dev/null

leaks=$(grep -rlF -e "$SOURCE_OWNER_PASSWORD" -e "$TARGET_ADMIN_PASSWORD" -e adminpw "$DMN" 2>/dev/null | grep -v '/secrets\.json$' || true)
t_assert_eq "no password in state.json, audit.jsonl or the log" "" "$leaks"
pgmd_stop
t_assert_eq "pgmoverd stops cleanly" "0" "$?"
echo "# run time: $(($(date +%s) - T0)) s"
t_summary
