/*
 * dns.c — before cutover, the TTL of the application's DNS record (option
 * dns_record): a client that cached the old address keeps using it for up
 * to that long, so the guides ask for it to be lowered to 60 s or less
 * days before. Above that, the job gets a warning; a failed lookup is a
 * warning too, never a reason to stop.
 *
 * getaddrinfo() does not tell TTLs, so this asks with res_nquery() and
 * reads the answer with ns_parserr(). It blocks, so it runs in libuv's
 * thread pool. dns_server (IP[:port]) asks one server directly — the
 * zone's authoritative server gives the configured TTL, while a caching
 * resolver gives what is left of its cached copy.
 */
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "pipeline/cutover/flow.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdlib.h>
#include <string.h>

#define TTL_LIMIT 60

typedef struct dns {
	uv_work_t req;
	pgm_flow_t *f; /* NULL once the step is gone */
	void (*then)(pgm_flow_t *f);
	char *name, *server;
	/* results, written by the worker */
	int rcode; /* 0 ok, else h_errno */
	char err[160];
	long ttl;     /* of the record for the name itself; -1 none */
	long max_ttl; /* the longest in the answer (CNAME chain) */
	int answers;
	char server_used[64];
} dns_t;

/* "1.2.3.4" or "1.2.3.4:5353" */
static bool
parse_server(const char *s, struct sockaddr_in *sa)
{
	char host[64];
	const char *colon = strchr(s, ':');
	size_t n = colon ? (size_t) (colon - s) : strlen(s);
	long port = colon ? strtol(colon + 1, NULL, 10) : 53;

	if (n == 0 || n >= sizeof(host) || port <= 0 || port > 65535)
		return false;
	memcpy(host, s, n);
	host[n] = '\0';
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t) port);
	return inet_pton(AF_INET, host, &sa->sin_addr) == 1;
}

static int
query(res_state rs, const char *name, int type, unsigned char *ans, int len)
{
	return res_nquery(rs, name, ns_c_in, type, ans, len);
}

/* in the thread pool: no job, no loop, only this struct */
static void
dns_work(uv_work_t *req)
{
	dns_t *d = req->data;
	struct __res_state rs;
	unsigned char ans[4096];
	ns_msg msg;
	int n;

	d->ttl = d->max_ttl = -1;
	memset(&rs, 0, sizeof(rs));
	if (res_ninit(&rs) != 0) {
		d->rcode = -1;
		snprintf(d->err, sizeof(d->err), "the resolver could not be initialised");
		return;
	}
	rs.retrans = 2;
	rs.retry = 2;
	if (d->server && d->server[0]) {
		struct sockaddr_in sa;

		if (!parse_server(d->server, &sa)) {
			d->rcode = -1;
			snprintf(d->err, sizeof(d->err), "dns_server \"%s\" is not IPv4[:port]", d->server);
			res_nclose(&rs);
			return;
		}
		rs.nscount = 1;
		rs.nsaddr_list[0] = sa;
	}
	if (rs.nscount > 0)
		snprintf(d->server_used, sizeof(d->server_used), "%s:%d", inet_ntoa(rs.nsaddr_list[0].sin_addr),
			 ntohs(rs.nsaddr_list[0].sin_port));
	n = query(&rs, d->name, ns_t_a, ans, sizeof(ans));
	if (n < 0 && rs.res_h_errno == NO_DATA)
		n = query(&rs, d->name, ns_t_aaaa, ans, sizeof(ans));
	if (n < 0) {
		d->rcode = rs.res_h_errno ? rs.res_h_errno : -1;
		snprintf(d->err, sizeof(d->err), "%s", hstrerror(rs.res_h_errno));
		res_nclose(&rs);
		return;
	}
	if (ns_initparse(ans, n, &msg) != 0) {
		d->rcode = -1;
		snprintf(d->err, sizeof(d->err), "malformed answer");
		res_nclose(&rs);
		return;
	}
	d->answers = ns_msg_count(msg, ns_s_an);
	for (int i = 0; i < d->answers; i++) {
		ns_rr rr;

		if (ns_parserr(&msg, ns_s_an, i, &rr) != 0)
			continue;
		if (d->ttl < 0)
			d->ttl = (long) ns_rr_ttl(rr); /* the first record answers for the name itself */
		if ((long) ns_rr_ttl(rr) > d->max_ttl)
			d->max_ttl = (long) ns_rr_ttl(rr);
	}
	res_nclose(&rs);
}

static void
dns_free(dns_t *d)
{
	free(d->name);
	free(d->server);
	free(d);
}

/* the step ends while the lookup runs: the worker's result is dropped */
static void
dns_cancel(void *p)
{
	((dns_t *) p)->f = NULL;
}

static void
dns_after(uv_work_t *req, int status)
{
	dns_t *d = req->data;
	pgm_flow_t *f = d->f;
	void (*then)(pgm_flow_t *);
	cJSON *o;

	if (f == NULL) {
		dns_free(d);
		return;
	}
	pgm_step_disown(f->step, d);
	o = cJSON_CreateObject();
	pgm_json_set_str(o, "record", d->name);
	if (d->server_used[0])
		pgm_json_set_str(o, "server", d->server_used);
	pgm_json_set_time(o, "checked_at", pgm_now_ms());
	if (status != 0 || d->rcode != 0 || d->ttl < 0) {
		char *msg = pgm_asprintf("could not look up the TTL of %s: %s", d->name,
					 status != 0     ? "cancelled"
					 : d->rcode != 0 ? d->err
							 : "no answer");
		pgm_json_set_str(o, "error", status != 0 ? "cancelled" : d->rcode != 0 ? d->err : "no answer");
		pgm_job_warn(f->job, msg, "check dns_record (and dns_server), or lower the TTL by hand before cutover");
		free(msg);
	} else {
		pgm_json_set_num(o, "ttl", (double) d->ttl);
		pgm_json_set_num(o, "max_ttl", (double) d->max_ttl);
		pgm_json_set_num(o, "answers", d->answers);
		pgm_info("job %s: dns: %s has a TTL of %ld s", f->job->name, d->name, d->ttl);
		if (d->max_ttl > TTL_LIMIT) {
			char *msg = pgm_asprintf(
				"the DNS record %s has a TTL of %ld s (above %d s): clients may keep the old "
				"address that long after the switch",
				d->name, d->max_ttl, TTL_LIMIT);
			pgm_job_warn(f->job, msg, "lower the TTL to 60 s or less a day or more before cutover");
			free(msg);
		}
	}
	pgm_json_set(f->job->facts, "dns", o);
	pgm_job_checkpoint(f->job);
	then = d->then;
	dns_free(d);
	then(f);
}

void
pgm_dns_check(pgm_flow_t *f, void (*then)(pgm_flow_t *f))
{
	dns_t *d = pgm_calloc(1, sizeof(*d));

	d->f = f;
	d->then = then;
	d->name = pgm_strdup(pgm_jobopt_str(f->job->options, "dns_record"));
	d->server = pgm_strdup(pgm_jobopt_str(f->job->options, "dns_server"));
	d->req.data = d;
	pgm_step_own(f->step, d, dns_cancel);
	if (uv_queue_work(pgm_step_loop(f->step), &d->req, dns_work, dns_after) != 0) {
		pgm_step_disown(f->step, d);
		dns_free(d);
		pgm_job_warn(f->job, "could not start the DNS lookup", NULL);
		then(f);
	}
}
