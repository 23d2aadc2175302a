/*
 * plan.c — the preflight. Two parts, kept apart so the deciding can be
 * tested without a server: gathering (one connection per side, catalog
 * queries and a short timed read, all read-only) and evaluating (a pure
 * function from the gathered facts to findings and a recommendation).
 */
#include "pipeline/plan/plan.h"
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "common/settings.h"
#include "pg/pgasync.h"

#include <stdlib.h>
#include <string.h>

/* ---- gathering ---- */

typedef struct plan_side plan_side_t;
typedef void (*side_handler)(plan_side_t *sd, const PGresult *res);

typedef struct plan_query {
	const char *sql;
	side_handler handle;
} plan_query_t;

struct plan_side {
	pgm_plan_t *plan;
	bool source;
	pgm_pg_conn_t *conn;
	cJSON *facts;
	const plan_query_t *queries;
	int next;
	bool done;
	int64_t read_started;
	int64_t read_bytes;
};

struct pgm_plan {
	uv_loop_t *loop;
	cJSON *options;
	bool no_read_sample;
	bool target_owned;
	char *method;
	plan_side_t sides[2];
	pgm_plan_cb cb;
	void *data;
	bool cancelled;
	uv_timer_t *finish; /* reports from a fresh stack */
};

static const char *facts_sql =
	"SELECT current_setting('server_version') AS server_version,"
	"       current_setting('server_version_num')::int AS server_version_num,"
	"       current_database() AS database,"
	"       pg_database_size(current_database()) AS database_size,"
	"       current_user AS \"user\","
	"       r.rolsuper AS superuser,"
	/* a logical slot needs REPLICATION (RDS: membership in rds_replication) */
	"       r.rolreplication OR EXISTS (SELECT 1 FROM pg_roles g WHERE g.rolname = 'rds_replication'"
	"                                    AND pg_has_role(current_user, g.oid, 'MEMBER')) AS replication,"
	"       pg_has_role(current_user, 'pg_signal_backend', 'MEMBER') AS can_signal_backends,"
	"       pg_has_role(current_user, d.datdba, 'MEMBER') AS owns_database,"
	"       has_database_privilege(current_database(), 'CREATE') AS can_create_schema,"
	"       pg_encoding_to_char(d.encoding) AS encoding,"
	"       d.datcollate AS lc_collate, d.datctype AS lc_ctype,"
	"       current_setting('wal_level') AS wal_level,"
	"       (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
	"         WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
	"           AND n.nspname !~ '^pg_toast' AND n.nspname !~ '^pg_temp_' AND n.nspname !~ '^pgmover_capture_'"
	"           AND NOT EXISTS (SELECT 1 FROM pg_depend dep WHERE dep.classid = 'pg_class'::regclass"
	"                             AND dep.objid = c.oid AND dep.deptype = 'e')) AS user_tables,"
	"       (SELECT count(*) FROM pg_largeobject_metadata) AS large_objects,"
	/* the rollback window publishes every table and may set its replica identity: the owner's right */
	"       (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
	"         WHERE c.relkind IN ('r', 'p') AND c.relpersistence = 'p'"
	"           AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_'"
	"           AND NOT pg_has_role(current_user, c.relowner, 'USAGE')) AS tables_not_owned,"
	/* the rollback window's replay disables the source's user triggers: the owner's right (replay.c) */
	"       (SELECT count(DISTINCT c.oid) FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid"
	"          JOIN pg_namespace n ON n.oid = c.relnamespace"
	"         WHERE NOT g.tgisinternal AND g.tgparentid = 0 AND g.tgenabled IN ('O', 'A')"
	"           AND g.tgname NOT LIKE 'pgmover\\_capture\\_%' AND n.nspname NOT LIKE 'pgmover\\_%'"
	"           AND n.nspname NOT IN ('pg_catalog', 'information_schema')) AS triggered_tables,"
	"       (SELECT count(DISTINCT c.oid) FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid"
	"          JOIN pg_namespace n ON n.oid = c.relnamespace"
	"         WHERE NOT g.tgisinternal AND g.tgparentid = 0 AND g.tgenabled IN ('O', 'A')"
	"           AND g.tgname NOT LIKE 'pgmover\\_capture\\_%' AND n.nspname NOT LIKE 'pgmover\\_%'"
	"           AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
	"           AND NOT pg_has_role(current_user, c.relowner, 'USAGE')) AS triggered_tables_not_owned,"
	"       current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int"
	"         - (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') AS connections_free,"
	"       r.rolconnlimit AS role_connection_limit,"
	"       (SELECT count(*) FROM pg_stat_activity WHERE usename = current_user) AS role_connections,"
	"       d.datconnlimit AS database_connection_limit,"
	"       (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()) AS database_connections,"
	"       CASE WHEN r.rolsuper OR pg_has_role(current_user, 'pg_read_all_settings', 'MEMBER')"
	"            THEN current_setting('shared_preload_libraries') END AS shared_preload_libraries,"
	/* what logical replication with pglogical needs (method pglogical) */
	"       current_setting('max_replication_slots')::int AS max_replication_slots,"
	"       (SELECT count(*) FROM pg_replication_slots) AS replication_slots_used,"
	"       current_setting('max_wal_senders')::int AS max_wal_senders,"
	"       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'walsender') AS wal_senders_used,"
	"       current_setting('max_worker_processes')::int AS max_worker_processes,"
	"       (SELECT count(*) FROM pg_stat_activity WHERE backend_type NOT IN ('client backend', 'walsender',"
	"          'walreceiver', 'autovacuum launcher', 'autovacuum worker', 'background writer', 'checkpointer',"
	"          'walwriter', 'archiver', 'startup', 'logger', 'standalone backend')) AS worker_processes_used,"
	/* hidden (NULL) from roles that may not read it, and absent before the 2026 fix */
	"       (SELECT setting FROM pg_settings WHERE name = 'output_plugin_libraries') AS output_plugin_libraries,"
	"       EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pglogical') AS pglogical_available,"
	"       (SELECT extversion FROM pg_extension WHERE extname = 'pglogical') AS pglogical_version,"
	/*
	 * an existing pglogical node of this database (CASE: the catalog may not
	 * exist); with the extension but no node, query_to_xml gives '', which is
	 * no XML document: NULL instead
	 */
	"       CASE WHEN to_regclass('pglogical.local_node') IS NULL THEN NULL"
	"            WHEN NOT has_table_privilege('pglogical.local_node', 'SELECT')"
	"              OR NOT has_table_privilege('pglogical.node', 'SELECT') THEN NULL"
	"            ELSE (xpath('/row/n/text()', nullif(query_to_xml('SELECT n.node_name AS n"
	"                   FROM pglogical.local_node l JOIN pglogical.node n ON n.node_id = l.node_id',"
	"                   false, true, '')::text, '')::xml))[1]::text"
	"       END AS pglogical_node"
	"  FROM pg_database d, pg_roles r"
	" WHERE d.datname = current_database() AND r.rolname = current_user";

