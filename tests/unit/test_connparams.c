/*
 * test_connparams.c
 *    Unit tests of the bounds on a connection's waits (src/pg/connparams.c)
 *    and of their job options: the keyword arrays libpq gets, checked as
 *    libpq itself merges them (PQconnectStartParams on a socket directory
 *    that does not exist, then PQconninfo), so that the user's connection
 *    string wins; the host name resolved on the loop; the SET of a bounded
 *    session; the conninfo of a pg_dump child; the options' validation.
 */
#include <check.h>
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "common/settings.h"
#include "pg/connparams.h"

/* the value libpq settled on for keyword, after merging the arrays (malloc'd, NULL unset) */
static char *
merged(const pgm_conn_kw_t *kw, const char *keyword)
{
	PGconn *pg = PQconnectStartParams(kw->keys, kw->vals, 1);
	PQconninfoOption *opts;
	char *v = NULL;

	ck_assert_ptr_nonnull(pg);
	opts = PQconninfo(pg);
	for (PQconninfoOption *o = opts; o && o->keyword; o++)
		if (strcmp(o->keyword, keyword) == 0 && o->val && o->val[0])
			v = strdup(o->val);
	PQconninfoFree(opts);
	PQfinish(pg);
	return v;
}

static void
assert_merged(const pgm_conn_kw_t *kw, const char *keyword, const char *want)
{
	char *v = merged(kw, keyword);

	if (want == NULL)
		ck_assert_msg(v == NULL, "%s = \"%s\", expected unset", keyword, v);
	else
		ck_assert_msg(v && strcmp(v, want) == 0, "%s = \"%s\", expected \"%s\"", keyword, v ? v : "(unset)",
			      want);
	free(v);
}

/* a socket directory that does not exist: libpq fails at once, without a network */
#define NOWHERE "host=/nonexistent/pgm port=1 dbname=db user=u"

START_TEST(test_defaults_reach_libpq)
{
	pgm_pg_net_t net;
	pgm_conn_kw_t kw;

	pgm_pg_net_from_options(NULL, false, &net);
	ck_assert_int_eq(net.connect_timeout_ms, 15000);
	ck_assert_int_eq(net.keepalives_idle_ms, 30000);
	ck_assert_int_eq(net.keepalives_interval_ms, 10000);
	ck_assert_int_eq(net.keepalives_count, 3);
	ck_assert_int_eq(net.tcp_user_timeout_ms, 60000);
	ck_assert(!net.bounded);
	pgm_conn_kw_build(&kw, NOWHERE, &net, "pgmover:t", NULL, NULL);
	assert_merged(&kw, "keepalives", "1");
	assert_merged(&kw, "keepalives_idle", "30");
	assert_merged(&kw, "keepalives_interval", "10");
	assert_merged(&kw, "keepalives_count", "3");
	assert_merged(&kw, "tcp_user_timeout", "60000");
	assert_merged(&kw, "connect_timeout", "15");
	assert_merged(&kw, "application_name", "pgmover:t");
	assert_merged(&kw, "dbname", "db");
	assert_merged(&kw, "options", NULL); /* the timeouts are SET, not sent at startup */
	pgm_conn_kw_free(&kw);
}
END_TEST

START_TEST(test_user_dsn_wins)
{
	pgm_pg_net_t net;
	pgm_conn_kw_t kw;

	pgm_pg_net_from_options(NULL, true, &net);
	pgm_conn_kw_build(&kw, NOWHERE " keepalives=0 keepalives_idle=99 tcp_user_timeout=5 connect_timeout=7", &net,
			  "pgmover:t", NULL, NULL);
	assert_merged(&kw, "keepalives", "0");
	assert_merged(&kw, "keepalives_idle", "99");
	assert_merged(&kw, "keepalives_interval", "10"); /* not in the string: ours */
	assert_merged(&kw, "tcp_user_timeout", "5");
	assert_merged(&kw, "connect_timeout", "7");
	pgm_conn_kw_free(&kw);

	/* a URI too */
	pgm_conn_kw_build(&kw, "postgresql://u@%2Fnonexistent%2Fpgm:1/db?keepalives_count=9", &net, NULL, NULL, NULL);
	assert_merged(&kw, "keepalives_count", "9");
	assert_merged(&kw, "keepalives_idle", "30");
	assert_merged(&kw, "application_name", "pgmover");
	pgm_conn_kw_free(&kw);
}
END_TEST

