/* tools/seed.c — `tsi seed`: realistic synthetic history for evaluation, tests and
 * benchmarks (issue 13).
 *
 *   tsi seed --intersections N --days D [--seed S]
 *
 * Writes, as tsi_owner (it deletes and bulk-loads rows of every table, which no other
 * role may do), for intersection ids 1..N placed around the Nutley St corridor in
 * Fairfax VA (US-29 / US-50, lat 38.87, lon -77.27):
 *   - intersections (upsert; metadata {"source":"seed","seed":S,"lane_geometry":[...]}):
 *     lane polylines in the collector's format (vcc/lanejson.h) for a four-leg
 *     junction turned by 0-30 deg: lane_count vehicle lanes (approach k % 4; slot k / 4:
 *     ingress 1.75 m right of the centre line, egress 1.75 m left, a second ingress
 *     5.25 m right), each 3 nodes from 8 m to 60 m out, and one crosswalk per approach
 *     6 m out, 20 m across;
 *   - safety_indices_realtime: 1-minute rows from the start of the hour min(D,2) days ago
 *     up to the last complete minute, with daily and weekly traffic profiles (morning and
 *     evening rush), features drawn per minute and indices by the formulas of domain.md §4
 *     (constants stored in normalization_constants when none exist), EB against the
 *     expected index of that intersection and hour;
 *   - safety_indices_hourly for every complete hour back to min(D,90) days (day aligned):
 *     where 1-minute rows exist the hour is aggregated from them exactly as domain.md §5
 *     says; older hours come from a per-hour model;
 *   - safety_indices_daily for every complete day back to D days, aggregated from the
 *     (stored or modelled) hourly rows by the §5 arithmetic: average weighted by
 *     minutes, exact pooled sample standard deviation, totals, high-risk hours, peak hour;
 *   - the hours of the 1-minute window and the days wholly in it rolled once more by the
 *     jobs' own functions (tsi_rollup_hours/_days, migration 060): VRU and vehicle
 *     sub-indices, model provenance, and the constants' features store
 *     (safety_features_hourly) from the minutes;
 *   - the VRU and vehicle sub-indices of the modelled hours (and so of their days) come
 *     from the same per-hour model: the hour's index deviates from the model's expected
 *     combined index by e (its draw); each sub-index is the model's expected one plus the
 *     same e, clipped to 0..100 (so 0.6·VRU + 0.4·vehicle is the hour's index where
 *     nothing clips), its min and max the hour's distances below and above the mean. The
 *     model does not tell raw from EB: the raw, EB and reported means are that one value,
 *     each over all the hour's minutes; no model provenance (empty lists);
 *   - the indices Parquet of the 1-minute rows, one zstd file per UTC day under
 *     $TSI_HOME/archive/indices/YYYY/MM/DD/seed_<day>.parquet (TSI_ARCHIVE_DIR moves the
 *     archive), every realtime column plus the features avg_speed, speed_stddev and
 *     hard_braking_count; and archive/intersections/intersections.parquet (the API's
 *     fallback reads names and positions from it when PostgreSQL is away).
 * Rows of ids 1..N are replaced; earlier seed_*.parquet files of the written days are
 * removed (the seed's own files only). Everything is derived from --seed: the same seed
 * and the same clock minute give the same rows. Times are UTC (hour_of_day, day_of_week
 * included). Bulk loading is COPY through libpq. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <duckdb.h>
#include <libpq-fe.h>

#include "archive/indices.h"
#include "core/index.h"
#include "archive/intersections.h"
#include "base/buf.h"
#include "base/error.h"
#include "base/log.h"
#include "base/jsonw.h"
#include "base/options.h"
#include "vcc/lanejson.h"
#include "core/geo.h"
#include "db/columns.h"
#include "db/conn.h"
#include "db/rollup.h"
#include "tools/seed.h"

/* ---- random numbers: splitmix64-seeded xoshiro256** -------------------------------- */
typedef struct {
    uint64_t s[4];
} rng;

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void rng_init(rng *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed * 0x100000001B3ull ^ (stream + 0x51ED27ull);
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix(&x);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static inline uint64_t rng_next(rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

static inline double unif(rng *r)
{
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

static double gauss(rng *r)
{
    double u = unif(r), v = unif(r);
    if (u < 1e-300)
        u = 1e-300;
    return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v);
}

static int poisson(rng *r, double lambda)
{
    if (lambda <= 0)
        return 0;
    if (lambda > 30) {
        double x = lambda + sqrt(lambda) * gauss(r) + 0.5;
        return x < 0 ? 0 : (int)x;
    }
    double l = exp(-lambda), p = 1.0;
    int k = 0;
    do {
        k++;
        p *= unif(r);
    } while (p > l);
    return k - 1;
}

/* ---- the traffic model ------------------------------------------------------------- */
typedef struct {
    int64_t id;
    double lat, lon;
    double peak_vol; /* vehicles per minute at the busiest minute */
    double peak_vru; /* pedestrians + cyclists per minute at the busiest minute */
    double speed;    /* free-flow speed, m/s */
    double risk;     /* conflict propensity */
    int lanes;
    char name[96];
} site;

/* normalisation constants (domain.md §4 names) */
typedef struct {
    double vru_max, veh_max, v_max, s_ref, sd_max, hb_max, k;
} constants;

/* Share of the peak at fractional hour h (UTC) on a weekday or a weekend day. */
static double profile(double h, int weekend)
{
    double p;
    if (weekend)
        p = 0.08 + 0.62 * exp(-0.5 * pow((h - 14.0) / 3.5, 2));
    else
        p = 0.06 + 0.94 * exp(-0.5 * pow((h - 8.0) / 1.3, 2)) +
            0.90 * exp(-0.5 * pow((h - 17.5) / 1.7, 2)) +
            0.45 * exp(-0.5 * pow((h - 12.5) / 2.5, 2));
    return p > 1.0 ? 1.0 : p;
}

static double clip100(double x)
{
    return x < 0 ? 0 : (x > 100 ? 100 : x);
}

/* domain.md §4 */
static void indices(const constants *c, double vru_ev, double veh_ev, double v, double s, double sd,
                    double hb, double *vru, double *veh, double *comb)
{
    *vru = clip100(100.0 * (0.4 * vru_ev / c->vru_max + 0.2 * v / c->v_max + 0.2 * s / c->s_ref +
                            0.2 * sd / c->sd_max));
    *veh = clip100(100.0 * (0.3 * veh_ev / c->veh_max + 0.3 * v / c->v_max + 0.2 * sd / c->sd_max +
                            0.2 * hb / c->hb_max));
    *comb = clip100(0.6 * *vru + 0.4 * *veh);
}

typedef struct {
    double vol, vru, speed, sd, hb, veh_ev, vru_ev;
} features;

static void expected_features(const site *st, double p, features *f)
{
    f->vol = st->peak_vol * p;
    f->vru = st->peak_vru * p;
    f->speed = f->vol > 0.5 ? st->speed * (1.0 - 0.35 * p) : 0;
    f->sd = f->vol > 1.5 ? 1.5 + 3.0 * p + 0.64 : 0;
    f->hb = f->vol * 0.015 * st->risk;
    f->veh_ev = f->vol * 0.012 * st->risk * p;
    f->vru_ev = f->vru * f->vol * 0.01 * st->risk / 2.0;
}

static void draw_features(rng *r, const site *st, double p, features *f)
{
    int v = poisson(r, st->peak_vol * p);
    int u = poisson(r, st->peak_vru * p);
    f->vol = v;
    f->vru = u;
    if (v == 0) {
        f->speed = f->sd = 0;
    } else {
        double s = st->speed * (1.0 - 0.35 * p) + gauss(r);
        f->speed = s < 0.5 ? 0.5 : s;
        f->sd = v < 2 ? 0 : 1.5 + 3.0 * p + fabs(0.8 * gauss(r));
    }
    int hb = poisson(r, v * 0.015 * st->risk);
    f->hb = hb > v ? v : hb;
    f->veh_ev = v < 2 ? 0 : poisson(r, v * 0.012 * st->risk * p);
    f->vru_ev = (v == 0 || u == 0) ? 0 : poisson(r, u * v * 0.01 * st->risk / 2.0);
}

/* ---- aggregates: db/rollup.h (domain.md §5, the jobs' arithmetic) ------------------ */
typedef tsi_rollup_hour hour_agg;
typedef tsi_rollup_day day_agg;
#define hour_from_minutes tsi_rollup_hour_of_minutes
#define day_from_hours    tsi_rollup_day_of_hours

/* An hour older than the 1-minute window, from the model directly. */
static void hour_from_model(rng *r, const site *st, const constants *c, int64_t hour, hour_agg *h)
{
    struct tm tm;
    time_t t = (time_t)hour;
    gmtime_r(&t, &tm);
    int weekend = tm.tm_wday == 0 || tm.tm_wday == 6;
    double p = profile(tm.tm_hour + 0.5, weekend);
    features f;
    expected_features(st, p, &f);
    double vru, veh, comb;
    indices(c, f.vru_ev, f.veh_ev, f.vol, f.speed, f.sd, f.hb, &vru, &veh, &comb);
    int n = unif(r) < 0.03 ? 50 + (int)(unif(r) * 10) : 60;
    double avg = clip100(comb + 2.0 * gauss(r));
    double sd = 2.0 + 6.0 * p + fabs(gauss(r));
    double mn = avg - (1.6 + 0.6 * unif(r)) * sd, mx = avg + (1.8 + 1.0 * unif(r)) * sd;
    h->n = n;
    h->avg = avg;
    h->min = mn < 0 ? 0 : (mn > avg ? avg : mn);
    h->max = mx > 100 ? 100 : (mx < avg ? avg : mx);
    h->sd = sd;
    double tail = 0.5 * erfc((TSI_RISK_HIGH - avg) / (sd * M_SQRT2));
    int hr = (int)lround(n * tail);
    if (h->max <= TSI_RISK_HIGH)
        hr = 0;
    h->high_risk_minutes = hr > n ? n : hr;
    double tv = n * f.vol * (1.0 + 0.05 * gauss(r));
    h->total_vol = tv < 0 ? 0 : (int64_t)llround(tv);
    /* the sub-indices (header comment): no further draw, so the other values stay those of
     * the seed */
    double e = avg - comb, expect[2] = {vru, veh};
    h->has_sub = true;
    for (int j = 0; j < 2; j++) {
        double m = clip100(expect[j] + e);
        double lo = clip100(m - (h->avg - h->min)), hi = clip100(m + (h->max - h->avg));
        h->sub[j][0] = m;
        h->sub[j][1] = lo > m ? m : lo;
        h->sub[j][2] = hi < m ? m : hi;
    }
}

/* ---- COPY helpers ------------------------------------------------------------------ */
typedef struct {
    PGconn *c;
    tsi_buf b;
    int failed;
} copier;

static int copy_begin(copier *cp, PGconn *c, const char *sql, tsi_error *err)
{
    cp->c = c;
    cp->b = (tsi_buf)TSI_BUF_INIT;
    cp->failed = 0;
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COPY_IN) {
        int rc = tsi_db_result_error(r, "COPY", err);
        PQclear(r);
        return rc;
    }
    PQclear(r);
    return 0;
}

static void copy_flush(copier *cp)
{
    if (cp->b.len && !cp->failed && PQputCopyData(cp->c, cp->b.data, (int)cp->b.len) != 1)
        cp->failed = 1;
    tsi_buf_reset(&cp->b);
}

static inline void copy_maybe_flush(copier *cp)
{
    if (cp->b.len > (1u << 20))
        copy_flush(cp);
}

static int copy_end(copier *cp, const char *what, tsi_error *err)
{
    copy_flush(cp);
    tsi_buf_free(&cp->b);
    if (PQputCopyEnd(cp->c, cp->failed ? "client failure" : NULL) != 1)
        return tsi_error_set(err, TSI_E_DB, "COPY failed", "%s: %s", what, PQerrorMessage(cp->c));
    int rc = 0;
    PGresult *r;
    while ((r = PQgetResult(cp->c)) != NULL) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK && rc == 0)
            rc = tsi_db_result_error(r, what, err);
        PQclear(r);
    }
    return rc;
}

