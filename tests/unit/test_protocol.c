/*
 * test_protocol.c
 *    Unit tests of the control protocol (src/daemon/control.c, commands.c):
 *    each request line goes through pgm_control_handle_line exactly as the
 *    socket passes it, and the reply object is checked. Nothing connects to
 *    a server: no command that starts a step is sent, and the loop is only
 *    run at teardown to close the jobs' handles.
 */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check_main.h"
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "daemon/control.h"
#include "fsm/store.h"

#define SOURCE "postgres://u:secret@127.0.0.1:1/a?sslmode=require"
#define TARGET "postgres://u:pw@127.0.0.1:2/b"

static pgm_daemon_t d;
static uv_loop_t loop;
static char state_dir[64];

static void
setup(void)
{
	pgm_log_set_level(PGM_LOG_WARNING);
	memset(&d, 0, sizeof(d));
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	d.host.loop = &loop;
	pgm_config_init(&d.cfg);
	snprintf(state_dir, sizeof(state_dir), "/tmp/pgm-proto-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(state_dir));
	free(d.cfg.state_dir);
	d.cfg.state_dir = pgm_strdup(state_dir);
}

/* free the jobs: their timers close on the loop, which then has nothing left */
static void
shutdown_daemon(pgm_daemon_t *dd)
{
	pgm_jobs_shutdown(&dd->host);
	for (int i = 0; i < 100 && uv_loop_alive(dd->host.loop); i++)
		uv_run(dd->host.loop, UV_RUN_NOWAIT);
	ck_assert(!uv_loop_alive(dd->host.loop));
	ck_assert_ptr_null(dd->host.jobs);
}

static void
teardown(void)
{
	shutdown_daemon(&d);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	pgm_jobs_free_corrupt(&d);
	pgm_config_free(&d.cfg);
	ck_assert(pgm_rmtree(state_dir));
}

/* send one request line; the caller owns the reply */
static cJSON *
request(const char *line)
{
	cJSON *r = pgm_control_handle_line(&d, NULL, line, strlen(line));

	ck_assert_ptr_nonnull(r);
	ck_assert(cJSON_IsBool(cJSON_GetObjectItem(r, "ok")));
	return r;
}

/* a request that must succeed: returns the reply (result checked to be an object) */
static cJSON *
request_ok(const char *line)
{
	cJSON *r = request(line);
	char *text = cJSON_PrintUnformatted(r);

	ck_assert_msg(cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")), "%s -> %s", line, text);
	ck_assert(cJSON_IsObject(cJSON_GetObjectItem(r, "result")));
	ck_assert_ptr_null(cJSON_GetObjectItem(r, "error"));
	free(text);
	return r;
}

/*
 * A request that must fail with code; message and (when want_hint) hint
 * must be non-empty. Returns the reply.
 */
static cJSON *
request_err(const char *line, const char *code, bool want_hint)
{
	cJSON *r = request(line);
	const cJSON *e = cJSON_GetObjectItem(r, "error");
	char *text = cJSON_PrintUnformatted(r);
	const char *msg, *hint;

	ck_assert_msg(cJSON_IsFalse(cJSON_GetObjectItem(r, "ok")), "%s -> %s", line, text);
	ck_assert_msg(cJSON_IsObject(e), "%s -> %s", line, text);
	ck_assert_ptr_null(cJSON_GetObjectItem(r, "result"));
	ck_assert_msg(strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(e, "code")), code) == 0, "%s -> %s, want %s",
		      line, text, code);
	ck_assert_msg(pgm_error_code_known(code), "%s is not a code of protocol.h", code);
	msg = cJSON_GetStringValue(cJSON_GetObjectItem(e, "message"));
	ck_assert_msg(msg && *msg, "%s -> %s: no message", line, text);
	if (want_hint) {
		hint = cJSON_GetStringValue(cJSON_GetObjectItem(e, "hint"));
		ck_assert_msg(hint && *hint, "%s -> %s: no hint", line, text);
	}
	free(text);
	return r;
}

static const char *
err_field(const cJSON *r, const char *field)
{
	return cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "error"), field));
}

static const char *
result_str(const cJSON *r, const char *field)
{
	return cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "result"), field));
}

/* the id of the reply, printed ("null" when there is none) */
static void
assert_id(const cJSON *r, const char *expected)
{
	const cJSON *id = cJSON_GetObjectItem(r, "id");
	char *text;

	ck_assert_ptr_nonnull(id);
	text = cJSON_PrintUnformatted(id);
	ck_assert_str_eq(text, expected);
	free(text);
}

static char *
job_file(const char *job, const char *file)
{
	return pgm_asprintf("%s/%s/%s", state_dir, job, file);
}

static char *
read_job_file(const char *job, const char *file)
{
	char *path = job_file(job, file);
	char *text = pgm_file_read(path, 1 << 20, NULL);

	ck_assert_msg(text != NULL, "could not read %s", path);
	free(path);
	return text;
}

/* the create request of the good job, with extra text inside args */
static cJSON *
create_job(const char *name, const char *extra)
{
	char *line = pgm_asprintf("{\"id\": 1, \"cmd\": \"create\", \"job\": \"%s\", \"args\": {\"source\": \"%s\", "
				  "\"target\": \"%s\", \"method\": \"dump\"%s}}",
				  name, SOURCE, TARGET, extra ? extra : "");
	cJSON *r = request_ok(line);

	free(line);
	return r;
}

