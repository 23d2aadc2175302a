/*
 * proc.c — uv_spawn with two pipes; reports the exit only once the child
 * has exited and both of its pipes reached EOF, so no output is lost, or
 * once it was stopped and its pipes given up, so a process holding them
 * cannot hang a step. Also the guard (`pgmoverd --run-child`) that runs
 * pg tools and hooks so that nothing of theirs outlives the daemon.
 */
#include "pg/proc.h"
#include "common/inject.h"
#include "common/log.h"
#include "common/util.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

#define TAIL_MAX 4096

struct pgm_proc {
	uv_process_t proc;
	uv_pipe_t out[2];      /* stdout, stderr */
	uv_timer_t timer;      /* the timeout */
	uv_timer_t kill_timer; /* after SIGTERM: SIGKILL, and the pipes closed */
	char *linebuf[2];
	size_t linelen[2];
	size_t linecap[2];
	char tail[TAIL_MAX];
	size_t taillen;
	int open_handles; /* closed by uv_close when this reaches 0 */
	int pipes_open;
	int pipe_closed[2];
	int exited;
	int timed_out;
	int stopping; /* SIGTERM sent, the kill timer runs */
	int grace_ms; /* between SIGTERM and SIGKILL */
	int64_t exit_status;
	int term_signal;
	int detached;
	pgm_proc_line_cb line_cb;
	pgm_proc_exit_cb exit_cb;
	void *data;
};

#define PROC_HANDLES 5 /* proc, two pipes, two timers */

static void
proc_handle_closed(uv_handle_t *h)
{
	pgm_proc_t *p = h->data;

	if (--p->open_handles == 0) {
		free(p->linebuf[0]);
		free(p->linebuf[1]);
		free(p);
	}
}

static void
tail_add(pgm_proc_t *p, const char *line)
{
	size_t n = strlen(line);

	if (n + 1 > TAIL_MAX / 2)
		n = TAIL_MAX / 2 - 1;
	while (p->taillen + n + 1 > TAIL_MAX - 1) {
		/* drop the oldest line */
		char *nl = memchr(p->tail, '\n', p->taillen);
		size_t cut = nl ? (size_t) (nl - p->tail) + 1 : p->taillen;
		memmove(p->tail, p->tail + cut, p->taillen - cut);
		p->taillen -= cut;
	}
	memcpy(p->tail + p->taillen, line, n);
	p->taillen += n;
	p->tail[p->taillen++] = '\n';
	p->tail[p->taillen] = '\0';
}

/* when the child is gone and its output read (or given up), report and release */
static void
proc_maybe_finish(pgm_proc_t *p)
{
	if (!p->exited || p->pipes_open > 0)
		return;
	uv_timer_stop(&p->timer);
	uv_timer_stop(&p->kill_timer);
	if (!p->detached && p->exit_cb) {
		while (p->taillen > 0 && p->tail[p->taillen - 1] == '\n')
			p->tail[--p->taillen] = '\0';
		p->exit_cb(p, p->exit_status, p->term_signal, p->timed_out, p->tail, p->data);
	}
	uv_close((uv_handle_t *) &p->proc, proc_handle_closed);
	uv_close((uv_handle_t *) &p->timer, proc_handle_closed);
	uv_close((uv_handle_t *) &p->kill_timer, proc_handle_closed);
}

static void
emit_line(pgm_proc_t *p, int idx, const char *line)
{
	tail_add(p, line);
	if (!p->detached && p->line_cb)
		p->line_cb(p, idx + 1, line, p->data);
}

/* at EOF, or when nothing more is waited for: the partial last line, then the pipe closed */
static void
close_pipe(pgm_proc_t *p, int idx)
{
	if (p->pipe_closed[idx])
		return;
	p->pipe_closed[idx] = 1;
	if (p->linelen[idx] > 0) {
		p->linebuf[idx][p->linelen[idx]] = '\0';
		emit_line(p, idx, p->linebuf[idx]);
		p->linelen[idx] = 0;
	}
	uv_read_stop((uv_stream_t *) &p->out[idx]);
	uv_close((uv_handle_t *) &p->out[idx], proc_handle_closed);
	p->pipes_open--;
}

