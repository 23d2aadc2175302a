/*
 * pglogical.c — the shared parts of the pglogical method: the names of the
 * objects a job creates, their artifacts, the step context with one
 * connection per side, and making sure the subscription exists.
 *
 * Every object is recorded in job->artifacts with status "creating" and
 * made durable before it is created, so that abort, finish and a failure
 * drop exactly what pgmover made, even after a SIGKILL between the record
 * and the creation (dropping is idempotent: IF EXISTS everywhere).
 */
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "pipeline/pglogical/pglogical.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- names ---- */

/*
 * A short tag for the job: the job name itself when it is at most 8
 * characters of [a-z0-9_], else 3 of its characters and a hash of it, so
 * that two jobs never share a tag and every name stays within 16 characters.
 */
static void
job_tag(const char *job, char *tag, size_t len)
{
	size_t n = strlen(job);
	bool clean = n <= 8;
	uint32_t h = 2166136261u; /* FNV-1a */

	for (size_t i = 0; i < n; i++) {
		char c = job[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
			clean = false;
		h = (h ^ (uint8_t) c) * 16777619u;
	}
	if (clean) {
		snprintf(tag, len, "%s", job);
		return;
	}
	{
		char head[4] = "";
		int k = 0;

		for (size_t i = 0; i < n && k < 3; i++) {
			char c = job[i];
			if (c >= 'A' && c <= 'Z')
				c = (char) (c - 'A' + 'a');
			head[k++] = ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) ? c : '_';
		}
		head[k] = '\0';
		snprintf(tag, len, "%s%05x", head, (unsigned) (h & 0xfffff));
	}
}

void
pgl_names(const pgm_job_t *job, pgl_names_t *out)
{
	char tag[16];

	job_tag(job->name, tag, sizeof(tag));
	snprintf(out->sub, sizeof(out->sub), "pgm_%s", tag);
	snprintf(out->src_node, sizeof(out->src_node), "pgm_%s_src", tag);
	snprintf(out->dst_node, sizeof(out->dst_node), "pgm_%s_dst", tag);
	snprintf(out->set, sizeof(out->set), "pgm_%s", tag);
	snprintf(out->set_io, sizeof(out->set_io), "pgm_%s_io", tag);
}

const char *
pgl_provider_node(const pgm_job_t *job)
{
	const char *n = pgm_json_str(cJSON_GetObjectItem(job->facts, "pglogical"), "provider_node");

	return n ? n : "";
}

/* ---- the step context ---- */

static void
pgl_free(void *p)
{
	pgl_t *x = p;

	/* the sessions are the step's, closed and freed with it */
	if (x->phase && x->phase_free)
		x->phase_free(x->phase);
	free(x->ensure);
	free(x);
}

pgl_t *
pgl_get(pgm_step_t *s)
{
	pgl_t *x;

	for (int i = 0; i < PGM_STEP_MAX_RES; i++)
		if (s->owned[i] && s->owned_free[i] == pgl_free)
			return s->owned[i];
	x = pgm_calloc(1, sizeof(*x));
	x->step = s;
	pgl_names(s->job, &x->names);
	for (int i = 0; i < 2; i++) {
		x->side[i].x = x;
		x->side[i].source = i == 0;
	}
	x->on_error = pgl_fail;
	pgm_step_own(s, x, pgl_free);
	return x;
}

uv_timer_t *
pgl_timer(pgl_t *x)
{
	if (x->timer == NULL)
		x->timer = pgm_step_timer(x->step);
	uv_timer_stop(x->timer);
	return x->timer;
}

void
pgl_set_phase(pgl_t *x, void *phase, void (*free_fn)(void *))
{
	if (x->phase && x->phase_free)
		x->phase_free(x->phase);
	x->phase = phase;
	x->phase_free = free_fn;
}

void
pgl_fail(pgl_t *x, bool source, const char *what, const pgm_pg_error_t *err)
{
	pgm_step_fail_pg(x->step, what, err,
			 x->hint ? x->hint
				 : (source ? "check the source (reachable, pglogical installed, superuser), then "
					     "\"pgmover retry\""
					   : "check the target (reachable, pglogical installed, superuser), then "
					     "\"pgmover retry\""));
}

bool
pgl_busy(const pgl_t *x, bool source)
{
	return pgm_sql_session_busy(x->side[source ? 0 : 1].session);
}

static void
on_row(pgm_step_t *s, const PGresult *res, void *data)
{
	pgl_side_t *sd = data;

	if (sd->cb)
		sd->cb(sd->x, res);
}

