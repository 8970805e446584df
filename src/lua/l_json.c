/*
 * JSON for Lua: core.json_decode(str) and core.json_encode(value,
 * {pretty=bool}), converting directly between JSON text and Lua values.
 *
 * Decoding is strict (duplicate object keys are rejected, as the pull
 * workflow requires for manifests).  JSON null decodes to core.null (a
 * light userdata); arrays decode to tables carrying core.array_mt so that
 * an empty array encodes back as [] rather than {}.  Encoding sorts object
 * keys so output is deterministic.
 *
 * Both directions used to go through a jansson tree (json_loadb, then a
 * walk pushing Lua values; a tree built from Lua, then json_dumps); the
 * direct conversion costs 5-7x fewer instructions (callgrind, decode /
 * encode of policies/seccomp-default.json: 1.54 M / 1.10 M -> 0.25 M /
 * 0.15 M).  The behaviour is jansson's, with the flags we used:
 *  - decode = json_loadb(JSON_REJECT_DUPLICATES | JSON_DECODE_ANY |
 *    JSON_ALLOW_NUL): RFC 8259 strictly, any value at top level, strict
 *    UTF-8, \u0000 allowed in strings but not in object keys, integers
 *    beyond int64 and reals beyond double rejected, parsing depth capped at
 *    jansson's 2048; then our own cap (a value nested deeper than 128 gives
 *    "invalid JSON: nesting deeper than 128", checked after the whole text
 *    parsed, as before).  Tables are created at their final size (a first
 *    pass counts the elements) and filled in document order, as the jansson
 *    walk did, so even pairs() order is unchanged.  Error messages are
 *    jansson's, word for word: line, column (in characters) of the last
 *    byte its lexer read, reason, offending token.  One deliberate
 *    difference: jansson's lexer skipped a NUL byte right after a number or
 *    a word ("1\0" gave 1); that is trailing garbage here.
 *  - encode = json_dumps(JSON_SORT_KEYS | JSON_ENCODE_ANY | JSON_COMPACT or
 *    JSON_INDENT(2)), byte for byte: keys sorted by bytes, integral numbers
 *    below 2^53 as integers, other numbers as jansson's "%.17g" (".0"
 *    appended when integral, exponent without '+' and leading zeros),
 *    strings escaped as jansson does without JSON_ESCAPE_SLASH or
 *    JSON_ENSURE_ASCII; errors raised with the reason the old encoder gave
 *    (the first problem in its traversal order, encode_error).  Object keys
 *    that are not valid UTF-8 now raise (json_object_set_new refused them
 *    and the old code dropped them silently), and keys holding NUL bytes
 *    are encoded whole (they were cut at the NUL).
 * Numbers are read and written in the C locale whatever the process
 * locale is (strtod_l; snprintf under uselocale), like jansson.
 *
 * No malloc: Lua values live on the Lua stack, scratch space (escaped
 * strings, the output, key lists) in userdata at fixed stack slots, so an
 * error (even out of memory) cannot leak.  tests/lua/test_json.c checks
 * both directions against jansson itself.
 */
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua/lua_util.h"

#define JSON_MAX_DEPTH 128
/* jansson's JSON_PARSER_MAX_DEPTH: deeper text fails as a syntax error */
#define JSON_PARSE_MAX_DEPTH 2048

static int array_mt_ref = LUA_NOREF;
static locale_t c_locale;

/* jansson's TOKEN_INVALID: a malformed number or word, or a stray byte */
static const char invalid_token[] = "invalid token";

/* Bytes inside strings: 0 plain ASCII, 1 '"', 2 '\\', 3 control, 4 non-ASCII */
static const unsigned char str_class[256] = {
  [0 ... 0x1f] = 3,
  ['"'] = 1,
  ['\\'] = 2,
  [0x80 ... 0xff] = 4,
};

/* Length of the UTF-8 sequence starting at s (*s >= 0x80), 0 when it is
 * not valid: jansson's utf8_check_first + utf8_check_full (no overlong
 * forms, no UTF-16 surrogates, nothing above U+10FFFF). */
static size_t
utf8_len(const unsigned char *s, const unsigned char *end)
{
  unsigned c = s[0];
  size_t avail = (size_t) (end - s);
  if (c < 0xc2 || c > 0xf4)
    return 0;
  if (c < 0xe0)
    return avail >= 2 && (s[1] & 0xc0) == 0x80 ? 2 : 0;
  if (c < 0xf0) {
    if (avail < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
      return 0;
    if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] >= 0xa0))
      return 0;
    return 3;
  }
  if (avail < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
    return 0;
  if ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] >= 0x90))
    return 0;
  return 4;
}

/* --- decoding ------------------------------------------------------------ */

/* Stack slots of l_json_decode */
enum { DEC_TEXT = 1, DEC_SCRATCH, DEC_SIZES, DEC_ARRAY_MT };

typedef struct {
  lua_State *L;
  const unsigned char *s, *p, *end;
  /* element counts of the containers in document order (count_sizes) */
  const uint32_t *sizes;
  size_t nsizes, next;
  /* decoded escaped strings: a C buffer, then userdata at DEC_SCRATCH */
  char *scratch;
  size_t cap;
  int maxdepth;
  /* the error: the offending token [tok, tok_end) and a reason (a printf
   * format taking two ints) */
  const unsigned char *tok, *tok_end;
  const char *why;
  int arg1, arg2;
} parser_t;

