#!/usr/bin/env bash
# Integration test of the timeouts (README "Timeouts"), black-box: the CLI, the documented
# status fields, SQL on both servers, and a TCP proxy (tcpproxy.py) between pgmoverd and
# the source whose path the test freezes with SIGSTOP (the kernel still takes new
# connections into the backlog and buffers bytes, but nothing is forwarded: a hung peer).
#
#   1. a dump job's final copy in `freezing`, through the proxy, slowed down so that it
#      lasts: the path frozen mid-copy; the job fails by itself (statement_timeout plus
#      the keepalives' time, small values here), its error naming the source, the
#      statement it waited for and that the source is still frozen (error.source_frozen),
#      and its hint how to thaw; pgmoverd's connections carry TCP keepalives
#   2. a connection to the frozen path (the listen backlog answers nothing): the preflight
#      fails with connect_timeout's message
#   3. the path back: `thaw` lets writes in again
#   4. freeze_timeout: a verified job waiting for its cutover fails once the source has
#      been frozen that long, saying so; thaw works (its source named by host name,
#      resolved by pgmoverd on its loop)
#   5. a rehearsal copy longer than freeze_timeout: the freeze is refused, nothing frozen
#
# Run from the source tree as root (or postgres):
#   PGM_BUILD=/tmp/bd bash tests/integration/test_faults.sh
# PGM_TEST_KEEP=1 keeps the work directory (daemon log, server logs) for post-mortems.
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

t_prereq test_faults pgmoverd pgmover
t_need_cmd test_faults python3 ss

WORK=$(t_tmpdir) || exit 1
BED=$WORK/bed
DMN=$WORK/daemon
PROXY_PID=

cleanup() {
    if [[ -n $PROXY_PID ]]; then
        kill -CONT "$PROXY_PID" 2>/dev/null
        kill "$PROXY_PID" 2>/dev/null
        wait "$PROXY_PID" 2>/dev/null
    fi
    pgmd_cleanup
    t_bed_remove "$WORK" "$BED"
}
trap cleanup EXIT

# a loopback TCP port nothing listens on
closed_port() {
    local p i
    for ((i = 0; i < 200; i++)); do
        p=$((33100 + (RANDOM % 700)))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            printf '%s' "$p"
            return 0
        fi
    done
    return 1
}

# assert_writable NAME DB / assert_frozen NAME DB: an INSERT as the owner, straight to the
# source (not through the proxy), is accepted / refused as read-only
assert_writable() {
    local out
    out=$(q "$(src_url "$2")" "INSERT INTO public.write_probe (note) VALUES ('$1') RETURNING 'inserted'")
    t_assert_eq "$1: the source accepts an INSERT" "inserted" "$out"
}
assert_frozen() {
    local out rc
    out=$(q "$(src_url "$2")" "INSERT INTO public.write_probe (note) VALUES ('$1')")
    rc=$?
    if [[ $rc -ne 0 && $out == *"read-only transaction"* ]]; then
        t_ok "$1: the source refuses writes (read-only)"
    else
        t_fail "$1: the source refuses writes (read-only)" "rc=$rc: $out"
    fi
}

# the job is copying rows in `freezing`, with the source frozen
copying_frozen() {
    [[ $(jst "$1" '.state') == freezing && $(jst "$1" '.step.phase // ""') == data &&
        $(jst "$1" '.freeze_started_at // ""') != "" ]]
}

# ---------------------------------------------------------------------------------------
# the bed, the data, the proxy, the daemon

if ! "$TB" start "$BED" >"$WORK/testbed.log" 2>&1; then
    cat "$WORK/testbed.log" >&2
    t_fail "testbed" "could not start the test bed"
    t_summary
    exit 1
fi
# shellcheck source=/dev/null
. "$BED/env"

setup_ok=1
for db in fz ft bh rh; do "$TB" createdb "$BED" src "$db" >/dev/null || setup_ok=0; done
for db in t_fz t_ft t_bh t_rh; do "$TB" createdb "$BED" dst "$db" >/dev/null || setup_ok=0; done
for db in fz ft bh rh; do
    q "$(src_url "$db")" "CREATE TABLE public.write_probe (id serial PRIMARY KEY, note text)" >/dev/null || setup_ok=0
done
# about 20 MB to copy: at the proxy's 400 kB/s the final copy lasts long enough to be cut
q "$(src_url fz)" "CREATE TABLE public.big (id bigint PRIMARY KEY, payload text NOT NULL);
   INSERT INTO public.big SELECT i, md5(i::text) || md5((-i)::text) FROM generate_series(1, 300000) AS i" \
    >"$WORK/load.log" || setup_ok=0
