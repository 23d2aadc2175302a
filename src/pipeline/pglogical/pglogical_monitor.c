/*
 * pglogical_monitor.c — following a job's subscription once a second:
 *
 *   target: pglogical.show_subscription_status(), pglogical.local_sync_status
 *           (during the initial copy it holds only the subscription-level
 *           row, in 'd'; the per-table rows appear afterwards, already 'r'),
 *           pg_stat_progress_copy for the table being copied, and the apply
 *           worker's process (its start time, to see it restart);
 *   source: the subscription's slot: lag in bytes as pg_wal_lsn_diff(
 *           pg_current_wal_lsn(), confirmed_flush_lsn), lag in seconds from
 *           the history of the source's WAL position (when the source was at
 *           the confirmed position), and the WAL the slot retains.
 *
 * Lag goes to facts.lag {bytes, seconds} (status shows lag_bytes and
 * lag_seconds), the per-table sync state to facts.pglogical.sync. What
 * users get bitten by becomes a warning with a hint: an apply worker that
 * keeps restarting while the subscription says replicating, a confirmed
 * position that does not move although the source writes, a table missing
 * from the sync catalog, retained WAL growing; a subscription that stays
 * down after pgmover disabled and enabled it again (PG-NOTES: after a failed
 * slot creation it only recovers that way), and a lost slot, fail the step.
 */
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "pipeline/matviews.h"
#include "pipeline/pglogical/pglogical.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TICK_MS 1000
#define HISTORY 900 /* one sample a second: 15 minutes */
/*
 * How long the slot's confirmed position may stand still while the source
 * writes, how long the sync catalog may miss a table, and the window over
 * which retained WAL must grow: the job option stall_warning (30 s).
 */
#define DOWN_MS 15000  /* down this long: disable + enable */
#define LOOP_MS 180000 /* the window in which failures count */
/* retained WAL worth a warning: the job option retained_wal_warning (1 GiB) */

typedef struct sample {
	int64_t mono;
	int64_t lsn;      /* source WAL position, bytes */
	int64_t retained; /* WAL the slot holds, bytes */
} sample_t;

typedef struct follow {
	pgl_follow_mode_t mode;
	void (*ready)(pgm_step_t *s);
	uv_timer_t *timer;
	int64_t started;
	bool ensured, ensuring; /* the subscription exists (pgl_ensure_subscription) */
	bool finished;          /* ready: waiting for statements in flight to end */
	/* target */
	char status[32];      /* show_subscription_status */
	char sub_sync;        /* the subscription-level sync row, 0 when none */
	int64_t sub_ready_at; /* first seen 'r' */
	cJSON *tables;        /* name -> sync status ("r", "d", ...) */
	cJSON *copy;          /* name -> "copying" | "copied" */
	cJSON *copying;       /* [{table, rows_done}] now */
	int64_t down_since, enabled_at;
	int enable_tries;
	bool reenabling;                  /* disable, then enable: two transactions */
	int64_t apply_start, restarts[8]; /* the apply worker's start, its restarts */
	int nrestarts;
	int64_t rollbacks, rollback_at[8]; /* the target's rolled back transactions */
	int nrollbacks;
	int64_t origin_lsn, origin_moved; /* the last remote commit applied */
	/* source */
	sample_t hist[HISTORY];
	int nhist, head;
	int64_t confirmed, confirmed_moved;
	bool have_source;
	int64_t last_save;
	char sync_state[64]; /* last saved summary, to save on change */
} follow_t;

static void
follow_free(void *p)
{
	follow_t *f = p;

	cJSON_Delete(f->tables);
	cJSON_Delete(f->copy);
	cJSON_Delete(f->copying);
	free(f);
}

static follow_t *
follow_of(pgl_t *x)
{
	return x->phase;
}

/* ---- lag ---- */

static const sample_t *
sample_at(const follow_t *f, int age)
{
	/* age 0 is the newest */
	return &f->hist[(f->head - 1 - age + HISTORY) % HISTORY];
}

