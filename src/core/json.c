/* core/json.c — see json.h. The only file that compiles jsmn's implementation. */
#define JSMN_STATIC
#define JSMN_STRICT
#define JSMN_PARENT_LINKS
#include <jsmn.h>

#include "core/json.h"

#include <math.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(tsi_jtok) == sizeof(jsmntok_t), "tsi_jtok must mirror jsmntok_t");
_Static_assert(offsetof(tsi_jtok, start) == offsetof(jsmntok_t, start), "layout");
_Static_assert(offsetof(tsi_jtok, end) == offsetof(jsmntok_t, end), "layout");
_Static_assert(offsetof(tsi_jtok, size) == offsetof(jsmntok_t, size), "layout");
_Static_assert(offsetof(tsi_jtok, parent) == offsetof(jsmntok_t, parent), "layout");
_Static_assert((int)TSI_JSON_OBJECT == (int)JSMN_OBJECT && (int)TSI_JSON_ARRAY == (int)JSMN_ARRAY &&
                   (int)TSI_JSON_STRING == (int)JSMN_STRING &&
                   (int)TSI_JSON_PRIMITIVE == (int)JSMN_PRIMITIVE,
               "token kinds");

static inline bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Text span of a token including the quotes of a string. */
static inline int vstart(const tsi_jtok *t)
{
    return t->type == TSI_JSON_STRING ? t->start - 1 : t->start;
}
static inline int vend(const tsi_jtok *t)
{
    return t->type == TSI_JSON_STRING ? t->end + 1 : t->end;
}

/* js[a..b) is whitespace, optionally with exactly one `sep` in it. */
static bool gap_ok(const char *js, int a, int b, char sep)
{
    bool seen = sep == 0;
    for (int k = a; k < b; k++) {
        if (is_ws(js[k]))
            continue;
        if (!seen && js[k] == sep) {
            seen = true;
            continue;
        }
        return false;
    }
    return seen;
}

static bool number_ok(const char *s, int n)
{
    int k = 0;
    if (k < n && s[k] == '-')
        k++;
    if (k >= n)
        return false;
    if (s[k] == '0')
        k++;
    else if (s[k] >= '1' && s[k] <= '9')
        while (k < n && s[k] >= '0' && s[k] <= '9')
            k++;
    else
        return false;
    if (k < n && s[k] == '.') {
        k++;
        int d = k;
        while (k < n && s[k] >= '0' && s[k] <= '9')
            k++;
        if (k == d)
            return false;
    }
    if (k < n && (s[k] == 'e' || s[k] == 'E')) {
        k++;
        if (k < n && (s[k] == '+' || s[k] == '-'))
            k++;
        int d = k;
        while (k < n && s[k] >= '0' && s[k] <= '9')
            k++;
        if (k == d)
            return false;
    }
    return k == n;
}

static bool primitive_ok(const char *s, int n)
{
    switch (s[0]) {
    case 't':
        return n == 4 && memcmp(s, "true", 4) == 0;
    case 'f':
        return n == 5 && memcmp(s, "false", 5) == 0;
    case 'n':
        return n == 4 && memcmp(s, "null", 4) == 0;
    default:
        return number_ok(s, n);
    }
}

/* Strict grammar check over jsmn's tokens: structure, separators, literals, numbers,
 * nothing after the value. Raw control characters inside strings are refused when the
 * string is read (tsi_json_str), not here. */
