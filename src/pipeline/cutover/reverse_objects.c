/*
 * reverse_objects.c — what the reverse stream needs on both servers, made
 * at cutover and dropped at finish or rollback, each recorded as an
 * artifact before it is made:
 *
 *   target  REPLICA IDENTITY FULL on tables without a key (once published,
 *           UPDATE and DELETE fail on a table without a replica identity)
 *   target  a publication FOR ALL TABLES (FOR TABLE every logged table
 *           when the role is not a superuser), created before the slot;
 *           what it does not carry is watched (reverse_tables.c)
 *   target  a logical replication slot with the pgoutput plugin
 *   source  schema pgmover_<job> with the one-row progress table that makes
 *           applying exactly once (see reverse.c)
 */
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "pipeline/cutover/flow.h"
#include "pipeline/cutover/reverse.h"
#include "fsm/artifact.h"
#include "fsm/job.h"
#include "pipeline/sql.h"

#include <stdlib.h>
#include <string.h>

#define KIND_SLOT "replication_slot"
#define KIND_PUB "publication"
#define KIND_PROGRESS "reverse_progress"
#define KIND_IDENT "replica_identity"

char *
pgm_reverse_progress_table(const pgm_job_t *job)
{
	char *schema = pgm_reverse_schema_name(job), *q = pgm_quote_ident(schema), *t = pgm_asprintf("%s.applied", q);

	free(schema);
	free(q);
	return t;
}

/* ---- setup: progress table on the source, publication and slot on the target ---- */

typedef struct setup {
	pgm_flow_t *f;
	void (*then)(pgm_flow_t *f);
	bool pub_exists, slot_exists, superuser, logical;
	char *tables; /* every user table, for a publication without superuser */
} setup_t;

static void
setup_free(void *p)
{
	setup_t *st = p;

	free(st->tables);
	free(st);
}

static void
setup_done(pgm_step_t *s, void *data)
{
	setup_t *st = data;
	pgm_flow_t *f = st->f;
	void (*then)(pgm_flow_t *) = st->then;
	char *slot = pgm_reverse_slot_name(f->job);
	char *msg = pgm_asprintf("publication and logical slot %s on the target; progress table on the source", slot);

	pgm_json_set_str(pgm_json_obj(f->job->facts, "reverse"), "slot", slot);
	pgm_flow_audit(f, "reverse:objects", msg);
	free(msg);
	free(slot);
	pgm_step_disown(s, st);
	setup_free(st);
	then(f);
}

static void
on_inspect(pgm_step_t *s, const PGresult *res, void *data)
{
	setup_t *st = data;
	const char *ident = pgm_pg_value(res, 0, 3);
	cJSON *list = ident ? cJSON_Parse(ident) : NULL;

	st->pub_exists = strcmp(pgm_pg_value(res, 0, 0) ? pgm_pg_value(res, 0, 0) : "f", "t") == 0;
	st->slot_exists = strcmp(pgm_pg_value(res, 0, 1) ? pgm_pg_value(res, 0, 1) : "f", "t") == 0;
	st->superuser = strcmp(pgm_pg_value(res, 0, 2) ? pgm_pg_value(res, 0, 2) : "f", "t") == 0;
	st->tables = pgm_strdup(pgm_pg_value(res, 0, 4) ? pgm_pg_value(res, 0, 4) : "");
	st->logical = strcmp(pgm_pg_value(res, 0, 5) ? pgm_pg_value(res, 0, 5) : "", "logical") == 0;
	/* tables without a key: FULL identity, or UPDATE and DELETE fail there once published */
	if (cJSON_GetArraySize(list) > 0 && pgm_artifact_find_live(s->job, KIND_IDENT, NULL, NULL) == NULL) {
		cJSON *extra = cJSON_CreateObject();

		pgm_json_set(extra, "tables", cJSON_Duplicate(list, 1));
		(void) pgm_sql_record(s,
				      pgm_artifact_record(s->job, KIND_IDENT, "target", NULL, PGM_ART_CREATING, extra),
				      "the replica identities of the tables without a key");
	}
	cJSON_Delete(list);
}

