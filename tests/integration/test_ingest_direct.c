/* The database writer's two ways of writing realtime rows (issue 12, spool replay rate):
 * COPY straight into safety_indices_realtime while a part's keys are new, and the staged
 * upsert (COPY into a temporary table, INSERT ... ON CONFLICT DO UPDATE) when the table
 * refuses that COPY. Whichever way a part goes, the table must end as the upsert leaves it:
 * the last version of every key in spool order, rows of unknown intersections dropped and
 * counted (every record of them), a row a CHECK refuses dropped alone and counted. One
 * writer connection, 10 records a batch, each stage appended in one call and synced before
 * the next, so the test knows which batch goes which way:
 *   A  new keys (a key twice, an orphan)             direct
 *   B  one key that exists among new ones             direct refused (23505), staged
 *   C  8 batches of new keys                          staged (the 8 after a refusal)
 *   D  new keys                                       direct again
 *   E  new keys, one value over its CHECK             direct refused (23514), staged refused,
 *                                                     record by record: 9 written, 1 dropped
 * The expected table is computed by a model of the spool kept in the test. */
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

#include "db/ingest.h"
#include "harness.h"
#include "ingest_util.h"

#define N_ISECT 3 /* intersections 1..3 exist; 99 does not */
#define MINUTES 60
#define ORPHAN  99

static char dbname[64];
static char spool[PATH_MAX];
static int64_t base_minute;

/* the model: per key (intersection 1..3, minute 0..59) the last written version */
static struct {
    bool have;
    double ci;
    int volume;
} model[N_ISECT + 1][MINUTES];

static int setup(void **state)
{
    (void)state;
    th_db_create(dbname);
    char tmpl[] = "/tmp/tsi-spool-direct-XXXXXX";
    if (!mkdtemp(tmpl))
        return -1;
    snprintf(spool, sizeof spool, "%s", tmpl);
    base_minute = ((int64_t)time(NULL) / 60) * 60000 - 2 * 3600000LL; /* two hours ago */
    PGconn *c = th_connect("tsi_owner");
    th_sqlf(c,
            "INSERT INTO intersections (id, name, latitude, longitude) SELECT g, 'i' || g, 38.8, "
            "-77.3 FROM generate_series(1, %d) g",
            N_ISECT);
    PQfinish(c);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    iu_teardown(spool, dbname);
    return 0;
}

static tsi_rt_row row(int64_t isect, int minute, double ci, int volume)
{
    tsi_rt_row r = iu_row(base_minute, isect, minute, ci, volume);
    r.hour_of_day = 4;
    r.day_of_week = 5;
    r.avg_speed = 12.5;
    r.hard_braking_count = 1;
    return r;
}

/* appends rows in one call, applies them to the model (valid versions only), waits until
 * the writer has written them */
static void stage(tsi_ingest *in, const tsi_rt_row *rows, size_t n)
{
    tsi_error e = {0};
    assert_int_equal(tsi_ingest_add_rows(in, rows, n, &e), 0);
    for (size_t i = 0; i < n; i++) {
        const tsi_rt_row *r = &rows[i];
        int m = (int)((r->minute_ms - base_minute) / 60000);
        if (r->intersection_id < 1 || r->intersection_id > N_ISECT || r->combined_index > 100)
            continue; /* an orphan, or refused by the CHECK */
        model[r->intersection_id][m].have = true;
        model[r->intersection_id][m].ci = r->combined_index;
        model[r->intersection_id][m].volume = r->traffic_volume;
    }
    assert_int_equal(tsi_ingest_sync(in, 30000), 0);
}

/* the table equals the model: same keys, same values */
static void table_is_model(void)
{
    PGconn *c = th_connect("tsi_reader");
    long long keys = 0, vol = 0;
    double ci = 0;
    for (int i = 1; i <= N_ISECT; i++)
        for (int m = 0; m < MINUTES; m++)
            if (model[i][m].have) {
                keys++;
                ci += model[i][m].ci;
                vol += model[i][m].volume;
                assert_int_equal(th_intf(c,
                                         "SELECT count(*) FROM safety_indices_realtime WHERE "
                                         "intersection_id = %d AND \"timestamp\" = "
                                         "to_timestamp(%lld / 1000.0) AND combined_index = %.17g "
                                         "AND traffic_volume = %d",
                                         i, (long long)(base_minute + m * 60000LL), model[i][m].ci,
                                         model[i][m].volume),
                                 1);
            }
    assert_int_equal(th_int(c, "SELECT count(*) FROM safety_indices_realtime"), keys);
    assert_true(th_double(c, "SELECT sum(combined_index) FROM safety_indices_realtime") == ci);
    assert_int_equal(th_int(c, "SELECT sum(traffic_volume) FROM safety_indices_realtime"), vol);
    /* NULLs stay NULL, features written, both ways */
    assert_int_equal(th_int(c, "SELECT count(*) FROM safety_indices_realtime WHERE "
                               "combined_index_eb IS NULL AND speed_stddev IS NULL AND avg_speed "
                               "= 12.5 AND hard_braking_count = 1 AND hour_of_day = 4"),
                     keys);
    PQfinish(c);
}

