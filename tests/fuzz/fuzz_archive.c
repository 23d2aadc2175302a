/*
 * fuzz_archive.c
 *    Fuzz harness of the reading of pg_restore's output for a backup-file
 *    source (src/pipeline/archive/toc.c). The input is LISTING, or LISTING
 *    NUL SCRIPT: the lines of pg_restore --list, then those of pg_restore
 *    --data-only --file=-, each fed as the daemon feeds them, then the
 *    script's end and the match of the two. Every call must return true
 *    with no error or false with a message and a hint; a match found must
 *    pair each table data entry with one COPY block; and each table's name,
 *    which goes into SQL as it is, must read back as the same table.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "pipeline/archive/toc.h"

static void
check_err(bool ok, pgm_toc_err_t *err)
{
	if (ok != (err->message == NULL) || (err->message == NULL) != (err->hint == NULL))
		abort();
	pgm_toc_err_free(err);
}

/* the table's name, quoted as written, is a COPY statement's name again, and the same table */
static void
check_copy(const pgm_toc_copy_t *c)
{
	size_t n = strlen(c->name);
	char *stmt = malloc(n + 20), *name, *schema, *table;

	if (stmt == NULL)
		return;
	memcpy(stmt, "COPY ", 5);
	memcpy(stmt + 5, c->name, n);
	strcpy(stmt + 5 + n, "  FROM stdin;");
	if (pgm_toc_parse_copy(stmt, &name, &schema, &table) != 1 || strcmp(name, c->name) != 0 ||
	    strcmp(schema, c->schema) != 0 || strcmp(table, c->table) != 0)
		abort();
	free(name);
	free(schema);
	free(table);
	free(stmt);
}

/* each line of text up to end (NUL-terminated), to feed */
static void
each_line(char *text, char *end, void (*feed)(const char *line, void *arg), void *arg)
{
	while (text < end) {
		char *nl = memchr(text, '\n', (size_t) (end - text));

		if (nl)
			*nl = '\0';
		feed(text, arg);
		if (nl == NULL)
			break;
		text = nl + 1;
	}
}

static void
feed_list(const char *line, void *arg)
{
	pgm_toc_err_t err = {0};

	check_err(pgm_toc_list_line(arg, line, &err), &err);
}

static void
feed_script(const char *line, void *arg)
{
	pgm_toc_err_t err = {0};

	check_err(pgm_toc_script_line(arg, line, &err), &err);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), *split;
	pgm_toc_list_t l = {0};
	pgm_toc_script_t sc = {0};
	pgm_toc_err_t err = {0};
	bool ok;

	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	split = text + strlen(text);
	each_line(text, split, feed_list, &l);
	if (split < text + size)
		each_line(split + 1, text + size, feed_script, &sc);
	ok = pgm_toc_script_end(&sc, &err);
	check_err(ok, &err);
	if (ok) {
		ok = pgm_toc_check(&l, &sc, &err);
		check_err(ok, &err);
		if (ok && l.ndata != sc.ncopies)
			abort();
	}
	for (size_t i = 0; i < sc.ncopies; i++)
		check_copy(&sc.copies[i]);
	pgm_toc_script_free(&sc);
	pgm_toc_list_free(&l);
	free(text);
	return 0;
}
