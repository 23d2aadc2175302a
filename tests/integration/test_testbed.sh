#!/usr/bin/env bash
# Integration test of tests/testbed/testbed.sh: a Heroku-like TLS source and a plain
# target come up on loopback with the expected roles, settings and pglogical, and go
# away completely on stop. Run as root (or postgres).
set -uo pipefail # no -e: each check reports and the summary decides the exit status

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TB=$ROOT/tests/testbed/testbed.sh
# shellcheck source=tests/integration/lib.sh
. "$HERE/lib.sh"
t_need_server test_testbed

BED1=$(t_tmpdir)/bed || exit 1
BED2=$(t_tmpdir)/bed || exit 1
JUNK=$(t_tmpdir) || exit 1

cleanup() {
    "$TB" stop "$BED1" || true
    "$TB" stop "$BED2" || true
    rm -rf -- "$JUNK" "$(dirname "$BED1")" "$(dirname "$BED2")"
}
trap cleanup EXIT

# q URL SQL: one query over TCP, unaligned tuples only.
q() { "$TB_PGBIN/psql" "$1" -X -q -tA -v ON_ERROR_STOP=1 -c "$2" 2>&1; }

# --- refusals on bad directories -------------------------------------------------------
touch "$JUNK/precious"
out=$("$TB" start "$JUNK" 2>&1)
rc=$?
t_check "start refuses a non-empty DIR" test "$rc" -ne 0
t_assert_contains "start on a non-empty DIR says why" "$out" "is not empty"
"$TB" stop "$JUNK" 2>/dev/null
rc=$?
if [[ $rc -ne 0 && -f $JUNK/precious ]]; then
    t_ok "stop refuses to delete a non-testbed DIR"
else
    t_fail "stop refuses to delete a non-testbed DIR" "rc=$rc"
fi

# --- bed 1: defaults -----------------------------------------------------------------
t0=${EPOCHREALTIME/[.,]/}
if ! "$TB" start "$BED1"; then
    t_fail "start" "testbed.sh start $BED1 failed"
    t_summary
    exit 1
fi
t1=${EPOCHREALTIME/[.,]/}
t_ok "start ($(((t1 - t0) / 1000)) ms)"
# shellcheck source=/dev/null
. "$BED1/env"

for v in TB_DIR TB_PGBIN SOURCE_PORT TARGET_PORT SOURCE_URL SOURCE_APP_URL SOURCE_ADMIN_URL \
    TARGET_URL SOURCE_PSQL TARGET_PSQL SOURCE_SSLROOTCERT; do
    t_check "env has $v" test -n "${!v:-}"
done
t_assert_eq "TB_DIR" "$BED1" "$TB_DIR"
if [[ $(id -u) -eq 0 ]]; then
    t_assert_eq "TB_SUPERUSER_RUN" "runuser -u postgres --" "$TB_SUPERUSER_RUN"
fi
t_check "ports differ" test "$SOURCE_PORT" != "$TARGET_PORT"
t_assert_eq "server.key mode/owner" "600 postgres" "$(stat -c '%a %U' "$BED1/server.key")"
for f in src.log dst.log; do
    t_check "$f written" test -s "$BED1/$f"
done

# Source: TLS, SCRAM, Heroku-like roles.
t_assert_eq "source via SOURCE_URL uses TLS" "t" \
    "$(q "$SOURCE_URL" 'select ssl from pg_stat_ssl where pid = pg_backend_pid()')"
