/* tests/integration/openapi_check.h — a small JSON-Schema validator (the subset OpenAPI 3.1
 * documents of tsi use) on core/json.h, and the lookup of a response schema in an OpenAPI
 * document by path, method, status and content type.
 *
 * Keywords checked: type (a name or an array of names; "integer" = a number with an
 * integral value), enum (strings, numbers, true/false/null), properties, required,
 * additionalProperties (false or a schema), items, minimum, maximum, exclusiveMinimum,
 * exclusiveMaximum, minItems, maxItems, allOf, anyOf, oneOf, $ref (local "#/..." pointers,
 * ~0/~1 unescaped), pattern (below). Annotations (description, format, default, title,
 * examples, deprecated) are ignored; any other keyword is reported as unsupported, so a
 * schema never passes because the validator skipped part of it.
 *
 * pattern: JSON Schema says ECMA-262; the text is handed as it is, untranslated, to POSIX
 * regcomp (REG_EXTENDED | REG_NOSUB) and searched (not anchored: write ^ and $) in the
 * decoded string, byte by byte. That is right for the subset where the two dialects agree,
 * which is what the documents use: literal characters; bracket expressions with ranges and
 * ^ negation ([0-9], [^>]); quantifiers * + ? {n} {n,m}; groups ( ) and |; ^ and $ (whole
 * string: no multiline flag in either); an escaped punctuation character (\. \/ \( ...).
 * Refused as unsupported (the schema fails, never silently passes): any escape of a letter or
 * digit (\d \w \s \b \1 \u...), (? groups (lookaround, non-capturing, named), lazy
 * quantifiers (*? +? ?? }?), a backslash inside brackets (literal in POSIX), [] and [^],
 * POSIX classes ([:digit:] [.x.] [=x=]), and a string holding U+0000. One difference stays:
 * an unescaped . matches a line break here and not in ECMA-262 (no document uses it).
 *
 * oa_validate_strict also refuses properties no schema of the object declares.
 * A mismatch fills `err` with "<JSON pointer of the offending value>: <reason>".
 * Header-only (static functions); included by test_openapi.c. */
#ifndef TSI_TEST_OPENAPI_CHECK_H
#define TSI_TEST_OPENAPI_CHECK_H

#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"

typedef struct oa_ctx {
    const tsi_json *sd; /* the schema document (resolves $ref) */
    const tsi_json *vd; /* the value document */
    char ptr[1024];     /* JSON pointer of the value being checked */
    size_t plen;
    char *err;
    size_t errcap;
    bool strict; /* a property no schema of the value declares is an error */
} oa_ctx;

