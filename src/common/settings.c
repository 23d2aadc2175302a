/*
 * settings.c — one table of typed settings (like PgBouncer's): the
 * daemon's, and the job options whose defaults pgmoverd.conf may set;
 * validation to a canonical text form, and typed getters on a job's
 * validated options.
 */
#include "common/settings.h"
#include "common/json.h"
#include "common/util.h"
#include "pg/dsn.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const pgm_opt_def_t pgm_daemon_opts[] = {
	{"socket_path", PGM_OPT_STRING, "/run/pgmover/pgmoverd.sock", 0, 0, NULL, false, "path of the control socket"},
	{"socket_mode", PGM_OPT_MODE, "0660", 0, 0777, NULL, false,
	 "file mode of the control socket: at most 0660 (nothing for others)"},
	{"admin_users", PGM_OPT_STRING, "", 0, 0, NULL, false,
	 "users (names or uids, comma-separated) who may change jobs, besides root and pgmoverd's own user"},
	{"admin_group", PGM_OPT_STRING, "", 0, 0, NULL, false, "a group whose members may change jobs"},
	{"state_dir", PGM_OPT_STRING, "/var/lib/pgmover", 0, 0, NULL, false,
	 "directory holding one folder per job (state.json, audit.jsonl)"},
	{"log_level", PGM_OPT_ENUM, "info", 0, 0, "debug|info|notice|warning|error", true,
	 "least important level written to the log"},
	{"max_clients", PGM_OPT_INT, "4096", 1, 1000000, NULL, true, "control socket connections accepted at once"},
	{"metrics_listen", PGM_OPT_LISTEN, "", 0, 0, NULL, false,
	 "address:port of the Prometheus metrics endpoint (GET /metrics), e.g. 127.0.0.1:9187; empty: none"},
	{NULL, 0, NULL, 0, 0, NULL, false, NULL}};

/*
 * Job options; in pgmoverd.conf they set the defaults for new jobs.
 * Durations bound in milliseconds.
 */
