/*
 * pgasync.c — libpq's asynchronous API driven by one uv_poll_t per
 * connection (libuv forbids two handles on one fd).
 *
 * A connection is in one mode at a time: connecting, idle, running a
 * query, streaming COPY OUT, or feeding COPY IN. The poll callback moves
 * bytes and, when a statement is complete, calls the one callback of the
 * operation. Callbacks may close the connection or start the next
 * operation; memory is released only from uv_close's callback, so a
 * handle stays valid until the loop comes round.
 *
 * Nothing here blocks the loop: a host name is resolved by uv_getaddrinfo
 * and handed to libpq as hostaddr beside host (which TLS still verifies),
 * and a cancel request runs on a libuv worker. A statement from which
 * nothing arrives for the connection's silence bound (pgm_pg_net_silence_ms)
 * has its socket shut down: the statement fails naming the server and
 * itself, instead of waiting on a dead path for ever.
 */
#include "pg/pgasync.h"
#include "common/inject.h"
#include "common/log.h"
#include "common/util.h"
#include "pg/dsn.h"

#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef enum { MODE_CONNECTING, MODE_IDLE, MODE_QUERY, MODE_COPY_OUT, MODE_COPY_IN, MODE_CLOSED } conn_mode_t;

struct pgm_pg_conn {
	uv_loop_t *loop;
	PGconn *pg;
	uv_poll_t *poll; /* NULL until the socket is known */
	int poll_fd;
	int poll_events;   /* events currently watched */
	uv_timer_t *timer; /* connect timeout, deferred reports */
	uv_timer_t *quiet; /* the silence bound of a running statement */
	int handles;       /* timer and quiet not closed yet; the last close frees */
	conn_mode_t mode;
	bool copy_paused;
	bool copy_in_ready; /* COPY IN start callback delivered */
	bool copy_started;  /* COPY OUT response received */
	bool copy_ending;   /* COPY OUT has its final result; the rest is being read */
	PGresult *copy_final;
	bool copy_final_null; /* none came: the connection failed */
	pgm_pg_connect_cb connect_cb;
	pgm_pg_result_cb result_cb;
	pgm_pg_copy_out_cb copy_out_cb;
	void (*drain_cb)(pgm_pg_conn_t *, void *);
	void *drain_data;
	void *data;
	PGresult *last;      /* last result of the running statement */
	PGresult *error;     /* first error result of the running statement */
	bool copy_in_ending; /* COPY IN end sent: waiting for its result */
	pgm_pg_net_t net;    /* the bounds asked for */
	int64_t silence_ms;  /* 0: no silence bound */
	char *dsn, *app;     /* kept while the host name is resolved */
	char *server;        /* "host:port", for messages */
	char *stmt;          /* the running statement's first words, for messages */
	int64_t op_started_mono;
	char *timed_out;             /* set when the silence bound ended the statement */
	char *fail_msg;              /* why the connection could not start, if not libpq's */
	uv_getaddrinfo_t *resolving; /* the host name lookup, until it answers */
	void *user_data;             /* the caller's data while the session's timeouts are set */
};

static void on_poll(uv_poll_t *h, int status, int events);
static void on_connect_timeout(uv_timer_t *t);
static void conn_fail(pgm_pg_conn_t *c, const char *fallback);

static void
free_handle_cb(uv_handle_t *h)
{
	free(h);
}

/*
 * Server notices (e.g. "drop cascades to ...") go to the daemon's log with a
 * priority, not to stderr raw through libpq's default processor.
 */
static void
notice_receiver(void *arg, const PGresult *res)
{
	const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	const char *msg = PQresultErrorMessage(res);
	size_t n = msg ? strlen(msg) : 0;

	while (n > 0 && msg[n - 1] == '\n')
		n--;
	pgm_log(sev && strcmp(sev, "WARNING") == 0 ? PGM_LOG_WARNING : PGM_LOG_DEBUG, "postgres: %.*s", (int) n,
		msg ? msg : "");
}

/* the pg connection is finished only after its poll handle is closed */
static void
poll_closed_finish_cb(uv_handle_t *h)
{
	PGconn *pg = h->data;

	free(h);
	if (pg)
		PQfinish(pg);
}

static void
conn_free_cb(uv_handle_t *h)
{
	pgm_pg_conn_t *c = h->data;

	free(h);
	if (--c->handles > 0)
		return;
	free(c->dsn);
	free(c->app);
	free(c->server);
	free(c->stmt);
	free(c->timed_out);
	free(c->fail_msg);
	free(c);
}

/* "90 s", "15 min", "1500 ms": a bound as an operator set it */
static char *
ms_text(int64_t ms)
{
	if (ms % 60000 == 0 && ms >= 60000)
		return pgm_asprintf("%lld min", (long long) (ms / 60000));
	if (ms % 1000 == 0)
		return pgm_asprintf("%lld s", (long long) (ms / 1000));
	return pgm_asprintf("%lld ms", (long long) ms);
}

/* one line: libpq's "...failed: X\n\tIs the server running...?" reads as one sentence */
static char *
trim_dup(const char *s)
{
	char *d = pgm_strdup(s ? s : "");
	size_t n = strlen(d), o = 0;

	while (n > 0 && (d[n - 1] == '\n' || d[n - 1] == ' ' || d[n - 1] == '\r'))
		d[--n] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (d[i] == '\n' || d[i] == '\r' || d[i] == '\t') {
			if (o > 0 && d[o - 1] != ' ')
				d[o++] = ' ';
			continue;
		}
		d[o++] = d[i];
	}
	d[o] = '\0';
	return d;
}

