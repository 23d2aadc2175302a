#!/usr/bin/env bash
# Integration test of the rollback window's replay on the source with the source's
# triggers and foreign key actions in place, on a managed-like target (TB_TARGET_ROLE=owner:
# no superuser) and a Heroku-like source (wal_level replica, nothing preloaded, the owner's
# credential: no session_replication_role). Black-box: the CLI, the documented status
# fields, and SQL on both servers; every case ends with an independent comparison (count
# and an md5 of the rows, per table, in psql) of every table after `rollback`.
#
# The schema: parent <- child ON DELETE CASCADE, code <- code_use ON UPDATE CASCADE (the key
# column part of the child's primary key) and code_ref ON UPDATE CASCADE, parent <- opt
# ON DELETE SET NULL and the key-less loose (REPLICA IDENTITY FULL on the target) ON DELETE
# SET NULL; an AFTER INSERT audit trigger on child into audit, one on parent enabled ALWAYS,
# a BEFORE UPDATE trigger on child that rewrites two columns (counts edits, marks the note),
# and a trigger the user disabled on the source.
#
#   0. plan: the source's user triggers found (info), one of another role's table an error
#   1. job fk: writes on the target touching all of them, in the window; the source's user
#      triggers disabled while it replays (pg_trigger), recorded in the artifacts; rollback;
#      pgmoverd SIGKILLed while rollback enables them again (a lock holds one table), restarted;
#      source = target for every table; the triggers as they were (tgenabled), the one the
#      user disabled still disabled, the artifact dropped
#   2. job kill: a parent with 20,000 children deleted on the target while a lock on the
#      source holds the replay inside the cascade; pgmoverd SIGKILLed there, the lock
#      released, pgmoverd restarted: the stream goes on; again inside rollback's drain
#      (rolling_back): restarted, the rollback completes; source = target
#   3. job load: pgbench writing parents, children, updates and cascading deletes on the
#      target; rollback under that load; source = target
#
#   PGM_BUILD=/tmp/bd bash tests/integration/test_replay.sh   (as root or postgres)
# PGM_TEST_KEEP=1 keeps the work directory.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TB=$ROOT/tests/testbed/testbed.sh
. "$HERE/lib.sh"
. "$HERE/pgmd.sh"
# shellcheck source=tests/integration/jobs.sh
. "$HERE/jobs.sh"

t_prereq test_replay pgmoverd pgmover

WORK=$(t_tmpdir) || exit 1
BED=$WORK/bed
DMN=$WORK/daemon
T0=$(date +%s)
LOCKER=

