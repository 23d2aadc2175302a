/*
 * rollback.c — return the application to the source during the rollback
 * window, with every write made on the target since cutover.
 *
 *   pgbouncer:pause      clients wait
 *   target:freeze        the target read-only (an artifact, like the
 *                        source's freeze), its other sessions ended: no
 *                        write can land after the drain
 *   reverse:drain        the source gets every change committed on the target
 *   source:triggers      the source's user triggers pgmover disabled while it
 *                        replayed enabled again (replay.c), before it takes writes
 *   sequences            the source's sequences raised to the target's
 *   hook:rollback_command   e.g. DATABASE_URL back to the source
 *   source:thaw          undo exactly what freeze recorded (pgm_thaw_source)
 *   pgbouncer:switch     the original include file back; RELOAD
 *   pgbouncer:resume     traffic flows to the source
 *   reverse:teardown     slot and publication dropped on the target, the
 *                        progress table on the source; the backup of the
 *                        include file removed
 *
 * The target is frozen before the drain, not after: a writer that does not
 * go through pgbouncer could otherwise commit between the two and be lost.
 * A failure before the thaw undoes the rollback (target writable again,
 * RESUME): traffic stays on the target, whose writes the slot still keeps,
 * and `retry` starts over. After the thaw it only resumes pgbouncer, and
 * `retry` runs the stages left. The target stays frozen afterwards, as the
 * source does after completed.
 */
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "pipeline/cutover/cutover.h"
#include "pipeline/cutover/flow.h"
#include "pipeline/cutover/pgbouncer.h"
#include "pipeline/cutover/reverse.h"
#include "pipeline/cutover/replay.h"
#include "fsm/artifact.h"
#include "fsm/job.h"
#include "pipeline/sql.h"
#include "pipeline/hooks.h"
#include "pipeline/freeze/freeze.h"

#include <stdlib.h>
#include <string.h>

#define KIND_TARGET_FREEZE "target_db_setting"

/*
 * The target's read-only freeze (db_freeze.c), an artifact like the
 * source's: every other client session of the database ends, except this
 * job's own, and one the role may not end fails it. Errors fail the flow,
 * whose undo thaws the target.
 */
static const pgm_db_freeze_t target_freeze = {
	.source = false,
	.kind = KIND_TARGET_FREEZE,
	.purpose = "rollback",
	.sessions = PGM_SESSIONS_ALL_BUT_JOB,
	.facts = "rollback",
	.sessions_fact = "target_sessions_terminated",
	.what = "could not make the target read-only",
	.hint = "the target role must own the database (ALTER DATABASE) and may end sessions",
	.thaw_purpose = "rollback",
	.thaw_what = "could not make the target writable again",
};

/* the flow's continuation, for the freeze's and the thaw's then */
typedef struct tf {
	pgm_flow_t *f;
	void (*then)(pgm_flow_t *f);
} tf_t;

static tf_t *
tf_new(pgm_flow_t *f, void (*then)(pgm_flow_t *f))
{
	tf_t *t = pgm_calloc(1, sizeof(*t));

	t->f = f;
	t->then = then;
	pgm_step_own(f->step, t, free);
	return t;
}

static void
tf_done(pgm_step_t *s, void *data)
{
	tf_t *t = data;
	pgm_flow_t *f = t->f;
	void (*then)(pgm_flow_t *) = t->then;

	pgm_step_disown(s, t);
	free(t);
	then(f);
}

void
pgm_target_freeze(pgm_flow_t *f, void (*then)(pgm_flow_t *f))
{
	pgm_db_freeze(f->step, &target_freeze, pgm_flow_sql_error, f, tf_done, tf_new(f, then));
}

void
pgm_target_thaw(pgm_flow_t *f, void (*then)(pgm_flow_t *f))
{
	cJSON *a = pgm_artifact_find_live(f->job, KIND_TARGET_FREEZE, NULL, NULL);

	if (a == NULL) {
		then(f);
		return;
	}
	pgm_db_thaw(f->step, &target_freeze, a, pgm_flow_sql_error, f, tf_done, tf_new(f, then));
}

/* ---- the rollback flow ---- */

static bool
want_hook(pgm_job_t *job)
{
	return pgm_jobopt_str(job->options, "rollback_command")[0] != '\0';
}

