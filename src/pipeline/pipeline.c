/*
 * pipeline.c — which work each step does for each method: dump here and in
 * the files it names, pglogical in pglogical*.c (a branch at the top of
 * each function; verify, thaw and the freeze check are shared).
 */
#include "pipeline/pipeline.h"
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "pipeline/cutover/cutover.h"

#include <stdlib.h>
#include <string.h>

static void
done(pgm_step_t *s)
{
	pgm_step_done(s, PGM_EV_DONE);
}

static bool
pglogical(const pgm_step_t *s)
{
	return strcmp(s->job->method, "pglogical") == 0;
}

/*
 * dump: the preflight has checked that the target is empty (or may be
 * overwritten); from here on, what is in the target is pgmover's to replace
 */
void
pgm_pipeline_provision(pgm_step_t *s)
{
	if (pglogical(s)) {
		/* extension, nodes, schema, replication sets */
		pgm_pglogical_provision(s);
		return;
	}
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
	if (pglogical(s)) {
		/* the subscription and its initial copy, followed until every table is ready */
		pgm_pglogical_sync(s);
		return;
	}
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

/* synced: dump waits for the operator; pglogical keeps following the lag */
void
pgm_pipeline_synced(pgm_step_t *s)
{
	if (pglogical(s)) {
		pgm_pglogical_synced(s);
		return;
	}
}

void
pgm_pipeline_freeze(pgm_step_t *s)
{
	pgm_job_t *job = s->job;

	if (pglogical(s)) {
		/* freeze, then drain the stream to a sentinel and set the sequences */
		pgm_pglogical_freeze(s);
		return;
	}
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
	/* row counts and checksums of every table, bisected down to the keys that differ */
	pgm_verify_step(s);
}

void
pgm_pipeline_thaw(pgm_step_t *s)
{
	pgm_thaw_source(s, done);
}

/* cutover, the rollback window, rollback and finish of a dump job: cutover.c, rollback.c */
void
pgm_pipeline_cutover(pgm_step_t *s)
{
	if (pglogical(s)) {
		/* the target becomes independent (subscription and slot dropped) before the hook runs */
		pgm_pglogical_detach(s, pgm_cutover_run);
		return;
	}
	pgm_cutover_run(s);
}

void
pgm_pipeline_window(pgm_step_t *s)
{
	pgm_window_run(s);
}

void
pgm_pipeline_finish(pgm_step_t *s)
{
	if (pglogical(s)) {
		/* the nodes, replication sets and extensions pgmover created go first */
		pgm_pglogical_remove(s, pgm_finish_run);
		return;
	}
	pgm_finish_run(s);
}

void
pgm_pipeline_rollback(pgm_step_t *s)
{
	if (pglogical(s)) {
		pgm_pglogical_remove(s, pgm_rollback_run);
		return;
	}
	pgm_rollback_run(s);
}

static void
abort_clean(pgm_step_t *s)
{
	if (pglogical(s)) {
		/* subscription, slot, nodes, sets, extensions, then the target's contents */
		pgm_pglogical_abort(s, done);
		return;
	}
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

/* failed: a pglogical job lets go of the source's WAL (retry creates the stream again) */
void
pgm_pipeline_failed(pgm_step_t *s)
{
	if (pglogical(s))
		pgm_pglogical_failed(s);
}
