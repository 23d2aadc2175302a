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
#include "pipeline/archive/toc.h"
#include "pipeline/sql.h"
#include "pipeline/copy/copy.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct archive {
	pgm_step_t *step;
	void (*then)(pgm_step_t *s);
	char *label;
	pgm_toc_list_t list;     /* what --list says */
	pgm_toc_script_t script; /* what --data-only says: rows and large objects in the archive */
	pgm_toc_los_t target_los;
	pgm_toc_err_t err; /* the first line of either that could not be read */
	int tables_done, tables_total;
	int64_t started;
} archive_t;

static void
archive_free(void *p)
{
	archive_t *a = p;

	pgm_toc_list_free(&a->list);
	pgm_toc_script_free(&a->script);
	free(a->target_los.v);
	pgm_toc_err_free(&a->err);
	free(a->label);
	free(a);
}

static archive_t *
archive_new(pgm_step_t *s, void (*then)(pgm_step_t *s))
{
	archive_t *a = pgm_calloc(1, sizeof(*a));

	a->step = s;
	a->then = then;
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

/* a line of pg_restore --list: the header and the entries; the first line that cannot be read is kept */
static void
on_list_line(pgm_proc_t *p, int stream, const char *line, void *data)
{
	archive_t *a = data;

	if (stream != 1 || a->err.message)
		return;
	(void) pgm_toc_list_line(&a->list, line, &a->err);
}

/* true, and the step failed, when pg_restore --list did not run or printed what is no listing */
static bool
list_failed(archive_t *a, int64_t status, int sig, const char *tail)
{
	const char *path = pgm_job_source_file(a->step->job);

	if (status != 0 || sig != 0) {
		char *msg = pgm_asprintf("\"%s\" is not a pg_dump archive pg_restore can read", path);
		pgm_step_fail(a->step, msg, tail && tail[0] ? tail : NULL,
			      "give the custom-format file of heroku pg:backups:download (latest.dump), or a file of "
			      "pg_dump -Fc");
		free(msg);
		return true;
	}
	if (a->err.message) {
		pgm_step_fail(a->step, a->err.message, path, a->err.hint);
		return true;
	}
	return false;
}

static void
set_str(cJSON *o, const char *key, const char *value)
{
	if (value)
		pgm_json_set_str(o, key, value);
}

static void
on_list_exit(pgm_proc_t *p, int64_t status, int sig, int timed_out, const char *tail, void *data)
{
	archive_t *a = data;
	pgm_step_t *s = a->step;
	pgm_job_t *job = s->job;
	const char *path = pgm_job_source_file(job);
	cJSON *facts;
	struct stat st;

	if (list_failed(a, status, sig, tail))
		return;
	if (a->list.format == NULL || strcmp(a->list.format, "CUSTOM") != 0)
		pgm_job_warn(job, "the archive is not in custom format: pg_restore cannot restore it in parallel",
			     "take the backup with pg_dump -Fc (Heroku's backups are)");
	a->tables_total = (int) a->list.ndata;
	facts = cJSON_CreateObject();
	set_str(facts, "dbname", a->list.dbname);
	set_str(facts, "created_at", a->list.created_at);
	set_str(facts, "format", a->list.format);
	set_str(facts, "dumped_from", a->list.dumped_from);
	set_str(facts, "dumped_by", a->list.dumped_by);
	pgm_json_set_str(facts, "file", path);
	if (stat(path, &st) == 0)
		pgm_json_set_num(facts, "file_bytes", (double) st.st_size);
	pgm_json_set_num(facts, "tables", a->tables_total);
	pgm_json_set(job->facts, "source", facts);
	pgm_job_checkpoint(job);
	pgm_info("job %s: source archive %s: database %s, %d table(s), created %s", job->name, path,
		 a->list.dbname ? a->list.dbname : "?", a->tables_total, a->list.created_at ? a->list.created_at : "?");
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

/* a line of the script; the first that cannot be read is kept, the rest only drained */
static void
on_data_line(pgm_proc_t *p, int stream, const char *line, void *data)
{
	archive_t *a = data;

	if (stream != 1 || a->err.message)
		return;
	(void) pgm_toc_script_line(&a->script, line, &a->err);
}

static void
on_target_los(pgm_step_t *s, const PGresult *res, void *data)
{
	archive_t *a = data;

	for (int r = 0; r < pgm_pg_ntuples(res); r++)
		pgm_toc_lo_push(&a->target_los, (uint32_t) pgm_pg_int64(res, r, 0, 0))->bytes =
			pgm_pg_int64(res, r, 1, 0);
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
	const pgm_toc_los_t *src = &a->script.los, *dst = &a->target_los;
	size_t i = 0, j = 0;
	int count = 0, missing = 0, extra = 0;

	pgm_toc_los_sort(&a->script.los);
	pgm_toc_los_sort(&a->target_los);
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
	int mismatches = 0;

	for (int r = 0; r < pgm_pg_ntuples(res); r++)
		pgm_json_set_num(target, pgm_pg_value(res, r, 0), (double) pgm_pg_int64(res, r, 1, 0));
	for (size_t i = 0; i < a->script.ncopies; i++) {
		const pgm_toc_copy_t *c = &a->script.copies[i];
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(target, c->name);
		cJSON *row = cJSON_CreateObject();
		bool match = t && t->valuedouble == (double) c->rows;

		pgm_json_set_str(row, "table", c->name);
		pgm_json_set_num(row, "source_rows", (double) c->rows);
		pgm_json_set(row, "target_rows", t ? cJSON_CreateNumber(t->valuedouble) : cJSON_CreateNull());
		pgm_json_set(row, "match", cJSON_CreateBool(match));
		if (!match) {
			mismatches++;
			pgm_json_set_str(row, "problem", t ? "row counts differ" : "missing on the target");
		}
		cJSON_AddItemToArray(tables, row);
	}
	cJSON_Delete(target);
	if (a->script.los.n > 0 || a->target_los.n > 0) {
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

/*
 * Every table of the archive counted on the target, in one snapshot, once
 * the script was read whole and each of its COPY blocks matched to the
 * listing's table data entries.
 */
static void
on_data_exit(pgm_proc_t *p, int64_t status, int sig, int timed_out, const char *tail, void *data)
{
	archive_t *a = data;
	pgm_step_t *s = a->step;
	pgm_buf_t sql = {0};
	pgm_sql_t *q;

	if (archive_failed(a, "count of the rows in the backup file", status, sig, tail))
		return;
	if (a->err.message == NULL && pgm_toc_script_end(&a->script, &a->err))
		(void) pgm_toc_check(&a->list, &a->script, &a->err);
	if (a->err.message) {
		pgm_step_fail(s, a->err.message, pgm_job_source_file(s->job), a->err.hint);
		return;
	}
	for (size_t i = 0; i < a->script.ncopies; i++) {
		const char *name = a->script.copies[i].name;
		char *lit = pgm_quote_literal(name);

		/* the name is as pg_dump wrote it, read whole by pgm_toc_parse_copy: quoted where needed */
		pgm_buf_appendf(&sql, "%sSELECT %s::text, (SELECT count(*) FROM ONLY %s)", sql.len ? " UNION ALL " : "",
				lit, name);
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

/* the listing first (which tables hold data), then the script that holds it */
static void
on_verify_list_exit(pgm_proc_t *p, int64_t status, int sig, int timed_out, const char *tail, void *data)
{
	archive_t *a = data;
	const char *args[] = {"--data-only", "--file=-", pgm_job_source_file(a->step->job), NULL};

	if (list_failed(a, status, sig, tail))
		return;
	pgm_tool_spawn_dsn(a->step, "pg_restore", args, NULL, NULL, on_data_line, on_data_exit, a);
}

void
pgm_archive_verify(pgm_step_t *s)
{
	archive_t *a = archive_new(s, NULL);
	const char *args[] = {"--list", pgm_job_source_file(s->job), NULL};

	pgm_tool_spawn_dsn(s, "pg_restore", args, NULL, NULL, on_list_line, on_verify_list_exit, a);
}
