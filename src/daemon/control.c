/*
 * control.c — the control socket: a Unix stream socket, one JSON request a
 * line and one JSON reply a line, plus event lines for the clients that
 * watch a job. Each client has its own line buffer (at most 1 MiB of
 * unterminated line) and write queue (at most 8 MiB not yet read); a
 * client that sends garbage, disconnects mid-request or reads too slowly
 * is answered or dropped alone, and never stalls the loop the jobs run on.
 * Who asked comes from the kernel (SO_PEERCRED), for the audit log and
 * for who may change jobs (access.h: root, pgmoverd's user, admin_users,
 * admin_group); who may connect, and so run the read-only commands, is
 * the socket file's mode. Replies are produced by
 * pgm_control_handle_line, which parses the request and dispatches
 * through the command table in commands.c.
 */
#include "daemon/control.h"
#include "daemon/access.h"
#include "common/log.h"
#include "common/redact.h"
#include "common/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/*
 * A client whose unread replies and events pile up past this is dropped:
 * the daemon neither waits for one client nor buffers for it without bound.
 */
#define MAX_PENDING_WRITE (8 * 1024 * 1024)

struct pgm_client {
	uv_pipe_t pipe;            /* the connection; pipe.data is the client */
	pgm_control_t *ctl;        /* the socket it came through */
	char *buf;                 /* bytes read and not yet answered */
	size_t len, cap;           /* bytes in buf, bytes allocated */
	pgm_peer_t peer;           /* SO_PEERCRED at accept; -1s if unknown */
	char *watch_job;           /* the job whose events it gets, or NULL */
	size_t pending_write;      /* bytes queued to libuv, not yet written */
	bool closing;              /* client_close ran: no more reads or sends */
	pgm_client_t *prev, *next; /* ctl->clients */
};

struct pgm_control {
	pgm_daemon_t *d;       /* the daemon it serves */
	uv_pipe_t server;      /* the listening socket; server.data is ctl */
	bool listening;        /* bound and listening */
	pgm_client_t *clients; /* connected and not closing, newest first */
	int nclients;          /* length of clients, against max_clients */
	char *path;            /* socket_path, removed at stop */
};

/* one queued line, freed when libuv has written it or given up */
typedef struct write_req {
	uv_write_t req;       /* first: write_done_cb casts it back */
	pgm_client_t *client; /* whose pending_write counts it */
	size_t len;           /* bytes of data */
	char data[];          /* the line and its '\n' */
} write_req_t;

static void client_close(pgm_client_t *c);

/*
 * Who sent the request, for the audit log; NULL without a client (unit
 * tests call pgm_control_handle_line with none), which the audit records
 * as pgmoverd itself.
 */
const pgm_peer_t *
pgm_client_peer(const pgm_client_t *c)
{
	return c ? &c->peer : NULL;
}

/* send the client job's events from now on: one job a client, the last one asked */
void
pgm_client_watch(pgm_client_t *c, const char *job)
{
	free(c->watch_job);
	c->watch_job = pgm_strdup(job);
}

/* connected clients, for the systemd status; 0 when the socket is not up */
int
pgm_control_client_count(pgm_daemon_t *d)
{
	return d->control ? d->control->nclients : 0;
}

/*
 * libuv is done with the client's pipe, and every write queued on it has
 * had its callback (cancelled ones too): only now may the client go.
 */
static void
client_closed_cb(uv_handle_t *h)
{
	pgm_client_t *c = h->data;

	free(c->buf);
	free(c->watch_job);
	free(c);
}

/*
 * Drop a client; idempotent. It leaves the list and the count at once, so
 * no broadcast or max_clients check sees it again, and reading stops. Its
 * memory lives until client_closed_cb, since the callbacks of the writes
 * still queued use it. A partial request it sent is discarded.
 */
static void
client_close(pgm_client_t *c)
{
	pgm_control_t *ctl = c->ctl;

	if (c->closing)
		return;
	c->closing = true;
	if (c->prev)
		c->prev->next = c->next;
	else
		ctl->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	ctl->nclients--;
	uv_read_stop((uv_stream_t *) &c->pipe);
	uv_close((uv_handle_t *) &c->pipe, client_closed_cb);
}

