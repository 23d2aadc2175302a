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

# ---- the rollback window's suites (test_rollback.sh, test_rollback_tables.sh) ----

# rows_sig SIDE DB TABLE: the count, and an md5 of every row in a fixed text form, of one
# table (or a subquery) on one side (src or dst), as the superuser
ROWS_SESSION_SQL="SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET extra_float_digits = 3; SET bytea_output = 'hex';"
rows_sig() {
    local sql="$ROWS_SESSION_SQL SELECT count(*) || ' ' || coalesce(md5(string_agg(md5(row(t.*)::text), '' ORDER BY md5(row(t.*)::text))), '-') FROM $3 t"
    if [[ $1 == src ]]; then sq "$2" "$sql"; else tq "$2" "$sql"; fi
}
# same_rows SRCDB DSTDB TABLE
same_rows() { [[ $(rows_sig src "$1" "$3") == "$(rows_sig dst "$2" "$3")" ]]; }
# compare NAME SRCDB DSTDB TABLE...: the independent comparison after a rollback, source = target
compare() {
    local name=$1 sdb=$2 ddb=$3 t s d
    shift 3
    for t in "$@"; do
        s=$(rows_sig src "$sdb" "$t")
        d=$(rows_sig dst "$ddb" "$t")
        if [[ $s == "$d" && $s =~ ^[0-9]+\ [0-9a-f]{32}$ ]]; then t_ok "$name: $t on the source equals the target ($s)"; else
            t_fail "$name: $t on the source equals the target" "source [$s] target [$d]"
        fi
    done
}
# src_admin DB SQL: writes on the frozen source as the superuser (the test's hand, not the application's)
src_admin() { $SOURCE_PSQL -d "$1" -c "SET default_transaction_read_only = off" -c "$2" 2>&1; }
# to_window JOB SRCDB DSTDB|TARGET_URL [--set ...]: a dump job from create to the rollback window
to_window() {
    local job=$1 sdb=$2 turl=$3
    [[ $turl == *://* ]] || turl=$(tgt_url "$turl")
    shift 3
    cmd "$job: create" create "$job" --source "$(src_url "$sdb")" --target "$turl" --method dump \
        --set rehearsal=off --set reverse_interval=200ms --set cutover_command=true "$@"
    cmd "$job: start" start "$job"
    wait_state "$job: synced" "$job" synced 120
    cmd "$job: freeze" freeze "$job"
    wait_state "$job: verified" "$job" verified 120
    cmd "$job: cutover" cutover "$job"
    wait_state "$job: rollback_window" "$job" rollback_window 60
}
