#!/usr/bin/env bash
# Integration test of the dump method, end to end and black-box: only the CLI
# (pgmover), the daemon's documented states/status fields, and SQL on both servers.
# The copy engine behind `method = dump` may change; this test must keep passing.
#
#   1. preconditions that must fail cleanly (wrong source password, unreachable target,
#      non-empty target) and leave the source writable; abort of such a failed job
#   2. a full job created -> ... -> completed on tests/integration/fixtures/rich.sql,
#      then the target proven equal to the source (rows, sequences, objects)
#   3. pgmoverd killed with SIGKILL during the copy: no orphaned copy process, the job
#      resumes after a restart and the data is exact
#   4. freeze -> thaw (source writable again) -> freeze again -> verified
#   5. verify_failed after a planted difference; abort thaws the source and cleans
#      the target
#   6. many tables: the final copy cleans a target holding more objects than one
#      transaction can lock (3,000 tables); a source already read-only before the freeze is frozen,
#      said, and left read-only by thaw
#
# Run from the source tree as root (or postgres):
#   PGM_BUILD=/tmp/bd bash tests/integration/test_dump.sh
# PGM_TEST_KEEP=1 keeps the work directory (daemon log, server logs) for post-mortems;
# PGM_TEST_ENGINE=NAME adds --set engine=NAME to every job; PGM_TEST_STRICT=1 fails on
# copy processes that outlive a SIGKILLed daemon (otherwise only reported).
set -uo pipefail # no -e: each check reports and the summary decides the exit status

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TB=$ROOT/tests/testbed/testbed.sh
FIXTURES=$HERE/fixtures
# shellcheck source=tests/integration/lib.sh
. "$HERE/lib.sh"
# shellcheck source=tests/integration/pgmd.sh
. "$HERE/pgmd.sh"
# shellcheck source=tests/integration/jobs.sh
. "$HERE/jobs.sh"

t_prereq test_dump pgmoverd pgmover

# PGM_TEST_ENGINE=NAME runs every job with --set engine=NAME (default: the daemon's own)
ENGINE_SET=()
if [[ -n ${PGM_TEST_ENGINE:-} ]]; then ENGINE_SET=(--set "engine=$PGM_TEST_ENGINE"); fi

WORK=$(t_tmpdir) || exit 1
BED=$WORK/bed
DMN=$WORK/daemon
BIG_LOADER_PID=
T0=$SECONDS

# kill processes of this test still running under WORK (copy tools of a killed daemon)
kill_leftovers() {
    local pids
    pids=$(pgrep -f -- "(pg_dump|pg_restore|pgmoverd).*$WORK/" 2>/dev/null) || return 0
    # shellcheck disable=SC2086
    [[ -n $pids ]] && kill -9 $pids 2>/dev/null
    return 0
}

cleanup() {
    if [[ -n $BIG_LOADER_PID ]]; then
        kill "$BIG_LOADER_PID" 2>/dev/null
        wait "$BIG_LOADER_PID" 2>/dev/null
    fi
    pgmd_cleanup
    kill_leftovers
    t_bed_remove "$WORK" "$BED"
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------
# helpers

# the database-level default_transaction_read_only settings left on the source for DB
ro_setting() {
    sq postgres "SELECT coalesce(string_agg(c, ','), '') FROM pg_db_role_setting s, unnest(s.setconfig) c
                 WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = '$1')
                   AND c LIKE 'default_transaction_read_only%'"
}

# assert_writable NAME DB: an INSERT as app_owner works and no read-only default is left
assert_writable() {
    local name=$1 db=$2 out
    out=$(q "$(src_url "$db")" "INSERT INTO public.write_probe (note) VALUES ('$name') RETURNING 'inserted'")
    t_assert_eq "$name: source accepts an INSERT" "inserted" "$out"
    t_assert_eq "$name: no default_transaction_read_only on the source database" "" "$(ro_setting "$db")"
}

# assert_frozen NAME DB: an INSERT as app_owner is refused as read-only
assert_frozen() {
    local name=$1 db=$2 out rc
    out=$(q "$(src_url "$db")" "INSERT INTO public.write_probe (note) VALUES ('$name')")
    rc=$?
    if [[ $rc -ne 0 && $out == *"read-only transaction"* ]]; then
        t_ok "$name: source refuses writes (read-only)"
    else
        t_fail "$name: source refuses writes (read-only)" "rc=$rc: $out"
    fi
}

# user tables (plain and partitioned) of a database, one quoted name per line
LIST_TABLES_SQL="SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname !~ '^pg_' ORDER BY 1"
# pinned so that both sides print values identically
SESSION_SQL="SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres';
  SET extra_float_digits = 3; SET bytea_output = 'hex';"

# rows_sig SIDE DB RELATION [ORDER]: "count md5" of the relation's rows; row(t.*) and
# not t::text, since the fixture has a column named t
rows_sig() {
    local side=$1 db=$2 rel=$3 order=${4:-'row(t.*)::text COLLATE "C"'}
    local sql="$SESSION_SQL SELECT count(*) || ' ' || coalesce(md5(string_agg(row(t.*)::text, '|' ORDER BY $order)), '-') FROM $rel t"
    if [[ $side == src ]]; then sq "$db" "$sql"; else tq "$db" "$sql"; fi
}

