/* Integration test of the API's graceful degradation (FR-3, issue 13): a PostgreSQL
 * cluster of this test's own (the harness's cluster is shared by every test, so it must
 * not be stopped), seeded; `tsi serve` answers from PostgreSQL, then — the cluster
 * stopped mid-test — from the indices Parquet archive (X-Data-Source: parquet) with the
 * same values, spatial endpoints answer 503, and after a restart it reconnects by itself.
 * --source parquet and --source postgres are checked on the same data. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cluster_helper.h"
#include "test_api_util.h"

static th_cluster pc; /* this test's own cluster */
static char e_arch[PATH_MAX + 32];
static const char *const *env = pc.env;

static void tsi_ok(const char *a1, const char *a2, const char *a3, const char *a4, const char *a5)
{
    const char *args[] = {a1, a2, a3, a4, a5, NULL};
    char out[16384];
    int rc = th_run_tsi(args, env, out, sizeof out);
    if (rc != 0)
        fail_msg("tsi %s %s failed (%d): %s", a1, a2 ? a2 : "", rc, out);
}

static int setup(void **state)
{
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    th_private_cluster_init(&pc, "fallback", 1900);
    snprintf(e_arch, sizeof e_arch, "TSI_ARCHIVE_DIR=%s/archive", pc.home);
    pc.env[3] = e_arch;
    th_private_cluster_start(&pc, 1);
    tsi_ok("seed", "--intersections", "5", "--days", "3");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    th_private_cluster_remove_all();
    curl_global_cleanup();
    return 0;
}

static void source_of(const resp *r, char *out, size_t len)
{
    if (!resp_header(r, "X-Data-Source", out, len))
        snprintf(out, len, "(none)");
}

/* id → (safety_index, timestamp) of an index answer */
typedef struct {
    long long id;
    double si;
    char ts[32];
} cur;

static int read_index(const resp *r, cur *out, int max)
{
    jdoc j;
    jparse(&j, r);
    int n = 0;
    for (int o = tsi_json_first(&j.d, 0); o >= 0 && n < max; o = tsi_json_next(&j.d, 0, o), n++) {
        out[n].id = (long long)jnum(&j, o, "intersection_id");
        out[n].si = jnum(&j, o, "safety_index");
        jstr(&j, o, "timestamp", out[n].ts, sizeof out[n].ts);
    }
    jfree(&j);
    return n;
}

/* two compare/ranking answers list the same intersections, in order, with the same
 * statistics (PostgreSQL's exact pooled values against the archive's minutes) */
static void same_stats(const resp *a, const resp *b, const char *list)
{
    if (b->status != 200)
        fail_msg("%s: %ld %s", list, b->status, b->body);
    jdoc ja, jb;
    jparse(&ja, a);
    jparse(&jb, b);
    int la = tsi_json_get(&ja.d, 0, list), lb = tsi_json_get(&jb.d, 0, list);
    assert_int_equal(jcount(&ja, la), jcount(&jb, lb));
    assert_true(jcount(&ja, la) >= 3);
    static const char *const keys[] = {
        "avg_safety_index",     "min_safety_index",    "max_safety_index", "std_safety_index",
        "total_traffic_volume", "high_risk_intervals", "data_minutes"};
    for (int i = 0; i < jcount(&ja, la); i++) {
        int x = jat(&ja, la, i), y = jat(&jb, lb, i);
        assert_int_equal((long long)jnum(&ja, x, "intersection_id"),
                         (long long)jnum(&jb, y, "intersection_id"));
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
            double u = jnum(&ja, x, keys[k]), v = jnum(&jb, y, keys[k]);
            if (!(fabs(u - v) <= 1e-9 * (1 + fabs(u))))
                fail_msg("%s[%d].%s: PostgreSQL %.17g, archive %.17g", list, i, keys[k], u, v);
        }
    }
    if (strcmp(list, "intersections") == 0) { /* 999: unknown on both */
        int na = tsi_json_get(&ja.d, 0, "not_found"), nb = tsi_json_get(&jb.d, 0, "not_found");
        assert_int_equal(jcount(&ja, na), 1);
        assert_int_equal(jcount(&jb, nb), 1);
    }
    jfree(&ja);
    jfree(&jb);
}

static int history_points(int port, const char *path, double *sum, char *src, size_t len)
{
    resp r = get(port, path);
    if (r.status != 200)
        fail_msg("%s: %ld %s", path, r.status, r.body);
    source_of(&r, src, len);
    jdoc j;
    jparse(&j, &r);
    int pts = tsi_json_get(&j.d, 0, "data_points");
    *sum = 0;
    for (int p = tsi_json_first(&j.d, pts); p >= 0; p = tsi_json_next(&j.d, pts, p))
        *sum += jnum(&j, p, "safety_index");
    int n = jcount(&j, pts);
    jfree(&j);
    resp_free(&r);
    return n;
}

