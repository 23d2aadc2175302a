/*
 * commands.c
 *    The dispatch table of the pgmover client and its command handlers.
 *
 * One row per command: its name (also the protocol "cmd"), where it runs,
 * whether it takes a job, the options it allows, the handler, the human
 * renderer of its result, its usage and its one-line help; help and usage
 * errors are printed from the rows. Most commands are one request through
 * cmd_daemon; create builds arguments, watch follows the event stream, plan
 * and stand-alone verify run in-process through the pgmover library.
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

#if defined(__has_include)
#if __has_include("pgm_config.h")
#include "pgm_config.h"
#endif
#endif

#include "cli.h"
#include "common/util.h"
#include "fsm/fsm.h"

#ifndef PGM_VERSION
#define PGM_VERSION "0.1.0"
#endif

static int cmd_daemon(pgm_cli_args_t *args, const pgm_cli_command_t *command);
static int cmd_create(pgm_cli_args_t *args, const pgm_cli_command_t *command);
static int cmd_set(pgm_cli_args_t *args, const pgm_cli_command_t *command);
static int cmd_cutover(pgm_cli_args_t *args, const pgm_cli_command_t *command);
static int cmd_rollback(pgm_cli_args_t *args, const pgm_cli_command_t *command);
static int cmd_status(pgm_cli_args_t *args, const pgm_cli_command_t *command);
static int cmd_delete(pgm_cli_args_t *args, const pgm_cli_command_t *command);
static int cmd_watch(pgm_cli_args_t *args, const pgm_cli_command_t *command);
static int cmd_events(pgm_cli_args_t *args, const pgm_cli_command_t *command);
static int cmd_report(pgm_cli_args_t *args, const pgm_cli_command_t *command);
static int cmd_verify(pgm_cli_args_t *args, const pgm_cli_command_t *command);
static int cmd_plan(pgm_cli_args_t *args, const pgm_cli_command_t *command);
static int cmd_help(pgm_cli_args_t *args, const pgm_cli_command_t *command);
static void render_version(const pgm_cli_args_t *args, const cJSON *result);
static void render_describe(const pgm_cli_args_t *args, const cJSON *result);
static void render_jobs(const pgm_cli_args_t *args, const cJSON *result);
static void render_status(const pgm_cli_args_t *args, const cJSON *result);
static void render_state(const pgm_cli_args_t *args, const cJSON *result);
static void render_created(const pgm_cli_args_t *args, const cJSON *result);

/*
 * The commands, in the order help lists them. A row that runs on the daemon
 * has the daemon's command of the same name (pgm_commands[],
 * src/daemon/commands.c) and its summary starts with that command's help:
 * the client says only what it adds (test_cli_output.c checks both).
 */
