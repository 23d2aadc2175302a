/*
 * pgoutput.c — PostgreSQL's logical replication protocol (version 1, the
 * messages of the pgoutput plugin, values in text form) turned into SQL
 * for the source: the statements of one target transaction, for one
 * PL/pgSQL block in which every UPDATE and DELETE must match exactly one
 * row, so a source that diverged from the target stops the reverse stream
 * instead of silently losing a change.
 *
 * Rows are found by the replica identity the Relation message declares:
 * the key columns (primary key or REPLICA IDENTITY USING INDEX) with "=",
 * or, for REPLICA IDENTITY FULL, every column with IS NOT DISTINCT FROM
 * on one row picked by ctid (duplicates are legal there).
 *
 * The source's foreign keys act by themselves when a change is replayed
 * (no session_replication_role without a superuser), so the target's WAL
 * holds, after a parent's change, child changes the source has made
 * already. The rules of pgm_pgo_fk_rule (read from the source's catalog)
 * let exactly those through: a DELETE of a table some ON DELETE CASCADE
 * empties may find its row gone (the final state is the target's: no row),
 * and an UPDATE whose old row the source's ON UPDATE CASCADE, SET NULL or
 * SET DEFAULT changed already, so its old key or image matches nothing, is
 * applied to the row as that action left it (the old image with those
 * columns at their new values). Every other change still matches exactly
 * one row.
 */
#include "common/util.h"
#include "pg/pgoutput.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a growing string ---- */

typedef struct sb {
	char *d;
	size_t n, cap;
} sb_t;

static void
sb_put(sb_t *b, const char *s, size_t len)
{
	if (b->n + len + 1 > b->cap) {
		b->cap = (b->n + len + 1) * 2 + 256;
		b->d = pgm_realloc(b->d, b->cap);
	}
	memcpy(b->d + b->n, s, len);
	b->n += len;
	b->d[b->n] = '\0';
}

static void
sb_str(sb_t *b, const char *s)
{
	sb_put(b, s, strlen(s));
}

/* append and free */
static void
sb_take(sb_t *b, char *s)
{
	sb_str(b, s);
	free(s);
}

/* ---- the cache of Relation messages ---- */

typedef struct rel_col {
	char *name; /* quoted identifier */
	uint32_t typid;
	bool key;    /* part of the replica identity */
	bool fk_set; /* a foreign key's action on the source may set it (ON UPDATE CASCADE, SET NULL...) */
} rel_col_t;

typedef struct rel {
	uint32_t relid;
	char *qname; /* "schema"."table" */
	char ident;  /* d(efault), n(othing), f(ull), i(ndex) */
	int ncols;
	rel_col_t *cols;
	bool cascaded; /* an ON DELETE CASCADE on the source may delete its rows first */
	bool fk_key;   /* some fk_set column is a key column: an UPDATE may find its old row moved */
} rel_t;

/* what the source's foreign keys do by themselves to one table (pgm_pgo_fk_rule) */
typedef struct fk_rule {
	char *nsp, *name; /* unquoted */
	bool cascaded;
	char **cols; /* unquoted names of the columns an action may set */
	int ncols;
} fk_rule_t;

struct pgm_pgo {
	rel_t *rels;
	int nrels, cap;
	bool in_txn;
	uint64_t commit_lsn;
	uint32_t xid;
	int64_t commit_time;
	int changes;
	sb_t body; /* the statements of the chunk being built */
	int body_changes;
	uint32_t ins_relid; /* the body ends with an INSERT into this relation (0: it does not), */
	int ins_ncols;      /* of so many columns, */
	size_t ins_end;     /* whose last row's ")" ends here */
	char **chunks;      /* the chunks of the transaction so far */
	int nchunks, cap_chunks;
	fk_rule_t *rules; /* the source's foreign keys' actions, by table */
	int nrules;
};

pgm_pgo_t *
pgm_pgo_new(void)
{
	return pgm_calloc(1, sizeof(pgm_pgo_t));
}

