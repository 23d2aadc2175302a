/*
 * compare.c — `pgmover verify --source URL --target URL [--tables a,b]`:
 * the verification engine (src/pipeline/verify/verify.h) run in-process on its
 * own loop, no daemon needed, read-only on both servers. Prints the report
 * (--json: {"ok": OK, "result": REPORT}, or {"ok": false, "error": {...}}).
 * Exit 0 only when everything matches, 1 on any difference or error, 2 on
 * a usage error. PGMOVER_VERIFY_JOBS=N sets the connections per side
 * (default 2, as the daemon's `jobs` option; the command line has no room
 * for it: its options are the CLI's table, shared with every command), and
 * PGMOVER_VERIFY_RANGE_MB=N the smallest block range a heap larger than a
 * connection's share is cut into (default 64).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "cli.h"
#include "common/log.h"
#include "pg/dsn.h"
#include "pipeline/verify/verify.h"

typedef struct compare_run {
	cJSON *report;
	char *what;
	pgm_pg_error_t err;
	bool has_err;
} compare_run_t;

static void
on_done(pgm_verify_t *v, cJSON *report, const char *what, const pgm_pg_error_t *err, void *data)
{
	compare_run_t *run = data;

	run->report = report;
	if (report == NULL) {
		run->what = strdup(what ? what : "verification failed");
		if (err) {
			run->has_err = true;
			memcpy(run->err.sqlstate, err->sqlstate, sizeof(run->err.sqlstate));
			run->err.message = strdup(err->message);
			run->err.detail = err->detail ? strdup(err->detail) : NULL;
			run->err.hint = err->hint ? strdup(err->hint) : NULL;
		}
	}
}

static int
usage_error(const char *msg)
{
	pgm_cli_output_error("%s", msg);
	pgm_cli_usage_hint(pgm_cli_command_find("verify"));
	return PGM_EXIT_USAGE;
}

/* "a, b,c" -> {"a", "b", "c", NULL}; NULL when a name is empty */
static char **
split_tables(const char *list)
{
	char *copy = strdup(list), *save = NULL, *tok;
	char **out = calloc(strlen(list) + 2, sizeof(char *));
	int n = 0;

	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		while (*tok == ' ')
			tok++;
		for (char *e = tok + strlen(tok); e > tok && e[-1] == ' ';)
			*--e = '\0';
		if (*tok)
			out[n++] = strdup(tok);
	}
	free(copy);
	if (n == 0) {
		free(out);
		return NULL;
	}
	return out;
}

static const char *
str(const cJSON *o, const char *key)
{
	const char *s = cJSON_GetStringValue(cJSON_GetObjectItem(o, key));

	return s ? s : "";
}

/*
 * "1200 rows", or "1200 / 1199 rows" when the sides differ, "- / 5 rows"
 * when one lacks the table, "- / - rows" when both do
 */
static void
format_rows(const cJSON *t, char *buf, size_t len)
{
	const cJSON *s = cJSON_GetObjectItem(t, "source_rows"), *d = cJSON_GetObjectItem(t, "target_rows");

	if (cJSON_IsNumber(s) && cJSON_IsNumber(d) && s->valuedouble == d->valuedouble)
		snprintf(buf, len, "%.0f rows", s->valuedouble);
	else if (cJSON_IsNumber(s) && cJSON_IsNumber(d))
		snprintf(buf, len, "%.0f / %.0f rows", s->valuedouble, d->valuedouble);
	else if (cJSON_IsNumber(s))
		snprintf(buf, len, "%.0f / - rows", s->valuedouble);
	else if (cJSON_IsNumber(d))
		snprintf(buf, len, "- / %.0f rows", d->valuedouble);
	else
		snprintf(buf, len, "- / - rows");
}

