/*
 * config.c — pgmoverd.conf: key = value lines read against the settings
 * table (common/settings.c), the job defaults in it, and a job's options
 * built from those defaults and the caller's.
 */
#include "daemon/config.h"
#include "common/json.h"
#include "common/util.h"
#include "pg/dsn.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
pgm_config_init(pgm_config_t *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->socket_path = pgm_strdup(pgm_opt_find(pgm_daemon_opts, "socket_path")->dflt);
	cfg->socket_mode = 0660;
	cfg->state_dir = pgm_strdup(pgm_opt_find(pgm_daemon_opts, "state_dir")->dflt);
	cfg->log_level = PGM_LOG_INFO;
	cfg->max_clients = 4096;
	cfg->admin_users = pgm_strdup("");
	cfg->admin_group = pgm_strdup("");
	cfg->metrics_listen = pgm_strdup("");
	cfg->job_defaults = cJSON_CreateObject();
}

void
pgm_config_free(pgm_config_t *cfg)
{
	free(cfg->socket_path);
	free(cfg->state_dir);
	free(cfg->admin_users);
	free(cfg->admin_group);
	free(cfg->metrics_listen);
	pgm_access_free(&cfg->access);
	cJSON_Delete(cfg->job_defaults);
	memset(cfg, 0, sizeof(*cfg));
}

/* store a validated daemon setting into the struct */
static void
config_apply(pgm_config_t *cfg, const char *name, const char *canon)
{
	if (strcmp(name, "socket_path") == 0) {
		free(cfg->socket_path);
		cfg->socket_path = pgm_strdup(canon);
	} else if (strcmp(name, "socket_mode") == 0) {
		cfg->socket_mode = (int) strtol(canon, NULL, 8);
	} else if (strcmp(name, "state_dir") == 0) {
		free(cfg->state_dir);
		cfg->state_dir = pgm_strdup(canon);
	} else if (strcmp(name, "log_level") == 0) {
		pgm_log_level_parse(canon, &cfg->log_level);
	} else if (strcmp(name, "max_clients") == 0) {
		cfg->max_clients = (int) strtol(canon, NULL, 10);
	} else if (strcmp(name, "admin_users") == 0) {
		free(cfg->admin_users);
		cfg->admin_users = pgm_strdup(canon);
	} else if (strcmp(name, "admin_group") == 0) {
		free(cfg->admin_group);
		cfg->admin_group = pgm_strdup(canon);
	} else if (strcmp(name, "metrics_listen") == 0) {
		free(cfg->metrics_listen);
		cfg->metrics_listen = pgm_strdup(canon);
	}
}

static char *
trim(char *s)
{
	char *e;

	while (isspace((unsigned char) *s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char) e[-1]))
		*--e = '\0';
	return s;
}

/*
 * What no single line can say: the socket's mode against the access rule
 * (access.h), and the names of admin_users and admin_group resolved to
 * ids, so that a typo stops the start (and --check) rather than locking
 * the operators out.
 */
static bool
config_check(pgm_config_t *cfg, const char *path, char **err)
{
	char *aerr = NULL;

	if (!pgm_socket_mode_ok(cfg->socket_mode)) {
		*err = pgm_asprintf("%s: socket_mode %04o is more open than 0660: anyone it lets open the socket can "
				    "read every job's status; use 0660 (pgmoverd's user and group) or 0600, and "
				    "admin_users or admin_group for who may change jobs",
				    path, cfg->socket_mode);
		return false;
	}
	if (!pgm_access_parse_users(&cfg->access, cfg->admin_users, &aerr) ||
	    !pgm_access_parse_group(&cfg->access, cfg->admin_group, &aerr)) {
		*err = pgm_asprintf("%s: %s", path, aerr);
		free(aerr);
		return false;
	}
	return true;
}