/*
 * Seconds since the source was at the confirmed position: find the two
 * samples around it and interpolate. Older than the history: at least as
 * old as the oldest sample.
 */
static double
lag_seconds(const follow_t *f, int64_t confirmed, int64_t now)
{
	const sample_t *newest;

	if (f->nhist == 0)
		return 0;
	newest = sample_at(f, 0);
	if (confirmed >= newest->lsn)
		return 0;
	for (int age = 1; age < f->nhist; age++) {
		const sample_t *older = sample_at(f, age), *newer = sample_at(f, age - 1);
		if (older->lsn <= confirmed) {
			double frac = newer->lsn > older->lsn
					      ? (double) (confirmed - older->lsn) / (double) (newer->lsn - older->lsn)
					      : 0;
			double t = (double) older->mono + frac * (double) (newer->mono - older->mono);
			return ((double) now - t) / 1000.0;
		}
	}
	return (double) (now - sample_at(f, f->nhist - 1)->mono) / 1000.0;
}

/* ---- progress and facts ---- */

static bool
all_ready(follow_t *f, const cJSON *expected, int *done, int *missing, char *names, size_t len)
{
	const cJSON *t;
	bool ok = true;

	*done = *missing = 0;
	names[0] = '\0';
	cJSON_ArrayForEach (t, expected) {
		const char *name = pgm_json_str(t, "table");
		const char *st = name ? cJSON_GetStringValue(cJSON_GetObjectItem(f->tables, name)) : NULL;

		if (st && strcmp(st, "r") == 0) {
			(*done)++;
			continue;
		}
		ok = false;
		if (st == NULL && name) {
			if ((*missing)++ < 10 && strlen(names) + strlen(name) + 3 < len)
				snprintf(names + strlen(names), len - strlen(names), "%s%s", names[0] ? ", " : "",
					 name);
		}
	}
	return ok && f->sub_sync == 'r' && strcmp(f->status, "replicating") == 0;
}

static const char *
phase_name(const follow_t *f, bool ready)
{
	if (strcmp(f->status, "down") == 0 || strcmp(f->status, "disabled") == 0)
		return f->status;
	if (ready)
		return "replicating";
	if (f->sub_sync != 'r')
		return cJSON_GetArraySize(f->copying) > 0 ? "copying" : "initializing";
	return "catching up";
}

static void
update_progress(pgl_t *x, const cJSON *expected, int done, bool ready)
{
	pgm_job_t *job = x->step->job;
	follow_t *f = follow_of(x);
	cJSON *p = cJSON_CreateObject(), *cur = cJSON_CreateArray();
	const cJSON *t, *lag = cJSON_GetObjectItem(job->facts, "lag");
	double bytes_total = 0, bytes_done = 0, elapsed = (double) (pgm_mono_ms() - f->started) / 1000.0;
	int copied = 0;

	cJSON_ArrayForEach (t, expected) {
		const char *name = pgm_json_str(t, "table");
		const char *cs = name ? cJSON_GetStringValue(cJSON_GetObjectItem(f->copy, name)) : NULL;
		double bytes = pgm_json_num(t, "bytes", 0), rows = pgm_json_num(t, "rows", 0);
		const cJSON *c;

		bytes_total += bytes;
		if (f->sub_sync == 'r' || (cs && strcmp(cs, "copied") == 0)) {
			bytes_done += bytes;
			copied++;
			continue;
		}
		cJSON_ArrayForEach (c, f->copying) {
			if (name && strcmp(pgm_json_str(c, "table"), name) == 0) {
				double r = pgm_json_num(c, "rows_done", 0);
				cJSON *o = cJSON_CreateObject();

				bytes_done += rows > 0 ? bytes * (r < rows ? r / rows : 1.0) : 0;
				pgm_json_set_str(o, "table", name);
				pgm_json_set_num(o, "rows_done", r);
				pgm_json_set_num(o, "rows_estimate", rows);
				cJSON_AddItemToArray(cur, o);
			}
		}
	}
	pgm_json_set_str(p, "name", f->mode == PGL_FOLLOW_WATCH ? "replication" : "initial sync");
	pgm_json_set_str(p, "phase", phase_name(f, ready));
	pgm_json_set_str(p, "subscription", f->status[0] ? f->status : "unknown");
	pgm_json_set_num(p, "tables_done", f->sub_sync == 'r' ? done : copied);
	pgm_json_set_num(p, "tables_total", cJSON_GetArraySize(expected));
	pgm_json_set_num(p, "bytes_done", bytes_done);
	pgm_json_set_num(p, "bytes_total", bytes_total);
	if (f->sub_sync != 'r' && elapsed > 1 && bytes_done > 0) {
		double rate = bytes_done / elapsed;
		pgm_json_set_num(p, "rate_bytes_per_sec", rate);
		pgm_json_set_num(p, "eta_seconds", (bytes_total - bytes_done) / rate);
	} else {
		pgm_json_set(p, "eta_seconds", cJSON_CreateNull());
	}
	pgm_json_set(p, "lag_bytes", cJSON_Duplicate(cJSON_GetObjectItem(lag, "bytes"), 1) ?: cJSON_CreateNull());
	pgm_json_set(p, "lag_seconds", cJSON_Duplicate(cJSON_GetObjectItem(lag, "seconds"), 1) ?: cJSON_CreateNull());
	pgm_json_set(p, "copying", cur);
	pgm_json_set_num(p, "elapsed_ms", (double) (pgm_mono_ms() - f->started));
	pgm_job_set_progress(job, p);
}

