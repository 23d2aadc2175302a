#!/usr/bin/env bash
# Integration test of the copy engine's post-data and its options, on a Heroku-like source
# (TLS, wal_level = replica, nothing preloaded, the owner no superuser) and a managed-like
# target (its role no superuser). Black-box: the CLI, status --json, the daemon's log, and
# SQL on both servers; every job ends with an independent comparison (pg_dump --schema-only
# of both sides, and the rows of every table in psql).
#
# The source: a table whose stored generated column takes 50 ms a row on the target (its
# copy lasts ~2 s), a bulk table of ~2 MB, small tables with every kind of post-data entry
# (primary, unique, exclusion and NOT VALID check constraints, a partial index, a foreign
# key, a trigger, a rule, a policy, extended statistics, comments on an index and on a
# constraint, a partitioned table with a partition's index attached, CLUSTER ON, REPLICA
# IDENTITY USING INDEX, odd names), an index whose expression takes 200 ms a row, and
# materialized views: one read by a view that another reads (refreshed in that order), and
# one never populated.
#
#   1. job waves (jobs 2, split_tables_larger_than 256kB): the indexes of the small tables
#      are on the target while the data phase still runs (built beside the data); the
#      engine says so in status (post_data_early_entries, post_data_waves) and in its log;
#      the bulk table is copied in block ranges; the slow index's wave outlasts the data,
#      and the rest waits for it; the schema of both sides is the same, the rows too, the
#      materialized views populated as on the source; freeze -> verified; one of them left
#      unpopulated on the target is a difference stand-alone verify names
#   2. job fail: the wave building the slow index loses its session on the target
#      (pg_terminate_backend): the job fails saying so and how to go on, no pg_restore and
#      no session of the job is left; retry -> synced, and both sides are the same
#
#   PGM_BUILD=/tmp/bd bash tests/integration/test_copy.sh   (as root or postgres)
# PGM_TEST_KEEP=1 keeps the work directory.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TB=$ROOT/tests/testbed/testbed.sh
. "$HERE/lib.sh"
. "$HERE/pgmd.sh"
# shellcheck source=tests/integration/jobs.sh
. "$HERE/jobs.sh"

t_prereq test_copy pgmoverd pgmover

WORK=$(t_tmpdir) || exit 1
BED=$WORK/bed
DMN=$WORK/daemon

cleanup() {
    pgmd_cleanup
    t_bed_remove "$WORK" "$BED"
}
trap cleanup EXIT

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
t_assert_eq "source: its owner is no superuser" "off" "$(q "$SOURCE_URL" "SELECT current_setting('is_superuser')")"
t_assert_eq "target: its role is no superuser" "off" "$(q "$TARGET_URL" "SELECT current_setting('is_superuser')")"

