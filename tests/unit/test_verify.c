/*
 * test_verify.c
 *    Unit tests of the verification engine's pure parts
 *    (src/pipeline/verify/verify_plan.c, verify_sql.c, verify_report.c): chunk
 *    planning, the bisection's decisions and bookkeeping (sums mod 2^64,
 *    merging fetched rows into missing / extra / changed, reconciling keys
 *    two chunks disagree on), the SQL built for a table, and the report.
 *    No server needed.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "common/util.h"
#include "pipeline/verify/verify.h"
#include "pipeline/verify/verify_plan.h"

/* a table "s"."t" keyed by the listed columns of type integer (nkey 0: no key) */
static pgm_vtable_t
table_fixture(int nkey)
{
	static const char *const names[] = {"id", "b"};
	pgm_vtable_t t;

	memset(&t, 0, sizeof(t));
	t.schema = pgm_strdup("s");
	t.name = pgm_strdup("t");
	t.display = pgm_strdup("s.t");
	t.ident = pgm_strdup("\"s\".\"t\"");
	t.present[0] = t.present[1] = true;
	t.nkey = nkey;
	t.key = pgm_calloc(2, sizeof(char *));
	t.key_types = pgm_calloc(2, sizeof(char *));
	for (int i = 0; i < nkey; i++) {
		t.key[i] = pgm_strdup(names[i]);
		t.key_types[i] = pgm_strdup(i == 0 ? "integer" : "text");
	}
	t.hash_sql = pgm_strdup("H");
	t.nchunks = 1;
	return t;
}

static pgm_vkey_t
key1(const char *v)
{
	pgm_vkey_t k = pgm_calloc(1, sizeof(char *));

	k[0] = pgm_strdup(v);
	return k;
}

/* ---- planning ---- */

START_TEST(test_nchunks)
{
	ck_assert_int_eq(pgm_vplan_nchunks(0, 10000), 1);
	ck_assert_int_eq(pgm_vplan_nchunks(10000, 10000), 1);
	ck_assert_int_eq(pgm_vplan_nchunks(10001, 10000), 2);
	ck_assert_int_eq(pgm_vplan_nchunks(5e6, 10000), 500);
	ck_assert_int_eq(pgm_vplan_nchunks(1e12, 10000), 4096); /* capped */
	ck_assert_int_eq(pgm_vplan_nchunks(-1, 10000), 1);      /* never analyzed */
	ck_assert_int_eq(pgm_vplan_nchunks(1e6, 0), 1);
}
END_TEST

START_TEST(test_sample_pct)
{
	ck_assert(pgm_vplan_sample_pct(0, 10) == 100);
	ck_assert(pgm_vplan_sample_pct(100, 10) == 100);  /* tiny table: all of it */
	ck_assert(pgm_vplan_sample_pct(5e6, 500) > 0.15); /* 16 rows per chunk */
	ck_assert(pgm_vplan_sample_pct(5e6, 500) < 0.17);
	ck_assert(pgm_vplan_sample_pct(1e15, 2) == 0.0001); /* floor */
}
END_TEST

START_TEST(test_pick)
{
	int idx[16];
	int n;

	/* 100 sorted rows into 4 parts: parts start at rows 25, 50, 75 */
	n = pgm_vplan_pick(100, 4, idx);
	ck_assert_int_eq(n, 3);
	ck_assert_int_eq(idx[0], 25);
	ck_assert_int_eq(idx[1], 50);
	ck_assert_int_eq(idx[2], 75);
	/* fewer rows than parts: each row but the first starts a part, none twice */
	n = pgm_vplan_pick(3, 10, idx);
	ck_assert_int_eq(n, 2);
	ck_assert_int_eq(idx[0], 1);
	ck_assert_int_eq(idx[1], 2);
	ck_assert_int_eq(pgm_vplan_pick(0, 10, idx), 0);
	ck_assert_int_eq(pgm_vplan_pick(1, 10, idx), 0);
	ck_assert_int_eq(pgm_vplan_pick(50, 1, idx), 0);
}
END_TEST

