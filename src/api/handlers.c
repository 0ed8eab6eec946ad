/* api/handlers.c — the endpoints of `tsi serve` (domain.md §6, issue 13).
 *
 * Every handler validates each parameter strictly (wrong type, out of range, unknown
 * value → 400 {"detail","code","field"}), then reads through prepared statements
 * (queries.c) or, while PostgreSQL is away, the Parquet archive (fallback.c). Handlers
 * borrow the request and write its body; see api.h for ownership. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "base/dtoa.h"
#include "base/jsonw.h"
#include "base/log.h"
#include "base/options.h"
#include "core/index.h"
#include "core/json.h"
#include "ops/status.h"

/* ---- parameter parsing -------------------------------------------------------------
 * Each failure is answered in the request's dialect: v2 400 {detail, code, field}; v1 422
 * with pydantic 2's error type, message and context for the same value. */
static int bad_py(tsi_req *r, const char *field, const char *fmt, const char *v,
                  const tsi_pyerr *pe)
{
    char shown[64];
    size_t n = strlen(v);
    snprintf(shown, sizeof shown, "%.*s%s", (int)(n > 40 ? 40 : n), v, n > 40 ? "..." : "");
    char msg[256];
    snprintf(msg, sizeof msg, fmt, field);
    tsi_api_invalid(r, field, pe, "%s (got '%s')", msg, shown);
    return -1;
}

/* a value pydantic would refuse with a ValueError of its validator */
static int bad(tsi_req *r, const char *field, const char *fmt, const char *v)
{
    tsi_pyerr pe = {.type = "value_error", .loc = "query"};
    char m[160];
    snprintf(m, sizeof m, fmt, field);
    snprintf(pe.msg, sizeof pe.msg, "Value error, %s", m);
    return bad_py(r, field, fmt, v, &pe);
}

/* whether v is an integer as pydantic's lax int reads a string: optional sign, digits,
 * surrounding whitespace, or a float text with no fraction ("7.0") */
static bool py_int(const char *v, long long *out)
{
    while (*v == ' ' || *v == '\t')
        v++;
    const char *p = v + (*v == '-' || *v == '+');
    size_t n = strspn(p, "0123456789");
    if (n == 0 || n > 18)
        return false;
    const char *e = p + n;
    if (*e == '.') {
        e++;
        e += strspn(e, "0");
    }
    while (*e == ' ' || *e == '\t')
        e++;
    if (*e)
        return false;
    *out = strtoll(v, NULL, 10);
    return true;
}

/* optional integer in [lo, hi]; absent → def */
static int arg_int(tsi_req *r, const char *name, long long lo, long long hi, long long def,
                   long long *out)
{
    const char *v = tsi_req_arg(r, name);
    if (!v) {
        *out = def;
        return 0;
    }
    const char *p = v;
    if (*p == '-' || *p == '+')
        p++;
    size_t n = strlen(p);
    long long x;
    bool strict = n > 0 && n <= 18 && strspn(p, "0123456789") == n;
    tsi_pyerr pe = {.type = "int_parsing", .loc = "query"};
    /* v2 reads digits only; v1 what pydantic's lax mode reads */
    if (!(r->dl->fastapi_errors ? py_int(v, &x) : strict)) {
        snprintf(pe.msg, sizeof pe.msg,
                 "Input should be a valid integer, unable to parse string as an integer");
        return bad_py(r, name, "%s must be an integer", v, &pe);
    }
    if (!r->dl->fastapi_errors)
        x = strtoll(v, NULL, 10);
    if (x < lo || x > hi) {
        char fmt[128];
        snprintf(fmt, sizeof fmt, "%%s must be between %lld and %lld", lo, hi);
        pe.type = x < lo ? "greater_than_equal" : "less_than_equal";
        snprintf(pe.msg, sizeof pe.msg, "Input should be %s than or equal to %lld",
                 x < lo ? "greater" : "less", x < lo ? lo : hi);
        snprintf(pe.ctx, sizeof pe.ctx, "{\"%s\":%lld}", x < lo ? "ge" : "le", x < lo ? lo : hi);
        return bad_py(r, name, fmt, v, &pe);
    }
    *out = x;
    return 0;
}

static bool parse_num(const char *v, double *out)
{
    size_t n = strlen(v);
    if (n == 0 || n > 40 || strspn(v, "0123456789+-.eE") != n)
        return false;
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (*end || errno == ERANGE || !isfinite(x))
        return false;
    *out = x;
    return true;
}

/* number in [lo, hi] (lo_open: lo excluded); required when def is NAN */
static int arg_num(tsi_req *r, const char *name, double lo, bool lo_open, double hi, double def,
                   double *out)
{
    const char *v = tsi_req_arg(r, name);
    if (!v) {
        if (isnan(def)) {
            tsi_pyerr pe = {.type = "missing", .loc = "query", .msg = "Field required"};
            tsi_api_invalid(r, name, &pe, "%s is required", name);
            return -1;
        }
        *out = def;
        return 0;
    }
    double x;
    tsi_pyerr pe = {.type = "float_parsing", .loc = "query"};
    if (!parse_num(v, &x)) {
        snprintf(pe.msg, sizeof pe.msg,
                 "Input should be a valid number, unable to parse string as a number");
        return bad_py(r, name, "%s must be a number", v, &pe);
    }
    if (x < lo || x > hi || (lo_open && x == lo)) {
        char fmt[160], lim[TSI_DIALECT_TIME_MAX];
        snprintf(fmt, sizeof fmt, "%%s must be %s %g and <= %g", lo_open ? ">" : ">=", lo, hi);
        bool low = x < lo || (lo_open && x == lo);
        tsi_dialect_float(r->dl, lim, low ? lo : hi);
        pe.type = low ? (lo_open ? "greater_than" : "greater_than_equal") : "less_than_equal";
        snprintf(pe.msg, sizeof pe.msg, "Input should be %s %s",
                 low ? (lo_open ? "greater than" : "greater than or equal to")
                     : "less than or equal to",
                 lim);
        snprintf(pe.ctx, sizeof pe.ctx, "{\"%s\":%s}", low ? (lo_open ? "gt" : "ge") : "le", lim);
        return bad_py(r, name, fmt, v, &pe);
    }
    *out = x;
    return 0;
}

/* pydantic's reason for a string that is not a date (speedate's words), or NULL when v is
 * one: YYYY-MM-DD, or a datetime of that day at exactly midnight */
static const char *date_reason(const char *v, int *y, int *m, int *d)
{
    size_t n = strlen(v);
    if (n < 10)
        return "input is too short";
    for (int i = 0; i < 4; i++)
        if (!isdigit((unsigned char)v[i]))
            return "invalid character in year";
    if (v[4] != '-' || v[7] != '-')
        return "invalid date separator, expected `-`";
    if (!isdigit((unsigned char)v[5]) || !isdigit((unsigned char)v[6]))
        return "invalid character in month";
    if (!isdigit((unsigned char)v[8]) || !isdigit((unsigned char)v[9]))
        return "invalid character in day";
    *y = atoi(v);
    *m = (v[5] - '0') * 10 + (v[6] - '0');
    *d = (v[8] - '0') * 10 + (v[9] - '0');
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (*y % 4 == 0 && *y % 100 != 0) || *y % 400 == 0;
    if (*m < 1 || *m > 12)
        return "month value is outside expected range of 1-12";
    if (*d < 1 || *d > mdays[*m - 1] + (*m == 2 && leap))
        return "day value is outside expected range";
    if (n == 10)
        return NULL;
    if ((v[10] == 'T' || v[10] == 't' || v[10] == ' ') &&
        (strcmp(v + 11, "00:00:00") == 0 || strcmp(v + 11, "00:00") == 0 ||
         strcmp(v + 11, "00:00:00Z") == 0))
        return NULL;
    return "unexpected extra characters at the end of the input";
}

/* YYYY-MM-DD → day number since 1970-01-01; 1 absent, 0 ok, -1 error set. v2 reads the
 * form strictly, from 1970 on; v1 as pydantic's date does (any year 0001..9999; the
 * range query starts at 1970, before which nothing exists). */
static int arg_date(tsi_req *r, const char *name, int64_t *day)
{
    const char *v = tsi_req_arg(r, name);
    if (!v)
        return 1;
    int y = 0, m = 0, d = 0;
    const char *why = date_reason(v, &y, &m, &d);
    if (r->dl->fastapi_errors) {
        if (why || y < 1) {
            tsi_pyerr pe = {.type = "date_from_datetime_parsing", .loc = "query"};
            snprintf(pe.msg, sizeof pe.msg, "Input should be a valid date or datetime, %s",
                     why ? why : "year 0 is out of range");
            snprintf(pe.ctx, sizeof pe.ctx, "{\"error\":\"%s\"}",
                     why ? why : "year 0 is out of range");
            return bad_py(r, name, "%s must be a date YYYY-MM-DD", v, &pe);
        }
        *day = tsi_civil_days(y, m, d);
        return 0;
    }
    if (strlen(v) != 10 || (why && strncmp(why, "invalid", 7) == 0) ||
        (why && strcmp(why, "input is too short") == 0))
        return bad(r, name, "%s must be a date YYYY-MM-DD", v);
    if (why || y < 1970 || y > 9999)
        return bad(r, name, "%s is not a valid calendar date (1970-01-01 to 9999-12-31)", v);
    *day = tsi_civil_days(y, m, d);
    return 0;
}

/* a SQL timestamptz parameter: UTC with Z (>= TSI_DIALECT_TIME_MAX bytes) */
static void fmt_ts(char *buf, size_t len, int64_t t)
{
    (void)len;
    tsi_dialect_time(&tsi_dialect_v2, buf, t);
}

/* A requested window of whole local days. d0..d1 are the days asked for (echoed); the
 * query reads [q0, q1] (the part from 1970 on); empty: nothing can be in it (v1 answers
 * such a window as one without data, as the original did). */
typedef struct {
    int64_t d0, d1; /* inclusive day numbers */
    int64_t q0, q1;
    int64_t n;
    const char *agg; /* 1min|1hour|1day|1week|1month */
    bool empty;
} range;

enum range_kind { RANGE_ONE, RANGE_ALL, RANGE_STATS, RANGE_OTHER };

/* start_date, end_date, days → range, by the dialect's rules:
 * v1 (history.py): end defaults to today, start to end - (days - 1) (days is ignored, but
 *   validated, when start is given); history: start > end → 400, (end - start).days > 365
 *   → 400; all: days <= 30, (end - start).days > 30 → 400, start > end → no histories;
 *   stats: neither check (an empty window is answered 404, a long one 200).
 * v2: both absent → the last `days` days; one given → `days` days from it (forward from
 *   start, back from end); start > end and more than one_max_days/all_max_days → 400. */
static int arg_range(tsi_req *r, range *g, enum range_kind kind)
{
    const tsi_dialect *dl = r->dl;
    long long days;
    long long dmax = kind == RANGE_ALL ? dl->all_days_param : 365;
    if (arg_int(r, "days", 1, dmax, 7, &days) < 0)
        return -1;
    int64_t s = 0, e = 0;
    int hs = arg_date(r, "start_date", &s);
    if (hs < 0)
        return -1;
    int he = arg_date(r, "end_date", &e);
    if (he < 0)
        return -1;
    int64_t today = tsi_api_tz_local_day((int64_t)time(NULL)); /* in TSI_TIMEZONE */
    int64_t max_days = kind == RANGE_ALL ? dl->all_max_days : dl->one_max_days;
    memset(g, 0, sizeof *g);
    if (dl->fastapi_errors) {
        if (he)
            e = today;
        if (hs)
            s = e - days + 1;
        if (kind == RANGE_ALL && e - s + 1 > max_days) {
            tsi_api_detail(r, 400, "range_too_large", "end_date",
                           "All-intersections query limited to 30 days. Use single-intersection "
                           "endpoint for longer periods.");
            return -1;
        }
        if (kind == RANGE_ONE || kind == RANGE_OTHER) {
            if (s > e) {
                tsi_api_detail(r, 400, "invalid_range", "start_date",
                               "start_date must be before or equal to end_date");
                return -1;
            }
            if (e - s + 1 > max_days) {
                tsi_api_detail(r, 400, "range_too_large", "end_date",
                               "Date range cannot exceed 365 days");
                return -1;
            }
        }
    } else {
        if (hs && he) {
            e = today;
            s = e - days + 1;
        } else if (hs) {
            s = e - days + 1;
        } else if (he) {
            e = s + days - 1;
        }
        if (s > e) {
            tsi_api_error(r, 400, "invalid_range", "start_date", "start_date is after end_date");
            return -1;
        }
        if (e - s + 1 > max_days) {
            tsi_api_error(r, 400, "range_too_large", "end_date",
                          "the range covers %lld days; at most %lld are allowed",
                          (long long)(e - s + 1), (long long)max_days);
            return -1;
        }
    }
    g->d0 = s;
    g->d1 = e;
    g->n = e - s + 1;
    g->q0 = s < 0 ? 0 : s;
    g->q1 = e;
    g->empty = s > e || e < 0;
    return 0;
}

