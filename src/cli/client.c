/*
 * client.c
 *    The control socket protocol, client side: connect to pgmoverd, send one
 *    request line, read reply and event lines.
 *
 * Lines are newline-delimited JSON. Replies are read into one growing buffer
 * (up to PGM_CLI_MAX_LINE) so that large watch events fit. Every error is
 * reported here, in PostgreSQL's style; callers only map it to an exit code.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "pgm_config.h"

#define CLIENT_BUF_INITIAL (64 * 1024)

volatile sig_atomic_t pgm_cli_interrupted = 0;

static bool socket_wait_connected(int fd);
static bool socket_write_all(pgm_cli_conn_t *client, const char *data, size_t len);

static int64_t
monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * wait_readable waits for the socket until the deadline: true when it can
 * be read, false on timeout or on SIGINT (pgm_cli_interrupted).
 */
static bool
wait_readable(pgm_cli_conn_t *client)
{
	struct pollfd pfd = {.fd = client->fd, .events = POLLIN};

	for (;;) {
		int64_t left = client->deadline_ms - monotonic_ms();
		int n;

		if (left <= 0)
			return false;
		n = poll(&pfd, 1, left > 1000000 ? 1000000 : (int) left);
		if (n > 0)
			return true;
		if (n < 0 && errno == EINTR && pgm_cli_interrupted)
			return false;
	}
}

/*
 * pgm_cli_conn_open connects to the daemon's Unix socket at path. Returns
 * PGM_EXIT_OK, or PGM_EXIT_UNREACHABLE after reporting why.
 */
int
pgm_cli_conn_open(pgm_cli_conn_t *client, const char *path)
{
	struct sockaddr_un addr;

	memset(client, 0, sizeof(*client));
	client->fd = -1;
	client->path = path;
	client->next_id = 1;

	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(addr.sun_path)) {
		pgm_cli_output_error("could not connect to pgmoverd at \"%s\": socket path is too long", path);
		pgm_cli_output_hint("use a socket path shorter than %zu bytes", sizeof(addr.sun_path));
		return PGM_EXIT_UNREACHABLE;
	}
	memcpy(addr.sun_path, path, strlen(path) + 1);

	client->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (client->fd < 0) {
		pgm_cli_output_error("could not create socket: %s", strerror(errno));
		pgm_cli_output_hint("check the process's open file limit (ulimit -n)");
		return PGM_EXIT_UNREACHABLE;
	}

	if (connect(client->fd, (struct sockaddr *) &addr, sizeof(addr)) != 0 &&
	    !(errno == EINTR && socket_wait_connected(client->fd))) {
		int e = errno;

		pgm_cli_output_error("could not connect to pgmoverd at \"%s\": %s", path, strerror(e));
		if (e == EACCES || e == EPERM)
			pgm_cli_output_hint(
				"pgmoverd runs, but this user may not open its socket: run as the daemon's user "
				"or root, or join the group that owns the socket file (socket_mode in " PGM_DEFAULT_CONF
				")");
		else
			pgm_cli_output_hint("is pgmoverd running? start it with \"systemctl start pgmoverd\" or "
					    "\"pgmoverd -c " PGM_DEFAULT_CONF
					    "\", or pass -s SOCKET (or PGMOVER_SOCKET)");
		pgm_cli_conn_close(client);
		return PGM_EXIT_UNREACHABLE;
	}
	return PGM_EXIT_OK;
}

/*
 * socket_wait_connected finishes a connect() that a signal interrupted: the
 * connection goes on in the background, so wait for it and fetch its result.
 * Leaves errno set on failure.
 */
static bool
socket_wait_connected(int fd)
{
	struct pollfd pfd = {.fd = fd, .events = POLLOUT};
	int err = 0;
	socklen_t errlen = sizeof(err);

	while (poll(&pfd, 1, -1) < 0) {
		if (errno != EINTR)
			return false;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &errlen) != 0)
		return false;
	errno = err;
	return err == 0;
}

/*
 * pgm_cli_conn_close closes the socket and frees the receive buffer. Safe to
 * call twice.
 */
void
pgm_cli_conn_close(pgm_cli_conn_t *client)
{
	if (client->fd >= 0)
		close(client->fd);
	client->fd = -1;
	free(client->buf);
	client->buf = NULL;
	client->len = client->cap = client->consumed = client->scanned = 0;
}

/*
 * socket_write_all writes len bytes, retrying short writes and EINTR.
 * SIGPIPE is ignored, so a closed peer shows up as EPIPE here.
 */
