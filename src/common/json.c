/*
 * json.c — replace-or-add helpers: cJSON's own replace does nothing (and
 * leaks the new item) when the key is missing.
 */
#include "common/json.h"
#include "common/util.h"

void
pgm_json_set(cJSON *obj, const char *key, cJSON *item)
{
	cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
	cJSON_AddItemToObject(obj, key, item);
}

void
pgm_json_set_str(cJSON *obj, const char *key, const char *value)
{
	pgm_json_set(obj, key, value ? cJSON_CreateString(value) : cJSON_CreateNull());
}

void
pgm_json_set_num(cJSON *obj, const char *key, double value)
{
	pgm_json_set(obj, key, cJSON_CreateNumber(value));
}

void
pgm_json_set_time(cJSON *obj, const char *key, int64_t ms)
{
	char ts[40];

	pgm_format_time(ms, ts, sizeof(ts));
	pgm_json_set_str(obj, key, ts);
}

cJSON *
pgm_json_obj(cJSON *obj, const char *key)
{
	cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (!cJSON_IsObject(v)) {
		v = cJSON_CreateObject();
		pgm_json_set(obj, key, v);
	}
	return v;
}

const char *
pgm_json_str(const cJSON *obj, const char *key)
{
	return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(obj, key));
}

double
pgm_json_num(const cJSON *obj, const char *key, double dflt)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

void
pgm_json_add_time_or_null(cJSON *obj, const char *key, int64_t ms)
{
	char buf[40];

	if (ms <= 0) {
		cJSON_AddNullToObject(obj, key);
		return;
	}
	pgm_format_time(ms, buf, sizeof(buf));
	cJSON_AddStringToObject(obj, key, buf);
}

void
pgm_json_add_copy(cJSON *obj, const char *key, const cJSON *v)
{
	cJSON_AddItemToObject(obj, key, v ? cJSON_Duplicate(v, 1) : cJSON_CreateNull());
}
