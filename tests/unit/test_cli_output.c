/*
 * test_cli_output.c
 *    Unit tests of the pgmover client's formatting helpers (src/cli/format.c):
 *    sizes, durations, numbers, progress and lag lines, describe rows and
 *    generic scalars. No daemon or server needed.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

/* parse a JSON literal; the tests own the result */
static cJSON *
json(const char *text)
{
	cJSON	   *value = cJSON_Parse(text);

	ck_assert_ptr_nonnull(value);
	return value;
}

START_TEST(test_bytes_format)
{
	char		buf[32];

	ck_assert_str_eq(pgm_cli_bytes_format(0, buf, sizeof(buf)), "0 B");
	ck_assert_str_eq(pgm_cli_bytes_format(850, buf, sizeof(buf)), "850 B");
	ck_assert_str_eq(pgm_cli_bytes_format(1023, buf, sizeof(buf)), "1023 B");
	ck_assert_str_eq(pgm_cli_bytes_format(1024, buf, sizeof(buf)), "1.0 KiB");
	ck_assert_str_eq(pgm_cli_bytes_format(36700160, buf, sizeof(buf)), "35.0 MiB");
	ck_assert_str_eq(pgm_cli_bytes_format(1288490188, buf, sizeof(buf)), "1.2 GiB");
	ck_assert_str_eq(pgm_cli_bytes_format(4294967296.0, buf, sizeof(buf)), "4.0 GiB");
	ck_assert_str_eq(pgm_cli_bytes_format(3.0 * 1024 * 1024 * 1024 * 1024, buf, sizeof(buf)), "3.0 TiB");
}
END_TEST

START_TEST(test_duration_format)
{
	char		buf[32];

	ck_assert_str_eq(pgm_cli_duration_format(0.85, buf, sizeof(buf)), "850ms");
	ck_assert_str_eq(pgm_cli_duration_format(4.2, buf, sizeof(buf)), "4.2s");
	ck_assert_str_eq(pgm_cli_duration_format(42, buf, sizeof(buf)), "42s");
	ck_assert_str_eq(pgm_cli_duration_format(59.7, buf, sizeof(buf)), "1m00s");
	ck_assert_str_eq(pgm_cli_duration_format(80, buf, sizeof(buf)), "1m20s");
	ck_assert_str_eq(pgm_cli_duration_format(3725, buf, sizeof(buf)), "1h02m");
	ck_assert_str_eq(pgm_cli_duration_format(2 * 86400 + 3 * 3600, buf, sizeof(buf)), "2d03h");
	ck_assert_str_eq(pgm_cli_duration_format(-1, buf, sizeof(buf)), "-");
}
END_TEST

START_TEST(test_number_format)
{
	char		buf[32];

	ck_assert_str_eq(pgm_cli_number_format(1234567890, buf, sizeof(buf)), "1234567890");
	ck_assert_str_eq(pgm_cli_number_format(-3, buf, sizeof(buf)), "-3");
	ck_assert_str_eq(pgm_cli_number_format(4.25, buf, sizeof(buf)), "4.25");
}
END_TEST

START_TEST(test_progress_format)
{
	char		buf[256];
	cJSON	   *full = json("{\"name\": \"copy\", \"tables_done\": 3, \"tables_total\": 10,"
							" \"bytes_done\": 1288490188, \"bytes_total\": 4294967296,"
							" \"rate_bytes_per_sec\": 36700160, \"eta_seconds\": 80,"
							" \"started_at\": \"2024-05-01T12:00:05Z\"}");
	cJSON	   *partial = json("{\"name\": \"restore\", \"bytes_done\": 2048, \"eta_seconds\": null}");

	ck_assert_str_eq(pgm_cli_progress_format(full, buf, sizeof(buf)),
					 "copy: tables 3/10, 1.2 GiB of 4.0 GiB, 35.0 MiB/s, ETA 1m20s");
	ck_assert_str_eq(pgm_cli_progress_format(partial, buf, sizeof(buf)), "restore: 2.0 KiB");
	/* a short buffer truncates, never overflows */
	ck_assert_uint_eq(strlen(pgm_cli_progress_format(full, buf, 12)), 11);
	cJSON_Delete(full);
	cJSON_Delete(partial);
}
END_TEST

