/*
 * reverse_tables.c — the tables the reverse stream does not carry back.
 *
 * The rollback window's promise is that every write made on the target
 * reaches the source. It holds only for the tables the stream decodes and
 * the source can apply into. A table is not carried when
 *
 *   unlogged            its writes are not in the WAL (never decoded)
 *   unpublished         the publication is FOR TABLE the tables of the
 *                       cutover (a role that is not a superuser): one made
 *                       later (a deploy's migration, a new partition of a
 *                       table published by its own name) is not in it
 *   missing_on_source   decoded (FOR ALL TABLES, or published), but the
 *                       source has no table of the name it is published
 *                       under to apply its writes into
 *
 * Each round of the stream (window and drain) looks at the target's
 * catalog and asks the source which of the published names it lacks
 * (pgm_reverse_tables_check). A table found is kept in
 * facts.reverse.uncarried {table, kind, reason, detected_at}, a job warning
 * "rollback would lose writes to TABLE: ...", an audit line and a watch
 * event, at once; `rollback` then refuses without --accept-loss
 * (pgm_rollback_loss_check). An entry goes away when its table is dropped;
 * a missing_on_source one also when the source gets the table (its writes
 * were never skipped: the stream stops on them). An unlogged or unpublished
 * table that becomes carried keeps its entry: what was written before is
 * not in the stream.
 *
 * One kind is carried back by itself: a new partition published under its
 * own name (FOR TABLE its parent, or FOR ALL TABLES) whose parent the
 * source has is made there (CREATE TABLE ... PARTITION OF, which gives it
 * the parent's columns, keys and defaults) in the round that finds it,
 * before that round reads the slot, so every change of it is applied:
 * facts.reverse.carried, an audit line. A new plain table is not (its
 * definition, defaults, sequences and the rows written before it was
 * published would have to be made on the source: not done).
 */
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "pipeline/cutover/reverse.h"
#include "fsm/job.h"

#include <stdlib.h>
#include <string.h>

/* every application table of the target: its name, unlogged, and the name it is published under (or NULL) */
static const char *target_sql =
	"WITH pub AS MATERIALIZED ("
	"  SELECT c.oid FROM pg_publication_tables pt"
	"    JOIN pg_namespace n ON n.nspname = pt.schemaname"
	"    JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = pt.tablename"
	"   WHERE pt.pubname = $1)"
	" SELECT format('%I.%I', n.nspname, c.relname), c.relpersistence = 'u',"
	"        (SELECT format('%I.%I', an.nspname, ac.relname)"
	/* the table itself, then its ancestors up (pg_partition_ancestors has none for a plain table) */
	"           FROM (SELECT c.oid, 0 UNION ALL SELECT * FROM pg_partition_ancestors(c.oid) WITH ORDINALITY)"
	"                a(relid, o)"
	"           JOIN pg_class ac ON ac.oid = a.relid JOIN pg_namespace an ON an.oid = ac.relnamespace"
	"          WHERE a.relid IN (SELECT oid FROM pub) ORDER BY a.o LIMIT 1),"
	/* a partition: what makes it on the source (a partition of its parent there inherits all else) */
	"        CASE WHEN c.relispartition THEN format('CREATE TABLE IF NOT EXISTS %I.%I PARTITION OF %s %s',"
	"             n.nspname, c.relname, (SELECT format('%I.%I', pn.nspname, p.relname) FROM pg_inherits i"
	"               JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace pn ON pn.oid = p.relnamespace"
	"              WHERE i.inhrelid = c.oid), pg_get_expr(c.relpartbound, c.oid)) END"
	"   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
	"  WHERE c.relkind = 'r' AND c.relpersistence IN ('p', 'u')"
	"    AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_'"
	"    AND n.nspname !~ '^pgmover_'"
	"    AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid"
	"                    AND d.deptype = 'e')"
	"  ORDER BY 1";

/* of the names given (a JSON array), those the source has no table of */
static const char *source_sql = "SELECT t FROM json_array_elements_text($1::json) t WHERE to_regclass(t) IS NULL";

