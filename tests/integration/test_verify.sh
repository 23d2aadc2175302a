#!/usr/bin/env bash
# Integration test of the verification engine through `pgmover verify --source --target`
# (in-process, no daemon), on real clusters:
#   1. usage errors (exit 2) and unreachable or refused servers (exit 1, an error that
#      says what to do), before anything else
#   2. a copy (pg_dump | pg_restore) of tests/integration/fixtures/rich.sql plus tables
#      made for this test compares equal, with 1 and 2 connections per side, with its
#      largest heap read whole or in block ranges, and under a connection limit on the
#      source smaller than the connections asked for
#   3. every kind of difference planted on the target is found and located: a changed
#      value in a text, numeric (scale only), float, timestamptz, timestamp, time, timetz
#      (the same time in another zone), jsonb, bytea and array column, a NULL turned into
#      an empty string, a deleted row, an extra row (all by key and kind), changes deep
#      in a 250,000-row table (read whole and in block ranges) and in tables keyed by uuid
#      and by two columns, an emptied table, rows of a table without a primary key (by their
#      text), a sequence behind the source; schema differences (an index missing, an
#      extra column) too; --tables restricts the report
#   4. identical databases whose sessions default to different TimeZone, DateStyle,
#      IntervalStyle, extra_float_digits and bytea_output compare equal
# The daemon's `verifying` step runs the same engine: test_dump.sh covers it.
#
# Run from the source tree as root (or postgres):
#   PGM_BUILD=/tmp/bv bash tests/integration/test_verify.sh
# PGM_TEST_KEEP=1 keeps the work directory (server logs, reports).
set -uo pipefail # no -e: each check reports and the summary decides the exit status

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TB=$ROOT/tests/testbed/testbed.sh
# shellcheck source=tests/integration/lib.sh
. "$HERE/lib.sh"
# shellcheck source=tests/integration/jobs.sh
. "$HERE/jobs.sh"

t_prereq test_verify pgmover
PGMOVER=$PGM_BUILD/pgmover

WORK=$(t_tmpdir) || exit 1
BED=$WORK/bed
cleanup() { t_bed_remove "$WORK" "$BED"; }
trap cleanup EXIT

"$TB" start "$BED" 2>"$WORK/testbed.log" || {
    cat "$WORK/testbed.log" >&2
    exit 1
}
# shellcheck disable=SC1091
. "$BED/env"


# verify NAME ARGS...: run pgmover verify --json; the report in $WORK/NAME.json, exit in RC
verify() {
    local name=$1
    shift
    RC=0
    "$PGMOVER" verify --json "$@" >"$WORK/$name.json" 2>"$WORK/$name.err" || RC=$?
}
# r NAME FILTER: a jq filter over a report
# (a report is in the envelope {"ok", "result"}; an error is {"ok": false, "error"})
r() { jq -r "if has(\"result\") then .result else . end | $2" "$WORK/$1.json" 2>/dev/null; }
# diffs NAME TABLE: "key:kind,..." of a table's listed differences
diffs() { r "$1" ".tables[] | select(.table == \"$2\") | [.differences.keys[] | \"\(.key // .row):\(.kind)\"] | join(\",\")"; }

# ---------------------------------------------------------------------------------------
echo "# 1. usage errors and unreachable servers"
out=$("$PGMOVER" verify --source "$SOURCE_URL" 2>&1)
rc=$?
t_assert_eq "no --target: usage error" 2 "$rc"
t_assert_contains "no --target: says what is missing" "$out" "--target"
out=$("$PGMOVER" verify --source "$SOURCE_URL" --target "$TARGET_URL" --tables ", ," 2>&1)
t_assert_eq "empty --tables: usage error" 2 $?
out=$(PGMOVER_VERIFY_JOBS=0 "$PGMOVER" verify --source "$SOURCE_URL" --target "$TARGET_URL" 2>&1)
t_assert_eq "PGMOVER_VERIFY_JOBS=0: usage error" 2 $?

