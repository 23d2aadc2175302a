#!/usr/bin/env bash
# Integration test of pgmoverd and pgmover with real processes:
#   - configuration errors (--check), socket modes, syslog priority prefixes
#   - the control protocol under abuse (sockstress: 1000 clients at once, a line over
#     1 MiB, half requests, a client that never reads) and the daemon's fds/RSS after it
#   - CLI exit codes and --json, --timeout against a stopped daemon, the audit trail (SO_PEERCRED uid/pid), watch events
#   - SIGHUP reload (good and broken file), SIGTERM (exit 0, steps checkpointed)
#   - three dump jobs against a Heroku-like test bed, SIGKILL with one of them mid-copy,
#     restart: same states and facts, the interrupted copy resumes; freeze holds,
#     thaw/abort make the source writable again
#
# Run from the repository root as root (the test bed runs PostgreSQL as postgres):
#   PGM_BUILD=/path/to/meson/build bash tests/integration/test_daemon.sh
# KEEP=1 keeps the temporary directory (daemon logs, state) for a post-mortem.
set -uo pipefail # no -e: every check reports and the summary decides the exit status

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PGM_BUILD=${PGM_BUILD:-build}
if [[ $PGM_BUILD != /* ]]; then PGM_BUILD=$(cd "$PGM_BUILD" 2>/dev/null && pwd) || PGM_BUILD=$ROOT/build; fi
export PGM_BUILD
SS=$PGM_BUILD/tests/integration/sockstress
PGMOVER=$PGM_BUILD/pgmover
PGMOVERD=$PGM_BUILD/pgmoverd

# shellcheck source=tests/integration/lib.sh
. "$HERE/lib.sh"
# shellcheck source=tests/integration/pgmd.sh
. "$HERE/pgmd.sh"
# shellcheck source=tests/testbed/testbed.sh
. "$ROOT/tests/testbed/testbed.sh"

t_prereq test_daemon pgmoverd pgmover tests/integration/sockstress
t_need_cmd test_daemon setpriv runuser

T0=${EPOCHREALTIME/[.,]/}
T=$(t_tmpdir) || exit 1
BED=$T/bed
BED_PID=
BED_STARTED=0
WATCH_PIDS=()

cleanup() {
    local p
    for p in "${WATCH_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    if [[ -n $PGMD_PID ]]; then
        kill -KILL "$PGMD_PID" 2>/dev/null
        wait "$PGMD_PID" 2>/dev/null
        PGMD_PID=
    fi
    if [[ -n $BED_PID ]]; then wait "$BED_PID" 2>/dev/null; fi
    if [[ $BED_STARTED == 1 || -f $BED/.testbed ]]; then
        TB_KEEP=${KEEP:-0} tb_stop "$BED" || true
    fi
    if [[ ${KEEP:-0} == 1 ]]; then
        echo "# kept $T"
    else
        rm -rf -- "$T"
    fi
}
trap cleanup EXIT

# run CMD...: stdout in OUT, stderr in ERR, exit status in RC
run() {
    "$@" >"$T/run.out" 2>"$T/run.err"
    RC=$?
    OUT=$(<"$T/run.out")
    ERR=$(<"$T/run.err")
}

# raw LINE: one request line through the socket, the reply line on stdout
raw() { "$SS" raw "$PGMOVER_SOCKET" "$1"; }

# jq_eq NAME EXPECTED JSON FILTER
jq_eq() { t_assert_eq "$1" "$2" "$(jq -c "$4" <<<"$3" 2>&1)"; }

# shellcheck disable=SC2012 # fd entries are numbers
fd_count() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }
hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }
file_has() { grep -qF -- "$2" "$1" 2>/dev/null; }

# ---------------------------------------------------------------------------------------
# The test bed comes up in the background while the daemon-only tests run.
# Three source databases (owned by app_owner, filled as app_owner over TLS like a Heroku
# app would) and three empty target databases.

SMALL_SQL="
create table items (id int primary key, name text not null, price numeric(10,2));
insert into items select g, 'item ' || g, g * 1.25 from generate_series(1, 2000) g;
create table events (id bigserial primary key, at timestamptz not null default now(), kind text);
insert into events (kind) select (array['view','buy','ship'])[1 + g % 3] from generate_series(1, 5000) g;
create table notes (body text);
insert into notes select 'note ' || g from generate_series(1, 100) g;"
BIG_SQL="
create table big (id bigint primary key, a text, b text, n int);
insert into big select g, md5(g::text), md5((g * 7)::text), g % 1000 from generate_series(1, 2000000) g;
create function slow_double(i int) returns int language plpgsql immutable
    as \$\$ begin perform pg_sleep(0.1); return i * 2; end \$\$;
create table slow (id int primary key, g int generated always as (slow_double(id)) stored);
insert into slow (id) select generate_series(1, 50);
analyze big, slow;"

src_url() { printf '%s/%s?%s' "${SOURCE_URL%%/appdb*}" "$1" "${SOURCE_URL#*\?}"; }
dst_url() { printf '%s/%s' "${TARGET_URL%/appdb}" "$1"; }
# src_q DB SQL / dst_q DB SQL: one statement as app_owner (TLS) / tgt_admin, tuples only
src_q() { "$TB_PGBIN/psql" "$(src_url "$1")" -X -q -tA -v ON_ERROR_STOP=1 -c "$2" 2>&1; }
dst_q() { "$TB_PGBIN/psql" "$(dst_url "$1")" -X -q -tA -v ON_ERROR_STOP=1 -c "$2" 2>&1; }

bed_setup() {
    local db
    tb_start "$BED" || return 1
    for db in mv_a mv_b mv_c; do
        tb_createdb "$BED" src "$db" && tb_createdb "$BED" dst "$db" || return 1
    done
    src_q mv_a "$SMALL_SQL" && src_q mv_b "$SMALL_SQL" && src_q mv_c "$BIG_SQL"
}
bed_setup >"$T/bed-setup.log" 2>&1 &
BED_PID=$!
BED_STARTED=1

# ---------------------------------------------------------------------------------------
echo "# configuration files: pgmoverd -c FILE --check"
mkdir -p "$T/conf"
C=$T/conf
printf 'socket_path = %s/x.sock\n# a comment\n\nbogus_key = 1\n' "$T" >"$C/unknown.conf"
printf 'state_dir = %s/never\nlog_level = loud\n' "$T" >"$C/badlevel.conf"
printf 'socket_mode = 0999\n' >"$C/badmode.conf"
printf 'log_level = info\njobs = 0\n' >"$C/badjob.conf"
printf 'no equals sign here\n' >"$C/syntax.conf"
cat >"$C/good.conf" <<EOF
# pgmoverd.conf for the test
socket_path = $T/never/sock
socket_mode = 0640
state_dir   = "$T/never/state"
log_level   = notice   # trailing comment
max_clients = 100
rehearsal = off
jobs = 4
hook_timeout = 30s
freeze_mode = read_only
EOF

run "$PGMOVERD" -c "$C/unknown.conf" --check
t_assert_eq "--check unknown key: exit 2" 2 "$RC"
t_assert_contains "--check unknown key: file:line and key" "$ERR" "$C/unknown.conf:4: unknown setting \"bogus_key\""
run "$PGMOVERD" -c "$C/badlevel.conf" --check
t_assert_eq "--check bad log_level: exit 2" 2 "$RC"
t_assert_contains "--check bad log_level: file:line and choices" "$ERR" "$C/badlevel.conf:2: invalid value for log_level: \"loud\" (expected one of debug|info|notice|warning|error)"
run "$PGMOVERD" -c "$C/badmode.conf" --check
t_assert_eq "--check bad socket_mode: exit 2" 2 "$RC"
t_assert_contains "--check bad socket_mode: file:line" "$ERR" "$C/badmode.conf:1: invalid value for socket_mode"
run "$PGMOVERD" -c "$C/badjob.conf" --check
t_assert_eq "--check job default out of range: exit 2" 2 "$RC"
t_assert_contains "--check job default out of range: file:line" "$ERR" "$C/badjob.conf:2: value for jobs out of range"
run "$PGMOVERD" -c "$C/syntax.conf" --check
t_assert_eq "--check syntax error: exit 2" 2 "$RC"
t_assert_contains "--check syntax error: file:line" "$ERR" "$C/syntax.conf:1: syntax error"
run "$PGMOVERD" -c "$C/good.conf" --check
t_assert_eq "--check good file: exit 0" 0 "$RC"
t_assert_contains "--check good file: says valid" "$OUT" "configuration is valid"
t_check "--check creates neither socket nor state_dir" test ! -e "$T/never"
run "$PGMOVERD" -c "$C/nope.conf" --check
t_assert_eq "--check missing file: exit 2" 2 "$RC"
t_assert_contains "--check missing file: clear error" "$ERR" "could not read configuration file \"$C/nope.conf\": No such file or directory"
run timeout 10 "$PGMOVERD" -c "$C/nope.conf"
t_assert_eq "missing file without --check: exit 2, no daemon" 2 "$RC"

# ---------------------------------------------------------------------------------------
echo "# daemon 1: protocol, CLI, audit, stress, signals"
D1=$T/d1
pgmd_start "$D1" || { t_fail "daemon 1 starts" "see $D1/pgmoverd.log"; t_summary; exit 1; }
t_ok "daemon 1 starts (pid $PGMD_PID)"
D1_PID=$PGMD_PID
SOCK1=$PGMOVER_SOCKET

t_assert_eq "socket mode 0660 by default" "660" "$(stat -c %a "$SOCK1")"
if [[ $(id -u) -eq 0 ]] && runuser -u postgres -- test -x "$PGMOVER"; then
    # the mode is what keeps other users out: postgres is neither owner nor in the group
    run runuser -u postgres -- "$PGMOVER" -s "$SOCK1" version
    t_assert_eq "a user outside the socket's group is refused (exit 3)" 3 "$RC"
    t_assert_contains "... with the reason" "$ERR" "Permission denied"
fi

# --- the protocol, raw -------------------------------------------------------------------
r=$(raw 'this is not json')
jq_eq "malformed JSON: bad_request, id null" '[null,false,"bad_request"]' "$r" '[.id, .ok, .error.code]'
r=$(raw '{"id": 5, "cmd": "version"')
jq_eq "truncated JSON object: bad_request, id null" '[null,false,"bad_request"]' "$r" '[.id, .ok, .error.code]'
r=$(raw '[1, 2, 3]')
jq_eq "JSON that is not an object: bad_request" '[null,false,"bad_request"]' "$r" '[.id, .ok, .error.code]'
r=$(raw '{"id": 6}')
jq_eq "request without cmd: bad_request with its id" '[6,false,"bad_request"]' "$r" '[.id, .ok, .error.code]'
r=$(raw '{"id": 7, "cmd": "frobnicate"}')
jq_eq "unknown command: unknown_command with its id" '[7,false,"unknown_command"]' "$r" '[.id, .ok, .error.code]'
t_assert_contains "unknown command: hint lists the commands" "$(jq -r .error.hint <<<"$r")" "version, describe, jobs, create"
r=$(raw '{"id": 8, "cmd": "status", "job": "nope"}')
jq_eq "missing job: no_such_job" '[8,false,"no_such_job"]' "$r" '[.id, .ok, .error.code]'
r=$(raw '{"id": 9, "cmd": "start"}')
jq_eq "command that needs a job, without one: bad_request" '[9,false,"bad_request"]' "$r" '[.id, .ok, .error.code]'
r=$(raw '{"id": 10, "cmd": "status", "job": 42}')
jq_eq "job that is not a string: bad_request" '[10,false,"bad_request"]' "$r" '[.id, .ok, .error.code]'
r=$(raw '{"id": "abc", "cmd": "version"}')
jq_eq "a string id is echoed" '["abc",true,1]' "$r" '[.id, .ok, .result.protocol]'
r=$(raw '{"id": 11, "cmd": "describe"}')
jq_eq "describe: the state machine" '[true,true,true]' "$r" \
    '[.ok, (.result.states | index("rollback_window") != null), (.result.transitions | length > 10)]'

# --- a job that is never started against a real server (create does not connect) --------
PW=s3cretPW-ZZ9
FAKE_SRC="postgres://app:$PW@127.0.0.1:1/shop?sslmode=require"
FAKE_DST="postgres://tgt:$PW@127.0.0.1:2/shop"
"$PGMOVER" -s "$SOCK1" create fj --source "$FAKE_SRC" --target "$FAKE_DST" --method dump >"$T/create.out" 2>&1 &
CREATE_PID=$!
wait "$CREATE_PID"
t_assert_eq "create: exit 0" 0 "$?"
t_assert_contains "create: says so" "$(<"$T/create.out")" "created job fj (method dump)"
t_assert_eq "new job is created" "created" "$(pgmd_state fj)"
r=$(raw '{"id": 12, "cmd": "freeze", "job": "fj"}')
jq_eq "freeze on a created job: invalid_state" '[12,false,"invalid_state"]' "$r" '[.id, .ok, .error.code]'
t_assert_eq "invalid_state hint lists the accepted commands" "commands accepted in state created: start, abort" \
    "$(jq -r .error.hint <<<"$r")"
"$PGMOVER" -s "$SOCK1" freeze fj >"$T/freeze.out" 2>"$T/freeze.err" &
FREEZE_PID=$!
wait "$FREEZE_PID"
t_assert_eq "CLI freeze on a created job: exit 1" 1 "$?"
t_assert_contains "CLI refusal: message" "$(<"$T/freeze.err")" "pgmover: error: job \"fj\" is created: freeze is not possible now"
t_assert_contains "CLI refusal: hint with accepted commands" "$(<"$T/freeze.err")" "hint: commands accepted in state created: start, abort"

# --- audit: who asked what (SO_PEERCRED) ---------------------------------------------------
AUDIT1=$D1/state/fj/audit.jsonl
a=$(jq -c 'select(.command == "create")' "$AUDIT1" 2>&1)
jq_eq "audit: create with the caller's uid and pid" "[$(id -u),$CREATE_PID,\"ok\",\"created\"]" "$a" '[.uid, .pid, .outcome, .to]'
a=$(jq -c 'select(.command == "freeze" and .pid == '"$FREEZE_PID"')' "$AUDIT1" 2>&1)
jq_eq "audit: refused freeze with uid, pid, from and outcome" "[$(id -u),$FREEZE_PID,\"created\",\"refused: invalid_state\"]" \
    "$a" '[.uid, .pid, .from, .outcome]'
n=$(jq -c 'select(.command == "freeze")' "$AUDIT1" | wc -l)
t_assert_eq "audit: both refused freezes (raw and CLI) are recorded" 2 "$n"
_audit_times_ms() { jq -e 'all(.time | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\\.[0-9]{3}Z$"))' -s "$1" >/dev/null; }
t_check "audit: every line has a UTC time with ms" _audit_times_ms "$AUDIT1" || t_detail "$(head -3 "$AUDIT1")"
t_assert_eq "audit.jsonl mode 0600" "600" "$(stat -c %a "$AUDIT1")"
# secrets stay out of everything but secrets.json
leaks=$(grep -lF -- "$PW" "$D1/state/fj/state.json" "$AUDIT1" "$D1/pgmoverd.log" 2>/dev/null)
t_assert_eq "password appears in neither state.json, audit nor log" "" "$leaks"
run pgm status fj
if [[ $RC -eq 0 && $OUT != *"$PW"* && $OUT == *"app:****@"* ]]; then t_ok "status masks the password"; else t_fail "status masks the password" "$OUT"; fi
if [[ $(stat -c %a "$D1/state/fj/secrets.json") == 600 ]] && grep -qF -- "$PW" "$D1/state/fj/secrets.json"; then
    t_ok "the DSNs with passwords are kept apart in secrets.json (0600)"
else
    t_fail "the DSNs with passwords are kept apart in secrets.json (0600)" "$(ls -l "$D1/state/fj")"
fi

# --- CLI exit codes ----------------------------------------------------------------------
run "$PGMOVER" -s "$T/no-such-dir/sock" version
t_assert_eq "CLI: daemon not running (wrong -s): exit 3" 3 "$RC"
t_assert_contains "CLI: unreachable says why" "$ERR" "could not connect to pgmoverd at \"$T/no-such-dir/sock\""
run "$PGMOVER" -s "$T/no-such-dir/sock" --json version
t_assert_eq "CLI --json, daemon not running: exit 3" 3 "$RC"
jq_eq "CLI --json, daemon not running: the error as JSON on stdout" '[false,"unreachable",true]' "$OUT" \
    '[.ok, .error.code, (.error.hint | test("pgmoverd running"))]'
if [[ $(id -u) -eq 0 ]]; then
    # a user who may not open the socket (mode 0660, root's): told so, not "is pgmoverd running?"
    run runuser -u nobody -- "$PGMOVER" -s "$SOCK1" version
    t_assert_eq "CLI: a socket this user may not open: exit 3" 3 "$RC"
    t_assert_contains "CLI: ... and the hint says why" "$ERR" "may not open its socket"
fi
run "$PGMOVER" --json frobnicate
jq_eq "CLI --json, usage error: JSON too" '[false,"usage"]' "$OUT" '[.ok, .error.code]'
run env PGMOVER_SOCKET="$T/no-such-dir/sock" "$PGMOVER" status
t_assert_eq "CLI: PGMOVER_SOCKET pointing nowhere: exit 3" 3 "$RC"
run pgm
t_assert_eq "CLI usage: no command: exit 2" 2 "$RC"
run pgm frobnicate
t_assert_eq "CLI usage: unknown command: exit 2" 2 "$RC"
run pgm start
t_assert_eq "CLI usage: missing job name: exit 2" 2 "$RC"
t_assert_contains "CLI usage: hint shows usage" "$ERR" "hint: usage: pgmover start JOB"
run pgm create x --source "$FAKE_SRC" --target "$FAKE_DST"
t_assert_eq "CLI usage: create without --method: exit 2" 2 "$RC"
run pgm --frobnicate version
t_assert_eq "CLI usage: unknown option: exit 2" 2 "$RC"
run pgm version extra
t_assert_eq "CLI usage: stray argument: exit 2" 2 "$RC"
run pgm status fj --set jobs=3
t_assert_eq "CLI usage: option not valid for the command: exit 2" 2 "$RC"
run pgm status nope
t_assert_eq "CLI refusal: no such job: exit 1" 1 "$RC"
run pgm create fj --source "$FAKE_SRC" --target "$FAKE_DST" --method dump
t_assert_eq "CLI refusal: job exists: exit 1" 1 "$RC"
run pgm create bad --source "$FAKE_SRC" --target "$FAKE_DST" --method dump --set jobs=0
t_assert_eq "CLI refusal: invalid job option: exit 1" 1 "$RC"
t_assert_contains "CLI refusal: invalid job option says which" "$ERR" "value for jobs out of range"
run pgm create same --source "$FAKE_SRC" --target "$FAKE_SRC" --method dump
t_assert_eq "CLI refusal: source = target: exit 1" 1 "$RC"
run env PGMOVER_TIMEOUT=soon "$PGMOVER" version
t_assert_eq "CLI usage: PGMOVER_TIMEOUT not a number: exit 2" 2 "$RC"
t_assert_contains "CLI usage: PGMOVER_TIMEOUT says what it takes" "$ERR" "seconds to wait"
run pgm --timeout -1 version
t_assert_eq "CLI usage: negative --timeout: exit 2" 2 "$RC"
# a daemon that stopped answering (SIGSTOP: its socket still accepts): the CLI gives up
kill -STOP "$D1_PID"
run pgm --timeout 0.5 status fj
kill -CONT "$D1_PID"
t_assert_eq "CLI: no reply within --timeout: exit 3" 3 "$RC"
t_assert_contains "CLI: the timeout says which request" "$ERR" "did not reply to \"status\" within 0.5 s"
t_assert_contains "CLI: the timeout says the request may still take effect" "$ERR" "may still take effect"
run pgm --timeout 0 version
t_assert_eq "CLI: --timeout 0 waits as long as it takes: exit 0" 0 "$RC"
run pgm version
t_assert_eq "CLI success: version: exit 0" 0 "$RC"
t_assert_contains "CLI version shows the daemon" "$OUT" "pgmoverd 0.1.0 (protocol 1)"
for c in jobs describe "status fj" status; do
    read -ra words <<<"$c"
    run pgm "${words[@]}"
    t_assert_eq "CLI success: $c: exit 0" 0 "$RC"
done
run pgm --json version
t_assert_eq "CLI --json: exit 0" 0 "$RC"
t_assert_eq "CLI --json prints the daemon's reply unchanged" "$(raw '{"id":1,"cmd":"version","args":{}}')" "$OUT"
run pgm --json status nope
t_assert_eq "CLI --json refusal: exit 1" 1 "$RC"
jq_eq "CLI --json refusal: the raw error reply" '[1,false,"no_such_job"]' "$OUT" '[.id, .ok, .error.code]'
t_assert_eq "CLI --json refusal: nothing on stderr" "" "$ERR"
t_assert_eq "CLI --json: one line" 1 "$(printf '%s\n' "$OUT" | wc -l)"

# --- stress through the socket -------------------------------------------------------------
FD0=$(fd_count "$D1_PID")
RSS0=$(rss_kb "$D1_PID")
echo "# daemon 1 before the stress: $FD0 open fds, RSS $RSS0 kB"
run "$SS" clients "$SOCK1" 1000
t_assert_eq "1000 clients at once, each answered with its own id" 0 "$RC" || echo "# $OUT $ERR"
[[ $RC -eq 0 ]] && echo "# $OUT"
run "$SS" longline "$SOCK1"
t_assert_eq "line over 1 MiB: line_too_long, closed, daemon still answers" 0 "$RC" || echo "# $OUT $ERR"
[[ $RC -eq 0 ]] && echo "# ${OUT//$'\n'/$'\n'# }"
run "$SS" halfway "$SOCK1"
t_assert_eq "200 half requests then close: daemon still answers" 0 "$RC" || echo "# $OUT $ERR"
run "$SS" slowreader "$SOCK1"
t_assert_eq "slow reader (20000 describes unread): others answered meanwhile" 0 "$RC" || echo "# $OUT $ERR"
[[ $RC -eq 0 ]] && echo "# $OUT"
t_check "daemon alive after the stress" kill -0 "$D1_PID"
run pgm status fj
t_assert_eq "daemon answers after the stress" 0 "$RC"
_fds_back() { (($(fd_count "$D1_PID") <= FD0 + 2)); }
if t_wait_for 10 _fds_back; then
    t_ok "open fds back near the start ($FD0 -> $(fd_count "$D1_PID"))"
else
    t_fail "open fds back near the start" "$FD0 before, $(fd_count "$D1_PID") now: $(find "/proc/$D1_PID/fd" -mindepth 1 -printf '%l\n' | sort | uniq -c)"
fi
RSS1=$(rss_kb "$D1_PID")
echo "# daemon 1 after the stress: RSS $RSS1 kB (peak $(hwm_kb "$D1_PID") kB; a non-reading client may queue up to 8 MiB)"
t_check "RSS did not explode ($RSS0 kB -> $RSS1 kB)" test "$RSS1" -lt $((160 * 1024))
t_assert_contains "log: the line over 1 MiB is logged" "$(<"$D1/pgmoverd.log")" "sent a line over 1 MiB"
t_assert_contains "log: the slow reader was dropped" "$(<"$D1/pgmoverd.log")" "it does not read its replies"

# --- watch: transitions reach a watcher ------------------------------------------------------
"$PGMOVER" -s "$SOCK1" --json watch fj >"$T/watch1.out" 2>"$T/watch1.err" &
W1=$!
WATCH_PIDS+=("$W1")
_lines_ge() { (($(wc -l <"$1") >= $2)); }
if t_wait_for 10 _lines_ge "$T/watch1.out" 1; then
    jq_eq "watch: first line is the ok reply with the status" '[true,"created"]' "$(head -1 "$T/watch1.out")" '[.ok, .result.state]'
else
    t_fail "watch: first line is the ok reply" "nothing after 10 s: $(cat "$T/watch1.err")"
fi
run pgm start fj
t_assert_eq "start fj (its servers do not exist): exit 0" 0 "$RC"
# _watch_saw FILE JQ_CONDITION: a transition event line in FILE satisfies the condition
_watch_saw() { grep '"event":"transition"' "$1" | jq -c "select($2)" 2>/dev/null | grep -q .; }
t_check "watch: transition event created -> provisioning on start" \
    t_wait_for 10 _watch_saw "$T/watch1.out" '.on == "start" and .from == "created" and .to == "provisioning"' ||
    t_detail "$(cat "$T/watch1.out")"
if pgmd_wait_state fj failed 30 && t_wait_for 5 _watch_saw "$T/watch1.out" '.to == "failed" and .error.message != null'; then
    t_ok "watch: transition to failed, with the error"
else
    t_fail "watch: transition to failed" "state $(pgmd_state fj)"
fi
run pgm status fj
t_assert_contains "status of the failed job names the step and the error" "$OUT" "error:"
# one screen: the state, the error, what to do next; everything with -v
t_check "status fits one screen ($(wc -l <<<"$OUT") lines)" test "$(wc -l <<<"$OUT")" -le 20
t_assert_contains "status: the state and where it failed" "$(head -1 <<<"$OUT")" "fj  failed (in provisioning)"
t_assert_contains "status: the next commands" "$OUT" "next:     abort, retry"
run pgm status fj -v
t_check "status -v: everything, options and facts ($(wc -l <<<"$OUT") lines)" \
    test "$(grep -c '^  options:\|^  facts:' <<<"$OUT")" -eq 2
jq_eq "status --json: next_commands is an array" '["abort","retry"]' "$(pgm --json status fj)" '.result.next_commands'
# a cutover refused for its state records nothing of --no-traffic-switch
run pgm cutover fj --no-traffic-switch
t_assert_eq "cutover --no-traffic-switch in a wrong state: refused" 1 "$RC"
t_assert_eq "... and neither audited as accepted nor recorded" "0 null" \
    "$(grep -c 'ok: the operator moves the traffic' "$AUDIT1") $(pgm --json status fj | jq -c '.result.facts.traffic_switch')"
jq_eq "status --json: settings are typed (options keep their text)" '["number","number","boolean","string"]' \
    "$(pgm --json status fj)" \
    '.result | [(.settings.jobs|type), (.settings.drain_timeout_ms|type), (.settings.rehearsal|type), (.options.jobs|type)]'
jq_eq "status --json: a duration in ms under its _ms name" "true" "$(pgm --json status fj)" \
    '.result | (.settings.drain_timeout_ms | tostring) + "ms" == .options.drain_timeout'
# watch on a job that failed before it started: the error, exit 1
run pgm watch fj
t_assert_eq "watch of a failed job: exit 1" 1 "$RC"
t_assert_contains "watch of a failed job prints the error" "$OUT" "fj: failed:"
run pgm watch fj --until sinking
t_assert_eq "watch --until an unknown state: exit 2" 2 "$RC"
t_assert_contains "watch --until an unknown state lists the states" "$ERR" "provisioning"
run pgm watch fj --until failed
t_assert_eq "watch --until failed of a failed job: exit 0" 0 "$RC"
run pgm abort fj
t_assert_eq "abort the failed job: exit 0" 0 "$RC"
t_check "failed job aborted" pgmd_wait_state fj aborted 20 || t_detail "state $(pgmd_state fj)"
_gone() { ! kill -0 "$1" 2>/dev/null; }
if t_wait_for 10 _gone "$W1"; then
    wait "$W1"
    t_assert_eq "watch ends by itself (exit 1) when the job fails" 1 "$?"
else
    t_fail "watch ends by itself at a terminal state" "still running"
fi
t_assert_eq "audit: start, error, abort, done in order" "start,error,abort,done" \
    "$(jq -r 'select(.to != null) | (.command // .event)' "$AUDIT1" | grep -v '^create$' | paste -sd, -)"

# --- SIGHUP ----------------------------------------------------------------------------------
sed -i 's/^log_level = .*/log_level = notice/' "$D1/pgmoverd.conf"
kill -HUP "$D1_PID"
t_check "SIGHUP: the log says reloaded" t_wait_for 10 file_has "$D1/pgmoverd.log" "configuration reloaded" ||
    t_detail "$(tail -3 "$D1/pgmoverd.log")"
t_assert_contains "SIGHUP: the new log_level is named" "$(grep 'configuration reloaded' "$D1/pgmoverd.log")" "log_level notice"
run pgm create fj2 --source "$FAKE_SRC" --target "$FAKE_DST" --method dump
if [[ $RC -eq 0 ]] && ! file_has "$D1/pgmoverd.log" "job fj2: created"; then
    t_ok "SIGHUP: log_level notice applies (no info line for a new job)"
else
    t_fail "SIGHUP: log_level notice applies" "rc=$RC; $(grep 'fj2' "$D1/pgmoverd.log")"
fi
sed -i 's/^log_level = .*/log_level = loud/' "$D1/pgmoverd.conf"
kill -HUP "$D1_PID"
t_check "SIGHUP with a broken file: keeps the old configuration and says so" \
    t_wait_for 10 file_has "$D1/pgmoverd.log" "keeping the running configuration" ||
    t_detail "$(tail -3 "$D1/pgmoverd.log")"
t_assert_contains "SIGHUP with a broken file: names file:line" "$(grep 'keeping the running' "$D1/pgmoverd.log")" "$D1/pgmoverd.conf:3:"
run pgm create fj3 --source "$FAKE_SRC" --target "$FAKE_DST" --method dump
if [[ $RC -eq 0 ]] && ! file_has "$D1/pgmoverd.log" "job fj3: created"; then
    t_ok "SIGHUP with a broken file: daemon answers, still at log_level notice"
else
    t_fail "SIGHUP with a broken file: still at notice" "rc=$RC; $(grep 'fj3' "$D1/pgmoverd.log")"
fi

# --- syslog priorities, SIGTERM --------------------------------------------------------------
bad=$(grep -cv '^<[0-7]>' "$D1/pgmoverd.log")
t_assert_eq "every log line starts with a syslog priority like <6>" 0 "$bad"
for p in '<3>' '<4>' '<5>' '<6>' '<7>'; do
    t_assert_contains "log has $p lines" "$(<"$D1/pgmoverd.log")" "$p"
done
pgmd_stop
t_assert_eq "SIGTERM: exit status 0" 0 "$?"
t_assert_contains "SIGTERM: the log says steps are checkpointed" "$(<"$D1/pgmoverd.log")" "SIGTERM: stopping; running steps are checkpointed"
t_assert_contains "SIGTERM: the log says stopped" "$(tail -1 "$D1/pgmoverd.log")" "pgmoverd stopped"
t_check "SIGTERM: socket file removed" test ! -e "$SOCK1"
run pgm version
t_assert_eq "CLI after the daemon stopped: exit 3" 3 "$RC"

# --- daemon 2: socket_mode ---------------------------------------------------------------------
D2=$T/d2
if pgmd_start "$D2" "socket_mode = 0600"; then
    t_assert_eq "configured socket_mode 0600 is applied" "600" "$(stat -c %a "$PGMOVER_SOCKET")"
    t_assert_contains "the log names the mode" "$(<"$D2/pgmoverd.log")" "(mode 0600)"
    # a second daemon on the same state_dir must refuse (the lock, with the holder's pid)
    run timeout 10 "$PGMOVERD" -c "$D2/pgmoverd.conf"
    t_assert_eq "a second daemon on the same state_dir refuses (exit 1)" 1 "$RC"
    t_assert_contains "... and says which pid holds it" "$ERR" "in use by another pgmoverd (pid $PGMD_PID holds the lock"
    # one on another state_dir but the same socket must refuse, not steal the socket
    sed "s|^state_dir = .*|state_dir = $D2/state2|" "$D2/pgmoverd.conf" >"$D2/other-state.conf"
    run timeout 10 "$PGMOVERD" -c "$D2/other-state.conf"
    t_assert_eq "a second daemon on the same socket refuses (exit 1)" 1 "$RC"
    t_assert_contains "... and says why" "$ERR" "another pgmoverd is already listening"
    run pgm version
    t_assert_eq "the first daemon still answers" 0 "$RC"
    pgmd_stop
    t_assert_eq "daemon 2 stops with exit 0" 0 "$?"
else
    t_fail "daemon 2 starts with socket_mode 0600" "$(tail -3 "$D2/pgmoverd.log")"
fi
# a socket file left by a SIGKILLed daemon does not block the next start
pgmd_start "$D2" && pgmd_kill9
if [[ -S $D2/sock ]] && pgmd_start "$D2"; then
    t_ok "a stale socket file from a SIGKILLed daemon is replaced"
    pgmd_stop
else
    t_fail "a stale socket file from a SIGKILLed daemon is replaced" "$(tail -3 "$D2/pgmoverd.log")"
fi

# ---------------------------------------------------------------------------------------
echo "# daemon 3: three dump jobs against the test bed, SIGKILL, restart"
wait "$BED_PID"
rc=$?
BED_PID=
if [[ $rc -ne 0 ]]; then
    t_fail "test bed with three source and target databases" "$(tail -20 "$T/bed-setup.log")"
    t_summary
    exit 1
fi
# shellcheck source=/dev/null
. "$BED/env"
t_ok "test bed up: source $SOURCE_PORT (TLS), target $TARGET_PORT"
t_assert_eq "big source table loaded as app_owner" "2000000|app_owner" \
    "$(src_q mv_c "select count(*), pg_get_userbyid(relowner) from big, pg_class where relname = 'big' group by 2")"

D3=$T/d3
pgmd_start "$D3" || { t_fail "daemon 3 starts" "$(tail -5 "$D3/pgmoverd.log")"; t_summary; exit 1; }
run pgm create ja --source "$(src_url mv_a)" --target "$(dst_url mv_a)" --method dump
t_assert_eq "create ja (dump, rehearsal on)" 0 "$RC"
run pgm create jb --source "$(src_url mv_b)" --target "$(dst_url mv_b)" --method dump --set rehearsal=off
t_assert_eq "create jb (dump, --set rehearsal=off)" 0 "$RC"
run pgm create jc --source "$(src_url mv_c)" --target "$(dst_url mv_c)" --method dump
t_assert_eq "create jc (dump, 2M rows + a slow generated column)" 0 "$RC"
t_assert_eq "jb has rehearsal off" "off" "$(pgm --json status jb | jq -r .result.options.rehearsal)"

run pgm start ja
t_assert_eq "start ja" 0 "$RC"
run pgm start jb
t_assert_eq "start jb" 0 "$RC"
t_check "ja synced (rehearsal copy)" pgmd_wait_state ja synced 90 || t_detail "$(pgm status ja 2>&1 | head -40)"
t_check "jb synced" pgmd_wait_state jb synced 90 || t_detail "$(pgm status jb 2>&1 | head -40)"
t_assert_eq "ja: rehearsal copy on the target" "2000|5000|100" \
    "$(dst_q mv_a "select (select count(*) from items) || '|' || (select count(*) from events) || '|' || (select count(*) from notes)")"
t_assert_eq "jb: no rehearsal copy, target still empty" "skipped|0" \
    "$(pgm --json status jb | jq -r .result.facts.copies.rehearsal)|$(dst_q mv_b "select count(*) from pg_tables where schemaname = 'public'")"
# the preflight times a read of the largest table only when no rehearsal copy follows to time the copy
t_assert_eq "ja: the preflight read no sample (its rehearsal times the copy)" "string null" \
    "$(pgm --json status ja | jq -r '.result.facts.source | "\(.read_sample_skipped | type) \(.read_sample)"')"
t_assert_eq "jb: without a rehearsal the preflight times a read (the only estimate before the freeze)" "object" \
    "$(pgm --json status jb | jq -r '.result.facts.source.read_sample | type')"

run pgm freeze ja
t_assert_eq "freeze ja: exit 0" 0 "$RC"
t_check "ja verified" pgmd_wait_state ja verified 90 || t_detail "$(pgm status ja 2>&1 | head -60)"
out=$(src_q mv_a "insert into items values (900001, 'during freeze', 1)")
t_assert_contains "ja frozen: the source refuses writes" "$out" "read-only transaction"

# jc: kill the daemon in the middle of its copy. The 2M-row table alone is copied in a
# second or two; the small table "slow" has a stored generated column whose function
# sleeps 0.1 s a row, and the target computes it during the COPY: the copy stays in its
# data phase ~5 s after the chunks of the big table are in. Kill it there.
_jc_mid_copy() {
    pgm --json status jc | jq -e '.result | .state == "syncing" and .step.phase == "data"
        and .step.chunks_done >= 1 and .step.chunks_done < .step.chunks_total' >/dev/null
}
run pgm start jc
t_assert_eq "start jc" 0 "$RC"
if t_wait_for 90 _jc_mid_copy; then
    t_ok "jc is syncing, in the data phase of its copy ($(pgm --json status jc |
        jq -r '.result.step | "\(.chunks_done) of \(.chunks_total) chunks done"'))"
