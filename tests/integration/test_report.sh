#!/usr/bin/env bash
# Integration test of the migration report: `pgmover report JOB`, opened in a real browser.
#
#   1. a real dump job on the Heroku-like test bed, created -> completed, with a table whose
#      name holds < > & (it must reach the page escaped), and a verification that finds a
#      row missing on the target, which is put back and verified again
#   2. `pgmover report`: the default file JOB-report.html, -o FILE, -o - (standard output),
#      --json (the same evidence: rows per table, downtime, the chain's head, TLS modes);
#      refusals: a job that does not exist, a path that cannot be written (nothing left)
#   3. Debian's headless Chromium: a screenshot (a non-empty PNG), the rendered DOM (the
#      rows, checksums, the write downtime and the chain's head shown are those of
#      state.json, audit.jsonl and `events --check`), print to PDF (a non-empty PDF), and
#      no console message at all: the page's Content-Security-Policy blocks and logs any
#      load, shown by a copy of the page with an external image, which is logged
#   4. a line of the trail edited: the report is written, says where the chain breaks, exit 1
#
# PGM_REPORT_PNG=FILE keeps a screenshot of the page's top (README's docs/report.png).
# Run from the source tree as root (or postgres):
#   PGM_BUILD=build-dev bash tests/integration/test_report.sh
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

t_prereq test_report pgmoverd pgmover
t_need_cmd test_report chromium

WORK=$(t_tmpdir) || exit 1
BED=$WORK/bed
DMN=$WORK/daemon
OUT=$WORK/out
mkdir -p "$OUT"

cleanup() {
    pgmd_cleanup
    t_bed_remove "$WORK" "$BED"
}
trap cleanup EXIT

# the browser: headless, its own profile, no sandbox (the suite runs as root, where
# Chromium's sandbox refuses to start), every console message to stderr
browser() {
    timeout 120 chromium --headless --no-sandbox --disable-gpu --user-data-dir="$WORK/chromium" \
        --enable-logging=stderr --v=0 "$@"
}