START_TEST(test_block_chunks)
{
	/* one connection per side: never cut (a sequential scan is cheaper) */
	ck_assert_int_eq(pgm_vplan_block_chunks(81968, 81968, 1, 8192), 1);
	/* empty */
	ck_assert_int_eq(pgm_vplan_block_chunks(0, 0, 2, 8192), 1);
	/* no more than a connection's share: read whole, beside the others */
	ck_assert_int_eq(pgm_vplan_block_chunks(40000, 80000, 2, 8192), 1);
	/* pgbench_accounts at scale 50, alone on its side, 2 connections: halves of the share */
	ck_assert_int_eq(pgm_vplan_block_chunks(81968, 82000, 2, 8192), 4);
	/* 8 connections: ranges of half a share (5124 blocks) would be under the minimum */
	ck_assert_int_eq(pgm_vplan_block_chunks(81968, 82000, 8, 8192), 11);
	/* larger than its share but no larger than one range */
	ck_assert_int_eq(pgm_vplan_block_chunks(8000, 10000, 4, 8192), 1);
	/* a tiny minimum: still ranges of half a share, two per connection */
	ck_assert_int_eq(pgm_vplan_block_chunks(10000000, 10000000, 32, 1), 64);
	/* past 4 GB (524288 blocks) a heap is cut however many connections read it, for progress */
	ck_assert_int_eq(pgm_vplan_block_chunks(524288, 524288, 1, 8192), 1);
	ck_assert_int_eq(pgm_vplan_block_chunks(524289, 524289, 1, 8192), 2);
	ck_assert_int_eq(pgm_vplan_block_chunks(64000000, 64000000, 1, 8192), 123); /* 500 GB */
	ck_assert_int_eq(pgm_vplan_block_chunks(64000000, 64000000, 4, 8192), 123);
	ck_assert_int_eq(pgm_vplan_block_chunks(64000000, 64000000, 512, 8192), 1024); /* half a share */
}
END_TEST

/* ---- bisection ---- */

START_TEST(test_decide)
{
	int64_t eq[2] = {10, 10}, small[2] = {1999, 2000}, big[2] = {5000, 5001}, empty[2] = {0, 9000};
	uint64_t same[2] = {7, 7}, other[2] = {7, 8};

	ck_assert_int_eq(pgm_vbisect_decide(eq, same, 2000), PGM_VB_EQUAL);
	ck_assert_int_eq(pgm_vbisect_decide(eq, other, 2000), PGM_VB_FETCH);
	ck_assert_int_eq(pgm_vbisect_decide(small, same, 2000), PGM_VB_FETCH);
	ck_assert_int_eq(pgm_vbisect_decide(big, other, 2000), PGM_VB_SPLIT);
	ck_assert_int_eq(pgm_vbisect_decide(empty, other, 2000), PGM_VB_ONE_SIDED);
	empty[0] = 9000;
	empty[1] = 0;
	ck_assert_int_eq(pgm_vbisect_decide(empty, other, 2000), PGM_VB_ONE_SIDED);
}
END_TEST

START_TEST(test_sum_parse)
{
	ck_assert_uint_eq(pgm_vsum_parse(NULL), 0);
	ck_assert_uint_eq(pgm_vsum_parse("0"), 0);
	ck_assert_uint_eq(pgm_vsum_parse("42"), 42);
	ck_assert_uint_eq(pgm_vsum_parse("-1"), UINT64_MAX);
	ck_assert_uint_eq(pgm_vsum_parse("18446744073709551616"), 0); /* 2^64 */
	ck_assert_uint_eq(pgm_vsum_parse("18446744073709551617"), 1);
	ck_assert_uint_eq(pgm_vsum_parse("-18446744073709551617"), UINT64_MAX);
	/* a sum of row hashes as PostgreSQL prints it: mod 2^64 of the exact value */
	ck_assert_uint_eq(pgm_vsum_parse("-24792420801080157563778"), 3233985479808126ULL);
	/* sums add up mod 2^64 as the exact sums do */
	ck_assert_uint_eq(pgm_vsum_parse("9223372036854775807") + pgm_vsum_parse("9223372036854775807"),
			  pgm_vsum_parse("18446744073709551614"));
}
END_TEST

START_TEST(test_key_cmp)
{
	ck_assert_int_lt(pgm_vkey_cmp("9", "10"), 0);
	ck_assert_int_lt(pgm_vkey_cmp("-10", "-9"), 0);
	ck_assert_int_lt(pgm_vkey_cmp("-1", "0"), 0);
	ck_assert_int_eq(pgm_vkey_cmp("007", "7"), 0);
	ck_assert_int_gt(pgm_vkey_cmp("1000", "999"), 0);
	ck_assert_int_lt(pgm_vkey_cmp("abc", "abd"), 0);
	ck_assert_int_lt(pgm_vkey_cmp("10", "9a"), 0); /* not both integers: bytewise */
}
END_TEST

