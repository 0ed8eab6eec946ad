/* The point-in-time recovery drill (issue 17), on a private embedded cluster of its own:
 * write data, `tsi backup setup` + `tsi backup run`, write more, note the server's time,
 * write more, `tsi backup restore --to TIME` into a fresh data directory, start a server
 * on it (another port) → exactly the rows written before the noted time. Then the same
 * restore in place, a differential backup on the new timeline, and the refusals of
 * hostile arguments. Everything goes through the real tsi binary and pgBackRest. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ops_util.h"

/* batch k writes minutes [lo, hi) for intersections 1..3; expected rows = 3 * (hi - lo) */
static void write_batch(PGconn *c, int lo, int hi, int new_intersection)
{
    char sql[1024];
    snprintf(sql, sizeof sql,
             "INSERT INTO intersections (id, name, latitude, longitude) VALUES "
             "(%d, 'drill %d', 38.85 + %d * 0.001, -77.2)",
             new_intersection, new_intersection, new_intersection);
    ops_exec(c, sql);
    snprintf(sql, sizeof sql,
             "INSERT INTO safety_indices_realtime (intersection_id, \"timestamp\", "
             "combined_index, traffic_volume, vru_count, vehicle_event_count, vru_event_count, "
             "hour_of_day, day_of_week)\n"
             "SELECT i, (SELECT t0 FROM drill_epoch) + m * interval '1 minute', (i * 7 + m) %% "
             "100, m, 0, 0, 0, 0, 0\n"
             "  FROM generate_series(1, 3) i, generate_series(%d, %d) m",
             lo, hi - 1);
    ops_exec(c, sql);
}

static void expect_text(PGconn *c, const char *sql, const char *want)
{
    char *v = th_value(c, sql);
    int same = v && strcmp(v, want) == 0;
    if (!same)
        fail_msg("%s: got '%s', want '%s'", sql, v ? v : "NULL", want);
    free(v);
}

static long long count(PGconn *c, const char *sql)
{
    return th_int(c, sql);
}

static void wait_archived(PGconn *c)
{
    /* switch to a new WAL segment and wait until the finished one is in the repository */
    char *seg = th_value(c, "SELECT pg_walfile_name(pg_switch_wal())");
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT COALESCE(last_archived_wal >= '%s', false) FROM pg_stat_archiver", seg);
    for (int i = 0; i < 600; i++) {
        char *v = th_value(c, sql);
        int ok = v && strcmp(v, "t") == 0;
        free(v);
        if (ok) {
            free(seg);
            return;
        }
        usleep(100000);
    }
    fail_msg("WAL segment %s was not archived within 60 s", seg);
}