/* the request's window as instants [t0, t1) */
static void range_instants(const range *g, int64_t *t0, int64_t *t1)
{
    *t0 = tsi_api_tz_day_start(g->q0);
    *t1 = g->empty ? *t0 : tsi_api_tz_day_start(g->q1 + 1);
}

#define AGG_PATTERN "^(1min|1hour|1day|1week|1month)$"

static int arg_agg(tsi_req *r, range *g, bool all)
{
    const char *v = tsi_req_arg(r, "aggregation");
    bool any = r->dl->minutes_any;
    if (!v) { /* history_service.py's smart default, by the inclusive number of days */
        g->agg = g->n <= 1    ? "1min"
                 : g->n <= 7  ? "1hour"
                 : g->n <= 30 ? "1day"
                 : g->n <= 90 ? "1week"
                              : "1month";
        if (all && !any && strcmp(g->agg, "1min") == 0)
            g->agg = "1hour";
        return 0;
    }
    static const char *const ok[] = {"1min", "1hour", "1day", "1week", "1month"};
    for (size_t i = 0; i < 5; i++)
        if (strcmp(v, ok[i]) == 0)
            g->agg = ok[i];
    if (!g->agg) {
        tsi_pyerr pe = {.type = "string_pattern_mismatch", .loc = "query"};
        snprintf(pe.msg, sizeof pe.msg, "String should match pattern '%s'", AGG_PATTERN);
        snprintf(pe.ctx, sizeof pe.ctx, "{\"pattern\":\"%s\"}", AGG_PATTERN);
        return bad_py(r, "aggregation", "%s must be one of 1min, 1hour, 1day, 1week, 1month", v,
                      &pe);
    }
    if (!any && strcmp(g->agg, "1min") == 0 && (all || g->n > 7)) {
        tsi_api_error(r, 400, "range_too_large", "aggregation",
                      all ? "1min is not available for all intersections; use 1hour or coarser"
                          : "1min covers at most 7 days; use 1hour or coarser");
        return -1;
    }
    return 0;
}

static const char *risk_level(double si)
{
    return tsi_risk_level(si);
}

/* risk_level filter: NULL absent, else "Low|Medium|High"; -1 on error */
static int arg_risk(tsi_req *r, const char **out)
{
    const char *v = tsi_req_arg(r, "risk_level");
    *out = NULL;
    if (!v)
        return 0;
    if (strcasecmp(v, "low") == 0)
        *out = "Low";
    else if (strcasecmp(v, "medium") == 0)
        *out = "Medium";
    else if (strcasecmp(v, "high") == 0)
        *out = "High";
    else
        return bad(r, "risk_level", "%s must be one of low, medium, high", v);
    return 0;
}

/* ---- PostgreSQL plumbing --------------------------------------------------------------- */
static PGconn *need_pg(tsi_req *r)
{
    PGconn *c = tsi_api_pg(r);
    if (!c)
        tsi_api_error(r, 503, "database_unavailable", NULL,
                      "the database is unreachable; this endpoint needs it");
    return c;
}

/* runs a prepared statement; NULL with a 503/500 error set on failure */
static PGresult *run_fmt(tsi_req *r, PGconn *c, const char *stmt, int n, const char *const *vals,
                         int binary)
{
    /* the worker's connection now: an earlier run() of this request may have replaced c */
    if (tsi_api_worker()->pg)
        c = tsi_api_worker()->pg;
    PGresult *res = PQexecPrepared(c, stmt, n, vals, NULL, NULL, binary);
    if (PQresultStatus(res) == PGRES_TUPLES_OK)
        return res;
    if (PQstatus(c) != CONNECTION_OK) {
        /* a connection that died while idle (server restarted): one retry on a new one */
        PQclear(res);
        tsi_api_pg_broken(r);
        c = tsi_api_pg(r);
        if (!c) {
            tsi_api_error(r, 503, "database_unavailable", NULL, "the database is unreachable");
            return NULL;
        }
        res = PQexecPrepared(c, stmt, n, vals, NULL, NULL, binary);
        if (PQresultStatus(res) == PGRES_TUPLES_OK)
            return res;
    }
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    tsi_err("api", "req=%s query %s failed state=%s: %s", r->id, stmt, state ? state : "-",
            PQresultErrorMessage(res));
    bool broken = PQstatus(c) != CONNECTION_OK;
    PQclear(res);
    if (broken) {
        tsi_api_pg_broken(r);
        tsi_api_error(r, 503, "database_unavailable", NULL, "the database connection was lost");
    } else {
        tsi_api_error(r, 500, "internal", NULL, "query failed (request %s)", r->id);
    }
    return NULL;
}

static PGresult *run(tsi_req *r, PGconn *c, const char *stmt, int n, const char *const *vals)
{
    return run_fmt(r, c, stmt, n, vals, 0);
}

static double dval(PGresult *res, int row, int col, bool *isnull)
{
    if (PQgetisnull(res, row, col)) {
        if (isnull)
            *isnull = true;
        return NAN;
    }
    if (isnull)
        *isnull = false;
    return strtod(PQgetvalue(res, row, col), NULL);
}

static long long ival(PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        return 0;
    /* PostgreSQL's integer text: [-]digits; up to 18 digits summed directly (strtoll was
     * 5 % of a large history answer), anything else through strtoll */
    const char *v = PQgetvalue(res, row, col);
    const char *d = v + (v[0] == '-');
    long long x = 0;
    int k = 0;
    while (k < 18 && d[k] >= '0' && d[k] <= '9')
        x = x * 10 + (d[k++] - '0');
    if (k == 0 || d[k] != '\0')
        return strtoll(v, NULL, 10);
    return v[0] == '-' ? -x : x;
}

/* a float field: the dialect's number (v1: Python's 44.0), null when NaN */
static void kv_float(tsi_jsonw *w, const tsi_dialect *dl, const char *k, double v)
{
    char b[TSI_DIALECT_TIME_MAX];
    tsi_jsonw_key(w, k);
    size_t n = tsi_dialect_float(dl, b, v);
    tsi_jsonw_raw(w, b, n);
}

/* whether s[0..n) is a JSON number (RFC 8259 grammar); PostgreSQL's float8 and integer
 * output is one except NaN and [-]Infinity */
static bool json_number(const char *s, size_t n)
{
    size_t i = 0;
    if (i < n && s[i] == '-')
        i++;
    if (i >= n || !isdigit((unsigned char)s[i]))
        return false;
    if (s[i] == '0')
        i++;
    else
        while (i < n && isdigit((unsigned char)s[i]))
            i++;
    if (i < n && s[i] == '.') {
        i++;
        if (i >= n || !isdigit((unsigned char)s[i]))
            return false;
        while (i < n && isdigit((unsigned char)s[i]))
            i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= n || !isdigit((unsigned char)s[i]))
            return false;
        while (i < n && isdigit((unsigned char)s[i]))
            i++;
    }
    return i == n;
}

/* a number PostgreSQL printed (NULL → null): its own shortest exact text when that is a
 * JSON number, without the strtod/printf round trip (the hot part of large bodies);
 * -0 → 0; NaN/Infinity → null through the double writer. A float column in a dialect
 * with Python's floats gets its ".0" (PostgreSQL prints 44 where pydantic writes 44.0). */
static void num_text_as(tsi_jsonw *w, const char *v, const tsi_dialect *fl)
{
    if (!v) {
        tsi_jsonw_null(w);
        return;
    }
    size_t n = strlen(v);
    if (n == 2 && v[0] == '-' && v[1] == '0')
        v = "0", n = 1;
    if (json_number(v, n)) {
        tsi_jsonw_raw(w, v, n);
        if (fl && fl->python_floats && !strpbrk(v, ".eE"))
            tsi_jsonw_raw(w, ".0", 2);
    } else {
        tsi_jsonw_double(w, strtod(v, NULL));
    }
}

static void num_text(tsi_jsonw *w, const char *v)
{
    num_text_as(w, v, NULL);
}

