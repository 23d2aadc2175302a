/*
 * db_freeze.c — the read-only freeze of one side's database, and its
 * undo: the source's freeze (freeze.c) and the target's during a rollback
 * (rollback.c) are this one, told apart by a pgm_db_freeze_t.
 *
 *   1. the session lifts the read-only default for itself: a database
 *      frozen already (by an earlier attempt, by its DBA) would make it
 *      read-only, and ALTER DATABASE cannot run in a read-only transaction;
 *   2. the database's own default_transaction_read_only is recorded
 *      (durable) before anything changes, once: thaw and abort find it
 *      after a crash, and put back exactly that;
 *   3. ALTER DATABASE ... SET default_transaction_read_only = on: new
 *      sessions are read-only;
 *   4. the other client sessions the filter selects are signalled at once
 *      (waiting for each in turn took 100 ms a session), then up to 5 s
 *      for them to be gone.
 *
 * The thaw lifts the default in its own session first (a read-only freeze
 * blocks its own undo otherwise), then SETs the recorded value or RESETs.
 */
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "fsm/artifact.h"
#include "pipeline/freeze/freeze.h"

#include <stdlib.h>
#include <string.h>

static const char *previous_sql =
	"SELECT current_database(),"
	"       (SELECT split_part(cfg, '=', 2) FROM pg_db_role_setting rs, unnest(rs.setconfig) cfg"
	"         WHERE rs.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())"
	"           AND rs.setrole = 0 AND cfg LIKE 'default\\_transaction\\_read\\_only=%'),"
	"       (SELECT string_agg(r.rolname, ', ') FROM pg_db_role_setting rs JOIN pg_roles r ON r.oid = rs.setrole,"
	"               unnest(rs.setconfig) cfg"
	"         WHERE rs.setrole <> 0 AND cfg IN ('default_transaction_read_only=off',"
	"                                          'default_transaction_read_only=false'))";

/* ALTER DATABASE takes a name, not current_database(): format() quotes it */
static const char *alter_sql =
	"DO $pgm$ BEGIN EXECUTE format('ALTER DATABASE %I SET default_transaction_read_only = on',"
	" current_database()); END $pgm$";

static const char *
side_name(const pgm_db_freeze_t *fz)
{
	return fz->source ? "source" : "target";
}

static void
on_previous(pgm_step_t *s, const PGresult *res, void *data)
{
	const pgm_db_freeze_t *fz = data;
	pgm_job_t *job = s->job;
	cJSON *a = cJSON_CreateObject();
	const char *db = pgm_pg_value(res, 0, 0);
	const char *prev = pgm_pg_value(res, 0, 1);
	const char *overriders = pgm_pg_value(res, 0, 2);
	char *change;

	if (fz->warn && overriders)
		pgm_job_warn(
			job, "some roles override default_transaction_read_only = off and will still be able to write",
			"ALTER ROLE ... RESET default_transaction_read_only for those roles, or use freeze_mode = both "
			"with a maintenance-mode freeze_command");
	if (fz->warn && prev && (strcmp(prev, "on") == 0 || strcmp(prev, "true") == 0))
		pgm_job_warn(
			job,
			"the source database was read-only before this freeze (default_transaction_read_only = on)",
			"thaw and abort put back what was there, so they leave it read-only: ALTER DATABASE ... RESET "
			"default_transaction_read_only (or SET it off) once writes should resume");
	/* durable before the change, so thaw and abort find it after a crash */
	pgm_json_set_str(a, "database", db);
	pgm_json_set_str(a, "setting", "default_transaction_read_only");
	pgm_json_set_str(a, "previous", prev);
	change = pgm_asprintf("the read-only freeze of the %s", side_name(fz));
	(void) pgm_sql_record(s, pgm_artifact_record(job, fz->kind, side_name(fz), db, PGM_ART_CREATING, a), change);
	free(change);
}

/*
 * The other client sessions of the database the filter selects, and
 * whether this role may signal each: a superuser any, a member of
 * pg_signal_backend (as Heroku's default credential is) any but a
 * superuser's, anyone else its own roles' sessions.
 */
static char *
sessions_cte(const pgm_db_freeze_t *fz, const pgm_job_t *job)
{
	char *filter, *cte;

	if (fz->sessions == PGM_SESSIONS_ALL_BUT_JOB) {
		/* application_name: pgmover:<job>:<purpose> (step.c); a job name needs no escaping in a DO block */
		char *mine = pgm_asprintf("pgmover:%s:%%", job->name), *lit = pgm_quote_literal(mine);

		filter = pgm_asprintf("a.application_name NOT LIKE %s", lit);
		free(lit);
		free(mine);
	} else {
		filter = pgm_strdup("true");
	}
	cte = pgm_asprintf(
		"WITH me AS (SELECT rolsuper AS su, pg_has_role(current_user, 'pg_signal_backend', 'MEMBER') AS sig"
		"              FROM pg_roles WHERE rolname = current_user),"
		" s AS (SELECT a.pid, a.usename, r.rolsuper,"
		"              (me.su OR (NOT r.rolsuper AND (me.sig OR pg_has_role(current_user, a.usesysid, 'MEMBER'))))"
		"                AS may_signal"
		"         FROM pg_stat_activity a JOIN pg_roles r ON r.oid = a.usesysid, me"
		"        WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()"
		"          AND a.backend_type = 'client backend' AND %s)",
		filter);
	free(filter);
	return cte;
}