/* how many entries the state directory holds */
static int
count_entries(const char *path)
{
	DIR *dir = opendir(path);
	struct dirent *de;
	int n = 0;

	ck_assert_ptr_nonnull(dir);
	while ((de = readdir(dir)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(dir);
	return n;
}

START_TEST(test_malformed)
{
	cJSON *r;

	r = request_err("{\"id\": 5, \"cmd\": ", "bad_request", true);
	assert_id(r, "null");
	ck_assert_ptr_nonnull(strstr(err_field(r, "message"), "not valid JSON"));
	cJSON_Delete(r);
	r = request_err("", "bad_request", true);
	assert_id(r, "null");
	cJSON_Delete(r);
	r = request_err("hello", "bad_request", true);
	assert_id(r, "null");
	cJSON_Delete(r);

	/* JSON, but not an object */
	r = request_err("[{\"id\": 1, \"cmd\": \"version\"}]", "bad_request", true);
	assert_id(r, "null");
	ck_assert_ptr_nonnull(strstr(err_field(r, "message"), "object"));
	cJSON_Delete(r);
	r = request_err("42", "bad_request", true);
	cJSON_Delete(r);
	r = request_err("\"version\"", "bad_request", true);
	cJSON_Delete(r);
	r = request_err("null", "bad_request", true);
	cJSON_Delete(r);

	/* no cmd, or not a string: the id is still echoed */
	r = request_err("{\"id\": 3}", "bad_request", true);
	assert_id(r, "3");
	ck_assert_ptr_nonnull(strstr(err_field(r, "message"), "cmd"));
	cJSON_Delete(r);
	r = request_err("{\"id\": \"x\", \"cmd\": 7}", "bad_request", true);
	assert_id(r, "\"x\"");
	cJSON_Delete(r);
	r = request_err("{\"cmd\": null}", "bad_request", true);
	assert_id(r, "null");
	cJSON_Delete(r);
}
END_TEST

START_TEST(test_unknown_command)
{
	cJSON *r = request_err("{\"id\": 9, \"cmd\": \"launch\"}", "unknown_command", true);

	assert_id(r, "9");
	ck_assert_ptr_nonnull(strstr(err_field(r, "message"), "\"launch\""));
	ck_assert_ptr_nonnull(strstr(err_field(r, "hint"), "status"));
	/* the hint is the command table: every command, in its order */
	{
		const char *hint = err_field(r, "hint"), *at = hint;

		for (int i = 0; pgm_commands[i].name; i++) {
			char *word = pgm_asprintf("%s%s%s", i ? " " : ": ", pgm_commands[i].name,
						  pgm_commands[i + 1].name ? "," : "");

			at = strstr(at, word);
			ck_assert_msg(at != NULL, "the unknown_command hint \"%s\" lacks \"%s\" in table order", hint,
				      word);
			free(word);
		}
	}
	cJSON_Delete(r);
	/* commands are case-sensitive; event names that are not commands are not commands */
	cJSON_Delete(request_err("{\"id\": 9, \"cmd\": \"VERSION\"}", "unknown_command", true));
	cJSON_Delete(request_err("{\"id\": 9, \"cmd\": \"done\", \"job\": \"x\"}", "unknown_command", true));
	cJSON_Delete(request_err("{\"id\": 9, \"cmd\": \"error\", \"job\": \"x\"}", "unknown_command", true));
	/* a very long name is cut in the message */
	{
		char line[600];
		cJSON *rr;

		snprintf(line, sizeof(line), "{\"cmd\": \"%0500d\"}", 0);
		rr = request_err(line, "unknown_command", true);
		ck_assert_uint_lt(strlen(err_field(rr, "message")), 120);
		cJSON_Delete(rr);
	}
}
END_TEST

START_TEST(test_ids_echoed)
{
	static const char *ids[] = {"7", "\"abc\"", "0", "-2", "1.5", "\"\"", "{\"n\":1}", "[1,2]", "null", "true"};

	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		char *ok_line = pgm_asprintf("{\"id\": %s, \"cmd\": \"version\"}", ids[i]);
		char *err_line = pgm_asprintf("{\"cmd\": \"status\", \"job\": \"nobody\", \"id\": %s}", ids[i]);
		char *bad_line = pgm_asprintf("{\"id\": %s, \"cmd\": \"nope\"}", ids[i]);
		cJSON *r;

		r = request_ok(ok_line);
		assert_id(r, ids[i]);
		cJSON_Delete(r);
		r = request_err(err_line, "no_such_job", true);
		assert_id(r, ids[i]);
		cJSON_Delete(r);
		r = request_err(bad_line, "unknown_command", true);
		assert_id(r, ids[i]);
		cJSON_Delete(r);
		free(ok_line);
		free(err_line);
		free(bad_line);
	}
	/* no id at all: null */
	{
		cJSON *r = request_ok("{\"cmd\": \"version\"}");
		assert_id(r, "null");
		cJSON_Delete(r);
	}
}
END_TEST

/* the line is what len says, not up to a NUL: bytes past it are ignored */
START_TEST(test_line_length)
{
	const char *line = "{\"id\": 4, \"cmd\": \"version\"}garbage after the line";
	cJSON *r = pgm_control_handle_line(&d, NULL, line, strlen("{\"id\": 4, \"cmd\": \"version\"}"));

	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")));
	assert_id(r, "4");
	cJSON_Delete(r);
	/* cut short: invalid */
	r = pgm_control_handle_line(&d, NULL, line, 10);
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(r, "ok")));
	ck_assert_str_eq(err_field(r, "code"), "bad_request");
	cJSON_Delete(r);
}
END_TEST

START_TEST(test_version_describe_jobs)
{
	cJSON *r = request_ok("{\"id\": 1, \"cmd\": \"version\"}");
	const cJSON *res = cJSON_GetObjectItem(r, "result"), *cmds, *c;
	int n = 0;

	ck_assert_int_eq((int) cJSON_GetNumberValue(cJSON_GetObjectItem(res, "protocol")), 1);
	ck_assert_int_eq(PGM_PROTOCOL_VERSION, 1);
	ck_assert_ptr_nonnull(result_str(r, "version"));
	ck_assert_uint_gt(strlen(result_str(r, "version")), 0);
	cJSON_Delete(r);

	r = request_ok("{\"id\": 2, \"cmd\": \"describe\"}");
	res = cJSON_GetObjectItem(r, "result");
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(res, "states")), PGM_ST__COUNT);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(res, "transitions")), pgm_transitions_count);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(res, "events")), PGM_EV__COUNT);
	cmds = cJSON_GetObjectItem(res, "commands");
	ck_assert(cJSON_IsArray(cmds));
	cJSON_ArrayForEach (c, cmds) {
		const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(c, "name"));
		const pgm_command_t *def = pgm_command_find(name);

		ck_assert_ptr_nonnull(def);
		ck_assert_int_eq(cJSON_IsTrue(cJSON_GetObjectItem(c, "needs_job")), def->needs_job);
		ck_assert_ptr_nonnull(cJSON_GetStringValue(cJSON_GetObjectItem(c, "help")));
		n++;
	}
	/* the commands of DESIGN.md, set, delete and events, and every operator event is one of them */
	ck_assert_int_eq(n, 18);
	{
		static const char *global[] = {"version", "describe", "jobs", "status"};
		static const char *per_job[] = {"create", "start", "freeze", "thaw",  "verify", "cutover", "rollback",
						"finish", "abort", "retry",  "watch", "set",    "delete",  "events"};

		for (size_t i = 0; i < sizeof(global) / sizeof(global[0]); i++)
			ck_assert_msg(!pgm_command_find(global[i])->needs_job, "%s needs a job", global[i]);
		for (size_t i = 0; i < sizeof(per_job) / sizeof(per_job[0]); i++) {
			char *line = pgm_asprintf("{\"id\": 1, \"cmd\": \"%s\"}", per_job[i]);
			cJSON *rr;

			ck_assert_msg(pgm_command_find(per_job[i])->needs_job, "%s needs no job", per_job[i]);
			rr = request_err(line, "bad_request", true);
			ck_assert_ptr_nonnull(strstr(err_field(rr, "message"), "needs a job"));
			cJSON_Delete(rr);
			free(line);
		}
	}
	for (int ev = 0; ev < PGM_EV__COUNT; ev++)
		if (pgm_event_is_command((pgm_event_t) ev))
			ck_assert_msg(pgm_command_find(pgm_event_name((pgm_event_t) ev)) != NULL, "no command %s",
				      pgm_event_name((pgm_event_t) ev));
	ck_assert_ptr_nonnull(pgm_command_find("watch"));
	ck_assert_ptr_null(pgm_command_find("launch"));
	cJSON_Delete(r);

	r = request_ok("{\"id\": 3, \"cmd\": \"jobs\"}");
	res = cJSON_GetObjectItem(r, "result");
	ck_assert(cJSON_IsArray(cJSON_GetObjectItem(res, "jobs")));
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(res, "jobs")), 0);
	cJSON_Delete(r);

	/* status of all, with no jobs */
	r = request_ok("{\"id\": 4, \"cmd\": \"status\"}");
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "result"), "jobs")), 0);
	cJSON_Delete(r);
	r = request_ok("{\"id\": 4, \"cmd\": \"status\", \"job\": null, \"args\": null}");
	cJSON_Delete(r);
}
END_TEST