static const char *pgtext(PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

/* a float column */
static void kv_pg(tsi_jsonw *w, const tsi_dialect *dl, const char *k, PGresult *res, int row,
                  int col)
{
    tsi_jsonw_key(w, k);
    num_text_as(w, pgtext(res, row, col), dl);
}

/* whether a LATEST_COLS row has what the dialect's index item requires: v1's
 * IntersectionRead has no Optional field, so an intersection without a current index or a
 * position is left out there */
static bool index_complete(const tsi_dialect *dl, PGresult *res, int i, int c0)
{
    return !dl->index_complete ||
           (!PQgetisnull(res, i, c0) && !PQgetisnull(res, i, 2) && !PQgetisnull(res, i, 3));
}

/* one /safety/index/ object from the LATEST_COLS layout starting at column c0
 * (id, name, lat, lon at 0..3) */
static void write_index_obj(tsi_jsonw *w, const tsi_dialect *dl, PGresult *res, int i, int c0,
                            bool open)
{
    if (open)
        tsi_jsonw_object(w);
    tsi_jsonw_kv_int(w, "intersection_id", ival(res, i, 0));
    tsi_jsonw_kv_str(w, "intersection_name", PQgetvalue(res, i, 1));
    bool has = !PQgetisnull(res, i, c0);
    bool ebnull = PQgetisnull(res, i, c0 + 2);
    int sicol = ebnull ? c0 + 1 : c0 + 2;
    double si = has ? dval(res, i, sicol, NULL) : NAN;
    tsi_jsonw_key(w, "safety_index");
    num_text_as(w, has ? pgtext(res, i, sicol) : NULL, dl);
    tsi_jsonw_key(w, "traffic_volume");
    num_text(w, has ? pgtext(res, i, c0 + 7) : NULL);
    kv_pg(w, dl, "latitude", res, i, 2);
    kv_pg(w, dl, "longitude", res, i, 3);
    char ts[TSI_DIALECT_TIME_MAX];
    if (has) {
        tsi_dialect_time(dl, ts, (int64_t)dval(res, i, c0, NULL));
        tsi_jsonw_kv_str(w, "timestamp", ts);
        tsi_jsonw_kv_str(w, "risk_level", risk_level(si));
    } else {
        tsi_jsonw_kv_null(w, "timestamp");
        tsi_jsonw_kv_null(w, "risk_level");
    }
    kv_pg(w, dl, "combined_index", res, i, c0 + 1);
    kv_pg(w, dl, "combined_index_eb", res, i, c0 + 2);
    kv_pg(w, dl, "vru_index", res, i, c0 + 3);
    kv_pg(w, dl, "vru_index_eb", res, i, c0 + 4);
    kv_pg(w, dl, "vehicle_index", res, i, c0 + 5);
    kv_pg(w, dl, "vehicle_index_eb", res, i, c0 + 6);
    tsi_jsonw_key(w, "vru_count");
    num_text(w, has ? pgtext(res, i, c0 + 8) : NULL);
    if (open)
        tsi_jsonw_end(w);
}

/* ---- /safety/index/ -------------------------------------------------------------------- */
static void serve_cached(tsi_req *r, tsi_cached *cc, bool gz)
{
    /* no copy: the response holds a reference to the cached bytes (393 kB at 1,000
     * intersections: two copies per request were the plain row's gap to nginx) */
    const char *src = gz ? cc->gz : cc->plain;
    tsi_api_blob_ref(src);
    r->raw = src;
    r->raw_len = gz ? cc->gz_len : cc->plain_len;
    r->raw_gz = gz;
    r->raw_blob = true;
}

static bool wants_gzip(tsi_req *r)
{
    const char *ae = tsi_req_header(r, "Accept-Encoding");
    return ae && strstr(ae, "gzip") && !strstr(ae, "gzip;q=0");
}

/* the Parquet answer of the current index (auto mode: also when PostgreSQL just went away) */
static int index_parquet(tsi_req *r, bool one)
{
    tsi_buf_reset(&r->body);
    r->status = 200;
    r->err_code = NULL;
    r->err_field = NULL;
    r->content_type = "application/json";
    r->data_source = "parquet";
    atomic_fetch_add(&tsi_api_g->m.parquet_answers, 1);
    int st = tsi_fb_index(r, one ? r->path_id : -1);
    if (st == 404)
        return tsi_api_error(r, 404, "not_found", "intersection_id", "Intersection not found");
    return 0;
}

/* a path id that must be an integer (v1: FastAPI's int path parameter) */
static bool need_id(tsi_req *r)
{
    if (r->path_id >= 0)
        return true;
    tsi_pyerr pe = {.type = "int_parsing", .loc = "path"};
    snprintf(pe.msg, sizeof pe.msg,
             "Input should be a valid integer, unable to parse string as an integer");
    tsi_api_invalid(r, "intersection_id", &pe, "intersection id must be a non-negative integer");
    return false;
}

int tsi_h_index_all(tsi_req *r)
{
    tsi_api *a = tsi_api_g;
    if (tsi_api_use_parquet())
        return index_parquet(r, false);
    r->data_source = "postgres";
    tsi_cached *cc = &a->index_cache[r->dl->version];
    uint64_t gen = atomic_load(&a->gen);
    double now = tsi_api_now(), ttl = atomic_load(&a->listening) ? 30.0 : 1.0;
    bool gz = wants_gzip(r);
    pthread_mutex_lock(&cc->mu);
    if (cc->plain && cc->gen == gen && now - cc->at < ttl && cc->source == TSI_SRC_POSTGRES) {
        serve_cached(r, cc, gz);
        pthread_mutex_unlock(&cc->mu);
        atomic_fetch_add(&a->m.cache_hits, 1);
        return 0;
    }
    pthread_mutex_unlock(&cc->mu);
    atomic_fetch_add(&a->m.cache_misses, 1);
    PGconn *c = need_pg(r);
    if (!c)
        return a->source_mode == TSI_SRC_AUTO ? index_parquet(r, false) : 0;
    PGresult *res = run(r, c, "index_all", 0, NULL);
    if (!res)
        return a->source_mode == TSI_SRC_AUTO && r->status == 503 ? index_parquet(r, false) : 0;
    tsi_jsonw w;
    tsi_jsonw_init(&w, &r->body);
    tsi_jsonw_array(&w);
    for (int i = 0; i < PQntuples(res); i++)
        if (index_complete(r->dl, res, i, 4))
            write_index_obj(&w, r->dl, res, i, 4, true);
    tsi_jsonw_end(&w);
    PQclear(res);
    char *z = NULL;
    size_t zl = 0;
    if (tsi_api_gzip(r->body.data, r->body.len, 6, &z, &zl) == 0) {
        char *plain = tsi_api_blob_new(r->body.data, r->body.len);
        char *gzb = tsi_api_blob_new(z, zl);
        free(z);
        if (plain && gzb) {
            pthread_mutex_lock(&cc->mu);
            if (cc->plain)
                tsi_api_blob_unref(cc->plain);
            if (cc->gz)
                tsi_api_blob_unref(cc->gz);
            cc->plain = plain;
            cc->plain_len = r->body.len;
            cc->gz = gzb;
            cc->gz_len = zl;
            cc->gen = gen;
            cc->at = now;
            cc->source = TSI_SRC_POSTGRES;
            if (gz)
                serve_cached(r, cc, true);
            pthread_mutex_unlock(&cc->mu);
        } else {
            if (plain)
                tsi_api_blob_unref(plain);
            if (gzb)
                tsi_api_blob_unref(gzb);
        }
    }
    return 0;
}

int tsi_h_index_one(tsi_req *r)
{
    if (!need_id(r))
        return 0;
    if (tsi_api_use_parquet())
        return index_parquet(r, true);
    PGconn *c = need_pg(r);
    if (!c)
        return tsi_api_g->source_mode == TSI_SRC_AUTO ? index_parquet(r, true) : 0;
    r->data_source = "postgres";
    char idb[24];
    snprintf(idb, sizeof idb, "%lld", (long long)r->path_id);
    const char *v[1] = {idb};
    PGresult *res = run(r, c, "index_one", 1, v);
    if (!res)
        return 0;
    if (PQntuples(res) == 0 || !index_complete(r->dl, res, 0, 4)) {
        PQclear(res);
        return tsi_api_error(r, 404, "not_found", "intersection_id", "Intersection not found");
    }
    tsi_jsonw w;
    tsi_jsonw_init(&w, &r->body);
    write_index_obj(&w, r->dl, res, 0, 4, true);
    PQclear(res);
    return 0;
}

/* ---- history ------------------------------------------------------------------------------ */
/* one history point; the hot loop of large answers (2,880 points for 48 h of minutes):
 * built whole in a stack buffer — literal keys, the ASCII timestamp, numbers from
 * tsi_dtoa and integers — and appended as one raw value (all of it plain ASCII, nothing to
 * escape), instead of a writer call per key and value */
static char *put_lit(char *o, const char *lit, size_t n)
{
    memcpy(o, lit, n);
    return o + n;
}
#define PUT_LIT(o, lit) ((o) = put_lit((o), (lit), sizeof(lit) - 1))

static char *put_num(char *o, const tsi_dialect *dl, double v) /* NaN: null */
{
    return o + tsi_dialect_float(dl, o, v);
}

static char *put_int(char *o, int64_t v)
{
    char t[24];
    int n = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        t[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *o++ = '-';
    while (n)
        *o++ = t[--n];
    return o;
}

/* one point of a series at aggregation agg: labelled as the dialect labels its bin,
 * hour_of_day and day_of_week of the bin's first instant with data (history_service.py:
 * 'first' of the minutes' columns) in the deployment's zone */
static void write_point(tsi_jsonw *w, const tsi_dialect *dl, const char *agg, const tsi_point *p)
{
    /* the points of a series run through few days: the UTC date's text is kept per thread
     * and only the time of day is written per point */
    static _Thread_local int64_t date_day = INT64_MIN;
    static _Thread_local char date[TSI_DIALECT_TIME_MAX];
    char b[512], *o = b;
    bool by_start = strcmp(agg, "1min") == 0 || strcmp(agg, "1hour") == 0;
    int64_t ts = by_start ? p->ts : tsi_dialect_label(dl, p->ts, agg);
    int64_t day = tsi_civil_day_of(ts), sod = ts - day * 86400;
    if (day != date_day) {
        size_t n = tsi_dialect_time(&tsi_dialect_v2, date, day * 86400);
        date_day = n == 20 ? day : INT64_MIN; /* a 4-digit year: reusable */
    }
    PUT_LIT(o, "{\"timestamp\":\"");
    if (date_day == day) {
        memcpy(o, date, 11); /* YYYY-MM-DDT */
        o[11] = (char)('0' + sod / 36000);
        o[12] = (char)('0' + sod / 3600 % 10);
        o[13] = ':';
        o[14] = (char)('0' + sod % 3600 / 600);
        o[15] = (char)('0' + sod % 600 / 60);
        o[16] = ':';
        o[17] = (char)('0' + sod % 60 / 10);
        o[18] = (char)('0' + sod % 10);
        o += 19;
        if (!dl->naive_time)
            *o++ = 'Z';
    } else {
        o += tsi_dialect_time(dl, o, ts);
    }
    int64_t f = dl->first_fields ? p->first : p->ts;
    int64_t local = f + tsi_api_tz_offset(f), lday = tsi_civil_day_of(local); /* hour, weekday */
    PUT_LIT(o, "\",\"safety_index\":");
    o = put_num(o, dl, p->si);
    PUT_LIT(o, ",\"vru_index\":");
    o = put_num(o, dl, p->vru);
    PUT_LIT(o, ",\"vehicle_index\":");
    o = put_num(o, dl, p->veh);
    PUT_LIT(o, ",\"traffic_volume\":");
    o = put_int(o, p->vol);
    PUT_LIT(o, ",\"hour_of_day\":");
    o = put_int(o, (local - lday * 86400) / 3600);
    PUT_LIT(o, ",\"day_of_week\":");
    o = put_int(o, tsi_civil_dow(lday));
    *o++ = '}';
    tsi_jsonw_raw(w, b, (size_t)(o - b));
}

static const char *trunc_unit(const char *agg)
{
    return strcmp(agg, "1week") == 0 ? "week" : strcmp(agg, "1month") == 0 ? "month" : "day";
}

/* order of series points: by intersection, then time (keys are unique) */
static int point_cmp(const void *a, const void *b)
{
    const tsi_point *x = a, *y = b;
    if (x->iid != y->iid)
        return x->iid < y->iid ? -1 : 1;
    return x->ts < y->ts ? -1 : x->ts > y->ts;
}

/* PostgreSQL series for ids (text array) in [t0, t1) → points (arena) */
/* binary result columns of the series statements (their text would cost PostgreSQL a
 * float8out per value and the server a parse, ~1 ms of a 48-hour minute answer) */
enum { OID_INT8 = 20, OID_INT4 = 23, OID_FLOAT8 = 701, OID_TIMESTAMPTZ = 1184 };

static uint64_t be64(const char *b)
{
    const unsigned char *u = (const unsigned char *)b;
    uint64_t x = 0;
    for (int i = 0; i < 8; i++)
        x = x << 8 | u[i];
    return x;
}

/* int8, int4, or timestamptz (as epoch seconds, floored) by the column's type t, looked
 * up once per result; 0 when NULL */
static int64_t bin_int(PGresult *res, int row, int col, Oid t)
{
    if (PQgetisnull(res, row, col))
        return 0;
    const char *v = PQgetvalue(res, row, col);
    if (t == OID_INT4) {
        const unsigned char *u = (const unsigned char *)v;
        return (int32_t)((uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3]);
    }
    int64_t x = (int64_t)be64(v);
    if (t == OID_TIMESTAMPTZ) { /* microseconds since 2000-01-01 UTC */
        int64_t sec = x / 1000000 - (x % 1000000 < 0);
        return sec + 946684800;
    }
    return x;
}

static double bin_double(PGresult *res, int row, int col) /* NaN when NULL */
{
    if (PQgetisnull(res, row, col))
        return NAN;
    uint64_t x = be64(PQgetvalue(res, row, col));
    double d;
    memcpy(&d, &x, sizeof d);
    return d;
}

/* the series layout: iid int8, time (int8 epoch seconds or timestamptz), three float8, a
 * volume int8/int4; series_min_one (one intersection) leaves out the iid (skip 1).
 * Anything else is a server bug, answered 500 rather than misread */
static bool series_layout(PGresult *res, int skip)
{
    if (PQnfields(res) < 6 - skip)
        return false;
    static const int want[6][2] = {{OID_INT8, OID_INT8},     {OID_INT8, OID_TIMESTAMPTZ},
                                   {OID_FLOAT8, OID_FLOAT8}, {OID_FLOAT8, OID_FLOAT8},
                                   {OID_FLOAT8, OID_FLOAT8}, {OID_INT8, OID_INT4}};
    for (int c = skip; c < 6; c++) {
        Oid t = PQftype(res, c - skip);
        if (PQfformat(res, c - skip) != 1 || (t != (Oid)want[c][0] && t != (Oid)want[c][1]))
            return false;
    }
    return true;
}

/* a series result's rows as points, in (intersection, time) order: series_min leaves the
 * order to the scan (see queries.c), so they are sorted here only when they are not.
 * iid >= 0: the result is series_min_one's, without the intersection column. */
static int series_points(tsi_req *r, PGresult *res, const char *stmt, int64_t iid, tsi_point **out,
                         int *n)
{
    int k0 = iid >= 0; /* the first column of the layout the result leaves out */
    if (!series_layout(res, k0)) {
        tsi_err("api", "req=%s query %s: unexpected result columns", r->id, stmt);
        return tsi_api_error(r, 500, "internal", NULL, "query failed (request %s)", r->id);
    }
    Oid tt = PQftype(res, 1 - k0), vt = PQftype(res, 5 - k0);
    /* the day-level statements add the first instant with data of each bin (column 7) */
    int first_col = PQnfields(res) >= 8 - k0 && PQftype(res, 7 - k0) == OID_INT8 ? 7 - k0 : -1;
    int k = PQntuples(res);
    tsi_point *p = tsi_arena_alloc(r->arena, sizeof *p * (size_t)(k ? k : 1));
    for (int i = 0; i < k; i++) {
        p[i].iid = k0 ? iid : bin_int(res, i, 0, OID_INT8);
        p[i].ts = bin_int(res, i, 1 - k0, tt);
        p[i].si = bin_double(res, i, 2 - k0);
        p[i].vru = bin_double(res, i, 3 - k0);
        p[i].veh = bin_double(res, i, 4 - k0);
        p[i].vol = bin_int(res, i, 5 - k0, vt);
        p[i].first = first_col >= 0 ? bin_int(res, i, first_col, OID_INT8) : p[i].ts;
    }
    bool sorted = true;
    for (int i = 1; i < k && sorted; i++)
        sorted = point_cmp(&p[i - 1], &p[i]) < 0;
    if (!sorted)
        qsort(p, (size_t)k, sizeof *p, point_cmp);
    *out = p;
    *n = k;
    return 0;
}

static int pg_series(tsi_req *r, PGconn *c, const char *ids, int64_t t0, int64_t t1,
                     const char *agg, tsi_point **out, int *n)
{
    char a0[32], a1[32];
    fmt_ts(a0, sizeof a0, t0);
    fmt_ts(a1, sizeof a1, t1);
    const char *v[4] = {ids, a0, a1, trunc_unit(agg)};
    const char *stmt = strcmp(agg, "1min") == 0    ? "series_min"
                       : strcmp(agg, "1hour") == 0 ? "series_hour"
                       : tsi_api_tz_utc()          ? "series_day"
                                                   : "series_day_local";
    PGresult *res = run_fmt(r, c, stmt, strncmp(stmt, "series_day", 10) == 0 ? 4 : 3, v, 1);
    if (!res)
        return -1;
    int rc = series_points(r, res, stmt, -1, out, n);
    PQclear(res);
    return rc;
}

/* One intersection's minutes in [t0, t1) from PostgreSQL, written as points into w while
 * PostgreSQL reads the rest: the range goes in parts of MINUTE_PART seconds, sent at once
 * in pipeline mode, and each part's rows are encoded as soon as they arrive (the backend
 * and this thread on two cores; in one statement one waited for the other).
 *
 * While the server has idle cores (no more requests in flight than half of them), the
 * later half of the parts goes to a second backend on a borrowed helper connection
 * (server.c): two backends read at once while this thread encodes, the backends' binary
 * output being the larger half of the work. With more requests in flight than cores
 * there is no idle core to overlap with, and the range goes in one part. The parts are
 * disjoint, in time order, and read in that order, so the points come out in order.
 *
 * A worker connection found dead (the server restarted) is replaced once, as run() does;
 * a helper that fails is dropped and its parts are read again on the worker's
 * connection. Other failures answer 500/503 like run(). Returns the points written, or
 * -1 (answered). */
#define MINUTE_PART  (12 * 3600)
#define MINUTE_PARTS 8

typedef struct {
    int written;
    int failed; /* 0 ok; 1 the query or the connection failed (why); 2 answered 500 */
    char why[256];
} part_run;

/* parts [a, b) of the bounds ts on c in one pipeline; false when c refused them */
static bool parts_send(PGconn *c, const char *id, char (*ts)[32], int a, int b)
{
    bool ok = PQenterPipelineMode(c) == 1;
    for (int i = a; ok && i < b; i++) {
        const char *v[3] = {id, ts[i], ts[i + 1]};
        ok = PQsendQueryPrepared(c, "series_min_one", 3, v, NULL, NULL, 1) == 1;
    }
    return ok && PQpipelineSync(c) == 1;
}

/* the results of n parts sent by parts_send (sent: its answer) and the sync: all of them
 * are read whatever happens; each part's rows go into w until one fails */
static void parts_read(tsi_req *r, PGconn *c, int n, bool sent, int64_t iid, tsi_jsonw *w,
                       part_run *pr)
{
    bool ok = sent;
    for (int i = 0; ok && i < n; i++) {
        PGresult *res = PQgetResult(c);
        if (!res)
            break;
        if (PQresultStatus(res) == PGRES_TUPLES_OK && !pr->failed) {
            tsi_point *p;
            int k;
            if (series_points(r, res, "series_min_one", iid, &p, &k) < 0) {
                pr->failed = 2;
            } else {
                for (int j = 0; j < k; j++)
                    write_point(w, r->dl, "1min", &p[j]);
                pr->written += k;
            }
        } else if (!pr->failed) {
            pr->failed = 1;
            const char *m = PQresultErrorMessage(res);
            snprintf(pr->why, sizeof pr->why, "%s", m[0] ? m : PQerrorMessage(c));
        }
        PQclear(res);
        PGresult *extra = PQgetResult(c); /* NULL ends each part */
        if (extra) {
            PQclear(extra);
            ok = false;
        }
    }
    if (sent)
        for (PGresult *res; (res = PQgetResult(c)) != NULL;) { /* the sync */
            bool sync = PQresultStatus(res) == PGRES_PIPELINE_SYNC;
            PQclear(res);
            if (sync)
                break;
        }
    PQexitPipelineMode(c);
    if (!ok && !pr->failed) {
        pr->failed = 1;
        snprintf(pr->why, sizeof pr->why, "%s", PQerrorMessage(c));
    }
}

static int pg_minutes_streamed(tsi_req *r, PGconn *c, int64_t iid, int64_t t0, int64_t t1,
                               tsi_jsonw *w)
{
    /* parts up to the present (an end date of today reaches midnight); the last part runs
     * to t1 whatever it holds */
    int64_t now = (int64_t)time(NULL) + 3600, end = t1 < now ? t1 : now;
    int parts = end > t0 ? (int)((end - t0 + MINUTE_PART - 1) / MINUTE_PART) : 1;
    if (parts > MINUTE_PARTS)
        parts = MINUTE_PARTS;
    static atomic_int ncpu;
    if (atomic_load(&ncpu) == 0)
        atomic_store(&ncpu, (int)sysconf(_SC_NPROCESSORS_ONLN));
    int inflight = atomic_load(&tsi_api_g->inflight);
    if (inflight > atomic_load(&ncpu))
        parts = 1;
    if (parts < 1)
        parts = 1;
    bool idle = inflight * 2 <= atomic_load(&ncpu);
    int64_t len = end > t0 ? (end - t0) / parts : 0;
    len -= len % 60;
    char ts[MINUTE_PARTS + 1][32], id[24];
    for (int i = 0; i <= parts; i++)
        fmt_ts(ts[i], sizeof ts[i], i == parts ? t1 : t0 + len * i);
    snprintf(id, sizeof id, "%lld", (long long)iid);
    tsi_jsonw w0 = *w;
    size_t mark = r->body.len;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (tsi_api_worker()->pg)
            c = tsi_api_worker()->pg;
        int slot = -1, split = parts;
        PGconn *h = attempt == 0 && parts >= 2 && idle ? tsi_api_pg_borrow(r, &slot) : NULL;
        if (h) {
            split = parts / 2;
            if (!parts_send(h, id, ts, split, parts)) {
                tsi_api_pg_return(slot, true);
                h = NULL;
                split = parts;
            }
        }
        part_run own = {0};
        parts_read(r, c, split, parts_send(c, id, ts, 0, split), iid, w, &own);
        if (h && own.failed) {
            tsi_api_pg_return(slot, true); /* its parts are not wanted now */
            h = NULL;
        }
        if (h) {
            tsi_jsonw w1 = *w;
            size_t mark1 = r->body.len;
            part_run hp = {0};
            parts_read(r, h, parts - split, true, iid, w, &hp);
            tsi_api_pg_return(slot, hp.failed == 1);
            if (hp.failed == 2)
                return -1;
            if (hp.failed) { /* the helper's parts again, on the worker's connection */
                tsi_warn("api", "req=%s helper connection failed (%s): its parts read again", r->id,
                         hp.why);
                *w = w1;
                r->body.len = mark1;
                r->body.data[mark1] = '\0';
                parts_read(r, c, parts - split, parts_send(c, id, ts, split, parts), iid, w, &own);
            } else {
                own.written += hp.written;
            }
        }
        if (!own.failed)
            return own.written;
        if (own.failed == 2)
            return -1;
        *w = w0; /* nothing of a failed attempt stays in the answer */
        r->body.len = mark;
        r->body.data[mark] = '\0';
        if (PQstatus(c) == CONNECTION_OK) {
            tsi_err("api", "req=%s query series_min_one (pipelined) failed: %s", r->id, own.why);
            tsi_api_error(r, 500, "internal", NULL, "query failed (request %s)", r->id);
            return -1;
        }
        tsi_api_pg_broken(r);
        if (attempt == 0 && (c = tsi_api_pg(r)) != NULL)
            continue;
        break;
    }
    tsi_api_error(r, 503, "database_unavailable", NULL, "the database connection was lost");
    return -1;
}

/* v1's answer for a window without data (history_service.py raises ValueError → 404) */
static int no_data(tsi_req *r, const range *g, bool stats)
{
    char sd[16], ed[16];
    tsi_civil_fmt_day(sd, sizeof sd, g->d0);
    tsi_civil_fmt_day(ed, sizeof ed, g->d1);
    if (stats)
        return tsi_api_detail(r, 404, "no_data", "intersection_id",
                              "No data found for intersection %s", r->path_text);
    return tsi_api_detail(r, 404, "no_data", "intersection_id",
                          "No data found for intersection %s between %s and %s", r->path_text, sd,
                          ed);
}

/* the intersection_id of a history or stats object: the path's text in v1 (a string),
 * else the integer */
static void kv_id(tsi_jsonw *w, const tsi_dialect *dl, const char *text, int64_t id)
{
    if (dl->ids_as_text) {
        char b[24];
        if (!text) {
            snprintf(b, sizeof b, "%lld", (long long)id);
            text = b;
        }
        tsi_jsonw_kv_str(w, "intersection_id", text);
    } else {
        tsi_jsonw_kv_int(w, "intersection_id", id);
    }
}

static int history_once(tsi_req *r, bool all)
{
    const tsi_dialect *dl = r->dl;
    range g = {0};
    if (arg_range(r, &g, all ? RANGE_ALL : RANGE_ONE) < 0 || arg_agg(r, &g, all) < 0)
        return 0;
    int64_t t0, t1;
    range_instants(&g, &t0, &t1);
    char sd[48], ed[48];
    tsi_dialect_range(dl, sd, sizeof sd, g.d0, false);
    tsi_dialect_range(dl, ed, sizeof ed, g.d1, true);
    if (!all && r->path_id < 0) /* v1: the original read any text; nothing has that id */
        return dl->ids_as_text ? no_data(r, &g, false) : (need_id(r), 0);
    if (g.empty) {
        if (!all)
            return no_data(r, &g, false);
        if (dl->all_as_list) {
            tsi_buf_puts(&r->body, "[]");
            return 0;
        }
    }
    bool parquet = tsi_api_use_parquet();
    PGconn *c = NULL;
    if (!parquet) {
        c = tsi_api_pg(r);
        if (!c) {
            if (tsi_api_g->source_mode != TSI_SRC_AUTO)
                return tsi_api_error(r, 503, "database_unavailable", NULL,
                                     "the database is unreachable");
            parquet = true;
        }
    }
    r->data_source = parquet ? "parquet" : "postgres";
    if (parquet)
        atomic_fetch_add(&tsi_api_g->m.parquet_answers, 1);

    /* which intersections, with names */
    int nint = 0;
    int64_t *iids = NULL;
    char **names = NULL;
    char cached[256];
    double cla, clo;
    if (!parquet && !all && tsi_api_int_info(r->path_id, cached, sizeof cached, &cla, &clo)) {
        /* known from the server's cache of intersections (refreshed every 30 s): one
         * round trip less; unknown ids still ask the database */
        iids = tsi_arena_alloc(r->arena, sizeof *iids);
        names = tsi_arena_alloc(r->arena, sizeof *names);
        iids[0] = r->path_id;
        names[0] = tsi_arena_strdup(r->arena, cached);
        nint = 1;
    } else if (!parquet) {
        char one[32];
        snprintf(one, sizeof one, "{%lld}", (long long)r->path_id);
        const char *v[1] = {all ? NULL : one};
        PGresult *res = run(r, c, "names", 1, v);
        if (!res)
            return 0;
        nint = PQntuples(res);
        iids = tsi_arena_alloc(r->arena, sizeof *iids * (size_t)(nint + 1));
        names = tsi_arena_alloc(r->arena, sizeof *names * (size_t)(nint + 1));
        for (int i = 0; i < nint; i++) {
            iids[i] = ival(res, i, 0);
            names[i] = tsi_arena_strdup(r->arena, PQgetvalue(res, i, 1));
        }
        PQclear(res);
    } else {
        if (all)
            return tsi_api_error(r, 503, "database_unavailable", NULL,
                                 "history of all intersections needs the database");
        char nm[256];
        double la, lo;
        iids = tsi_arena_alloc(r->arena, sizeof *iids);
        names = tsi_arena_alloc(r->arena, sizeof *names);
        if (tsi_api_int_info(r->path_id, nm, sizeof nm, &la, &lo)) {
            iids[0] = r->path_id;
            names[0] = tsi_arena_strdup(r->arena, nm);
            nint = 1;
        }
    }
    if (!all && nint == 0)
        return dl->empty_is_404 ? no_data(r, &g, false)
                                : tsi_api_error(r, 404, "not_found", "intersection_id",
                                                "Intersection not found");

    tsi_point *pts = NULL, *old = NULL;
    int np = 0, nold = 0;
    /* one intersection's minutes from PostgreSQL: encoded while they arrive (below) */
    bool stream = !parquet && !all && strcmp(g.agg, "1min") == 0;
    int64_t pg_from = t1;
    if (parquet) {
        if (tsi_fb_series(r, r->path_id, t0, t1, g.agg, &pts, &np) < 0)
            return 0;
    } else {
        char one[32];
        snprintf(one, sizeof one, "{%lld}", (long long)r->path_id);
        int64_t pg0 = t0;
        if (!all && strcmp(g.agg, "1min") == 0) {
            /* 1-minute rows older than 48 h come from the indices Parquet archive */
            int64_t cutoff = (int64_t)time(NULL) - 48 * 3600;
            cutoff -= cutoff % 60;
            if (t0 < cutoff) {
                int64_t e = t1 < cutoff ? t1 : cutoff;
                if (tsi_fb_series(r, r->path_id, t0, e, g.agg, &old, &nold) < 0) {
                    /* no archive: those minutes are a gap */
                    tsi_buf_reset(&r->body);
                    r->status = 200;
                    r->err_code = NULL;
                    r->err_field = NULL;
                    nold = 0;
                }
                pg0 = e;
            }
        }
        pg_from = pg0;
        if (!stream && pg0 < t1 && pg_series(r, c, all ? NULL : one, pg0, t1, g.agg, &pts, &np) < 0)
            return 0;
    }
    tsi_jsonw w;
    tsi_jsonw_init(&w, &r->body);
    if (!all) {
        tsi_jsonw_object(&w);
        kv_id(&w, dl, r->path_text, r->path_id);
        tsi_jsonw_kv_str(&w, "intersection_name", names[0]);
        tsi_jsonw_key(&w, "data_points");
        tsi_jsonw_array(&w);
        for (int i = 0; i < nold; i++)
            write_point(&w, dl, g.agg, &old[i]);
        for (int i = 0; i < np; i++)
            write_point(&w, dl, g.agg, &pts[i]);
        if (stream && pg_from < t1) {
            if ((np = pg_minutes_streamed(r, c, r->path_id, pg_from, t1, &w)) < 0)
                return 0;
        }
        if (nold + np == 0 && dl->empty_is_404)
            return no_data(r, &g, false);
        tsi_jsonw_end(&w);
        tsi_jsonw_kv_str(&w, "start_date", sd);
        tsi_jsonw_kv_str(&w, "end_date", ed);
        tsi_jsonw_kv_int(&w, "total_points", nold + np);
        tsi_jsonw_kv_str(&w, "aggregation", g.agg);
        tsi_jsonw_end(&w);
        r->status = 200;
        return 0;
    }
    if (!dl->all_as_list) {
        tsi_jsonw_object(&w);
        tsi_jsonw_kv_str(&w, "start_date", sd);
        tsi_jsonw_kv_str(&w, "end_date", ed);
        tsi_jsonw_kv_str(&w, "aggregation", g.agg);
        tsi_jsonw_key(&w, "intersections");
    }
    tsi_jsonw_array(&w);
    int j = 0;
    for (int i = 0; i < nint; i++) {
        int j0 = j;
        while (j0 < np && pts[j0].iid < iids[i])
            j0++;
        int cnt = 0;
        while (j0 + cnt < np && pts[j0 + cnt].iid == iids[i])
            cnt++;
        j = j0 + cnt;
        if (cnt == 0 && dl->all_as_list) /* the original listed intersections with data */
            continue;
        tsi_jsonw_object(&w);
        kv_id(&w, dl, NULL, iids[i]);
        tsi_jsonw_kv_str(&w, "intersection_name", names[i]);
        tsi_jsonw_key(&w, "data_points");
        tsi_jsonw_array(&w);
        for (int k = j0; k < j; k++)
            write_point(&w, dl, g.agg, &pts[k]);
        tsi_jsonw_end(&w);
        if (dl->all_as_list) {
            tsi_jsonw_kv_str(&w, "start_date", sd);
            tsi_jsonw_kv_str(&w, "end_date", ed);
        }
        tsi_jsonw_kv_int(&w, "total_points", cnt);
        if (dl->all_as_list)
            tsi_jsonw_kv_str(&w, "aggregation", g.agg);
        tsi_jsonw_end(&w);
    }
    tsi_jsonw_end(&w);
    if (!dl->all_as_list) {
        tsi_jsonw_kv_int(&w, "total_points", np);
        tsi_jsonw_end(&w);
    }
    r->status = 200;
    return 0;
}

/* ---- stats, compare, ranking ----------------------------------------------------------------- */
typedef struct {
    tsi_stats s;
    const char *name;
    double lat, lon;
} stat_row;

/* Python's round(x, 2): the correctly rounded decimal of the double (ties to even on
 * the exact binary value), which is what printf's %.2f writes */
static double round2(double x)
{
    char b[64];
    snprintf(b, sizeof b, "%.2f", x);
    return strtod(b, NULL);
}

/* one statistics object (history_service.get_aggregate_stats; v2: tsi's, with nulls for a
 * window without data). sd/ed: the requested range's texts; text: the id as asked (v1) */
static void write_stats(tsi_jsonw *w, const tsi_dialect *dl, const stat_row *x, const char *sd,
                        const char *ed, const char *text)
{
    kv_id(w, dl, text, x->s.iid);
    tsi_jsonw_kv_str(w, "intersection_name", x->name);
    bool none = x->s.n <= 0;
    if (dl->stats_period_data && !none && isfinite(x->s.first)) {
        char f[TSI_DIALECT_TIME_MAX], l[TSI_DIALECT_TIME_MAX];
        tsi_dialect_time(dl, f, (int64_t)x->s.first);
        tsi_dialect_time(dl, l, (int64_t)x->s.last);
        tsi_jsonw_kv_str(w, "period_start", f);
        tsi_jsonw_kv_str(w, "period_end", l);
    } else {
        tsi_jsonw_kv_str(w, "period_start", sd);
        tsi_jsonw_kv_str(w, "period_end", ed);
    }
    /* pandas' std of one value is NaN, which the original answered 0.0 */
    double sd_ = x->s.n < 2 ? (dl->empty_is_404 ? 0.0 : NAN) : x->s.std;
    double pct = none ? NAN : 100.0 * x->s.hr / x->s.n;
    if (dl->empty_is_404 && !none)
        pct = round2(pct);
    kv_float(w, dl, "avg_safety_index", none ? NAN : x->s.avg);
    kv_float(w, dl, "min_safety_index", none ? NAN : x->s.min);
    kv_float(w, dl, "max_safety_index", none ? NAN : x->s.max);
    kv_float(w, dl, "std_safety_index", none ? NAN : sd_);
    tsi_jsonw_kv_int(w, "total_traffic_volume", (int64_t)llround(x->s.vol));
    kv_float(w, dl, "avg_traffic_volume", none ? NAN : x->s.vol / x->s.n);
    tsi_jsonw_kv_int(w, "high_risk_intervals", (int64_t)llround(x->s.hr));
    kv_float(w, dl, "high_risk_percentage", pct);
    tsi_jsonw_kv_int(w, "data_minutes", (int64_t)llround(x->s.n));
    if (!none)
        tsi_jsonw_kv_str(w, "risk_level", risk_level(x->s.avg));
    else
        tsi_jsonw_kv_null(w, "risk_level");
}

/* stats of ids (text array or NULL = all) from PostgreSQL; rows in the arena */
static int pg_stats(tsi_req *r, PGconn *c, const char *ids, int64_t t0, int64_t t1, stat_row **out,
                    int *n)
{
    char a0[32], a1[32];
    fmt_ts(a0, sizeof a0, t0);
    fmt_ts(a1, sizeof a1, t1);
    const char *v[3] = {ids, a0, a1};
    PGresult *res = run(r, c, "stats", 3, v);
    if (!res)
        return -1;
    int k = PQntuples(res);
    stat_row *x = tsi_arena_calloc(r->arena, sizeof *x * (size_t)(k ? k : 1));
    for (int i = 0; i < k; i++) {
        x[i].s.iid = ival(res, i, 0);
        x[i].name = tsi_arena_strdup(r->arena, PQgetvalue(res, i, 1));
        x[i].s.n = dval(res, i, 2, NULL);
        x[i].s.avg = dval(res, i, 3, NULL);
        x[i].s.min = dval(res, i, 4, NULL);
        x[i].s.max = dval(res, i, 5, NULL);
        x[i].s.std = dval(res, i, 6, NULL);
        x[i].s.vol = dval(res, i, 7, NULL);
        x[i].s.hr = dval(res, i, 8, NULL);
        x[i].lat = dval(res, i, 9, NULL);
        x[i].lon = dval(res, i, 10, NULL);
        x[i].s.first = dval(res, i, 11, NULL);
        x[i].s.last = dval(res, i, 12, NULL);
    }
    PQclear(res);
    *out = x;
    *n = k;
    return 0;
}

static int stats_once(tsi_req *r)
{
    const tsi_dialect *dl = r->dl;
    range g = {0};
    if (arg_range(r, &g, RANGE_STATS) < 0)
        return 0;
    int64_t t0, t1;
    range_instants(&g, &t0, &t1);
    char sd[48], ed[48];
    tsi_dialect_range(dl, sd, sizeof sd, g.d0, false);
    tsi_dialect_range(dl, ed, sizeof ed, g.d1, true);
    if (r->path_id < 0) /* v1: the original read any text; nothing has that id */
        return dl->ids_as_text ? no_data(r, &g, true) : (need_id(r), 0);
    if (g.empty)
        return no_data(r, &g, true);
    stat_row one = {0}, *rows = NULL;
    int n = 0;
    bool parquet = tsi_api_use_parquet();
    PGconn *c = NULL;
    if (!parquet && !(c = tsi_api_pg(r))) {
        if (tsi_api_g->source_mode != TSI_SRC_AUTO)
            return tsi_api_error(r, 503, "database_unavailable", NULL,
                                 "the database is unreachable");
        parquet = true;
    }
    if (parquet) {
        r->data_source = "parquet";
        atomic_fetch_add(&tsi_api_g->m.parquet_answers, 1);
        char nm[256];
        if (!tsi_api_int_info(r->path_id, nm, sizeof nm, &one.lat, &one.lon))
            return dl->empty_is_404 ? no_data(r, &g, true)
                                    : tsi_api_error(r, 404, "not_found", "intersection_id",
                                                    "Intersection not found");
        one.name = tsi_arena_strdup(r->arena, nm);
        if (tsi_fb_stats(r, r->path_id, t0, t1, &one.s) < 0)
            return 0;
        rows = &one;
        n = 1;
    } else {
        r->data_source = "postgres";
        char ids[32];
        snprintf(ids, sizeof ids, "{%lld}", (long long)r->path_id);
        if (pg_stats(r, c, ids, t0, t1, &rows, &n) < 0)
            return 0;
        if (n == 0)
            return dl->empty_is_404 ? no_data(r, &g, true)
                                    : tsi_api_error(r, 404, "not_found", "intersection_id",
                                                    "Intersection not found");
    }
    if (rows[0].s.n <= 0 && dl->empty_is_404)
        return no_data(r, &g, true);
    tsi_jsonw w;
    tsi_jsonw_init(&w, &r->body);
    tsi_jsonw_object(&w);
    write_stats(&w, dl, &rows[0], sd, ed, r->path_text);
    tsi_jsonw_end(&w);
    return 0;
}

/* auto mode: a query that found the database gone is answered again from Parquet */
static bool retry_on_parquet(tsi_req *r)
{
    if (r->status != 503 || tsi_api_g->source_mode != TSI_SRC_AUTO || !tsi_api_use_parquet())
        return false;
    tsi_buf_reset(&r->body);
    r->status = 200;
    r->err_code = NULL;
    r->err_field = NULL;
    r->content_type = "application/json";
    return true;
}

static int history(tsi_req *r, bool all)
{
    history_once(r, all);
    if (retry_on_parquet(r))
        history_once(r, all);
    return 0;
}

int tsi_h_history_one(tsi_req *r)
{
    return history(r, false);
}

int tsi_h_history_all(tsi_req *r)
{
    return history(r, true);
}

int tsi_h_stats(tsi_req *r)
{
    stats_once(r);
    if (retry_on_parquet(r))
        stats_once(r);
    return 0;
}

int tsi_h_compare(tsi_req *r)
{
    const char *v = tsi_req_arg(r, "ids");
    if (!v)
        return tsi_api_error(r, 400, "missing_parameter", "ids",
                             "ids is required (comma-separated intersection ids)");
    /* parse "1,2,3": 1..100 non-negative integers */
    tsi_buf arr = TSI_BUF_INIT;
    tsi_buf_putc(&arr, '{');
    int count = 0;
    const char *p = v;
    while (1) {
        size_t l = strcspn(p, ",");
        if (l == 0 || l > 18 || strspn(p, "0123456789") != l) {
            tsi_buf_free(&arr);
            return bad(r, "ids", "%s must be comma-separated non-negative integers", v);
        }
        if (++count > 100) {
            tsi_buf_free(&arr);
            return bad(r, "ids", "%s lists more than 100 intersections", v);
        }
        if (count > 1)
            tsi_buf_putc(&arr, ',');
        tsi_buf_append(&arr, p, l);
        p += l;
        if (*p == '\0')
            break;
        p++;
    }
    tsi_buf_putc(&arr, '}');
    range g = {0};
    if (arg_range(r, &g, RANGE_OTHER) < 0) {
        tsi_buf_free(&arr);
        return 0;
    }
    int64_t t0, t1;
    range_instants(&g, &t0, &t1);
    PGconn *c = need_pg(r);
    if (!c) {
        tsi_buf_free(&arr);
        return 0;
    }
    r->data_source = "postgres";
    stat_row *rows;
    int n;
    int rc = pg_stats(r, c, arr.data, t0, t1, &rows, &n);
    tsi_buf_free(&arr);
    if (rc < 0)
        return 0;
    const tsi_dialect *dl = r->dl;
    char sd[48], ed[48];
    tsi_dialect_range(dl, sd, sizeof sd, g.d0, false);
    tsi_dialect_range(dl, ed, sizeof ed, g.d1, true);
    /* v1's stats objects have no nulls: an intersection without data in the window is
     * listed with the unknown ones */
    int k = 0;
    for (int i = 0; i < n; i++)
        if (!dl->empty_is_404 || rows[i].s.n > 0)
            rows[k++] = rows[i];
    n = k;
    tsi_jsonw w;
    tsi_jsonw_init(&w, &r->body);
    tsi_jsonw_object(&w);
    tsi_jsonw_kv_str(&w, "start_date", sd);
    tsi_jsonw_kv_str(&w, "end_date", ed);
    tsi_jsonw_key(&w, "intersections");
    tsi_jsonw_array(&w);
    for (int i = 0; i < n; i++) {
        tsi_jsonw_object(&w);
        write_stats(&w, dl, &rows[i], sd, ed, NULL);
        tsi_jsonw_end(&w);
    }
    tsi_jsonw_end(&w);
    tsi_jsonw_key(&w, "not_found");
    tsi_jsonw_array(&w);
    p = v;
    while (*p) {
        size_t l = strcspn(p, ",");
        long long id = strtoll(p, NULL, 10);
        bool found = false;
        for (int i = 0; i < n && !found; i++)
            found = rows[i].s.iid == id;
        if (!found)
            tsi_jsonw_int(&w, id);
        p += l;
        if (*p)
            p++;
    }
    tsi_jsonw_end(&w);
    tsi_jsonw_end(&w);
    return 0;
}

static const char *const metrics_[] = {
    "avg_si",       "max_si",    "min_si", "std_si", "high_risk_minutes", "high_risk_percentage",
    "total_volume", "avg_volume"};

static double metric_of(const stat_row *x, int m)
{
    switch (m) {
    case 0:
        return x->s.avg;
    case 1:
        return x->s.max;
    case 2:
        return x->s.min;
    case 3:
        return x->s.n >= 2 ? x->s.std : NAN;
    case 4:
        return x->s.hr;
    case 5:
        return 100.0 * x->s.hr / x->s.n;
    case 6:
        return x->s.vol;
    default:
        return x->s.vol / x->s.n;
    }
}

static int rank_metric, rank_desc;
static int cmp_rank(const void *a, const void *b)
{
    const stat_row *x = a, *y = b;
    double u = metric_of(x, rank_metric), v = metric_of(y, rank_metric);
    if (isnan(u) != isnan(v))
        return isnan(u) ? 1 : -1;
    if (u != v)
        return (u < v) == !rank_desc ? -1 : 1;
    return x->s.iid < y->s.iid ? -1 : x->s.iid > y->s.iid;
}
static pthread_mutex_t rank_mu = PTHREAD_MUTEX_INITIALIZER;

int tsi_h_ranking(tsi_req *r)
{
    const char *mv = tsi_req_arg(r, "metric");
    int m = 0;
    if (mv) {
        m = -1;
        for (int i = 0; i < (int)(sizeof metrics_ / sizeof *metrics_); i++)
            if (strcmp(mv, metrics_[i]) == 0)
                m = i;
        if (m < 0)
            return bad(r, "metric",
                       "%s must be one of avg_si, max_si, min_si, std_si, high_risk_minutes,"
                       " high_risk_percentage, total_volume, avg_volume",
                       mv);
    }
    const char *ov = tsi_req_arg(r, "order");
    bool desc = true;
    if (ov) {
        if (strcmp(ov, "asc") == 0)
            desc = false;
        else if (strcmp(ov, "desc") != 0)
            return bad(r, "order", "%s must be asc or desc", ov);
    }
    long long limit;
    double min_index;
    const char *rl;
    range g = {0};
    if (arg_int(r, "limit", 1, 1000, 10, &limit) < 0 ||
        arg_num(r, "min_index", 0, false, 100, 0, &min_index) < 0 || arg_risk(r, &rl) < 0 ||
        arg_range(r, &g, RANGE_OTHER) < 0)
        return 0;
    int64_t t0, t1;
    range_instants(&g, &t0, &t1);
    const tsi_dialect *dl = r->dl;
    PGconn *c = need_pg(r);
    if (!c)
        return 0;
    r->data_source = "postgres";
    stat_row *rows;
    int n;
    if (pg_stats(r, c, NULL, t0, t1, &rows, &n) < 0)
        return 0;
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (rows[i].s.n <= 0 || rows[i].s.avg < min_index)
            continue;
        if (rl && strcmp(risk_level(rows[i].s.avg), rl) != 0)
            continue;
        rows[k++] = rows[i];
    }
    pthread_mutex_lock(&rank_mu);
    rank_metric = m;
    rank_desc = desc;
    qsort(rows, (size_t)k, sizeof *rows, cmp_rank);
    pthread_mutex_unlock(&rank_mu);
    char sd[48], ed[48];
    tsi_dialect_range(dl, sd, sizeof sd, g.d0, false);
    tsi_dialect_range(dl, ed, sizeof ed, g.d1, true);
    tsi_jsonw w;
    tsi_jsonw_init(&w, &r->body);
    tsi_jsonw_object(&w);
    tsi_jsonw_kv_str(&w, "metric", metrics_[m]);
    tsi_jsonw_kv_str(&w, "order", desc ? "desc" : "asc");
    tsi_jsonw_kv_str(&w, "start_date", sd);
    tsi_jsonw_kv_str(&w, "end_date", ed);
    tsi_jsonw_kv_int(&w, "total", k);
    tsi_jsonw_key(&w, "items");
    tsi_jsonw_array(&w);
    for (int i = 0; i < k && i < limit; i++) {
        tsi_jsonw_object(&w);
        tsi_jsonw_kv_int(&w, "rank", i + 1);
        if (m == 4 || m == 6) /* counts: integers */
            tsi_jsonw_kv_int(&w, "value", (int64_t)llround(metric_of(&rows[i], m)));
        else
            kv_float(&w, dl, "value", metric_of(&rows[i], m));
        write_stats(&w, dl, &rows[i], sd, ed, NULL);
        kv_float(&w, dl, "latitude", rows[i].lat);
        kv_float(&w, dl, "longitude", rows[i].lon);
        tsi_jsonw_end(&w);
    }
    tsi_jsonw_end(&w);
    tsi_jsonw_end(&w);
    return 0;
}

