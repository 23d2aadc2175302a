/*
 * fuzz_config.c
 *    Fuzz harness of the pgmoverd.conf parser (src/daemon/config.c): the
 *    input, NUL-terminated, is a whole file for pgm_config_parse on a fresh
 *    default config. A refusal must come with a message.
 */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "daemon/config.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	char *err = NULL;
	pgm_config_t cfg;

	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	pgm_log_set_level(PGM_LOG_ERROR);
	pgm_config_init(&cfg);
	if (!pgm_config_parse(&cfg, "fuzz.conf", text, &err) && err == NULL)
		abort();
	free(err);
	pgm_config_free(&cfg);
	free(text);
	return 0;
}