static void
print_human(const cJSON *r, const char *source, const char *target)
{
	const cJSON *t, *q, *e, *schema = cJSON_GetObjectItem(r, "schema");
	int mismatches = (int) cJSON_GetNumberValue(cJSON_GetObjectItem(r, "mismatches")), width = 10;
	char dur[32], rows[64];

	cJSON_ArrayForEach (t, cJSON_GetObjectItem(r, "tables"))
		if ((int) strlen(str(t, "table")) > width)
			width = (int) strlen(str(t, "table"));
	if (width > 60)
		width = 60;
	printf("source: %s\ntarget: %s\n\n", source, target);
	cJSON_ArrayForEach (t, cJSON_GetObjectItem(r, "tables")) {
		bool ok = cJSON_IsTrue(cJSON_GetObjectItem(t, "match"));
		const cJSON *d = cJSON_GetObjectItem(t, "differences");

		format_rows(t, rows, sizeof(rows));
		pgm_cli_duration_format(cJSON_GetNumberValue(cJSON_GetObjectItem(t, "duration_ms")) / 1000.0, dur,
					sizeof(dur));
		printf("%-8s %-*s %22s %8s\n", ok ? "ok" : "DIFFERS", width, str(t, "table"), rows, dur);
		if (!ok)
			printf("         %s\n", str(t, "problem"));
		cJSON_ArrayForEach (e, cJSON_GetObjectItem(d, "keys"))
			printf("           %-8s %s\n", str(e, "kind"),
			       cJSON_GetObjectItem(e, "key") ? str(e, "key") : str(e, "row"));
		if (d && cJSON_GetNumberValue(cJSON_GetObjectItem(d, "listed")) <
				 cJSON_GetNumberValue(cJSON_GetObjectItem(d, "count")))
			printf("           ... and %.0f more\n",
			       cJSON_GetNumberValue(cJSON_GetObjectItem(d, "count")) -
				       cJSON_GetNumberValue(cJSON_GetObjectItem(d, "listed")));
	}
	cJSON_ArrayForEach (q, cJSON_GetObjectItem(r, "sequences")) {
		if (cJSON_IsTrue(cJSON_GetObjectItem(q, "match")))
			continue;
		printf("DIFFERS  sequence %s: %s", str(q, "sequence"), str(q, "problem"));
		if (cJSON_IsNumber(cJSON_GetObjectItem(q, "target_value")))
			printf(" (source %.0f, target %.0f)",
			       cJSON_GetNumberValue(cJSON_GetObjectItem(q, "source_value")),
			       cJSON_GetNumberValue(cJSON_GetObjectItem(q, "target_value")));
		printf("\n");
	}
	printf("%-8s %d sequence(s) compared\n", "", cJSON_GetArraySize(cJSON_GetObjectItem(r, "sequences")));
	cJSON_ArrayForEach (e, cJSON_GetObjectItem(schema, "differences")) {
		printf("DIFFERS  %s %s: %s\n", str(e, "kind"), str(e, "object"), str(e, "problem"));
		if (cJSON_IsString(cJSON_GetObjectItem(e, "source")) &&
		    cJSON_IsString(cJSON_GetObjectItem(e, "target")))
			printf("           source: %s\n           target: %s\n", str(e, "source"), str(e, "target"));
	}
	printf("%-8s %.0f schema object(s) compared\n", "",
	       cJSON_GetNumberValue(cJSON_GetObjectItem(schema, "objects_compared")));
	cJSON_ArrayForEach (e, cJSON_GetObjectItem(r, "warnings"))
		printf("warning: %s\n", cJSON_GetStringValue(e));
	pgm_cli_duration_format(cJSON_GetNumberValue(cJSON_GetObjectItem(r, "duration_ms")) / 1000.0, dur, sizeof(dur));
	if (mismatches == 0)
		printf("\nverified: %d table(s) match (%s)\n",
		       (int) cJSON_GetNumberValue(cJSON_GetObjectItem(r, "tables_compared")), dur);
	else
		printf("\nverification FAILED: %d difference(s) (%s)\n", mismatches, dur);
}