/* facts.pglogical.sync: saved when it changes, and every 10 s for the lag */
static void
update_facts(pgl_t *x, int done, int total)
{
	pgm_job_t *job = x->step->job;
	follow_t *f = follow_of(x);
	cJSON *sync = cJSON_CreateObject();
	char summary[64];

	pgm_json_set_str(sync, "status", f->status);
	if (f->sub_sync) {
		char st[2] = {f->sub_sync, '\0'};
		pgm_json_set_str(sync, "subscription", st);
	} else {
		pgm_json_set(sync, "subscription", cJSON_CreateNull());
	}
	pgm_json_set_num(sync, "tables_ready", done);
	pgm_json_set_num(sync, "tables_total", total);
	pgm_json_set(sync, "tables", cJSON_Duplicate(f->tables, 1));
	pgm_json_set_time(sync, "at", pgm_now_ms());
	pgm_json_set(pgm_json_obj(job->facts, "pglogical"), "sync", sync);
	snprintf(summary, sizeof(summary), "%s/%c/%d/%d", f->status, f->sub_sync ? f->sub_sync : '-', done, total);
	if (strcmp(summary, f->sync_state) != 0 || pgm_mono_ms() - f->last_save > 10000) {
		snprintf(f->sync_state, sizeof(f->sync_state), "%s", summary);
		f->last_save = pgm_mono_ms();
		pgm_job_checkpoint(job);
	}
}

/* ---- the target ---- */

static const char *target_sql =
	"SELECT (SELECT status FROM pglogical.show_subscription_status() WHERE subscription_name = $1),"
	"       (SELECT json_agg(json_build_array(s.sync_kind,"
	"                 CASE WHEN s.sync_relname IS NOT NULL THEN format('%I.%I', s.sync_nspname, s.sync_relname) END,"
	"                 s.sync_status))"
	"          FROM pglogical.local_sync_status s JOIN pglogical.subscription u ON u.sub_id = s.sync_subid"
	"         WHERE u.sub_name = $1),"
	"       (SELECT json_agg(json_build_array(format('%I.%I', n.nspname, c.relname), p.tuples_processed))"
	"          FROM pg_stat_progress_copy p JOIN pg_class c ON c.oid = p.relid"
	"          JOIN pg_namespace n ON n.oid = c.relnamespace WHERE p.datname = current_database()),"
	"       (SELECT (extract(epoch FROM min(a.backend_start)) * 1000)::bigint"
	"          FROM pg_stat_activity a, pglogical.subscription u"
	"         WHERE u.sub_name = $1 AND a.backend_type = format('pglogical apply %s:%s',"
	"               (SELECT oid FROM pg_database WHERE datname = current_database()), u.sub_id)),"
	"       (SELECT sub_slot_name FROM pglogical.subscription WHERE sub_name = $1),"
	"       (SELECT xact_rollback FROM pg_stat_database WHERE datname = current_database()),"
	"       (SELECT pg_wal_lsn_diff(o.remote_lsn, '0/0')::bigint FROM pg_replication_origin_status o"
	"          JOIN pglogical.subscription u ON u.sub_slot_name = o.external_id WHERE u.sub_name = $1)";

