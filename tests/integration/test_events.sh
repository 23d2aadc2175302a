#!/usr/bin/env bash
# Integration test of the audit trail's evidence: `pgmover events` and its hash chain.
#
#   1. a job that fails (its error is the outcome in the trail), then a real dump job on
#      the Heroku-like test bed, created -> completed (with a command refused on the way,
#      and a freeze thawed before the last one), then `events`: one readable line per audit.jsonl line (local
#      time, who, command, from -> to, outcome), and a summary whose numbers are those of
#      state.json (verification) and of the trail's own times (write downtime)
#   2. the chain checked by an implementation of its own here (sha256sum over each line),
#      and `events --check` intact with that head
#   3. one line in the middle edited (a uid changed with sed): `events --check` exits 1
#      naming that line; the last line changed behind pgmoverd's back is named too
#   4. pgmoverd restarted (after SIGTERM, then after SIGKILL with a torn line at the end):
#      it goes on appending a valid chain; the torn bytes are kept beside the trail
#
# Run from the source tree as root (or postgres):
#   PGM_BUILD=build-dev bash tests/integration/test_events.sh
set -uo pipefail # no -e: each check reports and the summary decides the exit status

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TB=$ROOT/tests/testbed/testbed.sh
# shellcheck source=tests/integration/lib.sh
. "$HERE/lib.sh"
# shellcheck source=tests/integration/pgmd.sh
. "$HERE/pgmd.sh"
# shellcheck source=tests/integration/jobs.sh
. "$HERE/jobs.sh"

t_prereq test_events pgmoverd pgmover

WORK=$(t_tmpdir) || exit 1
BED=$WORK/bed
DMN=$WORK/daemon

cleanup() {
    pgmd_cleanup
    t_bed_remove "$WORK" "$BED"
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------
# helpers

# sha LINE_TEXT: SHA-256 hex of the text as given (no newline)
sha() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }

# chain_ok FILE GENESIS_TEXT: an implementation of the chain apart from pgmoverd's: line 1
# carries sha(genesis), line n the sha of line n-1's bytes; prints the head, or
# "broken at N" and fails
chain_ok() {
    local file=$1 expected n=0 line prev
    expected=$(sha "$2")
    while IFS= read -r line; do
        n=$((n + 1))
        prev=$(jq -r '.prev // ""' <<<"$line")
        if [[ $prev != "$expected" ]]; then
            echo "broken at $n"
            return 1
        fi
        expected=$(sha "$line")
    done <"$file"
    echo "$expected"
}

# dur MS: a duration as pgmover prints it (850ms, 4.2s, 42s, 1m20s)
dur() {
    awk -v ms="$1" 'BEGIN {
        s = ms / 1000
        if (s < 1) printf "%.0fms", ms
        else if (s < 10) printf "%.1fs", s
        else { r = int(s + 0.5); if (r < 60) printf "%ds", r; else printf "%dm%02ds", int(r / 60), r % 60 }
    }'
}