static void
rel_clear(rel_t *r)
{
	for (int i = 0; i < r->ncols; i++)
		free(r->cols[i].name);
	free(r->cols);
	free(r->qname);
	memset(r, 0, sizeof(*r));
}

static void
chunk_close(pgm_pgo_t *p)
{
	if (p->body.n == 0)
		return;
	if (p->nchunks == p->cap_chunks) {
		p->cap_chunks = p->cap_chunks ? p->cap_chunks * 2 : 4;
		p->chunks = pgm_realloc(p->chunks, (size_t) p->cap_chunks * sizeof(char *));
	}
	p->chunks[p->nchunks++] = pgm_strdup(p->body.d);
	p->body.n = 0;
	p->body.d[0] = '\0';
	p->body_changes = 0;
	p->ins_relid = 0;
}

static void
chunks_drop(pgm_pgo_t *p)
{
	for (int i = 0; i < p->nchunks; i++)
		free(p->chunks[i]);
	free(p->chunks);
	p->chunks = NULL;
	p->nchunks = p->cap_chunks = 0;
}

void
pgm_pgo_txn_clear(pgm_pgo_txn_t *t)
{
	for (int i = 0; i < t->nchunks; i++)
		free(t->chunks[i]);
	free(t->chunks);
	t->chunks = NULL;
	t->nchunks = 0;
}

void
pgm_pgo_free(pgm_pgo_t *p)
{
	if (p == NULL)
		return;
	for (int i = 0; i < p->nrules; i++) {
		for (int j = 0; j < p->rules[i].ncols; j++)
			free(p->rules[i].cols[j]);
		free(p->rules[i].cols);
		free(p->rules[i].nsp);
		free(p->rules[i].name);
	}
	free(p->rules);
	chunks_drop(p);
	for (int i = 0; i < p->nrels; i++)
		rel_clear(&p->rels[i]);
	free(p->rels);
	free(p->body.d);
	free(p);
}

char *
pgm_pgo_take_chunk(pgm_pgo_t *p)
{
	char *c;

	if (!p->in_txn || p->nchunks == 0)
		return NULL;
	c = p->chunks[0];
	memmove(p->chunks, p->chunks + 1, (size_t) (p->nchunks - 1) * sizeof(char *));
	p->nchunks--;
	return c;
}

int
pgm_pgo_chunks_ready(const pgm_pgo_t *p)
{
	return p->in_txn ? p->nchunks : 0;
}

bool
pgm_pgo_current(const pgm_pgo_t *p, uint64_t *commit_lsn, int64_t *commit_time, uint32_t *xid)
{
	if (!p->in_txn)
		return false;
	*commit_lsn = p->commit_lsn;
	*commit_time = p->commit_time;
	*xid = p->xid;
	return true;
}

static rel_t *
rel_find(pgm_pgo_t *p, uint32_t relid)
{
	for (int i = 0; i < p->nrels; i++)
		if (p->rels[i].relid == relid)
			return &p->rels[i];
	return NULL;
}

/* ---- reading a message ---- */

typedef struct rd {
	const uint8_t *p;
	size_t len, pos;
	bool bad;
} rd_t;

static uint64_t
rd_int(rd_t *r, int bytes)
{
	uint64_t v = 0;

	if (r->bad || r->pos + (size_t) bytes > r->len) {
		r->bad = true;
		return 0;
	}
	for (int i = 0; i < bytes; i++)
		v = (v << 8) | r->p[r->pos++];
	return v;
}

/* a NUL-terminated string in the message (points into it) */
static const char *
rd_str(rd_t *r)
{
	const char *s;
	const void *nul;

	if (r->bad || r->pos >= r->len || (nul = memchr(r->p + r->pos, 0, r->len - r->pos)) == NULL) {
		r->bad = true;
		return "";
	}
	s = (const char *) r->p + r->pos;
	r->pos = (size_t) ((const uint8_t *) nul - r->p) + 1;
	return s;
}

/* one column of a TupleData: kind 'n' null, 'u' unchanged TOAST, 't' text */
typedef struct val {
	char kind;
	char *text; /* malloc'd, for 't' */
} val_t;

