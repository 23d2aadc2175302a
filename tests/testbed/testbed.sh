#!/usr/bin/env bash
# testbed.sh - throwaway "Heroku-like" source PostgreSQL + plain target PostgreSQL
# on loopback, for integration tests and demos.
#
# Executed:
#   testbed.sh start    DIR                      create DIR, start both clusters, write DIR/env
#   testbed.sh stop     DIR                      stop both clusters, rm -rf DIR (idempotent)
#   testbed.sh createdb DIR src|dst NAME [OWNER] create another database
#                                                (default owner: app_owner on src, tgt_admin on dst)
#   testbed.sh psql     DIR src|dst [DB] [ARGS...]  psql as the postgres superuser over the
#                                                unix socket (DB defaults to appdb)
#   testbed.sh restart  DIR src|dst              pg_ctl restart -m fast (e.g. after ALTER SYSTEM)
#
# Sourced:
#   . tests/testbed/testbed.sh
#   tb_start DIR; tb_createdb DIR src NAME; tb_psql DIR dst ...; tb_restart DIR src; tb_stop DIR
#   tb_start also exports the variables of DIR/env into the calling shell.
#   The functions never call `exit`, set no traps and no shell options, and are safe
#   under a caller's `set -euo pipefail`.
#
# Layout of DIR (must be a path without whitespace/quotes; use something under /tmp so
# that the postgres user can traverse it):
#   DIR/src, DIR/dst          data directories      DIR/src.log, DIR/dst.log  server logs
#   DIR/server.crt|.key       source TLS cert/key   DIR/env                   sourceable exports
#   DIR/ca.crt                CA of client certs    DIR/client.crt|.key       shield_owner's client cert
#   DIR/.s.PGSQL.<port>       unix sockets of both clusters
#
# Environment knobs:
#   TB_SOURCE_WAL_LEVEL  wal_level of the source (default logical; e.g. replica)
#   TB_SOURCE_PRELOAD    shared_preload_libraries of the source (default pglogical;
#                        empty for a Heroku-like source: no pglogical at all)
#   TB_TARGET_ROLE       superuser (default) or owner: tgt_admin owns the target database
#                        and is no superuser (CREATEDB, REPLICATION, pg_signal_backend),
#                        like a managed target's role
#   TB_PGBIN             PostgreSQL bin dir (default /usr/lib/postgresql/15/bin, else pg_config)
#   TB_KEEP=1            `stop` stops the servers but keeps DIR (for post-mortems)
#
# DIR/env exports: TB_DIR TB_PGBIN TB_SUPERUSER_RUN SOURCE_PORT TARGET_PORT SOURCE_DATA
#   TARGET_DATA SOURCE_URL SOURCE_APP_URL SOURCE_ADMIN_URL TARGET_URL SOURCE_PSQL
#   TARGET_PSQL SOURCE_SSLROOTCERT SOURCE_OWNER_PASSWORD SOURCE_APP_PASSWORD
#   SOURCE_ADMIN_PASSWORD TARGET_ADMIN_PASSWORD
#   SOURCE_SHIELD_URL (Heroku Shield-like: database shielddb, role shield_owner, which must
#   show a client certificate: clientcert=verify-full, sslmode=verify-full) SOURCE_SHIELD_PASSWORD
#   SOURCE_CLIENT_CERT SOURCE_CLIENT_KEY
#
# Never DROP DATABASE on these clusters: it hangs with pglogical preloaded. Use
# `createdb` with a fresh name instead.

_tb_err() { printf 'testbed: %s\n' "$*" >&2; }
_tb_info() { printf 'testbed: %s\n' "$*" >&2; }

# Prefix that runs a command as the postgres OS user ("" when we already are it or
# are not root).
_tb_runner() {
    if [[ $(id -u) -eq 0 ]]; then
        printf '%s' "runuser -u postgres --"
    fi
    return 0
}

# Run a command as the cluster owner, from a directory it can read.
_tb_as_pg() {
    if [[ $(id -u) -eq 0 ]]; then
        (cd / && runuser -u postgres -- "$@")
    else
        (cd / && "$@")
    fi
}

