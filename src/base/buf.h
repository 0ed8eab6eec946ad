/* base/buf.h — a growable byte buffer (always NUL-terminated).
 *
 * Ownership: the buffer owns data; tsi_buf_free() releases it, tsi_buf_take() hands it
 * to the caller (free()). Allocation failure aborts. Not thread-safe. */
#ifndef TSI_BASE_BUF_H
#define TSI_BASE_BUF_H

#include <stddef.h>

#include "base/error.h"

typedef struct tsi_buf {
    char *data; /* NULL until the first append */
    size_t len;
    size_t cap;
} tsi_buf;

#define TSI_BUF_INIT                                                                               \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

/* room for extra more bytes (and the NUL); tsi_buf_grow is its slow path */
void tsi_buf_grow(tsi_buf *b, size_t extra);
static inline void tsi_buf_reserve(tsi_buf *b, size_t extra)
{
    if (b->len + extra + 1 > b->cap)
        tsi_buf_grow(b, extra);
}
void tsi_buf_append(tsi_buf *b, const void *p, size_t n);
void tsi_buf_puts(tsi_buf *b, const char *s);
static inline void tsi_buf_putc(tsi_buf *b, char c)
{
    tsi_buf_reserve(b, 1);
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
}
void tsi_buf_printf(tsi_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void tsi_buf_reset(tsi_buf *b); /* len = 0, keeps memory */
void tsi_buf_free(tsi_buf *b);
char *tsi_buf_take(tsi_buf *b);       /* caller frees; b is reset to empty */
const char *tsi_buf_cstr(tsi_buf *b); /* "" when empty */

/* Reads a whole file ('-' = stdin) of at most max bytes, NUL-terminated; NULL with err
 * set on failure. Caller frees. */
char *tsi_read_file(const char *path, size_t *len, size_t max, tsi_error *err);

#endif
