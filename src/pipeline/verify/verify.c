/*
 * verify.c — the verification engine (see verify.h): connections,
 * snapshots, the work queues and the report; verify_catalog.c plans the
 * work from the catalogs, verify_bisect.c narrows differences down.
 *
 *   1. `jobs` connections per side. The first to connect on each side opens a
 *      REPEATABLE READ READ ONLY transaction, pins the settings that shape
 *      a value's text (pgm_vsql_session) and exports its snapshot; the
 *      others join that snapshot (SET TRANSACTION SNAPSHOT). Every query of
 *      a side therefore sees one instant of it, however many connections
 *      share the work.
 *   2. The first connections read their catalogs: tables with their
 *      columns and keys, the schema inventory, the sequences.
 *   3. The first pass, both sides at the same time, largest tables first:
 *      count(*) and sum(row hash) of every table (verify_sql.c says how a
 *      row hashes). A side reads a heap in one sequential scan, or, when
 *      the heap alone is more than a connection's share of the side or
 *      more than 4 GB, in block ranges (TID range scans, PostgreSQL 14+)
 *      that its connections read in parallel (pgm_vplan_block_chunks),
 *      and progress is counted in; the ranges add up to the
 *      table's checksum, so each side cuts its own heap and nothing but one
 *      scan is paid for a table that matches.
 *   4. A keyed table that differs is cut into key-range chunks of about
 *      chunk_rows rows, at boundaries sampled on its larger side, and both
 *      sides sum each chunk in one query (a binary CASE over the boundaries
 *      numbers each row's chunk). A chunk that differs is bisected: the
 *      side with more rows returns the keys that cut it into FANOUT equal
 *      parts (row_number() over the key, through its index), both sides sum
 *      the parts, and so on until a part is at most leaf_rows rows; then
 *      both sides return key and row hash of each of its rows, merged here
 *      into missing, extra and changed keys. A part empty on one side lists
 *      the first max_keys keys of the other. A table without a key that
 *      differs returns its row hashes with their occurrences on both sides,
 *      and the rows that differ are shown by their text.
 * Results, completion and errors reach the caller from a timer callback,
 * so no callback runs inside the engine's own call stack.
 */
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "pipeline/verify/verify_engine.h"

#include <stdlib.h>
#include <string.h>

/* defaults; see pgm_vplan_block_chunks and bench/bench_verify.sh for how they were chosen */
#define DEFAULT_CHUNK_BYTES (64LL * 1024 * 1024)
#define DEFAULT_CHUNK_ROWS 10000
#define DEFAULT_LEAF_ROWS 2000
#define MIN_LEAF_ROWS 32 /* the fanout of the bisection (verify_bisect.c) */

static const char *const side_names[] = {"source", "target"};

static void worker_setup(worker_t *w);

static void
error_copy(pgm_pg_error_t *dst, const pgm_pg_error_t *src)
{
	memcpy(dst->sqlstate, src->sqlstate, sizeof(dst->sqlstate));
	dst->message = pgm_strdup(src->message);
	dst->detail = src->detail ? pgm_strdup(src->detail) : NULL;
	dst->hint = src->hint ? pgm_strdup(src->hint) : NULL;
}

static void
on_timer_closed(uv_handle_t *h)
{
	struct pgm_verify *v = h->data;

	free(h);
	free(v->dsn[0]);
	free(v->dsn[1]);
	for (int i = 0; v->filter && v->filter[i]; i++)
		free(v->filter[i]);
	free(v->filter);
	free(v->app_name);
	for (int i = 0; i < v->nwarnings; i++)
		free(v->warnings[i]);
	free(v->warnings);
	free(v->fail_what);
	free(v->fail_err.message);
	free(v->fail_err.detail);
	free(v->fail_err.hint);
	free(v);
}

static void
task_free(task_t *t)
{
	free(t->sql);
	free(t);
}

