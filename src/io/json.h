/* SPDX-License-Identifier: MIT */
/* Internal: a strict JSON subset parser for file headers (safetensors).
 *
 * Accepted: objects, arrays, strings and non-negative integers without
 * sign, fraction or exponent (at most 2^64 - 1, no leading zeros);
 * whitespace is space, tab, CR, LF. Refused: true/false/null, negative or
 * fractional numbers, control characters and invalid UTF-8 in strings,
 * unpaired surrogates, \u0000 (names are C strings), nesting deeper than
 * the caller's cap, more tokens than the caller's cap, anything after the
 * top-level value but whitespace. Every refusal is SDFLOW_E_FORMAT with the
 * byte offset (text offset + base) and the reason.
 *
 * The result is a flat token array in document order (like jsmn): an
 * object token is followed by its members as (key string, value) pairs, an
 * array by its elements; `next` is the index after a token's subtree, so
 * siblings are walked without recursion. One allocation (the tokens, after
 * a counting pass), freed with sdflow__json_free. */
#ifndef SDFLOW_JSON_H
#define SDFLOW_JSON_H

#include "ctx_internal.h"

enum { SDFLOW__JSON_OBJECT = 1, SDFLOW__JSON_ARRAY = 2, SDFLOW__JSON_STRING = 3, SDFLOW__JSON_NUMBER = 4 };

typedef struct sdflow__json_tok {
    int type;
    size_t start, end; /* string: the bytes between the quotes; others: the whole value */
    size_t size;       /* object: members; array: elements; string: decoded length in bytes */
    size_t next;       /* index of the first token after this subtree */
    uint64_t num;      /* number value */
} sdflow__json_tok;

typedef struct sdflow__json {
    sdflow__json_tok *tok;
    size_t ntok;
} sdflow__json;

/* Parses text[0..len) with nesting at most max_depth (top level = 1) and
 * at most max_tokens tokens. base is added to offsets in messages. On
 * failure out is empty (nothing to free). */
sdflow_status sdflow__json_parse(sdflow_ctx *ctx, const char *text, size_t len, size_t base, size_t max_depth,
                                 size_t max_tokens, sdflow__json *out);
void sdflow__json_free(sdflow_ctx *ctx, sdflow__json *j);
/* Decodes string token t (validated by the parser) into buf, which holds
 * t->size + 1 bytes; NUL-terminated. */
void sdflow__json_string(const char *text, const sdflow__json_tok *t, char *buf);
/* 1 when string token t decodes to exactly the C string s. */
int sdflow__json_string_is(const char *text, const sdflow__json_tok *t, const char *s);

#endif
