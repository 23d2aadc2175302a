/*
 * test_report.c
 *    Unit tests of the migration report (src/cli/report.c, report_html.c):
 *    the one escaping function; and, on a fixture job whose trail
 *    pgm_job_audit wrote (a freeze thawed after a failed verification, a
 *    second freeze, cutover, finish), that every section is there, that
 *    every value from the job is escaped, and that the numbers shown are
 *    the fixture's: rows and checksums, the write downtime, the freeze
 *    counters, TLS modes, what was created and removed, the chain's head.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "cli/cli.h"
#include "common/json.h"
#include "common/util.h"
#include "fixture_job.h"
#include "fsm/audit.h"

static char tmpdir[64];
static pgm_job_t *job;
static char head[PGM_AUDIT_HASH_HEX];

/* a string escaped by pgm_cli_html_escape (malloc'd) */
static char *
escaped(const char *s)
{
	pgm_buf_t b = {0};

	pgm_cli_html_escape(&b, s);
	return b.s != NULL ? b.s : pgm_strdup("");
}

START_TEST(test_escape)
{
	char *e = escaped("<script>alert(\"x\" & 'y')</script>");

	ck_assert_str_eq(e, "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;");
	free(e);
	e = escaped("public.a<b>&c");
	ck_assert_str_eq(e, "public.a&lt;b&gt;&amp;c");
	free(e);
	/* UTF-8 passes unchanged, an entity is escaped again, nothing is lost */
	e = escaped("größe → 5 &amp;");
	ck_assert_str_eq(e, "größe → 5 &amp;amp;");
	free(e);
	e = escaped("");
	ck_assert_str_eq(e, "");
	free(e);
	e = escaped(NULL);
	ck_assert_str_eq(e, "");
	free(e);
}
END_TEST

/* the trail: each line with the time the test gives it (the chain is checked on the file as written) */
static const struct {
	const char *command, *from, *to, *outcome, *time;
	bool peer;
} trail[] = {
	{"create", NULL, "created", "ok", "2026-12-03T08:00:00.000Z", true},
	{"start", "created", "provisioning", "ok", "2026-12-03T08:00:01.000Z", true},
	{"done", "provisioning", "syncing", "ok", "2026-12-03T08:00:02.000Z", false},
	{"done", "syncing", "synced", "ok", "2026-12-03T08:00:12.000Z", false},
	{"freeze", "synced", "freezing", "ok", "2026-12-03T08:00:20.000Z", true},
	{"done", "freezing", "frozen", "ok", "2026-12-03T08:00:50.000Z", false},
	{"done", "frozen", "verifying", "ok", "2026-12-03T08:00:51.000Z", false},
	{"verify_failed", "verifying", "verify_failed", "error: 1 table differs: public.a<b>&c",
	 "2026-12-03T08:00:55.000Z", false},
	{"thaw", "verify_failed", "thawing", "ok", "2026-12-03T08:01:00.000Z", true},
	{"done", "thawing", "synced", "ok", "2026-12-03T08:01:02.000Z", false},
	{"freeze", "synced", "freezing", "ok", "2026-12-03T08:02:00.000Z", true},
	{"done", "freezing", "frozen", "ok", "2026-12-03T08:02:30.000Z", false},
	{"done", "frozen", "verifying", "ok", "2026-12-03T08:02:31.000Z", false},
	{"done", "verifying", "verified", "ok", "2026-12-03T08:02:35.000Z", false},
	{"cutover", "verified", "cutting_over", "ok", "2026-12-03T08:02:40.000Z", true},
	{"cutover:hook:cutover_command", "cutting_over", NULL, "ok (47 ms)", "2026-12-03T08:02:44.000Z", false},
	{"done", "cutting_over", "rollback_window", "ok", "2026-12-03T08:02:45.500Z", false},
	{"finish", "rollback_window", "finishing", "ok", "2026-12-03T08:10:00.000Z", true},
	{"done", "finishing", "completed", "ok", "2026-12-03T08:10:05.000Z", false},
};

