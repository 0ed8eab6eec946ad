/* The database away (issue 12): a private cluster (the run's shared one cannot be
 * stopped) is stopped while the writer keeps receiving rows, then started again: nothing
 * is lost, nothing is duplicated, the replay is in order (a row rewritten during the
 * outage ends with its last version), and rows spooled by a writer that was closed
 * during the outage are replayed by the next one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/proc.h"
#include "cluster_helper.h"
#include "db/ingest.h"
#include "harness.h"
#include "ingest_util.h"

static th_cluster pc; /* this test's own cluster */
static char spool[PATH_MAX + 16];
static int64_t base_minute;

static tsi_rt_row row(int64_t isect, int minute, double ci)
{
    tsi_rt_row r = iu_row(base_minute, isect, minute, ci, minute);
    r.hour_of_day = 1;
    return r;
}

static void add_minutes(tsi_ingest *in, int from, int to, double ci)
{
    tsi_error e = {0};
    for (int m = from; m < to; m++) {
        tsi_rt_row rows[10];
        for (int i = 0; i < 10; i++)
            rows[i] = row(i + 1, m, ci);
        assert_int_equal(tsi_ingest_add_rows(in, rows, 10, &e), 0);
    }
}

static tsi_ingest *open_ingest(void)
{
    tsi_ingest_config cfg = {.spool_dir = spool, .retry_min_ms = 100, .retry_max_ms = 1000};
    tsi_ingest *in = NULL;
    tsi_error e = {0};
    if (tsi_ingest_open(&in, &cfg, &e) < 0)
        fail_msg("ingest open: %s %s", e.message, e.detail);
    return in;
}

static void test_outage(void **state)
{
    (void)state;
    th_private_cluster_start(&pc, 1);
    PGconn *c = th_connect("tsi_owner");
    assert_int_equal(th_exec(c,
                             "INSERT INTO intersections (id, name, latitude, longitude, geometry) "
                             "SELECT g, 'i' || g, 38.8, -77.3, ST_SetSRID(ST_MakePoint(-77.3, "
                             "38.8), 4326) FROM generate_series(1, 10) g",
                             NULL),
                     PGRES_COMMAND_OK);
    PQfinish(c);

    tsi_ingest *in = open_ingest();
    add_minutes(in, 0, 5, 10);
    assert_int_equal(tsi_ingest_sync(in, 30000), 0);

    /* the database goes away for "5 minutes" of rows; minute 3 is rewritten meanwhile */
    th_private_cluster_stop(&pc);
    add_minutes(in, 5, 10, 20);
    add_minutes(in, 3, 4, 33);
    assert_true(tsi_ingest_sync(in, 1500) > 0);
    tsi_ingest_stats st;
    tsi_ingest_get_stats(in, &st);
    assert_false(st.connected);
    assert_true(st.db_errors > 0);
    assert_int_equal(st.spool_records, 60); /* one record per row */
    assert_int_equal(st.rows_written, 50);

    th_private_cluster_start(&pc, 0);
    assert_int_equal(tsi_ingest_sync(in, 60000), 0);
    tsi_ingest_get_stats(in, &st);
    assert_int_equal(st.rows_written, 110);
    assert_int_equal(st.replayed, 60);
    assert_true(st.connected);
    c = th_connect("tsi_reader");
    assert_int_equal(th_int(c, "SELECT count(*) FROM safety_indices_realtime"), 100);
    assert_int_equal(th_int(c, "SELECT count(DISTINCT (intersection_id, \"timestamp\")) FROM "
                               "safety_indices_realtime"),
                     100);
    /* minutes 0-2 and 4: 10; minute 3: 33 (its last version); minutes 5-9: 20 */
    assert_int_equal(th_int(c, "SELECT sum(combined_index)::int FROM safety_indices_realtime"),
                     10 * (4 * 10 + 33 + 5 * 20));
    PQfinish(c);

    /* again, but the writer is closed during the outage: its spool waits on disk */
    th_private_cluster_stop(&pc);
    add_minutes(in, 10, 15, 40);
    tsi_ingest_close(in);
    th_private_cluster_start(&pc, 0);
    in = open_ingest();
    tsi_ingest_get_stats(in, &st);
    assert_int_equal(st.spool_records, 50);
    assert_int_equal(tsi_ingest_sync(in, 60000), 0);
    tsi_ingest_get_stats(in, &st);
    assert_int_equal(st.replayed, 50);
    c = th_connect("tsi_reader");
    assert_int_equal(th_int(c, "SELECT count(*) FROM safety_indices_realtime"), 150);
    PQfinish(c);
    tsi_ingest_close(in);
}

static int teardown(void **state)
{
    (void)state;
    th_private_cluster_remove_all();
    return 0;
}

int main(void)
{
    th_require_cluster();
    /* a private cluster: its own TSI_HOME and port, set before anything reads them */
    th_private_cluster_init(&pc, "outage", 700);
    th_private_cluster_export(&pc);
    snprintf(spool, sizeof spool, "%s/spool", pc.home);
    base_minute = ((int64_t)time(NULL) / 60) * 60000 - 3600000;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_outage, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
