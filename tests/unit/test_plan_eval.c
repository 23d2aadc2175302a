/*
 * test_plan_eval.c — the preflight's decisions (src/pipeline/plan/plan_eval.c)
 * from fixtures of gathered facts: each blocker gives an error with a fix,
 * and the recommendation follows the size and what the source allows.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "daemon/config.h"
#include "pipeline/plan/plan.h"

/* a healthy Heroku-like source and an empty target */
static cJSON *
fixture(void)
{
	const char *text =
		"{\"source\": {\"server_version\": \"15.20\", \"server_version_num\": 150020, \"database\": \"appdb\","
		"  \"database_size\": 1000000000, \"user\": \"app_owner\", \"superuser\": false,"
		"  \"can_signal_backends\": true, \"owns_database\": true, \"encoding\": \"UTF8\","
		"  \"lc_collate\": \"en_US.UTF-8\", \"lc_ctype\": \"en_US.UTF-8\", \"wal_level\": \"replica\","
		"  \"user_tables\": 3, \"large_objects\": 0, \"connections_free\": 15, \"role_connection_limit\": -1,"
		"  \"role_connections\": 1, \"database_connection_limit\": -1, \"database_connections\": 1,"
		"  \"shared_preload_libraries\": null, \"tls\": true,"
		"  \"largest_tables\": [{\"table\": \"public.orders\", \"bytes\": 800000000}],"
		"  \"unreadable\": {\"count\": 0, \"names\": []},"
		"  \"tables_without_primary_key\": {\"count\": 0, \"names\": []},"
		"  \"extensions\": [{\"name\": \"plpgsql\", \"version\": \"1.0\", \"schema\": \"pg_catalog\"},"
		"                  {\"name\": \"pgcrypto\", \"version\": \"1.3\", \"schema\": \"heroku_ext\"}],"
		"  \"read_sample\": {\"bytes\": 20971520, \"ms\": 200}},"
		" \"target\": {\"server_version\": \"16.4\", \"server_version_num\": 160004, \"database\": \"app\","
		"  \"user\": \"admin\", \"superuser\": true, \"encoding\": \"UTF8\", \"lc_collate\": \"en_US.UTF-8\","
		"  \"wal_level\": \"logical\", \"replication\": false, \"max_replication_slots\": 10,"
		"  \"replication_slots_used\": 0,"
		"  \"lc_ctype\": \"en_US.UTF-8\", \"user_tables\": 0, \"connections_free\": 90,"
		"  \"role_connection_limit\": -1, \"database_connection_limit\": -1, \"tls\": false,"
		"  \"host\": \"127.0.0.1\", \"local\": true, \"sslmode\": \"prefer\","
		"  \"available_extensions\": [\"plpgsql\", \"pgcrypto\", \"uuid-ossp\"]}}";

	return cJSON_Parse(text);
}

static cJSON *
options(const char *key, const char *value)
{
	cJSON *given = cJSON_CreateObject(), *opts;
	char *err = NULL;

	if (key)
		cJSON_AddStringToObject(given, key, value);
	opts = pgm_job_options_build(NULL, given, &err);
	cJSON_Delete(given);
	ck_assert_ptr_nonnull(opts);
	return opts;
}

/* the finding of a check, or NULL */
static const cJSON *
finding(const cJSON *report, const char *check)
{
	const cJSON *f;

	cJSON_ArrayForEach (f, cJSON_GetObjectItem(report, "findings")) {
		if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(f, "check")), check) == 0)
			return f;
	}
	return NULL;
}

static const char *
status_of(const cJSON *report, const char *check)
{
	const cJSON *f = finding(report, check);

	return f ? cJSON_GetStringValue(cJSON_GetObjectItem(f, "status")) : "(missing)";
}

static cJSON *
evaluate(cJSON *g, cJSON *opts, bool owned)
{
	cJSON *r = pgm_plan_evaluate(g, opts, owned);

	cJSON_Delete(g);
	cJSON_Delete(opts);
	return r;
}

