/*
 * test_config.c
 *    Unit tests of pgmoverd.conf parsing and job options (src/daemon/config.c):
 *    defaults, every setting, comments and quotes, errors that name the
 *    file and line, canonical forms, and the job option builder that both
 *    the file's defaults and `pgmover create --set` go through.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_main.h"
#include "common/util.h"
#include "daemon/config.h"

static pgm_config_t cfg;

static void
setup(void)
{
	pgm_config_init(&cfg);
}

static void
teardown(void)
{
	pgm_config_free(&cfg);
}

/* the value of a job default the file set, or NULL */
static const char *
job_default(const char *name)
{
	return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cfg.job_defaults, name));
}

/* parse text that must be accepted */
static void
parse_ok(const char *text)
{
	char *err = NULL;
	bool ok = pgm_config_parse(&cfg, "test.conf", text, &err);

	ck_assert_msg(ok, "rejected: %s", err ? err : "(no message)");
	ck_assert_ptr_null(err);
}

/*
 * Parse text that must be refused; the message must start with "FILE:LINE: "
 * and contain each of the given fragments.
 */
static void
parse_fails(const char *text, int line, const char *frag1, const char *frag2)
{
	char *err = NULL;
	char *where = pgm_asprintf("test.conf:%d: ", line);

	ck_assert_msg(!pgm_config_parse(&cfg, "test.conf", text, &err), "accepted: %s", text);
	ck_assert_ptr_nonnull(err);
	ck_assert_msg(strncmp(err, where, strlen(where)) == 0, "\"%s\" does not start with \"%s\"", err, where);
	if (frag1)
		ck_assert_msg(strstr(err, frag1) != NULL, "\"%s\" lacks \"%s\"", err, frag1);
	if (frag2)
		ck_assert_msg(strstr(err, frag2) != NULL, "\"%s\" lacks \"%s\"", err, frag2);
	free(where);
	free(err);
}

START_TEST(test_defaults)
{
	ck_assert_str_eq(cfg.socket_path, "/run/pgmover/pgmoverd.sock");
	ck_assert_int_eq(cfg.socket_mode, 0660);
	ck_assert_str_eq(cfg.state_dir, "/var/lib/pgmover");
	ck_assert_int_eq(cfg.log_level, PGM_LOG_INFO);
	ck_assert_int_eq(cfg.max_clients, 4096);
	ck_assert(cJSON_IsObject(cfg.job_defaults));
	ck_assert_int_eq(cJSON_GetArraySize(cfg.job_defaults), 0);

	/* an empty file, or one of comments only, gives the same */
	parse_ok("");
	ck_assert_str_eq(cfg.socket_path, "/run/pgmover/pgmoverd.sock");
	parse_ok("# nothing\n\n; still nothing\n   \n\t# indented\n");
	ck_assert_int_eq(cfg.socket_mode, 0660);
	ck_assert_int_eq(cfg.max_clients, 4096);
	ck_assert_int_eq(cJSON_GetArraySize(cfg.job_defaults), 0);
}
END_TEST

/*
 * pgmoverd --describe-config: every setting of both tables, one line of
 * seven tab-separated fields, bounds in the units a user writes
 */
START_TEST(test_describe_config)
{
	char *text = pgm_opt_describe(), *save = NULL;
	int lines = 0, expected = 0;

	for (int i = 0; pgm_daemon_opts[i].name; i++)
		expected++;
	for (int i = 0; pgm_job_opts[i].name; i++)
		expected++;
	ck_assert_ptr_nonnull(strstr(text, "daemon\tsocket_mode\toctal mode\t0660\t0000 to 0777\trestart\t"));
	ck_assert_ptr_nonnull(strstr(text, "daemon\tlog_level\tenum\tinfo\tdebug|info|notice|warning|error\treload\t"));
	ck_assert_ptr_nonnull(strstr(text, "job\trollback_window\tduration\t24h\t0 to 30d\treload\t"));
	ck_assert_ptr_nonnull(strstr(text, "job\thook_timeout\tduration\t60s\t100ms to 1d\treload\t"));
	ck_assert_ptr_nonnull(strstr(text, "job\tjobs\tinteger\t2\t1 to 32\treload\t"));
	ck_assert_ptr_nonnull(strstr(text, "job\tretained_wal_warning\tinteger\t1073741824\t0 or more\t"));
	ck_assert_ptr_nonnull(strstr(text, "job\tcutover_command\tstring\t\t\treload\t"));
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		int tabs = 0;

		for (char *p = line; *p; p++)
			tabs += *p == '\t';
		ck_assert_msg(tabs == 6, "not 7 fields: %s", line);
		lines++;
	}
	ck_assert_int_eq(lines, expected);
	free(text);
}
END_TEST