# compare_rows LABEL SRCDB DSTDB [ORDER]: same tables on both sides, same rows in each
compare_rows() {
    local label=$1 sdb=$2 ddb=$3 order=${4:-} stables dtables rel s d n=0 bad=0
    stables=$(sq "$sdb" "$LIST_TABLES_SQL")
    dtables=$(tq "$ddb" "$LIST_TABLES_SQL")
    t_assert_eq "$label: the target has the same tables as the source" "$stables" "$dtables"
    while IFS= read -r rel; do
        [[ -n $rel ]] || continue
        n=$((n + 1))
        s=$(rows_sig src "$sdb" "$rel" ${order:+"$order"})
        d=$(rows_sig dst "$ddb" "$rel" ${order:+"$order"})
        if [[ $s == "$d" && $s =~ ^[0-9]+\ ([0-9a-f]{32}|-)$ ]]; then
            t_ok "$label: rows of $rel equal ($s)"
        else
            t_fail "$label: rows of $rel equal" "source [$s], target [$d]"
            bad=$((bad + 1))
        fi
    done <<<"$stables"
    [[ $n -gt 0 ]] || t_fail "$label: tables to compare" "none found on the source"
    return "$bad"
}

# compare_sequences LABEL SRCDB DSTDB: every source sequence exists on the target and is
# not behind (a never-used source sequence is satisfied by anything)
compare_sequences() {
    local label=$1 sdb=$2 ddb=$3 sql name sv dv n=0
    sql="SELECT format('%I.%I', schemaname, sequencename) || '=' || coalesce(last_value::text, 'null')
           FROM pg_sequences WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
    declare -A tgt=()
    while IFS='=' read -r name dv; do
        [[ -n $name ]] && tgt[$name]=$dv
    done <<<"$(tq "$ddb" "$sql")"
    while IFS='=' read -r name sv; do
        [[ -n $name ]] || continue
        n=$((n + 1))
        dv=${tgt[$name]:-missing}
        if [[ $dv == missing ]]; then
            t_fail "$label: sequence $name on the target" "missing"
        elif [[ $sv == null ]] || [[ $dv != null && $dv -ge $sv ]]; then
            t_ok "$label: sequence $name not behind (source $sv, target $dv)"
        else
            t_fail "$label: sequence $name not behind" "source $sv, target $dv"
        fi
    done <<<"$(sq "$sdb" "$sql")"
    [[ $n -gt 0 ]] || t_fail "$label: sequences to compare" "none found on the source"
}

# a loopback TCP port nothing listens on
closed_port() {
    local p i
    for ((i = 0; i < 200; i++)); do
        p=$((32100 + (RANDOM % 700)))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            printf '%s' "$p"
            return 0
        fi
    done
    return 1
}

# the copy tools a daemon started for this test (their command lines name WORK)
copy_tools_running() { pgrep -f -- "(pg_dump|pg_restore).*$WORK/" >/dev/null 2>&1; }
no_copy_tools() { ! copy_tools_running; }

# ---------------------------------------------------------------------------------------
# the bed, the fixtures, the daemon

if ! "$TB" start "$BED" >"$WORK/testbed.log" 2>&1; then
    cat "$WORK/testbed.log" >&2
    t_fail "testbed" "could not start the test bed"
    t_summary
    exit 1
fi
# shellcheck source=/dev/null
. "$BED/env"

# source databases (owned by app_owner; objects created as app_owner, like on Heroku)
# and fresh target databases, one per job: DROP DATABASE is never used
setup_ok=1
for db in pre rich thaw big many rls; do "$TB" createdb "$BED" src "$db" >/dev/null || setup_ok=0; done
for db in t_badpw t_full t_full2 t_rich t_thaw t_big t_many t_rls t_shield; do "$TB" createdb "$BED" dst "$db" >/dev/null || setup_ok=0; done
for db in pre rich thaw big many; do
    q "$(src_url "$db")" "CREATE TABLE public.write_probe (id serial PRIMARY KEY, note text)" >/dev/null || setup_ok=0
