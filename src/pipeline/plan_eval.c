/*
 * plan_eval.c — the preflight's decisions: from the facts gathered on both
 * servers to findings, each with what to do about it, and a recommended
 * method. Pure: no I/O, so the unit tests feed it fixtures.
 */
#include "common/json.h"
#include "common/util.h"
#include "daemon/config.h"
#include "pipeline/plan.h"

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

static void
add(eval_t *ev, const char *check, const char *status, const char *fix, const char *fmt, ...)
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
	cJSON_ArrayForEach(it, cJSON_GetObjectItem(list, "names"))
	{
		int w = snprintf(buf + n, len - n, "%s%s", n ? ", " : "", it->valuestring);
		if (w < 0 || (size_t) w >= len - n)
			break;
		n += (size_t) w;
	}
	if (pgm_json_num(list, "count", 0) > 20 && n + 8 < len)
		strcat(buf, ", ...");
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
	const char *mode = pgm_jobopt_str(options, "freeze_mode");
	bool su = flag(src, "superuser");
	char names[1024];

	if (pgm_json_num(unreadable, "count", 0) > 0) {
		join_names(unreadable, names, sizeof(names));
		add(ev, "source privileges: read", "error",
		    "GRANT SELECT on them (and USAGE on their schemas) to this role, or use the database owner's credential",
		    "role %s cannot read %d object(s): %s", str(src, "user"), (int) pgm_json_num(unreadable, "count", 0),
		    names);
	} else {
		add(ev, "source privileges: read", "ok", NULL, "role %s can read every table, view and sequence",
		    str(src, "user"));
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
		add(ev, "target empty", "ok", NULL, target_owned ? "the target's contents were restored by this job"
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

	cJSON_ArrayForEach(it, arr)
	{
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

	cJSON_ArrayForEach(e, cJSON_GetObjectItem(src, "extensions"))
	{
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
			snprintf(fix, sizeof(fix),
			         "install the package that provides %s on the target server, or drop the extension from "
			         "the source if it is unused",
			         name);
			add(ev, check, "error", fix, "extension %s %s is used on the source but not available on the target",
			    name, str(e, "version"));
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
		    "the source database is %s, the target %s: text would be converted or rejected", str(src, "encoding"),
		    str(dst, "encoding"));
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

	cJSON_ArrayForEach(t, cJSON_GetObjectItem(src, "largest_tables"))
	{
		if (strlen(top) > sizeof(top) - 80)
			break;
		snprintf(top + strlen(top), sizeof(top) - strlen(top), "%s%s %.1f MiB", top[0] ? ", " : "", str(t, "table"),
		         pgm_json_num(t, "bytes", 0) / MIB);
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
	bool logical_ok = flag(src, "superuser") && strcmp(str(src, "wal_level"), "logical") == 0 &&
	                  strstr(str(src, "shared_preload_libraries"), "pglogical") != NULL;

	if (seconds >= 0)
		snprintf(eta, sizeof(eta), " (about %.0f s here)", seconds);
	if (bytes < 10 * GIB) {
		pgm_json_set_str(rec, "method", "dump");
		snprintf(why, sizeof(why),
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
	} else {
		pgm_json_set_str(rec, "method", "dump");
		snprintf(why, sizeof(why),
		         "the database is %.2f GiB, above ~10 GB, but this source does not allow logical replication "
		         "(Heroku gives neither superuser nor logical replication): plan a write freeze for the final "
		         "copy%s",
		         bytes / GIB, eta);
	}
	pgm_json_set_str(rec, "why", why);
	pgm_json_set(ev->report, "recommendation", rec);
}

cJSON *
pgm_plan_evaluate(const cJSON *gathered, const cJSON *options, bool target_owned)
{
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
	if (src_ok && dst_ok) {
		check_versions(&ev, src, dst);
		check_encoding(&ev, src, dst);
		check_extensions(&ev, src, dst);
	}
	if (src_ok) {
		if (flag(src, "tls"))
			add(&ev, "TLS to the source", "ok", NULL, "the connection to the source is encrypted");
		else
			add(&ev, "TLS to the source", "warning", "add sslmode=require to the source URL (Heroku requires it)",
			    "the connection to the source does not use TLS");
		check_source_role(&ev, src, options);
		check_connections(&ev, src, "source", jobs + 2);
		if (pgm_json_num(src, "large_objects", 0) > 0)
			add(&ev, "large objects", "info", NULL,
			    "the source holds %d large object(s): the copy uses the pg_dump engine, which carries them",
			    (int) pgm_json_num(src, "large_objects", 0));
		{
			const cJSON *nopk = cJSON_GetObjectItem(src, "tables_without_primary_key");
			char names[1024];
			if (pgm_json_num(nopk, "count", 0) > 0) {
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
		check_target_empty(&ev, dst, options, target_owned);
		check_connections(&ev, dst, "target", jobs + 1);
	}
	cJSON_AddItemToObject(ev.report, "source", cJSON_Duplicate(src, 1));
	cJSON_AddItemToObject(ev.report, "target", cJSON_Duplicate(dst, 1));
	pgm_json_set(ev.report, "ok", cJSON_CreateBool(ev.errors == 0));
	pgm_json_set_num(ev.report, "errors", ev.errors);
	pgm_json_set_num(ev.report, "warnings", ev.warnings);
	return ev.report;
}
