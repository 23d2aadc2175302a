/*
 * lsn.h — PostgreSQL WAL positions (pg_lsn) as text
 */
#ifndef PGM_LSN_H
#define PGM_LSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "16/B374D848" */
void pgm_lsn_format(uint64_t lsn, char *buf, size_t len);
bool pgm_lsn_parse(const char *s, uint64_t *out);

#endif
