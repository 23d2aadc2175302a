/*
 * copy.c — pgmover's own copy engine: COPY ... TO STDOUT on the source
 * streamed into COPY ... FROM STDIN on the target over parallel
 * connections, all reading one exported snapshot, with no temporary files.
 *
 *   1. the target is cleaned (tools.c) while a "holder" transaction on the
 *      source exports a snapshot (pg_export_snapshot) and keeps it open;
 *      the tables, their columns and sizes, and the sequences' values are
 *      read inside it;
 *   2. pre-data schema: pg_dump --schema-only --snapshot into a small
 *      archive, pg_restore --section=pre-data (no indexes or constraints)
 *      once the target is clean too;
 *   3. data: `jobs` workers, each a source connection in the snapshot
 *      (SET TRANSACTION SNAPSHOT) and a target connection, take chunks from
 *      one queue, largest first. A chunk is a table, truncated and loaded
 *      WITH (FREEZE) in the same transaction -- or, for a table larger than
 *      split_tables_larger_than, a ctid block range of it, so that several
 *      streams work on one big table. Binary format between equal major
 *      versions;
 *   4. post-data (indexes, constraints, triggers) with pg_restore: the
 *      indexes and constraints of a table whose data is in are built while
 *      the other tables copy, in waves on the connections of the workers
 *      that have run out of chunks (never more than `jobs` per side); the
 *      rest -- foreign keys, triggers, what belongs to no one table, and
 *      the tables copied last -- with pg_restore -j once the data is in;
 *   5. the materialized views populated on the source refreshed, those
 *      that read others after them (a schema-only archive has no
 *      REFRESH entries: without this they would stay unpopulated, and
 *      every query of one would fail on the new primary);
 *   6. sequences set to the values read in the snapshot.
 *
 * Back-pressure: a worker stops reading the source while libpq holds
 * unsent data for the target, and resumes when it drains.
 */
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "pipeline/copy/copy.h"
#include "pipeline/matviews.h"
#include "pipeline/sql.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define COPY_BUF (256 * 1024)
#define FREEZE_MIN_BYTES (1024 * 1024) /* smaller tables load without TRUNCATE ... FREEZE */
#define MAX_WORKERS 32

typedef struct ctable {
	char *name;  /* schema.table as shown */
	char *ident; /* "schema"."table" */
	char *cols;  /* "(a, b)": quoted columns without generated ones, or "" */
	int64_t bytes, blocks;
	int64_t bytes_done;    /* estimated bytes of the chunks copied */
	int64_t rows_estimate; /* pg_class.reltuples; -1 never analyzed */
	int chunks, chunks_done;
	uint32_t oid; /* on the source */
} ctable_t;

/* a post-data entry of the schema's archive */
typedef struct post_entry {
	char *line; /* as pg_restore --list shows it */
	int table;  /* the one table it is built on (an index, a constraint but a foreign key), else -1 */
	bool early; /* restored by a wave while the data was copied */
} post_entry_t;

/* what a post-data entry is built on: an index's or a constraint's table */
typedef struct post_dep {
	uint32_t classid, objid, relid;
} post_dep_t;

/* a table's OID on the source, and its place in the engine's tables */
typedef struct table_oid {
	uint32_t oid;
	int table;
} table_oid_t;

typedef struct chunk {
	int table;
	int64_t from, to; /* block range; to < 0: open-ended; from < 0: whole table */
	int64_t est_bytes;
} chunk_t;

typedef struct copy_engine copy_engine_t;

typedef struct worker {
	copy_engine_t *cp;
	int id;
	pgm_pg_conn_t *src, *dst;
	bool src_ready, dst_ready;
	chunk_t *cur;
	bool in_tx;        /* the target chunk runs in BEGIN ... COMMIT (FREEZE) */
	bool copy_started; /* the target took the COPY: data flows (errors after this are mid-load) */
	bool paused;
	bool ending;
	int64_t chunk_rows; /* what the target's COPY of the chunk said it loaded */
	char *buf;
	size_t len;
} worker_t;

struct copy_engine {
	pgm_step_t *step;
	char *label;
	void (*then)(pgm_step_t *s);
	char *workdir, *archive;
	pgm_pg_conn_t *holder;
	char *snapshot;
	bool binary;
	ctable_t *tables;
	int ntables;
	chunk_t *chunks;
	int nchunks, next_chunk, chunks_done;
	char **seq_sql; /* setval statements for the target */
	int nseq;
	char **matviews; /* populated on the source, in the order they are refreshed */
	int nmatviews;
	worker_t workers[MAX_WORKERS];
	int nworkers, workers_idle;
	int64_t bytes_total, bytes_done, bytes_streamed;
	int64_t rows_done;     /* rows the target's COPYs loaded, chunks committed */
	int64_t rows_estimate; /* the tables' reltuples summed, or -1 when one was never analyzed */
	int64_t started_mono, phase_mono, data_ms, last_save;
	const char *phase;
	cJSON *phases_ms;  /* how long each phase took: {"schema": 120, "data": 4500, ...} */
	int post_total;    /* post-data entries (indexes, constraints, ...) to restore */
	int post_started;  /* the last pg_restore --verbose: entries it began */
	int post_finished; /* and, restoring in parallel, entries it finished */
	post_entry_t *post;
	post_dep_t *deps;
	int ndeps;
	table_oid_t *by_oid; /* the tables by OID */
	bool toc_ready;      /* the post-data entries are listed */
	bool data_done;      /* every chunk is copied */
	bool wave_running;   /* a pg_restore of the entries of copied tables, beside the data */
	int waves;           /* such waves run */
	int wave_entries;    /* entries the running wave restores */
	int post_early;      /* entries the waves restored */
	bool failed;
	bool cleaned, dumped; /* the target cleaned, the schema dumped: both before the pre-data restore */
	int64_t clean_ms;     /* from the copy's start: beside the snapshot and the schema dump */
	char *xsnapshot;      /* pg_current_snapshot() of the copy: which transactions it holds */
	pgm_copy_opts_t opts;
	pgm_buf_t toc_later; /* post-data entries held back when opts.defer_constraints */
};

static void worker_next(worker_t *w);

static void
copy_free(void *p)
{
	copy_engine_t *cp = p;

	for (int i = 0; i < cp->ntables; i++) {
		free(cp->tables[i].name);
		free(cp->tables[i].ident);
		free(cp->tables[i].cols);
	}
	free(cp->tables);
	free(cp->chunks);
	for (int i = 0; i < cp->nseq; i++)
		free(cp->seq_sql[i]);
	free(cp->seq_sql);
	for (int i = 0; i < cp->nmatviews; i++)
		free(cp->matviews[i]);
	free(cp->matviews);
	for (int i = 0; i < cp->nworkers; i++)
		free(cp->workers[i].buf);
	if (cp->workdir && !pgm_rmtree(cp->workdir))
		pgm_warning("could not remove \"%s\": %s", cp->workdir, strerror(errno));
	free(cp->workdir);
	free(cp->archive);
	free(cp->snapshot);
	free(cp->xsnapshot);
	free(cp->label);
	for (int i = 0; i < cp->post_total; i++)
		free(cp->post[i].line);
	free(cp->post);
	free(cp->deps);
	free(cp->by_oid);
	free(cp->toc_later.s);
	cJSON_Delete(cp->phases_ms);
	free(cp);
}

