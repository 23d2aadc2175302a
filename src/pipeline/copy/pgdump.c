/*
 * dump.c — the first copy engine: pg_dump in directory format with -j
 * workers from the source, pg_restore with -j workers into a clean target,
 * both run as children of the event loop. Progress comes from their
 * --verbose output, weighted by the size of each table.
 *
 * A copy always starts from a clean target: leftover sessions of an
 * earlier run of this job are ended and every schema, extension and large
 * object of the target is dropped (never the database). The provisioning
 * step only lets a job get here when the target was empty or the job says
 * it may be overwritten. The children run under the guard of proc.h, so a
 * daemon killed with SIGKILL does not leave them writing behind the next
 * attempt.
 */
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "pg/dsn.h"
#include "fsm/job.h"
#include "pipeline/sql.h"
#include "pipeline/copy/copy.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct dump_table {
	char *full; /* schema.name as pg_dump prints it */
	char *name; /* bare name, as "finished item ... TABLE DATA name" prints it */
	int64_t size;
	bool started, done;
} dump_table_t;

typedef struct dump {
	pgm_step_t *step;
	char *label;
	void (*then)(pgm_step_t *s);
	char *workdir;
	dump_table_t *tables;
	int ntables;
	int64_t bytes_total;
	const char *phase; /* "prepare", "dump", "restore" */
	int64_t started_mono, phase_mono, dump_ms;
	int64_t last_save;
	int jobs;
} dump_t;

static void
dump_free(void *p)
{
	dump_t *d = p;

	for (int i = 0; i < d->ntables; i++) {
		free(d->tables[i].full);
		free(d->tables[i].name);
	}
	free(d->tables);
	/* the dump files hold the data: never leave them behind */
	if (d->workdir && !pgm_rmtree(d->workdir))
		pgm_warning("could not remove \"%s\": %s", d->workdir, strerror(errno));
	free(d->workdir);
	free(d->label);
	free(d);
}

static void
phase_reset(dump_t *d, const char *phase)
{
	d->phase = phase;
	d->phase_mono = pgm_mono_ms();
	for (int i = 0; i < d->ntables; i++)
		d->tables[i].started = d->tables[i].done = false;
}

/* the progress object of `status`: tables, bytes, rate and ETA of this phase */
static void
progress_update(dump_t *d, bool force_save)
{
	pgm_job_t *job = d->step->job;
	cJSON *p = cJSON_CreateObject();
	int done = 0;
	int64_t bytes = 0, elapsed = pgm_mono_ms() - d->phase_mono;
	double rate, eta;

	for (int i = 0; i < d->ntables; i++)
		if (d->tables[i].done) {
			done++;
			bytes += d->tables[i].size;
		}
	rate = elapsed > 0 ? (double) bytes * 1000.0 / (double) elapsed : 0;
	pgm_json_set_str(p, "name", d->label);
	pgm_json_set_str(p, "phase", d->phase);
	pgm_json_set_num(p, "tables_done", done);
	pgm_json_set_num(p, "tables_total", d->ntables);
	pgm_json_set_num(p, "bytes_done", (double) bytes);
	pgm_json_set_num(p, "bytes_total", (double) d->bytes_total);
	pgm_json_set_num(p, "rate_bytes_per_sec", rate);
	if (rate > 0) {
		eta = (double) (d->bytes_total - bytes) / rate;
		if (strcmp(d->phase, "dump") == 0)
			eta += (double) d->bytes_total / rate; /* the restore is still to come */
		pgm_json_set_num(p, "eta_seconds", eta);
	} else {
		pgm_json_set(p, "eta_seconds", cJSON_CreateNull());
	}
	pgm_json_set_num(p, "elapsed_ms", (double) (pgm_mono_ms() - d->started_mono));
	pgm_job_set_progress(job, p);
	/* a progress checkpoint every few seconds, not on every line */
	if (force_save || pgm_mono_ms() - d->last_save > 5000) {
		d->last_save = pgm_mono_ms();
		pgm_job_checkpoint(job);
	}
}

static dump_table_t *
table_by_full(dump_t *d, const char *full)
{
	for (int i = 0; i < d->ntables; i++)
		if (strcmp(d->tables[i].full, full) == 0)
			return &d->tables[i];
	return NULL;
}

