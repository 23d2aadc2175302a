#!/usr/bin/env bash
# test_walkthrough.sh — the README's "Your first migration" runs as written.
#
# The commands of the README's walkthrough (the "$ " lines of the console block
# between <!-- walkthrough --> and <!-- /walkthrough -->) run one by one, in
# order, against a Heroku-like source (TLS, wal_level = replica, no pglogical,
# a non-superuser owner) and a managed-like target (its role owns the database
# and is no superuser), with DATABASE_URL and NEW_URL set to them and pgmoverd
# listening on PGMOVER_SOCKET. Each line the README shows under a command must
# appear, in that order, in what the command printed ("…" stands for anything:
# times, sizes, rates); the command must exit 0. Then an independent comparison
# of source and target (row counts and an md5 of every table, by psql).
#
# PGM_WALKTHROUGH_CAPTURE=1 prints what each command printed instead of
# comparing (to write the README from a real run).
#
# Run from the source tree as root (or postgres):
#   PGM_BUILD=build-dev bash tests/integration/test_walkthrough.sh
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TB=$ROOT/tests/testbed/testbed.sh
# shellcheck source=tests/integration/lib.sh
. "$HERE/lib.sh"
# shellcheck source=tests/integration/pgmd.sh
. "$HERE/pgmd.sh"
# shellcheck source=tests/integration/jobs.sh
. "$HERE/jobs.sh"

t_prereq test_walkthrough pgmoverd pgmover

WORK=$(t_tmpdir) || exit 1
BED=$WORK/bed
DMN=$WORK/daemon
cleanup() {
    pgmd_cleanup
    t_bed_remove "$WORK" "$BED"
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------
# the walkthrough, as the README has it: "CMD<TAB>" lines, then the lines it shows

README=$ROOT/README.md
block=$(sed -n '/^<!-- walkthrough -->$/,/^<!-- \/walkthrough -->$/p' "$README" | sed '/^```/d; /^<!--/d')
if [[ -z $block ]]; then
    t_fail "the README has a walkthrough" "no <!-- walkthrough --> block in README.md"
    t_summary
    exit 1
fi
t_ok "the README has a walkthrough"
ncmd=$(grep -c '^\$ ' <<<"$block")
t_check "the walkthrough has its commands ($ncmd)" test "$ncmd" -ge 8

# ---------------------------------------------------------------------------------------
# the servers and the daemon

if ! TB_SOURCE_WAL_LEVEL=replica TB_SOURCE_PRELOAD= TB_TARGET_ROLE=owner "$TB" start "$BED" >"$WORK/testbed.log" 2>&1; then
    cat "$WORK/testbed.log" >&2
    t_fail "testbed" "could not start the test bed"
    t_summary
    exit 1
fi
# shellcheck source=/dev/null
. "$BED/env"
"$TB_PGBIN/pgbench" -i -q -s 2 "$SOURCE_URL" >"$WORK/pgbench.log" 2>&1 ||
    t_fail "pgbench -i on the source" "$(tail -3 "$WORK/pgbench.log")"
if ! pgmd_start "$DMN" "pg_bindir = $TB_PGBIN"; then
    t_fail "pgmoverd starts" "see $DMN/pgmoverd.log"
    t_summary
    exit 1
fi
t_ok "pgmoverd starts"

# the reader's shell: the URLs, the CLI on PATH, and their own cutover script
mkdir -p "$WORK/home"
cat >"$WORK/home/switch-database-url" <<'EOF'
#!/bin/sh
# the application's switch: here it writes down the URL it was given
echo "$PGMOVER_TARGET_URL" > "$(dirname "$0")/switched-to"
EOF
chmod 755 "$WORK/home/switch-database-url"
export DATABASE_URL=$SOURCE_URL NEW_URL=$TARGET_URL
PGM_BIN=$(cd "$PGM_BUILD" && pwd)
export PATH="$PGM_BIN:$PATH"

# matches LINE PATTERN: the README's line, "…" standing for anything
matches() {
    local pat=$1 line=$2 glob
    glob=$(printf '%s' "$pat" | sed 's/[][*?\\]/\\&/g; s/…/*/g')
    # shellcheck disable=SC2053 # the pattern is a glob on purpose
    [[ $line == $glob ]]
}

# check NAME OUTPUT EXPECTED_LINES: each expected line in order in the output
check_output() {
    local name=$1 out=$2 expected=$3 want line found
    local -a got
    mapfile -t got <<<"$out"
    local i=0
    while IFS= read -r want; do
        [[ -z ${want// /} ]] && continue
        found=0
        while ((i < ${#got[@]})); do
            line=${got[i]}
            i=$((i + 1))
            if matches "$want" "$line"; then
                found=1
                break
            fi
        done
        if ((found == 0)); then
            t_fail "$name" "the README shows [$want]; the command printed: $(printf '\n%s' "$out")"
            return
        fi
    done <<<"$expected"
    t_ok "$name"
}

run_step() {
    local cmdline=$1 expected=$2 out rc
    out=$(cd "$WORK/home" && bash -c "$cmdline" 2>&1)
    rc=$?
    if [[ ${PGM_WALKTHROUGH_CAPTURE:-0} == 1 ]]; then
        printf '$ %s\n%s\n[exit %d]\n\n' "$cmdline" "$out" "$rc"
        return
    fi
    t_assert_eq "\$ $cmdline: exit 0" 0 "$rc"
    check_output "\$ $cmdline: prints what the README shows" "$out" "$expected"
}

cmdline= expected=
while IFS= read -r l; do
    if [[ $l == '$ '* ]]; then
        [[ -n $cmdline ]] && run_step "$cmdline" "$expected"
        cmdline=${l#\$ } expected=
    else
        expected+="$l"$'\n'
    fi
done <<<"$block"
[[ -n $cmdline ]] && run_step "$cmdline" "$expected"

# ---------------------------------------------------------------------------------------
# what the walkthrough did, checked apart from pgmover

if [[ ${PGM_WALKTHROUGH_CAPTURE:-0} != 1 ]]; then
    t_assert_eq "the cutover script got the target's URL" "$TARGET_URL" "$(cat "$WORK/home/switched-to" 2>/dev/null)"
    for t in pgbench_accounts pgbench_branches pgbench_tellers pgbench_history; do
        sql="SELECT count(*) || ' ' || coalesce(md5(string_agg(x::text, ',' ORDER BY x::text)), '-') FROM public.$t x"
        t_assert_eq "source = target: $t (count, md5)" "$(q "$SOURCE_URL" "$sql")" "$(q "$TARGET_URL" "$sql")"
    done
fi

t_summary
