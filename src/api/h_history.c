/* api/h_history.c — history and statistics: GET /safety/history/{id} (one
 * intersection's series at 1min|1hour|1day|1week|1month), /safety/history/ (all
 * intersections) and /safety/history/{id}/stats. PostgreSQL's series come as binary
 * results; one intersection's minutes are streamed in pipelined parts (with a helper
 * connection when cores are idle); minutes older than 48 h and every answer while
 * PostgreSQL is away come from the Parquet archive (fallback.h). */
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/fallback.h"
#include "api/h_common.h"
#include "api/handlers.h"
#include "api/names.h"
#include "api/pool.h"
#include "api/state.h"
#include "base/tz.h"
#include "base/jsonw.h"
#include "base/log.h"
#include "db/result.h"

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

/* a comma-separated list of integers as a JSON array ("" → [], NULL → null), within end */
static char *put_list(char *o, const char *end, const char *list)
{
    if (!list) {
        PUT_LIT(o, "null");
        return o;
    }
    *o++ = '[';
    bool any = false;
    for (const char *p = list; *p;) {
        size_t l = strspn(p, "0123456789");
        if (l > 0 && l < 20 && o + l + 2 < end) {
            if (any)
                *o++ = ',';
            o = put_lit(o, p, l);
            any = true;
        }
        p += l;
        p += strcspn(p, "0123456789");
    }
    *o++ = ']';
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
    char b[1536], *o = b;
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
    int64_t local = f + tsi_tz_offset(f), lday = tsi_civil_day_of(local); /* hour, weekday */
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
    if (dl->model_fields) { /* the lists share what is left of b (~1,200 bytes) */
        PUT_LIT(o, ",\"constants_set_ids\":");
        o = put_list(o, o + 600, p->cids);
        PUT_LIT(o, ",\"algorithm_versions\":");
        o = put_list(o, o + 600, p->avers);
    }
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
enum { OID_INT8 = 20, OID_INT4 = 23, OID_TEXT = 25, OID_FLOAT8 = 701, OID_TIMESTAMPTZ = 1184 };

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

/* the columns of a series result, by name (queries.c), found once per result */
enum { S_IID, S_TS, S_SI, S_VRU, S_VEH, S_VOL, S_NCOL };

/* the series layout: iid int8, ts (int8 epoch seconds or timestamptz), si, vru, veh
 * float8, vol int8/int4, all binary; series_min_one (one intersection) has no iid
 * (with_iid false: col[S_IID] = -1). Anything else is a server bug, answered 500 rather
 * than misread */
static bool series_layout(PGresult *res, bool with_iid, int col[S_NCOL])
{
    static const char *const names[S_NCOL] = {"iid", "ts", "si", "vru", "veh", "vol"};
    static const int want[S_NCOL][2] = {{OID_INT8, OID_INT8},     {OID_INT8, OID_TIMESTAMPTZ},
                                        {OID_FLOAT8, OID_FLOAT8}, {OID_FLOAT8, OID_FLOAT8},
                                        {OID_FLOAT8, OID_FLOAT8}, {OID_INT8, OID_INT4}};
    col[S_IID] = -1;
    for (int c = with_iid ? S_IID : S_TS; c < S_NCOL; c++) {
        if ((col[c] = tsi_pq_col(res, names[c])) < 0)
            return false;
        Oid t = PQftype(res, col[c]);
        if (PQfformat(res, col[c]) != 1 || (t != (Oid)want[c][0] && t != (Oid)want[c][1]))
            return false;
    }
    return true;
}

/* a provenance column as a comma-separated list: text as it is, an integer as its
 * digits, NULL or 0 as "" (arena) */
static const char *prov_text(tsi_req *r, PGresult *res, int row, int col, Oid t)
{
    if (PQgetisnull(res, row, col))
        return "";
    if (t == OID_TEXT) {
        int n = PQgetlength(res, row, col);
        char *s = tsi_arena_alloc(r->arena, (size_t)n + 1);
        memcpy(s, PQgetvalue(res, row, col), (size_t)n);
        s[n] = '\0';
        return s;
    }
    if (t != OID_INT8 && t != OID_INT4)
        return NULL;
    int64_t v = bin_int(res, row, col, t);
    if (v <= 0)
        return "";
    char *s = tsi_arena_alloc(r->arena, 24);
    snprintf(s, 24, "%lld", (long long)v);
    return s;
}

/* a series result's rows as points, in (intersection, time) order: series_min leaves the
 * order to the scan (see queries.c), so they are sorted here only when they are not.
 * iid >= 0: the result is series_min_one's, without the intersection column. */
static int series_points(tsi_req *r, PGresult *res, const char *stmt, int64_t iid, tsi_point **out,
                         int *n)
{
    int col[S_NCOL];
    if (!series_layout(res, iid < 0, col)) {
        tsi_err("api", "req=%s query %s: unexpected result columns", r->id, stmt);
        return tsi_api_error(r, 500, "internal", NULL, "query failed (request %s)", r->id);
    }
    Oid tt = PQftype(res, col[S_TS]), vt = PQftype(res, col[S_VOL]);
    /* the hour- and day-level statements add the first instant with data of each bin (f) */
    int first_col = PQfnumber(res, "f");
    if (first_col >= 0 && PQftype(res, first_col) != OID_INT8)
        first_col = -1;
    int k = PQntuples(res);
    tsi_point *p = tsi_arena_alloc(r->arena, sizeof *p * (size_t)(k ? k : 1));
    /* model provenance (v2): text lists (hour- and day-level), or one int8/int4 (minutes) */
    int cc = r->dl->model_fields ? PQfnumber(res, "cids") : -1;
    int ac = r->dl->model_fields ? PQfnumber(res, "avers") : -1;
    Oid ct = cc >= 0 ? PQftype(res, cc) : 0, at = ac >= 0 ? PQftype(res, ac) : 0;
    for (int i = 0; i < k; i++) {
        p[i].iid = iid >= 0 ? iid : bin_int(res, i, col[S_IID], OID_INT8);
        p[i].ts = bin_int(res, i, col[S_TS], tt);
        p[i].si = bin_double(res, i, col[S_SI]);
        p[i].vru = bin_double(res, i, col[S_VRU]);
        p[i].veh = bin_double(res, i, col[S_VEH]);
        p[i].vol = bin_int(res, i, col[S_VOL], vt);
        p[i].first = first_col >= 0 ? bin_int(res, i, first_col, OID_INT8) : p[i].ts;
        p[i].cids = cc >= 0 ? prov_text(r, res, i, cc, ct) : NULL;
        p[i].avers = ac >= 0 ? prov_text(r, res, i, ac, at) : NULL;
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
    tsi_hc_fmt_ts(a0, sizeof a0, t0);
    tsi_hc_fmt_ts(a1, sizeof a1, t1);
    const char *v[4] = {ids, a0, a1, trunc_unit(agg)};
    const char *stmt = strcmp(agg, "1min") == 0    ? "series_min"
                       : strcmp(agg, "1hour") == 0 ? "series_hour"
                       : tsi_tz_utc()              ? "series_day"
                                                   : "series_day_local";
    PGresult *res = tsi_hc_run_fmt(r, c, stmt, strncmp(stmt, "series_day", 10) == 0 ? 4 : 3, v, 1);
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
 * (pool.c): two backends read at once while this thread encodes, the backends' binary
 * output being the larger half of the work. With more requests in flight than cores
 * there is no idle core to overlap with, and the range goes in one part. The parts are
 * disjoint, in time order, and read in that order, so the points come out in order.
 *
 * A worker connection found dead (the server restarted) is replaced once, as tsi_hc_run() does;
 * a helper that fails is dropped and its parts are read again on the worker's
 * connection. Other failures answer 500/503 like tsi_hc_run(). Returns the points written, or
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
        tsi_hc_fmt_ts(ts[i], sizeof ts[i], i == parts ? t1 : t0 + len * i);
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
static int no_data(tsi_req *r, const tsi_hc_range *g, bool stats)
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

static int history_once(tsi_req *r, bool all)
{
    const tsi_dialect *dl = r->dl;
    tsi_hc_range g = {0};
    if (tsi_hc_arg_range(r, &g, all ? TSI_HC_RANGE_ALL : TSI_HC_RANGE_ONE) < 0 ||
        tsi_hc_arg_agg(r, &g, all) < 0)
        return 0;
    if (!all)
        tsi_hc_text_id(r);
    if (!all && r->path_id < 0) /* v1: the original read any text; nothing has that id */
        return dl->ids_as_text ? no_data(r, &g, false) : (tsi_hc_need_id(r), 0);
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

    tsi_point *pts = NULL, *old = NULL;
    int np = 0, nold = 0;
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
        PGresult *res = tsi_hc_run(r, c, "names", 1, v);
        if (!res)
            return 0;
        static const char *const cn[2] = {"id", "name"};
        int col[2];
        if (!tsi_hc_cols(r, res, 2, cn, col)) {
            PQclear(res);
            return 0;
        }
        nint = PQntuples(res);
        iids = tsi_arena_alloc(r->arena, sizeof *iids * (size_t)(nint + 1));
        names = tsi_arena_alloc(r->arena, sizeof *names * (size_t)(nint + 1));
        for (int i = 0; i < nint; i++) {
            iids[i] = tsi_hc_ival(res, i, col[0]);
            names[i] = tsi_arena_strdup(r->arena, PQgetvalue(res, i, col[1]));
        }
        PQclear(res);
    } else if (all) {
        /* from the archive: the intersections that have rows in it, named from the cache
         * (PostgreSQL's last view, or archive/intersections/) */
        if (tsi_fb_series(r, -1, g.t0, g.t1, g.agg, &pts, &np) < 0)
            return 0;
        iids = tsi_arena_alloc(r->arena, sizeof *iids * (size_t)(np + 1));
        names = tsi_arena_alloc(r->arena, sizeof *names * (size_t)(np + 1));
        for (int i = 0; i < np; i++) {
            if (nint > 0 && iids[nint - 1] == pts[i].iid)
                continue;
            char nm[256];
            double la, lo;
            if (!tsi_api_int_info(pts[i].iid, nm, sizeof nm, &la, &lo))
                snprintf(nm, sizeof nm, "Intersection %lld", (long long)pts[i].iid);
            iids[nint] = pts[i].iid;
            names[nint++] = tsi_arena_strdup(r->arena, nm);
        }
    } else {
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

    /* one intersection's minutes from PostgreSQL: encoded while they arrive (below) */
    bool stream = !parquet && !all && strcmp(g.agg, "1min") == 0;
    int64_t pg_from = g.t1;
    if (parquet) {
        if (!all && tsi_fb_series(r, r->path_id, g.t0, g.t1, g.agg, &pts, &np) < 0)
            return 0;
    } else {
        char one[32];
        snprintf(one, sizeof one, "{%lld}", (long long)r->path_id);
        int64_t pg0 = g.t0;
        if (!all && strcmp(g.agg, "1min") == 0) {
            /* 1-minute rows older than 48 h come from the indices Parquet archive */
            int64_t cutoff = (int64_t)time(NULL) - 48 * 3600;
            cutoff -= cutoff % 60;
            if (g.t0 < cutoff) {
                int64_t e = g.t1 < cutoff ? g.t1 : cutoff;
                /* days without files are a gap; an archive that cannot be read is an
                 * error (503 archive_unavailable), never a 200 with the minutes missing */
                if (tsi_fb_series(r, r->path_id, g.t0, e, g.agg, &old, &nold) < 0)
                    return 0;
                pg0 = e;
            }
        }
        pg_from = pg0;
        if (!stream && pg0 < g.t1 &&
            pg_series(r, c, all ? NULL : one, pg0, g.t1, g.agg, &pts, &np) < 0)
            return 0;
    }
    tsi_jsonw w;
    tsi_jsonw_init(&w, &r->body);
    if (!all) {
        tsi_jsonw_object(&w);
        tsi_hc_kv_id(&w, dl, r->path_text, r->path_id);
        tsi_jsonw_kv_str(&w, "intersection_name", names[0]);
        tsi_jsonw_key(&w, "data_points");
        tsi_jsonw_array(&w);
        for (int i = 0; i < nold; i++)
            write_point(&w, dl, g.agg, &old[i]);
        for (int i = 0; i < np; i++)
            write_point(&w, dl, g.agg, &pts[i]);
        if (stream && pg_from < g.t1) {
            if ((np = pg_minutes_streamed(r, c, r->path_id, pg_from, g.t1, &w)) < 0)
                return 0;
        }
        if (nold + np == 0 && dl->empty_is_404)
            return no_data(r, &g, false);
        tsi_jsonw_end(&w);
        tsi_jsonw_kv_str(&w, "start_date", g.sd);
        tsi_jsonw_kv_str(&w, "end_date", g.ed);
        tsi_jsonw_kv_int(&w, "total_points", nold + np);
        tsi_jsonw_kv_str(&w, "aggregation", g.agg);
        tsi_jsonw_end(&w);
        r->status = 200;
        return 0;
    }
    if (!dl->all_as_list) {
        tsi_jsonw_object(&w);
        tsi_jsonw_kv_str(&w, "start_date", g.sd);
        tsi_jsonw_kv_str(&w, "end_date", g.ed);
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
        tsi_hc_kv_id(&w, dl, NULL, iids[i]);
        tsi_jsonw_kv_str(&w, "intersection_name", names[i]);
        tsi_jsonw_key(&w, "data_points");
        tsi_jsonw_array(&w);
        for (int k = j0; k < j; k++)
            write_point(&w, dl, g.agg, &pts[k]);
        tsi_jsonw_end(&w);
        if (dl->all_as_list) {
            tsi_jsonw_kv_str(&w, "start_date", g.sd);
            tsi_jsonw_kv_str(&w, "end_date", g.ed);
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

/* ---- stats ------------------------------------------------------------------------------ */
static int stats_once(tsi_req *r)
{
    const tsi_dialect *dl = r->dl;
    tsi_hc_range g = {0};
    if (tsi_hc_arg_range(r, &g, TSI_HC_RANGE_STATS) < 0)
        return 0;
    tsi_hc_text_id(r);
    if (r->path_id < 0) /* v1: the original read any text; nothing has that id */
        return dl->ids_as_text ? no_data(r, &g, true) : (tsi_hc_need_id(r), 0);
    if (g.empty)
        return no_data(r, &g, true);
    tsi_hc_stat_row one = {0}, *rows = NULL;
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
        if (tsi_fb_stats(r, r->path_id, g.t0, g.t1, &one.s) < 0)
            return 0;
        rows = &one;
        n = 1;
    } else {
        r->data_source = "postgres";
        char ids[32];
        snprintf(ids, sizeof ids, "{%lld}", (long long)r->path_id);
        if (tsi_hc_pg_stats(r, c, ids, g.t0, g.t1, &rows, &n) < 0)
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
    tsi_hc_write_stats(&w, dl, &rows[0], g.sd, g.ed, r->path_text);
    tsi_jsonw_end(&w);
    return 0;
}

static int history(tsi_req *r, bool all)
{
    history_once(r, all);
    if (tsi_hc_retry_on_parquet(r))
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
    if (tsi_hc_retry_on_parquet(r))
        stats_once(r);
    return 0;
}