START_TEST(test_request_shape)
{
	cJSON *r;

	r = request_err("{\"id\": 1, \"cmd\": \"create\", \"job\": \"x\", \"args\": [1]}", "bad_request", false);
	ck_assert_ptr_nonnull(strstr(err_field(r, "message"), "args"));
	assert_id(r, "1");
	cJSON_Delete(r);
	cJSON_Delete(request_err("{\"id\": 1, \"cmd\": \"status\", \"args\": \"x\"}", "bad_request", false));
	cJSON_Delete(request_err("{\"id\": 1, \"cmd\": \"version\", \"args\": 3}", "bad_request", false));
	r = request_err("{\"id\": 1, \"cmd\": \"status\", \"job\": 12}", "bad_request", false);
	ck_assert_ptr_nonnull(strstr(err_field(r, "message"), "job"));
	cJSON_Delete(r);
	r = request_err("{\"id\": 1, \"cmd\": \"create\"}", "bad_request", true);
	ck_assert_ptr_nonnull(strstr(err_field(r, "message"), "needs a job"));
	cJSON_Delete(r);
	cJSON_Delete(request_err("{\"id\": 1, \"cmd\": \"freeze\", \"job\": null}", "bad_request", true));
	/* nothing was created by any of that */
	ck_assert_int_eq(count_entries(state_dir), 0);
}
END_TEST

/* create requests that must be refused with code, and the message fragment */
static void
create_fails(const char *name, const char *source, const char *target, const char *method, const char *extra,
	     const char *code, const char *frag)
{
	char *line = pgm_asprintf("{\"id\": 11, \"cmd\": \"create\", \"job\": \"%s\", \"args\": {"
				  "\"source\": \"%s\", \"target\": \"%s\", \"method\": \"%s\"%s}}",
				  name, source, target, method, extra ? extra : "");
	cJSON *r = request_err(line, code, true);
	char *text = cJSON_PrintUnformatted(r);

	assert_id(r, "11");
	ck_assert_msg(strstr(err_field(r, "message"), frag) != NULL, "\"%s\" lacks \"%s\"", err_field(r, "message"),
		      frag);
	/* an error never echoes a password */
	ck_assert_ptr_null(strstr(text, "secret"));
	free(text);
	cJSON_Delete(r);
	free(line);
}

START_TEST(test_create_refused)
{
	create_fails("bad name", SOURCE, TARGET, "dump", NULL, "invalid_argument", "invalid job name");
	create_fails("-dash", SOURCE, TARGET, "dump", NULL, "invalid_argument", "invalid job name");
	create_fails("..", SOURCE, TARGET, "dump", NULL, "invalid_argument", "invalid job name");
	create_fails("a/b", SOURCE, TARGET, "dump", NULL, "invalid_argument", "invalid job name");
	create_fails("", SOURCE, TARGET, "dump", NULL, "invalid_argument", "invalid job name");
	create_fails("shop", SOURCE, TARGET, "rsync", NULL, "invalid_argument", "unknown method \"rsync\"");
	create_fails("shop", SOURCE, TARGET, "", NULL, "invalid_argument", "unknown method");
	/* a backup file is restored, never replicated */
	create_fails("shop", "file:/etc/hostname", TARGET, "pglogical", NULL, "invalid_argument", "method dump");
	create_fails("shop", "file:/nonexistent/latest.dump", TARGET, "dump", NULL, "invalid_argument",
		     "cannot read the source file");
	create_fails("shop", "host=h bogus_key=1 password=secret", TARGET, "dump", NULL, "invalid_argument",
		     "invalid source connection string");
	create_fails("shop", "", TARGET, "dump", NULL, "invalid_argument", "invalid source connection string");
	create_fails("shop", SOURCE, "not a dsn", "dump", NULL, "invalid_argument", "invalid target connection string");
	create_fails("shop", SOURCE, "postgres://h:5432/db?nonsense=1", "dump", NULL, "invalid_argument",
		     "invalid target connection string");
	/* the same database, however it is spelled */
	create_fails("shop", SOURCE, SOURCE, "dump", NULL, "invalid_argument", "same database");
	create_fails("shop", "postgres://u:secret@db.example.com/app",
		     "host=db.example.com port=5432 dbname=app user=other", "dump", NULL, "invalid_argument",
		     "same database");
	/* options */
	create_fails("shop", SOURCE, TARGET, "dump", ", \"options\": {\"nope\": \"1\"}", "invalid_argument",
		     "\"nope\"");
	create_fails("shop", SOURCE, TARGET, "dump", ", \"options\": {\"jobs\": \"0\"}", "invalid_argument", "jobs");
	create_fails("shop", SOURCE, TARGET, "dump", ", \"options\": {\"hook_timeout\": \"5 parsecs\"}",
		     "invalid_argument", "hook_timeout");
	create_fails("shop", SOURCE, TARGET, "dump", ", \"options\": [\"jobs=2\"]", "invalid_argument", "object");

	/* missing source / target / method */
	cJSON_Delete(request_err("{\"cmd\": \"create\", \"job\": \"shop\", \"args\": {\"target\": \"" TARGET
				 "\", \"method\": \"dump\"}}",
				 "invalid_argument", true));
	cJSON_Delete(request_err("{\"cmd\": \"create\", \"job\": \"shop\", \"args\": {\"source\": \"" SOURCE
				 "\", \"method\": \"dump\"}}",
				 "invalid_argument", true));
	cJSON_Delete(request_err("{\"cmd\": \"create\", \"job\": \"shop\", \"args\": {\"source\": \"" SOURCE
				 "\", \"target\": \"" TARGET "\"}}",
				 "invalid_argument", true));
	cJSON_Delete(request_err("{\"cmd\": \"create\", \"job\": \"shop\"}", "invalid_argument", true));

	/* nothing reached the disk, and no job exists */
	ck_assert_int_eq(count_entries(state_dir), 0);
	ck_assert_ptr_null(d.host.jobs);
}
END_TEST