static void
set_phase(copy_engine_t *cp, const char *phase)
{
	if (cp->phase != NULL) {
		if (cp->phases_ms == NULL)
			cp->phases_ms = cJSON_CreateObject();
		pgm_json_set_num(cp->phases_ms, cp->phase, (double) (pgm_mono_ms() - cp->phase_mono));
	}
	cp->phase = phase;
	cp->phase_mono = pgm_mono_ms();
	pgm_info("job %s: %s copy: %s", cp->step->job->name, cp->label, phase);
}

/* post-data entries restored so far (a serial pg_restore finishes one as it begins the next) */
static int
post_done(const copy_engine_t *cp)
{
	int done = cp->post_finished > 0 ? cp->post_finished : cp->post_started - 1;

	done = (done < 0 ? 0 : done) + cp->post_early;
	return done > cp->post_total ? cp->post_total : done;
}

/*
 * How long the step still takes, ETA for all of it: the data left at the
 * current rate, plus what came after the data in the rehearsal (indexes,
 * constraints, sequences: measured, not guessed). Without a rehearsal the
 * data's ETA alone, said as such ("eta_covers": "data").
 */
static void
step_eta(copy_engine_t *cp, cJSON *p, double rate)
{
	const cJSON *reh = cJSON_GetObjectItem(cJSON_GetObjectItem(cp->step->job->facts, "copies"), "rehearsal");
	double after_data = -1, in_phase = (double) (pgm_mono_ms() - cp->phase_mono);
	const cJSON *ph = cJSON_GetObjectItem(reh, "phases_ms");

	/* the phases after the data; a copy with no materialized view or sequence has no such phase */
	if (strcmp(cp->label, "rehearsal") != 0 && cJSON_IsNumber(cJSON_GetObjectItem(ph, "post-data")))
		after_data = pgm_json_num(ph, "post-data", 0) + pgm_json_num(ph, "materialized views", 0) +
			     pgm_json_num(ph, "sequences", 0);
	if (strcmp(cp->phase, "data") == 0) {
		double data_left = rate > 0 ? (double) (cp->bytes_total - cp->bytes_done) / rate : -1;

		if (data_left >= 0)
			pgm_json_set_num(p, "data_eta_seconds", data_left);
		if (data_left >= 0 && after_data >= 0) {
			pgm_json_set_num(p, "eta_seconds", data_left + after_data / 1000.0);
			pgm_json_set_str(p, "eta_covers", "step");
		} else if (data_left >= 0) {
			pgm_json_set_num(p, "eta_seconds", data_left);
			pgm_json_set_str(p, "eta_covers", "data");
		} else {
			pgm_json_set(p, "eta_seconds", cJSON_CreateNull());
		}
		return;
	}
	if (strcmp(cp->phase, "post-data") == 0 && after_data >= 0) {
		double left = after_data - in_phase;

		pgm_json_set_num(p, "eta_seconds", (left > 0 ? left : 0) / 1000.0);
		pgm_json_set_str(p, "eta_covers", "step");
		return;
	}
	if (strcmp(cp->phase, "post-data") == 0 && post_done(cp) > 0 && cp->post_total > 0) {
		/* no rehearsal: the entries left at the pace of those done (indexes differ; a rough figure) */
		double per = in_phase / post_done(cp);

		pgm_json_set_num(p, "eta_seconds", per * (cp->post_total - post_done(cp)) / 1000.0);
		pgm_json_set_str(p, "eta_covers", "step");
		return;
	}
	pgm_json_set(p, "eta_seconds", cJSON_CreateNull());
}

static void
progress_update(copy_engine_t *cp, bool force_save)
{
	pgm_job_t *job = cp->step->job;
	cJSON *p = cJSON_CreateObject();
	int tables_done = 0;
	int64_t elapsed = pgm_mono_ms() - cp->phase_mono;
	double rate = 0;

	for (int i = 0; i < cp->ntables; i++)
		if (cp->tables[i].chunks_done == cp->tables[i].chunks)
			tables_done++;
	if (strcmp(cp->phase, "data") == 0 && elapsed > 0)
		rate = (double) cp->bytes_done * 1000.0 / (double) elapsed;
	pgm_json_set_str(p, "name", cp->label);
	pgm_json_set_str(p, "phase", cp->phase);
	pgm_json_set_str(p, "engine", "copy");
	pgm_json_set_num(p, "tables_done", tables_done);
	pgm_json_set_num(p, "tables_total", cp->ntables);
	pgm_json_set_num(p, "chunks_done", cp->chunks_done);
	pgm_json_set_num(p, "chunks_total", cp->nchunks);
	pgm_json_set_num(p, "bytes_done", (double) cp->bytes_done);
	pgm_json_set_num(p, "bytes_total", (double) cp->bytes_total);
	pgm_json_set_num(p, "bytes_streamed", (double) cp->bytes_streamed);
	pgm_json_set_num(p, "rows_done", (double) cp->rows_done);
	if (cp->rows_estimate >= 0)
		pgm_json_set_num(p, "rows_estimate", (double) cp->rows_estimate);
	pgm_json_set_num(p, "rate_bytes_per_sec", rate);
	if (strcmp(cp->phase, "post-data") == 0 && cp->post_total > 0) {
		pgm_json_set_num(p, "items_done", post_done(cp));
		pgm_json_set_num(p, "items_total", cp->post_total);
	}
	step_eta(cp, p, rate);
	pgm_json_set_num(p, "elapsed_ms", (double) (pgm_mono_ms() - cp->started_mono));
	pgm_job_set_progress(job, p);
	if (force_save || pgm_mono_ms() - cp->last_save > 5000) {
		cp->last_save = pgm_mono_ms();
		pgm_job_checkpoint(job);
	}
}

static void
engine_fail_pg(copy_engine_t *cp, const char *what, const pgm_pg_error_t *err)
{
	if (cp->failed)
		return;
	cp->failed = true;
	pgm_step_fail_pg(cp->step, what, err, "fix the cause, then \"pgmover retry\" starts the copy again");
}

/*
 * status --tables: each table's state in this copy (waiting, copying,
 * copied), its estimated size and what of it is copied, the tables being
 * copied first, like pgcopydb's "list progress".
 */
static cJSON *
copy_tables_progress(pgm_step_t *s)
{
	copy_engine_t *cp = s->tables_data;
	cJSON *arr = cJSON_CreateArray();

	for (int pass = 0; pass < 3; pass++) {
		for (int i = 0; i < cp->ntables; i++) {
			const ctable_t *t = &cp->tables[i];
			bool busy = false;
			const char *state;
			cJSON *o;

			for (int w = 0; w < cp->nworkers; w++)
				busy |= cp->workers[w].cur != NULL && cp->workers[w].cur->table == i;
			state = t->chunks_done == t->chunks  ? "copied"
				: busy || t->chunks_done > 0 ? "copying"
							     : "waiting";
			if ((pass == 0) != (strcmp(state, "copying") == 0) ||
			    (pass == 1) != (strcmp(state, "waiting") == 0))
				continue;
			o = cJSON_CreateObject();
			pgm_json_set_str(o, "table", t->name);
			pgm_json_set_str(o, "state", state);
			pgm_json_set_num(o, "bytes_total", (double) t->bytes);
			pgm_json_set_num(o, "bytes_done",
					 (double) (t->chunks_done == t->chunks ? t->bytes : t->bytes_done));
			pgm_json_set_num(o, "chunks_done", t->chunks_done);
			pgm_json_set_num(o, "chunks_total", t->chunks);
			cJSON_AddItemToArray(arr, o);
		}
	}
	return arr;
}

