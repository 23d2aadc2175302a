/*
 * cli.h
 *    Shared declarations of the pgmover command-line client.
 *
 * The client is a few small files: main.c parses the command line,
 * commands.c holds the dispatch table and the command handlers, client.c
 * speaks the control socket protocol (newline-delimited JSON), format.c and
 * output.c render replies for humans.
 * Only libc and cJSON are needed here; the in-process commands (plan and
 * stand-alone verify) run the pgmover library in-process (plan.c, compare.c).
 */
#ifndef PGM_CLI_H
#define PGM_CLI_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

/* the protocol version and the exit codes (PGM_EXIT_*) runbooks rely on */
#include "pgmover/protocol.h"

#define PGM_CLI_DEFAULT_SOCKET "/run/pgmover/pgmoverd.sock"
/* how long a reply may take: pgmoverd answers at once and works on afterwards */
#define PGM_CLI_DEFAULT_TIMEOUT_MS 30000
#define PGM_CLI_MAX_LINE (16 * 1024 * 1024) /* largest reply or event line */

/* Outcome of reading one line from the control socket */
typedef enum pgm_cli_read_e {
	PGM_CLI_READ_LINE,        /* a complete line is available */
	PGM_CLI_READ_EOF,         /* the daemon closed the connection */
	PGM_CLI_READ_ERROR,       /* I/O or size error, already reported */
	PGM_CLI_READ_INTERRUPTED, /* SIGINT arrived while waiting */
	PGM_CLI_READ_TIMEOUT      /* the deadline passed first */
} pgm_cli_read_t;

/* One connection to pgmoverd's control socket */
typedef struct pgm_cli_conn_s {
	int fd;              /* connected socket, -1 when closed */
	const char *path;    /* socket path, for messages */
	long next_id;        /* request id counter, starts at 1 */
	char *buf;           /* received bytes not yet consumed */
	size_t len;          /* bytes held in buf */
	size_t cap;          /* allocated size of buf */
	size_t consumed;     /* bytes of buf already returned as lines */
	size_t scanned;      /* bytes searched for a newline so far */
	int timeout_ms;      /* for a reply (0: wait as long as it takes) */
	int64_t deadline_ms; /* monotonic; 0: none (watch events) */
} pgm_cli_conn_t;

/* A parsed reply: {"id", "ok", "result"} or {"id", "ok": false, "error"} */
typedef struct pgm_cli_reply_s {
	char *line;          /* the reply exactly as received */
	cJSON *root;         /* parsed line, owns result and error */
	bool ok;             /* the "ok" member */
	const cJSON *result; /* "result" when ok, may be NULL */
	const cJSON *error;  /* "error" when not ok, may be NULL */
} pgm_cli_reply_t;

/* Options; each id is also a bit in the per-command mask of allowed ones */
typedef enum pgm_cli_option_id_e {
	/* global: valid with every command */
	PGM_CLI_OPT_SOCKET,
	PGM_CLI_OPT_JSON,
	PGM_CLI_OPT_HELP,
	PGM_CLI_OPT_TIMEOUT,
	/* per command, as its table row allows */
	PGM_CLI_OPT_SOURCE,
	PGM_CLI_OPT_TARGET,
	PGM_CLI_OPT_METHOD,
	PGM_CLI_OPT_SET,
	PGM_CLI_OPT_TABLES,
	PGM_CLI_OPT_NO_TRAFFIC_SWITCH,
	PGM_CLI_OPT_VERBOSE,
	PGM_CLI_OPT_UNTIL,
	PGM_CLI_OPT_FORCE,
	PGM_CLI_OPT_CHECK,
	PGM_CLI_OPT_SUMMARY,
	PGM_CLI_OPT_OUTPUT,
	PGM_CLI_OPT_ACCEPT_LOSS
} pgm_cli_option_id_t;

#define PGM_CLI_OPT_BIT(id) (1u << (id))
#define PGM_CLI_OPT_GLOBAL                                                                                             \
	(PGM_CLI_OPT_BIT(PGM_CLI_OPT_SOCKET) | PGM_CLI_OPT_BIT(PGM_CLI_OPT_JSON) | PGM_CLI_OPT_BIT(PGM_CLI_OPT_HELP) | \
	 PGM_CLI_OPT_BIT(PGM_CLI_OPT_TIMEOUT))
