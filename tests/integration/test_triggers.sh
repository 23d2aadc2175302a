#!/usr/bin/env bash
# Integration test of the triggers method on a Heroku-like test bed: the source has
# wal_level = replica (no logical decoding at all), no pglogical, TLS only, and the
# database is owned by a non-superuser in pg_signal_backend; the target's role owns its
# database and is no superuser either (TB_TARGET_ROLE=owner). Black-box: the CLI, the
# documented status fields, and SQL on both servers.
#
#   1. a job that cannot capture: a table the role may not put triggers on; it fails
#      saying so, and nothing of pgmover's stays on the source
#   2. the main job under pgbench and a hot-row workload (concurrent transactions on the
#      same rows), with: the T1/T2 interleaving where xid order is not commit order, a
#      table without a key holding identical duplicate rows, a TRUNCATE, a sequence
#      used during sync, a 100,000-row UPDATE, pgmoverd killed with SIGKILL while it
#      applies that transaction and again while it freezes; freeze -> verified, an
#      independent comparison of every table, cutover, finish, and the catalogs of both
#      servers hold nothing of pgmover's
#   3. ALTER TABLE ... ADD COLUMN during sync stops the job naming the table; the failed
#      job's capture is removed; abort
#   3b. a freeze that fails with the source read-only: thaw from failed
#   4. rollback after cutover: the target's writes come back to the source, and nothing
#      of pgmover's stays on either side
#
# Run as root from the source tree: PGM_BUILD=/tmp/bd bash tests/integration/test_triggers.sh
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TB=$ROOT/tests/testbed/testbed.sh
# shellcheck source=tests/integration/lib.sh
. "$HERE/lib.sh"
# shellcheck source=tests/integration/pgmd.sh
. "$HERE/pgmd.sh"
# shellcheck source=tests/integration/jobs.sh
. "$HERE/jobs.sh"

t_prereq test_triggers pgmoverd pgmover

WORK=$(t_tmpdir) || exit 1
BED=$WORK/bed
DMN=$WORK/daemon
LOAD_PIDS=()

stop_load() {
    local p
    for p in "${LOAD_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${LOAD_PIDS[@]}"; do wait "$p" 2>/dev/null; done
    LOAD_PIDS=()
}

# wait_load: the load runs to its end (pgbench prints its summary then)
wait_load() {
    local p
    for p in "${LOAD_PIDS[@]}"; do wait "$p" 2>/dev/null; done
    LOAD_PIDS=()
}

# polled conditions (t_wait_for runs a command again and again; $(...) would be read once)
no_capture_schema() { [[ $(sq "$1" "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'pgmover%'") == 0 ]]; }
behind_is() { [[ $(jst "$1" '.step.log_rows_behind') == "$2" ]]; }
behind_not() { [[ $(jst "$1" '.step.log_rows_behind') != "$2" ]]; }
in_state() { [[ $(pgmd_state "$1") == "$2" ]]; }
behind_lt() { local n; n=$(jst "$1" '.step.log_rows_behind'); [[ $n =~ ^[0-9]+$ && $n -lt $2 ]]; }
behind_known() { [[ $(jst "$1" '.step.log_rows_behind | type') == number ]]; }

cleanup() {
    stop_load
    pgmd_cleanup
    t_bed_remove "$WORK" "$BED"
}
trap cleanup EXIT

# every user table of a database, one quoted name per line
LIST_TABLES_SQL="SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname !~ '^pg_' AND n.nspname !~ '^pgmover' ORDER BY 1"
SESSION_SQL="SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET extra_float_digits = 3;"

# sig SIDE DB REL: "count md5" of the rows, in an order that does not depend on storage
sig() {
    local sql="$SESSION_SQL SELECT count(*) || ' ' || coalesce(md5(string_agg(row(t.*)::text, '|' ORDER BY row(t.*)::text COLLATE \"C\")), '-') FROM $3 t"
    if [[ $1 == src ]]; then sq "$2" "$sql"; else tq "$2" "$sql"; fi
}

