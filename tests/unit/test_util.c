/*
 * test_util.c
 *    Unit tests of the small shared helpers: SQL quoting, time stamps and
 *    job names (src/common/util.c), connection strings and their masking
 *    (src/pg/dsn.c), and the cJSON replace-or-add helpers
 *    (src/common/json.c), and the advice given for common connection and
 *    privilege errors (pgm_pg_error_advice, src/pg/pgasync.c).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check_main.h"
#include "common/json.h"
#include "common/util.h"
#include "pg/dsn.h"
#include "pg/pgasync.h"

START_TEST(test_quote_ident)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{"orders", "\"orders\""},
		{"Mixed Case", "\"Mixed Case\""},
		{"a\"b", "\"a\"\"b\""},
		{"\"", "\"\"\"\""},
		{"\"\"x\"", "\"\"\"\"\"x\"\"\""},
		{"it's", "\"it's\""},
		{"", "\"\""},
		{"naïve", "\"naïve\""},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *q = pgm_quote_ident(cases[i].in);
		ck_assert_str_eq(q, cases[i].out);
		free(q);
	}
	{
		char *q = pgm_quote_ident(NULL);
		ck_assert_str_eq(q, "\"\"");
		free(q);
	}
}
END_TEST

START_TEST(test_quote_literal)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{"abc", "'abc'"},
		{"O'Reilly", "'O''Reilly'"},
		{"''", "''''''"},
		{"'; DROP TABLE t; --", "'''; DROP TABLE t; --'"},
		{"back\\slash", "'back\\slash'"}, /* standard_conforming_strings: kept as is */
		{"say \"hi\"", "'say \"hi\"'"},
		{"", "''"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *q = pgm_quote_literal(cases[i].in);
		ck_assert_str_eq(q, cases[i].out);
		free(q);
	}
	{
		char *q = pgm_quote_literal(NULL);
		ck_assert_str_eq(q, "''");
		free(q);
	}
}
END_TEST

START_TEST(test_time_round_trip)
{
	static const struct {
		int64_t ms;
		const char *text;
	} cases[] = {
		{0, "1970-01-01T00:00:00.000Z"},
		{1, "1970-01-01T00:00:00.001Z"},
		{1700000000123, "2023-11-14T22:13:20.123Z"},
		{951868799999, "2000-02-29T23:59:59.999Z"},
		{1709251199000, "2024-02-29T23:59:59.000Z"},
		{4102444800500, "2100-01-01T00:00:00.500Z"},
	};
	char buf[40];

	/* UTC whatever the local time zone is (a POSIX TZ needs no tzdata) */
	setenv("TZ", "PGM-05:30", 1);
	tzset();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		pgm_format_time(cases[i].ms, buf, sizeof(buf));
		ck_assert_str_eq(buf, cases[i].text);
		ck_assert_int_eq(pgm_parse_time(buf), cases[i].ms);
	}
	/* now, to the millisecond */
	{
		int64_t now = pgm_now_ms();
		pgm_format_time(now, buf, sizeof(buf));
		ck_assert_int_eq(pgm_parse_time(buf), now);
		ck_assert_uint_eq(strlen(buf), 24);
	}
	/* without milliseconds is whole seconds */
	ck_assert_int_eq(pgm_parse_time("2023-11-14T22:13:20Z"), 1700000000000);
	ck_assert_int_eq(pgm_parse_time("2023-11-14T22:13:20"), 1700000000000);
	/* a short buffer truncates, never overflows */
	pgm_format_time(1700000000123, buf, 11);
	ck_assert_str_eq(buf, "2023-11-14");
	/* clocks move forward */
	ck_assert_int_gt(pgm_now_ms(), 1700000000000);
	ck_assert_int_ge(pgm_mono_ms(), 0);
}
END_TEST