#define PGM_CLI_OPT_CREATE                                                           \
	(PGM_CLI_OPT_BIT(PGM_CLI_OPT_SOURCE) | PGM_CLI_OPT_BIT(PGM_CLI_OPT_TARGET) | \
	 PGM_CLI_OPT_BIT(PGM_CLI_OPT_METHOD) | PGM_CLI_OPT_BIT(PGM_CLI_OPT_SET))
#define PGM_CLI_OPT_COMPARE                                                          \
	(PGM_CLI_OPT_BIT(PGM_CLI_OPT_SOURCE) | PGM_CLI_OPT_BIT(PGM_CLI_OPT_TARGET) | \
	 PGM_CLI_OPT_BIT(PGM_CLI_OPT_TABLES))

/* The parsed command line */
typedef struct pgm_cli_args_s {
	const char *socket;     /* -s, else $PGMOVER_SOCKET, else default */
	int timeout_ms;         /* --timeout, else $PGMOVER_TIMEOUT, else 30 s; 0: none */
	bool json;              /* --json: print replies unchanged */
	bool help;              /* -h / --help */
	const char *command;    /* first positional argument */
	const char *job;        /* second positional argument */
	const char *source;     /* --source */
	const char *target;     /* --target */
	const char *method;     /* --method */
	cJSON *options;         /* --set key=value pairs, as strings */
	bool no_traffic_switch; /* cutover --no-traffic-switch */
	bool verbose;           /* status -v: the whole status */
	bool per_table;         /* status --tables: each table's progress */
	const char *until;      /* watch --until STATE */
	bool force;             /* delete --force: archive a corrupt job's folder */
	bool check;             /* events --check: the hash chain only */
	bool summary;           /* events --summary: the summary in any state */
	const char *output;     /* report -o FILE */
	bool accept_loss;       /* rollback|retry --accept-loss */
	unsigned given;         /* PGM_CLI_OPT_BITs of the options seen */
	int rest_argc;          /* argc for the in-process commands */
	char **rest_argv;       /* command word, then all but global options */
} pgm_cli_args_t;

typedef struct pgm_cli_command_s pgm_cli_command_t;
typedef int (*pgm_cli_handler_t)(pgm_cli_args_t *args, const pgm_cli_command_t *command);
typedef void (*pgm_cli_render_t)(const pgm_cli_args_t *args, const cJSON *result);

/* Whether a command takes the JOB argument (for help: the COMMAND) */
typedef enum pgm_cli_job_e { PGM_CLI_JOB_NONE, PGM_CLI_JOB_OPTIONAL, PGM_CLI_JOB_REQUIRED } pgm_cli_job_t;

/*
 * Where a command runs: as the daemon's command of the same name (a row of
 * pgm_commands[], src/daemon/commands.c), in the client alone, or either
 * (verify: a job's through the daemon, two databases in-process)
 */
typedef enum pgm_cli_runs_e { PGM_CLI_RUNS_DAEMON, PGM_CLI_RUNS_LOCAL, PGM_CLI_RUNS_BOTH } pgm_cli_runs_t;

/* One row of the dispatch table: help and usage errors are printed from it */
struct pgm_cli_command_s {
	const char *name;          /* command word, also the protocol "cmd" */
	pgm_cli_runs_t runs;       /* daemon command, in-process, or both */
	pgm_cli_job_t job;         /* whether JOB is needed */
	unsigned options;          /* PGM_CLI_OPT_BITs allowed besides the global ones */
	pgm_cli_handler_t handler; /* runs the command, returns the exit code */
	pgm_cli_render_t render;   /* human rendering of an ok result */
	const char *usage;         /* after "pgmover "; alternative forms on new lines */
	const char *summary;       /* one line for help: the daemon's help of the
									 * command, then what the client adds, if anything */
};

/* Set by the SIGINT handler that watch installs */
extern volatile sig_atomic_t pgm_cli_interrupted;

/* commands.c: the dispatch table, NULL-terminated */
extern const pgm_cli_command_t pgm_cli_commands[];
extern const pgm_cli_command_t *pgm_cli_command_find(const char *name);
extern void pgm_cli_help_print(FILE *out, const pgm_cli_command_t *command);
extern void pgm_cli_usage_hint(const pgm_cli_command_t *command);

