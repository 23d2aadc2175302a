/*
 * store.h — durable job state: state.json (atomic replace) and
 * secrets.json (0600, the DSNs with passwords, never shown).
 */
#ifndef PGM_STORE_H
#define PGM_STORE_H

#include "common/util.h"
#include "fsm/job.h"

#define PGM_STATE_VERSION 1

/* the job as state.json holds it (no secrets) */
cJSON *pgm_store_job_json(const pgm_job_t *job);
bool pgm_store_save(const pgm_job_t *job) PGM_MUST_CHECK;
/*
 * "could not write \"PATH\": SYSTEM ERROR" of the last pgm_store_save that
 * failed (a static buffer, good until the next failure), for the errors
 * that tell the operator why a change was not made
 */
const char *pgm_store_error(void);
bool pgm_store_save_secrets(const pgm_job_t *job) PGM_MUST_CHECK;
/*
 * Read state_dir/<name>: returns a job (runtime fields unset) or NULL with
 * *err (malloc'd).
 */
pgm_job_t *pgm_store_load(const char *dir, char **err);

#endif
