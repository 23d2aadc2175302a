/*
 * format.c
 *    Pure formatting helpers of the pgmover client: sizes in binary units,
 *    durations, JSON scalars, progress and lag lines. They write into the
 *    caller's buffer and print nothing, so unit tests can call them alone.
 */
#include <math.h> /* isfinite only: the client links no libm */
#include <string.h>

#include "cli.h"

/* magnitude without libm */
#define ABS(x) ((x) < 0 ? -(x) : (x))

/*
 * pgm_cli_json_string returns object[key] when it is a string, else fallback.
 */
const char *
pgm_cli_json_string(const cJSON *object, const char *key, const char *fallback)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, key);

	return cJSON_IsString(item) && item->valuestring != NULL ? item->valuestring : fallback;
}

/*
 * pgm_cli_json_number fetches object[key] when it is a number.
 */
bool
pgm_cli_json_number(const cJSON *object, const char *key, double *value)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, key);

	if (!cJSON_IsNumber(item))
		return false;
	*value = item->valuedouble;
	return true;
}

/*
 * pgm_cli_bytes_format renders a byte count as "850 B", "1.2 KiB" ... "3.0 TiB".
 */
const char *
pgm_cli_bytes_format(double bytes, char *buf, size_t size)
{
	static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
	int unit = -1;

	if (ABS(bytes) < 1024.0) {
		snprintf(buf, size, "%.0f B", bytes);
		return buf;
	}
	while (ABS(bytes) >= 1024.0 && unit < 4) {
		bytes /= 1024.0;
		unit++;
	}
	snprintf(buf, size, "%.1f %s", bytes, units[unit]);
	return buf;
}

/*
 * pgm_cli_duration_format renders seconds as "850ms", "4.2s", "42s", "1m20s",
 * "1h02m" or "2d03h": two units at most, enough to plan a cutover by.
 */
const char *
pgm_cli_duration_format(double seconds, char *buf, size_t size)
{
	long long s;

	if (seconds < 0 || !isfinite(seconds))
		snprintf(buf, size, "-");
	else if (seconds < 1.0)
		snprintf(buf, size, "%.0fms", seconds * 1000.0);
	else if (seconds < 10.0)
		snprintf(buf, size, "%.1fs", seconds);
	else if ((s = (long long) (seconds + 0.5)) < 60)
		snprintf(buf, size, "%llds", s);
	else if (s < 3600)
		snprintf(buf, size, "%lldm%02llds", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, size, "%lldh%02lldm", s / 3600, (s % 3600) / 60);
	else
		snprintf(buf, size, "%lldd%02lldh", s / 86400, (s % 86400) / 3600);
	return buf;
}

/*
 * pgm_cli_number_format prints a JSON number without a spurious ".000000".
 */
const char *
pgm_cli_number_format(double value, char *buf, size_t size)
{
	if (ABS(value) < 1e15 && value == (double) (long long) value)
		snprintf(buf, size, "%.0f", value);
	else
		snprintf(buf, size, "%g", value);
	return buf;
}

/*
 * key_has_suffix tells whether a field name ends with suffix; generic output
 * uses it to add units to *_bytes, *_size and *_seconds numbers.
 */
static bool
key_has_suffix(const char *key, const char *suffix)
{
	size_t klen = key != NULL ? strlen(key) : 0;
	size_t slen = strlen(suffix);

	return klen >= slen && strcmp(key + klen - slen, suffix) == 0;
}

/*
 * pgm_cli_scalar_format renders a non-container JSON value on one line; numbers
 * whose name says they are bytes or seconds get a readable unit added.
 */
const char *
pgm_cli_scalar_format(const char *key, const cJSON *value, char *buf, size_t size)
{
	char num[64];
	char unit[64];

	if (cJSON_IsString(value))
		return value->valuestring;
	if (cJSON_IsBool(value))
		return cJSON_IsTrue(value) ? "true" : "false";
	if (cJSON_IsNull(value))
		return "-";
	if (!cJSON_IsNumber(value))
		return "?";
	pgm_cli_number_format(value->valuedouble, num, sizeof(num));
	if ((key_has_suffix(key, "_bytes") || key_has_suffix(key, "_size")) && ABS(value->valuedouble) >= 1024.0)
		snprintf(buf, size, "%s (%s)", num, pgm_cli_bytes_format(value->valuedouble, unit, sizeof(unit)));
	else if (key_has_suffix(key, "_seconds") && value->valuedouble >= 60.0)
		snprintf(buf, size, "%s (%s)", num, pgm_cli_duration_format(value->valuedouble, unit, sizeof(unit)));
	else
		snprintf(buf, size, "%s", num);
	return buf;
}

/*
 * pgm_cli_progress_format renders a status "step" object compactly:
 * "copy: tables 3/10, 1.2 GiB of 4.0 GiB, 35.0 MiB/s, ETA 1m20s".
 * Parts the daemon did not send are left out.
 */
