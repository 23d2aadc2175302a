/*
 * test_pgoutput.c
 *    Unit tests of the pgoutput decoder (src/pg/pgoutput.c), fed
 *    protocol version 1 messages built here byte by byte: the SQL a
 *    transaction becomes for the source (rows into one table one after the
 *    other join one INSERT; an UPDATE or a new Relation message ends it),
 *    and a large transaction handed over chunk by chunk before its Commit,
 *    by count of changes and by bytes of SQL (wide rows).
 *    No server needed.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "pg/pgoutput.h"

typedef struct msg {
	uint8_t d[1 << 18]; /* room for one wide value */
	size_t n;
} msg_t;

static void
put_int(msg_t *m, uint64_t v, int bytes)
{
	for (int i = bytes - 1; i >= 0; i--)
		m->d[m->n++] = (uint8_t) (v >> (8 * i));
}

static void
put_str(msg_t *m, const char *s)
{
	size_t len = strlen(s) + 1;

	memcpy(m->d + m->n, s, len);
	m->n += len;
}

/* a TupleData of text values (NULL: a null) */
static void
put_tuple(msg_t *m, int n, const char *const *vals)
{
	put_int(m, (uint64_t) n, 2);
	for (int i = 0; i < n; i++) {
		if (vals[i] == NULL) {
			put_int(m, 'n', 1);
			continue;
		}
		put_int(m, 't', 1);
		put_int(m, strlen(vals[i]), 4);
		memcpy(m->d + m->n, vals[i], strlen(vals[i]));
		m->n += strlen(vals[i]);
	}
}

/* feed one message; returns what pgm_pgo_feed returned, and fails on an error */
static int
feed(pgm_pgo_t *p, const msg_t *m, pgm_pgo_txn_t *txn)
{
	char *err = NULL;
	int rc = pgm_pgo_feed(p, m->d, m->n, txn, &err);

	ck_assert_msg(rc >= 0, "feed: %s", err ? err : "?");
	return rc;
}

static void
begin(pgm_pgo_t *p, uint64_t commit_lsn, uint32_t xid)
{
	msg_t m = {.n = 0};
	pgm_pgo_txn_t t = {0};

	put_int(&m, 'B', 1);
	put_int(&m, commit_lsn, 8);
	put_int(&m, 1000000, 8);
	put_int(&m, xid, 4);
	ck_assert_int_eq(feed(p, &m, &t), 0);
}

/* relation relid: public.<name> (id integer, the replica identity; v text) */
static void
relation(pgm_pgo_t *p, uint32_t relid, const char *name)
{
	msg_t m = {.n = 0};
	pgm_pgo_txn_t t = {0};

	put_int(&m, 'R', 1);
	put_int(&m, relid, 4);
	put_str(&m, "public");
	put_str(&m, name);
	put_int(&m, 'd', 1);
	put_int(&m, 2, 2);
	put_int(&m, 1, 1);
	put_str(&m, "id");
	put_int(&m, 23, 4);
	put_int(&m, (uint64_t) -1, 4);
	put_int(&m, 0, 1);
	put_str(&m, "v");
	put_int(&m, 25, 4);
	put_int(&m, (uint64_t) -1, 4);
	ck_assert_int_eq(feed(p, &m, &t), 0);
}

/* an Insert ('I') or an Update with the new tuple only ('U': the key did not change) */
static void
change(pgm_pgo_t *p, char kind, uint32_t relid, const char *id, const char *v)
{
	msg_t m = {.n = 0};
	pgm_pgo_txn_t t = {0};
	const char *vals[] = {id, v};

	put_int(&m, (uint64_t) kind, 1);
	put_int(&m, relid, 4);
	put_int(&m, 'N', 1);
	put_tuple(&m, 2, vals);
	ck_assert_int_eq(feed(p, &m, &t), 0);
}

#define insert(p, relid, id, v) change(p, 'I', relid, id, v)
#define update(p, relid, id, v) change(p, 'U', relid, id, v)

