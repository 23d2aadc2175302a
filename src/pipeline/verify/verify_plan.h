/*
 * verify_plan.h — the pure parts of the verification engine (verify.h):
 * the model of a compared table, chunk planning, the bookkeeping of the
 * bisection, the SQL it sends, and the report. Nothing here does I/O, so
 * the unit tests (tests/unit/test_verify.c) drive it with fixtures.
 */
#ifndef PGM_VERIFY_PLAN_H
#define PGM_VERIFY_PLAN_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

enum { PGM_V_SOURCE = 0, PGM_V_TARGET = 1 };

/* differences kept per table to reconcile and list (counting goes on past it) */
#define PGM_V_KEEP_DIFFS 10000

/* a compared column: present on both sides, described from the source */
typedef struct pgm_vcol {
	char *name;
	char *type;     /* format_type() */
	char *builtin;  /* typname when a base type of pg_catalog, else NULL */
	bool same_type; /* the target's column has the same type */
	bool not_null;  /* NOT NULL on both sides: its hash needs no NULL case */
} pgm_vcol_t;

/* one key value: the text of each key column (nkey strings) */
typedef char **pgm_vkey_t;

/* a fetched row: its key's text and its hash */
typedef struct pgm_vrow {
	char *key;
	uint64_t hash;
	int64_t n; /* occurrences (tables without a key group equal rows) */
} pgm_vrow_t;

typedef enum { PGM_VDIFF_MISSING, PGM_VDIFF_EXTRA, PGM_VDIFF_CHANGED } pgm_vdiff_kind_t;

typedef struct pgm_vdiff {
	char *key;
	pgm_vdiff_kind_t kind;
	uint64_t hash[2]; /* row hash on each side (0 where absent) */
} pgm_vdiff_t;

typedef struct pgm_vtable {
	char *schema, *name;
	char *display; /* schema.table, as reported */
	char *ident;   /* "schema"."table", for SQL */
	bool present[2];
	int64_t blocks[2];  /* heap size on each side */
	int scan_chunks[2]; /* block ranges the first pass reads on each side */
	pgm_vcol_t *cols;   /* compared columns, in source order */
	int ncols;
	char **key, **key_types; /* key column names and types (none: compared whole) */
	int nkey;
	int nchunks;        /* key-range chunks of a table found different (0: none) */
	char *hash_sql;     /* the row hash expression over alias t */
	bool large_objects; /* the large objects: pg_largeobject_metadata's OIDs, lo_get()'s bytes */

	/* results */
	int64_t rows[2];
	uint64_t sum[2]; /* sum of row hashes mod 2^64 */
	int chunks_differ;
	bool whole_differs; /* compared whole and found different */
	bool incomplete;    /* bisection stopped after PGM_V_KEEP_DIFFS differences */
	pgm_vdiff_t *diffs; /* the first PGM_V_KEEP_DIFFS found */
	int ndiffs, capdiffs;
	int64_t count[3]; /* all differences found, by kind */
	int pending;      /* queries of this table in flight or queued */
	bool done;
	int64_t started_ms, ended_ms; /* monotonic */
} pgm_vtable_t;

/* a schema object on one side: kind, owning table (or NULL), identity, definition */
typedef struct pgm_vobj {
	char *kind, *table, *object, *detail;
} pgm_vobj_t;

/* a sequence on one side */
typedef struct pgm_vseq {
	char *name, *table; /* owning table or NULL */
	char *value;        /* last_value, NULL when never used or not readable */
	bool descending;    /* negative increment: "past" is below */
} pgm_vseq_t;

/* ---- planning ---- */

/* the number of key-range chunks for a table of `rows` rows (at least 1) */
int pgm_vplan_nchunks(double rows, int64_t chunk_rows);
/* TABLESAMPLE SYSTEM percentage giving about 16 rows per chunk */
double pgm_vplan_sample_pct(double rows, int nchunks);
/*
 * Pick the boundaries of nparts parts from n sorted sample rows: writes up
 * to nparts - 1 increasing row indexes into idx and returns how many.
 */
int pgm_vplan_pick(int n, int nparts, int *idx);
/*
 * How many block ranges the first pass reads a heap of `blocks` in (1: one
 * sequential scan), its side's heaps being side_blocks in all, read by
 * `jobs` connections; ranges are at least min_blocks.
 */
int pgm_vplan_block_chunks(int64_t blocks, int64_t side_blocks, int jobs, int64_t min_blocks);

/* ---- bisection ---- */