START_TEST(test_seconds_round_up)
{
	pgm_pg_net_t net = {0};
	pgm_conn_kw_t kw;

	net.keepalives_idle_ms = 1500;
	net.keepalives_interval_ms = 1000;
	net.keepalives_count = 2;
	net.tcp_user_timeout_ms = 3000;
	net.connect_timeout_ms = 500; /* libpq's least is 2 s; the loop enforces the 500 ms */
	pgm_conn_kw_build(&kw, NOWHERE, &net, NULL, NULL, NULL);
	assert_merged(&kw, "keepalives_idle", "2");
	assert_merged(&kw, "keepalives_interval", "1");
	assert_merged(&kw, "tcp_user_timeout", "3000");
	assert_merged(&kw, "connect_timeout", "2");
	pgm_conn_kw_free(&kw);

	/* tcp_user_timeout = 0: the kernel's default, no keyword */
	net.tcp_user_timeout_ms = 0;
	pgm_conn_kw_build(&kw, NOWHERE, &net, NULL, NULL, NULL);
	assert_merged(&kw, "tcp_user_timeout", NULL);
	pgm_conn_kw_free(&kw);
}
END_TEST

START_TEST(test_resolved_host)
{
	pgm_pg_net_t net;
	pgm_conn_kw_t kw;

	pgm_pg_net_from_options(NULL, false, &net);
	pgm_conn_kw_build(&kw, "postgresql://u@db.example.com:1/db?sslmode=verify-full", &net, NULL,
			  "db.example.com,db.example.com", "127.0.0.1,::1");
	/* host stays for TLS's name check; hostaddr is what libpq connects to, without a lookup */
	assert_merged(&kw, "host", "db.example.com,db.example.com");
	assert_merged(&kw, "hostaddr", "127.0.0.1,::1");
	assert_merged(&kw, "sslmode", "verify-full");
	pgm_conn_kw_free(&kw);
}
END_TEST

static void
assert_resolve(const char *dsn, const char *want)
{
	char *h = pgm_conn_host_to_resolve(dsn);

	if (want == NULL)
		ck_assert_msg(h == NULL, "%s: \"%s\" resolved, expected nothing", dsn, h);
	else
		ck_assert_msg(h && strcmp(h, want) == 0, "%s: \"%s\", expected \"%s\"", dsn, h ? h : "(none)", want);
	free(h);
}

START_TEST(test_host_to_resolve)
{
	assert_resolve("postgres://u:p@ec2-1-2-3-4.compute-1.amazonaws.com:5432/d?sslmode=require",
		       "ec2-1-2-3-4.compute-1.amazonaws.com");
	assert_resolve("host=localhost dbname=d", "localhost");
	assert_resolve("host=127.0.0.1 dbname=d", NULL);
	assert_resolve("postgresql://[::1]:5432/d", NULL);
	assert_resolve("host=/var/run/postgresql dbname=d", NULL);
	assert_resolve("host=db.example.com hostaddr=10.0.0.1 dbname=d", NULL); /* the user's hostaddr */
	assert_resolve("host=a.example.com,b.example.com dbname=d", NULL);      /* libpq's own list */
	assert_resolve("dbname=d", NULL);
	assert_resolve("not a conninfo = =", NULL);
}
END_TEST

START_TEST(test_bounds_sql)
{
	pgm_pg_net_t net;
	char *sql;

	pgm_pg_net_from_options(NULL, false, &net);
	ck_assert_ptr_null(pgm_conn_bounds_sql(NOWHERE, &net));
	ck_assert_int_eq(pgm_pg_net_silence_ms(&net), 0);
	pgm_pg_net_from_options(NULL, true, &net);
	sql = pgm_conn_bounds_sql(NOWHERE, &net);
	ck_assert_str_eq(sql, "SET statement_timeout = 900000; SET lock_timeout = 10000");
	free(sql);
	/* statement_timeout, then the keepalives' time to find a dead peer: 900 + 30 + 3 * 10 s */
	ck_assert_int_eq(pgm_pg_net_silence_ms(&net), 960000);
	/* the string's own options win */
	sql = pgm_conn_bounds_sql(NOWHERE " options='-c statement_timeout=5s'", &net);
	ck_assert_str_eq(sql, "SET lock_timeout = 10000");
	free(sql);
	sql = pgm_conn_bounds_sql(NOWHERE " options='-c lock_timeout=1s -c statement_timeout=5s'", &net);
	ck_assert_ptr_null(sql);
	/* statement_timeout = 0: no bound, and no silence bound either */
	net.statement_timeout_ms = 0;
	ck_assert_int_eq(pgm_pg_net_silence_ms(&net), 0);
}
END_TEST

START_TEST(test_child_conninfo)
{
	pgm_pg_net_t net;
	char *ci;

	pgm_pg_net_from_options(NULL, false, &net);
	ci = pgm_conn_child_conninfo("postgres://u:secret@db.example.com:6543/d?keepalives_idle=99&sslmode=require",
				     &net);
	ck_assert_ptr_nonnull(ci);
	ck_assert_msg(strstr(ci, "secret") == NULL, "the password reached a child's command line: %s", ci);
	ck_assert_msg(strstr(ci, "host='db.example.com'") && strstr(ci, "port='6543'") &&
			      strstr(ci, "sslmode='require'"),
		      "%s", ci);
	ck_assert_msg(strstr(ci, "keepalives_idle='99'") && !strstr(ci, "keepalives_idle='30'"), "%s", ci);
	ck_assert_msg(strstr(ci, "keepalives='1'") && strstr(ci, "keepalives_interval='10'") &&
			      strstr(ci, "keepalives_count='3'") && strstr(ci, "tcp_user_timeout='60000'") &&
			      strstr(ci, "connect_timeout='15'"),
		      "%s", ci);
	/* libpq reads it back as one connection */
	{
		char *err = NULL;
		PQconninfoOption *o = PQconninfoParse(ci, &err);

		ck_assert_msg(o != NULL, "%s: %s", ci, err ? err : "");
		PQconninfoFree(o);
	}
	free(ci);
	ck_assert_ptr_null(pgm_conn_child_conninfo("host='unterminated", &net));
}
END_TEST

