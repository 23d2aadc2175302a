/*
 * test_cli_output.c
 *    Unit tests of the pgmover client's formatting helpers (src/cli/format.c):
 *    sizes, durations, numbers, progress and lag lines, describe rows and
 *    generic scalars; and of its command table (src/cli/commands.c): that it
 *    agrees with the daemon's (pgm_commands[], linked from the library) and
 *    that help and usage errors show every command. No daemon or server
 *    needed.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_main.h"
#include "cli/cli.h"
#include "common/util.h"
#include "daemon/control.h"

/* a command one table has and the other has not, and why */
typedef struct exception_s {
	const char *name;
	const char *reason;
} exception_t;

/* Commands of pgmoverd that the CLI does not offer (none: it offers them all) */
static const exception_t daemon_only[] = {{NULL, NULL}};

/* Commands of the CLI that are none of the daemon's, each with why */
static const exception_t cli_only[] = {{"plan", "the preflight runs in-process, without a daemon, and touches nothing"},
				       {"help", "the client's own help"},
				       {"report", "the client builds the report from the daemon's events reply"},
				       {NULL, NULL}};

/* The options a row may allow, as its usage spells them */
static const struct {
	pgm_cli_option_id_t id;
	const char *spelling;
} row_options[] = {
	{PGM_CLI_OPT_SOURCE, "--source"}, {PGM_CLI_OPT_TARGET, "--target"}, {PGM_CLI_OPT_METHOD, "--method"},
	{PGM_CLI_OPT_SET, "--set"},       {PGM_CLI_OPT_TABLES, "--tables"}, {PGM_CLI_OPT_FORCE, "--force"},
	{PGM_CLI_OPT_OUTPUT, "-o FILE"},
};

/* Options a row allows and its usage does not show, each with why */
static const struct {
	const char *command;
	const char *spelling;
	const char *reason;
} unshown_options[] = {{"plan", "--tables",
			"accepted but ignored (plan.c reads no --tables); refusing it would change what the CLI "
			"accepts, which this table's restructuring does not"},
		       {NULL, NULL, NULL}};

/* parse a JSON literal; the tests own the result */
static cJSON *
json(const char *text)
{
	cJSON *value = cJSON_Parse(text);

	ck_assert_ptr_nonnull(value);
	return value;
}

START_TEST(test_bytes_format)
{
	char buf[32];

	ck_assert_str_eq(pgm_cli_bytes_format(0, buf, sizeof(buf)), "0 B");
	ck_assert_str_eq(pgm_cli_bytes_format(850, buf, sizeof(buf)), "850 B");
	ck_assert_str_eq(pgm_cli_bytes_format(1023, buf, sizeof(buf)), "1023 B");
	ck_assert_str_eq(pgm_cli_bytes_format(1024, buf, sizeof(buf)), "1.0 KiB");
	ck_assert_str_eq(pgm_cli_bytes_format(36700160, buf, sizeof(buf)), "35.0 MiB");
	ck_assert_str_eq(pgm_cli_bytes_format(1288490188, buf, sizeof(buf)), "1.2 GiB");
	ck_assert_str_eq(pgm_cli_bytes_format(4294967296.0, buf, sizeof(buf)), "4.0 GiB");
	ck_assert_str_eq(pgm_cli_bytes_format(3.0 * 1024 * 1024 * 1024 * 1024, buf, sizeof(buf)), "3.0 TiB");
}
END_TEST

START_TEST(test_duration_format)
{
	char buf[32];

	ck_assert_str_eq(pgm_cli_duration_format(0.85, buf, sizeof(buf)), "850ms");
	ck_assert_str_eq(pgm_cli_duration_format(4.2, buf, sizeof(buf)), "4.2s");
	ck_assert_str_eq(pgm_cli_duration_format(42, buf, sizeof(buf)), "42s");
	ck_assert_str_eq(pgm_cli_duration_format(59.7, buf, sizeof(buf)), "1m00s");
	ck_assert_str_eq(pgm_cli_duration_format(80, buf, sizeof(buf)), "1m20s");
	ck_assert_str_eq(pgm_cli_duration_format(3725, buf, sizeof(buf)), "1h02m");
	ck_assert_str_eq(pgm_cli_duration_format(2 * 86400 + 3 * 3600, buf, sizeof(buf)), "2d03h");
	ck_assert_str_eq(pgm_cli_duration_format(-1, buf, sizeof(buf)), "-");
}
END_TEST

