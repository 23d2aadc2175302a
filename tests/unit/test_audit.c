/*
 * test_audit.c
 *    Unit tests of the audit trail's hash chain (src/fsm/audit.c): a trail
 *    written by pgm_job_audit verifies and its head is the last line's
 *    hash; a middle line edited, a last line cut, lines swapped or removed
 *    are named as broken; the head is recovered from the file's end and a
 *    torn end is cut off and kept. And the readable events and summary of
 *    pgmover events (src/cli/events.c) on a fixture job.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_main.h"
#include "cli/cli.h"
#include "common/util.h"
#include "fixture_job.h"
#include "fsm/audit.h"

static char tmpdir[64];
static pgm_job_t *job;

static char *printed(void (*fn)(FILE *, void *), void *arg);

static void
setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/pgm-audit-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	job = pgm_fixture_job(tmpdir);
	job->created_ms = 1764747024123; /* 2025-12-03T07:30:24.123Z */
}

static void
teardown(void)
{
	pgm_job_free(job);
	ck_assert(pgm_rmtree(tmpdir));
}

/* six lines, as a short migration writes them: commands with a peer, the daemon's events without */
static void
write_trail(void)
{
	pgm_peer_t peer = {.pid = 4242, .uid = 0, .gid = 0};

	pgm_job_audit(job, &peer, "create", NULL, "created", "ok");
	pgm_job_audit(job, &peer, "start", "created", "provisioning", "ok");
	pgm_job_audit(job, NULL, "done", "provisioning", "syncing", "ok");
	pgm_job_audit(job, &peer, "cutover", "syncing", NULL, "refused: invalid_state");
	pgm_job_audit(job, NULL, "done", "syncing", "synced", "ok");
	pgm_job_audit(job, &peer, "freeze", "synced", "freezing", "ok");
}

static char *
trail_read(size_t *len)
{
	char *path = pgm_asprintf("%s/audit.jsonl", tmpdir), *buf = pgm_file_read(path, 1 << 20, len);

	ck_assert_ptr_nonnull(buf);
	free(path);
	return buf;
}

static void
trail_write(const char *buf, size_t len)
{
	char *path = pgm_asprintf("%s/audit.jsonl", tmpdir);

	ck_assert(pgm_file_replace(path, buf, len, 0600));
	free(path);
}

/* the start of line no (1-based) in buf */
static char *
line_at(char *buf, int no)
{
	for (int i = 1; i < no; i++)
		buf = strchr(buf, '\n') + 1;
	return buf;
}

static bool
check(pgm_audit_check_t *r)
{
	size_t len;
	char *buf = trail_read(&len), genesis[PGM_AUDIT_HASH_HEX];
	bool ok;

	pgm_audit_genesis(job->name, job->created_ms, genesis);
	ok = pgm_audit_check(buf, len, genesis, r);
	free(buf);
	return ok;
}

START_TEST(test_sha256)
{
	char hex[PGM_AUDIT_HASH_HEX], *g;

	/* FIPS 180-2's first example */
	pgm_audit_hash("abc", 3, hex);
	ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	g = pgm_audit_genesis_text("shop", 1764747024123);
	ck_assert_str_eq(g, "pgmover audit trail of job shop created at 2025-12-03T07:30:24.123Z");
	free(g);
}
END_TEST

START_TEST(test_chain_intact)
{
	pgm_audit_check_t r;
	char genesis[PGM_AUDIT_HASH_HEX], prev[80], last[PGM_AUDIT_HASH_HEX];
	size_t len;
	char *buf, *l6;

	write_trail();
	ck_assert(check(&r));
	ck_assert_int_eq(r.lines, 6);
	ck_assert_int_eq(r.broken_line, 0);
	ck_assert_int_eq(r.unchained, 0);
	/* the head is the last line's hash, and what the daemon keeps */
	buf = trail_read(&len);
	l6 = line_at(buf, 6);
	pgm_audit_hash(l6, strlen(l6) - 1, last);
	ck_assert_str_eq(r.head, last);
	ck_assert_str_eq(job->audit_head, last);
	/* the first line carries the genesis */
	pgm_audit_genesis(job->name, job->created_ms, genesis);
	snprintf(prev, sizeof(prev), "\"prev\":\"%s\"}", genesis);
	ck_assert_ptr_nonnull(strstr(buf, prev));
	ck_assert_ptr_eq(strstr(buf, prev) + strlen(prev), strchr(buf, '\n'));
	/* the user name of uid 0 is recorded */
	ck_assert_ptr_nonnull(strstr(buf, "\"uid\":0,\"user\":\"root\""));
	free(buf);
	pgm_audit_check_free(&r);
}
END_TEST

