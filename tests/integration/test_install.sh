#!/usr/bin/env bash
# test_install.sh — meson install, as a packager or an operator runs it: a fresh
# build directory (--prefix=/usr) installed into a temporary DESTDIR, then
#   - every file there, with its mode, and nothing else;
#   - one config path everywhere: the daemon's built-in default, the client's
#     hint, the unit's ExecStart, the man pages, the README;
#   - the man pages render without warnings and list every command and setting;
#   - systemd-analyze verify passes on the unit (a copy whose ExecStart is the
#     DESTDIR's pgmoverd) and security rates it as the README says; its sandbox
#     lets pgmoverd write the paths the documented features write, and no more;
#   - the installed pgmoverd, with the installed config, as an unprivileged user
#     in a mount namespace that is read-only but for the unit's writable paths,
#     takes a dump job through pgbouncer to completed (the include file rewritten
#     in the unit's include directory), and stops cleanly;
#   - bash completion completes commands, options, states and that daemon's jobs;
#   - systemd-sysusers and systemd-tmpfiles --root accept the entries.
# Needs root (the mount namespace), meson, man-db, groff, systemd, bash-completion,
# and for the migration the test bed (PostgreSQL 15) and pgbouncer.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh
NAME=test_install

if [[ $(id -u) -ne 0 ]]; then
    t_skip "$NAME" "run as root: the installed daemon runs in a read-only mount namespace (unshare -m)"
fi
t_need_cmd "$NAME" meson ninja man groff systemd-analyze systemd-sysusers systemd-tmpfiles unshare
[[ -f /usr/share/bash-completion/bash_completion ]] ||
    t_skip "$NAME" "bash-completion is not installed (scripts/deps.sh installs it)"
t_need_cmd "$NAME" jq setpriv ss
[[ -x /usr/sbin/pgbouncer ]] || t_skip "$NAME" "pgbouncer is not installed (scripts/deps.sh installs it)"
t_need_server "$NAME"
id nobody >/dev/null 2>&1 && getent group nogroup >/dev/null || t_skip "$NAME" "no nobody user or nogroup group"
. tests/integration/pgmd.sh
. tests/integration/jobs.sh

work=$(mktemp -d /tmp/pgmover-install.XXXXXX)
chmod 0755 "$work"
B=$work/build R=$work/root
cleanup() {
    if [[ ${PGM_TEST_KEEP:-0} == 1 ]]; then echo "kept $work" >&2; else rm -rf -- "$work"; fi
}
trap cleanup EXIT
CONF=/etc/pgmover/pgmoverd.conf

# --- the install --------------------------------------------------------------

install_tree() {
    meson setup "$B" --prefix=/usr -Dtests=false >"$work/install.log" 2>&1 &&
        ninja -C "$B" >>"$work/install.log" 2>&1 &&
        meson install -C "$B" --no-rebuild --destdir "$R" >>"$work/install.log" 2>&1
}
t_check "meson setup --prefix=/usr, build and install --destdir from a fresh build directory" install_tree ||
    { t_detail "$(tail -30 "$work/install.log")"; t_summary; exit 1; }

expected="755 usr/bin/pgmover
755 usr/sbin/pgmoverd
644 etc/pgmover/pgmoverd.conf
644 usr/lib/systemd/system/pgmoverd.service
644 usr/lib/sysusers.d/pgmover.conf
644 usr/lib/tmpfiles.d/pgmover.conf
644 usr/share/man/man1/pgmover.1
644 usr/share/man/man5/pgmoverd.conf.5
644 usr/share/man/man8/pgmoverd.8
644 usr/share/bash-completion/completions/pgmover"
installed=$(cd "$R" && find . -type f -o -type l | sed 's|^\./||' | xargs stat -c '%a %n' | sort -k2)
t_assert_eq "every file installed with its mode, and nothing else" "$(sort -k2 <<<"$expected")" "$installed"

