/*
 * test_artifact.c
 *    Unit tests of the artifact registry (src/fsm/artifact.c): the one
 *    lifecycle creating -> created | found -> dropping -> dropped, which
 *    records are live (pgmover's to undo), the lookups, records of older
 *    state files, and the promise that a record which cannot be made
 *    durable is taken back (so the change is not made) — tested with a
 *    state directory that cannot be written.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check_main.h"
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "daemon/config.h"
#include "fixture_job.h"
#include "fsm/artifact.h"
#include "fsm/store.h"

static char tmpdir[64];
static pgm_job_t *job;

static void
setup(void)
{
	pgm_log_set_level(PGM_LOG_ERROR + 1);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/pgm-art-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	job = pgm_fixture_job(tmpdir);
}

static void
teardown(void)
{
	pgm_job_free(job);
	ck_assert(pgm_rmtree(tmpdir));
}

/* the artifacts as state.json holds them now */
static cJSON *
on_disk(void)
{
	char *err = NULL;
	pgm_job_t *back = pgm_store_load(tmpdir, &err);
	cJSON *arts;

	ck_assert_msg(back != NULL, "load: %s", err);
	arts = cJSON_Duplicate(back->artifacts, 1);
	pgm_job_free(back);
	return arts;
}

START_TEST(test_lifecycle)
{
	cJSON *extra = cJSON_CreateObject(), *a, *disk;

	ck_assert(pgm_store_save_secrets(job));
	pgm_json_set_str(extra, "previous", "off");
	pgm_json_set_str(extra, "kind", "not this"); /* the record's own fields win */
	a = pgm_artifact_record(job, "db_setting", "source", "appdb", PGM_ART_CREATING, extra);
	ck_assert_ptr_nonnull(a);
	ck_assert_str_eq(pgm_json_str(a, "kind"), "db_setting");
	ck_assert_str_eq(pgm_json_str(a, "previous"), "off");
	ck_assert_int_eq(pgm_artifact_status(a), PGM_ART_CREATING);
	ck_assert(pgm_artifact_live(a));
	/* durable at once, before any change */
	disk = on_disk();
	ck_assert_int_eq(cJSON_GetArraySize(disk), 1);
	ck_assert_str_eq(pgm_json_str(cJSON_GetArrayItem(disk, 0), "status"), "creating");
	cJSON_Delete(disk);

	pgm_artifact_created(job, a);
	ck_assert_int_eq(pgm_artifact_status(a), PGM_ART_CREATED);
	ck_assert_ptr_nonnull(pgm_json_str(a, "created_at"));
	ck_assert(pgm_artifact_live(a));
	ck_assert(pgm_artifact_set(job, a, PGM_ART_DROPPING));
	ck_assert(pgm_artifact_live(a));
	ck_assert_ptr_null(cJSON_GetObjectItem(a, "undone"));
	pgm_artifact_dropped(job, a);
	ck_assert(!pgm_artifact_live(a));
	/* what status showed before the registry had a status stays (fields are only added) */
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(a, "undone")));
	ck_assert_ptr_nonnull(pgm_json_str(a, "undone_at"));
	/* made anew: live, and no longer undone */
	ck_assert(pgm_artifact_set(job, a, PGM_ART_CREATING));
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(a, "undone")));
	pgm_artifact_dropped(job, a);
	disk = on_disk();
	ck_assert_str_eq(pgm_json_str(cJSON_GetArrayItem(disk, 0), "status"), "dropped");
	cJSON_Delete(disk);
}
END_TEST

/* found: there before pgmover, never live, never dropped */
START_TEST(test_found_not_live)
{
	cJSON *a;

	ck_assert(pgm_store_save_secrets(job));
	a = pgm_artifact_record(job, "pglogical_extension", "source", "pglogical", PGM_ART_FOUND, NULL);
	ck_assert_ptr_nonnull(a);
	ck_assert(!pgm_artifact_live(a));
	ck_assert_ptr_null(pgm_artifact_find_live(job, "pglogical_extension", NULL, NULL));
	ck_assert_ptr_eq(pgm_artifact_find(job, "pglogical_extension", "source", "pglogical"), a);
	ck_assert_str_eq(pgm_artifact_status_name(pgm_artifact_status(a)), "found");
}
END_TEST

