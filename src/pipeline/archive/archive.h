/*
 * archive.h — a pg_dump custom-format file (heroku pg:backups:download's
 * latest.dump) as the source: inspected, restored, verified by counts
 */
#ifndef PGM_ARCHIVE_H
#define PGM_ARCHIVE_H

#include "fsm/job.h"

void pgm_archive_inspect(pgm_step_t *s, void (*then)(pgm_step_t *s));
void pgm_archive_restore(pgm_step_t *s, const char *label, void (*then)(pgm_step_t *s));
void pgm_archive_verify(pgm_step_t *s);

#endif