static void
commit(pgm_pgo_t *p, uint64_t commit_lsn, pgm_pgo_txn_t *txn)
{
	msg_t m = {.n = 0};

	put_int(&m, 'C', 1);
	put_int(&m, 0, 1);
	put_int(&m, commit_lsn, 8);
	put_int(&m, commit_lsn + 48, 8);
	put_int(&m, 1000000, 8);
	ck_assert_int_eq(feed(p, &m, txn), 1);
}

static int
count(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *s = hay; (s = strstr(s, needle)) != NULL; s++)
		n++;
	return n;
}

START_TEST(test_inserts_join)
{
	pgm_pgo_t *p = pgm_pgo_new();
	pgm_pgo_txn_t t = {0};

	begin(p, 0x100, 7);
	relation(p, 1, "t");
	relation(p, 2, "u");
	insert(p, 1, "1", "a");
	insert(p, 1, "2", NULL);
	insert(p, 1, "3", "it's");
	update(p, 1, "1", "b");
	insert(p, 1, "4", "d");
	insert(p, 2, "1", "other table");
	insert(p, 1, "5", "e");
	relation(p, 1, "t"); /* described again: its columns may differ */
	insert(p, 1, "6", "f");
	commit(p, 0x100, &t);
	ck_assert_int_eq(t.nchunks, 1);
	ck_assert_int_eq(t.changes, 8);
	ck_assert_uint_eq(t.xid, 7);
	ck_assert_ptr_nonnull(
		strstr(t.chunks[0],
		       "INSERT INTO \"public\".\"t\" (\"id\", \"v\") OVERRIDING SYSTEM VALUE VALUES ('1', 'a'),\n"
		       "('2', NULL),\n('3', 'it''s');\nUPDATE \"public\".\"t\" SET \"v\" = 'b' WHERE \"id\" = '1';\n"));
	/* rows 1-3, then 4, 5 and 6 alone (after the UPDATE, the other table, the Relation message) */
	ck_assert_int_eq(count(t.chunks[0], "INSERT INTO \"public\".\"t\""), 4);
	ck_assert_int_eq(count(t.chunks[0], "INSERT INTO \"public\".\"u\""), 1);
	ck_assert_ptr_nonnull(strstr(t.chunks[0], "VALUES ('6', 'f');\n"));
	pgm_pgo_txn_clear(&t);
	pgm_pgo_free(p);
}
END_TEST

START_TEST(test_large_transaction_in_chunks)
{
	pgm_pgo_t *p = pgm_pgo_new();
	pgm_pgo_txn_t t = {0};
	uint64_t lsn = 0;
	int64_t at = 0;
	uint32_t xid = 0;
	char id[16], *c;
	int taken = 0;

	ck_assert(!pgm_pgo_current(p, &lsn, &at, &xid));
	begin(p, 0xABCDEF, 42);
	ck_assert(pgm_pgo_current(p, &lsn, &at, &xid));
	ck_assert_uint_eq(lsn, 0xABCDEF);
	ck_assert_uint_eq(xid, 42);
	ck_assert_int_eq(at, 1000000);
	relation(p, 1, "t");
	for (int i = 1; i <= 2 * PGM_PGO_CHUNK + 500; i++) {
		snprintf(id, sizeof(id), "%d", i);
		insert(p, 1, id, "x");
		if (i % PGM_PGO_CHUNK == 0) {
			/* a chunk is complete: it can be applied before the transaction ends */
			ck_assert_int_eq(pgm_pgo_chunks_ready(p), 1);
			c = pgm_pgo_take_chunk(p);
			ck_assert_ptr_nonnull(c);
			ck_assert_int_eq(count(c, "INSERT INTO"), 1);
			ck_assert_int_eq(count(c, "'x')"), PGM_PGO_CHUNK);
			free(c);
			taken++;
		} else {
			ck_assert_int_eq(pgm_pgo_chunks_ready(p), 0);
		}
	}
	ck_assert_int_eq(taken, 2);
	ck_assert_ptr_null(pgm_pgo_take_chunk(p));
	commit(p, 0xABCDEF, &t);
	/* the Commit hands over the rest */
	ck_assert_int_eq(t.nchunks, 1);
	ck_assert_int_eq(count(t.chunks[0], "'x')"), 500);
	ck_assert_ptr_nonnull(strstr(t.chunks[0], "('2001', 'x')"));
	ck_assert_int_eq(t.changes, 2 * PGM_PGO_CHUNK + 500);
	ck_assert(!pgm_pgo_current(p, &lsn, &at, &xid));
	ck_assert_int_eq(pgm_pgo_chunks_ready(p), 0);
	ck_assert_ptr_null(pgm_pgo_take_chunk(p));
	pgm_pgo_txn_clear(&t);
	pgm_pgo_free(p);
}
END_TEST