START_TEST(test_healthy_pair)
{
	cJSON *r = evaluate(fixture(), options(NULL, NULL), false);

	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")));
	ck_assert_int_eq((int) cJSON_GetNumberValue(cJSON_GetObjectItem(r, "errors")), 0);
	ck_assert_str_eq(status_of(r, "server versions"), "ok");
	ck_assert_str_eq(status_of(r, "TLS to the source"), "ok");
	ck_assert_str_eq(status_of(r, "TLS to the target"), "ok"); /* on the loopback */
	ck_assert_str_eq(status_of(r, "source privileges: freeze"), "ok");
	ck_assert_str_eq(status_of(r, "extensions: heroku_ext"), "info");
	ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "recommendation"), "method")),
			 "dump");
	/* 20 MiB in 200 ms = 100 MiB/s; 1 GB over 2 streams is about 4.8 s */
	ck_assert_double_eq_tol(
		cJSON_GetNumberValue(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "estimate"), "copy_seconds")),
		1000000000.0 / (104857600.0 * 2), 0.01);
	cJSON_Delete(r);
}
END_TEST

START_TEST(test_blockers)
{
	cJSON *g = fixture();
	cJSON *src = cJSON_GetObjectItem(g, "source"), *dst = cJSON_GetObjectItem(g, "target");
	cJSON *r;

	cJSON_ReplaceItemInObject(dst, "server_version_num", cJSON_CreateNumber(140010));
	cJSON_ReplaceItemInObject(dst, "user_tables", cJSON_CreateNumber(2));
	cJSON_ReplaceItemInObject(dst, "encoding", cJSON_CreateString("LATIN1"));
	cJSON_ReplaceItemInObject(dst, "available_extensions", cJSON_Parse("[\"plpgsql\"]"));
	cJSON_ReplaceItemInObject(src, "owns_database", cJSON_CreateFalse());
	cJSON_ReplaceItemInObject(src, "unreadable", cJSON_Parse("{\"count\": 1, \"names\": [\"x.secret\"]}"));
	cJSON_AddItemToObject(src, "row_security_applies", cJSON_Parse("{\"count\": 1, \"names\": [\"x.notes\"]}"));
	cJSON_ReplaceItemInObject(src, "tls", cJSON_CreateFalse());
	cJSON_ReplaceItemInObject(src, "connections_free", cJSON_CreateNumber(2));
	r = evaluate(g, options(NULL, NULL), false);

	ck_assert(!cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")));
	ck_assert_str_eq(status_of(r, "server versions"), "error");
	ck_assert_str_eq(status_of(r, "target empty"), "error");
	ck_assert_str_eq(status_of(r, "encoding"), "error");
	ck_assert_str_eq(status_of(r, "extension pgcrypto"), "error");
	ck_assert_str_eq(status_of(r, "source privileges: read"), "error");
	ck_assert_str_eq(status_of(r, "source privileges: freeze"), "error");
	ck_assert_str_eq(status_of(r, "source privileges: row-level security"), "error");
	ck_assert_ptr_nonnull(strstr(cJSON_GetStringValue(cJSON_GetObjectItem(
					     finding(r, "source privileges: row-level security"), "finding")),
				     "x.notes"));
	ck_assert_str_eq(status_of(r, "TLS to the source"), "warning");
	ck_assert_str_eq(status_of(r, "source connections"), "error");
	ck_assert_ptr_nonnull(
		strstr(cJSON_GetStringValue(cJSON_GetObjectItem(finding(r, "source privileges: read"), "finding")),
		       "x.secret"));
	/* every error says what to do */
	{
		const cJSON *f;
		cJSON_ArrayForEach (f, cJSON_GetObjectItem(r, "findings")) {
			if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(f, "status")), "error") == 0)
				ck_assert_ptr_nonnull(cJSON_GetStringValue(cJSON_GetObjectItem(f, "fix")));
		}
	}
	ck_assert_int_eq((int) cJSON_GetNumberValue(cJSON_GetObjectItem(r, "errors")), 8);
	cJSON_Delete(r);
}
END_TEST

