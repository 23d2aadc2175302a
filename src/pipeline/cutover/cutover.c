/*
 * cutover.c — switch the application to the target (dump method), and
 * finish: tear down what the rollback window needed.
 *
 * Cutover runs a fixed list of stages. Each is recorded in facts.cutover
 * and in the audit log as it ends, so a restarted daemon (or `retry`)
 * skips what is done:
 *
 *   dns:check           the application's DNS TTL (a warning above 60 s)
 *   pgbouncer:check     the admin console knows the entry; the include file
 *                       has it; the original file is backed up once
 *   sequences           every target sequence at least at the source's value
 *   reverse:setup       publication + logical slot on the target, progress
 *                       table on the source: from here on every write on
 *                       the target is kept for the way back
 *   pgbouncer:pause     PAUSE: clients wait, none gets an error
 *   hook:cutover_command   inside the pause: nothing writes anywhere
 *   pgbouncer:switch    the include file points at the target; RELOAD
 *   pgbouncer:resume    RESUME: traffic flows to the target
 *   hook:post_cutover_command
 *
 * Until the switch, a failure undoes everything the flow did — RESUME on
 * the unchanged entry, the reverse objects dropped — so traffic stays on
 * the source and no slot is left behind. After it, a failure leaves
 * traffic on the target and `retry` runs only the stages left.
 *
 * The source stays frozen: a forgotten writer fails loudly.
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
#include "pipeline/sequences.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* ---- flows ---- */

static void
flow_free(void *p)
{
	pgm_flow_t *f = p;

	free(f->fail_msg);
	free(f->fail_detail);
	free(f->fail_hint);
	free(f->scratch);
	free(f);
}

cJSON *
pgm_flow_facts(pgm_flow_t *f)
{
	return pgm_json_obj(f->job->facts, f->name);
}

bool
pgm_flow_done(pgm_job_t *job, const char *flow, const char *stage)
{
	const cJSON *done = cJSON_GetObjectItem(cJSON_GetObjectItem(job->facts, flow), "done");

	return cJSON_GetObjectItem(done, stage) != NULL;
}

void
pgm_flow_reset(pgm_job_t *job, const char *flow)
{
	cJSON_DeleteItemFromObject(pgm_json_obj(job->facts, flow), "done");
	pgm_job_checkpoint(job);
}

void
pgm_flow_audit(pgm_flow_t *f, const char *what, const char *outcome)
{
	char *cmd = pgm_asprintf("%s:%s", f->name, what);

	pgm_job_audit(f->job, NULL, cmd, pgm_state_name(f->job->state), NULL, outcome);
	free(cmd);
}

static void
flow_run(pgm_flow_t *f)
{
	for (;;) {
		const pgm_stage_t *st = &f->stages[f->cur];

		if (st->name == NULL) {
			f->then(f->step);
			return;
		}
		if ((st->wanted && !st->wanted(f->job)) || pgm_flow_done(f->job, f->name, st->name)) {
			f->cur++;
			continue;
		}
		f->stage_started = pgm_mono_ms();
		pgm_info("job %s: %s: %s", f->job->name, f->name, st->name);
		st->run(f);
		return;
	}
}

pgm_flow_t *
pgm_flow_start(pgm_step_t *s, const char *name, const pgm_stage_t *stages, pgm_flow_undo_fn undo,
	       void (*then)(pgm_step_t *s))
{
	pgm_flow_t *f = pgm_calloc(1, sizeof(*f));

	f->step = s;
	f->job = s->job;
	f->name = name;
	f->stages = stages;
	f->undo = undo;
	f->then = then;
	pgm_step_own(s, f, flow_free);
	flow_run(f);
	return f;
}

void
pgm_flow_next(pgm_flow_t *f)
{
	const pgm_stage_t *st = &f->stages[f->cur];
	int64_t ms = pgm_mono_ms() - f->stage_started;
	cJSON *rec = cJSON_CreateObject();
	char *outcome = pgm_asprintf("ok (%lld ms)", (long long) ms);

	pgm_json_set_time(rec, "at", pgm_now_ms());
	pgm_json_set_num(rec, "ms", (double) ms);
	pgm_json_set(pgm_json_obj(pgm_flow_facts(f), "done"), st->name, rec);
	pgm_job_checkpoint(f->job);
	pgm_flow_audit(f, st->name, outcome);
	free(outcome);
	f->cur++;
	flow_run(f);
}

