/* The database writer on several connections (issue 12, spool replay rate): a batch's
 * realtime rows are split by intersection among K connections written concurrently. The
 * same spool content (several versions of a key within a batch and across batches, rows
 * of many intersections, rows of unknown intersections, rows of an intersection whose
 * record comes later in the spool, rows the schema refuses, quality entries) replayed with
 * K = 1, 2 and 3 gives exactly the table the test computes on its own (the last valid
 * version of every key, in spool order) and the same counters; a part that fails for a
 * transient cause while the other parts commit makes the whole batch be redone, with
 * nothing lost and nothing counted twice. */
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
#include "db/ingest.h"
#include "harness.h"
#include "ingest_util.h"

#define N_KNOWN   40 /* intersections 1..40 exist from the start */
#define LATE_ID   41 /* its record comes in the middle of the spool */
#define MINUTES   20
#define BATCH     64
#define N_A       300 /* rows before the quality entries and intersection 41 */
#define N_B       300 /* rows after them */
#define N_C       200 /* more rows, in a separate call (same type run as B) */
#define N_ROWS    (N_A + N_B + N_C)
#define MAX_KEYS  ((LATE_ID + 1) * MINUTES)
#define BAD_INDEX 150.0 /* violates combined_index's CHECK (0..100) */

static char dbname[64];
static char spool[PATH_MAX];
static int64_t base_minute;

/* the spool content: every row call in order, built once */
static tsi_rt_row rows_all[N_ROWS];

/* what the test expects, computed from the content alone */
typedef struct expect {
    long long rows_written, orphans, rejected, batches, records;
    int have[MAX_KEYS]; /* 1 when the key has a row */
    double ci[MAX_KEYS];
    int volume[MAX_KEYS];
    long long keys;
} expect;
static expect want;

static unsigned lcg(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (*s >> 8) & 0xffffff;
}

static tsi_rt_row mkrow(int64_t isect, int minute, double ci, int volume)
{
    tsi_rt_row r = iu_row(base_minute, isect, minute, ci, volume);
    r.vru_count = 1;
    r.hour_of_day = 3;
    r.day_of_week = 2;
    r.avg_speed = 9.5;
    return r;
}

/* rows: mostly intersections 1..40 (keys repeat: 20 minutes), some of unknown ones
 * (1000+), some of intersection 41 (unknown before its record, known after), and one row
 * the schema refuses at fixed positions (at most one per batch of BATCH rows, so each
 * refused row costs the same two failed statements whatever K is) */
static void build_content(void)
{
    unsigned s = 12345;
    for (int i = 0; i < N_ROWS; i++) {
        unsigned u = lcg(&s);
        int64_t id;
        if (u % 23 == 0)
            id = 1000 + (int64_t)(u % 7); /* never exists */
        else if (u % 11 == 0)
            id = LATE_ID;
        else
            id = 1 + (int64_t)(lcg(&s) % N_KNOWN);
        int minute = (int)(lcg(&s) % MINUTES);
        double ci = (double)(lcg(&s) % 101);
        rows_all[i] = mkrow(id, minute, ci, i); /* the volume tells which version won */
    }
    /* intersection 7 opens the spool (test_part_fails_transiently fails its first insert) */
    rows_all[0] = mkrow(7, 0, 10, 0);
    /* refused rows: in A's second batch, B+C's first and eighth batches; each one of a key
     * whose valid version just before it (same batch) must survive it, and the second one
     * followed by a valid version in the next batch, which must win. (Each is the last
     * version of its key in its batch: a batch keeps only the last version of a key, so a
     * refused row followed by a valid one in the same batch never reaches the table and is
     * counted as written, whatever the number of connections.) */
    const int bad[3] = {100, N_A + 30, N_A + 450};
    for (int b = 0; b < 3; b++) {
        int p = bad[b], id = 1 + b * 7, minute = 3 + b;
        rows_all[p - 1] = mkrow(id, minute, 50, p - 1);
        rows_all[p] = mkrow(id, minute, BAD_INDEX, p);
        if (b == 1)
            rows_all[p + BATCH] = mkrow(id, minute, 51, p + BATCH);
    }
}

