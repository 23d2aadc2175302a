/*
 * output.c
 *    Human rendering of pgmoverd replies and watch events.
 *
 * The daemon only ever adds fields, so every renderer prints the fields it
 * knows in a fixed, readable form and then whatever else it finds
 * generically as indented "key: value" lines. Sizes are shown in binary
 * units, durations as 1h02m / 1m20s / 850ms, times exactly as the daemon
 * sent them (ISO-8601 UTC).
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "common/util.h"

static void output_object_rest(FILE *out, int indent, const cJSON *object, const char *const *skip);

/*
 * With --json, the client's own errors (the daemon unreachable, a usage
 * error) are also kept, the first with its hint, and printed at exit as
 * the envelope a daemon refusal has: {"ok": false, "error": {...}}.
 */
static bool json_errors;
static char *json_message, *json_hint;

void
pgm_cli_json_errors(bool on)
{
	json_errors = on;
}

void
pgm_cli_json_errors_flush(int rc)
{
	cJSON *root, *error;
	char *text;

	if (json_errors && json_message != NULL && rc != PGM_EXIT_OK) {
		root = cJSON_CreateObject();
		cJSON_AddFalseToObject(root, "ok");
		error = cJSON_AddObjectToObject(root, "error");
		cJSON_AddStringToObject(error, "code",
					rc == PGM_EXIT_UNREACHABLE ? "unreachable"
					: rc == PGM_EXIT_USAGE     ? "usage"
								   : "client_error");
		cJSON_AddStringToObject(error, "message", json_message);
		if (json_hint != NULL)
			cJSON_AddStringToObject(error, "hint", json_hint);
		text = cJSON_PrintUnformatted(root);
		if (text != NULL)
			printf("%s\n", text);
		cJSON_free(text);
		cJSON_Delete(root);
	}
	free(json_message);
	free(json_hint);
	json_message = json_hint = NULL;
}

/*
 * A report the client made itself (plan, stand-alone verify) in the
 * envelope of a daemon's reply: {"ok": OK, "result": REPORT}, one line.
 */
void
pgm_cli_print_envelope(const cJSON *result, bool ok)
{
	cJSON *root = cJSON_CreateObject();
	char *text;

	cJSON_AddBoolToObject(root, "ok", ok);
	cJSON_AddItemReferenceToObject(root, "result", (cJSON *) result);
	text = cJSON_PrintUnformatted(root);
	if (text != NULL)
		printf("%s\n", text);
	cJSON_free(text);
	cJSON_Delete(root);
}

/*
 * pgm_cli_output_error prints "pgmover: error: MESSAGE" to stderr.
 */
void
pgm_cli_output_error(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("pgmover: error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (json_errors && json_message == NULL) {
		va_start(ap, fmt);
		if (vasprintf(&json_message, fmt, ap) < 0)
			json_message = NULL;
		va_end(ap);
	}
}

/*
 * pgm_cli_output_hint prints "hint: HINT" to stderr, after an error.
 */
void
pgm_cli_output_hint(const char *fmt, ...)
{
	va_list ap;

	fputs("hint: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (json_errors && json_message != NULL && json_hint == NULL) {
		va_start(ap, fmt);
		if (vasprintf(&json_hint, fmt, ap) < 0)
			json_hint = NULL;
		va_end(ap);
	}
}

/*
 * pgm_cli_output_reply_error prints the "error" member of an ok:false reply:
 * message, then detail and hint when the daemon gave them.
 */
void
pgm_cli_output_reply_error(const cJSON *error)
{
	const char *message = pgm_cli_json_string(error, "message", NULL);
	const char *detail = pgm_cli_json_string(error, "detail", NULL);
	const char *hint = pgm_cli_json_string(error, "hint", NULL);

	if (message == NULL)
		message = pgm_cli_json_string(error, "code", "pgmoverd refused the request without saying why");
	pgm_cli_output_error("%s", message);
	if (detail != NULL)
		fprintf(stderr, "detail: %s\n", detail);
	if (hint != NULL)
		pgm_cli_output_hint("%s", hint);
}

/*
 * array_is_scalar tells whether no element of an array is a container.
 */