const char *
pgm_cli_progress_format(const cJSON *step, char *buf, size_t size)
{
	double done, total, rate = 0;
	char a[32], b[32];
	size_t len;
	const char *sep = "";
	const char *phase = pgm_cli_phase_name(pgm_cli_json_string(step, "phase", NULL));
	bool have_rate = pgm_cli_json_number(step, "rate_bytes_per_sec", &rate);

	len = (size_t) snprintf(buf, size, "%s", pgm_cli_json_string(step, "name", "step"));
#define APPEND(...)                                                                   \
	do {                                                                          \
		if (len < size)                                                       \
			len += (size_t) snprintf(buf + len, size - len, __VA_ARGS__); \
	} while (0)
	if (phase != NULL && pgm_cli_json_number(step, "items_done", &done) &&
	    pgm_cli_json_number(step, "items_total", &total))
		APPEND(" (%s %.0f/%.0f)", phase, done, total);
	else if (phase != NULL)
		APPEND(" (%s)", phase);
	APPEND(":");
	if (pgm_cli_json_number(step, "tables_done", &done) && pgm_cli_json_number(step, "tables_total", &total)) {
		APPEND(" tables %s/%s", pgm_cli_number_format(done, a, sizeof(a)),
		       pgm_cli_number_format(total, b, sizeof(b)));
		sep = ",";
	}
	if (pgm_cli_json_number(step, "bytes_done", &done)) {
		APPEND("%s %s", sep, pgm_cli_bytes_format(done, a, sizeof(a)));
		if (pgm_cli_json_number(step, "bytes_total", &total)) {
			APPEND(" of %s", pgm_cli_bytes_format(total, b, sizeof(b)));
			if (total > 0)
				APPEND(" (%.0f%%)", 100.0 * (done < total ? done : total) / total);
		}
		sep = ",";
	}
	/* no rate outside the data phase: "0 B/s" while indexes build looks stalled */
	if (have_rate && (rate > 0 || phase == NULL)) {
		APPEND("%s %s/s", sep, pgm_cli_bytes_format(rate, a, sizeof(a)));
		sep = ",";
	}
	/* the ETA is the whole step's when the rehearsal measured what follows the data */
	if (pgm_cli_json_number(step, "eta_seconds", &done))
		APPEND("%s %s %s", sep,
		       strcmp(pgm_cli_json_string(step, "eta_covers", "step"), "data") == 0 ? "data ETA" : "ETA",
		       pgm_cli_duration_format(done, a, sizeof(a)));
	if (pgm_cli_json_number(step, "log_rows_behind", &done)) {
		APPEND("%s %s logged changes behind", sep, pgm_cli_number_format(done, a, sizeof(a)));
		sep = ",";
	}
	if (len > 0 && len < size && buf[len - 1] == ':')
		buf[--len] = '\0';
#undef APPEND
	return buf;
}

/*
 * pgm_cli_phase_name says what a step's phase means to the operator
 * ("post-data": building indexes and constraints); unknown phases are shown
 * as the daemon names them, none as NULL.
 */
const char *
pgm_cli_phase_name(const char *phase)
{
	static const char *const names[][2] = {{"snapshot", "opening the snapshot"},
					       {"schema", "creating the schema"},
					       {"data", "copying data"},
					       {"post-data", "building indexes and constraints"},
					       {"sequences", "setting sequences"},
					       {"restore", "restoring"},
					       {"planning", "planning the comparison"},
					       {"connecting", "connecting"},
					       {NULL, NULL}};

	if (phase == NULL || phase[0] == '\0')
		return NULL;
	for (int i = 0; names[i][0] != NULL; i++)
		if (strcmp(names[i][0], phase) == 0)
			return names[i][1];
	return phase;
}

/*
 * pgm_cli_lag_format renders lag_bytes / lag_seconds as "12.0 MiB, 4.2s", or NULL
 * when the status carries neither (dump jobs).
 */
const char *
pgm_cli_lag_format(const cJSON *status, char *buf, size_t size)
{
	double bytes, seconds;
	bool have_bytes = pgm_cli_json_number(status, "lag_bytes", &bytes);
	bool have_seconds = pgm_cli_json_number(status, "lag_seconds", &seconds);
	char a[32], b[32];

	if (have_bytes && have_seconds)
		snprintf(buf, size, "%s, %s", pgm_cli_bytes_format(bytes, a, sizeof(a)),
			 pgm_cli_duration_format(seconds, b, sizeof(b)));
	else if (have_bytes || have_seconds)
		snprintf(buf, size, "%s",
			 have_bytes ? pgm_cli_bytes_format(bytes, a, sizeof(a))
				    : pgm_cli_duration_format(seconds, b, sizeof(b)));
	else
		return NULL;
	return buf;
}

/*
 * pgm_cli_transition_format renders the arrow part of a describe row:
 * "frozen,verified --thaw--> thawing", or "a --> b" for automatic rows.
 */
const char *
pgm_cli_transition_format(const cJSON *row, char *buf, size_t size)
{
	const cJSON *from = cJSON_GetObjectItemCaseSensitive(row, "from");
	const cJSON *state;
	const char *event = pgm_cli_json_string(row, "event", NULL);
	size_t len = 0;

	buf[0] = '\0';
	if (cJSON_IsString(from))
		len = (size_t) snprintf(buf, size, "%s", from->valuestring);
	else if (cJSON_IsArray(from)) {
		cJSON_ArrayForEach (state, from) {
			if (len < size)
				len += (size_t) snprintf(buf + len, size - len, "%s%s", state == from->child ? "" : ",",
							 cJSON_IsString(state) ? state->valuestring : "?");
		}
	}
	if (len < size && event != NULL)
		snprintf(buf + len, size - len, " --%s--> %s", event, pgm_cli_json_string(row, "to", "?"));
	else if (len < size)
		snprintf(buf + len, size - len, " --> %s", pgm_cli_json_string(row, "to", "?"));
	return buf;
}

const char *
pgm_cli_option_value(int argc, char **argv, int *i, const char *name)
{
	size_t n = strlen(name);

	if (strncmp(argv[*i], name, n) != 0)
		return NULL;
	if (argv[*i][n] == '=')
		return argv[*i] + n + 1;
	if (argv[*i][n] == '\0' && *i + 1 < argc)
		return argv[++*i];
	return NULL;
}
