/*
 * apply.c — rounds of apply of the triggers method (see triggers.h for why
 * they converge to the source's exact state).
 *
 * A round:
 *   1. the holder, a source session, opens a REPEATABLE READ READ ONLY
 *      transaction: its snapshot S (pg_current_snapshot) is exported; in S
 *      the tables are checked against the registry (a new, altered, renamed
 *      or dropped table stops the job), and the tables with logged changes
 *      are counted (rows, the oldest, TRUNCATEs);
 *   2. `jobs` workers, each a source session in S and a target session,
 *      take those tables one at a time. For a keyed table, the distinct
 *      logged keys and the current rows of those keys (or none: deleted)
 *      are relayed by COPY into a temporary table on the target, whose
 *      rows of those keys are then deleted and the present ones inserted;
 *      for a table without a key, each row image's net count (+ inserted,
 *      - deleted) is relayed, and that many copies are inserted or deleted
 *      (one of identical duplicates, by ctid); a table TRUNCATEd in S is
 *      emptied and copied whole as S shows it. The table's progress row
 *      (S) is written on the target in the same transaction;
 *   3. the holder's transaction ends, and the log rows of the transactions
 *      visible in S are deleted from the source, table by table.
 * After a restart the log rows visible in a table's stored progress are
 * deleted first (a crash between the target's commit and that delete),
 * so that the log holds exactly what is not applied; the first progress of
 * every table is the initial copy's snapshot.
 *
 * Memory does not depend on the size of a transaction: rows stream through
 * relay.c, and the target's temporary table holds them.
 */
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "fsm/artifact.h"
#include "pg/relay.h"
#include "pipeline/triggers/triggers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_WORKERS 32
#define BUSY_INTERVAL_MS 500 /* the next round, after one that applied something */
#define SCHEMA_CHECK_MS 1000 /* the tables compared with the registry at most this often (every drain round) */
#define IDLE_INTERVAL_MS 1000

typedef struct apply apply_t;

typedef struct aworker {
	apply_t *ap;
	pgm_pg_conn_t *src, *dst;
	bool src_ok, dst_ok;
	int cur; /* index into the round's pending tables, or -1 */
} aworker_t;

typedef struct pending {
	int table; /* index into ap->tables */
	int64_t rows;
	bool truncated;
} pending_t;

struct apply {
	pgm_step_t *step;
	trg_mode_t mode;
	void (*then)(pgm_step_t *s);
	char *qs;         /* pgmover's schema, quoted (the same name on both sides) */
	char *schema_lit; /* its name as a literal */
	bool binary;
	pgm_pg_conn_t *holder;
	bool holder_ok;
	trg_table_t *tables;
	int ntables;
	char *snap; /* S */
	char *export_id;
	pending_t *pending;
	int npending, next_pending, done_pending, applied_tables;
	bool *applied; /* per pending entry: committed on the target */
	int64_t rows_pending, rows_applied, rounds;
	int64_t bytes_log;       /* the bytes of the log rows behind */
	int64_t bytes_relations; /* the log's tables on disk */
	double oldest_s;
	int64_t round_started, started, bytes_round;
	bool in_round;
	int64_t schema_checked;  /* when the tables were last compared with the registry */
	int64_t behind_at_start; /* log rows counted at the round's start */
	bool caught_up;          /* DRAIN: a round found nothing */
	aworker_t workers[MAX_WORKERS];
	int nworkers, workers_ready;
	int joined; /* workers in S this round */
	uv_timer_t *timer;
	double rate; /* rows applied per second, smoothed */
};

static void round_start(apply_t *ap);
static void worker_next(aworker_t *w);

static void
apply_free(void *p)
{
	apply_t *ap = p;

	trg_tables_free(ap->tables, ap->ntables);
	free(ap->pending);
	free(ap->applied);
	free(ap->snap);
	free(ap->export_id);
	free(ap->qs);
	free(ap->schema_lit);
	free(ap);
}

static void
apply_fail(apply_t *ap, const char *what, const pgm_pg_error_t *err)
{
	pgm_step_fail_pg(ap->step, what, err, "fix the cause, then \"pgmover retry\": the apply resumes where it was");
}

/* ---- lag and progress ---- */

