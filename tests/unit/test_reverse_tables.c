/*
 * test_reverse_tables.c
 *    Unit tests of what the rollback window does not carry back
 *    (src/pipeline/cutover/reverse_tables.c), with no server: a table found
 *    is kept in facts.reverse.uncarried with when it was found, a warning
 *    and an audit line, once; it goes away when the table is dropped (and a
 *    missing_on_source one when the source gets it); an unlogged or
 *    unpublished one stays while the table exists. A rollback is refused
 *    naming the tables until the loss is accepted, and the drain records
 *    what an accepted rollback leaves on the target.
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
#include "pipeline/cutover/reverse.h"

static char tmpdir[64];
static pgm_job_t *job;

static void
setup(void)
{
	pgm_log_set_level(PGM_LOG_ERROR + 1);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/pgm-revt-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	job = pgm_fixture_job(tmpdir);
	job->state = PGM_ST_ROLLBACK_WINDOW;
}

static void
teardown(void)
{
	pgm_job_free(job);
	ck_assert(pgm_rmtree(tmpdir));
}

/* [{table, kind, reason}] from "table:kind" words */
static cJSON *
found_of(const char *const *items)
{
	cJSON *a = cJSON_CreateArray();

	for (; *items; items++) {
		cJSON *f = cJSON_CreateObject();
		const char *colon = strchr(*items, ':');
		char *table = pgm_asprintf("%.*s", (int) (colon - *items), *items);
		char *reason = pgm_asprintf("because %s", colon + 1);

		pgm_json_set_str(f, "table", table);
		pgm_json_set_str(f, "kind", colon + 1);
		pgm_json_set_str(f, "reason", reason);
		cJSON_AddItemToArray(a, f);
		free(table);
		free(reason);
	}
	return a;
}

/* {name: true} of the target's tables */
static cJSON *
tables_of(const char *const *names)
{
	cJSON *o = cJSON_CreateObject();

	for (; *names; names++)
		cJSON_AddTrueToObject(o, *names);
	return o;
}

static int
note(const char *const *found, const char *const *tables, int64_t now)
{
	cJSON *f = found_of(found), *t = tables_of(tables);
	int n = pgm_reverse_uncarried_note(job, f, t, now);

	cJSON_Delete(f);
	cJSON_Delete(t);
	return n;
}

static const cJSON *
uncarried(void)
{
	return cJSON_GetObjectItem(cJSON_GetObjectItem(job->facts, "reverse"), "uncarried");
}

static int
warnings_with(const char *words)
{
	const cJSON *w;
	int n = 0;

	cJSON_ArrayForEach (w, job->warnings)
		if (strstr(cJSON_GetStringValue(cJSON_GetObjectItem(w, "message")), words))
			n++;
	return n;
}

static int
audit_with(const char *words)
{
	char *path = pgm_asprintf("%s/audit.jsonl", tmpdir), *text = pgm_file_read(path, 1 << 20, NULL);
	int n = 0;

	for (char *line = text ? strtok(text, "\n") : NULL; line; line = strtok(NULL, "\n"))
		n += strstr(line, words) != NULL;
	free(text);
	free(path);
	return n;
}

START_TEST(test_found_once_with_time_warning_audit)
{
	const char *found[] = {"public.events_2026:unpublished", "public.cache:unlogged", NULL};
	const char *tables[] = {"public.kv", "public.events_2026", "public.cache", NULL};
	const cJSON *e;
	char *names;

	ck_assert_int_eq(note(found, tables, 1000), 2);
	ck_assert_int_eq(cJSON_GetArraySize(uncarried()), 2);
	e = cJSON_GetArrayItem(uncarried(), 0);
	ck_assert_str_eq(pgm_json_str(e, "table"), "public.events_2026");
	ck_assert_str_eq(pgm_json_str(e, "kind"), "unpublished");
	ck_assert_ptr_nonnull(pgm_json_str(e, "detected_at"));
	ck_assert_int_eq(warnings_with("rollback would lose writes to public.events_2026: because unpublished"), 1);
	ck_assert_int_eq(warnings_with("rollback would lose writes to public.cache"), 1);
	ck_assert_ptr_nonnull(strstr(pgm_json_str(cJSON_GetArrayItem(job->warnings, 0), "hint"),
				     "pgmover rollback shop --accept-loss"));
	ck_assert_int_eq(audit_with("\"reverse:uncarried\""), 2);
	ck_assert_int_eq(audit_with("lossy: rollback would lose writes to public.cache"), 1);
	/* the next round finds the same: nothing changes, nothing said again, the first time kept */
	ck_assert_int_eq(note(found, tables, 5000), 0);
	ck_assert_int_eq(cJSON_GetArraySize(uncarried()), 2);
	ck_assert_int_eq(cJSON_GetArraySize(job->warnings), 2);
	ck_assert_int_eq(audit_with("\"reverse:uncarried\""), 2);
	ck_assert_str_eq(pgm_json_str(cJSON_GetArrayItem(uncarried(), 0), "detected_at"),
			 pgm_json_str(e, "detected_at"));
	names = pgm_reverse_uncarried_names(job);
	ck_assert_str_eq(names, "public.events_2026, public.cache");
	free(names);
}
END_TEST