static void
cmp_free(struct pgm_verify *v, cmp_t *c)
{
	pgm_vtable_t *t = &v->tables[c->table];

	if (c->prev)
		c->prev->next = c->next;
	else
		v->cmps = c->next;
	if (c->next)
		c->next->prev = c->prev;
	pgm_vkey_free(c->lo, t->nkey);
	pgm_vkey_free(c->hi, t->nkey);
	for (int b = 0; c->bounds && b < c->nb; b++)
		pgm_vkey_free(c->bounds[b], t->nkey);
	free(c->bounds);
	for (int s = 0; s < 2; s++) {
		free(c->rows[s]);
		free(c->sums[s]);
		for (int i = 0; i < c->nfetched[s]; i++)
			free(c->fetched[s][i].key);
		free(c->fetched[s]);
	}
	free(c);
}

/* close everything; the loop frees the rest (on_timer_closed) */
static void
verify_destroy(struct pgm_verify *v)
{
	for (int s = 0; s < 2; s++) {
		side_t *sd = &v->sides[s];

		for (int i = 0; i < sd->nworkers; i++) {
			worker_t *w = &sd->workers[i];
			if (w->conn) {
				pgm_pg_cancel(w->conn);
				pgm_pg_close(w->conn);
				w->conn = NULL;
			}
			if (w->task)
				task_free(w->task);
			w->task = NULL;
		}
		while (sd->head) {
			task_t *t = sd->head;
			sd->head = t->next;
			task_free(t);
		}
		free(sd->snapshot);
	}
	while (v->cmps)
		cmp_free(v, v->cmps);
	verify_catalog_free(v);
	uv_timer_stop(v->timer);
	uv_close((uv_handle_t *) v->timer, on_timer_closed);
}

static cJSON *build_report(struct pgm_verify *v);

static void
on_finish_timer(uv_timer_t *h)
{
	struct pgm_verify *v = h->data;
	cJSON *report = v->failed ? NULL : build_report(v);

	v->cancelled = true; /* from here on, cancel is a no-op */
	if (v->failed)
		v->done_cb(v, NULL, v->fail_what, &v->fail_err, v->data);
	else
		v->done_cb(v, report, NULL, NULL, v->data);
	verify_destroy(v);
}

static void
schedule_finish(struct pgm_verify *v)
{
	if (v->finishing)
		return;
	v->finishing = true;
	uv_timer_start(v->timer, on_finish_timer, 0, 0);
}

void
verify_fail(struct pgm_verify *v, const char *what, const pgm_pg_error_t *err)
{
	if (v->failed || v->finishing)
		return;
	v->failed = true;
	v->fail_what = pgm_strdup(what);
	error_copy(&v->fail_err, err);
	schedule_finish(v);
}

/* a failure that is not the server's: message and hint in the error shape */
static void
fail_text(struct pgm_verify *v, const char *what, const char *message, const char *hint)
{
	pgm_pg_error_t e = {.message = (char *) message, .hint = (char *) hint};

	verify_fail(v, what, &e);
}

void
verify_warn(struct pgm_verify *v, char *msg)
{
	pgm_warning("verify: %s", msg);
	v->warnings = pgm_realloc(v->warnings, (size_t) (v->nwarnings + 1) * sizeof(char *));
	v->warnings[v->nwarnings++] = msg;
}

void
verify_progress(struct pgm_verify *v, bool force)
{
	cJSON *p;
	int64_t now = pgm_mono_ms(), data_ms = v->catalog_mono ? now - v->catalog_mono : 0;
	double rate = data_ms > 0 ? (double) v->blocks_done * 8192.0 * 1000.0 / (double) data_ms : 0;

	if (v->progress_cb == NULL || (!force && now - v->last_progress < 1000))
		return;
	v->last_progress = now;
	p = cJSON_CreateObject();
	pgm_json_set_str(p, "name", "verify");
	pgm_json_set_str(p, "phase", v->phase);
	pgm_json_set_num(p, "tables_done", v->tables_done);
	pgm_json_set_num(p, "tables_total", v->ntables);
	pgm_json_set_num(p, "chunks_done", v->chunks_done);
	pgm_json_set_num(p, "chunks_total", v->chunks_total);
	/* the first pass's heaps, both sides, in 8 kB blocks: what the time goes into */
	pgm_json_set_num(p, "bytes_done", (double) v->blocks_done * 8192.0);
	pgm_json_set_num(p, "bytes_total", (double) v->blocks_total * 8192.0);
	pgm_json_set_num(p, "rate_bytes_per_sec", rate);
	if (rate > 0 && v->blocks_done < v->blocks_total)
		pgm_json_set_num(p, "eta_seconds", (double) (v->blocks_total - v->blocks_done) * 8192.0 / rate);
	else
		pgm_json_set(p, "eta_seconds", cJSON_CreateNull());
	pgm_json_set_num(p, "rows_compared", (double) v->rows_compared);
	pgm_json_set_num(p, "elapsed_ms", (double) (now - v->started_mono));
	v->progress_cb(v, p, v->data);
	cJSON_Delete(p);
}

