#!/usr/bin/env bash
# bench_dump.sh — pgmover's dump pipeline beside its peers, in one run, on
# the same data: a pgbench database of scale SCALE (default 50) on a local
# Heroku-like source, copied into a fresh target database by
#   - pgmover, engine copy      (parallel COPY streams in one snapshot)
#   - pgmover, engine pg_dump   (pg_dump -Fd -j / pg_restore -j, driven by pgmoverd)
#   - pg_dump -Fc | pg_restore
#   - pg_dump -Fd -j J + pg_restore -j J
#   - pgcopydb clone --table-jobs J --index-jobs J
# Each copy includes schema, data, indexes and constraints. pgmover's time is
# its rehearsal copy as the job records it (facts.copies.rehearsal.duration_ms),
# the same work the final copy does inside the write freeze.
# Usage: bench/bench_dump.sh [SCALE] [JOBS] [ROUNDS]   (prints a table and ratios)
#   TABLES=N instead copies N small tables (a primary key, a unique key, a text
#   column, 20 rows each): the per-table costs of a schema of thousands of tables.
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=${1:-50}
JOBS=${2:-2}
ROUNDS=${3:-1}
TABLES=${TABLES:-}

scripts/deps.sh
[[ -d build ]] || meson setup build >/dev/null
ninja -C build >/dev/null