/* ---- 5. materialized views, 6. sequences, then the end ---- */

static void
copy_finished(pgm_step_t *s, void *data)
{
	copy_engine_t *cp = data;
	pgm_job_t *job = s->job;
	cJSON *rec = cJSON_CreateObject();
	int64_t total = pgm_mono_ms() - cp->started_mono;
	void (*then)(pgm_step_t *) = cp->then;

	set_phase(cp, "finished"); /* closes the last phase's time */
	pgm_json_set_num(rec, "duration_ms", (double) total);
	pgm_json_set_num(rec, "data_ms", (double) cp->data_ms);
	pgm_json_set_num(rec, "clean_ms", (double) cp->clean_ms);
	if (cp->phases_ms != NULL) {
		cJSON_AddItemToObject(rec, "phases_ms", cp->phases_ms);
		cp->phases_ms = NULL;
	}
	pgm_json_set_num(rec, "post_data_entries", cp->post_total);
	/* built beside the data, in how many waves */
	pgm_json_set_num(rec, "post_data_early_entries", cp->post_early);
	pgm_json_set_num(rec, "post_data_waves", cp->waves);
	pgm_json_set_num(rec, "tables", cp->ntables);
	pgm_json_set_num(rec, "chunks", cp->nchunks);
	pgm_json_set_num(rec, "bytes", (double) cp->bytes_total);
	pgm_json_set_num(rec, "bytes_streamed", (double) cp->bytes_streamed);
	pgm_json_set_num(rec, "rows", (double) cp->rows_done);
	if (cp->rows_estimate >= 0)
		pgm_json_set_num(rec, "rows_estimate", (double) cp->rows_estimate);
	pgm_json_set_num(rec, "sequences", cp->nseq);
	pgm_json_set_num(rec, "materialized_views", cp->nmatviews);
	pgm_json_set_num(rec, "jobs", cp->nworkers);
	pgm_json_set_str(rec, "engine", "copy");
	pgm_json_set_str(rec, "format", cp->binary ? "binary" : "text");
	if (cp->xsnapshot)
		pgm_json_set_str(rec, "snapshot", cp->xsnapshot);
	pgm_json_set_time(rec, "finished_at", pgm_now_ms());
	pgm_json_set(pgm_json_obj(job->facts, "copies"), cp->label, rec);
	if (strcmp(cp->label, "rehearsal") == 0)
		pgm_json_set_num(job->facts, "expected_freeze_copy_seconds", (double) total / 1000.0);
	cJSON_Delete(job->progress);
	job->progress = NULL;
	s->tables_progress = NULL;
	s->tables_data = NULL;
	pgm_job_checkpoint(job);
	pgm_notice("job %s: %s copy finished in %.1f s (%d tables, %d chunks, %lld bytes streamed)", job->name,
		   cp->label, (double) total / 1000.0, cp->ntables, cp->nchunks, (long long) cp->bytes_streamed);
	pgm_step_disown(s, cp);
	copy_free(cp);
	then(s);
}

static void
set_sequences(copy_engine_t *cp)
{
	pgm_step_t *s = cp->step;
	pgm_sql_t *q;

	if (cp->nseq == 0) {
		copy_finished(s, cp);
		return;
	}
	set_phase(cp, "sequences");
	q = pgm_sql_begin(s, false, "sequences", "could not set the sequences on the target", NULL);
	/* one statement per batch of 200 keeps the script short */
	for (int i = 0; i < cp->nseq; i += 200) {
		pgm_buf_t sql = {0};

		pgm_buf_append(&sql, "SELECT ");
		for (int k = i; k < cp->nseq && k < i + 200; k++) {
			if (k > i)
				pgm_buf_append(&sql, ", ");
			pgm_buf_append(&sql, cp->seq_sql[k]);
		}
		pgm_sql_add(q, sql.s, NULL, NULL);
		free(sql.s);
	}
	pgm_sql_run(q, copy_finished, cp);
}

static void
after_matviews(pgm_step_t *s, void *data)
{
	set_sequences(data);
}

static void
refresh_matviews(copy_engine_t *cp)
{
	if (cp->nmatviews > 0)
		set_phase(cp, "materialized views");
	pgm_matviews_refresh_names(cp->step, cp->matviews, cp->nmatviews, after_matviews, cp);
}

/* ---- 4. post-data ---- */

static void
on_post_exit(pgm_proc_t *p, int64_t status, int sig, int timed_out, const char *tail, void *data)
{
	copy_engine_t *cp = data;

	if (pgm_tool_failed(cp->step, "pg_restore", "restore of indexes and constraints into the target", status, sig,
			    tail))
		return;
	refresh_matviews(cp);
}

static void
on_tool_line(pgm_proc_t *p, int stream, const char *line, void *data)
{
	copy_engine_t *cp = data;

	pgm_debug("job %s: %s", cp->step->job->name, line);
	if (cp->phase == NULL || strcmp(cp->phase, "post-data") != 0 || cp->wave_running)
		return;
	/* pg_restore --verbose: "creating INDEX ..." as it begins an entry, "finished item N ..." in parallel */
	if (strncmp(line, "pg_restore: creating ", 21) == 0)
		cp->post_started++;
	else if (strncmp(line, "pg_restore: finished item ", 26) == 0)
		cp->post_finished++;
	else
		return;
	progress_update(cp, false);
}

static int
oid_cmp(const void *a, const void *b)
{
	const table_oid_t *x = a, *y = b;

	return x->oid < y->oid ? -1 : x->oid > y->oid;
}

static int
dep_cmp(const void *a, const void *b)
{
	const post_dep_t *x = a, *y = b;

	if (x->classid != y->classid)
		return x->classid < y->classid ? -1 : 1;
	return x->objid < y->objid ? -1 : x->objid > y->objid;
}

/* the copied table a listed entry ("ID; CLASSID OBJID TYPE ...") is built on, or -1 */
static int
entry_table(const copy_engine_t *cp, const char *line)
{
	post_dep_t key = {0}, *d;
	table_oid_t t = {0}, *found;
	unsigned long classid, objid;
	char *end;
	const char *q = strchr(line, ';');

	if (q == NULL)
		return -1;
	classid = strtoul(q + 1, &end, 10);
	objid = strtoul(end, &end, 10);
	if (classid == 0 || objid == 0 || classid > UINT32_MAX || objid > UINT32_MAX)
		return -1;
	key.classid = (uint32_t) classid;
	key.objid = (uint32_t) objid;
	d = cp->ndeps ? bsearch(&key, cp->deps, (size_t) cp->ndeps, sizeof(*d), dep_cmp) : NULL;
	if (d == NULL)
		return -1;
	t.oid = d->relid;
	found = cp->ntables ? bsearch(&t, cp->by_oid, (size_t) cp->ntables, sizeof(t), oid_cmp) : NULL;
	return found ? found->table : -1;
}

/*
 * A line of pg_restore --list: the entries of pgmover's capture are never
 * restored; with defer_constraints, foreign keys and triggers wait until the
 * last change is applied (they would check and fire on rows that are still
 * arriving in another order than the source's), and the comments on
 * constraints and triggers with them ("COMMENT SCHEMA CONSTRAINT NAME ON
 * TABLE OWNER": made before its foreign key, the comment fails the restore;
 * one on another constraint only comes later).
 */
