/*
 * store.c — durable job state. state.json is rewritten on every transition
 * and checkpoint by pgm_file_replace: a new file, fsync it, rename it over
 * the old one, fsync the directory, the way PostgreSQL writes pg_control.
 * The file is fsync'd before the rename so the rename never names data
 * that is not on disk yet, and the directory after it so the rename itself
 * survives a crash: a crash leaves the old state.json or the new one,
 * whole, never a torn one. Passwords live apart in secrets.json, readable
 * by the daemon's user only and written once, so the file rewritten all
 * the time holds none.
 */
#include "fsm/store.h"
#include "common/inject.h"
#include "common/json.h"
#include "common/log.h"
#include "common/redact.h"
#include "pg/dsn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The job as state.json holds it: what a restart needs, no secrets (source
 * and target as displayed, passwords masked), nothing of the runtime. The
 * last transition is stored as {event, to, step} rather than a row number,
 * so that it still finds its row after rows are added to the table;
 * failed_in, in state failed only, says what retry goes back to.
 */
cJSON *
pgm_store_job_json(const pgm_job_t *job)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddNumberToObject(o, "version", PGM_STATE_VERSION);
	cJSON_AddStringToObject(o, "name", job->name);
	cJSON_AddStringToObject(o, "method", job->method);
	cJSON_AddStringToObject(o, "source", job->source_display);
	cJSON_AddStringToObject(o, "target", job->target_display);
	pgm_json_add_copy(o, "options", job->options);
	cJSON_AddStringToObject(o, "state", pgm_state_name(job->state));
	pgm_json_add_time_or_null(o, "created_at", job->created_ms);
	pgm_json_add_time_or_null(o, "since", job->since_ms);
	cJSON_AddItemToObject(o, "last_transition", pgm_fsm_row_json(job->last_row));
	if (job->state == PGM_ST_FAILED) {
		cJSON *ff = cJSON_AddObjectToObject(o, "failed_in");
		cJSON_AddStringToObject(ff, "state", pgm_state_name(job->failed_from));
		if (job->failed_row >= 0) {
			const pgm_transition_t *t = &pgm_transitions[job->failed_row];
			cJSON_AddStringToObject(ff, "event", pgm_event_name(t->event));
			cJSON_AddStringToObject(ff, "step", t->step_name);
		}
	}
	pgm_json_add_copy(o, "facts", job->facts);
	pgm_json_add_copy(o, "artifacts", job->artifacts);
	pgm_json_add_copy(o, "progress", job->progress);
	pgm_json_add_copy(o, "error", job->error);
	pgm_json_add_copy(o, "verify", job->verify);
	pgm_json_add_copy(o, "warnings", job->warnings);
	/* what servers and hooks said (errors, warnings, findings) may quote a DSN */
	pgm_redact_json(cJSON_GetObjectItem(o, "facts"));
	pgm_redact_json(cJSON_GetObjectItem(o, "progress"));
	pgm_redact_json(cJSON_GetObjectItem(o, "error"));
	pgm_redact_json(cJSON_GetObjectItem(o, "verify"));
	pgm_redact_json(cJSON_GetObjectItem(o, "warnings"));
	pgm_json_add_time_or_null(o, "freeze_started_at", job->freeze_started_ms);
	pgm_json_add_time_or_null(o, "rollback_deadline", job->rollback_deadline_ms);
	return o;
}

/* the system error of the last pgm_store_save that failed */
static char last_error[512] = "state.json could not be written";

const char *
pgm_store_error(void)
{
	return last_error;
}

/*
 * Write state.json, the whole job each time, so the file is always one
 * consistent snapshot. On false (logged) the old file normally stands;
 * only when the directory fsync alone failed is the new one in place, with
 * no guarantee that it survives a crash. Callers take either as not saved.
 */
bool
pgm_store_save(const pgm_job_t *job)
{
	cJSON *o = pgm_store_job_json(job);
	char *text = cJSON_Print(o);
	char *path = pgm_asprintf("%s/state.json", job->dir);
	bool ok;

	if (PGM_INJECT("store.save")) {
		errno = ENOSPC;
		ok = false;
	} else {
		ok = pgm_file_replace(path, text, strlen(text), 0600);
	}
	if (!ok) {
		snprintf(last_error, sizeof(last_error), "could not write \"%s\": %s", path, strerror(errno));
		pgm_error("%s", last_error);
	}
	free(path);
	free(text);
	cJSON_Delete(o);
	return ok;
}

