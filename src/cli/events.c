/*
 * events.c
 *    Human rendering of a job's audit trail (pgmover events): one line per
 *    event -- line number, local time, who, command, from -> to, outcome --
 *    the hash chain's verdict, and the job's summary: write downtime, the
 *    time of each phase, and what verification compared.
 *
 * Phase times come from the trail itself (the time of each transition);
 * the copies' durations and the verification counts from the job's state
 * (facts.copies, verify). Everything here is pure formatting of what the
 * daemon sent, so that the unit tests can run it on a fixture.
 */
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "common/util.h"

/* an event's time as milliseconds since the epoch, or -1 */
static int64_t
event_ms(const cJSON *e)
{
	const char *t = pgm_cli_json_string(e, "time", NULL);

	return t != NULL ? pgm_parse_time(t) : -1;
}

/* "2026-12-03 08:31:02 CET": the operator's local time (TZ) */
const char *
pgm_cli_local_time(int64_t ms, char *buf, size_t size)
{
	time_t secs = (time_t) (ms / 1000);
	struct tm tm;

	if (ms < 0 || localtime_r(&secs, &tm) == NULL || strftime(buf, size, "%Y-%m-%d %H:%M:%S %Z", &tm) == 0)
		snprintf(buf, size, "?");
	return buf;
}

/* who sent it: "alice (uid 1000)", "pgmoverd" for the daemon's own events */
static const char *
event_who(const cJSON *e, char *buf, size_t size)
{
	const cJSON *uid = cJSON_GetObjectItemCaseSensitive(e, "uid");
	const char *user = pgm_cli_json_string(e, "user", NULL);

	if (pgm_cli_json_string(e, "by", NULL) != NULL)
		snprintf(buf, size, "%s", pgm_cli_json_string(e, "by", "?"));
	else if (!cJSON_IsNumber(uid))
		snprintf(buf, size, "unknown uid");
	else {
		/* lines written before the user was recorded: the name this machine gives now */
		struct passwd *pw = user == NULL ? getpwuid((uid_t) uid->valuedouble) : NULL;

		if (user == NULL && pw != NULL)
			user = pw->pw_name;
		snprintf(buf, size, "%s (uid %.0f)", user != NULL ? user : "?", uid->valuedouble);
	}
	return buf;
}

/* the command an operator sent, or the daemon's event in parentheses */
static const char *
event_command(const cJSON *e, char *buf, size_t size)
{
	if (pgm_cli_json_string(e, "command", NULL) != NULL)
		snprintf(buf, size, "%s", pgm_cli_json_string(e, "command", "?"));
	else
		snprintf(buf, size, "(%s)", pgm_cli_json_string(e, "event", "?"));
	return buf;
}

/* "synced → freezing"; one state when it did not change; "→ created" for the first */
static const char *
event_transition(const cJSON *e, char *buf, size_t size)
{
	const char *from = pgm_cli_json_string(e, "from", NULL);
	const char *to = pgm_cli_json_string(e, "to", NULL);

	if (from != NULL && to != NULL && strcmp(from, to) != 0)
		snprintf(buf, size, "%s → %s", from, to);
	else if (from != NULL)
		snprintf(buf, size, "%s", from);
	else if (to != NULL)
		snprintf(buf, size, "→ %s", to);
	else
		snprintf(buf, size, "-");
	return buf;
}

/*
 * The outcome in three words: "ok" (with what the daemon said), "refused:
 * why", "error: message". Stage lines say what they did ("sent",
 * "written"): ok; a stage that failed is an error.
 */
const char *
pgm_cli_event_outcome(const cJSON *e, char *buf, size_t size)
{
	const char *o = pgm_cli_json_string(e, "outcome", "ok");

	if (strncmp(o, "ok", 2) == 0 || strncmp(o, "refused", 7) == 0 || strncmp(o, "error", 5) == 0)
		snprintf(buf, size, "%s", o);
	else if (strstr(o, "fail") != NULL)
		snprintf(buf, size, "error: %s", o);
	else
		snprintf(buf, size, "ok: %s", o);
	return buf;
}

/* the columns of one event */
typedef struct row_s {
	char no[16], time[64], who[96], cmd[96], move[96], outcome[1024];
} row_t;