START_TEST(test_middle_line_edited)
{
	pgm_audit_check_t r;
	size_t len;
	char *buf, *l4;

	write_trail();
	buf = trail_read(&len);
	l4 = line_at(buf, 4);
	/* the refused cutover, made to look like another user's: uid 0 -> 7 */
	l4 = strstr(l4, "\"uid\":0");
	ck_assert_ptr_nonnull(l4);
	l4[6] = '7';
	trail_write(buf, len);
	free(buf);
	ck_assert(!check(&r));
	ck_assert_int_eq(r.broken_line, 4);
	ck_assert_ptr_nonnull(strstr(r.reason, "line 4 was changed"));
	ck_assert_int_eq(strlen(r.expected), 64);
	ck_assert_int_eq(strlen(r.found), 64);
	ck_assert_str_ne(r.expected, r.found);
	pgm_audit_check_free(&r);
}
END_TEST

START_TEST(test_last_line_truncated)
{
	pgm_audit_check_t r;
	size_t len;
	char *buf;

	write_trail();
	buf = trail_read(&len);
	trail_write(buf, len - 20);
	free(buf);
	ck_assert(!check(&r));
	ck_assert_int_eq(r.broken_line, 6);
	ck_assert_ptr_nonnull(strstr(r.reason, "incomplete"));
	pgm_audit_check_free(&r);
}
END_TEST

START_TEST(test_lines_reordered)
{
	pgm_audit_check_t r;
	size_t len;
	char *buf, *l2, *l3, *l4, *out;
	pgm_buf_t b = {0};

	write_trail();
	buf = trail_read(&len);
	l2 = line_at(buf, 2), l3 = line_at(buf, 3), l4 = line_at(buf, 4);
	/* 1 3 2 4 5 6 */
	pgm_buf_appendf(&b, "%.*s%.*s%.*s%s", (int) (l2 - buf), buf, (int) (l4 - l3), l3, (int) (l3 - l2), l2, l4);
	out = b.s;
	ck_assert_int_eq(strlen(out), len);
	trail_write(out, len);
	free(out);
	free(buf);
	ck_assert(!check(&r));
	ck_assert_int_eq(r.broken_line, 2);
	ck_assert_ptr_nonnull(strstr(r.reason, "line 2 does not follow line 1"));
	pgm_audit_check_free(&r);
}
END_TEST

START_TEST(test_first_line_removed)
{
	pgm_audit_check_t r;
	size_t len;
	char *buf, *l2;

	write_trail();
	buf = trail_read(&len);
	l2 = line_at(buf, 2);
	trail_write(l2, len - (size_t) (l2 - buf));
	free(buf);
	ck_assert(!check(&r));
	ck_assert_int_eq(r.broken_line, 1);
	ck_assert_ptr_nonnull(strstr(r.reason, "genesis"));
	pgm_audit_check_free(&r);
}
END_TEST

/* a trail begun before the chain: its lines are counted, not covered, and the check says so */
START_TEST(test_unchained_prefix)
{
	pgm_audit_check_t r;
	const char *old = "{\"time\":\"2025-12-03T07:30:24.200Z\",\"job\":\"shop\",\"command\":\"create\"}\n";

	trail_write(old, strlen(old));
	job->audit_head_known = false;
	write_trail();
	ck_assert(!check(&r));
	ck_assert_int_eq(r.unchained, 1);
	ck_assert_int_eq(r.broken_line, 0);
	ck_assert_ptr_nonnull(strstr(r.reason, "lines 1 to 1 were written before"));
	pgm_audit_check_free(&r);
}
END_TEST

