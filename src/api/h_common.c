/* api/h_common.c — what the handlers of several resource families share (h_common.h):
 * strict parameter parsing with the dialect's error answers, running prepared statements
 * on the worker's connection, reading PostgreSQL's values, and the JSON writers of an
 * index object and a statistics object. */
#include "api/h_common.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/names.h"
#include "api/pool.h"
#include "api/state.h"
#include "base/tz.h"
#include "base/log.h"
#include "core/index.h"
#include "db/result.h"

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

int tsi_hc_bad(tsi_req *r, const char *field, const char *fmt, const char *v)
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

int tsi_hc_arg_int(tsi_req *r, const char *name, long long lo, long long hi, long long def,
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

bool tsi_hc_parse_num(const char *v, double *out)
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

int tsi_hc_arg_num(tsi_req *r, const char *name, double lo, bool lo_open, double hi, double def,
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
    if (!tsi_hc_parse_num(v, &x)) {
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
        return tsi_hc_bad(r, name, "%s must be a date YYYY-MM-DD", v);
    if (why || y < 1970 || y > 9999)
        return tsi_hc_bad(r, name, "%s is not a valid calendar date (1970-01-01 to 9999-12-31)", v);
    *day = tsi_civil_days(y, m, d);
    return 0;
}

void tsi_hc_fmt_ts(char *buf, size_t len, int64_t t)
{
    (void)len;
    tsi_dialect_time(&tsi_dialect_v2, buf, t);
}

int tsi_hc_arg_range(tsi_req *r, tsi_hc_range *g, enum tsi_hc_range_kind kind)
{
    const tsi_dialect *dl = r->dl;
    long long days;
    long long dmax = kind == TSI_HC_RANGE_ALL ? dl->all_days_param : 365;
    if (tsi_hc_arg_int(r, "days", 1, dmax, 7, &days) < 0)
        return -1;
    int64_t s = 0, e = 0;
    int hs = arg_date(r, "start_date", &s);
    if (hs < 0)
        return -1;
    int he = arg_date(r, "end_date", &e);
    if (he < 0)
        return -1;
    int64_t today = tsi_tz_local_day((int64_t)time(NULL)); /* in TSI_TIMEZONE */
    int64_t max_days = kind == TSI_HC_RANGE_ALL ? dl->all_max_days : dl->one_max_days;
    memset(g, 0, sizeof *g);
    if (dl->fastapi_errors) {
        if (he)
            e = today;
        if (hs)
            s = e - days + 1;
        if (kind == TSI_HC_RANGE_ALL && e - s + 1 > max_days) {
            tsi_api_detail(r, 400, "range_too_large", "end_date",
                           "All-intersections query limited to 30 days. Use single-intersection "
                           "endpoint for longer periods.");
            return -1;
        }
        if (kind == TSI_HC_RANGE_ONE || kind == TSI_HC_RANGE_OTHER) {
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
    g->t0 = tsi_tz_day_start(g->q0);
    g->t1 = g->empty ? g->t0 : tsi_tz_day_start(g->q1 + 1);
    tsi_dialect_range(dl, g->sd, sizeof g->sd, g->d0, false);
    tsi_dialect_range(dl, g->ed, sizeof g->ed, g->d1, true);
    return 0;
}

#define AGG_PATTERN "^(1min|1hour|1day|1week|1month)$"

int tsi_hc_arg_agg(tsi_req *r, tsi_hc_range *g, bool all)
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

int tsi_hc_arg_risk(tsi_req *r, const char **out)
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
        return tsi_hc_bad(r, "risk_level", "%s must be one of low, medium, high", v);
    return 0;
}

/* ---- PostgreSQL plumbing --------------------------------------------------------------- */
PGconn *tsi_hc_need_pg(tsi_req *r)
{
    PGconn *c = tsi_api_pg(r);
    if (!c)
        tsi_api_error(r, 503, "database_unavailable", NULL,
                      "the database is unreachable; this endpoint needs it");
    return c;
}

PGresult *tsi_hc_run_fmt(tsi_req *r, PGconn *c, const char *stmt, int n, const char *const *vals,
                         int binary)
{
    /* the worker's connection now: an earlier tsi_hc_run() of this request may have replaced c */
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

PGresult *tsi_hc_run(tsi_req *r, PGconn *c, const char *stmt, int n, const char *const *vals)
{
    return tsi_hc_run_fmt(r, c, stmt, n, vals, 0);
}

PGresult *tsi_hc_run_id(tsi_req *r, PGconn *c, const char *stmt)
{
    char idb[24];
    snprintf(idb, sizeof idb, "%lld", (long long)r->path_id);
    const char *v[1] = {idb};
    return tsi_hc_run(r, c, stmt, 1, v);
}

double tsi_hc_dval(PGresult *res, int row, int col, bool *isnull)
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

long long tsi_hc_ival(PGresult *res, int row, int col)
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

bool tsi_hc_cols(tsi_req *r, const PGresult *res, int n, const char *const *names, int *col)
{
    bool ok = true;
    for (int k = 0; k < n; k++)
        ok &= (col[k] = tsi_pq_col(res, names[k])) >= 0; /* each missing one logged */
    if (!ok)
        tsi_api_error(r, 500, "internal", NULL, "query failed (request %s)", r->id);
    return ok;
}

bool tsi_hc_index_cols_of(tsi_req *r, const PGresult *res, tsi_hc_index_cols *cols)
{
    static const char *const names[] = {
        "id",           "name",           "latitude",          "longitude",
        "ts",           "combined_index", "combined_index_eb", "vru_index",
        "vru_index_eb", "vehicle_index",  "vehicle_index_eb",  "traffic_volume",
        "vru_count"};
    int c[sizeof names / sizeof *names];
    if (!tsi_hc_cols(r, res, (int)(sizeof names / sizeof *names), names, c))
        return false;
    *cols = (tsi_hc_index_cols){.id = c[0],
                                .name = c[1],
                                .lat = c[2],
                                .lon = c[3],
                                .ts = c[4],
                                .ci = c[5],
                                .ci_eb = c[6],
                                .vru = c[7],
                                .vru_eb = c[8],
                                .veh = c[9],
                                .veh_eb = c[10],
                                .vol = c[11],
                                .vru_count = c[12]};
    return true;
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
        char b[48];
        if (fl && fl->python_floats && !strpbrk(v, ".eE") && n + 3 <= sizeof b) {
            /* one value: the writer separates each raw piece as a value of its own */
            memcpy(b, v, n);
            memcpy(b + n, ".0", 2);
            v = b;
            n += 2;
        }
        tsi_jsonw_raw(w, v, n);
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

void tsi_hc_kv_pg(tsi_jsonw *w, const tsi_dialect *dl, const char *k, PGresult *res, int row,
                  int col)
{
    tsi_jsonw_key(w, k);
    num_text_as(w, pgtext(res, row, col), dl);
}

bool tsi_hc_stale(double ts)
{
    return (double)time(NULL) - ts > tsi_api_g->stale_seconds;
}

void tsi_hc_kv_age(tsi_jsonw *w, const tsi_dialect *dl, bool has, double ts)
{
    tsi_dialect_age(dl, w, has, (int64_t)ts, (int64_t)time(NULL), tsi_api_g->stale_seconds);
}

void tsi_hc_write_index_obj(tsi_jsonw *w, const tsi_dialect *dl, PGresult *res, int i,
                            const tsi_hc_index_cols *c, bool open)
{
    if (open)
        tsi_jsonw_object(w);
    tsi_jsonw_kv_int(w, "intersection_id", tsi_hc_ival(res, i, c->id));
    tsi_jsonw_kv_str(w, "intersection_name", PQgetvalue(res, i, c->name));
    bool has = !PQgetisnull(res, i, c->ts);
    bool ebnull = PQgetisnull(res, i, c->ci_eb);
    int sicol = ebnull ? c->ci : c->ci_eb;
    double si = has ? tsi_hc_dval(res, i, sicol, NULL) : NAN;
    tsi_jsonw_key(w, "safety_index");
    num_text_as(w, has ? pgtext(res, i, sicol) : NULL, dl);
    tsi_jsonw_key(w, "traffic_volume");
    num_text(w, has ? pgtext(res, i, c->vol) : NULL);
    tsi_hc_kv_pg(w, dl, "latitude", res, i, c->lat);
    tsi_hc_kv_pg(w, dl, "longitude", res, i, c->lon);
    char ts[TSI_DIALECT_TIME_MAX];
    if (has) {
        tsi_dialect_time(dl, ts, (int64_t)tsi_hc_dval(res, i, c->ts, NULL));
        tsi_jsonw_kv_str(w, "timestamp", ts);
        tsi_jsonw_kv_str(w, "risk_level", tsi_risk_level(si));
    } else {
        tsi_jsonw_kv_null(w, "timestamp");
        tsi_jsonw_kv_null(w, "risk_level");
    }
    tsi_hc_kv_pg(w, dl, "combined_index", res, i, c->ci);
    tsi_hc_kv_pg(w, dl, "combined_index_eb", res, i, c->ci_eb);
    tsi_hc_kv_pg(w, dl, "vru_index", res, i, c->vru);
    tsi_hc_kv_pg(w, dl, "vru_index_eb", res, i, c->vru_eb);
    tsi_hc_kv_pg(w, dl, "vehicle_index", res, i, c->veh);
    tsi_hc_kv_pg(w, dl, "vehicle_index_eb", res, i, c->veh_eb);
    tsi_jsonw_key(w, "vru_count");
    num_text(w, has ? pgtext(res, i, c->vru_count) : NULL);
    tsi_hc_kv_age(w, dl, has, has ? tsi_hc_dval(res, i, c->ts, NULL) : 0);
    if (open)
        tsi_jsonw_end(w);
}

/* ---- ids and statistics ---------------------------------------------------------------- */
void tsi_hc_text_id(tsi_req *r)
{
    if (r->path_id >= 0 || !r->dl->ids_as_text)
        return;
    const char *t = r->path_text;
    size_t n = strlen(t);
    if (n == 0 || n > 40 || strspn(t, "0123456789+-.eE \t") != n)
        return; /* no inf, nan, hex: none of them is an id */
    char *end;
    errno = 0;
    double x = strtod(t, &end);
    while (*end == ' ' || *end == '\t')
        end++;
    if (end == t || *end || errno == ERANGE || !(x >= 0) || x >= 9007199254740992.0 ||
        x != floor(x))
        return;
    r->path_id = (int64_t)x;
}

void tsi_hc_answer_afresh(tsi_req *r)
{
    tsi_buf_reset(&r->body);
    r->status = 200;
    r->err_code = NULL;
    r->err_field = NULL;
    r->content_type = "application/json";
}

bool tsi_hc_retry_on_parquet(tsi_req *r)
{
    if (r->status != 503 || tsi_api_g->source_mode != TSI_SRC_AUTO || !tsi_api_use_parquet())
        return false;
    tsi_hc_answer_afresh(r);
    return true;
}

bool tsi_hc_need_id(tsi_req *r)
{
    if (r->path_id >= 0)
        return true;
    tsi_pyerr pe = {.type = "int_parsing", .loc = "path"};
    snprintf(pe.msg, sizeof pe.msg,
             "Input should be a valid integer, unable to parse string as an integer");
    tsi_api_invalid(r, "intersection_id", &pe, "intersection id must be a non-negative integer");
    return false;
}

void tsi_hc_kv_id(tsi_jsonw *w, const tsi_dialect *dl, const char *text, int64_t id)
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

/* Python's round(x, 2): the correctly rounded decimal of the double (ties to even on
 * the exact binary value), which is what printf's %.2f writes */
static double round2(double x)
{
    char b[64];
    snprintf(b, sizeof b, "%.2f", x);
    return strtod(b, NULL);
}

void tsi_hc_write_stats(tsi_jsonw *w, const tsi_dialect *dl, const tsi_hc_stat_row *x,
                        const char *sd, const char *ed, const char *text)
{
    tsi_hc_kv_id(w, dl, text, x->s.iid);
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
    tsi_dialect_kv_float(dl, w, "avg_safety_index", none ? NAN : x->s.avg);
    tsi_dialect_kv_float(dl, w, "min_safety_index", none ? NAN : x->s.min);
    tsi_dialect_kv_float(dl, w, "max_safety_index", none ? NAN : x->s.max);
    tsi_dialect_kv_float(dl, w, "std_safety_index", none ? NAN : sd_);
    tsi_jsonw_kv_int(w, "total_traffic_volume", (int64_t)llround(x->s.vol));
    tsi_dialect_kv_float(dl, w, "avg_traffic_volume", none ? NAN : x->s.vol / x->s.n);
    tsi_jsonw_kv_int(w, "high_risk_intervals", (int64_t)llround(x->s.hr));
    tsi_dialect_kv_float(dl, w, "high_risk_percentage", pct);
    tsi_jsonw_kv_int(w, "data_minutes", (int64_t)llround(x->s.n));
    if (!none)
        tsi_jsonw_kv_str(w, "risk_level", tsi_risk_level(x->s.avg));
    else
        tsi_jsonw_kv_null(w, "risk_level");
    if (dl->model_fields) {
        bool sub = x->s.has_sub && !none;
        tsi_dialect_kv_float(dl, w, "avg_vru_index", sub ? x->s.vru_avg : NAN);
        tsi_dialect_kv_float(dl, w, "min_vru_index", sub ? x->s.vru_min : NAN);
        tsi_dialect_kv_float(dl, w, "max_vru_index", sub ? x->s.vru_max : NAN);
        tsi_dialect_kv_float(dl, w, "avg_vehicle_index", sub ? x->s.veh_avg : NAN);
        tsi_dialect_kv_float(dl, w, "min_vehicle_index", sub ? x->s.veh_min : NAN);
        tsi_dialect_kv_float(dl, w, "max_vehicle_index", sub ? x->s.veh_max : NAN);
        tsi_hc_kv_list(w, "constants_set_ids", sub ? x->s.cids : NULL);
        tsi_hc_kv_list(w, "algorithm_versions", sub ? x->s.avers : NULL);
    }
}

void tsi_hc_kv_list(tsi_jsonw *w, const char *k, const char *list)
{
    if (!list) {
        tsi_jsonw_kv_null(w, k);
        return;
    }
    tsi_jsonw_key(w, k);
    tsi_jsonw_array(w);
    for (const char *p = list; *p;) {
        size_t l = strspn(p, "0123456789");
        if (l > 0 && l < 20)
            tsi_jsonw_raw(w, p, l);
        p += l;
        p += strcspn(p, "0123456789");
    }
    tsi_jsonw_end(w);
}

int tsi_hc_pg_stats(tsi_req *r, PGconn *c, const char *ids, int64_t t0, int64_t t1,
                    tsi_hc_stat_row **out, int *n)
{
    char a0[32], a1[32];
    tsi_hc_fmt_ts(a0, sizeof a0, t0);
    tsi_hc_fmt_ts(a1, sizeof a1, t1);
    const char *v[3] = {ids, a0, a1};
    PGresult *res = tsi_hc_run(r, c, "stats", 3, v);
    if (!res)
        return -1;
    /* Q_STATS's columns, by name (queries.c) */
    enum { ID, NAME, N, AVG, MN, MX, SD, VOL, HR, LAT, LON, F, L, NCOL };
    static const char *const names[NCOL] = {
        "id", "name", "n", "avg", "mn", "mx", "sd", "vol", "hr", "latitude", "longitude", "f", "l"};
    enum { VM, VMN, VMX, HM, HMN, HMX, CIDS, AVERS, NSUB };
    static const char *const subnames[NSUB] = {"vm",  "vmn", "vmx",  "hm",
                                               "hmn", "hmx", "cids", "avers"};
    int col[NCOL], sub[NSUB];
    if (!tsi_hc_cols(r, res, NCOL, names, col) || !tsi_hc_cols(r, res, NSUB, subnames, sub)) {
        PQclear(res);
        return -1;
    }
    int k = PQntuples(res);
    tsi_hc_stat_row *x = tsi_arena_calloc(r->arena, sizeof *x * (size_t)(k ? k : 1));
    for (int i = 0; i < k; i++) {
        x[i].s.iid = tsi_hc_ival(res, i, col[ID]);
        x[i].name = tsi_arena_strdup(r->arena, PQgetvalue(res, i, col[NAME]));
        x[i].s.n = tsi_hc_dval(res, i, col[N], NULL);
        x[i].s.avg = tsi_hc_dval(res, i, col[AVG], NULL);
        x[i].s.min = tsi_hc_dval(res, i, col[MN], NULL);
        x[i].s.max = tsi_hc_dval(res, i, col[MX], NULL);
        x[i].s.std = tsi_hc_dval(res, i, col[SD], NULL);
        x[i].s.vol = tsi_hc_dval(res, i, col[VOL], NULL);
        x[i].s.hr = tsi_hc_dval(res, i, col[HR], NULL);
        x[i].lat = tsi_hc_dval(res, i, col[LAT], NULL);
        x[i].lon = tsi_hc_dval(res, i, col[LON], NULL);
        x[i].s.first = tsi_hc_dval(res, i, col[F], NULL);
        x[i].s.last = tsi_hc_dval(res, i, col[L], NULL);
        x[i].s.has_sub = true;
        double *subv[6] = {&x[i].s.vru_avg, &x[i].s.vru_min, &x[i].s.vru_max,
                           &x[i].s.veh_avg, &x[i].s.veh_min, &x[i].s.veh_max};
        for (int j = 0; j < 6; j++)
            *subv[j] = tsi_hc_dval(res, i, sub[VM + j], NULL);
        x[i].s.cids = tsi_arena_strdup(r->arena, PQgetvalue(res, i, sub[CIDS]));
        x[i].s.avers = tsi_arena_strdup(r->arena, PQgetvalue(res, i, sub[AVERS]));
    }
    PQclear(res);
    *out = x;
    *n = k;
    return 0;
}

/* the archive's answer of tsi_hc_stats_rows */
static int parquet_stats_rows(tsi_req *r, const char *ids, int64_t t0, int64_t t1,
                              tsi_hc_stat_row **out, int *n)
{
    r->data_source = "parquet";
    atomic_fetch_add(&tsi_api_g->m.parquet_answers, 1);
    tsi_stats *st;
    int ns;
    if (tsi_fb_stats_many(r, -1, t0, t1, &st, &ns) < 0)
        return -1;
    /* the ids asked for (in order), or those with minutes */
    int cap = ns + 1;
    for (const char *p = ids; p && *p; p++)
        cap += *p == ',';
    int64_t *want = tsi_arena_alloc(r->arena, sizeof *want * (size_t)cap);
    int nw = 0;
    if (ids) {
        for (const char *p = ids + 1; *p && *p != '}';) {
            want[nw++] = strtoll(p, NULL, 10);
            p += strcspn(p, ",}");
            if (*p == ',')
                p++;
        }
    } else {
        for (int i = 0; i < ns; i++)
            want[nw++] = st[i].iid;
    }
    tsi_hc_stat_row *x = tsi_arena_calloc(r->arena, sizeof *x * (size_t)(nw ? nw : 1));
    int k = 0;
    for (int i = 0; i < nw; i++) {
        tsi_stats *hit = NULL;
        for (int lo = 0, hi = ns - 1; lo <= hi && !hit;) { /* st is by id */
            int mid = (lo + hi) / 2;
            if (st[mid].iid == want[i])
                hit = &st[mid];
            else if (st[mid].iid < want[i])
                lo = mid + 1;
            else
                hi = mid - 1;
        }
        char nm[256];
        double la = NAN, lo = NAN;
        bool known = tsi_api_int_info(want[i], nm, sizeof nm, &la, &lo);
        if (!known && !hit)
            continue;
        if (!known)
            snprintf(nm, sizeof nm, "Intersection %lld", (long long)want[i]);
        x[k].s = hit ? *hit : (tsi_stats){.iid = want[i], .first = NAN, .last = NAN};
        x[k].name = tsi_arena_strdup(r->arena, nm);
        x[k].lat = la;
        x[k].lon = lo;
        k++;
    }
    *out = x;
    *n = k;
    return 0;
}

int tsi_hc_stats_rows(tsi_req *r, const char *ids, int64_t t0, int64_t t1, tsi_hc_stat_row **out,
                      int *n)
{
    if (tsi_api_use_parquet())
        return parquet_stats_rows(r, ids, t0, t1, out, n);
    PGconn *c = tsi_api_pg(r);
    if (!c) {
        if (tsi_api_g->source_mode == TSI_SRC_AUTO)
            return parquet_stats_rows(r, ids, t0, t1, out, n);
        tsi_api_error(r, 503, "database_unavailable", NULL, "the database is unreachable");
        return -1;
    }
    r->data_source = "postgres";
    if (tsi_hc_pg_stats(r, c, ids, t0, t1, out, n) == 0)
        return 0;
    /* the database went away meanwhile: the archive answers */
    return tsi_hc_retry_on_parquet(r) ? parquet_stats_rows(r, ids, t0, t1, out, n) : -1;
}
