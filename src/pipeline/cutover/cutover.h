/*
 * cutover.h — cutover, the rollback window, rollback and finish: the
 * steps every method ends with (flow.h, pgbouncer.h and reverse.h are this
 * folder's own)
 */
#ifndef PGM_CUTOVER_H
#define PGM_CUTOVER_H

#include "fsm/job.h"

/* the entry points, one per step of the transition table (dump method) */
void pgm_cutover_run(pgm_step_t *s);
void pgm_window_run(pgm_step_t *s);
void pgm_rollback_run(pgm_step_t *s);
/*
 * rollback's flow, then `then` instead of the step's end; then ends with
 * pgm_rollback_finished. For a method with objects of its own on the
 * target (pglogical's catalog): removed only once the reverse stream is
 * drained and gone, or the stream would carry their removal to the source.
 */
void pgm_rollback_run_then(pgm_step_t *s, void (*then)(pgm_step_t *s));
void pgm_rollback_finished(pgm_step_t *s);
void pgm_finish_run(pgm_step_t *s);
/*
 * What a cutover that failed before traffic moved may have left: the
 * reverse stream's objects, pgbouncer paused or its include file changed.
 * thaw and abort run the unwind first when there is any (idempotent).
 */
bool pgm_cutover_leftovers(pgm_job_t *job);
void pgm_cutover_unwind(pgm_step_t *s, void (*then)(pgm_step_t *s));

#endif
