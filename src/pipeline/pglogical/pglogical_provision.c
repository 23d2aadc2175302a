/*
 * pglogical_provision.c — the provisioning step of a pglogical job, after
 * the preflight passed: in order,
 *
 *   0. the sessions a run killed inside a stage left, ended (pgl_fence);
 *   1. the pglogical extension on the source and on the target (when absent);
 *   2. a node on each side (an existing node of the source is reused);
 *   3. the schema copied to the target, all of it before the data
 *      (pg_dump --schema-only | pg_restore, pglogical's own objects left out);
 *   4. replication sets on the source: tables with a replica identity in one
 *      that replicates every change, tables without one in an insert-only
 *      set (allow_no_pk = on only), added one by one; sequences in the first.
 *
 * Why all of the schema first: the apply worker starts applying UPDATEs and
 * DELETEs right after a table's initial copy and needs the target's primary
 * key index to find rows; with synchronize_structure off pglogical offers no
 * point between the copy and the apply to build indexes. Measured here on a
 * pgbench scale 20 source (2 M rows): all of the schema first 2.37 s; pre-data,
 * copy 1.93 s, then post-data 0.56 s = 2.49 s. Nothing to win.
 *
 * Each stage looks at the catalog first and records an object in the job's
 * artifacts (durable) before creating it, so a run resumed after a SIGKILL
 * picks up where the last one stopped and abort drops exactly that.
 */
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "pipeline/copy/copy.h"
#include "pipeline/pglogical/pglogical.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct prov {
	bool source;            /* the side of the stage running */
	void (*next)(pgl_t *x); /* what follows the stage */
	cJSON *tables;          /* [{table, identity, bytes, rows, set}] */
	int next_table;
	cJSON *sequences; /* names still to add */
	int next_seq;
	bool need_io;
	char *dumpfile;
	int64_t schema_started;
} prov_t;

static void
prov_free(void *p)
{
	prov_t *pv = p;

	if (pv->dumpfile)
		unlink(pv->dumpfile);
	free(pv->dumpfile);
	cJSON_Delete(pv->tables);
	cJSON_Delete(pv->sequences);
	free(pv);
}

static prov_t *
prov_of(pgl_t *x)
{
	return x->phase;
}

static const char *
side_name(bool source)
{
	return source ? "source" : "target";
}

static cJSON *
pgl_facts(pgm_job_t *job)
{
	return pgm_json_obj(job->facts, "pglogical");
}

/* ---- 1. the extension ---- */

static void
on_ext_created(pgl_t *x, const PGresult *res)
{
	prov_t *pv = prov_of(x);
	cJSON *a = pgm_artifact_find(x->step->job, PGL_KIND_EXTENSION, side_name(pv->source), "pglogical");

	pgm_artifact_created(x->step->job, a);
	pgm_info("job %s: pglogical extension created on the %s", x->step->job->name, side_name(pv->source));
	pv->next(x);
}

static void
on_ext(pgl_t *x, const PGresult *res)
{
	pgm_job_t *job = x->step->job;
	prov_t *pv = prov_of(x);
	const char *side = side_name(pv->source);
	cJSON *a = pgm_artifact_find(job, PGL_KIND_EXTENSION, side, "pglogical");
	bool exists = pgm_pg_ntuples(res) == 1;

	if (a == NULL) {
		/* there before pgmover: recorded as found, never dropped */
		a = pgm_artifact_record(job, PGL_KIND_EXTENSION, side, "pglogical",
					exists ? PGM_ART_FOUND : PGM_ART_CREATING, NULL);
		if (a == NULL) {
			pgm_step_fail_unsaved(x->step, "the pglogical extension");
			return;
		}
	}
	if (exists) {
		if (pgm_artifact_status(a) == PGM_ART_CREATING)
			pgm_artifact_created(job, a);
		pv->next(x);
		return;
	}
	if (pgm_artifact_status(a) != PGM_ART_CREATING && !pgm_artifact_set(job, a, PGM_ART_CREATING)) {
		pgm_step_fail_unsaved(x->step, "the pglogical extension");
		return;
	}
	pgl_query(x, pv->source, "could not create the pglogical extension", "CREATE EXTENSION IF NOT EXISTS pglogical",
		  0, NULL, on_ext_created);
}

