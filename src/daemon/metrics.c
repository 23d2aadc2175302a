/*
 * metrics.c — the Prometheus text exposition (format 0.0.4) of the jobs,
 * rendered from each job's state, running step's progress, facts and last
 * verification: the same sources as the `status` object (fsm/status.c),
 * read on the loop's thread.
 *
 * One table of metric families, one sampler per family: a family is
 * written (HELP, TYPE, then its samples) only when some job has a sample
 * of it. Every sample carries the job's name and method as labels.
 */
#include "daemon/metrics.h"
#include "common/json.h"
#include "common/util.h"
#include "pgm_config.h"
#include "pgmover/protocol.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* what a sampler writes into: the family being rendered, for one job */
typedef struct metric_ctx {
	pgm_buf_t *out;
	const char *family;
	const pgm_job_t *job;
	int64_t now_ms;
} metric_ctx_t;

typedef void (*sampler_fn)(metric_ctx_t *m, const pgm_job_t *job);

/* a label value with \, " and newline escaped as the format wants */
static void
append_label_value(pgm_buf_t *b, const char *v)
{
	for (; v && *v; v++) {
		if (*v == '\\')
			pgm_buf_append(b, "\\\\");
		else if (*v == '"')
			pgm_buf_append(b, "\\\"");
		else if (*v == '\n')
			pgm_buf_append(b, "\\n");
		else {
			char c[2] = {*v, '\0'};
			pgm_buf_append(b, c);
		}
	}
}

static void
append_value(pgm_buf_t *b, double v)
{
	if (isnan(v))
		pgm_buf_append(b, "NaN");
	else if (isinf(v))
		pgm_buf_append(b, v > 0 ? "+Inf" : "-Inf");
	else if (v == floor(v) && fabs(v) < 1e15)
		pgm_buf_appendf(b, "%.0f", v);
	else if (fabs(v) < 1e15) {
		/* milliseconds' worth of digits (a time, a rate), without trailing zeros */
		char num[64];
		size_t n = (size_t) snprintf(num, sizeof(num), "%.6f", v);

		while (n > 0 && num[n - 1] == '0')
			num[--n] = '\0';
		if (n > 0 && num[n - 1] == '.')
			num[--n] = '\0';
		pgm_buf_append(b, num);
	} else
		pgm_buf_appendf(b, "%.17g", v);
}

/* one sample of the family: job and method labels, then up to two more (NULL key: none) */
static void
sample(metric_ctx_t *m, double v, const char *k1, const char *v1, const char *k2, const char *v2)
{
	pgm_buf_appendf(m->out, "%s{job=\"", m->family);
	append_label_value(m->out, m->job->name);
	pgm_buf_append(m->out, "\",method=\"");
	append_label_value(m->out, m->job->method);
	pgm_buf_append(m->out, "\"");
	if (k1) {
		pgm_buf_appendf(m->out, ",%s=\"", k1);
		append_label_value(m->out, v1);
		pgm_buf_append(m->out, "\"");
	}
	if (k2) {
		pgm_buf_appendf(m->out, ",%s=\"", k2);
		append_label_value(m->out, v2);
		pgm_buf_append(m->out, "\"");
	}
	pgm_buf_append(m->out, "} ");
	append_value(m->out, v);
	pgm_buf_append(m->out, "\n");
}

/* the number under key, if it is one */
static bool
num_at(const cJSON *o, const char *key, double *v)
{
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, key);

	if (!cJSON_IsNumber(n))
		return false;
	*v = n->valuedouble;
	return true;
}

/*
 * The running step's copy, if it is one: its label ("rehearsal", "final",
 * "initial sync") when the progress counts bytes of data being moved; the
 * verification and pglogical's replication count other things.
 */
static const char *
running_copy(const pgm_job_t *job)
{
	const char *name = pgm_json_str(job->progress, "name");
	double v;

	if (name == NULL || !num_at(job->progress, "bytes_total", &v))
		return NULL;
	if (strcmp(name, "verify") == 0 || strcmp(name, "replication") == 0)
		return NULL;
	return name;
}

/*
 * For each copy of the job, the running one from its progress and the
 * finished ones from facts.copies: progress_key in the first, fact_key in
 * the others (NULL: that side has no such number).
 */
