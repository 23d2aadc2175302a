/*
 * toc.c — the reading of what pg_restore prints about an archive, apart
 * from the processes that print it (archive.c):
 *
 *   pg_restore --list            the header (database, format, versions) and
 *                                the entries, "ID; CATALOG OID DESC SCHEMA TAG
 *                                OWNER", names with newlines shown as spaces;
 *   pg_restore --data-only -f -  the script: per TABLE DATA entry, in the
 *                                listing's order, "COPY SCHEMA.TABLE (COLUMNS)
 *                                FROM stdin;", a line per row, "\."; per large
 *                                object lo_open('OID'), lowrite(0, '\x...')
 *                                per 16 KB, lo_close(0).
 *
 * A name pg_dump quotes may hold anything, a newline too: the COPY statement
 * then goes on over the next line. Every COPY statement is read whole or is
 * an error, and the script's blocks are matched to the listing's entries one
 * for one: a block that was not understood is never a table left uncounted.
 */
#include "pipeline/archive/toc.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

/* a COPY statement that goes on for more than this is not one pg_dump wrote */
#define HEADER_MAX ((size_t) 1 << 20)

static bool
fail(pgm_toc_err_t *err, char *message, const char *hint)
{
	err->message = message;
	err->hint = pgm_strdup(hint);
	return false;
}

static bool
starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* ---- pg_restore --list ---- */

/* "123; 1259 16391 " and the rest of the line after it, or NULL */
static const char *
entry_body(const char *line)
{
	const char *p = line;
	size_t n = strspn(p, "0123456789");

	if (n == 0 || p[n] != ';' || p[n + 1] != ' ')
		return NULL;
	p += n + 2;
	for (int field = 0; field < 2; field++) {
		n = strspn(p, "0123456789");
		if (n == 0 || p[n] != ' ')
			return NULL;
		p += n + 1;
	}
	return p;
}

bool
pgm_toc_list_line(pgm_toc_list_t *l, const char *line, pgm_toc_err_t *err)
{
	static const struct {
		const char *prefix;
		size_t field;
	} keys[] = {
		{";     dbname: ", offsetof(pgm_toc_list_t, dbname)},
		{"; Archive created at ", offsetof(pgm_toc_list_t, created_at)},
		{";     Format: ", offsetof(pgm_toc_list_t, format)},
		{";     Dumped from database version: ", offsetof(pgm_toc_list_t, dumped_from)},
		{";     Dumped by pg_dump version: ", offsetof(pgm_toc_list_t, dumped_by)},
	};
	const char *body;

	if (line[0] == ';') {
		for (size_t i = 0; i < PGM_ARRAY_LEN(keys); i++)
			if (starts_with(line, keys[i].prefix)) {
				char **field = (char **) ((char *) l + keys[i].field);

				free(*field);
				*field = pgm_strdup(line + strlen(keys[i].prefix));
			}
		return true;
	}
	if (line[0] == '\0')
		return true;
	body = entry_body(line);
	if (body == NULL)
		return fail(err,
			    pgm_asprintf("pg_restore --list printed a line that is no entry of a table of contents: "
					 "\"%.120s\"",
					 line),
			    "check the file with pg_restore --list: it must be an archive of pg_dump -Fc");
	l->entries++;
	if (starts_with(body, "TABLE DATA ")) {
		if (l->ndata == l->capdata) {
			l->capdata = l->capdata ? 2 * l->capdata : 64;
			l->data = pgm_realloc(l->data, l->capdata * sizeof(char *));
		}
		l->data[l->ndata++] = pgm_strdup(body + strlen("TABLE DATA "));
	}
	return true;
}

/* ---- a COPY statement ---- */

/*
 * One name at *p as pg_dump's fmtId writes it: "quoted" (a quote doubled
 * inside) or plain lower case. 1 and *p past it, 0 when the quotes are
 * still open at the end of stmt, -1 when there is no name.
 */