# about 1.6 MB: through the proxy, a copy of it takes 4 s at least
q "$(src_url rh)" "CREATE TABLE public.mid (id bigint PRIMARY KEY, payload text NOT NULL);
   INSERT INTO public.mid SELECT i, md5(i::text) FROM generate_series(1, 30000) AS i" >>"$WORK/load.log" || setup_ok=0
q "$(src_url ft)" "CREATE TABLE public.small (id integer PRIMARY KEY, v text);
   INSERT INTO public.small SELECT i, 'v' || i FROM generate_series(1, 100) AS i" >>"$WORK/load.log" || setup_ok=0
if [[ $setup_ok == 1 ]]; then t_ok "setup: databases and data loaded"; else
    cat "$WORK/load.log" >&2
    t_fail "setup" "creating databases or loading data failed"
    t_summary
    exit 1
fi

PP=$(closed_port) || { t_fail "a free port for the proxy" "none found"; t_summary; exit 1; }
python3 "$HERE/tcpproxy.py" "$PP" "$SOURCE_PORT" --rate 400000 --lifetime 900 >"$WORK/proxy.log" 2>&1 &
PROXY_PID=$!
t_check "the proxy listens" t_wait_for 10 grep -q listening "$WORK/proxy.log" || t_detail "$(cat "$WORK/proxy.log")"
# the source's URL through the proxy
via_proxy() { printf '%s' "$(src_url "$1")" | sed "s/127\.0\.0\.1:$SOURCE_PORT/127.0.0.1:$PP/"; }

if ! pgmd_start "$DMN" "pg_bindir = $TB_PGBIN"; then
    t_fail "pgmoverd starts" "see $DMN/pgmoverd.log"
    t_summary
    exit 1
fi
t_ok "pgmoverd starts"

# small bounds: a dead path is found in statement_timeout + keepalives_idle +
# keepalives_interval * keepalives_count = 3 + 1 + 2 s here
SMALL=(--set statement_timeout=3s --set lock_timeout=2s --set keepalives_idle=1s --set keepalives_interval=1s
    --set keepalives_count=2 --set tcp_user_timeout=3s --set connect_timeout=3s)

# ---------------------------------------------------------------------------------------
# 1. the path freezes during the final copy, the source frozen

cmd "fz: create (source through the proxy)" create fz --source "$(via_proxy fz)" --target "$(tgt_url t_fz)" \
    --method dump --set rehearsal=off --set jobs=1 --set rollback_window=0 "${SMALL[@]}"
cmd "fz: start" start fz
wait_state "fz: synced" fz synced 180
cmd "fz: freeze" freeze fz
t_check "fz: the final copy streams rows with the source frozen" t_wait_for 180 copying_frozen fz ||
    t_detail "$(fail_detail fz)"
assert_frozen "fz: mid-copy" fz
# pgmoverd's idle connection through the proxy (the copy's snapshot) probes after keepalives_idle
# = 1 s, not the kernel's 2 h: ss shows its keepalive timer in seconds, not minutes
socks=$(ss -tnpo state established "( dport = :$PP )" 2>/dev/null | grep "pid=$PGMD_PID,")
t_check "fz: pgmoverd holds connections through the proxy" test -n "$socks" || true
t_check "fz: with keepalives_idle's TCP keepalives" grep -Eq 'timer:\(keepalive,[0-9.]+(ms|sec),' <<<"$socks" ||
    t_detail "$socks"

kill -STOP "$PROXY_PID"
wait_state "fz: the job fails by itself on the frozen path" fz failed 120
msg=$(jst fz '.error.message // ""')
hint=$(jst fz '.error.hint // ""')
t_assert_eq "fz: failed in freezing" "freezing" "$(jst fz '.error.state // ""')"
t_assert_contains "fz: the error names the source" "$msg" "from the source"
t_assert_contains "fz: the error names the server it waited for" "$msg" "no answer from 127.0.0.1:$PP"
t_assert_contains "fz: the error names the statement" "$msg" "COPY"
t_assert_contains "fz: the error gives the bound" "$msg" "statement_timeout 3 s"
t_assert_eq "fz: error.source_frozen" "true" "$(jst fz '.error.source_frozen')"
t_assert_contains "fz: the hint says the source is still frozen" "$hint" "the source is still frozen"
t_assert_contains "fz: the hint says how to thaw" "$hint" "pgmover thaw fz"
human=$(pgm status fz 2>&1)
t_assert_contains "fz: status shows the hint" "$human" "pgmover thaw fz"
assert_frozen "fz: after the failure" fz

