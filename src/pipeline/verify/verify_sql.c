/*
 * verify_sql.c — every statement the verification engine sends, built from
 * the table model (verify_plan.h) without a connection.
 *
 * The row hash. Each compared column gets a 64-bit hash seeded with its
 * position, NULL becomes the position itself, and the row's hash is the
 * XOR of its columns; a range's checksum is sum() of the row hashes (an
 * order-independent numeric, reduced mod 2^64 by the engine; a sum, not an
 * XOR, for two equal rows of a table without a key would cancel out). A
 * changed row goes unseen with probability 2^-64 per range. The hash
 * functions are the *extended (64-bit, seeded) hash support functions
 * PostgreSQL ships since 11: hash partitioning and hash indexes persist
 * their values, so pg_upgrade requires them to stay the same across major
 * versions, and their output does not depend on any setting. Choices,
 * measured on pgbench_accounts (5 M rows, bench/bench_verify.sh):
 *   - integers, oid, uuid, bool: the type's own hash (hashint4extended ...):
 *     for these equality is identity, and it is as cheap as reading the row;
 *   - timestamp, time, timetz: the type's own hash, for the same reason (a
 *     microsecond count, and a zone), 8 times cheaper than hashing their
 *     text; timestamptz: the same, through ::timestamp in the session's
 *     TimeZone, pinned to UTC, where the conversion changes nothing (twice
 *     as cheap as its text). date stays text: its way to a timestamp fails
 *     on dates past 294276 AD;
 *   - text, varchar: hashtextextended(c COLLATE "C"): the bytes, whatever
 *     the column's collation (a nondeterministic one would hash equal
 *     strings alike); char(n): hashbpcharextended (trailing blanks are
 *     insignificant in char(n), as in its equality);
 *   - everything else (numeric, floats, date, interval, json, jsonb, bytea,
 *     arrays, enums, domains, ...): hashtextextended of the value's text,
 *     with every setting that shapes that text pinned by pgm_vsql_session.
 *     Type hashes would not do: numeric 1.0 and 1.00 hash alike, as do
 *     float 0 and -0, interval '1 day' and '24 hours', jsonb numbers; json
 *     has no hash at all, and an enum's hash is its OID;
 *   - a column whose type differs between the sides goes by its text.
 * On pgbench_accounts, one backend: count(*) 210 ms; these typed column
 * hashes 573 ms interpreted, 502 ms compiled (JIT, see pgm_vsql_session);
 * hashtextextended(row(t.*)::text) 1540-1730 ms; hash_record_extended(t)
 * 1300 ms (and type-based); md5 of the row text about 10 s. 150 ms of the
 * 502 is hashbpcharextended finding where the 84 blanks of the filler
 * column end: every way SQL has to read a char(n) trims it so, but its
 * output function (textin(bpcharout(c)): dearer still), and reading the
 * column alone is 75 ms more. Packing int columns into one
 * hashint8extended, chaining the hashes through the seed instead of the
 * XOR, or bit_xor() instead of sum() all cost the same, give or take 5%.
 * Floats print differently before PostgreSQL 12 (extra_float_digits = 3
 * meant 17 digits, not the shortest exact form): when a side is older,
 * float columns hash their binary form (float8send) instead.
 */
#include "common/util.h"
#include "pipeline/verify/verify_plan.h"

#include <stdlib.h>
#include <string.h>

/*
 * Everything that changes the text of a value: TimeZone (timestamptz),
 * DateStyle (dates, timestamps), IntervalStyle, extra_float_digits (floats
 * and the geometric types), bytea_output, lc_monetary (money), search_path
 * (regclass and friends print qualified names; pg_get_*def too), and
 * standard_conforming_strings for the literals pgmover writes. The rest
 * keeps one verify session from being cut short or slowed down: no
 * statement or idle timeout (Heroku roles often set them), and JIT only
 * for a scan long enough to repay it (a plan cost of 200,000: about four
 * million pgbench_accounts rows), compiled with optimization but without
 * inlining -- a whole pgbench_accounts, one backend: 573 ms interpreted,
 * 502 ms so compiled, 616 ms with inlining too (its compile time); under
 * PostgreSQL's defaults a 64 MB block range would compile for longer than
 * it runs. No parallel workers: the connections are the parallelism, as
 * many as asked for and no more (a parallel plan would also cost each
 * worker under the JIT threshold).
 */