done
# the big table loads in the background while the first parts run
(q "$(src_url big)" "CREATE TABLE public.big (id bigint NOT NULL, grp integer NOT NULL, payload text NOT NULL);
   INSERT INTO public.big SELECT i, i % 1000, md5(i::text) FROM generate_series(1, 3000000) AS i;
   ALTER TABLE public.big ADD PRIMARY KEY (id);
   CREATE TABLE public.small (id integer PRIMARY KEY, v text);
   INSERT INTO public.small SELECT i, 'v' || i FROM generate_series(1, 100) AS i;" >"$WORK/big-load.log") &
BIG_LOADER_PID=$!
for db in rich thaw; do
    if ! "$TB_PGBIN/psql" "$(src_url "$db")" -X -q -v ON_ERROR_STOP=1 -f "$FIXTURES/rich.sql" \
        >"$WORK/fixture-$db.log" 2>&1; then
        cat "$WORK/fixture-$db.log" >&2
        setup_ok=0
    fi
done
# large objects in one source, made by its owner as a Heroku app would: the copy must
# carry them (only the pg_dump engine does) and the verification compare them
"$TB_PGBIN/psql" "$(src_url thaw)" -X -q -v ON_ERROR_STOP=1 -c "
    SELECT lo_from_bytea(0, convert_to(repeat('large object ' || i, 1000 * i), 'UTF8'))
      FROM generate_series(1, 3) AS i" >"$WORK/lo.log" 2>&1 || { cat "$WORK/lo.log" >&2; setup_ok=0; }
# the non-empty target
for db in t_full t_full2; do
    tq "$db" "CREATE TABLE public.precious (id int PRIMARY KEY); INSERT INTO public.precious VALUES (1), (2)" >/dev/null ||
        setup_ok=0
done
if [[ $setup_ok == 1 ]]; then t_ok "setup: databases and fixtures loaded"; else
    t_fail "setup" "creating databases or loading fixtures failed"
    t_summary
    exit 1
fi

if ! pgmd_start "$DMN" "pg_bindir = $TB_PGBIN"; then
    t_fail "pgmoverd starts" "see $DMN/pgmoverd.log"
    t_summary
    exit 1
fi
t_ok "pgmoverd starts"

# ---------------------------------------------------------------------------------------
# 1. preconditions: each fails with a clear message and leaves the source writable

# precondition NAME JOB MSG_NEEDLE HINT_NEEDLE create-args...: refused at create, or
# failed in provisioning, with the message and the hint given
precondition() {
    local name=$1 job=$2 needle=$3 hint=$4 out rc msg h st
    shift 4
    out=$(pgm create "$job" "$@" 2>&1)
    rc=$?
    if [[ $rc -ne 0 ]]; then
        t_ok "$name: refused at create"
        t_assert_contains "$name: create says why" "$out" "$needle"
        t_assert_contains "$name: create hints" "$out" "$hint"
        return 1 # no job to abort
    fi
    cmd "$name: start accepted" start "$job"
    wait_state "$name: job fails" "$job" failed 60
    msg=$(jst "$job" '.error.message // ""')
    h=$(jst "$job" '.error.hint // ""')
    st=$(jst "$job" '.error.state // .failed_in.state // ""')
    t_assert_eq "$name: failed in provisioning" "provisioning" "$st"
    t_assert_contains "$name: error message" "$msg" "$needle"
    t_assert_contains "$name: hint" "$h" "$hint"
    # the human status shows both too
    out=$(pgm status "$job" 2>&1 | grep -E '^ +(error|hint):')
    t_assert_contains "$name: status shows the error" "$out" "$needle"
    t_assert_contains "$name: status shows the hint" "$out" "$hint"
    return 0
}

echo "# 1. preconditions"
WRONG_URL=$(src_url pre)
WRONG_URL=${WRONG_URL/:$SOURCE_OWNER_PASSWORD@/:not-the-password@}
if precondition "wrong source password" badpw "password authentication failed" "password" \
    --source "$WRONG_URL" --target "$(tgt_url t_badpw)" --method dump "${ENGINE_SET[@]}"; then
    assert_writable "wrong source password" pre
    # the job never touched the target
    t_assert_eq "wrong source password: target untouched" "" "$(tq t_badpw "$LIST_TABLES_SQL")"
    cmd "wrong source password: abort accepted" abort badpw
    wait_state "wrong source password: abort ends aborted" badpw aborted 60
    assert_writable "after abort of badpw" pre
fi
# the password given must not show anywhere in status
out=$(pgm status badpw 2>&1)
if [[ $out != *not-the-password* ]]; then t_ok "status masks the source password"; else
    t_fail "status masks the source password" "password shown"
fi

PORT=$(closed_port)
if precondition "unreachable target" noport "could not connect to the target" "port" \
    --source "$(src_url pre)" --target "postgres://tgt_admin:$TARGET_ADMIN_PASSWORD@127.0.0.1:$PORT/t_x" \
    --method dump "${ENGINE_SET[@]}" --set connect_timeout=5s; then
    t_assert_contains "unreachable target: the cause is named" "$(jst noport '.error.message')" "refused"
    assert_writable "unreachable target" pre
    cmd "unreachable target: abort accepted" abort noport
    wait_state "unreachable target: abort ends aborted" noport aborted 60
    assert_writable "after abort of noport" pre
fi

if precondition "non-empty target" full "already holds" "overwrite_target" \
    --source "$(src_url pre)" --target "$(tgt_url t_full)" --method dump "${ENGINE_SET[@]}"; then
    t_assert_contains "non-empty target: the count is given" "$(jst full '.error.message')" "1 table"
    assert_writable "non-empty target" pre
    cmd "non-empty target: abort accepted" abort full
    wait_state "non-empty target: abort ends aborted" full aborted 60
    assert_writable "after abort of full" pre
    # pgmover never owned that target: abort must leave its table alone
    t_assert_eq "non-empty target: abort keeps the target's own data" "2" "$(tq t_full 'SELECT count(*) FROM public.precious')"
fi

# retry: the same refusal, then the target is emptied by hand and the failed step runs again
if precondition "retry" full2 "already holds" "overwrite_target" \
    --source "$(src_url pre)" --target "$(tgt_url t_full2)" --method dump "${ENGINE_SET[@]}"; then
    tq t_full2 "DROP TABLE public.precious" >/dev/null
    cmd "retry: accepted" retry full2
    wait_state "retry: the job resumes and reaches synced" full2 synced 120
    t_assert_eq "retry: the previous error is no longer current" "null" "$(jst full2 '.error')"
    t_assert_eq "retry: the copy is on the target" "public.write_probe" "$(tq t_full2 "$LIST_TABLES_SQL")"
    cmd "retry: abort" abort full2
    wait_state "retry: aborted" full2 aborted 60
    t_assert_eq "retry: abort cleaned what the job restored" "" "$(tq t_full2 "$LIST_TABLES_SQL")"
    assert_writable "after abort of full2" pre
fi

# ---------------------------------------------------------------------------------------
# 2. a full dump job, created -> completed, on the rich fixture

echo "# 2. full job on the rich fixture"
full_job() {
    local out hook="$WORK/cutover.out"
    # the hook runs through /bin/sh: the variable is expanded there, not here
    # shellcheck disable=SC2016
    cmd "rich: create" create rich --source "$(src_url rich)" --target "$(tgt_url t_rich)" --method dump "${ENGINE_SET[@]}" \
        --set cutover_command='echo "$PGMOVER_TARGET_URL" > '"$hook"
    t_assert_eq "rich: created" "created" "$(pgmd_state rich)"
    cmd "rich: start" start rich
    wait_state "rich: synced" rich synced 120
    [[ $(pgmd_state rich) == synced ]] || return 1

    # the rehearsal copy is reported
    t_assert_eq "rich: status has the rehearsal copy facts" "object" "$(jst rich '.facts.copies.rehearsal | type')"
    out=$(jst rich '.facts.copies.rehearsal.duration_ms | type')
    t_assert_eq "rich: rehearsal copy duration" "number" "$out"
    t_assert_contains "rich: human status shows the rehearsal" "$(pgm status rich 2>&1)" "rehearsal"
    if [[ ${PGM_TEST_ENGINE:-copy} == copy ]]; then
        # each phase measured (the final copy's ETA uses them), and the index builds counted
        t_assert_eq "rich: the rehearsal's phases are measured" "number number number" \
            "$(jst rich '.facts.copies.rehearsal.phases_ms | "\(.schema|type) \(.data|type) \(."post-data"|type)"')"
        t_check "rich: post-data entries counted, at least one per index on the source" \
            test "$(jst rich '.facts.copies.rehearsal.post_data_entries')" -ge \
            "$(q "$(src_url rich)" "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
                                   WHERE c.relnamespace::regnamespace::text NOT IN ('pg_catalog', 'information_schema', 'pg_toast')")"
    fi
    t_assert_eq "rich: the source is still writable while synced" "" "$(ro_setting rich)"

    # writes after the rehearsal: the final copy must carry them
    out=$(q "$(src_url rich)" "INSERT INTO shop.customers (name, email, balance) VALUES ('late', 'late@example.com', 5) RETURNING id")
    [[ $out =~ ^[0-9]+$ ]] && q "$(src_url rich)" "INSERT INTO shop.orders (customer_id, quantity, total) VALUES ($out, 3, 42.5);
        UPDATE shop.customers SET note = 'changed after the rehearsal' WHERE name = 'Alice';
        DELETE FROM shop.events_log WHERE kind = 'tick' AND (payload->>'i')::int <= 10;" >/dev/null
    t_assert_eq "rich: writes after the rehearsal" "1" "$(q "$(src_url rich)" "SELECT count(*) FROM shop.orders WHERE total = 42.5")"

    cmd "rich: freeze" freeze rich
    wait_state "rich: verified" rich verified 120
    [[ $(pgmd_state rich) == verified ]] || return 1
    t_assert_eq "rich: verify report ok" "true" "$(jst rich '.verify.ok')"
    assert_frozen "rich: verified" rich
    t_assert_contains "rich: read-only default set on the source" "$(ro_setting rich)" "default_transaction_read_only=on"

    cmd "rich: cutover" cutover rich
    wait_state "rich: rollback_window" rich rollback_window 60
    if [[ -f $hook ]]; then
        t_assert_eq "rich: cutover hook got the target URL" "$(tgt_url t_rich)" "$(<"$hook")"
    else
        t_fail "rich: cutover hook ran" "$hook not written"
    fi
    cmd "rich: finish" finish rich
    wait_state "rich: completed" rich completed 60
    # the transition table: "completed: the target is the primary; the source stays frozen"
    assert_frozen "rich: completed" rich
    return 0
}

if full_job; then
    t_assert_eq "rich: the final copy has the writes made after the rehearsal" "1" \
        "$(tq t_rich "SELECT count(*) FROM shop.orders o JOIN shop.customers c ON c.id = o.customer_id WHERE c.name = 'late'")"
    compare_rows "rich" rich t_rich
    # the view's rows too
    s=$(rows_sig src rich shop.customer_totals)
    t_assert_eq "rich: view rows equal" "$s" "$(rows_sig dst t_rich shop.customer_totals)"
    compare_sequences "rich" rich t_rich
    # objects beyond rows
    check_obj() { # NAME SQL (must print t on the target)
        t_assert_eq "rich: target has $1" "t" "$(tq t_rich "$2")"
    }
    check_obj "the view" "SELECT relkind = 'v' FROM pg_class WHERE oid = to_regclass('shop.customer_totals')"
    check_obj "the function" "SELECT to_regprocedure('shop.order_count(integer)') IS NOT NULL"
    t_assert_eq "rich: the function works on the target" "$(sq rich "SELECT shop.order_count(1)")" \
        "$(tq t_rich "SELECT shop.order_count(1)")"
    check_obj "the expression index" "SELECT to_regclass('shop.customers_lower_name_idx') IS NOT NULL"
    check_obj "the partitioned index" "SELECT to_regclass('shop.measurements_city_idx') IS NOT NULL"
    check_obj "the foreign key" "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'orders_customer_fk'
        AND contype = 'f' AND conrelid = 'shop.orders'::regclass)"
    check_obj "the self-referencing foreign key" "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE contype = 'f'
        AND conrelid = to_regclass('\"Mixed Case \"\"Schema\"\"\".\"it''s \"\"quoted\"\"\"'))"
    check_obj "the check constraint" "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'balance_not_negative'
        AND contype = 'c' AND conrelid = 'shop.customers'::regclass)"
    check_obj "the table comment" "SELECT obj_description('shop.customers'::regclass, 'pg_class') = 'customers: one row per account'"
    check_obj "the function comment" "SELECT obj_description('shop.order_count(integer)'::regprocedure, 'pg_proc') = 'orders of one customer'"
    check_obj "the trigger" "SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'customers_touch')"
    check_obj "the enum" "SELECT enum_range(NULL::shop.mood)::text = '{sad,ok,happy,\"it''s complicated\"}'"
    check_obj "the identity column" "SELECT attidentity = 'a' FROM pg_attribute WHERE attrelid = 'shop.orders'::regclass AND attname = 'order_id'"
    check_obj "the generated column" "SELECT attgenerated = 's' FROM pg_attribute WHERE attrelid = 'shop.orders'::regclass AND attname = 'total_tax'"
    check_obj "the partitions" "SELECT count(*) = 3 FROM pg_inherits WHERE inhparent = 'shop.measurements'::regclass"
    # a schema-only copy makes materialized views unpopulated: the populated ones are
    # refreshed (the one over the other after it), the never populated one stays so
    check_obj "the materialized views populated as on the source" "SELECT string_agg(matviewname || '=' || ispopulated, ',' ORDER BY matviewname)
        = 'big_spenders_mv=true,never_refreshed_mv=false,spend_mv=true' FROM pg_matviews WHERE schemaname = 'shop'"
    t_assert_eq "rich: the materialized views hold what their queries give on the target" \
        "$(tq t_rich "SELECT (SELECT count(*) FROM shop.customer_totals WHERE spent > 0) || ' ' || count(*) FROM shop.customer_totals")" \
        "$(tq t_rich "SELECT (SELECT count(*) FROM shop.big_spenders_mv) || ' ' || count(*) FROM shop.spend_mv")"
    # the identity keeps counting on the target: the next order does not collide
    out=$(tq t_rich "INSERT INTO shop.orders (customer_id, quantity, total) VALUES (1, 1, 1) RETURNING order_id")
    if [[ $out =~ ^[0-9]+$ ]]; then t_ok "rich: a new row on the target gets a fresh identity ($out)"; else
        t_fail "rich: a new row on the target gets a fresh identity" "$out"
    fi
