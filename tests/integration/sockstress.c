/*
 * sockstress.c — drives pgmoverd's control socket in ways bash cannot:
 * many connections at once, oversized lines, half requests, a client that
 * does not read its replies. libc only; used by test_daemon.sh.
 *
 *   sockstress clients SOCKET N     N connections at once, one version request each
 *   sockstress longline SOCKET      a line of 1 MiB + 10 bytes: line_too_long, then closed
 *   sockstress halfway SOCKET       200 connections that send half a request and close
 *   sockstress slowreader SOCKET    20000 describe requests, replies unread; others answered
 *   sockstress raw SOCKET LINE      send LINE, print the reply line
 *
 * Exit status: 0 success, 1 a check failed (what failed is printed), 2 usage.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_LINE (1024 * 1024)
#define REPLY_TIMEOUT_MS 10000

static const char *prog = "sockstress";

static void
failf(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: FAIL: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool
make_addr(const char *path, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path)) {
		failf("socket path too long: %s", path);
		return false;
	}
	memcpy(sa->sun_path, path, strlen(path) + 1);
	return true;
}

/* a blocking connection, or -1 (reported) */
static int
connect_blocking(const char *path)
{
	struct sockaddr_un sa;
	int fd;

	if (!make_addr(path, &sa))
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		failf("socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0) {
		failf("connect %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static bool
write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return false;
		p += w;
		n -= (size_t) w;
	}
	return true;
}

/*
 * Read one line (without '\n') into a malloc'd buffer within timeout_ms.
 * Returns the line, or NULL with *why set ("eof", "timeout", an errno text).
 */
static char *
read_line(int fd, int timeout_ms, const char **why)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	long long deadline = now_ms() + timeout_ms;

	*why = NULL;
	if (buf == NULL) {
		*why = "out of memory";
		return NULL;
	}
	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		long long left = deadline - now_ms();
		ssize_t n;
		int pr;

		if (left <= 0) {
			*why = "timeout";
			break;
		}
		pr = poll(&pfd, 1, (int) left);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0) {
			*why = strerror(errno);
			break;
		}
		if (pr == 0)
			continue;
		if (len + 1 >= cap) {
			char *nb;
			if (cap >= 4 * MAX_LINE) {
				*why = "reply longer than 4 MiB";
				break;
			}
			nb = realloc(buf, cap * 2);
			if (nb == NULL) {
				*why = "out of memory";
				break;
			}
			buf = nb;
			cap *= 2;
		}
		/* byte by byte: never consume what follows the line (replies here are small) */
		n = recv(fd, buf + len, 1, 0);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0) {
			*why = strerror(errno);
			break;
		}
		if (n == 0) {
			*why = "eof";
			break;
		}
		if (buf[len] == '\n') {
			buf[len] = '\0';
			return buf;
		}
		len++;
	}
	free(buf);
	return NULL;
}

/* is the connection closed by the peer (EOF or reset) within timeout_ms? */
static bool
wait_closed(int fd, int timeout_ms, char *extra, size_t extralen)
{
	long long deadline = now_ms() + timeout_ms;
	char buf[4096];

	if (extra && extralen)
		extra[0] = '\0';
	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		long long left = deadline - now_ms();
		ssize_t n;

		if (left <= 0)
			return false;
		if (poll(&pfd, 1, (int) left) <= 0)
			continue;
		n = recv(fd, buf, sizeof(buf) - 1, 0);
		if (n == 0 || (n < 0 && (errno == ECONNRESET || errno == EPIPE)))
			return true;
		if (n < 0 && errno != EINTR && errno != EAGAIN)
			return true;
		if (n > 0 && extra && extralen && extra[0] == '\0') {
			size_t k = (size_t) n < extralen - 1 ? (size_t) n : extralen - 1;
			memcpy(extra, buf, k);
			extra[k] = '\0';
		}
	}
}

/* the number after "id": in a reply line, or NO_ID when absent or not a number */
#define NO_ID (-1000000000LL)

static long long
reply_id(const char *line)
{
	const char *p = strstr(line, "\"id\":");
	char *end;
	long long v;

	if (p == NULL)
		return NO_ID;
	p += 5;
	while (*p == ' ')
		p++;
	v = strtoll(p, &end, 10);
	if (end == p)
		return NO_ID;
	return v;
}

static bool
reply_ok(const char *line)
{
	return strstr(line, "\"ok\":true") != NULL || strstr(line, "\"ok\": true") != NULL;
}