static void
print_chain(FILE *f, void *chain)
{
	ck_assert_int_eq(pgm_cli_output_chain(f, "shop", chain), PGM_EXIT_FAILED);
}

/* the verdicts as pgmover prints them: a broken line with both hashes; a trail older than its chain */
START_TEST(test_chain_verdicts)
{
	cJSON *broken = cJSON_Parse("{\"intact\":false,\"lines\":9,\"broken\":{\"line\":4,\"reason\":\"line 4 was "
				    "changed\",\"expected\":\"aa\",\"found\":\"bb\"}}");
	cJSON *old = cJSON_Parse("{\"intact\":false,\"lines\":9,\"unchained_lines\":2,\"broken\":{\"reason\":"
				 "\"lines 1 to 2 were written before the audit trail was chained\"}}");
	char *text = printed(print_chain, broken);

	ck_assert_str_eq(text, "audit trail of shop: BROKEN at line 4 of 9\n  line 4 was changed\n  expected: aa\n"
			       "  found:    bb\n");
	free(text);
	text = printed(print_chain, old);
	ck_assert_str_eq(text, "audit trail of shop: NOT VERIFIED whole\n  lines 1 to 2 were written before the audit "
			       "trail was chained\n");
	free(text);
	cJSON_Delete(broken);
	cJSON_Delete(old);
}
END_TEST

/* a daemon started again finds the head at the trail's end and goes on with the chain */
START_TEST(test_recover_head)
{
	pgm_audit_check_t r;
	char before[PGM_AUDIT_HASH_HEX], *note = NULL;

	/* no trail yet: the genesis */
	ck_assert(pgm_audit_recover(job, &note));
	ck_assert_ptr_null(note);
	pgm_audit_genesis(job->name, job->created_ms, before);
	ck_assert_str_eq(job->audit_head, before);
	write_trail();
	snprintf(before, sizeof(before), "%s", job->audit_head);
	memset(job->audit_head, 0, sizeof(job->audit_head));
	ck_assert(pgm_audit_recover(job, &note));
	ck_assert_ptr_null(note);
	ck_assert_str_eq(job->audit_head, before);
	write_trail();
	ck_assert(check(&r));
	ck_assert_int_eq(r.lines, 12);
	pgm_audit_check_free(&r);
}
END_TEST

/* a line torn by a crash is cut off (kept beside the trail), and the chain goes on intact */
START_TEST(test_recover_torn_end)
{
	pgm_audit_check_t r;
	size_t len;
	char *buf, *with_torn, *note = NULL;
	char cmd[200];
	FILE *ls;

	write_trail();
	buf = trail_read(&len);
	with_torn = pgm_asprintf("%s{\"time\":\"2025-12-03T07:3", buf);
	trail_write(with_torn, strlen(with_torn));
	job->audit_head_known = false;
	ck_assert(pgm_audit_recover(job, &note));
	ck_assert_ptr_nonnull(note);
	ck_assert_ptr_nonnull(strstr(note, "torn line of 24 bytes"));
	free(note);
	snprintf(cmd, sizeof(cmd), "cat %s/audit.jsonl.torn-*", tmpdir);
	ls = popen(cmd, "r");
	ck_assert_ptr_nonnull(ls);
	ck_assert_ptr_nonnull(fgets(cmd, sizeof(cmd), ls));
	pclose(ls);
	ck_assert_str_eq(cmd, "{\"time\":\"2025-12-03T07:3");
	write_trail();
	ck_assert(check(&r));
	ck_assert_int_eq(r.lines, 12);
	pgm_audit_check_free(&r);
	free(with_torn);
	free(buf);
}
END_TEST

/* ---- the readable form (src/cli/events.c) ---- */

/* what a function printed into a FILE (malloc'd) */
static char *
printed(void (*fn)(FILE *, void *), void *arg)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	fn(f, arg);
	fclose(f);
	return text;
}

