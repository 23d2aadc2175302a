/*
 * test_method.c
 *    Unit tests of the method table (src/pipeline/method.c): every method
 *    fills every slot of pgm_method_t, either with its own operation or
 *    with one of the named no-ops that say why it needs none (pgm_op_done,
 *    pgm_op_wait); the slots that carry data or promises (the copy, the
 *    freeze, the verification, cutover and the ways out) are never a
 *    no-op; and the lookups by name and by source pick the right table.
 *    No operation is called.
 */
#include <check.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "pipeline/method.h"

typedef struct slot {
	const char *name;
	size_t offset;
	bool must_work; /* a no-op here would lose data or a promise */
} slot_t;

#define SLOT(n, w)                               \
	{                                        \
#n, offsetof(pgm_method_t, n), w \
	}

static const slot_t slots[] = {
	SLOT(provision, false), SLOT(sync, true),  SLOT(synced, false), SLOT(freeze, true), SLOT(frozen, false),
	SLOT(verify, true),     SLOT(thaw, true),  SLOT(cutover, true), SLOT(window, true), SLOT(finish, true),
	SLOT(rollback, true),   SLOT(abort, true), SLOT(failed, false),
};
#define NSLOTS ((int) (sizeof(slots) / sizeof(slots[0])))

static pgm_op_fn
slot_fn(const pgm_method_t *m, const slot_t *sl)
{
	pgm_op_fn f;

	memcpy(&f, (const char *) m + sl->offset, sizeof(f));
	return f;
}

/* the list above covers the struct: a new slot must be added here too */
START_TEST(test_slots_cover_struct)
{
	size_t first = offsetof(pgm_method_t, provision);
	size_t end = offsetof(pgm_method_t, failed) + sizeof(pgm_op_fn);

	ck_assert_uint_eq(end - first, NSLOTS * sizeof(pgm_op_fn));
	ck_assert_uint_eq(end, sizeof(pgm_method_t));
}
END_TEST

START_TEST(test_every_slot_filled)
{
	int n = 0;

	for (int i = 0; pgm_methods[i]; i++, n++) {
		const pgm_method_t *m = pgm_methods[i];

		ck_assert_ptr_nonnull(m->name);
		ck_assert_ptr_nonnull(m->summary);
		ck_assert_msg(m->summary[0] != '\0', "method %s has no summary", m->name);
		for (int j = 0; j < NSLOTS; j++)
			ck_assert_msg(slot_fn(m, &slots[j]) != NULL, "method %s leaves %s empty", m->name,
				      slots[j].name);
	}
	ck_assert_int_ge(n, 4);
}
END_TEST

START_TEST(test_promises_not_noops)
{
	for (int i = 0; pgm_methods[i]; i++)
		for (int j = 0; j < NSLOTS; j++) {
			pgm_op_fn f = slot_fn(pgm_methods[i], &slots[j]);

			if (!slots[j].must_work)
				continue;
			ck_assert_msg(f != pgm_op_done && f != pgm_op_wait, "method %s: %s does nothing",
				      pgm_methods[i]->name, slots[j].name);
		}
}
END_TEST

START_TEST(test_find_by_name)
{
	ck_assert_ptr_eq(pgm_method_find("dump"), &pgm_method_dump);
	ck_assert_ptr_eq(pgm_method_find("pglogical"), &pgm_method_pglogical);
	ck_assert_ptr_eq(pgm_method_find("triggers"), &pgm_method_triggers);
	ck_assert_ptr_null(pgm_method_find("archive"));
	ck_assert_ptr_null(pgm_method_find("Dump"));
	ck_assert_ptr_null(pgm_method_find(""));
	ck_assert_ptr_null(pgm_method_find(NULL));
	/* a file-only method is never found by name, whatever it is called */
	for (int i = 0; pgm_methods[i]; i++)
		if (pgm_methods[i]->for_file)
			ck_assert_ptr_ne(pgm_method_find(pgm_methods[i]->name), pgm_methods[i]);
}
END_TEST

START_TEST(test_for_source)
{
	ck_assert_ptr_eq(pgm_method_for("dump", "postgres://u@h/db"), &pgm_method_dump);
	ck_assert_ptr_eq(pgm_method_for("dump", "file:/backups/latest.dump"), &pgm_method_archive);
	ck_assert_ptr_eq(pgm_method_for("dump", "/backups/latest.dump"), &pgm_method_archive);
	ck_assert_ptr_eq(pgm_method_for("pglogical", "host=h dbname=db"), &pgm_method_pglogical);
	/* logical replication and change capture need a live source */
	ck_assert_ptr_null(pgm_method_for("pglogical", "file:/backups/latest.dump"));
	ck_assert_ptr_null(pgm_method_for("triggers", "/backups/latest.dump"));
	ck_assert_ptr_null(pgm_method_for("nosuch", "postgres://u@h/db"));
	/* every file method is some method's file_source, and runs for files only */
	for (int i = 0; pgm_methods[i]; i++)
		if (pgm_methods[i]->file_source)
			ck_assert(pgm_methods[i]->file_source->for_file);
}
END_TEST

START_TEST(test_list_names_methods)
{
	char *list = pgm_method_list();

	for (int i = 0; pgm_methods[i]; i++) {
		char *want = malloc(strlen(pgm_methods[i]->name) + 16);

		strcpy(want, "--method ");
		strcat(want, pgm_methods[i]->name);
		if (!pgm_methods[i]->for_file)
			ck_assert_msg(strstr(list, want) != NULL, "[%s] not in [%s]", want, list);
		free(want);
	}
	ck_assert_str_eq(list, "--method dump (pg_dump/restore, any source) or --method pglogical (logical "
			       "replication, needs a superuser on the source) or --method triggers (change capture "
			       "by triggers, the owner's privileges only: Heroku)");
	free(list);
}
END_TEST

Suite *
pgm_test_suite(void)
{
	Suite *s = suite_create("method");
	TCase *tc = tcase_create("table");

	tcase_add_test(tc, test_slots_cover_struct);
	tcase_add_test(tc, test_every_slot_filled);
	tcase_add_test(tc, test_promises_not_noops);
	tcase_add_test(tc, test_find_by_name);
	tcase_add_test(tc, test_for_source);
	tcase_add_test(tc, test_list_names_methods);
	suite_add_tcase(s, tc);
	return s;
}
