/*
 * redact.c — masks passwords in text on its way out of the daemon. The
 * callers are the few places every such text passes (pgm_log, the job's
 * error and warnings, state.json, audit.jsonl, the control socket), so a
 * DSN quoted by libpq, pglogical ("DETAIL: dsn was: ...") or a hook is
 * masked wherever it would be seen. Masking too much is harmless; too
 * little is the leak, so the rules are wide.
 */
#include "common/redact.h"
#include "common/util.h"

#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct buf {
	char *s;
	size_t len, cap;
} buf_t;

static void
buf_add(buf_t *b, const char *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->s = pgm_realloc(b->s, b->cap);
	}
	memcpy(b->s + b->len, p, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static pthread_mutex_t secrets_lock = PTHREAD_MUTEX_INITIALIZER;
static char **secrets;
static size_t nsecrets;

void
pgm_redact_add_secret(const char *secret)
{
	if (secret == NULL || strlen(secret) < PGM_REDACT_MIN_SECRET)
		return;
	pthread_mutex_lock(&secrets_lock);
	for (size_t i = 0; i < nsecrets; i++) {
		if (strcmp(secrets[i], secret) == 0) {
			pthread_mutex_unlock(&secrets_lock);
			return;
		}
	}
	secrets = pgm_realloc(secrets, (nsecrets + 1) * sizeof(char *));
	secrets[nsecrets++] = pgm_strdup(secret);
	pthread_mutex_unlock(&secrets_lock);
}

void
pgm_redact_clear_secrets(void)
{
	pthread_mutex_lock(&secrets_lock);
	for (size_t i = 0; i < nsecrets; i++) {
		memset(secrets[i], 0, strlen(secrets[i]));
		free(secrets[i]);
	}
	free(secrets);
	secrets = NULL;
	nsecrets = 0;
	pthread_mutex_unlock(&secrets_lock);
}

/* the end of a value after "password=": quoted, or bare up to white space */
static const char *
value_end(const char *p)
{
	if (*p == '\'' || *p == '"') {
		char q = *p++;
		while (*p && *p != q) {
			if (*p == '\\' && p[1])
				p++;
			p++;
		}
		return *p ? p + 1 : p; /* unterminated: the rest is the value */
	}
	while (*p && !isspace((unsigned char) *p)) {
		if (*p == '\\' && p[1])
			p++;
		p++;
	}
	return p;
}

/*
 * At in[i] a keyword ending in "password" followed by "=": the start and
 * end of its value, or false.
 */
static bool
keyword_value(const char *in, size_t i, const char **vstart, const char **vend)
{
	const char *p = in + i + strlen("password");

	if (strncasecmp(in + i, "password", strlen("password")) != 0)
		return false;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p != '=')
		return false;
	p++;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '\0' || isspace((unsigned char) *p))
		return false;
	*vstart = p;
	*vend = value_end(p);
	return true;
}

static bool
uri_stop(char c)
{
	return c == '\0' || isspace((unsigned char) c) || c == '"' || c == '\'' || c == '<' || c == '>' || c == '`';
}

/*
 * At in[i] "://": the password of the user info that follows (between the
 * first ':' and the last '@' before the URI ends), or false.
 */
static bool
uri_password(const char *in, size_t i, const char **pstart, const char **pend)
{
	const char *u = in + i + 3, *at = NULL, *colon = NULL;

	for (const char *p = u; !uri_stop(*p); p++)
		if (*p == '@')
			at = p;
	if (at == NULL)
		return false;
	for (const char *p = u; p < at; p++) {
		if (*p == '/' && colon == NULL)
			return false; /* "://host/path@x": the '@' is not the user info's */
		if (*p == ':') {
			colon = p;
			break;
		}
	}
	if (colon == NULL || colon + 1 == at)
		return false;
	*pstart = colon + 1;
	*pend = at;
	return true;
}

/* the keyword and URI rules */
static void
redact_syntax(const char *in, buf_t *b)
{
	size_t i = 0, copied = 0, n = strlen(in);

	while (i < n) {
		const char *vs, *ve;

		if ((in[i] == 'p' || in[i] == 'P') && keyword_value(in, i, &vs, &ve)) {
			buf_add(b, in + copied, (size_t) (vs - (in + copied)));
			buf_add(b, PGM_REDACTED, strlen(PGM_REDACTED));
			copied = i = (size_t) (ve - in);
			continue;
		}
		if (in[i] == ':' && in[i + 1] == '/' && in[i + 2] == '/' && uri_password(in, i, &vs, &ve)) {
			buf_add(b, in + copied, (size_t) (vs - (in + copied)));
			buf_add(b, PGM_REDACTED, strlen(PGM_REDACTED));
			copied = i = (size_t) (ve - in);
			continue;
		}
		i++;
	}
	buf_add(b, in + copied, n - copied);
}

/* every registered secret, wherever it is */
static char *
redact_known(char *s)
{
	pthread_mutex_lock(&secrets_lock);
	for (size_t k = 0; k < nsecrets; k++) {
		const char *sec = secrets[k], *hit;
		size_t slen = strlen(sec);
		buf_t b = {0};
		const char *from = s;

		if (strstr(s, sec) == NULL)
			continue;
		while ((hit = strstr(from, sec)) != NULL) {
			buf_add(&b, from, (size_t) (hit - from));
			buf_add(&b, PGM_REDACTED, strlen(PGM_REDACTED));
			from = hit + slen;
		}
		buf_add(&b, from, strlen(from));
		free(s);
		s = b.s;
	}
	pthread_mutex_unlock(&secrets_lock);
	return s;
}

char *
pgm_redact(const char *in)
{
	buf_t b = {0};

	if (in == NULL)
		return NULL;
	buf_add(&b, "", 0);
	redact_syntax(in, &b);
	return redact_known(b.s);
}

bool
pgm_redact_needed(const char *s)
{
	char *r = pgm_redact(s);
	bool changed = r && strcmp(r, s) != 0;

	free(r);
	return changed;
}

void
pgm_redact_json(cJSON *item)
{
	cJSON *child;

	if (item == NULL)
		return;
	if (cJSON_IsString(item) && item->valuestring) {
		char *r = pgm_redact(item->valuestring);
		if (strcmp(r, item->valuestring) != 0)
			cJSON_SetValuestring(item, r);
		free(r);
		return;
	}
	for (child = item->child; child; child = child->next)
		pgm_redact_json(child);
}

char *
pgm_redact_print(const cJSON *o)
{
	cJSON *copy = cJSON_Duplicate(o, 1);
	char *text;

	pgm_redact_json(copy);
	text = cJSON_PrintUnformatted(copy);
	cJSON_Delete(copy);
	return text;
}