verify unreachable --source "$SOURCE_URL" --target "postgres://tgt_admin:x@127.0.0.1:1/appdb?connect_timeout=3"
t_assert_eq "unreachable target: exit 1" 1 "$RC"
t_assert_eq "unreachable target: error names the side" "could not connect to the target" "$(r unreachable .error.what)"
t_assert_eq "unreachable target: report not ok" "false" "$(r unreachable .ok)"
t_assert_contains "unreachable target: the hint says what to check" "$(r unreachable .error.hint)" \
    "check the host and port"
out=$("$PGMOVER" verify --source "${SOURCE_URL/app_owner:/app_owner:wrong}" --target "$TARGET_URL" 2>&1)
rc=$?
t_assert_eq "wrong source password: exit 1" 1 "$rc"
t_assert_contains "wrong source password: human error names the source" "$out" "could not connect to the source"
t_assert_contains "wrong source password: the hint says what to check" "$out" \
    "hint: check the user and password in the URL"
verify nodb --source "$SOURCE_URL" --target "${TARGET_URL%/appdb}/no_such_db"
t_assert_contains "no such target database: the hint says so" "$(r nodb .error.hint)" "check the database name"

# ---------------------------------------------------------------------------------------
echo "# 2. a copy compares equal"
"$TB_PGBIN/psql" "$SOURCE_URL" -X -q -v ON_ERROR_STOP=1 -f "$HERE/fixtures/rich.sql" >"$WORK/rich.log" 2>&1 || {
    t_fail "load rich.sql" "$(tail -5 "$WORK/rich.log")"
}
q "$SOURCE_URL" "
SET TimeZone = 'UTC';
CREATE TABLE shop.verify_types (
    id int PRIMARY KEY, t text, n numeric, f float8, ts timestamptz, j jsonb, b bytea, arr int[],
    note text, iv interval, d date, lt timestamp, tm time, tz timetz);
INSERT INTO shop.verify_types
SELECT i, 'text ' || i, i * 1.50, i / 10.0, '2024-03-01 12:00:00+00'::timestamptz + i * interval '1 minute',
       jsonb_build_object('i', i, 'tags', jsonb_build_array('a', i)), decode(md5(i::text), 'hex'),
       ARRAY[i, i + 1], CASE WHEN i % 2 = 0 THEN NULL ELSE 'n' || i END, i * interval '90 minutes',
       date '2024-01-01' + i, '2024-03-01 12:00:00'::timestamp + i * interval '1 second',
       '08:00'::time + i * interval '1 second', ('08:00+02'::timetz + i * interval '1 second')
  FROM generate_series(1, 40) AS i;
CREATE TABLE shop.big (id bigint PRIMARY KEY, v text, w int);
INSERT INTO shop.big SELECT i, md5(i::text), i % 1000 FROM generate_series(1, 250000) AS i;
CREATE TABLE shop.uuids (id uuid PRIMARY KEY, v int);
INSERT INTO shop.uuids SELECT md5(i::text)::uuid, i FROM generate_series(1, 30000) AS i;
CREATE TABLE shop.wiped (id int PRIMARY KEY, v text);
INSERT INTO shop.wiped SELECT i, 'w' || i FROM generate_series(1, 20000) AS i;
CREATE TABLE shop.pairs (a int, b text, v text, PRIMARY KEY (a, b));
INSERT INTO shop.pairs SELECT i % 50, 'k' || i, 'v' || i FROM generate_series(1, 5000) AS i;
SELECT lo_from_bytea(0, convert_to(repeat('large object ' || i, 100 * i), 'UTF8')) FROM generate_series(1, 4) AS i;
-- keys width_bucket() places (besides shop.big's bigint and shop.uuids' uuid)
CREATE TABLE shop.ticks (at timestamptz PRIMARY KEY, v int);
INSERT INTO shop.ticks SELECT '2024-01-01 00:00:00+00'::timestamptz + i * interval '1 second', i
  FROM generate_series(1, 30000) AS i;
CREATE TABLE shop.prices (p numeric(12,2) PRIMARY KEY, v int);
INSERT INTO shop.prices SELECT i * 0.25, i FROM generate_series(1, 30000) AS i;
ANALYZE;" >"$WORK/extra.log" || t_fail "load the tables of this test" "$(tail -5 "$WORK/extra.log")"

