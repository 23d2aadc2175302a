/*
 * log.h — logging to stderr with syslog priority prefixes ("<3>", "<6>" ...)
 * so that journald keeps the level of every line.
 */
#ifndef PGM_LOG_H
#define PGM_LOG_H

#include <stdbool.h>

typedef enum pgm_log_level {
	PGM_LOG_ERROR = 3,   /* syslog LOG_ERR */
	PGM_LOG_WARNING = 4, /* LOG_WARNING */
	PGM_LOG_NOTICE = 5,  /* LOG_NOTICE */
	PGM_LOG_INFO = 6,    /* LOG_INFO */
	PGM_LOG_DEBUG = 7    /* LOG_DEBUG */
} pgm_log_level_t;

void pgm_log_set_level(pgm_log_level_t level);
pgm_log_level_t pgm_log_get_level(void);
bool pgm_log_level_parse(const char *name, pgm_log_level_t *out);
const char *pgm_log_level_name(pgm_log_level_t level);

void pgm_log(pgm_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define pgm_error(...) pgm_log(PGM_LOG_ERROR, __VA_ARGS__)
#define pgm_warning(...) pgm_log(PGM_LOG_WARNING, __VA_ARGS__)
#define pgm_notice(...) pgm_log(PGM_LOG_NOTICE, __VA_ARGS__)
#define pgm_info(...) pgm_log(PGM_LOG_INFO, __VA_ARGS__)
#define pgm_debug(...) pgm_log(PGM_LOG_DEBUG, __VA_ARGS__)

#endif
