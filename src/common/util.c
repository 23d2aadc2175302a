/*
 * util.c — time, memory, and the durable file writes that state.json and
 * audit.jsonl rely on.
 */
#include "common/util.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int64_t
pgm_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
pgm_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
pgm_format_time(int64_t ms, char *buf, size_t len)
{
	time_t secs = (time_t) (ms / 1000);
	struct tm tm;
	char base[32];

	gmtime_r(&secs, &tm);
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%03dZ", base, (int) (ms % 1000));
}

int64_t
pgm_parse_time(const char *s)
{
	struct tm tm;
	int msec = 0;
	char *rest;

	if (s == NULL)
		return -1;
	memset(&tm, 0, sizeof(tm));
	rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (rest == NULL)
		return -1;
	if (*rest == '.' && sscanf(rest + 1, "%3d", &msec) != 1)
		return -1;
	return (int64_t) timegm(&tm) * 1000 + msec;
}

void *
pgm_malloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL) {
		pgm_error("out of memory allocating %zu bytes", n);
		abort();
	}
	return p;
}

void *
pgm_calloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL) {
		pgm_error("out of memory allocating %zu bytes", n * size);
		abort();
	}
	return p;
}

void *
pgm_realloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (q == NULL) {
		pgm_error("out of memory allocating %zu bytes", n);
		abort();
	}
	return q;
}

char *
pgm_strdup(const char *s)
{
	size_t n;
	char *d;

	if (s == NULL)
		return NULL;
	n = strlen(s) + 1;
	d = pgm_malloc(n);
	memcpy(d, s, n);
	return d;
}

char *
pgm_asprintf(const char *fmt, ...)
{
	va_list ap;
	char *out = NULL;
	int n;

	/*
	 * vasprintf, not vsnprintf(NULL, 0, ...) twice: GCC 12 under
	 * -fsanitize=undefined flags the NULL buffer as a "null format string"
	 * (-Wformat-truncation), which breaks the sanitizer build with werror.
	 */
	va_start(ap, fmt);
	n = vasprintf(&out, fmt, ap);
	va_end(ap);
	if (n < 0) {
		pgm_error("out of memory formatting a message");
		abort();
	}
	return out;
}

void
pgm_buf_append(pgm_buf_t *b, const char *text)
{
	size_t n = strlen(text);

	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->s = pgm_realloc(b->s, b->cap);
	}
	memcpy(b->s + b->len, text, n + 1);
	b->len += n;
}

void
pgm_buf_appendf(pgm_buf_t *b, const char *fmt, ...)
{
	va_list ap;
	char *text;

	va_start(ap, fmt);
	if (vasprintf(&text, fmt, ap) < 0) {
		pgm_error("out of memory formatting a string");
		abort();
	}
	va_end(ap);
	pgm_buf_append(b, text);
	free(text);
}

/* double every quote character and wrap the text in it */
static char *
quote_with(const char *s, char q)
{
	size_t n = 2;
	char *out, *o;

	for (const char *p = s; *p; p++)
		n += (*p == q) ? 2 : 1;
	out = o = pgm_malloc(n + 1);
	*o++ = q;
	for (const char *p = s; *p; p++) {
		if (*p == q)
			*o++ = q;
		*o++ = *p;
	}
	*o++ = q;
	*o = '\0';
	return out;
}

char *
pgm_quote_ident(const char *s)
{
	return quote_with(s ? s : "", '"');
}

/* standard_conforming_strings is on in every supported server: '' escapes ' */
char *
pgm_quote_literal(const char *s)
{
	return quote_with(s ? s : "", '\'');
}

bool
pgm_name_valid(const char *name)
{
	size_t n;

	if (name == NULL)
		return false;
	n = strlen(name);
	if (n == 0 || n > 63)
		return false;
	if (name[0] == '-' || name[0] == '_')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
		      c == '-'))
			return false;
	}
	return true;
}

bool
pgm_mkdir_p(const char *path, int mode)
{
	char buf[4096];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return false;
	}
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, (mode_t) mode) != 0 && errno != EEXIST)
			return false;
		*p = '/';
	}
	if (mkdir(buf, (mode_t) mode) != 0 && errno != EEXIST)
		return false;
	return true;
}

/* fsync the directory holding path, so a rename or create in it is durable */
static bool
fsync_parent(const char *path)
{
	char *copy = pgm_strdup(path);
	int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
	bool ok = fd >= 0 && fsync(fd) == 0;

	if (fd >= 0)
		close(fd);
	free(copy);
	return ok;
}

static bool
write_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, data, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return false;
		}
		data += w;
		len -= (size_t) w;
	}
	return true;
}

bool
pgm_file_replace(const char *path, const char *data, size_t len, int mode)
{
	char *tmp = pgm_asprintf("%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, (mode_t) mode);
	bool ok = false;

	if (fd < 0)
		goto cleanup;
	if (!write_all(fd, data, len) || fsync(fd) != 0) {
		close(fd);
		unlink(tmp);
		goto cleanup;
	}
	if (close(fd) != 0 || rename(tmp, path) != 0) {
		unlink(tmp);
		goto cleanup;
	}
	ok = fsync_parent(path);
cleanup:
	free(tmp);
	return ok;
}

bool
pgm_file_append_line(const char *path, const char *data, int mode)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	size_t len = strlen(data);
	bool created = false;
	char *line;
	bool ok;

	/* a file created here is durable only once its directory entry is */
	if (fd < 0 && errno == ENOENT) {
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, (mode_t) mode);
		created = fd >= 0;
	}
	if (fd < 0)
		return false;
	line = pgm_malloc(len + 1);
	memcpy(line, data, len);
	line[len] = '\n';
	ok = write_all(fd, line, len + 1) && fsync(fd) == 0;
	free(line);
	if (close(fd) != 0)
		ok = false;
	if (ok && created)
		ok = fsync_parent(path);
	return ok;
}

char *
pgm_file_read(const char *path, size_t max, size_t *len_out)
{
	FILE *f = fopen(path, "re");
	char *buf;
	size_t cap = 4096, len = 0;

	if (f == NULL)
		return NULL;
	buf = pgm_malloc(cap + 1);
	for (;;) {
		size_t r;
		if (len == cap) {
			if (cap >= max) {
				free(buf);
				fclose(f);
				errno = EFBIG;
				return NULL;
			}
			cap *= 2;
			buf = pgm_realloc(buf, cap + 1);
		}
		r = fread(buf + len, 1, cap - len, f);
		len += r;
		if (r == 0)
			break;
	}
	if (ferror(f)) {
		free(buf);
		fclose(f);
		errno = EIO;
		return NULL;
	}
	fclose(f);
	buf[len] = '\0';
	if (len_out)
		*len_out = len;
	return buf;
}

static int
rmtree_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void) st;
	(void) flag;
	(void) ftw;
	return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

bool
pgm_rmtree(const char *path)
{
	struct stat st;

	if (lstat(path, &st) != 0)
		return errno == ENOENT;
	return nftw(path, rmtree_cb, 16, FTW_DEPTH | FTW_PHYS) == 0;
}
