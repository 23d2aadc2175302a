/*
 * step.c — what a running step owns: its connections, child processes,
 * timers and helpers' memory, each in a slot of the step, all closed by
 * pgm_step_release when the step ends or is cancelled, so that no callback
 * outlives its step.
 */
#include "common/log.h"
#include "common/util.h"
#include "fsm/step.h"

#include <stdlib.h>
#include <string.h>

static void
free_timer_cb(uv_handle_t *h)
{
	free(h);
}

/* close everything the step opened; no callback of theirs fires after this */
void
pgm_step_release(pgm_step_t *s)
{
	for (int i = 0; i < PGM_STEP_MAX_RES; i++) {
		if (s->conns[i]) {
			pgm_pg_cancel(s->conns[i]);
			pgm_pg_close(s->conns[i]);
			s->conns[i] = NULL;
		}
		if (s->procs[i]) {
			pgm_proc_detach(s->procs[i]);
			s->procs[i] = NULL;
		}
		if (s->timers[i]) {
			uv_timer_stop(s->timers[i]);
			uv_close((uv_handle_t *) s->timers[i], free_timer_cb);
			s->timers[i] = NULL;
		}
	}
	for (int i = 0; i < PGM_STEP_MAX_RES; i++) {
		if (s->owned[i]) {
			void *p = s->owned[i];
			s->owned[i] = NULL;
			s->owned_free[i](p);
		}
	}
}

void
pgm_step_free(pgm_step_t *s)
{
	if (s == NULL)
		return;
	pgm_step_release(s);
	if (s->priv && s->priv_free)
		s->priv_free(s->priv);
	free(s);
}

static int
conn_slot(pgm_step_t *s, const pgm_pg_conn_t *c)
{
	for (int i = 0; i < PGM_STEP_MAX_RES; i++)
		if (s->conns[i] == c)
			return i;
	return -1;
}

static void
step_connect_cb(pgm_pg_conn_t *conn, const pgm_pg_error_t *err, void *data)
{
	pgm_step_t *s = data;
	int i = conn_slot(s, conn);
	pgm_pg_connect_cb cb;
	void *cbdata;

	if (i < 0)
		return;
	cb = s->conn_cb[i];
	cbdata = s->conn_data[i];
	if (err)
		s->conns[i] = NULL; /* pgasync has closed it */
	cb(conn, err, cbdata);
}

pgm_pg_conn_t *
pgm_step_connect(pgm_step_t *s, bool source, const char *purpose, pgm_pg_connect_cb cb, void *data)
{
	pgm_job_t *job = s->job;
	char *app = pgm_asprintf("pgmover:%s:%s", job->name, purpose);
	int i = conn_slot(s, NULL);
	pgm_pg_net_t net;
	pgm_pg_conn_t *c;

	if (i < 0) {
		pgm_error("internal error: step has too many connections");
		abort();
	}
	s->conn_cb[i] = cb;
	s->conn_data[i] = data;
	s->conn_source[i] = source;
	pgm_pg_net_from_options(job->options, pgm_state_bounded(job->state), &net);
	c = pgm_pg_connect(job->host->loop, source ? job->source_dsn : job->target_dsn, app, &net, step_connect_cb, s);
	s->conns[i] = c;
	free(app);
	return c;
}

char *
pgm_step_describe_waits(const pgm_step_t *s)
{
	pgm_buf_t b = {0};

	for (int i = 0; i < PGM_STEP_MAX_RES; i++) {
		char *w = s->conns[i] ? pgm_pg_describe_wait(s->conns[i]) : NULL;

		if (w)
			pgm_buf_appendf(&b, "%sthe %s at %s", b.s ? "; " : "", s->conn_source[i] ? "source" : "target",
					w);
		free(w);
	}
	for (int i = 0; i < PGM_STEP_MAX_RES; i++)
		if (s->procs[i])
			pgm_buf_appendf(&b, "%sa child process (pid %d)", b.s ? "; " : "",
					(int) pgm_proc_pid(s->procs[i]));
	return b.s;
}

void
pgm_step_close_conn(pgm_step_t *s, pgm_pg_conn_t *c)
{
	int i = conn_slot(s, c);

	if (c == NULL)
		return;
	if (i >= 0)
		s->conns[i] = NULL;
	pgm_pg_close(c);
}

static void
step_proc_exit_cb(pgm_proc_t *p, int64_t status, int sig, int timed_out, const char *tail, void *data)
{
	pgm_step_t *s = data;

	for (int i = 0; i < PGM_STEP_MAX_RES; i++) {
		if (s->procs[i] == p) {
			s->procs[i] = NULL;
			s->proc_cb[i](p, status, sig, timed_out, tail, s->proc_data[i]);
			return;
		}
	}
}

static void
step_proc_line_cb(pgm_proc_t *p, int stream, const char *line, void *data)
{
	pgm_step_t *s = data;

	for (int i = 0; i < PGM_STEP_MAX_RES; i++)
		if (s->procs[i] == p && s->proc_line_cb[i])
			s->proc_line_cb[i](p, stream, line, s->proc_data[i]);
}

pgm_proc_t *
pgm_step_spawn(pgm_step_t *s, const char *const argv[], const char *const env[], int timeout_ms,
	       pgm_proc_line_cb line_cb, pgm_proc_exit_cb exit_cb, void *data, char **errmsg)
{
	int i;
	pgm_proc_t *p;

	for (i = 0; i < PGM_STEP_MAX_RES && s->procs[i]; i++)
		;
	if (i == PGM_STEP_MAX_RES) {
		pgm_error("internal error: step has too many processes");
		abort();
	}
	/* both callbacks find the caller's data through the step's slot */
	p = pgm_proc_spawn(s->job->host->loop, argv, env, timeout_ms, step_proc_line_cb, step_proc_exit_cb, s, errmsg);
	if (p == NULL)
		return NULL;
	s->procs[i] = p;
	s->proc_line_cb[i] = line_cb;
	s->proc_cb[i] = exit_cb;
	s->proc_data[i] = data;
	return p;
}

uv_timer_t *
pgm_step_timer(pgm_step_t *s)
{
	for (int i = 0; i < PGM_STEP_MAX_RES; i++)
		if (s->timers[i] == NULL) {
			s->timers[i] = pgm_malloc(sizeof(uv_timer_t));
			uv_timer_init(s->job->host->loop, s->timers[i]);
			s->timers[i]->data = s;
			return s->timers[i];
		}
	pgm_error("internal error: step has too many timers");
	abort();
}

void
pgm_step_own(pgm_step_t *s, void *p, void (*free_fn)(void *))
{
	for (int i = 0; i < PGM_STEP_MAX_RES; i++)
		if (s->owned[i] == NULL) {
			s->owned[i] = p;
			s->owned_free[i] = free_fn;
			return;
		}
	pgm_error("internal error: step owns too much");
	abort();
}

void
pgm_step_disown(pgm_step_t *s, void *p)
{
	for (int i = 0; i < PGM_STEP_MAX_RES; i++)
		if (s->owned[i] == p)
			s->owned[i] = NULL;
}

uv_loop_t *
pgm_step_loop(pgm_step_t *s)
{
	return s->job->host->loop;
}