static void
copies_sample(metric_ctx_t *m, const pgm_job_t *job, const char *progress_key, const char *fact_key)
{
	const char *run = running_copy(job);
	const cJSON *c;
	double v;

	if (run && progress_key && num_at(job->progress, progress_key, &v))
		sample(m, v, "copy", run, NULL, NULL);
	cJSON_ArrayForEach (c, cJSON_GetObjectItemCaseSensitive(job->facts, "copies")) {
		if (!cJSON_IsObject(c) || (run && strcmp(c->string, run) == 0) || fact_key == NULL)
			continue;
		if (num_at(c, fact_key, &v))
			sample(m, v, "copy", c->string, NULL, NULL);
	}
}

static void
s_state(metric_ctx_t *m, const pgm_job_t *job)
{
	for (int st = 0; st < PGM_ST__COUNT; st++)
		sample(m, job->state == (pgm_state_t) st ? 1 : 0, "state", pgm_state_name((pgm_state_t) st), NULL,
		       NULL);
}

static void
s_state_since(metric_ctx_t *m, const pgm_job_t *job)
{
	if (job->since_ms > 0)
		sample(m, (double) job->since_ms / 1000.0, NULL, NULL, NULL, NULL);
}

static void
s_phase(metric_ctx_t *m, const pgm_job_t *job)
{
	const char *phase = pgm_json_str(job->progress, "phase");
	const char *step = pgm_json_str(job->progress, "name");

	if (phase)
		sample(m, 1, "step", step ? step : pgm_state_name(job->state), "phase", phase);
}

static void
s_copy_bytes(metric_ctx_t *m, const pgm_job_t *job)
{
	copies_sample(m, job, "bytes_done", "bytes");
}

static void
s_copy_size_bytes(metric_ctx_t *m, const pgm_job_t *job)
{
	copies_sample(m, job, "bytes_total", "bytes");
}

static void
s_copy_rows(metric_ctx_t *m, const pgm_job_t *job)
{
	copies_sample(m, job, "rows_done", "rows");
}

static void
s_copy_size_rows(metric_ctx_t *m, const pgm_job_t *job)
{
	copies_sample(m, job, "rows_estimate", "rows_estimate");
}

/* the running copy's rate; a finished one's: its bytes over the time its data took */
static void
s_copy_rate(metric_ctx_t *m, const pgm_job_t *job)
{
	const char *run = running_copy(job);
	const cJSON *c;
	double v, ms;

	if (run && num_at(job->progress, "rate_bytes_per_sec", &v))
		sample(m, v, "copy", run, NULL, NULL);
	cJSON_ArrayForEach (c, cJSON_GetObjectItemCaseSensitive(job->facts, "copies")) {
		if (!cJSON_IsObject(c) || (run && strcmp(c->string, run) == 0) || !num_at(c, "bytes", &v))
			continue;
		if ((num_at(c, "data_ms", &ms) && ms > 0) || (num_at(c, "duration_ms", &ms) && ms > 0))
			sample(m, v * 1000.0 / ms, "copy", c->string, NULL, NULL);
	}
}

static void
s_copy_eta(metric_ctx_t *m, const pgm_job_t *job)
{
	const char *run = running_copy(job);
	double v;

	if (run && num_at(job->progress, "eta_seconds", &v))
		sample(m, v, "copy", run, NULL, NULL);
}

static void
s_lag_bytes(metric_ctx_t *m, const pgm_job_t *job)
{
	double v;

	if (num_at(cJSON_GetObjectItemCaseSensitive(job->facts, "lag"), "bytes", &v))
		sample(m, v, NULL, NULL, NULL, NULL);
}

static void
s_lag_seconds(metric_ctx_t *m, const pgm_job_t *job)
{
	double v;

	if (num_at(cJSON_GetObjectItemCaseSensitive(job->facts, "lag"), "seconds", &v))
		sample(m, v, NULL, NULL, NULL, NULL);
}

static void
s_retained_wal(metric_ctx_t *m, const pgm_job_t *job)
{
	double v;

	if (num_at(cJSON_GetObjectItemCaseSensitive(job->facts, "lag"), "retained_wal_bytes", &v))
		sample(m, v, NULL, NULL, NULL, NULL);
}

