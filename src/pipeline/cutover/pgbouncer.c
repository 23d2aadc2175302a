/*
 * pgbouncer.c — switch an application's traffic through pgbouncer.
 *
 * pgmover owns one small file that pgbouncer.ini %include's, holding the
 * application's [databases] entry (option pgbouncer_include). The switch
 * is PAUSE <db> on the admin console (clients wait; in-flight transactions
 * finish), the entry rewritten atomically to the new server, RELOAD, a
 * check with SHOW DATABASES that pgbouncer took it, and RESUME. The admin
 * console speaks the simple query protocol only, so every command is one
 * plain statement without parameters.
 *
 * The original file is copied once, before anything changes, to
 * <include>.pgmover-orig (an artifact): the way back restores exactly it,
 * and finish removes the copy.
 */
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "pg/dsn.h"
#include "pipeline/cutover/pgbouncer.h"
#include "fsm/artifact.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KIND_BACKUP "pgbouncer_include_backup"

typedef struct pgm_pgb {
	pgm_flow_t *f; /* not valid in pgb_free: the flow may be gone */
	pgm_step_t *step;
	const char *flow;    /* the flow's name (static) */
	pgm_pg_conn_t *conn; /* the admin console, opened on first use */
	char *sql;           /* the command waiting for the connection */
	pgm_pg_result_cb cb;
	uv_timer_t *timer; /* PAUSE timeout */
	void (*then)(pgm_flow_t *f);
	bool to_target;
	bool best_effort; /* restore: errors are logged, never fatal */
} pgm_pgb_t;

static const char *
opt(pgm_job_t *job, const char *name)
{
	return pgm_jobopt_str(job->options, name);
}

bool
pgm_pgb_configured(pgm_job_t *job)
{
	return opt(job, "pgbouncer_admin")[0] != '\0';
}

bool
pgm_pgb_paused(pgm_flow_t *f)
{
	const cJSON *o = cJSON_GetObjectItem(cJSON_GetObjectItem(f->job->facts, f->name), "pgbouncer");

	return pgm_pgb_configured(f->job) && pgm_json_num(o, "paused_at_ms", 0) > 0;
}

/* ---- the safety net: a step that failed while clients wait sends RESUME ---- */

typedef struct detached {
	char *job, *sql;
} detached_t;

static void
detached_free(detached_t *d)
{
	free(d->job);
	free(d->sql);
	free(d);
}

static void
on_detached_result(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	detached_t *d = data;

	if (err && strstr(err->message, "not paused") == NULL)
		pgm_error("job %s: pgbouncer: %s failed: %s; clients are waiting: run it on the admin console", d->job,
			  d->sql, err->message);
	else
		pgm_notice("job %s: pgbouncer: %s sent after the step failed, so that clients do not wait", d->job,
			   d->sql);
	pgm_pg_close(conn);
	detached_free(d);
}

static void
on_detached_connect(pgm_pg_conn_t *conn, const pgm_pg_error_t *err, void *data)
{
	detached_t *d = data;

	if (err) {
		pgm_error("job %s: pgbouncer: could not connect to send %s: %s; clients are waiting", d->job, d->sql,
			  err->message);
		detached_free(d);
		return;
	}
	pgm_pg_query(conn, d->sql, 0, NULL, on_detached_result, d);
}

static void
pgb_free(void *p)
{
	pgm_pgb_t *b = p;
	pgm_job_t *job = b->step->job;
	const cJSON *o = cJSON_GetObjectItem(cJSON_GetObjectItem(job->facts, b->flow), "pgbouncer");

	pgm_pg_close(b->conn);
	/* failed (not cancelled by a shutdown) with the pool paused: never leave clients waiting */
	if (b->step->finished && pgm_json_num(o, "paused_at_ms", 0) > 0) {
		detached_t *d = pgm_calloc(1, sizeof(*d));
		char *app = pgm_asprintf("pgmover:%s:pgbouncer", job->name);

		d->job = pgm_strdup(job->name);
		d->sql = pgm_asprintf("RESUME %s", opt(job, "pgbouncer_database"));
		pgm_pg_net_t net;

		pgm_job_audit(job, NULL, "pgbouncer:resume", pgm_state_name(job->state), NULL, "sent after a failure");
		pgm_pg_net_from_options(job->options, false, &net);
		(void) pgm_pg_connect(pgm_step_loop(b->step), opt(job, "pgbouncer_admin"), app, &net,
				      on_detached_connect, d);
		free(app);
	}
	free(b->sql);
	free(b);
}