static val_t *
rd_tuple(rd_t *r, int *n_out)
{
	int n = (int) rd_int(r, 2);
	val_t *v = pgm_calloc((size_t) (n > 0 ? n : 1), sizeof(val_t));

	for (int i = 0; i < n && !r->bad; i++) {
		v[i].kind = (char) rd_int(r, 1);
		if (v[i].kind == 't') {
			uint32_t len = (uint32_t) rd_int(r, 4);
			if (r->bad || r->pos + len > r->len) {
				r->bad = true;
				break;
			}
			v[i].text = pgm_malloc(len + 1);
			memcpy(v[i].text, r->p + r->pos, len);
			v[i].text[len] = '\0';
			r->pos += len;
		} else if (v[i].kind != 'n' && v[i].kind != 'u') {
			r->bad = true; /* 'b' (binary) is never asked for */
		}
	}
	*n_out = n;
	return v;
}

static void
tuple_free(val_t *v, int n)
{
	if (v == NULL)
		return;
	for (int i = 0; i < n; i++)
		free(v[i].text);
	free(v);
}

/* ---- SQL for one change ---- */

/* types without an equality operator: compared by their text form */
static bool
type_needs_text_compare(uint32_t typid)
{
	static const uint32_t oids[] = {114, 142, 199, 600, 601, 602, 603, 604, 628, 718};

	for (size_t i = 0; i < PGM_ARRAY_LEN(oids); i++)
		if (oids[i] == typid)
			return true;
	return false;
}

/* the WHERE condition that finds the row; false when nothing identifies it */
static bool
where_clause(sb_t *b, const rel_t *rel, const val_t *v, int n)
{
	bool full = rel->ident == 'f', any = false;

	for (int i = 0; i < n && i < rel->ncols; i++) {
		const rel_col_t *c = &rel->cols[i];

		if (!c->key || v[i].kind == 'u')
			continue;
		sb_str(b, any ? " AND " : "");
		any = true;
		if (v[i].kind == 'n') {
			sb_str(b, c->name);
			sb_str(b, " IS NULL");
		} else if (full && type_needs_text_compare(c->typid)) {
			sb_str(b, c->name);
			sb_str(b, "::text = ");
			sb_take(b, pgm_quote_literal(v[i].text));
		} else {
			sb_str(b, c->name);
			sb_str(b, full ? " IS NOT DISTINCT FROM " : " = ");
			sb_take(b, pgm_quote_literal(v[i].text));
		}
	}
	return any;
}

/*
 * The row as the source's foreign key actions leave it: the old tuple's
 * key columns, those an action sets (fk_set) at the new tuple's values
 */
static bool
where_after_fk(sb_t *b, const rel_t *rel, const val_t *old, int nold, const val_t *new, int nnew)
{
	val_t *v = pgm_calloc((size_t) (nold > 0 ? nold : 1), sizeof(val_t));
	bool any;

	for (int i = 0; i < nold; i++) {
		v[i] = old[i];
		if (i < rel->ncols && i < nnew && rel->cols[i].fk_set && new[i].kind != 'u')
			v[i] = new[i];
	}
	any = where_clause(b, rel, v, nold);
	free(v); /* the values are the tuples' own */
	return any;
}

static void
put_value(sb_t *b, const val_t *v)
{
	if (v->kind == 'n')
		sb_str(b, "NULL");
	else
		sb_take(b, pgm_quote_literal(v->text));
}

/*
 * After an UPDATE or DELETE: exactly one row, or the transaction fails;
 * gone_ok: none is right too (a DELETE the source's cascade made already).
 * count: read ROW_COUNT first (not when a fallback read it already).
 */
