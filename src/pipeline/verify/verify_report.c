/*
 * verify_report.c — the verification report, built from what the engine
 * gathered: per table (rows on each side, checksums, the differing keys),
 * sequences, and the schema objects present on one side only. The shape
 * keeps the fields of the row-count report it replaced (table,
 * source_rows, target_rows, match, problem; sequence, source_value,
 * target_value, match, problem) and only adds to them.
 */
#include "common/json.h"
#include "common/util.h"
#include "pipeline/verify/verify_plan.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[] = {"missing", "extra", "changed"};

static cJSON *
rows_or_null(const pgm_vtable_t *t, int side)
{
	return t->present[side] ? cJSON_CreateNumber((double) t->rows[side]) : cJSON_CreateNull();
}

static void
add_checksum(cJSON *o, const char *key, const pgm_vtable_t *t, int side)
{
	char hex[17];

	if (!t->present[side])
		return;
	snprintf(hex, sizeof(hex), "%016" PRIx64, t->sum[side]);
	pgm_json_set_str(o, key, hex);
}

/* "2 rows differ: 1 missing on the target, 1 changed" */
static char *
diff_summary(const pgm_vtable_t *t, int64_t total)
{
	static const char *const what[] = {"missing on the target", "extra on the target", "changed"};
	pgm_buf_t b = {0};
	bool first = true;

	pgm_buf_appendf(&b, "%s%lld row%s differ%s: ", t->incomplete ? "at least " : "", (long long) total,
			total == 1 ? "" : "s", total == 1 ? "s" : "");
	for (int k = 0; k < 3; k++) {
		if (t->count[k] == 0)
			continue;
		pgm_buf_appendf(&b, "%s%lld %s", first ? "" : ", ", (long long) t->count[k], what[k]);
		first = false;
	}
	return b.s;
}

cJSON *
pgm_vreport_table(const pgm_vtable_t *t, int max_keys)
{
	cJSON *o = cJSON_CreateObject();
	int64_t total = t->count[0] + t->count[1] + t->count[2];
	bool both = t->present[0] && t->present[1];
	bool match = both && t->rows[0] == t->rows[1] && total == 0 && !t->whole_differs;

	pgm_json_set_str(o, "table", t->display);
	pgm_json_set(o, "source_rows", rows_or_null(t, PGM_V_SOURCE));
	pgm_json_set(o, "target_rows", rows_or_null(t, PGM_V_TARGET));
	pgm_json_set(o, "match", cJSON_CreateBool(match));
	if (!t->present[PGM_V_TARGET]) {
		pgm_json_set_str(o, "problem", "missing on the target");
	} else if (!t->present[PGM_V_SOURCE]) {
		pgm_json_set_str(o, "problem", "only on the target");
	} else if (total > 0) {
		char *s = diff_summary(t, total);
		pgm_json_set_str(o, "problem", s);
		free(s);
	} else if (!match) {
		pgm_json_set_str(o, "problem",
				 t->rows[0] != t->rows[1] ? "row counts differ (no key to locate the rows)"
							  : "contents differ (no key to locate the rows)");
	}
	if (t->nkey > 0) {
		cJSON *k = cJSON_AddArrayToObject(o, "key");
		for (int i = 0; i < t->nkey; i++)
			cJSON_AddItemToArray(k, cJSON_CreateString(t->key[i]));
	} else {
		pgm_json_set(o, "key", cJSON_CreateNull());
	}
	if (both) {
		cJSON *scans = cJSON_CreateArray();

		/* block ranges read by the first pass on each side; key-range chunks once found different */
		pgm_json_set_str(o, "method", "checksum");
		cJSON_AddItemToArray(scans, cJSON_CreateNumber(t->scan_chunks[0]));
		cJSON_AddItemToArray(scans, cJSON_CreateNumber(t->scan_chunks[1]));
		pgm_json_set(o, "scan_chunks", scans);
		pgm_json_set_num(o, "chunks", t->nchunks);
		pgm_json_set_num(o, "chunks_differ", t->chunks_differ);
		pgm_json_set_num(o, "columns_compared", t->ncols);
	} else {
		pgm_json_set_str(o, "method", "row count");
	}
	add_checksum(o, "source_checksum", t, PGM_V_SOURCE);
	add_checksum(o, "target_checksum", t, PGM_V_TARGET);
	if (total > 0) {
		cJSON *d = cJSON_AddObjectToObject(o, "differences");
		cJSON *keys;
		int listed = 0;

		pgm_json_set_num(d, "count", (double) total);
		pgm_json_set(d, "complete", cJSON_CreateBool(!t->incomplete));
		for (int k = 0; k < 3; k++)
			pgm_json_set_num(d, kind_names[k], (double) t->count[k]);
		pgm_json_set_str(d, "located_by", t->nkey > 0 ? "key" : "row");
		keys = cJSON_AddArrayToObject(d, "keys");
		for (int i = 0; i < t->ndiffs && listed < max_keys; i++, listed++) {
			cJSON *e = cJSON_CreateObject();
			pgm_json_set_str(e, t->nkey > 0 ? "key" : "row", t->diffs[i].key);
			pgm_json_set_str(e, "kind", kind_names[t->diffs[i].kind]);
			cJSON_AddItemToArray(keys, e);
		}
		pgm_json_set_num(d, "listed", listed);
	}
	pgm_json_set_num(o, "duration_ms", (double) (t->ended_ms - t->started_ms));
	return o;
}