/* one version request on a new connection; true when answered ok within timeout_ms */
static bool
version_roundtrip(const char *path, int timeout_ms, long long *took_ms)
{
	long long t0 = now_ms();
	const char *req = "{\"id\": 424242, \"cmd\": \"version\"}\n";
	const char *why = NULL;
	char *line;
	int fd = connect_blocking(path);
	bool ok;

	if (fd < 0)
		return false;
	if (!write_all(fd, req, strlen(req))) {
		failf("version request: write: %s", strerror(errno));
		close(fd);
		return false;
	}
	line = read_line(fd, timeout_ms, &why);
	close(fd);
	if (took_ms)
		*took_ms = now_ms() - t0;
	if (line == NULL) {
		failf("version request: no reply (%s)", why);
		return false;
	}
	ok = reply_ok(line) && reply_id(line) == 424242 && strstr(line, "\"version\"") != NULL;
	if (!ok)
		failf("version request: unexpected reply: %.200s", line);
	free(line);
	return ok;
}

static void
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			fprintf(stderr, "%s: warning: could not raise RLIMIT_NOFILE: %s\n", prog, strerror(errno));
	}
}

/* ---- clients ---- */

enum cstate { C_CONNECT, C_CONNECTING, C_SEND, C_READ, C_DONE };

typedef struct client {
	int fd;
	enum cstate st;
	char req[80];
	size_t reqlen, sent;
	char buf[1024];
	size_t len;
} client_t;

static int
cmd_clients(const char *path, int n)
{
	struct sockaddr_un sa;
	client_t *cs;
	struct pollfd *pfds;
	int *map;
	int done = 0, failed = 0, retries = 0;
	long long t0 = now_ms(), deadline = t0 + 60000;
	struct rlimit rl;

	if (n <= 0 || !make_addr(path, &sa))
		return 2;
	raise_nofile();
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && (rlim_t) n + 16 > rl.rlim_cur) {
		failf("RLIMIT_NOFILE %llu is too low for %d connections", (unsigned long long) rl.rlim_cur, n);
		return 1;
	}
	cs = calloc((size_t) n, sizeof(*cs));
	pfds = calloc((size_t) n, sizeof(*pfds));
	map = calloc((size_t) n, sizeof(*map));
	if (!cs || !pfds || !map) {
		failf("out of memory");
		return 1;
	}
	/* open every socket first: all N are connected at the same time */
	for (int i = 0; i < n; i++) {
		cs[i].fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (cs[i].fd < 0) {
			failf("socket #%d: %s", i, strerror(errno));
			return 1;
		}
		cs[i].st = C_CONNECT;
		cs[i].reqlen =
			(size_t) snprintf(cs[i].req, sizeof(cs[i].req), "{\"id\": %d, \"cmd\": \"version\"}\n", i);
	}
	while (done + failed < n) {
		int np = 0, pr;

		if (now_ms() > deadline) {
			failf("clients: only %d of %d replies after 60 s", done, n);
			failed = n - done;
			break;
		}
		for (int i = 0; i < n; i++) {
			client_t *c = &cs[i];

			if (c->st == C_CONNECT) {
				if (connect(c->fd, (struct sockaddr *) &sa, sizeof(sa)) == 0)
					c->st = C_SEND;
				else if (errno == EINPROGRESS)
					c->st = C_CONNECTING;
				else if (errno == EAGAIN) {
					retries++; /* backlog full: try again in the next round */
					continue;
				} else {
					failf("connect #%d: %s", i, strerror(errno));
					c->st = C_DONE;
					failed++;
					continue;
				}
			}
			if (c->st == C_DONE)
				continue;
			pfds[np].fd = c->fd;
			pfds[np].events = c->st == C_READ ? POLLIN : POLLOUT;
			pfds[np].revents = 0;
			map[np++] = i;
		}
		if (np == 0) {
			usleep(10000);
			continue;
		}
		pr = poll(pfds, (nfds_t) np, 100);
		if (pr < 0 && errno != EINTR) {
			failf("poll: %s", strerror(errno));
			return 1;
		}
		for (int k = 0; pr > 0 && k < np; k++) {
			client_t *c = &cs[map[k]];
			int i = map[k];

			if (pfds[k].revents == 0)
				continue;
			if (c->st == C_CONNECTING) {
				int err = 0;
				socklen_t el = sizeof(err);
				getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
				if (err != 0) {
					failf("connect #%d: %s", i, strerror(err));
					c->st = C_DONE;
					failed++;
					continue;
				}
				c->st = C_SEND;
			}
			if (c->st == C_SEND) {
				ssize_t w = send(c->fd, c->req + c->sent, c->reqlen - c->sent, MSG_NOSIGNAL);
				if (w < 0 && errno != EAGAIN && errno != EINTR) {
					failf("send #%d: %s", i, strerror(errno));
					c->st = C_DONE;
					failed++;
					continue;
				}
				if (w > 0)
					c->sent += (size_t) w;
				if (c->sent == c->reqlen)
					c->st = C_READ;
				continue;
			}
			if (c->st == C_READ) {
				ssize_t r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len, 0);
				char *nl;
				if (r < 0 && (errno == EAGAIN || errno == EINTR))
					continue;
				if (r <= 0) {
					failf("client #%d: connection closed before the reply (%s)", i,
					      r == 0 ? "eof" : strerror(errno));
					c->st = C_DONE;
					failed++;
					continue;
				}
				c->len += (size_t) r;
				c->buf[c->len] = '\0';
				nl = strchr(c->buf, '\n');
				if (nl == NULL) {
					if (c->len >= sizeof(c->buf) - 1) {
						failf("client #%d: reply too long", i);
						c->st = C_DONE;
						failed++;
					}
					continue;
				}
				*nl = '\0';
				c->st = C_DONE;
				if (!reply_ok(c->buf) || reply_id(c->buf) != i) {
					if (failed < 5)
						failf("client #%d: wrong reply: %.200s", i, c->buf);
					failed++;
				} else
					done++;
			}
		}
	}
	for (int i = 0; i < n; i++)
		if (cs[i].fd >= 0)
			close(cs[i].fd);
	if (failed) {
		failf("clients: %d of %d connections failed", failed, n);
		return 1;
	}
	printf("clients: %d connections open at once, %d ok replies with their own id in %lld ms (%d connect "
	       "retries)\n",
	       n, done, now_ms() - t0, retries);
	free(cs);
	free(pfds);
	free(map);
	return 0;
}

