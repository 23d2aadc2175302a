/*
 * test_metrics.c
 *    Unit tests of the Prometheus exposition (src/daemon/metrics.c): every
 *    state of the machine in the state gauge, one family header per family
 *    and before its samples, the numbers taken from a running copy's
 *    progress and from finished copies' facts, label escaping, and the
 *    families a job without such facts leaves out.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_main.h"
#include "common/json.h"
#include "common/util.h"
#include "daemon/metrics.h"
#include "fixture_job.h"

static char tmpdir[] = "/tmp/pgm-metrics-XXXXXX";
static pgm_job_t *job;

static void
setup(void)
{
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	job = pgm_fixture_job(tmpdir);
}

static void
teardown(void)
{
	pgm_job_free(job);
	rmdir(tmpdir);
	strcpy(tmpdir, "/tmp/pgm-metrics-XXXXXX");
}

/* the output must hold this line, whole */
static void
has_line(const char *text, const char *line)
{
	char *needle = pgm_asprintf("\n%s\n", line);
	char *hay = pgm_asprintf("\n%s", text);

	ck_assert_msg(strstr(hay, needle) != NULL, "no line \"%s\" in:\n%s", line, text);
	free(needle);
	free(hay);
}

static void
lacks(const char *text, const char *fragment)
{
	ck_assert_msg(strstr(text, fragment) == NULL, "\"%s\" found in:\n%s", fragment, text);
}

/*
 * The format's rules this renderer must keep: each family's HELP and TYPE
 * once, HELP then TYPE, before its first sample; samples of one family
 * together; every line ends with a newline.
 */
static void
well_formed(const char *text)
{
	char *copy = pgm_strdup(text), *save = NULL;
	char current[128] = "";
	cJSON *seen = cJSON_CreateObject();

	ck_assert(strlen(text) > 0 && text[strlen(text) - 1] == '\n');
	for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char name[128];

		if (strncmp(line, "# HELP ", 7) == 0) {
			ck_assert(sscanf(line + 7, "%127s", name) == 1);
			ck_assert_msg(cJSON_GetObjectItem(seen, name) == NULL, "family %s twice", name);
			cJSON_AddTrueToObject(seen, name);
			snprintf(current, sizeof(current), "%s", name);
			continue;
		}
		if (strncmp(line, "# TYPE ", 7) == 0) {
			char *want = pgm_asprintf("# TYPE %s gauge", current);
			ck_assert_str_eq(line, want);
			free(want);
			continue;
		}
		ck_assert(sscanf(line, "%127[a-z_]", name) == 1);
		ck_assert_msg(strcmp(name, current) == 0, "sample of %s under the header of %s", name, current);
	}
	cJSON_Delete(seen);
	free(copy);
}

START_TEST(test_daemon_metrics)
{
	char *text = pgm_metrics_render(NULL, 2, 1700000000123, 1700000001000);

	well_formed(text);
	has_line(text, "pgmover_up 1");
	has_line(text, "pgmover_start_time_seconds 1700000000.123");
	has_line(text, "pgmover_jobs 0");
	has_line(text, "pgmover_corrupt_jobs 2");
	ck_assert_ptr_nonnull(strstr(text, "pgmover_build_info{version=\""));
	lacks(text, "pgmover_job_");
	free(text);
}
END_TEST

/* one sample per state of the table, exactly one of them 1 */
START_TEST(test_state_gauge)
{
	char *text;
	int ones = 0, lines = 0;

	job->state = PGM_ST_SYNCING;
	job->since_ms = 1700000000000;
	text = pgm_metrics_render(job, 0, 0, 0);
	well_formed(text);
	for (int st = 0; st < PGM_ST__COUNT; st++) {
		char *l = pgm_asprintf("pgmover_job_state{job=\"shop\",method=\"dump\",state=\"%s\"} %d",
				       pgm_state_name((pgm_state_t) st), st == PGM_ST_SYNCING);
		has_line(text, l);
		free(l);
	}
	for (const char *p = text; (p = strstr(p, "\npgmover_job_state{")) != NULL; p++) {
		lines++;
		ones += strncmp(strchr(p, '}'), "} 1\n", 4) == 0;
	}
	ck_assert_int_eq(lines, PGM_ST__COUNT);
	ck_assert_int_eq(ones, 1);
	has_line(text, "pgmover_job_state_since_timestamp_seconds{job=\"shop\",method=\"dump\"} 1700000000");
	has_line(text, "pgmover_job_failed{job=\"shop\",method=\"dump\"} 0");
	has_line(text, "pgmover_job_warnings{job=\"shop\",method=\"dump\"} 0");
	has_line(text, "pgmover_jobs 1");
	/* nothing measured yet: no copy, lag or verification families */
	lacks(text, "pgmover_job_copy_");
	lacks(text, "pgmover_job_lag_");
	lacks(text, "pgmover_job_verify_");
	lacks(text, "pgmover_job_freeze_seconds");
	free(text);
}
END_TEST

