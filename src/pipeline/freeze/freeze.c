/*
 * freeze.c — stop writes on the source, undo exactly that, and prove the
 * freeze held.
 *
 * The read-only freeze works with the Heroku default credential (database
 * owner, member of pg_signal_backend): ALTER DATABASE ... SET
 * default_transaction_read_only = on makes new sessions read-only, and the
 * sessions already open are terminated (db_freeze.c, which the rollback's
 * freeze of the target uses too); freeze_roles and freeze_command are the
 * source's own. A session can still override the
 * default, so the freeze is checked afterwards: the row-change counters of
 * every user table must not move while the source is frozen.
 *
 * Every change is recorded in the job's artifacts (and made durable)
 * before it is made, so thaw and abort undo exactly what was done.
 */
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "fsm/artifact.h"
#include "pipeline/freeze/freeze.h"
#include "pipeline/sql.h"
#include "pipeline/hooks.h"

#include <stdlib.h>
#include <string.h>

#define KIND_DB_SETTING "db_setting"
#define KIND_ROLE_SETTING "role_setting"
#define KIND_HOOK "freeze_command"

/* a live record of the registry of this kind */
static bool
artifact_active(const cJSON *a, const char *kind)
{
	return strcmp(pgm_json_str(a, "kind") ? pgm_json_str(a, "kind") : "", kind) == 0 && pgm_artifact_live(a);
}

bool
pgm_freeze_active(const pgm_job_t *job)
{
	const cJSON *a;

	cJSON_ArrayForEach (a, job->artifacts) {
		if (artifact_active(a, KIND_DB_SETTING) || artifact_active(a, KIND_ROLE_SETTING) ||
		    artifact_active(a, KIND_HOOK))
			return true;
	}
	return false;
}

bool
pgm_job_source_frozen(const pgm_job_t *job)
{
	return pgm_freeze_active(job);
}

/* "1 h", "90 s": a bound as the operator reads it */
static char *
bound_text(int64_t ms)
{
	if (ms >= 3600000 && ms % 3600000 == 0)
		return pgm_asprintf("%lld h", (long long) (ms / 3600000));
	if (ms >= 60000 && ms % 60000 == 0)
		return pgm_asprintf("%lld min", (long long) (ms / 60000));
	return pgm_asprintf("%lld s", (long long) ((ms + 999) / 1000));
}

/*
 * freeze_timeout is over: the step stops, saying how long the source has
 * been frozen, what the step was waiting for, and how to let writes in.
 */
static void
on_freeze_timeout(uv_timer_t *t)
{
	pgm_step_t *s = t->data;
	pgm_job_t *job = s->job;
	char *bound = bound_text(pgm_jobopt_int(job->options, "freeze_timeout"));
	char *waits = pgm_step_describe_waits(s);
	const char *phase = pgm_json_str(job->progress, "phase");
	char *msg, *detail, *hint;

	msg = pgm_asprintf(
		"the source has been frozen for longer than freeze_timeout (%s): step %s in state %s stopped "
		"waiting%s%s",
		bound, pgm_transitions[s->row].step_name, pgm_state_name(job->state), phase ? " in phase " : "",
		phase ? phase : "");
	if (waits)
		detail = pgm_asprintf("it was waiting for %s", waits);
	else if (job->state == PGM_ST_VERIFIED || job->state == PGM_ST_VERIFY_FAILED)
		detail = pgm_strdup("it was waiting for the operator (cutover, thaw or abort)");
	else
		detail = NULL;
	hint = pgm_asprintf("the source is still frozen (writes are refused): \"pgmover thaw %s\" allows writes "
			    "again; or raise the bound (\"pgmover set %s --set freeze_timeout=...\") and \"pgmover "
			    "retry %s\"",
			    job->name, job->name, job->name);
	pgm_step_fail(s, msg, detail, hint);
	free(msg);
	free(detail);
	free(hint);
	free(waits);
	free(bound);
}