static void test_pitr_drill(void **state)
{
    (void)state;
    th_tsi_bin();
    ops_cluster cl;
    ops_cluster_init(&cl, "pitr", 700);
    ops_tsi(&cl, 0, (const char *[]){"db", "start", NULL});
    ops_tsi(&cl, 0, (const char *[]){"migrate", NULL});

    /* before setup there is nothing to restore from */
    ops_tsi(&cl, 1, (const char *[]){"backup", "restore", "--to", "2026-01-01 00:00:00", NULL});
    assert_non_null(strstr(ops_out, "tsi backup setup"));

    ops_tsi(&cl, 0, (const char *[]){"backup", "setup", NULL});
    ops_tsi(&cl, 0, (const char *[]){"backup", "setup", NULL}); /* idempotent */

    char admin[4096];
    ops_admin_conninfo(&cl, admin, sizeof admin);
    PGconn *c = ops_connect(admin);
    expect_text(c, "SHOW archive_mode", "on");
    ops_exec(c, "INSERT INTO intersections (id, name, latitude, longitude) "
                "SELECT i, 'drill ' || i, 38.85 + i * 0.001, -77.2 FROM generate_series(1, 3) i");
    ops_exec(c, "CREATE TABLE drill_epoch AS SELECT date_trunc('hour', now()) - interval '2 hours' "
                "AS t0");

    /* A: before the backup */
    write_batch(c, 0, 40, 4);
    ops_tsi(&cl, 0, (const char *[]){"backup", "run", NULL});
    ops_tsi(&cl, 0, (const char *[]){"backup", "list", NULL});
    assert_non_null(strstr(ops_out, " full "));
    assert_non_null(strstr(ops_out, "point-in-time recovery: from"));

    /* pgBackRest knows a backup's end to the second: a target within the second the
     * backup ended may find no backup before it, so B starts a second and a half later */
    usleep(1500 * 1000);
    /* B: after the backup, before the noted time */
    write_batch(c, 40, 60, 5);
    char *t = th_value(c, "SELECT clock_timestamp()::text");
    usleep(1100 * 1000);
    /* C: after the noted time */
    write_batch(c, 60, 80, 6);
    assert_int_equal(count(c, "SELECT count(*) FROM safety_indices_realtime"), 3 * 80);
    wait_archived(c);

    /* restore into a fresh directory; the running cluster is untouched */
    char target[PATH_MAX + 16];
    snprintf(target, sizeof target, "%s/restored", cl.dir);
    ops_tsi(&cl, 0, (const char *[]){"backup", "restore", "--to", t, "--target-dir", target, NULL});
    assert_non_null(strstr(ops_out, target));
    assert_int_equal(count(c, "SELECT count(*) FROM safety_indices_realtime"), 3 * 80);

    /* the same directory again: refused, it is no longer fresh */
    ops_tsi(&cl, 1, (const char *[]){"backup", "restore", "--to", t, "--target-dir", target, NULL});
    assert_non_null(strstr(ops_out, "not empty"));

    int port2 = ops_pick_port(cl.port + 1);
    assert_int_equal(ops_pg_ctl(target, "start", port2), 0);
    char ci[PATH_MAX + 128];
    snprintf(ci, sizeof ci, "host=%s port=%d user=postgres dbname=tsi", target, port2);
    PGconn *r = ops_connect(ci);
    /* recovery stops at the target, then the server is promoted */
    for (int i = 0; i < 300 && count(r, "SELECT pg_is_in_recovery()::int") == 1; i++)
        usleep(100000);
    assert_int_equal(count(r, "SELECT pg_is_in_recovery()::int"), 0);
    /* exactly A and B: 3 intersections x 60 minutes, minutes 0..59, nothing of C */
    assert_int_equal(count(r, "SELECT count(*) FROM safety_indices_realtime"), 3 * 60);
    assert_int_equal(count(r, "SELECT count(DISTINCT (intersection_id, \"timestamp\")) FROM "
                              "safety_indices_realtime r, drill_epoch e WHERE r.\"timestamp\" "
                              "< e.t0 + interval '60 minutes'"),
                     3 * 60);
    /* 1..3 before everything, 4 with A, 5 with B; not 6 (C) */
    assert_int_equal(count(r, "SELECT count(*) FROM intersections"), 5);
    assert_int_equal(count(r, "SELECT count(*) FROM intersections WHERE id = 6"), 0);
    /* and the values are those written: sum over i in 1..3, m in 0..59 of (7i + m) % 100 */
    long long want = 0;
    for (int i = 1; i <= 3; i++)
        for (int m = 0; m < 60; m++)
            want += (7 * i + m) % 100;
    assert_int_equal(count(r, "SELECT sum(combined_index)::bigint FROM safety_indices_realtime"),
                     want);
    /* the restored copy does not archive into the primary's repository */
    expect_text(r, "SHOW archive_mode", "off");
    PQfinish(r);
    assert_int_equal(ops_pg_ctl(target, "stop", port2), 0);

    /* in place: the cluster is stopped, restored to the same time and started again */
    PQfinish(c);
    ops_tsi(&cl, 0, (const char *[]){"backup", "restore", "--to", t, "--in-place", NULL});
    c = ops_connect(admin);
    for (int i = 0; i < 300 && count(c, "SELECT pg_is_in_recovery()::int") == 1; i++)
        usleep(100000);
    assert_int_equal(count(c, "SELECT count(*) FROM safety_indices_realtime"), 3 * 60);
    assert_int_equal(count(c, "SELECT count(*) FROM intersections"), 5);
    expect_text(c, "SHOW archive_mode", "on");
    /* backups go on, on the new timeline */
    ops_exec(c, "INSERT INTO intersections (id, name, latitude, longitude) VALUES "
                "(9, 'after restore', 38.9, -77.2)");
    /* ... by the jobs schedule: the daily differential is pg_cron's job, owned by the
     * superuser; run its command as pg_cron would */
    assert_int_equal(count(c, "SELECT count(*) FROM cron.job WHERE username = 'postgres' AND "
                              "((jobname = 'tsi-backup-full' AND schedule = '30 1 * * 0') OR "
                              "(jobname = 'tsi-backup-diff' AND schedule = '30 1 * * 1-6'))"),
                     2);
    char *job = th_value(c, "SELECT command FROM cron.job WHERE jobname = 'tsi-backup-diff'");
    ops_exec(c, job);
    free(job);
    ops_tsi(&cl, 0, (const char *[]){"backup", "list", NULL});
    assert_non_null(strstr(ops_out, " diff "));
    PQfinish(c);
    free(t);

    ops_tsi(&cl, 0, (const char *[]){"db", "stop", NULL});
    th_private_cluster_remove(&cl);
}

