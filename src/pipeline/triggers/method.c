/*
 * method.c — the triggers method: a live migration off a source that
 * allows neither logical decoding nor a superuser (Heroku), with only the
 * database owner's privileges. Change capture by triggers (capture.c), an
 * initial copy by the copy engine in one snapshot, then rounds of apply
 * (apply.c) until the freeze, which drains what is left: the write freeze
 * lasts one round, not a copy.
 *
 *   provisioning  the capture installed (before the copy's snapshot, so
 *                 that every change the copy misses is logged)
 *   syncing       the initial copy (foreign keys and triggers held back),
 *                 then rounds until at most catchup_rows are behind
 *   synced        rounds every second; lag in status; a schema change
 *                 stops the job
 *   freezing      the source's freeze, rounds until one finds nothing,
 *                 sequences raised, foreign keys and triggers restored
 *   finish, abort, rollback and a failed job remove the capture from the
 *   source and pgmover's progress table from the target
 */
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "fsm/artifact.h"
#include "pipeline/copy/copy.h"
#include "pipeline/cutover/cutover.h"
#include "pipeline/freeze/freeze.h"
#include "pipeline/method.h"
#include "pipeline/sequences.h"
#include "pipeline/sql.h"
#include "pipeline/triggers/triggers.h"
#include "pipeline/verify/verify.h"

#include <stdlib.h>
#include <string.h>

static bool
capture_live(const pgm_job_t *job)
{
	return pgm_artifact_find_live((pgm_job_t *) job, TRG_KIND_SCHEMA, NULL, NULL) != NULL;
}

/* every table got its triggers, and no removal has begun since */
static bool
capture_complete(const pgm_job_t *job)
{
	return capture_live(job) &&
	       cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(job->facts, "triggers"), "capture_complete"));
}

static bool
copied(const pgm_job_t *job)
{
	return cJSON_GetObjectItem(cJSON_GetObjectItem(job->facts, "copies"), "initial") != NULL;
}

/* ---- provisioning ---- */

static void
trg_provision(pgm_step_t *s)
{
	/* capture first: changes made while the copy runs are logged */
	trg_capture_install(s, pgm_copy_own_target);
}

/* ---- syncing: the copy, then catching up ---- */

static void
caught_up(pgm_step_t *s)
{
	pgm_op_done(s);
}

static void
start_catchup(pgm_step_t *s)
{
	trg_apply_run(s, TRG_CATCHUP, caught_up);
}

static void follow(pgm_step_t *s);
static void freeze_now(pgm_step_t *s);

/*
 * After an initial copy, what the step that needed it goes on with: syncing
 * catches up (and is done); synced follows; freezing freezes and drains. A
 * retried synced or freezing step copies anew when its capture was removed,
 * and must not end as syncing's does: its "done" would be refused in synced
 * (the apply then stopped, the job sitting in synced with nothing running),
 * and in freezing would take the job to frozen with no freeze made
 */
static void
after_copy(pgm_step_t *s)
{
	switch (s->job->state) {
	case PGM_ST_SYNCED:
		follow(s);
		return;
	case PGM_ST_FREEZING:
		freeze_now(s);
		return;
	default:
		start_catchup(s);
		return;
	}
}

static void
start_copy(pgm_step_t *s)
{
	pgm_copy_opts_t o = {.defer_constraints = true};

	pgm_copy_run_opts(s, "initial", &o, after_copy);
}

/*
 * What every step of a live job needs first: the capture on the source and
 * the initial copy. A job whose capture was removed (it failed) installs it
 * again and copies anew; the copy's snapshot then postdates every trigger.
 */
static void
ensure_copy(pgm_step_t *s, void (*then)(pgm_step_t *s))
{
	pgm_job_t *job = s->job;

	/*
	 * A capture missing a table's triggers (a removal began: the job failed)
	 * misses its changes: a copy older than the capture is worthless then
	 */
	if (!capture_complete(job)) {
		cJSON_DeleteItemFromObject(pgm_json_obj(job->facts, "copies"), "initial");
		pgm_job_checkpoint(job);
		trg_capture_install(s, start_copy);
		return;
	}
	if (copied(job)) {
		then(s);
		return;
	}
	start_copy(s);
}

static void
trg_sync(pgm_step_t *s)
{
	ensure_copy(s, start_catchup);
}

/* ---- synced: following ---- */

static void
follow(pgm_step_t *s)
{
	trg_apply_run(s, TRG_FOLLOW, NULL);
}

static void
trg_synced(pgm_step_t *s)
{
	ensure_copy(s, follow);
}

/* ---- freezing: freeze, drain, sequences, constraints ---- */