static const char *const facts_json =
	"{\"source\": {\"tls\": true, \"sslmode\": \"verify-full\", \"local\": false, \"server_version\": \"15.18\","
	" \"user\": \"app_owner\"},"
	" \"target\": {\"tls\": true, \"sslmode\": \"require\", \"local\": false, \"user\": \"tgt\"},"
	" \"preflight\": {\"ok\": true, \"findings\": ["
	"  {\"check\": \"TLS to the source\", \"status\": \"ok\", \"finding\": \"the connection to the source is "
	"encrypted\"},"
	"  {\"check\": \"TLS to the target\", \"status\": \"info\", \"finding\": \"the server's certificate is not "
	"checked\", \"fix\": \"use sslmode=verify-full\"},"
	"  {\"check\": \"size\", \"status\": \"warning\", \"finding\": \"largest: public.a<b>&c <script>\"}]},"
	" \"freeze\": {\"sessions_terminated\": 3, \"lsn_at_freeze\": \"0/221E548\", \"row_changes_at_freeze\": 5037,"
	"  \"started_at\": \"2026-12-03T08:02:00.100Z\", \"check\": {\"row_changes_since_freeze\": 0,"
	"  \"wal_bytes_since_freeze\": 120, \"write_sessions\": 0, \"at\": \"2026-12-03T08:02:29.900Z\"}},"
	" \"reverse\": {\"slot\": \"pgmover_shop\", \"transactions\": 7, \"changes\": 42}}";

static const char *const verify_json =
	"{\"ok\": true, \"mismatches\": 0, \"at\": \"2026-12-03T08:02:34.000Z\", \"hash\": \"sum of xor\","
	" \"tables\": ["
	"  {\"table\": \"public.a<b>&c\", \"source_rows\": 37, \"target_rows\": 37, \"match\": true,"
	"   \"source_checksum\": \"3e2fee5b34bbda68\", \"target_checksum\": \"3e2fee5b34bbda68\"},"
	"  {\"table\": \"public.accounts\", \"source_rows\": 5000, \"target_rows\": 5000, \"match\": true,"
	"   \"source_checksum\": \"44fbd355f310ccd8\", \"target_checksum\": \"44fbd355f310ccd8\"}],"
	" \"sequences\": [{\"sequence\": \"public.s\", \"source_value\": 37, \"target_value\": 40, \"match\": true}],"
	" \"schema\": {\"differences\": [], \"objects_compared\": 13, \"ok\": true}}";

static const char *const artifacts_json =
	"[{\"kind\": \"db_setting\", \"side\": \"source\", \"name\": \"shop\", \"status\": \"creating\","
	"  \"setting\": \"default_transaction_read_only\", \"at\": \"2026-12-03T08:02:00.050Z\"},"
	" {\"kind\": \"replication_slot\", \"side\": \"target\", \"name\": \"pgmover_shop\", \"status\": \"dropped\","
	"  \"at\": \"2026-12-03T08:02:41.000Z\", \"dropped_at\": \"2026-12-03T08:10:02.000Z\"}]";

static void
setup(void)
{
	pgm_peer_t peer = {.pid = 4242, .uid = 0, .gid = 0};

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/pgm-report-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	job = pgm_fixture_job(tmpdir);
	job->created_ms = pgm_parse_time("2026-12-03T07:59:59.000Z");
	free(job->source_display);
	free(job->target_display);
	job->source_display = pgm_strdup("postgres://app_owner:****@db.example.com:5432/shop?sslmode=verify-full");
	job->target_display = pgm_strdup("postgres://tgt:****@new.example.com/shop?sslmode=require");
	cJSON_Delete(job->facts);
	job->facts = cJSON_Parse(facts_json);
	job->verify = cJSON_Parse(verify_json);
	cJSON_Delete(job->artifacts);
	job->artifacts = cJSON_Parse(artifacts_json);
	ck_assert(job->facts && job->verify && job->artifacts);
	job->state = PGM_ST_COMPLETED;
	job->rollback_deadline_ms = pgm_parse_time("2026-12-04T08:02:45.500Z");
	for (size_t i = 0; i < PGM_ARRAY_LEN(trail); i++)
		pgm_job_audit(job, trail[i].peer ? &peer : NULL, trail[i].command, trail[i].from, trail[i].to,
			      trail[i].outcome);
	snprintf(head, sizeof(head), "%s", job->audit_head);
}

static void
teardown(void)
{
	pgm_job_free(job);
	ck_assert(pgm_rmtree(tmpdir));
}

