/*
 * driver.c — the single driver of the state machine. It finds the row for
 * an event, logs the row's comment, persists the new state, writes the
 * audit line, tells the watchers, and starts the row's step from a fresh
 * stack. Steps report back with pgm_step_done / pgm_step_fail; whatever a
 * step opened is closed when it ends, so no callback outlives it.
 */
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "fsm/job.h"
#include "fsm/step.h"
#include "fsm/store.h"
#include "pgmover/protocol.h"

#include <stdlib.h>
#include <string.h>

static void kick_cb(uv_timer_t *t);

void
pgm_job_attach(pgm_job_t *job, pgm_host_t *h)
{
	job->host = h;
	job->pending = PGM_EV__NONE;
	job->kick = pgm_malloc(sizeof(uv_timer_t));
	uv_timer_init(h->loop, job->kick);
	job->kick->data = job;
	job->next = h->jobs;
	h->jobs = job;
}

/* run the step of the row that led to the current state (after a restart) */
void
pgm_job_schedule_resume(pgm_job_t *job)
{
	if (job->last_row < 0 || pgm_state_is_terminal(job->state))
		return;
	job->kick_start_step = true;
	uv_timer_start(job->kick, kick_cb, 0, 0);
}

static void
step_start(pgm_job_t *job)
{
	const pgm_transition_t *t;
	pgm_step_t *s;

	if (job->last_row < 0 || job->host->stopping)
		return;
	t = &pgm_transitions[job->last_row];
	s = pgm_calloc(1, sizeof(*s));
	s->job = job;
	s->row = job->last_row;
	s->started_mono = pgm_mono_ms();
	job->step = s;
	pgm_debug("job %s: step %s starts in state %s", job->name, t->step_name, pgm_state_name(job->state));
	t->step(s);
}

static void
step_cancel(pgm_job_t *job)
{
	if (job->step) {
		pgm_debug("job %s: cancelling step %s", job->name, pgm_transitions[job->step->row].step_name);
		pgm_step_free(job->step);
		job->step = NULL;
	}
}

static void
kick_cb(uv_timer_t *t)
{
	pgm_job_t *job = t->data;

	if (job->ended) {
		pgm_step_free(job->ended);
		job->ended = NULL;
	}
	if (job->pending != PGM_EV__NONE) {
		pgm_event_t ev = job->pending;
		const char *code;
		char *msg = NULL, *hint = NULL;

		job->pending = PGM_EV__NONE;
		if (!pgm_job_fire(job, ev, NULL, &code, &msg, &hint)) {
			pgm_error("job %s: the step raised \"%s\" in state %s: %s", job->name, pgm_event_name(ev),
			          pgm_state_name(job->state), msg);
			free(msg);
			free(hint);
		}
		return;
	}
	if (job->kick_start_step) {
		job->kick_start_step = false;
		step_start(job);
	}
}

static void
add_time_field(cJSON *o, const char *key, int64_t ms)
{
	char ts[40];

	pgm_format_time(ms, ts, sizeof(ts));
	cJSON_AddStringToObject(o, key, ts);
}

bool
pgm_job_fire(pgm_job_t *job, pgm_event_t ev, const pgm_peer_t *peer, const char **code, char **message,
             char **hint)
{
	int row = pgm_fsm_decide(job->state, job->failed_from, ev);
	const pgm_transition_t *t;
	pgm_state_t from = job->state, to;
	int step_row;
	/* what to restore if the new state cannot be made durable */
	pgm_state_t old_failed_from = job->failed_from;
	int old_last_row = job->last_row, old_failed_row = job->failed_row;
	int64_t old_since = job->since_ms;
	cJSON *event;

	*message = *hint = NULL;
	if (row < 0) {
		char *allowed = pgm_fsm_allowed_commands(job->state, job->failed_from);
		*code = PGM_ERR_INVALID_STATE;
		*message = pgm_asprintf("job \"%s\" is %s: %s is not possible now", job->name,
		                        pgm_state_name(job->state), pgm_event_name(ev));
		*hint = pgm_asprintf("commands accepted in state %s: %s", pgm_state_name(job->state), allowed);
		free(allowed);
		if (peer)
			pgm_job_audit(job, peer, pgm_event_name(ev), pgm_state_name(from), NULL, "refused: " PGM_ERR_INVALID_STATE);
		return false;
	}
	if (job->host->stopping) {
		*code = PGM_ERR_SHUTTING_DOWN;
		*message = pgm_strdup("pgmoverd is shutting down");
		*hint = pgm_strdup("send the command again once pgmoverd has restarted");
		return false;
	}
	t = &pgm_transitions[row];
	to = t->to;
	step_row = row;
	if (to == PGM_ST__PREVIOUS) {
		to = job->failed_from;
		step_row = job->failed_row;
	}
	if (ev == PGM_EV_ERROR) {
		job->failed_from = from;
		job->failed_row = job->last_row;
	}
	job->state = to;
	job->since_ms = pgm_now_ms();
	job->last_row = step_row;
	if (!pgm_store_save(job)) {
		job->state = from;
		job->since_ms = old_since;
		job->last_row = old_last_row;
		job->failed_from = old_failed_from;
		job->failed_row = old_failed_row;
		*code = PGM_ERR_INTERNAL;
		*message = pgm_asprintf("could not persist the state of job \"%s\"", job->name);
		*hint = pgm_strdup("check free space and permissions of state_dir; the job stays where it was");
		return false;
	}
	/* the old step ends only once the new state is durable */
	step_cancel(job);
	if (ev != PGM_EV_ERROR && job->error && to != PGM_ST_FAILED && (ev == PGM_EV_RETRY || ev == PGM_EV_ABORT)) {
		/* keep the reason in the facts; the job is moving on */
		pgm_json_set(job->facts, "previous_error", job->error);
		job->error = NULL;
	}
	cJSON_Delete(job->progress);
	job->progress = NULL;
	pgm_job_audit(job, peer, pgm_event_name(ev), pgm_state_name(from), pgm_state_name(to), "ok");
	pgm_info("job %s: %s -> %s: %s", job->name, pgm_state_name(from), pgm_state_name(to), t->comment);

	event = cJSON_CreateObject();
	cJSON_AddStringToObject(event, "event", "transition");
	cJSON_AddStringToObject(event, "job", job->name);
	cJSON_AddStringToObject(event, "from", pgm_state_name(from));
	cJSON_AddStringToObject(event, "to", pgm_state_name(to));
	cJSON_AddStringToObject(event, "on", pgm_event_name(ev));
	add_time_field(event, "at", job->since_ms);
	if (to == PGM_ST_FAILED && job->error)
		cJSON_AddItemToObject(event, "error", cJSON_Duplicate(job->error, 1));
	pgm_job_emit(job, event);

	if (step_row >= 0) {
		job->kick_start_step = true;
		uv_timer_start(job->kick, kick_cb, 0, 0);
	}
	return true;
}