/* ---- spatial ----------------------------------------------------------------------------------
 */
/* [{"lat":..,"lon":..}, ...] → "{..}" arrays of lat and lon; count in *n */
static int arg_points(tsi_req *r, const char *name, int min, int max, tsi_buf *lats, tsi_buf *lons,
                      int *n, bool close_ring)
{
    const char *v = tsi_req_arg(r, name);
    if (!v) {
        tsi_api_error(r, 400, "missing_parameter", name,
                      "%s is required: a JSON array of {\"lat\":..,\"lon\":..}", name);
        return -1;
    }
    tsi_json d;
    tsi_error e = {0};
    /* 5 tokens per point ({, 2 keys, 2 values; the counting pass over-estimates): more points
     * than allowed still parse, so that too many points gets its own answer */
    if (tsi_json_parse_alloc(&d, v, strlen(v), 8 * (max + 1) + 16, &e) < 0) {
        tsi_json_free(&d);
        return bad(r, name, "%s must be a JSON array of {\"lat\":..,\"lon\":..} objects", v);
    }
    if (!tsi_json_is_array(&d, 0)) {
        tsi_json_free(&d);
        return bad(r, name, "%s must be a JSON array", v);
    }
    int k = 0;
    double flat = 0, flon = 0, llat = 0, llon = 0;
    tsi_buf_putc(lats, '{');
    tsi_buf_putc(lons, '{');
    for (int i = tsi_json_first(&d, 0); i >= 0; i = tsi_json_next(&d, 0, i)) {
        double la, lo;
        if (!tsi_json_is_object(&d, i) || tsi_json_num(&d, tsi_json_get(&d, i, "lat"), &la) < 0 ||
            tsi_json_num(&d, tsi_json_get(&d, i, "lon"), &lo) < 0) {
            tsi_json_free(&d);
            char msg[96];
            snprintf(msg, sizeof msg, "point %d", k + 1);
            return bad(r, name, "%s: every point needs numeric lat and lon", msg);
        }
        if (la < -90 || la > 90 || lo < -180 || lo > 180) {
            tsi_json_free(&d);
            tsi_api_error(r, 400, "invalid_parameter", name,
                          "%s: point %d is outside lat -90..90, lon -180..180", name, k + 1);
            return -1;
        }
        if (++k > max) {
            tsi_json_free(&d);
            tsi_api_error(r, 400, "too_many_points", name, "%s has more than %d points", name, max);
            return -1;
        }
        if (k == 1) {
            flat = la;
            flon = lo;
        }
        llat = la;
        llon = lo;
        if (k > 1) {
            tsi_buf_putc(lats, ',');
            tsi_buf_putc(lons, ',');
        }
        tsi_buf_printf(lats, "%.17g", la);
        tsi_buf_printf(lons, "%.17g", lo);
    }
    tsi_json_free(&d);
    if (close_ring && k > 1 && flat == llat && flon == llon) {
        /* an explicitly closed ring: drop the repeated vertex (the SQL closes it) */
        k--;
        char *cl = strrchr(lats->data, ',');
        char *co = strrchr(lons->data, ',');
        *cl = '\0';
        lats->len = (size_t)(cl - lats->data);
        *co = '\0';
        lons->len = (size_t)(co - lons->data);
    }
    tsi_buf_putc(lats, '}');
    tsi_buf_putc(lons, '}');
    if (k < min) {
        tsi_api_error(r, 400, "too_few_points", name, "%s needs at least %d distinct points", name,
                      min);
        return -1;
    }
    *n = k;
    return 0;
}

