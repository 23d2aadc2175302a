/*
 * sql.h — statements run one after another on one connection of a step
 */
#ifndef PGM_SQL_H
#define PGM_SQL_H

#include "fsm/job.h"

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
/* run; then(s, data) after the last statement succeeded (then may be NULL: nothing follows) */
void pgm_sql_run(pgm_sql_t *q, pgm_step_then_fn then, void *data);
/*
 * Instead of failing the step, hand an error to cb (the script is over and
 * its connection closed); cb must end the step or go on with its work.
 */
typedef void (*pgm_sql_error_cb)(pgm_step_t *s, const char *what, const char *hint, const pgm_pg_error_t *err,
                                 void *data);
void pgm_sql_on_error(pgm_sql_t *q, pgm_sql_error_cb cb, void *data);
/*
 * From a row callback only: stop the script after this statement, as if it
 * had failed with this error (the script's error handler runs, or the step
 * fails). For a change the next statements would make that could not be
 * recorded first.
 */
void pgm_sql_abort(const char *message, const char *detail, const char *hint);
/*
 * From a row callback: a (the result of pgm_artifact_record) is NULL, so
 * stop the script before `change`; returns whether a was recorded.
 */
bool pgm_sql_record(pgm_step_t *s, cJSON *a, const char *change);

#endif
