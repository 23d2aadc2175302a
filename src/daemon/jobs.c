/*
 * jobs.c — the registry of jobs: create, load and resume, status, shutdown.
 */
#include "daemon/jobs.h"
#include "common/log.h"
#include "common/util.h"
#include "daemon/control.h"
#include "fsm/store.h"
#include "pg/dsn.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void pgm_job_schedule_resume(pgm_job_t *job); /* driver.c */
void pgm_job_attach(pgm_job_t *job, pgm_daemon_t *d); /* driver.c */

pgm_job_t *
pgm_jobs_find(pgm_daemon_t *d, const char *name)
{
	for (pgm_job_t *j = d->jobs; j; j = j->next)
		if (strcmp(j->name, name) == 0)
			return j;
	return NULL;
}

/* two DSNs naming the same database on the same server */
static bool
same_database(const pgm_dsn_t *a, const pgm_dsn_t *b)
{
	const char *ha = a->host ? a->host : "", *hb = b->host ? b->host : "";
	const char *pa = a->port ? a->port : "5432", *pb = b->port ? b->port : "5432";
	const char *da = a->dbname ? a->dbname : (a->user ? a->user : "");
	const char *db = b->dbname ? b->dbname : (b->user ? b->user : "");

	return strcmp(ha, hb) == 0 && strcmp(pa, pb) == 0 && strcmp(da, db) == 0;
}

/* "file:/path" or "/path": a pg_dump archive (heroku pg:backups:download) */
static bool
source_is_file(const char *source)
{
	return strncmp(source, "file:", 5) == 0 || source[0] == '/';
}

static const char *
file_path(const char *source)
{
	if (strncmp(source, "file://", 7) == 0)
		return source + 7;
	if (strncmp(source, "file:", 5) == 0)
		return source + 5;
	return source;
}

static pgm_job_t *job_new(pgm_daemon_t *d, const char *name, const char *source, const char *target,
                          const char *method, cJSON *opts, const pgm_peer_t *peer, const char **code,
                          char **message, char **hint);

static pgm_job_t *
create_from_file(pgm_daemon_t *d, const char *name, const char *source, const char *target, const char *method,
                 const cJSON *options, const pgm_peer_t *peer, const char **code, char **message, char **hint)
{
	const char *path = file_path(source);
	pgm_dsn_t td;
	char *err = NULL;
	cJSON *opts;
	struct stat st;

	if (strcmp(method, "dump") != 0) {
		*message = pgm_strdup("a backup file can only be restored with method dump");
		*hint = pgm_strdup("use --method dump with a file source");
		return NULL;
	}
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
		*hint = pgm_strdup("see conf/pgmoverd.conf for the job options and their values");
		return NULL;
	}
	return job_new(d, name, source, target, method, opts, peer, code, message, hint);
}

char *
pgm_source_display(const char *source)
{
	return source_is_file(source) ? pgm_asprintf("file:%s", file_path(source)) : pgm_dsn_masked(source);
}

pgm_job_t *
pgm_jobs_create(pgm_daemon_t *d, const char *name, const char *source, const char *target,
                const char *method, const cJSON *options, const pgm_peer_t *peer, const char **code,
                char **message, char **hint)
{
	pgm_dsn_t sd, td;
	char *err = NULL;
	cJSON *opts;

	*code = "invalid_argument";
	if (!pgm_name_valid(name)) {
		*message = pgm_asprintf("invalid job name \"%s\"", name ? name : "");
		*hint = pgm_strdup("use 1 to 63 letters, digits, '-' or '_', starting with a letter or digit");
		return NULL;
	}
	if (pgm_jobs_find(d, name)) {
		*code = "job_exists";
		*message = pgm_asprintf("job \"%s\" already exists", name);
		*hint = pgm_strdup("choose another name, or see it with \"pgmover status NAME\"");
		return NULL;
	}
	if (!method || (strcmp(method, "dump") != 0 && strcmp(method, "pglogical") != 0)) {
		*message = pgm_asprintf("unknown method \"%s\"", method ? method : "");
		*hint = pgm_strdup("use --method dump (pg_dump/restore, any source) or --method pglogical "
		                   "(logical replication, needs a superuser on the source)");
		return NULL;
	}
	if (source && source_is_file(source))
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
	if (same_database(&sd, &td)) {
		*message = pgm_strdup("source and target are the same database");
		*hint = pgm_strdup("the target must be another database, usually on another server");
		pgm_dsn_free(&sd);
		pgm_dsn_free(&td);
		return NULL;
	}
	pgm_dsn_free(&sd);
	pgm_dsn_free(&td);
	opts = pgm_job_options_build(&d->cfg, options, &err);
	if (opts == NULL) {
		*message = err;
		*hint = pgm_strdup("see conf/pgmoverd.conf for the job options and their values");
		return NULL;
	}
	return job_new(d, name, source, target, method, opts, peer, code, message, hint);
}