START_TEST(test_number_format)
{
	char buf[32];

	ck_assert_str_eq(pgm_cli_number_format(1234567890, buf, sizeof(buf)), "1234567890");
	ck_assert_str_eq(pgm_cli_number_format(-3, buf, sizeof(buf)), "-3");
	ck_assert_str_eq(pgm_cli_number_format(4.25, buf, sizeof(buf)), "4.25");
}
END_TEST

START_TEST(test_progress_format)
{
	char buf[256];
	cJSON *full = json("{\"name\": \"copy\", \"tables_done\": 3, \"tables_total\": 10,"
			   " \"bytes_done\": 1288490188, \"bytes_total\": 4294967296,"
			   " \"rate_bytes_per_sec\": 36700160, \"eta_seconds\": 80,"
			   " \"started_at\": \"2024-05-01T12:00:05Z\"}");
	cJSON *partial = json("{\"name\": \"restore\", \"bytes_done\": 2048, \"eta_seconds\": null}");

	ck_assert_str_eq(pgm_cli_progress_format(full, buf, sizeof(buf)),
			 "copy: tables 3/10, 1.2 GiB of 4.0 GiB (30%), 35.0 MiB/s, ETA 1m20s");
	ck_assert_str_eq(pgm_cli_progress_format(partial, buf, sizeof(buf)), "restore: 2.0 KiB");
	{
		/* the phase in the operator's words; no "0 B/s" while indexes build */
		cJSON *post = json("{\"name\": \"rehearsal\", \"phase\": \"post-data\", \"tables_done\": 8,"
				   " \"tables_total\": 8, \"bytes_done\": 1024, \"bytes_total\": 1024,"
				   " \"rate_bytes_per_sec\": 0, \"eta_seconds\": null}");
		cJSON *drain = json("{\"name\": \"drain\", \"phase\": \"draining\", \"log_rows_behind\": 1200}");

		ck_assert_str_eq(pgm_cli_progress_format(post, buf, sizeof(buf)),
				 "rehearsal (building indexes and constraints): tables 8/8, 1.0 KiB of 1.0 KiB (100%)");
		ck_assert_str_eq(pgm_cli_progress_format(drain, buf, sizeof(buf)),
				 "drain (draining): 1200 logged changes behind");
		cJSON_Delete(post);
		cJSON_Delete(drain);
		/* entries i/n while indexes build; an ETA for the data alone says so */
		post = json("{\"name\": \"final\", \"phase\": \"post-data\", \"items_done\": 3, \"items_total\": 10,"
			    " \"eta_seconds\": 12, \"eta_covers\": \"step\"}");
		ck_assert_str_eq(pgm_cli_progress_format(post, buf, sizeof(buf)),
				 "final (building indexes and constraints 3/10): ETA 12s");
		cJSON_Delete(post);
		post = json(
			"{\"name\": \"rehearsal\", \"phase\": \"data\", \"bytes_done\": 1024, \"bytes_total\": 2048,"
			" \"rate_bytes_per_sec\": 1024, \"eta_seconds\": 1, \"eta_covers\": \"data\"}");
		ck_assert_str_eq(pgm_cli_progress_format(post, buf, sizeof(buf)),
				 "rehearsal (copying data): 1.0 KiB of 2.0 KiB (50%), 1.0 KiB/s, data ETA 1.0s");
		cJSON_Delete(post);
	}
	/* a short buffer truncates, never overflows */
	ck_assert_uint_eq(strlen(pgm_cli_progress_format(full, buf, 12)), 11);
	cJSON_Delete(full);
	cJSON_Delete(partial);
}
END_TEST