static void
alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	buf->base = pgm_malloc(suggested);
	buf->len = suggested;
}

static void
read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	pgm_proc_t *p = s->data;
	int idx = (s == (uv_stream_t *) &p->out[0]) ? 0 : 1;

	if (nread > 0) {
		const char *q = buf->base, *end = buf->base + nread;

		/* whole lines go out from the read buffer; a partial tail waits in linebuf */
		while (q < end) {
			const char *nl = memchr(q, '\n', (size_t) (end - q));
			size_t n = (size_t) ((nl ? nl : end) - q);
			size_t room = p->linelen[idx] < 65536 ? 65536 - p->linelen[idx] : 0;
			size_t take = n < room ? n : room; /* lines are cut at 64 KiB */

			if (p->linelen[idx] + take + 1 > p->linecap[idx]) {
				p->linecap[idx] = (p->linelen[idx] + take + 1) * 2;
				p->linebuf[idx] = pgm_realloc(p->linebuf[idx], p->linecap[idx]);
			}
			memcpy(p->linebuf[idx] + p->linelen[idx], q, take);
			p->linelen[idx] += take;
			p->linebuf[idx][p->linelen[idx]] = '\0';
			if (nl == NULL)
				break;
			emit_line(p, idx, p->linebuf[idx]);
			p->linelen[idx] = 0;
			q = nl + 1;
		}
	}
	free(buf->base);
	if (nread < 0) {
		close_pipe(p, idx);
		proc_maybe_finish(p);
	}
}

/*
 * The grace after SIGTERM is over (or the child exited and something it
 * started still holds its output): SIGKILL to the group, and the pipes are
 * closed here rather than waited for, so a process that escaped the group
 * with its stdout cannot hold the step for ever.
 */
static void
kill_timer_cb(uv_timer_t *t)
{
	pgm_proc_t *p = t->data;

	if (kill(-p->proc.pid, SIGKILL) != 0 && !p->exited)
		uv_process_kill(&p->proc, SIGKILL);
	if (p->pipes_open > 0)
		pgm_warning("child %d (%s): its output was still open after it was stopped; no longer read",
			    p->proc.pid, p->exited ? "exited" : "killed");
	close_pipe(p, 0);
	close_pipe(p, 1);
	proc_maybe_finish(p);
}

/* SIGTERM to the group, then kill_timer_cb after the grace (and the guard's own) */
static void
proc_stop(pgm_proc_t *p)
{
	if (p->stopping)
		return;
	p->stopping = 1;
	if (kill(-p->proc.pid, SIGTERM) != 0 && !p->exited)
		uv_process_kill(&p->proc, SIGTERM);
	uv_timer_start(&p->kill_timer, kill_timer_cb, (uint64_t) p->grace_ms + PGM_PROC_REAP_MARGIN_MS, 0);
}

static void
exit_cb(uv_process_t *h, int64_t status, int sig)
{
	pgm_proc_t *p = h->data;

	p->exited = 1;
	p->exit_status = status;
	p->term_signal = sig;
	/* a guard exits once its whole tree is gone: its output ends within moments */
	if (p->pipes_open > 0 && !p->stopping)
		uv_timer_start(&p->kill_timer, kill_timer_cb, PGM_PROC_REAP_MARGIN_MS, 0);
	proc_maybe_finish(p);
}

static void
timeout_cb(uv_timer_t *t)
{
	pgm_proc_t *p = t->data;

	p->timed_out = 1;
	proc_stop(p);
}

