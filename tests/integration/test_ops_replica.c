/* Scale-out with a streaming read replica (issue 17): a private embedded cluster, a
 * replica made by pg_basebackup on this machine and started on another port; rows written
 * on the primary appear on the replica; with DATABASE_READ_URL pointing at the replica,
 * tsi_db_connect(TSI_ROLE_READER) lands on it (over TLS with the reader's certificate)
 * while the writer stays on the primary; the replica refuses writes; tsi status shows the
 * replica and its lag from the primary and the replay delay on the replica. */
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
#include <time.h>
#include <unistd.h>

#include "db/conn.h"
#include "db/status.h"
#include "ops_util.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* replaces port='N' in a conninfo printed by `tsi db url` */
static void with_port(const char *ci, int port, char *buf, size_t len)
{
    const char *p = strstr(ci, "port='");
    assert_non_null(p);
    const char *q = strchr(p + 6, '\'');
    assert_non_null(q);
    snprintf(buf, len, "%.*sport='%d'%s", (int)(p - ci), ci, port, q + 1);
}

static void test_read_replica(void **state)
{
    (void)state;
    ops_cluster cl;
    ops_cluster_init(&cl, "repl", 1500);
    ops_tsi(&cl, 0, (const char *[]){"db", "start", NULL});
    ops_tsi(&cl, 0, (const char *[]){"migrate", NULL});
    char admin[4096];
    ops_admin_conninfo(&cl, admin, sizeof admin);

    /* the replica: pg_basebackup over the socket as the superuser (`local replication
     * trust` in pg_hba), run as the server user into a directory it owns */
    char rdir[PATH_MAX + 16];
    snprintf(rdir, sizeof rdir, "%s/replica", cl.dir);
    assert_int_equal(mkdir(rdir, 0700), 0);
    if (geteuid() == 0) {
        uid_t uid;
        gid_t gid;
        assert_int_equal(tsi_proc_user("postgres", &uid, &gid), 0);
        assert_int_equal(chown(rdir, uid, gid), 0);
    }
    char src[4200];
    snprintf(src, sizeof src, "%s application_name=tsi_replica1", admin);
    char *bb[] = {"pg_basebackup", "-d", src, "-D", rdir, "-R", "-X", "stream", "-c", "fast", NULL};
    char bout[8192];
    int rc = tsi_proc_run(bb, geteuid() == 0 ? "postgres" : NULL, bout, sizeof bout, NULL);
    if (rc != 0)
        fail_msg("pg_basebackup: rc=%d %s", rc, bout);
    int rport = ops_pick_port(cl.port + 1);
    assert_int_equal(ops_pg_ctl(rdir, "start", rport), 0);

    char rci[PATH_MAX + 128];
    snprintf(rci, sizeof rci, "host=%s port=%d user=postgres dbname=tsi", rdir, rport);
    PGconn *replica = ops_connect(rci);
    PGconn *primary = ops_connect(admin);
    assert_int_equal(th_int(replica, "SELECT pg_is_in_recovery()::int"), 1);
    assert_int_equal(th_int(primary, "SELECT count(*) FROM pg_stat_replication WHERE "
                                     "application_name = 'tsi_replica1' AND state = 'streaming'"),
                     1);

    /* rows written on the primary appear on the replica */
    ops_exec(primary,
             "INSERT INTO intersections (id, name, latitude, longitude) "
             "SELECT i, 'r' || i, 38.8 + i * 0.0001, -77.2 FROM generate_series(1, 500) i");
    double t0 = now_s();
    long long seen = 0;
    while (now_s() - t0 < 30 &&
           (seen = th_int(replica, "SELECT count(*) FROM intersections")) < 500)
        usleep(2000);
    double lag = now_s() - t0;
    assert_int_equal(seen, 500);
    assert_int_equal(th_int(replica, "SELECT sum(id) FROM intersections"), 500 * 501 / 2);
    fprintf(stderr, "replica caught up with a 500-row insert in %.1f ms\n", lag * 1000);

    /* DATABASE_READ_URL: the reader goes to the replica, the writer stays on the primary */
    setenv("TSI_HOME", cl.home, 1);
    setenv("TSI_PG_PORT", cl.e_port + strlen("TSI_PG_PORT="), 1);
    setenv("TSI_DB_NAME", "tsi", 1);
    unsetenv("DATABASE_URL");
    ops_tsi(&cl, 0, (const char *[]){"db", "url", "--role", "tsi_reader", NULL});
    char reader[4096], read_url[4200];
    snprintf(reader, sizeof reader, "%s", ops_out);
    reader[strcspn(reader, "\n")] = '\0';
    with_port(reader, rport, read_url, sizeof read_url);
    setenv("DATABASE_READ_URL", read_url, 1);
    tsi_error e = {0};
    PGconn *rd = tsi_db_connect(TSI_ROLE_READER, NULL, &e);
    if (!rd)
        fail_msg("reader on the replica: %s %s", e.message, e.detail);
    PGconn *wr = tsi_db_connect(TSI_ROLE_WRITER, NULL, &e);
    if (!wr)
        fail_msg("writer on the primary: %s %s", e.message, e.detail);
    assert_int_equal(th_int(rd, "SELECT inet_server_port()"), rport);
    assert_int_equal(th_int(rd, "SELECT pg_is_in_recovery()::int"), 1);
    assert_int_equal(PQsslInUse(rd), 1);
    assert_int_equal(th_int(wr, "SELECT inet_server_port()"), cl.port);
    assert_int_equal(th_int(wr, "SELECT pg_is_in_recovery()::int"), 0);
    /* the writer's row reaches the reader */
    ops_exec(wr, "INSERT INTO intersections (id, name, latitude, longitude) VALUES "
                 "(1000, 'via writer', 38.9, -77.3)");
    for (int i = 0;
         i < 3000 && th_int(rd, "SELECT count(*) FROM intersections WHERE id = 1000") == 0; i++)
        usleep(10000);
    assert_int_equal(th_int(rd, "SELECT count(*) FROM intersections WHERE id = 1000"), 1);
    /* a replica is read-only, whoever asks (25006 read_only_sql_transaction) */
    char st[8];
    assert_int_equal(th_exec(rd,
                             "CREATE TEMP TABLE x (a int); INSERT INTO intersections (id, "
                             "name, latitude, longitude) VALUES (1001, 'x', 0, 0)",
                             st),
                     PGRES_FATAL_ERROR);
    assert_string_equal(st, "25006");

    /* status: the primary sees one streaming replica; the replica knows it is one */
    tsi_status s;
    /* tsi_writer lacks pg_read_all_stats: status is read as the reader (or jobs, owner) */
    PGconn *rd_primary = ops_connect(reader);
    assert_int_equal(tsi_status_collect(rd_primary, NULL, &s, &e), 0);
    PQfinish(rd_primary);
    assert_false(s.in_recovery);
    assert_int_equal((int)s.nreplicas, 1);
    assert_string_equal(s.replicas[0].name, "tsi_replica1");
    assert_string_equal(s.replicas[0].state, "streaming");
    assert_true(s.replicas[0].lag_bytes >= 0);
    tsi_status_free(&s);
    assert_int_equal(tsi_status_collect(rd, NULL, &s, &e), 0);
    assert_true(s.in_recovery);
    assert_true(s.standby_delay_s >= 0);
    assert_int_equal((int)s.nreplicas, 0);
    tsi_status_free(&s);

    /* the same through the binary: `tsi status` reads as tsi_reader, from the replica */
    char e_read[4300];
    snprintf(e_read, sizeof e_read, "DATABASE_READ_URL=%s", read_url);
    const char *env_r[] = {cl.e_home, cl.e_port, "TSI_DB_NAME=tsi", e_read, NULL};
    rc = th_run_tsi((const char *[]){"status", NULL}, env_r, ops_out, sizeof ops_out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(ops_out, "standby (read replica)"));
    unsetenv("DATABASE_READ_URL");
    ops_tsi(&cl, 0, (const char *[]){"status", NULL});
    assert_non_null(strstr(ops_out, "tsi_replica1"));
    ops_tsi(&cl, 0, (const char *[]){"status", "--metrics", NULL});
    assert_non_null(strstr(ops_out, "tsi_db_replicas 1\n"));
    assert_non_null(strstr(ops_out, "tsi_db_replication_lag_bytes{replica=\"tsi_replica1\""));

    PQfinish(rd);
    PQfinish(wr);
    PQfinish(replica);
    PQfinish(primary);
    assert_int_equal(ops_pg_ctl(rdir, "stop", rport), 0);
    ops_tsi(&cl, 0, (const char *[]){"db", "stop", NULL});
    th_private_cluster_remove(&cl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_read_replica, ops_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
