/*
 * replay.c — what replaying the target's changes on the source must take
 * into account there: its triggers and its foreign keys' actions, which
 * fire again for every replayed change (session_replication_role needs a
 * superuser, which Heroku gives nobody).
 *
 * Triggers: before the reverse stream applies anything, every enabled user
 * trigger of the source (not the internal ones that enforce foreign keys,
 * not pgmover's capture triggers) is disabled with ALTER TABLE ... DISABLE
 * TRIGGER, as the table owner, while the source is frozen: the target's
 * WAL already holds what the target's own triggers wrote (audit rows, a
 * rewritten column), so firing them again on the source would write it
 * twice. The triggers are recorded first, an artifact (kind
 * "source_triggers") naming each table and each trigger with its previous
 * tgenabled, so that rollback (before the source takes writes again),
 * finish and a failed cutover's unwind enable again exactly those, and
 * only if they are still disabled; one the user had disabled stays so.
 * ALTER TABLE takes a SHARE ROW EXCLUSIVE lock, which waits behind an
 * anti-wraparound VACUUM or a long transaction: each table is one short
 * transaction with lock_timeout = 1s, retried every second, like the
 * triggers method's CREATE TRIGGER (REPLAY_LOCK_TRIES).
 *
 * Foreign keys' actions cannot be disabled without a superuser: their
 * rules (which tables an ON DELETE CASCADE empties, which columns an ON
 * UPDATE CASCADE or a SET NULL / SET DEFAULT sets) are read from the
 * source's catalog each time the stream connects, and the decoder
 * (pgoutput.c, pgm_pgo_fk_rule) recognises their effects.
 */
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "fsm/artifact.h"
#include "fsm/job.h"
#include "pg/pgoutput.h"
#include "pipeline/cutover/replay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KIND_TRIGGERS "source_triggers"
#define REPLAY_LOCK_TRIES 60 /* one second each */

/* the tables the source's foreign key actions write to, and what they do there */
static const char *rules_sql =
	"SELECT coalesce(json_agg(json_build_object('nsp', n.nspname, 'rel', c.relname, 'cascaded', x.cascaded,"
	"                                           'cols', coalesce(x.cols, '{}'))), '[]')::text"
	"  FROM (SELECT k.conrelid, bool_or(k.confdeltype = 'c') AS cascaded,"
	"               array_agg(DISTINCT a.attname::text) FILTER (WHERE k.confupdtype IN ('c', 'n', 'd')"
	"                                                          OR k.confdeltype IN ('n', 'd')) AS cols"
	"          FROM pg_constraint k CROSS JOIN LATERAL unnest(k.conkey) AS u(attnum)"
	"          JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.attnum"
	"         WHERE k.contype = 'f' GROUP BY k.conrelid) x"
	"  JOIN pg_class c ON c.oid = x.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace";

/*
 * The enabled user triggers, by table: a partition's clone of its parent's
 * trigger (tgparentid) goes with the parent's, which ALTER TABLE recurses to
 */
static const char *triggers_sql =
	"SELECT coalesce(json_agg(json_build_object('t', x.t, 'triggers', x.trg) ORDER BY x.t), '[]')::text"
	"  FROM (SELECT format('%I.%I', n.nspname, c.relname) AS t,"
	"               json_agg(json_build_object('name', g.tgname, 'was', g.tgenabled) ORDER BY g.tgname) AS trg"
	"          FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
	"         WHERE NOT g.tgisinternal AND g.tgparentid = 0 AND g.tgenabled IN ('O', 'A')"
	"           AND g.tgname NOT LIKE 'pgmover\\_capture\\_%' AND n.nspname NOT LIKE 'pgmover\\_%'"
	"           AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
	"         GROUP BY n.nspname, c.relname) x";

