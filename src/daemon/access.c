/*
 * access.c — the control socket's access rule: which peer uids may run
 * the commands that change jobs (admin_users, admin_group of
 * pgmoverd.conf), and the socket modes pgmoverd refuses. The decision
 * itself is pure (pgm_access_decide) so the unit tests cover it; the user
 * and group look-ups around it are the system's (NSS).
 */
#include "daemon/access.h"
#include "common/util.h"

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool
pgm_socket_mode_ok(int mode)
{
	return mode >= 0 && (mode & ~0660) == 0;
}

/* a whole decimal number that fits an id_t, for "1002" given as a uid or gid */
static bool
parse_id(const char *s, unsigned long *out)
{
	char *end;

	if (*s == '\0' || !isdigit((unsigned char) *s))
		return false;
	errno = 0;
	*out = strtoul(s, &end, 10);
	return errno == 0 && *end == '\0' && *out < (unsigned long) (uid_t) -1;
}

bool
pgm_access_parse_users(pgm_access_t *acc, const char *text, char **err)
{
	char *copy = pgm_strdup(text ? text : ""), *save = NULL;
	uid_t *uids = NULL;
	int n = 0;

	*err = NULL;
	for (char *tok = strtok_r(copy, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
		unsigned long id;
		struct passwd *pw;

		if (parse_id(tok, &id)) {
			uids = pgm_realloc(uids, sizeof(*uids) * (size_t) (n + 1));
			uids[n++] = (uid_t) id;
			continue;
		}
		pw = getpwnam(tok);
		if (pw == NULL) {
			*err = pgm_asprintf("admin_users: there is no user named \"%s\" on this system", tok);
			free(uids);
			free(copy);
			return false;
		}
		uids = pgm_realloc(uids, sizeof(*uids) * (size_t) (n + 1));
		uids[n++] = pw->pw_uid;
	}
	free(copy);
	free(acc->uids);
	acc->uids = uids;
	acc->nuids = n;
	return true;
}

bool
pgm_access_parse_group(pgm_access_t *acc, const char *name, char **err)
{
	unsigned long id;
	struct group *gr;

	*err = NULL;
	if (name == NULL || *name == '\0') {
		acc->has_group = false;
		return true;
	}
	if (parse_id(name, &id)) {
		acc->has_group = true;
		acc->gid = (gid_t) id;
		return true;
	}
	gr = getgrnam(name);
	if (gr == NULL) {
		*err = pgm_asprintf("admin_group: there is no group named \"%s\" on this system", name);
		return false;
	}
	acc->has_group = true;
	acc->gid = gr->gr_gid;
	return true;
}

void
pgm_access_free(pgm_access_t *acc)
{
	free(acc->uids);
	memset(acc, 0, sizeof(*acc));
}

bool
pgm_access_decide(const pgm_access_t *acc, uid_t daemon_uid, uid_t uid, gid_t gid, const gid_t *groups, int ngroups)
{
	if (uid == (uid_t) -1)
		return false;
	if (uid == 0 || uid == daemon_uid)
		return true;
	for (int i = 0; i < acc->nuids; i++)
		if (acc->uids[i] == uid)
			return true;
	if (!acc->has_group)
		return false;
	if (gid == acc->gid)
		return true;
	for (int i = 0; i < ngroups; i++)
		if (groups[i] == acc->gid)
			return true;
	return false;
}

bool
pgm_access_allowed(const pgm_access_t *acc, uid_t daemon_uid, uid_t uid, gid_t gid)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	gid_t groups[256];
	int ngroups = (int) PGM_ARRAY_LEN(groups);

	if (pgm_access_decide(acc, daemon_uid, uid, gid, NULL, 0))
		return true;
	if (!acc->has_group || uid == (uid_t) -1)
		return false;
	/* a uid with no user has no groups but the process's own gid */
	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) != 0 || res == NULL)
		return false;
	/* more than 256 groups: the first 256 are looked at (getgrouplist fills what fits) */
	if (getgrouplist(pw.pw_name, pw.pw_gid, groups, &ngroups) < 0)
		ngroups = (int) PGM_ARRAY_LEN(groups);
	return pgm_access_decide(acc, daemon_uid, uid, gid, groups, ngroups);
}

char *
pgm_access_user_name(uid_t uid)
{
	struct passwd pw, *res = NULL;
	char buf[4096];

	if (uid == (uid_t) -1)
		return pgm_strdup("a caller whose uid the kernel did not give");
	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) == 0 && res != NULL)
		return pgm_asprintf("%s (uid %u)", pw.pw_name, (unsigned) uid);
	return pgm_asprintf("uid %u", (unsigned) uid);
}
