/* core/json.h — the one JSON reader of tsi: jsmn's tokens (strict, parent links) behind a
 * small accessor API. Every JSON input (VCC messages, MapData, request bodies, constants
 * files) goes through here. tsi_json_parse reads a text in one strict pass that writes
 * jsmn's tokens itself, and hands anything that pass does not accept to jsmn and the
 * grammar check below, whose errors stand (the two held equal by a differential test).
 *
 *   tsi_json d;
 *   tsi_jtok stack[256];
 *   if (tsi_json_parse(&d, text, len, stack, 256, &err) < 0) ...   // validated, strict
 *   int core = tsi_json_path(&d, 0, "bsmJson", "coreData", NULL);
 *   double lat; int rc = tsi_json_num(&d, tsi_json_get(&d, core, "lat"), &lat);
 *
 * tsi_json_parse checks the whole text against the JSON grammar (jsmn alone accepts
 * missing or trailing commas, bare words and bad numbers; this module does not), refuses
 * embedded NUL bytes and trailing garbage, and bounds the token count: hostile input
 * costs at most O(len) and never reads outside [text, text+len). Raw control characters
 * and invalid UTF-8 inside strings are refused when a string is read (tsi_json_str), not
 * at parse time (scanning every base64 payload would cost a fifth of a parse).
 *
 * Ownership: tsi_json borrows the text (it must outlive the document) and the token
 * buffer given to it; when `tokens` is NULL or too small and `may_grow` is set in
 * tsi_json_parse_alloc, the module allocates and tsi_json_free() releases (NULL-safe,
 * always safe to call). Token indices are ints; -1 means "absent". Not thread-safe per
 * document; documents are independent. */
#ifndef TSI_CORE_JSON_H
#define TSI_CORE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

/* Layout-identical to jsmntok_t with JSMN_PARENT_LINKS (checked in json.c). */
typedef struct tsi_jtok {
    int type; /* TSI_JSON_* */
    int start, end, size, parent;
} tsi_jtok;

enum {
    TSI_JSON_UNDEFINED = 0,
    TSI_JSON_OBJECT = 1,
    TSI_JSON_ARRAY = 2,
    TSI_JSON_STRING = 3,
    TSI_JSON_PRIMITIVE = 4, /* number, true, false or null */
};

typedef struct tsi_json {
    const char *js;
    size_t len;
    tsi_jtok *tok;
    int ntok;
    tsi_jtok *owned; /* heap tokens, freed by tsi_json_free */
} tsi_json;

/* Largest text accepted (bytes) and largest token count for tsi_json_parse_alloc. */
#define TSI_JSON_MAX_LEN  (256u * 1024u * 1024u)
#define TSI_JSON_MAX_TOKS (16 * 1024 * 1024)

/* Parses js[0..len) into the caller's token buffer (cap tokens). Returns the token count
 * (>= 1) or TSI_E_JSON (malformed), TSI_E_JSON_TRUNCATED (input ends early) or
 * TSI_E_TOO_BIG (more than cap tokens). */
int tsi_json_parse(tsi_json *d, const char *js, size_t len, tsi_jtok *tokens, int cap,
                   tsi_error *err);

/* The two ways tsi_json_parse reads a text, exposed for the differential test:
 * tsi_json_parse_fast is one strict pass that writes the tokens jsmn would and returns
 * their count, or -1 when the text is not plainly valid JSON or needs more than cap
 * tokens (no error detail: tsi_json_parse then asks the other); tsi_json_parse_jsmn is
 * jsmn followed by the grammar check, with the error codes documented above. They agree
 * on every text the fast pass accepts. */
int tsi_json_parse_fast(const char *js, size_t len, tsi_jtok *tokens, int cap);
int tsi_json_parse_jsmn(tsi_json *d, const char *js, size_t len, tsi_jtok *tokens, int cap,
                        tsi_error *err);

/* As tsi_json_parse, but allocates exactly the tokens needed (up to max_toks). */
int tsi_json_parse_alloc(tsi_json *d, const char *js, size_t len, int max_toks, tsi_error *err);

void tsi_json_free(tsi_json *d);

/* The small accessors below are inline: the decoders call them a few dozen times a message,
 * and a call each cost a tenth of a BSM's decode (bench/core.sh). */

/* i is a token of d. */
static inline bool tsi_json_valid(const tsi_json *d, int i)
{
    return i >= 0 && i < d->ntok;
}

/* Kind tests; false for i < 0. */
static inline bool tsi_json_is_object(const tsi_json *d, int i)
{
    return tsi_json_valid(d, i) && d->tok[i].type == TSI_JSON_OBJECT;
}
static inline bool tsi_json_is_array(const tsi_json *d, int i)
{
    return tsi_json_valid(d, i) && d->tok[i].type == TSI_JSON_ARRAY;
}
static inline bool tsi_json_is_string(const tsi_json *d, int i)
{
    return tsi_json_valid(d, i) && d->tok[i].type == TSI_JSON_STRING;
}
/* also false for i < 0 */
static inline bool tsi_json_is_null(const tsi_json *d, int i)
{
    return tsi_json_valid(d, i) && d->tok[i].type == TSI_JSON_PRIMITIVE &&
           d->js[d->tok[i].start] == 'n';
}
static inline bool tsi_json_is_number(const tsi_json *d, int i)
{
    if (!tsi_json_valid(d, i) || d->tok[i].type != TSI_JSON_PRIMITIVE)
        return false;
    char c = d->js[d->tok[i].start];
    return c == '-' || (c >= '0' && c <= '9');
}

