/*
 * reverse.c — the reverse stream of the rollback window: writes made on
 * the target after cutover, applied to the source, so `rollback` loses
 * nothing.
 *
 * Why this way: the source may be Heroku, where nobody has a superuser or
 * the REPLICATION attribute, so the source can neither subscribe nor be
 * given a pglogical node. The target is ours, so the changes are captured
 * there — a publication FOR ALL TABLES and a logical slot with the
 * built-in pgoutput plugin, made before traffic moves — and pgmover itself
 * reads them over an ordinary connection
 * (pg_logical_slot_peek_binary_changes) and applies them to the source
 * over another ordinary one as the database owner, lifting the freeze for
 * that session only (SET default_transaction_read_only = off).
 *
 * Exactly once, across crashes: each target transaction is one source
 * transaction that also records its commit LSN in a one-row progress table
 * pgmover keeps on the source (schema pgmover_<job>, an artifact), under a
 * row lock taken first, so a transaction already applied — by an earlier
 * run, or by a session of a killed daemon still finishing — is skipped.
 * Only then does the slot advance (pg_replication_slot_advance), so the
 * target keeps every change until the source has it.
 *
 * Lag is reported like the forward lag: facts.reverse_lag = {bytes,
 * seconds}: target WAL not yet applied to the source, and the age of the
 * oldest target commit not yet applied, measured each round before
 * applying.
 */
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "pipeline/cutover.h"
#include "pipeline/pipeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH 5000          /* rows of changes asked for per round */
#define RETRY_MS 5000       /* the window retries after an error */
#define SAVE_EVERY_MS 10000
#define PG_EPOCH_MS INT64_C(946684800000)

/* both sessions: fixed text forms, so values read on one side mean the same on the other */
static const char *session_sql =
	"SET default_transaction_read_only = off; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres';"
	" SET TimeZone = 'UTC'; SET extra_float_digits = 3; SET bytea_output = 'hex';"
	" SET standard_conforming_strings = on; SET statement_timeout = 0; SET lock_timeout = 0;"
	" SET idle_in_transaction_session_timeout = 0; SET synchronous_commit = on";

/* ---- the engine: read the slot, apply to the source, advance the slot ---- */

typedef struct pgm_reverse {
	pgm_step_t *s;
	pgm_flow_t *f;                 /* drain: the rollback flow; NULL: follow the window */
	void (*drained)(pgm_flow_t *f);
	char *slot, *progress, *job_lit;
	char batch[16];
	pgm_pg_conn_t *tgt, *src;
	int ready;                     /* sessions set up; 2 = both */
	uv_timer_t *timer;
	pgm_pgo_t *pgo;
	uint64_t applied;              /* commit LSN of the last transaction the source has */
	uint64_t confirmed;            /* the slot's confirmed_flush_lsn */
	uint64_t flush;                /* the target's flush LSN before this round's read */
	uint64_t drain_to;             /* drain: the target's flush LSN once writes stopped */
	uint64_t advance_to;
	pgm_pgo_txn_t *txns;
	int ntxn, next;
	int chunk;                     /* of a large transaction: the block being applied */
	bool truncated;                /* the read hit BATCH: more is waiting */
	int64_t lag_bytes, lag_ms;
	int64_t txn_total, change_total, last_save;
} pgm_reverse_t;

static void rev_connect(pgm_reverse_t *r);
static void rev_round(pgm_reverse_t *r);

static void
txns_clear(pgm_reverse_t *r)
{
	for (int i = 0; i < r->ntxn; i++)
		pgm_pgo_txn_clear(&r->txns[i]);
	free(r->txns);
	r->txns = NULL;
	r->ntxn = r->next = 0;
}

static void
rev_free(void *p)
{
	pgm_reverse_t *r = p;

	txns_clear(r);
	pgm_pgo_free(r->pgo);
	free(r->slot);
	free(r->progress);
	free(r->job_lit);
	free(r);
}

static void
rev_close_conns(pgm_reverse_t *r)
{
	if (r->tgt)
		pgm_step_close_conn(r->s, r->tgt);
	if (r->src)
		pgm_step_close_conn(r->s, r->src);
	r->tgt = r->src = NULL;
	r->ready = 0;
}