static void follow_finish(pgl_t *x);

static int
recent(const int64_t *ring, int n, int64_t now, int64_t window)
{
	int k = 0;

	for (int i = 0; i < 8 && i < n; i++)
		if (now - ring[i] < window)
			k++;
	return k;
}

/*
 * A crash-looping apply worker: pglogical starts it again every few
 * seconds, it fails at once (it lives a few milliseconds, so a sample a
 * second rarely sees it, and the status says down or replicating by
 * turns). What shows: the target rolls transactions back while the last
 * applied remote commit stays where it is. Returns true while it lasts.
 */
static bool
watch_apply(pgl_t *x, const PGresult *res, int64_t now)
{
	follow_t *f = follow_of(x);
	const char *start_text = pgm_pg_value(res, 0, 3);
	int64_t start = start_text ? strtoll(start_text, NULL, 10) : 0;
	int64_t rollbacks = pgm_pg_int64(res, 0, 5, 0);
	int64_t origin = pgm_pg_int64(res, 0, 6, 0);
	bool looping;

	if (start != 0) {
		if (f->apply_start != 0 && start != f->apply_start)
			f->restarts[f->nrestarts++ % 8] = now;
		f->apply_start = start;
	}
	if (f->rollbacks != 0 && rollbacks > f->rollbacks)
		f->rollback_at[f->nrollbacks++ % 8] = now;
	f->rollbacks = rollbacks;
	if (origin != f->origin_lsn || f->origin_moved == 0) {
		f->origin_lsn = origin;
		f->origin_moved = now;
	}
	/* pglogical restarts a failed worker after 5 s, and after a minute when it keeps failing */
	looping = (recent(f->rollback_at, f->nrollbacks, now, LOOP_MS) >= 2 && now - f->origin_moved > 15000) ||
		  recent(f->restarts, f->nrestarts, now, LOOP_MS) >= 3;
	if (looping) {
		char *msg = pgm_asprintf("the apply worker of subscription %s keeps failing and restarting: the "
					 "subscription says %s but applies nothing",
					 x->names.sub, f->status);
		pgm_job_warn(
			x->step->job, msg,
			"the target's server log has the worker's error (a conflict, a constraint or column only the "
			"target has, a missing role): fix it and the worker catches up by itself");
		free(msg);
	}
	return looping;
}

static void
on_reenabled(pgl_t *x, const PGresult *res)
{
	follow_of(x)->reenabling = false;
}

/* immediate: each of the two in its own transaction */
static void
on_disabled(pgl_t *x, const PGresult *res)
{
	const char *params[1] = {x->names.sub};

	pgl_query(x, false, "could not enable the subscription again",
		  "SELECT pglogical.alter_subscription_enable($1, true)", 1, params, on_reenabled);
}

/*
 * Down (or disabled) with no worker failing (no rolled back transaction on
 * the target for a while): after a failed slot creation
 * a subscription stays down until it is disabled and enabled again
 * (PG-NOTES). Three times at most; still down a minute later is fatal.
 */