START_TEST(test_time_malformed)
{
	ck_assert_int_eq(pgm_parse_time(NULL), -1);
	ck_assert_int_eq(pgm_parse_time(""), -1);
	ck_assert_int_eq(pgm_parse_time("yesterday"), -1);
	ck_assert_int_eq(pgm_parse_time("2023-11-14"), -1);
	ck_assert_int_eq(pgm_parse_time("2023-13-14T22:13:20.000Z"), -1);
	ck_assert_int_eq(pgm_parse_time("2023-11-14 22:13:20.000Z"), -1);
	ck_assert_int_eq(pgm_parse_time("2023-11-14T22:13:20.xyzZ"), -1);
}
END_TEST

START_TEST(test_name_valid)
{
	char long_name[80];

	ck_assert(pgm_name_valid("shop"));
	ck_assert(pgm_name_valid("a"));
	ck_assert(pgm_name_valid("9lives"));
	ck_assert(pgm_name_valid("Shop_2024-eu"));
	ck_assert(pgm_name_valid("a-"));
	memset(long_name, 'x', 63);
	long_name[63] = '\0';
	ck_assert(pgm_name_valid(long_name));
	long_name[63] = 'x';
	long_name[64] = '\0';
	ck_assert(!pgm_name_valid(long_name));

	ck_assert(!pgm_name_valid(NULL));
	ck_assert(!pgm_name_valid(""));
	ck_assert(!pgm_name_valid("-shop"));
	ck_assert(!pgm_name_valid("_shop"));
	ck_assert(!pgm_name_valid("."));
	ck_assert(!pgm_name_valid(".."));
	ck_assert(!pgm_name_valid("a/b"));
	ck_assert(!pgm_name_valid("../etc"));
	ck_assert(!pgm_name_valid("a b"));
	ck_assert(!pgm_name_valid("a.b"));
	ck_assert(!pgm_name_valid("shop\n"));
	ck_assert(!pgm_name_valid("caf\xc3\xa9"));
	ck_assert(!pgm_name_valid("a\"b"));
}
END_TEST

START_TEST(test_dsn_uri)
{
	pgm_dsn_t d;
	char *err = NULL;

	ck_assert(pgm_dsn_parse("postgres://us%40er:p%40ss%3Aw%2Frd@db.example.com:6543/my%20db?sslmode=require", &d,
				&err));
	ck_assert_ptr_null(err);
	ck_assert_str_eq(d.user, "us@er");
	ck_assert_str_eq(d.password, "p@ss:w/rd");
	ck_assert_str_eq(d.host, "db.example.com");
	ck_assert_str_eq(d.port, "6543");
	ck_assert_str_eq(d.dbname, "my db");
	ck_assert_str_eq(d.sslmode, "require");
	pgm_dsn_free(&d);
	ck_assert_ptr_null(d.user); /* free clears */

	/* postgresql:// too, and missing parts stay NULL (libpq defaults apply) */
	ck_assert(pgm_dsn_parse("postgresql://h/db", &d, &err));
	ck_assert_str_eq(d.host, "h");
	ck_assert_str_eq(d.dbname, "db");
	ck_assert_ptr_null(d.user);
	ck_assert_ptr_null(d.password);
	ck_assert_ptr_null(d.port);
	ck_assert_ptr_null(d.sslmode);
	pgm_dsn_free(&d);

	/* hostaddr stands in for a missing host */
	ck_assert(pgm_dsn_parse("hostaddr=10.1.2.3 dbname=x", &d, &err));
	ck_assert_str_eq(d.host, "10.1.2.3");
	pgm_dsn_free(&d);
}
END_TEST

START_TEST(test_dsn_keyvalue)
{
	pgm_dsn_t d;
	char *err = NULL;

	ck_assert(pgm_dsn_parse("host=h port=5433 dbname=d user=u password='a b\\'c' sslmode=disable", &d, &err));
	ck_assert_str_eq(d.host, "h");
	ck_assert_str_eq(d.port, "5433");
	ck_assert_str_eq(d.dbname, "d");
	ck_assert_str_eq(d.user, "u");
	ck_assert_str_eq(d.password, "a b'c");
	ck_assert_str_eq(d.sslmode, "disable");
	pgm_dsn_free(&d);
	/* an empty value counts as unset */
	ck_assert(pgm_dsn_parse("host=h password=''", &d, &err));
	ck_assert_ptr_null(d.password);
	pgm_dsn_free(&d);
}
END_TEST

