/*
 * probe.h — connect to one side and describe it: version, size, TLS,
 * privileges, encoding. Used by provisioning and by `plan`.
 */
#ifndef PGM_PROBE_H
#define PGM_PROBE_H

#include <cjson/cJSON.h>
#include <uv.h>

#include "pg/pgasync.h"

typedef struct pgm_probe pgm_probe_t;

/*
 * facts is NULL on failure, with what (e.g. "could not connect to the
 * source") and err. The callback owns neither; copy what you keep.
 */
typedef void (*pgm_probe_cb)(pgm_probe_t *p, const cJSON *facts, const char *what,
                             const pgm_pg_error_t *err, void *data);

/* side is "source" or "target" (for messages) */
pgm_probe_t *pgm_probe_start(uv_loop_t *loop, const char *side, const char *dsn, int timeout_ms,
                             pgm_probe_cb cb, void *data);
/* stop it: no callback after this */
void pgm_probe_cancel(pgm_probe_t *p);

#endif