static int spatial(tsi_req *r, int kind)
{
    double min_index;
    const char *rl;
    const char *fmt = tsi_req_arg(r, "format");
    bool geo = false;
    if (fmt) {
        if (strcmp(fmt, "geojson") == 0)
            geo = true;
        else if (strcmp(fmt, "json") != 0)
            return bad(r, "format", "%s must be json or geojson", fmt);
    }
    if (arg_num(r, "min_index", 0, false, 100, -1, &min_index) < 0 || arg_risk(r, &rl) < 0)
        return 0;
    tsi_buf lats = TSI_BUF_INIT, lons = TSI_BUF_INIT;
    char p1[64], p2[64], p3[64];
    const char *v[3];
    const char *stmt;
    int np = 0;
    if (kind == R_NEARBY) {
        double lat, lon, radius;
        if (arg_num(r, "lat", -90, false, 90, NAN, &lat) < 0 ||
            arg_num(r, "lon", -180, false, 180, NAN, &lon) < 0 ||
            arg_num(r, "radius", 0, true, 200000, 1000, &radius) < 0)
            return 0;
        snprintf(p1, sizeof p1, "%.17g", lat);
        snprintf(p2, sizeof p2, "%.17g", lon);
        snprintf(p3, sizeof p3, "%.17g", radius);
        v[0] = p1;
        v[1] = p2;
        v[2] = p3;
        stmt = "nearby";
    } else {
        bool route = kind == R_ROUTE;
        double buffer = 0;
        if (route && arg_num(r, "buffer", 0, true, 200000, 100, &buffer) < 0)
            return 0;
        if (arg_points(r, route ? "waypoints" : "polygon", route ? 2 : 3, 1000, &lats, &lons, &np,
                       !route) < 0) {
            tsi_buf_free(&lats);
            tsi_buf_free(&lons);
            return 0;
        }
        snprintf(p3, sizeof p3, "%.17g", buffer);
        v[0] = lats.data;
        v[1] = lons.data;
        v[2] = p3;
        stmt = route ? "route" : "area";
    }
    if (tsi_api_use_parquet()) {
        tsi_buf_free(&lats);
        tsi_buf_free(&lons);
        return tsi_api_error(r, 503, "spatial_unavailable", NULL,
                             "spatial queries need PostgreSQL/PostGIS; the server reads from the"
                             " Parquet archive now");
    }
    PGconn *c = tsi_api_pg(r);
    if (!c) {
        tsi_buf_free(&lats);
        tsi_buf_free(&lons);
        return tsi_api_error(r, 503, "spatial_unavailable", NULL,
                             "spatial queries need PostgreSQL/PostGIS, which is unreachable now;"
                             " try again shortly");
    }
    r->data_source = "postgres";
    if (kind == R_AREA) {
        PGresult *chk = run(r, c, "area_check", 2, v);
        if (!chk) {
            tsi_buf_free(&lats);
            tsi_buf_free(&lons);
            return 0;
        }
        bool ok = PQntuples(chk) == 1 && strcmp(PQgetvalue(chk, 0, 0), "t") == 0;
        if (!ok) {
            char reason[200];
            snprintf(reason, sizeof reason, "%s",
                     PQntuples(chk) == 1 ? PQgetvalue(chk, 0, 1) : "invalid");
            PQclear(chk);
            tsi_buf_free(&lats);
            tsi_buf_free(&lons);
            return tsi_api_error(r, 400, "invalid_polygon", "polygon",
                                 "polygon is not a valid simple polygon: %s", reason);
        }
        PQclear(chk);
    }
    PGresult *res = run(r, c, stmt, kind == R_AREA ? 2 : 3, v);
    tsi_buf_free(&lats);
    tsi_buf_free(&lons);
    if (!res) {
        if (r->status == 503)
            return tsi_api_error(r, 503, "spatial_unavailable", NULL,
                                 "spatial queries need PostgreSQL/PostGIS, which is unreachable"
                                 " now; try again shortly");
        return 0;
    }
    tsi_jsonw w;
    tsi_jsonw_init(&w, &r->body);
    if (geo) {
        r->content_type = "application/geo+json";
        tsi_jsonw_object(&w);
        tsi_jsonw_kv_str(&w, "type", "FeatureCollection");
        tsi_jsonw_key(&w, "features");
    }
    tsi_jsonw_array(&w);
    int count = 0;
    for (int i = 0; i < PQntuples(res); i++) {
        bool has = !PQgetisnull(res, i, 4);
        bool ebnull;
        double eb = dval(res, i, 6, &ebnull);
        double si = has ? (ebnull ? dval(res, i, 5, NULL) : eb) : NAN;
        if (min_index >= 0 && (isnan(si) || si < min_index))
            continue;
        if (rl && (isnan(si) || strcmp(risk_level(si), rl) != 0))
            continue;
        count++;
        tsi_jsonw_object(&w);
        if (geo) {
            tsi_jsonw_kv_str(&w, "type", "Feature");
            tsi_jsonw_key(&w, "geometry");
            tsi_jsonw_object(&w);
            tsi_jsonw_kv_str(&w, "type", "Point");
            tsi_jsonw_key(&w, "coordinates");
            tsi_jsonw_array(&w);
            tsi_jsonw_double(&w, dval(res, i, 3, NULL));
            tsi_jsonw_double(&w, dval(res, i, 2, NULL));
            tsi_jsonw_end(&w);
            tsi_jsonw_end(&w);
            tsi_jsonw_kv_int(&w, "id", ival(res, i, 0));
            tsi_jsonw_key(&w, "properties");
            tsi_jsonw_object(&w);
        }
        write_index_obj(&w, r->dl, res, i, 4, false);
        if (kind != R_AREA)
            kv_pg(&w, r->dl, "distance_m", res, i, 13);
        if (geo)
            tsi_jsonw_end(&w);
        tsi_jsonw_end(&w);
    }
    tsi_jsonw_end(&w);
    if (geo)
        tsi_jsonw_end(&w);
    (void)count;
    (void)np;
    PQclear(res);
    return 0;
}

