/* Fault drills (issue 17) while the simulator, the collector and the API run together on a
 * private cluster, with an accelerated simulated clock:
 *   (a) PostgreSQL restarted: /metrics shows tsi_db_up 0 then 1, the API answers from the
 *       indices Parquet during (X-Data-Source: parquet) and from PostgreSQL after;
 *   (e) PostgreSQL gone for 5 simulated minutes: the API answers from the Parquet all
 *       along and switches back after; the collector's spool grows and drains, and
 *       /metrics shows it (spool depth > 0 and the DB-error counter rising during, spool
 *       depth 0 after); every intersection-minute of the outage is in PostgreSQL exactly
 *       as in the indices Parquet, and agrees with the simulator's truth;
 *   (b) the simulator unreachable for 2 simulated minutes, then back on the same port
 *       with the clock continued (--start): the collector reconnects by itself, its
 *       reconnect counter rose in /metrics, rows resume;
 *   (c) the archive directory unwritable for a while (a file put in its place: works for
 *       root, which ignores permissions), then restored: /metrics shows archive errors,
 *       the raw flush is retried and no raw message is lost (every vehicle of the
 *       simulator's truth is in the raw archive for those minutes);
 *   (d) 200 concurrent API clients: every request answered 200.
 * At the end the database holds exactly the rows of the indices Parquet (none missing,
 * none twice).
 * TSI_DRILL_REALTIME=1 (bench/drill_pg_outage.sh, outside the suite): drill (e) only, at
 * simulator speed 1, so PostgreSQL is gone for 5 wall-clock minutes (~10 min in all). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/proc.h"
#include "cluster_helper.h"
#include "collect_util.h"
#include "test_api_util.h"

static th_cluster pc; /* this test's own cluster: the drills stop it */
static api_srv api;
static th_proc col;

static bool realtime_mode(void)
{
    const char *v = getenv("TSI_DRILL_REALTIME");
    return v && strcmp(v, "1") == 0;
}

/* the value of an unlabelled gauge in the API's /metrics; -1 when absent */
static double metric(const char *name)
{
    resp r = get(api.port, "/metrics");
    assert_int_equal(r.status, 200);
    double v = -1;
    size_t nl = strlen(name);
    for (const char *p = r.body; p && *p;) {
        if (strncmp(p, name, nl) == 0 && p[nl] == ' ') {
            v = atof(p + nl + 1);
            break;
        }
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    resp_free(&r);
    return v;
}

/* waits (wall time, up to timeout_s) until metric name equals want */
static bool wait_metric(const char *name, double want, int timeout_s)
{
    for (int i = 0; i < timeout_s * 5; i++) {
        if (metric(name) == want)
            return true;
        usleep(200000);
    }
    return false;
}

/* X-Data-Source of GET path */
static void source_of(const char *path, char *src, size_t len)
{
    resp r = get(api.port, path);
    assert_int_equal(r.status, 200);
    if (!resp_header(&r, "X-Data-Source", src, len))
        fail_msg("no X-Data-Source on %s", path);
    resp_free(&r);
}

static long long db_minutes(PGconn *c, int64_t from, int64_t to)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT count(DISTINCT \"timestamp\") FROM safety_indices_realtime WHERE "
             "\"timestamp\" >= to_timestamp(%lld / 1000.0) AND \"timestamp\" < "
             "to_timestamp(%lld / 1000.0)",
             (long long)from, (long long)to);
    return th_int(c, sql);
}

/* ---- (d) 200 clients ---------------------------------------------------------------- */
#define NCLIENTS 200
typedef struct client {
    pthread_t t;
    int ok, bad;
    char why[160];
} client;

static volatile int go;