t_assert_eq "SOURCE_URL is app_owner" "app_owner" "$(q "$SOURCE_URL" 'select current_user')"
out=$(q "${SOURCE_URL/sslmode=require/sslmode=disable}" 'select 1')
rc=$?
t_check "non-TLS connection to source refused" test "$rc" -ne 0 || t_detail "got: $out"
t_assert_contains "non-TLS refusal comes from pg_hba" "$out" "no encryption"
out=$(q "${SOURCE_URL/:$SOURCE_OWNER_PASSWORD@/:wrong@}" 'select 1')
rc=$?
t_check "wrong password refused" test "$rc" -ne 0 || t_detail "got: $out"
t_assert_contains "wrong password: auth failure" "$out" "password authentication failed"
verify="sslmode=verify-full&sslrootcert=$SOURCE_SSLROOTCERT"
t_assert_eq "source cert verifies (verify-full)" "t" \
    "$(q "${SOURCE_URL/sslmode=require/"$verify"}" \
        'select ssl from pg_stat_ssl where pid = pg_backend_pid()')"
# Heroku Shield-like: shield_owner must show a client certificate, and its password
t_assert_eq "shield: a client certificate and a password let shield_owner in" "true shield_owner" \
    "$(q "$SOURCE_SHIELD_URL" "select ssl::text || ' ' || client_dn from pg_stat_ssl where pid = pg_backend_pid()" |
        sed 's|/CN=||; s|^CN=||')"
out=$(q "${SOURCE_SHIELD_URL%%&sslcert=*}" 'select 1')
t_check "shield: no client certificate, refused" test $? -ne 0
t_assert_contains "shield: the refusal says a certificate is required" "$out" "certificate"
t_assert_eq "app_owner is not superuser" "f" \
    "$(q "$SOURCE_URL" "select rolsuper from pg_roles where rolname = 'app_owner'")"
t_assert_eq "app_owner owns appdb" "app_owner" \
    "$(q "$SOURCE_URL" "select pg_get_userbyid(datdba) from pg_database where datname = 'appdb'")"
t_assert_eq "app_owner is member of pg_signal_backend" "t" \
    "$(q "$SOURCE_URL" "select pg_has_role('app_owner', 'pg_signal_backend', 'member')")"
t_assert_eq "app_owner can create tables in appdb" "1" \
    "$(q "$SOURCE_URL" "create table tb_probe(id int primary key); insert into tb_probe values (1); select count(*) from tb_probe")"
t_assert_eq "SOURCE_APP_URL is app_user, no superuser" "app_user|off|t" \
    "$(q "$SOURCE_APP_URL" "select current_user, current_setting('is_superuser'), ssl from pg_stat_ssl where pid = pg_backend_pid()")"
t_assert_eq "SOURCE_ADMIN_URL is superuser over TLS" "src_admin|on|t" \
    "$(q "$SOURCE_ADMIN_URL" "select current_user, current_setting('is_superuser'), ssl from pg_stat_ssl where pid = pg_backend_pid()")"
t_assert_eq "SOURCE_PSQL runs as postgres in appdb" "postgres|appdb" \
    "$($SOURCE_PSQL -tA -c 'select current_user, current_database()')"

# Target.
t_assert_eq "target via TARGET_URL" "tgt_admin|on|appdb" \
    "$(q "$TARGET_URL" "select current_user, current_setting('is_superuser'), current_database()")"
t_assert_eq "tgt_admin owns target appdb" "tgt_admin" \
    "$(q "$TARGET_URL" "select pg_get_userbyid(datdba) from pg_database where datname = 'appdb'")"
t_assert_eq "target appdb is empty" "0" \
    "$(q "$TARGET_URL" "select count(*) from pg_class where relnamespace = 'public'::regnamespace")"
t_assert_eq "TARGET_PSQL runs as postgres in appdb" "postgres|appdb" \
    "$($TARGET_PSQL -tA -c 'select current_user, current_database()')"

