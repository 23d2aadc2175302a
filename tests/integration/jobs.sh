# shellcheck shell=bash
# jobs.sh - helpers shared by the job tests (source after lib.sh and pgmd.sh, and
# after the test bed's env): SQL on either side, URLs of other databases, the
# status of a job through jq, and checks that wait for a state or run a command.

# q URL SQL: one statement over TCP as the URL's role; tuples only, unaligned
q() { "$TB_PGBIN/psql" "$1" -X -q -tA -v ON_ERROR_STOP=1 -c "$2" 2>&1; }
# sq DB SQL / tq DB SQL: as the superuser on the source / the target
sq() { $SOURCE_PSQL -d "$1" -tA -c "$2" 2>&1; }
tq() { $TARGET_PSQL -d "$1" -tA -c "$2" 2>&1; }

src_url() { printf '%s' "${SOURCE_URL/\/appdb\?//$1?}"; }
tgt_url() { printf '%s' "${TARGET_URL%/appdb}/$1"; }

# jst JOB FILTER: a jq filter applied to the `status` reply's result
jst() { pgm --json status "$1" 2>/dev/null | jq -r ".result | $2" 2>/dev/null; }

# fail_detail JOB: the state and error of a job, for failure messages
fail_detail() {
    pgm --json status "$1" 2>/dev/null |
        jq -c '.result | {state, error: (.error.message // null), hint: (.error.hint // null)}' 2>/dev/null
}

_state_or_failed() {
    local s
    s=$(pgmd_state "$1")
    [[ $s == "$2" || $s == failed || $s == aborted ]]
}

# wait_state NAME JOB STATE TIMEOUT: a check; stops early when the job fails
wait_state() {
    local name=$1 job=$2 want=$3 timeout=$4 got
    t_wait_for "$timeout" _state_or_failed "$job" "$want"
    got=$(pgmd_state "$job")
    if [[ $got == "$want" ]]; then
        t_ok "$name"
    else
        t_fail "$name" "job $job is '$got' after up to ${timeout}s, not '$want': $(fail_detail "$job")"
    fi
}

# cmd NAME ARGS...: a CLI command that must succeed
cmd() {
    local name=$1 out rc
    shift
    out=$(pgm "$@" 2>&1)
    rc=$?
    if [[ $rc -eq 0 ]]; then t_ok "$name"; else t_fail "$name" "pgmover $* exited $rc: $out"; fi
}