else
    t_fail "jc is syncing, in the data phase of its copy" "$(pgm status jc 2>&1 | head -30)"
fi
snapshot() {
    local j
    for j in ja jb jc; do
        pgm --json status "$j" | jq -c '.result | {name, state, since, facts, artifacts, verify, options, last_transition}'
    done
}
BEFORE=$(snapshot)
echo "# before SIGKILL: $(jq -r '.name + "=" + .state' <<<"$BEFORE" | paste -sd' ' -)"
pgmd_kill9
_no_copy_tools() { ! pgrep -f -- "$D3/state/" >/dev/null; }
t_check "SIGKILL: no pg_dump/pg_restore of the daemon outlives it" t_wait_for 10 _no_copy_tools ||
    t_detail "$(pgrep -af -- "$D3/state/")"
PARTIAL=$(dst_q mv_c "select count(*) from big")
if [[ $PARTIAL =~ ^[0-9]+$ ]] && ((PARTIAL > 0)); then
    t_ok "SIGKILL: the target held part of jc's copy ($PARTIAL rows of big)"
else
    t_fail "SIGKILL: the target held part of jc's copy" "$PARTIAL"
fi
pgmd_start "$D3" || { t_fail "daemon 3 restarts on the same state_dir" "$(tail -5 "$D3/pgmoverd.log")"; t_summary; exit 1; }
AFTER=$(snapshot)
for j in ja jb; do
    t_assert_eq "after restart: $j has the same state, facts, artifacts, verify report" \
        "$(jq -c "select(.name == \"$j\")" <<<"$BEFORE")" "$(jq -c "select(.name == \"$j\")" <<<"$AFTER")"
