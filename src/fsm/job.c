/*
 * job.c — a job's own bookkeeping outside the driver: warnings, events for
 * whoever the host has listening, and freeing.
 */
#include "common/json.h"
#include "common/log.h"
#include "common/redact.h"
#include "common/util.h"
#include "fsm/job.h"
#include "pg/dsn.h"

#include <stdlib.h>
#include <string.h>

/* hand an event to the host's listener (the daemon's watchers); takes it */
void
pgm_job_emit(pgm_job_t *job, cJSON *event)
{
	if (job->host && job->host->on_event)
		job->host->on_event(job->host, job, event);
	cJSON_Delete(event);
}

void
pgm_job_emit_progress(pgm_job_t *job)
{
	cJSON *ev = cJSON_CreateObject();

	cJSON_AddStringToObject(ev, "event", "progress");
	cJSON_AddStringToObject(ev, "job", job->name);
	cJSON_AddItemToObject(ev, "status", pgm_job_status(job));
	pgm_job_emit(job, ev);
}

/* a and b differ, NULL being a value of its own */
static bool
differ(const char *a, const char *b)
{
	return (a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0);
}

/* the members of a report's array that do not match ("match": false) */
static cJSON *
mismatched(const cJSON *items)
{
	cJSON *out = cJSON_CreateArray();
	const cJSON *it;

	cJSON_ArrayForEach (it, items)
		if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "match")))
			cJSON_AddItemToArray(out, cJSON_Duplicate(it, 1));
	return out;
}

void
pgm_job_set_verify(pgm_job_t *job, cJSON *report)
{
	const cJSON *old = job->verify;

	if (old != NULL && pgm_json_num(old, "mismatches", 0) > 0) {
		cJSON *kept = cJSON_CreateObject(),
		      *list = cJSON_GetObjectItemCaseSensitive(job->facts, "verifications_failed");
		const cJSON *schema = cJSON_GetObjectItemCaseSensitive(old, "schema");

		pgm_json_add_copy(kept, "at", cJSON_GetObjectItemCaseSensitive(old, "at"));
		pgm_json_add_copy(kept, "mismatches", cJSON_GetObjectItemCaseSensitive(old, "mismatches"));
		cJSON_AddItemToObject(kept, "tables", mismatched(cJSON_GetObjectItemCaseSensitive(old, "tables")));
		cJSON_AddItemToObject(kept, "sequences",
				      mismatched(cJSON_GetObjectItemCaseSensitive(old, "sequences")));
		if (cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(schema, "differences")) > 0)
			pgm_json_add_copy(pgm_json_obj(kept, "schema"), "differences",
					  cJSON_GetObjectItemCaseSensitive(schema, "differences"));
		if (!cJSON_IsArray(list)) {
			list = cJSON_CreateArray();
			pgm_json_set(job->facts, "verifications_failed", list);
		}
		cJSON_AddItemToArray(list, kept);
		while (cJSON_GetArraySize(list) > PGM_VERIFY_HISTORY) {
			cJSON_DeleteItemFromArray(list, 0);
			pgm_json_set_num(job->facts, "verifications_failed_omitted",
					 pgm_json_num(job->facts, "verifications_failed_omitted", 0) + 1);
		}
	}
	cJSON_Delete(job->verify);
	job->verify = report;
}

void
pgm_job_set_progress(pgm_job_t *job, cJSON *p)
{
	bool moved = p != NULL && (differ(pgm_json_str(job->progress, "phase"), pgm_json_str(p, "phase")) ||
				   differ(pgm_json_str(job->progress, "name"), pgm_json_str(p, "name")));

	cJSON_Delete(job->progress);
	job->progress = p;
	if (moved)
		pgm_job_emit_progress(job);
}

/*
 * Keep a warning on the job (status shows them all) and log it; the same
 * message twice is noise, so only the first is kept.
 */