/* wide rows: a chunk closes at PGM_PGO_CHUNK_BYTES of SQL, whatever the count of changes */
START_TEST(test_chunks_bounded_by_bytes)
{
	pgm_pgo_t *p = pgm_pgo_new();
	pgm_pgo_txn_t t = {0};
	size_t wide = 100 * 1024, total = 0;
	char *v = malloc(wide + 1), id[16], *c;
	int rows = (int) (3 * PGM_PGO_CHUNK_BYTES / wide) + 7, taken = 0;

	memset(v, 'w', wide);
	v[wide] = '\0';
	begin(p, 0x1000, 7);
	relation(p, 1, "t");
	for (int i = 1; i <= rows; i++) {
		snprintf(id, sizeof(id), "%d", i);
		update(p, 1, id, v);
		while ((c = pgm_pgo_take_chunk(p)) != NULL) {
			/* one change past the limit at most */
			ck_assert_uint_ge(strlen(c), PGM_PGO_CHUNK_BYTES);
			ck_assert_uint_lt(strlen(c), PGM_PGO_CHUNK_BYTES + wide + 1024);
			total += (size_t) count(c, "UPDATE ");
			free(c);
			taken++;
		}
	}
	/* far fewer than PGM_PGO_CHUNK changes, yet in several chunks */
	ck_assert_int_lt(rows, PGM_PGO_CHUNK);
	ck_assert_int_eq(taken, 3);
	commit(p, 0x1000, &t);
	for (int i = 0; i < t.nchunks; i++) {
		ck_assert_uint_lt(strlen(t.chunks[i]), PGM_PGO_CHUNK_BYTES);
		total += (size_t) count(t.chunks[i], "UPDATE ");
	}
	ck_assert_uint_eq(total, (size_t) rows);
	ck_assert_int_eq(t.changes, rows);
	pgm_pgo_txn_clear(&t);
	pgm_pgo_free(p);
	free(v);
}
END_TEST

/* a Delete ('D') or an Update ('U') with the old key ('K') of a row whose key was old_id */
static void
change_old_key(pgm_pgo_t *p, char kind, uint32_t relid, const char *old_id, const char *id, const char *v)
{
	msg_t m = {.n = 0};
	pgm_pgo_txn_t t = {0};
	const char *oldv[] = {old_id, NULL}, *newv[] = {id, v};

	put_int(&m, (uint64_t) kind, 1);
	put_int(&m, relid, 4);
	put_int(&m, 'K', 1);
	put_tuple(&m, 2, oldv);
	if (kind == 'U') {
		put_int(&m, 'N', 1);
		put_tuple(&m, 2, newv);
	}
	ck_assert_int_eq(feed(p, &m, &t), 0);
}

/*
 * The source's foreign key actions: a DELETE of a table an ON DELETE
 * CASCADE empties may find no row; an UPDATE whose key an ON UPDATE
 * CASCADE moved already is applied to the row at its new key; any other
 * table still needs exactly one row.
 */