static int validate(const tsi_json *d, tsi_error *err)
{
    const tsi_jtok *t = d->tok;
    const char *js = d->js;
    int n = d->ntok;
    int stack_last[512];
    int *last = n <= 512 ? stack_last : malloc((size_t)n * sizeof *last);
    int rc = TSI_E_JSON;
    int bad = 0;
    if (last == NULL)
        return tsi_error_set(err, TSI_E_NOMEM, "out of memory validating JSON", NULL);
    for (int i = 0; i < n; i++)
        last[i] = -1;

    if (t[0].parent != -1 || !gap_ok(js, 0, vstart(&t[0]), 0) ||
        !gap_ok(js, vend(&t[0]), (int)d->len, 0)) {
        bad = vend(&t[0]);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        const tsi_jtok *c = &t[i];
        bad = c->start;
        if (c->start < 0 || c->end < c->start || c->end > (int)d->len)
            goto done;
        int p = c->parent;
        if (i > 0 && (p < 0 || p >= i))
            goto done;
        if (c->type == TSI_JSON_PRIMITIVE) {
            if (c->size != 0 || !primitive_ok(js + c->start, c->end - c->start))
                goto done;
        } else if (c->type == TSI_JSON_STRING) {
            /* raw control characters are refused when a string is read (tsi_json_str):
             * scanning every string here (base64 payloads) would cost a fifth of a parse */
        } else if (c->type != TSI_JSON_OBJECT && c->type != TSI_JSON_ARRAY) {
            goto done;
        }
        if (p < 0)
            continue;
        const tsi_jtok *pt = &t[p];
        if (pt->type == TSI_JSON_OBJECT) {
            /* a key: a string with exactly one child, its value, right after it */
            if (c->type != TSI_JSON_STRING || c->size != 1 || i + 1 >= n || t[i + 1].parent != i)
                goto done;
            int from = last[p] < 0 ? pt->start + 1 : last[p];
            if (!gap_ok(js, from, vstart(c), last[p] < 0 ? 0 : ','))
                goto done;
            if (!gap_ok(js, vend(c), vstart(&t[i + 1]), ':'))
                goto done;
            last[p] = vend(&t[i + 1]);
        } else if (pt->type == TSI_JSON_STRING) {
            /* the value of a key: checked with its key; a string value has no children */
            if (c->type == TSI_JSON_STRING && c->size != 0)
                goto done;
        } else if (pt->type == TSI_JSON_ARRAY) {
            if (c->type == TSI_JSON_STRING && c->size != 0)
                goto done;
            int from = last[p] < 0 ? pt->start + 1 : last[p];
            if (!gap_ok(js, from, vstart(c), last[p] < 0 ? 0 : ','))
                goto done;
            last[p] = vend(c);
        } else {
            goto done;
        }
    }
    /* closing gaps: nothing but whitespace between the last child and the bracket */
    for (int i = 0; i < n; i++) {
        if (t[i].type != TSI_JSON_OBJECT && t[i].type != TSI_JSON_ARRAY)
            continue;
        bad = t[i].end;
        int from = last[i] < 0 ? t[i].start + 1 : last[i];
        if (!gap_ok(js, from, t[i].end - 1, 0))
            goto done;
    }
    rc = 0;
done:
    if (last != stack_last)
        free(last);
    if (rc < 0)
        tsi_error_set(err, rc, "malformed JSON", "near byte %d", bad);
    return rc;
}

static int run_jsmn(tsi_json *d, tsi_jtok *tokens, int cap, tsi_error *err)
{
    jsmn_parser p;
    jsmn_init(&p);
    int r = jsmn_parse(&p, d->js, d->len, (jsmntok_t *)tokens, (unsigned)cap);
    if (r == JSMN_ERROR_NOMEM)
        return tsi_error_set(err, TSI_E_TOO_BIG, "JSON has too many tokens", "more than %d", cap);
    if (r == JSMN_ERROR_PART && p.toknext > 0 && tokens[0].end >= 0)
        /* the first value is complete: what follows it is garbage, not a truncation */
        return tsi_error_set(err, TSI_E_JSON, "malformed JSON",
                             "unexpected text after the value at byte %d", tokens[0].end);
    if (r == JSMN_ERROR_PART)
        return tsi_error_set(err, TSI_E_JSON_TRUNCATED, "JSON ends before the value is complete",
                             "%zu bytes", d->len);
    if (r < 0)
        return tsi_error_set(err, TSI_E_JSON, "malformed JSON", "near byte %u", p.pos);
    if (r == 0)
        return tsi_error_set(err, TSI_E_JSON_TRUNCATED, "empty JSON text", NULL);
    d->tok = tokens;
    d->ntok = r;
    return r;
}

