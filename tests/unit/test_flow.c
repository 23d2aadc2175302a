/*
 * test_flow.c
 *    Unit tests of the cutover's stage runner (src/pipeline/cutover/cutover.c,
 *    flow.h): stages run in order, each recorded in facts.<flow>.done and the
 *    audit log as it ends; a flow started again (pgmoverd restarted, or
 *    retry) skips the stages recorded done and runs the rest; a stage whose
 *    wanted() says no is skipped without a record; pgm_flow_reset forgets
 *    them so that everything runs again. Stages here end at once, with no
 *    server behind them. Also which server errors the reverse stream of the
 *    rollback window retries (pgm_sql_transient) and which stop it.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "daemon/config.h"
#include "fixture_job.h"
#include "fsm/step.h"
#include "pipeline/cutover/flow.h"
#include "pipeline/sql.h"

static char tmpdir[64];
static pgm_job_t *job;
static char ran[64]; /* the stages run, in order, one letter each */
static int finished; /* the flow's `then` ran */
static bool want_c = true;

static void
stage(pgm_flow_t *f)
{
	const char *name = f->stages[f->cur].name;

	strncat(ran, name, sizeof(ran) - strlen(ran) - 1);
	pgm_flow_next(f);
}

static bool
wanted_c(pgm_job_t *j)
{
	return want_c;
}

static void
then_cb(pgm_step_t *s)
{
	finished++;
}

static const pgm_stage_t stages[] = {
	{"a", stage, NULL}, {"b", stage, NULL}, {"c", stage, wanted_c}, {"d", stage, NULL}, {NULL, NULL, NULL},
};

static void
setup(void)
{
	pgm_log_set_level(PGM_LOG_ERROR + 1);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/pgm-flow-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	job = pgm_fixture_job(tmpdir);
	job->state = PGM_ST_CUTTING_OVER;
	ran[0] = '\0';
	finished = 0;
	want_c = true;
}

static void
teardown(void)
{
	pgm_job_free(job);
	ck_assert(pgm_rmtree(tmpdir));
}

/* run the flow once on a fresh step, as the driver would start the step */
static void
run_flow(void)
{
	pgm_step_t *s = calloc(1, sizeof(*s));

	s->job = job;
	pgm_flow_start(s, "cutover", stages, NULL, then_cb);
	pgm_step_free(s);
}

static int
audit_lines(void)
{
	char *path = pgm_asprintf("%s/audit.jsonl", tmpdir), *text;
	size_t len = 0;
	int n = 0;

	text = pgm_file_read(path, 1 << 20, &len);
	for (size_t i = 0; text && i < len; i++)
		n += text[i] == '\n';
	free(text);
	free(path);
	return n;
}

START_TEST(test_in_order_recorded)
{
	run_flow();
	ck_assert_str_eq(ran, "abcd");
	ck_assert_int_eq(finished, 1);
	for (const char *st = "abcd"; *st; st++) {
		char name[2] = {*st, '\0'};

		ck_assert_msg(pgm_flow_done(job, "cutover", name), "stage %s not recorded", name);
	}
	ck_assert(!pgm_flow_done(job, "rollback", "a"));
	ck_assert_int_eq(audit_lines(), 4);
}
END_TEST

/* a restarted daemon runs only the stages left */
START_TEST(test_resume_skips_done)
{
	cJSON *done = pgm_json_obj(pgm_json_obj(job->facts, "cutover"), "done");

	pgm_json_set(done, "a", cJSON_CreateObject());
	pgm_json_set(done, "b", cJSON_CreateObject());
	run_flow();
	ck_assert_str_eq(ran, "cd");
	ck_assert_int_eq(finished, 1);
	/* again: nothing left to run, the flow goes straight to its end */
	ran[0] = '\0';
	run_flow();
	ck_assert_str_eq(ran, "");
	ck_assert_int_eq(finished, 2);
}
END_TEST

START_TEST(test_unwanted_skipped_unrecorded)
{
	want_c = false;
	run_flow();
	ck_assert_str_eq(ran, "abd");
	ck_assert(!pgm_flow_done(job, "cutover", "c"));
	/* wanted later (a setting changed before a retry): it runs then */
	want_c = true;
	ran[0] = '\0';
	run_flow();
	ck_assert_str_eq(ran, "c");
}
END_TEST

START_TEST(test_reset_runs_all_again)
{
	run_flow();
	pgm_flow_reset(job, "cutover");
	ck_assert(!pgm_flow_done(job, "cutover", "a"));
	ran[0] = '\0';
	run_flow();
	ck_assert_str_eq(ran, "abcd");
}
END_TEST

/* errors that pass by themselves are retried; a refusal by the source is not */
START_TEST(test_transient_errors)
{
	static const struct {
		const char *sqlstate;
		bool transient;
	} cases[] = {
		{"", true},       /* not from the server: the connection */
		{"08006", true},  /* connection_failure */
		{"57P01", true},  /* admin_shutdown: the session was ended */
		{"40001", true},  /* serialization_failure */
		{"40P01", true},  /* deadlock_detected */
		{"55P03", true},  /* lock_not_available */
		{"57014", true},  /* query_canceled */
		{"53300", true},  /* too_many_connections */
		{"53100", true},  /* disk_full */
		{"23505", false}, /* unique_violation */
		{"23514", false}, /* check_violation */
		{"23503", false}, /* foreign_key_violation */
		{"P0001", false}, /* raise_exception: an UPDATE or DELETE that matched no row */
		{"42P01", false}, /* undefined_table */
		{"42703", false}, /* undefined_column */
		{"22P02", false}, /* invalid_text_representation */
		{"25006", false}, /* read_only_sql_transaction */
		{"28P01", false}, /* invalid_password */
	};

	for (size_t i = 0; i < PGM_ARRAY_LEN(cases); i++) {
		pgm_pg_error_t e = {.message = (char *) "x"};

		snprintf(e.sqlstate, sizeof(e.sqlstate), "%s", cases[i].sqlstate);
		ck_assert_msg(pgm_sql_transient(&e) == cases[i].transient, "SQLSTATE '%s'", cases[i].sqlstate);
	}
}
END_TEST

Suite *
pgm_test_suite(void)
{
	Suite *s = suite_create("flow");
	TCase *tc = tcase_create("stages");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_in_order_recorded);
	tcase_add_test(tc, test_resume_skips_done);
	tcase_add_test(tc, test_unwanted_skipped_unrecorded);
	tcase_add_test(tc, test_reset_runs_all_again);
	tcase_add_test(tc, test_transient_errors);
	suite_add_tcase(s, tc);
	return s;
}