/* a whole dump migration, at known times (UTC seconds after 07:30:00 on 2025-12-03) */
static cJSON *
fixture_events(void)
{
	static const struct {
		int at_ms;
		const char *who, *cmd, *from, *to, *outcome;
	} rows[] = {
		{0, "root", "create", NULL, "created", "ok"},
		{1000, "root", "start", "created", "provisioning", "ok"},
		{2000, NULL, "done", "provisioning", "syncing", "ok"},
		{14000, NULL, "done", "syncing", "synced", "ok"},
		{20000, "root", "cutover", "synced", NULL, "refused: invalid_state"},
		{60000, "root", "freeze", "synced", "freezing", "ok"},
		{63500, NULL, "done", "freezing", "frozen", "ok"},
		{63600, NULL, "done", "frozen", "verifying", "ok"},
		{64400, NULL, "done", "verifying", "verified", "ok"},
		{70000, "root", "cutover", "verified", "cutting_over", "ok"},
		{70100, NULL, "cutover:hook", "cutting_over", NULL, "failed: exit 1"},
		{70300, NULL, "done", "cutting_over", "rollback_window", "ok"},
		{150300, "root", "finish", "rollback_window", "finishing", "ok"},
		{151000, NULL, "done", "finishing", "completed", "ok"},
	};
	cJSON *events = cJSON_CreateArray();

	for (size_t i = 0; i < PGM_ARRAY_LEN(rows); i++) {
		cJSON *e = cJSON_CreateObject();
		char ts[40];

		pgm_format_time(1764747000000 + rows[i].at_ms, ts, sizeof(ts));
		cJSON_AddStringToObject(e, "time", ts);
		if (rows[i].who) {
			cJSON_AddNumberToObject(e, "uid", 0);
			cJSON_AddStringToObject(e, "user", rows[i].who);
			cJSON_AddStringToObject(e, "command", rows[i].cmd);
		} else {
			cJSON_AddStringToObject(e, "by", "pgmoverd");
			cJSON_AddStringToObject(e, "event", rows[i].cmd);
		}
		if (rows[i].from)
			cJSON_AddStringToObject(e, "from", rows[i].from);
		if (rows[i].to)
			cJSON_AddStringToObject(e, "to", rows[i].to);
		cJSON_AddStringToObject(e, "outcome", rows[i].outcome);
		cJSON_AddNumberToObject(e, "line", (double) i + 1);
		cJSON_AddItemToArray(events, e);
	}
	return events;
}

static void
print_lines(FILE *f, void *events)
{
	pgm_cli_output_event_lines(f, events);
}

START_TEST(test_event_lines)
{
	cJSON *events = fixture_events();
	char *text;

	setenv("TZ", "Asia/Kolkata", 1); /* local time: UTC+05:30, no daylight saving */
	tzset();
	text = printed(print_lines, events);
	/* one line an event: local time, who, command, from → to, outcome; columns aligned */
	ck_assert_str_eq(
		text,
		"LINE  TIME                     WHO           COMMAND         STATE                           OUTCOME\n"
		"   1  2025-12-03 13:00:00 IST  root (uid 0)  create          → created                       ok\n"
		"   2  2025-12-03 13:00:01 IST  root (uid 0)  start           created → provisioning          ok\n"
		"   3  2025-12-03 13:00:02 IST  pgmoverd      (done)          provisioning → syncing          ok\n"
		"   4  2025-12-03 13:00:14 IST  pgmoverd      (done)          syncing → synced                ok\n"
		"   5  2025-12-03 13:00:20 IST  root (uid 0)  cutover         synced                          refused: invalid_state\n"
		"   6  2025-12-03 13:01:00 IST  root (uid 0)  freeze          synced → freezing               ok\n"
		"   7  2025-12-03 13:01:03 IST  pgmoverd      (done)          freezing → frozen               ok\n"
		"   8  2025-12-03 13:01:03 IST  pgmoverd      (done)          frozen → verifying              ok\n"
		"   9  2025-12-03 13:01:04 IST  pgmoverd      (done)          verifying → verified            ok\n"
		"  10  2025-12-03 13:01:10 IST  root (uid 0)  cutover         verified → cutting_over         ok\n"
		"  11  2025-12-03 13:01:10 IST  pgmoverd      (cutover:hook)  cutting_over                    error: failed: exit 1\n"
		"  12  2025-12-03 13:01:10 IST  pgmoverd      (done)          cutting_over → rollback_window  ok\n"
		"  13  2025-12-03 13:02:30 IST  root (uid 0)  finish          rollback_window → finishing     ok\n"
		"  14  2025-12-03 13:02:31 IST  pgmoverd      (done)          finishing → completed           ok\n");
	free(text);
	cJSON_Delete(events);
}
END_TEST

