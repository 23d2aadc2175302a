/*
 * verify_bisect.c — from a table found different to the keys that differ
 * (the bisection of verify.c's step 4), and what each query's result means.
 *
 * A range lo <= key < hi that differs is, depending on its counts
 * (pgm_vbisect_decide): fetched row by row when small, listed from its one
 * non-empty side, or cut into parts that both sides sum in one query each,
 * recursively. The whole table (depth 0) is cut into key-range chunks of
 * about chunk_rows rows at boundaries sampled on its larger side
 * (TABLESAMPLE SYSTEM reads a few blocks), or counted exactly
 * (row_number() over the key) when it is small; deeper ranges are cut into
 * FANOUT equal parts at exact boundaries, through the key's index. Each
 * level costs one query per side for all of a range's parts, and at most
 * log32(rows / leaf_rows) levels lead to the rows.
 */
#include "common/util.h"
#include "pipeline/verify/verify_engine.h"

#include <stdlib.h>
#include <string.h>

#define FANOUT 32
#define EXACT_SPLIT_ROWS 200000  /* up to this many rows, chunk boundaries are counted, not sampled */
#define MAX_DEPTH 8              /* 32^8 rows: beyond, a range is fetched whole */
#define NOKEY_ROWS_LIMIT 2000000 /* a keyless table this big is only said to differ */

static void
queue_both(struct pgm_verify *v, cmp_t *c, task_kind_t kind, char *sql, bool ranged)
{
	c->need = 2;
	verify_queue(v, verify_task_new(kind, PGM_V_SOURCE, c->table, c, pgm_strdup(sql), ranged), true);
	verify_queue(v, verify_task_new(kind, PGM_V_TARGET, c->table, c, sql, ranged), true);
}

/*
 * A range lo <= key < hi with these counts and checksums on each side.
 * depth 0 is the whole table: it is cut into key-range chunks of about
 * chunk_rows rows, at boundaries sampled (TABLESAMPLE SYSTEM, a few blocks)
 * on its larger side, or counted exactly when it is small; deeper ranges
 * are cut into FANOUT parts at exact row_number() boundaries.
 */
static void
bisect(struct pgm_verify *v, int ti, const pgm_vkey_t lo, const pgm_vkey_t hi, const int64_t rows[2],
       const uint64_t sums[2], int depth)
{
	pgm_vtable_t *t = &v->tables[ti];
	bool ranged = lo != NULL || hi != NULL;
	pgm_vbisect_t what = pgm_vbisect_decide(rows, sums, v->opts.leaf_rows);
	cmp_t *c;
	int side, parts;
	int64_t most;

	/* sides that order keys differently (collations) could keep a range from shrinking */
	if (what == PGM_VB_SPLIT && depth >= MAX_DEPTH)
		what = PGM_VB_FETCH;
	/* enough found to list: the rest of a table far off is not worth the reads */
	if (what != PGM_VB_EQUAL && t->ndiffs >= PGM_V_KEEP_DIFFS) {
		t->incomplete = true;
		return;
	}
	switch (what) {
	case PGM_VB_EQUAL:
		return;
	case PGM_VB_FETCH:
		c = verify_cmp_new(v, TK_FETCH, ti, lo, hi);
		queue_both(v, c, TK_FETCH, pgm_vsql_fetch(t, lo, hi, 0), ranged);
		return;
	case PGM_VB_ONE_SIDED:
		side = rows[0] > 0 ? PGM_V_SOURCE : PGM_V_TARGET;
		c = verify_cmp_new(v, TK_FETCH, ti, lo, hi);
		c->need = 1;
		c->one_sided = rows[side];
		verify_queue(
			v, verify_task_new(TK_FETCH, side, ti, c, pgm_vsql_fetch(t, lo, hi, v->opts.max_keys), ranged),
			true);
		return;
	case PGM_VB_SPLIT:
		break;
	}
	side = rows[0] >= rows[1] ? PGM_V_SOURCE : PGM_V_TARGET;
	most = rows[side];
	parts = depth == 0 ? pgm_vplan_nchunks((double) most, v->opts.chunk_rows) : FANOUT;
	if (parts < 2)
		parts = 2;
	c = verify_cmp_new(v, TK_SPLIT, ti, lo, hi);
	c->need = 1;
	c->depth = depth;
	c->parts = parts;
	if (depth == 0 && most > EXACT_SPLIT_ROWS)
		verify_queue(v,
			     verify_task_new(TK_SAMPLE, side, ti, c,
					     pgm_vsql_sample(t, pgm_vplan_sample_pct((double) most, parts)), false),
			     true);
	else
		verify_queue(v,
			     verify_task_new(TK_SPLIT, side, ti, c,
					     pgm_vsql_split(t, lo, hi, (most + parts - 1) / parts), ranged),
			     true);
}