START_TEST(test_lag_format)
{
	char		buf[64];
	cJSON	   *both = json("{\"lag_bytes\": 12582912, \"lag_seconds\": 4.2}");
	cJSON	   *none = json("{\"lag_bytes\": null, \"lag_seconds\": null}");

	ck_assert_str_eq(pgm_cli_lag_format(both, buf, sizeof(buf)), "12.0 MiB, 4.2s");
	ck_assert_ptr_null(pgm_cli_lag_format(none, buf, sizeof(buf)));
	cJSON_Delete(both);
	cJSON_Delete(none);
}
END_TEST

START_TEST(test_transition_format)
{
	char		buf[256];
	cJSON	   *row = json("{\"from\": [\"frozen\", \"verified\"], \"event\": \"thaw\", \"to\": \"thawing\"}");
	cJSON	   *automatic = json("{\"from\": [\"provisioning\"], \"to\": \"syncing\"}");

	ck_assert_str_eq(pgm_cli_transition_format(row, buf, sizeof(buf)), "frozen,verified --thaw--> thawing");
	ck_assert_str_eq(pgm_cli_transition_format(automatic, buf, sizeof(buf)), "provisioning --> syncing");
	cJSON_Delete(row);
	cJSON_Delete(automatic);
}
END_TEST

START_TEST(test_scalar_format)
{
	char		buf[64];
	cJSON	   *o = json("{\"database_size\": 1234567890, \"rows\": 1234567890, \"wait_seconds\": 3725,"
						 " \"small_bytes\": 10, \"on\": true, \"s\": \"15.20\"}");

	ck_assert_str_eq(pgm_cli_scalar_format("database_size", cJSON_GetObjectItem(o, "database_size"), buf, sizeof(buf)),
					 "1234567890 (1.1 GiB)");
	ck_assert_str_eq(pgm_cli_scalar_format("rows", cJSON_GetObjectItem(o, "rows"), buf, sizeof(buf)), "1234567890");
	ck_assert_str_eq(pgm_cli_scalar_format("wait_seconds", cJSON_GetObjectItem(o, "wait_seconds"), buf, sizeof(buf)),
					 "3725 (1h02m)");
	ck_assert_str_eq(pgm_cli_scalar_format("small_bytes", cJSON_GetObjectItem(o, "small_bytes"), buf, sizeof(buf)), "10");
	ck_assert_str_eq(pgm_cli_scalar_format("on", cJSON_GetObjectItem(o, "on"), buf, sizeof(buf)), "true");
	ck_assert_str_eq(pgm_cli_scalar_format("s", cJSON_GetObjectItem(o, "s"), buf, sizeof(buf)), "15.20");
	cJSON_Delete(o);
}
END_TEST

/*
 * cli_output_suite gathers the formatting tests.
 */
static Suite *
cli_output_suite(void)
{
	Suite	   *s = suite_create("cli_output");
	TCase	   *tc = tcase_create("format");

	tcase_add_test(tc, test_bytes_format);
	tcase_add_test(tc, test_duration_format);
	tcase_add_test(tc, test_number_format);
	tcase_add_test(tc, test_progress_format);
	tcase_add_test(tc, test_lag_format);
	tcase_add_test(tc, test_transition_format);
	tcase_add_test(tc, test_scalar_format);
	suite_add_tcase(s, tc);
	return s;
}

/*
 * main runs the suite and fails when any test fails.
 */
int
main(void)
{
	SRunner    *sr = srunner_create(cli_output_suite());
	int			failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