/* the runner has closed the session if the connection is gone: the next query reconnects */
static void
on_error(pgm_step_t *s, const char *what, const char *hint, const pgm_pg_error_t *err, void *data)
{
	pgl_side_t *sd = data;

	sd->x->on_error(sd->x, sd->source, what, err);
}

/*
 * A frozen source makes new sessions read-only by default; pgmover's own
 * work on it (its objects, the drain) must still be possible.
 */
static const char *session_setup_sql = "SET default_transaction_read_only = off; SET statement_timeout = 0";

pgm_sql_t *
pgl_sql(pgl_t *x, bool source, const char *what)
{
	pgl_side_t *sd = &x->side[source ? 0 : 1];
	pgm_sql_t *q;

	if (sd->session == NULL) {
		/* in the freeze's states the job's bounds stand (set on connecting), else none */
		bool bounded = pgm_state_bounded(x->step->job->state);

		sd->session = pgm_sql_session(x->step, source, "pglogical",
					      bounded ? "SET default_transaction_read_only = off" : session_setup_sql);
	}
	q = pgm_sql_begin_on(sd->session, what, NULL);
	pgm_sql_on_error(q, on_error, sd);
	return q;
}

void
pgl_query(pgl_t *x, bool source, const char *what, const char *sql, int nparams, const char *const *params,
	  pgl_result_cb cb)
{
	pgl_side_t *sd = &x->side[source ? 0 : 1];
	pgm_sql_t *q = pgl_sql(x, source, what);

	pgm_sql_add_params(q, sql, nparams, params, on_row, sd);
	sd->cb = cb;
	pgm_sql_run(q, NULL, NULL);
}

/* ---- the fence ---- */

typedef struct fence {
	void (*then)(pgl_t *x);
	pgl_error_cb on_error; /* the caller's, back once fenced */
	bool source;           /* the side being fenced */
} fence_t;

static void fence_side(pgl_t *x, bool source);

static void
fence_next(pgl_t *x)
{
	fence_t *f = x->fence;
	void (*then)(pgl_t * x) = f->then;

	if (!f->source) {
		fence_side(x, true);
		return;
	}
	x->on_error = f->on_error;
	free(f);
	x->fence = NULL;
	then(x);
}

static void
on_fence(pgl_t *x, const PGresult *res)
{
	fence_t *f = x->fence;

	if (pgm_pg_ntuples(res) == 1 && pgm_pg_value(res, 0, 0) && strcmp(pgm_pg_value(res, 0, 0), "0") != 0)
		pgm_notice("job %s: ended %s session(s) an earlier run left on the %s", x->step->job->name,
			   pgm_pg_value(res, 0, 0), f->source ? "source" : "target");
	fence_next(x);
}

static void
on_fence_error(pgl_t *x, bool source, const char *what, const pgm_pg_error_t *err)
{
	pgm_warning("job %s: %s on the %s: %s", x->step->job->name, what, source ? "source" : "target", err->message);
	fence_next(x);
}

static void
fence_side(pgl_t *x, bool source)
{
	fence_t *f = x->fence;
	char *prefix = pgm_sql_fence_prefix(x->step->job);
	const char *params[1] = {prefix};

	f->source = source;
	pgl_query(x, source, "could not end the sessions an earlier run of this job left", PGM_SQL_FENCE, 1, params,
		  on_fence);
	free(prefix);
}

static bool
cut_short(const pgm_job_t *job)
{
	const cJSON *a;

	cJSON_ArrayForEach (a, job->artifacts) {
		pgm_artifact_status_t st = pgm_artifact_status(a);

		if (st == PGM_ART_CREATING || st == PGM_ART_DROPPING)
			return true;
	}
	return false;
}

void
pgl_fence(pgl_t *x, void (*then)(pgl_t *x))
{
	fence_t *f;

	if (!cut_short(x->step->job)) {
		then(x);
		return;
	}
	f = pgm_calloc(1, sizeof(*f));
	f->then = then;
	f->on_error = x->on_error;
	x->fence = f;
	x->on_error = on_fence_error;
	fence_side(x, false);
}

/* ---- the subscription ---- */

typedef struct ensure {
	void (*then)(pgl_t *x);
	cJSON *art;
} ensure_t;

static ensure_t *
ensure_of(pgl_t *x)
{
	return x->ensure;
}

/* the subscription is there: go on with what the caller does next */
static void
ensure_done(pgl_t *x)
{
	void (*then)(pgl_t *) = ensure_of(x)->then;

	free(x->ensure);
	x->ensure = NULL;
	then(x);
}