# --- one config path everywhere -------------------------------------------------

t_assert_contains "pgmoverd's built-in default config is $CONF" "$("$R/usr/sbin/pgmoverd" --help)" "(default $CONF)"
unit=$(cat "$R/usr/lib/systemd/system/pgmoverd.service")
t_assert_contains "the unit runs the installed pgmoverd with $CONF" "$unit" "ExecStart=/usr/sbin/pgmoverd -c $CONF"
hint=$("$R/usr/bin/pgmover" -s "$work/no-such.sock" jobs 2>&1)
t_assert_contains "pgmover's hint for a daemon it cannot reach names $CONF" "$hint" "pgmoverd -c $CONF"
for page in man8/pgmoverd.8 man5/pgmoverd.conf.5 man1/pgmover.1; do
    t_assert_contains "$page names $CONF" "$(cat "$R/usr/share/man/$page")" "$CONF"
done
# a check that README.md (or its Install section, with a third argument) holds TEXT
readme_has() {
    local text
    if [[ -n ${2:-} ]]; then text=$(sed -n '/^## Install/,/^## [A-Z]/p' README.md); else text=$(cat README.md); fi
    grep -qF -- "$1" <<<"$text"
}
t_check "README starts pgmoverd with $CONF" readme_has "pgmoverd -c $CONF"
t_assert_eq "README names no other pgmoverd.conf path (but the default prefix's)" "" \
    "$(grep -oE '(^|[^[:alnum:]_./])/[[:alnum:]_./-]*/pgmoverd\.conf' README.md | sed 's|^[^/]||' | grep -vxE "$CONF|/usr/local/etc/pgmover/pgmoverd\.conf" | sort -u)"
check_conf() { "$R/usr/sbin/pgmoverd" -c "$R$CONF" --check >/dev/null; }
t_check "the installed config validates (pgmoverd --check)" check_conf

# the settings' defaults, the installed config, the client, the unit and tmpfiles.d agree
describe=$("$R/usr/sbin/pgmoverd" --describe-config)
default_of() { awk -F'\t' -v n="$1" '$1 == "daemon" && $2 == n { print $4 }' <<<"$describe"; }
conf_value() { sed -nE "s/^$1 *= *(.*)$/\1/p" "$R$CONF"; }
sock=$(default_of socket_path) state=$(default_of state_dir)
# the installed file shows every setting: set to its default, or as a commented example
unlisted= differs=
while IFS=$'\037' read -r _ n _ d _; do
    v=$(sed -nE "s/^$n = (.*)$/\1/p" "$R$CONF")
    grep -qE "^#?$n = " "$R$CONF" || unlisted+=" $n"
    [[ -z $v || $v == "$d" ]] || differs+=" $n=$v($d)"
done < <(tr '\t' '\037' <<<"$describe")
t_assert_eq "the installed config shows every setting" "" "$unlisted"
t_assert_eq "the installed config sets each to its default" "" "$differs"
t_assert_eq "installed config's socket_path is the default" "$sock" "$(conf_value socket_path)"
t_assert_eq "installed config's state_dir is the default" "$state" "$(conf_value state_dir)"
t_assert_contains "pgmover's default socket is pgmoverd's" "$("$R/usr/bin/pgmover" help)" "else $sock)"
t_assert_eq "the unit's RuntimeDirectory= holds socket_path" "/run/$(sed -n 's/^RuntimeDirectory=//p' <<<"$unit")" \
    "$(dirname "$sock")"
t_assert_eq "the unit's StateDirectory= is state_dir" "/var/lib/$(sed -n 's/^StateDirectory=//p' <<<"$unit")" "$state"
tmpfiles=$(cat "$R/usr/lib/tmpfiles.d/pgmover.conf")
t_assert_contains "tmpfiles.d makes socket_path's directory for pgmover" "$tmpfiles" "d $(dirname "$sock") "
t_assert_contains "tmpfiles.d makes state_dir for pgmover" "$tmpfiles" "d $state "