void
pgm_freeze_guard(pgm_step_t *s)
{
	pgm_job_t *job = s->job;
	int64_t left;

	if (job->freeze_started_ms <= 0 || s->freeze_guard)
		return;
	left = job->freeze_started_ms + pgm_jobopt_int(job->options, "freeze_timeout") - pgm_now_ms();
	s->freeze_guard = pgm_step_timer(s);
	uv_timer_start(s->freeze_guard, on_freeze_timeout, (uint64_t) (left > 0 ? left : 0), 0);
}

static cJSON *
find_active(pgm_job_t *job, const char *kind)
{
	return pgm_artifact_find_live(job, kind, NULL, NULL);
}

/* ---- freeze ---- */

/* a backup file as the source has nothing to make read-only: only the hook */
static const char *
freeze_mode(const pgm_job_t *job)
{
	return pgm_job_source_file(job) ? "command" : pgm_jobopt_str(job->options, "freeze_mode");
}

/* the freeze's state, the step's until it ends */
typedef struct freeze {
	pgm_step_then_fn then;
	void *data;
} freeze_t;

/*
 * The row changes of the user's tables; tables of extensions are left out:
 * pglogical's own (pglogical.queue) take writes from its workers while the
 * source is frozen, which are not the application's; so is the change log
 * of the triggers method, which its drain empties after the freeze.
 */
#define USER_ROW_CHANGES                                                                                                               \
	"(SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_user_tables t"                                       \
	"  WHERE t.schemaname !~ '^pgmover_capture_' AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass" \
	"                      AND d.objid = t.relid AND d.deptype = 'e'))::bigint"

static const char *baseline_sql = "SELECT pg_current_wal_lsn()::text, " USER_ROW_CHANGES;

static void
on_baseline(pgm_step_t *s, const PGresult *res, void *data)
{
	cJSON *f = pgm_json_obj(s->job->facts, "freeze");

	pgm_json_set_str(f, "lsn_at_freeze", pgm_pg_value(res, 0, 0));
	pgm_json_set_num(f, "row_changes_at_freeze", (double) pgm_pg_int64(res, 0, 1, 0));
}

/* the role's own setting in this database, before freeze sets it */
static const char *role_previous_sql =
	"SELECT $1::text, current_database(),"
	"       (SELECT split_part(cfg, '=', 2) FROM pg_db_role_setting rs, unnest(rs.setconfig) cfg"
	"         WHERE rs.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())"
	"           AND rs.setrole = (SELECT oid FROM pg_roles WHERE rolname = $1)"
	"           AND cfg LIKE 'default\\_transaction\\_read\\_only=%'),"
	"       EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)";

static bool
role_frozen(const pgm_job_t *job, const char *role)
{
	const cJSON *a;

	cJSON_ArrayForEach (a, job->artifacts) {
		const char *r = pgm_json_str(a, "role");
		if (artifact_active(a, KIND_ROLE_SETTING) && r && strcmp(r, role) == 0)
			return true;
	}
	return false;
}

static void
on_role_previous(pgm_step_t *s, const PGresult *res, void *data)
{
	pgm_job_t *job = s->job;
	cJSON *a;

	if (strcmp(pgm_pg_value(res, 0, 3), "t") != 0) {
		char *msg = pgm_asprintf("role \"%s\" of freeze_roles does not exist on the source",
					 pgm_pg_value(res, 0, 0));
		pgm_step_fail(s, msg, NULL, "list the application's roles in freeze_roles, comma-separated");
		free(msg);
		return;
	}
	/* durable before the change, like the database setting */
	a = cJSON_CreateObject();
	pgm_json_set_str(a, "role", pgm_pg_value(res, 0, 0));
	pgm_json_set_str(a, "database", pgm_pg_value(res, 0, 1));
	pgm_json_set_str(a, "setting", "default_transaction_read_only");
	pgm_json_set_str(a, "previous", pgm_pg_value(res, 0, 2));
	(void) pgm_sql_record(
		s, pgm_artifact_record(job, KIND_ROLE_SETTING, "source", pgm_pg_value(res, 0, 0), PGM_ART_CREATING, a),
		"the read-only freeze of a role");
}

/*
 * freeze_roles: ALTER ROLE r IN DATABASE db SET default_transaction_read_only
 * = on for each application role listed (the most specific setting, which a
 * role's own "off" cannot override). A role may change its own settings;
 * changing another's needs CREATEROLE.
 */
