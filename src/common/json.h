/*
 * json.h — small cJSON helpers used across pgmover.
 */
#ifndef PGM_JSON_H
#define PGM_JSON_H

#include <cjson/cJSON.h>
#include <stdint.h>

/* set obj[key] = item, replacing (and freeing) any previous value */
void pgm_json_set(cJSON *obj, const char *key, cJSON *item);
void pgm_json_set_str(cJSON *obj, const char *key, const char *value);
void pgm_json_set_num(cJSON *obj, const char *key, double value);
void pgm_json_set_time(cJSON *obj, const char *key, int64_t ms);
/* add a time (ISO 8601 UTC), or null when ms <= 0 (never set) */
void pgm_json_add_time_or_null(cJSON *obj, const char *key, int64_t ms);
/* add a deep copy of v, or null */
void pgm_json_add_copy(cJSON *obj, const char *key, const cJSON *v);
/* obj[key], created as an object when missing */
cJSON *pgm_json_obj(cJSON *obj, const char *key);
const char *pgm_json_str(const cJSON *obj, const char *key);
double pgm_json_num(const cJSON *obj, const char *key, double dflt);

#endif
