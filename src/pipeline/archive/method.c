/*
 * method.c — the method of a backup-file source (a job created with
 * --method dump and file:/path/latest.dump): the restore is the copy, a
 * backup does not change, and only the operator's hook can stop the
 * application, so the freeze is the hook or nothing.
 */
#include "common/json.h"
#include "pipeline/archive/archive.h"
#include "pipeline/copy/copy.h"
#include "pipeline/cutover/cutover.h"
#include "pipeline/freeze/freeze.h"
#include "pipeline/method.h"

/* provisioning: read the archive's table of contents (it fills facts.source) */
static void
archive_provision(pgm_step_t *s)
{
	pgm_json_set(s->job->facts, "source", cJSON_CreateObject());
	pgm_archive_inspect(s, pgm_copy_own_target);
}

static void
archive_sync(pgm_step_t *s)
{
	pgm_archive_restore(s, "restore", pgm_op_done);
}

static void
frozen(pgm_step_t *s, void *data)
{
	pgm_op_done(s);
}

/* no live source: writes made after the backup are not in it */
static void
archive_freeze(pgm_step_t *s)
{
	pgm_job_t *job = s->job;

	pgm_job_warn(job, "the source is a backup file: writes made after the backup was taken are not in it",
		     "stop the application's writes before taking the backup (heroku maintenance:on), or use "
		     "a live source");
	if (pgm_jobopt_str(job->options, "freeze_command")[0] == '\0') {
		pgm_op_done(s);
		return;
	}
	pgm_freeze_source(s, frozen, NULL);
}

const pgm_method_t pgm_method_archive = {
	.name = "dump",
	.summary = "a pg_dump custom-format file (heroku pg:backups:download) restored into the target",
	.for_file = true,
	.provision = archive_provision,
	.sync = archive_sync,
	.synced = pgm_op_wait,
	.freeze = archive_freeze,
	.frozen = pgm_op_done, /* nothing to prove: the file cannot change */
	.verify = pgm_archive_verify,
	.thaw = pgm_thaw_step,
	.cutover = pgm_cutover_run,
	.window = pgm_window_run,
	.finish = pgm_finish_run,
	.rollback = pgm_rollback_run,
	.abort = pgm_copy_release_target,
	.failed = pgm_op_wait,
};
