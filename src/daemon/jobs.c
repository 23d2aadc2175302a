/*
 * jobs.c — the daemon's registry of jobs: create (validated, then made
 * durable) and, at start, load and resume. Every check a user can fail is
 * made before anything is written, each with a hint that says what to do.
 * What a job is and how it moves is fsm/; stopping the jobs is
 * pgm_jobs_shutdown in driver.c.
 */
#include "daemon/jobs.h"
#include "common/log.h"
#include "common/util.h"
#include "fsm/store.h"
#include "pg/dsn.h"
#include "pipeline/method.h"
#include "pgmover/protocol.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* the registered job named name, or NULL; pgm_jobs_create keeps names unique */
pgm_job_t *
pgm_jobs_find(pgm_daemon_t *d, const char *name)
{
	for (pgm_job_t *j = d->host.jobs; j; j = j->next)
		if (strcmp(j->name, name) == 0)
			return j;
	return NULL;
}

/*
 * Whether two DSNs name the same database on the same server, with libpq's
 * built-in defaults filled in (no host: the local socket; port 5432; the
 * database named after the user). The comparison is textual: it catches
 * the same server given twice, not every alias (localhost, 127.0.0.1).
 */
static bool
same_database(const pgm_dsn_t *a, const pgm_dsn_t *b)
{
	const char *ha = a->host ? a->host : "", *hb = b->host ? b->host : "";
	const char *pa = a->port ? a->port : "5432", *pb = b->port ? b->port : "5432";
	const char *da = a->dbname ? a->dbname : (a->user ? a->user : "");
	const char *db = b->dbname ? b->dbname : (b->user ? b->user : "");

	return strcmp(ha, hb) == 0 && strcmp(pa, pb) == 0 && strcmp(da, db) == 0;
}

static pgm_job_t *job_new(pgm_daemon_t *d, const char *name, const char *source, const char *target, const char *method,
			  cJSON *opts, const pgm_peer_t *peer, const char **code, char **message, char **hint);

/*
 * Create a job whose source is a pg_dump archive (file:PATH). The method
 * must have a file-source variant; the file must be an absolute path to a
 * regular file, readable now by pgmoverd (its user, not the client's, is
 * the one that will read it); the target a valid DSN. There is no
 * same-database check: a file is never the target.
 */
static pgm_job_t *
create_from_file(pgm_daemon_t *d, const char *name, const char *source, const char *target, const char *method,
		 const cJSON *options, const pgm_peer_t *peer, const char **code, char **message, char **hint)
{
	const char *path = pgm_source_file(source);
	pgm_dsn_t td;
	char *err = NULL;
	cJSON *opts;
	struct stat st;

	if (pgm_method_for(method, source) == NULL) {
		const char *m = "dump";

		/* name a method that can restore a file */
		for (int i = 0; pgm_methods[i]; i++)
			if (pgm_methods[i]->file_source)
				m = pgm_methods[i]->name;
		*message = pgm_asprintf("a backup file can only be restored with method %s", m);
		*hint = pgm_asprintf("use --method %s with a file source", m);
		return NULL;
	}
	/* errno says why only when a system call failed (not for a relative path) */
	errno = 0;
	if (path[0] != '/' || stat(path, &st) != 0 || !S_ISREG(st.st_mode) || access(path, R_OK) != 0) {
		*message = pgm_asprintf("cannot read the source file \"%s\"%s%s", path, errno ? ": " : "",
					errno ? strerror(errno) : "");
		*hint = pgm_strdup("give the absolute path of a pg_dump archive readable by pgmoverd, e.g. "
				   "file:/var/backups/latest.dump from heroku pg:backups:download");
		return NULL;
	}
	if (!target || !pgm_dsn_parse(target, &td, &err)) {
		*message = pgm_asprintf("invalid target connection string: %s", err ? err : "missing");
		*hint = pgm_strdup("give a URI like postgres://user:password@host:5432/dbname");
		free(err);
		return NULL;
	}
	pgm_dsn_free(&td);
	opts = pgm_job_options_build(&d->cfg, options, &err);
	if (opts == NULL) {
		*message = err;
		*hint = pgm_strdup("see pgmoverd.conf(5) for the job options and their values");
		return NULL;
	}
	return job_new(d, name, source, target, method, opts, peer, code, message, hint);
}