#define USER_RELS                                                                                 \
	" FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"                          \
	" WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')"                            \
	"   AND n.nspname !~ '^pg_toast' AND n.nspname !~ '^pg_temp_'"                            \
	"   AND n.nspname !~ '^pgmover_capture_'"                                                 \
	"   AND NOT EXISTS (SELECT 1 FROM pg_depend dep WHERE dep.classid = 'pg_class'::regclass" \
	"                     AND dep.objid = c.oid AND dep.deptype = 'e')"

static const char *largest_sql =
	"SELECT n.nspname || '.' || c.relname, pg_total_relation_size(c.oid), greatest(c.reltuples, 0)::bigint,"
	"       EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'p'),"
	"       quote_ident(n.nspname) || '.' || quote_ident(c.relname),"
	"       has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'SELECT')" USER_RELS
	"   AND c.relkind = 'r' ORDER BY 2 DESC LIMIT 10";

/* relations, then large objects (lo_get() needs SELECT on each: its owner's, or a grant) */
static const char *unreadable_sql =
	"SELECT n.nspname || '.' || c.relname" USER_RELS "   AND c.relkind IN ('r', 'p', 'S', 'v', 'm')"
	"   AND NOT (has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'SELECT'))"
	" UNION ALL SELECT 'large object ' || m.oid FROM pg_largeobject_metadata m"
	"  WHERE NOT current_setting('lo_compat_privileges')::bool"
	"    AND NOT (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user)"
	"    AND NOT pg_has_role(m.lomowner, 'USAGE')"
	"    AND NOT EXISTS (SELECT 1 FROM aclexplode(m.lomacl) a WHERE a.privilege_type = 'SELECT'"
	"                      AND (a.grantee = 0 OR pg_has_role(a.grantee, 'USAGE')))"
	" ORDER BY 1";