const char *const pgm_vsql_session =
	"SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres';"
	" SET extra_float_digits = 3; SET bytea_output = 'hex'; SET lc_monetary = 'C';"
	" SET search_path = pg_catalog; SET standard_conforming_strings = on;"
	" SET statement_timeout = 0; SET idle_in_transaction_session_timeout = 0;"
	" SET jit_above_cost = 200000; SET jit_optimize_above_cost = 200000; SET jit_inline_above_cost = -1;"
	" SET max_parallel_workers_per_gather = 0;"
	/* a policy hiding rows from pgmover's role is an error, not a comparison of what both sides show it */
	" SET row_security = off;";

/*
 * ordinary tables and leaf partitions of user schemas; extensions' own and
 * pgmover's change capture on a source (the triggers method) left out
 */
#define USER_RELS                                                                             \
	" n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'" \
	" AND n.nspname !~ '^pgmover_capture_'"                                               \
	" AND n.nspname !~ '^pg_temp_' AND NOT EXISTS (SELECT 1 FROM pg_depend d"             \
	"   WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')"

/*
 * One row per table: its size in blocks, its columns as JSON [name, type,
 * builtin typname, NOT NULL], and its key: the primary key, else the
 * narrowest unique index without predicate or expressions over NOT NULL
 * columns.
 */
const char *const pgm_vsql_tables =
	"SELECT n.nspname, c.relname,"
	"  pg_relation_size(c.oid) / current_setting('block_size')::int8,"
	"  (SELECT json_agg(json_build_array(a.attname, format_type(a.atttypid, a.atttypmod),"
	"           CASE WHEN ty.typtype = 'b' AND ty.typnamespace = 'pg_catalog'::regnamespace"
	"                THEN ty.typname::text END, a.attnotnull) ORDER BY a.attnum)"
	"     FROM pg_attribute a JOIN pg_type ty ON ty.oid = a.atttypid"
	"    WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),"
	"  (SELECT json_agg(json_build_array(a.attname, format_type(a.atttypid, a.atttypmod)) ORDER BY g.i)"
	"     FROM (SELECT i.indkey, i.indnkeyatts FROM pg_index i"
	"            WHERE i.indrelid = c.oid AND i.indisunique AND i.indisvalid"
	"              AND i.indpred IS NULL AND i.indexprs IS NULL"
	"              AND NOT EXISTS (SELECT 1 FROM pg_attribute x WHERE x.attrelid = c.oid"
	"                    AND x.attnum = ANY ((i.indkey::int2[])[0:i.indnkeyatts - 1]) AND NOT x.attnotnull)"
	"            ORDER BY i.indisprimary DESC, i.indnkeyatts, i.indexrelid::regclass::text LIMIT 1) k,"
	"          generate_series(0, k.indnkeyatts - 1) AS g(i),"
	"          pg_attribute a WHERE a.attrelid = c.oid AND a.attnum = k.indkey[g.i])"
	"  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
	" WHERE c.relkind = 'r' AND" USER_RELS
	/* large objects, when there are any: compared as a table keyed by OID (see pgm_vsql_row_hash) */
	" UNION ALL SELECT 'pg_catalog', 'pg_largeobject',"
	"  pg_relation_size('pg_catalog.pg_largeobject') / current_setting('block_size')::int8,"
	"  '[[\"oid\", \"oid\", \"oid\", true]]'::json, '[[\"oid\", \"oid\"]]'::json"
	" WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_largeobject_metadata)"
	" ORDER BY 1, 2";

/*
 * The schema inventory: kind, owning table, identity, definition. An
 * index is known by its definition (its name is only shown); an
 * extension by its name (its version is only shown); a materialized view
 * by whether it is populated too (an unpopulated one fails every query).
 * System objects and extension members are left out; OIDs never appear.
 */
