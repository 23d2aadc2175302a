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

#endif
