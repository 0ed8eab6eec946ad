/* High availability on pg_auto_failover (issue 30), real processes, tight monitor
 * timeouts. One formation (`tsi db ha create`: a monitor and two data nodes under a
 * temporary TSI_HOME) serves the whole drill:
 *   - the formation is TLS verify-full with the role certificates: the writer lands on
 *     the primary, the reader on the standby; pg_cron runs with background workers;
 *   - the collector against the simulator, the primary killed with -9 mid-run: the
 *     secondary is promoted, the collector spools during the gap and replays once; the
 *     rows in PostgreSQL equal the simulator's truth and the indices Parquet; the write
 *     gap (kill -> first read-write connection) is printed;
 *   - `tsi serve` under requests through the failover: every answer a 200 (from a node or
 *     the Parquet fallback) within the fallback's connect timeout, then from PostgreSQL;
 *   - pg_cron runs a rollup on the new primary;
 *   - the killed node rejoins as secondary (`tsi db ha start`: its keeper, pg_rewind);
 *   - a switchover hands the primary back and the old primary follows;
 *   - `tsi status` and its metrics show the formation (primary, secondaries, promotions);
 *   - hostile input: bad flags exit 2, a damaged formation file is no formation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/fs.h"
#include "collect_util.h"
#include "db/conn.h"
#include "db/ha.h"
#include "ops_util.h"
#include "test_api_util.h"

static ops_cluster hc;
static api_srv api;
static int ha_port;
static char e_haport[32];

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void ha(int want, const char *const *args)
{
    ops_tsi(&hc, want, args);
}

/* the port a role's connection landed on, and whether that node is in recovery */
static int landed(tsi_db_role role, int *in_recovery)
{
    tsi_error e = {0};
    PGconn *c = tsi_db_connect(role, NULL, &e);
    if (!c)
        fail_msg("connect as %s: %s %s", tsi_db_role_name(role), e.message, e.detail);
    assert_int_equal(PQsslInUse(c), 1);
    int port = (int)th_int(c, "SELECT inet_server_port()");
    *in_recovery = (int)th_int(c, "SELECT pg_is_in_recovery()::int");
    PQfinish(c);
    return port;
}

static void primary_name(char *buf, size_t len)
{
    tsi_ha_state s;
    tsi_error e = {0};
    if (tsi_ha_state_read(&s, &e) < 0)
        fail_msg("monitor: %s %s", e.message, e.detail);
    snprintf(buf, len, "%s", s.primary >= 0 ? s.nodes[s.primary].name : "");
}

/* kill -9 a node: its keeper's process group and its postmaster */
static void kill_node(const char *node)
{
    int keeper = tsi_ha_keeper_pid(node);
    assert_true(keeper > 0);
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/ha/%s/postmaster.pid", hc.home, node);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    int pm = 0;
    assert_int_equal(fscanf(f, "%d", &pm), 1);
    fclose(f);
    assert_int_equal(kill(-keeper, SIGKILL), 0);
    kill(pm, SIGKILL);
}

static void test_hostile_input(void **state)
{
    (void)state;
    ha(2, (const char *[]){"db", "ha", "create", "--ha-port", "0", NULL});
    ha(2, (const char *[]){"db", "ha", "create", "--ha-timeouts", "fast", NULL});
    ha(2, (const char *[]){"db", "ha", "switchover", "--timeout", "-1", NULL});
    ha(2, (const char *[]){"db", "ha", "status", "extra", NULL});
    /* no formation yet: a message, exit 1 */
    ha(1, (const char *[]){"db", "ha", "status", NULL});
    assert_non_null(strstr(ops_out, "tsi db ha create"));
    /* a damaged formation file is no formation (conn.c falls back to the embedded one) */
    char dir[PATH_MAX + 16], path[PATH_MAX + 32];
    snprintf(dir, sizeof dir, "%s/hostile", hc.dir);
    assert_int_equal(tsi_mkdirs(dir, NULL), 0);
    setenv("TSI_HA_DIR", dir, 1);
    snprintf(path, sizeof path, "%s/formation", dir);
    static const char *const bad[] = {"",
                                      "node1_port=5\n",
                                      "node1_port=70000\nnode2_port=1\nsocket=/tmp\n",
                                      "node1_port=1\nnode2_port=-3\nsocket=/tmp\n",
                                      "node1_port=1\nnode2_port=2\n",
                                      "\x01\x02garbage=\nnode1_port\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(bad[i], f);
        fclose(f);
        tsi_ha_formation fm;
        assert_int_equal(tsi_ha_formation_read(&fm), 0);
    }
    unsetenv("TSI_HA_DIR");
}