/* every default in both tables passes its own validation */
START_TEST(test_table_defaults_valid)
{
	const pgm_opt_def_t *tables[] = {pgm_daemon_opts, pgm_job_opts};

	for (int t = 0; t < 2; t++) {
		for (int i = 0; tables[t][i].name; i++) {
			char *canon = NULL, *err = NULL;

			ck_assert_ptr_nonnull(tables[t][i].help);
			ck_assert_msg(pgm_opt_validate(&tables[t][i], tables[t][i].dflt, &canon, &err),
				      "default of %s is invalid: %s", tables[t][i].name, err);
			ck_assert_ptr_null(err);
			free(canon);
			/* no name in both tables: the file could not tell them apart */
			if (t == 0)
				ck_assert_ptr_null(pgm_opt_find(pgm_job_opts, tables[t][i].name));
		}
	}
	ck_assert_ptr_null(pgm_opt_find(pgm_daemon_opts, "nope"));
	ck_assert_ptr_nonnull(pgm_opt_find(pgm_job_opts, "hook_timeout"));
}
END_TEST

START_TEST(test_every_setting)
{
	parse_ok("socket_path = /tmp/pgm.sock\n"
		 "socket_mode = 0600\n"
		 "state_dir = /srv/pgmover\n"
		 "log_level = debug\n"
		 "max_clients = 12\n"
		 "rehearsal = off\n"
		 "engine = pg_dump\n"
		 "jobs = 8\n"
		 "overwrite_target = yes\n"
		 "allow_no_pk = true\n"
		 "freeze_mode = both\n"
		 "freeze_command = /usr/local/bin/maint on\n"
		 "thaw_command = /usr/local/bin/maint off\n"
		 "cutover_command = /usr/local/bin/point-app-at \"$PGMOVER_TARGET_URL\"\n"
		 "hook_timeout = 2m\n"
		 "rollback_window = 2d\n"
		 "pg_bindir = /usr/lib/postgresql/15/bin\n"
		 "connect_timeout = 500ms\n");
	ck_assert_str_eq(cfg.socket_path, "/tmp/pgm.sock");
	ck_assert_int_eq(cfg.socket_mode, 0600);
	ck_assert_str_eq(cfg.state_dir, "/srv/pgmover");
	ck_assert_int_eq(cfg.log_level, PGM_LOG_DEBUG);
	ck_assert_int_eq(cfg.max_clients, 12);
	/* job settings become job defaults, in canonical form */
	ck_assert_str_eq(job_default("rehearsal"), "off");
	ck_assert_str_eq(job_default("engine"), "pg_dump");
	ck_assert_str_eq(job_default("jobs"), "8");
	ck_assert_str_eq(job_default("overwrite_target"), "on");
	ck_assert_str_eq(job_default("allow_no_pk"), "on");
	ck_assert_str_eq(job_default("freeze_mode"), "both");
	ck_assert_str_eq(job_default("freeze_command"), "/usr/local/bin/maint on");
	ck_assert_str_eq(job_default("thaw_command"), "/usr/local/bin/maint off");
	ck_assert_str_eq(job_default("cutover_command"), "/usr/local/bin/point-app-at \"$PGMOVER_TARGET_URL\"");
	ck_assert_str_eq(job_default("hook_timeout"), "120000ms");
	ck_assert_str_eq(job_default("rollback_window"), "172800000ms");
	ck_assert_str_eq(job_default("pg_bindir"), "/usr/lib/postgresql/15/bin");
	ck_assert_str_eq(job_default("connect_timeout"), "500ms");
	/* daemon settings never leak into the job defaults */
	ck_assert_ptr_null(job_default("socket_path"));
	ck_assert_int_eq(cJSON_GetArraySize(cfg.job_defaults), 13);

	/* every log level */
	parse_ok("log_level = error");
	ck_assert_int_eq(cfg.log_level, PGM_LOG_ERROR);
	parse_ok("log_level = warning");
	ck_assert_int_eq(cfg.log_level, PGM_LOG_WARNING);
	parse_ok("log_level = notice");
	ck_assert_int_eq(cfg.log_level, PGM_LOG_NOTICE);
	parse_ok("log_level = info");
	ck_assert_int_eq(cfg.log_level, PGM_LOG_INFO);
}
END_TEST

/*
 * Every row of both tables, written in the file with its own default,
 * is accepted: job settings land in the job defaults in canonical form,
 * daemon settings in the struct.
 */