static void
publish(apply_t *ap)
{
	pgm_job_t *job = ap->step->job;
	cJSON *p = cJSON_CreateObject(), *f = pgm_json_obj(job->facts, "triggers"), *lag = cJSON_CreateObject();
	double eta = ap->rate > 0 ? (double) ap->rows_pending / ap->rate : -1;

	pgm_json_set_str(p, "phase",
			 ap->mode == TRG_DRAIN     ? "draining"
			 : ap->mode == TRG_CATCHUP ? "catching up"
						   : "following");
	pgm_json_set_num(p, "log_rows_behind", (double) ap->rows_pending);
	pgm_json_set_num(p, "log_bytes", (double) ap->bytes_log);
	pgm_json_set_num(p, "log_relation_bytes", (double) ap->bytes_relations);
	pgm_json_set_num(p, "oldest_seconds", ap->oldest_s);
	pgm_json_set_num(p, "rows_applied", (double) ap->rows_applied);
	pgm_json_set_num(p, "rate_rows_per_sec", ap->rate);
	if (eta >= 0)
		pgm_json_set_num(p, "eta_seconds", eta);
	else
		pgm_json_set(p, "eta_seconds", cJSON_CreateNull());
	pgm_json_set_num(p, "rounds", (double) ap->rounds);
	pgm_job_set_progress(job, p);
	/* the protocol's lag fields: bytes of log behind and the age of the oldest change */
	pgm_json_set_num(lag, "bytes", (double) ap->bytes_log);
	pgm_json_set_num(lag, "seconds", ap->oldest_s);
	pgm_json_set_num(lag, "rows", (double) ap->rows_pending);
	pgm_json_set(job->facts, "lag", lag);
	pgm_json_set_num(f, "rows_applied", (double) ap->rows_applied);
}

/* ---- the end of a round ---- */

static void trg_apply_tick(uv_timer_t *t);

static void
schedule(apply_t *ap, int ms)
{
	if (ap->timer == NULL) {
		ap->timer = pgm_step_timer(ap->step);
		ap->timer->data = ap;
	}
	uv_timer_start(ap->timer, trg_apply_tick, (uint64_t) ms, 0);
}

static void
round_finished(apply_t *ap)
{
	pgm_step_t *s = ap->step;
	int64_t ms = pgm_mono_ms() - ap->round_started;
	int64_t applied = 0;

	for (int i = 0; i < ap->npending; i++)
		if (ap->applied[i])
			applied += ap->pending[i].rows;
	ap->rows_applied += applied;
	if (applied > 0 && ms > 0) {
		double r = (double) applied * 1000.0 / (double) ms;
		ap->rate = ap->rate > 0 ? 0.7 * ap->rate + 0.3 * r : r;
	}
	ap->in_round = false;
	ap->rounds++;
	/* what the round applied is no longer behind; what came since is counted by the next */
	if (ap->rows_pending > 0) {
		ap->bytes_log = applied >= ap->rows_pending
					? 0
					: ap->bytes_log * (ap->rows_pending - applied) / ap->rows_pending;
		ap->rows_pending = ap->rows_pending > applied ? ap->rows_pending - applied : 0;
	}
	publish(ap);
	if (ap->rounds % 20 == 0 || ap->mode != TRG_FOLLOW)
		pgm_job_checkpoint(s->job);
	pgm_debug("job %s: apply round %lld: %d table(s), %lld change(s) in %lld ms", s->job->name,
		  (long long) ap->rounds, ap->npending, (long long) applied, (long long) ms);
	if (ap->mode == TRG_CATCHUP && ap->behind_at_start <= pgm_jobopt_int(s->job->options, "catchup_rows")) {
		void (*then)(pgm_step_t *) = ap->then;

		pgm_notice("job %s: the target has caught up with the change log (%lld row(s) were behind)",
			   s->job->name, (long long) ap->behind_at_start);
		ap->then = NULL;
		if (then)
			then(s);
		return;
	}
	if (ap->mode == TRG_DRAIN && ap->npending == 0) {
		void (*then)(pgm_step_t *) = ap->then;

		ap->then = NULL;
		if (then)
			then(s);
		return;
	}
	schedule(ap, ap->npending > 0 || ap->mode == TRG_DRAIN ? (ap->mode == TRG_DRAIN ? 0 : BUSY_INTERVAL_MS)
							       : IDLE_INTERVAL_MS);
}