/* the target gets every row: over a network, in clear is a warning; unchecked certificates are said */
START_TEST(test_target_tls)
{
	static const struct {
		bool tls, local;
		const char *sslmode, *status, *words;
	} cases[] = {
		{false, false, "disable", "warning", "in clear"},
		{false, false, "prefer", "warning", "Heroku Shield"},
		{true, false, "require", "info", "certificate is not checked"},
		{true, false, "verify-full", "ok", "certificate checked"},
		{false, true, "disable", "ok", "on this machine"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cJSON *g = fixture(), *dst = cJSON_GetObjectItem(g, "target"), *r;
		const cJSON *f;

		cJSON_ReplaceItemInObject(dst, "tls", cJSON_CreateBool(cases[i].tls));
		cJSON_ReplaceItemInObject(dst, "local", cJSON_CreateBool(cases[i].local));
		cJSON_ReplaceItemInObject(dst, "host",
					  cJSON_CreateString(cases[i].local ? "/run/postgresql" : "db.internal"));
		cJSON_ReplaceItemInObject(dst, "sslmode", cJSON_CreateString(cases[i].sslmode));
		r = evaluate(g, options(NULL, NULL), false);
		f = finding(r, "TLS to the target");
		ck_assert_msg(f != NULL, "case %zu: no TLS finding", i);
		ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(f, "status")), cases[i].status);
		ck_assert_msg(strstr(cJSON_GetStringValue(cJSON_GetObjectItem(f, "finding")), cases[i].words),
			      "case %zu: %s", i, cJSON_GetStringValue(cJSON_GetObjectItem(f, "finding")));
		if (strcmp(cases[i].status, "ok") != 0)
			ck_assert_ptr_nonnull(
				strstr(cJSON_GetStringValue(cJSON_GetObjectItem(f, "fix")), "verify-full"));
		/* a warning does not block */
		ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")));
		cJSON_Delete(r);
	}
}
END_TEST

/*
 * What the cutover will need is seen before the freeze: the rollback
 * window's logical slot on the target, and something that moves traffic.
 */
