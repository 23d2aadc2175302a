/*
 * test_store.c
 *    Unit tests of the durable job state (src/fsm/store.c) and of the file
 *    helpers it stands on (src/common/util.c): state.json round trips, holds
 *    no secret and is versioned; secrets.json is 0600; a damaged state gives
 *    a clear error; durable replace, append, read, mkdir -p and rmtree.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check_main.h"
#include "common/inject.h"
#include "common/util.h"
#include "daemon/config.h"
#include "fsm/store.h"
#include "pg/dsn.h"

#define SRC_DSN "postgres://app:s3cr3t-pw@db.example.com:5432/shop?sslmode=require"
#define DST_DSN "host=10.0.0.2 port=5433 dbname=shop user=owner password=t4rget-pw"

static char tmpdir[64];

static void
setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/pgm-store-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void
teardown(void)
{
	ck_assert(pgm_rmtree(tmpdir));
}

/* index of the first row with this event leading to `to` */
static int
row_of(pgm_event_t ev, pgm_state_t to)
{
	for (int i = 0; i < pgm_transitions_count; i++)
		if (pgm_transitions[i].event == ev && pgm_transitions[i].to == to)
			return i;
	ck_abort_msg("no row %s -> %s", pgm_event_name(ev), pgm_state_name(to));
	return -1;
}

/* a job as pgm_jobs_create would make it, in dir */
static pgm_job_t *
make_job(const char *dir)
{
	pgm_job_t *job = calloc(1, sizeof(*job));
	char *err = NULL;
	cJSON *w;

	ck_assert_ptr_nonnull(job);
	job->name = pgm_strdup("shop");
	job->method = pgm_strdup("dump");
	job->source_dsn = pgm_strdup(SRC_DSN);
	job->target_dsn = pgm_strdup(DST_DSN);
	job->source_display = pgm_dsn_masked(SRC_DSN);
	job->target_display = pgm_dsn_masked(DST_DSN);
	job->options = pgm_job_options_build(NULL, NULL, &err);
	ck_assert_ptr_nonnull(job->options);
	job->state = PGM_ST_VERIFIED;
	job->last_row = row_of(PGM_EV_DONE, PGM_ST_VERIFIED);
	job->failed_from = PGM_ST_CREATED;
	job->failed_row = -1;
	job->created_ms = 1700000000123;
	job->since_ms = 1700000456789;
	job->freeze_started_ms = 1700000400001;
	job->rollback_deadline_ms = 0; /* not set */
	job->facts = cJSON_Parse("{\"source\": {\"server_version_num\": 150004, \"tls\": true},"
				 " \"rehearsal\": {\"seconds\": 12.5, \"bytes\": 1048576},"
				 " \"tables\": [\"public.a\", \"public.\\\"odd\\\"\"]}");
	job->artifacts = cJSON_Parse("[{\"kind\": \"setting\", \"name\": \"default_transaction_read_only\"}]");
	job->warnings = cJSON_CreateArray();
	w = cJSON_CreateObject();
	cJSON_AddStringToObject(w, "message", "the source has tables without a primary key");
	cJSON_AddStringToObject(w, "hint", "add one");
	cJSON_AddItemToArray(job->warnings, w);
	job->verify = cJSON_Parse("{\"ok\": true, \"tables\": 2}");
	job->dir = pgm_strdup(dir);
	return job;
}

static char *
read_text(const char *dir, const char *file)
{
	char *path = pgm_asprintf("%s/%s", dir, file);
	char *text = pgm_file_read(path, 1 << 20, NULL);

	ck_assert_msg(text != NULL, "could not read %s", path);
	free(path);
	return text;
}

static bool
exists(const char *dir, const char *file)
{
	char *path = pgm_asprintf("%s/%s", dir, file);
	bool ok = access(path, F_OK) == 0;

	free(path);
	return ok;
}

static void
write_text(const char *dir, const char *file, const char *text)
{
	char *path = pgm_asprintf("%s/%s", dir, file);

	ck_assert(pgm_file_replace(path, text, strlen(text), 0600));
	free(path);
}