void
pgm_flow_fail_now(pgm_flow_t *f)
{
	pgm_step_fail(f->step, f->fail_msg ? f->fail_msg : "failed", f->fail_detail, f->fail_hint);
}

void
pgm_flow_fail(pgm_flow_t *f, const char *message, const char *detail, const char *hint)
{
	const pgm_stage_t *st = &f->stages[f->cur];
	char *outcome;

	if (f->failing) {
		/* the undo itself failed: say so, and fail with the first reason */
		pgm_warning("job %s: %s: while undoing: %s%s%s", f->job->name, f->name, message, detail ? ": " : "",
			    detail ? detail : "");
		pgm_flow_fail_now(f);
		return;
	}
	f->fail_msg = pgm_strdup(message);
	f->fail_detail = detail ? pgm_strdup(detail) : NULL;
	f->fail_hint = hint ? pgm_strdup(hint) : NULL;
	outcome = pgm_asprintf("failed: %s", message);
	pgm_flow_audit(f, st->name ? st->name : "end", outcome);
	free(outcome);
	f->failing = true;
	if (f->undo)
		f->undo(f);
	else
		pgm_flow_fail_now(f);
}

void
pgm_flow_fail_pg(pgm_flow_t *f, const char *what, const pgm_pg_error_t *err, const char *hint)
{
	char *msg = pgm_asprintf("%s: %s", what, err->message);

	pgm_flow_fail(f, msg, err->detail, err->hint ? err->hint : hint);
	free(msg);
}

/* "pgmover_" and the job name in the characters a slot name allows */
char *
pgm_reverse_slot_name(const pgm_job_t *job)
{
	char *n = pgm_asprintf("pgmover_%.54s", job->name);

	for (char *p = n; *p; p++)
		*p = (isalnum((unsigned char) *p) ? (char) tolower((unsigned char) *p) : '_');
	return n;
}

char *
pgm_reverse_schema_name(const pgm_job_t *job)
{
	return pgm_reverse_slot_name(job);
}

/* ---- sequences (sequences.c), with the facts and warnings of the flow ---- */

static void
on_seq_raised(pgm_step_t *s, const pgm_seq_raised_t *r, void *data)
{
	pgm_flow_t *f = data;
	cJSON *o = cJSON_CreateObject();

	pgm_json_set_num(o, "checked", (double) r->checked);
	pgm_json_set_num(o, "raised", (double) r->raised);
	if (r->missing) {
		char *msg = pgm_asprintf("sequences missing on the %s: %s",
					 strcmp(f->name, "rollback") == 0 ? "source" : "target", r->missing);
		pgm_json_set_str(o, "missing", r->missing);
		pgm_job_warn(f->job, msg, "create them and set their values by hand before writing there");
		free(msg);
	}
	pgm_json_set(pgm_flow_facts(f), "sequences", o);
	pgm_info("job %s: %s: %lld sequence(s) checked, %lld raised", f->job->name, f->name, (long long) r->checked,
		 (long long) r->raised);
}

void
pgm_flow_sql_error(pgm_step_t *s, const char *what, const char *hint, const pgm_pg_error_t *err, void *data)
{
	pgm_flow_fail_pg(data, what, err, hint);
}

pgm_sql_t *
pgm_flow_sql(pgm_flow_t *f, bool source, const char *purpose, const char *what, const char *hint)
{
	pgm_sql_t *q = pgm_sql_begin(f->step, source, purpose, what, hint);

	pgm_sql_on_error(q, pgm_flow_sql_error, f);
	return q;
}

/*
 * Large objects live in a system catalog, which logical decoding does not
 * see: the rollback window cannot carry them back. Their set on the target
 * is fingerprinted (count and a sum of OID hashes: pg_largeobject_metadata
 * is readable by any role) at cutover and again at rollback, once the
 * target is frozen and drained, so that one created or unlinked in between
 * is said; bytes written into an existing one are not seen.
 */
static const char *lo_fingerprint_sql =
	"SELECT count(*), coalesce(sum(hashoidextended(oid, 0)), 0)::text FROM pg_catalog.pg_largeobject_metadata";