/* the model: records in spool order; intersection 41 known only after its record */
static void compute_expect(void)
{
    memset(&want, 0, sizeof want);
    for (int i = 0; i < N_ROWS; i++) {
        const tsi_rt_row *r = &rows_all[i];
        bool known = (r->intersection_id >= 1 && r->intersection_id <= N_KNOWN) ||
                     (r->intersection_id == LATE_ID && i >= N_A);
        if (!known) {
            want.orphans++;
            continue;
        }
        if (!(r->combined_index >= 0 && r->combined_index <= 100)) {
            want.rejected++;
            continue;
        }
        want.rows_written++;
        int minute = (int)((r->minute_ms - base_minute) / 60000);
        int key = (int)r->intersection_id * MINUTES + minute;
        if (!want.have[key])
            want.keys++;
        want.have[key] = 1;
        want.ci[key] = r->combined_index;
        want.volume[key] = r->traffic_volume;
    }
    /* runs of one record type: A (rows), 2 quality entries, 1 intersection, B+C (rows);
     * a batch holds at most BATCH records of one run */
    const long long runs[4] = {N_A, 2, 1, N_B + N_C};
    for (int i = 0; i < 4; i++)
        want.batches += (runs[i] + BATCH - 1) / BATCH;
    want.records = N_ROWS + 2 + 1;
}

static int setup(void **state)
{
    (void)state;
    th_db_create(dbname);
    char tmpl[] = "/tmp/tsi-spool-par-XXXXXX";
    if (!mkdtemp(tmpl))
        return -1;
    snprintf(spool, sizeof spool, "%s", tmpl);
    base_minute = ((int64_t)time(NULL) / 60) * 60000 - 90 * 60000LL; /* 90 minutes ago */
    PGconn *c = th_connect("tsi_owner");
    th_sqlf(c,
            "INSERT INTO intersections (id, name, latitude, longitude, geometry) SELECT g, "
            "'i' || g, 38.8, -77.3, ST_SetSRID(ST_MakePoint(-77.3, 38.8), 4326) FROM "
            "generate_series(1, %d) g",
            N_KNOWN);
    PQfinish(c);
    build_content();
    compute_expect();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    iu_teardown(spool, dbname);
    return 0;
}

static void reset(void)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "DELETE FROM safety_indices_realtime; DELETE FROM safety_indices_latest; "
             "DELETE FROM data_quality_log; DELETE FROM intersections WHERE id = %d",
             LATE_ID);
    iu_reset(spool, sql);
}

static tsi_ingest *open_ingest(int connections, bool paused)
{
    tsi_ingest_config cfg = {.spool_dir = spool,
                             .batch_rows = BATCH,
                             .retry_min_ms = 50,
                             .retry_max_ms = 200,
                             .connections = connections,
                             .start_paused = paused};
    tsi_ingest *in = NULL;
    tsi_error e = {0};
    if (tsi_ingest_open(&in, &cfg, &e) < 0)
        fail_msg("ingest open: %s %s", e.message, e.detail);
    return in;
}

/* the whole content into the spool, the writer paused; closed, so that the next open
 * replays it as a spool left by an earlier run */