static cJSON *
uncarried_list(pgm_job_t *job)
{
	cJSON *o = pgm_json_obj(job->facts, "reverse"), *a = cJSON_GetObjectItemCaseSensitive(o, "uncarried");

	if (!cJSON_IsArray(a)) {
		a = cJSON_CreateArray();
		pgm_json_set(o, "uncarried", a);
	}
	return a;
}

static const cJSON *
uncarried_find(const cJSON *list, const char *table)
{
	const cJSON *e;

	cJSON_ArrayForEach (e, list) {
		const char *t = pgm_json_str(e, "table");

		if (t && strcmp(t, table) == 0)
			return e;
	}
	return NULL;
}

char *
pgm_reverse_uncarried_warning(const cJSON *entry)
{
	return pgm_asprintf("rollback would lose writes to %s: %s", pgm_json_str(entry, "table") ?: "?",
			    pgm_json_str(entry, "reason") ?: "not carried by the reverse stream");
}

/* what to do about one (malloc'd) */
static char *
uncarried_hint(const pgm_job_t *job, const char *kind)
{
	if (kind && strcmp(kind, "missing_on_source") == 0)
		return pgm_strdup("create the table on the source as it is on the target (the stream then carries "
				  "it), or drop it on the target; the stream stops at its first write until then");
	return pgm_asprintf("drop the table on the target or move its rows into a carried table, or roll back "
			    "without its writes: \"pgmover rollback %s --accept-loss\"; \"pgmover finish %s\" keeps "
			    "them (the target stays the primary)",
			    job->name, job->name);
}

/* what became of a table that was not carried: gone, carried since, or still lost */
static bool
entry_resolved(const cJSON *entry, const cJSON *tables)
{
	const char *kind = pgm_json_str(entry, "kind");

	if (!cJSON_HasObjectItem(tables, pgm_json_str(entry, "table") ?: ""))
		return true; /* dropped (or renamed: the new name is found anew) */
	return kind && strcmp(kind, "missing_on_source") == 0;
}

int
pgm_reverse_uncarried_note(pgm_job_t *job, const cJSON *found, const cJSON *tables, int64_t now)
{
	cJSON *list = uncarried_list(job), *e, *next;
	const cJSON *f;
	int changes = 0;

	/* resolved ones first: a table whose kind changed is found anew below */
	for (e = list->child; e; e = next) {
		next = e->next;
		if (uncarried_find(found, pgm_json_str(e, "table") ?: "") || !entry_resolved(e, tables))
			continue;
		char *msg = pgm_reverse_uncarried_warning(e), *outcome;

		outcome = pgm_asprintf("resolved: %s", pgm_json_str(e, "table"));
		pgm_job_unwarn(job, msg);
		pgm_job_audit(job, NULL, "reverse:uncarried", pgm_state_name(job->state), NULL, outcome);
		pgm_info("job %s: %s is no longer a table the rollback would lose writes to", job->name,
			 pgm_json_str(e, "table"));
		free(outcome);
		free(msg);
		cJSON_Delete(cJSON_DetachItemViaPointer(list, e));
		changes++;
	}
	cJSON_ArrayForEach (f, found) {
		const char *table = pgm_json_str(f, "table");
		cJSON *entry;
		char *msg, *outcome, *hint;

		if (table == NULL || uncarried_find(list, table))
			continue;
		entry = cJSON_Duplicate(f, 1);
		pgm_json_set_time(entry, "detected_at", now);
		cJSON_AddItemToArray(list, entry);
		msg = pgm_reverse_uncarried_warning(entry);
		hint = uncarried_hint(job, pgm_json_str(entry, "kind"));
		pgm_job_warn(job, msg, hint);
		free(hint);
		outcome = pgm_asprintf("lossy: %s", msg);
		pgm_job_audit(job, NULL, "reverse:uncarried", pgm_state_name(job->state), NULL, outcome);
		free(outcome);
		free(msg);
		changes++;
	}
	return changes;
}

