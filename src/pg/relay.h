/*
 * relay.h — one COPY ... TO STDOUT on one connection streamed into one
 * COPY ... FROM STDIN on another, through a fixed buffer: reading pauses
 * while libpq holds unsent data for the target, so memory does not grow
 * with the rows relayed. Pure pgasync, no job or step.
 */
#ifndef PGM_RELAY_H
#define PGM_RELAY_H

#include <stdbool.h>
#include <stdint.h>

#include "pg/pgasync.h"

typedef struct pgm_relay pgm_relay_t;

/*
 * The relay ended: err NULL when both sides finished (bytes relayed in
 * *bytes), else the first error and whether it came from the source. The
 * relay is freed after the callback returns; both connections are usable
 * again only on success.
 */
typedef void (*pgm_relay_done_cb)(pgm_relay_t *r, int64_t bytes, const pgm_pg_error_t *err, bool from_source,
				  void *data);

/* start COPY IN on dst, then COPY OUT on src; NULL when a query could not be sent */
pgm_relay_t *pgm_relay_start(pgm_pg_conn_t *src, const char *copy_out_sql, pgm_pg_conn_t *dst, const char *copy_in_sql,
			     pgm_relay_done_cb cb, void *data);

#endif