/* fast fixed-point formatting for doubles in COPY text (6 decimals, enough for 0..100) */
static void put_double(tsi_buf *b, double v)
{
    if (isnan(v)) {
        tsi_buf_puts(b, "\\N");
        return;
    }
    char tmp[48];
    int n = snprintf(tmp, sizeof tmp, "%.15g", v);
    tsi_buf_append(b, tmp, (size_t)n);
}

static void put_int(tsi_buf *b, int64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%lld", (long long)v);
    tsi_buf_append(b, tmp, (size_t)n);
}

/* COPY text of the sub-index columns (SUB_COLS) of a row of n minutes: for VRU then
 * vehicle, the raw, EB and reported means (one model value), min, max, and the counts;
 * \N for all when the row has none (the jobs' rollup fills or keeps them) */
#define SUB_COLS                                                                                   \
    ", avg_vru_index, n_vru_index, avg_vru_index_eb, n_vru_index_eb, avg_vru_si, n_vru_si,"        \
    " min_vru_si, max_vru_si, avg_vehicle_index, n_vehicle_index, avg_vehicle_index_eb,"           \
    " n_vehicle_index_eb, avg_vehicle_si, n_vehicle_si, min_vehicle_si, max_vehicle_si"
static void put_sub(tsi_buf *b, bool has, const double sub[2][3], int n)
{
    for (int j = 0; j < 2; j++) {
        for (int k = 0; k < 3; k++) { /* raw, EB, reported: the mean and its count */
            tsi_buf_putc(b, '\t');
            put_double(b, has ? sub[j][0] : NAN);
            tsi_buf_putc(b, '\t');
            if (has)
                put_int(b, n);
            else
                tsi_buf_puts(b, "\\N");
        }
        tsi_buf_putc(b, '\t');
        put_double(b, has ? sub[j][1] : NAN);
        tsi_buf_putc(b, '\t');
        put_double(b, has ? sub[j][2] : NAN);
    }
}