/*
 * Tables whose policies apply to this role (FORCE ROW LEVEL SECURITY on its
 * own table, or row security on another role's): copy and verification run
 * with row_security = off, and such a table is an error there -- found here.
 */
static const char *rls_sql =
	"SELECT n.nspname || '.' || c.relname" USER_RELS "   AND c.relkind IN ('r', 'p') AND c.relrowsecurity"
	"   AND NOT (SELECT r.rolsuper OR r.rolbypassrls FROM pg_roles r WHERE r.rolname = current_user)"
	"   AND (c.relforcerowsecurity OR NOT pg_has_role(c.relowner, 'USAGE'))"
	" ORDER BY 1";

/* the triggers method puts triggers on every table: the role needs TRIGGER on each */
static const char *trigger_denied_sql =
	"SELECT n.nspname || '.' || c.relname" USER_RELS
	"   AND c.relkind = 'r' AND c.relpersistence <> 't' AND NOT has_table_privilege(c.oid, 'TRIGGER')"
	" ORDER BY 1";

static const char *nopk_sql = "SELECT n.nspname || '.' || c.relname" USER_RELS
			      "   AND c.relkind = 'r' AND NOT EXISTS (SELECT 1 FROM pg_constraint k"
			      "                                        WHERE k.conrelid = c.oid AND k.contype = 'p')"
			      " ORDER BY 1";

/*
 * Tables pglogical cannot replicate every change of: no replica identity
 * index (the primary key under REPLICA IDENTITY DEFAULT, or the USING INDEX
 * one) -- pglogical refuses them in a set that replicates UPDATE/DELETE --
 * and unlogged tables, which logical decoding does not see at all.
 */
static const char *identity_sql =
	"SELECT n.nspname || '.' || c.relname, c.relpersistence = 'u'" USER_RELS
	"   AND c.relkind = 'r' AND (c.relpersistence = 'u' OR NOT ("
	"        (c.relreplident = 'd' AND EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary))"
	"     OR (c.relreplident = 'i' AND EXISTS (SELECT 1 FROM pg_index i"
	"                                         WHERE i.indrelid = c.oid AND i.indisreplident))))"
	" ORDER BY 1";

static const char *extensions_sql = "SELECT e.extname, e.extversion, n.nspname FROM pg_extension e"
				    "  JOIN pg_namespace n ON n.oid = e.extnamespace ORDER BY 1";

static const char *existing_sql =
	"SELECT n.nspname || '.' || c.relname" USER_RELS "   AND c.relkind IN ('r', 'p') ORDER BY 1 LIMIT 21";

static const char *available_sql = "SELECT name, default_version FROM pg_available_extensions ORDER BY 1";

static void next_query(plan_side_t *sd);

/* a Unix socket, or the loopback: nothing the connection carries crosses a network */
static bool
host_is_local(const char *host)
{
	return host[0] == '/' || host[0] == '@' || strcmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 ||
	       strcmp(host, "::1") == 0;
}

static void
handle_facts(plan_side_t *sd, const PGresult *res)
{
	for (int col = 0; col < PQnfields(res); col++) {
		const char *name = PQfname(res, col);
		const char *v = pgm_pg_value(res, 0, col);
		Oid type = PQftype(res, col);

		if (v == NULL)
			pgm_json_set(sd->facts, name, cJSON_CreateNull());
		else if (type == 16) /* bool */
			pgm_json_set(sd->facts, name, cJSON_CreateBool(v[0] == 't'));
		else if (type == 20 || type == 23 || type == 21) /* int8, int4, int2 */
			pgm_json_set_num(sd->facts, name, (double) strtoll(v, NULL, 10));
		else
			pgm_json_set_str(sd->facts, name, v);
	}
	pgm_json_set(sd->facts, "tls", cJSON_CreateBool(pgm_pg_ssl_in_use(sd->conn)));
	{
		const char *host = pgm_pg_host(sd->conn);
		char *sslmode = pgm_pg_conn_option(sd->conn, "sslmode");

		pgm_json_set_str(sd->facts, "host", host);
		pgm_json_set(sd->facts, "local", cJSON_CreateBool(host_is_local(host)));
		pgm_json_set_str(sd->facts, "sslmode", sslmode ? sslmode : "prefer");
		free(sslmode);
	}
}

