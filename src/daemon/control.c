/*
 * control.c — the control socket. Each client has its own line buffer
 * (at most 1 MiB a line) and write queue; a client that sends garbage,
 * disconnects mid-request or reads too slowly is answered or dropped
 * alone. Replies are produced by pgm_control_handle_line, which parses the
 * request and dispatches through the command table in commands.c.
 */
#include "daemon/control.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* a client whose unread replies pile up past this is dropped */
#define MAX_PENDING_WRITE (8 * 1024 * 1024)

struct pgm_client {
	uv_pipe_t pipe;
	pgm_control_t *ctl;
	char *buf;
	size_t len, cap;
	pgm_peer_t peer;
	char *watch_job;
	size_t pending_write;
	bool closing;
	pgm_client_t *prev, *next;
};

struct pgm_control {
	pgm_daemon_t *d;
	uv_pipe_t server;
	bool listening;
	pgm_client_t *clients;
	int nclients;
	char *path;
};

typedef struct write_req {
	uv_write_t req;
	pgm_client_t *client;
	size_t len;
	char data[];
} write_req_t;

static void client_close(pgm_client_t *c);

const pgm_peer_t *
pgm_client_peer(const pgm_client_t *c)
{
	return c ? &c->peer : NULL;
}

void
pgm_client_watch(pgm_client_t *c, const char *job)
{
	free(c->watch_job);
	c->watch_job = pgm_strdup(job);
}

int
pgm_control_client_count(pgm_daemon_t *d)
{
	return d->control ? d->control->nclients : 0;
}

static void
client_closed_cb(uv_handle_t *h)
{
	pgm_client_t *c = h->data;

	free(c->buf);
	free(c->watch_job);
	free(c);
}

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

/* queue one line (text + '\n') to the client */
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

static void
client_send_json(pgm_client_t *c, const cJSON *o)
{
	char *text = cJSON_PrintUnformatted(o);

	client_send(c, text);
	free(text);
}

const char *const pgm_error_codes[] = {PGM_ERR_CODES, NULL};

bool
pgm_error_code_known(const char *code)
{
	for (int i = 0; code && pgm_error_codes[i]; i++)
		if (strcmp(pgm_error_codes[i], code) == 0)
			return true;
	return false;
}

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

static bool
line_is_blank(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
			return false;
	return true;
}

/* answer every complete line in the buffer */
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

/* a socket file that nobody listens on is left over from a crash */
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
			pgm_error("socket_path \"%s\" exists and is not a socket; remove it or choose another path", path);
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

static void
server_closed_cb(uv_handle_t *h)
{
	pgm_control_t *ctl = h->data;

	free(ctl->path);
	free(ctl);
}

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
			text = cJSON_PrintUnformatted(event);
		client_send(c, text);
	}
	free(text);
}
