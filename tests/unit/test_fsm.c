/*
 * test_fsm.c
 *    Unit tests of the job state machine (src/fsm/fsm.c): the declarative
 *    table pgm_transitions[] is walked as a graph to prove reachability,
 *    that abort and failure are possible where DESIGN.md promises them, and
 *    that terminal states stay terminal; pgm_fsm_decide, the allowed command
 *    lists, the name round trips and pgm_fsm_describe are checked against
 *    the same table. Step functions are only compared, never called.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "fsm/fsm.h"

#define NST PGM_ST__COUNT

/*
 * A node of the machine as the driver sees it: the state, and for a failed
 * job the state it failed in (retry returns there, abort depends on it).
 * For every other state failed_from is irrelevant and kept at 0.
 */
#define NODE(st, ff) ((st) *NST + ((st) == PGM_ST_FAILED ? (ff) : 0))
#define NNODES (NST * NST)

/* the index of the first row with this event whose mask holds state */
static int
row_for(pgm_state_t st, pgm_event_t ev)
{
	for (int i = 0; i < pgm_transitions_count; i++)
		if (pgm_transitions[i].event == ev && (pgm_transitions[i].from_mask & PGM_S(st)))
			return i;
	return -1;
}

/*
 * Mark every node reachable from (st, ff), following pgm_fsm_decide for
 * every event exactly as pgm_job_fire does: ERROR remembers the state it
 * left, PREVIOUS (retry) returns to it.
 */
static void
walk(pgm_state_t st, pgm_state_t ff, bool *seen)
{
	int node = NODE(st, ff);

	if (seen[node])
		return;
	seen[node] = true;
	/* traffic moved by a cutover or not: both worlds are walked */
	for (int i = 0; i < 2 * PGM_EV__COUNT; i++) {
		pgm_event_t ev = (pgm_event_t) (i % PGM_EV__COUNT);
		int row = pgm_fsm_decide(st, ff, i >= PGM_EV__COUNT, ev);
		pgm_state_t to, nff = ff;

		if (row < 0)
			continue;
		to = pgm_transitions[row].to;
		if (to == PGM_ST__PREVIOUS)
			to = ff;
		if (ev == PGM_EV_ERROR)
			nff = st;
		walk(to, to == PGM_ST_FAILED ? nff : (pgm_state_t) 0, seen);
	}
}

/* can some node of state `target` be reached from (st, ff)? */
static bool
reaches(pgm_state_t st, pgm_state_t ff, pgm_state_t target)
{
	bool seen[NNODES];

	memset(seen, 0, sizeof(seen));
	walk(st, ff, seen);
	for (int f = 0; f < NST; f++)
		if (seen[NODE(target, f)])
			return true;
	return false;
}

/* the states from which an ERROR row leads to failed: where retry may return */
static bool
can_fail_directly(pgm_state_t st)
{
	int row = row_for(st, PGM_EV_ERROR);

	return row >= 0 && pgm_transitions[row].to == PGM_ST_FAILED;
}

START_TEST(test_table_well_formed)
{
	uint32_t all = (UINT32_C(1) << NST) - 1;

	ck_assert_int_gt(pgm_transitions_count, 0);
	for (int i = 0; i < pgm_transitions_count; i++) {
		const pgm_transition_t *t = &pgm_transitions[i];

		ck_assert_msg(t->from_mask != 0, "row %d has an empty from mask", i);
		ck_assert_msg((t->from_mask & ~all) == 0, "row %d has bits beyond the last state", i);
		ck_assert_msg(t->event >= 0 && t->event < PGM_EV__COUNT, "row %d has a bad event", i);
		ck_assert_msg((t->to >= 0 && t->to < NST) || t->to == PGM_ST__PREVIOUS, "row %d has a bad target", i);
		ck_assert_msg(t->step != NULL, "row %d has no step function", i);
		ck_assert_msg(t->step_name != NULL && t->step_name[0] != '\0', "row %d has no step name", i);
		ck_assert_msg(t->comment != NULL && t->comment[0] != '\0', "row %d has no comment", i);
		/* PREVIOUS only makes sense for retry, out of failed */
		if (t->to == PGM_ST__PREVIOUS) {
			ck_assert_int_eq(t->event, PGM_EV_RETRY);
			ck_assert_uint_eq(t->from_mask, PGM_S(PGM_ST_FAILED));
		}
	}
}
END_TEST