const pgm_cli_command_t pgm_cli_commands[] = {
	{"create", PGM_CLI_RUNS_DAEMON, PGM_CLI_JOB_REQUIRED, PGM_CLI_OPT_CREATE, cmd_create, render_created,
	 "create JOB --source URL --target URL --method dump|pglogical|triggers [--set key=value ...]",
	 "create a job: source, target, method and options"},
	{"start", PGM_CLI_RUNS_DAEMON, PGM_CLI_JOB_REQUIRED, 0, cmd_daemon, render_state, "start JOB",
	 "start a job: preflight, prepare the target, copy or sync the data"},
	{"status", PGM_CLI_RUNS_DAEMON, PGM_CLI_JOB_OPTIONAL,
	 PGM_CLI_OPT_BIT(PGM_CLI_OPT_VERBOSE) | PGM_CLI_OPT_BIT(PGM_CLI_OPT_TABLES), cmd_status, render_status,
	 "status [JOB] [-v] [--tables]",
	 "show one job in detail, or all jobs, on one screen; -v: everything; --tables: each table's progress"},
	{"watch", PGM_CLI_RUNS_DAEMON, PGM_CLI_JOB_REQUIRED, PGM_CLI_OPT_BIT(PGM_CLI_OPT_UNTIL), cmd_watch, NULL,
	 "watch JOB [--until STATE]",
	 "follow a job's transitions and progress ticks, until the job ends, fails (exit 1) or reaches STATE"},
	{"events", PGM_CLI_RUNS_DAEMON, PGM_CLI_JOB_REQUIRED,
	 PGM_CLI_OPT_BIT(PGM_CLI_OPT_CHECK) | PGM_CLI_OPT_BIT(PGM_CLI_OPT_SUMMARY), cmd_events, NULL,
	 "events JOB [--summary]\nevents JOB --check",
	 "show a job's audit trail and check its hash chain, one line per event, then the chain's head and, for "
	 "an ended job (or with --summary), the write downtime, each phase's time and what verification compared; "
	 "--check: only verify the chain, exit 1 naming the first broken line"},
	{"report", PGM_CLI_RUNS_LOCAL, PGM_CLI_JOB_REQUIRED, PGM_CLI_OPT_BIT(PGM_CLI_OPT_OUTPUT), cmd_report, NULL,
	 "report JOB [-o FILE]",
	 "write a job's migration report, one self-contained HTML page (JOB-report.html, -o FILE, - for standard "
	 "output; --json: the same evidence as JSON): source and target with their TLS, the preflight, every "
	 "event, the freeze proof, the write downtime, each table's rows and checksums, differences, what was "
	 "created and removed, the rollback window, the audit chain's head"},
	{"jobs", PGM_CLI_RUNS_DAEMON, PGM_CLI_JOB_NONE, 0, cmd_daemon, render_jobs, "jobs", "list the jobs"},
	{"freeze", PGM_CLI_RUNS_DAEMON, PGM_CLI_JOB_REQUIRED, 0, cmd_daemon, render_state, "freeze JOB",
	 "stop writes on the source, take the final copy or drain replication"},
	{"thaw", PGM_CLI_RUNS_DAEMON, PGM_CLI_JOB_REQUIRED, 0, cmd_daemon, render_state, "thaw JOB",
	 "allow writes on the source again"},
	{"verify", PGM_CLI_RUNS_BOTH, PGM_CLI_JOB_OPTIONAL, PGM_CLI_OPT_COMPARE, cmd_verify, render_state,
	 "verify JOB\nverify --source URL --target URL [--tables schema.table,...]",
	 "compare a job's source and target again, or two databases in-process"},
	{"cutover", PGM_CLI_RUNS_DAEMON, PGM_CLI_JOB_REQUIRED, PGM_CLI_OPT_BIT(PGM_CLI_OPT_NO_TRAFFIC_SWITCH),
	 cmd_cutover, render_state, "cutover JOB [--no-traffic-switch]",
	 "switch traffic to the target and open the rollback window, --no-traffic-switch when the job has neither "
	 "pgbouncer nor cutover_command, and you move the traffic yourself"},
	{"rollback", PGM_CLI_RUNS_DAEMON, PGM_CLI_JOB_REQUIRED, PGM_CLI_OPT_BIT(PGM_CLI_OPT_ACCEPT_LOSS), cmd_rollback,
	 render_state, "rollback JOB [--accept-loss]",
	 "switch back to the source, with the writes made on the target, refused while a table on the target is "
	 "not carried back (status: \"rollback would lose writes to\"), --accept-loss: roll back without its writes"},
	{"finish", PGM_CLI_RUNS_DAEMON, PGM_CLI_JOB_REQUIRED, 0, cmd_daemon, render_state, "finish JOB",
	 "close the rollback window and remove what pgmover created"},
	{"abort", PGM_CLI_RUNS_DAEMON, PGM_CLI_JOB_REQUIRED, 0, cmd_daemon, render_state, "abort JOB",
	 "give up before cutover: thaw the source, drop what pgmover created"},
	{"retry", PGM_CLI_RUNS_DAEMON, PGM_CLI_JOB_REQUIRED, PGM_CLI_OPT_BIT(PGM_CLI_OPT_ACCEPT_LOSS), cmd_rollback,
	 render_state, "retry JOB [--accept-loss]",
	 "resume a failed job from its last durable step, --accept-loss: a failed rollback, as rollback --accept-loss"},
	{"set", PGM_CLI_RUNS_DAEMON, PGM_CLI_JOB_REQUIRED, PGM_CLI_OPT_BIT(PGM_CLI_OPT_SET), cmd_set, render_state,
	 "set JOB --set key=value [--set key=value ...]", "change a job's options where no step is reading them"},
	{"delete", PGM_CLI_RUNS_DAEMON, PGM_CLI_JOB_REQUIRED, PGM_CLI_OPT_BIT(PGM_CLI_OPT_FORCE), cmd_delete,
	 render_state, "delete JOB [--force]",
	 "remove a job that has ended; its state and audit trail are kept, --force: a corrupt job's folder too "
	 "(archived in state_dir/.deleted/, not removed)"},
	{"plan", PGM_CLI_RUNS_LOCAL, PGM_CLI_JOB_NONE, PGM_CLI_OPT_CREATE | PGM_CLI_OPT_BIT(PGM_CLI_OPT_TABLES),
	 cmd_plan, NULL, "plan --source URL --target URL [--method dump|pglogical|triggers] [--set key=value ...]",
	 "check a migration in-process, touching nothing"},
	{"describe", PGM_CLI_RUNS_DAEMON, PGM_CLI_JOB_NONE, 0, cmd_daemon, render_describe, "describe",
	 "show the job state machine"},
	{"version", PGM_CLI_RUNS_DAEMON, PGM_CLI_JOB_NONE, 0, cmd_daemon, render_version, "version",
	 "show the daemon's version and protocol, and the client's"},
	{"help", PGM_CLI_RUNS_LOCAL, PGM_CLI_JOB_OPTIONAL, 0, cmd_help, NULL, "help [COMMAND]",
	 "show help, or one command's"},
	{NULL, PGM_CLI_RUNS_LOCAL, PGM_CLI_JOB_NONE, 0, NULL, NULL, NULL, NULL}};