done
jc_after=$(jq -c 'select(.name == "jc")' <<<"$AFTER")
jc_state=$(jq -r .state <<<"$jc_after")
if [[ $jc_state == syncing ]]; then
    t_assert_eq "after restart: jc is syncing again with the same facts" \
        "$(jq -c 'select(.name == "jc")' <<<"$BEFORE")" "$jc_after"
else
    t_fail "after restart: jc is syncing again" "state $jc_state"
fi
t_assert_eq "audit: each job records the resume in its state" "ja:verified jb:synced jc:syncing" \
    "$(for j in ja jb jc; do jq -r 'select(.event == "resume") | .job + ":" + .from' "$D3/state/$j/audit.jsonl"; done | paste -sd' ' -)"
t_assert_contains "log: jc loaded in state syncing" "$(<"$D3/pgmoverd.log")" "job jc: loaded in state syncing"
t_check "jc resumes its copy and reaches synced" pgmd_wait_state jc synced 120 ||
    t_detail "$(pgm status jc 2>&1 | head -40)"
t_assert_eq "jc: the target has every row exactly once" "2000000|2000000|2000000" \
    "$(dst_q mv_c "select count(*) || '|' || count(distinct id) || '|' || max(id) from big")"
t_assert_eq "jc: the generated column was computed on the target" "50|50" \
    "$(dst_q mv_c "select count(*) || '|' || count(*) filter (where g = id * 2) from slow")"
