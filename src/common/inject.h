/*
 * inject.h — fault injection points, like PostgreSQL's: PGM_INJECT("name")
 * is true when the named point should fail now. Compiled in only with the
 * meson option injection_points=true (tests); otherwise the macro is the
 * constant false and no code or data of it is in the binary. Points are
 * armed when pgmoverd starts, from the environment variable PGMOVER_INJECT:
 *
 *   PGMOVER_INJECT=store.save:3,proc.spawn,pg.connect:2+
 *
 * "name" fails every hit, "name:N" the Nth hit only, "name:N+" the Nth and
 * every later one. The names are the table of inject.c (README: "Fault
 * injection points"); an unknown one stops pgmoverd at start.
 */
#ifndef PGM_INJECT_H
#define PGM_INJECT_H

#include <stdbool.h>

#ifdef PGM_INJECTION_POINTS
bool pgm_inject_hit(const char *name);
#define PGM_INJECT(name) pgm_inject_hit(name)
#else
#define PGM_INJECT(name) false
#endif

/*
 * Arm the points PGMOVER_INJECT names (NULL or "" arms none). False with
 * *err (malloc'd) on a name the table lacks or a bad count, or when this
 * build has no injection points and spec names some.
 */
bool pgm_inject_arm(const char *spec, char **err);

#endif