/* States after which a job changes no more: watch stops there */
static const char *const terminal_states[] = {"completed", "aborted", "rolled_back", NULL};

/*
 * pgm_cli_command_find looks a command word up in the dispatch table.
 */
const pgm_cli_command_t *
pgm_cli_command_find(const char *name)
{
	for (const pgm_cli_command_t *c = pgm_cli_commands; c->name != NULL; c++) {
		if (strcmp(c->name, name) == 0)
			return c;
	}
	return NULL;
}

/*
 * cli_request connects, sends one request and waits for the reply. With
 * --json the reply line is printed unchanged; a refusal is reported (human
 * mode) and gives PGM_EXIT_FAILED. Takes ownership of req_args.
 */
static int
cli_request(const pgm_cli_args_t *args, pgm_cli_conn_t *client, const char *cmd, cJSON *req_args,
	    pgm_cli_reply_t *reply)
{
	int rc;

	memset(reply, 0, sizeof(*reply));
	rc = pgm_cli_conn_open(client, args->socket);
	if (rc != PGM_EXIT_OK) {
		cJSON_Delete(req_args);
		return rc;
	}
	client->timeout_ms = args->timeout_ms;
	rc = pgm_cli_conn_call(client, cmd, args->job, req_args, reply);
	if (rc != PGM_EXIT_OK)
		return rc;
	if (args->json)
		printf("%s\n", reply->line);
	if (!reply->ok) {
		if (!args->json)
			pgm_cli_output_reply_error(reply->error);
		return PGM_EXIT_FAILED;
	}
	return PGM_EXIT_OK;
}

/*
 * send_render sends one request (taking req_args) and renders the result
 * with the row's renderer; cmd_daemon is it for a request without arguments.
 */
static int
send_render(pgm_cli_args_t *args, const pgm_cli_command_t *command, cJSON *req_args)
{
	pgm_cli_conn_t client;
	pgm_cli_reply_t reply;
	int rc = cli_request(args, &client, command->name, req_args, &reply);

	if (rc == PGM_EXIT_OK && !args->json)
		command->render(args, reply.result);
	pgm_cli_reply_free(&reply);
	pgm_cli_conn_close(&client);
	return rc;
}

static int
cmd_daemon(pgm_cli_args_t *args, const pgm_cli_command_t *command)
{
	return send_render(args, command, NULL);
}

/* cmd_status sends --tables as args.tables: the daemon adds each table's progress */
static int
cmd_status(pgm_cli_args_t *args, const pgm_cli_command_t *command)
{
	cJSON *req_args;

	if (!args->per_table)
		return send_render(args, command, NULL);
	if (args->job == NULL) {
		pgm_cli_output_error("status --tables needs a job name");
		pgm_cli_usage_hint(command);
		return PGM_EXIT_USAGE;
	}
	req_args = cJSON_CreateObject();
	if (req_args == NULL || cJSON_AddTrueToObject(req_args, "tables") == NULL) {
		cJSON_Delete(req_args);
		pgm_cli_output_error("out of memory building the \"status\" request");
		pgm_cli_output_hint("free some memory and retry the command");
		return PGM_EXIT_FAILED;
	}
	return send_render(args, command, req_args);
}

/* cmd_cutover sends --no-traffic-switch as args.no_traffic_switch */
static int
cmd_cutover(pgm_cli_args_t *args, const pgm_cli_command_t *command)
{
	cJSON *req_args = cJSON_CreateObject();

	if (req_args == NULL ||
	    (args->no_traffic_switch && cJSON_AddTrueToObject(req_args, "no_traffic_switch") == NULL)) {
		cJSON_Delete(req_args);
		pgm_cli_output_error("out of memory building the \"cutover\" request");
		pgm_cli_output_hint("free some memory and retry the command");
		return PGM_EXIT_FAILED;
	}
	return send_render(args, command, req_args);
}

/* cmd_rollback (rollback, retry) sends --accept-loss as args.accept_loss */
static int
cmd_rollback(pgm_cli_args_t *args, const pgm_cli_command_t *command)
{
	cJSON *req_args = cJSON_CreateObject();

	if (req_args == NULL || (args->accept_loss && cJSON_AddTrueToObject(req_args, "accept_loss") == NULL)) {
		cJSON_Delete(req_args);
		pgm_cli_output_error("out of memory building the \"%s\" request", command->name);
		pgm_cli_output_hint("free some memory and retry the command");
		return PGM_EXIT_FAILED;
	}
	return send_render(args, command, req_args);
}

