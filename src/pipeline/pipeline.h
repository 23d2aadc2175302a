/*
 * pipeline.h — the work behind each step, per method. steps.c calls these;
 * each ends with pgm_step_done or pgm_step_fail.
 */
#ifndef PGM_PIPELINE_H
#define PGM_PIPELINE_H

#include "fsm/job.h"

/* dispatch by method (pipeline.c) */
void pgm_pipeline_provision(pgm_step_t *s);
void pgm_pipeline_sync(pgm_step_t *s);
void pgm_pipeline_freeze(pgm_step_t *s);
void pgm_pipeline_check_freeze(pgm_step_t *s);
void pgm_pipeline_verify(pgm_step_t *s);
void pgm_pipeline_thaw(pgm_step_t *s);
void pgm_pipeline_cutover(pgm_step_t *s);
void pgm_pipeline_finish(pgm_step_t *s);
void pgm_pipeline_rollback(pgm_step_t *s);
void pgm_pipeline_abort(pgm_step_t *s);
/* rollback_window: carry writes made on the target back to the source */
void pgm_pipeline_window(pgm_step_t *s);
/* synced: keep following (pglogical: lag); failed: release what holds the source */
void pgm_pipeline_synced(pgm_step_t *s);
void pgm_pipeline_failed(pgm_step_t *s);

/*
 * pglogical*.c: the pglogical method (pglogical.h has its internals).
 * detach drops the subscription and its slot; remove everything pgmover
 * created on the servers; abort that and the target's contents; failed
 * drops the subscription and slot of a failed job (warning, retried).
 */
void pgm_pglogical_provision(pgm_step_t *s);
void pgm_pglogical_sync(pgm_step_t *s);
void pgm_pglogical_synced(pgm_step_t *s);
void pgm_pglogical_freeze(pgm_step_t *s);
void pgm_pglogical_detach(pgm_step_t *s, void (*then)(pgm_step_t *s));
void pgm_pglogical_remove(pgm_step_t *s, void (*then)(pgm_step_t *s));
void pgm_pglogical_abort(pgm_step_t *s, void (*then)(pgm_step_t *s));
void pgm_pglogical_failed(pgm_step_t *s);

/*
 * dump.c: copy the source into a clean target with pg_dump/pg_restore.
 * `label` names the copy in facts ("rehearsal" or "final"); then is called
 * when it succeeded (the step fails by itself otherwise).
 */
void pgm_dump_copy(pgm_step_t *s, const char *label, void (*then)(pgm_step_t *s));
/* drop everything pgmover restored into the target (abort) */
void pgm_dump_clean_target(pgm_step_t *s, void (*then)(pgm_step_t *s));

/* tools.c: pg_dump/pg_restore for one side, as children of the step */
pgm_proc_t *pgm_tool_spawn(pgm_step_t *s, const char *tool, const char *const *args, bool source,
                           const char *pgoptions, pgm_proc_line_cb line_cb, pgm_proc_exit_cb exit_cb, void *data);
/* the same with any DSN, or none (dsn NULL: e.g. pg_restore --list FILE) */
pgm_proc_t *pgm_tool_spawn_dsn(pgm_step_t *s, const char *tool, const char *const *args, const char *dsn,
                               const char *pgoptions, pgm_proc_line_cb line_cb, pgm_proc_exit_cb exit_cb,
                               void *data);
/* a tool exited: false when it succeeded, else the step fails saying why */
bool pgm_tool_failed(pgm_step_t *s, const char *tool, const char *during, int64_t status, int sig,
                     const char *tail);
/* add to q: end this job's leftover sessions and empty the target */
struct pgm_sql;
void pgm_target_clean(struct pgm_sql *q, pgm_job_t *job);

/*
 * archive.c: a pg_dump custom-format file (heroku pg:backups:download's
 * latest.dump) as the source
 */
void pgm_archive_inspect(pgm_step_t *s, void (*then)(pgm_step_t *s));
void pgm_archive_restore(pgm_step_t *s, const char *label, void (*then)(pgm_step_t *s));
void pgm_archive_verify(pgm_step_t *s);

/* copy.c: pgmover's own engine: parallel COPY streams in one snapshot */
void pgm_copy_run(pgm_step_t *s, const char *label, void (*then)(pgm_step_t *s));

/* freeze.c: stop writes on the source / undo exactly that / prove it held */
void pgm_freeze_source(pgm_step_t *s, void (*then)(pgm_step_t *s));
void pgm_thaw_source(pgm_step_t *s, void (*then)(pgm_step_t *s));
void pgm_freeze_check(pgm_step_t *s, void (*then)(pgm_step_t *s));
/* true when the job holds a freeze that has not been undone */
bool pgm_freeze_active(const pgm_job_t *job);

/*
 * verify_step.c: row counts and checksums of every table on both sides,
 * bisected down to the keys that differ (the engine of verify.h); the
 * report goes to job->verify, any difference ends with verify_failed
 */
void pgm_verify_step(pgm_step_t *s);

/*
 * hooks.c: run an operator's command with the job's name, phase and target
 * URL in its environment; a non-zero exit fails the step naming the hook.
 */
void pgm_hook_run(pgm_step_t *s, const char *option, const char *phase, void (*then)(pgm_step_t *s));
/* the same; a failure goes to `failed` (which must end the step) instead */
typedef void (*pgm_hook_failed_cb)(pgm_step_t *s, const char *message, const char *detail, void *data);
void pgm_hook_run_ex(pgm_step_t *s, const char *option, const char *phase, void (*then)(pgm_step_t *s),
                     pgm_hook_failed_cb failed, void *failed_data);

/*
 * sql.c: run statements one after another on one connection of the step;
 * results go to per-statement callbacks; any error fails the step with
 * `what` and `hint`.
 */
typedef void (*pgm_sql_row_cb)(pgm_step_t *s, const PGresult *res, void *data);
typedef struct pgm_sql pgm_sql_t;
pgm_sql_t *pgm_sql_begin(pgm_step_t *s, bool source, const char *purpose, const char *what, const char *hint);
void pgm_sql_add(pgm_sql_t *q, const char *sql, pgm_sql_row_cb cb, void *data);
void pgm_sql_add_params(pgm_sql_t *q, const char *sql, int nparams, const char *const *params,
                        pgm_sql_row_cb cb, void *data);
/* run; then(s) after the last statement succeeded */
void pgm_sql_run(pgm_sql_t *q, void (*then)(pgm_step_t *s));
/*
 * Instead of failing the step, hand an error to cb (the script is over and
 * its connection closed); cb must end the step or go on with its work.
 */
typedef void (*pgm_sql_error_cb)(pgm_step_t *s, const char *what, const char *hint, const pgm_pg_error_t *err,
                                 void *data);
void pgm_sql_on_error(pgm_sql_t *q, pgm_sql_error_cb cb, void *data);

#endif