static int oa_fail(oa_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int oa_fail(oa_ctx *c, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(c->err, c->errcap, "%s: %s", c->plen ? c->ptr : "(root)", msg);
    return -1;
}

/* appends "/seg" (escaped per RFC 6901); returns the previous length */
static size_t oa_push(oa_ctx *c, const char *seg, size_t n)
{
    size_t old = c->plen;
    if (c->plen + 1 < sizeof c->ptr)
        c->ptr[c->plen++] = '/';
    for (size_t i = 0; i < n && c->plen + 3 < sizeof c->ptr; i++) {
        if (seg[i] == '~' || seg[i] == '/') {
            c->ptr[c->plen++] = '~';
            c->ptr[c->plen++] = seg[i] == '~' ? '0' : '1';
        } else
            c->ptr[c->plen++] = seg[i];
    }
    c->ptr[c->plen] = '\0';
    return old;
}

static void oa_pop(oa_ctx *c, size_t old)
{
    c->plen = old;
    c->ptr[old] = '\0';
}

/* Token of a local JSON pointer ("#/a/b") in document d, -1 when absent. */
static int oa_resolve(const tsi_json *d, const char *ref)
{
    if (strncmp(ref, "#", 1) != 0)
        return -1;
    const char *p = ref + 1;
    int cur = 0;
    while (*p == '/') {
        p++;
        char seg[256];
        size_t k = 0;
        while (*p && *p != '/' && k + 1 < sizeof seg) {
            if (p[0] == '~' && (p[1] == '0' || p[1] == '1')) {
                seg[k++] = p[1] == '0' ? '~' : '/';
                p += 2;
            } else
                seg[k++] = *p++;
        }
        seg[k] = '\0';
        if (tsi_json_is_array(d, cur)) {
            char *e;
            long ix = strtol(seg, &e, 10);
            if (*e || ix < 0)
                return -1;
            int i = tsi_json_first(d, cur);
            while (i >= 0 && ix-- > 0)
                i = tsi_json_next(d, cur, i);
            cur = i;
        } else
            cur = tsi_json_get(d, cur, seg);
        if (cur < 0)
            return -1;
    }
    return *p ? -1 : cur;
}

/* a true/false literal (boolean schemas, additionalProperties) */
static bool oa_is_bool(const tsi_json *d, int t)
{
    if (t < 0 || t >= d->ntok || d->tok[t].type != TSI_JSON_PRIMITIVE)
        return false;
    size_t n;
    const char *r = tsi_json_raw(d, t, &n);
    return (n == 4 && memcmp(r, "true", 4) == 0) || (n == 5 && memcmp(r, "false", 5) == 0);
}

/* "object" "array" "string" "number" "boolean" "null" of value token v */
static const char *oa_kind(const tsi_json *d, int v)
{
    if (tsi_json_is_object(d, v))
        return "object";
    if (tsi_json_is_array(d, v))
        return "array";
    if (tsi_json_is_string(d, v))
        return "string";
    if (tsi_json_is_null(d, v))
        return "null";
    if (tsi_json_is_number(d, v))
        return "number";
    return "boolean";
}

static bool oa_type_is(const tsi_json *d, int v, const char *t, size_t tn)
{
    const char *k = oa_kind(d, v);
#define T(lit) (tn == sizeof(lit) - 1 && memcmp(t, lit, tn) == 0)
    if (T("integer")) {
        double x;
        return strcmp(k, "number") == 0 && tsi_json_num(d, v, &x) == 0 && x == floor(x);
    }
    return strlen(k) == tn && memcmp(k, t, tn) == 0;
#undef T
}

/* JSON equality of a value (vd, v) and a schema literal (sd, s) for enum */
static bool oa_equal(const tsi_json *vd, int v, const tsi_json *sd, int s)
{
    const char *kv = oa_kind(vd, v), *ks = oa_kind(sd, s);
    if (strcmp(kv, ks) != 0)
        return false;
    if (strcmp(kv, "number") == 0) {
        double a, b;
        return tsi_json_num(vd, v, &a) == 0 && tsi_json_num(sd, s, &b) == 0 && a == b;
    }
    if (strcmp(kv, "string") == 0) {
        static char a[4096], b[4096];
        int na = tsi_json_str(vd, v, a, sizeof a), nb = tsi_json_str(sd, s, b, sizeof b);
        return na >= 0 && na == nb && memcmp(a, b, (size_t)na) == 0;
    }
    if (strcmp(kv, "null") == 0)
        return true;
    if (strcmp(kv, "boolean") == 0) {
        size_t na, nb;
        const char *ra = tsi_json_raw(vd, v, &na), *rb = tsi_json_raw(sd, s, &nb);
        return na == nb && memcmp(ra, rb, na) == 0;
    }
    return false; /* objects/arrays in enums: not used */
}

static int oa_check(oa_ctx *c, int s, int v, int depth);

/* whether schema s (through $ref, allOf, anyOf, oneOf) lists properties at all (*listed)
 * and whether one of them is `name` or additionalProperties admits it */
static bool oa_declares(const tsi_json *sd, int s, const char *name, bool *listed, int depth)
{
    if (depth > 64 || !tsi_json_is_object(sd, s))
        return false;
    int t = tsi_json_get(sd, s, "properties");
    if (t >= 0) {
        *listed = true;
        if (tsi_json_get(sd, t, name) >= 0)
            return true;
    }
    t = tsi_json_get(sd, s, "additionalProperties");
    if (t >= 0) {
        *listed = true;
        size_t n;
        const char *b = tsi_json_raw(sd, t, &n);
        if (!(oa_is_bool(sd, t) && n == 5 && memcmp(b, "false", 5) == 0))
            return true;
    }
    t = tsi_json_get(sd, s, "$ref");
    if (t >= 0) {
        char ref[512];
        if (tsi_json_str(sd, t, ref, sizeof ref) >= 0 &&
            oa_declares(sd, oa_resolve(sd, ref), name, listed, depth + 1))
            return true;
    }
    static const char *const comb[] = {"allOf", "anyOf", "oneOf"};
    for (int k = 0; k < 3; k++) {
        t = tsi_json_get(sd, s, comb[k]);
        for (int i = tsi_json_first(sd, t); i >= 0; i = tsi_json_next(sd, t, i))
            if (oa_declares(sd, i, name, listed, depth + 1))
                return true;
    }
    return false;
}

/* strict mode: every key of object v is declared by schema s (when s lists properties) */
static int oa_undeclared(oa_ctx *c, int s, int v)
{
    if (!c->strict || !tsi_json_is_object(c->vd, v))
        return 0;
    for (int k = tsi_json_first_key(c->vd, v); k >= 0; k = tsi_json_next_key(c->vd, v, k)) {
        size_t n;
        const char *kt = tsi_json_raw(c->vd, k, &n);
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)n, kt);
        bool listed = false;
        if (!oa_declares(c->sd, s, name, &listed, 0) && listed) {
            size_t old = oa_push(c, kt, n);
            oa_fail(c, "property not declared by the schema");
            oa_pop(c, old);
            return -1;
        }
    }
    return 0;
}