cmp_t *
verify_cmp_new(struct pgm_verify *v, task_kind_t kind, int table, const pgm_vkey_t lo, const pgm_vkey_t hi)
{
	cmp_t *c = pgm_calloc(1, sizeof(*c));
	pgm_vtable_t *t = &v->tables[table];

	c->kind = kind;
	c->table = table;
	c->lo = pgm_vkey_dup(lo, t->nkey);
	c->hi = pgm_vkey_dup(hi, t->nkey);
	c->next = v->cmps;
	if (v->cmps)
		v->cmps->prev = c;
	v->cmps = c;
	t->pending++;
	return c;
}

task_t *
verify_task_new(task_kind_t kind, int side, int table, cmp_t *c, char *sql, bool ranged)
{
	task_t *t = pgm_calloc(1, sizeof(*t));

	t->kind = kind;
	t->side = side;
	t->table = table;
	t->cmp = c;
	t->sql = sql;
	t->ranged = ranged;
	return t;
}

void
verify_queue(struct pgm_verify *v, task_t *t, bool front)
{
	side_t *sd = &v->sides[t->side];

	if (front || sd->head == NULL) {
		t->next = sd->head;
		sd->head = t;
		if (sd->tail == NULL)
			sd->tail = t;
	} else {
		sd->tail->next = t;
		sd->tail = t;
	}
}

/* every table compared: the report goes out from a fresh stack */
static void
check_finished(struct pgm_verify *v)
{
	if (v->phase && strcmp(v->phase, "data") == 0 && v->tables_done == v->ntables)
		schedule_finish(v);
}

void
verify_table_finish(struct pgm_verify *v, pgm_vtable_t *t)
{
	t->done = true;
	t->ended_ms = pgm_mono_ms();
	if (t->started_ms == 0)
		t->started_ms = t->ended_ms;
	pgm_vtable_reconcile(t);
	v->tables_done++;
	verify_progress(v, false);
	check_finished(v);
}

void
verify_cmp_finish(struct pgm_verify *v, cmp_t *c)
{
	pgm_vtable_t *t = &v->tables[c->table];

	cmp_free(v, c);
	if (--t->pending == 0)
		verify_table_finish(v, t);
}

static void
on_task(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	worker_t *w = data;
	struct pgm_verify *v = w->v;
	task_t *tk = w->task;

	w->task = NULL;
	if (err) {
		char *what = pgm_asprintf("could not compare %s on the %s", v->tables[tk->table].display,
					  side_names[w->side]);
		verify_fail(v, what, err);
		free(what);
		task_free(tk);
		return;
	}
	if (!v->failed && !v->finishing)
		verify_handle_result(v, tk, res);
	task_free(tk);
	verify_pump(v, 0);
	verify_pump(v, 1);
}

/* start queued work on every idle connection of the side */
void
verify_pump(struct pgm_verify *v, int side)
{
	side_t *sd = &v->sides[side];

	if (v->failed || v->finishing)
		return;
	for (int i = 0; i < sd->nworkers && sd->head; i++) {
		worker_t *w = &sd->workers[i];
		task_t *tk;
		char *sql;

		if (!w->ready || w->task || w->conn == NULL)
			continue;
		tk = sd->head;
		sd->head = tk->next;
		if (sd->head == NULL)
			sd->tail = NULL;
		tk->next = NULL;
		w->task = tk;
		if (v->tables && v->tables[tk->table].started_ms == 0)
			v->tables[tk->table].started_ms = pgm_mono_ms();
		/* a range goes through the key's index: a sequential scan per chunk would multiply the work */
		if (tk->ranged != w->seqscan_off) {
			w->seqscan_off = tk->ranged;
			sql = pgm_asprintf("SET enable_seqscan = %s; %s", tk->ranged ? "off" : "on", tk->sql);
		} else {
			sql = pgm_strdup(tk->sql);
		}
		pgm_pg_query(w->conn, sql, 0, NULL, on_task, w);
		free(sql);
	}
	check_finished(v);
}

