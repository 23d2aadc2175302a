/*
 * report_html.c
 *    The migration report as one self-contained HTML page: the evidence of
 *    report.c in sections, a timeline chart and a per-phase bar drawn as
 *    inline SVG. No script, no external font, style sheet or image (a
 *    Content-Security-Policy meta tag forbids any load), and a print style
 *    sheet that keeps table rows and charts whole on a page.
 *
 * Every value from the job goes through pgm_cli_html_escape: table names,
 * error messages and hook output can hold any character.
 */
#include <string.h>

#include "cli.h"
#include "common/json.h"
#include "common/util.h"
#include "pgm_config.h"

/*
 * pgm_cli_html_escape appends text to b with the five characters that mean
 * something in HTML text or in a quoted attribute value replaced by their
 * entities; NULL appends nothing. The one escaping function of the report.
 */
void
pgm_cli_html_escape(pgm_buf_t *b, const char *text)
{
	char one[2] = {0, 0};

	for (const char *p = text; p != NULL && *p; p++) {
		switch (*p) {
		case '&':
			pgm_buf_append(b, "&amp;");
			break;
		case '<':
			pgm_buf_append(b, "&lt;");
			break;
		case '>':
			pgm_buf_append(b, "&gt;");
			break;
		case '"':
			pgm_buf_append(b, "&quot;");
			break;
		case '\'':
			pgm_buf_append(b, "&#39;");
			break;
		default:
			one[0] = *p;
			pgm_buf_append(b, one);
		}
	}
}

/* shorthands: escaped text, a JSON member as escaped text, a number */
#define ESC(b, s) pgm_cli_html_escape((b), (s))

static void
esc_member(pgm_buf_t *b, const cJSON *o, const char *key, const char *fallback)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	char buf[64];

	if (cJSON_IsString(v))
		ESC(b, v->valuestring);
	else if (cJSON_IsNumber(v))
		ESC(b, pgm_cli_number_format(v->valuedouble, buf, sizeof(buf)));
	else if (cJSON_IsBool(v))
		ESC(b, cJSON_IsTrue(v) ? "yes" : "no");
	else
		ESC(b, fallback);
}

/* one table cell of a member, with a class */
static void
cell(pgm_buf_t *b, const char *cls, const cJSON *o, const char *key)
{
	pgm_buf_appendf(b, "<td class=\"%s\">", cls);
	esc_member(b, o, key, "–");
	pgm_buf_append(b, "</td>");
}

/*
 * fill appends a template of trusted markup with each {key} replaced by
 * o's member key, escaped ("–" when o has none): the page's sentences.
 */
static void
fill(pgm_buf_t *b, const cJSON *o, const char *tmpl)
{
	const char *p = tmpl, *open, *close;
	char key[64];

	while ((open = strchr(p, '{')) != NULL && (close = strchr(open, '}')) != NULL) {
		pgm_buf_appendf(b, "%.*s", (int) (open - p), p);
		snprintf(key, sizeof(key), "%.*s", (int) (close - open - 1), open + 1);
		esc_member(b, o, key, "–");
		p = close + 1;
	}
	pgm_buf_append(b, p);
}

static const char *
duration(double ms, char *buf, size_t size)
{
	return pgm_cli_duration_format(ms / 1000.0, buf, size);
}

static const char style[] =
	"<style>\n"
	":root{--ok:#1a7f37;--bad:#cf222e;--warn:#9a6700;--ink:#1f2328;--muted:#59636e;--line:#d1d9e0}\n"
	"body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;color:var(--ink);margin:24px auto;"
	"max-width:1100px;padding:0 16px;line-height:1.4;font-size:14px}\n"
	"h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;border-bottom:1px solid var(--line);"
	"padding-bottom:4px;margin-top:28px}\n"
	"table{border-collapse:collapse;width:100%;margin:8px 0}th,td{border:1px solid var(--line);"
	"padding:4px 6px;text-align:left;vertical-align:top}th{background:#f6f8fa}\n"
	"td.time{white-space:nowrap}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}code,.mono{font-family:ui-monospace,"
	"'DejaVu Sans Mono',monospace;font-size:12px;word-break:break-all}\n"
	".ok{color:var(--ok);font-weight:600}.bad{color:var(--bad);font-weight:600}.warn{color:var(--warn);"
	"font-weight:600}.muted{color:var(--muted)}\n"
	".cards{display:flex;flex-wrap:wrap;gap:12px}.card{border:1px solid var(--line);border-radius:6px;"
	"padding:8px 12px;min-width:180px}.card b{display:block;font-size:20px}\n"
	"svg{display:block;max-width:100%;height:auto}svg text{font-family:system-ui,sans-serif;font-size:11px}\n"
	"tr,.card,svg,.keep{break-inside:avoid;page-break-inside:avoid}h2{break-after:avoid;page-break-after:avoid}\n"
	"@media print{body{margin:0;max-width:none;font-size:11px}h2{margin-top:16px}a{color:inherit}"
	"thead{display:table-header-group}}\n"
	"@page{size:A4;margin:14mm}\n"
	"</style>\n";

