/*
 * log.c — one line per message on stderr, prefixed with the syslog
 * priority so journald (and anything reading the unit's output) keeps it,
 * with passwords masked.
 */
#include "common/log.h"
#include "common/redact.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pgm_log_level_t log_level = PGM_LOG_INFO;

static const struct {
	const char *name;
	pgm_log_level_t level;
} level_names[] = {{"error", PGM_LOG_ERROR}, {"warning", PGM_LOG_WARNING}, {"notice", PGM_LOG_NOTICE},
		   {"info", PGM_LOG_INFO},   {"debug", PGM_LOG_DEBUG},     {NULL, 0}};

void
pgm_log_set_level(pgm_log_level_t level)
{
	log_level = level;
}

pgm_log_level_t
pgm_log_get_level(void)
{
	return log_level;
}

bool
pgm_log_level_parse(const char *name, pgm_log_level_t *out)
{
	for (int i = 0; level_names[i].name; i++) {
		if (strcmp(level_names[i].name, name) == 0) {
			*out = level_names[i].level;
			return true;
		}
	}
	return false;
}

const char *
pgm_log_level_name(pgm_log_level_t level)
{
	for (int i = 0; level_names[i].name; i++)
		if (level_names[i].level == level)
			return level_names[i].name;
	return "info";
}

/*
 * The message is formatted into one buffer, its passwords masked
 * (pgm_redact: a server's error or a hook's line may quote a connection
 * string), and written with a single fputs so concurrent writers never
 * interleave within a line.
 */
void
pgm_log(pgm_log_level_t level, const char *fmt, ...)
{
	static __thread bool in_log; /* out of memory while masking logs without masking */
	char buf[4096], *masked = NULL;
	int n;
	va_list ap;

	if (level > log_level)
		return;
	n = snprintf(buf, sizeof(buf), "<%d>", (int) level);
	va_start(ap, fmt);
	vsnprintf(buf + n, sizeof(buf) - (size_t) n - 1, fmt, ap);
	va_end(ap);
	/* one line per message: newlines inside become spaces */
	for (char *p = buf + n; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	strcat(buf, "\n");
	if (!in_log) {
		in_log = true;
		masked = pgm_redact(buf);
		in_log = false;
	}
	fputs(masked ? masked : buf, stderr);
	fflush(stderr);
	free(masked);
}