/*
 * A queued line was written, or not (the peer went, or client_close
 * cancelled it): uncount it, and drop a client whose write failed.
 */
static void
write_done_cb(uv_write_t *req, int status)
{
	write_req_t *w = (write_req_t *) req;
	pgm_client_t *c = w->client;

	c->pending_write -= w->len;
	if (status < 0 && !c->closing)
		client_close(c);
	free(w);
}

/*
 * Queue one line (text + '\n') to the client; the text is copied. The bytes
 * queued and not yet written are counted, and a client whose queue would
 * pass MAX_PENDING_WRITE is dropped: back-pressure without blocking the
 * loop that serves every job and client.
 */
static void
client_send(pgm_client_t *c, const char *text)
{
	size_t n = strlen(text);
	write_req_t *w;
	uv_buf_t b;
	int rc;

	if (c->closing)
		return;
	if (c->pending_write + n > MAX_PENDING_WRITE) {
		pgm_warning("dropping control client pid %d: it does not read its replies", (int) c->peer.pid);
		client_close(c);
		return;
	}
	w = pgm_malloc(sizeof(*w) + n + 1);
	memcpy(w->data, text, n);
	w->data[n] = '\n';
	w->len = n + 1;
	w->client = c;
	b = uv_buf_init(w->data, (unsigned) (n + 1));
	c->pending_write += w->len;
	rc = uv_write(&w->req, (uv_stream_t *) &c->pipe, &b, 1, write_done_cb);
	if (rc != 0) {
		c->pending_write -= w->len;
		free(w);
		client_close(c);
	}
}

/*
 * unformatted: a reply is one line (cJSON escapes newlines inside strings);
 * every string in it masked (pgm_redact), whatever part of the job it shows
 */
static void
client_send_json(pgm_client_t *c, const cJSON *o)
{
	char *text = pgm_redact_print(o);

	client_send(c, text);
	free(text);
}

/* protocol.h's codes as a table, for pgm_error_code_known and the tests */
const char *const pgm_error_codes[] = {PGM_ERR_CODES, NULL};

/* an exact, case-sensitive match; NULL and "" are no codes */
bool
pgm_error_code_known(const char *code)
{
	for (int i = 0; code && pgm_error_codes[i]; i++)
		if (strcmp(pgm_error_codes[i], code) == 0)
			return true;
	return false;
}

/*
 * The one builder of error replies, so every code on the wire is checked:
 * one that protocol.h does not define is a bug here, logged and sent as
 * internal rather than passed to a client that cannot know it. The id is
 * echoed as given, or null.
 */
cJSON *
pgm_reply_error(const cJSON *id, const char *code, const char *message, const char *hint)
{
	cJSON *r = cJSON_CreateObject();
	cJSON *e;

	if (!pgm_error_code_known(code)) {
		pgm_error("BUG: error code \"%s\" is not one of protocol.h's; replying \"%s\" (message: %s)",
			  code ? code : "(none)", PGM_ERR_INTERNAL, message);
		code = PGM_ERR_INTERNAL;
	}
	cJSON_AddItemToObject(r, "id", id ? cJSON_Duplicate(id, 1) : cJSON_CreateNull());
	cJSON_AddBoolToObject(r, "ok", false);
	e = cJSON_AddObjectToObject(r, "error");
	cJSON_AddStringToObject(e, "code", code);
	cJSON_AddStringToObject(e, "message", message);
	if (hint)
		cJSON_AddStringToObject(e, "hint", hint);
	return r;
}

/*
 * A command that changes something, from a peer access.h does not allow:
 * refused with permission_denied, which says who asked and how to grant
 * it, and audited -- in the named job's trail when there is such a job,
 * else in the daemon's (state_dir/audit.jsonl). No client (a unit test)
 * is pgmoverd itself, allowed.
 */