static int
fail2(parser_t *P, const unsigned char *tok, const unsigned char *tok_end, const char *why,
      int arg1, int arg2)
{
  P->tok = tok;
  P->tok_end = tok_end;
  P->why = why;
  P->arg1 = arg1;
  P->arg2 = arg2;
  return -1;
}

static int
fail(parser_t *P, const unsigned char *tok, const unsigned char *tok_end, const char *why)
{
  return fail2(P, tok, tok_end, why, 0, 0);
}

static inline int
is_alpha(unsigned c)
{
  return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
}

static inline int
is_digit(const unsigned char *p, const unsigned char *end)
{
  return p < end && *p >= '0' && *p <= '9';
}

static int parse_string(parser_t *P, int *has_nul);
static int parse_number(parser_t *P);
static int bad_lookahead(parser_t *P, const unsigned char *tok, const unsigned char *p);

/* Fails on the unexpected token at p, quoting it as jansson would; or, as
 * jansson's lexer reads the token first, on the token itself. */
static int
fail_token(parser_t *P, const unsigned char *p, const char *why)
{
  const unsigned char *q = p, *end = P->end;
  int has_nul;
  if (q >= end)
    return fail(P, q, q, why);
  P->p = p;
  if (*q == '"') {
    if (parse_string(P, &has_nul) < 0)
      return -1;
    q = P->p;
  } else if (*q == '-' || is_digit(q, end)) {
    if (parse_number(P) == 0)
      q = P->p;
    else if (P->why == invalid_token)
      q = P->tok_end; /* a syntax error is jansson's TOKEN_INVALID */
    else
      return -1; /* an overflow */
  } else if (is_alpha(*q)) {
    while (q < end && is_alpha(*q))
      q++;
    if (bad_lookahead(P, p, q) < 0)
      return -1;
  } else if (*q >= 0x80) {
    size_t n = utf8_len(q, end);
    if (n == 0)
      return fail2(P, p, p, "unable to decode byte 0x%x", *p, 0);
    q += n;
  } else {
    q++;
  }
  return fail(P, p, q, why);
}

/* The text is a Lua string, so *end is a NUL: loops scanning for a
 * class of bytes stop there without comparing with end each time. */
static const unsigned char ws_class[256] = { [' '] = 1, ['\n'] = 1, ['\r'] = 1, ['\t'] = 1 };

static inline const unsigned char *
skip_ws(const unsigned char *p)
{
  while (ws_class[*p])
    p++;
  return p;
}

/* The first byte at or after p of a non-zero class (unrolled: the compiler
 * keeps this loop tight, which the plain one inside a switch is not) */
static inline const unsigned char *
scan(const unsigned char *p, const unsigned char *class)
{
  for (;; p += 4) {
    if (class[p[0]])
      return p;
    if (class[p[1]])
      return p + 1;
    if (class[p[2]])
      return p + 2;
    if (class[p[3]])
      return p + 3;
  }
}

/* Bytes count_sizes looks at: 1 '"', 2 '[' '{', 3 ']' '}', 4 ',', 5 NUL;
 * and in strings: 1 '"', 2 '\\', 3 NUL */
static const unsigned char scan_class[256] = {
  ['"'] = 1, ['['] = 2, ['{'] = 2, [']'] = 3, ['}'] = 3, [','] = 4, ['\0'] = 5,
};
static const unsigned char scan_str_class[256] = { ['"'] = 1, ['\\'] = 2, ['\0'] = 3 };

/* Counts the elements of every array and object of the text (for valid
 * text; anything else only costs a table resize later), numbered in
 * document order, into n[0..cap).  Returns the number of containers. */
static size_t
count_sizes(const unsigned char *p, const unsigned char *end, uint32_t *n, size_t cap)
{
  uint32_t open[JSON_MAX_DEPTH + 2]; /* deeper text is refused anyway */
  const size_t max_open = sizeof open / sizeof open[0];
  size_t k = 0, depth = 0;
  for (;; p++) {
    p = scan(p, scan_class);
    switch (scan_class[*p]) {
    case 1:
      for (p++;; p++) {
        p = scan(p, scan_str_class);
        if (*p == '"')
          break;
        if (p >= end || (*p == '\\' && ++p >= end))
          return k;
      }
      break;
    case 2:
      if (depth < max_open)
        open[depth] = (uint32_t) k;
      if (k < cap)
        n[k] = 1;
      k++;
      depth++;
      break;
    case 3:
      if (depth == 0)
        return k;
      depth--;
      if (depth < max_open && open[depth] < cap) {
        /* empty when the opening bracket comes before it (there is one
         * before, so this stops) */
        const unsigned char *q = p - 1;
        while (ws_class[*q])
          q--;
        if (*q == '[' || *q == '{')
          n[open[depth]] = 0;
      }
      break;
    case 4:
      if (depth > 0 && depth <= max_open && open[depth - 1] < cap)
        n[open[depth - 1]]++;
      break;
    default:
      if (p >= end)
        return k;
    }
  }
}

static inline int
next_size(parser_t *P)
{
  size_t i = P->next++;
  return i < P->nsizes && P->sizes[i] <= INT32_MAX ? (int) P->sizes[i] : 0;
}

static void
scratch_reserve(parser_t *P, size_t need)
{
  if (need <= P->cap)
    return;
  size_t cap = P->cap * 2 > need ? P->cap * 2 : need;
  P->scratch = lua_newuserdata(P->L, cap);
  P->cap = cap;
  lua_replace(P->L, DEC_SCRATCH);
}

