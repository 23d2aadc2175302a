/*
 * freeze.h — stop writes on the source, undo exactly that, prove it held
 */
#ifndef PGM_FREEZE_H
#define PGM_FREEZE_H

#include "fsm/job.h"

/* freeze.c: stop writes on the source / undo exactly that / prove it held; then(s, data) */
void pgm_freeze_source(pgm_step_t *s, pgm_step_then_fn then, void *data);
void pgm_thaw_source(pgm_step_t *s, pgm_step_then_fn then, void *data);
void pgm_freeze_check(pgm_step_t *s, pgm_step_then_fn then, void *data);
/* true when the job holds a freeze that has not been undone */
bool pgm_freeze_active(const pgm_job_t *job);

/* the same as whole steps (thawing, frozen): they end the step when done */
void pgm_thaw_step(pgm_step_t *s);
void pgm_freeze_check_step(pgm_step_t *s);

#endif