/*
 * Validate a create request, then make the job. The checks go name,
 * uniqueness, method, then the source (a file goes its own way), the
 * target, that the two are not one database, and the options. DSNs are
 * parsed only; the job first reaches the servers when it starts
 * (preflight). Nothing is written until every check has passed, so a
 * refused create leaves nothing behind. The code is
 * PGM_ERR_INVALID_ARGUMENT unless said otherwise.
 */
pgm_job_t *
pgm_jobs_create(pgm_daemon_t *d, const char *name, const char *source, const char *target, const char *method,
		const cJSON *options, const pgm_peer_t *peer, const char **code, char **message, char **hint)
{
	pgm_dsn_t sd, td;
	char *err = NULL;
	cJSON *opts;

	*code = PGM_ERR_INVALID_ARGUMENT;
	/* the name becomes a directory under state_dir: hence the narrow alphabet */
	if (!pgm_name_valid(name)) {
		*message = pgm_asprintf("invalid job name \"%s\"", name ? name : "");
		*hint = pgm_strdup("use 1 to 63 letters, digits, '-' or '_', starting with a letter or digit");
		return NULL;
	}
	/* a folder that did not load keeps its name: a create would overwrite its secrets */
	{
		pgm_corrupt_t *c = pgm_jobs_find_corrupt(d, name);

		if (c) {
			*code = PGM_ERR_JOB_CORRUPT;
			pgm_jobs_corrupt_error(d, c, message, hint);
			return NULL;
		}
	}
	if (pgm_jobs_find(d, name)) {
		*code = PGM_ERR_JOB_EXISTS;
		*message = pgm_asprintf("job \"%s\" already exists", name);
		*hint = pgm_strdup("choose another name, or see it with \"pgmover status NAME\"");
		return NULL;
	}
	if (pgm_method_find(method) == NULL) {
		char *list = pgm_method_list();

		*message = pgm_asprintf("unknown method \"%s\"", method ? method : "");
		*hint = pgm_asprintf("use %s", list);
		free(list);
		return NULL;
	}
	/* a backup file: no source server to parse or compare */
	if (source && pgm_source_file(source))
		return create_from_file(d, name, source, target, method, options, peer, code, message, hint);
	if (!source || !pgm_dsn_parse(source, &sd, &err)) {
		*message = pgm_asprintf("invalid source connection string: %s", err ? err : "missing");
		*hint = pgm_strdup("give a URI like postgres://user:password@host:5432/dbname?sslmode=require");
		free(err);
		return NULL;
	}
	if (!target || !pgm_dsn_parse(target, &td, &err)) {
		*message = pgm_asprintf("invalid target connection string: %s", err ? err : "missing");
		*hint = pgm_strdup("give a URI like postgres://user:password@host:5432/dbname");
		free(err);
		pgm_dsn_free(&sd);
		return NULL;
	}
	/* a migration onto itself could only do harm: refuse it before anything runs */
	if (same_database(&sd, &td)) {
		*message = pgm_strdup("source and target are the same database");
		*hint = pgm_strdup("the target must be another database, usually on another server");
		pgm_dsn_free(&sd);
		pgm_dsn_free(&td);
		return NULL;
	}
	pgm_dsn_free(&sd);
	pgm_dsn_free(&td);
	/* the daemon's job defaults, overridden by the request's, each validated */
	opts = pgm_job_options_build(&d->cfg, options, &err);
	if (opts == NULL) {
		*message = err;
		*hint = pgm_strdup("see pgmoverd.conf(5) for the job options and their values");
		return NULL;
	}
	return job_new(d, name, source, target, method, opts, peer, code, message, hint);
}