/* a running copy from its progress; a finished one from facts.copies, both labelled */
START_TEST(test_copies)
{
	cJSON *reh = cJSON_CreateObject();
	char *text;

	job->state = PGM_ST_FREEZING;
	job->freeze_started_ms = 1700000000000;
	pgm_json_set_num(reh, "bytes", 1000);
	pgm_json_set_num(reh, "rows", 50);
	pgm_json_set_num(reh, "rows_estimate", 48);
	pgm_json_set_num(reh, "data_ms", 4000);
	pgm_json_set(pgm_json_obj(job->facts, "copies"), "rehearsal", reh);
	job->progress = cJSON_CreateObject();
	pgm_json_set_str(job->progress, "name", "final");
	pgm_json_set_str(job->progress, "phase", "data");
	pgm_json_set_num(job->progress, "bytes_done", 300);
	pgm_json_set_num(job->progress, "bytes_total", 1000);
	pgm_json_set_num(job->progress, "rows_done", 15);
	pgm_json_set_num(job->progress, "rate_bytes_per_sec", 150.5);
	pgm_json_set_num(job->progress, "eta_seconds", 4.65);
	text = pgm_metrics_render(job, 0, 0, 1700000002500);
	well_formed(text);
	has_line(text, "pgmover_job_phase{job=\"shop\",method=\"dump\",step=\"final\",phase=\"data\"} 1");
	has_line(text, "pgmover_job_copy_bytes{job=\"shop\",method=\"dump\",copy=\"final\"} 300");
	has_line(text, "pgmover_job_copy_bytes{job=\"shop\",method=\"dump\",copy=\"rehearsal\"} 1000");
	has_line(text, "pgmover_job_copy_size_bytes{job=\"shop\",method=\"dump\",copy=\"final\"} 1000");
	has_line(text, "pgmover_job_copy_rows{job=\"shop\",method=\"dump\",copy=\"final\"} 15");
	has_line(text, "pgmover_job_copy_rows{job=\"shop\",method=\"dump\",copy=\"rehearsal\"} 50");
	has_line(text, "pgmover_job_copy_size_rows{job=\"shop\",method=\"dump\",copy=\"rehearsal\"} 48");
	has_line(text, "pgmover_job_copy_rate_bytes_per_second{job=\"shop\",method=\"dump\",copy=\"final\"} 150.5");
	has_line(text, "pgmover_job_copy_rate_bytes_per_second{job=\"shop\",method=\"dump\",copy=\"rehearsal\"} 250");
	has_line(text, "pgmover_job_copy_eta_seconds{job=\"shop\",method=\"dump\",copy=\"final\"} 4.65");
	has_line(text, "pgmover_job_freeze_seconds{job=\"shop\",method=\"dump\"} 2.5");
	free(text);

	/* a retried rehearsal: its progress, not the facts of the earlier run */
	pgm_json_set_str(job->progress, "name", "rehearsal");
	text = pgm_metrics_render(job, 0, 0, 0);
	has_line(text, "pgmover_job_copy_bytes{job=\"shop\",method=\"dump\",copy=\"rehearsal\"} 300");
	lacks(text, "pgmover_job_copy_bytes{job=\"shop\",method=\"dump\",copy=\"rehearsal\"} 1000");
	lacks(text, "copy=\"rehearsal\"} 50");
	free(text);

	/* the verification counts bytes it reads, not copied ones */
	pgm_json_set_str(job->progress, "name", "verify");
	text = pgm_metrics_render(job, 0, 0, 0);
	lacks(text, "copy=\"verify\"");
	has_line(text, "pgmover_job_phase{job=\"shop\",method=\"dump\",step=\"verify\",phase=\"data\"} 1");
	free(text);
}
END_TEST

