/*
 * sql.c — the one place that runs statements on a step's connections:
 * scripts of statements run in order, each result handed to its callback,
 * each statement logged, every error mapped the same way (to the script's
 * error handler, or to the step's failure).
 *
 * A script runs on a session. pgm_sql_begin gives it a session of its own,
 * connected when it runs and closed when it ends; pgm_sql_begin_on runs it
 * on a session the caller keeps (pglogical's context keeps one per side),
 * opened by the first script that needs it, set up once, and reopened by
 * the next script after an error that means the connection is gone.
 */
#include "common/log.h"
#include "common/util.h"
#include "pipeline/sql.h"

#include <stdlib.h>
#include <string.h>

#define SQL_MAX 32
#define SQL_MAX_PARAMS 8

typedef struct sql_stmt {
	char *sql;
	int nparams;
	char *params[SQL_MAX_PARAMS];
	pgm_sql_row_cb cb;
	void *data;
} sql_stmt_t;

struct pgm_sql_session {
	pgm_step_t *step;
	bool source;
	char *purpose;       /* in application_name and the log */
	char *setup;         /* run once after connecting, or NULL */
	pgm_pg_conn_t *conn; /* NULL: the next script connects */
	bool ready;          /* connected and set up */
	pgm_sql_t *running;  /* the script whose statements run, until its last result */
};

struct pgm_sql {
	pgm_step_t *step;
	pgm_sql_session_t *ss;
	bool own_session; /* the script's own: closed and freed with it */
	char *what, *hint;
	sql_stmt_t stmts[SQL_MAX];
	int n, next;
	pgm_step_then_fn then;
	void *then_data;
	pgm_sql_error_cb on_error; /* instead of failing the step */
	void *on_error_data;
	pgm_pg_error_t abort_err; /* set by pgm_sql_abort in a row callback */
	bool aborted;
};

/* the script whose row callback is running (one loop, one thread) */
static pgm_sql_t *in_callback;

/* ---- sessions ---- */

static void
session_free(void *p)
{
	pgm_sql_session_t *ss = p;

	free(ss->purpose);
	free(ss->setup);
	free(ss);
}

static pgm_sql_session_t *
session_new(pgm_step_t *s, bool source, const char *purpose, const char *setup)
{
	pgm_sql_session_t *ss = pgm_calloc(1, sizeof(*ss));

	ss->step = s;
	ss->source = source;
	ss->purpose = pgm_strdup(purpose);
	ss->setup = setup ? pgm_strdup(setup) : NULL;
	return ss;
}

pgm_sql_session_t *
pgm_sql_session(pgm_step_t *s, bool source, const char *purpose, const char *setup)
{
	pgm_sql_session_t *ss = session_new(s, source, purpose, setup);

	pgm_step_own(s, ss, session_free);
	return ss;
}

bool
pgm_sql_session_busy(const pgm_sql_session_t *ss)
{
	return ss != NULL && ss->running != NULL;
}

static void
session_disconnect(pgm_sql_session_t *ss)
{
	pgm_step_close_conn(ss->step, ss->conn);
	ss->conn = NULL;
	ss->ready = false;
}

bool
pgm_sql_connection_lost(const pgm_pg_error_t *err)
{
	return err->sqlstate[0] == '\0' || strncmp(err->sqlstate, "08", 2) == 0 ||
	       strncmp(err->sqlstate, "57P", 3) == 0;
}

bool
pgm_sql_transient(const pgm_pg_error_t *err)
{
	static const char *const states[] = {
		"40001", /* serialization_failure */
		"40P01", /* deadlock_detected */
		"55P03", /* lock_not_available: lock_timeout */
		"57014", /* query_canceled: statement_timeout, pg_cancel_backend */
		"53",    /* class 53: insufficient resources (disk full, out of memory, too many connections) */
		"58000", /* system_error */
		"58030", /* io_error */
	};

	if (pgm_sql_connection_lost(err))
		return true;
	for (size_t i = 0; i < PGM_ARRAY_LEN(states); i++)
		if (strncmp(err->sqlstate, states[i], strlen(states[i])) == 0)
			return true;
	return false;
}

