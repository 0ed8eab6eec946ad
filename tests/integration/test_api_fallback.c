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
#include <pthread.h>
#include <stdatomic.h>
#include <cmocka.h>

#include "cluster_helper.h"
#include "duck_util.h"
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
    /* two intersections 158 m apart across the antimeridian (no traffic): spatial answers
     * from the cache must find both, as PostGIS does */
    const char *ins[] = {"db",
                         "psql",
                         "--",
                         "-X",
                         "-q",
                         "-v",
                         "ON_ERROR_STOP=1",
                         "-c",
                         "INSERT INTO intersections (id, name, latitude, longitude) VALUES"
                         " (9001, 'AM east', 0.0005, 179.9993), (9002, 'AM west', 0.0005,"
                         " -179.9993)",
                         NULL};
    char out[4096];
    if (th_run_tsi(ins, env, out, sizeof out) != 0)
        fail_msg("insert: %s", out);
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

/* Spatial queries over the seeded intersections (a cluster near 38.87, -77.27, the nearest
 * one 40 m from the point, none within 5 m of a limit): a radius, a route with a buffer, a
 * polygon, GeoJSON, and a radius across the antimeridian */
#define NSPATIAL 6
static const char *const spatial_q[NSPATIAL] = {
    "/api/v2/intersections/nearby?lat=38.87&lon=-77.27&radius=1000",
    "/api/v2/intersections/nearby?lat=38.87&lon=-77.27&radius=5000&format=geojson",
    "/api/v2/intersections/route?waypoints=%5B%7B%22lat%22%3A38.86%2C%22lon%22%3A-77.28%7D%2C"
    "%7B%22lat%22%3A38.89%2C%22lon%22%3A-77.25%7D%5D&buffer=300",
    "/api/v2/intersections/area?polygon=%5B%7B%22lat%22%3A38.865%2C%22lon%22%3A-77.28%7D%2C"
    "%7B%22lat%22%3A38.865%2C%22lon%22%3A-77.26%7D%2C%7B%22lat%22%3A38.875%2C%22lon%22%3A-77.26%7D"
    "%2C%7B%22lat%22%3A38.875%2C%22lon%22%3A-77.28%7D%5D",
    "/api/v1/intersections/nearby?lat=38.87&lon=-77.27&radius=800&risk_level=low",
    "/api/v2/intersections/nearby?lat=0&lon=179.9998&radius=300",
};

/* the hits of a spatial answer (a JSON array, or a GeoJSON FeatureCollection's features) */
static int spatial_hits(jdoc *j, int *arr, bool *geo)
{
    *geo = tsi_json_is_object(&j->d, 0);
    *arr = *geo ? tsi_json_get(&j->d, 0, "features") : 0;
    return jcount(j, *arr);
}

/* the archive's spatial answer equals PostGIS's: the same intersections in the same order,
 * the same current indices, distances within 0.5 % (a sphere against the WGS84 spheroid) */