const pgm_opt_def_t pgm_job_opts[] = {
	{"rehearsal", PGM_OPT_BOOL, "on", 0, 0, NULL, true,
	 "dump: take a full rehearsal copy while the source is writable"},
	{"engine", PGM_OPT_ENUM, "copy", 0, 0, "copy|pg_dump", true,
	 "dump: copy streams COPY over parallel connections in one snapshot; pg_dump uses pg_dump/pg_restore -j"},
	{"jobs", PGM_OPT_INT, "2", 1, 32, NULL, true, "parallel connections (or pg_dump/pg_restore -j) per side"},
	{"split_tables_larger_than", PGM_OPT_SIZE, "0", 0, 0, NULL, true,
	 "copy engine: a table larger than this is copied over several streams in block ranges, without FREEZE "
	 "(0: every table in one stream, loaded WITH (FREEZE))"},
	{"overwrite_target", PGM_OPT_BOOL, "off", 0, 0, NULL, true,
	 "allow a target database that already holds tables (they are replaced)"},
	{"allow_no_pk", PGM_OPT_BOOL, "off", 0, 0, NULL, true,
	 "pglogical: replicate tables without a primary key insert-only"},
	{"catchup_rows", PGM_OPT_INT, "1000", 0, 1000000000, NULL, true,
	 "triggers: synced once an apply round leaves at most this many logged changes behind"},
	{"stall_warning", PGM_OPT_DURATION, "30s", 1000, 3600000, NULL, true,
	 "pglogical: warn when the slot confirms nothing this long while the source writes"},
	{"retained_wal_warning", PGM_OPT_INT, "1073741824", 0, INT64_MAX, NULL, true,
	 "pglogical: warn when the slot retains more WAL than this many bytes, still growing"},
	{"drain_timeout", PGM_OPT_DURATION, "5min", 1000, 86400000, NULL, true,
	 "pglogical: how long the frozen source waits for the target to catch up"},
	{"freeze_mode", PGM_OPT_ENUM, "read_only", 0, 0, "read_only|command|both", true,
	 "how writes are stopped on the source"},
	{"freeze_roles", PGM_OPT_STRING, "", 0, 0, NULL, true,
	 "application roles also frozen with ALTER ROLE ... IN DATABASE (comma-separated)"},
	{"freeze_command", PGM_OPT_STRING, "", 0, 0, NULL, true,
	 "command run to stop writes (e.g. a maintenance mode switch)"},
	{"thaw_command", PGM_OPT_STRING, "", 0, 0, NULL, true, "command run to allow writes again"},
	{"cutover_command", PGM_OPT_STRING, "", 0, 0, NULL, true,
	 "command run at cutover with PGMOVER_TARGET_URL in its environment"},
	{"post_cutover_command", PGM_OPT_STRING, "", 0, 0, NULL, true,
	 "command run once traffic is on the target (e.g. maintenance mode off)"},
	{"rollback_command", PGM_OPT_STRING, "", 0, 0, NULL, true,
	 "command run at rollback before traffic returns to the source"},
	{"hook_timeout", PGM_OPT_DURATION, "60s", 100, 86400000, NULL, true, "how long a hook command may run"},
	{"hook_kill_grace", PGM_OPT_DURATION, "5s", 0, 600000, NULL, true,
	 "after hook_timeout: how long a hook's processes have between SIGTERM and SIGKILL"},
	{"pgbouncer_admin", PGM_OPT_CONNINFO, "", 0, 0, NULL, true,
	 "URL of pgbouncer's admin console (postgres://admin@host:6432/pgbouncer?passfile=...), without a password; "
	 "empty: no pgbouncer switch"},
	{"pgbouncer_database", PGM_OPT_STRING, "", 0, 0, NULL, true,
	 "the [databases] entry the application connects through"},
	{"pgbouncer_include", PGM_OPT_STRING, "", 0, 0, NULL, true,
	 "absolute path of the file, %include'd by pgbouncer.ini, that holds that entry"},
	{"pgbouncer_pause_timeout", PGM_OPT_DURATION, "30s", 100, 3600000, NULL, true,
	 "how long PAUSE may wait for running transactions before cutover gives up"},
	{"dns_record", PGM_OPT_STRING, "", 0, 0, NULL, true,
	 "the application's DNS name: its TTL is checked before cutover (warning above 60 s)"},
	{"dns_server", PGM_OPT_STRING, "", 0, 0, NULL, true,
	 "IPv4[:port] of the DNS server to ask (the zone's authoritative one); empty: the system resolver"},
	{"reverse_interval", PGM_OPT_DURATION, "1s", 50, 60000, NULL, true,
	 "how often the rollback window carries the target's writes back to the source"},
	{"rollback_window", PGM_OPT_DURATION, "24h", 0, 2592000000LL, NULL, true,
	 "how long rollback stays possible after cutover"},
	{"pg_bindir", PGM_OPT_STRING, "", 0, 0, NULL, true,
	 "directory of pg_dump and pg_restore (empty: found in PATH)"},
	{"rollback_retained_warn", PGM_OPT_SIZE, "1GB", 0, 0, NULL, true,
	 "rollback window: warn when the reverse slot retains more WAL than this on the target (0: never)"},
	{"connect_timeout", PGM_OPT_DURATION, "15s", 100, 600000, NULL, true,
	 "how long a connection attempt may take (name resolution, TCP, TLS, authentication)"},
	{"keepalives_idle", PGM_OPT_DURATION, "30s", 1000, 7200000, NULL, true,
	 "TCP keepalives on every connection: idle time before the first probe"},
	{"keepalives_interval", PGM_OPT_DURATION, "10s", 1000, 600000, NULL, true,
	 "TCP keepalives: time between probes"},
	{"keepalives_count", PGM_OPT_INT, "3", 1, 100, NULL, true,
	 "TCP keepalives: probes lost before the connection is taken for dead"},
	{"tcp_user_timeout", PGM_OPT_DURATION, "60s", 0, 3600000, NULL, true,
	 "how long sent data may stay unacknowledged before the connection is dead (0: the kernel's default)"},
	{"statement_timeout", PGM_OPT_DURATION, "15min", 0, 86400000, NULL, true,
	 "bound of one statement while the source is frozen, verified, cut over or rolled back (0: none); "
	 "COPY streams are bounded by their progress instead"},
	{"lock_timeout", PGM_OPT_DURATION, "10s", 0, 3600000, NULL, true,
	 "bound of one lock wait in those states (0: none)"},
	{"freeze_timeout", PGM_OPT_DURATION, "1h", 1000, 604800000, NULL, true,
	 "longest the source stays frozen before cutover without the job failing to say so"},
	{NULL, 0, NULL, 0, 0, NULL, false, NULL}};

const pgm_opt_def_t *
pgm_opt_find(const pgm_opt_def_t *table, const char *name)
{
	for (int i = 0; table[i].name; i++)
		if (strcmp(table[i].name, name) == 0)
			return &table[i];
	return NULL;
}

