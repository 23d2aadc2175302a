/*
 * verify_step.c — the `verifying` step of a job: the verification engine
 * (verify.h) between the job's source and target, its report kept in
 * job->verify and state.json. Any difference ends the step with
 * verify_failed: the source stays frozen and the operator decides (thaw,
 * abort, or fix and verify again).
 */
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "fsm/job.h"
#include "pipeline/verify/verify.h"

#include <stdlib.h>

typedef struct verify_run {
	pgm_step_t *step;
	int64_t last_save;
} verify_run_t;

static void
on_verify_progress(pgm_verify_t *v, const cJSON *progress, void *data)
{
	verify_run_t *run = data;
	pgm_job_t *job = run->step->job;

	pgm_job_set_progress(job, cJSON_Duplicate(progress, 1));
	if (pgm_mono_ms() - run->last_save > 5000) {
		run->last_save = pgm_mono_ms();
		pgm_job_checkpoint(job);
	}
}

static void
on_verify_done(pgm_verify_t *v, cJSON *report, const char *what, const pgm_pg_error_t *err, void *data)
{
	verify_run_t *run = data;
	pgm_step_t *s = run->step;
	pgm_job_t *job = s->job;
	const char *hint = "fix the cause, then \"pgmover verify\" runs the verification again";
	int mismatches;

	/* the engine frees itself after this callback; the step must not cancel it */
	pgm_step_disown(s, v);
	pgm_step_disown(s, run);
	free(run);
	if (report == NULL) {
		if (err)
			pgm_step_fail_pg(s, what, err, hint);
		else
			pgm_step_fail(s, what, NULL, hint);
		return;
	}
	pgm_job_set_verify(job, report);
	pgm_job_checkpoint(job);
	mismatches = (int) pgm_json_num(report, "mismatches", 0);
	if (mismatches > 0) {
		pgm_warning("job %s: verification found %d difference(s); the source stays frozen", job->name,
			    mismatches);
		pgm_step_done(s, PGM_EV_VERIFY_FAILED);
	} else {
		pgm_info("job %s: verification passed: %d table(s) match", job->name,
			 (int) pgm_json_num(report, "tables_compared", 0));
		pgm_step_done(s, PGM_EV_DONE);
	}
}

void
pgm_verify_step(pgm_step_t *s)
{
	pgm_job_t *job = s->job;
	verify_run_t *run = pgm_calloc(1, sizeof(*run));
	pgm_verify_options_t o = {0};
	char *app = pgm_asprintf("pgmover:%s", job->name);
	pgm_verify_t *v;

	run->step = s;
	o.jobs = (int) pgm_jobopt_int(job->options, "jobs");
	pgm_pg_net_from_options(job->options, true, &o.net);
	o.max_keys = 20;
	o.app_name = app;
	v = pgm_verify_start(pgm_step_loop(s), job->source_dsn, job->target_dsn, &o, on_verify_done, on_verify_progress,
			     run);
	free(app);
	/* if the step ends first (abort, shutdown), the engine goes with it; so does run */
	pgm_step_own(s, v, pgm_verify_cancel_cb);
	pgm_step_own(s, run, free);
}