_tb_pgbin() {
    if [[ -n ${TB_PGBIN:-} ]]; then
        printf '%s' "$TB_PGBIN"
    elif [[ -x /usr/lib/postgresql/15/bin/postgres ]]; then
        printf '%s' /usr/lib/postgresql/15/bin
    elif command -v pg_config >/dev/null 2>&1; then
        pg_config --bindir
    else
        return 1
    fi
}

# Normalise DIR to an absolute path and check that it is usable in configs/commands.
_tb_absdir() {
    local dir=$1
    if [[ -z $dir ]]; then
        _tb_err "missing DIR"
        return 1
    fi
    dir=$(realpath -m -- "$dir") || return 1
    if [[ ! $dir =~ ^/[A-Za-z0-9._/+-]+$ || $dir == / ]]; then
        _tb_err "DIR '$dir' must be an absolute path of [A-Za-z0-9._/+-] (no spaces or quotes)"
        return 1
    fi
    printf '%s' "$dir"
}

_tb_side_check() {
    case ${1:-} in
        src | dst) return 0 ;;
        *)
            _tb_err "expected src or dst, got '${1:-}'"
            return 1
            ;;
    esac
}

_tb_rand_port() {
    local r=${SRANDOM:-}
    if [[ -z $r ]]; then
        r=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
    fi
    printf '%s' $((20000 + r % 12000))
}