# ---------------------------------------------------------------------------------------
# 2. a connection into the frozen path: the backlog accepts, nothing answers

cmd "bh: create (through the frozen proxy)" create bh --source "$(via_proxy bh)" --target "$(tgt_url t_bh)" \
    --method dump --set rollback_window=0 --set connect_timeout=2s
cmd "bh: start" start bh
wait_state "bh: the preflight fails" bh failed 120
bhmsg=$(pgm --json status bh 2>/dev/null | jq -r '.result | [.error.message, .error.detail, (.facts.preflight.findings // [] | map(.finding) | join(" "))] | join(" ")')
t_assert_contains "bh: connect_timeout's message" "$bhmsg" "no session within connect_timeout (2 s)"
t_assert_contains "bh: it names the server" "$bhmsg" "127.0.0.1:$PP"
t_assert_eq "bh: nothing of this job froze the source" "false" "$(jst bh '.error.source_frozen')"
cmd "bh: abort" abort bh
wait_state "bh: aborted" bh aborted 120

# ---------------------------------------------------------------------------------------
# 3. the path back: thaw

kill -CONT "$PROXY_PID"
cmd "fz: thaw" thaw fz
wait_state "fz: thawed, synced" fz synced 120
assert_writable "fz: after thaw" fz
t_assert_eq "fz: no freeze left" "null" "$(jst fz '.freeze_started_at')"
cmd "fz: abort" abort fz
wait_state "fz: aborted" fz aborted 120

# ---------------------------------------------------------------------------------------
# 4. freeze_timeout: verified, waiting for the cutover, for longer than the bound

# the source by name: pgmoverd resolves it on its loop and hands libpq the address (hostaddr)
cmd "ft: create (the source's host by name)" create ft --source "$(src_url ft | sed 's/@127\.0\.0\.1:/@localhost:/')" --target "$(tgt_url t_ft)" --method dump --set rehearsal=off \
    --set rollback_window=0 --set freeze_timeout=20s
cmd "ft: start" start ft
wait_state "ft: synced" ft synced 180
t_check "ft: the host name was resolved off the loop, and its address given to libpq" \
    grep -q "resolved localhost: hostaddr=127.0.0.1" "$DMN/pgmoverd.log"
cmd "ft: freeze" freeze ft
wait_state "ft: verified" ft verified 120
wait_state "ft: fails once frozen for freeze_timeout" ft failed 180
msg=$(jst ft '.error.message // ""')
t_assert_contains "ft: the error says the bound" "$msg" "frozen for longer than freeze_timeout (20 s)"
t_assert_eq "ft: failed in verified" "verified" "$(jst ft '.error.state // ""')"
t_assert_contains "ft: the detail says what it waited for" "$(jst ft '.error.detail // ""')" "the operator"
t_assert_eq "ft: error.source_frozen" "true" "$(jst ft '.error.source_frozen')"
t_assert_contains "ft: the hint says how to thaw" "$(jst ft '.error.hint // ""')" "pgmover thaw ft"
assert_frozen "ft: after the failure" ft
cmd "ft: thaw" thaw ft
wait_state "ft: thawed, synced" ft synced 120
assert_writable "ft: after thaw" ft
cmd "ft: abort" abort ft
wait_state "ft: aborted" ft aborted 120

# ---------------------------------------------------------------------------------------
# 5. a rehearsal that took longer than freeze_timeout: the freeze is refused, nothing frozen

cmd "rh: create (through the slow proxy, freeze_timeout=1s)" create rh --source "$(via_proxy rh)" \
    --target "$(tgt_url t_rh)" --method dump --set jobs=1 --set rollback_window=0 --set freeze_timeout=1s
cmd "rh: start (the rehearsal copy)" start rh
wait_state "rh: synced" rh synced 180
t_check "rh: the rehearsal took longer than 1 s" \
    test "$(jst rh '(.facts.expected_freeze_copy_seconds // 0) > 1')" = true
cmd "rh: freeze" freeze rh
wait_state "rh: the freeze is refused" rh failed 120
t_assert_contains "rh: the error says why" "$(jst rh '.error.message // ""')" "longer than freeze_timeout (1 s)"
t_assert_contains "rh: the hint says what to do" "$(jst rh '.error.hint // ""')" "pgmover set rh --set freeze_timeout="
t_assert_eq "rh: error.source_frozen" "false" "$(jst rh '.error.source_frozen')"
assert_writable "rh: the freeze refused" rh
cmd "rh: abort" abort rh
wait_state "rh: aborted" rh aborted 120

t_summary