static void
setup_create(pgm_step_t *s, void *data)
{
	setup_t *st = data;
	pgm_flow_t *f = st->f;
	pgm_job_t *job = f->job;
	char *slot = pgm_reverse_slot_name(job), *qslot = pgm_quote_ident(slot), *sql;
	const char *params[1] = {slot};
	cJSON *ident = pgm_artifact_find_live(job, KIND_IDENT, NULL, NULL), *t;
	pgm_sql_t *q;

	if (!st->logical) {
		pgm_flow_fail(
			f, "the target cannot keep its writes for the way back: wal_level is not logical", NULL,
			"set wal_level = logical on the target (ALTER SYSTEM SET wal_level = logical, then a restart), "
			"then retry");
		goto out;
	}
	if ((st->pub_exists && !pgm_artifact_find_live(job, KIND_PUB, NULL, slot)) ||
	    (st->slot_exists && !pgm_artifact_find_live(job, KIND_SLOT, NULL, slot))) {
		char *msg = pgm_asprintf("the target already has a %s named %s that this job did not create",
					 st->slot_exists ? "replication slot" : "publication", slot);
		pgm_flow_fail(f, msg, NULL, "drop it if it is left over from an earlier migration, then retry");
		free(msg);
		goto out;
	}
	/* recorded before the script can create them */
	if ((!st->pub_exists && !pgm_artifact_find_live(job, KIND_PUB, NULL, slot) &&
	     !pgm_artifact_record(job, KIND_PUB, "target", slot, PGM_ART_CREATING, NULL)) ||
	    (!st->slot_exists && !pgm_artifact_find_live(job, KIND_SLOT, NULL, slot) &&
	     !pgm_artifact_record(job, KIND_SLOT, "target", slot, PGM_ART_CREATING, NULL))) {
		char *msg = pgm_unsaved_message(job, "the reverse stream's publication and slot");

		pgm_flow_fail(f, msg, NULL, pgm_unsaved_hint());
		free(msg);
		goto out;
	}
	q = pgm_flow_sql(f, false, "reverse-setup", "could not create the reverse stream on the target",
			 "the target role needs the REPLICATION attribute (or superuser), wal_level = logical and "
			 "a free replication slot");
	pgm_sql_add(q, "SET lock_timeout = '10s'", NULL, NULL);
	cJSON_ArrayForEach (t, cJSON_GetObjectItem(ident, "tables")) {
		sql = pgm_asprintf("ALTER TABLE IF EXISTS %s REPLICA IDENTITY FULL", pgm_json_str(t, "t"));
		pgm_sql_add(q, sql, NULL, NULL);
		free(sql);
	}
	if (!st->pub_exists) {
		if (st->superuser || st->tables[0] == '\0')
			sql = pgm_asprintf("CREATE PUBLICATION %s FOR ALL TABLES", qslot);
		else
			sql = pgm_asprintf("CREATE PUBLICATION %s FOR TABLE %s", qslot, st->tables);
		pgm_sql_add(q, sql, NULL, NULL);
		free(sql);
	}
	if (!st->slot_exists) {
		pgm_sql_add_params(q, "SELECT pg_create_logical_replication_slot($1, 'pgoutput')", 1, params, NULL,
				   NULL);
	}
	pgm_sql_run(q, setup_done, st);
out:
	free(qslot);
	free(slot);
}

static const char *inspect_sql =
	"SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1),"
	"       EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1),"
	"       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),"
	"       (SELECT coalesce(json_agg(json_build_object('t', format('%I.%I', n.nspname, c.relname),"
	"                                                   'was', c.relreplident)), '[]')"
	"          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
	"         WHERE c.relkind = 'r' AND c.relpersistence = 'p'"
	"           AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_'"
	"           AND (c.relreplident = 'n' OR (c.relreplident = 'd' AND NOT EXISTS"
	"                (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary))))::text,"
	/* unlogged tables cannot be published (CREATE PUBLICATION fails): reverse_tables.c reports them */
	"       (SELECT string_agg(format('%I.%I', n.nspname, c.relname), ', ')"
	"          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
	"         WHERE c.relkind IN ('r', 'p') AND c.relpersistence = 'p'"
	"           AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_'),"
	"       current_setting('wal_level')";

