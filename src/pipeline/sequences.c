/*
 * sequences.c — one sequence sync, run by whoever needs it on its own
 * scripts (a flow's, whose errors fail the flow; the pglogical context's,
 * on its sessions): read the values on one side, raise the other's.
 *
 * Only sequences that are behind are set: the one that is ahead, in the
 * direction it counts on the side raised, keeps its value. Sequences the
 * raised side lacks are named to the caller, which decides whether that
 * is a warning (cutover, rollback) or a failure (the drain).
 */
#include "common/util.h"
#include "pipeline/sequences.h"

#include <stdlib.h>

/* pglogical's schema has no sequences today; it is pgmover's tool, not the application's */
static const char *read_sql =
	"SELECT coalesce(json_agg(json_build_object('s', schemaname, 'n', sequencename, 'v', last_value)), '[]')::text"
	"  FROM pg_sequences"
	" WHERE last_value IS NOT NULL AND schemaname NOT IN ('pg_catalog', 'information_schema', 'pglogical')";

static const char *raise_sql =
	"WITH f AS (SELECT * FROM json_to_recordset($1::json) AS f(s text, n text, v bigint)),"
	" j AS (SELECT f.*, t.sequencename IS NULL AS missing, t.last_value AS tv, t.increment_by AS i"
	"         FROM f LEFT JOIN pg_sequences t ON t.schemaname = f.s AND t.sequencename = f.n),"
	" behind AS (SELECT * FROM j WHERE NOT missing AND (tv IS NULL OR (i > 0 AND tv < v) OR (i < 0 AND tv > v))),"
	" raised AS (SELECT setval(format('%I.%I', s, n)::regclass, v, true) FROM behind)"
	" SELECT (SELECT count(*) FROM f), (SELECT count(*) FROM raised),"
	"        (SELECT string_agg(format('%I.%I', s, n), ', ') FROM j WHERE missing)";

static void
on_read(pgm_step_t *s, const PGresult *res, void *data)
{
	char **values = data;

	free(*values);
	*values = pgm_strdup(pgm_pg_value(res, 0, 0) ? pgm_pg_value(res, 0, 0) : "[]");
}

void
pgm_sequences_read(pgm_sql_t *q, char **values)
{
	pgm_sql_add(q, read_sql, on_read, values);
}

typedef struct raise {
	pgm_seq_raised_cb cb;
	void *data;
} raise_t;

static void
on_raised(pgm_step_t *s, const PGresult *res, void *data)
{
	raise_t *r = data;
	pgm_seq_raised_cb cb = r->cb;
	void *cbdata = r->data;
	pgm_seq_raised_t out = {
		.checked = pgm_pg_int64(res, 0, 0, 0),
		.raised = pgm_pg_int64(res, 0, 1, 0),
		.missing = pgm_pg_value(res, 0, 2),
	};

	pgm_step_disown(s, r);
	free(r);
	cb(s, &out, cbdata);
}

void
pgm_sequences_raise(pgm_sql_t *q, const char *values, pgm_seq_raised_cb cb, void *data)
{
	raise_t *r = pgm_calloc(1, sizeof(*r));
	const char *params[1] = {values ? values : "[]"};

	r->cb = cb;
	r->data = data;
	/* the step frees it if the script fails before its result */
	pgm_step_own(pgm_sql_step(q), r, free);
	pgm_sql_add_params(q, raise_sql, 1, params, on_raised, r);
}