static bool
array_is_scalar(const cJSON *array)
{
	const cJSON *item;

	cJSON_ArrayForEach (item, array) {
		if (cJSON_IsObject(item) || cJSON_IsArray(item))
			return false;
	}
	return true;
}

/*
 * json_print_compact prints a container as one line of JSON.
 */
static void
json_print_compact(FILE *out, const cJSON *value)
{
	char *text = cJSON_PrintUnformatted(value);

	fputs(text != NULL ? text : "?", out);
	cJSON_free(text);
}

/*
 * object_print_inline prints an object on one line as "k=v k=v", nested
 * containers as compact JSON; used for the rows of an array of objects.
 */
static void
object_print_inline(FILE *out, const cJSON *object)
{
	const cJSON *item;
	char buf[128];

	cJSON_ArrayForEach (item, object) {
		fprintf(out, "%s%s=", item == object->child ? "" : " ", item->string);
		if (cJSON_IsObject(item) || cJSON_IsArray(item))
			json_print_compact(out, item);
		else
			fputs(pgm_cli_scalar_format(item->string, item, buf, sizeof(buf)), out);
	}
}

/*
 * pgm_cli_output_value prints one field generically at the given indent:
 * scalars as "key: value", objects as "key:" plus their fields indented
 * further, arrays of scalars comma-joined, arrays of objects one per line.
 * Null fields are left out; empty containers show as "(none)".
 */
void
pgm_cli_output_value(FILE *out, int indent, const char *key, const cJSON *value)
{
	const cJSON *item;
	char buf[128];

	if (value == NULL || cJSON_IsNull(value))
		return;
	if (!cJSON_IsObject(value) && !cJSON_IsArray(value)) {
		fprintf(out, "%*s%s: %s\n", indent, "", key, pgm_cli_scalar_format(key, value, buf, sizeof(buf)));
		return;
	}
	if (cJSON_GetArraySize(value) == 0) {
		fprintf(out, "%*s%s: (none)\n", indent, "", key);
		return;
	}
	if (cJSON_IsArray(value) && array_is_scalar(value)) {
		fprintf(out, "%*s%s: ", indent, "", key);
		cJSON_ArrayForEach (item, value)
			fprintf(out, "%s%s", item == value->child ? "" : ", ",
				pgm_cli_scalar_format(key, item, buf, sizeof(buf)));
		fputc('\n', out);
		return;
	}
	fprintf(out, "%*s%s:\n", indent, "", key);
	if (cJSON_IsObject(value)) {
		output_object_rest(out, indent + 2, value, NULL);
		return;
	}
	cJSON_ArrayForEach (item, value) {
		fprintf(out, "%*s- ", indent + 2, "");
		if (cJSON_IsObject(item))
			object_print_inline(out, item);
		else if (cJSON_IsArray(item))
			json_print_compact(out, item);
		else
			fputs(pgm_cli_scalar_format(key, item, buf, sizeof(buf)), out);
		fputc('\n', out);
	}
}

/*
 * output_object_rest prints every field of object generically, except the
 * NULL-terminated list of names in skip (those were rendered specially).
 */
static void
output_object_rest(FILE *out, int indent, const cJSON *object, const char *const *skip)
{
	const cJSON *item;

	cJSON_ArrayForEach (item, object) {
		bool skipped = false;

		for (const char *const *s = skip; s != NULL && *s != NULL; s++)
			skipped = skipped || strcmp(*s, item->string) == 0;
		if (!skipped)
			pgm_cli_output_value(out, indent, item->string, item);
	}
}

/*
 * output_warning prints one entry of "warnings": a string, or an object
 * with message and hint, or anything else generically.
 */
static void
output_warning(FILE *out, const cJSON *warning)
{
	static const char *const known[] = {"message", "hint", NULL};

	if (cJSON_IsString(warning))
		fprintf(out, "  warning: %s\n", warning->valuestring);
	else if (cJSON_IsObject(warning) && pgm_cli_json_string(warning, "message", NULL) != NULL) {
		fprintf(out, "  warning: %s\n", pgm_cli_json_string(warning, "message", ""));
		if (pgm_cli_json_string(warning, "hint", NULL) != NULL)
			fprintf(out, "    hint: %s\n", pgm_cli_json_string(warning, "hint", ""));
		output_object_rest(out, 4, warning, known);
	} else
		pgm_cli_output_value(out, 2, "warning", warning);
}