/* ---- connections and snapshots ---- */

static void
on_catalog(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	static const char *const *const queries[] = {&pgm_vsql_tables, &pgm_vsql_schema, &pgm_vsql_sequences};
	worker_t *w = data;
	struct pgm_verify *v = w->v;
	side_t *sd = &v->sides[w->side];

	if (err) {
		char *what = pgm_asprintf("could not read the catalog of the %s", side_names[w->side]);
		verify_fail(v, what, err);
		free(what);
		return;
	}
	if (res)
		verify_catalog_result(v, w, res);
	if (sd->catalog_step < 3) {
		pgm_pg_query(conn, *queries[sd->catalog_step], 0, NULL, on_catalog, w);
		return;
	}
	w->ready = true;
	if (v->sides[0].catalog_step == 3 && v->sides[1].catalog_step == 3) {
		v->catalog_mono = pgm_mono_ms();
		v->phase = "planning";
		verify_plan_tables(v);
	}
	verify_pump(v, 0);
	verify_pump(v, 1);
}

static void
on_setup(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	worker_t *w = data;
	struct pgm_verify *v = w->v;
	side_t *sd = &v->sides[w->side];

	if (err) {
		char *what = pgm_asprintf("could not open a snapshot on the %s", side_names[w->side]);
		verify_fail(v, what, err);
		free(what);
		return;
	}
	if (w->id != sd->leader) {
		w->ready = true;
		verify_pump(v, w->side);
		return;
	}
	sd->snapshot = pgm_strdup(pgm_pg_value(res, 0, 0));
	sd->snapshot_mono = pgm_mono_ms();
	for (int i = 0; i < sd->nworkers; i++)
		if (i != sd->leader && sd->workers[i].connected)
			worker_setup(&sd->workers[i]);
	on_catalog(conn, NULL, NULL, w);
}

/* the side's first connection exports its snapshot, the others import it */
static void
worker_setup(worker_t *w)
{
	side_t *sd = &w->v->sides[w->side];
	const pgm_pg_net_t *net = &w->v->opts.net;
	/* a job's verification in the freeze is bounded: the job's statement and lock timeouts */
	char *bounds = net->bounded
			       ? pgm_asprintf(" SET statement_timeout = %lld; SET lock_timeout = %lld;",
					      (long long) net->statement_timeout_ms, (long long) net->lock_timeout_ms)
			       : pgm_strdup("");
	char *sql;

	if (w->id == sd->leader) {
		sql = pgm_asprintf("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; %s%s SELECT pg_export_snapshot()",
				   pgm_vsql_session, bounds);
	} else {
		char *lit = pgm_quote_literal(sd->snapshot);
		sql = pgm_asprintf("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT %s; %s%s",
				   lit, pgm_vsql_session, bounds);
		free(lit);
	}
	pgm_pg_query(w->conn, sql, 0, NULL, on_setup, w);
	free(bounds);
	free(sql);
}

/*
 * SQLSTATE 53300. libpq gives no SQLSTATE for a refused connection, only
 * the server's message: those of 53300, in English as Heroku sends them.
 */
static bool
too_many_connections(const pgm_pg_error_t *err)
{
	return strcmp(err->sqlstate, "53300") == 0 || strstr(err->message, "too many connections") ||
	       strstr(err->message, "too many clients") || strstr(err->message, "connection slots are reserved");
}