# ms_of ISO: milliseconds since the epoch of a time pgmoverd wrote (2026-12-03T07:31:02.123Z)
ms_of() {
    local iso=$1
    printf '%s%s' "$(date -u -d "${iso%.*}Z" +%s)" "$(cut -c1-3 <<<"${iso##*.}")"
}

# html TEXT: TEXT as the page must show it, escaped (& first)
html() { sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' <<<"$1"; }

# the bed, the data, the daemon
if ! "$TB" start "$BED" >"$WORK/testbed.log" 2>&1; then
    cat "$WORK/testbed.log" >&2
    t_fail "testbed" "could not start the test bed"
    t_summary
    exit 1
fi
# shellcheck source=/dev/null
. "$BED/env"
setup_ok=1
"$TB" createdb "$BED" src rp >/dev/null || setup_ok=0
"$TB" createdb "$BED" dst t_rp >/dev/null || setup_ok=0
q "$(src_url rp)" "CREATE TABLE public.accounts (id int PRIMARY KEY, owner text NOT NULL, balance numeric);
    INSERT INTO public.accounts SELECT i, 'owner ' || i, i * 1.5 FROM generate_series(1, 5000) AS i;
    CREATE TABLE public.\"a<b>&c\" (id serial PRIMARY KEY, body text);
    INSERT INTO public.\"a<b>&c\" (body) SELECT '<i>note</i> ' || i FROM generate_series(1, 37) AS i;" >/dev/null ||
    setup_ok=0
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
AUDIT=$DMN/state/rp/audit.jsonl
STATE=$DMN/state/rp/state.json

# ---------------------------------------------------------------------------------------
echo "# 1. a dump job to completed"
whole_job() {
    cmd "create" create rp --source "$(src_url rp)" --target "$(tgt_url t_rp)" --method dump \
        --set cutover_command=true
    cmd "start" start rp
    wait_state "synced" rp synced 120
    cmd "freeze" freeze rp
    wait_state "verified" rp verified 120
    # a difference found, then resolved: a row lost on the target, put back, verified again
    q "$(tgt_url t_rp)" "DELETE FROM public.accounts WHERE id = 42" >/dev/null
    cmd "verify (a row missing on the target)" verify rp
    wait_state "verify_failed" rp verify_failed 120
    q "$(tgt_url t_rp)" "INSERT INTO public.accounts VALUES (42, 'owner 42', 63.0)" >/dev/null
    cmd "verify again (the row put back)" verify rp
    wait_state "verified again" rp verified 120
    cmd "cutover" cutover rp
    wait_state "rollback_window" rp rollback_window 60
    cmd "finish" finish rp
    wait_state "completed" rp completed 60
    [[ $(pgmd_state rp) == completed ]]
}
if ! whole_job; then
    t_fail "the job completes" "$(fail_detail rp)"
    t_summary
    exit 1
fi

# what the report must show, from the job's own files
HEAD=$(pgm events rp --check | sed -n 's/.*; head \([0-9a-f]\{64\}\)$/\1/p')
t_check "events --check gives the chain's head" test ${#HEAD} -eq 64
frz=$(jq -r 'select(.to == "freezing" and .from != .to) | .time' "$AUDIT" | tail -n 1)
win=$(jq -r 'select(.to == "rollback_window" and .from != .to) | .time' "$AUDIT" | tail -n 1)
DOWN=$(($(ms_of "$win") - $(ms_of "$frz")))
NTABLES=$(jq '.verify.tables | length' "$STATE")
t_assert_eq "state.json: two tables verified" "2" "$NTABLES"

# ---------------------------------------------------------------------------------------
echo "# 2. pgmover report"
cd "$OUT" || exit 1
msg=$(pgm report rp 2>&1)
t_assert_eq "report exits 0" "0" "$?"
t_assert_eq "report says where it wrote" "wrote the report of rp to rp-report.html" "$msg"
t_check "the default file is JOB-report.html in the current directory" test -s "$OUT/rp-report.html"
pgm report rp -o "$OUT/other.html" 2>/dev/null
t_assert_eq "report -o FILE exits 0" "0" "$?"
t_check "-o FILE writes FILE" test -s "$OUT/other.html"
t_assert_contains "-o -: the page on standard output" "$(pgm report rp -o - 2>/dev/null | head -n 1)" "<!DOCTYPE html>"
t_assert_eq "the page is the same each time but for the time it was made" \
    "$(grep -v 'report made' "$OUT/rp-report.html")" "$(grep -v 'report made' "$OUT/other.html")"
JS=$(pgm --json report rp)
t_assert_eq "report --json exits 0" "0" "$?"
t_assert_eq "--json: the envelope" "true" "$(jq .ok <<<"$JS")"
t_assert_eq "--json: rows per table, as state.json" "$(jq -c '[.verify.tables[] | [.table, .source_rows, .target_rows]]' "$STATE")" \
    "$(jq -c '[.result.verification.tables[] | [.table, .source_rows, .target_rows]]' <<<"$JS")"
t_assert_eq "--json: the write downtime ($DOWN ms)" "$DOWN" "$(jq .result.downtime.ms <<<"$JS")"
t_assert_eq "--json: the chain's head" "$HEAD" "$(jq -r .result.chain.head <<<"$JS")"
t_assert_eq "--json: every audit line in the timeline" "$(wc -l <"$AUDIT")" "$(jq '.result.timeline | length' <<<"$JS")"
t_assert_eq "--json: the source's sslmode (require), encrypted, its certificate not checked" "require true false" \
    "$(jq -r '.result.connections[0] | "\(.sslmode) \(.encrypted) \(.certificate_checked)"' <<<"$JS")"
t_assert_eq "--json: the freeze held, 0 row changes" "true 0" \
    "$(jq -r '.result.freeze | "\(.held) \(.row_changes_since_freeze)"' <<<"$JS")"
t_assert_eq "--json: the freeze's counter, as state.json" "$(jq .facts.freeze.row_changes_at_freeze "$STATE")" \
    "$(jq .result.freeze.row_changes_at_freeze <<<"$JS")"
t_assert_eq "--json: the rollback window closed by finish" "finish" "$(jq -r .result.rollback_window.closed_by <<<"$JS")"
t_assert_eq "--json: what was made on the target, all removed" "removed removed" \
    "$(jq -r '[.result.artifacts[] | select(.side == "target") | .left] | join(" ")' <<<"$JS")"
t_assert_eq "--json: the difference found, kept after the verification that passed" \
    "table public.accounts missing" "$(jq -r '.result.differences[] | "\(.kind) \(.object) \(.detail[0].kind)"' <<<"$JS")"
t_assert_eq "--json: the row it named" "$(jq -r '.facts.verifications_failed[0].tables[0].differences.keys[0].key' "$STATE")" \
    "$(jq -r '.result.differences[0].detail[0].key' <<<"$JS")"
t_assert_contains "--json: its resolution: a new verify, which found no difference" \
    "$(jq -r '.result.differences[0].resolution' <<<"$JS")" "verify by root (uid 0) at"
t_assert_contains "--json: ... a later verification found no difference" \
    "$(jq -r '.result.differences[0].resolution' <<<"$JS")" "found no difference"
t_assert_eq "no password in the page" "0" "$(grep -c "$SOURCE_OWNER_PASSWORD" "$OUT/rp-report.html")"
# refusals
msg=$(pgm report nosuch 2>&1)
t_assert_eq "report of a job that does not exist exits 1" "1" "$?"
t_assert_contains "it says so" "$msg" "nosuch"
msg=$(pgm report rp -o "$OUT/no/such/dir/r.html" 2>&1)
t_assert_eq "report to a path that cannot be written exits 1" "1" "$?"
t_assert_contains "it names the path" "$msg" "could not write the report to \"$OUT/no/such/dir/r.html\""
t_assert_contains "and what to do" "$msg" "hint: give a writable path with -o FILE"
t_check "nothing is left there" test ! -e "$OUT/no"

# ---------------------------------------------------------------------------------------
echo "# 3. the page in a real browser"
PAGE=file://$OUT/rp-report.html
browser --screenshot="$OUT/shot.png" --window-size=1200,3000 "$PAGE" >"$OUT/shot.log" 2>&1
t_assert_eq "screenshot: chromium exits 0" "0" "$?"
t_assert_eq "screenshot: a PNG" "89504e470d0a1a0a" "$(head -c 8 "$OUT/shot.png" 2>/dev/null | od -An -tx1 | tr -d ' \n')"
t_check "screenshot: not empty (over 20 kB)" test "$(stat -c %s "$OUT/shot.png" 2>/dev/null || echo 0)" -gt 20000
if [[ -n ${PGM_REPORT_PNG:-} ]]; then
    browser --screenshot="$PGM_REPORT_PNG" --window-size=1000,1150 "$PAGE" >/dev/null 2>&1
    t_check "the README's screenshot is kept in $PGM_REPORT_PNG" test -s "$PGM_REPORT_PNG"
fi

browser --dump-dom "$PAGE" >"$OUT/dom.html" 2>"$OUT/dom.log"
t_assert_eq "dump-dom: chromium exits 0" "0" "$?"
t_assert_eq "the rendered page has a table row per table" "$NTABLES" "$(grep -c '<tr id="table-[0-9]*">' "$OUT/dom.html")"
bad=0
for ((i = 0; i < NTABLES; i++)); do
    row=$(grep -o "<tr id=\"table-$i\">.*</tr>" "$OUT/dom.html")
    want="<tr id=\"table-$i\"><td class=\"table-name mono\">$(html "$(jq -r ".verify.tables[$i].table" "$STATE")")</td>"
    want+="<td class=\"num source-rows\">$(jq ".verify.tables[$i].source_rows" "$STATE")</td>"
    want+="<td class=\"num target-rows\">$(jq ".verify.tables[$i].target_rows" "$STATE")</td>"
    want+="<td class=\"mono source-checksum\">$(jq -r ".verify.tables[$i].source_checksum" "$STATE")</td>"
    want+="<td class=\"mono target-checksum\">$(jq -r ".verify.tables[$i].target_checksum" "$STATE")</td>"
    if [[ $row != "$want"* ]]; then
        bad=$((bad + 1))
        t_detail "table $i: shown [$row], state.json says [$want...]" || true
    fi
done
t_assert_eq "each table's name, rows and checksums on both sides shown as state.json has them" "0" "$bad"
t_assert_contains "the name with < > & is shown escaped, as text" "$(cat "$OUT/dom.html")" \
    '<td class="table-name mono">public.a&lt;b&gt;&amp;c</td>'
t_assert_eq "no element was made of the table's name" "0" "$(grep -c '<b>&amp;c\|<b>&c' "$OUT/dom.html")"
t_assert_eq "the write downtime shown (ms) is the trail's, freeze to cutover" "$DOWN" \
    "$(sed -n 's/.*<span id="downtime-ms">\([0-9]*\)<\/span>.*/\1/p' "$OUT/dom.html")"
t_assert_eq "the chain's head shown is events --check's" "$HEAD" \
    "$(sed -n 's/.*<code id="chain-head">\([0-9a-f]*\)<\/code>.*/\1/p' "$OUT/dom.html")"
t_assert_contains "the difference found is shown with the row it named" \
    "$(sed -n '/<tr id="difference-0">/,/<\/tr>/p' "$OUT/dom.html")" \
    "missing: $(html "$(jq -r '.result.differences[0].detail[0].key' <<<"$JS")")<br>"
t_assert_eq "the state shown" "completed" "$(sed -n 's/.*<b id="job-state">\([a-z_]*\)<\/b>.*/\1/p' "$OUT/dom.html")"
t_assert_eq "every audit line is a row of the timeline" "$(wc -l <"$AUDIT")" "$(grep -c '<tr class="event">' "$OUT/dom.html")"
t_assert_eq "the freeze counter shown is state.json's" "$(jq .facts.freeze.row_changes_at_freeze "$STATE")" \
    "$(sed -n 's/.*id="freeze-row_changes_at_freeze" class="mono">\([0-9]*\)<.*/\1/p' "$OUT/dom.html")"
t_check "the timeline chart and the per-phase bar are drawn (SVG)" \
    grep -q '<svg id="timeline-chart".*' "$OUT/dom.html"
t_check "the per-phase bar" grep -q '<svg id="phase-bar"' "$OUT/dom.html"
t_assert_eq "no console message (errors, blocked loads)" "" "$(grep -E 'CONSOLE|Uncaught' "$OUT/dom.log")"
# the same check on a page that loads something: the policy blocks it and the log says so
sed 's|<body>|<body><img alt="" src="http://127.0.0.1:9/x.png">|' "$OUT/rp-report.html" >"$OUT/loads.html"
browser --dump-dom "file://$OUT/loads.html" >/dev/null 2>"$OUT/loads.log"
t_assert_contains "a load from the page is blocked and logged (so the check above can fail)" \
    "$(grep CONSOLE "$OUT/loads.log")" "violates the following Content Security Policy directive"

browser --print-to-pdf="$OUT/rp.pdf" --no-pdf-header-footer "$PAGE" >"$OUT/pdf.log" 2>&1
t_assert_eq "print to PDF: chromium exits 0" "0" "$?"
t_assert_eq "print to PDF: a PDF" "%PDF" "$(head -c 4 "$OUT/rp.pdf" 2>/dev/null)"
t_check "print to PDF: not empty (over 20 kB)" test "$(stat -c %s "$OUT/rp.pdf" 2>/dev/null || echo 0)" -gt 20000

# ---------------------------------------------------------------------------------------
echo "# 4. a trail edited behind pgmoverd's back"
M=$(grep -n '"command":"freeze"' "$AUDIT" | head -n 1 | cut -d: -f1)
cp "$AUDIT" "$WORK/audit.orig"
sed -i "${M}s/\"uid\":$(id -u),/\"uid\":4711,/" "$AUDIT"
msg=$(pgm report rp -o "$OUT/broken.html" 2>&1)
t_assert_eq "report of a broken trail exits 1" "1" "$?"
t_assert_contains "it warns" "$msg" "warning: the audit trail of rp is not intact"
t_check "the report is written all the same" test -s "$OUT/broken.html"
t_assert_contains "the page says the chain is broken, at line $M" "$(cat "$OUT/broken.html")" "Broken at line $M:"
t_assert_contains "and shows the line as it reads now" "$(cat "$OUT/broken.html")" "root (uid 4711)"
cp "$WORK/audit.orig" "$AUDIT"

cd "$ROOT" || exit 1
t_summary