static int oa_schema_num(oa_ctx *c, int s, const char *key, double *out, bool *has)
{
    int t = tsi_json_get(c->sd, s, key);
    *has = t >= 0;
    if (t >= 0 && tsi_json_num(c->sd, t, out) != 0)
        return oa_fail(c, "schema keyword %s is not a number", key);
    return 0;
}

/* whether ECMA-262 pattern p lies in the subset POSIX ERE reads alike (see the top);
 * NULL when it does, else what is outside */
static const char *oa_pattern_unsupported(const char *p)
{
    bool in_bracket = false;
    for (size_t i = 0; p[i]; i++) {
        char ch = p[i], nx = p[i + 1];
        if (in_bracket) {
            if (ch == '\\')
                return "a backslash inside brackets";
            if (ch == '[' && (nx == ':' || nx == '.' || nx == '='))
                return "a POSIX class inside brackets";
            if (ch == ']')
                in_bracket = false;
            continue;
        }
        if (ch == '\\') {
            if (!nx || !strchr(".[](){}*+?|^$\\/-", nx))
                return "an escape other than of a punctuation character";
            i++;
        } else if (ch == '[') {
            in_bracket = true;
            size_t k = i + 1;
            if (p[k] == '^')
                k++;
            if (p[k] == ']')
                return "[] or [^]";
            i = k - 1;
        } else if (ch == '(' && nx == '?')
            return "a (? group";
        else if ((ch == '*' || ch == '+' || ch == '?' || ch == '}') && nx == '?')
            return "a lazy quantifier";
    }
    return in_bracket ? "an unclosed bracket" : NULL;
}

/* pattern keyword (token t of schema) against string value v */
static int oa_pattern(oa_ctx *c, int t, int v)
{
    char pat[512];
    if (tsi_json_str(c->sd, t, pat, sizeof pat) < 0)
        return oa_fail(c, "schema keyword pattern is not a string");
    const char *why = oa_pattern_unsupported(pat);
    if (why)
        return oa_fail(c, "pattern %s: %s is outside the supported subset", pat, why);
    size_t rn;
    tsi_json_raw(c->vd, v, &rn); /* the decoded string is no longer than its escaped form */
    char *val = malloc(rn + 1);
    if (!val)
        return oa_fail(c, "out of memory");
    int n = tsi_json_str(c->vd, v, val, rn + 1);
    if (n < 0 || strlen(val) != (size_t)n) {
        free(val);
        return oa_fail(c, "string cannot be matched against pattern %s (bad escape or U+0000)",
                       pat);
    }
    regex_t re;
    int rc = regcomp(&re, pat, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        char msg[128];
        regerror(rc, &re, msg, sizeof msg);
        free(val);
        return oa_fail(c, "pattern %s does not compile: %s", pat, msg);
    }
    rc = regexec(&re, val, 0, NULL, 0);
    regfree(&re);
    if (rc != 0) {
        int r = oa_fail(c, "\"%.80s\" does not match the pattern %s", val, pat);
        free(val);
        return r;
    }
    free(val);
    return 0;
}