static void
ensure_extension(pgl_t *x, bool source, void (*next)(pgl_t *x))
{
	prov_t *pv = prov_of(x);

	pv->source = source;
	pv->next = next;
	pgl_query(x, source, "could not look for the pglogical extension",
		  "SELECT extversion FROM pg_extension WHERE extname = 'pglogical'", 0, NULL, on_ext);
}

/* ---- 2. the nodes ---- */

static const char *
node_name(pgl_t *x, bool source)
{
	return source ? x->names.src_node : x->names.dst_node;
}

static void
on_node_created(pgl_t *x, const PGresult *res)
{
	prov_t *pv = prov_of(x);
	cJSON *a = pgm_artifact_find(x->step->job, PGL_KIND_NODE, side_name(pv->source), node_name(x, pv->source));

	pgm_artifact_created(x->step->job, a);
	pgm_info("job %s: pglogical node %s created on the %s", x->step->job->name, node_name(x, pv->source),
		 side_name(pv->source));
	pv->next(x);
}

static void
on_node(pgl_t *x, const PGresult *res)
{
	pgm_job_t *job = x->step->job;
	prov_t *pv = prov_of(x);
	const char *side = side_name(pv->source), *ours = node_name(x, pv->source);
	const char *existing = pgm_pg_ntuples(res) == 1 ? pgm_pg_value(res, 0, 0) : NULL;
	const char *params[2] = {ours, pv->source ? job->source_dsn : job->target_dsn};
	cJSON *a;

	if (existing && strcmp(existing, ours) != 0) {
		/* a database has one local node: use the one that is there, leave it there */
		if (pgm_artifact_find(job, PGL_KIND_NODE, side, existing) == NULL) {
			a = pgm_artifact_record(job, PGL_KIND_NODE, side, existing, PGM_ART_FOUND, NULL);
			if (a == NULL) {
				pgm_step_fail_unsaved(x->step, "the pglogical node");
				return;
			}
			pgm_notice("job %s: the %s already is pglogical node %s; pgmover uses it and leaves it",
				   job->name, side, existing);
		}
		if (pv->source)
			pgm_json_set_str(pgl_facts(job), "provider_node", existing);
		pgm_job_checkpoint(job);
		pv->next(x);
		return;
	}
	a = pgm_artifact_find(job, PGL_KIND_NODE, side, ours);
	if (a == NULL) {
		a = pgm_artifact_record(job, PGL_KIND_NODE, side, ours, PGM_ART_CREATING, NULL);
		if (a == NULL) {
			pgm_step_fail_unsaved(x->step, "the pglogical node");
			return;
		}
	}
	if (pv->source)
		pgm_json_set_str(pgl_facts(job), "provider_node", ours);
	if (existing) {
		if (pgm_artifact_status(a) != PGM_ART_CREATED)
			pgm_artifact_created(job, a);
		pv->next(x);
		return;
	}
	if (pgm_artifact_status(a) != PGM_ART_CREATING && !pgm_artifact_set(job, a, PGM_ART_CREATING)) {
		pgm_step_fail_unsaved(x->step, "the pglogical node");
		return;
	}
	/* the node's DSN: how the other side's workers reach this one */
	pgl_query(x, pv->source, "could not create the pglogical node",
		  "SELECT pglogical.create_node(node_name := $1, dsn := $2)", 2, params, on_node_created);
}

static void
ensure_node(pgl_t *x, bool source, void (*next)(pgl_t *x))
{
	prov_t *pv = prov_of(x);

	pv->source = source;
	pv->next = next;
	pgl_query(x, source, "could not look for the pglogical node",
		  "SELECT n.node_name FROM pglogical.local_node l JOIN pglogical.node n ON n.node_id = l.node_id", 0,
		  NULL, on_node);
}

/* ---- 3. the schema ---- */

static void start_tables(pgl_t *x);