static pgm_pgb_t *
pgb_get(pgm_flow_t *f)
{
	if (f->pgb == NULL) {
		f->pgb = pgm_calloc(1, sizeof(pgm_pgb_t));
		f->pgb->f = f;
		f->pgb->step = f->step;
		f->pgb->flow = f->name;
		pgm_step_own(f->step, f->pgb, pgb_free);
	}
	return f->pgb;
}

/* fail the flow, or, in best-effort mode, log and go on */
static void
pgb_fail(pgm_pgb_t *b, const char *msg, const char *detail, const char *hint)
{
	if (b->best_effort) {
		pgm_warning("job %s: pgbouncer: %s%s%s", b->f->job->name, msg, detail ? ": " : "",
			    detail ? detail : "");
		b->then(b->f);
		return;
	}
	pgm_flow_fail(b->f, msg, detail, hint);
}

static void
on_admin_connect(pgm_pg_conn_t *conn, const pgm_pg_error_t *err, void *data)
{
	pgm_pgb_t *b = data;
	char *sql = b->sql;

	b->sql = NULL;
	if (err) {
		char *msg = pgm_asprintf("could not connect to pgbouncer's admin console: %s", err->message);
		b->conn = NULL;
		free(sql);
		pgb_fail(b, msg, NULL,
			 "check pgbouncer_admin (e.g. postgres://admin@127.0.0.1:6432/pgbouncer), that the user is in "
			 "admin_users, and its password (in the URL or a passfile)");
		free(msg);
		return;
	}
	pgm_pg_query(conn, sql, 0, NULL, b->cb, b);
	free(sql);
}

/* one admin command; connects first when needed */
static void
pgb_command(pgm_pgb_t *b, const char *sql, pgm_pg_result_cb cb)
{
	pgm_job_t *job = b->f->job;

	pgm_debug("job %s: pgbouncer: %s", job->name, sql);
	b->cb = cb;
	if (b->conn && !pgm_pg_busy(b->conn)) {
		pgm_pg_query(b->conn, sql, 0, NULL, cb, b);
		return;
	}
	pgm_pg_close(b->conn);
	free(b->sql);
	b->sql = pgm_strdup(sql);
	char *app = pgm_asprintf("pgmover:%s:pgbouncer", job->name);
	pgm_pg_net_t net;

	pgm_pg_net_from_options(job->options, false, &net);
	b->conn =
		pgm_pg_connect(pgm_step_loop(b->f->step), opt(job, "pgbouncer_admin"), app, &net, on_admin_connect, b);
	free(app);
}

/* a command failed: the connection may be gone; the next command reconnects */
static void
pgb_drop_conn(pgm_pgb_t *b)
{
	pgm_pg_close(b->conn);
	b->conn = NULL;
}

static char *
cmd_for_db(pgm_job_t *job, const char *verb)
{
	return pgm_asprintf("%s %s", verb, opt(job, "pgbouncer_database"));
}

static char *
backup_path(pgm_job_t *job)
{
	return pgm_asprintf("%s.pgmover-orig", opt(job, "pgbouncer_include"));
}

/* ---- check: the console has the entry, the file has it, back it up ---- */

static bool
valid_db_name(const char *s)
{
	if (s[0] == '\0')
		return false;
	for (const char *p = s; *p; p++)
		if (!(*p == '_' || *p == '-' || *p == '.' || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
		      (*p >= 'A' && *p <= 'Z')))
			return false;
	return true;
}