/*
 * pgm_cli_output_status_full prints one job's status object whole (status
 * -v): a headline, the DSNs, progress, lag, times, error and warnings, then
 * every other field (options, facts, verify, ...) generically.
 */
void
pgm_cli_output_status_full(FILE *out, const cJSON *status)
{
	static const char *const known[] = {"name",
					    "state",
					    "method",
					    "since",
					    "source",
					    "target",
					    "step",
					    "lag_bytes",
					    "lag_seconds",
					    "freeze_started_at",
					    "rollback_deadline",
					    "error",
					    "warnings",
					    NULL};
	static const char *const error_known[] = {"message", "detail", "hint", NULL};
	static const char *const step_known[] = {"name",        "tables_done",        "tables_total", "bytes_done",
						 "bytes_total", "rate_bytes_per_sec", "eta_seconds",  NULL};
	const cJSON *step = cJSON_GetObjectItemCaseSensitive(status, "step");
	const cJSON *error = cJSON_GetObjectItemCaseSensitive(status, "error");
	const cJSON *warnings = cJSON_GetObjectItemCaseSensitive(status, "warnings");
	const cJSON *item;
	char buf[512];

	fprintf(out, "%s  %s  (%s, since %s)\n", pgm_cli_json_string(status, "name", "?"),
		pgm_cli_json_string(status, "state", "?"), pgm_cli_json_string(status, "method", "?"),
		pgm_cli_json_string(status, "since", "?"));
	pgm_cli_output_value(out, 2, "source", cJSON_GetObjectItemCaseSensitive(status, "source"));
	pgm_cli_output_value(out, 2, "target", cJSON_GetObjectItemCaseSensitive(status, "target"));
	if (cJSON_IsObject(step)) {
		fprintf(out, "  %s\n", pgm_cli_progress_format(step, buf, sizeof(buf)));
		output_object_rest(out, 4, step, step_known);
	}
	if (pgm_cli_lag_format(status, buf, sizeof(buf)) != NULL)
		fprintf(out, "  lag: %s\n", buf);
	pgm_cli_output_value(out, 2, "freeze started", cJSON_GetObjectItemCaseSensitive(status, "freeze_started_at"));
	pgm_cli_output_value(out, 2, "rollback deadline",
			     cJSON_GetObjectItemCaseSensitive(status, "rollback_deadline"));
	if (cJSON_IsObject(error)) {
		fprintf(out, "  error: %s\n", pgm_cli_json_string(error, "message", "(no message)"));
		pgm_cli_output_value(out, 4, "detail", cJSON_GetObjectItemCaseSensitive(error, "detail"));
		pgm_cli_output_value(out, 4, "hint", cJSON_GetObjectItemCaseSensitive(error, "hint"));
		output_object_rest(out, 4, error, error_known);
	} else
		pgm_cli_output_value(out, 2, "error", error);
	if (cJSON_IsArray(warnings)) {
		cJSON_ArrayForEach (item, warnings)
			output_warning(out, item);
	} else
		pgm_cli_output_value(out, 2, "warnings", warnings);
	output_object_rest(out, 2, status, known);
}

/*
 * pgm_cli_output_status_table prints a NAME STATE METHOD SINCE table, columns
 * sized to their widest value, from an array of status or job objects.
 */