static void spool_content(int connections)
{
    tsi_ingest *in = open_ingest(connections, true);
    tsi_error e = {0};
    assert_int_equal(tsi_ingest_add_rows(in, rows_all, N_A, &e), 0);
    tsi_dq_row dq[2];
    memset(dq, 0, sizeof dq);
    for (int i = 0; i < 2; i++) {
        dq[i].minute_ms = base_minute;
        dq[i].intersection_id = i == 0 ? 5 : -1;
        snprintf(dq[i].issue_type, sizeof dq[i].issue_type, "unmatched_message");
        snprintf(dq[i].severity, sizeof dq[i].severity, "warning");
        snprintf(dq[i].message, sizeof dq[i].message, "entry %d", i);
        snprintf(dq[i].metadata, sizeof dq[i].metadata, "{\"n\":%d}", i);
    }
    assert_int_equal(tsi_ingest_add_dq(in, dq, 2, &e), 0);
    tsi_isect_row is;
    memset(&is, 0, sizeof is);
    is.id = LATE_ID;
    snprintf(is.name, sizeof is.name, "late");
    is.latitude = 38.9;
    is.longitude = -77.2;
    is.lane_count = 4;
    is.revision = 1;
    assert_int_equal(tsi_ingest_add_isects(in, &is, 1, &e), 0);
    assert_int_equal(tsi_ingest_add_rows(in, rows_all + N_A, N_B, &e), 0);
    assert_int_equal(tsi_ingest_add_rows(in, rows_all + N_A + N_B, N_C, &e), 0);
    tsi_ingest_stats st;
    tsi_ingest_get_stats(in, &st);
    assert_int_equal(st.spool_records, want.records);
    tsi_ingest_close(in);
}

/* the writer backends in this database, once they number want (a closed writer's backends
 * may take a moment to leave), or what there are after 10 s */
static long long writer_backends(PGconn *c, long long want_n)
{
    long long n = -1;
    for (int i = 0; i < 200; i++) {
        n = th_int(c, "SELECT count(*) FROM pg_stat_activity WHERE usename = 'tsi_writer' AND "
                      "datname = current_database()");
        if (n == want_n)
            break;
        usleep(50000);
    }
    return n;
}

