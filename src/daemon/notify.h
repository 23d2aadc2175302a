/*
 * notify.h — systemd's notify protocol (READY=1, STATUS=..., STOPPING=1)
 * spoken directly on $NOTIFY_SOCKET, so Type=notify works without libsystemd.
 */
#ifndef PGM_NOTIFY_H
#define PGM_NOTIFY_H

#include <stdbool.h>

/* send one message; true when sent, false when there is no NOTIFY_SOCKET */
bool pgm_notify(const char *message);

#endif
