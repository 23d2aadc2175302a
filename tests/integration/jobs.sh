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

# ---- the state a step is in, made to last, and what a job leaves on the servers
# (needs $WORK, a directory of the test's own)

declare -A HOLD_PID=() HOLD_SIDE=()
# hold NAME SIDE DB SQL: a superuser session (application_name matrix_hold_NAME) that
# runs SQL in an open transaction and keeps it open -- a lock for pgmover to wait on --
# until release NAME. Its input is a pipe from a sleep, so that no other process (the
# daemon, a hook) inherits anything that keeps it open.
hold() {
    local name=$1 side=$2 db=$3 sql=$4 out=$WORK/hold.$1.out psqlcmd
    if [[ $side == src ]]; then psqlcmd=$SOURCE_PSQL; else psqlcmd=$TARGET_PSQL; fi
    rm -f "$out" "$WORK/hold.$name.pid"
    # shellcheck disable=SC2086,SC2016
    sh -c 'echo $$ >"$1"; printf "%s\n" "$2"; exec sleep 100000' sh "$WORK/hold.$name.pid" \
        "BEGIN READ WRITE; $sql; SELECT 'held';" |
        $psqlcmd -d "dbname=$db application_name=matrix_hold_$name" -X -q -tA -v ON_ERROR_STOP=1 >"$out" 2>&1 &
    HOLD_PID[$name]=$!
    HOLD_SIDE[$name]=$side
    t_wait_for 20 grep -qx held "$out" || {
        echo "# hold $name: $(cat "$out")"
        return 1
    }
}
# release NAME: end the holding session (its transaction rolls back) and its sleep
release() {
    local name=$1 sql
    [[ -n ${HOLD_PID[$name]:-} ]] || return 0
    sql="SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'matrix_hold_$name'"
    if [[ ${HOLD_SIDE[$name]} == src ]]; then sq postgres "$sql" >/dev/null; else tq postgres "$sql" >/dev/null; fi
    kill "$(cat "$WORK/hold.$name.pid")" 2>/dev/null
    wait "${HOLD_PID[$name]}" 2>/dev/null
    unset "HOLD_PID[$name]" "HOLD_SIDE[$name]"
}
# release_all: every hold still open (for a test's cleanup)
release_all() {
    local name
    for name in "${!HOLD_PID[@]}"; do release "$name"; done
}
# waiting_on_lock SIDE DB: some session of DB waits for a heavyweight lock
waiting_on_lock() {
    local sql="SELECT count(*) FROM pg_stat_activity WHERE datname = '$2' AND wait_event_type = 'Lock'"
    local n
    if [[ $1 == src ]]; then n=$(sq postgres "$sql"); else n=$(tq postgres "$sql"); fi
    [[ $n =~ ^[0-9]+$ && $n -gt 0 ]]
}

# ro_setting DB: the read-only default a freeze left on the source database ("" if none)
ro_setting() {
    sq postgres "SELECT coalesce(string_agg(c, ','), '') FROM pg_db_role_setting s, unnest(s.setconfig) c
                 WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = '$1')
                   AND c LIKE 'default_transaction_read_only%'"
}
# assert_writable NAME DB: an INSERT into public.write_probe as the owner works, and no
# read-only default is left; assert_frozen NAME DB: the INSERT is refused as read-only
assert_writable() {
    local out
    out=$(q "$(src_url "$2")" "INSERT INTO public.write_probe (note) VALUES ('$1') RETURNING 'inserted'")
    t_assert_eq "$1: the source takes writes (psql)" "inserted" "$out"
    t_assert_eq "$1: no read-only default on the source" "" "$(ro_setting "$2")"
}
assert_frozen() {
    local out
    out=$(q "$(src_url "$2")" "INSERT INTO public.write_probe (note) VALUES ('$1')")
    t_assert_contains "$1: the source refuses writes (psql)" "$out" "read-only transaction"
}
# pgmover's objects: slots and publications on the target, schemas on the source
target_leftovers() {
    {
        tq postgres "SELECT string_agg(slot_name, ',') FROM pg_replication_slots WHERE slot_name LIKE 'pgmover%' AND database = '$1'"
        tq "$1" "SELECT string_agg(pubname, ',') FROM pg_publication WHERE pubname LIKE 'pgmover%'"
    } | tr -d '\n'
}
source_leftovers() { sq "$1" "SELECT coalesce(string_agg(nspname, ','), '') FROM pg_namespace WHERE nspname LIKE 'pgmover%'"; }

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