/* the table equals the model, key by key */
static void check_table(void)
{
    PGconn *c = th_connect("tsi_reader");
    assert_int_equal(th_int(c, "SELECT count(*) FROM safety_indices_realtime"), want.keys);
    assert_int_equal(th_int(c, "SELECT count(*) - count(DISTINCT (intersection_id, "
                               "\"timestamp\")) FROM safety_indices_realtime"),
                     0);
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT intersection_id, ((extract(epoch FROM \"timestamp\") * 1000 - %lld) / "
             "60000)::int, combined_index, traffic_volume FROM safety_indices_realtime ORDER "
             "BY 1, 2",
             (long long)base_minute);
    PGresult *r = PQexec(c, sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    long long seen = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        long long id = atoll(PQgetvalue(r, i, 0));
        int minute = atoi(PQgetvalue(r, i, 1));
        assert_true(id >= 1 && id <= LATE_ID && minute >= 0 && minute < MINUTES);
        int key = (int)id * MINUTES + minute;
        if (!want.have[key])
            fail_msg("unexpected row intersection=%lld minute=%d", id, minute);
        if (atoi(PQgetvalue(r, i, 3)) != want.volume[key] ||
            atof(PQgetvalue(r, i, 2)) != want.ci[key])
            fail_msg("intersection=%lld minute=%d: version volume=%s ci=%s, want volume=%d "
                     "ci=%g",
                     id, minute, PQgetvalue(r, i, 3), PQgetvalue(r, i, 2), want.volume[key],
                     want.ci[key]);
        seen++;
    }
    PQclear(r);
    assert_int_equal(seen, want.keys);
    /* the latest-row table (statement triggers of every part) agrees with the rows */
    assert_int_equal(th_int(c, "SELECT count(*) FROM safety_indices_latest l JOIN (SELECT "
                               "DISTINCT ON (intersection_id) intersection_id, \"timestamp\", "
                               "traffic_volume FROM safety_indices_realtime ORDER BY "
                               "intersection_id, \"timestamp\" DESC) r USING (intersection_id) "
                               "WHERE l.\"timestamp\" = r.\"timestamp\" AND l.traffic_volume = "
                               "r.traffic_volume"),
                     th_int(c, "SELECT count(DISTINCT intersection_id) FROM "
                               "safety_indices_realtime"));
    assert_int_equal(th_int(c, "SELECT count(*) FROM safety_indices_latest"),
                     th_int(c, "SELECT count(DISTINCT intersection_id) FROM "
                               "safety_indices_realtime"));
    assert_int_equal(th_int(c, "SELECT count(*) FROM data_quality_log"), 2);
    assert_int_equal(th_intf(c,
                             "SELECT count(*) FROM intersections WHERE id = %d AND name = "
                             "'late' AND lane_count = 4",
                             LATE_ID),
                     1);
    PQfinish(c);
}

static void check_stats(const tsi_ingest_stats *st, long long extra_errors)
{
    assert_int_equal(st->rows_written, want.rows_written);
    assert_int_equal(st->orphans, want.orphans);
    assert_int_equal(st->rejected, want.rejected);
    assert_int_equal(st->isects_written, 1);
    assert_int_equal(st->dq_written, 2);
    assert_int_equal(st->batches, want.batches);
    assert_int_equal(st->replayed, want.records);
    assert_int_equal(st->spool_records, 0);
    assert_int_equal(st->spool_bytes, 0);
    assert_int_equal(st->spool_corrupt, 0);
    /* each refused row: its part refused once, then the row alone */
    assert_int_equal(st->db_errors, 2 * want.rejected + extra_errors);
    assert_true(st->connected);
}

/* K = 1, 2, 3: the same spool, the same table, the same counters */
static void test_same_result_any_connections(void **state)
{
    (void)state;
    /* the model itself: every kind of record is there */
    assert_true(want.orphans > 10 && want.rejected == 3 && want.keys > 300);
    assert_true(want.rows_written > want.keys); /* versions replaced */
    for (int k = 1; k <= 3; k++) {
        reset();
        spool_content(k);
        tsi_ingest *in = open_ingest(k, false);
        assert_int_equal(tsi_ingest_sync(in, 60000), 0);
        tsi_ingest_stats st;
        tsi_ingest_get_stats(in, &st);
        check_stats(&st, 0);
        PGconn *c = th_connect("tsi_reader");
        assert_int_equal(writer_backends(c, k), k); /* every connection was used */
        PQfinish(c);
        tsi_ingest_close(in);
        check_table();
    }
}

/* one part of a batch fails for a transient cause (a serialization failure, SQLSTATE
 * 40001, injected by a trigger the first time a row of intersection 7 is inserted) while
 * the other parts commit: the batch is written again, nothing lost, nothing counted twice */
static void test_part_fails_transiently(void **state)
{
    (void)state;
    for (int k = 2; k <= 3; k++) {
        reset();
        PGconn *o = th_connect("tsi_owner");
        th_sqlf(o, "CREATE SEQUENCE test_fail_seq; CREATE FUNCTION test_fail_once() RETURNS "
                   "trigger LANGUAGE plpgsql SECURITY DEFINER AS $$ BEGIN IF "
                   "NEW.intersection_id = 7 AND nextval('test_fail_seq') = 1 THEN RAISE "
                   "EXCEPTION 'injected' USING ERRCODE = '40001'; END IF; RETURN NEW; END $$; "
                   "CREATE TRIGGER test_fail_once BEFORE INSERT ON safety_indices_realtime FOR "
                   "EACH ROW EXECUTE FUNCTION test_fail_once()");
        spool_content(k);
        tsi_ingest *in = open_ingest(k, false);
        assert_int_equal(tsi_ingest_sync(in, 60000), 0);
        tsi_ingest_stats st;
        tsi_ingest_get_stats(in, &st);
        /* the injected failure happened (once) */
        assert_true(th_int(o, "SELECT last_value FROM test_fail_seq") > 1);
        check_stats(&st, 1);
        tsi_ingest_close(in);
        th_sqlf(o, "DROP TRIGGER test_fail_once ON safety_indices_realtime; DROP FUNCTION "
                   "test_fail_once(); DROP SEQUENCE test_fail_seq");
        PQfinish(o);
        check_table();
    }
}

/* out-of-range connection counts: 0 and below take the default (2), above 16 are capped */
static void test_connections_bounds(void **state)
{
    (void)state;
    const int asked[3] = {0, -3, 1000};
    const long long got[3] = {2, 2, 16};
    for (int i = 0; i < 3; i++) {
        reset();
        tsi_ingest *in = open_ingest(asked[i], false);
        tsi_rt_row r[32];
        for (int j = 0; j < 32; j++)
            r[j] = mkrow(j + 1, 0, j, j);
        tsi_error e = {0};
        assert_int_equal(tsi_ingest_add_rows(in, r, 32, &e), 0);
        assert_int_equal(tsi_ingest_sync(in, 30000), 0);
        PGconn *c = th_connect("tsi_reader");
        assert_int_equal(writer_backends(c, got[i]), got[i]);
        assert_int_equal(th_int(c, "SELECT count(*) FROM safety_indices_realtime"), 32);
        assert_int_equal(th_int(c, "SELECT sum(traffic_volume) FROM safety_indices_realtime"),
                         31 * 32 / 2);
        PQfinish(c);
        tsi_ingest_close(in);
    }
    /* the collector's option refuses what is out of its range */
    char out[4096];
    const char *bad[] = {"0", "17", "two"};
    for (int i = 0; i < 3; i++) {
        int rc = th_run_tsi((const char *[]){"collect", "--db-writers", bad[i], NULL}, NULL, out,
                            sizeof out);
        assert_int_equal(rc, 2);
        assert_non_null(strstr(out, "db-writers"));
    }
}

/* values at the edges of the binary COPY encoding: timestamps beyond what int64
 * microseconds hold are refused (never wrapped into a valid time, nor taken as infinity),
 * an infinite index is NULL (refused where the column is NOT NULL, stored as NULL where it
 * may be), out-of-range integers reach the CHECKs unchanged; the rest flows */
static void test_hostile_values(void **state)
{
    (void)state;
    reset();
    tsi_ingest *in = open_ingest(2, false);
    tsi_rt_row r[8];
    r[0] = mkrow(1, 0, 10, 1);
    r[0].minute_ms = INT64_MAX;
    r[1] = mkrow(2, 0, 10, 1);
    r[1].minute_ms = INT64_MIN;
    r[2] = mkrow(3, 0, INFINITY, 1);
    r[3] = mkrow(4, 0, 10, 1);
    r[3].hour_of_day = -1;
    r[4] = mkrow(5, 0, 10, INT32_MIN);
    r[5] = mkrow(-5, 0, 10, 1); /* no such intersection */
    r[6] = mkrow(6, 0, 20, 6);
    r[6].combined_index_eb = -INFINITY;
    r[7] = mkrow(7, 0, 30, 7);
    r[7].minute_ms = base_minute + 59999; /* not on the minute: kept to the millisecond */
    tsi_error e = {0};
    assert_int_equal(tsi_ingest_add_rows(in, r, 8, &e), 0);
    assert_int_equal(tsi_ingest_sync(in, 30000), 0);
    tsi_ingest_stats st;
    tsi_ingest_get_stats(in, &st);
    assert_int_equal(st.rejected, 5);
    assert_int_equal(st.orphans, 1);
    assert_int_equal(st.rows_written, 2);
    PGconn *c = th_connect("tsi_reader");
    assert_int_equal(th_int(c, "SELECT count(*) FROM safety_indices_realtime"), 2);
    assert_int_equal(th_int(c, "SELECT count(*) FROM safety_indices_realtime WHERE "
                               "intersection_id = 6 AND combined_index = 20 AND "
                               "combined_index_eb IS NULL AND traffic_volume = 6"),
                     1);
    assert_int_equal(th_intf(c,
                             "SELECT count(*) FROM safety_indices_realtime WHERE "
                             "intersection_id = 7 AND \"timestamp\" = to_timestamp(%lld) + "
                             "interval '59.999 seconds'",
                             (long long)(base_minute / 1000)),
                     1);
    PQfinish(c);
    tsi_ingest_close(in);
}

int main(void)
{
    th_require_cluster();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_result_any_connections),
        cmocka_unit_test(test_part_fails_transiently),
        cmocka_unit_test(test_connections_bounds),
        cmocka_unit_test(test_hostile_values),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
