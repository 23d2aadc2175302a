/*
 * hooks.h — an operator's command run for a step (freeze, cutover, rollback hooks)
 */
#ifndef PGM_HOOKS_H
#define PGM_HOOKS_H

#include "fsm/job.h"

/*
 * hooks.c: run an operator's command with the job's name, phase and target
 * URL in its environment; then(s, data) once it exited 0; a non-zero exit
 * fails the step naming the hook.
 */
void pgm_hook_run(pgm_step_t *s, const char *option, const char *phase, pgm_step_then_fn then, void *data);
/* the same; a failure goes to `failed` (which must end the step) instead */
typedef void (*pgm_hook_failed_cb)(pgm_step_t *s, const char *message, const char *detail, void *data);
void pgm_hook_run_ex(pgm_step_t *s, const char *option, const char *phase, pgm_step_then_fn then,
		     pgm_hook_failed_cb failed, void *data);

#endif
