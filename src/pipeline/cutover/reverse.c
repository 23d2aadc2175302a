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
 * Exactly once, across crashes: target transactions are applied in source
 * transactions that also record the last one's commit LSN in a one-row
 * progress table pgmover keeps on the source (schema pgmover_<job>, an
 * artifact), under a row lock taken first, and each target transaction in
 * them is guarded by that LSN, so one already applied — by an earlier run,
 * or by a session of a killed daemon still finishing — is skipped. Small
 * target transactions go together, up to PGM_PGO_CHUNK changes (or
 * PGM_PGO_CHUNK_BYTES of SQL, for wide rows) per source transaction (one
 * round trip, one commit to flush, one block to compile: 2,000 pgbench
 * transactions applied in 0.53 s instead of 1.36 s here);
 * a large one is a source transaction of its own.
 * Only then does the slot advance (pg_replication_slot_advance), so the
 * target keeps every change until the source has it.
 *
 * Memory stays bounded whatever the size of a target transaction: the
 * slot's changes are read through a cursor (the server keeps what the
 * peek decoded in a tuplestore, on disk past work_mem), each FETCH sized
 * from the last one's bytes to about FETCH_BYTES (at most FETCH_ROWS
 * rows; one row at a time when a row alone is larger), so wide rows do
 * not fill the daemon's memory a thousand at a time; and a transaction of more than PGM_PGO_CHUNK changes is
 * applied chunk by chunk as they are decoded, inside one source
 * transaction opened at its first chunk and committed at its Commit.
 *
 * Lag is reported like the forward lag: facts.reverse_lag = {bytes,
 * seconds}: target WAL not yet applied to the source, and the age of the
 * oldest target commit not yet applied, measured each round before
 * applying; facts.reverse.retained_bytes is the WAL the slot keeps on the
 * target's disk, a warning past rollback_retained_warn.
 *
 * The source's triggers and foreign keys stay in place (replay.c): each
 * time the stream connects, the source's user triggers not yet disabled
 * are (recorded first), and its foreign keys' rules given to the decoder,
 * which lets their effects (a cascade's DELETE, an ON UPDATE CASCADE's
 * moved key) through.
 *
 * Errors (rev_fail): one that may pass by itself is retried with a growing
 * pause (in the rollback's drain DRAIN_RETRIES times, then the rollback
 * fails); one the source will give again (it refuses the change) stops the
 * stream and fails the step once, so the operator fixes it and retries.
 */
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "pipeline/cutover/reverse.h"
#include "pipeline/cutover/replay.h"
#include "pipeline/sql.h"
#include "pg/pgoutput.h"
#include "pg/lsn.h"
#include "fsm/job.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH 5000                    /* rows of changes asked for per round */
#define FETCH_ROWS 1000               /* rows of them read at a time, at most, */
#define FETCH_FIRST 100               /* the first time, */
#define FETCH_BYTES (4 * 1024 * 1024) /* then as many as make about this much */
#define RETRY_MIN_MS 1000             /* the window retries a transient error after this, */
#define RETRY_MAX_MS 60000            /* doubling each time up to this */
#define DRAIN_RETRIES 5               /* the rollback's drain: then it fails (1 + 2 + 4 + 8 + 16 s of pauses) */
#define SAVE_EVERY_MS 10000
#define PG_EPOCH_MS INT64_C(946684800000)
#define DETAIL_MAX 1000 /* of an error's detail kept in facts and the job's error */
/* the WAL the slot keeps on the target's disk (from its restart_lsn, not its confirmed LSN) */
#define RETAINED_SQL "coalesce(pg_current_wal_lsn() - restart_lsn, 0)::bigint"

/* both sessions: fixed text forms, so values read on one side mean the same on the other */
static const char *session_sql =
	"SET default_transaction_read_only = off; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres';"
	" SET TimeZone = 'UTC'; SET extra_float_digits = 3; SET bytea_output = 'hex';"
	" SET standard_conforming_strings = on; SET statement_timeout = 0; SET lock_timeout = 0;"
	" SET idle_in_transaction_session_timeout = 0; SET synchronous_commit = on";

/* ---- the engine: read the slot, apply to the source, advance the slot ---- */

