/*
 * pgbouncer.h — pgbouncer's admin console (PAUSE, RELOAD, RESUME, SHOW
 * DATABASES) and the include file pgmover owns (pgbouncer.c,
 * pgbouncer_file.c)
 */
#ifndef PGM_PGBOUNCER_H
#define PGM_PGBOUNCER_H

#include "pipeline/cutover/flow.h"

/* ---- pgbouncer (pgbouncer.c) ---- */

bool pgm_pgb_configured(pgm_job_t *job);
/* this flow sent PAUSE (it may have taken effect) and has not resumed since */
bool pgm_pgb_paused(pgm_flow_t *f);
/* SHOW DATABASES has the entry; the include file has it; back the file up once */
void pgm_pgb_check(pgm_flow_t *f, void (*then)(pgm_flow_t *f));
void pgm_pgb_pause(pgm_flow_t *f, void (*then)(pgm_flow_t *f));
void pgm_pgb_resume(pgm_flow_t *f, void (*then)(pgm_flow_t *f));
/* point the entry at the target (or back at the original), RELOAD, check */
void pgm_pgb_switch(pgm_flow_t *f, bool to_target, void (*then)(pgm_flow_t *f));
/*
 * Best effort, for undo paths; never fails: the original entry back and
 * RELOAD (when original), then RESUME.
 */
void pgm_pgb_restore(pgm_flow_t *f, bool original, void (*then)(pgm_flow_t *f));
/* a backup of the include file is recorded: a cutover reached pgbouncer */
bool pgm_pgb_backup_live(pgm_job_t *job);
/* remove the backup of the include file (finish, rollback) */
void pgm_pgb_cleanup(pgm_flow_t *f);

/*
 * The entry line rewritten: host, port, dbname, user and password from the
 * DSN, other parameters kept. Returns the whole new file (malloc'd), or NULL
 * and *err when the entry is not in it.
 */
char *pgm_pgb_rewrite(const char *file, const char *database, const char *dsn, char **err);
/* read a text file (malloc'd), or NULL and *err */
char *pgm_pgb_read(const char *path, char **err);
/* replace path atomically, with the owner and mode of `like` (0600 if it is missing) */
bool pgm_pgb_write_like(const char *path, const char *like, const char *data, char **err);

#endif
