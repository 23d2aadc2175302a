/*
 * audit.c — audit.jsonl: one line per command received and per transition,
 * appended and fsync'd before anyone is answered. It is the compliance
 * evidence: who (SO_PEERCRED uid/pid) asked what, when, and what happened.
 */
#include "common/log.h"
#include "common/redact.h"
#include "common/util.h"
#include "fsm/job.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void
pgm_job_audit(pgm_job_t *job, const pgm_peer_t *peer, const char *command, const char *from, const char *to,
	      const char *outcome)
{
	cJSON *o = cJSON_CreateObject();
	char ts[40], *line, *path;

	pgm_format_time(pgm_now_ms(), ts, sizeof(ts));
	cJSON_AddStringToObject(o, "time", ts);
	cJSON_AddStringToObject(o, "job", job->name);
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
	line = pgm_redact_print(o); /* an outcome may quote a server's error */
	path = pgm_asprintf("%s/audit.jsonl", job->dir);
	if (!pgm_file_append_line(path, line, 0600))
		pgm_error("could not append to audit log \"%s\": %s", path, strerror(errno));
	free(path);
	free(line);
	cJSON_Delete(o);
}