/* The \uXXXX escape at p (at the backslash): its value, or -1 with *bad
 * at the first byte that is not a hex digit. */
static int32_t
hex4(const unsigned char *p, const unsigned char *end, const unsigned char **bad)
{
  int32_t v = 0;
  for (int i = 2; i < 6; i++) {
    unsigned c = p + i < end ? p[i] : 0;
    if (c >= '0' && c <= '9') {
      c -= '0';
    } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
      c = (c | 0x20) - 'a' + 10;
    } else {
      *bad = p + i < end ? p + i : end;
      return -1;
    }
    v = v * 16 + (int32_t) c;
  }
  return v;
}

/* Fails on an escape in the string at tok, bad at the first wrong byte */
static int
fail_escape(parser_t *P, const unsigned char *tok, const unsigned char *bad)
{
  if (bad >= P->end)
    return fail(P, tok, P->end, "invalid escape");
  if (*bad >= 0x80 && utf8_len(bad, P->end) == 0)
    return fail2(P, tok, bad, "unable to decode byte 0x%x", *bad, 0);
  return fail(P, tok, bad + 1, "invalid escape");
}

/* The string at P->p ('"'): pushes it and moves past it.  *has_nul tells
 * whether it holds a NUL byte (object keys must not). */
static int
parse_string(parser_t *P, int *has_nul)
{
  const unsigned char *tok = P->p, *start = tok + 1, *p = start, *end = P->end;
  /* NULL until the first backslash: up to there the string is its source
   * text, pushed as it stands; from there on it is decoded into scratch */
  char *o = NULL;
  /* jansson checks surrogates once the string is lexed: other errors win */
  const char *bad_unicode = NULL;
  int32_t bad1 = 0, bad2 = 0;
  for (;;) {
    const unsigned char *run = p;
    p = scan(p, str_class);
    if (o) {
      memcpy(o, run, (size_t) (p - run));
      o += p - run;
    }
    switch (str_class[*p]) {
    case 1:
      if (bad_unicode)
        return fail2(P, tok, p + 1, bad_unicode, bad1, bad2);
      if (o)
        lua_pushlstring(P->L, P->scratch, (size_t) (o - P->scratch));
      else
        lua_pushlstring(P->L, (const char *) start, (size_t) (p - start));
      P->p = p + 1;
      return 0;
    case 3:
      if (p >= end)
        return fail(P, tok, end, "premature end of input");
      return fail2(P, tok, p, *p == '\n' ? "unexpected newline" : "control character 0x%x", *p, 0);
    case 4: {
      size_t n = utf8_len(p, end);
      if (n == 0)
        return fail2(P, tok, p, "unable to decode byte 0x%x", *p, 0);
      if (o) {
        memcpy(o, p, n);
        o += n;
      }
      p += n;
      continue;
    }
    }
    if (o == NULL) {
      /* The decoded string is never longer than its source text. */
      const unsigned char *q = p;
      while (q < end && *q != '"')
        q += *q == '\\' ? 2 : 1;
      scratch_reserve(P, (size_t) ((q < end ? q : end) - start));
      o = P->scratch;
      memcpy(o, start, (size_t) (p - start));
      o += p - start;
    }
    /* backslash */
    if (p + 1 >= end)
      return fail_escape(P, tok, end);
    switch (p[1]) {
    case '"':
    case '\\':
    case '/':
      *o++ = (char) p[1];
      break;
    case 'b':
      *o++ = '\b';
      break;
    case 'f':
      *o++ = '\f';
      break;
    case 'n':
      *o++ = '\n';
      break;
    case 'r':
      *o++ = '\r';
      break;
    case 't':
      *o++ = '\t';
      break;
    case 'u': {
      const unsigned char *bad;
      int32_t cp = hex4(p, end, &bad);
      if (cp < 0)
        return fail_escape(P, tok, bad);
      if (cp >= 0xd800 && cp <= 0xdbff && p + 7 < end && p[6] == '\\' && p[7] == 'u') {
        int32_t lo = hex4(p + 6, end, &bad);
        if (lo < 0)
          return fail_escape(P, tok, bad);
        p += 6;
        if (lo >= 0xdc00 && lo <= 0xdfff) {
          cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        } else if (!bad_unicode) {
          bad_unicode = "invalid Unicode '\\u%04X\\u%04X'";
          bad1 = cp;
          bad2 = lo;
        }
      } else if (cp >= 0xd800 && cp <= 0xdfff && !bad_unicode) {
        bad_unicode = "invalid Unicode '\\u%04X'";
        bad1 = cp;
      }
      if (cp == 0)
        *has_nul = 1;
      if (cp < 0x80) {
        *o++ = (char) cp;
      } else if (cp < 0x800) {
        *o++ = (char) (0xc0 | (cp >> 6));
        *o++ = (char) (0x80 | (cp & 0x3f));
      } else if (cp < 0x10000) {
        *o++ = (char) (0xe0 | (cp >> 12));
        *o++ = (char) (0x80 | ((cp >> 6) & 0x3f));
        *o++ = (char) (0x80 | (cp & 0x3f));
      } else {
        *o++ = (char) (0xf0 | (cp >> 18));
        *o++ = (char) (0x80 | ((cp >> 12) & 0x3f));
        *o++ = (char) (0x80 | ((cp >> 6) & 0x3f));
        *o++ = (char) (0x80 | (cp & 0x3f));
      }
      p += 4;
      break;
    }
    default:
      return fail_escape(P, tok, p + 1);
    }
    p += 2;
  }
}