typedef struct drain {
	int64_t started;
	char *seqs; /* the source's sequences, read after the drain */
} drain_t;

static void
drain_free(void *p)
{
	drain_t *d = p;

	free(d->seqs);
	free(d);
}

static void
drained(pgm_step_t *s, void *data)
{
	drain_t *d = data;
	cJSON *fz = pgm_json_obj(s->job->facts, "freeze");

	pgm_json_set_num(fz, "freeze_to_drained_ms", (double) (pgm_mono_ms() - d->started));
	pgm_notice("job %s: drained: the target has every change; freeze requested to drained in %lld ms", s->job->name,
		   (long long) (pgm_mono_ms() - d->started));
	pgm_job_checkpoint(s->job);
	pgm_op_done(s);
}

/* the target's sequences raised to the source's: missing ones are a warning, as at cutover */
static void
on_raised(pgm_step_t *s, const pgm_seq_raised_t *r, void *data)
{
	cJSON *fz = pgm_json_obj(s->job->facts, "freeze");

	pgm_json_set_num(fz, "sequences_raised", (double) r->raised);
	if (r->missing) {
		char *msg = pgm_asprintf("sequences missing on the target: %s", r->missing);

		pgm_job_warn(s->job, msg, "create them and set their values by hand before writing there");
		free(msg);
	}
}

static void
set_sequences(pgm_step_t *s, void *data)
{
	drain_t *d = data;
	pgm_sql_t *q = pgm_sql_begin(s, false, "sequences", "could not raise the target's sequences", NULL);

	pgm_sequences_raise(q, d->seqs ? d->seqs : "[]", on_raised, d);
	pgm_sql_run(q, drained, d);
}

static void
read_sequences(pgm_step_t *s, drain_t *d)
{
	pgm_sql_t *q = pgm_sql_begin(s, true, "sequences", "could not read the source's sequences", NULL);

	pgm_sequences_read(q, &d->seqs);
	pgm_sql_run(q, set_sequences, d);
}

static drain_t *
drain_of(pgm_step_t *s)
{
	return s->priv;
}

static void
after_deferred(pgm_step_t *s)
{
	read_sequences(s, drain_of(s));
}

/* the last round found nothing: what the copy held back, then the sequences */
static void
after_drain(pgm_step_t *s)
{
	pgm_copy_restore_deferred(s, after_deferred);
}

static void
start_drain(pgm_step_t *s, void *data)
{
	drain_t *d = pgm_calloc(1, sizeof(*d));

	/* from the freeze's start, as pglogical's: what the operator waits for */
	d->started = s->started_mono;
	if (s->priv && s->priv_free)
		s->priv_free(s->priv);
	s->priv = d;
	s->priv_free = drain_free;
	trg_apply_run(s, TRG_DRAIN, after_drain);
}

static void
freeze_now(pgm_step_t *s)
{
	pgm_freeze_source(s, start_drain, NULL);
}

static void
trg_freeze(pgm_step_t *s)
{
	ensure_copy(s, freeze_now);
}

/* ---- thawing: writes resume, so the target must take changes again ---- */

/*
 * The foreign keys and triggers the freeze restored on the target (the
 * only ones there: the target is pgmover's, cleaned before the copy) go
 * again, since the rounds that follow the thaw would check and fire them
 * on rows arriving in pgmover's order; the next freeze restores them.
 */
static const char *hold_back_sql =
	"DO $pgm$ DECLARE r record; BEGIN"
	" FOR r IN SELECT c.conrelid::regclass AS t, c.conname FROM pg_constraint c"
	"            JOIN pg_namespace n ON n.oid = c.connamespace"
	"           WHERE c.contype = 'f' AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'"
	"             AND n.nspname !~ '^" PGM_CAPTURE_SCHEMA_PREFIX "' LOOP"
	"   EXECUTE format('ALTER TABLE %s DROP CONSTRAINT IF EXISTS %I', r.t, r.conname);"
	" END LOOP;"
	" FOR r IN SELECT g.tgrelid::regclass AS t, g.tgname FROM pg_trigger g"
	"            JOIN pg_class c ON c.oid = g.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
	"           WHERE NOT g.tgisinternal AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'"
	"             AND n.nspname !~ '^" PGM_CAPTURE_SCHEMA_PREFIX "' LOOP"
	"   EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', r.tgname, r.t);"
	" END LOOP; END $pgm$";

static void
held_back(pgm_step_t *s, void *data)
{
	cJSON_DeleteItemFromObject(pgm_json_obj(s->job->facts, "copies"), "deferred_restored_at");
	pgm_job_checkpoint(s->job);
	pgm_op_done(s);
}