fi

# ---------------------------------------------------------------------------------------
# 3. SIGKILL during the copy: the job resumes and the data is exact

echo "# 3. SIGKILL during the copy"
_syncing_with_step() {
    [[ $(pgm --json status big 2>/dev/null | jq -r '.result | .state + " " + (.step | type)') == "syncing object" ]]
}
_target_has_big() { [[ $(tq t_big "SELECT to_regclass('public.big') IS NOT NULL") == t ]]; }
kill_job() {
    local before after tools orphans writers
    wait "$BIG_LOADER_PID"
    local rc=$?
    BIG_LOADER_PID=
    if [[ $rc -ne 0 ]]; then
        t_fail "big: 3M-row table loaded" "$(cat "$WORK/big-load.log")"
        return 1
    fi
    t_ok "big: 3M-row table loaded"
    cmd "big: create" create big --source "$(src_url big)" --target "$(tgt_url t_big)" --method dump "${ENGINE_SET[@]}"
    cmd "big: start" start big
    t_check "big: syncing with a progress object" t_wait_for 60 _syncing_with_step || {
        t_detail "$(fail_detail big)"
        # the plain fallback: syncing at all
        t_wait_for 30 _state_or_failed big syncing
    }
    # best effort, whatever the engine: kill once the data has started to reach the target
    t_wait_for 3 _target_has_big
    if [[ ${PGM_TEST_ENGINE:-copy} == copy ]]; then
        # 3M rows take seconds: right after the schema is on the target, the big table is not copied yet
        local tables
        tables=$(pgm --json status big --tables | jq -r '.result.tables_progress // [] | map(.table + ":" + .state) | join(" ")')
        t_assert_contains "big: status --tables lists each table of the running copy" "$tables" "public.small:"
        t_check "big: the big table is being copied or waits ($tables)" \
            grep -qE 'public\.big:(copying|waiting)' <<<"$tables"
        t_assert_contains "big: the human form has one line per table" "$(pgm status big --tables)" "public.big "
    fi
    sleep 1
    before=$(pgmd_state big)
    tools=$(pgrep -f -- "(pg_dump|pg_restore).*$WORK/" | wc -l)
    pgmd_kill9
    t_assert_eq "big: still copying when killed" "syncing" "$before"
    echo "# at the kill: $tools pg_dump/pg_restore process(es) of the daemon"
    # With --pdeathsig every copy process of the dead daemon should be gone at once; one
    # still alive 0.3 s later is an orphan that may go on writing (e.g. a forked
    # pg_restore -j worker finishing its COPY into the target). Reported; a failure
    # only with PGM_TEST_STRICT=1, since the resumed copy ends such sessions itself.
    sleep 0.3
    orphans=$(pgrep -f -- "(pg_dump|pg_restore).*$WORK/" | wc -l)
    writers=$(tq postgres "SELECT count(*) FROM pg_stat_activity WHERE datname = 't_big' AND state = 'active'
                           AND backend_type = 'client backend' AND pid <> pg_backend_pid()")
    if [[ $orphans == 0 ]]; then
        t_ok "big: no copy process outlives the killed daemon"
        [[ $writers == 0 ]] || echo "# note: $writers session(s) still active on the target 0.3 s after SIGKILL"
    elif [[ ${PGM_TEST_STRICT:-0} == 1 ]]; then
        t_fail "big: no copy process outlives the killed daemon" \
            "$orphans pg_dump/pg_restore process(es) alive 0.3 s after SIGKILL, $writers session(s) active on the target"
    else
        echo "# note: $orphans pg_dump/pg_restore process(es) alive 0.3 s after SIGKILL," \
            "$writers session(s) active on the target (PGM_TEST_STRICT=1 makes this a failure)"
    fi
    # the copy tools die with the daemon
    t_check "big: no pg_dump/pg_restore of the killed daemon keeps running" t_wait_for 10 no_copy_tools || {
        t_detail "$(pgrep -af -- "(pg_dump|pg_restore).*$WORK/")"
        kill_leftovers
    }
    if ! pgmd_start "$DMN"; then
        t_fail "big: pgmoverd restarts on the same state" "see $DMN/pgmoverd.log"
        return 1
    fi
    t_ok "big: pgmoverd restarts on the same state"
    after=$(pgmd_state big)
    if [[ $after == syncing || $after == synced ]]; then t_ok "big: state kept across the kill ($after)"; else
        t_fail "big: state kept across the kill" "$after: $(fail_detail big)"
    fi
    # the other jobs came back as they were
    t_assert_eq "big: completed job reloaded" "completed" "$(pgmd_state rich)"
    t_assert_eq "big: aborted job reloaded" "aborted" "$(pgmd_state full)"
    wait_state "big: synced after the restart" big synced 180
    [[ $(pgmd_state big) == synced ]] || return 1
    # the verifying step's progress, polled while it runs: sizes, a rate and an ETA
    (while :; do
        pgm --json status big 2>/dev/null | jq -c '.result | select(.state == "verifying") | .step // empty'
        [[ $(pgmd_state big) == @(verified|verify_failed|failed) ]] && break
        sleep 0.05
    done >"$WORK/verify-steps.jsonl") &
    local poller=$!
    cmd "big: freeze" freeze big
    wait_state "big: verified" big verified 180
    wait "$poller"
    [[ $(pgmd_state big) == verified ]] || return 1
    t_assert_eq "big: verify report ok" "true" "$(jst big '.verify.ok')"
    t_assert_eq "big: verifying reports its progress by size (bytes done of total, rate, ETA)" "true" \
        "$(jq -s 'map(select(.name == "verify" and .bytes_total > 0 and .bytes_done <= .bytes_total
            and (.rate_bytes_per_sec | type) == "number" and has("eta_seconds"))) | length > 0' "$WORK/verify-steps.jsonl")"
    echo "# verifying, last progress seen: $(tail -n 1 "$WORK/verify-steps.jsonl")"
    compare_rows "big" big t_big "t.id"
    compare_sequences "big" big t_big
    cmd "big: abort (source back to writable)" abort big
    wait_state "big: aborted" big aborted 60
    assert_writable "big: after abort" big
    return 0
}
kill_job