# --- man pages -------------------------------------------------------------------

render() { MANWIDTH=80 LC_ALL=C.UTF-8 man --warnings -E UTF-8 -l "$1" 2>"$work/man.err"; }
for page in man1/pgmover.1 man5/pgmoverd.conf.5 man8/pgmoverd.8; do
    f=$R/usr/share/man/$page
    out=$(render "$f")
    t_assert_eq "man -l $page renders without warnings" "" "$(cat "$work/man.err")"
    t_assert_eq "groff -man -ww finds nothing to warn about in $page" "" "$(groff -man -ww -z "$f" 2>&1)"
    t_assert_contains "$page has its NAME section" "$out" "NAME"
    eval "page_${page//[^a-z0-9]/_}=\$out"
done
missing=
for c in $("$R/usr/bin/pgmover" help | sed -n '/^Commands:/,/^$/p' | sed -nE 's/^  ([a-z]+) .*/\1/p'); do
    grep -qE "^       $c( |$)" <<<"$page_man1_pgmover_1" || missing+=" $c"
done
t_assert_eq "pgmover(1) describes every command of pgmover help" "" "$missing"
missing=
for s in $(cut -f2 <<<"$describe"); do
    grep -qE "^       $s = " <<<"$page_man5_pgmoverd_conf_5" || missing+=" $s"
done
t_assert_eq "pgmoverd.conf(5) describes every setting of pgmoverd --describe-config" "" "$missing"
# the client's options (its option table, src/cli/main.c) in pgmover(1) and the completion
options=$(sed -nE 's/.*\{"([a-z-]+)", [^,]+, (true|false), PGM_CLI_OPT_.*/\1/p' src/cli/main.c)
t_assert_contains "the client's option table is read" "$options" "no-traffic-switch"
missing=
for o in $options; do
    grep -qE -- "(^|[ ,])--$o([ =,]|$)" <<<"$page_man1_pgmover_1" || missing+=" man:--$o"
    grep -qE -- "^    local options=.*--$o( |\")" "$R/usr/share/bash-completion/completions/pgmover" ||
        missing+=" completion:--$o"
done
t_assert_eq "pgmover(1) and the completion know every option of the client" "" "$missing"
t_assert_contains "pgmoverd(8) says which paths the unit may write" "$page_man8_pgmoverd_8" "/etc/pgbouncer/pgmover"

# --- the systemd unit ----------------------------------------------------------

# systemd-analyze verify needs ExecStart's binary: a copy of the unit that runs the
# DESTDIR's; MANPATH lets it check the unit's Documentation= man: pages there
sed "s|^ExecStart=/usr/sbin/pgmoverd |ExecStart=$R/usr/sbin/pgmoverd |" \
    "$R/usr/lib/systemd/system/pgmoverd.service" >"$work/pgmoverd.service"
verify_unit() { MANPATH=$R/usr/share/man systemd-analyze verify "$work/pgmoverd.service" >"$work/verify.out" 2>&1; }
t_check "systemd-analyze verify accepts the installed unit" verify_unit || t_detail "$(cat "$work/verify.out")"
t_assert_eq "systemd-analyze verify has nothing to say about it" "" "$(cat "$work/verify.out")"

score=$(systemd-analyze security --offline=true "$work/pgmoverd.service" 2>/dev/null |
    sed -nE 's/.*Overall exposure level for pgmoverd\.service: ([0-9.]+).*/\1/p')
t_check "README reports the unit's exposure level ($score)" readme_has "exposure level of $score" install
security_at_most() {
    systemd-analyze security --offline=true --threshold="$1" --no-pager "$work/pgmoverd.service" >/dev/null 2>&1
}
t_check "systemd-analyze security: exposure at most 2.0 (--threshold=20)" security_at_most 20