/*
 * Write secrets.json: the full source and target DSNs, 0600, once at
 * create and before state.json (job_new says why). The printed text is
 * wiped before it is freed; cJSON's own copies are not.
 */
bool
pgm_store_save_secrets(const pgm_job_t *job)
{
	cJSON *o = cJSON_CreateObject();
	char *text, *path = pgm_asprintf("%s/secrets.json", job->dir);
	bool ok;

	cJSON_AddStringToObject(o, "source", job->source_dsn);
	cJSON_AddStringToObject(o, "target", job->target_dsn);
	text = cJSON_Print(o);
	ok = pgm_file_replace(path, text, strlen(text), 0600);
	if (!ok)
		pgm_error("could not write \"%s\": %s", path, strerror(errno));
	/* scrub the copy that held passwords */
	memset(text, 0, strlen(text));
	free(text);
	free(path);
	cJSON_Delete(o);
	return ok;
}

/*
 * The row a stored {event, to, step} names, or -1 when the table has none
 * (then there is no step to resume or retry). "to" and "step" are matched
 * when present; failed_in has no "to". Rows alike in what is stored run
 * the same step function (true of today's table), so the first serves.
 */
static int
find_row(const cJSON *lt)
{
	const char *ev = cJSON_GetStringValue(cJSON_GetObjectItem(lt, "event"));
	const char *to = cJSON_GetStringValue(cJSON_GetObjectItem(lt, "to"));
	const char *step = cJSON_GetStringValue(cJSON_GetObjectItem(lt, "step"));
	pgm_event_t e;
	pgm_state_t s;

	if (!ev || !pgm_event_parse(ev, &e))
		return -1;
	if (to && !pgm_state_parse(to, &s))
		return -1;
	for (int i = 0; i < pgm_transitions_count; i++) {
		const pgm_transition_t *t = &pgm_transitions[i];
		if (t->event == e && (!to || t->to == s) && (!step || strcmp(step, t->step_name) == 0))
			return i;
	}
	return -1;
}

/*
 * Detach key from o, no copy: NULL when missing or null, or an empty array
 * for the lists the job always has (artifacts, warnings).
 */
static cJSON *
take(cJSON *o, const char *key, bool want_array)
{
	cJSON *v = cJSON_DetachItemFromObject(o, key);

	if (v == NULL || cJSON_IsNull(v)) {
		cJSON_Delete(v);
		return want_array ? cJSON_CreateArray() : NULL;
	}
	return v;
}

/*
 * Read a job back from dir: state.json of this PGM_STATE_VERSION and its
 * DSNs from secrets.json. A job whose secrets are missing or unreadable is
 * refused rather than loaded unable to connect. Only the durable fields
 * are set; the caller looks up ops and attaches the job. Options and facts
 * come back as empty objects when missing. The secrets text is wiped
 * before it is freed.
 */