static void
on_toc_line(pgm_proc_t *p, int stream, const char *line, void *data)
{
	copy_engine_t *cp = data;
	const char *body = strchr(line, ';');
	post_entry_t *e;

	if (stream != 1 || line[0] == ';' || body == NULL)
		return;
	if (strstr(body, " TRIGGER ") && strstr(body, " " PGM_CAPTURE_TRIGGER_PREFIX))
		return;
	if (cp->opts.defer_constraints && (strstr(body, " FK CONSTRAINT ") || strstr(body, " TRIGGER ") ||
					   (strstr(body, " COMMENT ") && strstr(body, " CONSTRAINT ")))) {
		pgm_buf_appendf(&cp->toc_later, "%s\n", line);
		return;
	}
	cp->post = pgm_realloc(cp->post, sizeof(*cp->post) * (size_t) (cp->post_total + 1));
	e = &cp->post[cp->post_total++];
	e->line = pgm_strdup(line);
	e->table = entry_table(cp, line);
	e->early = false;
}

/* an entry a wave may restore: not restored yet, and built on a table all copied */
static bool
entry_ready(const copy_engine_t *cp, const post_entry_t *e)
{
	return !e->early && e->table >= 0 && cp->tables[e->table].chunks_done == cp->tables[e->table].chunks;
}

/* into a list file: a wave's entries (marked as restored early), else every entry not restored yet */
static bool
write_list(copy_engine_t *cp, const char *path, bool wave, int *count)
{
	pgm_buf_t b = {0};
	bool ok;

	*count = 0;
	for (int i = 0; i < cp->post_total; i++) {
		post_entry_t *e = &cp->post[i];

		if (wave ? !entry_ready(cp, e) : e->early)
			continue;
		pgm_buf_appendf(&b, "%s\n", e->line);
		e->early |= wave;
		(*count)++;
	}
	ok = pgm_file_replace(path, b.s ? b.s : "", b.s ? strlen(b.s) : 0, 0600);
	free(b.s);
	return ok;
}

static void
run_restore(copy_engine_t *cp, const char *list, int jobs, pgm_proc_exit_cb on_exit)
{
	char j[16], *l = pgm_asprintf("--use-list=%s", list);
	/* --verbose: a line per entry begun and finished, for the progress (items i/n) */
	const char *args[] = {"--section=post-data", "--jobs",    j, "--no-owner", "--no-acl", "--exit-on-error",
			      "--verbose",           cp->archive, l, NULL};

	snprintf(j, sizeof(j), "%d", jobs);
	pgm_tool_spawn(cp->step, "pg_restore", args, false, "-c maintenance_work_mem=256MB -c synchronous_commit=off",
		       on_tool_line, on_exit, cp);
	free(l);
}

/* every chunk copied and every entry listed: the rest of the post-data, on all the connections */
static void
run_post_data(copy_engine_t *cp)
{
	char *list = pgm_asprintf("%s/post-data.list", cp->workdir);
	int n;

	/* no more jobs than entries: each job is a connection (and a process) more to start */
	if (!write_list(cp, list, false, &n))
		pgm_step_fail(cp->step, "could not write the list of the schema's post-data entries", list,
			      "check free space and permissions of state_dir");
	else
		run_restore(cp, list, n < 1 ? 1 : n < cp->nworkers ? n : cp->nworkers, on_post_exit);
	free(list);
}

static void try_wave(copy_engine_t *cp);

static void
on_wave_exit(pgm_proc_t *p, int64_t status, int sig, int timed_out, const char *tail, void *data)
{
	copy_engine_t *cp = data;

	cp->wave_running = false;
	if (pgm_tool_failed(cp->step, "pg_restore",
			    "restore of indexes and constraints into the target (tables already copied)", status, sig,
			    tail))
		return;
	cp->post_early += cp->wave_entries;
	cp->wave_entries = 0;
	if (cp->data_done)
		run_post_data(cp);
	else
		try_wave(cp);
}

/*
 * The indexes and constraints of the tables copied so far, built while the
 * others copy: one wave at a time, with as many pg_restore jobs as workers
 * have run out of chunks (they closed their connections), so that no more
 * than `jobs` connections reach the target. A wave that starts no entry
 * (none is ready) waits for the next table to be copied.
 */
static void
try_wave(copy_engine_t *cp)
{
	char *list;
	int n = 0;

	if (!cp->toc_ready || cp->data_done || cp->wave_running || cp->workers_idle < 1 || cp->failed ||
	    cp->step->finished)
		return;
	for (int i = 0; i < cp->post_total && n == 0; i++)
		n = entry_ready(cp, &cp->post[i]);
	if (n == 0)
		return;
	list = pgm_asprintf("%s/post-data-%d.list", cp->workdir, cp->waves + 1);
	if (!write_list(cp, list, true, &n)) {
		pgm_step_fail(cp->step, "could not write the list of the schema's post-data entries", list,
			      "check free space and permissions of state_dir");
		free(list);
		return;
	}
	cp->waves++;
	cp->wave_entries = n;
	cp->wave_running = true;
	pgm_info("job %s: %s copy: building %d index(es) and constraint(s) of copied tables beside the data (wave %d)",
		 cp->step->job->name, cp->label, n, cp->waves);
	run_restore(cp, list, n < cp->workers_idle ? n : cp->workers_idle, on_wave_exit);
	free(list);
}

static void
on_toc_exit(pgm_proc_t *p, int64_t status, int sig, int timed_out, const char *tail, void *data)
{
	copy_engine_t *cp = data;
	pgm_job_t *job = cp->step->job;
	char *later = pgm_asprintf("%s/deferred.list", job->dir), *keep = pgm_asprintf("%s/deferred.dump", job->dir);
	char *arch = NULL;
	size_t n = 0;
	bool ok;

	if (pgm_tool_failed(cp->step, "pg_restore", "listing of the schema", status, sig, tail))
		goto out;
	if (cp->opts.defer_constraints) {
		ok = pgm_file_replace(later, cp->toc_later.s ? cp->toc_later.s : "",
				      cp->toc_later.s ? strlen(cp->toc_later.s) : 0, 0600);
		/* the archive the deferred entries come from outlives the copy's work directory */
		if (ok && (arch = pgm_file_read(cp->archive, (size_t) 1 << 30, &n)) != NULL)
			ok = pgm_file_replace(keep, arch, n, 0600);
		else
			ok = false;
		free(arch);
		if (!ok) {
			pgm_step_fail(cp->step, "could not write the lists of the schema's post-data entries", job->dir,
				      "check free space and permissions of state_dir");
			goto out;
		}
		{
			int lines = 0;

			for (const char *q = cp->toc_later.s; q && *q; q++)
				lines += *q == '\n';
			pgm_json_set_num(pgm_json_obj(job->facts, "copies"), "deferred_entries", lines);
		}
	}
	cp->toc_ready = true;
	if (cp->data_done && !cp->wave_running)
		run_post_data(cp);
	else
		try_wave(cp);
out:
	free(later);
	free(keep);
}

/* the archive's post-data entries listed, beside the data: how many, which wait (defer_constraints) */
static void
list_post_data(copy_engine_t *cp)
{
	const char *args[] = {"--list", "--section=post-data", cp->archive, NULL};

	pgm_tool_spawn_dsn(cp->step, "pg_restore", args, NULL, NULL, on_toc_line, on_toc_exit, cp);
}

/* ---- 3. data: workers and chunks ---- */