static void
on_lo_fingerprint(pgm_step_t *s, const PGresult *res, void *data)
{
	pgm_flow_t *f = data;
	int64_t n = pgm_pg_int64(res, 0, 0, 0);
	const char *fp = pgm_pg_value(res, 0, 1) ? pgm_pg_value(res, 0, 1) : "0";
	cJSON *o = cJSON_CreateObject();

	(void) s;
	pgm_json_set_num(o, "count", (double) n);
	pgm_json_set_str(o, "fingerprint", fp);
	if (strcmp(f->name, "rollback") == 0) {
		const cJSON *then = cJSON_GetObjectItem(pgm_json_obj(f->job->facts, "cutover"), "large_objects");
		const char *then_fp = pgm_json_str(then, "fingerprint");

		if (then_fp && strcmp(then_fp, fp) != 0) {
			char *msg =
				pgm_asprintf("large objects were created or unlinked on the target after cutover (%.0f "
					     "then, %lld now): the rollback did not carry them to the source",
					     pgm_json_num(then, "count", 0), (long long) n);
			pgm_json_set(o, "changed", cJSON_CreateTrue());
			pgm_job_warn(
				f->job, msg,
				"the target is frozen and keeps them: copy the ones the source lacks by hand "
				"(lo_get on the target, lo_from_bytea on the source) before the application needs them");
			free(msg);
		}
	} else if (n > 0) {
		char *msg =
			pgm_asprintf("the target has %lld large object(s): the rollback window does not carry large "
				     "objects created or changed on the target back to the source",
				     (long long) n);
		pgm_job_warn(f->job, msg,
			     "a rollback says whether any were created or unlinked meanwhile; bytes written into an "
			     "existing one are not seen");
		free(msg);
	}
	pgm_json_set(pgm_flow_facts(f), "large_objects", o);
}

static void
seq_synced(pgm_step_t *s, void *data)
{
	pgm_flow_next(data);
}

static void
seq_apply(pgm_step_t *s, void *data)
{
	pgm_flow_t *f = data;
	bool to_source = strcmp(f->name, "rollback") == 0;
	pgm_sql_t *q = pgm_flow_sql(f, to_source, "sequences",
				    to_source ? "could not raise the sequences of the source"
					      : "could not raise the sequences of the target",
				    NULL);

	if (to_source)
		pgm_sql_add(q, "SET default_transaction_read_only = off", NULL, NULL);
	pgm_sequences_raise(q, f->scratch, on_seq_raised, f);
	if (!to_source) /* the cutover writes the target */
		pgm_sql_add(q, lo_fingerprint_sql, on_lo_fingerprint, f);
	pgm_sql_run(q, seq_synced, f);
}

void
pgm_sequences_sync(pgm_flow_t *f, bool from_source)
{
	pgm_sql_t *q = pgm_flow_sql(f, from_source, "sequences", "could not read the sequences", NULL);

	pgm_sequences_read(q, &f->scratch);
	if (!from_source) /* the rollback reads the target */
		pgm_sql_add(q, lo_fingerprint_sql, on_lo_fingerprint, f);
	pgm_sql_run(q, seq_apply, f);
}

/* ---- cutover ---- */

static bool
want_dns(pgm_job_t *job)
{
	return pgm_jobopt_str(job->options, "dns_record")[0] != '\0';
}

static bool
want_cutover_hook(pgm_job_t *job)
{
	return pgm_jobopt_str(job->options, "cutover_command")[0] != '\0';
}

static bool
want_post_hook(pgm_job_t *job)
{
	return pgm_jobopt_str(job->options, "post_cutover_command")[0] != '\0';
}

/* rollback_window = 0: no way back, so no reverse stream (and no logical decoding on the target) */
static bool
want_reverse(pgm_job_t *job)
{
	return pgm_jobopt_int(job->options, "rollback_window") > 0;
}

static void
stage_next(pgm_flow_t *f)
{
	pgm_flow_next(f);
}

static void
st_dns(pgm_flow_t *f)
{
	pgm_dns_check(f, stage_next);
}

static void
st_pgb_check(pgm_flow_t *f)
{
	pgm_pgb_check(f, stage_next);
}

static void
st_sequences(pgm_flow_t *f)
{
	pgm_sequences_sync(f, true);
}

static void
st_reverse_setup(pgm_flow_t *f)
{
	pgm_reverse_setup(f, stage_next);
}