# compare LABEL SRCDB DSTDB: the same tables, the same rows in each (independent of pgmover)
compare() {
    local label=$1 sdb=$2 ddb=$3 st dt rel s d bad=0
    st=$(sq "$sdb" "$LIST_TABLES_SQL")
    dt=$(tq "$ddb" "$LIST_TABLES_SQL")
    t_assert_eq "$label: the same tables on both sides" "$st" "$dt"
    while IFS= read -r rel; do
        [[ -n $rel ]] || continue
        s=$(sig src "$sdb" "$rel")
        d=$(sig dst "$ddb" "$rel")
        if [[ $s == "$d" && $s =~ ^[0-9]+\ ([0-9a-f]{32}|-)$ ]]; then
            t_ok "$label: $rel equal ($s)"
        else
            t_fail "$label: $rel equal" "source [$s], target [$d]"
            bad=1
        fi
    done <<<"$st"
    return $bad
}

# nothing_left LABEL SRCDB DSTDB: no trigger, function or schema of pgmover's on either side
nothing_left() {
    t_assert_eq "$1: no pgmover trigger on the source" "0" \
        "$(sq "$2" "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'pgmover%'")"
    t_assert_eq "$1: no pgmover schema or function on the source" "0|0" \
        "$(sq "$2" "SELECT (SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'pgmover%'),
                           (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                             WHERE n.nspname LIKE 'pgmover%')")"
    t_assert_eq "$1: no pgmover schema on the target" "0" \
        "$(tq "$3" "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'pgmover%'")"
}

# ---------------------------------------------------------------------------------------
# the bed: Heroku-like source, managed-like target

if ! TB_SOURCE_WAL_LEVEL=replica TB_SOURCE_PRELOAD= TB_TARGET_ROLE=owner \
    "$TB" start "$BED" >"$WORK/testbed.log" 2>&1; then
    cat "$WORK/testbed.log" >&2
    t_fail "testbed" "could not start the test bed"
    t_summary
    exit 1
fi
# shellcheck source=/dev/null
. "$BED/env"
t_assert_eq "source: wal_level replica, nothing preloaded" "replica|" \
    "$(sq appdb "SELECT current_setting('wal_level') || '|' || current_setting('shared_preload_libraries')")"
t_assert_eq "source: its owner is no superuser" "off" "$(q "$SOURCE_URL" "SHOW is_superuser")"
t_assert_eq "target: its role is no superuser" "off" "$(q "$TARGET_URL" "SHOW is_superuser")"

setup_ok=1
for db in locked shop ddl back stuck; do "$TB" createdb "$BED" src "$db" >/dev/null || setup_ok=0; done
for db in t_locked t_shop t_ddl t_back t_stuck; do "$TB" createdb "$BED" dst "$db" >/dev/null || setup_ok=0; done
SHOP=$(src_url shop)
"$TB_PGBIN/pgbench" -i -s 1 -q "$SHOP" >"$WORK/pgbench-init.log" 2>&1 || setup_ok=0
q "$SHOP" "CREATE TABLE hot (id int PRIMARY KEY, v bigint NOT NULL);
           INSERT INTO hot SELECT g, 0 FROM generate_series(1, 10) g;
           CREATE TABLE nokey (a int, b text);
           INSERT INTO nokey VALUES (1, 'dup'), (1, 'dup'), (1, 'dup'), (2, 'two'), (NULL, NULL);
           CREATE TABLE trunc_me (id int PRIMARY KEY, v text);
           INSERT INTO trunc_me SELECT g, 'before' FROM generate_series(1, 100) g;
           CREATE TABLE counter (id serial PRIMARY KEY, at timestamptz DEFAULT now());
           CREATE TABLE parent (id int PRIMARY KEY);
           CREATE TABLE child (id int PRIMARY KEY, parent int REFERENCES parent ON DELETE CASCADE);
           COMMENT ON CONSTRAINT child_parent_fkey ON child IS 'the parent row';
           INSERT INTO parent SELECT generate_series(1, 20);
           INSERT INTO child SELECT g, g FROM generate_series(1, 20) g;" >/dev/null || setup_ok=0
