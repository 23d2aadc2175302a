/*
 * main.c
 *    pgmover, the command-line client of pgmoverd.
 *
 * Every command is one request on the daemon's control socket, looked up in
 * one dispatch table (like PgBouncer's admin console). Options may come
 * before or after the command. plan and stand-alone verify run in-process
 * through pgm_cli_plan (plan.c) and pgm_cli_compare (compare.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* One command-line option; the table below is the whole option syntax */
typedef struct cli_option_s {
	const char *name; /* long name, without "--" */
	char short_name;  /* single-letter form, or 0 */
	bool has_arg;     /* takes a value */
	pgm_cli_option_id_t id;
} cli_option_t;

static const cli_option_t cli_options[] = {{"socket", 's', true, PGM_CLI_OPT_SOCKET},
					   {"json", 0, false, PGM_CLI_OPT_JSON},
					   {"timeout", 0, true, PGM_CLI_OPT_TIMEOUT},
					   {"help", 'h', false, PGM_CLI_OPT_HELP},
					   {"source", 0, true, PGM_CLI_OPT_SOURCE},
					   {"target", 0, true, PGM_CLI_OPT_TARGET},
					   {"method", 0, true, PGM_CLI_OPT_METHOD},
					   {"set", 0, true, PGM_CLI_OPT_SET},
					   {"tables", 0, true, PGM_CLI_OPT_TABLES},
					   {"no-traffic-switch", 0, false, PGM_CLI_OPT_NO_TRAFFIC_SWITCH},
					   {"verbose", 'v', false, PGM_CLI_OPT_VERBOSE},
					   {"until", 0, true, PGM_CLI_OPT_UNTIL},
					   {"force", 0, false, PGM_CLI_OPT_FORCE},
					   {"check", 0, false, PGM_CLI_OPT_CHECK},
					   {"summary", 0, false, PGM_CLI_OPT_SUMMARY},
					   {"output", 'o', true, PGM_CLI_OPT_OUTPUT},
					   {"accept-loss", 0, false, PGM_CLI_OPT_ACCEPT_LOSS},
					   {NULL, 0, false, 0}};

/*
 * option_find looks an option up by long name (name_len bytes of name) or,
 * when name is NULL, by its short letter.
 */
static const cli_option_t *
option_find(const char *name, size_t name_len, char short_name)
{
	for (const cli_option_t *o = cli_options; o->name != NULL; o++) {
		if (name != NULL ? (strlen(o->name) == name_len && strncmp(o->name, name, name_len) == 0)
				 : o->short_name == short_name)
			return o;
	}
	return NULL;
}

/*
 * timeout_parse reads a number of seconds (fractions allowed; 0: no limit)
 * for how long a reply may take.
 */
static bool
timeout_parse(pgm_cli_args_t *args, const char *value, const char *what)
{
	char *end;
	double s = strtod(value, &end);

	if (end == value || *end != '\0' || !(s >= 0) || s > 86400) {
		pgm_cli_output_error("invalid %s \"%s\"", what, value);
		pgm_cli_output_hint("give the seconds to wait for pgmoverd's reply, from 0 (no limit) to 86400");
		return false;
	}
	args->timeout_ms = (int) (s * 1000 + 0.5);
	if (s > 0 && args->timeout_ms == 0)
		args->timeout_ms = 1;
	return true;
}

/*
 * option_apply stores one option's value; --set must be key=value, and a
 * key given twice keeps the last value.
 */