void
pgm_cli_output_status_table(FILE *out, const cJSON *jobs)
{
	static const char *const columns[] = {"name", "state", "method", "since"};
	static const char *const headers[] = {"NAME", "STATE", "METHOD", "SINCE"};
	int width[4];
	const cJSON *job;

	if (cJSON_GetArraySize(jobs) == 0) {
		fprintf(out, "no jobs\n");
		return;
	}
	for (int c = 0; c < 4; c++) {
		width[c] = (int) strlen(headers[c]);
		cJSON_ArrayForEach (job, jobs) {
			int w = (int) strlen(pgm_cli_json_string(job, columns[c], "-"));

			width[c] = w > width[c] ? w : width[c];
		}
	}
	fprintf(out, "%-*s  %-*s  %-*s  %s\n", width[0], headers[0], width[1], headers[1], width[2], headers[2],
		headers[3]);
	cJSON_ArrayForEach (job, jobs)
		fprintf(out, "%-*s  %-*s  %-*s  %s\n", width[0], pgm_cli_json_string(job, "name", "-"), width[1],
			pgm_cli_json_string(job, "state", "-"), width[2], pgm_cli_json_string(job, "method", "-"),
			pgm_cli_json_string(job, "since", "-"));
	/* a job that did not load: what is wrong and what to do, under the table */
	cJSON_ArrayForEach (job, jobs) {
		const cJSON *error = cJSON_GetObjectItemCaseSensitive(job, "error");

		if (strcmp(pgm_cli_json_string(job, "state", ""), "corrupt") != 0)
			continue;
		fprintf(out, "\n%s: %s\n", pgm_cli_json_string(job, "name", "-"),
			pgm_cli_json_string(error, "message", "its state could not be read"));
		if (pgm_cli_json_string(error, "hint", NULL) != NULL)
			fprintf(out, "  hint: %s\n", pgm_cli_json_string(error, "hint", ""));
	}
}

/*
 * pgm_cli_output_describe prints the daemon's state machine, one transition per
 * line: "from[,from...] --event--> to  (step)  comment", columns aligned.
 */
void
pgm_cli_output_describe(FILE *out, const cJSON *machine)
{
	const cJSON *rows = cJSON_GetObjectItemCaseSensitive(machine, "transitions");
	const cJSON *row;
	char arrow[1024];
	char step[256];
	char line[2048];
	int arrow_width = 0;
	int step_width = 0;

	cJSON_ArrayForEach (row, rows) {
		int a = (int) strlen(pgm_cli_transition_format(row, arrow, sizeof(arrow)));
		int s = (int) strlen(pgm_cli_json_string(row, "step", "")) + 2;

		arrow_width = a > arrow_width ? a : arrow_width;
		step_width = s > step_width ? s : step_width;
	}
	cJSON_ArrayForEach (row, rows) {
		const char *name = pgm_cli_json_string(row, "step", NULL);
		const char *comment = pgm_cli_json_string(row, "comment", "");

		size_t len;

		snprintf(step, sizeof(step), "(%s)", name != NULL ? name : "");
		len = (size_t) snprintf(line, sizeof(line), "%-*s  %-*s  %s", arrow_width,
					pgm_cli_transition_format(row, arrow, sizeof(arrow)), step_width,
					name != NULL ? step : "", comment);
		/* rows without step or comment would otherwise end in padding */
		len = len < sizeof(line) ? len : sizeof(line) - 1;
		while (len > 0 && line[len - 1] == ' ')
			line[--len] = '\0';
		fprintf(out, "%s\n", line);
	}
}

/*
 * event_clock returns the HH:MM:SS of the event's ISO-8601 "at", or the
 * current UTC time for events that carry none (progress ticks).
 */
static const char *
event_clock(const cJSON *event, char *buf, size_t size)
{
	const char *at = pgm_cli_json_string(event, "at", NULL);
	const char *t = at != NULL ? strchr(at, 'T') : NULL;
	time_t now;
	struct tm tm;

	if (t != NULL && strlen(t + 1) >= 8)
		snprintf(buf, size, "%.8s", t + 1);
	else if (at != NULL)
		snprintf(buf, size, "%s", at);
	else {
		now = time(NULL);
		gmtime_r(&now, &tm);
		strftime(buf, size, "%H:%M:%S", &tm);
	}
	return buf;
}

/*
 * event_error_print prints an error carried by a watch event: message, then
 * detail and hint lines when present.
 */
static void
event_error_print(FILE *out, const char *clock, const char *job, const cJSON *error)
{
	fprintf(out, "%s %s: error: %s\n", clock, job, pgm_cli_json_string(error, "message", "(no message)"));
	if (pgm_cli_json_string(error, "detail", NULL) != NULL)
		fprintf(out, "detail: %s\n", pgm_cli_json_string(error, "detail", ""));
	if (pgm_cli_json_string(error, "hint", NULL) != NULL)
		fprintf(out, "hint: %s\n", pgm_cli_json_string(error, "hint", ""));
}