bool
pgm_parse_bool(const char *s, bool *out)
{
	static const char *yes[] = {"on", "true", "yes", "1", NULL};
	static const char *no[] = {"off", "false", "no", "0", NULL};

	for (int i = 0; yes[i]; i++)
		if (strcasecmp(s, yes[i]) == 0)
			return (*out = true), true;
	for (int i = 0; no[i]; i++)
		if (strcasecmp(s, no[i]) == 0)
			return (*out = false), true;
	return false;
}

static bool
parse_int64(const char *s, int64_t *out, char **end_out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s)
		return false;
	*out = v;
	*end_out = end;
	return true;
}

bool
pgm_parse_duration_ms(const char *s, int64_t *out)
{
	static const struct {
		const char *unit;
		int64_t ms;
	} units[] = {{"ms", 1},      {"s", 1000},     {"min", 60000}, {"m", 60000},
		     {"h", 3600000}, {"d", 86400000}, {"", 1000},     {NULL, 0}};
	int64_t v;
	char *end;

	if (!parse_int64(s, &v, &end) || v < 0)
		return false;
	while (*end == ' ')
		end++;
	for (int i = 0; units[i].unit; i++) {
		if (strcmp(end, units[i].unit) == 0) {
			if (v > INT64_MAX / units[i].ms)
				return false;
			*out = v * units[i].ms;
			return true;
		}
	}
	return false;
}

bool
pgm_parse_listen(const char *s, struct sockaddr_storage *ss, unsigned *len)
{
	const char *colon = strrchr(s, ':');
	char host[INET6_ADDRSTRLEN + 2];
	size_t hlen;
	char *end;
	long port;

	if (colon == NULL || colon == s)
		return false;
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno != 0 || end == colon + 1 || *end != '\0' || port < 1 || port > 65535 ||
	    !isdigit((unsigned char) colon[1]))
		return false;
	hlen = (size_t) (colon - s);
	if (hlen >= sizeof(host))
		return false;
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (host[0] == '[') {
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *) ss;

		if (hlen < 3 || host[hlen - 1] != ']')
			return false;
		host[hlen - 1] = '\0';
		if (inet_pton(AF_INET6, host + 1, &a6->sin6_addr) != 1)
			return false;
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t) port);
		*len = sizeof(*a6);
	} else {
		struct sockaddr_in *a4 = (struct sockaddr_in *) ss;

		if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
			return false;
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t) port);
		*len = sizeof(*a4);
	}
	return true;
}

bool
pgm_parse_size_bytes(const char *s, int64_t *out)
{
	static const struct {
		const char *unit;
		int64_t bytes;
	} units[] = {{"", 1},
		     {"B", 1},
		     {"kB", INT64_C(1) << 10},
		     {"MB", INT64_C(1) << 20},
		     {"GB", INT64_C(1) << 30},
		     {"TB", INT64_C(1) << 40},
		     {NULL, 0}};
	int64_t v;
	char *end;

	if (!parse_int64(s, &v, &end) || v < 0)
		return false;
	while (*end == ' ')
		end++;
	for (int i = 0; units[i].unit; i++) {
		if (strcmp(end, units[i].unit) == 0) {
			if (v > INT64_MAX / units[i].bytes)
				return false;
			*out = v * units[i].bytes;
			return true;
		}
	}
	return false;
}

