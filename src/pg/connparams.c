/*
 * connparams.c — the libpq keywords that bound a connection's waits
 * (keepalives, tcp_user_timeout, connect_timeout, statement and lock
 * timeouts), assembled so that the user's connection string wins, and the
 * host name that pgmover resolves on the loop instead of libpq blocking it.
 */
#include "pg/connparams.h"
#include "common/settings.h"
#include "common/util.h"

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
pgm_pg_net_from_options(const cJSON *options, bool bounded, pgm_pg_net_t *out)
{
	memset(out, 0, sizeof(*out));
	out->connect_timeout_ms = pgm_jobopt_int(options, "connect_timeout");
	out->keepalives_idle_ms = pgm_jobopt_int(options, "keepalives_idle");
	out->keepalives_interval_ms = pgm_jobopt_int(options, "keepalives_interval");
	out->keepalives_count = pgm_jobopt_int(options, "keepalives_count");
	out->tcp_user_timeout_ms = pgm_jobopt_int(options, "tcp_user_timeout");
	out->bounded = bounded;
	out->statement_timeout_ms = pgm_jobopt_int(options, "statement_timeout");
	out->lock_timeout_ms = pgm_jobopt_int(options, "lock_timeout");
}

int64_t
pgm_pg_net_silence_ms(const pgm_pg_net_t *net)
{
	if (net == NULL || !net->bounded || net->statement_timeout_ms <= 0)
		return 0;
	return net->statement_timeout_ms + net->keepalives_idle_ms +
	       net->keepalives_interval_ms * net->keepalives_count;
}

/* libpq counts these in whole seconds: round up, never to 0 (which means "off") */
static int64_t
whole_seconds(int64_t ms)
{
	return ms <= 0 ? 0 : (ms + 999) / 1000;
}

static void
kw_add(pgm_conn_kw_t *kw, const char *key, const char *val)
{
	if (kw->n == PGM_CONN_KW_MAX)
		return;
	kw->keys[kw->n] = key;
	kw->vals[kw->n] = val;
	kw->n++;
	kw->keys[kw->n] = NULL;
	kw->vals[kw->n] = NULL;
}

static void
kw_addn(pgm_conn_kw_t *kw, const char *key, int64_t v)
{
	char *s = pgm_asprintf("%lld", (long long) v);

	kw->owned[kw->nowned++] = s;
	kw_add(kw, key, s);
}

/* the bounds, as libpq's keywords (each a default the string may override) */
static void
kw_add_bounds(pgm_conn_kw_t *kw, const pgm_pg_net_t *net)
{
	if (net->keepalives_idle_ms > 0 || net->keepalives_interval_ms > 0 || net->keepalives_count > 0)
		kw_add(kw, "keepalives", "1");
	if (net->keepalives_idle_ms > 0)
		kw_addn(kw, "keepalives_idle", whole_seconds(net->keepalives_idle_ms));
	if (net->keepalives_interval_ms > 0)
		kw_addn(kw, "keepalives_interval", whole_seconds(net->keepalives_interval_ms));
	if (net->keepalives_count > 0)
		kw_addn(kw, "keepalives_count", net->keepalives_count);
	if (net->tcp_user_timeout_ms > 0)
		kw_addn(kw, "tcp_user_timeout", net->tcp_user_timeout_ms);
	/* libpq takes at least 2 s; the loop's own timer enforces the exact bound */
	if (net->connect_timeout_ms > 0) {
		int64_t s = whole_seconds(net->connect_timeout_ms);
		kw_addn(kw, "connect_timeout", s < 2 ? 2 : s);
	}
}

/* a keyword's value in the string itself (malloc'd), NULL when unset */
static char *
dsn_option(const char *dsn, const char *keyword)
{
	PQconninfoOption *opts = dsn ? PQconninfoParse(dsn, NULL) : NULL;
	char *v = NULL;

	for (PQconninfoOption *o = opts; o && o->keyword; o++)
		if (strcmp(o->keyword, keyword) == 0 && o->val && o->val[0])
			v = pgm_strdup(o->val);
	PQconninfoFree(opts);
	return v;
}