bool
pgm_config_parse(pgm_config_t *out, const char *path, const char *text, char **err)
{
	pgm_config_t cfg;
	char *copy = pgm_strdup(text);
	char *save = NULL, *line;
	int lineno = 0;
	bool ok = true;

	pgm_config_init(&cfg);
	*err = NULL;
	/* walk lines by hand: strtok_r would skip empty lines and miscount */
	for (line = copy; line != NULL && ok; line = save) {
		char *nl = strchr(line, '\n');
		char *key, *val, *eq, *canon = NULL, *verr = NULL;
		const pgm_opt_def_t *def;
		size_t vlen;

		save = nl ? nl + 1 : NULL;
		if (nl)
			*nl = '\0';
		lineno++;
		key = trim(line);
		if (*key == '\0' || *key == '#' || *key == ';')
			continue;
		eq = strchr(key, '=');
		if (eq == NULL) {
			*err = pgm_asprintf("%s:%d: syntax error: expected \"key = value\"", path, lineno);
			ok = false;
			break;
		}
		*eq = '\0';
		val = trim(eq + 1);
		key = trim(key);
		/* a trailing comment after the value, then optional quotes */
		if (*val != '"' && *val != '\'') {
			char *hash = strstr(val, " #");
			if (hash) {
				*hash = '\0';
				val = trim(val);
			}
		} else {
			/* "a # b" # comment: the comment starts after the closing quote */
			char *close = strchr(val + 1, *val);
			char *rest = close ? close + 1 : NULL;

			while (rest && (*rest == ' ' || *rest == '\t'))
				rest++;
			if (rest && *rest == '#')
				close[1] = '\0';
		}
		vlen = strlen(val);
		if (vlen >= 2 && (val[0] == '"' || val[0] == '\'') && val[vlen - 1] == val[0]) {
			val[vlen - 1] = '\0';
			val++;
		}
		def = pgm_opt_find(pgm_daemon_opts, key);
		if (def == NULL)
			def = pgm_opt_find(pgm_job_opts, key);
		if (def == NULL) {
			*err = pgm_asprintf(
				"%s:%d: unknown setting \"%s\"; see pgmoverd.conf(5) or pgmoverd --describe-config for the "
				"settings pgmoverd knows",
				path, lineno, key);
			ok = false;
			break;
		}
		if (!pgm_opt_validate(def, val, &canon, &verr)) {
			*err = pgm_asprintf("%s:%d: %s", path, lineno, verr);
			free(verr);
			ok = false;
			break;
		}
		if (pgm_opt_find(pgm_daemon_opts, key))
			config_apply(&cfg, key, canon);
		else {
			cJSON_DeleteItemFromObject(cfg.job_defaults, key);
			cJSON_AddStringToObject(cfg.job_defaults, key, canon);
		}
		free(canon);
	}
	free(copy);
	if (ok)
		ok = config_check(&cfg, path, err);
	if (!ok) {
		pgm_config_free(&cfg);
		return false;
	}
	pgm_config_free(out);
	*out = cfg;
	return true;
}

bool
pgm_config_load(pgm_config_t *cfg, const char *path, char **err)
{
	size_t len;
	char *text = pgm_file_read(path, 1 << 20, &len);
	bool ok;

	if (text == NULL) {
		*err = pgm_asprintf("could not read configuration file \"%s\": %s", path, strerror(errno));
		return false;
	}
	if (strlen(text) != len) {
		free(text);
		*err = pgm_asprintf("%s: contains a NUL byte; is this a text file?", path);
		return false;
	}
	ok = pgm_config_parse(cfg, path, text, err);
	free(text);
	return ok;
}

cJSON *
pgm_job_options_build(const pgm_config_t *cfg, const cJSON *given, char **err)
{
	cJSON *opts = cJSON_CreateObject();

	*err = NULL;
	for (int i = 0; pgm_job_opts[i].name; i++) {
		const pgm_opt_def_t *def = &pgm_job_opts[i];
		const cJSON *d = cfg ? cJSON_GetObjectItemCaseSensitive(cfg->job_defaults, def->name) : NULL;
		char *canon = NULL, *verr = NULL;

		if (!pgm_opt_validate(def, cJSON_IsString(d) ? d->valuestring : def->dflt, &canon, &verr)) {
			*err = verr;
			cJSON_Delete(opts);
			return NULL;
		}
		cJSON_AddStringToObject(opts, def->name, canon);
		free(canon);
	}
	if (given == NULL)
		return opts;
	if (!pgm_job_options_apply(opts, given, err)) {
		cJSON_Delete(opts);
		return NULL;
	}
	return opts;
}

bool
pgm_job_options_apply(cJSON *opts, const cJSON *given, char **err)
{
	const cJSON *item;

	*err = NULL;
	if (!cJSON_IsObject(given)) {
		*err = pgm_strdup("options must be an object of \"name\": \"value\" pairs");
		return false;
	}
	cJSON_ArrayForEach (item, given) {
		const pgm_opt_def_t *def = pgm_opt_find(pgm_job_opts, item->string);
		char *canon = NULL, *verr = NULL;
		char numbuf[64];
		const char *val;

		if (def == NULL) {
			*err = pgm_asprintf("unknown job option \"%s\"", item->string);
			return false;
		}
		if (cJSON_IsString(item))
			val = item->valuestring;
		else if (cJSON_IsBool(item))
			val = cJSON_IsTrue(item) ? "on" : "off";
		else if (cJSON_IsNumber(item)) {
			double dv = item->valuedouble;

			/*
			 * Only whole numbers in range convert; anything else keeps its
			 * text and fails validation (casting 1e30 is undefined, 2.5 is not 2).
			 */
			if (dv > -9e18 && dv < 9e18 && dv == (double) (long long) dv)
				snprintf(numbuf, sizeof(numbuf), "%lld", (long long) dv);
			else
				snprintf(numbuf, sizeof(numbuf), "%.17g", dv);
			val = numbuf;
		} else {
			*err = pgm_asprintf("job option \"%s\" must be a string", item->string);
			return false;
		}
		if (!pgm_opt_validate(def, val, &canon, &verr)) {
			*err = verr;
			return false;
		}
		pgm_json_set_str(opts, def->name, canon);
		free(canon);
	}
	return true;
}