/* a state's colour in the charts */
static const char *
state_colour(const char *state)
{
	static const struct {
		const char *state, *colour;
	} colours[] = {{"created", "#8c959f"},   {"provisioning", "#54aeff"}, {"syncing", "#0969da"},
		       {"synced", "#9ecbff"},    {"freezing", "#cf222e"},     {"frozen", "#ff8182"},
		       {"verifying", "#bf8700"}, {"verified", "#d4a72c"},     {"verify_failed", "#82071e"},
		       {"thawing", "#8250df"},   {"cutting_over", "#1a7f37"}, {"rollback_window", "#4ac26b"},
		       {"finishing", "#116329"}, {"rolling_back", "#953800"}, {"failed", "#82071e"}};

	for (size_t i = 0; i < PGM_ARRAY_LEN(colours); i++)
		if (strcmp(colours[i].state, state) == 0)
			return colours[i].colour;
	return "#afb8c1";
}

/* the time of day of an ISO time: "08:27:03" */
static void
clock_of(pgm_buf_t *b, const char *iso)
{
	char t[16] = "";

	if (iso != NULL && strlen(iso) >= 19)
		snprintf(t, sizeof(t), "%.8s", iso + 11);
	ESC(b, t);
}

/*
 * Whether a stay counts in the charts: every stay that ended, and the
 * current one of a job still moving; the time since a job ended is no
 * part of its migration (its end is a mark).
 */
static bool
stay_drawn(const cJSON *ev, const cJSON *stay)
{
	static const char *const ended[] = {"completed", "aborted", "rolled_back"};
	const char *state = pgm_cli_json_string(ev, "state", "");

	if (pgm_cli_json_string(stay, "end", NULL) != NULL)
		return true;
	for (size_t i = 0; i < PGM_ARRAY_LEN(ended); i++)
		if (strcmp(state, ended[i]) == 0)
			return false;
	return true;
}

/*
 * The timeline chart: one lane per state, a bar for each stay in it on a
 * shared time axis, and the write downtime shaded across the lanes.
 */