static void
on_log_deleted(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	apply_t *ap = data;

	if (err) {
		apply_fail(ap, "could not remove the applied changes from the source's log", err);
		return;
	}
	round_finished(ap);
}

/* the holder's snapshot ends; the applied part of the log goes */
static void
on_holder_commit(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	apply_t *ap = data;
	pgm_buf_t b = {0};
	char *snap;

	if (err) {
		apply_fail(ap, "could not end the apply snapshot on the source", err);
		return;
	}
	snap = pgm_quote_literal(ap->snap);
	for (int i = 0; i < ap->npending; i++) {
		trg_table_t *t = &ap->tables[ap->pending[i].table];

		if (!ap->applied[i])
			continue;
		if (ap->pending[i].rows > 0)
			pgm_buf_appendf(&b,
					"DELETE FROM %s.%c%lld WHERE pg_visible_in_snapshot(pgm_xid, %s::pg_snapshot);",
					ap->qs, t->keycols ? 'k' : 'r', (long long) t->relid, snap);
		if (ap->pending[i].truncated)
			pgm_buf_appendf(
				&b,
				"DELETE FROM %s.truncates WHERE relid = %lld AND pg_visible_in_snapshot(pgm_xid, "
				"%s::pg_snapshot);",
				ap->qs, (long long) t->relid, snap);
	}
	free(snap);
	if (b.s == NULL) {
		round_finished(ap);
		return;
	}
	pgm_pg_query(ap->holder, b.s, 0, NULL, on_log_deleted, ap);
	free(b.s);
}

static void
on_worker_commit(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	aworker_t *w = data;

	if (err) {
		apply_fail(w->ap, "could not end a worker's snapshot on the source", err);
		return;
	}
	w->src_ok = true;
	w->ap->workers_ready++;
	if (w->ap->workers_ready == w->ap->nworkers)
		pgm_pg_query(w->ap->holder, "COMMIT", 0, NULL, on_holder_commit, w->ap);
}

/* every pending table is applied: the workers leave S, then the holder */
static void
round_applied(apply_t *ap)
{
	ap->workers_ready = 0;
	for (int i = 0; i < ap->nworkers; i++) {
		ap->workers[i].src_ok = false;
		pgm_pg_query(ap->workers[i].src, "COMMIT", 0, NULL, on_worker_commit, &ap->workers[i]);
	}
}

/* ---- one table on one worker ---- */

static void
table_done(aworker_t *w)
{
	apply_t *ap = w->ap;

	ap->applied[w->cur] = true;
	ap->done_pending++;
	w->cur = -1;
	if (ap->done_pending == ap->npending) {
		/* every worker must be in S before any leaves it */
		if (ap->joined == ap->nworkers)
			round_applied(ap);
	} else {
		worker_next(w);
	}
}

static void
on_target_commit(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	aworker_t *w = data;

	if (err) {
		char *what = pgm_asprintf("could not apply the changes of %s on the target",
					  w->ap->tables[w->ap->pending[w->cur].table].name);
		apply_fail(w->ap, what, err);
		free(what);
		return;
	}
	table_done(w);
}

