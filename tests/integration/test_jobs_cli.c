/* Integration: `tsi jobs` at its input boundaries and its privileges — hostile job names,
 * clocks, schedules; who may run what; the dirty-bucket trigger on the collector's insert
 * path; install without pg_cron; status (issue 14). */
#include "test_jobs_util.h"

static int run(const char *const *args, char *out, size_t len)
{
    return th_run_tsi(args, NULL, out, len);
}

static void test_hostile_run_arguments(void **state)
{
    (void)state;
    char db[64], out[4096];
    th_db_create(db);
    PGconn *owner = th_connect("tsi_owner");
    static const struct {
        const char *args[8];
        int want;
    } cases[] = {
        {{"jobs", "run", NULL}, 2},
        {{"jobs", "run", "nonsense", NULL}, 2},
        {{"jobs", "run", "hourly; DROP TABLE job_runs", NULL}, 2},
        {{"jobs", "run", "", NULL}, 2},
        {{"jobs", "run", "hourly", "daily", NULL}, 2},
        {{"jobs", "run", "hourly", "--at", "garbage", NULL}, 2},
        {{"jobs", "run", "hourly", "--at", "2026-13-45 10:00", NULL}, 2},
        {{"jobs", "run", "hourly", "--at", "infinity", NULL}, 2},
        {{"jobs", "run", "hourly", "--at", "-infinity", NULL}, 2},
        {{"jobs", "run", "hourly", "--at", "'); DROP TABLE job_runs; --", NULL}, 2},
        {{"jobs", "run", "hourly", "--bogus", NULL}, 2},
        {{"jobs", "frobnicate", NULL}, 2},
        {{"jobs", "install", "--schedule-hourly", "bad", NULL}, 2},
        {{"jobs", "install", "--schedule-hourly", "5 * * *", NULL}, 2},
        {{"jobs", "install", "--schedule-hourly", "5 * * * * *", NULL}, 2},
        {{"jobs", "install", "--schedule-daily", "5;DROP * * * *", NULL}, 2},
        {{"jobs", "install", "--schedule-vacuum", "5 * * * '", NULL}, 2},
        {{"jobs", "status", "--limit", "0", NULL}, 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = run(cases[i].args, out, sizeof out);
        if (rc != cases[i].want)
            fail_msg("case %zu (%s %s %s): exit %d, want %d\n%s", i, cases[i].args[1],
                     cases[i].args[2] ? cases[i].args[2] : "",
                     cases[i].args[2] && cases[i].args[3] ? cases[i].args[3] : "", rc,
                     cases[i].want, out);
    }
    /* nothing ran, nothing was dropped */
    assert_int_equal(th_intf(owner, "SELECT count(*) FROM job_runs"), 0);
    /* --help is not an error */
    const char *help[] = {"jobs", "run", "--help", NULL};
    assert_int_equal(run(help, out, sizeof out), 0);
    assert_non_null(strstr(out, "--at"));
    PQfinish(owner);
    th_db_drop(db);
}

static void expect_state(PGconn *c, const char *sql, const char *want)
{
    char st[8] = "";
    th_exec(c, sql, st);
    if (strcmp(st, want) != 0)
        fail_msg("%s: SQLSTATE '%s', expected %s", sql, st, want);
}

static void test_privileges(void **state)
{
    (void)state;
    char db[64];
    th_db_create(db);
    PGconn *reader = th_connect("tsi_reader");
    PGconn *writer = th_connect("tsi_writer");
    PGconn *jobs = th_connect("tsi_jobs");
    PGconn *owner = th_connect("tsi_owner");
    /* only tsi_jobs runs jobs */
    expect_state(reader, "SELECT * FROM tsi_job_run('hourly')", "42501");
    expect_state(writer, "SELECT * FROM tsi_job_run('hourly')", "42501");
    expect_state(writer, "CALL tsi_job_cron('hourly')", "42501");
    /* internals are reachable only through the entry point */
    expect_state(jobs, "SELECT * FROM tsi_rollup_hourly(now())", "42501");
    expect_state(jobs, "SELECT * FROM tsi_retention(now(), '{}')", "42501");
    expect_state(jobs, "SELECT * FROM tsi_constants(now(), '{}')", "42501");
    /* the record is written only by the jobs */
    expect_state(jobs,
                 "INSERT INTO job_runs (job, at, started, finished, status) VALUES "
                 "('hourly', now(), now(), now(), 'ok')",
                 "42501");
    expect_state(jobs, "DELETE FROM job_runs", "42501");
    expect_state(writer, "DELETE FROM rollup_dirty", "42501");
    /* hostile arguments straight to the function */
    expect_state(jobs, "SELECT * FROM tsi_job_run('nope')", "22023");
    expect_state(jobs, "SELECT * FROM tsi_job_run(NULL)", "22023");
    expect_state(jobs, "SELECT * FROM tsi_job_run('hourly', 'infinity')", "22023");
    expect_state(jobs, "SELECT * FROM tsi_job_run('hourly', now(), '[1]')", "22023");
    expect_state(jobs, "SELECT * FROM tsi_job_run('hourly', now(), 'null')", "22023");
    assert_int_equal(th_intf(owner, "SELECT count(*) FROM job_runs"), 0);
    /* functions run with a fixed search_path: a hostile one changes nothing */
    jt_intersections(owner, 1);
    expect_state(jobs, "SET search_path = pg_temp, public", "");
    tsi_job_result res;
    tsi_error e = {0};
    assert_int_equal(tsi_jobs_run_one(jobs, "hourly", NULL, NULL, &res, &e), 0);
    assert_string_equal(res.status, "ok");
    /* the collector's insert marks its hour dirty (statement trigger, no privilege on the
     * marks table needed), one mark per statement and hour */
    long long now = jt_server_now(owner); /* the job below runs on the database's clock */
    jt_row rows[3] = {jt_make(1, (now / 3600) * 3600 - 3600, 0, 100, 0),
                      jt_make(1, (now / 3600) * 3600 - 3540, 0, 100, 0),
                      jt_make(1, (now / 3600) * 3600 - 7200, 0, 100, 0)};
    jt_insert(writer, rows, 3);
    assert_int_equal(th_intf(owner, "SELECT count(*) FROM rollup_dirty WHERE kind = 'hourly'"), 2);
    assert_int_equal(tsi_jobs_run_one(jobs, "hourly", NULL, NULL, &res, &e), 0);
    assert_string_equal(res.status, "ok");
    assert_int_equal(res.rows, 2);
    assert_int_equal(th_intf(owner, "SELECT count(*) FROM rollup_dirty WHERE kind = 'hourly'"), 0);
    /* pg_cron is not in per-test databases: install says so and fails */
    char out[2048];
    const char *args[] = {"jobs", "install", NULL};
    int rc = run(args, out, sizeof out);
    if (rc != 1 || !strstr(out, "pg_cron is not installed"))
        fail_msg("install without pg_cron: exit %d\n%s", rc, out);
    PQfinish(reader);
    PQfinish(writer);
    PQfinish(jobs);
    PQfinish(owner);
    th_db_drop(db);
}

static void test_status_and_run_all(void **state)
{
    (void)state;
    char db[64], out[8192];
    th_db_create(db);
    const char *st[] = {"jobs", "status", NULL};
    assert_int_equal(run(st, out, sizeof out), 0);
    assert_non_null(strstr(out, "never"));
    const char *all[] = {"jobs", "run", "all", NULL};
    int rc = run(all, out, sizeof out);
    if (rc != 0)
        fail_msg("run all: %d\n%s", rc, out);
    for (int i = 0; tsi_job_names[i]; i++)
        assert_non_null(strstr(out, tsi_job_names[i]));
    assert_int_equal(run(st, out, sizeof out), 0);
    assert_null(strstr(out, "never"));
    assert_non_null(strstr(out, "recent failures: 0"));
    assert_non_null(strstr(out, "pg_cron"));
    PGconn *owner = th_connect("tsi_owner");
    assert_int_equal(th_intf(owner, "SELECT count(*) FROM job_runs WHERE status = 'ok' AND "
                                    "source = 'tsi' AND finished >= started"),
                     5);
    PQfinish(owner);
    th_db_drop(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hostile_run_arguments),
        cmocka_unit_test(test_privileges),
        cmocka_unit_test(test_status_and_run_all),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