# Is TCP port $1 free on loopback (nothing listening on it) and not in use as a socket
# name in $2?
_tb_port_free() {
    local port=$1 dir=$2
    [[ -e $dir/.s.PGSQL.$port || -e $dir/.s.PGSQL.$port.lock ]] && return 1
    if command -v ss >/dev/null 2>&1; then
        if ss -Hltn "( sport = :$port )" 2>/dev/null | grep -q .; then
            return 1
        fi
    elif (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        return 1
    fi
    return 0
}

# Print a free port in 20000-31999 (below the Linux ephemeral range), not equal to $2.
_tb_pick_port() {
    local dir=$1 exclude=${2:-0} port i
    port=$(_tb_rand_port)
    for ((i = 0; i < 500; i++)); do
        if [[ $port -ne $exclude ]] && _tb_port_free "$port" "$dir"; then
            printf '%s' "$port"
            return 0
        fi
        port=$((port + 1))
        if [[ $port -gt 31999 ]]; then port=20000; fi
    done
    _tb_err "no free TCP port found"
    return 1
}

# Write DIR/SIDE/testbed.conf (included from postgresql.conf).
_tb_write_conf() {
    local dir=$1 side=$2 port=$3 f wal
    f=$dir/$side/testbed.conf
    wal=logical
    if [[ $side == src ]]; then wal=${TB_SOURCE_WAL_LEVEL:-logical}; fi
    {
        echo "# written by tests/testbed/testbed.sh"
        echo "port = $port"
        echo "listen_addresses = '127.0.0.1'"
        echo "unix_socket_directories = '$dir'"
        echo "cluster_name = '$dir/$side'"
        echo "max_connections = 200"
        if [[ $side == src ]]; then
            echo "shared_preload_libraries = '${TB_SOURCE_PRELOAD-pglogical}'"
        else
            echo "shared_preload_libraries = 'pglogical'"
        fi
        echo "wal_level = $wal"
        echo "max_replication_slots = 20"
        if [[ $wal == minimal ]]; then
            echo "max_wal_senders = 0"
        else
            echo "max_wal_senders = 20"
        fi
        echo "max_worker_processes = 20"
        echo "track_commit_timestamp = on"
        echo "fsync = off"
        echo "synchronous_commit = on"
        echo "full_page_writes = off"
        echo "password_encryption = 'scram-sha-256'"
        echo "log_line_prefix = '%m [%p] %q%u@%d '"
        if [[ $_TB_HAS_OPL == 1 ]]; then
            echo "output_plugin_libraries = 'pgoutput, test_decoding, pglogical_output'"
        fi
        if [[ $side == src ]]; then
            echo "ssl = on"
            echo "ssl_cert_file = '$dir/server.crt'"
            echo "ssl_key_file = '$dir/server.key'"
            echo "ssl_ca_file = '$dir/ca.crt'"
        fi
    } >"$f" || return 1
    _tb_chown "$f"
}

_tb_chown() {
    if [[ $(id -u) -eq 0 ]]; then
        chown postgres:postgres "$@" || return 1
    fi
    return 0
}

_tb_write_hba() {
    local dir=$1 side=$2 f=$1/$2/pg_hba.conf
    if [[ $side == src ]]; then
        # Heroku-like: TLS + SCRAM over TCP, plain TCP refused.
        cat >"$f" <<'EOF' || return 1
# written by tests/testbed/testbed.sh (source, Heroku-like)
local     all          all                 trust
local     replication  all                 trust
# Heroku Shield-like: shield_owner needs a client certificate signed by DIR/ca.crt, and its password
hostssl   all          shield_owner  127.0.0.1/32  scram-sha-256  clientcert=verify-full
hostssl   all          all   127.0.0.1/32  scram-sha-256
hostssl   replication  all   127.0.0.1/32  scram-sha-256
hostnossl all          all   127.0.0.1/32  reject
hostnossl replication  all   127.0.0.1/32  reject
EOF
    else
        cat >"$f" <<'EOF' || return 1
# written by tests/testbed/testbed.sh (target)
local     all          all                 trust
local     replication  all                 trust
host      all          all   127.0.0.1/32  scram-sha-256
host      replication  all   127.0.0.1/32  scram-sha-256
EOF
    fi
    _tb_chown "$f"
}

_tb_make_cert() {
    local dir=$1
    if ! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -days 3650 -subj "/CN=127.0.0.1" \
        -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
        -keyout "$dir/server.key" -out "$dir/server.crt" >"$dir/openssl.log" 2>&1; then
        _tb_err "openssl failed to create the certificate, see $dir/openssl.log"
        return 1
    fi
    # a CA for client certificates, and shield_owner's certificate (CN = the role) and key
    if ! { openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
        -subj "/CN=testbed client CA" -keyout "$dir/ca.key" -out "$dir/ca.crt" &&
        openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=shield_owner" \
            -keyout "$dir/client.key" -out "$dir/client.csr" &&
        openssl x509 -req -in "$dir/client.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
            -days 3650 -out "$dir/client.crt"; } >>"$dir/openssl.log" 2>&1; then
        _tb_err "openssl failed to create the client certificates, see $dir/openssl.log"
        return 1
    fi
    # the client key stays the caller's (libpq refuses a key others may read); the server reads ca.crt
    chmod 0600 "$dir/server.key" "$dir/client.key" "$dir/ca.key" && chmod 0644 "$dir/server.crt" "$dir/ca.crt" \
        "$dir/client.crt" && _tb_chown "$dir/server.key" "$dir/server.crt" "$dir/ca.crt"
}

# initdb + configure + start (retrying on port collisions) + create roles/databases for
# one side. Runs in a background subshell; reports the port in DIR/SIDE.port.
_tb_bring_up() {
    local dir=$1 side=$2 port=$3 pgbin=$4 locale=$5 data=$1/$2 log=$1/$2.log
    local name=source attempt before
    if [[ $side == dst ]]; then name=target; fi

    if ! _tb_as_pg "$pgbin/initdb" -D "$data" --no-sync -A trust -U postgres -E UTF8 \
        --locale="$locale" >"$dir/initdb-$side.log" 2>&1; then
        _tb_err "initdb failed for the $name, see $dir/initdb-$side.log"
        tail -n 5 "$dir/initdb-$side.log" >&2
        return 1
    fi
    if ! echo "include = 'testbed.conf'" >>"$data/postgresql.conf" || ! _tb_write_hba "$dir" "$side"; then
        _tb_err "could not write the $name configuration in $data"
        return 1
    fi
    if [[ $side == src ]] && ! _tb_make_cert "$dir"; then
        return 1
    fi

    for ((attempt = 1; ; attempt++)); do
        _tb_write_conf "$dir" "$side" "$port" || {
            _tb_err "could not write $data/testbed.conf"
            return 1
        }
        before=0
        if [[ -f $log ]]; then before=$(stat -c %s "$log"); fi
        if _tb_as_pg "$pgbin/pg_ctl" -D "$data" -l "$log" -w -t 60 -s start \
            >"$dir/pg_ctl-$side.log" 2>&1; then
            break
        fi
        if [[ $attempt -lt 10 ]] && tail -c +$((before + 1)) "$log" 2>/dev/null |
            grep -Eq 'could not bind|Address already in use|could not create any TCP/IP sockets|lock file .* already exists|could not create lock file'; then
            _tb_info "$name: port $port busy, retrying on another port"
            port=$(_tb_pick_port "$dir" "$port") || return 1
            continue
        fi
        _tb_err "could not start the $name server, see $log"
        tail -n 10 "$log" >&2 2>/dev/null
        return 1
    done
    echo "$port" >"$dir/$side.port" || return 1

    local psql=("$pgbin/psql" -h "$dir" -p "$port" -U postgres -d postgres -X -q -v ON_ERROR_STOP=1)
    local sql
    if [[ $side == src ]]; then
        sql="CREATE ROLE app_owner LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD '$_TB_PW_OWNER';
GRANT pg_signal_backend TO app_owner;
CREATE ROLE app_user LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD '$_TB_PW_APP';
CREATE ROLE src_admin LOGIN SUPERUSER PASSWORD '$_TB_PW_SRCADMIN';
CREATE ROLE shield_owner LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD '$_TB_PW_SHIELD';
GRANT pg_signal_backend TO shield_owner;
CREATE DATABASE shielddb OWNER shield_owner;
CREATE DATABASE appdb OWNER app_owner;
GRANT CONNECT ON DATABASE appdb TO app_user;"
    else
        # TB_TARGET_ROLE=owner: a managed target's role (RDS, Cloud SQL): it owns the
        # database, may replicate and end sessions, and is no superuser
        if [[ ${TB_TARGET_ROLE:-superuser} == owner ]]; then
            sql="CREATE ROLE tgt_admin LOGIN NOSUPERUSER CREATEDB NOCREATEROLE REPLICATION PASSWORD '$_TB_PW_TGTADMIN';
GRANT pg_signal_backend TO tgt_admin;
CREATE DATABASE appdb OWNER tgt_admin;"
        else
            sql="CREATE ROLE tgt_admin LOGIN SUPERUSER PASSWORD '$_TB_PW_TGTADMIN';
CREATE DATABASE appdb OWNER tgt_admin;"
        fi
    fi
    if ! printf '%s\n' "$sql" | _tb_as_pg "${psql[@]}" >"$dir/setup-$side.log" 2>&1; then
        _tb_err "creating roles/databases on the $name failed, see $dir/setup-$side.log"
        tail -n 5 "$dir/setup-$side.log" >&2
        return 1
    fi
    return 0
}

# Stop one cluster: fast, then immediate after 30 s, then SIGKILL.
_tb_stop_cluster() {
    local dir=$1 side=$2 pgbin=$3 data=$1/$2 pid i
    [[ -f $data/postmaster.pid ]] || return 0
    pid=$(head -n 1 "$data/postmaster.pid" 2>/dev/null) || pid=
    if _tb_as_pg "$pgbin/pg_ctl" -D "$data" -m fast -w -t 30 -s stop >/dev/null 2>&1; then
        return 0
    fi
    if [[ ! $pid =~ ^[0-9]+$ ]] || ! kill -0 "$pid" 2>/dev/null; then
        return 0 # stale pid file: nothing runs
    fi
    _tb_info "$data: fast shutdown did not finish, using immediate"
    if _tb_as_pg "$pgbin/pg_ctl" -D "$data" -m immediate -w -t 10 -s stop >/dev/null 2>&1; then
        return 0
    fi
    if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$data"; then
        _tb_info "$data: killing postmaster $pid"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    # Backends exit on their own once they notice the postmaster is gone; wait for them
    # (they carry cluster_name = DATA in their process title).
    for ((i = 0; i < 100; i++)); do
        if ! kill -0 "$pid" 2>/dev/null && ! pgrep -f -- "postgres: $data:" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    _tb_err "processes of $data are still running"
    return 1
}

tb_start() {
    if [[ $# -ne 1 ]]; then
        _tb_err "usage: tb_start DIR"
        return 2
    fi
    local dir pgbin run locale sp dp srcpid dstpid rc_src=0 rc_dst=0 wal
    dir=$(_tb_absdir "$1") || return 1
    if [[ -e $dir && ! -d $dir ]]; then
        _tb_err "$dir exists and is not a directory"
        return 1
    fi
    if [[ -d $dir && -n $(ls -A "$dir" 2>/dev/null) ]]; then
        _tb_err "$dir is not empty"
        return 1
    fi
    pgbin=$(_tb_pgbin) || {
        _tb_err "PostgreSQL binaries not found (set TB_PGBIN)"
        return 1
    }
    local b
    for b in initdb pg_ctl postgres psql; do
        if [[ ! -x $pgbin/$b ]]; then
            _tb_err "$pgbin/$b not found (set TB_PGBIN)"
            return 1
        fi
    done
    wal=${TB_SOURCE_WAL_LEVEL:-logical}
    case $wal in
        minimal | replica | logical) ;;
        *)
            _tb_err "TB_SOURCE_WAL_LEVEL must be minimal, replica or logical, got '$wal'"
            return 1
            ;;
    esac
    if [[ $(id -u) -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
        _tb_err "running as root but there is no 'postgres' OS user"
        return 1
    fi

    mkdir -p -- "$dir" || {
        _tb_err "cannot create $dir"
        return 1
    }
    : >"$dir/.testbed" || return 1
    if ! { chmod 0755 "$dir" && _tb_chown "$dir" "$dir/.testbed"; }; then
        _tb_err "cannot chown $dir to postgres"
        return 1
    fi
    if ! _tb_as_pg test -w "$dir" -a -x "$dir"; then
        _tb_err "$dir is not writable/traversable by the postgres user (use a directory under /tmp)"
        return 1
    fi
    run=$(_tb_runner)

    locale=C
    if locale -a 2>/dev/null | grep -qixE 'C\.utf-?8'; then locale=C.UTF-8; fi

    _TB_HAS_OPL=0
    if _tb_as_pg "$pgbin/postgres" --describe-config 2>/dev/null | grep '^output_plugin_libraries[[:space:]]' >/dev/null; then
        _TB_HAS_OPL=1
    fi
    if ! { _TB_PW_OWNER=$(openssl rand -hex 12) && _TB_PW_APP=$(openssl rand -hex 12) &&
        _TB_PW_SRCADMIN=$(openssl rand -hex 12) && _TB_PW_TGTADMIN=$(openssl rand -hex 12) &&
        _TB_PW_SHIELD=$(openssl rand -hex 12); }; then
        _tb_err "openssl rand failed"
        return 1
    fi

    sp=$(_tb_pick_port "$dir") || return 1
    dp=$(_tb_pick_port "$dir" "$sp") || return 1

    _tb_bring_up "$dir" src "$sp" "$pgbin" "$locale" &
    srcpid=$!
    _tb_bring_up "$dir" dst "$dp" "$pgbin" "$locale" &
    dstpid=$!
    wait "$srcpid" || rc_src=$?
    wait "$dstpid" || rc_dst=$?
    if [[ $rc_src -ne 0 || $rc_dst -ne 0 ]]; then
        _tb_err "start failed; stopping whatever runs (logs stay in $dir; '$(basename -- "${BASH_SOURCE[0]}") stop $dir' removes it)"
        _tb_stop_cluster "$dir" src "$pgbin" || true
        _tb_stop_cluster "$dir" dst "$pgbin" || true
        return 1
    fi
    sp=$(<"$dir/src.port") && dp=$(<"$dir/dst.port") || return 1

    local psqlcmd=${run:+$run }"$pgbin/psql -h $dir -p"
    local qflags="-d appdb -U postgres -X -q -v ON_ERROR_STOP=1"
    {
        _tb_export_lines \
            TB_DIR "$dir" \
            TB_PGBIN "$pgbin" \
            TB_SUPERUSER_RUN "$run" \
            SOURCE_PORT "$sp" \
            TARGET_PORT "$dp" \
            SOURCE_DATA "$dir/src" \
            TARGET_DATA "$dir/dst" \
            SOURCE_URL "postgres://app_owner:$_TB_PW_OWNER@127.0.0.1:$sp/appdb?sslmode=require" \
            SOURCE_APP_URL "postgres://app_user:$_TB_PW_APP@127.0.0.1:$sp/appdb?sslmode=require" \
            SOURCE_ADMIN_URL "postgres://src_admin:$_TB_PW_SRCADMIN@127.0.0.1:$sp/appdb?sslmode=require" \
            TARGET_URL "postgres://tgt_admin:$_TB_PW_TGTADMIN@127.0.0.1:$dp/appdb" \
            SOURCE_PSQL "$psqlcmd $sp $qflags" \
            TARGET_PSQL "$psqlcmd $dp $qflags" \
            SOURCE_SSLROOTCERT "$dir/server.crt" \
            SOURCE_SHIELD_URL "postgres://shield_owner:$_TB_PW_SHIELD@127.0.0.1:$sp/shielddb?sslmode=verify-full&sslrootcert=$dir/server.crt&sslcert=$dir/client.crt&sslkey=$dir/client.key" \
            SOURCE_SHIELD_PASSWORD "$_TB_PW_SHIELD" \
            SOURCE_CLIENT_CERT "$dir/client.crt" \
            SOURCE_CLIENT_KEY "$dir/client.key" \
            SOURCE_OWNER_PASSWORD "$_TB_PW_OWNER" \
            SOURCE_APP_PASSWORD "$_TB_PW_APP" \
            SOURCE_ADMIN_PASSWORD "$_TB_PW_SRCADMIN" \
            TARGET_ADMIN_PASSWORD "$_TB_PW_TGTADMIN"
    } >"$dir/env" || {
        _tb_err "cannot write $dir/env"
        return 1
    }
    unset _TB_PW_OWNER _TB_PW_APP _TB_PW_SRCADMIN _TB_PW_TGTADMIN _TB_PW_SHIELD _TB_HAS_OPL
    chmod 0644 "$dir/env" || true
    # shellcheck disable=SC1091
    . "$dir/env" || return 1
    _tb_info "source (TLS, wal_level=$wal) on 127.0.0.1:$sp, target on 127.0.0.1:$dp; env: $dir/env"
    return 0
}

tb_stop() {
    if [[ $# -ne 1 ]]; then
        _tb_err "usage: tb_stop DIR"
        return 2
    fi
    local dir pgbin p1 p2 rc=0
    dir=$(_tb_absdir "$1") || return 1
    [[ -e $dir ]] || return 0
    if [[ ! -f $dir/.testbed ]]; then
        if [[ -d $dir && -z $(ls -A "$dir" 2>/dev/null) ]]; then
            rmdir -- "$dir" 2>/dev/null || true
            return 0
        fi
        _tb_err "$dir is not a testbed directory (no .testbed marker); refusing to delete it"
        return 1
    fi
    pgbin=$(_tb_pgbin) || {
        _tb_err "PostgreSQL binaries not found (set TB_PGBIN)"
        return 1
    }
    _tb_stop_cluster "$dir" src "$pgbin" &
    p1=$!
    _tb_stop_cluster "$dir" dst "$pgbin" &
    p2=$!
    wait "$p1" || rc=1
    wait "$p2" || rc=1
    if [[ $rc -ne 0 ]]; then
        _tb_err "could not stop every server in $dir; leaving it in place"
        return 1
    fi
    if [[ ${TB_KEEP:-0} == 1 ]]; then
        _tb_info "servers stopped, keeping $dir (TB_KEEP=1)"
        return 0
    fi
    rm -rf -- "$dir" || {
        _tb_err "cannot remove $dir"
        return 1
    }
    return 0
}

# Print `export NAME='VALUE'` for each NAME VALUE pair.
_tb_export_lines() {
    local q="'" v
    while [[ $# -ge 2 ]]; do
        v=${2//$q/$q\\$q$q}
        printf "export %s='%s'\n" "$1" "$v"
        shift 2
    done
}

# Port of a side, from DIR/SIDE.port.
_tb_port() {
    local dir=$1 side=$2 port
    if [[ ! -f $dir/$side.port ]]; then
        _tb_err "no running testbed $side in $dir (missing $dir/$side.port)"
        return 1
    fi
    port=$(<"$dir/$side.port") || return 1
    printf '%s' "$port"
}

tb_createdb() {
    if [[ $# -lt 3 || $# -gt 4 ]]; then
        _tb_err "usage: tb_createdb DIR src|dst NAME [OWNER]"
        return 2
    fi
    local dir side=$2 name=$3 owner=${4:-} port pgbin
    dir=$(_tb_absdir "$1") || return 1
    _tb_side_check "$side" || return 2
    if [[ -z $owner ]]; then
        if [[ $side == src ]]; then owner=app_owner; else owner=tgt_admin; fi
    fi
    port=$(_tb_port "$dir" "$side") || return 1
    pgbin=$(_tb_pgbin) || return 1
    if ! printf 'CREATE DATABASE :"tb_name" OWNER :"tb_owner";\n' |
        _tb_as_pg "$pgbin/psql" -h "$dir" -p "$port" -U postgres -d postgres -X -q \
            -v ON_ERROR_STOP=1 -v "tb_name=$name" -v "tb_owner=$owner"; then
        _tb_err "createdb $name on $side failed"
        return 1
    fi
    return 0
}

tb_psql() {
    if [[ $# -lt 2 ]]; then
        _tb_err "usage: tb_psql DIR src|dst [DB] [psql args...]"
        return 2
    fi
    local dir side=$2 db=appdb port pgbin
    dir=$(_tb_absdir "$1") || return 1
    _tb_side_check "$side" || return 2
    shift 2
    if [[ $# -gt 0 && $1 != -* ]]; then
        db=$1
        shift
    fi
    port=$(_tb_port "$dir" "$side") || return 1
    pgbin=$(_tb_pgbin) || return 1
    _tb_as_pg "$pgbin/psql" -h "$dir" -p "$port" -U postgres -d "$db" -X -q -v ON_ERROR_STOP=1 "$@"
}

tb_restart() {
    if [[ $# -ne 2 ]]; then
        _tb_err "usage: tb_restart DIR src|dst"
        return 2
    fi
    local dir side=$2 pgbin
    dir=$(_tb_absdir "$1") || return 1
    _tb_side_check "$side" || return 2
    pgbin=$(_tb_pgbin) || return 1
    if ! _tb_as_pg "$pgbin/pg_ctl" -D "$dir/$side" -l "$dir/$side.log" -m fast -w -t 60 -s restart \
        >"$dir/pg_ctl-$side.log" 2>&1; then
        _tb_err "restart of $side failed, see $dir/$side.log"
        tail -n 10 "$dir/$side.log" >&2 2>/dev/null
        return 1
    fi
    return 0
}

_tb_usage() {
    cat >&2 <<'EOF'
usage: testbed.sh start    DIR
       testbed.sh stop     DIR
       testbed.sh createdb DIR src|dst NAME [OWNER]
       testbed.sh psql     DIR src|dst [DB] [psql args...]
       testbed.sh restart  DIR src|dst
EOF
}

_tb_main() {
    local cmd=${1:-}
    if [[ $# -gt 0 ]]; then shift; fi
    case $cmd in
        start) tb_start "$@" ;;
        stop) tb_stop "$@" ;;
        createdb) tb_createdb "$@" ;;
        psql) tb_psql "$@" ;;
        restart) tb_restart "$@" ;;
        -h | --help | help)
            _tb_usage
            return 0
            ;;
        *)
            _tb_usage
            return 2
            ;;
    esac
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    # Executed as a command. The functions above check every step explicitly (they must
    # also work when sourced into shells with or without errexit), so no `set -e` here.
    set -uo pipefail
    _tb_main "$@"
    exit $?
fi
