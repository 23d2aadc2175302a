/*
 * dump.c — the dump method: a rehearsal copy while the source is writable
 * (it proves the restore works and measures the freeze to expect), then
 * the freeze and the final copy with writes stopped, by the job's copy
 * engine (copy/). Any source will do, Heroku's included: it needs only
 * the owner's privileges.
 */
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "pipeline/copy/copy.h"
#include "pipeline/cutover/cutover.h"
#include "pipeline/freeze/freeze.h"
#include "pipeline/method.h"
#include "pipeline/verify/verify.h"

#include <stdlib.h>

/* syncing: the rehearsal copy, unless the job skips it */
static void
dump_sync(pgm_step_t *s)
{
	if (!pgm_jobopt_bool(s->job->options, "rehearsal")) {
		pgm_info("job %s: rehearsal copy skipped (rehearsal = off)", s->job->name);
		pgm_json_set_str(pgm_json_obj(s->job->facts, "copies"), "rehearsal", "skipped");
		pgm_op_done(s);
		return;
	}
	pgm_copy_with_engine(s, "rehearsal", pgm_op_done);
}

static void
final_copy(pgm_step_t *s, void *data)
{
	pgm_copy_with_engine(s, "final", pgm_op_done);
}

/*
 * freezing: writes stop first, then the final copy. Not when the rehearsal
 * says the copy takes longer than freeze_timeout allows: the freeze would
 * only be held until the bound stops it.
 */
static void
dump_freeze(pgm_step_t *s)
{
	pgm_job_t *job = s->job;
	double expected = pgm_json_num(job->facts, "expected_freeze_copy_seconds", 0);
	int64_t bound = pgm_jobopt_int(job->options, "freeze_timeout");

	if (expected * 1000 > (double) bound && !pgm_freeze_active(job)) {
		char *msg =
			pgm_asprintf("the rehearsal copy took %.0f s, longer than freeze_timeout (%lld s) allows the "
				     "final copy inside the freeze: nothing was frozen",
				     expected, (long long) (bound / 1000));
		char *hint = pgm_asprintf("raise the bound (\"pgmover set %s --set freeze_timeout=...\"), then "
					  "\"pgmover retry %s\"",
					  job->name, job->name);

		pgm_step_fail(s, msg, NULL, hint);
		free(msg);
		free(hint);
		return;
	}
	pgm_freeze_source(s, final_copy, NULL);
}

const pgm_method_t pgm_method_dump = {
	.name = "dump",
	.summary = "pg_dump/restore, any source",
	.file_source = &pgm_method_archive,
	.provision = pgm_copy_own_target,
	.sync = dump_sync,
	.synced = pgm_op_wait, /* nothing follows the source: the final copy takes it all */
	.freeze = dump_freeze,
	.frozen = pgm_freeze_check_step,
	.verify = pgm_verify_step,
	.thaw = pgm_thaw_step,
	.cutover = pgm_cutover_run,
	.window = pgm_window_run,
	.finish = pgm_finish_run,
	.rollback = pgm_rollback_run,
	.abort = pgm_copy_release_target,
	.failed = pgm_op_wait, /* a failed copy holds nothing on the source */
};