static void
timeline_svg(pgm_buf_t *b, const cJSON *ev)
{
	const cJSON *phases = cJSON_GetObjectItemCaseSensitive(ev, "phases"), *p;
	const cJSON *down = cJSON_GetObjectItemCaseSensitive(ev, "downtime");
	const char *lanes[32];
	int nlanes = 0, width = 1000, left = 130, right = 20, lane_h = 22, top = 10;
	int64_t t0 = -1, t1 = -1;
	double scale;

	cJSON_ArrayForEach (p, phases) {
		const char *st = pgm_cli_json_string(p, "state", "?");
		int64_t s = pgm_parse_time(pgm_cli_json_string(p, "start", ""));
		int64_t e = s + (int64_t) (stay_drawn(ev, p) ? pgm_json_num(p, "ms", 0) : 0);
		int i;

		for (i = 0; i < nlanes && strcmp(lanes[i], st) != 0; i++)
			;
		if (i == nlanes && nlanes < (int) PGM_ARRAY_LEN(lanes))
			lanes[nlanes++] = st;
		if (s >= 0 && (t0 < 0 || s < t0))
			t0 = s;
		if (e > t1)
			t1 = e;
	}
	if (nlanes == 0 || t0 < 0) {
		pgm_buf_append(b, "<p class=\"muted\">no transition recorded</p>\n");
		return;
	}
	scale = (double) (width - left - right) / (double) (t1 > t0 ? t1 - t0 : 1);
	pgm_buf_appendf(b,
			"<svg id=\"timeline-chart\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" "
			"width=\"%d\" height=\"%d\" role=\"img\" aria-label=\"timeline of the job's states\">\n",
			width, top + nlanes * lane_h + 30, width, top + nlanes * lane_h + 30);
	for (int i = 0; i < nlanes; i++) {
		pgm_buf_appendf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", left - 6, top + i * lane_h + 15);
		ESC(b, lanes[i]);
		pgm_buf_appendf(b, "</text><line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" stroke=\"#eaeef2\"/>\n", left,
				width - right, top + i * lane_h + 11, top + i * lane_h + 11);
	}
	if (pgm_cli_json_string(down, "from", NULL) != NULL) {
		int64_t s = pgm_parse_time(pgm_cli_json_string(down, "from", ""));
		double ms = pgm_json_num(down, "ms", 0);

		pgm_buf_appendf(
			b,
			"<rect class=\"downtime\" x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" "
			"fill=\"#cf222e\" fill-opacity=\"0.10\" stroke=\"#cf222e\" stroke-dasharray=\"3 2\"/>\n",
			left + (double) (s - t0) * scale, top - 4, ms * scale > 1 ? ms * scale : 1,
			nlanes * lane_h + 4);
	}
	cJSON_ArrayForEach (p, phases) {
		const char *st = pgm_cli_json_string(p, "state", "?");
		int64_t s = pgm_parse_time(pgm_cli_json_string(p, "start", ""));
		double w = (stay_drawn(ev, p) ? pgm_json_num(p, "ms", 0) : 0) * scale;
		char d[32];
		int i;

		for (i = 0; i < nlanes && strcmp(lanes[i], st) != 0; i++)
			;
		pgm_buf_appendf(
			b, "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"14\" rx=\"2\" fill=\"%s\"><title>",
			left + (double) (s - t0) * scale, top + i * lane_h + 4, w > 2 ? w : 2, state_colour(st));
		ESC(b, st);
		pgm_buf_append(b, " ");
		if (stay_drawn(ev, p))
			ESC(b, duration(pgm_json_num(p, "ms", 0), d, sizeof(d)));
		else
			pgm_buf_append(b, "(the job ended here)");
		pgm_buf_append(b, "</title></rect>\n");
	}
	for (int k = 0; k <= 4; k++) {
		int64_t t = t0 + (t1 - t0) * k / 4;
		char iso[40];

		pgm_format_time(t, iso, sizeof(iso));
		pgm_buf_appendf(b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"%s\" fill=\"#59636e\">",
				left + (double) (t - t0) * scale, top + nlanes * lane_h + 18,
				k == 0   ? "start"
				: k == 4 ? "end"
					 : "middle");
		clock_of(b, iso);
		pgm_buf_append(b, "</text>\n");
	}
	pgm_buf_append(b, "</svg>\n<p class=\"muted\">Times in UTC. The dashed band is the write downtime.</p>\n");
}

/* the per-phase bar: each stay's share of the job's time, with a legend */
static void
phase_bar_svg(pgm_buf_t *b, const cJSON *ev)
{
	const cJSON *phases = cJSON_GetObjectItemCaseSensitive(ev, "phases"), *p;
	double total = 0, x = 0, width = 1000;
	int n = 0, row = 0, col = 0;

	cJSON_ArrayForEach (p, phases) {
		if (stay_drawn(ev, p))
			total += pgm_json_num(p, "ms", 0), n++;
	}
	if (n == 0 || total <= 0)
		return;
	pgm_buf_appendf(b,
			"<svg id=\"phase-bar\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 1000 %d\" "
			"width=\"1000\" height=\"%d\" role=\"img\" aria-label=\"time of each phase\">\n",
			40 + ((n + 3) / 4) * 18, 40 + ((n + 3) / 4) * 18);
	cJSON_ArrayForEach (p, phases) {
		double w;
		char d[32];

		if (!stay_drawn(ev, p))
			continue;
		w = pgm_json_num(p, "ms", 0) / total * width;
		pgm_buf_appendf(b, "<rect x=\"%.1f\" y=\"4\" width=\"%.1f\" height=\"22\" fill=\"%s\"><title>", x,
				w > 0.5 ? w : 0.5, state_colour(pgm_cli_json_string(p, "state", "")));
		ESC(b, pgm_cli_json_string(p, "state", "?"));
		pgm_buf_append(b, " ");
		ESC(b, duration(pgm_json_num(p, "ms", 0), d, sizeof(d)));
		pgm_buf_append(b, "</title></rect>\n");
		x += w;
		pgm_buf_appendf(
			b, "<rect x=\"%d\" y=\"%d\" width=\"10\" height=\"10\" fill=\"%s\"/><text x=\"%d\" y=\"%d\">",
			col * 250, 36 + row * 18, state_colour(pgm_cli_json_string(p, "state", "")), col * 250 + 14,
			45 + row * 18);
		ESC(b, pgm_cli_json_string(p, "state", "?"));
		pgm_buf_append(b, " ");
		ESC(b, duration(pgm_json_num(p, "ms", 0), d, sizeof(d)));
		pgm_buf_append(b, "</text>\n");
		if (++col == 4)
			col = 0, row++;
	}
	pgm_buf_append(b, "</svg>\n");
}