t_assert_eq "jc: the rehearsal copy is recorded" "2" "$(pgm --json status jc | jq -r .result.facts.copies.rehearsal.tables)"
t_assert_eq "jc: no leftover sessions on the target" "0" \
    "$(dst_q mv_c "select count(*) from pg_stat_activity where application_name like 'pgmover:jc:%'")"
t_assert_eq "jc: the dump directory is gone" "" "$(ls -d "$D3/state/jc/copy-"* 2>/dev/null)"

# thaw ja while watching it: writes are allowed again
"$PGMOVER" -s "$PGMOVER_SOCKET" --json watch ja >"$T/watch3.out" 2>&1 &
W3=$!
WATCH_PIDS+=("$W3")
t_wait_for 10 _lines_ge "$T/watch3.out" 1
run pgm thaw ja
t_assert_eq "thaw ja: exit 0" 0 "$RC"
t_check "watch ja: transition verified -> thawing on thaw" \
    t_wait_for 10 _watch_saw "$T/watch3.out" '.on == "thaw" and .from == "verified" and .to == "thawing"' ||
    t_detail "$(cat "$T/watch3.out")"
t_check "ja thawed back to synced" pgmd_wait_state ja synced 60 || t_detail "$(pgm status ja 2>&1 | head -40)"
t_wait_for 10 _watch_saw "$T/watch3.out" '.from == "thawing" and .to == "synced"' ||
    t_fail "watch ja: thawing -> synced" "$(cat "$T/watch3.out")"
