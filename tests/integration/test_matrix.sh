#!/usr/bin/env bash
# The fault matrix (README "Fault matrix"), black-box: the CLI, the documented status
# fields, SQL on both servers. pgmoverd here is built with ASan+UBSan and the fault
# injection points (PGM_MATRIX_BUILD, default build-matrix: built by this suite when
# missing); every daemon log is searched for a sanitizer report, and every daemon that
# is stopped with SIGTERM must exit 0 (LeakSanitizer runs then).
#
#   A. a full state_dir (a small tmpfs): a freeze asked for on a full disk is refused,
#      naming state.json and the system error; the disk filled while the freeze runs
#      (inside freeze_command): the read-only freeze is not made, the job fails naming
#      the file and "No space left on device"; with space again, retry reaches verified
#   B. injected faults (PGMOVER_INJECT): the save before the read-only freeze, the save
#      before cutover_command, and the save of a step's end, fail: no change made (the
#      job fails, never hangs), a clear error, retry works;
#      a child that cannot start (proc.spawn), a connection that fails (pg.connect), an
#      audit line that cannot be written (store.audit)
#   C. SIGKILL of pgmoverd in each state a dump job passes through (cutting_over twice:
#      inside cutover_command, and inside pgbouncer's PAUSE), one row of a table per
#      state: the state made to last (a lock the test holds, a hook that sleeps),
#      SIGKILL, restart, the next stable state reached, then the source and the target
#      compared by the test's own query (row counts and an md5 of the rows), and nothing
#      of pgmover's left where it should not be
#   D. restarts of the source and of the target server (pg_ctl restart -m fast, and -m
#      immediate) in the middle of the rehearsal copy, the final copy, a verification, and
#      the reverse stream's replay of a target write in the rollback window (held on a
#      lock on the source); then rollback, and the source's sequences past the rows it got
#   E. pg_terminate_backend of every pgmover session on one server at the same points
#      (the copy's, the verification's, the reverse stream's reading and applying ones)
#   F. SIGKILL of pgmoverd for a triggers job (the same bed: replica WAL, nothing preloaded)
#      in the states test_triggers leaves out: provisioning, verifying, cutting_over,
#      rollback_window, finishing, thawing, aborting, rolling_back (part C's rows and checks)
#   In D and E a copy or a verification either recovers by itself or fails once, with an
#   error naming the server, a hint, and error.source_frozen the source's real state, and
#   retry completes it; the reverse stream must recover by itself (retries counted) and
#   apply the write exactly once; both sides are then compared by the test's own query.
#
#   bash tests/integration/test_matrix.sh          (as root: it mounts a tmpfs)
# PGM_TEST_KEEP=1 keeps the work directory; PGM_MATRIX_PARTS="B C" runs some parts only.
set -uo pipefail # no -e: each check reports and the summary decides the exit status

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TB=$ROOT/tests/testbed/testbed.sh
# shellcheck source=tests/integration/lib.sh
. "$HERE/lib.sh"
# shellcheck source=tests/integration/pgmd.sh
. "$HERE/pgmd.sh"
# shellcheck source=tests/integration/jobs.sh
. "$HERE/jobs.sh"
# shellcheck source=tests/integration/pgb.sh
. "$HERE/pgb.sh"

[[ $(id -u) -eq 0 ]] || t_skip test_matrix "needs root (mount -t tmpfs)"
t_need_server test_matrix
t_need_cmd test_matrix "$PGBOUNCER"

# the daemon under test: ASan + UBSan + injection points, its own build directory
MATRIX_BUILD=${PGM_MATRIX_BUILD:-$ROOT/build-matrix}
if [[ ! -f $MATRIX_BUILD/build.ninja ]]; then
    meson setup "$MATRIX_BUILD" "$ROOT" -Db_sanitize=address,undefined -Db_lundef=false --buildtype=debug \
        -Dinjection_points=true -Dtests=false >/tmp/pgm-matrix-setup.log 2>&1 ||
        { cat /tmp/pgm-matrix-setup.log; t_fail "build-matrix" "meson setup failed"; t_summary; exit 1; }
fi
if ! ninja -C "$MATRIX_BUILD" pgmoverd pgmover >/tmp/pgm-matrix-build.log 2>&1; then
    cat /tmp/pgm-matrix-build.log
    t_fail "build-matrix" "ninja failed"
    t_summary
    exit 1
fi
PGM_BUILD=$MATRIX_BUILD
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

WORK=$(t_tmpdir) || exit 1
BED=$WORK/bed
TMPFS=$WORK/tmpfs
HOOK=$WORK/hook.sh
HOOKS_LOG=$WORK/hooks.log
DA=$WORK/daemon-a # the daemon of each part
DB=$WORK/daemon-b
DC=$WORK/daemon-c
DD=$WORK/daemon-d
DE=$WORK/daemon-e
DF=$WORK/daemon-f
PGB=$WORK/pgb # pgbouncer, for the row killed inside its PAUSE
T0=$SECONDS

kill_leftovers() {
    local pids
    pids=$(pgrep -f -- "(pg_dump|pg_restore|pgmoverd|hook\.sh).*$WORK/" 2>/dev/null) || return 0
    # shellcheck disable=SC2086
    [[ -n $pids ]] && kill -9 $pids 2>/dev/null
    return 0
}
cleanup() {
    local name
    for name in "${!HOLD_PID[@]}"; do release "$name"; done
    pgmd_cleanup
    pgb_stop
    kill_leftovers
    mountpoint -q "$TMPFS" && umount -l "$TMPFS"
    t_bed_remove "$WORK" "$BED"
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------
# helpers

# a hook: logs "start NAME" and "end NAME" around a sleep; its command line names WORK
cat >"$HOOK" <<'EOF'
#!/bin/sh
echo "start $1" >>"$(dirname "$0")/hooks.log"
sleep "$2"
echo "end $1" >>"$(dirname "$0")/hooks.log"
EOF
chmod 755 "$HOOK"
: >"$HOOKS_LOG"
hook_starts() { grep -c "^start $1\$" "$HOOKS_LOG"; }

# sig SIDE DB: per table "name count md5" of its rows in key order: the test's own
# comparison, independent of pgmover's verification
SIG_SQL="SELECT string_agg(x, ' ' ORDER BY x) FROM (
  SELECT 'items=' || count(*) || ':' || md5(coalesce(string_agg(id || '/' || v || '/' || n::text || '/' ||
         extract(epoch FROM at)::text, ',' ORDER BY id), '')) AS x FROM public.items
  UNION ALL
  SELECT 'write_probe=' || count(*) || ':' || md5(coalesce(string_agg(id || '/' || note, ',' ORDER BY id), ''))
    FROM public.write_probe) s"
