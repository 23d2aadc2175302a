/*
 * proc.c — uv_spawn with two pipes; reports the exit only once the child
 * has exited and both of its pipes reached EOF, so no output is lost.
 */
#include "pg/proc.h"
#include "common/inject.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

#define TAIL_MAX 4096

struct pgm_proc {
	uv_process_t proc;
	uv_pipe_t out[2]; /* stdout, stderr */
	uv_timer_t timer;
	char *linebuf[2];
	size_t linelen[2];
	size_t linecap[2];
	char tail[TAIL_MAX];
	size_t taillen;
	int open_handles; /* closed by uv_close when this reaches 0 */
	int pipes_open;
	int exited;
	int timed_out;
	int64_t exit_status;
	int term_signal;
	int detached;
	pgm_proc_line_cb line_cb;
	pgm_proc_exit_cb exit_cb;
	void *data;
};

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

/* when the child is gone and its output read, report and release */
static void
proc_maybe_finish(pgm_proc_t *p)
{
	if (!p->exited || p->pipes_open > 0)
		return;
	uv_timer_stop(&p->timer);
	if (!p->detached && p->exit_cb) {
		while (p->taillen > 0 && p->tail[p->taillen - 1] == '\n')
			p->tail[--p->taillen] = '\0';
		p->exit_cb(p, p->exit_status, p->term_signal, p->timed_out, p->tail, p->data);
	}
	uv_close((uv_handle_t *) &p->proc, proc_handle_closed);
	uv_close((uv_handle_t *) &p->timer, proc_handle_closed);
}

static void
emit_line(pgm_proc_t *p, int idx, const char *line)
{
	tail_add(p, line);
	if (!p->detached && p->line_cb)
		p->line_cb(p, idx + 1, line, p->data);
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
		if (p->linelen[idx] > 0) {
			p->linebuf[idx][p->linelen[idx]] = '\0';
			emit_line(p, idx, p->linebuf[idx]);
			p->linelen[idx] = 0;
		}
		uv_close((uv_handle_t *) s, proc_handle_closed);
		p->pipes_open--;
		proc_maybe_finish(p);
	}
}

static void
exit_cb(uv_process_t *h, int64_t status, int sig)
{
	pgm_proc_t *p = h->data;

	p->exited = 1;
	p->exit_status = status;
	p->term_signal = sig;
	proc_maybe_finish(p);
}

static void
timeout_cb(uv_timer_t *t)
{
	pgm_proc_t *p = t->data;

	p->timed_out = 1;
	pgm_proc_kill(p, SIGTERM);
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
		p->open_handles = 4;
		uv_close((uv_handle_t *) &p->out[0], proc_handle_closed);
		uv_close((uv_handle_t *) &p->out[1], proc_handle_closed);
		uv_close((uv_handle_t *) &p->timer, proc_handle_closed);
		uv_close((uv_handle_t *) &p->proc, proc_handle_closed);
		return NULL;
	}
	p->open_handles = 4;
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
	if (p == NULL || p->exited)
		return;
	/* the whole group: pg_dump -j forks workers */
	if (kill(-p->proc.pid, sig) != 0)
		uv_process_kill(&p->proc, sig);
}

void
pgm_proc_detach(pgm_proc_t *p)
{
	if (p == NULL)
		return;
	p->detached = 1;
	pgm_proc_kill(p, SIGTERM);
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

static volatile sig_atomic_t guard_stop;

static void
guard_signal(int sig)
{
	(void) sig;
	guard_stop = 1;
}

int
pgm_proc_guard_main(int argc, char **argv)
{
	struct sigaction sa;
	const char *want = getenv("PGMOVER_DAEMON_PID");
	pid_t child, parent = want ? (pid_t) atoi(want) : getppid();
	int status = 0;

	if (argc < 1) {
		fprintf(stderr, "pgmoverd %s: no program to run\n", PGM_PROC_GUARD_FLAG);
		return 2;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = guard_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	/* the daemon dying is announced as SIGTERM; it may already be gone */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent)
		return 1;
	/* lead a process group of our own unless the spawner made us a leader */
	if (getpgrp() != getpid())
		setpgid(0, 0);
	child = fork();
	if (child < 0) {
		fprintf(stderr, "pgmoverd %s: fork: %s\n", PGM_PROC_GUARD_FLAG, strerror(errno));
		return 1;
	}
	if (child == 0) {
		sa.sa_handler = SIG_DFL;
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGHUP, &sa, NULL);
		execvp(argv[0], argv);
		fprintf(stderr, "pgmoverd %s: could not run \"%s\": %s\n", PGM_PROC_GUARD_FLAG, argv[0],
			strerror(errno));
		_exit(127);
	}
	for (;;) {
		pid_t r = waitpid(child, &status, 0);

		if (r == child)
			break;
		if (r < 0 && errno != EINTR)
			return 1;
		if (guard_stop) {
			/* the whole group: the child and every worker it forked */
			signal(SIGTERM, SIG_IGN);
			kill(0, SIGKILL);
		}
	}
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}