# ---------------------------------------------------------------------------------------
# 4. freeze -> thaw -> freeze again;  5. verify_failed -> abort

echo "# 4. thaw and freeze again; 5. verify_failed and abort"
thaw_job() {
    local out
    cmd "thaw: create" create thawjob --source "$(src_url thaw)" --target "$(tgt_url t_thaw)" --method dump "${ENGINE_SET[@]}"
    cmd "thaw: start" start thawjob
    wait_state "thaw: synced" thawjob synced 120
    cmd "thaw: freeze" freeze thawjob
    wait_state "thaw: verified" thawjob verified 120
    [[ $(pgmd_state thawjob) == verified ]] || return 1
    assert_frozen "thaw: first freeze" thaw
    t_assert_eq "thaw: the large objects are verified" "true 3 3" \
        "$(jst thawjob '.verify.tables[] | select(.table == "pg_catalog.pg_largeobject") | "\(.match) \(.source_rows) \(.target_rows)"')"
    t_assert_eq "thaw: the large objects are on the target, byte for byte" \
        "$(sq thaw "SELECT string_agg(oid || ':' || md5(lo_get(oid)), ',' ORDER BY oid) FROM pg_largeobject_metadata")" \
        "$(tq t_thaw "SELECT string_agg(oid || ':' || md5(lo_get(oid)), ',' ORDER BY oid) FROM pg_largeobject_metadata")"
    t_assert_eq "thaw: large objects are copied by the pg_dump engine" "pg_dump" \
        "$(jst thawjob '.facts.copies.rehearsal.engine')"
    if [[ ${PGM_TEST_ENGINE:-copy} == copy ]]; then
        t_assert_contains "thaw: ... and a warning says so when the job asked for the copy engine" \
            "$(jst thawjob '[.warnings[].message] | join(";")')" "only the pg_dump engine copies"
    fi

    cmd "thaw: thaw" thaw thawjob
    wait_state "thaw: back to synced" thawjob synced 60
    assert_writable "thaw: after thaw" thaw
    # writes between the two freezes: the second final copy must have them
    q "$(src_url thaw)" "INSERT INTO shop.events_log VALUES ('2025-05-05 05:05:05+00', 'after thaw', '{\"x\": 1}');
        UPDATE shop.customers SET balance = balance + 1 WHERE id % 2 = 0;
        DELETE FROM shop.orders WHERE order_id = (SELECT max(order_id) FROM shop.orders);" >/dev/null
    t_assert_eq "thaw: the target lacks the new writes before the second freeze" "0" \
        "$(tq t_thaw "SELECT count(*) FROM shop.events_log WHERE kind = 'after thaw'")"

    cmd "thaw: freeze again" freeze thawjob
    wait_state "thaw: verified again" thawjob verified 120
    [[ $(pgmd_state thawjob) == verified ]] || return 1
    assert_frozen "thaw: second freeze" thaw
    compare_rows "thaw" thaw t_thaw
    compare_sequences "thaw" thaw t_thaw

    # 5. differences planted on the target are found: a row, and a large object's bytes
    tq t_thaw "DELETE FROM shop.events_log WHERE ctid = (SELECT ctid FROM shop.events_log WHERE kind = 'tick' LIMIT 1)" >/dev/null
    lo=$(tq t_thaw "SELECT max(oid) FROM pg_largeobject_metadata")
    tq t_thaw "SELECT lo_put($lo, 5, 'X')" >/dev/null
    cmd "verify_failed: verify accepted" verify thawjob
    wait_state "verify_failed: verify finds the difference" thawjob verify_failed 120
    [[ $(pgmd_state thawjob) == verify_failed ]] || return 1
    out=$(jst thawjob '[.verify.tables[] | select(.match == false) | .table] | join(",")')
    t_assert_eq "verify_failed: the report names the table and the large objects" \
        "pg_catalog.pg_largeobject,shop.events_log" "$out"
    t_assert_eq "verify_failed: the changed large object is named by its OID" "$lo:changed" \
        "$(jst thawjob '.verify.tables[] | select(.table == "pg_catalog.pg_largeobject") | .differences.keys[] | "\(.key):\(.kind)"')"
    t_assert_eq "verify_failed: report not ok" "false" "$(jst thawjob '.verify.ok')"
    t_assert_contains "verify_failed: human status names the table" "$(pgm status thawjob 2>&1)" "shop.events_log"
    assert_frozen "verify_failed: the source stays frozen" thaw
    t_assert_contains "verify_failed: read-only default still set" "$(ro_setting thaw)" "default_transaction_read_only=on"

    cmd "verify_failed: abort" abort thawjob
    wait_state "verify_failed: aborted" thawjob aborted 60
    assert_writable "verify_failed: after abort" thaw
    t_assert_eq "verify_failed: abort cleaned the target (no user tables)" "" "$(tq t_thaw "$LIST_TABLES_SQL")"
    t_assert_eq "verify_failed: abort cleaned the target (no large objects)" "0" \
        "$(tq t_thaw "SELECT count(*) FROM pg_largeobject_metadata")"
    t_assert_eq "verify_failed: abort left no pgmover session on the target" "0" \
        "$(tq t_thaw "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'pgmover%'")"
}
thaw_job

