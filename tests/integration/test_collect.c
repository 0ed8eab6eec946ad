/* `tsi collect` end to end (issue 12): the real simulator over sockets (accelerated
 * clock), the collector as a process, the run's PostgreSQL.
 *
 *  - clean run at 10 intersections, against the simulator in the VCC document's encoding
 *    (the default) and again in `--encoding legacy` (the former string forms), both equal
 *    to the truth: for every complete minute of the run, one realtime
 *    row per intersection-minute with traffic, with traffic_volume and vru_count equal to
 *    the simulator's ground truth (exact: both count distinct ids and the simulator only
 *    sends what it counts) and conflict counts within a tolerance (below); the database
 *    rows equal the indices Parquet rows and what `tsi features` computes offline from the
 *    raw archive of the same run (check_rows_equal_offline); every Parquet file opens in
 *    DuckDB; the raw archive holds each message once.
 *  - kill -9 mid-run, then a restart: no torn file under an archive name, every row once.
 *  - simulator faults (HTTP 500s, dropped sockets, duplicated and malformed messages,
 *    tokens expiring every 30 s): collection goes on, duplicates are dropped, malformed
 *    messages are counted per minute in data_quality_log.
 *
 * Conflict tolerance: the simulator counts the conflicts it injected with exact
 * trajectories; the collector sees 2 Hz samples and aligns them within 1 s, so a pair
 * whose TTC just crosses the threshold between samples can be missed or, for two users
 * passing close by chance, an extra pair found. We allow |detected - truth| <= 1 per
 * intersection-minute and a total within 20 % + 2 of the truth. */
#include <setjmp.h>
#include <time.h>
#include <sys/stat.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <duckdb.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "archive/pqfile.h"
#include "duck_util.h"
#include "base/buf.h"
#include "base/proc.h"
#include "core/index.h"
#include "core/json.h"
#include "harness.h"
#include "proc_helper.h"

#include "pipeline/pipeline.h"
#include "vcc/decode.h"
#include "collect_util.h"

static char dbname[64];

static int setup(void **state)
{
    (void)state;
    th_db_create(dbname);
    snprintf(work, sizeof work, "%s/collect-%d",
             getenv("TSI_TEST_TMP") ? getenv("TSI_TEST_TMP") : "/tmp", (int)getpid());
    char *argv[] = {"rm", "-rf", work, NULL};
    tsi_proc_run(argv, NULL, NULL, 0, NULL);
    return tsi_mkdirs(work, NULL);
}

static int teardown(void **state)
{
    (void)state;
    th_proc_stop(&sim);
    char *argv[] = {"rm", "-rf", work, NULL};
    tsi_proc_run(argv, NULL, NULL, 0, NULL);
    th_db_drop(dbname);
    return 0;
}

/* ---- the realtime rows against `tsi features` offline over the raw archive ---------------- */

