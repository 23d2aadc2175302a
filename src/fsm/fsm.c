/*
 * fsm.c — the transition table. Everything else about the machine — the
 * `describe` command, the README diagram, the reachability unit test, the
 * driver — reads this one array.
 */
#include "fsm/fsm.h"
#include "common/util.h"

#include <stdio.h>
#include <string.h>

#define BEFORE_CUTOVER                                                                                       \
	(PGM_S(PGM_ST_CREATED) | PGM_S(PGM_ST_PROVISIONING) | PGM_S(PGM_ST_SYNCING) | PGM_S(PGM_ST_SYNCED) | \
	 PGM_S(PGM_ST_FREEZING) | PGM_S(PGM_ST_FROZEN) | PGM_S(PGM_ST_VERIFYING) | PGM_S(PGM_ST_VERIFIED) |  \
	 PGM_S(PGM_ST_VERIFY_FAILED) | PGM_S(PGM_ST_THAWING))

/* the states a job may hold the source's freeze in, before traffic moves */
#define FREEZE_HELD                                                                                         \
	(PGM_S(PGM_ST_FREEZING) | PGM_S(PGM_ST_FROZEN) | PGM_S(PGM_ST_VERIFYING) | PGM_S(PGM_ST_VERIFIED) | \
	 PGM_S(PGM_ST_VERIFY_FAILED) | PGM_S(PGM_ST_THAWING))

#define NON_TERMINAL                                                                                             \
	(BEFORE_CUTOVER | PGM_S(PGM_ST_CUTTING_OVER) | PGM_S(PGM_ST_ROLLBACK_WINDOW) | PGM_S(PGM_ST_FINISHING) | \
	 PGM_S(PGM_ST_ROLLING_BACK) | PGM_S(PGM_ST_ABORTING))