static void expect_stats(tsi_ingest *in, long long direct, long long staged, long long refused,
                         long long written, long long orphans, long long rejected,
                         long long db_errors)
{
    tsi_ingest_stats st;
    tsi_ingest_get_stats(in, &st);
    assert_int_equal(st.direct_tx, direct);
    assert_int_equal(st.staged_tx, staged);
    assert_int_equal(st.direct_refused, refused);
    assert_int_equal(st.rows_written, written);
    assert_int_equal(st.orphans, orphans);
    assert_int_equal(st.rejected, rejected);
    assert_int_equal(st.db_errors, db_errors);
    assert_int_equal(st.spool_records, 0);
}

static void test_direct_and_staged(void **state)
{
    (void)state;
    tsi_ingest_config cfg = {.spool_dir = spool,
                             .batch_rows = 10,
                             .retry_min_ms = 50,
                             .retry_max_ms = 200,
                             .connections = 1};
    tsi_ingest *in = NULL;
    tsi_error e = {0};
    if (tsi_ingest_open(&in, &cfg, &e) < 0)
        fail_msg("ingest open: %s %s", e.message, e.detail);
    /* A: key (1, 0) twice (the second wins), an orphan: 10 records, 8 keys */
    tsi_rt_row a[10] = {row(1, 0, 10, 1),     row(2, 0, 20, 2), row(3, 0, 30, 3), row(1, 0, 11, 4),
                        row(ORPHAN, 0, 5, 5), row(1, 1, 12, 6), row(2, 1, 21, 7), row(3, 1, 31, 8),
                        row(1, 2, 13, 9),     row(2, 2, 22, 10)};
    stage(in, a, 10);
    expect_stats(in, 1, 0, 0, 9, 1, 0, 0);
    table_is_model();
    /* B: (2, 1) exists: the direct COPY is refused, the staged upsert replaces it */
    tsi_rt_row b[10];
    b[0] = row(2, 1, 77, 70);
    for (int i = 1; i < 10; i++)
        b[i] = row(i % 3 + 1, 3 + i, 40 + i, 100 + i);
    stage(in, b, 10);
    expect_stats(in, 1, 1, 1, 19, 1, 0, 0);
    table_is_model();
    /* C: eight batches of new keys, staged (the eight parts after a refusal) */
    tsi_rt_row c[80];
    for (int i = 0; i < 80; i++)
        c[i] = row(i % 3 + 1, 13 + i / 3, (i * 7) % 100, 200 + i);
    stage(in, c, 80);
    expect_stats(in, 1, 9, 1, 99, 1, 0, 0);
    table_is_model();
    /* D: new keys, direct again; an orphan counted */
    tsi_rt_row d[10];
    for (int i = 0; i < 9; i++)
        d[i] = row(i % 3 + 1, 40 + i / 3, 60 + i, 300 + i);
    d[9] = row(ORPHAN, 40, 1, 1);
    stage(in, d, 10);
    expect_stats(in, 2, 9, 1, 108, 2, 0, 0);
    table_is_model();
    /* E: one value over combined_index's CHECK: the direct COPY is refused (not a writer
     * error), the staged upsert too (a database error, as before), then record by record,
     * staged: 9 transactions, 1 record dropped and its refusal counted */
    tsi_rt_row f[10];
    for (int i = 0; i < 10; i++)
        f[i] = row(i % 3 + 1, 45 + i / 3, i == 4 ? 150 : 70 + i, 400 + i);
    stage(in, f, 10);
    expect_stats(in, 2, 18, 2, 117, 2, 1, 2);
    table_is_model();
    tsi_ingest_close(in);
}

/* a batch made only of rows of unknown intersections: nothing written, every record
 * counted, no error (the direct COPY writes zero rows) */
static void test_only_orphans(void **state)
{
    (void)state;
    PGconn *o = th_connect("tsi_owner");
    long long before = th_int(o, "SELECT count(*) FROM safety_indices_realtime");
    tsi_ingest_config cfg = {.spool_dir = spool, .batch_rows = 10, .connections = 2};
    tsi_ingest *in = NULL;
    tsi_error e = {0};
    if (tsi_ingest_open(&in, &cfg, &e) < 0)
        fail_msg("ingest open: %s %s", e.message, e.detail);
    tsi_rt_row r[6];
    for (int i = 0; i < 6; i++)
        r[i] = row(ORPHAN + i % 2, 50 + i, 10, 1); /* 99 and 100, two connections' parts */
    assert_int_equal(tsi_ingest_add_rows(in, r, 6, &e), 0);
    assert_int_equal(tsi_ingest_sync(in, 30000), 0);
    tsi_ingest_stats st;
    tsi_ingest_get_stats(in, &st);
    assert_int_equal(st.orphans, 6);
    assert_int_equal(st.rows_written, 0);
    assert_int_equal(st.db_errors, 0);
    assert_int_equal(st.direct_tx, 2);
    assert_int_equal(th_int(o, "SELECT count(*) FROM safety_indices_realtime"), before);
    tsi_ingest_close(in);
    PQfinish(o);
}

int main(void)
{
    th_require_cluster();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_direct_and_staged),
        cmocka_unit_test(test_only_orphans),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