"$TB" createdb "$BED" dst copy1 && "$TB" createdb "$BED" dst copy2 || exit 1
for db in copy1 copy2; do
    "$TB_PGBIN/pg_dump" -Fc "$SOURCE_URL" | "$TB_PGBIN/pg_restore" --no-owner --no-acl -d "$(tgt_url $db)" \
        2>"$WORK/restore-$db.log" || t_fail "copy to $db" "$(tail -5 "$WORK/restore-$db.log")"
done
T1=$(tgt_url copy1)

verify equal --source "$SOURCE_URL" --target "$T1"
t_assert_eq "equal: exit 0" 0 "$RC"
t_assert_eq "equal: report ok" "true" "$(r equal .ok)"
t_assert_eq "equal: --json is the daemon's envelope" "true true" "$(jq -r '"\(.ok) \(.result.ok)"' "$WORK/equal.json")"
t_assert_eq "equal: no mismatch" "0" "$(r equal .mismatches)"
t_assert_eq "equal: every table compared, and the large objects" \
    "$(echo "$(q "$SOURCE_URL" "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE relkind = 'r' AND nspname NOT IN ('pg_catalog', 'information_schema')") + 1" | bc)" \
    "$(r equal .tables_compared)"
t_assert_eq "equal: the large objects compared as one more table, keyed by OID" "true 4 4 [\"oid\"]" \
    "$(r equal '.tables[] | select(.table == "pg_catalog.pg_largeobject") | "\(.match) \(.source_rows) \(.target_rows) \(.key | tojson)"')"
t_assert_eq "equal: row counts of the copy" "250000 250000" "$(r equal '.tables[] | select(.table == "shop.big") | "\(.source_rows) \(.target_rows)"')"
t_assert_eq "equal: checksums agree" "0" \
    "$(r equal '[.tables[] | select(.source_checksum != .target_checksum)] | length')"
t_assert_eq "equal: keys found (primary, none, composite)" '["id"] null ["a","b"]' \
    "$(r equal '[.tables[] | select(.table == "shop.big" or .table == "shop.pairs" or .table == "shop.events_log") | .key | tojson] | join(" ")')"
t_assert_eq "equal: sequences compared and match" "true" \
    "$(r equal '(.sequences | length) >= 4 and all(.sequences[]; .match)')"
t_assert_eq "equal: schema ok" "true" "$(r equal .schema.ok)"
t_assert_eq "equal: every table has its time" "true" "$(r equal 'all(.tables[]; .duration_ms >= 0)')"
out=$("$PGMOVER" verify --source "$SOURCE_URL" --target "$T1" 2>&1)
t_assert_eq "equal, human: exit 0" 0 $?
t_assert_contains "equal, human: says it matches" "$out" "table(s) match"
t_assert_contains "equal, human: masks the password" "$out" "app_owner:****@"

PGMOVER_VERIFY_JOBS=1 verify equal1 --source "$SOURCE_URL" --target "$T1"
t_assert_eq "equal with 1 connection per side" "0 true 1" "$RC $(r equal1 .ok) $(r equal1 .jobs)"
t_assert_eq "1 connection per side: the largest heap is read in one scan" "[1,1]" \
    "$(r equal1 '.tables[] | select(.table == "shop.big") | .scan_chunks | tojson')"
# a heap larger than a connection's share is read in block ranges by all the connections
PGMOVER_VERIFY_JOBS=2 PGMOVER_VERIFY_RANGE_MB=1 verify ranges --source "$SOURCE_URL" --target "$T1"
t_assert_eq "block ranges: equal" "0 true" "$RC $(r ranges .ok)"
t_assert_eq "block ranges: shop.big read in several ranges on each side" "true" \
    "$(r ranges '.tables[] | select(.table == "shop.big") | .scan_chunks[0] > 1 and .scan_chunks[1] > 1')"
t_assert_eq "block ranges: the ranges add up to the one-scan checksum" \
    "$(r equal1 '.tables[] | select(.table == "shop.big") | .source_checksum')" \
    "$(r ranges '.tables[] | select(.table == "shop.big") | .source_checksum')"
