/*
 * sequences.h — raise every sequence on one side to at least the other
 * side's value (never behind: IDs must not collide once writes move):
 * cutover and rollback (the flows) and the pglogical drain
 */
#ifndef PGM_SEQUENCES_H
#define PGM_SEQUENCES_H

#include "pipeline/sql.h"

typedef struct pgm_seq_raised {
	int64_t checked;     /* sequences read on the other side */
	int64_t raised;      /* of those, set here because they were behind */
	const char *missing; /* the ones this side lacks ("a.b, c.d"), or NULL */
} pgm_seq_raised_t;
typedef void (*pgm_seq_raised_cb)(pgm_step_t *s, const pgm_seq_raised_t *r, void *data);

/*
 * Add to a script on the side read: its sequences' values go to *values
 * (malloc'd JSON, replacing what was there; the caller frees it).
 */
void pgm_sequences_read(pgm_sql_t *q, char **values);
/*
 * Add to a script on the side raised: each sequence behind `values`, in
 * the direction it counts here, set to the value read; then cb (from the
 * row callback: it may pgm_sql_abort, or start the next script).
 */
void pgm_sequences_raise(pgm_sql_t *q, const char *values, pgm_seq_raised_cb cb, void *data);

#endif