static void
error_from_result(pgm_pg_error_t *e, const PGresult *res, PGconn *pg)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
	const char *hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
	const char *schema = PQresultErrorField(res, PG_DIAG_SCHEMA_NAME);
	const char *table = PQresultErrorField(res, PG_DIAG_TABLE_NAME);

	memset(e, 0, sizeof(*e));
	if (state)
		snprintf(e->sqlstate, sizeof(e->sqlstate), "%s", state);
	e->message =
		trim_dup(msg ? msg : (PQresultErrorMessage(res)[0] ? PQresultErrorMessage(res) : PQerrorMessage(pg)));
	if (e->message[0] == '\0') {
		free(e->message);
		e->message = pgm_strdup("query failed without an error message");
	}
	e->detail = detail ? pgm_strdup(detail) : NULL;
	e->hint = hint ? pgm_strdup(hint) : NULL;
	if (table)
		e->table = schema ? pgm_asprintf("%s.%s", schema, table) : pgm_strdup(table);
}

static void
error_from_text(pgm_pg_error_t *e, const char *text)
{
	memset(e, 0, sizeof(*e));
	e->message = trim_dup(text);
	/* libpq connection errors start with the target; keep them whole */
	if (e->message[0] == '\0') {
		free(e->message);
		e->message = pgm_strdup("connection failed");
	}
}

static void
error_clear(pgm_pg_error_t *e)
{
	free(e->message);
	free(e->detail);
	free(e->hint);
	free(e->table);
	memset(e, 0, sizeof(*e));
}

char *
pgm_pg_error_string(const pgm_pg_error_t *err)
{
	return pgm_asprintf("%s%s%s%s%s%s%s%s", err->message, err->detail ? " (" : "", err->detail ? err->detail : "",
			    err->detail ? ")" : "", err->hint ? "; hint: " : "", err->hint ? err->hint : "",
			    err->sqlstate[0] ? " SQLSTATE " : "", err->sqlstate);
}

/*
 * libpq gives no SQLSTATE for a failed connection, only the text: the
 * server's message (in English, as Heroku sends it) after libpq's own
 * "connection to server at ... failed:". So the SQLSTATE when there is one,
 * else the words, first match wins.
 */
const char *
pgm_pg_error_advice(const pgm_pg_error_t *err)
{
	static const struct {
		const char *sqlstate; /* exact, or a class ("08") */
		const char *words[4];
		const char *advice;
	} causes[] = {
		{"42501",
		 {"permission denied", NULL},
		 "the role lacks a privilege this needs: connect as the database owner (on Heroku, the default "
		 "credential), or GRANT the privilege to the role"},
		{"28P01",
		 {"password authentication failed", "no password supplied", "password is required", NULL},
		 "check the user and password in the URL (or the passfile it names)"},
		{"28000",
		 {"pg_hba.conf", NULL},
		 "the server's pg_hba.conf lets no such connection in: check the user, the database and sslmode "
		 "(Heroku needs sslmode=require)"},
		{"",
		 {"role \"", NULL},
		 "check the user name in the URL: the role must exist on that server and be allowed to log in"},
		{"3D000", {"database \"", NULL}, "check the database name in the URL"},
		{"53300",
		 {"too many connections", "too many clients", "connection slots are reserved", NULL},
		 "the server has no connection slot left: lower jobs, or close other sessions (Heroku plans allow "
		 "20 to 500 connections)"},
		{"",
		 {"server does not support SSL", "SSL connection is required", "SSL off", NULL},
		 "the URL's sslmode and the server's TLS setting disagree: Heroku needs sslmode=require"},
		{"",
		 {"root certificate file", "certificate verify failed", "server certificate for", NULL},
		 "sslmode=verify-full (or verify-ca) checks the server's certificate against a root certificate: name "
		 "it with sslrootcert=/path/to/root.crt in the URL (the provider publishes it), and for verify-full "
		 "use the host name the certificate is for; sslmode=require encrypts without checking"},
		{"",
		 {"certificate present, but not private key", "could not load private key",
		  "could not open certificate", "private key file"},
		 "the client certificate or key (sslcert, sslkey in the URL) cannot be used: check both paths, that the "
		 "key belongs to the certificate, and that the key file is mode 0600 and readable by pgmoverd's user"},
		{"57P",
		 {"server closed the connection unexpectedly", "SSL SYSCALL error: EOF detected",
		  "SSL connection has been closed unexpectedly", "connection not open"},
		 "the server ended the session (it restarted or shut down, or pg_terminate_backend ended it) or the "
		 "connection broke: check that the server is up and accepts connections"},
		{"08",
		 {"Connection refused", "could not translate host name", "timeout expired",
		  "No such file or directory"},
		 "check the host and port in the URL, and that the server is up and reachable from here"},
	};

	if (err == NULL || err->hint)
		return NULL;
	/* a pg_hba.conf refusal (28000) whose cause the message names: checked before the sqlstate */
	if (err->message && (strstr(err->message, "requires a valid client certificate") ||
			     strstr(err->message, "certificate authentication failed")))
		return "the server asks for a client certificate (clientcert=verify-full in its pg_hba.conf; Heroku "
		       "Shield, for one): add sslcert=/path/to/client.crt and sslkey=/path/to/client.key to the URL, "
		       "the key mode 0600, and the certificate's CN the user name when the server checks it";
	/* libpq's default client certificate in a HOME that is not pgmoverd's user's (sudo, runuser) */
	if (err->message && strstr(err->message, "/.postgresql/postgresql.crt") && strstr(err->message, "ermission"))
		return "libpq looked for a default client certificate in ~/.postgresql of the HOME it was given and may "
		       "not read it: start pgmoverd with its own user's HOME (the systemd unit does: "
		       "/var/lib/pgmover), or name the certificate and key with sslcert= and sslkey= in the URL";
	for (size_t i = 0; i < sizeof(causes) / sizeof(causes[0]); i++) {
		size_t n = strlen(causes[i].sqlstate);

		if (n > 0 && err->sqlstate[0] && strncmp(err->sqlstate, causes[i].sqlstate, n) == 0)
			return causes[i].advice;
		for (int w = 0; w < 4 && causes[i].words[w]; w++)
			if (err->sqlstate[0] == '\0' && err->message && strstr(err->message, causes[i].words[w]))
				return causes[i].advice;
	}
	return NULL;
}