static pgm_vrow_t
row(const char *key, uint64_t hash, int64_t n)
{
	pgm_vrow_t r = {pgm_strdup(key), hash, n};

	return r;
}

START_TEST(test_merge)
{
	pgm_vtable_t t = table_fixture(1);
	pgm_vrow_t src[] = {row("3", 30, 0), row("1", 10, 0), row("2", 20, 0), row("5", 50, 0)};
	pgm_vrow_t dst[] = {row("4", 40, 0), row("2", 21, 0), row("1", 10, 0), row("5", 50, 0)};

	pgm_vrows_sort(src, 4);
	pgm_vrows_sort(dst, 4);
	ck_assert_str_eq(src[0].key, "1");
	pgm_vrows_merge(&t, src, 4, dst, 4);
	ck_assert_int_eq(t.ndiffs, 3);
	ck_assert_int_eq(t.count[PGM_VDIFF_MISSING], 1);
	ck_assert_int_eq(t.count[PGM_VDIFF_EXTRA], 1);
	ck_assert_int_eq(t.count[PGM_VDIFF_CHANGED], 1);
	ck_assert_str_eq(t.diffs[0].key, "2");
	ck_assert_int_eq(t.diffs[0].kind, PGM_VDIFF_CHANGED);
	ck_assert_uint_eq(t.diffs[0].hash[0], 20);
	ck_assert_uint_eq(t.diffs[0].hash[1], 21);
	ck_assert_str_eq(t.diffs[1].key, "3");
	ck_assert_int_eq(t.diffs[1].kind, PGM_VDIFF_MISSING);
	ck_assert_str_eq(t.diffs[2].key, "4");
	ck_assert_int_eq(t.diffs[2].kind, PGM_VDIFF_EXTRA);
	for (int i = 0; i < 4; i++) {
		free(src[i].key);
		free(dst[i].key);
	}
	pgm_vtable_free(&t);
}
END_TEST

/* a table without a key: equal rows grouped, a surplus is missing or extra once per row */
START_TEST(test_merge_grouped)
{
	pgm_vtable_t t = table_fixture(0);
	pgm_vrow_t src[] = {row("111", 111, 3), row("222", 222, 1)};
	pgm_vrow_t dst[] = {row("111", 111, 1), row("333", 333, 2)};

	pgm_vrows_merge(&t, src, 2, dst, 2);
	ck_assert_int_eq(t.count[PGM_VDIFF_MISSING], 3); /* 111 twice, 222 once */
	ck_assert_int_eq(t.count[PGM_VDIFF_EXTRA], 2);   /* 333 twice */
	ck_assert_int_eq(t.count[PGM_VDIFF_CHANGED], 0);
	pgm_vtable_reconcile(&t); /* no pairing without a key */
	ck_assert_int_eq(t.ndiffs, 5);
	for (int i = 0; i < 2; i++) {
		free(src[i].key);
		free(dst[i].key);
	}
	pgm_vtable_free(&t);
}
END_TEST

START_TEST(test_reconcile)
{
	pgm_vtable_t t = table_fixture(1);

	/* key 7 landed in different chunks on the two sides, unchanged; key 8 too, changed */
	pgm_vtable_add_diff(&t, "10", PGM_VDIFF_MISSING, 100, 0);
	pgm_vtable_add_diff(&t, "7", PGM_VDIFF_MISSING, 70, 0);
	pgm_vtable_add_diff(&t, "8", PGM_VDIFF_EXTRA, 0, 81);
	pgm_vtable_add_diff(&t, "9", PGM_VDIFF_CHANGED, 90, 91);
	pgm_vtable_add_diff(&t, "7", PGM_VDIFF_EXTRA, 0, 70);
	pgm_vtable_add_diff(&t, "8", PGM_VDIFF_MISSING, 80, 0);
	pgm_vtable_reconcile(&t);
	ck_assert_int_eq(t.ndiffs, 3);
	ck_assert_str_eq(t.diffs[0].key, "8");
	ck_assert_int_eq(t.diffs[0].kind, PGM_VDIFF_CHANGED);
	ck_assert_uint_eq(t.diffs[0].hash[0], 80);
	ck_assert_uint_eq(t.diffs[0].hash[1], 81);
	ck_assert_str_eq(t.diffs[1].key, "9");
	ck_assert_str_eq(t.diffs[2].key, "10"); /* integers in order of value */
	ck_assert_int_eq(t.count[PGM_VDIFF_MISSING], 1);
	ck_assert_int_eq(t.count[PGM_VDIFF_EXTRA], 0);
	ck_assert_int_eq(t.count[PGM_VDIFF_CHANGED], 2);
	pgm_vtable_free(&t);
}
END_TEST