const char *const pgm_vsql_schema =
	"WITH rel AS (SELECT c.oid, c.relkind, c.relispopulated, n.nspname || '.' || c.relname AS q"
	"   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE" USER_RELS ")"
	" SELECT 'table', q, q, CASE relkind WHEN 'p' THEN 'partitioned table' ELSE 'table' END"
	"   FROM rel WHERE relkind IN ('r', 'p')"
	" UNION ALL SELECT 'view', NULL, q, CASE WHEN relkind = 'v' THEN 'view' WHEN relispopulated"
	"     THEN 'materialized view' ELSE 'materialized view, not populated' END"
	"   FROM rel WHERE relkind IN ('v', 'm')"
	" UNION ALL SELECT 'sequence', NULL, q, format_type(s.seqtypid, NULL) || ' increment ' || s.seqincrement"
	"     || ' minvalue ' || s.seqmin || ' maxvalue ' || s.seqmax || CASE WHEN s.seqcycle THEN ' cycle' ELSE '' END"
	"   FROM rel JOIN pg_sequence s ON s.seqrelid = rel.oid"
	" UNION ALL SELECT 'column', r.q, r.q || '.' || a.attname, format_type(a.atttypid, a.atttypmod)"
	"     || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END"
	"     || CASE WHEN a.attidentity <> '' THEN ' identity' ELSE '' END"
	"     || coalesce(' default ' || pg_get_expr(ad.adbin, ad.adrelid), '')"
	"   FROM rel r JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped"
	"   LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum"
	"  WHERE r.relkind IN ('r', 'p')"
	" UNION ALL SELECT 'index', r.q, regexp_replace(pg_get_indexdef(i.indexrelid),"
	"     '^(CREATE (UNIQUE )?INDEX )(\"([^\"]|\"\")*\"|\\S+) (ON )', '\\1\\5'), ic.relname"
	"   FROM rel r JOIN pg_index i ON i.indrelid = r.oid JOIN pg_class ic ON ic.oid = i.indexrelid"
	" UNION ALL SELECT 'constraint', r.q, r.q || '.' || co.conname, pg_get_constraintdef(co.oid)"
	"   FROM rel r JOIN pg_constraint co ON co.conrelid = r.oid"
	" UNION ALL SELECT 'trigger', r.q, r.q || '.' || tg.tgname, pg_get_triggerdef(tg.oid)"
	"   FROM rel r JOIN pg_trigger tg ON tg.tgrelid = r.oid AND NOT tg.tgisinternal"
	"    AND tg.tgname !~ '^pgmover_capture_'"
	" UNION ALL SELECT 'extension', NULL, e.extname, e.extversion FROM pg_extension e"
	" ORDER BY 1, 3";

/* sequences: name, owning table (column default or identity), last value, descending */
const char *const pgm_vsql_sequences =
	"SELECT n.nspname || '.' || c.relname,"
	"  (SELECT tn.nspname || '.' || tc.relname FROM pg_depend dp"
	"     JOIN pg_class tc ON tc.oid = dp.refobjid JOIN pg_namespace tn ON tn.oid = tc.relnamespace"
	"    WHERE dp.classid = 'pg_class'::regclass AND dp.objid = c.oid"
	"      AND dp.refclassid = 'pg_class'::regclass AND dp.deptype IN ('a', 'i') LIMIT 1),"
	"  s.last_value, s.increment_by < 0"
	"  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
	"  JOIN pg_sequences s ON s.schemaname = n.nspname AND s.sequencename = c.relname"
	" WHERE c.relkind = 'S' AND" USER_RELS " ORDER BY 1";

/*
 * The hash of column i (seed i + 1) of t, NULL as the seed itself. A column
 * NOT NULL on both sides goes without the coalesce(): 4% of a scan of
 * pgbench_accounts. The constraint is read in the snapshot the rows are
 * read in, and a row it lets through was checked against it.
 */