/* a table named "schema.table" in the filter, wherever the schema ends */
static bool
filter_match_qualified(const char *const *filter, const char *qualified)
{
	if (filter == NULL)
		return true;
	if (qualified == NULL)
		return false;
	for (const char *dot = strchr(qualified, '.'); dot; dot = strchr(dot + 1, '.')) {
		char *schema = pgm_strdup(qualified);
		bool ok;

		schema[dot - qualified] = '\0';
		ok = pgm_vfilter_match(filter, schema, dot + 1);
		free(schema);
		if (ok)
			return true;
	}
	return false;
}

static int
obj_cmp(const void *x, const void *y)
{
	const pgm_vobj_t *a = x, *b = y;
	int c = strcmp(a->kind, b->kind);

	return c ? c : strcmp(a->object, b->object);
}

/* is a different definition of this kind a difference? (see pgm_vsql_schema) */
static bool
detail_matters(const char *kind)
{
	return strcmp(kind, "index") != 0 && strcmp(kind, "extension") != 0;
}

static void
schema_diff(cJSON *arr, const pgm_vobj_t *o, const char *problem, const char *src, const char *dst)
{
	cJSON *e = cJSON_CreateObject();

	pgm_json_set_str(e, "kind", o->kind);
	pgm_json_set_str(e, "object", o->object);
	if (o->table)
		pgm_json_set_str(e, "table", o->table);
	pgm_json_set_str(e, "problem", problem);
	pgm_json_set(e, "source", src ? cJSON_CreateString(src) : cJSON_CreateNull());
	pgm_json_set(e, "target", dst ? cJSON_CreateString(dst) : cJSON_CreateNull());
	cJSON_AddItemToArray(arr, e);
}

cJSON *
pgm_vreport_schema(pgm_vobj_t *objs[2], const int n[2], const char *const *filter)
{
	cJSON *r = cJSON_CreateObject();
	cJSON *diffs = cJSON_AddArrayToObject(r, "differences");
	int i = 0, j = 0, compared = 0;

	for (int s = 0; s < 2; s++)
		if (n[s] > 1)
			qsort(objs[s], (size_t) n[s], sizeof(pgm_vobj_t), obj_cmp);
	while (i < n[0] || j < n[1]) {
		const pgm_vobj_t *a = i < n[0] ? &objs[0][i] : NULL, *b = j < n[1] ? &objs[1][j] : NULL;
		int c = a == NULL ? 1 : b == NULL ? -1 : obj_cmp(a, b);
		const pgm_vobj_t *o = c <= 0 ? a : b;

		i += c <= 0;
		j += c >= 0;
		if (filter && !filter_match_qualified(filter, o->table))
			continue;
		compared++;
		if (c < 0)
			schema_diff(diffs, a, "missing on the target", a->detail, NULL);
		else if (c > 0)
			schema_diff(diffs, b, "only on the target", NULL, b->detail);
		else if (detail_matters(a->kind) && strcmp(a->detail ? a->detail : "", b->detail ? b->detail : "") != 0)
			schema_diff(diffs, a, "differs", a->detail, b->detail);
	}
	pgm_json_set_num(r, "objects_compared", compared);
	pgm_json_set(r, "ok", cJSON_CreateBool(cJSON_GetArraySize(diffs) == 0));
	return r;
}

static int
seq_cmp(const void *x, const void *y)
{
	return strcmp(((const pgm_vseq_t *) x)->name, ((const pgm_vseq_t *) y)->name);
}

static cJSON *
seq_value(const char *v)
{
	return v ? cJSON_CreateNumber(strtod(v, NULL)) : cJSON_CreateNull();
}

/*
 * The target must never be behind: at or above the source, at or below it
 * for a descending sequence. An unused source sequence (null) is satisfied
 * by anything.
 */
cJSON *
pgm_vreport_sequences(pgm_vseq_t *seqs[2], const int n[2], const char *const *filter, int *mismatches)
{
	cJSON *arr = cJSON_CreateArray();

	for (int s = 0; s < 2; s++)
		if (n[s] > 1)
			qsort(seqs[s], (size_t) n[s], sizeof(pgm_vseq_t), seq_cmp);
	for (int i = 0; i < n[0]; i++) {
		const pgm_vseq_t *a = &seqs[0][i], *b;
		cJSON *q;
		bool ok;

		if (filter && !filter_match_qualified(filter, a->table))
			continue;
		b = bsearch(a, seqs[1], (size_t) n[1], sizeof(pgm_vseq_t), seq_cmp);
		q = cJSON_CreateObject();
		pgm_json_set_str(q, "sequence", a->name);
		pgm_json_set(q, "source_value", seq_value(a->value));
		pgm_json_set(q, "target_value", b ? seq_value(b->value) : cJSON_CreateNull());
		ok = b && (a->value == NULL || (b->value && (a->descending ? pgm_vkey_cmp(b->value, a->value) <= 0
									   : pgm_vkey_cmp(b->value, a->value) >= 0)));
		pgm_json_set(q, "match", cJSON_CreateBool(ok));
		if (!ok) {
			pgm_json_set_str(q, "problem", b ? "target is behind the source" : "missing on the target");
			(*mismatches)++;
		}
		cJSON_AddItemToArray(arr, q);
	}
	return arr;
}
