#!/usr/bin/env bash
# Integration test of the Prometheus endpoint (metrics_listen), black-box: pgmoverd's
# configuration, HTTP with curl, promtool (Debian's prometheus package) on every scrape,
# the CLI's status, and SQL on both servers.
#
#   1. configuration: metrics_listen not an address:port is refused by --check, saying
#      what it expects; a port already in use is a clear start error
#   2. a daemon with metrics_listen on a free loopback port: GET /metrics passes
#      `promtool check metrics`; a connection serves more than one scrape; another path
#      is 404, POST is 405
#   3. a real dump job on a 2M-row table: the state gauge follows the job (syncing, then
#      synced); scrapes during the copy show its phase and copied bytes that never go
#      back; once synced the copy's bytes and rows are the job's facts and the rows the
#      target holds
#   4. freeze (then the automatic verification): freeze seconds grow while writes are
#      stopped, verification differences 0, the final copy's numbers; abort thaws the source
#   5. pgmoverd stops: the port is closed
#
# What depends on timing is marked "best effort" and only reported (e.g. that two
# scrapes during the copy saw different byte counts: a fast machine may copy between
# two chunks' ends in one scrape interval).
#
# Run from the source tree as root (or postgres):
#   PGM_BUILD=/tmp/bd bash tests/integration/test_metrics.sh
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

t_prereq test_metrics pgmoverd pgmover /usr/bin/promtool /usr/bin/curl

WORK=$(t_tmpdir) || exit 1
BED=$WORK/bed
DMN=$WORK/daemon
HOLDER_PID=

cleanup() {
    if [[ -n $HOLDER_PID ]]; then
        kill "$HOLDER_PID" 2>/dev/null
        wait "$HOLDER_PID" 2>/dev/null
    fi
    pgmd_cleanup
    t_bed_remove "$WORK" "$BED"
}
trap cleanup EXIT

# a loopback TCP port nothing listens on
free_port() {
    local p i
    for ((i = 0; i < 200; i++)); do
        p=$((35000 + (RANDOM % 2000)))
        if ! ss -Hlntu "( sport = :$p )" 2>/dev/null | grep -q .; then
            printf '%s' "$p"
            return 0
        fi
    done
    return 1
}

# scrape [PATH]: the body of GET http://127.0.0.1:$PORT/PATH (default metrics); the
# families seen are collected in $WORK/families
scrape() {
    curl -sS --max-time 10 "http://127.0.0.1:$PORT/${1:-metrics}" |
        awk '/^# TYPE / { print $3 >> "'"$WORK/families"'" } { print }'
}
# http_code METHOD PATH: the status code of a request
http_code() { curl -s --max-time 10 -o /dev/null -w '%{http_code}' -X "$1" "http://127.0.0.1:$PORT/$2"; }
# value TEXT SERIES: the value of one series (name with its labels, as written), or empty
value() { awk -v s="$2" '$1 == s { print $2 }' <<<"$1"; }
state_series() { printf 'pgmover_job_state{job="%s",method="dump",state="%s"}' "$1" "$2"; }
# promtool_ok NAME TEXT: `promtool check metrics` accepts TEXT, with no lint problem either
promtool_ok() {
    local out rc
    out=$(promtool check metrics <<<"$2" 2>&1)
    rc=$?
    if [[ $rc -eq 0 && -z $out ]]; then t_ok "$1"; else t_fail "$1" "promtool exit $rc: $out"; fi
}

# ---------------------------------------------------------------------------------------
# 1. configuration

echo "# metrics_listen in the configuration"
C=$WORK/conf
mkdir -p "$C"
for bad in localhost:9187 127.0.0.1 127.0.0.1:70000 '[::1]' 127.0.0.1:http; do
    printf 'state_dir = %s/never\nmetrics_listen = %s\n' "$WORK" "$bad" >"$C/bad.conf"
    out=$("$PGM_BUILD/pgmoverd" -c "$C/bad.conf" --check 2>&1)
    rc=$?
    t_assert_eq "--check refuses metrics_listen = $bad (exit 2)" 2 "$rc"
    t_assert_contains "--check names the file, line and setting ($bad)" "$out" "$C/bad.conf:2: invalid value for metrics_listen: \"$bad\""
    t_assert_contains "--check says what it expects ($bad)" "$out" "like 127.0.0.1:9187 or [::1]:9187, or empty for none"
done
printf 'state_dir = %s/never\nmetrics_listen = 127.0.0.1:9187\n' "$WORK" >"$C/good.conf"
out=$("$PGM_BUILD/pgmoverd" -c "$C/good.conf" --check 2>&1)
t_assert_eq "--check accepts metrics_listen = 127.0.0.1:9187" "$C/good.conf: configuration is valid" "$out"

