#!/usr/bin/env bash
# bench_pglogical.sh — pgmover's pglogical method under a steady write load: a
# pgbench database of scale SCALE (default 20) on a local Heroku-like source (TLS,
# wal_level = logical, pglogical preloaded), moved into a fresh target database by a
# pglogical job while pgbench writes to the source at RATE transactions per second
# (default 500, 2 clients, TPC-B) the whole time:
#   - initial sync: subscription created -> every table ready (facts.pglogical.sync_ms)
#   - lag in bytes and seconds, sampled every second for LOAD seconds (default 20)
#   - the write-freeze window, ROUNDS times (default 3; thaw and reload in between):
#     freeze requested -> target drained and sequences set (facts.freeze.drain), split
#     into the freeze itself (read-only default, sessions ended), the wait for the
#     subscription's state, the drain, and the sequences
# Usage: bench/bench_pglogical.sh [SCALE] [LOAD_SECONDS] [ROUNDS] [RATE]
# PGM_BUILD=DIR uses an existing build directory instead of building ./build.
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=${1:-20}
LOAD=${2:-20}
ROUNDS=${3:-3}
RATE=${4:-500}

# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_build
bench_bed
tests/testbed/testbed.sh createdb "$bed" src bench >/dev/null
tests/testbed/testbed.sh createdb "$bed" dst bench >/dev/null
SRC=${SOURCE_ADMIN_URL/\/appdb\?//bench?}
DST=${TARGET_URL%/appdb}/bench
echo "building a pgbench database of scale $SCALE on the source..."
"$TB_PGBIN/pgbench" -i -q -s "$SCALE" "$SRC" 2>&1 | tail -1
size=$("$TB_PGBIN/psql" -X -qAt "$SRC" -c "SELECT pg_size_pretty(pg_database_size(current_database()))")
echo "source database: $size; load: pgbench TPC-B, 2 clients, $RATE tx/s; $(nproc) cores"

bench_daemon

start_load() {
    "$TB_PGBIN/pgbench" -c 2 -j 2 -R "$RATE" -T 3600 -n "$SRC" >"$work/pgbench.log" 2>&1 &
    load_pid=$!
}
stop_load() {
    # the freeze ends pgbench's sessions; reap it either way
    kill "$load_pid" 2>/dev/null || true
    wait "$load_pid" 2>/dev/null || true
    load_pid=
}

start_load
sleep 2
"$BUILD/pgmover" create bench --source "$SRC" --target "$DST" --method pglogical --set allow_no_pk=on >/dev/null
"$BUILD/pgmover" start bench >/dev/null
wait_for synced
sync_ms=$(st .facts.pglogical.sync_ms)
bytes=$(st .facts.pglogical.table_bytes)

echo
echo "lag under load, one sample a second:"
printf '%6s  %12s  %11s\n' "second" "lag bytes" "lag seconds"
samples="$work/lag"
: >"$samples"
for ((i = 1; i <= LOAD; i++)); do
    sleep 1
    read -r b s < <(st '"\(.lag_bytes // 0) \(.lag_seconds // 0)"')
    printf '%6d  %12d  %11.3f\n' "$i" "$b" "$s"
    echo "$b $s" >>"$samples"
done

declare -a fz
for ((r = 1; r <= ROUNDS; r++)); do
    [[ -n $load_pid ]] || { start_load; sleep 3; }
    "$BUILD/pgmover" freeze bench >/dev/null
    wait_for verified
    stop_load
    fz[r]=$(st '.facts.freeze.drain | "\(.freeze_to_drained_ms) \(.freeze_ms) \(.ready_wait_ms) \(.drain_ms) \(.sequences_ms) \(.nudges)"')
    if ((r < ROUNDS)); then
        "$BUILD/pgmover" thaw bench >/dev/null
        wait_for synced
    fi
done
"$BUILD/pgmover" abort bench >/dev/null
wait_for aborted

echo
stats() { sort -n | awk '{ a[NR] = $1; s += $1 } END { printf "%s %s %s %s\n", a[1], s / NR, a[int(NR * 0.95 + 0.999)], a[NR] }'; }
read -r bmin bavg bp95 bmax < <(awk '{ print $1 }' "$samples" | stats)
read -r smin savg sp95 smax < <(awk '{ print $2 }' "$samples" | stats)
printf '%-50s %s\n' "pgbench scale $SCALE ($size), $RATE tx/s" "result"
printf '%-50s %.2f s (%.0f MiB of tables)\n' "initial sync (subscription -> all tables r)" \
    "$(echo "$sync_ms / 1000" | bc -l)" "$(echo "$bytes / 1048576" | bc -l)"
printf '%-50s min %d, avg %.0f, p95 %d, max %d\n' "lag bytes ($LOAD samples)" "$bmin" "$bavg" "$bp95" "$bmax"
printf '%-50s min %.3f, avg %.3f, p95 %.3f, max %.3f\n' "lag seconds ($LOAD samples)" "$smin" "$savg" "$sp95" "$smax"
for ((r = 1; r <= ROUNDS; r++)); do
    read -r total freeze ready drain seq nudges <<<"${fz[r]}"
    printf '%-50s %d ms (freeze %d, ready %d, drain %d, sequences %d; %d nudge(s))\n' \
        "write freeze $r: requested -> drained + sequences" "$total" "$freeze" "$ready" "$drain" "$seq" "$nudges"
done