q "$(src_url ddl)" "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a')" >/dev/null || setup_ok=0
q "$(src_url stuck)" "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)" >/dev/null || setup_ok=0
q "$(src_url back)" "CREATE TABLE items (id serial PRIMARY KEY, v text);
                      INSERT INTO items (v) SELECT 'src ' || g FROM generate_series(1, 50) g;
                      CREATE TABLE bp (id int PRIMARY KEY);
                      CREATE TABLE bc (id int PRIMARY KEY, p int REFERENCES bp ON DELETE CASCADE);
                      INSERT INTO bp SELECT generate_series(1, 10); INSERT INTO bc SELECT g, g FROM generate_series(1, 10) g" \
    >/dev/null || setup_ok=0
# a table of another role: the database owner may not put triggers on it
sq locked "CREATE TABLE mine (id int PRIMARY KEY); CREATE TABLE theirs (id int PRIMARY KEY);
           ALTER TABLE mine OWNER TO app_owner;" >/dev/null || setup_ok=0
t_check "setup: databases, pgbench data, test tables" test "$setup_ok" = 1

pgmd_start "$DMN" || {
    t_fail "pgmoverd starts" "$(tail -20 "$DMN/pgmoverd.log")"
    t_summary
    exit 1
}

# ---------------------------------------------------------------------------------------
# 1. a table the role may not capture

cmd "create locked" create locked --source "$(src_url locked)" --target "$(tgt_url t_locked)" --method triggers
cmd "start locked" start locked
wait_state "locked fails" locked failed 60
t_assert_contains "locked: the error names the table" "$(jst locked '.error.message')" "theirs"
t_assert_contains "locked: the hint says what to grant" "$(jst locked '.error.hint')" "GRANT"
t_check "locked: the failed job removed its capture from the source" t_wait_for 60 no_capture_schema locked
t_assert_eq "locked: no pgmover trigger left on the source" "0" \
    "$(sq locked "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'pgmover%'")"
cmd "abort locked" abort locked
wait_state "locked aborted" locked aborted 60

# a writer's long transaction holds a table: CREATE TRIGGER waits at most a second at a
# time (the application is not queued behind it), the warning names the session, and
# the capture goes on once the transaction ends
q "$(src_url ddl)" "SELECT 1" >/dev/null
( q "$(src_url ddl)" "BEGIN; LOCK TABLE t IN ROW EXCLUSIVE MODE; SELECT pg_sleep(6); COMMIT" >/dev/null ) &
HOLDER=$!
sleep 0.5
cmd "create ddl" create ddl --source "$(src_url ddl)" --target "$(tgt_url t_ddl)" --method triggers
cmd "start ddl" start ddl
warned() { [[ $(jst ddl '[.warnings[].message] | join(" ")') == *"waits for a lock held by pid"* ]]; }
t_check "ddl: a warning names the session that holds the table" t_wait_for 20 warned ||
    t_detail "$(jst ddl '.warnings')"
t_assert_contains "ddl: the warning says what it is doing" "$(jst ddl '[.warnings[].message] | join(" ")')" \
    "retrying every second"
wait "$HOLDER"
wait_state "ddl synced once the lock is gone" ddl synced 60

# ---------------------------------------------------------------------------------------
# 2. the main job

cmd "create shop" create shop --source "$SHOP" --target "$(tgt_url t_shop)" --method triggers \
    --set catchup_rows=100000
cmd "start shop" start shop
# pgmoverd killed during the initial copy: it resumes, and the copy's snapshot still
# postdates every trigger (a copy started again takes a new one)
t_wait_for 30 in_state shop syncing
killed_in=$(pgmd_state shop)
pgmd_kill9
pgmd_start "$DMN" || t_fail "pgmoverd restarts" "$(tail -20 "$DMN/pgmoverd.log")"
t_assert_eq "pgmoverd killed while the job was syncing" "syncing" "$killed_in"
wait_state "shop synced" shop synced 120
t_assert_eq "shop: the source got the capture schema" "1" \
    "$(sq shop "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgmover_capture_shop'")"