START_TEST(test_lag_format)
{
	char buf[64];
	cJSON *both = json("{\"lag_bytes\": 12582912, \"lag_seconds\": 4.2}");
	cJSON *none = json("{\"lag_bytes\": null, \"lag_seconds\": null}");

	ck_assert_str_eq(pgm_cli_lag_format(both, buf, sizeof(buf)), "12.0 MiB, 4.2s");
	ck_assert_ptr_null(pgm_cli_lag_format(none, buf, sizeof(buf)));
	cJSON_Delete(both);
	cJSON_Delete(none);
}
END_TEST

START_TEST(test_transition_format)
{
	char buf[256];
	cJSON *row = json("{\"from\": [\"frozen\", \"verified\"], \"event\": \"thaw\", \"to\": \"thawing\"}");
	cJSON *automatic = json("{\"from\": [\"provisioning\"], \"to\": \"syncing\"}");

	ck_assert_str_eq(pgm_cli_transition_format(row, buf, sizeof(buf)), "frozen,verified --thaw--> thawing");
	ck_assert_str_eq(pgm_cli_transition_format(automatic, buf, sizeof(buf)), "provisioning --> syncing");
	cJSON_Delete(row);
	cJSON_Delete(automatic);
}
END_TEST

START_TEST(test_scalar_format)
{
	char buf[64];
	cJSON *o = json("{\"database_size\": 1234567890, \"rows\": 1234567890, \"wait_seconds\": 3725,"
			" \"small_bytes\": 10, \"on\": true, \"s\": \"15.20\"}");

	ck_assert_str_eq(
		pgm_cli_scalar_format("database_size", cJSON_GetObjectItem(o, "database_size"), buf, sizeof(buf)),
		"1234567890 (1.1 GiB)");
	ck_assert_str_eq(pgm_cli_scalar_format("rows", cJSON_GetObjectItem(o, "rows"), buf, sizeof(buf)), "1234567890");
	ck_assert_str_eq(
		pgm_cli_scalar_format("wait_seconds", cJSON_GetObjectItem(o, "wait_seconds"), buf, sizeof(buf)),
		"3725 (1h02m)");
	ck_assert_str_eq(pgm_cli_scalar_format("small_bytes", cJSON_GetObjectItem(o, "small_bytes"), buf, sizeof(buf)),
			 "10");
	ck_assert_str_eq(pgm_cli_scalar_format("on", cJSON_GetObjectItem(o, "on"), buf, sizeof(buf)), "true");
	ck_assert_str_eq(pgm_cli_scalar_format("s", cJSON_GetObjectItem(o, "s"), buf, sizeof(buf)), "15.20");
	cJSON_Delete(o);
}
END_TEST

/*
 * reason_of returns the reason an exception table gives for name, or NULL.
 */
static const char *
reason_of(const exception_t *table, const char *name)
{
	for (const exception_t *e = table; e->name != NULL; e++) {
		if (strcmp(e->name, name) == 0)
			return e->reason;
	}
	return NULL;
}

/*
 * Every command of the daemon has a row in the CLI's table (or is listed in
 * daemon_only with a reason) and vice versa (or cli_only); and a row's
 * summary starts with the daemon's help of its command, so that both
 * describe each command the same way.
 */