/* pgm_fsm_decide takes the first match: two rows may never compete */
START_TEST(test_table_deterministic)
{
	for (int i = 0; i < pgm_transitions_count; i++)
		for (int j = i + 1; j < pgm_transitions_count; j++)
			if (pgm_transitions[i].event == pgm_transitions[j].event)
				ck_assert_msg((pgm_transitions[i].from_mask & pgm_transitions[j].from_mask) == 0,
					      "rows %d and %d both take %s from a common state", i, j,
					      pgm_event_name(pgm_transitions[i].event));
}
END_TEST

/* one step name is one step function, and each is the real symbol */
START_TEST(test_step_functions)
{
	static const struct {
		const char *name;
		pgm_step_fn fn;
	} steps[] = {
		{"provision", pgm_step_provision}, {"sync", pgm_step_sync},     {"synced", pgm_step_synced},
		{"freeze", pgm_step_freeze},       {"frozen", pgm_step_frozen}, {"verify", pgm_step_verify},
		{"hold", pgm_step_hold},           {"thaw", pgm_step_thaw},     {"cutover", pgm_step_cutover},
		{"window", pgm_step_window},       {"finish", pgm_step_finish}, {"rollback", pgm_step_rollback},
		{"abort", pgm_step_abort},         {"retry", pgm_step_retry},   {"settle", pgm_step_settle},
		{"failed", pgm_step_failed},
	};

	for (int i = 0; i < pgm_transitions_count; i++) {
		const pgm_transition_t *t = &pgm_transitions[i];
		bool found = false;

		for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
			if (strcmp(steps[k].name, t->step_name) == 0) {
				ck_assert_msg(t->step == steps[k].fn, "row %d: step \"%s\" is not pgm_step_%s", i,
					      t->step_name, steps[k].name);
				found = true;
			}
		}
		ck_assert_msg(found, "row %d names an unknown step \"%s\"", i, t->step_name);
	}
	/* spot checks of particular rows */
	ck_assert_ptr_eq(pgm_transitions[row_for(PGM_ST_CREATED, PGM_EV_START)].step, pgm_step_provision);
	ck_assert_ptr_eq(pgm_transitions[row_for(PGM_ST_VERIFIED, PGM_EV_CUTOVER)].step, pgm_step_cutover);
	ck_assert_ptr_eq(pgm_transitions[row_for(PGM_ST_SYNCING, PGM_EV_ERROR)].step, pgm_step_failed);
	ck_assert_ptr_eq(pgm_transitions[row_for(PGM_ST_FAILED, PGM_EV_RETRY)].step, pgm_step_retry);
}
END_TEST

START_TEST(test_every_state_reachable)
{
	bool seen[NNODES];

	memset(seen, 0, sizeof(seen));
	walk(PGM_ST_CREATED, PGM_ST_CREATED, seen);
	for (int st = 0; st < NST; st++) {
		bool any = false;

		for (int f = 0; f < NST; f++)
			any = any || seen[NODE(st, f)];
		ck_assert_msg(any, "state %s is not reachable from created", pgm_state_name((pgm_state_t) st));
	}
	/* failed is reachable out of every state that can fail, so retry can go everywhere */
	for (int st = 0; st < NST; st++)
		if (can_fail_directly((pgm_state_t) st) && st != PGM_ST_CREATED)
			ck_assert_msg(seen[NODE(PGM_ST_FAILED, st)], "failed (from %s) is not reachable",
				      pgm_state_name((pgm_state_t) st));
}
END_TEST

/* the same property on the raw masks: PREVIOUS reaches every state that can fail */
START_TEST(test_reachable_by_masks)
{
	bool seen[NST] = {false};
	int queue[NST], head = 0, tail = 0;

	seen[PGM_ST_CREATED] = true;
	queue[tail++] = PGM_ST_CREATED;
	while (head < tail) {
		int st = queue[head++];

		for (int i = 0; i < pgm_transitions_count; i++) {
			const pgm_transition_t *t = &pgm_transitions[i];

			if ((t->from_mask & PGM_S(st)) == 0)
				continue;
			for (int to = 0; to < NST; to++) {
				bool edge = t->to == PGM_ST__PREVIOUS ? can_fail_directly((pgm_state_t) to)
								      : (int) t->to == to;

				if (edge && !seen[to]) {
					seen[to] = true;
					queue[tail++] = to;
				}
			}
		}
	}
	for (int st = 0; st < NST; st++)
		ck_assert_msg(seen[st], "state %s has no path from created", pgm_state_name((pgm_state_t) st));
}
END_TEST

