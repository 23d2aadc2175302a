/*
 * driver.c — the single driver of the state machine. It finds the row for
 * an event, persists the new state, ends the old step, writes the audit
 * line, logs the row's comment, tells the watchers, and starts the row's
 * step from a fresh stack. Steps report back with pgm_step_done /
 * pgm_step_fail; whatever a step opened is closed when it ends, so no
 * callback outlives it. What must not run on a step's own stack (taking
 * its event, freeing it, starting the next step) runs from the job's kick.
 */
#include "common/json.h"
#include "common/log.h"
#include "common/redact.h"
#include "common/util.h"
#include "fsm/job.h"
#include "fsm/step.h"
#include "fsm/store.h"
#include "pgmover/protocol.h"

#include <stdlib.h>
#include <string.h>

static void kick_cb(uv_timer_t *t);

/* take a new or loaded job into the host: its kick timer, the head of h->jobs */
void
pgm_job_attach(pgm_job_t *job, pgm_host_t *h)
{
	job->host = h;
	pgm_job_learn_secrets(job);
	job->pending = PGM_EV__NONE;
	job->kick = pgm_malloc(sizeof(uv_timer_t));
	uv_timer_init(h->loop, job->kick);
	job->kick->data = job;
	job->next = h->jobs;
	h->jobs = job;
}

/*
 * After a restart, run again the step of the row that led to the current
 * state: state and row are durable, the step's progress is what it
 * checkpointed, so a step must be safe to start over. It starts from the
 * kick, once the loop runs, not while the jobs are still being loaded.
 * Terminal states and a job never started (no row) run nothing.
 */
void
pgm_job_schedule_resume(pgm_job_t *job)
{
	if (job->last_row < 0 || pgm_state_is_terminal(job->state))
		return;
	job->kick_start_step = true;
	uv_timer_start(job->kick, kick_cb, 0, 0);
}

/*
 * Start last_row's step in a new pgm_step_t (from the kick only, never once
 * the daemon stops). The step may end before its function returns; that is
 * safe, pgm_step_done defers the rest to the kick.
 */
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

/*
 * End the running step from outside (a transition moved the job on, or the
 * daemon stops). Everything it opened is closed now, so none of its
 * callbacks fires later, and it raises no event.
 */
static void
step_cancel(pgm_job_t *job)
{
	if (job->step) {
		pgm_debug("job %s: cancelling step %s", job->name, pgm_transitions[job->step->row].step_name);
		pgm_step_free(job->step);
		job->step = NULL;
	}
}

/* a step's end that state.json could not take: the job fails with that reason (kick_cb) */
static void
fail_unrecorded(pgm_job_t *job)
{
	const char *code, *step = job->last_row >= 0 ? pgm_transitions[job->last_row].step_name : "?";
	char *m2 = NULL, *h2 = NULL, ts[40];
	char *message = pgm_asprintf("step %s ended, but that could not be recorded: %s", step, pgm_store_error());

	cJSON_Delete(job->error);
	job->error = cJSON_CreateObject();
	cJSON_AddStringToObject(job->error, "message", message);
	cJSON_AddStringToObject(job->error, "hint", pgm_unsaved_hint());
	cJSON_AddStringToObject(job->error, "state", pgm_state_name(job->state));
	cJSON_AddStringToObject(job->error, "step", step);
	free(message);
	pgm_format_time(pgm_now_ms(), ts, sizeof(ts));
	cJSON_AddStringToObject(job->error, "at", ts);
	if (!pgm_job_fire(job, PGM_EV_ERROR, NULL, &code, &m2, &h2))
		pgm_error("job %s: could not fail the job either: %s", job->name, m2);
	free(m2);
	free(h2);
}

/*
 * The job's kick. First free the step that ended (its callback has
 * returned by now); then take the event it raised (the transition arms
 * the kick again to start the next step), or else start the step that
 * pgm_job_fire or pgm_job_schedule_resume asked for. An event that cannot
 * be taken is logged, and the job stays in its state with no step running.
 */
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
			/*
			 * The step's end could not be recorded (a full state_dir):
			 * the job fails rather than sit with no step running; retry
			 * runs the step again, and a step may always run again.
			 */
			if (ev != PGM_EV_ERROR && strcmp(code, PGM_ERR_INTERNAL) == 0)
				fail_unrecorded(job);
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

/* key: ms as a UTC timestamp (pgm_format_time) */
static void
add_time_field(cJSON *o, const char *key, int64_t ms)
{
	char ts[40];

	pgm_format_time(ms, ts, sizeof(ts));
	cJSON_AddStringToObject(o, key, ts);
}

