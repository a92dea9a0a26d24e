/* SPDX-License-Identifier: MIT */
/* The strict JSON subset parser of file headers (json.h). Recursive
 * descent whose recursion is bounded by the caller's depth cap; it runs
 * twice over the text, first counting tokens (no allocation), then filling
 * an array of exactly that many, so a hostile header costs one allocation
 * of at most max_tokens tokens. */
#include <string.h>
#include "json.h"

typedef struct parser {
    sdflow_ctx *ctx;
    const unsigned char *s;
    size_t len, pos, base;
    size_t depth, max_depth;
    size_t ntok, max_tokens;
    sdflow__json_tok *tok; /* NULL in the counting pass */
} parser;

static sdflow_status bad(parser *p, size_t at, const char *why)
{
    return sdflow__fail(p->ctx, SDFLOW_E_FORMAT, "byte %zu: %s", p->base + at, why);
}

static void skip_ws(parser *p)
{
    while (p->pos < p->len &&
           (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' || p->s[p->pos] == '\n' || p->s[p->pos] == '\r'))
        p->pos++;
}

static sdflow_status new_tok(parser *p, int type, size_t *idx)
{
    if (p->ntok >= p->max_tokens)
        return sdflow__fail(p->ctx, SDFLOW_E_FORMAT, "byte %zu: more than %zu JSON values", p->base + p->pos,
                            p->max_tokens);
    *idx = p->ntok++;
    if (p->tok) {
        memset(&p->tok[*idx], 0, sizeof p->tok[*idx]);
        p->tok[*idx].type = type;
        p->tok[*idx].start = p->pos;
    }
    return SDFLOW_OK;
}

static int hex4(const unsigned char *s, unsigned *v)
{
    unsigned x = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = s[i], h;
        if (c >= '0' && c <= '9')
            h = c - '0';
        else if (c >= 'a' && c <= 'f')
            h = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            h = c - 'A' + 10;
        else
            return 0;
        x = x << 4 | h;
    }
    *v = x;
    return 1;
}

static size_t utf8_len(unsigned cp) { return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4; }

/* Length of the valid UTF-8 sequence at s (n bytes available), 0 if invalid:
 * no overlong forms, no surrogates, nothing above U+10FFFF. */
static size_t utf8_valid(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t k;
    unsigned cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        k = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        k = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        k = 4, cp = c & 0x07;
    else
        return 0;
    if (n < k)
        return 0;
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if ((k == 3 && cp < 0x800) || (k == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return k;
}

/* The string at p->pos (its opening quote): validated, decoded length counted. */
static sdflow_status parse_string(parser *p)
{
    size_t idx, open = p->pos;
    sdflow_status st = new_tok(p, SDFLOW__JSON_STRING, &idx);
    if (st)
        return st;
    size_t i = ++p->pos, out = 0;
    for (;;) {
        if (i >= p->len)
            return bad(p, open, "unterminated string");
        unsigned c = p->s[i];
        if (c == '"')
            break;
        if (c < 0x20)
            return bad(p, i, "control character in a string");
        if (c == '\\') {
            if (i + 1 >= p->len)
                return bad(p, i, "unterminated escape");
            unsigned e = p->s[i + 1];
            if (e == 'u') {
                unsigned v, lo;
                if (i + 6 > p->len || !hex4(p->s + i + 2, &v))
                    return bad(p, i, "\\u needs four hex digits");
                i += 6;
                if (v >= 0xdc00 && v <= 0xdfff)
                    return bad(p, i - 6, "unpaired low surrogate");
                if (v >= 0xd800 && v <= 0xdbff) {
                    if (i + 6 > p->len || p->s[i] != '\\' || p->s[i + 1] != 'u' || !hex4(p->s + i + 2, &lo) ||
                        lo < 0xdc00 || lo > 0xdfff)
                        return bad(p, i - 6, "unpaired high surrogate");
                    i += 6;
                    v = 0x10000 + ((v - 0xd800) << 10) + (lo - 0xdc00);
                }
                if (v == 0)
                    return bad(p, i - 6, "\\u0000 in a string");
                out += utf8_len(v);
                continue;
            }
            if (!strchr("\"\\/bfnrt", (int)e) || e == 0)
                return bad(p, i, "unknown escape");
            i += 2;
            out++;
            continue;
        }
        size_t k = utf8_valid(p->s + i, p->len - i);
        if (!k)
            return bad(p, i, "invalid UTF-8 in a string");
        i += k;
        out += k;
    }
    if (p->tok) {
        p->tok[idx].start = open + 1;
        p->tok[idx].end = i;
        p->tok[idx].size = out;
        p->tok[idx].next = idx + 1;
    }
    p->pos = i + 1;
    return SDFLOW_OK;
}

static sdflow_status parse_number(parser *p)
{
    size_t idx, at = p->pos;
    sdflow_status st = new_tok(p, SDFLOW__JSON_NUMBER, &idx);
    if (st)
        return st;
    if (p->s[at] == '-')
        return bad(p, at, "negative numbers are not accepted");
    uint64_t v = 0;
    size_t i = at;
    while (i < p->len && p->s[i] >= '0' && p->s[i] <= '9') {
        unsigned dgt = p->s[i] - '0';
        if (v > (UINT64_MAX - dgt) / 10)
            return bad(p, at, "integer larger than 2^64 - 1");
        v = v * 10 + dgt;
        i++;
    }
    if (i == at)
        return bad(p, at, "expected a value");
    if (p->s[at] == '0' && i > at + 1)
        return bad(p, at, "leading zero in an integer");
    if (i < p->len && (p->s[i] == '.' || p->s[i] == 'e' || p->s[i] == 'E'))
        return bad(p, at, "only integers are accepted (no fraction or exponent)");
    if (p->tok) {
        p->tok[idx].end = i;
        p->tok[idx].num = v;
        p->tok[idx].next = idx + 1;
    }
    p->pos = i;
    return SDFLOW_OK;
}

static sdflow_status parse_value(parser *p);

/* Object or array at p->pos; members of an object are key/value pairs. */
static sdflow_status parse_container(parser *p, int object)
{
    size_t idx, at = p->pos;
    sdflow_status st = new_tok(p, object ? SDFLOW__JSON_OBJECT : SDFLOW__JSON_ARRAY, &idx);
    if (st)
        return st;
    if (++p->depth > p->max_depth)
        return sdflow__fail(p->ctx, SDFLOW_E_FORMAT, "byte %zu: nesting deeper than %zu levels", p->base + at,
                            p->max_depth);
    char close = object ? '}' : ']';
    size_t count = 0;
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
    } else {
        for (;;) {
            skip_ws(p);
            if (object) {
                if (p->pos >= p->len || p->s[p->pos] != '"')
                    return bad(p, p->pos, "expected a string key");
                if ((st = parse_string(p)))
                    return st;
                skip_ws(p);
                if (p->pos >= p->len || p->s[p->pos] != ':')
                    return bad(p, p->pos, "expected ':' after a key");
                p->pos++;
                skip_ws(p);
            }
            if ((st = parse_value(p)))
                return st;
            count++;
            skip_ws(p);
            if (p->pos >= p->len)
                return bad(p, at, object ? "unterminated object" : "unterminated array");
            if (p->s[p->pos] == close) {
                p->pos++;
                break;
            }
            if (p->s[p->pos] != ',')
                return bad(p, p->pos, object ? "expected ',' or '}'" : "expected ',' or ']'");
            p->pos++;
        }
    }
    p->depth--;
    if (p->tok) {
        p->tok[idx].end = p->pos;
        p->tok[idx].size = count;
        p->tok[idx].next = p->ntok;
    }
    return SDFLOW_OK;
}

static sdflow_status parse_value(parser *p)
{
    if (p->pos >= p->len)
        return bad(p, p->pos, "unexpected end of header");
    unsigned c = p->s[p->pos];
    if (c == '{' || c == '[')
        return parse_container(p, c == '{');
    if (c == '"')
        return parse_string(p);
    if (c == '-' || (c >= '0' && c <= '9'))
        return parse_number(p);
    if (c == 't' || c == 'f' || c == 'n')
        return bad(p, p->pos, "true, false and null are not accepted");
    return bad(p, p->pos, "expected a value");
}

static sdflow_status run(parser *p)
{
    p->pos = p->depth = p->ntok = 0;
    sdflow_status st = parse_value(p);
    if (st)
        return st;
    skip_ws(p);
    if (p->pos != p->len)
        return bad(p, p->pos, "data after the top-level value");
    return SDFLOW_OK;
}

sdflow_status sdflow__json_parse(sdflow_ctx *ctx, const char *text, size_t len, size_t base, size_t max_depth,
                                 size_t max_tokens, sdflow__json *out)
{
    out->tok = NULL;
    out->ntok = 0;
    parser p = { .ctx = ctx, .s = (const unsigned char *)text, .len = len, .base = base, .max_depth = max_depth,
                 .max_tokens = max_tokens };
    sdflow_status st = run(&p);
    if (st)
        return st;
    size_t n = p.ntok;
    if (!(p.tok = sdflow__alloc_array(ctx, n, sizeof *p.tok, "JSON tokens")))
        return SDFLOW_E_NOMEM;
    if ((st = run(&p)) || p.ntok != n) { /* same text, same result: cannot fail */
        sdflow__free(ctx, p.tok);
        return st ? st : sdflow__fail(ctx, SDFLOW_E_FORMAT, "internal: JSON passes disagree");
    }
    out->tok = p.tok;
    out->ntok = n;
    return SDFLOW_OK;
}

void sdflow__json_free(sdflow_ctx *ctx, sdflow__json *j)
{
    sdflow__free(ctx, j->tok);
    j->tok = NULL;
    j->ntok = 0;
}

static size_t put_utf8(char *o, unsigned v)
{
    if (v < 0x80) {
        o[0] = (char)v;
        return 1;
    }
    if (v < 0x800) {
        o[0] = (char)(0xc0 | v >> 6);
        o[1] = (char)(0x80 | (v & 0x3f));
        return 2;
    }
    if (v < 0x10000) {
        o[0] = (char)(0xe0 | v >> 12);
        o[1] = (char)(0x80 | (v >> 6 & 0x3f));
        o[2] = (char)(0x80 | (v & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | v >> 18);
    o[1] = (char)(0x80 | (v >> 12 & 0x3f));
    o[2] = (char)(0x80 | (v >> 6 & 0x3f));
    o[3] = (char)(0x80 | (v & 0x3f));
    return 4;
}

void sdflow__json_string(const char *text, const sdflow__json_tok *t, char *buf)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t o = 0;
    for (size_t i = t->start; i < t->end;) {
        if (s[i] != '\\') {
            buf[o++] = (char)s[i++];
            continue;
        }
        unsigned e = s[i + 1];
        if (e == 'u') {
            unsigned v, lo;
            hex4(s + i + 2, &v);
            i += 6;
            if (v >= 0xd800 && v <= 0xdbff) {
                hex4(s + i + 2, &lo);
                i += 6;
                v = 0x10000 + ((v - 0xd800) << 10) + (lo - 0xdc00);
            }
            o += put_utf8(buf + o, v);
            continue;
        }
        static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
        buf[o++] = to[strchr(from, (int)e) - from];
        i += 2;
    }
    buf[o] = '\0';
}

int sdflow__json_string_is(const char *text, const sdflow__json_tok *t, const char *s)
{
    size_t n = strlen(s);
    if (t->type != SDFLOW__JSON_STRING || t->size != n)
        return 0;
    /* the keys compared against have no escapes: an escaped key of the same
     * decoded length is compared after decoding, in a bounded buffer */
    if (t->end - t->start == n)
        return memcmp(text + t->start, s, n) == 0;
    char buf[64];
    if (n >= sizeof buf)
        return 0;
    sdflow__json_string(text, t, buf);
    return strcmp(buf, s) == 0;
}