/* watch the connection's socket for events, creating or moving the poll handle */
static bool
conn_watch(pgm_pg_conn_t *c, int events)
{
	int fd = PQsocket(c->pg);

	if (fd < 0)
		return false;
	if (c->poll && c->poll_fd != fd) {
		uv_poll_stop(c->poll);
		uv_close((uv_handle_t *) c->poll, free_handle_cb);
		c->poll = NULL;
	}
	if (c->poll == NULL) {
		c->poll = pgm_malloc(sizeof(uv_poll_t));
		if (uv_poll_init(c->loop, c->poll, fd) != 0) {
			free(c->poll);
			c->poll = NULL;
			return false;
		}
		c->poll->data = c;
		c->poll_fd = fd;
		c->poll_events = 0;
	}
	if (events != c->poll_events || !uv_is_active((uv_handle_t *) c->poll)) {
		if (events == 0)
			uv_poll_stop(c->poll);
		else if (uv_poll_start(c->poll, events, on_poll) != 0)
			return false;
		c->poll_events = events;
	}
	return true;
}

/* libpq starts the connection; host and hostaddrs when the name was resolved here */
static void
conn_start(pgm_pg_conn_t *c, const char *host, const char *hostaddrs)
{
	pgm_conn_kw_t kw;

	pgm_conn_kw_build(&kw, c->dsn, &c->net, c->app, host, hostaddrs);
	c->pg = PQconnectStartParams(kw.keys, kw.vals, 1);
	pgm_conn_kw_free(&kw);
	if (c->pg != NULL)
		PQsetNoticeReceiver(c->pg, notice_receiver, NULL);
	if (c->pg == NULL || PQstatus(c->pg) == CONNECTION_BAD || !conn_watch(c, UV_WRITABLE))
		conn_fail(c, "could not start the connection"); /* reported from the loop */
}

/* the addresses of the name, numeric, comma-separated, and the name as often */
static void
on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	pgm_pg_conn_t *c = req->data;
	pgm_buf_t hosts = {0}, addrs = {0};
	char *name = c ? pgm_conn_host_to_resolve(c->dsn) : NULL;
	int n = 0;

	free(req);
	if (c == NULL || c->mode == MODE_CLOSED) {
		uv_freeaddrinfo(res);
		free(name);
		return; /* closed meanwhile: pgm_pg_close let go of the request */
	}
	c->resolving = NULL;
	for (struct addrinfo *ai = status == 0 ? res : NULL; ai && n < 8; ai = ai->ai_next) {
		char ip[NI_MAXHOST];

		if (getnameinfo(ai->ai_addr, ai->ai_addrlen, ip, sizeof(ip), NULL, 0, NI_NUMERICHOST) != 0)
			continue;
		if (addrs.s && strstr(addrs.s, ip)) /* the same address for each socket type */
			continue;
		pgm_buf_appendf(&addrs, "%s%s", n ? "," : "", ip);
		pgm_buf_appendf(&hosts, "%s%s", n ? "," : "", name);
		n++;
	}
	uv_freeaddrinfo(res);
	if (n == 0) {
		c->fail_msg = pgm_asprintf("could not translate host name \"%s\" to address: %s", name,
					   status < 0 ? uv_strerror(status) : "no address");
		conn_fail(c, NULL);
	} else {
		pgm_debug("resolved %s: hostaddr=%s", name, addrs.s);
		conn_start(c, hosts.s, addrs.s);
	}
	free(hosts.s);
	free(addrs.s);
	free(name);
}

/* "host:port" of the string, for messages */
static char *
dsn_server(const char *dsn)
{
	pgm_dsn_t d;
	char *err = NULL, *out;

	if (!pgm_dsn_parse(dsn, &d, &err)) {
		free(err);
		return pgm_strdup("the server");
	}
	out = pgm_asprintf("%s:%s", d.host ? d.host : "localhost", d.port ? d.port : "5432");
	pgm_dsn_free(&d);
	return out;
}

