/*
 * report.c
 *    The evidence of a migration (pgmover report): one JSON object built
 *    from the daemon's "events" reply -- the parsed audit trail, the hash
 *    chain's verdict and the job's status -- that report_html.c renders as
 *    a self-contained page and --json prints as it is.
 *
 * Nothing here asks the servers anything: every fact is one the job
 * recorded (the preflight's findings and TLS facts, the freeze check, the
 * verification report, the artifacts) or a time the trail wrote. Pure, so
 * the unit tests run it on a fixture job.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "common/json.h"
#include "common/util.h"
#include "pg/dsn.h"

/* an event's time in ms, or -1 */
static int64_t
ev_ms(const cJSON *e)
{
	const char *t = pgm_cli_json_string(e, "time", NULL);

	return t != NULL ? pgm_parse_time(t) : -1;
}

/* a transition: from and to both there and different, or the first line (to only) */
static bool
is_transition(const cJSON *e)
{
	const char *from = pgm_cli_json_string(e, "from", NULL), *to = pgm_cli_json_string(e, "to", NULL);

	return to != NULL && (from == NULL || strcmp(from, to) != 0);
}

/* "root (uid 0)", "pgmoverd" */
static char *
ev_who(const cJSON *e)
{
	const cJSON *uid = cJSON_GetObjectItemCaseSensitive(e, "uid");

	if (pgm_cli_json_string(e, "by", NULL) != NULL)
		return pgm_strdup(pgm_cli_json_string(e, "by", "?"));
	if (!cJSON_IsNumber(uid))
		return pgm_strdup("unknown");
	return pgm_asprintf("%s (uid %.0f)", pgm_cli_json_string(e, "user", "?"), uid->valuedouble);
}

/* the command, or the daemon's event in parentheses */
static char *
ev_command(const cJSON *e)
{
	if (pgm_cli_json_string(e, "command", NULL) != NULL)
		return pgm_strdup(pgm_cli_json_string(e, "command", "?"));
	return pgm_asprintf("(%s)", pgm_cli_json_string(e, "event", "?"));
}

static void
set_owned(cJSON *o, const char *key, char *value)
{
	pgm_json_set_str(o, key, value);
	free(value);
}

/* the timeline: every line of the trail, with who and what */
static cJSON *
timeline(const cJSON *events)
{
	cJSON *out = cJSON_CreateArray();
	const cJSON *e;
	char buf[1024];

	cJSON_ArrayForEach (e, events) {
		cJSON *o = cJSON_CreateObject();

		pgm_json_add_copy(o, "line", cJSON_GetObjectItemCaseSensitive(e, "line"));
		if (pgm_cli_json_string(e, "unreadable", NULL) != NULL) {
			pgm_json_set_str(o, "unreadable", pgm_cli_json_string(e, "unreadable", ""));
			cJSON_AddItemToArray(out, o);
			continue;
		}
		pgm_json_set_str(o, "time", pgm_cli_json_string(e, "time", NULL));
		set_owned(o, "who", ev_who(e));
		pgm_json_add_copy(o, "uid", cJSON_GetObjectItemCaseSensitive(e, "uid"));
		pgm_json_set_str(o, "user", pgm_cli_json_string(e, "user", NULL));
		pgm_json_add_copy(o, "pid", cJSON_GetObjectItemCaseSensitive(e, "pid"));
		set_owned(o, "command", ev_command(e));
		pgm_json_set_str(o, "from", pgm_cli_json_string(e, "from", NULL));
		pgm_json_set_str(o, "to", pgm_cli_json_string(e, "to", NULL));
		pgm_json_set_str(o, "outcome", pgm_cli_event_outcome(e, buf, sizeof(buf)));
		pgm_json_set(o, "transition", cJSON_CreateBool(is_transition(e)));
		cJSON_AddItemToArray(out, o);
	}
	return out;
}

