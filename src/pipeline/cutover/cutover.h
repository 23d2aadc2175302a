/*
 * cutover.h — the pieces of cutover, the rollback window, rollback and
 * finish (dump method): a small runner of named stages, pgbouncer's admin
 * console and include file, the DNS TTL check, sequences, and the reverse
 * stream that carries writes made on the target back to the source.
 *
 * Only pipeline.c and steps.c call in here (pgm_cutover_run, ...); the
 * rest is shared between cutover.c, rollback.c, reverse.c, pgoutput.c,
 * pgbouncer.c and dns.c.
 */
#ifndef PGM_CUTOVER_H
#define PGM_CUTOVER_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fsm/job.h"

/* the entry points, one per step of the transition table (dump method) */
void pgm_cutover_run(pgm_step_t *s);
void pgm_window_run(pgm_step_t *s);
void pgm_rollback_run(pgm_step_t *s);
void pgm_finish_run(pgm_step_t *s);

/* ---- flows: named stages run in order, each recorded (facts, audit) ---- */

typedef struct pgm_flow pgm_flow_t;
typedef void (*pgm_stage_fn)(pgm_flow_t *f);

typedef struct pgm_stage {
	const char *name;             /* "pgbouncer:pause": audited as "<flow>:<name>" */
	pgm_stage_fn run;             /* ends with pgm_flow_next or pgm_flow_fail */
	bool (*wanted)(pgm_job_t *j); /* NULL: always; false: skipped silently */
} pgm_stage_t;

/* undo what a failed flow left half done; calls pgm_flow_fail_now at the end */
typedef void (*pgm_flow_undo_fn)(pgm_flow_t *f);

struct pgm_pgb;
struct pgm_reverse;

struct pgm_flow {
	pgm_step_t *step;
	pgm_job_t *job;
	const char *name;              /* "cutover", "rollback", "finish" */
	const pgm_stage_t *stages;
	int cur;                       /* index of the running stage */
	int64_t stage_started;         /* monotonic ms */
	void (*then)(pgm_step_t *s);   /* after the last stage */
	pgm_flow_undo_fn undo;         /* on failure (may be NULL) */
	bool failing;                  /* undo is running */
	char *fail_msg, *fail_detail, *fail_hint;
	struct pgm_pgb *pgb;           /* pgbouncer admin console, when configured */
	struct pgm_reverse *rev;       /* the reverse stream, when running */
	char *scratch;                 /* a stage's value for the next (malloc'd) */
};

/* start a flow owned by the step; stages already done (facts.<flow>.done) are skipped */
pgm_flow_t *pgm_flow_start(pgm_step_t *s, const char *name, const pgm_stage_t *stages, pgm_flow_undo_fn undo,
                           void (*then)(pgm_step_t *s));
/* the current stage succeeded: record it, run the next */
void pgm_flow_next(pgm_flow_t *f);
/* the current stage failed: record it, run the undo, then fail the step */
void pgm_flow_fail(pgm_flow_t *f, const char *message, const char *detail, const char *hint);
/* the same with a server error */
void pgm_flow_fail_pg(pgm_flow_t *f, const char *what, const pgm_pg_error_t *err, const char *hint);
/* for the undo: fail the step now with the recorded message */
void pgm_flow_fail_now(pgm_flow_t *f);
/* facts.<flow> (created on demand) and whether a stage of it is done */
cJSON *pgm_flow_facts(pgm_flow_t *f);
bool pgm_flow_done(pgm_job_t *job, const char *flow, const char *stage);
/* forget the stages done, so that a retry starts the flow over */
void pgm_flow_reset(pgm_job_t *job, const char *flow);
/* one audit line "<flow>:<what>" with an outcome */
void pgm_flow_audit(pgm_flow_t *f, const char *what, const char *outcome);
/* a statement script of the flow's step whose errors go through pgm_flow_fail */
struct pgm_sql *pgm_flow_sql(pgm_flow_t *f, bool source, const char *purpose, const char *what, const char *hint);
/* the flow a step runs (for continuations that get only the step) */
pgm_flow_t *pgm_flow_of(pgm_step_t *s);

/* ---- artifacts (job->artifacts), recorded and saved before the change ---- */

cJSON *pgm_artifact_find(pgm_job_t *job, const char *kind, const char *name);
/* a new active artifact, made durable at once */
cJSON *pgm_artifact_add(pgm_job_t *job, const char *kind, const char *side, const char *name);
void pgm_artifact_undone(pgm_job_t *job, cJSON *a);
bool pgm_artifact_active(const cJSON *a);

/* ---- names pgmover gives its objects (slot names allow [a-z0-9_] only) ---- */

char *pgm_reverse_slot_name(const pgm_job_t *job);   /* malloc'd */
char *pgm_reverse_schema_name(const pgm_job_t *job); /* malloc'd, unquoted */
char *pgm_reverse_progress_table(const pgm_job_t *job); /* "schema".applied, malloc'd */

/* ---- sequences: on `to`, raise every sequence that is behind `from` ---- */

void pgm_sequences_sync(pgm_flow_t *f, bool from_source);

/* ---- the read-only freeze of the target (rollback) and its undo ---- */