static void
put_row_check(sb_t *b, const char *verb, const rel_t *rel, const char *cond, bool gone_ok, bool count)
{
	char *what = pgm_asprintf("%s of %s where %.200s", verb, rel->qname, cond);

	if (count)
		sb_str(b, "GET DIAGNOSTICS pgm_rows = ROW_COUNT;\n");
	sb_str(b, gone_ok ? "IF pgm_rows > 1" : "IF pgm_rows <> 1");
	sb_str(b, " THEN RAISE EXCEPTION '% matched % row(s) on the source instead of 1', ");
	sb_take(b, pgm_quote_literal(what));
	sb_str(b, ", pgm_rows; END IF;\n");
	free(what);
}

/* "WHERE cond" or, for REPLICA IDENTITY FULL, one row of it by ctid */
static void
put_target_row(sb_t *b, const rel_t *rel, const char *cond)
{
	if (rel->ident == 'f') {
		sb_str(b, " WHERE ctid = (SELECT ctid FROM ");
		sb_str(b, rel->qname);
		sb_str(b, " WHERE ");
		sb_str(b, cond);
		sb_str(b, " LIMIT 1)");
	} else {
		sb_str(b, " WHERE ");
		sb_str(b, cond);
	}
}

static int
change_insert(pgm_pgo_t *p, rel_t *rel, rd_t *r, char **err)
{
	int n;
	val_t *v;
	sb_t *b = &p->body;
	bool first = true, whole = true;

	if (rd_int(r, 1) != 'N') {
		*err = pgm_strdup("malformed Insert message");
		return -1;
	}
	v = rd_tuple(r, &n);
	for (int i = 0; i < n && !r->bad; i++)
		whole = whole && v[i].kind != 'u';
	if (!r->bad && whole && p->ins_relid == rel->relid && p->ins_ncols == n && b->n == p->ins_end + 2) {
		/* the row after the last one inserted into the same table: one more row of that INSERT */
		b->n = p->ins_end;
		sb_str(b, ",\n(");
		for (int i = 0; i < n && i < rel->ncols; i++) {
			sb_str(b, i ? ", " : "");
			put_value(b, &v[i]);
		}
		sb_str(b, ")");
		p->ins_end = b->n;
		sb_str(b, ";\n");
	} else if (!r->bad) {
		sb_str(b, "INSERT INTO ");
		sb_str(b, rel->qname);
		sb_str(b, " (");
		for (int i = 0; i < n && i < rel->ncols; i++) {
			if (v[i].kind == 'u')
				continue;
			sb_str(b, first ? "" : ", ");
			sb_str(b, rel->cols[i].name);
			first = false;
		}
		sb_str(b, ") OVERRIDING SYSTEM VALUE VALUES (");
		first = true;
		for (int i = 0; i < n && i < rel->ncols; i++) {
			if (v[i].kind == 'u')
				continue;
			sb_str(b, first ? "" : ", ");
			put_value(b, &v[i]);
			first = false;
		}
		sb_str(b, ")");
		/* the next row into the same table, all its columns given, can join this INSERT */
		p->ins_relid = whole ? rel->relid : 0;
		p->ins_ncols = n;
		p->ins_end = b->n;
		sb_str(b, ";\n");
	}
	tuple_free(v, n);
	return 0;
}

/*
 * Whether column i keeps its value: equal to the old tuple when there is
 * one, else a key column (an old key is sent only when the key changed).
 * Unchanged columns are left out of SET, which also keeps GENERATED ALWAYS
 * identity keys, that refuse any value but DEFAULT, out of it.
 */
static bool
unchanged(const rel_t *rel, const val_t *old, int nold, bool old_full, const val_t *new, int i)
{
	if (old == NULL)
		return rel->cols[i].key;
	/* an old key tuple ('K') holds the key columns only: the others are placeholders */
	if (i >= nold || old[i].kind == 'u' || (!old_full && !rel->cols[i].key))
		return false;
	if (old[i].kind == 'n' || new[i].kind == 'n')
		return old[i].kind == new[i].kind;
	return strcmp(old[i].text, new[i].text) == 0;
}