static bool
option_apply(pgm_cli_args_t *args, const cli_option_t *option, const char *value)
{
	const char *eq;
	char *key;
	bool ok;

	args->given |= PGM_CLI_OPT_BIT(option->id);
	switch (option->id) {
	case PGM_CLI_OPT_SOCKET:
		args->socket = value;
		break;
	case PGM_CLI_OPT_JSON:
		args->json = true;
		break;
	case PGM_CLI_OPT_TIMEOUT:
		return timeout_parse(args, value, "--timeout");
	case PGM_CLI_OPT_HELP:
		args->help = true;
		break;
	case PGM_CLI_OPT_SOURCE:
		args->source = value;
		break;
	case PGM_CLI_OPT_TARGET:
		args->target = value;
		break;
	case PGM_CLI_OPT_METHOD:
		args->method = value;
		break;
	case PGM_CLI_OPT_TABLES:
		args->per_table = value == NULL; /* status --tables; verify --tables LIST is read in-process */
		break;
	case PGM_CLI_OPT_NO_TRAFFIC_SWITCH:
		args->no_traffic_switch = true;
		break;
	case PGM_CLI_OPT_VERBOSE:
		args->verbose = true;
		break;
	case PGM_CLI_OPT_UNTIL:
		args->until = value;
		break;
	case PGM_CLI_OPT_FORCE:
		args->force = true;
		break;
	case PGM_CLI_OPT_ACCEPT_LOSS:
		args->accept_loss = true;
		break;
	case PGM_CLI_OPT_CHECK:
		args->check = true;
		break;
	case PGM_CLI_OPT_SUMMARY:
		args->summary = true;
		break;
	case PGM_CLI_OPT_OUTPUT:
		args->output = value;
		break;
	case PGM_CLI_OPT_SET:
		eq = strchr(value, '=');
		if (eq == NULL || eq == value) {
			pgm_cli_output_error("invalid --set argument \"%s\"", value);
			pgm_cli_output_hint("use --set key=value, for example --set jobs=4");
			return false;
		}
		key = strndup(value, (size_t) (eq - value));
		if (key != NULL)
			cJSON_DeleteItemFromObjectCaseSensitive(args->options, key);
		ok = key != NULL && cJSON_AddStringToObject(args->options, key, eq + 1) != NULL;
		free(key);
		if (!ok) {
			pgm_cli_output_error("out of memory");
			pgm_cli_output_hint("free some memory and retry the command");
		}
		return ok;
	}
	return true;
}

/*
 * args_parse reads argv into args. Options and positional arguments may be
 * mixed freely; "--" ends the options. Everything but the global options is
 * also kept, in order, in rest_argv for the in-process commands.
 */
static bool
args_parse(pgm_cli_args_t *args, int argc, char **argv)
{
	bool options_done = false;
	const char *env = getenv("PGMOVER_TIMEOUT");

	args->timeout_ms = PGM_CLI_DEFAULT_TIMEOUT_MS;
	if (env != NULL && env[0] != '\0' && !timeout_parse(args, env, "PGMOVER_TIMEOUT"))
		return false;
	args->options = cJSON_CreateObject();
	args->rest_argv = calloc((size_t) argc + 1, sizeof(char *));
	if (args->options == NULL || args->rest_argv == NULL) {
		pgm_cli_output_error("out of memory");
		pgm_cli_output_hint("free some memory and retry the command");
		return false;
	}
	args->rest_argc = 1; /* rest_argv[0] becomes the command */

	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		const cli_option_t *option;
		const char *value = NULL;
		int first = i;

		if (options_done || arg[0] != '-' || arg[1] == '\0') {
			if (args->command == NULL)
				args->command = arg;
			else if (args->job == NULL)
				args->job = args->rest_argv[args->rest_argc++] = argv[i];
			else {
				pgm_cli_output_error("too many arguments, starting with \"%s\"", arg);
				pgm_cli_output_hint("run \"pgmover help\" for usage");
				return false;
			}
			continue;
		}
		if (strcmp(arg, "--") == 0) {
			options_done = true;
			continue;
		}
		if (arg[1] == '-') {
			const char *eq = strchr(arg + 2, '=');

			option = option_find(arg + 2, eq != NULL ? (size_t) (eq - arg - 2) : strlen(arg + 2), 0);
			value = eq != NULL ? eq + 1 : NULL;
			if (option != NULL && !option->has_arg && value != NULL) {
				pgm_cli_output_error("option \"--%s\" takes no value", option->name);
				pgm_cli_output_hint("write \"--%s\" alone", option->name);
				return false;
			}
		} else {
			option = option_find(NULL, 0, arg[1]);
			value = option != NULL && option->has_arg && arg[2] != '\0' ? arg + 2 : NULL;
			if (option != NULL && !option->has_arg && arg[2] != '\0')
				option = NULL;
		}
		if (option == NULL) {
			pgm_cli_output_error("unrecognized option \"%s\"", arg);
			pgm_cli_output_hint("run \"pgmover help\" for the list of options");
			return false;
		}
		/* status --tables takes no value (verify --tables takes a list) */
		if (option->id == PGM_CLI_OPT_TABLES && value == NULL && args->command != NULL &&
		    strcmp(args->command, "status") == 0) {
			args->given |= PGM_CLI_OPT_BIT(option->id);
			args->per_table = true;
			continue;
		}
		if (option->has_arg && value == NULL) {
			if (i + 1 >= argc) {
				pgm_cli_output_error("option \"%s\" needs a value", arg);
				pgm_cli_output_hint("run \"pgmover help\" for usage");
				return false;
			}
			value = argv[++i];
		}
		if (!option_apply(args, option, value))
			return false;
		for (int j = first; (PGM_CLI_OPT_BIT(option->id) & PGM_CLI_OPT_GLOBAL) == 0 && j <= i; j++)
			args->rest_argv[args->rest_argc++] = argv[j];
	}
	args->rest_argv[0] = (char *) (args->command != NULL ? args->command : "pgmover");
	if (args->socket == NULL)
		args->socket = getenv("PGMOVER_SOCKET");
	if (args->socket == NULL || args->socket[0] == '\0')
		args->socket = PGM_CLI_DEFAULT_SOCKET;
	return true;
}