const pgm_transition_t pgm_transitions[] = {
	{PGM_S(PGM_ST_CREATED), PGM_EV_START, PGM_ST_PROVISIONING, "provision", pgm_step_provision,
	 "start: preflight both servers, then prepare the target"},
	{PGM_S(PGM_ST_PROVISIONING), PGM_EV_DONE, PGM_ST_SYNCING, "sync", pgm_step_sync,
	 "provisioned: copy the data (dump: rehearsal copy; pglogical: initial sync)"},
	{PGM_S(PGM_ST_SYNCING), PGM_EV_DONE, PGM_ST_SYNCED, "synced", pgm_step_synced,
	 "synced: the target follows the source; waiting for freeze"},
	{PGM_S(PGM_ST_SYNCED), PGM_EV_FREEZE, PGM_ST_FREEZING, "freeze", pgm_step_freeze,
	 "freeze: stop writes on the source, then take the final copy or drain replication"},
	{PGM_S(PGM_ST_FREEZING), PGM_EV_DONE, PGM_ST_FROZEN, "frozen", pgm_step_frozen,
	 "frozen: writes are stopped and the target has everything; prove the freeze held"},
	{PGM_S(PGM_ST_FROZEN), PGM_EV_DONE, PGM_ST_VERIFYING, "verify", pgm_step_verify,
	 "verify: compare the target with the source"},
	{PGM_S(PGM_ST_VERIFIED) | PGM_S(PGM_ST_VERIFY_FAILED), PGM_EV_VERIFY, PGM_ST_VERIFYING, "verify",
	 pgm_step_verify, "verify again (e.g. after fixing a difference)"},
	{PGM_S(PGM_ST_VERIFYING), PGM_EV_DONE, PGM_ST_VERIFIED, "hold", pgm_step_hold,
	 "verified: source and target match; waiting for cutover"},
	{PGM_S(PGM_ST_VERIFYING), PGM_EV_VERIFY_FAILED, PGM_ST_VERIFY_FAILED, "hold", pgm_step_hold,
	 "verify found differences: the source stays frozen; thaw, abort, or fix and verify again"},
	{PGM_S(PGM_ST_FROZEN) | PGM_S(PGM_ST_VERIFIED) | PGM_S(PGM_ST_VERIFY_FAILED) | PGM_S(PGM_ST_FAILED),
	 PGM_EV_THAW, PGM_ST_THAWING, "thaw", pgm_step_thaw, "thaw: undo exactly what freeze did; writes resume"},
	{PGM_S(PGM_ST_THAWING), PGM_EV_DONE, PGM_ST_SYNCED, "synced", pgm_step_synced,
	 "thawed: writes allowed again; freeze again when ready"},
	{PGM_S(PGM_ST_VERIFIED), PGM_EV_CUTOVER, PGM_ST_CUTTING_OVER, "cutover", pgm_step_cutover,
	 "cutover: make the target independent and switch traffic to it"},
	{PGM_S(PGM_ST_CUTTING_OVER), PGM_EV_DONE, PGM_ST_ROLLBACK_WINDOW, "window", pgm_step_window,
	 "cut over: traffic is on the target; rollback stays possible until the window closes"},
	{PGM_S(PGM_ST_ROLLBACK_WINDOW), PGM_EV_FINISH, PGM_ST_FINISHING, "finish", pgm_step_finish,
	 "finish: close the rollback window and remove what pgmover created"},
	{PGM_S(PGM_ST_ROLLBACK_WINDOW), PGM_EV_DEADLINE, PGM_ST_FINISHING, "finish", pgm_step_finish,
	 "the rollback window closed: remove what pgmover created"},
	{PGM_S(PGM_ST_FINISHING), PGM_EV_DONE, PGM_ST_COMPLETED, "settle", pgm_step_settle,
	 "completed: the target is the primary; the source stays frozen"},
	{PGM_S(PGM_ST_ROLLBACK_WINDOW), PGM_EV_ROLLBACK, PGM_ST_ROLLING_BACK, "rollback", pgm_step_rollback,
	 "rollback: bring writes made on the target back and return traffic to the source"},
	{PGM_S(PGM_ST_ROLLING_BACK), PGM_EV_DONE, PGM_ST_ROLLED_BACK, "settle", pgm_step_settle,
	 "rolled back: the source is the primary again"},
	{BEFORE_CUTOVER | PGM_S(PGM_ST_FAILED), PGM_EV_ABORT, PGM_ST_ABORTING, "abort", pgm_step_abort,
	 "abort: thaw the source and drop what pgmover created"},
	{PGM_S(PGM_ST_ABORTING), PGM_EV_DONE, PGM_ST_ABORTED, "settle", pgm_step_settle,
	 "aborted: the source is as it was; nothing of pgmover's remains"},
	{NON_TERMINAL, PGM_EV_ERROR, PGM_ST_FAILED, "failed", pgm_step_failed,
	 "a step failed: the reason is kept; retry resumes from the last durable step"},
	{PGM_S(PGM_ST_FAILED), PGM_EV_RETRY, PGM_ST__PREVIOUS, "retry", pgm_step_retry,
	 "retry: resume the step that failed"},
};

const int pgm_transitions_count = (int) PGM_ARRAY_LEN(pgm_transitions);

static const char *state_names[PGM_ST__COUNT] = {
	"created",      "provisioning",  "syncing",  "synced",       "freezing",        "frozen",    "verifying",
	"verified",     "verify_failed", "thawing",  "cutting_over", "rollback_window", "finishing", "completed",
	"rolling_back", "rolled_back",   "aborting", "aborted",      "failed"};

static const char *event_names[PGM_EV__COUNT] = {"start",         "freeze",   "thaw",  "verify", "cutover",
						 "rollback",      "finish",   "abort", "retry",  "done",
						 "verify_failed", "deadline", "error"};

const char *
pgm_state_name(pgm_state_t st)
{
	if (st == PGM_ST__PREVIOUS)
		return "(previous)";
	return (st >= 0 && st < PGM_ST__COUNT) ? state_names[st] : "unknown";
}

