/*
 * test_lsn.c
 *    Unit tests of WAL positions as text (src/pg/lsn.c): pgm_lsn_format
 *    and pgm_lsn_parse round trips up to the largest LSN, the forms
 *    PostgreSQL's pg_lsn accepts, malformed input refused without touching
 *    the result, and short buffers. No server needed.
 */
#include <check.h>
#include <stdint.h>
#include <string.h>

#include "check_main.h"
#include "pg/lsn.h"

/* format v, then parse the text back */
static void
assert_lsn_round_trip(uint64_t v, const char *text)
{
	char buf[32];
	uint64_t back = 0;

	pgm_lsn_format(v, buf, sizeof(buf));
	ck_assert_str_eq(buf, text);
	ck_assert_msg(pgm_lsn_parse(buf, &back), "\"%s\" does not parse", buf);
	ck_assert_msg(back == v, "\"%s\" parsed as %llx, not %llx", buf, (unsigned long long) back,
		      (unsigned long long) v);
}

START_TEST(test_lsn_round_trip)
{
	assert_lsn_round_trip(0, "0/0");
	assert_lsn_round_trip(1, "0/1");
	assert_lsn_round_trip(0x16B374D848ull, "16/B374D848");
	/* the edges of the low half, and a high half alone */
	assert_lsn_round_trip(0xFFFFFFFFull, "0/FFFFFFFF");
	assert_lsn_round_trip(0x100000000ull, "1/0");
	assert_lsn_round_trip(0xFFFFFFFF00000000ull, "FFFFFFFF/0");
	/* the largest LSN PostgreSQL can show */
	assert_lsn_round_trip(UINT64_MAX, "FFFFFFFF/FFFFFFFF");
}
END_TEST

START_TEST(test_lsn_parse_forms)
{
	uint64_t v = 0;

	/* PostgreSQL prints capitals; lower case and leading zeros are the same LSN */
	ck_assert(pgm_lsn_parse("16/b374d848", &v));
	ck_assert(v == 0x16B374D848ull);
	ck_assert(pgm_lsn_parse("00000016/0B374D84", &v));
	ck_assert(v == 0x160B374D84ull);
	ck_assert(pgm_lsn_parse("ffffffff/ffffffff", &v));
	ck_assert(v == UINT64_MAX);
}
END_TEST

START_TEST(test_lsn_parse_malformed)
{
	/* nothing, one half, no slash, not hex, trailing text: refused, *out left alone */
	const char *bad[] = {"",      "1",    "1/",   "/1",   "/",           "G/0",   "0/G", "1//2",
			     "1/2/3", "1 /2", "1/2 ", "1/2x", "16-B374D848", "1.5/0", NULL};

	for (int i = 0; bad[i] != NULL; i++) {
		uint64_t v = 42;

		ck_assert_msg(!pgm_lsn_parse(bad[i], &v), "\"%s\" parsed as an LSN", bad[i]);
		ck_assert_msg(v == 42, "\"%s\" changed *out", bad[i]);
	}
	{
		uint64_t v = 42;

		ck_assert(!pgm_lsn_parse(NULL, &v));
		ck_assert(v == 42);
	}
}
END_TEST

/*
 * What PostgreSQL's pg_lsn input refuses, pgm_lsn_parse should refuse:
 * 1 to 8 hex digits, a slash, 1 to 8 hex digits, nothing else. Its sscanf
 * ("%X/%X") takes a half over 32 bits and silently keeps its low 32 bits
 * ("100000000/0" is 0/0), and takes signs, "0x" and blanks after the slash:
 * the parser now reads the digits itself.
 */
START_TEST(test_lsn_parse_strict)
{
	const char *bad[] = {"100000000/0", "0/100000000", "FFFFFFFFFFFFFFFFFFFF/0",
			     "000000001/0", "-1/0",        "+1/2",
			     "0x1/0x2",     " 1/2",        "1/ 2",
			     "1/-2",        NULL};

	for (int i = 0; bad[i] != NULL; i++) {
		uint64_t v = 42;

		ck_assert_msg(!pgm_lsn_parse(bad[i], &v), "\"%s\" parsed as an LSN: %llx", bad[i],
			      (unsigned long long) v);
	}
}
END_TEST

START_TEST(test_lsn_format_buffer)
{
	char buf[18];
	char small[6];

	/* "FFFFFFFF/FFFFFFFF" and its NUL: 18 bytes are enough */
	memset(buf, 'x', sizeof(buf));
	pgm_lsn_format(UINT64_MAX, buf, sizeof(buf));
	ck_assert_str_eq(buf, "FFFFFFFF/FFFFFFFF");
	/* a short buffer is cut, never overrun, and still a string */
	memset(small, 'x', sizeof(small));
	pgm_lsn_format(UINT64_MAX, small, sizeof(small));
	ck_assert_str_eq(small, "FFFFF");
}
END_TEST

Suite *
pgm_test_suite(void)
{
	Suite *s = suite_create("lsn");
	TCase *tc = tcase_create("lsn");
	TCase *bugs = tcase_create("lsn_strict");

	tcase_add_test(tc, test_lsn_round_trip);
	tcase_add_test(tc, test_lsn_parse_forms);
	tcase_add_test(tc, test_lsn_parse_malformed);
	tcase_add_test(tc, test_lsn_format_buffer);
	suite_add_tcase(s, tc);

	tcase_add_test(bugs, test_lsn_parse_strict);
	suite_add_tcase(s, bugs);
	return s;
}