START_TEST(test_tables_agree)
{
	for (int i = 0; pgm_commands[i].name != NULL; i++) {
		const pgm_command_t *d = &pgm_commands[i];
		const pgm_cli_command_t *c = pgm_cli_command_find(d->name);
		const char *why = reason_of(daemon_only, d->name);
		size_t n = strlen(d->help);

		ck_assert_msg(d->help[0] != '\0', "daemon command %s has no help", d->name);
		if (c == NULL) {
			ck_assert_msg(why != NULL && why[0] != '\0',
				      "daemon command \"%s\" has no row in pgm_cli_commands (src/cli/commands.c); "
				      "add one, or list it in daemon_only with the reason",
				      d->name);
			continue;
		}
		ck_assert_msg(why == NULL, "%s is listed as daemon-only, but the CLI has it", d->name);
		ck_assert_msg(c->runs != PGM_CLI_RUNS_LOCAL,
			      "%s is a daemon command, but the CLI runs it in-process only", d->name);
		ck_assert_msg(
			strncmp(c->summary, d->help, n) == 0 &&
				(c->summary[n] == '\0' || strncmp(c->summary + n, ", ", 2) == 0),
			"%s: the CLI says \"%s\", the daemon \"%s\": the CLI's summary must be the daemon's help, "
			"optionally followed by \", \" and what the client adds",
			d->name, c->summary, d->help);
		/* the same job argument */
		if (d->needs_job)
			ck_assert_msg(
				c->job == (c->runs == PGM_CLI_RUNS_BOTH ? PGM_CLI_JOB_OPTIONAL : PGM_CLI_JOB_REQUIRED),
				"%s needs a job on the daemon", d->name);
		else
			ck_assert_msg(c->job != PGM_CLI_JOB_REQUIRED, "%s takes no job on the daemon", d->name);
	}
	for (const pgm_cli_command_t *c = pgm_cli_commands; c->name != NULL; c++) {
		const char *why = reason_of(cli_only, c->name);

		if (c->runs == PGM_CLI_RUNS_LOCAL) {
			ck_assert_msg(pgm_command_find(c->name) == NULL,
				      "%s runs in-process, but the daemon has it too", c->name);
			ck_assert_msg(why != NULL && why[0] != '\0',
				      "CLI command \"%s\" is none of the daemon's; "
				      "list it in cli_only with the reason",
				      c->name);
		} else {
			ck_assert_msg(pgm_command_find(c->name) != NULL,
				      "CLI command \"%s\" is sent to the daemon, which has no such command", c->name);
			ck_assert_msg(why == NULL, "%s is listed as CLI-only, but the daemon has it", c->name);
		}
		ck_assert_ptr_eq(pgm_cli_command_find(c->name), c);
	}
	for (int i = 0; daemon_only[i].name != NULL; i++)
		ck_assert_msg(pgm_command_find(daemon_only[i].name) != NULL,
			      "daemon_only lists %s, which is no command", daemon_only[i].name);
	for (int i = 0; cli_only[i].name != NULL; i++)
		ck_assert_msg(pgm_cli_command_find(cli_only[i].name) != NULL, "cli_only lists %s, which is no command",
			      cli_only[i].name);
}
END_TEST

/*
 * Each row is complete and its usage matches what it accepts: every form
 * starts with the command; a required job is in every form, no job in none;
 * every option the row allows is shown (or listed in unshown_options).
 */
START_TEST(test_rows_complete)
{
	for (const pgm_cli_command_t *c = pgm_cli_commands; c->name != NULL; c++) {
		size_t n = strlen(c->name);
		const char *form = c->usage;

		ck_assert_msg(n <= 9, "%s: help aligns names of at most 9 characters", c->name);
		ck_assert_ptr_nonnull(c->handler);
		ck_assert_msg(c->summary != NULL && c->summary[0] >= 'a' && c->summary[0] <= 'z', "%s: summary",
			      c->name);
		ck_assert_msg(c->summary[strlen(c->summary) - 1] != '.', "%s: summary ends in a period", c->name);
		ck_assert_msg(strchr(c->summary, '\n') == NULL, "%s: summary is more than one line", c->name);
		/* only the commands that print by themselves go without a renderer */
		ck_assert_msg(c->render != NULL || strcmp(c->name, "watch") == 0 || strcmp(c->name, "events") == 0 ||
				      strcmp(c->name, "plan") == 0 || strcmp(c->name, "help") == 0 ||
				      strcmp(c->name, "report") == 0,
			      "%s: a reply from the daemon needs a renderer", c->name);
		while (form != NULL) {
			const char *nl = strchr(form, '\n');
			size_t len = nl != NULL ? (size_t) (nl - form) : strlen(form);
			char *line = strndup(form, len);

			ck_assert_msg(strncmp(line, c->name, n) == 0 && (line[n] == '\0' || line[n] == ' '),
				      "usage form \"%s\" does not start with \"%s\"", line, c->name);
			if (c->job == PGM_CLI_JOB_REQUIRED)
				ck_assert_msg(strncmp(line + n, " JOB", 4) == 0, "usage form \"%s\" lacks JOB", line);
			if (c->job == PGM_CLI_JOB_NONE)
				ck_assert_msg(strstr(line, "JOB") == NULL,
					      "usage form \"%s\": the command takes no job", line);
			free(line);
			form = nl != NULL ? nl + 1 : NULL;
		}
		for (size_t i = 0; i < sizeof(row_options) / sizeof(row_options[0]); i++) {
			bool unshown = false;

			if ((c->options & PGM_CLI_OPT_BIT(row_options[i].id)) == 0) {
				ck_assert_msg(strstr(c->usage, row_options[i].spelling) == NULL,
					      "%s's usage shows %s, which it does not allow", c->name,
					      row_options[i].spelling);
				continue;
			}
			for (int j = 0; unshown_options[j].command != NULL; j++)
				unshown |= strcmp(unshown_options[j].command, c->name) == 0 &&
					   strcmp(unshown_options[j].spelling, row_options[i].spelling) == 0;
			ck_assert_msg(unshown != (strstr(c->usage, row_options[i].spelling) != NULL),
				      "%s allows %s: its usage must show it (or unshown_options list it, not both)",
				      c->name, row_options[i].spelling);
		}
	}
}
END_TEST