static void
st_pause(pgm_flow_t *f)
{
	pgm_pgb_pause(f, stage_next);
}

static void
hook_ok(pgm_step_t *s, void *data)
{
	pgm_flow_next(data);
}

/*
 * Traffic has moved once pgbouncer's entry switched, or, without pgbouncer,
 * the cutover hook ran: that stage records facts.traffic_moved_at in the
 * save that records the stage itself (pgm_flow_next), and from then on
 * neither thaw nor abort is possible (pgm_job_traffic_moved, fsm.c).
 */
static void
traffic_moved_next(pgm_flow_t *f)
{
	pgm_json_set_time(f->job->facts, "traffic_moved_at", pgm_now_ms());
	pgm_flow_audit(f, "traffic", "moved to the target");
	pgm_flow_next(f);
}

static bool
traffic_moved(pgm_job_t *job)
{
	return pgm_job_traffic_moved(job);
}

static void
hook_failed(pgm_step_t *s, const char *message, const char *detail, void *data)
{
	pgm_flow_t *f = data;
	bool switched = traffic_moved(f->job);
	const char *hint = switched ? "traffic is already on the target; fix the command (or raise hook_timeout), then "
				      "\"pgmover retry\" runs only what is left of the cutover"
				    : "traffic stays on the source, which is still frozen; fix the command (or raise "
				      "hook_timeout), then \"pgmover retry\" runs the cutover again";

	pgm_flow_fail(f, message, detail, hint);
}

/* without pgbouncer, the hook is what moves traffic */
static void
cutover_hook_ok(pgm_step_t *s, void *data)
{
	pgm_flow_t *f = data;

	if (pgm_pgb_configured(f->job))
		pgm_flow_next(f);
	else
		traffic_moved_next(f);
}

/*
 * Durable before the change: cutover_command may move the application's
 * traffic, so the stages done so far and the hook's start are in
 * state.json before it runs; when that cannot be written it does not run,
 * and the undo keeps traffic on the source.
 */
static void
st_cutover_hook(pgm_flow_t *f)
{
	pgm_json_set_time(pgm_flow_facts(f), "cutover_command_started_at", pgm_now_ms());
	if (!pgm_job_save(f->job)) {
		char *msg = pgm_unsaved_message(f->job, "cutover_command");

		cJSON_DeleteItemFromObject(pgm_flow_facts(f), "cutover_command_started_at");
		pgm_flow_fail(f, msg, NULL, pgm_unsaved_hint());
		free(msg);
		return;
	}
	pgm_hook_run_ex(f->step, "cutover_command", "cutover", cutover_hook_ok, hook_failed, f);
}

static void
st_switch(pgm_flow_t *f)
{
	pgm_pgb_switch(f, true, traffic_moved_next);
}

static void
st_resume(pgm_flow_t *f)
{
	pgm_pgb_resume(f, stage_next);
}

static void
st_post_hook(pgm_flow_t *f)
{
	pgm_hook_run_ex(f->step, "post_cutover_command", "post_cutover", hook_ok, hook_failed, f);
}

static const pgm_stage_t cutover_stages[] = {{"dns:check", st_dns, want_dns},
					     {"pgbouncer:check", st_pgb_check, pgm_pgb_configured},
					     {"sequences", st_sequences, NULL},
					     {"reverse:setup", st_reverse_setup, want_reverse},
					     {"pgbouncer:pause", st_pause, pgm_pgb_configured},
					     {"hook:cutover_command", st_cutover_hook, want_cutover_hook},
					     {"pgbouncer:switch", st_switch, pgm_pgb_configured},
					     {"pgbouncer:resume", st_resume, pgm_pgb_configured},
					     {"hook:post_cutover_command", st_post_hook, want_post_hook},
					     {NULL, NULL, NULL}};

/* after the undo: start the next attempt from the first stage */
static void
cutover_undone(pgm_flow_t *f)
{
	pgm_flow_reset(f->job, "cutover");
	pgm_flow_audit(f, "undone", "ok: traffic stays on the source; no reverse object is left");
	pgm_flow_fail_now(f);
}

static void
cutover_undo_reverse(pgm_flow_t *f)
{
	pgm_reverse_teardown(f, cutover_undone);
}

/*
 * The one exit path of a failed cutover: before the switch, put traffic
 * back as it was and drop the reverse objects; after it, leave things be
 * (traffic is on the target, whose writes the slot keeps) for `retry`.
 */