static void
worker_close(worker_t *w)
{
	pgm_step_close_conn(w->cp->step, w->src);
	pgm_step_close_conn(w->cp->step, w->dst);
	w->src = w->dst = NULL;
}

/* every chunk copied: the snapshot can go, the indexes come next */
static void
data_finished(copy_engine_t *cp)
{
	cp->data_ms = pgm_mono_ms() - cp->phase_mono;
	for (int i = 0; i < cp->nworkers; i++)
		worker_close(&cp->workers[i]);
	pgm_step_close_conn(cp->step, cp->holder);
	cp->holder = NULL;
	pgm_info("job %s: %s copy: data copied in %.1f s (%lld bytes streamed)", cp->step->job->name, cp->label,
		 (double) cp->data_ms / 1000.0, (long long) cp->bytes_streamed);
	cp->data_done = true;
	set_phase(cp, "post-data");
	progress_update(cp, true);
	/* else the listing's end, or the running wave's, starts the rest */
	if (cp->toc_ready && !cp->wave_running)
		run_post_data(cp);
}

static void
chunk_done(worker_t *w)
{
	copy_engine_t *cp = w->cp;
	chunk_t *c = w->cur;

	cp->tables[c->table].chunks_done++;
	cp->tables[c->table].bytes_done += c->est_bytes;
	cp->chunks_done++;
	cp->bytes_done += c->est_bytes;
	if (w->chunk_rows > 0)
		cp->rows_done += w->chunk_rows;
	w->chunk_rows = 0;
	w->cur = NULL;
	progress_update(cp, false);
	/* a table copied: its indexes may go into a wave, on another worker's connections */
	if (cp->tables[c->table].chunks_done == cp->tables[c->table].chunks)
		try_wave(cp);
	worker_next(w);
}

static void
on_commit(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	worker_t *w = data;

	if (err) {
		engine_fail_pg(w->cp, "could not commit a copied table on the target", err);
		return;
	}
	chunk_done(w);
}

static void
on_dst_end(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	worker_t *w = data;
	char *what;

	if (err) {
		what = pgm_asprintf("could not load %s into the target", w->cp->tables[w->cur->table].name);
		engine_fail_pg(w->cp, what, err);
		free(what);
		return;
	}
	w->chunk_rows = pgm_pg_cmd_rows(res);
	if (w->in_tx) {
		pgm_pg_query(w->dst, "COMMIT", 0, NULL, on_commit, w);
		return;
	}
	chunk_done(w);
}

static void
flush_buf(worker_t *w)
{
	if (w->len == 0)
		return;
	if (!pgm_pg_copy_in_put(w->dst, w->buf, (int) w->len)) {
		/* the target refused the data: ending the COPY brings its error */
		w->ending = true;
		pgm_pg_copy_out_pause(w->src, true);
		pgm_pg_copy_in_end(w->dst, "pgmover: the target failed", on_dst_end, w);
	}
	w->len = 0;
}

static void
on_dst_drained(pgm_pg_conn_t *conn, void *data)
{
	worker_t *w = data;

	if (w->paused && !w->ending) {
		w->paused = false;
		pgm_pg_copy_out_pause(w->src, false);
	}
}

static void
on_src_data(pgm_pg_conn_t *conn, const char *chunk, int len, const pgm_pg_error_t *err, void *data)
{
	worker_t *w = data;
	copy_engine_t *cp = w->cp;

	if (w->ending)
		return;
	if (chunk == NULL) {
		if (err) {
			char *what = pgm_asprintf("could not read %s from the source", cp->tables[w->cur->table].name);
			engine_fail_pg(cp, what, err);
			free(what);
			return;
		}
		flush_buf(w);
		if (!w->ending) {
			w->ending = true;
			pgm_pg_copy_in_end(w->dst, NULL, on_dst_end, w);
		}
		return;
	}
	cp->bytes_streamed += len;
	if (w->len + (size_t) len > COPY_BUF) {
		flush_buf(w);
		if (w->ending)
			return;
		if (pgm_pg_copy_in_backlogged(w->dst)) {
			/* the target is slower: stop reading the source until it drains */
			w->paused = true;
			pgm_pg_copy_out_pause(w->src, true);
			pgm_pg_copy_in_on_drain(w->dst, on_dst_drained, w);
		}
	}
	if ((size_t) len > COPY_BUF) {
		/* one row larger than the buffer goes straight through */
		if (!pgm_pg_copy_in_put(w->dst, chunk, len)) {
			w->len = 0;
			flush_buf(w);
		}
		return;
	}
	memcpy(w->buf + w->len, chunk, (size_t) len);
	w->len += (size_t) len;
}

static char *
chunk_select(copy_engine_t *cp, chunk_t *c)
{
	ctable_t *t = &cp->tables[c->table];
	const char *fmt = cp->binary ? "(FORMAT binary)" : "(FORMAT text)";
	/* the select list is the column list without its parentheses */
	char *list = t->cols[0] ? strndup(t->cols + 1, strlen(t->cols) - 2) : pgm_strdup("*");
	char *out;

	if (c->from < 0)
		out = pgm_asprintf("COPY %s %s TO STDOUT %s", t->ident, t->cols, fmt);
	else if (c->to < 0)
		out = pgm_asprintf("COPY (SELECT %s FROM ONLY %s WHERE ctid >= '(%lld,0)'::tid) TO STDOUT %s", list,
				   t->ident, (long long) c->from, fmt);
	else
		out = pgm_asprintf(
			"COPY (SELECT %s FROM ONLY %s WHERE ctid >= '(%lld,0)'::tid AND ctid < '(%lld,0)'::tid)"
			" TO STDOUT %s",
			list, t->ident, (long long) c->from, (long long) c->to, fmt);
	free(list);
	return out;
}

/* the target is ready for data: start reading the source */
static void
on_dst_ready(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	worker_t *w = data;
	char *sql;

	if (err) {
		/* the same callback brings an error of the target in the middle of the load */
		char *what = pgm_asprintf(w->copy_started ? "could not load %s into the target"
							  : "could not start loading %s into the target",
					  w->cp->tables[w->cur->table].name);
		engine_fail_pg(w->cp, what, err);
		free(what);
		return;
	}
	w->copy_started = true;
	sql = chunk_select(w->cp, w->cur);
	pgm_pg_copy_out(w->src, sql, on_src_data, w);
	free(sql);
}

static void
start_copy_in(worker_t *w)
{
	copy_engine_t *cp = w->cp;
	ctable_t *t = &cp->tables[w->cur->table];
	char *sql = pgm_asprintf("COPY %s %s FROM STDIN WITH (FORMAT %s%s)", t->ident, t->cols,
				 cp->binary ? "binary" : "text", w->in_tx ? ", FREEZE" : "");

	pgm_pg_copy_in_start(w->dst, sql, on_dst_ready, w);
	free(sql);
}

static void
on_truncated(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	worker_t *w = data;

	if (err) {
		engine_fail_pg(w->cp, "could not prepare a table on the target", err);
		return;
	}
	start_copy_in(w);
}

