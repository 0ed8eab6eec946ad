/* `tsi status` / tsi_status_collect and `tsi audit` (issue 17) on the harness cluster:
 * every figure is checked against PostgreSQL's own answer to an independent query (or
 * against what the test wrote), and schema changes made by the test appear in the audit
 * with their role, command and object. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/proc.h"
#include "db/conn.h"
#include "harness.h"
#include "db/status.h"

static char out[1 << 17];

static const tsi_status_table *find_table(const tsi_status *s, const char *name)
{
    for (size_t i = 0; i < s->ntables; i++)
        if (strcmp(s->tables[i].name, name) == 0)
            return &s->tables[i];
    return NULL;
}

static void test_status_facts(void **state)
{
    (void)state;
    PGconn *own = th_connect("tsi_owner");
    /* 25 intersections and 25 x 40 realtime rows: figures known by construction */
    assert_int_equal(th_exec(own,
                             "INSERT INTO intersections (id, name, latitude, longitude) "
                             "SELECT i, 'i' || i, 38.8 + i * 0.001, -77.2 FROM "
                             "generate_series(1, 25) i",
                             NULL),
                     PGRES_COMMAND_OK);
    assert_int_equal(th_exec(own,
                             "INSERT INTO safety_indices_realtime (intersection_id, "
                             "\"timestamp\", combined_index, traffic_volume, vru_count, "
                             "vehicle_event_count, vru_event_count, hour_of_day, day_of_week) "
                             "SELECT i, date_trunc('hour', now()) - m * interval '1 minute', "
                             "50, 1, 0, 0, 0, 0, 0 FROM generate_series(1, 25) i, "
                             "generate_series(1, 40) m",
                             NULL),
                     PGRES_COMMAND_OK);
    /* this session's pending insert counts reach the statistics first, then ANALYZE sets
     * n_live_tup to the exact count of these small tables */
    assert_int_equal(th_exec(own, "SELECT pg_stat_force_next_flush()", NULL), PGRES_TUPLES_OK);
    assert_int_equal(th_exec(own, "SELECT 1", NULL), PGRES_TUPLES_OK);
    assert_int_equal(th_exec(own, "ANALYZE intersections, safety_indices_realtime", NULL),
                     PGRES_COMMAND_OK);

    /* a slow statement for pg_stat_statements, and three idle writer connections */
    PGconn *rd = th_connect("tsi_reader");
    assert_int_equal(th_exec(rd, "SELECT pg_sleep(0.25)", NULL), PGRES_TUPLES_OK);
    PGconn *w[3];
    for (int i = 0; i < 3; i++)
        w[i] = th_connect("tsi_writer");

    /* a spool with two files of 100 and 250 bytes, one in a subdirectory */
    char spool[] = "/tmp/tsi-ops-spool-XXXXXX";
    assert_non_null(mkdtemp(spool));
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/a.spool", spool);
    FILE *f = fopen(path, "w");
    for (int i = 0; i < 100; i++)
        fputc('x', f);
    fclose(f);
    snprintf(path, sizeof path, "%s/2026-11-25", spool);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/2026-11-25/b.spool", spool);
    f = fopen(path, "w");
    for (int i = 0; i < 250; i++)
        fputc('y', f);
    fclose(f);

    tsi_status s;
    tsi_error e = {0};
    if (tsi_status_collect(rd, spool, &s, &e) != 0)
        fail_msg("collect: %s %s", e.message, e.detail);

    assert_string_equal(s.database, th_db_name());
    assert_false(s.in_recovery);
    PGconn *adm = th_connect("postgres");
    /* database size: within 1 MB of PostgreSQL's answer a moment later */
    long long dbsize = th_int(adm, "SELECT pg_database_size(current_database())");
    assert_true(llabs(s.database_bytes - dbsize) < 1024 * 1024);

    const tsi_status_table *t = find_table(&s, "intersections");
    assert_non_null(t);
    assert_int_equal(t->rows, 25);
    assert_string_equal(t->parent, "");
    assert_int_equal(t->total_bytes, th_int(adm, "SELECT pg_total_relation_size('intersections')"));
    assert_int_equal(t->index_bytes, th_int(adm, "SELECT pg_indexes_size('intersections')"));
    t = find_table(&s, "safety_indices_realtime");
    assert_non_null(t);
    assert_int_equal(t->rows, 25 * 40);
    /* the parent sums its partitions: computed here from pg_inherits, another way */
    assert_int_equal(t->total_bytes,
                     th_int(adm, "SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits "
                                 "WHERE inhparent = 'safety_indices_realtime'::regclass"));
    /* each partition is listed under its parent */
    long long parts = th_int(adm, "SELECT count(*) FROM pg_inherits WHERE inhparent = "
                                  "'safety_indices_realtime'::regclass");
    long long listed = 0, rows_in_parts = 0;
    for (size_t i = 0; i < s.ntables; i++)
        if (strcmp(s.tables[i].parent, "safety_indices_realtime") == 0) {
            listed++;
            rows_in_parts += s.tables[i].rows;
        }
    assert_int_equal(listed, parts);
    assert_int_equal(rows_in_parts, 25 * 40);
    /* extension tables (PostGIS's spatial_ref_sys) are not the application's */
    assert_null(find_table(&s, "spatial_ref_sys"));

    /* partitions ahead, by pg_partman's own reckoning of each child's start */
    long long ahead = th_int(
        adm, "SELECT count(*) FROM partman.show_partitions('public.safety_indices_realtime') "
             "p, LATERAL partman.show_partition_info(p.partition_schemaname || '.' || "
             "p.partition_tablename) i WHERE i.child_start_time > now()");
    int found = 0;
    for (size_t i = 0; i < s.nahead; i++)
        if (strcmp(s.ahead[i].parent, "safety_indices_realtime") == 0) {
            found = 1;
            assert_int_equal(s.ahead[i].ahead, ahead);
            assert_int_equal(s.ahead[i].partitions, parts);
        }
    assert_true(found);
    assert_true(ahead >= 1);

    /* the slow statement: mean at least the 250 ms it slept */
    found = 0;
    for (size_t i = 0; i < s.nstmts; i++)
        if (strstr(s.stmts[i].query, "pg_sleep")) {
            found = 1;
            assert_true(s.stmts[i].mean_ms >= 250.0);
            assert_true(s.stmts[i].calls >= 1);
        }
    assert_true(found);

    /* three idle writers in this database */
    int writers = 0;
    for (size_t i = 0; i < s.nconns; i++)
        if (strcmp(s.conns[i].role, "tsi_writer") == 0 && strcmp(s.conns[i].state, "idle") == 0)
            writers = s.conns[i].count;
    assert_int_equal(writers, 3);

    assert_true(s.spool_present);
    assert_int_equal(s.spool_files, 2);
    assert_int_equal(s.spool_bytes, 350);

    /* the exposition carries the same figures */
    tsi_buf b = TSI_BUF_INIT;
    tsi_status_prometheus(&s, &b);
    char line[256];
    snprintf(line, sizeof line, "tsi_db_table_rows{table=\"intersections\",parent=\"\"} 25\n");
    assert_non_null(strstr(tsi_buf_cstr(&b), line));
    snprintf(line, sizeof line, "tsi_db_partitions_ahead{table=\"safety_indices_realtime\"} %lld\n",
             ahead);
    assert_non_null(strstr(tsi_buf_cstr(&b), line));
    assert_non_null(strstr(tsi_buf_cstr(&b), "tsi_spool_bytes 350\n"));
    assert_non_null(
        strstr(tsi_buf_cstr(&b), "tsi_db_connections{role=\"tsi_writer\",state=\"idle\"} 3\n"));
    tsi_buf_free(&b);
    tsi_status_free(&s);
    tsi_status_free(&s); /* twice is safe */

    /* promtool (Debian `prometheus`) accepts the exposition of `tsi status --metrics` */
    int rc = th_run_tsi((const char *[]){"status", "--metrics", NULL}, NULL, out, sizeof out);
    assert_int_equal(rc, 0);
    if (access("/usr/bin/promtool", X_OK) == 0) {
        char mpath[] = "/tmp/tsi-ops-metrics-XXXXXX";
        int fd = mkstemp(mpath);
        assert_int_equal(write(fd, out, strlen(out)), (ssize_t)strlen(out));
        close(fd);
        char cmd[512];
        snprintf(cmd, sizeof cmd, "promtool check metrics < %s", mpath);
        char *argv[] = {"sh", "-c", cmd, NULL};
        char pout[8192];
        rc = tsi_proc_run(argv, NULL, pout, sizeof pout, NULL);
        unlink(mpath);
        if (rc != 0)
            fail_msg("promtool check metrics refused the exposition:\n%s", pout);
    } else {
        fail_msg("promtool is missing: apt-get install prometheus (the issue's test needs it)");
    }

    /* and for a person */
    rc = th_run_tsi((const char *[]){"status", NULL}, NULL, out, sizeof out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "safety_indices_realtime"));
    assert_non_null(strstr(out, "ready ahead"));
    assert_non_null(strstr(out, "pg_sleep"));

    for (int i = 0; i < 3; i++)
        PQfinish(w[i]);
    PQfinish(rd);
    PQfinish(adm);
    PQfinish(own);
    char *argv[] = {"rm", "-rf", spool, NULL};
    tsi_proc_run(argv, NULL, NULL, 0, NULL);
}

