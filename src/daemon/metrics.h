/*
 * metrics.h — the jobs as Prometheus metrics: the text exposition
 * (format 0.0.4) rendered from the jobs themselves (metrics.c), and the
 * HTTP endpoint that serves it on metrics_listen (metrics_http.c).
 */
#ifndef PGM_METRICS_H
#define PGM_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "daemon/jobs.h"

/* the content type of the text exposition format */
#define PGM_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/*
 * Every metric of the jobs on the list, and the daemon's own (pgmover_up,
 * build info, start time), at now_ms (wall clock, ms). malloc'd.
 */
char *pgm_metrics_render(const pgm_job_t *jobs, int ncorrupt, int64_t started_ms, int64_t now_ms);

/*
 * Serve GET /metrics on d->cfg.metrics_listen from the daemon's loop (an
 * empty setting: nothing to do, true). False (logged, saying what to do)
 * when the address cannot be bound.
 */
bool pgm_metrics_start(pgm_daemon_t *d);
/* stop serving: the socket is closed, the loop's handles close */
void pgm_metrics_stop(pgm_daemon_t *d);

#endif