static void write_file(const char *path, const char *s, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(s, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* archive/intersections/intersections.parquet, which the collector keeps current, names
 * and places every intersection as PostgreSQL does (a server started without PostgreSQL
 * reads it): same ids, names, and positions to 1e-7 degrees */
static void check_intersections_file(PGconn *c)
{
    char path[PATH_MAX + 64], sql[PATH_MAX + 200];
    snprintf(path, sizeof path, "%s/archive/intersections/intersections.parquet", work);
    struct stat st;
    if (stat(path, &st) != 0)
        fail_msg("the collector wrote no intersections file: %s", path);
    duckdb_database db;
    duckdb_connection con;
    assert_int_equal(duckdb_open(NULL, &db), DuckDBSuccess);
    assert_int_equal(duckdb_connect(db, &con), DuckDBSuccess);
    duckdb_result res;
    snprintf(sql, sizeof sql,
             "SELECT id, name, latitude, longitude FROM read_parquet('%s') ORDER BY id", path);
    duck_query(con, sql, &res);
    PGresult *pg = PQexec(c, "SELECT id, name, latitude, longitude FROM intersections ORDER BY id");
    assert_int_equal(PQresultStatus(pg), PGRES_TUPLES_OK);
    assert_int_equal((int)duckdb_row_count(&res), PQntuples(pg));
    for (int i = 0; i < PQntuples(pg); i++) {
        assert_int_equal(duckdb_value_int64(&res, 0, (idx_t)i),
                         strtoll(PQgetvalue(pg, i, 0), NULL, 10));
        char *nm = duckdb_value_varchar(&res, 1, (idx_t)i);
        assert_string_equal(nm, PQgetvalue(pg, i, 1));
        duckdb_free(nm);
        assert_true(fabs(duckdb_value_double(&res, 2, (idx_t)i) -
                         strtod(PQgetvalue(pg, i, 2), NULL)) <= 1e-7);
        assert_true(fabs(duckdb_value_double(&res, 3, (idx_t)i) -
                         strtod(PQgetvalue(pg, i, 3), NULL)) <= 1e-7);
    }
    PQclear(pg);
    duckdb_destroy_result(&res);
    duckdb_disconnect(&con);
    duckdb_close(&db);
}

/* one index as PostgreSQL prints it ("null" for NULL) against the offline value */
static void index_equal(const char *name, const char *pg, duckdb_result *res, idx_t col, idx_t row,
                        long long isect, long long minute)
{
    bool pg_null = strcmp(pg, "null") == 0, off_null = duckdb_value_is_null(res, col, row);
    if (pg_null || off_null) {
        if (pg_null != off_null)
            fail_msg("intersection %lld minute %lld: %s realtime=%s offline=%s", isect, minute,
                     name, pg, off_null ? "null" : "a number");
        return;
    }
    double a = strtod(pg, NULL), b = duckdb_value_double(res, col, row);
    if (!(fabs(a - b) <= 1e-6))
        fail_msg("intersection %lld minute %lld: %s realtime=%.9f offline=%.9f", isect, minute,
                 name, a, b);
}

/* The realtime rows equal what `tsi features` computes offline from the raw archive of the
 * same run. Its input is exported from the archive's original JSON column (accepted BSM and
 * PSM, in the order the collector received them: received_at, then message time), the
 * MapData the collector archived (the last version per intersection), and the constants
 * and priors the collector used: the run's database holds no normalisation constants, so
 * the collector applied tsi_constants_default and no Empirical Bayes prior — the offline
 * run gets the same defaults as a file and --priors none (its own default would compute
 * constants and priors from its input). Grace and assignment radius are the collector's.
 *
 * Compared: every complete intersection-minute in [first, last). Excluded, and why:
 *  - minutes before `first`: the collector connected part-way into them, so the simulator
 *    sent messages of those minutes that neither side saw; the truth marks them partial;
 *  - minutes from `last` on: SIGTERM closes the collector's open windows early (the final
 *    flush) and what it had not yet received is in neither the rows nor the archive;
 *  - an intersection-minute for which the collector logged late messages: it archived
 *    them (the archive keeps every message) but its window had already closed without
 *    them, while offline they arrive in time (none of those in a clean run, normally). */
static void check_rows_equal_offline(PGconn *c, int64_t first, int64_t last)
{
    char root[PATH_MAX + 16], msgs[PATH_MAX + 32], map[PATH_MAX + 32], kpath[PATH_MAX + 32],
        out[PATH_MAX + 32];
    snprintf(root, sizeof root, "%s/archive", work);
    snprintf(msgs, sizeof msgs, "%s/offline-messages.jsonl", work);
    snprintf(map, sizeof map, "%s/offline-mapdata.json", work);
    snprintf(kpath, sizeof kpath, "%s/offline-constants.json", work);
    snprintf(out, sizeof out, "%s/offline-features.jsonl", work);
    duckdb_database db;
    duckdb_connection con;
    assert_int_equal(duckdb_open(NULL, &db), DuckDBSuccess);
    assert_int_equal(duckdb_connect(db, &con), DuckDBSuccess);
    tsi_buf lit = TSI_BUF_INIT, q = TSI_BUF_INIT;
    tsi_sql_quote(&lit, root);
    const char *r = tsi_buf_cstr(&lit);

    /* messages: one JSON object a line */
    tsi_buf_printf(&q,
                   "SELECT json FROM read_parquet([%s || '/raw/bsm/*/*/*/*/*.parquet', %s || "
                   "'/raw/psm/*/*/*/*/*.parquet'], union_by_name = true) WHERE reject_reason IS "
                   "NULL ORDER BY received_at, message_time, timestamp_ms, id",
                   r, r);
    duckdb_result res;
    duck_query(con, tsi_buf_cstr(&q), &res);
    FILE *f = fopen(msgs, "wb");
    assert_non_null(f);
    idx_t nmsg = duckdb_row_count(&res);
    for (idx_t i = 0; i < nmsg; i++) {
        char *js = duckdb_value_varchar(&res, 0, i);
        assert_non_null(js);
        for (char *p = js; *p; p++) /* JSON whitespace only: a raw newline in a string is invalid */
            if (*p == '\n' || *p == '\r')
                *p = ' ';
        fputs(js, f);
        fputc('\n', f);
        duckdb_free(js);
    }
    assert_int_equal(fclose(f), 0);
    duckdb_destroy_result(&res);
    assert_true(nmsg > 0);

    /* MapData: an array of the last version archived per intersection */
    tsi_buf_reset(&q);
    tsi_buf_printf(&q,
                   "SELECT '[' || string_agg(DISTINCT j, ',') || ']' FROM (SELECT "
                   "arg_max(json, received_at) AS j FROM read_parquet(%s || "
                   "'/raw/mapdata/*/*/*/*/*.parquet') WHERE reject_reason IS NULL GROUP BY "
                   "intersection_id)",
                   r);
    duck_query(con, tsi_buf_cstr(&q), &res);
    char *mapjs = duckdb_value_varchar(&res, 0, 0);
    assert_non_null(mapjs);
    write_file(map, mapjs, strlen(mapjs));
    duckdb_free(mapjs);
    duckdb_destroy_result(&res);

    /* the collector's constants: none in the database, so the defaults */
    assert_int_equal(th_int(c, "SELECT count(*) FROM normalization_constants"), 0);
    tsi_buf kb = TSI_BUF_INIT;
    tsi_constants_to_json(&tsi_constants_default, &kb);
    write_file(kpath, kb.data, kb.len);
    tsi_buf_free(&kb);

    const char *args[] = {"features", "--mapdata",  map,    "--messages",      msgs, "--constants",
                          kpath,      "--priors",   "none", "--grace-seconds", "60", "--radius",
                          "150",      "--timezone", "UTC",  "--output",        out,  NULL};
    static char log[1 << 16];
    int rc = th_run_tsi(args, NULL, log, sizeof log);
    if (rc != 0)
        fail_msg("tsi features exit %d:\n%s", rc, log);

    /* the offline rows of the compared minutes */
    tsi_buf ol = TSI_BUF_INIT;
    tsi_sql_quote(&ol, out);
    tsi_buf_reset(&q);
    tsi_buf_printf(
        &q,
        "SELECT intersection_id, m, traffic_volume, vru_count, vru_event_count, "
        "vehicle_event_count, combined_index, combined_index_eb, vru_index, vru_index_eb, "
        "vehicle_index, vehicle_index_eb FROM (SELECT *, epoch_ms(strptime(\"timestamp\", "
        "'%%Y-%%m-%%dT%%H:%%M:%%SZ')) AS m FROM read_json(%s, format = 'newline_delimited', "
        "columns = {intersection_id: 'BIGINT', \"timestamp\": 'VARCHAR', traffic_volume: "
        "'INTEGER', vru_count: 'INTEGER', vru_event_count: 'INTEGER', vehicle_event_count: "
        "'INTEGER', combined_index: 'DOUBLE', combined_index_eb: 'DOUBLE', vru_index: 'DOUBLE', "
        "vru_index_eb: 'DOUBLE', vehicle_index: 'DOUBLE', vehicle_index_eb: 'DOUBLE'})) WHERE "
        "m >= %lld AND m < %lld ORDER BY 1, 2",
        tsi_buf_cstr(&ol), (long long)first, (long long)last);
    tsi_buf_free(&ol);
    duck_query(con, tsi_buf_cstr(&q), &res);
    idx_t noff = duckdb_row_count(&res);
    long long compared = 0, excluded_late = 0;
    static const char *const names[] = {"combined_index", "combined_index_eb", "vru_index",
                                        "vru_index_eb",   "vehicle_index",     "vehicle_index_eb"};
    for (idx_t i = 0; i < noff; i++) {
        long long isect = duckdb_value_int64(&res, 0, i), minute = duckdb_value_int64(&res, 1, i);
        char sql[1024];
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM data_quality_log WHERE issue_type = 'late_message' AND "
                 "intersection_id = %lld AND \"timestamp\" = to_timestamp(%lld / 1000.0)",
                 isect, minute);
        if (th_int(c, sql) > 0) {
            excluded_late++;
            continue;
        }
        snprintf(sql, sizeof sql,
                 "SELECT count(*) || ' ' || max(traffic_volume) || ' ' || max(vru_count) || ' ' || "
                 "max(vru_event_count) || ' ' || max(vehicle_event_count) || ' ' || "
                 "coalesce(max(combined_index)::text, 'null') || ' ' || "
                 "coalesce(max(combined_index_eb)::text, 'null') || ' ' || "
                 "coalesce(max(vru_index)::text, 'null') || ' ' || "
                 "coalesce(max(vru_index_eb)::text, 'null') || ' ' || "
                 "coalesce(max(vehicle_index)::text, 'null') || ' ' || "
                 "coalesce(max(vehicle_index_eb)::text, 'null') FROM safety_indices_realtime "
                 "WHERE intersection_id = %lld AND \"timestamp\" = to_timestamp(%lld / 1000.0)",
                 isect, minute);
        char *v = th_value(c, sql);
        if (v == NULL)
            fail_msg("intersection %lld minute %lld: no realtime row (offline has one)", isect,
                     minute);
        int n = 0, vol = 0, vru = 0, pe = 0, ve = 0;
        char ix[6][64];
        int got = sscanf(v, "%d %d %d %d %d %63s %63s %63s %63s %63s %63s", &n, &vol, &vru, &pe,
                         &ve, ix[0], ix[1], ix[2], ix[3], ix[4], ix[5]);
        free(v);
        if (got != 11 || n != 1)
            fail_msg("intersection %lld minute %lld: %d realtime rows", isect, minute, n);
        int ovol = (int)duckdb_value_int64(&res, 2, i), ovru = (int)duckdb_value_int64(&res, 3, i),
            ope = (int)duckdb_value_int64(&res, 4, i), ove = (int)duckdb_value_int64(&res, 5, i);
        if (vol != ovol || vru != ovru || pe != ope || ve != ove)
            fail_msg("intersection %lld minute %lld: realtime volume=%d vru=%d vru_events=%d "
                     "vehicle_events=%d, offline %d %d %d %d",
                     isect, minute, vol, vru, pe, ve, ovol, ovru, ope, ove);
        for (int k = 0; k < 6; k++)
            index_equal(names[k], ix[k], &res, (idx_t)(6 + k), i, isect, minute);
        compared++;
    }
    duckdb_destroy_result(&res);
    /* and no realtime row of the compared minutes that offline lacks */
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM safety_indices_realtime s WHERE \"timestamp\" >= "
             "to_timestamp(%lld / 1000.0) AND \"timestamp\" < to_timestamp(%lld / 1000.0) AND NOT "
             "EXISTS (SELECT 1 FROM data_quality_log q WHERE q.issue_type = 'late_message' AND "
             "q.intersection_id = s.intersection_id AND q.\"timestamp\" = s.\"timestamp\")",
             (long long)first, (long long)last);
    assert_int_equal(th_int(c, sql), compared);
    fprintf(stderr,
            "offline features: %lld intersection-minutes equal, %lld excluded (late), "
            "%llu messages exported\n",
            compared, excluded_late, (unsigned long long)nmsg);
    assert_true(compared >= (long long)NISECT * minutes() / 2);
    tsi_buf_free(&lit);
    tsi_buf_free(&q);
    duckdb_disconnect(&con);
    duckdb_close(&db);
}