/* each stay in a state, in order: {state, start, end (null: not left), ms} */
static cJSON *
phases(const cJSON *events, int64_t now)
{
	cJSON *out = cJSON_CreateArray(), *open = NULL;
	int64_t open_ms = -1;
	const cJSON *e;
	char ts[40];

	cJSON_ArrayForEach (e, events) {
		int64_t t = ev_ms(e);

		if (!is_transition(e) || t < 0)
			continue;
		if (open != NULL) {
			pgm_json_set_str(open, "end", pgm_cli_json_string(e, "time", NULL));
			pgm_json_set_num(open, "ms", (double) (t - open_ms));
		}
		open = cJSON_CreateObject();
		open_ms = t;
		pgm_json_set_str(open, "state", pgm_cli_json_string(e, "to", "?"));
		pgm_json_set_str(open, "start", pgm_cli_json_string(e, "time", NULL));
		cJSON_AddNullToObject(open, "end");
		cJSON_AddItemToArray(out, open);
	}
	/* the state the job is in: up to now */
	if (open != NULL) {
		pgm_format_time(now, ts, sizeof(ts));
		pgm_json_set_num(open, "ms", (double) (now > open_ms ? now - open_ms : 0));
		pgm_json_set_str(open, "until", ts);
	}
	return out;
}

/*
 * A transition whose end (which: "to" or "from") is state, at or after ms:
 * the first such one, or with last the last one; NULL when there is none.
 */
static const cJSON *
transition_find(const cJSON *events, const char *which, const char *state, int64_t ms, bool last)
{
	const cJSON *e, *found = NULL;

	cJSON_ArrayForEach (e, events) {
		if (!is_transition(e) || strcmp(pgm_cli_json_string(e, which, ""), state) != 0 || ev_ms(e) < ms)
			continue;
		if (!last)
			return e;
		found = e;
	}
	return found;
}

#define entered_after(events, state, ms) transition_find((events), "to", (state), (ms), false)
#define last_entered(events, state) transition_find((events), "to", (state), -1, true)
#define left_after(events, state, ms) transition_find((events), "from", (state), (ms), false)

/*
 * The write downtime: from the last freeze to the end of the cutover that
 * followed (the end of a thaw or an abort when that came first), as the
 * events summary counts it.
 */
static cJSON *
downtime(const cJSON *events, int64_t now)
{
	const cJSON *frz = last_entered(events, "freezing"), *end = NULL, *c;
	static const struct {
		const char *state, *how;
	} ends[] = {{"rollback_window", "cutover done"}, {"synced", "thawed"}, {"aborted", "aborted, source thawed"}};
	const char *how = NULL;
	cJSON *o = cJSON_CreateObject();

	if (frz == NULL) {
		cJSON_AddNullToObject(o, "ms");
		pgm_json_set_str(o, "note", "the source was never frozen");
		return o;
	}
	for (size_t i = 0; i < PGM_ARRAY_LEN(ends); i++) {
		c = entered_after(events, ends[i].state, ev_ms(frz));
		if (c != NULL && (end == NULL || ev_ms(c) < ev_ms(end)))
			end = c, how = ends[i].how;
	}
	pgm_json_set_str(o, "from", pgm_cli_json_string(frz, "time", NULL));
	pgm_json_add_copy(o, "from_line", cJSON_GetObjectItemCaseSensitive(frz, "line"));
	if (end != NULL) {
		pgm_json_set_str(o, "to", pgm_cli_json_string(end, "time", NULL));
		pgm_json_add_copy(o, "to_line", cJSON_GetObjectItemCaseSensitive(end, "line"));
		pgm_json_set_str(o, "ended_by", how);
		pgm_json_set_num(o, "ms", (double) (ev_ms(end) - ev_ms(frz)));
	} else {
		cJSON_AddNullToObject(o, "to");
		pgm_json_set_str(o, "ended_by", "not yet: the source is still frozen");
		pgm_json_set_num(o, "ms", (double) (now - ev_ms(frz)));
	}
	return o;
}