/*
 * pgm_cli_output_event prints one watch event on one line (plus a hint line for
 * errors): transitions, progress ticks, errors, and unknown events as JSON.
 */
void
pgm_cli_output_event(FILE *out, const cJSON *event)
{
	const char *kind = pgm_cli_json_string(event, "event", "?");
	const char *job = pgm_cli_json_string(event, "job", "?");
	const cJSON *status = cJSON_GetObjectItemCaseSensitive(event, "status");
	const cJSON *error = cJSON_GetObjectItemCaseSensitive(event, "error");
	char clock[64];
	char buf[512];

	event_clock(event, clock, sizeof(clock));
	if (strcmp(kind, "transition") == 0) {
		fprintf(out, "%s %s: %s -> %s\n", clock, job, pgm_cli_json_string(event, "from", "?"),
			pgm_cli_json_string(event, "to", "?"));
		/* a transition to failed carries the reason */
		if (cJSON_IsObject(error))
			event_error_print(out, clock, job, error);
	} else if (strcmp(kind, "progress") == 0) {
		const cJSON *step = cJSON_GetObjectItemCaseSensitive(status, "step");

		fprintf(out, "%s %s: %s", clock, job, pgm_cli_json_string(status, "state", "?"));
		if (cJSON_IsObject(step))
			fprintf(out, "  %s", pgm_cli_progress_format(step, buf, sizeof(buf)));
		if (pgm_cli_lag_format(status, buf, sizeof(buf)) != NULL)
			fprintf(out, "  lag %s", buf);
		fputc('\n', out);
	} else if (strcmp(kind, "error") == 0)
		event_error_print(out, clock, job, cJSON_IsObject(error) ? error : event);
	else if (strcmp(kind, "warning") == 0) {
		const cJSON *w = cJSON_GetObjectItemCaseSensitive(event, "warning");

		fprintf(out, "%s %s: warning: %s\n", clock, job, pgm_cli_json_string(w, "message", "?"));
		if (pgm_cli_json_string(w, "hint", NULL) != NULL)
			fprintf(out, "%s %s: hint: %s\n", clock, job, pgm_cli_json_string(w, "hint", ""));
	} else {
		char *text = cJSON_PrintUnformatted(event);

		fprintf(out, "%s %s: %s %s\n", clock, job, kind, text != NULL ? text : "");
		cJSON_free(text);
	}
}

/* seconds since an ISO-8601 UTC time the daemon sent, or -1 */
static double
seconds_since(const char *iso)
{
	int64_t ms = iso != NULL ? pgm_parse_time(iso) : -1;

	return ms > 0 ? (double) (pgm_now_ms() - ms) / 1000.0 : -1;
}

/*
 * The freeze the operator can expect, from what the rehearsal measured:
 * "expected freeze 14.7s (rehearsal: data 10.2s, indexes and constraints
 * 2.3s; verification 2.2s)", or NULL when nothing was measured yet.
 */