# the sandbox against what the documented features write
t_assert_contains "ProtectSystem=strict: only the listed paths are writable" "$unit" $'\nProtectSystem=strict\n'
t_assert_eq "MemoryDenyWriteExecute= is not set (hooks in a JIT runtime)" "" "$(grep -E '^MemoryDenyWriteExecute=' <<<"$unit")"
rw=$(sed -n 's/^ReadWritePaths=//p' <<<"$unit" | tr ' ' '\n')
t_assert_contains "ReadWritePaths= has the pgbouncer include directory, optional (-)" "$rw" "-/etc/pgbouncer/pgmover"
inc=$(sed -nE 's/^#?pgbouncer_include = (.*)$/\1/p' "$R$CONF")
t_assert_eq "the config's pgbouncer_include example is in that directory" "/etc/pgbouncer/pgmover" "$(dirname "$inc")"
for p in /run/pgmover /var/lib/pgmover /etc/pgbouncer/pgmover; do
    t_check "README's Install says the unit must be able to write $p" readme_has "\`$p\`" install
done

# --- a migration by the installed daemon, sandboxed like the unit --------------

# The writable paths come from the installed unit: RuntimeDirectory=,
# StateDirectory= and ReadWritePaths=. In a private mount namespace each is a
# stand-in directory of this test bound over its path (on an empty tmpfs over its
# parent), and then everything else is made read-only, as ProtectSystem=strict
# does; the installed pgmoverd runs there with the installed config as an
# unprivileged user (nobody, no new privileges). The test bed's servers and
# pgbouncer run outside; the test drives the daemon through the stand-in of
# /run/pgmover. (The system call filter and the other settings are not emulated.)
writable=("/run/$(sed -n 's/^RuntimeDirectory=//p' <<<"$unit")" "/var/lib/$(sed -n 's/^StateDirectory=//p' <<<"$unit")")
for p in $rw; do writable+=("${p#-}"); done
t_assert_eq "the unit's writable paths" "/run/pgmover /var/lib/pgmover /etc/pgbouncer/pgmover" "${writable[*]}"

TB=$PWD/tests/testbed/testbed.sh
BED=$work/bed
PGB=$work/pgb
SB=$work/rw # the stand-ins: $SB/run/pgmover ...
stop_all() {
    pgmd_cleanup
    if [[ -f $PGB/pgbouncer.pid ]]; then kill "$(<"$PGB/pgbouncer.pid")" 2>/dev/null; fi
    [[ -f $BED/env ]] && "$TB" stop "$BED" >/dev/null 2>&1
    cleanup
}
trap stop_all EXIT
free_port() {
    local p i
    for ((i = 0; i < 200; i++)); do
        p=$((35000 + (RANDOM % 2000)))
        ss -Hlntu "( sport = :$p )" 2>/dev/null | grep -q . || {
            printf '%s' "$p"
            return 0
        }
    done
    return 1
}
admin() { PGPASSWORD=adminpw "$TB_PGBIN/psql" -h 127.0.0.1 -p "$PGB_PORT" -U pgbadmin -X -q -tA pgbouncer -c "$1" 2>&1; }
pgb_entry() { admin "SHOW DATABASES" | awk -F'|' '$1 == "shop" { print $2 ":" $3 }'; }

bed_up() {
    "$TB" start "$BED" >"$work/testbed.log" 2>&1 && . "$BED/env" &&
        "$TB" createdb "$BED" src shop >/dev/null && "$TB" createdb "$BED" dst t_shop >/dev/null &&
        q "$(src_url shop)" "CREATE TABLE public.orders (id integer PRIMARY KEY, note text);
            INSERT INTO public.orders SELECT i, 'order ' || i FROM generate_series(1, 1000) i" >/dev/null
}
t_check "test bed: a Heroku-like source with data, an empty target" bed_up ||
    {
        t_detail "$(tail -20 "$work/testbed.log")"
        t_summary
        exit 1
    }