/* the loaded job is the saved one, field by field */
static void
assert_same_job(const pgm_job_t *a, const pgm_job_t *b)
{
	ck_assert_str_eq(a->name, b->name);
	ck_assert_str_eq(a->method, b->method);
	ck_assert_str_eq(a->source_dsn, b->source_dsn);
	ck_assert_str_eq(a->target_dsn, b->target_dsn);
	ck_assert_str_eq(a->source_display, b->source_display);
	ck_assert_str_eq(a->target_display, b->target_display);
	ck_assert_str_eq(a->dir, b->dir);
	ck_assert_int_eq(a->state, b->state);
	ck_assert_int_eq(a->last_row, b->last_row);
	ck_assert_int_eq(a->failed_row, b->failed_row);
	if (a->state == PGM_ST_FAILED)
		ck_assert_int_eq(a->failed_from, b->failed_from);
	ck_assert_int_eq(a->created_ms, b->created_ms);
	ck_assert_int_eq(a->since_ms, b->since_ms);
	ck_assert_int_eq(a->freeze_started_ms, b->freeze_started_ms);
	ck_assert(cJSON_Compare(a->options, b->options, true));
	ck_assert(cJSON_Compare(a->facts, b->facts, true));
	ck_assert(cJSON_Compare(a->artifacts, b->artifacts, true));
	ck_assert(cJSON_Compare(a->warnings, b->warnings, true));
	ck_assert(cJSON_Compare(a->verify, b->verify, true));
}

START_TEST(test_round_trip)
{
	pgm_job_t *job = make_job(tmpdir), *back;
	char *err = NULL;

	ck_assert(pgm_store_save_secrets(job));
	ck_assert(pgm_store_save(job));
	back = pgm_store_load(tmpdir, &err);
	ck_assert_msg(back != NULL, "load failed: %s", err);
	ck_assert_ptr_null(err);
	assert_same_job(job, back);
	/* unset times stay unset; runtime fields start empty */
	ck_assert_int_le(back->rollback_deadline_ms, 0);
	ck_assert_ptr_null(back->progress);
	ck_assert_ptr_null(back->error);
	ck_assert_ptr_null(back->step);
	ck_assert_ptr_null(back->host);
	pgm_job_free(back);

	/* saved again after a change: the new state wins */
	job->state = PGM_ST_THAWING;
	job->last_row = row_of(PGM_EV_THAW, PGM_ST_THAWING);
	job->since_ms = 1700000999000;
	job->error = cJSON_Parse("{\"message\": \"boom\", \"hint\": \"retry\"}");
	ck_assert(pgm_store_save(job));
	back = pgm_store_load(tmpdir, &err);
	ck_assert_ptr_nonnull(back);
	assert_same_job(job, back);
	ck_assert(cJSON_Compare(job->error, back->error, true));
	pgm_job_free(back);
	pgm_job_free(job);
}
END_TEST