START_TEST(test_every_row_in_file)
{
	char *text = pgm_strdup("");
	int njob = 0;

	for (int t = 0; t < 2; t++) {
		const pgm_opt_def_t *table = t == 0 ? pgm_daemon_opts : pgm_job_opts;

		for (int i = 0; table[i].name; i++) {
			char *next = pgm_asprintf("%s%s = \"%s\"\n", text, table[i].name, table[i].dflt);

			free(text);
			text = next;
			njob += t;
		}
	}
	parse_ok(text);
	free(text);
	ck_assert_int_eq(cJSON_GetArraySize(cfg.job_defaults), njob);
	for (int i = 0; pgm_job_opts[i].name; i++) {
		char *canon = NULL, *err = NULL;

		ck_assert(pgm_opt_validate(&pgm_job_opts[i], pgm_job_opts[i].dflt, &canon, &err));
		ck_assert_msg(job_default(pgm_job_opts[i].name) != NULL, "%s missing", pgm_job_opts[i].name);
		ck_assert_str_eq(job_default(pgm_job_opts[i].name), canon);
		free(canon);
	}
	/* the struct holds what pgm_config_init gives */
	ck_assert_str_eq(cfg.socket_path, pgm_opt_find(pgm_daemon_opts, "socket_path")->dflt);
	ck_assert_str_eq(cfg.state_dir, pgm_opt_find(pgm_daemon_opts, "state_dir")->dflt);
	ck_assert_int_eq(cfg.socket_mode, 0660);
	ck_assert_int_eq(cfg.max_clients, 4096);
	ck_assert_int_eq(cfg.log_level, PGM_LOG_INFO);
}
END_TEST

/* a successful parse replaces the whole configuration: unset keys are defaults again */
START_TEST(test_parse_replaces)
{
	parse_ok("max_clients = 7\njobs = 3\n");
	ck_assert_int_eq(cfg.max_clients, 7);
	parse_ok("log_level = error\n");
	ck_assert_int_eq(cfg.max_clients, 4096);
	ck_assert_ptr_null(job_default("jobs"));
	/* the last of two lines wins */
	parse_ok("jobs = 3\njobs = 5\nstate_dir = /a\nstate_dir = /b\n");
	ck_assert_str_eq(job_default("jobs"), "5");
	ck_assert_str_eq(cfg.state_dir, "/b");
	ck_assert_int_eq(cJSON_GetArraySize(cfg.job_defaults), 1);
}
END_TEST

START_TEST(test_syntax)
{
	parse_ok("# a comment\n"
		 "; another comment\n"
		 "\n"
		 "   \t  \n"
		 "  socket_path=/tmp/x.sock  \n"        /* no spaces around =, padding */
		 "state_dir = \"/srv/with space\"\n"    /* double quotes */
		 "freeze_command = 'echo a # b'\n"      /* '#' inside quotes stays */
		 "thaw_command = curl http://h/#frag\n" /* '#' without a space stays */
		 "max_clients = 99 # trailing comment\n"
		 "log_level = warning   # more text = with equals\n"
		 "jobs = \"4\"\n"
		 "pg_bindir = \"\"\n"              /* quoted empty string */
		 "hook_timeout = 30 s\n"           /* bare number and space: seconds */
		 "\tconnect_timeout\t=\t20s\r\n"); /* tabs and CRLF */
	ck_assert_str_eq(cfg.socket_path, "/tmp/x.sock");
	ck_assert_str_eq(cfg.state_dir, "/srv/with space");
	ck_assert_str_eq(job_default("freeze_command"), "echo a # b");
	ck_assert_str_eq(job_default("thaw_command"), "curl http://h/#frag");
	ck_assert_int_eq(cfg.max_clients, 99);
	ck_assert_int_eq(cfg.log_level, PGM_LOG_WARNING);
	ck_assert_str_eq(job_default("jobs"), "4");
	ck_assert_str_eq(job_default("pg_bindir"), "");
	ck_assert_str_eq(job_default("hook_timeout"), "30000ms");
	ck_assert_str_eq(job_default("connect_timeout"), "20000ms");

	/* no newline at the end of the last line */
	parse_ok("max_clients = 5");
	ck_assert_int_eq(cfg.max_clients, 5);
}
END_TEST

/* a quoted value may be followed by a comment too */
START_TEST(test_quoted_then_comment)
{
	parse_ok("state_dir = \"/srv/my dir\" # where the jobs live\n"
		 "freeze_command = 'maint on # not a comment'   # but this is\n"
		 "socket_path = \"/tmp/q.sock\"# tight\n");
	ck_assert_str_eq(cfg.state_dir, "/srv/my dir");
	ck_assert_str_eq(job_default("freeze_command"), "maint on # not a comment");
	ck_assert_str_eq(cfg.socket_path, "/tmp/q.sock");
}
END_TEST

START_TEST(test_unknown_key)
{
	parse_fails("# header\n\nlog_level = info\nsocket_pathh = /tmp/x\n", 4, "socket_pathh", "unknown setting");
	parse_fails("max_clients = 3\n\n\n\n\nbogus_thing = 1", 6, "\"bogus_thing\"", NULL);
	/* keys are case-sensitive */
	parse_fails("Log_Level = info\n", 1, "Log_Level", NULL);
}
END_TEST

START_TEST(test_syntax_error)
{
	parse_fails("log_level = info\njust some words\n", 2, "syntax error", "key = value");
	parse_fails("\n\n= 5\n", 3, "unknown setting", NULL);
}
END_TEST

