/* base/buf.c — see buf.h */
#include "base/buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tsi_buf_grow(tsi_buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) {
        fputs("tsi: out of memory\n", stderr);
        abort();
    }
    b->data = d;
    b->cap = cap;
}

void tsi_buf_append(tsi_buf *b, const void *p, size_t n)
{
    tsi_buf_reserve(b, n);
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void tsi_buf_puts(tsi_buf *b, const char *s)
{
    tsi_buf_append(b, s, strlen(s));
}

void tsi_buf_printf(tsi_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof small) {
        tsi_buf_append(b, small, (size_t)n);
        return;
    }
    tsi_buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void tsi_buf_reset(tsi_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void tsi_buf_free(tsi_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *tsi_buf_take(tsi_buf *b)
{
    if (!b->data)
        tsi_buf_reserve(b, 0), b->data[0] = '\0';
    char *d = b->data;
    b->data = NULL;
    b->len = b->cap = 0;
    return d;
}

const char *tsi_buf_cstr(tsi_buf *b)
{
    return b->data ? b->data : "";
}

char *tsi_read_file(const char *path, size_t *len, size_t max, tsi_error *err)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (f == NULL) {
        tsi_error_set(err, TSI_E_IO, "cannot open file", "%s: %s", path, strerror(errno));
        return NULL;
    }
    tsi_buf b = TSI_BUF_INIT;
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (b.len + n > max) {
            tsi_error_set(err, TSI_E_TOO_BIG, "file too large", "%s: more than %zu bytes", path,
                          max);
            tsi_buf_free(&b);
            if (f != stdin)
                fclose(f);
            return NULL;
        }
        tsi_buf_append(&b, chunk, n);
    }
    bool bad = ferror(f);
    if (f != stdin)
        fclose(f);
    if (bad) {
        tsi_error_set(err, TSI_E_IO, "cannot read file", "%s", path);
        tsi_buf_free(&b);
        return NULL;
    }
    *len = b.len;
    if (b.data == NULL)
        tsi_buf_puts(&b, "");
    return tsi_buf_take(&b);
}