/* value canonical as canon, or refused with err containing want_err */
static void
assert_option(const char *name, const char *value, const char *canon, const char *want_err)
{
	const pgm_opt_def_t *def = pgm_opt_find(pgm_job_opts, name);
	char *c = NULL, *err = NULL;
	bool ok;

	ck_assert_msg(def != NULL, "no job option %s", name);
	ok = pgm_opt_validate(def, value, &c, &err);
	if (canon) {
		ck_assert_msg(ok && strcmp(c, canon) == 0, "%s = %s: %s", name, value, ok ? c : err);
	} else {
		ck_assert_msg(!ok, "%s = %s accepted as %s", name, value, c);
		ck_assert_msg(strstr(err, want_err) && strstr(err, name), "%s = %s: %s", name, value, err);
	}
	free(c);
	free(err);
}

START_TEST(test_options_validated)
{
	assert_option("keepalives_idle", "30s", "30000ms", NULL);
	assert_option("keepalives_idle", "500ms", NULL, "out of range"); /* libpq counts whole seconds */
	assert_option("keepalives_interval", "2min", "120000ms", NULL);
	assert_option("keepalives_interval", "soon", NULL, "expected a duration");
	assert_option("keepalives_count", "3", "3", NULL);
	assert_option("keepalives_count", "0", NULL, "out of range");
	assert_option("keepalives_count", "3s", NULL, "expected an integer");
	assert_option("tcp_user_timeout", "0", "0ms", NULL);
	assert_option("tcp_user_timeout", "2h", NULL, "out of range");
	assert_option("statement_timeout", "15min", "900000ms", NULL);
	assert_option("statement_timeout", "0", "0ms", NULL);
	assert_option("statement_timeout", "-1s", NULL, "expected a duration");
	assert_option("lock_timeout", "10s", "10000ms", NULL);
	assert_option("freeze_timeout", "1h", "3600000ms", NULL);
	assert_option("freeze_timeout", "0", NULL, "out of range"); /* the freeze is always bounded */
	assert_option("freeze_timeout", "8d", NULL, "out of range");
	assert_option("connect_timeout", "3s", "3000ms", NULL);
	ck_assert_int_eq(pgm_jobopt_int(NULL, "freeze_timeout"), 3600000);
	ck_assert_int_eq(pgm_jobopt_int(NULL, "statement_timeout"), 900000);
	ck_assert_int_eq(pgm_jobopt_int(NULL, "lock_timeout"), 10000);
}
END_TEST

START_TEST(test_job_options_reach_net)
{
	cJSON *o = cJSON_CreateObject();
	pgm_pg_net_t net;

	cJSON_AddStringToObject(o, "keepalives_idle", "1000ms");
	cJSON_AddStringToObject(o, "keepalives_interval", "1000ms");
	cJSON_AddStringToObject(o, "keepalives_count", "2");
	cJSON_AddStringToObject(o, "tcp_user_timeout", "3000ms");
	cJSON_AddStringToObject(o, "statement_timeout", "4000ms");
	cJSON_AddStringToObject(o, "lock_timeout", "500ms");
	cJSON_AddStringToObject(o, "connect_timeout", "2000ms");
	pgm_pg_net_from_options(o, true, &net);
	ck_assert(net.bounded);
	ck_assert_int_eq(net.statement_timeout_ms, 4000);
	ck_assert_int_eq(net.lock_timeout_ms, 500);
	ck_assert_int_eq(net.connect_timeout_ms, 2000);
	ck_assert_int_eq(pgm_pg_net_silence_ms(&net), 4000 + 1000 + 2 * 1000);
	cJSON_Delete(o);
}
END_TEST

Suite *
pgm_test_suite(void)
{
	Suite *s = suite_create("connparams");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_defaults_reach_libpq);
	tcase_add_test(tc, test_user_dsn_wins);
	tcase_add_test(tc, test_seconds_round_up);
	tcase_add_test(tc, test_resolved_host);
	tcase_add_test(tc, test_host_to_resolve);
	tcase_add_test(tc, test_bounds_sql);
	tcase_add_test(tc, test_child_conninfo);
	tcase_add_test(tc, test_options_validated);
	tcase_add_test(tc, test_job_options_reach_net);
	suite_add_tcase(s, tc);
	return s;
}