/* cmd_delete sends --force as args.force */
static int
cmd_delete(pgm_cli_args_t *args, const pgm_cli_command_t *command)
{
	cJSON *req_args = cJSON_CreateObject();

	if (req_args == NULL || (args->force && cJSON_AddTrueToObject(req_args, "force") == NULL)) {
		cJSON_Delete(req_args);
		pgm_cli_output_error("out of memory building the \"delete\" request");
		pgm_cli_output_hint("free some memory and retry the command");
		return PGM_EXIT_FAILED;
	}
	return send_render(args, command, req_args);
}

/*
 * cmd_create checks that --source, --target and --method are there, then
 * sends them with the --set options. The daemon validates the values.
 */
static int
cmd_create(pgm_cli_args_t *args, const pgm_cli_command_t *command)
{
	cJSON *req_args;
	const char *missing = args->source == NULL   ? "--source"
			      : args->target == NULL ? "--target"
			      : args->method == NULL ? "--method"
						     : NULL;

	if (missing != NULL) {
		pgm_cli_output_error("missing %s for \"create\"", missing);
		pgm_cli_usage_hint(command);
		return PGM_EXIT_USAGE;
	}
	req_args = cJSON_CreateObject();
	if (req_args == NULL || cJSON_AddStringToObject(req_args, "source", args->source) == NULL ||
	    cJSON_AddStringToObject(req_args, "target", args->target) == NULL ||
	    cJSON_AddStringToObject(req_args, "method", args->method) == NULL ||
	    !cJSON_AddItemReferenceToObject(req_args, "options", args->options)) {
		cJSON_Delete(req_args);
		pgm_cli_output_error("out of memory building the \"create\" request");
		pgm_cli_output_hint("free some memory and retry the command");
		return PGM_EXIT_FAILED;
	}
	return send_render(args, command, req_args);
}

/*
 * cmd_set sends the --set pairs as the options to change.
 */
static int
cmd_set(pgm_cli_args_t *args, const pgm_cli_command_t *command)
{
	cJSON *req_args;

	if (args->options == NULL || args->options->child == NULL) {
		pgm_cli_output_error("\"set\" needs at least one --set key=value");
		pgm_cli_usage_hint(command);
		return PGM_EXIT_USAGE;
	}
	req_args = cJSON_CreateObject();
	if (req_args == NULL || !cJSON_AddItemReferenceToObject(req_args, "options", args->options)) {
		cJSON_Delete(req_args);
		pgm_cli_output_error("out of memory building the \"set\" request");
		pgm_cli_output_hint("free some memory and retry the command");
		return PGM_EXIT_FAILED;
	}
	return send_render(args, command, req_args);
}

/*
 * state_is_terminal tells whether watch should stop at this state.
 */
static bool
state_is_terminal(const char *state)
{
	for (const char *const *t = terminal_states; state != NULL && *t != NULL; t++) {
		if (strcmp(*t, state) == 0)
			return true;
	}
	return false;
}

/*
 * watch_on_sigint records Ctrl-C; SA_RESETHAND makes a second one kill.
 */
static void
watch_on_sigint(int signo)
{
	pgm_cli_interrupted = 1;
}

/*
 * event_state returns the job state an event reports, if any: the "to" of
 * a transition, or the status "state" of a progress tick.
 */
static const char *
event_state(const cJSON *event)
{
	const char *kind = pgm_cli_json_string(event, "event", "");

	if (strcmp(kind, "transition") == 0)
		return pgm_cli_json_string(event, "to", NULL);
	if (strcmp(kind, "progress") == 0)
		return pgm_cli_json_string(cJSON_GetObjectItemCaseSensitive(event, "status"), "state", NULL);
	return NULL;
}

/* --until takes the state machine's own names */
static bool
valid_state(const char *name)
{
	pgm_state_t st;

	return pgm_state_parse(name, &st);
}

/* "created, provisioning, ...", for the hint (static buffer) */
static const char *
all_states(void)
{
	static char buf[512];
	size_t n = 0;

	for (int i = 0; i < PGM_ST__COUNT && n < sizeof(buf); i++)
		n += (size_t) snprintf(buf + n, sizeof(buf) - n, "%s%s", i ? ", " : "",
				       pgm_state_name((pgm_state_t) i));
	return buf;
}

/* watch's memory between events: what it printed last, and how it ends */
typedef struct watch_s {
	const pgm_cli_args_t *args;
	bool tty;       /* stdout is a terminal: progress rewrites one line */
	bool open_line; /* a progress line without its newline is on screen */
	char *last;     /* the last progress line printed (without its clock) */
	int rc;         /* exit code once done */
	bool done;
} watch_t;

