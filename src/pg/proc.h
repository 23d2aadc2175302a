/*
 * proc.h — child processes (pg_dump, pg_restore, hooks) run by the event
 * loop: output read line by line, exit reported once, optional timeout.
 */
#ifndef PGM_PROC_H
#define PGM_PROC_H

#include <stdint.h>
#include <uv.h>

typedef struct pgm_proc pgm_proc_t;

/* stream is 1 (stdout) or 2 (stderr); line has no newline */
typedef void (*pgm_proc_line_cb)(pgm_proc_t *p, int stream, const char *line, void *data);
/*
 * The child exited and both pipes are closed (at their end, or given up
 * once it was stopped: see pgm_proc_set_grace). tail holds the last lines
 * it printed (stdout and stderr interleaved), for error messages.
 * timed_out says the timeout stopped it.
 */
typedef void (*pgm_proc_exit_cb)(pgm_proc_t *p, int64_t exit_status, int term_signal, int timed_out, const char *tail,
				 void *data);

/*
 * Start argv[0] (searched in PATH) with the daemon's environment plus
 * env_extra ("NAME=value", NULL-terminated; may be NULL). timeout_ms 0 = none.
 * Returns NULL and *errmsg (malloc'd) when it cannot be started.
 */
pgm_proc_t *pgm_proc_spawn(uv_loop_t *loop, const char *const argv[], const char *const env_extra[], int timeout_ms,
			   pgm_proc_line_cb line_cb, pgm_proc_exit_cb exit_cb, void *data, char **errmsg);
/* send a signal to the child's process group (even once the child itself exited) */
void pgm_proc_kill(pgm_proc_t *p, int sig);
/*
 * How a child is stopped (at its timeout, or detached): SIGTERM to its
 * process group; a guarded child's guard (below) gives the group grace_ms
 * (PGMOVER_GUARD_GRACE_MS) and then SIGKILLs every process of its tree;
 * PGM_PROC_REAP_MARGIN_MS later the daemon SIGKILLs the group itself and
 * closes the pipes instead of waiting for them. Likewise a child that
 * exited while something still holds its output is given up that margin
 * later. grace_ms defaults to 0 (pg tools: SIGKILL at once).
 */
#define PGM_PROC_REAP_MARGIN_MS 1000
void pgm_proc_set_grace(pgm_proc_t *p, int grace_ms);
/* stop reporting: no callback fires after this; the child is stopped as above */
void pgm_proc_detach(pgm_proc_t *p);
int pgm_proc_pid(const pgm_proc_t *p);

/*
 * Children that must not outlive the daemon (pg_dump -j, pg_restore -j and
 * the workers they fork, hooks and whatever they start) run under a guard:
 * the daemon's own executable in guard mode, `pgmoverd --run-child PROGRAM
 * ARGS...`. The guard leads the child's process group, is the subreaper of
 * its tree (PR_SET_CHILD_SUBREAPER: a process that daemonizes or leaves its
 * group is still found), asks the kernel for a signal when the daemon dies
 * (PR_SET_PDEATHSIG), and exits only once the whole tree is gone. Told to
 * stop (SIGTERM, SIGINT, SIGHUP, or the daemon's death), it sends SIGTERM
 * to every process of the tree, waits PGMOVER_GUARD_GRACE_MS (milliseconds,
 * default 0) for them to exit, then SIGKILLs what is left.
 */
#define PGM_PROC_GUARD_FLAG "--run-child"
#define PGM_PROC_GUARD_GRACE_ENV "PGMOVER_GUARD_GRACE_MS"
/* the daemon's executable, for argv[0] of a guarded child */
const char *pgm_proc_self_exe(void);
/* main() of guard mode: argv[0] is the program to run; returns its exit status */
int pgm_proc_guard_main(int argc, char **argv);

#endif
