/*
 * pglogical_drain.c — the freezing step of a pglogical job:
 *
 *   1. freeze the source (freeze.c: read-only default, sessions ended);
 *   2. make sure the subscription exists and every table is ready;
 *   3. a sentinel: a logical decoding message written with synchronous
 *      commit, so that every earlier commit is flushed and sendable at
 *      once; the drain target is the source's flush position after it;
 *   4. wait until the slot confirms that position: the subscriber confirms
 *      a position only once every transaction before it is applied and
 *      flushed on the target. pglogical's apply worker commits
 *      asynchronously and reports its flush position only when it wakes
 *      (data, or once a second), so waiting alone takes about a second.
 *      Every 20 ms pgmover flushes the target's WAL (a message written with
 *      synchronous commit) and then writes a tiny message on the source,
 *      which wakes the apply worker: it confirms within milliseconds;
 *   5. every sequence on the target set to at least the source's value
 *      (never behind: IDs must not collide after cutover).
 *
 * The freeze-to-drained time (freeze requested -> target drained and
 * sequences set) goes to facts.freeze.freeze_to_drained_ms.
 */
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "pipeline/freeze/freeze.h"
#include "pipeline/pglogical/pglogical.h"
#include "pipeline/sequences.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POLL_MS 2
#define NUDGE_MS 20

typedef struct drain {
	uv_timer_t *timer;
	char lsn[32]; /* the drain target */
	const char *slot;
	int64_t ready_at, sentinel_at, drained_at, deadline, last_nudge;
	int64_t behind; /* bytes the slot still has to confirm */
	int polls, nudges;
	char status[32]; /* the subscription, seen by the last nudge */
	int64_t down_since;
	char *sequences; /* the source's values (JSON, sequences.c), to set on the target */
} drain_t;

static drain_t *
drain_of(pgl_t *x)
{
	return x->phase;
}

static void drain_poll(pgl_t *x);

/* ---- 5. sequences (sequences.c) ---- */

static void
on_sequences_set(pgm_step_t *s, const pgm_seq_raised_t *r, void *data)
{
	pgl_t *x = data;
	pgm_job_t *job = s->job;
	drain_t *d = drain_of(x);
	cJSON *fz, *rec;
	int64_t now = pgm_mono_ms(), total = now - s->started_mono;

	if (r->missing) {
		char *msg = pgm_asprintf("sequence(s) of the source are missing on the target: %s", r->missing);
		pgm_step_fail(s, msg, "the source's schema changed after provisioning (DDL is not replicated)",
			      "create them on the target (pg_dump --schema-only -t NAME from the source), then "
			      "\"pgmover retry\"");
		free(msg);
		return;
	}
	fz = pgm_json_obj(job->facts, "freeze");
	rec = cJSON_CreateObject();
	pgm_json_set_str(rec, "sentinel_lsn", d->lsn);
	pgm_json_set_num(rec, "freeze_ms", (double) (x->mark_ms - s->started_mono));
	pgm_json_set_num(rec, "ready_wait_ms", (double) (d->ready_at - x->mark_ms));
	pgm_json_set_num(rec, "drain_ms", (double) (d->drained_at - d->sentinel_at));
	pgm_json_set_num(rec, "sequences_ms", (double) (now - d->drained_at));
	pgm_json_set_num(rec, "sequences", (double) r->checked);
	pgm_json_set_num(rec, "polls", d->polls);
	pgm_json_set_num(rec, "nudges", d->nudges);
	pgm_json_set_num(rec, "freeze_to_drained_ms", (double) total);
	pgm_json_set_time(rec, "drained_at", pgm_now_ms());
	pgm_json_set(fz, "drain", rec);
	pgm_json_set_num(fz, "freeze_to_drained_ms", (double) total);
	pgm_json_set(job->facts, "lag", cJSON_CreateObject());
	pgm_json_set_num(cJSON_GetObjectItem(job->facts, "lag"), "bytes", 0);
	pgm_json_set_num(cJSON_GetObjectItem(job->facts, "lag"), "seconds", 0);
	pgm_job_checkpoint(job);
	pgm_notice("job %s: drained: the target has every write; freeze to drained and sequences set in %lld ms "
		   "(drain %lld ms, %lld sequence(s))",
		   job->name, (long long) total, (long long) (d->drained_at - d->sentinel_at), (long long) r->checked);
	pgm_step_done(s, PGM_EV_DONE);
}

/* once the target's connection is free (a nudge may still run on it) */
static void
set_sequences(pgl_t *x)
{
	drain_t *d = drain_of(x);
	pgm_sql_t *q;

	if (pgl_busy(x, false) || d->sequences == NULL)
		return;
	q = pgl_sql(x, false, "could not set the sequences on the target");
	pgm_sequences_raise(q, d->sequences, on_sequences_set, x);
	pgm_sql_run(q, NULL, NULL);
	free(d->sequences);
	d->sequences = NULL;
}