/* The clean run against the simulator in one encoding (NULL: the document's, the
 * default; or {"--encoding", "legacy"}): the same truth either way. forms: the encodings
 * the collector must report in its status line. */
static void clean_run(const char *const *sim_extra, const char *forms)
{
    start_sim(sim_extra);
    th_proc col;
    int64_t t0 = collect_sim_now();
    start_collect(&col, NULL);
    /* the first minute that starts after the collector is surely listening */
    int64_t first = (t0 / 60000 + 2) * 60000;
    int64_t last = first + (int64_t)minutes() * 60000; /* exclusive */
    wait_sim_until(last + 35000);                      /* past the grace of the last one */
    /* the status line says which encodings it read, and nothing was unreadable */
    char *log = th_proc_log(&col);
    if (!log || !strstr(log, forms) || !strstr(log, " unreadable=0 "))
        fail_msg("status line lacks '%s' or unreadable=0:\n%.3000s", forms, log ? log : "");
    free(log);
    stop_collect(&col);
    static truth tr[NISECT * 200];
    size_t nt = get_truth(first, last, tr, sizeof tr / sizeof tr[0]);
    assert_true(nt >= (size_t)NISECT * (size_t)minutes() / 2);
    PGconn *c = th_connect("tsi_reader");
    int rows_with_traffic = 0, late_minutes = 0;
    long long vtruth = 0, vdet = 0, ptruth = 0, pdet = 0;
    for (size_t i = 0; i < nt; i++) {
        if (!tr[i].complete || tr[i].minute < first || tr[i].minute >= last)
            continue;
        char sql[512];
        snprintf(sql, sizeof sql,
                 "SELECT count(*) || ' ' || coalesce(max(traffic_volume), -1) || ' ' || "
                 "coalesce(max(vru_count), -1) || ' ' || coalesce(max(vehicle_event_count), 0) || "
                 "' ' || coalesce(max(vru_event_count), 0) FROM safety_indices_realtime WHERE "
                 "intersection_id = %lld AND \"timestamp\" = to_timestamp(%lld / 1000.0)",
                 (long long)tr[i].isect, (long long)tr[i].minute);
        char *v = th_value(c, sql);
        int n = 0, vol = 0, vru = 0, ve = 0, pe = 0;
        sscanf(v, "%d %d %d %d %d", &n, &vol, &vru, &ve, &pe);
        free(v);
        if (tr[i].vehicles + tr[i].vrus == 0) {
            assert_int_equal(n, 0); /* no traffic, no row */
            continue;
        }
        rows_with_traffic++;
        if (n != 1 || vol != tr[i].vehicles || vru != tr[i].vrus) {
            /* only allowed when the collector itself recorded late messages for that
             * intersection-minute (a loaded machine delaying the sanitizer build beyond
             * the grace period), and never above the truth */
            snprintf(sql, sizeof sql,
                     "SELECT count(*) FROM data_quality_log WHERE issue_type = 'late_message' "
                     "AND intersection_id = %lld AND \"timestamp\" = to_timestamp(%lld / 1000.0)",
                     (long long)tr[i].isect, (long long)tr[i].minute);
            if (n != 1 || vol > tr[i].vehicles || vru > tr[i].vrus || th_int(c, sql) == 0)
                fail_msg("intersection %lld minute %lld: rows=%d volume=%d/%d vru=%d/%d",
                         (long long)tr[i].isect, (long long)tr[i].minute, n, vol, tr[i].vehicles,
                         vru, tr[i].vrus);
            late_minutes++;
        }
        assert_true(abs(ve - tr[i].vconf) <= 1);
        assert_true(abs(pe - tr[i].pconf) <= 1);
        vtruth += tr[i].vconf;
        vdet += ve;
        ptruth += tr[i].pconf;
        pdet += pe;
    }
    assert_true(rows_with_traffic >= NISECT * minutes() / 2);
    assert_true(late_minutes * 10 <= rows_with_traffic); /* a rare event, not the rule */
    assert_true(llabs(vdet - vtruth) <= vtruth / 5 + 2);
    assert_true(llabs(pdet - ptruth) <= ptruth / 5 + 2);
    /* intersections came from MapData */
    assert_int_equal(th_int(c, "SELECT count(*) FROM intersections"), NISECT);
    check_intersections_file(c);
    /* no fault, no quality entry */
    assert_int_equal(th_int(c, "SELECT count(*) FROM data_quality_log WHERE issue_type IN "
                               "('rejected_message', 'unreadable_value')"),
                     0);
    /* lane_count: the vehicle lanes only (8 of 12: the crosswalks are not counted), and
     * the lanes' decoded bit fields kept beside their geometry */
    assert_int_equal(th_int(c, "SELECT count(*) FROM intersections WHERE lane_count = 8"), NISECT);
    assert_int_equal(th_int(c, "SELECT count(*) FROM intersections, "
                               "jsonb_array_elements(metadata->'lane_geometry') l WHERE "
                               "l->>'type' = 'vehicle' AND l->'directional_use' ?| "
                               "array['ingressPath', 'egressPath']"),
                     sim_extra ? 0 : NISECT * 8); /* legacy sends no directionalUse */
    assert_int_equal(th_int(c, "SELECT count(*) FROM intersections, "
                               "jsonb_array_elements(metadata->'lane_geometry') l WHERE "
                               "l->'maneuvers' = '[\"maneuverStraightAllowed\", "
                               "\"maneuverLeftAllowed\", \"maneuverRightAllowed\"]'::jsonb AND "
                               "jsonb_array_length(l->'connects_to') = 3"),
                     sim_extra ? 0 : NISECT * 4); /* legacy sends no lane maneuvers */
    assert_int_equal(th_int(c, "SELECT count(*) FROM intersections, "
                               "jsonb_array_elements(metadata->'lane_geometry') l, "
                               "jsonb_array_elements(l->'connects_to') k WHERE "
                               "k->'maneuver' = '[\"maneuverLeftAllowed\"]'::jsonb"),
                     NISECT * 4);
    check_db_equals_parquet(c);
    check_rows_equal_offline(c, first, last);
    PQfinish(c);
    /* every Parquet file opens; each message once in the raw archive */
    assert_true(duck_int("SELECT count(*) FROM read_parquet(%s || '/raw/*/*/*/*/*/*.parquet', "
                         "union_by_name = true)") > 0);
    assert_int_equal(duck_int("SELECT count(*) FROM (SELECT id, timestamp_ms, msg_cnt, sec_mark, "
                              "count(*) AS n FROM read_parquet(%s || "
                              "'/raw/bsm/*/*/*/*/*.parquet') GROUP BY ALL HAVING n > 1)"),
                     0);
    /* raw rows of the complete minutes: every BSM/PSM the simulator sent there, once */
    long long bsm_truth = 0, psm_truth = 0;
    for (size_t i = 0; i < nt; i++)
        if (tr[i].complete && tr[i].minute >= first && tr[i].minute < last) {
            bsm_truth += tr[i].bsm;
            psm_truth += tr[i].psm;
        }
    char q[512];
    snprintf(q, sizeof q,
             "SELECT count(*) FROM read_parquet(%%s || '/raw/bsm/*/*/*/*/*.parquet') WHERE "
             "timestamp_ms >= %lld AND timestamp_ms < %lld",
             (long long)first, (long long)last);
    long long raw_bsm = duck_int(q);
    snprintf(q, sizeof q,
             "SELECT count(*) FROM read_parquet(%%s || '/raw/psm/*/*/*/*/*.parquet') WHERE "
             "timestamp_ms >= %lld AND timestamp_ms < %lld",
             (long long)first, (long long)last);
    long long raw_psm = duck_int(q);
    /* the archive and the windows saw the same messages (two code paths) */
    snprintf(q, sizeof q,
             "SELECT sum(message_count) FROM (SELECT DISTINCT ON (intersection_id, \"timestamp\") "
             "* FROM read_parquet(%%s || '/indices/*/*/*/indices_*.parquet')) WHERE "
             "epoch_ms(\"timestamp\") >= %lld AND epoch_ms(\"timestamp\") < %lld",
             (long long)first, (long long)last);
    assert_int_equal(duck_int(q), raw_bsm + raw_psm);
    /* every vehicle of the truth is in the archive: distinct ids per RSU and minute */
    long long veh_truth = 0;
    for (size_t i = 0; i < nt; i++)
        if (tr[i].complete && tr[i].minute >= first && tr[i].minute < last)
            veh_truth += tr[i].vehicles;
    snprintf(q, sizeof q,
             "SELECT sum(n) FROM (SELECT count(DISTINCT id) AS n FROM read_parquet(%%s || "
             "'/raw/bsm/*/*/*/*/*.parquet') WHERE timestamp_ms >= %lld AND timestamp_ms < %lld "
             "GROUP BY rsu_name, timestamp_ms // 60000)",
             (long long)first, (long long)last);
    assert_int_equal(duck_int(q), veh_truth);
    /* message counts: every message the simulator sent, exactly (the 3-5 % shortfall seen
     * before was the collector's main loop dropping a dequeued frame, issue 11) */
    fprintf(stderr, "raw bsm=%lld/%lld psm=%lld/%lld (archived/simulator truth)\n", raw_bsm,
            bsm_truth, raw_psm, psm_truth);
    assert_int_equal(raw_bsm, bsm_truth);
    assert_int_equal(raw_psm, psm_truth);
    /* MapData and SPaT were archived too */
    assert_true(duck_int("SELECT count(*) FROM read_parquet(%s || "
                         "'/raw/mapdata/*/*/*/*/*.parquet')") >= NISECT);
    assert_true(duck_int("SELECT count(*) FROM read_parquet(%s || '/raw/spat/*/*/*/*/*.parquet')") >
                0);
    th_proc_stop(&sim);
}

