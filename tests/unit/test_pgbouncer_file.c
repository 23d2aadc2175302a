/*
 * test_pgbouncer_file.c
 *    Unit tests of the pgbouncer include file pgmover owns
 *    (src/pipeline/cutover/pgbouncer_file.c): pgm_pgb_rewrite points the
 *    application's [databases] entry at another server — host, port,
 *    dbname, user and password from the DSN, every other parameter kept,
 *    quoted the way pgbouncer reads it, the rest of the file untouched —
 *    and pgm_pgb_write_like replaces the file with the owner and mode of
 *    the one it replaces. No server or pgbouncer needed.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check_main.h"
#include "pipeline/cutover/pgbouncer.h"

#define TARGET "postgres://tgt:secret@10.0.0.2:6543/appdb"
#define TARGET_PAIRS "host='10.0.0.2' port='6543' dbname='appdb' user='tgt' password='secret'"

/* the rewrite of file for database → dsn, which must succeed (the caller frees it) */
static char *
rewrite_ok(const char *file, const char *database, const char *dsn)
{
	char *err = NULL;
	char *out = pgm_pgb_rewrite(file, database, dsn, &err);

	ck_assert_msg(out != NULL, "rewrite failed: %s", err ? err : "(no message)");
	ck_assert_ptr_null(err);
	return out;
}

/* the rewrite must fail with a message holding `want` */
static void
assert_rewrite_fails(const char *file, const char *database, const char *dsn, const char *want)
{
	char *err = NULL;
	char *out = pgm_pgb_rewrite(file, database, dsn, &err);

	ck_assert_msg(out == NULL, "rewrite of [%s] succeeded: [%s]", file, out ? out : "");
	ck_assert_ptr_nonnull(err);
	ck_assert_msg(strstr(err, want) != NULL, "[%s] not in the error [%s]", want, err);
	free(err);
}

START_TEST(test_entry_rewritten)
{
	char *out = rewrite_ok("[databases]\nshop = host=old.example port=5432 dbname=shop user=app password=old\n",
			       "shop", TARGET);

	ck_assert_str_eq(out, "[databases]\nshop = " TARGET_PAIRS "\n");
	free(out);
}
END_TEST

START_TEST(test_entry_missing)
{
	/* no such entry, only a longer or a shorter name, or only in another section */
	assert_rewrite_fails("[databases]\nother = host=old\n", "shop", TARGET, "no entry \"shop\" under [databases]");
	assert_rewrite_fails("shop2 = host=old\nsho = host=old\n", "shop", TARGET, "no entry \"shop\"");
	assert_rewrite_fails("[pgbouncer]\nshop = host=old\n", "shop", TARGET, "no entry \"shop\"");
	assert_rewrite_fails("[databases]\n[users]\nshop = pool_mode=session\n", "shop", TARGET, "no entry \"shop\"");
	/* a name without '=' is no entry */
	assert_rewrite_fails("shop\n", "shop", TARGET, "no entry \"shop\"");
	/* commented out */
	assert_rewrite_fails("; shop = host=old\n# shop = host=old\n", "shop", TARGET, "no entry \"shop\"");
	assert_rewrite_fails("", "shop", TARGET, "no entry \"shop\"");
}
END_TEST

START_TEST(test_other_params_kept)
{
	char *out = rewrite_ok("shop = host=old port=5432 pool_size=20 pool_mode=transaction auth_user=pgb "
			       "max_db_connections=50 dbname=shop\n",
			       "shop", TARGET);

	/* the DSN's five first, then the others in their order */
	ck_assert_str_eq(out, "shop = " TARGET_PAIRS " pool_size='20' pool_mode='transaction' auth_user='pgb' "
			      "max_db_connections='50'\n");
	free(out);
}
END_TEST

START_TEST(test_old_connection_dropped)
{
	/* the old user and password go even when the DSN has none to replace them */
	char *out = rewrite_ok("shop = host=old port=1 user=app password='x y' dbname=old pool_size=3\n", "shop",
			       "host=new.example dbname=appdb");

	ck_assert_str_eq(out, "shop = host='new.example' port='5432' dbname='appdb' pool_size='3'\n");
	free(out);
}
END_TEST

