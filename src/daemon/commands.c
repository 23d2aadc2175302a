/*
 * commands.c — the control socket's commands: one table of
 * {name, needs_job, read_only, handler} rows (like PgBouncer's admin
 * console) and one handler signature. read_only says who may run a
 * command (control.c checks it before the handler runs).
 */
#include "common/json.h"
#include "common/log.h"
#include "common/settings.h"
#include "common/util.h"
#include "daemon/control.h"
#include "fsm/audit.h"
#include "pipeline/cutover/reverse.h"
#include "pgm_config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static bool
fail(pgm_cmd_ctx_t *ctx, const char *code, char *message, char *hint)
{
	ctx->code = code;
	ctx->message = message;
	ctx->hint = hint;
	return false;
}

/*
 * The job the request names, or an error: job_corrupt for a folder whose
 * state did not load (saying what is wrong and how to recover), else one
 * naming the jobs there are.
 */
static pgm_job_t *
need_job(pgm_cmd_ctx_t *ctx)
{
	pgm_job_t *job = pgm_jobs_find(ctx->daemon, ctx->job);
	pgm_corrupt_t *c;

	if (job == NULL && (c = pgm_jobs_find_corrupt(ctx->daemon, ctx->job)) != NULL) {
		char *message, *hint;

		pgm_jobs_corrupt_error(ctx->daemon, c, &message, &hint);
		fail(ctx, PGM_ERR_JOB_CORRUPT, message, hint);
	} else if (job == NULL)
		fail(ctx, PGM_ERR_NO_SUCH_JOB, pgm_asprintf("no job named \"%s\"", ctx->job),
		     pgm_strdup("list the jobs with \"pgmover jobs\", or create one with \"pgmover create\""));
	return job;
}

static bool
cmd_version(pgm_cmd_ctx_t *ctx)
{
	ctx->result = cJSON_CreateObject();
	cJSON_AddStringToObject(ctx->result, "version", PGM_VERSION);
	cJSON_AddNumberToObject(ctx->result, "protocol", PGM_PROTOCOL_VERSION);
	return true;
}

static bool
cmd_describe(pgm_cmd_ctx_t *ctx)
{
	cJSON *cmds;

	ctx->result = pgm_fsm_describe();
	cmds = cJSON_AddArrayToObject(ctx->result, "commands");
	for (int i = 0; pgm_commands[i].name; i++) {
		cJSON *c = cJSON_CreateObject();
		cJSON_AddStringToObject(c, "name", pgm_commands[i].name);
		cJSON_AddBoolToObject(c, "needs_job", pgm_commands[i].needs_job);
		cJSON_AddBoolToObject(c, "read_only", pgm_commands[i].read_only == PGM_READ_ONLY);
		cJSON_AddStringToObject(c, "help", pgm_commands[i].help);
		cJSON_AddItemToArray(cmds, c);
	}
	return true;
}

static bool
cmd_jobs(pgm_cmd_ctx_t *ctx)
{
	cJSON *arr;
	char ts[40];

	ctx->result = cJSON_CreateObject();
	arr = cJSON_AddArrayToObject(ctx->result, "jobs");
	for (pgm_job_t *j = ctx->daemon->host.jobs; j; j = j->next) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "name", j->name);
		cJSON_AddStringToObject(o, "state", pgm_state_name(j->state));
		cJSON_AddStringToObject(o, "method", j->method);
		pgm_format_time(j->since_ms, ts, sizeof(ts));
		cJSON_AddStringToObject(o, "since", ts);
		cJSON_AddItemToArray(arr, o);
	}
	for (const pgm_corrupt_t *c = ctx->daemon->corrupt; c; c = c->next)
		cJSON_AddItemToArray(arr, pgm_jobs_corrupt_json(ctx->daemon, c));
	return true;
}

static bool
cmd_status(pgm_cmd_ctx_t *ctx)
{
	pgm_job_t *job;

	if (ctx->job == NULL) {
		cJSON *arr;
		ctx->result = cJSON_CreateObject();
		arr = cJSON_AddArrayToObject(ctx->result, "jobs");
		for (pgm_job_t *j = ctx->daemon->host.jobs; j; j = j->next)
			cJSON_AddItemToArray(arr, pgm_job_status(j));
		for (const pgm_corrupt_t *c = ctx->daemon->corrupt; c; c = c->next)
			cJSON_AddItemToArray(arr, pgm_jobs_corrupt_json(ctx->daemon, c));
		return true;
	}
	if ((job = need_job(ctx)) == NULL)
		return false;
	ctx->result = pgm_job_status(job);
	/* {"tables": true}: each table's progress in the running copy, where there is one */
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ctx->args, "tables")) && job->step != NULL &&
	    job->step->tables_progress != NULL)
		cJSON_AddItemToObject(ctx->result, "tables_progress", job->step->tables_progress(job->step));
	return true;
}