static void
row_fill(row_t *r, const cJSON *e)
{
	const cJSON *line = cJSON_GetObjectItemCaseSensitive(e, "line");

	snprintf(r->no, sizeof(r->no), "%.0f", cJSON_IsNumber(line) ? line->valuedouble : 0);
	if (pgm_cli_json_string(e, "unreadable", NULL) != NULL) {
		snprintf(r->time, sizeof(r->time), "?");
		snprintf(r->who, sizeof(r->who), "?");
		snprintf(r->cmd, sizeof(r->cmd), "?");
		snprintf(r->move, sizeof(r->move), "?");
		snprintf(r->outcome, sizeof(r->outcome), "unreadable line: %s",
			 pgm_cli_json_string(e, "unreadable", ""));
		return;
	}
	pgm_cli_local_time(event_ms(e), r->time, sizeof(r->time));
	event_who(e, r->who, sizeof(r->who));
	event_command(e, r->cmd, sizeof(r->cmd));
	event_transition(e, r->move, sizeof(r->move));
	pgm_cli_event_outcome(e, r->outcome, sizeof(r->outcome));
}

/* display width of UTF-8 text (the arrow is one column, three bytes) */
static int
text_width(const char *s)
{
	int w = 0;

	for (; *s; s++)
		w += ((unsigned char) *s & 0xC0) != 0x80;
	return w;
}

static void
cell_print(FILE *out, const char *text, int width)
{
	fprintf(out, "%s%*s", text, width - text_width(text), "");
}

/*
 * pgm_cli_output_event_lines prints the events as aligned columns, one line
 * each, under a header.
 */
void
pgm_cli_output_event_lines(FILE *out, const cJSON *events)
{
	int n = cJSON_GetArraySize(events), i = 0, w[5] = {4, 4, 3, 7, 9};
	row_t *rows = calloc((size_t) (n > 0 ? n : 1), sizeof(*rows));
	const cJSON *e;

	if (rows == NULL)
		return;
	cJSON_ArrayForEach (e, events) {
		row_t *r = &rows[i++];
		const char *cells[5];

		row_fill(r, e);
		cells[0] = r->no, cells[1] = r->time, cells[2] = r->who, cells[3] = r->cmd, cells[4] = r->move;
		for (int c = 0; c < 5; c++)
			w[c] = text_width(cells[c]) > w[c] ? text_width(cells[c]) : w[c];
	}
	fprintf(out, "%*s  ", w[0], "LINE");
	cell_print(out, "TIME", w[1]);
	fputs("  ", out);
	cell_print(out, "WHO", w[2]);
	fputs("  ", out);
	cell_print(out, "COMMAND", w[3]);
	fputs("  ", out);
	cell_print(out, "STATE", w[4]);
	fputs("  OUTCOME\n", out);
	for (i = 0; i < n; i++) {
		fprintf(out, "%*s  ", w[0], rows[i].no);
		cell_print(out, rows[i].time, w[1]);
		fputs("  ", out);
		cell_print(out, rows[i].who, w[2]);
		fputs("  ", out);
		cell_print(out, rows[i].cmd, w[3]);
		fputs("  ", out);
		cell_print(out, rows[i].move, w[4]);
		fprintf(out, "  %s\n", rows[i].outcome);
	}
	free(rows);
}

/*
 * pgm_cli_output_chain prints the hash chain's verdict: the head when
 * intact, else the first broken line, what was expected and what was
 * found. Returns PGM_EXIT_OK when intact, PGM_EXIT_FAILED otherwise.
 */
int
pgm_cli_output_chain(FILE *out, const char *job, const cJSON *chain)
{
	const cJSON *broken = cJSON_GetObjectItemCaseSensitive(chain, "broken");
	double lines = 0;

	pgm_cli_json_number(chain, "lines", &lines);
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(chain, "intact"))) {
		fprintf(out, "audit trail of %s: intact, %.0f lines; head %s\n", job, lines,
			pgm_cli_json_string(chain, "head", "?"));
		return PGM_EXIT_OK;
	}
	/* no broken line: the chain holds, but not over the whole trail (lines older than the chain) */
	if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(broken, "line")))
		fprintf(out, "audit trail of %s: BROKEN at line %.0f of %.0f", job,
			cJSON_GetObjectItemCaseSensitive(broken, "line")->valuedouble, lines);
	else
		fprintf(out, "audit trail of %s: NOT VERIFIED whole", job);
	fprintf(out, "\n  %s\n", pgm_cli_json_string(broken, "reason", "(no reason given)"));
	if (pgm_cli_json_string(broken, "expected", NULL) != NULL)
		fprintf(out, "  expected: %s\n", pgm_cli_json_string(broken, "expected", ""));
	if (pgm_cli_json_string(broken, "found", NULL) != NULL)
		fprintf(out, "  found:    %s\n", pgm_cli_json_string(broken, "found", ""));
	return PGM_EXIT_FAILED;
}

/* ---- the summary ---- */

/* a state's last stay: entered at [0], left at [1] (-1: not yet), and the event that left it */
typedef struct stay_s {
	int64_t in, out;
	const cJSON *left_by;
} stay_t;