/* the relayed rows are in the temporary table (or the table itself): merge them, record S, commit */
static void
on_relayed(pgm_relay_t *r, int64_t bytes, const pgm_pg_error_t *err, bool from_source, void *data)
{
	aworker_t *w = data;
	apply_t *ap = w->ap;
	pending_t *p = &ap->pending[w->cur];
	trg_table_t *t = &ap->tables[p->table];
	pgm_buf_t b = {0};
	char *snap;

	if (err) {
		char *what = pgm_asprintf("could not %s the changes of %s", from_source ? "read" : "write", t->name);
		apply_fail(ap, what, err);
		free(what);
		return;
	}
	ap->bytes_round += bytes;
	if (!p->truncated && t->keycols) {
		pgm_buf_appendf(&b, "DELETE FROM ONLY %s t USING pg_temp.pgm_k%lld l WHERE %s;", t->ident,
				(long long) t->relid, t->keyjoin);
		pgm_buf_appendf(&b, "INSERT INTO %s (%s) SELECT %s FROM pg_temp.pgm_k%lld WHERE pgm_present;", t->ident,
				t->cols, t->cols, (long long) t->relid);
	} else if (!p->truncated) {
		/* each image's net count: -n deletes n of its identical rows, +n inserts n copies */
		pgm_buf_appendf(
			&b,
			"DO $pgm$ DECLARE pgm_row record; pgm_k bigint; BEGIN"
			" FOR pgm_row IN SELECT img, -n AS n FROM pg_temp.pgm_r%lld WHERE n < 0 LOOP"
			"   DELETE FROM ONLY %s WHERE ctid = ANY (ARRAY(SELECT t.ctid FROM ONLY %s t"
			"     WHERE t IS NOT DISTINCT FROM jsonb_populate_record(NULL::%s, pgm_row.img) LIMIT pgm_row.n));"
			"   GET DIAGNOSTICS pgm_k = ROW_COUNT;"
			"   IF pgm_k < pgm_row.n THEN RAISE EXCEPTION"
			"     'pgmover: %% of %% row(s) to delete not found on the target', pgm_row.n - pgm_k, pgm_row.n"
			"     USING DETAIL = 'row ' || pgm_row.img::text; END IF;"
			" END LOOP;"
			" INSERT INTO %s (%s) SELECT %s FROM pg_temp.pgm_r%lld x,"
			"   jsonb_populate_record(NULL::%s, x.img) r, generate_series(1, x.n) WHERE x.n > 0;"
			" END $pgm$;",
			(long long) t->relid, t->ident, t->ident, t->ident, t->ident, t->cols, t->rsel,
			(long long) t->relid, t->ident);
	}
	snap = pgm_quote_literal(ap->snap);
	pgm_buf_appendf(&b,
			"INSERT INTO %s.applied (relid, snapshot, at) VALUES (%lld, %s, now())"
			" ON CONFLICT (relid) DO UPDATE SET snapshot = excluded.snapshot, at = excluded.at;"
			"COMMIT",
			ap->qs, (long long) t->relid, snap);
	free(snap);
	pgm_pg_query(w->dst, b.s, 0, NULL, on_target_commit, w);
	free(b.s);
}

/* the target's transaction is open and its temporary table empty: relay */
static void
on_target_ready(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	aworker_t *w = data;
	apply_t *ap = w->ap;
	pending_t *p = &ap->pending[w->cur];
	trg_table_t *t = &ap->tables[p->table];
	const char *fmt = ap->binary ? "(FORMAT binary)" : "(FORMAT text)";
	char *out, *in;

	if (err) {
		char *what = pgm_asprintf("could not prepare the apply of %s on the target", t->name);
		apply_fail(ap, what, err);
		free(what);
		return;
	}
	if (p->truncated) {
		out = pgm_asprintf("COPY (SELECT %s FROM ONLY %s) TO STDOUT %s", t->cols, t->ident, fmt);
		in = pgm_asprintf("COPY %s (%s) FROM STDIN %s", t->ident, t->cols, fmt);
	} else if (t->keycols) {
		out = pgm_asprintf("COPY (SELECT t.ctid IS NOT NULL, %s FROM (SELECT DISTINCT %s FROM %s.k%lld) l"
				   " LEFT JOIN ONLY %s t ON %s) TO STDOUT %s",
				   t->sel, t->keycols, ap->qs, (long long) t->relid, t->ident, t->keyjoin, fmt);
		in = pgm_asprintf("COPY pg_temp.pgm_k%lld FROM STDIN %s", (long long) t->relid, fmt);
	} else {
		out = pgm_asprintf(
			"COPY (SELECT img, sum(d)::bigint FROM (SELECT old AS img, -1 AS d FROM %s.r%lld"
			" WHERE old IS NOT NULL UNION ALL SELECT new, 1 FROM %s.r%lld WHERE new IS NOT NULL) x"
			" GROUP BY img HAVING sum(d) <> 0) TO STDOUT %s",
			ap->qs, (long long) t->relid, ap->qs, (long long) t->relid, fmt);
		in = pgm_asprintf("COPY pg_temp.pgm_r%lld FROM STDIN %s", (long long) t->relid, fmt);
	}
	if (pgm_relay_start(w->src, out, w->dst, in, on_relayed, w) == NULL) {
		pgm_pg_error_t e = {"", (char *) "the target connection is not usable", NULL, NULL, NULL};
		apply_fail(ap, "could not start the apply", &e);
	}
	free(out);
	free(in);
}

