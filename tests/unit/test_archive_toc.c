/*
 * test_archive_toc.c
 *    Unit tests of the reading of pg_restore's output for a backup-file
 *    source (src/pipeline/archive/toc.c): the --list header and its table
 *    data entries, the COPY statements and blocks of the --data-only script
 *    (names with parentheses, spaces, quotes, a newline, a carriage return),
 *    its large objects, and the matching of the two; the archives that
 *    cannot be verified by row counts (--inserts, --load-via-partition-root)
 *    fail saying so. The lines are those of pg_dump 15 -Fc archives of a
 *    test-bed cluster. No server needed.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "pipeline/archive/toc.h"

/* pg_restore --list of an archive with odd names (abridged: the TABLE DATA entries whole) */
static const char *const listing[] = {
	";",
	"; Archive created at 2026-12-03 18:31:41 UTC",
	";     dbname: appdb",
	";     TOC Entries: 37",
	";     Format: CUSTOM",
	";     Dumped from database version: 15.18 (Debian 15.18-0+deb12u1)",
	";     Dumped by pg_dump version: 15.18 (Debian 15.18-0+deb12u1)",
	";",
	"; Selected TOC Entries:",
	";",
	"6; 2615 16415 SCHEMA - Sales Dept app_owner",
	"221; 1259 16416 TABLE Sales Dept orders app_owner",
	"217; 1259 16399 TABLE public Odd (x) app_owner",
	"3394; 2613 16442 BLOB - 16442 app_owner",
	"3390; 0 16416 TABLE DATA Sales Dept orders app_owner",
	"3386; 0 16399 TABLE DATA public Odd (x) app_owner",
	"3388; 0 16409 TABLE DATA public c r app_owner",
	"3391; 0 16426 TABLE DATA public empty_t app_owner",
	"3387; 0 16404 TABLE DATA public line break app_owner",
	"3389; 0 16412 TABLE DATA public with\"quote FROM stdin; app_owner",
	"3404; 0 0 SEQUENCE SET public items_id_seq app_owner",
	"3395; 0 0 BLOBS - BLOBS ",
	"3241; 2606 16421 FK CONSTRAINT Sales Dept orders orders_item_fkey app_owner",
	"3405; 0 0 COMMENT Sales Dept CONSTRAINT orders_item_fkey ON orders app_owner",
	"",
	NULL,
};

/* pg_restore --data-only --file=- of the same archive (abridged: the SETs and comments) */
static const char *const script[] = {
	"SET standard_conforming_strings = on;",
	"SELECT pg_catalog.lo_create('16442');",
	"-- Data for Name: orders; Type: TABLE DATA; Schema: Sales Dept; Owner: app_owner",
	"COPY \"Sales Dept\".orders (id, item) FROM stdin;",
	"1\t1",
	"2\t2",
	"3\t3",
	"\\.",
	"COPY public.\"Odd (x)\" (a, \"b (c)\") FROM stdin;",
	"1\tone",
	"2\ttwo",
	"\\.",
	"COPY public.\"c\rr\" (v) FROM stdin;",
	"\\.",
	"COPY public.empty_t (x) FROM stdin;",
	"\\.",
	"COPY public.\"line",
	"break\" (v) FROM stdin;",
	"x",
	"multi\\nline",
	"\\.",
	"COPY public.\"with\"\"quote FROM stdin;\" (v) FROM stdin;",
	"7",
	"\\.",
	"SELECT pg_catalog.setval('public.items_id_seq', 5, true);",
	"BEGIN;",
	"SELECT pg_catalog.lo_open('16442', 131072);",
	"SELECT pg_catalog.lowrite(0, '\\x736d616c6c206c6f');",
	"SELECT pg_catalog.lo_close(0);",
	"COMMIT;",
	NULL,
};

static void
feed_list(pgm_toc_list_t *l, const char *const *lines)
{
	for (; *lines; lines++) {
		pgm_toc_err_t err = {0};

		ck_assert_msg(pgm_toc_list_line(l, *lines, &err), "[%s]: %s", *lines, err.message);
	}
}

/* every line read, then the end; false with *err at the first that fails */
static bool
feed_script(pgm_toc_script_t *sc, const char *const *lines, pgm_toc_err_t *err)
{
	for (; *lines; lines++)
		if (!pgm_toc_script_line(sc, *lines, err))
			return false;
	return pgm_toc_script_end(sc, err);
}