out=$(PGMOVER_VERIFY_RANGE_MB=0 "$PGMOVER" verify --source "$SOURCE_URL" --target "$T1" 2>&1)
t_assert_eq "PGMOVER_VERIFY_RANGE_MB=0: usage error" 2 $?
t_assert_contains "PGMOVER_VERIFY_RANGE_MB=0: says what it takes" "$out" "size in MB"

# a connection limit below what is asked for (Heroku's small plans): fewer connections, same answer
$SOURCE_PSQL -c "ALTER ROLE app_owner CONNECTION LIMIT 2" >/dev/null
PGMOVER_VERIFY_JOBS=4 verify limited --source "$SOURCE_URL" --target "$T1"
$SOURCE_PSQL -c "ALTER ROLE app_owner CONNECTION LIMIT -1" >/dev/null
t_assert_eq "connection limit: still equal" "0 true" "$RC $(r limited .ok)"
t_assert_contains "connection limit: a warning says so" "$(r limited '.warnings | join(";")')" \
    "the source accepts fewer connections"

# a role that may connect but not read the tables (not the owner, no GRANT): an error saying what to do
verify noselect --source "$SOURCE_APP_URL" --target "$T1"
t_assert_eq "no SELECT privilege: exit 1, no report" "1 false" "$RC $(r noselect .ok)"
t_assert_eq "no SELECT privilege: SQLSTATE 42501" "42501" "$(r noselect .error.sqlstate)"
t_assert_contains "no SELECT privilege: the hint says what to do" "$(r noselect .error.hint)" \
    "connect as the database owner"

# ---------------------------------------------------------------------------------------
echo "# 3. planted differences are found and located"
q "$T1" "
UPDATE shop.verify_types SET t = 'text one' WHERE id = 1;
UPDATE shop.verify_types SET n = 3.0 WHERE id = 2;              -- was 3.00: the scale only
UPDATE shop.verify_types SET f = 0.30000000000000004 WHERE id = 3;
UPDATE shop.verify_types SET ts = ts + interval '1 microsecond' WHERE id = 4;
UPDATE shop.verify_types SET j = jsonb_set(j, '{tags,1}', '6') WHERE id = 5;
UPDATE shop.verify_types SET b = b || '\x00'::bytea WHERE id = 6;
UPDATE shop.verify_types SET arr = ARRAY[8, 7] WHERE id = 7;
UPDATE shop.verify_types SET note = '' WHERE id = 8;              -- was NULL
UPDATE shop.verify_types SET lt = lt + interval '1 microsecond' WHERE id = 10;
UPDATE shop.verify_types SET tm = tm - interval '1 microsecond' WHERE id = 11;
UPDATE shop.verify_types SET tz = '09:00:12+03' WHERE id = 12;    -- was 08:00:12+02: another zone
DELETE FROM shop.verify_types WHERE id = 9;
INSERT INTO shop.verify_types (id, t) VALUES (1000, 'extra');
UPDATE shop.big SET w = w + 1 WHERE id = 123456;
DELETE FROM shop.big WHERE id = 200000;
INSERT INTO shop.big VALUES (250001, 'extra', 0);
UPDATE shop.uuids SET v = -v WHERE id = md5('777')::uuid;
UPDATE shop.pairs SET v = 'changed' WHERE a = 7 AND b = 'k107';
TRUNCATE shop.wiped;
INSERT INTO shop.events_log VALUES ('2024-01-01 00:00:00+00', 'login', '{\"user\": 1}');
UPDATE shop.events_log SET kind = 'TICK' WHERE payload = '{\"i\": 42}';
SELECT setval('shop.invoice_no', 10);
DROP INDEX shop.orders_customer_idx;
ALTER TABLE shop.orders ADD COLUMN audit_note text;
UPDATE shop.ticks SET v = -v WHERE at = '2024-01-01 05:00:00+00';
DELETE FROM shop.prices WHERE p = 777.25;
SELECT lo_put(oid, 3, 'X') FROM pg_largeobject_metadata ORDER BY oid LIMIT 1;
SELECT lo_unlink(oid) FROM pg_largeobject_metadata ORDER BY oid DESC LIMIT 1;
SELECT lo_from_bytea(0, 'an extra large object');" >"$WORK/plant.log" || t_fail "plant differences" "$(cat "$WORK/plant.log")"