START_TEST(test_keep_limit)
{
	pgm_vtable_t t = table_fixture(1);

	for (int i = 0; i < PGM_V_KEEP_DIFFS + 50; i++) {
		char k[16];
		snprintf(k, sizeof(k), "%d", i);
		pgm_vtable_add_diff(&t, k, PGM_VDIFF_CHANGED, 1, 2);
	}
	ck_assert_int_eq(t.ndiffs, PGM_V_KEEP_DIFFS);
	ck_assert_int_eq(t.count[PGM_VDIFF_CHANGED], PGM_V_KEEP_DIFFS + 50);
	pgm_vtable_free(&t);
}
END_TEST

START_TEST(test_filter)
{
	const char *const f[] = {"shop.orders", "events", NULL};

	ck_assert(pgm_vfilter_match(NULL, "any", "thing"));
	ck_assert(pgm_vfilter_match(f, "shop", "orders"));
	ck_assert(!pgm_vfilter_match(f, "public", "orders"));
	ck_assert(pgm_vfilter_match(f, "public", "events"));
	ck_assert(pgm_vfilter_match(f, "shop", "events"));
	ck_assert(!pgm_vfilter_match(f, "shop", "order"));
	ck_assert(!pgm_vfilter_match(f, "sho", "p.orders"));
}
END_TEST

/* ---- SQL ---- */

START_TEST(test_row_hash)
{
	pgm_vtable_t t = table_fixture(1);
	pgm_vcol_t cols[] = {
		{"id", "integer", "int4", true, true}, /* NOT NULL on both sides */
		{"name", "text", "text", true, false},
		{"price", "numeric(12,2)", "numeric", true, false},
		{"ratio", "double precision", "float8", true, false},
		{"moved", "bigint", "int8", false, false}, /* another type on the target */
		{"mood", "shop.mood", NULL, true, false},
		{"at", "timestamp with time zone", "timestamptz", true, false},
		{"local", "timestamp without time zone", "timestamp", true, false},
		{"day", "date", "date", true, false},
	};
	char *h;

	free(t.hash_sql);
	t.cols = cols;
	t.ncols = 9;
	h = pgm_vsql_row_hash(&t, false);
	ck_assert_str_eq(h, "hashint4extended(t.\"id\", 1)"
			    " # coalesce(hashtextextended(t.\"name\" COLLATE \"C\", 2), 2)"
			    " # coalesce(hashtextextended(t.\"price\"::text COLLATE \"C\", 3), 3)"
			    " # coalesce(hashtextextended(t.\"ratio\"::text COLLATE \"C\", 4), 4)"
			    " # coalesce(hashtextextended(t.\"moved\"::text COLLATE \"C\", 5), 5)"
			    " # coalesce(hashtextextended(t.\"mood\"::text COLLATE \"C\", 6), 6)"
			    " # coalesce(timestamp_hash_extended(t.\"at\"::timestamp, 7), 7)"
			    " # coalesce(timestamp_hash_extended(t.\"local\", 8), 8)"
			    " # coalesce(hashtextextended(t.\"day\"::text COLLATE \"C\", 9), 9)");
	free(h);
	/* a side older than 12 prints floats differently: their bits are hashed */
	h = pgm_vsql_row_hash(&t, true);
	ck_assert_ptr_nonnull(strstr(h, "hashtextextended(float8send(t.\"ratio\")::text, 4)"));
	free(h);
	/* the large objects: the OID, and the content read by lo_get() */
	{
		pgm_vcol_t oid = {.name = "oid", .type = "oid", .builtin = "oid", .same_type = true, .not_null = true};
		pgm_vtable_t lo = {.cols = &oid, .ncols = 1, .large_objects = true};

		h = pgm_vsql_row_hash(&lo, false);
		ck_assert_str_eq(h, "hashoidextended(t.\"oid\", 1) # hashtextextended(md5(lo_get(t.oid)), 2)");
		free(h);
	}
	t.ncols = 0;
	h = pgm_vsql_row_hash(&t, false);
	ck_assert_str_eq(h, "0::int8");
	free(h);
	t.cols = NULL;
	t.hash_sql = NULL;
	pgm_vtable_free(&t);
}
END_TEST