static void *client_run(void *arg)
{
    client *cl = arg;
    CURL *c = curl_easy_init();
    while (!go)
        usleep(1000);
    const char *paths[] = {"/api/v2/safety/index/", "/health",
                           "/api/v2/intersections/nearby?lat=38.87&lon=-77.27&radius=5000"};
    for (int i = 0; i < 3; i++) {
        resp r;
        CURLcode rc = http_req(c, api.port, "GET", paths[i], NULL, false, &r);
        if (rc == CURLE_OK && r.status == 200)
            cl->ok++;
        else {
            cl->bad++;
            snprintf(cl->why, sizeof cl->why, "%s: curl %d status %ld", paths[i], (int)rc,
                     r.status);
        }
        resp_free(&r);
    }
    curl_easy_cleanup(c);
    return NULL;
}

/* sim, collect and serve on the private cluster; returns once rows reach PostgreSQL */
static void start_all(void)
{
    th_private_cluster_start(&pc, 1);
    const char *simx[] = {"--seed", "7", NULL};
    start_sim(simx);
    int64_t t0 = collect_sim_now();
    start_collect(&col, NULL);
    static char arch_env[PATH_MAX + 32];
    snprintf(arch_env, sizeof arch_env, "TSI_ARCHIVE_DIR=%s/archive", work);
    const char *senv[] = {arch_env, NULL};
    const char *sargs[] = {"--threads", "4", NULL};
    srv_start(&api, sargs, senv);
    int64_t first = (t0 / 60000 + 2) * 60000;
    wait_sim_until(first + 20000);
    /* the first rows reach PostgreSQL (the minute closes, then the 60 s grace) */
    PGconn *c = th_connect("tsi_reader");
    long long before = 0;
    for (int i = 0; i < 600 && before == 0; i++) {
        before = th_int(c, "SELECT count(*) FROM safety_indices_realtime");
        if (!before)
            usleep(200000);
    }
    PQfinish(c);
    assert_true(before > 0);
    assert_true(wait_metric("tsi_db_up", 1, 30));
    char src[32];
    source_of("/api/v2/safety/index/", src, sizeof src);
    assert_string_equal(src, "postgres");
}

/* waits (wall time, up to 30 s) until the API answers from PostgreSQL again */
static bool wait_source_postgres(void)
{
    char src[32];
    for (int i = 0; i < 150; i++) {
        source_of("/api/v2/safety/index/", src, sizeof src);
        if (strcmp(src, "postgres") == 0)
            return true;
        usleep(200000);
    }
    return false;
}

/* (a) PostgreSQL restarted: stopped, seen down, started again at once */
static void drill_restart(int64_t *down, int64_t *up)
{
    th_private_cluster_stop(&pc);
    *down = collect_sim_now();
    assert_true(wait_metric("tsi_db_up", 0, 30));
    char src[32];
    source_of("/api/v2/safety/index/", src, sizeof src);
    assert_string_equal(src, "parquet");
    th_private_cluster_start(&pc, 0);
    *up = collect_sim_now();
    assert_true(wait_metric("tsi_db_up", 1, 60));
    assert_true(wait_source_postgres());
    fprintf(stderr, "drill a: db down %lld..%lld (simulated ms)\n", (long long)*down,
            (long long)*up);
}

