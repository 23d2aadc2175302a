/*
 * verify_catalog.c — from the two catalogs to the work: which tables are
 * compared and how (key, compared columns, row hash), and the first pass
 * over each, largest tables first so that the longest scans start at once.
 */
#include "common/util.h"
#include "pipeline/verify/verify_engine.h"

#include <stdlib.h>
#include <string.h>

static char *
dup_or_null(const char *s)
{
	return s ? pgm_strdup(s) : NULL;
}

/* one catalog query's rows, kept per side until both sides are in */
void
verify_catalog_result(struct pgm_verify *v, worker_t *w, const PGresult *res)
{
	side_t *sd = &v->sides[w->side];
	int n = pgm_pg_ntuples(res);

	switch (sd->catalog_step) {
	case 0:
		sd->raw = pgm_calloc((size_t) n + 1, sizeof(rawtab_t));
		for (int r = 0; r < n; r++) {
			rawtab_t *t = &sd->raw[sd->nraw++];
			t->schema = pgm_strdup(pgm_pg_value(res, r, 0));
			t->name = pgm_strdup(pgm_pg_value(res, r, 1));
			t->blocks = pgm_pg_int64(res, r, 2, 0);
			t->cols = cJSON_Parse(pgm_pg_value(res, r, 3) ? pgm_pg_value(res, r, 3) : "[]");
			t->key = pgm_pg_value(res, r, 4) ? cJSON_Parse(pgm_pg_value(res, r, 4)) : NULL;
		}
		break;
	case 1:
		sd->objs = pgm_calloc((size_t) n + 1, sizeof(pgm_vobj_t));
		for (int r = 0; r < n; r++) {
			pgm_vobj_t *o = &sd->objs[sd->nobjs++];
			o->kind = pgm_strdup(pgm_pg_value(res, r, 0));
			o->table = dup_or_null(pgm_pg_value(res, r, 1));
			o->object = pgm_strdup(pgm_pg_value(res, r, 2));
			o->detail = dup_or_null(pgm_pg_value(res, r, 3));
		}
		break;
	case 2:
		sd->seqs = pgm_calloc((size_t) n + 1, sizeof(pgm_vseq_t));
		for (int r = 0; r < n; r++) {
			pgm_vseq_t *q = &sd->seqs[sd->nseqs++];
			q->name = pgm_strdup(pgm_pg_value(res, r, 0));
			q->table = dup_or_null(pgm_pg_value(res, r, 1));
			q->value = dup_or_null(pgm_pg_value(res, r, 2));
			q->descending = pgm_pg_value(res, r, 3) && pgm_pg_value(res, r, 3)[0] == 't';
		}
		break;
	default:
		break;
	}
	sd->catalog_step++;
}

static int
raw_cmp(const void *x, const void *y)
{
	const rawtab_t *a = x, *b = y;
	int c = strcmp(a->schema, b->schema);

	return c ? c : strcmp(a->name, b->name);
}

static const cJSON *
find_col(const cJSON *cols, const char *name)
{
	const cJSON *c;

	cJSON_ArrayForEach (c, cols)
		if (strcmp(cJSON_GetStringValue(cJSON_GetArrayItem(c, 0)), name) == 0)
			return c;
	return NULL;
}