/* a validated job: made durable, then registered */
static pgm_job_t *
job_new(pgm_daemon_t *d, const char *name, const char *source, const char *target, const char *method,
        cJSON *opts, const pgm_peer_t *peer, const char **code, char **message, char **hint)
{
	pgm_job_t *job;

	job = pgm_calloc(1, sizeof(*job));
	job->name = pgm_strdup(name);
	job->method = pgm_strdup(method);
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
	job->dir = pgm_asprintf("%s/%s", d->cfg.state_dir, name);
	if (!pgm_mkdir_p(job->dir, 0700) || !pgm_store_save_secrets(job) || !pgm_store_save(job)) {
		*code = "internal";
		*message = pgm_asprintf("could not write the state of job \"%s\" in \"%s\": %s", name, job->dir,
		                        strerror(errno));
		*hint = pgm_strdup("check that state_dir exists and is writable by pgmoverd");
		pgm_job_free(job);
		return NULL;
	}
	pgm_job_attach(job, d);
	pgm_job_audit(job, peer, "create", NULL, "created", "ok");
	pgm_info("job %s: created (method %s, source %s, target %s)", name, method, job->source_display,
	         job->target_display);
	return job;
}

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
		if (stat(statefile, &st) != 0) {
			free(statefile);
			free(path);
			continue;
		}
		free(statefile);
		job = pgm_store_load(path, &err);
		free(path);
		if (job == NULL) {
			pgm_error("could not load job \"%s\": %s", de->d_name, err);
			free(err);
			continue;
		}
		pgm_job_attach(job, d);
		n++;
		pgm_info("job %s: loaded in state %s", job->name, pgm_state_name(job->state));
		pgm_job_audit(job, NULL, "resume", pgm_state_name(job->state), pgm_state_name(job->state), "ok");
		pgm_job_schedule_resume(job);
	}
	closedir(dir);
	pgm_info("loaded %d job(s) from \"%s\"", n, d->cfg.state_dir);
	return true;
}

cJSON *
pgm_job_status(const pgm_job_t *job)
{
	cJSON *o = pgm_store_job_json(job);
	cJSON *progress = cJSON_DetachItemFromObject(o, "progress");
	const cJSON *lag = cJSON_GetObjectItem(job->facts, "lag");
	char *allowed = pgm_fsm_allowed_commands(job->state, job->failed_from);

	cJSON_DeleteItemFromObject(o, "version");
	cJSON_AddItemToObject(o, "step", progress ? progress : cJSON_CreateNull());
	cJSON_AddItemToObject(o, "lag_bytes",
	                      cJSON_Duplicate(cJSON_GetObjectItem(lag, "bytes"), 1) ?: cJSON_CreateNull());
	cJSON_AddItemToObject(o, "lag_seconds",
	                      cJSON_Duplicate(cJSON_GetObjectItem(lag, "seconds"), 1) ?: cJSON_CreateNull());
	cJSON_AddStringToObject(o, "allowed_commands", allowed);
	free(allowed);
	return o;
}

void
pgm_job_emit(pgm_job_t *job, cJSON *event)
{
	if (job->daemon && job->daemon->control)
		pgm_control_broadcast(job->daemon, job->name, event);
	cJSON_Delete(event);
}

void
pgm_job_warn(pgm_job_t *job, const char *message, const char *hint)
{
	cJSON *w = cJSON_CreateObject();
	char ts[40];
	const cJSON *it;

	/* the same warning twice is noise: keep the first */
	cJSON_ArrayForEach(it, job->warnings)
	{
		const char *m = cJSON_GetStringValue(cJSON_GetObjectItem(it, "message"));
		if (m && strcmp(m, message) == 0) {
			cJSON_Delete(w);
			return;
		}
	}
	pgm_format_time(pgm_now_ms(), ts, sizeof(ts));
	cJSON_AddStringToObject(w, "message", message);
	if (hint)
		cJSON_AddStringToObject(w, "hint", hint);
	cJSON_AddStringToObject(w, "at", ts);
	cJSON_AddItemToArray(job->warnings, w);
	pgm_warning("job %s: %s%s%s", job->name, message, hint ? "; hint: " : "", hint ? hint : "");
}

void
pgm_job_free(pgm_job_t *job)
{
	if (job == NULL)
		return;
	free(job->name);
	free(job->method);
	if (job->source_dsn)
		memset(job->source_dsn, 0, strlen(job->source_dsn));
	if (job->target_dsn)
		memset(job->target_dsn, 0, strlen(job->target_dsn));
	free(job->source_dsn);
	free(job->target_dsn);
	free(job->source_display);
	free(job->target_display);
	free(job->dir);
	cJSON_Delete(job->options);
	cJSON_Delete(job->facts);
	cJSON_Delete(job->artifacts);
	cJSON_Delete(job->progress);
	cJSON_Delete(job->error);
	cJSON_Delete(job->verify);
	cJSON_Delete(job->warnings);
	free(job);
}