/* a yes/no/unknown verdict with its colour */
static void
verdict(pgm_buf_t *b, const cJSON *v, const char *yes, const char *no, bool yes_good)
{
	if (cJSON_IsBool(v))
		pgm_buf_appendf(b, "<span class=\"%s\">%s</span>", cJSON_IsTrue(v) == yes_good ? "ok" : "bad",
				cJSON_IsTrue(v) ? yes : no);
	else
		pgm_buf_append(b, "<span class=\"muted\">not recorded</span>");
}

static void
section_connections(pgm_buf_t *b, const cJSON *ev)
{
	const cJSON *c;

	pgm_buf_append(b, "<h2 id=\"connections\">Source and target</h2>\n<table><thead><tr><th></th><th>URL "
			  "(password masked)</th><th>server</th><th>role</th><th>sslmode</th><th>encrypted</th>"
			  "<th>server certificate checked</th><th>TLS finding</th></tr></thead><tbody>\n");
	cJSON_ArrayForEach (c, cJSON_GetObjectItemCaseSensitive(ev, "connections")) {
		const cJSON *f = cJSON_GetObjectItemCaseSensitive(c, "tls_finding");

		pgm_buf_appendf(b, "<tr id=\"conn-%s\"><th>", pgm_cli_json_string(c, "side", "?"));
		esc_member(b, c, "side", "?");
		pgm_buf_append(b, "</th><td class=\"url mono\">");
		esc_member(b, c, "url", "–");
		pgm_buf_append(b, "</td>");
		cell(b, "version", c, "server_version");
		cell(b, "role", c, "role");
		pgm_buf_append(b, "<td class=\"sslmode\"><code>");
		esc_member(b, c, "sslmode", "prefer");
		pgm_buf_append(b, "</code> <span class=\"muted\">(");
		esc_member(b, c, "sslmode_from", "");
		pgm_buf_append(b, ")</span></td><td class=\"encrypted\">");
		if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(c, "encrypted")) &&
		    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "local")))
			pgm_buf_append(b, "<span class=\"warn\">no</span> <span class=\"muted\">(on this machine: no "
					  "network crossed)</span>");
		else
			verdict(b, cJSON_GetObjectItemCaseSensitive(c, "encrypted"), "yes", "no", true);
		pgm_buf_append(b, "</td><td class=\"cert\">");
		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "host_name_checked")))
			pgm_buf_append(b, "<span class=\"ok\">yes, and the host name</span>");
		else
			verdict(b, cJSON_GetObjectItemCaseSensitive(c, "certificate_checked"),
				"yes (not the host name)", "no", true);
		pgm_buf_append(b, "</td><td>");
		if (f != NULL)
			fill(b, f, "<b>{status}</b> {finding}");
		pgm_buf_append(b, "</td></tr>\n");
	}
	pgm_buf_append(b, "</tbody></table>\n");
}

static void
section_preflight(pgm_buf_t *b, const cJSON *ev)
{
	const cJSON *pre = cJSON_GetObjectItemCaseSensitive(ev, "preflight"), *f;
	int i = 0;

	pgm_buf_append(b, "<h2 id=\"preflight\">Preflight findings</h2>\n");
	if (cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(pre, "findings")) == 0) {
		pgm_buf_append(b, "<p class=\"muted\">no preflight recorded</p>\n");
		return;
	}
	pgm_buf_append(b, "<table><thead><tr><th>check</th><th>status</th><th>finding</th><th>fix</th></tr></thead>"
			  "<tbody>\n");
	cJSON_ArrayForEach (f, cJSON_GetObjectItemCaseSensitive(pre, "findings")) {
		const char *st = pgm_cli_json_string(f, "status", "");

		pgm_buf_appendf(b, "<tr id=\"finding-%d\">", i++);
		cell(b, "check", f, "check");
		pgm_buf_appendf(b, "<td class=\"%s\">",
				strcmp(st, "ok") == 0        ? "ok"
				: strcmp(st, "info") == 0    ? "muted"
				: strcmp(st, "warning") == 0 ? "warn"
							     : "bad");
		ESC(b, st);
		pgm_buf_append(b, "</td>");
		cell(b, "finding", f, "finding");
		cell(b, "fix", f, "fix");
		pgm_buf_append(b, "</tr>\n");
	}
	pgm_buf_append(b, "</tbody></table>\n");
}

