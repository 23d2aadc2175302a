/*
 * sql.h — statements run one after another on a connection of a step
 */
#ifndef PGM_SQL_H
#define PGM_SQL_H

#include "fsm/job.h"

/*
 * sql.c: the one runner of statements on a step's connections. A script
 * runs statements one after another on a session; results go to
 * per-statement callbacks; any error fails the step with `what` and
 * `hint` (or goes to the script's error handler).
 */
typedef void (*pgm_sql_row_cb)(pgm_step_t *s, const PGresult *res, void *data);
typedef struct pgm_sql pgm_sql_t;
typedef struct pgm_sql_session pgm_sql_session_t;

/* a script on a session of its own: connected when it runs, closed when it ends */
pgm_sql_t *pgm_sql_begin(pgm_step_t *s, bool source, const char *purpose, const char *what, const char *hint);
/*
 * A session of the step that outlives its scripts: opened by the first
 * script run on it, `setup` (may be NULL) run once after connecting; an
 * error that means the connection is gone closes it, and the next script
 * connects again. Closed with the step. One script at a time: it is busy
 * from pgm_sql_run until the last statement's result is delivered (its row
 * callback may start the next script).
 */
pgm_sql_session_t *pgm_sql_session(pgm_step_t *s, bool source, const char *purpose, const char *setup);
bool pgm_sql_session_busy(const pgm_sql_session_t *ss);
/* a script on such a session */
pgm_sql_t *pgm_sql_begin_on(pgm_sql_session_t *ss, const char *what, const char *hint);
/* an error that means the session is gone (not from the server, or a connection or shutdown error) */
bool pgm_sql_connection_lost(const pgm_pg_error_t *err);
/*
 * An error that may go away by itself, so the same statement is worth
 * sending again: the session lost, a lock or statement timeout, a
 * serialization failure or deadlock, the server short of a resource or
 * shutting down. Anything else (a constraint, a missing row, table or
 * column, bad data, a read-only transaction) needs someone to fix it.
 */
bool pgm_sql_transient(const pgm_pg_error_t *err);

/* at most 8 parameters */
void pgm_sql_add(pgm_sql_t *q, const char *sql, pgm_sql_row_cb cb, void *data);
void pgm_sql_add_params(pgm_sql_t *q, const char *sql, int nparams, const char *const *params, pgm_sql_row_cb cb,
			void *data);
/* the step a script belongs to */
pgm_step_t *pgm_sql_step(const pgm_sql_t *q);
/* run; then(s, data) after the last statement succeeded (then may be NULL: nothing follows) */
void pgm_sql_run(pgm_sql_t *q, pgm_step_then_fn then, void *data);
/*
 * Instead of failing the step, hand an error to cb (the script is over;
 * its own connection is closed, a kept session stays open unless the
 * connection is gone); cb must end the step or go on with its work.
 */
typedef void (*pgm_sql_error_cb)(pgm_step_t *s, const char *what, const char *hint, const pgm_pg_error_t *err,
				 void *data);
void pgm_sql_on_error(pgm_sql_t *q, pgm_sql_error_cb cb, void *data);
/*
 * From a row callback only: stop the script after this statement, as if it
 * had failed with this error (the script's error handler runs, or the step
 * fails). For a change the next statements would make that could not be
 * recorded first.
 */
void pgm_sql_abort(const char *message, const char *detail, const char *hint);
/*
 * From a row callback: a (the result of pgm_artifact_record) is NULL, so
 * stop the script before `change`; returns whether a was recorded.
 */
bool pgm_sql_record(pgm_step_t *s, cJSON *a, const char *change);

/*
 * The fence: ends the sessions an earlier run of a job left on a server,
 * and waits (up to 10 s each) until they have. A backend goes on with the
 * statement of a client that died, so a killed daemon's CREATE EXTENSION or
 * COPY may still be running, or waiting on a lock, when the resumed step
 * looks at the catalog: the two would race. pgmoverd alone drives its
 * state_dir (a lock), so a session named for the job that is not the one
 * running this is an earlier run's. $1 is pgm_sql_fence_prefix(job); the
 * statement returns how many it ended.
 */
#define PGM_SQL_FENCE                                                          \
	"SELECT count(pg_terminate_backend(pid, 10000)) FROM pg_stat_activity" \
	" WHERE datname = current_database() AND pid <> pg_backend_pid()"      \
	"   AND left(application_name, length($1)) = $1"
/* "pgmover:JOB:", the start of every application_name of the job's sessions (free it) */
char *pgm_sql_fence_prefix(const pgm_job_t *job);

#endif