START_TEST(test_abort_before_cutover)
{
	int nbefore = 0;

	for (int st = 0; st < NST; st++) {
		if (!pgm_state_before_cutover((pgm_state_t) st))
			continue;
		nbefore++;
		ck_assert_msg(reaches((pgm_state_t) st, 0, PGM_ST_ABORTED), "%s cannot reach aborted",
			      pgm_state_name((pgm_state_t) st));
		/* directly, by the abort command */
		ck_assert_msg(pgm_fsm_decide((pgm_state_t) st, 0, true, PGM_EV_ABORT) >= 0, "%s does not accept abort",
			      pgm_state_name((pgm_state_t) st));
		/* and also once it failed there */
		ck_assert_int_ge(pgm_fsm_decide(PGM_ST_FAILED, (pgm_state_t) st, true, PGM_EV_ABORT), 0);
	}
	ck_assert_int_eq(nbefore, PGM_ST_CUTTING_OVER);
	/* from cutting_over on, abort is never offered */
	for (int st = 0; st < NST; st++) {
		if (pgm_state_before_cutover((pgm_state_t) st) || st == PGM_ST_FAILED)
			continue;
		ck_assert_msg(pgm_fsm_decide((pgm_state_t) st, 0, true, PGM_EV_ABORT) < 0, "%s accepts abort",
			      pgm_state_name((pgm_state_t) st));
	}
	ck_assert(!pgm_state_before_cutover(PGM_ST_CUTTING_OVER));
	ck_assert(!pgm_state_before_cutover(PGM_ST_ROLLBACK_WINDOW));
	ck_assert(!pgm_state_before_cutover(PGM_ST_FAILED));
}
END_TEST

START_TEST(test_failure_possible)
{
	for (int st = 0; st < NST; st++) {
		if (pgm_state_is_terminal((pgm_state_t) st) || st == PGM_ST_FAILED)
			continue;
		ck_assert_msg(reaches((pgm_state_t) st, 0, PGM_ST_FAILED), "%s cannot reach failed",
			      pgm_state_name((pgm_state_t) st));
		/* every state that runs a step can fail directly */
		if (st != PGM_ST_CREATED)
			ck_assert_msg(can_fail_directly((pgm_state_t) st), "%s has no error row",
				      pgm_state_name((pgm_state_t) st));
	}
	/* failed itself is not terminal: it is left by retry (and abort before cutover) */
	ck_assert(!pgm_state_is_terminal(PGM_ST_FAILED));
	ck_assert_int_ge(pgm_fsm_decide(PGM_ST_FAILED, PGM_ST_SYNCING, true, PGM_EV_RETRY), 0);
}
END_TEST

/* from any node reachable from created, some terminal state can still be reached */
START_TEST(test_no_dead_ends)
{
	bool seen[NNODES];

	memset(seen, 0, sizeof(seen));
	walk(PGM_ST_CREATED, 0, seen);
	for (int n = 0; n < NNODES; n++) {
		pgm_state_t st = (pgm_state_t) (n / NST), ff = (pgm_state_t) (n % NST);

		if (!seen[n] || pgm_state_is_terminal(st))
			continue;
		ck_assert_msg(reaches(st, ff, PGM_ST_COMPLETED) || reaches(st, ff, PGM_ST_ABORTED) ||
				      reaches(st, ff, PGM_ST_ROLLED_BACK),
			      "%s (failed from %s) cannot end", pgm_state_name(st), pgm_state_name(ff));
	}
}
END_TEST

