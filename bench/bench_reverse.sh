#!/usr/bin/env bash
# bench_reverse.sh — how much write load the rollback window carries back: a pgbench
# database of scale SCALE (default 10) on a local Heroku-like source, moved by a dump
# job (cutover_command = true: no pgbouncer), then, in the rollback window, pgbench
# writes to the target as fast as CLIENTS clients can (default 4, TPC-B: three UPDATEs
# and an INSERT a transaction), or at RATE transactions a second when given, for LOAD
# seconds (default 20), while pgmoverd applies
# every one of those transactions to the source. Prints, side by side:
#   - the target's write rate (pgbench's transactions a second)
#   - the reverse stream's apply rate over the same load (transactions a second,
#     from the load's start until the source has them all) and their ratio
#   - the reverse lag in seconds, sampled every second, and how long the stream took
#     to catch up once the load stopped (what a `rollback` at that moment would drain)
# On a 2-core machine pgbench, both servers and pgmoverd share the cores.
# Usage: bench/bench_reverse.sh [SCALE] [LOAD_SECONDS] [CLIENTS] [RATE]
# PGM_BUILD=DIR uses an existing build directory instead of building ./build.
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=${1:-10}
LOAD=${2:-20}
CLIENTS=${3:-4}
RATE=${4:-}

# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_build
bench_bed
tests/testbed/testbed.sh createdb "$bed" src bench >/dev/null
tests/testbed/testbed.sh createdb "$bed" dst bench >/dev/null
SRC=${SOURCE_URL/\/appdb\?//bench?}
DST=${TARGET_URL%/appdb}/bench
echo "building a pgbench database of scale $SCALE on the source..."
"$TB_PGBIN/pgbench" -i -q -s "$SCALE" "$SRC" 2>&1 | tail -1

bench_daemon

"$BUILD/pgmover" create bench --source "$SRC" --target "$DST" --method dump --set rehearsal=off \
    --set cutover_command=true --set reverse_interval=100ms >/dev/null
"$BUILD/pgmover" start bench >/dev/null
wait_for synced
"$BUILD/pgmover" freeze bench >/dev/null
wait_for verified
"$BUILD/pgmover" cutover bench >/dev/null
wait_for rollback_window
applied0=$(st '.facts.reverse.transactions // 0')
echo "in the rollback window; load: pgbench TPC-B on the target, $CLIENTS clients, ${RATE:-unthrottled}${RATE:+ tx/s}, $LOAD s; $(nproc) cores"

t0=$(now)
"$TB_PGBIN/pgbench" -c "$CLIENTS" -j 2 -T "$LOAD" ${RATE:+-R "$RATE"} -n "$DST" >"$work/pgbench.log" 2>&1 &
load_pid=$!
samples="$work/lag"
: >"$samples"
while kill -0 "$load_pid" 2>/dev/null; do
    sleep 1
    st '.facts.reverse_lag.seconds // 0' >>"$samples"
done
wait "$load_pid" || { cat "$work/pgbench.log" >&2; exit 1; }
load_pid=
t_load=$(now)
written=$(awk '/number of transactions actually processed/ { split($NF, a, "/"); print a[1] }' "$work/pgbench.log")
# caught up: the source has every transaction the load made
while (($(st '.facts.reverse.transactions // 0') - applied0 < written)); do sleep 0.05; done
t_done=$(now)
"$BUILD/pgmover" finish bench >/dev/null
wait_for completed

load_s=$(echo "$t_load - $t0" | bc -l)
all_s=$(echo "$t_done - $t0" | bc -l)
catchup_s=$(echo "$t_done - $t_load" | bc -l)
read -r lavg lp95 lmax < <(sort -n "$samples" | awk '{ a[NR] = $1; s += $1 } END { printf "%s %s %s\n", s / NR, a[int(NR * 0.95 + 0.999)], a[NR] }')
echo
printf '%-52s %s\n' "pgbench scale $SCALE, $CLIENTS clients, ${RATE:-unthrottled}${RATE:+ tx/s}, $LOAD s" "result"
printf '%-52s %d transactions, %.0f a second\n' "written on the target" "$written" "$(echo "$written / $load_s" | bc -l)"
printf '%-52s %.0f a second (%.2fx the write rate)\n' "applied to the source (load start -> caught up)" \
    "$(echo "$written / $all_s" | bc -l)" "$(echo "$load_s / $all_s" | bc -l)"
printf '%-52s avg %.2f s, p95 %.2f s, max %.2f s\n' "reverse lag during the load" "$lavg" "$lp95" "$lmax"
printf '%-52s %.2f s\n' "catch-up after the load stopped" "$catchup_s"