typedef struct summary_arg_s {
	cJSON *status, *events;
	int64_t now;
} summary_arg_t;

static void
print_summary(FILE *f, void *arg)
{
	summary_arg_t *a = arg;

	pgm_cli_output_summary(f, a->status, a->events, a->now);
}

/* the fixture job's status after such a migration: copies measured, two tables verified */
static cJSON *
fixture_status(bool differences)
{
	cJSON *copies = cJSON_CreateObject(), *rec, *t, *d;

	rec = cJSON_AddObjectToObject(copies, "rehearsal");
	cJSON_AddNumberToObject(rec, "duration_ms", 11900);
	cJSON_AddNumberToObject(rec, "data_ms", 10100);
	rec = cJSON_AddObjectToObject(copies, "final");
	cJSON_AddNumberToObject(rec, "duration_ms", 3300);
	cJSON_AddNumberToObject(rec, "data_ms", 2900);
	cJSON_AddItemToObject(job->facts, "copies", copies);
	job->state = PGM_ST_COMPLETED;
	job->verify = cJSON_CreateObject();
	cJSON_AddBoolToObject(job->verify, "ok", !differences);
	cJSON_AddNumberToObject(job->verify, "mismatches", differences ? 1 : 0);
	cJSON_AddItemToObject(job->verify, "tables", cJSON_CreateArray());
	t = cJSON_CreateObject();
	cJSON_AddStringToObject(t, "table", "public.accounts");
	cJSON_AddNumberToObject(t, "source_rows", 100000);
	cJSON_AddBoolToObject(t, "match", !differences);
	if (differences) {
		d = cJSON_AddObjectToObject(t, "differences");
		cJSON_AddNumberToObject(d, "count", 3);
	}
	cJSON_AddItemToArray(cJSON_GetObjectItem(job->verify, "tables"), t);
	t = cJSON_CreateObject();
	cJSON_AddStringToObject(t, "table", "public.branches");
	cJSON_AddNumberToObject(t, "source_rows", 1);
	cJSON_AddBoolToObject(t, "match", true);
	cJSON_AddItemToArray(cJSON_GetObjectItem(job->verify, "tables"), t);
	return pgm_job_status(job);
}

START_TEST(test_summary)
{
	summary_arg_t a = {fixture_status(false), fixture_events(), 0};
	char *text;

	setenv("TZ", "UTC", 1);
	tzset();
	text = printed(print_summary, &a);
	ck_assert_str_eq(text, "summary of shop (completed, method dump)\n"
			       "  write downtime   10s  (frozen 2025-12-03 07:31:00 UTC → cutover done 2025-12-03 "
			       "07:31:10 UTC)\n"
			       "  sync             12s  (rehearsal copy 12s: data 10s, indexes and constraints 1.8s)\n"
			       "  freeze           3.5s  (final copy 3.3s: data 2.9s, indexes and constraints 400ms)\n"
			       "  verify           800ms\n"
			       "  cutover          300ms\n"
			       "  rollback window  1m20s  (closed by finish)\n"
			       "  verified         2 tables, 100001 rows; differences: none\n");
	free(text);
	cJSON_Delete(a.status);
	cJSON_Delete(a.events);
}
END_TEST