static void fmt_ts(char *out, size_t len, int64_t t)
{
    struct tm tm;
    time_t tt = (time_t)t;
    gmtime_r(&tt, &tm);
    strftime(out, len, "%Y-%m-%d %H:%M:%S+00", &tm);
}

/* ---- the Parquet side -------------------------------------------------------------- */
static const char *archive_dir(char *buf, size_t len)
{
    const char *a = getenv("TSI_ARCHIVE_DIR");
    if (a && *a)
        snprintf(buf, len, "%s", a);
    else
        snprintf(buf, len, "%s/archive", tsi_home());
    return buf;
}

static int mkdirs(const char *path)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    return (mkdir(tmp, 0755) < 0 && errno != EEXIST) ? -1 : 0;
}

static int duck_exec(duckdb_connection con, const char *sql, tsi_error *err)
{
    duckdb_result res;
    if (duckdb_query(con, sql, &res) == DuckDBError) {
        tsi_error_set(err, TSI_E_PARQUET, "DuckDB query failed", "%s", duckdb_result_error(&res));
        duckdb_destroy_result(&res);
        return TSI_E_PARQUET;
    }
    duckdb_destroy_result(&res);
    return 0;
}

static void sql_quote(char *out, size_t len, const char *s)
{
    size_t j = 0;
    out[j++] = '\'';
    for (; *s && j + 3 < len; s++) {
        if (*s == '\'')
            out[j++] = '\'';
        out[j++] = *s;
    }
    out[j++] = '\'';
    out[j] = '\0';
}

/* Removes seed_*.parquet files of one day directory (the seed's own earlier output). */
static void remove_seed_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char p[4600];
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (strncmp(e->d_name, "seed_", 5) == 0 && n > 8 &&
            strcmp(e->d_name + n - 8, ".parquet") == 0) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    }
    closedir(d);
}

typedef struct {
    duckdb_database db;
    duckdb_connection con;
    duckdb_appender app;
    int open;
} duck;