static int
change_update_delete(pgm_pgo_t *p, rel_t *rel, rd_t *r, bool is_delete, char **err)
{
	int nold = 0, nnew = 0;
	val_t *old = NULL, *new = NULL;
	char kind = (char) rd_int(r, 1), old_kind = kind;
	sb_t cond = {0};
	sb_t *b = &p->body;
	int rc = 0;

	if (kind == 'K' || kind == 'O') {
		old = rd_tuple(r, &nold);
		if (!is_delete)
			kind = (char) rd_int(r, 1);
	} else if (is_delete) {
		*err = pgm_asprintf("malformed Delete message on %s", rel->qname);
		return -1;
	}
	if (!is_delete) {
		if (kind != 'N') {
			*err = pgm_asprintf("malformed Update message on %s", rel->qname);
			tuple_free(old, nold);
			return -1;
		}
		new = rd_tuple(r, &nnew);
	}
	if (r->bad)
		goto out;
	if (!(old ? where_clause(&cond, rel, old, nold) : where_clause(&cond, rel, new, nnew))) {
		*err = pgm_asprintf("%s has no replica identity: its row cannot be found on the source", rel->qname);
		rc = -1;
		goto out;
	}
	if (is_delete) {
		sb_str(b, "DELETE FROM ");
		sb_str(b, rel->qname);
		put_target_row(b, rel, cond.d);
		sb_str(b, ";\n");
		/* the source's ON DELETE CASCADE may have removed it with its parent: gone is the target's state */
		put_row_check(b, "delete", rel, cond.d, rel->cascaded, true);
	} else {
		bool first = true, moved;
		sb_t set = {0}, stmt = {0}, after = {0};

		for (int i = 0; i < nnew && i < rel->ncols; i++) {
			if (new[i].kind == 'u' || unchanged(rel, old, nold, old_kind == 'O', new, i))
				continue; /* an unchanged TOASTed value, or a value that did not change */
			sb_str(&set, first ? "" : ", ");
			sb_str(&set, rel->cols[i].name);
			sb_str(&set, " = ");
			put_value(&set, &new[i]);
			first = false;
		}
		if (set.n == 0) {
			/* nothing to write, but the row must be there */
			sb_str(&stmt, "PERFORM 1 FROM ");
			sb_str(&stmt, rel->qname);
		} else {
			sb_str(&stmt, "UPDATE ");
			sb_str(&stmt, rel->qname);
			sb_str(&stmt, " SET ");
			sb_str(&stmt, set.d);
		}
		free(set.d);
		sb_str(b, stmt.d);
		put_target_row(b, rel, cond.d);
		sb_str(b, ";\nGET DIAGNOSTICS pgm_rows = ROW_COUNT;\n");
		moved = old && rel->fk_key && where_after_fk(&after, rel, old, nold, new, nnew) &&
			strcmp(after.d, cond.d) != 0;
		if (moved) {
			/* the source's ON UPDATE action changed the old row already: the row as it left it */
			sb_str(b, "IF pgm_rows = 0 THEN\n");
			sb_str(b, stmt.d);
			put_target_row(b, rel, after.d);
			sb_str(b, ";\nGET DIAGNOSTICS pgm_rows = ROW_COUNT;\nEND IF;\n");
		}
		free(stmt.d);
		free(after.d);
		put_row_check(b, "update", rel, cond.d, false, false);
	}
out:
	free(cond.d);
	tuple_free(old, nold);
	tuple_free(new, nnew);
	return rc;
}

static int
change_truncate(pgm_pgo_t *p, rd_t *r, char **err)
{
	uint32_t n = (uint32_t) rd_int(r, 4);
	int opts = (int) rd_int(r, 1);
	sb_t *b = &p->body;

	sb_str(b, "TRUNCATE ONLY ");
	for (uint32_t i = 0; i < n && !r->bad; i++) {
		rel_t *rel = rel_find(p, (uint32_t) rd_int(r, 4));

		if (rel == NULL) {
			*err = pgm_strdup("Truncate message names a relation not described before");
			return -1;
		}
		sb_str(b, i ? ", " : "");
		sb_str(b, rel->qname);
	}
	sb_str(b, (opts & 2) ? " RESTART IDENTITY" : "");
	sb_str(b, (opts & 1) ? " CASCADE;\n" : ";\n");
	return 0;
}

