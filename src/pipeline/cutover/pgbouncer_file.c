/*
 * pgbouncer_file.c — the include file pgmover owns for pgbouncer: read it,
 * rewrite the application's [databases] entry for another server, and
 * write it atomically (new file, fsync, rename, fsync of the directory)
 * with the owner and mode of the file it replaces, since pgbouncer usually
 * runs as another user.
 *
 * The entry's value is parsed as pgbouncer parses it (key=value pairs,
 * values optionally in single quotes with '' for a quote); host, port,
 * dbname, user and password come from the new DSN, every other parameter
 * (pool_size, pool_mode, connect_query...) is kept.
 */
#include "common/util.h"
#include "pg/dsn.h"
#include "pipeline/cutover/pgbouncer.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

bool
pgm_pgb_write_like(const char *path, const char *like, const char *data, char **err)
{
	struct stat st;
	char *tmp = pgm_asprintf("%s.pgmover-tmp", path), *dcopy = pgm_strdup(path);
	size_t len = strlen(data), off = 0;
	int fd, dfd;
	bool ok = false;

	if (stat(like, &st) != 0) {
		st.st_mode = 0600;
		st.st_uid = geteuid();
		st.st_gid = getegid();
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		goto out;
	if ((fchown(fd, st.st_uid, st.st_gid) != 0 && geteuid() == 0) || fchmod(fd, st.st_mode & 07777) != 0)
		goto out_close;
	while (off < len) {
		ssize_t w = write(fd, data + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			goto out_close;
		off += (size_t) w;
	}
	if (fsync(fd) != 0)
		goto out_close;
	if (close(fd) != 0) {
		fd = -1;
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) != 0)
		goto out;
	dfd = open(dirname(dcopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void) fsync(dfd);
		close(dfd);
	}
	ok = true;
out_close:
	if (fd >= 0)
		close(fd);
out:
	if (!ok) {
		*err = pgm_asprintf("could not write \"%s\": %s", path, strerror(errno));
		unlink(tmp);
	}
	free(tmp);
	free(dcopy);
	return ok;
}

char *
pgm_pgb_read(const char *path, char **err)
{
	size_t len;
	char *t = pgm_file_read(path, 1 << 20, &len);

	if (t == NULL)
		*err = pgm_asprintf("could not read \"%s\": %s", path, strerror(errno));
	return t;
}

/* ---- the [databases] entry ---- */

static const char *entry_keys[] = {"host", "port", "dbname", "user", "password", NULL};

/* append key='value' with pgbouncer's quoting ('' for a quote) */
static void
put_pair(char **line, const char *key, const char *val)
{
	size_t n = strlen(*line), need = strlen(key) + 2 * strlen(val) + 5;
	char *p;

	*line = pgm_realloc(*line, n + need);
	p = *line + n;
	p += sprintf(p, "%s%s='", n && (*line)[n - 1] != ' ' ? " " : "", key);
	for (const char *v = val; *v; v++) {
		if (*v == '\'')
			*p++ = '\'';
		*p++ = *v;
	}
	*p++ = '\'';
	*p = '\0';
}

/*
 * Parse "key=value key='quoted value' ..." as pgbouncer does; returns false
 * on a syntax error. cb gets each pair.
 */
static bool
each_pair(const char *s, void (*cb)(const char *k, const char *v, void *d), void *d)
{
	char *buf = pgm_strdup(s), *p = buf;
	bool ok = true;

	for (;;) {
		char *key, *val;

		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		key = p;
		while (*p && *p != '=' && *p != ' ')
			p++;
		while (*p == ' ')
			*p++ = '\0';
		if (*p != '=' || key == p) {
			ok = false;
			break;
		}
		*p++ = '\0';
		while (*p == ' ')
			p++;
		if (*p == '\'') {
			char *w = val = ++p;
			for (;;) {
				if (*p == '\0') {
					ok = false;
					break;
				}
				if (*p == '\'' && p[1] != '\'')
					break;
				if (*p == '\'')
					p++;
				*w++ = *p++;
			}
			if (!ok)
				break;
			*w = '\0';
			p++;
		} else {
			val = p;
			while (*p && *p != ' ')
				p++;
			if (*p)
				*p++ = '\0';
		}
		cb(key, val, d);
	}
	free(buf);
	return ok;
}

static void
keep_other_pair(const char *k, const char *v, void *d)
{
	for (int i = 0; entry_keys[i]; i++)
		if (strcmp(k, entry_keys[i]) == 0)
			return;
	put_pair(d, k, v);
}

/* how many lines under [databases] define `database` */
static int
count_entries(const char *file, const char *database)
{
	bool in_databases = true;
	int n = 0;

	for (const char *line = file; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		const char *p = line;
		const char *eol = strchr(line, '\n');
		size_t klen;

		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '[')
			in_databases = strncmp(p, "[databases]", 11) == 0;
		klen = strcspn(p, " \t=\n");
		if (in_databases && klen == strlen(database) && strncmp(p, database, klen) == 0) {
			const char *eq = strchr(p, '=');
			if (eq && (eol == NULL || eq < eol))
				n++;
		}
	}
	return n;
}

