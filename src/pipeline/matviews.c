/*
 * matviews.c — the materialized views populated on the source, refreshed
 * on the target once the tables they read are copied: pg_restore of a
 * whole archive does so with its REFRESH entries; a schema-only copy has
 * none, and leaves each view unpopulated ("materialized view ... has not
 * been populated" for every query of it on the new primary).
 */
#include "common/log.h"
#include "common/util.h"
#include "pipeline/copy/copy.h"
#include "pipeline/matviews.h"
#include "pipeline/sql.h"

#include <stdlib.h>

/* ordered by the longest chain of views and materialized views below each that ends in a materialized view */
const char *const pgm_matviews_sql =
	"WITH RECURSIVE reads(rel, ref) AS ("
	"  SELECT DISTINCT r.ev_class, d.refobjid FROM pg_rewrite r"
	"    JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid"
	"     AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> r.ev_class"
	"    JOIN pg_class c ON c.oid = d.refobjid AND c.relkind IN ('v', 'm')),"
	" chain(mv, ref, depth) AS ("
	"  SELECT rel, ref, 1 FROM reads"
	"  UNION ALL SELECT chain.mv, reads.ref, chain.depth + 1 FROM chain JOIN reads ON reads.rel = chain.ref"
	"   WHERE chain.depth < 100)"
	" SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname),"
	"        coalesce((SELECT max(depth) FROM chain JOIN pg_class x ON x.oid = chain.ref AND x.relkind = 'm'"
	"                   WHERE chain.mv = c.oid), 0) AS level"
	"   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
	"  WHERE c.relkind = 'm' AND c.relispopulated"
	"    AND n.nspname !~ '^" PGM_CAPTURE_SCHEMA_PREFIX "'"
	"    AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass"
	"                      AND d.objid = c.oid AND d.deptype = 'e')"
	"  ORDER BY 2, 1";

void
pgm_matviews_refresh_names(pgm_step_t *s, char *const *names, int n, pgm_step_then_fn then, void *data)
{
	pgm_sql_t *q;

	if (n == 0) {
		then(s, data);
		return;
	}
	q = pgm_sql_begin(s, false, "materialized views", "could not refresh a materialized view on the target",
			  "its query failed on the target: fix the cause, then \"pgmover retry\"");
	for (int i = 0; i < n; i++) {
		char *sql = pgm_asprintf("REFRESH MATERIALIZED VIEW %s", names[i]);

		pgm_sql_add(q, sql, NULL, NULL);
		free(sql);
	}
	pgm_sql_run(q, then, data);
}

typedef struct refresh {
	pgm_step_then_fn then;
	void *data;
	char **names;
	int n;
} refresh_t;

static void
refresh_free(void *p)
{
	refresh_t *r = p;

	for (int i = 0; i < r->n; i++)
		free(r->names[i]);
	free(r->names);
	free(r);
}

static void
on_names(pgm_step_t *s, const PGresult *res, void *data)
{
	refresh_t *r = data;
	int n = pgm_pg_ntuples(res);

	r->names = pgm_calloc((size_t) n + 1, sizeof(char *));
	for (int i = 0; i < n; i++)
		r->names[r->n++] = pgm_strdup(pgm_pg_value(res, i, 0));
}

static void
on_refreshed(pgm_step_t *s, void *data)
{
	refresh_t *r = data;
	pgm_step_then_fn then = r->then;
	void *then_data = r->data;

	if (r->n > 0)
		pgm_info("job %s: %d materialized view(s) refreshed on the target", s->job->name, r->n);
	pgm_step_disown(s, r);
	refresh_free(r);
	then(s, then_data);
}

static void
on_read(pgm_step_t *s, void *data)
{
	refresh_t *r = data;

	pgm_matviews_refresh_names(s, r->names, r->n, on_refreshed, r);
}

void
pgm_matviews_refresh(pgm_step_t *s, pgm_step_then_fn then, void *data)
{
	refresh_t *r = pgm_calloc(1, sizeof(*r));
	pgm_sql_t *q;

	r->then = then;
	r->data = data;
	pgm_step_own(s, r, refresh_free);
	q = pgm_sql_begin(s, true, "materialized views", "could not list the materialized views of the source", NULL);
	pgm_sql_add(q, pgm_matviews_sql, on_names, r);
	pgm_sql_run(q, on_read, r);
}