/* ---- the source's foreign key actions ---- */

void
pgm_pgo_fk_rule(pgm_pgo_t *p, const char *nsp, const char *name, bool cascaded, const char *const *cols, int ncols)
{
	fk_rule_t *f;

	p->rules = pgm_realloc(p->rules, (size_t) (p->nrules + 1) * sizeof(fk_rule_t));
	f = &p->rules[p->nrules++];
	f->nsp = pgm_strdup(nsp);
	f->name = pgm_strdup(name);
	f->cascaded = cascaded;
	f->ncols = ncols;
	f->cols = pgm_calloc((size_t) (ncols > 0 ? ncols : 1), sizeof(char *));
	for (int i = 0; i < ncols; i++)
		f->cols[i] = pgm_strdup(cols[i]);
}

static const fk_rule_t *
rule_find(const pgm_pgo_t *p, const char *nsp, const char *name)
{
	for (int i = 0; i < p->nrules; i++)
		if (strcmp(p->rules[i].nsp, nsp) == 0 && strcmp(p->rules[i].name, name) == 0)
			return &p->rules[i];
	return NULL;
}

/* whether an action of the source's foreign keys sets this column */
static void
rule_col(const pgm_pgo_t *p, const char *nsp, const char *name, const char *col, rel_col_t *c)
{
	const fk_rule_t *f = rule_find(p, nsp, name);

	c->fk_set = false;
	for (int i = 0; f && i < f->ncols; i++)
		c->fk_set = c->fk_set || strcmp(f->cols[i], col) == 0;
}

static int
msg_relation(pgm_pgo_t *p, rd_t *r)
{
	uint32_t relid = (uint32_t) rd_int(r, 4);
	const char *nsp = rd_str(r), *name = rd_str(r);
	char ident = (char) rd_int(r, 1);
	int ncols = (int) rd_int(r, 2);
	rel_t *rel = rel_find(p, relid);
	const fk_rule_t *rule;
	char *qn, *qr;

	if (r->bad)
		return -1;
	if (rel == NULL) {
		if (p->nrels == p->cap) {
			p->cap = p->cap ? p->cap * 2 : 16;
			p->rels = pgm_realloc(p->rels, (size_t) p->cap * sizeof(rel_t));
		}
		rel = &p->rels[p->nrels++];
		memset(rel, 0, sizeof(*rel));
	} else {
		rel_clear(rel);
	}
	p->ins_relid = 0; /* its columns may have changed: no INSERT of before takes more rows */
	qn = pgm_quote_ident(nsp[0] ? nsp : "pg_catalog");
	qr = pgm_quote_ident(name);
	rel->relid = relid;
	rel->qname = pgm_asprintf("%s.%s", qn, qr);
	free(qn);
	free(qr);
	rel->ident = ident;
	rel->cols = pgm_calloc((size_t) (ncols > 0 ? ncols : 1), sizeof(rel_col_t));
	for (int i = 0; i < ncols && !r->bad; i++) {
		int flags = (int) rd_int(r, 1);
		const char *col = rd_str(r);

		rel->cols[i].key = (flags & 1) != 0;
		rel->cols[i].name = pgm_quote_ident(col);
		rel->cols[i].typid = (uint32_t) rd_int(r, 4);
		(void) rd_int(r, 4); /* atttypmod */
		rel->ncols = i + 1;
		rule_col(p, nsp[0] ? nsp : "pg_catalog", name, col, &rel->cols[i]);
	}
	rule = rule_find(p, nsp[0] ? nsp : "pg_catalog", name);
	rel->cascaded = rule && rule->cascaded;
	for (int i = 0; i < rel->ncols; i++)
		rel->fk_key = rel->fk_key || (rel->cols[i].key && rel->cols[i].fk_set);
	return r->bad ? -1 : 0;
}