/* what pgm_cli_help_print prints for command (NULL: the general help), malloc'd */
static char *
help_text(const pgm_cli_command_t *command)
{
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);

	ck_assert_ptr_nonnull(out);
	pgm_cli_help_print(out, command);
	ck_assert_int_eq(fclose(out), 0);
	return text;
}

/* what pgm_cli_usage_hint prints on stderr for command, malloc'd */
static char *
usage_hint_text(const pgm_cli_command_t *command)
{
	FILE *tmp = tmpfile();
	int saved = dup(STDERR_FILENO);
	char *text = calloc(1, 4096);

	ck_assert_ptr_nonnull(tmp);
	fflush(stderr);
	ck_assert_int_ge(dup2(fileno(tmp), STDERR_FILENO), 0);
	pgm_cli_usage_hint(command);
	fflush(stderr);
	ck_assert_int_ge(dup2(saved, STDERR_FILENO), 0);
	close(saved);
	rewind(tmp);
	ck_assert_uint_gt(fread(text, 1, 4095, tmp), 0);
	fclose(tmp);
	return text;
}

/*
 * The help lists every command of the table, and so every command of the
 * daemon, with its summary; a command's help and its usage error show each
 * of its usage forms.
 */
START_TEST(test_help_shows_every_command)
{
	char *help = help_text(NULL);

	for (const pgm_cli_command_t *c = pgm_cli_commands; c->name != NULL; c++) {
		char *line = pgm_asprintf("\n  %-9s %s\n", c->name, c->summary);
		char *one = help_text(c);
		char *hint = usage_hint_text(c);
		const char *form = c->usage;

		ck_assert_msg(strstr(help, line) != NULL, "help lacks \"%s\":\n%s", line, help);
		ck_assert_msg(strncmp(one, c->summary, strlen(c->summary)) == 0, "help %s: %s", c->name, one);
		ck_assert_msg(strncmp(hint, "hint: usage: pgmover ", 21) == 0, "usage hint of %s: %s", c->name, hint);
		while (form != NULL) {
			const char *nl = strchr(form, '\n');
			char *shown = pgm_asprintf("pgmover %.*s\n",
						   (int) (nl != NULL ? nl - form : (long) strlen(form)), form);

			ck_assert_msg(strstr(one, shown) != NULL, "help %s lacks \"%s\": %s", c->name, shown, one);
			ck_assert_msg(strstr(hint, shown) != NULL, "usage hint of %s lacks \"%s\": %s", c->name, shown,
				      hint);
			free(shown);
			form = nl != NULL ? nl + 1 : NULL;
		}
		free(line);
		free(one);
		free(hint);
	}
	for (int i = 0; pgm_commands[i].name != NULL; i++) {
		char *word = pgm_asprintf("\n  %-9s %s", pgm_commands[i].name, pgm_commands[i].help);

		ck_assert_msg(strstr(help, word) != NULL || reason_of(daemon_only, pgm_commands[i].name) != NULL,
			      "help lacks the daemon's command %s", pgm_commands[i].name);
		free(word);
	}
	/* the commands that take arguments, and the exit codes of protocol.h */
	{
		const char *args = strstr(help, "arguments of ");
		char *line;

		ck_assert_ptr_nonnull(args);
		line = strndup(args, strcspn(args, ";\n"));
		for (const pgm_cli_command_t *c = pgm_cli_commands; c->name != NULL; c++) {
			char *word = pgm_asprintf(" %s", c->name);
			bool named = false;

			for (const char *at = strstr(line, word); at != NULL; at = strstr(at + 1, word))
				named |= at[strlen(word)] == '\0' || at[strlen(word)] == ',' || at[strlen(word)] == ' ';

			ck_assert_msg(named == ((c->options & ~PGM_CLI_OPT_GLOBAL) != 0), "\"%s\" and %s", line,
				      c->name);
			free(word);
		}
		free(line);
	}
	ck_assert_msg(
		strstr(help, "Exit status: 0 success, 1 refused or failed, 2 usage error, 3 pgmoverd unreachable.") !=
			NULL,
		"%s", help);
	free(help);
}
END_TEST

