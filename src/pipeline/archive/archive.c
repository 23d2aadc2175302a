/*
 * archive.c — a backup file as the source: `heroku pg:backups:download`
 * gives latest.dump, a pg_dump custom-format archive. The job's source is
 * then "file:/path/latest.dump" (or an absolute path).
 *
 *   provisioning  pg_restore --list proves the file is an archive and
 *                 records what it holds (database, versions, tables);
 *   syncing       pg_restore -j into the cleaned target;
 *   freezing      there is no live source to freeze: freeze_command runs if
 *                 set (writes made after the backup are not in the file);
 *   verifying     rows per table in the archive, counted by streaming
 *                 pg_restore --data-only through the loop, against
 *                 count(*) on the target, inside one snapshot; large
 *                 objects by OID and size (the bytes of their lowrite()
 *                 calls in the script, octet_length(lo_get()) on the
 *                 target). There is no live source to checksum against.
 */
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "pipeline/archive/archive.h"
#include "pipeline/sql.h"
#include "pipeline/copy/copy.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* large objects: OID and size, as many as there are (millions, in some applications) */
typedef struct lo_size {
	uint32_t oid;
	int64_t bytes;
} lo_size_t;

typedef struct lo_list {
	lo_size_t *v;
	size_t n, cap;
} lo_list_t;

static lo_size_t *
lo_push(lo_list_t *l, uint32_t oid)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->v = pgm_realloc(l->v, l->cap * sizeof(lo_size_t));
	}
	l->v[l->n] = (lo_size_t){.oid = oid, .bytes = 0};
	return &l->v[l->n++];
}

static int
lo_cmp(const void *x, const void *y)
{
	uint32_t a = ((const lo_size_t *) x)->oid, b = ((const lo_size_t *) y)->oid;

	return a < b ? -1 : a > b;
}

typedef struct archive {
	pgm_step_t *step;
	void (*then)(pgm_step_t *s);
	char *label;
	cJSON *facts;  /* what --list says */
	cJSON *counts; /* table -> rows in the archive */
	char *current; /* table whose COPY block is being read */
	int64_t rows;
	lo_list_t los[2]; /* large objects in the archive [0], on the target [1] */
	bool in_lo;       /* between a large object's lo_open() and lo_close() */
	int tables_done, tables_total;
	int64_t started;
} archive_t;

static void
archive_free(void *p)
{
	archive_t *a = p;

	cJSON_Delete(a->facts);
	cJSON_Delete(a->counts);
	free(a->los[0].v);
	free(a->los[1].v);
	free(a->current);
	free(a->label);
	free(a);
}

static archive_t *
archive_new(pgm_step_t *s, void (*then)(pgm_step_t *s))
{
	archive_t *a = pgm_calloc(1, sizeof(*a));

	a->step = s;
	a->then = then;
	a->facts = cJSON_CreateObject();
	a->counts = cJSON_CreateObject();
	a->started = pgm_mono_ms();
	if (s->priv && s->priv_free)
		s->priv_free(s->priv);
	s->priv = a;
	s->priv_free = archive_free;
	return a;
}

static bool
archive_failed(archive_t *a, const char *during, int64_t status, int sig, const char *tail)
{
	return pgm_tool_failed(a->step, "pg_restore", during, status, sig, tail);
}

/* ---- inspect: pg_restore --list ---- */

/* ";     dbname: appdb" -> facts.dbname = "appdb" */
static void
on_list_line(pgm_proc_t *p, int stream, const char *line, void *data)
{
	archive_t *a = data;
	static const char *const keys[][2] = {{";     dbname: ", "dbname"},
					      {"; Archive created at ", "created_at"},
					      {";     Format: ", "format"},
					      {";     Dumped from database version: ", "dumped_from"},
					      {";     Dumped by pg_dump version: ", "dumped_by"}};

	if (stream != 1)
		return;
	for (size_t i = 0; i < PGM_ARRAY_LEN(keys); i++)
		if (strncmp(line, keys[i][0], strlen(keys[i][0])) == 0)
			pgm_json_set_str(a->facts, keys[i][1], line + strlen(keys[i][0]));
	if (line[0] != ';' && strstr(line, " TABLE DATA "))
		a->tables_total++;
}