START_TEST(test_bad_values)
{
	/* mode */
	parse_fails("socket_mode = 999\n", 1, "socket_mode", "\"999\"");
	parse_fails("\nsocket_mode = abc\n", 2, "socket_mode", "octal");
	parse_fails("socket_mode = 01777\n", 1, "socket_mode", NULL);
	parse_fails("socket_mode = -1\n", 1, "socket_mode", NULL);
	parse_fails("socket_mode = 0660x\n", 1, "socket_mode", NULL);
	parse_fails("socket_mode =\n", 1, "socket_mode", NULL);
	/* enum */
	parse_fails("# x\nlog_level = bogus\n", 2, "log_level", "debug|info|notice|warning|error");
	parse_fails("log_level = INFO\n", 1, "log_level", NULL);
	parse_fails("freeze_mode = readonly\n", 1, "freeze_mode", "read_only|command|both");
	/* int */
	parse_fails("max_clients = 0\n", 1, "max_clients", "out of range");
	parse_fails("\n\n\nmax_clients = 1000001\n", 4, "max_clients", "allowed 1 to 1000000");
	parse_fails("max_clients = 12abc\n", 1, "max_clients", "integer");
	parse_fails("max_clients = 99999999999999999999999\n", 1, "max_clients", NULL);
	parse_fails("max_clients = \n", 1, "max_clients", NULL);
	{
		/* one past the table's bounds, whatever they are today */
		const pgm_opt_def_t *jobs = pgm_opt_find(pgm_job_opts, "jobs");
		char *text = pgm_asprintf("jobs = %lld\n", (long long) jobs->max + 1);
		parse_fails(text, 1, "jobs", "out of range");
		free(text);
		text = pgm_asprintf("jobs = %lld\n", (long long) jobs->min - 1);
		parse_fails(text, 1, "jobs", "out of range");
		free(text);
	}
	parse_fails("jobs = -2\n", 1, "jobs", NULL);
	parse_fails("jobs = 2.5\n", 1, "jobs", NULL);
	/* duration */
	parse_fails("hook_timeout = 5 parsecs\n", 1, "hook_timeout", "\"5 parsecs\"");
	parse_fails("jobs = 2\nconnect_timeout = 5 parsecs\n", 2, "connect_timeout", "duration");
	parse_fails("hook_timeout = -5s\n", 1, "hook_timeout", NULL);
	parse_fails("hook_timeout = s\n", 1, "hook_timeout", NULL);
	parse_fails("hook_timeout = 50ms\n", 1, "hook_timeout", "allowed 100ms to 86400000ms");
	parse_fails("connect_timeout = 11m\n", 1, "connect_timeout", "out of range");
	parse_fails("rollback_window = 31d\n", 1, "rollback_window", "out of range");
	parse_fails("rollback_retained_warn = 1 GiB\n", 1, "rollback_retained_warn", "a size like");
	parse_fails("rollback_retained_warn = -1MB\n", 1, "rollback_retained_warn", "a size like");
	parse_fails("rollback_retained_warn = 9223372036854775807TB\n", 1, "rollback_retained_warn", NULL);
	parse_fails("rollback_window = 9223372036854775807d\n", 1, "rollback_window", NULL);
	/* bool */
	parse_fails("\nrehearsal = maybe\n", 2, "rehearsal", "\"maybe\"");
	parse_fails("overwrite_target = 2\n", 1, "overwrite_target", "on or off");
	parse_fails("allow_no_pk =\n", 1, "allow_no_pk", NULL);
}
END_TEST

/* a failed parse changes nothing: the running configuration stays */
START_TEST(test_failed_parse_keeps_previous)
{
	char *err = NULL;

	parse_ok("socket_path = /tmp/kept.sock\nmax_clients = 77\nlog_level = debug\njobs = 9\n");
	ck_assert(!pgm_config_parse(&cfg, "new.conf",
				    "socket_path = /tmp/other.sock\nmax_clients = 5\njobs = 1\nlog_level = loud\n",
				    &err));
	ck_assert_ptr_nonnull(strstr(err, "new.conf:4:"));
	free(err);
	ck_assert_str_eq(cfg.socket_path, "/tmp/kept.sock");
	ck_assert_int_eq(cfg.max_clients, 77);
	ck_assert_int_eq(cfg.log_level, PGM_LOG_DEBUG);
	ck_assert_str_eq(job_default("jobs"), "9");
	ck_assert_int_eq(cJSON_GetArraySize(cfg.job_defaults), 1);
}
END_TEST

