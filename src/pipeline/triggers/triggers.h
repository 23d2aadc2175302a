/*
 * triggers.h — what the files of the triggers method share.
 *
 * Change capture for sources that give their owner neither a superuser
 * nor logical decoding (Heroku): pgmover's schema on the source holds a
 * log table per captured table, filled by triggers that run as pgmover's
 * role (SECURITY DEFINER), and a registry of the captured tables.
 *
 *   capture.c   install the schema, log tables, functions and triggers
 *               (each batch recorded before it is made), and remove them
 *   apply.c     one apply round: a snapshot S of the source; for every
 *               table with logged changes not yet applied, the current
 *               rows of its changed keys read in S replace them on the
 *               target (tables without a key: the net change of each row
 *               image, which commutes); progress stored with the changes
 *   method.c    the method's table: sync (initial copy, then rounds until
 *               caught up), synced (rounds, lag, schema changes), freeze
 *               (freeze, drain, sequences, the deferred constraints)
 *
 * Why the result is the source's exact state, whatever the commit order:
 * a keyed table's log holds keys only, and a round reads the rows of those
 * keys as the snapshot S shows them: after it, every key changed by a
 * transaction visible in S has on the target its value in S, and every
 * other key still has the value the copy (or an earlier round) gave it,
 * which S shows too. Rows are re-read, so replaying a key twice is
 * harmless. A table without a key logs row images: a change is -1 of the
 * old image and +1 of the new one, and the multiset of a table's rows is
 * its copy plus the sum of its deltas, in any order; so each image's net
 * count is applied, and the deltas of exactly the transactions applied are
 * removed (progress is the snapshot, stored on the target in the same
 * transaction as the changes). A change belongs to the initial copy exactly
 * when its transaction is visible in the copy's snapshot.
 */
#ifndef PGM_TRIGGERS_H
#define PGM_TRIGGERS_H

#include <stdbool.h>
#include <stdint.h>

#include "fsm/job.h"

/* artifact kinds */
#define TRG_KIND_SCHEMA "capture_schema"     /* the schema; its tables and functions go with it */
#define TRG_KIND_TRIGGERS "capture_triggers" /* the triggers of a batch of tables ("tables": [ids]) */
#define TRG_KIND_TARGET "apply_progress"     /* the progress schema on the target */

/* names of the triggers pgmover creates: pg_restore lists are filtered on this prefix */
#define TRG_TRIGGER_PREFIX "pgmover_capture_"

/* the schema's name, unquoted and quoted (malloc'd) */
char *trg_schema(const pgm_job_t *job);
char *trg_schema_q(const pgm_job_t *job);

/* a captured table, as the source's registry holds it */
typedef struct trg_table {
	int64_t relid; /* its OID: the log is k<relid> (keyed) or r<relid> */
	char *ident;   /* "schema"."table" */
	char *name;    /* schema.table, for messages */
	char *cols;    /* quoted columns without generated ones */
	char *keycols; /* quoted key columns, or NULL: no key (row images) */
	char *fp;      /* fingerprint of its columns, for schema changes */
	char *sel;     /* the columns, key ones as l.k, others as t.c (keyed tables) */
	char *keyjoin; /* t.k1 = l.k1 AND ... */
	char *rsel;    /* the columns as r.c (tables without a key) */
} trg_table_t;

void trg_tables_free(trg_table_t *t, int n);

/* capture.c */
void trg_capture_install(pgm_step_t *s, void (*then)(pgm_step_t *s));
/* drop every trigger, function and the schema (small transactions, lock_timeout) */
void trg_capture_remove(pgm_step_t *s, bool strict, void (*then)(pgm_step_t *s));
/* the SQL listing the tables in scope on the source, with their keys and fingerprints */
extern const char *const trg_scope_sql;

/*
 * apply.c: rounds of apply. mode ROUND_CATCHUP ends the step's wait (then)
 * once a round leaves at most `catchup_rows` behind; ROUND_FOLLOW never
 * ends (synced); ROUND_DRAIN ends once a round taken after the freeze left
 * nothing behind.
 */
typedef enum trg_mode {
	TRG_CATCHUP,
	TRG_FOLLOW,
	TRG_DRAIN,
} trg_mode_t;
void trg_apply_run(pgm_step_t *s, trg_mode_t mode, void (*then)(pgm_step_t *s));

#endif