static cJSON *
check_access(pgm_daemon_t *d, pgm_client_t *client, const pgm_command_t *def, const cJSON *id, const char *jobname)
{
	const pgm_peer_t *peer = pgm_client_peer(client);
	pgm_job_t *job;
	char *who, *msg, *hint, *outcome;
	pgm_buf_t readers = {0};
	cJSON *reply;

	if (def->read_only == PGM_READ_ONLY || peer == NULL ||
	    pgm_access_allowed(&d->cfg.access, d->uid, peer->uid, peer->gid))
		return NULL;
	who = pgm_access_user_name(peer->uid);
	msg = pgm_asprintf("permission denied: %s may not run \"%s\": commands that change jobs are for root, "
			   "pgmoverd's own user (uid %u), admin_users (%s) and the members of admin_group (%s)",
			   who, def->name, (unsigned) d->uid, d->cfg.admin_users[0] ? d->cfg.admin_users : "none",
			   d->cfg.admin_group[0] ? d->cfg.admin_group : "none");
	for (int i = 0; pgm_commands[i].name; i++)
		if (pgm_commands[i].read_only == PGM_READ_ONLY)
			pgm_buf_appendf(&readers, "%s%s", readers.s ? ", " : "", pgm_commands[i].name);
	hint = pgm_asprintf("to grant it, add the user to admin_users, or to the group named by admin_group, in %s "
			    "and reload pgmoverd (SIGHUP, systemctl reload pgmoverd); the read-only commands (%s) "
			    "need no grant",
			    d->config_path ? d->config_path : "pgmoverd.conf", readers.s);
	free(readers.s);
	outcome = pgm_asprintf("refused: %s", PGM_ERR_PERMISSION_DENIED);
	job = jobname ? pgm_jobs_find(d, jobname) : NULL;
	if (job)
		pgm_job_audit(job, peer, def->name, pgm_state_name(job->state), NULL, outcome);
	else
		pgm_daemon_audit(d, jobname, peer, def->name, outcome);
	pgm_warning("refused \"%s\"%s%s from %s, pid %d: not allowed to change jobs", def->name,
		    jobname ? " of job " : "", jobname ? jobname : "", who, (int) peer->pid);
	reply = pgm_reply_error(id, PGM_ERR_PERMISSION_DENIED, msg, hint);
	free(outcome);
	free(hint);
	free(msg);
	free(who);
	return reply;
}

/*
 * Answer one request line (the socket's, or a unit test's with client
 * NULL). Checked in order: valid JSON, an object, a "cmd" string, a known
 * command, "job" a string if there and there if the command needs one,
 * "args" an object if there, and a command that changes something from a
 * peer allowed to (check_access). Handlers then always see ctx.args as an
 * object (empty when absent) and ctx.job as a string or NULL. A handler's
 * result becomes the reply's; on failure whatever it left there is
 * dropped. The reply echoes "id" if the request had one, and is never NULL.
 */
