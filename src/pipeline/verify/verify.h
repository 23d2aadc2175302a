/*
 * verify.h — the verification engine: are two databases the same?
 *
 * For every table on both sides: the exact row count and an
 * order-independent checksum computed on the servers, each side inside one
 * exported snapshot (REPEATABLE READ READ ONLY), both sides at the same
 * time over `jobs` connections per side (a large heap is read in block
 * ranges by all of them at once). A table with a primary key (or a unique
 * key on NOT NULL columns) that differs is cut into key-range chunks, and a
 * chunk that differs is bisected in SQL down to the keys of the rows that
 * differ (missing on the target, extra on the target, changed). A table
 * without such a key is compared whole, its differing rows shown by their
 * text. Sequences (the target must be at
 * or past the source) and the schema (tables, columns and types, indexes,
 * constraints, triggers, views, sequences, extensions) are compared too.
 *
 * The engine knows nothing of jobs or steps: the daemon's `verifying`
 * step (verify_step.c, pgm_verify_step below) and `pgmover verify
 * --source --target` (src/cli/compare.c) both drive it on a loop of
 * theirs. verify_plan.h holds its pure parts.
 */
#ifndef PGM_VERIFY_H
#define PGM_VERIFY_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "pg/pgasync.h"

typedef struct pgm_verify pgm_verify_t;

typedef struct pgm_verify_options {
	int jobs;                  /* connections per side (0: 2) */
	const char *const *tables; /* NULL-terminated "schema.table" or "table" names; NULL: all */
	int max_keys;              /* differing keys listed per table (0: 20) */
	pgm_pg_net_t net;          /* the connections' bounds (zeroed: 15 s to connect, nothing more) */
	const char *app_name;      /* application_name prefix (NULL: "pgmover") */
	/* tuning; 0 takes the default (measured on pgbench, see verify.c) */
	int64_t chunk_bytes; /* the smallest block range the first pass cuts a heap into */
	int64_t chunk_rows;  /* rows per key-range chunk of a table found different */
	int leaf_rows;       /* ranges this small are fetched key by key */
} pgm_verify_options_t;

/*
 * The end: report (owned by the callee from now on) on success, whatever
 * it says; or NULL with what failed ("could not connect to the source") and
 * the server's error (SQLSTATE, message, detail, hint; NULL when the
 * failure is not the server's). The engine frees itself after the callback
 * returns: do not use or cancel it afterwards.
 */
typedef void (*pgm_verify_done_cb)(pgm_verify_t *v, cJSON *report, const char *what, const pgm_pg_error_t *err,
				   void *data);
/* now and then: {"phase", "tables_done", "tables_total", "chunks_done", ...} (borrowed) */
typedef void (*pgm_verify_progress_cb)(pgm_verify_t *v, const cJSON *progress, void *data);

/* start comparing; callbacks come from the loop, never from inside this call */
pgm_verify_t *pgm_verify_start(uv_loop_t *loop, const char *source_dsn, const char *target_dsn,
			       const pgm_verify_options_t *opts, pgm_verify_done_cb done_cb,
			       pgm_verify_progress_cb progress_cb, void *data);
/* stop: running statements are cancelled, no callback fires after this; memory goes with the loop */
void pgm_verify_cancel(pgm_verify_t *v);
/* for pgm_step_own and the like */
void pgm_verify_cancel_cb(void *v);

/*
 * verify_step.c: the `verifying` step of a job: the engine run on the
 * job's two servers; the report goes to job->verify, any difference ends
 * the step with verify_failed
 */
struct pgm_step;
void pgm_verify_step(struct pgm_step *s);

#endif