static const double pow10_exact[] = {
  1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
  1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

/* Fails when the byte at p, read by jansson's lexer to end the token at
 * tok (a number or a word), is not valid UTF-8: its lexer failed so. */
static int
bad_lookahead(parser_t *P, const unsigned char *tok, const unsigned char *p)
{
  if (p < P->end && *p >= 0x80 && utf8_len(p, P->end) == 0)
    return fail2(P, tok, p, "unable to decode byte 0x%x", *p, 0);
  return 0;
}

/* The number at P->p: JSON's grammar exactly; integers as jansson's
 * strtoll (int64, converted to a double), others as strtod. */
static int
parse_number(parser_t *P)
{
  const unsigned char *start = P->p, *p = start, *end = P->end;
  int neg = *p == '-', big = 0, real = 0, bad = 0;
  uint64_t mant = 0;
  long exp = 0, frac_digits = 0;
  if (neg)
    p++;
  if (!is_digit(p, end)) {
    bad = 1;
    goto stop;
  }
  if (*p == '0') {
    p++;
    if (is_digit(p, end)) {
      bad = 1;
      goto stop;
    }
  } else {
    for (; is_digit(p, end); p++) {
      unsigned d = *p - '0';
      if (mant > (UINT64_MAX - d) / 10)
        big = 1;
      else
        mant = mant * 10 + d;
    }
  }
  if (p < end && *p == '.') {
    real = 1;
    p++;
    if (!is_digit(p, end)) {
      bad = 1;
      goto stop;
    }
    for (; is_digit(p, end); p++) {
      unsigned d = *p - '0';
      if (mant > (UINT64_MAX - d) / 10) {
        big = 1;
      } else {
        mant = mant * 10 + d;
        frac_digits++;
      }
    }
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    int eneg = 0;
    real = 1;
    p++;
    if (p < end && (*p == '+' || *p == '-'))
      eneg = *p++ == '-';
    if (!is_digit(p, end)) {
      bad = 1;
      goto stop;
    }
    for (; is_digit(p, end); p++)
      if (exp < 100000)
        exp = exp * 10 + (*p - '0');
    if (eneg)
      exp = -exp;
  }
stop:
  if (bad_lookahead(P, start, p) < 0)
    return -1;
  if (bad)
    return fail(P, start, p, invalid_token);
  double d;
  if (!real) {
    if (big || mant > (uint64_t) INT64_MAX + (uint64_t) neg)
      return fail(P, start, p, neg ? "too big negative integer" : "too big integer");
    d = (double) (neg ? (int64_t) (0 - mant) : (int64_t) mant);
  } else if (mant == 0 && !big) {
    d = neg ? -0.0 : 0.0;
  } else if (!big && mant <= (1ull << 53) && exp - frac_digits >= -22 && exp - frac_digits <= 22) {
    /* exact operands, one correctly rounded operation: what strtod gives */
    exp -= frac_digits;
    d = exp < 0 ? (double) mant / pow10_exact[-exp] : (double) mant * pow10_exact[exp];
    if (neg)
      d = -d;
  } else {
    /* strtod stops where the grammar did (the Lua string is NUL-terminated
     * and the next byte is none of [0-9.eE]) */
    char *stop;
    errno = 0;
    d = c_locale ? strtod_l((const char *) start, &stop, c_locale)
                 : strtod((const char *) start, &stop);
    if ((d == HUGE_VAL || d == -HUGE_VAL) && errno == ERANGE)
      return fail(P, start, p, "real number overflow");
    if ((const unsigned char *) stop != p)
      return fail(P, start, p, invalid_token);
  }
  lua_pushnumber(P->L, d);
  P->p = p;
  return 0;
}

static int parse_value(parser_t *P, int depth);

static int
parse_object(parser_t *P, int depth)
{
  lua_State *L = P->L;
  const unsigned char *end = P->end;
  luaL_checkstack(L, 4, "json nesting");
  lua_createtable(L, 0, next_size(P));
  const unsigned char *p = skip_ws(P->p + 1);
  if (p < end && *p == '}') {
    P->p = p + 1;
    return 0;
  }
  for (;;) {
    int has_nul = 0;
    if (p >= end || *p != '"')
      return fail_token(P, p, "string or '}' expected");
    P->p = p;
    if (parse_string(P, &has_nul) < 0)
      return -1;
    if (has_nul)
      return fail(P, p, P->p, "NUL byte in object key not supported");
    lua_pushvalue(L, -1);
    lua_rawget(L, -3);
    if (!lua_isnil(L, -1))
      return fail(P, p, P->p, "duplicate object key");
    lua_pop(L, 1);
    p = skip_ws(P->p);
    if (p >= end || *p != ':')
      return fail_token(P, p, "':' expected");
    P->p = skip_ws(p + 1);
    if (parse_value(P, depth + 1) < 0)
      return -1;
    lua_rawset(L, -3);
    p = skip_ws(P->p);
    if (p < end && *p == ',') {
      p = skip_ws(p + 1);
      continue;
    }
    if (p < end && *p == '}') {
      P->p = p + 1;
      return 0;
    }
    return fail_token(P, p, "'}' expected");
  }
}

static int
parse_array(parser_t *P, int depth)
{
  lua_State *L = P->L;
  const unsigned char *end = P->end;
  luaL_checkstack(L, 4, "json nesting");
  lua_createtable(L, next_size(P), 0);
  const unsigned char *p = skip_ws(P->p + 1);
  if (p < end && *p == ']') {
    p++;
  } else {
    for (int i = 1;; i++) {
      if (p >= end)
        return fail(P, p, p, "']' expected");
      P->p = p;
      if (parse_value(P, depth + 1) < 0)
        return -1;
      lua_rawseti(L, -2, i);
      p = skip_ws(P->p);
      if (p < end && *p == ',') {
        p = skip_ws(p + 1);
        continue;
      }
      if (p < end && *p == ']') {
        p++;
        break;
      }
      return fail_token(P, p, "']' expected");
    }
  }
  P->p = p;
  lua_pushvalue(L, DEC_ARRAY_MT);
  lua_setmetatable(L, -2);
  return 0;
}

/* The value at P->p (after white space), at depth (0 = top level). */
static int
parse_value(parser_t *P, int depth)
{
  const unsigned char *p = P->p, *end = P->end;
  int has_nul;
  if (depth >= JSON_PARSE_MAX_DEPTH)
    return fail_token(P, p, "maximum parsing depth reached");
  if (depth > P->maxdepth)
    P->maxdepth = depth;
  if (p >= end)
    return fail(P, p, p, "unexpected token");
  switch (*p) {
  case '{':
    return parse_object(P, depth);
  case '[':
    return parse_array(P, depth);
  case '"':
    return parse_string(P, &has_nul);
  case '}':
  case ']':
  case ',':
  case ':':
    return fail_token(P, p, "unexpected token");
  default:
    if (*p == '-' || (*p >= '0' && *p <= '9'))
      return parse_number(P);
    if (is_alpha(*p)) {
      /* a word, as jansson's lexer takes it: "truex" is one bad token */
      const unsigned char *q = p + 1;
      while (q < end && is_alpha(*q))
        q++;
      size_t n = (size_t) (q - p);
      if (bad_lookahead(P, p, q) < 0)
        return -1;
      if (n == 4 && memcmp(p, "true", 4) == 0)
        lua_pushboolean(P->L, 1);
      else if (n == 5 && memcmp(p, "false", 5) == 0)
        lua_pushboolean(P->L, 0);
      else if (n == 4 && memcmp(p, "null", 4) == 0)
        lua_pushlightuserdata(P->L, NULL);
      else
        return fail(P, p, q, invalid_token);
      P->p = q;
      return 0;
    }
    return fail_token(P, p, invalid_token);
  }
}

/* json_decode(str) -> value | nil, msg, "invalid_argument" */
static int
l_json_decode(lua_State *L)
{
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  char scratch[256];
  uint32_t sizes[512];
  parser_t P = {
    .L = L,
    .s = (const unsigned char *) s,
    .end = (const unsigned char *) s + len,
    .sizes = sizes,
    .scratch = scratch,
    .cap = sizeof scratch,
  };
  lua_settop(L, DEC_TEXT);
  lua_pushnil(L); /* DEC_SCRATCH */
  lua_pushnil(L); /* DEC_SIZES */
  lua_rawgeti(L, LUA_REGISTRYINDEX, array_mt_ref);
  P.nsizes = count_sizes(P.s, P.end, sizes, sizeof sizes / sizeof sizes[0]);
  if (P.nsizes > sizeof sizes / sizeof sizes[0]) {
    uint32_t *n = lua_newuserdata(L, P.nsizes * sizeof *n);
    lua_replace(L, DEC_SIZES);
    count_sizes(P.s, P.end, n, P.nsizes);
    P.sizes = n;
  }
  P.p = skip_ws(P.s);
  int rc = parse_value(&P, 0);
  if (rc == 0) {
    P.p = skip_ws(P.p);
    if (P.p < P.end)
      rc = fail_token(&P, P.p, "end of file expected");
  }
  if (rc < 0) {
    /* jansson's form: the line and column (in characters) of the last
     * byte read, the token quoted when short */
    lua_settop(L, DEC_ARRAY_MT);
    int line = 1, column = 0;
    for (const unsigned char *q = P.s; q < P.tok_end; q++) {
      if (*q == '\n') {
        line++;
        column = 0;
      } else if ((*q & 0xc0) != 0x80) {
        column++;
      }
    }
    char why[80], near[40] = "";
    size_t n = (size_t) (P.tok_end - P.tok);
    snprintf(why, sizeof why, P.why, P.arg1, P.arg2);
    if (n > 0 && n <= 20 && *P.tok != '\0')
      snprintf(near, sizeof near, " near '%.*s'", (int) n, (const char *) P.tok);
    else if ((n == 0 && P.tok_end >= P.end) || (n > 0 && *P.tok == '\0'))
      snprintf(near, sizeof near, " near end of file"); /* jansson's words, even for a NUL */
    lua_pushnil(L);
    lua_pushfstring(L, "invalid JSON at line %d column %d: %s%s", line, column, why, near);
    lua_pushstring(L, "invalid_argument");
    return 3;
  }
  if (P.maxdepth > JSON_MAX_DEPTH) {
    lua_settop(L, DEC_ARRAY_MT);
    lua_pushnil(L);
    lua_pushfstring(L, "invalid JSON: nesting deeper than %d", JSON_MAX_DEPTH);
    lua_pushstring(L, "invalid_argument");
    return 3;
  }
  return 1;
}

/* --- encoding ------------------------------------------------------------ */

/* Stack slots of l_json_encode */
enum { ENC_VALUE = 1, ENC_OUT, ENC_KEYS, ENC_ARRAY_MT };

typedef struct {
  const char *s;
  size_t len;
  int slot; /* stack slot of the value, or 0: look it up by key */
} json_key_t;

typedef struct {
  lua_State *L;
  /* the output: a C buffer, then userdata at ENC_OUT */
  char *b;
  size_t len, cap;
  /* object keys being sorted, a stack shared by the nesting levels: a C
   * buffer, then userdata at ENC_KEYS */
  json_key_t *keys;
  size_t nkeys, kcap;
  int pretty;
} encoder_t;

static void
out_grow(encoder_t *E, size_t n)
{
  size_t cap = E->cap * 2 > E->len + n ? E->cap * 2 : E->len + n;
  char *b = lua_newuserdata(E->L, cap);
  memcpy(b, E->b, E->len);
  lua_replace(E->L, ENC_OUT);
  E->b = b;
  E->cap = cap;
}

static inline char *
out_reserve(encoder_t *E, size_t n)
{
  if (E->cap - E->len < n)
    out_grow(E, n);
  return E->b + E->len;
}

static inline void
out_add(encoder_t *E, const char *s, size_t n)
{
  memcpy(out_reserve(E, n), s, n);
  E->len += n;
}

static inline void
out_char(encoder_t *E, char c)
{
  *out_reserve(E, 1) = c;
  E->len++;
}

/* jansson's dump_indent for JSON_INDENT(2) (nothing when compact) */
static inline void
out_indent(encoder_t *E, int depth)
{
  if (!E->pretty)
    return;
  size_t n = 1 + 2 * (size_t) depth;
  char *o = out_reserve(E, n + 8);
  const uint64_t spaces = 0x2020202020202020ull;
  o[0] = '\n';
  for (size_t i = 1; i < n; i += 8)
    memcpy(o + i, &spaces, 8); /* up to 7 bytes too many, overwritten later */
  E->len += n;
}

/* The string, quoted and escaped as jansson's dump_string; -1 when it is
 * not valid UTF-8.  str is a Lua string: str[len] is a NUL. */
static int
out_string(encoder_t *E, const char *str, size_t len)
{
  static const char hex[] = "0123456789ABCDEF";
  const unsigned char *p = (const unsigned char *) str, *end = p + len;
  char *o = out_reserve(E, len + 2);
  p = scan(p, str_class);
  if (p >= end) {
    /* nothing to escape, nor to check (the common case) */
    o[0] = '"';
    memcpy(o + 1, str, len);
    o[len + 1] = '"';
    E->len += len + 2;
    return 0;
  }
  *o = '"';
  E->len++;
  p = (const unsigned char *) str;
  for (;;) {
    const unsigned char *run = p;
    p = scan(p, str_class);
    if (p > run)
      out_add(E, (const char *) run, (size_t) (p - run));
    if (p >= end)
      break;
    unsigned c = *p;
    if (c >= 0x80) {
      size_t n = utf8_len(p, end);
      if (n == 0)
        return -1;
      out_add(E, (const char *) p, n);
      p += n;
      continue;
    }
    o = out_reserve(E, 6);
    o[0] = '\\';
    switch (c) {
    case '"':
    case '\\':
      o[1] = (char) c;
      break;
    case '\b':
      o[1] = 'b';
      break;
    case '\f':
      o[1] = 'f';
      break;
    case '\n':
      o[1] = 'n';
      break;
    case '\r':
      o[1] = 'r';
      break;
    case '\t':
      o[1] = 't';
      break;
    default:
      memcpy(o + 1, "u00", 3);
      o[4] = hex[c >> 4];
      o[5] = hex[c & 15];
      E->len += 4;
    }
    E->len += 2;
    p++;
  }
  out_char(E, '"');
  return 0;
}

static void
out_number(encoder_t *E, double d)
{
  char buf[64];
  if (d == floor(d) && fabs(d) < 9007199254740992.0) {
    /* jansson's JSON_INTEGER: "%lld" */
    int64_t v = (int64_t) d;
    uint64_t u = v < 0 ? 0 - (uint64_t) v : (uint64_t) v;
    char *q = buf + sizeof buf;
    do {
      *--q = (char) ('0' + u % 10);
      u /= 10;
    } while (u);
    if (v < 0)
      *--q = '-';
    out_add(E, q, (size_t) (buf + sizeof buf - q));
    return;
  }
  /* jansson's jsonp_dtostr(precision 17) */
  locale_t old = c_locale ? uselocale(c_locale) : (locale_t) 0;
  int n = snprintf(buf, sizeof buf - 3, "%.17g", d);
  if (old)
    uselocale(old);
  if (n < 0 || n >= (int) sizeof buf - 3)
    n = 0;
  if (!memchr(buf, '.', (size_t) n) && !memchr(buf, 'e', (size_t) n)) {
    memcpy(buf + n, ".0", 3);
    n += 2;
  }
  char *e = memchr(buf, 'e', (size_t) n);
  if (e) {
    /* drop the exponent's '+' and leading zeros: e+300 -> e300, e-05 -> e-5 */
    char *start = e + 1, *q = e + 2;
    if (*start == '-')
      start++;
    while (*q == '0')
      q++;
    if (q != start) {
      memmove(start, q, (size_t) (buf + n - q));
      n -= (int) (q - start);
    }
  }
  out_add(E, buf, (size_t) n);
}

/* is_array: a table with core.array_mt (of length #t), or a non-empty
 * sequence with no other keys. */
static int
is_array(lua_State *L, int idx, size_t *n)
{
  if (lua_getmetatable(L, idx)) {
    int eq = lua_rawequal(L, -1, ENC_ARRAY_MT);
    lua_pop(L, 1);
    if (eq) {
      *n = lua_objlen(L, idx);
      return 1;
    }
  }
  size_t len = lua_objlen(L, idx);
  if (len == 0)
    return 0;
  /* a sequence with no other keys */
  size_t count = 0;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    count++;
    lua_pop(L, 1);
  }
  *n = len;
  return count == len;
}