bool
pgm_opt_validate(const pgm_opt_def_t *def, const char *value, char **canon, char **err)
{
	int64_t v = 0;
	char *end;
	bool b;

	*canon = NULL;
	*err = NULL;
	switch (def->type) {
	case PGM_OPT_STRING:
		*canon = pgm_strdup(value);
		return true;
	case PGM_OPT_CONNINFO: {
		pgm_dsn_t d;
		char *perr = NULL;
		bool has_password;

		if (value[0] == '\0') {
			*canon = pgm_strdup(value);
			return true;
		}
		if (!pgm_dsn_parse(value, &d, &perr)) {
			*err = pgm_asprintf("invalid value for %s: %s", def->name, perr);
			free(perr);
			return false;
		}
		has_password = d.password != NULL;
		pgm_dsn_free(&d);
		if (has_password) {
			*err = pgm_asprintf(
				"%s must not hold a password (options are kept in state.json): put it in a "
				"passfile, e.g. ?passfile=/etc/pgmover/pgpass (host:port:database:user:password, "
				"mode 0600)",
				def->name);
			return false;
		}
		*canon = pgm_strdup(value);
		return true;
	}
	case PGM_OPT_LISTEN: {
		struct sockaddr_storage ss;
		unsigned len;

		if (value[0] != '\0' && !pgm_parse_listen(value, &ss, &len)) {
			*err = pgm_asprintf("invalid value for %s: \"%s\" (expected a numeric address and a port like "
					    "127.0.0.1:9187 or [::1]:9187, or empty for none)",
					    def->name, value);
			return false;
		}
		*canon = pgm_strdup(value);
		return true;
	}
	case PGM_OPT_BOOL:
		if (!pgm_parse_bool(value, &b)) {
			*err = pgm_asprintf("invalid value for %s: \"%s\" (expected on or off)", def->name, value);
			return false;
		}
		*canon = pgm_strdup(b ? "on" : "off");
		return true;
	case PGM_OPT_INT:
		if (!parse_int64(value, &v, &end) || *end != '\0') {
			*err = pgm_asprintf("invalid value for %s: \"%s\" (expected an integer)", def->name, value);
			return false;
		}
		break;
	case PGM_OPT_DURATION:
		if (!pgm_parse_duration_ms(value, &v)) {
			*err = pgm_asprintf(
				"invalid value for %s: \"%s\" (expected a duration like 500ms, 30s, 5min, 24h)",
				def->name, value);
			return false;
		}
		break;
	case PGM_OPT_SIZE:
		if (!pgm_parse_size_bytes(value, &v)) {
			*err = pgm_asprintf(
				"invalid value for %s: \"%s\" (expected a size like 8192, 64kB, 512MB, 1GB)", def->name,
				value);
			return false;
		}
		break;
	case PGM_OPT_MODE:
		errno = 0;
		v = strtoll(value, &end, 8);
		if (errno != 0 || end == value || *end != '\0' || v < 0 || v > 0777) {
			*err = pgm_asprintf("invalid value for %s: \"%s\" (expected an octal mode like 0660)",
					    def->name, value);
			return false;
		}
		*canon = pgm_asprintf("0%03o", (unsigned) v);
		return true;
	case PGM_OPT_ENUM: {
		const char *p = def->choices;
		size_t n = strlen(value);
		while (p && *p) {
			size_t len = strcspn(p, "|");
			if (len == n && strncmp(p, value, n) == 0) {
				*canon = pgm_strdup(value);
				return true;
			}
			p += len + (p[len] == '|');
		}
		*err = pgm_asprintf("invalid value for %s: \"%s\" (expected one of %s)", def->name, value,
				    def->choices);
		return false;
	}
	}
	if ((def->min != 0 || def->max != 0) && (v < def->min || v > def->max)) {
		if (def->type == PGM_OPT_DURATION)
			*err = pgm_asprintf("value for %s out of range: \"%s\" (allowed %lldms to %lldms)", def->name,
					    value, (long long) def->min, (long long) def->max);
		else
			*err = pgm_asprintf("value for %s out of range: \"%s\" (allowed %lld to %lld)", def->name,
					    value, (long long) def->min, (long long) def->max);
		return false;
	}
	*canon = def->type == PGM_OPT_DURATION ? pgm_asprintf("%lldms", (long long) v)
					       : pgm_asprintf("%lld", (long long) v);
	return true;
}

/* a bound in milliseconds in the largest unit that divides it: 30s, 5min, 24h */
static char *
duration_text(int64_t ms)
{
	static const struct {
		const char *unit;
		int64_t ms;
	} units[] = {{"d", 86400000}, {"h", 3600000}, {"min", 60000}, {"s", 1000}, {NULL, 0}};

	if (ms == 0)
		return pgm_strdup("0");
	for (int i = 0; units[i].unit; i++)
		if (ms % units[i].ms == 0)
			return pgm_asprintf("%lld%s", (long long) (ms / units[i].ms), units[i].unit);
	return pgm_asprintf("%lldms", (long long) ms);
}

/* the allowed values of a setting, in the words a reader of the file needs */
static char *
allowed_text(const pgm_opt_def_t *def)
{
	char *lo, *hi, *text;

	switch (def->type) {
	case PGM_OPT_ENUM:
		return pgm_strdup(def->choices);
	case PGM_OPT_BOOL:
		return pgm_strdup("on|off");
	case PGM_OPT_MODE:
		return pgm_asprintf("0000 to 0%03llo", (unsigned long long) def->max);
	case PGM_OPT_INT:
		if (def->min == 0 && def->max == 0)
			return pgm_strdup("");
		if (def->max == INT64_MAX)
			return pgm_asprintf("%lld or more", (long long) def->min);
		return pgm_asprintf("%lld to %lld", (long long) def->min, (long long) def->max);
	case PGM_OPT_DURATION:
		if (def->min == 0 && def->max == 0)
			return pgm_strdup("");
		lo = duration_text(def->min);
		hi = duration_text(def->max);
		text = pgm_asprintf("%s to %s", lo, hi);
		free(lo);
		free(hi);
		return text;
	case PGM_OPT_SIZE:
		return pgm_strdup("a size: 8192, 64kB, 512MB, 1GB, 2TB (1024-based)");
	case PGM_OPT_LISTEN:
		return pgm_strdup("ADDRESS:PORT (numeric: 127.0.0.1:9187, [::1]:9187), or empty");
	case PGM_OPT_STRING:
	case PGM_OPT_CONNINFO:
		break;
	}
	return pgm_strdup("");
}