# the stand-ins, made as the README says: the state and runtime directories
# pgmover's (here nobody's), the include directory pgmover's, in pgbouncer's
# group (postgres), set-group-ID, with the entry file in it
for p in "${writable[@]}"; do mkdir -p "$SB$p"; done
chmod -R a+rX "$SB"
chown nobody:nogroup "$SB/run/pgmover" "$SB/var/lib/pgmover"
chmod 0750 "$SB/run/pgmover"
chmod 0700 "$SB/var/lib/pgmover"
INC=$SB/etc/pgbouncer/pgmover
chown nobody:postgres "$INC"
chmod 2750 "$INC"
PGB_PORT=$(free_port)
mkdir -p "$PGB"
printf '[databases]\nshop = host=127.0.0.1 port=%s dbname=shop user=app_owner password=%s\n' \
    "$SOURCE_PORT" "$SOURCE_OWNER_PASSWORD" >"$INC/shop.ini"
chown nobody:postgres "$INC/shop.ini"
chmod 0640 "$INC/shop.ini"
{
    printf '[databases]\n%%include %s/shop.ini\n\n[pgbouncer]\n' "$INC"
    printf 'listen_addr = 127.0.0.1\nlisten_port = %s\nunix_socket_dir =\n' "$PGB_PORT"
    printf 'auth_type = plain\nauth_file = %s/userlist.txt\nadmin_users = pgbadmin\n' "$PGB"
    printf 'pool_mode = transaction\nserver_tls_sslmode = prefer\n'
    printf 'logfile = %s/pgbouncer.log\npidfile = %s/pgbouncer.pid\n' "$PGB" "$PGB"
} >"$PGB/pgbouncer.ini"
printf '"pgbadmin" "adminpw"\n"app_owner" "%s"\n' "$SOURCE_OWNER_PASSWORD" >"$PGB/userlist.txt"
chown -R postgres:postgres "$PGB"
chmod 0600 "$PGB/userlist.txt"
pgb_up() {
    runuser -u postgres -- /usr/sbin/pgbouncer -d "$PGB/pgbouncer.ini" >"$work/pgbouncer.start.log" 2>&1 &&
        t_wait_for 10 admin "SHOW VERSION"
}
t_check "pgbouncer runs, %include of a file in the unit's include directory" pgb_up ||
    {
        t_detail "$(cat "$work/pgbouncer.start.log" "$PGB/pgbouncer.log" 2>/dev/null | tail -5)"
        t_summary
        exit 1
    }
# pgbouncer's admin password in a passfile that pgmoverd's user reads
printf '127.0.0.1:%s:pgbouncer:pgbadmin:adminpw\n' "$PGB_PORT" >"$work/pgpass"
chown nobody "$work/pgpass"
chmod 0600 "$work/pgpass"