/* a preflight finding of the named check, or NULL */
static const cJSON *
finding(const cJSON *facts, const char *check)
{
	const cJSON *f;

	cJSON_ArrayForEach (
		f, cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(facts, "preflight"), "findings"))
		if (strcmp(pgm_cli_json_string(f, "check", ""), check) == 0)
			return f;
	return NULL;
}

/*
 * One side's connection: the masked URL, the sslmode it asks for (from the
 * URL, else what the preflight's connection used), whether the preflight
 * saw the connection encrypted, and whether the server's certificate (and
 * its host name) is checked: sslmode verify-ca, verify-full.
 */
static cJSON *
connection(const cJSON *status, const char *side)
{
	const cJSON *facts = cJSON_GetObjectItemCaseSensitive(status, "facts");
	const cJSON *sf = cJSON_GetObjectItemCaseSensitive(facts, side), *tls;
	const char *dsn = pgm_cli_json_string(status, side, NULL);
	char *check = pgm_asprintf("TLS to the %s", side), *err = NULL;
	const char *mode = pgm_cli_json_string(sf, "sslmode", NULL);
	pgm_dsn_t d = {0};
	cJSON *o = cJSON_CreateObject();

	pgm_json_set_str(o, "side", side);
	pgm_json_set_str(o, "url", dsn);
	if (dsn != NULL && pgm_dsn_parse(dsn, &d, &err)) {
		pgm_json_set_str(o, "host", d.host);
		pgm_json_set_str(o, "port", d.port);
		pgm_json_set_str(o, "database", d.dbname);
		pgm_json_set_str(o, "user", d.user);
		pgm_json_set_str(o, "url_sslmode", d.sslmode);
		if (d.sslmode != NULL)
			mode = d.sslmode;
	}
	free(err);
	pgm_json_set_str(o, "sslmode", mode ? mode : "prefer");
	pgm_json_set_str(o, "sslmode_from", d.sslmode ? "url" : sf && mode ? "preflight connection" : "libpq default");
	tls = cJSON_GetObjectItemCaseSensitive(sf, "tls");
	pgm_json_set(o, "encrypted", cJSON_IsBool(tls) ? cJSON_CreateBool(cJSON_IsTrue(tls)) : cJSON_CreateNull());
	mode = pgm_cli_json_string(o, "sslmode", "prefer");
	pgm_json_set(o, "certificate_checked",
		     cJSON_CreateBool(strcmp(mode, "verify-ca") == 0 || strcmp(mode, "verify-full") == 0));
	pgm_json_set(o, "host_name_checked", cJSON_CreateBool(strcmp(mode, "verify-full") == 0));
	pgm_json_add_copy(o, "local", cJSON_GetObjectItemCaseSensitive(sf, "local"));
	pgm_json_set_str(o, "server_version", pgm_cli_json_string(sf, "server_version", NULL));
	pgm_json_set_str(o, "role", pgm_cli_json_string(sf, "user", NULL));
	pgm_json_add_copy(o, "superuser", cJSON_GetObjectItemCaseSensitive(sf, "superuser"));
	pgm_json_add_copy(o, "tls_finding", finding(facts, check));
	free(check);
	pgm_dsn_free(&d);
	return o;
}