static const char *
expected_freeze(const cJSON *status, char *buf, size_t size)
{
	const cJSON *facts = cJSON_GetObjectItemCaseSensitive(status, "facts");
	const cJSON *rehearsal =
		cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(facts, "copies"), "rehearsal");
	const cJSON *verify = cJSON_GetObjectItemCaseSensitive(status, "verify");
	double total_ms, data_ms, verify_ms = -1;
	char a[32], b[32], c[32], d[32], e[32];

	if (!pgm_cli_json_number(rehearsal, "duration_ms", &total_ms))
		return NULL;
	if (!pgm_cli_json_number(rehearsal, "data_ms", &data_ms))
		data_ms = total_ms;
	pgm_cli_json_number(verify, "duration_ms", &verify_ms);
	{
		/* each phase measured (copy engine): the schema and the rest are not index builds */
		const cJSON *ph = cJSON_GetObjectItemCaseSensitive(rehearsal, "phases_ms");
		double post_ms;

		if (pgm_cli_json_number(ph, "post-data", &post_ms) && post_ms <= total_ms - data_ms) {
			char f[32];
			double other_ms = total_ms - data_ms - post_ms;

			if (verify_ms >= 0)
				snprintf(buf, size,
					 "%s (rehearsal copy %s: schema and setup %s, data %s, indexes and constraints "
					 "%s; verification %s)",
					 pgm_cli_duration_format((total_ms + verify_ms) / 1000.0, a, sizeof(a)),
					 pgm_cli_duration_format(total_ms / 1000.0, b, sizeof(b)),
					 pgm_cli_duration_format(other_ms / 1000.0, f, sizeof(f)),
					 pgm_cli_duration_format(data_ms / 1000.0, c, sizeof(c)),
					 pgm_cli_duration_format(post_ms / 1000.0, d, sizeof(d)),
					 pgm_cli_duration_format(verify_ms / 1000.0, e, sizeof(e)));
			else
				snprintf(buf, size,
					 "%s + verification (rehearsal copy: schema and setup %s, data %s, indexes and "
					 "constraints %s)",
					 pgm_cli_duration_format(total_ms / 1000.0, a, sizeof(a)),
					 pgm_cli_duration_format(other_ms / 1000.0, f, sizeof(f)),
					 pgm_cli_duration_format(data_ms / 1000.0, b, sizeof(b)),
					 pgm_cli_duration_format(post_ms / 1000.0, c, sizeof(c)));
			return buf;
		}
	}
	if (verify_ms >= 0)
		snprintf(buf, size, "%s (rehearsal copy %s: data %s, indexes and constraints %s; verification %s)",
			 pgm_cli_duration_format((total_ms + verify_ms) / 1000.0, a, sizeof(a)),
			 pgm_cli_duration_format(total_ms / 1000.0, b, sizeof(b)),
			 pgm_cli_duration_format(data_ms / 1000.0, c, sizeof(c)),
			 pgm_cli_duration_format((total_ms - data_ms) / 1000.0, d, sizeof(d)),
			 pgm_cli_duration_format(verify_ms / 1000.0, e, sizeof(e)));
	else
		snprintf(buf, size, "%s + verification (rehearsal copy: data %s, indexes and constraints %s)",
			 pgm_cli_duration_format(total_ms / 1000.0, a, sizeof(a)),
			 pgm_cli_duration_format(data_ms / 1000.0, b, sizeof(b)),
			 pgm_cli_duration_format((total_ms - data_ms) / 1000.0, c, sizeof(c)));
	return buf;
}

/*
 * pgm_cli_output_status prints one job on one screen, like pg_autoctl show
 * state: the state and how long it has been so, what the step is doing
 * (phase, percent, rate, ETA), lag, the freeze so far and expected, the
 * error, warnings, and the commands accepted next. -v prints everything.
 */
