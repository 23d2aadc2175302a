/*
 * reverse.h — the reverse stream of the rollback window: the target's
 * writes, decoded from a pgoutput slot, applied to the source
 */
#ifndef PGM_REVERSE_H
#define PGM_REVERSE_H

#include "pipeline/cutover/flow.h"

/* ---- names pgmover gives its objects (slot names allow [a-z0-9_] only) ---- */

char *pgm_reverse_slot_name(const pgm_job_t *job);      /* malloc'd */
char *pgm_reverse_schema_name(const pgm_job_t *job);    /* malloc'd, unquoted */
char *pgm_reverse_progress_table(const pgm_job_t *job); /* "schema".applied, malloc'd */

/* ---- the reverse stream (reverse.c) ---- */

/* create on the target a publication and a slot, on the source the progress table */
void pgm_reverse_setup(pgm_flow_t *f, void (*then)(pgm_flow_t *f));
/* whether any reverse object is recorded live (on either server) */
bool pgm_reverse_live(pgm_job_t *job);
/* drop every reverse object recorded in the artifacts (idempotent) */
void pgm_reverse_teardown(pgm_flow_t *f, void (*then)(pgm_flow_t *f));
/* the rollback window: apply target changes to the source every reverse_interval */
void pgm_reverse_follow(pgm_step_t *s);
/* apply until the source has every change committed on the target so far */
void pgm_reverse_drain(pgm_flow_t *f, void (*then)(pgm_flow_t *f));

/* ---- tables the stream does not carry back (reverse_tables.c) ---- */

typedef void (*pgm_reverse_tables_cb)(void *data, const pgm_pg_error_t *err);
/*
 * Look at the target's tables (publication, persistence) and ask the
 * source which published names it lacks; facts.reverse.uncarried, warnings,
 * audit and watchers are told of each change; then cb (err: a session's
 * error, nothing noted). One query at a time on each session.
 */
void pgm_reverse_tables_check(pgm_step_t *s, pgm_pg_conn_t *tgt, pgm_pg_conn_t *src, const char *publication,
			      pgm_reverse_tables_cb cb, void *data);
/*
 * Fold one check into the job: found [{table, kind, reason}], tables
 * {name: true} of every application table on the target. New entries get
 * detected_at = now, a warning and an audit line; resolved ones are
 * removed (warning too). Returns how many changed.
 */
int pgm_reverse_uncarried_note(pgm_job_t *job, const cJSON *found, const cJSON *tables, int64_t now);
/* "rollback would lose writes to TABLE: REASON" of one entry (malloc'd) */
char *pgm_reverse_uncarried_warning(const cJSON *entry);
/* "a, b" of the tables not carried, NULL when none (malloc'd) */
char *pgm_reverse_uncarried_names(const pgm_job_t *job);
/* false, with a message and hint (malloc'd), when a rollback would lose writes and the loss is not accepted */
bool pgm_rollback_loss_check(const pgm_job_t *job, bool accept_loss, char **message, char **hint);
/* the loss accepted for this job's rollback (facts.rollback_accept_loss), recorded by the command */
void pgm_rollback_accept_loss(pgm_job_t *job, const pgm_peer_t *peer);
/* the drain's check: as pgm_rollback_loss_check with the accepted loss; what is lost goes in facts */
bool pgm_reverse_drain_lossless(pgm_job_t *job, char **message, char **hint);

#endif
