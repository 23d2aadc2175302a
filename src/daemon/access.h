/*
 * access.h — who may change jobs over the control socket: root, the
 * daemon's own user, the uids of admin_users and the members of
 * admin_group; and which socket modes pgmoverd accepts.
 */
#ifndef PGM_ACCESS_H
#define PGM_ACCESS_H

#include <stdbool.h>
#include <sys/types.h>

/* admin_users and admin_group, resolved to ids when the file is read */
typedef struct pgm_access {
	uid_t *uids;    /* admin_users, as uids */
	int nuids;      /* entries in uids */
	bool has_group; /* admin_group is set */
	gid_t gid;      /* its gid */
} pgm_access_t;

/*
 * Whether a socket mode is one pgmoverd accepts: no bit outside 0660
 * (nothing for others, no execute bits): who can open the socket may run
 * every read-only command, so at most the daemon's user and its group.
 */
bool pgm_socket_mode_ok(int mode);

/*
 * admin_users ("alice, 1002, bob": user names or uids, comma or space
 * separated) into *acc's uids; false with *err (malloc'd) naming the
 * first entry that is no user. An empty text gives no uids.
 */
bool pgm_access_parse_users(pgm_access_t *acc, const char *text, char **err);
/* admin_group (a group name, or a gid) into *acc; "" for none; false with *err */
bool pgm_access_parse_group(pgm_access_t *acc, const char *name, char **err);
void pgm_access_free(pgm_access_t *acc);

/*
 * The decision, pure: a peer may change jobs when its uid is 0, the
 * daemon's uid, one of acc's uids, or when admin_group is set and is its
 * gid or one of groups (the user's primary and supplementary groups).
 * An unknown uid ((uid_t) -1: SO_PEERCRED failed) never may.
 */
bool pgm_access_decide(const pgm_access_t *acc, uid_t daemon_uid, uid_t uid, gid_t gid, const gid_t *groups,
		       int ngroups);

/*
 * The decision for a peer of the socket: the user's groups are looked up
 * (getpwuid_r, getgrouplist) only when the uid alone does not decide and
 * admin_group is set. Those look-ups go through NSS on the loop's thread:
 * instant for /etc/group, as slow as the directory for LDAP or SSSD, and
 * only for a command that changes something from a user not allowed by uid.
 */
bool pgm_access_allowed(const pgm_access_t *acc, uid_t daemon_uid, uid_t uid, gid_t gid);

/* "alice (uid 1003)", or "uid 1003" for a uid no user has (malloc'd) */
char *pgm_access_user_name(uid_t uid);

#endif