int tsi_h_nearby(tsi_req *r)
{
    return spatial(r, R_NEARBY);
}

int tsi_h_route(tsi_req *r)
{
    return spatial(r, R_ROUTE);
}

int tsi_h_area(tsi_req *r)
{
    return spatial(r, R_AREA);
}

/* ---- /intersections/geometry -------------------------------------------------------------
 * The lane polylines of MapData (intersections.metadata.lane_geometry) of the intersections
 * in a bbox, as a GeoJSON FeatureCollection of LineStrings: the dashboard draws them when
 * zoomed in, so the current-index payload stays small (issue 16). */
int tsi_h_geometry(tsi_req *r)
{
    const char *bb = tsi_req_arg(r, "bbox");
    if (!bb)
        return tsi_api_error(r, 400, "missing_parameter", "bbox",
                             "bbox is required: min_lon,min_lat,max_lon,max_lat");
    double b[4];
    int nb = 0;
    const char *p = bb;
    while (nb < 5) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        char one[48];
        if (nb == 4 || l == 0 || l >= sizeof one)
            return bad(r, "bbox", "%s must be four numbers min_lon,min_lat,max_lon,max_lat", bb);
        memcpy(one, p, l);
        one[l] = '\0';
        if (!parse_num(one, &b[nb]))
            return bad(r, "bbox", "%s must be four numbers min_lon,min_lat,max_lon,max_lat", bb);
        nb++;
        if (!e)
            break;
        p = e + 1;
    }
    if (nb != 4)
        return bad(r, "bbox", "%s must be four numbers min_lon,min_lat,max_lon,max_lat", bb);
    if (fabs(b[0]) > 180 || fabs(b[2]) > 180 || fabs(b[1]) > 90 || fabs(b[3]) > 90)
        return bad(r, "bbox", "%s must have longitudes in [-180, 180] and latitudes in [-90, 90]",
                   bb);
    if (!(b[0] < b[2]) || !(b[1] < b[3]))
        return bad(r, "bbox", "%s must have min_lon < max_lon and min_lat < max_lat", bb);
    if (b[2] - b[0] > 1 || b[3] - b[1] > 1)
        return bad(r, "bbox", "%s must span at most 1 degree each way (zoom in)", bb);
    long long limit;
    if (arg_int(r, "limit", 1, 5000, 1000, &limit) < 0)
        return 0;
    if (tsi_api_use_parquet())
        return tsi_api_error(r, 503, "geometry_unavailable", NULL,
                             "lane geometry is kept in PostgreSQL; the server reads from the"
                             " Parquet archive now");
    PGconn *c = tsi_api_pg(r);
    if (!c)
        return tsi_api_error(r, 503, "geometry_unavailable", NULL,
                             "lane geometry is kept in PostgreSQL, which is unreachable now;"
                             " try again shortly");
    r->data_source = "postgres";
    char v0[40], v1[40], v2[40], v3[40], v4[24];
    snprintf(v0, sizeof v0, "%.17g", b[0]);
    snprintf(v1, sizeof v1, "%.17g", b[1]);
    snprintf(v2, sizeof v2, "%.17g", b[2]);
    snprintf(v3, sizeof v3, "%.17g", b[3]);
    snprintf(v4, sizeof v4, "%lld", limit);
    const char *v[5] = {v0, v1, v2, v3, v4};
    PGresult *res = run(r, c, "geometry", 5, v);
    if (!res)
        return 0;
    r->content_type = "application/geo+json";
    tsi_jsonw w;
    tsi_jsonw_init(&w, &r->body);
    tsi_jsonw_object(&w);
    tsi_jsonw_kv_str(&w, "type", "FeatureCollection");
    tsi_jsonw_key(&w, "bbox");
    tsi_jsonw_array(&w);
    for (int i = 0; i < 4; i++)
        tsi_jsonw_double(&w, b[i]);
    tsi_jsonw_end(&w);
    tsi_jsonw_key(&w, "features");
    tsi_jsonw_array(&w);
    long long nisect = 0, last = -1;
    bool truncated = false;
    for (int i = 0; i < PQntuples(res); i++) {
        long long id = ival(res, i, 0);
        if (id != last) {
            if (nisect == limit) {
                truncated = true;
                break;
            }
            nisect++;
            last = id;
        }
        const char *f = PQgetvalue(res, i, 1);
        tsi_jsonw_raw(&w, f, strlen(f)); /* jsonb text from PostgreSQL: valid JSON */
    }
    tsi_jsonw_end(&w);
    tsi_jsonw_kv_int(&w, "intersections", nisect);
    tsi_jsonw_kv_bool(&w, "truncated", truncated);
    tsi_jsonw_end(&w);
    PQclear(res);
    return 0;
}

