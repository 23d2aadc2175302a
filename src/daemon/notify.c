/*
 * notify.c — one datagram to $NOTIFY_SOCKET per message. An abstract
 * socket name starts with '@'.
 */
#include "daemon/notify.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

bool
pgm_notify(const char *message)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa;
	socklen_t salen;
	size_t n;
	int fd;
	bool ok;

	if (path == NULL || (path[0] != '/' && path[0] != '@'))
		return false;
	n = strlen(path);
	if (n >= sizeof(sa.sun_path))
		return false;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, n);
	if (path[0] == '@')
		sa.sun_path[0] = '\0';
	salen = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + n);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	ok = sendto(fd, message, strlen(message), MSG_NOSIGNAL, (struct sockaddr *) &sa, salen) >= 0;
	close(fd);
	return ok;
}