static void
section_timeline(pgm_buf_t *b, const cJSON *ev)
{
	pgm_buf_append(b, "<h2 id=\"timeline\">Timeline</h2>\n<div class=\"keep\">\n");
	timeline_svg(b, ev);
	pgm_buf_append(b, "</div>\n<h3>Time in each phase</h3>\n<div class=\"keep\">\n");
	phase_bar_svg(b, ev);
	pgm_buf_append(b, "</div>\n");
}

/* every line of the audit trail: who, what, from, to, outcome */
static void
section_events(pgm_buf_t *b, const cJSON *ev)
{
	const cJSON *e;
	double omitted = 0;

	pgm_buf_append(b, "<h2 id=\"trail\">Every event, and who caused it</h2>\n");
	if (pgm_cli_json_number(ev, "omitted", &omitted) && omitted > 0)
		pgm_buf_appendf(b,
				"<p class=\"warn\">%.0f older events are left out of this report: the whole trail is "
				"in the job's audit.jsonl</p>\n",
				omitted);
	pgm_buf_append(b, "<table id=\"events\"><thead><tr><th class=\"num\">line</th><th>time (UTC)</th><th>who</th>"
			  "<th>command</th><th>from</th><th>to</th><th>outcome</th></tr></thead><tbody>\n");
	cJSON_ArrayForEach (e, cJSON_GetObjectItemCaseSensitive(ev, "timeline")) {
		const char *o = pgm_cli_json_string(e, "outcome", "");

		pgm_buf_append(b, "<tr class=\"event\">");
		cell(b, "num", e, "line");
		if (pgm_cli_json_string(e, "unreadable", NULL) != NULL) {
			pgm_buf_append(b, "<td colspan=\"6\" class=\"bad\">unreadable line: ");
			esc_member(b, e, "unreadable", "");
			pgm_buf_append(b, "</td></tr>\n");
			continue;
		}
		cell(b, "time mono", e, "time");
		cell(b, "who", e, "who");
		cell(b, "command", e, "command");
		cell(b, "from", e, "from");
		cell(b, "to", e, "to");
		pgm_buf_appendf(b, "<td class=\"outcome%s\">",
				strncmp(o, "error", 5) == 0     ? " bad"
				: strncmp(o, "refused", 7) == 0 ? " warn"
								: "");
		ESC(b, o);
		pgm_buf_append(b, "</td></tr>\n");
	}
	pgm_buf_append(b, "</tbody></table>\n");
}

static void
section_freeze(pgm_buf_t *b, const cJSON *ev)
{
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(ev, "freeze");
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(ev, "downtime");
	char buf[32];

	pgm_buf_append(b, "<h2 id=\"freeze\">The freeze, and proof that it held</h2>\n<p class=\"verdict\">");
	verdict(b, cJSON_GetObjectItemCaseSensitive(f, "held"), "Held", "BROKEN", true);
	pgm_buf_append(b, " — ");
	esc_member(b, f, "verdict", "");
	pgm_buf_append(b, "</p>\n<table class=\"keep\"><tbody>\n");
	{
		static const struct {
			const char *key, *label;
		} rows[] = {{"started_at", "frozen at"},
			    {"lsn_at_freeze", "WAL position at the freeze"},
			    {"sessions_terminated", "sessions ended by the freeze"},
			    {"row_changes_at_freeze", "row-change counter at the freeze (every user table)"},
			    {"row_changes_since_freeze", "row changes since the freeze"},
			    {"write_sessions", "sessions holding a write transaction"},
			    {"wal_bytes_since_freeze", "WAL written since the freeze (checkpoints, autovacuum: "
						       "reported, not judged)"},
			    {"checked_at", "checked at (end of the final copy)"}};

		for (size_t i = 0; i < PGM_ARRAY_LEN(rows); i++) {
			pgm_buf_appendf(b, "<tr><th>%s</th><td id=\"freeze-%s\" class=\"mono\">", rows[i].label,
					rows[i].key);
			esc_member(b, f, rows[i].key, "–");
			pgm_buf_append(b, "</td></tr>\n");
		}
	}
	pgm_buf_append(b, "</tbody></table>\n<h2 id=\"downtime\">Write downtime</h2>\n<p>");
	if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(d, "ms"))) {
		pgm_buf_appendf(b, "<b>%s</b> (<span id=\"downtime-ms\">%.0f</span> ms): writes stopped at ",
				duration(pgm_json_num(d, "ms", 0), buf, sizeof(buf)), pgm_json_num(d, "ms", 0));
		fill(b, d, "{from} (audit line {from_line}), until ");
		if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(d, "to_line")))
			fill(b, d, "{to} ({ended_by}, audit line {to_line})");
		else
			fill(b, d, "now ({ended_by})");
	} else
		fill(b, d, "none: {note}");
	pgm_buf_append(b, "</p>\n");
}