START_TEST(test_dsn_defaults)
{
	char *out;

	/* no dbname: libpq's default, the user's name */
	out = rewrite_ok("shop = host=old\n", "shop", "postgresql://tgt@new.example");
	ck_assert_str_eq(out, "shop = host='new.example' port='5432' dbname='tgt' user='tgt'\n");
	free(out);
	/* no user either: pgbouncer's default, the entry's name */
	out = rewrite_ok("shop = host=old\n", "shop", "host=new.example");
	ck_assert_str_eq(out, "shop = host='new.example' port='5432' dbname='shop'\n");
	free(out);
	/* a Unix socket directory, an IPv6 address */
	out = rewrite_ok("shop = host=old\n", "shop", "host=/var/run/postgresql port=5433 dbname=appdb");
	ck_assert_str_eq(out, "shop = host='/var/run/postgresql' port='5433' dbname='appdb'\n");
	free(out);
	out = rewrite_ok("shop = host=old\n", "shop", "postgres://[::1]:5433/appdb");
	ck_assert_str_eq(out, "shop = host='::1' port='5433' dbname='appdb'\n");
	free(out);
	/* an empty password is left out: pgbouncer refuses empty values */
	out = rewrite_ok("shop = host=old\n", "shop", "host=new.example user=tgt password='' dbname=appdb");
	ck_assert_str_eq(out, "shop = host='new.example' port='5432' dbname='appdb' user='tgt'\n");
	free(out);
}
END_TEST

START_TEST(test_quoting)
{
	char *out;

	/* a quote and a space in the password (a URI's %27 and %20): '' inside single quotes */
	out = rewrite_ok("shop = host=old\n", "shop", "postgres://tgt:it%27s%20me@new.example/appdb");
	ck_assert_str_eq(out, "shop = host='new.example' port='5432' dbname='appdb' user='tgt' password='it''s me'\n");
	free(out);
	/* a kept value with spaces and doubled quotes comes back quoted the same */
	out = rewrite_ok("shop = host=old connect_query='SELECT set_config(''app.x'', ''a b'', false)' "
			 "application_name='my app'\n",
			 "shop", TARGET);
	ck_assert_str_eq(out, "shop = " TARGET_PAIRS " connect_query='SELECT set_config(''app.x'', ''a b'', false)' "
			      "application_name='my app'\n");
	free(out);
	/* a quoted value that is only a quote */
	out = rewrite_ok("shop = host=old application_name=''''\n", "shop", TARGET);
	ck_assert_str_eq(out, "shop = " TARGET_PAIRS " application_name=''''\n");
	free(out);
}
END_TEST

START_TEST(test_spaces)
{
	char *out;

	/* blanks around the name, the '=' and the pairs, none at all, and around a pair's '=' */
	out = rewrite_ok("  shop\t=\t host=old   pool_size=3  \n", "shop", TARGET);
	ck_assert_str_eq(out, "shop = " TARGET_PAIRS " pool_size='3'\n");
	free(out);
	out = rewrite_ok("shop=host=old pool_size=3\n", "shop", TARGET);
	ck_assert_str_eq(out, "shop = " TARGET_PAIRS " pool_size='3'\n");
	free(out);
	out = rewrite_ok("shop = host = old pool_size = 3\n", "shop", TARGET);
	ck_assert_str_eq(out, "shop = " TARGET_PAIRS " pool_size='3'\n");
	free(out);
	/* an entry with no parameters at all */
	out = rewrite_ok("shop =\n", "shop", TARGET);
	ck_assert_str_eq(out, "shop = " TARGET_PAIRS "\n");
	free(out);
}
END_TEST

START_TEST(test_rest_of_file_untouched)
{
	const char *file = "; pgbouncer include file, owned by pgmover\n"
			   "# shop = host=commented.example\n"
			   "\n"
			   "[databases]\n"
			   "shop_old = host=legacy.example dbname=shop\n"
			   "shop.v2 = host=old.example\n"
			   "shop = host=old.example pool_size=20\n"
			   "reports = host=old.example dbname=reports pool_mode=session\n"
			   "  ; shop = host=indented-comment.example\n"
			   "\n"
			   "[users]\n"
			   "shop = pool_mode=session\n";
	const char *want = "; pgbouncer include file, owned by pgmover\n"
			   "# shop = host=commented.example\n"
			   "\n"
			   "[databases]\n"
			   "shop_old = host=legacy.example dbname=shop\n"
			   "shop.v2 = host=old.example\n"
			   "shop = " TARGET_PAIRS " pool_size='20'\n"
			   "reports = host=old.example dbname=reports pool_mode=session\n"
			   "  ; shop = host=indented-comment.example\n"
			   "\n"
			   "[users]\n"
			   "shop = pool_mode=session\n";
	char *out = rewrite_ok(file, "shop", TARGET);

	ck_assert_str_eq(out, want);
	free(out);
}
END_TEST