/* the "events" reply's result for the fixture, as the daemon builds it: lines parsed, chain checked */
static cJSON *
events_result(void)
{
	char *path = pgm_asprintf("%s/audit.jsonl", tmpdir), genesis[PGM_AUDIT_HASH_HEX];
	size_t len = 0, i = 0;
	char *buf = pgm_file_read(path, 1 << 20, &len);
	cJSON *r = cJSON_CreateObject(), *events = cJSON_AddArrayToObject(r, "events"), *chain;
	pgm_audit_check_t c;

	ck_assert_ptr_nonnull(buf);
	pgm_audit_genesis(job->name, job->created_ms, genesis);
	pgm_audit_check(buf, len, genesis, &c);
	chain = cJSON_AddObjectToObject(r, "chain");
	cJSON_AddBoolToObject(chain, "intact", c.intact);
	cJSON_AddNumberToObject(chain, "lines", c.lines);
	cJSON_AddStringToObject(chain, "head", c.head);
	cJSON_AddStringToObject(chain, "genesis", "pgmover audit trail of job shop created at <then>");
	for (char *line = buf, *nl; line && *line; line = nl ? nl + 1 : NULL) {
		cJSON *e;

		nl = strchr(line, '\n');
		e = cJSON_ParseWithLength(line, nl ? (size_t) (nl - line) : strlen(line));
		ck_assert(cJSON_IsObject(e) && i < PGM_ARRAY_LEN(trail));
		cJSON_ReplaceItemInObjectCaseSensitive(e, "time", cJSON_CreateString(trail[i].time));
		cJSON_AddNumberToObject(e, "line", (double) ++i);
		cJSON_AddItemToArray(events, e);
	}
	ck_assert_uint_eq(i, PGM_ARRAY_LEN(trail));
	cJSON_AddNumberToObject(r, "omitted", 0);
	cJSON_AddItemToObject(r, "status", pgm_job_status(job));
	pgm_audit_check_free(&c);
	free(buf);
	free(path);
	return r;
}

static const int64_t report_time = 1796289600000; /* 2026-12-03T09:20:00Z */

START_TEST(test_sections)
{
	cJSON *r = events_result(), *ev = pgm_cli_report_evidence(r, report_time);
	char *html = pgm_cli_report_html(ev);
	static const char *const ids[] = {"connections",     "preflight",   "timeline",    "timeline-chart",
					  "phase-bar",       "events",      "freeze",      "downtime",
					  "verification",    "tables",      "differences", "artifacts",
					  "rollback-window", "audit-chain", "chain-head"};

	for (size_t i = 0; i < PGM_ARRAY_LEN(ids); i++) {
		char *needle = pgm_asprintf("id=\"%s\"", ids[i]);

		ck_assert_msg(strstr(html, needle) != NULL, "the report has no %s", needle);
		free(needle);
	}
	/* self-contained: no script, nothing loaded, external loads forbidden, a print style sheet */
	ck_assert_ptr_null(strstr(html, "<script"));
	ck_assert_ptr_null(strstr(html, " src="));
	ck_assert_ptr_null(strstr(html, " href="));
	ck_assert_ptr_null(strstr(html, "url("));
	ck_assert_ptr_nonnull(strstr(html, "content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\""));
	ck_assert_ptr_nonnull(strstr(html, "@media print"));
	ck_assert_ptr_nonnull(strstr(html, "tr,.card,svg,.keep{break-inside:avoid"));
	/* no secret: the fixture's password is never in it */
	ck_assert_ptr_null(strstr(html, "secret"));
	/* every event of the trail is a row, with who and the command */
	{
		int rows = 0;

		for (const char *p = html; (p = strstr(p, "<tr class=\"event\">")) != NULL; p++)
			rows++;
		ck_assert_int_eq(rows, (int) PGM_ARRAY_LEN(trail));
	}
	ck_assert_ptr_nonnull(strstr(html, "<td class=\"who\">root (uid 0)</td><td class=\"command\">thaw</td>"));
	ck_assert_ptr_nonnull(strstr(html, "<td class=\"command\">(cutover:hook:cutover_command)</td>"));
	free(html);
	cJSON_Delete(ev);
	cJSON_Delete(r);
}
END_TEST

START_TEST(test_escaped_values)
{
	cJSON *r = events_result(), *ev = pgm_cli_report_evidence(r, report_time);
	char *html = pgm_cli_report_html(ev);

	/* the table name, the finding and the error outcome hold < > &: only ever escaped */
	ck_assert_ptr_null(strstr(html, "a<b>&c"));
	ck_assert_ptr_null(strstr(html, "<script>"));
	ck_assert_ptr_nonnull(strstr(html, "<td class=\"table-name mono\">public.a&lt;b&gt;&amp;c</td>"));
	ck_assert_ptr_nonnull(strstr(html, "largest: public.a&lt;b&gt;&amp;c &lt;script&gt;"));
	ck_assert_ptr_nonnull(strstr(html, "error: 1 table differs: public.a&lt;b&gt;&amp;c"));
	ck_assert_ptr_nonnull(strstr(html, "of job shop created at &lt;then&gt;"));
	free(html);
	cJSON_Delete(ev);
	cJSON_Delete(r);
}
END_TEST