static bool
watch_down(pgl_t *x, int64_t now, bool looping)
{
	follow_t *f = follow_of(x);
	const char *params[1] = {x->names.sub};

	if ((strcmp(f->status, "down") != 0 && strcmp(f->status, "disabled") != 0) || looping || f->reenabling ||
	    recent(f->rollback_at, f->nrollbacks, now, LOOP_MS) > 0) {
		/* up, or a worker that fails (and is restarted): disabling would not help */
		f->down_since = 0;
		return false;
	}
	if (f->down_since == 0)
		f->down_since = now;
	if (now - f->down_since < DOWN_MS || now - f->enabled_at < 20000)
		return false;
	if (f->enable_tries >= 3) {
		char *msg;

		if (now - f->enabled_at < 60000)
			return false;
		msg = pgm_asprintf("the subscription %s stays %s", x->names.sub, f->status);
		pgm_step_fail(
			x->step, msg, "pgmover disabled and enabled it again three times",
			"the target's server log says why (e.g. the source's output_plugin_libraries must list "
			"pglogical_output, or the source refused the connection); fix it, then \"pgmover retry\"");
		free(msg);
		return true;
	}
	f->enable_tries++;
	f->enabled_at = now;
	f->reenabling = true;
	{
		char *warn = pgm_asprintf("the subscription %s was %s; pgmover disabled and enabled it again",
					  x->names.sub, f->status);
		pgm_job_warn(
			x->step->job, warn,
			"if it stays down, the target's server log says why (a failed slot creation leaves it down "
			"until it is disabled and enabled)");
		free(warn);
	}
	pgl_query(x, false, "could not disable the subscription",
		  "SELECT pglogical.alter_subscription_disable($1, true)", 1, params, on_disabled);
	return false;
}

static void follow_complete(pgl_t *x);

static void
on_target(pgl_t *x, const PGresult *res)
{
	pgm_job_t *job = x->step->job;
	follow_t *f = follow_of(x);
	const cJSON *expected = cJSON_GetObjectItem(cJSON_GetObjectItem(job->facts, "pglogical"), "tables");
	int64_t now = pgm_mono_ms();
	cJSON *rows = cJSON_Parse(pgm_pg_value(res, 0, 1) ? pgm_pg_value(res, 0, 1) : "[]");
	cJSON *copying = cJSON_Parse(pgm_pg_value(res, 0, 2) ? pgm_pg_value(res, 0, 2) : "[]");
	const cJSON *r;
	cJSON *c;
	char missing_names[512];
	int done, missing;
	bool ready, looping;

	if (f->finished) {
		cJSON_Delete(rows);
		cJSON_Delete(copying);
		follow_complete(x);
		return;
	}
	if (pgm_pg_value(res, 0, 0) == NULL) {
		char *msg = pgm_asprintf("the subscription %s is gone from the target", x->names.sub);

		cJSON_Delete(rows);
		cJSON_Delete(copying);
		pgm_step_fail(x->step, msg, "pgmover created it and did not drop it: someone else did",
			      "\"pgmover retry\" creates it again and copies the data anew");
		free(msg);
		return;
	}
	snprintf(f->status, sizeof(f->status), "%s", pgm_pg_value(res, 0, 0));
	if (pgm_pg_value(res, 0, 4)) {
		cJSON *a = pgm_artifact_find(job, PGL_KIND_SUBSCRIPTION, "target", x->names.sub);
		if (a && !pgm_json_str(a, "slot")) {
			pgm_json_set_str(a, "slot", pgm_pg_value(res, 0, 4));
			pgm_job_checkpoint(job);
		}
	}
	/* the sync catalog */
	f->sub_sync = 0;
	cJSON_Delete(f->tables);
	f->tables = cJSON_CreateObject();
	cJSON_ArrayForEach (r, rows) {
		const char *rel = cJSON_GetStringValue(cJSON_GetArrayItem(r, 1));
		const char *st = cJSON_GetStringValue(cJSON_GetArrayItem(r, 2));

		if (st == NULL)
			continue;
		if (rel == NULL)
			f->sub_sync = st[0];
		else
			pgm_json_set_str(f->tables, rel, st);
	}
	if (f->sub_sync == 'r' && f->sub_ready_at == 0)
		f->sub_ready_at = now;
	/* the copy: tables that left pg_stat_progress_copy are copied */
	if (f->copy == NULL)
		f->copy = cJSON_CreateObject();
	cJSON_ArrayForEach (c, f->copy) {
		bool still = false;
		const cJSON *p;
		cJSON_ArrayForEach (p, copying)
			still = still || strcmp(cJSON_GetStringValue(cJSON_GetArrayItem(p, 0)), c->string) == 0;
		if (!still)
			cJSON_SetValuestring(c, "copied");
	}
	cJSON_Delete(f->copying);
	f->copying = cJSON_CreateArray();
	cJSON_ArrayForEach (c, copying) {
		cJSON *o = cJSON_CreateObject();
		const char *name = cJSON_GetStringValue(cJSON_GetArrayItem(c, 0));

		pgm_json_set_str(o, "table", name);
		pgm_json_set_num(o, "rows_done", cJSON_GetNumberValue(cJSON_GetArrayItem(c, 1)));
		cJSON_AddItemToArray(f->copying, o);
		pgm_json_set_str(f->copy, name, "copying");
	}
	cJSON_Delete(rows);
	cJSON_Delete(copying);

	looping = watch_apply(x, res, now);
	ready = all_ready(f, expected, &done, &missing, missing_names, sizeof(missing_names));
	if (f->sub_sync == 'r' && missing > 0 &&
	    now - f->sub_ready_at > pgm_jobopt_int(job->options, "stall_warning")) {
		char *msg = pgm_asprintf("%d table(s) are missing from pglogical's sync catalog of subscription %s: %s",
					 missing, x->names.sub, missing_names);
		char *hint = pgm_asprintf("their rows may never have been copied: on the target run SELECT "
					  "pglogical.alter_subscription_resynchronize_table('%s', 'TABLE') for each; "
					  "pgmover waits for them to be ready",
					  x->names.sub);
		pgm_job_warn(job, msg, hint);
		free(msg);
		free(hint);
	}
	update_progress(x, expected, done, ready);
	update_facts(x, done, cJSON_GetArraySize(expected));
	if (watch_down(x, now, looping))
		return;
	if (ready && f->mode != PGL_FOLLOW_WATCH)
		follow_finish(x);
}

