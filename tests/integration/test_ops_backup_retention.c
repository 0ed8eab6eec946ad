/* Backup retention under a controlled clock (issue 31, NFR-3), on a private embedded
 * cluster whose clock, and pgBackRest's, is Debian's libfaketime reading an offset from a
 * file the test moves forward a day at a time. A scripted series of 40 days: a full
 * backup every 7th day and a differential on the others, then a full backup on each of
 * the last 5 days (more fulls than a weekly schedule makes). Then pgBackRest's own
 * `info` must show:
 *   - every day of the last 30 still has its backup (daily backups kept 30 days), and the
 *     backups of the first week are gone (time-based full retention, 30 days);
 *   - WAL reaches from the oldest backup kept to now: the point-in-time window is at
 *     least 7 days (here 32) whatever the number of full backups;
 * and `tsi status --metrics` (the facts cached in tsi_ops.backup_info, as /metrics shows
 * them) agrees. The repository lives in a second directory tree that the cluster's
 * TSI_HOME does not contain (TSI_BACKUP_DIR). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <glob.h>
#include <semaphore.h>
#include <sys/mman.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ops_util.h"

#define DAYS       40
#define FULL_EVERY 7
#define LAST_FULLS 5 /* the last days take a full backup each */

static char faketime_file[PATH_MAX + 32];

static void set_day(int day)
{
    FILE *f = fopen(faketime_file, "w");
    assert_non_null(f);
    fprintf(f, "+%dd\n", day);
    fclose(f);
    chmod(faketime_file, 0644);
    usleep(1300 * 1000); /* FAKETIME_CACHE_DURATION=1: every process rereads it */
}

static void run_env(const char *const *env, int want, const char *const *args)
{
    int rc = th_run_tsi(args, env, ops_out, sizeof ops_out);
    if (rc != want)
        fail_msg("tsi %s %s exited %d (want %d):\n%s", args[0], args[1] ? args[1] : "", rc, want,
                 ops_out);
}

/* the value of a sample line "name{labels} value" (or "name value") in ops_out */
static double metric(const char *line_prefix)
{
    char want[256];
    snprintf(want, sizeof want, "\n%s", line_prefix); /* a sample line, not its # HELP */
    const char *p = strstr(ops_out, want);
    if (!p)
        fail_msg("no '%s' in:\n%s", line_prefix, ops_out);
    return strtod(p + strlen(want), NULL);
}

