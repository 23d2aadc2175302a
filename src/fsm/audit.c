/*
 * audit.c — audit.jsonl: one line per command received and per transition,
 * appended and fsync'd before anyone is answered. It is the compliance
 * evidence: who (SO_PEERCRED uid/pid, and the user name of that uid) asked
 * what, when, and what happened. Each line carries as "prev" the SHA-256 of
 * the line before it (audit.h), so a line changed, removed or moved later
 * breaks the chain at that place; pgm_audit_check finds where.
 */
#include "fsm/audit.h"
#include "common/inject.h"
#include "common/log.h"
#include "common/redact.h"
#include "common/util.h"
#include "fsm/job.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void
pgm_audit_hash(const char *data, size_t len, char out[PGM_AUDIT_HASH_HEX])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	/* SHA-256 cannot fail on memory already in hand; abort rather than chain a wrong hash */
	if (EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) != 1 || n != 32) {
		pgm_error("SHA-256 from libcrypto failed");
		abort();
	}
	for (unsigned int i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

char *
pgm_audit_genesis_text(const char *job, int64_t created_ms)
{
	char ts[40];

	pgm_format_time(created_ms, ts, sizeof(ts));
	return pgm_asprintf("pgmover audit trail of job %s created at %s", job, ts);
}

void
pgm_audit_genesis(const char *job, int64_t created_ms, char out[PGM_AUDIT_HASH_HEX])
{
	char *text = pgm_audit_genesis_text(job, created_ms);

	pgm_audit_hash(text, strlen(text), out);
	free(text);
}

/* one line of a trail: where it starts and how long it is, without its newline */
typedef struct line_s {
	const char *s;
	size_t len;
	bool torn; /* no newline at its end */
} line_t;

/* the "prev" of a line, copied into out; false when it has none (or it is not a string) */
static bool
line_prev(const line_t *l, char out[PGM_AUDIT_HASH_HEX], bool *is_object)
{
	cJSON *o = cJSON_ParseWithLength(l->s, l->len);
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "prev");
	bool ok = cJSON_IsString(p);

	*is_object = cJSON_IsObject(o);
	out[0] = '\0';
	if (ok)
		snprintf(out, PGM_AUDIT_HASH_HEX, "%s", p->valuestring);
	cJSON_Delete(o);
	return ok;
}

static void
set_broken(pgm_audit_check_t *r, int line, char *reason, const char *expected, const char *found)
{
	r->intact = false;
	r->broken_line = line;
	r->reason = reason;
	snprintf(r->expected, sizeof(r->expected), "%s", expected ? expected : "");
	snprintf(r->found, sizeof(r->found), "%s", found ? found : "");
}

bool
pgm_audit_check(const char *buf, size_t len, const char *genesis, pgm_audit_check_t *r)
{
	line_t *lines = NULL;
	size_t n = 0, cap = 0;
	char expected[PGM_AUDIT_HASH_HEX], prev[PGM_AUDIT_HASH_HEX];
	bool chained = false;

	memset(r, 0, sizeof(*r));
	r->intact = true;
	for (size_t at = 0; at < len;) {
		const char *nl = memchr(buf + at, '\n', len - at);
		size_t l = nl ? (size_t) (nl - (buf + at)) : len - at;

		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			lines = pgm_realloc(lines, cap * sizeof(*lines));
		}
		lines[n++] = (line_t){buf + at, l, nl == NULL};
		at += l + 1;
	}
	r->lines = (int) n;
	snprintf(expected, sizeof(expected), "%s", genesis);
	snprintf(r->head, sizeof(r->head), "%s", genesis);
	for (size_t i = 0; i < n && r->intact; i++) {
		const line_t *l = &lines[i];
		int no = (int) i + 1;
		bool is_object, has_prev = line_prev(l, prev, &is_object);
		char actual[PGM_AUDIT_HASH_HEX];

		if (l->torn) {
			set_broken(r, no,
				   pgm_asprintf("line %d is incomplete: it does not end in a newline (the file was "
						"cut, or a write was interrupted)",
						no),
				   NULL, NULL);
			break;
		}
		if (!is_object) {
			set_broken(r, no, pgm_asprintf("line %d is not a JSON object", no), NULL, NULL);
			break;
		}
		pgm_audit_hash(l->s, l->len, actual);
		if (!has_prev && !chained) {
			/* written before the trail was chained: counted, not covered */
			r->unchained++;
			snprintf(expected, sizeof(expected), "%s", actual);
			snprintf(r->head, sizeof(r->head), "%s", actual);
			continue;
		}
		if (!has_prev) {
			set_broken(
				r, no,
				pgm_asprintf(
					"line %d has no \"prev\" hash, as every line after the first chained one must",
					no),
				expected, NULL);
			break;
		}
		chained = true;
		if (strcmp(prev, expected) != 0) {
			char next_prev[PGM_AUDIT_HASH_HEX];
			bool next_object;
			/* this line is consistent with the next one (or is the last): the one before changed */
			bool this_intact =
				i + 1 == n || lines[i + 1].torn ||
				(line_prev(&lines[i + 1], next_prev, &next_object) && strcmp(next_prev, actual) == 0);

			if (i > 0 && this_intact)
				set_broken(r, no - 1,
					   pgm_asprintf("line %d was changed (or a line after it removed): line %d "
							"records its hash as %s, its bytes hash to %s",
							no - 1, no, prev, expected),
					   prev, expected);
			else if (i == 0)
				set_broken(
					r, no,
					pgm_asprintf("line 1 does not start the chain: its \"prev\" is %s, the hash of "
						     "the job's genesis is %s (lines removed from the start, or line 1 "
						     "changed)",
						     prev, expected),
					expected, prev);
			else
				set_broken(
					r, no,
					pgm_asprintf("line %d does not follow line %d: its \"prev\" is %s, line %d "
						     "hashes to %s (lines removed, inserted or moved before it, or it "
						     "was changed)",
						     no, no - 1, prev, no - 1, expected),
					expected, prev);
			break;
		}
		snprintf(expected, sizeof(expected), "%s", actual);
		snprintf(r->head, sizeof(r->head), "%s", actual);
	}
	if (r->intact && r->unchained > 0) {
		r->intact = false;
		r->reason =
			pgm_asprintf("lines 1 to %d were written before the audit trail was chained: nothing proves "
				     "they are unchanged",
				     r->unchained);
	}
	free(lines);
	return r->intact;
}