START_TEST(test_round_trip_failed)
{
	pgm_job_t *job = make_job(tmpdir), *back;
	char *err = NULL;

	job->state = PGM_ST_FAILED;
	job->last_row = row_of(PGM_EV_ERROR, PGM_ST_FAILED);
	job->failed_from = PGM_ST_SYNCING;
	job->failed_row = row_of(PGM_EV_DONE, PGM_ST_SYNCING);
	job->error = cJSON_Parse("{\"message\": \"could not connect\", \"state\": \"syncing\"}");
	ck_assert(pgm_store_save_secrets(job));
	ck_assert(pgm_store_save(job));
	back = pgm_store_load(tmpdir, &err);
	ck_assert_msg(back != NULL, "load failed: %s", err);
	assert_same_job(job, back);
	ck_assert_int_eq(back->failed_from, PGM_ST_SYNCING);
	ck_assert(cJSON_Compare(job->error, back->error, true));
	/* after the load, retry and abort decide exactly as before */
	ck_assert_int_eq(pgm_fsm_decide(back->state, back->failed_from, true, PGM_EV_RETRY),
			 pgm_fsm_decide(job->state, job->failed_from, true, PGM_EV_RETRY));
	ck_assert_int_ge(pgm_fsm_decide(back->state, back->failed_from, true, PGM_EV_ABORT), 0);
	pgm_job_free(back);

	/* failed after cutover: abort must stay refused after a restart */
	job->failed_from = PGM_ST_ROLLBACK_WINDOW;
	job->failed_row = row_of(PGM_EV_DONE, PGM_ST_ROLLBACK_WINDOW);
	ck_assert(pgm_store_save(job));
	back = pgm_store_load(tmpdir, &err);
	ck_assert_ptr_nonnull(back);
	assert_same_job(job, back);
	ck_assert_int_eq(pgm_fsm_decide(back->state, back->failed_from, true, PGM_EV_ABORT), -1);
	pgm_job_free(back);
	pgm_job_free(job);
}
END_TEST

/*
 * Every row a job can stand on survives a restart: the loaded row leads to
 * the same state by the same event and runs the same step (rows that only
 * differ in their from states are interchangeable there). Rows that are
 * unique come back as themselves.
 */
START_TEST(test_round_trip_every_row)
{
	pgm_job_t *job = make_job(tmpdir);

	ck_assert(pgm_store_save_secrets(job));
	for (int r = 0; r < pgm_transitions_count; r++) {
		const pgm_transition_t *t = &pgm_transitions[r];
		pgm_job_t *back;
		char *err = NULL;
		bool unique = true;

		if (t->to == PGM_ST__PREVIOUS)
			continue; /* the driver never stores the retry row: it stores the failed one */
		for (int o = 0; o < pgm_transitions_count; o++)
			if (o != r && pgm_transitions[o].event == t->event && pgm_transitions[o].to == t->to &&
			    strcmp(pgm_transitions[o].step_name, t->step_name) == 0)
				unique = false;
		job->state = t->to;
		job->last_row = r;
		ck_assert(pgm_store_save(job));
		back = pgm_store_load(tmpdir, &err);
		ck_assert_msg(back != NULL, "row %d: %s", r, err);
		ck_assert_int_eq(back->state, t->to);
		ck_assert_int_ge(back->last_row, 0);
		ck_assert_int_eq(pgm_transitions[back->last_row].event, t->event);
		ck_assert_int_eq(pgm_transitions[back->last_row].to, t->to);
		ck_assert_ptr_eq(pgm_transitions[back->last_row].step, t->step);
		if (unique)
			ck_assert_int_eq(back->last_row, r);
		pgm_job_free(back);
	}
	pgm_job_free(job);
}
END_TEST

/* a new job: no last row, nothing failed, empty collections */
START_TEST(test_round_trip_created)
{
	pgm_job_t *job = make_job(tmpdir), *back;
	char *err = NULL;

	job->state = PGM_ST_CREATED;
	job->last_row = -1;
	cJSON_Delete(job->verify);
	job->verify = NULL;
	cJSON_Delete(job->facts);
	job->facts = cJSON_CreateObject();
	cJSON_Delete(job->artifacts);
	job->artifacts = cJSON_CreateArray();
	ck_assert(pgm_store_save_secrets(job));
	ck_assert(pgm_store_save(job));
	back = pgm_store_load(tmpdir, &err);
	ck_assert_ptr_nonnull(back);
	ck_assert_int_eq(back->state, PGM_ST_CREATED);
	ck_assert_int_eq(back->last_row, -1);
	ck_assert_int_eq(back->failed_row, -1);
	ck_assert_ptr_null(back->verify);
	ck_assert(cJSON_IsObject(back->facts));
	ck_assert(cJSON_IsArray(back->artifacts));
	ck_assert_int_eq(cJSON_GetArraySize(back->artifacts), 0);
	pgm_job_free(back);
	pgm_job_free(job);
}
END_TEST