/* ---- the source ---- */

static const char *source_sql = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint,"
				"       pg_wal_lsn_diff(s.confirmed_flush_lsn, '0/0')::bigint,"
				"       pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn)::bigint,"
				"       s.wal_status, s.active, extract(epoch FROM r.flush_lag)::float8"
				"  FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid"
				" WHERE s.slot_name = $1";

static void
on_source(pgl_t *x, const PGresult *res)
{
	pgm_job_t *job = x->step->job;
	follow_t *f = follow_of(x);
	int64_t now = pgm_mono_ms(), cur, confirmed, retained;
	const char *wal_status;
	sample_t *smp;
	cJSON *lag;
	int window;

	if (f->finished) {
		follow_complete(x);
		return;
	}
	if (pgm_pg_ntuples(res) != 1 || pgm_pg_value(res, 0, 1) == NULL) {
		/* no slot (yet): being created, or gone with a failed initialization */
		lag = cJSON_CreateObject();
		pgm_json_set(lag, "bytes", cJSON_CreateNull());
		pgm_json_set(lag, "seconds", cJSON_CreateNull());
		pgm_json_set_time(lag, "at", pgm_now_ms());
		pgm_json_set(job->facts, "lag", lag);
		return;
	}
	cur = pgm_pg_int64(res, 0, 0, 0);
	confirmed = pgm_pg_int64(res, 0, 1, 0);
	retained = pgm_pg_int64(res, 0, 2, 0);
	wal_status = pgm_pg_value(res, 0, 3) ? pgm_pg_value(res, 0, 3) : "";
	smp = &f->hist[f->head];
	smp->mono = now;
	smp->lsn = cur;
	smp->retained = retained;
	f->head = (f->head + 1) % HISTORY;
	if (f->nhist < HISTORY)
		f->nhist++;

	lag = cJSON_CreateObject();
	pgm_json_set_num(lag, "bytes", (double) (cur > confirmed ? cur - confirmed : 0));
	pgm_json_set_num(lag, "seconds", lag_seconds(f, confirmed, now));
	pgm_json_set_num(lag, "retained_wal_bytes", (double) retained);
	if (pgm_pg_value(res, 0, 5))
		pgm_json_set_num(lag, "walsender_flush_lag_seconds", strtod(pgm_pg_value(res, 0, 5), NULL));
	pgm_json_set_time(lag, "at", pgm_now_ms());
	pgm_json_set(job->facts, "lag", lag);

	window = (int) (pgm_jobopt_int(job->options, "stall_warning") / TICK_MS);
	if (window < 1)
		window = 1;
	if (window >= HISTORY)
		window = HISTORY - 1;
	/* the confirmed position must move while the source writes */
	if (!f->have_source || confirmed != f->confirmed) {
		f->confirmed = confirmed;
		f->confirmed_moved = now;
	} else if (f->sub_sync == 'r' && cur > confirmed &&
		   now - f->confirmed_moved > pgm_jobopt_int(job->options, "stall_warning")) {
		char *msg =
			pgm_asprintf("replication is stalled: the slot of subscription %s has not confirmed anything "
				     "for a while although the source writes",
				     x->names.sub);
		pgm_job_warn(
			job, msg,
			"look at the target's server log (the apply worker's errors) and at "
			"pglogical.show_subscription_status() there; the source keeps the WAL until it catches up");
		free(msg);
	}
	f->have_source = true;
	/* retained WAL: big, and still growing over the stall_warning window (one sample a second) */
	if (retained > pgm_jobopt_int(job->options, "retained_wal_warning") && f->nhist > window &&
	    retained > sample_at(f, window)->retained) {
		char *msg = pgm_asprintf("the replication slot of job %s retains more and more WAL on the source",
					 job->name);
		pgm_job_warn(
			job, msg,
			"the subscription does not keep up or is stuck; the source's disk fills until it catches up "
			"or the job is aborted (which drops the slot)");
		free(msg);
	}
	if (strcmp(wal_status, "unreserved") == 0)
		pgm_job_warn(job, "the replication slot's WAL is about to be removed (wal_status unreserved)",
			     "raise max_slot_wal_keep_size on the source, or find why the target does not keep up");
	if (strcmp(wal_status, "lost") == 0)
		pgm_step_fail(x->step, "the source removed WAL the subscription still needed (its slot is lost)",
			      "max_slot_wal_keep_size was reached while the target lagged",
			      "\"pgmover retry\" creates the subscription anew and copies the data again");
}

