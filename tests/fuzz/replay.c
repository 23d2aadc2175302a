/*
 * replay.c
 *    The main() of the replay runners: each file named on the command line
 *    is read whole and handed to the harness's LLVMFuzzerTestOneInput once,
 *    so that the seed corpus runs as a unit test in every build (no clang or
 *    libFuzzer needed). A crash is the sanitizers' to report; exits 1 when a
 *    file cannot be read.
 */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz.h"

static uint8_t *
read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t cap = 0, n = 0, got;

	if (f == NULL)
		return NULL;
	do {
		if (n == cap) {
			uint8_t *bigger;

			cap = cap ? 2 * cap : 4096;
			bigger = realloc(buf, cap);
			if (bigger == NULL) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = bigger;
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
	} while (got > 0);
	if (ferror(f)) {
		free(buf);
		fclose(f);
		return NULL;
	}
	fclose(f);
	*len = n;
	return buf;
}

int
main(int argc, char **argv)
{
	int ran = 0;

	for (int i = 1; i < argc; i++) {
		size_t len = 0;
		uint8_t *data = read_all(argv[i], &len);

		if (data == NULL) {
			fprintf(stderr, "replay: cannot read %s\n", argv[i]);
			return 1;
		}
		LLVMFuzzerTestOneInput(data, len);
		free(data);
		ran++;
	}
	printf("replay: %d inputs\n", ran);
	return 0;
}