static void
worker_next(worker_t *w)
{
	copy_engine_t *cp = w->cp;
	chunk_t *c;

	if (cp->failed)
		return;
	if (cp->next_chunk == cp->nchunks) {
		/* nothing left to hand out: the connections go, their place to the waves */
		worker_close(w);
		cp->workers_idle++;
		if (cp->chunks_done == cp->nchunks && cp->workers_idle == cp->nworkers)
			data_finished(cp);
		else
			try_wave(cp);
		return;
	}
	c = &cp->chunks[cp->next_chunk++];
	w->cur = c;
	w->len = 0;
	w->paused = false;
	w->ending = false;
	w->copy_started = false;
	/*
	 * A table in one piece: truncate and load WITH (FREEZE) in one
	 * transaction, so that no VACUUM has to visit its pages again -- unless
	 * it is small (under FREEZE_MIN_BYTES), where BEGIN, TRUNCATE (a new
	 * file) and COMMIT cost more than they save: 3,000 tables of 20 rows
	 * copy in 0.7 s instead of 2.8 s. The target was cleaned before the
	 * copy, so a plain COPY loads each table once.
	 */
	w->in_tx = c->from < 0 && cp->tables[c->table].bytes >= FREEZE_MIN_BYTES;
	if (w->in_tx) {
		char *sql = pgm_asprintf("BEGIN; TRUNCATE ONLY %s", cp->tables[c->table].ident);
		pgm_pg_query(w->dst, sql, 0, NULL, on_truncated, w);
		free(sql);
		return;
	}
	start_copy_in(w);
}

static void
worker_maybe_start(worker_t *w)
{
	if (w->src_ready && w->dst_ready)
		worker_next(w);
}

static void
on_src_snapshot(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	worker_t *w = data;

	if (err) {
		engine_fail_pg(w->cp, "could not join the copy snapshot on the source", err);
		return;
	}
	w->src_ready = true;
	worker_maybe_start(w);
}

static void
on_src_connect(pgm_pg_conn_t *conn, const pgm_pg_error_t *err, void *data)
{
	worker_t *w = data;
	char *sql;

	if (err) {
		w->src = NULL;
		engine_fail_pg(w->cp, "could not connect to the source", err);
		return;
	}
	/*
	 * row_security = off, as pg_dump does: a policy that would hide rows from
	 * pgmover's role (FORCE ROW LEVEL SECURITY on a table it owns) is an
	 * error naming the table, never a copy that silently misses rows. A COPY
	 * of one big table may rightly outlast statement_timeout: the streams are
	 * bounded by their progress instead (pgasync's silence bound).
	 */
	sql = pgm_asprintf("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '%s';"
			   " SET LOCAL row_security = off; SET statement_timeout = 0",
			   w->cp->snapshot);
	pgm_pg_query(conn, sql, 0, NULL, on_src_snapshot, w);
	free(sql);
}

static void
on_dst_session(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	worker_t *w = data;

	if (err) {
		engine_fail_pg(w->cp, "could not prepare a session on the target", err);
		return;
	}
	w->dst_ready = true;
	worker_maybe_start(w);
}

static void
on_dst_connect(pgm_pg_conn_t *conn, const pgm_pg_error_t *err, void *data)
{
	worker_t *w = data;

	if (err) {
		w->dst = NULL;
		engine_fail_pg(w->cp, "could not connect to the target", err);
		return;
	}
	/* the data is committed again by the final copy or verified: no need to wait for the disk */
	pgm_pg_query(conn, "SET synchronous_commit = off; SET statement_timeout = 0", 0, NULL, on_dst_session, w);
}

static void
start_data(copy_engine_t *cp)
{
	set_phase(cp, "data");
	progress_update(cp, true);
	list_post_data(cp);
	if (cp->step->finished)
		return;
	if (cp->nchunks == 0) {
		data_finished(cp);
		return;
	}
	if (cp->nworkers > cp->nchunks)
		cp->nworkers = cp->nchunks;
	for (int i = 0; i < cp->nworkers; i++) {
		worker_t *w = &cp->workers[i];
		w->cp = cp;
		w->id = i;
		w->buf = pgm_malloc(COPY_BUF);
		w->src = pgm_step_connect(cp->step, true, "copy", on_src_connect, w);
		w->dst = pgm_step_connect(cp->step, false, "copy", on_dst_connect, w);
	}
}

/* ---- 2. pre-data schema ---- */

static void
on_pre_restore_exit(pgm_proc_t *p, int64_t status, int sig, int timed_out, const char *tail, void *data)
{
	copy_engine_t *cp = data;

	if (pgm_tool_failed(cp->step, "pg_restore", "restore of the schema", status, sig, tail))
		return;
	start_data(cp);
}

/*
 * The schema dumped and the target cleaned: the pre-data restored. Each of
 * its statements commits on its own (one transaction would need a lock for
 * every table at once), so not waiting for the disk at each commit counts:
 * 3,000 tables 2.9 -> 2.0 s here, with fsync off; the copy is redone or
 * verified before anything relies on it.
 */
static void
start_pre_data(copy_engine_t *cp)
{
	const char *args[] = {"--section=pre-data", "--no-owner", "--no-acl", "--exit-on-error", cp->archive, NULL};

	pgm_tool_spawn(cp->step, "pg_restore", args, false, "-c synchronous_commit=off", on_tool_line,
		       on_pre_restore_exit, cp);
}

static void
on_schema_dump_exit(pgm_proc_t *p, int64_t status, int sig, int timed_out, const char *tail, void *data)
{
	copy_engine_t *cp = data;

	if (pgm_tool_failed(cp->step, "pg_dump", "dump of the schema", status, sig, tail))
		return;
	cp->dumped = true;
	if (cp->cleaned)
		start_pre_data(cp);
}

static void
start_schema(copy_engine_t *cp)
{
	char *snap = pgm_asprintf("--snapshot=%s", cp->snapshot);
	const char *args[] = {
		"--schema-only", "--format=custom", snap, "--exclude-schema=" PGM_CAPTURE_SCHEMA_PREFIX "*",
		"--file",        cp->archive,       NULL};

	set_phase(cp, "schema");
	progress_update(cp, true);
	if (!pgm_mkdir_p(cp->workdir, 0700)) {
		pgm_step_fail(cp->step, "could not create a work directory", cp->workdir,
			      "check state_dir permissions");
		free(snap);
		return;
	}
	pgm_tool_spawn(cp->step, "pg_dump", args, true, NULL, on_tool_line, on_schema_dump_exit, cp);
	free(snap);
}

/* ---- 1. the snapshot and the catalog ---- */

static const char *tables_sql =
	"SELECT n.nspname || '.' || c.relname, quote_ident(n.nspname) || '.' || quote_ident(c.relname),"
	"       (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) FROM pg_attribute a"
	"         WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''),"
	"       pg_relation_size(c.oid),"
	"       pg_relation_size(c.oid) / current_setting('block_size')::bigint,"
	"       c.reltuples::bigint, c.oid"
	"  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
	" WHERE c.relkind = 'r' AND c.relpersistence <> 't'"
	"   AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
	"   AND n.nspname !~ '^pg_toast' AND n.nspname !~ '^pg_temp_' AND n.nspname !~ '^" PGM_CAPTURE_SCHEMA_PREFIX "'"
	"   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass"
	"                     AND d.objid = c.oid AND d.deptype = 'e')"
	" ORDER BY 4 DESC";

/* an index's table (pg_class entries), a constraint's (pg_constraint): what pg_restore --list names by OID */
static const char *deps_sql = "SELECT 'pg_class'::regclass::oid, indexrelid, indrelid FROM pg_index"
			      " UNION ALL SELECT 'pg_constraint'::regclass::oid, oid, conrelid FROM pg_constraint"
			      "  WHERE contype <> 'f' AND conrelid <> 0";