static int precheck(tsi_json *d, const char *js, size_t len, tsi_error *err)
{
    memset(d, 0, sizeof *d);
    d->js = js;
    d->len = len;
    if (js == NULL)
        return tsi_error_set(err, TSI_E_JSON_TRUNCATED, "no JSON text", NULL);
    if (len > TSI_JSON_MAX_LEN)
        return tsi_error_set(err, TSI_E_TOO_BIG, "JSON text too large", "%zu bytes", len);
    if (memchr(js, '\0', len) != NULL)
        return tsi_error_set(err, TSI_E_JSON, "malformed JSON", "NUL byte in the text");
    return 0;
}

/* ---- the fast path: one strict pass, tokens as jsmn makes them -------------------------
 *
 * A recursive-descent reading of the JSON grammar that writes the very tokens jsmn
 * (JSMN_STRICT, JSMN_PARENT_LINKS) writes for the same text: containers span their
 * brackets, strings their contents without the quotes, a key has size 1 and is the parent
 * of its value, a container's size counts its elements or keys. It accepts only what jsmn
 * plus validate() accept (strings: jsmn's escape rules, raw bytes left to tsi_json_str;
 * a primitive ends at whitespace, ',', ']' or '}' and must be a JSON literal or number,
 * so a primitive that ends the text is refused, as jsmn refuses it) and gives up (-1) on
 * anything else or when the tokens run out: tsi_json_parse then runs jsmn and validate(),
 * whose answer and error stand. It reads jsmn's tokens in one pass where jsmn's scan and
 * validate() took two; the differential test in test_core_decode holds the two equal. */

static inline bool prim_end(char c)
{
    return c == ',' || c == ']' || c == '}' || is_ws(c);
}

static inline bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* p at the opening quote; returns the closing quote's position, or NULL. Plain bytes are
 * skipped 16 at a time (SSE2, part of every x86-64; elsewhere a byte loop): only '"', '\\'
 * and NUL stop the scan, and they are then handled one by one as before. */
static inline __attribute__((always_inline)) const char *scan_string(const char *p, const char *end)
{
#ifdef __SSE2__
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'),
                  nul = _mm_setzero_si128();
#endif
    for (p++;;) {
#ifdef __SSE2__
        while (end - p >= 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
            __m128i hit =
                _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
                             _mm_cmpeq_epi8(v, nul));
            unsigned m = (unsigned)_mm_movemask_epi8(hit);
            if (m) {
                p += __builtin_ctz(m);
                goto special;
            }
            p += 16;
        }
#endif
        while (p < end && *p != '"' && *p != '\\' && *p != '\0')
            p++;
        if (p >= end)
            return NULL;
#ifdef __SSE2__
    special:
#endif
        if (*p == '"')
            return p;
        if (*p == '\0') /* jsmn stops at a NUL byte */
            return NULL;
        /* a backslash */
        if (++p >= end)
            return NULL;
        switch (*p) {
        case '"':
        case '/':
        case '\\':
        case 'b':
        case 'f':
        case 'r':
        case 'n':
        case 't':
            break;
        case 'u':
            if (end - p < 5 || !is_hex(p[1]) || !is_hex(p[2]) || !is_hex(p[3]) || !is_hex(p[4]))
                return NULL;
            p += 4;
            break;
        default:
            return NULL;
        }
        p++;
    }
}

static inline bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* p at the first byte of a primitive; returns the byte after it when the primitive is a JSON
 * literal or number followed by a byte that ends a primitive (the text must not end there,
 * as jsmn refuses a primitive at the end), else NULL. One pass: the same set of texts as
 * scanning to the end byte and then checking primitive_ok, without reading it twice. */