t_assert_eq "shop: the target holds the data without the held-back foreign key" "0" \
    "$(tq t_shop "SELECT count(*) FROM pg_constraint WHERE contype = 'f'")"

# load: pgbench, and a script whose transactions update the same hot rows concurrently
# (rows 2-10, locked in key order so that they queue rather than deadlock)
cat >"$WORK/hot.sql" <<'EOF'
\set a random(2, 6)
\set b random(7, 10)
BEGIN;
UPDATE hot SET v = v + 1 WHERE id = :a;
UPDATE hot SET v = v * 3 % 1000003 WHERE id = :b;
INSERT INTO counter DEFAULT VALUES;
END;
EOF
"$TB_PGBIN/pgbench" -n -c 3 -T 12 "$SHOP" >"$WORK/pgbench.log" 2>&1 &
LOAD_PIDS+=($!)
"$TB_PGBIN/pgbench" -n -c 3 -T 12 -f "$WORK/hot.sql" "$SHOP" >"$WORK/hot.log" 2>&1 &
LOAD_PIDS+=($!)

# T1 takes its xid first and writes row 1 last; T2 writes row 1 in between and commits
# first: xid order says T2 last, commit order says T1 last. The source keeps T1's value.
q "$SHOP" "BEGIN; SELECT pg_current_xact_id(); SELECT pg_sleep(2);
           UPDATE hot SET v = 111111 WHERE id = 1; COMMIT;" >"$WORK/t1.log" 2>&1 &
T1=$!
sleep 0.5
q "$SHOP" "UPDATE hot SET v = 222222 WHERE id = 1" >/dev/null
wait "$T1"
t_assert_eq "T1 committed last on the source" "111111" "$(sq shop "SELECT v FROM hot WHERE id = 1")"

# a table without a key: one of three identical rows changed, one deleted, one added
q "$SHOP" "UPDATE nokey SET b = 'changed' WHERE ctid = (SELECT ctid FROM nokey WHERE a = 1 LIMIT 1);
           DELETE FROM nokey WHERE ctid = (SELECT ctid FROM nokey WHERE a = 1 AND b = 'dup' LIMIT 1);
           INSERT INTO nokey VALUES (2, 'two'), (NULL, NULL);
           UPDATE nokey SET a = 3 WHERE a IS NULL AND ctid = (SELECT ctid FROM nokey WHERE a IS NULL LIMIT 1)" \
    >/dev/null
# a TRUNCATE and new rows after it; a cascading delete
q "$SHOP" "TRUNCATE trunc_me; INSERT INTO trunc_me SELECT g, 'after' FROM generate_series(1, 7) g;
           DELETE FROM parent WHERE id <= 5" >/dev/null
t_check "shop: the apply keeps up (lag reported)" t_wait_for 30 behind_known shop

# a 100,000-row transaction; pgmoverd is killed while it applies it
q "$SHOP" "UPDATE pgbench_accounts SET filler = 'big ' || aid" >/dev/null
t_wait_for 10 behind_not shop 0
sleep 0.3
pgmd_kill9
t_ok "pgmoverd killed while applying the large transaction"
pgmd_start "$DMN" || t_fail "pgmoverd restarts" "$(tail -20 "$DMN/pgmoverd.log")"
wait_state "shop resumed in synced" shop synced 60
t_check "shop: the restarted pgmoverd applied the large transaction" t_wait_for 60 behind_lt shop 50000
# the ~14 MB of rows stream through a fixed buffer: the peak memory stays small
hwm=$(awk '/VmHWM/ { print $2 }' "/proc/$PGMD_PID/status")
t_check "pgmoverd's peak memory while applying 100,000 changed rows stays under 20 MB (${hwm} kB)" \
    test "${hwm:-999999}" -lt 20480
wait_load
t_check "pgbench ran without errors" grep -q "number of failed transactions: 0" "$WORK/pgbench.log" ||
    t_detail "$(tail -5 "$WORK/pgbench.log")"
t_check "the hot-row load ran" grep -q "number of failed transactions: 0" "$WORK/hot.log" ||
    t_detail "$(tail -15 "$WORK/hot.log")"