static void ensure_create(pgl_t *x);

static void
on_slot_name(pgl_t *x, const PGresult *res)
{
	pgm_job_t *job = x->step->job;
	ensure_t *e = ensure_of(x);
	cJSON *pgl = pgm_json_obj(job->facts, "pglogical");

	if (pgm_pg_ntuples(res) == 1 && pgm_pg_value(res, 0, 0))
		pgm_json_set_str(e->art, "slot", pgm_pg_value(res, 0, 0));
	pgm_json_set_num(pgl, "sync_started_ms", (double) pgm_now_ms());
	pgm_json_set(pgl, "sync_ms", cJSON_CreateNull());
	pgm_artifact_created(job, e->art);
	pgm_notice("job %s: subscription %s created on the target (slot %s on the source)", job->name, x->names.sub,
		   pgm_json_str(e->art, "slot") ? pgm_json_str(e->art, "slot") : "?");
	ensure_done(x);
}

static void
on_created(pgl_t *x, const PGresult *res)
{
	const char *params[1] = {x->names.sub};

	pgl_query(x, false, "could not read the subscription's slot name",
		  "SELECT sub_slot_name FROM pglogical.subscription WHERE sub_name = $1", 1, params, on_slot_name);
}

/* the replication sets pgmover made on the source, as a text[] literal */
static char *
sets_literal(pgl_t *x)
{
	pgm_job_t *job = x->step->job;
	const char *names[2] = {x->names.set, x->names.set_io};
	char buf[128] = "{";

	for (int i = 0; i < 2; i++) {
		const cJSON *a = pgm_artifact_find(job, PGL_KIND_SET, "source", names[i]);
		if (a && pgm_artifact_status(a) == PGM_ART_CREATED) {
			if (buf[1])
				strcat(buf, ",");
			strcat(buf, names[i]);
		}
	}
	strcat(buf, "}");
	return pgm_strdup(buf);
}

static void
on_truncated(pgl_t *x, const PGresult *res)
{
	char *sets = sets_literal(x);
	const char *params[3] = {x->names.sub, x->step->job->source_dsn, sets};

	/*
	 * The schema is pgmover's copy (synchronize_structure off); the data
	 * comes with the subscription, in the snapshot of its slot.
	 */
	pgl_query(x, false, "could not create the subscription on the target",
		  "SELECT pglogical.create_subscription(subscription_name := $1, provider_dsn := $2,"
		  " replication_sets := $3::text[], synchronize_structure := false, synchronize_data := true)",
		  3, params, on_created);
	free(sets);
}

/*
 * Empty the target's replicated tables before the initial copy: a copy
 * started earlier (a subscription dropped after a failure) left rows.
 */
static void
ensure_create(pgl_t *x)
{
	pgm_job_t *job = x->step->job;
	const cJSON *tables = cJSON_GetObjectItem(cJSON_GetObjectItem(job->facts, "pglogical"), "tables");
	const cJSON *t;
	size_t len = 80;
	char *sql;

	cJSON_ArrayForEach (t, tables)
		len += strlen(pgm_json_str(t, "table") ? pgm_json_str(t, "table") : "") + 2;
	sql = pgm_malloc(len);
	strcpy(sql, "TRUNCATE ");
	cJSON_ArrayForEach (t, tables) {
		if (pgm_json_str(t, "table") == NULL)
			continue;
		if (sql[9])
			strcat(sql, ", ");
		strcat(sql, pgm_json_str(t, "table"));
	}
	if (sql[9] == '\0') {
		free(sql);
		on_truncated(x, NULL);
		return;
	}
	strcat(sql, " CASCADE");
	pgl_query(x, false, "could not empty the target's tables before the initial copy", sql, 0, NULL, on_truncated);
	free(sql);
}

static void
on_dropped_stale(pgl_t *x, const PGresult *res)
{
	ensure_create(x);
}