static int
ident_parse(const char **p, pgm_buf_t *out)
{
	const char *q = *p;
	size_t start = out->len;

	pgm_buf_append(out, "");
	if (*q == '"') {
		const char *from = ++q;

		for (;; q++) {
			if (*q == '\0')
				return 0;
			if (*q == '"' && q[1] != '"')
				break;
			if (*q == '"')
				q++;
		}
		/* the unquoted name: each doubled quote once */
		for (const char *c = from; c < q; c++) {
			char one[2] = {*c, '\0'};

			pgm_buf_append(out, one);
			if (*c == '"')
				c++;
		}
		*p = q + 1;
		return out->len > start ? 1 : -1;
	}
	if (!((*q >= 'a' && *q <= 'z') || *q == '_'))
		return -1;
	while ((*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9') || *q == '_')
		q++;
	{
		char *plain = strndup(*p, (size_t) (q - *p));

		pgm_buf_append(out, plain);
		free(plain);
	}
	*p = q;
	return 1;
}

int
pgm_toc_parse_copy(const char *stmt, char **name, char **schema, char **table)
{
	const char *p = stmt, *name_start, *name_end;
	pgm_buf_t s = {0}, t = {0}, col = {0};
	int rc;

	*name = *schema = *table = NULL;
	if (!starts_with(p, "COPY "))
		return -1;
	p += 5;
	name_start = p;
	if ((rc = ident_parse(&p, &s)) != 1)
		goto out;
	rc = -1;
	if (*p++ != '.')
		goto out;
	if ((rc = ident_parse(&p, &t)) != 1)
		goto out;
	name_end = p;
	rc = -1;
	/* " (a, b)" or, for a table without columns, " " */
	if (*p++ != ' ')
		goto out;
	if (*p == '(') {
		p++;
		for (;;) {
			col.len = 0;
			if ((rc = ident_parse(&p, &col)) != 1)
				goto out;
			rc = -1;
			if (*p == ')')
				break;
			if (!starts_with(p, ", "))
				goto out;
			p += 2;
		}
		p++;
	}
	if (strcmp(p, " FROM stdin;") != 0)
		goto out;
	rc = 1;
	*name = strndup(name_start, (size_t) (name_end - name_start));
	*schema = s.s;
	*table = t.s;
	s.s = t.s = NULL;
out:
	free(s.s);
	free(t.s);
	free(col.s);
	return rc;
}

/* ---- pg_restore --data-only --file=- ---- */

pgm_toc_lo_t *
pgm_toc_lo_push(pgm_toc_los_t *l, uint32_t oid)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->v = pgm_realloc(l->v, l->cap * sizeof(pgm_toc_lo_t));
	}
	l->v[l->n] = (pgm_toc_lo_t){.oid = oid, .bytes = 0};
	return &l->v[l->n++];
}

static int
lo_cmp(const void *x, const void *y)
{
	uint32_t a = ((const pgm_toc_lo_t *) x)->oid, b = ((const pgm_toc_lo_t *) y)->oid;

	return a < b ? -1 : a > b;
}

void
pgm_toc_los_sort(pgm_toc_los_t *l)
{
	if (l->n > 1)
		qsort(l->v, l->n, sizeof(pgm_toc_lo_t), lo_cmp);
}

/*
 * A large object's lines: lo_open('OID', ...), lowrite(0, '\x<hex>') per
 * 16 KB of it (E'\\x<hex>' without standard_conforming_strings), lo_close(0).
 */