static inline const char *scan_primitive(const char *p, const char *end)
{
    const char *q = p;
    switch (*p) {
    case 't':
        if (end - p < 5 || memcmp(p, "true", 4) != 0)
            return NULL;
        q = p + 4;
        break;
    case 'f':
        if (end - p < 6 || memcmp(p, "false", 5) != 0)
            return NULL;
        q = p + 5;
        break;
    case 'n':
        if (end - p < 5 || memcmp(p, "null", 4) != 0)
            return NULL;
        q = p + 4;
        break;
    default:
        if (*q == '-' && ++q >= end)
            return NULL;
        if (*q == '0')
            q++;
        else if (*q >= '1' && *q <= '9')
            for (q++; q < end && is_digit(*q); q++)
                ;
        else
            return NULL;
        if (q < end && *q == '.') {
            const char *d = ++q;
            while (q < end && is_digit(*q))
                q++;
            if (q == d)
                return NULL;
        }
        if (q < end && (*q == 'e' || *q == 'E')) {
            if (++q < end && (*q == '+' || *q == '-'))
                q++;
            const char *d = q;
            while (q < end && is_digit(*q))
                q++;
            if (q == d)
                return NULL;
        }
        break;
    }
    return q < end && prim_end(*q) ? q : NULL;
}

int tsi_json_parse_fast(const char *js, size_t len, tsi_jtok *t, int cap)
{
    if (js == NULL || len > TSI_JSON_MAX_LEN || cap < 1)
        return -1;
    const char *p = js, *end = js + len;
    int n = 0;
    int cur = -1;    /* the innermost open object or array */
    int parent = -1; /* the parent of the next value: cur, or the key it belongs to */
    while (p < end && is_ws(*p))
        p++;
value:
    if (p >= end || n >= cap)
        return -1;
    {
        tsi_jtok *k = &t[n];
        k->parent = parent;
        k->size = 0;
        k->start = (int)(p - js);
        if (parent >= 0)
            t[parent].size++;
        switch (*p) {
        case '{':
        case '[':
            k->type = *p == '{' ? TSI_JSON_OBJECT : TSI_JSON_ARRAY;
            k->end = -1;
            cur = n++;
            for (p++; p < end && is_ws(*p); p++)
                ;
            if (p < end && *p == (k->type == TSI_JSON_OBJECT ? '}' : ']'))
                goto close;
            if (k->type == TSI_JSON_OBJECT)
                goto key;
            parent = cur;
            goto value;
        case '"': {
            const char *q = scan_string(p, end);
            if (q == NULL)
                return -1;
            k->type = TSI_JSON_STRING;
            k->start++;
            k->end = (int)(q - js);
            n++;
            p = q + 1;
            goto after;
        }
        default: {
            const char *q = scan_primitive(p, end);
            if (q == NULL)
                return -1;
            k->type = TSI_JSON_PRIMITIVE;
            k->end = (int)(q - js);
            n++;
            p = q;
            goto after;
        }
        }
    }
key:
    if (p >= end || *p != '"' || n >= cap)
        return -1;
    {
        const char *q = scan_string(p, end);
        if (q == NULL)
            return -1;
        tsi_jtok *k = &t[n];
        k->type = TSI_JSON_STRING;
        k->start = (int)(p - js) + 1;
        k->end = (int)(q - js);
        k->size = 0;
        k->parent = cur;
        t[cur].size++;
        parent = n++;
        for (p = q + 1; p < end && is_ws(*p); p++)
            ;
        if (p >= end || *p != ':')
            return -1;
        for (p++; p < end && is_ws(*p); p++)
            ;
        goto value;
    }
after:
    while (p < end && is_ws(*p))
        p++;
    if (cur < 0)
        return p == end ? n : -1;
    if (p >= end)
        return -1;
    if (*p == ',') {
        for (p++; p < end && is_ws(*p); p++)
            ;
        if (t[cur].type == TSI_JSON_OBJECT)
            goto key;
        parent = cur;
        goto value;
    }
    if (*p != (t[cur].type == TSI_JSON_OBJECT ? '}' : ']'))
        return -1;
close:
    t[cur].end = (int)(p - js) + 1;
    p++;
    {
        int up = t[cur].parent;
        if (up >= 0 && t[up].type == TSI_JSON_STRING)
            up = t[up].parent;
        cur = up;
    }
    goto after;
}