# Settings on both sides.
for side in SOURCE TARGET; do
    psqlv=${side}_PSQL
    show() { ${!psqlv} -tA -c "show $1"; }
    t_assert_eq "$side wal_level" "logical" "$(show wal_level)"
    # a setting of PostgreSQL's 2026 security releases; an older server has none to set
    if [[ -n $(${!psqlv} -tA -c "select 1 from pg_settings where name = 'output_plugin_libraries'") ]]; then
        t_assert_contains "$side output_plugin_libraries" "$(show output_plugin_libraries)" "pglogical_output"
    else
        t_ok "$side output_plugin_libraries (this server has no such setting: every plugin may be used)"
    fi
    t_assert_contains "$side shared_preload_libraries" "$(show shared_preload_libraries)" "pglogical"
    t_assert_eq "$side settings" "on|20|20|20|200|off|off|on|127.0.0.1|scram-sha-256|$BED1" \
        "$(${!psqlv} -tA -c "select string_agg(current_setting(n), '|' order by o) from unnest(array[
            'track_commit_timestamp','max_replication_slots','max_wal_senders','max_worker_processes',
            'max_connections','fsync','full_page_writes','synchronous_commit','listen_addresses',
            'password_encryption','unix_socket_directories']) with ordinality as s(n, o)")"
done
t_assert_eq "source ssl" "on" "$($SOURCE_PSQL -tA -c 'show ssl')"
t_assert_eq "target ssl" "off" "$($TARGET_PSQL -tA -c 'show ssl')"

# createdb + pglogical on both sides.
for side in src dst; do
    db=tb_ext_$side
    t_check "createdb $side" "$TB" createdb "$BED1" "$side" "$db"
    out=$("$TB" psql "$BED1" "$side" "$db" -tA -c 'create extension pglogical' \
        -c "select extname from pg_extension where extname = 'pglogical'" 2>&1)
    t_assert_eq "create extension pglogical on $side" "pglogical" "$out"
done
t_assert_eq "createdb default owner src" "app_owner" \
    "$("$TB" psql "$BED1" src -tA -c "select pg_get_userbyid(datdba) from pg_database where datname = 'tb_ext_src'")"
t_assert_eq "createdb default owner dst" "tgt_admin" \
    "$("$TB" psql "$BED1" dst -tA -c "select pg_get_userbyid(datdba) from pg_database where datname = 'tb_ext_dst'")"
"$TB" createdb "$BED1" src tb_owned_by_app_user app_user
t_assert_eq "createdb with OWNER" "app_user" \
    "$("$TB" psql "$BED1" src postgres -tA -c "select pg_get_userbyid(datdba) from pg_database where datname = 'tb_owned_by_app_user'")"
# The output_plugin_libraries setting really admits pglogical_output.
t_assert_eq "pglogical_output slot can be created on source" "tb_slot" \
    "$("$TB" psql "$BED1" src tb_ext_src -tA \
        -c "select slot_name from pg_create_logical_replication_slot('tb_slot', 'pglogical_output')" \
        -c "select pg_drop_replication_slot('tb_slot')" 2>&1 | head -n 1)"
t_assert_eq "pglogical supervisor runs on source" "1" \
    "$($SOURCE_PSQL -tA -c "select count(*) from pg_stat_activity where backend_type = 'pglogical supervisor'")"

# Stop.
t_check "stop" "$TB" stop "$BED1"
t_check "DIR removed" test ! -e "$BED1"
procs=$(pgrep -af -- "$BED1/" || true)
t_assert_eq "no postgres process of DIR left" "" "$procs"
t_check "second stop is a no-op" "$TB" stop "$BED1"

# --- bed 2: sourced API under set -euo pipefail, source without logical decoding ------
out=$(
    set -euo pipefail
    # shellcheck source=tests/testbed/testbed.sh
    . "$TB"
    TB_SOURCE_WAL_LEVEL=replica tb_start "$BED2" 2>/dev/null
    printf '%s,' "$($SOURCE_PSQL -tA -c 'show wal_level')" "$($TARGET_PSQL -tA -c 'show wal_level')"
    tb_stop "$BED2"
    echo finished
)
t_assert_eq "TB_SOURCE_WAL_LEVEL=replica (sourced tb_start/tb_stop)" "replica,logical,finished" "$out"
t_check "bed 2 removed" test ! -e "$BED2"

t_summary