START_TEST(test_range)
{
	pgm_vtable_t t = table_fixture(1), c = table_fixture(2);
	pgm_vkey_t lo = key1("10"), hi = key1("20");
	char *cl[] = {"1", "it's"}, *ch[] = {"2", "a"};
	char *s;

	s = pgm_vsql_range(&t, NULL, NULL);
	ck_assert_str_eq(s, "true");
	free(s);
	s = pgm_vsql_range(&t, lo, NULL);
	ck_assert_str_eq(s, "t.\"id\" >= '10'::integer");
	free(s);
	s = pgm_vsql_range(&t, lo, hi);
	ck_assert_str_eq(s, "t.\"id\" >= '10'::integer AND t.\"id\" < '20'::integer");
	free(s);
	s = pgm_vsql_range(&c, cl, ch);
	ck_assert_str_eq(s, "(t.\"id\", t.\"b\") >= ('1'::integer, 'it''s'::text)"
			    " AND (t.\"id\", t.\"b\") < ('2'::integer, 'a'::text)");
	free(s);
	pgm_vkey_free(lo, 1);
	pgm_vkey_free(hi, 1);
	pgm_vtable_free(&t);
	pgm_vtable_free(&c);
}
END_TEST

/*
 * evaluate the bucket CASE for a key k (the grammar pgm_vsql_bucket writes),
 * its boundaries numbers whatever the key's type
 */
static int
eval_bucket(const char **p, long k)
{
	if (strncmp(*p, "CASE WHEN t.\"id\" < '", 20) == 0) {
		long b = strtol(*p + 20, (char **) p, 10);
		int then, other;

		ck_assert(strncmp(*p, "'::", 3) == 0);
		*p = strstr(*p, " THEN ");
		ck_assert_ptr_nonnull(*p);
		*p += 6;
		then = eval_bucket(p, k);
		ck_assert(strncmp(*p, " ELSE ", 6) == 0);
		*p += 6;
		other = eval_bucket(p, k);
		ck_assert(strncmp(*p, " END", 4) == 0);
		*p += 4;
		return k < b ? then : other;
	}
	return (int) strtol(*p, (char **) p, 10);
}

START_TEST(test_bucket)
{
	pgm_vtable_t t = table_fixture(1);
	pgm_vkey_t bounds[40];
	char *s;

	for (int i = 0; i < 40; i++) {
		char v[16];
		snprintf(v, sizeof(v), "%d", (i + 1) * 10);
		bounds[i] = key1(v);
	}
	/* an integer key: width_bucket() over the boundaries, one binary search in C per row */
	s = pgm_vsql_bucket(&t, bounds, 3, 5);
	ck_assert_str_eq(s, "width_bucket(t.\"id\", ARRAY['10'::integer, '20'::integer, '30'::integer]) + 5");
	free(s);
	s = pgm_vsql_bucket(&t, bounds, 0, 5);
	ck_assert_str_eq(s, "5");
	free(s);
	/* a key compared under a collation: a CASE tree */
	free(t.key_types[0]);
	t.key_types[0] = pgm_strdup("text");
	s = pgm_vsql_bucket(&t, bounds, 3, 5);
	ck_assert_str_eq(s, "CASE WHEN t.\"id\" < '20'::text THEN CASE WHEN t.\"id\" < '10'::text THEN 5 ELSE 6 END"
			    " ELSE CASE WHEN t.\"id\" < '30'::text THEN 7 ELSE 8 END END");
	free(s);
	/* every size: a key's bucket is first + the boundaries at or below it */
	for (int nb = 0; nb <= 40; nb++) {
		s = pgm_vsql_bucket(&t, bounds, nb, 100);
		for (long k = -5; k <= 420; k += 5) {
			const char *p = s;
			int want = 100;
			for (int i = 0; i < nb; i++)
				want += k >= (i + 1) * 10;
			ck_assert_int_eq(eval_bucket(&p, k), want);
			ck_assert_int_eq(*p, '\0');
		}
		free(s);
	}
	for (int i = 0; i < 40; i++)
		pgm_vkey_free(bounds[i], 1);
	pgm_vtable_free(&t);
}
END_TEST