/* the freeze check's facts, and whether they prove the freeze held */
static cJSON *
freeze_proof(const cJSON *status)
{
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(status, "facts"), "freeze");
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(f, "check");
	cJSON *o = cJSON_CreateObject();
	double since;

	pgm_json_set_str(o, "started_at", pgm_cli_json_string(f, "started_at", NULL));
	pgm_json_add_copy(o, "sessions_terminated", cJSON_GetObjectItemCaseSensitive(f, "sessions_terminated"));
	pgm_json_add_copy(o, "row_changes_at_freeze", cJSON_GetObjectItemCaseSensitive(f, "row_changes_at_freeze"));
	pgm_json_add_copy(o, "row_changes_since_freeze",
			  cJSON_GetObjectItemCaseSensitive(c, "row_changes_since_freeze"));
	pgm_json_add_copy(o, "wal_bytes_since_freeze", cJSON_GetObjectItemCaseSensitive(c, "wal_bytes_since_freeze"));
	pgm_json_add_copy(o, "write_sessions", cJSON_GetObjectItemCaseSensitive(c, "write_sessions"));
	pgm_json_set_str(o, "lsn_at_freeze", pgm_cli_json_string(f, "lsn_at_freeze", NULL));
	pgm_json_set_str(o, "checked_at", pgm_cli_json_string(c, "at", NULL));
	if (pgm_cli_json_number(c, "row_changes_since_freeze", &since)) {
		pgm_json_set(o, "held", cJSON_CreateBool(since == 0));
		pgm_json_set_str(o, "verdict",
				 since == 0 ? "held: the row-change counters of every user table did not move between "
					      "the freeze and the end of the final copy"
					    : "BROKEN: rows changed on the source after the freeze");
	} else {
		cJSON_AddNullToObject(o, "held");
		pgm_json_set_str(o, "verdict",
				 f != NULL ? "the freeze check has not run" : "the source was never frozen");
	}
	return o;
}

/* each table's counts and checksums on both sides */
static cJSON *
tables(const cJSON *verify)
{
	cJSON *out = cJSON_CreateArray();
	const cJSON *t;

	cJSON_ArrayForEach (t, cJSON_GetObjectItemCaseSensitive(verify, "tables")) {
		cJSON *o = cJSON_CreateObject();
		static const char *const keys[] = {"table",           "source_rows", "target_rows", "source_checksum",
						   "target_checksum", "match",       "method",      "problem"};

		for (size_t i = 0; i < PGM_ARRAY_LEN(keys); i++)
			pgm_json_add_copy(o, keys[i], cJSON_GetObjectItemCaseSensitive(t, keys[i]));
		cJSON_AddItemToArray(out, o);
	}
	return out;
}

/*
 * What became of the differences of a verification at ms: the first
 * transition out of verify_failed after it (a thaw, an abort, a new
 * verify), and whether a later verification matched.
 */
static char *
resolution(const cJSON *events, int64_t ms)
{
	const cJSON *left = left_after(events, "verify_failed", ms), *ok;
	char *who, *cmd, *r;

	if (left == NULL)
		return pgm_strdup("open: the job stopped in verify_failed with the source still frozen");
	who = ev_who(left);
	cmd = ev_command(left);
	ok = entered_after(events, "verified", ev_ms(left));
	if (ok != NULL)
		r = pgm_asprintf("%s by %s at %s (%s → %s); a later verification at %s found no difference", cmd, who,
				 pgm_cli_json_string(left, "time", "?"), pgm_cli_json_string(left, "from", "?"),
				 pgm_cli_json_string(left, "to", "?"), pgm_cli_json_string(ok, "time", "?"));
	else
		r = pgm_asprintf("%s by %s at %s (%s → %s)", cmd, who, pgm_cli_json_string(left, "time", "?"),
				 pgm_cli_json_string(left, "from", "?"), pgm_cli_json_string(left, "to", "?"));
	free(who);
	free(cmd);
	return r;
}

/* one difference: what, the problem, its detail, the verification that found it, its resolution */
static void
difference_add(cJSON *out, const char *kind, const char *object, const char *problem, const cJSON *detail,
	       const char *found_at, const char *res)
{
	cJSON *o = cJSON_CreateObject();

	pgm_json_set_str(o, "kind", kind);
	pgm_json_set_str(o, "object", object);
	pgm_json_set_str(o, "problem", problem);
	if (detail != NULL)
		pgm_json_add_copy(o, "detail", detail);
	pgm_json_set_str(o, "found_at", found_at);
	pgm_json_set_str(o, "resolution", res);
	cJSON_AddItemToArray(out, o);
}