/*
 * Make a validated job durable, then register it; takes opts. secrets.json
 * is written before state.json: pgm_jobs_load_all takes a directory with a
 * state.json for a job, and pgm_store_load refuses one without its
 * secrets, so a crash in between leaves a directory that is skipped rather
 * than a job that fails to load. The job is attached, audited and logged
 * only once both files are written; otherwise PGM_ERR_INTERNAL.
 */
static pgm_job_t *
job_new(pgm_daemon_t *d, const char *name, const char *source, const char *target, const char *method, cJSON *opts,
	const pgm_peer_t *peer, const char **code, char **message, char **hint)
{
	pgm_job_t *job;

	job = pgm_calloc(1, sizeof(*job));
	job->name = pgm_strdup(name);
	job->method = pgm_strdup(method);
	job->ops = pgm_method_for(method, source);
	job->source_dsn = pgm_strdup(source);
	job->target_dsn = pgm_strdup(target);
	job->source_display = pgm_source_display(source);
	job->target_display = pgm_dsn_masked(target);
	job->options = opts;
	job->state = PGM_ST_CREATED;
	job->created_ms = job->since_ms = pgm_now_ms();
	job->last_row = -1;
	job->failed_row = -1;
	job->facts = cJSON_CreateObject();
	job->artifacts = cJSON_CreateArray();
	job->warnings = cJSON_CreateArray();
	/* state_dir/NAME, made 0700: it holds the secrets */
	job->dir = pgm_asprintf("%s/%s", d->cfg.state_dir, name);
	if (!pgm_mkdir_p(job->dir, 0700) || !pgm_store_save_secrets(job) || !pgm_store_save(job)) {
		*code = PGM_ERR_INTERNAL;
		*message = pgm_asprintf("could not write the state of job \"%s\" in \"%s\": %s", name, job->dir,
					strerror(errno));
		*hint = pgm_strdup("check that state_dir exists and is writable by pgmoverd");
		pgm_job_free(job);
		return NULL;
	}
	pgm_job_attach(job, &d->host);
	pgm_job_audit(job, peer, "create", NULL, "created", "ok");
	pgm_info("job %s: created (method %s, source %s, target %s)", name, method, job->source_display,
		 job->target_display);
	return job;
}

/* remember a folder that did not load: listed as corrupt, its name kept from create */
static void
add_corrupt(pgm_daemon_t *d, const char *name, const char *dir, char *problem)
{
	pgm_corrupt_t *c = pgm_calloc(1, sizeof(*c));

	c->name = pgm_strdup(name);
	c->dir = pgm_strdup(dir);
	c->problem = problem;
	c->next = d->corrupt;
	d->corrupt = c;
	pgm_error("job %s is corrupt and was not loaded: %s; restore the file, or archive the folder with "
		  "\"pgmover delete --force %s\"",
		  name, problem, name);
}

/*
 * A job taken back at start: its audit trail's head from the trail's last
 * line (a torn end cut off), and a "resume" line that says what was
 * repaired -- the audit log records each start of pgmoverd that took the
 * job back.
 */
static void
audit_resume(pgm_job_t *job)
{
	char *note = NULL, *outcome;

	if (!pgm_audit_recover(job, &note))
		pgm_error("job %s: could not read the end of its audit trail: %s", job->name, strerror(errno));
	if (note)
		pgm_warning("job %s: %s", job->name, note);
	outcome = note ? pgm_asprintf("ok: %s", note) : pgm_strdup("ok");
	pgm_job_audit(job, NULL, "resume", pgm_state_name(job->state), pgm_state_name(job->state), outcome);
	free(outcome);
	free(note);
}

/*
 * At start, load every job in state_dir and schedule each to resume. A
 * missing state_dir is created; any other error opening it returns false,
 * and pgmoverd does not start rather than run as if it had no jobs. What
 * is not a job is skipped quietly: dot files, names no job can have, a
 * directory without state.json (a create that did not finish, say). A job
 * whose state.json is there but does not load (unreadable, truncated, not
 * JSON, its secrets lost) or whose method this pgmoverd lacks is logged
 * and kept as corrupt: listed, refused every command but delete --force,
 * its name not free for a create (which would overwrite its secrets and
 * artifacts); the others still load.
 */