int tsi_json_parse_jsmn(tsi_json *d, const char *js, size_t len, tsi_jtok *tokens, int cap,
                        tsi_error *err)
{
    int rc = precheck(d, js, len, err);
    if (rc < 0)
        return rc;
    rc = run_jsmn(d, tokens, cap, err);
    if (rc < 0)
        return rc;
    rc = validate(d, err);
    if (rc < 0) {
        d->ntok = 0;
        return rc;
    }
    return d->ntok;
}

int tsi_json_parse(tsi_json *d, const char *js, size_t len, tsi_jtok *tokens, int cap,
                   tsi_error *err)
{
    /* no NUL scan first: the fast pass refuses a NUL byte wherever it is (not whitespace,
     * structure, a literal or a number; scan_string stops on it) */
    memset(d, 0, sizeof *d);
    d->js = js;
    d->len = len;
    int n = tsi_json_parse_fast(js, len, tokens, cap);
    if (n > 0) {
        d->tok = tokens;
        d->ntok = n;
        return n;
    }
    /* not plainly valid, or too many tokens: jsmn and the grammar check say what */
    return tsi_json_parse_jsmn(d, js, len, tokens, cap, err);
}

int tsi_json_parse_alloc(tsi_json *d, const char *js, size_t len, int max_toks, tsi_error *err)
{
    int rc = precheck(d, js, len, err);
    if (rc < 0)
        return rc;
    if (max_toks <= 0 || max_toks > TSI_JSON_MAX_TOKS)
        max_toks = TSI_JSON_MAX_TOKS;
    /* counting pass (no tokens): an upper bound of what the real pass needs */
    jsmn_parser p;
    jsmn_init(&p);
    int need = jsmn_parse(&p, js, len, NULL, 0);
    if (need == JSMN_ERROR_PART) {
        /* truncated, or garbage after a complete value: a bounded real pass tells which */
        size_t cap = len + 1 < (size_t)max_toks ? len + 1 : (size_t)max_toks;
        if (cap > (1u << 20))
            cap = 1u << 20;
        tsi_jtok *toks = malloc(cap * sizeof *toks);
        if (toks == NULL)
            return tsi_error_set(err, TSI_E_NOMEM, "out of memory parsing JSON", NULL);
        rc = run_jsmn(d, toks, (int)cap, err);
        free(toks);
        d->tok = NULL;
        d->ntok = 0;
        if (rc == TSI_E_TOO_BIG || rc >= 0)
            rc = tsi_error_set(err, TSI_E_JSON_TRUNCATED, "JSON ends before the value is complete",
                               "%zu bytes", len);
        return rc;
    }
    if (need < 0)
        return tsi_error_set(err, TSI_E_JSON, "malformed JSON", "near byte %u", p.pos);
    if (need == 0)
        return tsi_error_set(err, TSI_E_JSON_TRUNCATED, "empty JSON text", NULL);
    if (need > max_toks)
        return tsi_error_set(err, TSI_E_TOO_BIG, "JSON has too many tokens", "%d > %d", need,
                             max_toks);
    tsi_jtok *toks = malloc((size_t)need * sizeof *toks);
    if (toks == NULL)
        return tsi_error_set(err, TSI_E_NOMEM, "out of memory parsing JSON", "%d tokens", need);
    rc = run_jsmn(d, toks, need, err);
    if (rc >= 0)
        rc = validate(d, err);
    if (rc < 0) {
        free(toks);
        d->tok = NULL;
        d->ntok = 0;
        return rc;
    }
    d->owned = toks;
    return d->ntok;
}

void tsi_json_free(tsi_json *d)
{
    if (d == NULL)
        return;
    free(d->owned);
    d->owned = NULL;
    d->tok = NULL;
    d->ntok = 0;
}

