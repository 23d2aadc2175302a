/*
 * probe.c — one connection, one catalog query: what a DBA checks first
 * about a server before moving a database off it or onto it.
 */
#include "pipeline/probe.h"
#include "common/log.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

struct pgm_probe {
	pgm_pg_conn_t *conn;
	char *side;
	pgm_probe_cb cb;
	void *data;
};

static const char *probe_sql =
	"SELECT current_setting('server_version') AS server_version,"
	"       current_setting('server_version_num')::int AS server_version_num,"
	"       current_database() AS database,"
	"       pg_database_size(current_database()) AS database_size,"
	"       current_user AS \"user\","
	"       r.rolsuper AS superuser,"
	"       pg_has_role(current_user, 'pg_signal_backend', 'MEMBER') AS can_signal_backends,"
	"       d.datdba = r.oid AS owns_database,"
	"       pg_encoding_to_char(d.encoding) AS encoding,"
	"       d.datcollate AS lc_collate, d.datctype AS lc_ctype,"
	"       current_setting('wal_level') AS wal_level,"
	"       (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
	"         WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
	"           AND n.nspname !~ '^pg_toast'"
	"           AND NOT EXISTS (SELECT 1 FROM pg_depend dep WHERE dep.objid = c.oid"
	"                             AND dep.deptype = 'e')) AS user_tables,"
	"       current_setting('max_connections')::int AS max_connections,"
	"       (SELECT count(*) FROM pg_stat_activity WHERE datname IS NOT NULL) AS connections,"
	"       (SELECT count(*) FROM pg_largeobject_metadata) AS large_objects"
	"  FROM pg_database d, pg_roles r"
	" WHERE d.datname = current_database() AND r.rolname = current_user";

static void
probe_free(pgm_probe_t *p)
{
	free(p->side);
	free(p);
}

static void
probe_fail(pgm_probe_t *p, const char *what, const pgm_pg_error_t *err)
{
	pgm_probe_cb cb = p->cb;
	void *data = p->data;

	pgm_pg_close(p->conn);
	p->conn = NULL;
	cb(p, NULL, what, err, data);
	probe_free(p);
}

static void
on_probe_result(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	pgm_probe_t *p = data;
	cJSON *facts;
	char *what;
	pgm_probe_cb cb;
	void *cbdata;

	if (err) {
		what = pgm_asprintf("could not inspect the %s", p->side);
		probe_fail(p, what, err);
		free(what);
		return;
	}
	facts = cJSON_CreateObject();
	for (int col = 0; col < PQnfields(res); col++) {
		const char *name = PQfname(res, col);
		const char *v = pgm_pg_value(res, 0, col);
		Oid type = PQftype(res, col);

		if (v == NULL)
			cJSON_AddNullToObject(facts, name);
		else if (type == 16) /* bool */
			cJSON_AddBoolToObject(facts, name, v[0] == 't');
		else if (type == 20 || type == 23 || type == 21) /* int8, int4, int2 */
			cJSON_AddNumberToObject(facts, name, (double) strtoll(v, NULL, 10));
		else
			cJSON_AddStringToObject(facts, name, v);
	}
	cJSON_AddBoolToObject(facts, "tls", pgm_pg_ssl_in_use(conn));
	pgm_info("%s: PostgreSQL %s, database %s, %s bytes, TLS %s", p->side,
	         pgm_pg_value(res, 0, 0), pgm_pg_value(res, 0, 2), pgm_pg_value(res, 0, 3),
	         pgm_pg_ssl_in_use(conn) ? "on" : "off");
	cb = p->cb;
	cbdata = p->data;
	pgm_pg_close(p->conn);
	p->conn = NULL;
	cb(p, facts, NULL, NULL, cbdata);
	cJSON_Delete(facts);
	probe_free(p);
}

static void
on_probe_connect(pgm_pg_conn_t *conn, const pgm_pg_error_t *err, void *data)
{
	pgm_probe_t *p = data;

	if (err) {
		char *what = pgm_asprintf("could not connect to the %s", p->side);
		p->conn = NULL; /* pgasync closed it */
		probe_fail(p, what, err);
		free(what);
		return;
	}
	pgm_pg_query(conn, probe_sql, 0, NULL, on_probe_result, p);
}

pgm_probe_t *
pgm_probe_start(uv_loop_t *loop, const char *side, const char *dsn, int timeout_ms, pgm_probe_cb cb,
                void *data)
{
	pgm_probe_t *p = pgm_calloc(1, sizeof(*p));

	p->side = pgm_strdup(side);
	p->cb = cb;
	p->data = data;
	p->conn = pgm_pg_connect(loop, dsn, "pgmover probe", timeout_ms, on_probe_connect, p);
	return p;
}

void
pgm_probe_cancel(pgm_probe_t *p)
{
	if (p == NULL)
		return;
	pgm_pg_close(p->conn);
	probe_free(p);
}
