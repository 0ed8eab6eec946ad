/* api/dialect.c — the two versions of the API as data, and the writers they choose
 * (dialect.h). The v1 rules are the original system's (original-api.md): FastAPI 0.115
 * with pydantic 2.9 writes a naive datetime as "YYYY-MM-DDTHH:MM:SS" plus ".ffffff" only
 * when it has microseconds, a float field as Python's repr (44.0, never 44), and labels
 * pandas' resample('1W') bins by the Sunday that ends them and '1ME' bins by the month's
 * last day. */
#include "api/dialect.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/tz.h"
#include "base/dtoa.h"
#include "base/jsonw.h"

const tsi_dialect tsi_dialect_v1 = {
    .version = 1,
    .prefix = "/api/v1",
    .successor = "/api/v2",
    .naive_time = true,
    .ids_as_text = true,
    .range_datetimes = true,
    .pandas_labels = true,
    .fastapi_errors = true,
    .empty_is_404 = true,
    .all_as_list = true,
    .minutes_any = true,
    .index_complete = true,
    .python_floats = true,
    .stats_period_data = true,
    .first_fields = true,
    .one_max_days = 366, /* history.py: (end - start).days > 365 -> 400 */
    .all_max_days = 31,  /* history.py: (end - start).days > 30 -> 400 */
    .all_days_param = 30,
    .all_start_after_end_empty = true, /* each history raises, none is listed: [] */
};

const tsi_dialect tsi_dialect_v2 = {
    .version = 2,
    .prefix = "/api/v2",
    .successor = NULL,
    .one_max_days = 365,
    .all_max_days = 30,
    .all_days_param = 365,
    .stale_markers = true,
    .model_fields = true,
};

/* ---- calendar: Howard Hinnant's days_from_civil / civil_from_days (no gmtime_r, which
 * takes glibc's time-zone lock and serialised the workers on long series) ---- */
int64_t tsi_civil_day_of(int64_t t)
{
    return t >= 0 ? t / 86400 : (t - 86399) / 86400;
}

int tsi_civil_dow(int64_t day)
{
    return (int)(((day % 7) + 7 + 3) % 7); /* 1970-01-01 was a Thursday */
}

int64_t tsi_civil_days(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

tsi_civil tsi_civil_of(int64_t t)
{
    tsi_civil c;
    int64_t days = tsi_civil_day_of(t);
    int64_t sod = t - days * 86400;
    c.hh = (int)(sod / 3600);
    c.mm = (int)(sod % 3600 / 60);
    c.ss = (int)(sod % 60);
    c.dow = tsi_civil_dow(days);
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    c.d = (int)(doy - (153 * mp + 2) / 5 + 1);
    c.m = (int)(mp < 10 ? mp + 3 : mp - 9);
    c.y = (int)(yoe + era * 400 + (c.m <= 2));
    return c;
}

void tsi_civil_fmt_day(char *buf, size_t len, int64_t day)
{
    tsi_civil c = tsi_civil_of(day * 86400);
    snprintf(buf, len, "%04d-%02d-%02d", c.y, c.m, c.d);
}

static void put2(char *p, int v)
{
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
}

size_t tsi_dialect_time(const tsi_dialect *d, char *o, int64_t t)
{
    tsi_civil c = tsi_civil_of(t);
    if (c.y < 0 || c.y > 9999)
        return (size_t)snprintf(o, TSI_DIALECT_TIME_MAX, "%04d-%02d-%02dT%02d:%02d:%02d%s", c.y,
                                c.m, c.d, c.hh, c.mm, c.ss, d->naive_time ? "" : "Z");
    put2(o, c.y / 100);
    put2(o + 2, c.y % 100);
    o[4] = '-';
    put2(o + 5, c.m);
    o[7] = '-';
    put2(o + 8, c.d);
    o[10] = 'T';
    put2(o + 11, c.hh);
    o[13] = ':';
    put2(o + 14, c.mm);
    o[16] = ':';
    put2(o + 17, c.ss);
    size_t n = 19;
    if (!d->naive_time)
        o[n++] = 'Z';
    o[n] = '\0';
    return n;
}

void tsi_dialect_range(const tsi_dialect *d, char *buf, size_t len, int64_t day, bool is_end)
{
    char ds[16];
    tsi_civil_fmt_day(ds, sizeof ds, day);
    if (!d->range_datetimes)
        snprintf(buf, len, "%s", ds);
    else /* datetime.combine(day, time.min / time.max) */
        snprintf(buf, len, "%sT%s", ds, is_end ? "23:59:59.999999" : "00:00:00");
}

size_t tsi_dialect_float(const tsi_dialect *d, char *o, double v)
{
    if (!isfinite(v)) {
        memcpy(o, "null", 5);
        return 4;
    }
    size_t n = tsi_dtoa(v == 0 ? 0 : v, o);
    if (d->python_floats && !strpbrk(o, ".e")) { /* Python's repr: 44.0 */
        memcpy(o + n, ".0", 3);
        n += 2;
    }
    return n;
}

void tsi_dialect_kv_float(const tsi_dialect *d, tsi_jsonw *w, const char *k, double v)
{
    char b[TSI_DIALECT_TIME_MAX];
    tsi_jsonw_key(w, k);
    tsi_jsonw_raw(w, b, tsi_dialect_float(d, b, v));
}

void tsi_dialect_age(const tsi_dialect *d, tsi_jsonw *w, bool has, int64_t t, int64_t now,
                     int stale_seconds)
{
    if (!d->stale_markers)
        return;
    if (!has) {
        tsi_jsonw_kv_null(w, "age_seconds");
        tsi_jsonw_kv_null(w, "stale");
        return;
    }
    int64_t age = now - t;
    tsi_jsonw_kv_int(w, "age_seconds", age < 0 ? 0 : age);
    tsi_jsonw_kv_bool(w, "stale", age > stale_seconds);
}

int64_t tsi_dialect_label(const tsi_dialect *d, int64_t start, const char *agg)
{
    if (!d->pandas_labels)
        return start;
    int64_t day = tsi_tz_local_day(start);
    if (strcmp(agg, "1week") == 0) /* 'W' = 'W-SUN': Monday..Sunday, labelled Sunday */
        return tsi_tz_day_start(day + 6);
    if (strcmp(agg, "1month") == 0) { /* 'ME': labelled with the month's last day */
        tsi_civil c = tsi_civil_of(day * 86400);
        int y = c.m == 12 ? c.y + 1 : c.y, m = c.m == 12 ? 1 : c.m + 1;
        return tsi_tz_day_start(tsi_civil_days(y, m, 1) - 1);
    }
    return start;
}