/* the evidence's numbers are the fixture's, in the JSON and on the page */
START_TEST(test_numbers)
{
	cJSON *r = events_result(), *ev = pgm_cli_report_evidence(r, report_time);
	char *html = pgm_cli_report_html(ev), *needle;
	const cJSON *d = cJSON_GetObjectItem(ev, "downtime"), *f = cJSON_GetObjectItem(ev, "freeze");
	const cJSON *src = cJSON_GetArrayItem(cJSON_GetObjectItem(ev, "connections"), 0);
	const cJSON *tgt = cJSON_GetArrayItem(cJSON_GetObjectItem(ev, "connections"), 1);
	const cJSON *w = cJSON_GetObjectItem(ev, "rollback_window");

	/* the last freeze (line 11, 08:02:00) to the end of the cutover (line 17, 08:02:45.500) */
	ck_assert_double_eq(cJSON_GetObjectItem(d, "ms")->valuedouble, 45500);
	ck_assert_str_eq(cJSON_GetObjectItem(d, "ended_by")->valuestring, "cutover done");
	ck_assert_double_eq(cJSON_GetObjectItem(d, "from_line")->valuedouble, 11);
	ck_assert_double_eq(cJSON_GetObjectItem(d, "to_line")->valuedouble, 17);
	ck_assert_ptr_nonnull(strstr(html, "<b>46s</b> (<span id=\"downtime-ms\">45500</span> ms)"));
	/* the freeze proof */
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(f, "held")));
	ck_assert_ptr_nonnull(strstr(html, "id=\"freeze-row_changes_at_freeze\" class=\"mono\">5037</td>"));
	ck_assert_ptr_nonnull(strstr(html, "id=\"freeze-row_changes_since_freeze\" class=\"mono\">0</td>"));
	ck_assert_ptr_nonnull(strstr(html, "id=\"freeze-sessions_terminated\" class=\"mono\">3</td>"));
	/* each table's rows and checksums on both sides */
	ck_assert_ptr_nonnull(strstr(html,
				     "<tr id=\"table-1\"><td class=\"table-name mono\">public.accounts</td>"
				     "<td class=\"num source-rows\">5000</td><td class=\"num target-rows\">5000</td>"
				     "<td class=\"mono source-checksum\">44fbd355f310ccd8</td>"
				     "<td class=\"mono target-checksum\">44fbd355f310ccd8</td>"));
	ck_assert_ptr_nonnull(strstr(html, "verified<b>2 tables, 5037 rows</b>"));
	/* TLS: the sslmode of each URL, and whether the certificate is checked */
	ck_assert_str_eq(cJSON_GetObjectItem(src, "sslmode")->valuestring, "verify-full");
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(src, "certificate_checked")));
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(src, "host_name_checked")));
	ck_assert_str_eq(cJSON_GetObjectItem(tgt, "sslmode")->valuestring, "require");
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(tgt, "certificate_checked")));
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(tgt, "encrypted")));
	ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(tgt, "tls_finding"), "fix")->valuestring,
			 "use sslmode=verify-full");
	ck_assert_ptr_nonnull(strstr(html, "postgres://app_owner:****@db.example.com:5432/shop?sslmode=verify-full"));
	/* what was created, and when removed */
	ck_assert_ptr_nonnull(strstr(html, "<td class=\"mono time\">2026-12-03T08:10:02.000Z</td>"));
	ck_assert_ptr_nonnull(strstr(html, "kept: the source stays frozen"));
	/* the rollback window: closed by finish after 7m15s */
	ck_assert_str_eq(cJSON_GetObjectItem(w, "closed_by")->valuestring, "finish");
	ck_assert_double_eq(cJSON_GetObjectItem(w, "ms")->valuedouble, 434500);
	ck_assert_ptr_nonnull(strstr(html, "7 transactions, 42 changes"));
	/* the chain's head: the one pgm_job_audit left */
	needle = pgm_asprintf("<code id=\"chain-head\">%s</code>", head);
	ck_assert_ptr_nonnull(strstr(html, needle));
	free(needle);
	/* the phases: sync took 10 s; the time since completed is no phase */
	ck_assert_ptr_nonnull(strstr(html, "syncing 10s</text>"));
	ck_assert_ptr_null(strstr(html, "completed 1h"));
	free(html);
	cJSON_Delete(ev);
	cJSON_Delete(r);
}
END_TEST