static void
cutover_undo(pgm_flow_t *f)
{
	if (traffic_moved(f->job)) {
		pgm_flow_fail_now(f);
		return;
	}
	if (pgm_pgb_paused(f)) {
		pgm_pgb_restore(f, true, cutover_undo_reverse);
		return;
	}
	cutover_undo_reverse(f);
}

static void
cutover_finished(pgm_step_t *s)
{
	pgm_job_t *job = s->job;

	pgm_json_set_time(job->facts, "cutover_at", pgm_now_ms());
	/* with --no-traffic-switch the operator moves it, from now on */
	if (!pgm_job_traffic_moved(job))
		pgm_json_set_time(job->facts, "traffic_moved_at", pgm_now_ms());
	pgm_job_checkpoint(job);
	pgm_notice("job %s: cut over: traffic is on the target; writes made there flow back to the source until the "
		   "rollback window closes",
		   job->name);
	pgm_step_done(s, PGM_EV_DONE);
}

void
pgm_cutover_run(pgm_step_t *s)
{
	/* the window starts when the cutover ends; after a crash, stages done are skipped */
	s->job->rollback_deadline_ms = 0;
	pgm_flow_start(s, "cutover", cutover_stages, cutover_undo, cutover_finished);
}

/* ---- the rollback window ---- */

void
pgm_window_run(pgm_step_t *s)
{
	if (pgm_artifact_find_live(s->job, "replication_slot", NULL, NULL) == NULL) {
		pgm_info("job %s: no reverse stream to follow", s->job->name);
		return;
	}
	pgm_reverse_follow(s);
}

/* ---- finish: the target is the primary; remove what the window needed ---- */

static void
st_teardown(pgm_flow_t *f)
{
	pgm_reverse_teardown(f, stage_next);
}

/* the source's triggers disabled for the replay (replay.c), enabled again */
static void
st_triggers(pgm_flow_t *f)
{
	pgm_replay_triggers_restore(f, stage_next);
}

static void
st_pgb_cleanup(pgm_flow_t *f)
{
	pgm_pgb_cleanup(f);
	pgm_flow_next(f);
}

static const pgm_stage_t finish_stages[] = {{"source:triggers", st_triggers, pgm_replay_triggers_live},
					    {"reverse:teardown", st_teardown, NULL},
					    {"pgbouncer:cleanup", st_pgb_cleanup, NULL},
					    {NULL, NULL, NULL}};

static void
finish_finished(pgm_step_t *s)
{
	pgm_notice("job %s: finished: no pgmover object is left on either server; the source stays frozen",
		   s->job->name);
	pgm_step_done(s, PGM_EV_DONE);
}

void
pgm_finish_run(pgm_step_t *s)
{
	pgm_flow_start(s, "finish", finish_stages, NULL, finish_finished);
}

/* ---- unwind: before thaw or abort, what a failed cutover left behind ---- */

bool
pgm_cutover_leftovers(pgm_job_t *job)
{
	return !pgm_job_traffic_moved(job) &&
	       (pgm_reverse_live(job) || pgm_replay_triggers_live(job) || pgm_pgb_backup_live(job));
}

/* the include file as the backup has it, RELOAD, RESUME: best effort, never fails */
static void
st_unwind_pgb(pgm_flow_t *f)
{
	if (pgm_pgb_backup_live(f->job))
		pgm_pgb_restore(f, true, stage_next);
	else
		pgm_flow_next(f);
}

static const pgm_stage_t unwind_stages[] = {{"pgbouncer:restore", st_unwind_pgb, pgm_pgb_configured},
					    {"source:triggers", st_triggers, pgm_replay_triggers_live},
					    {"reverse:teardown", st_teardown, NULL},
					    {"pgbouncer:cleanup", st_pgb_cleanup, NULL},
					    {NULL, NULL, NULL}};

void
pgm_cutover_unwind(pgm_step_t *s, void (*then)(pgm_step_t *s))
{
	pgm_info("job %s: the failed cutover left objects behind: removing them first", s->job->name);
	/* every stage is idempotent: each thaw or abort runs them all */
	pgm_flow_reset(s->job, "unwind");
	pgm_flow_start(s, "unwind", unwind_stages, NULL, then);
}
