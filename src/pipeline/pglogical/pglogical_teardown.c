/*
 * pglogical_teardown.c — dropping what a pglogical job created, exactly
 * that, from its artifacts, newest first within each kind:
 *
 *   the subscription on the target, then its replication slot on the
 *   source (dropped there too, by name or by pglogical's slot name
 *   pattern, even when the target cannot be reached: a source must never
 *   keep a pgmover slot, which would hold WAL forever); then the target's
 *   node and extension, the source's replication sets, node and extension.
 *
 * Objects pgmover found (an existing node or extension) are never dropped.
 * Each drop is marked "dropping" (durable) before and "dropped" after, and
 * every statement is idempotent, so a teardown cut short by a SIGKILL or an
 * error runs again from the start. An error does not stop the teardown:
 * the remaining objects are still dropped, and the step fails (strict) or
 * warns (the failed state) at the end.
 *
 *   cutover:  the subscription and the slot (the target becomes independent)
 *   finish:   everything left
 *   abort:    everything, then the target is emptied if pgmover filled it
 *   failed:   the subscription and the slot, so that a failed job holds no
 *             WAL on the source; retry creates them again (and copies anew)
 */
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "pipeline/pglogical/pglogical.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOT_TRIES 50 /* 10 s of waiting for the walsender to let go */
#define FAILED_RETRY_MS 30000

static const struct {
	const char *kind;
	const char *side;
} stages[] = {
	{PGL_KIND_SUBSCRIPTION, "target"}, {PGL_KIND_NODE, "target"}, {PGL_KIND_EXTENSION, "target"},
	{PGL_KIND_SET, "source"},          {PGL_KIND_NODE, "source"}, {PGL_KIND_EXTENSION, "source"},
};

typedef struct td {
	pgl_drop_scope_t scope;
	bool strict;
	void (*then)(pgm_step_t *s);
	int stage, idx;
	cJSON *cur;     /* the artifact being dropped */
	bool in_slot;   /* its slot on the source, after the subscription */
	bool target_ok; /* the subscription is gone from the target */
	int slot_tries;
	char *first_error;
	uv_timer_t *timer;
} td_t;

static td_t *
td_of(pgl_t *x)
{
	return x->phase;
}

static void
td_free(void *p)
{
	td_t *td = p;

	free(td->first_error);
	free(td);
}

static void td_next(pgl_t *x);
static void slot_list(pgl_t *x);

static int
stage_count(const td_t *td)
{
	return td->scope == PGL_DROP_STREAM ? 1 : (int) PGM_ARRAY_LEN(stages);
}

static void
item_done(pgl_t *x)
{
	td_t *td = td_of(x);

	pgm_artifact_dropped(x->step->job, td->cur);
	pgm_info("job %s: dropped %s %s on the %s", x->step->job->name, pgm_json_str(td->cur, "kind"),
		 pgm_json_str(td->cur, "name"), pgm_json_str(td->cur, "side"));
	td->cur = NULL;
	td_next(x);
}

static void
item_failed(pgl_t *x, const char *what, const pgm_pg_error_t *err)
{
	td_t *td = td_of(x);
	char *e = pgm_asprintf("%s %s on the %s: %s: %s", pgm_json_str(td->cur, "kind"), pgm_json_str(td->cur, "name"),
			       pgm_json_str(td->cur, "side"), what, err->message);

	pgm_warning("job %s: could not drop %s", x->step->job->name, e);
	x->errors++;
	if (td->first_error == NULL)
		td->first_error = e;
	else
		free(e);
	td->cur = NULL;
	td_next(x);
}

/* already gone: pglogical's schema or functions are not there any more */
static bool
already_gone(const pgm_pg_error_t *err)
{
	return strcmp(err->sqlstate, "3F000") == 0 || strcmp(err->sqlstate, "42883") == 0 ||
	       strcmp(err->sqlstate, "42P01") == 0;
}