/* client.c */
extern int pgm_cli_conn_open(pgm_cli_conn_t *client, const char *path);
extern void pgm_cli_conn_close(pgm_cli_conn_t *client);
extern int pgm_cli_conn_call(pgm_cli_conn_t *client, const char *cmd, const char *job, cJSON *args,
			     pgm_cli_reply_t *reply);
extern pgm_cli_read_t pgm_cli_conn_read_line(pgm_cli_conn_t *client, char **line);
extern void pgm_cli_reply_free(pgm_cli_reply_t *reply);

/* format.c: pure formatting into the caller's buffer */
extern const char *pgm_cli_json_string(const cJSON *object, const char *key, const char *fallback);
extern bool pgm_cli_json_number(const cJSON *object, const char *key, double *value);
extern const char *pgm_cli_number_format(double value, char *buf, size_t size);
extern const char *pgm_cli_bytes_format(double bytes, char *buf, size_t size);
extern const char *pgm_cli_duration_format(double seconds, char *buf, size_t size);
extern const char *pgm_cli_scalar_format(const char *key, const cJSON *value, char *buf, size_t size);
extern const char *pgm_cli_progress_format(const cJSON *step, char *buf, size_t size);
extern const char *pgm_cli_phase_name(const char *phase);
extern const char *pgm_cli_lag_format(const cJSON *status, char *buf, size_t size);
extern const char *pgm_cli_transition_format(const cJSON *row, char *buf, size_t size);

/* output.c */
extern void pgm_cli_output_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern void pgm_cli_output_hint(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern void pgm_cli_output_reply_error(const cJSON *error);
extern void pgm_cli_output_value(FILE *out, int indent, const char *key, const cJSON *value);
extern void pgm_cli_output_status(FILE *out, const cJSON *status);
/* --json: the client's own errors as a {"ok": false, "error"} line at exit */
extern void pgm_cli_json_errors(bool on);
extern void pgm_cli_json_errors_flush(int rc);
/* --json: a report the client made, as {"ok": OK, "result": REPORT} */
extern void pgm_cli_print_envelope(const cJSON *result, bool ok);
extern void pgm_cli_output_status_full(FILE *out, const cJSON *status);
/* status --tables: each table's progress or sync state */
extern void pgm_cli_output_tables(FILE *out, const cJSON *status);
extern void pgm_cli_output_status_table(FILE *out, const cJSON *jobs);
extern void pgm_cli_output_describe(FILE *out, const cJSON *machine);
extern void pgm_cli_output_event(FILE *out, const cJSON *event);

/* events.c: the audit trail for a person */
extern const char *pgm_cli_local_time(int64_t ms, char *buf, size_t size);
extern const char *pgm_cli_event_outcome(const cJSON *event, char *buf, size_t size);
extern void pgm_cli_output_event_lines(FILE *out, const cJSON *events);
extern int pgm_cli_output_chain(FILE *out, const char *job, const cJSON *chain);
extern void pgm_cli_output_summary(FILE *out, const cJSON *status, const cJSON *events, int64_t now);

/* report.c and report_html.c: the migration report from an "events" reply */
extern cJSON *pgm_cli_report_evidence(const cJSON *result, int64_t now);
extern char *pgm_cli_report_html(const cJSON *evidence);
struct pgm_buf;
extern void pgm_cli_html_escape(struct pgm_buf *b, const char *text);

/*
 * In-process commands: plan.c and compare.c run the pgmover library's
 * preflight and verification engine on a loop of their own. argv[0] is the command word
 * ("plan" or "verify"), followed by the remaining arguments in their
 * original order with the global options (-s, --json, -h) removed; argv is
 * NULL-terminated. The CLI has already checked that only the options its
 * table allows are there, and for verify that --source and --target are.
 * Return an exit code: PGM_EXIT_OK, PGM_EXIT_FAILED (the check found
 * problems or failed) or PGM_EXIT_USAGE.
 */
extern int pgm_cli_plan(int argc, char **argv, bool json);
/* the value of --name VALUE or --name=VALUE at argv[*i], advancing *i; NULL if another option */
extern const char *pgm_cli_option_value(int argc, char **argv, int *i, const char *name);
extern int pgm_cli_compare(int argc, char **argv, bool json);

#endif /* PGM_CLI_H */
