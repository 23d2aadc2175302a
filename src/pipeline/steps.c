/*
 * steps.c — the step functions the transition table names. What every
 * method shares is here (the preflight, the rollback window's deadline,
 * retry, the states that wait); the rest is the job's method's operation
 * (method.h), looked up once when the job was created or loaded.
 */
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "fsm/job.h"
#include "pipeline/cutover/cutover.h"
#include "pipeline/freeze/freeze.h"
#include "pipeline/method.h"
#include "pipeline/plan/plan.h"

#include <stdlib.h>
#include <string.h>

/* ---- provision: the preflight of both servers, then the method's part ---- */

static void
plan_cancel_cb(void *p)
{
	pgm_plan_cancel(p);
}

static void
on_plan(pgm_plan_t *p, const cJSON *report, void *data)
{
	pgm_step_t *s = data;
	pgm_job_t *job = s->job;
	cJSON *pre = cJSON_CreateObject();
	const cJSON *f, *first_error = NULL;

	pgm_step_disown(s, p);
	pgm_json_set(job->facts, "source", cJSON_Duplicate(cJSON_GetObjectItem(report, "source"), 1));
	pgm_json_set(job->facts, "target", cJSON_Duplicate(cJSON_GetObjectItem(report, "target"), 1));
	pgm_json_set(pre, "ok", cJSON_Duplicate(cJSON_GetObjectItem(report, "ok"), 0));
	pgm_json_set(pre, "findings", cJSON_Duplicate(cJSON_GetObjectItem(report, "findings"), 1));
	pgm_json_set(pre, "estimate", cJSON_Duplicate(cJSON_GetObjectItem(report, "estimate"), 1));
	pgm_json_set(pre, "recommendation", cJSON_Duplicate(cJSON_GetObjectItem(report, "recommendation"), 1));
	pgm_json_set(job->facts, "preflight", pre);
	cJSON_ArrayForEach (f, cJSON_GetObjectItem(report, "findings")) {
		const char *status = pgm_json_str(f, "status");
		if (strcmp(status, "warning") == 0)
			pgm_job_warn(job, pgm_json_str(f, "finding"), pgm_json_str(f, "fix"));
		else if (strcmp(status, "error") == 0 && first_error == NULL)
			first_error = f;
	}
	pgm_job_checkpoint(job);
	if (first_error) {
		char *detail = pgm_asprintf("preflight: %d check(s) failed; every finding is in facts.preflight "
					    "(or run \"pgmover plan\")",
					    (int) pgm_json_num(report, "errors", 1));
		pgm_step_fail(s, pgm_json_str(first_error, "finding"), detail, pgm_json_str(first_error, "fix"));
		free(detail);
		return;
	}
	job->ops->provision(s);
}

void
pgm_step_provision(pgm_step_t *s)
{
	pgm_job_t *job = s->job;
	pgm_plan_opts_t o = {0};
	char *app = pgm_asprintf("pgmover:%s:preflight", job->name);
	pgm_plan_t *p;

	o.source = pgm_job_source_file(job) ? NULL : job->source_dsn;
	o.target = job->target_dsn;
	o.options = job->options;
	o.target_owned = cJSON_IsTrue(cJSON_GetObjectItem(job->facts, "target_owned"));
	o.app_name = app;
	o.method = job->method;
	/* a dump job's rehearsal copy, right after, times the copy: the preflight reads no sample */
	o.no_read_sample = strcmp(job->method, "dump") == 0 && pgm_jobopt_bool(job->options, "rehearsal");
	p = pgm_plan_start(pgm_step_loop(s), &o, on_plan, s);
	pgm_step_own(s, p, plan_cancel_cb);
	free(app);
}

/* ---- the copy and the freeze: the method's ---- */

void
pgm_step_sync(pgm_step_t *s)
{
	s->job->ops->sync(s);
}

void
pgm_step_synced(pgm_step_t *s)
{
	s->job->ops->synced(s);
}

/*
 * The steps that hold the source's freeze before cutover are bounded by
 * freeze_timeout (the freeze's own step from the moment writes stop)
 */
void
pgm_step_freeze(pgm_step_t *s)
{
	pgm_freeze_guard(s);
	s->job->ops->freeze(s);
}

void
pgm_step_frozen(pgm_step_t *s)
{
	pgm_freeze_guard(s);
	s->job->ops->frozen(s);
}

void
pgm_step_verify(pgm_step_t *s)
{
	pgm_freeze_guard(s);
	s->job->ops->verify(s);
}

/* verified or verify_failed: the source stays frozen; the operator decides, within freeze_timeout */
void
pgm_step_hold(pgm_step_t *s)
{
	pgm_freeze_guard(s);
	pgm_op_wait(s);
}

static void
thaw_unwound(pgm_step_t *s)
{
	s->job->ops->thaw(s);
}

