/*
 * verify_plan.c — the decisions of the verification engine, without I/O:
 * how many chunks a table gets and where their boundaries fall, when a
 * mismatching range is split or fetched, and how fetched rows turn into
 * missing, extra and changed keys.
 */
#include "pipeline/verify/verify_plan.h"
#include "common/util.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CHUNKS 4096
#define MAX_RANGE_BLOCKS ((INT64_C(4) << 30) / 8192) /* 4 GB of heap */
#define SAMPLE_ROWS_PER_CHUNK 16

int
pgm_vplan_nchunks(double rows, int64_t chunk_rows)
{
	double n;

	if (chunk_rows <= 0 || !(rows > (double) chunk_rows))
		return 1;
	n = ceil(rows / (double) chunk_rows);
	return n > MAX_CHUNKS ? MAX_CHUNKS : (int) n;
}

double
pgm_vplan_sample_pct(double rows, int nchunks)
{
	double pct;

	if (!(rows > 0))
		return 100;
	pct = 100.0 * (double) nchunks * SAMPLE_ROWS_PER_CHUNK / rows;
	if (pct > 100)
		return 100;
	return pct < 0.0001 ? 0.0001 : pct;
}

int
pgm_vplan_pick(int n, int nparts, int *idx)
{
	int k = 0, last = 0;

	for (int i = 1; i < nparts; i++) {
		/* the first row of part i; the first part starts with the range */
		int at = (int) (((int64_t) i * n) / nparts);

		if (at <= last || at >= n)
			continue;
		idx[k++] = at;
		last = at;
	}
	return k;
}

/*
 * The first pass reads each side's heap whole, or in block ranges (TID
 * range scans) that several connections read at once: the checksum is a
 * sum, so the ranges add up to the table's whatever their number, and each
 * side cuts its own heap. Key ranges through the index cost 1.6 times what
 * a scan costs, and grouping a scan's rows into key-range chunks 1.55
 * times, so key ranges are only used once a table is known to differ. A
 * block range costs more than the same blocks read by a sequential scan:
 * it has no ring buffer (every block goes through shared_buffers' clock)
 * and checks each tuple's TID; measured on pgbench_accounts at scale 50,
 * one connection per side (bench/bench_verify.sh): one scan 0.65 s, eleven
 * 64 MB ranges 0.73 s. So a heap is cut when it alone is more than a
 * connection's share of its side (all the side's heaps over the
 * connections) -- smaller ones are spread whole over the connections,
 * largest first -- into ranges of half a share, at least min_blocks each;
 * and a heap of more than MAX_RANGE_BLOCKS (4 GB) is cut anyway, into
 * ranges of at most that: progress is counted in ranges done, and an
 * operator waiting inside the write freeze should see it move at least
 * every few seconds, not once at the end of a 500 GB table.
 */
int
pgm_vplan_block_chunks(int64_t blocks, int64_t side_blocks, int jobs, int64_t min_blocks)
{
	int64_t share, size, n = 1;

	if (blocks <= 0)
		return 1;
	if (jobs > 1 && side_blocks > 0) {
		share = side_blocks / jobs;
		if (blocks > share && blocks > min_blocks) {
			size = share / 2 > min_blocks ? share / 2 : min_blocks;
			if (size < 1)
				size = 1;
			n = (blocks + size - 1) / size;
		}
	}
	if (blocks > MAX_RANGE_BLOCKS && n < (blocks + MAX_RANGE_BLOCKS - 1) / MAX_RANGE_BLOCKS)
		n = (blocks + MAX_RANGE_BLOCKS - 1) / MAX_RANGE_BLOCKS;
	return n > MAX_CHUNKS ? MAX_CHUNKS : (int) n;
}

pgm_vbisect_t
pgm_vbisect_decide(const int64_t rows[2], const uint64_t sums[2], int leaf_rows)
{
	int64_t most = rows[0] > rows[1] ? rows[0] : rows[1];

	if (rows[0] == rows[1] && sums[0] == sums[1])
		return PGM_VB_EQUAL;
	if (most <= leaf_rows)
		return PGM_VB_FETCH;
	if (rows[0] == 0 || rows[1] == 0)
		return PGM_VB_ONE_SIDED;
	return PGM_VB_SPLIT;
}

