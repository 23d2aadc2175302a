/*
 * inject.c — the fault injection points (inject.h): the table of names,
 * the counts armed from PGMOVER_INJECT, and pgm_inject_hit, which the
 * PGM_INJECT macro calls in a build with injection_points=true. A build
 * without the option has only pgm_inject_arm, which refuses any point, so
 * that a test that means to inject a fault cannot pass against a daemon
 * that ignores it.
 */
#include "common/inject.h"
#include "common/log.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* every point the code has; the README's table lists the same */
static struct point {
	const char *name;
	const char *meaning;
	long from;  /* first hit that fails (1-based); 0: not armed */
	bool after; /* and every later hit too */
	long hits;  /* hits so far */
} points[] = {
	{"store.save", "writing state.json fails (ENOSPC), as on a full state_dir", 0, false, 0},
	{"store.audit", "appending to an audit.jsonl fails (ENOSPC)", 0, false, 0},
	{"pg.connect", "a connection attempt to a server fails before it starts", 0, false, 0},
	{"proc.spawn", "a child process (pg_dump, pg_restore, a hook) cannot be started (EAGAIN)", 0, false, 0},
	{NULL, NULL, 0, false, 0},
};

static struct point *
find_point(const char *name, size_t len)
{
	for (struct point *p = points; p->name; p++)
		if (strlen(p->name) == len && strncmp(p->name, name, len) == 0)
			return p;
	return NULL;
}

/* one "name[:N[+]]" item of the list */
static bool
arm_one(const char *item, size_t len, char **err)
{
	const char *colon = memchr(item, ':', len);
	size_t nlen = colon ? (size_t) (colon - item) : len;
	struct point *p = find_point(item, nlen);
	long n = 1;
	bool after = colon == NULL;

	if (p == NULL) {
		char known[256] = "";

		for (const struct point *k = points; k->name; k++)
			snprintf(known + strlen(known), sizeof(known) - strlen(known), "%s%s", k == points ? "" : ", ",
				 k->name);
		*err = pgm_asprintf("PGMOVER_INJECT names an unknown injection point \"%.*s\" (known: %s)", (int) nlen,
				    item, known);
		return false;
	}
	if (colon) {
		char buf[32], *end;
		size_t clen = len - nlen - 1;

		if (clen == 0 || clen >= sizeof(buf)) {
			*err = pgm_asprintf("PGMOVER_INJECT: bad count in \"%.*s\" (name, name:N or name:N+)",
					    (int) len, item);
			return false;
		}
		memcpy(buf, colon + 1, clen);
		buf[clen] = '\0';
		if (buf[clen - 1] == '+') {
			after = true;
			buf[clen - 1] = '\0';
		}
		n = strtol(buf, &end, 10);
		if (end == buf || *end != '\0' || n < 1) {
			*err = pgm_asprintf("PGMOVER_INJECT: bad count in \"%.*s\" (name, name:N or name:N+)",
					    (int) len, item);
			return false;
		}
	}
	p->from = n;
	p->after = after;
	p->hits = 0;
	return true;
}

bool
pgm_inject_arm(const char *spec, char **err)
{
	const char *s = spec;

	*err = NULL;
	if (spec == NULL || spec[0] == '\0')
		return true;
#ifndef PGM_INJECTION_POINTS
	*err = pgm_asprintf("PGMOVER_INJECT is set (\"%s\") but this pgmoverd was built without injection points",
			    spec);
	return false;
#endif
	while (*s) {
		size_t len = strcspn(s, ",");

		if (len > 0 && !arm_one(s, len, err))
			return false;
		s += len;
		if (*s == ',')
			s++;
	}
	for (const struct point *p = points; p->name; p++)
		if (p->from > 0)
			pgm_warning("injection point \"%s\" armed: fails hit %ld%s (%s)", p->name, p->from,
				    p->after ? " and every later one" : " only", p->meaning);
	return true;
}

#ifdef PGM_INJECTION_POINTS
bool
pgm_inject_hit(const char *name)
{
	struct point *p = find_point(name, strlen(name));
	bool fire;

	if (p == NULL) {
		pgm_error("PGM_INJECT(\"%s\"): no such injection point in inject.c's table", name);
		abort();
	}
	p->hits++;
	if (p->from == 0)
		return false;
	fire = p->hits == p->from || (p->after && p->hits > p->from);
	pgm_log(fire ? PGM_LOG_WARNING : PGM_LOG_DEBUG, "injection point \"%s\": hit %ld%s", name, p->hits,
		fire ? ": fails" : "");
	return fire;
}
#endif
