/*
 * counts.c — the verification of the dump pipeline: exact row counts of
 * every table, computed on the source and the target at the same time,
 * each side inside one read-only REPEATABLE READ snapshot, and sequences
 * (the target must be at or past the source). The checksum engine of the
 * verification issue replaces this; its report keeps the same shape.
 */
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "pipeline/pipeline.h"

#include <stdlib.h>
#include <string.h>

/* every user table (leaf partitions and plain tables), not extension members */
static const char *tables_sql =
	"SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
	" WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
	"   AND n.nspname !~ '^pg_toast' AND n.nspname !~ '^pg_temp_'"
	"   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass"
	"                     AND d.objid = c.oid AND d.deptype = 'e')"
	" ORDER BY 1, 2";

static const char *sequences_sql =
	"SELECT schemaname, sequencename, last_value FROM pg_sequences"
	" WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2";

typedef struct side {
	struct counts *cv;
	bool source;
	pgm_pg_conn_t *conn;
	cJSON *rows;      /* "schema.table" -> count */
	cJSON *sequences; /* "schema.seq" -> last_value or null */
	bool done;
} side_t;

typedef struct counts {
	pgm_step_t *step;
	side_t sides[2];
	int64_t started;
	bool failed;
} counts_t;

static void
counts_free(void *p)
{
	counts_t *cv = p;

	for (int i = 0; i < 2; i++) {
		cJSON_Delete(cv->sides[i].rows);
		cJSON_Delete(cv->sides[i].sequences);
	}
	free(cv);
}

static void
side_fail(side_t *sd, const char *what, const pgm_pg_error_t *err)
{
	counts_t *cv = sd->cv;
	char *msg;

	if (cv->failed)
		return;
	cv->failed = true;
	msg = pgm_asprintf("%s on the %s", what, sd->source ? "source" : "target");
	pgm_step_fail_pg(cv->step, msg, err, NULL);
	free(msg);
}

static char *
qualified(const char *schema, const char *name)
{
	return pgm_asprintf("%s.%s", schema, name);
}

/* both sides counted: compare and write the report */
static void
counts_compare(counts_t *cv)
{
	pgm_job_t *job = cv->step->job;
	cJSON *report = cJSON_CreateObject();
	cJSON *tables = cJSON_AddArrayToObject(report, "tables");
	cJSON *seqs = cJSON_AddArrayToObject(report, "sequences");
	cJSON *src = cv->sides[0].rows, *dst = cv->sides[1].rows;
	const cJSON *it;
	int mismatches = 0, ntables = 0;

	/* every source table, then target-only tables */
	for (int pass = 0; pass < 2; pass++) {
		cJSON *walk = pass == 0 ? src : dst;

		cJSON_ArrayForEach(it, walk)
		{
			const cJSON *other = cJSON_GetObjectItemCaseSensitive(pass == 0 ? dst : src, it->string);
			cJSON *t;
			bool match;

			if (pass == 1 && other)
				continue;
			t = cJSON_CreateObject();
			pgm_json_set_str(t, "table", it->string);
			pgm_json_set(t, "source_rows",
			             pass == 0 ? cJSON_CreateNumber(it->valuedouble) : cJSON_CreateNull());
			pgm_json_set(t, "target_rows",
			             pass == 0 ? (other ? cJSON_CreateNumber(other->valuedouble) : cJSON_CreateNull())
			                       : cJSON_CreateNumber(it->valuedouble));
			match = pass == 0 && other && other->valuedouble == it->valuedouble;
			pgm_json_set(t, "match", cJSON_CreateBool(match));
			if (!match) {
				mismatches++;
				pgm_json_set_str(t, "problem",
				                 pass == 1 ? "only on the target" : other ? "row counts differ" : "missing on the target");
			}
			cJSON_AddItemToArray(tables, t);
			ntables++;
		}
	}
	cJSON_ArrayForEach(it, cv->sides[0].sequences)
	{
		const cJSON *other = cJSON_GetObjectItemCaseSensitive(cv->sides[1].sequences, it->string);
		cJSON *q = cJSON_CreateObject();
		bool ok;

		pgm_json_set_str(q, "sequence", it->string);
		pgm_json_set(q, "source_value", cJSON_Duplicate(it, 0));
		pgm_json_set(q, "target_value", other ? cJSON_Duplicate(other, 0) : cJSON_CreateNull());
		/* never behind: an unused source sequence (null) is satisfied by anything */
		ok = other && (cJSON_IsNull(it) || (cJSON_IsNumber(other) && other->valuedouble >= it->valuedouble));
		pgm_json_set(q, "match", cJSON_CreateBool(ok));
		if (!ok) {
			mismatches++;
			pgm_json_set_str(q, "problem", other ? "target is behind the source" : "missing on the target");
		}
		cJSON_AddItemToArray(seqs, q);
	}
	pgm_json_set_str(report, "method", "row_counts");
	pgm_json_set_num(report, "tables_compared", ntables);
	pgm_json_set_num(report, "mismatches", mismatches);
	pgm_json_set(report, "ok", cJSON_CreateBool(mismatches == 0));
	pgm_json_set_num(report, "duration_ms", (double) (pgm_mono_ms() - cv->started));
	pgm_json_set_time(report, "at", pgm_now_ms());
	cJSON_Delete(job->verify);
	job->verify = report;
	(void) pgm_job_save(job);
	if (mismatches > 0) {
		pgm_warning("job %s: verification found %d difference(s); the source stays frozen", job->name,
		            mismatches);
		pgm_step_done(cv->step, PGM_EV_VERIFY_FAILED);
	} else {
		pgm_info("job %s: verification passed: %d table(s) match", job->name, ntables);
		pgm_step_done(cv->step, PGM_EV_DONE);
	}
}