char *
pgm_reverse_uncarried_names(const pgm_job_t *job)
{
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(job->facts, "reverse"),
							     "uncarried"),
		    *e;
	pgm_buf_t b = {0};

	cJSON_ArrayForEach (e, list)
		pgm_buf_appendf(&b, "%s%s", b.len ? ", " : "", pgm_json_str(e, "table") ?: "?");
	return b.s;
}

bool
pgm_rollback_loss_check(const pgm_job_t *job, bool accept_loss, char **message, char **hint)
{
	char *names = pgm_reverse_uncarried_names(job);

	if (names == NULL || accept_loss) {
		free(names);
		return true;
	}
	*message = pgm_asprintf("rollback would lose writes to %s: the reverse stream does not carry %s back to the "
				"source (status lists why)",
				names, strchr(names, ',') ? "these tables" : "this table");
	*hint = pgm_asprintf("drop or move them on the target (the next round of the stream sees it), or roll back "
			     "without their writes: \"pgmover rollback %s --accept-loss\" (\"pgmover retry %s "
			     "--accept-loss\" for a failed rollback); or keep the target: \"pgmover finish %s\"",
			     job->name, job->name, job->name);
	free(names);
	return false;
}

void
pgm_rollback_accept_loss(pgm_job_t *job, const pgm_peer_t *peer)
{
	cJSON *a = cJSON_CreateObject();
	char *names = pgm_reverse_uncarried_names(job), *outcome;

	pgm_json_set_time(a, "at", pgm_now_ms());
	pgm_json_set_str(a, "tables", names ? names : "");
	pgm_json_set(job->facts, "rollback_accept_loss", a);
	outcome = pgm_asprintf("ok: the operator accepts losing the writes made on the target to %s",
			       names ? names : "any table the stream does not carry");
	pgm_job_audit(job, peer, "rollback --accept-loss", pgm_state_name(job->state), NULL, outcome);
	free(outcome);
	free(names);
}

bool
pgm_reverse_drain_lossless(pgm_job_t *job, char **message, char **hint)
{
	bool accepted = cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(job->facts, "rollback_accept_loss"));
	char *names;

	if (!pgm_rollback_loss_check(job, accepted, message, hint))
		return false;
	if ((names = pgm_reverse_uncarried_names(job)) != NULL) {
		cJSON *o = pgm_json_obj(job->facts, "rollback");
		const char *was = pgm_json_str(o, "lost_writes_to");

		if (was == NULL || strcmp(was, names) != 0) {
			char *outcome =
				pgm_asprintf("lossy: accepted: the writes made on the target to %s stay there", names);

			pgm_json_set_str(o, "lost_writes_to", names);
			pgm_job_audit(job, NULL, "rollback:accepted-loss", pgm_state_name(job->state), NULL, outcome);
			free(outcome);
		}
		free(names);
	}
	return true;
}

/* ---- the check, on the stream's two sessions ---- */

typedef struct check {
	pgm_step_t *s;
	pgm_job_t *job;
	pgm_pg_conn_t *src;
	pgm_reverse_tables_cb cb;
	void *data;
	cJSON *found;  /* [{table, kind, reason}] */
	cJSON *tables; /* {name: true} of every table on the target */
	cJSON *asked;  /* [published name], for the source */
	cJSON *askers; /* [table], the same order */
	cJSON *ddl;    /* [statement that makes it on the source, or null], the same order */
	cJSON *made;   /* [table] the source was just asked to make */
} check_t;

static void
check_free(void *p)
{
	check_t *c = p;

	cJSON_Delete(c->found);
	cJSON_Delete(c->tables);
	cJSON_Delete(c->asked);
	cJSON_Delete(c->askers);
	cJSON_Delete(c->ddl);
	cJSON_Delete(c->made);
	free(c);
}

