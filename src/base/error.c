/* base/error.c — see error.h */
#include "base/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int tsi_error_set(tsi_error *err, int code, const char *message, const char *detail_fmt, ...)
{
    if (err == NULL)
        return code;
    err->code = code;
    snprintf(err->message, sizeof err->message, "%s", message ? message : "");
    err->detail[0] = '\0';
    if (detail_fmt) {
        va_list ap;
        va_start(ap, detail_fmt);
        vsnprintf(err->detail, sizeof err->detail, detail_fmt, ap);
        va_end(ap);
    }
    return code;
}

static const char *const names[] = {
    "ok",           "invalid", "nomem",          "io",          "db",       "not_found",  "exists",
    "process",      "json",    "json_truncated", "not_object",  "missing",  "range",      "type",
    "unknown_type", "too_big", "checksum",       "unavailable", "http",     "auth",       "timeout",
    "duplicate",    "late",    "unmatched",      "parquet",     "internal", "clock_skew",
};

const char *tsi_error_name(int code)
{
    int i = -code;
    if (i < 0 || i >= (int)(sizeof names / sizeof names[0]))
        return "unknown";
    return names[i];
}

const char *tsi_error_str(const tsi_error *err, char *buf, size_t len)
{
    if (err->detail[0])
        snprintf(buf, len, "%s: %s", err->message, err->detail);
    else
        snprintf(buf, len, "%s", err->message);
    return buf;
}

int tsi_error_report(const char *what, const tsi_error *err)
{
    char buf[900];
    fprintf(stderr, "%s: %s\n", what, tsi_error_str(err, buf, sizeof buf));
    return 1;
}
