/*
 * pipeline.c — which work each step does for each method. The dump method
 * is built; pglogical is refused when the job is created, so only dump
 * jobs reach these functions.
 */
#include "pipeline/pipeline.h"
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

static void
done(pgm_step_t *s)
{
	pgm_step_done(s, PGM_EV_DONE);
}

/*
 * dump: the preflight has checked that the target is empty (or may be
 * overwritten); from here on, what is in the target is pgmover's to replace
 */
void
pgm_pipeline_provision(pgm_step_t *s)
{
	pgm_json_set(s->job->facts, "target_owned", cJSON_CreateTrue());
	(void) pgm_job_save(s->job);
	done(s);
}

/* the copy engine of the job; large objects need pg_dump's */
static void
copy_with_engine(pgm_step_t *s, const char *label, void (*then)(pgm_step_t *s))
{
	pgm_job_t *job = s->job;
	const cJSON *src = cJSON_GetObjectItem(job->facts, "source");

	if (strcmp(pgm_jobopt_str(job->options, "engine"), "copy") == 0) {
		if (pgm_json_num(src, "large_objects", 0) > 0) {
			pgm_job_warn(job, "the source has large objects, which only the pg_dump engine copies",
			             "nothing to do: this job uses the pg_dump engine");
		} else {
			pgm_copy_run(s, label, then);
			return;
		}
	}
	pgm_dump_copy(s, label, then);
}

void
pgm_pipeline_sync(pgm_step_t *s)
{
	if (pgm_job_source_file(s->job)) {
		/* a backup file does not change: the restore is the copy */
		pgm_archive_restore(s, "restore", done);
		return;
	}
	if (!pgm_jobopt_bool(s->job->options, "rehearsal")) {
		pgm_info("job %s: rehearsal copy skipped (rehearsal = off)", s->job->name);
		pgm_json_set_str(pgm_json_obj(s->job->facts, "copies"), "rehearsal", "skipped");
		done(s);
		return;
	}
	copy_with_engine(s, "rehearsal", done);
}

static void
freeze_then_copy(pgm_step_t *s)
{
	copy_with_engine(s, "final", done);
}

void
pgm_pipeline_freeze(pgm_step_t *s)
{
	pgm_job_t *job = s->job;

	if (pgm_job_source_file(job)) {
		/* no live source: only the operator's hook can stop the application */
		pgm_job_warn(job, "the source is a backup file: writes made after the backup was taken are not in it",
		             "stop the application's writes before taking the backup (heroku maintenance:on), or use "
		             "a live source");
		if (pgm_jobopt_str(job->options, "freeze_command")[0] == '\0') {
			done(s);
			return;
		}
		pgm_freeze_source(s, done);
		return;
	}
	pgm_freeze_source(s, freeze_then_copy);
}

void
pgm_pipeline_check_freeze(pgm_step_t *s)
{
	if (pgm_job_source_file(s->job)) {
		done(s);
		return;
	}
	pgm_freeze_check(s, done);
}

void
pgm_pipeline_verify(pgm_step_t *s)
{
	if (pgm_job_source_file(s->job)) {
		pgm_archive_verify(s);
		return;
	}
	pgm_counts_verify(s);
}

void
pgm_pipeline_thaw(pgm_step_t *s)
{
	pgm_thaw_source(s, done);
}

static void
after_cutover_hook(pgm_step_t *s)
{
	pgm_json_set_time(s->job->facts, "cutover_at", pgm_now_ms());
	done(s);
}

void
pgm_pipeline_cutover(pgm_step_t *s)
{
	/* the source stays frozen: a forgotten writer fails loudly */
	pgm_hook_run(s, "cutover_command", "cutover", after_cutover_hook);
}

void
pgm_pipeline_finish(pgm_step_t *s)
{
	/* dump mode leaves nothing running on either server: no stream to tear down */
	done(s);
}

void
pgm_pipeline_rollback(pgm_step_t *s)
{
	pgm_step_fail(s, "rollback of a dump job is not available yet",
	              "writes made on the target since cutover would have to be carried back to the source, "
	              "and the reverse stream that does it is not built yet",
	              "the source is still frozen and unchanged: to return to it by hand, point the application "
	              "back at the source and run ALTER DATABASE <name> RESET default_transaction_read_only on it");
}

static void
abort_clean(pgm_step_t *s)
{
	if (cJSON_IsTrue(cJSON_GetObjectItem(s->job->facts, "target_owned")))
		pgm_dump_clean_target(s, done);
	else
		done(s);
}

void
pgm_pipeline_abort(pgm_step_t *s)
{
	if (pgm_freeze_active(s->job))
		pgm_thaw_source(s, abort_clean);
	else
		abort_clean(s);
}