static void
worker_next(aworker_t *w)
{
	apply_t *ap = w->ap;
	pending_t *p;
	trg_table_t *t;
	pgm_buf_t b = {0};

	if (ap->next_pending >= ap->npending)
		return;
	w->cur = ap->next_pending++;
	p = &ap->pending[w->cur];
	t = &ap->tables[p->table];
	pgm_buf_append(&b, "BEGIN;");
	if (p->truncated)
		pgm_buf_appendf(&b, "TRUNCATE ONLY %s;", t->ident);
	else if (t->keycols)
		pgm_buf_appendf(&b,
				"CREATE TEMP TABLE IF NOT EXISTS pgm_k%lld ON COMMIT DELETE ROWS AS"
				" SELECT true AS pgm_present, %s FROM ONLY %s WITH NO DATA;",
				(long long) t->relid, t->cols, t->ident);
	else
		pgm_buf_appendf(
			&b, "CREATE TEMP TABLE IF NOT EXISTS pgm_r%lld (img jsonb, n bigint) ON COMMIT DELETE ROWS;",
			(long long) t->relid);
	pgm_pg_query(w->dst, b.s, 0, NULL, on_target_ready, w);
	free(b.s);
}

/* ---- the start of a round ---- */

static void
on_worker_snapshot(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	aworker_t *w = data;

	if (err) {
		apply_fail(w->ap, "could not join the apply snapshot on the source", err);
		return;
	}
	w->ap->joined++;
	if (w->ap->done_pending == w->ap->npending) {
		if (w->ap->joined == w->ap->nworkers)
			round_applied(w->ap);
		return;
	}
	worker_next(w);
}

static void
on_pending(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	apply_t *ap = data;
	int n = pgm_pg_ntuples(res);

	if (err) {
		apply_fail(ap, "could not read the change log on the source", err);
		return;
	}
	/* rows: relid, rows, oldest age, truncated; the last row is the log's size */
	free(ap->pending);
	free(ap->applied);
	ap->pending = pgm_calloc((size_t) n + 1, sizeof(pending_t));
	ap->applied = pgm_calloc((size_t) n + 1, sizeof(bool));
	ap->npending = ap->next_pending = ap->done_pending = ap->joined = 0;
	ap->rows_pending = 0;
	ap->bytes_log = 0;
	ap->oldest_s = 0;
	for (int r = 0; r < n; r++) {
		int64_t relid = pgm_pg_int64(res, r, 0, 0), rows = pgm_pg_int64(res, r, 1, 0);
		double age = pgm_pg_value(res, r, 2) ? strtod(pgm_pg_value(res, r, 2), NULL) : 0;
		bool trunc = pgm_pg_value(res, r, 3) && strcmp(pgm_pg_value(res, r, 3), "t") == 0;
		int idx = -1;

		if (relid == 0) {
			ap->bytes_relations = rows; /* the log's tables on disk, dead rows included */
			continue;
		}
		ap->bytes_log += pgm_pg_int64(res, r, 4, 0);
		for (int i = 0; i < ap->ntables; i++)
			if (ap->tables[i].relid == relid)
				idx = i;
		if (idx < 0)
			continue;
		for (int k = 0; k < ap->npending; k++)
			if (ap->pending[k].table == idx) {
				ap->pending[k].rows += rows;
				ap->pending[k].truncated |= trunc;
				idx = -2;
			}
		if (age > ap->oldest_s)
			ap->oldest_s = age;
		ap->rows_pending += rows;
		if (idx == -2)
			continue;
		ap->pending[ap->npending].table = idx;
		ap->pending[ap->npending].rows = rows;
		ap->pending[ap->npending].truncated = trunc;
		ap->npending++;
	}
	ap->behind_at_start = ap->rows_pending;
	publish(ap);
	if (ap->npending == 0) {
		pgm_pg_query(ap->holder, "COMMIT", 0, NULL, on_holder_commit, ap);
		return;
	}
	{
		char *sql =
			pgm_asprintf("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '%s'",
				     ap->export_id);
		for (int i = 0; i < ap->nworkers; i++)
			pgm_pg_query(ap->workers[i].src, sql, 0, NULL, on_worker_snapshot, &ap->workers[i]);
		free(sql);
	}
}

