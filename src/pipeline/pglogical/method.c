/*
 * method.c — the pglogical method's table: logical replication from a
 * source that allows it (a superuser, wal_level = logical, pglogical
 * preloaded: not Heroku), with a freeze of a fraction of a second.
 */
#include "fsm/artifact.h"
#include "pipeline/cutover/cutover.h"
#include "pipeline/freeze/freeze.h"
#include "pipeline/method.h"
#include "pipeline/pglogical/pglogical.h"
#include "pipeline/verify/verify.h"

/* the target becomes independent (subscription and slot dropped) before traffic moves */
static void
pgl_cutover(pgm_step_t *s)
{
	pgm_pglogical_detach(s, pgm_cutover_run);
}

/*
 * thaw: writes back on the source. After a cutover that failed once it had
 * dropped the subscription, the target no longer follows the source: the
 * thaw still gives writes back, then says so and fails.
 */
static void
pgl_thawed(pgm_step_t *s, void *data)
{
	if (pgm_artifact_find(s->job, PGL_KIND_SUBSCRIPTION, NULL, NULL) &&
	    !pgm_artifact_find_live(s->job, PGL_KIND_SUBSCRIPTION, NULL, NULL)) {
		pgm_step_fail(s, "the source takes writes again, but the target no longer follows it",
			      "the failed cutover had already dropped the pglogical subscription",
			      "abort the job (it removes what pgmover created), then create and start it again");
		return;
	}
	pgm_step_done(s, PGM_EV_DONE);
}

static void
pgl_thaw(pgm_step_t *s)
{
	pgm_thaw_source(s, pgl_thawed, NULL);
}

/* the nodes, replication sets and extensions pgmover created go first */
static void
pgl_finish(pgm_step_t *s)
{
	pgm_pglogical_remove(s, pgm_finish_run);
}

/*
 * pglogical's objects go last here: removing them writes to pglogical's
 * catalog tables on the target, which a publication FOR ALL TABLES
 * publishes; decoded in the drain, their removal fails the stream ("could
 * not find pg_class entry", the extension's tables dropped meanwhile) and
 * would be applied to the source's own pglogical catalog
 */
static void
pgl_rolled_back(pgm_step_t *s)
{
	pgm_pglogical_remove(s, pgm_rollback_finished);
}

static void
pgl_rollback(pgm_step_t *s)
{
	pgm_rollback_run_then(s, pgl_rolled_back);
}

/* subscription, slot, nodes, sets, extensions, then the target's contents */
static void
pgl_abort(pgm_step_t *s)
{
	pgm_pglogical_abort(s, pgm_op_done);
}

const pgm_method_t pgm_method_pglogical = {
	.name = "pglogical",
	.summary = "logical replication, needs a superuser on the source",
	.provision = pgm_pglogical_provision,
	.sync = pgm_pglogical_sync,
	.synced = pgm_pglogical_synced,
	.freeze = pgm_pglogical_freeze,
	.frozen = pgm_freeze_check_step,
	.verify = pgm_verify_step,
	.thaw = pgl_thaw,
	.cutover = pgl_cutover,
	.window = pgm_window_run,
	.finish = pgl_finish,
	.rollback = pgl_rollback,
	.abort = pgl_abort,
	.failed = pgm_pglogical_failed,
};