# sandbox.sh R SB PATH...: in a private mount namespace, each PATH writable (the
# stand-in SB/PATH bound over it), everything else read-only; then the installed
# pgmoverd as nobody with the installed config, and nobody's environment (HOME
# too: systemd sets the user's; libpq looks for ~/.postgresql/postgresql.crt and
# fails the connection when it may not look in /root)
{
    echo 'R=$1 SB=$2'
    echo 'shift 2'
    echo 'declare -A parents=()'
    echo 'for p in "$@"; do'
    echo '    parent=$(dirname "$p")'
    echo '    if [[ -z ${parents[$parent]:-} ]]; then'
    echo '        mount -t tmpfs -o mode=0755 pgmover-sandbox "$parent" || { echo "sandbox: cannot mount a tmpfs on $parent"; exit 1; }'
    echo '        parents[$parent]=1'
    echo '    fi'
    echo '    mkdir -p "$p" && mount --bind "$SB$p" "$p" || { echo "sandbox: cannot bind $SB$p on $p"; exit 1; }'
    echo 'done'
    echo 'for parent in "${!parents[@]}"; do'
    echo '    mount -o remount,bind,ro "$parent" || { echo "sandbox: cannot make $parent read-only"; exit 1; }'
    echo 'done'
    echo 'mount -o remount,bind,ro / || { echo "sandbox: cannot make / read-only"; exit 1; }'
    echo 'touch "$SB/../probe" 2>/dev/null && echo "sandbox: the root file system is still writable"'
    echo 'exec setpriv --reuid=nobody --regid=nogroup --clear-groups --no-new-privs --reset-env \'
    echo '    "$R/usr/sbin/pgmoverd" -c "$R/etc/pgmover/pgmoverd.conf"'
} >"$work/sandbox.sh"
PGMD_DIR=$work/daemon
mkdir -p "$PGMD_DIR"
export PGMOVER_SOCKET=$SB$sock
PGM_BUILD=$R/usr/bin # pgm: the installed client
unshare -m --propagation private bash "$work/sandbox.sh" "$R" "$SB" "${writable[@]}" >"$PGMD_DIR/pgmoverd.log" 2>&1 &
PGMD_PID=$!
daemon_up() { t_wait_for 30 test -S "$PGMOVER_SOCKET" && t_wait_for 10 pgm version; }
t_check "sandbox: the installed pgmoverd starts with the installed config, as nobody" daemon_up ||
    {
        t_detail "$(cat "$PGMD_DIR/pgmoverd.log")"
        t_summary
        exit 1
    }
t_assert_eq "sandbox: set up as the unit's, the rest read-only" "" "$(grep '^sandbox:' "$PGMD_DIR/pgmoverd.log")"
t_assert_eq "sandbox: the control socket is socket_mode (0660), nobody's" "660 nobody" "$(stat -c '%a %U' "$PGMOVER_SOCKET")"

cmd "sandbox: create, pgbouncer switch through the unit's include directory" create shop \
    --source "$(src_url shop)" --target "$(tgt_url t_shop)" --method dump \
    --set pg_bindir="$TB_PGBIN" --set engine=pg_dump --set rollback_window=0 \
    --set pgbouncer_admin="postgres://pgbadmin@127.0.0.1:$PGB_PORT/pgbouncer?passfile=$work/pgpass" \
    --set pgbouncer_database=shop --set pgbouncer_include=/etc/pgbouncer/pgmover/shop.ini
cmd "sandbox: start" start shop
wait_state "sandbox: synced (rehearsal copy by pg_dump into state_dir)" shop synced 180
cmd "sandbox: freeze" freeze shop
wait_state "sandbox: verified" shop verified 180
cmd "sandbox: cutover" cutover shop
wait_state "sandbox: completed (no rollback window)" shop completed 120
t_assert_eq "sandbox: pgbouncer points at the target" "127.0.0.1:$TARGET_PORT" "$(pgb_entry)"
t_assert_contains "sandbox: the include file was rewritten for the target" "$(cat "$INC/shop.ini")" "port='$TARGET_PORT'"
t_assert_eq "sandbox: ... pgmover's, in pgbouncer's group, its mode kept" "nobody postgres 640" \
    "$(stat -c '%U %G %a' "$INC/shop.ini")"
t_assert_eq "sandbox: finish removed the original's copy (FILE.pgmover-orig), nothing else left there" "shop.ini" \
    "$(ls -A "$INC")"
t_assert_eq "sandbox: the target has every row" "1000" "$(tq t_shop 'SELECT count(*) FROM public.orders')"
t_assert_contains "sandbox: the job's state is in the state directory" "$(ls "$SB$state/shop")" "state.json"

# --- bash completion (against the sandboxed daemon) ------------------------------

