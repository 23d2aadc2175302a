# shellcheck shell=bash
# lib.sh - tiny helpers for bash integration tests. Source it:
#
#   . "$(dirname "$0")/lib.sh"
#   t_assert_eq "answer" 42 "$(compute)"
#   t_check "event within 10 s" t_wait_for 10 some_command args || t_detail "$(cat log)"
#   t_summary        # prints "N passed, N failed"; non-zero if anything failed
#
# Every check prints one line ("ok - NAME" or "not ok - NAME: MSG") and returns 0 on
# pass, 1 on failure. Under `set -e` a bare failing check therefore ends the script
# (with status 1, without the summary); write `check || true` to go on, or run the
# test without -e.

T_PASSED=${T_PASSED:-0}
T_FAILED=${T_FAILED:-0}

# t_ok NAME
t_ok() {
    T_PASSED=$((T_PASSED + 1))
    printf 'ok - %s\n' "$1"
    return 0
}

# t_fail NAME MSG
t_fail() {
    T_FAILED=$((T_FAILED + 1))
    printf 'not ok - %s: %s\n' "$1" "${2:-failed}"
    return 1
}

# t_check NAME CMD [ARGS...]
# A check that CMD succeeds; "not ok" names CMD and its exit status. CMD runs in this
# shell (it may set variables, start a daemon) and its output goes where it would
# have gone. For more on a failure, follow it with `|| t_detail MSG`: MSG is expanded
# only when the check failed, after CMD ran. Put no redirection on the t_check line (it
# would take the "ok" line with it): wrap a CMD that needs one in a function.
#   t_check "ja synced" pgmd_wait_state ja synced 90 || t_detail "$(pgm status ja)"
#   t_check "DIR removed" test ! -e "$dir"
t_check() {
    local _t_name=$1 _t_rc
    shift
    "$@"
    _t_rc=$?
    if ((_t_rc == 0)); then
        t_ok "$_t_name"
    else
        t_fail "$_t_name" "$(printf '%q ' "$@")failed (exit $_t_rc)"
    fi
}

# t_detail MSG: after a failed t_check, MSG's lines as "#   " comments; returns 1
t_detail() {
    local line
    while IFS= read -r line; do
        printf '#   %s\n' "$line"
    done <<<"$1"
    return 1
}

# t_assert_eq NAME EXPECTED ACTUAL
t_assert_eq() {
    if [[ "$2" == "$3" ]]; then
        t_ok "$1"
    else
        t_fail "$1" "expected [$2], got [$3]"
    fi
}

# t_assert_contains NAME HAYSTACK NEEDLE   (fixed string match)
t_assert_contains() {
    if [[ "$2" == *"$3"* ]]; then
        t_ok "$1"
    else
        t_fail "$1" "[$3] not found in [$2]"
    fi
}