/* parsing that must fail with a message holding frag, without a trailing newline or period */
static void
dsn_fails(const char *dsn, const char *frag)
{
	pgm_dsn_t d;
	char *err = NULL;
	size_t n;

	ck_assert_msg(!pgm_dsn_parse(dsn, &d, &err), "accepted: %s", dsn ? dsn : "(null)");
	ck_assert_ptr_nonnull(err);
	n = strlen(err);
	ck_assert_uint_gt(n, 0);
	ck_assert_msg(err[n - 1] != '\n' && err[n - 1] != '.', "\"%s\" ends badly", err);
	ck_assert_msg(strstr(err, frag) != NULL, "\"%s\" lacks \"%s\"", err, frag);
	ck_assert_ptr_null(d.host);
	ck_assert_ptr_null(d.password);
	free(err);
}

START_TEST(test_dsn_invalid)
{
	dsn_fails(NULL, "empty");
	dsn_fails("", "empty");
	dsn_fails("not a dsn", "\"not\"");
	dsn_fails("host=h bogus_key=1", "bogus_key");
	dsn_fails("postgres://h/db?nonsense=1", "nonsense");
	dsn_fails("postgres://u:pw@[::1/db", "");
	dsn_fails("host='unterminated", "");
}
END_TEST

/* the masked form: never the password, **** only when there is one */
static void
assert_masked(const char *dsn, const char *expected)
{
	char *m = pgm_dsn_masked(dsn);

	ck_assert_str_eq(m, expected);
	free(m);
}

START_TEST(test_dsn_masked)
{
	assert_masked("postgres://u:secret@127.0.0.1:1/a?sslmode=require",
		      "postgres://u:****@127.0.0.1:1/a?sslmode=require");
	assert_masked("postgres://u@h/db", "postgres://u@h/db");
	assert_masked("postgres://h:5432/db", "postgres://h:5432/db");
	assert_masked("host=h port=5433 dbname=d user=u password=hunter2 sslmode=verify-full",
		      "postgres://u:****@h:5433/d?sslmode=verify-full");
	assert_masked("postgres://u:p%40ss@h/db", "postgres://u:****@h/db");
	assert_masked("not a dsn password=secret", "(invalid connection string)");
	assert_masked("", "(invalid connection string)");
	{
		char *m = pgm_dsn_masked("postgres://u:secret@h/db");
		ck_assert_ptr_null(strstr(m, "secret"));
		ck_assert_ptr_nonnull(strstr(m, "****"));
		free(m);
		m = pgm_dsn_masked("postgres://u@h/db");
		ck_assert_ptr_null(strstr(m, "****"));
		free(m);
	}
}
END_TEST

