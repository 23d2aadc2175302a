/*
 * fuzz_lsn.c
 *    Fuzz harness of the LSN parser (src/pg/lsn.c): the input, NUL-terminated,
 *    goes through pgm_lsn_parse; a position it accepts must survive
 *    pgm_lsn_format and pgm_lsn_parse again unchanged.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "pg/lsn.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	char buf[32];
	uint64_t lsn = 0, again = 0;

	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (pgm_lsn_parse(text, &lsn)) {
		pgm_lsn_format(lsn, buf, sizeof(buf));
		if (!pgm_lsn_parse(buf, &again) || again != lsn)
			abort();
	}
	free(text);
	return 0;
}