START_TEST(test_lookups)
{
	cJSON *a1, *a2, *a3;

	ck_assert(pgm_store_save_secrets(job));
	a1 = pgm_artifact_record(job, "replication_slot", "target", "s1", PGM_ART_CREATING, NULL);
	a2 = pgm_artifact_record(job, "replication_slot", "target", "s2", PGM_ART_CREATING, NULL);
	a3 = pgm_artifact_record(job, "publication", "target", "s1", PGM_ART_CREATING, NULL);
	ck_assert_ptr_nonnull(a1);
	ck_assert_ptr_nonnull(a2);
	ck_assert_ptr_nonnull(a3);
	/* find: the newest; find_live: the oldest live; NULL side or name matches any */
	ck_assert_ptr_eq(pgm_artifact_find(job, "replication_slot", NULL, NULL), a2);
	ck_assert_ptr_eq(pgm_artifact_find_live(job, "replication_slot", NULL, NULL), a1);
	ck_assert_ptr_eq(pgm_artifact_find_live(job, "replication_slot", "target", "s2"), a2);
	ck_assert_ptr_null(pgm_artifact_find_live(job, "replication_slot", "source", NULL));
	ck_assert_ptr_null(pgm_artifact_find(job, "replication_slot", NULL, "s3"));
	ck_assert_ptr_eq(pgm_artifact_find(job, "publication", "target", "s1"), a3);
	pgm_artifact_dropped(job, a1);
	ck_assert_ptr_eq(pgm_artifact_find_live(job, "replication_slot", NULL, NULL), a2);
	ck_assert_ptr_eq(pgm_artifact_find(job, "replication_slot", NULL, "s1"), a1);
}
END_TEST

/* state files from before the registry: {"undone": true} instead of a status */
START_TEST(test_old_records)
{
	cJSON *old = cJSON_Parse("{\"kind\": \"replication_slot\", \"side\": \"target\", \"name\": \"s\"}");
	cJSON *undone = cJSON_Parse("{\"kind\": \"publication\", \"name\": \"s\", \"undone\": true}");

	ck_assert_int_eq(pgm_artifact_status(old), PGM_ART_CREATED);
	ck_assert(pgm_artifact_live(old));
	ck_assert_int_eq(pgm_artifact_status(undone), PGM_ART_DROPPED);
	ck_assert(!pgm_artifact_live(undone));
	ck_assert(!pgm_artifact_live(NULL));
	cJSON_Delete(old);
	cJSON_Delete(undone);
}
END_TEST

/* a record that cannot be saved is taken back: nothing in memory says it happened */
START_TEST(test_unsaved_record_taken_back)
{
	cJSON *a, *ok;
	char *gone = pgm_asprintf("%s/no/such/dir", tmpdir);

	ck_assert(pgm_store_save_secrets(job));
	ok = pgm_artifact_record(job, "replication_slot", "target", "kept", PGM_ART_CREATING, NULL);
	ck_assert_ptr_nonnull(ok);
	free(job->dir);
	job->dir = gone;
	a = pgm_artifact_record(job, "publication", "target", "lost", PGM_ART_CREATING, cJSON_CreateObject());
	ck_assert_ptr_null(a);
	ck_assert_int_eq(cJSON_GetArraySize(job->artifacts), 1);
	ck_assert_ptr_null(pgm_artifact_find(job, "publication", NULL, NULL));
	/* a status that cannot be saved is not kept either */
	ck_assert(!pgm_artifact_set(job, ok, PGM_ART_DROPPING));
	ck_assert_int_eq(pgm_artifact_status(ok), PGM_ART_CREATING);
	ck_assert_ptr_null(cJSON_GetObjectItem(ok, "dropping_at"));
	/* after the change, a failed save only warns */
	ck_assert_int_eq(cJSON_GetArraySize(job->warnings), 0);
	pgm_artifact_created(job, ok);
	ck_assert_int_eq(cJSON_GetArraySize(job->warnings), 1);
	/* and pgm_job_save says so */
	ck_assert(!pgm_job_save(job));
	job->dir = pgm_strdup(tmpdir);
	free(gone);
	ck_assert(pgm_job_save(job));
}
END_TEST

Suite *
pgm_test_suite(void)
{
	Suite *s = suite_create("artifact");
	TCase *tc = tcase_create("registry");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_lifecycle);
	tcase_add_test(tc, test_found_not_live);
	tcase_add_test(tc, test_lookups);
	tcase_add_test(tc, test_old_records);
	tcase_add_test(tc, test_unsaved_record_taken_back);
	suite_add_tcase(s, tc);
	return s;
}