START_TEST(test_terminal_states)
{
	int nterminal = 0;

	for (int st = 0; st < NST; st++) {
		if (!pgm_state_is_terminal((pgm_state_t) st))
			continue;
		nterminal++;
		for (int i = 0; i < pgm_transitions_count; i++) {
			const pgm_transition_t *t = &pgm_transitions[i];

			if (pgm_event_is_command(t->event))
				ck_assert_msg((t->from_mask & PGM_S(st)) == 0, "terminal %s has command row %d",
					      pgm_state_name((pgm_state_t) st), i);
			/* nor may the daemon leave it by itself */
			ck_assert_msg((t->from_mask & PGM_S(st)) == 0, "terminal %s has row %d",
				      pgm_state_name((pgm_state_t) st), i);
		}
		for (int ev = 0; ev < PGM_EV__COUNT; ev++)
			ck_assert_int_eq(pgm_fsm_decide((pgm_state_t) st, 0, true, (pgm_event_t) ev), -1);
	}
	ck_assert_int_eq(nterminal, 3);
	ck_assert(pgm_state_is_terminal(PGM_ST_COMPLETED));
	ck_assert(pgm_state_is_terminal(PGM_ST_ABORTED));
	ck_assert(pgm_state_is_terminal(PGM_ST_ROLLED_BACK));
}
END_TEST

/* check one decision: the row it returns leads to `to` with step `fn` */
static void
assert_decides(pgm_state_t st, pgm_state_t ff, pgm_event_t ev, pgm_state_t to, pgm_step_fn fn)
{
	int row = pgm_fsm_decide(st, ff, true, ev);

	ck_assert_msg(row >= 0 && row < pgm_transitions_count, "%s + %s: no row", pgm_state_name(st),
		      pgm_event_name(ev));
	ck_assert_msg(pgm_transitions[row].to == to, "%s + %s leads to %s, not %s", pgm_state_name(st),
		      pgm_event_name(ev), pgm_state_name(pgm_transitions[row].to), pgm_state_name(to));
	ck_assert_uint_ne(pgm_transitions[row].from_mask & PGM_S(st), 0);
	ck_assert_int_eq(pgm_transitions[row].event, ev);
	ck_assert_ptr_eq(pgm_transitions[row].step, fn);
}