static void
column_hash(pgm_buf_t *b, const pgm_vcol_t *col, int i, bool float_bits)
{
	char *id = pgm_quote_ident(col->name);
	const char *bt = col->same_type ? col->builtin : NULL;
	int seed = i + 1;

	if (!col->not_null)
		pgm_buf_append(b, "coalesce(");
	if (bt == NULL)
		pgm_buf_appendf(b, "hashtextextended(t.%s::text COLLATE \"C\", %d)", id, seed);
	else if (strcmp(bt, "int2") == 0 || strcmp(bt, "int4") == 0 || strcmp(bt, "int8") == 0)
		pgm_buf_appendf(b, "hash%sextended(t.%s, %d)", bt, id, seed);
	else if (strcmp(bt, "oid") == 0)
		pgm_buf_appendf(b, "hashoidextended(t.%s, %d)", id, seed);
	else if (strcmp(bt, "bool") == 0)
		pgm_buf_appendf(b, "hashint4extended(t.%s::int4, %d)", id, seed);
	else if (strcmp(bt, "uuid") == 0)
		pgm_buf_appendf(b, "uuid_hash_extended(t.%s, %d)", id, seed);
	else if (strcmp(bt, "text") == 0)
		pgm_buf_appendf(b, "hashtextextended(t.%s COLLATE \"C\", %d)", id, seed);
	else if (strcmp(bt, "varchar") == 0)
		pgm_buf_appendf(b, "hashtextextended(t.%s::text COLLATE \"C\", %d)", id, seed);
	else if (strcmp(bt, "bpchar") == 0)
		pgm_buf_appendf(b, "hashbpcharextended(t.%s COLLATE \"C\", %d)", id, seed);
	else if (strcmp(bt, "timestamp") == 0)
		pgm_buf_appendf(b, "timestamp_hash_extended(t.%s, %d)", id, seed);
	else if (strcmp(bt, "timestamptz") == 0)
		pgm_buf_appendf(b, "timestamp_hash_extended(t.%s::timestamp, %d)", id, seed);
	else if (strcmp(bt, "time") == 0)
		pgm_buf_appendf(b, "time_hash_extended(t.%s, %d)", id, seed);
	else if (strcmp(bt, "timetz") == 0)
		pgm_buf_appendf(b, "timetz_hash_extended(t.%s, %d)", id, seed);
	else if (float_bits && (strcmp(bt, "float4") == 0 || strcmp(bt, "float8") == 0))
		pgm_buf_appendf(b, "hashtextextended(%ssend(t.%s)::text, %d)", bt, id, seed);
	else
		pgm_buf_appendf(b, "hashtextextended(t.%s::text COLLATE \"C\", %d)", id, seed);
	if (!col->not_null)
		pgm_buf_appendf(b, ", %d)", seed);
	free(id);
}

char *
pgm_vsql_row_hash(const pgm_vtable_t *t, bool float_bits)
{
	pgm_buf_t b = {0};

	if (t->ncols == 0)
		return pgm_strdup("0::int8");
	for (int i = 0; i < t->ncols; i++) {
		if (i > 0)
			pgm_buf_append(&b, " # ");
		column_hash(&b, &t->cols[i], i, float_bits);
	}
	/*
	 * A large object: its OID (the key, kept by pg_dump and pg_restore)
	 * and its content, read whole by lo_get() (the owner's privilege, no
	 * superuser's: pg_largeobject itself is closed to other roles) and
	 * hashed by md5(), which reads bytes as they are, whatever
	 * bytea_output. Its owner and ACL are not compared: a restore with
	 * --no-owner changes them.
	 */
	if (t->large_objects)
		pgm_buf_appendf(&b, " # hashtextextended(md5(lo_get(t.oid)), %d)", t->ncols + 1);
	return b.s;
}

/* "t.a" or "(t.a, t.b)" */
static void
key_expr(pgm_buf_t *b, const pgm_vtable_t *t)
{
	if (t->nkey > 1)
		pgm_buf_append(b, "(");
	for (int i = 0; i < t->nkey; i++) {
		char *id = pgm_quote_ident(t->key[i]);
		pgm_buf_appendf(b, "%st.%s", i ? ", " : "", id);
		free(id);
	}
	if (t->nkey > 1)
		pgm_buf_append(b, ")");
}

/* "'1'::integer" or "('1'::integer, 'x'::text)" */
static void
key_literal(pgm_buf_t *b, const pgm_vtable_t *t, const pgm_vkey_t k)
{
	if (t->nkey > 1)
		pgm_buf_append(b, "(");
	for (int i = 0; i < t->nkey; i++) {
		char *lit = pgm_quote_literal(k[i]);
		pgm_buf_appendf(b, "%s%s::%s", i ? ", " : "", lit, t->key_types[i]);
		free(lit);
	}
	if (t->nkey > 1)
		pgm_buf_append(b, ")");
}

/* the key's text as one value: "t.a::text" or "row(t.a, t.b)::text" */
static void
key_text(pgm_buf_t *b, const pgm_vtable_t *t)
{
	if (t->nkey > 1)
		pgm_buf_append(b, "row");
	key_expr(b, t);
	pgm_buf_append(b, "::text");
}

char *
pgm_vsql_range(const pgm_vtable_t *t, const pgm_vkey_t lo, const pgm_vkey_t hi)
{
	pgm_buf_t b = {0};

	if (lo == NULL && hi == NULL)
		return pgm_strdup("true");
	if (lo) {
		key_expr(&b, t);
		pgm_buf_append(&b, " >= ");
		key_literal(&b, t, lo);
	}
	if (hi) {
		if (lo)
			pgm_buf_append(&b, " AND ");
		key_expr(&b, t);
		pgm_buf_append(&b, " < ");
		key_literal(&b, t, hi);
	}
	return b.s;
}

