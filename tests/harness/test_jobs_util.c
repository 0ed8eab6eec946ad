/* tests/harness/test_jobs_util.c — see test_jobs_util.h */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_jobs_util.h"

uint64_t jt_seed = 88172645463325252ULL;
void jt_intersections(PGconn *owner, int n)
{
    th_sqlf(owner,
            "INSERT INTO intersections (id, name, latitude, longitude) "
            "SELECT g, 'I-' || g, 38.85 + g * 0.001, -77.3 FROM generate_series(1, %d) g",
            n);
}

void jt_num(tsi_buf *b, double v)
{
    if (isnan(v))
        tsi_buf_puts(b, "NULL");
    else
        tsi_buf_printf(b, "%.17g", v);
}

void jt_insert(PGconn *c, const jt_row *rows, size_t n)
{
    for (size_t start = 0; start < n; start += 400) {
        tsi_buf b = TSI_BUF_INIT;
        tsi_buf_puts(&b, "INSERT INTO safety_indices_realtime (intersection_id, \"timestamp\", "
                         "combined_index, combined_index_eb, vru_index, vehicle_index, "
                         "traffic_volume, vru_count, vehicle_event_count, vru_event_count, "
                         "hour_of_day, day_of_week, avg_speed, speed_stddev, "
                         "hard_braking_count) VALUES ");
        for (size_t i = start; i < n && i < start + 400; i++) {
            const jt_row *r = &rows[i];
            long long hour = (r->ts / 3600) % 24, dow = ((r->ts / 86400) + 3) % 7;
            tsi_buf_printf(&b, "%s(%lld, to_timestamp(%lld), ", i > start ? "," : "", r->iid,
                           r->ts);
            jt_num(&b, r->raw);
            tsi_buf_puts(&b, ", ");
            jt_num(&b, r->eb);
            tsi_buf_puts(&b, ", ");
            jt_num(&b, r->vru_index);
            tsi_buf_puts(&b, ", ");
            jt_num(&b, r->veh_index);
            tsi_buf_printf(&b, ", %d, %d, %d, %d, %lld, %lld, ", r->vol, r->vru_count,
                           r->veh_events, r->vru_events, hour, dow);
            jt_num(&b, r->speed);
            tsi_buf_puts(&b, ", ");
            jt_num(&b, r->sd);
            if (r->hb < 0)
                tsi_buf_puts(&b, ", NULL)");
            else
                tsi_buf_printf(&b, ", %d)", r->hb);
        }
        th_sqlf(c, "%s", tsi_buf_cstr(&b));
        tsi_buf_free(&b);
    }
}

jt_row jt_make(long long iid, long long ts, double lo, double hi, double p_null)
{
    jt_row r;
    memset(&r, 0, sizeof r);
    r.iid = iid;
    r.ts = ts;
    r.raw = lo + (hi - lo) * jt_rand();
    r.eb = jt_rand() < p_null ? NAN : lo + (hi - lo) * jt_rand();
    r.vol = (int)(jt_rand() * 120);
    r.hb = 0;
    r.speed = NAN;
    r.sd = NAN;
    r.vru_index = NAN;
    r.veh_index = NAN;
    return r;
}

void jt_run_ok(const char *job, const char *at, const char *params, tsi_job_result *out)
{
    PGconn *c = th_connect("tsi_jobs");
    tsi_error e = {0};
    tsi_job_result res;
    int rc = tsi_jobs_run_one(c, job, at, params, &res, &e);
    PQfinish(c);
    if (rc < 0)
        fail_msg("job %s could not run: %s %s", job, e.message, e.detail);
    if (strcmp(res.status, "ok") != 0)
        fail_msg("job %s failed: %s", job, res.error);
    if (out)
        *out = res;
}

long long jt_server_now(PGconn *c)
{
    return th_intf(c, "SELECT extract(epoch FROM now())::bigint");
}

const char *jt_at(char *buf, size_t len, long long ts)
{
    time_t t = (time_t)ts;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%d %H:%M:%S+00", &tm);
    return buf;
}

char *jt_digest(PGconn *c, const char *cols, const char *table, const char *order)
{
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY %s), '')) || ':' || count(*) "
             "FROM (SELECT %s FROM %s) t",
             order, cols, table);
    return th_value(c, sql);
}

jt_stats jt_stats_of(const double *v, size_t n)
{
    jt_stats s = {n, NAN, NAN, NAN, NAN};
    if (n == 0)
        return s;
    double sum = 0;
    s.min = s.max = v[0];
    for (size_t i = 0; i < n; i++) {
        sum += v[i];
        if (v[i] < s.min)
            s.min = v[i];
        if (v[i] > s.max)
            s.max = v[i];
    }
    s.mean = sum / (double)n;
    if (n >= 2) {
        double ss = 0;
        for (size_t i = 0; i < n; i++)
            ss += (v[i] - s.mean) * (v[i] - s.mean);
        s.std = sqrt(ss / (double)(n - 1));
    }
    return s;
}

double jt_mean_at(const jt_row *rows, size_t n, int which, long long iid, int hour, long long lo,
                  long long hi, long *cnt)
{
    double sum = 0;
    *cnt = 0;
    for (size_t i = 0; i < n; i++) {
        const jt_row *r = &rows[i];
        if (r->ts < lo || r->ts >= hi || (iid && r->iid != iid) || (r->ts / 3600) % 24 != hour)
            continue;
        double v = which == 0 ? r->raw : which == 1 ? r->vru_index : r->veh_index;
        if (isnan(v))
            continue;
        sum += v;
        (*cnt)++;
    }
    return *cnt ? sum / (double)*cnt : NAN;
}