pgm_pg_conn_t *
pgm_pg_connect(uv_loop_t *loop, const char *dsn, const char *app_name, const pgm_pg_net_t *net, pgm_pg_connect_cb cb,
	       void *data)
{
	pgm_pg_conn_t *c = pgm_calloc(1, sizeof(*c));
	char *name;

	c->loop = loop;
	c->connect_cb = cb;
	c->data = data;
	c->mode = MODE_CONNECTING;
	c->poll_fd = -1;
	if (net)
		c->net = *net;
	if (c->net.connect_timeout_ms <= 0)
		c->net.connect_timeout_ms = 15000;
	c->silence_ms = pgm_pg_net_silence_ms(&c->net);
	c->dsn = pgm_strdup(dsn ? dsn : "");
	c->app = pgm_strdup(app_name ? app_name : "pgmover");
	c->server = dsn_server(c->dsn);
	c->timer = pgm_malloc(sizeof(uv_timer_t));
	uv_timer_init(loop, c->timer);
	c->timer->data = c;
	c->quiet = pgm_malloc(sizeof(uv_timer_t));
	uv_timer_init(loop, c->quiet);
	c->quiet->data = c;
	c->handles = 2;
	c->op_started_mono = pgm_mono_ms();
	uv_timer_start(c->timer, on_connect_timeout, (uint64_t) c->net.connect_timeout_ms, 0);
	if (PGM_INJECT("pg.connect")) {
		c->fail_msg = pgm_strdup("connection to server failed: injection point \"pg.connect\"");
		conn_fail(c, NULL);
		return c;
	}
	name = pgm_conn_host_to_resolve(c->dsn);
	if (name) {
		struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};

		c->resolving = pgm_malloc(sizeof(uv_getaddrinfo_t));
		c->resolving->data = c;
		if (uv_getaddrinfo(loop, c->resolving, on_resolved, name, NULL, &hints) != 0) {
			free(c->resolving);
			c->resolving = NULL;
			conn_start(c, NULL, NULL); /* libpq resolves it */
		}
		free(name);
		return c;
	}
	conn_start(c, NULL, NULL);
	return c;
}

static void
on_connect_timeout(uv_timer_t *t)
{
	pgm_pg_conn_t *c = t->data;
	pgm_pg_error_t e;
	pgm_pg_connect_cb cb = c->connect_cb;
	char *bound, *msg;

	if (c->mode != MODE_CONNECTING)
		return;
	bound = ms_text(c->net.connect_timeout_ms);
	msg = pgm_asprintf("timeout expired while connecting to %s: no session within connect_timeout (%s)%s",
			   c->server, bound, c->resolving ? ", the host name not resolved yet" : "");
	error_from_text(&e, msg);
	free(msg);
	free(bound);
	e.hint = pgm_strdup("check that the server is up and reachable from this machine (host, port, firewall), "
			    "or raise connect_timeout");
	c->connect_cb = NULL;
	pgm_pg_close(c);
	if (cb)
		cb(c, &e, c->data);
	error_clear(&e);
}

static void
deferred_fail_cb(uv_timer_t *t)
{
	pgm_pg_conn_t *c = t->data;
	pgm_pg_error_t e;
	pgm_pg_connect_cb cb = c->connect_cb;
	const char *msg = c->fail_msg ? c->fail_msg : c->pg ? PQerrorMessage(c->pg) : "";

	error_from_text(&e, msg[0] ? msg : "could not start the connection");
	c->connect_cb = NULL;
	pgm_pg_close(c);
	if (cb)
		cb(c, &e, c->data);
	error_clear(&e);
}

/* a connection failed: deliver the error from the next loop iteration */
static void
conn_fail(pgm_pg_conn_t *c, const char *fallback)
{
	(void) fallback;
	uv_timer_stop(c->timer);
	uv_timer_start(c->timer, deferred_fail_cb, 0, 0);
}

/* whether the running operation waits on the server (not on pgmover's own producer or consumer) */
static bool
waits_on_server(const pgm_pg_conn_t *c)
{
	switch (c->mode) {
	case MODE_QUERY:
		return true;
	case MODE_COPY_OUT:
		return !c->copy_paused;
	case MODE_COPY_IN:
		return !c->copy_in_ready || c->copy_in_ending || (c->poll_events & UV_WRITABLE);
	default:
		return false;
	}
}

static void on_silence(uv_timer_t *t);
static void error_timed_out(const pgm_pg_conn_t *c, pgm_pg_error_t *e);

/* (re)start the silence bound while the server owes an answer: every byte moved restarts it */
static void
quiet_arm(pgm_pg_conn_t *c)
{
	if (c->silence_ms <= 0 || c->timed_out || c->mode == MODE_CLOSED)
		return;
	if (waits_on_server(c))
		uv_timer_start(c->quiet, on_silence, (uint64_t) c->silence_ms, 0);
	else
		uv_timer_stop(c->quiet);
}

/*
 * Nothing came from the server for the silence bound while it owed an
 * answer: the path or the server is dead (the server's own
 * statement_timeout would have sent an error by now, the keepalives had
 * their time). The statement fails now with that message, and the
 * connection stays unusable: libpq is not asked to read or write on it
 * again (PQfinish when the caller closes it).
 */
static void
on_silence(uv_timer_t *t)
{
	pgm_pg_conn_t *c = t->data;
	char *total, *st;
	pgm_pg_error_t e;

	if (c->mode == MODE_CLOSED || !waits_on_server(c) || c->pg == NULL)
		return;
	total = ms_text(c->silence_ms);
	st = ms_text(c->net.statement_timeout_ms);
	c->timed_out = pgm_asprintf("no answer from %s for %s while running \"%s\" (statement_timeout %s and the "
				    "keepalives' time): the connection is taken for dead",
				    c->server, total, c->stmt ? c->stmt : "?", st);
	free(total);
	free(st);
	pgm_warning("%s", c->timed_out);
	if (c->poll)
		uv_poll_stop(c->poll);
	memset(&e, 0, sizeof(e));
	error_timed_out(c, &e);
	PQclear(c->last);
	PQclear(c->error);
	PQclear(c->copy_final);
	c->last = c->error = c->copy_final = NULL;
	if (c->mode == MODE_COPY_OUT) {
		pgm_pg_copy_out_cb cb = c->copy_out_cb;

		c->mode = MODE_IDLE;
		c->copy_out_cb = NULL;
		if (cb)
			cb(c, NULL, 0, &e, c->data);
	} else {
		pgm_pg_result_cb cb = c->result_cb;

		c->mode = MODE_IDLE;
		c->result_cb = NULL;
		c->drain_cb = NULL;
		if (cb)
			cb(c, NULL, &e, c->data);
	}
	error_clear(&e);
}