static void
s_log_rows_behind(metric_ctx_t *m, const pgm_job_t *job)
{
	double v;

	if (num_at(job->progress, "log_rows_behind", &v))
		sample(m, v, NULL, NULL, NULL, NULL);
}

static void
s_verify_differences(metric_ctx_t *m, const pgm_job_t *job)
{
	double v;

	if (num_at(job->verify, "mismatches", &v))
		sample(m, v, NULL, NULL, NULL, NULL);
}

/* writes stopped so far: from the freeze until cutover, thaw or an abort ends it */
static void
s_freeze_seconds(metric_ctx_t *m, const pgm_job_t *job)
{
	switch (job->state) {
	case PGM_ST_FREEZING:
	case PGM_ST_FROZEN:
	case PGM_ST_VERIFYING:
	case PGM_ST_VERIFIED:
	case PGM_ST_VERIFY_FAILED:
	case PGM_ST_THAWING:
	case PGM_ST_CUTTING_OVER:
		if (job->freeze_started_ms > 0 && m->now_ms >= job->freeze_started_ms)
			sample(m, (double) (m->now_ms - job->freeze_started_ms) / 1000.0, NULL, NULL, NULL, NULL);
		break;
	default:
		break;
	}
}

static void
s_rollback_lag_bytes(metric_ctx_t *m, const pgm_job_t *job)
{
	double v;

	if (num_at(cJSON_GetObjectItemCaseSensitive(job->facts, "reverse_lag"), "bytes", &v))
		sample(m, v, NULL, NULL, NULL, NULL);
}

static void
s_rollback_lag_seconds(metric_ctx_t *m, const pgm_job_t *job)
{
	double v;

	if (num_at(cJSON_GetObjectItemCaseSensitive(job->facts, "reverse_lag"), "seconds", &v))
		sample(m, v, NULL, NULL, NULL, NULL);
}

static void
s_rollback_deadline(metric_ctx_t *m, const pgm_job_t *job)
{
	if (job->state == PGM_ST_ROLLBACK_WINDOW && job->rollback_deadline_ms > 0)
		sample(m, (double) job->rollback_deadline_ms / 1000.0, NULL, NULL, NULL, NULL);
}

/* the tables whose writes on the target a rollback would lose (reverse_tables.c), once the window looked */
static void
s_rollback_uncarried(metric_ctx_t *m, const pgm_job_t *job)
{
	const cJSON *u =
		cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(job->facts, "reverse"), "uncarried");

	if (cJSON_IsArray(u))
		sample(m, cJSON_GetArraySize(u), NULL, NULL, NULL, NULL);
}

static void
s_failed(metric_ctx_t *m, const pgm_job_t *job)
{
	sample(m, job->state == PGM_ST_FAILED ? 1 : 0, NULL, NULL, NULL, NULL);
}

static void
s_warnings(metric_ctx_t *m, const pgm_job_t *job)
{
	sample(m, cJSON_GetArraySize(job->warnings), NULL, NULL, NULL, NULL);
}