sig() { if [[ $1 == src ]]; then sq "$2" "$SIG_SQL"; else tq "$2" "$SIG_SQL"; fi; }
# compare NAME SRCDB DSTDB: the target has exactly the source's rows
compare() {
    local s d
    s=$(sig src "$2")
    d=$(sig dst "$3")
    if [[ $s == "$d" && $s == items=*:* ]]; then t_ok "$1: source and target rows equal ($s)"; else
        t_fail "$1: source and target rows equal" "source [$s], target [$d]"
    fi
}

# pgmover's sessions on a server (application_name pgmover:JOB:...)
sessions_of() { # SIDE JOB
    local sql="SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'pgmover:$2:%'"
    if [[ $1 == src ]]; then sq postgres "$sql"; else tq postgres "$sql"; fi
}
copy_tools() { pgrep -f -- "(pg_dump|pg_restore).*$WORK/" 2>/dev/null | wc -l; }

# _carried JOB: the source has the target's rows (of job JOB's databases JOB and t_JOB)
_carried() { [[ $(sig src "$1") == "$(sig dst "t_$1")" ]]; }
# a lock of the source's large objects: the preflight counts them, verifying compares them
hold_lo() { hold lo src "$1" "LOCK TABLE pg_catalog.pg_largeobject_metadata IN ACCESS EXCLUSIVE MODE"; }
# in_state_and JOB STATE CMD...: the job is in STATE and CMD succeeds
in_state_and() {
    local job=$1 want=$2
    shift 2
    [[ $(pgmd_state "$job") == "$want" ]] && "$@"
}
hook_running() { [[ $(hook_starts "$1") -gt $2 ]] && pgrep -f -- "$HOOK $1" >/dev/null; }