static void
on_retry_timer(uv_timer_t *t)
{
	rev_connect(t->data);
}

/* drain: the flow fails; window: report, and try again in a while */
static void
rev_error(pgm_reverse_t *r, const char *what, const char *message, const char *detail)
{
	pgm_job_t *job = r->s->job;
	cJSON *o = pgm_json_obj(job->facts, "reverse");
	char *msg = pgm_asprintf("reverse stream: %s: %s", what, message);

	rev_close_conns(r);
	txns_clear(r);
	if (r->f) {
		pgm_flow_fail(r->f, msg, detail,
		              "fix the cause (the message names the statement); \"pgmover retry\" resumes the rollback");
		free(msg);
		return;
	}
	pgm_json_set_str(o, "error", msg);
	if (detail)
		pgm_json_set_str(o, "error_detail", detail);
	pgm_json_set_time(o, "error_at", pgm_now_ms());
	(void) pgm_job_save(job);
	pgm_job_warn(job, msg, "pgmover retries every few seconds; rollback needs the reverse stream to catch up");
	free(msg);
	uv_timer_start(r->timer, on_retry_timer, RETRY_MS, 0);
}

static void
rev_error_pg(pgm_reverse_t *r, const char *what, const pgm_pg_error_t *err)
{
	rev_error(r, what, err->message, err->detail);
}

static void
on_timer(uv_timer_t *t)
{
	rev_round(t->data);
}

/* the round is over: report, then the next one (or the end of the drain) */
static void
round_end(pgm_reverse_t *r)
{
	pgm_job_t *job = r->s->job;
	cJSON *lag = cJSON_CreateObject(), *o = pgm_json_obj(job->facts, "reverse");
	char lsn[32];
	int64_t now = pgm_now_ms();

	pgm_json_set_num(lag, "bytes", (double) r->lag_bytes);
	pgm_json_set_num(lag, "seconds", (double) r->lag_ms / 1000.0);
	pgm_json_set_time(lag, "at", now);
	pgm_json_set(job->facts, "reverse_lag", lag);
	pgm_lsn_format(r->applied, lsn, sizeof(lsn));
	pgm_json_set_str(o, "applied_commit_lsn", lsn);
	pgm_lsn_format(r->confirmed, lsn, sizeof(lsn));
	pgm_json_set_str(o, "confirmed_lsn", lsn);
	pgm_json_set_num(o, "transactions", (double) r->txn_total);
	pgm_json_set_num(o, "changes", (double) r->change_total);
	cJSON_DeleteItemFromObject(o, "error");
	cJSON_DeleteItemFromObject(o, "error_detail");
	if (now - r->last_save >= SAVE_EVERY_MS || r->f) {
		r->last_save = now;
		(void) pgm_job_save(job);
	}
	if (r->f) {
		if (!r->truncated && r->confirmed >= r->drain_to) {
			pgm_lsn_format(r->drain_to, lsn, sizeof(lsn));
			pgm_json_set_str(o, "drained_to", lsn);
			/* everything committed on the target is on the source now */
			pgm_json_set_num(lag, "bytes", 0);
			pgm_json_set_num(lag, "seconds", 0);
			(void) pgm_job_save(job);
			pgm_info("job %s: reverse stream drained up to %s", job->name, lsn);
			r->drained(r->f);
			return;
		}
		uv_timer_start(r->timer, on_timer, r->truncated ? 0 : 50, 0);
		return;
	}
	uv_timer_start(r->timer, on_timer,
	               r->truncated ? 0 : (uint64_t) pgm_jobopt_int(job->options, "reverse_interval"), 0);
}

static void
on_advanced(pgm_pg_conn_t *c, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	pgm_reverse_t *r = data;

	if (err) {
		rev_error_pg(r, "could not advance the slot on the target", err);
		return;
	}
	r->confirmed = r->advance_to;
	round_end(r);
}