bool
pgm_job_save(pgm_job_t *job)
{
	return pgm_store_save(job);
}

void
pgm_job_checkpoint(pgm_job_t *job)
{
	if (!pgm_store_save(job))
		pgm_job_warn(job, "the job's state could not be saved: progress since the last save would be redone after a "
		                  "restart",
		             pgm_unsaved_hint());
}

char *
pgm_unsaved_message(const pgm_job_t *job, const char *change)
{
	return pgm_asprintf("could not record in %s/state.json what %s will change, so it was not done", job->dir,
	                    change);
}

const char *
pgm_unsaved_hint(void)
{
	return "free space in state_dir or fix its permissions (pgmoverd's log has the system error), then retry";
}

void
pgm_step_fail_unsaved(pgm_step_t *s, const char *change)
{
	char *msg = pgm_unsaved_message(s->job, change);

	pgm_step_fail(s, msg, NULL, pgm_unsaved_hint());
	free(msg);
}

/* the step ended: release its resources now, take the event from a fresh stack */
void
pgm_step_done(pgm_step_t *s, pgm_event_t ev)
{
	pgm_job_t *job = s->job;

	if (s->finished || job->step != s)
		return;
	s->finished = true;
	pgm_step_release(s);
	job->step = NULL;
	if (job->ended)
		pgm_step_free(job->ended);
	job->ended = s;
	job->pending = ev;
	uv_timer_start(job->kick, kick_cb, 0, 0);
}

void
pgm_step_fail(pgm_step_t *s, const char *message, const char *detail, const char *hint)
{
	pgm_job_t *job = s->job;
	char ts[40];

	if (s->finished || job->step != s)
		return;
	cJSON_Delete(job->error);
	job->error = cJSON_CreateObject();
	cJSON_AddStringToObject(job->error, "message", message);
	if (detail)
		cJSON_AddStringToObject(job->error, "detail", detail);
	if (hint)
		cJSON_AddStringToObject(job->error, "hint", hint);
	cJSON_AddStringToObject(job->error, "state", pgm_state_name(job->state));
	cJSON_AddStringToObject(job->error, "step", pgm_transitions[s->row].step_name);
	pgm_format_time(pgm_now_ms(), ts, sizeof(ts));
	cJSON_AddStringToObject(job->error, "at", ts);
	pgm_error("job %s: %s failed: %s%s%s%s%s", job->name, pgm_transitions[s->row].step_name, message,
	          detail ? "; detail: " : "", detail ? detail : "", hint ? "; hint: " : "", hint ? hint : "");
	pgm_step_done(s, PGM_EV_ERROR);
}

void
pgm_step_fail_pg(pgm_step_t *s, const char *what, const pgm_pg_error_t *err, const char *hint)
{
	char *msg = pgm_asprintf("%s: %s", what, err->message);
	const char *advice = pgm_pg_error_advice(err);
	char *both = advice && hint ? pgm_asprintf("%s; %s", advice, hint) : NULL;

	pgm_step_fail(s, msg, err->detail, err->hint ? err->hint : both ? both : advice ? advice : hint);
	free(both);
	free(msg);
}

static void
job_kick_closed(uv_handle_t *h)
{
	pgm_job_t *job = h->data;

	free(h);
	pgm_job_free(job);
}

void
pgm_jobs_shutdown(pgm_host_t *h)
{
	pgm_job_t *job = h->jobs;

	h->jobs = NULL;
	while (job) {
		pgm_job_t *next = job->next;

		if (job->step) {
			if (!pgm_state_is_terminal(job->state))
				pgm_info("job %s: stopping step %s; it resumes when pgmoverd starts again", job->name,
				         pgm_transitions[job->step->row].step_name);
			step_cancel(job);
		}
		if (job->ended) {
			pgm_step_free(job->ended);
			job->ended = NULL;
		}
		if (!pgm_store_save(job))
			pgm_error("job %s: could not save its state at shutdown", job->name);
		uv_timer_stop(job->kick);
		uv_close((uv_handle_t *) job->kick, job_kick_closed);
		job = next;
	}
}