typedef enum {
	PGM_VB_EQUAL,     /* counts and checksums agree */
	PGM_VB_FETCH,     /* small enough: fetch keys and hashes of both sides */
	PGM_VB_ONE_SIDED, /* one side is empty and the other large: list the first keys */
	PGM_VB_SPLIT      /* split into sub-ranges and compare those */
} pgm_vbisect_t;

pgm_vbisect_t pgm_vbisect_decide(const int64_t rows[2], const uint64_t sums[2], int leaf_rows);
/* sum(bigint) as numeric text, reduced mod 2^64 (NULL: 0) */
uint64_t pgm_vsum_parse(const char *numeric_text);
/* key order of the report: integers by value, the rest bytewise */
int pgm_vkey_cmp(const char *a, const char *b);
void pgm_vrows_sort(pgm_vrow_t *rows, int n);
/* compare sorted fetched rows of both sides; every difference goes to t */
void pgm_vrows_merge(pgm_vtable_t *t, const pgm_vrow_t *src, int nsrc, const pgm_vrow_t *dst, int ndst);
void pgm_vtable_add_diff(pgm_vtable_t *t, const char *key, pgm_vdiff_kind_t kind, uint64_t hs, uint64_t ht);
/*
 * A key missing from one chunk and extra in another (the sides order keys
 * differently, e.g. another collation) is one row: the same if the hashes
 * agree, else changed. Also sorts the kept differences by key.
 */
void pgm_vtable_reconcile(pgm_vtable_t *t);
void pgm_vtable_free(pgm_vtable_t *t);
void pgm_vkey_free(pgm_vkey_t k, int nkey);
pgm_vkey_t pgm_vkey_dup(const pgm_vkey_t k, int nkey);

/* "schema.table" or "table" in filter (NULL-terminated; NULL matches all) */
bool pgm_vfilter_match(const char *const *filter, const char *schema, const char *name);

/* ---- SQL (verify_sql.c) ---- */

/* session settings that make every value's text the same on any server */
extern const char *const pgm_vsql_session;
extern const char *const pgm_vsql_tables;
extern const char *const pgm_vsql_schema;
extern const char *const pgm_vsql_sequences;
/* the row hash of t's compared columns; float_bits when a side is older than 12 */
char *pgm_vsql_row_hash(const pgm_vtable_t *t, bool float_bits);
/* WHERE condition of lo <= key < hi (NULL bounds: open), "true" when both open */
char *pgm_vsql_range(const pgm_vtable_t *t, const pgm_vkey_t lo, const pgm_vkey_t hi);
/* bucket number first + (boundaries in b[0..nb-1] at or below the key) */
char *pgm_vsql_bucket(const pgm_vtable_t *t, const pgm_vkey_t *b, int nb, int first);
/* count(*), sum(hash) of heap blocks from .. to (to < 0: to the end; from < 0: whole table) */
char *pgm_vsql_sums_blocks(const pgm_vtable_t *t, int64_t from, int64_t to);
/* per bucket: bucket, count(*), sum(hash), over lo <= key < hi */
char *pgm_vsql_sums(const pgm_vtable_t *t, const pgm_vkey_t lo, const pgm_vkey_t hi, const pgm_vkey_t *b, int nb,
		    int first);
char *pgm_vsql_sample(const pgm_vtable_t *t, double pct);
/* the key of every step-th row after the first in lo <= key < hi, in order */
char *pgm_vsql_split(const pgm_vtable_t *t, const pgm_vkey_t lo, const pgm_vkey_t hi, int64_t step);
/* key text and row hash of each row in lo <= key < hi (limit 0: all) */
char *pgm_vsql_fetch(const pgm_vtable_t *t, const pgm_vkey_t lo, const pgm_vkey_t hi, int64_t limit);
char *pgm_vsql_count(const pgm_vtable_t *t);
/* no key: row hash, occurrences (the multiset of rows) */
char *pgm_vsql_row_groups(const pgm_vtable_t *t);
/* no key: the text of one row per hash in hashes */
char *pgm_vsql_rows_text(const pgm_vtable_t *t, const uint64_t *hashes, int n);

/* ---- the report (verify_report.c) ---- */

cJSON *pgm_vreport_table(const pgm_vtable_t *t, int max_keys);
/* schema differences of the two inventories, restricted to filter's tables */
cJSON *pgm_vreport_schema(pgm_vobj_t *objs[2], const int n[2], const char *const *filter);
/* sequences: the target at or past the source (below it for a descending one) */
cJSON *pgm_vreport_sequences(pgm_vseq_t *seqs[2], const int n[2], const char *const *filter, int *mismatches);

#endif