static void
assert_fails_with(bool ok, pgm_toc_err_t *err, const char *message, const char *hint)
{
	ck_assert_msg(!ok, "read without an error");
	ck_assert_ptr_nonnull(err->message);
	ck_assert_ptr_nonnull(err->hint);
	ck_assert_msg(strstr(err->message, message), "[%s] not in [%s]", message, err->message);
	ck_assert_msg(strstr(err->hint, hint), "[%s] not in the hint [%s]", hint, err->hint);
	pgm_toc_err_free(err);
}

START_TEST(test_list_header_and_entries)
{
	pgm_toc_list_t l = {0};

	feed_list(&l, listing);
	ck_assert_str_eq(l.dbname, "appdb");
	ck_assert_str_eq(l.format, "CUSTOM");
	ck_assert_str_eq(l.created_at, "2026-12-03 18:31:41 UTC");
	ck_assert_str_eq(l.dumped_by, "15.18 (Debian 15.18-0+deb12u1)");
	ck_assert_int_eq(l.entries, 14);
	ck_assert_uint_eq(l.ndata, 6);
	ck_assert_str_eq(l.data[0], "Sales Dept orders app_owner");
	ck_assert_str_eq(l.data[1], "public Odd (x) app_owner");
	ck_assert_str_eq(l.data[5], "public with\"quote FROM stdin; app_owner");
	pgm_toc_list_free(&l);
}
END_TEST

/* " TABLE DATA " inside a name is no table data entry: only the entry's type counts */
START_TEST(test_list_name_like_a_type)
{
	static const char *const lines[] = {"217; 1259 16399 TABLE public x TABLE DATA y app_owner",
					    "218; 0 16399 COMMENT public TABLE x TABLE DATA y app_owner", NULL};
	pgm_toc_list_t l = {0};

	feed_list(&l, lines);
	ck_assert_uint_eq(l.ndata, 0);
	pgm_toc_list_free(&l);
}
END_TEST

START_TEST(test_list_bad_line)
{
	static const char *const bad[] = {"not a listing", "12 0 0 TABLE DATA public t o",
					  "12; 0 TABLE DATA public t o", " 12; 0 0 TABLE DATA public t o", NULL};

	for (const char *const *b = bad; *b; b++) {
		pgm_toc_list_t l = {0};
		pgm_toc_err_t err = {0};

		assert_fails_with(pgm_toc_list_line(&l, *b, &err), &err, "no entry of a table of contents",
				  "pg_dump -Fc");
		pgm_toc_list_free(&l);
	}
}
END_TEST

static void
assert_copy(const char *stmt, const char *name, const char *schema, const char *table)
{
	char *n, *s, *t;

	ck_assert_msg(pgm_toc_parse_copy(stmt, &n, &s, &t) == 1, "[%s] not read", stmt);
	ck_assert_str_eq(n, name);
	ck_assert_str_eq(s, schema);
	ck_assert_str_eq(t, table);
	free(n);
	free(s);
	free(t);
}

START_TEST(test_copy_statements)
{
	assert_copy("COPY public.items (id, name) FROM stdin;", "public.items", "public", "items");
	/* parentheses and spaces in a quoted name, and in a column's */
	assert_copy("COPY public.\"Odd (x)\" (a, \"b (c)\") FROM stdin;", "public.\"Odd (x)\"", "public", "Odd (x)");
	assert_copy("COPY \"Sales Dept\".orders (id, item) FROM stdin;", "\"Sales Dept\".orders", "Sales Dept",
		    "orders");
	/* a name that ends like the statement, and a doubled quote */
	assert_copy("COPY public.\"with\"\"quote FROM stdin;\" (v) FROM stdin;", "public.\"with\"\"quote FROM stdin;\"",
		    "public", "with\"quote FROM stdin;");
	assert_copy("COPY public.\"c\rr\" (v) FROM stdin;", "public.\"c\rr\"", "public", "c\rr");
	assert_copy("COPY public.\"line\nbreak\" (\"a\nb\") FROM stdin;", "public.\"line\nbreak\"", "public",
		    "line\nbreak");
	/* a table without columns: pg_dump's two spaces */
	assert_copy("COPY public.nocols  FROM stdin;", "public.nocols", "public", "nocols");
}
END_TEST