/* ---- the loop ---- */

static void
follow_error(pgl_t *x, bool source, const char *what, const pgm_pg_error_t *err)
{
	follow_t *f = follow_of(x);
	char *msg;

	if (f->finished) {
		follow_complete(x);
		return;
	}
	f->ensuring = false; /* an ensure cut short starts again at the next tick */
	if (!pgm_sql_connection_lost(err)) {
		pgl_fail(x, source, what, err);
		return;
	}
	/* the replication runs on the servers: keep trying */
	msg = pgm_asprintf("pgmover lost its connection to the %s while following the replication",
			   source ? "source" : "target");
	pgm_job_warn(x->step->job, msg, "it reconnects every second; the replication itself runs on the servers");
	free(msg);
}

static void on_tick(uv_timer_t *t);

static void
on_ensured(pgl_t *x)
{
	follow_t *f = follow_of(x);

	f->ensured = true;
	f->ensuring = false;
	uv_timer_stop(f->timer);
	uv_timer_start(f->timer, on_tick, 0, TICK_MS);
}

static void
on_tick(uv_timer_t *t)
{
	pgm_step_t *s = t->data;
	pgl_t *x = pgl_get(s);
	follow_t *f = follow_of(x);
	pgm_job_t *job = s->job;
	const char *params[1];
	const cJSON *a;

	if (f->mode == PGL_FOLLOW_READY && pgm_mono_ms() - f->started > pgm_jobopt_int(job->options, "drain_timeout")) {
		pgm_step_fail(s, "the subscription did not become ready in time to drain it",
			      "the initial copy or the catch-up is still running",
			      "raise drain_timeout, or thaw and wait "
			      "until the job is synced again");
		return;
	}
	if (!f->ensured) {
		/* the subscription first: created in syncing, re-created after a failure */
		if (!f->ensuring && !pgl_busy(x, false)) {
			f->ensuring = true;
			pgl_ensure_subscription(x, on_ensured);
		}
		return;
	}
	if (!pgl_busy(x, false)) {
		params[0] = x->names.sub;
		pgl_query(x, false, "could not read the subscription's state on the target", target_sql, 1, params,
			  on_target);
	}
	a = pgm_artifact_find(job, PGL_KIND_SUBSCRIPTION, "target", x->names.sub);
	if (!pgl_busy(x, true) && a && pgm_json_str(a, "slot")) {
		params[0] = pgm_json_str(a, "slot");
		pgl_query(x, true, "could not read the replication slot on the source", source_sql, 1, params,
			  on_source);
	}
}

