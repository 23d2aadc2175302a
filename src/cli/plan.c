/*
 * plan.c — `pgmover plan --source URL --target URL [--method M] [--set key=value ...]`:
 * the preflight run in-process (no daemon needed), read-only on both
 * servers. Exit 0 when nothing blocks a migration, 1 when a check fails.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "cli.h"
#include "daemon/config.h"
#include "pipeline/method.h"
#include "pipeline/plan/plan.h"

typedef struct plan_run {
	cJSON *report;
} plan_run_t;

static void
on_report(pgm_plan_t *p, const cJSON *report, void *data)
{
	plan_run_t *run = data;

	run->report = cJSON_Duplicate(report, 1);
}

static void
print_human(const cJSON *report)
{
	const cJSON *f, *rec = cJSON_GetObjectItem(report, "recommendation");

	cJSON_ArrayForEach (f, cJSON_GetObjectItem(report, "findings")) {
		const char *status = cJSON_GetStringValue(cJSON_GetObjectItem(f, "status"));
		const char *fix = cJSON_GetStringValue(cJSON_GetObjectItem(f, "fix"));
		const char *mark = strcmp(status, "ok") == 0        ? "ok     "
				   : strcmp(status, "info") == 0    ? "info   "
				   : strcmp(status, "warning") == 0 ? "WARNING"
								    : "ERROR  ";

		printf("%s  %s: %s\n", mark, cJSON_GetStringValue(cJSON_GetObjectItem(f, "check")),
		       cJSON_GetStringValue(cJSON_GetObjectItem(f, "finding")));
		if (fix && strcmp(status, "ok") != 0)
			printf("         -> %s\n", fix);
	}
	if (rec)
		printf("\nrecommended method: %s\n  %s\n", cJSON_GetStringValue(cJSON_GetObjectItem(rec, "method")),
		       cJSON_GetStringValue(cJSON_GetObjectItem(rec, "why")));
	printf("\n%d error(s), %d warning(s)%s\n", (int) cJSON_GetNumberValue(cJSON_GetObjectItem(report, "errors")),
	       (int) cJSON_GetNumberValue(cJSON_GetObjectItem(report, "warnings")),
	       cJSON_IsTrue(cJSON_GetObjectItem(report, "ok")) ? ": ready to migrate" : "");
}

static int
usage_error(const char *msg)
{
	pgm_cli_output_error("%s", msg);
	pgm_cli_usage_hint(pgm_cli_command_find("plan"));
	return PGM_EXIT_USAGE;
}

int
pgm_cli_plan(int argc, char **argv, bool json)
{
	const char *source = NULL, *target = NULL, *method = NULL, *v;
	cJSON *given = cJSON_CreateObject(), *options;
	char *err = NULL;
	plan_run_t run = {0};
	pgm_plan_opts_t o = {0};
	uv_loop_t loop;
	int rc;

	for (int i = 1; i < argc; i++) {
		if ((v = pgm_cli_option_value(argc, argv, &i, "--source")) != NULL)
			source = v;
		else if ((v = pgm_cli_option_value(argc, argv, &i, "--target")) != NULL)
			target = v;
		else if ((v = pgm_cli_option_value(argc, argv, &i, "--method")) != NULL)
			method = v; /* pglogical and triggers add their own checks */
		else if ((v = pgm_cli_option_value(argc, argv, &i, "--set")) != NULL) {
			char *key = strdup(v), *eq = strchr(key, '=');
			if (eq == NULL) {
				free(key);
				cJSON_Delete(given);
				return usage_error("--set needs key=value");
			}
			*eq = '\0';
			cJSON_AddStringToObject(given, key, eq + 1);
			free(key);
		}
	}
	if (source == NULL || target == NULL) {
		cJSON_Delete(given);
		return usage_error("plan needs --source URL and --target URL");
	}
	if (method && pgm_method_find(method) == NULL) {
		char *list = pgm_method_list(), *msg = pgm_asprintf("unknown method \"%s\": use %s", method, list);
		int code;

		cJSON_Delete(given);
		code = usage_error(msg);
		free(msg);
		free(list);
		return code;
	}
	options = pgm_job_options_build(NULL, given, &err);
	cJSON_Delete(given);
	if (options == NULL) {
		pgm_cli_output_error("%s", err);
		free(err);
		return PGM_EXIT_USAGE;
	}
	uv_loop_init(&loop);
	o.source = source;
	o.target = target;
	o.options = options;
	o.app_name = "pgmover plan";
	o.method = method;
	pgm_plan_start(&loop, &o, on_report, &run);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	cJSON_Delete(options);
	if (run.report == NULL) {
		pgm_cli_output_error("the preflight ended without a report");
		return PGM_EXIT_FAILED;
	}
	rc = cJSON_IsTrue(cJSON_GetObjectItem(run.report, "ok")) ? PGM_EXIT_OK : PGM_EXIT_FAILED;
	if (json)
		pgm_cli_print_envelope(run.report, rc == PGM_EXIT_OK);
	else
		print_human(run.report);
	cJSON_Delete(run.report);
	return rc;
}
