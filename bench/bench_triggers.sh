#!/usr/bin/env bash
# bench_triggers.sh — pgmover's triggers method on a Heroku-like source (TLS, wal_level =
# replica, nothing preloaded, the database owner no superuser) and a managed-like target
# (its role owns the database, no superuser): a pgbench database of scale SCALE (default
# 10) moved by a triggers job, in one run:
#   1. the write overhead on the source: pgbench TPC-B, CLIENTS clients (default 4),
#      unthrottled, LOAD seconds, on a database without capture and on the job's database
#      with its capture installed, pgmoverd following (everything on this machine's cores)
#      and pgmoverd stopped (the triggers alone); ROUNDS rounds (default 3) in rotated
#      order, VACUUM of the small tables and CHECKPOINT on both servers before each run;
#      the median tps of each and the overhead against the database without capture
#   2. the apply rate: pgbench unthrottled for LOAD seconds while the job follows, then
#      the wall clock from the load's end until the log is drained (log_rows_behind 0 and
#      the target's pgbench_history as long as the source's); rows changed a second
#      (pgbench's transactions x 4: three UPDATEs and an INSERT), rows applied a second
#      over load + drain, their ratio, and the catch-up rate (the backlog at the load's
#      end, counted in the source's change log, over the drain's time); and the apply's
#      rate with no load: the log counted when pgmoverd starts again after the runs of 1.
#      without it, over the wall clock until drained (pgmoverd's start included)
#   3. the write freeze, TRIALS times (default 10): pgbench at RATE tx/s (default 500),
#      `pgmover freeze`, polled until verified (the script's wall clock from the command
#      to the state); the transactions pgbench committed against the rows the target's
#      pgbench_history gained; `pgmover thaw`, synced again. p50 / p99 / max of the
#      freeze -> verified time (nearest rank), and the lost transactions
# Every time is the script's wall clock, never a duration pgmover reports about itself.
# Usage: bench/bench_triggers.sh [SCALE] [LOAD_SECONDS] [TRIALS]
#   env: CLIENTS (4), ROUNDS (3), RATE (500), PGM_BUILD=DIR (an existing build directory
#   instead of building ./build), KEEP_LOGS=DIR (pgmoverd's and pgbench's logs copied there)
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=${1:-10}
LOAD=${2:-60}
TRIALS=${3:-10}
CLIENTS=${CLIENTS:-4}
ROUNDS=${ROUNDS:-3}
RATE=${RATE:-500}
KEEP_LOGS=${KEEP_LOGS:-}

# a Heroku-like source, a managed-like target
export TB_SOURCE_WAL_LEVEL=replica TB_SOURCE_PRELOAD='' TB_TARGET_ROLE=owner

# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_build
bench_bed
keep_logs() {
    [[ -n $KEEP_LOGS && -d ${work:-} ]] || return 0
    mkdir -p "$KEEP_LOGS"
    cp "$work"/pgmoverd.log* "$work"/*.pgbench "$bed"/src.log "$bed"/dst.log "$KEEP_LOGS"/ 2>/dev/null || true
}
trap 'keep_logs; _bench_cleanup' EXIT

tests/testbed/testbed.sh createdb "$bed" src bench >/dev/null
tests/testbed/testbed.sh createdb "$bed" src plain >/dev/null
tests/testbed/testbed.sh createdb "$bed" dst bench >/dev/null
SRC=${SOURCE_URL/\/appdb\?//bench?}
PLAIN=${SOURCE_URL/\/appdb\?//plain?}
DST=${TARGET_URL%/appdb}/bench
SCHEMA=pgmover_capture_bench

sq() { "$TB_PGBIN/psql" -X -qAt "$SRC" -c "$1"; }
pq() { "$TB_PGBIN/psql" -X -qAt "$PLAIN" -c "$1"; }
tq() { "$TB_PGBIN/psql" -X -qAt "$DST" -c "$1"; }
elapsed() { echo "$2 - $1" | bc -l; }
ms() { echo "($2 - $1) * 1000" | bc -l | awk '{ printf "%.0f", $1 }'; }
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
# nearest rank: P N (0-100) over the numbers on stdin
pct() { sort -n | awk -v p="$1" '{ a[NR] = $1 } END { i = int(NR * p / 100); if (i < NR * p / 100) i++; if (i < 1) i = 1; print a[i] }'; }

echo "building two pgbench databases of scale $SCALE on the source (bench: the job's; plain: no capture)..."
"$TB_PGBIN/pgbench" -i -q -s "$SCALE" "$SRC" 2>&1 | tail -1
"$TB_PGBIN/pgbench" -i -q -s "$SCALE" "$PLAIN" 2>&1 | tail -1
# (the owner's VACUUM of a whole database warns about every shared catalog)
"$TB_PGBIN/psql" -X -q "$SRC" -c "SET client_min_messages = error" -c "VACUUM ANALYZE"
"$TB_PGBIN/psql" -X -q "$PLAIN" -c "SET client_min_messages = error" -c "VACUUM ANALYZE"
size=$(sq "SELECT pg_size_pretty(pg_database_size(current_database()))")
echo "source database: $size; $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"

bench_daemon
t0=$(now)
"$BUILD/pgmover" create bench --source "$SRC" --target "$DST" --method triggers >/dev/null
"$BUILD/pgmover" start bench >/dev/null
wait_within 600 synced
sync_s=$(elapsed "$t0" "$(now)")

# the job has applied everything logged: a round found nothing, and pgbench_history (the
# one table pgbench only appends to) is as long on the target as on the source
hist_src() { sq "SELECT count(*) FROM pgbench_history"; }
hist_dst() { tq "SELECT count(*) FROM pgbench_history"; }
drained() {
    local b
    b=$(st '.step.log_rows_behind // -1' 2>/dev/null) || return 1
    [[ $b == 0 ]] && [[ $(hist_src) == "$(hist_dst)" ]]
}
# the log rows on the source (counted by the script, in pgmover's schema)
log_rows() {
    local expr
    expr=$(sq "SELECT coalesce(string_agg(format('(SELECT count(*) FROM %I.%I)', n.nspname, c.relname), ' + '), '0')
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = '$SCHEMA' AND c.relkind = 'r' AND c.relname ~ '^[kr][0-9]+\$'")
    sq "SELECT $expr"
}
within 600 drained || { echo "the job did not drain after its sync" >&2; exit 1; }
tables=$(sq "SELECT count(*) FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
               JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = '$SCHEMA'")
echo "job bench synced in $(printf %.2f "$sync_s") s (create -> synced, wall clock); $tables capture triggers on the source"

checkpoint() {
    tests/testbed/testbed.sh psql "$bed" src bench -c CHECKPOINT
    tests/testbed/testbed.sh psql "$bed" dst bench -c CHECKPOINT
}
prep_db() { "$TB_PGBIN/psql" -X -q "$1" -c "VACUUM ANALYZE pgbench_branches, pgbench_tellers"; }

# ---------------------------------------------------------------------------------------
# 1. write overhead
#   plain   the database without capture (pgmoverd stopped)
#   follow  the job's database, pgmoverd following (drained before the run)
#   idle    the job's database, pgmoverd stopped: the triggers' cost alone

declare -A tps
variants=(plain follow idle)
declare -A label=([plain]="no capture" [follow]="capture, pgmoverd following" [idle]="capture, pgmoverd stopped")
declare -a restart_drain restart_rows
# pgmoverd started again after runs without it: the log it finds (counted while it stands
# still) and the wall clock until it is drained: the apply's rate with no write load
restart() {
    local t
    restart_rows+=("$(log_rows)")
    t=$(now)
    bench_daemon
    wait_within 120 synced
    within 900 drained || { echo "the job did not drain after pgmoverd restarted" >&2; exit 1; }
    restart_drain+=("$(elapsed "$t" "$(now)")")
}

# run_tps VARIANT ROUND: one unthrottled run; its tps in $x (not in a subshell: it starts and
# stops pgmoverd, whose pid the EXIT trap needs)
run_tps() {
    local v=$1 r=$2 db=$SRC f t
    case $v in
        plain)
            bench_daemon_stop
            db=$PLAIN
            ;;
        idle) bench_daemon_stop ;;
        follow)
            [[ -n $daemon_pid ]] || restart
            ;;
    esac
    prep_db "$db"
    checkpoint
    f="$work/overhead-$v-$r.pgbench"
    "$TB_PGBIN/pgbench" -n -c "$CLIENTS" -j 2 -T "$LOAD" "$db" >"$f" 2>&1 &
    load_pid=$!
    wait "$load_pid" || { cat "$f" >&2; exit 1; }
    load_pid=
    x=$(pgbench_tps "$f")
}

echo
echo "1. write overhead: pgbench TPC-B, $CLIENTS clients, unthrottled, $LOAD s a run, $ROUNDS rounds"
# warm both databases' caches (not counted)
for db in "$PLAIN" "$SRC"; do "$TB_PGBIN/pgbench" -n -c "$CLIENTS" -j 2 -T 5 "$db" >/dev/null 2>&1; done
within 300 drained || { echo "the job did not drain after the warm-up" >&2; exit 1; }
for ((r = 1; r <= ROUNDS; r++)); do
    line="  round $r:"
    for ((k = 0; k < 3; k++)); do
        v=${variants[$(((r - 1 + k) % 3))]}
        run_tps "$v" "$r"
        tps[$v]+="$(printf %.0f "$x") "
        line+=$(printf '  %s %.0f' "$v" "$x")
    done
    echo "$line tx/s"
done
# leave pgmoverd running and the log drained for what follows
[[ -n $daemon_pid ]] || restart
within 900 drained || { echo "the job did not drain after the last run" >&2; exit 1; }
declare -A med
for v in "${variants[@]}"; do med[$v]=$(tr ' ' '\n' <<<"${tps[$v]}" | grep . | median); done
ovh() { echo "(1 - ${med[$1]} / ${med[plain]}) * 100" | bc -l; }

# ---------------------------------------------------------------------------------------
# 2. apply rate

echo
echo "2. apply rate: pgbench TPC-B, $CLIENTS clients, unthrottled, $LOAD s, while the job follows"
a_h0=$(hist_dst)
samples="$work/lag"
: >"$samples"
checkpoint
f="$work/apply.pgbench"
t0=$(now)
"$TB_PGBIN/pgbench" -n -c "$CLIENTS" -j 2 -T "$LOAD" "$SRC" >"$f" 2>&1 &
load_pid=$!
i=0
while kill -0 "$load_pid" 2>/dev/null; do
    sleep 1
    i=$((i + 1))
    b=$(st '.step.log_rows_behind // 0' 2>/dev/null) || b=0
    hs=$(hist_src)
    hd=$(hist_dst)
    echo "$i $b $((hs - hd))" >>"$samples"
    ((i % 10 == 0)) && printf '  %4d s: log rows behind (status) %8d; pgbench_history rows behind (counted) %7d\n' \
        "$i" "$b" "$((hs - hd))"
    ((i < LOAD + 60)) || { echo "pgbench did not end" >&2; exit 1; }
done
wait "$load_pid" || { cat "$f" >&2; exit 1; }
load_pid=
t_load=$(now)
backlog=$(log_rows)
hs_end=$(hist_src)
hd_end=$(hist_dst)
within 900 drained || { echo "the job did not drain after the load" >&2; exit 1; }
t_done=$(now)
written=$(pgbench_tx "$f")
apply_tps=$(pgbench_tps "$f")
load_s=$(elapsed "$t0" "$t_load")
drain_s=$(elapsed "$t_load" "$t_done")
rows=$((written * 4))
write_rate=$(echo "$rows / $load_s" | bc -l)
apply_rate=$(echo "$rows / ($load_s + $drain_s)" | bc -l)
catchup_rate=$(echo "$backlog / $drain_s" | bc -l)
if ((backlog > 0)); then
    catchup=$(printf '%.0f rows/s: %.2fx the write rate' "$catchup_rate" "$(echo "$catchup_rate / $write_rate" | bc -l)")
else
    catchup="n/a: nothing was left at the load's end"
fi
added=$(($(hist_dst) - a_h0))
read -r lavg lmax havg hmax < <(awk '{ b += $2; if ($2 > bm) bm = $2; h += $3; if ($3 > hm) hm = $3 }
    END { printf "%.0f %d %.0f %d\n", b / NR, bm, h / NR, hm }' "$samples")

# ---------------------------------------------------------------------------------------
# 3. the write freeze

echo
echo "3. write freeze: pgbench TPC-B at $RATE tx/s, $CLIENTS clients; freeze -> verified, $TRIALS trials"
declare -a fv fz vy lost extra
load_gone() { ! kill -0 "$load_pid" 2>/dev/null; }
total_tx=0
total_lost=0
for ((n = 1; n <= TRIALS; n++)); do
    within 300 drained || { echo "trial $n: the job did not drain before the freeze" >&2; exit 1; }
    h0=$(hist_dst)
    s0=$(hist_src)
    f="$work/freeze-$n.pgbench"
    "$TB_PGBIN/pgbench" -n -c "$CLIENTS" -j 2 -R "$RATE" -T 300 "$SRC" >"$f" 2>&1 &
    load_pid=$!
    sleep 3
    t0=$(now)
    "$BUILD/pgmover" freeze bench >/dev/null
    t_frozen='' t_verifying='' t_verified=''
    end=$(($(date +%s) + 120))
    while :; do
        s=$(st .state 2>/dev/null) || s=
        t=$(now)
        case $s in
            frozen) : "${t_frozen:=$t}" ;;
            verifying) : "${t_frozen:=$t}" "${t_verifying:=$t}" ;;
            verified)
                : "${t_frozen:=$t}" "${t_verifying:=$t}"
                t_verified=$t
                break
                ;;
            failed | verify_failed)
                "$BUILD/pgmover" status bench >&2
                exit 1
                ;;
        esac
        (($(date +%s) < end)) || { echo "trial $n: not verified after 120 s (state $s)" >&2; exit 1; }
        sleep 0.02
    done
    # the freeze ended pgbench's sessions; it ends by itself
    if ! within 15 load_gone; then
        echo "trial $n: pgbench still runs 15 s after the freeze (its sessions were not ended)" >&2
        kill "$load_pid" 2>/dev/null || true
    fi
    wait "$load_pid" 2>/dev/null || true
    load_pid=
    tx=$(pgbench_tx "$f")
    add=$(($(hist_dst) - h0))
    sadd=$(($(hist_src) - s0))
    fv[n]=$(ms "$t0" "$t_verified")
    fz[n]=$(ms "$t0" "$t_frozen")
    vy[n]=$(ms "$t_verifying" "$t_verified")
    lost[n]=$((tx > add ? tx - add : 0))
    extra[n]=$((add > tx ? add - tx : 0))
    total_tx=$((total_tx + tx))
    total_lost=$((total_lost + lost[n]))
    tool=$(st '.facts.freeze.freeze_to_drained_ms // "-"')
    printf '  trial %2d: freeze -> verified %5d ms (-> frozen %4d, verifying %4d; the tool says freeze -> drained %s ms);' \
        "$n" "${fv[n]}" "${fz[n]}" "${vy[n]}" "$tool"
    printf ' pgbench committed %d, the target gained %d (the source %d): %d lost\n' "$tx" "$add" "$sadd" "${lost[n]}"
    "$BUILD/pgmover" thaw bench >/dev/null
    wait_within 120 synced
done
"$BUILD/pgmover" abort bench >/dev/null
wait_within 120 aborted
left=$(sq "SELECT (SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'pgmover%')
                + (SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'pgmover%')")

# ---------------------------------------------------------------------------------------
# results

p50=$(printf '%s\n' "${fv[@]}" | pct 50)
p99=$(printf '%s\n' "${fv[@]}" | pct 99)
pmax=$(printf '%s\n' "${fv[@]}" | sort -n | tail -1)
fz50=$(printf '%s\n' "${fz[@]}" | pct 50)
vy50=$(printf '%s\n' "${vy[@]}" | pct 50)
extras=0
for x in "${extra[@]}"; do extras=$((extras + x)); done
restarts=
best_rows=0 best_s=1
for k in "${!restart_drain[@]}"; do
    restarts+=$(printf '%d rows in %.1f s, ' "${restart_rows[k]}" "${restart_drain[k]}")
    # the largest backlog: the least dominated by pgmoverd's start
    if ((restart_rows[k] > best_rows)); then best_rows=${restart_rows[k]} best_s=${restart_drain[k]}; fi
done

echo
printf '%-58s %s\n' "pgbench scale $SCALE ($size), $CLIENTS clients, $(nproc) cores" "result"
printf '%-58s %.2f s\n' "initial sync (create -> synced)" "$sync_s"
printf '%-58s %.0f tx/s (runs: %s)\n' "tps, ${label[plain]} (median of $ROUNDS)" "${med[plain]}" "${tps[plain]% }"
for v in follow idle; do
    printf '%-58s %.0f tx/s (runs: %s): %.1f%% overhead\n' "tps, ${label[$v]} (median of $ROUNDS)" "${med[$v]}" \
        "${tps[$v]% }" "$(ovh "$v")"
done
printf '%-58s %s\n' "pgmoverd restarted -> drained again (log counted)" "${restarts%, }"
printf '%-58s %d tx in %.1f s: %.0f tx/s, %.0f rows/s\n' "written (unthrottled, pgbench tx x 4 rows)" "$written" \
    "$load_s" "$apply_tps" "$write_rate"
printf '%-58s %.0f rows/s: %.2fx the write rate\n' "applied, rows / (load + drain)" "$apply_rate" \
    "$(echo "$apply_rate / $write_rate" | bc -l)"
printf '%-58s %.2f s (the target gained %d of %d pgbench_history rows)\n' "drain after the load (load end -> drained)" \
    "$drain_s" "$added" "$written"
printf '%-58s %d log rows (pgbench_history %d rows behind)\n' "backlog at the load's end (counted)" "$backlog" \
    "$((hs_end - hd_end))"
printf '%-58s %s\n' "catch-up rate (backlog / drain)" "$catchup"
if ((best_rows > 0)); then
    restart_rate=$(echo "$best_rows / $best_s" | bc -l)
    restart_catchup=$(printf '%d rows in %.1f s: %.0f rows/s, %.2fx the write rate' "$best_rows" "$best_s" \
        "$restart_rate" "$(echo "$restart_rate / $write_rate" | bc -l)")
else
    restart_catchup="n/a: no backlog when pgmoverd restarted"
fi
printf '%-58s %s\n' "catch-up after pgmoverd was stopped (largest backlog)" "$restart_catchup"
printf '%-58s avg %.0f, max %d\n' "log rows behind during the load (status, 1/s)" "$lavg" "$lmax"
printf '%-58s avg %.0f, max %d (%d of %d rows applied by the load end)\n' \
    "pgbench_history rows behind during the load (counted)" "$havg" "$hmax" "$((hd_end - a_h0))" "$written"
printf '%-58s p50 %d ms, p99 %d ms, max %d ms (%s)\n' "freeze -> verified ($TRIALS trials, $RATE tx/s)" \
    "$p50" "$p99" "$pmax" "${fv[*]}"
printf '%-58s p50 %d ms, then verifying -> verified p50 %d ms\n' "  of which freeze -> frozen" "$fz50" "$vy50"
printf '%-58s %d of %d committed (%d more on the target than pgbench saw commit)\n' "transactions lost" \
    "$total_lost" "$total_tx" "$extras"
printf '%-58s %d\n' "pgmover objects left on the source after abort" "$left"

pct1() { printf '%.1f%%' "$(ovh "$1")"; }
echo
echo "README lines (bench/bench_triggers.sh $SCALE $LOAD $TRIALS, $(date +%F)):"
echo "| measure | result | target |"
echo "|---|---|---|"
printf '| write overhead on the source, capture installed, pgmoverd following | %.0f → %.0f tx/s: %s | ≤ 15%% |\n' \
    "${med[plain]}" "${med[follow]}" "$(pct1 follow)"
printf '| write overhead, capture installed, pgmoverd stopped (the triggers alone) | %.0f → %.0f tx/s: %s | ≤ 15%% |\n' \
    "${med[plain]}" "${med[idle]}" "$(pct1 idle)"
printf '| apply rate, unthrottled load, rows / (load + drain) | %.0f rows/s applied, %.0f written: %.2f× | ≥ 1.5× |\n' \
    "$apply_rate" "$write_rate" "$(echo "$apply_rate / $write_rate" | bc -l)"
printf '| catch-up after the load (backlog / drain time) | %d rows in %.2f s: %s | ≥ 1.5× |\n' \
    "$backlog" "$drain_s" "${catchup/x the/× the}"
printf '| catch-up after runs with pgmoverd stopped (pgmoverd start -> drained) | %s | ≥ 1.5× |\n' \
    "${restart_catchup/x the/× the}"
printf '| freeze → verified, %d trials at %d tx/s | p50 %.2f s, p99 %.2f s, max %.2f s | p50 ≤ 1 s, p99 ≤ 3 s |\n' \
    "$TRIALS" "$RATE" "$(echo "$p50 / 1000" | bc -l)" "$(echo "$p99 / 1000" | bc -l)" "$(echo "$pmax / 1000" | bc -l)"
printf '| transactions lost over the freezes | %d of %d | 0 |\n' "$total_lost" "$total_tx"
