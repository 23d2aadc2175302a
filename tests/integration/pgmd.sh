# shellcheck shell=bash
# pgmd.sh - start and stop a pgmoverd for an integration test. Source it
# after lib.sh. Needs PGM_BUILD (the meson build directory with pgmoverd
# and pgmover; default: build).
#
#   pgmd_start DIR [extra config lines...]   # config DIR/pgmoverd.conf, socket DIR/sock,
#                                            # state DIR/state, log DIR/pgmoverd.log
#   pgm status shop                          # the CLI against that daemon
#   pgmd_wait_state JOB STATE [TIMEOUT]      # poll status until the job is in STATE
#   pgmd_kill9 / pgmd_stop                   # SIGKILL, or SIGTERM and wait for exit 0
#   pgmd_cleanup                             # for a test's EXIT trap
#
# PGMD_PID holds the daemon's pid, PGMOVER_SOCKET its socket.

PGM_BUILD=${PGM_BUILD:-build}
PGMD_DIR=
PGMD_PID=

# pgmd_start DIR [CONFIG_LINE...]
pgmd_start() {
    PGMD_DIR=$1
    shift
    mkdir -p "$PGMD_DIR"
    if [[ ! -f "$PGMD_DIR/pgmoverd.conf" ]]; then
        {
            echo "socket_path = $PGMD_DIR/sock"
            echo "state_dir = $PGMD_DIR/state"
            echo "log_level = debug"
            echo "pg_bindir = /usr/lib/postgresql/15/bin"
            local line
            for line in "$@"; do echo "$line"; done
        } > "$PGMD_DIR/pgmoverd.conf"
    fi
    export PGMOVER_SOCKET="$PGMD_DIR/sock"
    "$PGM_BUILD/pgmoverd" -c "$PGMD_DIR/pgmoverd.conf" >> "$PGMD_DIR/pgmoverd.log" 2>&1 &
    PGMD_PID=$!
    t_wait_for 10 test -S "$PGMOVER_SOCKET" || {
        echo "pgmd_start: pgmoverd did not open its socket; log:" >&2
        tail -20 "$PGMD_DIR/pgmoverd.log" >&2
        return 1
    }
    # the socket file can exist a moment before the daemon answers
    t_wait_for 10 "$PGM_BUILD/pgmover" version
}

# pgm ARGS... : the CLI against the test daemon
pgm() {
    "$PGM_BUILD/pgmover" -s "$PGMOVER_SOCKET" "$@"
}

# pgmd_state JOB : print the job's state
pgmd_state() {
    # the first line of the human status is "NAME  STATE  (...)"
    pgm status "$1" 2>/dev/null | awk 'NR == 1 { print $2 }'
}

# pgmd_wait_state JOB STATE [TIMEOUT_SECONDS]
pgmd_wait_state() {
    local job=$1 want=$2 timeout=${3:-120}
    _pgmd_in_state() { [[ "$(pgmd_state "$1")" == "$2" ]]; }
    t_wait_for "$timeout" _pgmd_in_state "$job" "$want"
}

# pgmd_kill9 : SIGKILL the daemon and reap it
pgmd_kill9() {
    kill -9 "$PGMD_PID" 2>/dev/null
    wait "$PGMD_PID" 2>/dev/null
    PGMD_PID=
}

# pgmd_stop : SIGTERM; returns the daemon's exit status
pgmd_stop() {
    local rc
    [[ -n "$PGMD_PID" ]] || return 0
    kill -TERM "$PGMD_PID" 2>/dev/null
    wait "$PGMD_PID"
    rc=$?
    PGMD_PID=
    return "$rc"
}

# pgmd_cleanup : for a test's EXIT trap: stop the daemon if it runs (SIGTERM, SIGKILL after
# 20 s), and when a check failed show the last lines of its log
pgmd_cleanup() {
    local i
    if [[ -n ${PGMD_PID:-} ]]; then
        kill -TERM "$PGMD_PID" 2>/dev/null
        for ((i = 0; i < 100; i++)); do
            kill -0 "$PGMD_PID" 2>/dev/null || break
            sleep 0.2
        done
        kill -9 "$PGMD_PID" 2>/dev/null
        wait "$PGMD_PID" 2>/dev/null
        PGMD_PID=
    fi
    if [[ ${T_FAILED:-0} -gt 0 && -n $PGMD_DIR && -f $PGMD_DIR/pgmoverd.log ]]; then
        echo "--- last lines of the daemon log ($PGMD_DIR/pgmoverd.log) ---" >&2
        grep -v ' debug: ' "$PGMD_DIR/pgmoverd.log" | tail -n 40 >&2
    fi
}
