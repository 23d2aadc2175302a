#!/usr/bin/env bash
# Integration test of secrets and hooks: every failure path that can carry a password
# is forced, and the password is looked for everywhere pgmover writes or answers; hooks
# that will not stop are stopped, with nothing of theirs left running.
#
#   1. a source whose password is wrong: the preflight fails
#   2. a pglogical job whose provider DSN works for pgmoverd but not from the target
#      server (sslmode=verify-ca, the root certificate only in pgmoverd's environment):
#      pglogical's create_subscription fails with "DETAIL: dsn was: ... password=..."
#   3. a dump job whose freeze_command prints its environment, the URLs and the
#      password alone, and fails
#   4. freeze_command traps SIGTERM and loops: the step fails after hook_timeout and
#      hook_kill_grace, saying so; no process of the hook is left
#   5. freeze_command leaves children holding its stdout (one ignoring SIGTERM, one in
#      a session of its own) and exits 0: the step fails the same way; nothing is left
#   6. pgmoverd killed with SIGKILL while a hook runs: the hook dies with it; restarted,
#      the job resumes the step, the hook times out again
#   7. the passwords (the test bed's roles', and the wrong one) are in none of:
#      state.json, audit.jsonl, `status`, `status -v`, `status --json`, `watch`, `jobs`,
#      the daemon's log; secrets.json keeps them, mode 0600
#
#   PGM_BUILD=/tmp/bd bash tests/integration/test_secrets.sh   (as root or postgres)
# PGM_TEST_KEEP=1 keeps the work directory.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TB=$ROOT/tests/testbed/testbed.sh
. "$HERE/lib.sh"
. "$HERE/pgmd.sh"
# shellcheck source=tests/integration/jobs.sh
. "$HERE/jobs.sh"

t_prereq test_secrets pgmoverd pgmover

WORK=$(t_tmpdir) || exit 1
BED=$WORK/bed
DMN=$WORK/daemon
OUT=$WORK/out
mkdir -p "$OUT"
WATCH_PIDS=()
# markers in the hooks' command lines, unique to this run
MARK=pgmtest$$x$RANDOM
SLEEP_A=$((7000 + RANDOM % 1000))
SLEEP_B=$((SLEEP_A + 1000))
SLEEP_C=$((SLEEP_A + 2000))

# pids of the processes this test's hooks started (by their markers)
hook_pids() { pgrep -f "$MARK|sleep $SLEEP_A|sleep $SLEEP_B|sleep $SLEEP_C" 2>/dev/null; }
no_hook_left() { [[ -z $(hook_pids) ]]; }

cleanup() {
    local p
    for p in "${WATCH_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    pgmd_cleanup
    for p in $(hook_pids); do kill -9 "$p" 2>/dev/null; done
    wait 2>/dev/null
    t_bed_remove "$WORK" "$BED"
}
trap cleanup EXIT

admin_url() { printf '%s' "${SOURCE_ADMIN_URL/\/appdb\?//$1?}"; }
# watch JOB into OUT/watch.JOB, in the background
watch_job() {
    pgm watch "$1" >"$OUT/watch.$1" 2>&1 &
    WATCH_PIDS+=($!)
}
# every view of a job the operator has, into OUT
snapshot() {
    pgm status "$1" >"$OUT/status.$1" 2>&1
    pgm status "$1" -v >"$OUT/status-v.$1" 2>&1
    pgm --json status "$1" >"$OUT/status-json.$1" 2>&1
}
err_of() { jst "$1" '(.error.message // "") + " | " + (.error.detail // "") + " | " + (.error.hint // "")'; }

# ---------------------------------------------------------------------------------------
# the bed

if ! "$TB" start "$BED" >"$WORK/testbed.log" 2>&1; then
    cat "$WORK/testbed.log" >&2
    t_fail "testbed" "could not start"
    t_summary
    exit 1
fi
. "$BED/env"
setup_ok=1
for db in wrongpw pgl hooks; do "$TB" createdb "$BED" src "$db" >/dev/null || setup_ok=0; done
for db in t_wrongpw t_pgl t_hooks; do "$TB" createdb "$BED" dst "$db" >/dev/null || setup_ok=0; done
q "$(admin_url pgl)" "CREATE TABLE public.items (id int PRIMARY KEY, v text);
    INSERT INTO public.items SELECT i, 'v' || i FROM generate_series(1, 100) i" >/dev/null || setup_ok=0
q "$(src_url hooks)" "CREATE TABLE public.items (id int PRIMARY KEY, v text);
    INSERT INTO public.items SELECT i, 'v' || i FROM generate_series(1, 100) i" >/dev/null || setup_ok=0
if [[ $setup_ok == 1 ]]; then t_ok "setup: test bed and databases"; else
    t_fail "setup" "see $WORK"
    t_summary
    exit 1