START_TEST(test_canonical_forms)
{
	static const struct {
		const char *name, *in, *out;
	} cases[] = {
		{"rollback_window", "0", "0ms"},
		{"rollback_window", "500ms", "500ms"},
		{"rollback_window", "30s", "30000ms"},
		{"rollback_window", "30", "30000ms"},
		{"rollback_window", "5min", "300000ms"},
		{"rollback_window", "5m", "300000ms"},
		{"rollback_window", "24h", "86400000ms"},
		{"rollback_window", "2d", "172800000ms"},
		{"rollback_window", "1 h", "3600000ms"},
		{"rollback_retained_warn", "0", "0"},
		{"rollback_retained_warn", "8192", "8192"},
		{"rollback_retained_warn", "64kB", "65536"},
		{"rollback_retained_warn", "512MB", "536870912"},
		{"rollback_retained_warn", "1GB", "1073741824"},
		{"rollback_retained_warn", "2 TB", "2199023255552"},
		{"socket_mode", "660", "0660"},
		{"socket_mode", "0600", "0600"},
		{"socket_mode", "0", "0000"},
		{"socket_mode", "777", "0777"},
		{"rehearsal", "on", "on"},
		{"rehearsal", "TRUE", "on"},
		{"rehearsal", "yes", "on"},
		{"rehearsal", "1", "on"},
		{"rehearsal", "Off", "off"},
		{"rehearsal", "false", "off"},
		{"rehearsal", "no", "off"},
		{"rehearsal", "0", "off"},
		{"jobs", "007", "7"},
		{"jobs", "+3", "3"},
		{"jobs", "16", "16"},
		{"freeze_mode", "command", "command"},
		{"freeze_command", " a  b ", " a  b "},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const pgm_opt_def_t *def = pgm_opt_find(pgm_job_opts, cases[i].name);
		char *canon = NULL, *err = NULL, *again = NULL;

		if (def == NULL)
			def = pgm_opt_find(pgm_daemon_opts, cases[i].name);
		ck_assert_ptr_nonnull(def);
		ck_assert_msg(pgm_opt_validate(def, cases[i].in, &canon, &err), "%s = %s: %s", def->name, cases[i].in,
			      err);
		ck_assert_msg(strcmp(canon, cases[i].out) == 0, "%s = %s gave \"%s\", expected \"%s\"", def->name,
			      cases[i].in, canon, cases[i].out);
		/* the canonical form is itself valid and canonical */
		ck_assert(pgm_opt_validate(def, canon, &again, &err));
		ck_assert_str_eq(again, canon);
		free(again);
		free(canon);
	}
	/* the mode lands in the struct as a number */
	parse_ok("socket_mode = 640\n");
	ck_assert_int_eq(cfg.socket_mode, 0640);
}
END_TEST

START_TEST(test_parse_helpers)
{
	int64_t ms = -1;
	bool b = false;

	ck_assert(pgm_parse_duration_ms("90s", &ms));
	ck_assert_int_eq(ms, 90000);
	ck_assert(pgm_parse_duration_ms("3h", &ms));
	ck_assert_int_eq(ms, 10800000);
	ck_assert(!pgm_parse_duration_ms("3 hours", &ms));
	ck_assert(!pgm_parse_duration_ms("", &ms));
	ck_assert(!pgm_parse_duration_ms("ms", &ms));
	ck_assert(!pgm_parse_duration_ms("1.5s", &ms));
	ck_assert(pgm_parse_bool("YES", &b));
	ck_assert(b);
	ck_assert(pgm_parse_bool("off", &b));
	ck_assert(!b);
	ck_assert(!pgm_parse_bool("maybe", &b));
	ck_assert(!pgm_parse_bool("", &b));
}
END_TEST

START_TEST(test_job_options_defaults)
{
	char *err = NULL;
	cJSON *opts = pgm_job_options_build(NULL, NULL, &err);

	ck_assert_ptr_nonnull(opts);
	ck_assert_ptr_null(err);
	/* every option is there, in canonical form */
	for (int i = 0; pgm_job_opts[i].name; i++)
		ck_assert_msg(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(opts, pgm_job_opts[i].name)),
			      "option %s missing", pgm_job_opts[i].name);
	ck_assert_str_eq(pgm_jobopt_str(opts, "rehearsal"), "on");
	ck_assert_str_eq(pgm_jobopt_str(opts, "jobs"), "2");
	ck_assert_str_eq(pgm_jobopt_str(opts, "hook_timeout"), "60000ms");
	ck_assert_str_eq(pgm_jobopt_str(opts, "rollback_window"), "86400000ms");
	ck_assert_str_eq(pgm_jobopt_str(opts, "freeze_mode"), "read_only");
	ck_assert_str_eq(pgm_jobopt_str(opts, "freeze_command"), "");
	ck_assert(pgm_jobopt_bool(opts, "rehearsal"));
	ck_assert(!pgm_jobopt_bool(opts, "overwrite_target"));
	/* durations come back in milliseconds, integers as themselves */
	ck_assert_int_eq(pgm_jobopt_int(opts, "hook_timeout"), 60000);
	ck_assert_int_eq(pgm_jobopt_int(opts, "connect_timeout"), 15000);
	ck_assert_int_eq(pgm_jobopt_int(opts, "rollback_window"), 86400000);
	ck_assert_int_eq(pgm_jobopt_int(opts, "jobs"), 2);
	cJSON_Delete(opts);

	/* the built-in config (nothing set in a file) gives the same */
	opts = pgm_job_options_build(&cfg, NULL, &err);
	ck_assert_ptr_nonnull(opts);
	ck_assert_str_eq(pgm_jobopt_str(opts, "jobs"), "2");
	cJSON_Delete(opts);

	/* getters on an object lacking the key fall back to the table's default */
	opts = cJSON_CreateObject();
	ck_assert_str_eq(pgm_jobopt_str(opts, "freeze_mode"), "read_only");
	ck_assert_int_eq(pgm_jobopt_int(opts, "hook_timeout"), 60000);
	ck_assert_int_eq(pgm_jobopt_int(opts, "jobs"), 2);
	ck_assert(pgm_jobopt_bool(opts, "rehearsal"));
	ck_assert_str_eq(pgm_jobopt_str(opts, "no_such_option"), "");
	cJSON_Delete(opts);
}
END_TEST

