/*
 * metrics_http.c — the Prometheus endpoint: libmicrohttpd parses and
 * answers HTTP on metrics_listen, driven by the daemon's libuv loop.
 *
 * MHD runs without a thread of its own (MHD_USE_EPOLL, external polling):
 * one uv_poll_t watches MHD's epoll descriptor, which turns readable when
 * any of its sockets (the listening one, the clients') has work, and one
 * timer calls MHD_run when MHD_get_timeout asks to (a connection's idle
 * timeout, or data it still has to process). Every MHD callback thus runs
 * on the loop's thread, and the metrics are rendered from the jobs as they
 * are at the request, with no lock and no copy.
 *
 * The listening socket is bound here, not by MHD, so that a port in use
 * is said as such when pgmoverd starts.
 */
#include "daemon/metrics.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct pgm_metrics_http {
	pgm_daemon_t *d;
	struct MHD_Daemon *mhd;
	uv_poll_t poll;   /* on MHD's epoll descriptor */
	uv_timer_t timer; /* MHD_get_timeout's deadline */
	int open_handles; /* freed when both are closed */
};

static const char not_found[] = "not found: pgmoverd serves GET /metrics only\n";
static const char not_allowed[] = "method not allowed: GET /metrics\n";

static void metrics_run(struct pgm_metrics_http *m);

static void
poll_cb(uv_poll_t *h, int status, int events)
{
	metrics_run(h->data);
}

static void
timer_cb(uv_timer_t *t)
{
	metrics_run(t->data);
}

/* let MHD do what is ready, then wake again when it says it must */
static void
metrics_run(struct pgm_metrics_http *m)
{
	MHD_UNSIGNED_LONG_LONG timeout;

	if (m->mhd == NULL)
		return;
	MHD_run(m->mhd);
	if (MHD_get_timeout(m->mhd, &timeout) == MHD_YES)
		uv_timer_start(&m->timer, timer_cb, (uint64_t) timeout, 0);
	else
		uv_timer_stop(&m->timer);
}

static void
mhd_log_cb(void *cls, const char *fmt, va_list ap)
{
	char buf[512];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	buf[strcspn(buf, "\n")] = '\0';
	pgm_info("metrics endpoint: %s", buf); /* about a client, mostly: not worth a warning */
}

static int
corrupt_count(const pgm_daemon_t *d)
{
	int n = 0;

	for (const pgm_corrupt_t *c = d->corrupt; c; c = c->next)
		n++;
	return n;
}

static enum MHD_Result
answer(struct MHD_Connection *conn, unsigned status, char *body, size_t len, enum MHD_ResponseMemoryMode mode,
       const char *type)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, mode);
	enum MHD_Result ret;

	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* every request: GET (or HEAD) /metrics renders the jobs; anything else is refused */
static enum MHD_Result
access_cb(void *cls, struct MHD_Connection *conn, const char *url, const char *method, const char *version,
	  const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	static int request_seen; /* the marker of a request whose headers were seen */
	struct pgm_metrics_http *m = cls;
	char *body;

	/*
	 * MHD calls once with the headers, then with the body (none, for a
	 * GET), then once more: answered at the last call, the connection
	 * can stay open for the next request (answered earlier, MHD closes it).
	 */
	if (*con_cls == NULL) {
		*con_cls = &request_seen;
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		*upload_data_size = 0; /* a body is not wanted: read and dropped */
		return MHD_YES;
	}
	if (strcmp(url, "/metrics") != 0)
		return answer(conn, MHD_HTTP_NOT_FOUND, (char *) not_found, sizeof(not_found) - 1,
			      MHD_RESPMEM_PERSISTENT, "text/plain; charset=utf-8");
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return answer(conn, MHD_HTTP_METHOD_NOT_ALLOWED, (char *) not_allowed, sizeof(not_allowed) - 1,
			      MHD_RESPMEM_PERSISTENT, "text/plain; charset=utf-8");
	body = pgm_metrics_render(m->d->host.jobs, corrupt_count(m->d), m->d->started_ms, pgm_now_ms());
	return answer(conn, MHD_HTTP_OK, body, strlen(body), MHD_RESPMEM_MUST_FREE, PGM_METRICS_CONTENT_TYPE);
}