/* differences: the earlier failed verification from the trail, and those of the last report */
START_TEST(test_differences)
{
	cJSON *r = events_result(), *ev = pgm_cli_report_evidence(r, report_time), *st, *t, *dl;
	const cJSON *d = cJSON_GetObjectItem(ev, "differences");
	char *html;

	ck_assert_int_eq(cJSON_GetArraySize(d), 1);
	ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(d, 0), "kind")->valuestring, "earlier verification");
	ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(d, 0), "resolution")->valuestring,
			 "thaw by root (uid 0) at 2026-12-03T08:01:00.000Z (verify_failed → thawing); a later "
			 "verification at 2026-12-03T08:02:35.000Z found no difference");
	cJSON_Delete(ev);
	/* the job stopped in verify_failed: the last report's differing table, its keys, still open */
	st = cJSON_GetObjectItem(r, "status");
	cJSON_ReplaceItemInObject(st, "state", cJSON_CreateString("verify_failed"));
	t = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(st, "verify"), "tables"), 0);
	cJSON_ReplaceItemInObject(t, "match", cJSON_CreateFalse());
	dl = cJSON_Parse(
		"{\"count\": 2, \"missing\": 1, \"extra\": 0, \"changed\": 1, \"keys\": ["
		"{\"key\": \"(id)=(7)\", \"kind\": \"missing\"}, {\"key\": \"(id)=(<9>)\", \"kind\": \"changed\"}]}");
	cJSON_AddItemToObject(t, "differences", dl);
	cJSON_ReplaceItemInObject(cJSON_GetObjectItem(st, "verify"), "at",
				  cJSON_CreateString("2026-12-03T08:10:06.000Z"));
	ev = pgm_cli_report_evidence(r, report_time);
	d = cJSON_GetObjectItem(ev, "differences");
	/* the earlier one, then the table of the last report */
	ck_assert_int_eq(cJSON_GetArraySize(d), 2);
	ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(d, 0), "kind")->valuestring, "earlier verification");
	ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(d, 1), "problem")->valuestring,
			 "2 rows differ (missing 1, extra 0, changed 1)");
	ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(d, 1), "found_at")->valuestring,
			 "2026-12-03T08:10:06.000Z");
	ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(d, 1), "resolution")->valuestring,
			 "open: the job stopped in verify_failed with the source still frozen");
	html = pgm_cli_report_html(ev);
	ck_assert_ptr_nonnull(strstr(html, "missing: (id)=(7)<br>changed: (id)=(&lt;9&gt;)<br>"));
	ck_assert_ptr_nonnull(strstr(html, "differences<b>2</b>"));
	ck_assert_ptr_null(strstr(html, "id=\"no-differences\""));
	free(html);
	cJSON_Delete(ev);
	cJSON_Delete(r);
}
END_TEST

/*
 * pgm_job_set_verify keeps a failed report's differences when a new report
 * replaces it, and the report then names the earlier verification's rows,
 * not just its outcome line.
 */