START_TEST(test_dsn_without_password)
{
	char *s =
		pgm_dsn_without_password("postgres://u:secret@h.example:5433/shop?sslmode=require&application_name=x");
	pgm_dsn_t d;
	char *err = NULL;

	ck_assert_ptr_nonnull(s);
	ck_assert_ptr_null(strstr(s, "secret"));
	ck_assert_ptr_null(strstr(s, "password"));
	ck_assert_ptr_nonnull(strstr(s, "host='h.example'"));
	ck_assert_ptr_nonnull(strstr(s, "port='5433'"));
	ck_assert_ptr_nonnull(strstr(s, "dbname='shop'"));
	ck_assert_ptr_nonnull(strstr(s, "user='u'"));
	ck_assert_ptr_nonnull(strstr(s, "sslmode='require'"));
	ck_assert_ptr_nonnull(strstr(s, "application_name='x'"));
	/* libpq reads it back as the same connection, minus the password */
	ck_assert_msg(pgm_dsn_parse(s, &d, &err), "%s: %s", s, err);
	ck_assert_str_eq(d.host, "h.example");
	ck_assert_str_eq(d.port, "5433");
	ck_assert_str_eq(d.dbname, "shop");
	ck_assert_str_eq(d.user, "u");
	ck_assert_str_eq(d.sslmode, "require");
	ck_assert_ptr_null(d.password);
	pgm_dsn_free(&d);
	free(s);

	/* values that need quoting survive the trip */
	s = pgm_dsn_without_password("host=h dbname='it\\'s a \\\\ db' user='o\\'neil' password='x y'");
	ck_assert_ptr_nonnull(s);
	ck_assert_ptr_null(strstr(s, "x y"));
	ck_assert(pgm_dsn_parse(s, &d, &err));
	ck_assert_str_eq(d.dbname, "it's a \\ db");
	ck_assert_str_eq(d.user, "o'neil");
	ck_assert_ptr_null(d.password);
	pgm_dsn_free(&d);
	free(s);

	/* long values grow the buffer */
	{
		char big[2048], *dsn;
		memset(big, 'q', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		dsn = pgm_asprintf("host=h dbname=%s options='-c a=%s' password=pw", big, big);
		s = pgm_dsn_without_password(dsn);
		ck_assert_ptr_nonnull(s);
		ck_assert(pgm_dsn_parse(s, &d, &err));
		ck_assert_str_eq(d.dbname, big);
		pgm_dsn_free(&d);
		free(s);
		free(dsn);
	}

	ck_assert_ptr_null(pgm_dsn_without_password("not a dsn"));

	/* mTLS: certificate paths pass through; the key's passphrase is a secret like the password */
	s = pgm_dsn_without_password("postgres://u@h/db?sslmode=verify-full&sslrootcert=/c/root.crt"
				     "&sslcert=/c/client.crt&sslkey=/c/client.key&sslpassword=k3y-pass");
	ck_assert_ptr_nonnull(s);
	ck_assert_ptr_null(strstr(s, "k3y-pass"));
	ck_assert_ptr_nonnull(strstr(s, "sslcert='/c/client.crt'"));
	ck_assert_ptr_nonnull(strstr(s, "sslkey='/c/client.key'"));
	ck_assert_ptr_nonnull(strstr(s, "sslrootcert='/c/root.crt'"));
	free(s);
	s = pgm_dsn_sslpassword("postgres://u@h/db?sslkey=/c/client.key&sslpassword=k3y-pass");
	ck_assert_str_eq(s, "k3y-pass");
	free(s);
	ck_assert_ptr_null(pgm_dsn_sslpassword("postgres://u@h/db?sslmode=require"));
	s = pgm_dsn_masked("postgres://u:pw@h/db?sslmode=verify-full&sslpassword=k3y-pass");
	ck_assert_ptr_null(strstr(s, "k3y-pass"));
	free(s);
}
END_TEST

START_TEST(test_json_set)
{
	cJSON *o = cJSON_CreateObject();
	cJSON *inner;

	pgm_json_set(o, "a", cJSON_CreateString("one"));
	pgm_json_set(o, "a", cJSON_CreateString("two"));
	pgm_json_set(o, "a", cJSON_Parse("{\"deep\": [1, 2, 3]}"));
	pgm_json_set(o, "a", cJSON_CreateNumber(3));
	ck_assert_int_eq(cJSON_GetArraySize(o), 1);
	ck_assert_int_eq((int) pgm_json_num(o, "a", -1), 3);

	pgm_json_set_str(o, "s", "x");
	pgm_json_set_str(o, "s", "y");
	ck_assert_str_eq(pgm_json_str(o, "s"), "y");
	pgm_json_set_str(o, "s", NULL);
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(o, "s")));
	ck_assert_ptr_null(pgm_json_str(o, "s"));
	pgm_json_set_num(o, "n", 1.5);
	pgm_json_set_num(o, "n", 2.5);
	ck_assert(pgm_json_num(o, "n", 0) == 2.5);
	ck_assert(pgm_json_num(o, "missing", 7) == 7);
	ck_assert(pgm_json_num(o, "s", 7) == 7);  /* not a number */
	ck_assert_ptr_null(pgm_json_str(o, "n")); /* not a string */
	pgm_json_set_time(o, "at", 1700000000123);
	ck_assert_str_eq(pgm_json_str(o, "at"), "2023-11-14T22:13:20.123Z");
	ck_assert_int_eq(cJSON_GetArraySize(o), 4);
	/* keys are case-sensitive: "A" is another key */
	pgm_json_set_str(o, "A", "upper");
	ck_assert_int_eq(cJSON_GetArraySize(o), 5);
	ck_assert_int_eq((int) pgm_json_num(o, "a", -1), 3);

	/* pgm_json_obj: created when missing, kept when there, replaced when not an object */
	inner = pgm_json_obj(o, "lag");
	ck_assert(cJSON_IsObject(inner));
	pgm_json_set_num(inner, "bytes", 10);
	ck_assert_ptr_eq(pgm_json_obj(o, "lag"), inner);
	ck_assert_int_eq((int) pgm_json_num(pgm_json_obj(o, "lag"), "bytes", 0), 10);
	inner = pgm_json_obj(o, "at");
	ck_assert(cJSON_IsObject(inner));
	ck_assert_int_eq(cJSON_GetArraySize(inner), 0);
	ck_assert_int_eq(cJSON_GetArraySize(o), 6);
	cJSON_Delete(o);
}
END_TEST