static const char *seqlist_sql = "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c"
				 "  JOIN pg_namespace n ON n.oid = c.relnamespace"
				 " WHERE c.relkind = 'S' AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
				 "   AND n.nspname !~ '^" PGM_CAPTURE_SCHEMA_PREFIX "'"
				 "   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass"
				 "                     AND d.objid = c.oid AND d.deptype = 'e')";

/*
 * One chunk per table, largest first; a table larger than
 * split_tables_larger_than (0: none) is cut into block ranges of about
 * chunk_bytes that several streams copy at once. Splitting is an option, off
 * by default: the ranges load without FREEZE (two sessions cannot both own
 * the truncation), so the table's pages are written again later (hint bits
 * at the first scan, VACUUM's freezing), and where source, target and
 * pgmoverd share two cores a second stream into the same table finds no
 * core to run on (pgbench_accounts at scale 30: data 1.41-1.44 s in one
 * stream, 1.46-1.48 s in two). Where the servers have cores to spare,
 * several streams into one big table are what makes it faster (not
 * measurable on these 2 cores).
 */
static void
plan_chunks(copy_engine_t *cp)
{
	int64_t chunk_bytes = cp->bytes_total / (cp->nworkers * 4);
	int64_t split_over = pgm_jobopt_int(cp->step->job->options, "split_tables_larger_than");

	/* ranges of a quarter of a stream's share, no smaller than the threshold, at most 1 GB */
	if (chunk_bytes < split_over)
		chunk_bytes = split_over;
	if (chunk_bytes > 1LL << 30)
		chunk_bytes = 1LL << 30;
	if (chunk_bytes < 1)
		chunk_bytes = 1;
	cp->nchunks = 0;
	for (int i = 0; i < cp->ntables; i++) {
		ctable_t *t = &cp->tables[i];
		bool split = cp->nworkers > 1 && split_over > 0 && t->bytes > split_over;
		int64_t n = split ? (t->bytes + chunk_bytes - 1) / chunk_bytes : 1;
		int64_t per = n > 1 ? (t->blocks + n - 1) / n : 0;

		cp->chunks = pgm_realloc(cp->chunks, sizeof(chunk_t) * (size_t) (cp->nchunks + n));
		t->chunks = (int) n;
		for (int64_t k = 0; k < n; k++) {
			chunk_t *c = &cp->chunks[cp->nchunks++];
			c->table = i;
			c->est_bytes = t->bytes / n;
			if (n == 1) {
				c->from = -1;
				c->to = -1;
			} else {
				c->from = k * per;
				/* the last range is open: it takes any block past the estimate */
				c->to = k == n - 1 ? -1 : (k + 1) * per;
			}
		}
	}
}

static void
on_seq_values(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	copy_engine_t *cp = data;

	if (err) {
		engine_fail_pg(cp, "could not read the sequences of the source", err);
		return;
	}
	cp->seq_sql = pgm_calloc((size_t) pgm_pg_ntuples(res) + 1, sizeof(char *));
	for (int r = 0; r < pgm_pg_ntuples(res); r++) {
		char *lit = pgm_quote_literal(pgm_pg_value(res, r, 0));
		cp->seq_sql[cp->nseq++] = pgm_asprintf("setval(%s, %s, %s)", lit, pgm_pg_value(res, r, 1),
						       strcmp(pgm_pg_value(res, r, 2), "t") == 0 ? "true" : "false");
		free(lit);
	}
	start_schema(cp);
}

static void
on_seq_list(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	copy_engine_t *cp = data;
	pgm_buf_t sql = {0};

	if (err) {
		engine_fail_pg(cp, "could not list the sequences of the source", err);
		return;
	}
	if (pgm_pg_ntuples(res) == 0) {
		start_schema(cp);
		return;
	}
	for (int r = 0; r < pgm_pg_ntuples(res); r++) {
		const char *ident = pgm_pg_value(res, r, 0);
		char *lit = pgm_quote_literal(ident);
		pgm_buf_appendf(&sql, "%sSELECT %s::text, last_value, is_called FROM %s", r ? " UNION ALL " : "", lit,
				ident);
		free(lit);
	}
	pgm_pg_query(conn, sql.s, 0, NULL, on_seq_values, cp);
	free(sql.s);
}

static void
on_matviews(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	copy_engine_t *cp = data;
	int n = pgm_pg_ntuples(res);

	if (err) {
		engine_fail_pg(cp, "could not list the materialized views of the source", err);
		return;
	}
	cp->matviews = pgm_calloc((size_t) n + 1, sizeof(char *));
	for (int r = 0; r < n; r++)
		cp->matviews[cp->nmatviews++] = pgm_strdup(pgm_pg_value(res, r, 0));
	pgm_pg_query(conn, seqlist_sql, 0, NULL, on_seq_list, cp);
}

/* which table each index and constraint (but a foreign key) is built on: post-data waves */
static void
on_deps(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	copy_engine_t *cp = data;
	int n = pgm_pg_ntuples(res);

	if (err) {
		engine_fail_pg(cp, "could not read the source's indexes and constraints", err);
		return;
	}
	cp->deps = pgm_calloc((size_t) n + 1, sizeof(*cp->deps));
	for (int r = 0; r < n; r++) {
		cp->deps[r].classid = (uint32_t) pgm_pg_int64(res, r, 0, 0);
		cp->deps[r].objid = (uint32_t) pgm_pg_int64(res, r, 1, 0);
		cp->deps[r].relid = (uint32_t) pgm_pg_int64(res, r, 2, 0);
	}
	cp->ndeps = n;
	qsort(cp->deps, (size_t) n, sizeof(*cp->deps), dep_cmp);
	cp->by_oid = pgm_calloc((size_t) cp->ntables + 1, sizeof(*cp->by_oid));
	for (int i = 0; i < cp->ntables; i++) {
		cp->by_oid[i].oid = cp->tables[i].oid;
		cp->by_oid[i].table = i;
	}
	qsort(cp->by_oid, (size_t) cp->ntables, sizeof(*cp->by_oid), oid_cmp);
	pgm_pg_query(conn, pgm_matviews_sql, 0, NULL, on_matviews, cp);
}

static void
on_tables(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	copy_engine_t *cp = data;
	int n = pgm_pg_ntuples(res);

	if (err) {
		engine_fail_pg(cp, "could not list the tables of the source", err);
		return;
	}
	cp->tables = pgm_calloc((size_t) n + 1, sizeof(ctable_t));
	cp->ntables = n;
	for (int r = 0; r < n; r++) {
		ctable_t *t = &cp->tables[r];
		t->name = pgm_strdup(pgm_pg_value(res, r, 0));
		t->ident = pgm_strdup(pgm_pg_value(res, r, 1));
		t->cols = pgm_pg_value(res, r, 2) ? pgm_asprintf("(%s)", pgm_pg_value(res, r, 2)) : pgm_strdup("");
		t->bytes = pgm_pg_int64(res, r, 3, 0);
		t->blocks = pgm_pg_int64(res, r, 4, 0);
		t->rows_estimate = pgm_pg_int64(res, r, 5, -1);
		t->oid = (uint32_t) pgm_pg_int64(res, r, 6, 0);
		cp->bytes_total += t->bytes;
		if (r == 0)
			cp->rows_estimate = 0;
		if (t->rows_estimate < 0 || cp->rows_estimate < 0)
			cp->rows_estimate = -1;
		else
			cp->rows_estimate += t->rows_estimate;
	}
	plan_chunks(cp);
	pgm_pg_query(conn, deps_sql, 0, NULL, on_deps, cp);
}