/* in S: what is logged, table by table (a round's whole work list) */
static char *
pending_sql(apply_t *ap)
{
	pgm_buf_t b = {0};

	for (int i = 0; i < ap->ntables; i++) {
		trg_table_t *t = &ap->tables[i];

		pgm_buf_appendf(&b,
				"SELECT %lld::bigint, count(*), extract(epoch FROM now() - min(pgm_at))::float8, false,"
				" sum(pg_column_size(l.*))::bigint FROM %s.%c%lld l HAVING count(*) > 0 UNION ALL ",
				(long long) t->relid, ap->qs, t->keycols ? 'k' : 'r', (long long) t->relid);
	}
	pgm_buf_appendf(
		&b,
		"SELECT relid::bigint, 0, extract(epoch FROM now() - min(pgm_at))::float8, true, 0::bigint"
		" FROM %s.truncates GROUP BY relid UNION ALL"
		" SELECT 0, coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint, 0, false, 0 FROM pg_class c"
		"  WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = %s) AND c.relkind = 'r'",
		ap->qs, ap->schema_lit);
	return b.s;
}

static void
on_schema_check(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	apply_t *ap = data;
	char *sql;

	if (err) {
		apply_fail(ap, "could not compare the source's tables with the captured ones", err);
		return;
	}
	if (pgm_pg_ntuples(res) > 0) {
		const char *what = pgm_pg_value(res, 0, 1), *name = pgm_pg_value(res, 0, 0);
		char *msg = pgm_asprintf("table %s was %s on the source during the migration", name, what);
		char *detail = pgm_pg_ntuples(res) > 1
				       ? pgm_asprintf("%d table(s) changed; the first is named", pgm_pg_ntuples(res))
				       : NULL;

		pgm_step_fail(
			ap->step, msg, detail,
			strcmp(what, "created") == 0
				? "the triggers method does not capture a table created after it started: \"pgmover "
				  "abort\", then create and start the job again (schema changes belong before or after "
				  "the migration)"
				: "the triggers method cannot replay a schema change: \"pgmover abort\" (the capture is "
				  "removed), then create and start the job again; deploy schema changes before or after "
				  "the migration");
		free(msg);
		free(detail);
		return;
	}
	sql = pending_sql(ap);
	pgm_pg_query(ap->holder, sql, 0, NULL, on_pending, ap);
	free(sql);
}

static void
on_round_snapshot(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	apply_t *ap = data;
	char *sql;

	if (err) {
		apply_fail(ap, "could not take an apply snapshot on the source", err);
		return;
	}
	free(ap->snap);
	free(ap->export_id);
	ap->snap = pgm_strdup(pgm_pg_value(res, 0, 0));
	ap->export_id = pgm_strdup(pgm_pg_value(res, 0, 1));
	/* the catalog comparison costs the source a scan of its catalogs: once a second, and every drain round */
	if (ap->mode != TRG_DRAIN && pgm_mono_ms() - ap->schema_checked < SCHEMA_CHECK_MS) {
		sql = pending_sql(ap);
		pgm_pg_query(ap->holder, sql, 0, NULL, on_pending, ap);
		free(sql);
		return;
	}
	ap->schema_checked = pgm_mono_ms();
	sql = pgm_asprintf("SELECT coalesce(c.name, r.name),"
			   "       CASE WHEN r.relid IS NULL THEN 'created' WHEN c.relid IS NULL THEN 'dropped'"
			   "            WHEN c.ident <> r.ident THEN 'renamed' ELSE 'altered' END"
			   "  FROM (%s) c FULL JOIN %s.tables r ON r.relid = c.relid"
			   " WHERE r.relid IS NULL OR c.relid IS NULL OR c.fp <> r.fp OR c.ident <> r.ident",
			   trg_scope_sql, ap->qs);
	pgm_pg_query(ap->holder, sql, 0, NULL, on_schema_check, ap);
	free(sql);
}

static void
round_start(apply_t *ap)
{
	ap->in_round = true;
	ap->round_started = pgm_mono_ms();
	ap->bytes_round = 0;
	pgm_pg_query(ap->holder,
		     "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;"
		     " SELECT pg_current_snapshot()::text, pg_export_snapshot()",
		     0, NULL, on_round_snapshot, ap);
}

static void
trg_apply_tick(uv_timer_t *t)
{
	apply_t *ap = t->data;

	if (!ap->in_round)
		round_start(ap);
}

/* ---- start: connections, the registry, the progress on the target, reconciling ---- */

static void
on_reconciled(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	apply_t *ap = data;

	if (err) {
		apply_fail(ap, "could not remove already applied changes from the source's log", err);
		return;
	}
	round_start(ap);
}