START_TEST(test_decide)
{
	assert_decides(PGM_ST_CREATED, 0, PGM_EV_START, PGM_ST_PROVISIONING, pgm_step_provision);
	assert_decides(PGM_ST_PROVISIONING, 0, PGM_EV_DONE, PGM_ST_SYNCING, pgm_step_sync);
	assert_decides(PGM_ST_SYNCED, 0, PGM_EV_FREEZE, PGM_ST_FREEZING, pgm_step_freeze);
	assert_decides(PGM_ST_VERIFYING, 0, PGM_EV_VERIFY_FAILED, PGM_ST_VERIFY_FAILED, pgm_step_hold);
	assert_decides(PGM_ST_VERIFY_FAILED, 0, PGM_EV_THAW, PGM_ST_THAWING, pgm_step_thaw);
	assert_decides(PGM_ST_THAWING, 0, PGM_EV_DONE, PGM_ST_SYNCED, pgm_step_synced);
	assert_decides(PGM_ST_VERIFIED, 0, PGM_EV_CUTOVER, PGM_ST_CUTTING_OVER, pgm_step_cutover);
	assert_decides(PGM_ST_ROLLBACK_WINDOW, 0, PGM_EV_DEADLINE, PGM_ST_FINISHING, pgm_step_finish);
	assert_decides(PGM_ST_ROLLBACK_WINDOW, 0, PGM_EV_ROLLBACK, PGM_ST_ROLLING_BACK, pgm_step_rollback);
	assert_decides(PGM_ST_SYNCING, 0, PGM_EV_ERROR, PGM_ST_FAILED, pgm_step_failed);
	assert_decides(PGM_ST_FAILED, PGM_ST_CUTTING_OVER, PGM_EV_RETRY, PGM_ST__PREVIOUS, pgm_step_retry);
	assert_decides(PGM_ST_FAILED, PGM_ST_FROZEN, PGM_EV_ABORT, PGM_ST_ABORTING, pgm_step_abort);

	/* refusals */
	ck_assert_int_eq(pgm_fsm_decide(PGM_ST_PROVISIONING, 0, true, PGM_EV_CUTOVER), -1);
	ck_assert_int_eq(pgm_fsm_decide(PGM_ST_CREATED, 0, true, PGM_EV_FREEZE), -1);
	ck_assert_int_eq(pgm_fsm_decide(PGM_ST_SYNCED, 0, true, PGM_EV_CUTOVER), -1);
	ck_assert_int_eq(pgm_fsm_decide(PGM_ST_VERIFY_FAILED, 0, true, PGM_EV_CUTOVER), -1);
	ck_assert_int_eq(pgm_fsm_decide(PGM_ST_ROLLBACK_WINDOW, 0, true, PGM_EV_ABORT), -1);
	ck_assert_int_eq(pgm_fsm_decide(PGM_ST_CUTTING_OVER, 0, true, PGM_EV_ROLLBACK), -1);
	ck_assert_int_eq(pgm_fsm_decide(PGM_ST_SYNCED, 0, true, PGM_EV_RETRY), -1);
	ck_assert_int_eq(pgm_fsm_decide(PGM_ST_FAILED, PGM_ST_SYNCING, true, PGM_EV_ERROR), -1);
	ck_assert_int_eq(pgm_fsm_decide(PGM_ST_COMPLETED, 0, true, PGM_EV_ERROR), -1);
	ck_assert_int_eq(pgm_fsm_decide(PGM_ST_CREATED, 0, true, PGM_EV__NONE), -1);
	ck_assert_int_eq(pgm_fsm_decide(PGM_ST_CREATED, 0, true, PGM_EV__COUNT), -1);

	/*
	 * a job that failed while it may hold the source's freeze can be thawed
	 * (never stuck read-only behind a failure); before the freeze or after
	 * cutover there is no freeze of the job's to undo
	 */
	assert_decides(PGM_ST_FAILED, PGM_ST_FREEZING, PGM_EV_THAW, PGM_ST_THAWING, pgm_step_thaw);
	assert_decides(PGM_ST_FAILED, PGM_ST_FROZEN, PGM_EV_THAW, PGM_ST_THAWING, pgm_step_thaw);
	assert_decides(PGM_ST_FAILED, PGM_ST_VERIFYING, PGM_EV_THAW, PGM_ST_THAWING, pgm_step_thaw);
	assert_decides(PGM_ST_FAILED, PGM_ST_THAWING, PGM_EV_THAW, PGM_ST_THAWING, pgm_step_thaw);
	ck_assert_int_eq(pgm_fsm_decide(PGM_ST_FAILED, PGM_ST_SYNCING, true, PGM_EV_THAW), -1);
	ck_assert_int_eq(pgm_fsm_decide(PGM_ST_FAILED, PGM_ST_PROVISIONING, true, PGM_EV_THAW), -1);
	ck_assert_int_eq(pgm_fsm_decide(PGM_ST_FAILED, PGM_ST_CUTTING_OVER, true, PGM_EV_THAW), -1);
	ck_assert_int_eq(pgm_fsm_decide(PGM_ST_FAILED, PGM_ST_ROLLBACK_WINDOW, true, PGM_EV_THAW), -1);
	ck_assert_int_eq(pgm_fsm_decide(PGM_ST_SYNCED, 0, true, PGM_EV_THAW), -1);

	/* a job that failed after cutover cannot be aborted, only retried */
	ck_assert_int_eq(pgm_fsm_decide(PGM_ST_FAILED, PGM_ST_ROLLBACK_WINDOW, true, PGM_EV_ABORT), -1);
	ck_assert_int_eq(pgm_fsm_decide(PGM_ST_FAILED, PGM_ST_CUTTING_OVER, true, PGM_EV_ABORT), -1);
	ck_assert_int_eq(pgm_fsm_decide(PGM_ST_FAILED, PGM_ST_ROLLING_BACK, true, PGM_EV_ABORT), -1);
	ck_assert_int_eq(pgm_fsm_decide(PGM_ST_FAILED, PGM_ST_ABORTING, true, PGM_EV_ABORT), -1);
	ck_assert_int_ge(pgm_fsm_decide(PGM_ST_FAILED, PGM_ST_ROLLBACK_WINDOW, true, PGM_EV_RETRY), 0);
	ck_assert_int_ge(pgm_fsm_decide(PGM_ST_FAILED, PGM_ST_VERIFIED, true, PGM_EV_ABORT), 0);
	ck_assert_int_ge(pgm_fsm_decide(PGM_ST_FAILED, PGM_ST_THAWING, true, PGM_EV_ABORT), 0);

	/*
	 * a cutover that failed before traffic moved left the source frozen:
	 * thaw and abort are open; once traffic moved, only retry
	 */
	ck_assert_int_ge(pgm_fsm_decide(PGM_ST_FAILED, PGM_ST_CUTTING_OVER, false, PGM_EV_THAW), 0);
	ck_assert_int_eq(pgm_transitions[pgm_fsm_decide(PGM_ST_FAILED, PGM_ST_CUTTING_OVER, false, PGM_EV_THAW)].to,
			 PGM_ST_THAWING);
	ck_assert_int_ge(pgm_fsm_decide(PGM_ST_FAILED, PGM_ST_CUTTING_OVER, false, PGM_EV_ABORT), 0);
	ck_assert_int_eq(pgm_transitions[pgm_fsm_decide(PGM_ST_FAILED, PGM_ST_CUTTING_OVER, false, PGM_EV_ABORT)].to,
			 PGM_ST_ABORTING);
	ck_assert_int_ge(pgm_fsm_decide(PGM_ST_FAILED, PGM_ST_CUTTING_OVER, false, PGM_EV_RETRY), 0);
	/* traffic never moves outside a cutover: the flag changes nothing elsewhere */
	ck_assert_int_eq(pgm_fsm_decide(PGM_ST_FAILED, PGM_ST_ROLLBACK_WINDOW, false, PGM_EV_ABORT), -1);
	ck_assert_int_eq(pgm_fsm_decide(PGM_ST_FAILED, PGM_ST_ROLLING_BACK, false, PGM_EV_THAW), -1);
	ck_assert_int_eq(pgm_fsm_decide(PGM_ST_FAILED, PGM_ST_FINISHING, false, PGM_EV_ABORT), -1);
	ck_assert_int_eq(pgm_fsm_decide(PGM_ST_CUTTING_OVER, 0, false, PGM_EV_ABORT), -1);
	ck_assert_int_eq(pgm_fsm_decide(PGM_ST_ROLLBACK_WINDOW, 0, false, PGM_EV_THAW), -1);
}
END_TEST