START_TEST(test_resolved_only_when_nothing_is_lost)
{
	const char *found[] = {"public.a:unpublished", "public.b:unlogged", "public.c:missing_on_source", NULL};
	const char *all[] = {"public.a", "public.b", "public.c", NULL};
	const char *none[] = {NULL};
	const char *a_gone[] = {"public.b", "public.c", NULL};
	char *names;

	ck_assert_int_eq(note(found, all, 1000), 3);
	/* carried now, all three (published, logged, made on the source), still there: only c is resolved */
	ck_assert_int_eq(note(none, all, 2000), 1);
	names = pgm_reverse_uncarried_names(job);
	ck_assert_str_eq(names, "public.a, public.b");
	free(names);
	ck_assert_int_eq(warnings_with("public.c"), 0);
	ck_assert_int_eq(audit_with("resolved: public.c"), 1);
	/* a dropped: resolved */
	ck_assert_int_eq(note(none, a_gone, 3000), 1);
	names = pgm_reverse_uncarried_names(job);
	ck_assert_str_eq(names, "public.b");
	free(names);
	ck_assert_int_eq(warnings_with("public.a"), 0);
	ck_assert_int_eq(warnings_with("public.b"), 1);
	/* every table gone: nothing left, no names */
	ck_assert_int_eq(note(none, none, 4000), 1);
	ck_assert_int_eq(cJSON_GetArraySize(uncarried()), 0);
	ck_assert_ptr_null(pgm_reverse_uncarried_names(job));
	ck_assert_int_eq(cJSON_GetArraySize(job->warnings), 0);
}
END_TEST

START_TEST(test_rollback_refused_until_accepted)
{
	const char *found[] = {"public.new_orders:unpublished", "public.cache:unlogged", NULL};
	const char *tables[] = {"public.new_orders", "public.cache", NULL};
	char *msg = NULL, *hint = NULL;
	const cJSON *a;

	/* nothing lost: allowed either way */
	ck_assert(pgm_rollback_loss_check(job, false, &msg, &hint));
	ck_assert_ptr_null(msg);
	ck_assert(pgm_reverse_drain_lossless(job, &msg, &hint));
	ck_assert_ptr_null(cJSON_GetObjectItem(job->facts, "rollback"));

	ck_assert_int_eq(note(found, tables, 1000), 2);
	ck_assert(!pgm_rollback_loss_check(job, false, &msg, &hint));
	ck_assert_ptr_nonnull(strstr(msg, "rollback would lose writes to public.new_orders, public.cache"));
	ck_assert_ptr_nonnull(strstr(hint, "pgmover rollback shop --accept-loss"));
	ck_assert_ptr_nonnull(strstr(hint, "drop or move them"));
	free(msg);
	free(hint);
	msg = hint = NULL;
	ck_assert(pgm_rollback_loss_check(job, true, &msg, &hint));
	ck_assert_ptr_null(msg);
	/* the drain refuses too, until the command recorded the acceptance */
	ck_assert(!pgm_reverse_drain_lossless(job, &msg, &hint));
	ck_assert_ptr_nonnull(strstr(msg, "public.cache"));
	free(msg);
	free(hint);
	msg = hint = NULL;
	pgm_rollback_accept_loss(job, NULL);
	a = cJSON_GetObjectItem(job->facts, "rollback_accept_loss");
	ck_assert_str_eq(pgm_json_str(a, "tables"), "public.new_orders, public.cache");
	ck_assert_ptr_nonnull(pgm_json_str(a, "at"));
	ck_assert_int_eq(audit_with("\"rollback --accept-loss\""), 1);
	ck_assert(pgm_reverse_drain_lossless(job, &msg, &hint));
	ck_assert_ptr_null(msg);
	ck_assert_str_eq(pgm_json_str(cJSON_GetObjectItem(job->facts, "rollback"), "lost_writes_to"),
			 "public.new_orders, public.cache");
	/* each drain round checks again: said once */
	ck_assert(pgm_reverse_drain_lossless(job, &msg, &hint));
	ck_assert_int_eq(audit_with("rollback:accepted-loss"), 1);
}
END_TEST

Suite *
pgm_test_suite(void)
{
	Suite *s = suite_create("reverse_tables");
	TCase *tc = tcase_create("uncarried");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_found_once_with_time_warning_audit);
	tcase_add_test(tc, test_resolved_only_when_nothing_is_lost);
	tcase_add_test(tc, test_rollback_refused_until_accepted);
	suite_add_tcase(s, tc);
	return s;
}