static void
on_source_sequences(pgm_step_t *s, void *data)
{
	set_sequences(data);
}

static void
drained(pgl_t *x)
{
	drain_t *d = drain_of(x);
	pgm_sql_t *q;

	d->drained_at = pgm_mono_ms();
	uv_timer_stop(d->timer);
	pgm_info("job %s: the slot confirmed %s after %d poll(s) and %d nudge(s)", x->step->job->name, d->lsn, d->polls,
		 d->nudges);
	q = pgl_sql(x, true, "could not read the sequences of the source");
	pgm_sequences_read(q, &d->sequences);
	pgm_sql_run(q, on_source_sequences, x);
}

/* ---- 4. waiting for the slot ---- */

static void
on_poll_timer(uv_timer_t *t)
{
	drain_poll(pgl_get(t->data));
}

static void
schedule_poll(pgl_t *x, uint64_t ms)
{
	uv_timer_start(drain_of(x)->timer, on_poll_timer, ms, 0);
}

static void
on_nudged_source(pgl_t *x, const PGresult *res)
{
	drain_poll(x);
}

/* the target's WAL is flushed: now wake the apply worker with a message on the source */
static void
on_nudged_target(pgl_t *x, const PGresult *res)
{
	drain_t *d = drain_of(x);
	const char *st = pgm_pg_value(res, 0, 0);

	if (d->drained_at) {
		set_sequences(x);
		return;
	}
	snprintf(d->status, sizeof(d->status), "%s", st ? st : "missing");
	if (strcmp(d->status, "replicating") == 0) {
		d->down_since = 0;
	} else if (d->down_since == 0) {
		d->down_since = pgm_mono_ms();
	} else if (pgm_mono_ms() - d->down_since > 30000) {
		char *msg =
			pgm_asprintf("the subscription %s is %s: the target cannot catch up", x->names.sub, d->status);
		pgm_step_fail(
			x->step, msg, "writes on the source stay frozen",
			"the target's server log says why; \"pgmover retry\" waits again, \"pgmover abort\" thaws "
			"the source");
		free(msg);
		return;
	}
	if (pgl_busy(x, true)) {
		schedule_poll(x, POLL_MS);
		return;
	}
	pgl_query(x, true, "could not write to the source's WAL",
		  "SELECT pg_logical_emit_message(true, 'pgmover', 'nudge')", 0, NULL, on_nudged_source);
}

static void
on_poll(pgl_t *x, const PGresult *res)
{
	drain_t *d = drain_of(x);
	int64_t now = pgm_mono_ms();

	d->polls++;
	if (pgm_pg_ntuples(res) != 1) {
		char *msg = pgm_asprintf("the replication slot %s is gone from the source", d->slot);
		pgm_step_fail(
			x->step, msg, "the target cannot receive the last writes",
			"\"pgmover retry\" creates the subscription anew (a full copy while writes stay frozen), or "
			"\"pgmover abort\"");
		free(msg);
		return;
	}
	if (pgm_pg_value(res, 0, 0) && pgm_pg_value(res, 0, 0)[0] == 't') {
		drained(x);
		return;
	}
	d->behind = pgm_pg_int64(res, 0, 1, 0);
	if (now > d->deadline) {
		char *msg =
			pgm_asprintf("the target did not catch up with the frozen source within %lld s: %lld byte(s) "
				     "behind (subscription %s)",
				     (long long) (pgm_jobopt_int(x->step->job->options, "drain_timeout") / 1000),
				     (long long) d->behind, d->status[0] ? d->status : "unknown");
		pgm_step_fail(
			x->step, msg, "writes on the source stay frozen",
			"look at the subscription on the target (pglogical.show_subscription_status() and the server "
			"log); \"pgmover retry\" waits again (raise drain_timeout), \"pgmover abort\" thaws the "
			"source");
		free(msg);
		return;
	}
	if (now - d->last_nudge >= NUDGE_MS) {
		char *sql, *lit = pgm_quote_literal(x->names.sub);

		d->last_nudge = now;
		d->nudges++;
		pgm_debug("job %s: drain: %lld byte(s) still to confirm after %lld ms (confirmed %s, source at %s)",
			  x->step->job->name, (long long) d->behind, (long long) (now - d->sentinel_at),
			  pgm_pg_value(res, 0, 2), pgm_pg_value(res, 0, 3));
		/*
		 * Flush the target's WAL (the apply worker commits asynchronously):
		 * a commit flushes only when its transaction wrote WAL, hence the
		 * message. Then wake the apply worker (on_nudged_target).
		 */
		if (!pgl_busy(x, false)) {
			sql = pgm_asprintf("SET synchronous_commit = on; SELECT (SELECT status FROM "
					   "pglogical.show_subscription_status() WHERE subscription_name = %s),"
					   " pg_logical_emit_message(true, 'pgmover', 'flush')",
					   lit);
			pgl_query(x, false, "could not flush the target's WAL", sql, 0, NULL, on_nudged_target);
			free(sql);
			free(lit);
			return;
		}
		free(lit);
	}
	schedule_poll(x, POLL_MS);
}

