/* base/jsonw.c — see jsonw.h */
#include "base/jsonw.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void tsi_jsonw_init(tsi_jsonw *w, tsi_buf *out)
{
    memset(w, 0, sizeof *w);
    w->out = out;
    w->first[0] = true;
    w->double_digits = 15;
}

static void sep(tsi_jsonw *w)
{
    if (w->after_key) {
        w->after_key = false;
        return;
    }
    if (!w->first[w->depth])
        tsi_buf_putc(w->out, ',');
    w->first[w->depth] = false;
}

static void open(tsi_jsonw *w, char c)
{
    sep(w);
    tsi_buf_putc(w->out, c);
    if (w->depth < TSI_JSONW_DEPTH - 1)
        w->depth++;
    w->first[w->depth] = true;
    w->close[w->depth] = c == '{' ? '}' : ']';
}

void tsi_jsonw_object(tsi_jsonw *w)
{
    open(w, '{');
}

void tsi_jsonw_array(tsi_jsonw *w)
{
    open(w, '[');
}

void tsi_jsonw_end(tsi_jsonw *w)
{
    if (w->depth == 0)
        return;
    tsi_buf_putc(w->out, w->close[w->depth]);
    w->depth--;
    w->after_key = false;
}

void tsi_json_escape(tsi_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    /* at most 6 output bytes per input byte (\u00XX; U+FFFD is 3 for 1): written in place */
    tsi_buf_reserve(b, n * 6 + 2);
    char *o = b->data + b->len;
    *o++ = '"';
    while (p < end) {
        unsigned char c = *p;
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            *o++ = (char)c;
            p++;
            continue;
        }
        if (c < 0x80) {
            char e = c == '"'    ? '"'
                     : c == '\\' ? '\\'
                     : c == '\n' ? 'n'
                     : c == '\r' ? 'r'
                     : c == '\t' ? 't'
                     : c == '\b' ? 'b'
                     : c == '\f' ? 'f'
                                 : 0;
            *o++ = '\\';
            if (e) {
                *o++ = e;
            } else { /* other controls and DEL */
                *o++ = 'u';
                *o++ = '0';
                *o++ = '0';
                *o++ = hex[c >> 4];
                *o++ = hex[c & 15];
            }
            p++;
            continue;
        }
        /* validate one UTF-8 sequence (no overlongs, no surrogates, <= U+10FFFF) */
        int len = 0;
        uint32_t cp = 0;
        if (c >= 0xc2 && c <= 0xdf)
            len = 2, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
            len = 3, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
            len = 4, cp = c & 0x07;
        bool ok = len > 0 && end - p >= len;
        for (int i = 1; ok && i < len; i++) {
            if ((p[i] & 0xc0) != 0x80)
                ok = false;
            else
                cp = (cp << 6) | (p[i] & 0x3f);
        }
        if (ok && ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
                   (len == 4 && (cp < 0x10000 || cp > 0x10ffff))))
            ok = false;
        if (ok) {
            memcpy(o, p, (size_t)len);
            o += len;
            p += len;
        } else {
            memcpy(o, "\xef\xbf\xbd", 3); /* U+FFFD */
            o += 3;
            p++;
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
    b->data[b->len] = '\0';
}

void tsi_jsonw_key(tsi_jsonw *w, const char *key)
{
    sep(w);
    tsi_json_escape(w->out, key, strlen(key));
    tsi_buf_putc(w->out, ':');
    w->after_key = true;
}

void tsi_jsonw_key_trusted(tsi_jsonw *w, const char *quoted_colon, size_t n)
{
    sep(w);
    tsi_buf_append(w->out, quoted_colon, n);
    w->after_key = true;
}

void tsi_jsonw_strn(tsi_jsonw *w, const char *s, size_t n)
{
    sep(w);
    tsi_json_escape(w->out, s, n);
}

void tsi_jsonw_str(tsi_jsonw *w, const char *s)
{
    if (!s) {
        tsi_jsonw_null(w);
        return;
    }
    tsi_jsonw_strn(w, s, strlen(s));
}

void tsi_jsonw_int(tsi_jsonw *w, int64_t v)
{
    sep(w);
    /* decimal digits without printf (hot in large API bodies); same text as %lld */
    char tmp[24];
    int i = (int)sizeof tmp;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        tmp[--i] = '-';
    tsi_buf_append(w->out, tmp + i, sizeof tmp - (size_t)i);
}

void tsi_jsonw_double(tsi_jsonw *w, double v)
{
    sep(w);
    if (!isfinite(v)) {
        tsi_buf_puts(w->out, "null");
        return;
    }
    if (v == 0)
        v = 0; /* no -0 */
    char tmp[40];
    int n = snprintf(tmp, sizeof tmp, "%.*g", w->double_digits, v);
    tsi_buf_append(w->out, tmp, (size_t)n);
}

void tsi_jsonw_double_fixed(tsi_jsonw *w, double v, int decimals)
{
    sep(w);
    if (!isfinite(v)) {
        tsi_buf_puts(w->out, "null");
        return;
    }
    double scale = pow(10, decimals);
    double r = round(v * scale) / scale;
    if (r == 0)
        r = 0;
    char tmp[64];
    int n = snprintf(tmp, sizeof tmp, "%.*f", decimals, r);
    /* trim trailing zeros after the point: 12.50 -> 12.5, 3.000 -> 3.0 */
    if (decimals > 0) {
        while (n > 2 && tmp[n - 1] == '0' && tmp[n - 2] != '.')
            n--;
    }
    tsi_buf_append(w->out, tmp, (size_t)n);
}

void tsi_jsonw_bool(tsi_jsonw *w, bool v)
{
    sep(w);
    tsi_buf_puts(w->out, v ? "true" : "false");
}

void tsi_jsonw_null(tsi_jsonw *w)
{
    sep(w);
    tsi_buf_puts(w->out, "null");
}

void tsi_jsonw_raw(tsi_jsonw *w, const char *json, size_t n)
{
    sep(w);
    tsi_buf_append(w->out, json, n);
}

void tsi_jsonw_kv_str(tsi_jsonw *w, const char *k, const char *v)
{
    tsi_jsonw_key(w, k);
    tsi_jsonw_str(w, v);
}

void tsi_jsonw_kv_int(tsi_jsonw *w, const char *k, int64_t v)
{
    tsi_jsonw_key(w, k);
    tsi_jsonw_int(w, v);
}

void tsi_jsonw_kv_double(tsi_jsonw *w, const char *k, double v)
{
    tsi_jsonw_key(w, k);
    tsi_jsonw_double(w, v);
}

void tsi_jsonw_kv_bool(tsi_jsonw *w, const char *k, bool v)
{
    tsi_jsonw_key(w, k);
    tsi_jsonw_bool(w, v);
}

void tsi_jsonw_kv_null(tsi_jsonw *w, const char *k)
{
    tsi_jsonw_key(w, k);
    tsi_jsonw_null(w);
}
