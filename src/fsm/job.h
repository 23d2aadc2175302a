/*
 * job.h — the job and step model: a migration job, the driver that moves
 * it along the transition table (fsm.c), and the context its running step
 * owns. The daemon hosts the jobs (pgm_host_t) and registers for their
 * events; nothing here knows of the control socket.
 */
#ifndef PGM_JOB_H
#define PGM_JOB_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "common/settings.h"
#include "common/util.h"
#include "fsm/audit.h"
#include "fsm/fsm.h"
#include "pg/pgasync.h"
#include "pg/proc.h"

typedef struct pgm_host pgm_host_t;
typedef struct pgm_job pgm_job_t;

/* who asked: recorded in the audit log (SO_PEERCRED) */
typedef struct pgm_peer {
	pid_t pid;
	uid_t uid;
	gid_t gid;
} pgm_peer_t;

#define PGM_STEP_MAX_RES 64

/*
 * The context of one running step. Every connection, child process and
 * timer the step opens is tracked here and closed when the step ends or is
 * cancelled, so no callback outlives its step.
 */
typedef struct pgm_step {
	pgm_job_t *job;
	int row;       /* the transition whose step this is */
	bool finished; /* done or failed was called */
	pgm_pg_conn_t *conns[PGM_STEP_MAX_RES];
	pgm_pg_connect_cb conn_cb[PGM_STEP_MAX_RES];
	bool conn_source[PGM_STEP_MAX_RES]; /* to the source, else the target */
	void *conn_data[PGM_STEP_MAX_RES];
	pgm_proc_t *procs[PGM_STEP_MAX_RES];
	pgm_proc_exit_cb proc_cb[PGM_STEP_MAX_RES];
	pgm_proc_line_cb proc_line_cb[PGM_STEP_MAX_RES];
	void *proc_data[PGM_STEP_MAX_RES];
	uv_timer_t *timers[PGM_STEP_MAX_RES];
	void *owned[PGM_STEP_MAX_RES]; /* helpers' memory, freed with the step */
	void (*owned_free[PGM_STEP_MAX_RES])(void *);
	void *priv; /* the step's own state */
	void (*priv_free)(void *);
	int64_t started_mono;
	/* status --tables: the running work's per-table progress (an array), or NULL */
	cJSON *(*tables_progress)(struct pgm_step *s);
	void *tables_data;
	uv_timer_t *freeze_guard; /* freeze_timeout's timer (one of timers[]), or NULL */
} pgm_step_t;

struct pgm_job {
	char *name;
	char *method;                 /* the name asked for: "dump", "pglogical" */
	const struct pgm_method *ops; /* its table of operations, looked up once (pgm_method_for) */
	char *source_dsn;             /* full DSN: kept in secrets.json (0600) only */
	char *target_dsn;
	char *source_display; /* password masked */
	char *target_display;
	cJSON *options; /* validated option name -> string */
	pgm_state_t state;
	int64_t created_ms;
	int64_t since_ms; /* entered the current state */
	int last_row;     /* the row that led to the current state; -1 none */
	pgm_state_t failed_from;
	int failed_row;
	cJSON *facts;     /* findings of the steps (versions, sizes, timings) */
	cJSON *artifacts; /* what pgmover created or changed, recorded before */
	cJSON *progress;  /* the running step's progress, or NULL */
	cJSON *error;     /* last error: message, detail, hint, state, at */
	cJSON *verify;    /* last verification report */
	cJSON *warnings;  /* array of {message, hint} */
	int64_t freeze_started_ms;
	int64_t rollback_deadline_ms;

	/* runtime only */
	pgm_host_t *host;                    /* the loop and the registry the job lives in */
	char *dir;                           /* state_dir/<name> */
	pgm_step_t *step;                    /* running step or NULL */
	pgm_step_t *ended;                   /* finished step awaiting release */
	pgm_event_t pending;                 /* event the finished step raised */
	uv_timer_t *kick;                    /* runs pending work from a fresh stack */
	bool kick_start_step;                /* the kick starts the step of last_row */
	char audit_head[PGM_AUDIT_HASH_HEX]; /* the hash the next audit line carries as "prev" */
	bool audit_head_known;               /* false: read it from audit.jsonl's end first */
	pgm_job_t *next;
};

/*
 * What the jobs run in, filled by the daemon: the loop, the list of jobs,
 * and the callback that tells the daemon's watchers of a job's events (the
 * state machine never calls up into the control socket).
 */
typedef void (*pgm_job_event_cb)(pgm_host_t *h, const pgm_job_t *job, const cJSON *event);

struct pgm_host {
	uv_loop_t *loop;
	pgm_job_t *jobs;           /* every job, newest first */
	bool stopping;             /* no new step starts */
	pgm_job_event_cb on_event; /* NULL: nobody listens */
	void *data;                /* the daemon's */
};

/*
 * The driver: take the event in the job's state. Returns false with a
 * code/message/hint when the table has no row for it. Persists the new
 * state before returning.
 */
bool pgm_job_fire(pgm_job_t *job, pgm_event_t ev, const pgm_peer_t *peer, const char **code, char **message,
		  char **hint);
/*
 * Persist state.json before a change that depends on it being durable:
 * false (logged) when it could not be written; the change must not be made.
 */
bool pgm_job_save(pgm_job_t *job) PGM_MUST_CHECK;
/*
 * Persist a progress checkpoint or a fact found: a failure is logged and
 * kept as a warning on the job, and the work goes on (a resumed step redoes
 * what was not recorded).
 */
