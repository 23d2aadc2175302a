#!/usr/bin/env bash
# Integration test of method = pglogical, black-box: the CLI, the documented status
# fields, and SQL on both servers.
#
#   1. preconditions that stop in provisioning with a clear message: a source with
#      wal_level = replica (a second test bed), a table without a primary key, and the
#      non-superuser database owner (Heroku's kind of credential): dump is the way
#   2. a job from created to completed while pgbench writes to the source the whole
#      time; pgmoverd killed with SIGKILL during syncing and during freezing; rows
#      identical on both sides and no committed transaction lost; nothing of
#      pglogical's or pgmover's left on either side afterwards
#   3. a failure (the subscription dropped behind pgmover's back): the failed job
#      keeps no slot on the source; retry creates the subscription again; abort drops
#      every pglogical object and slot and empties the target
#   4. pgmoverd killed with SIGKILL in provisioning (the schema's restore held by a
#      lock), cutting_over and rolling_back (inside their hooks), rollback_window,
#      thawing, aborting, verifying and finishing: each time the same state after the
#      restart, then the next, rows equal, nothing of pglogical's or pgmover's left
#
# Run from the source tree as root (or postgres):
#   PGM_BUILD=/tmp/bp bash tests/integration/test_pglogical.sh
# PGM_TEST_KEEP=1 keeps the work directory (daemon log, server logs).
set -uo pipefail # no -e: each check reports and the summary decides the exit status

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TB=$ROOT/tests/testbed/testbed.sh
# shellcheck source=tests/integration/lib.sh
. "$HERE/lib.sh"
# shellcheck source=tests/integration/pgmd.sh
. "$HERE/pgmd.sh"
# shellcheck source=tests/integration/jobs.sh
. "$HERE/jobs.sh"

t_prereq test_pglogical pgmoverd pgmover

WORK=$(t_tmpdir) || exit 1
BED=$WORK/bed       # wal_level = logical (the default)
BED2=$WORK/bed2     # wal_level = replica
DMN=$WORK/daemon
PGBENCH_PID=
T0=$SECONDS

cleanup() {
    if [[ -n $PGBENCH_PID ]]; then
        kill "$PGBENCH_PID" 2>/dev/null
        wait "$PGBENCH_PID" 2>/dev/null
    fi
    release_all
    pgmd_cleanup
    t_bed_remove "$WORK" "$BED" "$BED2"
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------
# helpers


admin_url() { printf '%s' "${SOURCE_ADMIN_URL/\/appdb\?//$1?}"; }





# the pglogical objects and slots on one side of a database: "slots/nodes/subscriptions/ext"
pgl_objects() { # SIDE DB
    local side=$1 db=$2 run=sq slots ext
    [[ $side == src ]] || run=tq
    slots=$($run "$db" "SELECT count(*) FROM pg_replication_slots WHERE database = current_database()")
    ext=$($run "$db" "SELECT count(*) FROM pg_extension WHERE extname = 'pglogical'")
    if [[ $ext == 1 ]]; then
        printf '%s/%s/1' "$slots" "$($run "$db" "SELECT (SELECT count(*) FROM pglogical.node) || '/' ||
            (SELECT count(*) FROM pglogical.subscription)")"
    else
        printf '%s/0/0/%s' "$slots" "$ext"
    fi
}

LIST_TABLES_SQL="SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname !~ '^pg_' AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
       AND d.objid = c.oid AND d.deptype = 'e') ORDER BY 1"

# rows_sig SIDE DB RELATION ORDER: "count md5" of the relation's rows in ORDER
rows_sig() {
    local sql="SET TimeZone = 'UTC'; SET extra_float_digits = 3;
      SELECT count(*) || ' ' || coalesce(md5(string_agg(t::text, '|' ORDER BY $4)), '-') FROM $3 t"
    if [[ $1 == src ]]; then sq "$2" "$sql"; else tq "$2" "$sql"; fi
}