static void
print_error(const compare_run_t *run, bool json)
{
	if (json) {
		cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");
		char *text;

		cJSON_AddFalseToObject(o, "ok");
		/* the code a daemon's error has; "what" says which step */
		cJSON_AddStringToObject(e, "code", run->has_err ? "server_error" : "failed");
		cJSON_AddStringToObject(e, "what", run->what);
		if (run->has_err) {
			cJSON_AddStringToObject(e, "message", run->err.message);
			if (run->err.sqlstate[0])
				cJSON_AddStringToObject(e, "sqlstate", run->err.sqlstate);
			if (run->err.detail)
				cJSON_AddStringToObject(e, "detail", run->err.detail);
			if (run->err.hint || pgm_pg_error_advice(&run->err))
				cJSON_AddStringToObject(e, "hint",
							run->err.hint ? run->err.hint : pgm_pg_error_advice(&run->err));
		}
		text = cJSON_PrintUnformatted(o);
		printf("%s\n", text);
		free(text);
		cJSON_Delete(o);
		return;
	}
	if (run->has_err) {
		pgm_cli_output_error("%s: %s%s%s%s", run->what, run->err.message,
				     run->err.sqlstate[0] ? " (SQLSTATE " : "", run->err.sqlstate,
				     run->err.sqlstate[0] ? ")" : "");
		if (run->err.detail)
			fprintf(stderr, "detail: %s\n", run->err.detail);
		const char *advice = pgm_pg_error_advice(&run->err);

		pgm_cli_output_hint("%s", run->err.hint ? run->err.hint
					  : advice      ? advice
							: "check both URLs and that the servers are reachable");
	} else {
		pgm_cli_output_error("%s", run->what);
	}
}

int
pgm_cli_compare(int argc, char **argv, bool json)
{
	const char *source = NULL, *target = NULL, *v;
	char **tables = NULL, *ms, *mt;
	compare_run_t run = {0};
	pgm_verify_options_t o = {0};
	uv_loop_t loop;
	int rc;

	pgm_pg_net_from_options(NULL, false, &o.net); /* keepalives; the server's own statement timeout */
	for (int i = 1; i < argc; i++) {
		if ((v = pgm_cli_option_value(argc, argv, &i, "--source")) != NULL)
			source = v;
		else if ((v = pgm_cli_option_value(argc, argv, &i, "--target")) != NULL)
			target = v;
		else if ((v = pgm_cli_option_value(argc, argv, &i, "--tables")) != NULL) {
			if ((tables = split_tables(v)) == NULL)
				return usage_error("--tables needs at least one table name");
		} else {
			char *msg = malloc(strlen(argv[i]) + 64);
			int r;
			sprintf(msg, "unexpected argument \"%s\"", argv[i]);
			r = usage_error(msg);
			free(msg);
			return r;
		}
	}
	if (source == NULL || target == NULL)
		return usage_error("verify needs --source URL and --target URL");
	if ((v = getenv("PGMOVER_VERIFY_JOBS")) != NULL && *v) {
		char *end;
		long jobs = strtol(v, &end, 10);
		if (*end != '\0' || jobs < 1 || jobs > 32)
			return usage_error("PGMOVER_VERIFY_JOBS must be a number of connections from 1 to 32");
		o.jobs = (int) jobs;
	}
	if ((v = getenv("PGMOVER_VERIFY_RANGE_MB")) != NULL && *v) {
		char *end;
		long mb = strtol(v, &end, 10);
		if (*end != '\0' || mb < 1 || mb > 1048576)
			return usage_error("PGMOVER_VERIFY_RANGE_MB must be a size in MB from 1 to 1048576");
		o.chunk_bytes = (int64_t) mb << 20;
	}
	pgm_log_set_level(PGM_LOG_ERROR); /* warnings are in the report */
	o.tables = (const char *const *) tables;
	o.app_name = "pgmover";
	uv_loop_init(&loop);
	(void) pgm_verify_start(&loop, source, target, &o, on_done, NULL, &run);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	for (int i = 0; tables && tables[i]; i++)
		free(tables[i]);
	free(tables);
	if (run.report == NULL) {
		print_error(&run, json);
		rc = PGM_EXIT_FAILED;
	} else {
		rc = cJSON_IsTrue(cJSON_GetObjectItem(run.report, "ok")) ? PGM_EXIT_OK : PGM_EXIT_FAILED;
		if (json) {
			pgm_cli_print_envelope(run.report, rc == PGM_EXIT_OK);
		} else {
			ms = pgm_dsn_masked(source);
			mt = pgm_dsn_masked(target);
			print_human(run.report, ms, mt);
			free(ms);
			free(mt);
		}
		cJSON_Delete(run.report);
	}
	free(run.what);
	free(run.err.message);
	free(run.err.detail);
	free(run.err.hint);
	return rc;
}