static void
check_end(check_t *c, const pgm_pg_error_t *err)
{
	pgm_reverse_tables_cb cb = c->cb;
	void *data = c->data;

	if (err == NULL && pgm_reverse_uncarried_note(c->job, c->found, c->tables, pgm_now_ms()) > 0)
		pgm_job_checkpoint(c->job);
	pgm_step_disown(c->s, c);
	check_free(c);
	cb(data, err);
}

static void
found_add(check_t *c, const char *table, const char *kind, const char *reason)
{
	cJSON *f = cJSON_CreateObject();

	pgm_json_set_str(f, "table", table);
	pgm_json_set_str(f, "kind", kind);
	pgm_json_set_str(f, "reason", reason);
	cJSON_AddItemToArray(c->found, f);
}

static void on_source(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data);

/* what the source was asked to make and now has: carried from here on, recorded */
static void
carried_note(check_t *c, const PGresult *missing)
{
	const cJSON *t;

	cJSON_ArrayForEach (t, c->made) {
		cJSON *list, *e;
		char *outcome;
		bool still = false;

		for (int i = 0; i < pgm_pg_ntuples(missing); i++)
			still = still || strcmp(pgm_pg_value(missing, i, 0) ?: "", t->valuestring) == 0;
		if (still)
			continue;
		list = cJSON_GetObjectItemCaseSensitive(pgm_json_obj(c->job->facts, "reverse"), "carried");
		if (!cJSON_IsArray(list)) {
			list = cJSON_CreateArray();
			pgm_json_set(pgm_json_obj(c->job->facts, "reverse"), "carried", list);
		}
		e = cJSON_CreateObject();
		pgm_json_set_str(e, "table", t->valuestring);
		pgm_json_set_str(e, "how", "created on the source as a partition of its parent there");
		pgm_json_set_time(e, "at", pgm_now_ms());
		cJSON_AddItemToArray(list, e);
		outcome = pgm_asprintf("ok: %s created on the source as a partition of its parent there: the stream "
				       "carries its writes",
				       t->valuestring);
		pgm_job_audit(c->job, NULL, "reverse:carried", pgm_state_name(c->job->state), NULL, outcome);
		pgm_info("job %s: %s", c->job->name, outcome + 4);
		free(outcome);
		pgm_job_checkpoint(c->job);
	}
}

/*
 * The source lacks these published tables. A partition is made there
 * (CREATE TABLE ... PARTITION OF its parent, which gives it the parent's
 * columns, keys and defaults) before this round reads a change of it:
 * every change of it since it was made is still in the slot. Each in a
 * block of its own that turns a failure (no such parent on the source, an
 * overlapping bound, a lock held over 10 s) into a warning in the source's
 * log; whatever is still missing afterwards is not carried.
 */
static bool
carry_partitions(check_t *c, const PGresult *missing)
{
	pgm_buf_t b = {0};
	char *names, *lit;

	for (int i = 0; i < pgm_pg_ntuples(missing); i++) {
		int n = cJSON_GetArraySize(c->asked);

		for (int j = 0; j < n; j++) {
			const char *as = cJSON_GetStringValue(cJSON_GetArrayItem(c->asked, j));
			const char *ddl = cJSON_GetStringValue(cJSON_GetArrayItem(c->ddl, j));
			char *name;

			/* a name holding the block's tag would end it early: such a table is left alone */
			if (ddl == NULL || as == NULL || strcmp(as, pgm_pg_value(missing, i, 0) ?: "") != 0 ||
			    strstr(ddl, "$pgm_carry$") != NULL)
				continue;
			lit = pgm_quote_literal(ddl);
			name = pgm_quote_literal(as);
			pgm_buf_appendf(&b,
					"%sDO $pgm_carry$ BEGIN EXECUTE %s; EXCEPTION WHEN others THEN RAISE WARNING "
					"'pgmover: could not make %%: %%', %s, SQLERRM; END $pgm_carry$; ",
					b.len ? "" : "BEGIN; SET LOCAL lock_timeout = '10s'; ", lit, name);
			cJSON_AddItemToArray(c->made, cJSON_CreateString(as));
			free(lit);
			free(name);
		}
	}
	if (b.len == 0)
		return false;
	/* then ask again what the source lacks (a script of several statements takes no parameters) */
	names = cJSON_PrintUnformatted(c->asked);
	lit = pgm_quote_literal(names);
	pgm_buf_appendf(&b, "COMMIT; SELECT t FROM json_array_elements_text(%s::json) t WHERE to_regclass(t) IS NULL",
			lit);
	pgm_pg_query(c->src, b.s, 0, NULL, on_source, c);
	free(lit);
	cJSON_free(names);
	free(b.s);
	return true;
}