static void
section_verification(pgm_buf_t *b, const cJSON *ev)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(ev, "verification"), *t;
	int i = 0;

	pgm_buf_append(b, "<h2 id=\"verification\">Every table on both sides</h2>\n<p>");
	if (pgm_cli_json_string(v, "at", NULL) == NULL) {
		pgm_buf_append(b, "<span class=\"muted\">not verified yet</span></p>\n");
		return;
	}
	fill(b, v, "Verified at {at}: ");
	verdict(b, cJSON_GetObjectItemCaseSensitive(v, "ok"), "every table matches", "differences found", true);
	fill(b, v, ". Each side counted and checksummed in one snapshot on the server; checksum: {hash}.</p>\n");
	pgm_buf_append(b, "<table id=\"tables\"><thead><tr><th>table</th><th class=\"num\">source rows</th>"
			  "<th class=\"num\">target rows</th><th>source checksum</th><th>target checksum</th>"
			  "<th>match</th></tr></thead><tbody>\n");
	cJSON_ArrayForEach (t, cJSON_GetObjectItemCaseSensitive(v, "tables")) {
		pgm_buf_appendf(b, "<tr id=\"table-%d\">", i++);
		cell(b, "table-name mono", t, "table");
		cell(b, "num source-rows", t, "source_rows");
		cell(b, "num target-rows", t, "target_rows");
		cell(b, "mono source-checksum", t, "source_checksum");
		cell(b, "mono target-checksum", t, "target_checksum");
		pgm_buf_append(b, "<td class=\"match\">");
		verdict(b, cJSON_GetObjectItemCaseSensitive(t, "match"), "yes", "NO", true);
		pgm_buf_append(b, "</td></tr>\n");
	}
	pgm_buf_append(b, "</tbody></table>\n");
	if (cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(v, "sequences")) > 0) {
		pgm_buf_append(b, "<table id=\"sequences\"><thead><tr><th>sequence</th><th class=\"num\">source</th>"
				  "<th class=\"num\">target</th><th>match</th></tr></thead><tbody>\n");
		cJSON_ArrayForEach (t, cJSON_GetObjectItemCaseSensitive(v, "sequences")) {
			pgm_buf_append(b, "<tr>");
			cell(b, "mono", t, "sequence");
			cell(b, "num", t, "source_value");
			cell(b, "num", t, "target_value");
			pgm_buf_append(b, "<td>");
			verdict(b, cJSON_GetObjectItemCaseSensitive(t, "match"), "yes", "NO", true);
			pgm_buf_append(b, "</td></tr>\n");
		}
		pgm_buf_append(b, "</tbody></table>\n");
	}
	fill(b, v, "<p>Schema objects compared: <span id=\"schema-objects\">{schema_objects_compared}</span></p>\n");
}