static void
on_connect(pgm_pg_conn_t *conn, const pgm_pg_error_t *err, void *data)
{
	worker_t *w = data;
	struct pgm_verify *v = w->v;
	side_t *sd = &v->sides[w->side];

	if (err) {
		w->conn = NULL; /* pgasync closed it */
		sd->nalive--;
		/* while another connection lives, a connection limit only slows the work down */
		if (sd->nalive > 0 && too_many_connections(err)) {
			verify_warn(v, pgm_asprintf("the %s accepts fewer connections: verifying with %d instead of %d",
						    side_names[w->side], sd->nalive, sd->nworkers));
			return;
		}
		char *what = pgm_asprintf("could not connect to the %s", side_names[w->side]);
		verify_fail(v, what, err);
		free(what);
		return;
	}
	w->connected = true;
	if (sd->leader < 0) {
		sd->leader = w->id;
		sd->server_version = pgm_pg_server_version(conn);
		if (sd->server_version < 110000) {
			char *msg = pgm_asprintf("the %s runs PostgreSQL %d.%d, older than 11", side_names[w->side],
						 sd->server_version / 10000, sd->server_version % 10000 / 100);
			fail_text(v, "cannot verify", msg,
				  "verification needs PostgreSQL 11 or later on both sides (64-bit hash functions)");
			free(msg);
			return;
		}
		worker_setup(w);
	} else if (sd->snapshot) {
		worker_setup(w);
	}
}

pgm_verify_t *
pgm_verify_start(uv_loop_t *loop, const char *source_dsn, const char *target_dsn, const pgm_verify_options_t *opts,
		 pgm_verify_done_cb done_cb, pgm_verify_progress_cb progress_cb, void *data)
{
	struct pgm_verify *v = pgm_calloc(1, sizeof(*v));
	pgm_verify_options_t o = opts ? *opts : (pgm_verify_options_t){0};
	int n = 0;

	o.jobs = o.jobs <= 0 ? 2 : o.jobs > VERIFY_MAX_JOBS ? VERIFY_MAX_JOBS : o.jobs;
	o.max_keys = o.max_keys <= 0 ? 20 : o.max_keys;
	o.chunk_bytes = o.chunk_bytes <= 0 ? DEFAULT_CHUNK_BYTES : o.chunk_bytes;
	o.chunk_rows = o.chunk_rows <= 0 ? DEFAULT_CHUNK_ROWS : o.chunk_rows;
	o.leaf_rows = o.leaf_rows <= 0 ? DEFAULT_LEAF_ROWS : o.leaf_rows;
	if (o.leaf_rows < MIN_LEAF_ROWS)
		o.leaf_rows = MIN_LEAF_ROWS;
	v->loop = loop;
	v->dsn[0] = pgm_strdup(source_dsn);
	v->dsn[1] = pgm_strdup(target_dsn);
	if (o.tables) {
		while (o.tables[n])
			n++;
		v->filter = pgm_calloc((size_t) n + 1, sizeof(char *));
		for (int i = 0; i < n; i++)
			v->filter[i] = pgm_strdup(o.tables[i]);
	}
	o.tables = NULL; /* v->filter is the copy */
	v->app_name = pgm_asprintf("%s:verify", o.app_name ? o.app_name : "pgmover");
	o.app_name = NULL;
	v->opts = o;
	v->done_cb = done_cb;
	v->progress_cb = progress_cb;
	v->data = data;
	v->phase = "connecting";
	v->started_mono = pgm_mono_ms();
	v->timer = pgm_malloc(sizeof(uv_timer_t));
	uv_timer_init(loop, v->timer);
	v->timer->data = v;
	for (int s = 0; s < 2; s++) {
		side_t *sd = &v->sides[s];

		sd->nworkers = sd->nalive = o.jobs;
		sd->leader = -1;
		for (int i = 0; i < o.jobs; i++) {
			worker_t *w = &sd->workers[i];
			w->v = v;
			w->side = s;
			w->id = i;
			w->conn = pgm_pg_connect(loop, v->dsn[s], v->app_name, &v->opts.net, on_connect, w);
		}
	}
	return v;
}

void
pgm_verify_cancel(pgm_verify_t *v)
{
	if (v == NULL || v->cancelled)
		return;
	v->cancelled = true;
	verify_destroy(v);
}