/* ---- scripts ---- */

static void
sql_free_cb(void *p)
{
	pgm_sql_t *q = p;

	for (int i = 0; i < q->n; i++) {
		free(q->stmts[i].sql);
		for (int k = 0; k < q->stmts[i].nparams; k++)
			free(q->stmts[i].params[k]);
	}
	if (q->own_session)
		session_free(q->ss);
	free(q->what);
	free(q->hint);
	free(q);
}

/* the script is over: the step no longer needs to free it */
static void
sql_free(pgm_sql_t *q)
{
	pgm_step_disown(q->step, q);
	sql_free_cb(q);
}

static pgm_sql_t *
sql_new(pgm_sql_session_t *ss, bool own_session, const char *what, const char *hint)
{
	pgm_sql_t *q = pgm_calloc(1, sizeof(*q));

	q->step = ss->step;
	q->ss = ss;
	q->own_session = own_session;
	q->what = pgm_strdup(what);
	q->hint = hint ? pgm_strdup(hint) : NULL;
	pgm_step_own(q->step, q, sql_free_cb);
	return q;
}

pgm_sql_t *
pgm_sql_begin(pgm_step_t *s, bool source, const char *purpose, const char *what, const char *hint)
{
	return sql_new(session_new(s, source, purpose, NULL), true, what, hint);
}

pgm_sql_t *
pgm_sql_begin_on(pgm_sql_session_t *ss, const char *what, const char *hint)
{
	return sql_new(ss, false, what, hint);
}

void
pgm_sql_add_params(pgm_sql_t *q, const char *sql, int nparams, const char *const *params, pgm_sql_row_cb cb, void *data)
{
	sql_stmt_t *st;

	if (q->n == SQL_MAX || nparams > SQL_MAX_PARAMS) {
		pgm_error("internal error: SQL script too long");
		abort();
	}
	st = &q->stmts[q->n++];
	st->sql = pgm_strdup(sql);
	st->nparams = nparams;
	for (int i = 0; i < nparams; i++)
		st->params[i] = pgm_strdup(params[i]);
	st->cb = cb;
	st->data = data;
}

void
pgm_sql_add(pgm_sql_t *q, const char *sql, pgm_sql_row_cb cb, void *data)
{
	pgm_sql_add_params(q, sql, 0, NULL, cb, data);
}

static void sql_next(pgm_sql_t *q);

/* the script no longer runs on its session: another may start */
static void
sql_detach(pgm_sql_t *q)
{
	if (q->ss->running == q)
		q->ss->running = NULL;
}

/*
 * The script failed: its session is closed when it was the script's own
 * or is gone (disconnect: a lost connection), and the script freed first,
 * since failing the step releases what it owns. Then the error goes to
 * the script's handler, or fails the step.
 */
static void
sql_fail(pgm_sql_t *q, const char *what, const pgm_pg_error_t *err, bool disconnect)
{
	pgm_step_t *s = q->step;
	char *w = pgm_strdup(what), *hint = q->hint ? pgm_strdup(q->hint) : NULL;
	pgm_sql_error_cb on_error = q->on_error;
	void *data = q->on_error_data;

	sql_detach(q);
	if (q->own_session || disconnect)
		session_disconnect(q->ss);
	sql_free(q);
	if (on_error)
		on_error(s, w, hint, err, data);
	else
		pgm_step_fail_pg(s, w, err, hint);
	free(w);
	free(hint);
}

static void
on_sql_result(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	pgm_sql_session_t *ss = data;
	pgm_sql_t *q = ss->running;
	sql_stmt_t *st;
	pgm_step_t *s;

	if (q == NULL)
		return;
	st = &q->stmts[q->next - 1];
	s = q->step;
	if (err) {
		sql_fail(q, q->what, err, pgm_sql_connection_lost(err));
		return;
	}
	/* after its last result the session is free: the callback may start the next script on it */
	if (q->next == q->n)
		sql_detach(q);
	if (st->cb) {
		in_callback = q;
		st->cb(s, res, st->data);
		in_callback = NULL;
	}
	if (s->finished)
		return; /* the callback ended the step, which freed the script */
	if (q->aborted) {
		pgm_pg_error_t e = q->abort_err;

		sql_fail(q, q->what, &e, false);
		free(e.message);
		free(e.detail);
		free(e.hint);
		return;
	}
	sql_next(q);
}