pgm_proc_t *
pgm_proc_spawn(uv_loop_t *loop, const char *const argv[], const char *const env_extra[], int timeout_ms,
	       pgm_proc_line_cb line_cb, pgm_proc_exit_cb ecb, void *data, char **errmsg)
{
	pgm_proc_t *p = pgm_calloc(1, sizeof(*p));
	uv_process_options_t opts;
	uv_stdio_container_t stdio[3];
	size_t nenv = 0, nextra = 0;
	char **env;
	int rc;

	*errmsg = NULL;
	while (environ[nenv])
		nenv++;
	while (env_extra && env_extra[nextra])
		nextra++;
	env = pgm_calloc(nenv + nextra + 1, sizeof(char *));
	/* extras override inherited variables of the same name */
	{
		size_t k = 0;
		for (size_t i = 0; i < nenv; i++) {
			size_t namelen = strcspn(environ[i], "=");
			bool overridden = false;
			for (size_t j = 0; j < nextra; j++)
				if (strncmp(env_extra[j], environ[i], namelen + 1) == 0)
					overridden = true;
			if (!overridden)
				env[k++] = environ[i];
		}
		for (size_t j = 0; j < nextra; j++)
			env[k++] = (char *) env_extra[j];
	}

	p->line_cb = line_cb;
	p->exit_cb = ecb;
	p->data = data;
	for (int i = 0; i < 2; i++) {
		uv_pipe_init(loop, &p->out[i], 0);
		p->out[i].data = p;
	}
	uv_timer_init(loop, &p->timer);
	p->timer.data = p;
	uv_timer_init(loop, &p->kill_timer);
	p->kill_timer.data = p;
	p->proc.data = p;

	memset(&opts, 0, sizeof(opts));
	stdio[0].flags = UV_IGNORE;
	stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
	stdio[1].data.stream = (uv_stream_t *) &p->out[0];
	stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
	stdio[2].data.stream = (uv_stream_t *) &p->out[1];
	opts.file = argv[0];
	opts.args = (char **) argv;
	opts.env = env;
	opts.stdio = stdio;
	opts.stdio_count = 3;
	opts.exit_cb = exit_cb;
	/* own process group, so a kill reaches the child's children too */
	opts.flags = UV_PROCESS_DETACHED;

	if (PGM_INJECT("proc.spawn")) {
		/* as fork() failing would; the process handle was never initialised, so it is not closed */
		free(env);
		*errmsg = pgm_asprintf("could not run \"%s\": %s (injection point \"proc.spawn\")", argv[0],
				       uv_strerror(UV_EAGAIN));
		p->open_handles = 3;
		uv_close((uv_handle_t *) &p->out[0], proc_handle_closed);
		uv_close((uv_handle_t *) &p->out[1], proc_handle_closed);
		uv_close((uv_handle_t *) &p->timer, proc_handle_closed);
		return NULL;
	}
	rc = uv_spawn(loop, &p->proc, &opts);
	free(env);
	if (rc != 0) {
		*errmsg = pgm_asprintf("could not run \"%s\": %s", argv[0], uv_strerror(rc));
		p->open_handles = PROC_HANDLES;
		uv_close((uv_handle_t *) &p->out[0], proc_handle_closed);
		uv_close((uv_handle_t *) &p->out[1], proc_handle_closed);
		uv_close((uv_handle_t *) &p->timer, proc_handle_closed);
		uv_close((uv_handle_t *) &p->kill_timer, proc_handle_closed);
		uv_close((uv_handle_t *) &p->proc, proc_handle_closed);
		return NULL;
	}
	p->open_handles = PROC_HANDLES;
	p->pipes_open = 2;
	uv_read_start((uv_stream_t *) &p->out[0], alloc_cb, read_cb);
	uv_read_start((uv_stream_t *) &p->out[1], alloc_cb, read_cb);
	if (timeout_ms > 0)
		uv_timer_start(&p->timer, timeout_cb, (uint64_t) timeout_ms, 0);
	return p;
}