/* the human line of an event, as pgm_cli_output_event prints it (malloc'd) */
static char *
event_text(const cJSON *event)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (f == NULL)
		return NULL;
	pgm_cli_output_event(f, event);
	fclose(f);
	return text;
}

/*
 * watch_show prints one event for a person: a transition always, a
 * progress tick only when what it says moved (the clock aside), on a
 * terminal in place. Then it decides whether watching is over: the job
 * ended, failed (exit 1, after its error), or reached --until.
 */
static void
watch_show(watch_t *w, const cJSON *event)
{
	const char *kind = pgm_cli_json_string(event, "event", "");
	const char *state = event_state(event);
	const cJSON *status = cJSON_GetObjectItemCaseSensitive(event, "status");

	if (!w->args->json) {
		char *text = event_text(event);
		/* "HH:MM:SS job: ..." -- the part after the clock is what changes */
		const char *body = text && strchr(text, ' ') ? strchr(text, ' ') + 1 : text;
		bool progress = strcmp(kind, "progress") == 0;

		if (text != NULL && (!progress || w->last == NULL || strcmp(w->last, body) != 0)) {
			if (progress && w->tty) {
				size_t n = strlen(text);

				fprintf(stdout, "\r\033[K%.*s", (int) (n > 0 && text[n - 1] == '\n' ? n - 1 : n), text);
				w->open_line = true;
			} else {
				if (w->open_line)
					fputc('\n', stdout);
				w->open_line = false;
				fputs(text, stdout);
			}
			if (progress) {
				free(w->last);
				w->last = strdup(body);
			}
		}
		free(text);
	}
	if (state == NULL)
		return;
	/* a failed job: its error (a progress tick carries it in the status), exit 1 */
	if (strcmp(state, "failed") == 0) {
		const cJSON *error = cJSON_GetObjectItemCaseSensitive(status, "error");

		if (!w->args->json && strcmp(kind, "progress") == 0 && cJSON_IsObject(error)) {
			if (w->open_line)
				fputc('\n', stdout);
			w->open_line = false;
			printf("%s: failed: %s\n", pgm_cli_json_string(event, "job", "?"),
			       pgm_cli_json_string(error, "message", "(no message)"));
			if (pgm_cli_json_string(error, "hint", NULL) != NULL)
				printf("hint: %s\n", pgm_cli_json_string(error, "hint", ""));
		}
		w->done = true;
		w->rc = w->args->until != NULL && strcmp(w->args->until, "failed") == 0 ? PGM_EXIT_OK : PGM_EXIT_FAILED;
	} else if (w->args->until != NULL && strcmp(w->args->until, state) == 0) {
		w->done = true;
		w->rc = PGM_EXIT_OK;
	} else if (state_is_terminal(state)) {
		w->done = true;
		/* ended elsewhere than asked: the runbook's assumption is wrong */
		w->rc = w->args->until != NULL ? PGM_EXIT_FAILED : PGM_EXIT_OK;
	}
}

/*
 * watch_follow reads event lines until watch_show says it is over or the
 * daemon closes the connection, printing each line unchanged (--json) or
 * for a person.
 */
static int
watch_follow(watch_t *w, pgm_cli_conn_t *client)
{
	char *line;
	pgm_cli_read_t rc;

	while (!w->done) {
		cJSON *event;

		rc = pgm_cli_conn_read_line(client, &line);
		if (rc != PGM_CLI_READ_LINE)
			return rc == PGM_CLI_READ_ERROR ? PGM_EXIT_UNREACHABLE : PGM_EXIT_OK;
		if (w->args->json)
			printf("%s\n", line);
		event = cJSON_Parse(line);
		if (!cJSON_IsObject(event)) {
			cJSON_Delete(event);
			pgm_cli_output_error("pgmoverd at \"%s\" sent an event that is not a JSON object",
					     w->args->socket);
			pgm_cli_output_hint("check that client and daemon versions match (\"pgmover version\")");
			return PGM_EXIT_UNREACHABLE;
		}
		watch_show(w, event);
		cJSON_Delete(event);
		if (fflush(stdout) != 0)
			return PGM_EXIT_FAILED; /* reader went away, e.g. "| head" */
	}
	return w->rc;
}

/*
 * cmd_watch subscribes to a job's events. The ok reply carries the job's
 * status, shown as the first event: a job that has already ended, failed
 * or reached --until has nothing to wait for. Ctrl-C stops watching; main
 * then re-raises SIGINT so that shells and scripts see the interruption.
 */