/* file defaults override built-in ones; the caller's values override both */
START_TEST(test_job_options_layers)
{
	char *err = NULL;
	cJSON *given, *opts;

	parse_ok("jobs = 6\nhook_timeout = 2m\nrehearsal = no\nfreeze_mode = command\n");
	opts = pgm_job_options_build(&cfg, NULL, &err);
	ck_assert_ptr_nonnull(opts);
	ck_assert_str_eq(pgm_jobopt_str(opts, "jobs"), "6");
	ck_assert_int_eq(pgm_jobopt_int(opts, "hook_timeout"), 120000);
	ck_assert(!pgm_jobopt_bool(opts, "rehearsal"));
	ck_assert_str_eq(pgm_jobopt_str(opts, "freeze_mode"), "command");
	ck_assert_str_eq(pgm_jobopt_str(opts, "connect_timeout"), "15000ms"); /* untouched: built-in */
	cJSON_Delete(opts);

	given = cJSON_Parse("{\"jobs\": \"3\", \"freeze_mode\": \"both\"}");
	opts = pgm_job_options_build(&cfg, given, &err);
	ck_assert_ptr_nonnull(opts);
	ck_assert_str_eq(pgm_jobopt_str(opts, "jobs"), "3");
	ck_assert_str_eq(pgm_jobopt_str(opts, "freeze_mode"), "both");
	ck_assert_int_eq(pgm_jobopt_int(opts, "hook_timeout"), 120000); /* from the file */
	/* replaced, not duplicated: one entry per option */
	{
		int n = 0;
		while (pgm_job_opts[n].name)
			n++;
		ck_assert_int_eq(cJSON_GetArraySize(opts), n);
	}
	cJSON_Delete(opts);
	cJSON_Delete(given);
}
END_TEST

START_TEST(test_job_options_types)
{
	char *err = NULL;
	cJSON *given = cJSON_Parse("{\"jobs\": 4, \"overwrite_target\": true, \"rehearsal\": false,"
				   " \"hook_timeout\": \"90s\", \"rollback_window\": 3600,"
				   " \"freeze_command\": \"maint on\"}");
	cJSON *opts = pgm_job_options_build(NULL, given, &err);

	ck_assert_msg(opts != NULL, "rejected: %s", err);
	ck_assert_str_eq(pgm_jobopt_str(opts, "jobs"), "4");
	ck_assert_str_eq(pgm_jobopt_str(opts, "overwrite_target"), "on");
	ck_assert_str_eq(pgm_jobopt_str(opts, "rehearsal"), "off");
	ck_assert_str_eq(pgm_jobopt_str(opts, "hook_timeout"), "90000ms");
	/* a bare number as a duration is seconds, like in the file */
	ck_assert_str_eq(pgm_jobopt_str(opts, "rollback_window"), "3600000ms");
	ck_assert_str_eq(pgm_jobopt_str(opts, "freeze_command"), "maint on");
	ck_assert_int_eq(pgm_jobopt_int(opts, "jobs"), 4);
	ck_assert_int_eq(pgm_jobopt_int(opts, "rollback_window"), 3600000);
	cJSON_Delete(opts);
	cJSON_Delete(given);

	/* a whole number written as a float is still that number */
	given = cJSON_Parse("{\"jobs\": 4.0, \"connect_timeout\": 2e1}");
	opts = pgm_job_options_build(NULL, given, &err);
	ck_assert_msg(opts != NULL, "rejected: %s", err);
	ck_assert_str_eq(pgm_jobopt_str(opts, "jobs"), "4");
	ck_assert_str_eq(pgm_jobopt_str(opts, "connect_timeout"), "20000ms");
	cJSON_Delete(opts);
	cJSON_Delete(given);

	/* an empty object is fine */
	given = cJSON_CreateObject();
	opts = pgm_job_options_build(NULL, given, &err);
	ck_assert_ptr_nonnull(opts);
	cJSON_Delete(opts);
	cJSON_Delete(given);
}
END_TEST

