/*
 * fuzz_pgoutput.c
 *    Fuzz harness of the pgoutput decoder (pgm_pgo_feed, src/pg/pgoutput.c).
 *    The input is a stream of messages, each a 2-byte big-endian length and
 *    that many bytes (the last one takes what is left), fed in order to one
 *    decoder as the rows of pg_logical_slot_peek_binary_changes would be.
 *    Chunks that become ready are taken, a completed transaction is freed,
 *    and the first malformed message ends the stream, as it ends the caller's.
 */
#include <stdlib.h>

#include "fuzz.h"
#include "pg/pgoutput.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	pgm_pgo_t *p = pgm_pgo_new();
	size_t at = 0;

	while (at < size) {
		size_t len = size - at;
		pgm_pgo_txn_t txn = {0};
		char *err = NULL, *chunk;
		int rc;

		if (len >= 2) {
			size_t want = ((size_t) data[at] << 8) | data[at + 1];

			at += 2;
			len = want <= size - at ? want : size - at;
		}
		rc = pgm_pgo_feed(p, data + at, len, &txn, &err);
		at += len;
		if (rc < 0) {
			if (err == NULL)
				abort();
			free(err);
			break;
		}
		while ((chunk = pgm_pgo_take_chunk(p)) != NULL)
			free(chunk);
		if (rc == 1)
			pgm_pgo_txn_clear(&txn);
	}
	pgm_pgo_free(p);
	return 0;
}
