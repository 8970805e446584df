/*
 * Filters for list operations, a small subset of containerd's filter
 * syntax (pkg/filters): OR of comma-separated AND clauses over fields,
 * with label fields written labels."key" or labels.key.  Grammar and
 * examples in docs/design/metadata.md and store.h.
 */
#include "metadata/store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/xalloc.h"

enum { OP_EXISTS, OP_EQ, OP_NE };

typedef struct {
  char *field;
  int op;
  char *value;
} clause_t;

typedef struct {
  clause_t *c;
  size_t n;
} conj_t;

struct crater_filter_s {
  conj_t *alts;
  size_t n;
};

static bool
is_ident(char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static bool
is_key(char c)
{
  return is_ident(c) || c == '.' || c == '/' || c == '-';
}

static void
skip_ws(const char **p)
{
  while (**p == ' ' || **p == '\t')
    (*p)++;
}

/* Parses a double-quoted string at *p (on the quote). */
static char *
parse_quoted(const char **p)
{
  const char *s = *p + 1;
  size_t cap = strlen(s) + 1, n = 0;
  char *out = xmalloc(cap);
  for (; *s && *s != '"'; s++) {
    if (*s == '\\' && (s[1] == '"' || s[1] == '\\'))
      s++;
    out[n++] = *s;
  }
  if (*s != '"') {
    free(out);
    return NULL;
  }
  out[n] = '\0';
  *p = s + 1;
  return out;
}

static int
parse_clause(const char **pp, clause_t *c, const char *whole, crater_error_t *err)
{
  const char *p = *pp;
  skip_ws(&p);
  const char *start = p;
  while (is_ident(*p))
    p++;
  if (p == start)
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL,
                             "filter '%.200s': expected a field name at '%.40s'", whole, start);
  cleanup_free char *field = xstrndup(start, (size_t) (p - start));
  if (strcmp(field, "labels") == 0) {
    if (*p != '.')
      return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL,
                               "filter '%.200s': labels needs a key (labels.\"k\")", whole);
    p++;
    cleanup_free char *key = NULL;
    if (*p == '"') {
      key = parse_quoted(&p);
    } else {
      const char *k = p;
      while (is_key(*p))
        p++;
      if (p > k)
        key = xstrndup(k, (size_t) (p - k));
    }
    if (key == NULL || key[0] == '\0')
      return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL,
                               "filter '%.200s': bad label key", whole);
    c->field = xasprintf("labels.%s", key);
  } else {
    while (*p == '.' && is_ident(p[1])) {
      const char *seg = ++p;
      while (is_ident(*p))
        p++;
      char *f = xasprintf("%s.%.*s", field, (int) (p - seg), seg);
      free(field);
      field = f;
    }
    c->field = steal_pointer(&field);
  }
  skip_ws(&p);
  if (*p == '\0' || *p == ',') {
    c->op = OP_EXISTS;
  } else if ((p[0] == '=' || p[0] == '!') && p[1] == '=') {
    c->op = p[0] == '=' ? OP_EQ : OP_NE;
    p += 2;
    skip_ws(&p);
    if (*p == '"') {
      c->value = parse_quoted(&p);
      if (c->value == NULL)
        return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL,
                                 "filter '%.200s': unterminated quote", whole);
    } else {
      const char *v = p;
      while (*p && *p != ',')
        p++;
      const char *e = p;
      while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
      c->value = xstrndup(v, (size_t) (e - v));
    }
    skip_ws(&p);
  } else {
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL,
                             "filter '%.200s': expected ==, != or ',' at '%.40s'", whole, p);
  }
  if (*p != '\0' && *p != ',')
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL,
                             "filter '%.200s': unexpected '%.40s'", whole, p);
  *pp = p;
  return 0;
}

crater_filter_t *
crater_filter_parse(const char *const *filters, size_t n, crater_error_t *err)
{
  crater_filter_t *f = xmalloc0(sizeof *f);
  for (size_t i = 0; i < n; i++) {
    const char *p = filters[i];
    if (p == NULL || *p == '\0')
      continue;
    f->alts = xrealloc(f->alts, (f->n + 1) * sizeof *f->alts);
    conj_t *cj = &f->alts[f->n++];
    memset(cj, 0, sizeof *cj);
    for (;;) {
      cj->c = xrealloc(cj->c, (cj->n + 1) * sizeof *cj->c);
      clause_t *c = &cj->c[cj->n++];
      memset(c, 0, sizeof *c);
      if (parse_clause(&p, c, filters[i], err) < 0) {
        crater_filter_free(f);
        return NULL;
      }
      if (*p != ',')
        break;
      p++;
    }
  }
  return f;
}

bool
crater_filter_match(const crater_filter_t *f, crater_filter_lookup_fn lookup, const void *rec)
{
  if (f == NULL || f->n == 0)
    return true;
  char scratch[64];
  for (size_t i = 0; i < f->n; i++) {
    bool all = true;
    for (size_t j = 0; all && j < f->alts[i].n; j++) {
      const clause_t *c = &f->alts[i].c[j];
      const char *v = lookup(rec, c->field, scratch, sizeof scratch);
      switch (c->op) {
      case OP_EXISTS:
        all = v != NULL;
        break;
      case OP_EQ:
        all = v != NULL && strcmp(v, c->value) == 0;
        break;
      default:
        all = v == NULL || strcmp(v, c->value) != 0;
        break;
      }
    }
    if (all)
      return true;
  }
  return false;
}

void
crater_filter_free(crater_filter_t *f)
{
  if (f == NULL)
    return;
  for (size_t i = 0; i < f->n; i++) {
    for (size_t j = 0; j < f->alts[i].n; j++) {
      free(f->alts[i].c[j].field);
      free(f->alts[i].c[j].value);
    }
    free(f->alts[i].c);
  }
  free(f->alts);
  free(f);
}
