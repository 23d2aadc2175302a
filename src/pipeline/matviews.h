/*
 * matviews.h — the materialized views populated on the source, refreshed
 * on the target: a schema-only copy (the copy engine's, pglogical's) makes
 * them WITH NO DATA, and a query of an unpopulated one fails
 */
#ifndef PGM_MATVIEWS_H
#define PGM_MATVIEWS_H

#include "pipeline/sql.h"

/*
 * The source's populated materialized views, quoted, one a row, each after
 * those it reads (directly or through views); extension members and
 * pgmover's capture left out.
 */
extern const char *const pgm_matviews_sql;

/* REFRESH each of names[0..n) on the target, in that order, then `then` */
void pgm_matviews_refresh_names(pgm_step_t *s, char *const *names, int n, pgm_step_then_fn then, void *data);
/* read them on the source now, then refresh them on the target */
void pgm_matviews_refresh(pgm_step_t *s, pgm_step_then_fn then, void *data);

#endif