static int oa_check(oa_ctx *c, int s, int v, int depth)
{
    const tsi_json *sd = c->sd, *vd = c->vd;
    if (depth > 64)
        return oa_fail(c, "schema nesting deeper than 64 ($ref cycle?)");
    if (oa_is_bool(sd, s)) {
        size_t n;
        tsi_json_raw(sd, s, &n);
        return n == 4 ? 0 : oa_fail(c, "schema false admits no value");
    }
    if (!tsi_json_is_object(sd, s))
        return oa_fail(c, "schema is not an object");
    /* unknown keywords are errors: a schema never passes by being skipped */
    static const char *const known[] = {"type",
                                        "enum",
                                        "properties",
                                        "required",
                                        "additionalProperties",
                                        "items",
                                        "minimum",
                                        "maximum",
                                        "exclusiveMinimum",
                                        "exclusiveMaximum",
                                        "minItems",
                                        "maxItems",
                                        "allOf",
                                        "anyOf",
                                        "oneOf",
                                        "$ref",
                                        "description",
                                        "format",
                                        "default",
                                        "title",
                                        "examples",
                                        "deprecated",
                                        "pattern",
                                        NULL};
    for (int k = tsi_json_first_key(sd, s); k >= 0; k = tsi_json_next_key(sd, s, k)) {
        bool ok = false;
        for (int i = 0; known[i] && !ok; i++)
            ok = tsi_json_key_is(sd, k, known[i]);
        if (!ok) {
            size_t n;
            const char *kt = tsi_json_raw(sd, k, &n);
            return oa_fail(c, "unsupported schema keyword \"%.*s\"", (int)n, kt);
        }
    }
    int t;
    if ((t = tsi_json_get(sd, s, "$ref")) >= 0) {
        char ref[512];
        if (tsi_json_str(sd, t, ref, sizeof ref) < 0)
            return oa_fail(c, "$ref is not a string");
        int target = oa_resolve(sd, ref);
        if (target < 0)
            return oa_fail(c, "$ref %s does not resolve", ref);
        if (oa_check(c, target, v, depth + 1) < 0)
            return -1;
    }
    if ((t = tsi_json_get(sd, s, "type")) >= 0) {
        bool ok = false;
        if (tsi_json_is_string(sd, t)) {
            size_t n;
            const char *tn = tsi_json_raw(sd, t, &n);
            ok = oa_type_is(vd, v, tn, n);
        } else if (tsi_json_is_array(sd, t)) {
            for (int i = tsi_json_first(sd, t); i >= 0 && !ok; i = tsi_json_next(sd, t, i)) {
                size_t n;
                const char *tn = tsi_json_raw(sd, i, &n);
                ok = oa_type_is(vd, v, tn, n);
            }
        } else
            return oa_fail(c, "schema type is neither a string nor an array");
        if (!ok) {
            size_t n;
            const char *tn = tsi_json_raw(sd, t, &n);
            size_t vn;
            const char *vt = tsi_json_raw(vd, v, &vn);
            return oa_fail(c, "is %s (%.*s), schema type %.*s", oa_kind(vd, v),
                           (int)(vn > 60 ? 60 : vn), vt, (int)n, tn);
        }
    }
    if ((t = tsi_json_get(sd, s, "enum")) >= 0) {
        bool ok = false;
        for (int i = tsi_json_first(sd, t); i >= 0 && !ok; i = tsi_json_next(sd, t, i))
            ok = oa_equal(vd, v, sd, i);
        if (!ok) {
            size_t vn;
            const char *vt = tsi_json_raw(vd, v, &vn);
            const char *q = tsi_json_is_string(vd, v) ? "\"" : "";
            return oa_fail(c, "value %s%.*s%s is not in the enum", q, (int)(vn > 60 ? 60 : vn), vt,
                           q);
        }
    }
    if ((t = tsi_json_get(sd, s, "pattern")) >= 0 && tsi_json_is_string(vd, v) &&
        oa_pattern(c, t, v) < 0)
        return -1;
    if (tsi_json_is_number(vd, v)) {
        double x, lim;
        bool has;
        tsi_json_num(vd, v, &x);
        if (oa_schema_num(c, s, "minimum", &lim, &has) < 0)
            return -1;
        if (has && !(x >= lim))
            return oa_fail(c, "%.17g is below the minimum %.17g", x, lim);
        if (oa_schema_num(c, s, "maximum", &lim, &has) < 0)
            return -1;
        if (has && !(x <= lim))
            return oa_fail(c, "%.17g is above the maximum %.17g", x, lim);
        if (oa_schema_num(c, s, "exclusiveMinimum", &lim, &has) < 0)
            return -1;
        if (has && !(x > lim))
            return oa_fail(c, "%.17g is not above the exclusive minimum %.17g", x, lim);
        if (oa_schema_num(c, s, "exclusiveMaximum", &lim, &has) < 0)
            return -1;
        if (has && !(x < lim))
            return oa_fail(c, "%.17g is not below the exclusive maximum %.17g", x, lim);
    }
    if (tsi_json_is_object(vd, v)) {
        if ((t = tsi_json_get(sd, s, "required")) >= 0) {
            for (int i = tsi_json_first(sd, t); i >= 0; i = tsi_json_next(sd, t, i)) {
                char name[256];
                if (tsi_json_str(sd, i, name, sizeof name) < 0)
                    return oa_fail(c, "required entry is not a string");
                if (tsi_json_get(vd, v, name) < 0)
                    return oa_fail(c, "required property \"%s\" is missing", name);
            }
        }
        int props = tsi_json_get(sd, s, "properties");
        int addl = tsi_json_get(sd, s, "additionalProperties");
        for (int k = tsi_json_first_key(vd, v); k >= 0; k = tsi_json_next_key(vd, v, k)) {
            size_t n;
            const char *kt = tsi_json_raw(vd, k, &n);
            char name[256];
            snprintf(name, sizeof name, "%.*s", (int)n, kt);
            int ps = props >= 0 ? tsi_json_get(sd, props, name) : -1;
            int use = ps >= 0 ? ps : addl;
            if (use < 0)
                continue;
            size_t old = oa_push(c, kt, n);
            int rc;
            if (ps < 0 && oa_is_bool(sd, addl)) {
                size_t bn;
                const char *b = tsi_json_raw(sd, addl, &bn);
                rc = (bn == 5 && memcmp(b, "false", 5) == 0)
                         ? oa_fail(c, "property not allowed (additionalProperties false)")
                         : 0;
            } else {
                rc = oa_check(c, use, k + 1, depth + 1);
                if (rc == 0) {
                    oa_pop(c, old);
                    rc = oa_undeclared(c, use, k + 1);
                }
            }
            oa_pop(c, old);
            if (rc < 0)
                return -1;
        }
    }
    if (tsi_json_is_array(vd, v)) {
        int n = 0;
        for (int i = tsi_json_first(vd, v); i >= 0; i = tsi_json_next(vd, v, i))
            n++;
        double lim;
        bool has;
        if (oa_schema_num(c, s, "minItems", &lim, &has) < 0)
            return -1;
        if (has && n < lim)
            return oa_fail(c, "%d items, fewer than minItems %g", n, lim);
        if (oa_schema_num(c, s, "maxItems", &lim, &has) < 0)
            return -1;
        if (has && n > lim)
            return oa_fail(c, "%d items, more than maxItems %g", n, lim);
        if ((t = tsi_json_get(sd, s, "items")) >= 0) {
            int ix = 0;
            for (int i = tsi_json_first(vd, v); i >= 0; i = tsi_json_next(vd, v, i), ix++) {
                char seg[24];
                int sl = snprintf(seg, sizeof seg, "%d", ix);
                size_t old = oa_push(c, seg, (size_t)sl);
                int rc = oa_check(c, t, i, depth + 1);
                oa_pop(c, old);
                if (rc == 0)
                    rc = oa_undeclared(c, t, i);
                if (rc < 0)
                    return -1;
            }
        }
    }
    if ((t = tsi_json_get(sd, s, "allOf")) >= 0) {
        for (int i = tsi_json_first(sd, t); i >= 0; i = tsi_json_next(sd, t, i))
            if (oa_check(c, i, v, depth + 1) < 0)
                return -1;
    }
    const char *const alts[] = {"anyOf", "oneOf"};
    for (int a = 0; a < 2; a++) {
        if ((t = tsi_json_get(sd, s, alts[a])) < 0)
            continue;
        int matched = 0;
        char first_err[600] = "";
        for (int i = tsi_json_first(sd, t); i >= 0; i = tsi_json_next(sd, t, i)) {
            char e[600];
            oa_ctx sub = *c;
            sub.err = e;
            sub.errcap = sizeof e;
            if (oa_check(&sub, i, v, depth + 1) == 0)
                matched++;
            else if (!first_err[0])
                snprintf(first_err, sizeof first_err, "%s", e);
        }
        if (matched == 0)
            return oa_fail(c, "matches no alternative of %s (first: %s)", alts[a], first_err);
        if (a == 1 && matched > 1)
            return oa_fail(c, "matches %d alternatives of oneOf, exactly one expected", matched);
    }
    return 0;
}

