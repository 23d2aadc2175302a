/*
 * test_redact.c
 *    Unit tests of password masking (src/common/redact.c): the keyword,
 *    URI and registered-secret rules on many forms, with exact outputs;
 *    a property over random passwords written in every form a DSN takes
 *    (the password never survives); cJSON trees; and pgm_log's lines.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_main.h"
#include "common/log.h"
#include "common/redact.h"
#include "common/util.h"
#include "pg/dsn.h"

START_TEST(test_redact_forms)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		/* keyword form, unquoted, quoted, escaped, spaced, any case */
		{"host=h password=s3cret dbname=d", "host=h password=**** dbname=d"},
		{"password=s3cret", "password=****"},
		{"host=h password='s3 cr\\'et' user=u", "host=h password=**** user=u"},
		{"host=h password = 'a b' port=5", "host=h password = **** port=5"},
		{"password=a\\ b user=u", "password=**** user=u"},
		{"PASSWORD=abc", "PASSWORD=****"},
		{"sslpassword=keypass host=h", "sslpassword=**** host=h"},
		{"password='unterminated", "password=****"},
		{"password=\"dq pw\" x", "password=**** x"},
		/* environment variables */
		{"PGPASSWORD=hunter22", "PGPASSWORD=****"},
		{"export PGPASSWORD='x y z'; psql", "export PGPASSWORD=****; psql"},
		{"DB_PASSWORD=abc123 other=1", "DB_PASSWORD=**** other=1"},
		/* pglogical's detail */
		{"could not connect to the postgresql server: FATAL:  password authentication failed for user \"u\"\n"
		 "DETAIL:  dsn was:  host=127.0.0.1 port=5432 dbname=shop user=u password=wrongpw",
		 "could not connect to the postgresql server: FATAL:  password authentication failed for user \"u\"\n"
		 "DETAIL:  dsn was:  host=127.0.0.1 port=5432 dbname=shop user=u password=****"},
		/* URIs */
		{"postgres://u:pw@h:5432/db", "postgres://u:****@h:5432/db"},
		{"postgresql://u:p%40ss@h/db?sslmode=require", "postgresql://u:****@h/db?sslmode=require"},
		{"url postgres://u:p@ss@h/db end", "url postgres://u:****@h/db end"},
		{"PGMOVER_TARGET_URL=postgres://app:tok@db.example.com/app",
		 "PGMOVER_TARGET_URL=postgres://app:****@db.example.com/app"},
		{"postgres://h/db?user=u&password=qs", "postgres://h/db?user=u&password=****"},
		{"https://user:tok@github.com/x", "https://user:****@github.com/x"},
		{"\"postgres://u:pw@h/db\"", "\"postgres://u:****@h/db\""},
		/* already masked: unchanged */
		{"postgres://u:****@h/db", "postgres://u:****@h/db"},
		{"password=****", "password=****"},
		/* nothing to mask */
		{"postgres://u@h/db", "postgres://u@h/db"},
		{"postgres://h:5432/db", "postgres://h:5432/db"},
		{"http://h/path@x", "http://h/path@x"},
		{"password authentication failed for user \"u\"", "password authentication failed for user \"u\""},
		{"password_encryption = 'scram-sha-256'", "password_encryption = 'scram-sha-256'"},
		{"password=", "password="},
		{"password= ", "password= "},
		{"", ""},
		{"ratio 3:4@home", "ratio 3:4@home"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *r = pgm_redact(cases[i].in);
		ck_assert_msg(strcmp(r, cases[i].out) == 0, "case %zu: [%s] became [%s], expected [%s]", i, cases[i].in,
			      r, cases[i].out);
		ck_assert_int_eq(pgm_redact_needed(cases[i].in), strcmp(cases[i].in, cases[i].out) != 0);
		free(r);
	}
	ck_assert_ptr_null(pgm_redact(NULL));
}
END_TEST

/* the forms a password takes in a connection string, each written as libpq would read it */
static char *
encode_conninfo_quoted(const char *pw)
{
	char *out = pgm_malloc(2 * strlen(pw) + 3), *o = out;

	*o++ = '\'';
	for (const char *p = pw; *p; p++) {
		if (*p == '\'' || *p == '\\')
			*o++ = '\\';
		*o++ = *p;
	}
	*o++ = '\'';
	*o = '\0';
	return out;
}

static char *
encode_conninfo_bare(const char *pw)
{
	char *out = pgm_malloc(2 * strlen(pw) + 1), *o = out;

	for (const char *p = pw; *p; p++) {
		if (*p == ' ' || *p == '\'' || *p == '"' || *p == '\\')
			*o++ = '\\';
		*o++ = *p;
	}
	*o = '\0';
	return out;
}

static char *
encode_uri(const char *pw)
{
	char *out = pgm_malloc(3 * strlen(pw) + 1), *o = out;

	for (const char *p = pw; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
		    *p == '_' || *p == '.' || *p == '~')
			*o++ = *p;
		else
			o += sprintf(o, "%%%02X", (unsigned char) *p);
	}
	*o = '\0';
	return out;
}

/*
 * The property: for random passwords (letters, digits, quotes, backslashes,
 * spaces, '@', ':', '/', '=') written in each form a DSN takes, inside the
 * messages that carry them, neither the password nor its encoding is left.
 */