static void
on_source(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	check_t *c = data;

	if (err) {
		check_end(c, err);
		return;
	}
	if (cJSON_GetArraySize(c->made) == 0 && carry_partitions(c, res))
		return;
	carried_note(c, res);
	for (int i = 0; i < pgm_pg_ntuples(res); i++) {
		const char *missing = pgm_pg_value(res, i, 0);
		int n = cJSON_GetArraySize(c->asked);

		for (int j = 0; missing && j < n; j++) {
			const char *as = cJSON_GetStringValue(cJSON_GetArrayItem(c->asked, j));
			const char *table = cJSON_GetStringValue(cJSON_GetArrayItem(c->askers, j));
			char *reason;

			if (as == NULL || table == NULL || strcmp(as, missing) != 0)
				continue;
			reason = pgm_asprintf("the source has no table %s to apply its writes into", as);
			found_add(c, table, "missing_on_source", reason);
			free(reason);
		}
	}
	check_end(c, NULL);
}

static void
on_target(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	check_t *c = data;
	char *names;
	const char *params[1];

	if (err) {
		check_end(c, err);
		return;
	}
	for (int i = 0; i < pgm_pg_ntuples(res); i++) {
		const char *table = pgm_pg_value(res, i, 0), *as = pgm_pg_value(res, i, 2);
		bool unlogged = strcmp(pgm_pg_value(res, i, 1) ?: "f", "t") == 0;

		if (table == NULL)
			continue;
		cJSON_AddTrueToObject(c->tables, table);
		if (unlogged)
			found_add(c, table, "unlogged",
				  "an unlogged table: its writes are not in the WAL the stream decodes");
		else if (as == NULL)
			found_add(
				c, table, "unpublished",
				"not in the reverse stream's publication (it names the tables there were at cutover): "
				"its writes are not decoded");
		else {
			cJSON_AddItemToArray(c->asked, cJSON_CreateString(as));
			cJSON_AddItemToArray(c->askers, cJSON_CreateString(table));
			/* only what is published under its own name can be made on the source as it is */
			cJSON_AddItemToArray(c->ddl, pgm_pg_value(res, i, 3) && strcmp(as, table) == 0
							     ? cJSON_CreateString(pgm_pg_value(res, i, 3))
							     : cJSON_CreateNull());
		}
	}
	if (cJSON_GetArraySize(c->asked) == 0) {
		check_end(c, NULL);
		return;
	}
	names = cJSON_PrintUnformatted(c->asked);
	params[0] = names;
	pgm_pg_query(c->src, source_sql, 1, params, on_source, c);
	cJSON_free(names);
}

void
pgm_reverse_tables_check(pgm_step_t *s, pgm_pg_conn_t *tgt, pgm_pg_conn_t *src, const char *publication,
			 pgm_reverse_tables_cb cb, void *data)
{
	check_t *c = pgm_calloc(1, sizeof(*c));
	const char *params[1] = {publication};

	c->s = s;
	c->job = s->job;
	pgm_step_own(s, c, check_free);
	c->src = src;
	c->cb = cb;
	c->data = data;
	c->found = cJSON_CreateArray();
	c->tables = cJSON_CreateObject();
	c->asked = cJSON_CreateArray();
	c->askers = cJSON_CreateArray();
	c->ddl = cJSON_CreateArray();
	c->made = cJSON_CreateArray();
	pgm_pg_query(tgt, target_sql, 1, params, on_target, c);
}