/* everything read was applied (or was empty): let the target forget it */
static void
advance(pgm_reverse_t *r)
{
	char lsn[32];
	const char *params[2] = {r->slot, lsn};

	/* nothing held back: every commit up to the flush LSN read at the start is in */
	if (!r->truncated && r->flush > r->advance_to)
		r->advance_to = r->flush;
	txns_clear(r);
	if (r->advance_to <= r->confirmed) {
		round_end(r);
		return;
	}
	pgm_lsn_format(r->advance_to, lsn, sizeof(lsn));
	pgm_pg_query(r->tgt, "SELECT pg_replication_slot_advance($1, $2::pg_lsn)", 2, params, on_advanced, r);
}

static void apply_next(pgm_reverse_t *r);

/* the source committed the transaction (or had it already) */
static void
txn_applied(pgm_reverse_t *r)
{
	pgm_pgo_txn_t *t = &r->txns[r->next];

	r->applied = t->commit_lsn;
	r->advance_to = t->end_lsn;
	r->txn_total++;
	r->change_total += t->changes;
	r->next++;
	apply_next(r);
}

static void
apply_failed(pgm_reverse_t *r, const pgm_pg_error_t *err)
{
	pgm_pgo_txn_t *t = &r->txns[r->next];
	char what[96], lsn[32];

	pgm_lsn_format(t->commit_lsn, lsn, sizeof(lsn));
	snprintf(what, sizeof(what), "could not apply target transaction %u (commit %s) to the source", t->xid, lsn);
	rev_error_pg(r, what, err);
}

static void
on_applied(pgm_pg_conn_t *c, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	pgm_reverse_t *r = data;

	if (err) {
		apply_failed(r, err);
		return;
	}
	txn_applied(r);
}

/* the statement that records a transaction as applied, in its own source transaction */
static char *
progress_update(pgm_reverse_t *r, const pgm_pgo_txn_t *t)
{
	char lsn[32], end[32];

	pgm_lsn_format(t->commit_lsn, lsn, sizeof(lsn));
	pgm_lsn_format(t->end_lsn, end, sizeof(end));
	return pgm_asprintf("UPDATE %s SET commit_lsn = '%s', end_lsn = '%s', xid = %u, committed_at = "
	                    "to_timestamp(%lld / 1000000.0) + interval '946684800 seconds', applied_at = now() "
	                    "WHERE job = %s;\n",
	                    r->progress, lsn, end, t->xid, (long long) t->commit_time, r->job_lit);
}

static void
on_chunk(pgm_pg_conn_t *c, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	pgm_reverse_t *r = data;
	pgm_pgo_txn_t *t = &r->txns[r->next];
	char *sql, *post;

	if (err) {
		apply_failed(r, err);
		return;
	}
	if (r->chunk == 0 && strcmp(pgm_pg_value(res, 0, 0) ? pgm_pg_value(res, 0, 0) : "", "t") == 0) {
		/* BEGIN found it applied already: nothing to do in this transaction */
		pgm_pg_query(r->src, "ROLLBACK", 0, NULL, on_applied, r);
		return;
	}
	if (r->chunk < t->nchunks) {
		sql = pgm_pgo_do_block("", t->chunks[r->chunk++], "");
		pgm_pg_query(r->src, sql, 0, NULL, on_chunk, r);
		free(sql);
		return;
	}
	post = progress_update(r, t);
	sql = pgm_asprintf("%sCOMMIT", post);
	pgm_pg_query(r->src, sql, 0, NULL, on_applied, r);
	free(sql);
	free(post);
}

/*
 * One target transaction = one source transaction, which also moves the
 * progress row, locked first: a transaction the row says is applied is
 * skipped. A small one is one DO block (one round trip); a large one is
 * BEGIN, the check, one DO block per PGM_PGO_CHUNK changes, then COMMIT.
 */