static int
key_cmp(const json_key_t *a, const json_key_t *b)
{
  int r = memcmp(a->s, b->s, a->len < b->len ? a->len : b->len);
  return r != 0 ? r : (a->len > b->len) - (a->len < b->len);
}

static int
key_qcmp(const void *a, const void *b)
{
  return key_cmp(a, b);
}

static void
keys_push(encoder_t *E, const char *s, size_t len, int slot)
{
  if (E->nkeys == E->kcap) {
    size_t cap = E->kcap * 2;
    json_key_t *k = lua_newuserdata(E->L, cap * sizeof *k);
    memcpy(k, E->keys, E->nkeys * sizeof *k);
    lua_replace(E->L, ENC_KEYS);
    E->keys = k;
    E->kcap = cap;
  }
  json_key_t *k = &E->keys[E->nkeys++];
  k->s = s;
  k->len = len;
  k->slot = slot;
}

/* Stack slots an object's keys and values may take (LuaJIT allows 8000 to
 * a C function, LUAI_MAXCSTACK): beyond, values are looked up by key. */
#define PAIRS_STACK_MAX 4000

static int encode_value(encoder_t *E, int idx, int depth);

static int
encode_table(encoder_t *E, int idx, int depth)
{
  lua_State *L = E->L;
  size_t n;
  luaL_checkstack(L, 4, "json nesting");
  if (is_array(L, idx, &n)) {
    if (n == 0) {
      out_add(E, "[]", 2);
      return 0;
    }
    out_char(E, '[');
    out_indent(E, depth + 1);
    for (size_t i = 1; i <= n; i++) {
      lua_rawgeti(L, idx, (int) i);
      int rc = encode_value(E, lua_gettop(L), depth + 1);
      lua_pop(L, 1);
      if (rc < 0)
        return -1;
      if (i < n) {
        out_char(E, ',');
        out_indent(E, depth + 1);
      } else {
        out_indent(E, depth);
      }
    }
    out_char(E, ']');
    return 0;
  }
  /* An object: its keys and values onto the stack, the keys also into
   * E->keys, sorted, then the values in that order.  The strings stay
   * anchored by the table, which cannot change: no Lua code runs. */
  int base = lua_gettop(L), room = 0;
  size_t kbase = E->nkeys;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    if (lua_type(L, -2) != LUA_TSTRING)
      return -1;
    size_t len;
    const char *k = lua_tolstring(L, -2, &len);
    if (room < 2)
      room = lua_gettop(L) < PAIRS_STACK_MAX && lua_checkstack(L, 64) ? 64 : 0;
    if (room >= 2) {
      keys_push(E, k, len, lua_gettop(L));
      lua_pushvalue(L, -2); /* keep k and v, go on from k */
      room -= 2;
    } else {
      keys_push(E, k, len, 0);
      lua_pop(L, 1);
    }
  }
  size_t count = E->nkeys - kbase;
  if (count == 0) {
    out_add(E, "{}", 2);
    return 0;
  }
  json_key_t *keys = E->keys + kbase;
  if (count <= 16) {
    for (size_t i = 1; i < count; i++) {
      json_key_t k = keys[i];
      size_t j = i;
      for (; j > 0 && key_cmp(&keys[j - 1], &k) > 0; j--)
        keys[j] = keys[j - 1];
      keys[j] = k;
    }
  } else {
    qsort(keys, count, sizeof *keys, key_qcmp);
  }
  out_char(E, '{');
  out_indent(E, depth + 1);
  for (size_t i = 0; i < count; i++) {
    /* nested objects may move E->keys */
    json_key_t k = E->keys[kbase + i];
    int rc;
    if (out_string(E, k.s, k.len) < 0)
      return -1;
    if (E->pretty)
      out_add(E, ": ", 2);
    else
      out_char(E, ':');
    if (k.slot) {
      rc = encode_value(E, k.slot, depth + 1);
    } else {
      lua_pushlstring(L, k.s, k.len);
      lua_rawget(L, idx);
      rc = encode_value(E, lua_gettop(L), depth + 1);
      lua_pop(L, 1);
    }
    if (rc < 0)
      return -1;
    if (i + 1 < count) {
      out_char(E, ',');
      out_indent(E, depth + 1);
    } else {
      out_indent(E, depth);
    }
  }
  out_char(E, '}');
  E->nkeys = kbase;
  lua_settop(L, base);
  return 0;
}