work=$(mktemp -d /tmp/pgmover-bench.XXXXXX)
chmod 755 "$work"
bed="$work/bed"
daemon_pid=
cleanup() {
    [[ -n "$daemon_pid" ]] && kill -TERM "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
    tests/testbed/testbed.sh stop "$bed" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

tests/testbed/testbed.sh start "$bed" >/dev/null
# shellcheck disable=SC1091
. "$bed/env"
if [[ -n $TABLES ]]; then
    echo "building $TABLES small tables on the source..."
    "$TB_PGBIN/psql" -X -q -v ON_ERROR_STOP=1 "$SOURCE_URL" -c "DO \$\$ BEGIN FOR i IN 1..$TABLES LOOP
        EXECUTE format('CREATE TABLE public.t%s (id int PRIMARY KEY, v text, u int UNIQUE)', i);
        EXECUTE format('INSERT INTO public.t%s SELECT g, ''v'' || g, g FROM generate_series(1, 20) g', i);
        IF i % 200 = 0 THEN COMMIT; END IF;
      END LOOP; END \$\$"
    what="$TABLES small tables"
else
    echo "building a pgbench database of scale $SCALE on the source..."
    "$TB_PGBIN/pgbench" -i -q -s "$SCALE" "$SOURCE_URL" 2>&1 | tail -1
    what="pgbench scale $SCALE"
fi
"$TB_PGBIN/psql" -X -q "$SOURCE_URL" -c "VACUUM ANALYZE" 
size=$("$TB_PGBIN/psql" -X -qAt "$SOURCE_URL" -c "SELECT pg_size_pretty(pg_database_size(current_database()))")
echo "source database: $size; $JOBS parallel jobs; $(nproc) cores"

# a fresh target database per copy (runs happen in subshells: count in a file)
echo 0 > "$work/n"
fresh_target() {
    local n
    n=$(($(cat "$work/n") + 1))
    echo "$n" > "$work/n"
    tests/testbed/testbed.sh createdb "$bed" dst "bench$n" >/dev/null
    echo "postgres://tgt_admin:$TARGET_ADMIN_PASSWORD@127.0.0.1:$TARGET_PORT/bench$n"
}
now() { date +%s.%N; }
elapsed() { echo "$2 - $1" | bc; }

cat > "$work/pgmoverd.conf" <<CONF
socket_path = $work/sock
state_dir = $work/state
log_level = notice
pg_bindir = $TB_PGBIN
CONF
build/pgmoverd -c "$work/pgmoverd.conf" 2>"$work/pgmoverd.log" &
daemon_pid=$!
export PGMOVER_SOCKET="$work/sock"
for _ in $(seq 50); do build/pgmover version >/dev/null 2>&1 && break; sleep 0.1; done

# pgmover ENGINE: seconds of the rehearsal copy
run_pgmover() {
    local engine=$1 target job state
    target=$(fresh_target)
    job="bench$(cat "$work/n")"
    build/pgmover create "$job" --source "$SOURCE_URL" --target "$target" --method dump \
        --set engine="$engine" --set jobs="$JOBS" >/dev/null
    build/pgmover start "$job" >/dev/null
    while :; do
        state=$(build/pgmover status "$job" | awk 'NR == 1 { print $2 }')
        [[ $state == synced ]] && break
        if [[ $state == failed ]]; then build/pgmover status "$job" >&2; exit 1; fi
        sleep 0.1
    done
    build/pgmover --json status "$job" |
        sed -n 's/.*"rehearsal":{"duration_ms":\([0-9.]*\).*/\1/p' | awk '{ printf "%.2f", $1 / 1000 }'
    build/pgmover abort "$job" >/dev/null
}

run_fc() {
    local target t0
    target=$(fresh_target)
    t0=$(now)
    PGPASSWORD=$SOURCE_OWNER_PASSWORD "$TB_PGBIN/pg_dump" -Fc "$SOURCE_URL" |
        PGPASSWORD=$TARGET_ADMIN_PASSWORD "$TB_PGBIN/pg_restore" --no-owner --no-acl -d "$target"
    elapsed "$t0" "$(now)"
}

run_fd() {
    local target t0
    target=$(fresh_target)
    rm -rf "$work/fd"
    t0=$(now)
    PGPASSWORD=$SOURCE_OWNER_PASSWORD "$TB_PGBIN/pg_dump" -Fd -j "$JOBS" -f "$work/fd" "$SOURCE_URL"
    PGPASSWORD=$TARGET_ADMIN_PASSWORD "$TB_PGBIN/pg_restore" -j "$JOBS" --no-owner --no-acl -d "$target" "$work/fd"
    elapsed "$t0" "$(now)"
    rm -rf "$work/fd"
}

run_pgcopydb() {
    local target t0
    target=$(fresh_target)
    rm -rf "$work/pgcopydb"
    t0=$(now)
    pgcopydb clone --source "$SOURCE_URL" --target "$target" --dir "$work/pgcopydb" \
        --table-jobs "$JOBS" --index-jobs "$JOBS" --no-owner --no-acl >"$work/pgcopydb.log" 2>&1 ||
        { tail -20 "$work/pgcopydb.log" >&2; exit 1; }
    elapsed "$t0" "$(now)"
}

declare -A best
record() {
    local name=$1 t=$2
    if [[ -z "${best[$name]:-}" ]] || (($(echo "$t < ${best[$name]}" | bc))); then
        best[$name]=$t
    fi
    printf '  %-32s %8.2f s\n' "$name" "$t"
}

for round in $(seq "$ROUNDS"); do
    echo "round $round:"
    record "pg_dump -Fc | pg_restore" "$(run_fc)"
    record "pg_dump -Fd -j$JOBS + pg_restore -j$JOBS" "$(run_fd)"
    record "pgcopydb clone" "$(run_pgcopydb)"
    record "pgmover (engine pg_dump)" "$(run_pgmover pg_dump)"
    record "pgmover (engine copy)" "$(run_pgmover copy)"
done

peers=("pg_dump -Fc | pg_restore" "pg_dump -Fd -j$JOBS + pg_restore -j$JOBS" "pgcopydb clone")
fastest=
for p in "${peers[@]}"; do
    if [[ -z "$fastest" ]] || (($(echo "${best[$p]} < ${best[$fastest]}" | bc))); then fastest=$p; fi
done
echo
echo "best of $ROUNDS round(s), $what ($size), $JOBS jobs:"
for name in "${peers[@]}" "pgmover (engine pg_dump)" "pgmover (engine copy)"; do
    printf '  %-32s %8.2f s   %5.2fx the fastest peer\n' "$name" "${best[$name]}" \
        "$(echo "scale=4; ${best[$name]} / ${best[$fastest]}" | bc)"
done
printf 'pgmover (engine copy) / fastest peer (%s): %.2f\n' "$fastest" \
    "$(echo "scale=4; ${best["pgmover (engine copy)"]} / ${best[$fastest]}" | bc)"
