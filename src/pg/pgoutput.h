/*
 * pgoutput.h — logical replication protocol version 1 (the built-in
 * pgoutput plugin) decoded into SQL for another server; pure, no I/O
 */
#ifndef PGM_PGOUTPUT_H
#define PGM_PGOUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- pgoutput (pgoutput.c): protocol version 1 messages to SQL for the source ---- */

typedef struct pgm_pgo pgm_pgo_t;

#define PGM_PGO_CHUNK 1000 /* changes per PL/pgSQL block: its plans stay in memory until it ends */
/*
 * ... and at most about this many bytes of SQL: a chunk closes after the
 * change that reaches it, so a block is under twice this unless one row's
 * SQL alone is larger (the server refuses a statement of 1 GB or more)
 */
#define PGM_PGO_CHUNK_BYTES (4 * 1024 * 1024)

typedef struct pgm_pgo_txn {
	uint64_t commit_lsn; /* of the commit record (Begin's final LSN) */
	uint64_t end_lsn;    /* just past it: where the slot may advance to */
	uint32_t xid;
	int64_t commit_time; /* microseconds since 2000-01-01 */
	int changes;         /* rows inserted, updated, deleted; truncates */
	char **chunks;       /* the statements for the source, PGM_PGO_CHUNK changes (or _BYTES) each */
	int nchunks;         /* 0: nothing of it is published */
} pgm_pgo_txn_t;

void pgm_pgo_txn_clear(pgm_pgo_txn_t *t);

/* a DO block around statements, with a dollar-quote tag none of them holds (malloc'd) */
char *pgm_pgo_do_block(const char *prologue, const char *body, const char *epilogue);

pgm_pgo_t *pgm_pgo_new(void);
void pgm_pgo_free(pgm_pgo_t *p);
/*
 * Feed one message (the bytes of one row of pg_logical_slot_peek_binary_changes).
 * When it completes a transaction, *txn is filled (pgm_pgo_txn_clear frees it)
 * and 1 is returned; 0 when more is needed; -1 with *err on a malformed message.
 */
int pgm_pgo_feed(pgm_pgo_t *p, const uint8_t *msg, size_t len, pgm_pgo_txn_t *txn, char **err);
/*
 * A large transaction need not be held whole: the first of its chunks
 * already complete (malloc'd), NULL when none is; what is left goes into
 * the txn at its Commit.
 */
char *pgm_pgo_take_chunk(pgm_pgo_t *p);
int pgm_pgo_chunks_ready(const pgm_pgo_t *p);
/* the transaction being read, from its Begin message; false between transactions */
bool pgm_pgo_current(const pgm_pgo_t *p, uint64_t *commit_lsn, int64_t *commit_time, uint32_t *xid);
/*
 * What the source's foreign keys do by themselves to the rows of table
 * nsp.name (unquoted names), given before the changes are fed: cascaded,
 * an ON DELETE CASCADE may delete its rows before the target's DELETE of
 * them arrives; cols, the columns an ON UPDATE CASCADE, SET NULL or SET
 * DEFAULT action may set before the target's UPDATE of them arrives.
 */
void pgm_pgo_fk_rule(pgm_pgo_t *p, const char *nsp, const char *name, bool cascaded, const char *const *cols,
		     int ncols);
/* bytea text output ("\x0a1b...") to bytes (malloc'd); NULL when malformed */
uint8_t *pgm_pgo_unhex(const char *text, size_t *len);

#endif