static void
side_finished(side_t *sd)
{
	sd->done = true;
	pgm_step_close_conn(sd->cv->step, sd->conn);
	sd->conn = NULL;
	if (sd->cv->sides[0].done && sd->cv->sides[1].done)
		counts_compare(sd->cv);
}

static void
on_sequences(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	side_t *sd = data;

	if (err) {
		side_fail(sd, "could not read sequences", err);
		return;
	}
	for (int r = 0; r < pgm_pg_ntuples(res); r++) {
		char *name = qualified(pgm_pg_value(res, r, 0), pgm_pg_value(res, r, 1));
		const char *v = pgm_pg_value(res, r, 2);
		cJSON_AddItemToObject(sd->sequences, name, v ? cJSON_CreateNumber(strtod(v, NULL)) : cJSON_CreateNull());
		free(name);
	}
	side_finished(sd);
}

static void
on_counts(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	side_t *sd = data;

	if (err) {
		side_fail(sd, "could not count rows", err);
		return;
	}
	for (int r = 0; r < pgm_pg_ntuples(res); r++)
		cJSON_AddNumberToObject(sd->rows, pgm_pg_value(res, r, 0), (double) pgm_pg_int64(res, r, 1, 0));
	pgm_pg_query(conn, sequences_sql, 0, NULL, on_sequences, sd);
}

/* one UNION ALL statement counting every table, inside the side's snapshot */
static void
on_tables(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	side_t *sd = data;
	size_t cap = 256, len = 0;
	char *sql;
	int n = pgm_pg_ntuples(res);

	if (err) {
		side_fail(sd, "could not list tables", err);
		return;
	}
	if (n == 0) {
		pgm_pg_query(conn, sequences_sql, 0, NULL, on_sequences, sd);
		return;
	}
	sql = pgm_malloc(cap);
	sql[0] = '\0';
	for (int r = 0; r < n; r++) {
		char *name = qualified(pgm_pg_value(res, r, 0), pgm_pg_value(res, r, 1));
		char *lit = pgm_quote_literal(name);
		char *qs = pgm_quote_ident(pgm_pg_value(res, r, 0));
		char *qt = pgm_quote_ident(pgm_pg_value(res, r, 1));
		char *part = pgm_asprintf("%sSELECT %s::text, count(*) FROM ONLY %s.%s", r ? " UNION ALL " : "", lit, qs, qt);
		size_t pl = strlen(part);

		if (len + pl + 1 > cap) {
			cap = (len + pl + 1) * 2;
			sql = pgm_realloc(sql, cap);
		}
		memcpy(sql + len, part, pl + 1);
		len += pl;
		free(part);
		free(qt);
		free(qs);
		free(lit);
		free(name);
	}
	pgm_pg_query(conn, sql, 0, NULL, on_counts, sd);
	free(sql);
}

static void
on_begin(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	side_t *sd = data;

	if (err) {
		side_fail(sd, "could not open a snapshot", err);
		return;
	}
	pgm_pg_query(conn, tables_sql, 0, NULL, on_tables, sd);
}

static void
on_connect(pgm_pg_conn_t *conn, const pgm_pg_error_t *err, void *data)
{
	side_t *sd = data;

	if (err) {
		sd->conn = NULL;
		side_fail(sd, "could not connect", err);
		return;
	}
	pgm_pg_query(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL, on_begin, sd);
}

void
pgm_counts_verify(pgm_step_t *s)
{
	counts_t *cv = pgm_calloc(1, sizeof(*cv));

	cv->step = s;
	cv->started = pgm_mono_ms();
	s->priv = cv;
	s->priv_free = counts_free;
	for (int i = 0; i < 2; i++) {
		side_t *sd = &cv->sides[i];
		sd->cv = cv;
		sd->source = i == 0;
		sd->rows = cJSON_CreateObject();
		sd->sequences = cJSON_CreateObject();
		sd->conn = pgm_step_connect(s, sd->source, "verify", on_connect, sd);
	}
}