START_TEST(test_no_secret_in_state)
{
	pgm_job_t *job = make_job(tmpdir);
	char *state, *secrets;
	cJSON *o;
	struct stat st;
	char *spath = pgm_asprintf("%s/secrets.json", tmpdir);
	char *tpath = pgm_asprintf("%s/state.json", tmpdir);

	job->state = PGM_ST_FAILED;
	job->last_row = row_of(PGM_EV_ERROR, PGM_ST_FAILED);
	job->failed_from = PGM_ST_FREEZING;
	job->failed_row = row_of(PGM_EV_FREEZE, PGM_ST_FREEZING);
	ck_assert(pgm_store_save_secrets(job));
	ck_assert(pgm_store_save(job));

	state = read_text(tmpdir, "state.json");
	ck_assert_ptr_null(strstr(state, "s3cr3t"));
	ck_assert_ptr_null(strstr(state, "t4rget"));
	ck_assert_ptr_null(strstr(state, "password"));
	o = cJSON_Parse(state);
	ck_assert_ptr_nonnull(o);
	ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(o, "version")));
	ck_assert_int_eq(cJSON_GetObjectItem(o, "version")->valueint, 1);
	ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(o, "state")), "failed");
	ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(o, "source")),
			 "postgres://app:****@db.example.com:5432/shop?sslmode=require");
	ck_assert_ptr_nonnull(strstr(cJSON_GetStringValue(cJSON_GetObjectItem(o, "target")), "****"));
	ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(o, "created_at")), "2023-11-14T22:13:20.123Z");
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(o, "rollback_deadline")));
	ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "failed_in"), "state")),
			 "freezing");
	ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "last_transition"), "to")),
			 "failed");
	cJSON_Delete(o);

	/* the passwords live in secrets.json, readable by the owner only */
	secrets = read_text(tmpdir, "secrets.json");
	ck_assert_ptr_nonnull(strstr(secrets, "s3cr3t-pw"));
	ck_assert_ptr_nonnull(strstr(secrets, "t4rget-pw"));
	ck_assert_int_eq(stat(spath, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0600);
	ck_assert_int_eq(stat(tpath, &st), 0);
	ck_assert_int_eq(st.st_mode & 077, 0);

	/* the atomic replace leaves no temporary file behind */
	ck_assert(!exists(tmpdir, "state.json.tmp"));
	ck_assert(!exists(tmpdir, "secrets.json.tmp"));

	free(state);
	free(secrets);
	free(spath);
	free(tpath);
	pgm_job_free(job);
}
END_TEST

/* the status object is state.json without version, plus the commands allowed */
START_TEST(test_status_object)
{
	pgm_job_t *job = make_job(tmpdir);
	cJSON *s = pgm_job_status(job);
	char *text = cJSON_PrintUnformatted(s);

	ck_assert_ptr_null(strstr(text, "s3cr3t"));
	ck_assert_ptr_null(strstr(text, "t4rget"));
	ck_assert_ptr_null(cJSON_GetObjectItem(s, "version"));
	ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(s, "state")), "verified");
	ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(s, "allowed_commands")),
			 "thaw, verify, cutover, abort");
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(s, "lag_bytes")));
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(s, "step")));
	free(text);
	cJSON_Delete(s);

	/* lag facts and progress show up */
	cJSON_AddItemToObject(job->facts, "lag", cJSON_Parse("{\"bytes\": 4096, \"seconds\": 1.5}"));
	job->progress = cJSON_Parse("{\"name\": \"copy\", \"tables_done\": 1}");
	s = pgm_job_status(job);
	ck_assert_int_eq((int) cJSON_GetNumberValue(cJSON_GetObjectItem(s, "lag_bytes")), 4096);
	ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(s, "step"), "name")), "copy");
	cJSON_Delete(s);
	pgm_job_free(job);
}
END_TEST