bool
pgm_jobs_load_all(pgm_daemon_t *d)
{
	DIR *dir = opendir(d->cfg.state_dir);
	struct dirent *de;
	int n = 0;

	if (dir == NULL) {
		if (errno == ENOENT && pgm_mkdir_p(d->cfg.state_dir, 0700))
			return true;
		pgm_error("could not open state directory \"%s\": %s", d->cfg.state_dir, strerror(errno));
		return false;
	}
	while ((de = readdir(dir)) != NULL) {
		char *path, *err = NULL, *statefile;
		struct stat st;
		pgm_job_t *job;

		if (de->d_name[0] == '.' || !pgm_name_valid(de->d_name))
			continue;
		path = pgm_asprintf("%s/%s", d->cfg.state_dir, de->d_name);
		statefile = pgm_asprintf("%s/state.json", path);
		if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
			free(statefile);
			free(path);
			continue;
		}
		if (stat(statefile, &st) != 0) {
			/* no state.json: not a job; one that cannot even be looked at is one gone bad */
			if (errno != ENOENT)
				add_corrupt(d, de->d_name, path,
					    pgm_asprintf("could not read \"%s\": %s", statefile, strerror(errno)));
			free(statefile);
			free(path);
			continue;
		}
		free(statefile);
		job = pgm_store_load(path, &err);
		if (job == NULL) {
			add_corrupt(d, de->d_name, path, err);
			free(path);
			continue;
		}
		/* ops are runtime: found again by name, the file variant for a file source */
		job->ops = pgm_method_for(job->method, job->source_dsn);
		if (job->ops == NULL) {
			add_corrupt(d, de->d_name, path,
				    pgm_asprintf("its method \"%s\" is not one this pgmoverd knows", job->method));
			free(path);
			pgm_job_free(job);
			continue;
		}
		free(path);
		pgm_job_attach(job, &d->host);
		n++;
		pgm_info("job %s: loaded in state %s", job->name, pgm_state_name(job->state));
		audit_resume(job);
		/* its step starts from the kick once the loop runs, after every job is loaded */
		pgm_job_schedule_resume(job);
	}
	closedir(dir);
	pgm_info("loaded %d job(s) from \"%s\"", n, d->cfg.state_dir);
	return true;
}