void
pgm_proc_kill(pgm_proc_t *p, int sig)
{
	if (p == NULL)
		return;
	/* the whole group (pg_dump -j forks workers), even once the leader is gone */
	if (kill(-p->proc.pid, sig) != 0 && !p->exited)
		uv_process_kill(&p->proc, sig);
}

void
pgm_proc_set_grace(pgm_proc_t *p, int grace_ms)
{
	p->grace_ms = grace_ms > 0 ? grace_ms : 0;
}

void
pgm_proc_detach(pgm_proc_t *p)
{
	if (p == NULL)
		return;
	p->detached = 1;
	proc_stop(p);
}

int
pgm_proc_pid(const pgm_proc_t *p)
{
	return p->proc.pid;
}

const char *
pgm_proc_self_exe(void)
{
	static char path[PATH_MAX];

	if (path[0] == '\0') {
		ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
		if (n <= 0)
			return NULL;
		path[n] = '\0';
	}
	return path;
}

/*
 * Guard mode. The processes of the tree are found in /proc: every process
 * whose chain of parents reaches the guard (as subreaper it adopts the
 * orphans, so the chain never breaks at init). Zombies are left out: they
 * are dead already and the guard reaps the ones that are its own.
 */
typedef struct guard_proc {
	pid_t pid, ppid;
} guard_proc_t;

#define GUARD_MAX_PROCS 65536

static size_t
guard_tree(pid_t self, pid_t *out, size_t max)
{
	static guard_proc_t all[GUARD_MAX_PROCS];
	static unsigned char in_tree[GUARD_MAX_PROCS];
	DIR *d = opendir("/proc");
	struct dirent *e;
	size_t n = 0, found = 0;
	bool grew = true;

	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL && n < GUARD_MAX_PROCS) {
		char path[300], buf[512], *rp, state;
		int ppid;
		FILE *f;

		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		if ((f = fopen(path, "re")) == NULL)
			continue;
		buf[0] = '\0';
		if (fgets(buf, sizeof(buf), f) == NULL)
			buf[0] = '\0';
		fclose(f);
		/* "pid (comm) state ppid ...": comm may hold anything, so read after the last ')' */
		if ((rp = strrchr(buf, ')')) == NULL || sscanf(rp + 1, " %c %d", &state, &ppid) != 2)
			continue;
		if (state == 'Z' || state == 'X')
			continue;
		all[n].pid = (pid_t) atoi(e->d_name);
		all[n].ppid = (pid_t) ppid;
		in_tree[n] = 0;
		n++;
	}
	closedir(d);
	while (grew) {
		grew = false;
		for (size_t i = 0; i < n; i++) {
			if (in_tree[i] || all[i].pid == self)
				continue;
			if (all[i].ppid == self)
				in_tree[i] = 1;
			for (size_t j = 0; j < n && !in_tree[i]; j++)
				if (in_tree[j] && all[j].pid == all[i].ppid)
					in_tree[i] = 1;
			if (in_tree[i]) {
				grew = true;
				if (found < max)
					out[found] = all[i].pid;
				found++;
			}
		}
	}
	return found < max ? found : max;
}

/* reap whatever of the tree has exited; the child's status is kept */
static bool
guard_reap(pid_t child, int *child_status, bool *child_done)
{
	for (;;) {
		int st;
		pid_t r = waitpid(-1, &st, WNOHANG);

		if (r == child) {
			*child_status = st;
			*child_done = true;
		}
		if (r == 0)
			return true; /* some still run */
		if (r < 0)
			return errno != ECHILD; /* ECHILD: the tree is gone */
	}
}

static void
guard_sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/*
 * SIGTERM to the tree, grace_ms for it to exit, then SIGKILL until nothing
 * is left. Returns how many processes had to be killed.
 */
