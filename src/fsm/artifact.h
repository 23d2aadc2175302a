/*
 * artifact.h — the one registry of what pgmover creates or changes on the
 * servers (job->artifacts): objects, settings, hooks that need an undo,
 * files. Each record has one lifecycle:
 *
 *     creating → created | found → dropping → dropped
 *
 * "creating" is recorded, and made durable, before the change is made: if
 * the daemon dies in between, the object may exist and is pgmover's to
 * drop. "found" is an object that was there before pgmover and is never
 * dropped. "dropping" is durable before the drop, "dropped" after. A
 * record that cannot be made durable is taken back and the change must
 * not be made: pgm_artifact_record returns NULL then (logged).
 *
 * abort, rollback and finish undo exactly the live records (creating,
 * created, dropping), newest first, and nothing else. Records of state
 * files written before this registry ({"undone": true} instead of a
 * status) read as created, or dropped when undone.
 */
#ifndef PGM_ARTIFACT_H
#define PGM_ARTIFACT_H

#include "common/util.h"
#include "fsm/job.h"

typedef enum pgm_artifact_status {
	PGM_ART_CREATING,
	PGM_ART_CREATED,
	PGM_ART_FOUND,
	PGM_ART_DROPPING,
	PGM_ART_DROPPED,
} pgm_artifact_status_t;

const char *pgm_artifact_status_name(pgm_artifact_status_t st);

/*
 * Record an object before creating it: {kind, side, name, status, at} plus
 * the fields of extra (taken; may be NULL), made durable. st is CREATING,
 * or FOUND for an object that exists already. Returns the record, or NULL
 * when the save failed (the record is taken back; the caller must not
 * make the change).
 */
cJSON *pgm_artifact_record(pgm_job_t *job, const char *kind, const char *side, const char *name,
			   pgm_artifact_status_t st, cJSON *extra) PGM_MUST_CHECK;
/* move a record on (and stamp <status>_at), made durable; false when the save failed */
bool pgm_artifact_set(pgm_job_t *job, cJSON *a, pgm_artifact_status_t st) PGM_MUST_CHECK;
/*
 * After the change, for the records whose status cannot mislead: a record
 * left "creating" reads as "may exist", one left "dropping" is dropped
 * again, and drops are idempotent. A failed save is a warning on the job.
 */
void pgm_artifact_created(pgm_job_t *job, cJSON *a);
void pgm_artifact_dropped(pgm_job_t *job, cJSON *a);
pgm_artifact_status_t pgm_artifact_status(const cJSON *a);
/* pgmover's and possibly there: creating, created, dropping */
bool pgm_artifact_live(const cJSON *a);

/* the newest record of kind (side, name: NULL matches any), whatever its status */
cJSON *pgm_artifact_find(pgm_job_t *job, const char *kind, const char *side, const char *name);
/* the oldest live record of kind (side, name: NULL matches any) */
cJSON *pgm_artifact_find_live(pgm_job_t *job, const char *kind, const char *side, const char *name);

#endif
