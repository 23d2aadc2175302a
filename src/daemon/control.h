/*
 * control.h — the control socket: a Unix stream socket speaking
 * newline-delimited JSON (protocol version 1 of DESIGN.md).
 */
#ifndef PGM_CONTROL_H
#define PGM_CONTROL_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "daemon/jobs.h"

#include "pgmover/protocol.h"

typedef struct pgm_control pgm_control_t;
typedef struct pgm_client pgm_client_t;

/* bind and listen; false (logged) when the socket cannot be created */
bool pgm_control_start(pgm_daemon_t *d);
/* stop accepting and drop every client; close_cb when all handles are closed */
void pgm_control_stop(pgm_daemon_t *d);
/* send an event line to every client watching the job */
void pgm_control_broadcast(pgm_daemon_t *d, const char *job, const cJSON *event);
int pgm_control_client_count(pgm_daemon_t *d);

/* for command handlers */
const pgm_peer_t *pgm_client_peer(const pgm_client_t *c);
void pgm_client_watch(pgm_client_t *c, const char *job);

/*
 * A command handler: fills *result (success) or returns false with an
 * error code, message and hint (malloc'd message/hint).
 */
typedef struct pgm_cmd_ctx {
	pgm_daemon_t *daemon;
	pgm_client_t *client;
	const char *cmd;
	const char *job;   /* NULL when the request has none */
	const cJSON *args; /* object (maybe empty) */
	cJSON *result;     /* set by the handler */
	const char *code;  /* set on error */
	char *message;
	char *hint;
} pgm_cmd_ctx_t;

typedef bool (*pgm_cmd_fn)(pgm_cmd_ctx_t *ctx);

/*
 * Whether a command changes anything: every row says so, and 0 (a row that
 * forgot) counts as changing (test_protocol.c checks that no row is 0).
 * Read-only commands are open to whoever can open the socket; the others
 * only to the uids access.h allows.
 */
typedef enum pgm_cmd_access {
	PGM_ACCESS_UNSET = 0,
	PGM_READ_ONLY, /* reads: status, jobs, describe, ... */
	PGM_CHANGES,   /* creates, moves, changes or deletes a job */
} pgm_cmd_access_t;

typedef struct pgm_command {
	const char *name;
	bool needs_job;
	pgm_cmd_access_t read_only;
	pgm_cmd_fn fn;
	const char *help;
} pgm_command_t;

extern const pgm_command_t pgm_commands[];
const pgm_command_t *pgm_command_find(const char *name);
/* the names of every command, comma-separated, for hints (malloc'd) */
char *pgm_commands_list(void);

/* protocol.h's error codes (PGM_ERR_CODES), NULL-terminated */
extern const char *const pgm_error_codes[];
/* whether code is one of pgm_error_codes */
bool pgm_error_code_known(const char *code);
/*
 * The reply {"id", "ok": false, "error": {"code", "message", "hint"}} (no
 * hint when NULL). Every error reply is built here, so every code on the
 * wire is checked: one protocol.h does not define is logged as a bug and
 * sent as PGM_ERR_INTERNAL.
 */
cJSON *pgm_reply_error(const cJSON *id, const char *code, const char *message, const char *hint);

/*
 * Handle one request line: parse, dispatch, and return the reply object
 * (never NULL). Used by the socket and by unit tests.
 */
cJSON *pgm_control_handle_line(pgm_daemon_t *d, pgm_client_t *client, const char *line, size_t len);

#endif