/* buckets a..z (relative); boundary k separates bucket k and k + 1 */
static void
bucket_case(pgm_buf_t *b, const pgm_vtable_t *t, const pgm_vkey_t *bounds, int a, int z, int first)
{
	int mid;

	if (a == z) {
		pgm_buf_appendf(b, "%d", first + a);
		return;
	}
	mid = (a + z + 1) / 2;
	pgm_buf_append(b, "CASE WHEN ");
	key_expr(b, t);
	pgm_buf_append(b, " < ");
	key_literal(b, t, bounds[mid - 1]);
	pgm_buf_append(b, " THEN ");
	bucket_case(b, t, bounds, a, mid - 1, first);
	pgm_buf_append(b, " ELSE ");
	bucket_case(b, t, bounds, mid, z, first);
	pgm_buf_append(b, " END");
}

/*
 * A one-column key of a type without collation, whose default btree order
 * is its < (integers, oid, uuid, numeric, date, timestamps): width_bucket()
 * can place it.
 */
static bool
bucket_by_array(const pgm_vtable_t *t)
{
	static const char *const types[] = {"smallint", "integer", "bigint", "oid", "uuid", "date", NULL};
	const char *ty;

	if (t->nkey != 1)
		return false;
	ty = t->key_types[0];
	for (int i = 0; types[i]; i++)
		if (strcmp(ty, types[i]) == 0)
			return true;
	return strncmp(ty, "numeric", 7) == 0 || strncmp(ty, "timestamp", 9) == 0;
}

/*
 * The bucket of a row: first + the boundaries at or below its key. For a
 * key width_bucket() can place, that is width_bucket(key, boundaries): one
 * binary search in C per row, where the CASE tree below evaluates
 * log2(buckets) comparisons as expressions: the bucket pass over
 * pgbench_accounts (500 buckets, one backend) 885 ms against 1250, the
 * most of what a difference in a large table takes to locate. Other keys
 * (text, which compares under its collation; several columns) get the
 * CASE tree.
 */
char *
pgm_vsql_bucket(const pgm_vtable_t *t, const pgm_vkey_t *bounds, int nb, int first)
{
	pgm_buf_t b = {0};

	if (nb > 0 && bucket_by_array(t)) {
		pgm_buf_append(&b, "width_bucket(");
		key_expr(&b, t);
		pgm_buf_append(&b, ", ARRAY[");
		for (int i = 0; i < nb; i++) {
			if (i > 0)
				pgm_buf_append(&b, ", ");
			key_literal(&b, t, bounds[i]);
		}
		pgm_buf_appendf(&b, "]) + %d", first);
		return b.s;
	}
	bucket_case(&b, t, bounds, 0, nb, first);
	return b.s;
}

char *
pgm_vsql_sums_blocks(const pgm_vtable_t *t, int64_t from, int64_t to)
{
	if (from < 0)
		return pgm_asprintf("SELECT 0, count(*), sum(%s) FROM ONLY %s t", t->hash_sql, t->ident);
	if (to < 0)
		return pgm_asprintf("SELECT 0, count(*), sum(%s) FROM ONLY %s t WHERE t.ctid >= '(%lld,0)'::tid",
				    t->hash_sql, t->ident, (long long) from);
	return pgm_asprintf("SELECT 0, count(*), sum(%s) FROM ONLY %s t"
			    " WHERE t.ctid >= '(%lld,0)'::tid AND t.ctid < '(%lld,0)'::tid",
			    t->hash_sql, t->ident, (long long) from, (long long) to);
}

char *
pgm_vsql_sums(const pgm_vtable_t *t, const pgm_vkey_t lo, const pgm_vkey_t hi, const pgm_vkey_t *bounds, int nb,
	      int first)
{
	char *range = pgm_vsql_range(t, lo, hi);
	char *bucket = nb > 0 ? pgm_vsql_bucket(t, bounds, nb, first) : pgm_asprintf("%d", first);
	char *sql = pgm_asprintf("SELECT %s, count(*), sum(%s) FROM ONLY %s t%s%s%s", bucket, t->hash_sql, t->ident,
				 lo || hi ? " WHERE " : "", lo || hi ? range : "", nb > 0 ? " GROUP BY 1" : "");

	free(range);
	free(bucket);
	return sql;
}