static int duck_open(duck *d, tsi_error *err)
{
    memset(d, 0, sizeof *d);
    if (duckdb_open(NULL, &d->db) == DuckDBError)
        return tsi_error_set(err, TSI_E_PARQUET, "cannot open DuckDB", NULL);
    if (duckdb_connect(d->db, &d->con) == DuckDBError) {
        duckdb_close(&d->db);
        return tsi_error_set(err, TSI_E_PARQUET, "cannot connect to DuckDB", NULL);
    }
    d->open = 1;
    int rc = duck_exec(d->con,
                       "SET TimeZone='UTC';"
                       "CREATE TABLE rt (intersection_id BIGINT, \"timestamp\" TIMESTAMPTZ,"
                       " combined_index DOUBLE, combined_index_eb DOUBLE, vru_index DOUBLE,"
                       " vru_index_eb DOUBLE, vehicle_index DOUBLE, vehicle_index_eb DOUBLE,"
                       " traffic_volume INTEGER, vru_count INTEGER, vehicle_event_count INTEGER,"
                       " vru_event_count INTEGER, hour_of_day SMALLINT, day_of_week SMALLINT,"
                       " avg_speed DOUBLE, speed_stddev DOUBLE, hard_braking_count INTEGER)",
                       err);
    if (rc < 0)
        return rc;
    if (duckdb_appender_create(d->con, NULL, "rt", &d->app) == DuckDBError)
        return tsi_error_set(err, TSI_E_PARQUET, "cannot create a DuckDB appender", NULL);
    return 0;
}

static void duck_close(duck *d)
{
    if (!d->open)
        return;
    if (d->app)
        duckdb_appender_destroy(&d->app);
    duckdb_disconnect(&d->con);
    duckdb_close(&d->db);
    d->open = 0;
}

/* ---- the run ----------------------------------------------------------------------- */
static const char *const streets_a[] = {
    "US-29 (Lee Hwy)", "US-50 (Arlington Blvd)", "Gallows Rd",      "Cedar Ln",
    "Blake Ln",        "Jermantown Rd",          "Chain Bridge Rd", "Pickett Rd",
    "Fairfax Blvd",    "Prosperity Ave",         "Hunter Mill Rd",  "Vaden Dr"};
static const char *const streets_b[] = {"Nutley St", "Cottage St",     "Lynn St",     "Maple Ave",
                                        "Oak St",    "Elm St",         "Hilltop Rd",  "Swanee Ln",
                                        "Park Rd",   "Court House Rd", "Lakeview Dr", "Meadow Ln",
                                        "Church St", "Locust St",      "Birch St",    "Spring Rd"};

static void make_sites(site *s, int n, uint64_t seed)
{
    const double lat0 = 38.87, lon0 = -77.27, step = 450.0; /* metres between grid points */
    int side = (int)ceil(sqrt((double)n));
    for (int i = 0; i < n; i++) {
        rng r;
        rng_init(&r, seed, 1000003u + (uint64_t)i);
        site *t = &s[i];
        t->id = i + 1;
        if (i == 0) {
            t->lat = 38.8836;
            t->lon = -77.2667;
            snprintf(t->name, sizeof t->name, "US-29 (Lee Hwy) & Nutley St");
        } else if (i == 1) {
            t->lat = 38.8717;
            t->lon = -77.2723;
            snprintf(t->name, sizeof t->name, "US-50 (Arlington Blvd) & Nutley St");
        } else {
            int row = i / side - side / 2, col = i % side - side / 2;
            double dn = row * step + (unif(&r) - 0.5) * step * 0.5;
            double de = col * step + (unif(&r) - 0.5) * step * 0.5;
            t->lat = lat0 + dn / 111320.0;
            t->lon = lon0 + de / (111320.0 * cos(lat0 * M_PI / 180.0));
            const char *a = streets_a[(size_t)(i / side) % (sizeof streets_a / sizeof *streets_a)];
            const char *b = streets_b[(size_t)(i % side) % (sizeof streets_b / sizeof *streets_b)];
            snprintf(t->name, sizeof t->name, "%s & %s #%d", a, b, i + 1);
        }
        t->peak_vol = i < 2 ? 85 + 10 * unif(&r) : 25 + 65 * unif(&r);
        t->peak_vru = i < 2 ? 5 : 0.5 + 5.5 * unif(&r);
        t->speed = 9 + 7 * unif(&r);
        t->risk = i < 2 ? 1.8 : 0.6 + 1.9 * unif(&r);
        t->lanes = 4 + (int)(unif(&r) * 9);
    }
}

typedef struct {
    int n, days;
    uint64_t seed;
    int parquet;
    int64_t now_min;  /* last complete minute */
    int64_t rt_start; /* first 1-minute row */
    int64_t cur_hour; /* the hour in progress (not rolled up) */
    int64_t today;    /* UTC midnight today (not rolled up) */
    int64_t hourly_start, daily_start;
} plan;

/* The seeded lane geometry of one site (see the header comment), written to w as the
 * value of "lane_geometry" (the caller wrote the key). */
static void seed_lanes(double lat, double lon, int vehicle_lanes, double turn_deg, tsi_jsonw *w)
{
    enum { MAXL = 12 + 4 };
    tsi_lane lanes[MAXL];
    double la[MAXL][3], lo[MAXL][3];
    int n = 0;
    if (vehicle_lanes > 12)
        vehicle_lanes = 12;
    for (int k = 0; k < vehicle_lanes + 4; k++, n++) {
        tsi_lane *l = &lanes[n];
        *l = (tsi_lane){.directional_use = -1, .shared_with = -1, .maneuvers = -1};
        bool walk = k >= vehicle_lanes;
        int a = walk ? k - vehicle_lanes : k % 4, slot = k / 4;
        double out = turn_deg + 90.0 * a; /* bearing from the centre along the approach */
        l->lane_id = k + 1;
        l->type = walk ? TSI_LANE_CROSSWALK : TSI_LANE_VEHICLE;
        l->ingress_approach = walk || slot == 1 ? -1 : a + 1;
        l->egress_approach = !walk && slot == 1 ? a + 1 : -1;
        l->lat = la[n];
        l->lon = lo[n];
        if (walk) {
            double clat, clon;
            tsi_geo_destination(lat, lon, out, 6, &clat, &clon);
            tsi_geo_destination(clat, clon, out + 90, 10, &la[n][0], &lo[n][0]);
            tsi_geo_destination(clat, clon, out - 90, 10, &la[n][1], &lo[n][1]);
            l->nnodes = 2;
        } else {
            double side = slot == 0 ? 1.75 : slot == 1 ? -1.75 : 5.25; /* right of "in" */
            static const double along[3] = {8, 30, 60};
            for (int j = 0; j < 3; j++) {
                double clat, clon;
                tsi_geo_destination(lat, lon, out, along[j], &clat, &clon);
                /* driving in towards the centre (bearing out+180): right is out-90 */
                tsi_geo_destination(clat, clon, out - 90, side, &la[n][j], &lo[n][j]);
            }
            l->nnodes = 3;
        }
    }
    tsi_lanes_json(w, lanes, n);
}