START_TEST(test_cutover_needs)
{
	cJSON *g, *dst, *r;

	/* the healthy pair: the window is possible; no switch is a warning, not a blocker */
	r = evaluate(fixture(), options(NULL, NULL), false);
	ck_assert_str_eq(status_of(r, "rollback window"), "ok");
	ck_assert_str_eq(status_of(r, "traffic switch"), "warning");
	ck_assert_ptr_nonnull(strstr(cJSON_GetStringValue(cJSON_GetObjectItem(finding(r, "traffic switch"), "fix")),
				     "--no-traffic-switch"));
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")));
	cJSON_Delete(r);
	r = evaluate(fixture(), options("cutover_command", "/usr/local/bin/switch-dns"), false);
	ck_assert_str_eq(status_of(r, "traffic switch"), "ok");
	cJSON_Delete(r);

	/* a managed target: not a superuser, wal_level = replica, no REPLICATION, every slot taken */
	g = fixture();
	dst = cJSON_GetObjectItem(g, "target");
	cJSON_ReplaceItemInObject(dst, "superuser", cJSON_CreateFalse());
	cJSON_ReplaceItemInObject(dst, "wal_level", cJSON_CreateString("replica"));
	cJSON_ReplaceItemInObject(dst, "replication_slots_used", cJSON_CreateNumber(10));
	r = evaluate(g, options(NULL, NULL), false);
	ck_assert(!cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")));
	ck_assert_str_eq(status_of(r, "rollback window: wal_level"), "error");
	ck_assert_ptr_nonnull(
		strstr(cJSON_GetStringValue(cJSON_GetObjectItem(finding(r, "rollback window: wal_level"), "finding")),
		       "wal_level = replica"));
	ck_assert_ptr_nonnull(
		strstr(cJSON_GetStringValue(cJSON_GetObjectItem(finding(r, "rollback window: wal_level"), "fix")),
		       "rollback_window=0"));
	ck_assert_str_eq(status_of(r, "rollback window: privileges"), "error");
	ck_assert_str_eq(status_of(r, "rollback window: replication slots"), "error");
	ck_assert_ptr_null(finding(r, "rollback window"));
	cJSON_Delete(r);

	/* without a window nothing is needed */
	g = fixture();
	dst = cJSON_GetObjectItem(g, "target");
	cJSON_ReplaceItemInObject(dst, "wal_level", cJSON_CreateString("replica"));
	r = evaluate(g, options("rollback_window", "0"), false);
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")));
	ck_assert_str_eq(status_of(r, "rollback window"), "info");
	ck_assert_str_eq(status_of(r, "rollback window: wal_level"), "(missing)");
	cJSON_Delete(r);
}
END_TEST

/*
 * Unlogged tables on the source are not carried back by the rollback
 * window: a warning naming them (not a blocker), and none without a window.
 */
START_TEST(test_rollback_unlogged)
{
	cJSON *g = fixture(), *u = cJSON_CreateObject(), *names = cJSON_AddArrayToObject(u, "names"), *r;
	const char *text;

	cJSON_AddItemToArray(names, cJSON_CreateString("public.sessions"));
	cJSON_AddNumberToObject(u, "count", 1);
	cJSON_AddItemToObject(cJSON_GetObjectItem(g, "source"), "unlogged_tables", cJSON_Duplicate(u, 1));
	r = evaluate(g, options(NULL, NULL), false);
	ck_assert_str_eq(status_of(r, "rollback window: unlogged tables"), "warning");
	text = cJSON_GetStringValue(cJSON_GetObjectItem(finding(r, "rollback window: unlogged tables"), "finding"));
	ck_assert_ptr_nonnull(strstr(text, "public.sessions"));
	ck_assert_ptr_nonnull(strstr(text, "not carried back"));
	ck_assert_ptr_nonnull(
		strstr(cJSON_GetStringValue(cJSON_GetObjectItem(finding(r, "rollback window: unlogged tables"), "fix")),
		       "--accept-loss"));
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")));
	cJSON_Delete(r);
	/* no window, nothing to carry back */
	g = fixture();
	cJSON_AddItemToObject(cJSON_GetObjectItem(g, "source"), "unlogged_tables", u);
	r = evaluate(g, options("rollback_window", "0"), false);
	ck_assert_str_eq(status_of(r, "rollback window: unlogged tables"), "(missing)");
	cJSON_Delete(r);
	/* none unlogged: no finding */
	r = evaluate(fixture(), options(NULL, NULL), false);
	ck_assert_str_eq(status_of(r, "rollback window: unlogged tables"), "(missing)");
	cJSON_Delete(r);
}
END_TEST

/* a managed target's role (RDS, Cloud SQL): not a superuser, it owns the database and its tables */
static cJSON *
managed_target(void)
{
	cJSON *g = fixture(), *dst = cJSON_GetObjectItem(g, "target");

	cJSON_ReplaceItemInObject(dst, "superuser", cJSON_CreateFalse());
	cJSON_ReplaceItemInObject(dst, "replication", cJSON_CreateTrue());
	cJSON_AddTrueToObject(dst, "owns_database");
	cJSON_AddTrueToObject(dst, "can_create_schema");
	cJSON_AddTrueToObject(dst, "can_signal_backends");
	cJSON_AddNumberToObject(dst, "tables_not_owned", 0);
	return g;
}

/*
 * What the rollback window needs of a target role that is not a superuser,
 * each checked on its own: REPLICATION (or rds_replication), CREATE on the
 * database (the publication), every table its own (the publication FOR
 * TABLE, the replica identities), the database its own (the target's
 * freeze at rollback), and pg_signal_backend (that freeze ends sessions).
 */
START_TEST(test_rollback_managed_target)
{
	static const struct {
		const char *key, *check, *status, *words;
	} missing[] = {
		{"replication", "rollback window: privileges", "error", "REPLICATION"},
		{"can_create_schema", "rollback window: publication", "error", "CREATE PUBLICATION"},
		{"tables_not_owned", "rollback window: table owner", "error", "not owned by role admin"},
		{"owns_database", "rollback window: target freeze", "error", "does not own database app"},
		{"can_signal_backends", "rollback window: target freeze", "warning", "end other roles' sessions"},
	};
	cJSON *g, *r;

	r = evaluate(managed_target(), options(NULL, NULL), false);
	ck_assert_str_eq(status_of(r, "rollback window"), "ok");
	ck_assert_ptr_nonnull(
		strstr(cJSON_GetStringValue(cJSON_GetObjectItem(finding(r, "rollback window"), "finding")),
		       "not a superuser"));
	for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++)
		ck_assert_str_eq(status_of(r, missing[i].check), "(missing)");
	cJSON_Delete(r);
	for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++) {
		const cJSON *f;
		bool blocks = strcmp(missing[i].status, "error") == 0;

		g = managed_target();
		cJSON_ReplaceItemInObject(cJSON_GetObjectItem(g, "target"), missing[i].key,
					  strcmp(missing[i].key, "tables_not_owned") == 0 ? cJSON_CreateNumber(3)
											  : cJSON_CreateFalse());
		r = evaluate(g, options(NULL, NULL), false);
		f = finding(r, missing[i].check);
		ck_assert_msg(f != NULL, "%s: no finding %s", missing[i].key, missing[i].check);
		ck_assert_str_eq(status_of(r, missing[i].check), missing[i].status);
		ck_assert_msg(strstr(cJSON_GetStringValue(cJSON_GetObjectItem(f, "finding")), missing[i].words),
			      "%s: %s", missing[i].key, cJSON_GetStringValue(cJSON_GetObjectItem(f, "finding")));
		ck_assert_ptr_nonnull(cJSON_GetStringValue(cJSON_GetObjectItem(f, "fix")));
		/* an error blocks the plan and the window is not "ok"; a warning leaves both */
		ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")) == !blocks);
		ck_assert(finding(r, "rollback window") == NULL || !blocks);
		cJSON_Delete(r);
	}
	/* a superuser needs none of them */
	g = fixture();
	r = evaluate(g, options(NULL, NULL), false);
	for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++)
		ck_assert_str_eq(status_of(r, missing[i].check), "(missing)");
	cJSON_Delete(r);
}
END_TEST