START_TEST(test_queries)
{
	pgm_vtable_t t = table_fixture(1), n = table_fixture(0);
	pgm_vkey_t lo = key1("10"), hi = key1("20"), b[1];
	uint64_t hashes[2] = {5, UINT64_MAX};
	char *s;

	b[0] = key1("15");
	s = pgm_vsql_sums(&t, lo, hi, b, 1, 0);
	ck_assert_str_eq(s, "SELECT width_bucket(t.\"id\", ARRAY['15'::integer]) + 0, count(*), sum(H)"
			    " FROM ONLY \"s\".\"t\" t WHERE t.\"id\" >= '10'::integer AND t.\"id\" < '20'::integer"
			    " GROUP BY 1");
	free(s);
	s = pgm_vsql_sums_blocks(&t, -1, -1);
	ck_assert_str_eq(s, "SELECT 0, count(*), sum(H) FROM ONLY \"s\".\"t\" t");
	free(s);
	s = pgm_vsql_sums_blocks(&t, 8192, 16384);
	ck_assert_str_eq(s, "SELECT 0, count(*), sum(H) FROM ONLY \"s\".\"t\" t"
			    " WHERE t.ctid >= '(8192,0)'::tid AND t.ctid < '(16384,0)'::tid");
	free(s);
	s = pgm_vsql_sums_blocks(&t, 16384, -1);
	ck_assert_str_eq(s, "SELECT 0, count(*), sum(H) FROM ONLY \"s\".\"t\" t WHERE t.ctid >= '(16384,0)'::tid");
	free(s);
	s = pgm_vsql_split(&t, lo, NULL, 32);
	ck_assert_str_eq(s, "SELECT s.k0::text FROM (SELECT t.\"id\" AS k0, row_number() OVER (ORDER BY t.\"id\") AS rn"
			    " FROM ONLY \"s\".\"t\" t WHERE t.\"id\" >= '10'::integer) s"
			    " WHERE s.rn % 32 = 1 AND s.rn > 1 ORDER BY s.rn");
	free(s);
	s = pgm_vsql_fetch(&t, lo, hi, 0);
	ck_assert_str_eq(s, "SELECT t.\"id\"::text, H FROM ONLY \"s\".\"t\" t"
			    " WHERE t.\"id\" >= '10'::integer AND t.\"id\" < '20'::integer");
	free(s);
	s = pgm_vsql_fetch(&t, NULL, NULL, 20);
	ck_assert_str_eq(s, "SELECT t.\"id\"::text, H FROM ONLY \"s\".\"t\" t WHERE true ORDER BY t.\"id\" LIMIT 20");
	free(s);
	s = pgm_vsql_sample(&t, 0.5);
	ck_assert_str_eq(s, "SELECT t.\"id\"::text FROM ONLY \"s\".\"t\" t TABLESAMPLE SYSTEM (0.500000)"
			    " REPEATABLE (0) ORDER BY t.\"id\"");
	free(s);
	s = pgm_vsql_row_groups(&n);
	ck_assert_str_eq(s, "SELECT h, count(*) FROM (SELECT H AS h FROM ONLY \"s\".\"t\" t) s GROUP BY 1");
	free(s);
	s = pgm_vsql_rows_text(&n, hashes, 2);
	ck_assert_str_eq(s, "SELECT DISTINCT ON (s.h) s.h, s.r FROM (SELECT H AS h, row()::text AS r FROM ONLY"
			    " \"s\".\"t\" t) s WHERE s.h IN (5, -1) ORDER BY s.h, s.r");
	free(s);
	pgm_vkey_free(lo, 1);
	pgm_vkey_free(hi, 1);
	pgm_vkey_free(b[0], 1);
	pgm_vtable_free(&t);
	pgm_vtable_free(&n);
}
END_TEST

/* ---- report ---- */

START_TEST(test_report_table)
{
	pgm_vtable_t t = table_fixture(1);
	cJSON *r, *d;

	t.rows[0] = t.rows[1] = 5;
	t.sum[0] = t.sum[1] = 0xabc;
	r = pgm_vreport_table(&t, 2);
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "match")));
	ck_assert_ptr_null(cJSON_GetObjectItem(r, "problem"));
	ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(r, "source_checksum")), "0000000000000abc");
	ck_assert_ptr_null(cJSON_GetObjectItem(r, "differences"));
	cJSON_Delete(r);

	pgm_vtable_add_diff(&t, "3", PGM_VDIFF_MISSING, 1, 0);
	pgm_vtable_add_diff(&t, "1", PGM_VDIFF_CHANGED, 1, 2);
	pgm_vtable_add_diff(&t, "2", PGM_VDIFF_CHANGED, 1, 2);
	pgm_vtable_reconcile(&t);
	r = pgm_vreport_table(&t, 2);
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(r, "match")));
	ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(r, "problem")),
			 "3 rows differ: 1 missing on the target, 2 changed");
	d = cJSON_GetObjectItem(r, "differences");
	ck_assert_int_eq((int) cJSON_GetNumberValue(cJSON_GetObjectItem(d, "count")), 3);
	ck_assert_int_eq((int) cJSON_GetNumberValue(cJSON_GetObjectItem(d, "listed")), 2);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(d, "keys")), 2);
	ck_assert_str_eq(
		cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(d, "keys"), 0), "key")),
		"1");
	cJSON_Delete(r);

	t.incomplete = true;
	r = pgm_vreport_table(&t, 2);
	ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(r, "problem")),
			 "at least 3 rows differ: 1 missing on the target, 2 changed");
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "differences"), "complete")));
	cJSON_Delete(r);

	t.present[1] = false;
	r = pgm_vreport_table(&t, 2);
	ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(r, "problem")), "missing on the target");
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(r, "target_rows")));
	cJSON_Delete(r);
	pgm_vtable_free(&t);

	t = table_fixture(0);
	t.rows[0] = t.rows[1] = 5;
	t.whole_differs = true;
	r = pgm_vreport_table(&t, 2);
	ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(r, "problem")),
			 "contents differ (no key to locate the rows)");
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(r, "key")));
	cJSON_Delete(r);
	pgm_vtable_free(&t);
}
END_TEST

