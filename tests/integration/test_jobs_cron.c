/* Integration: pg_cron really runs a job. Per-test databases have no pg_cron (it lives in
 * the one database named by cron.database_name), so this test uses the cluster's `tsi`
 * database: it installs the schedule with `tsi jobs install`, adds a job that runs every
 * minute, waits until cron.job_run_details and job_runs both show the run, and removes
 * everything it added (issue 14). Takes about a minute (pg_cron 1.4 has 1-minute
 * granularity). */
#include "test_jobs_util.h"

#include <unistd.h>

static void test_pg_cron_runs_a_job(void **state)
{
    (void)state;
    th_require_cluster();
    setenv("TSI_DB_NAME", "tsi", 1);
    PGconn *jobs = th_connect("tsi_jobs");
    PGconn *owner = th_connect("tsi_owner");
    char out[8192];
    char *t0 = th_value(owner, "SELECT now()::text");

    const char *install[] = {"jobs", "install", "--schedule-partitions", "35 * * * *", NULL};
    int rc = th_run_tsi(install, NULL, out, sizeof out);
    if (rc != 0)
        fail_msg("tsi jobs install: %d\n%s", rc, out);
    assert_int_equal(
        th_intf(jobs, "SELECT count(*) FROM cron.job WHERE jobname LIKE 'tsi-%%' AND "
                      "username = 'tsi_jobs' AND command LIKE 'CALL public.tsi_job_cron(%%'"),
        5);
    assert_int_equal(th_intf(jobs, "SELECT count(*) FROM cron.job WHERE jobname = 'tsi-hourly' AND "
                                   "schedule = '5 * * * *'"),
                     1);
    assert_int_equal(th_intf(jobs, "SELECT count(*) FROM cron.job WHERE jobname = 'tsi-partitions' "
                                   "AND schedule = '35 * * * *'"),
                     1);
    assert_int_equal(th_intf(owner,
                             "SELECT count(*) FROM cron.job WHERE jobname = 'tsi-vacuum' AND "
                             "username = 'tsi_owner'"),
                     1);
    /* the partition drop runs as the owner too, outside a transaction block (issue 24) */
    assert_int_equal(th_intf(owner, "SELECT count(*) FROM cron.job WHERE jobname = "
                                    "'tsi-retention-drop' AND username = 'tsi_owner' AND command "
                                    "LIKE 'CALL public.tsi_retention_drop(NULL, %%' AND schedule = "
                                    "'15 2 * * *'"),
                     1);
    /* idempotent: installing again leaves one of each */
    rc = th_run_tsi(install, NULL, out, sizeof out);
    assert_int_equal(rc, 0);
    assert_int_equal(th_intf(jobs, "SELECT count(*) FROM cron.job WHERE jobname LIKE 'tsi-%%'"), 5);

    long long id = th_intf(jobs, "SELECT cron.schedule('tsi-test-every-minute', '* * * * *', "
                                 "'CALL public.tsi_job_cron(''hourly'')')");
    int seen = 0;
    for (int i = 0; i < 75 && !seen; i++) { /* up to 150 s */
        sleep(2);
        long long cron_ok = th_intf(jobs,
                                    "SELECT count(*) FROM cron.job_run_details WHERE jobid = %lld "
                                    "AND status = 'succeeded'",
                                    id);
        long long runs = th_intf(owner,
                                 "SELECT count(*) FROM job_runs WHERE job = 'hourly' AND status = "
                                 "'ok' AND source = 'pg_cron' AND started >= '%s'",
                                 t0);
        seen = cron_ok >= 1 && runs >= 1;
    }
    const char *st[] = {"jobs", "status", NULL};
    th_run_tsi(st, NULL, out, sizeof out);

    /* clean up before asserting, so a failure leaves nothing behind */
    th_sqlf(jobs, "SELECT cron.unschedule(%lld)", id);
    const char *remove[] = {"jobs", "install", "--remove", NULL};
    int rc_remove = th_run_tsi(remove, NULL, NULL, 0);
    long long left = th_intf(jobs, "SELECT count(*) FROM cron.job WHERE jobname LIKE 'tsi-%%'") +
                     th_intf(owner, "SELECT count(*) FROM cron.job WHERE jobname LIKE 'tsi-%%'");
    th_sqlf(jobs, "DELETE FROM cron.job_run_details WHERE jobid = %lld", id);
    th_sqlf(owner, "DELETE FROM job_runs WHERE started >= '%s'", t0);
    free(t0);
    PQfinish(jobs);
    PQfinish(owner);

    if (!seen)
        fail_msg("pg_cron did not run the job within 150 s\n%s", out);
    assert_non_null(strstr(out, "tsi-test-every-minute"));
    assert_non_null(strstr(out, "succeeded"));
    assert_int_equal(rc_remove, 0);
    assert_int_equal(left, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pg_cron_runs_a_job),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