static int
cmd_watch(pgm_cli_args_t *args, const pgm_cli_command_t *command)
{
	struct sigaction sa;
	pgm_cli_conn_t client;
	pgm_cli_reply_t reply;
	watch_t w = {.args = args, .tty = !args->json && isatty(STDOUT_FILENO), .rc = PGM_EXIT_OK};
	int rc;

	if (args->until != NULL && !valid_state(args->until)) {
		pgm_cli_output_error("unknown state \"%s\" for --until", args->until);
		pgm_cli_output_hint("states: %s", all_states());
		return PGM_EXIT_USAGE;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = watch_on_sigint;
	sa.sa_flags = SA_RESETHAND; /* no SA_RESTART: read() must see EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);

	rc = cli_request(args, &client, command->name, NULL, &reply);
	if (rc == PGM_EXIT_OK) {
		cJSON *event = cJSON_CreateObject();

		cJSON_AddStringToObject(event, "event", "progress");
		cJSON_AddStringToObject(event, "job", pgm_cli_json_string(reply.result, "name", args->job));
		cJSON_AddItemReferenceToObject(event, "status", (cJSON *) reply.result);
		watch_show(&w, event);
		cJSON_Delete(event);
		fflush(stdout);
		rc = watch_follow(&w, &client);
		if (w.open_line)
			fputc('\n', stdout);
	}
	free(w.last);
	pgm_cli_reply_free(&reply);
	pgm_cli_conn_close(&client);
	return pgm_cli_interrupted ? PGM_EXIT_OK : rc;
}

/*
 * cmd_events asks for the job's audit trail (args.check: the chain's
 * verdict only) and prints it for a person: the events, the verdict, and
 * the summary for a job that has ended or with --summary. --check exits 1
 * when the chain is broken, as does --json --check.
 */
static int
cmd_events(pgm_cli_args_t *args, const pgm_cli_command_t *command)
{
	pgm_cli_conn_t client;
	pgm_cli_reply_t reply;
	cJSON *req_args = cJSON_CreateObject();
	const cJSON *chain, *status;
	int rc;

	if (args->check && args->summary) {
		cJSON_Delete(req_args);
		pgm_cli_output_error("\"events --check\" takes no --summary");
		pgm_cli_usage_hint(command);
		return PGM_EXIT_USAGE;
	}
	if (req_args == NULL || (args->check && cJSON_AddTrueToObject(req_args, "check") == NULL)) {
		cJSON_Delete(req_args);
		pgm_cli_output_error("out of memory building the \"events\" request");
		pgm_cli_output_hint("free some memory and retry the command");
		return PGM_EXIT_FAILED;
	}
	rc = cli_request(args, &client, command->name, req_args, &reply);
	if (rc == PGM_EXIT_OK) {
		chain = cJSON_GetObjectItemCaseSensitive(reply.result, "chain");
		status = cJSON_GetObjectItemCaseSensitive(reply.result, "status");
		if (!args->json && !args->check) {
			double omitted = 0;

			pgm_cli_json_number(reply.result, "omitted", &omitted);
			if (omitted > 0)
				printf("(%.0f older events left out: the whole trail is in state_dir/%s/audit.jsonl)\n",
				       omitted, args->job);
			pgm_cli_output_event_lines(stdout, cJSON_GetObjectItemCaseSensitive(reply.result, "events"));
			putchar('\n');
		}
		if (args->json) {
			if (args->check && !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(chain, "intact")))
				rc = PGM_EXIT_FAILED;
		} else {
			int chain_rc = pgm_cli_output_chain(stdout, args->job, chain);

			if (args->check)
				rc = chain_rc;
		}
		if (!args->json && !args->check &&
		    (args->summary || state_is_terminal(pgm_cli_json_string(status, "state", NULL)))) {
			putchar('\n');
			pgm_cli_output_summary(stdout, status, cJSON_GetObjectItemCaseSensitive(reply.result, "events"),
					       pgm_now_ms());
		}
	}
	pgm_cli_reply_free(&reply);
	pgm_cli_conn_close(&client);
	return rc;
}

/*
 * report_write puts the report where -o says (by default JOB-report.html,
 * or standard output for --json; "-" is standard output), replacing a file
 * whole.
 */
static int
report_write(const pgm_cli_args_t *args, const char *text)
{
	char *path = args->output != NULL ? pgm_strdup(args->output)
		     : args->json         ? pgm_strdup("-")
					  : pgm_asprintf("%s-report.html", args->job);
	int rc = PGM_EXIT_OK;

	if (strcmp(path, "-") == 0) {
		fputs(text, stdout);
	} else if (!pgm_file_replace(path, text, strlen(text), 0644)) {
		pgm_cli_output_error("could not write the report to \"%s\": %s", path, strerror(errno));
		pgm_cli_output_hint("give a writable path with -o FILE, or -o - for standard output");
		rc = PGM_EXIT_FAILED;
	} else if (!args->json)
		fprintf(stderr, "wrote the report of %s to %s\n", args->job, path);
	free(path);
	return rc;
}

/*
 * cmd_report asks pgmoverd for the job's events (the read-only "events"
 * command: the trail, the chain's verdict, the status) and writes the
 * migration report from them: HTML, or with --json the evidence itself.
 * The report is written whatever the chain's verdict; a chain not intact
 * makes the exit code 1, with a warning.
 */
static int
cmd_report(pgm_cli_args_t *args, const pgm_cli_command_t *command)
{
	pgm_cli_args_t quiet = *args;
	pgm_cli_conn_t client;
	pgm_cli_reply_t reply;
	cJSON *evidence;
	char *text;
	int rc;

	(void) command;
	quiet.json = false; /* the reply is not printed: the report is */
	rc = cli_request(&quiet, &client, "events", cJSON_CreateObject(), &reply);
	if (rc != PGM_EXIT_OK) {
		pgm_cli_reply_free(&reply);
		pgm_cli_conn_close(&client);
		return rc;
	}
	evidence = pgm_cli_report_evidence(reply.result, pgm_now_ms());
	if (args->json) {
		/* the envelope of every --json reply, around the evidence */
		cJSON *env = cJSON_CreateObject();
		char *json;

		cJSON_AddTrueToObject(env, "ok");
		cJSON_AddItemReferenceToObject(env, "result", evidence);
		json = cJSON_Print(env);
		text = pgm_asprintf("%s\n", json);
		free(json);
		cJSON_Delete(env);
	} else
		text = pgm_cli_report_html(evidence);
	rc = report_write(args, text);
	if (rc == PGM_EXIT_OK && !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
					 cJSON_GetObjectItemCaseSensitive(evidence, "chain"), "intact"))) {
		fprintf(stderr, "warning: the audit trail of %s is not intact; the report says where it breaks\n",
			args->job);
		fprintf(stderr, "hint: pgmover events %s --check names the first broken line\n", args->job);
		rc = PGM_EXIT_FAILED;
	}
	free(text);
	cJSON_Delete(evidence);
	pgm_cli_reply_free(&reply);
	pgm_cli_conn_close(&client);
	return rc;
}