START_TEST(test_multiple_entries)
{
	const char *file = "[databases]\n"
			   "a = host=old port=1 pool_size=1\n"
			   "b = host=old port=2 pool_size=2\n"
			   "c = host=old port=3 pool_size=3\n";
	char *out;

	/* each one alone, the two others byte for byte */
	out = rewrite_ok(file, "a", TARGET);
	ck_assert_str_eq(out, "[databases]\na = " TARGET_PAIRS " pool_size='1'\n"
			      "b = host=old port=2 pool_size=2\nc = host=old port=3 pool_size=3\n");
	free(out);
	out = rewrite_ok(file, "b", TARGET);
	ck_assert_str_eq(out, "[databases]\na = host=old port=1 pool_size=1\nb = " TARGET_PAIRS " pool_size='2'\n"
			      "c = host=old port=3 pool_size=3\n");
	free(out);
	out = rewrite_ok(file, "c", TARGET);
	ck_assert_str_eq(out, "[databases]\na = host=old port=1 pool_size=1\nb = host=old port=2 pool_size=2\n"
			      "c = " TARGET_PAIRS " pool_size='3'\n");
	free(out);
}
END_TEST

START_TEST(test_sections)
{
	char *out;

	/* an include file with no section header is read inside [databases] */
	out = rewrite_ok("shop = host=old\n", "shop", TARGET);
	ck_assert_str_eq(out, "shop = " TARGET_PAIRS "\n");
	free(out);
	/* [databases] after another section, and the file's last line without a newline */
	out = rewrite_ok("[pgbouncer]\nshop = 1\n[databases]\nshop = host=old", "shop", TARGET);
	ck_assert_str_eq(out, "[pgbouncer]\nshop = 1\n[databases]\nshop = " TARGET_PAIRS);
	free(out);
}
END_TEST

START_TEST(test_rewrite_is_idempotent)
{
	/* cutover retried: rewriting the rewritten file changes nothing */
	char *once = rewrite_ok("shop = host=old pool_size=20 connect_query='SELECT ''x'''\n", "shop",
				"postgres://tgt:it%27s@new.example:6543/appdb");
	char *twice = rewrite_ok(once, "shop", "postgres://tgt:it%27s@new.example:6543/appdb");

	ck_assert_str_eq(twice, once);
	free(once);
	free(twice);
}
END_TEST

START_TEST(test_invalid)
{
	/* the entry as pgbouncer would refuse it: a quote left open, a pair without '=' or name */
	assert_rewrite_fails("shop = host='old\n", "shop", TARGET,
			     "the entry \"shop\" in the include file is not valid");
	assert_rewrite_fails("shop = host=old pool_size\n", "shop", TARGET, "is not valid for pgbouncer");
	assert_rewrite_fails("shop = host=old =3\n", "shop", TARGET, "is not valid for pgbouncer");
	/* a DSN libpq cannot parse: libpq's message */
	assert_rewrite_fails("shop = host=old\n", "shop", "host", "missing \"=\"");
	assert_rewrite_fails("shop = host=old\n", "shop", "postgres://[::1/appdb", "IPv6 host address");
}
END_TEST

/*
 * pgbouncer's ini reader drops the blanks, a CR included, at the end of a
 * line (libusual's parse_ini_file), so it reads "pool_mode=transaction\r"
 * of a CRLF file as transaction; the rewrite keeps the CR inside the new
 * quotes, pool_mode='transaction\r', which pgbouncer refuses as a pool
 * mode on RELOAD. The rewrite now keeps the CR outside the values.
 */
START_TEST(test_crlf_line)
{
	char *out = rewrite_ok("shop = host=old pool_mode=transaction\r\nother = host=x\r\n", "shop", TARGET);

	ck_assert_ptr_null(strstr(out, "transaction\r'"));
	ck_assert_ptr_nonnull(strstr(out, "pool_mode='transaction'"));
	ck_assert_ptr_nonnull(strstr(out, "\nother = host=x\r\n"));
	free(out);
}
END_TEST

/* a name defined twice: pgbouncer keeps the last definition, so that one is rewritten */
START_TEST(test_last_definition)
{
	char *out = rewrite_ok("[databases]\nshop = host=first\nshop = host=second pool_size=5\n", "shop", TARGET);

	ck_assert_ptr_nonnull(strstr(out, "shop = host=first\n"));
	ck_assert_ptr_null(strstr(out, "host=second"));
	ck_assert_ptr_nonnull(strstr(out, "pool_size='5'"));
	free(out);
}
END_TEST

