/*
 * flow.h — a small runner of named stages, each recorded (facts, audit)
 * so that a retry runs only the stages left; and the pieces the stages of
 * cutover, rollback and finish share: sequences, the target's read-only
 * freeze, the DNS TTL check
 */
#ifndef PGM_FLOW_H
#define PGM_FLOW_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include "fsm/job.h"

/* ---- flows: named stages run in order, each recorded (facts, audit) ---- */

typedef struct pgm_flow pgm_flow_t;
typedef void (*pgm_stage_fn)(pgm_flow_t *f);

typedef struct pgm_stage {
	const char *name;             /* "pgbouncer:pause": audited as "<flow>:<name>" */
	pgm_stage_fn run;             /* ends with pgm_flow_next or pgm_flow_fail */
	bool (*wanted)(pgm_job_t *j); /* NULL: always; false: skipped silently */
} pgm_stage_t;

/* undo what a failed flow left half done; calls pgm_flow_fail_now at the end */
typedef void (*pgm_flow_undo_fn)(pgm_flow_t *f);

struct pgm_pgb;
struct pgm_reverse;

struct pgm_flow {
	pgm_step_t *step;
	pgm_job_t *job;
	const char *name; /* "cutover", "rollback", "finish" */
	const pgm_stage_t *stages;
	int cur;                     /* index of the running stage */
	int64_t stage_started;       /* monotonic ms */
	void (*then)(pgm_step_t *s); /* after the last stage */
	pgm_flow_undo_fn undo;       /* on failure (may be NULL) */
	bool failing;                /* undo is running */
	char *fail_msg, *fail_detail, *fail_hint;
	struct pgm_pgb *pgb;     /* pgbouncer admin console, when configured */
	struct pgm_reverse *rev; /* the reverse stream, when running */
	char *scratch;           /* a stage's value for the next (malloc'd) */
};

/* start a flow owned by the step; stages already done (facts.<flow>.done) are skipped */
pgm_flow_t *pgm_flow_start(pgm_step_t *s, const char *name, const pgm_stage_t *stages, pgm_flow_undo_fn undo,
			   void (*then)(pgm_step_t *s));
/* the current stage succeeded: record it, run the next */
void pgm_flow_next(pgm_flow_t *f);
/* the current stage failed: record it, run the undo, then fail the step */
void pgm_flow_fail(pgm_flow_t *f, const char *message, const char *detail, const char *hint);
/* the same with a server error */
void pgm_flow_fail_pg(pgm_flow_t *f, const char *what, const pgm_pg_error_t *err, const char *hint);
/* for the undo: fail the step now with the recorded message */
void pgm_flow_fail_now(pgm_flow_t *f);
/* facts.<flow> (created on demand) and whether a stage of it is done */
cJSON *pgm_flow_facts(pgm_flow_t *f);
bool pgm_flow_done(pgm_job_t *job, const char *flow, const char *stage);
/* forget the stages done, so that a retry starts the flow over */
void pgm_flow_reset(pgm_job_t *job, const char *flow);
/* one audit line "<flow>:<what>" with an outcome */
void pgm_flow_audit(pgm_flow_t *f, const char *what, const char *outcome);
/* a statement script of the flow's step whose errors go through pgm_flow_fail */
struct pgm_sql *pgm_flow_sql(pgm_flow_t *f, bool source, const char *purpose, const char *what, const char *hint);
/* that error handler (a pgm_sql_error_cb; data: the flow), for scripts made elsewhere (db_freeze.c) */
void pgm_flow_sql_error(pgm_step_t *s, const char *what, const char *hint, const pgm_pg_error_t *err, void *data);

/* ---- sequences: on `to`, raise every sequence that is behind `from` ---- */

void pgm_sequences_sync(pgm_flow_t *f, bool from_source);

/* ---- the read-only freeze of the target (rollback; db_freeze.c) and its undo ---- */

void pgm_target_freeze(pgm_flow_t *f, void (*then)(pgm_flow_t *f));
void pgm_target_thaw(pgm_flow_t *f, void (*then)(pgm_flow_t *f));

/* ---- DNS (dns.c): the TTL of the application's record, in the thread pool ---- */

void pgm_dns_check(pgm_flow_t *f, void (*then)(pgm_flow_t *f));

#endif
