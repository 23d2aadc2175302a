/*
 * jobs.h — the daemon and its registry of jobs: create (validated), load
 * and resume. The job model itself is fsm/job.h.
 */
#ifndef PGM_JOBS_H
#define PGM_JOBS_H

#include "daemon/config.h"
#include "fsm/job.h"

typedef struct pgm_daemon pgm_daemon_t;
struct pgm_control;
struct pgm_metrics_http;

/*
 * A job folder in state_dir whose state.json (or secrets.json) could not
 * be read back at start: not loaded, nothing runs on it, its name is
 * taken until the operator restores the file or archives the folder
 * (delete with force).
 */
typedef struct pgm_corrupt {
	char *name;    /* the folder's name: the job's */
	char *dir;     /* state_dir/<name> */
	char *problem; /* what is wrong with which file */
	struct pgm_corrupt *next;
} pgm_corrupt_t;

struct pgm_daemon {
	pgm_host_t host; /* loop, jobs, stopping: what the jobs see */
	pgm_config_t cfg;
	char *config_path;
	struct pgm_control *control;
	struct pgm_metrics_http *metrics; /* the metrics endpoint, NULL when metrics_listen is empty */
	int64_t started_ms;
	uid_t uid;              /* pgmoverd's own (effective) uid: it may change jobs */
	pgm_corrupt_t *corrupt; /* folders that did not load, newest first */
};

/* registry */
pgm_job_t *pgm_jobs_find(pgm_daemon_t *d, const char *name);
/*
 * Create a job (validated) and persist it; on error returns NULL with a
 * code (PGM_ERR_INVALID_ARGUMENT, _JOB_EXISTS, _INTERNAL) and a message/hint.
 */
pgm_job_t *pgm_jobs_create(pgm_daemon_t *d, const char *name, const char *source, const char *target,
			   const char *method, const cJSON *options, const pgm_peer_t *peer, const char **code,
			   char **message, char **hint);
/* change a job's options (validated, audited, durable) where no step reads them half-way */
bool pgm_jobs_set_options(pgm_job_t *job, const cJSON *given, const pgm_peer_t *peer, const char **code, char **message,
			  char **hint);
/* remove an ended job from the registry; its folder goes to state_dir/.deleted/, kept */
bool pgm_jobs_delete(pgm_daemon_t *d, pgm_job_t *job, const pgm_peer_t *peer, const char **code, char **message,
		     char **hint);
/*
 * load every job from state_dir and resume each from its last durable step;
 * a folder whose state does not read back goes to d->corrupt
 */
bool pgm_jobs_load_all(pgm_daemon_t *d);

/* the corrupt folder named name, or NULL */
pgm_corrupt_t *pgm_jobs_find_corrupt(pgm_daemon_t *d, const char *name);
/* the message and hint of a job_corrupt refusal (malloc'd) */
void pgm_jobs_corrupt_error(const pgm_daemon_t *d, const pgm_corrupt_t *c, char **message, char **hint);
/* how a corrupt folder is listed by jobs and status: {name, state "corrupt", error} */
cJSON *pgm_jobs_corrupt_json(const pgm_daemon_t *d, const pgm_corrupt_t *c);
/* delete with force: the folder moves to state_dir/.deleted/, audited; c is freed on success */
bool pgm_jobs_delete_corrupt(pgm_daemon_t *d, pgm_corrupt_t *c, const pgm_peer_t *peer, const char **code,
			     char **message, char **hint);
/* free the list of corrupt folders */
void pgm_jobs_free_corrupt(pgm_daemon_t *d);

/*
 * One line in the daemon's own audit, state_dir/audit.jsonl, for what no
 * loaded job's audit trail can take: a refused create, a command on a
 * corrupt job or one no job has. job may be NULL.
 */
void pgm_daemon_audit(pgm_daemon_t *d, const char *job, const pgm_peer_t *peer, const char *command,
		      const char *outcome);

#endif