/* Hostile arguments are refused before anything is touched. */
static void test_restore_refusals(void **state)
{
    (void)state;
    ops_cluster cl;
    ops_cluster_init(&cl, "bkref", 1100);
    static const char *const bad_times[] = {
        "yesterday",
        "2026-02-30 00:00:00",
        "2026-11-25 10:00:00'; DROP TABLE intersections; --",
        "2026-11-25 10:00:00 --target-action=shutdown",
        "",
    };
    for (size_t i = 0; i < sizeof bad_times / sizeof bad_times[0]; i++) {
        ops_tsi(&cl, 2, (const char *[]){"backup", "restore", "--to", bad_times[i], NULL});
        assert_non_null(strstr(ops_out, "not a recovery target time"));
    }
    ops_tsi(&cl, 2, (const char *[]){"backup", "run", "--type", "everything", NULL});
    ops_tsi(&cl, 2, (const char *[]){"backup", "setup", "--retention-days", "0", NULL});
    ops_tsi(&cl, 2, (const char *[]){"backup", "setup", "--schedule-diff", "30 1 * *", NULL});
    ops_tsi(&cl, 2,
            (const char *[]){"backup", "setup", "--schedule-full", "30 1 * * 0; rm -rf /", NULL});

    /* a repository path that would break archive_command */
    const char *env_bad[] = {cl.e_home, cl.e_port, "TSI_BACKUP_DIR=/tmp/x y;reboot", NULL};
    int rc =
        th_run_tsi((const char *[]){"backup", "setup", NULL}, env_bad, ops_out, sizeof ops_out);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(ops_out, "unusable backup directory"));

    /* a repository the postgres user cannot enter (under a 0700 directory) */
    if (geteuid() == 0) {
        char closed[PATH_MAX + 32], e_dir[PATH_MAX + 64];
        snprintf(closed, sizeof closed, "%s/closed", cl.dir);
        mkdir(closed, 0700);
        snprintf(e_dir, sizeof e_dir, "TSI_BACKUP_DIR=%s/repo", closed);
        const char *env_closed[] = {cl.e_home, cl.e_port, e_dir, NULL};
        rc = th_run_tsi((const char *[]){"backup", "setup", NULL}, env_closed, ops_out,
                        sizeof ops_out);
        assert_int_equal(rc, 1);
        assert_non_null(strstr(ops_out, "cannot reach"));
    }

    /* an external database is not tsi backup's to manage */
    const char *env_ext[] = {cl.e_home, cl.e_port, "DATABASE_URL=postgresql://db.example/tsi",
                             NULL};
    rc = th_run_tsi((const char *[]){"backup", "run", NULL}, env_ext, ops_out, sizeof ops_out);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(ops_out, "embedded cluster only"));
    /* --in-place and --target-dir together */
    ops_tsi(&cl, 1,
            (const char *[]){"backup", "restore", "--in-place", "--target-dir", "/tmp/x", NULL});
    th_private_cluster_remove(&cl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_restore_refusals, ops_teardown),
        cmocka_unit_test_teardown(test_pitr_drill, ops_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