static void same_spatial(const resp *a, const resp *b, const char *what)
{
    if (b->status != 200)
        fail_msg("%s: %ld %s", what, b->status, b->body);
    jdoc ja, jb;
    jparse(&ja, a);
    jparse(&jb, b);
    int la, lb;
    bool ga, gb;
    int n = spatial_hits(&ja, &la, &ga);
    assert_int_equal(spatial_hits(&jb, &lb, &gb), n);
    assert_int_equal(ga, gb);
    assert_true(n >= 1);
    for (int i = 0; i < n; i++) {
        int x = jat(&ja, la, i), y = jat(&jb, lb, i);
        if (ga) {
            x = tsi_json_get(&ja.d, x, "properties");
            y = tsi_json_get(&jb.d, y, "properties");
        }
        long long ia = (long long)jnum(&ja, x, "intersection_id");
        if (ia != (long long)jnum(&jb, y, "intersection_id"))
            fail_msg("%s: hit %d is %lld from PostGIS, %lld from the archive", what, i, ia,
                     (long long)jnum(&jb, y, "intersection_id"));
        double sa = jnum(&ja, x, "safety_index"), sb = jnum(&jb, y, "safety_index");
        if (isnan(sa) != isnan(sb) || (!isnan(sa) && fabs(sa - sb) > 1e-12))
            fail_msg("%s: intersection %lld index %g (PostGIS) and %g (archive)", what, ia, sa, sb);
        if (tsi_json_get(&ja.d, x, "distance_m") >= 0) {
            double da = jnum(&ja, x, "distance_m"), db = jnum(&jb, y, "distance_m");
            if (!(fabs(da - db) <= 0.005 * da + 1))
                fail_msg("%s: intersection %lld at %.3f m (PostGIS), %.3f m (archive)", what, ia,
                         da, db);
        }
    }
    jfree(&ja);
    jfree(&jb);
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
    /* spatial answers from the archive and the cache equal PostGIS's */
    resp sp_pg[NSPATIAL];
    for (int k = 0; k < NSPATIAL; k++) {
        sp_pg[k] = get(s.port, spatial_q[k]);
        assert_int_equal(sp_pg[k].status, 200);
        if (k == NSPATIAL - 1) /* 9001/9002 are in PostgreSQL only (no collector wrote the */
            continue;          /* archive's intersections file): the auto server knows them */
        resp q = get(sp.port, spatial_q[k]);
        same_spatial(&sp_pg[k], &q, spatial_q[k]);
        resp_free(&q);
    }

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
    for (int k = 0; k < NSPATIAL; k++) { /* and while PostgreSQL is down */
        resp q = get(s.port, spatial_q[k]);
        source_of(&q, src, sizeof src);
        assert_string_equal(src, "parquet");
        same_spatial(&sp_pg[k], &q, spatial_q[k]);
        resp_free(&q);
        resp_free(&sp_pg[k]);
    }
    jdoc j;
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
    /* every read endpoint of both versions answers from the archive, with names (and,
     * where an answer carries them, positions) from the archive's intersections file */
    static const char *const reads[] = {
        "/api/v1/safety/index/",
        "/api/v1/safety/index/2",
        "/api/v1/safety/history/2?days=1",
        "/api/v1/safety/history/2/stats?days=1",
        "/api/v1/safety/history/?days=1",
        "/api/v1/safety/compare?ids=1,2&days=1",
        "/api/v1/safety/ranking?days=1",
        "/api/v1/intersections/nearby?lat=38.87&lon=-77.27&radius=2000",
        "/api/v1/intersections/2",
        "/api/v2/safety/index/",
        "/api/v2/safety/index/2",
        "/api/v2/safety/history/2?days=2&aggregation=1hour",
        "/api/v2/safety/history/2/stats",
        "/api/v2/safety/history/?days=1",
        "/api/v2/safety/compare?ids=1,2&days=1",
        "/api/v2/safety/ranking?days=1",
        "/api/v2/intersections/route?waypoints=%5B%7B%22lat%22%3A38.86%2C%22lon%22%3A-77.28%7D"
        "%2C%7B%22lat%22%3A38.89%2C%22lon%22%3A-77.25%7D%5D",
        "/api/v2/intersections/2"};
    for (size_t k = 0; k < sizeof reads / sizeof reads[0]; k++) {
        resp r = get(s.port, reads[k]);
        if (r.status != 200)
            fail_msg("%s through a dead database path: %ld %s", reads[k], r.status, r.body);
        char src[32];
        source_of(&r, src, sizeof src);
        if (strcmp(src, "parquet") != 0)
            fail_msg("%s: X-Data-Source %s", reads[k], src);
        if (!strstr(r.body, "\"intersection_name\"") && !strstr(r.body, "\"name\""))
            fail_msg("%s: no names: %.300s", reads[k], r.body);
        if (strstr(r.body, "\"Intersection 2\"")) /* the placeholder: the file was not read */
            fail_msg("%s: no real name: %.300s", reads[k], r.body);
        resp_free(&r);
    }
    resp r;
    r = get(s.port, "/api/v2/health");
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"reachable\":false"));
    resp_free(&r);
    assert_int_equal(srv_stop_clean(&s), 0);
    close(ls);
}

/* Today's day directory of the archive holds, besides tsi seed's file, a conflicts audit
 * file with the key of one minute (no index columns) and a newer indices file with
 * another value for that minute (a second generation). The archive path must read the
 * index rows files only and let the newest win: the minute's value from the server equals
 * an independent DuckDB query over the index rows files of the live generation (what the
 * test wrote last), never the conflicts file's nulls. */