/* no key: the multiset of row hashes of both sides, if it is not too large */
static void
compare_groups(struct pgm_verify *v, pgm_vtable_t *t, int ti, const int64_t rows[2])
{
	if (rows[0] > NOKEY_ROWS_LIMIT || rows[1] > NOKEY_ROWS_LIMIT) {
		t->whole_differs = true;
		return;
	}
	queue_both(v, verify_cmp_new(v, TK_GROUPS, ti, NULL, NULL), TK_GROUPS, pgm_vsql_row_groups(t), false);
}

/* both sides summed what c asked for */
static void
sums_compared(struct pgm_verify *v, cmp_t *c)
{
	pgm_vtable_t *t = &v->tables[c->table];

	if (c->first_pass) {
		for (int s = 0; s < 2; s++) {
			t->rows[s] = c->rows[s][0];
			t->sum[s] = c->sums[s][0];
		}
		v->rows_compared += t->rows[0];
		if (t->rows[0] == t->rows[1] && t->sum[0] == t->sum[1])
			return;
		if (t->nkey == 0)
			compare_groups(v, t, c->table, t->rows);
		else
			bisect(v, c->table, NULL, NULL, t->rows, t->sum, 0);
		return;
	}
	if (c->depth == 1)
		t->nchunks = c->nb + 1;
	for (int b = 0; b <= c->nb; b++) {
		int64_t rows[2] = {c->rows[0][b], c->rows[1][b]};
		uint64_t sums[2] = {c->sums[0][b], c->sums[1][b]};
		bool equal = rows[0] == rows[1] && sums[0] == sums[1];

		if (c->depth == 1)
			t->chunks_differ += !equal;
		if (!equal)
			bisect(v, c->table, b == 0 ? c->lo : c->bounds[b - 1], b == c->nb ? c->hi : c->bounds[b], rows,
			       sums, c->depth);
	}
}

/* the keys that cut a range are in: sum its parts on both sides */
static void
split_done(struct pgm_verify *v, cmp_t *c)
{
	pgm_vtable_t *t = &v->tables[c->table];
	cmp_t *n;

	if (c->nb == 0) {
		/* nothing to cut on (a sample that missed): fetch it whole */
		n = verify_cmp_new(v, TK_FETCH, c->table, c->lo, c->hi);
		queue_both(v, n, TK_FETCH, pgm_vsql_fetch(t, c->lo, c->hi, 0), c->lo || c->hi);
		return;
	}
	n = verify_cmp_new(v, TK_SUMS, c->table, c->lo, c->hi);
	n->depth = c->depth + 1;
	n->bounds = c->bounds;
	n->nb = c->nb;
	c->bounds = NULL;
	c->nb = 0;
	/* the whole table (depth 0) is one sequential scan, a range goes through the key's index */
	queue_both(v, n, TK_SUMS, pgm_vsql_sums(t, n->lo, n->hi, n->bounds, n->nb, 0), n->lo || n->hi);
}

static void
fetched(struct pgm_verify *v, cmp_t *c, int side)
{
	pgm_vtable_t *t = &v->tables[c->table];

	if (c->need == 1) {
		pgm_vdiff_kind_t kind = side == PGM_V_SOURCE ? PGM_VDIFF_MISSING : PGM_VDIFF_EXTRA;

		for (int i = 0; i < c->nfetched[side]; i++)
			pgm_vtable_add_diff(t, c->fetched[side][i].key, kind, side == 0 ? c->fetched[side][i].hash : 0,
					    side == 1 ? c->fetched[side][i].hash : 0);
		t->count[kind] += c->one_sided - c->nfetched[side];
		return;
	}
	for (int s = 0; s < 2; s++)
		pgm_vrows_sort(c->fetched[s], c->nfetched[s]);
	pgm_vrows_merge(t, c->fetched[0], c->nfetched[0], c->fetched[1], c->nfetched[1]);
}

/* no key: the rows are told by their text, fetched by hash */
static void
groups_compared(struct pgm_verify *v, cmp_t *c)
{
	pgm_vtable_t *t = &v->tables[c->table];
	uint64_t *hashes[2];
	int n[2] = {0, 0};

	for (int s = 0; s < 2; s++)
		pgm_vrows_sort(c->fetched[s], c->nfetched[s]);
	pgm_vrows_merge(t, c->fetched[0], c->nfetched[0], c->fetched[1], c->nfetched[1]);
	for (int s = 0; s < 2; s++)
		hashes[s] = pgm_calloc((size_t) t->ndiffs + 1, sizeof(uint64_t));
	for (int i = 0; i < t->ndiffs; i++) {
		int s = t->diffs[i].kind == PGM_VDIFF_MISSING ? 0 : 1;
		uint64_t h = t->diffs[i].hash[s];

		if (n[s] == 0 || hashes[s][n[s] - 1] != h)
			hashes[s][n[s]++] = h;
	}
	for (int s = 0; s < 2; s++) {
		if (n[s] > 0) {
			cmp_t *r = verify_cmp_new(v, TK_ROWS_TEXT, c->table, NULL, NULL);
			r->need = 1;
			verify_queue(v,
				     verify_task_new(TK_ROWS_TEXT, s, c->table, r,
						     pgm_vsql_rows_text(t, hashes[s], n[s]), false),
				     true);
		}
		free(hashes[s]);
	}
}