static void
on_subscription(pgl_t *x, const PGresult *res)
{
	pgm_job_t *job = x->step->job;
	ensure_t *e = ensure_of(x);
	pgm_artifact_status_t status = pgm_artifact_status(e->art);
	bool exists = pgm_pg_ntuples(res) == 1;

	if (exists && (status == PGM_ART_CREATED || status == PGM_ART_CREATING)) {
		/* ours (a SIGKILL may have come between creating it and saying so) */
		if (pgm_pg_value(res, 0, 0))
			pgm_json_set_str(e->art, "slot", pgm_pg_value(res, 0, 0));
		if (status == PGM_ART_CREATING) {
			cJSON *pgl = pgm_json_obj(job->facts, "pglogical");
			if (!cJSON_IsNumber(cJSON_GetObjectItem(pgl, "sync_started_ms")))
				pgm_json_set_num(pgl, "sync_started_ms", (double) pgm_now_ms());
			pgm_artifact_created(job, e->art);
		}
		ensure_done(x);
		return;
	}
	if (!exists && status == PGM_ART_CREATED) {
		char *msg = pgm_asprintf("the subscription %s is gone from the target", x->names.sub);
		pgm_step_fail(x->step, msg, "pgmover created it and did not drop it: someone else did",
			      "\"pgmover retry\" creates it again and copies the data anew");
		free(msg);
		return;
	}
	/* never created, or dropped (or being dropped) after a failure: make it anew */
	pgm_json_set(e->art, "slot", cJSON_CreateNull());
	if (!pgm_artifact_set(job, e->art, PGM_ART_CREATING)) {
		pgm_step_fail_unsaved(x->step, "the subscription on the target");
		return;
	}
	if (exists) {
		const char *params[1] = {x->names.sub};
		pgl_query(x, false, "could not drop the stale subscription on the target",
			  "SELECT pglogical.drop_subscription($1, true)", 1, params, on_dropped_stale);
		return;
	}
	ensure_create(x);
}

static void
lookup_subscription(pgl_t *x)
{
	const char *params[1] = {x->names.sub};

	pgl_query(x, false, "could not look for the subscription on the target",
		  "SELECT sub_slot_name FROM pglogical.subscription WHERE sub_name = $1", 1, params, on_subscription);
}

void
pgl_ensure_subscription(pgl_t *x, void (*then)(pgl_t *x))
{
	pgm_job_t *job = x->step->job;
	ensure_t *e = pgm_calloc(1, sizeof(*e));
	bool resumed;

	e->then = then;
	e->art = pgm_artifact_find(job, PGL_KIND_SUBSCRIPTION, "target", x->names.sub);
	resumed = e->art != NULL && pgm_artifact_status(e->art) == PGM_ART_CREATING;
	if (e->art == NULL) {
		/* recorded before anything can create it */
		cJSON *extra = cJSON_CreateObject();

		pgm_json_set_str(extra, "provider_node", pgl_provider_node(job));
		pgm_json_set(extra, "slot", cJSON_CreateNull());
		e->art = pgm_artifact_record(job, PGL_KIND_SUBSCRIPTION, "target", x->names.sub, PGM_ART_CREATING,
					     extra);
		if (e->art == NULL) {
			free(e);
			pgm_step_fail_unsaved(x->step, "the subscription on the target");
			return;
		}
	}
	free(x->ensure);
	x->ensure = e;
	if (resumed) {
		/*
		 * An earlier run died while creating it: its session may still be
		 * running create_subscription (a backend finishes the statement of a
		 * killed client). Looking before it commits would make a second one
		 * (pglogical refuses: "already subscribes"), or truncate tables its
		 * initial copy has filled. End it first, and wait until it has.
		 */
		pgl_fence(x, lookup_subscription);
		return;
	}
	lookup_subscription(x);
}

/*
 * Everything pgmover may have restored into the target, dropped; the
 * database stays, and so does a pglogical extension (pgmover's own is
 * dropped by the teardown before this runs, another one is not pgmover's).
 */
const char *const pgl_clean_target_sql =
	"DO $pgm$ DECLARE r record; BEGIN"
	"  FOR r IN SELECT nspname FROM pg_namespace"
	"            WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast', 'pglogical')"
	"              AND nspname !~ '^pg_temp_' AND nspname !~ '^pg_toast_temp_' LOOP"
	"    EXECUTE format('DROP SCHEMA %I CASCADE', r.nspname);"
	"  END LOOP;"
	"  FOR r IN SELECT extname FROM pg_extension WHERE extname NOT IN ('plpgsql', 'pglogical') LOOP"
	"    EXECUTE format('DROP EXTENSION IF EXISTS %I CASCADE', r.extname);"
	"  END LOOP;"
	"  PERFORM lo_unlink(oid) FROM pg_largeobject_metadata;"
	"  CREATE SCHEMA public AUTHORIZATION pg_database_owner;"
	"  COMMENT ON SCHEMA public IS 'standard public schema';"
	"  GRANT USAGE ON SCHEMA public TO PUBLIC;"
	" END $pgm$";