pgm_job_t *
pgm_store_load(const char *dir, char **err)
{
	char *path = pgm_asprintf("%s/state.json", dir);
	char *spath = pgm_asprintf("%s/secrets.json", dir);
	size_t len = 0;
	char *text = pgm_file_read(path, 64 << 20, &len);
	char *stext = NULL;
	cJSON *o = NULL, *so = NULL;
	pgm_job_t *job = NULL;
	const char *name, *method, *state, *src, *dst;

	*err = NULL;
	if (text == NULL) {
		*err = pgm_asprintf("could not read \"%s\": %s", path, strerror(errno));
		goto cleanup;
	}
	/* what is wrong, said so that the operator knows whether the file was cut short or overwritten */
	if (len == 0) {
		*err = pgm_asprintf("\"%s\" is empty (0 bytes): it was truncated", path);
		goto cleanup;
	}
	o = cJSON_ParseWithLength(text, len);
	if (!cJSON_IsObject(o)) {
		const char *at = o ? NULL : cJSON_GetErrorPtr();

		if (at && at >= text && at <= text + len)
			*err = pgm_asprintf("\"%s\" is not valid JSON (%zu bytes, unreadable from byte %zu on): it "
					    "was cut short or overwritten",
					    path, len, (size_t) (at - text));
		else
			*err = pgm_asprintf("\"%s\" is not a JSON object: it was overwritten", path);
		goto cleanup;
	}
	/* another version's layout is refused, not guessed at */
	if (cJSON_GetNumberValue(cJSON_GetObjectItem(o, "version")) != PGM_STATE_VERSION) {
		*err = pgm_asprintf("\"%s\" has an unsupported version (expected %d)", path, PGM_STATE_VERSION);
		goto cleanup;
	}
	stext = pgm_file_read(spath, 1 << 20, NULL);
	so = stext ? cJSON_Parse(stext) : NULL;
	name = cJSON_GetStringValue(cJSON_GetObjectItem(o, "name"));
	method = cJSON_GetStringValue(cJSON_GetObjectItem(o, "method"));
	state = cJSON_GetStringValue(cJSON_GetObjectItem(o, "state"));
	src = cJSON_GetStringValue(cJSON_GetObjectItem(so, "source"));
	dst = cJSON_GetStringValue(cJSON_GetObjectItem(so, "target"));
	if (!name || !method || !state) {
		*err = pgm_asprintf("\"%s\" lacks name, method or state", path);
		goto cleanup;
	}
	if (!src || !dst) {
		*err = pgm_asprintf("\"%s\" is missing or unreadable; the job's connection strings are lost", spath);
		goto cleanup;
	}
	job = pgm_calloc(1, sizeof(*job));
	job->name = pgm_strdup(name);
	job->method = pgm_strdup(method);
	job->source_dsn = pgm_strdup(src);
	job->target_dsn = pgm_strdup(dst);
	job->source_display = pgm_source_display(src);
	job->target_display = pgm_dsn_masked(dst);
	if (!pgm_state_parse(state, &job->state)) {
		*err = pgm_asprintf("\"%s\": unknown state \"%s\"", path, state);
		pgm_job_free(job);
		job = NULL;
		goto cleanup;
	}
	job->created_ms = pgm_parse_time(cJSON_GetStringValue(cJSON_GetObjectItem(o, "created_at")));
	job->since_ms = pgm_parse_time(cJSON_GetStringValue(cJSON_GetObjectItem(o, "since")));
	job->freeze_started_ms = pgm_parse_time(cJSON_GetStringValue(cJSON_GetObjectItem(o, "freeze_started_at")));
	job->rollback_deadline_ms = pgm_parse_time(cJSON_GetStringValue(cJSON_GetObjectItem(o, "rollback_deadline")));
	/* a row the table no longer has gives -1: the job stays put, nothing resumes */
	job->last_row = find_row(cJSON_GetObjectItem(o, "last_transition"));
	job->failed_row = -1;
	job->failed_from = PGM_ST_CREATED;
	/* where a failed job failed: the state retry returns to, the row it reruns */
	{
		cJSON *ff = cJSON_GetObjectItem(o, "failed_in");
		const char *fs = cJSON_GetStringValue(cJSON_GetObjectItem(ff, "state"));
		if (fs)
			pgm_state_parse(fs, &job->failed_from);
		if (ff)
			job->failed_row = find_row(ff);
	}
	job->options = take(o, "options", false);
	if (job->options == NULL)
		job->options = cJSON_CreateObject();
	job->facts = take(o, "facts", false);
	if (job->facts == NULL)
		job->facts = cJSON_CreateObject();
	job->artifacts = take(o, "artifacts", true);
	job->progress = take(o, "progress", false);
	job->error = take(o, "error", false);
	job->verify = take(o, "verify", false);
	job->warnings = take(o, "warnings", true);
	job->dir = pgm_strdup(dir);
cleanup:
	if (stext)
		memset(stext, 0, strlen(stext));
	free(stext);
	cJSON_Delete(so);
	cJSON_Delete(o);
	free(text);
	free(path);
	free(spath);
	return job;
}
