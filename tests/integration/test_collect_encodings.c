/* The collector's pipeline with the VCC document's encodings (issue 29), into the run's
 * PostgreSQL through the ingest spool: the document's MapData of intersection 152
 * (eight-key laneType objects, 2 vehicle lanes, 2 crosswalks, a sidewalk) stores
 * lane_count 2 and the lanes' decoded bit fields in intersections.metadata; BSMs in each
 * brake encoding are all accepted with the same wheel_brakes in the raw archive; a BSM
 * whose wheelBrakes cannot be read is kept, and one data_quality_log row
 * `unreadable_value` says which field and value; the counters say which forms were seen. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <duckdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "archive/pqfile.h"
#include "base/buf.h"
#include "base/proc.h"
#include "pipeline/pipeline.h"
#include "db/ingest.h"
#include "harness.h"

static char db[64];
static char work[256];

static int setup(void **state)
{
    (void)state;
    th_db_create(db);
    snprintf(work, sizeof work, "%s/tsi-encodings-%d",
             getenv("TSI_TEST_TMP") ? getenv("TSI_TEST_TMP") : "/tmp", (int)getpid());
    return tsi_mkdirs(work, NULL);
}

static int teardown(void **state)
{
    (void)state;
    char *argv[] = {"rm", "-rf", work, NULL};
    tsi_proc_run(argv, NULL, NULL, 0, NULL);
    th_db_drop(db);
    return 0;
}

/* One BSM near intersection 152's ingress lane with the given brakes object. */
static void bsm(tsi_buf *b, int id, int64_t ts, const char *brakes, const char *transmission)
{
    tsi_buf_printf(b,
                   "%s{\"timestamp\":%lld,\"rsuName\":\"rsu-152\",\"clientId\":null,\"bsmJson\":{"
                   "\"coreData\":{\"msgCnt\":1,\"id\":%d,\"secMark\":%lld,\"lat\":38.8605,\"lon\":"
                   "-77.25975,\"speed\":10.0,\"heading\":0.0,\"brakes\":%s,\"transmission\":%s}}}",
                   b->len > 1 ? "," : "", (long long)ts, id, (long long)(ts % 60000), brakes,
                   transmission);
}