static void
on_list_exit(pgm_proc_t *p, int64_t status, int sig, int timed_out, const char *tail, void *data)
{
	archive_t *a = data;
	pgm_step_t *s = a->step;
	pgm_job_t *job = s->job;
	const char *path = pgm_job_source_file(job);
	struct stat st;

	if (status != 0 || sig != 0) {
		char *msg = pgm_asprintf("\"%s\" is not a pg_dump archive pg_restore can read", path);
		pgm_step_fail(s, msg, tail && tail[0] ? tail : NULL,
			      "give the custom-format file of heroku pg:backups:download (latest.dump), or a file of "
			      "pg_dump -Fc");
		free(msg);
		return;
	}
	if (strcmp(pgm_json_str(a->facts, "format") ? pgm_json_str(a->facts, "format") : "", "CUSTOM") != 0)
		pgm_job_warn(job, "the archive is not in custom format: pg_restore cannot restore it in parallel",
			     "take the backup with pg_dump -Fc (Heroku's backups are)");
	pgm_json_set_str(a->facts, "file", path);
	if (stat(path, &st) == 0)
		pgm_json_set_num(a->facts, "file_bytes", (double) st.st_size);
	pgm_json_set_num(a->facts, "tables", a->tables_total);
	pgm_json_set(job->facts, "source", cJSON_Duplicate(a->facts, 1));
	pgm_job_checkpoint(job);
	pgm_info("job %s: source archive %s: database %s, %d table(s), created %s", job->name, path,
		 pgm_json_str(a->facts, "dbname"), a->tables_total, pgm_json_str(a->facts, "created_at"));
	a->then(s);
}

void
pgm_archive_inspect(pgm_step_t *s, void (*then)(pgm_step_t *s))
{
	archive_t *a = archive_new(s, then);
	const char *path = pgm_job_source_file(s->job);
	const char *args[] = {"--list", path, NULL};

	if (access(path, R_OK) != 0) {
		char *msg = pgm_asprintf("cannot read the source file \"%s\": %s", path, strerror(errno));
		pgm_step_fail(s, msg, NULL, "check the path and that pgmoverd's user may read the file");
		free(msg);
		return;
	}
	pgm_tool_spawn_dsn(s, "pg_restore", args, NULL, NULL, on_list_line, on_list_exit, a);
}

/* ---- restore: pg_restore -j into the cleaned target ---- */

static void
on_restore_line(pgm_proc_t *p, int stream, const char *line, void *data)
{
	archive_t *a = data;
	pgm_job_t *job = a->step->job;

	pgm_debug("job %s: %s", job->name, line);
	if (strstr(line, "processing data for table ")) {
		cJSON *pr = cJSON_CreateObject();
		a->tables_done++;
		pgm_json_set_str(pr, "name", a->label);
		pgm_json_set_str(pr, "phase", "restore");
		pgm_json_set_str(pr, "engine", "pg_restore");
		pgm_json_set_num(pr, "tables_done", a->tables_done);
		pgm_json_set_num(pr, "tables_total", a->tables_total);
		pgm_json_set_num(pr, "elapsed_ms", (double) (pgm_mono_ms() - a->started));
		pgm_job_set_progress(job, pr);
	}
}