/* an error of a statement the silence bound ended says so */
static void
error_timed_out(const pgm_pg_conn_t *c, pgm_pg_error_t *e)
{
	if (c->timed_out == NULL)
		return;
	free(e->message);
	free(e->detail);
	free(e->hint);
	e->message = pgm_strdup(c->timed_out);
	e->detail = NULL;
	e->hint = pgm_strdup("the network path to the server or the server itself stopped answering: check it, then "
			     "retry; statement_timeout, keepalives_idle, keepalives_interval and keepalives_count "
			     "set how long pgmover waits");
	snprintf(e->sqlstate, sizeof(e->sqlstate), "08006");
}

/* the connection is ready (err NULL), or its session could not be set up */
static void
connected(pgm_pg_conn_t *c, const pgm_pg_error_t *err)
{
	pgm_pg_connect_cb cb = c->connect_cb;

	c->connect_cb = NULL;
	if (err)
		pgm_pg_close(c); /* the callback gets a closed connection, as for any connection error */
	if (cb)
		cb(c, err, c->data);
}

/* the session's statement and lock timeouts are set */
static void
on_bounds_set(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	pgm_pg_conn_t *c = data;
	pgm_pg_error_t e;

	memset(&e, 0, sizeof(e));
	c->data = c->user_data;
	if (err == NULL) {
		connected(c, NULL);
		return;
	}
	memcpy(e.sqlstate, err->sqlstate, sizeof(e.sqlstate));
	e.message = pgm_asprintf("could not set statement_timeout and lock_timeout on %s: %s", c->server, err->message);
	e.detail = err->detail;
	e.hint = err->hint;
	connected(c, &e);
	free(e.message);
}

static void
connect_step(pgm_pg_conn_t *c)
{
	PostgresPollingStatusType st = PQconnectPoll(c->pg);
	char *bounds;

	switch (st) {
	case PGRES_POLLING_READING:
		if (!conn_watch(c, UV_READABLE))
			conn_fail(c, NULL);
		return;
	case PGRES_POLLING_WRITING:
		if (!conn_watch(c, UV_WRITABLE))
			conn_fail(c, NULL);
		return;
	case PGRES_POLLING_FAILED:
		if (c->poll)
			uv_poll_stop(c->poll);
		conn_fail(c, NULL);
		return;
	case PGRES_POLLING_OK:
	default:
		break;
	}
	uv_timer_stop(c->timer);
	PQsetnonblocking(c->pg, 1);
	c->mode = MODE_IDLE;
	conn_watch(c, 0);
	bounds = pgm_conn_bounds_sql(c->dsn, &c->net);
	if (bounds) {
		c->user_data = c->data;
		pgm_pg_query(c, bounds, 0, NULL, on_bounds_set, c);
		free(bounds);
		return;
	}
	connected(c, NULL);
}

/* a statement finished: hand its last result or its error to the caller */
static void
deliver_result(pgm_pg_conn_t *c)
{
	pgm_pg_result_cb cb = c->result_cb;
	PGresult *last = c->last, *error = c->error;
	pgm_pg_error_t e;
	bool has_err = error != NULL || last == NULL;

	c->last = c->error = NULL;
	c->result_cb = NULL;
	c->mode = MODE_IDLE;
	if (c->poll)
		conn_watch(c, 0);
	if (has_err) {
		if (error)
			error_from_result(&e, error, c->pg);
		else
			error_from_text(&e, PQerrorMessage(c->pg));
		error_timed_out(c, &e);
	}
	uv_timer_stop(c->quiet);
	if (cb)
		cb(c, has_err ? NULL : last, has_err ? &e : NULL, c->data);
	if (has_err)
		error_clear(&e);
	PQclear(last);
	PQclear(error);
}

/* read everything available; deliver when the statement is complete */
static void
drain_results(pgm_pg_conn_t *c)
{
	while (c->mode == MODE_QUERY || c->mode == MODE_COPY_IN) {
		PGresult *r;

		if (PQisBusy(c->pg))
			return;
		r = PQgetResult(c->pg);
		if (r == NULL) {
			deliver_result(c);
			return;
		}
		switch (PQresultStatus(r)) {
		case PGRES_COPY_IN:
			/* COPY FROM STDIN is ready for data */
			PQclear(r);
			if (c->mode == MODE_COPY_IN && !c->copy_in_ready) {
				pgm_pg_result_cb cb = c->result_cb;
				c->copy_in_ready = true;
				if (cb)
					cb(c, NULL, NULL, c->data);
			}
			return;
		case PGRES_COPY_OUT:
		case PGRES_COPY_BOTH:
			/* not expected from pgm_pg_query: end it as an error */
			PQclear(r);
			if (c->error == NULL)
				c->error = PQmakeEmptyPGresult(c->pg, PGRES_FATAL_ERROR);
			return;
		case PGRES_BAD_RESPONSE:
		case PGRES_NONFATAL_ERROR:
		case PGRES_FATAL_ERROR:
			if (c->error == NULL)
				c->error = r;
			else
				PQclear(r);
			break;
		default:
			PQclear(c->last);
			c->last = r;
			break;
		}
	}
}

