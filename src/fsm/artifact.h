/*
 * artifact.h — what pgmover creates or changes on the servers, recorded
 * in the job before the change is made
 */
#ifndef PGM_ARTIFACT_H
#define PGM_ARTIFACT_H

#include "fsm/job.h"

/* ---- artifacts (job->artifacts), recorded and saved before the change ---- */

cJSON *pgm_artifact_find(pgm_job_t *job, const char *kind, const char *name);
/* a new active artifact, made durable at once */
cJSON *pgm_artifact_add(pgm_job_t *job, const char *kind, const char *side, const char *name);
void pgm_artifact_undone(pgm_job_t *job, cJSON *a);
bool pgm_artifact_active(const cJSON *a);

#endif
