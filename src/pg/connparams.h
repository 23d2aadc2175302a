/*
 * connparams.h — what bounds a connection's waits, and the libpq keywords
 * that carry it: TCP keepalives, tcp_user_timeout, connect_timeout, the
 * statement and lock timeouts sent in the startup packet, and the
 * addresses resolved on the loop (hostaddr beside host). Whatever the
 * user's connection string sets itself wins. Pure: no I/O.
 */
#ifndef PGM_CONNPARAMS_H
#define PGM_CONNPARAMS_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

/* the bounds of one connection; 0 leaves a keyword unset (libpq's or the server's own) */
typedef struct pgm_pg_net {
	int64_t connect_timeout_ms;     /* the whole attempt, enforced on the loop (0: 15 s) */
	int64_t keepalives_idle_ms;     /* TCP keepalives: idle time before the first probe */
	int64_t keepalives_interval_ms; /* between probes */
	int64_t keepalives_count;       /* probes lost before the connection is dead */
	int64_t tcp_user_timeout_ms;    /* sent data unacknowledged this long: dead */
	bool bounded;                   /* SET the two below once connected; else the server's stay */
	int64_t statement_timeout_ms;   /* 0: none */
	int64_t lock_timeout_ms;        /* 0: none */
} pgm_pg_net_t;

/*
 * The bounds of a job's options (NULL: the defaults of the options table).
 * bounded: the statement_timeout and lock_timeout options apply too (the
 * states where a hung statement holds the freeze or the cutover); else the
 * server's own settings stay.
 */
void pgm_pg_net_from_options(const cJSON *options, bool bounded, pgm_pg_net_t *out);

/*
 * How long a running statement may go with nothing at all arriving from the
 * server before pgmover takes the connection for dead: the statement
 * timeout (the server would have sent its error by then) plus the time the
 * keepalives take to find a dead peer. 0: no such bound.
 */
int64_t pgm_pg_net_silence_ms(const pgm_pg_net_t *net);

#define PGM_CONN_KW_MAX 24

/* keyword/value arrays for PQconnectStartParams (expand_dbname = 1) */
typedef struct pgm_conn_kw {
	const char *keys[PGM_CONN_KW_MAX + 1];
	const char *vals[PGM_CONN_KW_MAX + 1];
	char *owned[PGM_CONN_KW_MAX]; /* values built here, freed by pgm_conn_kw_free */
	int n, nowned;
} pgm_conn_kw_t;

/*
 * Build the arrays: the bounds first, then dbname = the connection string
 * (libpq lets later keywords win, so the string's own settings override the
 * bounds), then application_name, then host and hostaddr when the name was
 * resolved (hostaddr: a comma-separated list of addresses, host repeated as
 * often, so TLS still verifies the name and every address is tried).
 */
void pgm_conn_kw_build(pgm_conn_kw_t *kw, const char *dsn, const pgm_pg_net_t *net, const char *app_name,
		       const char *host, const char *hostaddrs);
void pgm_conn_kw_free(pgm_conn_kw_t *kw);

/*
 * What a bounded session runs once connected (malloc'd; NULL: nothing):
 * SET statement_timeout and lock_timeout, each unless the string's own
 * options set it. A SET, not the startup packet's options, which pgbouncer
 * refuses.
 */
char *pgm_conn_bounds_sql(const char *dsn, const pgm_pg_net_t *net);

/*
 * The host name pgmover must resolve itself (malloc'd): the string names
 * one host, by name (not an address, not a socket directory), and no
 * hostaddr. NULL otherwise: libpq has nothing to look up, or looks up
 * several names itself.
 */
char *pgm_conn_host_to_resolve(const char *dsn);

/*
 * The connection as key=value conninfo for a child process (pg_dump,
 * pg_restore), without the password, with the keepalive, tcp_user_timeout
 * and connect_timeout keywords added where the string has none (malloc'd;
 * NULL when the string does not parse).
 */
char *pgm_conn_child_conninfo(const char *dsn, const pgm_pg_net_t *net);

#endif
