/*
 * Checks that a text is well-formed JSON without building it: what the
 * metadata store needs to refuse a record whose spec or options are not a
 * JSON object, at a fraction of a full parse (parsing and freeing an 8 kB
 * OCI spec with jansson cost ~1.5 M instructions on every container
 * create; this check ~0.1 M).
 *
 * It accepts exactly what jansson's json_loadb(text, len, JSON_DECODE_ANY,
 * ...) accepts: RFC 8259 with any value at the top level, valid UTF-8 only,
 * no \u0000, surrogate escapes only in pairs, integers within int64 and
 * reals within double range, nesting up to 2048 (jansson's limit);
 * duplicate object keys are allowed.  Numbers are read in the C locale
 * whatever the process's is.  tests/common/test_json_check.c compares the
 * two on many valid and broken texts.
 */
#ifndef CRATER_COMMON_JSON_CHECK_H
#define CRATER_COMMON_JSON_CHECK_H

#include <stdbool.h>
#include <stddef.h>

/* True when s[0..len) is one JSON value (an object when want_object).  On
 * false, *why (static text; may be NULL) says what is wrong and *at (may be
 * NULL) the byte offset where. */
bool crater__json_check(const char *s, size_t len, bool want_object, const char **why, size_t *at);

#endif