bool
pgm_state_parse(const char *name, pgm_state_t *out)
{
	for (int i = 0; i < PGM_ST__COUNT; i++)
		if (name && strcmp(name, state_names[i]) == 0)
			return (*out = (pgm_state_t) i), true;
	return false;
}

const char *
pgm_event_name(pgm_event_t ev)
{
	return (ev >= 0 && ev < PGM_EV__COUNT) ? event_names[ev] : "unknown";
}

bool
pgm_event_parse(const char *name, pgm_event_t *out)
{
	for (int i = 0; i < PGM_EV__COUNT; i++)
		if (name && strcmp(name, event_names[i]) == 0)
			return (*out = (pgm_event_t) i), true;
	return false;
}

bool
pgm_event_is_command(pgm_event_t ev)
{
	return ev >= PGM_EV_START && ev <= PGM_EV_RETRY;
}

bool
pgm_state_is_terminal(pgm_state_t st)
{
	return st == PGM_ST_COMPLETED || st == PGM_ST_ABORTED || st == PGM_ST_ROLLED_BACK;
}

/*
 * Where a hung statement would hold the source's freeze or a cutover or
 * rollback half done: statements are bounded (statement_timeout,
 * lock_timeout and the silence that takes a connection for dead)
 */
#define BOUNDED (FREEZE_HELD | PGM_S(PGM_ST_CUTTING_OVER) | PGM_S(PGM_ST_ROLLING_BACK))

bool
pgm_state_bounded(pgm_state_t st)
{
	return st >= 0 && st < PGM_ST__COUNT && (BOUNDED & PGM_S(st)) != 0;
}

bool
pgm_state_before_cutover(pgm_state_t st)
{
	return (BEFORE_CUTOVER & PGM_S(st)) != 0;
}

int
pgm_fsm_decide(pgm_state_t state, pgm_state_t failed_from, bool traffic_moved, pgm_event_t event)
{
	/* a cutover that failed before traffic moved left the source frozen and the job before cutover */
	bool unmoved_cutover = failed_from == PGM_ST_CUTTING_OVER && !traffic_moved;

	for (int i = 0; i < pgm_transitions_count; i++) {
		const pgm_transition_t *t = &pgm_transitions[i];

		if (t->event != event || (t->from_mask & PGM_S(state)) == 0)
			continue;
		/* a job that failed after cutover cannot be aborted, only retried */
		if (state == PGM_ST_FAILED && event == PGM_EV_ABORT && !pgm_state_before_cutover(failed_from) &&
		    !unmoved_cutover)
			continue;
		/*
		 * a job that failed while the source may be frozen (and traffic has
		 * not moved) can be thawed: never stuck read-only behind a failure
		 */
		if (state == PGM_ST_FAILED && event == PGM_EV_THAW && (PGM_S(failed_from) & FREEZE_HELD) == 0 &&
		    !unmoved_cutover)
			continue;
		return i;
	}
	return -1;
}

char *
pgm_fsm_allowed_commands(pgm_state_t state, pgm_state_t failed_from, bool traffic_moved)
{
	char buf[256] = "";

	for (int ev = 0; ev < PGM_EV__COUNT; ev++) {
		if (!pgm_event_is_command((pgm_event_t) ev) ||
		    pgm_fsm_decide(state, failed_from, traffic_moved, (pgm_event_t) ev) < 0)
			continue;
		if (buf[0])
			strcat(buf, ", ");
		strcat(buf, event_names[ev]);
	}
	return pgm_strdup(buf[0] ? buf : "none");
}

