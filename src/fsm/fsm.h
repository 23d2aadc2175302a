/*
 * fsm.h — the job state machine: states, events, and the one declarative
 * transition table every view of the machine is generated from.
 */
#ifndef PGM_FSM_H
#define PGM_FSM_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

typedef enum pgm_state {
	PGM_ST_CREATED = 0,
	PGM_ST_PROVISIONING,
	PGM_ST_SYNCING,
	PGM_ST_SYNCED,
	PGM_ST_FREEZING,
	PGM_ST_FROZEN,
	PGM_ST_VERIFYING,
	PGM_ST_VERIFIED,
	PGM_ST_VERIFY_FAILED,
	PGM_ST_THAWING,
	PGM_ST_CUTTING_OVER,
	PGM_ST_ROLLBACK_WINDOW,
	PGM_ST_FINISHING,
	PGM_ST_COMPLETED,
	PGM_ST_ROLLING_BACK,
	PGM_ST_ROLLED_BACK,
	PGM_ST_ABORTING,
	PGM_ST_ABORTED,
	PGM_ST_FAILED,
	PGM_ST__COUNT,
	PGM_ST__PREVIOUS = 100 /* row target: the state the job failed in (retry) */
} pgm_state_t;

typedef enum pgm_event {
	PGM_EV_START = 0,
	PGM_EV_FREEZE,
	PGM_EV_THAW,
	PGM_EV_VERIFY,
	PGM_EV_CUTOVER,
	PGM_EV_ROLLBACK,
	PGM_EV_FINISH,
	PGM_EV_ABORT,
	PGM_EV_RETRY,
	PGM_EV_DONE,          /* the step of the current state finished */
	PGM_EV_VERIFY_FAILED, /* verification found differences */
	PGM_EV_DEADLINE,      /* the rollback window closed */
	PGM_EV_ERROR,         /* the step failed */
	PGM_EV__COUNT,
	PGM_EV__NONE = -1
} pgm_event_t;

#define PGM_S(st) (UINT32_C(1) << (st))

struct pgm_step;
typedef void (*pgm_step_fn)(struct pgm_step *step);

/* one row: in any state of from_mask, event leads to `to`, whose work is `step` */
typedef struct pgm_transition {
	uint32_t from_mask;
	pgm_event_t event;
	pgm_state_t to;
	const char *step_name;
	pgm_step_fn step;
	const char *comment;
} pgm_transition_t;

extern const pgm_transition_t pgm_transitions[];
extern const int pgm_transitions_count;

const char *pgm_state_name(pgm_state_t st);
bool pgm_state_parse(const char *name, pgm_state_t *out);
const char *pgm_event_name(pgm_event_t ev);
bool pgm_event_parse(const char *name, pgm_event_t *out);
/* commands an operator sends (start, freeze, ...) vs events the daemon takes */
bool pgm_event_is_command(pgm_event_t ev);

bool pgm_state_is_terminal(pgm_state_t st);
/* states before cutting_over: abort is allowed and the source may be thawed */
bool pgm_state_before_cutover(pgm_state_t st);
/*
 * states whose statements are bounded (statement_timeout, lock_timeout):
 * freezing .. cutting_over, verifying, thawing, rolling_back
 */
bool pgm_state_bounded(pgm_state_t st);

/*
 * The decision, free of I/O: which row the event takes from this state.
 * failed_from is the state a failed job failed in (for retry and abort);
 * traffic_moved, whether a cutover moved the application's traffic to the
 * target (a cutover that failed before that can still be thawed or
 * aborted; pass true when it is not known). Returns the row index, or -1
 * when the event is not allowed.
 */
int pgm_fsm_decide(pgm_state_t state, pgm_state_t failed_from, bool traffic_moved, pgm_event_t event);
/* the commands accepted in a state, as "start, abort" (malloc'd) */
char *pgm_fsm_allowed_commands(pgm_state_t state, pgm_state_t failed_from, bool traffic_moved);

/* {event, to, step} of a row of the table, or JSON null for -1 */
cJSON *pgm_fsm_row_json(int row);

/* the table as text, one row a line, for the README (malloc'd) */
char *pgm_fsm_describe_text(void);
/* the table as a graphviz digraph (malloc'd) */
char *pgm_fsm_describe_dot(void);

/* {"states": [...], "events": [...], "transitions": [...]} */
cJSON *pgm_fsm_describe(void);

/* the step functions named in the table (src/pipeline/steps.c) */
void pgm_step_provision(struct pgm_step *s);
void pgm_step_sync(struct pgm_step *s);
void pgm_step_synced(struct pgm_step *s);
void pgm_step_freeze(struct pgm_step *s);
void pgm_step_frozen(struct pgm_step *s);
void pgm_step_verify(struct pgm_step *s);
void pgm_step_hold(struct pgm_step *s);
void pgm_step_thaw(struct pgm_step *s);
void pgm_step_cutover(struct pgm_step *s);
void pgm_step_window(struct pgm_step *s);
void pgm_step_finish(struct pgm_step *s);
void pgm_step_rollback(struct pgm_step *s);
void pgm_step_abort(struct pgm_step *s);
void pgm_step_retry(struct pgm_step *s);
void pgm_step_settle(struct pgm_step *s);
void pgm_step_failed(struct pgm_step *s);

#endif