# ---------------------------------------------------------------------------------------
echo "# 6. many tables; a source read-only before the freeze"
# 3,000 tables, each with two indexes and a TOAST table: dropping them all in one
# transaction needs more locks than the target's lock table holds (64 x 200 connections
# here; measured: 3,000 such tables fail, 2,000 pass), reading them in one does not
q "$(src_url many)" "DO \$\$ BEGIN FOR i IN 1..3000 LOOP
    EXECUTE format('CREATE TABLE public.t%s (id int PRIMARY KEY, v text, u int UNIQUE)', i);
    EXECUTE format('INSERT INTO public.t%s SELECT g, ''v'' || g, g FROM generate_series(1, 2) g', i);
    IF i % 200 = 0 THEN COMMIT; END IF;
  END LOOP; END \$\$" >/dev/null || t_fail "many: 3,000 tables on the source" "see the server log"
many_job() {
    cmd "many: create" create many --source "$(src_url many)" --target "$(tgt_url t_many)" --method dump "${ENGINE_SET[@]}"
    cmd "many: start" start many
    wait_state "many: synced (the rehearsal copy)" many synced 180
    [[ $(pgmd_state many) == synced ]] || return 1
    # read-only before pgmover freezes it: by an earlier job, or by its DBA
    sq postgres "ALTER DATABASE many SET default_transaction_read_only = on" >/dev/null
    cmd "many: freeze" freeze many
    wait_state "many: verified (the final copy cleaned 3,000 tables first)" many verified 180
    [[ $(pgmd_state many) == verified ]] || return 1
    t_assert_eq "many: every table on the target" "3001" "$(tq t_many "SELECT count(*) FROM pg_stat_user_tables")"
    t_assert_eq "many: verification compared them all (counts and checksums)" "3001 true" \
        "$(jst many '"\(.verify.tables_compared) \(.verify.ok)"')"
    t_assert_contains "many: the freeze says the source was read-only already" \
        "$(jst many '[.warnings[].message] | join(";")')" "was read-only before this freeze"
    cmd "many: thaw" thaw many
    wait_state "many: synced again" many synced 60
    t_assert_eq "many: thaw puts back the read-only default that was there" "default_transaction_read_only=on" \
        "$(ro_setting many)"
    sq postgres "ALTER DATABASE many RESET default_transaction_read_only" >/dev/null
    cmd "many: abort" abort many
    wait_state "many: aborted" many aborted 120
    t_assert_eq "many: abort cleaned the target" "" "$(tq t_many "$LIST_TABLES_SQL")"
}
many_job