static void test_clean_run(void **state)
{
    (void)state;
    clean_run(NULL, "encodings bsm=integer:");
}

/* the simulator's former string forms (issue 29): the same truth */
static void test_clean_run_legacy(void **state)
{
    (void)state;
    const char *extra[] = {"--encoding", "legacy", NULL};
    clean_run(extra, "encodings bsm=bitstring:");
}

static void test_faults(void **state)
{
    (void)state;
    const char *faults[] = {"--http-error-rate",
                            "0.2",
                            "--drop-rate",
                            "0.002",
                            "--duplicate-rate",
                            "0.05",
                            "--malformed-rate",
                            "0.02",
                            "--short-token-lifetime",
                            "30",
                            NULL};
    start_sim(faults);
    th_proc col;
    int64_t t0 = collect_sim_now();
    start_collect(&col, NULL);
    int64_t first = (t0 / 60000 + 2) * 60000;
    int64_t last = first + 2 * 60000;
    wait_sim_until(last + 35000);
    char *log = th_proc_log(&col); /* the token lines, before the stop removes the log */
    stop_collect(&col);
    /* tokens expired (30 s of wall clock) and were renewed without a stop */
    const char *t1 = strstr(log, "token obtained");
    bool renewed = t1 && strstr(t1 + 1, "token obtained") != NULL;
    free(log);
    assert_true(renewed);
    static truth tr[NISECT * 200];
    size_t nt = get_truth(t0 - 60000, last + 60000, tr, sizeof tr / sizeof tr[0]);
    long long malformed = 0, dups = 0, veh_truth = 0;
    for (size_t i = 0; i < nt; i++) {
        malformed += tr[i].malformed;
        dups += tr[i].dup;
        if (tr[i].complete && tr[i].minute >= first && tr[i].minute < last)
            veh_truth += tr[i].vehicles;
    }
    assert_true(malformed > 0 && dups > 0);
    PGconn *c = th_connect("tsi_reader");
    /* malformed messages: counted per minute (one row per minute and issue, not per
     * message), never more than the simulator sent, and each archived with its reason */
    long long dq = th_int(c, "SELECT coalesce(sum((metadata->>'count')::int), 0) FROM "
                             "data_quality_log WHERE issue_type = 'rejected_message'");
    long long dq_rows = th_int(c, "SELECT count(*) FROM data_quality_log WHERE issue_type = "
                                  "'rejected_message'");
    assert_true(dq > 0 && dq <= malformed);
    assert_true(dq_rows < dq);
    assert_int_equal(duck_int("SELECT count(*) FROM read_parquet(%s || "
                              "'/raw/*sm/*/*/*/*/*.parquet', union_by_name = true) WHERE "
                              "reject_reason IS NOT NULL"),
                     dq);
    /* duplicates are dropped before the archive */
    assert_int_equal(duck_int("SELECT count(*) FROM (SELECT id, timestamp_ms, msg_cnt, sec_mark, "
                              "count(*) AS n FROM read_parquet(%s || "
                              "'/raw/bsm/*/*/*/*/*.parquet') WHERE reject_reason IS NULL "
                              "GROUP BY ALL HAVING n > 1)"),
                     0);
    /* collection went on: vehicles of the complete minutes within 10 % of the truth
     * (dropped sockets lose what the REST fallback's 2-second window does not cover) and
     * never above it */
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT coalesce(sum(traffic_volume), 0) FROM safety_indices_realtime WHERE "
             "\"timestamp\" >= to_timestamp(%lld / 1000.0) AND \"timestamp\" < "
             "to_timestamp(%lld / 1000.0)",
             (long long)first, (long long)last);
    long long vol = th_int(c, sql);
    fprintf(stderr, "faults: volume %lld/%lld, rejected %lld/%lld, duplicates sent %lld\n", vol,
            veh_truth, dq, malformed, dups);
    assert_true(vol <= veh_truth && vol * 10 >= veh_truth * 9);
    check_db_equals_parquet(c);
    PQfinish(c);
    th_proc_stop(&sim);
}

