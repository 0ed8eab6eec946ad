/* base/error.h — the one error convention: an int status and a tsi_error beside it.
 *
 * Functions return 0 (or a count) on success and a negative TSI_E_* code on failure,
 * filling the caller's tsi_error (which may be NULL) with a sentence for a person and
 * the detail that was seen. Codes are stable: logs, data_quality_log and API errors
 * use tsi_error_name(code). */
#ifndef TSI_BASE_ERROR_H
#define TSI_BASE_ERROR_H

#include <stddef.h>

enum {
    TSI_OK = 0,
    TSI_E_INVALID = -1,  /* bad argument or configuration value   */
    TSI_E_NOMEM = -2,    /* allocation failed                      */
    TSI_E_IO = -3,       /* file or socket I/O                     */
    TSI_E_DB = -4,       /* database error                         */
    TSI_E_NOTFOUND = -5, /* the thing asked for does not exist     */
    TSI_E_EXISTS = -6,   /* already exists                         */
    TSI_E_PROC = -7,     /* a child process failed                 */
    TSI_E_JSON = -8,     /* malformed JSON                         */
    TSI_E_JSON_TRUNCATED = -9,
    TSI_E_NOT_OBJECT = -10, /* JSON value of the wrong kind           */
    TSI_E_MISSING = -11,    /* a required field is absent or null     */
    TSI_E_RANGE = -12,      /* a value outside its valid range        */
    TSI_E_TYPE = -13,       /* a field of the wrong type              */
    TSI_E_UNKNOWN_TYPE = -14,
    TSI_E_TOO_BIG = -15,     /* input exceeds a limit                  */
    TSI_E_CHECKSUM = -16,    /* stored checksum does not match         */
    TSI_E_UNAVAILABLE = -17, /* a service is not reachable             */
    TSI_E_HTTP = -18,        /* unexpected HTTP status                 */
    TSI_E_AUTH = -19,        /* authentication refused                 */
    TSI_E_TIMEOUT = -20,
    TSI_E_DUPLICATE = -21,
    TSI_E_LATE = -22,      /* message arrived after its window closed */
    TSI_E_UNMATCHED = -23, /* message matches no intersection        */
    TSI_E_PARQUET = -24,   /* DuckDB / Parquet failure               */
    TSI_E_INTERNAL = -25,
    TSI_E_CLOCK_SKEW = -26, /* timestamp too far from the receiver's clock */
    TSI_E__LAST = -27
};

typedef struct tsi_error {
    int code;          /* TSI_E_* (negative) */
    char message[256]; /* one sentence for a person */
    char detail[512];  /* what was seen: value, file and line, SQL state */
} tsi_error;

/* Sets err (NULL-safe) and returns code, so `return tsi_error_set(...)` reads well.
 * detail_fmt may be NULL. */
int tsi_error_set(tsi_error *err, int code, const char *message, const char *detail_fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Stable snake_case name of a code ("json_truncated"); "unknown" for others. */
const char *tsi_error_name(int code);

/* "message: detail" into buf; returns buf. */
const char *tsi_error_str(const tsi_error *err, char *buf, size_t len);
/* Prints "what: message[: detail]" on stderr for a command that gives up; returns 1, the
 * exit status of a failed command. */
int tsi_error_report(const char *what, const tsi_error *err);

#endif
