/*
 * fixture_job.h
 *    A job in memory for the unit tests that need one (no daemon, no
 *    server): its state directory is dir, which must exist.
 */
#ifndef PGM_FIXTURE_JOB_H
#define PGM_FIXTURE_JOB_H

#include "fsm/job.h"

/* a dump job "shop" in state created, with empty facts, artifacts and warnings */
pgm_job_t *pgm_fixture_job(const char *dir);

#endif