static void
on_restore_exit(pgm_proc_t *p, int64_t status, int sig, int timed_out, const char *tail, void *data)
{
	archive_t *a = data;
	pgm_step_t *s = a->step;
	pgm_job_t *job = s->job;
	cJSON *rec;
	int64_t total = pgm_mono_ms() - a->started;

	if (archive_failed(a, "restore of the backup file", status, sig, tail))
		return;
	rec = cJSON_CreateObject();
	pgm_json_set_num(rec, "duration_ms", (double) total);
	pgm_json_set_num(rec, "tables", a->tables_total);
	pgm_json_set_str(rec, "engine", "pg_restore");
	pgm_json_set_str(rec, "file", pgm_job_source_file(job));
	pgm_json_set_time(rec, "finished_at", pgm_now_ms());
	pgm_json_set(pgm_json_obj(job->facts, "copies"), a->label, rec);
	cJSON_Delete(job->progress);
	job->progress = NULL;
	pgm_job_checkpoint(job);
	pgm_notice("job %s: backup file restored in %.1f s", job->name, (double) total / 1000.0);
	a->then(s);
}

static void
restore_after_clean(pgm_step_t *s, void *data)
{
	archive_t *a = data;
	char jobs[16];
	const char *args[] = {
		"--jobs", jobs, "--verbose", "--no-owner", "--no-acl", "--exit-on-error", pgm_job_source_file(s->job),
		NULL};

	snprintf(jobs, sizeof(jobs), "%d", (int) pgm_jobopt_int(s->job->options, "jobs"));
	a->tables_total = (int) pgm_json_num(cJSON_GetObjectItem(s->job->facts, "source"), "tables", 0);
	pgm_tool_spawn(s, "pg_restore", args, false, "-c maintenance_work_mem=256MB -c synchronous_commit=off",
		       on_restore_line, on_restore_exit, a);
}

void
pgm_archive_restore(pgm_step_t *s, const char *label, void (*then)(pgm_step_t *s))
{
	archive_t *a = archive_new(s, then);
	pgm_sql_t *q;

	a->label = pgm_strdup(label);
	pgm_notice("job %s: restoring the backup file %s", s->job->name, pgm_job_source_file(s->job));
	q = pgm_sql_begin(s, false, "clean", "could not clean the target before the restore",
			  "the target role must own the target database and the objects in it");
	pgm_target_clean(q, s->job);
	pgm_sql_run(q, restore_after_clean, a);
}

/* ---- verify: rows in the archive against rows on the target ---- */

/*
 * A large object in the script: lo_open('OID', ...), lowrite(0, '\x<hex>')
 * per 16 KB of it (E'\\x<hex>' without standard_conforming_strings),
 * lo_close(0).
 */
static bool
on_lo_line(archive_t *a, const char *line)
{
	static const char open_call[] = "SELECT pg_catalog.lo_open('", write_call[] = "SELECT pg_catalog.lowrite(0, ";

	if (strncmp(line, open_call, sizeof(open_call) - 1) == 0) {
		lo_push(&a->los[0], (uint32_t) strtoul(line + sizeof(open_call) - 1, NULL, 10));
		a->in_lo = true;
		return true;
	}
	if (!a->in_lo)
		return false;
	if (strncmp(line, write_call, sizeof(write_call) - 1) == 0) {
		/* the hex digits after the literal's backslash-x (one backslash or two) */
		const char *hex = strstr(line, "\\x");

		if (hex)
			a->los[0].v[a->los[0].n - 1].bytes += (int64_t) (strspn(hex + 2, "0123456789abcdefABCDEF") / 2);
		return true;
	}
	if (strcmp(line, "SELECT pg_catalog.lo_close(0);") == 0) {
		a->in_lo = false;
		return true;
	}
	return false;
}

