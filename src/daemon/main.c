/*
 * main.c — pgmoverd: one libuv loop for every job, the control socket,
 * signals (TERM/INT stop, HUP reloads) and systemd notification.
 */
#include "common/inject.h"
#include "common/log.h"
#include "common/settings.h"
#include "common/util.h"
#include "daemon/config.h"
#include "daemon/control.h"
#include "daemon/jobs.h"
#include "daemon/metrics.h"
#include "daemon/notify.h"
#include "fsm/fsm.h"
#include "pg/proc.h"
#include "pgm_config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static pgm_daemon_t daemon_state;
static uv_signal_t sig_term, sig_int, sig_hup;
static uv_timer_t tick_timer;

static void
usage(FILE *out)
{
	fprintf(out,
		"pgmoverd — the pgmover daemon: drives PostgreSQL migration jobs\n\n"
		"Usage: pgmoverd [-c FILE] [--check]\n"
		"       pgmoverd --describe[=dot] | --describe-config | --version | --help\n\n"
		"  -c, --config FILE     configuration file (default %s)\n"
		"      --check           validate the configuration file and exit\n"
		"      --describe[=dot]  print the job state machine (text or graphviz) and exit\n"
		"      --describe-config print every setting, tab-separated: section, name, type,\n"
		"                        default, allowed values, reload|restart, help; and exit\n"
		"  -V, --version         print the version and exit\n"
		"  -h, --help            this help\n\n"
		"Jobs are driven over the control socket: see \"pgmover help\" for its commands.\n",
		PGM_DEFAULT_CONF);
}

/* a thousand control clients need a thousand descriptors: take the hard limit */
static void
raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			pgm_warning("could not raise the open file limit");
	}
}

static void
update_systemd_status(pgm_daemon_t *d)
{
	int total = 0, running = 0;
	char buf[256];

	for (pgm_job_t *j = d->host.jobs; j; j = j->next) {
		total++;
		if (j->step)
			running++;
	}
	snprintf(buf, sizeof(buf), "STATUS=%d job(s), %d step(s) running, %d control client(s)", total, running,
		 pgm_control_client_count(d));
	pgm_notify(buf);
}

/* once a second: progress events to watchers, status to systemd */
static void
tick_cb(uv_timer_t *t)
{
	pgm_daemon_t *d = t->data;

	for (pgm_job_t *j = d->host.jobs; j; j = j->next)
		if (j->step != NULL || j->progress != NULL)
			pgm_job_emit_progress(j);
	update_systemd_status(d);
}

/* the jobs' events go to the clients watching them */
static void
forward_event(pgm_host_t *h, const pgm_job_t *job, const cJSON *event)
{
	pgm_control_broadcast(h->data, job->name, event);
}

static void
daemon_stop(pgm_daemon_t *d, const char *why)
{
	if (d->host.stopping)
		return;
	d->host.stopping = true;
	pgm_notice("%s: stopping; running steps are checkpointed and resume at the next start", why);
	pgm_notify("STOPPING=1");
	pgm_control_stop(d);
	pgm_metrics_stop(d);
	pgm_jobs_shutdown(&d->host);
	uv_timer_stop(&tick_timer);
	uv_close((uv_handle_t *) &tick_timer, NULL);
	uv_close((uv_handle_t *) &sig_term, NULL);
	uv_close((uv_handle_t *) &sig_int, NULL);
	uv_close((uv_handle_t *) &sig_hup, NULL);
}