/* kill -9 of the collector in the middle of its run (flushes every 5 s, so mid-flush
 * sooner or later), then a restart: no torn file, every row once, the spool replayed */
static void test_kill9_restart(void **state)
{
    (void)state;
    start_sim(NULL);
    th_proc col;
    int64_t t0 = collect_sim_now();
    start_collect(&col, NULL);
    wait_sim_until((t0 / 60000 + 2) * 60000 + 17000);
    assert_true(th_proc_alive(&col));
    kill(col.pid, SIGKILL);
    int rc = th_proc_stop(&col);
    assert_int_equal(rc, 128 + SIGKILL);
    int64_t t1 = collect_sim_now();
    start_collect(&col, NULL);
    wait_sim_until((t1 / 60000 + 2) * 60000 + 35000);
    stop_collect(&col);
    /* every archive file opens (a torn file would make read_parquet fail) */
    assert_true(duck_int("SELECT count(*) FROM read_parquet(%s || '/raw/*/*/*/*/*/*.parquet', "
                         "union_by_name = true)") > 0);
    assert_true(duck_int("SELECT count(*) FROM read_parquet(%s || '/indices/*/*/*/*.parquet', "
                         "union_by_name = true)") > 0);
    PGconn *c = th_connect("tsi_reader");
    assert_true(th_int(c, "SELECT count(*) FROM safety_indices_realtime") >= NISECT);
    /* model provenance (issue 26): no constants set yet (the built-in defaults: none
     * recorded) and this build's algorithm version on every row, in both stores */
    assert_int_equal(th_int(c, "SELECT count(*) FROM safety_indices_realtime WHERE"
                               " constants_id IS NOT NULL OR algorithm_version IS DISTINCT FROM 1"),
                     0);
    assert_int_equal(
        duck_int("SELECT count(*) FROM read_parquet(%s || '/indices/*/*/*/*.parquet',"
                 " union_by_name = true, filename = true) WHERE"
                 " parse_filename(filename) NOT LIKE 'conflicts%%' AND"
                 " (algorithm_version IS DISTINCT FROM 1 OR constants_id IS NOT NULL)"),
        0);
    check_db_equals_parquet(c);
    PQfinish(c);
    th_proc_stop(&sim);
}

/* ---- the frame parser's token storage (no network, no database) ----------------------- */

/* One BSM in the VCC form of tests/fixtures/messages/bsm.json, with its own id and time. */
static void append_bsm(tsi_buf *b, long long id, long long ts)
{
    tsi_buf_printf(b,
                   "{\"timestamp\":%lld,\"rsuName\":\"rsu-us29-nutley\",\"format\":\"JSON\","
                   "\"locationName\":\"US-29 & Nutley\",\"bsmJson\":{\"coreData\":{\"msgCnt\":42,"
                   "\"id\":%lld,\"secMark\":%lld,\"lat\":38.8604512,\"lon\":-77.2601833,"
                   "\"elev\":118.3,\"accuracy\":{\"semiMajor\":1.5,\"semiMinor\":1.0,"
                   "\"orientation\":0.0},\"transmission\":\"forwardGears\",\"speed\":13.42,"
                   "\"heading\":92.5,\"angle\":0.0,\"accelSet\":{\"lon\":-0.58,\"lat\":0.12,"
                   "\"vert\":0.0,\"yaw\":1.25},\"size\":{\"width\":190,\"length\":480}}}}",
                   ts, id, ts % 60000);
}

