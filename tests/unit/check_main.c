/*
 * check_main.c
 *    The main() every unit test program shares: it runs the program's suite
 *    (pgm_test_suite) with Check's defaults — each test in a forked child
 *    unless CK_FORK=no, the output of CK_VERBOSITY (normal when unset), the
 *    suite, case and tag filters of CK_RUN_SUITE, CK_RUN_CASE,
 *    CK_INCLUDE_TAGS and CK_EXCLUDE_TAGS — and exits 0 when every test
 *    passed, 1 otherwise.
 *
 *    The exit status is not the number of failures: meson reads 77 as a
 *    skipped test and 99 as a hard error, and a status wraps at 256.
 */
#include <check.h>
#include <stdlib.h>

#include "check_main.h"

int
main(void)
{
	SRunner *sr = srunner_create(pgm_test_suite());
	const char *exclude = getenv("CK_EXCLUDE_TAGS");
	int failed;

	/* tests of known bugs stay out of the default run (check_main.h) */
	srunner_run_tagged(sr, NULL, NULL, NULL, exclude ? exclude : PGM_TAG_KNOWN_BUG, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