/* ---- longline ---- */

static int
cmd_longline(const char *path)
{
	size_t total = (size_t) MAX_LINE + 10, sent = 0;
	char chunk[65536];
	const char *why = NULL;
	char *line;
	int fd = connect_blocking(path);
	bool write_stopped = false;

	if (fd < 0)
		return 1;
	memset(chunk, 'x', sizeof(chunk));
	while (sent < total) {
		size_t n = total - sent < sizeof(chunk) ? total - sent : sizeof(chunk);
		ssize_t w = send(fd, chunk, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			/* the daemon may close before we are done: that is the point */
			write_stopped = true;
			break;
		}
		sent += (size_t) w;
	}
	line = read_line(fd, REPLY_TIMEOUT_MS, &why);
	if (line == NULL) {
		failf("longline: no error reply after %zu bytes (%s)", sent, why);
		close(fd);
		return 1;
	}
	if (strstr(line, "\"ok\":false") == NULL || strstr(line, "\"code\":\"line_too_long\"") == NULL) {
		failf("longline: expected a line_too_long error, got: %.300s", line);
		free(line);
		close(fd);
		return 1;
	}
	printf("longline: %zu bytes sent%s; reply: %s\n", sent, write_stopped ? " (daemon closed early)" : "", line);
	free(line);
	{
		char extra[256];
		if (!wait_closed(fd, REPLY_TIMEOUT_MS, extra, sizeof(extra))) {
			failf("longline: the daemon did not close the connection");
			close(fd);
			return 1;
		}
		if (extra[0]) {
			failf("longline: unexpected data after the error reply: %.200s", extra);
			close(fd);
			return 1;
		}
	}
	close(fd);
	printf("longline: connection closed by the daemon\n");
	if (!version_roundtrip(path, REPLY_TIMEOUT_MS, NULL))
		return 1;
	printf("longline: a new connection is answered\n");
	return 0;
}

/* ---- halfway ---- */

static int
cmd_halfway(const char *path)
{
	const char *half = "{\"id\": 1, \"cmd\": \"ver";

	for (int i = 0; i < 200; i++) {
		int fd = connect_blocking(path);
		if (fd < 0)
			return 1;
		if (!write_all(fd, half, strlen(half))) {
			failf("halfway #%d: write: %s", i, strerror(errno));
			close(fd);
			return 1;
		}
		close(fd);
	}
	if (!version_roundtrip(path, REPLY_TIMEOUT_MS, NULL))
		return 1;
	printf("halfway: 200 half requests sent and abandoned; the daemon still answers\n");
	return 0;
}

