#!/usr/bin/env bash
# test_access.sh — who may do what over the control socket, with real users:
#   - pgmoverd runs as a user of its own (not root); admin_users names one user,
#     admin_group a group another is a supplementary member of; a fourth user, in
#     the socket's group only, runs the read-only commands and is refused every
#     command that changes something (permission_denied, the uid named, how to
#     grant it, the config file the daemon read), each refusal audited in the job's
#     trail or, with no job, in state_dir/audit.jsonl; SIGHUP grants it
#   - socket_mode 0666 refused at start and by --check
#   - a second pgmoverd on the same state_dir refused, naming the pid of the first
#   - a truncated and an unreadable state.json: the jobs are listed as corrupt, every
#     command on them gets job_corrupt, create of the name is refused (the secrets
#     untouched), delete --force archives the folder and frees the name
# No PostgreSQL server is needed: no job is started. The users and groups it makes
# (pgmacc_*) are removed at the end.
#
# Run from the repository root as root (it creates users and runs pgmoverd as one):
#   PGM_BUILD=/path/to/meson/build bash tests/integration/test_access.sh
# KEEP=1 keeps the temporary directory (daemon log, state) for a post-mortem.
set -uo pipefail # no -e: every check reports and the summary decides the exit status

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PGM_BUILD=${PGM_BUILD:-build}
if [[ $PGM_BUILD != /* ]]; then PGM_BUILD=$(cd "$PGM_BUILD" 2>/dev/null && pwd) || PGM_BUILD=$ROOT/build; fi
PGMOVER=$PGM_BUILD/pgmover
PGMOVERD=$PGM_BUILD/pgmoverd

# shellcheck source=tests/integration/lib.sh
. "$HERE/lib.sh"

[[ $(id -u) -eq 0 ]] || t_skip test_access "run as root: it creates users and runs pgmoverd as one of them"
t_need_cmd test_access jq runuser setpriv useradd userdel groupadd groupdel truncate
for b in "$PGMOVER" "$PGMOVERD"; do
    [[ -x $b ]] || {
        echo "test_access: $b not built (meson setup BUILD && ninja -C BUILD, and set PGM_BUILD)" >&2
        exit 1
    }
done

USERS=(pgmacc_d pgmacc_u pgmacc_g pgmacc_r)
GROUPS_MADE=(pgmacc_sock pgmacc_adm)
T=$(t_tmpdir) || exit 1
D=$T/d
SOCK=$D/sock
STATE=$D/state
CONF=$D/pgmoverd.conf
DPID=

remove_users() {
    local u g
    for u in "${USERS[@]}"; do
        if id "$u" >/dev/null 2>&1; then userdel "$u" >/dev/null 2>&1; fi
    done
    for g in "${GROUPS_MADE[@]}"; do
        if getent group "$g" >/dev/null; then groupdel "$g" >/dev/null 2>&1; fi
    done
}

cleanup() {
    if [[ -n $DPID ]]; then
        kill -KILL "$DPID" 2>/dev/null
        wait "$DPID" 2>/dev/null
    fi
    remove_users
    if [[ ${KEEP:-0} == 1 ]]; then
        echo "# kept $T"
    else
        rm -rf -- "$T"
    fi
}
trap cleanup EXIT

# run CMD...: OUT, ERR and RC of it
run() {
    "$@" >"$T/run.out" 2>"$T/run.err"
    RC=$?
    OUT=$(<"$T/run.out")
    ERR=$(<"$T/run.err")
}
# as USER ARGS...: the CLI as that user, against the test daemon
as() {
    local u=$1
    shift
    run runuser -u "$u" -- "$PGMOVER" -s "$SOCK" "$@"
}
# count_audit FILE JQ_FILTER: lines of the audit file the filter selects
count_audit() {
    if [[ -f $1 ]]; then jq -c "select($2)" "$1" | wc -l; else echo 0; fi
}

# the daemon, as pgmacc_d with its primary group pgmacc_sock (the socket's group)
start_daemon() {
    setpriv --reuid=pgmacc_d --regid=pgmacc_sock --init-groups "$PGMOVERD" -c "$CONF" >>"$D/pgmoverd.log" 2>&1 &
    DPID=$!
    t_wait_for 10 test -S "$SOCK" && t_wait_for 10 "$PGMOVER" -s "$SOCK" version
}
stop_daemon() {
    local rc
    kill -TERM "$DPID"
    wait "$DPID"
    rc=$?
    DPID=
    return $rc
}

# --- users: the daemon's, an admin by name, an admin by group, a reader -----------------------
remove_users # left over from an interrupted run
make_users() {
    groupadd pgmacc_sock || return 1
    groupadd pgmacc_adm || return 1
    useradd -M -N -s /usr/sbin/nologin -g pgmacc_sock pgmacc_d || return 1
    useradd -M -N -s /usr/sbin/nologin -G pgmacc_sock pgmacc_u || return 1
    useradd -M -N -s /usr/sbin/nologin -G pgmacc_sock,pgmacc_adm pgmacc_g || return 1
    useradd -M -N -s /usr/sbin/nologin -G pgmacc_sock pgmacc_r
}
if ! make_users; then
    t_fail "users and groups created" "groupadd or useradd failed"
    t_summary
    exit 1
fi
UID_D=$(id -u pgmacc_d)
UID_R=$(id -u pgmacc_r)
UID_U=$(id -u pgmacc_u)
t_ok "users created (daemon uid $UID_D, reader uid $UID_R)"

mkdir -p "$D"
chown pgmacc_d:pgmacc_sock "$D"
chmod 0750 "$D"
write_conf() {
    {
        echo "socket_path = $SOCK"
        echo "state_dir = $STATE"
        echo "log_level = debug"
        echo "admin_users = pgmacc_u"
        echo "admin_group = pgmacc_adm"
        local line
        for line in "$@"; do echo "$line"; done
    } >"$CONF"
    chmod 0644 "$CONF"
}
write_conf

# --- socket_mode more open than 0660 -----------------------------------------------------------
write_conf "socket_mode = 0666"
run "$PGMOVERD" -c "$CONF" --check
t_assert_eq "--check: socket_mode 0666 refused (exit 2)" 2 "$RC"
t_assert_contains "--check: ... says why" "$ERR" "socket_mode 0666 is more open than 0660"
run setpriv --reuid=pgmacc_d --regid=pgmacc_sock --init-groups timeout 10 "$PGMOVERD" -c "$CONF"
t_assert_eq "start with socket_mode 0666 refused (exit 2)" 2 "$RC"
t_assert_contains "... the file named, and what to use" "$ERR" "$CONF: socket_mode 0666 is more open than 0660"
t_assert_contains "... and what to use instead" "$ERR" "use 0660"
t_check "... no socket was made" test ! -e "$SOCK"
write_conf "admin_users = pgmacc_u, no_such_user_pgmacc"
run "$PGMOVERD" -c "$CONF" --check
t_assert_eq "--check: an admin_users name no user has (exit 2)" 2 "$RC"
t_assert_contains "--check: ... named" "$ERR" "no user named \"no_such_user_pgmacc\""
write_conf

# --- the daemon, not root ----------------------------------------------------------------------
if ! start_daemon; then
    t_fail "pgmoverd starts as pgmacc_d" "$(tail -5 "$D/pgmoverd.log")"
    t_summary
    exit 1
fi
t_ok "pgmoverd starts as pgmacc_d (pid $DPID)"
t_assert_eq "the daemon runs as pgmacc_d" "$UID_D" "$(stat -c %u "/proc/$DPID")"
t_assert_eq "the socket is 0660, group pgmacc_sock" "660 pgmacc_sock" "$(stat -c '%a %G' "$SOCK")"
t_assert_eq "the lock file holds the daemon's pid" "$DPID" "$(tr -d '\n' <"$STATE/pgmoverd.pid")"

SRC="postgres://u:secret@127.0.0.1:1/a"
DST="postgres://u:pw@127.0.0.1:2/b"

# read-only commands: open to the reader
for c in version jobs describe status; do
    as pgmacc_r "$c"
    t_assert_eq "reader: $c allowed (exit 0)" 0 "$RC"
done

# a create from the reader: refused, said why and how to grant it, audited by the daemon
as pgmacc_r create shop --source "$SRC" --target "$DST" --method dump
t_assert_eq "reader: create refused (exit 1)" 1 "$RC"
t_assert_contains "... the uid named" "$ERR" "permission denied: pgmacc_r (uid $UID_R) may not run \"create\""
t_assert_contains "... who may" "$ERR" "admin_users (pgmacc_u) and the members of admin_group (pgmacc_adm)"
t_assert_contains "... how to grant it, in the file the daemon read" "$ERR" "add the user to admin_users, or to the group named by admin_group, in $CONF"
t_assert_contains "... and what needs no grant" "$ERR" "the read-only commands (version, describe, jobs, status, watch, events) need no grant"
as pgmacc_r --json create shop --source "$SRC" --target "$DST" --method dump
t_assert_eq "reader: create --json: code permission_denied" "permission_denied" "$(jq -r .error.code <<<"$OUT")"
t_assert_eq "... audited in state_dir/audit.jsonl with the uid (both attempts)" 2 \
    "$(count_audit "$STATE/audit.jsonl" ".job == \"shop\" and .command == \"create\" and .uid == $UID_R and .outcome == \"refused: permission_denied\"")"
t_check "... and no job folder was made" test ! -e "$STATE/shop"
t_assert_contains "... and logged" "$(<"$D/pgmoverd.log")" "refused \"create\" of job shop from pgmacc_r (uid $UID_R)"

# admin_users and admin_group may
as pgmacc_u create shop --source "$SRC" --target "$DST" --method dump
t_assert_eq "admin_users: create allowed" 0 "$RC" || t_detail "$ERR"
as pgmacc_g set shop --set jobs=3
t_assert_eq "admin_group (supplementary): set allowed" 0 "$RC" || t_detail "$ERR"
as pgmacc_d set shop --set jobs=4
t_assert_eq "pgmoverd's own user: set allowed" 0 "$RC" || t_detail "$ERR"
run "$PGMOVER" -s "$SOCK" set shop --set jobs=5
t_assert_eq "root: set allowed" 0 "$RC" || t_detail "$ERR"
as pgmacc_u create mall --source "$SRC" --target "$DST" --method dump
as pgmacc_u create park --source "$SRC" --target "$DST" --method dump

# every command that changes something: refused to the reader, audited in the job's trail
n=0
for c in start freeze thaw verify cutover rollback finish abort retry delete; do
    as pgmacc_r --json "$c" shop
    if [[ $RC -eq 1 && $(jq -r .error.code <<<"$OUT") == permission_denied ]]; then n=$((n + 1)); else echo "# $c: rc $RC $OUT"; fi
done
as pgmacc_r --json set shop --set jobs=9
if [[ $RC -eq 1 && $(jq -r .error.code <<<"$OUT") == permission_denied ]]; then n=$((n + 1)); fi
t_assert_eq "reader: the 11 commands that change a job are refused with permission_denied" 11 "$n"
t_assert_eq "... each audited in the job's trail with the reader's uid" 11 \
    "$(count_audit "$STATE/shop/audit.jsonl" ".command != null and .uid == $UID_R and .outcome == \"refused: permission_denied\" and .from == \"created\"")"
as pgmacc_r --json status shop
t_assert_eq "... and the job did not move, nor its options" "created 5" "$(jq -r '.result | "\(.state) \(.options.jobs)"' <<<"$OUT")"
as pgmacc_r --json create nojob --source "$SRC" --target "$DST" --method dump
as pgmacc_r --json start nojob
t_assert_eq "reader: start of a job that does not exist: permission_denied too" "permission_denied" "$(jq -r .error.code <<<"$OUT")"
t_assert_eq "... audited by the daemon" 1 \
    "$(count_audit "$STATE/audit.jsonl" ".job == \"nojob\" and .command == \"start\" and .uid == $UID_R")"

# SIGHUP: the reader added to admin_users may from then on
write_conf "admin_users = pgmacc_u, $UID_R"
kill -HUP "$DPID"
t_check "SIGHUP: reloaded" t_wait_for 10 grep -q "admin_users \"pgmacc_u, $UID_R\"" "$D/pgmoverd.log"
as pgmacc_r set shop --set jobs=6
t_assert_eq "after the reload the reader (by uid) may set" 0 "$RC" || t_detail "$ERR"
write_conf
kill -HUP "$DPID"
t_wait_for 10 grep -q "admin_users \"pgmacc_u\", admin_group" "$D/pgmoverd.log"

# --- a second daemon on the same state_dir -----------------------------------------------------
sed "s|^socket_path = .*|socket_path = $D/sock2|" "$CONF" >"$D/second.conf"
chmod 0644 "$D/second.conf"
run setpriv --reuid=pgmacc_d --regid=pgmacc_sock --init-groups timeout 10 "$PGMOVERD" -c "$D/second.conf"
t_assert_eq "a second daemon on the same state_dir refuses (exit 1)" 1 "$RC"
t_assert_contains "... naming the pid that holds the lock" "$ERR" "is in use by another pgmoverd (pid $DPID holds the lock on \"$STATE/pgmoverd.pid\")"
t_check "... it opened no socket" test ! -e "$D/sock2"
as pgmacc_r version
t_assert_eq "... and the first still answers" 0 "$RC"

# --- corrupt state: a truncated state.json, an unreadable one ----------------------------------
stop_daemon
t_assert_eq "SIGTERM: exit 0" 0 "$?"
cp "$STATE/shop/secrets.json" "$T/shop-secrets.json"
truncate -s 0 "$STATE/shop/state.json"
chmod 000 "$STATE/park/state.json"
if ! start_daemon; then
    t_fail "pgmoverd starts with corrupt jobs" "$(tail -5 "$D/pgmoverd.log")"
    t_summary
    exit 1
fi
t_ok "pgmoverd starts with two corrupt jobs"
t_assert_contains "the log says which job, what is wrong and what to do" "$(<"$D/pgmoverd.log")" \
    "job shop is corrupt and was not loaded: \"$STATE/shop/state.json\" is empty (0 bytes): it was truncated; restore the file, or archive the folder with \"pgmover delete --force shop\""
as pgmacc_r --json jobs
t_assert_eq "jobs: shop and park corrupt, mall created" "mall:created park:corrupt shop:corrupt" \
    "$(jq -r '[.result.jobs[] | "\(.name):\(.state)"] | sort | join(" ")' <<<"$OUT")"
t_assert_contains "jobs: park's message says why" "$(jq -r '.result.jobs[] | select(.name == "park") | .error.message' <<<"$OUT")" \
    "could not read \"$STATE/park/state.json\": Permission denied"
as pgmacc_r jobs
t_assert_contains "jobs (human): shop's problem under the table" "$OUT" "shop: job \"shop\" is corrupt and was not loaded"
t_assert_contains "jobs (human): ... and the way out" "$OUT" "pgmover delete --force shop"
as pgmacc_r --json status shop
t_assert_eq "status shop: job_corrupt (exit 1)" "1 job_corrupt" "$RC $(jq -r .error.code <<<"$OUT")"
t_assert_contains "... the hint says how to recover" "$(jq -r .error.hint <<<"$OUT")" "restore $STATE/shop/state.json"
for c in start abort thaw retry; do
    as pgmacc_u --json "$c" shop
    t_assert_eq "admin: $c shop: job_corrupt" "1 job_corrupt" "$RC $(jq -r .error.code <<<"$OUT")"
done
as pgmacc_u --json create shop --source "postgres://x:other@127.0.0.1:7/x" --target "$DST" --method dump
t_assert_eq "admin: create shop refused: job_corrupt" "1 job_corrupt" "$RC $(jq -r .error.code <<<"$OUT")"
t_check "... its secrets.json is untouched" cmp -s "$T/shop-secrets.json" "$STATE/shop/secrets.json"
t_assert_eq "... its state.json still empty" 0 "$(stat -c %s "$STATE/shop/state.json")"
as pgmacc_u delete shop
t_assert_eq "admin: delete shop without --force: refused (exit 1)" 1 "$RC"
t_assert_contains "... pointing at --force" "$ERR" "pgmover delete --force shop"
as pgmacc_r delete --force shop
t_assert_eq "reader: delete --force refused (exit 1)" 1 "$RC"
t_assert_contains "... permission denied" "$ERR" "permission denied: pgmacc_r"
t_assert_eq "... audited by the daemon" 1 \
    "$(count_audit "$STATE/audit.jsonl" ".job == \"shop\" and .command == \"delete\" and .uid == $UID_R and .outcome == \"refused: permission_denied\"")"
as pgmacc_u delete --force shop
t_assert_eq "admin: delete --force shop (exit 0)" 0 "$RC" || t_detail "$ERR"
t_assert_eq "... says deleted" "shop: deleted" "$OUT"
archived=$(find "$STATE/.deleted" -mindepth 1 -maxdepth 1 -name 'shop.*' -type d 2>/dev/null)
t_check "... the folder is archived in state_dir/.deleted" test -n "$archived" -a ! -e "$STATE/shop"
t_check "... with its secrets, not removed" cmp -s "$T/shop-secrets.json" "$archived/secrets.json"
t_assert_eq "... audited in the folder's trail and the daemon's" "1 1" \
    "$(count_audit "$archived/audit.jsonl" ".command == \"delete --force\" and .uid == $UID_U") $(count_audit "$STATE/audit.jsonl" ".command == \"delete --force\" and .uid == $UID_U and (.outcome | startswith(\"ok: corrupt folder archived\"))")"
as pgmacc_u create shop --source "$SRC" --target "$DST" --method dump
t_assert_eq "the name is free again: create shop" 0 "$RC" || t_detail "$ERR"
as pgmacc_r --json jobs
t_assert_eq "jobs: shop created anew, park still corrupt" "mall:created park:corrupt shop:created" \
    "$(jq -r '[.result.jobs[] | "\(.name):\(.state)"] | sort | join(" ")' <<<"$OUT")"

stop_daemon
t_assert_eq "SIGTERM: exit 0" 0 "$?"
t_summary
