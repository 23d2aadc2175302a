/*
 * pgasync.h — asynchronous libpq on the libuv loop.
 *
 * One uv_poll_t per PGconn. One callback shape for every query: the result,
 * or an error carrying SQLSTATE, message, detail and hint. Nothing else in
 * pgmover calls libpq's query functions directly.
 */
#ifndef PGM_PGASYNC_H
#define PGM_PGASYNC_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "pg/connparams.h"

typedef struct pgm_pg_error {
	char sqlstate[6]; /* "" when the error is not from the server */
	char *message;    /* primary message, never NULL in an error */
	char *detail;
	char *hint;
	char *table; /* "schema.table" the error is about (a constraint, a row), or NULL */
} pgm_pg_error_t;

typedef struct pgm_pg_conn pgm_pg_conn_t;

/* err is NULL on success; conn is unusable after an error and is closed for you */
typedef void (*pgm_pg_connect_cb)(pgm_pg_conn_t *conn, const pgm_pg_error_t *err, void *data);
/*
 * res is the last result of the statement(s) (NULL on error); it is freed
 * when the callback returns. The callback may issue the next query or close
 * the connection.
 */
typedef void (*pgm_pg_result_cb)(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data);
/* COPY OUT: one chunk of data, or (chunk == NULL) the end with err/NULL */
typedef void (*pgm_pg_copy_out_cb)(pgm_pg_conn_t *conn, const char *chunk, int len, const pgm_pg_error_t *err,
				   void *data);

/*
 * Start connecting. net bounds the waits (NULL: only the attempt, 15 s):
 * connect_timeout the whole attempt, the keepalives and tcp_user_timeout
 * the TCP path, the statement and lock timeouts each statement on the
 * server, and their sum a statement from which nothing arrives
 * (pgm_pg_net_silence_ms); the DSN's own keywords win. A host name is
 * resolved on the loop's workers. Returns the handle at once; the callback
 * tells the outcome. The application_name is set so the sessions are
 * recognisable on the server.
 */
pgm_pg_conn_t *pgm_pg_connect(uv_loop_t *loop, const char *dsn, const char *app_name, const pgm_pg_net_t *net,
			      pgm_pg_connect_cb cb, void *data);

/* run one statement with parameters (or several without, when nparams == 0) */
bool pgm_pg_query(pgm_pg_conn_t *conn, const char *sql, int nparams, const char *const *params, pgm_pg_result_cb cb,
		  void *data);

/* COPY ... TO STDOUT: chunks stream to cb; pause with pgm_pg_copy_out_pause */
bool pgm_pg_copy_out(pgm_pg_conn_t *conn, const char *sql, pgm_pg_copy_out_cb cb, void *data);
void pgm_pg_copy_out_pause(pgm_pg_conn_t *conn, bool paused);

/* COPY ... FROM STDIN: start it; cb fires once the server is ready for data */
bool pgm_pg_copy_in_start(pgm_pg_conn_t *conn, const char *sql, pgm_pg_result_cb ready_cb, void *data);
/* queue data; returns false when the server refused (error reported at end) */
bool pgm_pg_copy_in_put(pgm_pg_conn_t *conn, const char *buf, int len);
/* bytes queued in libpq not yet sent (for back-pressure) */
bool pgm_pg_copy_in_backlogged(pgm_pg_conn_t *conn);
/* called when the backlog drains (for resuming a paused producer) */
void pgm_pg_copy_in_on_drain(pgm_pg_conn_t *conn, void (*cb)(pgm_pg_conn_t *, void *), void *data);
/* finish the COPY (errmsg != NULL aborts it); cb gets the final result */
bool pgm_pg_copy_in_end(pgm_pg_conn_t *conn, const char *errmsg, pgm_pg_result_cb cb, void *data);

/* ask the server to cancel the running statement (on a libuv worker: the loop never waits) */
void pgm_pg_cancel(pgm_pg_conn_t *conn);
/* close: no callback fires after this; memory is released by the loop */
void pgm_pg_close(pgm_pg_conn_t *conn);

bool pgm_pg_busy(const pgm_pg_conn_t *conn);
/* what the connection waits for: "host:port running \"SQL...\" for N s" (malloc'd); NULL when idle */
char *pgm_pg_describe_wait(const pgm_pg_conn_t *conn);
int pgm_pg_server_version(const pgm_pg_conn_t *conn);
int pgm_pg_backend_pid(const pgm_pg_conn_t *conn);
bool pgm_pg_ssl_in_use(const pgm_pg_conn_t *conn);
/* the host the connection went to (a directory for a Unix socket); "" when closed */
const char *pgm_pg_host(const pgm_pg_conn_t *conn);
/* a connection option as libpq resolved it ("sslmode" -> "require"), malloc'd; NULL when unset */
char *pgm_pg_conn_option(const pgm_pg_conn_t *conn, const char *keyword);

/* "message (detail) hint" style one-liner for logs (malloc'd) */
char *pgm_pg_error_string(const pgm_pg_error_t *err);

/*
 * What to do about an error the server gave no hint for, when its cause is
 * a common one: a missing privilege, a wrong password, a database that does
 * not exist, no connection slot left, a server not reachable, TLS refused.
 * NULL when there is nothing more specific to say than the caller's own hint.
 */
const char *pgm_pg_error_advice(const pgm_pg_error_t *err);

/* helpers to read a result */
const char *pgm_pg_value(const PGresult *res, int row, int col); /* NULL if null */
int64_t pgm_pg_int64(const PGresult *res, int row, int col, int64_t dflt);
int pgm_pg_ntuples(const PGresult *res);
/* the rows a command (INSERT, COPY ...) affected, as its tag says; -1 when it says none */
int64_t pgm_pg_cmd_rows(const PGresult *res);

#endif