/*
 * Take event ev in the job's state: the one way a job changes state, for
 * operators' commands (peer set) and for the events steps raise (peer NULL,
 * from the kick).
 *
 * The order is what callers rely on. The new state is made durable in
 * state.json first, so no client is answered, no watcher told and no audit
 * line written for a transition a crash could undo. The old step is
 * cancelled only once that write succeeded: if it fails, every field is
 * restored, the old step keeps running and the job is exactly where it
 * was -- except for ERROR, which stops the job in memory all the same. ERROR remembers the state and row it came from; retry (a row to
 * PGM_ST__PREVIOUS) goes back to that state and reruns that row's step.
 * False, with *code, *message and *hint (malloc'd), when it did not happen.
 */
bool
pgm_job_fire(pgm_job_t *job, pgm_event_t ev, const pgm_peer_t *peer, const char **code, char **message, char **hint)
{
	int row = pgm_fsm_decide(job->state, job->failed_from, pgm_job_traffic_moved(job), ev);
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
		char *allowed = pgm_fsm_allowed_commands(job->state, job->failed_from, pgm_job_traffic_moved(job));
		*code = PGM_ERR_INVALID_STATE;
		*message = pgm_asprintf("job \"%s\" is %s: %s is not possible now", job->name,
					pgm_state_name(job->state), pgm_event_name(ev));
		*hint = pgm_asprintf("commands accepted in state %s: %s", pgm_state_name(job->state), allowed);
		free(allowed);
		if (peer)
			pgm_job_audit(job, peer, pgm_event_name(ev), pgm_state_name(from), NULL,
				      "refused: " PGM_ERR_INVALID_STATE);
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
		if (ev == PGM_EV_ERROR) {
			/*
			 * A step failed and its failure cannot be saved either (a
			 * full state_dir): the job stops all the same -- no step
			 * runs on in memory a state it cannot record. After a
			 * restart the step of the durable state runs again.
			 */
			char *w = pgm_asprintf("the failure could not be saved (%s): after a restart pgmoverd runs the "
					       "step of state %s again",
					       pgm_store_error(), pgm_state_name(from));

			pgm_job_warn(job, w, pgm_unsaved_hint());
			free(w);
		} else {
			job->state = from;
			job->since_ms = old_since;
			job->last_row = old_last_row;
			job->failed_from = old_failed_from;
			job->failed_row = old_failed_row;
			*code = PGM_ERR_INTERNAL;
			*message = pgm_asprintf("could not persist the state of job \"%s\", so %s was not done: %s",
						job->name, pgm_event_name(ev), pgm_store_error());
			*hint = pgm_strdup("free space in state_dir or fix its permissions, then send the command "
					   "again; the job stays where it was");
			if (peer)
				pgm_job_audit(job, peer, pgm_event_name(ev), pgm_state_name(from), NULL,
					      "failed: " PGM_ERR_INTERNAL ": state.json not written");
			return false;
		}
	}
	/* the old step ends only once the new state is durable */
	step_cancel(job);
	/*
	 * An event the old step raised and the kick has not taken yet belonged
	 * to the state just left: taken in the new one it would skip the new
	 * step (DONE in aborting would end the abort before it ran).
	 */
	job->pending = PGM_EV__NONE;
	if (ev != PGM_EV_ERROR && job->error && to != PGM_ST_FAILED && (ev == PGM_EV_RETRY || ev == PGM_EV_ABORT)) {
		/* keep the reason in the facts; the job is moving on */
		pgm_json_set(job->facts, "previous_error", job->error);
		job->error = NULL;
	}
	/* progress was the old step's */
	cJSON_Delete(job->progress);
	job->progress = NULL;
	if (ev == PGM_EV_ERROR) {
		/* the reason belongs to the evidence: "error: <message>" */
		const char *why = pgm_json_str(job->error, "message");
		char *outcome = pgm_asprintf("error: %s", why ? why : "(no message)");

		pgm_job_audit(job, peer, pgm_event_name(ev), pgm_state_name(from), pgm_state_name(to), outcome);
		free(outcome);
	} else
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

/*
 * For a step about to make a change it must find recorded after a crash
 * (an artifact it creates, say): false when state.json could not be
 * written (logged), and then the change must not be made.
 */
bool
pgm_job_save(pgm_job_t *job)
{
	return pgm_store_save(job);
}

/*
 * Save progress or a fact found. A failure is kept once as a job warning
 * and the step goes on: a resumed step redoes what was not recorded.
 */
void
pgm_job_checkpoint(pgm_job_t *job)
{
	if (!pgm_store_save(job))
		pgm_job_warn(job,
			     "the job's state could not be saved: progress since the last save would be redone after a "
			     "restart",
			     pgm_unsaved_hint());
}

/* the message of pgm_step_fail_unsaved, for flows that fail their own way */
char *
pgm_unsaved_message(const pgm_job_t *job, const char *change)
{
	return pgm_asprintf("could not record in %s/state.json what %s will change, so it was not done: %s", job->dir,
			    change, pgm_store_error());
}

