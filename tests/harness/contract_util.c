/* tests/harness/contract_util.c — see contract_util.h */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "contract_util.h"

long long cu_days_from_civil(long long y, int m, int d)
{
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    long long yoe = y - era * 400;
    long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void cu_civil(long long z, int *y, int *m, int *d)
{
    z += 719468;
    long long era = (z >= 0 ? z : z - 146096) / 146097;
    long long doe = z - era * 146097;
    long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long long mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

void cu_day_str(char *out, size_t len, long long day)
{
    int y, m, d;
    cu_civil(day, &y, &m, &d);
    snprintf(out, len, "%04d-%02d-%02d", y, m, d);
}

int cu_mdays(int y, int m)
{
    static const int md[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : md[m - 1];
}

int cu_weekday(long long day)
{
    return (int)(((day % 7) + 7 + 3) % 7);
}

bool cu_digits(const char *s, int n, int *v)
{
    *v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        *v = *v * 10 + (s[i] - '0');
    }
    return true;
}

bool cu_parse_date(const char *s, long long *day)
{
    int y, m, d;
    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-' || !cu_digits(s, 4, &y) ||
        !cu_digits(s + 5, 2, &m) || !cu_digits(s + 8, 2, &d))
        return false;
    if (y < 1 || m < 1 || m > 12 || d < 1 || d > cu_mdays(y, m))
        return false;
    if (day)
        *day = cu_days_from_civil(y, m, d);
    return true;
}

bool py39_hh_mm_ss_ff(const char *p, const char *end, int v[4])
{
    v[0] = v[1] = v[2] = v[3] = 0;
    for (int i = 0; i < 3; i++) {
        if (end - p < 2 || !cu_digits(p, 2, &v[i]))
            return false;
        p += 2;
        if (p == end)
            return true;
        char c = *p++;
        if (c == ':') {
            if (p == end)
                return false;
            continue;
        }
        if (c == '.')
            goto frac;
        return false;
    }
    return false; /* "HH:MM:SS:" */
frac:
    if (end - p != 3 && end - p != 6)
        return false;
    if (!cu_digits(p, (int)(end - p), &v[3]))
        return false;
    if (end - p == 3)
        v[3] *= 1000;
    return true;
}

bool py39_fromisoformat(const char *s)
{
    size_t n = strlen(s);
    int y, mo, d;
    /* parse_isoformat_date: 4 digits '-' 2 digits '-' 2 digits */
    if (n < 10 || !cu_digits(s, 4, &y) || s[4] != '-' || !cu_digits(s + 5, 2, &mo) || s[7] != '-' ||
        !cu_digits(s + 8, 2, &d))
        return false;
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > cu_mdays(y, mo))
        return false;
    if (n == 10)
        return true;
    /* one separator character (any; a multi-byte UTF-8 one counts as one) */
    const char *p = s + 10;
    unsigned char c0 = (unsigned char)*p;
    p += (c0 & 0x80) == 0 ? 1 : (c0 & 0xf0) == 0xf0 ? 4 : (c0 & 0xe0) == 0xe0 ? 3 : 2;
    const char *end = s + n;
    if (p >= end)
        return false;
    const char *tz = p;
    while (tz < end && *tz != '+' && *tz != '-')
        tz++;
    int t[4];
    if (!py39_hh_mm_ss_ff(p, tz, t))
        return false;
    if (t[0] > 23 || t[1] > 59 || t[2] > 59)
        return false;
    if (tz == end)
        return true;
    size_t tzlen = (size_t)(end - tz);
    if (tzlen != 6 && tzlen != 9 && tzlen != 16)
        return false;
    int o[4];
    if (!py39_hh_mm_ss_ff(tz + 1, end, o))
        return false;
    /* timezone(timedelta) must be strictly within one day */
    return o[0] <= 23 && o[1] <= 59 && o[2] <= 59;
}