/* "[" n BSMs "]" (closed: false leaves the array open: a truncated frame) */
static void bsm_frame(tsi_buf *b, int n, long long first_id, bool closed)
{
    tsi_buf_reset(b);
    tsi_buf_append(b, "[", 1);
    for (int i = 0; i < n; i++) {
        if (i)
            tsi_buf_append(b, ",", 1);
        append_bsm(b, first_id + i, 1764066601000LL + i);
    }
    if (closed)
        tsi_buf_append(b, "]", 1);
}

/* A rush-hour /ws/bsm frame needs more than 1 << 20 tokens. Such frames parse into token
 * storage that is kept (a second one re-parses nothing and grows nothing); each of their
 * messages is decoded (no intersection is known: every one is counted unmatched, none
 * rejected); a truncated giant frame and one over TSI_FRAME_MAX_TOKENS are rejected whole;
 * a run of 64 small frames releases the storage back to its initial 1 << 16 tokens. */
static void test_frame_tokens(void **state)
{
    (void)state;
    char arch[PATH_MAX + 16];
    snprintf(arch, sizeof arch, "%s/archive", work);
    tsi_pipeline_config cfg = {.archive_root = arch};
    tsi_pipeline *p = NULL;
    tsi_error e = {0};
    if (tsi_pipeline_new(&p, &cfg, NULL, &e) < 0)
        fail_msg("pipeline: %s", e.detail);

    /* tokens of one message, counted by the JSON module on the message alone */
    tsi_buf one = TSI_BUF_INIT;
    append_bsm(&one, 1, 1764066601000LL);
    tsi_json d;
    int per = tsi_json_parse_alloc(&d, one.data, one.len, 1000, &e);
    tsi_json_free(&d);
    tsi_buf_free(&one);
    assert_true(per > 40);
    const int n = (1 << 20) / per + 500; /* 1 + n * per > 1 << 20 */
    const int need = 1 + n * per;
    assert_true(need > (1 << 20));

    tsi_buf f = TSI_BUF_INIT;
    tsi_collect_counters c;
    int cap, cap1;
    long long rep, rep1;
    bsm_frame(&f, n, 1000, true);
    tsi_pipeline_frame(p, TSI_RAW_BSM, f.data, f.len, 1764066602000LL);
    tsi_pipeline_counters(p, &c);
    assert_int_equal(c.messages_in, n);
    assert_int_equal(c.unmatched, n);
    assert_int_equal(c.rejected, 0);
    assert_int_equal(c.frames_rejected, 0);
    tsi_pipeline_token_stats(p, &cap1, &rep1);
    assert_true(cap1 >= need);
    assert_true(cap1 <= 2 * need); /* sized from the frame, not grown blindly */
    assert_true(rep1 >= 1 && rep1 <= 2);

    /* the same size again (other ids): no re-parse, the storage kept as it was */
    bsm_frame(&f, n, 1000 + n, true);
    tsi_pipeline_frame(p, TSI_RAW_BSM, f.data, f.len, 1764066603000LL);
    tsi_pipeline_counters(p, &c);
    assert_int_equal(c.messages_in, 2LL * n);
    assert_int_equal(c.unmatched, 2LL * n);
    assert_int_equal(c.rejected, 0);
    tsi_pipeline_token_stats(p, &cap, &rep);
    assert_int_equal(cap, cap1);
    assert_int_equal(rep, rep1);

    /* hostile: the giant frame cut short, then one with more tokens than any frame may
     * have (an array of TSI_FRAME_MAX_TOKENS zeros): each rejected as one, nothing of
     * them decoded */
    bsm_frame(&f, n, 5000000, false);
    tsi_pipeline_frame(p, TSI_RAW_BSM, f.data, f.len, 1764066604000LL);
    tsi_buf_reset(&f);
    tsi_buf_append(&f, "[0", 2);
    for (int i = 1; i < TSI_FRAME_MAX_TOKENS; i++)
        tsi_buf_append(&f, ",0", 2);
    tsi_buf_append(&f, "]", 1);
    tsi_pipeline_frame(p, TSI_RAW_PSM, f.data, f.len, 1764066604000LL);
    tsi_pipeline_counters(p, &c);
    assert_int_equal(c.messages_in, 2LL * n);
    assert_int_equal(c.frames_rejected, 2);
    assert_int_equal(c.rejected, 2);
    tsi_pipeline_token_stats(p, &cap, &rep);
    assert_int_equal(cap, TSI_FRAME_MAX_TOKENS); /* grew to the bound, refused beyond it */

    /* small frames: the two rejected frames and 61 small ones (63 in a run, each using
     * under a quarter of the storage) keep it; after the 64th (decoded in full) it is
     * shrunk back to the initial size */
    for (int i = 0; i < 61; i++) {
        bsm_frame(&f, 3, 9000000 + 3 * i, true);
        tsi_pipeline_frame(p, TSI_RAW_BSM, f.data, f.len, 1764066605000LL);
        tsi_pipeline_token_stats(p, &cap, &rep);
        assert_int_equal(cap, TSI_FRAME_MAX_TOKENS);
    }
    bsm_frame(&f, 3, 9500000, true);
    tsi_pipeline_frame(p, TSI_RAW_BSM, f.data, f.len, 1764066605000LL);
    tsi_pipeline_token_stats(p, &cap, &rep);
    assert_int_equal(cap, 1 << 16);
    tsi_pipeline_counters(p, &c);
    assert_int_equal(c.messages_in, 2LL * n + 62 * 3);
    assert_int_equal(c.unmatched, 2LL * n + 62 * 3);
    assert_int_equal(c.rejected, 2);

    /* and a giant frame after that grows it again, decoded in full */
    bsm_frame(&f, n, 20000000, true);
    tsi_pipeline_frame(p, TSI_RAW_BSM, f.data, f.len, 1764066606000LL);
    tsi_pipeline_counters(p, &c);
    assert_int_equal(c.messages_in, 3LL * n + 62 * 3);
    assert_int_equal(c.unmatched, 3LL * n + 62 * 3);
    tsi_pipeline_token_stats(p, &cap, &rep);
    assert_true(cap >= need && cap <= 2 * need);

    /* every message and each rejected frame reached the raw archive once */
    assert_int_equal(tsi_pipeline_flush_raw(p, &e), 0);
    tsi_pipeline_counters(p, &c);
    assert_int_equal(c.raw_rows, 3LL * n + 62 * 3 + 2);
    tsi_buf_free(&f);
    tsi_pipeline_free(p, false);
}

/* A pipeline writing to the run's database through its own spool (under work/<name>-*),
 * and the corridor fixture's MapData text (malloc'd, *mdlen bytes). */