void
pgm_audit_check_free(pgm_audit_check_t *r)
{
	free(r->reason);
	r->reason = NULL;
}

/*
 * Read the end of the file (size bytes) backwards until the last complete
 * line is in hand: *complete_end is where the complete lines end (a torn
 * rest follows), [*last, *last + *last_len) the last complete line.
 * Returns the buffer read (malloc'd) and its file offset in *start.
 */
static char *
tail_read(int fd, off_t size, off_t *start, off_t *complete_end, off_t *last, size_t *last_len)
{
	for (off_t chunk = 8192;; chunk *= 2) {
		off_t from = size > chunk ? size - chunk : 0;
		size_t n = (size_t) (size - from);
		char *buf = pgm_malloc(n + 1);
		ssize_t got = pread(fd, buf, n, from);
		off_t end = -1, begin = -1;

		if (got != (ssize_t) n) {
			if (got >= 0)
				errno = EIO;
			free(buf);
			return NULL;
		}
		/* the complete lines end after the last newline */
		for (off_t i = (off_t) n - 1; i >= 0 && end < 0; i--)
			if (buf[i] == '\n')
				end = i + 1;
		if (end < 0 && from > 0) {
			free(buf);
			continue;
		}
		if (end < 0)
			end = 0;
		/* the last complete line starts after the newline before that one */
		for (off_t i = end - 2; i >= 0 && begin < 0; i--)
			if (buf[i] == '\n')
				begin = i + 1;
		if (begin < 0 && from > 0 && end > 0) {
			free(buf);
			continue;
		}
		if (begin < 0)
			begin = 0;
		*start = from;
		*complete_end = from + end;
		*last = from + begin;
		*last_len = end > begin ? (size_t) (end - begin - 1) : 0;
		return buf;
	}
}

/* keep a torn tail's bytes beside the trail before it is cut off (evidence too) */
static void
keep_torn(const char *path, const char *data, size_t len)
{
	char ts[40], *torn;

	pgm_format_time(pgm_now_ms(), ts, sizeof(ts));
	torn = pgm_asprintf("%s.torn-%s", path, ts);
	if (!pgm_file_replace(torn, data, len, 0600))
		pgm_warning("could not keep the torn end of the audit trail in \"%s\": %s", torn, strerror(errno));
	free(torn);
}

/*
 * The head of the trail at path: the hash of its last complete line, or the
 * genesis of (name, created_ms) when it has none. A torn end is cut off.
 */
static bool
recover_file(const char *path, const char *name, int64_t created_ms, char head[PGM_AUDIT_HASH_HEX], bool *known,
	     char **note)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);
	struct stat st;
	off_t start, complete_end, last;
	size_t last_len;
	char *buf;
	int e;

	*note = NULL;
	*known = false;
	if (fd < 0 && errno == ENOENT) {
		pgm_audit_genesis(name, created_ms, head);
		*known = true;
		return true;
	}
	if (fd < 0 || fstat(fd, &st) != 0)
		goto fail;
	if (st.st_size == 0) {
		pgm_audit_genesis(name, created_ms, head);
		*known = true;
		close(fd);
		return true;
	}
	buf = tail_read(fd, st.st_size, &start, &complete_end, &last, &last_len);
	if (buf == NULL)
		goto fail;
	if (complete_end < st.st_size) {
		size_t torn = (size_t) (st.st_size - complete_end);

		keep_torn(path, buf + (complete_end - start), torn);
		if (ftruncate(fd, complete_end) != 0 || fsync(fd) != 0) {
			free(buf);
			goto fail;
		}
		*note = pgm_asprintf("the audit trail ended in a torn line of %zu bytes (a write not finished, e.g. at "
				     "a crash); it was cut off and kept in audit.jsonl.torn-*",
				     torn);
	}
	if (complete_end == 0)
		pgm_audit_genesis(name, created_ms, head);
	else
		pgm_audit_hash(buf + (last - start), last_len, head);
	*known = true;
	free(buf);
	close(fd);
	return true;