START_TEST(test_report_schema)
{
	pgm_vobj_t src[] = {
		{"index", "s.t", "CREATE INDEX ON s.t USING btree (a)", "t_a_idx"},
		{"column", "s.t", "s.t.a", "integer"},
		{"column", "s.t", "s.t.b", "text"},
		{"extension", NULL, "citext", "1.6"},
		{"column", "s.u", "s.u.x", "integer"},
	};
	pgm_vobj_t dst[] = {
		{"column", "s.t", "s.t.a", "bigint"},
		{"extension", NULL, "citext", "1.7"}, /* versions may differ */
		{"column", "s.t", "s.t.extra", "integer"},
		{"index", "s.t", "CREATE INDEX ON s.t USING btree (b)", "t_a_idx"},
		{"column", "s.u", "s.u.x", "integer"},
	};
	pgm_vobj_t *objs[2] = {src, dst};
	int n[2] = {5, 5};
	const char *const only_u[] = {"s.u", NULL};
	cJSON *r = pgm_vreport_schema(objs, n, NULL), *d = cJSON_GetObjectItem(r, "differences"), *e;
	char buf[1024] = "";

	cJSON_ArrayForEach (e, d) {
		strcat(buf, cJSON_GetStringValue(cJSON_GetObjectItem(e, "object")));
		strcat(buf, ": ");
		strcat(buf, cJSON_GetStringValue(cJSON_GetObjectItem(e, "problem")));
		strcat(buf, "; ");
	}
	ck_assert_str_eq(buf, "s.t.a: differs; s.t.b: missing on the target; s.t.extra: only on the target; "
			      "CREATE INDEX ON s.t USING btree (a): missing on the target; "
			      "CREATE INDEX ON s.t USING btree (b): only on the target; ");
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(r, "ok")));
	ck_assert_int_eq((int) cJSON_GetNumberValue(cJSON_GetObjectItem(r, "objects_compared")), 7);
	cJSON_Delete(r);
	r = pgm_vreport_schema(objs, n, only_u);
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")));
	ck_assert_int_eq((int) cJSON_GetNumberValue(cJSON_GetObjectItem(r, "objects_compared")), 1);
	cJSON_Delete(r);
}
END_TEST

START_TEST(test_report_sequences)
{
	pgm_vseq_t src[] = {
		{"s.a", "s.t", "100", false}, {"s.b", NULL, "100", false}, {"s.c", NULL, NULL, false},
		{"s.d", NULL, "5", false},    {"s.e", NULL, "9", false},   {"s.f", NULL, "-10", true},
		{"s.g", NULL, "-10", true},
	};
	pgm_vseq_t dst[] = {
		{"s.a", "s.t", "100", false}, {"s.b", NULL, "99", false}, {"s.c", NULL, NULL, false},
		{"s.e", NULL, "10", false},   {"s.f", NULL, "-9", true},  {"s.g", NULL, "-11", true},
	};
	pgm_vseq_t *seqs[2] = {src, dst};
	int n[2] = {7, 6}, mismatches = 0;
	const char *const only_t[] = {"s.t", NULL};
	cJSON *r = pgm_vreport_sequences(seqs, n, NULL, &mismatches), *q;
	char buf[512] = "";

	cJSON_ArrayForEach (q, r) {
		strcat(buf, cJSON_GetStringValue(cJSON_GetObjectItem(q, "sequence")));
		strcat(buf, cJSON_IsTrue(cJSON_GetObjectItem(q, "match")) ? " ok; " : " ");
		if (!cJSON_IsTrue(cJSON_GetObjectItem(q, "match"))) {
			strcat(buf, cJSON_GetStringValue(cJSON_GetObjectItem(q, "problem")));
			strcat(buf, "; ");
		}
	}
	ck_assert_str_eq(buf, "s.a ok; s.b target is behind the source; s.c ok; s.d missing on the target; s.e ok; "
			      "s.f target is behind the source; s.g ok; ");
	ck_assert_int_eq(mismatches, 3);
	cJSON_Delete(r);
	mismatches = 0;
	r = pgm_vreport_sequences(seqs, n, only_t, &mismatches);
	ck_assert_int_eq(cJSON_GetArraySize(r), 1);
	ck_assert_int_eq(mismatches, 0);
	cJSON_Delete(r);
}
END_TEST

