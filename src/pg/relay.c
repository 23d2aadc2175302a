/*
 * relay.c — COPY out of one server into another through one buffer, with
 * back-pressure (see relay.h).
 */
#include "pg/relay.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

#define RELAY_BUF (256 * 1024)

struct pgm_relay {
	pgm_pg_conn_t *src, *dst;
	char *out_sql;
	pgm_relay_done_cb cb;
	void *data;
	char *buf;
	size_t len;
	int64_t bytes;
	bool paused, ending;
	pgm_pg_error_t *src_err; /* a source error, reported once the target has ended its COPY */
};

static void
relay_free(pgm_relay_t *r)
{
	if (r->src_err) {
		free(r->src_err->message);
		free(r->src_err->detail);
		free(r->src_err->hint);
		free(r->src_err);
	}
	free(r->out_sql);
	free(r->buf);
	free(r);
}

static void
relay_done(pgm_relay_t *r, const pgm_pg_error_t *err, bool from_source)
{
	r->cb(r, r->bytes, err, from_source, r->data);
	relay_free(r);
}

static void
on_dst_end(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	pgm_relay_t *r = data;

	if (r->src_err)
		relay_done(r, r->src_err, true);
	else
		relay_done(r, err, false);
}

/* end the target's COPY; with errmsg, abort it (the source failed) */
static void
end_dst(pgm_relay_t *r, const char *errmsg)
{
	if (r->ending)
		return;
	r->ending = true;
	pgm_pg_copy_out_pause(r->src, true);
	pgm_pg_copy_in_end(r->dst, errmsg, on_dst_end, r);
}

static void
flush_buf(pgm_relay_t *r)
{
	if (r->len == 0)
		return;
	if (!pgm_pg_copy_in_put(r->dst, r->buf, (int) r->len))
		end_dst(r, "pgmover: the target failed"); /* ending brings the target's error */
	r->len = 0;
}

static void
on_dst_drained(pgm_pg_conn_t *conn, void *data)
{
	pgm_relay_t *r = data;

	if (r->paused && !r->ending) {
		r->paused = false;
		pgm_pg_copy_out_pause(r->src, false);
	}
}

static void
keep_error(pgm_relay_t *r, const pgm_pg_error_t *err)
{
	r->src_err = pgm_calloc(1, sizeof(*r->src_err));
	memcpy(r->src_err->sqlstate, err->sqlstate, sizeof(err->sqlstate));
	r->src_err->message = pgm_strdup(err->message ? err->message : "the source failed");
	r->src_err->detail = err->detail ? pgm_strdup(err->detail) : NULL;
	r->src_err->hint = err->hint ? pgm_strdup(err->hint) : NULL;
}

static void
on_src_data(pgm_pg_conn_t *conn, const char *chunk, int len, const pgm_pg_error_t *err, void *data)
{
	pgm_relay_t *r = data;

	if (r->ending)
		return;
	if (chunk == NULL) {
		if (err) {
			keep_error(r, err);
			end_dst(r, "pgmover: the source failed");
			return;
		}
		flush_buf(r);
		end_dst(r, NULL);
		return;
	}
	r->bytes += len;
	if (r->len + (size_t) len > RELAY_BUF) {
		flush_buf(r);
		if (r->ending)
			return;
		if (pgm_pg_copy_in_backlogged(r->dst)) {
			/* the target is slower: stop reading the source until it drains */
			r->paused = true;
			pgm_pg_copy_out_pause(r->src, true);
			pgm_pg_copy_in_on_drain(r->dst, on_dst_drained, r);
		}
	}
	if ((size_t) len > RELAY_BUF) {
		/* a row larger than the buffer goes straight through */
		if (!pgm_pg_copy_in_put(r->dst, chunk, len))
			end_dst(r, "pgmover: the target failed");
		return;
	}
	memcpy(r->buf + r->len, chunk, (size_t) len);
	r->len += (size_t) len;
}

static void
on_dst_ready(pgm_pg_conn_t *conn, const PGresult *res, const pgm_pg_error_t *err, void *data)
{
	pgm_relay_t *r = data;

	if (err) {
		relay_done(r, err, false);
		return;
	}
	if (!pgm_pg_copy_out(r->src, r->out_sql, on_src_data, r)) {
		pgm_pg_error_t e = {"", (char *) "could not send the COPY to the source", NULL, NULL, NULL};

		keep_error(r, &e);
		end_dst(r, "pgmover: the source failed");
	}
}

pgm_relay_t *
pgm_relay_start(pgm_pg_conn_t *src, const char *copy_out_sql, pgm_pg_conn_t *dst, const char *copy_in_sql,
		pgm_relay_done_cb cb, void *data)
{
	pgm_relay_t *r = pgm_calloc(1, sizeof(*r));

	r->src = src;
	r->dst = dst;
	r->out_sql = pgm_strdup(copy_out_sql);
	r->cb = cb;
	r->data = data;
	r->buf = pgm_malloc(RELAY_BUF);
	if (!pgm_pg_copy_in_start(dst, copy_in_sql, on_dst_ready, r)) {
		relay_free(r);
		return NULL;
	}
	return r;
}