static void
setup_target(pgm_step_t *s, void *data)
{
	setup_t *st = data;
	char *slot = pgm_reverse_slot_name(s->job);
	const char *params[1] = {slot};
	pgm_sql_t *q = pgm_flow_sql(st->f, false, "reverse-setup", "could not inspect the target", NULL);

	pgm_sql_add_params(q, inspect_sql, 1, params, on_inspect, st);
	pgm_sql_run(q, setup_create, st);
	free(slot);
}

void
pgm_reverse_setup(pgm_flow_t *f, void (*then)(pgm_flow_t *f))
{
	pgm_job_t *job = f->job;
	setup_t *st = pgm_calloc(1, sizeof(*st));
	char *schema = pgm_reverse_schema_name(job), *qs = pgm_quote_ident(schema),
	     *pt = pgm_reverse_progress_table(job), *sql;
	const char *params[1] = {job->name};
	bool fresh = pgm_artifact_find_live(job, KIND_PROGRESS, NULL, schema) == NULL;
	pgm_sql_t *q;

	st->f = f;
	st->then = then;
	pgm_step_own(f->step, st, setup_free);
	if (fresh && !pgm_artifact_record(job, KIND_PROGRESS, "source", schema, PGM_ART_CREATING, NULL)) {
		char *msg = pgm_unsaved_message(job, "the progress schema on the source");

		pgm_flow_fail(f, msg, NULL, pgm_unsaved_hint());
		free(msg);
		free(pt);
		free(qs);
		free(schema);
		return;
	}
	q = pgm_flow_sql(f, true, "reverse-setup", "could not create pgmover's progress table on the source",
			 "the source role must be allowed to create a schema (the database owner is)");
	pgm_sql_add(q, "SET default_transaction_read_only = off", NULL, NULL);
	sql = pgm_asprintf("CREATE SCHEMA %s%s", fresh ? "" : "IF NOT EXISTS ", qs);
	pgm_sql_add(q, sql, NULL, NULL);
	free(sql);
	sql = pgm_asprintf("COMMENT ON SCHEMA %s IS 'pgmover: progress of the reverse stream of a rollback window; "
			   "dropped when the job finishes or rolls back'",
			   qs);
	pgm_sql_add(q, sql, NULL, NULL);
	free(sql);
	sql = pgm_asprintf("CREATE TABLE IF NOT EXISTS %s (job text PRIMARY KEY, commit_lsn pg_lsn NOT NULL, "
			   "end_lsn pg_lsn NOT NULL, xid bigint, committed_at timestamptz, applied_at timestamptz)",
			   pt);
	pgm_sql_add(q, sql, NULL, NULL);
	free(sql);
	/* a new slot starts a new stream: progress of an older one means nothing */
	if (pgm_artifact_find_live(job, KIND_SLOT, NULL, NULL) == NULL) {
		sql = pgm_asprintf("DELETE FROM %s WHERE job = $1", pt);
		pgm_sql_add_params(q, sql, 1, params, NULL, NULL);
		free(sql);
	}
	sql = pgm_asprintf("INSERT INTO %s (job, commit_lsn, end_lsn) VALUES ($1, '0/0', '0/0') "
			   "ON CONFLICT (job) DO NOTHING",
			   pt);
	pgm_sql_add_params(q, sql, 1, params, NULL, NULL);
	free(sql);
	pgm_sql_run(q, setup_target, st);
	free(pt);
	free(qs);
	free(schema);
}

/* ---- teardown: drop exactly what the artifacts name ---- */

typedef struct teardown {
	pgm_flow_t *f;
	void (*then)(pgm_flow_t *f);
} teardown_t;

static void
teardown_free(void *p)
{
	free(p);
}

static void
mark_undone(pgm_step_t *s, const PGresult *res, void *data)
{
	pgm_artifact_dropped(s->job, data);
}

static void
teardown_done(pgm_step_t *s, void *data)
{
	teardown_t *td = data;
	pgm_flow_t *f = td->f;
	void (*then)(pgm_flow_t *) = td->then;

	pgm_step_disown(s, td);
	free(td);
	pgm_flow_audit(f, "reverse:objects", "dropped");
	then(f);
}