/* Validates value token v of vd against schema token s of sd; 0 or -1 with err set. */
static int oa_validate(const tsi_json *sd, int s, const tsi_json *vd, int v, char *err,
                       size_t errcap)
{
    oa_ctx c = {.sd = sd, .vd = vd, .err = err, .errcap = errcap};
    err[0] = '\0';
    return oa_check(&c, s, v, 0);
}

/* As oa_validate, and every property of an object whose schema lists properties must be
 * declared there (through $ref/allOf/anyOf/oneOf): the document describes the whole body,
 * like unevaluatedProperties: false on every such schema. */
static int oa_validate_strict(const tsi_json *sd, int s, const tsi_json *vd, int v, char *err,
                              size_t errcap)
{
    oa_ctx c = {.sd = sd, .vd = vd, .err = err, .errcap = errcap, .strict = true};
    err[0] = '\0';
    if (oa_check(&c, s, v, 0) < 0)
        return -1;
    return oa_undeclared(&c, s, v);
}

/* follows one "$ref" at token t (responses, parameters) */
static int oa_deref(const tsi_json *d, int t)
{
    int r = tsi_json_get(d, t, "$ref");
    if (r < 0)
        return t;
    char ref[512];
    if (tsi_json_str(d, r, ref, sizeof ref) < 0)
        return -1;
    return oa_resolve(d, ref);
}