/* Index of the token after the whole subtree of token i (its next sibling's index; for a
 * key, its value's). A string or primitive is one token; a container is walked linearly
 * (measured faster than galloping + bisection here: the subtrees are small, and the walk
 * reads memory in order). */
static inline int tsi_json_skip(const tsi_json *d, int i)
{
    if (!tsi_json_valid(d, i))
        return -1;
    if (d->tok[i].type != TSI_JSON_OBJECT && d->tok[i].type != TSI_JSON_ARRAY)
        return i + 1;
    int end = d->tok[i].end, j = i + 1;
    while (j < d->ntok && d->tok[j].start < end)
        j++;
    return j;
}

/* Value of key `key` in object `obj`; -1 when obj is not an object or the key is absent.
 * Keys are compared on their raw (escaped) text: our keys have no escapes. */
int tsi_json_get(const tsi_json *d, int obj, const char *key);
/* Follows a NULL-terminated chain of keys from obj. */
int tsi_json_path(const tsi_json *d, int obj, ...) __attribute__((sentinel));

/* Value i of container c is a container that c's closing bracket follows at once: the last
 * member, found without walking its subtree (a message's bsmJson, a frame's last message).
 * With whitespace between them the walk finds the end as before. */
static inline bool tsi_json_last_container(const tsi_json *d, int c, int i)
{
    return tsi_json_valid(d, i) &&
           (d->tok[i].type == TSI_JSON_OBJECT || d->tok[i].type == TSI_JSON_ARRAY) &&
           d->tok[i].end == d->tok[c].end - 1;
}

/* Array walk: first element of array arr (-1 when empty or not an array), and the next
 * element after element i inside arr (-1 at the end). */
static inline int tsi_json_first(const tsi_json *d, int arr)
{
    if (!tsi_json_is_array(d, arr) || d->tok[arr].size == 0)
        return -1;
    return arr + 1;
}
static inline int tsi_json_next(const tsi_json *d, int arr, int i)
{
    if (!tsi_json_valid(d, i) || d->tok[i].parent != arr)
        return -1;
    if (tsi_json_last_container(d, arr, i))
        return -1;
    int j = tsi_json_skip(d, i);
    return (j >= 0 && j < d->ntok && d->tok[j].parent == arr) ? j : -1;
}
/* Object walk: first key token of object obj (its value is key+1), next key. */
static inline int tsi_json_first_key(const tsi_json *d, int obj)
{
    if (!tsi_json_is_object(d, obj) || d->tok[obj].size == 0)
        return -1;
    return obj + 1;
}
static inline int tsi_json_next_key(const tsi_json *d, int obj, int key)
{
    if (!tsi_json_valid(d, key) || d->tok[key].parent != obj)
        return -1;
    if (tsi_json_last_container(d, obj, key + 1))
        return -1;
    int j = tsi_json_skip(d, key + 1);
    return (j >= 0 && j < d->ntok && d->tok[j].parent == obj) ? j : -1;
}
/* Raw key text compare. */
bool tsi_json_key_is(const tsi_json *d, int key, const char *name);

/* Readers. Each returns 0, TSI_E_MISSING when i < 0 or the value is null, TSI_E_TYPE
 * when the token has another kind, TSI_E_RANGE when a number is not finite or (for the
 * integer readers) not an integer in range. */
int tsi_json_num(const tsi_json *d, int i, double *out);
int tsi_json_int64(const tsi_json *d, int i, int64_t *out);
int tsi_json_bool(const tsi_json *d, int i, bool *out);
/* Unescapes a string into buf (NUL-terminated, UTF-8); \u escapes (with surrogate pairs)
 * become UTF-8. TSI_E_TOO_BIG when it does not fit, TSI_E_JSON on a bad escape, an
 * unpaired surrogate, invalid UTF-8 or a raw control character. Returns the byte length
 * on success (>= 0). */
int tsi_json_str(const tsi_json *d, int i, char *buf, size_t cap);
/* Raw (still escaped) bytes of a string or primitive token ("" and 0 when i is none). */
static inline const char *tsi_json_raw(const tsi_json *d, int i, size_t *n)
{
    if (!tsi_json_valid(d, i)) {
        *n = 0;
        return "";
    }
    *n = (size_t)(d->tok[i].end - d->tok[i].start);
    return d->js + d->tok[i].start;
}

/* Reads a number and checks lo <= v <= hi; null → TSI_E_MISSING. On any failure the
 * error names `what` and the value seen. */
int tsi_json_num_range(const tsi_json *d, int i, double lo, double hi, double *out,
                       const char *what, tsi_error *err);

/* Fast decimal-to-double for a JSON number token text (exact for up to 15 significant
 * digits and |exponent| <= 22; otherwise falls back to strtod). The text must already
 * match the JSON number grammar. */
double tsi_json_atof(const char *s, size_t n);

#endif