/* Appends the value at (absolute) idx; -1 when it cannot be encoded, the
 * reason then comes from encode_error(). */
static int
encode_value(encoder_t *E, int idx, int depth)
{
  lua_State *L = E->L;
  if (depth > JSON_MAX_DEPTH)
    return -1;
  switch (lua_type(L, idx)) {
  case LUA_TNIL:
    out_add(E, "null", 4);
    return 0;
  case LUA_TLIGHTUSERDATA:
    if (lua_touserdata(L, idx) != NULL)
      return -1;
    out_add(E, "null", 4);
    return 0;
  case LUA_TBOOLEAN:
    if (lua_toboolean(L, idx))
      out_add(E, "true", 4);
    else
      out_add(E, "false", 5);
    return 0;
  case LUA_TNUMBER: {
    double d = lua_tonumber(L, idx);
    if (isnan(d) || isinf(d))
      return -1;
    out_number(E, d);
    return 0;
  }
  case LUA_TSTRING: {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    return out_string(E, s, len);
  }
  case LUA_TTABLE:
    return encode_table(E, idx, depth);
  default:
    return -1;
  }
}

static int
utf8_valid(const char *str, size_t len)
{
  const unsigned char *p = (const unsigned char *) str, *end = p + len;
  while (p < end) {
    if (*p < 0x80) {
      p++;
    } else {
      size_t n = utf8_len(p, end);
      if (n == 0)
        return 0;
      p += n;
    }
  }
  return 1;
}

