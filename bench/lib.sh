# shellcheck shell=bash
# bench/lib.sh — what the benchmarks share. Source it from a bench/*.sh script that has
# cd'ed to the repository root:
#   bench_build            BUILD=the build directory: $PGM_BUILD as it is, else ./build,
#                          set up and built here after installing the packages
#   bench_bed              work=a fresh directory, bed=$work/bed: the Heroku-like source and
#                          the target started, their env sourced; an EXIT trap stops the
#                          load ($load_pid), pgmoverd ($daemon_pid) and the bed, and removes
#                          $work
#   bench_daemon           pgmoverd on $work/sock (PGMOVER_SOCKET exported), log notice
#   st FILTER              jq FILTER over the result of `pgmover status bench`
#   wait_for STATE         until job bench is in STATE (exits 1 if it fails)
#   now                    seconds since the epoch, with nanoseconds

bench_build() {
    if [[ -n ${PGM_BUILD:-} ]]; then
        BUILD=$PGM_BUILD
    else
        scripts/deps.sh
        [[ -d build ]] || meson setup build >/dev/null
        ninja -C build >/dev/null
        BUILD=build
    fi
}

_bench_cleanup() {
    [[ -n ${load_pid:-} ]] && kill "$load_pid" 2>/dev/null && wait "$load_pid" 2>/dev/null
    [[ -n ${daemon_pid:-} ]] && kill -TERM "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
    tests/testbed/testbed.sh stop "$bed" >/dev/null 2>&1 || true
    rm -rf "$work"
}

bench_bed() {
    work=$(mktemp -d /tmp/pgmover-bench.XXXXXX)
    chmod 755 "$work"
    bed="$work/bed"
    daemon_pid=
    load_pid=
    trap _bench_cleanup EXIT
    tests/testbed/testbed.sh start "$bed" >/dev/null 2>&1
    # shellcheck disable=SC1091
    . "$bed/env"
}

bench_daemon() {
    cat >"$work/pgmoverd.conf" <<CONF
socket_path = $work/sock
state_dir = $work/state
log_level = notice
pg_bindir = $TB_PGBIN
CONF
    "$BUILD/pgmoverd" -c "$work/pgmoverd.conf" 2>"$work/pgmoverd.log" &
    daemon_pid=$!
    export PGMOVER_SOCKET="$work/sock"
    for _ in $(seq 50); do "$BUILD/pgmover" version >/dev/null 2>&1 && break; sleep 0.1; done
}

st() { "$BUILD/pgmover" --json status bench | jq -r ".result | $1"; }

wait_for() {
    local s
    while :; do
        s=$(st .state)
        [[ $s == "$1" ]] && return 0
        if [[ $s == failed ]]; then
            "$BUILD/pgmover" status bench >&2
            exit 1
        fi
        sleep 0.1
    done
}

now() { date +%s.%N; }

# Added for bench_triggers.sh (the functions above are unchanged):
#   wait_within SECS STATE  wait_for with a time limit: exits 1 if job bench fails, or is not
#                          in STATE after SECS seconds
#   within SECS CMD...     CMD again every 0.1 s until it succeeds; returns 1 after SECS seconds
#   bench_daemon_stop      pgmoverd stopped (SIGTERM, waited for); its log kept in
#                          $work/pgmoverd.log.old
#   pgbench_tps FILE       the tps pgbench printed in FILE (its summary)
#   pgbench_tx FILE        the transactions pgbench processed, from its summary in FILE

wait_within() {
    local limit=$1 want=$2 s end
    end=$(($(date +%s) + limit))
    while :; do
        s=$(st .state 2>/dev/null) || s=
        [[ $s == "$want" ]] && return 0
        if [[ $s == failed ]]; then
            "$BUILD/pgmover" status bench >&2
            exit 1
        fi
        if (($(date +%s) >= end)); then
            echo "job bench is not $want after ${limit} s (state: ${s:-unknown})" >&2
            "$BUILD/pgmover" status bench >&2 || true
            exit 1
        fi
        sleep 0.1
    done
}

within() {
    local end
    end=$(($(date +%s) + $1))
    shift
    until "$@"; do
        (($(date +%s) < end)) || return 1
        sleep 0.1
    done
}

bench_daemon_stop() {
    [[ -n ${daemon_pid:-} ]] || return 0
    kill -TERM "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
    daemon_pid=
    cat "$work/pgmoverd.log" >>"$work/pgmoverd.log.old" 2>/dev/null || true
}

pgbench_tps() { awk '/^tps = / { print $3; exit }' "$1"; }

pgbench_tx() { awk '/number of transactions actually processed/ { split($NF, a, "/"); print a[1]; exit }' "$1"; }