# a daemon log with a sanitizer report in it
sanitizer_report() { grep -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: (Address|Undefined|Leak)' "$1"; }
check_sanitizers() { # NAME LOG
    local r
    r=$(sanitizer_report "$2" | head -5)
    if [[ -z $r ]]; then t_ok "$1: no sanitizer report in the daemon's log"; else
        t_fail "$1: no sanitizer report in the daemon's log" "$r"
    fi
}
# stop_daemon NAME: SIGTERM, exit status 0 (LeakSanitizer found nothing), log clean
stop_daemon() {
    local rc
    pgmd_stop
    rc=$?
    t_assert_eq "$1: pgmoverd exits 0 on SIGTERM (no leak found)" "0" "$rc"
    check_sanitizers "$1" "$PGMD_DIR/pgmoverd.log"
}
kill9() { # NAME: SIGKILL, then no copy tool of the daemon may be left
    pgmd_kill9
    sleep 0.3
    t_assert_eq "$1: no pg_dump/pg_restore outlives the killed daemon" "0" "$(copy_tools)"
}

# ---------------------------------------------------------------------------------------
# the bed: a Heroku-like source (replica WAL, no pglogical), a target whose role is no
# superuser; one source and target database per job

export TB_SOURCE_WAL_LEVEL=replica TB_SOURCE_PRELOAD= TB_TARGET_ROLE=owner
if ! "$TB" start "$BED" >"$WORK/testbed.log" 2>&1; then
    cat "$WORK/testbed.log" >&2
    t_fail "testbed" "could not start the test bed"
    t_summary
    exit 1
fi
# shellcheck source=/dev/null
. "$BED/env"

BIG_ROWS=${PGM_MATRIX_BIG_ROWS:-600000}
DBS=(full inj m1 m2 m3 m4 r1 k1 tg1 tg2 tg3 tg4)
setup_ok=1
for db in "${DBS[@]}"; do
    "$TB" createdb "$BED" src "$db" >/dev/null || setup_ok=0
    "$TB" createdb "$BED" dst "t_$db" >/dev/null || setup_ok=0
    q "$(src_url "$db")" "CREATE TABLE public.items (id integer PRIMARY KEY, v text NOT NULL, n numeric, at timestamptz);
        INSERT INTO public.items SELECT i, md5(i::text), i / 7.0, '2026-01-01'::timestamptz + i * interval '1 minute'
          FROM generate_series(1, 20000) i;
        CREATE TABLE public.write_probe (id serial PRIMARY KEY, note text NOT NULL);
        INSERT INTO public.write_probe (note) VALUES ('before')" >/dev/null || setup_ok=0
done
# parts D and E copy a table big enough for a copy to be caught in its middle
for db in r1 k1; do
    q "$(src_url "$db")" "CREATE TABLE public.big (id integer PRIMARY KEY, v text NOT NULL);
        INSERT INTO public.big SELECT i, md5(i::text) FROM generate_series(1, $BIG_ROWS) i" >/dev/null || setup_ok=0
done
if [[ $setup_ok == 1 ]]; then t_ok "setup: databases loaded"; else
    t_fail "setup" "creating or loading databases failed"
    t_summary
    exit 1
fi

# ---------------------------------------------------------------------------------------
# PGM_MATRIX_PARTS="A C" runs some parts only (default: all)
part() { [[ " ${PGM_MATRIX_PARTS:-A B C D E F} " == *" $1 "* ]]; }

if part A; then
echo "# A. a full state_dir (tmpfs)"
mkdir -p "$TMPFS"
if mount -t tmpfs -o size=4m,mode=0700 pgm-matrix "$TMPFS"; then
    t_ok "A: a 4 MB tmpfs for state_dir"
else
    t_fail "A: a 4 MB tmpfs for state_dir" "mount failed"
fi
mkdir -p "$DA"
printf 'socket_path = %s\nstate_dir = %s\nlog_level = debug\npg_bindir = %s\n' "$DA/sock" "$TMPFS/state" "$TB_PGBIN" \
    >"$DA/pgmoverd.conf"
t_check "A: pgmoverd starts (state_dir on the tmpfs)" pgmd_start "$DA"
fill_disk() { dd if=/dev/zero of="$TMPFS/fill" bs=4k 2>/dev/null; sync; }
cmd "A: create" create full --source "$(src_url full)" --target "$(tgt_url t_full)" --method dump \
    --set freeze_mode=both --set freeze_command="$HOOK full-freeze 3" --set thaw_command="$HOOK full-thaw 0"
cmd "A: start" start full
wait_state "A: synced" full synced 120

# 1. the disk full before the freeze: the command is refused, nothing changes
fill_disk
t_check "A: the tmpfs is full" test "$(df --output=avail "$TMPFS" | tail -1 | tr -d ' ')" -eq 0
out=$(pgm freeze full 2>&1)
rc=$?
t_assert_eq "A: freeze on a full disk is refused (exit 1)" "1" "$rc"
t_assert_contains "A: ... naming state.json" "$out" "$TMPFS/state/full/state.json"
t_assert_contains "A: ... and the system's reason" "$out" "No space left on device"
t_assert_eq "A: the job stays synced" "synced" "$(pgmd_state full)"
t_assert_eq "A: freeze_command did not run" "0" "$(hook_starts full-freeze)"
assert_writable "A: refused freeze" full
rm -f "$TMPFS/fill"

# 2. the disk fills while the freeze runs (inside freeze_command): the read-only freeze,
# recorded first, cannot be recorded, so it is not made
cmd "A: freeze (space again)" freeze full
t_check "A: freeze_command runs" t_wait_for 30 hook_running full-freeze 0
fill_disk
wait_state "A: the job fails" full failed 60
msg=$(jst full '.error.message // ""')
t_assert_contains "A: the error names state.json" "$msg" "$TMPFS/state/full/state.json"
t_assert_contains "A: ... and says no space" "$msg" "No space left on device"
t_assert_contains "A: ... and what was not done" "$msg" "so it was not done"
t_assert_contains "A: the hint says what to do" "$(jst full '.error.hint // ""')" "free space in state_dir"
t_assert_contains "A: a warning says the failure itself is not saved" \
    "$(jst full '[.warnings[].message] | join(";")')" "the failure could not be saved"
assert_writable "A: full disk in the freeze" full
rm -f "$TMPFS/fill"
cmd "A: retry (space again)" retry full
wait_state "A: verified after the retry" full verified 120
assert_frozen "A: verified" full
compare "A: verified" full t_full
cmd "A: abort" abort full
wait_state "A: aborted" full aborted 60
assert_writable "A: aborted" full
stop_daemon "A"
umount "$TMPFS" 2>/dev/null
fi

# ---------------------------------------------------------------------------------------
if part B; then
echo "# B. injected faults (PGMOVER_INJECT)"
# start_injected SPEC: (re)start the daemon of part B with PGMOVER_INJECT=SPEC
start_injected() {
    [[ -n ${PGMD_PID:-} ]] && pgmd_stop
    PGMOVER_INJECT=$1 pgmd_start "$DB" "pg_bindir = $TB_PGBIN"
}
t_check "B: pgmoverd starts" start_injected ""
cmd "B: create" create inj --source "$(src_url inj)" --target "$(tgt_url t_inj)" --method dump \
    --set cutover_command="$HOOK inj-cutover 0" --set rollback_window=0
cmd "B: start" start inj
wait_state "B: synced" inj synced 120

# the save before the read-only freeze: hit 1 is freeze's transition, hit 2 the record of
# the database setting (the error message proves which one failed)
t_check "B: pgmoverd restarts with store.save:2" start_injected store.save:2
cmd "B: freeze" freeze inj
wait_state "B: the freeze fails" inj failed 60
t_assert_contains "B: store.save: the error says the freeze was not made" "$(jst inj '.error.message // ""')" \
    "what the read-only freeze of the source will change, so it was not done"
t_assert_contains "B: store.save: ... naming state.json and the error" "$(jst inj '.error.message // ""')" \
    "state.json\": No space left on device"
assert_writable "B: store.save before the freeze" inj
t_assert_contains "B: the daemon's log says which injection point fired" "$(cat "$DB/pgmoverd.log")" \
    'injection point "store.save": hit 2: fails'
cmd "B: retry" retry inj
wait_state "B: verified after the retry" inj verified 120
assert_frozen "B: verified" inj

# the end of a step that cannot be recorded: verify's transition is hit 1, its two
# checkpoints 2 and 3, verifying -> verified hit 4. The job fails (it does not sit in
# verifying with no step running); retry runs the verification again
t_check "B: pgmoverd restarts with store.save:4" start_injected store.save:4
cmd "B: verify" verify inj
wait_state "B: the unrecorded end fails the job" inj failed 60
t_assert_contains "B: store.save: the error says the step's end was not recorded" \
    "$(jst inj '.error.message // ""')" "step verify ended, but that could not be recorded"
cmd "B: retry the verification" retry inj
wait_state "B: verified again" inj verified 120

# the save before cutover_command: hit 1 is cutover's transition, 2 the sequences stage
# done, 3 the hook's start (the message proves it); proc.spawn:1 is then the hook's
# child in the retry
t_check "B: pgmoverd restarts with store.save:3 and proc.spawn:1" start_injected store.save:3,proc.spawn:1
cmd "B: cutover" cutover inj
wait_state "B: the cutover fails" inj failed 60
msg=$(jst inj '.error.message // ""')
if [[ $msg == *"what cutover_command will change, so it was not done"* ]]; then
    t_ok "B: store.save: the cutover stops before cutover_command"
else
    # the first save of the cutover that failed is the one the flow reached: say which
    t_fail "B: store.save: the cutover stops before cutover_command" "$msg"
fi
t_assert_eq "B: cutover_command did not run" "0" "$(hook_starts inj-cutover)"
t_assert_eq "B: traffic did not move" "null" "$(jst inj '.facts.traffic_moved_at // null')"
t_assert_eq "B: no reverse slot or publication left" "" "$(target_leftovers t_inj)"
assert_frozen "B: failed cutover" inj
# proc.spawn:1 is the hook's child: the retry cannot start it
cmd "B: retry" retry inj
wait_state "B: the hook cannot start" inj failed 60
t_assert_contains "B: proc.spawn: the error names the hook and the cause" "$(jst inj '.error | tostring')" \
    'injection point \"proc.spawn\"'
t_assert_eq "B: proc.spawn: traffic did not move" "null" "$(jst inj '.facts.traffic_moved_at // null')"
cmd "B: retry again" retry inj
wait_state "B: cut over (no window: completed)" inj completed 120
t_assert_eq "B: cutover_command ran once" "1" "$(hook_starts inj-cutover)"
compare "B: completed" inj t_inj
t_assert_eq "B: no reverse slot or publication left" "" "$(target_leftovers t_inj)"
t_assert_eq "B: no pgmover schema left on the source" "" "$(source_leftovers inj)"

# store.audit and pg.connect: a job whose provisioning cannot connect
# the audit line of hit 1 is the completed job's "resume"; hit 2 is the create's
t_check "B: pgmoverd restarts with store.audit:2 and pg.connect:1" start_injected store.audit:2,pg.connect:1
cmd "B: create a second job" create inj2 --source "$(src_url inj)" --target "$(tgt_url t_inj)" --method dump
t_assert_contains "B: store.audit: the lost audit line is a warning naming the file" \
    "$(jst inj2 '[.warnings[].message] | join(";")')" "inj2/audit.jsonl\" could not be written"
t_assert_contains "B: store.audit: ... and the daemon's log keeps the line" "$(cat "$DB/pgmoverd.log")" \
    '"command":"create"'
cmd "B: start the second job" start inj2
wait_state "B: pg.connect: it fails" inj2 failed 60
t_assert_contains "B: pg.connect: the error says the connection failed" "$(jst inj2 '.error.message // ""')" \
    'injection point "pg.connect"'
cmd "B: abort the second job" abort inj2
wait_state "B: aborted" inj2 aborted 60
stop_daemon "B"
fi

# ---------------------------------------------------------------------------------------
# the rows of parts C and F (SIGKILL in a state): the holds, the checks, the loop
hold_catalog() { hold cat dst "$1" "LOCK TABLE pg_catalog.pg_class IN SHARE MODE"; }
# provisioning goes on, and the copy that follows waits: the next row kills it there
lo_then_catalog() {
    hold_catalog "$1"
    release lo
}
hold_progress() {
    local t
    t=$(sq "$1" "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname LIKE 'pgmover%' LIMIT 1")
    hold prog src "$1" "SELECT count(*) FROM $t"
}
# the triggers job of part F's verifying row is synced: freeze it (to verified), then hold
freeze_and_hold_lo() {
    pgm freeze "$1" >/dev/null && t_wait_for 120 _state_or_failed "$1" verified &&
        [[ $(pgmd_state "$1") == verified ]] && hold_lo "$1"
}
hold_target_read() { hold tgt dst "$1" "SELECT count(*) FROM public.items"; }

row_synced() { # the rehearsal copy is the source's rows; the source takes writes
    compare "$ROW" "$1" "t_$1"
    t_assert_eq "$ROW: the source is not frozen" "" "$(ro_setting "$1")"
}
row_frozen() { # frozen and verified: the final copy is exact
    assert_frozen "$ROW" "$1"
    compare "$ROW" "$1" "t_$1"
    t_assert_eq "$ROW: pgmover's verification agrees" "true" "$(jst "$1" '.verify.ok')"
}
row_window() { # a write on the target comes back to the frozen source
    assert_frozen "$ROW" "$1"
    q "$(tgt_url "t_$1")" "INSERT INTO public.write_probe (note) VALUES ('$ROW'); UPDATE public.items SET v = 'w' || id WHERE id % 997 = 0" >/dev/null
    t_check "$ROW: a write on the target is carried back to the source" t_wait_for 60 _carried "$1" ||
        t_detail "$(jst "$1" '.facts.reverse')"
    compare "$ROW" "$1" "t_$1"
}
row_completed() {
    compare "$ROW" "$1" "t_$1"
    t_assert_eq "$ROW: no slot or publication left on the target" "" "$(target_leftovers "t_$1")"
    t_assert_eq "$ROW: no pgmover schema left on the source" "" "$(source_leftovers "$1")"
    assert_frozen "$ROW" "$1"
}
row_thawed() {
    compare "$ROW" "$1" "t_$1"
    assert_writable "$ROW" "$1"
}
row_aborted() {
    assert_writable "$ROW" "$1"
    t_assert_eq "$ROW: the target holds none of the copy" "" \
        "$(tq "t_$1" "SELECT string_agg(relname, ',') FROM pg_class WHERE relnamespace = 'public'::regnamespace")"
    t_assert_eq "$ROW: no pgmover schema left on the source" "" "$(source_leftovers "$1")"
}

# inside the PAUSE: the hook runs and pgbouncer says the entry is paused
paused_in_hook() { hook_running m4-cutover 0 && [[ $(pgb_entry) == "127.0.0.1:$SOURCE_PORT 1" ]]; }
row_pgbouncer() { # traffic through pgbouncer reaches the target, not paused; a write there comes back
    t_assert_eq "$ROW: pgbouncer sends m4 to the target, resumed" "127.0.0.1:$TARGET_PORT 0" "$(pgb_entry)"
    t_assert_eq "$ROW: a query through pgbouncer is answered by the target" "$TARGET_PORT" \
        "$("$TB_PGBIN/psql" "$BOUNCER_URL" -X -q -tA -c "SHOW port" 2>&1)"
    row_window "$1"
}
row_rolled_back() { # the target's writes are on the source, which takes writes again; the target is frozen
    compare "$ROW" "$1" "t_$1"
    t_assert_eq "$ROW: the write made on the target is on the source" "1" \
        "$(sq "$1" "SELECT count(*) FROM public.write_probe WHERE note = 'written on the target'")"
    assert_writable "$ROW" "$1"
    t_assert_contains "$ROW: the target refuses writes (psql)" \
        "$(q "$(tgt_url "t_$1")" "INSERT INTO public.write_probe (note) VALUES ('after the rollback')")" \
        "read-only transaction"
    t_assert_eq "$ROW: no slot or publication left on the target" "" "$(target_leftovers "t_$1")"
    t_assert_eq "$ROW: no pgmover schema left on the source" "" "$(source_leftovers "$1")"
}

# run_rows DIR: each row of ROWS (see part C) with the daemon of DIR: hold, enter, SIGKILL,
# restart, release, the next state, the checks
run_rows() {
    for row in "${ROWS[@]}"; do
        IFS='|' read -r ROW job holdcmd command state heldcmd releasecmd next checkcmd <<<"$row"
        echo "# row: $ROW"
        t0=$SECONDS
        $holdcmd || t_fail "$ROW: hold the state" "$holdcmd failed"
        [[ $command == - ]] || cmd "$ROW: $command" "$command" "$job"
        # shellcheck disable=SC2086
        if t_wait_for 120 in_state_and "$job" "$state" $heldcmd; then
            t_ok "$ROW: the job is held in $state"
        else
            t_fail "$ROW: the job is held in $state" "$(fail_detail "$job")"
        fi
        kill9 "$ROW"
        t_check "$ROW: pgmoverd restarts after SIGKILL" pgmd_start "$1" || t_detail "$(tail -5 "$1/pgmoverd.log")"
        t_assert_eq "$ROW: still $state after the restart" "$state" "$(pgmd_state "$job")"
        $releasecmd
        wait_state "$ROW: reaches $next" "$job" "$next" 180
        $checkcmd
        echo "# row $ROW: $((SECONDS - t0)) s"
    done
}

# ---------------------------------------------------------------------------------------
if part C; then
echo "# C. SIGKILL in each state"
# pgbouncer (transaction pooling) in front of m4's source, its entry in a file pgmover owns
if pgb_start "$PGB" m4; then t_ok "C: pgbouncer starts"; else t_fail "C: pgbouncer starts" "see $PGB/pgbouncer.log"; fi

t_check "C: pgmoverd starts" pgmd_start "$DC" "pg_bindir = $TB_PGBIN"
cmd "C: create m1" create m1 --source "$(src_url m1)" --target "$(tgt_url t_m1)" --method dump \
    --set freeze_mode=both --set freeze_command="$HOOK m1-freeze 3" --set thaw_command="$HOOK m1-thaw 0" \
    --set cutover_command="$HOOK m1-cutover 5"
cmd "C: create m2" create m2 --source "$(src_url m2)" --target "$(tgt_url t_m2)" --method dump \
    --set freeze_mode=both --set freeze_command="$HOOK m2-freeze 0" --set thaw_command="$HOOK m2-thaw 3"
cmd "C: create m3" create m3 --source "$(src_url m3)" --target "$(tgt_url t_m3)" --method dump \
    --set cutover_command="$HOOK m3-cutover 0" --set rollback_command="$HOOK m3-rollback 3"
cmd "C: create m4" create m4 --source "$(src_url m4)" --target "$(tgt_url t_m4)" --method dump \
    --set pgbouncer_admin="$ADMIN_URL" --set pgbouncer_database=m4 --set pgbouncer_include="$PGB_INCLUDE" \
    --set cutover_command="$HOOK m4-cutover 5"
for j in m2 m3 m4; do cmd "C: $j start" start $j; done
for j in m2 m3 m4; do wait_state "C: $j synced" $j synced 120; done
for j in m2 m3 m4; do cmd "C: $j freeze" freeze $j; done
for j in m2 m3 m4; do wait_state "C: $j verified" $j verified 120; done
t_assert_eq "C: pgbouncer sends m4 to the source" "127.0.0.1:$SOURCE_PORT 0" "$(pgb_entry)"
cmd "C: m3 cutover" cutover m3
wait_state "C: m3 rollback_window" m3 rollback_window 60
# a write on the target during the window, which the rollback must bring back
q "$(tgt_url t_m3)" "INSERT INTO public.write_probe (note) VALUES ('written on the target'); DELETE FROM public.items WHERE id <= 10" >/dev/null

# Each row: the job, what holds the state, the command that enters it ("-": none, the
# job gets there by itself), the state killed in, what shows the step is held there,
# what lets it go after the restart, the state next (stable, but for provisioning, whose
# row hands the job on to the next, held in syncing), and the checks at the end.
# A "lock" is a superuser session holding a lock pgmover's step must wait for:
#   provisioning: pg_largeobject_metadata of the source (the preflight counts large
#                 objects); the same lock makes verifying wait (it compares them)
#   syncing:      SHARE on the target's pg_class (the restore cannot create a table)
#   finishing:    a read of the source's progress table (its DROP SCHEMA waits)
#   aborting:     a read of the target's copy (its clean waits)
ROWS=(
    "provisioning|m1|hold_lo m1|start|provisioning|waiting_on_lock src m1|lo_then_catalog t_m1|syncing|:"
    "syncing|m1|:|-|syncing|waiting_on_lock dst t_m1|release cat|synced|row_synced m1"
    "freezing (in freeze_command)|m1|:|freeze|freezing|hook_running m1-freeze 0|:|verified|row_frozen m1"
    "verifying|m1|hold_lo m1|verify|verifying|waiting_on_lock src m1|release lo|verified|row_frozen m1"
    "cutting_over (in cutover_command)|m1|:|cutover|cutting_over|hook_running m1-cutover 0|:|rollback_window|row_window m1"
    "rollback_window|m1|:|-|rollback_window|:|:|rollback_window|row_window m1"
    "finishing|m1|hold_progress m1|finish|finishing|waiting_on_lock src m1|release prog|completed|row_completed m1"
    "thawing (in thaw_command)|m2|:|thaw|thawing|hook_running m2-thaw 0|:|synced|row_thawed m2"
    "aborting|m2|hold_target_read t_m2|abort|aborting|waiting_on_lock dst t_m2|release tgt|aborted|row_aborted m2"
    "cutting_over (in the pgbouncer PAUSE)|m4|:|cutover|cutting_over|paused_in_hook|:|rollback_window|row_pgbouncer m4"
    "rolling_back (in rollback_command)|m3|:|rollback|rolling_back|hook_running m3-rollback 0|:|rolled_back|row_rolled_back m3"
)
run_rows "$DC"
t_assert_eq "C: freeze_command ran again after the kill inside it" "2" "$(hook_starts m1-freeze)"
t_assert_eq "C: cutover_command ran again after the kill inside it" "2" "$(hook_starts m1-cutover)"
t_assert_eq "C: rollback_command ran again after the kill inside it" "2" "$(hook_starts m3-rollback)"
t_check "C: no hook left running" t_wait_for 20 eval "! pgrep -f -- '$HOOK' >/dev/null"
t_assert_eq "C: cutover_command ran again after the kill inside the PAUSE" "2" "$(hook_starts m4-cutover)"
t_assert_eq "C: no pgmover session left on the source" "0 0 0" "$(sessions_of src m1) $(sessions_of src m2) $(sessions_of src m3)"
t_assert_eq "C: no pgmover session left on the target" "0 0 0" "$(sessions_of dst m1) $(sessions_of dst m2) $(sessions_of dst m3)"
stop_daemon "C"
fi
# ---------------------------------------------------------------------------------------
# parts D and E share these: a fault mid-copy, mid-verify, mid-replay, then the outcome

# copying_big JOB DB: a COPY of pgmover's into the target's public.big has moved rows
copying_big() {
    local n
    n=$(tq "$2" "SELECT count(*) FROM pg_stat_progress_copy p JOIN pg_stat_activity a USING (pid)
                 WHERE p.relid = to_regclass('public.big') AND a.application_name LIKE 'pgmover:$1:%'
                   AND p.tuples_processed > 0")
    [[ $n =~ ^[0-9]+$ && $n -gt 0 ]]
}
# compare_big NAME SRCDB DSTDB: public.big, by the test's own query, on both sides
BIG_SQL="SELECT count(*) || ':' || md5(coalesce(string_agg(id || '/' || v, ',' ORDER BY id), '')) FROM public.big"
compare_big() {
    local s d
    s=$(sq "$2" "$BIG_SQL")
    d=$(tq "$3" "$BIG_SQL")
    if [[ $s == "$d" && $s == "$BIG_ROWS:"* ]]; then t_ok "$1: public.big equal on both sides ($s)"; else
        t_fail "$1: public.big equal on both sides" "source [$s], target [$d]"
    fi
}
# server_ctl SIDE ACTION [MODE]: pg_ctl ACTION (start, stop, restart; -m MODE, default
# fast) of the source (src) or the target (dst); restart_server SIDE MODE
server_ctl() {
    (cd / && runuser -u postgres -- "$TB_PGBIN/pg_ctl" -D "$BED/$1" -l "$BED/$1.log" -m "${3:-fast}" -w -t 60 -s \
        "$2") >>"$WORK/pg_ctl.log" 2>&1
}
restart_server() { server_ctl "$1" restart "$2"; }
# terminate SIDE JOB: pg_terminate_backend of every session of the job's on one server
terminate() {
    local sql="SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name LIKE 'pgmover:$2:%'"
    if [[ $1 == src ]]; then sq postgres "$sql"; else tq postgres "$sql"; fi
}
# the sessions of a job's, by application_name, for the log
session_names() { # SIDE JOB
    local sql="SELECT coalesce(string_agg(application_name || '(' || coalesce(state, '') || ')', ' '), 'none')
               FROM pg_stat_activity WHERE application_name LIKE 'pgmover:$2:%'"
    if [[ $1 == src ]]; then sq postgres "$sql"; else tq postgres "$sql"; fi
}
side_word() { if [[ $1 == src ]]; then echo source; else echo target; fi; }
# outcome ROW JOB NEXT SIDE: after a fault on SIDE the job reaches NEXT by itself, or fails
# once with an error that names the server and a hint, and `retry` reaches NEXT
outcome() {
    local row=$1 job=$2 next=$3 word msg hint frozen
    word=$(side_word "$4")
    t_wait_for 180 _state_or_failed "$job" "$next"
    if [[ $(pgmd_state "$job") == failed ]]; then
        msg=$(jst "$job" '.error.message // ""')
        hint=$(jst "$job" '.error.hint // ""')
        echo "# $row: failed: $msg (hint: $hint)"
        t_assert_contains "$row: the error names the $word" "$msg" "$word"
        t_check "$row: the error has a hint" test -n "$hint"
        # the freeze the error reports is the source's: frozen (a read-only default) or not
        if [[ -n $(ro_setting "$job") ]]; then frozen=true; else frozen=false; fi
        t_assert_eq "$row: error.source_frozen is the source's state" "$frozen" "$(jst "$job" '.error.source_frozen')"
        cmd "$row: retry" retry "$job"
        wait_state "$row: reaches $next after the retry" "$job" "$next" 180
    else
        echo "# $row: recovered by itself"
        wait_state "$row: reaches $next by itself" "$job" "$next" 1
    fi
}
hold_apply() { hold apply src "$1" "LOCK TABLE public.items IN SHARE MODE"; }
hold_items_dst() { hold titems dst "$1" "LOCK TABLE public.items IN ACCESS EXCLUSIVE MODE"; }
# target_write JOB NOTE: a write on the target during the window (an UPDATE, an INSERT)
target_write() {
    q "$(tgt_url "t_$1")" "INSERT INTO public.write_probe (note) VALUES ('$2');
        UPDATE public.items SET v = '$2' || id WHERE id % 1009 = 0" >/dev/null
}
retries_total() { jst "$1" '.facts.reverse.retries_total // 0'; }
# mid_copy ROW JOB COMMAND NEXT SIDE FAULT...: COMMAND (start, freeze) copies; once
# rows flow into the target's public.big, FAULT; then the outcome
mid_copy() {
    local row=$1 job=$2 command=$3 next=$4 side=$5
    shift 5
    echo "# row: $row"
    cmd "$row: $command" "$command" "$job"
    if t_wait_for 120 copying_big "$job" "t_$job"; then t_ok "$row: caught copying public.big"; else
        t_fail "$row: caught copying public.big" "$(fail_detail "$job")"
    fi
    echo "# $row: sessions: source $(session_names src "$job"); target $(session_names dst "$job")"
    "$@"
    outcome "$row" "$job" "$next" "$side"
    compare "$row" "$job" "t_$job"
    compare_big "$row" "$job" "t_$job"
}
# mid_verify ROW JOB SIDE HOLD RELEASE FAULT...: verify, held on a lock; FAULT; release
mid_verify() {
    local row=$1 job=$2 side=$3 holdcmd=$4 rel=$5 db
    shift 5
    echo "# row: $row"
    if [[ $side == src ]]; then db=$job; else db=t_$job; fi
    $holdcmd "$db" || t_fail "$row: hold the verification" "$holdcmd failed"
    cmd "$row: verify" verify "$job"
    if t_wait_for 120 in_state_and "$job" verifying waiting_on_lock "$side" "$db"; then
        t_ok "$row: the verification waits on the $(side_word "$side")"
    else
        t_fail "$row: the verification waits on the $(side_word "$side")" "$(fail_detail "$job")"
    fi
    "$@"
    release "$rel"
    outcome "$row" "$job" verified "$side"
    t_assert_eq "$row: pgmover's verification agrees" "true" "$(jst "$job" '.verify.ok')"
    assert_frozen "$row" "$job"
    compare "$row" "$job" "t_$job"
}
# mid_replay ROW JOB FAULT...: a target write whose replay on the source waits on a lock;
# FAULT; the lock released, the stream must carry the write by itself (retries), exactly once
mid_replay() {
    local row=$1 job=$2 before
    shift 2
    echo "# row: $row"
    before=$(retries_total "$job")
    hold_apply "$job" || t_fail "$row: hold the replay" "hold_apply failed"
    target_write "$job" "$row"
    if t_wait_for 60 waiting_on_lock src "$job"; then t_ok "$row: the replay waits on the source"; else
        t_fail "$row: the replay waits on the source" "$(jst "$job" '.facts.reverse')"
    fi
    "$@"
    release apply
    t_check "$row: the write is carried to the source" t_wait_for 120 _carried "$job" ||
        t_detail "$(jst "$job" '.facts.reverse')"
    t_assert_eq "$row: still in the window (the stream recovers by itself)" "rollback_window" "$(pgmd_state "$job")"
    # a restart ends the lock's holder too: the apply may take the lock and commit before its
    # own session ends, and the stream then finds the dead session at its next apply; the
    # sessions ended by pg_terminate_backend (part E) are pgmover's only, so the apply was
    # waiting when its session died and the stream must have retried
    if [[ $REPLAY_RETRY_SURE == 1 ]]; then
        t_check "$row: the stream saw the error and retried" test "$(retries_total "$job")" -gt "$before"
    else
        echo "# $row: the stream retried $(($(retries_total "$job") - before)) time(s)"
    fi
    t_assert_eq "$row: the write is on the source once" "1" \
        "$(sq "$job" "SELECT count(*) FROM public.write_probe WHERE note = '$row'")"
    assert_frozen "$row" "$job"
    compare "$row" "$job" "t_$job"
}
# the source's sequence of write_probe is past every id (the rows the stream brought)
seq_ok() { # NAME DB
    t_assert_eq "$1: the source's sequence is past every row's id" "t" \
        "$(sq "$2" "SELECT last_value >= (SELECT max(id) FROM public.write_probe) FROM public.write_probe_id_seq")"
}
part_end() { # NAME JOB
    t_assert_eq "$1: no pgmover session left on the source" "0" "$(sessions_of src "$2")"
    t_assert_eq "$1: no pgmover session left on the target" "0" "$(sessions_of dst "$2")"
    t_assert_eq "$1: no slot or publication left on the target" "" "$(target_leftovers "t_$2")"
    t_assert_eq "$1: no pgmover schema left on the source" "" "$(source_leftovers "$2")"
}

# to_window PART JOB (WHAT FAULT) x 4: a dump job through its copies and verifications, a
# fault in each (the source's in the rehearsal copy, the target's in the final copy, then
# the source's and the target's in a verification; FAULT is split into words), then cutover
to_window() {
    local p=$1 job=$2
    cmd "$p: create $job" create "$job" --source "$(src_url "$job")" --target "$(tgt_url "t_$job")" --method dump
    # shellcheck disable=SC2086
    {
        mid_copy "$p: $3 mid rehearsal copy" "$job" start synced src $4
        t_assert_eq "$p: synced: the source is not frozen" "" "$(ro_setting "$job")"
        mid_copy "$p: $5 mid final copy" "$job" freeze verified dst $6
        assert_frozen "$p: after the final copy" "$job"
        mid_verify "$p: $7 mid-verify" "$job" src hold_lo lo $8
        mid_verify "$p: $9 mid-verify" "$job" dst hold_items_dst titems ${10}
    }
    cmd "$p: cutover" cutover "$job" --no-traffic-switch
    wait_state "$p: rollback_window" "$job" rollback_window 120
}

# ---------------------------------------------------------------------------------------
if part D; then
echo "# D. restarts of the source and of the target server"
REPLAY_RETRY_SURE=0
t_check "D: pgmoverd starts" pgmd_start "$DD" "pg_bindir = $TB_PGBIN"
to_window D r1 "source restarted (fast)" "restart_server src fast" "target restarted (fast)" \
    "restart_server dst fast" "source restarted (fast)" "restart_server src fast" \
    "target restarted (immediate)" "restart_server dst immediate"
mid_replay "D: source restarted (fast) mid-replay" r1 restart_server src fast
mid_replay "D: target restarted (fast) mid-replay" r1 restart_server dst fast
mid_replay "D: source restarted (immediate) mid-replay" r1 restart_server src immediate
mid_replay "D: target restarted (immediate) mid-replay" r1 restart_server dst immediate
# the target's crash may bring its slot back to the last checkpoint: what the source has
# already is read again and must be skipped, not applied twice
target_write r1 "after the crash of the target"
t_check "D: a write after the target's crash is carried" t_wait_for 120 _carried r1
t_assert_eq "D: ... once" "1" "$(sq r1 "SELECT count(*) FROM public.write_probe WHERE note = 'after the crash of the target'")"
t_assert_eq "D: still in the window" "rollback_window" "$(pgmd_state r1)"
# the rollback's drain of the reverse stream, held on the source, and the source stopped:
# the drain retries by itself, less often each time, then fails saying so; the source
# started again, retry completes the rollback
ROW="D: source stopped mid rollback drain"
echo "# row: $ROW"
hold_apply r1 || t_fail "$ROW: hold the drain" "hold_apply failed"
target_write r1 "before the rollback"
cmd "$ROW: rollback" rollback r1
if t_wait_for 60 in_state_and r1 rolling_back waiting_on_lock src r1; then t_ok "$ROW: the drain waits on the source"; else
    t_fail "$ROW: the drain waits on the source" "$(fail_detail r1)"
fi
before=$(retries_total r1)
server_ctl src stop
release apply
_drain_retried() { [[ $(pgmd_state r1) == rolling_back && $(retries_total r1) -ge $((before + 2)) ]]; }
t_check "$ROW: the drain retries by itself" t_wait_for 60 _drain_retried || t_detail "$(fail_detail r1)"
wait_state "$ROW: then the rollback fails" r1 failed 120
t_assert_contains "$ROW: ... saying it retried" "$(jst r1 '.error.message // ""')" "after 5 retries"
t_assert_contains "$ROW: ... naming the source" "$(jst r1 '.error.message // ""')" "to the source"
t_check "$ROW: the source starts again" server_ctl src start
cmd "$ROW: retry" retry r1
wait_state "$ROW: rolled_back" r1 rolled_back 180
t_assert_eq "$ROW: the write on the source once" "1" \
    "$(sq r1 "SELECT count(*) FROM public.write_probe WHERE note = 'before the rollback'")"
compare "D: rolled back" r1 t_r1
seq_ok "D: rolled back" r1
assert_writable "D: rolled back" r1
part_end "D" r1
stop_daemon "D"
fi

# ---------------------------------------------------------------------------------------
if part E; then
echo "# E. pg_terminate_backend of pgmover's sessions"
REPLAY_RETRY_SURE=1
t_check "E: pgmoverd starts" pgmd_start "$DE" "pg_bindir = $TB_PGBIN"
to_window E k1 "source sessions ended" "terminate src k1" "target sessions ended" "terminate dst k1" \
    "source sessions ended" "terminate src k1" "target sessions ended" "terminate dst k1"
mid_replay "E: the source session of the reverse stream ended" k1 terminate src k1
mid_replay "E: the target session of the reverse stream ended" k1 terminate dst k1
cmd "E: finish" finish k1
wait_state "E: completed" k1 completed 120
compare "E: completed" k1 t_k1
assert_frozen "E: completed" k1
part_end "E" k1
stop_daemon "E"
fi
# ---------------------------------------------------------------------------------------
if part F; then
echo "# F. SIGKILL of a triggers job (Heroku-like source) in the states test_triggers leaves out"
t_check "F: pgmoverd starts" pgmd_start "$DF" "pg_bindir = $TB_PGBIN"
cmd "F: create tg1" create tg1 --source "$(src_url tg1)" --target "$(tgt_url t_tg1)" --method triggers \
    --set cutover_command="$HOOK tg1-cutover 5"
cmd "F: create tg2" create tg2 --source "$(src_url tg2)" --target "$(tgt_url t_tg2)" --method triggers \
    --set freeze_mode=both --set freeze_command="$HOOK tg2-freeze 0" --set thaw_command="$HOOK tg2-thaw 3"
cmd "F: create tg3" create tg3 --source "$(src_url tg3)" --target "$(tgt_url t_tg3)" --method triggers \
    --set cutover_command="$HOOK tg3-cutover 0" --set rollback_command="$HOOK tg3-rollback 3"
for j in tg2 tg3; do cmd "F: $j start" start $j; done
for j in tg2 tg3; do wait_state "F: $j synced" $j synced 120; done
# a write on the source while the capture runs: the apply rounds carry it
q "$(src_url tg2)" "UPDATE public.items SET v = 'captured' || id WHERE id % 101 = 0" >/dev/null
for j in tg2 tg3; do cmd "F: $j freeze" freeze $j; done
for j in tg2 tg3; do wait_state "F: $j verified" $j verified 120; done
cmd "F: tg3 cutover" cutover tg3
wait_state "F: tg3 rollback_window" tg3 rollback_window 60
q "$(tgt_url t_tg3)" "INSERT INTO public.write_probe (note) VALUES ('written on the target'); DELETE FROM public.items WHERE id <= 10" >/dev/null
# syncing and freezing are test_triggers' rows; "freeze" here runs between two rows
ROWS=(
    "triggers: provisioning|tg1|hold_lo tg1|start|provisioning|waiting_on_lock src tg1|release lo|synced|row_synced tg1"
    "triggers: verifying|tg1|freeze_and_hold_lo tg1|verify|verifying|waiting_on_lock src tg1|release lo|verified|row_frozen tg1"
    "triggers: cutting_over (in cutover_command)|tg1|:|cutover|cutting_over|hook_running tg1-cutover 0|:|rollback_window|row_window tg1"
    "triggers: rollback_window|tg1|:|-|rollback_window|:|:|rollback_window|row_window tg1"
    "triggers: finishing|tg1|hold_progress tg1|finish|finishing|waiting_on_lock src tg1|release prog|completed|row_completed tg1"
    "triggers: thawing (in thaw_command)|tg2|:|thaw|thawing|hook_running tg2-thaw 0|:|synced|row_thawed tg2"
    "triggers: aborting|tg2|hold_target_read t_tg2|abort|aborting|waiting_on_lock dst t_tg2|release tgt|aborted|row_aborted tg2"
    "triggers: rolling_back (in rollback_command)|tg3|:|rollback|rolling_back|hook_running tg3-rollback 0|:|rolled_back|row_rolled_back tg3"
)
run_rows "$DF"
t_assert_eq "F: cutover_command ran again after the kill inside it" "2" "$(hook_starts tg1-cutover)"
t_assert_eq "F: rollback_command ran again after the kill inside it" "2" "$(hook_starts tg3-rollback)"
t_assert_eq "F: thaw_command ran again after the kill inside it" "2" "$(hook_starts tg2-thaw)"
t_check "F: no hook left running" t_wait_for 20 eval "! pgrep -f -- '$HOOK' >/dev/null"
t_assert_eq "F: no pgmover session left on the source" "0 0 0" "$(sessions_of src tg1) $(sessions_of src tg2) $(sessions_of src tg3)"
t_assert_eq "F: no pgmover session left on the target" "0 0 0" "$(sessions_of dst tg1) $(sessions_of dst tg2) $(sessions_of dst tg3)"
# the apply rounds of a synced triggers job (the source's changes carried to the target):
# pgmover's sessions on each server ended, then each server restarted; after each, a
# source write must reach the target (the job recovers, or fails once, named, and retry)
_carried_or_failed() { _carried "$1" || [[ $(pgmd_state "$1") == failed ]]; }
apply_fault() { # ROW SIDE FAULT...
    local row=$1 side=$2
    shift 2
    echo "# row: $row"
    "$@"
    q "$(src_url tg4)" "INSERT INTO public.write_probe (note) VALUES ('$row'); UPDATE public.items SET v = 'x' || id WHERE id % 211 = 0" >/dev/null
    # the next apply round finds the fault: the write is carried, or the job fails
    t_wait_for 60 _carried_or_failed tg4
    outcome "$row" tg4 synced "$side"
    t_check "$row: the write on the source reaches the target" t_wait_for 60 _carried tg4 ||
        t_detail "$(fail_detail tg4)"
    compare "$row" tg4 t_tg4
}
cmd "F: create tg4" create tg4 --source "$(src_url tg4)" --target "$(tgt_url t_tg4)" --method triggers
cmd "F: tg4 start" start tg4
wait_state "F: tg4 synced" tg4 synced 120
apply_fault "F: triggers apply, source sessions ended" src terminate src tg4
apply_fault "F: triggers apply, target sessions ended" dst terminate dst tg4
apply_fault "F: triggers apply, source restarted (fast)" src restart_server src fast
apply_fault "F: triggers apply, target restarted (immediate)" dst restart_server dst immediate
cmd "F: tg4 abort" abort tg4
wait_state "F: tg4 aborted" tg4 aborted 120
assert_writable "F: tg4 aborted" tg4
t_assert_eq "F: tg4: no pgmover schema (the capture) left on the source" "" "$(source_leftovers tg4)"
t_assert_eq "F: tg4: no pgmover session left" "0 0" "$(sessions_of src tg4) $(sessions_of dst tg4)"
stop_daemon "F"
fi
for f in "$DA" "$DB" "$DC" "$DD" "$DE" "$DF"; do
    [[ -f $f/pgmoverd.log ]] && check_sanitizers "log of $(basename "$f") (SIGKILLed runs too)" "$f/pgmoverd.log"
done

echo "# test_matrix: $((SECONDS - T0)) s"
t_summary