# t_wait_for TIMEOUT_SECONDS CMD [ARGS...]
# Runs CMD (output discarded) every 0.2 s until it succeeds; returns 0 then, or 1 once
# TIMEOUT_SECONDS (may be fractional) have passed. A bounded wait for an event, not a
# performance assertion: pick generous timeouts.
t_wait_for() {
    local timeout=$1 now deadline
    shift
    if [[ ! $timeout =~ ^[0-9]+(\.[0-9]+)?$ || $# -eq 0 ]]; then
        printf 't_wait_for: usage: t_wait_for TIMEOUT_SECONDS CMD [ARGS...]\n' >&2
        return 2
    fi
    # Microseconds since the epoch, without forking.
    now=${EPOCHREALTIME/[.,]/}
    local whole=${timeout%%.*} frac=000000
    if [[ $timeout == *.* ]]; then
        frac=${timeout#*.}000000
        frac=${frac:0:6}
    fi
    deadline=$((now + 10#$whole * 1000000 + 10#$frac))
    while true; do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        now=${EPOCHREALTIME/[.,]/}
        if ((now >= deadline)); then
            return 1
        fi
        sleep 0.2
    done
}

# t_summary: prints the closing line "N passed, N failed"; returns 1 if any failed.
t_summary() {
    printf '%d passed, %d failed\n' "$T_PASSED" "$T_FAILED"
    [[ $T_FAILED -eq 0 ]]
}

# t_tmpdir: creates an empty directory under /tmp that the postgres user owns (when run
# as root) and can traverse; prints its path.
t_tmpdir() {
    local d
    d=$(mktemp -d /tmp/pgmover-test.XXXXXX) || return 1
    chmod 0755 "$d" || return 1
    if [[ $(id -u) -eq 0 ]]; then
        chown postgres:postgres "$d" || return 1
    fi
    printf '%s\n' "$d"
}

# t_skip NAME MSG: this suite cannot run on this machine: says why and exits 77, which
# meson reports as SKIP (scripts/test.sh counts it as a failure: it promises every test)
t_skip() {
    printf 'skip - %s: %s\n' "$1" "$2"
    exit 77
}

# t_need_cmd NAME CMD...: skips the suite (77) unless every CMD is installed
t_need_cmd() {
    local name=$1 c
    shift
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || t_skip "$name" "$c is needed (scripts/deps.sh installs it)"
    done
}

# t_need_server NAME: skips the suite (77) unless the test bed (tests/testbed/testbed.sh)
# can start its servers here: run as root or postgres (as root, a postgres OS user to run
# them), PostgreSQL 15's initdb, pg_ctl, postgres and psql (in TB_PGBIN if set), and
# pglogical, which both servers preload.
t_need_server() {
    local name=$1 bin=${TB_PGBIN:-/usr/lib/postgresql/15/bin} b libdir
    if [[ $(id -u) -ne 0 && $(id -un) != postgres ]]; then
        t_skip "$name" "run as root (or postgres): the test bed runs PostgreSQL as the postgres user"
    fi
    if [[ $(id -u) -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
        t_skip "$name" "no postgres OS user to run the test servers (install postgresql-15)"
    fi
    for b in initdb pg_ctl postgres psql; do
        [[ -x $bin/$b ]] || t_skip "$name" "no PostgreSQL 15 server: $bin/$b is missing (install postgresql-15, or set TB_PGBIN)"
    done
    libdir=$("$bin/pg_config" --pkglibdir 2>/dev/null) || libdir=$bin/../lib
    [[ -f $libdir/pglogical.so ]] ||
        t_skip "$name" "pglogical is not installed in $libdir (install postgresql-15-pglogical)"
}

# t_prereq NAME FILE...: what a suite that starts the test bed needs, checked before it
# does anything, as NAME. Each FILE relative to PGM_BUILD (made absolute) is a build
# output: missing, it is an error (exit 1: build first). An absolute FILE is a program
# installed on the machine: missing, like jq or what t_need_server checks, the suite is
# skipped (exit 77).
t_prereq() {
    local name=$1 f
    shift
    PGM_BUILD=$(cd "${PGM_BUILD:-}" 2>/dev/null && pwd) || {
        echo "$name: no build directory (set PGM_BUILD)" >&2
        exit 1
    }
    for f in "$@"; do
        if [[ $f == /* ]]; then
            [[ -x $f ]] || t_skip "$name" "$f is not installed (scripts/deps.sh installs it)"
        else
            [[ -x $PGM_BUILD/$f ]] || {
                echo "$name: $PGM_BUILD/$f not built (meson setup BUILD && ninja -C BUILD, and set PGM_BUILD)" >&2
                exit 1
            }
        fi
    done
    t_need_cmd "$name" jq
    t_need_server "$name"
}

# t_bed_remove WORK BED...: stop the test beds (tests/testbed/testbed.sh, in $TB) and remove
# WORK; with PGM_TEST_KEEP=1 stop the servers and keep it all for a post-mortem
t_bed_remove() {
    local work=$1 bed
    shift
    if [[ ${PGM_TEST_KEEP:-0} == 1 ]]; then
        for bed in "$@"; do TB_KEEP=1 "$TB" stop "$bed" >/dev/null 2>&1; done
        echo "kept $work" >&2
    else
        for bed in "$@"; do "$TB" stop "$bed" >/dev/null 2>&1 || "$TB" stop "$bed"; done
        rm -rf -- "$work"
    fi
}