static void
add_role_freezes(pgm_sql_t *q, pgm_job_t *job)
{
	char *list = pgm_strdup(pgm_jobopt_str(job->options, "freeze_roles"));
	char *save = NULL;

	for (char *role = strtok_r(list, ", ", &save); role; role = strtok_r(NULL, ", ", &save)) {
		const char *params[1] = {role};
		char *lit = pgm_quote_literal(role), *sql;

		if (!role_frozen(job, role))
			pgm_sql_add_params(q, role_previous_sql, 1, params, on_role_previous, NULL);
		sql = pgm_asprintf("DO $pgm$ BEGIN EXECUTE format('ALTER ROLE %%I IN DATABASE %%I SET "
				   "default_transaction_read_only = on', %s, current_database()); END $pgm$",
				   lit);
		pgm_sql_add(q, sql, NULL, NULL);
		free(sql);
		free(lit);
	}
	free(list);
}

/* the proof's baseline, once the sessions are gone (pgm_freeze_check compares) */
static void
add_baseline(pgm_sql_t *q, pgm_job_t *job)
{
	pgm_sql_add(q, baseline_sql, on_baseline, NULL);
}

/*
 * The source's read-only freeze (db_freeze.c). Its session writes (ALTER
 * DATABASE) even when the database is read-only already -- left frozen by
 * an earlier job, or by its DBA: the setting is then recorded as it was,
 * and thaw puts it back.
 */
static const pgm_db_freeze_t source_freeze = {
	.source = true,
	.kind = KIND_DB_SETTING,
	.purpose = "freeze",
	.sessions = PGM_SESSIONS_SIGNALLABLE,
	.facts = "freeze",
	.sessions_fact = "sessions_terminated",
	.warn = true,
	.what = "could not freeze writes on the source",
	.hint = "the source role must own the database (ALTER DATABASE) and be a member of pg_signal_backend to end "
		"other sessions",
	.thaw_purpose = "thaw",
	.thaw_what = "could not undo the freeze on the source",
	.thaw_hint = "the source role must own the database",
	.more = add_role_freezes,
	.after = add_baseline,
};

static void
freeze_finished(pgm_step_t *s, void *data)
{
	pgm_job_t *job = s->job;
	freeze_t *fz = data;
	pgm_step_then_fn then = fz->then;
	void *then_data = fz->data;

	job->freeze_started_ms = pgm_now_ms();
	pgm_json_set_time(pgm_json_obj(job->facts, "freeze"), "started_at", job->freeze_started_ms);
	pgm_job_checkpoint(job);
	pgm_notice("job %s: writes on the source are frozen", job->name);
	pgm_freeze_guard(s);
	pgm_step_disown(s, fz);
	free(fz);
	then(s, then_data);
}

static void
freeze_read_only(pgm_step_t *s, void *data)
{
	if (strcmp(freeze_mode(s->job), "command") == 0) {
		freeze_finished(s, data);
		return;
	}
	pgm_db_freeze(s, &source_freeze, NULL, NULL, freeze_finished, data);
}

void
pgm_freeze_source(pgm_step_t *s, pgm_step_then_fn then, void *data)
{
	pgm_job_t *job = s->job;
	freeze_t *fz = pgm_calloc(1, sizeof(*fz));
	const char *mode = freeze_mode(job);

	fz->then = then;
	fz->data = data;
	pgm_step_own(s, fz, free);
	if (strcmp(mode, "read_only") != 0) {
		if (pgm_jobopt_str(job->options, "freeze_command")[0] == '\0') {
			pgm_step_fail(
				s, "freeze_mode needs a freeze_command", NULL,
				"set freeze_command (e.g. a maintenance-mode switch) or use freeze_mode = read_only");
			return;
		}
		if (find_active(job, KIND_HOOK) == NULL) {
			cJSON *a = cJSON_CreateObject();

			pgm_json_set_str(a, "undo", "thaw_command");
			if (pgm_artifact_record(job, KIND_HOOK, "source", "freeze_command", PGM_ART_CREATING, a) ==
			    NULL) {
				pgm_step_fail_unsaved(s, "freeze_command");
				return;
			}
		}
		pgm_hook_run(s, "freeze_command", "freeze", freeze_read_only, fz);
		return;
	}
	freeze_read_only(s, fz);
}