static size_t
guard_stop_tree(pid_t child, int grace_ms, int *child_status, bool *child_done)
{
	static pid_t pids[4096];
	size_t n, killed = 0;

	if (grace_ms > 0) {
		int64_t deadline = pgm_mono_ms() + grace_ms;

		n = guard_tree(getpid(), pids, 4096);
		for (size_t i = 0; i < n; i++)
			kill(pids[i], SIGTERM);
		while (guard_reap(child, child_status, child_done) && pgm_mono_ms() < deadline)
			guard_sleep_ms(20);
	}
	for (int round = 0; round < 500; round++) {
		n = guard_tree(getpid(), pids, 4096);
		if (n == 0 && !guard_reap(child, child_status, child_done))
			break;
		for (size_t i = 0; i < n; i++)
			if (kill(pids[i], SIGKILL) == 0)
				killed++;
		guard_sleep_ms(10);
		guard_reap(child, child_status, child_done);
	}
	return killed;
}

int
pgm_proc_guard_main(int argc, char **argv)
{
	const char *want = getenv("PGMOVER_DAEMON_PID");
	const char *grace_env = getenv(PGM_PROC_GUARD_GRACE_ENV);
	int grace_ms = grace_env ? atoi(grace_env) : 0;
	pid_t child, parent = want ? (pid_t) atoi(want) : getppid();
	sigset_t stop_set, old_set;
	int status = 0;
	bool child_done = false, said_left = false;

	if (argc < 1) {
		fprintf(stderr, "pgmoverd %s: no program to run\n", PGM_PROC_GUARD_FLAG);
		return 2;
	}
	/* the stop signals and SIGCHLD are taken by sigwaitinfo below, never lost in between */
	sigemptyset(&stop_set);
	sigaddset(&stop_set, SIGTERM);
	sigaddset(&stop_set, SIGINT);
	sigaddset(&stop_set, SIGHUP);
	sigaddset(&stop_set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &stop_set, &old_set);
	/* the daemon dying is announced as SIGTERM; it may already be gone */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent)
		return 1;
	/* orphans of the tree (a daemonized grandchild) come to us, not to init */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	/* lead a process group of our own unless the spawner made us a leader */
	if (getpgrp() != getpid())
		setpgid(0, 0);
	child = fork();
	if (child < 0) {
		fprintf(stderr, "pgmoverd %s: fork: %s\n", PGM_PROC_GUARD_FLAG, strerror(errno));
		return 1;
	}
	if (child == 0) {
		sigprocmask(SIG_SETMASK, &old_set, NULL);
		unsetenv(PGM_PROC_GUARD_GRACE_ENV);
		execvp(argv[0], argv);
		fprintf(stderr, "pgmoverd %s: could not run \"%s\": %s\n", PGM_PROC_GUARD_FLAG, argv[0],
			strerror(errno));
		_exit(127);
	}
	for (;;) {
		siginfo_t info;
		int sig;

		if (!guard_reap(child, &status, &child_done))
			break; /* the whole tree is gone */
		if (child_done && !said_left) {
			/* said once, on stderr: it reaches the hook's output in the job's error */
			fprintf(stderr,
				"pgmoverd %s: \"%s\" exited with status %d but processes it started still run; "
				"waiting for them\n",
				PGM_PROC_GUARD_FLAG, argv[0], WIFEXITED(status) ? WEXITSTATUS(status) : -1);
			said_left = true;
		}
		sig = sigwaitinfo(&stop_set, &info);
		if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP) {
			size_t killed = guard_stop_tree(child, grace_ms, &status, &child_done);

			if (grace_ms > 0)
				fprintf(stderr,
					"pgmoverd %s: stopped: SIGTERM sent to every process of \"%s\", %zu still "
					"running after %d ms got SIGKILL\n",
					PGM_PROC_GUARD_FLAG, argv[0], killed, grace_ms);
			return killed == 0 ? 128 + SIGTERM : 128 + SIGKILL;
		}
	}
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}