/* Why the value at idx cannot be encoded: the first problem in the order
 * the jansson-based encoder met them (tables in lua_next order), so the
 * message is the one it gave.  NULL when there is none. */
static const char *
encode_error(lua_State *L, int idx, int depth)
{
  if (depth > JSON_MAX_DEPTH)
    return "nesting too deep";
  switch (lua_type(L, idx)) {
  case LUA_TNIL:
  case LUA_TBOOLEAN:
    return NULL;
  case LUA_TLIGHTUSERDATA:
    return lua_touserdata(L, idx) == NULL ? NULL : "cannot encode userdata";
  case LUA_TNUMBER: {
    double d = lua_tonumber(L, idx);
    return isnan(d) || isinf(d) ? "cannot encode NaN or infinity" : NULL;
  }
  case LUA_TSTRING: {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    return utf8_valid(s, len) ? NULL : "string is not valid UTF-8";
  }
  case LUA_TTABLE: {
    const char *why;
    size_t n;
    luaL_checkstack(L, 4, "json nesting");
    if (is_array(L, idx, &n)) {
      for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, (int) i);
        why = encode_error(L, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
        if (why)
          return why;
      }
      return NULL;
    }
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
      if (lua_type(L, -2) != LUA_TSTRING) {
        lua_pop(L, 2);
        return "object keys must be strings";
      }
      why = encode_error(L, lua_gettop(L), depth + 1);
      if (!why) {
        size_t len;
        const char *k = lua_tolstring(L, -2, &len);
        if (!utf8_valid(k, len))
          why = "string is not valid UTF-8";
      }
      if (why) {
        lua_pop(L, 2);
        return why;
      }
      lua_pop(L, 1);
    }
    return NULL;
  }
  default:
    return "cannot encode this Lua type";
  }
}

