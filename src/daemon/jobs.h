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

struct pgm_daemon {
	pgm_host_t host; /* loop, jobs, stopping: what the jobs see */
	pgm_config_t cfg;
	char *config_path;
	struct pgm_control *control;
	int64_t started_ms;
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
/* load every job from state_dir and resume each from its last durable step */
bool pgm_jobs_load_all(pgm_daemon_t *d);

#endif