bool tsi_json_key_is(const tsi_json *d, int key, const char *name)
{
    if (!tsi_json_valid(d, key))
        return false;
    const tsi_jtok *t = &d->tok[key];
    size_t n = (size_t)(t->end - t->start);
    return strlen(name) == n && memcmp(d->js + t->start, name, n) == 0;
}

int tsi_json_get(const tsi_json *d, int obj, const char *key)
{
    if (!tsi_json_is_object(d, obj))
        return -1;
    size_t kn = strlen(key);
    int n = d->tok[obj].size, k = obj + 1;
    for (int c = 0; c < n && k < d->ntok; c++) {
        const tsi_jtok *t = &d->tok[k];
        if ((size_t)(t->end - t->start) == kn && memcmp(d->js + t->start, key, kn) == 0)
            return k + 1;
        k = tsi_json_skip(d, k + 1);
    }
    return -1;
}

int tsi_json_path(const tsi_json *d, int obj, ...)
{
    va_list ap;
    va_start(ap, obj);
    const char *k;
    while (obj >= 0 && (k = va_arg(ap, const char *)) != NULL)
        obj = tsi_json_get(d, obj, k);
    va_end(ap);
    return obj;
}

static const double pow10tab[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                    1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                    1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

double tsi_json_atof(const char *s, size_t n)
{
    size_t k = 0;
    bool neg = false;
    if (k < n && s[k] == '-') {
        neg = true;
        k++;
    }
    uint64_t m = 0;
    int digits = 0, exp10 = 0;
    while (k < n && s[k] >= '0' && s[k] <= '9') {
        if (digits < 19) {
            m = m * 10 + (uint64_t)(s[k] - '0');
            if (m)
                digits++;
        } else {
            goto slow;
        }
        k++;
    }
    if (k < n && s[k] == '.') {
        k++;
        while (k < n && s[k] >= '0' && s[k] <= '9') {
            if (digits >= 19)
                goto slow;
            m = m * 10 + (uint64_t)(s[k] - '0');
            if (m)
                digits++;
            exp10--;
            k++;
        }
    }
    if (k < n && (s[k] == 'e' || s[k] == 'E')) {
        k++;
        bool eneg = false;
        if (k < n && (s[k] == '+' || s[k] == '-'))
            eneg = s[k++] == '-';
        int e = 0;
        while (k < n && s[k] >= '0' && s[k] <= '9') {
            if (e > 100000)
                goto slow;
            e = e * 10 + (s[k] - '0');
            k++;
        }
        exp10 += eneg ? -e : e;
    }
    if (m > (1ull << 53) || exp10 < -22 || exp10 > 22)
        goto slow;
    {
        double v = (double)m;
        v = exp10 < 0 ? v / pow10tab[-exp10] : v * pow10tab[exp10];
        return neg ? -v : v;
    }
slow : {
    char local[128];
    char *b = n < sizeof local ? local : malloc(n + 1);
    if (b == NULL)
        return NAN;
    memcpy(b, s, n);
    b[n] = '\0';
    double v = strtod(b, NULL);
    if (b != local)
        free(b);
    return v;
}
}

/* The numbers messages carry (a sign, up to 19 characters of digits and one point, no
 * exponent: 38.8012345, -0.58, 118.3) in one loop: the same mantissa and power of ten
 * tsi_json_atof computes, then the same one exact division (a mantissa <= 2^53 and a power
 * <= 10^22 are both exact doubles, so the quotient is the correctly rounded value). Anything
 * else (an exponent, a longer text, a larger mantissa) is tsi_json_atof's, unchanged;
 * test_core_decode holds the two equal over a table of hostile numbers. */
static inline bool num_plain(const char *s, size_t n, double *out)
{
    if (n > 19)
        return false; /* <= 19 digits: the mantissa cannot overflow 64 bits */
    const char *p = s, *e = s + n;
    bool neg = *p == '-';
    p += neg;
    uint64_t m = 0;
    while (p < e && is_digit(*p))
        m = m * 10 + (uint64_t)(*p++ - '0');
    int frac = 0;
    if (p < e && *p == '.') {
        const char *f = ++p;
        while (p < e && is_digit(*p))
            m = m * 10 + (uint64_t)(*p++ - '0');
        frac = (int)(p - f);
    }
    if (p != e || m > (1ull << 53))
        return false;
    double v = frac ? (double)m / pow10tab[frac] : (double)m;
    *out = neg ? -v : v;
    return true;
}

int tsi_json_num(const tsi_json *d, int i, double *out)
{
    if (!tsi_json_valid(d, i) || tsi_json_is_null(d, i))
        return TSI_E_MISSING;
    if (!tsi_json_is_number(d, i))
        return TSI_E_TYPE;
    const tsi_jtok *t = &d->tok[i];
    double v;
    if (!num_plain(d->js + t->start, (size_t)(t->end - t->start), &v))
        v = tsi_json_atof(d->js + t->start, (size_t)(t->end - t->start));
    if (!isfinite(v))
        return TSI_E_RANGE;
    *out = v;
    return 0;
}

int tsi_json_int64(const tsi_json *d, int i, int64_t *out)
{
    if (!tsi_json_valid(d, i) || tsi_json_is_null(d, i))
        return TSI_E_MISSING;
    if (!tsi_json_is_number(d, i))
        return TSI_E_TYPE;
    const tsi_jtok *t = &d->tok[i];
    const char *s = d->js + t->start;
    int n = t->end - t->start, k = 0;
    bool neg = s[0] == '-';
    if (neg)
        k++;
    uint64_t v = 0;
    bool plain = true;
    for (int j = k; j < n; j++) {
        if (s[j] < '0' || s[j] > '9') {
            plain = false;
            break;
        }
        if (v > (UINT64_MAX - 9) / 10)
            return TSI_E_RANGE;
        v = v * 10 + (uint64_t)(s[j] - '0');
    }
    if (plain) {
        if (v > (uint64_t)INT64_MAX)
            return TSI_E_RANGE;
        *out = neg ? -(int64_t)v : (int64_t)v;
        return 0;
    }
    double f = tsi_json_atof(s, (size_t)n);
    if (!isfinite(f) || f != floor(f) || fabs(f) > 9007199254740992.0)
        return TSI_E_RANGE;
    *out = (int64_t)f;
    return 0;
}

int tsi_json_bool(const tsi_json *d, int i, bool *out)
{
    if (!tsi_json_valid(d, i) || tsi_json_is_null(d, i))
        return TSI_E_MISSING;
    if (d->tok[i].type != TSI_JSON_PRIMITIVE)
        return TSI_E_TYPE;
    char c = d->js[d->tok[i].start];
    if (c != 't' && c != 'f')
        return TSI_E_TYPE;
    *out = c == 't';
    return 0;
}

static int hex4(const char *s, unsigned *out)
{
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        char c = s[k];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* Length of the valid UTF-8 sequence at s (n bytes available), 0 when invalid. */
static int utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    int len;
    unsigned cp;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if ((size_t)len > n)
        return 0;
    for (int k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[k] & 0x3F);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    return len;
}

int tsi_json_str(const tsi_json *d, int i, char *buf, size_t cap)
{
    if (cap == 0)
        return TSI_E_TOO_BIG;
    buf[0] = '\0';
    if (!tsi_json_valid(d, i) || tsi_json_is_null(d, i))
        return TSI_E_MISSING;
    if (d->tok[i].type != TSI_JSON_STRING)
        return TSI_E_TYPE;
    const char *s = d->js + d->tok[i].start;
    size_t n = (size_t)(d->tok[i].end - d->tok[i].start), o = 0, k = 0;
    /* the plain printable ASCII prefix (most strings whole) is copied as it is */
    while (k < n && (unsigned char)s[k] >= 0x20 && (unsigned char)s[k] < 0x80 && s[k] != '\\')
        k++;
    if (k > 0) {
        if (k + 1 > cap)
            return TSI_E_TOO_BIG; /* buf[0] is already '\0' */
        memcpy(buf, s, k);
        o = k;
    }
    while (k < n) {
        unsigned char c = (unsigned char)s[k];
        char enc[4];
        size_t elen = 0;
        if (c == '\\') {
            if (k + 1 >= n)
                return TSI_E_JSON;
            char e = s[k + 1];
            k += 2;
            switch (e) {
            case '"':
            case '\\':
            case '/':
                enc[0] = e;
                elen = 1;
                break;
            case 'b':
                enc[0] = '\b';
                elen = 1;
                break;
            case 'f':
                enc[0] = '\f';
                elen = 1;
                break;
            case 'n':
                enc[0] = '\n';
                elen = 1;
                break;
            case 'r':
                enc[0] = '\r';
                elen = 1;
                break;
            case 't':
                enc[0] = '\t';
                elen = 1;
                break;
            case 'u': {
                unsigned cp;
                if (k + 4 > n || hex4(s + k, &cp) < 0)
                    return TSI_E_JSON;
                k += 4;
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    unsigned lo;
                    if (k + 6 > n || s[k] != '\\' || s[k + 1] != 'u' || hex4(s + k + 2, &lo) < 0 ||
                        lo < 0xDC00 || lo > 0xDFFF)
                        return TSI_E_JSON;
                    k += 6;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    return TSI_E_JSON;
                }
                if (cp == 0)
                    return TSI_E_JSON; /* an embedded NUL would truncate C strings */
                if (cp < 0x80) {
                    enc[0] = (char)cp;
                    elen = 1;
                } else if (cp < 0x800) {
                    enc[0] = (char)(0xC0 | (cp >> 6));
                    enc[1] = (char)(0x80 | (cp & 0x3F));
                    elen = 2;
                } else if (cp < 0x10000) {
                    enc[0] = (char)(0xE0 | (cp >> 12));
                    enc[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
                    enc[2] = (char)(0x80 | (cp & 0x3F));
                    elen = 3;
                } else {
                    enc[0] = (char)(0xF0 | (cp >> 18));
                    enc[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
                    enc[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
                    enc[3] = (char)(0x80 | (cp & 0x3F));
                    elen = 4;
                }
                break;
            }
            default:
                return TSI_E_JSON;
            }
        } else if (c < 0x20) {
            return TSI_E_JSON;
        } else {
            int l = utf8_len((const unsigned char *)s + k, n - k);
            if (l == 0)
                return TSI_E_JSON;
            memcpy(enc, s + k, (size_t)l);
            elen = (size_t)l;
            k += (size_t)l;
        }
        if (o + elen + 1 > cap) {
            buf[0] = '\0';
            return TSI_E_TOO_BIG;
        }
        memcpy(buf + o, enc, elen);
        o += elen;
    }
    buf[o] = '\0';
    return (int)o;
}

int tsi_json_num_range(const tsi_json *d, int i, double lo, double hi, double *out,
                       const char *what, tsi_error *err)
{
    int rc = tsi_json_num(d, i, out);
    if (rc == TSI_E_MISSING)
        return tsi_error_set(err, rc, "required field is missing or null", "%s", what);
    if (rc == TSI_E_TYPE) {
        size_t n;
        const char *r = tsi_json_raw(d, i, &n);
        return tsi_error_set(err, rc, "field is not a number", "%s = %.*s", what,
                             (int)(n > 40 ? 40 : n), r);
    }
    if (rc == 0 && (*out < lo || *out > hi))
        rc = TSI_E_RANGE;
    if (rc == TSI_E_RANGE) {
        size_t n;
        const char *r = tsi_json_raw(d, i, &n);
        return tsi_error_set(err, rc, "value out of range", "%s = %.*s (valid %g..%g)", what,
                             (int)(n > 40 ? 40 : n), r, lo, hi);
    }
    return rc;
}