START_TEST(test_strings)
{
	char *s = pgm_asprintf("%s-%d-%05.1f", "x", 42, 3.14159);

	ck_assert_str_eq(s, "x-42-003.1");
	free(s);
	s = pgm_asprintf("%s", "");
	ck_assert_str_eq(s, "");
	free(s);
	ck_assert_ptr_null(pgm_strdup(NULL));
	s = pgm_strdup("dup");
	ck_assert_str_eq(s, "dup");
	free(s);
	s = pgm_calloc(4, 8);
	for (int i = 0; i < 32; i++)
		ck_assert_int_eq(s[i], 0);
	s = pgm_realloc(s, 4096);
	free(s);
}
END_TEST

/* the advice for an error: by SQLSTATE when the server sent one, else by libpq's words */
static const char *
advice(const char *sqlstate, const char *message, const char *hint)
{
	pgm_pg_error_t e = {.message = (char *) message, .hint = (char *) hint};

	snprintf(e.sqlstate, sizeof(e.sqlstate), "%s", sqlstate);
	return pgm_pg_error_advice(&e);
}

static void
assert_advice(const char *sqlstate, const char *message, const char *expect)
{
	const char *a = advice(sqlstate, message, NULL);

	ck_assert_msg(a && strstr(a, expect), "advice for [%s] %s: %s (expected ...%s...)", sqlstate, message,
		      a ? a : "none", expect);
}