static void
on_restore_exit(pgm_proc_t *p, int64_t status, int sig, int timed_out, const char *tail, void *data)
{
	pgl_t *x = data;
	pgm_job_t *job = x->step->job;
	prov_t *pv = prov_of(x);
	int64_t ms = pgm_mono_ms() - pv->schema_started;

	if (pgm_tool_failed(x->step, "pg_restore", "restore of the schema", status, sig, tail))
		return;
	unlink(pv->dumpfile);
	pgm_json_set(pgl_facts(job), "schema_copied", cJSON_CreateTrue());
	pgm_json_set_num(pgl_facts(job), "schema_ms", (double) ms);
	pgm_job_checkpoint(job);
	pgm_notice("job %s: the schema is on the target (%.1f s)", job->name, (double) ms / 1000.0);
	start_tables(x);
}

static void
on_schema_dump_exit(pgm_proc_t *p, int64_t status, int sig, int timed_out, const char *tail, void *data)
{
	pgl_t *x = data;
	prov_t *pv = prov_of(x);
	const char *args[] = {"--no-owner", "--no-acl", "--exit-on-error", "--single-transaction", pv->dumpfile, NULL};

	if (pgm_tool_failed(x->step, "pg_dump", "dump of the schema", status, sig, tail))
		return;
	pgm_tool_spawn(x->step, "pg_restore", args, false, NULL, NULL, on_restore_exit, x);
}