static void test_fallback_and_back(void **state)
{
    (void)state;
    api_srv s, sp;
    const char *args[] = {"--threads", "2", NULL};
    srv_start(&s, args, env);
    const char *pargs[] = {"--threads", "2", "--source", "parquet", NULL};
    srv_start(&sp, pargs, env);

    char src[32];
    resp r = get(s.port, "/api/v2/safety/index/");
    assert_int_equal(r.status, 200);
    source_of(&r, src, sizeof src);
    assert_string_equal(src, "postgres");
    cur pg[16], pq[16];
    int npg = read_index(&r, pg, 16);
    assert_int_equal(npg, 5);
    resp_free(&r);

    /* --source parquet answers the same current values while PostgreSQL is up */
    r = get(sp.port, "/api/v2/safety/index/");
    assert_int_equal(r.status, 200);
    source_of(&r, src, sizeof src);
    assert_string_equal(src, "parquet");
    assert_int_equal(read_index(&r, pq, 16), npg);
    for (int i = 0; i < npg; i++) {
        assert_int_equal(pq[i].id, pg[i].id);
        assert_near(pq[i].si, pg[i].si, 1e-12, "parquet index");
        assert_string_equal(pq[i].ts, pg[i].ts);
    }
    resp_free(&r);
    r = get(sp.port, "/api/v2/intersections/nearby?lat=38.87&lon=-77.27&radius=5000");
    assert_int_equal(r.status, 503);
    resp_free(&r);

    double sum_pg, sum_pq;
    const char *hist = "/api/v2/safety/history/1?days=1&aggregation=1min";
    int n_pg = history_points(s.port, hist, &sum_pg, src, sizeof src);
    assert_string_equal(src, "postgres");
    assert_true(n_pg > 0);
    const char *hist_h = "/api/v2/safety/history/2?days=2&aggregation=1hour";
    double hsum_pg;
    int nh_pg = history_points(s.port, hist_h, &hsum_pg, src, sizeof src);
    assert_true(nh_pg > 0);

    /* compare and ranking over today's minutes: PostgreSQL's (rollups and minutes) and the
     * archive's (the minutes) must agree */
    const char *cmp = "/api/v2/safety/compare?ids=1,2,3,999&days=1";
    const char *rank = "/api/v2/safety/ranking?days=1&metric=avg_si&limit=5";
    resp c_pg = get(s.port, cmp), k_pg = get(s.port, rank);
    assert_int_equal(c_pg.status, 200);
    assert_int_equal(k_pg.status, 200);
    {
        resp c_pq = get(sp.port, cmp), k_pq = get(sp.port, rank);
        same_stats(&c_pg, &c_pq, "intersections");
        same_stats(&k_pg, &k_pq, "items");
        resp_free(&c_pq);
        resp_free(&k_pq);
    }

    /* PostgreSQL goes away mid-test */
    th_private_cluster_stop(&pc);
    /* the server notices within a second (its LISTEN connection is closed) */
    for (int i = 0; i < 50; i++) {
        r = get(s.port, "/health");
        bool noticed = strstr(r.body, "\"data_source\":\"parquet\"") != NULL;
        resp_free(&r);
        if (noticed)
            break;
        usleep(100000);
    }
    r = get(s.port, "/api/v2/safety/index/");
    assert_int_equal(r.status, 200);
    source_of(&r, src, sizeof src);
    assert_string_equal(src, "parquet");
    assert_int_equal(read_index(&r, pq, 16), npg);
    for (int i = 0; i < npg; i++) {
        assert_int_equal(pq[i].id, pg[i].id);
        assert_near(pq[i].si, pg[i].si, 1e-12, "fallback index");
    }
    resp_free(&r);
    int n_pq = history_points(s.port, hist, &sum_pq, src, sizeof src);
    assert_string_equal(src, "parquet");
    assert_int_equal(n_pq, n_pg);
    assert_near(sum_pq, sum_pg, 1e-9, "fallback 1-minute series");
    /* hourly from Parquet: the hours of the 1-minute window, same averages; hours older
     * than the archive are gaps */
    double hsum_pq;
    int nh_pq = history_points(s.port, hist_h, &hsum_pq, src, sizeof src);
    assert_string_equal(src, "parquet");
    assert_true(nh_pq > 0 && nh_pq <= nh_pg);
    /* compare and ranking from the archive while PostgreSQL is down */
    {
        resp c_pq = get(s.port, cmp), k_pq = get(s.port, rank);
        source_of(&c_pq, src, sizeof src);
        assert_string_equal(src, "parquet");
        same_stats(&c_pg, &c_pq, "intersections");
        same_stats(&k_pg, &k_pq, "items");
        resp_free(&c_pq);
        resp_free(&k_pq);
    }
    resp_free(&c_pg);
    resp_free(&k_pg);
    r = get(s.port, "/api/v2/intersections/nearby?lat=38.87&lon=-77.27&radius=5000");
    assert_int_equal(r.status, 503);
    jdoc j;
    jparse(&j, &r);
    char code[64];
    jstr(&j, 0, "code", code, sizeof code);
    assert_string_equal(code, "spatial_unavailable");
    jfree(&j);
    resp_free(&r);
    /* readiness (v2) says degraded; liveness (/health, the original's) stays "ok" with the
     * state beside it */
    r = get(s.port, "/api/v2/health");
    assert_int_equal(r.status, 200);
    jparse(&j, &r);
    char st[32], ds[32];
    jstr(&j, 0, "status", st, sizeof st);
    jstr(&j, 0, "data_source", ds, sizeof ds);
    assert_string_equal(st, "degraded");
    assert_string_equal(ds, "parquet");
    jfree(&j);
    resp_free(&r);
    r = get(s.port, "/health");
    assert_int_equal(r.status, 200);
    jparse(&j, &r);
    jstr(&j, 0, "status", st, sizeof st);
    assert_string_equal(st, "ok");
    jstr(&j, 0, "state", st, sizeof st);
    assert_string_equal(st, "degraded");
    jfree(&j);
    resp_free(&r);

    /* --source postgres does not fall back */
    const char *pgargs[] = {"--threads", "2", "--source", "postgres", NULL};
    api_srv so;
    srv_start(&so, pgargs, env);
    r = get(so.port, "/api/v2/safety/index/");
    assert_int_equal(r.status, 503);
    resp_free(&r);
    r = get(so.port, "/api/v2/health");
    assert_int_equal(r.status, 503);
    resp_free(&r);
    r = get(so.port, "/health");
    assert_int_equal(r.status, 200);
    resp_free(&r);
    assert_int_equal(srv_stop_clean(&so), 0);

    /* back: the server reconnects by itself */
    th_private_cluster_start(&pc, 0);
    bool back = false;
    for (int i = 0; i < 100 && !back; i++) {
        r = get(s.port, "/api/v2/safety/index/");
        source_of(&r, src, sizeof src);
        back = r.status == 200 && strcmp(src, "postgres") == 0;
        resp_free(&r);
        if (!back)
            usleep(200000);
    }
    assert_true(back);
    n_pg = history_points(s.port, hist, &sum_pg, src, sizeof src);
    assert_string_equal(src, "postgres");
    assert_int_equal(n_pg, n_pq);
    r = get(s.port, "/api/v2/intersections/nearby?lat=38.87&lon=-77.27&radius=50000");
    assert_int_equal(r.status, 200);
    resp_free(&r);

    assert_int_equal(srv_stop_clean(&s), 0);
    assert_int_equal(srv_stop_clean(&sp), 0);
    unlink(s.log);
    unlink(sp.log);
    unlink(so.log);
}