bool cu_date_time(const char *s, int max_sec)
{
    char date[11];
    memcpy(date, s, 10);
    date[10] = '\0';
    int v;
    return cu_parse_date(date, NULL) && s[10] == 'T' && s[13] == ':' && s[16] == ':' &&
           cu_digits(s + 11, 2, &v) && v <= 23 && cu_digits(s + 14, 2, &v) && v <= 59 &&
           cu_digits(s + 17, 2, &v) && v <= max_sec;
}

bool pyd_naive_dt(const char *s)
{
    size_t n = strlen(s);
    int v;
    if ((n != 19 && n != 26) || !cu_date_time(s, 59))
        return false;
    if (n == 26 && (s[19] != '.' || !cu_digits(s + 20, 6, &v) || v == 0))
        return false;
    return py39_fromisoformat(s);
}

bool v2_utc_dt(const char *s)
{
    size_t n = strlen(s);
    if (n < 20 || s[n - 1] != 'Z' || !cu_date_time(s, 60))
        return false;
    if (n == 20)
        return true;
    if (s[19] != '.' || n < 22)
        return false;
    for (size_t i = 20; i < n - 1; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    return true;
}

bool cu_looks_dt(const char *s)
{
    int v;
    return strlen(s) >= 13 && cu_digits(s, 4, &v) && s[4] == '-' && cu_digits(s + 5, 2, &v) &&
           s[7] == '-' && cu_digits(s + 8, 2, &v) && (s[10] == 'T' || s[10] == ' ');
}

void cu_fail(cu_report *r, const char *ptr, const char *fmt, ...)
{
    r->n++;
    if (++r->n_req > 8) {
        if (r->n_req == 9)
            cu_fail(r, "", "(further failures of this request not listed)");
        return;
    }
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char line[4096];
    int k = snprintf(line, sizeof line, "%s%s%s    at %s: %s\n", r->n_req == 1 ? "  " : "",
                     r->n_req == 1 ? r->what : "", r->n_req == 1 ? "\n" : "",
                     ptr && *ptr ? ptr : "(root)", msg);
    if (k < 0)
        return;
    size_t need = r->len + (size_t)k + 1;
    if (need > r->cap) {
        size_t cap = r->cap ? r->cap : 8192;
        while (cap < need)
            cap *= 2;
        char *t = realloc(r->text, cap);
        if (!t)
            return;
        r->text = t;
        r->cap = cap;
    }
    memcpy(r->text + r->len, line, (size_t)k + 1);
    r->len += (size_t)k;
}

size_t cu_push(cu_ctx *c, const char *seg)
{
    size_t old = c->plen;
    int k = snprintf(c->ptr + c->plen, sizeof c->ptr - c->plen, "/%s", seg);
    if (k > 0 && c->plen + (size_t)k < sizeof c->ptr)
        c->plen += (size_t)k;
    return old;
}

void cu_pop(cu_ctx *c, size_t old)
{
    c->plen = old;
    c->ptr[old] = '\0';
}

const char *cu_kind(const tsi_json *d, int t)
{
    if (tsi_json_is_object(d, t))
        return "an object";
    if (tsi_json_is_array(d, t))
        return "a list";
    if (tsi_json_is_string(d, t))
        return "a string";
    if (tsi_json_is_null(d, t))
        return "null";
    if (tsi_json_is_number(d, t))
        return "a number";
    return "a boolean";
}

bool cu_fmt_ok(int fmt, const char *s)
{
    switch (fmt) {
    case X_DT1:
        return pyd_naive_dt(s);
    case X_DT2:
        return v2_utc_dt(s);
    case X_DATE:
        return cu_parse_date(s, NULL);
    case X_DT2_OR_DATE:
        return v2_utc_dt(s) || cu_parse_date(s, NULL);
    case X_AGG:
        return strcmp(s, "1min") == 0 || strcmp(s, "1hour") == 0 || strcmp(s, "1day") == 0 ||
               strcmp(s, "1week") == 0 || strcmp(s, "1month") == 0;
    default:
        return true;
    }
}

const char *cu_fmt_name(int fmt)
{
    switch (fmt) {
    case X_DT1:
        return "a naive datetime YYYY-MM-DDTHH:MM:SS[.ffffff] that Python 3.9 fromisoformat reads";
    case X_DT2:
        return "a UTC instant YYYY-MM-DDTHH:MM:SS[.f]Z";
    case X_DATE:
        return "a date YYYY-MM-DD";
    case X_DT2_OR_DATE:
        return "a date YYYY-MM-DD or a UTC instant ending in Z";
    case X_AGG:
        return "one of 1min|1hour|1day|1week|1month";
    default:
        return "?";
    }
}

void cu_extra_dt(cu_ctx *c, int t, int fmt)
{
    const tsi_json *d = c->d;
    if (tsi_json_is_string(d, t)) {
        char s[256];
        if (tsi_json_str(d, t, s, sizeof s) >= 0 && cu_looks_dt(s) && !cu_fmt_ok(fmt, s))
            cu_fail(c->r, c->ptr, "a datetime \"%s\" outside the shape is not %s", s,
                    cu_fmt_name(fmt));
    } else if (tsi_json_is_array(d, t)) {
        int k = 0;
        for (int i = tsi_json_first(d, t); i >= 0; i = tsi_json_next(d, t, i), k++) {
            char seg[16];
            snprintf(seg, sizeof seg, "%d", k);
            size_t o = cu_push(c, seg);
            cu_extra_dt(c, i, fmt);
            cu_pop(c, o);
        }
    } else if (tsi_json_is_object(d, t)) {
        for (int k = tsi_json_first_key(d, t); k >= 0; k = tsi_json_next_key(d, t, k)) {
            char name[128];
            if (tsi_json_str(d, k, name, sizeof name) < 0)
                continue;
            size_t o = cu_push(c, name);
            cu_extra_dt(c, k + 1, fmt);
            cu_pop(c, o);
        }
    }
}

bool cu_item_fails(cu_ctx *c, int t, const fspec *f)
{
    cu_report scratch = {0};
    cu_ctx s = *c;
    s.r = &scratch;
    cu_check(&s, t, f);
    free(scratch.text);
    return scratch.n > 0;
}

void cu_check(cu_ctx *c, int t, const fspec *f)
{
    const tsi_json *d = c->d;
    if (t < 0) {
        if (!(f->flags & F_OPT))
            cu_fail(c->r, c->ptr, "missing");
        return;
    }
    if (tsi_json_is_null(d, t)) {
        if (!(f->flags & F_NUL))
            cu_fail(c->r, c->ptr, "null, expected %s",
                    f->type == J_STR   ? "a string"
                    : f->type == J_INT ? "an integer"
                    : f->type == J_NUM ? "a number"
                    : f->type == J_ARR ? "a list"
                    : f->type == J_OBJ ? "an object"
                                       : "a value");
        return;
    }
    switch (f->type) {
    case J_ANY:
        return;
    case J_BOOL: {
        bool b;
        if (tsi_json_bool(d, t, &b) < 0)
            cu_fail(c->r, c->ptr, "%s, expected a boolean", cu_kind(d, t));
        return;
    }
    case J_STR: {
        if (!tsi_json_is_string(d, t)) {
            cu_fail(c->r, c->ptr, "%s, expected a string", cu_kind(d, t));
            return;
        }
        char s[1024];
        if (tsi_json_str(d, t, s, sizeof s) < 0) {
            cu_fail(c->r, c->ptr, "an unreadable string");
            return;
        }
        if (f->fmt && !cu_fmt_ok(f->fmt, s))
            cu_fail(c->r, c->ptr, "\"%s\" is not %s", s, cu_fmt_name(f->fmt));
        return;
    }
    case J_INT:
    case J_NUM: {
        double v;
        if (!tsi_json_is_number(d, t) || tsi_json_num(d, t, &v) < 0) {
            cu_fail(c->r, c->ptr, "%s, expected %s", cu_kind(d, t),
                    f->type == J_INT ? "an integer" : "a number");
            return;
        }
        size_t n;
        const char *raw = tsi_json_raw(d, t, &n);
        if (f->type == J_INT &&
            (!raw || memchr(raw, '.', n) || memchr(raw, 'e', n) || memchr(raw, 'E', n))) {
            cu_fail(c->r, c->ptr, "%.*s is not an integer literal", (int)n, raw ? raw : "?");
            return;
        }
        if ((f->flags & F_RNG) && !(v >= f->lo && v <= f->hi))
            cu_fail(c->r, c->ptr, "%.*s is outside [%g, %g]", (int)n, raw ? raw : "?", f->lo,
                    f->hi);
        return;
    }
    case J_ARR: {
        if (!tsi_json_is_array(d, t)) {
            cu_fail(c->r, c->ptr, "%s, expected a list", cu_kind(d, t));
            return;
        }
        /* the first item that fails is listed; the others only counted, in one line */
        int k = 0, bad = 0;
        for (int i = tsi_json_first(d, t); i >= 0; i = tsi_json_next(d, t, i), k++) {
            if (!f->sub)
                continue;
            char seg[16];
            snprintf(seg, sizeof seg, "%d", k);
            size_t o = cu_push(c, seg);
            if (!bad) {
                int n0 = c->r->n;
                cu_check(c, i, f->sub);
                bad = c->r->n > n0;
            } else if (cu_item_fails(c, i, f->sub))
                bad++;
            cu_pop(c, o);
        }
        if (bad > 1)
            cu_fail(c->r, c->ptr, "%d of the %d items fail (the first one is listed)", bad, k);
        if (k == 0 && (f->flags & F_MIN1))
            cu_fail(c->r, c->ptr, "an empty list, expected at least one item");
        return;
    }
    case J_OBJ: {
        if (!tsi_json_is_object(d, t)) {
            cu_fail(c->r, c->ptr, "%s, expected an object", cu_kind(d, t));
            return;
        }
        for (const fspec *m = f->sub; m && m->key; m++) {
            size_t o = cu_push(c, m->key);
            cu_check(c, tsi_json_get(d, t, m->key), m);
            cu_pop(c, o);
        }
        for (int k = tsi_json_first_key(d, t); k >= 0; k = tsi_json_next_key(d, t, k)) {
            bool known = false;
            for (const fspec *m = f->sub; m && m->key && !known; m++)
                known = tsi_json_key_is(d, k, m->key);
            if (known)
                continue;
            char name[128];
            if (tsi_json_str(d, k, name, sizeof name) < 0)
                snprintf(name, sizeof name, "?");
            size_t o = cu_push(c, name);
            if (f->obj & O_CLOSED)
                cu_fail(c->r, c->ptr, "a key the original's response model does not have");
            else if (f->obj & O_DT1)
                cu_extra_dt(c, k + 1, X_DT1);
            else if (f->obj & O_DT2)
                cu_extra_dt(c, k + 1, X_DT2);
            cu_pop(c, o);
        }
        return;
    }
    default:
        return;
    }
}

void cu_check_doc(const tsi_json *d, const fspec *shape, cu_report *r)
{
    cu_ctx c = {.d = d, .r = r};
    cu_check(&c, 0, shape);
}

int cu_at(const tsi_json *d, const char *ptr)
{
    int t = 0;
    const char *p = ptr;
    while (*p == '/' && t >= 0) {
        p++;
        char seg[128];
        size_t n = 0;
        while (*p && *p != '/' && n + 1 < sizeof seg) {
            if (p[0] == '~' && (p[1] == '0' || p[1] == '1')) {
                seg[n++] = p[1] == '0' ? '~' : '/';
                p += 2;
            } else
                seg[n++] = *p++;
        }
        seg[n] = '\0';
        if (tsi_json_is_object(d, t)) {
            t = tsi_json_get(d, t, seg);
        } else if (tsi_json_is_array(d, t)) {
            char *e;
            long k = strtol(seg, &e, 10);
            if (*e || k < 0)
                return -1;
            int i = tsi_json_first(d, t);
            while (i >= 0 && k-- > 0)
                i = tsi_json_next(d, t, i);
            t = i;
        } else
            return -1;
    }
    return *p ? -1 : t;
}

bool cu_at_subindex(const cu_ctx *c)
{
    size_t n = strlen(c->ptr);
    return (n >= 10 && strcmp(c->ptr + n - 10, "/vru_index") == 0) ||
           (n >= 14 && strcmp(c->ptr + n - 14, "/vehicle_index") == 0);
}

void cu_same(cu_ctx *c, const tsi_json *b, int ta, int tb)
{
    const tsi_json *a = c->d;
    /* PostgreSQL's hourly and daily tables keep only the combined index (the rollup issue
     * carries the sub-indices through them): a bin read from them has null sub-indices
     * there, where the archive's minutes give numbers. Both are the contract's (float or
     * null); two numbers must still agree. */
    if (tsi_json_is_null(b, tb) && tsi_json_is_number(a, ta) && cu_at_subindex(c))
        return;
    if (tsi_json_is_object(a, ta) != tsi_json_is_object(b, tb) ||
        tsi_json_is_array(a, ta) != tsi_json_is_array(b, tb) ||
        tsi_json_is_string(a, ta) != tsi_json_is_string(b, tb) ||
        tsi_json_is_null(a, ta) != tsi_json_is_null(b, tb) ||
        tsi_json_is_number(a, ta) != tsi_json_is_number(b, tb)) {
        cu_fail(c->r, c->ptr, "%s here, %s in the PostgreSQL answer", cu_kind(a, ta),
                cu_kind(b, tb));
        return;
    }
    if (tsi_json_is_object(a, ta)) {
        for (int k = tsi_json_first_key(a, ta); k >= 0; k = tsi_json_next_key(a, ta, k)) {
            char name[128];
            if (tsi_json_str(a, k, name, sizeof name) < 0)
                continue;
            size_t o = cu_push(c, name);
            int vb = tsi_json_get(b, tb, name);
            if (vb < 0)
                cu_fail(c->r, c->ptr, "not in the PostgreSQL answer");
            else
                cu_same(c, b, k + 1, vb);
            cu_pop(c, o);
        }
        for (int k = tsi_json_first_key(b, tb); k >= 0; k = tsi_json_next_key(b, tb, k)) {
            char name[128];
            if (tsi_json_str(b, k, name, sizeof name) < 0)
                continue;
            if (tsi_json_get(a, ta, name) < 0) {
                size_t o = cu_push(c, name);
                cu_fail(c->r, c->ptr, "missing (the PostgreSQL answer has it)");
                cu_pop(c, o);
            }
        }
    } else if (tsi_json_is_array(a, ta)) {
        int ia = tsi_json_first(a, ta), ib = tsi_json_first(b, tb), k = 0;
        for (; ia >= 0 && ib >= 0;
             ia = tsi_json_next(a, ta, ia), ib = tsi_json_next(b, tb, ib), k++) {
            char seg[16];
            snprintf(seg, sizeof seg, "%d", k);
            size_t o = cu_push(c, seg);
            cu_same(c, b, ia, ib);
            cu_pop(c, o);
        }
        if (ia >= 0 || ib >= 0)
            cu_fail(c->r, c->ptr, "a list of another length than the PostgreSQL answer's");
    } else if (tsi_json_is_string(a, ta)) {
        char sa[1024], sb[1024];
        if (tsi_json_str(a, ta, sa, sizeof sa) < 0 || tsi_json_str(b, tb, sb, sizeof sb) < 0 ||
            strcmp(sa, sb) != 0)
            cu_fail(c->r, c->ptr, "\"%s\", the PostgreSQL answer has \"%s\"", sa, sb);
    } else if (tsi_json_is_number(a, ta)) {
        double va, vb;
        tsi_json_num(a, ta, &va);
        tsi_json_num(b, tb, &vb);
        if (!(fabs(va - vb) <= 1e-9 * (1 + fabs(vb))))
            cu_fail(c->r, c->ptr, "%.12g, the PostgreSQL answer has %.12g", va, vb);
    }
}

void cu_same_doc(const tsi_json *a, const tsi_json *b, cu_report *r)
{
    cu_ctx c = {.d = a, .r = r};
    cu_same(&c, b, 0, 0);
}