/* a table started: in a serial run the one before it is finished */
static void
table_started(dump_t *d, const char *full)
{
	dump_table_t *t = table_by_full(d, full);

	if (d->jobs == 1)
		for (int i = 0; i < d->ntables; i++)
			if (d->tables[i].started)
				d->tables[i].done = true;
	if (t)
		t->started = true;
}

static void
table_finished(dump_t *d, const char *name)
{
	for (int i = 0; i < d->ntables; i++)
		if (d->tables[i].started && !d->tables[i].done && strcmp(d->tables[i].name, name) == 0) {
			d->tables[i].done = true;
			return;
		}
	for (int i = 0; i < d->ntables; i++)
		if (!d->tables[i].done && strcmp(d->tables[i].name, name) == 0) {
			d->tables[i].done = true;
			return;
		}
}

/* text between the first and the last double quote */
static char *
quoted_part(const char *line)
{
	const char *a = strchr(line, '"'), *b = strrchr(line, '"');

	if (a == NULL || b == NULL || b <= a)
		return NULL;
	return strndup(a + 1, (size_t) (b - a - 1));
}

static void
on_tool_line(pgm_proc_t *p, int stream, const char *line, void *data)
{
	dump_t *d = data;
	const char *marker;
	char *full;

	pgm_debug("job %s: %s", d->step->job->name, line);
	if (strstr(line, "dumping contents of table ") || strstr(line, "processing data for table ")) {
		full = quoted_part(line);
		if (full)
			table_started(d, full);
		free(full);
		progress_update(d, false);
	} else if ((marker = strstr(line, " TABLE DATA ")) != NULL && strstr(line, "finished item ")) {
		table_finished(d, marker + strlen(" TABLE DATA "));
		progress_update(d, false);
	}
}

static void
on_restore_exit(pgm_proc_t *p, int64_t status, int sig, int timed_out, const char *tail, void *data)
{
	dump_t *d = data;
	pgm_step_t *s = d->step;
	pgm_job_t *job = s->job;
	cJSON *rec;
	int64_t total = pgm_mono_ms() - d->started_mono;
	char during[64];

	snprintf(during, sizeof(during), "%s copy", d->label);
	if (pgm_tool_failed(s, "pg_restore", during, status, sig, tail))
		return;
	for (int i = 0; i < d->ntables; i++)
		d->tables[i].done = true;
	progress_update(d, false);
	rec = cJSON_CreateObject();
	pgm_json_set_num(rec, "duration_ms", (double) total);
	pgm_json_set_num(rec, "dump_ms", (double) d->dump_ms);
	pgm_json_set_num(rec, "restore_ms", (double) (pgm_mono_ms() - d->phase_mono));
	pgm_json_set_num(rec, "tables", d->ntables);
	pgm_json_set_num(rec, "bytes", (double) d->bytes_total);
	pgm_json_set_num(rec, "jobs", d->jobs);
	pgm_json_set_str(rec, "engine", "pg_dump");
	pgm_json_set_time(rec, "finished_at", pgm_now_ms());
	pgm_json_set(pgm_json_obj(job->facts, "copies"), d->label, rec);
	if (strcmp(d->label, "rehearsal") == 0)
		pgm_json_set_num(job->facts, "expected_freeze_copy_seconds", (double) total / 1000.0);
	cJSON_Delete(job->progress);
	job->progress = NULL;
	pgm_job_checkpoint(job);
	pgm_notice("job %s: %s copy finished in %.1f s (%d tables, %lld bytes)", job->name, d->label,
		   (double) total / 1000.0, d->ntables, (long long) d->bytes_total);
	/* release the dump files now; the step goes on */
	pgm_step_disown(s, d);
	{
		void (*then)(pgm_step_t *) = d->then;
		dump_free(d);
		then(s);
	}
}

static void
on_dump_exit(pgm_proc_t *p, int64_t status, int sig, int timed_out, const char *tail, void *data)
{
	dump_t *d = data;
	char jobs[16];
	const char *args[] = {"--format=directory", "--jobs",          jobs,       "--verbose", "--no-owner",
			      "--no-acl",           "--exit-on-error", d->workdir, NULL};

	char during[64];

	snprintf(during, sizeof(during), "%s copy", d->label);
	if (pgm_tool_failed(d->step, "pg_dump", during, status, sig, tail))
		return;
	d->dump_ms = pgm_mono_ms() - d->phase_mono;
	phase_reset(d, "restore");
	progress_update(d, true);
	snprintf(jobs, sizeof(jobs), "%d", d->jobs);
	pgm_tool_spawn(d->step, "pg_restore", args, false, NULL, on_tool_line, on_restore_exit, d);
}

