/*
 * method.h — a method is one table of operations. Each method lives in a
 * folder of its own (dump/, archive/, pglogical/, triggers/) and fills one
 * pgm_method_t; the state machine, its table and its driver are the same
 * for every method. steps.c runs what all methods share (the preflight,
 * the rollback window's deadline) and calls the job's operation for the
 * rest. A new method is one new folder and one row of pgm_methods[].
 *
 * Every slot is a step function: it ends the step with pgm_step_done or
 * pgm_step_fail, or keeps running until the state is left. A method with
 * nothing of its own to do in a state names pgm_op_done (the step is over
 * at once) or pgm_op_wait (nothing runs until an operator's command);
 * no slot is ever NULL (tests/unit/test_method.c checks every table).
 */
#ifndef PGM_METHOD_H
#define PGM_METHOD_H

#include <stdbool.h>

#include "fsm/job.h"

typedef void (*pgm_op_fn)(pgm_step_t *s);

typedef struct pgm_method {
	const char *name;    /* as --method names it, and as status shows it */
	const char *summary; /* one line: what it does, what the source must allow */
	bool for_file;       /* runs for a backup-file source only: chosen by the source, not by name */
	const struct pgm_method *file_source; /* what a backup-file source runs instead; NULL: a live source only */
	pgm_op_fn provision;                  /* provisioning, after the shared preflight: prepare the target */
	pgm_op_fn sync;                       /* syncing: the copy while the source is writable */
	pgm_op_fn synced;                     /* synced: what keeps running until freeze */
	pgm_op_fn freeze;                     /* freezing: stop writes, then the final copy or the drain */
	pgm_op_fn frozen;                     /* frozen: prove the freeze held */
	pgm_op_fn verify;                     /* verifying: compare the target with the source */
	pgm_op_fn thaw;                       /* thawing: undo exactly what the freeze did */
	pgm_op_fn cutover;                    /* cutting_over: make the target independent, move traffic */
	pgm_op_fn window;   /* rollback_window: carry the target's writes back (after the deadline timer is set) */
	pgm_op_fn finish;   /* finishing: close the window, drop what pgmover created */
	pgm_op_fn rollback; /* rolling_back: traffic back to the source */
	pgm_op_fn abort;    /* aborting, once the source is thawed: drop what pgmover created */
	pgm_op_fn failed;   /* failed: release what would hold the source (WAL, locks) */
} pgm_method_t;

/* the methods, in the order help lists them; NULL-terminated */
extern const pgm_method_t *const pgm_methods[];

/* one row each, defined in the method's folder */
extern const pgm_method_t pgm_method_dump;
extern const pgm_method_t pgm_method_archive;
extern const pgm_method_t pgm_method_pglogical;
extern const pgm_method_t pgm_method_triggers;

/* the method --method names, or NULL (a file-only method is not found by name) */
const pgm_method_t *pgm_method_find(const char *name);
/* the method of a job: by its name, or the file method for a backup-file source */
const pgm_method_t *pgm_method_for(const char *name, const char *source);
/* "dump (…), pglogical (…)" for hints (malloc'd) */
char *pgm_method_list(void);

/* the slots that need nothing of a method */
void pgm_op_done(pgm_step_t *s);
void pgm_op_wait(pgm_step_t *s);

#endif