# compare_rows LABEL SRCDB DSTDB: same tables, and for each the same count and md5 of its
# rows ordered by the primary key (all columns when there is none)
compare_rows() {
    local label=$1 sdb=$2 ddb=$3 stables rel s d order n=0
    stables=$(sq "$sdb" "$LIST_TABLES_SQL")
    t_assert_eq "$label: the target has the same tables" "$stables" "$(tq "$ddb" "$LIST_TABLES_SQL")"
    while IFS= read -r rel; do
        [[ -n $rel ]] || continue
        n=$((n + 1))
        order=$(sq "$sdb" "SELECT coalesce(string_agg(format('t.%I', a.attname), ', ' ORDER BY k.ord), 't::text')
              FROM pg_index i CROSS JOIN unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
              JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
             WHERE i.indrelid = '$rel'::regclass AND i.indisprimary")
        s=$(rows_sig src "$sdb" "$rel" "$order")
        d=$(rows_sig dst "$ddb" "$rel" "$order")
        if [[ $s == "$d" && $s =~ ^[0-9]+\ ([0-9a-f]{32}|-)$ ]]; then
            t_ok "$label: rows of $rel equal ($s)"
        else
            t_fail "$label: rows of $rel equal" "source [$s], target [$d]"
        fi
    done <<<"$stables"
    [[ $n -gt 0 ]] || t_fail "$label: tables to compare" "none found on the source"
}

# precondition NAME JOB MSG HINT create-args...: start fails in provisioning with MSG/HINT;
# nothing of pglogical's is created; abort ends it
precondition() {
    local name=$1 job=$2 needle=$3 hint=$4 sdb=$5 bedenv=$6 msg h st
    shift 6
    cmd "$name: create" create "$job" "$@" --method pglogical
    cmd "$name: start" start "$job"
    wait_state "$name: job fails" "$job" failed 60
    msg=$(jst "$job" '.error.message // ""')
    h=$(jst "$job" '.error.hint // ""')
    st=$(jst "$job" '.error.state // ""')
    t_assert_eq "$name: failed in provisioning" "provisioning" "$st"
    t_assert_contains "$name: error message" "$msg" "$needle"
    t_assert_contains "$name: hint" "$h" "$hint"
    t_assert_contains "$name: status shows the error" "$(pgm status "$job" 2>&1)" "$needle"
    t_assert_eq "$name: no pglogical object created on the source" "0/0/0/0" \
        "$(. "$bedenv"; $SOURCE_PSQL -d "$sdb" -tA -c "SELECT (SELECT count(*) FROM pg_replication_slots)
            || '/' || (SELECT count(*) FROM pg_extension WHERE extname = 'pglogical') || '/0/0'")"
    cmd "$name: abort" abort "$job"
    wait_state "$name: aborted" "$job" aborted 60
}

# ---------------------------------------------------------------------------------------
# the beds, the databases, the daemon

TB_SOURCE_WAL_LEVEL=replica "$TB" start "$BED2" >"$WORK/testbed2.log" 2>&1 &
bed2_pid=$!
if ! "$TB" start "$BED" >"$WORK/testbed.log" 2>&1; then
    cat "$WORK/testbed.log" >&2
    t_fail "testbed" "could not start the test bed"
    t_summary
    exit 1
fi
if ! wait "$bed2_pid"; then
    cat "$WORK/testbed2.log" >&2
    t_fail "testbed" "could not start the wal_level = replica test bed"
    t_summary
    exit 1
fi
# shellcheck source=/dev/null
. "$BED2/env"
REPLICA_ADMIN_URL=${SOURCE_ADMIN_URL/\/appdb\?//wal?}
REPLICA_TARGET_URL=${TARGET_URL%/appdb}/t_wal
setup_ok=1
"$TB" createdb "$BED2" src wal >/dev/null || setup_ok=0
"$TB" createdb "$BED2" dst t_wal >/dev/null || setup_ok=0
q "$REPLICA_ADMIN_URL" "CREATE TABLE public.t (id int PRIMARY KEY)" >/dev/null || setup_ok=0
# shellcheck source=/dev/null
. "$BED/env"

for db in nopk heroku bench small extonly; do "$TB" createdb "$BED" src "$db" >/dev/null || setup_ok=0; done
for db in t_nopk t_heroku t_bench t_small t_extonly; do "$TB" createdb "$BED" dst "$db" >/dev/null || setup_ok=0; done
q "$(admin_url nopk)" "CREATE TABLE public.ok (id int PRIMARY KEY); CREATE TABLE public.no_key (v text)" >/dev/null ||
    setup_ok=0
# owned by the database owner, as on Heroku: readable, but the owner is no superuser
q "$(src_url heroku)" "CREATE TABLE public.items (id serial PRIMARY KEY, v text)" >/dev/null || setup_ok=0
q "$(admin_url small)" "CREATE TABLE public.items (id bigserial PRIMARY KEY, v text, at timestamptz DEFAULT now());
    INSERT INTO public.items (v) SELECT 'v' || i FROM generate_series(1, 5000) i;
    CREATE TABLE public.tags (item bigint REFERENCES public.items, tag text, PRIMARY KEY (item, tag));
    INSERT INTO public.tags SELECT id, 'x' FROM public.items WHERE id % 3 = 0;
    CREATE MATERIALIZED VIEW public.tag_counts AS SELECT tag, count(*) AS n FROM public.tags GROUP BY tag" \
    >/dev/null || setup_ok=0
"$TB_PGBIN/pgbench" -i -s 20 -q -n "$(admin_url bench)" >"$WORK/pgbench-init.log" 2>&1 || setup_ok=0
q "$(admin_url bench)" "CREATE TABLE public.events (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())" \
    >/dev/null || setup_ok=0
echo "INSERT INTO public.events DEFAULT VALUES;" >"$WORK/events.sql"
if [[ $setup_ok == 1 ]]; then t_ok "setup: test beds and databases"; else
    t_fail "setup" "creating the databases failed"
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
echo "# 1. preconditions"

precondition "wal_level = replica" walrep "wal_level = replica" "wal_level = logical" wal "$BED2/env" \
    --source "$REPLICA_ADMIN_URL" --target "$REPLICA_TARGET_URL"
precondition "table without a primary key" nopk "have no primary key" "allow_no_pk" nopk "$BED/env" \
    --source "$(admin_url nopk)" --target "$(tgt_url t_nopk)"
t_assert_contains "table without a primary key: the table is named" "$(jst nopk '.facts.previous_error.message')" \
    "public.no_key"
precondition "non-superuser owner" owner "not a superuser" "--method dump" heroku "$BED/env" \
    --source "$(src_url heroku)" --target "$(tgt_url t_heroku)"
out=$(pgm plan --source "$(src_url heroku)" --target "$(tgt_url t_heroku)" --method pglogical 2>&1)
t_assert_contains "plan --method pglogical says the owner cannot" "$out" "cannot be migrated with pglogical"
out=$(pgm plan --source "$(src_url heroku)" --target "$(tgt_url t_heroku)" 2>&1)
if [[ $out != *"pglogical: source role"* ]]; then t_ok "plan for dump leaves the pglogical checks out"; else
    t_fail "plan for dump leaves the pglogical checks out" "$out"
fi
# pglogical's extension installed on the source, but no node yet (a provisioning cut
# short, or a DBA's CREATE EXTENSION): plan reads it as no node
q "$(admin_url extonly)" "CREATE EXTENSION pglogical; CREATE TABLE public.t (id int PRIMARY KEY)" >/dev/null
out=$(pgm plan --source "$(admin_url extonly)" --target "$(tgt_url t_extonly)" --method pglogical 2>&1)
t_assert_contains "plan: a source with the pglogical extension and no node" "$out" "pglogical: wal_level"
if [[ $out != *"could not"* ]]; then t_ok "plan: ... inspects it without an error"; else
    t_fail "plan: ... inspects it without an error" "$out"
fi

# ---------------------------------------------------------------------------------------
echo "# 2. created -> completed under pgbench, SIGKILL in syncing and in freezing"

# TPC-B (every committed transaction inserts one pgbench_history row) and, one time in
# ten, a row in events (a bigserial: its sequence must not be behind on the target)
"$TB_PGBIN/pgbench" -c 2 -j 2 -T 600 -n -b tpcb-like@9 -f "$WORK/events.sql@1" "$(admin_url bench)" \
    >"$WORK/pgbench.log" 2>&1 &
PGBENCH_PID=$!
_history_grows() { [[ $(sq bench "SELECT count(*) > 100 FROM pgbench_history") == t ]]; }
t_check "pgbench writes to the source" t_wait_for 30 _history_grows || t_detail "$(tail -3 "$WORK/pgbench.log")"

_in_syncing() { [[ $(pgmd_state bench) == syncing ]]; }
main_job() {
    local before after lag
    # freeze_command makes freezing last long enough to be interrupted
    cmd "bench: create" create bench --source "$(admin_url bench)" --target "$(tgt_url t_bench)" \
        --method pglogical --set allow_no_pk=on --set freeze_mode=both --set freeze_command='sleep 3' \
        --set thaw_command=true
    cmd "bench: start" start bench
    t_check "bench: syncing" t_wait_for 60 _in_syncing || {
        t_detail "$(fail_detail bench)"
        return 1
    }
    before=$(pgmd_state bench)
    pgmd_kill9
    t_assert_eq "bench: killed while syncing" "syncing" "$before"
    if ! pgmd_start "$DMN"; then
        t_fail "bench: pgmoverd restarts" "see $DMN/pgmoverd.log"
        return 1
    fi
    wait_state "bench: synced after the restart" bench synced 180
    [[ $(pgmd_state bench) == synced ]] || return 1
    t_assert_eq "bench: one subscription on the target" "1" "$(tq t_bench "SELECT count(*) FROM pglogical.subscription")"
    t_assert_eq "bench: every table ready" "5/5" "$(jst bench '"\(.facts.pglogical.sync.tables_ready)/\(.facts.pglogical.sync.tables_total)"')"
    t_assert_eq "bench: status --tables, each table replicating" "5" \
        "$(pgm status bench --tables | grep -cE '^public\.[a-z_]+ +replicating$')"
    # lag is followed while synced, with pgbench still writing
    sleep 3
    lag=$(jst bench '"\(.lag_bytes|type) \(.lag_seconds|type)"')
    t_assert_eq "bench: status has lag_bytes and lag_seconds" "number number" "$lag"
    t_assert_eq "bench: pgbench still runs" "0" "$(kill -0 "$PGBENCH_PID" 2>/dev/null; echo $?)"
    # sessions lost under the monitor: a warning, and the next statements reconnect
    local ended
    ended=$(sq bench "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                      WHERE application_name = 'pgmover:bench:pglogical'")
    ended=$((ended + $(tq t_bench "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                                   WHERE application_name = 'pgmover:bench:pglogical'")))
    t_assert_eq "bench: pgmover's two sessions ended by hand" "2" "$ended"
    _lost_warned() { [[ $(jst bench '[.warnings[].message | select(test("lost its connection"))] | length') -ge 1 ]]; }
    t_wait_for 10 _lost_warned && t_ok "bench: a lost session is a warning" ||
        t_fail "bench: a lost session is a warning" "$(jst bench '[.warnings[].message]')"
    _reconnected() {
        [[ $(sq bench "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgmover:bench:pglogical'") == 1 &&
            $(tq t_bench "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgmover:bench:pglogical'") == 1 ]]
    }
    t_wait_for 10 _reconnected && t_ok "bench: the monitor reconnects on both sides" ||
        t_fail "bench: the monitor reconnects on both sides" "state $(pgmd_state bench)"
    t_assert_eq "bench: still synced" "synced" "$(pgmd_state bench)"

    cmd "bench: freeze" freeze bench
    t_wait_for 10 _state_or_failed bench freezing
    sleep 1 # inside freeze_command (sleep 3)
    before=$(pgmd_state bench)
    pgmd_kill9
    t_assert_eq "bench: killed while freezing" "freezing" "$before"
    if ! pgmd_start "$DMN"; then
        t_fail "bench: pgmoverd restarts again" "see $DMN/pgmoverd.log"
        return 1
    fi
    wait_state "bench: verified after the restart" bench verified 180
    [[ $(pgmd_state bench) == verified ]] || return 1
    t_assert_eq "bench: verify report ok" "true" "$(jst bench '.verify.ok')"
    after=$(jst bench '.facts.freeze.freeze_to_drained_ms | type')
    t_assert_eq "bench: freeze-to-drained time recorded" "number" "$after"
    echo "# freeze to drained (after a restart in freezing): $(jst bench '.facts.freeze.freeze_to_drained_ms') ms," \
        "initial sync: $(jst bench '.facts.pglogical.sync_ms') ms"
    # the freeze ended pgbench's sessions: it stops with errors, as expected
    t_check "bench: pgbench ended by the freeze" t_wait_for 30 eval '! kill -0 '"$PGBENCH_PID"' 2>/dev/null'
    wait "$PGBENCH_PID" 2>/dev/null
    PGBENCH_PID=
    compare_rows "bench" bench t_bench
    local done_tx src_hist dst_hist src_ev dst_ev seqs
    done_tx=$(sed -nE 's/^number of transactions actually processed: ([0-9]+).*/\1/p' "$WORK/pgbench.log")
    src_hist=$(sq bench "SELECT count(*) FROM pgbench_history")
    dst_hist=$(tq t_bench "SELECT count(*) FROM pgbench_history")
    src_ev=$(sq bench "SELECT count(*) FROM public.events")
    dst_ev=$(tq t_bench "SELECT count(*) FROM public.events")
    echo "# pgbench committed $done_tx transaction(s); rows of history + events: source $src_hist + $src_ev," \
        "target $dst_hist + $dst_ev"
    t_assert_eq "bench: every committed TPC-B transaction is on the target" "$src_hist" "$dst_hist"
    t_assert_eq "bench: every committed insert into events is on the target" "$src_ev" "$dst_ev"
    if [[ $done_tx =~ ^[0-9]+$ && $((src_hist + src_ev)) -ge $done_tx && $done_tx -gt 0 ]]; then
        t_ok "bench: no transaction pgbench saw committed is missing ($done_tx <= $((src_hist + src_ev)))"
    else
        t_fail "bench: no transaction pgbench saw committed is missing" "pgbench $done_tx, rows $src_hist + $src_ev"
    fi
    seqs="$(sq bench "SELECT last_value FROM public.events_id_seq") $(tq t_bench "SELECT last_value FROM public.events_id_seq")"
    if [[ $seqs =~ ^([0-9]+)\ ([0-9]+)$ ]] && ((BASH_REMATCH[2] >= BASH_REMATCH[1])); then
        t_ok "bench: the target's sequence is not behind the source's ($seqs)"
    else
        t_fail "bench: the target's sequence is not behind the source's" "source target: $seqs"
    fi
    t_assert_eq "bench: the drain set the sequences" "true" "$(jst bench '.facts.freeze.drain.sequences >= 1')"

    cmd "bench: cutover" cutover bench --no-traffic-switch
    wait_state "bench: rollback_window" bench rollback_window 60
    t_assert_eq "bench: the target is independent after cutover (no subscription)" "0" \
        "$(tq t_bench "SELECT count(*) FROM pglogical.subscription")"
    t_assert_eq "bench: no pglogical slot on the source after cutover" "0" \
        "$(sq bench "SELECT count(*) FROM pg_replication_slots WHERE plugin = 'pglogical_output'")"
    cmd "bench: finish" finish bench
    wait_state "bench: completed" bench completed 60
    t_assert_eq "bench: no pglogical object or slot left on the source" "0/0/0/0" \
        "$(pgl_objects src bench)"
    t_assert_eq "bench: no pglogical extension left on the target" "0" \
        "$(tq t_bench "SELECT count(*) FROM pg_extension WHERE extname = 'pglogical'")"
    t_assert_eq "bench: the target keeps its rows" "$src_hist" "$(tq t_bench "SELECT count(*) FROM pgbench_history")"
}
main_job

# ---------------------------------------------------------------------------------------
echo "# 3. a failure keeps no slot; retry; abort drops everything"

small_job() {
    local rc
    # short thresholds, so the stall and retained-WAL warnings show within seconds
    cmd "small: create" create small --source "$(admin_url small)" --target "$(tgt_url t_small)" --method pglogical \
        --set stall_warning=3s --set retained_wal_warning=1
    cmd "small: start" start small
    wait_state "small: synced" small synced 120
    [[ $(pgmd_state small) == synced ]] || return 1
    # the schema makes materialized views WITH NO DATA: the initial sync's end refreshes them
    t_assert_eq "small: the materialized view is populated on the target, from the synced rows" "true x=1666" \
        "$(tq t_small "SELECT (SELECT ispopulated FROM pg_matviews WHERE matviewname = 'tag_counts') || ' '
                          || string_agg(tag || '=' || n, ',') FROM public.tag_counts")"
    t_assert_eq "small: one slot on the source" "1" \
        "$(sq small "SELECT count(*) FROM pg_replication_slots WHERE database = current_database()")"
    # an apply worker that fails on every start: a constraint only the target has
    tq t_small "ALTER TABLE public.items ADD CONSTRAINT target_only CHECK (v <> 'boom')" >/dev/null
    q "$(admin_url small)" "INSERT INTO public.items (v) VALUES ('boom')" >/dev/null
    _crash_warned() { [[ $(jst small '[.warnings[].message | select(test("keeps failing"))] | length') -ge 1 ]]; }
    t_check "small: a crash-looping apply worker is reported" t_wait_for 90 _crash_warned ||
        t_detail "$(jst small '[.warnings[].message]')"
    t_assert_contains "small: its hint points at the target's log" \
        "$(jst small '[.warnings[] | select(.message | test("keeps failing")) | .hint] | first')" "server log"
    t_assert_eq "small: lag is visible meanwhile" "true" "$(jst small '.lag_bytes > 0')"
    t_assert_eq "small: a failing worker is a warning, not a failure" "synced" "$(pgmd_state small)"
    # the source keeps writing while nothing is applied: the slot stalls and its WAL grows
    (for i in $(seq 50); do q "$(admin_url small)" "INSERT INTO public.items (v) VALUES ('w$i')" >/dev/null; sleep 0.2; done) &
    local writer=$!
    _warned() { [[ $(jst small "[.warnings[].message | select(test(\"$1\"))] | length") -ge 1 ]]; }
    t_check "small: a stalled slot is reported" t_wait_for 60 _warned "replication is stalled" ||
        t_detail "$(jst small '[.warnings[].message]')"
    t_check "small: growing retained WAL is reported" t_wait_for 60 _warned "retains more and more WAL" ||
        t_detail "$(jst small '[.warnings[].message]')"
    wait "$writer"
    # a table that vanished from pglogical's sync catalog
    tq t_small "DELETE FROM pglogical.local_sync_status WHERE sync_relname = 'items'" >/dev/null
    t_check "small: a table missing from the sync catalog is reported" \
        t_wait_for 60 _warned "missing from pglogical's sync catalog" ||
        t_detail "$(jst small '[.warnings[].message]')"
    t_assert_contains "small: its hint says how to resynchronize" \
        "$(jst small '[.warnings[] | select(.message | test("sync catalog")) | .hint] | first')" \
        "alter_subscription_resynchronize_table"
    # pglogical retries the worker after a minute by now; the next part starts over anyway
    tq t_small "ALTER TABLE public.items DROP CONSTRAINT target_only" >/dev/null
    # behind pgmover's back
    tq t_small "SELECT pglogical.drop_subscription('$(jst small '.facts.pglogical.subscription')')" >/dev/null
    wait_state "small: fails when its subscription vanishes" small failed 30
    t_assert_contains "small: the error says so" "$(jst small '.error.message')" "is gone from the target"
    _no_slot() { [[ $(sq small "SELECT count(*) FROM pg_replication_slots WHERE database = current_database()") == 0 ]]; }
    t_check "small: a failed job keeps no slot on the source" t_wait_for 30 _no_slot ||
        t_detail "$(sq small "SELECT slot_name FROM pg_replication_slots")"
    q "$(admin_url small)" "INSERT INTO public.items (v) VALUES ('after the failure')" >/dev/null
    cmd "small: retry" retry small
    wait_state "small: synced again" small synced 120
    _has_late() { [[ $(tq t_small "SELECT count(*) FROM public.items WHERE v IN ('after the failure', 'boom')") == 2 ]]; }
    t_check "small: the new subscription copied the data anew" t_wait_for 30 _has_late
    t_assert_eq "small: no duplicate rows after the new copy" \
        "$(sq small "SELECT count(*) FROM public.items")" "$(tq t_small "SELECT count(*) FROM public.items")"
    # a sequence made on the source after provisioning (DDL is not replicated): the drain stops on it
    sq small "CREATE SEQUENCE public.late_seq; SELECT nextval('public.late_seq')" >/dev/null
    cmd "small: freeze" freeze small
    wait_state "small: the drain fails on a sequence the target lacks" small failed 60
    t_assert_eq "small: ... in freezing" "freezing" "$(jst small '.error.state')"
    t_assert_contains "small: ... naming it" "$(jst small '.error.message')" \
        "sequence(s) of the source are missing on the target: public.late_seq"
    cmd "small: abort" abort small
    wait_state "small: aborted" small aborted 60
    t_assert_eq "small: no slot, node, subscription or extension on the source" "0/0/0/0" "$(pgl_objects src small)"
    t_assert_eq "small: no slot, node, subscription or extension on the target" "0/0/0/0" "$(pgl_objects dst t_small)"
    t_assert_eq "small: abort emptied the target" "" "$(tq t_small "$LIST_TABLES_SQL")"
    rc=$(q "$(src_url small)" "SELECT 1" 2>&1)
    t_assert_eq "small: the source is untouched and reachable" "1" "$rc"
    t_assert_eq "small: ... and writable again" "written" \
        "$(q "$(admin_url small)" "INSERT INTO public.items (v) VALUES ('after abort') RETURNING 'written'")"
}
small_job

# ---------------------------------------------------------------------------------------
echo "# 4. SIGKILL of pgmoverd in the states of a pglogical job the parts above do not kill in"

# Each state is made to last (a lock a superuser session holds, or a hook that sleeps),
# pgmoverd is killed with SIGKILL and restarted; the job must be in the same state, then
# reach the next one, with the rows equal (compare_rows, the test's own query) and no
# pglogical object, slot, publication or pgmover schema left once the job has ended.
hook_running() { pgrep -f -- "$1" >/dev/null; }
# kill_in NAME JOB STATE CHECK...: the job is in STATE and CHECK holds: SIGKILL, restart,
# the job is in STATE again
kill_in() {
    local name=$1 job=$2 state=$3
    shift 3
    _held() { [[ $(pgmd_state "$1") == "$2" ]] && "${@:3}"; }
    if ! t_wait_for 60 _held "$job" "$state" "$@"; then
        t_fail "$name: held in $state" "state $(pgmd_state "$job"): $(fail_detail "$job")"
        return 1
    fi
    pgmd_kill9
    t_ok "$name: SIGKILL in $state"
    if ! pgmd_start "$DMN"; then
        t_fail "$name: pgmoverd restarts" "see $DMN/pgmoverd.log"
        return 1
    fi
    t_assert_eq "$name: still $state after the restart" "$state" "$(pgmd_state "$job")"
}
pgl_db() { # DB: a small source database with a foreign key and a probe table (the owner's), an empty target
    "$TB" createdb "$BED" src "$1" >/dev/null && "$TB" createdb "$BED" dst "t_$1" >/dev/null &&
        q "$(admin_url "$1")" "CREATE TABLE public.items (id bigserial PRIMARY KEY, v text);
            INSERT INTO public.items (v) SELECT 'v' || i FROM generate_series(1, 3000) i;
            CREATE TABLE public.tags (item bigint REFERENCES public.items, tag text, PRIMARY KEY (item, tag));
            INSERT INTO public.tags SELECT id, 't' FROM public.items WHERE id % 5 = 0" >/dev/null &&
        q "$(src_url "$1")" "CREATE TABLE public.write_probe (id bigserial PRIMARY KEY, note text)" >/dev/null
}
_carried() { [[ $(sq "$1" "SELECT count(*) FROM public.write_probe WHERE note = '$2'") == 1 ]]; }
# target_write NAME DB NOTE: a write on the target comes back to the source
target_write() {
    q "$(tgt_url "t_$2")" "INSERT INTO public.write_probe (note) VALUES ('$3')" >/dev/null
    t_check "$1: a write on the target is carried back to the source" t_wait_for 60 _carried "$2" "$3" ||
        t_detail "$(jst "$2" '.facts.reverse')"
}
kill_matrix() {
    local db
    for db in kp1 kp2 kp3; do pgl_db "$db" || {
        t_fail "kill matrix: databases" "could not create $db"
        return 1
    }; done

    # kp1: provisioning (the schema's restore waits: pglogical's extension and node
    # are being made), cutting_over inside cutover_command, rollback_window, rolling_back
    # inside rollback_command
    hold cat dst t_kp1 "LOCK TABLE pg_catalog.pg_class IN SHARE MODE" || return 1
    cmd "kp1: create" create kp1 --source "$(admin_url kp1)" --target "$(tgt_url t_kp1)" --method pglogical \
        --set cutover_command=': kp1-cutover; sleep 4' --set rollback_command=': kp1-rollback; sleep 3'
    cmd "kp1: start" start kp1
    kill_in "kp1" kp1 provisioning waiting_on_lock dst t_kp1 || return 1
    release cat
    wait_state "kp1: synced after a SIGKILL in provisioning" kp1 synced 180
    t_assert_eq "kp1: one local node, one subscription on the target" "1/1" \
        "$(tq t_kp1 "SELECT (SELECT count(*) FROM pglogical.local_node) || '/' || (SELECT count(*) FROM pglogical.subscription)")"
    t_assert_eq "kp1: one slot on the source" "1" \
        "$(sq kp1 "SELECT count(*) FROM pg_replication_slots WHERE database = current_database()")"
    cmd "kp1: freeze" freeze kp1
    wait_state "kp1: verified" kp1 verified 120
    compare_rows "kp1: verified" kp1 t_kp1
    cmd "kp1: cutover" cutover kp1
    kill_in "kp1" kp1 cutting_over hook_running kp1-cutover || return 1
    wait_state "kp1: rollback_window after a SIGKILL inside cutover_command" kp1 rollback_window 120
    t_assert_eq "kp1: no subscription on the target" "0" "$(tq t_kp1 "SELECT count(*) FROM pglogical.subscription")"
    t_assert_eq "kp1: no pglogical slot on the source" "0" \
        "$(sq kp1 "SELECT count(*) FROM pg_replication_slots WHERE plugin = 'pglogical_output'")"
    assert_frozen "kp1: window" kp1
    target_write "kp1: window" kp1 "before the kill"
    kill_in "kp1" kp1 rollback_window : || return 1
    target_write "kp1: window, after the restart" kp1 "after the kill"
    cmd "kp1: rollback" rollback kp1
    kill_in "kp1" kp1 rolling_back hook_running kp1-rollback || return 1
    wait_state "kp1: rolled_back after a SIGKILL inside rollback_command" kp1 rolled_back 120
    compare_rows "kp1: rolled back" kp1 t_kp1
    assert_writable "kp1: rolled back" kp1
    t_assert_eq "kp1: no pglogical object or slot left on the source" "0/0/0/0" "$(pgl_objects src kp1)"
    t_assert_eq "kp1: no pglogical slot, node or subscription left on the target" "0/0/0" \
        "$(pgl_objects dst t_kp1 | cut -d/ -f1-3)"
    t_assert_eq "kp1: no reverse slot or publication left on the target" "" "$(target_leftovers t_kp1)"
    t_assert_eq "kp1: no pgmover schema left on the source" "" "$(source_leftovers kp1)"

    # kp2: thawing inside thaw_command, aborting (the target's clean waits on a read)
    cmd "kp2: create" create kp2 --source "$(admin_url kp2)" --target "$(tgt_url t_kp2)" --method pglogical \
        --set freeze_mode=both --set freeze_command=true \
        --set thaw_command=': kp2-thaw; sleep 3'
    cmd "kp2: start" start kp2
    wait_state "kp2: synced" kp2 synced 180
    cmd "kp2: freeze" freeze kp2
    wait_state "kp2: verified" kp2 verified 120
    cmd "kp2: thaw" thaw kp2
    kill_in "kp2" kp2 thawing hook_running kp2-thaw || return 1
    wait_state "kp2: synced after a SIGKILL inside thaw_command" kp2 synced 120
    assert_writable "kp2: thawed" kp2
    _kp2_caught_up() { [[ $(tq t_kp2 "SELECT count(*) FROM public.write_probe WHERE note = 'kp2: thawed'") == 1 ]]; }
    t_check "kp2: the subscription still follows the source" t_wait_for 60 _kp2_caught_up
    hold tgt dst t_kp2 "SELECT count(*) FROM public.items" || return 1
    cmd "kp2: abort" abort kp2
    kill_in "kp2" kp2 aborting waiting_on_lock dst t_kp2 || return 1
    release tgt
    wait_state "kp2: aborted after a SIGKILL in aborting" kp2 aborted 120
    t_assert_eq "kp2: no slot, node, subscription or extension on the source" "0/0/0/0" "$(pgl_objects src kp2)"
    t_assert_eq "kp2: no slot, node, subscription or extension on the target" "0/0/0/0" "$(pgl_objects dst t_kp2)"
    t_assert_eq "kp2: abort emptied the target" "" "$(tq t_kp2 "$LIST_TABLES_SQL")"
    assert_writable "kp2: aborted" kp2

    # kp3: verifying (the large-object comparison waits), finishing (the DROP of the
    # reverse stream's progress schema on the source waits on a read of it)
    cmd "kp3: create" create kp3 --source "$(admin_url kp3)" --target "$(tgt_url t_kp3)" --method pglogical
    cmd "kp3: start" start kp3
    wait_state "kp3: synced" kp3 synced 180
    cmd "kp3: freeze" freeze kp3
    wait_state "kp3: verified" kp3 verified 120
    hold lo src kp3 "LOCK TABLE pg_catalog.pg_largeobject_metadata IN ACCESS EXCLUSIVE MODE" || return 1
    cmd "kp3: verify again" verify kp3
    kill_in "kp3" kp3 verifying waiting_on_lock src kp3 || return 1
    release lo
    wait_state "kp3: verified after a SIGKILL in verifying" kp3 verified 120
    t_assert_eq "kp3: pgmover's verification agrees" "true" "$(jst kp3 '.verify.ok')"
    cmd "kp3: cutover" cutover kp3 --no-traffic-switch
    wait_state "kp3: rollback_window" kp3 rollback_window 120
    target_write "kp3: window" kp3 "in the window"
    local prog
    prog=$(sq kp3 "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname LIKE 'pgmover%' LIMIT 1")
    hold prog src kp3 "SELECT count(*) FROM $prog" || return 1
    cmd "kp3: finish" finish kp3
    kill_in "kp3" kp3 finishing waiting_on_lock src kp3 || return 1
    release prog
    wait_state "kp3: completed after a SIGKILL in finishing" kp3 completed 120
    compare_rows "kp3: completed" kp3 t_kp3
    t_assert_eq "kp3: no pglogical object or slot left on the source" "0/0/0/0" "$(pgl_objects src kp3)"
    t_assert_eq "kp3: no pglogical extension left on the target" "0" \
        "$(tq t_kp3 "SELECT count(*) FROM pg_extension WHERE extname = 'pglogical'")"
    t_assert_eq "kp3: no reverse slot or publication left on the target" "" "$(target_leftovers t_kp3)"
    t_assert_eq "kp3: no pgmover schema left on the source" "" "$(source_leftovers kp3)"
    assert_frozen "kp3: completed" kp3
}
kill_matrix
release_all

# ---------------------------------------------------------------------------------------

leaks=$(grep -rlF -e "$SOURCE_ADMIN_PASSWORD" -e "$TARGET_ADMIN_PASSWORD" "$DMN" 2>/dev/null |
    grep -v '/secrets\.json$' || true)
t_assert_eq "no password in state.json, audit.jsonl or the log" "" "$leaks"
pgmd_stop
t_assert_eq "pgmoverd stops cleanly on SIGTERM" "0" "$?"
echo "# run time: $((SECONDS - T0)) s"
t_summary