/*
 * The source's user triggers: disabled for the rollback window's replay,
 * which needs their owner: info when the role owns them, an error when
 * it does not, nothing without triggers or without a window.
 */
START_TEST(test_source_triggers)
{
	cJSON *g, *r;
	const cJSON *f;

	r = evaluate(fixture(), options(NULL, NULL), false);
	ck_assert_str_eq(status_of(r, "rollback window: source triggers"), "(missing)");
	cJSON_Delete(r);
	g = fixture();
	cJSON_AddNumberToObject(cJSON_GetObjectItem(g, "source"), "triggered_tables", 2);
	r = evaluate(g, options(NULL, NULL), false);
	ck_assert_str_eq(status_of(r, "rollback window: source triggers"), "info");
	cJSON_Delete(r);
	g = fixture();
	cJSON_AddNumberToObject(cJSON_GetObjectItem(g, "source"), "triggered_tables", 2);
	cJSON_AddNumberToObject(cJSON_GetObjectItem(g, "source"), "triggered_tables_not_owned", 1);
	r = evaluate(g, options(NULL, NULL), false);
	ck_assert_str_eq(status_of(r, "rollback window: source triggers"), "error");
	f = finding(r, "rollback window: source triggers");
	ck_assert_ptr_nonnull(
		strstr(cJSON_GetStringValue(cJSON_GetObjectItem(f, "finding")), "not owned by role app_owner"));
	ck_assert(!cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")));
	cJSON_Delete(r);
	g = fixture();
	cJSON_AddNumberToObject(cJSON_GetObjectItem(g, "source"), "triggered_tables", 2);
	cJSON_AddNumberToObject(cJSON_GetObjectItem(g, "source"), "triggered_tables_not_owned", 1);
	r = evaluate(g, options("rollback_window", "0"), false);
	ck_assert_str_eq(status_of(r, "rollback window: source triggers"), "(missing)");
	cJSON_Delete(r);
}
END_TEST

START_TEST(test_options_change_findings)
{
	cJSON *g = fixture(), *r;

	cJSON_ReplaceItemInObject(cJSON_GetObjectItem(g, "target"), "user_tables", cJSON_CreateNumber(2));
	r = evaluate(g, options("overwrite_target", "on"), false);
	ck_assert_str_eq(status_of(r, "target empty"), "warning");
	cJSON_Delete(r);

	g = fixture();
	cJSON_ReplaceItemInObject(cJSON_GetObjectItem(g, "target"), "user_tables", cJSON_CreateNumber(2));
	r = evaluate(g, options(NULL, NULL), true);
	ck_assert_str_eq(status_of(r, "target empty"), "ok");
	cJSON_Delete(r);

	/* freeze by command only: owning the database no longer matters */
	g = fixture();
	cJSON_ReplaceItemInObject(cJSON_GetObjectItem(g, "source"), "owns_database", cJSON_CreateFalse());
	r = evaluate(g, options("freeze_mode", "command"), false);
	ck_assert_str_ne(status_of(r, "source privileges: freeze"), "error");
	cJSON_Delete(r);

	/* a role connection limit counts */
	g = fixture();
	cJSON_ReplaceItemInObject(cJSON_GetObjectItem(g, "source"), "role_connection_limit", cJSON_CreateNumber(3));
	r = evaluate(g, options("jobs", "4"), false);
	ck_assert_str_eq(status_of(r, "source connections"), "error");
	cJSON_Delete(r);
}
END_TEST

/* the triggers method: version, privileges, large objects, tables without a key */
START_TEST(test_triggers_checks)
{
	cJSON *g = fixture(), *src = cJSON_GetObjectItem(g, "source"), *r, *opts = options(NULL, NULL);

	cJSON_AddItemToObject(src, "can_create_schema", cJSON_CreateTrue());
	cJSON_AddItemToObject(src, "trigger_denied", cJSON_Parse("{\"count\": 0, \"names\": []}"));
	r = pgm_plan_evaluate_method(g, opts, false, "triggers");
	ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(r, "method")), "triggers");
	ck_assert_str_eq(status_of(r, "triggers: privileges"), "ok");
	ck_assert_ptr_null(finding(r, "triggers: source version"));
	ck_assert_ptr_null(finding(r, "triggers: schema"));
	cJSON_Delete(r);

	cJSON_ReplaceItemInObject(src, "server_version_num", cJSON_CreateNumber(120015));
	cJSON_ReplaceItemInObject(src, "can_create_schema", cJSON_CreateFalse());
	cJSON_ReplaceItemInObject(src, "trigger_denied",
				  cJSON_Parse("{\"count\": 2, \"names\": [\"public.a\", \"x.b\"]}"));
	cJSON_ReplaceItemInObject(src, "large_objects", cJSON_CreateNumber(1));
	cJSON_ReplaceItemInObject(src, "tables_without_primary_key",
				  cJSON_Parse("{\"count\": 1, \"names\": [\"public.log\"]}"));
	r = pgm_plan_evaluate_method(g, opts, false, "triggers");
	ck_assert_str_eq(status_of(r, "triggers: source version"), "error");
	ck_assert_str_eq(status_of(r, "triggers: schema"), "error");
	ck_assert_str_eq(status_of(r, "triggers: privileges"), "error");
	ck_assert_ptr_nonnull(
		strstr(cJSON_GetStringValue(cJSON_GetObjectItem(finding(r, "triggers: privileges"), "finding")),
		       "public.a, x.b"));
	ck_assert_str_eq(status_of(r, "large objects"), "error");
	ck_assert_str_eq(status_of(r, "triggers: tables without a key"), "info");
	ck_assert_ptr_nonnull(strstr(
		cJSON_GetStringValue(cJSON_GetObjectItem(finding(r, "triggers: tables without a key"), "finding")),
		"public.log"));
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(r, "ok")));
	cJSON_Delete(r);
	cJSON_Delete(opts);
	cJSON_Delete(g);
}
END_TEST

