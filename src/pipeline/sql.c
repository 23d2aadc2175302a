/*
 * sql.c — a short script of statements on one connection of a step:
 * connect, run each in order, hand each result to its callback, then
 * continue the step. Any error fails the step with what was being done.
 */
#include "common/log.h"
#include "common/util.h"
#include "pipeline/sql.h"

#include <stdlib.h>
#include <string.h>

#define SQL_MAX 32

typedef struct sql_stmt {
	char *sql;
	int nparams;
	char *params[8];
	pgm_sql_row_cb cb;
	void *data;
} sql_stmt_t;

struct pgm_sql {
	pgm_step_t *step;
	bool source;
	char *purpose, *what, *hint;
	sql_stmt_t stmts[SQL_MAX];
	int n, next;
	pgm_pg_conn_t *conn;
	pgm_step_then_fn then;
	void *then_data;
	pgm_sql_error_cb on_error; /* instead of failing the step */
	void *on_error_data;
	pgm_pg_error_t abort_err;  /* set by pgm_sql_abort in a row callback */
	bool aborted;
};

/* the script whose row callback is running (one loop, one thread) */
static pgm_sql_t *in_callback;

static void
sql_free_cb(void *p)
{
	pgm_sql_t *q = p;

	for (int i = 0; i < q->n; i++) {
		free(q->stmts[i].sql);
		for (int k = 0; k < q->stmts[i].nparams; k++)
			free(q->stmts[i].params[k]);
	}
	free(q->purpose);
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

pgm_sql_t *
pgm_sql_begin(pgm_step_t *s, bool source, const char *purpose, const char *what, const char *hint)
{
	pgm_sql_t *q = pgm_calloc(1, sizeof(*q));

	q->step = s;
	q->source = source;
	q->purpose = pgm_strdup(purpose);
	q->what = pgm_strdup(what);
	q->hint = hint ? pgm_strdup(hint) : NULL;
	pgm_step_own(s, q, sql_free_cb);
	return q;
}

void
pgm_sql_add_params(pgm_sql_t *q, const char *sql, int nparams, const char *const *params, pgm_sql_row_cb cb,
                   void *data)
{
	sql_stmt_t *st;

	if (q->n == SQL_MAX || nparams > 8) {
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

/* free the script first: failing the step releases what it owns */
static void
sql_fail(pgm_sql_t *q, const char *what, const pgm_pg_error_t *err)
{
	pgm_step_t *s = q->step;
	char *w = pgm_strdup(what), *hint = q->hint ? pgm_strdup(q->hint) : NULL;
	pgm_sql_error_cb on_error = q->on_error;
	void *data = q->on_error_data;

	pgm_step_close_conn(s, q->conn);
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
	pgm_sql_t *q = data;
	sql_stmt_t *st = &q->stmts[q->next - 1];
	pgm_step_t *s = q->step;

	if (err) {
		sql_fail(q, q->what, err);
		return;
	}
	if (st->cb) {
		in_callback = q;
		st->cb(s, res, st->data);
		in_callback = NULL;
	}
	if (s->finished)
		return; /* the callback ended the step, which freed the script */
	if (q->aborted) {
		pgm_pg_error_t e = q->abort_err;

		sql_fail(q, q->what, &e);
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
	sql_stmt_t *st;

	if (q->next == q->n) {
		pgm_step_t *s = q->step;
		pgm_step_then_fn then = q->then;
		void *data = q->then_data;

		pgm_step_close_conn(s, q->conn);
		sql_free(q);
		if (then)
			then(s, data);
		return;
	}
	st = &q->stmts[q->next++];
	pgm_debug("job %s: %s: %s", q->step->job->name, q->purpose, st->sql);
	pgm_pg_query(q->conn, st->sql, st->nparams, (const char *const *) st->params, on_sql_result, q);
}

static void
on_sql_connect(pgm_pg_conn_t *conn, const pgm_pg_error_t *err, void *data)
{
	pgm_sql_t *q = data;

	if (err) {
		char *what = pgm_asprintf("could not connect to the %s", q->source ? "source" : "target");
		q->conn = NULL;
		sql_fail(q, what, err);
		free(what);
		return;
	}
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

void
pgm_sql_run(pgm_sql_t *q, pgm_step_then_fn then, void *data)
{
	q->then = then;
	q->then_data = data;
	q->conn = pgm_step_connect(q->step, q->source, q->purpose, on_sql_connect, q);
}