void
pgm_cli_output_status(FILE *out, const cJSON *status)
{
	const char *name = pgm_cli_json_string(status, "name", "?");
	const cJSON *step = cJSON_GetObjectItemCaseSensitive(status, "step");
	const cJSON *error = cJSON_GetObjectItemCaseSensitive(status, "error");
	const cJSON *warnings = cJSON_GetObjectItemCaseSensitive(status, "warnings");
	const cJSON *failed_in = cJSON_GetObjectItemCaseSensitive(status, "failed_in");
	const cJSON *verify = cJSON_GetObjectItemCaseSensitive(status, "verify");
	const char *freeze_at = pgm_cli_json_string(status, "freeze_started_at", NULL);
	const char *deadline = pgm_cli_json_string(status, "rollback_deadline", NULL);
	const cJSON *reverse =
		cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(status, "facts"), "reverse");
	double retained = 0, retries = 0, next = 0;
	char b[32];
	const char *state = pgm_cli_json_string(status, "state", "?");
	const char *allowed = pgm_cli_json_string(status, "allowed_commands", "none");
	const cJSON *item;
	char buf[512], a[32];
	int nwarn = cJSON_GetArraySize(warnings), shown = 0;

	fprintf(out, "%s  %s", name, state);
	if (cJSON_IsObject(failed_in))
		fprintf(out, " (in %s)", pgm_cli_json_string(failed_in, "state", "?"));
	fprintf(out, "  for %s  (method %s)\n",
		pgm_cli_duration_format(seconds_since(pgm_cli_json_string(status, "since", NULL)), a, sizeof(a)),
		pgm_cli_json_string(status, "method", "?"));
	fprintf(out, "  source:   %s\n", pgm_cli_json_string(status, "source", "?"));
	fprintf(out, "  target:   %s\n", pgm_cli_json_string(status, "target", "?"));
	if (cJSON_IsObject(step))
		fprintf(out, "  progress: %s\n", pgm_cli_progress_format(step, buf, sizeof(buf)));
	if (pgm_cli_lag_format(status, buf, sizeof(buf)) != NULL)
		fprintf(out, "  lag:      %s\n", buf);
	if (freeze_at != NULL)
		fprintf(out, "  frozen:   for %s (since %s)\n",
			pgm_cli_duration_format(seconds_since(freeze_at), a, sizeof(a)), freeze_at);
	if (expected_freeze(status, buf, sizeof(buf)) != NULL &&
	    (strcmp(state, "synced") == 0 || strcmp(state, "syncing") == 0 || freeze_at != NULL))
		fprintf(out, "  expected: freeze %s\n", buf);
	if (cJSON_IsObject(verify)) {
		const cJSON *ok = cJSON_GetObjectItemCaseSensitive(verify, "ok");
		double tables = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(verify, "tables")), diffs = -1;

		pgm_cli_json_number(verify, "mismatches", &diffs);
		fprintf(out, "  verified: %s", cJSON_IsTrue(ok) ? "source and target match" : "DIFFERENCES found");
		if (tables > 0)
			fprintf(out, ", %s tables", pgm_cli_number_format(tables, a, sizeof(a)));
		if (diffs > 0)
			fprintf(out, ", %s differ", pgm_cli_number_format(diffs, a, sizeof(a)));
		fprintf(out, " (%s)\n", pgm_cli_json_string(verify, "at", "?"));
		if (!cJSON_IsTrue(ok)) {
			const cJSON *t;
			int listed = 0;

			fprintf(out, "  differ:   ");
			cJSON_ArrayForEach (t, cJSON_GetObjectItemCaseSensitive(verify, "tables")) {
				if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t, "match")) || listed++ >= 10)
					continue;
				fprintf(out, "%s%s", listed > 1 ? ", " : "", pgm_cli_json_string(t, "table", "?"));
			}
			fprintf(out, "%s\n", listed > 10 ? ", ... (status -v)" : "");
		}
	}
	if (deadline != NULL && seconds_since(deadline) > 0 && strcmp(state, "failed") == 0)
		fprintf(out,
			"  rollback: the window's deadline passed at %s: \"pgmover retry\" resumes the window, "
			"which then finishes (no rollback); the reverse slot stays on the target until then\n",
			deadline);
	else if (deadline != NULL)
		fprintf(out, "  rollback: possible until %s\n", deadline);
	if (cJSON_IsObject(reverse) && pgm_cli_json_number(reverse, "retained_bytes", &retained))
		fprintf(out, "  reverse:  the slot retains %s of WAL on the target\n",
			pgm_cli_bytes_format(retained, a, sizeof(a)));
	if (cJSON_IsObject(reverse) && pgm_cli_json_number(reverse, "retries", &retries))
		fprintf(out, "  reverse:  retrying (%s in a row, next in %s): %s\n",
			pgm_cli_number_format(retries, a, sizeof(a)),
			pgm_cli_duration_format(pgm_cli_json_number(reverse, "retry_in_ms", &next) ? next / 1000.0 : 0,
						b, sizeof(b)),
			pgm_cli_json_string(reverse, "error", "?"));
	if (cJSON_IsObject(error)) {
		fprintf(out, "  error:    %s\n", pgm_cli_json_string(error, "message", "(no message)"));
		if (pgm_cli_json_string(error, "detail", NULL) != NULL)
			fprintf(out, "    detail: %s\n", pgm_cli_json_string(error, "detail", ""));
		if (pgm_cli_json_string(error, "hint", NULL) != NULL)
			fprintf(out, "    hint: %s\n", pgm_cli_json_string(error, "hint", ""));
	}
	/* the newest warnings matter most; three at most on the screen */
	cJSON_ArrayForEach (item, warnings) {
		if (nwarn - shown++ > 3)
			continue;
		fprintf(out, "  warning:  %s\n",
			cJSON_IsString(item) ? item->valuestring : pgm_cli_json_string(item, "message", "?"));
	}
	if (nwarn > 3)
		fprintf(out, "            (%d warnings in all: status -v)\n", nwarn);
	if (strcmp(allowed, "none") != 0)
		fprintf(out, "  next:     %s  (pgmover COMMAND %s)\n", allowed, name);
	else if (strcmp(state, "completed") == 0 || strcmp(state, "aborted") == 0 || strcmp(state, "rolled_back") == 0)
		fprintf(out, "  next:     nothing: the job has ended (pgmover delete %s frees its name)\n", name);
	else
		fprintf(out, "  next:     nothing yet: pgmoverd is working (pgmover watch %s follows it)\n", name);
	fprintf(out, "  (pgmover status %s -v: everything; --json: the same as JSON)\n", name);
}