/*
 * cmd_verify is "verify JOB" through the daemon, or, without a job name,
 * the in-process comparison of --source and --target.
 */
static int
cmd_verify(pgm_cli_args_t *args, const pgm_cli_command_t *command)
{
	if (args->job != NULL && (args->given & PGM_CLI_OPT_COMPARE) != 0) {
		pgm_cli_output_error("\"verify JOB\" takes no --source, --target or --tables");
		pgm_cli_output_hint("to compare two databases outside a job, leave out the job name");
		return PGM_EXIT_USAGE;
	}
	if (args->job != NULL)
		return cmd_daemon(args, command);
	if (args->source == NULL || args->target == NULL) {
		pgm_cli_output_error("verify needs a job name, or --source and --target");
		pgm_cli_usage_hint(command);
		return PGM_EXIT_USAGE;
	}
	return pgm_cli_compare(args->rest_argc, args->rest_argv, args->json);
}

/*
 * cmd_plan hands the command line to the in-process preflight.
 */
static int
cmd_plan(pgm_cli_args_t *args, const pgm_cli_command_t *command)
{
	return pgm_cli_plan(args->rest_argc, args->rest_argv, args->json);
}

/*
 * usage_print prints a command's usage, one form a line (forms are separated
 * by newlines in the table), each line after the first indented by indent.
 */
static void
usage_print(FILE *out, const char *usage, int indent)
{
	const char *nl;

	while ((nl = strchr(usage, '\n')) != NULL) {
		fprintf(out, "pgmover %.*s\n%*s", (int) (nl - usage), usage, indent, "");
		usage = nl + 1;
	}
	fprintf(out, "pgmover %s\n", usage);
}

/*
 * pgm_cli_usage_hint ends a usage error with "hint: usage: pgmover ...".
 */
void
pgm_cli_usage_hint(const pgm_cli_command_t *command)
{
	fputs("hint: usage: ", stderr);
	usage_print(stderr, command->usage, (int) strlen("hint: usage: "));
}

/*
 * names_print prints, in table order, the names of the commands that allow
 * any of the options in mask: "a, b and c".
 */
static void
names_print(FILE *out, unsigned mask)
{
	const pgm_cli_command_t *match[64];
	int n = 0;

	for (const pgm_cli_command_t *c = pgm_cli_commands; c->name != NULL && n < 64; c++) {
		if ((c->options & mask) != 0)
			match[n++] = c;
	}
	for (int i = 0; i < n; i++)
		fprintf(out, "%s%s", i == 0 ? "" : i == n - 1 ? " and " : ", ", match[i]->name);
}

/*
 * pgm_cli_help_print prints the general help, or one command's when command is set.
 * Both come from the dispatch table.
 */