/*
 * The differences of one verification report, or of the copy the daemon
 * kept of an earlier one (facts.verifications_failed: its differences
 * only): tables with their keys, sequences, schema.
 */
static void
report_differences(cJSON *out, const cJSON *v, const cJSON *events)
{
	const char *at = pgm_cli_json_string(v, "at", NULL);
	char *res = resolution(events, at ? pgm_parse_time(at) : -1), buf[256];
	const cJSON *t;

	cJSON_ArrayForEach (t, cJSON_GetObjectItemCaseSensitive(v, "tables")) {
		const cJSON *d = cJSON_GetObjectItemCaseSensitive(t, "differences");
		double n = 0;

		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t, "match")))
			continue;
		pgm_cli_json_number(d, "count", &n);
		snprintf(buf, sizeof(buf), "%s", pgm_cli_json_string(t, "problem", ""));
		if (buf[0] == '\0')
			snprintf(buf, sizeof(buf), "%.0f rows differ (missing %.0f, extra %.0f, changed %.0f)", n,
				 pgm_json_num(d, "missing", 0), pgm_json_num(d, "extra", 0),
				 pgm_json_num(d, "changed", 0));
		difference_add(out, "table", pgm_cli_json_string(t, "table", "?"), buf,
			       cJSON_GetObjectItemCaseSensitive(d, "keys"), at, res);
	}
	cJSON_ArrayForEach (t, cJSON_GetObjectItemCaseSensitive(v, "sequences"))
		if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t, "match")))
			difference_add(out, "sequence", pgm_cli_json_string(t, "sequence", "?"),
				       pgm_cli_json_string(t, "problem", "differs"), NULL, at, res);
	cJSON_ArrayForEach (
		t, cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(v, "schema"), "differences"))
		difference_add(out, pgm_cli_json_string(t, "kind", "schema"), pgm_cli_json_string(t, "object", "?"),
			       pgm_cli_json_string(t, "problem", "differs"), NULL, at, res);
	free(res);
}

/*
 * Every difference found, oldest first: those of the verifications before
 * the last one, from the copies the daemon kept of them, then the last
 * report's. A failed verification the trail records but no copy covers
 * (omitted past the daemon's bound, or written by an older pgmoverd) is
 * named by its audit line and outcome.
 */
static cJSON *
differences(const cJSON *status, const cJSON *events)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(status, "verify"), *e, *k;
	const cJSON *facts = cJSON_GetObjectItemCaseSensitive(status, "facts");
	const cJSON *kept = cJSON_GetObjectItemCaseSensitive(facts, "verifications_failed");
	const char *at = pgm_cli_json_string(v, "at", NULL);
	int64_t at_ms = at ? pgm_parse_time(at) : -1;
	int failed = 0, uncovered;
	char buf[256];
	cJSON *out = cJSON_CreateArray();

	cJSON_ArrayForEach (e, events)
		if (is_transition(e) && strcmp(pgm_cli_json_string(e, "to", ""), "verify_failed") == 0 &&
		    (at_ms < 0 || ev_ms(e) < at_ms))
			failed++;
	/* the oldest failures the kept copies do not reach */
	uncovered = failed - cJSON_GetArraySize(kept);
	cJSON_ArrayForEach (e, events) {
		char *res;

		if (uncovered <= 0)
			break;
		if (!is_transition(e) || strcmp(pgm_cli_json_string(e, "to", ""), "verify_failed") != 0 ||
		    (at_ms >= 0 && ev_ms(e) >= at_ms))
			continue;
		uncovered--;
		res = resolution(events, ev_ms(e));
		snprintf(buf, sizeof(buf), "verification at %s (audit line %.0f)", pgm_cli_json_string(e, "time", "?"),
			 pgm_json_num(e, "line", 0));
		difference_add(out, "earlier verification", buf, pgm_cli_json_string(e, "outcome", "failed"), NULL,
			       pgm_cli_json_string(e, "time", NULL), res);
		free(res);
	}
	cJSON_ArrayForEach (k, kept)
		report_differences(out, k, events);
	report_differences(out, v, events);
	return out;
}