static bool
lo_line(pgm_toc_script_t *sc, const char *line)
{
	static const char open_call[] = "SELECT pg_catalog.lo_open('", write_call[] = "SELECT pg_catalog.lowrite(0, ";

	if (starts_with(line, open_call)) {
		pgm_toc_lo_push(&sc->los, (uint32_t) strtoul(line + sizeof(open_call) - 1, NULL, 10));
		sc->in_lo = true;
		return true;
	}
	if (!sc->in_lo)
		return false;
	if (starts_with(line, write_call)) {
		/* the hex digits after the literal's backslash-x (one backslash or two) */
		const char *hex = strstr(line, "\\x");

		if (hex)
			sc->los.v[sc->los.n - 1].bytes += (int64_t) (strspn(hex + 2, "0123456789abcdefABCDEF") / 2);
		return true;
	}
	if (strcmp(line, "SELECT pg_catalog.lo_close(0);") == 0) {
		sc->in_lo = false;
		return true;
	}
	return false;
}

/* a COPY statement, whole: a block begins; 0 when it goes on over the next line */
static int
copy_begin(pgm_toc_script_t *sc, const char *stmt, pgm_toc_err_t *err)
{
	pgm_toc_copy_t c = {0};
	int rc = pgm_toc_parse_copy(stmt, &c.name, &c.schema, &c.table);

	if (rc == 0)
		return 0;
	if (rc < 0) {
		fail(err,
		     pgm_asprintf("the archive's script holds a COPY statement pgmover cannot read: \"%.200s\"", stmt),
		     "pg_restore --data-only --file=- FILE must print COPY SCHEMA.TABLE (COLUMNS) FROM stdin; for "
		     "each table: an archive of a pg_dump older than 9.6 does not name the schema; re-take the "
		     "backup with a current pg_dump -Fc");
		return -1;
	}
	if (sc->ncopies == sc->capcopies) {
		sc->capcopies = sc->capcopies ? 2 * sc->capcopies : 64;
		sc->copies = pgm_realloc(sc->copies, sc->capcopies * sizeof(pgm_toc_copy_t));
	}
	sc->copies[sc->ncopies++] = c;
	sc->in_copy = true;
	return 1;
}

static bool
script_line(pgm_toc_script_t *sc, const char *line, pgm_toc_err_t *err)
{
	/* one line per row in COPY text format: newlines inside values are escaped */
	if (sc->in_copy) {
		if (strcmp(line, "\\.") == 0)
			sc->in_copy = false;
		else
			sc->copies[sc->ncopies - 1].rows++;
		return true;
	}
	if (sc->header) {
		char *stmt = pgm_asprintf("%s\n%s", sc->header, line);
		int rc;

		free(sc->header);
		sc->header = NULL;
		if (strlen(stmt) > HEADER_MAX) {
			fail(err,
			     pgm_asprintf("the archive's script holds a COPY statement of more than %zu bytes: "
					  "\"%.200s\"",
					  HEADER_MAX, stmt),
			     "check the file with pg_restore --data-only --file=- FILE; re-take the backup with "
			     "pg_dump -Fc");
			free(stmt);
			return false;
		}
		rc = copy_begin(sc, stmt, err);
		if (rc == 0)
			sc->header = stmt;
		else
			free(stmt);
		return rc >= 0;
	}
	if (lo_line(sc, line))
		return true;
	if (starts_with(line, "COPY ")) {
		int rc = copy_begin(sc, line, err);

		if (rc == 0)
			sc->header = pgm_strdup(line);
		return rc >= 0;
	}
	if (starts_with(line, "INSERT INTO "))
		return fail(err,
			    pgm_strdup("the archive holds its rows as INSERT statements (pg_dump --inserts or "
				       "--column-inserts), which cannot be counted without running them: it cannot be "
				       "verified by row counts"),
			    "re-take the backup in pg_dump's default custom format, without --inserts (pg_dump -Fc, "
			    "as heroku pg:backups:capture does), and migrate from that file");
	if (starts_with(line, "-- load via partition root "))
		return fail(err,
			    pgm_asprintf("the archive loads the rows of partitions through their root table %.200s "
					 "(pg_dump --load-via-partition-root): they cannot be counted per table, so it "
					 "cannot be verified by row counts",
					 line + strlen("-- load via partition root ")),
			    "re-take the backup without --load-via-partition-root (pg_dump -Fc), and migrate from "
			    "that file");
	return true;
}