/*
 * args_check validates the job argument and options against the command's
 * row, so that handlers can trust them.
 */
static bool
args_check(const pgm_cli_args_t *args, const pgm_cli_command_t *command)
{
	unsigned stray = args->given & ~(command->options | PGM_CLI_OPT_GLOBAL);

	if (command->job == PGM_CLI_JOB_REQUIRED && args->job == NULL)
		pgm_cli_output_error("missing job name for \"%s\"", command->name);
	else if (command->job == PGM_CLI_JOB_NONE && args->job != NULL)
		pgm_cli_output_error("command \"%s\" takes no job name, but \"%s\" was given", command->name,
				     args->job);
	else if (stray != 0) {
		for (const cli_option_t *o = cli_options; o->name != NULL; o++) {
			if (stray & PGM_CLI_OPT_BIT(o->id)) {
				pgm_cli_output_error("option \"--%s\" is not valid for \"%s\"", o->name, command->name);
				break;
			}
		}
	} else
		return true;
	pgm_cli_usage_hint(command);
	return false;
}

/*
 * main parses the command line, finds the command's row and runs it.
 */
int
main(int argc, char **argv)
{
	pgm_cli_args_t args;
	const pgm_cli_command_t *command = NULL;
	int rc = PGM_EXIT_USAGE;

	signal(SIGPIPE, SIG_IGN);
	memset(&args, 0, sizeof(args));

	/* before the parse: a usage error after --json is JSON too */
	for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], "--json") == 0)
			pgm_cli_json_errors(true);
	if (!args_parse(&args, argc, argv))
		goto cleanup;
	if (args.command == NULL && args.help) {
		pgm_cli_help_print(stdout, NULL);
		rc = PGM_EXIT_OK;
		goto cleanup;
	}
	if (args.command == NULL) {
		pgm_cli_output_error("no command given");
		pgm_cli_output_hint("run \"pgmover help\" for the list of commands");
		goto cleanup;
	}
	command = pgm_cli_command_find(args.command);
	if (command == NULL) {
		pgm_cli_output_error("unknown command \"%s\"", args.command);
		pgm_cli_output_hint("run \"pgmover help\" for the list of commands");
		goto cleanup;
	}
	if (args.help) {
		pgm_cli_help_print(stdout, command);
		rc = PGM_EXIT_OK;
		goto cleanup;
	}
	if (args_check(&args, command))
		rc = command->handler(&args, command);

cleanup:
	pgm_cli_json_errors_flush(rc);
	cJSON_Delete(args.options);
	free(args.rest_argv);
	if (fflush(stdout) != 0 && rc == PGM_EXIT_OK) {
		/* output lost: do not claim success; a closed pipe needs no message */
		if (errno != EPIPE) {
			fprintf(stderr, "pgmover: error: could not write to standard output: %s\n", strerror(errno));
			fprintf(stderr, "hint: check the free space of the file or device standard output goes to\n");
		}
		rc = PGM_EXIT_FAILED;
	}
	if (pgm_cli_interrupted) {
		signal(SIGINT, SIG_DFL);
		raise(SIGINT);
	}
	return rc;
}
