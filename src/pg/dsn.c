/*
 * dsn.c — parse connection strings with libpq's own parser, so that every
 * form libpq accepts (URI, key=value, percent-encoding) works here too.
 */
#include "pg/dsn.h"
#include "common/redact.h"
#include "common/util.h"

#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

static char *
opt_dup(const char *v)
{
	return (v && *v) ? pgm_strdup(v) : NULL;
}

bool
pgm_dsn_parse(const char *dsn, pgm_dsn_t *out, char **errmsg)
{
	char *err = NULL;
	PQconninfoOption *opts;

	memset(out, 0, sizeof(*out));
	*errmsg = NULL;
	if (dsn == NULL || *dsn == '\0') {
		*errmsg = pgm_strdup("empty connection string");
		return false;
	}
	opts = PQconninfoParse(dsn, &err);
	if (opts == NULL) {
		*errmsg = err ? pgm_strdup(err) : pgm_strdup("out of memory");
		if (*errmsg) {
			size_t n = strlen(*errmsg);
			while (n > 0 && ((*errmsg)[n - 1] == '\n' || (*errmsg)[n - 1] == '.'))
				(*errmsg)[--n] = '\0';
		}
		PQfreemem(err);
		return false;
	}
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		if (strcmp(o->keyword, "host") == 0)
			out->host = opt_dup(o->val);
		else if (strcmp(o->keyword, "hostaddr") == 0 && out->host == NULL)
			out->host = opt_dup(o->val);
		else if (strcmp(o->keyword, "port") == 0)
			out->port = opt_dup(o->val);
		else if (strcmp(o->keyword, "dbname") == 0)
			out->dbname = opt_dup(o->val);
		else if (strcmp(o->keyword, "user") == 0)
			out->user = opt_dup(o->val);
		else if (strcmp(o->keyword, "password") == 0)
			out->password = opt_dup(o->val);
		else if (strcmp(o->keyword, "sslmode") == 0)
			out->sslmode = opt_dup(o->val);
	}
	PQconninfoFree(opts);
	return true;
}

void
pgm_dsn_free(pgm_dsn_t *dsn)
{
	free(dsn->host);
	free(dsn->port);
	free(dsn->dbname);
	free(dsn->user);
	free(dsn->password);
	free(dsn->sslmode);
	memset(dsn, 0, sizeof(*dsn));
}

char *
pgm_dsn_masked(const char *dsn)
{
	pgm_dsn_t d;
	char *err = NULL;
	char *out;

	if (!pgm_dsn_parse(dsn, &d, &err)) {
		free(err);
		return pgm_strdup("(invalid connection string)");
	}
	out = pgm_asprintf("postgres://%s%s%s%s%s%s/%s%s%s", d.user ? d.user : "", d.password ? ":****" : "",
			   d.user || d.password ? "@" : "", d.host ? d.host : "", d.port ? ":" : "",
			   d.port ? d.port : "", d.dbname ? d.dbname : "", d.sslmode ? "?sslmode=" : "",
			   d.sslmode ? d.sslmode : "");
	pgm_dsn_free(&d);
	return out;
}

/* append key='value' with libpq's quoting rules (backslash and quote) */
static void
append_kv(char **buf, size_t *len, size_t *cap, const char *key, const char *val)
{
	size_t need = strlen(key) + 2 * strlen(val) + 8;

	if (*len + need >= *cap) {
		*cap = (*len + need) * 2;
		*buf = pgm_realloc(*buf, *cap);
	}
	if (*len > 0)
		(*buf)[(*len)++] = ' ';
	*len += (size_t) sprintf(*buf + *len, "%s='", key);
	for (const char *p = val; *p; p++) {
		if (*p == '\'' || *p == '\\')
			(*buf)[(*len)++] = '\\';
		(*buf)[(*len)++] = *p;
	}
	(*buf)[(*len)++] = '\'';
	(*buf)[*len] = '\0';
}

char *
pgm_dsn_sslpassword(const char *dsn)
{
	PQconninfoOption *opts = PQconninfoParse(dsn, NULL);
	char *out = NULL;

	for (PQconninfoOption *o = opts; o && o->keyword; o++)
		if (strcmp(o->keyword, "sslpassword") == 0 && o->val != NULL && o->val[0] != '\0')
			out = pgm_strdup(o->val);
	PQconninfoFree(opts);
	return out;
}

char *
pgm_dsn_without_password(const char *dsn)
{
	PQconninfoOption *opts = PQconninfoParse(dsn, NULL);
	size_t len = 0, cap = 256;
	char *buf;

	if (opts == NULL)
		return NULL;
	buf = pgm_malloc(cap);
	buf[0] = '\0';
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		if (o->val == NULL || strcmp(o->keyword, "password") == 0 || strcmp(o->keyword, "sslpassword") == 0)
			continue;
		append_kv(&buf, &len, &cap, o->keyword, o->val);
	}
	PQconninfoFree(opts);
	return buf;
}

void
pgm_dsn_learn_secret(const char *dsn)
{
	PQconninfoOption *opts;

	if (dsn == NULL || *dsn == '\0')
		return;
	opts = PQconninfoParse(dsn, NULL);
	if (opts == NULL)
		return;
	for (PQconninfoOption *o = opts; o->keyword; o++)
		if (o->val && (strcmp(o->keyword, "password") == 0 || strcmp(o->keyword, "sslpassword") == 0))
			pgm_redact_add_secret(o->val);
	PQconninfoFree(opts);
}