/* key columns as text, and ordered, for sample and split queries */
static void
key_columns(pgm_buf_t *b, const pgm_vtable_t *t, const char *alias, bool text)
{
	for (int i = 0; i < t->nkey; i++) {
		if (alias) {
			pgm_buf_appendf(b, "%s%s.k%d%s", i ? ", " : "", alias, i, text ? "::text" : "");
		} else {
			char *id = pgm_quote_ident(t->key[i]);
			pgm_buf_appendf(b, "%st.%s%s", i ? ", " : "", id, text ? "::text" : "");
			free(id);
		}
	}
}

char *
pgm_vsql_sample(const pgm_vtable_t *t, double pct)
{
	pgm_buf_t b = {0};

	pgm_buf_append(&b, "SELECT ");
	key_columns(&b, t, NULL, true);
	pgm_buf_appendf(&b, " FROM ONLY %s t TABLESAMPLE SYSTEM (%.6f) REPEATABLE (0) ORDER BY ", t->ident, pct);
	key_columns(&b, t, NULL, false);
	return b.s;
}

char *
pgm_vsql_split(const pgm_vtable_t *t, const pgm_vkey_t lo, const pgm_vkey_t hi, int64_t step)
{
	pgm_buf_t b = {0};
	char *range = pgm_vsql_range(t, lo, hi);

	pgm_buf_append(&b, "SELECT ");
	key_columns(&b, t, "s", true);
	pgm_buf_append(&b, " FROM (SELECT ");
	for (int i = 0; i < t->nkey; i++) {
		char *id = pgm_quote_ident(t->key[i]);
		pgm_buf_appendf(&b, "t.%s AS k%d, ", id, i);
		free(id);
	}
	pgm_buf_append(&b, "row_number() OVER (ORDER BY ");
	key_columns(&b, t, NULL, false);
	pgm_buf_appendf(&b, ") AS rn FROM ONLY %s t WHERE %s) s WHERE s.rn %% %lld = 1 AND s.rn > 1 ORDER BY s.rn",
			t->ident, range, (long long) step);
	free(range);
	return b.s;
}

char *
pgm_vsql_fetch(const pgm_vtable_t *t, const pgm_vkey_t lo, const pgm_vkey_t hi, int64_t limit)
{
	pgm_buf_t b = {0};
	char *range = pgm_vsql_range(t, lo, hi);

	pgm_buf_append(&b, "SELECT ");
	key_text(&b, t);
	pgm_buf_appendf(&b, ", %s FROM ONLY %s t WHERE %s", t->hash_sql, t->ident, range);
	if (limit > 0) {
		pgm_buf_append(&b, " ORDER BY ");
		key_columns(&b, t, NULL, false);
		pgm_buf_appendf(&b, " LIMIT %lld", (long long) limit);
	}
	free(range);
	return b.s;
}

char *
pgm_vsql_count(const pgm_vtable_t *t)
{
	return pgm_asprintf("SELECT count(*) FROM ONLY %s t", t->ident);
}

char *
pgm_vsql_row_groups(const pgm_vtable_t *t)
{
	return pgm_asprintf("SELECT h, count(*) FROM (SELECT %s AS h FROM ONLY %s t) s GROUP BY 1", t->hash_sql,
			    t->ident);
}

char *
pgm_vsql_rows_text(const pgm_vtable_t *t, const uint64_t *hashes, int n)
{
	pgm_buf_t b = {0};

	pgm_buf_append(&b, "SELECT DISTINCT ON (s.h) s.h, s.r FROM (SELECT ");
	pgm_buf_appendf(&b, "%s AS h, row(", t->hash_sql);
	for (int i = 0; i < t->ncols; i++) {
		char *id = pgm_quote_ident(t->cols[i].name);
		pgm_buf_appendf(&b, "%st.%s", i ? ", " : "", id);
		free(id);
	}
	pgm_buf_appendf(&b, ")::text AS r FROM ONLY %s t) s WHERE s.h IN (", t->ident);
	for (int i = 0; i < n; i++)
		pgm_buf_appendf(&b, "%s%lld", i ? ", " : "", (long long) (int64_t) hashes[i]);
	pgm_buf_append(&b, ") ORDER BY s.h, s.r");
	return b.s;
}
