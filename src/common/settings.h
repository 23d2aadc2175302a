/*
 * settings.h — the table of typed settings the daemon's file and the job
 * options share, their validation, and typed getters on job options.
 */
#ifndef PGM_SETTINGS_H
#define PGM_SETTINGS_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

typedef enum pgm_opt_type {
	PGM_OPT_STRING,
	PGM_OPT_BOOL,
	PGM_OPT_INT,
	PGM_OPT_DURATION, /* stored in milliseconds: 500ms, 30s, 5m, 24h, 2d */
	PGM_OPT_MODE,     /* octal file mode */
	PGM_OPT_ENUM,     /* one of a '|' separated list */
	PGM_OPT_CONNINFO, /* a libpq URL or conninfo without a password (it would reach state.json) */
	PGM_OPT_LISTEN,   /* a numeric address and port, 127.0.0.1:9187 or [::1]:9187; empty: off */
	PGM_OPT_SIZE,     /* stored in bytes: 8192, 64kB, 512MB, 1GB, 2TB (PostgreSQL's units, 1024-based) */
} pgm_opt_type_t;

/* a row of the settings table */
typedef struct pgm_opt_def {
	const char *name;
	pgm_opt_type_t type;
	const char *dflt;    /* default, in the same text form a user writes */
	int64_t min, max;    /* for INT, DURATION and SIZE (0, 0 = unbounded) */
	const char *choices; /* for ENUM: "a|b|c" */
	bool reloadable;     /* SIGHUP applies it (daemon settings) */
	const char *help;
} pgm_opt_def_t;

/* the tables themselves, NULL-name terminated */
extern const pgm_opt_def_t pgm_daemon_opts[];
extern const pgm_opt_def_t pgm_job_opts[];

const pgm_opt_def_t *pgm_opt_find(const pgm_opt_def_t *table, const char *name);
/*
 * Check value against def; on success *canon (malloc'd) is the normalised
 * text form. On failure returns false with *err (malloc'd) saying why.
 */
bool pgm_opt_validate(const pgm_opt_def_t *def, const char *value, char **canon, char **err);
/* parse helpers for already-validated text */
bool pgm_parse_bool(const char *s, bool *out);
bool pgm_parse_duration_ms(const char *s, int64_t *out);
/*
 * A listen address "IPv4:port" or "[IPv6]:port" (numeric, port 1 to 65535)
 * into *ss and *len; false when s is not one.
 */
struct sockaddr_storage;
bool pgm_parse_listen(const char *s, struct sockaddr_storage *ss, unsigned *len);

/*
 * Both tables as text for tools and documentation (malloc'd): one setting a
 * line, tab-separated: section (daemon | job), name, type, default, allowed
 * values (empty: any), "reload" (SIGHUP applies it) or "restart", help.
 * pgmoverd --describe-config prints it; man/conf-man.sh makes
 * pgmoverd.conf(5) of it at build time, so the page never drifts.
 */
char *pgm_opt_describe(void);
/* a size (8192, 64kB, 512MB, 1GB) in bytes */
bool pgm_parse_size_bytes(const char *s, int64_t *out);

/* typed getters on a built options object (values are validated) */
const char *pgm_jobopt_str(const cJSON *opts, const char *name);
bool pgm_jobopt_bool(const cJSON *opts, const char *name);
int64_t pgm_jobopt_int(const cJSON *opts, const char *name);
/* the options with JSON types (durations as NAME_ms numbers), for status --json */
cJSON *pgm_jobopts_typed(const cJSON *opts);

#endif
