/*
 * replay.h — replaying the target's changes on the source with the
 * source's triggers and foreign keys in place (replay.c): its user
 * triggers disabled while it replays (an artifact, enabled again by
 * rollback, finish and the unwind), its foreign keys' actions recognised
 */
#ifndef PGM_REPLAY_H
#define PGM_REPLAY_H

#include <cjson/cJSON.h>
#include "pipeline/cutover/flow.h"

struct pgm_pgo;

/*
 * The answer of pgm_replay_prepare: rules (the caller's to free) for
 * pgm_replay_rules_apply; or err (rules NULL), with what failed
 */
typedef void (*pgm_replay_cb)(void *data, cJSON *rules, const char *what, const pgm_pg_error_t *err);

/*
 * Before the first replayed change, on a session of its own on the source:
 * read what the source's foreign keys do, and disable its enabled user
 * triggers (recorded first); lock waits retried every second on timer.
 */
void pgm_replay_prepare(pgm_step_t *s, uv_timer_t *timer, pgm_replay_cb cb, void *data);
/* give a decoder the foreign keys' rules */
void pgm_replay_rules_apply(const cJSON *rules, struct pgm_pgo *pgo);
/* whether pgmover disabled triggers on the source that are not enabled again */
bool pgm_replay_triggers_live(pgm_job_t *job);
/* a stage: enable again exactly the triggers pgmover disabled, if still disabled; errors fail the flow */
void pgm_replay_triggers_restore(pgm_flow_t *f, pgm_stage_fn then);

#endif