cJSON *
pgm_fsm_describe(void)
{
	cJSON *root = cJSON_CreateObject();
	cJSON *states = cJSON_AddArrayToObject(root, "states");
	cJSON *events = cJSON_AddArrayToObject(root, "events");
	cJSON *rows = cJSON_AddArrayToObject(root, "transitions");

	for (int i = 0; i < PGM_ST__COUNT; i++)
		cJSON_AddItemToArray(states, cJSON_CreateString(state_names[i]));
	for (int i = 0; i < PGM_EV__COUNT; i++) {
		cJSON *e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "name", event_names[i]);
		cJSON_AddBoolToObject(e, "command", pgm_event_is_command((pgm_event_t) i));
		cJSON_AddItemToArray(events, e);
	}
	for (int i = 0; i < pgm_transitions_count; i++) {
		const pgm_transition_t *t = &pgm_transitions[i];
		cJSON *row = cJSON_CreateObject();
		cJSON *from = cJSON_AddArrayToObject(row, "from");

		for (int s = 0; s < PGM_ST__COUNT; s++)
			if (t->from_mask & PGM_S(s))
				cJSON_AddItemToArray(from, cJSON_CreateString(state_names[s]));
		cJSON_AddStringToObject(row, "event", event_names[t->event]);
		cJSON_AddStringToObject(row, "to", pgm_state_name(t->to));
		cJSON_AddStringToObject(row, "step", t->step_name);
		cJSON_AddBoolToObject(row, "command", pgm_event_is_command(t->event));
		cJSON_AddStringToObject(row, "comment", t->comment);
		cJSON_AddItemToArray(rows, row);
	}
	return root;
}

static void
tb_from(pgm_buf_t *b, uint32_t mask, const char *sep)
{
	bool first = true;

	for (int s = 0; s < PGM_ST__COUNT; s++) {
		if (!(mask & PGM_S(s)))
			continue;
		if (!first)
			pgm_buf_append(b, sep);
		pgm_buf_append(b, state_names[s]);
		first = false;
	}
}

char *
pgm_fsm_describe_text(void)
{
	pgm_buf_t b = {0};

	pgm_buf_append(&b, "");
	for (int i = 0; i < pgm_transitions_count; i++) {
		const pgm_transition_t *t = &pgm_transitions[i];
		char line[512];

		tb_from(&b, t->from_mask, "|");
		/* operators' commands bare, events the daemon takes in parentheses */
		snprintf(line, sizeof(line),
			 pgm_event_is_command(t->event) ? " -%s-> %s  [%s]  %s\n" : " -(%s)-> %s  [%s]  %s\n",
			 event_names[t->event], pgm_state_name(t->to), t->step_name, t->comment);
		pgm_buf_append(&b, line);
	}
	return b.s;
}

char *
pgm_fsm_describe_dot(void)
{
	pgm_buf_t b = {0};

	pgm_buf_append(&b, "digraph pgmover {\n  rankdir=LR;\n  node [shape=box, style=rounded];\n");
	for (int i = 0; i < pgm_transitions_count; i++) {
		const pgm_transition_t *t = &pgm_transitions[i];
		char line[256];

		for (int s = 0; s < PGM_ST__COUNT; s++) {
			if (!(t->from_mask & PGM_S(s)))
				continue;
			snprintf(line, sizeof(line), "  %s -> %s [label=\"%s\"%s];\n", state_names[s],
				 t->to == PGM_ST__PREVIOUS ? "previous" : pgm_state_name(t->to), event_names[t->event],
				 pgm_event_is_command(t->event) ? ", style=bold" : "");
			pgm_buf_append(&b, line);
		}
	}
	pgm_buf_append(&b, "}\n");
	return b.s;
}

/* {event, to, step} of a row, or null for none (-1) */
cJSON *
pgm_fsm_row_json(int row)
{
	const pgm_transition_t *t;
	cJSON *o;

	if (row < 0 || row >= pgm_transitions_count)
		return cJSON_CreateNull();
	t = &pgm_transitions[row];
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "event", pgm_event_name(t->event));
	cJSON_AddStringToObject(o, "to", pgm_state_name(t->to));
	cJSON_AddStringToObject(o, "step", t->step_name);
	return o;
}
