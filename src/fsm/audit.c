/*
 * audit.c — audit.jsonl: one line per command received and per transition,
 * appended and fsync'd before anyone is answered. It is the compliance
 * evidence: who (SO_PEERCRED uid/pid) asked what, when, and what happened.
 */
#include "common/inject.h"
#include "common/log.h"
#include "common/util.h"
#include "fsm/job.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void
pgm_job_audit(pgm_job_t *job, const pgm_peer_t *peer, const char *command, const char *from, const char *to,
	      const char *outcome)
{
	char *path = pgm_asprintf("%s/audit.jsonl", job->dir);

	if (!pgm_audit_append(path, job->name, peer, command, from, to, outcome)) {
		char *msg = pgm_asprintf("the audit trail \"%s\" could not be written (%s): \"%s\" is missing from it",
					 path, strerror(errno), command);

		pgm_job_warn(job, msg, "free space in state_dir or fix its permissions; pgmoverd's log has every line");
		free(msg);
	}
	free(path);
}

bool
pgm_audit_append(const char *path, const char *job, const pgm_peer_t *peer, const char *command, const char *from,
		 const char *to, const char *outcome)
{
	cJSON *o = cJSON_CreateObject();
	char ts[40], *line;
	bool ok;

	pgm_format_time(pgm_now_ms(), ts, sizeof(ts));
	cJSON_AddStringToObject(o, "time", ts);
	if (job)
		cJSON_AddStringToObject(o, "job", job);
	else
		cJSON_AddNullToObject(o, "job");
	if (peer) {
		/* -1: the kernel did not say (SO_PEERCRED failed) */
		if (peer->uid == (uid_t) -1)
			cJSON_AddNullToObject(o, "uid");
		else
			cJSON_AddNumberToObject(o, "uid", (double) peer->uid);
		if (peer->gid == (gid_t) -1)
			cJSON_AddNullToObject(o, "gid");
		else
			cJSON_AddNumberToObject(o, "gid", (double) peer->gid);
		if (peer->pid < 0)
			cJSON_AddNullToObject(o, "pid");
		else
			cJSON_AddNumberToObject(o, "pid", (double) peer->pid);
	} else {
		cJSON_AddStringToObject(o, "by", "pgmoverd");
	}
	/* operators send commands; the daemon takes events (done, error, deadline) */
	cJSON_AddStringToObject(o, peer ? "command" : "event", command);
	if (from)
		cJSON_AddStringToObject(o, "from", from);
	if (to)
		cJSON_AddStringToObject(o, "to", to);
	cJSON_AddStringToObject(o, "outcome", outcome ? outcome : "ok");
	line = cJSON_PrintUnformatted(o);
	if (PGM_INJECT("store.audit")) {
		errno = ENOSPC;
		ok = false;
	} else {
		ok = pgm_file_append_line(path, line, 0600);
	}
	if (!ok) {
		int e = errno;

		/* the line itself, so that the log keeps what the trail lost */
		pgm_error("could not append to audit log \"%s\": %s; the line was: %s", path, strerror(e), line);
		errno = e;
	}
	free(line);
	cJSON_Delete(o);
	return ok;
}