static const char *
arg_string(const cJSON *args, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool
cmd_create(pgm_cmd_ctx_t *ctx)
{
	const char *code = NULL;
	char *message = NULL, *hint = NULL;
	const pgm_peer_t *peer = pgm_client_peer(ctx->client);
	pgm_job_t *job;

	if (ctx->daemon->host.stopping)
		return fail(ctx, PGM_ERR_SHUTTING_DOWN, pgm_strdup("pgmoverd is shutting down"),
			    pgm_strdup("create the job once pgmoverd has restarted"));
	job = pgm_jobs_create(ctx->daemon, ctx->job, arg_string(ctx->args, "source"), arg_string(ctx->args, "target"),
			      arg_string(ctx->args, "method"), cJSON_GetObjectItemCaseSensitive(ctx->args, "options"),
			      peer, &code, &message, &hint);
	if (job == NULL)
		return fail(ctx, code, message, hint);
	ctx->result = pgm_job_status(job);
	return true;
}

/* start, freeze, thaw, ...: one event for the driver */
static bool
cmd_event(pgm_cmd_ctx_t *ctx)
{
	pgm_job_t *job = need_job(ctx);
	pgm_event_t ev;
	const char *code = NULL;
	char *message = NULL, *hint = NULL;

	if (job == NULL)
		return false;
	if (!pgm_event_parse(ctx->cmd, &ev) || !pgm_event_is_command(ev))
		return fail(ctx, PGM_ERR_INTERNAL, pgm_asprintf("command \"%s\" has no event", ctx->cmd), NULL);
	if (!pgm_job_fire(job, ev, pgm_client_peer(ctx->client), &code, &message, &hint))
		return fail(ctx, code, message, hint);
	ctx->result = pgm_job_status(job);
	return true;
}

/*
 * cutover: something must move the application's traffic (pgbouncer's
 * entry or cutover_command); without either, only an operator who says
 * they move it themselves (args.no_traffic_switch) may cut over. In a
 * state where cutover is refused anyway, that refusal is the answer.
 */
static bool
cmd_cutover(pgm_cmd_ctx_t *ctx)
{
	pgm_job_t *job = need_job(ctx);
	const cJSON *nts = cJSON_GetObjectItemCaseSensitive(ctx->args, "no_traffic_switch");
	bool switch_configured;

	if (job == NULL)
		return false;
	if (nts && !cJSON_IsBool(nts))
		return fail(ctx, PGM_ERR_INVALID_ARGUMENT, pgm_strdup("args.no_traffic_switch must be true or false"),
			    NULL);
	switch_configured = pgm_jobopt_str(job->options, "pgbouncer_admin")[0] != '\0' ||
			    pgm_jobopt_str(job->options, "cutover_command")[0] != '\0';
	if (!switch_configured && !cJSON_IsTrue(nts) &&
	    pgm_fsm_decide(job->state, job->failed_from, pgm_job_traffic_moved(job), PGM_EV_CUTOVER) >= 0) {
		pgm_job_audit(job, pgm_client_peer(ctx->client), "cutover", pgm_state_name(job->state), NULL,
			      "refused: no traffic switch");
		return fail(
			ctx, PGM_ERR_INVALID_ARGUMENT,
			pgm_asprintf("job \"%s\" has no traffic switch: neither pgbouncer_admin nor cutover_command is "
				     "set, so nothing would move the application's connections to the target",
				     job->name),
			pgm_asprintf("set one (pgmover set %s --set cutover_command=...), or, if you move the traffic "
				     "yourself, run \"pgmover cutover %s --no-traffic-switch\"",
				     job->name, job->name));
	}
	/* only for a cutover that will run: a refused one (wrong state) records nothing of it */
	if (!switch_configured && cJSON_IsTrue(nts) &&
	    pgm_fsm_decide(job->state, job->failed_from, pgm_job_traffic_moved(job), PGM_EV_CUTOVER) >= 0) {
		pgm_json_set(job->facts, "traffic_switch", cJSON_CreateString("operator (--no-traffic-switch)"));
		pgm_job_audit(job, pgm_client_peer(ctx->client), "cutover --no-traffic-switch",
			      pgm_state_name(job->state), NULL, "ok: the operator moves the traffic");
	}
	return cmd_event(ctx);
}

/*
 * rollback, and retry of a failed rollback: refused while a table on the
 * target is not carried by the reverse stream (its writes would stay on
 * the target), unless args.accept_loss says the operator accepts that
 * (recorded and audited). The drain checks again once the target is
 * frozen (reverse_tables.c). In a state where the command is refused
 * anyway, that refusal is the answer.
 */
static bool
cmd_rollback(pgm_cmd_ctx_t *ctx)
{
	pgm_job_t *job = need_job(ctx);
	const cJSON *accept = cJSON_GetObjectItemCaseSensitive(ctx->args, "accept_loss");
	bool retry = strcmp(ctx->cmd, "retry") == 0;
	char *message = NULL, *hint = NULL, *outcome;

	if (job == NULL)
		return false;
	if (accept && !cJSON_IsBool(accept))
		return fail(ctx, PGM_ERR_INVALID_ARGUMENT, pgm_strdup("args.accept_loss must be true or false"), NULL);
	if (retry && cJSON_IsTrue(accept) && job->state == PGM_ST_FAILED && job->failed_from != PGM_ST_ROLLING_BACK)
		return fail(ctx, PGM_ERR_INVALID_ARGUMENT,
			    pgm_asprintf("--accept-loss is for a rollback: job \"%s\" failed in %s, not rolling_back",
					 job->name, pgm_state_name(job->failed_from)),
			    pgm_asprintf("run \"pgmover retry %s\" without it", job->name));
	if ((retry && !(job->state == PGM_ST_FAILED && job->failed_from == PGM_ST_ROLLING_BACK)) ||
	    pgm_fsm_decide(job->state, job->failed_from, pgm_job_traffic_moved(job),
			   retry ? PGM_EV_RETRY : PGM_EV_ROLLBACK) < 0)
		return cmd_event(ctx);
	if (!pgm_rollback_loss_check(job,
				     cJSON_IsTrue(accept) || cJSON_HasObjectItem(job->facts, "rollback_accept_loss"),
				     &message, &hint)) {
		outcome = pgm_asprintf("refused: %s", message);
		pgm_job_audit(job, pgm_client_peer(ctx->client), ctx->cmd, pgm_state_name(job->state), NULL, outcome);
		free(outcome);
		return fail(ctx, PGM_ERR_WOULD_LOSE_WRITES, message, hint);
	}
	if (cJSON_IsTrue(accept))
		pgm_rollback_accept_loss(job, pgm_client_peer(ctx->client));
	return cmd_event(ctx);
}

/* set: args.options, validated onto the job's */
static bool
cmd_set(pgm_cmd_ctx_t *ctx)
{
	pgm_job_t *job = need_job(ctx);
	const char *code = NULL;
	char *message = NULL, *hint = NULL;

	if (job == NULL)
		return false;
	if (!pgm_jobs_set_options(job, cJSON_GetObjectItemCaseSensitive(ctx->args, "options"),
				  pgm_client_peer(ctx->client), &code, &message, &hint))
		return fail(ctx, code, message, hint);
	ctx->result = pgm_job_status(job);
	return true;
}

/*
 * delete: an ended job is archived. args.force archives a corrupt job's
 * folder too (the only command a corrupt job takes); it does not make a
 * job that is still running deletable.
 */
static bool
cmd_delete(pgm_cmd_ctx_t *ctx)
{
	const cJSON *force = cJSON_GetObjectItemCaseSensitive(ctx->args, "force");
	pgm_corrupt_t *c = pgm_jobs_find_corrupt(ctx->daemon, ctx->job);
	const pgm_peer_t *peer = pgm_client_peer(ctx->client);
	pgm_job_t *job;
	const char *code = NULL;
	char *message = NULL, *hint = NULL;
	bool ok;

	if (force && !cJSON_IsBool(force))
		return fail(ctx, PGM_ERR_INVALID_ARGUMENT, pgm_strdup("args.force must be true or false"), NULL);
	if (c && cJSON_IsTrue(force))
		ok = pgm_jobs_delete_corrupt(ctx->daemon, c, peer, &code, &message, &hint);
	else if ((job = need_job(ctx)) == NULL)
		return false;
	else
		ok = pgm_jobs_delete(ctx->daemon, job, peer, &code, &message, &hint);
	if (!ok)
		return fail(ctx, code, message, hint);
	/* the request's name: the job and its entry are freed */
	ctx->result = cJSON_CreateObject();
	cJSON_AddStringToObject(ctx->result, "name", ctx->job);
	cJSON_AddStringToObject(ctx->result, "state", "deleted");
	return true;
}

static bool
cmd_watch(pgm_cmd_ctx_t *ctx)
{
	pgm_job_t *job = need_job(ctx);

	if (job == NULL)
		return false;
	if (ctx->client)
		pgm_client_watch(ctx->client, job->name);
	pgm_job_audit(job, pgm_client_peer(ctx->client), "watch", NULL, NULL, "ok");
	ctx->result = pgm_job_status(job);
	return true;
}

/* the check's findings as the protocol's "chain" object */
static cJSON *
chain_json(const pgm_job_t *job, const pgm_audit_check_t *r)
{
	cJSON *o = cJSON_CreateObject();
	char *genesis = pgm_audit_genesis_text(job->name, job->created_ms);

	cJSON_AddBoolToObject(o, "intact", r->intact);
	cJSON_AddNumberToObject(o, "lines", r->lines);
	cJSON_AddNumberToObject(o, "unchained_lines", r->unchained);
	/* the head proves something only for an intact chain */
	if (r->intact)
		cJSON_AddStringToObject(o, "head", r->head);
	cJSON_AddStringToObject(o, "genesis", genesis);
	if (r->broken_line > 0 || r->reason) {
		cJSON *b = cJSON_AddObjectToObject(o, "broken");

		if (r->broken_line > 0)
			cJSON_AddNumberToObject(b, "line", r->broken_line);
		cJSON_AddStringToObject(b, "reason", r->reason ? r->reason : "broken");
		if (r->expected[0])
			cJSON_AddStringToObject(b, "expected", r->expected);
		if (r->found[0])
			cJSON_AddStringToObject(b, "found", r->found);
	}
	free(genesis);
	return o;
}

/* at most this many events in a reply (the newest); the check reads them all */
#define EVENTS_MAX 10000

/*
 * events: the job's audit trail, read-only (not audited itself: the trail
 * would change under the check). args.check: the hash chain's verdict
 * only. Otherwise the events (parsed lines, the newest EVENTS_MAX), the
 * verdict, and the job's status for the summary the client prints. The
 * end of the trail is compared with the head pgmoverd keeps: a last line
 * changed or removed since pgmoverd wrote it shows there, where no later
 * line's "prev" covers it.
 */
static bool
cmd_events(pgm_cmd_ctx_t *ctx)
{
	pgm_job_t *job = need_job(ctx);
	char *path, *buf, genesis[PGM_AUDIT_HASH_HEX];
	size_t len = 0;
	pgm_audit_check_t r;

	if (job == NULL)
		return false;
	path = pgm_asprintf("%s/audit.jsonl", job->dir);
	buf = pgm_file_read(path, (size_t) 1 << 30, &len);
	if (buf == NULL && errno != ENOENT) {
		char *msg = pgm_asprintf("could not read the audit trail \"%s\": %s", path, strerror(errno));

		free(path);
		return fail(ctx, PGM_ERR_INTERNAL, msg, pgm_strdup("check the permissions of state_dir"));
	}
	free(path);
	pgm_audit_genesis(job->name, job->created_ms, genesis);
	pgm_audit_check(buf ? buf : "", buf ? len : 0, genesis, &r);
	if (r.intact && job->audit_head_known && strcmp(r.head, job->audit_head) != 0) {
		r.intact = false;
		r.broken_line = r.lines;
		if (r.lines == 0)
			r.reason =
				pgm_strdup("the trail is empty, but pgmoverd has written lines to it (it was removed "
					   "or emptied)");
		else
			r.reason = pgm_asprintf(
				"the trail does not end with the line pgmoverd wrote last: its last line "
				"(%d) hashes to %s, pgmoverd's head is %s (the last line changed, or lines "
				"removed from the end)",
				r.lines, r.head, job->audit_head);
		snprintf(r.expected, sizeof(r.expected), "%s", job->audit_head);
		snprintf(r.found, sizeof(r.found), "%s", r.head);
	}
	ctx->result = cJSON_CreateObject();
	cJSON_AddStringToObject(ctx->result, "name", job->name);
	cJSON_AddItemToObject(ctx->result, "chain", chain_json(job, &r));
	if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ctx->args, "check"))) {
		cJSON *events = cJSON_AddArrayToObject(ctx->result, "events");
		int n = 0, skip = r.lines > EVENTS_MAX ? r.lines - EVENTS_MAX : 0;

		for (char *line = buf, *nl; line && *line; line = nl ? nl + 1 : NULL) {
			cJSON *e;

			nl = strchr(line, '\n');
			if (n++ < skip)
				continue;
			e = cJSON_ParseWithLength(line, nl ? (size_t) (nl - line) : strlen(line));
			if (!cJSON_IsObject(e)) {
				cJSON_Delete(e);
				e = cJSON_CreateObject();
				cJSON_AddStringToObject(e, "unreadable", "not a JSON object");
			}
			cJSON_AddNumberToObject(e, "line", n);
			cJSON_AddItemToArray(events, e);
		}
		cJSON_AddNumberToObject(ctx->result, "omitted", skip);
		cJSON_AddItemToObject(ctx->result, "status", pgm_job_status(job));
	}
	pgm_audit_check_free(&r);
	free(buf);
	return true;
}