verify planted --source "$SOURCE_URL" --target "$T1"
t_assert_eq "planted: exit 1" 1 "$RC"
t_assert_eq "planted: report not ok" "false" "$(r planted .ok)"
t_assert_eq "planted: verify_types located by key and kind" \
    "1:changed,2:changed,3:changed,4:changed,5:changed,6:changed,7:changed,8:changed,9:missing,10:changed,11:changed,12:changed,1000:extra" \
    "$(diffs planted shop.verify_types)"
t_assert_eq "planted: verify_types counts" "13 1 1 11" \
    "$(r planted '.tables[] | select(.table == "shop.verify_types") | .differences | "\(.count) \(.missing) \(.extra) \(.changed)"')"
t_assert_contains "planted: verify_types problem says how many" \
    "$(r planted '.tables[] | select(.table == "shop.verify_types") | .problem')" "13 rows differ"
t_assert_eq "planted: big located through the bisection" "123456:changed,200000:missing,250001:extra" \
    "$(diffs planted shop.big)"
t_assert_eq "planted: big was cut into key-range chunks" "true" \
    "$(r planted '.tables[] | select(.table == "shop.big") | .chunks > 1 and .chunks_differ >= 1')"
PGMOVER_VERIFY_JOBS=2 PGMOVER_VERIFY_RANGE_MB=1 verify planted_ranges --source "$SOURCE_URL" --target "$T1" \
    --tables shop.big
t_assert_eq "planted, read in block ranges: big located the same" \
    "1 true 123456:changed,200000:missing,250001:extra" \
    "$RC $(r planted_ranges '.tables[0].scan_chunks[0] > 1') $(diffs planted_ranges shop.big)"
t_assert_eq "planted: uuid key located" "$(q "$SOURCE_URL" "SELECT md5('777')::uuid"):changed" \
    "$(diffs planted shop.uuids)"
t_assert_eq "planted: composite key located" "(7,k107):changed" "$(diffs planted shop.pairs)"
t_assert_eq "planted: an emptied table: every row missing, the first keys listed" "20000 20000 20 1:missing" \
    "$(r planted '.tables[] | select(.table == "shop.wiped") | .differences | "\(.count) \(.missing) \(.listed) \(.keys[0].key):\(.keys[0].kind)"')"
t_assert_eq "planted: table without a key located by row text" \
    '("2024-01-01 00:00:00+00",login,"{""user"": 1}"):extra,("2024-02-01 00:42:00+00",TICK,"{""i"": 42}"):extra,("2024-02-01 00:42:00+00",tick,"{""i"": 42}"):missing' \
    "$(diffs planted shop.events_log)"
t_assert_eq "planted: keyless rows located by row" "row" \
    "$(r planted '.tables[] | select(.table == "shop.events_log") | .differences.located_by')"
t_assert_eq "planted: the sequence behind is found" "false target is behind the source" \
    "$(r planted '.sequences[] | select(.sequence == "shop.invoice_no") | "\(.match) \(.problem)"')"
t_assert_eq "planted: untouched tables still match" "true" \
    "$(r planted '[.tables[] | select(.table == "shop.customers" or .table == "shop.orders" or .table == "shop.measurements_2024")] | length == 3 and all(.[]; .match)')"
t_assert_eq "planted: schema: the missing index" "missing on the target orders_customer_idx" \
    "$(r planted '.schema.differences[] | select(.kind == "index") | "\(.problem) \(.source)"')"
t_assert_eq "planted: schema: the extra column" "only on the target text" \
    "$(r planted '.schema.differences[] | select(.kind == "column" and .object == "shop.orders.audit_note") | "\(.problem) \(.target)"')"
mapfile -t los < <(q "$SOURCE_URL" "SELECT oid FROM pg_largeobject_metadata ORDER BY oid")
lo_extra=$(q "$T1" "SELECT oid FROM pg_largeobject_metadata WHERE oid NOT IN ($(IFS=,; echo "${los[*]}"))")
t_assert_eq "planted: large objects located by OID (bytes changed, unlinked, extra)" \
    "$(printf '%s\n' "${los[0]}:changed" "${los[3]}:missing" "$lo_extra:extra" | sort -n | paste -sd,)" \
    "$(diffs planted pg_catalog.pg_largeobject)"