static void
td_error(pgl_t *x, bool source, const char *what, const pgm_pg_error_t *err)
{
	td_t *td = td_of(x);

	if (td->cur == NULL)
		return;
	if (!td->in_slot && strcmp(pgm_json_str(td->cur, "kind"), PGL_KIND_SUBSCRIPTION) == 0) {
		/* the target said no, or is away: the slot on the source goes anyway */
		if (already_gone(err)) {
			td->target_ok = true;
		} else {
			char *e = pgm_asprintf("%s: %s", what, err->message);
			pgm_warning("job %s: %s", x->step->job->name, e);
			x->errors++;
			if (td->first_error == NULL)
				td->first_error = e;
			else
				free(e);
		}
		td->in_slot = true;
		slot_list(x);
		return;
	}
	if (already_gone(err)) {
		item_done(x);
		return;
	}
	item_failed(x, what, err);
}

static void
on_dropped(pgl_t *x, const PGresult *res)
{
	item_done(x);
}

/* ---- the slot ---- */

static void
on_slot_timer(uv_timer_t *t)
{
	slot_list(pgl_get(t->data));
}

static void
on_slot_action(pgl_t *x, const PGresult *res)
{
	td_t *td = td_of(x);

	uv_timer_start(td->timer, on_slot_timer, 200, 0);
}

static void
on_slots(pgl_t *x, const PGresult *res)
{
	td_t *td = td_of(x);
	int n = pgm_pg_ntuples(res);
	bool active = false;
	char *list;
	size_t len = 64;

	if (n == 0) {
		if (td->target_ok) {
			item_done(x);
		} else {
			/* the slot is gone, the subscription maybe not: it stays recorded */
			td->cur = NULL;
			td_next(x);
		}
		return;
	}
	if (++td->slot_tries > SLOT_TRIES) {
		pgm_pg_error_t e = {.sqlstate = "", .message = (char *) "the slot stays in use"};
		item_failed(x, "could not drop the replication slot on the source", &e);
		return;
	}
	for (int r = 0; r < n; r++) {
		len += strlen(pgm_pg_value(res, r, 0)) * 2 + 8;
		active = active || pgm_pg_value(res, r, 1)[0] == 't';
	}
	/* names as a text[] literal: slot names are [a-z0-9_] */
	list = pgm_malloc(len);
	strcpy(list, "{");
	for (int r = 0; r < n; r++) {
		if (r)
			strcat(list, ",");
		strcat(list, pgm_pg_value(res, r, 0));
	}
	strcat(list, "}");
	{
		const char *params[1] = {list};
		if (active)
			/* the walsender of a subscription that is going away: end it, then drop */
			pgl_query(x, true, "could not end the walsender holding the slot",
				  "SELECT count(pg_terminate_backend(active_pid)) FROM pg_replication_slots"
				  " WHERE slot_name = ANY ($1::text[]) AND active",
				  1, params, on_slot_action);
		else
			pgl_query(
				x, true, "could not drop the replication slot on the source",
				"SELECT slot_name, pg_drop_replication_slot(slot_name)::text FROM pg_replication_slots"
				" WHERE slot_name = ANY ($1::text[]) AND NOT active",
				1, params, on_slot_action);
	}
	free(list);
}

/*
 * The recorded slot, and any slot named like pglogical names this
 * subscription's (pgl_DB_NODE_SUB) in the source database: the name may
 * not have been recorded when a SIGKILL came.
 */
static void
slot_list(pgl_t *x)
{
	td_t *td = td_of(x);
	const char *slot = pgm_json_str(td->cur, "slot");
	char pattern[96], *o = pattern;
	const char *params[2];

	o += sprintf(o, "pgl\\_%%\\_");
	for (const char *c = x->names.sub; *c && o < pattern + sizeof(pattern) - 3; c++) {
		if (*c == '_' || *c == '%' || *c == '\\')
			*o++ = '\\';
		*o++ = *c;
	}
	*o = '\0';
	params[0] = slot ? slot : "";
	params[1] = pattern;
	pgl_query(x, true, "could not look for the replication slot on the source",
		  "SELECT slot_name, active FROM pg_replication_slots"
		  " WHERE database = current_database() AND plugin = 'pglogical_output'"
		  "   AND (slot_name = $1 OR slot_name LIKE $2)",
		  2, params, on_slots);
}