cJSON *
pgm_control_handle_line(pgm_daemon_t *d, pgm_client_t *client, const char *line, size_t len)
{
	cJSON *req = cJSON_ParseWithLength(line, len);
	const cJSON *id, *cmd, *job, *args;
	const pgm_command_t *def;
	pgm_cmd_ctx_t ctx;
	cJSON *reply, *empty_args = NULL;

	if (req == NULL)
		return pgm_reply_error(NULL, PGM_ERR_BAD_REQUEST, "request is not valid JSON",
				       "send one JSON object per line, e.g. {\"id\": 1, \"cmd\": \"version\"}");
	if (!cJSON_IsObject(req)) {
		cJSON_Delete(req);
		return pgm_reply_error(NULL, PGM_ERR_BAD_REQUEST, "request must be a JSON object",
				       "send {\"id\": 1, \"cmd\": \"version\"}");
	}
	id = cJSON_GetObjectItemCaseSensitive(req, "id");
	cmd = cJSON_GetObjectItemCaseSensitive(req, "cmd");
	job = cJSON_GetObjectItemCaseSensitive(req, "job");
	args = cJSON_GetObjectItemCaseSensitive(req, "args");
	if (!cJSON_IsString(cmd)) {
		reply = pgm_reply_error(id, PGM_ERR_BAD_REQUEST, "request has no \"cmd\" string",
					"add \"cmd\": one of the commands listed by \"describe\"");
		goto done;
	}
	def = pgm_command_find(cmd->valuestring);
	if (def == NULL) {
		/* at most 64 bytes of it: a long garbage cmd is not echoed whole */
		char *msg = pgm_asprintf("unknown command \"%.64s\"", cmd->valuestring);
		char *list = pgm_commands_list();
		char *hint = pgm_asprintf("commands: %s", list);

		reply = pgm_reply_error(id, PGM_ERR_UNKNOWN_COMMAND, msg, hint);
		free(hint);
		free(list);
		free(msg);
		goto done;
	}
	if (job != NULL && !cJSON_IsNull(job) && !cJSON_IsString(job)) {
		reply = pgm_reply_error(id, PGM_ERR_BAD_REQUEST, "\"job\" must be a string", NULL);
		goto done;
	}
	if (def->needs_job && !cJSON_IsString(job)) {
		char *msg = pgm_asprintf("command \"%s\" needs a job", def->name);
		reply = pgm_reply_error(id, PGM_ERR_BAD_REQUEST, msg, "add \"job\": \"NAME\" to the request");
		free(msg);
		goto done;
	}
	if (args != NULL && !cJSON_IsNull(args) && !cJSON_IsObject(args)) {
		reply = pgm_reply_error(id, PGM_ERR_BAD_REQUEST, "\"args\" must be an object", NULL);
		goto done;
	}
	if ((reply = check_access(d, client, def, id, cJSON_IsString(job) ? job->valuestring : NULL)) != NULL)
		goto done;
	if (args == NULL || cJSON_IsNull(args))
		args = empty_args = cJSON_CreateObject();

	memset(&ctx, 0, sizeof(ctx));
	ctx.daemon = d;
	ctx.client = client;
	ctx.cmd = def->name;
	ctx.job = cJSON_IsString(job) ? job->valuestring : NULL;
	ctx.args = args;
	if (def->fn(&ctx)) {
		reply = cJSON_CreateObject();
		cJSON_AddItemToObject(reply, "id", id ? cJSON_Duplicate(id, 1) : cJSON_CreateNull());
		cJSON_AddBoolToObject(reply, "ok", true);
		cJSON_AddItemToObject(reply, "result", ctx.result ? ctx.result : cJSON_CreateObject());
	} else {
		cJSON_Delete(ctx.result);
		reply = pgm_reply_error(id, ctx.code ? ctx.code : PGM_ERR_INTERNAL,
					ctx.message ? ctx.message : "command failed", ctx.hint);
	}
	free(ctx.message);
	free(ctx.hint);
done:
	cJSON_Delete(empty_args);
	cJSON_Delete(req);
	return reply;
}

/* only spaces, tabs, CR: such a line gets no reply, so a stray newline is no error */
static bool
line_is_blank(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
			return false;
	return true;
}

/*
 * Answer every complete line in the buffer, in order, each reply queued
 * before the next line is handled, so replies come in request order. Stop
 * as soon as the client is dropped (a reply overran its queue). What is
 * left, a partial line, moves to the front; once more than PGM_MAX_LINE
 * bytes wait without a newline the client is told line_too_long and
 * dropped, which bounds what one client can make the daemon hold.
 */