/* the row of SHOW DATABASES for our entry: name, host, port, database */
static int
find_entry(pgm_job_t *job, const PGresult *res)
{
	for (int i = 0; i < pgm_pg_ntuples(res); i++) {
		const char *name = pgm_pg_value(res, i, 0);
		if (name && strcmp(name, opt(job, "pgbouncer_database")) == 0)
			return i;
	}
	return -1;
}

static void
on_show_check(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	pgm_pgb_t *b = data;
	pgm_job_t *job = b->f->job;
	cJSON *o;
	int row;

	if (err) {
		pgb_drop_conn(b);
		pgb_fail(b, "pgbouncer's admin console refused SHOW DATABASES", err->message,
			 "the pgbouncer_admin user must be listed in admin_users");
		return;
	}
	row = find_entry(job, res);
	if (row < 0) {
		char *msg = pgm_asprintf("pgbouncer has no database \"%s\"", opt(job, "pgbouncer_database"));
		pgb_fail(b, msg, NULL,
			 "%include the file named by pgbouncer_include in pgbouncer.ini and RELOAD, or fix "
			 "pgbouncer_database");
		free(msg);
		return;
	}
	o = pgm_json_obj(pgm_flow_facts(b->f), "pgbouncer");
	pgm_json_set_str(o, "database", opt(job, "pgbouncer_database"));
	pgm_json_set_str(o, "host_before", pgm_pg_value(res, row, 1));
	pgm_json_set_str(o, "port_before", pgm_pg_value(res, row, 2));
	b->then(b->f);
}

void
pgm_pgb_check(pgm_flow_t *f, void (*then)(pgm_flow_t *f))
{
	pgm_job_t *job = f->job;
	pgm_pgb_t *b = pgb_get(f);
	const char *inc = opt(job, "pgbouncer_include");
	char *err = NULL, *text, *rewritten, *bak;

	b->then = then;
	if (!valid_db_name(opt(job, "pgbouncer_database")) || inc[0] != '/') {
		pgm_flow_fail(f, "pgbouncer needs pgbouncer_database and pgbouncer_include",
			      "pgbouncer_database is the name of the [databases] entry (letters, digits, _ - .); "
			      "pgbouncer_include the absolute path of the file holding it",
			      "set both with --set, next to pgbouncer_admin");
		return;
	}
	text = pgm_pgb_read(inc, &err);
	rewritten = text ? pgm_pgb_rewrite(text, opt(job, "pgbouncer_database"), job->target_dsn, &err) : NULL;
	if (rewritten == NULL) {
		pgm_flow_fail(f, "the pgbouncer include file cannot be switched", err,
			      "pgbouncer_include must name the file %include'd by pgbouncer.ini that holds the entry "
			      "\"<pgbouncer_database> = host=... port=... dbname=...\"");
		free(err);
		free(text);
		return;
	}
	memset(rewritten, 0, strlen(rewritten));
	free(rewritten);
	bak = backup_path(job);
	/* the first copy is the original: never overwrite it with a switched file */
	if (pgm_artifact_find_live(job, KIND_BACKUP, NULL, bak) == NULL || access(bak, F_OK) != 0) {
		cJSON *a = pgm_artifact_find_live(job, KIND_BACKUP, NULL, bak);

		if (a == NULL)
			a = pgm_artifact_record(job, KIND_BACKUP, "pgbouncer", bak, PGM_ART_CREATING, NULL);
		if (a == NULL) {
			char *msg = pgm_unsaved_message(job, "the backup of the pgbouncer include file");

			pgm_flow_fail(f, msg, NULL, pgm_unsaved_hint());
			free(msg);
			free(text);
			free(bak);
			return;
		}
		if (!pgm_pgb_write_like(bak, inc, text, &err)) {
			pgm_flow_fail(f, "could not back up the pgbouncer include file", err,
				      "pgmoverd needs write access to the directory of pgbouncer_include");
			free(err);
			free(text);
			free(bak);
			return;
		}
		pgm_artifact_created(job, a);
	}
	memset(text, 0, strlen(text));
	free(text);
	free(bak);
	pgb_command(b, "SHOW DATABASES", on_show_check);
}