static void test_retention_series(void **state)
{
    (void)state;
    char lib[PATH_MAX] = "";
    glob_t g;
    if (glob("/usr/lib/*/faketime/libfaketime.so.1", 0, NULL, &g) == 0 && g.gl_pathc > 0)
        snprintf(lib, sizeof lib, "%s", g.gl_pathv[0]);
    globfree(&g);
    if (!lib[0])
        fail_msg("libfaketime is missing: apt-get install faketime (scripts/deps installs it)");

    ops_cluster cl;
    ops_cluster_init(&cl, "bkret", 1500);
    /* the repository: a second tree, not inside TSI_HOME nor the data directory */
    char repo_root[] = "/tmp/tsi-repo-XXXXXX";
    assert_non_null(mkdtemp(repo_root));
    chmod(repo_root, 0755);
    char repo[PATH_MAX], e_repo[PATH_MAX + 32], e_lib[PATH_MAX + 16], e_file[PATH_MAX + 64];
    snprintf(repo, sizeof repo, "%s/repo", repo_root);
    snprintf(e_repo, sizeof e_repo, "TSI_BACKUP_DIR=%s", repo);
    snprintf(faketime_file, sizeof faketime_file, "%s/faketime", cl.dir);
    snprintf(e_lib, sizeof e_lib, "LD_PRELOAD=%s", lib);
    snprintf(e_file, sizeof e_file, "FAKETIME_TIMESTAMP_FILE=%s", faketime_file);
    /* libfaketime shares a semaphore and a memory object between the processes of one
     * tree; left to itself, the first one (tsi, root) makes them 0600 and the postgres
     * user's pg_ctl and server then fail on them ("sem_open failed ... Permission denied").
     * The test makes both, readable and writable by all, and hands them down. */
    char sem_name[64], shm_name[64], e_shared[160];
    snprintf(sem_name, sizeof sem_name, "/tsi_bkret_sem_%d", (int)getpid());
    snprintf(shm_name, sizeof shm_name, "/tsi_bkret_shm_%d", (int)getpid());
    mode_t old_mask = umask(0);
    sem_t *ft_sem = sem_open(sem_name, O_CREAT, 0666, 1);
    int ft_shm = shm_open(shm_name, O_CREAT | O_RDWR, 0666);
    umask(old_mask);
    assert_true(ft_sem != SEM_FAILED && ft_shm >= 0);
    assert_int_equal(ftruncate(ft_shm, 4096), 0); /* zeroed: no ticks, no file index */
    close(ft_shm);
    sem_close(ft_sem);
    snprintf(e_shared, sizeof e_shared, "FAKETIME_SHARED=%s %s", sem_name, shm_name);
    const char *env[] = {cl.e_home,
                         e_shared,
                         cl.e_port,
                         "TSI_DB_NAME=tsi",
                         "TSI_LOG_LEVEL=warn",
                         e_repo,
                         e_lib,
                         e_file,
                         "FAKETIME_CACHE_DURATION=1",
                         "FAKETIME_DONT_FAKE_MONOTONIC=1",
                         "ASAN_OPTIONS=detect_leaks=0:verify_asan_link_order=0",
                         NULL};
    set_day(0);
    run_env(env, 0, (const char *[]){"db", "start", NULL});
    run_env(env, 0, (const char *[]){"migrate", NULL});
    run_env(env, 0, (const char *[]){"backup", "setup", NULL});

    char admin[4096];
    ops_admin_conninfo(&cl, admin, sizeof admin);
    PGconn *c = ops_connect(admin);
    /* the schedule exists; the series runs the backups itself (a pg_cron job firing as
     * the clock jumps would take the repository's lock) */
    assert_int_equal(th_int(c, "SELECT count(*) FROM cron.job WHERE jobname IN "
                               "('tsi-backup-full', 'tsi-backup-diff', 'tsi-backup-info')"),
                     3);
    char *info_job = th_value(c, "SELECT command FROM cron.job WHERE jobname = 'tsi-backup-info'");
    ops_exec(c, "SELECT cron.unschedule(jobname) FROM cron.job WHERE jobname LIKE 'tsi-backup-%'");
    /* before any backup: the facts say so */
    assert_int_equal(th_int(c, "SELECT backups FROM tsi_ops.backup_info"), 0);
    long long t0 = th_int(c, "SELECT extract(epoch FROM now())::bigint");

    for (int day = 0; day < DAYS; day++) {
        if (day > 0)
            set_day(day);
        int full = day % FULL_EVERY == 0 || day >= DAYS - LAST_FULLS;
        ops_exec(c, "CREATE TABLE IF NOT EXISTS series (day int)");
        char sql[128];
        snprintf(sql, sizeof sql, "INSERT INTO series VALUES (%d)", day);
        ops_exec(c, sql);
        run_env(env, 0, (const char *[]){"backup", "run", "--type", full ? "full" : "diff", NULL});
    }
    long long now = th_int(c, "SELECT extract(epoch FROM now())::bigint");
    /* the cluster's clock moved with the file: 39 days on */
    assert_true(now - t0 >= (DAYS - 1) * 86400LL && now - t0 < DAYS * 86400LL);

    /* pgBackRest's own account of the repository */
    char *argv[] = {"pgbackrest", (char[PATH_MAX + 32]){0}, "--stanza=tsi", "--output=json", "info",
                    NULL};
    snprintf(argv[1], PATH_MAX + 32, "--config=%s/pgbackrest.conf", repo);
    static char json[1 << 20];
    int rc = tsi_proc_run(argv, geteuid() == 0 ? "postgres" : NULL, json, sizeof json, NULL);
    if (rc != 0)
        fail_msg("pgbackrest info: %s", json);
    const char *p[2] = {json, NULL};
    char snow[32];
    snprintf(snow, sizeof snow, "%lld", now);
    p[1] = snow;
    /* backups as (type, age in whole days at the end of the series, WAL start) */
    static const char SQL[] =
        "CREATE TEMP TABLE b AS SELECT x->>'type' AS type,\n"
        "  (($2::bigint - (x->'timestamp'->>'stop')::bigint) / 86400)::int AS age_days,\n"
        "  ($2::bigint - (x->'timestamp'->>'stop')::bigint) AS age_s,\n"
        "  x->'archive'->>'start' AS wal_start\n"
        "  FROM jsonb_array_elements($1::jsonb -> 0 -> 'backup') x";
    PGresult *r = PQexecParams(c, SQL, 2, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        fail_msg("%s", PQresultErrorMessage(r));
    PQclear(r);
    r = PQexecParams(c,
                     "CREATE TEMP TABLE a AS SELECT min(x->>'min') AS wal_min FROM "
                     "jsonb_array_elements($1::jsonb -> 0 -> 'archive') x",
                     1, NULL, p, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);

    /* the first week went (its full is older than the newest full that is 30+ days old);
     * the full of day 7 (32 days old) stays, and everything after it: days 7..39 */
    assert_int_equal(th_int(c, "SELECT count(*) FROM b"), DAYS - FULL_EVERY);
    assert_int_equal(th_int(c, "SELECT max(age_days) FROM b"), DAYS - 1 - FULL_EVERY);
    assert_int_equal(th_int(c, "SELECT count(*) FROM b WHERE age_days = 32 AND type = 'full'"), 1);
    /* daily backups kept 30 days: one for each of the last 31 days (today included) */
    assert_int_equal(th_int(c, "SELECT count(DISTINCT age_days) FROM b WHERE age_days <= 30"), 31);
    assert_int_equal(th_int(c, "SELECT count(*) FROM b WHERE type = 'full'"),
                     1 + 3 + LAST_FULLS); /* days 7, 14, 21, 28 and 35..39 */
    /* WAL is there from the oldest backup kept: recovery reaches back 32 days */
    assert_int_equal(th_int(c, "SELECT count(*) FROM a, (SELECT wal_start FROM b ORDER BY age_s "
                               "DESC LIMIT 1) o WHERE a.wal_min <= o.wal_start"),
                     1);
    long long window = th_int(c, "SELECT max(age_s) FROM b");
    assert_true(window >= 7 * 86400LL);
    assert_true(window >= 30 * 86400LL);

    /* the cached facts (tsi status, /metrics): refreshed by `tsi backup run`, and by the
     * pg_cron job's own command */
    ops_exec(c, "UPDATE tsi_ops.backup_info SET refreshed_at = NULL, last_full = NULL");
    ops_exec(c, info_job);
    free(info_job);
    assert_int_equal(th_int(c, "SELECT count(*) FROM tsi_ops.backup_info WHERE error IS NULL "
                               "AND refreshed_at IS NOT NULL"),
                     1);
    run_env(env, 0, (const char *[]){"status", "--metrics", NULL});
    double w = metric("tsi_backup_recovery_window_seconds ");
    /* the same window from the cached facts, refreshed at another moment: within an hour of
     * it either way (a strict "not smaller" failed now and then: the two are not taken from
     * the same instants of the oldest backup) */
    if (!(w > (double)window - 3600 && w < (double)window + 3600))
        fail_msg("tsi_backup_recovery_window_seconds %.0f, window from pgbackrest info %lld", w,
                 window);
    double lf = metric("tsi_backup_last_success_timestamp_seconds{type=\"full\"} ");
    assert_true(lf <= (double)now && lf > (double)now - 3600);
    double ld = metric("tsi_backup_last_success_timestamp_seconds{type=\"diff\"} ");
    /* the newest differential is day 34's: 5 days before the end */
    assert_true(ld <= (double)now - 5 * 86400 + 3600 && ld > (double)now - 6 * 86400);
    assert_int_equal((int)metric("tsi_backup_sets "), DAYS - FULL_EVERY);
    assert_int_equal((int)metric("tsi_backup_info_refresh_failed "), 0);
    run_env(env, 0, (const char *[]){"status", NULL});
    assert_non_null(strstr(ops_out, "backups: 33 in the repository; point-in-time window 32."));

    /* the repository is where TSI_BACKUP_DIR says, and nothing of it under TSI_HOME */
    char path[PATH_MAX + 64];
    struct stat st;
    snprintf(path, sizeof path, "%s/backup/tsi/backup.info", repo);
    assert_int_equal(stat(path, &st), 0);
    snprintf(path, sizeof path, "%s/archive/tsi/archive.info", repo);
    assert_int_equal(stat(path, &st), 0);
    snprintf(path, sizeof path, "%s/backup", cl.home);
    assert_int_not_equal(stat(path, &st), 0);
    PQfinish(c);

    run_env(env, 0, (const char *[]){"db", "stop", NULL});
    char *rm[] = {"rm", "-rf", repo_root, NULL};
    tsi_proc_run(rm, NULL, NULL, 0, NULL);
    sem_unlink(sem_name);
    shm_unlink(shm_name);
    th_private_cluster_remove(&cl);
}

int main(void)
{
    (void)ops_pick_port; /* ops_util.h helpers this test has no use for */
    (void)ops_pg_ctl;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_retention_series, ops_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