/* load must fail with a message naming the file, never crash */
static void
load_fails(const char *frag)
{
	char *err = NULL;
	pgm_job_t *job = pgm_store_load(tmpdir, &err);

	ck_assert_msg(job == NULL, "a damaged state loaded");
	ck_assert_ptr_nonnull(err);
	ck_assert_msg(strstr(err, frag) != NULL, "\"%s\" lacks \"%s\"", err, frag);
	ck_assert_msg(strstr(err, tmpdir) != NULL, "\"%s\" does not name the file", err);
	free(err);
}

START_TEST(test_load_errors)
{
	pgm_job_t *job = make_job(tmpdir);
	char *good;

	/* nothing there */
	load_fails("could not read");

	ck_assert(pgm_store_save_secrets(job));
	ck_assert(pgm_store_save(job));
	good = read_text(tmpdir, "state.json");

	/* cut short: where the text stops being JSON is said */
	write_text(tmpdir, "state.json", "{\"version\": 1, \"name\": \"shop\", \"meth");
	load_fails("not valid JSON (36 bytes, unreadable from byte");
	write_text(tmpdir, "state.json", "");
	load_fails("is empty (0 bytes): it was truncated");
	write_text(tmpdir, "state.json", "[1, 2, 3]");
	load_fails("is not a JSON object");
	write_text(tmpdir, "state.json",
		   "{\"version\": 2, \"name\": \"shop\", \"method\": \"dump\", \"state\": \"created\"}");
	load_fails("unsupported version");
	write_text(tmpdir, "state.json",
		   "{\"version\": \"1\", \"name\": \"shop\", \"method\": \"dump\", \"state\": \"created\"}");
	load_fails("unsupported version");
	write_text(tmpdir, "state.json", "{\"name\": \"shop\", \"method\": \"dump\", \"state\": \"created\"}");
	load_fails("unsupported version");
	write_text(tmpdir, "state.json", "{\"version\": 1, \"method\": \"dump\", \"state\": \"created\"}");
	load_fails("lacks name");
	write_text(tmpdir, "state.json", "{\"version\": 1, \"name\": \"shop\", \"method\": \"dump\", \"state\": 3}");
	load_fails("lacks name");
	write_text(tmpdir, "state.json",
		   "{\"version\": 1, \"name\": \"shop\", \"method\": \"dump\", \"state\": \"melted\"}");
	load_fails("unknown state \"melted\"");

	/* a good state without its secrets: the connection strings are lost */
	write_text(tmpdir, "state.json", good);
	write_text(tmpdir, "secrets.json", "{\"source\": \"postgres://a@b/c\"}");
	load_fails("secrets.json");
	write_text(tmpdir, "secrets.json", "not json at all");
	load_fails("secrets.json");
	{
		char *spath = pgm_asprintf("%s/secrets.json", tmpdir);
		ck_assert_int_eq(unlink(spath), 0);
		free(spath);
	}
	load_fails("connection strings are lost");

	/* and a good pair still loads */
	ck_assert(pgm_store_save_secrets(job));
	{
		char *err = NULL;
		pgm_job_t *back = pgm_store_load(tmpdir, &err);
		ck_assert_ptr_nonnull(back);
		pgm_job_free(back);
	}
	/* odd but valid: unknown fields and rows are ignored, not fatal */
	write_text(tmpdir, "state.json",
		   "{\"version\": 1, \"name\": \"shop\", \"method\": \"dump\", \"state\": \"synced\","
		   " \"future_field\": 1, \"last_transition\": {\"event\": \"warp\"}, \"facts\": null,"
		   " \"created_at\": \"yesterday\"}");
	{
		char *err = NULL;
		pgm_job_t *back = pgm_store_load(tmpdir, &err);
		ck_assert_msg(back != NULL, "%s", err);
		ck_assert_int_eq(back->state, PGM_ST_SYNCED);
		ck_assert_int_eq(back->last_row, -1);
		ck_assert_int_eq(back->created_ms, -1);
		ck_assert(cJSON_IsObject(back->facts));
		ck_assert(cJSON_IsArray(back->warnings));
		pgm_job_free(back);
	}
	free(good);
	pgm_job_free(job);
}
END_TEST

