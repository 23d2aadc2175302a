/*
 * method.c — the table of methods and the lookups on it.
 */
#include "pipeline/method.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

const pgm_method_t *const pgm_methods[] = {
	&pgm_method_dump, &pgm_method_pglogical, &pgm_method_triggers, &pgm_method_archive, NULL,
};

const pgm_method_t *
pgm_method_find(const char *name)
{
	for (int i = 0; name && pgm_methods[i]; i++)
		if (!pgm_methods[i]->for_file && strcmp(pgm_methods[i]->name, name) == 0)
			return pgm_methods[i];
	return NULL;
}

const pgm_method_t *
pgm_method_for(const char *name, const char *source)
{
	const pgm_method_t *m = pgm_method_find(name);

	if (m && source && pgm_source_file(source))
		return m->file_source;
	return m;
}

char *
pgm_method_list(void)
{
	char *out = pgm_strdup("");

	for (int i = 0; pgm_methods[i]; i++) {
		char *next;

		if (pgm_methods[i]->for_file)
			continue;
		next = pgm_asprintf("%s%s--method %s (%s)", out, out[0] ? " or " : "", pgm_methods[i]->name,
				    pgm_methods[i]->summary);
		free(out);
		out = next;
	}
	return out;
}

void
pgm_op_done(pgm_step_t *s)
{
	pgm_step_done(s, PGM_EV_DONE);
}

void
pgm_op_wait(pgm_step_t *s)
{
	(void) s;
}