fi
WRONG_PW=wrong${RANDOM}pw${RANDOM}
PASSWORDS=("$SOURCE_OWNER_PASSWORD" "$SOURCE_ADMIN_PASSWORD" "$TARGET_ADMIN_PASSWORD" "$WRONG_PW")

# pgmoverd (and what it runs) finds the source's root certificate in its environment; the
# servers, started before, do not: a provider DSN with sslmode=verify-ca works for
# pgmoverd and fails from the target server's pglogical
export PGSSLROOTCERT=$SOURCE_SSLROOTCERT
if ! pgmd_start "$DMN" "pg_bindir = $TB_PGBIN"; then
    t_fail "pgmoverd starts" "see $DMN/pgmoverd.log"
    t_summary
    exit 1
fi
t_ok "pgmoverd starts"

# ---------------------------------------------------------------------------------------
echo "# 1. a source whose password is wrong"

url=$(src_url wrongpw)
cmd "wrongpw: create" create wrongpw --source "${url/:$SOURCE_OWNER_PASSWORD@/:$WRONG_PW@}" \
    --target "$(tgt_url t_wrongpw)" --method dump
watch_job wrongpw
cmd "wrongpw: start" start wrongpw
wait_state "wrongpw: failed" wrongpw failed 60
t_assert_contains "wrongpw: the error says the password was refused" "$(err_of wrongpw)" "password authentication failed"
snapshot wrongpw

# ---------------------------------------------------------------------------------------
echo "# 2. pglogical: the provider DSN fails from the target server"

if [[ -e ~postgres/.postgresql/root.crt ]]; then
    echo "# skip - the postgres user has ~/.postgresql/root.crt: the target server would connect"
else
    # key=value form, as pglogical's DETAIL then shows it ("password=...")
    cmd "pgl: create" create pgl --target "$(tgt_url t_pgl)" --method pglogical --source \
        "host=127.0.0.1 port=$SOURCE_PORT dbname=pgl user=src_admin password=$SOURCE_ADMIN_PASSWORD sslmode=verify-ca"
    watch_job pgl
    cmd "pgl: start" start pgl
    wait_state "pgl: failed" pgl failed 120
    e=$(err_of pgl)
    t_assert_contains "pgl: the error carries pglogical's DETAIL with the DSN" "$e" "dsn was:"
    t_assert_contains "pgl: the DSN's password is masked in it" "$e" "password=****"
    snapshot pgl
fi

# ---------------------------------------------------------------------------------------
echo "# 3. a hook that prints its environment, the URLs and the password, and fails"

# shellcheck disable=SC2016
LEAK_HOOK=': '"$MARK"'; env | grep "^PGMOVER_" | sort; pw=$(printf "%s" "$PGMOVER_SOURCE_URL" | sed -e "s|^[^:]*://[^:]*:||" -e "s|@.*||"); echo "the password: $pw"; echo "export PGPASSWORD=$pw"; echo "conninfo: host=h password=$pw dbname=d"; exit 3'
cmd "hooks: create" create hooks --source "$(src_url hooks)" --target "$(tgt_url t_hooks)" --method dump \
    --set rehearsal=off --set freeze_mode=command --set freeze_command="$LEAK_HOOK" --set thaw_command=true
watch_job hooks
cmd "hooks: start" start hooks
wait_state "hooks: synced" hooks synced 120
cmd "hooks: freeze" freeze hooks
wait_state "hooks: the leaking hook fails the freeze" hooks failed 60
e=$(err_of hooks)
t_assert_contains "hooks: the error names the hook and its status" "$e" "hook freeze_command exited with status 3"
t_assert_contains "hooks: its output is in the error, the URL masked" "$e" "PGMOVER_SOURCE_URL=postgres://app_owner:****@"
t_assert_contains "hooks: the password printed alone is masked" "$e" "the password: ****"
t_assert_contains "hooks: PGPASSWORD= is masked" "$e" "PGPASSWORD=****"

# ---------------------------------------------------------------------------------------
echo "# 4. a hook that traps SIGTERM and goes on"

# shellcheck disable=SC2016
TRAP_HOOK=': '"$MARK"'; trap "echo got TERM, staying" TERM; echo started; while :; do sleep 0.2; done'
cmd "hooks: set the trapping hook" set hooks --set freeze_command="$TRAP_HOOK" --set hook_timeout=2s \
    --set hook_kill_grace=2s