static void corridor_pipeline(const char *name, tsi_ingest **in, tsi_pipeline **p, char **md,
                              size_t *mdlen)
{
    char arch[PATH_MAX + 64], spool[PATH_MAX + 64], mdpath[PATH_MAX];
    snprintf(arch, sizeof arch, "%s/%s-archive", work, name);
    snprintf(spool, sizeof spool, "%s/%s-spool", work, name);
    assert_int_equal(tsi_mkdirs(arch, NULL), 0);
    tsi_ingest_config icfg = {.spool_dir = spool, .retry_min_ms = 50, .retry_max_ms = 500};
    tsi_error e = {0};
    *in = NULL;
    if (tsi_ingest_open(in, &icfg, &e) < 0)
        fail_msg("ingest open: %s %s", e.message, e.detail);
    tsi_pipeline_config pcfg = {.archive_root = arch}; /* the default skew: 120 s */
    *p = NULL;
    if (tsi_pipeline_new(p, &pcfg, *in, &e) < 0)
        fail_msg("pipeline: %s %s", e.message, e.detail);
    snprintf(mdpath, sizeof mdpath, "%s/tests/fixtures/mapdata/corridor.json", th_source_dir());
    *md = tsi_read_file(mdpath, mdlen, 1 << 24, &e);
    assert_non_null(*md);
}

/* The live path's clock sanity against PostgreSQL: among 20 messages of now, one RSU sends
 * three dated a day ahead and one an hour behind (received now). The 20 are indexed; the
 * four are archived, never indexed, and PostgreSQL's data_quality_log gets ONE clock_skew
 * row for that RSU, intersection and minute of receipt, counting 4, its offsets from -1 h
 * to +1 day (the receiver's wall clock against the message time). */
static void test_clock_skew_rows(void **state)
{
    (void)state;
    tsi_ingest *in;
    tsi_pipeline *p;
    char *md;
    size_t mdlen;
    corridor_pipeline("skew", &in, &p, &md, &mdlen);
    long long now = (long long)time(NULL) * 1000;
    assert_true(tsi_pipeline_mapdata(p, md, mdlen, now) >= 1);
    free(md);
    tsi_buf f = TSI_BUF_INIT;
    tsi_buf_append(&f, "[", 1);
    for (int i = 0; i < 24; i++) {
        long long ts = i < 20 ? now - 5000 + i * 100 : i < 23 ? now + 86400000LL : now - 3600000LL;
        if (i)
            tsi_buf_append(&f, ",", 1);
        append_bsm(&f, 9000 + i, ts);
    }
    tsi_buf_append(&f, "]", 1);
    tsi_pipeline_frame(p, TSI_RAW_BSM, f.data, f.len, now);
    tsi_buf_free(&f);
    tsi_collect_counters c;
    tsi_pipeline_counters(p, &c);
    assert_int_equal(c.messages_in, 24);
    assert_int_equal(c.skewed, 4);
    assert_int_equal(c.accepted, 20);
    assert_int_equal(c.late, 0);
    tsi_pipeline_finish(p);
    tsi_pipeline_free(p, true);
    assert_int_equal(tsi_ingest_sync(in, 20000), 0);
    tsi_ingest_close(in);
    PGconn *db = th_connect("tsi_owner");
    assert_int_equal(
        th_int(db, "SELECT count(*) FROM data_quality_log WHERE issue_type = 'clock_skew'"), 1);
    assert_int_equal(th_int(db, "SELECT (metadata->>'count')::int FROM data_quality_log"
                                " WHERE issue_type = 'clock_skew'"),
                     4);
    /* the corridor's "US-29 & Nutley": region 1, id 4101 (domain.md §2: region * 65536 + id) */
    assert_int_equal(th_int(db, "SELECT intersection_id FROM data_quality_log"
                                " WHERE issue_type = 'clock_skew'"),
                     1 * 65536 + 4101);
    char *rsu = th_value(
        db, "SELECT metadata->>'rsu' FROM data_quality_log WHERE issue_type = 'clock_skew'");
    assert_string_equal(rsu, "rsu-us29-nutley");
    free(rsu);
    /* offsets are message time minus the receiver's clock */
    assert_int_equal(th_int(db, "SELECT (metadata->>'offset_ms_min')::bigint FROM data_quality_log"
                                " WHERE issue_type = 'clock_skew'"),
                     -3600000);
    assert_int_equal(th_int(db, "SELECT (metadata->>'offset_ms_max')::bigint FROM data_quality_log"
                                " WHERE issue_type = 'clock_skew'"),
                     86400000);
    PQfinish(db);
}

/* ---- an intersection removed from MapData leaves "current", keeps its history ----------- */

/* the corridor fixture's MapData text without its second intersection (US-29 & Gallows) */
static char *corridor_without_second(const char *md, size_t len)
{
    tsi_json d;
    tsi_error e = {0};
    assert_true(tsi_json_parse_alloc(&d, md, len, 1 << 20, &e) > 0);
    int el = tsi_json_first(&d, 0);
    int arr = tsi_json_get(&d, el, "intersections");
    int a = tsi_json_first(&d, arr), b = tsi_json_next(&d, arr, a);
    assert_true(a >= 0 && b >= 0);
    tsi_buf out = TSI_BUF_INIT;
    tsi_buf_append(&out, md, (size_t)d.tok[a].end);
    tsi_buf_append(&out, md + d.tok[b].end, len - (size_t)d.tok[b].end);
    tsi_json_free(&d);
    char *r = strdup(tsi_buf_cstr(&out)); /* owned by the caller */
    tsi_buf_free(&out);
    return r;
}

static void retire_rows(PGconn *db, long long id, const char *ago)
{
    th_sqlf(db,
            "INSERT INTO safety_indices_realtime (intersection_id, \"timestamp\", combined_index,"
            " combined_index_eb, traffic_volume, vru_count, vehicle_event_count, vru_event_count,"
            " hour_of_day, day_of_week) VALUES (%lld, date_trunc('minute', now()) - interval '%s',"
            " 40, 41, 3, 0, 0, 0, 0, 0)",
            id, ago);
}