static void
rows_texts(struct pgm_verify *v, cmp_t *c, const PGresult *res)
{
	pgm_vtable_t *t = &v->tables[c->table];

	for (int r = 0; r < pgm_pg_ntuples(res); r++) {
		const char *h = pgm_pg_value(res, r, 0), *text = pgm_pg_value(res, r, 1);

		for (int i = 0; i < t->ndiffs; i++) {
			if (strcmp(t->diffs[i].key, h) == 0) {
				free(t->diffs[i].key);
				t->diffs[i].key = pgm_strdup(text ? text : "");
			}
		}
	}
}

/* ---- results ---- */

/* keys, nkey columns per row: the sampled or split boundaries of c */
static void
take_bounds(cmp_t *c, const pgm_vtable_t *t, const PGresult *res, const int *idx, int n)
{
	c->bounds = pgm_calloc((size_t) n + 1, sizeof(pgm_vkey_t));
	for (int i = 0; i < n; i++) {
		int r = idx ? idx[i] : i;
		c->bounds[i] = pgm_calloc((size_t) t->nkey, sizeof(char *));
		for (int k = 0; k < t->nkey; k++)
			c->bounds[i][k] = pgm_strdup(pgm_pg_value(res, r, k) ? pgm_pg_value(res, r, k) : "");
	}
	c->nb = n;
}

void
verify_handle_result(struct pgm_verify *v, task_t *tk, const PGresult *res)
{
	cmp_t *c = tk->cmp;
	pgm_vtable_t *t = &v->tables[tk->table];
	int n = pgm_pg_ntuples(res), s = tk->side;

	switch (tk->kind) {
	case TK_COUNT:
		t->rows[s] = pgm_pg_int64(res, 0, 0, 0);
		v->chunks_done++;
		v->blocks_done += tk->blocks;
		if (--t->pending == 0)
			verify_table_finish(v, t);
		return;
	case TK_SUMS:
		/* the first pass adds up a side's block ranges; buckets come once */
		if (c->rows[s] == NULL) {
			c->rows[s] = pgm_calloc((size_t) c->nb + 1, sizeof(int64_t));
			c->sums[s] = pgm_calloc((size_t) c->nb + 1, sizeof(uint64_t));
		}
		for (int r = 0; r < n; r++) {
			int b = (int) pgm_pg_int64(res, r, 0, 0) - c->first;
			if (b < 0 || b > c->nb)
				continue;
			c->rows[s][b] += pgm_pg_int64(res, r, 1, 0);
			c->sums[s][b] += pgm_vsum_parse(pgm_pg_value(res, r, 2));
		}
		if (c->first_pass) {
			v->chunks_done++;
			v->blocks_done += tk->blocks;
		}
		break;
	case TK_SAMPLE: {
		int *idx = pgm_calloc((size_t) c->parts + 1, sizeof(int));
		take_bounds(c, t, res, idx, pgm_vplan_pick(n, c->parts, idx));
		free(idx);
		break;
	}
	case TK_SPLIT:
		take_bounds(c, t, res, NULL, n);
		break;
	case TK_FETCH:
	case TK_GROUPS:
		c->fetched[s] = pgm_calloc((size_t) n + 1, sizeof(pgm_vrow_t));
		for (int r = 0; r < n; r++) {
			pgm_vrow_t *row = &c->fetched[s][c->nfetched[s]++];
			const char *a = pgm_pg_value(res, r, 0), *b = pgm_pg_value(res, r, 1);
			if (tk->kind == TK_FETCH) {
				row->key = pgm_strdup(a ? a : "");
				row->hash = (uint64_t) strtoll(b ? b : "0", NULL, 10);
			} else {
				row->key = pgm_strdup(a ? a : "0");
				row->hash = (uint64_t) strtoll(a ? a : "0", NULL, 10);
				row->n = strtoll(b ? b : "1", NULL, 10);
			}
		}
		break;
	case TK_ROWS_TEXT:
		rows_texts(v, c, res);
		break;
	}
	verify_progress(v, false);
	if (++c->have < c->need)
		return;
	if (c->kind == TK_SUMS)
		sums_compared(v, c);
	else if (c->kind == TK_SPLIT)
		split_done(v, c);
	else if (c->kind == TK_FETCH)
		fetched(v, c, s);
	else if (c->kind == TK_GROUPS)
		groups_compared(v, c);
	verify_cmp_finish(v, c);
}
