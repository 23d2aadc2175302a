/*
 * plan_eval.c — the preflight's decisions: from the facts gathered on both
 * servers to findings, each with what to do about it, and a recommended
 * method. Pure: no I/O, so the unit tests feed it fixtures.
 */
#include "common/json.h"
#include "common/util.h"
#include "common/settings.h"
#include "pipeline/plan/plan.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GIB (1024.0 * 1024.0 * 1024.0)
#define MIB (1024.0 * 1024.0)

typedef struct eval {
	cJSON *report;
	cJSON *findings;
	int errors, warnings;
} eval_t;

static void add(eval_t *ev, const char *check, const char *status, const char *fix, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static void
add(eval_t *ev, const char *check, const char *status, const char *fix, const char *fmt, ...)
{
	cJSON *f = cJSON_CreateObject();
	char buf[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	pgm_json_set_str(f, "check", check);
	pgm_json_set_str(f, "status", status);
	pgm_json_set_str(f, "finding", buf);
	if (fix)
		pgm_json_set_str(f, "fix", fix);
	cJSON_AddItemToArray(ev->findings, f);
	if (strcmp(status, "error") == 0)
		ev->errors++;
	else if (strcmp(status, "warning") == 0)
		ev->warnings++;
}

static bool
flag(const cJSON *o, const char *key)
{
	return cJSON_IsTrue(cJSON_GetObjectItem(o, key));
}

static const char *
str(const cJSON *o, const char *key)
{
	const char *s = pgm_json_str(o, key);

	return s ? s : "";
}

/* "a, b, c" from the first names of a {count, names} list */
static void
join_names(const cJSON *list, char *buf, size_t len)
{
	const cJSON *it;
	size_t n = 0;

	buf[0] = '\0';
	cJSON_ArrayForEach (it, cJSON_GetObjectItem(list, "names")) {
		int w = snprintf(buf + n, len - n, "%s%s", n ? ", " : "", it->valuestring);
		if (w < 0 || (size_t) w >= len - n)
			break;
		n += (size_t) w;
	}
	if (pgm_json_num(list, "count", 0) > 20 && n + 8 < len)
		strcat(buf, ", ...");
}

/*
 * The target gets every row of the source: over a network that must be
 * encrypted (Heroku Shield's health data above all), and the server's
 * certificate checked if the connection is to be trusted. A target on this
 * machine (loopback, Unix socket) needs neither.
 */
static void
check_target_tls(eval_t *ev, const cJSON *dst)
{
	const char *mode = str(dst, "sslmode");
	bool verified = strcmp(mode, "verify-ca") == 0 || strcmp(mode, "verify-full") == 0;

	if (flag(dst, "tls") && verified)
		add(ev, "TLS to the target", "ok", NULL,
		    "the connection to the target is encrypted and the server's certificate checked (sslmode=%s)",
		    mode);
	else if (flag(dst, "tls"))
		add(ev, "TLS to the target", "info",
		    "use sslmode=verify-full and sslrootcert=FILE (the CA of the target's certificate) in the target URL",
		    "the connection to the target is encrypted, but the server's certificate is not checked (sslmode=%s)",
		    mode);
	else if (flag(dst, "local"))
		add(ev, "TLS to the target", "ok", NULL,
		    "the target is on this machine (%s): the copy crosses no network", str(dst, "host"));
	else
		add(ev, "TLS to the target", "warning",
		    "add sslmode=verify-full and sslrootcert=FILE to the target URL (sslmode=require at the least)",
		    "the connection to the target (%s) is not encrypted: every row would cross the network in clear "
		    "(Heroku Shield data must stay encrypted in transit)",
		    str(dst, "host"));
}

/* reachable: a side that could not be inspected stops its checks */
static bool
check_reachable(eval_t *ev, const cJSON *side, const char *name)
{
	const cJSON *err = cJSON_GetObjectItem(side, "error");
	char check[32];

	snprintf(check, sizeof(check), "%s reachable", name);
	if (err == NULL) {
		add(ev, check, "ok", NULL, "connected to the %s: PostgreSQL %s, database %s as %s", name,
		    str(side, "server_version"), str(side, "database"), str(side, "user"));
		return true;
	}
	add(ev, check, "error",
	    pgm_json_str(err, "hint") ? pgm_json_str(err, "hint")
	    : strcmp(name, "source") == 0
		    ? "check host, port, user, password and database name in the source URL (Heroku needs sslmode=require)"
		    : "check host, port, user, password and database name in the target URL",
	    "%s: %s", str(err, "what"), str(err, "message"));
	return false;
}

static void
check_versions(eval_t *ev, const cJSON *src, const cJSON *dst)
{
	int sv = (int) pgm_json_num(src, "server_version_num", 0) / 10000;
	int tv = (int) pgm_json_num(dst, "server_version_num", 0) / 10000;

	if (tv < sv)
		add(ev, "server versions", "error", "use a target of the same or a newer major version",
		    "the target runs PostgreSQL %d, older than the source's %d", tv, sv);
	else
		add(ev, "server versions", "ok", NULL, "source PostgreSQL %d, target PostgreSQL %d", sv, tv);
}

static void
check_source_role(eval_t *ev, const cJSON *src, const cJSON *options)
{
	const cJSON *unreadable = cJSON_GetObjectItem(src, "unreadable");
	const cJSON *rls = cJSON_GetObjectItem(src, "row_security_applies");
	const char *mode = pgm_jobopt_str(options, "freeze_mode");
	bool su = flag(src, "superuser");
	char names[1024];

	if (pgm_json_num(unreadable, "count", 0) > 0) {
		join_names(unreadable, names, sizeof(names));
		add(ev, "source privileges: read", "error",
		    "GRANT SELECT on them (and USAGE on their schemas; GRANT SELECT ON LARGE OBJECT n for a large "
		    "object) to this role, or use the credential that owns them (on Heroku, the default credential)",
		    "role %s cannot read %d object(s): %s", str(src, "user"),
		    (int) pgm_json_num(unreadable, "count", 0), names);
	} else {
		add(ev, "source privileges: read", "ok", NULL,
		    "role %s can read every table, view, sequence and large object", str(src, "user"));
	}
	if (pgm_json_num(rls, "count", 0) > 0) {
		join_names(rls, names, sizeof(names));
		add(ev, "source privileges: row-level security", "error",
		    "as each table's owner, ALTER TABLE ... NO FORCE ROW LEVEL SECURITY for the migration (and FORCE "
		    "again after it), or connect as the owner of the tables that are not this role's",
		    "row-level security policies apply to role %s on %d table(s): a copy under them would miss the "
		    "rows they hide, so pgmover reads with row_security = off and these tables would fail: %s",
		    str(src, "user"), (int) pgm_json_num(rls, "count", 0), names);
	}
	if (strcmp(mode, "command") != 0 && !su && !flag(src, "owns_database"))
		add(ev, "source privileges: freeze", "error",
		    "use the database owner's credential (Heroku's default credential owns the database), or "
		    "freeze_mode = command with a maintenance-mode freeze_command",
		    "role %s does not own database %s, so it cannot ALTER DATABASE ... SET "
		    "default_transaction_read_only to freeze writes",
		    str(src, "user"), str(src, "database"));
	else if (!su && !flag(src, "can_signal_backends"))
		add(ev, "source privileges: freeze", "warning",
		    "GRANT pg_signal_backend TO the role, or stop the application's writers yourself before freezing",
		    "role %s may not end other roles' sessions: the freeze can only end its own", str(src, "user"));
	else
		add(ev, "source privileges: freeze", "ok", NULL,
		    "role %s can make the database read-only and end its sessions%s", str(src, "user"),
		    su ? " (superuser)" : " (database owner, member of pg_signal_backend)");
}

static void
check_target_empty(eval_t *ev, const cJSON *dst, const cJSON *options, bool target_owned)
{
	int tables = (int) pgm_json_num(dst, "user_tables", 0);

	if (tables == 0 || target_owned)
		add(ev, "target empty", "ok", NULL,
		    target_owned ? "the target's contents were restored by this job"
				 : "the target database holds no tables");
	else if (pgm_jobopt_bool(options, "overwrite_target"))
		add(ev, "target empty", "warning", NULL,
		    "the target database holds %d table(s); overwrite_target = on: they will be dropped and replaced",
		    tables);
	else {
		char names[1024];
		join_names(cJSON_GetObjectItem(dst, "existing_tables"), names, sizeof(names));
		add(ev, "target empty", "error",
		    "point the job at an empty database, or set overwrite_target = on to replace what is there",
		    "the target database already holds %d table(s): %s", tables, names);
	}
}

static bool
has_name(const cJSON *arr, const char *name)
{
	const cJSON *it;

	cJSON_ArrayForEach (it, arr) {
		if (cJSON_IsString(it) && strcmp(it->valuestring, name) == 0)
			return true;
	}
	return false;
}

static void
check_extensions(eval_t *ev, const cJSON *src, const cJSON *dst)
{
	const cJSON *avail = cJSON_GetObjectItem(dst, "available_extensions");
	const cJSON *e;
	int used = 0, heroku_ext = 0;
	char list[1024] = "";

	cJSON_ArrayForEach (e, cJSON_GetObjectItem(src, "extensions")) {
		const char *name = str(e, "name");

		if (strcmp(name, "plpgsql") == 0)
			continue;
		used++;
		if (strlen(list) + strlen(name) + 3 < sizeof(list))
			snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", list[0] ? ", " : "", name);
		if (strcmp(str(e, "schema"), "heroku_ext") == 0)
			heroku_ext++;
		if (!has_name(avail, name)) {
			char check[128], fix[256];
			snprintf(check, sizeof(check), "extension %s", name);
			snprintf(
				fix, sizeof(fix),
				"install the package that provides %s on the target server, or drop the extension from "
				"the source if it is unused",
				name);
			add(ev, check, "error", fix,
			    "extension %s %s is used on the source but not available on the target", name,
			    str(e, "version"));
		}
	}
	if (used == 0)
		add(ev, "extensions", "ok", NULL, "the source uses no extension besides plpgsql");
	else
		add(ev, "extensions", "ok", NULL, "extensions used on the source: %s", list);
	if (heroku_ext > 0)
		add(ev, "extensions: heroku_ext", "info",
		    "keep heroku_ext on the application's search_path on the target, as on Heroku",
		    "%d extension(s) live in Heroku's heroku_ext schema; the restore creates that schema on the target "
		    "and installs them there",
		    heroku_ext);
}

static void
check_encoding(eval_t *ev, const cJSON *src, const cJSON *dst)
{
	if (strcmp(str(src, "encoding"), str(dst, "encoding")) != 0)
		add(ev, "encoding", "error", "create the target database with the source's ENCODING",
		    "the source database is %s, the target %s: text would be converted or rejected",
		    str(src, "encoding"), str(dst, "encoding"));
	else
		add(ev, "encoding", "ok", NULL, "both databases use %s", str(src, "encoding"));
	if (strcmp(str(src, "lc_collate"), str(dst, "lc_collate")) != 0 ||
	    strcmp(str(src, "lc_ctype"), str(dst, "lc_ctype")) != 0)
		add(ev, "collation", "warning",
		    "create the target database with the source's LC_COLLATE and LC_CTYPE if the application relies on "
		    "the order of text",
		    "collation differs (source %s/%s, target %s/%s): ORDER BY on text may return another order",
		    str(src, "lc_collate"), str(src, "lc_ctype"), str(dst, "lc_collate"), str(dst, "lc_ctype"));
	else
		add(ev, "collation", "ok", NULL, "both databases use collation %s", str(src, "lc_collate"));
}

/* enough connections for the copy: jobs streams per side, plus control */
static void
check_connections(eval_t *ev, const cJSON *side, const char *name, int needed)
{
	int free_server = (int) pgm_json_num(side, "connections_free", 1000);
	int role_limit = (int) pgm_json_num(side, "role_connection_limit", -1);
	int role_used = (int) pgm_json_num(side, "role_connections", 0);
	int db_limit = (int) pgm_json_num(side, "database_connection_limit", -1);
	int db_used = (int) pgm_json_num(side, "database_connections", 0);
	char check[48];

	snprintf(check, sizeof(check), "%s connections", name);
	if (free_server < needed)
		add(ev, check, "error", "lower jobs, or close other connections (Heroku plans allow 20 to 500)",
		    "the %s has %d free connection(s); the copy needs %d", name, free_server, needed);
	else if (role_limit >= 0 && role_limit - role_used < needed)
		add(ev, check, "error", "lower jobs, or raise the role's CONNECTION LIMIT",
		    "role %s may open %d more connection(s) on the %s; the copy needs %d", str(side, "user"),
		    role_limit - role_used, name, needed);
	else if (db_limit >= 0 && db_limit - db_used < needed)
		add(ev, check, "error", "lower jobs, or raise the database's CONNECTION LIMIT",
		    "database %s allows %d more connection(s); the copy needs %d", str(side, "database"),
		    db_limit - db_used, needed);
	else
		add(ev, check, "ok", NULL, "the %s has room for the %d connections the copy uses", name, needed);
}

/* ---- method pglogical: logical replication from the source to the target ---- */

/* "a, b" lists hold items like "pgoutput" or "'pgoutput'": look for one */
static bool
list_has(const char *list, const char *item)
{
	size_t n = strlen(item);

	for (const char *p = list; (p = strstr(p, item)) != NULL; p += n) {
		bool start = p == list || strchr(" ,'\"", p[-1]) != NULL;
		bool end = p[n] == '\0' || strchr(" ,'\"", p[n]) != NULL;
		if (start && end)
			return true;
	}
	return false;
}

static const char *const not_possible =
	"use --method dump: it works with the database owner's credential (Heroku's default one)";

/* the role creates nodes, slots and subscriptions: only a superuser may */
static bool
check_pgl_role(eval_t *ev, const cJSON *side, const char *name)
{
	char check[64];

	snprintf(check, sizeof(check), "pglogical: %s role", name);
	if (flag(side, "superuser")) {
		add(ev, check, "ok", NULL, "role %s is a superuser on the %s", str(side, "user"), name);
		return true;
	}
	if (strcmp(name, "source") == 0)
		add(ev, check, "error", not_possible,
		    "role %s is not a superuser: pglogical needs one on the source to create its node and replication "
		    "slot, so this source cannot be migrated with pglogical (Heroku's default credential is not a "
		    "superuser and Heroku offers no logical replication)",
		    str(side, "user"));
	else
		add(ev, check, "error", "use a superuser of the target in the target URL, or --method dump",
		    "role %s is not a superuser: pglogical needs one on the target to create its node and subscription",
		    str(side, "user"));
	return false;
}

/* pglogical preloaded and installable */
static void
check_pgl_library(eval_t *ev, const cJSON *side, const char *name)
{
	const char *preload = pgm_json_str(side, "shared_preload_libraries");
	char check[64];

	snprintf(check, sizeof(check), "pglogical on the %s", name);
	if (!flag(side, "pglogical_available"))
		add(ev, check, "error",
		    "install pglogical 2 for this PostgreSQL version (Debian: postgresql-15-pglogical), or --method dump",
		    "the pglogical extension is not installed on the %s server", name);
	else if (preload && !list_has(preload, "pglogical"))
		add(ev, check, "error",
		    "add pglogical to shared_preload_libraries (ALTER SYSTEM SET shared_preload_libraries = ..., "
		    "then restart the server)",
		    "pglogical is not in shared_preload_libraries on the %s (\"%s\"): its workers cannot run", name,
		    preload);
	else
		add(ev, check, "ok", NULL, "pglogical is available and preloaded on the %s%s%s", name,
		    pgm_json_str(side, "pglogical_version") ? ", extension installed, version " : "",
		    pgm_json_str(side, "pglogical_version") ? pgm_json_str(side, "pglogical_version") : "");
}

/* free replication slots, wal senders and background workers */
static void
check_pgl_capacity(eval_t *ev, const cJSON *side, const char *name, int slots, int senders, int workers)
{
	int free_slots = (int) (pgm_json_num(side, "max_replication_slots", 0) -
				pgm_json_num(side, "replication_slots_used", 0));
	int free_senders = (int) (pgm_json_num(side, "max_wal_senders", 0) - pgm_json_num(side, "wal_senders_used", 0));
	int free_workers =
		(int) (pgm_json_num(side, "max_worker_processes", 0) - pgm_json_num(side, "worker_processes_used", 0));
	char check[64];

	snprintf(check, sizeof(check), "pglogical: %s capacity", name);
	if (free_slots < slots)
		add(ev, check, "error", "raise max_replication_slots (restart needed) or drop unused slots",
		    "the %s has %d free replication slot(s) of %d; pglogical needs %d", name, free_slots,
		    (int) pgm_json_num(side, "max_replication_slots", 0), slots);
	else if (free_senders < senders)
		add(ev, check, "error", "raise max_wal_senders (restart needed)",
		    "the %s has %d free WAL sender(s) of %d; pglogical needs %d (the stream and the initial copy)",
		    name, free_senders, (int) pgm_json_num(side, "max_wal_senders", 0), senders);
	else if (free_workers < workers)
		add(ev, check, "error", "raise max_worker_processes (restart needed)",
		    "the %s has %d free background worker(s) of %d; pglogical needs %d", name, free_workers,
		    (int) pgm_json_num(side, "max_worker_processes", 0), workers);
	else
		add(ev, check, "ok", NULL,
		    "the %s has room: %d free replication slot(s), %d WAL sender(s), %d background worker(s)", name,
		    free_slots, free_senders, free_workers);
}

static void
check_pglogical(eval_t *ev, const cJSON *src, const cJSON *dst, const cJSON *options, bool src_ok, bool dst_ok,
		bool src_super)
{
	const char *opl = pgm_json_str(src, "output_plugin_libraries");
	const cJSON *noid = cJSON_GetObjectItem(src, "tables_without_replica_identity");
	const cJSON *unlogged = cJSON_GetObjectItem(src, "unlogged_tables");
	char names[1024];

	if (src_ok && src_super) {
		if (strcmp(str(src, "wal_level"), "logical") != 0)
			add(ev, "pglogical: wal_level", "error",
			    "ALTER SYSTEM SET wal_level = logical and restart the source (impossible on Heroku: use --method dump)",
			    "the source has wal_level = %s: logical decoding needs wal_level = logical",
			    str(src, "wal_level"));
		else
			add(ev, "pglogical: wal_level", "ok", NULL, "the source has wal_level = logical");
		check_pgl_library(ev, src, "source");
		if (opl && !list_has(opl, "pglogical_output"))
			add(ev, "pglogical: output plugin", "error",
			    "ALTER SYSTEM SET output_plugin_libraries = pgoutput, test_decoding, pglogical_output; then "
			    "SELECT pg_reload_conf() on the source",
			    "the source's output_plugin_libraries (\"%s\") does not list pglogical_output: the subscription "
			    "could not create its replication slot",
			    opl);
		check_pgl_capacity(ev, src, "source", 1, 2, 1);
		if (pgm_json_str(src, "pglogical_node"))
			add(ev, "pglogical: source node", "info", NULL,
			    "the source already is pglogical node %s: pgmover adds its own replication sets to it and leaves "
			    "the node in place",
			    pgm_json_str(src, "pglogical_node"));
	}
	if (src_ok) {
		if (pgm_json_num(unlogged, "count", 0) > 0) {
			join_names(unlogged, names, sizeof(names));
			add(ev, "pglogical: unlogged tables", "error",
			    "ALTER TABLE ... SET LOGGED on them, or use --method dump",
			    "%d unlogged table(s) are invisible to logical decoding, so their rows would not reach the "
			    "target: %s",
			    (int) pgm_json_num(unlogged, "count", 0), names);
		}
		if (pgm_json_num(noid, "count", 0) == 0) {
			add(ev, "pglogical: replica identity", "ok", NULL,
			    "every table has a primary key (or a replica identity index): all changes replicate");
		} else if (pgm_jobopt_bool(options, "allow_no_pk")) {
			join_names(noid, names, sizeof(names));
			add(ev, "pglogical: replica identity", "warning",
			    "make sure the application only inserts into them, or add primary keys",
			    "%d table(s) without a primary key or replica identity index go to an insert-only replication "
			    "set (allow_no_pk = on): their UPDATEs and DELETEs are NOT replicated: %s",
			    (int) pgm_json_num(noid, "count", 0), names);
		} else {
			join_names(noid, names, sizeof(names));
			add(ev, "pglogical: replica identity", "error",
			    "add a primary key (or ALTER TABLE ... REPLICA IDENTITY USING INDEX a unique index) to each; or "
			    "set allow_no_pk = on if they are only ever inserted into; or use --method dump",
			    "%d table(s) have no primary key or replica identity index, so pglogical cannot replicate their "
			    "UPDATEs and DELETEs: %s",
			    (int) pgm_json_num(noid, "count", 0), names);
		}
	}
	if (dst_ok && check_pgl_role(ev, dst, "target")) {
		check_pgl_library(ev, dst, "target");
		/* the manager of the database, the apply worker and one sync worker */
		check_pgl_capacity(ev, dst, "target", 0, 0, 3);
	}
}

/* size, largest tables, and a rough copy time from the timed read */
static double
estimate(eval_t *ev, const cJSON *src, const cJSON *options)
{
	const cJSON *sample = cJSON_GetObjectItem(src, "read_sample");
	double bytes = pgm_json_num(src, "database_size", 0);
	double sb = pgm_json_num(sample, "bytes", 0), ms = pgm_json_num(sample, "ms", 0);
	int jobs = (int) pgm_jobopt_int(options, "jobs");
	cJSON *est = cJSON_CreateObject();
	double seconds = -1;
	const cJSON *t;
	char top[1024] = "";

	cJSON_ArrayForEach (t, cJSON_GetObjectItem(src, "largest_tables")) {
		if (strlen(top) > sizeof(top) - 80)
			break;
		snprintf(top + strlen(top), sizeof(top) - strlen(top), "%s%s %.1f MiB", top[0] ? ", " : "",
			 str(t, "table"), pgm_json_num(t, "bytes", 0) / MIB);
	}
	add(ev, "size", "info", NULL, "the source database is %.2f GiB; largest tables: %s", bytes / GIB,
	    top[0] ? top : "none");
	pgm_json_set_num(est, "database_bytes", bytes);
	pgm_json_set_num(est, "streams", jobs);
	/* a sample under 1 MiB or 20 ms times the network, not the copy */
	if (sb >= MIB && ms >= 20) {
		double rate = sb * 1000.0 / ms;
		seconds = bytes / (rate * jobs);
		pgm_json_set_num(est, "sample_bytes", sb);
		pgm_json_set_num(est, "sample_rate_bytes_per_sec", rate);
		pgm_json_set_num(est, "copy_seconds", seconds);
		add(ev, "copy estimate", "info", "the rehearsal copy measures the real time before you freeze",
		    "about %.0f s with %d stream(s): one stream read %.1f MiB in %.0f ms (%.1f MiB/s); index builds come "
		    "on top",
		    seconds, jobs, sb / MIB, ms, rate / MIB);
	} else {
		pgm_json_set(est, "copy_seconds", cJSON_CreateNull());
		if (cJSON_IsString(cJSON_GetObjectItem(src, "read_sample_skipped")))
			add(ev, "copy estimate", "info", NULL,
			    "not sampled: the rehearsal copy that comes next measures the real time before you freeze");
		else
			add(ev, "copy estimate", "info", "the rehearsal copy measures the real time before you freeze",
			    "the source is too small to time a read; the copy will take seconds");
	}
	pgm_json_set(ev->report, "estimate", est);
	return seconds;
}

static void
recommend(eval_t *ev, const cJSON *src, double seconds)
{
	double bytes = pgm_json_num(src, "database_size", 0);
	cJSON *rec = cJSON_CreateObject();
	char why[1024], eta[64] = "";
	/* large objects: logical replication does not carry them */
	bool logical_ok = flag(src, "superuser") && strcmp(str(src, "wal_level"), "logical") == 0 &&
			  strstr(str(src, "shared_preload_libraries"), "pglogical") != NULL &&
			  pgm_json_num(src, "large_objects", 0) == 0;
	/* triggers: PostgreSQL 13 or later (xid8), no large objects, the owner's privileges */
	bool triggers_ok = pgm_json_num(src, "server_version_num", 0) >= 130000 &&
			   pgm_json_num(src, "large_objects", 0) == 0 && flag(src, "can_create_schema") &&
			   pgm_json_num(cJSON_GetObjectItem(src, "trigger_denied"), "count", 0) == 0;

	if (seconds >= 0)
		snprintf(eta, sizeof(eta), " (about %.0f s here)", seconds);
	if (bytes < 10 * GIB) {
		pgm_json_set_str(rec, "method", "dump");
		snprintf(
			why, sizeof(why),
			"the database is %.2f GiB, under the ~10 GB up to which the migration guides recommend dump and "
			"restore: writes stop for the final copy%s, and the rehearsal copy measures that window first",
			bytes / GIB, eta);
	} else if (logical_ok) {
		pgm_json_set_str(rec, "method", "pglogical");
		snprintf(why, sizeof(why),
			 "the database is %.2f GiB: a final copy%s would keep writes stopped long; this source allows "
			 "logical replication (superuser, wal_level = logical, pglogical preloaded), which needs only "
			 "seconds of freeze",
			 bytes / GIB, eta);
	} else if (triggers_ok) {
		pgm_json_set_str(rec, "method", "triggers");
		snprintf(
			why, sizeof(why),
			"the database is %.2f GiB: a final copy%s would keep writes stopped long, and this source does not "
			"allow logical replication (Heroku gives neither superuser nor logical replication); change "
			"capture by triggers needs only the owner's privileges and a freeze of one apply round, at the "
			"price of a trigger on every write while the job runs",
			bytes / GIB, eta);
	} else {
		pgm_json_set_str(rec, "method", "dump");
		snprintf(
			why, sizeof(why),
			"the database is %.2f GiB, above ~10 GB, but this source allows neither logical replication nor "
			"change capture by triggers (PostgreSQL 13 or later, no large objects): plan a write freeze for "
			"the final copy%s",
			bytes / GIB, eta);
	}
	pgm_json_set_str(rec, "why", why);
	pgm_json_set(ev->report, "recommendation", rec);
}

/* ---- method triggers: change capture by triggers, the owner's privileges only ---- */

static void
check_triggers(eval_t *ev, const cJSON *src)
{
	int version = (int) pgm_json_num(src, "server_version_num", 0);
	const cJSON *denied = cJSON_GetObjectItem(src, "trigger_denied");
	const cJSON *nopk = cJSON_GetObjectItem(src, "tables_without_primary_key");
	char names[1024];

	if (version > 0 && version < 130000)
		add(ev, "triggers: source version", "error", "use --method dump for a source older than PostgreSQL 13",
		    "the source runs PostgreSQL %d.%d: the change capture needs 13 or later (pg_current_xact_id, "
		    "pg_visible_in_snapshot)",
		    version / 10000, version % 10000);
	if (!flag(src, "can_create_schema"))
		add(ev, "triggers: schema", "error",
		    "connect as the database owner (Heroku's default credential), or GRANT CREATE ON DATABASE to this role",
		    "the source role may not create a schema in the database: the change log lives in one of pgmover's");
	if (pgm_json_num(denied, "count", 0) > 0) {
		join_names(denied, names, sizeof(names));
		add(ev, "triggers: privileges", "error",
		    "connect as the owner of these tables, or GRANT TRIGGER ON them to this role",
		    "%d table(s) may not get triggers from this role: %s", (int) pgm_json_num(denied, "count", 0),
		    names);
	} else {
		add(ev, "triggers: privileges", "ok", NULL,
		    "the role may create pgmover's schema and put triggers on every table; while the job runs, every "
		    "write statement also writes its keys (or, without a key, its rows) to the change log: measured "
		    "at pgbench's TPC-B mix, four small writes a transaction and the worst case, 16-41%% fewer "
		    "transactions a second (the README's Benchmarks)");
	}
	if (pgm_json_num(src, "large_objects", 0) > 0)
		add(ev, "large objects", "error", "use --method dump (its pg_dump engine carries large objects)",
		    "the source holds %d large object(s): triggers do not see changes to them, so the target would lack "
		    "them",
		    (int) pgm_json_num(src, "large_objects", 0));
	if (pgm_json_num(nopk, "count", 0) > 0) {
		join_names(nopk, names, sizeof(names));
		add(ev, "triggers: tables without a key", "info",
		    "add a primary key to the large ones before the migration if you can",
		    "%d table(s) have no primary key: unless a unique index on NOT NULL columns serves as their key, "
		    "their changes are logged as whole rows and applied by matching whole rows (one of identical "
		    "duplicates), which costs a scan of the table on the target per changed row image: %s",
		    (int) pgm_json_num(nopk, "count", 0), names);
	}
}

/*
 * What the cutover will need, seen before anything is frozen. The rollback
 * window decodes the target's writes from a logical slot: wal_level =
 * logical (a restart to change), the REPLICATION attribute and a free slot
 * on the target. Found only at cutover, the fix would be a restart of the
 * target during the outage. A role that is not a superuser (a managed
 * service's) also needs, for the publication FOR TABLE every table and the
 * replica identities: CREATE on the database and the ownership of every
 * table; for the target's freeze at rollback: the database's ownership
 * (ALTER DATABASE) and pg_signal_backend (to end the other roles' sessions).
 */
/*
 * Unlogged tables are not in the WAL: the rollback window cannot carry
 * their writes back (nor can any logical decoding), and a rollback is
 * refused until the operator accepts that (--accept-loss).
 */
static void
check_unlogged_rollback(eval_t *ev, const cJSON *src)
{
	const cJSON *unlogged = cJSON_GetObjectItem(src, "unlogged_tables");
	char names[1024];

	if (pgm_json_num(unlogged, "count", 0) <= 0)
		return;
	join_names(unlogged, names, sizeof(names));
	add(ev, "rollback window: unlogged tables", "warning",
	    "ALTER TABLE ... SET LOGGED on the source before you start if their writes must come back (the copy "
	    "keeps them unlogged otherwise); or accept that a rollback (\"pgmover rollback JOB --accept-loss\") "
	    "leaves them as the source had them",
	    "%d unlogged table(s) are not carried back by the rollback window (their writes are not in the WAL it "
	    "decodes): writes made to them on the target after cutover would be lost by a rollback, which is "
	    "refused without --accept-loss: %s",
	    (int) pgm_json_num(unlogged, "count", 0), names);
}

static void
check_target_rollback(eval_t *ev, const cJSON *dst, const cJSON *src, const cJSON *options)
{
	int64_t window = pgm_jobopt_int(options, "rollback_window");
	int free_slots =
		(int) (pgm_json_num(dst, "max_replication_slots", 0) - pgm_json_num(dst, "replication_slots_used", 0));
	bool logical = strcmp(str(dst, "wal_level"), "logical") == 0;
	bool su = flag(dst, "superuser");
	bool may = su || flag(dst, "replication");

	if (window == 0) {
		add(ev, "rollback window", "info", NULL,
		    "rollback_window = 0: no way back after cutover; the target needs no logical decoding");
		return;
	}
	if (src)
		check_unlogged_rollback(ev, src);
	if (!logical)
		add(ev, "rollback window: wal_level", "error",
		    "ALTER SYSTEM SET wal_level = logical on the target and restart it before you start (managed "
		    "services: a parameter group or flag, e.g. rds.logical_replication = 1); or --set rollback_window=0 "
		    "to migrate without a way back",
		    "the target has wal_level = %s: the rollback window decodes the writes made on the target after "
		    "cutover, which needs wal_level = logical; the cutover would fail with the source already frozen",
		    str(dst, "wal_level"));
	if (!may)
		add(ev, "rollback window: privileges", "error",
		    "ALTER ROLE ... REPLICATION on the target (RDS: GRANT rds_replication TO the role); or --set "
		    "rollback_window=0",
		    "the target role %s may not create a replication slot (no REPLICATION attribute, not a superuser)",
		    str(dst, "user"));
	if (free_slots < 1)
		add(ev, "rollback window: replication slots", "error",
		    "raise max_replication_slots on the target (a restart), or drop an unused slot "
		    "(SELECT pg_drop_replication_slot(name))",
		    "the target has no free replication slot (%d of %d in use); the rollback window needs one",
		    (int) pgm_json_num(dst, "replication_slots_used", 0),
		    (int) pgm_json_num(dst, "max_replication_slots", 0));
	if (!su && !flag(dst, "can_create_schema")) {
		add(ev, "rollback window: publication", "error",
		    "GRANT CREATE ON DATABASE to the role, or use the database owner's role; or --set rollback_window=0",
		    "the target role %s may not CREATE PUBLICATION in database %s (no CREATE privilege on it)",
		    str(dst, "user"), str(dst, "database"));
		may = false;
	}
	if (!su && pgm_json_num(dst, "tables_not_owned", 0) > 0) {
		add(ev, "rollback window: table owner", "error",
		    "ALTER TABLE ... OWNER TO the role (or migrate into a database this role creates the tables of); or "
		    "--set rollback_window=0",
		    "%d table(s) on the target are not owned by role %s: a role that is not a superuser can publish "
		    "(and set the replica identity of) its own tables only",
		    (int) pgm_json_num(dst, "tables_not_owned", 0), str(dst, "user"));
		may = false;
	}
	if (!su && !flag(dst, "owns_database")) {
		add(ev, "rollback window: target freeze", "error",
		    "use the role that owns the target database (ALTER DATABASE ... OWNER TO it); or --set "
		    "rollback_window=0",
		    "the target role %s does not own database %s: rollback makes the target read-only (ALTER DATABASE "
		    "... SET default_transaction_read_only) before it drains, which only the owner may",
		    str(dst, "user"), str(dst, "database"));
		may = false;
	} else if (!su && !flag(dst, "can_signal_backends"))
		add(ev, "rollback window: target freeze", "warning",
		    "GRANT pg_signal_backend TO the role (RDS: the master user has it), or be ready to stop the "
		    "application's direct sessions yourself at rollback",
		    "the target role %s may not end other roles' sessions: at rollback the target's freeze can end "
		    "only its own, and a session that bypasses pgbouncer could still write",
		    str(dst, "user"));
	if (logical && may && free_slots >= 1)
		add(ev, "rollback window", "ok", NULL,
		    "the target can keep its writes for the way back: wal_level = logical, the role may create a slot, "
		    "%d slot(s) free%s",
		    free_slots,
		    su ? " (superuser)"
		       : "; not a superuser, it owns the database and every table there and may create a publication");
}

/*
 * The rollback window replays the target's writes on the source, where
 * its user triggers would fire again (audit rows twice, a column rewritten
 * twice): pgmover disables them for the replay (replay.c), which only
 * their owner (or a superuser) may.
 */
static void
check_source_replay(eval_t *ev, const cJSON *src, const cJSON *options)
{
	int triggered = (int) pgm_json_num(src, "triggered_tables", 0);
	int not_owned = (int) pgm_json_num(src, "triggered_tables_not_owned", 0);

	if (pgm_jobopt_int(options, "rollback_window") == 0 || triggered == 0)
		return;
	if (not_owned > 0 && !flag(src, "superuser")) {
		add(ev, "rollback window: source triggers", "error",
		    "connect as the owner of those tables (Heroku's default credential owns them all), or disable their "
		    "triggers yourself for the window (ALTER TABLE ... DISABLE TRIGGER ...); or --set rollback_window=0",
		    "%d table(s) of the source with user triggers are not owned by role %s: the rollback window disables "
		    "the source's user triggers while it replays the target's writes there (they would fire a second "
		    "time), which only the owner may; the stream would stop at the first",
		    not_owned, str(src, "user"));
		return;
	}
	add(ev, "rollback window: source triggers", "info", NULL,
	    "%d table(s) of the source have user triggers: disabled while the rollback window replays the target's "
	    "writes there, whose own triggers' effects come with them (recorded, and enabled again as they were at "
	    "rollback or finish); foreign keys' actions stay in place and are recognised",
	    triggered);
}

/* something must move the application's connections at cutover */
static void
check_traffic_switch(eval_t *ev, const cJSON *options)
{
	bool pgb = pgm_jobopt_str(options, "pgbouncer_admin")[0] != '\0';
	bool hook = pgm_jobopt_str(options, "cutover_command")[0] != '\0';

	if (pgb)
		add(ev, "traffic switch", "ok", NULL, "cutover points pgbouncer's entry %s at the target%s",
		    pgm_jobopt_str(options, "pgbouncer_database"), hook ? ", and runs cutover_command" : "");
	else if (hook)
		add(ev, "traffic switch", "ok", NULL, "cutover runs cutover_command to move the traffic");
	else
		add(ev, "traffic switch", "warning",
		    "--set pgbouncer_admin=... (with pgbouncer_database and pgbouncer_include) or --set "
		    "cutover_command=...; or, if you move the traffic yourself, \"pgmover cutover JOB "
		    "--no-traffic-switch\"",
		    "nothing is configured to move the application's traffic at cutover: neither pgbouncer nor "
		    "cutover_command; cutover will refuse without --no-traffic-switch");
}

cJSON *
pgm_plan_evaluate(const cJSON *gathered, const cJSON *options, bool target_owned)
{
	return pgm_plan_evaluate_method(gathered, options, target_owned, NULL);
}

cJSON *
pgm_plan_evaluate_method(const cJSON *gathered, const cJSON *options, bool target_owned, const char *method)
{
	bool pglogical = method && strcmp(method, "pglogical") == 0, src_super = false;
	bool triggers = method && strcmp(method, "triggers") == 0;
	const cJSON *src = cJSON_GetObjectItem(gathered, "source");
	const cJSON *dst = cJSON_GetObjectItem(gathered, "target");
	eval_t ev = {0};
	bool src_ok, dst_ok;
	int jobs = (int) pgm_jobopt_int(options, "jobs");
	double seconds = -1;

	ev.report = cJSON_CreateObject();
	ev.findings = cJSON_AddArrayToObject(ev.report, "findings");
	if (flag(src, "backup_file")) {
		/* the source is a backup file: only the target is checked here */
		src_ok = false;
		add(&ev, "source", "info", NULL, "the source is a backup file; pg_restore --list checks it next");
	} else {
		src_ok = check_reachable(&ev, src, "source");
	}
	dst_ok = check_reachable(&ev, dst, "target");
	/* first: without a superuser on the source pglogical is out of the question */
	if (pglogical && src_ok)
		src_super = check_pgl_role(&ev, src, "source");
	if (src_ok && dst_ok) {
		check_versions(&ev, src, dst);
		check_encoding(&ev, src, dst);
		check_extensions(&ev, src, dst);
	}
	if (src_ok) {
		if (flag(src, "tls"))
			add(&ev, "TLS to the source", "ok", NULL, "the connection to the source is encrypted");
		else
			add(&ev, "TLS to the source", "warning",
			    "add sslmode=require to the source URL (Heroku requires it)",
			    "the connection to the source does not use TLS");
		check_source_role(&ev, src, options);
		check_source_replay(&ev, src, options);
		check_connections(&ev, src, "source", jobs + 2);
		if (triggers)
			check_triggers(&ev, src);
		if (pgm_json_num(src, "large_objects", 0) > 0 && triggers)
			; /* check_triggers said so */
		else if (pgm_json_num(src, "large_objects", 0) > 0 && pglogical)
			add(&ev, "large objects", "error",
			    "use --method dump (its pg_dump engine carries large objects), or move them into bytea columns "
			    "first",
			    "the source holds %d large object(s): logical replication does not carry them, so the target "
			    "would lack them and the verification fail",
			    (int) pgm_json_num(src, "large_objects", 0));
		else if (pgm_json_num(src, "large_objects", 0) > 0)
			add(&ev, "large objects", "info", NULL,
			    "the source holds %d large object(s): the copy uses the pg_dump engine, which carries them, and "
			    "the verification compares them by OID and content",
			    (int) pgm_json_num(src, "large_objects", 0));
		{
			const cJSON *nopk = cJSON_GetObjectItem(src, "tables_without_primary_key");
			char names[1024];
			if (pgm_json_num(nopk, "count", 0) > 0 && !pglogical && !triggers) {
				join_names(nopk, names, sizeof(names));
				add(&ev, "primary keys", "info",
				    "nothing for dump; logical replication would need a primary key or allow_no_pk",
				    "%d table(s) have no primary key (copied whole; verification compares them whole): %s",
				    (int) pgm_json_num(nopk, "count", 0), names);
			}
		}
		seconds = estimate(&ev, src, options);
		recommend(&ev, src, seconds);
	}
	if (dst_ok) {
		check_target_tls(&ev, dst);
		check_target_empty(&ev, dst, options, target_owned);
		check_connections(&ev, dst, "target", jobs + 1);
		check_target_rollback(&ev, dst, src_ok ? src : NULL, options);
	}
	check_traffic_switch(&ev, options);
	if (pglogical && !flag(src, "backup_file"))
		check_pglogical(&ev, src, dst, options, src_ok, dst_ok, src_super);
	pgm_json_set_str(ev.report, "method", pglogical ? "pglogical" : triggers ? "triggers" : "dump");
	cJSON_AddItemToObject(ev.report, "source", cJSON_Duplicate(src, 1));
	cJSON_AddItemToObject(ev.report, "target", cJSON_Duplicate(dst, 1));
	pgm_json_set(ev.report, "ok", cJSON_CreateBool(ev.errors == 0));
	pgm_json_set_num(ev.report, "errors", ev.errors);
	pgm_json_set_num(ev.report, "warnings", ev.warnings);
	return ev.report;
}