static void
on_snapshot(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	copy_engine_t *cp = data;

	if (err) {
		engine_fail_pg(cp, "could not export a snapshot on the source", err);
		return;
	}
	cp->snapshot = pgm_strdup(pgm_pg_value(res, 0, 0));
	cp->xsnapshot = pgm_strdup(pgm_pg_value(res, 0, 1));
	pgm_pg_query(conn, tables_sql, 0, NULL, on_tables, cp);
}

static void
on_holder_connect(pgm_pg_conn_t *conn, const pgm_pg_error_t *err, void *data)
{
	copy_engine_t *cp = data;

	if (err) {
		cp->holder = NULL;
		engine_fail_pg(cp, "could not connect to the source", err);
		return;
	}
	cp->binary = pgm_pg_server_version(conn) / 10000 ==
		     (int) pgm_json_num(cJSON_GetObjectItem(cp->step->job->facts, "target"), "server_version_num", 0) /
			     10000;
	pgm_pg_query(conn,
		     "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;"
		     " SELECT pg_export_snapshot(), pg_current_snapshot()::text",
		     0, NULL, on_snapshot, cp);
}

static void
after_clean(pgm_step_t *s, void *data)
{
	copy_engine_t *cp = data;

	cp->clean_ms = pgm_mono_ms() - cp->started_mono;
	cp->cleaned = true;
	if (cp->dumped)
		start_pre_data(cp);
}

void
pgm_copy_run(pgm_step_t *s, const char *label, void (*then)(pgm_step_t *s))
{
	pgm_copy_opts_t o = {0};

	pgm_copy_run_opts(s, label, &o, then);
}

void
pgm_copy_run_opts(pgm_step_t *s, const char *label, const pgm_copy_opts_t *opts, void (*then)(pgm_step_t *s))
{
	pgm_job_t *job = s->job;
	copy_engine_t *cp = pgm_calloc(1, sizeof(*cp));
	pgm_sql_t *q;

	cp->opts = *opts;
	cp->step = s;
	cp->label = pgm_strdup(label);
	cp->then = then;
	cp->workdir = pgm_asprintf("%s/copy-%s", job->dir, label);
	cp->archive = pgm_asprintf("%s/schema.dump", cp->workdir);
	cp->nworkers = (int) pgm_jobopt_int(job->options, "jobs");
	if (cp->nworkers > MAX_WORKERS)
		cp->nworkers = MAX_WORKERS;
	cp->started_mono = pgm_mono_ms();
	cp->phase = "prepare";
	cp->phase_mono = cp->started_mono;
	pgm_step_own(s, cp, copy_free);
	s->tables_progress = copy_tables_progress;
	s->tables_data = cp;
	pgm_notice("job %s: %s copy starts (copy engine, %d parallel streams)", job->name, label, cp->nworkers);
	/*
	 * The target is cleaned while the source's snapshot is taken and its
	 * schema dumped: the schema is restored once both are done. The final
	 * copy, whose target holds the rehearsal's tables, would otherwise pay
	 * the drop of each before the dump begins (3,000 tables: 0.8 s).
	 */
	q = pgm_sql_begin(s, false, "clean", "could not clean the target before the copy",
			  "the target role must own the target database and the objects in it");
	pgm_target_clean(q, job);
	pgm_sql_run(q, after_clean, cp);
	if (s->finished)
		return;
	set_phase(cp, "snapshot");
	cp->holder = pgm_step_connect(s, true, "snapshot", on_holder_connect, cp);
}

/* ---- the entries held back by defer_constraints ---- */

typedef struct deferred {
	pgm_step_t *step;
	void (*then)(pgm_step_t *s);
} deferred_t;

static void
on_deferred_exit(pgm_proc_t *p, int64_t status, int sig, int timed_out, const char *tail, void *data)
{
	deferred_t *d = data;
	pgm_step_t *s = d->step;
	void (*then)(pgm_step_t *) = d->then;

	pgm_step_disown(s, d);
	free(d);
	if (pgm_tool_failed(s, "pg_restore", "restore of the foreign keys and triggers", status, sig, tail))
		return;
	pgm_json_set_time(pgm_json_obj(s->job->facts, "copies"), "deferred_restored_at", pgm_now_ms());
	pgm_job_checkpoint(s->job);
	then(s);
}

void
pgm_copy_restore_deferred(pgm_step_t *s, void (*then)(pgm_step_t *s))
{
	pgm_job_t *job = s->job;
	char *list = pgm_asprintf("%s/deferred.list", job->dir), *arch = pgm_asprintf("%s/deferred.dump", job->dir);
	char *l = pgm_asprintf("--use-list=%s", list);
	size_t n = 0;
	char *text = pgm_file_read(list, (size_t) 1 << 26, &n);
	const char *args[] = {"--section=post-data", "--no-owner", "--no-acl", "--exit-on-error", l, arch, NULL};
	deferred_t *d;

	if (text == NULL || n == 0) {
		free(text);
		free(list);
		free(arch);
		free(l);
		then(s);
		return;
	}
	free(text);
	d = pgm_calloc(1, sizeof(*d));
	d->step = s;
	d->then = then;
	pgm_step_own(s, d, free);
	pgm_info("job %s: restoring the foreign keys and triggers held back during the sync", job->name);
	pgm_tool_spawn_dsn(s, "pg_restore", args, job->target_dsn, NULL, NULL, on_deferred_exit, d);
	free(list);
	free(arch);
	free(l);
}

/* the job's copy engine; large objects need pg_dump's, which is used then */
void
pgm_copy_with_engine(pgm_step_t *s, const char *label, void (*then)(pgm_step_t *s))
{
	pgm_job_t *job = s->job;
	const cJSON *src = cJSON_GetObjectItem(job->facts, "source");

	if (strcmp(pgm_jobopt_str(job->options, "engine"), "copy") == 0) {
		if (pgm_json_num(src, "large_objects", 0) > 0) {
			pgm_job_warn(job, "the source has large objects, which only the pg_dump engine copies",
				     "nothing to do: this job uses the pg_dump engine");
		} else {
			pgm_copy_run(s, label, then);
			return;
		}
	}
	pgm_dump_copy(s, label, then);
}

/*
 * Provisioning of the methods that restore into the target: the preflight
 * has checked that it is empty (or may be overwritten); from here on what
 * is in it is pgmover's to replace, and abort empties it.
 */
void
pgm_copy_own_target(pgm_step_t *s)
{
	pgm_json_set(s->job->facts, "target_owned", cJSON_CreateTrue());
	if (!pgm_job_save(s->job)) {
		cJSON_DeleteItemFromObject(s->job->facts, "target_owned");
		pgm_step_fail_unsaved(s, "the copy into the target");
		return;
	}
	pgm_step_done(s, PGM_EV_DONE);
}

static void
release_done(pgm_step_t *s)
{
	pgm_step_done(s, PGM_EV_DONE);
}

/* aborting: drop what pgmover restored into the target, when it owns it */
void
pgm_copy_release_target(pgm_step_t *s)
{
	if (cJSON_IsTrue(cJSON_GetObjectItem(s->job->facts, "target_owned")))
		pgm_dump_clean_target(s, release_done);
	else
		release_done(s);
}
