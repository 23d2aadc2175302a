/*
 * method.c — the pglogical method's table: logical replication from a
 * source that allows it (a superuser, wal_level = logical, pglogical
 * preloaded: not Heroku), with a freeze of a fraction of a second.
 */
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

/* the nodes, replication sets and extensions pgmover created go first */
static void
pgl_finish(pgm_step_t *s)
{
	pgm_pglogical_remove(s, pgm_finish_run);
}

static void
pgl_rollback(pgm_step_t *s)
{
	pgm_pglogical_remove(s, pgm_rollback_run);
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
	.thaw = pgm_thaw_step,
	.cutover = pgl_cutover,
	.window = pgm_window_run,
	.finish = pgl_finish,
	.rollback = pgl_rollback,
	.abort = pgl_abort,
	.failed = pgm_pglogical_failed,
};