/* ---- PAUSE / RESUME ---- */

static void
pause_timer_stop(pgm_pgb_t *b)
{
	if (b->timer)
		uv_timer_stop(b->timer);
}

static void
on_pause(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	pgm_pgb_t *b = data;
	cJSON *o = pgm_json_obj(pgm_flow_facts(b->f), "pgbouncer");
	int64_t waited = pgm_now_ms() - (int64_t) pgm_json_num(o, "paused_at_ms", (double) pgm_now_ms());

	pause_timer_stop(b);
	if (err) {
		pgb_drop_conn(b);
		pgb_fail(b, "pgbouncer refused PAUSE", err->message, "check pgbouncer's log");
		return;
	}
	pgm_json_set_num(o, "pause_wait_ms", (double) waited);
	pgm_info("job %s: pgbouncer: %s paused after %lld ms", b->f->job->name, opt(b->f->job, "pgbouncer_database"),
		 (long long) waited);
	b->then(b->f);
}

static void
pause_timed_out(uv_timer_t *t)
{
	pgm_pgb_t *b = t->data;
	char *detail = pgm_asprintf("transactions through pgbouncer did not end within %lld ms; in session pooling "
				    "PAUSE also waits for every client to disconnect",
				    (long long) pgm_jobopt_int(b->f->job->options, "pgbouncer_pause_timeout"));

	/* abandon the PAUSE; the undo sends RESUME on a new connection */
	pgb_drop_conn(b);
	pgb_fail(b, "pgbouncer's PAUSE timed out", detail,
		 "use pool_mode = transaction, raise pgbouncer_pause_timeout, or end long transactions first");
	free(detail);
}

void
pgm_pgb_pause(pgm_flow_t *f, void (*then)(pgm_flow_t *f))
{
	pgm_pgb_t *b = pgb_get(f);
	cJSON *o = pgm_json_obj(pgm_flow_facts(f), "pgbouncer");
	char *sql = cmd_for_db(f->job, "PAUSE");

	b->then = then;
	b->best_effort = false;
	/* durable before the command: a restarted daemon knows to RESUME */
	pgm_json_set_num(o, "paused_at_ms", (double) pgm_now_ms());
	pgm_json_set_time(o, "paused_at", pgm_now_ms());
	if (!pgm_job_save(f->job)) {
		char *msg = pgm_unsaved_message(f->job, "PAUSE on pgbouncer");

		pgm_json_set_num(o, "paused_at_ms", 0);
		free(sql);
		pgm_flow_fail(f, msg, NULL, pgm_unsaved_hint());
		free(msg);
		return;
	}
	if (b->timer == NULL) {
		b->timer = pgm_step_timer(f->step);
		b->timer->data = b;
	}
	uv_timer_start(b->timer, pause_timed_out, (uint64_t) pgm_jobopt_int(f->job->options, "pgbouncer_pause_timeout"),
		       0);
	pgm_flow_audit(f, "pgbouncer:pause", "sent");
	pgb_command(b, sql, on_pause);
	free(sql);
}