START_TEST(test_create_and_status)
{
	cJSON *r = create_job("shop", ", \"options\": {\"jobs\": 4, \"rehearsal\": false}");
	const cJSON *res = cJSON_GetObjectItem(r, "result");
	char *text = cJSON_PrintUnformatted(r), *path, *state;
	struct stat st;
	pgm_job_t *job;

	assert_id(r, "1");
	ck_assert_str_eq(result_str(r, "state"), "created");
	ck_assert_str_eq(result_str(r, "name"), "shop");
	ck_assert_str_eq(result_str(r, "method"), "dump");
	ck_assert_ptr_nonnull(strstr(result_str(r, "source"), "****"));
	ck_assert_ptr_nonnull(strstr(result_str(r, "source"), "127.0.0.1"));
	ck_assert_ptr_nonnull(strstr(result_str(r, "target"), "****"));
	ck_assert_ptr_null(strstr(text, "secret"));
	ck_assert_ptr_null(strstr(text, ":pw@"));
	ck_assert_str_eq(result_str(r, "allowed_commands"), "start, abort");
	ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(res, "options"), "jobs")), "4");
	ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(res, "options"), "rehearsal")),
			 "off");
	ck_assert(pgm_parse_time(result_str(r, "since")) > 0);
	free(text);
	cJSON_Delete(r);

	/* the registry holds it, with the full DSN kept for the steps */
	job = pgm_jobs_find(&d, "shop");
	ck_assert_ptr_nonnull(job);
	ck_assert_str_eq(job->source_dsn, SOURCE);
	ck_assert_int_eq(job->state, PGM_ST_CREATED);
	ck_assert_ptr_null(job->step); /* nothing runs until start */

	/* its files */
	path = pgm_asprintf("%s/shop", state_dir);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_int_eq(st.st_mode & 077, 0);
	free(path);
	path = job_file("shop", "secrets.json");
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0600);
	free(path);
	path = job_file("shop", "audit.jsonl");
	ck_assert_int_eq(stat(path, &st), 0);
	free(path);
	state = read_job_file("shop", "state.json");
	ck_assert_ptr_null(strstr(state, "secret"));
	ck_assert_ptr_nonnull(strstr(state, "\"version\":\t1"));
	free(state);
	state = read_job_file("shop", "audit.jsonl");
	ck_assert_ptr_nonnull(strstr(state, "\"create\""));
	ck_assert_ptr_null(strstr(state, "secret"));
	free(state);

	/* status of it, and of all */
	r = request_ok("{\"id\": \"s\", \"cmd\": \"status\", \"job\": \"shop\"}");
	assert_id(r, "\"s\"");
	ck_assert_str_eq(result_str(r, "state"), "created");
	ck_assert_ptr_null(strstr(result_str(r, "source"), "secret"));
	ck_assert_ptr_nonnull(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "result"), "lag_bytes"));
	cJSON_Delete(r);
	cJSON_Delete(create_job("other", NULL));
	r = request_ok("{\"id\": 5, \"cmd\": \"status\"}");
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "result"), "jobs")), 2);
	cJSON_Delete(r);
	r = request_ok("{\"id\": 6, \"cmd\": \"jobs\"}");
	res = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "result"), "jobs");
	ck_assert_int_eq(cJSON_GetArraySize(res), 2);
	ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(res, 0), "state")), "created");
	cJSON_Delete(r);

	/* unknown job */
	r = request_err("{\"id\": 7, \"cmd\": \"status\", \"job\": \"nobody\"}", "no_such_job", true);
	ck_assert_ptr_nonnull(strstr(err_field(r, "message"), "nobody"));
	cJSON_Delete(r);
	cJSON_Delete(request_err("{\"id\": 7, \"cmd\": \"freeze\", \"job\": \"nobody\"}", "no_such_job", true));
	cJSON_Delete(request_err("{\"id\": 7, \"cmd\": \"watch\", \"job\": \"nobody\"}", "no_such_job", true));
}
END_TEST

START_TEST(test_create_duplicate)
{
	cJSON *r;
	char *before, *after;

	cJSON_Delete(create_job("shop", NULL));
	before = read_job_file("shop", "secrets.json");
	r = request_err("{\"id\": 2, \"cmd\": \"create\", \"job\": \"shop\", \"args\": {\"source\": "
			"\"postgres://x:other@10.1.1.1/z\", \"target\": \"" TARGET "\", \"method\": \"dump\"}}",
			"job_exists", true);
	assert_id(r, "2");
	ck_assert_ptr_nonnull(strstr(err_field(r, "message"), "shop"));
	cJSON_Delete(r);
	/* the first job is untouched */
	after = read_job_file("shop", "secrets.json");
	ck_assert_str_eq(before, after);
	ck_assert_str_eq(pgm_jobs_find(&d, "shop")->source_dsn, SOURCE);
	free(before);
	free(after);
}
END_TEST

/* daemon defaults from the file apply to new jobs */
START_TEST(test_create_uses_file_defaults)
{
	cJSON *r;

	cJSON_AddStringToObject(d.cfg.job_defaults, "jobs", "8");
	cJSON_AddStringToObject(d.cfg.job_defaults, "hook_timeout", "5000ms");
	r = create_job("shop", ", \"options\": {\"hook_timeout\": \"2s\"}");
	ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(
				 cJSON_GetObjectItem(cJSON_GetObjectItem(r, "result"), "options"), "jobs")),
			 "8");
	ck_assert_int_eq(pgm_jobopt_int(pgm_jobs_find(&d, "shop")->options, "hook_timeout"), 2000);
	cJSON_Delete(r);
}
END_TEST

/* count the lines of audit.jsonl holding both fragments */
static int
audit_lines(const char *job, const char *frag1, const char *frag2)
{
	char *text = read_job_file(job, "audit.jsonl");
	int n = 0;

	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		cJSON *o = cJSON_Parse(line);

		ck_assert_msg(o != NULL, "audit line is not JSON: %s", line);
		ck_assert_ptr_nonnull(cJSON_GetObjectItem(o, "time"));
		ck_assert(pgm_parse_time(cJSON_GetStringValue(cJSON_GetObjectItem(o, "time"))) > 0);
		cJSON_Delete(o);
		if (strstr(line, frag1) && (!frag2 || strstr(line, frag2)))
			n++;
	}
	free(text);
	return n;
}

START_TEST(test_wrong_state)
{
	cJSON *r;
	char *before, *after;
	static const char *refused[] = {"freeze", "thaw", "verify", "cutover", "rollback", "finish", "retry"};
	pgm_peer_t peer = {.pid = 4242, .uid = 1234, .gid = 99};
	const char *code = NULL;
	char *msg = NULL, *hint = NULL;
	pgm_job_t *job;

	cJSON_Delete(create_job("shop", NULL));
	before = read_job_file("shop", "state.json");
	r = request_err("{\"id\": 8, \"cmd\": \"freeze\", \"job\": \"shop\"}", "invalid_state", true);
	assert_id(r, "8");
	ck_assert_ptr_nonnull(strstr(err_field(r, "message"), "created"));
	ck_assert_ptr_nonnull(strstr(err_field(r, "message"), "freeze"));
	ck_assert_ptr_nonnull(strstr(err_field(r, "hint"), "start, abort"));
	cJSON_Delete(r);
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		char *line = pgm_asprintf("{\"id\": %zu, \"cmd\": \"%s\", \"job\": \"shop\"}", i, refused[i]);

		cJSON_Delete(request_err(line, "invalid_state", true));
		free(line);
	}
	/* the job did not move, on disk or in memory */
	after = read_job_file("shop", "state.json");
	ck_assert_str_eq(before, after);
	free(before);
	free(after);
	job = pgm_jobs_find(&d, "shop");
	ck_assert_int_eq(job->state, PGM_ST_CREATED);
	ck_assert_ptr_null(job->step);

	/*
	 * The refusal is audited with the caller's credentials. Over the socket
	 * the client always has a peer (SO_PEERCRED); pgm_job_fire is what the
	 * command handler calls with it.
	 */
	ck_assert(!pgm_job_fire(job, PGM_EV_CUTOVER, &peer, &code, &msg, &hint));
	ck_assert_str_eq(code, "invalid_state");
	ck_assert_ptr_nonnull(strstr(hint, "start, abort"));
	free(msg);
	free(hint);
	ck_assert_int_eq(audit_lines("shop", "\"refused: invalid_state\"", "\"command\":\"cutover\""), 1);
	ck_assert_int_eq(audit_lines("shop", "\"uid\":1234", "\"pid\":4242"), 1);
	ck_assert_int_eq(job->state, PGM_ST_CREATED);
	/* and the create itself is the first line */
	ck_assert_int_eq(audit_lines("shop", "\"create\"", "\"to\":\"created\""), 1);
}
END_TEST