/*
 * Exact: decimal digits accumulate mod 2^64 in unsigned arithmetic, and
 * negation mod 2^64 is the two's complement.
 */
uint64_t
pgm_vsum_parse(const char *s)
{
	uint64_t v = 0;
	bool neg = false;

	if (s == NULL)
		return 0;
	if (*s == '-' || *s == '+')
		neg = *s++ == '-';
	for (; isdigit((unsigned char) *s); s++)
		v = v * 10u + (uint64_t) (*s - '0');
	return neg ? (uint64_t) 0 - v : v;
}

/* an optional minus and digits only: compared by value */
static bool
is_integer(const char *s)
{
	if (*s == '-')
		s++;
	if (!isdigit((unsigned char) *s))
		return false;
	while (isdigit((unsigned char) *s))
		s++;
	return *s == '\0';
}

int
pgm_vkey_cmp(const char *a, const char *b)
{
	if (is_integer(a) && is_integer(b)) {
		bool na = a[0] == '-', nb = b[0] == '-';
		size_t la, lb;
		int c;

		if (na != nb)
			return na ? -1 : 1;
		a += na;
		b += nb;
		while (*a == '0' && a[1])
			a++;
		while (*b == '0' && b[1])
			b++;
		la = strlen(a);
		lb = strlen(b);
		c = la != lb ? (la < lb ? -1 : 1) : strcmp(a, b);
		return na ? -c : c;
	}
	return strcmp(a, b);
}

static int
row_cmp(const void *x, const void *y)
{
	return strcmp(((const pgm_vrow_t *) x)->key, ((const pgm_vrow_t *) y)->key);
}

/* bytewise: merging needs a total order both lists share, nothing more */
void
pgm_vrows_sort(pgm_vrow_t *rows, int n)
{
	if (n > 1)
		qsort(rows, (size_t) n, sizeof(*rows), row_cmp);
}

void
pgm_vtable_add_diff(pgm_vtable_t *t, const char *key, pgm_vdiff_kind_t kind, uint64_t hs, uint64_t ht)
{
	pgm_vdiff_t *d;

	t->count[kind]++;
	if (t->ndiffs >= PGM_V_KEEP_DIFFS)
		return;
	if (t->ndiffs == t->capdiffs) {
		t->capdiffs = t->capdiffs ? t->capdiffs * 2 : 16;
		t->diffs = pgm_realloc(t->diffs, (size_t) t->capdiffs * sizeof(*t->diffs));
	}
	d = &t->diffs[t->ndiffs++];
	d->key = pgm_strdup(key);
	d->kind = kind;
	d->hash[0] = hs;
	d->hash[1] = ht;
}

/*
 * Both lists sorted by key. Rows of a table without a key come grouped
 * (key = row text, n = occurrences): a surplus on one side is missing or
 * extra once per extra occurrence.
 */
void
pgm_vrows_merge(pgm_vtable_t *t, const pgm_vrow_t *src, int nsrc, const pgm_vrow_t *dst, int ndst)
{
	int i = 0, j = 0;

	while (i < nsrc || j < ndst) {
		int c = i >= nsrc ? 1 : j >= ndst ? -1 : strcmp(src[i].key, dst[j].key);

		if (c < 0) {
			for (int64_t k = 0; k < (src[i].n > 0 ? src[i].n : 1); k++)
				pgm_vtable_add_diff(t, src[i].key, PGM_VDIFF_MISSING, src[i].hash, 0);
			i++;
		} else if (c > 0) {
			for (int64_t k = 0; k < (dst[j].n > 0 ? dst[j].n : 1); k++)
				pgm_vtable_add_diff(t, dst[j].key, PGM_VDIFF_EXTRA, 0, dst[j].hash);
			j++;
		} else {
			int64_t ns = src[i].n > 0 ? src[i].n : 1, nd = dst[j].n > 0 ? dst[j].n : 1;

			if (src[i].hash != dst[j].hash)
				pgm_vtable_add_diff(t, src[i].key, PGM_VDIFF_CHANGED, src[i].hash, dst[j].hash);
			for (int64_t k = nd; k < ns; k++)
				pgm_vtable_add_diff(t, src[i].key, PGM_VDIFF_MISSING, src[i].hash, 0);
			for (int64_t k = ns; k < nd; k++)
				pgm_vtable_add_diff(t, dst[j].key, PGM_VDIFF_EXTRA, 0, dst[j].hash);
			i++;
			j++;
		}
	}
}

