/*
 * status.c — the `status` object of the control protocol, built from the
 * job itself (not from state.json, whose format is the store's business).
 * Its fields are the protocol's: only ever added, never renamed or removed.
 */
#include "common/json.h"
#include "common/settings.h"
#include "common/util.h"
#include "fsm/job.h"
#include "fsm/store.h"

#include <stdlib.h>
#include <string.h>

cJSON *
pgm_job_status(const pgm_job_t *job)
{
	cJSON *o = cJSON_CreateObject();
	const cJSON *lag = cJSON_GetObjectItem(job->facts, "lag");
	char *allowed = pgm_fsm_allowed_commands(job->state, job->failed_from, pgm_job_traffic_moved(job));

	cJSON_AddStringToObject(o, "name", job->name);
	cJSON_AddStringToObject(o, "method", job->method);
	cJSON_AddStringToObject(o, "source", job->source_display);
	cJSON_AddStringToObject(o, "target", job->target_display);
	pgm_json_add_copy(o, "options", job->options);
	/* the same with JSON types ("options" keeps the text form, as it was) */
	cJSON_AddItemToObject(o, "settings", pgm_jobopts_typed(job->options));
	cJSON_AddStringToObject(o, "state", pgm_state_name(job->state));
	pgm_json_add_time_or_null(o, "created_at", job->created_ms);
	pgm_json_add_time_or_null(o, "since", job->since_ms);
	cJSON_AddItemToObject(o, "last_transition", pgm_fsm_row_json(job->last_row));
	if (job->state == PGM_ST_FAILED) {
		cJSON *ff = cJSON_AddObjectToObject(o, "failed_in");
		cJSON_AddStringToObject(ff, "state", pgm_state_name(job->failed_from));
		if (job->failed_row >= 0) {
			cJSON_AddStringToObject(ff, "event", pgm_event_name(pgm_transitions[job->failed_row].event));
			cJSON_AddStringToObject(ff, "step", pgm_transitions[job->failed_row].step_name);
		}
	}
	pgm_json_add_copy(o, "facts", job->facts);
	pgm_json_add_copy(o, "artifacts", job->artifacts);
	pgm_json_add_copy(o, "error", job->error);
	pgm_json_add_copy(o, "verify", job->verify);
	pgm_json_add_copy(o, "warnings", job->warnings);
	pgm_json_add_time_or_null(o, "freeze_started_at", job->freeze_started_ms);
	pgm_json_add_time_or_null(o, "rollback_deadline", job->rollback_deadline_ms);
	pgm_json_add_copy(o, "step", job->progress);
	pgm_json_add_copy(o, "lag_bytes", cJSON_GetObjectItem(lag, "bytes"));
	pgm_json_add_copy(o, "lag_seconds", cJSON_GetObjectItem(lag, "seconds"));
	cJSON_AddStringToObject(o, "allowed_commands", allowed);
	/* the same as an array, for programs (allowed_commands stays, as it was) */
	{
		cJSON *next = cJSON_AddArrayToObject(o, "next_commands");

		for (char *save = NULL, *tok = strtok_r(allowed, ", ", &save); tok && strcmp(tok, "none") != 0;
		     tok = strtok_r(NULL, ", ", &save))
			cJSON_AddItemToArray(next, cJSON_CreateString(tok));
	}
	free(allowed);
	return o;
}