PORT=$(free_port) || {
    t_fail "a free loopback port" "none found"
    t_summary
    exit 1
}
echo "# a port in use: $PORT"
python3 -c "
import socket, sys, time
s = socket.socket()
s.bind(('127.0.0.1', int(sys.argv[1])))
s.listen()
print('listening', flush=True)
time.sleep(600)" "$PORT" >"$WORK/holder.out" 2>&1 &
HOLDER_PID=$!
_holder_listens() { grep -q listening "$WORK/holder.out"; }
if t_check "something else listens on port $PORT" t_wait_for 10 _holder_listens; then
    mkdir -p "$WORK/busy"
    printf 'socket_path = %s/busy/sock\nstate_dir = %s/busy/state\nmetrics_listen = 127.0.0.1:%s\n' \
        "$WORK" "$WORK" "$PORT" >"$WORK/busy/pgmoverd.conf"
    out=$("$PGM_BUILD/pgmoverd" -c "$WORK/busy/pgmoverd.conf" 2>&1)
    rc=$?
    t_assert_eq "pgmoverd on a port in use: exit 1" 1 "$rc"
    t_assert_contains "pgmoverd on a port in use: says so" "$out" "could not listen for metrics on 127.0.0.1:$PORT: the address is already in use"
    t_assert_contains "pgmoverd on a port in use: says what to do" "$out" "set metrics_listen to another port"
    t_check "pgmoverd on a port in use: no control socket left" test ! -e "$WORK/busy/sock"
fi
kill "$HOLDER_PID" 2>/dev/null
wait "$HOLDER_PID" 2>/dev/null
HOLDER_PID=

# ---------------------------------------------------------------------------------------
# the bed: a 2M-row table, the copy of which takes seconds

if ! "$TB" start "$BED" >"$WORK/testbed.log" 2>&1; then
    cat "$WORK/testbed.log" >&2
    t_fail "testbed" "could not start the test bed"
    t_summary
    exit 1
fi
# shellcheck source=/dev/null
. "$BED/env"
setup_ok=1
"$TB" createdb "$BED" src big >/dev/null || setup_ok=0
"$TB" createdb "$BED" dst t_big >/dev/null || setup_ok=0
q "$(src_url big)" "CREATE TABLE public.big (id bigint PRIMARY KEY, grp integer NOT NULL, payload text NOT NULL);
   INSERT INTO public.big SELECT i, i % 1000, md5(i::text) FROM generate_series(1, 2000000) AS i;
   CREATE TABLE public.small (id integer PRIMARY KEY, v text);
   INSERT INTO public.small SELECT i, 'v' || i FROM generate_series(1, 100) AS i;
   ANALYZE public.big; ANALYZE public.small;" >"$WORK/load.log" || setup_ok=0
if [[ $setup_ok == 1 ]]; then t_ok "setup: a 2M-row source table"; else
    t_fail "setup" "$(cat "$WORK/load.log")"
    t_summary
    exit 1
fi

# ---------------------------------------------------------------------------------------
# 2. the endpoint

PORT=$(free_port) || PORT=
if ! pgmd_start "$DMN" "pg_bindir = $TB_PGBIN" "metrics_listen = 127.0.0.1:$PORT"; then
    t_fail "pgmoverd starts with metrics_listen" "see $DMN/pgmoverd.log"
    t_summary
    exit 1
fi
t_ok "pgmoverd starts with metrics_listen = 127.0.0.1:$PORT"
t_assert_contains "the log says where metrics are served" "$(cat "$DMN/pgmoverd.log")" "metrics endpoint listening on http://127.0.0.1:$PORT/metrics"