/*
 * The commands, in the order the unknown_command hint lists them. The CLI
 * has a row for each (src/cli/commands.c) whose one-line help starts with
 * this one; test_cli_output.c checks that they agree. Every row says
 * whether it only reads (open to whoever can open the socket) or changes
 * something (admin_users, admin_group); test_protocol.c checks each does.
 */
const pgm_command_t pgm_commands[] = {
	{"version", false, PGM_READ_ONLY, cmd_version, "show the daemon's version and protocol"},
	{"describe", false, PGM_READ_ONLY, cmd_describe, "show the job state machine"},
	{"jobs", false, PGM_READ_ONLY, cmd_jobs, "list the jobs"},
	{"create", true, PGM_CHANGES, cmd_create, "create a job: source, target, method and options"},
	{"status", false, PGM_READ_ONLY, cmd_status, "show one job in detail, or all jobs"},
	{"start", true, PGM_CHANGES, cmd_event, "start a job: preflight, prepare the target, copy or sync the data"},
	{"freeze", true, PGM_CHANGES, cmd_event, "stop writes on the source, take the final copy or drain replication"},
	{"thaw", true, PGM_CHANGES, cmd_event, "allow writes on the source again"},
	{"verify", true, PGM_CHANGES, cmd_event, "compare a job's source and target again"},
	{"cutover", true, PGM_CHANGES, cmd_cutover, "switch traffic to the target and open the rollback window"},
	{"rollback", true, PGM_CHANGES, cmd_rollback, "switch back to the source, with the writes made on the target"},
	{"finish", true, PGM_CHANGES, cmd_event, "close the rollback window and remove what pgmover created"},
	{"abort", true, PGM_CHANGES, cmd_event, "give up before cutover: thaw the source, drop what pgmover created"},
	{"retry", true, PGM_CHANGES, cmd_rollback, "resume a failed job from its last durable step"},
	{"watch", true, PGM_READ_ONLY, cmd_watch, "follow a job's transitions and progress ticks"},
	{"set", true, PGM_CHANGES, cmd_set, "change a job's options where no step is reading them"},
	{"delete", true, PGM_CHANGES, cmd_delete, "remove a job that has ended; its state and audit trail are kept"},
	{"events", true, PGM_READ_ONLY, cmd_events, "show a job's audit trail and check its hash chain"},
	{NULL, false, PGM_ACCESS_UNSET, NULL, NULL}};

/* "version, describe, ...": every command of the table, in its order (malloc'd) */
char *
pgm_commands_list(void)
{
	pgm_buf_t b = {0};

	for (int i = 0; pgm_commands[i].name; i++) {
		if (i > 0)
			pgm_buf_append(&b, ", ");
		pgm_buf_append(&b, pgm_commands[i].name);
	}
	return b.s;
}

const pgm_command_t *
pgm_command_find(const char *name)
{
	for (int i = 0; pgm_commands[i].name; i++)
		if (strcmp(pgm_commands[i].name, name) == 0)
			return &pgm_commands[i];
	return NULL;
}