static void test_archive_files_and_generations(void **state)
{
    (void)state;
    char dir[PATH_MAX + 64], sql[4 * PATH_MAX];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    snprintf(dir, sizeof dir, "%s/archive/indices/%04d/%02d/%02d", pc.home, tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday);
    duckdb_database db;
    duckdb_connection con;
    assert_int_equal(duckdb_open(NULL, &db), DuckDBSuccess);
    assert_int_equal(duckdb_connect(db, &con), DuckDBSuccess);
    duckdb_result res;
    snprintf(sql, sizeof sql,
             "SELECT intersection_id, epoch(\"timestamp\")::BIGINT FROM "
             "read_parquet('%s/seed_*.parquet')"
             " WHERE intersection_id = 2 ORDER BY \"timestamp\" DESC LIMIT 1",
             dir);
    duck_query(con, sql, &res);
    assert_int_equal((int)duckdb_row_count(&res), 1);
    long long ts = duckdb_value_int64(&res, 1, 0);
    duckdb_destroy_result(&res);
    snprintf(sql, sizeof sql,
             "COPY (SELECT 2::BIGINT AS intersection_id, to_timestamp(%lld) AS \"timestamp\","
             " 'leading' AS conflict_kind) TO '%s/conflicts_20990101T000000Z_0.parquet'"
             " (FORMAT parquet)",
             ts, dir);
    duck_query(con, sql, NULL);
    snprintf(
        sql, sizeof sql,
        "COPY (SELECT * REPLACE (42.5 AS combined_index_eb) FROM read_parquet('%s/seed_*.parquet')"
        " WHERE intersection_id = 2 AND epoch(\"timestamp\")::BIGINT = %lld)"
        " TO '%s/indices_20990101T000000Z_0.parquet' (FORMAT parquet)",
        dir, ts, dir);
    duck_query(con, sql, NULL);
    /* the independent answer: the index rows files (not conflicts_*), the newest first */
    snprintf(sql, sizeof sql,
             "SELECT coalesce(combined_index_eb, combined_index) FROM read_parquet(["
             "'%s/indices_20990101T000000Z_0.parquet'], union_by_name = true)"
             " WHERE intersection_id = 2 AND epoch(\"timestamp\")::BIGINT = %lld",
             dir, ts);
    duck_query(con, sql, &res);
    double want = duckdb_value_double(&res, 0, 0);
    duckdb_destroy_result(&res);
    assert_true(want == 42.5);
    const char *pargs[] = {"--threads", "2", "--source", "parquet", NULL};
    api_srv sp;
    srv_start(&sp, pargs, env);
    char path[256];
    snprintf(path, sizeof path, "/api/v2/safety/history/2?days=1&aggregation=1min");
    resp r = get(sp.port, path);
    assert_int_equal(r.status, 200);
    jdoc j;
    jparse(&j, &r);
    int pts = tsi_json_get(&j.d, 0, "data_points");
    char want_ts[32];
    struct tm wt;
    time_t tt = (time_t)ts;
    gmtime_r(&tt, &wt);
    strftime(want_ts, sizeof want_ts, "%Y-%m-%dT%H:%M:%SZ", &wt);
    bool seen = false;
    for (int p = tsi_json_first(&j.d, pts); p >= 0; p = tsi_json_next(&j.d, pts, p)) {
        char t[32];
        jstr(&j, p, "timestamp", t, sizeof t);
        if (strcmp(t, want_ts) == 0) {
            seen = true;
            double got = jnum(&j, p, "safety_index");
            if (got != want)
                fail_msg("minute %s: %.17g from the server, %.17g from the live generation",
                         want_ts, got, want);
        }
    }
    assert_true(seen);
    jfree(&j);
    resp_free(&r);
    assert_int_equal(srv_stop_clean(&sp), 0);
    snprintf(sql, sizeof sql,
             "rm -f %s/conflicts_20990101T000000Z_0.parquet %s/indices_20990101T000000Z_0.parquet",
             dir, dir);
    assert_int_equal(system(sql), 0);
    duckdb_disconnect(&con);
    duckdb_close(&db);
}