fail:
	e = errno;
	if (fd >= 0)
		close(fd);
	errno = e;
	return false;
}

bool
pgm_audit_recover(pgm_job_t *job, char **note)
{
	char *path = pgm_asprintf("%s/audit.jsonl", job->dir);
	bool ok = recover_file(path, job->name, job->created_ms, job->audit_head, &job->audit_head_known, note);

	free(path);
	return ok;
}

/* the user name of uid, or NULL (static: the answer of getpwuid_r into a buffer of ours) */
static const char *
user_name(uid_t uid, char *buf, size_t len)
{
	struct passwd pw, *found = NULL;

	if (getpwuid_r(uid, &pw, buf, len, &found) != 0 || found == NULL)
		return NULL;
	return found->pw_name;
}

/* the fields of a line but "prev": when, which job, who (or the daemon itself), what, the outcome */
static cJSON *
audit_line(const char *job, const pgm_peer_t *peer, const char *command, const char *from, const char *to,
	   const char *outcome)
{
	cJSON *o = cJSON_CreateObject();
	char ts[40], pwbuf[1024];
	const char *user;

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
		/* the name at the time: a uid may be given to someone else later */
		if (peer->uid != (uid_t) -1 && (user = user_name(peer->uid, pwbuf, sizeof(pwbuf))) != NULL)
			cJSON_AddStringToObject(o, "user", user);
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
	return o;
}

/*
 * Append o with "prev" = head (recovered from the file first when not
 * known), and move the head on. False (errno set) when the line could not be
 * written: pgmoverd's log then keeps the whole line, so nothing is lost.
 */
static bool
append_chained(const char *path, cJSON *o, const char *name, int64_t created_ms, char head[PGM_AUDIT_HASH_HEX],
	       bool *known)
{
	char *line, *note = NULL;
	bool ok;

	if (!*known && !recover_file(path, name, created_ms, head, known, &note))
		pgm_error("could not read the end of the audit trail \"%s\": %s; this line breaks its chain", path,
			  strerror(errno));
	if (note) {
		pgm_warning("%s: %s", path, note);
		free(note);
	}
	if (*known)
		cJSON_AddStringToObject(o, "prev", head);
	else
		cJSON_AddNullToObject(o, "prev");
	line = pgm_redact_print(o); /* an outcome may quote a server's error */
	if (PGM_INJECT("store.audit")) {
		errno = ENOSPC;
		ok = false;
	} else {
		ok = pgm_file_append_line(path, line, 0600);
	}
	if (ok) {
		pgm_audit_hash(line, strlen(line), head);
		*known = true;
	} else {
		int e = errno;

		/* the line itself, so that the log keeps what the trail lost */
		pgm_error("could not append to audit log \"%s\": %s; the line was: %s", path, strerror(e), line);
		/* part of it may be there: the next line finds the end again */
		*known = false;
		errno = e;
	}
	free(line);
	return ok;
}

void
pgm_job_audit(pgm_job_t *job, const pgm_peer_t *peer, const char *command, const char *from, const char *to,
	      const char *outcome)
{
	cJSON *o = audit_line(job->name, peer, command, from, to, outcome);
	char *path = pgm_asprintf("%s/audit.jsonl", job->dir);

	if (!append_chained(path, o, job->name, job->created_ms, job->audit_head, &job->audit_head_known)) {
		char *msg = pgm_asprintf("the audit trail \"%s\" could not be written (%s): \"%s\" is missing from it",
					 path, strerror(errno), command);

		pgm_job_warn(job, msg, "free space in state_dir or fix its permissions; pgmoverd's log has every line");
		free(msg);
	}
	free(path);
	cJSON_Delete(o);
}

/*
 * A trail no loaded job keeps the head of -- pgmoverd's own
 * (state_dir/audit.jsonl, genesis "... of job pgmoverd created at
 * 1970-01-01T00:00:00.000Z") or a corrupt job's: the head is read from the
 * file's end for each line.
 */
bool
pgm_audit_append(const char *path, const char *job, const pgm_peer_t *peer, const char *command, const char *from,
		 const char *to, const char *outcome)
{
	cJSON *o = audit_line(job, peer, command, from, to, outcome);
	char head[PGM_AUDIT_HASH_HEX];
	bool known = false, ok;

	ok = append_chained(path, o, job ? job : "pgmoverd", 0, head, &known);
	cJSON_Delete(o);
	return ok;
}