static void test_document_encodings(void **state)
{
    (void)state;
    char spool[300], arch[300];
    snprintf(spool, sizeof spool, "%s/spool", work);
    snprintf(arch, sizeof arch, "%s/archive", work);
    mkdir(arch, 0755);
    tsi_ingest_config icfg = {.spool_dir = spool, .retry_min_ms = 50, .retry_max_ms = 500};
    tsi_ingest *in = NULL;
    tsi_error e = {0};
    if (tsi_ingest_open(&in, &icfg, &e) < 0)
        fail_msg("ingest open: %s %s", e.message, e.detail);
    tsi_pipeline_config pcfg = {.archive_root = arch, .max_skew_ms = -1};
    tsi_pipeline *p = NULL;
    if (tsi_pipeline_new(&p, &pcfg, in, &e) < 0)
        fail_msg("pipeline: %s %s", e.message, e.detail);
    int64_t now = (int64_t)time(NULL) * 1000;

    /* the document's MapData */
    size_t n;
    char *md = th_fixture("mapdata/document_152.json", &n);
    assert_int_equal(tsi_pipeline_mapdata(p, md, n, now), 1);
    free(md);

    /* BSMs: the same brake facts in four encodings, and one unreadable */
    tsi_buf f = TSI_BUF_INIT;
    tsi_buf_putc(&f, '[');
    int64_t ts = now - now % 60000 + 1000;
    bsm(&f, 1, ts, "{\"wheelBrakes\":8,\"traction\":2,\"abs\":1}", "2");
    bsm(&f, 2, ts, "{\"wheelBrakes\":\"01000\",\"traction\":\"on\",\"abs\":\"off\"}",
        "\"forwardGears\"");
    bsm(&f, 3, ts,
        "{\"wheelBrakes\":{\"unavailable\":false,\"leftFront\":true,\"leftRear\":false,"
        "\"rightFront\":false,\"rightRear\":false},\"traction\":\"ON\",\"abs\":\"OFF\"}",
        "\"FORWARDGEARS\"");
    bsm(&f, 4, ts, "{\"wheelBrakes\":\"leftFront\"}", "2");
    bsm(&f, 5, ts, "{\"wheelBrakes\":\"banana\"}", "2");
    tsi_buf_putc(&f, ']');
    tsi_pipeline_frame(p, TSI_RAW_BSM, f.data, f.len, now);
    tsi_buf_free(&f);
    tsi_collect_counters c;
    tsi_pipeline_counters(p, &c);
    assert_int_equal(c.messages_in, 5);
    assert_int_equal(c.rejected, 0); /* the unreadable value does not reject its message */
    assert_int_equal(c.unreadable, 1);
    assert_int_equal(c.bsm_forms[0], 3); /* integer: 1, and the transmission of 4 and 5 */
    assert_int_equal(c.bsm_forms[1], 1); /* bit string */
    assert_int_equal(c.bsm_forms[2], 1); /* object of booleans */
    assert_int_equal(c.bsm_forms[3], 3); /* names */
    assert_int_equal(c.map_forms[0], 1);
    assert_int_equal(c.map_forms[4], 1); /* the eight-key laneType */
    assert_int_equal(c.map_forms[6], 0);

    tsi_pipeline_finish(p);
    tsi_pipeline_free(p, true);
    assert_int_equal(tsi_ingest_sync(in, 20000), 0);
    tsi_ingest_close(in);

    PGconn *o = th_connect("tsi_owner");
    assert_int_equal(th_int(o, "SELECT lane_count FROM intersections WHERE id = 152"), 2);
    assert_int_equal(th_int(o, "SELECT count(*) FROM intersections, "
                               "jsonb_array_elements(metadata->'lane_geometry') l WHERE id = 152 "
                               "AND l->>'type' IN ('crosswalk', 'sidewalk')"),
                     3);
    char *v = th_value(o, "SELECT concat_ws('|', l->'directional_use', l->'maneuvers', "
                          "l->'connects_to') FROM intersections, "
                          "jsonb_array_elements(metadata->'lane_geometry') l WHERE id = 152 AND "
                          "(l->>'id')::int = 1");
    assert_string_equal(v, "[\"ingressPath\"]|[\"maneuverStraightAllowed\", "
                           "\"maneuverLeftAllowed\", \"maneuverRightAllowed\"]|[{\"lane\": 2, "
                           "\"maneuver\": [\"maneuverStraightAllowed\"], \"signal_group\": 2}, "
                           "{\"lane\": 2, \"maneuver\": [\"maneuverLeftAllowed\"]}]");
    free(v);
    v = th_value(o, "SELECT l->>'shared_with' FROM intersections, "
                    "jsonb_array_elements(metadata->'lane_geometry') l WHERE id = 152 AND "
                    "(l->>'id')::int = 5");
    assert_string_equal(v, "[\"pedestriansTraffic\"]");
    free(v);
    /* the unreadable value: one row, its field and value */
    assert_int_equal(
        th_int(o, "SELECT count(*) FROM data_quality_log WHERE issue_type = 'unreadable_value'"),
        1);
    v = th_value(o, "SELECT concat_ws('|', severity, metadata->>'count', "
                    "metadata->'fields'->>'brakes.wheelBrakes', metadata->>'example') FROM "
                    "data_quality_log WHERE issue_type = 'unreadable_value'");
    assert_string_equal(v, "warning|1|1|brakes.wheelBrakes = banana (id 5)");
    free(v);
    assert_int_equal(
        th_int(o, "SELECT count(*) FROM data_quality_log WHERE issue_type = 'rejected_message'"),
        0);
    PQfinish(o);

    /* the raw archive: the same bit string from every form, empty for the unreadable */
    duckdb_database ddb;
    duckdb_connection con;
    assert_int_equal(duckdb_open(NULL, &ddb), DuckDBSuccess);
    assert_int_equal(duckdb_connect(ddb, &con), DuckDBSuccess);
    char q[1024];
    snprintf(q, sizeof q,
             "SELECT string_agg(id || ':' || coalesce(wheel_brakes, '-'), ',' ORDER BY id) FROM "
             "read_parquet('%s/raw/bsm/*/*/*/*/*.parquet')",
             arch);
    duckdb_result r;
    assert_int_equal(duckdb_query(con, q, &r), DuckDBSuccess);
    char *s = duckdb_value_varchar(&r, 0, 0);
    assert_non_null(s);
    if (strcmp(s, "1:01000,2:01000,3:01000,4:01000,5:") != 0 &&
        strcmp(s, "1:01000,2:01000,3:01000,4:01000,5:-") != 0)
        fail_msg("raw wheel_brakes: %s", s);
    duckdb_free(s);
    duckdb_destroy_result(&r);
    duckdb_disconnect(&con);
    duckdb_close(&ddb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_document_encodings, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