/* the last stay in state, or in == -1; a transition is an event whose from and to differ */
static stay_t
last_stay(const cJSON *events, const char *state)
{
	stay_t s = {-1, -1, NULL};
	const cJSON *e;

	cJSON_ArrayForEach (e, events) {
		const char *from = pgm_cli_json_string(e, "from", NULL);
		const char *to = pgm_cli_json_string(e, "to", NULL);

		if (to == NULL || (from != NULL && strcmp(from, to) == 0))
			continue;
		if (strcmp(to, state) == 0) {
			s.in = event_ms(e);
			s.out = -1;
			s.left_by = NULL;
		} else if (from != NULL && strcmp(from, state) == 0 && s.in >= 0 && s.out < 0) {
			s.out = event_ms(e);
			s.left_by = e;
		}
	}
	return s;
}

/* the first transition into state at or after ms, or -1 */
static int64_t
entered_after(const cJSON *events, const char *state, int64_t ms, const cJSON **by)
{
	const cJSON *e;

	cJSON_ArrayForEach (e, events) {
		const char *from = pgm_cli_json_string(e, "from", NULL);
		const char *to = pgm_cli_json_string(e, "to", NULL);

		if (to != NULL && strcmp(to, state) == 0 && (from == NULL || strcmp(from, to) != 0) &&
		    event_ms(e) >= ms) {
			if (by)
				*by = e;
			return event_ms(e);
		}
	}
	return -1;
}

/* "4.2s" from milliseconds */
static const char *
ms_format(double ms, char *buf, size_t size)
{
	return pgm_cli_duration_format(ms / 1000.0, buf, size);
}

/* a copy's record in facts.copies: " (rehearsal copy 11.9s: data 10.1s, indexes and constraints 1.8s)" */
static const char *
copy_detail(const cJSON *status, const char *label, const char *what, char *buf, size_t size)
{
	const cJSON *rec = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(status, "facts"), "copies"), label);
	const cJSON *ph = cJSON_GetObjectItemCaseSensitive(rec, "phases_ms");
	double total, data, post;
	char a[32], b[32], c[32], d[32];

	buf[0] = '\0';
	if (!pgm_cli_json_number(rec, "duration_ms", &total))
		return buf;
	/* the copy engine times each phase: the schema and the rest are not index builds */
	if (pgm_cli_json_number(rec, "data_ms", &data) && pgm_cli_json_number(ph, "post-data", &post) &&
	    post <= total - data)
		snprintf(buf, size, "  (%s %s: schema and setup %s, data %s, indexes and constraints %s)", what,
			 ms_format(total, a, sizeof(a)), ms_format(total - data - post, d, sizeof(d)),
			 ms_format(data, b, sizeof(b)), ms_format(post, c, sizeof(c)));
	else if (pgm_cli_json_number(rec, "data_ms", &data))
		snprintf(buf, size, "  (%s %s: data %s, indexes and constraints %s)", what,
			 ms_format(total, a, sizeof(a)), ms_format(data, b, sizeof(b)),
			 ms_format(total - data, c, sizeof(c)));
	else
		snprintf(buf, size, "  (%s %s)", what, ms_format(total, a, sizeof(a)));
	return buf;
}

/* one phase line: "  sync             12s  (…)", "so far" for a stay not ended */
static void
phase_print(FILE *out, const char *name, stay_t s, int64_t now, const char *detail)
{
	char a[32];

	if (s.in < 0)
		return;
	if (s.out >= 0)
		fprintf(out, "  %-16s %s%s\n", name, ms_format((double) (s.out - s.in), a, sizeof(a)), detail);
	else
		fprintf(out, "  %-16s %s so far%s\n", name, ms_format((double) (now - s.in), a, sizeof(a)), detail);
}

/*
 * One freeze that began at in: how long writes were stopped, until the end
 * of the cutover that followed (writes go to the target), of a thaw, or of
 * an abort -- whichever came first; "so far" while none has.
 */
static void
freeze_print(FILE *out, const char *label, const cJSON *events, int64_t in, int64_t now)
{
	int64_t cut = entered_after(events, "rollback_window", in, NULL);
	int64_t thawed = entered_after(events, "synced", in, NULL);
	int64_t aborted = entered_after(events, "aborted", in, NULL);
	int64_t end = cut;
	const char *how = "cutover done";
	char a[32], b[64], c[64];

	if (end < 0 || (thawed >= 0 && thawed < end))
		end = thawed, how = "thawed";
	if (end < 0 || (aborted >= 0 && aborted < end))
		end = aborted, how = "aborted, source thawed";
	if (end >= 0)
		fprintf(out, "  %-16s %s  (frozen %s → %s %s)\n", label, ms_format((double) (end - in), a, sizeof(a)),
			pgm_cli_local_time(in, b, sizeof(b)), how, pgm_cli_local_time(end, c, sizeof(c)));
	else
		fprintf(out, "  %-16s %s so far  (frozen since %s)\n", label,
			ms_format((double) (now - in), a, sizeof(a)), pgm_cli_local_time(in, b, sizeof(b)));
}

