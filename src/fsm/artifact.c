/*
 * artifact.c — job->artifacts: every object pgmover creates or setting it
 * changes on a server, recorded (and made durable) before the change, so
 * that abort, rollback and finish undo exactly those and nothing else.
 */
#include "fsm/artifact.h"
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"

#include <stdio.h>
#include <string.h>

static const char *const status_names[] = {"creating", "created", "found", "dropping", "dropped"};

const char *
pgm_artifact_status_name(pgm_artifact_status_t st)
{
	return status_names[st];
}

static bool
str_eq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

pgm_artifact_status_t
pgm_artifact_status(const cJSON *a)
{
	const char *st = pgm_json_str(a, "status");

	for (int i = 0; st && i < (int) (sizeof(status_names) / sizeof(status_names[0])); i++)
		if (strcmp(st, status_names[i]) == 0)
			return (pgm_artifact_status_t) i;
	/* a record of an older state file: undone or not */
	return cJSON_IsTrue(cJSON_GetObjectItem(a, "undone")) ? PGM_ART_DROPPED : PGM_ART_CREATED;
}

bool
pgm_artifact_live(const cJSON *a)
{
	pgm_artifact_status_t st;

	if (a == NULL)
		return false;
	st = pgm_artifact_status(a);
	return st == PGM_ART_CREATING || st == PGM_ART_CREATED || st == PGM_ART_DROPPING;
}

static bool
matches(const cJSON *a, const char *kind, const char *side, const char *name)
{
	return str_eq(pgm_json_str(a, "kind"), kind) && (side == NULL || str_eq(pgm_json_str(a, "side"), side)) &&
	       (name == NULL || str_eq(pgm_json_str(a, "name"), name));
}

cJSON *
pgm_artifact_find(pgm_job_t *job, const char *kind, const char *side, const char *name)
{
	cJSON *a, *found = NULL;

	cJSON_ArrayForEach (a, job->artifacts) {
		if (matches(a, kind, side, name))
			found = a;
	}
	return found;
}

cJSON *
pgm_artifact_find_live(pgm_job_t *job, const char *kind, const char *side, const char *name)
{
	cJSON *a;

	cJSON_ArrayForEach (a, job->artifacts) {
		if (matches(a, kind, side, name) && pgm_artifact_live(a))
			return a;
	}
	return NULL;
}

/*
 * "undone" (and "undone_at") is what status showed of a record before the
 * registry had a status; the protocol only ever adds fields, so it stays:
 * true once dropped, false again if the object is made anew.
 */
static void
set_undone(cJSON *a, pgm_artifact_status_t st)
{
	if (st == PGM_ART_DROPPED) {
		pgm_json_set(a, "undone", cJSON_CreateTrue());
		pgm_json_set_time(a, "undone_at", pgm_now_ms());
	} else if (cJSON_GetObjectItem(a, "undone")) {
		pgm_json_set(a, "undone", cJSON_CreateFalse());
	}
}

cJSON *
pgm_artifact_record(pgm_job_t *job, const char *kind, const char *side, const char *name, pgm_artifact_status_t st,
		    cJSON *extra)
{
	cJSON *a = cJSON_CreateObject();
	cJSON *it;

	pgm_json_set_str(a, "kind", kind);
	if (side)
		pgm_json_set_str(a, "side", side);
	if (name)
		pgm_json_set_str(a, "name", name);
	pgm_json_set_str(a, "status", status_names[st]);
	while (extra && (it = extra->child) != NULL) {
		cJSON_DetachItemViaPointer(extra, it);
		if (cJSON_GetObjectItem(a, it->string) == NULL)
			cJSON_AddItemToObject(a, it->string, it);
		else
			cJSON_Delete(it);
	}
	cJSON_Delete(extra);
	pgm_json_set_time(a, "at", pgm_now_ms());
	cJSON_AddItemToArray(job->artifacts, a);
	if (!pgm_job_save(job)) {
		pgm_error("job %s: could not record %s \"%s\" in state.json before making it: the change is not made",
			  job->name, kind, name ? name : "");
		cJSON_Delete(cJSON_DetachItemViaPointer(job->artifacts, a));
		return NULL;
	}
	return a;
}

bool
pgm_artifact_set(pgm_job_t *job, cJSON *a, pgm_artifact_status_t st)
{
	char key[32];
	pgm_artifact_status_t old = pgm_artifact_status(a);
	bool had_status = pgm_json_str(a, "status") != NULL;
	cJSON *old_undone = cJSON_Duplicate(cJSON_GetObjectItem(a, "undone"), 0);

	pgm_json_set_str(a, "status", status_names[st]);
	snprintf(key, sizeof(key), "%s_at", status_names[st]);
	pgm_json_set_time(a, key, pgm_now_ms());
	set_undone(a, st);
	if (!pgm_job_save(job)) {
		/* memory stays what the disk says */
		if (had_status)
			pgm_json_set_str(a, "status", status_names[old]);
		else
			cJSON_DeleteItemFromObject(a, "status");
		cJSON_DeleteItemFromObject(a, key);
		if (old_undone) {
			pgm_json_set(a, "undone", old_undone);
		} else {
			cJSON_DeleteItemFromObject(a, "undone");
			cJSON_DeleteItemFromObject(a, "undone_at");
		}
		return false;
	}
	cJSON_Delete(old_undone);
	return true;
}

static void
set_or_warn(pgm_job_t *job, cJSON *a, pgm_artifact_status_t st)
{
	if (!pgm_artifact_set(job, a, st))
		pgm_job_warn(job, "the state of what pgmover created could not be saved: it is undone again if needed",
			     pgm_unsaved_hint());
}

void
pgm_artifact_created(pgm_job_t *job, cJSON *a)
{
	set_or_warn(job, a, PGM_ART_CREATED);
}

void
pgm_artifact_dropped(pgm_job_t *job, cJSON *a)
{
	set_or_warn(job, a, PGM_ART_DROPPED);
}