kill "$W3" 2>/dev/null
t_assert_eq "after thaw: the source is writable (as app_owner)" "" \
    "$(src_q mv_a "insert into items values (900001, 'after thaw', 1)")"
t_assert_eq "after thaw: the freeze artifact is marked undone" "true" \
    "$(pgm --json status ja | jq -c '[.result.artifacts[] | select(.kind == "db_setting") | .status == "dropped"] |
        length > 0 and all')"

# jb: freeze (the final copy, no rehearsal), then abort: the source is thawed, the target emptied
run pgm freeze jb
t_assert_eq "freeze jb: exit 0" 0 "$RC"
t_check "jb verified" pgmd_wait_state jb verified 90 || t_detail "$(pgm status jb 2>&1 | head -60)"
t_assert_eq "jb: final copy on the target" "2000" "$(dst_q mv_b "select count(*) from items")"
out=$(src_q mv_b "insert into items values (900002, 'during freeze', 1)")
t_assert_contains "jb frozen: the source refuses writes" "$out" "read-only transaction"
run pgm abort jb
t_assert_eq "abort jb: exit 0" 0 "$RC"
t_check "jb aborted" pgmd_wait_state jb aborted 60 || t_detail "$(pgm status jb 2>&1 | head -40)"
t_assert_eq "after abort: the source is writable" "" "$(src_q mv_b "insert into items values (900002, 'after abort', 1)")"
t_assert_eq "after abort: the target holds nothing of pgmover's" "0" \
    "$(dst_q mv_b "select count(*) from pg_tables where schemaname not in ('pg_catalog', 'information_schema')")"
run pgm freeze jb
t_assert_eq "aborted job refuses further commands (exit 1)" 1 "$RC"
t_assert_contains "... and says no command is accepted" "$ERR" "commands accepted in state aborted: none"

bad=$(grep -cv '^<[0-7]>' "$D3/pgmoverd.log")
t_assert_eq "daemon 3: every log line has a syslog priority" 0 "$bad" || grep -v '^<[0-7]>' "$D3/pgmoverd.log" | head -5
t_assert_contains "daemon 3: server notices are logged on one line with a priority" \
    "$(<"$D3/pgmoverd.log")" "<7>postgres: NOTICE:  drop cascades to"
pgmd_stop
t_assert_eq "daemon 3: SIGTERM exit 0" 0 "$?"

T1=${EPOCHREALTIME/[.,]/}
echo "# run time: $(((T1 - T0) / 1000000)) s"
t_summary