typedef struct pgm_reverse {
	pgm_step_t *s;
	pgm_flow_t *f; /* drain: the rollback flow; NULL: follow the window */
	void (*drained)(pgm_flow_t *f);
	char *slot, *slot_lit, *progress, *job_lit;
	pgm_pg_conn_t *tgt, *src;
	int ready; /* sessions set up; 2 = both */
	uv_timer_t *timer;
	pgm_pgo_t *pgo;
	uint64_t applied;   /* commit LSN of the last transaction the source has */
	uint64_t confirmed; /* the slot's confirmed_flush_lsn */
	uint64_t flush;     /* the target's flush LSN before this round's read */
	uint64_t drain_to;  /* drain: the target's flush LSN once writes stopped */
	uint64_t advance_to;
	uint8_t **msgs; /* the messages of the last FETCH, */
	size_t *lens;
	int nmsgs, pos;      /* how many, and the next to decode */
	int64_t rows_read;   /* this round */
	bool cursor_done;    /* the last FETCH came back short */
	int fetch_rows;      /* rows the FETCH running asks for */
	int fetch_next;      /* rows the next one asks for (fetch_size) */
	bool truncated;      /* the read hit BATCH: more is waiting */
	pgm_pgo_txn_t cur;   /* a transaction read to its Commit */
	uint64_t cur_commit; /* the transaction being applied: commit LSN and xid */
	uint32_t cur_xid;
	enum { TX_NONE, TX_STREAM, TX_SKIP } tx; /* a large one, applied or skipped chunk by chunk */
	int chunk;                               /* of cur's chunks: the next to apply */
	pgm_buf_t batch;                         /* small transactions read whole, to apply together */
	int batch_txns;
	int batch_changes;
	pgm_pgo_txn_t batch_last; /* the last of them (commit, end, xid, time; no chunks) */
	uint32_t batch_first_xid;
	int64_t oldest_ms; /* commit time of this round's first transaction the source lacks */
	int64_t lag_bytes, lag_ms;
	int64_t txn_total, change_total, last_save;
	int64_t retries;        /* transient errors in a row (the window) */
	int64_t retained;       /* bytes of WAL the slot keeps on the target */
	cJSON *rules;           /* what the source's foreign keys do (replay.c), for each decoder */
	uv_timer_t *prep_timer; /* the replay's preparation waits on it for a lock */
} pgm_reverse_t;

static void rev_connect(pgm_reverse_t *r);
static void rev_round(pgm_reverse_t *r);

static void
msgs_clear(pgm_reverse_t *r)
{
	for (int i = 0; i < r->nmsgs; i++)
		free(r->msgs[i]);
	free(r->msgs);
	free(r->lens);
	r->msgs = NULL;
	r->lens = NULL;
	r->nmsgs = r->pos = 0;
}

static void
batch_clear(pgm_reverse_t *r)
{
	free(r->batch.s);
	memset(&r->batch, 0, sizeof(r->batch));
	r->batch_txns = r->batch_changes = 0;
}

static void
cur_clear(pgm_reverse_t *r)
{
	pgm_pgo_txn_clear(&r->cur);
	memset(&r->cur, 0, sizeof(r->cur));
	r->tx = TX_NONE;
}