/* ---- thaw: undo in reverse order what freeze recorded ---- */

/* the thaw's state, the step's until it ends */
typedef struct thaw {
	pgm_step_then_fn then;
	void *data;
	cJSON *current; /* the artifact being undone */
} thaw_t;

static void thaw_next(pgm_step_t *s, thaw_t *th);

static void
thaw_mark_undone(pgm_step_t *s, void *data)
{
	thaw_t *th = data;

	pgm_artifact_dropped(s->job, th->current);
	thaw_next(s, th);
}

/* the database's freeze marks its own record undone */
static void
thaw_db_done(pgm_step_t *s, void *data)
{
	thaw_next(s, data);
}

static void
thaw_next(pgm_step_t *s, thaw_t *th)
{
	pgm_job_t *job = s->job;
	int n = cJSON_GetArraySize(job->artifacts);

	for (int i = n - 1; i >= 0; i--) {
		cJSON *a = cJSON_GetArrayItem(job->artifacts, i);

		if (artifact_active(a, KIND_DB_SETTING)) {
			pgm_db_thaw(s, &source_freeze, a, NULL, NULL, thaw_db_done, th);
			return;
		}
		if (artifact_active(a, KIND_ROLE_SETTING)) {
			const char *prev = pgm_json_str(a, "previous");
			char *role = pgm_quote_ident(pgm_json_str(a, "role"));
			char *db = pgm_quote_ident(pgm_json_str(a, "database"));
			char *sql, *val = prev ? pgm_quote_literal(prev) : NULL;
			pgm_sql_t *q =
				pgm_sql_begin(s, true, "thaw", "could not undo the freeze of a role on the source",
					      "the source role may change its own settings; another role's need "
					      "CREATEROLE");

			pgm_sql_add(q, "SET default_transaction_read_only = off", NULL, NULL);
			if (val)
				sql = pgm_asprintf(
					"ALTER ROLE %s IN DATABASE %s SET default_transaction_read_only = %s", role, db,
					val);
			else
				sql = pgm_asprintf("ALTER ROLE %s IN DATABASE %s RESET default_transaction_read_only",
						   role, db);
			/*
			 * The artifact is recorded before the ALTER: if that ALTER never
			 * happened (it failed, or the daemon died first), there is
			 * nothing to undo, and trying could fail for want of privilege.
			 */
			{
				char *rlit = pgm_quote_literal(pgm_json_str(a, "role"));
				char *dlit = pgm_quote_literal(pgm_json_str(a, "database"));
				char *slit = pgm_quote_literal(sql);
				char *guarded = pgm_asprintf(
					"DO $pgm$ BEGIN IF EXISTS (SELECT 1 FROM pg_db_role_setting rs, unnest(rs.setconfig) cfg"
					" WHERE rs.setdatabase = (SELECT oid FROM pg_database WHERE datname = %s)"
					" AND rs.setrole = (SELECT oid FROM pg_roles WHERE rolname = %s)"
					" AND cfg = 'default_transaction_read_only=on') THEN EXECUTE %s; END IF; END $pgm$",
					dlit, rlit, slit);
				pgm_sql_add(q, guarded, NULL, NULL);
				free(guarded);
				free(slit);
				free(dlit);
				free(rlit);
			}
			free(sql);
			free(role);
			free(db);
			free(val);
			th->current = a;
			pgm_sql_run(q, thaw_mark_undone, th);
			return;
		}
		if (artifact_active(a, KIND_HOOK)) {
			th->current = a;
			pgm_hook_run(s, "thaw_command", "thaw", thaw_mark_undone, th);
			return;
		}
	}
	job->freeze_started_ms = 0;
	pgm_job_checkpoint(job);
	pgm_notice("job %s: the source accepts writes again", job->name);
	{
		pgm_step_then_fn then = th->then;
		void *then_data = th->data;

		pgm_step_disown(s, th);
		free(th);
		then(s, then_data);
	}
}