/* decide agrees with the masks: a row exists exactly when decide finds one */
START_TEST(test_decide_matches_table)
{
	for (int st = 0; st < NST; st++) {
		if (st == PGM_ST_FAILED)
			continue; /* its abort depends on failed_from; see test_decide */
		for (int ev = 0; ev < PGM_EV__COUNT; ev++)
			ck_assert_int_eq(pgm_fsm_decide((pgm_state_t) st, 0, true, (pgm_event_t) ev),
					 row_for((pgm_state_t) st, (pgm_event_t) ev));
	}
}
END_TEST

/* the allowed list and the decision never disagree */
static void
assert_allowed(pgm_state_t st, pgm_state_t ff, const char *expected)
{
	char *got = pgm_fsm_allowed_commands(st, ff, true);

	ck_assert_ptr_nonnull(got);
	ck_assert_msg(strcmp(got, expected) == 0, "%s (from %s): \"%s\", expected \"%s\"", pgm_state_name(st),
		      pgm_state_name(ff), got, expected);
	free(got);
}

START_TEST(test_allowed_commands)
{
	assert_allowed(PGM_ST_CREATED, 0, "start, abort");
	assert_allowed(PGM_ST_PROVISIONING, 0, "abort");
	assert_allowed(PGM_ST_SYNCED, 0, "freeze, abort");
	assert_allowed(PGM_ST_FROZEN, 0, "thaw, abort");
	assert_allowed(PGM_ST_VERIFIED, 0, "thaw, verify, cutover, abort");
	assert_allowed(PGM_ST_VERIFY_FAILED, 0, "thaw, verify, abort");
	assert_allowed(PGM_ST_CUTTING_OVER, 0, "none");
	assert_allowed(PGM_ST_ROLLBACK_WINDOW, 0, "rollback, finish");
	assert_allowed(PGM_ST_COMPLETED, 0, "none");
	assert_allowed(PGM_ST_ABORTED, 0, "none");
	assert_allowed(PGM_ST_ROLLED_BACK, 0, "none");
	assert_allowed(PGM_ST_FAILED, PGM_ST_SYNCING, "abort, retry");
	assert_allowed(PGM_ST_FAILED, PGM_ST_ROLLBACK_WINDOW, "retry");
	assert_allowed(PGM_ST_FAILED, PGM_ST_CUTTING_OVER, "retry");
	{
		char *got = pgm_fsm_allowed_commands(PGM_ST_FAILED, PGM_ST_CUTTING_OVER, false);

		ck_assert_str_eq(got, "thaw, abort, retry");
		free(got);
	}

	/* every listed command is one decide accepts, and every accepted command is listed */
	for (int st = 0; st < NST; st++) {
		char *got = pgm_fsm_allowed_commands((pgm_state_t) st, PGM_ST_SYNCED, true);

		for (int ev = 0; ev < PGM_EV__COUNT; ev++) {
			bool ok = pgm_event_is_command((pgm_event_t) ev) &&
				  pgm_fsm_decide((pgm_state_t) st, PGM_ST_SYNCED, true, (pgm_event_t) ev) >= 0;
			const char *name = pgm_event_name((pgm_event_t) ev);
			bool listed = false;

			for (char *p = strstr(got, name); p; p = strstr(p + 1, name)) {
				size_t n = strlen(name);
				if ((p == got || p[-1] == ' ') && (p[n] == ',' || p[n] == '\0'))
					listed = true;
			}
			ck_assert_msg(ok == listed, "%s: %s listed=%d allowed=%d", pgm_state_name((pgm_state_t) st),
				      name, listed, ok);
		}
		free(got);
	}
}
END_TEST