/*
 * rollback while a table on the target is not carried back: refused with
 * would_lose_writes naming it, saying what to do, audited; a bad
 * accept_loss is invalid_argument; retry is only checked for a failed
 * rollback (here: invalid_state as before).
 */
START_TEST(test_rollback_would_lose_writes)
{
	cJSON *r, *e = cJSON_CreateObject(), *list;
	pgm_job_t *job;

	cJSON_Delete(create_job("shop", NULL));
	job = pgm_jobs_find(&d, "shop");
	job->state = PGM_ST_ROLLBACK_WINDOW;
	list = cJSON_AddArrayToObject(pgm_json_obj(job->facts, "reverse"), "uncarried");
	pgm_json_set_str(e, "table", "public.new_orders");
	pgm_json_set_str(e, "kind", "unpublished");
	cJSON_AddItemToArray(list, e);
	r = request_err("{\"id\": 1, \"cmd\": \"rollback\", \"job\": \"shop\"}", "would_lose_writes", true);
	ck_assert_ptr_nonnull(strstr(err_field(r, "message"), "rollback would lose writes to public.new_orders"));
	ck_assert_ptr_nonnull(strstr(err_field(r, "hint"), "pgmover rollback shop --accept-loss"));
	cJSON_Delete(r);
	ck_assert_int_eq(
		audit_lines("shop", "\"refused: rollback would lose writes to public.new_orders", "\"rollback\""), 1);
	cJSON_Delete(
		request_err("{\"id\": 2, \"cmd\": \"rollback\", \"job\": \"shop\", \"args\": {\"accept_loss\": 1}}",
			    "invalid_argument", false));
	cJSON_Delete(
		request_err("{\"id\": 3, \"cmd\": \"retry\", \"job\": \"shop\", \"args\": {\"accept_loss\": true}}",
			    "invalid_state", true));
	/* --accept-loss is for a failed rollback only */
	job->state = PGM_ST_FAILED;
	job->failed_from = PGM_ST_ROLLBACK_WINDOW;
	r = request_err("{\"id\": 5, \"cmd\": \"retry\", \"job\": \"shop\", \"args\": {\"accept_loss\": true}}",
			"invalid_argument", true);
	ck_assert_ptr_nonnull(strstr(err_field(r, "message"), "failed in rollback_window"));
	cJSON_Delete(r);
	/* a failed rollback: retry is refused the same way, the loss not accepted yet */
	job->state = PGM_ST_FAILED;
	job->failed_from = PGM_ST_ROLLING_BACK;
	cJSON_Delete(request_err("{\"id\": 4, \"cmd\": \"retry\", \"job\": \"shop\"}", "would_lose_writes", true));
	ck_assert_int_eq(audit_lines("shop", "\"refused: rollback would lose writes", "\"retry\""), 1);
	ck_assert_int_eq(job->state, PGM_ST_FAILED);
	ck_assert_ptr_null(job->step);
	job->state = PGM_ST_ROLLBACK_WINDOW;
}
END_TEST

START_TEST(test_watch_and_shutdown_refusal)
{
	cJSON *r;

	cJSON_Delete(create_job("shop", NULL));
	/* watch without a connection still answers with the status */
	r = request_ok("{\"id\": 1, \"cmd\": \"watch\", \"job\": \"shop\"}");
	ck_assert_str_eq(result_str(r, "state"), "created");
	cJSON_Delete(r);
	ck_assert_int_eq(audit_lines("shop", "\"watch\"", NULL), 1);

	/* while stopping, nothing new is created and nothing moves */
	d.host.stopping = true;
	r = request_err("{\"id\": 2, \"cmd\": \"create\", \"job\": \"late\", \"args\": {\"source\": \"" SOURCE
			"\", \"target\": \"" TARGET "\", \"method\": \"dump\"}}",
			"shutting_down", true);
	cJSON_Delete(r);
	ck_assert_ptr_null(pgm_jobs_find(&d, "late"));
	r = request_err("{\"id\": 3, \"cmd\": \"start\", \"job\": \"shop\"}", "shutting_down", true);
	cJSON_Delete(r);
	ck_assert_int_eq(pgm_jobs_find(&d, "shop")->state, PGM_ST_CREATED);
	/* a refused command is still refused for its state first */
	cJSON_Delete(request_err("{\"id\": 4, \"cmd\": \"freeze\", \"job\": \"shop\"}", "invalid_state", true));
	d.host.stopping = false;
}
END_TEST

/* a job created here is loaded by a new daemon on the same state_dir */
/* set: options validated like create's, durable, audited; refused while a step reads them */
START_TEST(test_set_options)
{
	cJSON *r;
	char *state, *audit;

	cJSON_Delete(create_job("shop", NULL));
	r = request_ok("{\"id\": 2, \"cmd\": \"set\", \"job\": \"shop\", \"args\": {\"options\": "
		       "{\"jobs\": \"5\", \"cutover_command\": \"/bin/true\"}}}");
	ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(
				 cJSON_GetObjectItem(cJSON_GetObjectItem(r, "result"), "options"), "jobs")),
			 "5");
	cJSON_Delete(r);
	state = read_job_file("shop", "state.json");
	ck_assert_ptr_nonnull(strstr(state, "\"cutover_command\":\t\"/bin/true\""));
	free(state);
	audit = read_job_file("shop", "audit.jsonl");
	ck_assert_ptr_nonnull(strstr(audit, ":\"set\",\"from\":\"created\""));
	ck_assert_ptr_nonnull(strstr(audit, "ok: jobs, cutover_command"));
	ck_assert_ptr_null(strstr(audit, "/bin/true")); /* a hook's command line is not audited */
	free(audit);
	/* a bad value or an unknown option changes nothing */
	cJSON_Delete(request_err("{\"id\": 3, \"cmd\": \"set\", \"job\": \"shop\", \"args\": {\"options\": "
				 "{\"jobs\": \"0\", \"cutover_command\": \"/bin/false\"}}}",
				 PGM_ERR_INVALID_ARGUMENT, true));
	cJSON_Delete(request_err("{\"id\": 4, \"cmd\": \"set\", \"job\": \"shop\", \"args\": {\"options\": "
				 "{\"no_such_option\": \"1\"}}}",
				 PGM_ERR_INVALID_ARGUMENT, true));
	cJSON_Delete(request_err("{\"id\": 5, \"cmd\": \"set\", \"job\": \"shop\", \"args\": {}}",
				 PGM_ERR_INVALID_ARGUMENT, true));
	state = read_job_file("shop", "state.json");
	ck_assert_ptr_nonnull(strstr(state, "\"/bin/true\""));
	ck_assert_ptr_null(strstr(state, "/bin/false"));
	free(state);
	cJSON_Delete(request_err("{\"id\": 6, \"cmd\": \"set\", \"job\": \"nosuch\", \"args\": {\"options\": "
				 "{\"jobs\": \"3\"}}}",
				 PGM_ERR_NO_SUCH_JOB, true));
}
END_TEST