static int load_intersections(PGconn *c, const site *s, const plan *p, tsi_error *err)
{
    int rc = tsi_db_exec(c,
                         "CREATE TEMP TABLE seed_int (id bigint, name text, latitude float8,"
                         " longitude float8, lane_count int, metadata jsonb) ON COMMIT DROP",
                         err);
    if (rc < 0)
        return rc;
    copier cp;
    if ((rc = copy_begin(&cp, c, "COPY seed_int FROM STDIN", err)) < 0)
        return rc;
    for (int i = 0; i < p->n; i++) {
        put_int(&cp.b, s[i].id);
        tsi_buf_putc(&cp.b, '\t');
        tsi_buf_puts(&cp.b, s[i].name); /* our own names: no tab, newline or backslash */
        tsi_buf_printf(&cp.b, "\t%.7f\t%.7f\t%d\t", s[i].lat, s[i].lon, s[i].lanes);
        /* {"lane_geometry":[...]}: numbers and our own words, nothing COPY must escape */
        uint64_t h = p->seed ^ ((uint64_t)s[i].id * 0x9E3779B97F4A7C15ull);
        double turn = (double)(splitmix(&h) >> 11) / 9007199254740992.0 * 30.0;
        tsi_jsonw w;
        tsi_jsonw_init(&w, &cp.b);
        tsi_jsonw_object(&w);
        tsi_jsonw_key(&w, "lane_geometry");
        seed_lanes(s[i].lat, s[i].lon, s[i].lanes, turn, &w);
        tsi_jsonw_end(&w);
        tsi_buf_putc(&cp.b, '\n');
        copy_maybe_flush(&cp);
    }
    if ((rc = copy_end(&cp, "COPY intersections", err)) < 0)
        return rc;
    char sql[1024];
    snprintf(sql, sizeof sql,
             "INSERT INTO intersections (id, name, latitude, longitude, geometry, lane_count,"
             " revision, metadata)"
             " SELECT id, name, latitude, longitude, ST_SetSRID(ST_MakePoint(longitude, latitude),"
             " 4326), lane_count, 1, jsonb_build_object('source', 'seed', 'seed', %llu) || metadata"
             " FROM seed_int"
             " ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, latitude = EXCLUDED.latitude,"
             " longitude = EXCLUDED.longitude, lane_count = EXCLUDED.lane_count,"
             " metadata = EXCLUDED.metadata",
             (unsigned long long)p->seed);
    return tsi_db_exec(c, sql, err);
}

