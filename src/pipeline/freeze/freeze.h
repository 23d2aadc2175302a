/*
 * freeze.h — stop writes on the source, undo exactly that, prove it held;
 * and the one read-only freeze of a database both sides use
 */
#ifndef PGM_FREEZE_H
#define PGM_FREEZE_H

#include "fsm/job.h"
#include "pipeline/sql.h"

/* freeze.c: stop writes on the source / undo exactly that / prove it held; then(s, data) */
void pgm_freeze_source(pgm_step_t *s, pgm_step_then_fn then, void *data);
void pgm_thaw_source(pgm_step_t *s, pgm_step_then_fn then, void *data);
void pgm_freeze_check(pgm_step_t *s, pgm_step_then_fn then, void *data);
/* true when the job holds a freeze that has not been undone */
bool pgm_freeze_active(const pgm_job_t *job);
/*
 * Bound the step by freeze_timeout, counted from the freeze's start: past
 * it, the step fails saying the source is still frozen, what it waited for,
 * and how to thaw. Nothing while the source is not frozen yet.
 */
void pgm_freeze_guard(pgm_step_t *s);

/* the same as whole steps (thawing, frozen): they end the step when done */
void pgm_thaw_step(pgm_step_t *s);
void pgm_freeze_check_step(pgm_step_t *s);

/* ---- db_freeze.c: the read-only freeze of one side's database ---- */

/* the other client sessions of the database that the freeze ends */
typedef enum pgm_session_filter {
	PGM_SESSIONS_SIGNALLABLE, /* those the role may signal; the others are a warning (the source) */
	PGM_SESSIONS_ALL_BUT_JOB, /* all but this job's own; one the role may not end fails the freeze (the target) */
} pgm_session_filter_t;

/* one side's freeze: a constant table each (freeze.c's for the source, rollback.c's for the target) */
typedef struct pgm_db_freeze {
	bool source;         /* the side */
	const char *kind;    /* its artifact: "db_setting", "target_db_setting" (state files know these) */
	const char *purpose; /* the freeze's session, in application_name */
	pgm_session_filter_t sessions;
	const char *facts; /* facts.<facts>.<sessions_fact>: the sessions ended */
	const char *sessions_fact;
	bool warn;               /* warn of roles that override it, of a database read-only before */
	const char *what, *hint; /* a failed freeze */
	const char *thaw_purpose;
	const char *thaw_what, *thaw_hint;
	/* the side's own statements, after ALTER DATABASE / after the sessions are gone (NULL: none) */
	void (*more)(pgm_sql_t *q, pgm_job_t *job);
	void (*after)(pgm_sql_t *q, pgm_job_t *job);
} pgm_db_freeze_t;

/*
 * Freeze the side's database: its previous setting recorded first (the
 * artifact, once), ALTER DATABASE ... SET default_transaction_read_only =
 * on, the filter's sessions ended. then(s, data) after; an error goes to
 * on_error(..., error_data), or fails the step when on_error is NULL.
 */
void pgm_db_freeze(pgm_step_t *s, const pgm_db_freeze_t *fz, pgm_sql_error_cb on_error, void *error_data,
		   pgm_step_then_fn then, void *data);
/* undo the freeze recorded in artifact a (a live one of fz->kind): the previous value or RESET; a is dropped */
void pgm_db_thaw(pgm_step_t *s, const pgm_db_freeze_t *fz, cJSON *a, pgm_sql_error_cb on_error, void *error_data,
		 pgm_step_then_fn then, void *data);

#endif