/* --extension=NAME: a pattern, so anything but a plain name is quoted */
static char *
extension_arg(const char *name)
{
	bool plain = name[0] != '\0';

	for (const char *c = name; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_'))
			plain = false;
	if (plain)
		return pgm_asprintf("--extension=%s", name);
	{
		size_t n = strlen(name);
		char *q = pgm_malloc(2 * n + 3), *o = q;

		*o++ = '"';
		for (const char *c = name; *c; c++) {
			if (*c == '"')
				*o++ = '"';
			*o++ = *c;
		}
		*o++ = '"';
		*o = '\0';
		o = pgm_asprintf("--extension=%s", q);
		free(q);
		return o;
	}
}

/*
 * pg_dump --schema-only of everything but pglogical's own schema and
 * extension: --extension names every other extension, so that pglogical
 * is left out (pg_dump 15 has no --exclude-extension).
 */
static void
on_target_cleaned(pgl_t *x, const PGresult *res)
{
	pgm_job_t *job = x->step->job;
	prov_t *pv = prov_of(x);
	const cJSON *e, *exts = cJSON_GetObjectItem(cJSON_GetObjectItem(job->facts, "source"), "extensions");
	const char *args[48];
	char *own[40];
	int n = 0, nown = 0;

	args[n++] = "--schema-only";
	args[n++] = "--format=custom";
	args[n++] = "--exclude-schema=pglogical";
	own[nown++] = extension_arg("plpgsql");
	args[n++] = own[nown - 1];
	cJSON_ArrayForEach (e, exts) {
		const char *name = pgm_json_str(e, "name");
		if (name == NULL || strcmp(name, "pglogical") == 0 || strcmp(name, "plpgsql") == 0)
			continue;
		if (nown == 38) {
			pgm_step_fail(x->step, "the source has too many extensions for the schema copy", NULL,
				      "use --method dump");
			goto cleanup;
		}
		own[nown++] = extension_arg(name);
		args[n++] = own[nown - 1];
	}
	args[n++] = "--file";
	args[n++] = pv->dumpfile;
	args[n] = NULL;
	pv->schema_started = pgm_mono_ms();
	pgm_tool_spawn(x->step, "pg_dump", args, true, NULL, NULL, on_schema_dump_exit, x);
cleanup:
	for (int i = 0; i < nown; i++)
		free(own[i]);
}

static void
start_schema(pgl_t *x)
{
	pgm_job_t *job = x->step->job;
	prov_t *pv = prov_of(x);

	if (cJSON_IsTrue(cJSON_GetObjectItem(pgl_facts(job), "schema_copied"))) {
		start_tables(x);
		return;
	}
	/* from here on what is in the target is pgmover's (the preflight found it empty) */
	pgm_json_set(job->facts, "target_owned", cJSON_CreateTrue());
	if (!pgm_job_save(job)) {
		cJSON_DeleteItemFromObject(job->facts, "target_owned");
		pgm_step_fail_unsaved(x->step, "the schema copy into the target");
		return;
	}
	pv->dumpfile = pgm_asprintf("%s/pglogical-schema.dump", job->dir);
	pgl_query(x, false, "could not clean the target before copying the schema", pgl_clean_target_sql, 0, NULL,
		  on_target_cleaned);
}

/* ---- 4. replication sets, tables, sequences ---- */

static const char *tables_sql =
	"SELECT format('%I.%I', n.nspname, c.relname),"
	"       (c.relreplident = 'd' AND EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary))"
	"    OR (c.relreplident = 'i' AND EXISTS (SELECT 1 FROM pg_index i"
	"                                         WHERE i.indrelid = c.oid AND i.indisreplident)),"
	"       pg_table_size(c.oid), greatest(c.reltuples, 0)::bigint,"
	"       (SELECT s.set_name FROM pglogical.replication_set_table t"
	"          JOIN pglogical.replication_set s ON s.set_id = t.set_id"
	"         WHERE t.set_reloid = c.oid AND s.set_name IN ($1, $2) LIMIT 1)"
	"  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
	" WHERE c.relkind = 'r' AND c.relpersistence = 'p'"
	"   AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
	"   AND n.nspname !~ '^pg_toast' AND n.nspname !~ '^pg_temp_'"
	"   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass"
	"                     AND d.objid = c.oid AND d.deptype = 'e')"
	" ORDER BY 1";

static const char *sequences_sql = "SELECT format('%I.%I', n.nspname, c.relname)"
				   "  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
				   " WHERE c.relkind = 'S' AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
				   "   AND n.nspname !~ '^pg_toast' AND n.nspname !~ '^pg_temp_'"
				   "   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass"
				   "                     AND d.objid = c.oid AND d.deptype = 'e')"
				   "   AND NOT EXISTS (SELECT 1 FROM pglogical.replication_set_seq q"
				   "                     JOIN pglogical.replication_set s ON s.set_id = q.set_id"
				   "                    WHERE q.set_seqoid = c.oid AND s.set_name = $1)"
				   " ORDER BY 1";

static void add_next_sequence(pgl_t *x);

static void
provisioned(pgl_t *x)
{
	pgm_job_t *job = x->step->job;

	pgm_json_set_time(pgl_facts(job), "provisioned_at", pgm_now_ms());
	pgm_job_checkpoint(job);
	pgm_notice("job %s: pglogical provisioned: nodes, schema and replication sets are in place", job->name);
	pgm_step_done(x->step, PGM_EV_DONE);
}

static void
on_sequence_added(pgl_t *x, const PGresult *res)
{
	add_next_sequence(x);
}

static void
add_next_sequence(pgl_t *x)
{
	prov_t *pv = prov_of(x);
	const cJSON *seq = cJSON_GetArrayItem(pv->sequences, pv->next_seq++);
	const char *params[2] = {x->names.set, seq ? seq->valuestring : NULL};

	if (seq == NULL) {
		provisioned(x);
		return;
	}
	pgl_query(x, true, "could not add a sequence to the replication set",
		  "SELECT pglogical.replication_set_add_sequence(set_name := $1, relation := $2::regclass,"
		  " synchronize_data := true)",
		  2, params, on_sequence_added);
}

static void
on_sequences(pgl_t *x, const PGresult *res)
{
	prov_t *pv = prov_of(x);

	pv->sequences = cJSON_CreateArray();
	for (int r = 0; r < pgm_pg_ntuples(res); r++)
		cJSON_AddItemToArray(pv->sequences, cJSON_CreateString(pgm_pg_value(res, r, 0)));
	add_next_sequence(x);
}

static void add_next_table(pgl_t *x);

static void
on_table_added(pgl_t *x, const PGresult *res)
{
	add_next_table(x);
}

/* one by one: replication_set_add_all_tables fails as a whole on one PK-less table */
static void
add_next_table(pgl_t *x)
{
	pgm_job_t *job = x->step->job;
	prov_t *pv = prov_of(x);
	cJSON *t;
	const char *params[2];

	while ((t = cJSON_GetArrayItem(pv->tables, pv->next_table)) != NULL) {
		pv->next_table++;
		if (pgm_json_str(t, "in_set") == NULL)
			break;
	}
	if (t == NULL) {
		/* what the subscription replicates, for the sync monitor and the truncate */
		cJSON *list = cJSON_CreateArray(), *it;
		int64_t bytes = 0;

		cJSON_ArrayForEach (it, pv->tables) {
			cJSON *o = cJSON_CreateObject();
			pgm_json_set_str(o, "table", pgm_json_str(it, "table"));
			pgm_json_set_str(o, "set", pgm_json_str(it, "set"));
			pgm_json_set_num(o, "bytes", pgm_json_num(it, "bytes", 0));
			pgm_json_set_num(o, "rows", pgm_json_num(it, "rows", 0));
			bytes += (int64_t) pgm_json_num(it, "bytes", 0);
			cJSON_AddItemToArray(list, o);
		}
		pgm_json_set(pgl_facts(job), "tables", list);
		pgm_json_set_num(pgl_facts(job), "table_bytes", (double) bytes);
		pgm_job_checkpoint(job);
		{
			const char *sp[1] = {x->names.set};
			pgl_query(x, true, "could not list the sequences of the source", sequences_sql, 1, sp,
				  on_sequences);
		}
		return;
	}
	params[0] = pgm_json_str(t, "set");
	params[1] = pgm_json_str(t, "table");
	pgl_query(x, true, "could not add a table to the replication set",
		  "SELECT pglogical.replication_set_add_table(set_name := $1, relation := $2::regclass,"
		  " synchronize_data := true)",
		  2, params, on_table_added);
}

static void
on_set_created(pgl_t *x, const PGresult *res)
{
	prov_t *pv = prov_of(x);
	const char *name = pv->source ? x->names.set_io : x->names.set; /* pv->source: the insert-only one */

	pgm_artifact_created(x->step->job, pgm_artifact_find(x->step->job, PGL_KIND_SET, "source", name));
	pv->next(x);
}

static void
on_set(pgl_t *x, const PGresult *res)
{
	pgm_job_t *job = x->step->job;
	prov_t *pv = prov_of(x);
	bool insert_only = pv->source;
	const char *name = insert_only ? x->names.set_io : x->names.set;
	const char *params[2] = {name, insert_only ? "false" : "true"};
	cJSON *a = pgm_artifact_find(job, PGL_KIND_SET, "source", name);

	if (a == NULL) {
		cJSON *extra = cJSON_CreateObject();

		pgm_json_set(extra, "insert_only", cJSON_CreateBool(insert_only));
		a = pgm_artifact_record(job, PGL_KIND_SET, "source", name, PGM_ART_CREATING, extra);
		if (a == NULL) {
			pgm_step_fail_unsaved(x->step, "the replication set");
			return;
		}
	}
	if (pgm_pg_ntuples(res) == 1) {
		if (pgm_artifact_status(a) != PGM_ART_CREATED)
			pgm_artifact_created(job, a);
		pv->next(x);
		return;
	}
	if (pgm_artifact_status(a) != PGM_ART_CREATING && !pgm_artifact_set(job, a, PGM_ART_CREATING)) {
		pgm_step_fail_unsaved(x->step, "the replication set");
		return;
	}
	pgl_query(x, true, "could not create a replication set",
		  "SELECT pglogical.create_replication_set(set_name := $1, replicate_insert := true,"
		  " replicate_update := $2::boolean, replicate_delete := $2::boolean, replicate_truncate := true)",
		  2, params, on_set_created);
}

/* pv->source is borrowed here to say which set: false all changes, true insert-only */
static void
ensure_set(pgl_t *x, bool insert_only, void (*next)(pgl_t *x))
{
	prov_t *pv = prov_of(x);
	const char *params[1] = {insert_only ? x->names.set_io : x->names.set};

	pv->source = insert_only;
	pv->next = next;
	pgl_query(x, true, "could not look for the replication set",
		  "SELECT 1 FROM pglogical.replication_set"
		  " WHERE set_name = $1 AND set_nodeid = (SELECT node_id FROM pglogical.local_node)",
		  1, params, on_set);
}

static void
sets_ready(pgl_t *x)
{
	add_next_table(x);
}

static void
main_set_ready(pgl_t *x)
{
	if (prov_of(x)->need_io)
		ensure_set(x, true, sets_ready);
	else
		sets_ready(x);
}

static void
on_tables(pgl_t *x, const PGresult *res)
{
	pgm_job_t *job = x->step->job;
	prov_t *pv = prov_of(x);
	int n = pgm_pg_ntuples(res), missing = 0;
	char names[1024] = "";

	pv->tables = cJSON_CreateArray();
	for (int r = 0; r < n; r++) {
		cJSON *t = cJSON_CreateObject();
		bool identity = pgm_pg_value(res, r, 1)[0] == 't';

		pgm_json_set_str(t, "table", pgm_pg_value(res, r, 0));
		pgm_json_set(t, "identity", cJSON_CreateBool(identity));
		pgm_json_set_num(t, "bytes", (double) pgm_pg_int64(res, r, 2, 0));
		pgm_json_set_num(t, "rows", (double) pgm_pg_int64(res, r, 3, 0));
		pgm_json_set_str(t, "set", identity ? x->names.set : x->names.set_io);
		if (pgm_pg_value(res, r, 4))
			pgm_json_set_str(t, "in_set", pgm_pg_value(res, r, 4));
		cJSON_AddItemToArray(pv->tables, t);
		if (!identity) {
			pv->need_io = true;
			if (missing++ < 20 && strlen(names) + strlen(pgm_pg_value(res, r, 0)) + 3 < sizeof(names))
				snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s",
					 names[0] ? ", " : "", pgm_pg_value(res, r, 0));
		}
	}
	if (missing > 0 && !pgm_jobopt_bool(job->options, "allow_no_pk")) {
		char *msg = pgm_asprintf("%d table(s) have no primary key or replica identity index: %s%s", missing,
					 names, missing > 20 ? ", ..." : "");
		pgm_step_fail(
			x->step, msg, "pglogical cannot replicate their UPDATEs and DELETEs",
			"add a primary key to each (or REPLICA IDENTITY USING INDEX a unique index); or set "
			"allow_no_pk = on if they are only ever inserted into (they then replicate inserts only); or "
			"use --method dump");
		free(msg);
		return;
	}
	ensure_set(x, false, main_set_ready);
}

