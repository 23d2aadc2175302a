/*
 * util.h — small helpers shared by every part: time, files written the
 * durable way, bounded string formatting.
 */
#ifndef PGM_UTIL_H
#define PGM_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PGM_MUST_CHECK __attribute__((warn_unused_result))
#define PGM_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* wall-clock milliseconds since the epoch (UTC) */
int64_t pgm_now_ms(void);
/* monotonic milliseconds, for durations */
int64_t pgm_mono_ms(void);
/* "2026-11-21T05:06:11.123Z" into buf (at least 32 bytes) */
void pgm_format_time(int64_t ms, char *buf, size_t len);
/* parse what pgm_format_time wrote; -1 when malformed */
int64_t pgm_parse_time(const char *s);

/* malloc that never returns NULL: out of memory aborts */
void *pgm_malloc(size_t n);
void *pgm_calloc(size_t n, size_t size);
void *pgm_realloc(void *p, size_t n);
char *pgm_strdup(const char *s);
char *pgm_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* a growing string (s is NUL-terminated, or NULL before the first append) */
typedef struct pgm_buf {
	char *s;
	size_t len, cap;
} pgm_buf_t;
void pgm_buf_append(pgm_buf_t *b, const char *text);
void pgm_buf_appendf(pgm_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* SQL quoting for names and values built into statements (malloc'd) */
char *pgm_quote_ident(const char *s);
char *pgm_quote_literal(const char *s);

/* job names: 1..63 of [A-Za-z0-9_-], starting with a letter or digit */
bool pgm_name_valid(const char *name);

/* mkdir -p with the given mode for the directories it creates */
bool pgm_mkdir_p(const char *path, int mode) PGM_MUST_CHECK;

/*
 * Replace path with data: write path.tmp, fsync, rename over path, fsync the
 * directory. A crash leaves either the old or the new file, never a mix.
 */
bool pgm_file_replace(const char *path, const char *data, size_t len, int mode) PGM_MUST_CHECK;
/* append one line (data + '\n') and fsync before returning */
bool pgm_file_append_line(const char *path, const char *data, int mode) PGM_MUST_CHECK;
/* remove a directory tree (like rm -rf); true when it is gone */
bool pgm_rmtree(const char *path);
/* read a whole file; NULL (errno set) on failure; *len_out gets the size */
char *pgm_file_read(const char *path, size_t max, size_t *len_out);

#endif
