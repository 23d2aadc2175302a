/*
 * tools.c — what the copy engines share: running pg_dump and pg_restore as
 * children of the loop (password in the environment, never on the command
 * line; killed with the daemon), explaining their failures, and cleaning
 * the target before a copy.
 */
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "pg/connparams.h"
#include "pg/dsn.h"
#include "fsm/job.h"
#include "pipeline/sql.h"
#include "pipeline/copy/copy.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

pgm_proc_t *
pgm_tool_spawn(pgm_step_t *s, const char *tool, const char *const *args, bool source, const char *pgoptions,
	       pgm_proc_line_cb line_cb, pgm_proc_exit_cb exit_cb, void *data)
{
	pgm_job_t *job = s->job;

	return pgm_tool_spawn_dsn(s, tool, args, source ? job->source_dsn : job->target_dsn, pgoptions, line_cb,
				  exit_cb, data);
}

pgm_proc_t *
pgm_tool_spawn_dsn(pgm_step_t *s, const char *tool, const char *const *args, const char *dsn, const char *pgoptions,
		   pgm_proc_line_cb line_cb, pgm_proc_exit_cb exit_cb, void *data)
{
	pgm_job_t *job = s->job;
	const char *bindir = pgm_jobopt_str(job->options, "pg_bindir");
	pgm_pg_net_t net;
	char *conninfo;
	char *dbarg, *path = bindir[0] ? pgm_asprintf("%s/%s", bindir, tool) : pgm_strdup(tool);
	pgm_dsn_t parsed;
	char *err = NULL, *sslpw = NULL, *env[6] = {NULL, NULL, NULL, NULL, NULL, NULL};
	const char *argv[64];
	int n = 0, e = 0;
	pgm_proc_t *p;

	/* the tool's libpq gets the job's keepalives, tcp_user_timeout and connect_timeout too */
	pgm_pg_net_from_options(job->options, false, &net);
	conninfo = dsn ? pgm_conn_child_conninfo(dsn, &net) : NULL;
	dbarg = dsn ? pgm_asprintf("--dbname=%s", conninfo ? conninfo : "") : NULL;
	if (dsn && pgm_dsn_parse(dsn, &parsed, &err)) {
		if (parsed.password)
			env[e++] = pgm_asprintf("PGPASSWORD=%s", parsed.password);
		pgm_dsn_free(&parsed);
	}
	if (dsn && (sslpw = pgm_dsn_sslpassword(dsn)) != NULL) {
		/*
		 * The client key's passphrase has no environment variable: it goes
		 * in a service file of the job's (0600, like secrets.json), never
		 * on the command line, where ps shows it.
		 */
		char *svc = pgm_asprintf("%s/pgservice.conf", job->dir);
		char *text = pgm_asprintf("[pgmover]\nsslpassword=%s\n", sslpw);
		char *with = pgm_asprintf("%s service=pgmover", conninfo ? conninfo : "");

		if (strchr(sslpw, '\n') == NULL && pgm_file_replace(svc, text, strlen(text), 0600)) {
			env[e++] = pgm_asprintf("PGSERVICEFILE=%s", svc);
			free(dbarg);
			dbarg = pgm_asprintf("--dbname=%s", with);
		} else {
			pgm_warning("job %s: could not write %s: %s runs without the client key's passphrase",
				    job->name, svc, tool);
		}
		memset(text, 0, strlen(text));
		memset(sslpw, 0, strlen(sslpw));
		free(text);
		free(with);
		free(svc);
		free(sslpw);
	}
	free(err);
	err = NULL;
	env[e++] = pgm_asprintf("PGAPPNAME=pgmover:%s:%s", job->name, tool);
	/* the guard checks that the daemon that started it is still its parent */
	env[e++] = pgm_asprintf("PGMOVER_DAEMON_PID=%d", (int) getpid());
	if (pgoptions)
		env[e++] = pgm_asprintf("PGOPTIONS=%s", pgoptions);
	/* the child and its workers die with the daemon instead of racing its next attempt */
	argv[n++] = pgm_proc_self_exe();
	argv[n++] = PGM_PROC_GUARD_FLAG;
	argv[n++] = path;
	for (int i = 0; args[i] && n < 60; i++)
		argv[n++] = args[i];
	if (dbarg)
		argv[n++] = dbarg;
	argv[n] = NULL;
	p = pgm_step_spawn(s, argv, (const char *const *) env, 0, line_cb, exit_cb, data, &err);
	if (p == NULL) {
		char *msg = pgm_asprintf("could not run %s", tool);
		pgm_step_fail(s, msg, err, "install the PostgreSQL client tools or set pg_bindir");
		free(msg);
	}
	free(err);
	for (int i = 0; i < e; i++) {
		memset(env[i], 0, strlen(env[i]));
		free(env[i]);
	}
	free(path);
	free(dbarg);
	free(conninfo);
	return p;
}