/* PostgreSQL killed under 50 clients: every answer before, during and after is a 200 (from
 * PostgreSQL, then the archive, then PostgreSQL again): no 5xx, none lost; the last ones
 * come from PostgreSQL. Each client makes at most 400 requests; the load stops when the
 * drill does. */
#define LOAD_CLIENTS 50
typedef struct {
    pthread_t t;
    int port;
    int ok, bad, from_pq, last_pg;
    char why[200];
} load_client;
static atomic_int load_stop;

static void *load_run(void *arg)
{
    load_client *cl = arg;
    static const char *const paths[] = {
        "/api/v2/safety/index/", "/api/v1/safety/history/2?days=1",
        "/api/v2/safety/compare?ids=1,2&days=1",
        "/api/v2/intersections/nearby?lat=38.87&lon=-77.27&radius=1000"};
    CURL *c = curl_easy_init();
    for (int i = 0; i < 400 && !atomic_load(&load_stop); i++) {
        resp r;
        const char *p = paths[i % 4];
        CURLcode rc = http_req(c, cl->port, "GET", p, NULL, false, &r);
        char src[32] = "";
        resp_header(&r, "X-Data-Source", src, sizeof src);
        if (rc == CURLE_OK && r.status == 200) {
            cl->ok++;
            cl->from_pq += strcmp(src, "parquet") == 0;
            cl->last_pg = strcmp(src, "postgres") == 0;
        } else {
            cl->bad++;
            snprintf(cl->why, sizeof cl->why, "%s: curl %d status %ld %.80s", p, (int)rc, r.status,
                     r.body ? r.body : "");
        }
        resp_free(&r);
    }
    curl_easy_cleanup(c);
    return NULL;
}

static void test_kill_under_load(void **state)
{
    (void)state;
    const char *args[] = {"--threads", "8", NULL};
    api_srv s;
    srv_start(&s, args, env);
    static load_client cl[LOAD_CLIENTS];
    atomic_store(&load_stop, 0);
    for (int i = 0; i < LOAD_CLIENTS; i++) {
        memset(&cl[i], 0, sizeof cl[i]);
        cl[i].port = s.port;
        assert_int_equal(pthread_create(&cl[i].t, NULL, load_run, &cl[i]), 0);
    }
    usleep(500000);
    th_private_cluster_stop(&pc); /* under load */
    usleep(2000000);
    th_private_cluster_start(&pc, 0);
    /* back on PostgreSQL (the monitor probes every 0.5 s) */
    bool back = false;
    for (int i = 0; i < 100 && !back; i++) {
        resp r = get(s.port, "/api/v2/safety/index/");
        char src[32] = "";
        resp_header(&r, "X-Data-Source", src, sizeof src);
        back = r.status == 200 && strcmp(src, "postgres") == 0;
        resp_free(&r);
        if (!back)
            usleep(100000);
    }
    assert_true(back);
    usleep(1000000);
    atomic_store(&load_stop, 1);
    int ok = 0, bad = 0, pq = 0, last_pg = 0;
    const char *why = NULL;
    for (int i = 0; i < LOAD_CLIENTS; i++) {
        pthread_join(cl[i].t, NULL);
        ok += cl[i].ok;
        bad += cl[i].bad;
        pq += cl[i].from_pq;
        last_pg += cl[i].last_pg;
        if (cl[i].bad && !why)
            why = cl[i].why;
    }
    fprintf(stderr, "kill under load: %d clients, %d answers 200 (%d from the archive), %d not\n",
            LOAD_CLIENTS, ok, pq, bad);
    if (bad)
        fail_msg("%d requests were not answered 200 while PostgreSQL died and came back: %s", bad,
                 why);
    assert_true(pq > 0);                      /* the outage was answered from the archive */
    assert_true(last_pg >= LOAD_CLIENTS / 2); /* and most clients ended on PostgreSQL */
    assert_int_equal(srv_stop_clean(&s), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fallback_and_back),
        cmocka_unit_test(test_blackhole_database),
        cmocka_unit_test(test_archive_files_and_generations),
        cmocka_unit_test(test_kill_under_load),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