bool
pgm_toc_script_line(pgm_toc_script_t *sc, const char *line, pgm_toc_err_t *err)
{
	if (sc->failed)
		return true;
	if (!script_line(sc, line, err)) {
		sc->failed = true;
		return false;
	}
	return true;
}

bool
pgm_toc_script_end(pgm_toc_script_t *sc, pgm_toc_err_t *err)
{
	const char *hint = "the file may be cut short: check it with pg_restore --data-only --file=/dev/null FILE, "
			   "and download or take it again";

	if (sc->failed)
		return true;
	if (sc->header)
		return fail(err,
			    pgm_asprintf("the archive's script ends inside a COPY statement: \"%.200s\"", sc->header),
			    hint);
	if (sc->in_copy)
		return fail(err,
			    pgm_asprintf("the archive's script ends inside the COPY block of %s",
					 sc->copies[sc->ncopies - 1].name),
			    hint);
	return true;
}

/* "SCHEMA TABLE" as pg_restore --list shows it: newlines and carriage returns as spaces */
static char *
listed_name(const pgm_toc_copy_t *c)
{
	char *s = pgm_asprintf("%s %s", c->schema, c->table);

	for (char *p = s; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	return s;
}

bool
pgm_toc_check(const pgm_toc_list_t *l, const pgm_toc_script_t *sc, pgm_toc_err_t *err)
{
	const char *hint = "check the file with pg_restore --list FILE and pg_restore --data-only --file=- FILE; an "
			   "archive made with pg_dump --inserts or --load-via-partition-root cannot be verified by "
			   "row counts: re-take the backup with pg_dump -Fc and neither option";
	size_t i;

	for (i = 0; i < l->ndata && i < sc->ncopies; i++) {
		char *want = listed_name(&sc->copies[i]);
		size_t n = strlen(want);
		bool same = strncmp(l->data[i], want, n) == 0 && (l->data[i][n] == '\0' || l->data[i][n] == ' ');

		free(want);
		if (!same)
			return fail(
				err,
				pgm_asprintf("the archive's COPY block %zu loads %s, but the table data entry %zu of "
					     "its listing is \"%s\"",
					     i + 1, sc->copies[i].name, i + 1, l->data[i]),
				hint);
	}
	if (i < l->ndata)
		return fail(
			err,
			pgm_asprintf("the table data entry \"%s\" of the archive's listing has no COPY block in its "
				     "script (%zu entries, %zu COPY blocks)",
				     l->data[i], l->ndata, sc->ncopies),
			hint);
	if (i < sc->ncopies)
		return fail(err,
			    pgm_asprintf("the archive's script has a COPY block for %s that its listing does not hold "
					 "(%zu entries, %zu COPY blocks)",
					 sc->copies[i].name, l->ndata, sc->ncopies),
			    hint);
	return true;
}

void
pgm_toc_list_free(pgm_toc_list_t *l)
{
	free(l->dbname);
	free(l->created_at);
	free(l->format);
	free(l->dumped_from);
	free(l->dumped_by);
	for (size_t i = 0; i < l->ndata; i++)
		free(l->data[i]);
	free(l->data);
	memset(l, 0, sizeof(*l));
}

void
pgm_toc_script_free(pgm_toc_script_t *sc)
{
	for (size_t i = 0; i < sc->ncopies; i++) {
		free(sc->copies[i].name);
		free(sc->copies[i].schema);
		free(sc->copies[i].table);
	}
	free(sc->copies);
	free(sc->los.v);
	free(sc->header);
	memset(sc, 0, sizeof(*sc));
}

void
pgm_toc_err_free(pgm_toc_err_t *err)
{
	free(err->message);
	free(err->hint);
	err->message = err->hint = NULL;
}