static int
diff_cmp(const void *x, const void *y)
{
	const pgm_vdiff_t *a = x, *b = y;
	int c = pgm_vkey_cmp(a->key, b->key);

	return c ? c : (int) a->kind - (int) b->kind;
}

void
pgm_vtable_reconcile(pgm_vtable_t *t)
{
	int out = 0;

	if (t->ndiffs == 0)
		return;
	qsort(t->diffs, (size_t) t->ndiffs, sizeof(*t->diffs), diff_cmp);
	/* keyed tables only: without a key, the same row text twice is two rows */
	for (int i = 0; i < t->ndiffs; i++) {
		pgm_vdiff_t *d = &t->diffs[i], *e = i + 1 < t->ndiffs ? &t->diffs[i + 1] : NULL;

		if (t->nkey > 0 && e && d->kind == PGM_VDIFF_MISSING && e->kind == PGM_VDIFF_EXTRA &&
		    strcmp(d->key, e->key) == 0) {
			t->count[PGM_VDIFF_MISSING]--;
			t->count[PGM_VDIFF_EXTRA]--;
			if (d->hash[0] == e->hash[1]) {
				free(d->key);
				free(e->key);
				i++;
				continue;
			}
			t->count[PGM_VDIFF_CHANGED]++;
			d->kind = PGM_VDIFF_CHANGED;
			d->hash[1] = e->hash[1];
			free(e->key);
			t->diffs[out++] = *d;
			i++;
			continue;
		}
		t->diffs[out++] = *d;
	}
	t->ndiffs = out;
}

void
pgm_vkey_free(pgm_vkey_t k, int nkey)
{
	if (k == NULL)
		return;
	for (int i = 0; i < nkey; i++)
		free(k[i]);
	free(k);
}

pgm_vkey_t
pgm_vkey_dup(const pgm_vkey_t k, int nkey)
{
	pgm_vkey_t d;

	if (k == NULL)
		return NULL;
	d = pgm_calloc((size_t) nkey, sizeof(char *));
	for (int i = 0; i < nkey; i++)
		d[i] = pgm_strdup(k[i]);
	return d;
}

void
pgm_vtable_free(pgm_vtable_t *t)
{
	if (t == NULL)
		return;
	free(t->schema);
	free(t->name);
	free(t->display);
	free(t->ident);
	for (int i = 0; i < t->ncols; i++) {
		free(t->cols[i].name);
		free(t->cols[i].type);
		free(t->cols[i].builtin);
	}
	free(t->cols);
	for (int i = 0; i < t->nkey; i++) {
		free(t->key[i]);
		free(t->key_types[i]);
	}
	free(t->key);
	free(t->key_types);
	free(t->hash_sql);
	for (int i = 0; i < t->ndiffs; i++)
		free(t->diffs[i].key);
	free(t->diffs);
	memset(t, 0, sizeof(*t));
}

bool
pgm_vfilter_match(const char *const *filter, const char *schema, const char *name)
{
	size_t ls;

	if (filter == NULL)
		return true;
	ls = strlen(schema);
	for (int i = 0; filter[i]; i++) {
		const char *f = filter[i];

		if (strcmp(f, name) == 0)
			return true;
		if (strncmp(f, schema, ls) == 0 && f[ls] == '.' && strcmp(f + ls + 1, name) == 0)
			return true;
	}
	return false;
}