START_TEST(test_redact_property)
{
	static const char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 '\"\\@:/=%&?#;,";
	unsigned seed = 20261203;

	for (int round = 0; round < 3000; round++) {
		char pw[40];
		int len = 8 + (int) (rand_r(&seed) % 24);
		char *q, *b, *u, *texts[8];

		for (int i = 0; i < len; i++)
			pw[i] = alphabet[rand_r(&seed) % (sizeof(alphabet) - 1)];
		pw[len] = '\0';
		q = encode_conninfo_quoted(pw);
		b = encode_conninfo_bare(pw);
		u = encode_uri(pw); /* a URI's user info is percent-encoded */
		texts[0] = pgm_asprintf("host=h port=5432 user=u password=%s dbname=d", q);
		texts[1] = pgm_asprintf("DETAIL:  dsn was:  host=h user=u password=%s", b);
		texts[2] = pgm_asprintf("connecting to postgres://u:%s@h:5432/db?sslmode=require failed", u);
		texts[3] = pgm_asprintf("PGMOVER_SOURCE_URL=postgresql://app:%s@[::1]/db", u);
		texts[4] = pgm_asprintf("PGPASSWORD=%s psql -h h", q);
		texts[5] = pgm_asprintf("postgres://h/db?password=%s", u);
		texts[6] = pgm_asprintf("it printed: sslpassword = %s and more", q);
		texts[7] = pgm_asprintf("x=1 password=%s\nnext line", b);
		for (int t = 0; t < 8; t++) {
			char *r = pgm_redact(texts[t]);
			const char *enc = t == 2 || t == 3 || t == 5 ? u : t == 1 || t == 7 ? b : q;

			ck_assert_msg(strstr(r, pw) == NULL, "round %d form %d: [%s] kept the password in [%s]", round,
				      t, texts[t], r);
			ck_assert_msg(strstr(r, enc) == NULL, "round %d form %d: [%s] kept [%s] in [%s]", round, t,
				      texts[t], enc, r);
			ck_assert_msg(strstr(r, PGM_REDACTED) != NULL, "round %d form %d: nothing masked in [%s]",
				      round, t, r);
			free(r);
			free(texts[t]);
		}
		free(q);
		free(b);
		free(u);
	}
}
END_TEST

/* a registered password is masked wherever it appears, alone too */
START_TEST(test_redact_known_secrets)
{
	char *r;

	pgm_redact_clear_secrets();
	pgm_dsn_learn_secret("postgres://u:Sec%20ret9@h/db");
	pgm_dsn_learn_secret("host=h password=abc"); /* shorter than PGM_REDACT_MIN_SECRET: not kept */
	pgm_dsn_learn_secret("not a dsn ===");
	pgm_redact_add_secret("second-one");
	pgm_redact_add_secret("second-one");
	r = pgm_redact("echo Sec ret9 and second-one, twice: second-one; abc stays");
	ck_assert_str_eq(r, "echo **** and ****, twice: ****; abc stays");
	free(r);
	pgm_redact_clear_secrets();
	r = pgm_redact("second-one");
	ck_assert_str_eq(r, "second-one");
	free(r);
}
END_TEST

/* every string value of a tree, nested in objects and arrays; keys and numbers stay */
START_TEST(test_redact_json)
{
	cJSON *o = cJSON_Parse("{\"password=k\": \"password=v\", \"n\": 1, \"a\": [\"postgres://u:p@h/d\", "
			       "{\"detail\": \"dsn was: password=x\"}], \"ok\": \"plain\"}");
	char *text;

	ck_assert_ptr_nonnull(o);
	text = pgm_redact_print(o);
	ck_assert_str_eq(text, "{\"password=k\":\"password=****\",\"n\":1,\"a\":[\"postgres://u:****@h/d\","
			       "{\"detail\":\"dsn was: password=****\"}],\"ok\":\"plain\"}");
	free(text);
	/* print leaves its argument as it was */
	ck_assert_str_eq(cJSON_GetObjectItem(o, "password=k")->valuestring, "password=v");
	pgm_redact_json(o);
	ck_assert_str_eq(cJSON_GetObjectItem(o, "password=k")->valuestring, "password=****");
	cJSON_Delete(o);
	pgm_redact_json(NULL);
}
END_TEST

/* pgm_log's line on stderr is masked */
START_TEST(test_redact_log_line)
{
	char path[] = "/tmp/test_redact_XXXXXX", buf[512];
	int fd = mkstemp(path), saved = dup(2);
	FILE *f;
	size_t n;

	ck_assert_int_ge(fd, 0);
	fflush(stderr);
	dup2(fd, 2);
	pgm_error("job j: failed: dsn was: host=h password=logpw1 user=u");
	pgm_info("hook said postgres://u:logpw2@h/db");
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	f = fdopen(fd, "r");
	rewind(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	unlink(path);
	ck_assert_str_eq(buf, "<3>job j: failed: dsn was: host=h password=**** user=u\n"
			      "<6>hook said postgres://u:****@h/db\n");
}
END_TEST

Suite *
pgm_test_suite(void)
{
	Suite *s = suite_create("redact");
	TCase *tc = tcase_create("redact");

	tcase_add_test(tc, test_redact_forms);
	tcase_add_test(tc, test_redact_property);
	tcase_add_test(tc, test_redact_known_secrets);
	tcase_add_test(tc, test_redact_json);
	tcase_add_test(tc, test_redact_log_line);
	suite_add_tcase(s, tc);
	return s;
}
