/*
 * step.h — the driver's side of a step's resources (step.c): the pipelines
 * use the pgm_step_* helpers of fsm/job.h; only the driver ends a step.
 */
#ifndef PGM_STEP_H
#define PGM_STEP_H

#include "fsm/job.h"

/* close every connection, child and timer of the step, free what it owns */
void pgm_step_release(pgm_step_t *s);
/* release, then free the step and its private state */
void pgm_step_free(pgm_step_t *s);

#endif
