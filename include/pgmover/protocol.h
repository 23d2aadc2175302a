/*
 * pgmover/protocol.h — the contract runbooks rely on: the control socket's
 * protocol version, its error codes, and the CLI's exit codes. Fields and
 * codes are only ever added, never renamed or removed.
 */
#ifndef PGMOVER_PROTOCOL_H
#define PGMOVER_PROTOCOL_H

/* the version `version` reports; a new version only adds fields */
#define PGM_PROTOCOL_VERSION 1
/* one request or reply line at most */
#define PGM_MAX_LINE (1024 * 1024)

/* error.code values of a refused request */
#define PGM_ERR_BAD_REQUEST "bad_request"
#define PGM_ERR_UNKNOWN_COMMAND "unknown_command"
#define PGM_ERR_NO_SUCH_JOB "no_such_job"
#define PGM_ERR_JOB_EXISTS "job_exists"
#define PGM_ERR_INVALID_STATE "invalid_state"
#define PGM_ERR_INVALID_ARGUMENT "invalid_argument"
#define PGM_ERR_NOT_AVAILABLE "not_available"
#define PGM_ERR_LINE_TOO_LONG "line_too_long"
#define PGM_ERR_TOO_MANY_CLIENTS "too_many_clients"
#define PGM_ERR_SHUTTING_DOWN "shutting_down"
#define PGM_ERR_INTERNAL "internal"
/* a command that changes something, from a uid not allowed to (admin_users, admin_group) */
#define PGM_ERR_PERMISSION_DENIED "permission_denied"
/* the job's state.json (or secrets.json) could not be read back: nothing runs on it */
#define PGM_ERR_JOB_CORRUPT "job_corrupt"
/* rollback (or retry of a failed one) would lose the writes made on the target to a table the reverse
 * stream does not carry; args.accept_loss accepts that */
#define PGM_ERR_WOULD_LOSE_WRITES "would_lose_writes"
/*
 * Every code above, for the daemon's reply builder: it sends no other (a
 * code missing here goes out as PGM_ERR_INTERNAL, logged as a bug). A new
 * code is added to both lists.
 */
#define PGM_ERR_CODES                                                                                                 \
	PGM_ERR_BAD_REQUEST, PGM_ERR_UNKNOWN_COMMAND, PGM_ERR_NO_SUCH_JOB, PGM_ERR_JOB_EXISTS, PGM_ERR_INVALID_STATE, \
		PGM_ERR_INVALID_ARGUMENT, PGM_ERR_NOT_AVAILABLE, PGM_ERR_LINE_TOO_LONG, PGM_ERR_TOO_MANY_CLIENTS,     \
		PGM_ERR_SHUTTING_DOWN, PGM_ERR_INTERNAL, PGM_ERR_PERMISSION_DENIED, PGM_ERR_JOB_CORRUPT,              \
		PGM_ERR_WOULD_LOSE_WRITES

/* exit codes of the pgmover CLI */
#define PGM_EXIT_OK 0          /* success */
#define PGM_EXIT_FAILED 1      /* the daemon refused, or the step or check failed */
#define PGM_EXIT_USAGE 2       /* bad command line */
#define PGM_EXIT_UNREACHABLE 3 /* cannot reach the daemon, or it did not reply in time */

#endif