/* A stored time as the dialect writes it, from PostgreSQL's UTC text
 * "YYYY-MM-DDTHH:MM:SS.ffffff" (Q_INTERSECTION): v2 keeps milliseconds and Z (tsi's
 * format since the first version); v1 writes pydantic's naive form, the fraction only
 * when it is not zero. */
static void stamp_text(const tsi_dialect *dl, char *b, size_t len, const char *pg)
{
    if (!dl->naive_time) {
        snprintf(b, len, "%.23sZ", pg);
        return;
    }
    bool zero = strlen(pg) < 26 || strspn(pg + 20, "0") >= 6;
    snprintf(b, len, "%.*s", zero ? 19 : 26, pg);
}

/* ---- /intersections/{id} ------------------------------------------------------------------------
 */
int tsi_h_intersection(tsi_req *r)
{
    if (!need_id(r))
        return 0;
    PGconn *c = tsi_api_pg(r);
    if (!c) {
        char nm[256];
        double la, lo;
        if (tsi_api_g->source_mode == TSI_SRC_POSTGRES)
            return tsi_api_error(r, 503, "database_unavailable", NULL,
                                 "the database is unreachable");
        if (!tsi_api_int_info(r->path_id, nm, sizeof nm, &la, &lo))
            return tsi_api_error(r, 404, "not_found", "intersection_id", "Intersection not found");
        r->data_source = "parquet";
        tsi_jsonw w;
        tsi_jsonw_init(&w, &r->body);
        tsi_jsonw_object(&w);
        tsi_jsonw_kv_int(&w, "id", r->path_id);
        tsi_jsonw_kv_int(&w, "intersection_id", r->path_id);
        tsi_jsonw_kv_str(&w, "name", nm);
        kv_float(&w, r->dl, "latitude", la);
        kv_float(&w, r->dl, "longitude", lo);
        tsi_jsonw_end(&w);
        return 0;
    }
    r->data_source = "postgres";
    char idb[24];
    snprintf(idb, sizeof idb, "%lld", (long long)r->path_id);
    const char *v[1] = {idb};
    PGresult *res = run(r, c, "intersection", 1, v);
    if (!res)
        return 0;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return tsi_api_error(r, 404, "not_found", "intersection_id", "Intersection not found");
    }
    tsi_jsonw w;
    tsi_jsonw_init(&w, &r->body);
    tsi_jsonw_object(&w);
    tsi_jsonw_kv_int(&w, "id", ival(res, 0, 0));
    tsi_jsonw_kv_int(&w, "intersection_id", ival(res, 0, 0));
    tsi_jsonw_kv_str(&w, "name", PQgetvalue(res, 0, 1));
    kv_pg(&w, r->dl, "latitude", res, 0, 2);
    kv_pg(&w, r->dl, "longitude", res, 0, 3);
    tsi_jsonw_kv_str(&w, "geometry", PQgetvalue(res, 0, 9));
    tsi_jsonw_key(&w, "lane_count");
    if (PQgetisnull(res, 0, 4))
        tsi_jsonw_null(&w);
    else
        tsi_jsonw_int(&w, ival(res, 0, 4));
    tsi_jsonw_key(&w, "revision");
    if (PQgetisnull(res, 0, 5))
        tsi_jsonw_null(&w);
    else
        tsi_jsonw_int(&w, ival(res, 0, 5));
    tsi_jsonw_key(&w, "metadata");
    const char *md = PQgetvalue(res, 0, 6);
    tsi_jsonw_raw(&w, md, strlen(md)); /* jsonb text from PostgreSQL: valid JSON */
    char tb[48];
    stamp_text(r->dl, tb, sizeof tb, PQgetvalue(res, 0, 7));
    tsi_jsonw_kv_str(&w, "created_at", tb);
    stamp_text(r->dl, tb, sizeof tb, PQgetvalue(res, 0, 8));
    tsi_jsonw_kv_str(&w, "updated_at", tb);
    tsi_jsonw_key(&w, "current");
    if (PQgetisnull(res, 0, 10)) {
        tsi_jsonw_null(&w);
    } else {
        tsi_jsonw_object(&w);
        write_index_obj(&w, r->dl, res, 0, 10, false);
        tsi_jsonw_end(&w);
    }
    tsi_jsonw_end(&w);
    PQclear(res);
    return 0;
}

