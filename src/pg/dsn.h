/*
 * dsn.h — connection strings (URIs like Heroku's DATABASE_URL or
 * key=value conninfo) parsed by libpq, shown with the password masked.
 */
#ifndef PGM_DSN_H
#define PGM_DSN_H

#include <stdbool.h>

typedef struct pgm_dsn {
	char *host; /* NULL when libpq's default applies */
	char *port;
	char *dbname;
	char *user;
	char *password; /* never logged */
	char *sslmode;
} pgm_dsn_t;

/* parse; on failure returns false and *errmsg (malloc'd) says why */
bool pgm_dsn_parse(const char *dsn, pgm_dsn_t *out, char **errmsg);
void pgm_dsn_free(pgm_dsn_t *dsn);

/* "postgres://user:****@host:port/db?sslmode=require" (malloc'd) */
char *pgm_dsn_masked(const char *dsn);
/* the same connection as key=value conninfo without the password and sslpassword (malloc'd) */
char *pgm_dsn_without_password(const char *dsn);
/* the passphrase of the client key (sslpassword), or NULL (malloc'd) */
char *pgm_dsn_sslpassword(const char *dsn);

/*
 * Register the password of a connection string (and its sslpassword) with
 * pgm_redact_add_secret, so it is masked wherever it is printed; a string
 * that does not parse, or carries none, registers nothing.
 */
void pgm_dsn_learn_secret(const char *dsn);

#endif