static void
drain_poll(pgl_t *x)
{
	drain_t *d = drain_of(x);
	const char *params[2] = {d->lsn, d->slot};

	if (pgl_busy(x, true)) {
		schedule_poll(x, POLL_MS);
		return;
	}
	pgl_query(x, true, "could not read the replication slot on the source",
		  "SELECT confirmed_flush_lsn >= $1::pg_lsn, pg_wal_lsn_diff($1::pg_lsn, confirmed_flush_lsn)::bigint,"
		  "       confirmed_flush_lsn::text, pg_current_wal_lsn()::text"
		  "  FROM pg_replication_slots WHERE slot_name = $2",
		  2, params, on_poll);
}

/* ---- 3. the sentinel ---- */

static void
on_flush_lsn(pgl_t *x, const PGresult *res)
{
	pgm_job_t *job = x->step->job;
	drain_t *d = drain_of(x);

	snprintf(d->lsn, sizeof(d->lsn), "%s", pgm_pg_value(res, 0, 0));
	d->sentinel_at = pgm_mono_ms();
	pgm_json_set_str(pgm_json_obj(job->facts, "freeze"), "sentinel_lsn", d->lsn);
	pgm_debug("job %s: drain target %s on slot %s", job->name, d->lsn, d->slot);
	drain_poll(x);
}

static void
on_sentinel(pgl_t *x, const PGresult *res)
{
	pgl_query(x, true, "could not read the source's WAL position", "SELECT pg_current_wal_flush_lsn()::text", 0,
		  NULL, on_flush_lsn);
}

/* a lost connection is retried until the deadline; anything else fails */
static void
drain_error(pgl_t *x, bool source, const char *what, const pgm_pg_error_t *err)
{
	drain_t *d = drain_of(x);

	if (!source && d->drained_at && d->sequences) {
		/* a nudge that lost its connection; the sequences go on a new one */
		set_sequences(x);
		return;
	}
	if (!pgm_sql_connection_lost(err) || pgm_mono_ms() > d->deadline || d->lsn[0] == '\0' || d->drained_at) {
		pgl_fail(x, source, what, err);
		return;
	}
	pgm_job_warn(x->step->job, "pgmover lost a connection while draining; it reconnects",
		     "nothing to do unless it repeats; the drain waits up to drain_timeout");
	schedule_poll(x, 100);
}

static void
drain_free(void *p)
{
	drain_t *d = p;

	free(d->sequences);
	free(d);
}

void
pgl_drain(pgm_step_t *s)
{
	pgm_job_t *job = s->job;
	pgl_t *x = pgl_get(s);
	drain_t *d = pgm_calloc(1, sizeof(*d));
	const cJSON *a = pgm_artifact_find(job, PGL_KIND_SUBSCRIPTION, "target", x->names.sub);

	d->ready_at = pgm_mono_ms();
	d->deadline = x->mark_ms + pgm_jobopt_int(job->options, "drain_timeout");
	d->slot = pgm_json_str(a, "slot");
	if (d->slot == NULL) {
		free(d);
		pgm_step_fail(s, "the subscription's replication slot is not known", NULL,
			      "\"pgmover retry\"; if it repeats, abort and start again");
		return;
	}
	d->timer = pgm_step_timer(s);
	pgl_set_phase(x, d, drain_free);
	x->on_error = drain_error;
	/* synchronous: the message's commit flushes every commit before it */
	pgl_query(x, true, "could not write the drain sentinel on the source",
		  "SET synchronous_commit = on; SELECT pg_logical_emit_message(true, 'pgmover', 'drain')", 0, NULL,
		  on_sentinel);
}

/* ---- 1. and 2. ---- */

static void
after_freeze(pgm_step_t *s, void *data)
{
	pgl_t *x = pgl_get(s);

	x->mark_ms = pgm_mono_ms();
	pgl_follow(x, PGL_FOLLOW_READY, pgl_drain);
}

void
pgm_pglogical_freeze(pgm_step_t *s)
{
	pgm_freeze_source(s, after_freeze, NULL);
}