START_TEST(test_copy_unreadable)
{
	static const char *const bad[] = {
		"COPY items (id) FROM stdin;",                   /* no schema */
		"COPY public.items (id FROM stdin;",             /* the column list not closed */
		"COPY public.items (id) FROM stdin; --",         /* something after it */
		"COPY public.items (id) FROM stdin",             /* no semicolon */
		"COPY public.items(id) FROM stdin;",             /* not pg_dump's spacing */
		"COPY public.Items (id) FROM stdin;",            /* upper case unquoted */
		"COPY public.\"\" (id) FROM stdin;",             /* an empty name */
		"COPY public.items (id) TO stdout;",             /* not a load */
		"COPY public.items; DROP TABLE x;  FROM stdin;", /* SQL after the name */
		"COPY public. (id) FROM stdin;",
		"COPY ",
		NULL,
	};
	char *n, *s, *t;

	for (const char *const *b = bad; *b; b++) {
		ck_assert_msg(pgm_toc_parse_copy(*b, &n, &s, &t) == -1, "[%s] was read", *b);
		ck_assert_ptr_null(n);
	}
	/* a quoted name still open: the statement goes on */
	ck_assert_int_eq(pgm_toc_parse_copy("COPY public.\"line", &n, &s, &t), 0);
	ck_assert_int_eq(pgm_toc_parse_copy("COPY public.t (\"a", &n, &s, &t), 0);
	ck_assert_ptr_null(n);
}
END_TEST

START_TEST(test_script_blocks_and_los)
{
	pgm_toc_script_t sc = {0};
	pgm_toc_err_t err = {0};

	ck_assert_msg(feed_script(&sc, script, &err), "%s", err.message);
	ck_assert_uint_eq(sc.ncopies, 6);
	ck_assert_str_eq(sc.copies[0].name, "\"Sales Dept\".orders");
	ck_assert_int_eq(sc.copies[0].rows, 3);
	ck_assert_str_eq(sc.copies[1].name, "public.\"Odd (x)\"");
	ck_assert_int_eq(sc.copies[1].rows, 2);
	ck_assert_str_eq(sc.copies[2].table, "c\rr");
	ck_assert_int_eq(sc.copies[2].rows, 0);
	ck_assert_int_eq(sc.copies[3].rows, 0);
	/* the COPY statement over two lines, its name with the newline, and only its rows counted */
	ck_assert_str_eq(sc.copies[4].name, "public.\"line\nbreak\"");
	ck_assert_int_eq(sc.copies[4].rows, 2);
	ck_assert_int_eq(sc.copies[5].rows, 1);
	ck_assert_uint_eq(sc.los.n, 1);
	ck_assert_uint_eq(sc.los.v[0].oid, 16442);
	ck_assert_int_eq(sc.los.v[0].bytes, 8);
	pgm_toc_script_free(&sc);
}
END_TEST

START_TEST(test_check_matches)
{
	pgm_toc_list_t l = {0};
	pgm_toc_script_t sc = {0};
	pgm_toc_err_t err = {0};

	feed_list(&l, listing);
	ck_assert(feed_script(&sc, script, &err));
	ck_assert_msg(pgm_toc_check(&l, &sc, &err), "%s", err.message);
	ck_assert_ptr_null(err.message);
	pgm_toc_script_free(&sc);
	pgm_toc_list_free(&l);
}
END_TEST

/* a COPY statement that is not read whole is an error, never a table skipped */
START_TEST(test_script_unreadable_copy)
{
	static const char *const lines[] = {"COPY public.items (id, name FROM stdin;", "1\tx", "\\.", NULL};
	pgm_toc_script_t sc = {0};
	pgm_toc_err_t err = {0};

	assert_fails_with(feed_script(&sc, lines, &err), &err, "COPY statement pgmover cannot read", "pg_dump -Fc");
	/* after the error the rest is drained without another */
	ck_assert(pgm_toc_script_line(&sc, "COPY nonsense", &err));
	ck_assert_ptr_null(err.message);
	pgm_toc_script_free(&sc);
}
END_TEST

START_TEST(test_script_cut_short)
{
	static const char *const in_block[] = {"COPY public.items (id) FROM stdin;", "1", NULL};
	static const char *const in_stmt[] = {"COPY public.\"line", "break", NULL};
	pgm_toc_script_t sc = {0};
	pgm_toc_err_t err = {0};

	assert_fails_with(feed_script(&sc, in_block, &err), &err, "ends inside the COPY block of public.items",
			  "cut short");
	pgm_toc_script_free(&sc);
	assert_fails_with(feed_script(&sc, in_stmt, &err), &err, "ends inside a COPY statement", "cut short");
	pgm_toc_script_free(&sc);
}
END_TEST

/* pg_dump --inserts: rows as INSERT statements, no COPY block: said, with what to do */
START_TEST(test_script_inserts)
{
	static const char *const lines[] = {
		"-- Data for Name: orders; Type: TABLE DATA; Schema: Sales Dept; Owner: app_owner",
		"INSERT INTO \"Sales Dept\".orders VALUES (1, 1);", "INSERT INTO \"Sales Dept\".orders VALUES (2, 2);",
		NULL};
	pgm_toc_script_t sc = {0};
	pgm_toc_err_t err = {0};

	assert_fails_with(feed_script(&sc, lines, &err), &err, "cannot be verified by row counts",
			  "default custom format");
	pgm_toc_script_free(&sc);
}
END_TEST