void
pgm_verify_cancel_cb(void *v)
{
	pgm_verify_cancel(v);
}

/* ---- the report ---- */

static cJSON *
build_report(struct pgm_verify *v)
{
	cJSON *r = cJSON_CreateObject(), *tables, *schema, *warnings, *t;
	int64_t s0;
	int mismatches = 0, nobjs[2] = {v->sides[0].nobjs, v->sides[1].nobjs};
	int nseqs[2] = {v->sides[0].nseqs, v->sides[1].nseqs};
	pgm_vobj_t *objs[2] = {v->sides[0].objs, v->sides[1].objs};
	pgm_vseq_t *seqs[2] = {v->sides[0].seqs, v->sides[1].seqs};

	pgm_json_set_str(r, "method", "checksum");
	tables = cJSON_AddArrayToObject(r, "tables");
	for (int k = 0; k < v->ntables; k++) {
		t = pgm_vreport_table(&v->tables[k], v->opts.max_keys);
		mismatches += !cJSON_IsTrue(cJSON_GetObjectItem(t, "match"));
		cJSON_AddItemToArray(tables, t);
	}
	/* a table asked for by name that neither side has is a difference, not nothing to check */
	for (int f = 0; v->filter && v->filter[f]; f++) {
		const char *one[] = {v->filter[f], NULL};
		bool found = false;

		for (int k = 0; k < v->ntables && !found; k++)
			found = pgm_vfilter_match(one, v->tables[k].schema, v->tables[k].name);
		if (found)
			continue;
		t = cJSON_CreateObject();
		pgm_json_set_str(t, "table", v->filter[f]);
		pgm_json_set(t, "source_rows", cJSON_CreateNull());
		pgm_json_set(t, "target_rows", cJSON_CreateNull());
		pgm_json_set(t, "match", cJSON_CreateFalse());
		pgm_json_set_str(t, "problem",
				 "no such table on either side: check the name (\"table\" matches it "
				 "in any schema, \"schema.table\" in one)");
		cJSON_AddItemToArray(tables, t);
		mismatches++;
	}
	pgm_json_set(r, "sequences", pgm_vreport_sequences(seqs, nseqs, (const char *const *) v->filter, &mismatches));
	schema = pgm_vreport_schema(objs, nobjs, (const char *const *) v->filter);
	mismatches += cJSON_GetArraySize(cJSON_GetObjectItem(schema, "differences"));
	pgm_json_set(r, "schema", schema);
	pgm_json_set_num(r, "tables_compared", v->ntables);
	pgm_json_set_num(r, "mismatches", mismatches);
	pgm_json_set(r, "ok", cJSON_CreateBool(mismatches == 0));
	pgm_json_set_str(r, "hash", "sum of per-row xor of 64-bit *extended hash functions (see verify_sql.c)");
	pgm_json_set_num(r, "jobs", v->opts.jobs);
	pgm_json_set_num(r, "source_server_version", v->sides[0].server_version);
	pgm_json_set_num(r, "target_server_version", v->sides[1].server_version);
	if (v->nwarnings > 0) {
		warnings = cJSON_AddArrayToObject(r, "warnings");
		for (int i = 0; i < v->nwarnings; i++)
			cJSON_AddItemToArray(warnings, cJSON_CreateString(v->warnings[i]));
	}
	pgm_json_set_num(r, "duration_ms", (double) (pgm_mono_ms() - v->started_mono));
	/* where the time went: connecting and opening both snapshots, the catalogs, the data */
	t = cJSON_AddObjectToObject(r, "timings_ms");
	s0 = v->sides[0].snapshot_mono > v->sides[1].snapshot_mono ? v->sides[0].snapshot_mono
								   : v->sides[1].snapshot_mono;
	pgm_json_set_num(t, "snapshots", (double) (s0 - v->started_mono));
	pgm_json_set_num(t, "catalogs", (double) (v->catalog_mono - s0));
	pgm_json_set_num(t, "data", (double) (pgm_mono_ms() - v->catalog_mono));
	pgm_json_set_time(r, "at", pgm_now_ms());
	return r;
}