static void
handle_largest(plan_side_t *sd, const PGresult *res)
{
	cJSON *arr = cJSON_CreateArray();

	for (int r = 0; r < pgm_pg_ntuples(res); r++) {
		cJSON *t = cJSON_CreateObject();
		pgm_json_set_str(t, "table", pgm_pg_value(res, r, 0));
		pgm_json_set_num(t, "bytes", (double) pgm_pg_int64(res, r, 1, 0));
		pgm_json_set_num(t, "rows_estimate", (double) pgm_pg_int64(res, r, 2, 0));
		pgm_json_set(t, "primary_key", cJSON_CreateBool(pgm_pg_value(res, r, 3)[0] == 't'));
		pgm_json_set_str(t, "ident", pgm_pg_value(res, r, 4));
		pgm_json_set(t, "readable", cJSON_CreateBool(pgm_pg_value(res, r, 5)[0] == 't'));
		cJSON_AddItemToArray(arr, t);
	}
	pgm_json_set(sd->facts, "largest_tables", arr);
}

/* a list of names: the count, and the first 20 */
static void
set_name_list(plan_side_t *sd, const char *key, const PGresult *res)
{
	cJSON *o = cJSON_CreateObject();
	cJSON *names = cJSON_AddArrayToObject(o, "names");
	int n = pgm_pg_ntuples(res);

	pgm_json_set_num(o, "count", n);
	for (int r = 0; r < n && r < 20; r++)
		cJSON_AddItemToArray(names, cJSON_CreateString(pgm_pg_value(res, r, 0)));
	pgm_json_set(sd->facts, key, o);
}

static void
handle_unreadable(plan_side_t *sd, const PGresult *res)
{
	set_name_list(sd, "unreadable", res);
}

static void
handle_trigger_denied(plan_side_t *sd, const PGresult *res)
{
	set_name_list(sd, "trigger_denied", res);
}

static void
handle_rls(plan_side_t *sd, const PGresult *res)
{
	set_name_list(sd, "row_security_applies", res);
}

static void
handle_nopk(plan_side_t *sd, const PGresult *res)
{
	set_name_list(sd, "tables_without_primary_key", res);
}

/* the logged tables without a replica identity, and the unlogged ones */
static void
handle_identity(plan_side_t *sd, const PGresult *res)
{
	cJSON *lists[2] = {cJSON_CreateObject(), cJSON_CreateObject()};
	int counts[2] = {0, 0};

	for (int i = 0; i < 2; i++)
		cJSON_AddArrayToObject(lists[i], "names");
	for (int r = 0; r < pgm_pg_ntuples(res); r++) {
		int which = pgm_pg_value(res, r, 1)[0] == 't' ? 1 : 0;

		if (counts[which]++ < 20)
			cJSON_AddItemToArray(cJSON_GetObjectItem(lists[which], "names"),
					     cJSON_CreateString(pgm_pg_value(res, r, 0)));
	}
	for (int i = 0; i < 2; i++)
		pgm_json_set_num(lists[i], "count", counts[i]);
	pgm_json_set(sd->facts, "tables_without_replica_identity", lists[0]);
	pgm_json_set(sd->facts, "unlogged_tables", lists[1]);
}

static void
handle_extensions(plan_side_t *sd, const PGresult *res)
{
	cJSON *arr = cJSON_CreateArray();

	for (int r = 0; r < pgm_pg_ntuples(res); r++) {
		cJSON *e = cJSON_CreateObject();
		pgm_json_set_str(e, "name", pgm_pg_value(res, r, 0));
		pgm_json_set_str(e, "version", pgm_pg_value(res, r, 1));
		pgm_json_set_str(e, "schema", pgm_pg_value(res, r, 2));
		cJSON_AddItemToArray(arr, e);
	}
	pgm_json_set(sd->facts, "extensions", arr);
}

static void
handle_existing(plan_side_t *sd, const PGresult *res)
{
	set_name_list(sd, "existing_tables", res);
	/* the list is capped: the count is the facts' user_tables */
	pgm_json_set_num(cJSON_GetObjectItem(sd->facts, "existing_tables"), "count",
			 pgm_json_num(sd->facts, "user_tables", 0));
}