typedef struct run {
	pgm_step_t *s;
	pgm_pg_conn_t *conn;
	uv_timer_t *timer;
	bool enable; /* restore: enable again; else prepare: disable */
	cJSON *art;  /* the record being worked on */
	int table;   /* its next table */
	int tries;   /* lock timeouts in a row */
	int tables_done, triggers_done;
	cJSON *rules;       /* prepare: what the foreign keys do (the answer) */
	pgm_replay_cb cb;   /* prepare's caller */
	void *cb_data;      /* ... and its data */
	pgm_flow_t *f;      /* restore's flow */
	pgm_stage_fn then;  /* ... and what follows */
	char *what;         /* what failed, for the error */
	pgm_pg_error_t err; /* a failure of our own (not a server's) */
} run_t;

static void run_next(run_t *t);

static void
run_free(void *p)
{
	run_t *t = p;

	cJSON_Delete(t->rules);
	free(t->what);
	free(t);
}

/* the end: the connection closed, then the answer (err NULL: done) */
static void
run_end(run_t *t, const char *what, const pgm_pg_error_t *err)
{
	pgm_step_t *s = t->s;

	if (t->conn)
		pgm_step_close_conn(s, t->conn);
	t->conn = NULL;
	pgm_step_disown(s, t);
	if (t->enable) {
		if (err)
			pgm_flow_fail_pg(t->f, what, err,
					 "the source role must own the tables (it disabled their triggers); fix the "
					 "cause, then \"pgmover retry\"");
		else
			t->then(t->f);
	} else {
		cJSON *rules = t->rules;

		t->rules = NULL;
		t->cb(t->cb_data, err ? NULL : rules, what, err);
		if (err)
			cJSON_Delete(rules);
	}
	run_free(t);
}

/* an error of our own: sqlstate given, the message ours */
static void
run_fail(run_t *t, const char *sqlstate, const char *what, const char *message)
{
	t->err = (pgm_pg_error_t){.message = (char *) message};
	snprintf(t->err.sqlstate, sizeof(t->err.sqlstate), "%s", sqlstate);
	run_end(t, what, &t->err);
}

static cJSON *
art_tables(const cJSON *a)
{
	return cJSON_GetObjectItem(a, "tables");
}

/* the triggers of one table as an SQL array of names ('{}'-free: an ARRAY[...] of literals) */
static char *
names_array(const cJSON *tbl, bool with_was)
{
	pgm_buf_t b = {0};
	const cJSON *g;
	bool first = true;

	cJSON_ArrayForEach (g, cJSON_GetObjectItem(tbl, "triggers")) {
		char *n = pgm_quote_literal(pgm_json_str(g, "name") ? pgm_json_str(g, "name") : "");

		if (with_was) {
			char *w = pgm_quote_literal(pgm_json_str(g, "was") ? pgm_json_str(g, "was") : "O");

			pgm_buf_appendf(&b, "%s(%s, %s)", first ? "" : ", ", n, w);
			free(w);
		} else {
			pgm_buf_appendf(&b, "%s%s", first ? "" : ", ", n);
		}
		free(n);
		first = false;
	}
	return b.s ? b.s : pgm_strdup("");
}

/*
 * One table's ALTER TABLE, in a transaction of its own that waits at most
 * 1 s for the lock: the recorded triggers that are still there, disabled
 * (those not disabled yet) or enabled again as they were (those still
 * disabled); a table gone is nothing to do
 */