void
pgm_conn_kw_build(pgm_conn_kw_t *kw, const char *dsn, const pgm_pg_net_t *net, const char *app_name, const char *host,
		  const char *hostaddrs)
{
	memset(kw, 0, sizeof(*kw));
	if (net)
		kw_add_bounds(kw, net);
	kw_add(kw, "dbname", dsn);
	kw_add(kw, "application_name", app_name ? app_name : "pgmover");
	if (host && hostaddrs) {
		kw_add(kw, "host", host);
		kw_add(kw, "hostaddr", hostaddrs);
	}
}

char *
pgm_conn_bounds_sql(const char *dsn, const pgm_pg_net_t *net)
{
	char *theirs = dsn_option(dsn, "options");
	pgm_buf_t b = {0};

	if (net && net->bounded && !(theirs && strstr(theirs, "statement_timeout")))
		pgm_buf_appendf(&b, "SET statement_timeout = %lld", (long long) net->statement_timeout_ms);
	if (net && net->bounded && !(theirs && strstr(theirs, "lock_timeout")))
		pgm_buf_appendf(&b, "%sSET lock_timeout = %lld", b.s ? "; " : "", (long long) net->lock_timeout_ms);
	free(theirs);
	return b.s;
}

void
pgm_conn_kw_free(pgm_conn_kw_t *kw)
{
	for (int i = 0; i < kw->nowned; i++)
		free(kw->owned[i]);
	memset(kw, 0, sizeof(*kw));
}

static bool
is_address(const char *h)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, h, buf) == 1 || inet_pton(AF_INET6, h, buf) == 1;
}

char *
pgm_conn_host_to_resolve(const char *dsn)
{
	char *host = dsn_option(dsn, "host");
	char *hostaddr = dsn_option(dsn, "hostaddr");
	bool resolve =
		host && !hostaddr && host[0] != '/' && host[0] != '@' && strchr(host, ',') == NULL && !is_address(host);

	free(hostaddr);
	if (!resolve) {
		free(host);
		return NULL;
	}
	return host;
}

/* key='value' with libpq's quoting (backslash and quote) */
static void
buf_kv(pgm_buf_t *b, const char *key, const char *val)
{
	pgm_buf_appendf(b, "%s%s='", b->s[0] ? " " : "", key);
	for (const char *p = val; *p; p++) {
		char c[3] = {'\\', *p, '\0'};
		pgm_buf_append(b, (*p == '\'' || *p == '\\') ? c : c + 1);
	}
	pgm_buf_append(b, "'");
}

char *
pgm_conn_child_conninfo(const char *dsn, const pgm_pg_net_t *net)
{
	PQconninfoOption *opts = dsn ? PQconninfoParse(dsn, NULL) : NULL;
	pgm_conn_kw_t bounds;
	pgm_buf_t b = {0};

	if (opts == NULL)
		return NULL;
	pgm_buf_append(&b, "");
	for (PQconninfoOption *o = opts; o->keyword; o++)
		if (o->val && o->val[0] && strcmp(o->keyword, "password") != 0)
			buf_kv(&b, o->keyword, o->val);
	memset(&bounds, 0, sizeof(bounds));
	if (net)
		kw_add_bounds(&bounds, net);
	for (int i = 0; i < bounds.n; i++) {
		bool theirs = false;

		for (PQconninfoOption *o = opts; o->keyword; o++)
			if (strcmp(o->keyword, bounds.keys[i]) == 0 && o->val && o->val[0])
				theirs = true;
		if (!theirs)
			buf_kv(&b, bounds.keys[i], bounds.vals[i]);
	}
	pgm_conn_kw_free(&bounds);
	PQconninfoFree(opts);
	return b.s;
}