/*
 * The jobs table: a corrupt job (the daemon could not read its state) has
 * a row like the others, and under the table what is wrong and the hint.
 */
START_TEST(test_status_table_corrupt)
{
	cJSON *jobs = json("[{\"name\": \"mall\", \"state\": \"created\", \"method\": \"dump\", \"since\": \"t\"},"
			   " {\"name\": \"shop\", \"state\": \"corrupt\", \"error\": {\"code\": \"job_corrupt\","
			   " \"message\": \"job shop is corrupt: state.json is empty\", \"hint\": \"restore it\"}}]");
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);

	ck_assert_ptr_nonnull(out);
	pgm_cli_output_status_table(out, jobs);
	ck_assert_int_eq(fclose(out), 0);
	ck_assert_msg(strstr(text, "mall  created  dump    t\n") != NULL, "%s", text);
	ck_assert_msg(strstr(text, "shop  corrupt  -       -\n") != NULL, "%s", text);
	ck_assert_msg(strstr(text, "\nshop: job shop is corrupt: state.json is empty\n  hint: restore it\n") != NULL,
		      "%s", text);
	ck_assert_ptr_null(strstr(text, "mall:"));
	free(text);
	cJSON_Delete(jobs);
}
END_TEST

/* the rollback window in one screen: the slot's retained WAL, a stream retrying, a deadline passed */
static char *
status_text(const char *status_json)
{
	cJSON *st = json(status_json);
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);

	ck_assert_ptr_nonnull(out);
	pgm_cli_output_status(out, st);
	ck_assert_int_eq(fclose(out), 0);
	cJSON_Delete(st);
	return text;
}

START_TEST(test_status_rollback_window)
{
	char *text = status_text(
		"{\"name\": \"shop\", \"state\": \"rollback_window\", \"method\": \"dump\","
		" \"rollback_deadline\": \"2999-01-01T00:00:00.000Z\", \"facts\": {\"reverse\": {\"retained_bytes\": 3145728,"
		" \"retries\": 3, \"retry_in_ms\": 4000, \"error\": \"reverse stream: could not connect to the source\"}}}");

	ck_assert_msg(strstr(text, "  rollback: possible until 2999-01-01T00:00:00.000Z\n") != NULL, "%s", text);
	ck_assert_msg(strstr(text, "  reverse:  the slot retains 3.0 MiB of WAL on the target\n") != NULL, "%s", text);
	ck_assert_msg(strstr(text, "  reverse:  retrying (3 in a row, next in 4.0s): reverse stream: could not connect "
				   "to the source\n") != NULL,
		      "%s", text);
	free(text);
	/* failed in the window past its deadline: what retry will do, not "possible until" */
	text = status_text("{\"name\": \"shop\", \"state\": \"failed\", \"method\": \"dump\","
			   " \"rollback_deadline\": \"2001-01-01T00:00:00.000Z\", \"facts\": {\"reverse\": {}}}");
	ck_assert_msg(strstr(text, "deadline passed at 2001-01-01T00:00:00.000Z: \"pgmover retry\" resumes the "
				   "window, which then finishes (no rollback)") != NULL,
		      "%s", text);
	ck_assert_ptr_null(strstr(text, "possible until"));
	ck_assert_ptr_null(strstr(text, "reverse:"));
	free(text);
}
END_TEST