static void
teardown_source(pgm_step_t *s, void *data)
{
	teardown_t *td = data;
	pgm_flow_t *f = td->f;
	cJSON *a = pgm_artifact_find_live(s->job, KIND_PROGRESS, NULL, NULL);
	pgm_sql_t *q;
	char *qs, *sql;

	if (a == NULL) {
		teardown_done(s, td);
		return;
	}
	qs = pgm_quote_ident(pgm_json_str(a, "name"));
	sql = pgm_asprintf("DROP SCHEMA IF EXISTS %s CASCADE", qs);
	q = pgm_flow_sql(f, true, "reverse-teardown", "could not drop pgmover's progress table on the source", NULL);
	pgm_sql_add(q, "SET default_transaction_read_only = off", NULL, NULL);
	pgm_sql_add(q, "SET lock_timeout = '10s'", NULL, NULL);
	pgm_sql_add(q, sql, mark_undone, a);
	pgm_sql_run(q, teardown_done, td);
	free(sql);
	free(qs);
}

bool
pgm_reverse_live(pgm_job_t *job)
{
	return pgm_artifact_find_live(job, KIND_SLOT, NULL, NULL) ||
	       pgm_artifact_find_live(job, KIND_PUB, NULL, NULL) ||
	       pgm_artifact_find_live(job, KIND_IDENT, NULL, NULL) ||
	       pgm_artifact_find_live(job, KIND_PROGRESS, NULL, NULL);
}

void
pgm_reverse_teardown(pgm_flow_t *f, void (*then)(pgm_flow_t *f))
{
	pgm_job_t *job = f->job;
	teardown_t *td = pgm_calloc(1, sizeof(*td));
	cJSON *slot = pgm_artifact_find_live(job, KIND_SLOT, NULL, NULL);
	cJSON *pub = pgm_artifact_find_live(job, KIND_PUB, NULL, NULL);
	cJSON *ident = pgm_artifact_find_live(job, KIND_IDENT, NULL, NULL), *t;
	pgm_sql_t *q;

	td->f = f;
	td->then = then;
	pgm_step_own(f->step, td, teardown_free);
	if (!slot && !pub && !ident) {
		teardown_source(f->step, td);
		return;
	}
	q = pgm_flow_sql(f, false, "reverse-teardown", "could not drop the reverse stream on the target", NULL);
	/* after a rollback the target is frozen: this session lifts it for itself */
	pgm_sql_add(q, "SET default_transaction_read_only = off", NULL, NULL);
	pgm_sql_add(q, "SET lock_timeout = '10s'", NULL, NULL);
	if (slot) {
		const char *params[1] = {pgm_json_str(slot, "name")};

		/* a decoding session of a killed daemon may still hold it */
		pgm_sql_add_params(
			q,
			"SELECT pg_terminate_backend(active_pid, 5000) FROM pg_replication_slots"
			" WHERE slot_name = $1 AND active_pid IS NOT NULL AND active_pid <> pg_backend_pid()",
			1, params, NULL, NULL);
		pgm_sql_add_params(q,
				   "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
				   " WHERE slot_name = $1",
				   1, params, mark_undone, slot);
	}
	if (pub) {
		char *qp = pgm_quote_ident(pgm_json_str(pub, "name")),
		     *sql = pgm_asprintf("DROP PUBLICATION IF EXISTS %s", qp);
		pgm_sql_add(q, sql, mark_undone, pub);
		free(sql);
		free(qp);
	}
	if (ident) {
		char *all = pgm_strdup("");

		cJSON_ArrayForEach (t, cJSON_GetObjectItem(ident, "tables")) {
			const char *was = pgm_json_str(t, "was");
			char *next = pgm_asprintf("%sALTER TABLE IF EXISTS %s REPLICA IDENTITY %s; ", all,
						  pgm_json_str(t, "t"),
						  was && strcmp(was, "n") == 0 ? "NOTHING" : "DEFAULT");
			free(all);
			all = next;
		}
		pgm_sql_add(q, all[0] ? all : "SELECT 1", mark_undone, ident);
		free(all);
	}
	pgm_sql_run(q, teardown_source, td);
}