/* what pgmover created or changed on each server, and when it was removed */
static cJSON *
artifacts(const cJSON *status)
{
	cJSON *out = cJSON_CreateArray();
	const char *state = pgm_cli_json_string(status, "state", "");
	const cJSON *a;

	cJSON_ArrayForEach (a, cJSON_GetObjectItemCaseSensitive(status, "artifacts")) {
		cJSON *o = cJSON_CreateObject();
		const char *removed = pgm_cli_json_string(a, "dropped_at", pgm_cli_json_string(a, "undone_at", NULL));
		const char *kind = pgm_cli_json_string(a, "kind", "?");

		pgm_json_set_str(o, "side", pgm_cli_json_string(a, "side", NULL));
		pgm_json_set_str(o, "kind", kind);
		pgm_json_set_str(o, "name", pgm_cli_json_string(a, "name", NULL));
		pgm_json_set_str(o, "setting", pgm_cli_json_string(a, "setting", NULL));
		pgm_json_set_str(o, "created_at", pgm_cli_json_string(a, "at", NULL));
		pgm_json_set_str(o, "status", pgm_cli_json_string(a, "status", NULL));
		pgm_json_set_str(o, "removed_at", removed);
		if (removed != NULL)
			pgm_json_set_str(o, "left", "removed");
		else if (strcmp(pgm_cli_json_string(a, "status", ""), "found") == 0)
			pgm_json_set_str(o, "left", "was there before: never pgmover's to remove");
		else if (strcmp(kind, "db_setting") == 0 || strcmp(kind, "role_setting") == 0)
			pgm_json_set_str(o, "left",
					 strcmp(state, "completed") == 0
						 ? "kept: the source stays frozen after the migration, so that a "
						   "forgotten writer fails loudly"
						 : "in place");
		else
			pgm_json_set_str(o, "left", "in place");
		cJSON_AddItemToArray(out, o);
	}
	return out;
}

/* when the rollback window opened, its deadline, when and how it closed */
static cJSON *
rollback_window(const cJSON *status, const cJSON *events)
{
	const cJSON *in = last_entered(events, "rollback_window"), *out, *facts;
	cJSON *o = cJSON_CreateObject();
	char *who;

	facts = cJSON_GetObjectItemCaseSensitive(status, "facts");
	if (in == NULL) {
		pgm_json_set(o, "opened", cJSON_CreateFalse());
		return o;
	}
	pgm_json_set(o, "opened", cJSON_CreateTrue());
	pgm_json_set_str(o, "opened_at", pgm_cli_json_string(in, "time", NULL));
	pgm_json_set_str(o, "deadline", pgm_cli_json_string(status, "rollback_deadline", NULL));
	out = left_after(events, "rollback_window", ev_ms(in));
	if (out != NULL) {
		pgm_json_set_str(o, "closed_at", pgm_cli_json_string(out, "time", NULL));
		set_owned(o, "closed_by", ev_command(out));
		who = ev_who(out);
		set_owned(o, "closed_by_who", who);
		pgm_json_set_str(o, "closed_to", pgm_cli_json_string(out, "to", NULL));
		pgm_json_set_num(o, "ms", (double) (ev_ms(out) - ev_ms(in)));
	}
	pgm_json_add_copy(o, "reverse", cJSON_GetObjectItemCaseSensitive(facts, "reverse"));
	pgm_json_add_copy(o, "reverse_lag", cJSON_GetObjectItemCaseSensitive(facts, "reverse_lag"));
	/* what it did not carry back, and whether a rollback accepted losing it */
	pgm_json_add_copy(o, "accept_loss", cJSON_GetObjectItemCaseSensitive(facts, "rollback_accept_loss"));
	pgm_json_add_copy(o, "lost_writes_to",
			  cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(facts, "rollback"),
							   "lost_writes_to"));
	return o;
}