cmd "hooks: retry" retry hooks
_hook_running() { [[ -n $(pgrep -f "$MARK") ]]; }
t_check "hooks: the trapping hook runs" t_wait_for 30 _hook_running
wait_state "hooks: the trapping hook fails the step" hooks failed 60
e=$(err_of hooks)
t_assert_contains "hooks: the error says it timed out" "$e" "hook freeze_command timed out after"
t_assert_contains "hooks: and that SIGKILL followed the grace" "$e" "SIGKILL 2000 ms later"
t_assert_contains "hooks: the hook got SIGTERM first" "$e" "got TERM, staying"
t_assert_contains "hooks: the guard says it had to SIGKILL" "$e" "got SIGKILL"
t_check "hooks: no process of the trapping hook is left" t_wait_for 10 no_hook_left || t_detail "$(ps -o pid,ppid,pgid,cmd -p "$(hook_pids | paste -sd,)")"

# ---------------------------------------------------------------------------------------
echo "# 5. a hook that leaves children holding its stdout and exits 0"

BG_HOOK=': '"$MARK"'; echo started; (trap "" TERM; exec sleep '"$SLEEP_A"') & setsid sh -c "trap \"\" TERM; exec sleep '"$SLEEP_B"'" & exit 0'
cmd "hooks: set the backgrounding hook" set hooks --set freeze_command="$BG_HOOK"
cmd "hooks: retry (backgrounding hook)" retry hooks
_children_running() { [[ -n $(pgrep -f "sleep $SLEEP_B") ]]; }
t_check "hooks: its children run, one in a session of its own" t_wait_for 30 _children_running
wait_state "hooks: the backgrounding hook fails the step" hooks failed 60
e=$(err_of hooks)
t_assert_contains "hooks: the error says it timed out" "$e" "hook freeze_command timed out after"
t_assert_contains "hooks: the guard says the hook exited but left processes" "$e" \
    "exited with status 0 but processes it started still run"
t_check "hooks: no process of the backgrounding hook is left" t_wait_for 10 no_hook_left || t_detail "$(ps -o pid,ppid,pgid,cmd -p "$(hook_pids | paste -sd,)")"

# ---------------------------------------------------------------------------------------
echo "# 6. pgmoverd killed while a hook runs"

# shellcheck disable=SC2016
DIE_HOOK=': '"$MARK"'; trap "echo got TERM" TERM; (trap "" TERM; exec sleep '"$SLEEP_C"') & while :; do sleep 0.2; done'
cmd "hooks: set a long hook" set hooks --set freeze_command="$DIE_HOOK" --set hook_timeout=4s
cmd "hooks: retry (long hook)" retry hooks
_child_c() { [[ -n $(pgrep -f "sleep $SLEEP_C") ]]; }
t_check "hooks: the long hook runs" t_wait_for 30 _child_c
pgmd_kill9
t_check "hooks: its processes die with pgmoverd" t_wait_for 30 no_hook_left || t_detail "$(ps -o pid,ppid,pgid,cmd -p "$(hook_pids | paste -sd,)")"
if pgmd_start "$DMN"; then t_ok "pgmoverd starts again"; else t_fail "pgmoverd starts again" "see $DMN/pgmoverd.log"; fi
t_check "hooks: the resumed step runs the hook again" t_wait_for 30 _child_c
wait_state "hooks: and it times out again" hooks failed 60
t_check "hooks: nothing of it is left" t_wait_for 10 no_hook_left
snapshot hooks
pgm jobs >"$OUT/jobs" 2>&1
pgm --json jobs >"$OUT/jobs-json" 2>&1
pgm status >"$OUT/status-all" 2>&1

# ---------------------------------------------------------------------------------------
echo "# 7. the passwords are nowhere pgmover writes or answers"

# the job views, written above, must say something: a check on empty files finds nothing
t_assert_contains "the saved views are not empty" "$(cat "$OUT/status-v.hooks" "$OUT/watch.hooks")" "freeze_command"
leaks() { # PASSWORD: the files that contain it
    {
        grep -rlF --exclude=secrets.json -- "$1" "$DMN/state"
        grep -lF -- "$1" "$DMN/pgmoverd.log" "$OUT"/*
    } 2>/dev/null
}
i=0
for pw in "${PASSWORDS[@]}"; do
    i=$((i + 1))
    found=$(leaks "$pw")
    if [[ -z $found ]]; then t_ok "password $i is in no state.json, audit.jsonl, status, watch, jobs or log"; else
        t_fail "password $i is in no state.json, audit.jsonl, status, watch, jobs or log" "found in: $found"
    fi
done
t_assert_eq "secrets.json keeps the DSNs, mode 0600" "600" "$(stat -c %a "$DMN/state/hooks/secrets.json")"
t_check "secrets.json holds the source's password" grep -qF -- "$SOURCE_OWNER_PASSWORD" "$DMN/state/hooks/secrets.json"
t_check "the daemon's log has the masked DETAIL" grep -qF "password=****" "$DMN/pgmoverd.log"
t_check "audit.jsonl has the failures" grep -q '"to":"failed"' "$DMN/state/hooks/audit.jsonl"

pgmd_stop
t_summary
