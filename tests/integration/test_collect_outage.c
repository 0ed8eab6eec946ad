/* `tsi collect` with the database away (issue 12): a private cluster (the run's shared
 * one cannot be stopped) is stopped for 5 simulated minutes in the middle of a run, then
 * started: the collector keeps archiving, spools the rows, replays them, and afterwards
 * the database holds exactly the rows of the indices Parquet (none missing, none twice). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/proc.h"
#include "cluster_helper.h"
#include "collect_util.h"

static th_cluster pc; /* this test's own cluster */

static long long status_value(const char *key)
{
    char path[PATH_MAX + 32], buf[8192] = "";
    snprintf(path, sizeof path, "%s/run/collect.json", pc.home);
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("no %s", path);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(buf, pat);
    if (!p)
        fail_msg("%s not in %s", key, buf);
    return atoll(p + strlen(pat));
}

static void test_db_down_mid_run(void **state)
{
    (void)state;
    th_private_cluster_start(&pc, 1);
    start_sim(NULL);
    th_proc col;
    int64_t t0 = collect_sim_now();
    start_collect(&col, NULL);
    int64_t first = (t0 / 60000 + 2) * 60000;
    wait_sim_until(first + 20000);
    th_private_cluster_stop(&pc);
    int64_t down = collect_sim_now();
    wait_sim_until(down + 5 * 60000);
    th_private_cluster_start(&pc, 0);
    int64_t up = collect_sim_now();
    wait_sim_until((up / 60000 + 1) * 60000 + 35000);
    char *log = th_proc_log(&col);
    stop_collect(&col);
    bool saw_spool = strstr(log, "database write failed") || strstr(log, "connect");
    free(log);
    assert_true(saw_spool);
    /* the rows of the outage were spooled, then replayed; the spool is empty */
    assert_true(status_value("spool_replayed") > 0);
    assert_int_equal(status_value("spool_depth"), 0);
    assert_true(status_value("db_errors") > 0);
    PGconn *c = th_connect("tsi_reader");
    /* rows exist for the minutes while the database was down */
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT count(DISTINCT \"timestamp\") FROM safety_indices_realtime WHERE "
             "\"timestamp\" >= to_timestamp(%lld / 1000.0) AND \"timestamp\" < "
             "to_timestamp(%lld / 1000.0)",
             (long long)((down / 60000 + 1) * 60000), (long long)((up / 60000) * 60000));
    assert_true(th_int(c, sql) >= 4);
    check_db_equals_parquet(c);
    PQfinish(c);
    th_proc_stop(&sim);
}

static int teardown(void **state)
{
    (void)state;
    th_proc_stop(&sim);
    th_private_cluster_remove_all();
    return 0;
}

int main(void)
{
    th_require_cluster();
    /* a private cluster: its own TSI_HOME and port, set before anything reads them */
    th_private_cluster_init(&pc, "coutage", 1100);
    th_private_cluster_export(&pc);
    snprintf(work, sizeof work, "%s/work", pc.dir);
    if (tsi_mkdirs(work, NULL) < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_db_down_mid_run, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