static void
rev_free(void *p)
{
	pgm_reverse_t *r = p;

	msgs_clear(r);
	cur_clear(r);
	batch_clear(r);
	pgm_pgo_free(r->pgo);
	cJSON_Delete(r->rules);
	free(r->slot);
	free(r->slot_lit);
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

/* what to do about a change the source refused, by the kind of refusal */
static const char *
refusal_hint(const pgm_pg_error_t *err)
{
	if (strncmp(err->sqlstate, "23", 2) == 0)
		return "the source refuses a row the target accepted (a constraint or unique index the target lacks): "
		       "the target's transactions are applied in order, so a later change on the target does not help; "
		       "on the source, drop or relax that constraint, or change the row that conflicts there, then "
		       "\"pgmover retry JOB\" resumes the stream (rollback waits for it)";
	if (strcmp(err->sqlstate, "42P01") == 0 || strcmp(err->sqlstate, "42703") == 0)
		return "the table or column is missing on the source: create it there as it is on the target, then "
		       "\"pgmover retry JOB\" resumes the stream (rollback waits for it)";
	if (strcmp(err->sqlstate, "P0001") == 0 && strstr(err->message, "matched") != NULL)
		return "the source's row is not the target's (changed on the source after cutover, or by a trigger or "
		       "a cascade there): make the source's row what the target had before this change, then "
		       "\"pgmover retry JOB\" resumes the stream (rollback waits for it)";
	if (strcmp(err->sqlstate, "42501") == 0)
		return "the source role lacks a privilege there: it must own the tables, whose user triggers pgmover "
		       "disables while it replays (or disable them yourself, ALTER TABLE ... DISABLE TRIGGER), and may "
		       "write them; grant it, then \"pgmover retry JOB\" resumes the stream (rollback waits for it)";
	return "fix the cause on the source, then \"pgmover retry JOB\" resumes the stream (rollback waits for it)";
}

/*
 * An error of the stream. One that may pass by itself (a lost connection:
 * a server restarted, a session terminated; a lock timeout, a serialization
 * failure: pgm_sql_transient) is retried with a growing pause, counted and
 * shown in status -- in the window for ever, in the drain (rollback)
 * DRAIN_RETRIES times, then the flow fails; any other (the source refuses a
 * change: a constraint, a row or table missing) would fail the same way for
 * ever, so the step (or the flow) fails, once, naming the table and why,
 * and `retry` resumes it.
 */
static void
rev_fail(pgm_reverse_t *r, bool transient, const char *what, const pgm_pg_error_t *err)
{
	pgm_job_t *job = r->s->job;
	cJSON *o = pgm_json_obj(job->facts, "reverse");
	char *msg = err->table && strstr(err->message, err->table) == NULL
			    ? pgm_asprintf("reverse stream: %s: table %s: %s", what, err->table, err->message)
			    : pgm_asprintf("reverse stream: %s: %s", what, err->message);
	uint64_t delay;
	pgm_pg_error_t shown = *err;
	char *detail = NULL;

	/* "Failing row contains (...)" holds the whole row: wide values stay out of state.json */
	if (err->detail && strlen(err->detail) > DETAIL_MAX) {
		detail = pgm_asprintf("%.*s... (%zu bytes)", DETAIL_MAX, err->detail, strlen(err->detail));
		shown.detail = detail;
	}
	err = &shown;
	rev_close_conns(r);
	msgs_clear(r);
	cur_clear(r);
	batch_clear(r);
	pgm_json_set_str(o, "error", msg);
	if (err->detail)
		pgm_json_set_str(o, "error_detail", err->detail);
	else
		cJSON_DeleteItemFromObject(o, "error_detail");
	if (err->table)
		pgm_json_set_str(o, "error_table", err->table);
	else
		cJSON_DeleteItemFromObject(o, "error_table");
	pgm_json_set_time(o, "error_at", pgm_now_ms());
	if (r->f && (!transient || r->retries >= DRAIN_RETRIES)) {
		if (transient) {
			char *m = pgm_asprintf("%s (after %d retries)", msg, DRAIN_RETRIES);

			free(msg);
			msg = m;
		}
		pgm_flow_fail(r->f, msg, err->detail,
			      transient ? "\"pgmover retry\" resumes the rollback" : refusal_hint(err));
		free(msg);
		free(detail);
		return;
	}
	if (!transient) {
		pgm_json_set(o, "stopped", cJSON_CreateTrue());
		pgm_step_fail(r->s, msg, err->detail, refusal_hint(err));
		free(msg);
		free(detail);
		return;
	}
	r->retries++;
	delay = (uint64_t) RETRY_MIN_MS << (r->retries < 7 ? r->retries - 1 : 6);
	if (delay > RETRY_MAX_MS)
		delay = RETRY_MAX_MS;
	pgm_json_set_num(o, "retries", (double) r->retries);
	pgm_json_set_num(o, "retries_total", (double) pgm_json_num(o, "retries_total", 0) + 1);
	pgm_json_set_num(o, "retry_in_ms", (double) delay);
	pgm_job_checkpoint(job);
	pgm_job_warn(job, msg,
		     r->f ? "pgmover retries, less often each time: the rollback goes on once the source has every "
			    "change"
			  : "pgmover retries, less often each time; rollback needs the reverse stream to catch up");
	pgm_notice("job %s: %s; retry %lld in %llu ms", job->name, msg, (long long) r->retries,
		   (unsigned long long) delay);
	free(msg);
	free(detail);
	uv_timer_start(r->timer, on_retry_timer, delay, 0);
}

static void
rev_error(pgm_reverse_t *r, bool transient, const char *what, const char *message, const char *detail)
{
	pgm_pg_error_t e = {.sqlstate = "", .message = (char *) message, .detail = (char *) detail};

	rev_fail(r, transient, what, &e);
}

static void
rev_error_pg(pgm_reverse_t *r, const char *what, const pgm_pg_error_t *err)
{
	rev_fail(r, pgm_sql_transient(err), what, err);
}

static void
on_timer(uv_timer_t *t)
{
	rev_round(t->data);
}

/*
 * The slot keeps every WAL segment from its restart_lsn on, on the
 * target's disk (the new primary's): more than rollback_retained_warn of
 * it is a warning in status and the log, once.
 */
static void
retained_check(pgm_reverse_t *r)
{
	pgm_job_t *job = r->s->job;
	int64_t limit = pgm_jobopt_int(job->options, "rollback_retained_warn");
	char *msg;

	if (limit <= 0 || r->retained <= limit)
		return;
	/* the same words each round, so the warning is given once (the amount is in facts.reverse) */
	msg = pgm_asprintf("the reverse slot %s retains more WAL on the target than rollback_retained_warn (%lld "
			   "bytes)",
			   r->slot, (long long) limit);
	pgm_job_warn(job, msg,
		     "the target's disk holds it until the source has the changes: see why the stream is behind "
		     "(status: reverse lag, the stream's error); rollback or finish (which drops the slot) before "
		     "the disk fills");
	free(msg);
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
	pgm_json_set_num(o, "retained_bytes", (double) r->retained);
	retained_check(r);
	pgm_json_set_num(o, "transactions", (double) r->txn_total);
	pgm_json_set_num(o, "changes", (double) r->change_total);
	for (const char *const *k = (const char *const[]){"error", "error_detail", "error_table", "stopped", "retries",
							  "retry_in_ms", NULL};
	     *k; k++)
		cJSON_DeleteItemFromObject(o, *k);
	r->retries = 0;
	if (now - r->last_save >= SAVE_EVERY_MS || r->f) {
		r->last_save = now;
		pgm_job_checkpoint(job);
	}
	if (r->f) {
		if (!r->truncated && r->confirmed >= r->drain_to) {
			pgm_lsn_format(r->drain_to, lsn, sizeof(lsn));
			pgm_json_set_str(o, "drained_to", lsn);
			/* everything committed on the target is on the source now */
			pgm_json_set_num(lag, "bytes", 0);
			pgm_json_set_num(lag, "seconds", 0);
			pgm_job_checkpoint(job);
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
	if (r->advance_to <= r->confirmed) {
		round_end(r);
		return;
	}
	pgm_lsn_format(r->advance_to, lsn, sizeof(lsn));
	pgm_pg_query(r->tgt, "SELECT pg_replication_slot_advance($1, $2::pg_lsn)", 2, params, on_advanced, r);
}

static void process(pgm_reverse_t *r);

/* the first transaction of the round the source does not have yet: how far behind it is */
static void
lag_note(pgm_reverse_t *r, int64_t commit_time)
{
	if (r->oldest_ms != 0)
		return;
	r->oldest_ms = commit_time / 1000 + PG_EPOCH_MS;
	r->lag_ms = pgm_now_ms() - r->oldest_ms;
	if (r->lag_ms < 0)
		r->lag_ms = 0;
	r->lag_bytes = r->flush > r->confirmed ? (int64_t) (r->flush - r->confirmed) : 0;
}

/* the source committed the transaction (or had it already) */
static void
txn_applied(pgm_reverse_t *r)
{
	r->applied = r->cur.commit_lsn;
	r->advance_to = r->cur.end_lsn;
	r->txn_total++;
	r->change_total += r->cur.changes;
	cur_clear(r);
	process(r);
}

static void
apply_failed(pgm_reverse_t *r, const pgm_pg_error_t *err)
{
	char what[96], lsn[32];

	pgm_lsn_format(r->cur_commit, lsn, sizeof(lsn));
	snprintf(what, sizeof(what), "could not apply target transaction %u (commit %s) to the source", r->cur_xid,
		 lsn);
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

/* the chunks of cur not applied yet, one DO block each, then its progress and COMMIT */
static void
on_tail(pgm_pg_conn_t *c, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	pgm_reverse_t *r = data;
	char *sql, *post;

	if (err) {
		apply_failed(r, err);
		return;
	}
	if (r->chunk < r->cur.nchunks) {
		sql = pgm_pgo_do_block("", r->cur.chunks[r->chunk++], "");
		pgm_pg_query(r->src, sql, 0, NULL, on_tail, r);
		free(sql);
		return;
	}
	post = progress_update(r, &r->cur);
	sql = pgm_asprintf("%sCOMMIT", post);
	pgm_pg_query(r->src, sql, 0, NULL, on_applied, r);
	free(sql);
	free(post);
}

static void
on_stream_sent(pgm_pg_conn_t *c, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	pgm_reverse_t *r = data;

	if (err) {
		apply_failed(r, err);
		return;
	}
	process(r);
}

/* BEGIN and the progress row, locked: does the source have this transaction already? */
static void
on_stream_begun(pgm_pg_conn_t *c, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	pgm_reverse_t *r = data;

	if (err) {
		apply_failed(r, err);
		return;
	}
	if (pgm_pg_ntuples(res) == 0) {
		char *msg = pgm_asprintf("the progress row of job %s is missing from %s", r->s->job->name, r->progress);

		rev_error(r, false, "could not apply a large target transaction", msg, NULL);
		free(msg);
		return;
	}
	if (strcmp(pgm_pg_value(res, 0, 0) ? pgm_pg_value(res, 0, 0) : "", "t") == 0) {
		r->tx = TX_SKIP; /* applied by an earlier run: read past it */
		pgm_pg_query(r->src, "ROLLBACK", 0, NULL, on_stream_sent, r);
		return;
	}
	r->tx = TX_STREAM;
	process(r);
}

/*
 * A large target transaction (more than PGM_PGO_CHUNK changes) is a source
 * transaction of its own: BEGIN and the progress row, locked, as soon as
 * its first chunk is decoded (the row may say it is applied already: then
 * it is read past), a DO block per chunk as they come, and at its Commit
 * the rest, the progress row moved and COMMIT.
 */
static void
stream_begin(pgm_reverse_t *r)
{
	char lsn[32], *sql;

	pgm_lsn_format(r->cur_commit, lsn, sizeof(lsn));
	sql = pgm_asprintf("BEGIN; SELECT commit_lsn >= '%s' FROM %s WHERE job = %s FOR UPDATE", lsn, r->progress,
			   r->job_lit);
	pgm_pg_query(r->src, sql, 0, NULL, on_stream_begun, r);
	free(sql);
}

static void
on_batch_applied(pgm_pg_conn_t *c, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	pgm_reverse_t *r = data;

	if (err) {
		char what[128], lsn[32];

		pgm_lsn_format(r->batch_last.commit_lsn, lsn, sizeof(lsn));
		snprintf(what, sizeof(what),
			 "could not apply target transactions %u to %u (last commit %s) to the source",
			 r->batch_first_xid, r->batch_last.xid, lsn);
		rev_error_pg(r, what, err);
		return;
	}
	r->applied = r->batch_last.commit_lsn;
	if (r->batch_last.end_lsn > r->advance_to)
		r->advance_to = r->batch_last.end_lsn;
	r->txn_total += r->batch_txns;
	r->change_total += r->batch_changes;
	batch_clear(r);
	process(r);
}

/*
 * The batch as one DO block: the progress row locked and read, each
 * transaction applied only if past it, the row moved to the last one.
 */
static void
batch_flush(pgm_reverse_t *r)
{
	char *pre, *post, *sql, *table = pgm_quote_literal(r->progress);

	pre = pgm_asprintf("SELECT commit_lsn INTO pgm_done FROM %s WHERE job = %s FOR UPDATE;\n"
			   "IF NOT FOUND THEN RAISE EXCEPTION 'the progress row of job %% is missing from %%', %s, %s;"
			   " END IF;\n",
			   r->progress, r->job_lit, r->job_lit, table);
	free(table);
	post = progress_update(r, &r->batch_last);
	sql = pgm_pgo_do_block(pre, r->batch.s, post);
	pgm_pg_query(r->src, sql, 0, NULL, on_batch_applied, r);
	free(sql);
	free(pre);
	free(post);
}

/* a small transaction read whole joins the batch, guarded by its commit LSN */
static void
batch_add(pgm_reverse_t *r)
{
	char lsn[32];

	pgm_lsn_format(r->cur.commit_lsn, lsn, sizeof(lsn));
	if (r->batch_txns == 0)
		r->batch_first_xid = r->cur.xid;
	pgm_buf_appendf(&r->batch, "IF pgm_done < '%s' THEN\n", lsn);
	for (int i = 0; i < r->cur.nchunks; i++)
		pgm_buf_append(&r->batch, r->cur.chunks[i]);
	pgm_buf_append(&r->batch, "END IF;\n");
	r->batch_txns++;
	r->batch_changes += r->cur.changes;
	pgm_pgo_txn_clear(&r->cur);
	r->batch_last = r->cur;
	cur_clear(r);
}

static void on_fetch(pgm_pg_conn_t *c, const PGresult *res, const pgm_pg_error_t *err, void *data);

static void
on_read_closed(pgm_pg_conn_t *c, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	pgm_reverse_t *r = data;

	if (err) {
		rev_error_pg(r, "could not end the read on the target", err);
		return;
	}
	advance(r);
}

/* the read of this round is over: the lag it found, close the cursor, then advance the slot */
static void
read_done(pgm_reverse_t *r)
{
	uint64_t lsn;
	int64_t at;
	uint32_t xid;

	if (pgm_pgo_current(r->pgo, &lsn, &at, &xid)) {
		rev_error(r, true, "the slot's changes end inside a transaction",
			  "no Commit after the last change read", NULL);
		return;
	}
	if (r->oldest_ms == 0) {
		r->lag_ms = 0;
		r->lag_bytes = r->truncated && r->flush > r->confirmed ? (int64_t) (r->flush - r->confirmed) : 0;
	}
	pgm_pg_query(r->tgt, "COMMIT", 0, NULL, on_read_closed, r);
}

/* decode the messages read and apply what they make, one round trip at a time */
static void
process(pgm_reverse_t *r)
{
	for (;;) {
		char *chunk, *perr = NULL;
		int64_t at;
		int rc;

		if (r->tx != TX_NONE && (chunk = pgm_pgo_take_chunk(r->pgo)) != NULL) {
			char *sql;

			if (r->tx == TX_SKIP) {
				free(chunk);
				continue;
			}
			sql = pgm_pgo_do_block("", chunk, "");
			free(chunk);
			pgm_pg_query(r->src, sql, 0, NULL, on_stream_sent, r);
			free(sql);
			return;
		}
		/* a large transaction: its first chunk is ready; what came before goes first */
		if (r->tx == TX_NONE && pgm_pgo_chunks_ready(r->pgo) > 0 &&
		    pgm_pgo_current(r->pgo, &r->cur_commit, &at, &r->cur_xid)) {
			if (r->batch_txns > 0) {
				batch_flush(r);
				return;
			}
			if (r->cur_commit <= r->applied) {
				r->tx = TX_SKIP; /* the source has it (a crash before the slot moved) */
				continue;
			}
			lag_note(r, at);
			stream_begin(r);
			return;
		}
		if (r->pos == r->nmsgs)
			break;
		rc = pgm_pgo_feed(r->pgo, r->msgs[r->pos], r->lens[r->pos], &r->cur, &perr);
		free(r->msgs[r->pos]);
		r->msgs[r->pos++] = NULL;
		if (rc < 0) {
			rev_error(r, false, "could not decode a change", perr, NULL);
			free(perr);
			return;
		}
		if (rc == 0)
			continue;
		/* a transaction read to its Commit */
		r->cur_commit = r->cur.commit_lsn;
		r->cur_xid = r->cur.xid;
		if (r->tx == TX_STREAM) {
			r->chunk = 0;
			on_tail(r->src, NULL, NULL, r);
			return;
		}
		if (r->tx == TX_SKIP || r->cur.commit_lsn <= r->applied || r->cur.nchunks == 0) {
			/* the source has it already, or nothing of it is published */
			if (r->batch_txns == 0)
				r->advance_to = r->cur.end_lsn;
			cur_clear(r);
			continue;
		}
		lag_note(r, r->cur.commit_time);
		batch_add(r);
		if (r->batch_changes >= PGM_PGO_CHUNK || r->batch.len >= PGM_PGO_CHUNK_BYTES) {
			batch_flush(r);
			return;
		}
	}
	if (!r->cursor_done) {
		char sql[64];

		r->fetch_rows = r->fetch_next;
		snprintf(sql, sizeof(sql), "FETCH %d FROM pgm_reverse", r->fetch_rows);
		pgm_pg_query(r->tgt, sql, 0, NULL, on_fetch, r);
		return;
	}
	if (r->batch_txns > 0) {
		batch_flush(r);
		return;
	}
	read_done(r);
}

/* rows of about FETCH_BYTES, judged by the n messages just read */
static int
fetch_size(const pgm_reverse_t *r, int n)
{
	size_t bytes = 0;
	double rows;

	if (n == 0)
		return r->fetch_next;
	for (int i = 0; i < n; i++)
		bytes += r->lens[i];
	rows = (double) FETCH_BYTES * n / (double) (bytes > 0 ? bytes : 1);
	return rows < 1 ? 1 : rows > FETCH_ROWS ? FETCH_ROWS : (int) rows;
}

static void
on_fetch(pgm_pg_conn_t *c, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	pgm_reverse_t *r = data;
	int n = pgm_pg_ntuples(res);

	if (err) {
		rev_error_pg(r, "could not read the slot on the target", err);
		return;
	}
	msgs_clear(r);
	r->msgs = pgm_calloc((size_t) n + 1, sizeof(*r->msgs));
	r->lens = pgm_calloc((size_t) n + 1, sizeof(*r->lens));
	for (int i = 0; i < n; i++) {
		r->msgs[i] = pgm_pgo_unhex(pgm_pg_value(res, i, 0), &r->lens[i]);
		r->nmsgs = i + 1;
		if (r->msgs[i] == NULL) {
			rev_error(r, false, "could not decode a change", "not a bytea value", NULL);
			return;
		}
	}
	r->rows_read += n;
	r->cursor_done = n < r->fetch_rows;
	r->fetch_next = fetch_size(r, n);
	r->truncated = r->rows_read >= BATCH;
	process(r);
}

/*
 * Read the slot: peek, for the slot only moves once the source has the
 * changes (advance); up to the flush LSN read before the tables were
 * looked at, so that every change read is of a table that check saw.
 */
static void
rev_read(pgm_reverse_t *r)
{
	char lsn[32], *sql;

	pgm_lsn_format(r->flush, lsn, sizeof(lsn));
	if (r->fetch_next == 0)
		r->fetch_next = FETCH_FIRST;
	r->fetch_rows = r->fetch_next;
	sql = pgm_asprintf("BEGIN; DECLARE pgm_reverse NO SCROLL CURSOR FOR SELECT data"
			   " FROM pg_logical_slot_peek_binary_changes(%s, '%s', %d, 'proto_version', '1',"
			   " 'publication_names', quote_ident(%s)); FETCH %d FROM pgm_reverse",
			   r->slot_lit, lsn, BATCH, r->slot_lit, r->fetch_rows);
	pgm_pg_query(r->tgt, sql, 0, NULL, on_fetch, r);
	free(sql);
}

/*
 * Each round looks for tables the stream does not carry (reverse_tables.c)
 * before it reads; in the drain one fails the rollback unless its loss was
 * accepted (the target is frozen by then: no table appears later).
 */
static void
on_tables_checked(void *data, const pgm_pg_error_t *err)
{
	pgm_reverse_t *r = data;
	char *message = NULL, *hint = NULL;

	if (err) {
		rev_error_pg(r, "could not look for tables the stream does not carry", err);
		return;
	}
	if (r->f && !pgm_reverse_drain_lossless(r->s->job, &message, &hint)) {
		rev_close_conns(r);
		pgm_flow_fail(r->f, message, NULL, hint);
		free(message);
		free(hint);
		return;
	}
	rev_read(r);
}

static void
on_positions(pgm_pg_conn_t *c, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	pgm_reverse_t *r = data;

	if (err) {
		rev_error_pg(r, "could not read the positions on the target", err);
		return;
	}
	if (pgm_pg_ntuples(res) == 0) {
		rev_error(r, false, "the logical slot is gone from the target", r->slot,
			  "writes made on the target since it was dropped are not on the source");
		return;
	}
	if (!pgm_lsn_parse(pgm_pg_value(res, 0, 0), &r->flush) ||
	    !pgm_lsn_parse(pgm_pg_value(res, 0, 1), &r->confirmed)) {
		rev_error(r, true, "unexpected positions on the target", pgm_pg_value(res, 0, 0) ?: "null", NULL);
		return;
	}
	r->retained = pgm_pg_value(res, 0, 2) ? strtoll(pgm_pg_value(res, 0, 2), NULL, 10) : 0;
	if (r->f && r->drain_to == 0)
		r->drain_to = r->flush;
	r->advance_to = r->confirmed;
	r->rows_read = 0;
	r->oldest_ms = 0;
	r->cursor_done = r->truncated = false;
	pgm_reverse_tables_check(r->s, r->tgt, r->src, r->slot, on_tables_checked, r);
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
				   " confirmed_flush_lsn::text, " RETAINED_SQL " FROM pg_replication_slots"
				   " WHERE slot_name = '%s'",
				   r->slot);
		pgm_pg_query(r->tgt, sql, 0, NULL, on_positions, r);
		free(sql);
		return;
	}
	pgm_pg_query(r->tgt,
		     "SELECT pg_current_wal_flush_lsn()::text, confirmed_flush_lsn::text, " RETAINED_SQL
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
	if (pgm_state_bounded(r->s->job->state)) {
		/* rolling back: the job's bounds, not the window's "none" */
		char *sql = pgm_asprintf("%s; SET statement_timeout = %lld; SET lock_timeout = %lld", session_sql,
					 (long long) pgm_jobopt_int(r->s->job->options, "statement_timeout"),
					 (long long) pgm_jobopt_int(r->s->job->options, "lock_timeout"));

		pgm_pg_query(c, sql, 0, NULL, on_session, r);
		free(sql);
		return;
	}
	pgm_pg_query(c, session_sql, 0, NULL, on_session, r);
}

/* the source ready for the replay (replay.c): its triggers disabled, its foreign keys' rules read */
static void
on_prepared(void *data, cJSON *rules, const char *what, const pgm_pg_error_t *err)
{
	pgm_reverse_t *r = data;

	if (err) {
		rev_error_pg(r, what, err);
		return;
	}
	cJSON_Delete(r->rules);
	r->rules = rules;
	pgm_replay_rules_apply(r->rules, r->pgo);
	r->tgt = pgm_step_connect(r->s, false, "reverse-read", on_connect, r);
	r->src = pgm_step_connect(r->s, true, "reverse-apply", on_connect, r);
}

static void
rev_connect(pgm_reverse_t *r)
{
	rev_close_conns(r);
	pgm_pgo_free(r->pgo);
	r->pgo = pgm_pgo_new();
	pgm_replay_prepare(r->s, r->prep_timer, on_prepared, r);
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
	r->slot_lit = pgm_quote_literal(r->slot);
	r->progress = pgm_reverse_progress_table(s->job);
	r->job_lit = pgm_quote_literal(s->job->name);
	r->txn_total = (int64_t) pgm_json_num(o, "transactions", 0);
	r->change_total = (int64_t) pgm_json_num(o, "changes", 0);
	r->last_save = pgm_now_ms();
	r->timer = pgm_step_timer(s);
	r->timer->data = r;
	r->prep_timer = pgm_step_timer(s);
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