/* delete: only an ended job; its folder is archived, its name free again */
START_TEST(test_delete_job)
{
	cJSON *r;
	char *attic = pgm_asprintf("%s/.deleted", state_dir);
	pgm_job_t *job;

	cJSON_Delete(create_job("shop", NULL));
	r = request_err("{\"id\": 2, \"cmd\": \"delete\", \"job\": \"shop\"}", PGM_ERR_INVALID_STATE, true);
	ck_assert_ptr_nonnull(strstr(err_field(r, "hint"), "abort"));
	cJSON_Delete(r);
	cJSON_Delete(request_ok("{\"id\": 3, \"cmd\": \"abort\", \"job\": \"shop\"}"));
	/* the abort step of a job never started has nothing to drop */
	job = pgm_jobs_find(&d, "shop");
	for (int i = 0; i < 200 && job->state != PGM_ST_ABORTED; i++)
		uv_run(&loop, UV_RUN_NOWAIT);
	ck_assert_int_eq(job->state, PGM_ST_ABORTED);
	r = request_ok("{\"id\": 4, \"cmd\": \"delete\", \"job\": \"shop\"}");
	ck_assert_str_eq(result_str(r, "state"), "deleted");
	cJSON_Delete(r);
	ck_assert_ptr_null(pgm_jobs_find(&d, "shop"));
	ck_assert_int_eq(count_entries(attic), 1);
	{
		char *gone = job_file("shop", "state.json");

		ck_assert_int_eq(access(gone, F_OK), -1);
		free(gone);
	}
	for (int i = 0; i < 20; i++)
		uv_run(&loop, UV_RUN_NOWAIT);
	/* the name can be used again */
	cJSON_Delete(create_job("shop", NULL));
	free(attic);
}
END_TEST

/*
 * Every command says whether it only reads: the read-only ones are exactly
 * these (open to whoever can open the socket), every other row changes
 * something and is for admin_users and admin_group only. A new row that
 * leaves read_only out is PGM_ACCESS_UNSET, and fails here.
 */
START_TEST(test_command_access)
{
	static const char *readers[] = {"version", "describe", "jobs", "status", "watch", "events"};
	int nread = 0;
	cJSON *r;
	const cJSON *c;

	for (int i = 0; pgm_commands[i].name; i++) {
		bool listed = false;

		ck_assert_msg(pgm_commands[i].read_only == PGM_READ_ONLY || pgm_commands[i].read_only == PGM_CHANGES,
			      "command \"%s\" does not say whether it is read-only", pgm_commands[i].name);
		for (size_t j = 0; j < PGM_ARRAY_LEN(readers); j++)
			listed = listed || strcmp(readers[j], pgm_commands[i].name) == 0;
		ck_assert_msg(listed == (pgm_commands[i].read_only == PGM_READ_ONLY), "command \"%s\": read_only is %d",
			      pgm_commands[i].name, pgm_commands[i].read_only);
		nread += listed;
	}
	ck_assert_int_eq(nread, (int) PGM_ARRAY_LEN(readers));
	/* and describe says so to clients */
	r = request_ok("{\"id\": 1, \"cmd\": \"describe\"}");
	cJSON_ArrayForEach (c, cJSON_GetObjectItem(cJSON_GetObjectItem(r, "result"), "commands")) {
		const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(c, "name"));

		ck_assert(cJSON_IsBool(cJSON_GetObjectItem(c, "read_only")));
		ck_assert_int_eq(cJSON_IsTrue(cJSON_GetObjectItem(c, "read_only")),
				 pgm_command_find(name)->read_only == PGM_READ_ONLY);
	}
	cJSON_Delete(r);
}
END_TEST

/*
 * A job whose state.json no longer reads back (truncated) is not loaded,
 * not skipped either: listed as corrupt with what is wrong and how to
 * recover, every command on it refused with job_corrupt, its name not
 * free for a create (which would overwrite its secrets), until delete
 * --force archives the folder; the other jobs load as before.
 */