/* job last-success age from job_runs (migration 010: job, at, started, finished, status) */
static void test_status_jobs(void **state)
{
    (void)state;
    PGconn *own = th_connect("tsi_owner");
    char st[8];
    int rc = th_exec(own,
                     "INSERT INTO job_runs (job, at, started, finished, status, error) VALUES "
                     "('hourly', now(), now() - interval '121 seconds', now() - interval '120 "
                     "seconds', 'ok', NULL),"
                     "('hourly', now(), now() - interval '3601 seconds', now() - interval '3600 "
                     "seconds', 'ok', NULL),"
                     "('hourly', now(), now() - interval '61 seconds', now() - interval '60 "
                     "seconds', 'failed', 'boom'),"
                     "('daily', now(), now() - interval '11 seconds', now() - interval '10 "
                     "seconds', 'failed', 'boom')",
                     st);
    if (rc != PGRES_COMMAND_OK)
        fail_msg("cannot write job_runs (SQLSTATE %s): has migration 010 changed its shape? "
                 "status.c's SQL_JOB_RUNS must follow it",
                 st);
    PGconn *rd = th_connect("tsi_reader");
    tsi_status s;
    tsi_error e = {0};
    assert_int_equal(tsi_status_collect(rd, NULL, &s, &e), 0);
    int seen = 0;
    for (size_t i = 0; i < s.njobs; i++) {
        if (strcmp(s.jobs[i].source, "job_runs") != 0)
            continue;
        if (strcmp(s.jobs[i].name, "hourly") == 0) {
            /* the newest success finished 120 s before the insert (failures do not count) */
            assert_true(s.jobs[i].last_success_age_s >= 120.0);
            assert_true(s.jobs[i].last_success_age_s < 180.0);
            seen++;
        } else if (strcmp(s.jobs[i].name, "daily") == 0) {
            assert_true(s.jobs[i].last_success_age_s < 0); /* never succeeded */
            seen++;
        }
    }
    assert_int_equal(seen, 2);
    assert_false(s.spool_present);
    tsi_buf b = TSI_BUF_INIT;
    tsi_status_prometheus(&s, &b);
    assert_non_null(
        strstr(tsi_buf_cstr(&b), "tsi_job_succeeded{job=\"daily\",source=\"job_runs\"} 0\n"));
    assert_non_null(
        strstr(tsi_buf_cstr(&b), "tsi_job_succeeded{job=\"hourly\",source=\"job_runs\"} 1\n"));
    assert_non_null(
        strstr(tsi_buf_cstr(&b),
               "tsi_job_last_success_age_seconds{job=\"hourly\",source=\"job_runs\"} 1"));
    assert_null(strstr(tsi_buf_cstr(&b), "tsi_job_last_success_age_seconds{job=\"daily\""));
    tsi_buf_free(&b);
    tsi_status_free(&s);
    PQfinish(rd);
    PQfinish(own);
}