m=$(scrape)
promtool_ok "promtool check metrics: no job" "$m"
t_assert_eq "pgmover_up is 1" 1 "$(value "$m" pgmover_up)"
t_assert_eq "pgmover_jobs is 0" 0 "$(value "$m" pgmover_jobs)"
t_assert_contains "build info carries the version" "$m" "pgmover_build_info{version=\"$("$PGM_BUILD/pgmoverd" --version | awk '{ print $2 }')\",protocol=\"1\"} 1"
ctype=$(curl -s --max-time 10 -o /dev/null -w '%{content_type}' "http://127.0.0.1:$PORT/metrics")
t_assert_eq "Content-Type is the text format 0.0.4" "text/plain; version=0.0.4; charset=utf-8" "$ctype"
# two requests on one connection: the first answer keeps it open (HTTP/1.1 keep-alive)
two=$(curl -sv --max-time 10 -o /dev/null -o /dev/null "http://127.0.0.1:$PORT/metrics" "http://127.0.0.1:$PORT/metrics" 2>&1)
t_assert_contains "keep-alive: the second scrape reuses the connection" "$two" "Re-using existing connection"
t_assert_eq "keep-alive: both answered 200" 2 "$(grep -c '^< HTTP/1.1 200 OK' <<<"$two")"
t_assert_eq "GET / is 404" 404 "$(http_code GET "")"
t_assert_eq "GET /metrics/x is 404" 404 "$(http_code GET metrics/x)"
t_assert_eq "POST /metrics is 405" 405 "$(http_code POST metrics)"
t_assert_contains "a 404 says what is served" "$(scrape nothing)" "pgmoverd serves GET /metrics only"

# ---------------------------------------------------------------------------------------
# 3. a dump job: the state gauge, the copy's numbers

cmd "create the job" create big --source "$(src_url big)" --target "$(tgt_url t_big)" --method dump
m=$(scrape)
promtool_ok "promtool check metrics: a created job" "$m"
t_assert_eq "created: state gauge created = 1" 1 "$(value "$m" "$(state_series big created)")"
t_assert_eq "created: state gauge syncing = 0" 0 "$(value "$m" "$(state_series big syncing)")"
t_assert_eq "one state sample per state of the machine, one of them 1" \
    "$(grep -c '^pgmover_job_state{job="big"' <<<"$m") 1" \
    "$(pgm --json describe | jq -r '.result.states | length') $(grep -c '^pgmover_job_state{job="big".*} 1$' <<<"$m")"