START_TEST(test_corrupt_job)
{
	cJSON *r;
	char *path, *text, *attic = pgm_asprintf("%s/.deleted", state_dir);
	const cJSON *arr, *it;
	int ncorrupt = 0;
	static const char *cmds[] = {"status", "start", "freeze", "thaw", "abort", "retry", "set", "watch", "delete"};

	cJSON_Delete(create_job("shop", NULL));
	cJSON_Delete(create_job("mall", NULL));
	shutdown_daemon(&d);
	path = job_file("shop", "state.json");
	ck_assert_int_eq(truncate(path, 0), 0);
	free(path);
	ck_assert(pgm_jobs_load_all(&d));
	ck_assert_ptr_nonnull(pgm_jobs_find(&d, "mall"));
	ck_assert_ptr_null(pgm_jobs_find(&d, "shop"));
	ck_assert_ptr_nonnull(pgm_jobs_find_corrupt(&d, "shop"));

	/* listed by jobs and status, with the problem and the way out */
	r = request_ok("{\"id\": 1, \"cmd\": \"jobs\"}");
	arr = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "result"), "jobs");
	ck_assert_int_eq(cJSON_GetArraySize(arr), 2);
	cJSON_ArrayForEach (it, arr) {
		const cJSON *e = cJSON_GetObjectItem(it, "error");

		if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(it, "state")), "corrupt") != 0)
			continue;
		ncorrupt++;
		ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(it, "name")), "shop");
		ck_assert_ptr_nonnull(strstr(cJSON_GetStringValue(cJSON_GetObjectItem(e, "message")),
					     "shop/state.json\" is empty (0 bytes)"));
		ck_assert_ptr_nonnull(
			strstr(cJSON_GetStringValue(cJSON_GetObjectItem(e, "hint")), "pgmover delete --force shop"));
	}
	ck_assert_int_eq(ncorrupt, 1);
	cJSON_Delete(r);
	r = request_ok("{\"id\": 2, \"cmd\": \"status\"}");
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "result"), "jobs")), 2);
	cJSON_Delete(r);

	/* every command naming it: job_corrupt */
	for (size_t i = 0; i < PGM_ARRAY_LEN(cmds); i++) {
		char *line = pgm_asprintf("{\"id\": 3, \"cmd\": \"%s\", \"job\": \"shop\"}", cmds[i]);

		r = request_err(line, PGM_ERR_JOB_CORRUPT, true);
		ck_assert_ptr_nonnull(strstr(err_field(r, "message"), "is corrupt"));
		ck_assert_ptr_nonnull(strstr(err_field(r, "hint"), "restore"));
		cJSON_Delete(r);
		free(line);
	}
	/* its name cannot be reused: the secrets stay as they were */
	text = read_job_file("shop", "secrets.json");
	r = request_err(
		"{\"id\": 4, \"cmd\": \"create\", \"job\": \"shop\", \"args\": {\"source\": "
		"\"postgres://x@127.0.0.1:7/x\", \"target\": \"postgres://y@127.0.0.1:8/y\", \"method\": \"dump\"}}",
		PGM_ERR_JOB_CORRUPT, true);
	cJSON_Delete(r);
	path = read_job_file("shop", "secrets.json");
	ck_assert_str_eq(path, text);
	free(path);
	free(text);
	cJSON_Delete(request_err("{\"id\": 5, \"cmd\": \"delete\", \"job\": \"shop\", \"args\": {\"force\": 1}}",
				 PGM_ERR_INVALID_ARGUMENT, false));
	/* --force on a job that is not corrupt does not make it deletable */
	cJSON_Delete(request_err("{\"id\": 6, \"cmd\": \"delete\", \"job\": \"mall\", \"args\": {\"force\": true}}",
				 PGM_ERR_INVALID_STATE, true));

	/* delete --force archives the folder, audited, and frees the name */
	r = request_ok("{\"id\": 7, \"cmd\": \"delete\", \"job\": \"shop\", \"args\": {\"force\": true}}");
	ck_assert_str_eq(result_str(r, "state"), "deleted");
	cJSON_Delete(r);
	ck_assert_ptr_null(pgm_jobs_find_corrupt(&d, "shop"));
	ck_assert_int_eq(count_entries(attic), 1);
	path = job_file("shop", "state.json");
	ck_assert_int_eq(access(path, F_OK), -1);
	free(path);
	path = pgm_asprintf("%s/audit.jsonl", state_dir);
	text = pgm_file_read(path, 1 << 20, NULL);
	ck_assert_ptr_nonnull(text);
	ck_assert_ptr_nonnull(strstr(text, "\"job\":\"shop\""));
	ck_assert_ptr_nonnull(strstr(text, "\"delete --force\""));
	ck_assert_ptr_nonnull(strstr(text, "ok: corrupt folder archived in"));
	free(text);
	free(path);
	cJSON_Delete(create_job("shop", NULL));
	free(attic);
}
END_TEST

START_TEST(test_reload_jobs)
{
	pgm_daemon_t d2;
	uv_loop_t loop2;
	pgm_job_t *job;

	cJSON_Delete(create_job("shop", ", \"options\": {\"jobs\": \"3\"}"));
	memset(&d2, 0, sizeof(d2));
	ck_assert_int_eq(uv_loop_init(&loop2), 0);
	d2.host.loop = &loop2;
	pgm_config_init(&d2.cfg);
	free(d2.cfg.state_dir);
	d2.cfg.state_dir = pgm_strdup(state_dir);
	/* a stray folder without state, and a name that is not a job, are skipped */
	{
		char *stray = pgm_asprintf("%s/empty", state_dir);
		char *odd = pgm_asprintf("%s/not a job", state_dir);
		ck_assert(pgm_mkdir_p(stray, 0700));
		ck_assert(pgm_mkdir_p(odd, 0700));
		free(stray);
		free(odd);
	}
	ck_assert(pgm_jobs_load_all(&d2));
	job = pgm_jobs_find(&d2, "shop");
	ck_assert_ptr_nonnull(job);
	ck_assert_ptr_null(job->next);
	ck_assert_int_eq(job->state, PGM_ST_CREATED);
	ck_assert_str_eq(job->source_dsn, SOURCE);
	ck_assert_str_eq(job->target_dsn, TARGET);
	ck_assert_str_eq(pgm_jobopt_str(job->options, "jobs"), "3");
	ck_assert_int_eq(job->created_ms, pgm_jobs_find(&d, "shop")->created_ms);
	ck_assert_ptr_null(job->step);
	shutdown_daemon(&d2);
	ck_assert_int_eq(uv_loop_close(&loop2), 0);
	pgm_config_free(&d2.cfg);
}
END_TEST

/*
 * The error codes are the contract of README.md, in its order: codes are
 * only ever added, never renamed or removed, and the reply builder sends
 * no other.
 */
START_TEST(test_error_codes)
{
	static const char *contract[] = {"bad_request",      "unknown_command",  "no_such_job",   "job_exists",
					 "invalid_state",    "invalid_argument", "not_available", "line_too_long",
					 "too_many_clients", "shutting_down",    "internal",      "permission_denied",
					 "job_corrupt",      "would_lose_writes"};
	const char *macros[] = {PGM_ERR_CODES};
	size_t n = 0;

	while (pgm_error_codes[n])
		n++;
	ck_assert_uint_eq(n, sizeof(contract) / sizeof(contract[0]));
	ck_assert_uint_eq(sizeof(macros) / sizeof(macros[0]), n);
	for (size_t i = 0; i < n; i++) {
		ck_assert_str_eq(pgm_error_codes[i], contract[i]);
		ck_assert_str_eq(macros[i], contract[i]);
		ck_assert(pgm_error_code_known(contract[i]));
		for (size_t j = 0; j < i; j++)
			ck_assert_str_ne(pgm_error_codes[i], pgm_error_codes[j]);
	}
	/* each macro by name, so that a renamed one fails here */
	ck_assert_str_eq(PGM_ERR_BAD_REQUEST, "bad_request");
	ck_assert_str_eq(PGM_ERR_UNKNOWN_COMMAND, "unknown_command");
	ck_assert_str_eq(PGM_ERR_NO_SUCH_JOB, "no_such_job");
	ck_assert_str_eq(PGM_ERR_JOB_EXISTS, "job_exists");
	ck_assert_str_eq(PGM_ERR_INVALID_STATE, "invalid_state");
	ck_assert_str_eq(PGM_ERR_INVALID_ARGUMENT, "invalid_argument");
	ck_assert_str_eq(PGM_ERR_NOT_AVAILABLE, "not_available");
	ck_assert_str_eq(PGM_ERR_LINE_TOO_LONG, "line_too_long");
	ck_assert_str_eq(PGM_ERR_TOO_MANY_CLIENTS, "too_many_clients");
	ck_assert_str_eq(PGM_ERR_SHUTTING_DOWN, "shutting_down");
	ck_assert_str_eq(PGM_ERR_INTERNAL, "internal");
	ck_assert_str_eq(PGM_ERR_PERMISSION_DENIED, "permission_denied");
	ck_assert_str_eq(PGM_ERR_JOB_CORRUPT, "job_corrupt");
	ck_assert(!pgm_error_code_known(NULL));
	ck_assert(!pgm_error_code_known(""));
	ck_assert(!pgm_error_code_known("Invalid_State"));
	ck_assert(!pgm_error_code_known("invalid_state "));
	/* and the exit codes of the CLI */
	ck_assert_int_eq(PGM_EXIT_OK, 0);
	ck_assert_int_eq(PGM_EXIT_FAILED, 1);
	ck_assert_int_eq(PGM_EXIT_USAGE, 2);
	ck_assert_int_eq(PGM_EXIT_UNREACHABLE, 3);
}
END_TEST