/* after a cutover that failed before traffic moved, its leftovers go first */
void
pgm_step_thaw(pgm_step_t *s)
{
	if (pgm_cutover_leftovers(s->job))
		pgm_cutover_unwind(s, thaw_unwound);
	else
		s->job->ops->thaw(s);
}

/* ---- cutover and the rollback window ---- */

void
pgm_step_cutover(pgm_step_t *s)
{
	s->job->ops->cutover(s);
}

/*
 * The deadline closes the window as `finish` does (the reverse slot is
 * dropped, so rollback is no longer possible): never silently, a warning
 * in status and the log first, with what the stream had not carried yet.
 */
static void
on_window_deadline(uv_timer_t *t)
{
	pgm_step_t *s = t->data;
	pgm_job_t *job = s->job;
	const cJSON *lag = cJSON_GetObjectItem(job->facts, "reverse_lag");
	char *msg;

	/* rollback_window = 0: the job was cut over without a way back; nothing closes */
	if (pgm_jobopt_int(job->options, "rollback_window") == 0) {
		pgm_step_done(s, PGM_EV_DEADLINE);
		return;
	}
	msg = pgm_asprintf("the rollback window's deadline passed (rollback_window = %s): finishing, the reverse "
			   "slot is dropped and rollback is no longer possible; the reverse stream was %.0f "
			   "bytes behind",
			   pgm_jobopt_str(job->options, "rollback_window"), pgm_json_num(lag, "bytes", 0));

	pgm_job_warn(job, msg, "to keep a way back longer, set a longer rollback_window before cutover");
	free(msg);
	pgm_job_checkpoint(job);
	pgm_step_done(s, PGM_EV_DEADLINE);
}

/* the window's deadline is every method's; what runs meanwhile is the method's */
void
pgm_step_window(pgm_step_t *s)
{
	pgm_job_t *job = s->job;
	int64_t left;

	if (job->rollback_deadline_ms <= 0) {
		job->rollback_deadline_ms = pgm_now_ms() + pgm_jobopt_int(job->options, "rollback_window");
		pgm_job_checkpoint(job);
	}
	left = job->rollback_deadline_ms - pgm_now_ms();
	uv_timer_start(pgm_step_timer(s), on_window_deadline, (uint64_t) (left > 0 ? left : 0), 0);
	job->ops->window(s);
}

void
pgm_step_finish(pgm_step_t *s)
{
	s->job->ops->finish(s);
}

void
pgm_step_rollback(pgm_step_t *s)
{
	s->job->ops->rollback(s);
}

static void
abort_thawed(pgm_step_t *s, void *data)
{
	s->job->ops->abort(s);
}

static void
abort_unwound(pgm_step_t *s)
{
	if (pgm_freeze_active(s->job))
		pgm_thaw_source(s, abort_thawed, NULL);
	else
		s->job->ops->abort(s);
}

/*
 * abort: a failed cutover's leftovers go first; then every method thaws
 * the source (one exit path out of a freeze)
 */
void
pgm_step_abort(pgm_step_t *s)
{
	if (pgm_cutover_leftovers(s->job)) {
		pgm_cutover_unwind(s, abort_unwound);
		return;
	}
	if (pgm_freeze_active(s->job))
		pgm_thaw_source(s, abort_thawed, NULL);
	else
		s->job->ops->abort(s);
}

void
pgm_step_retry(pgm_step_t *s)
{
	/* the driver runs the failed step itself; this row only names it */
	pgm_step_done(s, PGM_EV_DONE);
}

void
pgm_step_settle(pgm_step_t *s)
{
	/* terminal: nothing runs any more */
	pgm_op_wait(s);
}

/*
 * Failed in the rollback window (the reverse stream stopped on a change
 * the source refuses, say): nothing closes the window meanwhile, so its
 * deadline is not passed silently — a warning in status and the log, once,
 * that the slot stays on the target until retry, which then finishes.
 */
static void
on_failed_deadline(uv_timer_t *t)
{
	pgm_step_t *s = t->data;
	pgm_job_t *job = s->job;
	char *msg =
		pgm_asprintf("the rollback window's deadline passed while the job is failed (rollback_window = %s): "
			     "the reverse slot stays on the target, keeping its WAL, until \"pgmover retry\" "
			     "resumes the window, which then finishes (no rollback)",
			     pgm_jobopt_str(job->options, "rollback_window"));

	pgm_job_warn(job, msg, "fix what the job's error says, then retry; watch the target's disk meanwhile");
	free(msg);
	pgm_job_checkpoint(job);
}

/* failed: the reason is in job->error; retry or abort is the operator's call */
void
pgm_step_failed(pgm_step_t *s)
{
	pgm_job_t *job = s->job;

	if (job->failed_from == PGM_ST_ROLLBACK_WINDOW && job->rollback_deadline_ms > 0) {
		int64_t left = job->rollback_deadline_ms - pgm_now_ms();

		uv_timer_start(pgm_step_timer(s), on_failed_deadline, (uint64_t) (left > 0 ? left : 0), 0);
	}
	job->ops->failed(s);
}