static int run_seed(const plan *p, tsi_error *err)
{
    int rc = 0;
    PGconn *c = NULL;
    site *s = calloc((size_t)p->n, sizeof *s);
    int64_t nmin = (p->now_min - p->rt_start) / 60 + 1;
    double *si = malloc(sizeof(double) * 60);
    int *vol = malloc(sizeof(int) * 60);
    char(*tsbuf)[32] = malloc(sizeof(*tsbuf) * (size_t)nmin);
    int64_t nhours = (p->cur_hour - p->daily_start) / 3600;
    hour_agg *hours = malloc(sizeof(hour_agg) * (size_t)(nhours > 0 ? nhours : 1));
    duck dk = {0};
    copier rt = {0}, hr = {0}, dy = {0};
    int copying = 0;
    if (!s || !si || !vol || !tsbuf || !hours) {
        rc = tsi_error_set(err, TSI_E_NOMEM, "out of memory", NULL);
        goto done;
    }
    for (int64_t m = 0; m < nmin; m++)
        fmt_ts(tsbuf[m], sizeof tsbuf[m], p->rt_start + m * 60);
    make_sites(s, p->n, p->seed);

    double vmax = 0;
    for (int i = 0; i < p->n; i++)
        vmax = s[i].peak_vol > vmax ? s[i].peak_vol : vmax;
    const constants k = {.vru_max = 6,
                         .veh_max = 6,
                         .v_max = ceil(vmax * 1.3),
                         .s_ref = 15,
                         .sd_max = 8,
                         .hb_max = 6,
                         .k = 50};

    if (p->parquet && (rc = duck_open(&dk, err)) < 0)
        goto done;

    c = tsi_db_connect(TSI_ROLE_OWNER, NULL, err);
    if (!c) {
        rc = err ? err->code : TSI_E_DB;
        goto done;
    }
    if ((rc = tsi_db_exec(c,
                          "SET client_min_messages = warning; SET synchronous_commit = off;"
                          " SET TIME ZONE 'UTC'; BEGIN",
                          err)) < 0)
        goto done;
    if ((rc = load_intersections(c, s, p, err)) < 0)
        goto done;
    {
        char sql[1200];
        snprintf(sql, sizeof sql,
                 "DELETE FROM safety_indices_realtime WHERE intersection_id BETWEEN 1 AND %d;"
                 "DELETE FROM safety_indices_hourly WHERE intersection_id BETWEEN 1 AND %d;"
                 "DELETE FROM safety_indices_daily WHERE intersection_id BETWEEN 1 AND %d;"
                 "DELETE FROM safety_features_hourly WHERE intersection_id BETWEEN 1 AND %d;"
                 "INSERT INTO normalization_constants (constants, valid_from)"
                 " SELECT jsonb_build_object('I_vru_max', %g, 'I_veh_max', %g, 'V_max', %g,"
                 " 'S_ref', %g, 'sigma_max', %g, 'HB_max', %g, 'eb_k', %g, 'source', 'seed'),"
                 " to_timestamp(%lld) WHERE NOT EXISTS (SELECT 1 FROM normalization_constants)",
                 p->n, p->n, p->n, p->n, k.vru_max, k.veh_max, k.v_max, k.s_ref, k.sd_max, k.hb_max,
                 k.k, (long long)p->daily_start);
        if ((rc = tsi_db_exec(c, sql, err)) < 0)
            goto done;
    }

    /* realtime rows first (one COPY), keeping the per-hour aggregates for later */
    if ((rc = copy_begin(
             &rt, c,
             "COPY safety_indices_realtime (intersection_id, \"timestamp\", " TSI_RT_BASE_COLS
             ") FROM STDIN",
             err)) < 0)
        goto done;
    copying = 1;
    /* hourly aggregates of the 1-minute window: [i][hour index from rt_start] */
    int64_t rt_hours = (p->cur_hour - p->rt_start) / 3600;
    hour_agg *rth = calloc((size_t)p->n * (size_t)(rt_hours > 0 ? rt_hours : 1), sizeof *rth);
    if (!rth) {
        rc = tsi_error_set(err, TSI_E_NOMEM, "out of memory", NULL);
        goto done;
    }
    for (int i = 0; i < p->n; i++) {
        const site *st = &s[i];
        rng r;
        rng_init(&r, p->seed, (uint64_t)st->id);
        int nin = 0;
        int64_t cur_h = p->rt_start;
        for (int64_t m = 0; m < nmin; m++) {
            int64_t t = p->rt_start + m * 60;
            int64_t h0 = t - t % 3600;
            if (h0 != cur_h) {
                int64_t hi = (cur_h - p->rt_start) / 3600;
                if (nin > 0 && hi < rt_hours) {
                    hour_agg *ha = &rth[(size_t)i * (size_t)rt_hours + (size_t)hi];
                    hour_from_minutes(ha, si, vol, nin);
                    ha->hour = cur_h;
                }
                cur_h = h0;
                nin = 0;
            }
            double draw_gap = unif(&r);
            if (draw_gap < 0.002)
                continue; /* a missing minute now and then: gaps are real */
            struct tm tm;
            time_t tt = (time_t)t;
            gmtime_r(&tt, &tm);
            int weekend = tm.tm_wday == 0 || tm.tm_wday == 6;
            double pr = profile(tm.tm_hour + tm.tm_min / 60.0, weekend);
            features f, e;
            draw_features(&r, st, pr, &f);
            expected_features(st, pr, &e);
            double vru, veh, comb, pv, ph, pc;
            indices(&k, f.vru_ev, f.veh_ev, f.vol, f.speed, f.sd, f.hb, &vru, &veh, &comb);
            indices(&k, e.vru_ev, e.veh_ev, e.vol, e.speed, e.sd, e.hb, &pv, &ph, &pc);
            double nn = f.vol + f.vru, lam = nn / (nn + k.k);
            double vru_eb = pv + lam * (vru - pv), veh_eb = ph + lam * (veh - ph),
                   comb_eb = pc + lam * (comb - pc);
            int dow = (tm.tm_wday + 6) % 7;
            tsi_buf *b = &rt.b;
            put_int(b, st->id);
            tsi_buf_putc(b, '\t');
            tsi_buf_puts(b, tsbuf[m]);
            tsi_buf_printf(b, "\t%.6f\t%.6f\t%.6f\t%.6f\t%.6f\t%.6f\t%d\t%d\t%d\t%d\t%d\t%d\n",
                           comb, comb_eb, vru, vru_eb, veh, veh_eb, (int)f.vol, (int)f.vru,
                           (int)f.veh_ev, (int)f.vru_ev, tm.tm_hour, dow);
            copy_maybe_flush(&rt);
            /* aggregates use the values as stored (6 decimals) */
            si[nin] = round(comb_eb * 1e6) / 1e6;
            vol[nin] = (int)f.vol;
            nin++;
            if (p->parquet) {
                duckdb_appender a = dk.app;
                duckdb_append_int64(a, st->id);
                duckdb_append_timestamp(a, (duckdb_timestamp){t * 1000000});
                duckdb_append_double(a, round(comb * 1e6) / 1e6);
                duckdb_append_double(a, round(comb_eb * 1e6) / 1e6);
                duckdb_append_double(a, round(vru * 1e6) / 1e6);
                duckdb_append_double(a, round(vru_eb * 1e6) / 1e6);
                duckdb_append_double(a, round(veh * 1e6) / 1e6);
                duckdb_append_double(a, round(veh_eb * 1e6) / 1e6);
                duckdb_append_int32(a, (int32_t)f.vol);
                duckdb_append_int32(a, (int32_t)f.vru);
                duckdb_append_int32(a, (int32_t)f.veh_ev);
                duckdb_append_int32(a, (int32_t)f.vru_ev);
                duckdb_append_int16(a, (int16_t)tm.tm_hour);
                duckdb_append_int16(a, (int16_t)dow);
                duckdb_append_double(a, f.speed);
                duckdb_append_double(a, f.sd);
                duckdb_append_int32(a, (int32_t)f.hb);
                if (duckdb_appender_end_row(a) == DuckDBError) {
                    rc = tsi_error_set(err, TSI_E_PARQUET, "DuckDB appender failed", "%s",
                                       duckdb_appender_error(a));
                    free(rth);
                    goto done;
                }
            }
        }
        int64_t hi = (cur_h - p->rt_start) / 3600;
        if (nin > 0 && hi < rt_hours) {
            hour_agg *ha = &rth[(size_t)i * (size_t)rt_hours + (size_t)hi];
            hour_from_minutes(ha, si, vol, nin);
            ha->hour = cur_h;
        }
    }
    copying = 0;
    if ((rc = copy_end(&rt, "COPY safety_indices_realtime", err)) < 0) {
        free(rth);
        goto done;
    }
    tsi_info("seed", "realtime rows loaded intersections=%d minutes=%lld", p->n, (long long)nmin);

    /* hourly (stored within the window) and daily (from the hours), one COPY each */
    if ((rc = copy_begin(&hr, c,
                         "COPY safety_indices_hourly (intersection_id, hour_timestamp, avg_si,"
                         " min_si, max_si, std_si, total_volume, avg_volume, high_risk_minutes,"
                         " data_quality_score" SUB_COLS ") FROM STDIN",
                         err)) < 0) {
        free(rth);
        goto done;
    }
    tsi_buf days_text = TSI_BUF_INIT; /* daily rows, loaded after the hourly COPY ends */
    int64_t nhour_rows = 0, nday_rows = 0;
    for (int i = 0; i < p->n; i++) {
        const site *st = &s[i];
        rng r;
        rng_init(&r, p->seed, 0x40000000ull + (uint64_t)st->id);
        int64_t nh = 0;
        for (int64_t h = p->daily_start; h < p->cur_hour; h += 3600) {
            hour_agg *ha = &hours[nh];
            if (h >= p->rt_start) {
                *ha = rth[(size_t)i * (size_t)rt_hours + (size_t)((h - p->rt_start) / 3600)];
                if (ha->n == 0)
                    continue; /* no minute at all in that hour */
            } else {
                hour_from_model(&r, st, &k, h, ha);
                ha->hour = h;
            }
            nh++;
            if (h >= p->hourly_start) {
                tsi_buf *b = &hr.b;
                char ts[32];
                fmt_ts(ts, sizeof ts, h);
                put_int(b, st->id);
                tsi_buf_putc(b, '\t');
                tsi_buf_puts(b, ts);
                tsi_buf_putc(b, '\t');
                put_double(b, ha->avg);
                tsi_buf_putc(b, '\t');
                put_double(b, ha->min);
                tsi_buf_putc(b, '\t');
                put_double(b, ha->max);
                tsi_buf_putc(b, '\t');
                put_double(b, ha->sd);
                tsi_buf_printf(b, "\t%lld\t", (long long)ha->total_vol);
                put_double(b, (double)ha->total_vol / ha->n);
                tsi_buf_printf(b, "\t%d\t", ha->high_risk_minutes);
                put_double(b, ha->n / 60.0);
                put_sub(b, ha->has_sub, (const double(*)[3])ha->sub, ha->n);
                tsi_buf_putc(b, '\n');
                copy_maybe_flush(&hr);
                nhour_rows++;
            }
        }
        /* days: group the hours by UTC day, complete days only (before today) */
        int64_t j = 0;
        while (j < nh) {
            int64_t day = hours[j].hour - hours[j].hour % 86400;
            int64_t e = j;
            while (e < nh && hours[e].hour - hours[e].hour % 86400 == day)
                e++;
            if (day < p->today) {
                day_agg d;
                day_from_hours(&d, &hours[j], (int)(e - j));
                char ds[16];
                struct tm tm;
                time_t tt = (time_t)day;
                gmtime_r(&tt, &tm);
                strftime(ds, sizeof ds, "%Y-%m-%d", &tm);
                tsi_buf *b = &days_text;
                put_int(b, st->id);
                tsi_buf_putc(b, '\t');
                tsi_buf_puts(b, ds);
                tsi_buf_putc(b, '\t');
                put_double(b, d.avg);
                tsi_buf_putc(b, '\t');
                put_double(b, d.min);
                tsi_buf_putc(b, '\t');
                put_double(b, d.max);
                tsi_buf_putc(b, '\t');
                put_double(b, d.sd);
                tsi_buf_printf(b, "\t%lld\t", (long long)d.total_vol);
                put_double(b, (double)d.total_vol / d.n);
                tsi_buf_printf(b, "\t%d\t%d\t", d.high_risk_hours, d.peak_hour);
                put_double(b, d.peak_si);
                put_sub(b, d.has_sub, (const double(*)[3])d.sub, d.n);
                tsi_buf_putc(b, '\n');
                nday_rows++;
            }
            j = e;
        }
    }
    free(rth);
    if ((rc = copy_end(&hr, "COPY safety_indices_hourly", err)) < 0) {
        tsi_buf_free(&days_text);
        goto done;
    }
    if ((rc = copy_begin(&dy, c,
                         "COPY safety_indices_daily (intersection_id, date, avg_si, min_si,"
                         " max_si, std_si, total_volume, avg_volume, high_risk_hours, peak_hour,"
                         " peak_si" SUB_COLS ") FROM STDIN",
                         err)) < 0) {
        tsi_buf_free(&days_text);
        goto done;
    }
    dy.b = days_text;
    if ((rc = copy_end(&dy, "COPY safety_indices_daily", err)) < 0)
        goto done;
    /* the hours of the 1-minute window and the days wholly in it once more through the
     * jobs' own rollup (migration 060): their sub-indices, model provenance and the
     * constants' features store come from the minutes just loaded; the days that hold
     * one of those hours are rolled again from all their hours (modelled ones included) */
    char roll[640];
    snprintf(roll, sizeof roll,
             "SELECT tsi_rollup_hours(ARRAY(SELECT g FROM generate_series(to_timestamp(%lld),"
             " to_timestamp(%lld) - interval '1 hour', interval '1 hour') g));"
             " SELECT tsi_rollup_days(ARRAY(SELECT DISTINCT date_trunc('day', hour_timestamp,"
             " 'UTC') FROM safety_indices_hourly WHERE hour_timestamp >= to_timestamp(%lld)"
             " AND hour_timestamp < to_timestamp(%lld)))",
             (long long)p->rt_start, (long long)p->cur_hour, (long long)p->rt_start,
             (long long)p->today);
    if ((rc = tsi_db_exec(c, roll, err)) < 0)
        goto done;
    if ((rc = tsi_db_exec(c,
                          "COMMIT; ANALYZE intersections; ANALYZE safety_indices_realtime;"
                          " ANALYZE safety_indices_hourly; ANALYZE safety_indices_daily",
                          err)) < 0)
        goto done;
    tsi_info("seed", "rollups loaded hourly_rows=%lld daily_rows=%lld", (long long)nhour_rows,
             (long long)nday_rows);

    if (p->parquet) {
        duckdb_appender_destroy(&dk.app);
        dk.app = NULL;
        char root[4096], dir[4400], file[4600], q[4700], sql[9800];
        archive_dir(root, sizeof root);
        int files = 0;
        for (int64_t day = p->rt_start - p->rt_start % 86400; day <= p->now_min; day += 86400) {
            struct tm tm;
            time_t tt = (time_t)day;
            gmtime_r(&tt, &tm);
            tsi_indices_day_dir(dir, sizeof dir, root, day);
            if (mkdirs(dir) < 0) {
                rc = tsi_error_set(err, TSI_E_IO, "cannot create the archive directory", "%s: %s",
                                   dir, strerror(errno));
                goto done;
            }
            remove_seed_files(dir);
            snprintf(file, sizeof file, "%s/seed_%04d%02d%02d.parquet", dir, tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday);
            sql_quote(q, sizeof q, file);
            snprintf(sql, sizeof sql,
                     "COPY (SELECT * FROM rt WHERE \"timestamp\" >= to_timestamp(%lld) AND"
                     " \"timestamp\" < to_timestamp(%lld) ORDER BY intersection_id, \"timestamp\")"
                     " TO %s (FORMAT parquet, COMPRESSION zstd)",
                     (long long)day, (long long)(day + 86400), q);
            if ((rc = duck_exec(dk.con, sql, err)) < 0)
                goto done;
            files++;
        }
        /* intersections for the fallback (the collector keeps the same file current) */
        tsi_archive_isect *ir = calloc((size_t)p->n, sizeof *ir);
        if (!ir) {
            rc = tsi_error_set(err, TSI_E_NOMEM, "out of memory", NULL);
            goto done;
        }
        for (int i = 0; i < p->n; i++)
            ir[i] = (tsi_archive_isect){s[i].id, s[i].name, s[i].lat, s[i].lon, s[i].lanes};
        rc = tsi_archive_intersections_write(root, ir, p->n, err);
        free(ir);
        if (rc < 0)
            goto done;
        tsi_info("seed", "indices Parquet written files=%d dir=%s/indices", files, root);
    }
    rc = 0;
done:
    if (copying)
        PQputCopyEnd(c, "aborted");
    duck_close(&dk);
    if (c)
        PQfinish(c);
    free(s);
    free(si);
    free(vol);
    free(tsbuf);
    free(hours);
    return rc;
}