/* the reply builder passes protocol.h's codes and turns any other into internal */
START_TEST(test_error_reply_codes)
{
	cJSON *id = cJSON_CreateNumber(5);

	for (int i = 0; pgm_error_codes[i]; i++) {
		cJSON *r = pgm_reply_error(id, pgm_error_codes[i], "m", i % 2 ? "h" : NULL);

		assert_id(r, "5");
		ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(r, "ok")));
		ck_assert_str_eq(err_field(r, "code"), pgm_error_codes[i]);
		ck_assert_str_eq(err_field(r, "message"), "m");
		if (i % 2)
			ck_assert_str_eq(err_field(r, "hint"), "h");
		else
			ck_assert_ptr_null(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "error"), "hint"));
		cJSON_Delete(r);
	}
	{
		static const char *unknown[] = {"no_such_thing", "", "Internal", "invalid_state\n"};

		for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
			cJSON *r = pgm_reply_error(NULL, unknown[i], "what failed", "what to do");

			assert_id(r, "null");
			ck_assert_str_eq(err_field(r, "code"), PGM_ERR_INTERNAL);
			ck_assert_str_eq(err_field(r, "message"), "what failed");
			ck_assert_str_eq(err_field(r, "hint"), "what to do");
			cJSON_Delete(r);
		}
		{
			cJSON *r = pgm_reply_error(NULL, NULL, "no code", NULL);

			ck_assert_str_eq(err_field(r, "code"), PGM_ERR_INTERNAL);
			cJSON_Delete(r);
		}
	}
	cJSON_Delete(id);
}
END_TEST

/*
 * events: the audit trail parsed, with the chain's verdict and the status;
 * check: the verdict alone. The trail edited behind pgmoverd's back is
 * found: a line in the middle by the chain, the last line by the head
 * pgmoverd keeps. events itself is not audited.
 */
START_TEST(test_events)
{
	cJSON *r;
	const cJSON *chain;
	char *path, *text, *p;

	cJSON_Delete(create_job("ev", NULL));
	/* audited: one set taken, one refused */
	cJSON_Delete(request_ok(
		"{\"id\": 2, \"cmd\": \"set\", \"job\": \"ev\", \"args\": {\"options\": {\"jobs\": \"3\"}}}"));
	cJSON_Delete(request_err(
		"{\"id\": 3, \"cmd\": \"set\", \"job\": \"ev\", \"args\": {\"options\": {\"jobs\": \"x\"}}}",
		"invalid_argument", true));
	r = request_ok("{\"id\": 4, \"cmd\": \"events\", \"job\": \"ev\"}");
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "result"), "events")), 3);
	ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(
				 cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "result"), "events"), 1),
				 "outcome")),
			 "ok: jobs");
	ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(
				 cJSON_GetObjectItem(cJSON_GetObjectItem(r, "result"), "status"), "state")),
			 "created");
	chain = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "result"), "chain");
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(chain, "intact")));
	ck_assert_int_eq(strlen(cJSON_GetStringValue(cJSON_GetObjectItem(chain, "head"))), 64);
	cJSON_Delete(r);
	r = request_ok("{\"id\": 5, \"cmd\": \"events\", \"job\": \"ev\", \"args\": {\"check\": true}}");
	ck_assert_ptr_null(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "result"), "events"));
	chain = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "result"), "chain");
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(chain, "intact")));
	/* neither events request was audited */
	ck_assert_int_eq(cJSON_GetNumberValue(cJSON_GetObjectItem(chain, "lines")), 3);
	cJSON_Delete(r);

	/* line 2's outcome edited: line 2 is named */
	path = job_file("ev", "audit.jsonl");
	text = read_job_file("ev", "audit.jsonl");
	p = strstr(text, "ok: jobs");
	ck_assert_ptr_nonnull(p);
	p[0] = 'O';
	ck_assert(pgm_file_replace(path, text, strlen(text), 0600));
	r = request_ok("{\"id\": 6, \"cmd\": \"events\", \"job\": \"ev\", \"args\": {\"check\": true}}");
	chain = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "result"), "chain");
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(chain, "intact")));
	ck_assert_ptr_null(cJSON_GetObjectItem(chain, "head"));
	ck_assert_int_eq(cJSON_GetNumberValue(cJSON_GetObjectItem(cJSON_GetObjectItem(chain, "broken"), "line")), 2);
	cJSON_Delete(r);
	/* back as it was, then the last line edited: pgmoverd's head names it */
	p[0] = 'o';
	p = strstr(p + 1, "refused: invalid_argument");
	ck_assert_ptr_nonnull(p);
	p[0] = 'R';
	ck_assert(pgm_file_replace(path, text, strlen(text), 0600));
	r = request_ok("{\"id\": 7, \"cmd\": \"events\", \"job\": \"ev\", \"args\": {\"check\": true}}");
	chain = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "result"), "chain");
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(chain, "intact")));
	ck_assert_int_eq(cJSON_GetNumberValue(cJSON_GetObjectItem(cJSON_GetObjectItem(chain, "broken"), "line")), 3);
	ck_assert_ptr_nonnull(
		strstr(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(chain, "broken"), "reason")),
		       "pgmoverd wrote last"));
	cJSON_Delete(r);
	cJSON_Delete(request_err("{\"id\": 8, \"cmd\": \"events\", \"job\": \"nope\"}", "no_such_job", true));
	free(text);
	free(path);
}
END_TEST

Suite *
pgm_test_suite(void)
{
	Suite *s = suite_create("protocol");
	TCase *req = tcase_create("requests");
	TCase *jobs = tcase_create("jobs");

	tcase_add_checked_fixture(req, setup, teardown);
	tcase_add_test(req, test_malformed);
	tcase_add_test(req, test_unknown_command);
	tcase_add_test(req, test_ids_echoed);
	tcase_add_test(req, test_line_length);
	tcase_add_test(req, test_version_describe_jobs);
	tcase_add_test(req, test_request_shape);
	tcase_add_test(req, test_error_codes);
	tcase_add_test(req, test_error_reply_codes);
	suite_add_tcase(s, req);

	tcase_add_checked_fixture(jobs, setup, teardown);
	tcase_add_test(jobs, test_create_refused);
	tcase_add_test(jobs, test_create_and_status);
	tcase_add_test(jobs, test_create_duplicate);
	tcase_add_test(jobs, test_create_uses_file_defaults);
	tcase_add_test(jobs, test_wrong_state);
	tcase_add_test(jobs, test_rollback_would_lose_writes);
	tcase_add_test(jobs, test_watch_and_shutdown_refusal);
	tcase_add_test(jobs, test_reload_jobs);
	tcase_add_test(jobs, test_set_options);
	tcase_add_test(jobs, test_delete_job);
	tcase_add_test(jobs, test_corrupt_job);
	tcase_add_test(req, test_command_access);
	tcase_add_test(jobs, test_events);
	suite_add_tcase(s, jobs);
	return s;
}