cleanup() {
    [[ -n $LOCKER ]] && kill "$LOCKER" 2>/dev/null
    pgmd_cleanup
    wait 2>/dev/null
    t_bed_remove "$WORK" "$BED"
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------
# helpers

TABLES="public.parent public.child public.code public.code_use public.code_ref public.opt public.loose public.audit"
# every table of the schema the same on both sides
all_same() { # SRCDB DSTDB
    local t
    for t in $TABLES; do [[ $(rows_sig src "$1" "$t") == "$(rows_sig dst "$2" "$t")" ]] || return 1; done
}
# the independent comparison after a rollback: every table, source = target (jobs.sh)
compare_all() { compare "$1" "$2" "$3" $TABLES; } # NAME SRCDB DSTDB
# the source's user triggers and their tgenabled, in a fixed order
triggers() { # SRCDB
    sq "$1" "SELECT string_agg(tgname || '=' || tgenabled::text, ' ' ORDER BY tgname) FROM pg_trigger WHERE NOT tgisinternal"
}
TRIGGERS_BEFORE="child_audit=O child_noisy=D child_stamp=O parent_audit=A"
# the source's triggers artifact: its status and the triggers it names
trg_artifact() { # JOB
    jst "$1" '[.artifacts[] | select(.kind == "source_triggers")] | map(.status + ":" +
        ([.tables[] | .t + "(" + ([.triggers[] | .name + "=" + .was] | join(",")) + ")"] | join(" "))) | join(";")'
}
# a lock on a table of the source, held by the test (SHARE: writes and ALTER TABLE wait on it)
hold_lock() { # DB TABLE
    $SOURCE_PSQL -d "$1" -c "BEGIN" -c "LOCK TABLE public.$2 IN SHARE MODE" -c "SELECT pg_sleep(600)" >/dev/null 2>&1 &
    LOCKER=$!
    t_check "$1: the test holds a lock on the source's $2 table" t_wait_for 10 locked "$1" "$2"
}
locked() { [[ $(sq "$1" "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
                         WHERE c.relname = '$2' AND l.mode = 'ShareLock' AND l.granted") == 1 ]]; }
unlocked() { ! locked "$@"; }
release_lock() { # DB TABLE
    kill "$LOCKER" 2>/dev/null
    wait "$LOCKER" 2>/dev/null
    LOCKER=
    # psql gone, its backend sleeps on: ended here
    sq "$1" "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = '$1' AND query LIKE '%pg_sleep(600)%' AND pid <> pg_backend_pid()" >/dev/null
    t_check "$1: the lock is released" t_wait_for 10 unlocked "$1" "$2"
}
apply_waits() { [[ $(sq kill "SELECT count(*) FROM pg_stat_activity WHERE datname = 'kill'
                              AND application_name LIKE '%reverse-apply%' AND wait_event_type = 'Lock'") == 1 ]]; }
after_rollback() { # JOB SRCDB DSTDB
    compare_all "$1" "$2" "$3"
    t_assert_eq "$1: the source's triggers are as they were, the one the user disabled still disabled" \
        "$TRIGGERS_BEFORE" "$(triggers "$2")"
    t_assert_contains "$1: the artifacts say they were disabled, and enabled again (dropped)" "$(trg_artifact "$1")" \
        'dropped:public.child(child_audit=O,child_stamp=O) public.parent(parent_audit=A)'
    t_assert_eq "$1: no slot, publication or pgmover schema left" "" "$(
        tq postgres "SELECT string_agg(slot_name, ',') FROM pg_replication_slots WHERE slot_name = 'pgmover_$1'"
        sq "$2" "SELECT string_agg(nspname, ',') FROM pg_namespace WHERE nspname LIKE 'pgmover%'"
    )"
}

# ---------------------------------------------------------------------------------------
# the bed: a Heroku-like source, a managed-like target

if ! TB_SOURCE_WAL_LEVEL=replica TB_SOURCE_PRELOAD='' TB_TARGET_ROLE=owner \
    "$TB" start "$BED" >"$WORK/testbed.log" 2>&1; then
    cat "$WORK/testbed.log" >&2
    t_fail "testbed" "could not start"
    t_summary
    exit 1
fi
# shellcheck source=/dev/null
. "$BED/env"
t_assert_eq "target: its role is no superuser" "off" "$(q "$TARGET_URL" "SELECT current_setting('is_superuser')")"
t_assert_eq "source: wal_level replica, its owner no superuser (no session_replication_role)" "replica off" \
    "$(q "$SOURCE_URL" "SELECT current_setting('wal_level') || ' ' || current_setting('is_superuser')")"
t_assert_contains "source: ... so the owner cannot set session_replication_role" \
    "$(q "$SOURCE_URL" "SET session_replication_role = replica")" "permission denied"

APP_SQL="
CREATE TABLE public.parent (id integer PRIMARY KEY, name text);
CREATE TABLE public.child (id integer PRIMARY KEY, parent_id integer REFERENCES public.parent ON DELETE CASCADE,
                           note text, edits integer NOT NULL DEFAULT 0);
CREATE TABLE public.code (code text PRIMARY KEY, label text);
CREATE TABLE public.code_use (code text REFERENCES public.code ON UPDATE CASCADE, n integer, v text,
                              PRIMARY KEY (code, n));
CREATE TABLE public.code_ref (id integer PRIMARY KEY, code text REFERENCES public.code ON UPDATE CASCADE);
CREATE TABLE public.opt (id integer PRIMARY KEY, parent_id integer REFERENCES public.parent ON DELETE SET NULL, v text);
CREATE TABLE public.loose (parent_id integer REFERENCES public.parent ON DELETE SET NULL, v text);
CREATE TABLE public.audit (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, tbl text, row_id integer, op text);
CREATE FUNCTION public.audit_ins() RETURNS trigger LANGUAGE plpgsql AS \$f\$ BEGIN
  INSERT INTO public.audit (tbl, row_id, op) VALUES (TG_TABLE_NAME, NEW.id, TG_OP); RETURN NULL; END \$f\$;
CREATE FUNCTION public.stamp() RETURNS trigger LANGUAGE plpgsql AS \$f\$ BEGIN
  NEW.edits := NEW.edits + 1; NEW.note := NEW.note || '!'; RETURN NEW; END \$f\$;
CREATE FUNCTION public.noisy() RETURNS trigger LANGUAGE plpgsql AS \$f\$ BEGIN
  RAISE EXCEPTION 'the trigger the user disabled fired'; END \$f\$;
CREATE TRIGGER child_audit AFTER INSERT ON public.child FOR EACH ROW EXECUTE FUNCTION public.audit_ins();
CREATE TRIGGER parent_audit AFTER INSERT ON public.parent FOR EACH ROW EXECUTE FUNCTION public.audit_ins();
CREATE TRIGGER child_stamp BEFORE UPDATE ON public.child FOR EACH ROW EXECUTE FUNCTION public.stamp();
CREATE TRIGGER child_noisy AFTER INSERT OR UPDATE OR DELETE ON public.child FOR EACH ROW EXECUTE FUNCTION public.noisy();
ALTER TABLE public.parent ENABLE ALWAYS TRIGGER parent_audit;
ALTER TABLE public.child DISABLE TRIGGER child_noisy;
INSERT INTO public.parent SELECT i, 'p' || i FROM generate_series(1, 10) i;
INSERT INTO public.child (id, parent_id, note) SELECT i, 1 + i % 10, 'c' || i FROM generate_series(1, 100) i;
INSERT INTO public.code VALUES ('A', 'a'), ('B', 'b'), ('C', 'c');
INSERT INTO public.code_use SELECT c, n, c || n FROM unnest(ARRAY['A', 'B', 'C']) c, generate_series(1, 5) n;
INSERT INTO public.code_ref SELECT i, (ARRAY['A', 'B', 'C'])[1 + i % 3] FROM generate_series(1, 9) i;
INSERT INTO public.opt SELECT i, 1 + i % 10, 'o' || i FROM generate_series(1, 30) i;
INSERT INTO public.loose SELECT 1 + i % 10, 'l' || i FROM generate_series(1, 30) i;"

setup_ok=1
for db in fk kill load; do
    "$TB" createdb "$BED" src "$db" >/dev/null || setup_ok=0
    "$TB" createdb "$BED" dst "t_$db" >/dev/null || setup_ok=0
    q "$(src_url "$db")" "$APP_SQL" >/dev/null || setup_ok=0
done
# the big cascade of job kill
q "$(src_url kill)" "INSERT INTO public.parent VALUES (1000, 'big');
    INSERT INTO public.child (id, parent_id, note) SELECT 100000 + i, 1000, 'big' || i FROM generate_series(1, 20000) i;
    INSERT INTO public.parent VALUES (2000, 'big too');
    INSERT INTO public.child (id, parent_id, note) SELECT 200000 + i, 2000, 'big' || i FROM generate_series(1, 20000) i" \
    >/dev/null || setup_ok=0
if [[ $setup_ok == 1 && $(triggers fk) == "$TRIGGERS_BEFORE" ]]; then t_ok "setup: databases, tables, triggers"; else
    t_fail "setup" "triggers: $(triggers fk); see $WORK"
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
echo "# 0. plan: the source's triggers, which the replay disables, need their owner"
plan_trg() { # SRCDB DSTDB
    pgm --json plan --source "$(src_url "$1")" --target "$(tgt_url "$2")" 2>&1 |
        jq -r '.result.findings[] | select(.check == "rollback window: source triggers") | .status + ": " + .finding'
}
t_assert_contains "plan: the source's user triggers are disabled for the replay (info)" "$(plan_trg fk t_fk)" \
    "info: 2 table(s) of the source have user triggers: disabled while the rollback window replays"
sq load "CREATE ROLE someone_else NOLOGIN; CREATE TABLE public.theirs (id integer);
         CREATE TRIGGER theirs_audit AFTER INSERT ON public.theirs FOR EACH ROW EXECUTE FUNCTION public.audit_ins();
         ALTER TABLE public.theirs OWNER TO someone_else" >/dev/null
t_assert_contains "plan: a table with triggers the source role does not own is an error for the window" \
    "$(plan_trg load t_load)" "error: 1 table(s) of the source with user triggers are not owned by role"
sq load "DROP TABLE public.theirs" >/dev/null

# ---------------------------------------------------------------------------------------
echo "# 1. job fk: cascades, SET NULL, ON UPDATE CASCADE and triggers replayed on the source"
to_window fk fk t_fk
t_assert_eq "fk: the target has the source's triggers, as they were" "$TRIGGERS_BEFORE" \
    "$(tq t_fk "SELECT string_agg(tgname || '=' || tgenabled::text, ' ' ORDER BY tgname) FROM pg_trigger WHERE NOT tgisinternal")"
_disabled() { [[ $(triggers fk) == "child_audit=D child_noisy=D child_stamp=D parent_audit=D" ]]; }
t_check "fk: in the window the source's user triggers are disabled" t_wait_for 30 _disabled ||
    t_detail "$(triggers fk) $(fail_detail fk)"
t_assert_eq "fk: ... its foreign keys' triggers are not" "0" \
    "$(sq fk "SELECT count(*) FROM pg_trigger WHERE tgisinternal AND tgenabled = 'D'")"
t_assert_eq "fk: ... recorded first in the artifacts, each with its previous state (not the one the user disabled)" \
    'created:public.child(child_audit=O,child_stamp=O) public.parent(parent_audit=A)' "$(trg_artifact fk)"
TF=$(tgt_url t_fk)
# the application on the target: each statement its own transaction, as an app's would be
while IFS= read -r stmt; do
    [[ -n $stmt ]] || continue
    out=$(q "$TF" "$stmt") || t_fail "fk: on the target: $stmt" "$out"
done <<'EOF'
INSERT INTO public.parent VALUES (11, 'p11'), (12, 'p12')
INSERT INTO public.child (id, parent_id, note) SELECT i, 11 + i % 2, 'new' || i FROM generate_series(101, 120) i
UPDATE public.child SET note = 'edited' WHERE id % 7 = 0
DELETE FROM public.parent WHERE id = 1
UPDATE public.code SET code = 'B2' WHERE code = 'B'
UPDATE public.code_use SET v = 'after the cascade' WHERE code = 'B2' AND n = 2
DELETE FROM public.parent WHERE id IN (2, 3)
BEGIN; INSERT INTO public.child (id, parent_id, note) VALUES (200, 4, 'short-lived'); DELETE FROM public.parent WHERE id = 4; COMMIT
BEGIN; DELETE FROM public.child WHERE id = 15; DELETE FROM public.parent WHERE id = 5; INSERT INTO public.parent VALUES (5, 'p5 again'); COMMIT
UPDATE public.code SET code = 'C2' WHERE code = 'C'
UPDATE public.code SET code = 'C3' WHERE code = 'C2'
UPDATE public.child SET note = 'moved', parent_id = 12 WHERE id = 16
DELETE FROM public.loose WHERE parent_id IS NULL AND v = 'l10'
UPDATE public.opt SET v = 'orphan' WHERE parent_id IS NULL
EOF
t_assert_eq "fk: on the target the cascades ran (children of 1-5 gone, B and C renamed in the children)" "0 5 5 15" \
    "$(tq t_fk "SELECT (SELECT count(*) FROM public.child WHERE parent_id <= 5) || ' ' ||
                       (SELECT count(*) FROM public.code_use WHERE code = 'B2') || ' ' ||
                       (SELECT count(*) FROM public.code_use WHERE code = 'C3') || ' ' ||
                       (SELECT count(*) FROM public.opt WHERE parent_id IS NULL)")"
t_check "fk: every table of the target reaches the source" t_wait_for 60 all_same fk t_fk ||
    t_detail "$(fail_detail fk) $(jst fk '.facts.reverse')"
t_assert_eq "fk: ... the stream never stopped" "rollback_window " "$(pgmd_state fk) $(jst fk '.facts.reverse.error // ""')"
t_assert_eq "fk: the BEFORE UPDATE trigger's rewrite on the source is the target's (once: edits 1, one '!')" \
    "1 edited!" "$(sq fk "SELECT edits || ' ' || note FROM public.child WHERE id = 7")"
t_assert_eq "fk: the audit rows on the source are the target's (once each)" \
    "$(tq t_fk "SELECT count(*) FROM public.audit")" "$(sq fk "SELECT count(*) FROM public.audit")"
# pgmoverd killed while rollback enables the triggers again: a lock on parent (nothing of it
# left to replay) holds its ALTER TABLE, after child's; the restarted rollback finishes it
hold_lock fk parent
cmd "fk: rollback" rollback fk
_restoring() { grep -q "ALTER TABLE public.parent ENABLE TRIGGER waits for a lock" "$DMN/pgmoverd.log"; }
t_check "fk: rollback enables the triggers again, and waits for the lock on parent" t_wait_for 60 _restoring ||
    t_detail "$(fail_detail fk) $(triggers fk)"
pgmd_kill9
t_ok "fk: pgmoverd killed with SIGKILL there"
t_assert_eq "fk: ... child's triggers enabled again, parent's not yet" \
    "child_audit=O child_noisy=D child_stamp=O parent_audit=D" "$(triggers fk)"
t_assert_contains "fk: ... the artifact says it is being undone (dropping)" "$(jq -r '[.artifacts[] |
    select(.kind == "source_triggers") | .status] | join(",")' "$DMN/state/fk/state.json")" "dropping"
release_lock fk parent
t_check "fk: pgmoverd restarts" pgmd_start "$DMN" || t_detail "see log"
wait_state "fk: rolled_back" fk rolled_back 60
after_rollback fk fk t_fk
# the source's triggers work again for the application back on it
q "$(src_url fk)" "INSERT INTO public.child (id, parent_id, note) VALUES (300, 6, 'back on the source')" >/dev/null
t_assert_eq "fk: the application's write on the source fires its audit trigger again" "1" \
    "$(sq fk "SELECT count(*) FROM public.audit WHERE tbl = 'child' AND row_id = 300")"

# ---------------------------------------------------------------------------------------
echo "# 2. job kill: pgmoverd SIGKILLed while the replay is inside a cascade"
# the job's lock_timeout bounds rollback's drain: long enough for the lock the test holds
to_window kill kill t_kill --set lock_timeout=10min
_kill_disabled() { [[ $(trg_artifact kill) == created:* ]]; }
t_check "kill: the source's triggers are disabled for the replay" t_wait_for 30 _kill_disabled ||
    t_detail "$(trg_artifact kill)"
hold_lock kill child
q "$(tgt_url t_kill)" "DELETE FROM public.parent WHERE id = 1000" >/dev/null
t_assert_eq "kill: on the target the parent and its 20,000 children are gone" "0" \
    "$(tq t_kill "SELECT count(*) FROM public.child WHERE parent_id = 1000")"
t_check "kill: the replay waits inside the cascade (the source's ON DELETE CASCADE on the locked table)" \
    t_wait_for 30 apply_waits || t_detail "$(sq kill "SELECT application_name, state, wait_event_type, left(query, 60) FROM pg_stat_activity WHERE datname = 'kill'")"
pgmd_kill9
t_ok "kill: pgmoverd killed with SIGKILL there"
t_assert_eq "kill: ... none of the cascade on the source yet" "1 20000" \
    "$(sq kill "SELECT (SELECT count(*) FROM public.parent WHERE id = 1000) || ' ' || (SELECT count(*) FROM public.child WHERE parent_id = 1000)")"
release_lock kill child
t_check "kill: pgmoverd restarts" pgmd_start "$DMN" || t_detail "see log"
t_assert_eq "kill: still in the window" "rollback_window" "$(pgmd_state kill)"
t_check "kill: the stream goes on: every table of the target reaches the source" t_wait_for 120 all_same kill t_kill ||
    t_detail "$(fail_detail kill) $(jst kill '.facts.reverse')"
t_assert_eq "kill: ... the parent and its children gone on the source" "0 0" \
    "$(sq kill "SELECT (SELECT count(*) FROM public.parent WHERE id = 1000) || ' ' || (SELECT count(*) FROM public.child WHERE parent_id = 1000)")"
# again, inside rollback's drain: the other big parent deleted on the target, the lock
# taken, then rollback; pgmoverd killed while the drain waits inside the cascade
q "$(tgt_url t_kill)" "DELETE FROM public.parent WHERE id = 7; UPDATE public.code SET code = 'A2' WHERE code = 'A'" >/dev/null
t_check "kill: the window's other writes reach the source" t_wait_for 60 all_same kill t_kill
hold_lock kill child
q "$(tgt_url t_kill)" "DELETE FROM public.parent WHERE id = 2000" >/dev/null
cmd "kill: rollback while the source's child table is locked" rollback kill
t_check "kill: rollback's drain waits inside the cascade" t_wait_for 30 apply_waits ||
    t_detail "$(fail_detail kill)"
t_assert_eq "kill: ... the job rolling back" "rolling_back" "$(pgmd_state kill)"
pgmd_kill9
t_ok "kill: pgmoverd killed with SIGKILL in rolling_back, there"
release_lock kill child
t_check "kill: pgmoverd restarts" pgmd_start "$DMN" || t_detail "see log"
wait_state "kill: the rollback completes: rolled_back" kill rolled_back 180
after_rollback kill kill t_kill

# ---------------------------------------------------------------------------------------
echo "# 3. job load: rollback under pgbench write load on the target"
to_window load load t_load
# each client its own parents: inserts, updates (the BEFORE UPDATE trigger), cascading deletes
cat >"$WORK/load.sql" <<'EOF'
\set p 1000 + :client_id * 1000 + random(0, 40)
\set c random(1, 1000000000)
INSERT INTO public.parent VALUES (:p, 'pb') ON CONFLICT (id) DO UPDATE SET name = 'pb' || :c;
INSERT INTO public.child (id, parent_id, note) VALUES (:c, :p, 'c') ON CONFLICT (id) DO NOTHING;
UPDATE public.child SET note = 'u' WHERE parent_id = :p AND id % 3 = 0;
INSERT INTO public.opt VALUES (:c, :p, 'o') ON CONFLICT (id) DO NOTHING;
INSERT INTO public.loose VALUES (:p, 'l' || :c);
DELETE FROM public.parent WHERE id = :p + 1;
EOF
"$TB_PGBIN/pgbench" -n -c 3 -T 40 -f "$WORK/load.sql" "$(tgt_url t_load)" >"$WORK/pgbench.log" 2>&1 &
bench=$!
sleep 10
_loaded() { [[ $(tq t_load "SELECT count(*) FROM public.child") -gt 300 ]]; }
t_check "load: pgbench writes on the target" t_wait_for 30 _loaded || t_detail "$(tail -5 "$WORK/pgbench.log")"
cmd "load: rollback while pgbench writes" rollback load
wait_state "load: rolled_back" load rolled_back 180
wait "$bench"
echo "# pgbench: $(grep -E 'number of transactions actually processed|tps' "$WORK/pgbench.log" | head -2 | tr '\n' ' ')"
after_rollback load load t_load
t_assert_eq "load: the target is read-only after the rollback (no write after the drain)" "on" \
    "$(q "$(tgt_url t_load)" "SHOW default_transaction_read_only")"

pgmd_stop
t_assert_eq "pgmoverd stops cleanly" "0" "$?"
echo "# run time: $(($(date +%s) - T0)) s"
t_summary