static void test_audit(void **state)
{
    (void)state;
    char table[64], sql[512];
    snprintf(table, sizeof table, "audit_probe_%d", (int)getpid());
    PGconn *own = th_connect("tsi_owner");
    snprintf(sql, sizeof sql, "CREATE TABLE %s (a int)", table);
    assert_int_equal(th_exec(own, sql, NULL), PGRES_COMMAND_OK);
    snprintf(sql, sizeof sql, "ALTER TABLE %s ADD COLUMN \"b,\"\"c\" text", table);
    assert_int_equal(th_exec(own, sql, NULL), PGRES_COMMAND_OK);
    snprintf(sql, sizeof sql, "DROP TABLE %s", table);
    assert_int_equal(th_exec(own, sql, NULL), PGRES_COMMAND_OK);
    PQfinish(own);

    /* the log collector writes asynchronously: wait for the DROP line */
    char want_obj[128];
    snprintf(want_obj, sizeof want_obj, "\"object\":\"public.%s\"", table);
    int rc = -1;
    for (int i = 0; i < 100; i++) {
        rc = th_run_tsi((const char *[]){"audit", "--db", th_db_name(), "--since", "1h", "--json",
                                         "--limit", "1000", NULL},
                        NULL, out, sizeof out);
        if (rc == 0 && strstr(out, "\"command\":\"DROP TABLE\""))
            break;
        usleep(100000);
    }
    assert_int_equal(rc, 0);
    /* three changes in order, each with role, database, command and object */
    const char *create = strstr(out, "\"command\":\"CREATE TABLE\"");
    const char *alter = strstr(out, "\"command\":\"ALTER TABLE\"");
    const char *drop = strstr(out, "\"command\":\"DROP TABLE\"");
    if (!create || !alter || !drop)
        fail_msg("missing changes in:\n%s", out);
    assert_true(create < alter && alter < drop);
    int lines = 0;
    for (const char *p = out; (p = strstr(p, want_obj)) != NULL; p++)
        lines++;
    assert_int_equal(lines, 3);
    assert_non_null(strstr(out, "\"role\":\"tsi_owner\""));
    char want_db[96];
    snprintf(want_db, sizeof want_db, "\"database\":\"%s\"", th_db_name());
    assert_non_null(strstr(out, want_db));
    /* the statement with its quoted comma survived the CSV round trip */
    assert_non_null(strstr(out, "ADD COLUMN \\\"b,\\\"\\\"c\\\" text"));

    /* --db filters: another database's changes are not shown */
    rc =
        th_run_tsi((const char *[]){"audit", "--db", "no_such_db", "--since", "1h", "--json", NULL},
                   NULL, out, sizeof out);
    if (rc != 0)
        fail_msg("tsi audit --db no_such_db exited %d: %s", rc, out);
    assert_null(strstr(out, table));

    /* the table for a person */
    rc = th_run_tsi((const char *[]){"audit", "--db", th_db_name(), "--since", "1h", NULL}, NULL,
                    out, sizeof out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "DROP TABLE"));

    /* hostile options */
    static const char *const bad[][3] = {
        {"--since", "5x", NULL},  {"--since", "-1d", NULL}, {"--since", "d", NULL},
        {"--since", "1dd", NULL}, {"--limit", "0", NULL},   {"--limit", "many", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rc = th_run_tsi((const char *[]){"audit", bad[i][0], bad[i][1], NULL}, NULL, out,
                        sizeof out);
        if (rc != 2)
            fail_msg("tsi audit %s %s exited %d: %s", bad[i][0], bad[i][1], rc, out);
    }
    /* a log directory that does not exist */
    rc = th_run_tsi((const char *[]){"audit", "--log-dir", "/nonexistent/log", NULL}, NULL, out,
                    sizeof out);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "cannot read the server's log directory"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_facts),
        cmocka_unit_test(test_status_jobs),
        cmocka_unit_test(test_audit),
    };
    return cmocka_run_group_tests(tests, th_db_setup, th_db_teardown);
}