# ---------------------------------------------------------------------------------------
echo "# 7. row-level security forced on the owner: an error, never a partial copy"
# The owner is subject to its own policies under FORCE ROW LEVEL SECURITY; a copy or a
# comparison run under them would see half the rows on both sides, and agree.
rls_job() {
    local out rc
    q "$(src_url rls)" "CREATE TABLE public.notes (id int PRIMARY KEY, body text);
        INSERT INTO public.notes SELECT i, 'note ' || i FROM generate_series(1, 10) i;
        ALTER TABLE public.notes ENABLE ROW LEVEL SECURITY;
        ALTER TABLE public.notes FORCE ROW LEVEL SECURITY;
        CREATE POLICY even_only ON public.notes USING (id % 2 = 0)" >/dev/null
    t_assert_eq "rls: the owner sees half the rows through its policy" "5" \
        "$(q "$(src_url rls)" "SELECT count(*) FROM public.notes")"
    out=$(pgm plan --source "$(src_url rls)" --target "$(tgt_url t_rls)" 2>&1)
    rc=$?
    t_assert_eq "rls: plan finds a blocker" 1 "$rc"
    t_assert_contains "rls: plan names row-level security and the table" "$out" "policies apply to role"
    t_assert_contains "rls: plan names the table" "$out" "public.notes"
    # lifted for the migration, and forced again by someone before the freeze
    q "$(src_url rls)" "ALTER TABLE public.notes NO FORCE ROW LEVEL SECURITY" >/dev/null
    cmd "rls: create" create rls --source "$(src_url rls)" --target "$(tgt_url t_rls)" --method dump "${ENGINE_SET[@]}"
    cmd "rls: start" start rls
    wait_state "rls: synced" rls synced 120
    q "$(src_url rls)" "ALTER TABLE public.notes FORCE ROW LEVEL SECURITY" >/dev/null
    cmd "rls: freeze" freeze rls
    wait_state "rls: the final copy fails" rls failed 120
    t_assert_contains "rls: the error names row-level security and the table" \
        "$(jst rls '[.error.message, .error.detail, .error.hint] | join(" ")')" "row-level security policy for table \"notes\""
    t_assert_contains "rls: the hint says how to lift it" "$(jst rls '.error.hint')" "NO FORCE ROW LEVEL SECURITY"
    # the source is frozen (sessions read-only by default): a read-write transaction of the owner's
    t_check "rls: lifted while frozen" q "$(src_url rls)" \
        "BEGIN READ WRITE; ALTER TABLE public.notes NO FORCE ROW LEVEL SECURITY; COMMIT"
    cmd "rls: retry" retry rls
    wait_state "rls: verified" rls verified 120
    t_assert_eq "rls: every row on the target" "10" "$(tq t_rls "SELECT count(*) FROM public.notes")"
    cmd "rls: abort" abort rls
    wait_state "rls: aborted" rls aborted 60
}
rls_job