static void
stage_next(pgm_flow_t *f)
{
	pgm_flow_next(f);
}

static void
st_pause(pgm_flow_t *f)
{
	pgm_pgb_pause(f, stage_next);
}

static void
st_freeze_target(pgm_flow_t *f)
{
	pgm_target_freeze(f, stage_next);
}

static void
st_drain(pgm_flow_t *f)
{
	pgm_reverse_drain(f, stage_next);
}

static void
st_triggers(pgm_flow_t *f)
{
	pgm_replay_triggers_restore(f, stage_next);
}

static void
st_sequences(pgm_flow_t *f)
{
	pgm_sequences_sync(f, false);
}

static void
hook_ok(pgm_step_t *s, void *data)
{
	pgm_flow_next(data);
}

static void
hook_failed(pgm_step_t *s, const char *message, const char *detail, void *data)
{
	pgm_flow_fail(data, message, detail,
		      "traffic stays on the target, which takes writes again; fix the command (or raise "
		      "hook_timeout), then \"pgmover retry\" runs the rollback again");
}

static void
st_hook(pgm_flow_t *f)
{
	pgm_hook_run_ex(f->step, "rollback_command", "rollback", hook_ok, hook_failed, f);
}

static void
thawed(pgm_step_t *s, void *data)
{
	pgm_flow_next(data);
}

static void
st_thaw_source(pgm_flow_t *f)
{
	pgm_thaw_source(f->step, thawed, f);
}

static void
st_switch(pgm_flow_t *f)
{
	pgm_pgb_switch(f, false, stage_next);
}

static void
st_resume(pgm_flow_t *f)
{
	pgm_pgb_resume(f, stage_next);
}

static void
st_teardown(pgm_flow_t *f)
{
	pgm_reverse_teardown(f, stage_next);
}

static void
st_cleanup(pgm_flow_t *f)
{
	pgm_pgb_cleanup(f);
	pgm_flow_next(f);
}

static const pgm_stage_t rollback_stages[] = {{"pgbouncer:pause", st_pause, pgm_pgb_configured},
					      {"target:freeze", st_freeze_target, NULL},
					      {"reverse:drain", st_drain, NULL},
					      {"source:triggers", st_triggers, pgm_replay_triggers_live},
					      {"sequences", st_sequences, NULL},
					      {"hook:rollback_command", st_hook, want_hook},
					      {"source:thaw", st_thaw_source, NULL},
					      {"pgbouncer:switch", st_switch, pgm_pgb_configured},
					      {"pgbouncer:resume", st_resume, pgm_pgb_configured},
					      {"reverse:teardown", st_teardown, NULL},
					      {"pgbouncer:cleanup", st_cleanup, NULL},
					      {NULL, NULL, NULL}};

static void
undone(pgm_flow_t *f)
{
	pgm_flow_reset(f->job, "rollback");
	pgm_flow_audit(f, "undone", "ok: traffic stays on the target, which takes writes again");
	pgm_flow_fail_now(f);
}

static void
undo_resume(pgm_flow_t *f)
{
	if (pgm_pgb_paused(f))
		pgm_pgb_restore(f, false, undone);
	else
		undone(f);
}

static void
rollback_undo(pgm_flow_t *f)
{
	if (pgm_flow_done(f->job, "rollback", "source:thaw")) {
		/* the source takes writes: only make sure clients are not left waiting */
		if (pgm_pgb_paused(f))
			pgm_pgb_restore(f, true, pgm_flow_fail_now);
		else
			pgm_flow_fail_now(f);
		return;
	}
	pgm_target_thaw(f, undo_resume);
}

void
pgm_rollback_finished(pgm_step_t *s)
{
	pgm_job_t *job = s->job;

	pgm_json_set_time(job->facts, "rolled_back_at", pgm_now_ms());
	pgm_job_checkpoint(job);
	pgm_notice("job %s: rolled back: traffic is on the source with every write made on the target; the target is "
		   "read-only",
		   job->name);
	pgm_step_done(s, PGM_EV_DONE);
}

void
pgm_rollback_run_then(pgm_step_t *s, void (*then)(pgm_step_t *s))
{
	pgm_flow_start(s, "rollback", rollback_stages, rollback_undo, then);
}

void
pgm_rollback_run(pgm_step_t *s)
{
	pgm_rollback_run_then(s, pgm_rollback_finished);
}