/* A database behind a dead network path: a TCP listener that completes handshakes (the
 * kernel does, from the backlog) and never answers. DATABASE_URL points at it. The server
 * must start and answer from the archive, not hang on the connection (connect_timeout,
 * tcp_user_timeout, keepalives: --db-connect-timeout, --db-tcp-timeout-ms). curl's own
 * limit (60 s) is the hang detector here, not a speed bound. */
static void test_blackhole_database(void **state)
{
    (void)state;
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(ls >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(ls, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(ls, 64), 0); /* never accepted: every byte sent goes unanswered */
    socklen_t sl = sizeof sa;
    assert_int_equal(getsockname(ls, (struct sockaddr *)&sa, &sl), 0);
    static char url[160];
    snprintf(url, sizeof url,
             "DATABASE_URL=postgresql://tsi_reader@127.0.0.1:%d/tsi?sslmode=disable",
             ntohs(sa.sin_port));
    const char *bh_env[] = {url, e_arch, NULL};
    const char *args[] = {"--threads", "2", NULL};
    api_srv s;
    srv_start(&s, args, bh_env); /* it listens although the database never answers */
    for (int k = 0; k < 3; k++) {
        resp r = get(s.port, "/api/v2/safety/index/");
        if (r.status != 200)
            fail_msg("index through a dead database path: %ld %s", r.status, r.body);
        char src[32];
        source_of(&r, src, sizeof src);
        assert_string_equal(src, "parquet");
        cur pq[16];
        int n = read_index(&r, pq, 16);
        assert_int_equal(n, 5);
        resp_free(&r);
    }
    resp r = get(s.port, "/api/v1/safety/history/2?days=1");
    if (r.status != 200)
        fail_msg("v1 history through a dead database path: %ld %s", r.status, r.body);
    assert_non_null(strstr(r.body, "\"intersection_name\""));
    resp_free(&r);
    r = get(s.port, "/api/v2/health");
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"reachable\":false"));
    resp_free(&r);
    assert_int_equal(srv_stop_clean(&s), 0);
    close(ls);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fallback_and_back),
        cmocka_unit_test(test_blackhole_database),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
