#!/usr/bin/env bash
# bench_verify.sh — pgmover's verification beside its floor and the naive way,
# in one run, on the same data: a pgbench database of scale SCALE (default 50)
# on a local Heroku-like source, copied (pg_dump | pg_restore) into a target on
# a second cluster, both vacuumed and analyzed. Times, best of ROUNDS (default 7):
#   (a) floor:  count(*) of every table, one session per side, both sides at once
#               (as a DBA would type it: the server's defaults, JIT and parallel
#               workers included)
#   (b) naive:  md5(string_agg(md5(t::text), '' ORDER BY key)) of every table,
#               one session per side, both sides at once (NAIVE_ROUNDS, default 2)
#   (c) pgmover verify --source --target (JOBS connections per side)
# and prints the ratios (c)/(a) -- best against best, and the median of each
# round's own ratio, which a noisy machine moves less -- and (b)/(a).
# Target: (c) within 2x of (a).
# No limit is enforced: this measures, it does not pass or fail.
# JOBS defaults to half the cores: both clusters run on this machine and share
# them, as the floor's two sessions (one per side) do; on a 2-core machine a
# second connection per side only makes the servers take turns, and costs
# pgmover block ranges, which scan slower than one sequential scan (see
# pgm_vplan_block_chunks in src/pipeline/verify/verify_plan.c). Pass JOBS to see it.
# Usage: bench/bench_verify.sh [SCALE] [JOBS] [ROUNDS]
#   BUILD=DIR picks the build directory (default: build, set up if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=${1:-50}
JOBS=${2:-$(($(nproc) / 2 > 0 ? $(nproc) / 2 : 1))}
ROUNDS=${3:-7}
NAIVE_ROUNDS=${NAIVE_ROUNDS:-2}
BUILD=${BUILD:-build}

scripts/deps.sh
[[ -d $BUILD ]] || meson setup "$BUILD" >/dev/null
ninja -C "$BUILD" >/dev/null

work=$(mktemp -d /tmp/pgmover-bench.XXXXXX)
chmod 755 "$work"
bed="$work/bed"
cleanup() {
    tests/testbed/testbed.sh stop "$bed" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

tests/testbed/testbed.sh start "$bed" >/dev/null
# shellcheck disable=SC1091
. "$bed/env"
echo "building a pgbench database of scale $SCALE on the source..."
"$TB_PGBIN/pgbench" -i -q -s "$SCALE" "$SOURCE_URL" 2>&1 | tail -1
tests/testbed/testbed.sh createdb "$bed" dst bench >/dev/null
TARGET="postgres://tgt_admin:$TARGET_ADMIN_PASSWORD@127.0.0.1:$TARGET_PORT/bench"
"$TB_PGBIN/pg_dump" -Fc "$SOURCE_URL" | "$TB_PGBIN/pg_restore" --no-owner --no-acl -d "$TARGET"
tests/testbed/testbed.sh psql "$bed" src appdb -c "VACUUM ANALYZE" >/dev/null
tests/testbed/testbed.sh psql "$bed" dst bench -c "VACUUM ANALYZE" >/dev/null
size=$("$TB_PGBIN/psql" -X -qAt "$SOURCE_URL" -c "SELECT pg_size_pretty(pg_database_size(current_database()))")
echo "source database: $size; $JOBS connections per side for pgmover; $(nproc) cores"

now() { date +%s.%N; }
psql_q() { "$TB_PGBIN/psql" -X -qAt -v ON_ERROR_STOP=1 "$@" >/dev/null; }

# one SQL script per side, with a statement per table
tables=(pgbench_accounts pgbench_branches pgbench_tellers pgbench_history)
declare -A keyof=([pgbench_accounts]=aid [pgbench_branches]=bid [pgbench_tellers]=tid
    [pgbench_history]="md5(t::text)")
: >"$work/count.sql"
: >"$work/naive.sql"
for t in "${tables[@]}"; do
    echo "SELECT count(*) FROM $t;" >>"$work/count.sql"
    echo "SELECT md5(string_agg(md5(t::text), '' ORDER BY ${keyof[$t]})) FROM $t t;" >>"$work/naive.sql"
done

# both sides at once, one session each; prints the seconds
both_sides() {
    local script=$1 t0 p1 p2
    t0=$(now)
    psql_q "$SOURCE_URL" -f "$script" &
    p1=$!
    psql_q "$TARGET" -f "$script" &
    p2=$!
    wait "$p1"
    wait "$p2"
    echo "$(now) - $t0" | bc
}

run_pgmover() {
    local t0 rc=0
    t0=$(now)
    PGMOVER_VERIFY_JOBS=$JOBS "$BUILD/pgmover" verify --json --source "$SOURCE_URL" --target "$TARGET" \
        >"$work/report.json" || rc=$?
    local t
    t=$(echo "$(now) - $t0" | bc)
    if [[ $rc -ne 0 ]]; then
        echo "pgmover verify failed (exit $rc):" >&2
        cat "$work/report.json" >&2
        exit 1
    fi
    echo "$t"
}

declare -A best
record() {
    local name=$1 t=$2
    if [[ -z "${best[$name]:-}" ]] || (($(echo "$t < ${best[$name]}" | bc))); then
        best[$name]=$t
    fi
    printf '  %-44s %8.3f s\n' "$name" "$t"
}

# warm both caches once
both_sides "$work/count.sql" >/dev/null
ratios=()
for round in $(seq "$ROUNDS"); do
    echo "round $round:"
    ta=$(both_sides "$work/count.sql")
    record "(a) count(*) per table, both sides at once" "$ta"
    # the naive way takes 25 times as long and is only there for scale: two rounds
    if ((round <= NAIVE_ROUNDS)); then
        record "(b) naive md5(string_agg(...)), both sides" "$(both_sides "$work/naive.sql")"
    fi
    tc=$(run_pgmover)
    record "(c) pgmover verify (jobs=$JOBS)" "$tc"
    ratios+=("$(echo "scale=4; $tc / $ta" | bc)")
done

a=${best["(a) count(*) per table, both sides at once"]}
b=${best["(b) naive md5(string_agg(...)), both sides"]}
c=${best["(c) pgmover verify (jobs=$JOBS)"]}
median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}')
echo
echo "best of $ROUNDS round(s), pgbench scale $SCALE ($size):"
printf '  (a) floor  %8.3f s\n  (b) naive  %8.3f s\n  (c) pgmover %7.3f s\n' "$a" "$b" "$c"
printf 'pgmover / floor: %.2fx best against best, %.2fx the median of the rounds (target: within 2x)\n' \
    "$(echo "scale=4; $c / $a" | bc)" "$median"
printf 'naive / floor:   %.2fx\n' "$(echo "scale=4; $b / $a" | bc)"
printf 'naive / pgmover: %.2fx\n' "$(echo "scale=4; $b / $c" | bc)"
