/*
 * copy.h — the copy engines: pgmover's own parallel COPY streams (copy.c),
 * pg_dump | pg_restore (pgdump.c), and the tools and target clean they
 * share (tools.c)
 */
#ifndef PGM_COPY_H
#define PGM_COPY_H

#include "fsm/job.h"

/* copy.c: pgmover's own engine: parallel COPY streams in one snapshot */
void pgm_copy_run(pgm_step_t *s, const char *label, void (*then)(pgm_step_t *s));

/*
 * The schemas and triggers of pgmover's own change capture on a source
 * (the triggers method): never copied, never verified, never counted as
 * the application's writes.
 */
#define PGM_CAPTURE_SCHEMA_PREFIX "pgmover_capture_"
#define PGM_CAPTURE_TRIGGER_PREFIX "pgmover_capture_"

typedef struct pgm_copy_opts {
	/*
	 * Foreign keys and triggers are not restored with the copy but listed
	 * in state_dir/<job>/deferred.list (entries of deferred.dump), for
	 * pgm_copy_restore_deferred once the target has every change.
	 */
	bool defer_constraints;
} pgm_copy_opts_t;
void pgm_copy_run_opts(pgm_step_t *s, const char *label, const pgm_copy_opts_t *opts, void (*then)(pgm_step_t *s));
/* restore what defer_constraints held back (nothing to do when the list is empty) */
void pgm_copy_restore_deferred(pgm_step_t *s, void (*then)(pgm_step_t *s));

/*
 * pgdump.c: copy the source into a clean target with pg_dump/pg_restore.
 * `label` names the copy in facts ("rehearsal" or "final"); then is called
 * when it succeeded (the step fails by itself otherwise).
 */
void pgm_dump_copy(pgm_step_t *s, const char *label, void (*then)(pgm_step_t *s));
/* drop everything pgmover restored into the target (abort) */
void pgm_dump_clean_target(pgm_step_t *s, void (*then)(pgm_step_t *s));

/* tools.c: pg_dump/pg_restore for one side, as children of the step */
pgm_proc_t *pgm_tool_spawn(pgm_step_t *s, const char *tool, const char *const *args, bool source, const char *pgoptions,
			   pgm_proc_line_cb line_cb, pgm_proc_exit_cb exit_cb, void *data);
/* the same with any DSN, or none (dsn NULL: e.g. pg_restore --list FILE) */
pgm_proc_t *pgm_tool_spawn_dsn(pgm_step_t *s, const char *tool, const char *const *args, const char *dsn,
			       const char *pgoptions, pgm_proc_line_cb line_cb, pgm_proc_exit_cb exit_cb, void *data);
/* a tool exited: false when it succeeded, else the step fails saying why */
bool pgm_tool_failed(pgm_step_t *s, const char *tool, const char *during, int64_t status, int sig, const char *tail);
/* add to q: end this job's leftover sessions and empty the target */
struct pgm_sql;
void pgm_target_clean(struct pgm_sql *q, pgm_job_t *job);

/* the job's engine (option `engine`); large objects need pg_dump's */
void pgm_copy_with_engine(pgm_step_t *s, const char *label, void (*then)(pgm_step_t *s));

/* provisioning: the target is pgmover's to replace from now on (facts.target_owned) */
void pgm_copy_own_target(pgm_step_t *s);
/* aborting: empty the target if pgmover owns it, then the step is done */
void pgm_copy_release_target(pgm_step_t *s);

#endif