START_TEST(test_fk_actions)
{
	pgm_pgo_t *p = pgm_pgo_new();
	pgm_pgo_txn_t t = {0};
	const char *cols[] = {"id"};
	const char *c;

	pgm_pgo_fk_rule(p, "public", "child", true, cols, 1);
	pgm_pgo_fk_rule(p, "public", "setnull", false, NULL, 0);
	begin(p, 0x200, 9);
	relation(p, 1, "child");
	relation(p, 2, "plain");
	relation(p, 3, "setnull");
	change_old_key(p, 'D', 1, "1", NULL, NULL);
	change_old_key(p, 'D', 2, "1", NULL, NULL);
	change_old_key(p, 'U', 1, "2", "20", "moved");
	change_old_key(p, 'U', 2, "2", "20", "moved");
	change_old_key(p, 'D', 3, "1", NULL, NULL);
	commit(p, 0x200, &t);
	ck_assert_int_eq(t.nchunks, 1);
	c = t.chunks[0];
	ck_assert_ptr_nonnull(strstr(c, "DELETE FROM \"public\".\"child\" WHERE \"id\" = '1';\n"
					"GET DIAGNOSTICS pgm_rows = ROW_COUNT;\nIF pgm_rows > 1 THEN"));
	ck_assert_ptr_nonnull(strstr(c, "DELETE FROM \"public\".\"plain\" WHERE \"id\" = '1';\n"
					"GET DIAGNOSTICS pgm_rows = ROW_COUNT;\nIF pgm_rows <> 1 THEN"));
	ck_assert_ptr_nonnull(strstr(c, "DELETE FROM \"public\".\"setnull\" WHERE \"id\" = '1';\n"
					"GET DIAGNOSTICS pgm_rows = ROW_COUNT;\nIF pgm_rows <> 1 THEN"));
	ck_assert_ptr_nonnull(
		strstr(c, "UPDATE \"public\".\"child\" SET \"id\" = '20', \"v\" = 'moved' WHERE \"id\" = '2';\n"
			  "GET DIAGNOSTICS pgm_rows = ROW_COUNT;\nIF pgm_rows = 0 THEN\n"
			  "UPDATE \"public\".\"child\" SET \"id\" = '20', \"v\" = 'moved' WHERE \"id\" = '20';\n"
			  "GET DIAGNOSTICS pgm_rows = ROW_COUNT;\nEND IF;\nIF pgm_rows <> 1 THEN"));
	/* no fallback where no action of the source moves the row */
	ck_assert_int_eq(count(c, "IF pgm_rows = 0 THEN"), 1);
	ck_assert_int_eq(count(c, "IF pgm_rows <> 1 THEN"), 4);
	pgm_pgo_txn_clear(&t);
	pgm_pgo_free(p);
}
END_TEST

START_TEST(test_malformed)
{
	pgm_pgo_t *p = pgm_pgo_new();
	pgm_pgo_txn_t t = {0};
	msg_t m = {.n = 0};
	char *err = NULL;

	/* a change before any Begin */
	put_int(&m, 'I', 1);
	put_int(&m, 1, 4);
	ck_assert_int_eq(pgm_pgo_feed(p, m.d, m.n, &t, &err), -1);
	ck_assert_ptr_nonnull(strstr(err, "outside a transaction"));
	free(err);
	/* a truncated Begin */
	m.n = 0;
	put_int(&m, 'B', 1);
	put_int(&m, 1, 4);
	ck_assert_int_eq(pgm_pgo_feed(p, m.d, m.n, &t, &err), -1);
	ck_assert_ptr_nonnull(strstr(err, "malformed"));
	free(err);
	pgm_pgo_free(p);
}
END_TEST

Suite *
pgm_test_suite(void)
{
	Suite *s = suite_create("pgoutput");
	TCase *tc = tcase_create("decode");

	tcase_add_test(tc, test_inserts_join);
	tcase_add_test(tc, test_large_transaction_in_chunks);
	tcase_add_test(tc, test_chunks_bounded_by_bytes);
	tcase_add_test(tc, test_malformed);
	tcase_add_test(tc, test_fk_actions);
	suite_add_tcase(s, tc);
	return s;
}
