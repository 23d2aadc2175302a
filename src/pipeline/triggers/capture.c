/*
 * capture.c — the triggers method's change capture on the source: install
 * and remove, with the database owner's privileges only (CREATE on the
 * database, owner of the tables, PL/pgSQL).
 *
 * Installed, in this order, each recorded in the job's artifacts before it
 * is made: the schema pgmover_capture_<job> with its registry of captured
 * tables (keyed by the table's OID) and a log of TRUNCATEs; then, 100
 * tables at a time, a log table and a trigger function per table, and the
 * table's triggers. A table with a key gets statement-level triggers with
 * transition tables that log the keys a statement touched; a partition or
 * an inheritance child (where transition tables are not allowed) and a
 * table without a key get row-level triggers; a table without a key logs
 * row images (to_jsonb of OLD and NEW). Every table gets a TRUNCATE trigger.
 *
 * CREATE TRIGGER takes a SHARE ROW EXCLUSIVE lock, which waits behind a
 * running anti-wraparound VACUUM or a long transaction and would then block
 * the application behind it: each table's triggers are made in one short
 * transaction with lock_timeout = 1s, retried every second, and a warning
 * names what holds the table; after TRG_LOCK_TRIES the step fails saying so.
 *
 * Removal drops each table's triggers in its own short transaction the same
 * way, then the schema (its log tables and functions go with it).
 */
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "fsm/artifact.h"
#include "pipeline/triggers/triggers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TRG_BATCH 100     /* tables recorded as one artifact */
#define TRG_LOCK_TRIES 60 /* one second each */

/* ---- names ---- */