START_TEST(test_names_round_trip)
{
	for (int st = 0; st < NST; st++) {
		pgm_state_t out = PGM_ST__PREVIOUS;
		const char *name = pgm_state_name((pgm_state_t) st);

		ck_assert_str_ne(name, "unknown");
		ck_assert(pgm_state_parse(name, &out));
		ck_assert_int_eq(out, st);
		/* names are distinct */
		for (int o = 0; o < st; o++)
			ck_assert_str_ne(name, pgm_state_name((pgm_state_t) o));
	}
	for (int ev = 0; ev < PGM_EV__COUNT; ev++) {
		pgm_event_t out = PGM_EV__NONE;
		const char *name = pgm_event_name((pgm_event_t) ev);

		ck_assert_str_ne(name, "unknown");
		ck_assert(pgm_event_parse(name, &out));
		ck_assert_int_eq(out, ev);
		for (int o = 0; o < ev; o++)
			ck_assert_str_ne(name, pgm_event_name((pgm_event_t) o));
	}
	ck_assert_str_eq(pgm_state_name(PGM_ST_VERIFY_FAILED), "verify_failed");
	ck_assert_str_eq(pgm_state_name(PGM_ST_ROLLBACK_WINDOW), "rollback_window");
	ck_assert_str_eq(pgm_event_name(PGM_EV_VERIFY_FAILED), "verify_failed");
	ck_assert_str_eq(pgm_event_name(PGM_EV_CUTOVER), "cutover");
	ck_assert_str_eq(pgm_state_name(PGM_ST__PREVIOUS), "(previous)");
	ck_assert_str_eq(pgm_state_name(PGM_ST__COUNT), "unknown");
	ck_assert_str_eq(pgm_state_name((pgm_state_t) -1), "unknown");
	ck_assert_str_eq(pgm_event_name(PGM_EV__COUNT), "unknown");
	ck_assert_str_eq(pgm_event_name(PGM_EV__NONE), "unknown");
}
END_TEST

START_TEST(test_names_rejected)
{
	pgm_state_t st = PGM_ST_SYNCED;
	pgm_event_t ev = PGM_EV_THAW;

	ck_assert(!pgm_state_parse("bogus", &st));
	ck_assert(!pgm_state_parse("", &st));
	ck_assert(!pgm_state_parse(NULL, &st));
	ck_assert(!pgm_state_parse("CREATED", &st));
	ck_assert(!pgm_state_parse("created ", &st));
	ck_assert(!pgm_state_parse("(previous)", &st));
	ck_assert_int_eq(st, PGM_ST_SYNCED); /* untouched on failure */
	ck_assert(!pgm_event_parse("bogus", &ev));
	ck_assert(!pgm_event_parse(NULL, &ev));
	ck_assert(!pgm_event_parse("Start", &ev));
	ck_assert_int_eq(ev, PGM_EV_THAW);

	/* commands are what operators send; the rest the daemon takes itself */
	for (int e = PGM_EV_START; e <= PGM_EV_RETRY; e++)
		ck_assert(pgm_event_is_command((pgm_event_t) e));
	ck_assert(!pgm_event_is_command(PGM_EV_DONE));
	ck_assert(!pgm_event_is_command(PGM_EV_VERIFY_FAILED));
	ck_assert(!pgm_event_is_command(PGM_EV_DEADLINE));
	ck_assert(!pgm_event_is_command(PGM_EV_ERROR));
	ck_assert(!pgm_event_is_command(PGM_EV__NONE));
}
END_TEST