/* the columns on both sides, in source order; the key if all of it is among them */
static void
table_describe(pgm_vtable_t *t, const rawtab_t *s, const rawtab_t *d, bool float_bits)
{
	const cJSON *c;
	int n = cJSON_GetArraySize(s->cols);

	t->cols = pgm_calloc((size_t) n + 1, sizeof(pgm_vcol_t));
	cJSON_ArrayForEach (c, s->cols) {
		const char *name = cJSON_GetStringValue(cJSON_GetArrayItem(c, 0));
		const char *type = cJSON_GetStringValue(cJSON_GetArrayItem(c, 1));
		const char *builtin = cJSON_GetStringValue(cJSON_GetArrayItem(c, 2));
		const cJSON *o = find_col(d->cols, name);
		pgm_vcol_t *col;

		if (o == NULL)
			continue; /* the schema comparison reports it */
		col = &t->cols[t->ncols++];
		col->name = pgm_strdup(name);
		col->type = pgm_strdup(type);
		col->builtin = dup_or_null(builtin);
		col->same_type = strcmp(type, cJSON_GetStringValue(cJSON_GetArrayItem(o, 1))) == 0;
		col->not_null = cJSON_IsTrue(cJSON_GetArrayItem(c, 3)) && cJSON_IsTrue(cJSON_GetArrayItem(o, 3));
	}
	n = cJSON_GetArraySize(s->key);
	if (n > 0) {
		t->key = pgm_calloc((size_t) n, sizeof(char *));
		t->key_types = pgm_calloc((size_t) n, sizeof(char *));
		cJSON_ArrayForEach (c, s->key) {
			const char *name = cJSON_GetStringValue(cJSON_GetArrayItem(c, 0));

			if (find_col(d->cols, name) == NULL)
				break;
			t->key[t->nkey] = pgm_strdup(name);
			t->key_types[t->nkey++] = pgm_strdup(cJSON_GetStringValue(cJSON_GetArrayItem(c, 1)));
		}
		if (t->nkey < n) {
			/* part of the key is missing on the target: compare whole */
			for (int i = 0; i < t->nkey; i++) {
				free(t->key[i]);
				free(t->key_types[i]);
			}
			t->nkey = 0;
		}
	}
	t->hash_sql = pgm_vsql_row_hash(t, float_bits);
}

static int
size_order(const void *x, const void *y)
{
	const pgm_vtable_t *a = *(pgm_vtable_t *const *) x, *b = *(pgm_vtable_t *const *) y;
	int64_t sa = a->blocks[0] > a->blocks[1] ? a->blocks[0] : a->blocks[1];
	int64_t sb = b->blocks[0] > b->blocks[1] ? b->blocks[0] : b->blocks[1];

	return sa < sb ? 1 : sa > sb ? -1 : strcmp(a->display, b->display);
}

/*
 * The first pass of a table: count and checksum of each side's heap, in
 * block ranges when it is large for its side (pgm_vplan_block_chunks) and
 * the side has TID range scans (14+).
 */
static void
queue_first_pass(struct pgm_verify *v, int ti, const int64_t side_blocks[2])
{
	pgm_vtable_t *t = &v->tables[ti];
	cmp_t *c;

	if (!(t->present[0] && t->present[1])) {
		int side = t->present[0] ? PGM_V_SOURCE : PGM_V_TARGET;
		task_t *tk = verify_task_new(TK_COUNT, side, ti, NULL, pgm_vsql_count(t), false);

		t->pending++;
		v->chunks_total++;
		tk->blocks = t->blocks[side];
		v->blocks_total += tk->blocks;
		verify_queue(v, tk, false);
		return;
	}
	c = verify_cmp_new(v, TK_SUMS, ti, NULL, NULL);
	c->first_pass = true;
	for (int side = 0; side < 2; side++) {
		/* large objects: blocks are pg_largeobject's (their bytes), ranges would be the OIDs' */
		int n = v->sides[side].server_version < 140000 || t->large_objects
				? 1
				: pgm_vplan_block_chunks(t->blocks[side], side_blocks[side], v->opts.jobs,
							 v->opts.chunk_bytes / 8192);
		int64_t width = (t->blocks[side] + n - 1) / n;

		t->scan_chunks[side] = n;
		c->need += n;
		v->chunks_total += n;
		for (int i = 0; i < n; i++) {
			int64_t from = n == 1 ? -1 : i * width, to = i == n - 1 ? -1 : (i + 1) * width;
			task_t *tk = verify_task_new(TK_SUMS, side, ti, c, pgm_vsql_sums_blocks(t, from, to), false);

			tk->blocks = i == n - 1 ? t->blocks[side] - i * width : width;
			v->blocks_total += tk->blocks;
			verify_queue(v, tk, false);
		}
	}
}