# ---------------------------------------------------------------------------------------
echo "# 8. a Heroku Shield-like source: a client certificate (mTLS) and verify-full"
shield_job() {
    local out st
    q "$SOURCE_SHIELD_URL" "CREATE TABLE public.patients (id int PRIMARY KEY, name text NOT NULL);
        INSERT INTO public.patients SELECT i, 'patient ' || i FROM generate_series(1, 500) i" >/dev/null
    out=$(pgm plan --source "${SOURCE_SHIELD_URL%%&sslcert=*}" --target "$(tgt_url t_shield)" 2>&1)
    t_assert_contains "shield: without a client certificate, plan says to add sslcert and sslkey" "$out" \
        "sslcert=/path/to/client.crt"
    out=$(pgm plan --source "$SOURCE_SHIELD_URL" --target "$(tgt_url t_shield)" 2>&1)
    t_assert_contains "shield: with it, plan sees the source over TLS" "$out" "TLS to the source: the connection to the source is encrypted"
    cmd "shield: create" create shield --source "$SOURCE_SHIELD_URL" --target "$(tgt_url t_shield)" --method dump \
        "${ENGINE_SET[@]}" --set rollback_window=0 --set cutover_command=true
    t_assert_eq "shield: status shows verify-full, no password" "postgres://shield_owner:****@127.0.0.1:$SOURCE_PORT/shielddb?sslmode=verify-full" \
        "$(jst shield '.source')"
    cmd "shield: start" start shield
    wait_state "shield: synced" shield synced 120
    q "$SOURCE_SHIELD_URL" "UPDATE public.patients SET name = 'renamed' WHERE id = 7" >/dev/null
    cmd "shield: freeze" freeze shield
    wait_state "shield: verified" shield verified 120
    t_assert_eq "shield: every row on the target, the late change too" "500 renamed" \
        "$(tq t_shield "SELECT count(*) || ' ' || (SELECT name FROM public.patients WHERE id = 7) FROM public.patients")"
    cmd "shield: cutover" cutover shield
    _shield_after_cutover() { st=$(pgmd_state shield); [[ $st == rollback_window || $st == completed || $st == failed ]]; }
    t_wait_for 60 _shield_after_cutover
    if [[ $(pgmd_state shield) == rollback_window ]]; then cmd "shield: finish" finish shield; fi
    wait_state "shield: completed" shield completed 60
}
shield_job

# ---------------------------------------------------------------------------------------
# secrets never reach status, state.json, the audit trail or the log

leaks=$(grep -rlF -e "$SOURCE_OWNER_PASSWORD" -e "$TARGET_ADMIN_PASSWORD" -e "$SOURCE_SHIELD_PASSWORD" "$DMN" 2>/dev/null |
    grep -v '/secrets\.json$' || true)
t_assert_eq "no password in state.json, audit.jsonl or the log" "" "$leaks"
out=$(pgm status 2>&1)
if [[ $out != *"$SOURCE_OWNER_PASSWORD"* && $out != *"$TARGET_ADMIN_PASSWORD"* ]]; then
    t_ok "no password in status"
else
    t_fail "no password in status" "a password is shown"
fi

pgmd_stop
rc=$?
t_assert_eq "pgmoverd stops cleanly on SIGTERM" "0" "$rc"
t_check "no copy tool left running" t_wait_for 5 no_copy_tools ||
    t_detail "$(pgrep -af -- "(pg_dump|pg_restore).*$WORK/")"

echo "# run time: $((SECONDS - T0)) s"
t_summary
