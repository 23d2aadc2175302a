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
#   - the installed pgmoverd, with the installed config, in a mount namespace
#     that is read-only but for the unit's writable paths, starts, takes a job,
#     and stops cleanly; bash completion completes commands, options and jobs;
#   - systemd-sysusers and systemd-tmpfiles --root accept the entries.
# Needs root (the mount namespace), meson, man-db, groff, systemd, bash-completion.
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

# --- the installed daemon, sandboxed like the unit ----------------------------

# In a private mount namespace: /run and /var/lib are empty, and, as under
# ProtectSystem=strict, everything is read-only but /run/pgmover and
# /var/lib/pgmover; the installed pgmoverd runs with the installed config. Each
# result goes to a file in $work/ns (written before the root is made read-only).
mkdir -m 0755 "$work/ns"
cat >"$work/sandbox.sh" <<EOF
set -u
R=$R NS=$work/ns
EOF
cat >>"$work/sandbox.sh" <<'EOF'
mount -t tmpfs -o mode=0755 pgmover-run /run && mkdir -m 0750 /run/pgmover &&
    mount -t tmpfs -o mode=0755 pgmover-varlib /var/lib && mkdir -m 0700 /var/lib/pgmover &&
    mount --bind "$NS" "$NS" &&
    mount --bind /run/pgmover /run/pgmover && mount --bind /var/lib/pgmover /var/lib/pgmover &&
    mount -o remount,bind,ro /run && mount -o remount,bind,ro /var/lib && mount -o remount,bind,ro / ||
    { echo "mounts failed" >"$NS/error"; exit 1; }
touch "$NS/../probe" 2>/dev/null && echo "the root file system is writable" >"$NS/error"
"$R/usr/sbin/pgmoverd" -c "$R/etc/pgmover/pgmoverd.conf" 2>"$NS/daemon.log" &
pid=$!
for _ in $(seq 1 150); do [[ -S /run/pgmover/pgmoverd.sock ]] && break; sleep 0.2; done
stat -c '%a' /run/pgmover/pgmoverd.sock >"$NS/socket_mode" 2>&1
"$R/usr/bin/pgmover" create shop --source postgres://app@127.0.0.1:1/shop \
    --target postgres://app@127.0.0.1:1/shop_new --method dump >"$NS/create" 2>&1
echo $? >"$NS/create_rc"
"$R/usr/bin/pgmover" jobs >"$NS/jobs" 2>&1
ls /var/lib/pgmover/shop >"$NS/state_files" 2>&1
# bash completion, in a shell that loads it as bash-completion does
PATH=$R/usr/bin:$PATH bash -c '
    . /usr/share/bash-completion/bash_completion || exit 1
    . "$1" || exit 1
    complete -p pgmover || exit 1
    compopt() { :; }    # outside a real completion, bash refuses compopt
    complete_line() {
        COMP_LINE=$1 COMP_POINT=${#1}
        read -ra COMP_WORDS <<<"$1"
        [[ $1 == *" " ]] && COMP_WORDS+=("")
        COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
        COMPREPLY=()
        _pgmover pgmover "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
        echo "$1|${COMPREPLY[*]}"
    }
    complete_line "pgmover "
    complete_line "pgmover fr"
    complete_line "pgmover --js"
    complete_line "pgmover create x --method "
    complete_line "pgmover create x --set rollback_w"
    complete_line "pgmover watch shop --until verif"
    complete_line "pgmover help cu"
    complete_line "pgmover start "
    complete_line "pgmover --json status s"
    complete_line "pgmover create "
' _ "$R/usr/share/bash-completion/completions/pgmover" >"$NS/complete" 2>"$NS/complete.err"
kill -TERM "$pid"
wait "$pid"
echo $? >"$NS/daemon_rc"
EOF
unshare -m --propagation private bash "$work/sandbox.sh"
t_assert_eq "sandbox: set up, and the root file system read-only" "" "$(cat "$work/ns/error" 2>/dev/null)"
t_assert_eq "sandbox: the control socket is socket_mode (0660)" "660" "$(cat "$work/ns/socket_mode")"
t_assert_eq "sandbox: create succeeds with the installed config" "0" "$(cat "$work/ns/create_rc")" ||
    t_detail "$(cat "$work/ns/create" "$work/ns/daemon.log")"
t_assert_contains "sandbox: the job is listed" "$(cat "$work/ns/jobs")" "shop  created"
t_assert_contains "sandbox: its state is in state_dir" "$(cat "$work/ns/state_files")" "state.json"
t_assert_eq "sandbox: SIGTERM stops pgmoverd with 0" "0" "$(cat "$work/ns/daemon_rc")" ||
    t_detail "$(cat "$work/ns/daemon.log")"
t_assert_eq "sandbox: pgmoverd logged no error or warning" "" "$(grep -E '^<[0-4]>' "$work/ns/daemon.log")"

# --- bash completion --------------------------------------------------------------

comp=$(cat "$work/ns/complete")
t_assert_contains "bash completion loads and registers for pgmover" "$comp" "complete -F _pgmover pgmover"
commands=$("$R/usr/bin/pgmover" help | sed -n '/^Commands:/,/^$/p' | sed -nE 's/^  ([a-z]+) .*/\1/p' | tr '\n' ' ')
t_assert_contains "completes every command" "$comp" "pgmover |${commands% }"
t_assert_contains "completes a command's start" "$comp" "pgmover fr|freeze"
t_assert_contains "completes an option" "$comp" "pgmover --js|--json"
t_assert_contains "completes --method" "$comp" "pgmover create x --method |dump pglogical triggers"
t_assert_contains "completes --set with the job options" "$comp" "pgmover create x --set rollback_w|rollback_window="
t_assert_contains "completes --until with the states" "$comp" "pgmover watch shop --until verif|verified verify_failed verifying"
t_assert_contains "completes help's command" "$comp" "pgmover help cu|cutover"
t_assert_contains "completes a job name from the daemon" "$comp" "pgmover start |shop"
t_assert_contains "completes a job name after options" "$comp" "pgmover --json status s|shop"
t_assert_eq "offers no existing job to create" "pgmover create |" "$(grep '^pgmover create |' <<<"$comp")"
t_assert_eq "completion printed no error" "" "$(cat "$work/ns/complete.err")"

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