/* The response object (through one $ref) the document gives for path template `path`,
 * method (lower case) and status ("200"); -1 with err set when it declares none. */
static int oa_response(const tsi_json *d, const char *path, const char *method, const char *status,
                       char *err, size_t errcap)
{
    int paths = tsi_json_get(d, 0, "paths");
    int p = tsi_json_get(d, paths, path);
    if (p < 0) {
        snprintf(err, errcap, "document has no path %s", path);
        return -1;
    }
    int m = tsi_json_get(d, p, method);
    if (m < 0) {
        snprintf(err, errcap, "document has no %s %s", method, path);
        return -1;
    }
    int r = oa_deref(d, tsi_json_get(d, tsi_json_get(d, m, "responses"), status));
    if (r < 0) {
        snprintf(err, errcap, "%s %s does not declare status %s", method, path, status);
        return -1;
    }
    return r;
}

/* The schema token the document gives for path template `path`, method (lower case),
 * status ("200") and content type (media type without parameters); -1 with err set
 * when the document does not declare it. */
static int oa_response_schema(const tsi_json *d, const char *path, const char *method,
                              const char *status, const char *ctype, char *err, size_t errcap)
{
    int r = oa_response(d, path, method, status, err, errcap);
    if (r < 0)
        return -1;
    int ct = tsi_json_get(d, tsi_json_get(d, r, "content"), ctype);
    int sc = tsi_json_get(d, ct, "schema");
    if (sc < 0) {
        snprintf(err, errcap, "%s %s %s declares no schema for content type %s", method, path,
                 status, ctype);
        return -1;
    }
    return sc;
}

/* Validates a text that is not JSON (a header value) as a JSON string against schema s of
 * sd; 0 or -1 with err set. */
__attribute__((unused)) static int oa_validate_text(const tsi_json *sd, int s, const char *text,
                                                    char *err, size_t errcap)
{
    size_t n = strlen(text);
    char *lit = malloc(6 * n + 3);
    if (!lit) {
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    size_t k = 0;
    lit[k++] = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)text[i];
        if (ch == '"' || ch == '\\') {
            lit[k++] = '\\';
            lit[k++] = (char)ch;
        } else if (ch < 0x20)
            k += (size_t)snprintf(lit + k, 7, "\\u%04x", ch);
        else
            lit[k++] = (char)ch;
    }
    lit[k++] = '"';
    lit[k] = '\0';
    tsi_json vd;
    tsi_error e = {0};
    if (tsi_json_parse_alloc(&vd, lit, k, 16, &e) < 0) {
        snprintf(err, errcap, "header value is not text: %s", e.message);
        free(lit);
        return -1;
    }
    int rc = oa_validate(sd, s, &vd, 0, err, errcap);
    tsi_json_free(&vd);
    free(lit);
    return rc;
}

#endif