static void
on_subscription_dropped(pgl_t *x, const PGresult *res)
{
	td_t *td = td_of(x);

	td->target_ok = true;
	td->in_slot = true;
	slot_list(x);
}

/* ---- the items ---- */

static void
drop_item(pgl_t *x)
{
	td_t *td = td_of(x);
	const char *kind = pgm_json_str(td->cur, "kind"), *name = pgm_json_str(td->cur, "name");
	bool source = strcmp(pgm_json_str(td->cur, "side"), "source") == 0;
	const char *params[1] = {name};

	if (pgm_artifact_status(td->cur) != PGM_ART_DROPPING &&
	    !pgm_artifact_set(x->step->job, td->cur, PGM_ART_DROPPING)) {
		pgm_pg_error_t err = {"", (char *) "state.json could not be written", NULL, NULL, NULL};

		item_failed(x, "could not record the drop before making it", &err);
		return;
	}
	if (strcmp(kind, PGL_KIND_SUBSCRIPTION) == 0) {
		td->in_slot = false;
		td->target_ok = false;
		td->slot_tries = 0;
		pgl_query(x, false, "could not drop the subscription on the target",
			  "SELECT pglogical.drop_subscription($1, true)", 1, params, on_subscription_dropped);
	} else if (strcmp(kind, PGL_KIND_NODE) == 0) {
		pgl_query(x, source, "could not drop the pglogical node", "SELECT pglogical.drop_node($1, true)", 1,
			  params, on_dropped);
	} else if (strcmp(kind, PGL_KIND_SET) == 0) {
		pgl_query(x, source, "could not drop the replication set",
			  "SELECT pglogical.drop_replication_set($1, true)", 1, params, on_dropped);
	} else {
		pgl_query(x, source, "could not drop the pglogical extension", "DROP EXTENSION IF EXISTS pglogical", 0,
			  NULL, on_dropped);
	}
}

static void
td_finish(pgl_t *x)
{
	pgm_step_t *s = x->step;
	td_t *td = td_of(x);
	void (*then)(pgm_step_t *) = td->then;

	if (x->errors > 0 && td->strict) {
		char *msg = pgm_asprintf("could not remove everything pgmover created: %s", td->first_error);
		char *detail =
			pgm_asprintf("%d object(s) remain; the job's artifacts list them (status dropping)", x->errors);
		pgm_step_fail(s, msg, detail, "fix the cause (is the server reachable?), then \"pgmover retry\"");
		free(msg);
		free(detail);
		return;
	}
	if (x->errors > 0) {
		char *msg = pgm_asprintf("could not drop the subscription or its slot yet: %s", td->first_error);
		pgm_job_warn(s->job, msg, "pgmover tries again every 30 s; \"pgmover abort\" drops them too");
		free(msg);
	}
	pgl_set_phase(x, NULL, NULL);
	x->on_error = pgl_fail;
	then(s);
}

static void
td_next(pgl_t *x)
{
	pgm_job_t *job = x->step->job;
	td_t *td = td_of(x);

	while (td->stage < stage_count(td)) {
		for (; td->idx >= 0; td->idx--) {
			cJSON *a = cJSON_GetArrayItem(job->artifacts, td->idx);

			if (strcmp(pgm_json_str(a, "kind") ? pgm_json_str(a, "kind") : "", stages[td->stage].kind) !=
				    0 ||
			    strcmp(pgm_json_str(a, "side") ? pgm_json_str(a, "side") : "", stages[td->stage].side) !=
				    0 ||
			    !pgm_artifact_live(a))
				continue;
			td->cur = a;
			td->idx--;
			drop_item(x);
			return;
		}
		td->stage++;
		td->idx = cJSON_GetArraySize(job->artifacts) - 1;
	}
	td_finish(x);
}

