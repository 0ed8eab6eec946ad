/* tests/harness/collect_util.c — see collect_util.h */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "collect_util.h"

char work[PATH_MAX];
int sim_port;
th_proc sim;
int speed(void)
{
    const char *s = getenv("TSI_E2E_SPEED");
    return s ? atoi(s) : 4;
}

int minutes(void)
{
    const char *s = getenv("TSI_E2E_MINUTES"); /* TSI_E2E_MINUTES=30: the full run */
    return s ? atoi(s) : 3;
}

void start_sim(const char *const *extra)
{
    sim_port = th_free_port();
    char port[16], sp[16], url[128];
    snprintf(port, sizeof port, "%d", sim_port);
    snprintf(sp, sizeof sp, "%d", speed());
    const char *args[32] = {"sim", "--port",   port, "--speed", sp, "--intersections",
                            "10",  "--warmup", "120"};
    int n = 9;
    for (int i = 0; extra && extra[i] && n < 30; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    th_proc_start(&sim, args, NULL);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/healthz", sim_port);
    if (th_wait_http(&sim, url, 30000) != 200)
        fail_msg("the simulator did not answer");
}

int64_t collect_sim_now(void)
{
    char url[128], *body = NULL;
    snprintf(url, sizeof url, "http://127.0.0.1:%d/sim/status", sim_port);
    if (th_http("GET", url, NULL, NULL, &body, NULL) != 200)
        fail_msg("sim status failed");
    tsi_json d;
    tsi_error e = {0};
    int64_t now = 0;
    if (tsi_json_parse_alloc(&d, body, strlen(body), 1000, &e) < 0 ||
        tsi_json_int64(&d, tsi_json_get(&d, 0, "now"), &now) < 0)
        fail_msg("bad sim status: %s", body);
    tsi_json_free(&d);
    free(body);
    return now;
}

void wait_sim_until(int64_t t_ms)
{
    for (int i = 0; i < 6000 && collect_sim_now() < t_ms; i++)
        usleep(200000);
}

void start_collect(th_proc *p, const char *const *extra_env)
{
    char url[128], arch[PATH_MAX + 32], spool[PATH_MAX + 32];
    snprintf(url, sizeof url, "VCC_BASE_URL=http://127.0.0.1:%d", sim_port);
    snprintf(arch, sizeof arch, "TSI_ARCHIVE_DIR=%s/archive", work);
    snprintf(spool, sizeof spool, "TSI_SPOOL_DIR=%s/spool", work);
    /* the simulator runs faster than the wall clock: no clock sanity against it (a test
     * that wants it passes TSI_MAX_SKEW_SECONDS in extra_env, which comes later and wins) */
    const char *env[16] = {url,
                           arch,
                           spool,
                           "VCC_CLIENT_ID=tsi-sim",
                           "VCC_CLIENT_SECRET=tsi-sim-secret",
                           "TSI_MAX_SKEW_SECONDS=0"};
    int n = 6;
    for (int i = 0; extra_env && extra_env[i] && n < 15; i++)
        env[n++] = extra_env[i];
    env[n] = NULL;
    const char *args[] = {"collect", "--grace-seconds",
                          "60",      "--flush-seconds",
                          "5",       "--status-seconds",
                          "5",       "--spat-seconds",
                          "5",       NULL};
    th_proc_start(p, args, env);
}

size_t get_truth(int64_t from, int64_t to, truth *out, size_t cap)
{
    char url[256], *body = NULL;
    snprintf(url, sizeof url, "http://127.0.0.1:%d/sim/truth?from=%lld&to=%lld", sim_port,
             (long long)from, (long long)to);
    if (th_http("GET", url, NULL, NULL, &body, NULL) != 200)
        fail_msg("sim truth failed: %s", body ? body : "");
    tsi_json d;
    tsi_error e = {0};
    if (tsi_json_parse_alloc(&d, body, strlen(body), 1 << 22, &e) < 0)
        fail_msg("bad truth JSON");
    size_t n = 0;
    int ms = tsi_json_get(&d, 0, "minutes");
    for (int i = tsi_json_first(&d, ms); i >= 0 && n < cap; i = tsi_json_next(&d, ms, i)) {
        truth *t = &out[n++];
        int64_t v;
        bool b = false;
        tsi_json_int64(&d, tsi_json_get(&d, i, "intersection_id"), &t->isect);
        tsi_json_int64(&d, tsi_json_get(&d, i, "minute"), &t->minute);
        tsi_json_bool(&d, tsi_json_get(&d, i, "complete"), &b);
        t->complete = b;
#define GETI(k, f)                                                                                 \
    v = 0;                                                                                         \
    tsi_json_int64(&d, tsi_json_get(&d, i, k), &v);                                                \
    t->f = (int)v
        GETI("vehicles", vehicles);
        GETI("vrus", vrus);
        GETI("vehicle_conflicts", vconf);
        GETI("vru_conflicts", pconf);
        GETI("bsm_messages", bsm);
        GETI("psm_messages", psm);
        GETI("duplicates", dup);
        GETI("malformed", malformed);
#undef GETI
    }
    tsi_json_free(&d);
    free(body);
    return n;
}

int truth_minute_check(PGconn *c, const truth *t)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT count(*) || ' ' || coalesce(max(traffic_volume), -1) || ' ' || "
             "coalesce(max(vru_count), -1) FROM safety_indices_realtime WHERE intersection_id = "
             "%lld AND \"timestamp\" = to_timestamp(%lld / 1000.0)",
             (long long)t->isect, (long long)t->minute);
    char *v = th_value(c, sql);
    int n = 0, vol = 0, vru = 0;
    sscanf(v, "%d %d %d", &n, &vol, &vru);
    free(v);
    if (t->vehicles + t->vrus == 0) {
        assert_int_equal(n, 0);
        return -1;
    }
    if (n == 1 && vol == t->vehicles && vru == t->vrus)
        return 0;
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM data_quality_log WHERE issue_type = 'late_message' AND "
             "intersection_id = %lld AND \"timestamp\" = to_timestamp(%lld / 1000.0)",
             (long long)t->isect, (long long)t->minute);
    if (n != 1 || vol > t->vehicles || vru > t->vrus || th_int(c, sql) == 0)
        fail_msg("intersection %lld minute %lld: rows=%d volume=%d/%d vru=%d/%d",
                 (long long)t->isect, (long long)t->minute, n, vol, t->vehicles, vru, t->vrus);
    return 1;
}