static void
on_data_line(pgm_proc_t *p, int stream, const char *line, void *data)
{
	archive_t *a = data;
	size_t n;

	if (stream != 1)
		return;
	if (a->current == NULL && on_lo_line(a, line))
		return;
	if (a->current == NULL) {
		/* COPY schema.table (a, b) FROM stdin; */
		n = strlen(line);
		if (strncmp(line, "COPY ", 5) == 0 && n > 12 && strcmp(line + n - 12, " FROM stdin;") == 0) {
			const char *paren = strstr(line, " (");
			size_t len = paren ? (size_t) (paren - line - 5) : n - 5 - 12;
			a->current = strndup(line + 5, len);
			a->rows = 0;
		}
		return;
	}
	/* one line per row in COPY text format: newlines inside values are escaped */
	if (strcmp(line, "\\.") == 0) {
		pgm_json_set_num(a->counts, a->current, (double) a->rows);
		free(a->current);
		a->current = NULL;
		return;
	}
	a->rows++;
}

static void
on_target_los(pgm_step_t *s, const PGresult *res, void *data)
{
	archive_t *a = data;

	for (int r = 0; r < pgm_pg_ntuples(res); r++)
		lo_push(&a->los[1], (uint32_t) pgm_pg_int64(res, r, 0, 0))->bytes = pgm_pg_int64(res, r, 1, 0);
}

static void
lo_diff(cJSON *keys, int *count, uint32_t oid, const char *kind)
{
	cJSON *k;
	char text[16];

	if ((*count)++ >= 20)
		return;
	snprintf(text, sizeof(text), "%u", oid);
	k = cJSON_CreateObject();
	pgm_json_set_str(k, "key", text);
	pgm_json_set_str(k, "kind", kind);
	cJSON_AddItemToArray(keys, k);
}

/*
 * The large objects as one more row of the report, keyed by OID, as the
 * live verification has them: both lists sorted, then merged.
 */
static cJSON *
lo_report(archive_t *a)
{
	cJSON *row = cJSON_CreateObject(), *d = cJSON_CreateObject(), *keys = cJSON_AddArrayToObject(d, "keys");
	const lo_list_t *src = &a->los[0], *dst = &a->los[1];
	size_t i = 0, j = 0;
	int count = 0, missing = 0, extra = 0;

	qsort(a->los[0].v, a->los[0].n, sizeof(lo_size_t), lo_cmp);
	qsort(a->los[1].v, a->los[1].n, sizeof(lo_size_t), lo_cmp);
	while (i < src->n || j < dst->n) {
		if (j == dst->n || (i < src->n && src->v[i].oid < dst->v[j].oid)) {
			missing++;
			lo_diff(keys, &count, src->v[i++].oid, "missing");
		} else if (i == src->n || dst->v[j].oid < src->v[i].oid) {
			extra++;
			lo_diff(keys, &count, dst->v[j++].oid, "extra");
		} else {
			if (src->v[i].bytes != dst->v[j].bytes)
				lo_diff(keys, &count, src->v[i].oid, "changed");
			i++, j++;
		}
	}
	pgm_json_set_str(row, "table", "pg_catalog.pg_largeobject");
	pgm_json_set_num(row, "source_rows", (double) src->n);
	pgm_json_set_num(row, "target_rows", (double) dst->n);
	pgm_json_set(row, "match", cJSON_CreateBool(count == 0));
	if (count > 0) {
		char *problem = pgm_asprintf("%d large object(s) differ: %d missing on the target, %d extra, %d of "
					     "another size",
					     count, missing, extra, count - missing - extra);
		pgm_json_set_str(row, "problem", problem);
		free(problem);
		pgm_json_set_num(d, "count", count);
		pgm_json_set_num(d, "listed", cJSON_GetArraySize(keys));
		pgm_json_set(row, "differences", d);
	} else {
		cJSON_Delete(d);
	}
	return row;
}