/*
 * One screen of status: the freeze to expect, from the rehearsal's measured
 * phases; and status --tables, from the running copy or pglogical's states.
 */
START_TEST(test_status_expected_and_tables)
{
	cJSON *st =
		json("{\"name\": \"shop\", \"state\": \"synced\", \"method\": \"dump\","
		     " \"facts\": {\"copies\": {\"rehearsal\": {\"duration_ms\": 14700, \"data_ms\": 10200,"
		     " \"phases_ms\": {\"snapshot\": 100, \"schema\": 2100, \"data\": 10200, \"post-data\": 2300}}}},"
		     " \"verify\": {\"duration_ms\": 2200},"
		     " \"tables_progress\": [{\"table\": \"public.big\", \"state\": \"copying\", \"bytes_total\": 2048,"
		     " \"bytes_done\": 1024, \"chunks_done\": 1, \"chunks_total\": 2},"
		     " {\"table\": \"public.s\", \"state\": \"waiting\", \"bytes_total\": 0, \"bytes_done\": 0,"
		     " \"chunks_done\": 0, \"chunks_total\": 1}]}");
	cJSON *pgl = json("{\"name\": \"live\", \"state\": \"syncing\", \"facts\": {\"pglogical\": {\"sync\":"
			  " {\"tables\": {\"public.a\": \"r\", \"public.b\": \"d\"}}}}}");
	cJSON *none = json("{\"name\": \"idle\", \"state\": \"created\"}");
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);

	pgm_cli_output_status(out, st);
	pgm_cli_output_tables(out, st);
	pgm_cli_output_tables(out, pgl);
	pgm_cli_output_tables(out, none);
	ck_assert_int_eq(fclose(out), 0);
	ck_assert_msg(strstr(text, "expected: freeze 17s (rehearsal copy 15s: schema and setup 2.2s, data 10s, "
				   "indexes and constraints 2.3s; verification 2.2s)") != NULL,
		      "%s", text);
	ck_assert_msg(strstr(text, "public.big  copying  1.0 KiB of 2.0 KiB (50%), parts 1/2\n") != NULL, "%s", text);
	ck_assert_msg(strstr(text, "public.s    waiting  0 B of 0 B\n") != NULL, "%s", text);
	ck_assert_msg(strstr(text, "public.a  replicating\npublic.b  copying\n") != NULL, "%s", text);
	ck_assert_msg(strstr(text, "no per-table progress now") != NULL, "%s", text);
	free(text);
	cJSON_Delete(st);
	cJSON_Delete(pgl);
	cJSON_Delete(none);
}
END_TEST

/*
 * The formatting tests and those of the command table.
 */
Suite *
pgm_test_suite(void)
{
	Suite *s = suite_create("cli_output");
	TCase *tc = tcase_create("format");

	tcase_add_test(tc, test_bytes_format);
	tcase_add_test(tc, test_duration_format);
	tcase_add_test(tc, test_number_format);
	tcase_add_test(tc, test_progress_format);
	tcase_add_test(tc, test_lag_format);
	tcase_add_test(tc, test_transition_format);
	tcase_add_test(tc, test_scalar_format);
	tcase_add_test(tc, test_status_table_corrupt);
	tcase_add_test(tc, test_status_expected_and_tables);
	tcase_add_test(tc, test_status_rollback_window);
	suite_add_tcase(s, tc);
	tc = tcase_create("commands");
	tcase_add_test(tc, test_tables_agree);
	tcase_add_test(tc, test_rows_complete);
	tcase_add_test(tc, test_help_shows_every_command);
	suite_add_tcase(s, tc);
	return s;
}