static void
section_differences(pgm_buf_t *b, const cJSON *ev)
{
	const cJSON *d, *k;
	int i = 0;

	pgm_buf_append(b, "<h2 id=\"differences\">Differences found, and their resolution</h2>\n");
	if (cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(ev, "differences")) == 0) {
		pgm_buf_append(b, "<p id=\"no-differences\" class=\"ok\">None: no verification of this job found a "
				  "difference.</p>\n");
		return;
	}
	pgm_buf_append(b, "<table><thead><tr><th>found</th><th>kind</th><th>object</th><th>problem</th>"
			  "<th>rows named</th><th>resolution</th></tr></thead><tbody>\n");
	cJSON_ArrayForEach (d, cJSON_GetObjectItemCaseSensitive(ev, "differences")) {
		pgm_buf_appendf(b, "<tr id=\"difference-%d\">", i++);
		cell(b, "mono time", d, "found_at");
		cell(b, "kind", d, "kind");
		cell(b, "object mono", d, "object");
		cell(b, "problem bad", d, "problem");
		pgm_buf_append(b, "<td class=\"mono\">");
		cJSON_ArrayForEach (k, cJSON_GetObjectItemCaseSensitive(d, "detail")) {
			esc_member(b, k, "kind", "");
			pgm_buf_append(b, ": ");
			esc_member(b, k, cJSON_GetObjectItemCaseSensitive(k, "key") ? "key" : "row", "");
			pgm_buf_append(b, "<br>");
		}
		pgm_buf_append(b, "</td>");
		cell(b, "resolution", d, "resolution");
		pgm_buf_append(b, "</tr>\n");
	}
	pgm_buf_append(b, "</tbody></table>\n");
}

static void
section_artifacts(pgm_buf_t *b, const cJSON *ev)
{
	const cJSON *a;

	pgm_buf_append(b, "<h2 id=\"artifacts\">What pgmover created or changed on each server</h2>\n");
	if (cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(ev, "artifacts")) == 0) {
		pgm_buf_append(b, "<p class=\"muted\">nothing recorded</p>\n");
		return;
	}
	pgm_buf_append(b, "<table id=\"artifact-list\"><thead><tr><th>server</th><th>what</th><th>name</th>"
			  "<th>created at</th><th>removed at</th><th>now</th></tr></thead><tbody>\n");
	cJSON_ArrayForEach (a, cJSON_GetObjectItemCaseSensitive(ev, "artifacts")) {
		pgm_buf_append(b, "<tr class=\"artifact\">");
		cell(b, "side", a, "side");
		pgm_buf_append(b, "<td>");
		esc_member(b, a, "kind", "?");
		if (pgm_cli_json_string(a, "setting", NULL) != NULL) {
			pgm_buf_append(b, " <code>");
			esc_member(b, a, "setting", "");
			pgm_buf_append(b, "</code>");
		}
		pgm_buf_append(b, "</td>");
		cell(b, "mono", a, "name");
		cell(b, "mono time", a, "created_at");
		cell(b, "mono time", a, "removed_at");
		pgm_buf_appendf(b, "<td class=\"%s\">",
				strcmp(pgm_cli_json_string(a, "left", ""), "removed") == 0 ? "ok" : "warn");
		esc_member(b, a, "left", "");
		pgm_buf_append(b, "</td></tr>\n");
	}
	pgm_buf_append(b, "</tbody></table>\n");
}

static void
section_window(pgm_buf_t *b, const cJSON *ev)
{
	const cJSON *w = cJSON_GetObjectItemCaseSensitive(ev, "rollback_window");
	const cJSON *rev = cJSON_GetObjectItemCaseSensitive(w, "reverse"), *e;
	char buf[32];

	pgm_buf_append(b, "<h2 id=\"rollback-window\">The rollback window</h2>\n<p>");
	if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(w, "opened"))) {
		pgm_buf_append(b, "<span class=\"muted\">not opened: the job did not reach the cutover</span></p>\n");
		return;
	}
	fill(b, w, "Opened at {opened_at} (deadline {deadline}); ");
	if (pgm_cli_json_string(w, "closed_at", NULL) != NULL) {
		fill(b, w,
		     "<span id=\"window-closed\">closed at {closed_at} by <b>{closed_by}</b> ({closed_by_who}, to "
		     "{closed_to})");
		pgm_buf_appendf(b, " after %s</span>", duration(pgm_json_num(w, "ms", 0), buf, sizeof(buf)));
	} else
		pgm_buf_append(b, "<span class=\"warn\">still open</span>");
	pgm_buf_append(b, ".");
	if (rev != NULL)
		fill(b, rev,
		     " Writes made on the target carried back to the source: {transactions} transactions, "
		     "{changes} changes (slot <code>{slot}</code>).");
	pgm_buf_append(b, "</p>\n");
	cJSON_ArrayForEach (e, cJSON_GetObjectItemCaseSensitive(rev, "uncarried"))
		fill(b, e,
		     "<p class=\"warn window-uncarried\">Not carried back: <code>{table}</code>, {reason} (found at "
		     "{detected_at}).</p>\n");
	if (cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(w, "accept_loss")))
		fill(b, cJSON_GetObjectItemCaseSensitive(w, "accept_loss"),
		     "<p class=\"warn\" id=\"window-accept-loss\">Rollback accepted losing the writes made on the target "
		     "to {tables} (at {at}).</p>\n");
}

