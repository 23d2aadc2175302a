/*
 * audit.h — the audit trail's hash chain: every line of audit.jsonl carries,
 * as "prev", the SHA-256 (hex) of the previous line's bytes (without its
 * newline); the first line carries the hash of the job's genesis text. The
 * daemon keeps the head (the hash the next line will carry) per job; the
 * check reads a whole trail and names the first line that is broken.
 */
#ifndef PGM_AUDIT_H
#define PGM_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/util.h"

#define PGM_AUDIT_HASH_HEX 65 /* 64 hex digits and the NUL */

typedef struct pgm_job pgm_job_t;

/* SHA-256 of len bytes, as 64 lower-case hex digits */
void pgm_audit_hash(const char *data, size_t len, char out[PGM_AUDIT_HASH_HEX]);
/*
 * What the first line's "prev" is the hash of (malloc'd):
 * "pgmover audit trail of job NAME created at 2026-12-03T07:30:24.123Z"
 */
char *pgm_audit_genesis_text(const char *job, int64_t created_ms);
void pgm_audit_genesis(const char *job, int64_t created_ms, char out[PGM_AUDIT_HASH_HEX]);

/* what pgm_audit_check found */
typedef struct pgm_audit_check {
	bool intact;                       /* every line chained and in order */
	int lines;                         /* lines in the trail (a torn last one counted) */
	int unchained;                     /* leading lines without "prev" (written before the chain) */
	int broken_line;                   /* the first broken line, 1-based; 0 when none */
	char *reason;                      /* what is wrong with it (malloc'd), or NULL */
	char expected[PGM_AUDIT_HASH_HEX]; /* what should be there (empty when not a hash) */
	char found[PGM_AUDIT_HASH_HEX];    /* what is there */
	char head[PGM_AUDIT_HASH_HEX];     /* intact: the last line's hash, what the next carries */
} pgm_audit_check_t;

/*
 * Verify a whole trail (len bytes of buf) against the genesis hash. A link
 * that does not hold names the line that changed: the earlier of the two
 * when the later one is itself consistent with what follows (its bytes were
 * not touched), otherwise the later one (its "prev" was changed, or lines
 * were removed, inserted or moved before it). False when not intact.
 */
bool pgm_audit_check(const char *buf, size_t len, const char *genesis, pgm_audit_check_t *r);
void pgm_audit_check_free(pgm_audit_check_t *r);

/*
 * Find the job's head from the last line of its audit.jsonl (the genesis
 * when there is none). A torn last line (no newline: a crash while it was
 * written, never acknowledged) is cut off and *note says so (malloc'd).
 * False (errno set) when the file could not be read or repaired.
 */
bool pgm_audit_recover(pgm_job_t *job, char **note) PGM_MUST_CHECK;

#endif