static void
on_resume(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	pgm_pgb_t *b = data;
	cJSON *o = pgm_json_obj(pgm_flow_facts(b->f), "pgbouncer");
	double at = pgm_json_num(o, "paused_at_ms", 0);

	/* "is not paused" means the pool runs already: what RESUME wants */
	if (err && strstr(err->message, "not paused") == NULL) {
		pgb_drop_conn(b);
		pgb_fail(b, "pgbouncer refused RESUME", err->message,
			 "clients are waiting: run RESUME on pgbouncer's admin console by hand");
		return;
	}
	if (at > 0) {
		int64_t ms = pgm_now_ms() - (int64_t) at;
		pgm_json_set_num(o, "pause_ms", (double) ms);
		pgm_json_set_num(pgm_flow_facts(b->f), "pause_ms", (double) ms);
		pgm_json_set_num(o, "paused_at_ms", 0);
		pgm_notice("job %s: pgbouncer: %s resumed; clients waited at most %lld ms", b->f->job->name,
			   opt(b->f->job, "pgbouncer_database"), (long long) ms);
	}
	pgm_job_checkpoint(b->f->job);
	b->then(b->f);
}

void
pgm_pgb_resume(pgm_flow_t *f, void (*then)(pgm_flow_t *f))
{
	pgm_pgb_t *b = pgb_get(f);
	char *sql = cmd_for_db(f->job, "RESUME");

	b->then = then;
	pgb_command(b, sql, on_resume);
	free(sql);
}

/* ---- the switch ---- */

static void
on_show_after_reload(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	pgm_pgb_t *b = data;
	pgm_job_t *job = b->f->job;
	cJSON *o = pgm_json_obj(pgm_flow_facts(b->f), "pgbouncer");
	const char *want_host, *want_port;
	pgm_dsn_t d = {0};
	char *perr = NULL;
	int row;

	if (err) {
		pgb_drop_conn(b);
		pgb_fail(b, "pgbouncer refused SHOW DATABASES after RELOAD", err->message, NULL);
		return;
	}
	row = find_entry(job, res);
	if (b->to_target) {
		(void) pgm_dsn_parse(job->target_dsn, &d, &perr);
		free(perr);
		want_host = d.host;
		want_port = d.port ? d.port : "5432";
	} else {
		want_host = pgm_json_str(o, "host_before");
		want_port = pgm_json_str(o, "port_before");
	}
	if (row < 0 ||
	    (want_host && strcmp(want_host, pgm_pg_value(res, row, 1) ? pgm_pg_value(res, row, 1) : "") != 0) ||
	    (want_port && strcmp(want_port, pgm_pg_value(res, row, 2) ? pgm_pg_value(res, row, 2) : "") != 0)) {
		char *detail = pgm_asprintf(
			"after RELOAD the entry \"%s\" points at %s:%s, not at %s:%s", opt(job, "pgbouncer_database"),
			row >= 0 ? pgm_pg_value(res, row, 1) : "(none)", row >= 0 ? pgm_pg_value(res, row, 2) : "",
			want_host ? want_host : "(default)", want_port ? want_port : "");
		pgm_dsn_free(&d);
		pgb_fail(
			b, "pgbouncer did not take the new entry", detail,
			"check that pgbouncer.ini %include's pgbouncer_include and pgbouncer's log for a syntax error");
		free(detail);
		return;
	}
	pgm_dsn_free(&d);
	pgm_json_set_str(o, "points_at", b->to_target ? "target" : "source");
	pgm_job_checkpoint(job);
	b->then(b->f);
}

static void
on_reload(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	pgm_pgb_t *b = data;

	if (err) {
		pgb_drop_conn(b);
		pgb_fail(b, "pgbouncer refused RELOAD", err->message, "check pgbouncer's log");
		return;
	}
	pgb_command(b, "SHOW DATABASES", on_show_after_reload);
}