/* SIGHUP: re-read the file; what needs a restart is said, not silently ignored */
static void
daemon_reload(pgm_daemon_t *d)
{
	pgm_config_t cfg;
	char *err = NULL;

	pgm_notify("RELOADING=1");
	pgm_config_init(&cfg);
	if (!pgm_config_load(&cfg, d->config_path, &err)) {
		pgm_error("reload failed, keeping the running configuration: %s", err);
		free(err);
		pgm_config_free(&cfg);
		pgm_notify("READY=1");
		return;
	}
	if (strcmp(cfg.socket_path, d->cfg.socket_path) != 0 || cfg.socket_mode != d->cfg.socket_mode)
		pgm_warning("socket_path and socket_mode change only when pgmoverd restarts");
	if (strcmp(cfg.state_dir, d->cfg.state_dir) != 0)
		pgm_warning("state_dir changes only when pgmoverd restarts");
	if (strcmp(cfg.metrics_listen, d->cfg.metrics_listen) != 0)
		pgm_warning("metrics_listen changes only when pgmoverd restarts");
	d->cfg.log_level = cfg.log_level;
	d->cfg.max_clients = cfg.max_clients;
	/* who may change jobs: from the next request on */
	free(d->cfg.admin_users);
	free(d->cfg.admin_group);
	pgm_access_free(&d->cfg.access);
	d->cfg.admin_users = cfg.admin_users;
	d->cfg.admin_group = cfg.admin_group;
	d->cfg.access = cfg.access;
	cfg.admin_users = cfg.admin_group = NULL;
	memset(&cfg.access, 0, sizeof(cfg.access));
	pgm_log_set_level(cfg.log_level);
	cJSON_Delete(d->cfg.job_defaults);
	d->cfg.job_defaults = cfg.job_defaults;
	cfg.job_defaults = NULL;
	pgm_config_free(&cfg);
	pgm_notice("configuration reloaded from \"%s\" (log_level %s, admin_users \"%s\", admin_group \"%s\"; job "
		   "defaults apply to new jobs)",
		   d->config_path, pgm_log_level_name(d->cfg.log_level), d->cfg.admin_users, d->cfg.admin_group);
	pgm_notify("READY=1");
}