/* (e) PostgreSQL gone for 5 simulated minutes (5 wall-clock minutes at speed 1) */
static void drill_pg_gone(int64_t *gone, int64_t *back)
{
    /* a spool left by drill (a) drains first, so that its growth below is this outage's */
    assert_true(wait_metric("tsi_collector_spool_depth", 0, 120));
    double err0 = metric("tsi_collector_db_errors");
    double rep0 = metric("tsi_collector_spool_replayed");
    double api_err0 = metric("tsi_db_errors_total");
    assert_true(err0 >= 0 && rep0 >= 0 && api_err0 >= 0);
    th_private_cluster_stop(&pc);
    *gone = collect_sim_now();
    assert_true(wait_metric("tsi_db_up", 0, 30));
    /* meanwhile: every answer from the Parquet; the spool and the error counter grow */
    double max_depth = 0, max_err = err0;
    int polls = 0, from_parquet = 0;
    char src[32];
    while (collect_sim_now() < *gone + 5 * 60000) {
        source_of("/api/v2/safety/index/", src, sizeof src);
        polls++;
        from_parquet += strcmp(src, "parquet") == 0;
        double d = metric("tsi_collector_spool_depth"), e = metric("tsi_collector_db_errors");
        max_depth = d > max_depth ? d : max_depth;
        max_err = e > max_err ? e : max_err;
        usleep(500000);
    }
    th_private_cluster_start(&pc, 0);
    *back = collect_sim_now();
    fprintf(stderr,
            "drill e: db gone %lld..%lld (simulated ms): %d API answers, %d from parquet; "
            "spool depth max %.0f, collector db_errors %.0f -> %.0f\n",
            (long long)*gone, (long long)*back, polls, from_parquet, max_depth, err0, max_err);
    assert_true(polls >= 10);
    assert_int_equal(from_parquet, polls);
    assert_true(max_depth > 0);
    assert_true(max_err > err0);
    /* after: PostgreSQL again, the spool replayed to empty, the collector connected */
    assert_true(wait_metric("tsi_db_up", 1, 60));
    assert_true(wait_source_postgres());
    assert_true(wait_metric("tsi_collector_spool_depth", 0, 180));
    double rep1 = metric("tsi_collector_spool_replayed");
    assert_true(wait_metric("tsi_collector_db_connected", 1, 30));
    fprintf(stderr, "drill e: spool drained, replayed %.0f -> %.0f, API db errors %.0f -> %.0f\n",
            rep0, rep1, api_err0, metric("tsi_db_errors_total"));
    assert_true(rep1 - rep0 >= max_depth);
}

/* (e) nothing lost: every intersection-minute around the outage is in PostgreSQL exactly
 * as in the indices Parquet (last version of each), and agrees with the simulator's truth */
