/*
 * plan.h — the preflight: every check made before anything is changed,
 * each with a finding and what to do about it. `pgmover plan` prints it;
 * the provisioning step runs it and stops on any error.
 */
#ifndef PGM_PLAN_H
#define PGM_PLAN_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <uv.h>

typedef struct pgm_plan pgm_plan_t;

/*
 * The report (owned by the plan; copy what you keep):
 *   {"ok": bool, "errors": n, "warnings": n,
 *    "findings": [{"check", "status": "ok|info|warning|error", "finding", "fix"}],
 *    "source": {...facts}, "target": {...facts}, "largest_tables": [...],
 *    "estimate": {...}, "recommendation": {"method", "why"}}
 */
typedef void (*pgm_plan_cb)(pgm_plan_t *p, const cJSON *report, void *data);

typedef struct pgm_plan_opts {
	const char *source;   /* DSN */
	const char *target;   /* DSN */
	const cJSON *options; /* job options (built with pgm_job_options_build) */
	bool target_owned;    /* the target's contents are pgmover's (a resumed job) */
	const char *app_name;
	const char *method;  /* "dump" (NULL) or "pglogical": its own checks are added */
	bool no_read_sample; /* a rehearsal copy follows and times the copy itself: no sample read */
} pgm_plan_opts_t;

pgm_plan_t *pgm_plan_start(uv_loop_t *loop, const pgm_plan_opts_t *opts, pgm_plan_cb cb, void *data);
/* stop: no callback after this */
void pgm_plan_cancel(pgm_plan_t *p);

/* the evaluation alone, from gathered facts (pure: unit-testable) */
cJSON *pgm_plan_evaluate(const cJSON *gathered, const cJSON *options, bool target_owned);
/* the same for a method: "pglogical" adds the logical replication checks */
cJSON *pgm_plan_evaluate_method(const cJSON *gathered, const cJSON *options, bool target_owned, const char *method);

#endif
