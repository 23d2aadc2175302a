/*
 * fuzz_pgbouncer.c
 *    Fuzz harness of the pgbouncer include-file rewrite
 *    (pgm_pgb_rewrite, src/pipeline/cutover/pgbouncer_file.c). The input is
 *    FILE, or FILE NUL DATABASE, or FILE NUL DATABASE NUL DSN; the database
 *    defaults to "shop" and the DSN to a URL for a target. The rewrite must
 *    return the new file or an error message, never both or neither.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "pipeline/cutover/pgbouncer.h"

#define DEFAULT_DSN "postgres://tgt:secret@10.0.0.2:6543/appdb"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 2);
	const char *file, *database = "shop", *dsn = DEFAULT_DSN;
	char *out, *err = NULL;
	size_t n;

	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	text[size + 1] = '\0';
	file = text;
	n = strlen(file);
	if (n < size) {
		database = text + n + 1;
		n += strlen(database) + 1;
		if (n < size)
			dsn = text + n + 1;
	}
	out = pgm_pgb_rewrite(file, database, dsn, &err);
	if ((out == NULL) == (err == NULL))
		abort();
	free(out);
	free(err);
	free(text);
	return 0;
}
