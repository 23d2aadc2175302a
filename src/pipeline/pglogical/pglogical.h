/*
 * pglogical.h — what the files of the pglogical method share: the names
 * of the objects pgmover creates for a job, the job's artifacts of those
 * objects, and a step context with one connection per side.
 *
 *   pglogical.c            names, artifacts, context and queries, ensuring
 *                          the subscription exists
 *   pglogical_provision.c  extension, nodes, schema, replication sets
 *   pglogical_monitor.c    following the subscription: sync state, lag,
 *                          warnings (syncing, synced, and before a drain)
 *   pglogical_drain.c      freezing: freeze, drain to a sentinel, sequences
 *   pglogical_teardown.c   dropping exactly what the artifacts record
 */
#ifndef PGM_PGLOGICAL_H
#define PGM_PGLOGICAL_H

#include "fsm/artifact.h"
#include "fsm/job.h"
#include "pipeline/sql.h"

/*
 * The steps of the method (its table is in method.c).
 * detach drops the subscription and its slot; remove everything pgmover
 * created on the servers; abort that and the target's contents; failed
 * drops the subscription and slot of a failed job (warning, retried).
 */
void pgm_pglogical_provision(pgm_step_t *s);
void pgm_pglogical_sync(pgm_step_t *s);
void pgm_pglogical_synced(pgm_step_t *s);
void pgm_pglogical_freeze(pgm_step_t *s);
void pgm_pglogical_detach(pgm_step_t *s, void (*then)(pgm_step_t *s));
void pgm_pglogical_remove(pgm_step_t *s, void (*then)(pgm_step_t *s));
void pgm_pglogical_abort(pgm_step_t *s, void (*then)(pgm_step_t *s));
void pgm_pglogical_failed(pgm_step_t *s);

/* artifact kinds */
#define PGL_KIND_EXTENSION "pglogical_extension"
#define PGL_KIND_NODE "pglogical_node"
#define PGL_KIND_SET "replication_set"
#define PGL_KIND_SUBSCRIPTION "subscription"

/*
 * The names of a job's objects. pglogical shortens names longer than 16
 * characters with a hash when it builds the slot name (pgl_DB_NODE_SUB),
 * so every name here stays within 16 to keep the slot name predictable.
 */
typedef struct pgl_names {
	char sub[32];      /* subscription, on the target */
	char src_node[32]; /* provider node */
	char dst_node[32]; /* subscriber node */
	char set[32];      /* tables with a replica identity: every change */
	char set_io[32];   /* tables without: inserts only (allow_no_pk) */
} pgl_names_t;

void pgl_names(const pgm_job_t *job, pgl_names_t *out);
/* the provider node actually used (an existing node of the source is reused) */
const char *pgl_provider_node(const pgm_job_t *job);

/*
 * The step context: one session per side (sql.c), opened on first use,
 * each running one statement at a time; a lost connection is opened again
 * by the next statement. Sessions lift the read-only default at once, so
 * pgmover can work on a frozen source.
 */
typedef struct pgl pgl_t;
typedef void (*pgl_result_cb)(pgl_t *x, const PGresult *res);
/* a statement or a connection failed; the context stays usable */
typedef void (*pgl_error_cb)(pgl_t *x, bool source, const char *what, const pgm_pg_error_t *err);

typedef struct pgl_side {
	pgl_t *x;
	bool source;
	pgm_sql_session_t *session; /* created on first use */
	pgl_result_cb cb;           /* of the statement running */
} pgl_side_t;

struct pgl {
	pgm_step_t *step;
	pgl_names_t names;
	pgl_side_t side[2];    /* [0] source, [1] target */
	pgl_error_cb on_error; /* default: fail the step */
	const char *hint;      /* for the default error handler */
	void *ensure;          /* pgl_ensure_subscription's state */
	int errors;            /* errors a tolerant phase (teardown) met */
	void *fence;           /* pgl_fence's state */
	int64_t mark_ms;       /* a time mark that outlives a phase (the freeze) */
	uv_timer_t *timer;     /* pgl_timer: one timer for the phases that wait */
	void *phase;           /* the running phase's own state */
	void (*phase_free)(void *);
	void (*then)(pgm_step_t *s); /* what follows the phase */
};

/* the step's context, created on first use and freed with the step */
pgl_t *pgl_get(pgm_step_t *s);
/* a script on a side's session whose errors go to x->on_error; the side must not be busy when it runs */
pgm_sql_t *pgl_sql(pgl_t *x, bool source, const char *what);
/* run one statement on a side (at most 8 parameters); the side must not be busy */
void pgl_query(pgl_t *x, bool source, const char *what, const char *sql, int nparams, const char *const *params,
	       pgl_result_cb cb);
/* a statement runs on the side (its callback has not been called yet) */
bool pgl_busy(const pgl_t *x, bool source);
/* the context's timer (data: the step), created once */
uv_timer_t *pgl_timer(pgl_t *x);
/* replace the running phase's state */
void pgl_set_phase(pgl_t *x, void *phase, void (*free_fn)(void *));
/* the default error handler: fail the step with what and the server's error */
void pgl_fail(pgl_t *x, bool source, const char *what, const pgm_pg_error_t *err);

/*
 * The fence (sql.h) on the target, then on the source, when an earlier run
 * was cut short making or dropping one of the job's objects (an artifact
 * left creating or dropping): its backend may still be running that
 * statement, and doing it again would race it ("duplicate key value",
 * "subscription ... not found"). Best effort: a side that cannot be reached
 * is a warning, left to the next statement. Then `then` runs.
 */
void pgl_fence(pgl_t *x, void (*then)(pgl_t *x));

/*
 * Make sure the job's subscription exists on the target: created (with
 * the target's replicated tables emptied first) when it never was or was
 * dropped; fails the step when it vanished behind pgmover's back. Then
 * `then` runs.
 */
void pgl_ensure_subscription(pgl_t *x, void (*then)(pgl_t *x));

/* empty the target but keep a pglogical extension (pgmover's is gone by then) */
extern const char *const pgl_clean_target_sql;

/* pglogical_monitor.c: follow the subscription every second */
typedef enum pgl_follow_mode {
	PGL_FOLLOW_SYNC,  /* syncing: done once the subscription and every table are ready */
	PGL_FOLLOW_WATCH, /* synced: never done; lag and warnings */
	PGL_FOLLOW_READY, /* freezing: call then(s) once ready */
} pgl_follow_mode_t;
void pgl_follow(pgl_t *x, pgl_follow_mode_t mode, void (*ready)(pgm_step_t *s));

/* pglogical_drain.c: the drain after the freeze */
void pgl_drain(pgm_step_t *s);

/*
 * pglogical_teardown.c: drop what the artifacts record, in reverse order.
 * scope: PGL_DROP_STREAM drops the subscription and its slot only;
 * PGL_DROP_ALL also the nodes, replication sets and extensions pgmover
 * created. strict: any error fails the step; otherwise errors become
 * warnings and the caller retries.
 */
typedef enum pgl_drop_scope {
	PGL_DROP_STREAM,
	PGL_DROP_ALL,
} pgl_drop_scope_t;
void pgl_teardown(pgm_step_t *s, pgl_drop_scope_t scope, bool strict, void (*then)(pgm_step_t *s));

#endif