static void
apply_next(pgm_reverse_t *r)
{
	pgm_pgo_txn_t *t;
	char lsn[32], *pre, *post, *sql;

	while (r->next < r->ntxn && r->txns[r->next].nchunks == 0) {
		r->advance_to = r->txns[r->next].end_lsn; /* nothing of it is published */
		r->next++;
	}
	if (r->next == r->ntxn) {
		advance(r);
		return;
	}
	t = &r->txns[r->next];
	pgm_lsn_format(t->commit_lsn, lsn, sizeof(lsn));
	if (t->nchunks > 1) {
		r->chunk = 0;
		sql = pgm_asprintf("BEGIN; SELECT commit_lsn >= '%s' FROM %s WHERE job = %s FOR UPDATE", lsn, r->progress,
		                   r->job_lit);
		pgm_pg_query(r->src, sql, 0, NULL, on_chunk, r);
		free(sql);
		return;
	}
	pre = pgm_asprintf("SELECT commit_lsn INTO pgm_done FROM %s WHERE job = %s FOR UPDATE;\n"
	                   "IF pgm_done >= '%s' THEN RETURN; END IF;\n",
	                   r->progress, r->job_lit, lsn);
	post = progress_update(r, t);
	sql = pgm_pgo_do_block(pre, t->chunks[0], post);
	pgm_pg_query(r->src, sql, 0, NULL, on_applied, r);
	free(sql);
	free(pre);
	free(post);
}

static void
on_peek(pgm_pg_conn_t *c, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	pgm_reverse_t *r = data;
	int n = pgm_pg_ntuples(res), cap = 0;
	int64_t oldest = 0;

	if (err) {
		rev_error_pg(r, "could not read the slot on the target", err);
		return;
	}
	r->truncated = n >= BATCH;
	for (int i = 0; i < n; i++) {
		size_t len;
		uint8_t *msg = pgm_pgo_unhex(pgm_pg_value(res, i, 0), &len);
		pgm_pgo_txn_t t = {0};
		char *perr = NULL;
		int rc = msg ? pgm_pgo_feed(r->pgo, msg, len, &t, &perr) : -1;

		free(msg);
		if (rc < 0) {
			rev_error(r, "could not decode a change", perr ? perr : "not a bytea value", NULL);
			free(perr);
			return;
		}
		if (rc == 0)
			continue;
		if (t.commit_lsn <= r->applied) {
			pgm_pgo_txn_clear(&t); /* the source has it already (a crash before the slot moved) */
			r->advance_to = t.end_lsn;
			continue;
		}
		if (r->ntxn == cap) {
			cap = cap ? cap * 2 : 16;
			r->txns = pgm_realloc(r->txns, (size_t) cap * sizeof(*r->txns));
		}
		r->txns[r->ntxn++] = t;
		if (oldest == 0 && t.nchunks > 0)
			oldest = t.commit_time / 1000 + PG_EPOCH_MS;
	}
	r->lag_ms = oldest ? pgm_now_ms() - oldest : 0;
	if (r->lag_ms < 0)
		r->lag_ms = 0;
	r->lag_bytes = (oldest == 0 && !r->truncated) || r->flush <= r->confirmed ? 0 : (int64_t) (r->flush - r->confirmed);
	r->next = 0;
	apply_next(r);
}

static void
on_positions(pgm_pg_conn_t *c, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	pgm_reverse_t *r = data;
	const char *params[3] = {r->slot, r->batch, r->slot};

	if (err) {
		rev_error_pg(r, "could not read the positions on the target", err);
		return;
	}
	if (pgm_pg_ntuples(res) == 0) {
		rev_error(r, "the logical slot is gone from the target", r->slot,
		          "writes made on the target since it was dropped are not on the source");
		return;
	}
	if (!pgm_lsn_parse(pgm_pg_value(res, 0, 0), &r->flush) || !pgm_lsn_parse(pgm_pg_value(res, 0, 1), &r->confirmed)) {
		rev_error(r, "unexpected positions on the target", pgm_pg_value(res, 0, 0) ?: "null", NULL);
		return;
	}
	if (r->f && r->drain_to == 0)
		r->drain_to = r->flush;
	r->advance_to = r->confirmed;
	pgm_pg_query(r->tgt,
	             "SELECT data FROM pg_logical_slot_peek_binary_changes($1, NULL, $2::int, 'proto_version', '1',"
	             " 'publication_names', quote_ident($3))",
	             3, params, on_peek, r);
}