static void
start_dump(pgm_step_t *s, void *data)
{
	dump_t *d = data;
	char jobs[16];

	if (!pgm_rmtree(d->workdir)) {
		pgm_step_fail(s, "could not remove an old dump directory", d->workdir, "check state_dir permissions");
		return;
	}
	phase_reset(d, "dump");
	progress_update(d, true);
	snprintf(jobs, sizeof(jobs), "%d", d->jobs);
	{
		const char *args[] = {"--format=directory", "--jobs", jobs,       "--verbose", "--compress=0",
				      "--no-sync",          "--file", d->workdir, NULL};
		pgm_tool_spawn(s, "pg_dump", args, true, NULL, on_tool_line, on_dump_exit, d);
	}
}

static void
on_sizes(pgm_step_t *s, const PGresult *res, void *data)
{
	dump_t *d = data;
	int n = pgm_pg_ntuples(res);

	d->tables = pgm_calloc((size_t) n + 1, sizeof(dump_table_t));
	d->ntables = n;
	for (int r = 0; r < n; r++) {
		d->tables[r].full = pgm_strdup(pgm_pg_value(res, r, 0));
		d->tables[r].name = pgm_strdup(pgm_pg_value(res, r, 1));
		d->tables[r].size = pgm_pg_int64(res, r, 2, 0);
		d->bytes_total += d->tables[r].size;
	}
}

static const char *sizes_sql =
	"SELECT n.nspname || '.' || c.relname, c.relname, pg_table_size(c.oid)"
	"  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
	" WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
	"   AND n.nspname !~ '^pg_toast' AND n.nspname !~ '^pg_temp_'"
	"   AND NOT EXISTS (SELECT 1 FROM pg_depend dep WHERE dep.classid = 'pg_class'::regclass"
	"                     AND dep.objid = c.oid AND dep.deptype = 'e')"
	" ORDER BY 3 DESC";

static void
after_clean(pgm_step_t *s, void *data)
{
	dump_t *d = data;
	pgm_sql_t *q;

	q = pgm_sql_begin(s, true, "sizes", "could not list the tables of the source",
			  "check that the source role can read the catalog");
	pgm_sql_add(q, sizes_sql, on_sizes, d);
	pgm_sql_run(q, start_dump, d);
}

void
pgm_dump_copy(pgm_step_t *s, const char *label, void (*then)(pgm_step_t *s))
{
	pgm_job_t *job = s->job;
	dump_t *d = pgm_calloc(1, sizeof(*d));
	pgm_sql_t *q;

	d->step = s;
	d->label = pgm_strdup(label);
	d->then = then;
	d->workdir = pgm_asprintf("%s/copy-%s", job->dir, label);
	d->jobs = (int) pgm_jobopt_int(job->options, "jobs");
	d->started_mono = pgm_mono_ms();
	phase_reset(d, "prepare");
	pgm_step_own(s, d, dump_free);
	pgm_notice("job %s: %s copy starts (%d parallel jobs)", job->name, label, d->jobs);

	q = pgm_sql_begin(s, false, "clean", "could not clean the target before the copy",
			  "the target role must own the target database and the objects in it");
	pgm_target_clean(q, job);
	pgm_sql_run(q, after_clean, d);
}

typedef struct clean {
	void (*then)(pgm_step_t *s);
} clean_t;

static void
clean_done(pgm_step_t *s, void *data)
{
	clean_t *c = data;

	pgm_json_set(s->job->facts, "target_owned", cJSON_CreateFalse());
	pgm_job_checkpoint(s->job);
	c->then(s);
}

void
pgm_dump_clean_target(pgm_step_t *s, void (*then)(pgm_step_t *s))
{
	clean_t *c = pgm_calloc(1, sizeof(*c));
	pgm_sql_t *q;

	c->then = then;
	if (s->priv && s->priv_free)
		s->priv_free(s->priv);
	s->priv = c;
	s->priv_free = free;
	q = pgm_sql_begin(s, false, "clean", "could not drop what pgmover restored into the target",
			  "the target role must own the target database and the objects in it");
	pgm_target_clean(q, s->job);
	pgm_sql_run(q, clean_done, c);
}
