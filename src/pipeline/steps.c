/*
 * steps.c — the step functions the transition table names. Each decides
 * by method and hands the work to its pipeline (dump.c, freeze.c, ...);
 * the steps that only wait for an operator keep nothing running.
 */
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "daemon/jobs.h"
#include "pipeline/pipeline.h"
#include "pipeline/probe.h"

#include <stdlib.h>
#include <string.h>

/* ---- provision: preflight of both servers ---- */

typedef struct provision {
	pgm_step_t *step;
	pgm_probe_t *probes[2];
	int pending;
	bool failed;
} provision_t;

static void
provision_free(void *p)
{
	provision_t *pv = p;

	for (int i = 0; i < 2; i++)
		pgm_probe_cancel(pv->probes[i]);
	free(pv);
}

/* both sides described: check what must hold before anything is changed */
static void
provision_checks(pgm_step_t *s)
{
	pgm_job_t *job = s->job;
	const cJSON *src = cJSON_GetObjectItem(job->facts, "source");
	const cJSON *dst = cJSON_GetObjectItem(job->facts, "target");
	int sv = (int) cJSON_GetNumberValue(cJSON_GetObjectItem(src, "server_version_num"));
	int tv = (int) cJSON_GetNumberValue(cJSON_GetObjectItem(dst, "server_version_num"));

	if (tv / 10000 < sv / 10000) {
		char *msg = pgm_asprintf("the target runs PostgreSQL %d, older than the source's %d", tv / 10000,
		                         sv / 10000);
		pgm_step_fail(s, msg, NULL, "use a target of the same or a newer major version");
		free(msg);
		return;
	}
	if (!cJSON_IsTrue(cJSON_GetObjectItem(src, "tls")))
		pgm_job_warn(job, "the connection to the source does not use TLS",
		             "add sslmode=require to the source URL (Heroku requires it)");
	pgm_pipeline_provision(s);
}

static void
on_provision_probe(pgm_probe_t *p, const cJSON *facts, const char *what, const pgm_pg_error_t *err,
                   void *data)
{
	provision_t *pv = data;
	int side = pv->probes[0] == p ? 0 : 1;

	pv->probes[side] = NULL;
	pv->pending--;
	if (pv->failed)
		return;
	if (facts == NULL) {
		pv->failed = true;
		pgm_step_fail_pg(pv->step, what, err,
		                 side == 0 ? "check the source URL: host, port, user, password and sslmode=require"
		                           : "check the target URL: host, port, user, password and database name");
		return;
	}
	pgm_json_set(pv->step->job->facts, side == 0 ? "source" : "target", cJSON_Duplicate(facts, 1));
	if (pv->pending == 0) {
		(void) pgm_job_save(pv->step->job);
		provision_checks(pv->step);
	}
}

void
pgm_step_provision(pgm_step_t *s)
{
	provision_t *pv = pgm_calloc(1, sizeof(*pv));
	int timeout = (int) pgm_jobopt_int(s->job->options, "connect_timeout");

	pv->step = s;
	pv->pending = 2;
	s->priv = pv;
	s->priv_free = provision_free;
	pv->probes[0] = pgm_probe_start(pgm_step_loop(s), "source", s->job->source_dsn, timeout,
	                                on_provision_probe, pv);
	pv->probes[1] = pgm_probe_start(pgm_step_loop(s), "target", s->job->target_dsn, timeout,
	                                on_provision_probe, pv);
}

/* ---- the copy and the freeze ---- */

void
pgm_step_sync(pgm_step_t *s)
{
	pgm_pipeline_sync(s);
}

void
pgm_step_synced(pgm_step_t *s)
{
	/* dump: nothing runs until the operator freezes */
	(void) s;
}

void
pgm_step_freeze(pgm_step_t *s)
{
	pgm_pipeline_freeze(s);
}

void
pgm_step_frozen(pgm_step_t *s)
{
	pgm_pipeline_check_freeze(s);
}

void
pgm_step_verify(pgm_step_t *s)
{
	pgm_pipeline_verify(s);
}

void
pgm_step_hold(pgm_step_t *s)
{
	/* verified or verify_failed: the source stays frozen; the operator decides */
	(void) s;
}

void
pgm_step_thaw(pgm_step_t *s)
{
	pgm_pipeline_thaw(s);
}

/* ---- cutover and the rollback window ---- */

void
pgm_step_cutover(pgm_step_t *s)
{
	pgm_pipeline_cutover(s);
}

static void
on_window_deadline(uv_timer_t *t)
{
	pgm_step_done(t->data, PGM_EV_DEADLINE);
}

void
pgm_step_window(pgm_step_t *s)
{
	pgm_job_t *job = s->job;
	int64_t left;

	if (job->rollback_deadline_ms <= 0) {
		job->rollback_deadline_ms = pgm_now_ms() + pgm_jobopt_int(job->options, "rollback_window");
		(void) pgm_job_save(job);
	}
	left = job->rollback_deadline_ms - pgm_now_ms();
	uv_timer_start(pgm_step_timer(s), on_window_deadline, (uint64_t) (left > 0 ? left : 0), 0);
}

void
pgm_step_finish(pgm_step_t *s)
{
	pgm_pipeline_finish(s);
}

void
pgm_step_rollback(pgm_step_t *s)
{
	pgm_pipeline_rollback(s);
}

void
pgm_step_abort(pgm_step_t *s)
{
	pgm_pipeline_abort(s);
}

void
pgm_step_retry(pgm_step_t *s)
{
	/* the driver runs the failed step itself; this row only names it */
	pgm_step_done(s, PGM_EV_DONE);
}

void
pgm_step_settle(pgm_step_t *s)
{
	/* terminal: nothing runs any more */
	(void) s;
}

void
pgm_step_failed(pgm_step_t *s)
{
	/* the reason is in job->error; retry or abort is the operator's call */
	(void) s;
}