setup_ok=1
"$TB" createdb "$BED" src shapes >/dev/null || setup_ok=0
for db in t_waves t_fail; do "$TB" createdb "$BED" dst "$db" >/dev/null || setup_ok=0; done
# made by the owner, as a Heroku application's migrations would
out=$(q "$(src_url shapes)" "
CREATE FUNCTION public.slow_id(v int) RETURNS int LANGUAGE plpgsql IMMUTABLE
    AS \$\$ BEGIN PERFORM pg_sleep(0.05); RETURN v; END \$\$;
CREATE FUNCTION public.slower_id(v int) RETURNS int LANGUAGE plpgsql IMMUTABLE
    AS \$\$ BEGIN PERFORM pg_sleep(0.2); RETURN v; END \$\$;
CREATE TABLE public.slow (id int PRIMARY KEY, v int, w int GENERATED ALWAYS AS (public.slow_id(v)) STORED);
INSERT INTO public.slow (id, v) SELECT g, g FROM generate_series(1, 40) g;
CREATE TABLE public.bulk (id int PRIMARY KEY, pad text);
INSERT INTO public.bulk SELECT g, repeat('x', 100) FROM generate_series(1, 15000) g;
CREATE TABLE public.p (id int PRIMARY KEY, u int UNIQUE, v text CHECK (v <> ''), during tsrange,
    EXCLUDE USING gist (during WITH &&));
CREATE INDEX p_v ON public.p (v) WHERE v IS NOT NULL;
COMMENT ON INDEX public.p_v IS 'a partial index';
ALTER TABLE public.p REPLICA IDENTITY USING INDEX p_pkey;
CLUSTER public.p USING p_pkey;
CREATE STATISTICS public.p_st ON u, v FROM public.p;
ALTER TABLE public.p ENABLE ROW LEVEL SECURITY;
CREATE POLICY p_all ON public.p USING (true);
INSERT INTO public.p SELECT g, g, 'v' || g, tsrange(now()::timestamp + g * interval '1 day', now()::timestamp + g * interval '1 day' + interval '1 hour') FROM generate_series(1, 50) g;
CREATE TABLE public.\"odd name\" (id int, \"x y\" int, CONSTRAINT \"odd pk\" PRIMARY KEY (id));
CREATE RULE \"odd rule\" AS ON UPDATE TO public.\"odd name\" DO ALSO NOTHING;
INSERT INTO public.\"odd name\" VALUES (1, 1), (2, 2);
CREATE TABLE public.c (id int PRIMARY KEY, pid int REFERENCES public.p (id) ON DELETE CASCADE);
ALTER TABLE public.c ADD CONSTRAINT c_positive CHECK (id > 0) NOT VALID;
COMMENT ON CONSTRAINT c_positive ON public.c IS 'checked from now on';
CREATE FUNCTION public.c_touch() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN RETURN NEW; END \$\$;
CREATE TRIGGER c_touch BEFORE INSERT ON public.c FOR EACH ROW EXECUTE FUNCTION public.c_touch();
INSERT INTO public.c SELECT g, g FROM generate_series(1, 30) g;
CREATE TABLE public.parted (id int, k int, PRIMARY KEY (id, k)) PARTITION BY RANGE (k);
CREATE TABLE public.parted_1 PARTITION OF public.parted FOR VALUES FROM (0) TO (10);
CREATE INDEX parted_k ON public.parted (k);
INSERT INTO public.parted SELECT g, g % 10 FROM generate_series(1, 100) g;
CREATE TABLE public.quick2 (id int PRIMARY KEY, v int);
INSERT INTO public.quick2 SELECT g, g FROM generate_series(1, 15) g;
CREATE INDEX quick2_slow ON public.quick2 (public.slower_id(v));
CREATE MATERIALIZED VIEW public.mv1 AS SELECT id, v FROM public.p;
CREATE INDEX mv1_id ON public.mv1 (id);
CREATE VIEW public.v_over_mv1 AS SELECT id FROM public.mv1 WHERE id % 2 = 0;
CREATE MATERIALIZED VIEW public.a_mv2 AS SELECT id FROM public.v_over_mv1;
CREATE MATERIALIZED VIEW public.never_mv AS SELECT id FROM public.p WITH NO DATA;
SELECT 'made'")
[[ $out == made ]] || {
    setup_ok=0
    echo "# setup: $out"
}
t_assert_eq "setup: databases and the source's schema (as its owner)" 1 "$setup_ok"
pgmd_start "$DMN" "log_level = info" || {
    t_fail "pgmoverd starts" "$(tail -5 "$DMN/pgmoverd.log")"
    t_summary
    exit 1
}

# ---------------------------------------------------------------------------------------
# helpers

# schema_of SIDE DB: pg_dump --schema-only as the superuser, without the per-dump \restrict key
schema_of() {
    local port=$SOURCE_PORT
    [[ $1 == dst ]] && port=$TARGET_PORT
    $TB_SUPERUSER_RUN "$TB_PGBIN/pg_dump" --schema-only --no-owner --no-acl \
        "postgresql://postgres@/$2?host=$TB_DIR&port=$port" 2>&1 | grep -v '^\\\(un\)\?restrict '
}
same_schema() {
    local d
    d=$(diff <(schema_of src "$2") <(schema_of dst "$3"))
    if [[ -z $d && $(schema_of dst "$3" | grep -c 'CREATE INDEX') -ge 4 ]]; then
        t_ok "$1: the target's schema is the source's (pg_dump --schema-only of both)"
    else
        t_fail "$1: the target's schema is the source's (pg_dump --schema-only of both)" "$(head -40 <<<"$d")"
    fi
}
# matviews_state DB: each materialized view of the target database and whether it is populated
matviews_state() { tq "$1" "SELECT string_agg(matviewname || '=' || ispopulated, ',' ORDER BY matviewname) FROM pg_matviews"; }
TABLES=(public.slow public.bulk public.p '"public"."odd name"' public.c public.parted public.quick2)
in_data_phase() { [[ $(jst "$1" '.state + " " + (.step.phase // "")') == "syncing data" ]]; }
target_has() { [[ $(tq "$1" "SELECT to_regclass('$2') IS NOT NULL") == t ]]; }
# data still copying, and an index of a table copied already on the target
built_beside_data() { in_data_phase "$1" && target_has "$2" "$3"; }
# the session of a wave that is building the slow index, on the target
slow_wave() {
    [[ $(tq postgres "SELECT count(*) FROM pg_stat_activity WHERE datname = '$1'
           AND application_name = 'pgmover:$2:pg_restore' AND query LIKE 'CREATE INDEX quick2_slow%'") == 1 ]]
}

# ---------------------------------------------------------------------------------------
echo "# 1. job waves: post-data beside the data, block ranges, materialized views"

cmd "waves: create (jobs 2, split_tables_larger_than 256kB)" create waves --source "$(src_url shapes)" \
    --target "$(tgt_url t_waves)" --method dump --set jobs=2 --set split_tables_larger_than=256kB \
    --set rollback_window=0 --set cutover_command=true
cmd "waves: start" start waves
t_check "waves: p's primary key is on the target while the data phase still runs" \
    t_wait_for 60 built_beside_data waves t_waves public.p_pkey ||
    t_detail "$(pgm --json status waves | jq -c '.result | {state, step}')"
wait_state "waves: synced" waves synced 120
rec() { jst waves ".facts.copies.rehearsal.$1"; }
early=$(rec post_data_early_entries) entries=$(rec post_data_entries) waves=$(rec post_data_waves)
if [[ $early =~ ^[0-9]+$ && $entries =~ ^[0-9]+$ && $early -ge 5 && $early -lt $entries && $waves -ge 1 ]]; then
    t_ok "waves: $early of $entries post-data entries built beside the data, in $waves wave(s); the rest after it"
else
    t_fail "waves: post-data entries built beside the data" "early=$early entries=$entries waves=$waves"
fi
t_check "waves: the log says each wave" grep -q "job waves: rehearsal copy: building [0-9]* index(es) and constraint(s) of copied tables beside the data (wave 1)" "$DMN/pgmoverd.log"
t_check "waves: the bulk table was copied in block ranges (more chunks than tables)" \
    test "$(rec chunks)" -gt "$(rec tables)"
t_assert_eq "waves: the materialized views as on the source (populated, or not)" "a_mv2=true,mv1=true,never_mv=false" \
    "$(matviews_state t_waves)"
t_assert_eq "waves: ... and refreshed from the copied rows, the one over the other after it" "25 50" \
    "$(tq t_waves "SELECT (SELECT count(*) FROM public.a_mv2) || ' ' || count(*) FROM public.mv1")"
t_assert_eq "waves: the copy record counts them" "2" "$(rec materialized_views)"
same_schema waves shapes t_waves
compare waves shapes t_waves "${TABLES[@]}"
cmd "waves: freeze" freeze waves
wait_state "waves: verified" waves verified 120
# whether a materialized view is populated is part of what verification compares
tq t_waves "REFRESH MATERIALIZED VIEW public.a_mv2 WITH NO DATA" >/dev/null
out=$(pgm verify --source "$(src_url shapes)" --target "$(tgt_url t_waves)" 2>&1)
rc=$?
if [[ $rc -eq 1 && $out == *"public.a_mv2"* && $out == *"not populated"* ]]; then
    t_ok "waves: a materialized view left unpopulated on the target fails verification, named"
else
    t_fail "waves: a materialized view left unpopulated on the target fails verification, named" "rc=$rc: $out"
fi
cmd "waves: abort" abort waves
wait_state "waves: aborted" waves aborted 60

# ---------------------------------------------------------------------------------------
echo "# 2. job fail: a wave loses its session on the target"

cmd "fail: create" create fail --source "$(src_url shapes)" --target "$(tgt_url t_fail)" --method dump \
    --set jobs=2 --set rollback_window=0
cmd "fail: start" start fail
if t_wait_for 60 slow_wave t_fail fail; then
    t_ok "fail: a wave builds the slow index"
    tq postgres "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 't_fail'
                   AND application_name = 'pgmover:fail:pg_restore'" >/dev/null
else
    t_fail "fail: a wave builds the slow index" "$(pgm --json status fail | jq -c '.result | {state, step}')"
fi
wait_state "fail: failed" fail failed 60
t_assert_contains "fail: the error says which restore failed" "$(jst fail .error.message)" \
    "pg_restore failed during the restore of indexes and constraints into the target (tables already copied)"
t_assert_contains "fail: ... and how to go on" "$(jst fail .error.hint)" "pgmover retry"
no_tools() { ! pgrep -f -- "pg_restore.*$DMN/state/fail/" >/dev/null; }
t_check "fail: no pg_restore of the job is left" t_wait_for 10 no_tools
no_sessions() { [[ $(tq postgres "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'pgmover:fail:%'") == 0 ]]; }
t_check "fail: no session of the job is left on the target" t_wait_for 10 no_sessions ||
    t_detail "$(tq postgres "SELECT application_name, state, query FROM pg_stat_activity WHERE application_name LIKE 'pgmover:fail:%'")"
cmd "fail: retry" retry fail
wait_state "fail: synced after the retry" fail synced 120
same_schema fail shapes t_fail
compare fail shapes t_fail "${TABLES[@]}"
t_assert_eq "fail: the materialized views as on the source" "a_mv2=true,mv1=true,never_mv=false" \
    "$(matviews_state t_fail)"
cmd "fail: abort" abort fail
wait_state "fail: aborted" fail aborted 60

t_summary