/*
 * A COPY OUT has its final result (r): report it once libpq has nothing more
 * for this statement -- until PQgetResult returns NULL the connection is not
 * idle, and the caller's next query would be refused ("another command is
 * already in progress"). r is kept in copy_final while the rest arrives.
 */
static void
copy_out_drain(pgm_pg_conn_t *c)
{
	pgm_pg_copy_out_cb cb = c->copy_out_cb;
	PGresult *r = c->copy_final;
	pgm_pg_error_t e;
	bool failed;

	/* a connection taken for dead is not read again: its statement never ends */
	while (!c->timed_out) {
		PGresult *more;

		if (PQisBusy(c->pg))
			return; /* on_poll brings us back */
		more = PQgetResult(c->pg);
		if (more == NULL)
			break;
		PQclear(more);
	}
	c->copy_final = NULL;
	failed = c->copy_final_null || r == NULL || PQresultStatus(r) != PGRES_COMMAND_OK;
	if (failed) {
		if (r)
			error_from_result(&e, r, c->pg);
		else
			error_from_text(&e, PQerrorMessage(c->pg));
		error_timed_out(c, &e);
	}
	uv_timer_stop(c->quiet);
	PQclear(r);
	c->copy_final_null = false;
	c->mode = MODE_IDLE;
	c->copy_out_cb = NULL;
	if (c->poll)
		conn_watch(c, 0);
	cb(c, NULL, 0, failed ? &e : NULL, c->data);
	if (failed)
		error_clear(&e);
}

/* end a COPY OUT with its final result (NULL: none came, the connection failed) */
static void
copy_out_finish(pgm_pg_conn_t *c, PGresult *r)
{
	c->copy_final = r;
	c->copy_final_null = r == NULL;
	c->copy_ending = true;
	copy_out_drain(c);
}

static void
copy_out_step(pgm_pg_conn_t *c)
{
	if (c->mode == MODE_COPY_OUT && c->copy_ending) {
		copy_out_drain(c);
		return;
	}
	if (c->mode == MODE_COPY_OUT && !c->copy_started) {
		PGresult *r;

		if (PQisBusy(c->pg))
			return;
		r = PQgetResult(c->pg);
		if (r == NULL || PQresultStatus(r) != PGRES_COPY_OUT) {
			copy_out_finish(c, r);
			return;
		}
		PQclear(r);
		c->copy_started = true;
	}
	while (c->mode == MODE_COPY_OUT && !c->copy_paused) {
		char *buf = NULL;
		int n = PQgetCopyData(c->pg, &buf, 1);

		if (n > 0) {
			c->copy_out_cb(c, buf, n, NULL, c->data);
			PQfreemem(buf);
			continue;
		}
		/*
		 * 0: wait for more -- unless libpq has lost the connection (the
		 * server restarted, the backend was terminated): then nothing
		 * more comes, PQgetCopyData says 0 for ever and the closed socket
		 * keeps polling readable, so end the COPY with libpq's error
		 */
		if (n == 0 && PQstatus(c->pg) != CONNECTION_BAD)
			return;
		if (n == 0) {
			copy_out_finish(c, PQgetResult(c->pg));
			return;
		}
		/* -1: done, -2: error; the final result says which */
		copy_out_finish(c, PQgetResult(c->pg));
		return;
	}
}

static void
on_poll(uv_poll_t *h, int status, int events)
{
	pgm_pg_conn_t *c = h->data;

	if (c == NULL || c->mode == MODE_CLOSED)
		return;
	if (c->mode == MODE_CONNECTING) {
		connect_step(c);
		return;
	}
	if (status < 0)
		events = UV_READABLE | UV_WRITABLE; /* let libpq find the error */
	if (events & UV_WRITABLE) {
		int f = PQflush(c->pg);
		if (f == 0) {
			if (c->mode == MODE_COPY_IN && c->drain_cb) {
				void (*dcb)(pgm_pg_conn_t *, void *) = c->drain_cb;
				c->drain_cb = NULL;
				conn_watch(c, UV_READABLE);
				dcb(c, c->drain_data);
				if (c->mode == MODE_CLOSED)
					return;
			} else if (c->mode != MODE_IDLE) {
				conn_watch(c, UV_READABLE);
			}
		} else if (f < 0) {
			events |= UV_READABLE;
		}
	}
	if (events & UV_READABLE) {
		if (!PQconsumeInput(c->pg)) {
			/* connection lost: let PQgetResult report it */
		}
		if (c->mode == MODE_COPY_OUT)
			copy_out_step(c);
		else
			drain_results(c);
	}
	quiet_arm(c);
}

static bool send_failed(pgm_pg_conn_t *c, conn_mode_t mode);

static bool
begin_op(pgm_pg_conn_t *c, conn_mode_t mode)
{
	if (c->mode != MODE_IDLE) {
		pgm_error("internal error: connection busy (mode %d)", (int) c->mode);
		return false;
	}
	c->mode = mode;
	c->copy_paused = false;
	c->copy_in_ready = false;
	c->copy_in_ending = false;
	c->op_started_mono = pgm_mono_ms();
	/*
	 * flush what was queued, then read. No socket: libpq found the
	 * connection gone while it sent (the server ended an idle session:
	 * a restart, pg_terminate_backend) and closed it; the statement is
	 * never answered, so its error is reported from the loop instead
	 */
	if (!conn_watch(c, UV_READABLE | UV_WRITABLE))
		return send_failed(c, mode);
	quiet_arm(c);
	return true;
}

