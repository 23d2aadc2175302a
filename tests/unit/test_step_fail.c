/*
 * test_step_fail.c
 *    Unit tests of a step's failure while the job's freeze is on the source
 *    (pgm_step_fail, src/fsm/driver.c): error.source_frozen says whether a
 *    freeze is recorded and not undone, and where the failed job may still
 *    be thawed the hint says how; after traffic moved it does not offer a
 *    thaw. A job in memory on a loop that is never run (no server, no step
 *    function called).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "fixture_job.h"
#include "fsm/artifact.h"

static char tmpdir[64];
static uv_loop_t loop;
static pgm_host_t host;
static pgm_job_t *job;

static void
setup(void)
{
	pgm_log_set_level(PGM_LOG_ERROR + 1);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/pgm-fail-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	memset(&host, 0, sizeof(host));
	host.loop = &loop;
	job = pgm_fixture_job(tmpdir);
	pgm_job_attach(job, &host);
}

static void
teardown(void)
{
	pgm_job_release(job); /* freed once the loop has closed its kick */
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	ck_assert(pgm_rmtree(tmpdir));
}

/* the job in state st running the step of the first row leaving it, failed with hint */
static const cJSON *
fail_in(pgm_state_t st, const char *hint)
{
	pgm_step_t *s = pgm_calloc(1, sizeof(*s));

	job->state = st;
	s->job = job;
	s->row = 0;
	for (int i = 0; i < pgm_transitions_count; i++)
		if (pgm_transitions[i].from_mask & PGM_S(st)) {
			s->row = i;
			break;
		}
	job->step = s;
	pgm_step_fail(s, "it broke", NULL, hint);
	ck_assert_ptr_null(job->step);
	return job->error;
}

/* the freeze as freeze.c records it: the database's read-only setting, live */
static void
record_freeze(void)
{
	cJSON *a = pgm_artifact_record(job, "db_setting", "source", "db", PGM_ART_CREATING, NULL);

	ck_assert_ptr_nonnull(a);
	ck_assert(pgm_artifact_set(job, a, PGM_ART_CREATED));
}

START_TEST(test_not_frozen)
{
	const cJSON *e = fail_in(PGM_ST_FREEZING, "fix it");

	ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(e, "source_frozen")));
	ck_assert_str_eq(pgm_json_str(e, "hint"), "fix it");
}
END_TEST

START_TEST(test_frozen_says_how_to_thaw)
{
	const cJSON *e;

	record_freeze();
	e = fail_in(PGM_ST_FREEZING, "fix it");
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(e, "source_frozen")));
	ck_assert_msg(strncmp(pgm_json_str(e, "hint"), "fix it; ", 8) == 0, "%s", pgm_json_str(e, "hint"));
	ck_assert_msg(strstr(pgm_json_str(e, "hint"), "the source is still frozen") &&
			      strstr(pgm_json_str(e, "hint"), "\"pgmover thaw shop\""),
		      "%s", pgm_json_str(e, "hint"));
	ck_assert_str_eq(pgm_json_str(e, "state"), "freezing");
}
END_TEST

START_TEST(test_frozen_without_hint)
{
	const cJSON *e;

	record_freeze();
	e = fail_in(PGM_ST_VERIFYING, NULL);
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(e, "source_frozen")));
	ck_assert_msg(strncmp(pgm_json_str(e, "hint"), "the source is still frozen", 26) == 0, "%s",
		      pgm_json_str(e, "hint"));
}
END_TEST

START_TEST(test_hint_already_says_thaw)
{
	const cJSON *e;

	record_freeze();
	e = fail_in(PGM_ST_VERIFIED, "run \"pgmover thaw shop\" now");
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(e, "source_frozen")));
	ck_assert_str_eq(pgm_json_str(e, "hint"), "run \"pgmover thaw shop\" now"); /* said once */
}
END_TEST

START_TEST(test_after_cutover_no_thaw)
{
	const cJSON *e;

	record_freeze();
	/* in the rollback window the source stays frozen by design; a thaw is not offered */
	e = fail_in(PGM_ST_ROLLBACK_WINDOW, "fix it");
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(e, "source_frozen")));
	ck_assert_str_eq(pgm_json_str(e, "hint"), "fix it");
}
END_TEST

START_TEST(test_thawed_freeze)
{
	cJSON *a;
	const cJSON *e;

	record_freeze();
	a = pgm_artifact_find_live(job, "db_setting", NULL, NULL);
	ck_assert_ptr_nonnull(a);
	pgm_artifact_dropped(job, a);
	e = fail_in(PGM_ST_THAWING, NULL);
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(e, "source_frozen")));
	ck_assert_ptr_null(cJSON_GetObjectItem(e, "hint"));
}
END_TEST

Suite *
pgm_test_suite(void)
{
	Suite *s = suite_create("step_fail");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_not_frozen);
	tcase_add_test(tc, test_frozen_says_how_to_thaw);
	tcase_add_test(tc, test_frozen_without_hint);
	tcase_add_test(tc, test_hint_already_says_thaw);
	tcase_add_test(tc, test_after_cutover_no_thaw);
	tcase_add_test(tc, test_thawed_freeze);
	suite_add_tcase(s, tc);
	return s;
}