void pgm_target_freeze(pgm_flow_t *f, void (*then)(pgm_flow_t *f));
void pgm_target_thaw(pgm_flow_t *f, void (*then)(pgm_flow_t *f));

/* ---- pgbouncer (pgbouncer.c) ---- */

bool pgm_pgb_configured(pgm_job_t *job);
/* this flow sent PAUSE (it may have taken effect) and has not resumed since */
bool pgm_pgb_paused(pgm_flow_t *f);
/* SHOW DATABASES has the entry; the include file has it; back the file up once */
void pgm_pgb_check(pgm_flow_t *f, void (*then)(pgm_flow_t *f));
void pgm_pgb_pause(pgm_flow_t *f, void (*then)(pgm_flow_t *f));
void pgm_pgb_resume(pgm_flow_t *f, void (*then)(pgm_flow_t *f));
/* point the entry at the target (or back at the original), RELOAD, check */
void pgm_pgb_switch(pgm_flow_t *f, bool to_target, void (*then)(pgm_flow_t *f));
/*
 * Best effort, for undo paths; never fails: the original entry back and
 * RELOAD (when original), then RESUME.
 */
void pgm_pgb_restore(pgm_flow_t *f, bool original, void (*then)(pgm_flow_t *f));
/* remove the backup of the include file (finish, rollback) */
void pgm_pgb_cleanup(pgm_flow_t *f);

/*
 * The entry line rewritten: host, port, dbname, user and password from the
 * DSN, other parameters kept. Returns the whole new file (malloc'd), or NULL
 * and *err when the entry is not in it.
 */
char *pgm_pgb_rewrite(const char *file, const char *database, const char *dsn, char **err);
/* read a text file (malloc'd), or NULL and *err */
char *pgm_pgb_read(const char *path, char **err);
/* replace path atomically, with the owner and mode of `like` (0600 if it is missing) */
bool pgm_pgb_write_like(const char *path, const char *like, const char *data, char **err);

/* ---- DNS (dns.c): the TTL of the application's record, in the thread pool ---- */

void pgm_dns_check(pgm_flow_t *f, void (*then)(pgm_flow_t *f));

/* ---- the reverse stream (reverse.c) ---- */

/* create on the target a publication and a slot, on the source the progress table */
void pgm_reverse_setup(pgm_flow_t *f, void (*then)(pgm_flow_t *f));
/* drop every reverse object recorded in the artifacts (idempotent) */
void pgm_reverse_teardown(pgm_flow_t *f, void (*then)(pgm_flow_t *f));
/* the rollback window: apply target changes to the source every reverse_interval */
void pgm_reverse_follow(pgm_step_t *s);
/* apply until the source has every change committed on the target so far */
void pgm_reverse_drain(pgm_flow_t *f, void (*then)(pgm_flow_t *f));

/* ---- pgoutput (pgoutput.c): protocol version 1 messages to SQL for the source ---- */

typedef struct pgm_pgo pgm_pgo_t;

#define PGM_PGO_CHUNK 1000 /* changes per PL/pgSQL block: its plans stay in memory until it ends */

typedef struct pgm_pgo_txn {
	uint64_t commit_lsn;  /* of the commit record (Begin's final LSN) */
	uint64_t end_lsn;     /* just past it: where the slot may advance to */
	uint32_t xid;
	int64_t commit_time;  /* microseconds since 2000-01-01 */
	int changes;          /* rows inserted, updated, deleted; truncates */
	char **chunks;        /* the statements for the source, PGM_PGO_CHUNK changes each */
	int nchunks;          /* 0: nothing of it is published */
} pgm_pgo_txn_t;

void pgm_pgo_txn_clear(pgm_pgo_txn_t *t);

/* a DO block around statements, with a dollar-quote tag none of them holds (malloc'd) */
char *pgm_pgo_do_block(const char *prologue, const char *body, const char *epilogue);

pgm_pgo_t *pgm_pgo_new(void);
void pgm_pgo_free(pgm_pgo_t *p);
/*
 * Feed one message (the bytes of one row of pg_logical_slot_peek_binary_changes).
 * When it completes a transaction, *txn is filled (pgm_pgo_txn_clear frees it)
 * and 1 is returned; 0 when more is needed; -1 with *err on a malformed message.
 */
int pgm_pgo_feed(pgm_pgo_t *p, const uint8_t *msg, size_t len, pgm_pgo_txn_t *txn, char **err);
/*
 * A large transaction need not be held whole: the first of its chunks
 * already complete (malloc'd), NULL when none is; what is left goes into
 * the txn at its Commit.
 */
char *pgm_pgo_take_chunk(pgm_pgo_t *p);
int pgm_pgo_chunks_ready(const pgm_pgo_t *p);
/* the transaction being read, from its Begin message; false between transactions */
bool pgm_pgo_current(const pgm_pgo_t *p, uint64_t *commit_lsn, int64_t *commit_time, uint32_t *xid);
/* bytea text output ("\x0a1b...") to bytes (malloc'd); NULL when malformed */
uint8_t *pgm_pgo_unhex(const char *text, size_t *len);
/* "16/B374D848" */
void pgm_lsn_format(uint64_t lsn, char *buf, size_t len);
bool pgm_lsn_parse(const char *s, uint64_t *out);

#endif