/* the statement's first words, on one line, for messages; nothing past a password */
static void
stmt_remember(pgm_pg_conn_t *c, const char *sql)
{
	char *d = trim_dup(sql);
	char *pw = strstr(d, "password");

	if (pw)
		strcpy(pw, "...");
	if (strlen(d) > 100)
		strcpy(d + 97, "...");
	free(c->stmt);
	c->stmt = d;
}

static void
deferred_result_cb(uv_timer_t *t)
{
	pgm_pg_conn_t *c = t->data;

	if (c->mode == MODE_COPY_OUT)
		copy_out_finish(c, NULL);
	else if (c->mode == MODE_QUERY || c->mode == MODE_COPY_IN)
		deliver_result(c);
}

/* a statement could not be sent (the connection is gone): report it from the loop */
static bool
send_failed(pgm_pg_conn_t *c, conn_mode_t mode)
{
	c->mode = mode;
	if (mode != MODE_COPY_OUT)
		c->error = PQmakeEmptyPGresult(c->pg, PGRES_FATAL_ERROR);
	if (c->poll)
		conn_watch(c, 0);
	uv_timer_stop(c->timer);
	uv_timer_start(c->timer, deferred_result_cb, 0, 0);
	return true;
}

bool
pgm_pg_query(pgm_pg_conn_t *c, const char *sql, int nparams, const char *const *params, pgm_pg_result_cb cb, void *data)
{
	int ok;

	if (c->mode != MODE_IDLE)
		return false;
	c->data = data;
	c->result_cb = cb;
	if (c->timed_out)
		return send_failed(c, MODE_QUERY); /* the connection was taken for dead */
	stmt_remember(c, sql);
	if (nparams == 0)
		ok = PQsendQuery(c->pg, sql);
	else
		ok = PQsendQueryParams(c->pg, sql, nparams, NULL, params, NULL, NULL, 0);
	if (!ok)
		return send_failed(c, MODE_QUERY);
	return begin_op(c, MODE_QUERY);
}

bool
pgm_pg_copy_out(pgm_pg_conn_t *c, const char *sql, pgm_pg_copy_out_cb cb, void *data)
{
	if (c->mode != MODE_IDLE)
		return false;
	c->data = data;
	c->copy_out_cb = cb;
	c->copy_started = false;
	c->copy_ending = false;
	if (c->timed_out)
		return send_failed(c, MODE_COPY_OUT);
	stmt_remember(c, sql);
	if (!PQsendQuery(c->pg, sql))
		return send_failed(c, MODE_COPY_OUT);
	return begin_op(c, MODE_COPY_OUT);
}

void
pgm_pg_copy_out_pause(pgm_pg_conn_t *c, bool paused)
{
	if (c->mode != MODE_COPY_OUT)
		return;
	c->copy_paused = paused;
	if (!paused) {
		conn_watch(c, UV_READABLE);
		copy_out_step(c);
	} else {
		conn_watch(c, 0);
	}
	quiet_arm(c);
}

bool
pgm_pg_copy_in_start(pgm_pg_conn_t *c, const char *sql, pgm_pg_result_cb ready_cb, void *data)
{
	if (c->mode != MODE_IDLE)
		return false;
	c->data = data;
	c->result_cb = ready_cb;
	if (c->timed_out)
		return send_failed(c, MODE_COPY_IN);
	stmt_remember(c, sql);
	if (!PQsendQuery(c->pg, sql))
		return send_failed(c, MODE_COPY_IN);
	return begin_op(c, MODE_COPY_IN);
}

bool
pgm_pg_copy_in_put(pgm_pg_conn_t *c, const char *buf, int len)
{
	int r;

	if (c->mode != MODE_COPY_IN || !c->copy_in_ready)
		return false;
	r = PQputCopyData(c->pg, buf, len);
	if (r < 0)
		return false;
	if (r == 0 || PQflush(c->pg) == 1) {
		bool was = waits_on_server(c);

		conn_watch(c, UV_READABLE | UV_WRITABLE);
		if (!was)
			quiet_arm(c); /* a backlog starts the bound; more data does not restart it */
	}
	return true;
}

bool
pgm_pg_copy_in_backlogged(pgm_pg_conn_t *c)
{
	return c->mode == MODE_COPY_IN && PQflush(c->pg) == 1;
}

void
pgm_pg_copy_in_on_drain(pgm_pg_conn_t *c, void (*cb)(pgm_pg_conn_t *, void *), void *data)
{
	c->drain_cb = cb;
	c->drain_data = data;
	conn_watch(c, UV_READABLE | UV_WRITABLE);
	quiet_arm(c);
}

bool
pgm_pg_copy_in_end(pgm_pg_conn_t *c, const char *errmsg, pgm_pg_result_cb cb, void *data)
{
	if (c->mode != MODE_COPY_IN)
		return false;
	c->data = data;
	c->result_cb = cb;
	c->drain_cb = NULL;
	if (PQputCopyEnd(c->pg, errmsg) < 0)
		return false;
	c->copy_in_ending = true;
	if (!conn_watch(c, UV_READABLE | UV_WRITABLE))
		return false;
	quiet_arm(c);
	return true;
}

/* a cancel request on a libuv worker: PQcancel connects and waits for the server */
typedef struct cancel_work {
	uv_work_t req;
	PGcancel *cancel;
	char *server;
	char err[256];
	bool ok;
} cancel_work_t;

/* cancels on workers now; beyond a few, one waiting on a dead path would starve name lookups */
static int cancels_running;
#define CANCELS_MAX 2