void duck_open_query(duck_q *d, const char *sql_fmt)
{
    assert_int_equal(duckdb_open(NULL, &d->db), DuckDBSuccess);
    assert_int_equal(duckdb_connect(d->db, &d->con), DuckDBSuccess);
    tsi_buf root = TSI_BUF_INIT, q = TSI_BUF_INIT;
    char r[PATH_MAX + 16];
    snprintf(r, sizeof r, "%s/archive", work);
    tsi_sql_quote(&root, r);
    tsi_buf_printf(&q, sql_fmt, tsi_buf_cstr(&root), tsi_buf_cstr(&root), tsi_buf_cstr(&root));
    if (duckdb_query(d->con, tsi_buf_cstr(&q), &d->res) == DuckDBError)
        fail_msg("duckdb: %s\n%s", duckdb_result_error(&d->res), tsi_buf_cstr(&q));
    tsi_buf_free(&root);
    tsi_buf_free(&q);
}

void duck_close_query(duck_q *d)
{
    duckdb_destroy_result(&d->res);
    duckdb_disconnect(&d->con);
    duckdb_close(&d->db);
}

long long duck_int(const char *sql_fmt)
{
    duck_q d;
    duck_open_query(&d, sql_fmt);
    long long v = duckdb_value_int64(&d.res, 0, 0);
    duck_close_query(&d);
    return v;
}

char *duck_str(const char *sql_fmt)
{
    duck_q d;
    duck_open_query(&d, sql_fmt);
    char *v = duckdb_value_varchar(&d.res, 0, 0);
    char *copy = strdup(v ? v : "");
    duckdb_free(v);
    duck_close_query(&d);
    return copy;
}

void check_db_equals_parquet(PGconn *c)
{
    long long db_n = th_int(c, "SELECT count(*) FROM safety_indices_realtime");
    long long db_vol = th_int(c, "SELECT coalesce(sum(traffic_volume), 0) FROM "
                                 "safety_indices_realtime");
    long long db_ci = th_int(c, "SELECT coalesce(sum(round(combined_index * 1000000)), 0)::bigint "
                                "FROM safety_indices_realtime");
    long long db_key = th_int(c, "SELECT coalesce(sum(intersection_id * 7 + extract(epoch FROM "
                                 "\"timestamp\")::bigint / 60), 0)::bigint FROM "
                                 "safety_indices_realtime");
    /* the last version of each (intersection, minute) in the Parquet files */
    const char *pq = "SELECT %s FROM (SELECT DISTINCT ON (intersection_id, \"timestamp\") * "
                     "FROM read_parquet(%%s || '/indices/*/*/*/indices_*.parquet', "
                     "filename = true) ORDER BY intersection_id, \"timestamp\", filename DESC)";
    char q[1024];
    snprintf(q, sizeof q, pq, "count(*)");
    assert_int_equal(duck_int(q), db_n);
    snprintf(q, sizeof q, pq, "coalesce(sum(traffic_volume), 0)");
    assert_int_equal(duck_int(q), db_vol);
    snprintf(q, sizeof q, pq, "coalesce(sum(round(combined_index * 1000000)), 0)::BIGINT");
    assert_int_equal(duck_int(q), db_ci);
    snprintf(q, sizeof q, pq,
             "coalesce(sum(intersection_id * 7 + epoch(\"timestamp\")::BIGINT // 60), 0)");
    assert_int_equal(duck_int(q), db_key);
}

void stop_collect(th_proc *p)
{
    if (th_proc_alive(p))
        kill(p->pid, SIGTERM);
    for (int i = 0; i < 1200 && th_proc_alive(p); i++)
        usleep(100000);
    char *log = th_proc_log(p);
    int rc = th_proc_stop(p);
    if (rc != 0) {
        fprintf(stderr, "---- collector log ----\n%s\n----\n", log ? log : "");
        free(log);
        fail_msg("collector exit %d (log above)", rc);
    }
    free(log);
}