static void
handle_available(plan_side_t *sd, const PGresult *res)
{
	cJSON *arr = cJSON_CreateArray();

	for (int r = 0; r < pgm_pg_ntuples(res); r++)
		cJSON_AddItemToArray(arr, cJSON_CreateString(pgm_pg_value(res, r, 0)));
	pgm_json_set(sd->facts, "available_extensions", arr);
}

static const plan_query_t source_queries[] = {
	{NULL, handle_facts}, /* facts_sql: set at run time (string constants are not constant expressions) */
	{NULL, handle_largest},    {NULL, handle_unreadable},     {NULL, handle_nopk}, {NULL, handle_identity},
	{NULL, handle_extensions}, {NULL, handle_trigger_denied}, {NULL, handle_rls},  {NULL, NULL}};

static const plan_query_t target_queries[] = {{NULL, handle_facts},
					      {NULL, handle_extensions},
					      {NULL, handle_available},
					      {NULL, handle_existing},
					      {NULL, NULL}};

static const char *
query_sql(const plan_side_t *sd, int i)
{
	static const char *const *src[] = {&facts_sql,    &largest_sql,    &unreadable_sql,     &nopk_sql,
					   &identity_sql, &extensions_sql, &trigger_denied_sql, &rls_sql};
	static const char *const *dst[] = {&facts_sql, &extensions_sql, &available_sql, &existing_sql};

	return sd->source ? *src[i] : *dst[i];
}

static void
plan_free(pgm_plan_t *p)
{
	for (int i = 0; i < 2; i++) {
		pgm_pg_close(p->sides[i].conn);
		cJSON_Delete(p->sides[i].facts);
	}
	cJSON_Delete(p->options);
	free(p->method);
	free(p);
}

static void
finish_closed_cb(uv_handle_t *h)
{
	free(h);
}

static void
plan_report(uv_timer_t *t)
{
	pgm_plan_t *p = t->data;
	cJSON *gathered = cJSON_CreateObject();
	cJSON *report;

	uv_close((uv_handle_t *) p->finish, finish_closed_cb);
	p->finish = NULL;
	cJSON_AddItemToObject(gathered, "source", cJSON_Duplicate(p->sides[0].facts, 1));
	cJSON_AddItemToObject(gathered, "target", cJSON_Duplicate(p->sides[1].facts, 1));
	report = pgm_plan_evaluate_method(gathered, p->options, p->target_owned, p->method);
	cJSON_Delete(gathered);
	p->cb(p, report, p->data);
	cJSON_Delete(report);
	plan_free(p);
}

static void
side_done(plan_side_t *sd)
{
	pgm_plan_t *p = sd->plan;

	sd->done = true;
	pgm_pg_close(sd->conn);
	sd->conn = NULL;
	if (p->sides[0].done && p->sides[1].done && p->finish == NULL) {
		p->finish = pgm_malloc(sizeof(uv_timer_t));
		uv_timer_init(p->loop, p->finish);
		p->finish->data = p;
		uv_timer_start(p->finish, plan_report, 0, 0);
	}
}

static void
side_error(plan_side_t *sd, const char *what, const pgm_pg_error_t *err)
{
	cJSON *e = cJSON_CreateObject();

	pgm_json_set_str(e, "what", what);
	pgm_json_set_str(e, "message", err->message);
	if (err->detail)
		pgm_json_set_str(e, "detail", err->detail);
	if (err->hint || pgm_pg_error_advice(err))
		pgm_json_set_str(e, "hint", err->hint ? err->hint : pgm_pg_error_advice(err));
	if (err->sqlstate[0])
		pgm_json_set_str(e, "sqlstate", err->sqlstate);
	pgm_json_set(sd->facts, "error", e);
	side_done(sd);
}

/* the read sample: how fast one stream reads the largest table */
static void
on_sample(pgm_pg_conn_t *conn, const char *chunk, int len, const pgm_pg_error_t *err, void *data)
{
	plan_side_t *sd = data;
	cJSON *s;

	if (chunk) {
		sd->read_bytes += len;
		return;
	}
	if (err) {
		/* the sample is an estimate's input, not a check: note and go on */
		pgm_json_set_str(sd->facts, "read_sample_error", err->message);
		side_done(sd);
		return;
	}
	s = cJSON_CreateObject();
	pgm_json_set_num(s, "bytes", (double) sd->read_bytes);
	pgm_json_set_num(s, "ms", (double) (pgm_mono_ms() - sd->read_started));
	pgm_json_set(sd->facts, "read_sample", s);
	side_done(sd);
}