/* build options from JSON text that must be refused, with a message holding frag */
static void
options_fail(const char *json, const char *frag1, const char *frag2)
{
	char *err = NULL;
	cJSON *given = cJSON_Parse(json);
	cJSON *opts;

	ck_assert_ptr_nonnull(given);
	opts = pgm_job_options_build(&cfg, given, &err);
	ck_assert_msg(opts == NULL, "accepted: %s", json);
	ck_assert_ptr_nonnull(err);
	if (frag1)
		ck_assert_msg(strstr(err, frag1) != NULL, "\"%s\" lacks \"%s\"", err, frag1);
	if (frag2)
		ck_assert_msg(strstr(err, frag2) != NULL, "\"%s\" lacks \"%s\"", err, frag2);
	free(err);
	cJSON_Delete(given);
}

START_TEST(test_job_options_typed)
{
	char *err = NULL;
	cJSON *opts = pgm_job_options_build(NULL, NULL, &err), *t;

	ck_assert_ptr_nonnull(opts);
	t = pgm_jobopts_typed(opts);
	/* numbers, booleans and nulls where the text form has strings */
	ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(t, "jobs")));
	ck_assert_int_eq((int) cJSON_GetNumberValue(cJSON_GetObjectItem(t, "jobs")), 2);
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(t, "rehearsal")));
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(t, "overwrite_target")));
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(t, "freeze_command")));
	ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(t, "freeze_mode")), "read_only");
	/* a duration is a number of milliseconds, under NAME_ms only */
	ck_assert_ptr_null(cJSON_GetObjectItem(t, "hook_timeout"));
	ck_assert_int_eq((int) cJSON_GetNumberValue(cJSON_GetObjectItem(t, "hook_timeout_ms")), 60000);
	ck_assert_int_eq((int) cJSON_GetNumberValue(cJSON_GetObjectItem(t, "rollback_window_ms")), 86400000);
	/* an option the table does not know (an older state.json) is left out */
	cJSON_AddStringToObject(opts, "no_such_option", "1");
	cJSON_Delete(t);
	t = pgm_jobopts_typed(opts);
	ck_assert_ptr_null(cJSON_GetObjectItem(t, "no_such_option"));
	cJSON_Delete(t);
	cJSON_Delete(opts);
}
END_TEST

START_TEST(test_job_options_rejected)
{
	options_fail("{\"nope\": \"1\"}", "unknown job option", "\"nope\"");
	/* daemon settings are not job options */
	options_fail("{\"socket_path\": \"/tmp/x\"}", "unknown job option", "socket_path");
	options_fail("{\"jobs\": \"0\"}", "jobs", "out of range");
	options_fail("{\"jobs\": 100000}", "jobs", "out of range");
	options_fail("{\"jobs\": \"many\"}", "jobs", "integer");
	options_fail("{\"jobs\": true}", "jobs", NULL);
	options_fail("{\"rehearsal\": \"maybe\"}", "rehearsal", "on or off");
	options_fail("{\"rehearsal\": 2}", "rehearsal", NULL);
	options_fail("{\"hook_timeout\": \"5 parsecs\"}", "hook_timeout", "duration");
	options_fail("{\"hook_timeout\": \"1ms\"}", "hook_timeout", "out of range");
	options_fail("{\"freeze_mode\": \"frozen\"}", "freeze_mode", "read_only|command|both");
	options_fail("{\"freeze_command\": null}", "freeze_command", "string");
	options_fail("{\"freeze_command\": [\"a\"]}", "freeze_command", "string");
	options_fail("{\"jobs\": {\"n\": 1}}", "jobs", NULL);
	/* one bad entry spoils the lot, even after good ones */
	options_fail("{\"jobs\": \"4\", \"rehearsal\": \"off\", \"bogus\": 1}", "bogus", NULL);
	/* numbers must be whole (and fit) for integers; they are never truncated */
	options_fail("{\"jobs\": 2.5}", "jobs", "2.5");
	options_fail("{\"jobs\": 1e30}", "jobs", NULL);
	options_fail("{\"jobs\": -1e300}", "jobs", NULL);
	options_fail("{\"hook_timeout\": 1.5}", "hook_timeout", "duration");
	/* not an object */
	options_fail("[\"jobs=4\"]", "object", NULL);
	options_fail("\"jobs=4\"", "object", NULL);
}
END_TEST