static char *
alter_sql(const run_t *t, const cJSON *tbl)
{
	char *lit = pgm_quote_literal(pgm_json_str(tbl, "t") ? pgm_json_str(tbl, "t") : "");
	char *names = names_array(tbl, t->enable), *body, *sql;

	if (t->enable)
		body = pgm_asprintf(
			"SET LOCAL lock_timeout = '1s';\n"
			"EXECUTE coalesce((SELECT 'ALTER TABLE ' || g.tgrelid::regclass::text || ' ' ||"
			" string_agg(format('ENABLE %%s TRIGGER %%I', CASE w.was WHEN 'A' THEN 'ALWAYS' WHEN 'R' THEN"
			" 'REPLICA' ELSE '' END, g.tgname), ', ')"
			" FROM pg_catalog.pg_trigger g JOIN (VALUES %s) AS w(name, was) ON w.name = g.tgname"
			" WHERE g.tgrelid = pg_catalog.to_regclass(%s) AND g.tgenabled = 'D' GROUP BY g.tgrelid),"
			" 'SELECT 1');\n",
			names[0] ? names : "(NULL, NULL)", lit);
	else
		body = pgm_asprintf(
			"SET LOCAL lock_timeout = '1s';\n"
			"EXECUTE coalesce((SELECT 'ALTER TABLE ' || g.tgrelid::regclass::text || ' ' ||"
			" string_agg(format('DISABLE TRIGGER %%I', g.tgname), ', ')"
			" FROM pg_catalog.pg_trigger g WHERE g.tgrelid = pg_catalog.to_regclass(%s)"
			" AND g.tgname = ANY (ARRAY[%s]::name[]) AND g.tgenabled <> 'D' GROUP BY g.tgrelid),"
			" 'SELECT 1');\n",
			lit, names[0] ? names : "NULL");
	sql = pgm_pgo_do_block("", body, "");
	free(body);
	free(names);
	free(lit);
	return sql;
}

static void on_altered(pgm_pg_conn_t *c, const PGresult *res, const pgm_pg_error_t *err, void *data);

static void
alter_send(run_t *t)
{
	char *sql = alter_sql(t, cJSON_GetArrayItem(art_tables(t->art), t->table));

	pgm_pg_query(t->conn, sql, 0, NULL, on_altered, t);
	free(sql);
}

static void
on_lock_retry(uv_timer_t *timer)
{
	alter_send(timer->data);
}

static void
on_altered(pgm_pg_conn_t *c, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	run_t *t = data;
	const cJSON *tbl = cJSON_GetArrayItem(art_tables(t->art), t->table);
	const char *name = pgm_json_str(tbl, "t") ? pgm_json_str(tbl, "t") : "?";

	if (err && strcmp(err->sqlstate, "55P03") == 0 && ++t->tries < REPLAY_LOCK_TRIES) {
		char *msg = pgm_asprintf("ALTER TABLE %s %s TRIGGER waits for a lock on the source; retrying every "
					 "second (%d of %d)",
					 name, t->enable ? "ENABLE" : "DISABLE", t->tries, REPLAY_LOCK_TRIES);

		if (t->tries == 1 || t->tries % 10 == 0)
			pgm_job_warn(t->s->job, msg,
				     "pgmover waits at most 1 s at a time; end the session that holds the table (an "
				     "anti-wraparound VACUUM must not be cancelled: wait for it)");
		pgm_info("job %s: %s", t->s->job->name, msg);
		free(msg);
		t->timer->data = t;
		uv_timer_start(t->timer, on_lock_retry, 1000, 0);
		return;
	}
	if (err) {
		free(t->what);
		t->what = pgm_asprintf("could not %s the triggers of %s on the source",
				       t->enable ? "enable" : "disable", name);
		run_end(t, t->what, err);
		return;
	}
	t->tries = 0;
	t->tables_done++;
	t->triggers_done += cJSON_GetArraySize(cJSON_GetObjectItem(tbl, "triggers"));
	t->table++;
	run_next(t);
}

/* the records to work on: prepare, those not known disabled; restore, every live one */
static cJSON *
next_record(run_t *t)
{
	cJSON *a;

	cJSON_ArrayForEach (a, t->s->job->artifacts) {
		const char *kind = pgm_json_str(a, "kind");
		pgm_artifact_status_t st = pgm_artifact_status(a);

		if (kind == NULL || strcmp(kind, KIND_TRIGGERS) != 0 || !pgm_artifact_live(a))
			continue;
		/* prepare: a restore cut short left it "dropping", some triggers maybe enabled again */
		if (t->enable || st != PGM_ART_CREATED)
			return a;
	}
	return NULL;
}