static void check_pg_gone_minutes(PGconn *c, int64_t gone, int64_t back)
{
    int64_t from = (gone / 60000 - 1) * 60000, to = (back / 60000 + 1) * 60000;
    /* the last minute's rows (closed, grace, then a flush 5 wall seconds apart) are in */
    for (int i = 0; i < 300 && db_minutes(c, to - 60000, to) == 0; i++)
        usleep(200000);
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT coalesce(string_agg(concat_ws(':', intersection_id, extract(epoch FROM "
             "\"timestamp\")::bigint / 60, traffic_volume, vru_count, round(combined_index * "
             "1000000)::bigint), ' ' ORDER BY intersection_id, \"timestamp\"), '') FROM "
             "safety_indices_realtime WHERE \"timestamp\" >= to_timestamp(%lld / 1000.0) AND "
             "\"timestamp\" < to_timestamp(%lld / 1000.0)",
             (long long)from, (long long)to);
    char *db = th_value(c, sql);
    snprintf(sql, sizeof sql,
             "SELECT coalesce(string_agg(concat_ws(':', intersection_id, epoch(\"timestamp\")::"
             "BIGINT // 60, traffic_volume, vru_count, round(combined_index * 1000000)::BIGINT), "
             "' ' ORDER BY intersection_id, \"timestamp\"), '') FROM (SELECT DISTINCT ON "
             "(intersection_id, \"timestamp\") * FROM read_parquet(%%s || "
             "'/indices/*/*/*/indices_*.parquet', filename = true) ORDER BY intersection_id, "
             "\"timestamp\", filename DESC) WHERE epoch_ms(\"timestamp\") >= %lld AND "
             "epoch_ms(\"timestamp\") < %lld",
             (long long)from, (long long)to);
    char *pq = duck_str(sql);
    if (strcmp(db ? db : "", pq) != 0)
        fail_msg("minutes %lld..%lld differ:\n database %s\n parquet  %s", (long long)from,
                 (long long)to, db ? db : "", pq);
    free(db);
    free(pq);
    /* against the truth, as test_collect: one row per intersection-minute with traffic,
     * its volume and VRUs equal to the truth, or (rarely, bounded) short by late messages
     * the collector itself logged */
    static truth tr[4096];
    size_t nt = get_truth(from, to, tr, 4096);
    int with_traffic = 0, short_minutes = 0;
    for (size_t i = 0; i < nt; i++) {
        if (!tr[i].complete || tr[i].minute < from || tr[i].minute >= to)
            continue;
        int k = truth_minute_check(c, &tr[i]);
        with_traffic += k >= 0;
        if (k == 1)
            short_minutes++;
    }
    fprintf(stderr,
            "drill e: minutes %lld..%lld: %d intersection-minutes with traffic, %d short of "
            "the truth\n",
            (long long)from, (long long)to, with_traffic, short_minutes);
    /* the outage's minutes are all there: at least 5 minutes x most intersections */
    assert_true(with_traffic >= NISECT * 5 / 2);
    assert_true(short_minutes * 10 <= with_traffic);
}

/* (b) the simulator unreachable for 2 simulated minutes */
static void drill_sim_away(void)
{
    double rec0 = metric("tsi_collector_stream_reconnects");
    assert_true(rec0 >= 0);
    int64_t sim_down = collect_sim_now();
    th_proc_stop(&sim);
    usleep((useconds_t)(120000 / speed()) * 1000);
    char port[16], sp[16], st[32];
    snprintf(port, sizeof port, "%d", sim_port);
    snprintf(sp, sizeof sp, "%d", speed());
    snprintf(st, sizeof st, "%lld", (long long)(sim_down + 120000));
    const char *args[] = {"sim", "--port", port, "--speed", sp, "--intersections",
                          "10",  "--seed", "7",  "--start", st, "--warmup",
                          "120", NULL};
    th_proc_start(&sim, args, NULL);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/healthz", sim_port);
    if (th_wait_http(&sim, url, 30000) != 200)
        fail_msg("the restarted simulator did not answer");
    int64_t back = collect_sim_now();
    assert_true(back >= sim_down + 119000); /* now = start - one tick at first */
    int64_t resume = (back / 60000 + 1) * 60000;
    /* rows of a minute after the restart reach PostgreSQL (grace 60 s + flush; on a
     * loaded machine the sanitizer build's collector may trail the clock: up to 60 s
     * more of wall time) */
    wait_sim_until(resume + 60000 + 75000);
    PGconn *c = th_connect("tsi_reader");
    for (int i = 0; i < 300 && db_minutes(c, resume, resume + 60000) == 0; i++)
        usleep(200000);
    assert_true(db_minutes(c, resume, resume + 60000) == 1);
    PQfinish(c);
    bool rose = false;
    for (int i = 0; i < 100 && !rose; i++) {
        rose = metric("tsi_collector_stream_reconnects") > rec0;
        if (!rose)
            usleep(200000);
    }
    assert_true(rose);
    fprintf(stderr, "drill b: sim away %lld..%lld, reconnects %.0f -> %.0f\n", (long long)sim_down,
            (long long)back, rec0, metric("tsi_collector_stream_reconnects"));
}

/* (c) the archive directory unwritable for a simulated minute */
static void drill_archive(int64_t *ro, int64_t *rw)
{
    /* a file in its place (root ignores modes) */
    double aerr0 = metric("tsi_collector_archive_errors");
    assert_true(aerr0 >= 0);
    char adir[PATH_MAX + 16], aaway[PATH_MAX + 32];
    snprintf(adir, sizeof adir, "%s/archive", work);
    snprintf(aaway, sizeof aaway, "%s/archive.away", work);
    *ro = collect_sim_now();
    assert_int_equal(rename(adir, aaway), 0);
    FILE *blk = fopen(adir, "w");
    assert_non_null(blk);
    fclose(blk);
    bool errs = false;
    for (int i = 0; i < 300 && !errs; i++) {
        errs = metric("tsi_collector_archive_errors") > aerr0;
        if (!errs)
            usleep(200000);
    }
    wait_sim_until(*ro + 60000);
    *rw = collect_sim_now();
    assert_int_equal(unlink(adir), 0);
    assert_int_equal(rename(aaway, adir), 0);
    assert_true(errs);
    fprintf(stderr, "drill c: archive unwritable %lld..%lld, archive_errors %.0f -> %.0f\n",
            (long long)*ro, (long long)*rw, aerr0, metric("tsi_collector_archive_errors"));
}

/* (d) 200 concurrent clients */
static void drill_clients(void)
{
    static client cl[NCLIENTS];
    go = 0;
    for (int i = 0; i < NCLIENTS; i++) {
        cl[i] = (client){0};
        assert_int_equal(pthread_create(&cl[i].t, NULL, client_run, &cl[i]), 0);
    }
    go = 1;
    int ok = 0, bad = 0, served = 0;
    for (int i = 0; i < NCLIENTS; i++) {
        pthread_join(cl[i].t, NULL);
        ok += cl[i].ok;
        bad += cl[i].bad;
        served += cl[i].ok == 3;
        if (cl[i].bad && bad == cl[i].bad)
            fprintf(stderr, "drill d: first failure %s\n", cl[i].why);
    }
    fprintf(stderr, "drill d: %d clients, %d requests ok, %d failed\n", NCLIENTS, ok, bad);
    assert_int_equal(bad, 0);
    assert_int_equal(served, NCLIENTS);
}

/* (c) checked once its minutes are closed */
static void check_archive_minutes(int64_t ro, int64_t rw)
{
    /* (c) no raw message lost: every vehicle the simulator sent in the complete minutes
     * around the unwritable archive is in the raw archive, each message once */
    int64_t cfrom = (ro / 60000) * 60000, cto = (rw / 60000 + 1) * 60000;
    static truth tr[4096];
    size_t nt = get_truth(cfrom, cto, tr, 4096);
    long long veh_truth = 0;
    int complete = 0;
    for (size_t i = 0; i < nt; i++)
        if (tr[i].complete && tr[i].minute >= cfrom && tr[i].minute < cto) {
            veh_truth += tr[i].vehicles;
            complete++;
        }
    assert_true(complete >= NISECT);
    char q[512];
    snprintf(q, sizeof q,
             "SELECT coalesce(sum(n), 0) FROM (SELECT count(DISTINCT id) AS n FROM "
             "read_parquet(%%s || '/raw/bsm/*/*/*/*/*.parquet') WHERE timestamp_ms >= %lld AND "
             "timestamp_ms < %lld GROUP BY rsu_name, timestamp_ms // 60000)",
             (long long)cfrom, (long long)cto);
    long long veh_raw = duck_int(q);
    /* the same messages reached the windows (indices message_count) and the raw archive */
    snprintf(q, sizeof q,
             "SELECT coalesce(sum(message_count), 0) FROM (SELECT DISTINCT ON (intersection_id, "
             "\"timestamp\") * FROM read_parquet(%%s || '/indices/*/*/*/indices_*.parquet')) "
             "WHERE epoch_ms(\"timestamp\") >= %lld AND epoch_ms(\"timestamp\") < %lld",
             (long long)cfrom, (long long)cto);
    long long msgs_win = duck_int(q);
    snprintf(q, sizeof q,
             "SELECT count(*) FROM read_parquet(%%s || '/raw/*sm/*/*/*/*/*.parquet', "
             "union_by_name = true) WHERE timestamp_ms >= %lld AND timestamp_ms < %lld AND "
             "reject_reason IS NULL",
             (long long)cfrom, (long long)cto);
    long long msgs_raw = duck_int(q);
    fprintf(stderr,
            "drill c: minutes %lld..%lld vehicles raw=%lld truth=%lld, messages raw=%lld "
            "windows=%lld\n",
            (long long)cfrom, (long long)cto, veh_raw, veh_truth, msgs_raw, msgs_win);
    for (int64_t m = cfrom; m < cto && veh_raw != veh_truth; m += 60000) {
        long long tv = 0;
        for (size_t i = 0; i < nt; i++)
            if (tr[i].complete && tr[i].minute == m)
                tv += tr[i].vehicles;
        snprintf(q, sizeof q,
                 "SELECT coalesce(sum(n), 0) FROM (SELECT count(DISTINCT id) AS n FROM "
                 "read_parquet(%%s || '/raw/bsm/*/*/*/*/*.parquet') WHERE timestamp_ms >= %lld "
                 "AND timestamp_ms < %lld GROUP BY rsu_name)",
                 (long long)m, (long long)m + 60000);
        fprintf(stderr, "  minute %lld: vehicles raw %lld truth %lld\n", (long long)m, duck_int(q),
                tv);
    }
    assert_int_equal(msgs_raw, msgs_win);
    /* no message lost: the raw archive equals the windows message for message (above) and
     * holds every vehicle of the simulator's truth, exactly */
    assert_int_equal(veh_raw, veh_truth);
    assert_int_equal(duck_int("SELECT count(*) FROM (SELECT id, timestamp_ms, msg_cnt, sec_mark, "
                              "count(*) AS n FROM read_parquet(%s || "
                              "'/raw/bsm/*/*/*/*/*.parquet') GROUP BY ALL HAVING n > 1)"),
                     0);
}

static void test_drills(void **state)
{
    (void)state;
    bool rt = realtime_mode();
    start_all();
    int64_t down = 0, up = 0, gone = 0, back = 0, ro = 0, rw = 0;
    if (!rt)
        drill_restart(&down, &up);
    drill_pg_gone(&gone, &back);
    /* its minutes, once closed, against the truth now: drill b restarts the simulator,
     * whose truth then starts afresh */
    wait_sim_until((back / 60000 + 1) * 60000 + 75000);
    PGconn *c = th_connect("tsi_reader");
    check_pg_gone_minutes(c, gone, back);
    PQfinish(c);
    if (!rt) {
        drill_sim_away();
        drill_archive(&ro, &rw);
        drill_clients();
    }
    /* let the last minutes close, then stop everything and compare */
    int64_t end = rw > back ? rw : back;
    wait_sim_until((end / 60000 + 1) * 60000 + 75000);
    int64_t last_sim = collect_sim_now();
    stop_collect(&col);
    assert_int_equal(srv_stop_clean(&api), 0);
    c = th_connect("tsi_reader");
    /* (a) the minutes of the database restart are in the database */
    if (!rt)
        assert_true(db_minutes(c, (down / 60000) * 60000, (up / 60000 + 1) * 60000) >=
                    (up / 60000 + 1) - down / 60000);
    /* no row missing, none twice: database == indices Parquet */
    check_db_equals_parquet(c);
    PQfinish(c);
    if (!rt)
        check_archive_minutes(ro, rw);
    fprintf(stderr, "drills done at simulated %lld\n", (long long)last_sim);
    th_proc_stop(&sim);
}

static int teardown(void **state)
{
    (void)state;
    if (col.pid)
        th_proc_stop(&col);
    srv_stop(&api);
    th_proc_stop(&sim);
    th_private_cluster_remove_all();
    return 0;
}

int main(void)
{
    th_require_cluster();
    curl_global_init(CURL_GLOBAL_ALL);
    if (realtime_mode())
        setenv("TSI_E2E_SPEED", "1", 1);
    /* a private cluster: its own TSI_HOME and port, set before anything reads them */
    th_private_cluster_init(&pc, "drills", 1500);
    th_private_cluster_export(&pc);
    snprintf(work, sizeof work, "%s/work", pc.dir);
    if (tsi_mkdirs(work, NULL) < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_drills, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