/* the per-job families, in the order they are written */
static const struct {
	const char *name;
	const char *type;
	const char *help;
	sampler_fn fn;
} job_families[] = {
	{"pgmover_job_state", "gauge", "1 for the state the job is in, 0 for every other state of the machine",
	 s_state},
	{"pgmover_job_state_since_timestamp_seconds", "gauge", "when the job entered its current state (Unix time)",
	 s_state_since},
	{"pgmover_job_phase", "gauge", "1 for the phase of the running step (step: its name)", s_phase},
	{"pgmover_job_copy_bytes", "gauge",
	 "bytes copied by a copy (copy: rehearsal, final, initial ...): so far while it runs, all of it once finished",
	 s_copy_bytes},
	{"pgmover_job_copy_size_bytes", "gauge", "bytes a copy has to move (the tables' size on the source)",
	 s_copy_size_bytes},
	{"pgmover_job_copy_rows", "gauge", "rows loaded into the target by a copy (copy engine)", s_copy_rows},
	{"pgmover_job_copy_size_rows", "gauge", "rows a copy has to move, as the source's statistics estimate them",
	 s_copy_size_rows},
	{"pgmover_job_copy_rate_bytes_per_second", "gauge",
	 "a copy's data rate: current while it runs, average once done", s_copy_rate},
	{"pgmover_job_copy_eta_seconds", "gauge", "the running copy's estimated time left", s_copy_eta},
	{"pgmover_job_lag_bytes", "gauge", "pglogical: source WAL not yet confirmed by the target", s_lag_bytes},
	{"pgmover_job_lag_seconds", "gauge", "pglogical: age of the oldest change not yet confirmed by the target",
	 s_lag_seconds},
	{"pgmover_job_retained_wal_bytes", "gauge", "pglogical: WAL the replication slot keeps on the source",
	 s_retained_wal},
	{"pgmover_job_log_rows_behind", "gauge", "triggers: captured changes not yet applied to the target",
	 s_log_rows_behind},
	{"pgmover_job_verify_differences", "gauge", "differences the last verification found (0: none)",
	 s_verify_differences},
	{"pgmover_job_freeze_seconds", "gauge", "how long the source's writes have been stopped, while they are",
	 s_freeze_seconds},
	{"pgmover_job_rollback_lag_bytes", "gauge",
	 "rollback window: target WAL retained for the source, not yet carried back to it", s_rollback_lag_bytes},
	{"pgmover_job_rollback_lag_seconds", "gauge",
	 "rollback window: age of the oldest target commit not yet carried back to the source", s_rollback_lag_seconds},
	{"pgmover_job_rollback_deadline_timestamp_seconds", "gauge", "when the rollback window closes (Unix time)",
	 s_rollback_deadline},
	{"pgmover_job_rollback_uncarried_tables", "gauge",
	 "rollback window: tables the reverse stream does not carry, whose writes a rollback would lose (pgmover status "
	 "names them)",
	 s_rollback_uncarried},
	{"pgmover_job_failed", "gauge", "1 when the job is failed (its error is in pgmover status)", s_failed},
	{"pgmover_job_warnings", "gauge", "warnings the job holds (pgmover status lists them)", s_warnings},
	{NULL, NULL, NULL, NULL}};

static void
family_header(pgm_buf_t *b, const char *name, const char *type, const char *help)
{
	pgm_buf_appendf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

char *
pgm_metrics_render(const pgm_job_t *jobs, int ncorrupt, int64_t started_ms, int64_t now_ms)
{
	pgm_buf_t out = {0};
	int njobs = 0;

	for (const pgm_job_t *j = jobs; j; j = j->next)
		njobs++;
	family_header(&out, "pgmover_up", "gauge", "1: pgmoverd is running and answering");
	pgm_buf_append(&out, "pgmover_up 1\n");
	family_header(&out, "pgmover_build_info", "gauge", "pgmoverd's version and control protocol");
	pgm_buf_appendf(&out, "pgmover_build_info{version=\"%s\",protocol=\"%d\"} 1\n", PGM_VERSION,
			PGM_PROTOCOL_VERSION);
	family_header(&out, "pgmover_start_time_seconds", "gauge", "when pgmoverd started (Unix time)");
	pgm_buf_append(&out, "pgmover_start_time_seconds ");
	append_value(&out, (double) started_ms / 1000.0);
	pgm_buf_append(&out, "\n");
	family_header(&out, "pgmover_jobs", "gauge", "jobs pgmoverd holds");
	pgm_buf_appendf(&out, "pgmover_jobs %d\n", njobs);
	family_header(&out, "pgmover_corrupt_jobs", "gauge",
		      "job folders whose state did not read back at start (pgmover jobs lists them)");
	pgm_buf_appendf(&out, "pgmover_corrupt_jobs %d\n", ncorrupt);

	for (int f = 0; job_families[f].name; f++) {
		pgm_buf_t samples = {0};
		metric_ctx_t m = {.out = &samples, .family = job_families[f].name, .now_ms = now_ms};

		for (const pgm_job_t *j = jobs; j; j = j->next) {
			m.job = j;
			job_families[f].fn(&m, j);
		}
		if (samples.len > 0) {
			family_header(&out, job_families[f].name, job_families[f].type, job_families[f].help);
			pgm_buf_append(&out, samples.s);
		}
		free(samples.s);
	}
	return out.s;
}