/*
 * pgm_cli_report_evidence builds the report's evidence from the result of
 * an "events" reply (events, chain, status); now is the time of the report
 * (and the end of a stay not ended). The caller owns the object.
 */
cJSON *
pgm_cli_report_evidence(const cJSON *result, int64_t now)
{
	const cJSON *status = cJSON_GetObjectItemCaseSensitive(result, "status");
	const cJSON *events = cJSON_GetObjectItemCaseSensitive(result, "events");
	const cJSON *facts = cJSON_GetObjectItemCaseSensitive(status, "facts");
	const cJSON *verify = cJSON_GetObjectItemCaseSensitive(status, "verify");
	const cJSON *pre = cJSON_GetObjectItemCaseSensitive(facts, "preflight");
	cJSON *r = cJSON_CreateObject(), *c, *v;
	char ts[40];

	pgm_format_time(now, ts, sizeof(ts));
	pgm_json_set_str(r, "job", pgm_cli_json_string(status, "name", pgm_cli_json_string(result, "name", "?")));
	pgm_json_set_str(r, "method", pgm_cli_json_string(status, "method", NULL));
	pgm_json_set_str(r, "state", pgm_cli_json_string(status, "state", NULL));
	pgm_json_set_str(r, "created_at", pgm_cli_json_string(status, "created_at", NULL));
	pgm_json_set_str(r, "generated_at", ts);
	c = cJSON_AddArrayToObject(r, "connections");
	cJSON_AddItemToArray(c, connection(status, "source"));
	cJSON_AddItemToArray(c, connection(status, "target"));
	c = cJSON_AddObjectToObject(r, "preflight");
	pgm_json_add_copy(c, "ok", cJSON_GetObjectItemCaseSensitive(pre, "ok"));
	pgm_json_set(c, "findings",
		     cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(pre, "findings"))
			     ? cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(pre, "findings"), 1)
			     : cJSON_CreateArray());
	pgm_json_add_copy(c, "recommendation", cJSON_GetObjectItemCaseSensitive(pre, "recommendation"));
	cJSON_AddItemToObject(r, "timeline", timeline(events));
	pgm_json_add_copy(r, "omitted", cJSON_GetObjectItemCaseSensitive(result, "omitted"));
	cJSON_AddItemToObject(r, "phases", phases(events, now));
	cJSON_AddItemToObject(r, "freeze", freeze_proof(status));
	cJSON_AddItemToObject(r, "downtime", downtime(events, now));
	v = cJSON_AddObjectToObject(r, "verification");
	pgm_json_set_str(v, "at", pgm_cli_json_string(verify, "at", NULL));
	pgm_json_add_copy(v, "ok", cJSON_GetObjectItemCaseSensitive(verify, "ok"));
	pgm_json_add_copy(v, "mismatches", cJSON_GetObjectItemCaseSensitive(verify, "mismatches"));
	pgm_json_set_str(v, "hash", pgm_cli_json_string(verify, "hash", NULL));
	cJSON_AddItemToObject(v, "tables", tables(verify));
	pgm_json_set(v, "sequences",
		     cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(verify, "sequences"))
			     ? cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(verify, "sequences"), 1)
			     : cJSON_CreateArray());
	pgm_json_add_copy(v, "schema_objects_compared",
			  cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(verify, "schema"),
							   "objects_compared"));
	cJSON_AddItemToObject(r, "differences", differences(status, events));
	cJSON_AddItemToObject(r, "artifacts", artifacts(status));
	cJSON_AddItemToObject(r, "rollback_window", rollback_window(status, events));
	pgm_json_add_copy(r, "chain", cJSON_GetObjectItemCaseSensitive(result, "chain"));
	return r;
}