static void
sync_done(pgm_step_t *s, void *data)
{
	pgm_step_done(s, PGM_EV_DONE);
}

/* ready, and no statement of the monitor in flight: hand over (the initial sync: once the
 * materialized views are refreshed, the schema having made them unpopulated) */
static void
follow_complete(pgl_t *x)
{
	pgm_step_t *s = x->step;
	follow_t *f = follow_of(x);
	void (*ready)(pgm_step_t *) = f->ready;
	bool sync = f->mode == PGL_FOLLOW_SYNC;

	if (pgl_busy(x, true) || pgl_busy(x, false))
		return;
	pgl_set_phase(x, NULL, NULL);
	x->on_error = pgl_fail;
	if (sync)
		pgm_matviews_refresh(s, sync_done, NULL);
	else
		ready(s);
}

static void
follow_finish(pgl_t *x)
{
	pgm_step_t *s = x->step;
	pgm_job_t *job = s->job;
	follow_t *f = follow_of(x);
	cJSON *pgl = pgm_json_obj(job->facts, "pglogical");

	if (f->finished)
		return;
	f->finished = true;
	uv_timer_stop(f->timer);
	if (!cJSON_IsNumber(cJSON_GetObjectItem(pgl, "sync_ms")) &&
	    cJSON_IsNumber(cJSON_GetObjectItem(pgl, "sync_started_ms"))) {
		double ms = (double) pgm_now_ms() - pgm_json_num(pgl, "sync_started_ms", 0);
		pgm_json_set_num(pgl, "sync_ms", ms);
		pgm_json_set_time(pgl, "synced_at", pgm_now_ms());
		pgm_notice("job %s: initial sync finished in %.1f s: every table is replicating", job->name,
			   ms / 1000.0);
	}
	pgm_job_checkpoint(job);
	follow_complete(x);
}

void
pgl_follow(pgl_t *x, pgl_follow_mode_t mode, void (*ready)(pgm_step_t *s))
{
	follow_t *f = pgm_calloc(1, sizeof(*f));

	f->mode = mode;
	f->ready = ready;
	f->started = pgm_mono_ms();
	f->timer = pgm_step_timer(x->step);
	f->tables = cJSON_CreateObject();
	f->copy = cJSON_CreateObject();
	f->copying = cJSON_CreateArray();
	pgl_set_phase(x, f, follow_free);
	x->on_error = follow_error;
	f->timer->data = x->step;
	uv_timer_start(f->timer, on_tick, 0, TICK_MS);
}

void
pgm_pglogical_sync(pgm_step_t *s)
{
	pgl_follow(pgl_get(s), PGL_FOLLOW_SYNC, NULL);
}

void
pgm_pglogical_synced(pgm_step_t *s)
{
	pgl_follow(pgl_get(s), PGL_FOLLOW_WATCH, NULL);
}