START_TEST(test_earlier_differences_kept)
{
	cJSON *failed = cJSON_Parse(
		"{\"ok\": false, \"mismatches\": 1, \"at\": \"2026-12-03T08:00:54.900Z\", \"tables\": ["
		" {\"table\": \"public.a<b>&c\", \"source_rows\": 37, \"target_rows\": 36, \"match\": false,"
		"  \"differences\": {\"count\": 1, \"missing\": 1, \"extra\": 0, \"changed\": 0,"
		"   \"keys\": [{\"key\": \"(id)=(5)\", \"kind\": \"missing\"}]}},"
		" {\"table\": \"public.accounts\", \"source_rows\": 5000, \"target_rows\": 5000, \"match\": true}],"
		" \"sequences\": [{\"sequence\": \"public.s\", \"match\": true}],"
		" \"schema\": {\"differences\": [], \"ok\": true}}");
	cJSON *last = job->verify, *tpl = cJSON_Duplicate(failed, 1), *r, *ev;
	const cJSON *kept, *d;
	char *html;

	ck_assert_ptr_nonnull(failed);
	job->verify = NULL;
	pgm_job_set_verify(job, failed);
	/* a report replacing none keeps nothing */
	ck_assert_ptr_null(cJSON_GetObjectItem(job->facts, "verifications_failed"));
	pgm_job_set_verify(job, last);
	kept = cJSON_GetObjectItem(job->facts, "verifications_failed");
	ck_assert_int_eq(cJSON_GetArraySize(kept), 1);
	/* the differing table only, with its keys */
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetArrayItem(kept, 0), "tables")), 1);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetArrayItem(kept, 0), "sequences")), 0);
	/* an ok report replaced keeps nothing more */
	pgm_job_set_verify(job, cJSON_Duplicate(tpl, 1));
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(job->facts, "verifications_failed")), 1);
	/* a bounded history: 1 + PGM_VERIFY_HISTORY + 2 failed reports replaced, the 3 oldest go, counted */
	for (int i = 0; i < PGM_VERIFY_HISTORY + 2; i++)
		pgm_job_set_verify(job, cJSON_Duplicate(tpl, 1));
	kept = cJSON_GetObjectItem(job->facts, "verifications_failed");
	ck_assert_int_eq(cJSON_GetArraySize(kept), PGM_VERIFY_HISTORY);
	ck_assert_int_eq((int) pgm_json_num(job->facts, "verifications_failed_omitted", 0), 3);
	cJSON_Delete(tpl);
	/* back to the fixture's last report, and one kept copy, the fixture's failure, for the report */
	pgm_job_set_verify(job, cJSON_Parse(verify_json));
	pgm_json_set(job->facts, "verifications_failed", cJSON_CreateArray());
	cJSON_AddItemToArray(
		cJSON_GetObjectItem(job->facts, "verifications_failed"),
		cJSON_Parse("{\"at\": \"2026-12-03T08:00:54.900Z\", \"mismatches\": 1, \"tables\": ["
			    "{\"table\": \"public.a<b>&c\", \"match\": false, \"differences\": {\"count\": 1,"
			    " \"missing\": 1, \"extra\": 0, \"changed\": 0, \"keys\": [{\"key\": \"(id)=(5)\","
			    " \"kind\": \"missing\"}]}}], \"sequences\": []}"));
	cJSON_DeleteItemFromObject(job->facts, "verifications_failed_omitted");
	r = events_result();
	ev = pgm_cli_report_evidence(r, report_time);
	d = cJSON_GetObjectItem(ev, "differences");
	/* the earlier verification by its rows, not by its outcome line */
	ck_assert_int_eq(cJSON_GetArraySize(d), 1);
	ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(d, 0), "kind")->valuestring, "table");
	ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(d, 0), "object")->valuestring, "public.a<b>&c");
	ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(d, 0), "found_at")->valuestring,
			 "2026-12-03T08:00:54.900Z");
	ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(d, 0), "resolution")->valuestring,
			 "thaw by root (uid 0) at 2026-12-03T08:01:00.000Z (verify_failed → thawing); a later "
			 "verification at 2026-12-03T08:02:35.000Z found no difference");
	html = pgm_cli_report_html(ev);
	ck_assert_ptr_nonnull(strstr(html, "missing: (id)=(5)<br>"));
	free(html);
	cJSON_Delete(ev);
	cJSON_Delete(r);
}
END_TEST

/* a job with nothing yet: every section still there, saying so */
START_TEST(test_empty_job)
{
	cJSON *r = cJSON_Parse("{\"name\": \"new\", \"events\": [], \"chain\": {\"intact\": true, \"lines\": 0},"
			       " \"status\": {\"name\": \"new\", \"state\": \"created\", \"facts\": {}}}");
	cJSON *ev = pgm_cli_report_evidence(r, report_time);
	char *html = pgm_cli_report_html(ev);

	ck_assert_ptr_nonnull(strstr(html, "no preflight recorded"));
	ck_assert_ptr_nonnull(strstr(html, "none: the source was never frozen"));
	ck_assert_ptr_nonnull(strstr(html, "not verified yet"));
	ck_assert_ptr_nonnull(strstr(html, "not opened"));
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetObjectItem(ev, "downtime"), "ms")));
	free(html);
	cJSON_Delete(ev);
	cJSON_Delete(r);
}
END_TEST

Suite *
pgm_test_suite(void)
{
	Suite *s = suite_create("report");
	TCase *tc = tcase_create("report");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_escape);
	tcase_add_test(tc, test_sections);
	tcase_add_test(tc, test_escaped_values);
	tcase_add_test(tc, test_numbers);
	tcase_add_test(tc, test_differences);
	tcase_add_test(tc, test_earlier_differences_kept);
	tcase_add_test(tc, test_empty_job);
	suite_add_tcase(s, tc);
	return s;
}