/* json_encode(value, {pretty=bool}) -> string; raises on unencodable input */
static int
l_json_encode(lua_State *L)
{
  luaL_checkany(L, 1);
  int pretty = lua_istable(L, 2) ? crater__lua_opt_field_bool(L, 2, "pretty", 0) : 0;
  char out[16384];
  json_key_t keys[64];
  encoder_t E = {
    .L = L,
    .b = out,
    .cap = sizeof out,
    .keys = keys,
    .kcap = sizeof keys / sizeof keys[0],
    .pretty = pretty,
  };
  lua_settop(L, ENC_VALUE);
  lua_pushnil(L); /* ENC_OUT */
  lua_pushnil(L); /* ENC_KEYS */
  lua_rawgeti(L, LUA_REGISTRYINDEX, array_mt_ref);
  if (encode_value(&E, ENC_VALUE, 0) < 0) {
    lua_settop(L, ENC_ARRAY_MT);
    const char *why = encode_error(L, ENC_VALUE, 0);
    return luaL_argerror(L, 1, why ? why : "cannot encode");
  }
  lua_pushlstring(L, E.b, E.len);
  return 1;
}

void
crater__lua_open_json(lua_State *L)
{
  static const luaL_Reg fns[] = {
    { "json_decode", l_json_decode },
    { "json_encode", l_json_encode },
    { NULL, NULL },
  };
  luaL_register(L, NULL, fns);
  if (array_mt_ref == LUA_NOREF) {
    lua_newtable(L);
    lua_pushstring(L, "array");
    lua_setfield(L, -2, "__jsontype");
    array_mt_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  /* numbers are read and written in the C locale, as jansson does; should
   * this fail (only out of memory can), the process locale is used: crater
   * never calls setlocale, so that is the C locale too */
  if (c_locale == (locale_t) 0)
    c_locale = newlocale(LC_ALL_MASK, "C", (locale_t) 0);
  lua_rawgeti(L, LUA_REGISTRYINDEX, array_mt_ref);
  lua_setfield(L, -2, "array_mt");
  lua_pushlightuserdata(L, NULL);
  lua_setfield(L, -2, "null");
}
