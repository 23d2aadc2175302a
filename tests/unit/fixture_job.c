/*
 * fixture_job.c
 *    The in-memory job of fixture_job.h.
 */
#include <check.h>
#include <stdlib.h>

#include "common/util.h"
#include "daemon/config.h"
#include "fixture_job.h"

pgm_job_t *
pgm_fixture_job(const char *dir)
{
	pgm_job_t *job = calloc(1, sizeof(*job));
	char *err = NULL;

	ck_assert_ptr_nonnull(job);
	job->name = pgm_strdup("shop");
	job->method = pgm_strdup("dump");
	job->source_dsn = pgm_strdup("postgres://u:secret@src/db");
	job->target_dsn = pgm_strdup("postgres://u:secret@dst/db");
	job->source_display = pgm_strdup("postgres://u:***@src/db");
	job->target_display = pgm_strdup("postgres://u:***@dst/db");
	job->options = pgm_job_options_build(NULL, NULL, &err);
	ck_assert_ptr_nonnull(job->options);
	job->last_row = job->failed_row = -1;
	job->facts = cJSON_CreateObject();
	job->artifacts = cJSON_CreateArray();
	job->warnings = cJSON_CreateArray();
	job->dir = pgm_strdup(dir);
	return job;
}