/* ---- health, metrics, openapi -----------------------------------------------------------------
 */
int tsi_h_health(tsi_req *r)
{
    tsi_api *a = tsi_api_g;
    bool up = atomic_load(&a->db_up);
    bool parquet = tsi_api_use_parquet();
    tsi_jsonw w;
    tsi_jsonw_init(&w, &r->body);
    tsi_jsonw_object(&w);
    const char *status =
        up ? "ok" : (a->source_mode == TSI_SRC_POSTGRES ? "unavailable" : "degraded");
    if (a->source_mode == TSI_SRC_PARQUET)
        status = "ok";
    /* /health and /api/v1/health are the original's liveness answer: {"status":"ok"}
     * whenever the server answers, the database's state beside it; /api/v2/health is
     * tsi's readiness: degraded, or 503 unavailable with --source postgres */
    bool liveness = r->dl->version == 1;
    tsi_jsonw_kv_str(&w, "status", liveness ? "ok" : status);
    tsi_jsonw_kv_str(&w, "state", status);
    tsi_jsonw_kv_str(&w, "version", TSI_VERSION);
    tsi_jsonw_kv_double(&w, "uptime_seconds", tsi_api_now() - a->started);
    tsi_jsonw_kv_str(&w, "data_source", parquet ? "parquet" : "postgres");
    tsi_jsonw_kv_str(&w, "source_mode",
                     a->source_mode == TSI_SRC_AUTO       ? "auto"
                     : a->source_mode == TSI_SRC_POSTGRES ? "postgres"
                                                          : "parquet");
    tsi_jsonw_key(&w, "database");
    tsi_jsonw_object(&w);
    tsi_jsonw_kv_bool(&w, "reachable", up);
    pthread_mutex_lock(&a->info_mu);
    if (a->pgversion[0])
        tsi_jsonw_kv_str(&w, "server_version", a->pgversion);
    else
        tsi_jsonw_kv_null(&w, "server_version");
    if (a->postgis[0])
        tsi_jsonw_kv_str(&w, "postgis_version", a->postgis);
    else
        tsi_jsonw_kv_null(&w, "postgis_version");
    pthread_mutex_unlock(&a->info_mu);
    tsi_jsonw_end(&w);
    tsi_jsonw_key(&w, "pool");
    tsi_jsonw_object(&w);
    tsi_jsonw_kv_int(&w, "size", a->threads);
    tsi_jsonw_kv_int(&w, "connected", atomic_load(&a->m.pool_connected));
    tsi_jsonw_kv_int(&w, "in_flight", atomic_load(&a->inflight));
    tsi_jsonw_end(&w);
    tsi_jsonw_kv_bool(&w, "parquet_reader", a->duck_ok);
    tsi_jsonw_kv_bool(&w, "dashboard", a->web_dir[0] != '\0');
    tsi_jsonw_end(&w);
    r->status = (!liveness && a->source_mode == TSI_SRC_POSTGRES && !up) ? 503 : 200;
    return 0;
}

/* The collector's counters, from the file `tsi collect` rewrites every status period
 * ($TSI_HOME/run/collect.json): each number or boolean becomes a tsi_collector_* gauge (a
 * key in milliseconds, *_ms, becomes *_seconds: promtool refuses abbreviated units). */
static void metrics_collector(tsi_buf *b)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/run/collect.json", tsi_home());
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char text[16384];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    tsi_json d;
    tsi_jtok tok[512];
    if (tsi_json_parse(&d, text, n, tok, 512, NULL) < 1 || !tsi_json_is_object(&d, 0))
        return;
    for (int k = tsi_json_first_key(&d, 0); k >= 0; k = tsi_json_next_key(&d, 0, k)) {
        char key[64];
        double v;
        bool bv;
        if (tsi_json_str(&d, k, key, sizeof key) < 0)
            continue;
        bool ok = true;
        for (char *p = key; *p; p++)
            ok = ok && ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_');
        if (!ok)
            continue;
        bool num = tsi_json_num(&d, k + 1, &v) == 0;
        if (!num && tsi_json_bool(&d, k + 1, &bv) != 0)
            continue;
        size_t kl = strlen(key);
        if (num && kl > 3 && strcmp(key + kl - 3, "_ms") == 0 && kl + 6 < sizeof key) {
            /* Prometheus wants base units: time_ms -> time_seconds */
            strcpy(key + kl - 3, "_seconds");
            v /= 1000;
        }
        tsi_buf_printf(b,
                       "# HELP tsi_collector_%s The collector's %s, from its status file.\n"
                       "# TYPE tsi_collector_%s gauge\n",
                       key, key, key);
        if (num)
            tsi_buf_printf(b, "tsi_collector_%s %.17g\n", key, v);
        else
            tsi_buf_printf(b, "tsi_collector_%s %d\n", key, bv);
    }
    tsi_json_free(&d);
}

int tsi_h_metrics(tsi_req *r)
{
    tsi_api *a = tsi_api_g;
    tsi_buf *b = &r->body;
    r->content_type = "text/plain; version=0.0.4; charset=utf-8";
    tsi_buf_puts(b, "# HELP tsi_http_requests_total HTTP requests by route and status class.\n"
                    "# TYPE tsi_http_requests_total counter\n");
    for (int rt = 0; rt < R__COUNT; rt++)
        for (int c = 1; c <= 5; c++) {
            unsigned long long n = atomic_load(&a->m.req[rt][c]);
            if (n)
                tsi_buf_printf(b, "tsi_http_requests_total{route=\"%s\",code=\"%dxx\"} %llu\n",
                               tsi_route_name(rt), c, n);
        }
    tsi_buf_puts(b, "# HELP tsi_http_request_duration_seconds Request latency by route.\n"
                    "# TYPE tsi_http_request_duration_seconds histogram\n");
    for (int rt = 0; rt < R__COUNT; rt++) {
        unsigned long long cum = 0;
        unsigned long long tot = 0;
        for (int c = 1; c <= 5; c++)
            tot += atomic_load(&a->m.req[rt][c]);
        if (!tot)
            continue;
        for (int i = 0; i < TSI_API_NBUCKETS; i++) {
            cum += atomic_load(&a->m.hist[rt][i]);
            if (i == TSI_API_NBUCKETS - 1)
                tsi_buf_printf(b,
                               "tsi_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"}"
                               " %llu\n",
                               tsi_route_name(rt), cum);
            else
                tsi_buf_printf(b,
                               "tsi_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"}"
                               " %llu\n",
                               tsi_route_name(rt), tsi_api_buckets[i], cum);
        }
        tsi_buf_printf(b, "tsi_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n",
                       tsi_route_name(rt), atomic_load(&a->m.sum_us[rt]) / 1e6);
        tsi_buf_printf(b, "tsi_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
                       tsi_route_name(rt), cum);
    }
    bool parquet = tsi_api_use_parquet();
    tsi_buf_printf(
        b,
        "# HELP tsi_db_pool_size Worker threads, each with one connection.\n"
        "# TYPE tsi_db_pool_size gauge\ntsi_db_pool_size %d\n"
        "# HELP tsi_db_pool_connected Open PostgreSQL connections of the workers and helpers.\n"
        "# TYPE tsi_db_pool_connected gauge\ntsi_db_pool_connected %d\n"
        "# HELP tsi_http_in_flight Requests being answered.\n"
        "# TYPE tsi_http_in_flight gauge\ntsi_http_in_flight %d\n"
        "# HELP tsi_db_up Whether PostgreSQL is reachable.\n"
        "# TYPE tsi_db_up gauge\ntsi_db_up %d\n"
        "# HELP tsi_data_source Where reads come from now (1 = this source).\n"
        "# TYPE tsi_data_source gauge\n"
        "tsi_data_source{source=\"postgres\"} %d\ntsi_data_source{source=\"parquet\"} %d\n"
        "# HELP tsi_cache_hits_total Current-index responses served from the cache.\n"
        "# TYPE tsi_cache_hits_total counter\ntsi_cache_hits_total %llu\n"
        "# HELP tsi_cache_misses_total Current-index responses built from the database.\n"
        "# TYPE tsi_cache_misses_total counter\ntsi_cache_misses_total %llu\n"
        "# HELP tsi_parquet_answers_total Answers read from the Parquet archive.\n"
        "# TYPE tsi_parquet_answers_total counter\ntsi_parquet_answers_total %llu\n"
        "# HELP tsi_db_errors_total Queries that failed on a lost connection.\n"
        "# TYPE tsi_db_errors_total counter\ntsi_db_errors_total %llu\n"
        "# HELP tsi_db_connects_total Worker connections opened.\n"
        "# TYPE tsi_db_connects_total counter\ntsi_db_connects_total %llu\n",
        a->threads, atomic_load(&a->m.pool_connected), atomic_load(&a->inflight),
        atomic_load(&a->db_up), !parquet, parquet, atomic_load(&a->m.cache_hits),
        atomic_load(&a->m.cache_misses), atomic_load(&a->m.parquet_answers),
        atomic_load(&a->m.db_errors), atomic_load(&a->m.reconnects));
    if (!parquet) {
        PGconn *c = tsi_api_pg(r);
        char spool[PATH_MAX];
        snprintf(spool, sizeof spool, "%s/spool", tsi_home());
        tsi_status s = {0};
        tsi_error e = {0};
        if (c && tsi_status_collect(c, spool, &s, &e) == 0)
            tsi_status_prometheus(&s, b);
        else
            tsi_warn("api", "req=%s database facts missing from /metrics: %s", r->id, e.message);
        tsi_status_free(&s);
    }
    metrics_collector(b);
    return 0;
}

int tsi_h_openapi(tsi_req *r)
{
    r->raw = r->dl->version == 1 ? tsi_openapi_v1_json : tsi_openapi_v2_json;
    r->raw_len = strlen(r->raw);
    r->cache_control = "public, max-age=300";
    return 0;
}

int tsi_h_config(tsi_req *r)
{
    tsi_api *a = tsi_api_g;
    tsi_jsonw w;
    tsi_jsonw_init(&w, &r->body);
    tsi_jsonw_object(&w);
    if (a->tile_url[0])
        tsi_jsonw_kv_str(&w, "tile_url", a->tile_url);
    else
        tsi_jsonw_kv_null(&w, "tile_url");
    tsi_jsonw_end(&w);
    r->status = 200;
    return 0;
}