static bool
socket_write_all(pgm_cli_conn_t *client, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(client->fd, data, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			pgm_cli_output_error("could not send request to pgmoverd at \"%s\": %s", client->path,
					     strerror(errno));
			pgm_cli_output_hint("check the pgmoverd log, then retry the command");
			return false;
		}
		data += n;
		len -= (size_t) n;
	}
	return true;
}

/*
 * buffer_reserve makes room for at least one more read into the receive
 * buffer: first by dropping consumed lines, then by doubling, never beyond
 * PGM_CLI_MAX_LINE plus the newline.
 */
static bool
buffer_reserve(pgm_cli_conn_t *client)
{
	size_t limit = PGM_CLI_MAX_LINE + 1;
	size_t newcap;
	char *newbuf;

	if (client->consumed > 0) {
		memmove(client->buf, client->buf + client->consumed, client->len - client->consumed);
		client->len -= client->consumed;
		client->scanned -= client->consumed;
		client->consumed = 0;
	}
	if (client->len < client->cap)
		return true;
	if (client->cap >= limit) {
		pgm_cli_output_error("reply from pgmoverd is longer than %d MiB", PGM_CLI_MAX_LINE / (1024 * 1024));
		pgm_cli_output_hint("this is a bug in pgmoverd or a different server listens on \"%s\"", client->path);
		return false;
	}
	newcap = client->cap == 0 ? CLIENT_BUF_INITIAL : client->cap * 2;
	if (newcap > limit)
		newcap = limit;
	newbuf = realloc(client->buf, newcap);
	if (newbuf == NULL) {
		pgm_cli_output_error("out of memory reading a reply of %zu bytes", newcap);
		pgm_cli_output_hint("free some memory and retry the command");
		return false;
	}
	client->buf = newbuf;
	client->cap = newcap;
	return true;
}

/*
 * pgm_cli_conn_read_line returns the next line from the daemon, without its
 * newline and NUL-terminated. *line points into the client's buffer and
 * stays valid until the next call. A last line without a newline before EOF
 * is returned as a line too. EINTR is retried unless SIGINT set
 * pgm_cli_interrupted, in which case PGM_CLI_READ_INTERRUPTED is returned.
 */
pgm_cli_read_t
pgm_cli_conn_read_line(pgm_cli_conn_t *client, char **line)
{
	for (;;) {
		char *start = client->buf + client->consumed;
		char *nl = NULL;
		ssize_t n;

		if (client->scanned < client->len)
			nl = memchr(client->buf + client->scanned, '\n', client->len - client->scanned);
		if (nl != NULL) {
			*nl = '\0';
			*line = start;
			client->consumed = client->scanned = (size_t) (nl - client->buf) + 1;
			return PGM_CLI_READ_LINE;
		}
		client->scanned = client->len;

		if (pgm_cli_interrupted)
			return PGM_CLI_READ_INTERRUPTED;
		if (!buffer_reserve(client))
			return PGM_CLI_READ_ERROR;
		if (client->deadline_ms != 0 && !wait_readable(client))
			return pgm_cli_interrupted ? PGM_CLI_READ_INTERRUPTED : PGM_CLI_READ_TIMEOUT;

		n = read(client->fd, client->buf + client->len, client->cap - client->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			pgm_cli_output_error("could not read reply from pgmoverd at \"%s\": %s", client->path,
					     strerror(errno));
			pgm_cli_output_hint("check the pgmoverd log, then retry the command");
			return PGM_CLI_READ_ERROR;
		}
		if (n == 0) {
			if (client->len == client->consumed)
				return PGM_CLI_READ_EOF;
			/* a final unterminated line: make room for its NUL and hand it out */
			if (client->len == client->cap && !buffer_reserve(client))
				return PGM_CLI_READ_ERROR;
			client->buf[client->len] = '\0';
			*line = client->buf + client->consumed;
			client->consumed = client->scanned = client->len;
			return PGM_CLI_READ_LINE;
		}
		client->len += (size_t) n;
	}
}

/*
 * request_build makes {"id", "cmd", "job", "args"}; it takes ownership of
 * args (NULL means {}), and leaves "job" out when there is none.
 */
static cJSON *
request_build(long id, const char *cmd, const char *job, cJSON *args)
{
	cJSON *request = cJSON_CreateObject();

	if (args == NULL)
		args = cJSON_CreateObject();
	if (request == NULL || args == NULL || cJSON_AddNumberToObject(request, "id", (double) id) == NULL ||
	    cJSON_AddStringToObject(request, "cmd", cmd) == NULL ||
	    (job != NULL && cJSON_AddStringToObject(request, "job", job) == NULL) ||
	    !cJSON_AddItemToObject(request, "args", args)) {
		cJSON_Delete(request);
		cJSON_Delete(args);
		return NULL;
	}
	return request;
}