/*
 * pgm_cli_output_summary prints what an auditor asks first: how long
 * writes were stopped (from the last freeze to the end of the cutover, or
 * to the end of a thaw; each earlier freeze, thawed, on a line of its
 * own), how long each phase took, and what verification compared
 * (tables, rows, differences). now is the time of an open phase's "so
 * far" (the current time; a parameter for the tests).
 */
void
pgm_cli_output_summary(FILE *out, const cJSON *status, const cJSON *events, int64_t now)
{
	const cJSON *verify = cJSON_GetObjectItemCaseSensitive(status, "verify");
	stay_t freeze = last_stay(events, "freezing"), window = last_stay(events, "rollback_window");
	char a[32], b[64], c[64], detail[256];
	const cJSON *e;

	fprintf(out, "summary of %s (%s, method %s)\n", pgm_cli_json_string(status, "name", "?"),
		pgm_cli_json_string(status, "state", "?"), pgm_cli_json_string(status, "method", "?"));
	if (freeze.in >= 0) {
		freeze_print(out, "write downtime", events, freeze.in, now);
		/* the freezes before the last one, each ended by a thaw */
		cJSON_ArrayForEach (e, events) {
			const char *from = pgm_cli_json_string(e, "from", NULL);
			const char *to = pgm_cli_json_string(e, "to", NULL);

			if (to != NULL && strcmp(to, "freezing") == 0 && (from == NULL || strcmp(from, to) != 0) &&
			    event_ms(e) < freeze.in)
				freeze_print(out, "  and earlier", events, event_ms(e), now);
		}
	} else
		fprintf(out, "  %-16s none: the source was never frozen\n", "write downtime");
	phase_print(out, "sync", last_stay(events, "syncing"), now,
		    copy_detail(status, "rehearsal", "rehearsal copy", detail, sizeof(detail)));
	phase_print(out, "freeze", freeze, now, copy_detail(status, "final", "final copy", detail, sizeof(detail)));
	phase_print(out, "verify", last_stay(events, "verifying"), now, "");
	phase_print(out, "cutover", last_stay(events, "cutting_over"), now, "");
	if (window.in >= 0) {
		const char *closed = window.left_by == NULL ? "" : pgm_cli_json_string(window.left_by, "command", NULL);

		if (closed == NULL)
			closed = pgm_cli_json_string(window.left_by, "event", "");
		snprintf(detail, sizeof(detail), "%s%s%s", closed[0] ? "  (closed by " : "", closed,
			 closed[0] ? ")" : "");
		phase_print(out, "rollback window", window, now, detail);
	}
	phase_print(out, "rollback", last_stay(events, "rolling_back"), now, "");
	if (cJSON_IsObject(verify)) {
		const cJSON *tables = cJSON_GetObjectItemCaseSensitive(verify, "tables"), *t;
		double rows = 0, diff_rows = 0, mismatches = 0, v;
		int ntables = 0, differ = 0;

		cJSON_ArrayForEach (t, tables) {
			ntables++;
			if (pgm_cli_json_number(t, "source_rows", &v))
				rows += v;
			if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t, "match")))
				differ++;
			if (pgm_cli_json_number(cJSON_GetObjectItemCaseSensitive(t, "differences"), "count", &v))
				diff_rows += v;
		}
		pgm_cli_json_number(verify, "mismatches", &mismatches);
		fprintf(out, "  %-16s %d tables, %s rows", "verified", ntables,
			pgm_cli_number_format(rows, a, sizeof(a)));
		if (mismatches == 0 && differ == 0)
			fprintf(out, "; differences: none");
		else
			fprintf(out, "; differences: %.0f (%d tables differ, %s rows)", mismatches, differ,
				pgm_cli_number_format(diff_rows, b, sizeof(b)));
		if (pgm_cli_json_string(verify, "at", NULL) != NULL)
			fprintf(out, "  (%s)",
				pgm_cli_local_time(pgm_parse_time(pgm_cli_json_string(verify, "at", "")), c,
						   sizeof(c)));
		fputc('\n', out);
	} else
		fprintf(out, "  %-16s not yet\n", "verified");
}
