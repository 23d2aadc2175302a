#!/usr/bin/env bash
# bench_dump.sh — pgmover's dump pipeline beside its peers, in one run, on the
# same data, timed as the user waits: the wall clock from the command to the
# result, never a figure a tool reports about itself.
#
# A pgbench database of scale SCALE (default 30) on the local Heroku-like source
# is copied into a fresh target database (schema, data, indexes, constraints) by
#   - pgmover, engine copy   `pgmover start` until `watch --until synced` returns
#                            (preflight, provisioning and the rehearsal copy:
#                            what the operator waits for before the freeze)
#   - pg_dump -Fc | pg_restore
#   - pg_dump -Fd -j J + pg_restore -j J
#   - pgcopydb clone --table-jobs J --index-jobs J
# and, for pgmover only, `pgmover freeze` until `watch --until frozen` returns (the
# final copy, writes stopped: set beside the rehearsal's start -> synced) and until
# `watch --until verified` returns: the write downtime before cutover (final copy,
# freeze proof, verification). After each pgmover run a line says where its time went:
# before the copy (preflight, provisioning: the wall clock less the copy's own
# duration) and each phase of the rehearsal copy as pgmover recorded it -- a
# breakdown, never a figure the ratios use.
# Before each copy: a fresh target database and a CHECKPOINT on both servers.
# The order of the tools rotates from round to round. Each source mode runs
# every round: MODES="plain tls" (default) — plain: the Unix socket, no TLS;
# tls: the TCP + TLS (sslmode=require) connection a Heroku source has.
#
# Usage: bench/bench_dump.sh [SCALE] [JOBS] [ROUNDS]      (defaults 30 2 3)
#   TABLES=N copies N small tables instead of pgbench's (a primary key, a unique
#   key, a text column, 20 rows each). PGM_BUILD=DIR uses that build.
# Prints every run, then per mode the median and the best of the rounds and each
# tool's ratio to the fastest peer (by median, and best against best).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
SCALE=${1:-30}
JOBS=${2:-2}
ROUNDS=${3:-3}
TABLES=${TABLES:-}
MODES=${MODES:-plain tls}

bench_build
bench_bed
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
$SOURCE_PSQL -c "VACUUM ANALYZE" # as the superuser: no warnings about the catalogs
size=$("$TB_PGBIN/psql" -X -qAt "$SOURCE_URL" -c "SELECT pg_size_pretty(pg_database_size(current_database()))")
echo "source database: $size; $JOBS parallel jobs; $(nproc) cores; modes: $MODES; $ROUNDS round(s)"
bench_daemon

# the source's URL in a mode: the Unix socket (trust, no TLS), or TCP with TLS
source_url() {
    case $1 in
    plain) echo "postgresql://app_owner@/appdb?host=$TB_DIR&port=$SOURCE_PORT" ;;
    tls) echo "$SOURCE_URL" ;;
    esac
}

# a fresh target database per copy, and a CHECKPOINT on both servers before it. The
# copy before is emptied first (DROP SCHEMA: DROP DATABASE hangs with pglogical
# preloaded): left in place, autovacuum would visit its freshly loaded tables during the
# next tool's copy -- the 384 MB pgbench_accounts a peer loads without FREEZE, on the
# same 2 cores -- and slow whichever tool comes after it (measured: pgmover's data phase
# 2.2-2.3 s after a peer, 1.4-1.5 s otherwise)
n=0
fresh_target() {
    if ((n > 0)); then
        $TARGET_PSQL -d "bench$n" -c "DROP SCHEMA IF EXISTS public CASCADE; DROP SCHEMA IF EXISTS pgbench CASCADE" \
            >/dev/null 2>&1 || true
    fi
    n=$((n + 1))
    tests/testbed/testbed.sh createdb "$bed" dst "bench$n" >/dev/null
    $SOURCE_PSQL -c CHECKPOINT >/dev/null
    $TARGET_PSQL -c CHECKPOINT >/dev/null
    target="postgres://tgt_admin:$TARGET_ADMIN_PASSWORD@127.0.0.1:$TARGET_PORT/bench$n"
}
elapsed() { echo "$2 - $1" | bc; }

