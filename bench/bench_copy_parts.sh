#!/usr/bin/env bash
# bench_copy_parts.sh — where a copy's time goes, part by part, without pgmover: each part
# of what `engine = copy` does to pgbench_accounts, timed alone by psql on the same test bed
# as bench_dump.sh, so that pgmover's own phases (the "where:" lines of bench_dump.sh) can
# be set against the floor of each. Every figure is a wall clock of the command, the best
# of ROUNDS, with a CHECKPOINT on both servers before each.
#
#   COPY out          COPY pgbench_accounts TO STDOUT (binary) into /dev/null: the source's part
#   COPY in           the same bytes from a file into COPY ... FROM STDIN (binary, FREEZE, after a
#                     TRUNCATE in the transaction): the target's part
#   COPY in, no WAL   the same into an UNLOGGED table: what the WAL costs
#   pipe              psql COPY out | psql COPY in (FREEZE): the data phase with no pgmoverd
#   pipe, 2 halves    two pipes of half the blocks each (ctid ranges, no FREEZE): a split table
#   index             ALTER TABLE ADD PRIMARY KEY after the load, maintenance_work_mem 256MB
#                     (as pgmover's pg_restore), with and without parallel maintenance workers
#   pipe + index      the floor of a COPY-based copy of the table with its key
#
# Usage: bench/bench_copy_parts.sh [SCALE] [ROUNDS]      (defaults 30 3)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
SCALE=${1:-30}
ROUNDS=${2:-3}

bench_build
bench_bed
echo "building a pgbench database of scale $SCALE on the source..."
"$TB_PGBIN/pgbench" -i -q -s "$SCALE" "$SOURCE_URL" 2>&1 | tail -1
$SOURCE_PSQL -c "VACUUM ANALYZE"
blocks=$($SOURCE_PSQL -Atc "SELECT pg_relation_size('pgbench_accounts') / 8192")
half=$((blocks / 2))
$SOURCE_PSQL -c "COPY pgbench_accounts TO STDOUT (FORMAT binary)" >"$work/accounts.bin"
chmod 644 "$work/accounts.bin"
COLS="aid int NOT NULL, bid int, abalance int, filler char(84)"

checkpoint() { $SOURCE_PSQL -c CHECKPOINT >/dev/null && $TARGET_PSQL -c CHECKPOINT >/dev/null; }
fresh() { $TARGET_PSQL -c "DROP TABLE IF EXISTS a; CREATE ${1:-} TABLE a ($COLS)" >/dev/null; }
out_part() { $SOURCE_PSQL -c "COPY pgbench_accounts TO STDOUT (FORMAT binary)" >/dev/null; }
load() { $TARGET_PSQL -c BEGIN -c "TRUNCATE a" -c "\\copy a FROM ${1:-STDIN} (FORMAT binary, FREEZE)" -c COMMIT >/dev/null; }
in_part() { load "'$work/accounts.bin'"; }
pipe() { $SOURCE_PSQL -c "COPY pgbench_accounts TO STDOUT (FORMAT binary)" | load; }
half_pipe() {
    $SOURCE_PSQL -c "COPY (SELECT * FROM ONLY pgbench_accounts WHERE ctid $1 '($half,0)'::tid) TO STDOUT (FORMAT binary)" |
        $TARGET_PSQL -c "\\copy a FROM STDIN (FORMAT binary)" >/dev/null
}
halves() {
    half_pipe '<' &
    half_pipe '>='
    wait
}
index() { $TARGET_PSQL -c "SET maintenance_work_mem = '256MB'" -c "SET max_parallel_maintenance_workers = $1" \
    -c "ALTER TABLE a ADD PRIMARY KEY (aid)" >/dev/null; }

declare -A best
# time_part NAME PREPARE RUN...: PREPARE (untimed, may be :), a CHECKPOINT, then RUN timed
time_part() {
    local name=$1 prep=$2 t0 t
    shift 2
    $prep
    checkpoint
    t0=$(now)
    "$@"
    t=$(echo "$(now) - $t0" | bc)
    if [[ -z ${best[$name]:-} ]] || (($(echo "$t < ${best[$name]}" | bc))); then best[$name]=$t; fi
    printf '  %-40s %6.2f s\n' "$name" "$t"
}
loaded() { fresh && load "'$work/accounts.bin'"; }
fresh_plain() { fresh; }
fresh_unlogged() { fresh UNLOGGED; }
pipe_index() {
    pipe
    index 2
}
for r in $(seq "$ROUNDS"); do
    echo "round $r:"
    time_part "COPY out" : out_part
    time_part "COPY in" fresh_plain in_part
    time_part "COPY in, no WAL (unlogged)" fresh_unlogged in_part
    time_part "pipe" fresh_plain pipe
    time_part "pipe, 2 halves at once" fresh_plain halves
    time_part "index, parallel workers 2" loaded index 2
    time_part "index, parallel workers 0" loaded index 0
    time_part "pipe + index (the floor)" fresh_plain pipe_index
done
echo
echo "pgbench_accounts, scale $SCALE ($(du -h "$work/accounts.bin" | cut -f1) in binary COPY), best of $ROUNDS:"
for name in "COPY out" "COPY in" "COPY in, no WAL (unlogged)" "pipe" "pipe, 2 halves at once" \
    "index, parallel workers 2" "index, parallel workers 0" "pipe + index (the floor)"; do
    printf '  %-40s %6.2f s\n' "$name" "${best[$name]}"
done