/* pglogical's per-table sync states (pglogical/pglogical_sync.h, SYNC_STATUS_*) in words */
static const char *
sync_state_name(const char *st)
{
	static const char *const names[][2] = {
		{"i", "waiting"},     {"s", "copying the schema"}, {"d", "copying"}, {"c", "building constraints"},
		{"w", "catching up"}, {"u", "catching up"},        {"y", "copied"},  {"r", "replicating"},
		{NULL, NULL}};

	for (int i = 0; names[i][0]; i++)
		if (strcmp(names[i][0], st) == 0)
			return names[i][1];
	return st;
}

/*
 * status JOB --tables: each table's progress in the running copy (the
 * copy engine's), or each table's sync state (pglogical), one line each.
 */
void
pgm_cli_output_tables(FILE *out, const cJSON *status)
{
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(status, "tables_progress");
	const cJSON *sync = cJSON_GetObjectItem(
		cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(status, "facts"), "pglogical"), "sync"),
		"tables");
	const cJSON *t;
	int width = 5;

	if (cJSON_IsArray(arr)) {
		cJSON_ArrayForEach (t, arr) {
			int w = (int) strlen(pgm_cli_json_string(t, "table", ""));
			width = w > width ? w : width;
		}
		fprintf(out, "\n%-*s  %-8s %s\n", width, "table", "state", "copied");
		cJSON_ArrayForEach (t, arr) {
			double done = 0, total = 0, cd = 0, ct = 0;
			char a[32], b[32];

			pgm_cli_json_number(t, "bytes_done", &done);
			pgm_cli_json_number(t, "bytes_total", &total);
			pgm_cli_json_number(t, "chunks_done", &cd);
			pgm_cli_json_number(t, "chunks_total", &ct);
			fprintf(out, "%-*s  %-8s %s of %s", width, pgm_cli_json_string(t, "table", "?"),
				pgm_cli_json_string(t, "state", "?"), pgm_cli_bytes_format(done, a, sizeof(a)),
				pgm_cli_bytes_format(total, b, sizeof(b)));
			if (total > 0)
				fprintf(out, " (%.0f%%)", 100.0 * (done < total ? done : total) / total);
			if (ct > 1)
				fprintf(out, ", parts %.0f/%.0f", cd, ct);
			fputc('\n', out);
		}
		return;
	}
	if (cJSON_IsObject(sync) && cJSON_GetArraySize(sync) > 0) {
		cJSON_ArrayForEach (t, sync) {
			int w = (int) strlen(t->string);
			width = w > width ? w : width;
		}
		fprintf(out, "\n%-*s  %s\n", width, "table", "state");
		cJSON_ArrayForEach (t, sync)
			fprintf(out, "%-*s  %s\n", width, t->string,
				cJSON_IsString(t) ? sync_state_name(t->valuestring) : "?");
		return;
	}
	fprintf(out, "\nno per-table progress now: tables are listed while a copy runs (copy engine) or while "
		     "pglogical syncs\n");
}