static void
signal_cb(uv_signal_t *h, int signum)
{
	pgm_daemon_t *d = h->data;

	if (signum == SIGHUP)
		daemon_reload(d);
	else
		daemon_stop(d, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/*
 * One pgmoverd a state_dir: an fcntl lock on state_dir/pgmoverd.pid, which
 * holds its pid, taken before the socket and the jobs. A second daemon on
 * the same state_dir is refused, naming the pid that holds the lock (the
 * kernel's answer, F_GETLK, not the file's text). The lock goes with the
 * process, a crash included; the file stays and is harmless. The
 * descriptor is kept open (close-on-exec: no child holds it) until exit.
 */
static bool
lock_state_dir(pgm_daemon_t *d)
{
	char *path = pgm_asprintf("%s/pgmoverd.pid", d->cfg.state_dir);
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
	char pid[32];
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600), n;

	if (fd < 0) {
		pgm_error("could not open the lock file \"%s\": %s", path, strerror(errno));
		free(path);
		return false;
	}
	if (fcntl(fd, F_SETLK, &fl) != 0) {
		int err = errno;
		struct flock who = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};

		if ((err == EAGAIN || err == EACCES) && fcntl(fd, F_GETLK, &who) == 0 && who.l_type != F_UNLCK)
			pgm_error("state_dir \"%s\" is in use by another pgmoverd (pid %d holds the lock on \"%s\"); "
				  "stop that one first, or give this one another state_dir",
				  d->cfg.state_dir, (int) who.l_pid, path);
		else
			pgm_error("could not lock \"%s\": %s", path, strerror(err));
		close(fd);
		free(path);
		return false;
	}
	n = snprintf(pid, sizeof(pid), "%d\n", (int) getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t) n, 0) != n)
		pgm_warning("could not write the pid into \"%s\": %s", path, strerror(errno));
	free(path);
	return true;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {{"config", required_argument, NULL, 'c'},
						 {"check", no_argument, NULL, 'C'},
						 {"describe", optional_argument, NULL, 'D'},
						 {"version", no_argument, NULL, 'V'},
						 {"describe-config", no_argument, NULL, 'S'},
						 {"help", no_argument, NULL, 'h'},
						 {NULL, 0, NULL, 0}};
	pgm_daemon_t *d = &daemon_state;
	const char *config_path = PGM_DEFAULT_CONF;
	bool check_only = false;
	char *err = NULL;
	int opt;

	/* guard mode: run a child that must die with the daemon (see proc.h) */
	if (argc > 1 && strcmp(argv[1], PGM_PROC_GUARD_FLAG) == 0)
		return pgm_proc_guard_main(argc - 2, argv + 2);

	while ((opt = getopt_long(argc, argv, "c:Vh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			config_path = optarg;
			break;
		case 'C':
			check_only = true;
			break;
		case 'D': {
			/* the state machine, straight from the transition table */
			char *text =
				optarg && strcmp(optarg, "dot") == 0 ? pgm_fsm_describe_dot() : pgm_fsm_describe_text();
			fputs(text, stdout);
			free(text);
			return 0;
		}
		case 'S': {
			/* the settings table, for pgmoverd.conf(5) (man/conf-man.sh) */
			char *text = pgm_opt_describe();
			fputs(text, stdout);
			free(text);
			return 0;
		}
		case 'V':
			printf("pgmoverd %s (protocol %d)\n", PGM_VERSION, PGM_PROTOCOL_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "pgmoverd: unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		return 2;
	}

	memset(d, 0, sizeof(*d));
	pgm_config_init(&d->cfg);
	if (!pgm_config_load(&d->cfg, config_path, &err)) {
		fprintf(stderr, "pgmoverd: %s\n", err);
		free(err);
		pgm_config_free(&d->cfg);
		return 2;
	}
	if (check_only) {
		printf("%s: configuration is valid\n", config_path);
		pgm_config_free(&d->cfg);
		return 0;
	}
	pgm_log_set_level(d->cfg.log_level);
	/* fault injection points, for tests (inject.h) */
	if (!pgm_inject_arm(getenv("PGMOVER_INJECT"), &err)) {
		fprintf(stderr, "pgmoverd: %s\n", err);
		free(err);
		pgm_config_free(&d->cfg);
		return 2;
	}
	d->config_path = pgm_strdup(config_path);
	d->started_ms = pgm_now_ms();
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();

	d->host.loop = uv_default_loop();
	if (!pgm_mkdir_p(d->cfg.state_dir, 0700)) {
		pgm_error("could not create state_dir \"%s\"", d->cfg.state_dir);
		return 1;
	}
	if (!lock_state_dir(d))
		return 1;
	d->uid = geteuid();
	if (!pgm_metrics_start(d))
		return 1;
	if (!pgm_control_start(d)) {
		pgm_metrics_stop(d);
		return 1;
	}
	d->host.on_event = forward_event;
	d->host.data = d;
	if (!pgm_jobs_load_all(d)) {
		pgm_control_stop(d);
		pgm_metrics_stop(d);
		uv_run(d->host.loop, UV_RUN_DEFAULT);
		return 1;
	}

	uv_signal_init(d->host.loop, &sig_term);
	uv_signal_init(d->host.loop, &sig_int);
	uv_signal_init(d->host.loop, &sig_hup);
	sig_term.data = sig_int.data = sig_hup.data = d;
	uv_signal_start(&sig_term, signal_cb, SIGTERM);
	uv_signal_start(&sig_int, signal_cb, SIGINT);
	uv_signal_start(&sig_hup, signal_cb, SIGHUP);
	uv_timer_init(d->host.loop, &tick_timer);
	tick_timer.data = d;
	uv_timer_start(&tick_timer, tick_cb, 1000, 1000);

	pgm_notice("pgmoverd %s started (config \"%s\", state_dir \"%s\")", PGM_VERSION, config_path, d->cfg.state_dir);
	pgm_notify("READY=1");
	update_systemd_status(d);

	uv_run(d->host.loop, UV_RUN_DEFAULT);

	if (uv_loop_close(d->host.loop) != 0)
		pgm_warning("some handles were still open at exit");
	pgm_jobs_free_corrupt(d);
	pgm_config_free(&d->cfg);
	free(d->config_path);
	pgm_notice("pgmoverd stopped");
	return 0;
}