START_TEST(test_describe)
{
	cJSON *d = pgm_fsm_describe();
	const cJSON *states = cJSON_GetObjectItemCaseSensitive(d, "states");
	const cJSON *events = cJSON_GetObjectItemCaseSensitive(d, "events");
	const cJSON *rows = cJSON_GetObjectItemCaseSensitive(d, "transitions");
	char *text;

	ck_assert(cJSON_IsArray(states));
	ck_assert(cJSON_IsArray(events));
	ck_assert(cJSON_IsArray(rows));
	ck_assert_int_eq(cJSON_GetArraySize(states), NST);
	ck_assert_int_eq(cJSON_GetArraySize(events), PGM_EV__COUNT);
	ck_assert_int_eq(cJSON_GetArraySize(rows), pgm_transitions_count);

	for (int st = 0; st < NST; st++)
		ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetArrayItem(states, st)),
				 pgm_state_name((pgm_state_t) st));
	for (int ev = 0; ev < PGM_EV__COUNT; ev++) {
		const cJSON *e = cJSON_GetArrayItem(events, ev);

		ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(e, "name")),
				 pgm_event_name((pgm_event_t) ev));
		ck_assert(cJSON_IsBool(cJSON_GetObjectItem(e, "command")));
		ck_assert_int_eq(cJSON_IsTrue(cJSON_GetObjectItem(e, "command")),
				 pgm_event_is_command((pgm_event_t) ev));
	}
	for (int i = 0; i < pgm_transitions_count; i++) {
		const pgm_transition_t *t = &pgm_transitions[i];
		const cJSON *row = cJSON_GetArrayItem(rows, i);
		const cJSON *from = cJSON_GetObjectItem(row, "from"), *f;
		uint32_t mask = 0;
		int last = -1;

		ck_assert(cJSON_IsArray(from));
		/* every name is a state, in table order, once, and together they make the mask */
		cJSON_ArrayForEach (f, from) {
			pgm_state_t st;

			ck_assert(pgm_state_parse(cJSON_GetStringValue(f), &st));
			ck_assert_int_gt(st, last);
			last = st;
			mask |= PGM_S(st);
		}
		ck_assert_msg(mask == t->from_mask, "row %d: \"from\" does not match the mask", i);
		ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(row, "event")), pgm_event_name(t->event));
		ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(row, "to")), pgm_state_name(t->to));
		ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(row, "step")), t->step_name);
		ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(row, "comment")), t->comment);
		ck_assert_int_eq(cJSON_IsTrue(cJSON_GetObjectItem(row, "command")), pgm_event_is_command(t->event));
	}
	/* a spot check, and the whole document serialises */
	ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(rows, 0), "to")), "provisioning");
	text = cJSON_PrintUnformatted(d);
	ck_assert_ptr_nonnull(text);
	ck_assert_ptr_nonnull(strstr(text, "\"(previous)\""));
	free(text);
	cJSON_Delete(d);
}
END_TEST

Suite *
pgm_test_suite(void)
{
	Suite *s = suite_create("fsm");
	TCase *table = tcase_create("table");
	TCase *graph = tcase_create("graph");
	TCase *decide = tcase_create("decide");
	TCase *views = tcase_create("views");

	tcase_add_test(table, test_table_well_formed);
	tcase_add_test(table, test_table_deterministic);
	tcase_add_test(table, test_step_functions);
	suite_add_tcase(s, table);

	tcase_add_test(graph, test_every_state_reachable);
	tcase_add_test(graph, test_reachable_by_masks);
	tcase_add_test(graph, test_abort_before_cutover);
	tcase_add_test(graph, test_failure_possible);
	tcase_add_test(graph, test_no_dead_ends);
	tcase_add_test(graph, test_terminal_states);
	suite_add_tcase(s, graph);

	tcase_add_test(decide, test_decide);
	tcase_add_test(decide, test_decide_matches_table);
	tcase_add_test(decide, test_allowed_commands);
	suite_add_tcase(s, decide);

	tcase_add_test(views, test_names_round_trip);
	tcase_add_test(views, test_names_rejected);
	tcase_add_test(views, test_describe);
	suite_add_tcase(s, views);
	return s;
}