/* the target's progress per table: the log rows visible in it are applied already */
static void
on_progress(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	apply_t *ap = data;
	pgm_buf_t b = {0};

	if (err) {
		apply_fail(ap, "could not read the apply progress on the target", err);
		return;
	}
	pgm_buf_append(&b, "SET default_transaction_read_only = off;");
	for (int r = 0; r < pgm_pg_ntuples(res); r++) {
		int64_t relid = pgm_pg_int64(res, r, 0, 0);
		char *snap = pgm_quote_literal(pgm_pg_value(res, r, 1));

		for (int i = 0; i < ap->ntables; i++) {
			trg_table_t *t = &ap->tables[i];

			if (t->relid != relid)
				continue;
			pgm_buf_appendf(
				&b,
				"DELETE FROM %s.%c%lld WHERE pg_visible_in_snapshot(pgm_xid, %s::pg_snapshot);"
				"DELETE FROM %s.truncates WHERE relid = %lld AND pg_visible_in_snapshot(pgm_xid, "
				"%s::pg_snapshot);",
				ap->qs, t->keycols ? 'k' : 'r', (long long) relid, snap, ap->qs, (long long) relid,
				snap);
		}
		free(snap);
	}
	pgm_pg_query(ap->holder, b.s, 0, NULL, on_reconciled, ap);
	free(b.s);
}

/* every table's first progress is the initial copy's snapshot */
static void
on_target_schema(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	apply_t *ap = data;
	char *sql;

	if (err) {
		apply_fail(ap, "could not create pgmover's progress table on the target", err);
		return;
	}
	sql = pgm_asprintf("SELECT relid, snapshot FROM %s.applied", ap->qs);
	pgm_pg_query(ap->workers[0].dst, sql, 0, NULL, on_progress, ap);
	free(sql);
}

static void
on_registry(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	apply_t *ap = data;
	pgm_job_t *job = ap->step->job;
	const char *copy_snap =
		pgm_json_str(cJSON_GetObjectItem(cJSON_GetObjectItem(job->facts, "copies"), "initial"), "snapshot");
	pgm_buf_t b = {0};
	char *lit;
	cJSON *a;

	if (err) {
		apply_fail(ap, "could not read pgmover's registry of captured tables on the source", err);
		return;
	}
	if (copy_snap == NULL) {
		pgm_step_fail(ap->step, "the initial copy's snapshot is not recorded", NULL,
			      "\"pgmover abort\", then create and start the job again");
		return;
	}
	ap->ntables = pgm_pg_ntuples(res);
	ap->tables = pgm_calloc((size_t) ap->ntables + 1, sizeof(trg_table_t));
	for (int r = 0; r < ap->ntables; r++) {
		trg_table_t *t = &ap->tables[r];
#define COL(i) (pgm_pg_value(res, r, i) ? pgm_strdup(pgm_pg_value(res, r, i)) : NULL)
		t->relid = pgm_pg_int64(res, r, 0, 0);
		t->ident = COL(1);
		t->name = COL(2);
		t->cols = COL(3);
		t->keycols = COL(4);
		t->fp = COL(5);
		t->sel = COL(6);
		t->keyjoin = COL(7);
		t->rsel = COL(8);
#undef COL
	}
	/* the progress schema on the target: recorded, then made */
	a = pgm_artifact_find_live(job, TRG_KIND_TARGET, NULL, NULL);
	if (a == NULL) {
		char *schema = trg_schema(job);

		a = pgm_artifact_record(job, TRG_KIND_TARGET, "target", schema, PGM_ART_CREATING, NULL);
		free(schema);
		if (a == NULL) {
			pgm_step_fail_unsaved(ap->step, "pgmover's progress table on the target");
			return;
		}
	}
	lit = pgm_quote_literal(copy_snap);
	pgm_buf_appendf(&b,
			"CREATE SCHEMA IF NOT EXISTS %s;"
			"CREATE TABLE IF NOT EXISTS %s.applied (relid oid PRIMARY KEY, snapshot text NOT NULL,"
			" at timestamptz NOT NULL);",
			ap->qs, ap->qs);
	for (int i = 0; i < ap->ntables; i++)
		pgm_buf_appendf(&b, "INSERT INTO %s.applied VALUES (%lld, %s, now()) ON CONFLICT (relid) DO NOTHING;",
				ap->qs, (long long) ap->tables[i].relid, lit);
	free(lit);
	if (pgm_artifact_status(a) == PGM_ART_CREATING)
		pgm_artifact_created(job, a);
	pgm_pg_query(ap->workers[0].dst, b.s, 0, NULL, on_target_schema, ap);
	free(b.s);
}

