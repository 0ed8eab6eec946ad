/* api/h_rank.c — comparison and ranking: GET /safety/compare?ids= (the statistics of
 * listed intersections side by side, and the ids not found) and /safety/ranking (all
 * intersections ordered by one metric of their statistics, filtered by min_index and
 * risk_level). Statistics from PostgreSQL, or from the archive while it is away
 * (tsi_hc_stats_rows). */
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "api/h_common.h"
#include "api/handlers.h"
#include "base/jsonw.h"
#include "core/index.h"

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
            return tsi_hc_bad(r, "ids", "%s must be comma-separated non-negative integers", v);
        }
        if (++count > 100) {
            tsi_buf_free(&arr);
            return tsi_hc_bad(r, "ids", "%s lists more than 100 intersections", v);
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
    tsi_hc_range g = {0};
    if (tsi_hc_arg_range(r, &g, TSI_HC_RANGE_OTHER) < 0) {
        tsi_buf_free(&arr);
        return 0;
    }
    tsi_hc_stat_row *rows;
    int n;
    int rc = tsi_hc_stats_rows(r, arr.data, g.t0, g.t1, &rows, &n);
    tsi_buf_free(&arr);
    if (rc < 0)
        return 0;
    const tsi_dialect *dl = r->dl;
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
    tsi_jsonw_kv_str(&w, "start_date", g.sd);
    tsi_jsonw_kv_str(&w, "end_date", g.ed);
    tsi_jsonw_key(&w, "intersections");
    tsi_jsonw_array(&w);
    for (int i = 0; i < n; i++) {
        tsi_jsonw_object(&w);
        tsi_hc_write_stats(&w, dl, &rows[i], g.sd, g.ed, NULL);
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

static double metric_of(const tsi_hc_stat_row *x, int m)
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
    const tsi_hc_stat_row *x = a, *y = b;
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
            return tsi_hc_bad(r, "metric",
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
            return tsi_hc_bad(r, "order", "%s must be asc or desc", ov);
    }
    long long limit;
    double min_index;
    const char *rl;
    tsi_hc_range g = {0};
    if (tsi_hc_arg_int(r, "limit", 1, 1000, 10, &limit) < 0 ||
        tsi_hc_arg_num(r, "min_index", 0, false, 100, 0, &min_index) < 0 ||
        tsi_hc_arg_risk(r, &rl) < 0 || tsi_hc_arg_range(r, &g, TSI_HC_RANGE_OTHER) < 0)
        return 0;
    const tsi_dialect *dl = r->dl;
    tsi_hc_stat_row *rows;
    int n;
    if (tsi_hc_stats_rows(r, NULL, g.t0, g.t1, &rows, &n) < 0)
        return 0;
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (rows[i].s.n <= 0 || rows[i].s.avg < min_index)
            continue;
        if (rl && strcmp(tsi_risk_level(rows[i].s.avg), rl) != 0)
            continue;
        rows[k++] = rows[i];
    }
    pthread_mutex_lock(&rank_mu);
    rank_metric = m;
    rank_desc = desc;
    qsort(rows, (size_t)k, sizeof *rows, cmp_rank);
    pthread_mutex_unlock(&rank_mu);
    tsi_jsonw w;
    tsi_jsonw_init(&w, &r->body);
    tsi_jsonw_object(&w);
    tsi_jsonw_kv_str(&w, "metric", metrics_[m]);
    tsi_jsonw_kv_str(&w, "order", desc ? "desc" : "asc");
    tsi_jsonw_kv_str(&w, "start_date", g.sd);
    tsi_jsonw_kv_str(&w, "end_date", g.ed);
    tsi_jsonw_kv_int(&w, "total", k);
    tsi_jsonw_key(&w, "items");
    tsi_jsonw_array(&w);
    for (int i = 0; i < k && i < limit; i++) {
        tsi_jsonw_object(&w);
        tsi_jsonw_kv_int(&w, "rank", i + 1);
        if (m == 4 || m == 6) /* counts: integers */
            tsi_jsonw_kv_int(&w, "value", (int64_t)llround(metric_of(&rows[i], m)));
        else
            tsi_dialect_kv_float(dl, &w, "value", metric_of(&rows[i], m));
        tsi_hc_write_stats(&w, dl, &rows[i], g.sd, g.ed, NULL);
        tsi_dialect_kv_float(dl, &w, "latitude", rows[i].lat);
        tsi_dialect_kv_float(dl, &w, "longitude", rows[i].lon);
        tsi_jsonw_end(&w);
    }
    tsi_jsonw_end(&w);
    tsi_jsonw_end(&w);
    return 0;
}
