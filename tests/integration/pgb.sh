# shellcheck shell=bash
# pgb.sh - a pgbouncer (Debian's) in front of the test bed's source, for the suites that
# cut over through it (test_cutover, test_matrix). Source it after lib.sh and the bed's env.
#
#   free_port                       # a loopback TCP port nothing listens on
#   pgb_start DIR DB                # pgbouncer on a free port, transaction pooling, one entry
#                                   # DB (to the source's DB as app_owner) in DIR/pgmover-DB.ini,
#                                   # which the main file %includes and pgmover may own
#   pgb_admin SQL                   # a command on its admin console
#   pgb_entry                       # "host:port paused" of the entry, from SHOW DATABASES
#   pgb_stop                        # for a test's EXIT trap
#
# pgb_start sets PGB_DIR, PGB_PORT, PGB_DB, PGB_INCLUDE (the entry's file), BOUNCER_URL (the
# application's URL through it) and ADMIN_URL (the admin console, its password in a passfile:
# job options are kept in state.json). PGBOUNCER names the binary (default /usr/sbin/pgbouncer).

PGBOUNCER=${PGBOUNCER:-/usr/sbin/pgbouncer}
PGB_DIR=

free_port() {
    local p i
    for ((i = 0; i < 200; i++)); do
        p=$((33000 + (RANDOM % 4000)))
        if ! ss -Hlntu "( sport = :$p )" 2>/dev/null | grep -q .; then
            printf '%s' "$p"
            return 0
        fi
    done
    return 1
}

pgb_admin() { PGPASSWORD=adminpw "$TB_PGBIN/psql" -h 127.0.0.1 -p "$PGB_PORT" -U pgbadmin -X -q -tA pgbouncer -c "$1" 2>&1; }
pgb_entry() { pgb_admin "SHOW DATABASES" | awk -F'|' -v db="$PGB_DB" '$1 == db { print $2 ":" $3 " " $12 }'; }

# pgb_start DIR DB: returns 1 (the log's last lines on stderr) when it does not answer
pgb_start() {
    PGB_DIR=$1
    PGB_DB=$2
    PGB_PORT=$(free_port) || return 1
    PGB_INCLUDE=$PGB_DIR/pgmover-$PGB_DB.ini
    mkdir -p "$PGB_DIR"
    cat >"$PGB_DIR/pgbouncer.ini" <<EOF
[databases]
%include $PGB_INCLUDE

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGB_PORT
unix_socket_dir =
auth_type = plain
auth_file = $PGB_DIR/userlist.txt
admin_users = pgbadmin
pool_mode = transaction
default_pool_size = 10
server_tls_sslmode = prefer
logfile = $PGB_DIR/pgbouncer.log
pidfile = $PGB_DIR/pgbouncer.pid
EOF
    printf '[databases]\n%s = host=127.0.0.1 port=%s dbname=%s user=app_owner password=%s pool_size=10\n' \
        "$PGB_DB" "$SOURCE_PORT" "$PGB_DB" "$SOURCE_OWNER_PASSWORD" >"$PGB_INCLUDE"
    printf '"pgbadmin" "adminpw"\n"app_owner" "%s"\n' "$SOURCE_OWNER_PASSWORD" >"$PGB_DIR/userlist.txt"
    chmod 0600 "$PGB_DIR"/*.ini "$PGB_DIR/userlist.txt"
    [[ $(id -u) -eq 0 ]] && chown -R postgres:postgres "$PGB_DIR"
    printf '127.0.0.1:%s:pgbouncer:pgbadmin:adminpw\n' "$PGB_PORT" >"$PGB_DIR.pgpass"
    chmod 0600 "$PGB_DIR.pgpass"
    BOUNCER_URL="postgres://app_owner:$SOURCE_OWNER_PASSWORD@127.0.0.1:$PGB_PORT/$PGB_DB"
    ADMIN_URL="postgres://pgbadmin@127.0.0.1:$PGB_PORT/pgbouncer?passfile=$PGB_DIR.pgpass"
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$PGBOUNCER" -d "$PGB_DIR/pgbouncer.ini" >"$PGB_DIR.start.log" 2>&1
    else
        "$PGBOUNCER" -d "$PGB_DIR/pgbouncer.ini" >"$PGB_DIR.start.log" 2>&1
    fi || { cat "$PGB_DIR.start.log" >&2; return 1; }
    t_wait_for 10 pgb_admin "SHOW VERSION" || {
        tail -5 "$PGB_DIR/pgbouncer.log" >&2
        return 1
    }
}

pgb_stop() {
    [[ -n $PGB_DIR && -f $PGB_DIR/pgbouncer.pid ]] || return 0
    kill "$(<"$PGB_DIR/pgbouncer.pid")" 2>/dev/null
    return 0
}
