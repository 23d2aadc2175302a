/*
 * toc.h — what pg_restore says about an archive, read without I/O: the
 * lines of `pg_restore --list` (the table of contents) and of the script
 * of `pg_restore --data-only --file=-` (COPY blocks, large objects) are
 * fed one at a time; out come the entries, the rows of each COPY block,
 * the large objects, or an error that says what to do
 */
#ifndef PGM_TOC_H
#define PGM_TOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* what went wrong and what to do about it (both malloc'd) */
typedef struct pgm_toc_err {
	char *message;
	char *hint;
} pgm_toc_err_t;

/* pg_restore --list */
typedef struct pgm_toc_list {
	char *dbname, *created_at, *format, *dumped_from, *dumped_by; /* the header's; NULL when absent */
	char **data; /* each TABLE DATA entry, in order: "SCHEMA TAG OWNER" as listed */
	size_t ndata, capdata;
	int entries; /* every entry line */
} pgm_toc_list_t;

/* a COPY block of the script: the table as written (quoted where needed), and its rows */
typedef struct pgm_toc_copy {
	char *name;           /* "public."Odd (x)"": safe to put in SQL as it is */
	char *schema, *table; /* the same, unquoted */
	int64_t rows;
} pgm_toc_copy_t;

/* a large object: lo_open('OID') then the bytes of its lowrite() calls */
typedef struct pgm_toc_lo {
	uint32_t oid;
	int64_t bytes;
} pgm_toc_lo_t;

typedef struct pgm_toc_los {
	pgm_toc_lo_t *v;
	size_t n, cap;
} pgm_toc_los_t;

/* pg_restore --data-only --file=- */
typedef struct pgm_toc_script {
	pgm_toc_copy_t *copies;
	size_t ncopies, capcopies;
	pgm_toc_los_t los;
	char *header;   /* a COPY statement whose quoted name goes on past the line */
	char *via_root; /* the last "-- load via partition root NAME" comment */
	bool in_copy;   /* between a COPY header and its \. */
	bool in_lo;     /* between lo_open() and lo_close() */
	bool failed;    /* an error was returned: the rest is not read */
} pgm_toc_script_t;

/* one line of each (no newline); false with *err set when it cannot be read */
bool pgm_toc_list_line(pgm_toc_list_t *l, const char *line, pgm_toc_err_t *err);
bool pgm_toc_script_line(pgm_toc_script_t *sc, const char *line, pgm_toc_err_t *err);
/* after the last line: a COPY block or statement left open is an error */
bool pgm_toc_script_end(pgm_toc_script_t *sc, pgm_toc_err_t *err);
/* each TABLE DATA entry of the listing has its COPY block, in order, and no COPY block is unlisted */
bool pgm_toc_check(const pgm_toc_list_t *l, const pgm_toc_script_t *sc, pgm_toc_err_t *err);

/*
 * A COPY statement as pg_dump writes it: COPY SCHEMA.TABLE (COLUMNS) FROM stdin;
 * 1 and the names set (malloc'd), 0 when a quoted name is still open at the
 * end (a newline in it: the statement goes on), -1 when it is no such statement.
 */
int pgm_toc_parse_copy(const char *stmt, char **name, char **schema, char **table);

pgm_toc_lo_t *pgm_toc_lo_push(pgm_toc_los_t *l, uint32_t oid);
void pgm_toc_los_sort(pgm_toc_los_t *l);

void pgm_toc_list_free(pgm_toc_list_t *l);
void pgm_toc_script_free(pgm_toc_script_t *sc);
void pgm_toc_err_free(pgm_toc_err_t *err);

#endif