int tsi_seed_plan(int n, int days, int64_t now, int64_t out[6])
{
    int64_t now_min = now - now % 60 - 60;
    int64_t cur_hour = (now_min + 60) - (now_min + 60) % 3600;
    int64_t today = now_min - now_min % 86400;
    int rt_days = days < 2 ? days : 2;
    int h_days = days < 90 ? days : 90;
    out[0] = now_min;
    out[1] = cur_hour - (int64_t)rt_days * 86400;
    out[2] = cur_hour;
    out[3] = today;
    out[4] = today - (int64_t)h_days * 86400;
    out[5] = today - (int64_t)days * 86400;
    (void)n;
    return 0;
}

int tsi_seed_run(const tsi_opts *o)
{
    int rc;
    plan p = {0};
    p.n = (int)tsi_opts_int(o, "intersections");
    p.days = (int)tsi_opts_int(o, "days");
    p.seed = (uint64_t)tsi_opts_int(o, "seed");
    p.parquet = !tsi_opts_bool(o, "no-parquet");
    int64_t pl[6];
    tsi_seed_plan(p.n, p.days, (int64_t)time(NULL), pl);
    p.now_min = pl[0];
    p.rt_start = pl[1];
    p.cur_hour = pl[2];
    p.today = pl[3];
    p.hourly_start = pl[4];
    p.daily_start = pl[5];
    tsi_error e = {0};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rc = run_seed(&p, &e);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (rc < 0) {
        char buf[900];
        fprintf(stderr, "tsi seed: %s\n", tsi_error_str(&e, buf, sizeof buf));
        return 1;
    }
    tsi_info("seed", "done intersections=%d days=%d seed=%llu seconds=%.1f", p.n, p.days,
             (unsigned long long)p.seed,
             (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
    return 0;
}