/* ---- slowreader ---- */

typedef struct side_checks {
	int n;
	long long worst, last;
} side_checks_t;

/* another client's version request, answered while the slow reader's replies pile up */
static bool
side_check(const char *path, side_checks_t *sc, int sent)
{
	long long took = 0;

	if (!version_roundtrip(path, REPLY_TIMEOUT_MS, &took)) {
		failf("slowreader: another client was not answered after %d requests", sent);
		return false;
	}
	sc->n++;
	if (took > sc->worst)
		sc->worst = took;
	sc->last = now_ms();
	return true;
}

static int
cmd_slowreader(const char *path)
{
	const char *req = "{\"id\":1,\"cmd\":\"describe\"}\n";
	size_t reqlen = strlen(req), partial = 0;
	const int total = 20000;
	int fd = connect_blocking(path), sent = 0;
	long long t0 = now_ms();
	side_checks_t sc = {0, 0, 0};
	bool dropped = false;
	const char *drop_why = "";

	if (fd < 0)
		return 1;
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
		failf("fcntl: %s", strerror(errno));
		close(fd);
		return 1;
	}
	while (sent < total) {
		ssize_t w;

		if (now_ms() - t0 > 60000) {
			failf("slowreader: only %d requests sent in 60 s", sent);
			close(fd);
			return 1;
		}
		/* every 250 ms: the daemon must answer someone else meanwhile */
		if (now_ms() - sc.last >= 250 && !side_check(path, &sc, sent)) {
			close(fd);
			return 1;
		}
		w = send(fd, req + partial, reqlen - partial, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			struct pollfd pfd = {.fd = fd, .events = POLLOUT};
			(void) poll(&pfd, 1, 100);
			continue;
		}
		if (w < 0) {
			/* EPIPE / ECONNRESET: the daemon dropped the client that does not read */
			dropped = true;
			drop_why = strerror(errno);
			break;
		}
		partial += (size_t) w;
		if (partial == reqlen) {
			partial = 0;
			sent++;
		}
	}
	/* a while longer without reading, with other clients served */
	for (int i = 0; i < 4; i++) {
		usleep(250000);
		if (!side_check(path, &sc, sent)) {
			close(fd);
			return 1;
		}
	}
	close(fd);
	printf("slowreader: %d describe requests sent without reading a reply (%s%s); %d other-client "
	       "requests answered meanwhile, slowest in %lld ms; %lld ms in all\n",
	       sent, dropped ? "then the daemon dropped the client: " : "all accepted", drop_why, sc.n, sc.worst,
	       now_ms() - t0);
	return 0;
}

/* ---- raw ---- */

static int
cmd_raw(const char *path, const char *text)
{
	const char *why = NULL;
	char *line;
	int fd = connect_blocking(path);

	if (fd < 0)
		return 1;
	if (!write_all(fd, text, strlen(text)) || !write_all(fd, "\n", 1)) {
		failf("raw: write: %s", strerror(errno));
		close(fd);
		return 1;
	}
	line = read_line(fd, REPLY_TIMEOUT_MS, &why);
	close(fd);
	if (line == NULL) {
		failf("raw: no reply (%s)", why);
		return 1;
	}
	printf("%s\n", line);
	free(line);
	return 0;
}

static int
usage(void)
{
	fprintf(stderr,
		"usage: %s clients SOCKET N | longline SOCKET | halfway SOCKET | slowreader SOCKET | "
		"raw SOCKET LINE\n",
		prog);
	return 2;
}

int
main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 3)
		return usage();
	if (strcmp(argv[1], "clients") == 0 && argc == 4)
		return cmd_clients(argv[2], atoi(argv[3]));
	if (strcmp(argv[1], "longline") == 0 && argc == 3)
		return cmd_longline(argv[2]);
	if (strcmp(argv[1], "halfway") == 0 && argc == 3)
		return cmd_halfway(argv[2]);
	if (strcmp(argv[1], "slowreader") == 0 && argc == 3)
		return cmd_slowreader(argv[2]);
	if (strcmp(argv[1], "raw") == 0 && argc == 4)
		return cmd_raw(argv[2], argv[3]);
	return usage();
}