/* the lines of a tool's output that explain a failure (error:, detail:, hint:) */
static char *
error_lines(const char *tail)
{
	size_t n = strlen(tail);
	char *out = pgm_malloc(n + 1), *o = out;
	const char *p = tail;

	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t) (nl - p) : strlen(p);
		if (memmem(p, len, "error", 5) || memmem(p, len, "detail:", 7) || memmem(p, len, "hint:", 5) ||
		    memmem(p, len, "FATAL", 5)) {
			if (o != out)
				*o++ = '\n';
			memcpy(o, p, len);
			o += len;
		}
		p += len + (nl ? 1 : 0);
	}
	*o = '\0';
	if (out[0] == '\0') {
		free(out);
		return pgm_strdup(tail);
	}
	return out;
}

bool
pgm_tool_failed(pgm_step_t *s, const char *tool, const char *during, int64_t status, int sig, const char *tail)
{
	char *msg, *why;

	if (status == 0 && sig == 0)
		return false;
	if (sig)
		msg = pgm_asprintf("%s was killed by signal %d during the %s", tool, sig, during);
	else
		msg = pgm_asprintf("%s failed during the %s (exit status %lld)", tool, during, (long long) status);
	why = error_lines(tail ? tail : "");
	pgm_step_fail(
		s, msg, why[0] ? why : NULL,
		strcmp(tool, "pg_dump") == 0
			? "check that the source role can read every table (GRANT SELECT) and the source is reachable; "
			  "then \"pgmover retry\""
			: "check the target (extensions available, disk space, role privileges); then \"pgmover retry\"");
	free(why);
	free(msg);
	return true;
}

/*
 * Everything pgmover may have put into the target, dropped; the database
 * stays. Each dropped object holds a lock until its transaction ends, and
 * the lock table has room for max_locks_per_transaction (64) times
 * max_connections in all: one DROP SCHEMA ... CASCADE of 3,000 tables (with
 * their indexes and TOAST tables) fails with "out of shared memory". So the
 * relations go first, 100 to a transaction (a DO block outside a
 * transaction block may COMMIT), then the large objects, 500 to one, then
 * the schemas and extensions with what is left in them. Relations another
 * one owns (owned and identity sequences, partitions) and those of
 * extensions go with their owner.
 */
static const char *clean_sql =
	"DO $pgm$ DECLARE r record; n int := 0; BEGIN"
	"  FOR r IN SELECT c.relkind, format('%I.%I', s.nspname, c.relname) AS name"
	"             FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace"
	"            WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')"
	"              AND s.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')"
	"              AND s.nspname !~ '^pg_temp_' AND s.nspname !~ '^pg_toast_temp_'"
	"              AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass"
	"                                AND d.objid = c.oid AND d.deptype IN ('e', 'i', 'a'))"
	"              AND NOT c.relispartition"
	"            ORDER BY c.relkind = 'S', c.oid LOOP"
	"    EXECUTE format('DROP %s IF EXISTS %s CASCADE', CASE r.relkind WHEN 'v' THEN 'VIEW'"
	"      WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'S' THEN 'SEQUENCE'"
	"      ELSE 'TABLE' END, r.name);"
	"    n := n + 1;"
	"    IF n % 100 = 0 THEN COMMIT; END IF;"
	"  END LOOP;"
	"  COMMIT;"
	"  n := 0;"
	"  FOR r IN SELECT oid FROM pg_largeobject_metadata LOOP"
	"    PERFORM lo_unlink(r.oid);"
	"    n := n + 1;"
	"    IF n % 500 = 0 THEN COMMIT; END IF;"
	"  END LOOP;"
	"  COMMIT;"
	"  FOR r IN SELECT nspname FROM pg_namespace"
	"            WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')"
	"              AND nspname !~ '^pg_temp_' AND nspname !~ '^pg_toast_temp_' LOOP"
	"    EXECUTE format('DROP SCHEMA %I CASCADE', r.nspname);"
	"  END LOOP;"
	"  FOR r IN SELECT extname FROM pg_extension WHERE extname <> 'plpgsql' LOOP"
	"    EXECUTE format('DROP EXTENSION IF EXISTS %I CASCADE', r.extname);"
	"  END LOOP;"
	"  CREATE SCHEMA public AUTHORIZATION pg_database_owner;"
	"  COMMENT ON SCHEMA public IS 'standard public schema';"
	"  GRANT USAGE ON SCHEMA public TO PUBLIC;"
	" END $pgm$";

void
pgm_target_clean(pgm_sql_t *q, pgm_job_t *job)
{
	char *prefix = pgm_sql_fence_prefix(job);
	const char *params[1] = {prefix};

	/* sessions an earlier run of this job left on the target (a killed daemon's copy) */
	pgm_sql_add_params(q, PGM_SQL_FENCE, 1, params, NULL, NULL);
	pgm_sql_add(q, clean_sql, NULL, NULL);
	free(prefix);
}