void
pgm_thaw_source(pgm_step_t *s, pgm_step_then_fn then, void *data)
{
	thaw_t *th = pgm_calloc(1, sizeof(*th));

	th->then = then;
	th->data = data;
	pgm_step_own(s, th, free);
	thaw_next(s, th);
}

/* ---- the proof: nothing was written while the source was frozen ---- */

/* the check's state, the step's until it ends */
typedef struct check {
	pgm_step_then_fn then;
	void *data;
} check_t;

static void
on_check(pgm_step_t *s, const PGresult *res, void *data)
{
	pgm_job_t *job = s->job;
	cJSON *f = pgm_json_obj(job->facts, "freeze");
	cJSON *c = cJSON_CreateObject();
	int64_t base = (int64_t) pgm_json_num(f, "row_changes_at_freeze", -1);
	int64_t now = pgm_pg_int64(res, 0, 1, 0);
	int64_t wal = pgm_pg_int64(res, 0, 2, 0);

	pgm_json_set_str(c, "lsn", pgm_pg_value(res, 0, 0));
	pgm_json_set_num(c, "wal_bytes_since_freeze", (double) wal);
	pgm_json_set_num(c, "row_changes_since_freeze", (double) (base >= 0 ? now - base : 0));
	pgm_json_set_num(c, "write_sessions", (double) pgm_pg_int64(res, 0, 3, 0));
	pgm_json_set_time(c, "at", pgm_now_ms());
	pgm_json_set(f, "check", c);
	if (base >= 0 && now != base) {
		char *msg = pgm_asprintf("writes reached the source while it was frozen: %lld row change(s)",
					 (long long) (now - base));
		pgm_step_fail(s, msg,
			      "a session overrode default_transaction_read_only or could not be terminated, so the "
			      "copy may miss its writes",
			      "find the writer (pg_stat_activity on the source), stop it, then \"pgmover thaw\" and "
			      "\"pgmover freeze\" again for a new final copy");
		free(msg);
		return;
	}
	pgm_info("job %s: the freeze held: no row changed on the source, %lld bytes of WAL (checkpoints, "
		 "autovacuum)",
		 job->name, (long long) wal);
}

static void
check_done(pgm_step_t *s, void *data)
{
	check_t *ck = data;
	pgm_step_then_fn then = ck->then;
	void *then_data = ck->data;

	pgm_step_disown(s, ck);
	free(ck);
	then(s, then_data);
}

void
pgm_freeze_check(pgm_step_t *s, pgm_step_then_fn then, void *data)
{
	pgm_job_t *job = s->job;
	const char *lsn = pgm_json_str(cJSON_GetObjectItem(job->facts, "freeze"), "lsn_at_freeze");
	const char *params[1] = {lsn ? lsn : "0/0"};
	check_t *ck;
	pgm_sql_t *q;

	if (!find_active(job, KIND_DB_SETTING)) {
		/* freeze_mode = command: the hook is the operator's proof */
		then(s, data);
		return;
	}
	ck = pgm_calloc(1, sizeof(*ck));
	ck->then = then;
	ck->data = data;
	pgm_step_own(s, ck, free);
	q = pgm_sql_begin(s, true, "freeze check", "could not check the freeze on the source", NULL);
	/*
	 * Statistics are flushed by backends up to a second after a commit:
	 * the terminated sessions flushed theirs when they exited.
	 */
	pgm_sql_add_params(q,
			   "SELECT pg_current_wal_lsn()::text, " USER_ROW_CHANGES ","
			   "       pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::bigint,"
			   "       (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
			   "           AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL)",
			   1, params, on_check, NULL);
	pgm_sql_run(q, check_done, ck);
}

/* thawing, as a step: the undo, then the step is done */
static void
step_done_ev(pgm_step_t *s, void *data)
{
	pgm_step_done(s, PGM_EV_DONE);
}

void
pgm_thaw_step(pgm_step_t *s)
{
	pgm_thaw_source(s, step_done_ev, NULL);
}

/* frozen, as a step: the proof that the freeze held, then done */
void
pgm_freeze_check_step(pgm_step_t *s)
{
	pgm_freeze_check(s, step_done_ev, NULL);
}