static void
client_process(pgm_client_t *c)
{
	size_t start = 0;

	while (!c->closing) {
		char *nl = memchr(c->buf + start, '\n', c->len - start);
		size_t n;

		if (nl == NULL)
			break;
		n = (size_t) (nl - (c->buf + start));
		if (!line_is_blank(c->buf + start, n)) {
			cJSON *reply = pgm_control_handle_line(c->ctl->d, c, c->buf + start, n);
			client_send_json(c, reply);
			cJSON_Delete(reply);
		}
		start += n + 1;
	}
	if (start > 0 && !c->closing) {
		memmove(c->buf, c->buf + start, c->len - start);
		c->len -= start;
	}
	if (!c->closing && c->len > PGM_MAX_LINE) {
		cJSON *reply = pgm_reply_error(NULL, PGM_ERR_LINE_TOO_LONG, "request line longer than 1 MiB",
					       "send one JSON object per line, each at most 1 MiB");
		client_send_json(c, reply);
		cJSON_Delete(reply);
		pgm_warning("control client pid %d sent a line over 1 MiB; dropping it", (int) c->peer.pid);
		client_close(c);
	}
}

/*
 * Read into the client's own buffer after what it holds, with at least
 * 64 KiB free (libuv's suggestion is ignored); it grows no further than
 * client_process lets a partial line get.
 */
static void
client_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	pgm_client_t *c = h->data;
	size_t want = 65536;

	if (c->cap - c->len < want) {
		c->cap = c->len + want;
		c->buf = pgm_realloc(c->buf, c->cap);
	}
	buf->base = c->buf + c->len;
	buf->len = c->cap - c->len;
}

/* bytes arrived after c->len (client_alloc_cb): count them, answer what is whole */
static void
client_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	pgm_client_t *c = s->data;

	if (nread < 0) {
		/* EOF or error: a partial request is dropped with the client */
		client_close(c);
		return;
	}
	c->len += (size_t) nread;
	client_process(c);
}

/*
 * A client connects: accept it, take its pid, uid and gid from the kernel
 * (SO_PEERCRED; zeroed if it cannot say) for the audit log, since nothing
 * in a request can be trusted to say who sent it, and start reading. Past
 * max_clients the new client is sent too_many_clients and closed; the
 * others are not touched. A failed accept drops only that connection.
 */
static void
on_connection(uv_stream_t *server, int status)
{
	pgm_control_t *ctl = server->data;
	pgm_client_t *c;
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	uv_os_fd_t fd;

	if (status < 0) {
		pgm_warning("control socket accept failed: %s", uv_strerror(status));
		return;
	}
	c = pgm_calloc(1, sizeof(*c));
	c->ctl = ctl;
	uv_pipe_init(ctl->d->host.loop, &c->pipe, 0);
	c->pipe.data = c;
	if (uv_accept(server, (uv_stream_t *) &c->pipe) != 0) {
		uv_close((uv_handle_t *) &c->pipe, client_closed_cb);
		return;
	}
	c->next = ctl->clients;
	if (ctl->clients)
		ctl->clients->prev = c;
	ctl->clients = c;
	ctl->nclients++;
	if (uv_fileno((uv_handle_t *) &c->pipe, &fd) == 0 &&
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0) {
		c->peer.pid = cred.pid;
		c->peer.uid = cred.uid;
		c->peer.gid = cred.gid;
	} else {
		/* unknown, not root: the audit log says null rather than uid 0 */
		c->peer.pid = -1;
		c->peer.uid = (uid_t) -1;
		c->peer.gid = (gid_t) -1;
	}
	if (ctl->nclients > ctl->d->cfg.max_clients) {
		cJSON *r = pgm_reply_error(NULL, PGM_ERR_TOO_MANY_CLIENTS, "too many control connections",
					   "close idle connections or raise max_clients");
		client_send_json(c, r);
		cJSON_Delete(r);
		client_close(c);
		return;
	}
	uv_read_start((uv_stream_t *) &c->pipe, client_alloc_cb, client_read_cb);
}

/*
 * Whether something answers on path. A socket file nobody listens on is
 * left over from a crash and may be removed; one that answers belongs to
 * a running pgmoverd. A failure to connect, whatever the cause, counts as
 * not in use.
 */