void
pgm_job_warn(pgm_job_t *job, const char *given_message, const char *given_hint)
{
	cJSON *w = cJSON_CreateObject(), *ev;
	char ts[40];
	const cJSON *it;
	char *message = pgm_redact(given_message), *hint = pgm_redact(given_hint);

	/* the same warning twice is noise: keep the first */
	cJSON_ArrayForEach (it, job->warnings) {
		const char *m = cJSON_GetStringValue(cJSON_GetObjectItem(it, "message"));
		if (m && strcmp(m, message) == 0) {
			cJSON_Delete(w);
			free(message);
			free(hint);
			return;
		}
	}
	pgm_format_time(pgm_now_ms(), ts, sizeof(ts));
	cJSON_AddStringToObject(w, "message", message);
	if (hint)
		cJSON_AddStringToObject(w, "hint", hint);
	cJSON_AddStringToObject(w, "at", ts);
	cJSON_AddItemToArray(job->warnings, w);
	pgm_warning("job %s: %s%s%s", job->name, message, hint ? "; hint: " : "", hint ? hint : "");
	ev = cJSON_CreateObject();
	cJSON_AddStringToObject(ev, "event", "warning");
	cJSON_AddStringToObject(ev, "job", job->name);
	cJSON_AddStringToObject(ev, "at", ts);
	cJSON_AddItemToObject(ev, "warning", cJSON_Duplicate(w, 1));
	pgm_job_emit(job, ev);
	free(message);
	free(hint);
}

void
pgm_job_unwarn(pgm_job_t *job, const char *given_message)
{
	char *message = pgm_redact(given_message);
	cJSON *it;

	cJSON_ArrayForEach (it, job->warnings) {
		const char *m = cJSON_GetStringValue(cJSON_GetObjectItem(it, "message"));

		if (m && strcmp(m, message) == 0) {
			cJSON_Delete(cJSON_DetachItemViaPointer(job->warnings, it));
			break;
		}
	}
	free(message);
}

void
pgm_job_learn_secrets(const pgm_job_t *job)
{
	if (pgm_job_source_file(job) == NULL)
		pgm_dsn_learn_secret(job->source_dsn);
	pgm_dsn_learn_secret(job->target_dsn);
}

bool
pgm_job_traffic_moved(const pgm_job_t *job)
{
	const cJSON *done = cJSON_GetObjectItem(cJSON_GetObjectItem(job->facts, "cutover"), "done");
	const char *pgb = pgm_json_str(job->options, "pgbouncer_admin");

	if (cJSON_GetObjectItem(job->facts, "traffic_moved_at"))
		return true;
	/* a job recorded before the fact existed: the stages it finished say it */
	return cJSON_GetObjectItem(done, "pgbouncer:switch") != NULL ||
	       ((pgb == NULL || pgb[0] == '\0') && cJSON_GetObjectItem(done, "hook:cutover_command") != NULL);
}

/* free the job; the DSNs are wiped first */
void
pgm_job_free(pgm_job_t *job)
{
	if (job == NULL)
		return;
	free(job->name);
	free(job->method);
	if (job->source_dsn)
		memset(job->source_dsn, 0, strlen(job->source_dsn));
	if (job->target_dsn)
		memset(job->target_dsn, 0, strlen(job->target_dsn));
	free(job->source_dsn);
	free(job->target_dsn);
	free(job->source_display);
	free(job->target_display);
	free(job->dir);
	cJSON_Delete(job->options);
	cJSON_Delete(job->facts);
	cJSON_Delete(job->artifacts);
	cJSON_Delete(job->progress);
	cJSON_Delete(job->error);
	cJSON_Delete(job->verify);
	cJSON_Delete(job->warnings);
	free(job);
}

/* "file:/path", "file:///path" or "/path": a pg_dump archive (heroku pg:backups:download) */
const char *
pgm_source_file(const char *source)
{
	if (strncmp(source, "file://", 7) == 0)
		return source + 7;
	if (strncmp(source, "file:", 5) == 0)
		return source + 5;
	if (source[0] == '/')
		return source;
	return NULL;
}

const char *
pgm_job_source_file(const pgm_job_t *job)
{
	return pgm_source_file(job->source_dsn);
}

char *
pgm_source_display(const char *source)
{
	const char *path = pgm_source_file(source);

	return path ? pgm_asprintf("file:%s", path) : pgm_dsn_masked(source);
}