pgm_corrupt_t *
pgm_jobs_find_corrupt(pgm_daemon_t *d, const char *name)
{
	for (pgm_corrupt_t *c = d->corrupt; c; c = c->next)
		if (name && strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

void
pgm_jobs_corrupt_error(const pgm_daemon_t *d, const pgm_corrupt_t *c, char **message, char **hint)
{
	*message = pgm_asprintf("job \"%s\" is corrupt and was not loaded: %s", c->name, c->problem);
	*hint = pgm_asprintf("restore %s/state.json (and secrets.json) from a backup and restart pgmoverd, or run "
			     "\"pgmover delete --force %s\", which moves the folder to %s/.deleted/ (nothing is "
			     "removed) and frees the name",
			     c->dir, c->name, d->cfg.state_dir);
}

cJSON *
pgm_jobs_corrupt_json(const pgm_daemon_t *d, const pgm_corrupt_t *c)
{
	cJSON *o = cJSON_CreateObject(), *e;
	char *message, *hint;

	cJSON_AddStringToObject(o, "name", c->name);
	cJSON_AddStringToObject(o, "state", "corrupt");
	pgm_jobs_corrupt_error(d, c, &message, &hint);
	e = cJSON_AddObjectToObject(o, "error");
	cJSON_AddStringToObject(e, "code", PGM_ERR_JOB_CORRUPT);
	cJSON_AddStringToObject(e, "message", message);
	cJSON_AddStringToObject(e, "hint", hint);
	free(message);
	free(hint);
	return o;
}

static void
corrupt_free(pgm_corrupt_t *c)
{
	free(c->name);
	free(c->dir);
	free(c->problem);
	free(c);
}

void
pgm_jobs_free_corrupt(pgm_daemon_t *d)
{
	while (d->corrupt) {
		pgm_corrupt_t *next = d->corrupt->next;

		corrupt_free(d->corrupt);
		d->corrupt = next;
	}
}

void
pgm_daemon_audit(pgm_daemon_t *d, const char *job, const pgm_peer_t *peer, const char *command, const char *outcome)
{
	char *path = pgm_asprintf("%s/audit.jsonl", d->cfg.state_dir);

	pgm_audit_append(path, job, peer, command, NULL, NULL, outcome);
	free(path);
}

/*
 * Move a job's folder to state_dir/.deleted/<name>.<UTC time>: kept, never
 * removed by pgmoverd. False with errno when it could not be moved; *to
 * (malloc'd) is where it goes, either way.
 */
static bool
archive_dir(pgm_daemon_t *d, const char *name, const char *dir, char **to)
{
	char ts[40], *attic;
	bool ok;

	pgm_format_time(pgm_now_ms(), ts, sizeof(ts));
	attic = pgm_asprintf("%s/.deleted", d->cfg.state_dir);
	*to = pgm_asprintf("%s/%s.%s", attic, name, ts);
	ok = pgm_mkdir_p(attic, 0700) && rename(dir, *to) == 0;
	free(attic);
	return ok;
}

/*
 * delete --force of a corrupt job: the folder is archived as delete
 * archives an ended job's, the attempt audited in the folder's own trail
 * (it goes with it) and in the daemon's, and the name is free again.
 */
bool
pgm_jobs_delete_corrupt(pgm_daemon_t *d, pgm_corrupt_t *c, const pgm_peer_t *peer, const char **code, char **message,
			char **hint)
{
	char *to = NULL, *own = pgm_asprintf("%s/audit.jsonl", c->dir), *outcome;

	*message = *hint = NULL;
	pgm_audit_append(own, c->name, peer, "delete --force", "corrupt", NULL, "ok: archived");
	free(own);
	if (!archive_dir(d, c->name, c->dir, &to)) {
		*code = PGM_ERR_INTERNAL;
		*message = pgm_asprintf("could not move \"%s\" to \"%s\": %s", c->dir, to, strerror(errno));
		*hint = pgm_strdup("check the permissions of state_dir; the folder is unchanged");
		pgm_daemon_audit(d, c->name, peer, "delete --force", "failed: " PGM_ERR_INTERNAL);
		free(to);
		return false;
	}
	outcome = pgm_asprintf("ok: corrupt folder archived in %s", to);
	pgm_daemon_audit(d, c->name, peer, "delete --force", outcome);
	free(outcome);
	pgm_notice("job %s: corrupt folder archived in %s; the name is free", c->name, to);
	free(to);
	for (pgm_corrupt_t **p = &d->corrupt; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
	corrupt_free(c);
	return true;
}

/*
 * set: change a job's options, validated as create validates them, in the
 * states where no step is half-way through reading them (a job waiting for
 * an operator, a failed one -- a typo in a hook fixed before retry -- or
 * one in its rollback window); made durable before the reply, audited with
 * the names of what changed (values may be commands: not in the audit).
 */
static bool
options_settable(pgm_state_t st)
{
	return st == PGM_ST_CREATED || st == PGM_ST_SYNCED || st == PGM_ST_VERIFIED || st == PGM_ST_VERIFY_FAILED ||
	       st == PGM_ST_FAILED || st == PGM_ST_ROLLBACK_WINDOW;
}

bool
pgm_jobs_set_options(pgm_job_t *job, const cJSON *given, const pgm_peer_t *peer, const char **code, char **message,
		     char **hint)
{
	cJSON *opts, *old;
	const cJSON *it;
	char *err = NULL;
	pgm_buf_t names = {0};

	*message = *hint = NULL;
	if (!options_settable(job->state)) {
		*code = PGM_ERR_INVALID_STATE;
		*message = pgm_asprintf("job \"%s\" is %s: its options cannot change while its step runs", job->name,
					pgm_state_name(job->state));
		*hint = pgm_strdup("set options when the job is created, synced, verified, verify_failed, failed or in "
				   "its rollback window");
		pgm_job_audit(job, peer, "set", pgm_state_name(job->state), NULL, "refused: " PGM_ERR_INVALID_STATE);
		return false;
	}
	if (!cJSON_IsObject(given) || given->child == NULL) {
		*code = PGM_ERR_INVALID_ARGUMENT;
		*message = pgm_strdup("set needs at least one option");
		*hint = pgm_strdup("pgmover set JOB --set key=value [--set key=value ...]");
		return false;
	}
	opts = cJSON_Duplicate(job->options, 1);
	if (!pgm_job_options_apply(opts, given, &err)) {
		cJSON_Delete(opts);
		*code = PGM_ERR_INVALID_ARGUMENT;
		*message = err;
		*hint = pgm_strdup("see pgmoverd.conf(5) for the job options and their values");
		pgm_job_audit(job, peer, "set", pgm_state_name(job->state), NULL, "refused: " PGM_ERR_INVALID_ARGUMENT);
		return false;
	}
	old = job->options;
	job->options = opts;
	if (!pgm_job_save(job)) {
		job->options = old;
		cJSON_Delete(opts);
		*code = PGM_ERR_INTERNAL;
		*message =
			pgm_asprintf("could not persist the options of job \"%s\": %s", job->name, pgm_store_error());
		*hint = pgm_strdup("check free space and permissions of state_dir; the options are unchanged");
		return false;
	}
	cJSON_Delete(old);
	cJSON_ArrayForEach (it, given) {
		pgm_buf_appendf(&names, "%s%s", names.s ? ", " : "", it->string);
	}
	{
		char *outcome = pgm_asprintf("ok: %s", names.s);

		pgm_job_audit(job, peer, "set", pgm_state_name(job->state), pgm_state_name(job->state), outcome);
		pgm_info("job %s: options changed: %s", job->name, names.s);
		free(outcome);
	}
	free(names.s);
	return true;
}

/*
 * delete: a job that has ended (completed, aborted, rolled back) leaves the
 * registry and its name is free again; its folder -- state.json and the
 * audit trail -- moves to state_dir/.deleted/<name>.<UTC time>, kept, never
 * removed by pgmoverd.
 */
bool
pgm_jobs_delete(pgm_daemon_t *d, pgm_job_t *job, const pgm_peer_t *peer, const char **code, char **message, char **hint)
{
	char *to = NULL;

	*message = *hint = NULL;
	if (!pgm_state_is_terminal(job->state)) {
		char *allowed = pgm_fsm_allowed_commands(job->state, job->failed_from, pgm_job_traffic_moved(job));

		*code = PGM_ERR_INVALID_STATE;
		*message = pgm_asprintf("job \"%s\" is %s: only a job that has ended can be deleted", job->name,
					pgm_state_name(job->state));
		*hint = pgm_asprintf("finish, abort or roll the job back first (commands accepted now: %s)", allowed);
		free(allowed);
		pgm_job_audit(job, peer, "delete", pgm_state_name(job->state), NULL, "refused: " PGM_ERR_INVALID_STATE);
		return false;
	}
	pgm_job_audit(job, peer, "delete", pgm_state_name(job->state), NULL, "ok: archived");
	if (!archive_dir(d, job->name, job->dir, &to)) {
		*code = PGM_ERR_INTERNAL;
		*message = pgm_asprintf("could not move \"%s\" to \"%s\": %s", job->dir, to, strerror(errno));
		*hint = pgm_strdup("check the permissions of state_dir; the job is unchanged");
		free(to);
		return false;
	}
	pgm_info("job %s: deleted; its state and audit trail are kept in %s", job->name, to);
	free(to);
	pgm_job_release(job);
	return true;
}