static void
start_tables(pgl_t *x)
{
	const char *params[2] = {x->names.set, x->names.set_io};

	pgl_query(x, true, "could not list the tables of the source", tables_sql, 2, params, on_tables);
}

/* ---- the stages in order ---- */

static void
target_node_ready(pgl_t *x)
{
	start_schema(x);
}

static void
source_node_ready(pgl_t *x)
{
	ensure_node(x, false, target_node_ready);
}

static void
target_ext_ready(pgl_t *x)
{
	ensure_node(x, true, source_node_ready);
}

static void
source_ext_ready(pgl_t *x)
{
	ensure_extension(x, false, target_ext_ready);
}

static void
source_ext(pgl_t *x)
{
	ensure_extension(x, true, source_ext_ready);
}

void
pgm_pglogical_provision(pgm_step_t *s)
{
	pgm_job_t *job = s->job;
	pgl_t *x = pgl_get(s);
	cJSON *f = pgl_facts(job);

	pgm_json_set_str(f, "subscription", x->names.sub);
	pgm_json_set_str(f, "subscriber_node", x->names.dst_node);
	pgm_json_set_str(f, "replication_set", x->names.set);
	pgm_job_checkpoint(job);
	pgl_set_phase(x, pgm_calloc(1, sizeof(prov_t)), prov_free);
	pgl_fence(x, source_ext);
}