const char *
pgm_unsaved_hint(void)
{
	return "free space in state_dir or fix its permissions (pgmoverd's log has the system error), then retry";
}

/* fail the step: pgm_job_save returned false, so CHANGE was not made */
void
pgm_step_fail_unsaved(pgm_step_t *s, const char *change)
{
	char *msg = pgm_unsaved_message(s->job, change);

	pgm_step_fail(s, msg, NULL, pgm_unsaved_hint());
	free(msg);
}

/*
 * The step ends with event ev. Its resources are released at once, so no
 * callback of the step runs after this; the pgm_step_t itself waits in
 * job->ended, because the caller is still on the step's stack and may
 * touch it until it returns. The kick frees it and takes ev. Reports from
 * a step that has finished or is not the running one are ignored.
 */
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

/*
 * Fail the step: set job->error (message, detail, hint, state, step, when),
 * replacing any earlier one, log it and raise ERROR; the error is saved
 * with the FAILED state and sent to watchers with the transition. When the
 * job's freeze is still on the source, the error says so (source_frozen)
 * and, where the failed job may be thawed, its hint says how.
 */
void
pgm_step_fail(pgm_step_t *s, const char *given_message, const char *given_detail, const char *given_hint)
{
	pgm_job_t *job = s->job;
	bool frozen = pgm_job_source_frozen(job);
	bool thawable =
		frozen && pgm_fsm_decide(PGM_ST_FAILED, job->state, pgm_job_traffic_moved(job), PGM_EV_THAW) >= 0;
	char ts[40], *message, *detail, *hint;

	if (s->finished || job->step != s)
		return;
	/* a server's or a hook's words may quote a connection string */
	message = pgm_redact(given_message);
	detail = pgm_redact(given_detail);
	hint = pgm_redact(given_hint);
	if (thawable && !(hint && strstr(hint, "pgmover thaw"))) {
		char *with = pgm_asprintf("%s%sthe source is still frozen (writes are refused): \"pgmover thaw %s\" "
					  "allows writes again, \"pgmover retry %s\" runs the step again",
					  hint ? hint : "", hint ? "; " : "", job->name, job->name);

		free(hint);
		hint = with;
	}
	cJSON_Delete(job->error);
	job->error = cJSON_CreateObject();
	cJSON_AddStringToObject(job->error, "message", message);
	if (detail)
		cJSON_AddStringToObject(job->error, "detail", detail);
	if (hint)
		cJSON_AddStringToObject(job->error, "hint", hint);
	cJSON_AddBoolToObject(job->error, "source_frozen", frozen);
	cJSON_AddStringToObject(job->error, "state", pgm_state_name(job->state));
	cJSON_AddStringToObject(job->error, "step", pgm_transitions[s->row].step_name);
	pgm_format_time(pgm_now_ms(), ts, sizeof(ts));
	cJSON_AddStringToObject(job->error, "at", ts);
	pgm_error("job %s: %s failed: %s%s%s%s%s", job->name, pgm_transitions[s->row].step_name, message,
		  detail ? "; detail: " : "", detail ? detail : "", hint ? "; hint: " : "", hint ? hint : "");
	free(message);
	free(detail);
	free(hint);
	pgm_step_done(s, PGM_EV_ERROR);
}

/*
 * Fail with a server's error: "WHAT: message", its detail, and its own hint,
 * else pgm_pg_error_advice joined with the caller's, else either alone.
 */
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

/* libuv is done with the kick timer: free it, and the job with it */
static void
job_kick_closed(uv_handle_t *h)
{
	pgm_job_t *job = h->data;

	free(h);
	pgm_job_free(job);
}

/*
 * At daemon stop: cancel each job's step, save state.json a last time and
 * close the kick; the job is freed in its close callback. The list is
 * emptied first, so nothing finds a job on its way out. A cancelled step,
 * or one whose event the kick had not taken, runs again from the durable
 * row at the next start, unless the job is in a terminal state.
 */
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

/*
 * Take one job out of its host (delete): its step is cancelled, it leaves
 * the list at once (its name is free again), and it is freed once libuv
 * has closed its kick timer. Nothing is saved: the caller moved its
 * folder away first.
 */
void
pgm_job_release(pgm_job_t *job)
{
	pgm_job_t **p;

	for (p = &job->host->jobs; *p; p = &(*p)->next) {
		if (*p == job) {
			*p = job->next;
			break;
		}
	}
	step_cancel(job);
	if (job->ended) {
		pgm_step_free(job->ended);
		job->ended = NULL;
	}
	job->pending = PGM_EV__NONE;
	uv_timer_stop(job->kick);
	uv_close((uv_handle_t *) job->kick, job_kick_closed);
}