t_check "shop: caught up after the load" t_wait_for 60 behind_is shop 0 ||
    t_detail "$(pgm status shop | head -20)"

# freeze under load; pgmoverd killed while it freezes
"$TB_PGBIN/pgbench" -n -c 2 -T 30 "$SHOP" >"$WORK/pgbench2.log" 2>&1 &
LOAD_PIDS+=($!)
sleep 2
cmd "freeze shop" freeze shop
pgmd_kill9
pgmd_start "$DMN" || t_fail "pgmoverd restarts" "$(tail -20 "$DMN/pgmoverd.log")"
wait_state "shop verified after a SIGKILL in freezing" shop verified 120
stop_load
t_check "pgbench under the freeze was stopped by it" grep -qE "read-only|terminat|aborted" "$WORK/pgbench2.log" ||
    t_detail "$(tail -5 "$WORK/pgbench2.log")"
t_assert_eq "shop: pgmover's verification found no difference" "true" "$(jst shop '.verify.ok')"
t_check "shop: the freeze drained (freeze_to_drained_ms)" \
    test "$(jst shop '.facts.freeze.freeze_to_drained_ms | type')" = number
t_assert_eq "shop: the held-back foreign key is on the target" "1" \
    "$(tq t_shop "SELECT count(*) FROM pg_constraint WHERE contype = 'f'")"
t_assert_eq "shop: the held-back foreign key's comment came with it" "the parent row" \
    "$(tq t_shop "SELECT obj_description(oid, 'pg_constraint') FROM pg_constraint WHERE conname = 'child_parent_fkey'")"
compare "shop frozen" shop t_shop
t_assert_eq "shop: T1's value on the target" "111111" "$(tq t_shop "SELECT v FROM hot WHERE id = 1")"
t_assert_eq "shop: the key-less table's duplicates on the target" "1|changed 1|dup 2|two 2|two 3| |" \
    "$(tq t_shop "SELECT string_agg(coalesce(a::text, '') || '|' || coalesce(b, ''), ' ' ORDER BY a, b) FROM nokey")"
t_assert_eq "shop: the sequence is not behind the source" "t" \
    "$(tq t_shop "SELECT last_value >= $(sq shop "SELECT last_value FROM counter_id_seq") FROM counter_id_seq")"
cmd "cutover shop" cutover shop --no-traffic-switch
wait_state "shop in the rollback window" shop rollback_window 60
cmd "finish shop" finish shop
wait_state "shop completed" shop completed 60
nothing_left "shop completed" shop t_shop

# ---------------------------------------------------------------------------------------
# 3. a schema change during sync

q "$(src_url ddl)" "ALTER TABLE t ADD COLUMN extra int" >/dev/null
wait_state "ddl fails on ALTER TABLE" ddl failed 30
t_assert_contains "ddl: the error names the table" "$(jst ddl '.error.message')" "public.t was altered"
t_assert_contains "ddl: the hint says what to do" "$(jst ddl '.error.hint')" "abort"
t_check "ddl: the failed job removed its capture" t_wait_for 60 no_capture_schema ddl
# retry: the capture is installed again and the data copied anew, with the new column
cmd "retry ddl" retry ddl
# (retry resumes the step that failed, synced's: it shows synced while it copies anew)
wait_state "ddl synced again after retry" ddl synced 60
q "$(src_url ddl)" "INSERT INTO t VALUES (2, 'b', 7)" >/dev/null
has_row2() { [[ $(tq t_ddl "SELECT extra FROM t WHERE id = 2") == 7 ]]; }
t_check "ddl: after the retry's copy, a write with the new column reaches the target" t_wait_for 30 has_row2 ||
    t_detail "$(pgm status ddl | head -12)"
cmd "abort ddl" abort ddl
wait_state "ddl aborted" ddl aborted 60
nothing_left "ddl aborted" ddl t_ddl

# ---------------------------------------------------------------------------------------
# 3b. a freeze that fails after the database went read-only (a freeze_roles role that
#     does not exist): the job is failed with the source frozen; thaw from failed gives
#     the writes back