void pgm_job_checkpoint(pgm_job_t *job);
/*
 * One line in audit.jsonl. When it cannot be written the job keeps a
 * warning naming the file and the line's command (status shows the gap in
 * the trail); the command or transition itself stands.
 */
void pgm_job_audit(pgm_job_t *job, const pgm_peer_t *peer, const char *command, const char *from, const char *to,
		   const char *outcome);
/* one such line appended to the file at path (job NULL: none applies); false (logged) when not written */
bool pgm_audit_append(const char *path, const char *job, const pgm_peer_t *peer, const char *command, const char *from,
		      const char *to, const char *outcome);
/* the status object of the protocol */
cJSON *pgm_job_status(const pgm_job_t *job);
/* tell watchers */
void pgm_job_emit(pgm_job_t *job, cJSON *event);
/* a progress event with the job's status, now (the daemon also sends one a second) */
void pgm_job_emit_progress(pgm_job_t *job);
/*
 * The running step's progress replaced by p (taken). A new phase or a new
 * step name is told to watchers at once: a phase shorter than the daemon's
 * one-second tick is still seen by "watch".
 */
void pgm_job_set_progress(pgm_job_t *job, cJSON *p);
/*
 * A new verification report (taken) replaces job->verify. One that had
 * differences is kept first, its differences only, in
 * facts.verifications_failed (the last PGM_VERIFY_HISTORY; older ones are
 * counted in facts.verifications_failed_omitted): the report of the
 * migration names every difference ever found, not only the last one's.
 */
#define PGM_VERIFY_HISTORY 20
void pgm_job_set_verify(pgm_job_t *job, cJSON *report);
/* keep a warning (status, metrics) and tell watchers at once ({"event": "warning"}) */
void pgm_job_warn(pgm_job_t *job, const char *message, const char *hint);
/* drop the warning of exactly that message, once what it warned of is over */
void pgm_job_unwarn(pgm_job_t *job, const char *message);
void pgm_job_free(pgm_job_t *job);
/*
 * Whether a cutover moved the application's traffic to the target: the
 * fact facts.traffic_moved_at, written by the cutover in the same save that
 * records the stage that moved it (pgbouncer's switch, or the cutover hook
 * without pgbouncer). The state machine reads it for a failed cutover.
 */
bool pgm_job_traffic_moved(const pgm_job_t *job);
/*
 * Whether the source is frozen by this job: a freeze recorded and not
 * undone (pipeline/freeze). A failure then says so (error.source_frozen).
 */
bool pgm_job_source_frozen(const pgm_job_t *job);

/* the path of a backup-file source ("file:/path" or "/path"), or NULL for a live one */
const char *pgm_source_file(const char *source);
const char *pgm_job_source_file(const pgm_job_t *job);
/* how a source is shown: masked DSN, or file:PATH for a backup file (malloc'd) */
char *pgm_source_display(const char *source);

/*
 * What follows a piece of a step's work (a statement script, a hook, a
 * freeze): the step and the data its caller handed over with it.
 */
typedef void (*pgm_step_then_fn)(pgm_step_t *s, void *data);

/* step helpers, for the pipelines */
void pgm_step_done(pgm_step_t *s, pgm_event_t ev);
void pgm_step_fail(pgm_step_t *s, const char *message, const char *detail, const char *hint);
void pgm_step_fail_pg(pgm_step_t *s, const char *what, const pgm_pg_error_t *err, const char *hint);
/* fail the step because state.json could not be written before `change` (which was not made) */
void pgm_step_fail_unsaved(pgm_step_t *s, const char *change);
/* the message and hint of that failure, for the flows' own failure path (malloc'd) */
char *pgm_unsaved_message(const pgm_job_t *job, const char *change);
const char *pgm_unsaved_hint(void);
/*
 * Connect to the job's source or target for this step: the connection is
 * closed when the step ends. On a connection error the step keeps nothing.
 */
pgm_pg_conn_t *pgm_step_connect(pgm_step_t *s, bool source, const char *purpose, pgm_pg_connect_cb cb, void *data);
/* what the step's connections and children wait for, "; "-separated (malloc'd; NULL: nothing) */
char *pgm_step_describe_waits(const pgm_step_t *s);
/* close one of the step's connections early */
void pgm_step_close_conn(pgm_step_t *s, pgm_pg_conn_t *c);
/* run a child process for this step; it is killed if the step ends first */
pgm_proc_t *pgm_step_spawn(pgm_step_t *s, const char *const argv[], const char *const env[], int timeout_ms,
			   pgm_proc_line_cb line_cb, pgm_proc_exit_cb exit_cb, void *data, char **errmsg);
uv_timer_t *pgm_step_timer(pgm_step_t *s);
/* memory a helper needs until it finishes, or until the step ends first */
void pgm_step_own(pgm_step_t *s, void *p, void (*free_fn)(void *));
void pgm_step_disown(pgm_step_t *s, void *p);
uv_loop_t *pgm_step_loop(pgm_step_t *s);

/* register the passwords of the job's DSNs for masking (pgm_redact), wherever they are printed */
void pgm_job_learn_secrets(const pgm_job_t *job);
/* take a loaded or new job into the host (the driver's timer, the list); learns its secrets */
void pgm_job_attach(pgm_job_t *job, pgm_host_t *h);
/* run the step of the row that led to the current state (after a restart) */
void pgm_job_schedule_resume(pgm_job_t *job);
/* take one job out of its host (delete): its step cancelled, freed once its timer is closed */
void pgm_job_release(pgm_job_t *job);
/* stop every running step (they resume on the next start), save and free the jobs */
void pgm_jobs_shutdown(pgm_host_t *h);

#endif