/* --inserts with only empty tables: no INSERT at all, and still no table left uncounted */
START_TEST(test_check_missing_block)
{
	static const char *const lines[] = {"3391; 0 16426 TABLE DATA public empty_t app_owner", NULL};
	pgm_toc_list_t l = {0};
	pgm_toc_script_t sc = {0};
	pgm_toc_err_t err = {0};

	feed_list(&l, lines);
	assert_fails_with(pgm_toc_check(&l, &sc, &err), &err,
			  "table data entry \"public empty_t app_owner\" of the archive's listing has no COPY block",
			  "--inserts");
	pgm_toc_list_free(&l);
}
END_TEST

START_TEST(test_check_extra_block)
{
	static const char *const lines[] = {"COPY public.items (id) FROM stdin;", "\\.", NULL};
	pgm_toc_list_t l = {0};
	pgm_toc_script_t sc = {0};
	pgm_toc_err_t err = {0};

	ck_assert(feed_script(&sc, lines, &err));
	assert_fails_with(pgm_toc_check(&l, &sc, &err), &err,
			  "COPY block for public.items that its listing does not hold", "pg_restore --list");
	pgm_toc_script_free(&sc);
}
END_TEST

/* --load-via-partition-root: said by pg_dump 15.18's comment, or else by the names that differ */
START_TEST(test_via_partition_root)
{
	static const char *const commented[] = {
		"-- Data for Name: parted_1; Type: TABLE DATA; Schema: public; Owner: o",
		"-- load via partition root public.parted",
		"COPY public.parted (k, v) FROM stdin;",
		"0\tv",
		"\\.",
		NULL};
	static const char *const list[] = {"3392; 0 16432 TABLE DATA public parted_1 app_owner", NULL};
	pgm_toc_list_t l = {0};
	pgm_toc_script_t sc = {0};
	pgm_toc_err_t err = {0};

	assert_fails_with(feed_script(&sc, commented, &err), &err,
			  "through their root table public.parted (pg_dump --load-via-partition-root)",
			  "without --load-via-partition-root");
	pgm_toc_script_free(&sc);
	feed_list(&l, list);
	ck_assert(feed_script(&sc, commented + 2, &err));
	assert_fails_with(pgm_toc_check(&l, &sc, &err), &err,
			  "COPY block 1 loads public.parted, but the table data entry 1 of its listing is \"public "
			  "parted_1 app_owner\"",
			  "--load-via-partition-root");
	pgm_toc_script_free(&sc);
	pgm_toc_list_free(&l);
}
END_TEST

/* a table whose name begins like another's is not taken for it */
START_TEST(test_check_prefix_name)
{
	static const char *const list[] = {"3392; 0 16432 TABLE DATA public items_old app_owner", NULL};
	static const char *const lines[] = {"COPY public.items (id) FROM stdin;", "\\.", NULL};
	pgm_toc_list_t l = {0};
	pgm_toc_script_t sc = {0};
	pgm_toc_err_t err = {0};

	feed_list(&l, list);
	ck_assert(feed_script(&sc, lines, &err));
	assert_fails_with(pgm_toc_check(&l, &sc, &err), &err, "loads public.items", "pg_restore --list");
	pgm_toc_script_free(&sc);
	pgm_toc_list_free(&l);
}
END_TEST

Suite *
pgm_test_suite(void)
{
	Suite *s = suite_create("archive_toc");
	TCase *tc = tcase_create("archive_toc");

	tcase_add_test(tc, test_list_header_and_entries);
	tcase_add_test(tc, test_list_name_like_a_type);
	tcase_add_test(tc, test_list_bad_line);
	tcase_add_test(tc, test_copy_statements);
	tcase_add_test(tc, test_copy_unreadable);
	tcase_add_test(tc, test_script_blocks_and_los);
	tcase_add_test(tc, test_check_matches);
	tcase_add_test(tc, test_script_unreadable_copy);
	tcase_add_test(tc, test_script_cut_short);
	tcase_add_test(tc, test_script_inserts);
	tcase_add_test(tc, test_check_missing_block);
	tcase_add_test(tc, test_check_extra_block);
	tcase_add_test(tc, test_via_partition_root);
	tcase_add_test(tc, test_check_prefix_name);
	suite_add_tcase(s, tc);
	return s;
}
