/* api/dialect.h — what differs between the two versions of the API, in one place.
 *
 * /api/v1 is the contract of the system tsi replaces (../shared/docs/original-api.md, the
 * FastAPI + pydantic 2 code it names): naive datetimes, 422 with a detail list for
 * invalid parameters, {"detail": text} otherwise, history and stats ids as the path's
 * text, datetimes where the original had them, pandas' bin labels, 404 for an empty
 * window, a list for the history of all intersections. /api/v2 is tsi's own: UTC
 * instants with Z, 400 {detail, code, field}, weeks and months labelled by their start,
 * dates as requested. Handlers never test the version: they ask the request's dialect
 * (tsi_req.dl) how to write a time, a label, a range, a float or an error, and which
 * policy holds. Also the calendar arithmetic both use (UTC civil time, no libc lock).
 *
 * Ownership: the two dialects are static constants; every function writes into the
 * caller's buffer and is pure and thread-safe. */
#ifndef TSI_API_DIALECT_H
#define TSI_API_DIALECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tsi_dialect {
    int version;           /* 1 or 2 */
    const char *prefix;    /* "/api/v1" */
    const char *successor; /* prefix of the version that replaces this one (Link header) */
    bool naive_time;       /* instants as naive UTC "YYYY-MM-DDTHH:MM:SS" (else with Z) */
    bool ids_as_text;      /* history/stats intersection_id: the path's text, a string */
    bool range_datetimes;  /* start_date/end_date/period_*: datetimes (else dates) */
    bool pandas_labels;    /* 1week: the Sunday ending it; 1month: its last day (else start) */
    bool fastapi_errors;   /* 422 detail lists, {"detail": text} (else 400 {detail,code,field}) */
    bool empty_is_404;     /* history and stats of a window without data: 404 */
    bool all_as_list;      /* /safety/history/: a list of histories (else one object) */
    bool minutes_any;      /* 1min over any range and for all intersections (else <= 7 days, one) */
    bool index_complete;   /* the index lists only items whose required fields are numbers */
    bool python_floats;    /* a float field always has a '.' or exponent (pydantic writes 44.0) */
    bool stats_period_data; /* period_start/end: first and last minute with data (else request) */
    bool first_fields;      /* hour_of_day/day_of_week of a bin: its first data (else its start) */
    bool stale_markers;     /* current answers carry age_seconds and stale (v2) */
    bool model_fields;      /* history points and stats carry the model provenance and stats
                               the sub-indices' mean/min/max (v2, issue 26) */
    int one_max_days;       /* one intersection's history: most days in a range (inclusive) */
    int all_max_days;       /* the history of all intersections: most days in a range */
    int all_days_param;     /* the history of all intersections: largest `days` accepted */
    bool all_start_after_end_empty; /* all: start > end answers no histories (else 400) */
} tsi_dialect;

extern const tsi_dialect tsi_dialect_v1, tsi_dialect_v2;

/* ---- calendar (proleptic Gregorian, UTC; days since 1970-01-01) ---- */
typedef struct tsi_civil {
    int y, m, d, hh, mm, ss, dow; /* dow 0 = Monday */
} tsi_civil;
int64_t tsi_civil_day_of(int64_t t); /* floor division of seconds into days */
int tsi_civil_dow(int64_t day);      /* 0 = Monday */
tsi_civil tsi_civil_of(int64_t t);
int64_t tsi_civil_days(int y, int m, int d); /* day number of a civil date */
/* YYYY-MM-DD of a day number into buf (>= 16 bytes) */
void tsi_civil_fmt_day(char *buf, size_t len, int64_t day);

/* ---- writing ---- */
#define TSI_DIALECT_TIME_MAX 40
/* An instant as this version's datetime text ("2026-12-07T14:05:00" or
 * "2026-12-07T14:05:00Z"), NUL-terminated in o (>= TSI_DIALECT_TIME_MAX); returns its
 * length. Hot (one per history point): no snprintf on the common path. */
size_t tsi_dialect_time(const tsi_dialect *d, char *o, int64_t t);
/* The text of a requested range's end (is_end) or start day: v1 "<day>T00:00:00" /
 * "<day>T23:59:59.999999", v2 "<day>". */
void tsi_dialect_range(const tsi_dialect *d, char *buf, size_t len, int64_t day, bool is_end);
/* A float field's JSON number into o (>= TSI_DIALECT_TIME_MAX); returns its length.
 * Non-finite: "null". */
size_t tsi_dialect_float(const tsi_dialect *d, char *o, double v);
/* A float field "k": v as tsi_dialect_float writes it (null when NaN). */
struct tsi_jsonw;
void tsi_dialect_kv_float(const tsi_dialect *d, struct tsi_jsonw *w, const char *k, double v);
/* A current answer's age: v2 writes "age_seconds" (now - t, >= 0) and "stale" (older
 * than stale_seconds), both null when there is none (has false); v1 nothing. */
void tsi_dialect_age(const tsi_dialect *d, struct tsi_jsonw *w, bool has, int64_t t, int64_t now,
                     int stale_seconds);
/* The label of a bin that starts at the local midnight `start` (agg 1day, 1week or
 * 1month, buckets in the deployment's time zone): the start itself, or pandas' label. */
int64_t tsi_dialect_label(const tsi_dialect *d, int64_t start, const char *agg);

#endif