/* lag (pglogical), log rows behind (triggers), verification, rollback window, failed */
START_TEST(test_other_families)
{
	cJSON *lag = cJSON_CreateObject(), *rev = cJSON_CreateObject();
	char *text;

	free(job->method);
	job->method = pgm_strdup("pglogical");
	job->state = PGM_ST_ROLLBACK_WINDOW;
	job->rollback_deadline_ms = 1700086400000;
	pgm_json_set_num(lag, "bytes", 4096);
	pgm_json_set_num(lag, "seconds", 0.25);
	pgm_json_set_num(lag, "retained_wal_bytes", 16777216);
	pgm_json_set(job->facts, "lag", lag);
	pgm_json_set_num(rev, "bytes", 512);
	pgm_json_set_num(rev, "seconds", 1);
	pgm_json_set(job->facts, "reverse_lag", rev);
	text = pgm_metrics_render(job, 0, 0, 1700000000000);
	lacks(text, "pgmover_job_rollback_uncarried_tables{"); /* the window has not looked yet */
	free(text);
	cJSON_AddItemToArray(cJSON_AddArrayToObject(pgm_json_obj(job->facts, "reverse"), "uncarried"),
			     cJSON_CreateObject());
	job->verify = cJSON_CreateObject();
	pgm_json_set_num(job->verify, "mismatches", 3);
	job->progress = cJSON_CreateObject();
	pgm_json_set_str(job->progress, "phase", "following");
	pgm_json_set_num(job->progress, "log_rows_behind", 12);
	job->freeze_started_ms = 1; /* kept after cutover: no longer counted */
	text = pgm_metrics_render(job, 0, 0, 1700000000000);
	well_formed(text);
	has_line(text, "pgmover_job_lag_bytes{job=\"shop\",method=\"pglogical\"} 4096");
	has_line(text, "pgmover_job_lag_seconds{job=\"shop\",method=\"pglogical\"} 0.25");
	has_line(text, "pgmover_job_retained_wal_bytes{job=\"shop\",method=\"pglogical\"} 16777216");
	has_line(text, "pgmover_job_log_rows_behind{job=\"shop\",method=\"pglogical\"} 12");
	has_line(text, "pgmover_job_verify_differences{job=\"shop\",method=\"pglogical\"} 3");
	has_line(text, "pgmover_job_rollback_lag_bytes{job=\"shop\",method=\"pglogical\"} 512");
	has_line(text, "pgmover_job_rollback_lag_seconds{job=\"shop\",method=\"pglogical\"} 1");
	has_line(text, "pgmover_job_rollback_deadline_timestamp_seconds{job=\"shop\",method=\"pglogical\"} 1700086400");
	has_line(text, "pgmover_job_rollback_uncarried_tables{job=\"shop\",method=\"pglogical\"} 1");
	/* no step name: the state names the step */
	has_line(text,
		 "pgmover_job_phase{job=\"shop\",method=\"pglogical\",step=\"rollback_window\",phase=\"following\"} 1");
	lacks(text, "pgmover_job_freeze_seconds");
	lacks(text, "pgmover_job_copy_");
	free(text);

	job->state = PGM_ST_FAILED;
	text = pgm_metrics_render(job, 0, 0, 0);
	has_line(text, "pgmover_job_failed{job=\"shop\",method=\"pglogical\"} 1");
	has_line(text, "pgmover_job_state{job=\"shop\",method=\"pglogical\",state=\"failed\"} 1");
	free(text);
}
END_TEST

/* two jobs: one header per family, a label value with \, " and a newline escaped */
START_TEST(test_two_jobs_escaped)
{
	pgm_job_t *other = pgm_fixture_job(tmpdir);
	char *text;

	free(other->name);
	other->name = pgm_strdup("a\"b\\c\nd");
	other->next = job;
	text = pgm_metrics_render(other, 0, 0, 0);
	well_formed(text);
	has_line(text, "pgmover_jobs 2");
	has_line(text, "pgmover_job_failed{job=\"a\\\"b\\\\c\\nd\",method=\"dump\"} 0");
	has_line(text, "pgmover_job_failed{job=\"shop\",method=\"dump\"} 0");
	free(text);
	other->next = NULL;
	pgm_job_free(other);
}
END_TEST

Suite *
pgm_test_suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("render");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_daemon_metrics);
	tcase_add_test(tc, test_state_gauge);
	tcase_add_test(tc, test_copies);
	tcase_add_test(tc, test_other_families);
	tcase_add_test(tc, test_two_jobs_escaped);
	suite_add_tcase(s, tc);
	return s;
}