START_TEST(test_unreachable_and_recommendations)
{
	cJSON *g = fixture(), *r, *opts;

	cJSON_ReplaceItemInObject(g, "target",
				  cJSON_Parse("{\"error\": {\"what\": \"could not connect to the target\","
					      " \"message\": \"Connection refused\"}}"));
	r = evaluate(g, options(NULL, NULL), false);
	ck_assert_str_eq(status_of(r, "target reachable"), "error");
	ck_assert_ptr_null(finding(r, "server versions")); /* needs both sides */
	cJSON_Delete(r);

	/*
	 * big and logical-capable: pglogical; big on Heroku: triggers when the owner may
	 * capture (a schema, triggers on every table), else dump with a long freeze
	 */
	g = fixture();
	cJSON_ReplaceItemInObject(cJSON_GetObjectItem(g, "source"), "database_size", cJSON_CreateNumber(50e9));
	r = evaluate(cJSON_Duplicate(g, 1), options(NULL, NULL), false);
	ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "recommendation"), "method")),
			 "dump");
	cJSON_Delete(r);
	cJSON_AddItemToObject(cJSON_GetObjectItem(g, "source"), "can_create_schema", cJSON_CreateTrue());
	r = evaluate(cJSON_Duplicate(g, 1), options(NULL, NULL), false);
	ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "recommendation"), "method")),
			 "triggers");
	ck_assert_ptr_nonnull(strstr(
		cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "recommendation"), "why")), "Heroku"));
	cJSON_Delete(r);
	cJSON_ReplaceItemInObject(cJSON_GetObjectItem(g, "source"), "superuser", cJSON_CreateTrue());
	cJSON_ReplaceItemInObject(cJSON_GetObjectItem(g, "source"), "wal_level", cJSON_CreateString("logical"));
	cJSON_ReplaceItemInObject(cJSON_GetObjectItem(g, "source"), "shared_preload_libraries",
				  cJSON_CreateString("pglogical"));
	r = evaluate(cJSON_Duplicate(g, 1), options(NULL, NULL), false);
	ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "recommendation"), "method")),
			 "pglogical");
	cJSON_Delete(r);

	/* large objects: logical replication does not carry them, so dump, and pglogical is an error */
	cJSON_ReplaceItemInObject(cJSON_GetObjectItem(g, "source"), "large_objects", cJSON_CreateNumber(3));
	r = evaluate(cJSON_Duplicate(g, 1), options(NULL, NULL), false);
	ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "recommendation"), "method")),
			 "dump");
	ck_assert_str_eq(status_of(r, "large objects"), "info");
	cJSON_Delete(r);
	opts = options(NULL, NULL);
	r = pgm_plan_evaluate_method(g, opts, false, "pglogical");
	cJSON_Delete(opts);
	ck_assert_str_eq(status_of(r, "large objects"), "error");
	ck_assert_ptr_nonnull(
		strstr(cJSON_GetStringValue(cJSON_GetObjectItem(finding(r, "large objects"), "fix")), "--method dump"));
	ck_assert(!cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")));
	cJSON_Delete(r);
	cJSON_Delete(g);
}
END_TEST

Suite *
pgm_test_suite(void)
{
	Suite *s = suite_create("plan_eval");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_healthy_pair);
	tcase_add_test(tc, test_blockers);
	tcase_add_test(tc, test_target_tls);
	tcase_add_test(tc, test_cutover_needs);
	tcase_add_test(tc, test_rollback_managed_target);
	tcase_add_test(tc, test_rollback_unlogged);
	tcase_add_test(tc, test_options_change_findings);
	tcase_add_test(tc, test_source_triggers);
	tcase_add_test(tc, test_unreachable_and_recommendations);
	tcase_add_test(tc, test_triggers_checks);
	suite_add_tcase(s, tc);
	return s;
}