/* saving into a directory that is gone fails cleanly */
START_TEST(test_save_fails)
{
	char *gone = pgm_asprintf("%s/missing/shop", tmpdir);
	pgm_job_t *job = make_job(gone);

	ck_assert(!pgm_store_save(job));
	/* the reason, for the errors that say why a change was not made: the file and the system error */
	ck_assert_ptr_nonnull(strstr(pgm_store_error(), "missing/shop/state.json"));
	ck_assert_ptr_nonnull(strstr(pgm_store_error(), strerror(ENOENT)));
	ck_assert(!pgm_store_save_secrets(job));
	pgm_job_free(job);
	free(gone);
}
END_TEST

/*
 * PGMOVER_INJECT: nothing to arm is fine; in a build without injection
 * points (the unit tests' own) any point is refused, so that a test meaning
 * to inject a fault cannot pass against a daemon that ignores it
 */
START_TEST(test_inject_arm)
{
	char *err = NULL;

	ck_assert(pgm_inject_arm(NULL, &err));
	ck_assert_ptr_null(err);
	ck_assert(pgm_inject_arm("", &err));
	ck_assert_ptr_null(err);
	ck_assert(!PGM_INJECT("store.save"));
#ifndef PGM_INJECTION_POINTS
	ck_assert(!pgm_inject_arm("store.save:3", &err));
	ck_assert_ptr_nonnull(strstr(err, "built without injection points"));
	free(err);
#endif
}
END_TEST

START_TEST(test_file_replace)
{
	char *path = pgm_asprintf("%s/f.bin", tmpdir);
	static const char data[] = "a\0b\nc";
	char *text;
	size_t len = 0;
	struct stat st;

	mode_t old_mask = umask(022);

	ck_assert(pgm_file_replace(path, data, sizeof(data) - 1, 0640));
	text = pgm_file_read(path, 1 << 20, &len);
	ck_assert_ptr_nonnull(text);
	ck_assert_uint_eq(len, sizeof(data) - 1);
	ck_assert_int_eq(memcmp(text, data, len), 0);
	ck_assert_int_eq(text[len], '\0'); /* always terminated */
	free(text);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0640);
	umask(old_mask);

	/* replacing: the new content, shorter, and no .tmp left */
	ck_assert(pgm_file_replace(path, "xy", 2, 0600));
	text = pgm_file_read(path, 1 << 20, &len);
	ck_assert_uint_eq(len, 2);
	ck_assert_str_eq(text, "xy");
	free(text);
	ck_assert(!exists(tmpdir, "f.bin.tmp"));

	/* an empty file */
	ck_assert(pgm_file_replace(path, "", 0, 0600));
	text = pgm_file_read(path, 1 << 20, &len);
	ck_assert_uint_eq(len, 0);
	ck_assert_str_eq(text, "");
	free(text);
	free(path);

	/* a directory that does not exist */
	path = pgm_asprintf("%s/nope/f", tmpdir);
	ck_assert(!pgm_file_replace(path, "x", 1, 0600));
	free(path);
}
END_TEST

START_TEST(test_file_append)
{
	char *path = pgm_asprintf("%s/audit.jsonl", tmpdir);
	char *text;
	struct stat st;

	ck_assert(pgm_file_append_line(path, "{\"n\": 1}", 0600));
	ck_assert(pgm_file_append_line(path, "{\"n\": 2}", 0600));
	ck_assert(pgm_file_append_line(path, "", 0600));
	text = pgm_file_read(path, 1 << 20, NULL);
	ck_assert_str_eq(text, "{\"n\": 1}\n{\"n\": 2}\n\n");
	free(text);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	free(path);

	path = pgm_asprintf("%s/nope/audit.jsonl", tmpdir);
	ck_assert(!pgm_file_append_line(path, "x", 0600));
	free(path);
}
END_TEST