/* frozen, thawed, frozen again: each freeze is counted, the last one first */
START_TEST(test_summary_thawed)
{
	summary_arg_t a = {fixture_status(false), fixture_events(), 0};
	const char *moves[][3] = {
		{"freezing", "frozen", "3000"}, {"frozen", "thawing", "4000"}, {"thawing", "synced", "4500"}};
	char *text;

	/* a freeze at 07:30:30, thawed at 07:30:34.5, before the one at 07:31:00: after line 4 */
	/* (not cJSON_InsertItemInArray: Debian 12's libcjson 1.7.15-1+deb12u4 refuses an insert inside an array) */
	cJSON *events = cJSON_CreateArray(), *e;
	int n = 0;

	while ((e = cJSON_DetachItemFromArray(a.events, 0)) != NULL) {
		cJSON_AddItemToArray(events, e);
		if (++n != 4)
			continue;
		for (int i = -1; i < 3; i++) {
			char ts[40];

			e = cJSON_CreateObject();
			pgm_format_time(1764747030000 + (i < 0 ? 0 : atoi(moves[i][2])), ts, sizeof(ts));
			cJSON_AddStringToObject(e, "time", ts);
			cJSON_AddStringToObject(e, "by", "pgmoverd");
			cJSON_AddStringToObject(e, "event", i < 0 ? "freeze" : "done");
			cJSON_AddStringToObject(e, "from", i < 0 ? "synced" : moves[i][0]);
			cJSON_AddStringToObject(e, "to", i < 0 ? "freezing" : moves[i][1]);
			cJSON_AddItemToArray(events, e);
		}
	}
	cJSON_Delete(a.events);
	a.events = events;
	setenv("TZ", "UTC", 1);
	tzset();
	text = printed(print_summary, &a);
	ck_assert_ptr_nonnull(strstr(text,
				     "  write downtime   10s  (frozen 2025-12-03 07:31:00 UTC → cutover done "
				     "2025-12-03 07:31:10 UTC)\n"
				     "    and earlier    4.5s  (frozen 2025-12-03 07:30:30 UTC → thawed 2025-12-03 "
				     "07:30:34 UTC)\n"
				     "  sync "));
	free(text);
	cJSON_Delete(a.status);
	cJSON_Delete(a.events);
}
END_TEST

/* a job still frozen, with differences: "so far", and what differs */
START_TEST(test_summary_open)
{
	summary_arg_t a = {fixture_status(true), fixture_events(), 1764747000000 + 64400 + 5000};
	char *text;

	/* cut the trail at "verifying -> verified" */
	for (int i = cJSON_GetArraySize(a.events); i > 9; i--)
		cJSON_DeleteItemFromArray(a.events, i - 1);
	setenv("TZ", "UTC", 1);
	tzset();
	text = printed(print_summary, &a);
	ck_assert_ptr_nonnull(strstr(text, "  write downtime   9.4s so far  (frozen since 2025-12-03 07:31:00 UTC)\n"));
	ck_assert_ptr_nonnull(
		strstr(text, "  verified         2 tables, 100001 rows; differences: 1 (1 tables differ, 3 rows)\n"));
	ck_assert_ptr_null(strstr(text, "cutover "));
	free(text);
	cJSON_Delete(a.status);
	cJSON_Delete(a.events);
}
END_TEST

Suite *
pgm_test_suite(void)
{
	Suite *s = suite_create("audit");
	TCase *chain = tcase_create("chain");
	TCase *text = tcase_create("readable");

	tcase_add_checked_fixture(chain, setup, teardown);
	tcase_add_test(chain, test_sha256);
	tcase_add_test(chain, test_chain_intact);
	tcase_add_test(chain, test_middle_line_edited);
	tcase_add_test(chain, test_last_line_truncated);
	tcase_add_test(chain, test_lines_reordered);
	tcase_add_test(chain, test_first_line_removed);
	tcase_add_test(chain, test_unchained_prefix);
	tcase_add_test(chain, test_recover_head);
	tcase_add_test(chain, test_recover_torn_end);
	suite_add_tcase(s, chain);
	tcase_add_checked_fixture(text, setup, teardown);
	tcase_add_test(text, test_event_lines);
	tcase_add_test(text, test_chain_verdicts);
	tcase_add_test(text, test_summary);
	tcase_add_test(text, test_summary_thawed);
	tcase_add_test(text, test_summary_open);
	suite_add_tcase(s, text);
	return s;
}