START_TEST(test_error_advice)
{
	const char *at = "connection to server at \"127.0.0.1\", port 5432 failed: ";
	char msg[512];

	assert_advice("42501", "permission denied for table t", "GRANT");
	snprintf(msg, sizeof(msg), "%sFATAL:  password authentication failed for user \"u\"", at);
	assert_advice("", msg, "user and password");
	snprintf(msg, sizeof(msg), "%sfe_sendauth: no password supplied", at);
	assert_advice("", msg, "user and password");
	snprintf(msg, sizeof(msg), "%sFATAL:  database \"nope\" does not exist", at);
	assert_advice("", msg, "database name");
	assert_advice("3D000", "database \"nope\" does not exist", "database name");
	snprintf(msg, sizeof(msg), "%sFATAL:  role \"nope\" does not exist", at);
	assert_advice("", msg, "user name");
	/* names the database, but the cause is pg_hba.conf */
	snprintf(msg, sizeof(msg),
		 "%sFATAL:  pg_hba.conf rejects connection for host \"127.0.0.1\", user \"u\", database \"d\", "
		 "no encryption",
		 at);
	assert_advice("", msg, "sslmode=require");
	snprintf(msg, sizeof(msg), "%sFATAL:  sorry, too many clients already", at);
	assert_advice("", msg, "lower jobs");
	snprintf(msg, sizeof(msg),
		 "%sFATAL:  remaining connection slots are reserved for non-replication superuser "
		 "connections",
		 at);
	assert_advice("", msg, "lower jobs");
	assert_advice("53300", "too many connections for role \"u\"", "lower jobs");
	snprintf(msg, sizeof(msg), "%sserver does not support SSL, but SSL was required", at);
	assert_advice("", msg, "sslmode");
	snprintf(msg, sizeof(msg), "%sConnection refused Is the server running on that host?", at);
	assert_advice("", msg, "host and port");
	assert_advice("", "could not translate host name \"nohost\" to address: Name or service not known",
		      "host and port");
	assert_advice("08006", "server closed the connection unexpectedly", "host and port");
	/* TLS: verify-full without a root certificate, a certificate for another name, a client key */
	snprintf(msg, sizeof(msg),
		 "%sroot certificate file \"/root/.postgresql/root.crt\" does not exist\nEither provide the file or "
		 "change sslmode to disable server certificate verification.",
		 at);
	assert_advice("", msg, "sslrootcert=");
	snprintf(msg, sizeof(msg), "%sserver certificate for \"db.example\" does not match host name \"10.0.0.5\"", at);
	assert_advice("", msg, "host name the certificate is for");
	snprintf(msg, sizeof(msg), "%scertificate present, but not private key file \"/x/client.key\"", at);
	assert_advice("", msg, "sslkey");
	/* a server that wants a client certificate (Heroku Shield): whether or not the 28000 came with it */
	snprintf(msg, sizeof(msg), "%sFATAL:  connection requires a valid client certificate", at);
	assert_advice("", msg, "sslcert=");
	assert_advice("28000", "connection requires a valid client certificate", "sslcert=");
	/* pgmoverd started with another user's HOME: libpq's default certificate there is not readable */
	snprintf(msg, sizeof(msg),
		 "%scould not open certificate file \"/root/.postgresql/postgresql.crt\": Permission denied", at);
	assert_advice("", msg, "its own user's HOME");

	/* the server's own hint wins; an unknown cause has no advice */
	ck_assert_ptr_null(advice("42501", "permission denied for table t", "ask the owner"));
	ck_assert_ptr_null(advice("23505", "duplicate key value violates unique constraint", NULL));
	ck_assert_ptr_null(advice("", "something else entirely", NULL));
	ck_assert_ptr_null(pgm_pg_error_advice(NULL));
}
END_TEST

Suite *
pgm_test_suite(void)
{
	Suite *s = suite_create("util");
	TCase *util = tcase_create("util");
	TCase *dsn = tcase_create("dsn");
	TCase *json = tcase_create("json");

	tcase_add_test(util, test_quote_ident);
	tcase_add_test(util, test_quote_literal);
	tcase_add_test(util, test_time_round_trip);
	tcase_add_test(util, test_time_malformed);
	tcase_add_test(util, test_name_valid);
	tcase_add_test(util, test_strings);
	suite_add_tcase(s, util);

	tcase_add_test(dsn, test_dsn_uri);
	tcase_add_test(dsn, test_dsn_keyvalue);
	tcase_add_test(dsn, test_dsn_invalid);
	tcase_add_test(dsn, test_dsn_masked);
	tcase_add_test(dsn, test_dsn_without_password);
	tcase_add_test(dsn, test_error_advice);
	suite_add_tcase(s, dsn);

	tcase_add_test(json, test_json_set);
	suite_add_tcase(s, json);
	return s;
}