/* every session is open: read the registry */
static void
all_connected(apply_t *ap)
{
	char *sql = pgm_asprintf("SELECT relid, ident, name, cols, keycols, fp, sel, keyjoin, rsel FROM %s.tables"
				 " ORDER BY relid",
				 ap->qs);

	ap->binary = pgm_pg_server_version(ap->holder) / 10000 == pgm_pg_server_version(ap->workers[0].dst) / 10000;
	pgm_pg_query(ap->holder, sql, 0, NULL, on_registry, ap);
	free(sql);
}

static int
count_ready(apply_t *ap)
{
	int n = ap->holder_ok ? 1 : 0;

	for (int i = 0; i < ap->nworkers; i++)
		n += (ap->workers[i].src_ok ? 1 : 0) + (ap->workers[i].dst_ok ? 1 : 0);
	return n;
}

static void
session_ready(apply_t *ap)
{
	if (count_ready(ap) == 1 + 2 * ap->nworkers)
		all_connected(ap);
}

typedef struct sess {
	apply_t *ap;
	bool *flag;
} sess_t;

static void
on_session(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	sess_t *x = data;
	apply_t *ap = x->ap;

	if (err) {
		bool source = x->flag == &ap->holder_ok;

		for (int i = 0; i < ap->nworkers; i++)
			if (x->flag == &ap->workers[i].src_ok)
				source = true;
		apply_fail(ap,
			   source ? "could not prepare an apply session on the source"
				  : "could not prepare an apply session on the target",
			   err);
		return;
	}
	*x->flag = true;
	session_ready(ap);
}

static void
on_connect(pgm_pg_conn_t *conn, const pgm_pg_error_t *err, void *data)
{
	sess_t *x = data;
	bool source = x->flag == &x->ap->holder_ok;

	for (int i = 0; i < x->ap->nworkers; i++)
		if (x->flag == &x->ap->workers[i].src_ok)
			source = true;
	if (err) {
		apply_fail(x->ap, source ? "could not connect to the source" : "could not connect to the target", err);
		return;
	}
	/* the source may be frozen: pgmover's sessions lift the read-only default for themselves */
	pgm_pg_query(conn,
		     source ? "SET default_transaction_read_only = off; SET idle_in_transaction_session_timeout = 0"
			    : "SET default_transaction_read_only = off; SET synchronous_commit = off",
		     0, NULL, on_session, x);
}

static sess_t *
sess_new(apply_t *ap, bool *flag)
{
	sess_t *x = pgm_calloc(1, sizeof(*x));

	x->ap = ap;
	x->flag = flag;
	pgm_step_own(ap->step, x, free);
	return x;
}

void
trg_apply_run(pgm_step_t *s, trg_mode_t mode, void (*then)(pgm_step_t *s))
{
	apply_t *ap = pgm_calloc(1, sizeof(*ap));

	ap->step = s;
	ap->mode = mode;
	ap->then = then;
	ap->qs = trg_schema_q(s->job);
	{
		char *schema = trg_schema(s->job);
		ap->schema_lit = pgm_quote_literal(schema);
		free(schema);
	}
	ap->started = pgm_mono_ms();
	ap->nworkers = (int) pgm_jobopt_int(s->job->options, "jobs");
	if (ap->nworkers > MAX_WORKERS)
		ap->nworkers = MAX_WORKERS;
	if (ap->nworkers < 1)
		ap->nworkers = 1;
	pgm_step_own(s, ap, apply_free);
	ap->holder = pgm_step_connect(s, true, "apply", on_connect, sess_new(ap, &ap->holder_ok));
	for (int i = 0; i < ap->nworkers; i++) {
		aworker_t *w = &ap->workers[i];

		w->ap = ap;
		w->cur = -1;
		w->src = pgm_step_connect(s, true, "apply-read", on_connect, sess_new(ap, &w->src_ok));
		w->dst = pgm_step_connect(s, false, "apply-write", on_connect, sess_new(ap, &w->dst_ok));
	}
}
