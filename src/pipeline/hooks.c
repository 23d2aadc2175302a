/*
 * hooks.c — operators' commands (maintenance mode switches, DATABASE_URL
 * updates, DNS flips) run by the event loop through /bin/sh with the job's
 * name, the phase and the target URL in their environment, and a timeout.
 * They run under the guard (proc.h), as pg tools do: in a process group of
 * their own, stopped at hook_timeout by SIGTERM and hook_kill_grace later
 * by SIGKILL, every process they started included, and killed with the
 * daemon if it dies.
 */
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "pipeline/hooks.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct hook {
	pgm_step_t *step;
	char *option;
	char *phase;
	int64_t started;
	pgm_step_then_fn then;
	pgm_hook_failed_cb failed; /* NULL: fail the step */
	void *data;                /* for then and failed */
} hook_t;

static void
hook_free(void *p)
{
	hook_t *h = p;

	free(h->option);
	free(h->phase);
	free(h);
}

static void
on_hook_line(pgm_proc_t *p, int stream, const char *line, void *data)
{
	hook_t *h = data;

	pgm_info("job %s: hook %s: %s", h->step->job->name, h->option, line);
}

static void
on_hook_exit(pgm_proc_t *p, int64_t status, int sig, int timed_out, const char *tail, void *data)
{
	hook_t *h = data;
	pgm_step_t *s = h->step;
	cJSON *rec = cJSON_CreateObject();
	int64_t ms = pgm_mono_ms() - h->started;
	pgm_step_then_fn then = h->then;
	pgm_hook_failed_cb failed = h->failed;
	void *cbdata = h->data;
	char *msg = NULL;

	pgm_json_set_str(rec, "command", pgm_jobopt_str(s->job->options, h->option));
	pgm_json_set_num(rec, "exit_status", (double) status);
	pgm_json_set_num(rec, "duration_ms", (double) ms);
	pgm_json_set(pgm_json_obj(s->job->facts, "hooks"), h->phase, rec);
	if (timed_out)
		msg = pgm_asprintf("hook %s timed out after %lld ms (hook_timeout %lld ms): its processes were sent "
				   "SIGTERM, and SIGKILL %lld ms later if still running",
				   h->option, (long long) ms,
				   (long long) pgm_jobopt_int(s->job->options, "hook_timeout"),
				   (long long) pgm_jobopt_int(s->job->options, "hook_kill_grace"));
	else if (sig != 0)
		msg = pgm_asprintf("hook %s was killed by signal %d", h->option, sig);
	else if (status != 0)
		msg = pgm_asprintf("hook %s exited with status %lld", h->option, (long long) status);
	pgm_step_disown(s, h);
	hook_free(h);
	if (msg) {
		char *detail = pgm_asprintf("it printed: %s", tail[0] ? tail : "(nothing)");
		if (failed)
			failed(s, msg, detail, cbdata);
		else
			pgm_step_fail(s, msg, detail,
				      "fix the command (or raise hook_timeout), then run \"pgmover retry\"");
		free(detail);
		free(msg);
		return;
	}
	then(s, cbdata);
}

void
pgm_hook_run(pgm_step_t *s, const char *option, const char *phase, pgm_step_then_fn then, void *data)
{
	pgm_hook_run_ex(s, option, phase, then, NULL, data);
}

void
pgm_hook_run_ex(pgm_step_t *s, const char *option, const char *phase, pgm_step_then_fn then, pgm_hook_failed_cb failed,
		void *data)
{
	pgm_job_t *job = s->job;
	const char *cmd = pgm_jobopt_str(job->options, option);
	char *env[7], *err = NULL;
	const char *argv[] = {pgm_proc_self_exe(), PGM_PROC_GUARD_FLAG, "/bin/sh", "-c", cmd, NULL};
	int grace = (int) pgm_jobopt_int(job->options, "hook_kill_grace");
	hook_t *h;
	pgm_proc_t *p;

	if (cmd == NULL || cmd[0] == '\0') {
		then(s, data);
		return;
	}
	if (argv[0] == NULL)
		err = pgm_strdup("the guard that runs hooks is pgmoverd's own executable, and /proc/self/exe "
				 "could not be read");
	h = pgm_calloc(1, sizeof(*h));
	h->step = s;
	h->option = pgm_strdup(option);
	h->phase = pgm_strdup(phase);
	h->then = then;
	h->failed = failed;
	h->data = data;
	h->started = pgm_mono_ms();
	pgm_step_own(s, h, hook_free);
	env[0] = pgm_asprintf("PGMOVER_JOB=%s", job->name);
	env[1] = pgm_asprintf("PGMOVER_PHASE=%s", phase);
	env[2] = pgm_asprintf("PGMOVER_TARGET_URL=%s", job->target_dsn);
	env[3] = pgm_asprintf("PGMOVER_SOURCE_URL=%s", job->source_dsn);
	/* the guard checks that the daemon that started it is still its parent */
	env[4] = pgm_asprintf("PGMOVER_DAEMON_PID=%d", (int) getpid());
	env[5] = pgm_asprintf("%s=%d", PGM_PROC_GUARD_GRACE_ENV, grace);
	env[6] = NULL;
	pgm_info("job %s: running hook %s for %s", job->name, option, phase);
	p = argv[0] == NULL ? NULL
			    : pgm_step_spawn(s, argv, (const char *const *) env,
					     (int) pgm_jobopt_int(job->options, "hook_timeout"), on_hook_line,
					     on_hook_exit, h, &err);
	if (p) {
		pgm_proc_set_grace(p, grace);
	} else {
		char *msg = pgm_asprintf("could not run hook %s", option);
		pgm_step_disown(s, h);
		hook_free(h);
		if (failed)
			failed(s, msg, err, data);
		else
			pgm_step_fail(s, msg, err, "check the command and that /bin/sh exists");
		free(msg);
		free(err);
	}
	for (int i = 0; i < 6; i++) {
		memset(env[i], 0, strlen(env[i]));
		free(env[i]);
	}
}