/* ---- the file itself ---- */

static char tmpdir[] = "/tmp/pgm-test-pgb.XXXXXX";

static void
setup(void)
{
	strcpy(tmpdir + strlen(tmpdir) - 6, "XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void
teardown(void)
{
	char *cmd = NULL;

	ck_assert_int_gt(asprintf(&cmd, "rm -rf '%s'", tmpdir), 0);
	ck_assert_int_eq(system(cmd), 0);
	free(cmd);
}

/* tmpdir/name (the caller frees it) */
static char *
path_of(const char *name)
{
	char *p = NULL;

	ck_assert_int_gt(asprintf(&p, "%s/%s", tmpdir, name), 0);
	return p;
}

START_TEST(test_write_like_keeps_mode)
{
	char *inc = path_of("databases.ini"), *tmp = path_of("databases.ini.pgmover-tmp"), *err = NULL, *text;
	struct stat st;
	FILE *f = fopen(inc, "w");

	ck_assert_ptr_nonnull(f);
	fputs("shop = host=old\n", f);
	fclose(f);
	ck_assert_int_eq(chmod(inc, 0640), 0);

	ck_assert_msg(pgm_pgb_write_like(inc, inc, "shop = host=new\n", &err), "write: %s", err ? err : "?");
	ck_assert_int_eq(stat(inc, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0640);
	ck_assert_int_eq(st.st_uid, geteuid());
	/* the new file in place of the old, no temporary file left */
	text = pgm_pgb_read(inc, &err);
	ck_assert_ptr_nonnull(text);
	ck_assert_str_eq(text, "shop = host=new\n");
	ck_assert_int_ne(access(tmp, F_OK), 0);
	free(text);
	free(inc);
	free(tmp);
}
END_TEST

START_TEST(test_write_like_missing_model)
{
	/* no file to take the mode from: 0600, since the file holds a password */
	char *inc = path_of("databases.ini"), *like = path_of("missing.ini"), *err = NULL;
	struct stat st;

	ck_assert_msg(pgm_pgb_write_like(inc, like, "shop = host=new\n", &err), "write: %s", err ? err : "?");
	ck_assert_int_eq(stat(inc, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0600);
	free(inc);
	free(like);
}
END_TEST

START_TEST(test_read_write_errors)
{
	char *missing = path_of("no/such/dir/databases.ini"), *err = NULL;

	ck_assert_ptr_null(pgm_pgb_read(missing, &err));
	ck_assert_ptr_nonnull(err);
	ck_assert_ptr_nonnull(strstr(err, "could not read"));
	ck_assert_ptr_nonnull(strstr(err, missing));
	free(err);
	err = NULL;
	ck_assert(!pgm_pgb_write_like(missing, missing, "x", &err));
	ck_assert_ptr_nonnull(err);
	ck_assert_ptr_nonnull(strstr(err, "could not write"));
	ck_assert_ptr_nonnull(strstr(err, missing));
	free(err);
	free(missing);
}
END_TEST

Suite *
pgm_test_suite(void)
{
	Suite *s = suite_create("pgbouncer_file");
	TCase *rw = tcase_create("rewrite");
	TCase *bugs = tcase_create("rewrite_line_ends");
	TCase *file = tcase_create("file");

	tcase_add_test(rw, test_entry_rewritten);
	tcase_add_test(rw, test_entry_missing);
	tcase_add_test(rw, test_other_params_kept);
	tcase_add_test(rw, test_old_connection_dropped);
	tcase_add_test(rw, test_dsn_defaults);
	tcase_add_test(rw, test_quoting);
	tcase_add_test(rw, test_spaces);
	tcase_add_test(rw, test_rest_of_file_untouched);
	tcase_add_test(rw, test_multiple_entries);
	tcase_add_test(rw, test_sections);
	tcase_add_test(rw, test_rewrite_is_idempotent);
	tcase_add_test(rw, test_invalid);
	suite_add_tcase(s, rw);

	tcase_add_test(bugs, test_crlf_line);
	tcase_add_test(bugs, test_last_definition);
	suite_add_tcase(s, bugs);

	tcase_add_checked_fixture(file, setup, teardown);
	tcase_add_test(file, test_write_like_keeps_mode);
	tcase_add_test(file, test_write_like_missing_model);
	tcase_add_test(file, test_read_write_errors);
	suite_add_tcase(s, file);
	return s;
}
