/* base/jsonw.h — a JSON writer that is always correct: UTF-8 validated (invalid bytes
 * become U+FFFD), control characters escaped, NaN and Infinity written as null, commas
 * and nesting handled by the writer.
 *
 *   tsi_jsonw w; tsi_jsonw_init(&w, &buf);
 *   tsi_jsonw_object(&w);
 *     tsi_jsonw_key(&w, "id"); tsi_jsonw_int(&w, 7);
 *     tsi_jsonw_kv_str(&w, "name", "US-29 & Nutley");
 *   tsi_jsonw_end(&w);
 *
 * Ownership: the writer borrows the tsi_buf and appends to it. Nesting depth <= 64. */
#ifndef TSI_BASE_JSONW_H
#define TSI_BASE_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define TSI_JSONW_DEPTH 64

typedef struct tsi_jsonw {
    tsi_buf *out;
    int depth;
    bool first[TSI_JSONW_DEPTH]; /* no element yet at this level */
    char close[TSI_JSONW_DEPTH]; /* '}' or ']' closing this level */
    bool after_key;
    int double_digits; /* significant digits for doubles (default 15) */
} tsi_jsonw;

void tsi_jsonw_init(tsi_jsonw *w, tsi_buf *out);
void tsi_jsonw_object(tsi_jsonw *w);
void tsi_jsonw_array(tsi_jsonw *w);
void tsi_jsonw_end(tsi_jsonw *w); /* closes the innermost object or array */
void tsi_jsonw_key(tsi_jsonw *w, const char *key);
void tsi_jsonw_str(tsi_jsonw *w, const char *s); /* NULL -> null */
void tsi_jsonw_strn(tsi_jsonw *w, const char *s, size_t n);
void tsi_jsonw_int(tsi_jsonw *w, int64_t v);
void tsi_jsonw_double(tsi_jsonw *w, double v);                     /* non-finite -> null */
void tsi_jsonw_double_fixed(tsi_jsonw *w, double v, int decimals); /* rounded */
void tsi_jsonw_bool(tsi_jsonw *w, bool v);
void tsi_jsonw_null(tsi_jsonw *w);
/* Inserts pre-encoded JSON (trusted: produced by this writer or PostgreSQL). */
void tsi_jsonw_raw(tsi_jsonw *w, const char *json, size_t n);

void tsi_jsonw_kv_str(tsi_jsonw *w, const char *k, const char *v);
void tsi_jsonw_kv_int(tsi_jsonw *w, const char *k, int64_t v);
void tsi_jsonw_kv_double(tsi_jsonw *w, const char *k, double v);
void tsi_jsonw_kv_bool(tsi_jsonw *w, const char *k, bool v);
void tsi_jsonw_kv_null(tsi_jsonw *w, const char *k);

/* A key that is a string literal needing no escaping (letters, digits, '_'), written
 * without the escaper: TSI_JSONW_KEY(&w, "timestamp"). Hot loops of large answers. */
#define TSI_JSONW_KEY(w, lit) tsi_jsonw_key_trusted((w), "\"" lit "\":", sizeof(lit) + 2)
void tsi_jsonw_key_trusted(tsi_jsonw *w, const char *quoted_colon, size_t n);

/* Appends s as a JSON string literal (with quotes) to b. */
void tsi_json_escape(tsi_buf *b, const char *s, size_t n);

#endif