static void
section_chain(pgm_buf_t *b, const cJSON *ev)
{
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(ev, "chain");
	const cJSON *broken = cJSON_GetObjectItemCaseSensitive(c, "broken");

	pgm_buf_append(b, "<h2 id=\"audit-chain\">The audit trail's hash chain</h2>\n<p>Verdict: ");
	verdict(b, cJSON_GetObjectItemCaseSensitive(c, "intact"), "intact", "BROKEN", true);
	fill(b, c,
	     ", <span id=\"chain-lines\">{lines}</span> lines. Head (the SHA-256 the next line will carry): "
	     "<code id=\"chain-head\">{head}</code></p>\n");
	if (broken != NULL) {
		pgm_buf_append(b, "<p class=\"bad\">");
		if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(broken, "line")))
			fill(b, broken, "Broken at line {line}: ");
		fill(b, broken, "{reason}</p>\n");
	}
	fill(b, c,
	     "<p class=\"muted\">Each line of audit.jsonl carries the SHA-256 of the line before it; the first "
	     "carries that of: <code>{genesis}</code>. Write the head down: a later trail must extend it "
	     "(<code>pgmover events JOB --check</code>).</p>\n");
}

/* the cards at the top: what an auditor asks first */
static void
cards(pgm_buf_t *b, const cJSON *ev)
{
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(ev, "downtime"), *t;
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(ev, "verification");
	double rows = 0;
	int n = 0;
	char buf[32];

	cJSON_ArrayForEach (t, cJSON_GetObjectItemCaseSensitive(v, "tables")) {
		rows += pgm_json_num(t, "source_rows", 0);
		n++;
	}
	pgm_buf_append(b, "<div class=\"cards\">\n<div class=\"card\">write downtime<b>");
	if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(d, "ms")))
		ESC(b, duration(pgm_json_num(d, "ms", 0), buf, sizeof(buf)));
	else
		pgm_buf_append(b, "none");
	pgm_buf_appendf(b, "</b></div>\n<div class=\"card\">verified<b>%d tables, %.0f rows</b></div>\n", n, rows);
	pgm_buf_appendf(b, "<div class=\"card\">differences<b>%d</b></div>\n",
			cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(ev, "differences")));
	pgm_buf_append(b, "<div class=\"card\">freeze<b>");
	verdict(b, cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(ev, "freeze"), "held"), "held",
		"BROKEN", true);
	pgm_buf_append(b, "</b></div>\n<div class=\"card\">audit chain<b>");
	verdict(b, cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(ev, "chain"), "intact"), "intact",
		"BROKEN", true);
	pgm_buf_append(b, "</b></div>\n</div>\n");
}

/*
 * pgm_cli_report_html renders the evidence (pgm_cli_report_evidence) as
 * one HTML page (malloc'd).
 */
char *
pgm_cli_report_html(const cJSON *ev)
{
	pgm_buf_t b = {0};

	pgm_buf_append(&b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
			   "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
			   "style-src 'unsafe-inline'; img-src data:\">\n"
			   "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>"
			   "Migration report: ");
	esc_member(&b, ev, "job", "?");
	pgm_buf_append(&b, "</title>\n");
	pgm_buf_append(&b, style);
	fill(&b, ev,
	     "</head>\n<body>\n<h1>Migration report: <span id=\"job-name\">{job}</span></h1>\n"
	     "<p class=\"muted\">method {method}, state <b id=\"job-state\">{state}</b>; created {created_at}; "
	     "report made {generated_at} by pgmover " PGM_VERSION " from the job's audit trail and state</p>\n");
	cards(&b, ev);
	section_timeline(&b, ev);
	section_connections(&b, ev);
	section_preflight(&b, ev);
	section_events(&b, ev);
	section_freeze(&b, ev);
	section_verification(&b, ev);
	section_differences(&b, ev);
	section_artifacts(&b, ev);
	section_window(&b, ev);
	section_chain(&b, ev);
	pgm_buf_append(&b, "</body>\n</html>\n");
	return b.s;
}
