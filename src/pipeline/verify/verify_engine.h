/*
 * verify_engine.h — the verification engine's internal state, shared by
 * verify.c (connections, snapshots, the work queues, the report),
 * verify_catalog.c (both catalogs turned into tables and a first pass) and
 * verify_bisect.c (from a table that differs to the keys that differ).
 */
#ifndef PGM_VERIFY_ENGINE_H
#define PGM_VERIFY_ENGINE_H

#include "pipeline/verify/verify.h"
#include "pipeline/verify/verify_plan.h"

#define VERIFY_MAX_JOBS 32

typedef enum {
	TK_SUMS,     /* count and checksum: of a block range, or per bucket of a key range */
	TK_SAMPLE,   /* one side: sampled keys -> key-range chunk boundaries */
	TK_SPLIT,    /* one side: keys that split a range into equal parts */
	TK_FETCH,    /* key and hash of every row of a range */
	TK_COUNT,    /* a table on one side only: count(*) */
	TK_GROUPS,   /* no key: row hashes and their occurrences */
	TK_ROWS_TEXT /* no key: the text of rows by hash */
} task_kind_t;

/*
 * A comparison in flight: a range of one table, the buckets it is cut
 * into, and what each side reported. It ends when `need` sides did.
 */
typedef struct cmp {
	task_kind_t kind;
	int table;
	pgm_vkey_t lo, hi;  /* the range, NULL bounds open */
	pgm_vkey_t *bounds; /* nb boundaries inside it: nb + 1 buckets */
	int nb;
	int first;        /* number of the first bucket (its chunk, at chunk level) */
	bool first_pass;  /* the table's count and checksum, from block ranges */
	int parts;        /* TK_SPLIT: how many parts to cut the range into */
	int64_t *rows[2]; /* per bucket */
	uint64_t *sums[2];
	pgm_vrow_t *fetched[2]; /* TK_FETCH, TK_GROUPS, TK_SPLIT (keys in fetched[side].key) */
	int nfetched[2];
	int64_t one_sided; /* rows of the non-empty side, for PGM_VB_ONE_SIDED */
	int depth;         /* splits above this one */
	int have, need;
	struct cmp *prev, *next;
} cmp_t;

typedef struct task {
	task_kind_t kind;
	int side;
	int table;
	cmp_t *cmp; /* NULL for TK_COUNT */
	char *sql;
	bool ranged;    /* index range scan: the session runs with enable_seqscan off */
	int64_t blocks; /* first pass: the heap blocks it reads (progress) */
	struct task *next;
} task_t;

typedef struct worker {
	struct pgm_verify *v;
	int side, id;
	pgm_pg_conn_t *conn;
	bool connected, ready, seqscan_off;
	task_t *task; /* running, or NULL */
} worker_t;

/* what a side's catalog says about one table */
typedef struct rawtab {
	char *schema, *name;
	int64_t blocks;
	cJSON *cols, *key;
} rawtab_t;

typedef struct side {
	worker_t workers[VERIFY_MAX_JOBS];
	int nworkers, nalive;
	int leader; /* the first connected: exports the snapshot, reads the catalog */
	char *snapshot;
	int64_t snapshot_mono; /* when it was exported */
	int server_version;
	task_t *head, *tail;
	rawtab_t *raw;
	int nraw;
	pgm_vobj_t *objs;
	int nobjs;
	pgm_vseq_t *seqs;
	int nseqs;
	int catalog_step; /* 0 tables, 1 schema, 2 sequences, 3 done */
} side_t;

struct pgm_verify {
	uv_loop_t *loop;
	char *dsn[2];
	pgm_verify_options_t opts;
	char **filter; /* NULL-terminated copy of opts.tables */
	char *app_name;
	pgm_verify_done_cb done_cb;
	pgm_verify_progress_cb progress_cb;
	void *data;
	side_t sides[2];
	pgm_vtable_t *tables;
	int ntables, tables_done;
	int chunks_total, chunks_done;
	int64_t blocks_total, blocks_done; /* of the first pass, both sides: progress by size */
	int64_t rows_compared;
	cmp_t *cmps; /* every comparison in flight */
	const char *phase;
	char **warnings;
	int nwarnings;
	int64_t started_mono, catalog_mono, last_progress;
	uv_timer_t *timer; /* delivers the end from a fresh stack */
	bool failed, finishing, cancelled;
	char *fail_what;
	pgm_pg_error_t fail_err;
	bool fail_has_err;
};

/* verify.c */
void verify_fail(struct pgm_verify *v, const char *what, const pgm_pg_error_t *err);
void verify_progress(struct pgm_verify *v, bool force);
/* a comparison ended (after queueing what follows from it); the table may be done */
void verify_cmp_finish(struct pgm_verify *v, cmp_t *c);
void verify_table_finish(struct pgm_verify *v, pgm_vtable_t *t);
/* verify_bisect.c: what a query's result means, and what follows */
void verify_handle_result(struct pgm_verify *v, task_t *t, const PGresult *res);
void verify_warn(struct pgm_verify *v, char *msg);
void verify_queue(struct pgm_verify *v, task_t *t, bool front);
void verify_pump(struct pgm_verify *v, int side);
/* both sides described: build the tables and queue the work (verify_catalog.c) */
void verify_catalog_result(struct pgm_verify *v, worker_t *w, const PGresult *res);
void verify_plan_tables(struct pgm_verify *v);
void verify_catalog_free(struct pgm_verify *v);
cmp_t *verify_cmp_new(struct pgm_verify *v, task_kind_t kind, int table, const pgm_vkey_t lo, const pgm_vkey_t hi);
task_t *verify_task_new(task_kind_t kind, int side, int table, cmp_t *c, char *sql, bool ranged);

#endif