static void
start_sample(plan_side_t *sd)
{
	const cJSON *largest = cJSON_GetArrayItem(cJSON_GetObjectItem(sd->facts, "largest_tables"), 0);
	char *sql;

	if (sd->plan->no_read_sample) {
		/* the rehearsal right after times the whole copy: the sample's ~50 ms saved from the wait */
		pgm_json_set_str(sd->facts, "read_sample_skipped", "the rehearsal copy times the copy");
		side_done(sd);
		return;
	}
	if (largest == NULL || !cJSON_IsTrue(cJSON_GetObjectItem(largest, "readable"))) {
		side_done(sd);
		return;
	}
	/* up to 200 000 rows in binary: long enough to time, short enough for a preflight */
	sql = pgm_asprintf("COPY (SELECT * FROM %s LIMIT 200000) TO STDOUT (FORMAT binary)",
			   pgm_json_str(largest, "ident"));
	sd->read_started = pgm_mono_ms();
	pgm_pg_copy_out(sd->conn, sql, on_sample, sd);
	free(sql);
}

static void
on_query(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	plan_side_t *sd = data;

	if (err) {
		side_error(sd, sd->source ? "could not inspect the source" : "could not inspect the target", err);
		return;
	}
	sd->queries[sd->next - 1].handle(sd, res);
	next_query(sd);
}

static void
next_query(plan_side_t *sd)
{
	if (sd->queries[sd->next].handle == NULL) {
		if (sd->source)
			start_sample(sd);
		else
			side_done(sd);
		return;
	}
	pgm_pg_query(sd->conn, query_sql(sd, sd->next), 0, NULL, on_query, sd);
	sd->next++;
}

static void
on_session(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	plan_side_t *sd = data;

	if (err) {
		side_error(sd, sd->source ? "could not inspect the source" : "could not inspect the target", err);
		return;
	}
	next_query(sd);
}

static void
on_connect(pgm_pg_conn_t *conn, const pgm_pg_error_t *err, void *data)
{
	plan_side_t *sd = data;

	if (err) {
		sd->conn = NULL;
		side_error(sd, sd->source ? "could not connect to the source" : "could not connect to the target", err);
		return;
	}
	/* a preflight touches nothing: make that a property of the session */
	pgm_pg_query(conn, "SET default_transaction_read_only = on", 0, NULL, on_session, sd);
}

pgm_plan_t *
pgm_plan_start(uv_loop_t *loop, const pgm_plan_opts_t *o, pgm_plan_cb cb, void *data)
{
	pgm_plan_t *p = pgm_calloc(1, sizeof(*p));

	p->loop = loop;
	p->cb = cb;
	p->data = data;
	p->options = o->options ? cJSON_Duplicate(o->options, 1) : cJSON_CreateObject();
	p->target_owned = o->target_owned;
	p->method = o->method ? pgm_strdup(o->method) : NULL;
	p->no_read_sample = o->no_read_sample;
	for (int i = 0; i < 2; i++) {
		plan_side_t *sd = &p->sides[i];
		sd->plan = p;
		sd->source = i == 0;
		sd->facts = cJSON_CreateObject();
		sd->queries = sd->source ? source_queries : target_queries;
	}
	for (int i = 0; i < 2; i++) {
		plan_side_t *sd = &p->sides[i];
		if (sd->source && o->source == NULL) {
			/* a backup file: nothing to connect to; archive.c inspects it */
			pgm_json_set(sd->facts, "backup_file", cJSON_CreateTrue());
			side_done(sd);
			continue;
		}
		pgm_pg_net_t net;

		pgm_pg_net_from_options(p->options, false, &net);
		sd->conn = pgm_pg_connect(loop, sd->source ? o->source : o->target,
					  o->app_name ? o->app_name : "pgmover:plan", &net, on_connect, sd);
	}
	return p;
}

void
pgm_plan_cancel(pgm_plan_t *p)
{
	if (p == NULL)
		return;
	if (p->finish) {
		uv_timer_stop(p->finish);
		uv_close((uv_handle_t *) p->finish, finish_closed_cb);
	}
	plan_free(p);
}