/* the next table of the record, or the record's end, or the next record */
static void
run_next(run_t *t)
{
	pgm_job_t *job = t->s->job;

	if (t->art && t->table >= cJSON_GetArraySize(art_tables(t->art))) {
		if (t->enable)
			pgm_artifact_dropped(job, t->art);
		else
			pgm_artifact_created(job, t->art);
		t->art = NULL;
	}
	if (t->art == NULL) {
		t->art = next_record(t);
		t->table = 0;
		if (t->art == NULL) {
			if (t->tables_done > 0)
				pgm_notice("job %s: %s %d user trigger(s) on %d table(s) of the source%s", job->name,
					   t->enable ? "enabled again" : "disabled", t->triggers_done, t->tables_done,
					   t->enable ? "" : " while the target's changes are replayed there");
			run_end(t, NULL, NULL);
			return;
		}
		/* durable before the change: the way back is DROPPING, a disable is CREATING again */
		if (!pgm_artifact_set(job, t->art, t->enable ? PGM_ART_DROPPING : PGM_ART_CREATING)) {
			char *msg = pgm_unsaved_message(job, "the source's triggers");

			run_fail(t, "58030", "could not record the source's triggers", msg);
			free(msg);
			return;
		}
	}
	alter_send(t);
}

/* whether a live record names this trigger of this table (as format('%I.%I') gives it) */
static bool
trigger_recorded(pgm_job_t *job, const char *table, const char *trigger)
{
	const cJSON *a, *tbl, *g;

	cJSON_ArrayForEach (a, job->artifacts) {
		if (!pgm_artifact_live(a) || pgm_json_str(a, "kind") == NULL ||
		    strcmp(pgm_json_str(a, "kind"), KIND_TRIGGERS) != 0)
			continue;
		cJSON_ArrayForEach (tbl, art_tables(a)) {
			if (pgm_json_str(tbl, "t") == NULL || table == NULL ||
			    strcmp(pgm_json_str(tbl, "t"), table) != 0)
				continue;
			cJSON_ArrayForEach (g, cJSON_GetObjectItem(tbl, "triggers"))
				if (pgm_json_str(g, "name") && trigger && strcmp(pgm_json_str(g, "name"), trigger) == 0)
					return true;
		}
	}
	return false;
}

/* prepare: the enabled user triggers, and those no record names yet recorded, durable */
static void
on_triggers(pgm_pg_conn_t *c, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	run_t *t = data;
	cJSON *list, *tbl, *fresh = cJSON_CreateArray(), *extra;

	if (err) {
		run_end(t, "could not read the source's triggers", err);
		cJSON_Delete(fresh);
		return;
	}
	list = cJSON_Parse(pgm_pg_value(res, 0, 0) ? pgm_pg_value(res, 0, 0) : "[]");
	cJSON_ArrayForEach (tbl, list) {
		cJSON *keep = cJSON_CreateArray(), *g;

		cJSON_ArrayForEach (g, cJSON_GetObjectItem(tbl, "triggers")) {
			if (!trigger_recorded(t->s->job, pgm_json_str(tbl, "t"), pgm_json_str(g, "name")))
				cJSON_AddItemToArray(keep, cJSON_Duplicate(g, 1));
		}
		if (cJSON_GetArraySize(keep) > 0) {
			cJSON *o = cJSON_CreateObject();

			pgm_json_set_str(o, "t", pgm_json_str(tbl, "t"));
			pgm_json_set(o, "triggers", keep);
			cJSON_AddItemToArray(fresh, o);
		} else {
			cJSON_Delete(keep);
		}
	}
	cJSON_Delete(list);
	if (cJSON_GetArraySize(fresh) == 0) {
		cJSON_Delete(fresh);
		run_next(t);
		return;
	}
	extra = cJSON_CreateObject();
	pgm_json_set(extra, "tables", fresh);
	pgm_json_set_str(extra, "why", "disabled while the target's changes are replayed on the source");
	if (pgm_artifact_record(t->s->job, KIND_TRIGGERS, "source", NULL, PGM_ART_CREATING, extra) == NULL) {
		char *msg = pgm_unsaved_message(t->s->job, "the source's triggers");

		run_fail(t, "58030", "could not record the source's triggers", msg);
		free(msg);
		return;
	}
	run_next(t);
}