static void test_failover_drill(void **state)
{
    (void)state;
    double t0 = now_s();
    ha(0, (const char *[]){"db", "ha", "create", "--ha-timeouts", "tight", NULL});
    fprintf(stderr, "formation created in %.1f s\n", now_s() - t0);
    ha(0, (const char *[]){"db", "ha", "status", NULL});
    assert_non_null(strstr(ops_out, "primary: node1"));
    assert_non_null(strstr(ops_out, "secondary"));
    /* tsi status and /metrics show the formation */
    ha(0, (const char *[]){"status", NULL});
    assert_non_null(strstr(ops_out, "HA formation: primary node1; 0 promotion(s)"));
    ha(0, (const char *[]){"status", "--metrics", NULL});
    assert_non_null(strstr(ops_out, "tsi_ha_monitor_up 1\n"));
    assert_non_null(strstr(ops_out, "tsi_ha_primary 1\n"));
    assert_non_null(strstr(ops_out, "tsi_ha_secondaries 1\n"));
    assert_non_null(strstr(ops_out, "tsi_ha_failovers_total 0\n"));
    assert_non_null(strstr(ops_out, "tsi_ha_node_state{node=\"node1\",reported=\"primary\","));

    /* the role certificates, verify-full; writers on the primary, the reader on a standby */
    int rec = -1;
    assert_int_equal(landed(TSI_ROLE_WRITER, &rec), ha_port + 1);
    assert_int_equal(rec, 0);
    assert_int_equal(landed(TSI_ROLE_READER, &rec), ha_port + 2);
    assert_int_equal(rec, 1);
    PGconn *own = th_connect("tsi_owner");
    assert_int_equal(th_int(own, "SELECT count(*) FROM pg_extension WHERE extname IN "
                                 "('postgis', 'pg_partman', 'pg_cron', 'pgaudit')"),
                     4);
    PGconn *adm = th_connect("postgres"); /* the setting is the superuser's to read */
    assert_string_equal(PQparameterStatus(adm, "in_hot_standby"), "off");
    assert_int_equal(th_int(adm, "SELECT count(*) FROM pg_settings WHERE name = "
                                 "'cron.use_background_workers' AND setting = 'on'"),
                     1);
    PQfinish(adm);
    /* memory: ours, not pg_autoctl's computed tuning */
    assert_int_equal(th_int(own, "SELECT setting::bigint * 8 / 1024 FROM pg_settings WHERE "
                                 "name = 'shared_buffers'"),
                     256);
    /* a rollup every minute by pg_cron (1-minute granularity), as the jobs role */
    PGconn *jobs = th_connect("tsi_jobs");
    long long job = th_int(jobs, "SELECT cron.schedule('tsi-ha-test', '* * * * *', "
                                 "'CALL public.tsi_job_cron(''hourly'')')");
    PQfinish(jobs);
    PQfinish(own);

    /* the collector against the simulator; the primary killed -9 mid-run */
    start_sim(NULL);
    th_proc col;
    int64_t s0 = collect_sim_now();
    start_collect(&col, NULL);
    /* the API, reading through the formation (prefer-standby), Parquet as its fallback */
    static char arch_env[PATH_MAX + 32];
    snprintf(arch_env, sizeof arch_env, "TSI_ARCHIVE_DIR=%s/archive", work);
    srv_start(&api, (const char *[]){"--db-connect-timeout", "2", NULL},
              (const char *[]){arch_env, NULL});
    int64_t first = (s0 / 60000 + 2) * 60000;
    wait_sim_until(first + 20000);
    kill_node("node1");
    double killed = now_s();
    int64_t kill_sim = collect_sim_now();
    /* the write gap: until a writer connects read-write again; meanwhile the API answers
     * every request, from a node or from Parquet, none waiting beyond the fallback's
     * connect timeout (2 s; x3 for the sanitizer build on a shared machine) */
    tsi_error e = {0};
    PGconn *w = NULL;
    int api_n = 0, api_bad = 0;
    double api_worst = 0;
    while (now_s() - killed < 90 && !(w = tsi_db_connect(TSI_ROLE_WRITER, NULL, &e))) {
        double a0 = now_s();
        resp r = get(api.port, "/api/v2/safety/index/");
        double took = now_s() - a0;
        api_n++;
        api_bad += r.status != 200;
        if (took > api_worst)
            api_worst = took;
        resp_free(&r);
        usleep(100 * 1000);
    }
    if (!w)
        fail_msg("no primary 90 s after the kill: %s %s", e.message, e.detail);
    double gap = now_s() - killed;
    assert_int_equal(th_int(w, "SELECT inet_server_port()"), ha_port + 2);
    PQfinish(w);
    fprintf(stderr, "failover write gap: %.1f s (kill -9 of the primary -> read-write)\n", gap);
    fprintf(stderr, "API during the gap: %d requests, %d not 200, worst %.2f s\n", api_n, api_bad,
            api_worst);
    assert_true(api_n > 0);
    assert_int_equal(api_bad, 0);
    assert_true(api_worst < 6.0);
    /* answers resume from PostgreSQL (the standby left is the new primary: prefer-standby
     * takes it when it is the only node) */
    char src[32] = "";
    for (int i = 0; i < 100; i++) {
        resp r = get(api.port, "/api/v2/safety/index/");
        assert_int_equal(r.status, 200);
        bool has = resp_header(&r, "X-Data-Source", src, sizeof src);
        resp_free(&r);
        if (has && strcmp(src, "postgres") == 0)
            break;
        usleep(200 * 1000);
    }
    assert_string_equal(src, "postgres");
    srv_stop_clean(&api);
    /* the monitor's view follows (node2 may still report stop_replication) */
    tsi_error we = {0};
    if (tsi_ha_wait(false, 60, &we) < 0)
        fail_msg("the monitor shows no primary: %s %s", we.message, we.detail);
    char p[64];
    primary_name(p, sizeof p);
    assert_string_equal(p, "node2");
    ha(0, (const char *[]){"status", "--metrics", NULL});
    assert_non_null(strstr(ops_out, "tsi_ha_failovers_total 1\n"));
    assert_non_null(strstr(ops_out, "tsi_ha_secondaries 0\n"));
    assert_non_null(strstr(ops_out, "tsi_ha_last_failover_timestamp_seconds "));
    double promoted = (double)time(NULL);

    /* two more simulated minutes, then the collector stops and drains */
    wait_sim_until((kill_sim / 60000 + 2) * 60000 + 35000);
    char *log = th_proc_log(&col);
    stop_collect(&col);
    assert_non_null(strstr(log, "database write failed"));
    free(log);
    PGconn *c = th_connect("tsi_owner");
    /* nothing lost, nothing twice: the database holds the indices Parquet's rows */
    check_db_equals_parquet(c);
    assert_int_equal(th_int(c, "SELECT count(*) FROM (SELECT 1 FROM safety_indices_realtime "
                               "GROUP BY intersection_id, \"timestamp\" HAVING count(*) > 1) d"),
                     0);
    /* and the simulator's truth, minute by minute (complete minutes, around the kill) */
    static truth tr[4096];
    size_t nt = get_truth(first, (kill_sim / 60000 + 2) * 60000, tr, 4096);
    int checked = 0, late = 0;
    for (size_t i = 0; i < nt; i++) {
        if (!tr[i].complete)
            continue;
        int r = truth_minute_check(c, &tr[i]);
        checked += r >= 0;
        late += r == 1;
    }
    fprintf(stderr, "truth: %d intersection-minutes checked, %d short by late messages\n", checked,
            late);
    assert_true(checked >= NISECT * 2);
    assert_true(late * 10 <= checked);

    /* pg_cron runs the rollup on the new primary */
    int ran = 0;
    for (int i = 0; i < 60 && !ran; i++) {
        ran = (int)th_intf(c,
                           "SELECT count(*) FROM job_runs WHERE job = 'hourly' AND status = 'ok' "
                           "AND source = 'pg_cron' AND started >= to_timestamp(%.0f)",
                           promoted);
        if (!ran)
            sleep(2);
    }
    PQfinish(c);
    jobs = th_connect("tsi_jobs");
    th_sqlf(jobs, "SELECT cron.unschedule(%lld)", job);
    PQfinish(jobs);
    if (!ran)
        fail_msg("pg_cron ran no rollup on the new primary within 120 s");

    /* the killed node rejoins as secondary (its keeper restarts; pg_rewind) */
    t0 = now_s();
    ha(0, (const char *[]){"db", "ha", "start", "--ha-timeouts", "tight", NULL});
    if (tsi_ha_wait(true, 120, &we) < 0)
        fail_msg("no rejoin: %s %s", we.message, we.detail);
    fprintf(stderr, "old primary rejoined as secondary in %.1f s\n", now_s() - t0);
    assert_int_equal(landed(TSI_ROLE_READER, &rec), ha_port + 1);
    assert_int_equal(rec, 1);

    /* a switchover hands the primary back; the old one follows */
    t0 = now_s();
    ha(0, (const char *[]){"db", "ha", "switchover", NULL});
    fprintf(stderr, "switchover and rejoin in %.1f s\n", now_s() - t0);
    primary_name(p, sizeof p);
    assert_string_equal(p, "node1");
    assert_int_equal(landed(TSI_ROLE_WRITER, &rec), ha_port + 1);
    assert_int_equal(rec, 0);
    ha(0, (const char *[]){"db", "ha", "status", NULL});
    assert_non_null(strstr(ops_out, "promotions: 2"));

    ha(0, (const char *[]){"db", "ha", "stop", NULL});
    assert_int_equal(tsi_ha_keeper_pid("monitor"), 0);
    assert_int_equal(tsi_ha_keeper_pid("node1"), 0);
    assert_int_equal(tsi_ha_keeper_pid("node2"), 0);
    th_proc_stop(&sim);
}

static int teardown(void **state)
{
    (void)state;
    th_proc_stop(&sim);
    if (api.pid > 0)
        srv_stop(&api);
    if (getenv("OPS_KEEP"))
        return 0;
    char out[4096];
    th_run_tsi((const char *[]){"db", "ha", "stop", NULL}, hc.env, out, sizeof out);
    static const char *const all[] = {"monitor", "node1", "node2"};
    for (int i = 0; i < 3; i++) {
        int pid = tsi_ha_keeper_pid(all[i]);
        if (pid > 0)
            kill(-pid, SIGKILL);
    }
    return ops_teardown(state);
}

int main(void)
{
    th_require_cluster();
    ops_cluster_init(&hc, "ha", 1700);
    th_private_cluster_export(&hc);
    ha_port = ops_pick_port(hc.port + 10);
    snprintf(e_haport, sizeof e_haport, "TSI_HA_PORT=%d", ha_port);
    hc.env[4] = e_haport;
    setenv("TSI_HA_PORT", e_haport + strlen("TSI_HA_PORT="), 1);
    snprintf(work, sizeof work, "%s/work", hc.dir);
    if (tsi_mkdirs(work, NULL) < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hostile_input),
        cmocka_unit_test_teardown(test_failover_drill, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
