/*
 * artifact.c — job->artifacts: every object pgmover creates or setting it
 * changes on a server, recorded (and made durable) before the change, so
 * that abort, rollback and finish undo exactly those and nothing else.
 */
#include "fsm/artifact.h"
#include "common/json.h"
#include "common/util.h"

#include <string.h>


bool
pgm_artifact_active(const cJSON *a)
{
	return a != NULL && !cJSON_IsTrue(cJSON_GetObjectItem(a, "undone"));
}

cJSON *
pgm_artifact_find(pgm_job_t *job, const char *kind, const char *name)
{
	cJSON *a;

	cJSON_ArrayForEach(a, job->artifacts)
	{
		const char *k = pgm_json_str(a, "kind"), *n = pgm_json_str(a, "name");

		if (k && strcmp(k, kind) == 0 && pgm_artifact_active(a) && (name == NULL || (n && strcmp(n, name) == 0)))
			return a;
	}
	return NULL;
}

cJSON *
pgm_artifact_add(pgm_job_t *job, const char *kind, const char *side, const char *name)
{
	cJSON *a = cJSON_CreateObject();

	pgm_json_set_str(a, "kind", kind);
	pgm_json_set_str(a, "side", side);
	if (name)
		pgm_json_set_str(a, "name", name);
	pgm_json_set_time(a, "at", pgm_now_ms());
	cJSON_AddItemToArray(job->artifacts, a);
	(void) pgm_job_save(job);
	return a;
}

void
pgm_artifact_undone(pgm_job_t *job, cJSON *a)
{
	pgm_json_set(a, "undone", cJSON_CreateTrue());
	pgm_json_set_time(a, "undone_at", pgm_now_ms());
	(void) pgm_job_save(job);
}