void
verify_plan_tables(struct pgm_verify *v)
{
	side_t *s = &v->sides[0], *d = &v->sides[1];
	bool float_bits = s->server_version < 120000 || d->server_version < 120000;
	pgm_vtable_t **order;
	int64_t side_blocks[2] = {0, 0};
	int i = 0, j = 0;

	qsort(s->raw, (size_t) s->nraw, sizeof(rawtab_t), raw_cmp);
	qsort(d->raw, (size_t) d->nraw, sizeof(rawtab_t), raw_cmp);
	v->tables = pgm_calloc((size_t) (s->nraw + d->nraw) + 1, sizeof(pgm_vtable_t));
	while (i < s->nraw || j < d->nraw) {
		int c = i >= s->nraw ? 1 : j >= d->nraw ? -1 : raw_cmp(&s->raw[i], &d->raw[j]);
		const rawtab_t *a = c <= 0 ? &s->raw[i] : NULL, *b = c >= 0 ? &d->raw[j] : NULL;
		const rawtab_t *any = a ? a : b;
		char *qs, *qn;
		pgm_vtable_t *t;

		i += c <= 0;
		j += c >= 0;
		if (!pgm_vfilter_match((const char *const *) v->filter, any->schema, any->name))
			continue;
		t = &v->tables[v->ntables++];
		t->schema = pgm_strdup(any->schema);
		t->name = pgm_strdup(any->name);
		t->display = pgm_asprintf("%s.%s", any->schema, any->name);
		t->blocks[0] = a ? a->blocks : 0;
		t->blocks[1] = b ? b->blocks : 0;
		if (strcmp(any->schema, "pg_catalog") == 0 && strcmp(any->name, "pg_largeobject") == 0) {
			/*
			 * The large objects, listed by a side that has any: a side
			 * without is a side with none, so its OIDs are listed as
			 * missing (or extra) like any other rows.
			 */
			t->large_objects = true;
			t->ident = pgm_strdup("pg_catalog.pg_largeobject_metadata");
			t->present[0] = t->present[1] = true;
			table_describe(t, any, any, float_bits);
			continue;
		}
		qs = pgm_quote_ident(any->schema);
		qn = pgm_quote_ident(any->name);
		t->ident = pgm_asprintf("%s.%s", qs, qn);
		free(qs);
		free(qn);
		t->present[0] = a != NULL;
		t->present[1] = b != NULL;
		if (a && b)
			table_describe(t, a, b, float_bits);
	}
	/* largest first: the longest scans start at once */
	v->phase = "data";
	order = pgm_calloc((size_t) v->ntables + 1, sizeof(*order));
	for (int k = 0; k < v->ntables; k++) {
		order[k] = &v->tables[k];
		side_blocks[0] += v->tables[k].blocks[0];
		side_blocks[1] += v->tables[k].blocks[1];
	}
	qsort(order, (size_t) v->ntables, sizeof(*order), size_order);
	for (int k = 0; k < v->ntables; k++)
		queue_first_pass(v, (int) (order[k] - v->tables), side_blocks);
	free(order);
}

void
verify_catalog_free(struct pgm_verify *v)
{
	for (int s = 0; s < 2; s++) {
		side_t *sd = &v->sides[s];

		for (int i = 0; i < sd->nraw; i++) {
			free(sd->raw[i].schema);
			free(sd->raw[i].name);
			cJSON_Delete(sd->raw[i].cols);
			cJSON_Delete(sd->raw[i].key);
		}
		free(sd->raw);
		for (int i = 0; i < sd->nobjs; i++) {
			free(sd->objs[i].kind);
			free(sd->objs[i].table);
			free(sd->objs[i].object);
			free(sd->objs[i].detail);
		}
		free(sd->objs);
		for (int i = 0; i < sd->nseqs; i++) {
			free(sd->seqs[i].name);
			free(sd->seqs[i].table);
			free(sd->seqs[i].value);
		}
		free(sd->seqs);
	}
	for (int k = 0; k < v->ntables; k++)
		pgm_vtable_free(&v->tables[k]);
	free(v->tables);
}