char *
pgm_pgo_do_block(const char *prologue, const char *body, const char *epilogue)
{
	char tag[32];
	unsigned n = 0;

	do
		snprintf(tag, sizeof(tag), "$pgm_%x$", n++);
	while (strstr(body, tag) != NULL || strstr(prologue, tag) != NULL || strstr(epilogue, tag) != NULL);
	return pgm_asprintf("DO %s\n#variable_conflict use_column\nDECLARE pgm_rows bigint; pgm_done pg_lsn;\nBEGIN\n"
			    "%s%s%sEND %s",
			    tag, prologue, body, epilogue, tag);
}

int
pgm_pgo_feed(pgm_pgo_t *p, const uint8_t *msg, size_t len, pgm_pgo_txn_t *txn, char **err)
{
	rd_t r = {msg, len, 0, false};
	char type = (char) rd_int(&r, 1);
	int rc = 0;

	*err = NULL;
	switch (type) {
	case 'B':
		p->commit_lsn = rd_int(&r, 8);
		p->commit_time = (int64_t) rd_int(&r, 8);
		p->xid = (uint32_t) rd_int(&r, 4);
		p->in_txn = true;
		p->changes = p->body_changes = 0;
		p->ins_relid = 0;
		p->body.n = 0;
		if (p->body.d)
			p->body.d[0] = '\0';
		chunks_drop(p);
		break;
	case 'C':
		(void) rd_int(&r, 1);
		txn->commit_lsn = rd_int(&r, 8);
		txn->end_lsn = rd_int(&r, 8);
		txn->commit_time = (int64_t) rd_int(&r, 8);
		if (r.bad)
			break;
		if (!p->in_txn) {
			*err = pgm_strdup("Commit message without a Begin");
			return -1;
		}
		chunk_close(p);
		txn->xid = p->xid;
		txn->changes = p->changes;
		txn->chunks = p->chunks;
		txn->nchunks = p->nchunks;
		p->chunks = NULL;
		p->nchunks = p->cap_chunks = 0;
		p->in_txn = false;
		return 1;
	case 'R':
		rc = msg_relation(p, &r);
		break;
	case 'I':
	case 'U':
	case 'D': {
		uint32_t relid = (uint32_t) rd_int(&r, 4);
		rel_t *rel = rel_find(p, relid);

		if (r.bad)
			break;
		if (!p->in_txn || rel == NULL) {
			*err = pgm_asprintf(
				"change to relation %u outside a transaction or before its Relation message", relid);
			return -1;
		}
		p->changes++;
		rc = type == 'I' ? change_insert(p, rel, &r, err) : change_update_delete(p, rel, &r, type == 'D', err);
		if (++p->body_changes >= PGM_PGO_CHUNK || p->body.n >= PGM_PGO_CHUNK_BYTES)
			chunk_close(p);
		break;
	}
	case 'T':
		p->changes++;
		rc = change_truncate(p, &r, err);
		if (++p->body_changes >= PGM_PGO_CHUNK || p->body.n >= PGM_PGO_CHUNK_BYTES)
			chunk_close(p);
		break;
	case 'O': /* origin, type, logical message: nothing to apply */
	case 'Y':
	case 'M':
		break;
	default:
		*err = pgm_asprintf("unexpected pgoutput message type '%c'", type >= 32 && type < 127 ? type : '?');
		return -1;
	}
	if (rc < 0 || r.bad) {
		if (*err == NULL)
			*err = pgm_asprintf("malformed pgoutput message '%c' (%zu bytes)", type, len);
		return -1;
	}
	return 0;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

uint8_t *
pgm_pgo_unhex(const char *text, size_t *len)
{
	size_t n;
	uint8_t *out;

	if (text == NULL || text[0] != '\\' || text[1] != 'x')
		return NULL;
	text += 2;
	n = strlen(text);
	if (n % 2 != 0)
		return NULL;
	out = pgm_malloc(n / 2 + 1);
	for (size_t i = 0; i < n / 2; i++) {
		int hi = hexval(text[2 * i]), lo = hexval(text[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			free(out);
			return NULL;
		}
		out[i] = (uint8_t) (hi << 4 | lo);
	}
	*len = n / 2;
	return out;
}