START_TEST(test_load_file)
{
	char dir[] = "/tmp/pgm-config-XXXXXX";
	char *path, *err = NULL;
	static const char nul_text[] = "log_level = info\n\0max_clients = 3\n";

	ck_assert_ptr_nonnull(mkdtemp(dir));
	path = pgm_asprintf("%s/pgmoverd.conf", dir);

	/* a missing file: the message names it and says why */
	ck_assert(!pgm_config_load(&cfg, path, &err));
	ck_assert_ptr_nonnull(err);
	ck_assert_msg(strstr(err, path) != NULL, "\"%s\" does not name the file", err);
	ck_assert_msg(strstr(err, strerror(ENOENT)) != NULL, "\"%s\" does not say why", err);
	free(err);
	err = NULL;
	ck_assert_str_eq(cfg.socket_path, "/run/pgmover/pgmoverd.sock");

	/* a good file */
	ck_assert(pgm_file_replace(path, "max_clients = 42\n# c\njobs = 3\n", 29, 0600));
	ck_assert_msg(pgm_config_load(&cfg, path, &err), "%s", err);
	ck_assert_int_eq(cfg.max_clients, 42);
	ck_assert_str_eq(job_default("jobs"), "3");

	/* a bad file names itself and the line; the loaded config stays */
	ck_assert(pgm_file_replace(path, "max_clients = 1\n\nlog_level = chatty\n", 36, 0600));
	ck_assert(!pgm_config_load(&cfg, path, &err));
	{
		char *where = pgm_asprintf("%s:3:", path);
		ck_assert_msg(strstr(err, where) != NULL, "\"%s\" lacks \"%s\"", err, where);
		free(where);
	}
	free(err);
	err = NULL;
	ck_assert_int_eq(cfg.max_clients, 42);

	/* a NUL byte: not a text file */
	ck_assert(pgm_file_replace(path, nul_text, sizeof(nul_text) - 1, 0600));
	ck_assert(!pgm_config_load(&cfg, path, &err));
	ck_assert_ptr_nonnull(strstr(err, "NUL"));
	free(err);
	err = NULL;

	/* a directory is not a file */
	ck_assert(!pgm_config_load(&cfg, dir, &err));
	ck_assert_ptr_nonnull(err);
	free(err);

	ck_assert(pgm_rmtree(dir));
	free(path);
}
END_TEST

/* metrics_listen: empty by default (off), a numeric address and port, refused otherwise */
START_TEST(test_metrics_listen)
{
	static const char *bad[] = {"localhost:9187", "127.0.0.1", "127.0.0.1:",    "127.0.0.1:0",   "127.0.0.1:65536",
				    "127.0.0.1:91x7", "::1:9187",  "[::1]",         "[::1:9187",     "[nope]:9187",
				    "1.2.3.4.5:80",   ":9187",     "127.0.0.1:-80", "127.0.0.1:+80", "0x7f.0.0.1:80"};
	struct sockaddr_storage ss;
	unsigned len;

	ck_assert_str_eq(cfg.metrics_listen, "");
	parse_ok("metrics_listen = 127.0.0.1:9187\n");
	ck_assert_str_eq(cfg.metrics_listen, "127.0.0.1:9187");
	parse_ok("metrics_listen = [::1]:9187\n");
	ck_assert_str_eq(cfg.metrics_listen, "[::1]:9187");
	parse_ok("metrics_listen = 0.0.0.0:1\n");
	parse_ok("metrics_listen = \"\"\n");
	ck_assert_str_eq(cfg.metrics_listen, "");
	ck_assert(pgm_parse_listen("10.1.2.3:65535", &ss, &len));
	ck_assert_int_eq(ss.ss_family, AF_INET);
	ck_assert_int_eq(ntohs(((struct sockaddr_in *) &ss)->sin_port), 65535);
	ck_assert(pgm_parse_listen("[::]:80", &ss, &len));
	ck_assert_int_eq(ss.ss_family, AF_INET6);
	ck_assert_uint_eq(len, sizeof(struct sockaddr_in6));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *text = pgm_asprintf("\nmetrics_listen = %s\n", bad[i]);

		ck_assert_msg(!pgm_parse_listen(bad[i], &ss, &len), "%s parsed", bad[i]);
		parse_fails(text, 2, "metrics_listen", "127.0.0.1:9187");
		free(text);
	}
}
END_TEST

Suite *
pgm_test_suite(void)
{
	Suite *s = suite_create("config");
	TCase *file = tcase_create("file");
	TCase *opts = tcase_create("options");

	tcase_add_checked_fixture(file, setup, teardown);
	tcase_add_test(file, test_defaults);
	tcase_add_test(file, test_table_defaults_valid);
	tcase_add_test(file, test_every_setting);
	tcase_add_test(file, test_every_row_in_file);
	tcase_add_test(file, test_parse_replaces);
	tcase_add_test(file, test_syntax);
	tcase_add_test(file, test_quoted_then_comment);
	tcase_add_test(file, test_unknown_key);
	tcase_add_test(file, test_syntax_error);
	tcase_add_test(file, test_bad_values);
	tcase_add_test(file, test_failed_parse_keeps_previous);
	tcase_add_test(file, test_load_file);
	tcase_add_test(file, test_metrics_listen);
	suite_add_tcase(s, file);

	tcase_add_checked_fixture(opts, setup, teardown);
	tcase_add_test(opts, test_canonical_forms);
	tcase_add_test(opts, test_describe_config);
	tcase_add_test(opts, test_parse_helpers);
	tcase_add_test(opts, test_job_options_defaults);
	tcase_add_test(opts, test_job_options_layers);
	tcase_add_test(opts, test_job_options_types);
	tcase_add_test(opts, test_job_options_rejected);
	tcase_add_test(opts, test_job_options_typed);
	suite_add_tcase(s, opts);
	return s;
}