void
pgm_pgb_switch(pgm_flow_t *f, bool to_target, void (*then)(pgm_flow_t *f))
{
	pgm_job_t *job = f->job;
	pgm_pgb_t *b = pgb_get(f);
	const char *inc = opt(job, "pgbouncer_include");
	char *err = NULL, *text, *content, *bak = backup_path(job);

	b->then = then;
	b->to_target = to_target;
	if (to_target) {
		text = pgm_pgb_read(inc, &err);
		content = text ? pgm_pgb_rewrite(text, opt(job, "pgbouncer_database"), job->target_dsn, &err) : NULL;
		free(text);
	} else {
		content = pgm_pgb_read(bak, &err);
	}
	if (content == NULL || !pgm_pgb_write_like(inc, inc, content, &err)) {
		pgb_fail(b,
			 to_target ? "could not point the pgbouncer entry at the target"
				   : "could not put the original pgbouncer include file back",
			 err, "check the include file and its backup (.pgmover-orig) and their permissions");
		free(err);
	} else {
		pgm_flow_audit(f, to_target ? "pgbouncer:include->target" : "pgbouncer:include->original", "written");
		pgb_command(b, "RELOAD", on_reload);
	}
	if (content)
		memset(content, 0, strlen(content));
	free(content);
	free(bak);
}

/* ---- undo: the original entry back, RELOAD, RESUME; errors only logged ---- */

static void
on_restore_resume(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	pgm_pgb_t *b = data;

	if (err && strstr(err->message, "not paused") == NULL) {
		pgb_drop_conn(b);
		pgm_warning("job %s: pgbouncer: RESUME failed while undoing: %s", b->f->job->name, err->message);
		pgm_flow_audit(b->f, "pgbouncer:resume", "failed while undoing");
	} else {
		pgm_json_set_num(pgm_json_obj(pgm_flow_facts(b->f), "pgbouncer"), "paused_at_ms", 0);
		pgm_flow_audit(b->f, "pgbouncer:resume", "ok (undo)");
	}
	b->best_effort = false;
	b->then(b->f);
}

static void
on_restore_reload(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	pgm_pgb_t *b = data;
	char *sql = cmd_for_db(b->f->job, "RESUME");

	if (err) {
		pgb_drop_conn(b);
		pgm_warning("job %s: pgbouncer: RELOAD failed while undoing: %s", b->f->job->name, err->message);
	}
	pgb_command(b, sql, on_restore_resume);
	free(sql);
}

void
pgm_pgb_restore(pgm_flow_t *f, bool original, void (*then)(pgm_flow_t *f))
{
	pgm_job_t *job = f->job;
	pgm_pgb_t *b = pgb_get(f);
	const char *inc = opt(job, "pgbouncer_include");
	char *err = NULL, *bak = backup_path(job), *orig = NULL, *cur = NULL;

	b->then = then;
	b->best_effort = true;
	if (!original) {
		free(bak);
		on_restore_reload(NULL, NULL, NULL, b);
		return;
	}
	if (access(bak, R_OK) == 0) {
		orig = pgm_pgb_read(bak, &err);
		cur = pgm_pgb_read(inc, &err);
	}
	if (orig && (cur == NULL || strcmp(orig, cur) != 0)) {
		if (pgm_pgb_write_like(inc, inc, orig, &err))
			pgm_flow_audit(f, "pgbouncer:include->original", "written (undo)");
		else
			pgm_warning("job %s: pgbouncer: %s", job->name, err);
	}
	free(err);
	if (orig)
		memset(orig, 0, strlen(orig));
	if (cur)
		memset(cur, 0, strlen(cur));
	free(orig);
	free(cur);
	free(bak);
	pgb_command(b, "RELOAD", on_restore_reload);
}

bool
pgm_pgb_backup_live(pgm_job_t *job)
{
	return pgm_artifact_find_live(job, KIND_BACKUP, NULL, NULL) != NULL;
}

void
pgm_pgb_cleanup(pgm_flow_t *f)
{
	cJSON *a;

	while ((a = pgm_artifact_find_live(f->job, KIND_BACKUP, NULL, NULL)) != NULL) {
		const char *path = pgm_json_str(a, "name");

		if (path && unlink(path) != 0 && errno != ENOENT)
			pgm_job_warn(f->job, "could not remove the backup of the pgbouncer include file", path);
		if (!pgm_artifact_set(f->job, a, PGM_ART_DROPPED))
			break; /* removed, but still recorded: the next finish removes it again */
	}
}
