#!/usr/bin/env bash
# Integration test of the rollback window on a managed-like target: pgmover's target
# role owns the database and is no superuser (CREATEDB, REPLICATION, pg_signal_backend:
# TB_TARGET_ROLE=owner), the target has wal_level = logical, and the source is
# Heroku-like (wal_level replica, nothing preloaded, the owner's credential). Black-box:
# the CLI, the documented status fields, the daemon's log, and SQL on both servers. Every
# case ends with an independent comparison (counts and an md5 of the rows, per table, in
# psql), not pgmover's own verify.
#
#   1. plan: the rollback window's needs of a role that is not a superuser are checked
#   2. job win: cutover, writes on the target (keyed, key-less, deletes), the apply session
#      ended on the source (retried, counted), an UPDATE of a row the source lacks, a
#      write the source refuses (a unique index added there after cutover): the stream stops, the job fails
#      once naming the table, the key and what to do, the log does not repeat it; after the
#      fix, retry; the slot's retained WAL in status, a warning over rollback_retained_warn;
#      rollback; source = target
#   3. job wide: 2,000 rows of 100 KB updated in one target transaction: pgmoverd's peak
#      memory stays under 128 MB (57 MB measured, 337 MB before; the slot read in FETCHes of about 4 MB); applied in DO
#      blocks under 8 MB each (measured in the source's log); a 300 KB row a CHECK only the
#      source has refuses: named, the detail short; retry; rollback; source = target
#   4. job late: a short rollback_window: at its deadline a warning, the job finishes by
#      itself (completed), no slot or publication left; job stuck: failed in the window at
#      its deadline: a warning, the slot kept until retry, which finishes
#
#   PGM_BUILD=/tmp/bd bash tests/integration/test_rollback.sh   (as root or postgres)
# PGM_TEST_KEEP=1 keeps the work directory.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TB=$ROOT/tests/testbed/testbed.sh
. "$HERE/lib.sh"
. "$HERE/pgmd.sh"
# shellcheck source=tests/integration/jobs.sh
. "$HERE/jobs.sh"

t_prereq test_rollback pgmoverd pgmover

WORK=$(t_tmpdir) || exit 1
BED=$WORK/bed
DMN=$WORK/daemon
T0=$(date +%s)