# each run sets T (seconds); pgmover also FROZEN_T (freeze -> frozen) and FREEZE_T (-> verified)
run_pgmover() {
    local src=$1 job t0
    fresh_target
    job="bench$n"
    "$BUILD/pgmover" create "$job" --source "$src" --target "$target" --method dump \
        --set engine=copy --set jobs="$JOBS" --set rollback_window=0 --set cutover_command=true >/dev/null
    t0=$(now)
    "$BUILD/pgmover" start "$job" >/dev/null
    "$BUILD/pgmover" watch "$job" --until synced >/dev/null || { "$BUILD/pgmover" status "$job" >&2; exit 1; }
    T=$(elapsed "$t0" "$(now)")
    PHASES=$("$BUILD/pgmover" --json status "$job" | jq -r --arg T "$T" '.result.facts.copies.rehearsal as $r
        | "    where: before the copy \(($T | tonumber) - $r.duration_ms / 1000 | . * 100 | round / 100) s; copy "
        + ($r.phases_ms | to_entries | map("\(.key) \(.value / 1000 | . * 100 | round / 100)") | join(", "))')
    t0=$(now)
    "$BUILD/pgmover" freeze "$job" >/dev/null
    # frozen: writes stopped and the final copy in (its proof and the verification follow)
    rm -f "$work/frozen_at"
    { "$BUILD/pgmover" watch "$job" --until frozen >/dev/null && now >"$work/frozen_at"; } &
    "$BUILD/pgmover" watch "$job" --until verified >/dev/null || { "$BUILD/pgmover" status "$job" >&2; exit 1; }
    FREEZE_T=$(elapsed "$t0" "$(now)")
    wait $!
    FROZEN_T=$(elapsed "$t0" "$(cat "$work/frozen_at")")
    "$BUILD/pgmover" abort "$job" >/dev/null
    "$BUILD/pgmover" watch "$job" --until aborted >/dev/null || true
}

run_fc() {
    local src=$1 t0
    fresh_target
    t0=$(now)
    PGPASSWORD=$SOURCE_OWNER_PASSWORD "$TB_PGBIN/pg_dump" -Fc "$src" |
        PGPASSWORD=$TARGET_ADMIN_PASSWORD "$TB_PGBIN/pg_restore" --no-owner --no-acl -d "$target"
    T=$(elapsed "$t0" "$(now)")
}

run_fd() {
    local src=$1 t0
    fresh_target
    rm -rf "$work/fd"
    t0=$(now)
    PGPASSWORD=$SOURCE_OWNER_PASSWORD "$TB_PGBIN/pg_dump" -Fd -j "$JOBS" -f "$work/fd" "$src"
    PGPASSWORD=$TARGET_ADMIN_PASSWORD "$TB_PGBIN/pg_restore" -j "$JOBS" --no-owner --no-acl -d "$target" "$work/fd"
    T=$(elapsed "$t0" "$(now)")
    rm -rf "$work/fd"
}

run_pgcopydb() {
    local src=$1 t0
    fresh_target
    rm -rf "$work/pgcopydb"
    t0=$(now)
    PGPASSWORD=$SOURCE_OWNER_PASSWORD pgcopydb clone --source "$src" --target "$target" --dir "$work/pgcopydb" \
        --table-jobs "$JOBS" --index-jobs "$JOBS" --no-owner --no-acl >"$work/pgcopydb.log" 2>&1 ||
        { tail -20 "$work/pgcopydb.log" >&2; exit 1; }
    T=$(elapsed "$t0" "$(now)")
}

tools=(fc fd pgcopydb pgmover)
declare -A label=([fc]="pg_dump -Fc | pg_restore" [fd]="pg_dump -Fd -j$JOBS + pg_restore -j$JOBS"
    [pgcopydb]="pgcopydb clone" [pgmover]="pgmover start -> synced" [frozen]="pgmover freeze -> frozen"
    [freeze]="pgmover freeze -> verified")
declare -A times # "mode tool" -> space-separated seconds

for round in $(seq "$ROUNDS"); do
    for mode in $MODES; do
        src=$(source_url "$mode")
        echo "round $round, $mode source:"
        for i in "${!tools[@]}"; do
            tool=${tools[$(((i + round - 1) % ${#tools[@]}))]}
            "run_$tool" "$src"
            times["$mode $tool"]+="$T "
            printf '  %-32s %8.2f s\n' "${label[$tool]}" "$T"
            if [[ $tool == pgmover ]]; then
                times["$mode freeze"]+="$FREEZE_T "
                echo "$PHASES"
                times["$mode frozen"]+="$FROZEN_T "
                printf '  %-32s %8.2f s\n' "${label[frozen]}" "$FROZEN_T"
                printf '  %-32s %8.2f s\n' "${label[freeze]}" "$FREEZE_T"
            fi
        done
    done
done

median() { tr ' ' '\n' <<<"$1" | sed '/^$/d' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
best() { tr ' ' '\n' <<<"$1" | sed '/^$/d' | sort -g | head -1; }
ratio() { echo "scale=4; $1 / $2" | bc; }

for mode in $MODES; do
    fm= fb=
    for p in fc fd pgcopydb; do
        m=$(median "${times["$mode $p"]}") b=$(best "${times["$mode $p"]}")
        if [[ -z $fm ]] || (($(echo "$m < $fm" | bc))); then fm=$m fmn=$p; fi
        if [[ -z $fb ]] || (($(echo "$b < $fb" | bc))); then fb=$b; fi
    done
    echo
    echo "$what ($size), $mode source, $JOBS jobs, $ROUNDS round(s): median / best, ratio to the fastest peer"
    for t in fc fd pgcopydb pgmover; do
        m=$(median "${times["$mode $t"]}") b=$(best "${times["$mode $t"]}")
        printf '  %-32s %8.2f s / %8.2f s   %5.2fx / %5.2fx\n' "${label[$t]}" "$m" "$b" "$(ratio "$m" "$fm")" \
            "$(ratio "$b" "$fb")"
    done
    printf '  %-32s %8.2f s / %8.2f s   %5.2fx / %5.2fx the rehearsal (start -> synced)\n' "${label[frozen]}" \
        "$(median "${times["$mode frozen"]}")" "$(best "${times["$mode frozen"]}")" \
        "$(ratio "$(median "${times["$mode frozen"]}")" "$(median "${times["$mode pgmover"]}")")" \
        "$(ratio "$(best "${times["$mode frozen"]}")" "$(best "${times["$mode pgmover"]}")")"
    printf '  %-32s %8.2f s / %8.2f s   (the write downtime before cutover)\n' "${label[freeze]}" \
        "$(median "${times["$mode freeze"]}")" "$(best "${times["$mode freeze"]}")"
    printf '%s source: pgmover start -> synced / fastest peer (%s, by median): %.2f\n' "$mode" "${label[$fmn]}" \
        "$(ratio "$(median "${times["$mode pgmover"]}")" "$fm")"
done