static void
thawed(pgm_step_t *s, void *data)
{
	pgm_sql_t *q;

	if (cJSON_GetObjectItem(pgm_json_obj(s->job->facts, "copies"), "deferred_restored_at") == NULL) {
		pgm_op_done(s);
		return;
	}
	q = pgm_sql_begin(s, false, "hold-back", "could not hold back the target's foreign keys and triggers again",
			  "the target role must own the target's tables");
	pgm_sql_add(q, hold_back_sql, NULL, NULL);
	pgm_sql_run(q, held_back, NULL);
}

static void
trg_thaw(pgm_step_t *s)
{
	pgm_thaw_source(s, thawed, NULL);
}

/* ---- the ways out: the capture goes, and pgmover's progress on the target ---- */

typedef struct out {
	void (*then)(pgm_step_t *s);
} out_t;

static void
target_dropped(pgm_step_t *s, const PGresult *res, void *data)
{
	cJSON *a;

	while ((a = pgm_artifact_find_live(s->job, TRG_KIND_TARGET, NULL, NULL)) != NULL)
		if (!pgm_artifact_set(s->job, a, PGM_ART_DROPPED))
			break;
}

static void
out_done(pgm_step_t *s, void *data)
{
	out_t *o = data;
	void (*then)(pgm_step_t *) = o->then;

	then(s);
}

static void
drop_target_progress(pgm_step_t *s)
{
	cJSON *a = pgm_artifact_find_live(s->job, TRG_KIND_TARGET, NULL, NULL);
	pgm_sql_t *q;
	char *qs, *sql;

	if (a == NULL) {
		out_done(s, s->priv);
		return;
	}
	qs = pgm_quote_ident(pgm_json_str(a, "name"));
	sql = pgm_asprintf("DROP SCHEMA IF EXISTS %s CASCADE", qs);
	q = pgm_sql_begin(s, false, "apply-progress", "could not drop pgmover's progress table from the target", NULL);
	pgm_sql_add(q, "SET default_transaction_read_only = off", NULL, NULL);
	pgm_sql_add(q, sql, target_dropped, NULL);
	pgm_sql_run(q, out_done, s->priv);
	free(sql);
	free(qs);
}

/* remove the capture (strictly: a failure fails the step), then the target's progress, then `then` */
static void
remove_all(pgm_step_t *s, void (*then)(pgm_step_t *s))
{
	out_t *o = pgm_calloc(1, sizeof(*o));

	o->then = then;
	if (s->priv && s->priv_free)
		s->priv_free(s->priv);
	s->priv = o;
	s->priv_free = free;
	trg_capture_remove(s, true, drop_target_progress);
}

static void
trg_finish(pgm_step_t *s)
{
	remove_all(s, pgm_finish_run);
}

/* the capture goes before the way back writes to the source (it would log those writes too) */
static void
trg_rollback(pgm_step_t *s)
{
	remove_all(s, pgm_rollback_run);
}

static void
trg_abort(pgm_step_t *s)
{
	remove_all(s, pgm_copy_release_target);
}

/* failed: the triggers go (they add work to every write); retried every 30 s */
static void trg_failed(pgm_step_t *s);

static void
retry_failed(uv_timer_t *t)
{
	trg_failed(t->data);
}

static void
failed_removed(pgm_step_t *s)
{
	if (capture_live(s->job)) {
		uv_timer_t *t = pgm_step_timer(s);

		t->data = s;
		uv_timer_start(t, retry_failed, 30000, 0);
		return;
	}
	/* a retry installs the capture and copies anew */
	cJSON_DeleteItemFromObject(pgm_json_obj(s->job->facts, "copies"), "initial");
	pgm_job_checkpoint(s->job);
}

static void
trg_failed(pgm_step_t *s)
{
	/* only while the source is still the primary: after cutover the capture waits for finish */
	if (!pgm_state_before_cutover(s->job->failed_from))
		return;
	trg_capture_remove(s, false, failed_removed);
}

const pgm_method_t pgm_method_triggers = {
	.name = "triggers",
	.summary = "change capture by triggers, the owner's privileges only: Heroku",
	.provision = trg_provision,
	.sync = trg_sync,
	.synced = trg_synced,
	.freeze = trg_freeze,
	.frozen = pgm_freeze_check_step,
	.verify = pgm_verify_step,
	.thaw = trg_thaw,
	.cutover = pgm_cutover_run,
	.window = pgm_window_run,
	.finish = trg_finish,
	.rollback = trg_rollback,
	.abort = trg_abort,
	.failed = trg_failed,
};