START_TEST(test_file_read)
{
	char *path = pgm_asprintf("%s/big", tmpdir);
	char *big = malloc(10000), *text;
	size_t len = 0;

	memset(big, 'x', 10000);
	ck_assert(pgm_file_replace(path, big, 10000, 0600));
	/* larger than the initial buffer: read whole */
	text = pgm_file_read(path, 1 << 20, &len);
	ck_assert_ptr_nonnull(text);
	ck_assert_uint_eq(len, 10000);
	ck_assert_uint_eq(strlen(text), 10000);
	free(text);
	/* larger than allowed: EFBIG */
	errno = 0;
	ck_assert_ptr_null(pgm_file_read(path, 4096, &len));
	ck_assert_int_eq(errno, EFBIG);
	free(path);
	free(big);

	/* missing: ENOENT */
	path = pgm_asprintf("%s/none", tmpdir);
	errno = 0;
	ck_assert_ptr_null(pgm_file_read(path, 4096, NULL));
	ck_assert_int_eq(errno, ENOENT);
	free(path);
}
END_TEST

START_TEST(test_mkdir_rmtree)
{
	char *deep = pgm_asprintf("%s/a/b/c", tmpdir);
	char *file = pgm_asprintf("%s/a/b/file", tmpdir);
	char *outside = pgm_asprintf("%s/outside", tmpdir);
	char *keep = pgm_asprintf("%s/outside/keep", tmpdir);
	char *link = pgm_asprintf("%s/a/link", tmpdir);
	char *top = pgm_asprintf("%s/a", tmpdir);
	char *under_file = pgm_asprintf("%s/a/b/file/sub", tmpdir);
	struct stat st;

	ck_assert(pgm_mkdir_p(deep, 0700));
	ck_assert_int_eq(stat(deep, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_int_eq(st.st_mode & 0777, 0700);
	/* again: already there is fine */
	ck_assert(pgm_mkdir_p(deep, 0700));
	ck_assert(pgm_mkdir_p(tmpdir, 0700));
	/* a path through a regular file is not */
	ck_assert(pgm_file_replace(file, "x", 1, 0600));
	ck_assert(!pgm_mkdir_p(under_file, 0700));
	ck_assert(!pgm_mkdir_p("", 0700));

	/* rmtree removes the tree but does not follow a symlink out of it */
	ck_assert(pgm_mkdir_p(outside, 0700));
	ck_assert(pgm_file_replace(keep, "keep", 4, 0600));
	ck_assert_int_eq(symlink(outside, link), 0);
	ck_assert(pgm_rmtree(top));
	ck_assert_int_ne(lstat(top, &st), 0);
	ck_assert_int_eq(stat(keep, &st), 0);
	/* already gone is success */
	ck_assert(pgm_rmtree(top));
	/* a single file */
	ck_assert(pgm_rmtree(keep));
	ck_assert_int_ne(stat(keep, &st), 0);

	free(deep);
	free(file);
	free(outside);
	free(keep);
	free(link);
	free(top);
	free(under_file);
}
END_TEST

Suite *
pgm_test_suite(void)
{
	Suite *s = suite_create("store");
	TCase *store = tcase_create("store");
	TCase *files = tcase_create("files");

	tcase_add_checked_fixture(store, setup, teardown);
	tcase_add_test(store, test_round_trip);
	tcase_add_test(store, test_round_trip_failed);
	tcase_add_test(store, test_round_trip_every_row);
	tcase_add_test(store, test_round_trip_created);
	tcase_add_test(store, test_no_secret_in_state);
	tcase_add_test(store, test_status_object);
	tcase_add_test(store, test_load_errors);
	tcase_add_test(store, test_save_fails);
	tcase_add_test(store, test_inject_arm);
	suite_add_tcase(s, store);

	tcase_add_checked_fixture(files, setup, teardown);
	tcase_add_test(files, test_file_replace);
	tcase_add_test(files, test_file_append);
	tcase_add_test(files, test_file_read);
	tcase_add_test(files, test_mkdir_rmtree);
	suite_add_tcase(s, files);
	return s;
}