/* ---- the engine without a server: errors and cancellation ---- */

typedef struct outcome {
	int calls;
	cJSON *report;
	char what[128], message[256];
} outcome_t;

static void
on_done(pgm_verify_t *v, cJSON *report, const char *what, const pgm_pg_error_t *err, void *data)
{
	outcome_t *o = data;

	o->calls++;
	o->report = report;
	snprintf(o->what, sizeof(o->what), "%s", what ? what : "");
	snprintf(o->message, sizeof(o->message), "%s", err ? err->message : "");
}

/* nothing listens on port 1: the connection is refused at once */
#define NOWHERE "postgresql://u@127.0.0.1:1/db?connect_timeout=5"

START_TEST(test_engine_unreachable)
{
	uv_loop_t loop;
	outcome_t o = {0};
	pgm_verify_options_t opts = {.jobs = 3};

	uv_loop_init(&loop);
	ck_assert_ptr_nonnull(pgm_verify_start(&loop, NOWHERE, NOWHERE, &opts, on_done, NULL, &o));
	ck_assert_int_eq(o.calls, 0); /* never from inside the call */
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(o.calls, 1);
	ck_assert_ptr_null(o.report);
	ck_assert_ptr_nonnull(strstr(o.what, "could not connect to the"));
	ck_assert_str_ne(o.message, "");
	ck_assert_int_eq(uv_loop_close(&loop), 0); /* every handle closed */
}
END_TEST

START_TEST(test_engine_cancel)
{
	uv_loop_t loop;
	outcome_t o = {0};
	pgm_verify_t *v;

	uv_loop_init(&loop);
	v = pgm_verify_start(&loop, NOWHERE, NOWHERE, NULL, on_done, NULL, &o);
	pgm_verify_cancel(v);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(o.calls, 0);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	/* cancelled from the loop, while connecting */
	uv_loop_init(&loop);
	v = pgm_verify_start(&loop, NOWHERE, NOWHERE, NULL, on_done, NULL, &o);
	uv_run(&loop, UV_RUN_NOWAIT);
	pgm_verify_cancel(v);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(o.calls, 0);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

Suite *
pgm_test_suite(void)
{
	Suite *s = suite_create("verify");
	TCase *plan = tcase_create("plan"), *bis = tcase_create("bisect"), *sql = tcase_create("sql"),
	      *rep = tcase_create("report"), *eng = tcase_create("engine");

	tcase_add_test(plan, test_nchunks);
	tcase_add_test(plan, test_sample_pct);
	tcase_add_test(plan, test_pick);
	tcase_add_test(plan, test_block_chunks);
	tcase_add_test(plan, test_filter);
	suite_add_tcase(s, plan);
	tcase_add_test(bis, test_decide);
	tcase_add_test(bis, test_sum_parse);
	tcase_add_test(bis, test_key_cmp);
	tcase_add_test(bis, test_merge);
	tcase_add_test(bis, test_merge_grouped);
	tcase_add_test(bis, test_reconcile);
	tcase_add_test(bis, test_keep_limit);
	suite_add_tcase(s, bis);
	tcase_add_test(sql, test_row_hash);
	tcase_add_test(sql, test_range);
	tcase_add_test(sql, test_bucket);
	tcase_add_test(sql, test_queries);
	suite_add_tcase(s, sql);
	tcase_add_test(rep, test_report_table);
	tcase_add_test(rep, test_report_schema);
	tcase_add_test(rep, test_report_sequences);
	suite_add_tcase(s, rep);
	tcase_add_test(eng, test_engine_unreachable);
	tcase_add_test(eng, test_engine_cancel);
	suite_add_tcase(s, eng);
	return s;
}
