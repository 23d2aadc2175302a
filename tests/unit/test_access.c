/*
 * test_access.c
 *    Unit tests of who may change jobs (src/daemon/access.c): the pure
 *    decision over uid, gid and groups, admin_users and admin_group read
 *    from names or ids, the socket modes pgmoverd refuses, and those
 *    settings as pgmoverd.conf gives them (src/daemon/config.c).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "common/util.h"
#include "daemon/access.h"
#include "daemon/config.h"

START_TEST(test_socket_mode)
{
	static const int ok[] = {0600, 0660, 0640, 0620, 0400, 0440, 0, 0200};
	static const int refused[] = {0666, 0777, 0664, 0661, 0662, 0700, 0670, 0760, 0606, 0604, 0601, 01660, -1};

	for (size_t i = 0; i < PGM_ARRAY_LEN(ok); i++)
		ck_assert_msg(pgm_socket_mode_ok(ok[i]), "%04o refused", ok[i]);
	for (size_t i = 0; i < PGM_ARRAY_LEN(refused); i++)
		ck_assert_msg(!pgm_socket_mode_ok(refused[i]), "%04o accepted", refused[i]);
}
END_TEST

START_TEST(test_decide)
{
	uid_t uids[] = {1002, 1005};
	pgm_access_t none = {0};
	pgm_access_t users = {.uids = uids, .nuids = 2};
	pgm_access_t group = {.uids = uids, .nuids = 2, .has_group = true, .gid = 3000};
	gid_t in[] = {100, 3000, 27}, out[] = {100, 27, 2999};
	const uid_t daemon = 998;

	/* root and the daemon's own user, always; nobody else without a rule */
	ck_assert(pgm_access_decide(&none, daemon, 0, 0, NULL, 0));
	ck_assert(pgm_access_decide(&none, daemon, daemon, 500, NULL, 0));
	ck_assert(!pgm_access_decide(&none, daemon, 1002, 1002, NULL, 0));
	ck_assert(!pgm_access_decide(&none, daemon, 1002, 3000, in, 3));
	/* admin_users */
	ck_assert(pgm_access_decide(&users, daemon, 1002, 1002, NULL, 0));
	ck_assert(pgm_access_decide(&users, daemon, 1005, 1005, NULL, 0));
	ck_assert(!pgm_access_decide(&users, daemon, 1003, 1003, NULL, 0));
	/* without admin_group, groups count for nothing */
	ck_assert(!pgm_access_decide(&users, daemon, 1003, 3000, in, 3));
	/* admin_group: the process's gid, or one of the user's groups */
	ck_assert(pgm_access_decide(&group, daemon, 1003, 3000, NULL, 0));
	ck_assert(pgm_access_decide(&group, daemon, 1003, 1003, in, 3));
	ck_assert(!pgm_access_decide(&group, daemon, 1003, 1003, out, 3));
	ck_assert(!pgm_access_decide(&group, daemon, 1003, 1003, NULL, 0));
	/* an uid the kernel did not give is no one's, not root's */
	ck_assert(!pgm_access_decide(&group, daemon, (uid_t) -1, 3000, in, 3));
	ck_assert(!pgm_access_decide(&none, (uid_t) -1, (uid_t) -1, 0, NULL, 0));
}
END_TEST

START_TEST(test_parse_users_and_group)
{
	pgm_access_t acc = {0};
	char *err = NULL;

	ck_assert(pgm_access_parse_users(&acc, "", &err));
	ck_assert_int_eq(acc.nuids, 0);
	ck_assert(pgm_access_parse_users(&acc, "root, 1002 ,77", &err));
	ck_assert_int_eq(acc.nuids, 3);
	ck_assert_int_eq(acc.uids[0], 0);
	ck_assert_int_eq(acc.uids[1], 1002);
	ck_assert_int_eq(acc.uids[2], 77);
	/* an unknown name is an error naming it, and keeps what was there */
	ck_assert(!pgm_access_parse_users(&acc, "root, no-such-user-pgm", &err));
	ck_assert_ptr_nonnull(strstr(err, "\"no-such-user-pgm\""));
	ck_assert_int_eq(acc.nuids, 3);
	free(err);
	ck_assert(!pgm_access_parse_users(&acc, "12x", &err));
	free(err);
	ck_assert(!pgm_access_parse_users(&acc, "-1", &err));
	free(err);

	ck_assert(pgm_access_parse_group(&acc, "", &err));
	ck_assert(!acc.has_group);
	ck_assert(pgm_access_parse_group(&acc, "root", &err));
	ck_assert(acc.has_group);
	ck_assert_int_eq(acc.gid, 0);
	ck_assert(pgm_access_parse_group(&acc, "4242", &err));
	ck_assert_int_eq(acc.gid, 4242);
	ck_assert(!pgm_access_parse_group(&acc, "no-such-group-pgm", &err));
	ck_assert_ptr_nonnull(strstr(err, "admin_group"));
	free(err);
	pgm_access_free(&acc);

	/* the root user's name, the uid no user has */
	err = pgm_access_user_name(0);
	ck_assert_str_eq(err, "root (uid 0)");
	free(err);
	err = pgm_access_user_name((uid_t) 3999999);
	ck_assert_str_eq(err, "uid 3999999");
	free(err);
}
END_TEST

/* the file: modes and names checked when read, so --check and the start refuse them */
START_TEST(test_config)
{
	pgm_config_t cfg;
	char *err = NULL;

	pgm_config_init(&cfg);
	ck_assert(pgm_config_parse(&cfg, "t.conf", "admin_users = root, 4001\nadmin_group = root\n", &err));
	ck_assert_str_eq(cfg.admin_users, "root, 4001");
	ck_assert_int_eq(cfg.access.nuids, 2);
	ck_assert_int_eq(cfg.access.uids[1], 4001);
	ck_assert(cfg.access.has_group);
	ck_assert(pgm_config_parse(&cfg, "t.conf", "socket_mode = 0600\n", &err));
	ck_assert(!cfg.access.has_group);

	ck_assert(!pgm_config_parse(&cfg, "t.conf", "socket_mode = 0666\n", &err));
	ck_assert_msg(strstr(err, "t.conf: socket_mode 0666 is more open than 0660") != NULL, "%s", err);
	free(err);
	ck_assert_int_eq(cfg.socket_mode, 0600); /* unchanged */
	ck_assert(!pgm_config_parse(&cfg, "t.conf", "socket_mode = 0664\n", &err));
	free(err);
	ck_assert(!pgm_config_parse(&cfg, "t.conf", "admin_users = root no-such-user-pgm\n", &err));
	ck_assert_msg(strstr(err, "t.conf: admin_users: there is no user named \"no-such-user-pgm\"") != NULL, "%s",
		      err);
	free(err);
	ck_assert(!pgm_config_parse(&cfg, "t.conf", "admin_group = no-such-group-pgm\n", &err));
	ck_assert_msg(strstr(err, "t.conf: admin_group: there is no group named") != NULL, "%s", err);
	free(err);
	pgm_config_free(&cfg);
}
END_TEST

Suite *
pgm_test_suite(void)
{
	Suite *s = suite_create("access");
	TCase *tc = tcase_create("access");

	tcase_add_test(tc, test_socket_mode);
	tcase_add_test(tc, test_decide);
	tcase_add_test(tc, test_parse_users_and_group);
	tcase_add_test(tc, test_config);
	suite_add_tcase(s, tc);
	return s;
}