static void
rev_round(pgm_reverse_t *r)
{
	const char *params[1] = {r->slot};
	char *sql;

	if (r->ready < 2)
		return;
	if (r->f && r->drain_to == 0) {
		/*
		 * The drain's end: a commit of our own with synchronous_commit on
		 * flushes all WAL before it, so every commit made before writes
		 * stopped is at or below the flush LSN read right after.
		 */
		sql = pgm_asprintf("BEGIN; SELECT txid_current(); COMMIT; SELECT pg_current_wal_flush_lsn()::text,"
		                   " confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = '%s'",
		                   r->slot);
		pgm_pg_query(r->tgt, sql, 0, NULL, on_positions, r);
		free(sql);
		return;
	}
	pgm_pg_query(r->tgt,
	             "SELECT pg_current_wal_flush_lsn()::text, confirmed_flush_lsn::text"
	             "  FROM pg_replication_slots WHERE slot_name = $1",
	             1, params, on_positions, r);
}

static void
on_progress(pgm_pg_conn_t *c, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	pgm_reverse_t *r = data;

	if (err) {
		rev_error_pg(r, "could not read pgmover's progress table on the source", err);
		return;
	}
	r->applied = 0;
	(void) pgm_lsn_parse(pgm_pg_value(res, 0, 0), &r->applied);
	if (++r->ready == 2)
		rev_round(r);
}

static void
on_session(pgm_pg_conn_t *c, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	pgm_reverse_t *r = data;
	char *sql;

	if (err) {
		rev_error_pg(r, "could not set up a session", err);
		return;
	}
	if (c == r->src) {
		sql = pgm_asprintf("SELECT commit_lsn::text FROM %s WHERE job = %s", r->progress, r->job_lit);
		pgm_pg_query(c, sql, 0, NULL, on_progress, r);
		free(sql);
		return;
	}
	if (++r->ready == 2)
		rev_round(r);
}

static void
on_connect(pgm_pg_conn_t *c, const pgm_pg_error_t *err, void *data)
{
	pgm_reverse_t *r = data;
	bool source = c == r->src;

	if (err) {
		/* the step has forgotten the failed connection already */
		if (source)
			r->src = NULL;
		else
			r->tgt = NULL;
		rev_error_pg(r, source ? "could not connect to the source" : "could not connect to the target", err);
		return;
	}
	pgm_pg_query(c, session_sql, 0, NULL, on_session, r);
}

static void
rev_connect(pgm_reverse_t *r)
{
	rev_close_conns(r);
	pgm_pgo_free(r->pgo);
	r->pgo = pgm_pgo_new();
	r->tgt = pgm_step_connect(r->s, false, "reverse-read", on_connect, r);
	r->src = pgm_step_connect(r->s, true, "reverse-apply", on_connect, r);
}

static pgm_reverse_t *
rev_start(pgm_step_t *s, pgm_flow_t *f, void (*drained)(pgm_flow_t *f))
{
	pgm_reverse_t *r = pgm_calloc(1, sizeof(*r));
	cJSON *o = pgm_json_obj(s->job->facts, "reverse");

	r->s = s;
	r->f = f;
	r->drained = drained;
	r->slot = pgm_reverse_slot_name(s->job);
	r->progress = pgm_reverse_progress_table(s->job);
	r->job_lit = pgm_quote_literal(s->job->name);
	snprintf(r->batch, sizeof(r->batch), "%d", BATCH);
	r->txn_total = (int64_t) pgm_json_num(o, "transactions", 0);
	r->change_total = (int64_t) pgm_json_num(o, "changes", 0);
	r->last_save = pgm_now_ms();
	r->timer = pgm_step_timer(s);
	r->timer->data = r;
	pgm_step_own(s, r, rev_free);
	if (f)
		f->rev = r;
	rev_connect(r);
	return r;
}

void
pgm_reverse_follow(pgm_step_t *s)
{
	pgm_info("job %s: following the reverse stream: writes on the target are applied to the source", s->job->name);
	rev_start(s, NULL, NULL);
}

void
pgm_reverse_drain(pgm_flow_t *f, void (*then)(pgm_flow_t *f))
{
	rev_start(f->step, f, then);
}