{
    echo '. /usr/share/bash-completion/bash_completion || exit 1'
    echo '. "$1" || exit 1'
    echo 'complete -p pgmover || exit 1'
    echo 'compopt() { :; } # outside a real completion, bash refuses compopt'
    echo 'complete_line() {'
    echo '    COMP_LINE=$1 COMP_POINT=${#1}'
    echo '    read -ra COMP_WORDS <<<"$1"'
    echo '    [[ $1 == *" " ]] && COMP_WORDS+=("")'
    echo '    COMP_CWORD=$((${#COMP_WORDS[@]} - 1))'
    echo '    COMPREPLY=()'
    echo '    _pgmover pgmover "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"'
    echo '    echo "$1|${COMPREPLY[*]}"'
    echo '}'
    for line in "pgmover " "pgmover fr" "pgmover --js" "pgmover create x --method " \
        "pgmover create x --set rollback_w" "pgmover watch shop --until verif" "pgmover help cu" \
        "pgmover status " "pgmover --json status s" "pgmover create "; do
        printf 'complete_line %q\n' "$line"
    done
} >"$work/complete.sh"
comp=$(PATH=$R/usr/bin:$PATH bash "$work/complete.sh" "$R/usr/share/bash-completion/completions/pgmover" 2>"$work/complete.err")
t_assert_contains "bash completion loads and registers for pgmover" "$comp" "complete -F _pgmover pgmover"
commands=$("$R/usr/bin/pgmover" help | sed -n '/^Commands:/,/^$/p' | sed -nE 's/^  ([a-z]+) .*/\1/p' | tr '\n' ' ')
t_assert_contains "completes every command" "$comp" "pgmover |${commands% }"
t_assert_contains "completes a command's start" "$comp" "pgmover fr|freeze"
t_assert_contains "completes an option" "$comp" "pgmover --js|--json"
t_assert_contains "completes --method" "$comp" "pgmover create x --method |dump pglogical triggers"
t_assert_contains "completes --set with the job options" "$comp" "pgmover create x --set rollback_w|rollback_window="
t_assert_contains "completes --until with the states" "$comp" "pgmover watch shop --until verif|verified verify_failed verifying"
t_assert_contains "completes help's command" "$comp" "pgmover help cu|cutover"
t_assert_contains "completes a job name from the daemon" "$comp" "pgmover status |shop"
t_assert_contains "completes a job name after options" "$comp" "pgmover --json status s|shop"
t_assert_eq "offers no existing job to create" "pgmover create |" "$(grep '^pgmover create |' <<<"$comp")"
t_assert_eq "completion printed no error" "" "$(cat "$work/complete.err")"

t_check "sandbox: SIGTERM stops pgmoverd with 0" pgmd_stop || t_detail "$(tail -5 "$PGMD_DIR/pgmoverd.log")"
t_assert_eq "sandbox: pgmoverd logged no error or warning" "" "$(grep -E '^<[0-4]>' "$PGMD_DIR/pgmoverd.log")"

# --- sysusers.d and tmpfiles.d ---------------------------------------------------

sysusers() { systemd-sysusers --root="$R" >"$work/sysusers.out" 2>&1; }
t_check "systemd-sysusers --root accepts the entry" sysusers || t_detail "$(cat "$work/sysusers.out")"
t_assert_contains "it creates the pgmover system user, home state_dir, no login" \
    "$(grep '^pgmover:' "$R/etc/passwd")" ":$state:/usr/sbin/nologin"
tmpfiles() { systemd-tmpfiles --root="$R" --create "$R/usr/lib/tmpfiles.d/pgmover.conf" >"$work/tmpfiles.out" 2>&1; }
t_check "systemd-tmpfiles --root --create accepts the entry" tmpfiles || t_detail "$(cat "$work/tmpfiles.out")"
uid=$(sed -nE 's/^pgmover:x:([0-9]+):.*/\1/p' "$R/etc/passwd")
t_assert_eq "it makes /run/pgmover 0750 and /var/lib/pgmover 0700, pgmover's" "750 $uid
700 $uid" "$(stat -c '%a %u' "$R/run/pgmover" "$R/var/lib/pgmover" 2>&1)"

t_summary