static bool
socket_in_use(const char *path)
{
	struct sockaddr_un sa;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool used;

	if (fd < 0)
		return false;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	used = connect(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0;
	close(fd);
	return used;
}

/*
 * Bind and listen on socket_path, creating its directory. A file already
 * there is removed only when it is a socket nobody listens on: any other
 * file is the user's, and a live socket means another pgmoverd, so this
 * one stops (before it loads any job: see main.c). Who may connect is the
 * socket's mode (socket_mode), set after bind; requests carry no password.
 * False (logged) when the socket cannot be had.
 */
bool
pgm_control_start(pgm_daemon_t *d)
{
	pgm_control_t *ctl = pgm_calloc(1, sizeof(*ctl));
	const char *path = d->cfg.socket_path;
	struct stat st;
	char *dir, *slash;
	int rc;

	ctl->d = d;
	ctl->path = pgm_strdup(path);
	if (strlen(path) >= sizeof(((struct sockaddr_un *) 0)->sun_path)) {
		pgm_error("socket_path \"%s\" is too long for a Unix socket (at most %zu bytes)", path,
			  sizeof(((struct sockaddr_un *) 0)->sun_path) - 1);
		goto fail;
	}
	dir = pgm_strdup(path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if (!pgm_mkdir_p(dir, 0755)) {
			pgm_error("could not create the directory of socket_path \"%s\": %s", dir, strerror(errno));
			free(dir);
			goto fail;
		}
	}
	free(dir);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			pgm_error("socket_path \"%s\" exists and is not a socket; remove it or choose another path",
				  path);
			goto fail;
		}
		if (socket_in_use(path)) {
			pgm_error("another pgmoverd is already listening on \"%s\"", path);
			goto fail;
		}
		unlink(path);
	}
	uv_pipe_init(d->host.loop, &ctl->server, 0);
	ctl->server.data = ctl;
	rc = uv_pipe_bind(&ctl->server, path);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *) &ctl->server, 4096, on_connection);
	if (rc != 0) {
		pgm_error("could not listen on control socket \"%s\": %s", path, uv_strerror(rc));
		uv_close((uv_handle_t *) &ctl->server, NULL);
		/* let the close finish: ctl, which holds the handle, is freed below */
		uv_run(d->host.loop, UV_RUN_NOWAIT);
		goto fail;
	}
	if (chmod(path, (mode_t) d->cfg.socket_mode) != 0)
		pgm_warning("could not set mode %04o on \"%s\": %s", d->cfg.socket_mode, path, strerror(errno));
	ctl->listening = true;
	d->control = ctl;
	pgm_info("listening on control socket \"%s\" (mode %04o)", path, d->cfg.socket_mode);
	return true;
fail:
	free(ctl->path);
	free(ctl);
	return false;
}

/* the server handle is closed: ctl, which holds it, can go */
static void
server_closed_cb(uv_handle_t *h)
{
	pgm_control_t *ctl = h->data;

	free(ctl->path);
	free(ctl);
}

/*
 * Stop accepting, drop every client (replies and events not yet written
 * are lost) and remove the socket file, so that the next start finds none.
 * d->control is cleared first: a broadcast from then on reaches no one.
 */
void
pgm_control_stop(pgm_daemon_t *d)
{
	pgm_control_t *ctl = d->control;

	if (ctl == NULL)
		return;
	d->control = NULL;
	while (ctl->clients)
		client_close(ctl->clients);
	if (ctl->listening) {
		unlink(ctl->path);
		uv_close((uv_handle_t *) &ctl->server, server_closed_cb);
	} else {
		free(ctl->path);
		free(ctl);
	}
}

/*
 * Send an event line to each client watching job, printed once and only
 * if someone watches. A watcher that does not keep up is dropped by
 * client_send alone; next is taken first because sending may drop c.
 */
void
pgm_control_broadcast(pgm_daemon_t *d, const char *job, const cJSON *event)
{
	pgm_control_t *ctl = d->control;
	char *text = NULL;

	if (ctl == NULL)
		return;
	for (pgm_client_t *c = ctl->clients, *next; c; c = next) {
		next = c->next;
		if (c->watch_job == NULL || strcmp(c->watch_job, job) != 0)
			continue;
		if (text == NULL)
			text = pgm_redact_print(event);
		client_send(c, text);
	}
	free(text);
}