# ms_of ISO: milliseconds since the epoch of a time pgmoverd wrote (2026-12-03T07:31:02.123Z)
ms_of() {
    local iso=$1
    printf '%s%s' "$(date -u -d "${iso%.*}Z" +%s)" "$(cut -c1-3 <<<"${iso##*.}")"
}

# the time of the first audit line of job ev that took it into STATE (from != to)
entered() {
    jq -r --arg s "$1" 'select(.to == $s and .from != .to) | .time' "$AUDIT" | tail -n 1
}

# assert_match NAME TEXT REGEX: TEXT matches the extended regular expression
assert_match() {
    if [[ $2 =~ $3 ]]; then t_ok "$1"; else t_fail "$1" "[$2] does not match /$3/"; fi
}

# ---------------------------------------------------------------------------------------
# the bed and the daemon

if ! "$TB" start "$BED" >"$WORK/testbed.log" 2>&1; then
    cat "$WORK/testbed.log" >&2
    t_fail "testbed" "could not start the test bed"
    t_summary
    exit 1
fi
# shellcheck source=/dev/null
. "$BED/env"
setup_ok=1
"$TB" createdb "$BED" src ev >/dev/null || setup_ok=0
"$TB" createdb "$BED" dst t_ev >/dev/null || setup_ok=0
"$TB" createdb "$BED" dst t_bad >/dev/null || setup_ok=0
q "$(src_url ev)" "CREATE TABLE public.accounts (id int PRIMARY KEY, owner text NOT NULL, balance numeric);
    INSERT INTO public.accounts SELECT i, 'owner ' || i, i * 1.5 FROM generate_series(1, 5000) AS i;
    CREATE TABLE public.notes (id serial PRIMARY KEY, body text);
    INSERT INTO public.notes (body) SELECT 'note ' || i FROM generate_series(1, 37) AS i;" >/dev/null || setup_ok=0
if [[ $setup_ok == 1 ]]; then t_ok "setup: databases loaded"; else
    t_fail "setup" "creating databases or loading them failed"
    t_summary
    exit 1
fi
if ! pgmd_start "$DMN" "pg_bindir = $TB_PGBIN"; then
    t_fail "pgmoverd starts" "see $DMN/pgmoverd.log"
    t_summary
    exit 1
fi
t_ok "pgmoverd starts"
AUDIT=$DMN/state/ev/audit.jsonl
STATE=$DMN/state/ev/state.json

# ---------------------------------------------------------------------------------------
# 1. a whole dump job, then its events

echo "# 1. a dump job to completed, and its events"
whole_job() {
    cmd "create" create ev --source "$(src_url ev)" --target "$(tgt_url t_ev)" --method dump \
        --set cutover_command=true
    cmd "start" start ev
    wait_state "synced" ev synced 120
    [[ $(pgmd_state ev) == synced ]] || return 1
    # refused: a cutover before the freeze is refused and audited as such
    pgm cutover ev >/dev/null 2>&1
    t_assert_eq "cutover before the freeze is refused" "1" "$?"
    # a freeze thawed, then the freeze that stays: both count as write downtime
    cmd "freeze" freeze ev
    wait_state "verified" ev verified 120
    cmd "thaw" thaw ev
    wait_state "thawed: synced" ev synced 60
    cmd "freeze again" freeze ev
    wait_state "verified again" ev verified 120
    cmd "cutover" cutover ev
    wait_state "rollback_window" ev rollback_window 60
    cmd "finish" finish ev
    wait_state "completed" ev completed 60
    [[ $(pgmd_state ev) == completed ]]
}
if ! whole_job; then
    t_fail "the job completes" "$(fail_detail ev)"
    t_summary
    exit 1
fi

# a step that fails: its error is in the trail, and events shows it as the outcome
WRONG_URL=$(src_url ev)
WRONG_URL=${WRONG_URL/:$SOURCE_OWNER_PASSWORD@/:not-the-password@}
cmd "a job with a wrong source password" create bad --source "$WRONG_URL" --target "$(tgt_url t_bad)" --method dump
cmd "its start" start bad
wait_state "it fails" bad failed 60
assert_match "events: the failure, with the error's message" "$(pgm events bad)" \
    ' pgmoverd +\(error\) +provisioning → failed +error: .*password authentication failed'
t_assert_eq "the trail has the message as the outcome" "1" \
    "$(grep -c '"event":"error".*"outcome":"error: .*password authentication failed' "$DMN/state/bad/audit.jsonl")"
cmd "abort the failed job" abort bad
wait_state "it ends aborted" bad aborted 60

# the events as a person reads them: in this time zone, whatever the machine's
export TZ=Asia/Kolkata
OUT=$(pgm events ev 2>&1)
t_assert_eq "events exits 0" "0" "$?"
NLINES=$(wc -l <"$AUDIT")
# the event lines: from the header to the first empty line
EVLINES=$(awk 'NR > 1 && $0 == "" { exit } NR > 1 { print }' <<<"$OUT")
t_assert_eq "events: one line per audit.jsonl line" "$NLINES" "$(wc -l <<<"$EVLINES")"
t_assert_contains "events: a header" "$(head -n 1 <<<"$OUT")" "LINE  TIME"
ME="$(id -un) (uid $(id -u))"
# every line names the line, the local time of the audit line, and who
bad=0
for ((i = 1; i <= NLINES; i++)); do
    rec=$(sed -n "${i}p" "$AUDIT")
    row=$(sed -n "${i}p" <<<"$EVLINES")
    t=$(jq -r .time <<<"$rec")
    local_t=$(date -d "$t" '+%Y-%m-%d %H:%M:%S %Z')
    if [[ $(jq -r 'has("uid")' <<<"$rec") == true ]]; then who=$ME; else who=pgmoverd; fi
    cmdname=$(jq -r 'if has("command") then .command else "(" + .event + ")" end' <<<"$rec")
    if ! [[ $row =~ ^\ *$i\ \ "$local_t"\ \ "$who"\ +"$cmdname"\  ]]; then
        bad=$((bad + 1))
        t_detail "line $i: [$row] does not start with $i, $local_t, $who, $cmdname" || true
    fi
done
t_assert_eq "events: each line has its number, local time ($TZ), who and command" "0" "$bad"
line_of() { grep -n -- "$1" "$AUDIT" | head -n 1 | cut -d: -f1; }
row_of() { sed -n "${1}p" <<<"$EVLINES"; }
assert_match "events: create, to created, ok" "$(row_of "$(line_of '"command":"create"')")" ' create +→ created +ok$'
assert_match "events: the refused cutover" "$(row_of "$(line_of '"outcome":"refused')")" \
    ' cutover +synced +refused: invalid_state$'
assert_match "events: the freeze" "$(row_of "$(line_of '"command":"freeze"')")" ' freeze +synced → freezing +ok$'
assert_match "events: the rehearsal copy done" "$OUT" ' \(done\) +syncing → synced +ok'
t_assert_contains "events: the daemon's own step" "$OUT" "pgmoverd"
t_assert_contains "events: the daemon's own step" "$OUT" "(done)"
t_assert_contains "events: verification done" "$OUT" "verifying → verified"
t_assert_contains "events: the end" "$OUT" "finishing → completed"

# the summary, against state.json's facts and the trail's times
tables=$(jq '.verify.tables | length' "$STATE")
rows=$(jq '[.verify.tables[].source_rows] | add' "$STATE")
t_assert_eq "state.json: two tables verified" "2" "$tables"
t_assert_eq "state.json: 5037 rows verified" "5037" "$rows"
SUMMARY=$(sed -n '/^summary of ev/,$p' <<<"$OUT")
t_assert_contains "summary: for the completed job" "$SUMMARY" "summary of ev (completed, method dump)"
t_assert_contains "summary: tables and rows verified, no difference" "$SUMMARY" \
    "verified         $tables tables, $rows rows; differences: none"
frz=$(entered freezing)
win=$(entered rollback_window)
down=$(dur $(($(ms_of "$win") - $(ms_of "$frz"))))
t_assert_contains "summary: write downtime from the freeze to the cutover ($down)" "$SUMMARY" \
    "write downtime   $down  (frozen $(date -d "$frz" '+%Y-%m-%d %H:%M:%S %Z') → cutover done $(date -d "$win" '+%Y-%m-%d %H:%M:%S %Z'))"
frz1=$(jq -r 'select(.to == "freezing" and .from != .to) | .time' "$AUDIT" | head -n 1)
thawed=$(jq -r 'select(.from == "thawing" and .to == "synced") | .time' "$AUDIT" | head -n 1)
t_check "the first freeze is not the last" test "$frz1" != "$frz"
t_assert_contains "summary: the earlier freeze, thawed ($(dur $(($(ms_of "$thawed") - $(ms_of "$frz1")))))" "$SUMMARY" \
    "    and earlier    $(dur $(($(ms_of "$thawed") - $(ms_of "$frz1"))))  (frozen $(date -d "$frz1" '+%Y-%m-%d %H:%M:%S %Z') → thawed $(date -d "$thawed" '+%Y-%m-%d %H:%M:%S %Z'))"
assert_match "events: the thaw" "$(row_of "$(line_of '"command":"thaw"')")" ' thaw +verified → thawing +ok$'
reh=$(dur "$(jq '.facts.copies.rehearsal.duration_ms' "$STATE")")
fin=$(dur "$(jq '.facts.copies.final.duration_ms' "$STATE")")
t_assert_contains "summary: the sync phase with the rehearsal copy's time ($reh)" "$SUMMARY" "(rehearsal copy $reh"
t_assert_contains "summary: the freeze phase with the final copy's time ($fin)" "$SUMMARY" "(final copy $fin"
ver=$(dur $(($(ms_of "$(jq -r 'select(.from == "verifying" and .to == "verified") | .time' "$AUDIT" | tail -n 1)") - $(ms_of "$(entered verifying)"))))
t_assert_contains "summary: the verify phase ($ver)" "$SUMMARY" "  verify           $ver"
t_assert_contains "summary: the rollback window, closed by finish" "$SUMMARY" "(closed by finish)"
t_assert_contains "summary: the cutover phase" "$SUMMARY" "  cutover          "
# --json: the raw lines, parsed, each with its line number
JS=$(pgm --json events ev)
t_assert_eq "events --json: every line" "$NLINES" "$(jq '.result.events | length' <<<"$JS")"
t_assert_eq "events --json: line 1 as written" "$(head -n 1 "$AUDIT" | jq -c .)" \
    "$(jq -c '.result.events[0] | del(.line)' <<<"$JS")"
# a job not ended shows the summary only when asked: events of a new job
cmd "create a second job" create ev2 --source "$(src_url ev)" --target "$(tgt_url t_ev)" --method dump
t_assert_eq "events of a job not ended: no summary" "" "$(pgm events ev2 | grep '^summary')"
t_assert_contains "events --summary: the summary in any state" "$(pgm events ev2 --summary)" \
    "write downtime   none: the source was never frozen"

# ---------------------------------------------------------------------------------------
# 2. the chain, checked here and by pgmoverd

echo "# 2. the hash chain"
GENESIS="pgmover audit trail of job ev created at $(jq -r .created_at "$STATE")"
HEAD=$(chain_ok "$AUDIT" "$GENESIS")
t_check "the chain holds, checked with sha256sum" test ${#HEAD} -eq 64 || t_detail "$HEAD"
CHECK=$(pgm events ev --check 2>&1)
t_assert_eq "events --check exits 0 on an intact trail" "0" "$?"
t_assert_eq "events --check: intact, with the head" "audit trail of ev: intact, $NLINES lines; head $HEAD" "$CHECK"
t_assert_contains "events ends with the chain's verdict" "$OUT" "audit trail of ev: intact"
t_assert_eq "events --json --check: the head" "$HEAD" "$(pgm --json events ev --check | jq -r .result.chain.head)"

# ---------------------------------------------------------------------------------------
# 3. tampering

echo "# 3. a line edited in the middle"
M=$(line_of '"command":"freeze"')
t_check "the freeze is in the middle of the trail (line $M of $NLINES)" test "$M" -gt 1 -a "$M" -lt "$NLINES"
cp "$AUDIT" "$WORK/audit.orig"
sed -i "${M}s/\"uid\":$(id -u),/\"uid\":4711,/" "$AUDIT"
t_check "sed changed line $M" test "$(sed -n "${M}p" "$AUDIT")" != "$(sed -n "${M}p" "$WORK/audit.orig")"
CHECK=$(pgm events ev --check 2>&1)
t_assert_eq "events --check exits 1 on the edited trail" "1" "$?"
t_assert_contains "events --check names line $M" "$CHECK" "BROKEN at line $M of $NLINES"
t_assert_contains "events --check says line $M was changed" "$CHECK" "line $M was changed"
t_assert_contains "events --check: what line $((M + 1)) recorded" "$CHECK" \
    "expected: $(sha "$(sed -n "${M}p" "$WORK/audit.orig")")"
t_assert_contains "events --check: what line $M hashes to now" "$CHECK" \
    "found:    $(sha "$(sed -n "${M}p" "$AUDIT")")"
t_assert_eq "events --json --check names the line" "$M" \
    "$(pgm --json events ev --check | jq -r .result.chain.broken.line)"
pgm --json events ev --check >/dev/null
t_assert_eq "events --json --check exits 1 too" "1" "$?"
t_assert_contains "events shows the broken chain too" "$(pgm events ev)" "BROKEN at line $M"
cp "$WORK/audit.orig" "$AUDIT"
pgm events ev --check >/dev/null
t_assert_eq "the original line back: intact again" "0" "$?"
# the last line is covered by pgmoverd's head, not by a later line
sed -i "${NLINES}s/\"outcome\":\"ok\"/\"outcome\":\"ko\"/" "$AUDIT"
CHECK=$(pgm events ev --check 2>&1)
t_assert_eq "the last line changed: events --check exits 1" "1" "$?"
t_assert_contains "the last line changed: named" "$CHECK" "BROKEN at line $NLINES"
t_assert_contains "the last line changed: against pgmoverd's head" "$CHECK" "pgmoverd wrote last"
cp "$WORK/audit.orig" "$AUDIT"

# ---------------------------------------------------------------------------------------
# 4. pgmoverd restarted goes on with the chain

echo "# 4. restarts"
t_check "pgmoverd stops (SIGTERM)" pgmd_stop
t_check "pgmoverd starts again" pgmd_start "$DMN"
pgm set ev --set jobs=3 >/dev/null 2>&1 # refused (completed), audited
t_assert_eq "after the restart: resume and the refused set appended" "$((NLINES + 2))" "$(wc -l <"$AUDIT")"
t_assert_contains "after the restart: the resume line" "$(sed -n "$((NLINES + 1))p" "$AUDIT")" '"event":"resume"'
HEAD=$(chain_ok "$AUDIT" "$GENESIS")
t_check "after the restart: the chain holds (sha256sum)" test ${#HEAD} -eq 64 || t_detail "$HEAD"
t_assert_eq "after the restart: events --check" "audit trail of ev: intact, $((NLINES + 2)) lines; head $HEAD" \
    "$(pgm events ev --check 2>&1)"

# a crash in the middle of a line: the torn end is cut off, kept, and the chain goes on
pgmd_kill9
NOW=$(wc -l <"$AUDIT")
printf '{"time":"2026-12-03T07:3' >>"$AUDIT"
t_check "pgmoverd starts after SIGKILL with a torn last line" pgmd_start "$DMN"
t_check "the torn bytes are kept beside the trail" test "$(cat "$DMN"/state/ev/audit.jsonl.torn-*)" = '{"time":"2026-12-03T07:3'
t_assert_contains "the resume line says so" "$(sed -n "$((NOW + 1))p" "$AUDIT")" "torn line of 24 bytes"
pgm events ev >/dev/null
HEAD=$(chain_ok "$AUDIT" "$GENESIS")
t_check "after the torn end: the chain holds (sha256sum)" test ${#HEAD} -eq 64 || t_detail "$HEAD"
t_assert_eq "after the torn end: events --check" "audit trail of ev: intact, $((NOW + 1)) lines; head $HEAD" \
    "$(pgm events ev --check 2>&1)"
# every line durable and whole: each ends in a newline
t_assert_eq "the trail ends with a newline" "" "$(tail -c 1 "$AUDIT" | tr -d '\n')"

t_summary