static void
on_target_counts(pgm_step_t *s, const PGresult *res, void *data)
{
	archive_t *a = data;
	pgm_job_t *job = s->job;
	cJSON *report = cJSON_CreateObject(), *tables = cJSON_AddArrayToObject(report, "tables");
	cJSON *target = cJSON_CreateObject();
	const cJSON *it;
	int mismatches = 0;

	for (int r = 0; r < pgm_pg_ntuples(res); r++)
		pgm_json_set_num(target, pgm_pg_value(res, r, 0), (double) pgm_pg_int64(res, r, 1, 0));
	cJSON_ArrayForEach (it, a->counts) {
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(target, it->string);
		cJSON *row = cJSON_CreateObject();
		bool match = t && t->valuedouble == it->valuedouble;

		pgm_json_set_str(row, "table", it->string);
		pgm_json_set_num(row, "source_rows", it->valuedouble);
		pgm_json_set(row, "target_rows", t ? cJSON_CreateNumber(t->valuedouble) : cJSON_CreateNull());
		pgm_json_set(row, "match", cJSON_CreateBool(match));
		if (!match) {
			mismatches++;
			pgm_json_set_str(row, "problem", t ? "row counts differ" : "missing on the target");
		}
		cJSON_AddItemToArray(tables, row);
	}
	cJSON_Delete(target);
	if (a->los[0].n > 0 || a->los[1].n > 0) {
		cJSON *row = lo_report(a);

		mismatches += !cJSON_IsTrue(cJSON_GetObjectItem(row, "match"));
		cJSON_AddItemToArray(tables, row);
	}
	pgm_json_set_str(report, "method", "archive_row_counts");
	pgm_json_set_str(report, "source", pgm_job_source_file(job));
	pgm_json_set_num(report, "tables_compared", cJSON_GetArraySize(tables));
	pgm_json_set_num(report, "mismatches", mismatches);
	pgm_json_set(report, "ok", cJSON_CreateBool(mismatches == 0));
	pgm_json_set_num(report, "duration_ms", (double) (pgm_mono_ms() - a->started));
	pgm_json_set_time(report, "at", pgm_now_ms());
	pgm_job_set_verify(job, report);
	pgm_job_checkpoint(job);
}

static void
verify_finished(pgm_step_t *s, void *data)
{
	pgm_step_done(s, cJSON_IsTrue(cJSON_GetObjectItem(s->job->verify, "ok")) ? PGM_EV_DONE : PGM_EV_VERIFY_FAILED);
}

/* every table of the archive counted on the target, in one snapshot */
static void
on_data_exit(pgm_proc_t *p, int64_t status, int sig, int timed_out, const char *tail, void *data)
{
	archive_t *a = data;
	pgm_step_t *s = a->step;
	const cJSON *it;
	pgm_buf_t sql = {0};
	pgm_sql_t *q;

	if (archive_failed(a, "count of the rows in the backup file", status, sig, tail))
		return;
	cJSON_ArrayForEach (it, a->counts) {
		char *lit = pgm_quote_literal(it->string);
		/* the name is as pg_dump wrote it: already quoted where needed */
		pgm_buf_appendf(&sql, "%sSELECT %s::text, (SELECT count(*) FROM ONLY %s)", sql.len ? " UNION ALL " : "",
				lit, it->string);
		free(lit);
	}
	if (sql.len == 0)
		pgm_buf_append(&sql, "SELECT NULL::text, 0::bigint WHERE false");
	q = pgm_sql_begin(s, false, "verify", "could not count the rows on the target",
			  "a table of the backup may be missing on the target: see the error");
	pgm_sql_add(q, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", NULL, NULL);
	pgm_sql_add(q, "SELECT m.oid, octet_length(lo_get(m.oid)) FROM pg_catalog.pg_largeobject_metadata m",
		    on_target_los, a);
	pgm_sql_add(q, sql.s, on_target_counts, a);
	pgm_sql_add(q, "COMMIT", NULL, NULL);
	free(sql.s);
	pgm_sql_run(q, verify_finished, NULL);
}

void
pgm_archive_verify(pgm_step_t *s)
{
	archive_t *a = archive_new(s, NULL);
	const char *args[] = {"--data-only", "--file=-", pgm_job_source_file(s->job), NULL};

	pgm_tool_spawn_dsn(s, "pg_restore", args, NULL, NULL, on_data_line, on_data_exit, a);
}