cmd "start the job" start big
# scrape until a scrape shows the job syncing (the copy takes seconds; polled every 0.1 s)
_scrape_syncing() {
    m=$(scrape)
    [[ $(value "$m" "$(state_series big syncing)") == 1 ]]
}
t_check "a scrape shows the state gauge syncing = 1" t_wait_for 60 _scrape_syncing || t_detail "$(fail_detail big)"
promtool_ok "promtool check metrics: during the copy" "$m"
# every scrape while it syncs: the phase, and copied bytes that never go back
bytes_seen=()
phase_seen=0
bad_order=
nscrapes=0
while [[ $(value "$m" "$(state_series big syncing)") == 1 ]] && ((nscrapes < 3000)); do
    nscrapes=$((nscrapes + 1))
    grep -q '^pgmover_job_phase{job="big",method="dump",step="rehearsal",phase="[a-z-]*"} 1$' <<<"$m" && phase_seen=1
    b=$(value "$m" 'pgmover_job_copy_bytes{job="big",method="dump",copy="rehearsal"}')
    if [[ -n $b ]]; then
        if ((${#bytes_seen[@]} > 0)) && ((b < bytes_seen[-1])); then bad_order="$bad_order ${bytes_seen[-1]}->$b"; fi
        bytes_seen+=("$b")
    fi
    sleep 0.1
    m=$(scrape)
done
echo "# $nscrapes scrapes while syncing; copied bytes seen: $(printf '%s\n' "${bytes_seen[@]}" | uniq | tr '\n' ' ')"
t_assert_eq "during the copy: a scrape shows the phase of the rehearsal copy" 1 "$phase_seen"
t_check "during the copy: copied bytes are reported" test "${#bytes_seen[@]}" -gt 0
t_assert_eq "during the copy: copied bytes never go back" "" "$bad_order"
distinct=$(printf '%s\n' "${bytes_seen[@]}" | sort -un | wc -l)
if ((distinct >= 2)); then
    echo "# best effort, seen: copied bytes moved between scrapes during the copy ($distinct values)"
else
    echo "# best effort, not checked: the scrapes saw $distinct value(s) of the copied bytes during the copy"
fi

wait_state "the job is synced" big synced 300
m=$(scrape)
promtool_ok "promtool check metrics: synced" "$m"
t_assert_eq "synced: state gauge synced = 1" 1 "$(value "$m" "$(state_series big synced)")"
t_assert_eq "synced: state gauge syncing = 0" 0 "$(value "$m" "$(state_series big syncing)")"
st=$(pgm --json status big)
fact_bytes=$(jq -r '.result.facts.copies.rehearsal.bytes' <<<"$st")
fact_rows=$(jq -r '.result.facts.copies.rehearsal.rows' <<<"$st")
fact_est=$(jq -r '.result.facts.copies.rehearsal.rows_estimate' <<<"$st")
t_assert_eq "synced: copied bytes are the rehearsal's facts" "$fact_bytes" \
    "$(value "$m" 'pgmover_job_copy_bytes{job="big",method="dump",copy="rehearsal"}')"
t_assert_eq "synced: the copy's size is its bytes" "$fact_bytes" \
    "$(value "$m" 'pgmover_job_copy_size_bytes{job="big",method="dump",copy="rehearsal"}')"
t_assert_eq "synced: copied rows are the rows the target holds" "$(tq t_big "SELECT (SELECT count(*) FROM public.big) + (SELECT count(*) FROM public.small)")" \
    "$(value "$m" 'pgmover_job_copy_rows{job="big",method="dump",copy="rehearsal"}')"
t_assert_eq "synced: copied rows are the facts' rows" "$fact_rows" \
    "$(value "$m" 'pgmover_job_copy_rows{job="big",method="dump",copy="rehearsal"}')"
t_assert_eq "synced: the rows to copy are the source's estimate" "$fact_est" \
    "$(value "$m" 'pgmover_job_copy_size_rows{job="big",method="dump",copy="rehearsal"}')"
t_check "synced: a rate for the finished copy" grep -q '^pgmover_job_copy_rate_bytes_per_second{job="big",method="dump",copy="rehearsal"} [0-9.]*$' <<<"$m"
t_assert_eq "synced: not failed" 0 "$(value "$m" 'pgmover_job_failed{job="big",method="dump"}')"
t_assert_eq "synced: pgmover_jobs is 1" 1 "$(value "$m" pgmover_jobs)"
t_assert_eq "synced: no freeze seconds before the freeze" "" "$(value "$m" 'pgmover_job_freeze_seconds{job="big",method="dump"}')"
printf '%s\n' "$m" >"$WORK/metrics-synced.txt"

# ---------------------------------------------------------------------------------------
# 4. freeze, verify, abort

cmd "freeze" freeze big
# freezing (the final copy) -> frozen -> verifying -> verified: the source stays frozen
wait_state "the job is verified" big verified 300
m1=$(scrape)
sleep 1.2
m2=$(scrape)
promtool_ok "promtool check metrics: verified" "$m2"
t_assert_eq "verified: state gauge verified = 1" 1 "$(value "$m2" "$(state_series big verified)")"
f1=$(value "$m1" 'pgmover_job_freeze_seconds{job="big",method="dump"}')
f2=$(value "$m2" 'pgmover_job_freeze_seconds{job="big",method="dump"}')
t_check "verified: freeze seconds are reported ($f1)" test -n "$f1"
t_check "verified: freeze seconds grow while writes are stopped ($f1 -> $f2)" awk -v a="${f1:-0}" -v b="${f2:-0}" 'BEGIN { exit !(b > a && a > 0) }'
t_assert_eq "verified: verification differences 0" 0 "$(value "$m2" 'pgmover_job_verify_differences{job="big",method="dump"}')"
t_assert_eq "verified: the final copy's rows are its facts'" "$(jst big .facts.copies.final.rows)" \
    "$(value "$m2" 'pgmover_job_copy_rows{job="big",method="dump",copy="final"}')"
t_assert_eq "verified: the rehearsal's rows are still reported" "$fact_rows" \
    "$(value "$m2" 'pgmover_job_copy_rows{job="big",method="dump",copy="rehearsal"}')"
printf '%s\n' "$m2" >"$WORK/metrics-verified.txt"
cmd "abort" abort big
wait_state "the job is aborted" big aborted 120
m=$(scrape)
t_assert_eq "aborted: state gauge aborted = 1" 1 "$(value "$m" "$(state_series big aborted)")"
t_assert_eq "aborted: no freeze seconds once thawed" "" "$(value "$m" 'pgmover_job_freeze_seconds{job="big",method="dump"}')"

# every family a scrape showed is in the README's list
missing=
while read -r f; do
    grep -q "\`${f}[\`{]" "$ROOT/README.md" || missing="$missing $f"
done < <(sort -u "$WORK/families")
t_assert_eq "the README lists every metric family scraped ($(sort -u "$WORK/families" | wc -l))" "" "$missing"

# ---------------------------------------------------------------------------------------
# 5. stop

t_check "pgmoverd stops cleanly (exit 0)" pgmd_stop
_port_closed() { ! curl -s --max-time 5 -o /dev/null "http://127.0.0.1:$PORT/metrics"; }
t_check "the metrics port is closed once pgmoverd stopped" _port_closed
if [[ ${PGM_TEST_KEEP:-0} == 1 ]]; then echo "# scrapes kept in $WORK/metrics-*.txt"; fi

t_summary