/* bind and listen on the address, saying what to do when it cannot */
static int
metrics_listen_socket(const char *addr)
{
	struct sockaddr_storage ss;
	unsigned len;
	int fd, one = 1, err;

	if (!pgm_parse_listen(addr, &ss, &len)) {
		pgm_error("metrics_listen \"%s\" is not an address:port", addr); /* validated: not reached */
		return -1;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		pgm_error("could not create the metrics socket for %s: %s", addr, strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *) &ss, len) != 0 || listen(fd, 64) != 0) {
		err = errno;
		if (err == EADDRINUSE)
			pgm_error("could not listen for metrics on %s: the address is already in use; stop what "
				  "listens there (\"ss -ltnp\" names it) or set metrics_listen to another port (empty: "
				  "no metrics endpoint)",
				  addr);
		else if (err == EADDRNOTAVAIL)
			pgm_error("could not listen for metrics on %s: no interface of this machine has that address; "
				  "set metrics_listen to one it has, e.g. 127.0.0.1:9187",
				  addr);
		else if (err == EACCES)
			pgm_error("could not listen for metrics on %s: permission denied (a port below 1024 needs a "
				  "privilege pgmoverd does not take); set metrics_listen to a port like 9187",
				  addr);
		else
			pgm_error("could not listen for metrics on %s: %s; check metrics_listen", addr, strerror(err));
		close(fd);
		return -1;
	}
	return fd;
}

bool
pgm_metrics_start(pgm_daemon_t *d)
{
	struct pgm_metrics_http *m;
	const union MHD_DaemonInfo *info;
	int fd;

	if (d->cfg.metrics_listen == NULL || d->cfg.metrics_listen[0] == '\0')
		return true;
	fd = metrics_listen_socket(d->cfg.metrics_listen);
	if (fd < 0)
		return false;
	m = pgm_calloc(1, sizeof(*m));
	m->d = d;
	m->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL, access_cb, m,
				  MHD_OPTION_EXTERNAL_LOGGER, mhd_log_cb, m, MHD_OPTION_LISTEN_SOCKET, fd,
				  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int) 10, MHD_OPTION_CONNECTION_LIMIT,
				  (unsigned int) 64, MHD_OPTION_END);
	info = m->mhd ? MHD_get_daemon_info(m->mhd, MHD_DAEMON_INFO_EPOLL_FD) : NULL;
	if (info == NULL) {
		pgm_error(
			"could not start the metrics endpoint on %s (libmicrohttpd refused); set metrics_listen empty "
			"to run without it",
			d->cfg.metrics_listen);
		if (m->mhd)
			MHD_stop_daemon(m->mhd);
		else
			close(fd);
		free(m);
		return false;
	}
	uv_poll_init(d->host.loop, &m->poll, info->epoll_fd);
	uv_timer_init(d->host.loop, &m->timer);
	m->poll.data = m->timer.data = m;
	m->open_handles = 2;
	uv_poll_start(&m->poll, UV_READABLE, poll_cb);
	d->metrics = m;
	metrics_run(m);
	pgm_notice("metrics endpoint listening on http://%s/metrics", d->cfg.metrics_listen);
	return true;
}

static void
handle_closed_cb(uv_handle_t *h)
{
	struct pgm_metrics_http *m = h->data;

	if (--m->open_handles == 0)
		free(m);
}

void
pgm_metrics_stop(pgm_daemon_t *d)
{
	struct pgm_metrics_http *m = d->metrics;

	if (m == NULL)
		return;
	d->metrics = NULL;
	/* out of libuv's epoll (uv_close stops the poll at once) before MHD closes its descriptor */
	uv_close((uv_handle_t *) &m->poll, handle_closed_cb);
	uv_close((uv_handle_t *) &m->timer, handle_closed_cb);
	MHD_stop_daemon(m->mhd);
	m->mhd = NULL;
}
