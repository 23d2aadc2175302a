#!/usr/bin/env bash
# test_plan_and_file.sh — the preflight (pgmover plan) on real servers, each
# blocker with its finding and fix, and a backup file (pg_dump -Fc, as
# heroku pg:backups:download gives) as a job's source, end to end.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh
. tests/integration/pgmd.sh
t_prereq test_plan_and_file pgmoverd pgmover

work=$(t_tmpdir)
bed="$work/bed"
cleanup() {
    pgmd_stop >/dev/null 2>&1
    tests/testbed/testbed.sh stop "$bed" >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT
tests/testbed/testbed.sh start "$bed" >/dev/null || { t_fail "test bed" "could not start"; t_summary; exit 1; }
. "$bed/env"
tb() { tests/testbed/testbed.sh "$@"; }
dst_url() { echo "postgres://tgt_admin:$TARGET_ADMIN_PASSWORD@127.0.0.1:$TARGET_PORT/$1"; }
P="$PGM_BUILD/pgmover"

psql -X -q "$SOURCE_URL" -v ON_ERROR_STOP=1 <<'SQL'
CREATE TABLE items (id bigserial PRIMARY KEY, name text, price numeric(10,2));
INSERT INTO items (name, price) SELECT 'item ' || g, g / 7.0 FROM generate_series(1, 50000) g;
CREATE TABLE "Audit Log" (at timestamptz DEFAULT now(), what text);
INSERT INTO "Audit Log" (what) SELECT 'event ' || g FROM generate_series(1, 1000) g;
SQL

# ---- plan: a clean pair passes, read-only ----
tb createdb "$bed" dst plan_ok >/dev/null
out=$("$P" plan --source "$SOURCE_URL" --target "$(dst_url plan_ok)")
rc=$?
t_assert_eq "plan on a good pair exits 0" 0 "$rc"
t_assert_contains "plan reports TLS to the source" "$out" "TLS to the source: the connection to the source is encrypted"
t_assert_contains "plan recommends dump for a small database" "$out" "recommended method: dump"
t_assert_contains "plan lists the largest tables" "$out" "public.items"
json=$("$P" plan --json --source "$SOURCE_URL" --target "$(dst_url plan_ok)")
t_assert_contains "plan --json has the estimate" "$json" '"estimate"'
t_assert_eq "plan --json: the daemon's envelope, ok and the report as result" "true object" \
    "$(jq -r '"\(.ok) \(.result | type)"' <<<"$json")"
t_assert_eq "plan touched nothing on the target" 0 \
    "$($TARGET_PSQL -d plan_ok -Atc "select count(*) from pg_class where relkind = 'r' and relnamespace = 'public'::regnamespace")"

# ---- plan: blockers ----
$TARGET_PSQL -d plan_ok -c "create table leftover (x int)" >/dev/null
out=$("$P" plan --source "$SOURCE_URL" --target "$(dst_url plan_ok)")
t_assert_eq "non-empty target exits 1" 1 "$?"
t_assert_contains "non-empty target is named with a fix" "$out" "the target database already holds 1 table(s)"
out=$("$P" plan --source "$SOURCE_URL" --target "$(dst_url plan_ok)" --set overwrite_target=on)
t_assert_eq "overwrite_target=on turns it into a warning" 0 "$?"

psql -X -q "$SOURCE_ADMIN_URL" -c "create table secret (x int)" >/dev/null
tb createdb "$bed" dst plan_two >/dev/null
out=$("$P" plan --source "$SOURCE_URL" --target "$(dst_url plan_two)")
t_assert_eq "an unreadable table exits 1" 1 "$?"
t_assert_contains "the unreadable table is named" "$out" "cannot read 1 object(s): public.secret"
psql -X -q "$SOURCE_ADMIN_URL" -c "drop table secret" >/dev/null
# a large object of another role: pg_dump and the verification could not read it
lo=$(psql -X -qAt "$SOURCE_ADMIN_URL" -c "select lo_from_bytea(0, 'not yours')")
out=$("$P" plan --source "$SOURCE_URL" --target "$(dst_url plan_two)")
t_assert_eq "an unreadable large object exits 1" 1 "$?"
t_assert_contains "the unreadable large object is named" "$out" "cannot read 1 object(s): large object $lo"
t_assert_contains "the unreadable large object: the fix says how" "$out" "GRANT SELECT ON LARGE OBJECT"
psql -X -q "$SOURCE_ADMIN_URL" -c "grant select on large object $lo to app_owner" >/dev/null
out=$("$P" plan --source "$SOURCE_URL" --target "$(dst_url plan_two)")
t_assert_eq "a large object granted: readable, exit 0" 0 "$?"
t_assert_contains "a large object: said in the plan" "$out" "the source holds 1 large object(s)"
psql -X -q "$SOURCE_ADMIN_URL" -c "select lo_unlink($lo)" >/dev/null

psql -X -q "$SOURCE_ADMIN_URL" -c "create extension pgcrypto" >/dev/null
tb createdb "$bed" dst plan_three >/dev/null
out=$("$P" plan --source "$SOURCE_URL" --target "$(dst_url plan_three)")
t_assert_contains "extensions used on the source are listed" "$out" "extensions used on the source: pgcrypto"
# an extension the target cannot provide: pretend with one only the source knows
psql -X -q "$SOURCE_ADMIN_URL" -c "drop extension pgcrypto" >/dev/null

out=$("$P" plan --source "postgres://app_owner:wrong@127.0.0.1:$SOURCE_PORT/appdb?sslmode=require" \
    --target "postgres://nobody@127.0.0.1:1/x")
t_assert_eq "unreachable servers exit 1" 1 "$?"
t_assert_contains "a wrong password is said" "$out" "password authentication failed"
t_assert_contains "a wrong password: the fix names user and password" "$out" "check the user and password"
t_assert_contains "a closed port is said" "$out" "Connection refused"
t_assert_contains "a closed port: the fix names host and port" "$out" "check the host and port"
out=$("$P" plan --source "${SOURCE_URL/sslmode=require/sslmode=disable}" --target "$(dst_url plan_three)" 2>&1)
t_assert_contains "a non-TLS connection to the Heroku-like source is refused and said" "$out" "no encryption"
t_assert_contains "a non-TLS connection: the fix names sslmode" "$out" "Heroku needs sslmode=require"
# verify-full with no root certificate: libpq's refusal, and what to do about it
out=$(HOME="$work" "$P" plan --source "${SOURCE_URL/sslmode=require/sslmode=verify-full}" --target "$(dst_url plan_three)" 2>&1)
t_assert_contains "verify-full without a root certificate is refused and said" "$out" "root certificate file"
t_assert_contains "verify-full without a root certificate: the fix names sslrootcert" "$out" "sslrootcert="
# TLS to the target: the loopback needs none; over TLS, whether the certificate is checked
out=$("$P" plan --source "$SOURCE_URL" --target "$(dst_url plan_three)" 2>&1)
t_assert_contains "a target on the loopback: no TLS needed" "$out" "TLS to the target: the target is on this machine"
tls_target="${SOURCE_ADMIN_URL%%\?*}?sslmode=verify-full&sslrootcert=$SOURCE_SSLROOTCERT"
out=$("$P" plan --source "$SOURCE_URL" --target "$tls_target" 2>&1)
t_assert_contains "a target over verify-full: encrypted and checked" "$out" \
    "TLS to the target: the connection to the target is encrypted and the server's certificate checked"
out=$("$P" plan --source "$SOURCE_URL" --target "$SOURCE_ADMIN_URL" 2>&1)
t_assert_contains "a target over sslmode=require: the unchecked certificate is said" "$out" \
    "the server's certificate is not checked (sslmode=require)"
t_assert_contains "a target over sslmode=require: the fix names verify-full" "$out" "sslmode=verify-full"
"$P" plan --target x >/dev/null 2>&1
t_assert_eq "plan without --source is a usage error" 2 "$?"

# ---- a backup file as the source ----
dump="$work/latest.dump"
# names pg_dump quotes: parentheses and spaces, a newline (its COPY statement goes over two
# lines), a carriage return; and a partitioned table (for --load-via-partition-root)
psql -X -q "$SOURCE_URL" -v ON_ERROR_STOP=1 <<'SQL'
CREATE TABLE "Odd (x)" (a int, "b (c)" text);
INSERT INTO "Odd (x)" SELECT g, 'odd ' || g FROM generate_series(1, 7) g;
DO $$ BEGIN
  EXECUTE format('CREATE TABLE %I (v text)', E'line\nbreak');
  EXECUTE format('INSERT INTO %I SELECT ''row '' || g FROM generate_series(1, 11) g', E'line\nbreak');
  EXECUTE format('CREATE TABLE %I (v int)', E'c\rr');
  EXECUTE format('INSERT INTO %I SELECT generate_series(1, 13)', E'c\rr');
END $$;
CREATE TABLE parted (k int, v text) PARTITION BY RANGE (k);
CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (10);
CREATE TABLE parted_2 PARTITION OF parted FOR VALUES FROM (10) TO (20);
INSERT INTO parted SELECT g, 'v' FROM generate_series(0, 19) g;
SQL
# large objects in the backup: one of several 16 KB lowrite() calls, one small
mapfile -t los < <(psql -X -qAt "$SOURCE_URL" -c "select lo_from_bytea(0, decode(repeat('ab', 40000), 'hex'))
    union all select lo_from_bytea(0, 'small') order by 1")
PGPASSWORD=$SOURCE_OWNER_PASSWORD "$TB_PGBIN/pg_dump" -Fc -f "$dump" "$SOURCE_URL"
psql -X -q "$SOURCE_URL" -c "select lo_unlink(oid) from pg_largeobject_metadata" >/dev/null
pgmd_start "$work/daemon" || { t_fail "daemon" "did not start"; t_summary; exit 1; }
tb createdb "$bed" dst from_file >/dev/null
pgm create hk --source "file:$dump" --target "$(dst_url from_file)" --method dump >/dev/null
t_assert_eq "a job with a file source is created" created "$(pgmd_state hk)"
pgm create bad --source "file:$work/nope.dump" --target "$(dst_url from_file)" --method dump >/dev/null 2>&1
t_assert_eq "a missing file is refused at create" 1 "$?"
echo "not a dump" > "$work/junk.dump"
tb createdb "$bed" dst from_junk >/dev/null
pgm create junk --source "file:$work/junk.dump" --target "$(dst_url from_junk)" --method dump >/dev/null
pgm start junk >/dev/null
pgmd_wait_state junk failed 60 || t_fail "junk file" "did not fail"
t_assert_contains "a file that is no archive fails with a clear message" "$(pgm status junk)" "is not a pg_dump archive"

pgm start hk >/dev/null
pgmd_wait_state hk synced 120 || t_fail "file restore" "did not reach synced: $(pgm status hk | head -20)"
t_assert_contains "status -v shows the archive's database" "$(pgm status hk -v)" "dbname: appdb"
pgm freeze hk >/dev/null
pgmd_wait_state hk verified 120 || t_fail "file verify" "did not reach verified: $(pgm status hk | head -30)"
t_assert_eq "rows restored from the file" 50000 "$($TARGET_PSQL -d from_file -Atc 'select count(*) from items')"
t_assert_eq "quoted table restored from the file" 1000 "$($TARGET_PSQL -d from_file -Atc 'select count(*) from "Audit Log"')"
t_assert_contains "verification counted the archive's rows" "$(pgm --json status hk)" '"method":"archive_row_counts"'
t_assert_eq "the archive's large objects restored and checked by OID and size" "true 2 2" \
    "$(pgm --json status hk | jq -r '.result.verify.tables[] | select(.table == "pg_catalog.pg_largeobject") | "\(.match) \(.source_rows) \(.target_rows)"')"
odd_rows() {
    $TARGET_PSQL -d "$1" -Atc "select (select count(*) from \"Odd (x)\") || ' ' || (select count(*) from \"line
break\") || ' ' || (select count(*) from \"c$(printf '\r')r\")"
}
t_assert_eq "tables with odd names restored from the file" "7 11 13" "$(odd_rows from_file)"
t_assert_eq "each odd name verified by its rows in the archive, each as its table" \
    "public.\"Odd (x)\":7:7:true public.\"c\\rr\":13:13:true public.\"line\\nbreak\":11:11:true" \
    "$(pgm --json status hk | jq -r '[.result.verify.tables[] | select(.table | test("Odd|line|c\r")) |
        "\(.table | gsub("\n"; "\\n") | gsub("\r"; "\\r")):\(.source_rows):\(.target_rows):\(.match)"] | sort | join(" ")')"
t_assert_eq "every table data entry of the archive verified" \
    "$(PGPASSWORD=$SOURCE_OWNER_PASSWORD "$TB_PGBIN/pg_restore" -l "$dump" | grep -c '^[0-9]*; [0-9]* [0-9]* TABLE DATA ')" \
    "$(pgm --json status hk | jq '[.result.verify.tables[] | select(.table != "pg_catalog.pg_largeobject")] | length')"

# a difference planted on the target is found by counting the archive again
$TARGET_PSQL -d from_file -c "delete from items where id <= 3" -c "select lo_unlink(${los[1]})" \
    -c "select lo_put(${los[0]}, 80000, 'more')" >/dev/null
pgm verify hk >/dev/null
pgmd_wait_state hk verify_failed 120 || t_fail "file verify_failed" "not found: $(pgm status hk | head -30)"
t_assert_contains "the differing table is named" "$(pgm --json status hk)" '"table":"public.items","source_rows":50000,"target_rows":49997'
t_assert_eq "the differing large objects are named by OID" "${los[0]}:changed ${los[1]}:missing" \
    "$(pgm --json status hk | jq -r '[.result.verify.tables[] | select(.table == "pg_catalog.pg_largeobject") | .differences.keys[] | "\(.key):\(.kind)"] | sort | join(" ")')"
pgm abort hk >/dev/null
pgmd_wait_state hk aborted 60 || t_fail "abort" "did not abort"
t_assert_eq "abort cleaned the target" 0 \
    "$($TARGET_PSQL -d from_file -Atc "select count(*) from pg_class where relkind = 'r' and relnamespace = 'public'::regnamespace")"

# archives whose rows cannot be counted per table: restored, then a clear failure, not verified
for kind in inserts load-via-partition-root; do
    PGPASSWORD=$SOURCE_OWNER_PASSWORD "$TB_PGBIN/pg_dump" -Fc --$kind -f "$work/$kind.dump" "$SOURCE_URL"
    tb createdb "$bed" dst "from_$kind" >/dev/null
    pgm create "$kind" --source "file:$work/$kind.dump" --target "$(dst_url "from_$kind")" --method dump >/dev/null
    pgm start "$kind" >/dev/null
    pgmd_wait_state "$kind" synced 120 || t_fail "$kind archive" "not synced: $(pgm status "$kind" | head -20)"
    t_assert_eq "a --$kind archive is restored" "50000 7" \
        "$($TARGET_PSQL -d "from_$kind" -Atc "select (select count(*) from items) || ' ' || (select count(*) from \"Odd (x)\")")"
    pgm freeze "$kind" >/dev/null
    pgmd_wait_state "$kind" failed 120 || t_fail "$kind archive" "did not fail: $(pgm status "$kind" | head -20)"
    t_assert_eq "a --$kind archive is never verified" "" \
        "$(pgm --json status "$kind" | jq -r '.result.verify.ok // empty')"
done
out=$(pgm status inserts)
t_assert_contains "--inserts: the failure says why" "$out" "INSERT statements"
t_assert_contains "--inserts: the failure says it cannot be verified" "$out" "cannot be verified by row counts"
t_assert_contains "--inserts: the fix is the default custom format" "$out" "default custom format"
out=$(pgm status load-via-partition-root)
t_assert_contains "--load-via-partition-root: the failure says why" "$out" \
    "through their root table public.parted (pg_dump --load-via-partition-root)"
t_assert_contains "--load-via-partition-root: the fix" "$out" "without --load-via-partition-root"
for kind in inserts load-via-partition-root; do pgm abort "$kind" >/dev/null; done

# ---- freeze_roles: the application's role is frozen too, and thawed exactly ----
tb createdb "$bed" dst roles >/dev/null
pgm create rj --source "$SOURCE_URL" --target "$(dst_url roles)" --method dump --set rehearsal=off \
    --set freeze_roles=app_owner >/dev/null
pgm start rj >/dev/null
pgmd_wait_state rj synced 120 || t_fail "freeze_roles job" "not synced: $(pgm status rj | head -20)"
role_settings() {
    $SOURCE_PSQL -Atc "select coalesce(r.rolname, '(database)') || ':' || array_to_string(s.setconfig, ',')
                       from pg_db_role_setting s left join pg_roles r on r.oid = s.setrole
                       where s.setdatabase = (select oid from pg_database where datname = 'appdb') order by 1"
}
pgm freeze rj >/dev/null
pgmd_wait_state rj verified 120 || t_fail "freeze_roles freeze" "not verified: $(pgm status rj | head -30)"
t_assert_eq "freeze sets the database and the listed role read-only" \
    "(database):default_transaction_read_only=on app_owner:default_transaction_read_only=on" \
    "$(role_settings | tr '\n' ' ' | sed 's/ $//')"
pgm thaw rj >/dev/null
pgmd_wait_state rj synced 60 || t_fail "freeze_roles thaw" "not synced"
t_assert_eq "thaw removes both settings" "" "$(role_settings)"
psql -X -q "$SOURCE_URL" -c "insert into items (name) values ('after thaw')" >/dev/null
t_assert_eq "the source is writable after thaw" 0 "$?"
# another role's settings need CREATEROLE, which Heroku's credential lacks: a clear failure, nothing left behind
tb createdb "$bed" dst roles2 >/dev/null
pgm create rk --source "$SOURCE_URL" --target "$(dst_url roles2)" --method dump --set rehearsal=off \
    --set freeze_roles=app_user >/dev/null
pgm start rk >/dev/null
pgmd_wait_state rk synced 120 || t_fail "freeze_roles other" "not synced"
pgm freeze rk >/dev/null
pgmd_wait_state rk failed 60 || t_fail "freeze_roles other" "did not fail: $(pgm status rk | head -20)"
t_assert_contains "a role the credential may not alter is said" "$(pgm status rk)" "permission denied"
pgm abort rk >/dev/null
pgmd_wait_state rk aborted 60 || t_fail "abort after a failed freeze" "not aborted"
t_assert_eq "abort undid the database setting" "" "$(role_settings)"

t_summary