cleanup() {
    pgmd_cleanup
    wait 2>/dev/null
    t_bed_remove "$WORK" "$BED"
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------
# helpers

leftovers() { # DSTDB SRCDB: pgmover slots and publications on the target, schemas on the source
    {
        tq postgres "SELECT string_agg(slot_name, ',') FROM pg_replication_slots WHERE slot_name LIKE 'pgmover%'"
        tq "$1" "SELECT string_agg(pubname, ',') FROM pg_publication WHERE pubname LIKE 'pgmover%'"
        sq "$2" "SELECT string_agg(nspname, ',') FROM pg_namespace WHERE nspname LIKE 'pgmover%'"
    } | tr -d '\n'
}
log_count() { grep -cF -- "$1" "$DMN/pgmoverd.log"; }

# ---------------------------------------------------------------------------------------
# the bed: a Heroku-like source, a managed-like target

if ! TB_SOURCE_WAL_LEVEL=replica TB_SOURCE_PRELOAD='' TB_TARGET_ROLE=owner \
    "$TB" start "$BED" >"$WORK/testbed.log" 2>&1; then
    cat "$WORK/testbed.log" >&2
    t_fail "testbed" "could not start"
    t_summary
    exit 1
fi
# shellcheck source=/dev/null
. "$BED/env"
t_assert_eq "target: its role is no superuser, wal_level = logical (its setting)" "off logical" \
    "$(q "$TARGET_URL" "SELECT current_setting('is_superuser') || ' ' || current_setting('wal_level')")"
t_assert_eq "target: ... it has REPLICATION and CREATEDB, and pg_signal_backend" "t t t" \
    "$(q "$TARGET_URL" "SELECT rolreplication || ' ' || rolcreatedb || ' ' || pg_has_role('pg_signal_backend', 'MEMBER')
                          FROM pg_roles WHERE rolname = current_user" | tr -d '\n' | sed 's/true/t/g; s/false/f/g')"
t_assert_eq "source: wal_level replica, its owner no superuser" "replica off" \
    "$(q "$SOURCE_URL" "SELECT current_setting('wal_level') || ' ' || current_setting('is_superuser')")"

setup_ok=1
for db in win wide late stuck; do "$TB" createdb "$BED" src "$db" >/dev/null || setup_ok=0; done
for db in t_win t_wide t_late t_stuck; do "$TB" createdb "$BED" dst "$db" >/dev/null || setup_ok=0; done
APP_SQL="CREATE TABLE public.kv (id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text, t timestamptz);
         CREATE TABLE public.nopk (a integer, b text);
         CREATE TABLE public.wide (id integer PRIMARY KEY, payload text);
         INSERT INTO public.kv (v, t) SELECT 'v' || i, '2024-01-01 00:00:00+00' FROM generate_series(1, 50) i;
         INSERT INTO public.nopk SELECT i, 'b' || i FROM generate_series(1, 20) i;
         INSERT INTO public.wide SELECT i, 'small ' || i FROM generate_series(1, 2000) i;"
for db in win wide late stuck; do q "$(src_url "$db")" "$APP_SQL" >/dev/null || setup_ok=0; done
if [[ $setup_ok == 1 ]]; then t_ok "setup: databases and tables"; else
    t_fail "setup" "see $WORK"
    t_summary
    exit 1
fi
if ! pgmd_start "$DMN" "pg_bindir = $TB_PGBIN"; then
    t_fail "pgmoverd starts" "see $DMN/pgmoverd.log"
    t_summary
    exit 1
fi
t_ok "pgmoverd starts"

# ---------------------------------------------------------------------------------------
echo "# 1. plan: what the rollback window needs of a role that is not a superuser"
plan=$(pgm --json plan --source "$(src_url win)" --target "$(tgt_url t_win)" 2>&1)
t_assert_eq "plan: the rollback window is possible on this target" "ok" \
    "$(jq -r '.result.findings[] | select(.check == "rollback window") | .status' <<<"$plan")"
t_assert_contains "plan: ... as a role that is not a superuser" \
    "$(jq -r '.result.findings[] | select(.check == "rollback window") | .finding' <<<"$plan")" "not a superuser"
# a table of another role on the target: the publication could not name it
tq t_late "CREATE ROLE someone_else NOLOGIN; CREATE TABLE public.theirs (id int); ALTER TABLE public.theirs OWNER TO someone_else" >/dev/null
plan=$(pgm --json plan --source "$(src_url late)" --target "$(tgt_url t_late)" 2>&1)
t_assert_eq "plan: a target table of another role is an error for the window" "error" \
    "$(jq -r '.result.findings[] | select(.check == "rollback window: table owner") | .status' <<<"$plan")"
tq t_late "DROP TABLE public.theirs" >/dev/null

# ---------------------------------------------------------------------------------------
echo "# 2. job win: writes on the target, one the source refuses, retry, rollback"
to_window win win t_win --set rollback_retained_warn=1kB
t_assert_eq "win: the publication names the tables (the role cannot publish FOR ALL TABLES)" "f 3" \
    "$(tq t_win "SELECT p.puballtables || ' ' || (SELECT count(*) FROM pg_publication_tables t WHERE t.pubname = p.pubname)
                 FROM pg_publication p WHERE pubname LIKE 'pgmover%'" | sed 's/^false/f/')"
TW=$(tgt_url t_win)
q "$TW" "INSERT INTO public.kv (v, t) SELECT 'new' || i, now() FROM generate_series(1, 30) i;
         UPDATE public.kv SET v = v || '+' WHERE id % 3 = 0;
         DELETE FROM public.kv WHERE id BETWEEN 40 AND 45;
         UPDATE public.nopk SET b = 'changed' WHERE a < 5;
         DELETE FROM public.nopk WHERE a = 20;
         INSERT INTO public.nopk VALUES (21, 'b21'), (21, 'b21')" >/dev/null
t_check "win: the target's writes reach the source" t_wait_for 30 same_rows win t_win public.kv ||
    t_detail "$(jst win '.facts.reverse')"
t_check "win: ... the key-less table too" t_wait_for 30 same_rows win t_win public.nopk
retained=$(jst win '.facts.reverse.retained_bytes')
[[ $retained =~ ^[0-9]+$ && $retained -gt 1024 ]] && t_ok "win: status shows the slot's retained WAL ($retained bytes)" ||
    t_fail "win: status shows the slot's retained WAL" "facts.reverse.retained_bytes = $retained"
t_assert_contains "win: ... with a warning over rollback_retained_warn" \
    "$(jst win '[.warnings[].message] | join(";")')" "retains more WAL on the target than rollback_retained_warn (1024 bytes)"
t_assert_contains "win: ... and the human status says it" "$(pgm status win 2>&1)" "the slot retains"
t_assert_eq "win: ... said once in the log" "1" "$(log_count "than rollback_retained_warn")"

# the apply session ended under the stream (a failover, a pooler, an operator): an
# error that passes, so retried after a pause, counted, and the stream goes on
t_assert_eq "win: the apply session is ended on the source" "t" \
    "$(sq win "SELECT bool_or(pg_terminate_backend(pid)) FROM pg_stat_activity
                WHERE datname = 'win' AND application_name LIKE '%reverse-apply%'")"
q "$TW" "INSERT INTO public.kv (v) VALUES ('after a lost session')" >/dev/null
_retried() { [[ $(jst win '.facts.reverse.retries_total // 0') -ge 1 ]] && same_rows win t_win public.kv; }
t_check "win: a lost session is retried, counted (facts.reverse.retries_total), and the stream goes on" \
    t_wait_for 30 _retried || t_detail "$(jst win '.facts.reverse')"
t_assert_eq "win: ... the job stays in the window, the error cleared" "rollback_window " \
    "$(pgmd_state win) $(jst win '.facts.reverse.error // ""')"

# a row the source lost after cutover (deleted there by hand): the target's UPDATE of it
# finds no row on the source, which no retry fixes
src_admin win "DELETE FROM public.kv WHERE id = 10" >/dev/null
q "$TW" "UPDATE public.kv SET v = 'ten' WHERE id = 10" >/dev/null
_stopped() { [[ $(pgmd_state win) == failed ]]; }
t_check "win: an UPDATE of a row the source lacks stops the stream and fails the job" t_wait_for 30 _stopped ||
    t_detail "$(fail_detail win) $(jst win '.facts.reverse')"
t_assert_contains "win: ... naming the table and the key" "$(jst win '.error.message')" \
    "update of \"public\".\"kv\" where \"id\" = '10' matched 0 row(s) on the source instead of 1"
t_assert_contains "win: ... and what to do" "$(jst win '.error.hint')" "make the source's row what the target had"
src_admin win "INSERT INTO public.kv (id, v, t) OVERRIDING SYSTEM VALUE VALUES (10, 'v10', '2024-01-01 00:00:00+00')" >/dev/null
cmd "win: retry once the source has the row again" retry win
_back() { [[ $(pgmd_state win) == rollback_window ]] && same_rows win t_win public.kv; }
t_check "win: the stream goes on, the row updated" t_wait_for 30 _back || t_detail "$(fail_detail win)"
t_assert_eq "win: ... to the target's value" "ten" "$(sq win "SELECT v FROM public.kv WHERE id = 10")"

# the source gets a unique index the target lacks; the target takes a row it refuses
src_admin win "CREATE UNIQUE INDEX kv_v_unique ON public.kv (v)" >/dev/null
t_assert_eq "win: a unique index only on the source" "1 0" \
    "$(sq win "SELECT count(*) FROM pg_indexes WHERE indexname = 'kv_v_unique'") $(tq t_win "SELECT count(*) FROM pg_indexes WHERE indexname = 'kv_v_unique'")"
q "$TW" "INSERT INTO public.kv (v) VALUES ('v1')" >/dev/null
_refused() { [[ $(pgmd_state win) == failed ]]; }
t_check "win: the refused change stops the stream and fails the job" t_wait_for 30 _refused ||
    t_detail "$(fail_detail win) $(jst win '.facts.reverse')"
msg=$(jst win '.error.message')
t_assert_contains "win: the error names the table" "$msg" "public.kv"
t_assert_contains "win: ... the reason" "$msg" "kv_v_unique"
t_assert_contains "win: ... and the key" "$(jst win '.error.detail')" "Key (v)=(v1) already exists"
t_assert_contains "win: ... and what to do" "$(jst win '.error.hint')" "pgmover retry"
t_assert_eq "win: ... not retried" "null" "$(jst win '.facts.reverse.retries')"
n1=$(log_count "kv_v_unique")
# ten seconds of watching: the old stream retried every 5 s for ever
sleep 12
n2=$(log_count "kv_v_unique")
[[ $n1 -ge 1 && $n1 -le 2 && $n2 == "$n1" ]] && t_ok "win: the log says it once ($n1 line(s)), not every few seconds" ||
    t_fail "win: the log says it once" "$n1 line(s), then $n2 after 12 s"
t_assert_eq "win: the source does not have the refused row" "1" "$(sq win "SELECT count(*) FROM public.kv WHERE v = 'v1'")"
t_assert_eq "win: the slot is still there: nothing lost" "1" \
    "$(tq postgres "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'pgmover_win'")"
src_admin win "DROP INDEX public.kv_v_unique" >/dev/null
q "$TW" "UPDATE public.kv SET v = 'after the fix' WHERE id = 2" >/dev/null
cmd "win: retry once the source's index is gone" retry win
_resumed() { [[ $(pgmd_state win) == rollback_window ]] && same_rows win t_win public.kv; }
t_check "win: the stream goes on from the refused change" t_wait_for 30 _resumed ||
    t_detail "$(fail_detail win) $(jst win '.facts.reverse')"
t_assert_eq "win: ... its error is cleared" "" "$(jst win '.facts.reverse.error // ""')"
q "$TW" "INSERT INTO public.kv (v) VALUES ('last before rollback')" >/dev/null
cmd "win: rollback" rollback win
wait_state "win: rolled_back" win rolled_back 60
compare "win" win t_win public.kv public.nopk public.wide
t_assert_eq "win: no slot, publication or progress schema left" "" "$(leftovers t_win win)"

# ---------------------------------------------------------------------------------------
echo "# 3. job wide: 2,000 rows of 100 KB updated in one target transaction"
# the source logs the statements of the apply session: their sizes are measured there
src_admin wide "ALTER ROLE app_owner IN DATABASE wide SET log_statement = 'all'" >/dev/null
to_window wide wide t_wide
TWD=$(tgt_url t_wide)
log_start=$(stat -c %s "$TB_DIR/src.log")
# the daemon's peak resident memory from here on (5 > clear_refs resets VmHWM)
echo 5 >"/proc/$PGMD_PID/clear_refs" 2>/dev/null
q "$TWD" "UPDATE public.wide SET payload = repeat(md5(id::text || 'wide'), 3200)" >/dev/null
t_assert_eq "wide: the target has 2,000 rows of 102,400 bytes" "2000 102400" \
    "$(tq t_wide "SELECT count(*) || ' ' || min(length(payload)) FROM public.wide WHERE length(payload) = 102400")"
t_check "wide: the transaction reaches the source" t_wait_for 180 same_rows wide t_wide public.wide ||
    t_detail "$(fail_detail wide) $(jst wide '.facts.reverse')"
hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$PGMD_PID/status" 2>/dev/null)
# 200 MB of changes read from the slot: each FETCH is sized to about 4 MB, not 1,000 rows (100 MB)
[[ $hwm =~ ^[0-9]+$ && $hwm -lt 131072 ]] && t_ok "wide: pgmoverd's peak memory meanwhile is $((hwm / 1024)) MB (< 128 MB)" ||
    t_fail "wide: pgmoverd's peak memory stays under 128 MB while it carries 200 MB of changes" "VmHWM: ${hwm:-?} kB"
src_admin wide "ALTER ROLE app_owner IN DATABASE wide RESET log_statement" >/dev/null
# each log record starts with the line prefix's timestamp; the DO blocks are the apply's
tail -c +"$((log_start + 1))" "$TB_DIR/src.log" >"$WORK/wide.log"
sizes=$(awk '/^[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] / { if (n) print len; n = /statement: DO / ? 1 : 0; len = 0 }
             n { len += length($0) + 1 } END { if (n) print len }' "$WORK/wide.log" | sort -n)
blocks=$(grep -c . <<<"$sizes")
largest=$(tail -1 <<<"$sizes")
[[ $blocks -ge 20 ]] && t_ok "wide: applied in $blocks DO blocks" || t_fail "wide: applied in many DO blocks" "$blocks"
[[ $largest =~ ^[0-9]+$ && $largest -lt 8388608 ]] && t_ok "wide: the largest is $largest bytes (< 8 MB)" ||
    t_fail "wide: every DO block under 8 MB" "largest: $largest"
rm -f "$WORK/wide.log"
# a CHECK constraint only the source has, and a 300 KB row that breaks it: named, with the
# failing row's start (not its 300 KB) in the error
src_admin wide "ALTER TABLE public.wide ADD CONSTRAINT wide_short CHECK (length(payload) < 200000) NOT VALID" >/dev/null
q "$TWD" "UPDATE public.wide SET payload = repeat('z', 300000) WHERE id = 7" >/dev/null
_refused_wide() { [[ $(pgmd_state wide) == failed ]]; }
t_check "wide: a row the source's CHECK refuses stops the stream" t_wait_for 60 _refused_wide ||
    t_detail "$(fail_detail wide)"
t_assert_contains "wide: the error names the table and the constraint" "$(jst wide '.error.message')" \
    'table public.wide: new row for relation "wide" violates check constraint "wide_short"'
detail=$(jst wide '.error.detail')
t_assert_contains "wide: ... the failing row's key" "$detail" "Failing row contains (7, zzz"
[[ ${#detail} -lt 1200 ]] && t_ok "wide: ... short (${#detail} characters for a 300 KB row: the server cuts values at 64 bytes)" ||
    t_fail "wide: the detail is short" "${#detail} characters"
src_admin wide "ALTER TABLE public.wide DROP CONSTRAINT wide_short" >/dev/null
cmd "wide: retry once the constraint is gone" retry wide
_resumed_wide() { [[ $(pgmd_state wide) == rollback_window ]] && same_rows wide t_wide public.wide; }
t_check "wide: the stream goes on" t_wait_for 60 _resumed_wide || t_detail "$(fail_detail wide)"
cmd "wide: rollback" rollback wide
wait_state "wide: rolled_back" wide rolled_back 120
compare "wide" wide t_wide public.wide public.kv public.nopk
t_assert_eq "wide: no slot, publication or progress schema left" "" "$(leftovers t_wide wide)"

# ---------------------------------------------------------------------------------------
echo "# 4. job late: the window's deadline"
to_window late late t_late --set rollback_window=20s
q "$(tgt_url t_late)" "INSERT INTO public.kv (v) VALUES ('in the window')" >/dev/null
t_check "late: the write reaches the source" t_wait_for 20 same_rows late t_late public.kv
wait_state "late: at the deadline the job finishes by itself" late completed 90
t_assert_contains "late: a warning says the deadline passed and rollback is gone" \
    "$(jst late '[.warnings[].message] | join(";")')" "deadline passed (rollback_window = 20000ms): finishing"
t_assert_eq "late: ... in the log, once" "1" "$(log_count "job late: the rollback window's deadline passed")"
grep -q '"event":"deadline","from":"rollback_window"' "$DMN/state/late/audit.jsonl" && t_ok "late: the deadline is in the audit log" ||
    t_fail "late: the deadline is in the audit log" "$(tail -3 "$DMN/state/late/audit.jsonl")"
t_assert_eq "late: no slot, publication or progress schema left" "" "$(leftovers t_late late)"
compare "late" late t_late public.kv public.nopk public.wide

# failed in the window when its deadline passes: said, once; the slot stays until retry
to_window stuck stuck t_stuck --set rollback_window=25s
src_admin stuck "DELETE FROM public.kv WHERE id = 10" >/dev/null
q "$(tgt_url t_stuck)" "UPDATE public.kv SET v = 'ten' WHERE id = 10" >/dev/null
wait_state "stuck: a change the source refuses fails the job in the window" stuck failed 30
_deadline_said() { [[ $(jst stuck '[.warnings[].message] | join(";")') == *"deadline passed while the job is failed"* ]]; }
t_check "stuck: at the deadline a warning says the slot stays until retry" t_wait_for 60 _deadline_said ||
    t_detail "$(jst stuck '.warnings')"
t_assert_contains "stuck: ... and the human status says what retry does" "$(pgm status stuck 2>&1)" \
    "\"pgmover retry\" resumes the window, which then finishes (no rollback)"
t_assert_eq "stuck: ... in the log, once" "1" "$(log_count "job stuck: the rollback window's deadline passed while")"
t_assert_eq "stuck: ... the slot is still on the target" "1" \
    "$(tq postgres "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'pgmover_stuck'")"
cmd "stuck: retry" retry stuck
wait_state "stuck: the window finishes at once" stuck completed 60
t_assert_eq "stuck: no slot, publication or progress schema left" "" "$(leftovers t_stuck stuck)"
# finishing does not carry what was behind: the source lacks the refused change, nothing else
compare "stuck" stuck t_stuck "(SELECT * FROM public.kv WHERE id <> 10)" public.nopk public.wide
t_assert_eq "stuck: the refused change is not on the source" "0" "$(sq stuck "SELECT count(*) FROM public.kv WHERE id = 10")"

pgmd_stop
t_assert_eq "pgmoverd stops cleanly" "0" "$?"
echo "# run time: $(($(date +%s) - T0)) s"
t_summary
