/*
 * config.h — pgmoverd.conf (key = value, like pgbouncer.ini) and the
 * options of a new job, both validated by the settings table.
 */
#ifndef PGM_CONFIG_H
#define PGM_CONFIG_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/log.h"
#include "common/settings.h"
#include "daemon/access.h"

/* daemon-wide settings */
typedef struct pgm_config {
	char *socket_path;
	int socket_mode;
	char *state_dir;
	pgm_log_level_t log_level;
	int max_clients;
	char *metrics_listen; /* "127.0.0.1:9187", "" for no metrics endpoint */
	char *admin_users;    /* as written: "alice, 1002" */
	char *admin_group;    /* as written, "" for none */
	pgm_access_t access;  /* both resolved to ids when the file was read */
	cJSON *job_defaults;  /* object: option name -> string value */
} pgm_config_t;

void pgm_config_init(pgm_config_t *cfg);
void pgm_config_free(pgm_config_t *cfg);
/*
 * Load a file. A socket_mode with bits outside 0660, a user of admin_users
 * or the group of admin_group that the system does not know are errors
 * too. On error returns false and *err (malloc'd) is a message
 * naming the file and line. cfg is only modified on success.
 */
bool pgm_config_load(pgm_config_t *cfg, const char *path, char **err);
/* parse from a string (path is used in messages) */
bool pgm_config_parse(pgm_config_t *cfg, const char *path, const char *text, char **err);

/*
 * Build a job's options from the daemon's defaults and the caller's object
 * (name -> string). Unknown keys or bad values fail with *err.
 */
cJSON *pgm_job_options_build(const pgm_config_t *cfg, const cJSON *given, char **err);
/* validate the caller's object (name -> value) onto built options; false with *err and opts partly changed */
bool pgm_job_options_apply(cJSON *opts, const cJSON *given, char **err);
#endif