char *
pgm_pgb_rewrite(const char *file, const char *database, const char *dsn, char **err)
{
	pgm_dsn_t d;
	char *out = pgm_strdup(""), *copy = pgm_strdup(file), *line, *next;
	bool in_databases = true, found = false;
	size_t olen = 0;
	int want, seen = 0;

	if (!pgm_dsn_parse(dsn, &d, err)) {
		free(out);
		free(copy);
		return NULL;
	}
	/* pgbouncer keeps the last definition of a name: that one is rewritten */
	want = count_entries(file, database);
	for (line = copy; line; line = next) {
		char *nl = strchr(line, '\n'), *p = line, *add;
		size_t klen, len;
		bool cr;

		next = nl ? nl + 1 : NULL;
		if (nl)
			*nl = '\0';
		/* a CRLF file keeps its line ends; the CR is not part of the last value */
		len = strlen(line);
		cr = len > 0 && line[len - 1] == '\r';
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '[')
			in_databases = strncmp(p, "[databases]", 11) == 0;
		klen = strcspn(p, " \t=");
		if (in_databases && !found && klen == strlen(database) && strncmp(p, database, klen) == 0 &&
		    strchr(p, '=') != NULL && ++seen == want) {
			char *pairs = pgm_strdup("");

			found = true;
			if (cr)
				line[len - 1] = '\0';
			if (d.host)
				put_pair(&pairs, "host", d.host);
			put_pair(&pairs, "port", d.port ? d.port : "5432");
			put_pair(&pairs, "dbname", d.dbname ? d.dbname : (d.user ? d.user : database));
			if (d.user)
				put_pair(&pairs, "user", d.user);
			if (d.password)
				put_pair(&pairs, "password", d.password);
			if (!each_pair(strchr(p, '=') + 1, keep_other_pair, &pairs)) {
				*err = pgm_asprintf("the entry \"%s\" in the include file is not valid for pgbouncer",
						    database);
				free(pairs);
				found = false;
				break;
			}
			add = pgm_asprintf("%s = %s%s%s", database, pairs, cr ? "\r" : "", next ? "\n" : "");
			free(pairs);
		} else {
			add = pgm_asprintf("%s%s", line, next ? "\n" : "");
		}
		out = pgm_realloc(out, olen + strlen(add) + 1);
		memcpy(out + olen, add, strlen(add) + 1);
		olen += strlen(add);
		free(add);
	}
	if (d.password)
		memset(d.password, 0, strlen(d.password));
	pgm_dsn_free(&d);
	free(copy);
	if (!found) {
		if (*err == NULL)
			*err = pgm_asprintf("no entry \"%s\" under [databases] in the include file", database);
		free(out);
		return NULL;
	}
	return out;
}