void
pgm_cli_help_print(FILE *out, const pgm_cli_command_t *command)
{
	if (command != NULL) {
		fprintf(out, "%s\n\nUsage:\n  ", command->summary);
		usage_print(out, command->usage, 2);
		fprintf(out, "\nRun \"pgmover help\" for the global options.\n");
		return;
	}
	fprintf(out,
		"pgmover is the command-line client of pgmoverd, the PostgreSQL migration daemon.\n\n"
		"Usage:\n  pgmover [-s SOCKET] [--json] [--timeout SECONDS] COMMAND [JOB] [options]\n\nCommands:\n");
	for (const pgm_cli_command_t *c = pgm_cli_commands; c->name != NULL; c++)
		fprintf(out, "  %-9s %s\n", c->name, c->summary);
	fprintf(out, "\nOptions:\n"
		     "  -s, --socket=PATH  pgmoverd's control socket (default: $PGMOVER_SOCKET,\n"
		     "                     else " PGM_CLI_DEFAULT_SOCKET ")\n"
		     "  --json             print the daemon's replies unchanged, one JSON object a line\n"
		     "  --timeout=SECONDS  how long to wait for pgmoverd's reply (default: $PGMOVER_TIMEOUT,\n"
		     "                     else 30; 0: no limit; watch's events are never timed out)\n"
		     "  -h, --help         show this help, or after a command that command's help\n"
		     "  --source=URL, --target=URL, --method=METHOD, --set KEY=VALUE, --tables=A,B\n"
		     "                     arguments of ");
	names_print(out, ~PGM_CLI_OPT_GLOBAL);
	fprintf(out,
		"; see \"pgmover help COMMAND\"\n"
		"\nExit status: %d success, %d refused or failed, %d usage error, %d pgmoverd unreachable.\n",
		PGM_EXIT_OK, PGM_EXIT_FAILED, PGM_EXIT_USAGE, PGM_EXIT_UNREACHABLE);
}

/*
 * cmd_help is "help [COMMAND]".
 */
static int
cmd_help(pgm_cli_args_t *args, const pgm_cli_command_t *command)
{
	const pgm_cli_command_t *topic = args->job != NULL ? pgm_cli_command_find(args->job) : NULL;

	if (args->job != NULL && topic == NULL) {
		pgm_cli_output_error("unknown command \"%s\"", args->job);
		pgm_cli_output_hint("run \"pgmover help\" for the list of commands");
		return PGM_EXIT_USAGE;
	}
	pgm_cli_help_print(stdout, topic);
	return PGM_EXIT_OK;
}

/*
 * render_version prints both versions and warns when the protocols differ.
 */
static void
render_version(const pgm_cli_args_t *args, const cJSON *result)
{
	const cJSON *protocol = cJSON_GetObjectItemCaseSensitive(result, "protocol");

	printf("pgmover %s (protocol %d)\n", PGM_VERSION, PGM_PROTOCOL_VERSION);
	printf("pgmoverd %s (protocol %d)\n", pgm_cli_json_string(result, "version", "?"),
	       cJSON_IsNumber(protocol) ? protocol->valueint : 0);
	if (!cJSON_IsNumber(protocol) || protocol->valueint != PGM_PROTOCOL_VERSION)
		fprintf(stderr, "pgmover: warning: pgmoverd speaks a different protocol than this client\n"
				"hint: install matching versions of pgmover and pgmoverd\n");
}

/*
 * render_describe prints the state machine, one transition per line.
 */
static void
render_describe(const pgm_cli_args_t *args, const cJSON *result)
{
	pgm_cli_output_describe(stdout, result);
}

/*
 * render_jobs prints the jobs table.
 */
static void
render_jobs(const pgm_cli_args_t *args, const cJSON *result)
{
	pgm_cli_output_status_table(stdout, cJSON_GetObjectItemCaseSensitive(result, "jobs"));
}

/*
 * render_status prints one job in detail, or the table of all jobs.
 */
static void
render_status(const pgm_cli_args_t *args, const cJSON *result)
{
	if (args->job != NULL && args->verbose)
		pgm_cli_output_status_full(stdout, result);
	else if (args->job != NULL)
		pgm_cli_output_status(stdout, result);
	else
		render_jobs(args, result);
	if (args->job != NULL && args->per_table)
		pgm_cli_output_tables(stdout, result);
}

/*
 * render_state prints "job: state" after a command that starts a transition.
 */
static void
render_state(const pgm_cli_args_t *args, const cJSON *result)
{
	printf("%s: %s\n", pgm_cli_json_string(result, "name", args->job), pgm_cli_json_string(result, "state", "ok"));
}

/*
 * render_created confirms a new job.
 */
static void
render_created(const pgm_cli_args_t *args, const cJSON *result)
{
	printf("created job %s (method %s)\n", pgm_cli_json_string(result, "name", args->job),
	       pgm_cli_json_string(result, "method", args->method));
}