static void
cancel_work_cb(uv_work_t *req)
{
	cancel_work_t *w = req->data;

	w->ok = PQcancel(w->cancel, w->err, sizeof(w->err)) != 0;
}

static void
cancel_after_cb(uv_work_t *req, int status)
{
	cancel_work_t *w = req->data;

	cancels_running--;
	if (status == 0 && !w->ok)
		pgm_warning("could not cancel a running statement on %s: %s", w->server, w->err);
	PQfreeCancel(w->cancel);
	free(w->server);
	free(w);
}

void
pgm_pg_cancel(pgm_pg_conn_t *c)
{
	cancel_work_t *w;
	PGcancel *cancel;

	if (c == NULL || c->pg == NULL || c->mode == MODE_IDLE || c->mode == MODE_CLOSED || c->mode == MODE_CONNECTING)
		return;
	if (c->timed_out || cancels_running >= CANCELS_MAX) {
		/* the path is dead, or cancels already wait: the server ends the statement at its timeout */
		pgm_debug("no cancel request sent to %s (%s)", c->server,
			  c->timed_out ? "it does not answer" : "other cancel requests still wait");
		return;
	}
	cancel = PQgetCancel(c->pg);
	if (cancel == NULL)
		return;
	w = pgm_calloc(1, sizeof(*w));
	w->cancel = cancel;
	w->server = pgm_strdup(c->server);
	w->req.data = w;
	if (uv_queue_work(c->loop, &w->req, cancel_work_cb, cancel_after_cb) != 0) {
		PQfreeCancel(cancel);
		free(w->server);
		free(w);
		return;
	}
	cancels_running++;
}

void
pgm_pg_close(pgm_pg_conn_t *c)
{
	if (c == NULL || c->mode == MODE_CLOSED)
		return;
	c->mode = MODE_CLOSED;
	if (c->resolving) {
		/* the lookup's callback frees the request; it finds no connection */
		c->resolving->data = NULL;
		uv_cancel((uv_req_t *) c->resolving);
		c->resolving = NULL;
	}
	c->connect_cb = NULL;
	c->result_cb = NULL;
	c->copy_out_cb = NULL;
	c->drain_cb = NULL;
	PQclear(c->last);
	PQclear(c->copy_final);
	c->copy_final = NULL;
	PQclear(c->error);
	c->last = c->error = NULL;
	if (c->poll) {
		uv_poll_stop(c->poll);
		c->poll->data = c->pg;
		uv_close((uv_handle_t *) c->poll, poll_closed_finish_cb);
		c->poll = NULL;
	} else if (c->pg) {
		PQfinish(c->pg);
	}
	c->pg = NULL;
	/* the timers' close callbacks free the connection itself, the last of them */
	uv_timer_stop(c->timer);
	c->timer->data = c;
	uv_close((uv_handle_t *) c->timer, conn_free_cb);
	uv_timer_stop(c->quiet);
	c->quiet->data = c;
	uv_close((uv_handle_t *) c->quiet, conn_free_cb);
}

char *
pgm_pg_describe_wait(const pgm_pg_conn_t *c)
{
	int64_t secs = (pgm_mono_ms() - c->op_started_mono) / 1000;

	if (c->mode == MODE_CONNECTING)
		return pgm_asprintf("connecting to %s for %lld s", c->server, (long long) secs);
	if (c->mode == MODE_IDLE || c->mode == MODE_CLOSED)
		return NULL;
	return pgm_asprintf("%s running \"%s\" for %lld s", c->server, c->stmt ? c->stmt : "?", (long long) secs);
}

bool
pgm_pg_busy(const pgm_pg_conn_t *c)
{
	return c->mode != MODE_IDLE;
}

int
pgm_pg_server_version(const pgm_pg_conn_t *c)
{
	return c->pg ? PQserverVersion(c->pg) : 0;
}

int
pgm_pg_backend_pid(const pgm_pg_conn_t *c)
{
	return c->pg ? PQbackendPID(c->pg) : 0;
}

bool
pgm_pg_ssl_in_use(const pgm_pg_conn_t *c)
{
	return c->pg && PQsslInUse(c->pg);
}

const char *
pgm_pg_host(const pgm_pg_conn_t *c)
{
	const char *h = c->pg ? PQhost(c->pg) : NULL;

	return h ? h : "";
}

char *
pgm_pg_conn_option(const pgm_pg_conn_t *c, const char *keyword)
{
	PQconninfoOption *opts = c->pg ? PQconninfo(c->pg) : NULL;
	char *v = NULL;

	for (PQconninfoOption *o = opts; o && o->keyword; o++)
		if (strcmp(o->keyword, keyword) == 0 && o->val && o->val[0])
			v = pgm_strdup(o->val);
	PQconninfoFree(opts);
	return v;
}

const char *
pgm_pg_value(const PGresult *res, int row, int col)
{
	if (res == NULL || row >= PQntuples(res) || col >= PQnfields(res) || PQgetisnull(res, row, col))
		return NULL;
	return PQgetvalue(res, row, col);
}

int64_t
pgm_pg_int64(const PGresult *res, int row, int col, int64_t dflt)
{
	const char *v = pgm_pg_value(res, row, col);

	return v ? strtoll(v, NULL, 10) : dflt;
}

int
pgm_pg_ntuples(const PGresult *res)
{
	return res ? PQntuples(res) : 0;
}

int64_t
pgm_pg_cmd_rows(const PGresult *res)
{
	const char *n = res ? PQcmdTuples((PGresult *) res) : "";

	return *n ? strtoll(n, NULL, 10) : -1;
}