/* the job name in the characters an unquoted identifier allows, at most len */
static char *
job_tag(const pgm_job_t *job, size_t len)
{
	char *t = pgm_asprintf("%.*s", (int) len, job->name);

	for (char *p = t; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
			*p = (*p >= 'A' && *p <= 'Z') ? (char) (*p - 'A' + 'a') : '_';
	return t;
}

char *
trg_schema(const pgm_job_t *job)
{
	char *tag = job_tag(job, 63 - strlen("pgmover_capture_"));
	char *s = pgm_asprintf("pgmover_capture_%s", tag);

	free(tag);
	return s;
}

char *
trg_schema_q(const pgm_job_t *job)
{
	char *s = trg_schema(job), *q = pgm_quote_ident(s);

	free(s);
	return q;
}

void
trg_tables_free(trg_table_t *t, int n)
{
	for (int i = 0; i < n; i++) {
		free(t[i].ident);
		free(t[i].name);
		free(t[i].cols);
		free(t[i].keycols);
		free(t[i].fp);
		free(t[i].sel);
		free(t[i].keyjoin);
		free(t[i].rsel);
	}
	free(t);
}

/*
 * The tables in scope, the copy engine's: ordinary tables (leaves of
 * partitioned ones) that are not temporary, not an extension's and not
 * pgmover's. The key is the primary key, else the replica identity index,
 * else a unique index on NOT NULL columns (no expression, no predicate).
 * The fingerprint covers every column's name, type, nullability and
 * generation, so that ALTER TABLE during the job is seen.
 */
const char *const trg_scope_sql =
	"WITH t AS ("
	" SELECT c.oid AS relid, quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS ident,"
	"        n.nspname || '.' || c.relname AS name,"
	"        (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) FROM pg_attribute a"
	"          WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '') AS cols,"
	"        md5(coalesce((SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod)"
	"                                         || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END"
	"                                         || ' ' || a.attgenerated::text, ',' ORDER BY a.attnum)"
	"                        FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0"
	"                         AND NOT a.attisdropped), '')) AS fp,"
	"        (SELECT i.indexrelid FROM pg_index i"
	"          WHERE i.indrelid = c.oid AND i.indisvalid AND i.indimmediate AND i.indpred IS NULL"
	"            AND i.indexprs IS NULL AND (i.indisprimary OR i.indisreplident OR (i.indisunique AND NOT EXISTS"
	"                (SELECT 1 FROM unnest(i.indkey::int2[]) k JOIN pg_attribute a"
	"                    ON a.attrelid = c.oid AND a.attnum = k WHERE NOT a.attnotnull)))"
	"          ORDER BY i.indisprimary DESC, i.indisreplident DESC, i.indexrelid LIMIT 1) AS keyidx,"
	"        (c.relispartition OR EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = c.oid)) AS child"
	"   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
	"  WHERE c.relkind = 'r' AND c.relpersistence <> 't'"
	"    AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
	"    AND n.nspname !~ '^pg_toast' AND n.nspname !~ '^pg_temp_' AND n.nspname !~ '^pgmover_capture_'"
	"    AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass"
	"                      AND d.objid = c.oid AND d.deptype = 'e'))"
	" SELECT relid, ident, name, cols, fp,"
	"        (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY k.o)"
	"           FROM pg_index i, unnest(i.indkey::int2[]) WITH ORDINALITY k(att, o)"
	"           JOIN pg_attribute a ON a.attrelid = t.relid AND a.attnum = k.att"
	"          WHERE i.indexrelid = t.keyidx) AS keycols,"
	"        child,"
	"        (SELECT string_agg('OLD.' || quote_ident(a.attname), ', ' ORDER BY k.o)"
	"           FROM pg_index i, unnest(i.indkey::int2[]) WITH ORDINALITY k(att, o)"
	"           JOIN pg_attribute a ON a.attrelid = t.relid AND a.attnum = k.att"
	"          WHERE i.indexrelid = t.keyidx) AS keyold,"
	"        (SELECT string_agg(CASE WHEN a.attnum = ANY (i.indkey::int2[]) THEN 'l.' ELSE 't.' END"
	"                           || quote_ident(a.attname), ', ' ORDER BY a.attnum)"
	"           FROM pg_index i, pg_attribute a"
	"          WHERE i.indexrelid = t.keyidx AND a.attrelid = t.relid AND a.attnum > 0 AND NOT a.attisdropped"
	"            AND a.attgenerated = '') AS sel,"
	"        (SELECT string_agg('t.' || quote_ident(a.attname) || ' = l.' || quote_ident(a.attname), ' AND '"
	"                           ORDER BY k.o)"
	"           FROM pg_index i, unnest(i.indkey::int2[]) WITH ORDINALITY k(att, o)"
	"           JOIN pg_attribute a ON a.attrelid = t.relid AND a.attnum = k.att"
	"          WHERE i.indexrelid = t.keyidx) AS keyjoin,"
	"        (SELECT string_agg('r.' || quote_ident(a.attname), ', ' ORDER BY a.attnum) FROM pg_attribute a"
	"          WHERE a.attrelid = t.relid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '') AS rsel"
	"   FROM t ORDER BY relid";

/* ---- install ---- */

typedef struct cap {
	pgm_step_t *step;
	pgm_pg_conn_t *conn;
	void (*then)(pgm_step_t *s);
	char *schema, *qs, *tag;
	int n; /* tables in scope */
	int64_t *relid;
	char **ident, **name, **cols, **keycols, **fp;
	char **keyold;                 /* "OLD.a, OLD.b": the key in a row trigger */
	char **sel, **keyjoin, **rsel; /* for the apply: see apply.c */
	bool *child;
	int next;      /* the next table to equip */
	int batch_end; /* the current batch's recorded tables end here */
	cJSON *batch;  /* its artifact */
	int tries;     /* lock timeouts of the current table */
	int64_t started;
} cap_t;

static void
cap_free(void *p)
{
	cap_t *c = p;

	for (int i = 0; i < c->n; i++) {
		free(c->ident[i]);
		free(c->name[i]);
		free(c->cols[i]);
		free(c->keycols[i]);
		free(c->fp[i]);
		free(c->keyold[i]);
		free(c->sel[i]);
		free(c->keyjoin[i]);
		free(c->rsel[i]);
	}
	free(c->keyold);
	free(c->sel);
	free(c->keyjoin);
	free(c->rsel);
	free(c->relid);
	free(c->ident);
	free(c->name);
	free(c->cols);
	free(c->keycols);
	free(c->fp);
	free(c->child);
	free(c->schema);
	free(c->qs);
	free(c->tag);
	free(c);
}

static void
cap_fail(cap_t *c, const char *what, const pgm_pg_error_t *err)
{
	pgm_step_fail_pg(c->step, what, err,
			 "connect as the database owner (it needs CREATE on the database and the TRIGGER "
			 "privilege on every table), then \"pgmover retry\"");
}

static void cap_next_table(cap_t *c);

static void
cap_done(cap_t *c)
{
	pgm_step_t *s = c->step;
	void (*then)(pgm_step_t *) = c->then;
	cJSON *f = pgm_json_obj(s->job->facts, "triggers");

	pgm_json_set_num(f, "tables", c->n);
	pgm_json_set_num(f, "install_ms", (double) (pgm_mono_ms() - c->started));
	pgm_json_set_str(f, "schema", c->schema);
	/* every table has its triggers: a removal, even a partial one, clears this */
	pgm_json_set(f, "capture_complete", cJSON_CreateTrue());
	pgm_job_checkpoint(s->job);
	pgm_notice("job %s: change capture installed on %d table(s) of the source in %.1f s", s->job->name, c->n,
		   (double) (pgm_mono_ms() - c->started) / 1000.0);
	pgm_step_close_conn(s, c->conn);
	pgm_step_disown(s, c);
	cap_free(c);
	then(s);
}

/* the DDL of table i: log table, function, registry row (no lock on the table beyond reading it) */
static char *
table_ddl(cap_t *c, int i)
{
	const char *qs = c->qs;
	long long r = (long long) c->relid[i];
	pgm_buf_t b = {0};
	char *lit_ident = pgm_quote_literal(c->ident[i]), *lit_name = pgm_quote_literal(c->name[i]);
	char *lit_cols = pgm_quote_literal(c->cols[i] ? c->cols[i] : "");
	char *lit_fp = pgm_quote_literal(c->fp[i]);
	char *lit_key = c->keycols[i] ? pgm_quote_literal(c->keycols[i]) : pgm_strdup("NULL");

	if (c->keycols[i]) {
		const char *k = c->keycols[i];

		pgm_buf_appendf(&b, "CREATE TABLE IF NOT EXISTS %s.k%lld AS SELECT %s FROM %s WITH NO DATA;", qs, r, k,
				c->ident[i]);
		pgm_buf_appendf(&b,
				"ALTER TABLE %s.k%lld ADD COLUMN IF NOT EXISTS pgm_xid xid8 NOT NULL DEFAULT "
				"pg_catalog.pg_current_xact_id(), ADD COLUMN IF NOT EXISTS pgm_at timestamptz NOT NULL "
				"DEFAULT pg_catalog.now();",
				qs, r);
		if (c->child[i]) {
			/* a row trigger: OLD.a, OLD.b and NEW.a, NEW.b */
			char *ko = c->keyold[i], *kn = pgm_strdup(ko);

			for (char *p = strstr(kn, "OLD."); p; p = strstr(p + 4, "OLD."))
				memcpy(p, "NEW.", 4);
			pgm_buf_appendf(
				&b,
				"CREATE OR REPLACE FUNCTION %s.c%lld() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER"
				" AS $pgmf$ BEGIN"
				" IF TG_OP <> 'INSERT' THEN INSERT INTO %s.k%lld (%s) VALUES (%s); END IF;"
				" IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND ROW(%s) IS DISTINCT FROM ROW(%s)) THEN"
				"   INSERT INTO %s.k%lld (%s) VALUES (%s); END IF;"
				" RETURN NULL; END $pgmf$;",
				qs, r, qs, r, k, ko, ko, kn, qs, r, k, kn);
			free(kn);
		} else
			pgm_buf_appendf(
				&b,
				"CREATE OR REPLACE FUNCTION %s.c%lld() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER"
				" AS $pgmf$ BEGIN"
				" IF TG_OP = 'INSERT' THEN INSERT INTO %s.k%lld (%s) SELECT %s FROM pgm_new;"
				" ELSIF TG_OP = 'UPDATE' THEN INSERT INTO %s.k%lld (%s)"
				"   SELECT %s FROM pgm_old UNION SELECT %s FROM pgm_new;"
				" ELSE INSERT INTO %s.k%lld (%s) SELECT %s FROM pgm_old; END IF;"
				" RETURN NULL; END $pgmf$;",
				qs, r, qs, r, k, k, qs, r, k, k, k, qs, r, k, k);
	} else {
		pgm_buf_appendf(&b,
				"CREATE TABLE IF NOT EXISTS %s.r%lld (op \"char\" NOT NULL, old jsonb, new jsonb,"
				" pgm_xid xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id(),"
				" pgm_at timestamptz NOT NULL DEFAULT pg_catalog.now());",
				qs, r);
		pgm_buf_appendf(
			&b,
			"CREATE OR REPLACE FUNCTION %s.c%lld() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER"
			" AS $pgmf$ BEGIN"
			" INSERT INTO %s.r%lld (op, old, new) VALUES (pg_catalog.left(TG_OP, 1),"
			"   CASE WHEN TG_OP <> 'INSERT' THEN pg_catalog.to_jsonb(OLD) END,"
			"   CASE WHEN TG_OP <> 'DELETE' THEN pg_catalog.to_jsonb(NEW) END);"
			" RETURN NULL; END $pgmf$;",
			qs, r, qs, r);
	}
	{
		char *lsel = c->sel[i] ? pgm_quote_literal(c->sel[i]) : pgm_strdup("NULL");
		char *ljoin = c->keyjoin[i] ? pgm_quote_literal(c->keyjoin[i]) : pgm_strdup("NULL");
		char *lrsel = c->rsel[i] ? pgm_quote_literal(c->rsel[i]) : pgm_strdup("NULL");

		pgm_buf_appendf(&b,
				"INSERT INTO %s.tables (relid, ident, name, cols, keycols, fp, sel, keyjoin, rsel)"
				" VALUES (%lld, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (relid) DO NOTHING;",
				qs, r, lit_ident, lit_name, lit_cols, lit_key, lit_fp, lsel, ljoin, lrsel);
		free(lsel);
		free(ljoin);
		free(lrsel);
	}
	free(lit_ident);
	free(lit_name);
	free(lit_cols);
	free(lit_fp);
	free(lit_key);
	return b.s;
}

/* the triggers of table i, in one short transaction that gives up on a lock after 1 s */
static char *
trigger_ddl(cap_t *c, int i)
{
	const char *qs = c->qs, *t = c->ident[i], *tag = c->tag;
	long long r = (long long) c->relid[i];
	pgm_buf_t b = {0};

	pgm_buf_appendf(&b,
			"DO $pgm$ BEGIN SET LOCAL lock_timeout = '1s';"
			" IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger WHERE tgrelid = %lld"
			"                  AND tgname = '" TRG_TRIGGER_PREFIX "t_%s') THEN",
			r, tag);
	if (c->keycols[i] && !c->child[i]) {
		pgm_buf_appendf(
			&b,
			" CREATE TRIGGER " TRG_TRIGGER_PREFIX "i_%s AFTER INSERT ON %s REFERENCING NEW TABLE AS pgm_new"
			"   FOR EACH STATEMENT EXECUTE FUNCTION %s.c%lld();"
			" CREATE TRIGGER " TRG_TRIGGER_PREFIX "u_%s AFTER UPDATE ON %s REFERENCING OLD TABLE AS pgm_old"
			"   NEW TABLE AS pgm_new FOR EACH STATEMENT EXECUTE FUNCTION %s.c%lld();"
			" CREATE TRIGGER " TRG_TRIGGER_PREFIX "d_%s AFTER DELETE ON %s REFERENCING OLD TABLE AS pgm_old"
			"   FOR EACH STATEMENT EXECUTE FUNCTION %s.c%lld();",
			tag, t, qs, r, tag, t, qs, r, tag, t, qs, r);
	} else {
		pgm_buf_appendf(&b,
				" CREATE TRIGGER " TRG_TRIGGER_PREFIX "r_%s AFTER INSERT OR UPDATE OR DELETE ON %s"
				"   FOR EACH ROW EXECUTE FUNCTION %s.c%lld();",
				tag, t, qs, r);
	}
	/* the TRUNCATE trigger last: its presence says the table is done */
	pgm_buf_appendf(&b,
			" CREATE TRIGGER " TRG_TRIGGER_PREFIX "t_%s AFTER TRUNCATE ON %s FOR EACH STATEMENT"
			"   EXECUTE FUNCTION %s.trunc();"
			" END IF; END $pgm$",
			tag, t, qs);
	return b.s;
}

static void cap_triggers(cap_t *c);

static void
retry_triggers(uv_timer_t *t)
{
	cap_triggers(t->data);
}

/* who holds a lock on the table: named in the warning */
static void
on_blockers(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	cap_t *c = data;
	uv_timer_t *t;
	char *msg;

	msg = pgm_asprintf("CREATE TRIGGER on %s waits for a lock held by %s; retrying every second (%d of %d)",
			   c->name[c->next],
			   !err && pgm_pg_value(res, 0, 0) ? pgm_pg_value(res, 0, 0) : "another session", c->tries,
			   TRG_LOCK_TRIES);
	if (c->tries >= TRG_LOCK_TRIES) {
		pgm_step_fail(c->step, msg, NULL,
			      "end or wait out the session that holds the table (an anti-wraparound VACUUM must not be "
			      "cancelled: wait for it), then \"pgmover retry\"");
		free(msg);
		return;
	}
	if (c->tries == 1 || c->tries % 10 == 0)
		pgm_job_warn(c->step->job, msg,
			     "pgmover waits at most 1 s at a time, so the application is not blocked "
			     "behind it; end the blocking session to let the capture start");
	pgm_info("job %s: %s", c->step->job->name, msg);
	free(msg);
	t = pgm_step_timer(c->step);
	t->data = c;
	uv_timer_start(t, retry_triggers, 1000, 0);
}

static void
on_triggers(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	cap_t *c = data;

	if (err && strcmp(err->sqlstate, "55P03") == 0) {
		char rel[32];
		const char *params[1] = {rel};

		c->tries++;
		snprintf(rel, sizeof(rel), "%lld", (long long) c->relid[c->next]);
		pgm_pg_query(c->conn,
			     "SELECT string_agg(DISTINCT format('pid %s (%s, %s, for %s: %s)', a.pid,"
			     "         coalesce(nullif(a.usename, ''), a.backend_type), a.state,"
			     "         date_trunc('second', now() - coalesce(a.xact_start, a.backend_start)),"
			     "         left(a.query, 80)), '; ')"
			     "  FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
			     " WHERE l.relation = $1::oid AND l.granted AND l.pid <> pg_backend_pid()",
			     1, params, on_blockers, c);
		return;
	}
	if (err) {
		char *what = pgm_asprintf("could not create the capture triggers on %s", c->name[c->next]);
		cap_fail(c, what, err);
		free(what);
		return;
	}
	c->tries = 0;
	c->next++;
	cap_next_table(c);
}

static void
cap_triggers(cap_t *c)
{
	char *sql = trigger_ddl(c, c->next);

	pgm_pg_query(c->conn, sql, 0, NULL, on_triggers, c);
	free(sql);
}

static void
on_table_ddl(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	cap_t *c = data;

	if (err) {
		char *what = pgm_asprintf("could not create the change log of %s", c->name[c->next]);
		cap_fail(c, what, err);
		free(what);
		return;
	}
	cap_triggers(c);
}

/* equip the next table; a batch of TRG_BATCH is recorded before its first one */
static void
cap_next_table(cap_t *c)
{
	pgm_job_t *job = c->step->job;
	char *sql;

	if (c->next == c->batch_end && c->batch) {
		pgm_artifact_created(job, c->batch);
		c->batch = NULL;
	}
	if (c->next >= c->n) {
		cap_done(c);
		return;
	}
	if (c->batch == NULL) {
		cJSON *extra = cJSON_CreateObject(), *ids = cJSON_CreateArray();
		char name[32];

		c->batch_end = c->next + TRG_BATCH < c->n ? c->next + TRG_BATCH : c->n;
		for (int i = c->next; i < c->batch_end; i++)
			cJSON_AddItemToArray(ids, cJSON_CreateNumber((double) c->relid[i]));
		pgm_json_set(extra, "tables", ids);
		pgm_json_set_str(extra, "trigger_prefix", TRG_TRIGGER_PREFIX);
		snprintf(name, sizeof(name), "%d-%d", c->next, c->batch_end - 1);
		c->batch = pgm_artifact_record(job, TRG_KIND_TRIGGERS, "source", name, PGM_ART_CREATING, extra);
		if (c->batch == NULL) {
			pgm_step_fail_unsaved(c->step, "the capture triggers");
			return;
		}
	}
	sql = table_ddl(c, c->next);
	pgm_pg_query(c->conn, sql, 0, NULL, on_table_ddl, c);
	free(sql);
}

static void
on_schema_made(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	cap_t *c = data;
	cJSON *a = pgm_artifact_find(c->step->job, TRG_KIND_SCHEMA, "source", c->schema);

	if (err) {
		cap_fail(c, "could not create pgmover's schema on the source", err);
		return;
	}
	if (a && pgm_artifact_status(a) == PGM_ART_CREATING)
		pgm_artifact_created(c->step->job, a);
	c->next = 0;
	cap_next_table(c);
}

static void
on_scope(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	cap_t *c = data;
	pgm_job_t *job = c->step->job;
	cJSON *a;
	char *sql, *lit;

	if (err) {
		cap_fail(c, "could not list the tables of the source", err);
		return;
	}
	c->n = pgm_pg_ntuples(res);
	c->relid = pgm_calloc((size_t) c->n + 1, sizeof(int64_t));
	c->ident = pgm_calloc((size_t) c->n + 1, sizeof(char *));
	c->name = pgm_calloc((size_t) c->n + 1, sizeof(char *));
	c->cols = pgm_calloc((size_t) c->n + 1, sizeof(char *));
	c->keycols = pgm_calloc((size_t) c->n + 1, sizeof(char *));
	c->fp = pgm_calloc((size_t) c->n + 1, sizeof(char *));
	c->child = pgm_calloc((size_t) c->n + 1, sizeof(bool));
	c->keyold = pgm_calloc((size_t) c->n + 1, sizeof(char *));
	c->sel = pgm_calloc((size_t) c->n + 1, sizeof(char *));
	c->keyjoin = pgm_calloc((size_t) c->n + 1, sizeof(char *));
	c->rsel = pgm_calloc((size_t) c->n + 1, sizeof(char *));
	for (int i = 0; i < c->n; i++) {
		c->relid[i] = pgm_pg_int64(res, i, 0, 0);
		c->ident[i] = pgm_strdup(pgm_pg_value(res, i, 1));
		c->name[i] = pgm_strdup(pgm_pg_value(res, i, 2));
		c->cols[i] = pgm_pg_value(res, i, 3) ? pgm_strdup(pgm_pg_value(res, i, 3)) : NULL;
		c->fp[i] = pgm_strdup(pgm_pg_value(res, i, 4));
		c->keycols[i] = pgm_pg_value(res, i, 5) ? pgm_strdup(pgm_pg_value(res, i, 5)) : NULL;
		c->child[i] = strcmp(pgm_pg_value(res, i, 6), "t") == 0;
		c->keyold[i] = pgm_pg_value(res, i, 7) ? pgm_strdup(pgm_pg_value(res, i, 7)) : NULL;
		c->sel[i] = pgm_pg_value(res, i, 8) ? pgm_strdup(pgm_pg_value(res, i, 8)) : NULL;
		c->keyjoin[i] = pgm_pg_value(res, i, 9) ? pgm_strdup(pgm_pg_value(res, i, 9)) : NULL;
		c->rsel[i] = pgm_pg_value(res, i, 10) ? pgm_strdup(pgm_pg_value(res, i, 10)) : NULL;
	}
	/* the schema first: recorded, then made (idempotent) */
	a = pgm_artifact_find(job, TRG_KIND_SCHEMA, "source", c->schema);
	if (a == NULL || !pgm_artifact_live(a)) {
		a = pgm_artifact_record(job, TRG_KIND_SCHEMA, "source", c->schema, PGM_ART_CREATING, NULL);
		if (a == NULL) {
			pgm_step_fail_unsaved(c->step, "pgmover's schema on the source");
			return;
		}
	}
	{
		char *comment =
			pgm_asprintf("pgmover: change capture of job %s (triggers method); dropped when the job "
				     "finishes, aborts or fails",
				     job->name);
		lit = pgm_quote_literal(comment);
		free(comment);
	}
	sql = pgm_asprintf(
		"CREATE SCHEMA IF NOT EXISTS %s;"
		"COMMENT ON SCHEMA %s IS %s;"
		"CREATE TABLE IF NOT EXISTS %s.tables (relid oid PRIMARY KEY, ident text NOT NULL, name text NOT NULL,"
		" cols text, keycols text, fp text NOT NULL, sel text, keyjoin text, rsel text);"
		"CREATE TABLE IF NOT EXISTS %s.truncates (relid oid NOT NULL,"
		" pgm_xid xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id(),"
		" pgm_at timestamptz NOT NULL DEFAULT pg_catalog.now());"
		"CREATE OR REPLACE FUNCTION %s.trunc() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $pgmf$"
		" BEGIN INSERT INTO %s.truncates (relid) VALUES (TG_RELID); RETURN NULL; END $pgmf$",
		c->qs, c->qs, lit, c->qs, c->qs, c->qs, c->qs);
	pgm_pg_query(c->conn, sql, 0, NULL, on_schema_made, c);
	free(sql);
	free(lit);
}

static void
on_session(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	cap_t *c = data;

	if (err) {
		cap_fail(c, "could not prepare the session on the source", err);
		return;
	}
	pgm_pg_query(conn, trg_scope_sql, 0, NULL, on_scope, c);
}

static void
on_connect(pgm_pg_conn_t *conn, const pgm_pg_error_t *err, void *data)
{
	cap_t *c = data;

	if (err) {
		c->conn = NULL;
		cap_fail(c, "could not connect to the source", err);
		return;
	}
	pgm_pg_query(conn, "SET default_transaction_read_only = off; SET lock_timeout = '5s'", 0, NULL, on_session, c);
}

void
trg_capture_install(pgm_step_t *s, void (*then)(pgm_step_t *s))
{
	cap_t *c = pgm_calloc(1, sizeof(*c));

	c->step = s;
	c->then = then;
	c->schema = trg_schema(s->job);
	c->qs = pgm_quote_ident(c->schema);
	c->tag = job_tag(s->job, 63 - strlen(TRG_TRIGGER_PREFIX "t_"));
	c->started = pgm_mono_ms();
	pgm_step_own(s, c, cap_free);
	c->conn = pgm_step_connect(s, true, "capture", on_connect, c);
}

/* ---- remove ---- */

typedef struct rm {
	pgm_step_t *step;
	pgm_pg_conn_t *conn;
	void (*then)(pgm_step_t *s);
	bool strict;
	char *schema, *qs;
	char **rel, **trig; /* one trigger a row: table, name */
	int n, next, tries;
	int errors;
} rm_t;

static void
rm_free(void *p)
{
	rm_t *r = p;

	for (int i = 0; i < r->n; i++) {
		free(r->rel[i]);
		free(r->trig[i]);
	}
	free(r->rel);
	free(r->trig);
	free(r->schema);
	free(r->qs);
	free(r);
}

/* mark every capture artifact dropped; the schema last */
static void
rm_mark(pgm_job_t *job)
{
	cJSON *a;

	while ((a = pgm_artifact_find_live(job, TRG_KIND_TRIGGERS, NULL, NULL)) != NULL) {
		if (!pgm_artifact_set(job, a, PGM_ART_DROPPED))
			return;
	}
	while ((a = pgm_artifact_find_live(job, TRG_KIND_SCHEMA, NULL, NULL)) != NULL) {
		if (!pgm_artifact_set(job, a, PGM_ART_DROPPED))
			return;
	}
}

static void
rm_end(rm_t *r, const char *what, const pgm_pg_error_t *err)
{
	pgm_step_t *s = r->step;
	void (*then)(pgm_step_t *) = r->then;

	if (err) {
		char *msg = pgm_asprintf("%s: %s", what, err->message);

		if (r->strict) {
			pgm_step_fail(
				s, msg, err->detail,
				"the capture is still on the source; fix the cause (a lock held on a table, a lost "
				"connection), then \"pgmover retry\"");
			free(msg);
			return;
		}
		pgm_job_warn(s->job, msg,
			     "pgmover tries again in 30 s; the triggers add work to every write meanwhile");
		free(msg);
	} else {
		rm_mark(s->job);
		pgm_notice("job %s: change capture removed from the source", s->job->name);
	}
	pgm_step_close_conn(s, r->conn);
	pgm_step_disown(s, r);
	rm_free(r);
	then(s);
}

static void
on_schema_dropped(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	rm_end(data, "could not drop pgmover's schema from the source", err);
}

static void rm_next(rm_t *r);

static void
retry_drop(uv_timer_t *t)
{
	rm_next(t->data);
}

static void
on_trigger_dropped(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	rm_t *r = data;

	if (err && strcmp(err->sqlstate, "55P03") == 0 && ++r->tries < TRG_LOCK_TRIES) {
		uv_timer_t *t = pgm_step_timer(r->step);

		if (r->tries == 1)
			pgm_info("job %s: DROP TRIGGER on %s waits for a lock; retrying every second",
				 r->step->job->name, r->rel[r->next]);
		t->data = r;
		uv_timer_start(t, retry_drop, 1000, 0);
		return;
	}
	if (err) {
		char *what =
			pgm_asprintf("could not drop the capture trigger %s on %s", r->trig[r->next], r->rel[r->next]);
		rm_end(r, what, err);
		free(what);
		return;
	}
	r->tries = 0;
	r->next++;
	rm_next(r);
}

static void
rm_next(rm_t *r)
{
	char *sql, *qt;

	if (r->next >= r->n) {
		sql = pgm_asprintf("DROP SCHEMA IF EXISTS %s CASCADE", r->qs);
		pgm_pg_query(r->conn, sql, 0, NULL, on_schema_dropped, r);
		free(sql);
		return;
	}
	qt = pgm_quote_ident(r->trig[r->next]);
	sql = pgm_asprintf("DO $pgm$ BEGIN SET LOCAL lock_timeout = '1s'; DROP TRIGGER IF EXISTS %s ON %s; END $pgm$",
			   qt, r->rel[r->next]);
	pgm_pg_query(r->conn, sql, 0, NULL, on_trigger_dropped, r);
	free(sql);
	free(qt);
}

static void
on_our_triggers(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	rm_t *r = data;

	if (err) {
		rm_end(r, "could not list pgmover's triggers on the source", err);
		return;
	}
	r->n = pgm_pg_ntuples(res);
	r->rel = pgm_calloc((size_t) r->n + 1, sizeof(char *));
	r->trig = pgm_calloc((size_t) r->n + 1, sizeof(char *));
	for (int i = 0; i < r->n; i++) {
		r->rel[i] = pgm_strdup(pgm_pg_value(res, i, 0));
		r->trig[i] = pgm_strdup(pgm_pg_value(res, i, 1));
	}
	rm_next(r);
}

static void
on_rm_session(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	rm_t *r = data;
	const char *params[1] = {r->schema};

	if (err) {
		rm_end(r, "could not prepare the session on the source", err);
		return;
	}
	/* exactly the triggers whose functions live in pgmover's schema */
	pgm_pg_query(conn,
		     "SELECT t.tgrelid::regclass::text, t.tgname FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid"
		     " WHERE p.pronamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1)"
		     " ORDER BY t.tgrelid, t.tgname",
		     1, params, on_our_triggers, r);
}

static void
on_rm_connect(pgm_pg_conn_t *conn, const pgm_pg_error_t *err, void *data)
{
	rm_t *r = data;

	if (err) {
		r->conn = NULL;
		rm_end(r, "could not connect to the source", err);
		return;
	}
	pgm_pg_query(conn, "SET default_transaction_read_only = off; SET lock_timeout = '5s'", 0, NULL, on_rm_session,
		     r);
}

void
trg_capture_remove(pgm_step_t *s, bool strict, void (*then)(pgm_step_t *s))
{
	rm_t *r;

	if (pgm_artifact_find_live(s->job, TRG_KIND_SCHEMA, NULL, NULL) == NULL &&
	    pgm_artifact_find_live(s->job, TRG_KIND_TRIGGERS, NULL, NULL) == NULL) {
		then(s);
		return;
	}
	/*
	 * Durable before the first trigger goes: from here on the capture is
	 * incomplete, and whatever comes next installs it again and copies anew.
	 */
	pgm_json_set(pgm_json_obj(s->job->facts, "triggers"), "capture_complete", cJSON_CreateFalse());
	if (!pgm_job_save(s->job)) {
		pgm_step_fail_unsaved(s, "the removal of the capture");
		return;
	}
	r = pgm_calloc(1, sizeof(*r));
	r->step = s;
	r->then = then;
	r->strict = strict;
	r->schema = trg_schema(s->job);
	r->qs = pgm_quote_ident(r->schema);
	pgm_step_own(s, r, rm_free);
	r->conn = pgm_step_connect(s, true, "capture-remove", on_rm_connect, r);
}