static void
sql_next(pgm_sql_t *q)
{
	pgm_sql_session_t *ss = q->ss;
	sql_stmt_t *st;

	if (q->next == q->n) {
		pgm_step_t *s = q->step;
		pgm_step_then_fn then = q->then;
		void *data = q->then_data;

		sql_detach(q);
		if (q->own_session)
			session_disconnect(ss);
		sql_free(q);
		if (then)
			then(s, data);
		return;
	}
	st = &q->stmts[q->next++];
	pgm_debug("job %s: %s: %s", q->step->job->name, ss->purpose, st->sql);
	pgm_pg_query(ss->conn, st->sql, st->nparams, (const char *const *) st->params, on_sql_result, ss);
}

static void
on_session_setup(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	pgm_sql_session_t *ss = data;
	pgm_sql_t *q = ss->running;

	if (err) {
		if (q)
			sql_fail(q, q->what, err, true);
		else
			session_disconnect(ss);
		return;
	}
	ss->ready = true;
	if (q)
		sql_next(q);
}

static void
on_session_connect(pgm_pg_conn_t *conn, const pgm_pg_error_t *err, void *data)
{
	pgm_sql_session_t *ss = data;
	pgm_sql_t *q = ss->running;

	if (err) {
		char *what = pgm_asprintf("could not connect to the %s", ss->source ? "source" : "target");

		ss->conn = NULL; /* closed already, and forgotten by the step */
		if (q)
			sql_fail(q, what, err, false);
		free(what);
		return;
	}
	if (ss->setup) {
		pgm_debug("job %s: %s: %s", ss->step->job->name, ss->purpose, ss->setup);
		pgm_pg_query(conn, ss->setup, 0, NULL, on_session_setup, ss);
		return;
	}
	ss->ready = true;
	if (q)
		sql_next(q);
}

void
pgm_sql_abort(const char *message, const char *detail, const char *hint)
{
	pgm_sql_t *q = in_callback;

	if (q == NULL) {
		pgm_error("internal error: pgm_sql_abort outside a row callback");
		abort();
	}
	if (q->aborted)
		return;
	q->aborted = true;
	q->abort_err.message = pgm_strdup(message);
	q->abort_err.detail = detail ? pgm_strdup(detail) : NULL;
	q->abort_err.hint = hint ? pgm_strdup(hint) : NULL;
}

bool
pgm_sql_record(pgm_step_t *s, cJSON *a, const char *change)
{
	char *msg;

	if (a)
		return true;
	msg = pgm_unsaved_message(s->job, change);
	pgm_sql_abort(msg, NULL, pgm_unsaved_hint());
	free(msg);
	return false;
}

void
pgm_sql_on_error(pgm_sql_t *q, pgm_sql_error_cb cb, void *data)
{
	q->on_error = cb;
	q->on_error_data = data;
}

pgm_step_t *
pgm_sql_step(const pgm_sql_t *q)
{
	return q->step;
}

void
pgm_sql_run(pgm_sql_t *q, pgm_step_then_fn then, void *data)
{
	pgm_sql_session_t *ss = q->ss;

	if (ss->running) {
		pgm_error("internal error: a script runs on a busy session (%s): %s", ss->purpose,
			  q->n > 0 ? q->stmts[0].sql : "");
		abort();
	}
	q->then = then;
	q->then_data = data;
	ss->running = q;
	if (ss->ready)
		sql_next(q);
	else if (ss->conn == NULL)
		ss->conn = pgm_step_connect(q->step, ss->source, ss->purpose, on_session_connect, ss);
	/* else: connecting; the script starts once the session is set up */
}

char *
pgm_sql_fence_prefix(const pgm_job_t *job)
{
	return pgm_asprintf("pgmover:%s:", job->name);
}