char *
pgm_opt_describe(void)
{
	static const char *types[] = {
		[PGM_OPT_STRING] = "string",     [PGM_OPT_BOOL] = "boolean",    [PGM_OPT_INT] = "integer",
		[PGM_OPT_DURATION] = "duration", [PGM_OPT_MODE] = "octal mode", [PGM_OPT_ENUM] = "enum",
		[PGM_OPT_CONNINFO] = "conninfo", [PGM_OPT_LISTEN] = "address",  [PGM_OPT_SIZE] = "size"};
	const struct {
		const char *section;
		const pgm_opt_def_t *table;
	} sections[] = {{"daemon", pgm_daemon_opts}, {"job", pgm_job_opts}};
	pgm_buf_t b = {0};

	for (size_t s = 0; s < sizeof(sections) / sizeof(sections[0]); s++) {
		for (const pgm_opt_def_t *def = sections[s].table; def->name; def++) {
			char *allowed = allowed_text(def);

			pgm_buf_appendf(&b, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", sections[s].section, def->name,
					types[def->type], def->dflt, allowed, def->reloadable ? "reload" : "restart",
					def->help);
			free(allowed);
		}
	}
	return b.s ? b.s : pgm_strdup("");
}

const char *
pgm_jobopt_str(const cJSON *opts, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(opts, name);

	const pgm_opt_def_t *def;

	if (cJSON_IsString(v))
		return v->valuestring;
	def = pgm_opt_find(pgm_job_opts, name);
	return def ? def->dflt : "";
}

bool
pgm_jobopt_bool(const cJSON *opts, const char *name)
{
	bool b = false;

	pgm_parse_bool(pgm_jobopt_str(opts, name), &b);
	return b;
}

int64_t
pgm_jobopt_int(const cJSON *opts, const char *name)
{
	const pgm_opt_def_t *def = pgm_opt_find(pgm_job_opts, name);
	const char *s = pgm_jobopt_str(opts, name);
	int64_t v = 0;

	if (def && def->type == PGM_OPT_DURATION)
		pgm_parse_duration_ms(s, &v);
	else if (def && def->type == PGM_OPT_SIZE)
		pgm_parse_size_bytes(s, &v);
	else
		v = strtoll(s, NULL, 10);
	return v;
}

/*
 * The job's options for programs: a boolean as true/false, an integer as a
 * number, a duration as a number of milliseconds under NAME_ms, a size as
 * a number of bytes under NAME_bytes, an unset
 * string as null. Options the table does not know (an older state.json)
 * are left out.
 */
cJSON *
pgm_jobopts_typed(const cJSON *opts)
{
	cJSON *o = cJSON_CreateObject();

	for (int i = 0; pgm_job_opts[i].name; i++) {
		const pgm_opt_def_t *def = &pgm_job_opts[i];
		const cJSON *item = cJSON_GetObjectItemCaseSensitive(opts, def->name);
		const char *s = cJSON_IsString(item) ? item->valuestring : NULL;
		char *key;
		int64_t v;
		bool b;

		if (s == NULL)
			continue;
		switch (def->type) {
		case PGM_OPT_BOOL:
			if (pgm_parse_bool(s, &b))
				cJSON_AddBoolToObject(o, def->name, b);
			break;
		case PGM_OPT_INT:
		case PGM_OPT_MODE:
			v = strtoll(s, NULL, def->type == PGM_OPT_MODE ? 8 : 10);
			cJSON_AddNumberToObject(o, def->name, (double) v);
			break;
		case PGM_OPT_DURATION:
			key = pgm_asprintf("%s_ms", def->name);
			if (pgm_parse_duration_ms(s, &v))
				cJSON_AddNumberToObject(o, key, (double) v);
			free(key);
			break;
		case PGM_OPT_SIZE:
			key = pgm_asprintf("%s_bytes", def->name);
			if (pgm_parse_size_bytes(s, &v))
				cJSON_AddNumberToObject(o, key, (double) v);
			free(key);
			break;
		default:
			if (*s)
				cJSON_AddStringToObject(o, def->name, s);
			else
				cJSON_AddNullToObject(o, def->name);
		}
	}
	return o;
}