static void
on_terminated(pgm_step_t *s, const PGresult *res, void *data)
{
	const pgm_db_freeze_t *fz = data;
	pgm_job_t *job = s->job;
	int64_t untouchable = pgm_pg_int64(res, 0, 1, 0);

	pgm_json_set_num(pgm_json_obj(job->facts, fz->facts), fz->sessions_fact, (double) pgm_pg_int64(res, 0, 0, 0));
	if (fz->sessions == PGM_SESSIONS_SIGNALLABLE && untouchable > 0) {
		char *msg = pgm_asprintf("%lld session(s) of %s could not be terminated (superuser)",
					 (long long) untouchable, pgm_pg_value(res, 0, 2));
		pgm_job_warn(job, msg, "close them yourself; the freeze check will fail if they write");
		free(msg);
	}
}

/*
 * Signal them all, then wait until they are gone (their statistics are
 * flushed when they exit, which the source's freeze check relies on). A
 * session the filter wants ended whatever it takes (ALL_BUT_JOB) is
 * signalled even when the role may not: the server's refusal fails the
 * freeze.
 */
static void
add_terminate(pgm_sql_t *q, const pgm_db_freeze_t *fz, const pgm_job_t *job)
{
	char *cte = sessions_cte(fz, job);
	const char *all = fz->sessions == PGM_SESSIONS_ALL_BUT_JOB ? "true" : "false";
	char *sql = pgm_asprintf("%s SELECT count(*) FILTER (WHERE (may_signal OR %s) AND pg_terminate_backend(pid)),"
				 "        count(*) FILTER (WHERE NOT may_signal),"
				 "        string_agg(DISTINCT usename, ', ') FILTER (WHERE NOT may_signal)"
				 "   FROM s",
				 cte, all);

	pgm_sql_add(q, sql, on_terminated, (void *) fz);
	free(sql);
	sql = pgm_asprintf("DO $pgm$ DECLARE deadline timestamptz := clock_timestamp() + interval '5 s'; BEGIN"
			   "  LOOP"
			   "    PERFORM pg_stat_clear_snapshot();"
			   "    EXIT WHEN clock_timestamp() > deadline OR NOT EXISTS ("
			   "      %s SELECT 1 FROM s WHERE may_signal OR %s);"
			   "    PERFORM pg_sleep(0.01);"
			   "  END LOOP;"
			   " END $pgm$",
			   cte, all);
	pgm_sql_add(q, sql, NULL, NULL);
	free(sql);
	free(cte);
}

void
pgm_db_freeze(pgm_step_t *s, const pgm_db_freeze_t *fz, pgm_sql_error_cb on_error, void *error_data,
	      pgm_step_then_fn then, void *data)
{
	pgm_job_t *job = s->job;
	pgm_sql_t *q = pgm_sql_begin(s, fz->source, fz->purpose, fz->what, fz->hint);

	if (on_error)
		pgm_sql_on_error(q, on_error, error_data);
	pgm_sql_add(q, "SET default_transaction_read_only = off", NULL, NULL);
	if (pgm_artifact_find_live(job, fz->kind, NULL, NULL) == NULL)
		pgm_sql_add(q, previous_sql, on_previous, (void *) fz);
	pgm_sql_add(q, alter_sql, NULL, NULL);
	if (fz->more)
		fz->more(q, job);
	add_terminate(q, fz, job);
	if (fz->after)
		fz->after(q, job);
	pgm_sql_run(q, then, data);
}

static void
on_thawed(pgm_step_t *s, const PGresult *res, void *data)
{
	pgm_artifact_dropped(s->job, data);
}

void
pgm_db_thaw(pgm_step_t *s, const pgm_db_freeze_t *fz, cJSON *a, pgm_sql_error_cb on_error, void *error_data,
	    pgm_step_then_fn then, void *data)
{
	/* the source's records name the database in "database", the target's in "name" only */
	const char *name = pgm_json_str(a, "database") ? pgm_json_str(a, "database") : pgm_json_str(a, "name");
	const char *prev = pgm_json_str(a, "previous");
	char *db = pgm_quote_ident(name), *val = prev ? pgm_quote_literal(prev) : NULL, *sql;
	pgm_sql_t *q = pgm_sql_begin(s, fz->source, fz->thaw_purpose, fz->thaw_what, fz->thaw_hint);

	if (on_error)
		pgm_sql_on_error(q, on_error, error_data);
	/* a session that inherited the read-only default must lift it first */
	pgm_sql_add(q, "SET default_transaction_read_only = off", NULL, NULL);
	if (val)
		sql = pgm_asprintf("ALTER DATABASE %s SET default_transaction_read_only = %s", db, val);
	else
		sql = pgm_asprintf("ALTER DATABASE %s RESET default_transaction_read_only", db);
	pgm_sql_add(q, sql, on_thawed, a);
	pgm_sql_run(q, then, data);
	free(sql);
	free(db);
	free(val);
}
