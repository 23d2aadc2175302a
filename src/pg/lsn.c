/*
 * lsn.c — WAL positions as PostgreSQL prints them: two hexadecimal halves.
 */
#include "pg/lsn.h"

#include <stdio.h>

void
pgm_lsn_format(uint64_t lsn, char *buf, size_t len)
{
	snprintf(buf, len, "%X/%X", (unsigned) (lsn >> 32), (unsigned) (lsn & 0xffffffffu));
}

bool
pgm_lsn_parse(const char *s, uint64_t *out)
{
	unsigned hi, lo;
	int n = 0;

	if (s == NULL || sscanf(s, "%X/%X%n", &hi, &lo, &n) != 2 || s[n] != '\0')
		return false;
	*out = ((uint64_t) hi << 32) | lo;
	return true;
}
