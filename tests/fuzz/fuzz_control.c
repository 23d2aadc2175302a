/*
 * fuzz_control.c
 *    Fuzz harness of the control-socket request parser
 *    (pgm_control_handle_line, src/daemon/control.c): the input is one
 *    request line, answered in-process by a daemon set up as
 *    tests/unit/test_protocol.c sets one up (a loop that is never run for a
 *    request, a state directory under /tmp). The reply must never be NULL and
 *    must carry "ok". Every input starts from a daemon without jobs: a job a
 *    "create" made is shut down and its directory removed, so that no later
 *    input can start a step that would connect to a server.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "common/util.h"
#include "daemon/control.h"
#include "fsm/job.h"
#include "fuzz.h"

static pgm_daemon_t d;
static uv_loop_t loop;
static char state_dir[64];
static bool ready;

static void
cleanup(void)
{
	pgm_jobs_shutdown(&d.host);
	for (int i = 0; i < 100 && uv_loop_alive(&loop); i++)
		uv_run(&loop, UV_RUN_NOWAIT);
	if (state_dir[0])
		pgm_rmtree(state_dir);
}

static bool
setup(void)
{
	pgm_log_set_level(PGM_LOG_ERROR);
	memset(&d, 0, sizeof(d));
	if (uv_loop_init(&loop) != 0)
		return false;
	d.host.loop = &loop;
	pgm_config_init(&d.cfg);
	snprintf(state_dir, sizeof(state_dir), "/tmp/pgm-fuzz-control-XXXXXX");
	if (mkdtemp(state_dir) == NULL) {
		state_dir[0] = '\0';
		return false;
	}
	free(d.cfg.state_dir);
	d.cfg.state_dir = pgm_strdup(state_dir);
	atexit(cleanup);
	return true;
}

/* back to a daemon without jobs and an empty state directory */
static void
reset(void)
{
	if (d.host.jobs == NULL)
		return;
	cleanup();
	if (mkdir(state_dir, 0700) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cJSON *reply;

	if (!ready) {
		if (!setup())
			abort();
		ready = true;
	}
	reply = pgm_control_handle_line(&d, NULL, (const char *) data, size);
	if (reply == NULL || !cJSON_IsBool(cJSON_GetObjectItem(reply, "ok")))
		abort();
	cJSON_Delete(reply);
	reset();
	return 0;
}