cmd "create stuck" create stuck --source "$(src_url stuck)" --target "$(tgt_url t_stuck)" --method triggers \
    --set freeze_roles=no_such_role
cmd "start stuck" start stuck
wait_state "stuck synced" stuck synced 60
pgm freeze stuck >/dev/null 2>&1
wait_state "stuck: the freeze fails on the missing role" stuck failed 60
t_assert_contains "stuck: the error names the role" "$(jst stuck '.error.message')" "no_such_role"
ro=$(q "$(src_url stuck)" "INSERT INTO t VALUES (2)")
t_assert_contains "stuck: the failed job left the source read-only" "$ro" "read-only"
t_assert_contains "stuck: thaw is among the commands accepted" "$(jst stuck '.allowed_commands')" "thaw"
cmd "thaw stuck from failed" thaw stuck
wait_state "stuck thawed back to synced" stuck synced 60
t_assert_eq "stuck: the source takes writes again" "" "$(q "$(src_url stuck)" "INSERT INTO t VALUES (3)")"
# the option fixed with set (validated, audited), and the freeze goes through
out=$(pgm set stuck --set jobs=0 2>&1)
t_assert_contains "stuck: set refuses a bad value" "$out" "jobs"
cmd "set stuck: freeze_roles cleared" set stuck --set freeze_roles=
t_assert_eq "stuck: the option changed" "" "$(jst stuck '.options.freeze_roles')"
cmd "freeze stuck again" freeze stuck
wait_state "stuck verified" stuck verified 60
cmd "abort stuck" abort stuck
wait_state "stuck aborted" stuck aborted 60
nothing_left "stuck aborted" stuck t_stuck
# delete: the ended job leaves the registry, its folder (and audit trail) is archived
cmd "delete stuck" delete stuck
t_assert_contains "stuck: deleted, the name is unknown" "$(pgm status stuck 2>&1)" "no job named"
t_check "stuck: its audit trail is kept under state_dir/.deleted" \
    grep -q '"set"' "$(ls -d "$DMN"/state/.deleted/stuck.*)/audit.jsonl"

# ---------------------------------------------------------------------------------------
# 4. rollback: the capture goes before the target's writes come back to the source

cmd "create back" create back --source "$(src_url back)" --target "$(tgt_url t_back)" --method triggers
cmd "start back" start back
wait_state "back synced" back synced 60
q "$(src_url back)" "INSERT INTO items (v) VALUES ('during sync')" >/dev/null
cmd "freeze back" freeze back
wait_state "back verified" back verified 60
fks() { tq t_back "SELECT count(*) FROM pg_constraint WHERE contype = 'f'"; }
t_assert_eq "back: the freeze restored the foreign key on the target" "1" "$(fks)"
# thaw: writes resume, and the foreign key is held back again while the rounds apply them
cmd "thaw back" thaw back
wait_state "back synced after thaw" back synced 60
t_assert_eq "back: the foreign key is held back again after the thaw" "0" "$(fks)"
q "$(src_url back)" "DELETE FROM bp WHERE id <= 3; UPDATE bc SET p = 10 WHERE id = 9;
                     INSERT INTO bp VALUES (11); INSERT INTO bc VALUES (11, 11)" >/dev/null
cmd "freeze back again" freeze back
wait_state "back verified again" back verified 60
t_assert_eq "back: the foreign key is back on the target" "1" "$(fks)"
compare "back frozen again" back t_back
cmd "cutover back" cutover back --no-traffic-switch
wait_state "back in the rollback window" back rollback_window 60
q "$(tgt_url t_back)" "INSERT INTO items (v) VALUES ('on the target'); UPDATE items SET v = 'changed' WHERE id = 1" \
    >/dev/null
cmd "rollback back" rollback back
wait_state "back rolled back" back rolled_back 60
compare "back rolled back" back t_back
t_assert_eq "back: the target's writes are on the source" "2" \
    "$(sq back "SELECT count(*) FROM items WHERE v IN ('on the target', 'changed')")"
nothing_left "back rolled back" back t_back

t_summary