/*
 * reply_parse checks one reply line against the protocol: a JSON object
 * whose "id" matches the request and whose "ok" is a boolean.
 */
static bool
reply_parse(pgm_cli_conn_t *client, long id, const char *line, pgm_cli_reply_t *reply)
{
	const cJSON *idnode;
	const cJSON *oknode;

	reply->line = strdup(line);
	reply->root = cJSON_Parse(line);
	if (reply->line == NULL || reply->root == NULL || !cJSON_IsObject(reply->root)) {
		pgm_cli_output_error("pgmoverd at \"%s\" sent a reply that is not a JSON object", client->path);
		pgm_cli_output_hint(
			"check that \"%s\" is pgmoverd's control socket and that client and daemon versions match",
			client->path);
		return false;
	}
	idnode = cJSON_GetObjectItemCaseSensitive(reply->root, "id");
	oknode = cJSON_GetObjectItemCaseSensitive(reply->root, "ok");
	if (!cJSON_IsNumber(idnode) || idnode->valuedouble != (double) id || !cJSON_IsBool(oknode)) {
		pgm_cli_output_error("pgmoverd at \"%s\" sent a reply that does not answer request %ld", client->path,
				     id);
		pgm_cli_output_hint("check that client and daemon versions match (\"pgmover version\")");
		return false;
	}
	reply->ok = cJSON_IsTrue(oknode);
	reply->result = cJSON_GetObjectItemCaseSensitive(reply->root, "result");
	reply->error = cJSON_GetObjectItemCaseSensitive(reply->root, "error");
	return true;
}

/*
 * pgm_cli_conn_call sends one request and waits for its reply. Takes ownership
 * of args. Returns PGM_EXIT_OK when a well-formed reply arrived (which
 * may still say ok:false), PGM_EXIT_UNREACHABLE otherwise, or
 * PGM_EXIT_FAILED when interrupted. The caller frees reply.
 */
int
pgm_cli_conn_call(pgm_cli_conn_t *client, const char *cmd, const char *job, cJSON *args, pgm_cli_reply_t *reply)
{
	long id = client->next_id++;
	cJSON *request = request_build(id, cmd, job, args);
	char *text;
	char *line = NULL;
	bool sent;
	pgm_cli_read_t rc;

	memset(reply, 0, sizeof(*reply));
	text = request != NULL ? cJSON_PrintUnformatted(request) : NULL;
	cJSON_Delete(request);
	if (text == NULL) {
		pgm_cli_output_error("out of memory building the \"%s\" request", cmd);
		pgm_cli_output_hint("free some memory and retry the command");
		return PGM_EXIT_UNREACHABLE;
	}
	sent = socket_write_all(client, text, strlen(text)) && socket_write_all(client, "\n", 1);
	cJSON_free(text);
	if (!sent)
		return PGM_EXIT_UNREACHABLE;

	client->deadline_ms = client->timeout_ms > 0 ? monotonic_ms() + client->timeout_ms : 0;
	rc = pgm_cli_conn_read_line(client, &line);
	client->deadline_ms = 0;
	if (rc == PGM_CLI_READ_INTERRUPTED)
		return PGM_EXIT_FAILED;
	if (rc == PGM_CLI_READ_TIMEOUT) {
		pgm_cli_output_error("pgmoverd at \"%s\" did not reply to \"%s\" within %.3g s", client->path, cmd,
				     client->timeout_ms / 1000.0);
		pgm_cli_output_hint(
			"the request may still take effect: check \"pgmover status\" before sending it again;"
			" is pgmoverd stopped or overloaded? (its log; --timeout SECONDS waits longer, 0 for ever)");
		return PGM_EXIT_UNREACHABLE;
	}
	if (rc == PGM_CLI_READ_EOF) {
		pgm_cli_output_error("pgmoverd at \"%s\" closed the connection before replying to \"%s\"", client->path,
				     cmd);
		pgm_cli_output_hint("check the pgmoverd log; the daemon may have stopped or restarted");
	}
	if (rc != PGM_CLI_READ_LINE || !reply_parse(client, id, line, reply))
		return PGM_EXIT_UNREACHABLE;
	return PGM_EXIT_OK;
}

/*
 * pgm_cli_reply_free releases what pgm_cli_conn_call stored in reply.
 */
void
pgm_cli_reply_free(pgm_cli_reply_t *reply)
{
	cJSON_Delete(reply->root);
	free(reply->line);
	memset(reply, 0, sizeof(*reply));
}