int jt_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double jt_p85(double *v, size_t n)
{
    if (n == 0)
        return NAN;
    qsort(v, n, sizeof v[0], jt_cmp_double);
    double rank = 0.85 * (double)(n - 1);
    size_t k = (size_t)floor(rank);
    double frac = rank - (double)k;
    return k + 1 < n ? v[k] + frac * (v[k + 1] - v[k]) : v[k];
}

double jt_maybe(double p_null, double hi)
{
    return jt_rand() < p_null ? NAN : jt_rand() * hi;
}

size_t jt_two_days(jt_mrow *out, size_t cap, long long day)
{
    size_t n = 0;
    for (long long iid = 1; iid <= 2; iid++)
        for (long long ts = day; ts < day + 2 * 86400 && n < cap;
             ts += 60 * (1 + (long long)(jt_rand() * 3))) {
            jt_mrow *r = &out[n++];
            r->iid = iid;
            r->ts = ts;
            r->raw = jt_rand() * 100;
            r->eb = jt_maybe(0.05, 100);
            r->vru = jt_maybe(0.1, 100);
            r->vru_eb = isnan(r->vru) ? NAN : jt_maybe(0.2, 100);
            r->veh = jt_rand() * 100;
            r->veh_eb = jt_maybe(0.2, 100);
            r->vol = (int)(jt_rand() * 80);
            r->cid = ts < day + 30 * 3600 ? 7 : 9;
            r->ver = 1;
        }
    return n;
}

void jt_insert_m(PGconn *c, const jt_mrow *rows, size_t n)
{
    for (size_t start = 0; start < n; start += 400) {
        tsi_buf b = TSI_BUF_INIT;
        tsi_buf_puts(&b, "INSERT INTO safety_indices_realtime (intersection_id, \"timestamp\", "
                         "combined_index, combined_index_eb, vru_index, vru_index_eb, "
                         "vehicle_index, vehicle_index_eb, traffic_volume, vru_count, "
                         "vehicle_event_count, vru_event_count, hour_of_day, day_of_week, "
                         "constants_id, algorithm_version) VALUES ");
        for (size_t i = start; i < n && i < start + 400; i++) {
            const jt_mrow *r = &rows[i];
            tsi_buf_printf(&b, "%s(%lld, to_timestamp(%lld)", i > start ? "," : "", r->iid, r->ts);
            const double v[6] = {r->raw, r->eb, r->vru, r->vru_eb, r->veh, r->veh_eb};
            for (int k = 0; k < 6; k++) {
                tsi_buf_puts(&b, ", ");
                jt_num(&b, v[k]);
            }
            tsi_buf_printf(&b, ", %d, 0, 0, 0, %lld, %lld, %lld, %d)", r->vol, (r->ts / 3600) % 24,
                           ((r->ts / 86400) + 3) % 7, r->cid, r->ver);
        }
        th_sqlf(c, "%s", tsi_buf_cstr(&b));
        tsi_buf_free(&b);
    }
}

jt_stats jt_sub_stats(const jt_mrow *rows, size_t n, long long iid, int which, long long lo,
                      long long hi)
{
    double *v = malloc(sizeof *v * (n ? n : 1));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const jt_mrow *r = &rows[i];
        if (r->iid != iid || r->ts < lo || r->ts >= hi)
            continue;
        double x = which == 0 ? (isnan(r->vru_eb) ? r->vru : r->vru_eb)
                              : (isnan(r->veh_eb) ? r->veh : r->veh_eb);
        if (!isnan(x))
            v[k++] = x;
    }
    jt_stats s = jt_stats_of(v, k);
    free(v);
    return s;
}

static double one_if_zero(double v)
{
    return v == 0 ? 1 : v;
}

jt_constants jt_constants_of(const jt_row *rows, size_t n, long long lo, long long hi)
{
    jt_constants e = {0, 0, 0, 0, 0, 0, 0};
    double *speeds = malloc((n ? n : 1) * sizeof *speeds);
    assert_non_null(speeds);
    size_t ns = 0;
    for (size_t i = 0; i < n; i++) {
        const jt_row *r = &rows[i];
        if (r->ts < lo || r->ts >= hi)
            continue;
        e.minutes++;
        e.vru_max = fmax(e.vru_max, r->vru_events);
        e.veh_max = fmax(e.veh_max, r->veh_events);
        e.v_max = fmax(e.v_max, r->vol);
        e.sd_max = fmax(e.sd_max, r->sd); /* fmax skips a NaN (NULL) */
        e.hb_max = fmax(e.hb_max, r->hb);
        if (r->speed > 0) /* false for NaN */
            speeds[ns++] = r->speed;
    }
    e.s_ref = jt_p85(speeds, ns);
    free(speeds);
    e.vru_max = one_if_zero(e.vru_max);
    e.veh_max = one_if_zero(e.veh_max);
    e.v_max = one_if_zero(e.v_max);
    e.sd_max = one_if_zero(e.sd_max);
    e.hb_max = one_if_zero(e.hb_max);
    return e;
}