void
pgl_teardown(pgm_step_t *s, pgl_drop_scope_t scope, bool strict, void (*then)(pgm_step_t *s))
{
	pgl_t *x = pgl_get(s);
	td_t *td = pgm_calloc(1, sizeof(*td));

	td->scope = scope;
	td->strict = strict;
	td->then = then;
	td->idx = cJSON_GetArraySize(s->job->artifacts) - 1;
	td->timer = pgl_timer(x);
	x->errors = 0;
	pgl_set_phase(x, td, td_free);
	x->on_error = td_error;
	/* a drop a killed run was making may still be running: end it first */
	pgl_fence(x, td_next);
}

/* ---- what the pipeline calls ---- */

void
pgm_pglogical_detach(pgm_step_t *s, void (*then)(pgm_step_t *s))
{
	pgl_teardown(s, PGL_DROP_STREAM, true, then);
}

void
pgm_pglogical_remove(pgm_step_t *s, void (*then)(pgm_step_t *s))
{
	pgl_teardown(s, PGL_DROP_ALL, true, then);
}

static void
on_target_emptied(pgl_t *x, const PGresult *res)
{
	pgm_step_t *s = x->step;

	pgm_json_set(s->job->facts, "target_owned", cJSON_CreateFalse());
	pgm_job_checkpoint(s->job);
	pgm_info("job %s: the target is empty again", s->job->name);
	x->then(s);
}

static void
on_clean_fenced(pgl_t *x, const PGresult *res)
{
	pgl_query(x, false, "could not drop what pgmover restored into the target", pgl_clean_target_sql, 0, NULL,
		  on_target_emptied);
}

/*
 * what pgmover restored into the target goes too, as in a dump job's
 * abort; first the fence, for a clean a killed run left running
 */
static void
abort_removed(pgm_step_t *s)
{
	pgl_t *x = pgl_get(s);
	char *prefix;
	const char *params[1];

	if (!cJSON_IsTrue(cJSON_GetObjectItem(s->job->facts, "target_owned"))) {
		x->then(s);
		return;
	}
	prefix = pgm_sql_fence_prefix(s->job);
	params[0] = prefix;
	pgl_query(x, false, "could not end the sessions an earlier run of this job left on the target", PGM_SQL_FENCE,
		  1, params, on_clean_fenced);
	free(prefix);
}

void
pgm_pglogical_abort(pgm_step_t *s, void (*then)(pgm_step_t *s))
{
	pgl_get(s)->then = then;
	pgl_teardown(s, PGL_DROP_ALL, true, abort_removed);
}

static void failed_release(pgm_step_t *s);

static void
on_failed_retry(uv_timer_t *t)
{
	failed_release(t->data);
}

static void
failed_released(pgm_step_t *s)
{
	pgl_t *x = pgl_get(s);

	if (x->errors > 0) {
		uv_timer_start(pgl_timer(x), on_failed_retry, FAILED_RETRY_MS, 0);
		return;
	}
	pgm_notice("job %s: failed: its subscription and replication slot are dropped so the source keeps no WAL "
		   "for it; \"pgmover retry\" creates them again",
		   s->job->name);
}

static void
failed_release(pgm_step_t *s)
{
	pgl_teardown(s, PGL_DROP_STREAM, false, failed_released);
}

void
pgm_pglogical_failed(pgm_step_t *s)
{
	pgl_names_t names;
	const cJSON *a;

	pgl_names(s->job, &names);
	a = pgm_artifact_find(s->job, PGL_KIND_SUBSCRIPTION, "target", names.sub);
	if (a && pgm_artifact_live(a))
		failed_release(s);
}