static void test_mapdata_retired(void **state)
{
    (void)state;
    const long long nutley = 1 * 65536 + 4101, gallows = 1 * 65536 + 4102;
    tsi_ingest *in;
    tsi_pipeline *p;
    char *md;
    size_t mdlen;
    corridor_pipeline("retire", &in, &p, &md, &mdlen);
    char *one = corridor_without_second(md, mdlen);
    long long now = (long long)time(NULL) * 1000;
    PGconn *db = th_connect("tsi_owner");

    assert_int_equal(tsi_pipeline_mapdata_full(p, md, mdlen, now), 0);
    assert_int_equal(tsi_pipeline_intersections(p), 2);
    assert_int_equal(tsi_ingest_sync(in, 20000), 0);
    retire_rows(db, nutley, "2 minutes");
    retire_rows(db, gallows, "2 minutes");
    assert_int_equal(th_int(db, "SELECT count(*) FROM safety_indices_latest"), 2);

    /* answers that must retire nothing: empty, and one with an unreadable part */
    assert_int_equal(tsi_pipeline_mapdata_full(p, "[]", 2, now), 0);
    tsi_buf bad = TSI_BUF_INIT;
    tsi_buf_append(&bad, one, strlen(one) - 1); /* without the closing ']' */
    tsi_buf_puts(&bad, ",{\"msgIssueRevision\":\"x\",\"intersections\":7}]");
    assert_int_equal(tsi_pipeline_mapdata_full(p, bad.data, bad.len, now), 0);
    tsi_buf_free(&bad);
    assert_int_equal(tsi_pipeline_intersections(p), 2);

    /* Gallows is absent from a full answer: retired */
    assert_int_equal(tsi_pipeline_mapdata_full(p, one, strlen(one), now + 1000), 1);
    assert_int_equal(tsi_pipeline_intersections(p), 1);
    tsi_collect_counters c;
    tsi_pipeline_counters(p, &c);
    assert_int_equal(c.intersections_retired, 1);
    assert_int_equal(tsi_ingest_sync(in, 20000), 0);
    assert_int_equal(th_int(db, "SELECT count(*) FROM intersections"
                                " WHERE jsonb_typeof(metadata->'retired_at') = 'string'"),
                     1);
    assert_int_equal(th_int(db, "SELECT id FROM intersections"
                                " WHERE jsonb_typeof(metadata->'retired_at') = 'string'"),
                     gallows);
    /* its lane geometry and history stay; it left current */
    assert_int_equal(th_int(db, "SELECT count(*) FROM intersections WHERE id = 65536 + 4102"
                                " AND metadata ? 'lane_geometry'"),
                     1);
    assert_int_equal(th_int(db, "SELECT intersection_id FROM safety_indices_latest"), nutley);
    assert_int_equal(th_int(db, "SELECT count(*) FROM safety_indices_realtime"
                                " WHERE intersection_id = 65536 + 4102"),
                     1);
    /* rows written for it later (a reprocess of its past) do not bring it back */
    retire_rows(db, gallows, "1 minute");
    assert_int_equal(th_int(db, "SELECT count(*) FROM safety_indices_latest"), 1);

    /* its MapData comes back: stored again, current again with its next minute */
    assert_int_equal(tsi_pipeline_mapdata_full(p, md, mdlen, now + 2000), 0);
    assert_int_equal(tsi_pipeline_intersections(p), 2);
    assert_int_equal(tsi_ingest_sync(in, 20000), 0);
    assert_int_equal(th_int(db, "SELECT count(*) FROM intersections"
                                " WHERE metadata->>'retired_at' IS NOT NULL"),
                     0);
    retire_rows(db, gallows, "0 minutes");
    assert_int_equal(th_int(db, "SELECT count(*) FROM safety_indices_latest"), 2);

    PQfinish(db);
    free(one);
    free(md);
    tsi_pipeline_finish(p);
    tsi_pipeline_free(p, true);
    tsi_ingest_close(in);
}

/* The collector as a process: the simulator stops answering one intersection's MapData
 * (an RSU out of service); the next full MapData answer retires it; when it answers again,
 * the intersection is current again. */
static void test_mapdata_retired_live(void **state)
{
    (void)state;
    start_sim(NULL);
    th_proc col;
    const char *env[] = {"TSI_MAPDATA_SECONDS=5", "TSI_MAPDATA_FULL_SECONDS=5", NULL};
    start_collect(&col, env);
    PGconn *db = th_connect("tsi_reader");
    const char *n_known = "SELECT count(*) FROM intersections";
    const char *n_retired =
        "SELECT count(*) FROM intersections WHERE jsonb_typeof(metadata->'retired_at') = 'string'";
    for (int i = 0; i < 300 && th_int(db, n_known) < NISECT; i++)
        usleep(100000);
    assert_int_equal(th_int(db, n_known), NISECT);
    char url[160], *body = NULL;
    snprintf(url, sizeof url, "http://127.0.0.1:%d/sim/faults", sim_port);
    assert_int_equal(th_http("POST", url, NULL, "{\"mapdata_withdrawn\":3}", &body, NULL), 200);
    free(body);
    for (int i = 0; i < 300 && th_int(db, n_retired) < 1; i++)
        usleep(100000);
    assert_int_equal(th_int(db, n_retired), 1);
    long long id = th_int(db, "SELECT id FROM intersections"
                              " WHERE jsonb_typeof(metadata->'retired_at') = 'string'");
    /* the one retired is the one whose MapData the simulator no longer answers */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/api/auth/client", sim_port);
    body = NULL;
    assert_int_equal(
        th_http("POST", url, NULL, "client_id=tsi-sim&client_secret=tsi-sim-secret", &body, NULL),
        200);
    tsi_json d;
    tsi_error e = {0};
    assert_true(tsi_json_parse_alloc(&d, body, strlen(body), 64, &e) > 0);
    char tok[1024], auth[1100];
    assert_true(tsi_json_str(&d, tsi_json_get(&d, 0, "access_token"), tok, sizeof tok) > 0);
    tsi_json_free(&d);
    free(body);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", tok);
    const char *hdr[] = {auth, NULL};
    snprintf(url, sizeof url, "http://127.0.0.1:%d/api/mapdata/%lld/decoded", sim_port, id);
    body = NULL;
    assert_int_equal(th_http("GET", url, hdr, NULL, &body, NULL), 404);
    free(body);
    char sql[200];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM safety_indices_latest WHERE intersection_id = %lld", id);
    assert_int_equal(th_int(db, sql), 0);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/sim/faults", sim_port);
    body = NULL;
    assert_int_equal(th_http("POST", url, NULL, "{\"mapdata_withdrawn\":0}", &body, NULL), 200);
    free(body);
    for (int i = 0; i < 300 && th_int(db, n_retired) > 0; i++)
        usleep(100000);
    assert_int_equal(th_int(db, n_retired), 0);
    char *log = th_proc_log(&col);
    stop_collect(&col);
    assert_non_null(strstr(log, "intersection retired"));
    free(log);
    PQfinish(db);
    th_proc_stop(&sim);
}

int main(void)
{
    th_require_cluster();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_clean_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clean_run_legacy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_faults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill9_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_frame_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clock_skew_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mapdata_retired, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mapdata_retired_live, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
