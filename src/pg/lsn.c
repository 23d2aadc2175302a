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

/* 1 to 8 hexadecimal digits; the end of them in *end */
static bool
half(const char *s, uint32_t *out, const char **end)
{
	uint32_t v = 0;
	int n = 0;

	for (; n < 9; n++, s++) {
		int d;

		if (*s >= '0' && *s <= '9')
			d = *s - '0';
		else if (*s >= 'a' && *s <= 'f')
			d = *s - 'a' + 10;
		else if (*s >= 'A' && *s <= 'F')
			d = *s - 'A' + 10;
		else
			break;
		if (n == 8)
			return false; /* a ninth digit: more than 32 bits */
		v = (v << 4) | (uint32_t) d;
	}
	*out = v;
	*end = s;
	return n > 0;
}

/* as pg_lsn's input does: 1-8 hex digits, '/', 1-8 hex digits, nothing else */
bool
pgm_lsn_parse(const char *s, uint64_t *out)
{
	uint32_t hi, lo;
	const char *p;

	if (s == NULL || !half(s, &hi, &p) || *p != '/' || !half(p + 1, &lo, &p) || *p != '\0')
		return false;
	*out = ((uint64_t) hi << 32) | lo;
	return true;
}
