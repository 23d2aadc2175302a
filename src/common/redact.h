/*
 * redact.h — one function that masks passwords in any text that may carry a
 * connection string: errors, details, hints, hook output, log lines, audit
 * lines and the control socket's replies all pass through it.
 */
#ifndef PGM_REDACT_H
#define PGM_REDACT_H

#include <cjson/cJSON.h>
#include <stdbool.h>

/* what a masked password becomes */
#define PGM_REDACTED "****"

/*
 * A copy of in (malloc'd; NULL for NULL) with every password masked:
 *   - KEYpassword=VALUE, any case, any prefix (password, sslpassword,
 *     PGPASSWORD, db_password), spaces around "=" allowed; VALUE quoted
 *     with '...' (conninfo, \-escapes) or "..." or bare up to white space
 *     (\ escapes the next character, as in conninfo);
 *   - the password of a URI's user info, scheme://user:PASSWORD@host
 *     (postgres://, postgresql://, or any other scheme);
 *   - every password registered with pgm_redact_add_secret, wherever it
 *     appears (a hook that prints it alone, an error that quotes it).
 * Text without any of these comes back unchanged.
 */
char *pgm_redact(const char *in);
/* true when pgm_redact would change s */
bool pgm_redact_needed(const char *s);
/* every string value of a cJSON tree (not the keys), in place */
void pgm_redact_json(cJSON *item);
/* a redacted copy of o printed unformatted (malloc'd): for lines that leave the daemon */
char *pgm_redact_print(const cJSON *o);

/*
 * Passwords the daemon knows (the jobs' DSNs): masked even where no keyword
 * or URI shows them. Shorter than PGM_REDACT_MIN_SECRET is not kept (it
 * would mask ordinary words); the list lives until the process ends.
 */
#define PGM_REDACT_MIN_SECRET 4
void pgm_redact_add_secret(const char *secret);
/* forget every registered secret (tests) */
void pgm_redact_clear_secrets(void);

#endif