t_assert_eq "planted: timestamptz key located through the bisection" "2024-01-01 05:00:00+00:changed" \
    "$(diffs planted shop.ticks)"
t_assert_eq "planted: numeric key located through the bisection" "777.25:missing" "$(diffs planted shop.prices)"
t_assert_eq "planted: ... both cut into key-range chunks" "true true" \
    "$(r planted '[.tables[] | select(.table == "shop.ticks" or .table == "shop.prices") | .chunks > 1] | join(" ")')"
t_assert_eq "planted: mismatches add up (9 tables with the large objects, 1 sequence, 2 schema)" "12" \
    "$(r planted .mismatches)"
out=$("$PGMOVER" verify --source "$SOURCE_URL" --target "$T1" 2>&1)
t_assert_eq "planted, human: exit 1" 1 $?
t_assert_contains "planted, human: names the table" "$out" "DIFFERS  shop.verify_types"
t_assert_contains "planted, human: lists a key" "$out" "missing  9"
t_assert_contains "planted, human: the verdict" "$out" "verification FAILED: 12 difference(s)"

verify filtered --source "$SOURCE_URL" --target "$T1" --tables "shop.pairs, big"
t_assert_eq "--tables: only those tables" "shop.big,shop.pairs" "$(r filtered '[.tables[].table] | join(",")')"
t_assert_eq "--tables: no schema difference of other tables" "0" "$(r filtered '.schema.differences | length')"
t_assert_eq "--tables: exit 1 on their differences" 1 "$RC"
verify unknown --source "$SOURCE_URL" --target "$T1" --tables "shop.customers,shop.no_such_table"
t_assert_eq "--tables: a table on neither side is a difference" "1 false no such table on either side" \
    "$RC $(r unknown .ok) $(r unknown '.tables[] | select(.table == "shop.no_such_table") | .problem | split(":")[0]')"
out=$("$PGMOVER" verify --source "$SOURCE_URL" --target "$T1" --tables shop.no_such_table 2>&1)
t_assert_contains "--tables: a table on neither side, human: no rows on either side" "$out" "- / - rows"

# ---------------------------------------------------------------------------------------
echo "# 4. sessions that default to other settings compare equal"
$TARGET_PSQL -d postgres -c "ALTER DATABASE copy2 SET TimeZone = 'Asia/Kolkata'" \
    -c "ALTER DATABASE copy2 SET DateStyle = 'SQL, DMY'" -c "ALTER DATABASE copy2 SET IntervalStyle = 'iso_8601'" \
    -c "ALTER DATABASE copy2 SET extra_float_digits = -3" -c "ALTER DATABASE copy2 SET bytea_output = 'escape'" \
    >/dev/null
$SOURCE_PSQL -d postgres -c "ALTER DATABASE appdb SET TimeZone = 'America/Los_Angeles'" \
    -c "ALTER DATABASE appdb SET DateStyle = 'German'" -c "ALTER DATABASE appdb SET IntervalStyle = 'sql_standard'" \
    -c "ALTER DATABASE appdb SET extra_float_digits = 1" >/dev/null
T2=$(tgt_url copy2)
row="SELECT ts::text || f::text || b::text || iv::text || d::text || lt::text FROM shop.verify_types WHERE id = 3"
if [[ $(q "$SOURCE_URL" "$row") != "$(q "$T2" "$row")" ]]; then
    t_ok "settings: the same row reads differently on the two sides"
else
    t_fail "settings: the same row reads differently on the two sides" "$(q "$T2" "$row")"
fi
verify settings --source "$SOURCE_URL" --target "$T2"
t_assert_eq "settings: identical databases compare equal" "0 true 0" \
    "$RC $(r settings .ok) $(r settings .mismatches)"
$SOURCE_PSQL -d postgres -c "ALTER DATABASE appdb RESET ALL" >/dev/null

echo "test_verify: ${SECONDS}s"
t_summary