static void
on_rules(pgm_pg_conn_t *c, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	run_t *t = data;

	if (err) {
		run_end(t, "could not read the source's foreign keys", err);
		return;
	}
	t->rules = cJSON_Parse(pgm_pg_value(res, 0, 0) ? pgm_pg_value(res, 0, 0) : "[]");
	if (t->rules == NULL)
		t->rules = cJSON_CreateArray();
	pgm_pg_query(t->conn, triggers_sql, 0, NULL, on_triggers, t);
}

static void
on_session(pgm_pg_conn_t *c, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	run_t *t = data;

	if (err) {
		run_end(t, "could not set up a session on the source", err);
		return;
	}
	if (t->enable)
		run_next(t);
	else
		pgm_pg_query(t->conn, rules_sql, 0, NULL, on_rules, t);
}

static void
on_connect(pgm_pg_conn_t *c, const pgm_pg_error_t *err, void *data)
{
	run_t *t = data;

	if (err) {
		t->conn = NULL; /* the step has forgotten it */
		run_end(t, "could not connect to the source", err);
		return;
	}
	/* the source is frozen: this session lifts it for itself */
	pgm_pg_query(c, "SET default_transaction_read_only = off; SET statement_timeout = 0", 0, NULL, on_session, t);
}

static run_t *
run_start(pgm_step_t *s, bool enable, uv_timer_t *timer)
{
	run_t *t = pgm_calloc(1, sizeof(*t));

	t->s = s;
	t->enable = enable;
	t->timer = timer;
	pgm_step_own(s, t, run_free);
	return t;
}

/* ---- the API (reverse.h) ---- */

void
pgm_replay_prepare(pgm_step_t *s, uv_timer_t *timer, pgm_replay_cb cb, void *data)
{
	run_t *t = run_start(s, false, timer);

	t->cb = cb;
	t->cb_data = data;
	t->conn = pgm_step_connect(s, true, "replay-prepare", on_connect, t);
}

void
pgm_replay_rules_apply(const cJSON *rules, pgm_pgo_t *pgo)
{
	const cJSON *r;

	cJSON_ArrayForEach (r, rules) {
		const cJSON *cols = cJSON_GetObjectItem(r, "cols"), *c;
		int n = 0, size = cJSON_GetArraySize(cols);
		const char **names = pgm_calloc((size_t) (size > 0 ? size : 1), sizeof(char *));

		cJSON_ArrayForEach (c, cols)
			if (cJSON_IsString(c))
				names[n++] = c->valuestring;
		if (pgm_json_str(r, "nsp") && pgm_json_str(r, "rel"))
			pgm_pgo_fk_rule(pgo, pgm_json_str(r, "nsp"), pgm_json_str(r, "rel"),
					cJSON_IsTrue(cJSON_GetObjectItem(r, "cascaded")), names, n);
		free(names);
	}
}

bool
pgm_replay_triggers_live(pgm_job_t *job)
{
	return pgm_artifact_find_live(job, KIND_TRIGGERS, NULL, NULL) != NULL;
}

void
pgm_replay_triggers_restore(pgm_flow_t *f, pgm_stage_fn then)
{
	run_t *t;

	if (!pgm_replay_triggers_live(f->job)) {
		then(f);
		return;
	}
	t = run_start(f->step, true, pgm_step_timer(f->step));
	t->f = f;
	t->then = then;
	t->conn = pgm_step_connect(f->step, true, "replay-restore", on_connect, t);
}
