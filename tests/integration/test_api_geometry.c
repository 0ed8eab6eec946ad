/* Integration tests of the lane geometry (issue 16): MapData lanes through the collector's
 * pipeline and the ingest spool into intersections.metadata.lane_geometry (a metadata far
 * larger than the old fixed 1 KiB buffer), the lanes `tsi seed` writes, and
 * GET /api/v2/intersections/geometry of `tsi serve`: its shape against openapi.json,
 * coordinates and counts computed by the test (PostgreSQL/PostGIS arithmetic and the
 * MapData the test wrote), the bbox margin and limit, malformed stored geometry skipped,
 * and a 400 for every bad bbox or limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/stat.h>
#include <zlib.h>

#include "base/buf.h"
#include "pipeline/pipeline.h"
#include "db/ingest.h"
#include "openapi_check.h"
#include "test_api_util.h"

static char db[64];
static char work[256];
static api_srv srv;
static PGconn *owner;

/* the MapData intersection of the collector test: region 3, id 77 */
#define MD_ID      (3 * 65536 + 77)
#define MD_LAT     38.9
#define MD_LON     -77.2
#define MD_LANES   24 /* lanes of 8 nodes: ~5 KB of lane geometry */
#define MD_NODES   8
#define SEED_N     3
#define OTHER_ID   9001 /* hand-written geometry, far from the rest */
#define OTHER_LAT  10.0
#define OTHER_LON  20.0
#define BAD_ID     9002 /* malformed geometry of every kind, 0.004 deg east of OTHER */
#define OUTSIDE_ID 9003 /* 0.006 deg east of OTHER: outside the 0.005 deg margin */

static double node_lat(int k, int j)
{
    return MD_LAT + (k - MD_LANES / 2) * 1.1e-4 + j * 1.23456789e-5;
}
static double node_lon(int k, int j)
{
    return MD_LON - (k % 5) * 7.7e-5 - j * 2.3456789e-5;
}
static const char *lane_kind(int k) /* MapData laneType, and the stored type */
{
    return k % 6 == 5 ? "crosswalk" : k % 6 == 4 ? "bikeLane" : "vehicle";
}

static int setup(void **state)
{
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    th_db_create(db);
    owner = th_connect("tsi_owner");
    snprintf(work, sizeof work, "/tmp/tsi-geometry-%d", (int)getpid());
    mkdir(work, 0755);
    char arch[300];
    snprintf(arch, sizeof arch, "%s/archive", work);
    mkdir(arch, 0755);

    /* 1. `tsi seed` lays out SEED_N intersections with lanes */
    char out[4096];
    const char *args[] = {"seed", "--intersections", "3", "--days", "1", "--no-parquet", NULL};
    static char env_arch[320];
    snprintf(env_arch, sizeof env_arch, "TSI_ARCHIVE_DIR=%s", arch);
    const char *env[] = {env_arch, NULL};
    if (th_run_tsi(args, env, out, sizeof out) != 0)
        fail_msg("tsi seed failed: %s", out);

    /* 2. hand-written geometry: one good intersection, one with every malformed shape,
     *    one just outside the bbox margin */
    th_sqlf(owner,
            "INSERT INTO intersections (id, name, latitude, longitude, geometry, metadata) VALUES"
            " (%d, 'Other', %.1f, %.1f, ST_SetSRID(ST_MakePoint(%.1f, %.1f), 4326),"
            "  '{\"lane_geometry\":[{\"id\":5,\"type\":\"vehicle\",\"ingress\":2,"
            "\"nodes\":[[10.0001,20.0002],[10.0003,20.0004],[10.0005,20.0006]]},"
            "{\"id\":6,\"type\":\"crosswalk\",\"nodes\":[[9.9999,19.9998],[9.9997,19.9996]]}]}'),"
            " (%d, 'Bad', %.1f, %.3f, ST_SetSRID(ST_MakePoint(%.3f, %.1f), 4326),"
            "  '{\"lane_geometry\":[{\"id\":1,\"nodes\":[[10,20]]}," /* one node */
            "{\"id\":2,\"nodes\":\"x\"},"                            /* not an array */
            "{\"id\":3,\"nodes\":[[\"a\",\"b\"],{\"lat\":1},[1e400,5],[91,1],[1,181]]},"
            "{\"id\":\"seven\",\"type\":42,\"nodes\":[[10,20.004],[10.001,20.004],[1e400,1]]},"
            "7, null, \"lane\"]}'),"
            " (%d, 'Outside', %.1f, %.3f, ST_SetSRID(ST_MakePoint(%.3f, %.1f), 4326),"
            "  '{\"lane_geometry\":[{\"id\":1,\"nodes\":[[10,20.006],[10.001,20.006]]}]}'),"
            " (9004, 'Text', %.1f, %.3f, ST_SetSRID(ST_MakePoint(%.3f, %.1f), 4326),"
            "  '{\"lane_geometry\":\"not lanes\"}')",
            OTHER_ID, OTHER_LAT, OTHER_LON, OTHER_LON, OTHER_LAT, BAD_ID, OTHER_LAT,
            OTHER_LON + 0.004, OTHER_LON + 0.004, OTHER_LAT, OUTSIDE_ID, OTHER_LAT,
            OTHER_LON + 0.006, OTHER_LON + 0.006, OTHER_LAT, OTHER_LAT, OTHER_LON + 0.002,
            OTHER_LON + 0.002, OTHER_LAT);

    const char *sargs[] = {"--threads", "4", NULL};
    static char env_web[320];
    snprintf(env_web, sizeof env_web, "TSI_WEB_DIR=%s", work);
    const char *senv[] = {env_web, env_arch, NULL};
    srv_start(&srv, sargs, senv);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    api_teardown(&srv, owner, db, work);
    return 0;
}

/* ---- the collector: MapData → pipeline → spool → intersections.metadata -------------- */
static void test_collector_stores_lanes(void **state)
{
    (void)state;
    tsi_buf md = TSI_BUF_INIT;
    tsi_buf_printf(&md,
                   "{\"intersections\":[{\"id\":{\"region\":3,\"id\":77},\"revision\":2,"
                   "\"name\":\"Lanes Ave\",\"refPoint\":{\"lat\":%.1f,\"lon\":%.1f},"
                   "\"laneWidth\":3.5,\"laneSet\":[",
                   MD_LAT, MD_LON);
    for (int k = 0; k < MD_LANES; k++) {
        tsi_buf_printf(&md,
                       "%s{\"laneID\":%d,\"ingressApproach\":%d,%s\"laneAttributes\":{"
                       "\"laneType\":{\"%s\":{}}},\"nodesList\":{\"nodes\":[",
                       k ? "," : "", k + 1, k % 4 + 1, k % 2 ? "\"egressApproach\":9," : "",
                       lane_kind(k));
        for (int j = 0; j < MD_NODES; j++)
            tsi_buf_printf(&md, "%s{\"delta\":{\"lat\":%.10f,\"lon\":%.10f}}", j ? "," : "",
                           node_lat(k, j), node_lon(k, j));
        tsi_buf_puts(&md, "]}}");
    }
    tsi_buf_puts(&md, "]}]}");

    char spool[300], arch[300];
    snprintf(spool, sizeof spool, "%s/spool", work);
    snprintf(arch, sizeof arch, "%s/collect-archive", work);
    mkdir(arch, 0755);
    tsi_ingest_config icfg = {.spool_dir = spool, .retry_min_ms = 50, .retry_max_ms = 500};
    tsi_ingest *in = NULL;
    tsi_error e = {0};
    if (tsi_ingest_open(&in, &icfg, &e) < 0)
        fail_msg("ingest open: %s %s", e.message, e.detail);
    tsi_pipeline_config pcfg = {.archive_root = arch};
    tsi_pipeline *p = NULL;
    if (tsi_pipeline_new(&p, &pcfg, in, &e) < 0)
        fail_msg("pipeline: %s %s", e.message, e.detail);
    int64_t now = (int64_t)time(NULL) * 1000;
    assert_int_equal(tsi_pipeline_mapdata(p, md.data, md.len, now), 1);
    tsi_pipeline_finish(p);
    tsi_pipeline_free(p, true);
    assert_int_equal(tsi_ingest_sync(in, 20000), 0);
    tsi_ingest_stats st;
    tsi_ingest_get_stats(in, &st);
    assert_int_equal(st.isects_written, 1);
    tsi_ingest_close(in);

    /* stored: the scalars, and one entry per lane, nodes rounded to 1e-7 deg */
    assert_true(th_intf(owner, "SELECT length(metadata::text) FROM intersections WHERE id = %d",
                        MD_ID) > 1024);
    assert_int_equal(th_intf(owner,
                             "SELECT (metadata->>'lanes')::int + (metadata->>'local_id')::int"
                             " FROM intersections WHERE id = %d",
                             MD_ID),
                     MD_LANES + 77);
    assert_int_equal(th_intf(owner,
                             "SELECT jsonb_array_length(metadata->'lane_geometry') FROM"
                             " intersections WHERE id = %d",
                             MD_ID),
                     MD_LANES);
    for (int k = 0; k < MD_LANES; k++) {
        const char *want = strcmp(lane_kind(k), "bikeLane") == 0 ? "bike" : lane_kind(k);
        char sql[600];
        snprintf(sql, sizeof sql,
                 "SELECT concat_ws('|', l->>'id', l->>'type', l->>'ingress', l->>'egress',"
                 " jsonb_array_length(l->'nodes')) FROM intersections,"
                 " jsonb_extract_path(metadata, 'lane_geometry', '%d') l WHERE id = %d",
                 k, MD_ID);
        char *got = th_value(owner, sql);
        char exp[120];
        if (k % 2)
            snprintf(exp, sizeof exp, "%d|%s|%d|9|%d", k + 1, want, k % 4 + 1, MD_NODES);
        else
            snprintf(exp, sizeof exp, "%d|%s|%d|%d", k + 1, want, k % 4 + 1, MD_NODES);
        assert_string_equal(got, exp);
        free(got);
        for (int j = 0; j < MD_NODES; j++) {
            /* PostgreSQL rounds the value the test wrote; the stored number must equal it */
            long long ok = th_intf(owner,
                                   "SELECT ((n->>0)::numeric = round(%.10f::numeric, 7) AND"
                                   " (n->>1)::numeric = round(%.10f::numeric, 7))::int"
                                   " FROM intersections, jsonb_extract_path(metadata,"
                                   " 'lane_geometry', '%d', 'nodes', '%d') n WHERE id = %d",
                                   node_lat(k, j), node_lon(k, j), k, j, MD_ID);
            if (ok != 1)
                fail_msg("lane %d node %d differs from the MapData", k, j);
        }
    }

    /* the API gives them back as LineStrings in [lon, lat] order */
    char path[200];
    snprintf(path, sizeof path, "/api/v2/intersections/geometry?bbox=%.4f,%.4f,%.4f,%.4f",
             MD_LON - 0.001, MD_LAT - 0.001, MD_LON + 0.001, MD_LAT + 0.001);
    resp r;
    jdoc j;
    get_json(srv.port, path, &r, &j);
    int feats = tsi_json_get(&j.d, 0, "features");
    assert_int_equal(jcount(&j, feats), MD_LANES);
    for (int k = 0; k < MD_LANES; k++) {
        int f = jat(&j, feats, k);
        int props = tsi_json_get(&j.d, f, "properties");
        assert_int_equal((long long)jnum(&j, props, "intersection_id"), MD_ID);
        assert_int_equal((long long)jnum(&j, props, "lane_id"), k + 1);
        int coords = tsi_json_get(&j.d, tsi_json_get(&j.d, f, "geometry"), "coordinates");
        assert_int_equal(jcount(&j, coords), MD_NODES);
        for (int n = 0; n < MD_NODES; n++) {
            int pt = jat(&j, coords, n);
            double lon, lat;
            tsi_json_num(&j.d, jat(&j, pt, 0), &lon);
            tsi_json_num(&j.d, jat(&j, pt, 1), &lat);
            if (fabs(lat - node_lat(k, n)) > 0.51e-7 || fabs(lon - node_lon(k, n)) > 0.51e-7)
                fail_msg("lane %d node %d: [%.9f, %.9f], want [%.9f, %.9f]", k, n, lon, lat,
                         node_lon(k, n), node_lat(k, n));
        }
    }
    jfree(&j);
    resp_free(&r);
    tsi_buf_free(&md);
}

/* ---- the spool: an intersection record of the old fixed-size layout still replays;
 *      metadata over the limit is refused --------------------------------------------- */
static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void test_spool_legacy_and_limit(void **state)
{
    (void)state;
    char dir[300], path[400];
    snprintf(dir, sizeof dir, "%s/spool-legacy", work);
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/ingest.spool", dir);
    /* the layout before lane geometry: int64 id, char name[128], double lat, lon, int
     * lane_count, revision, char metadata[1024] (NUL-padded) = 1184 bytes, little-endian */
    unsigned char pay[1184];
    memset(pay, 0, sizeof pay);
    int64_t id = 4242;
    double la = 45.5, lo = -122.6;
    int32_t lc = 3, rev = 5;
    memcpy(pay, &id, 8);
    memcpy(pay + 8, "Legacy Rd", 9);
    memcpy(pay + 136, &la, 8);
    memcpy(pay + 144, &lo, 8);
    memcpy(pay + 152, &lc, 4);
    memcpy(pay + 156, &rev, 4);
    const char *md = "{\"source\":\"old\"}";
    memcpy(pay + 160, md, strlen(md));
    /* frame: "TSIS" magic, type 2, version 1, two zero bytes, length, crc32 of bytes 4..11
     * of the header and the payload (zlib's crc32) */
    unsigned char hdr[16] = {0x54, 0x53, 0x49, 0x53, 2, 1, 0, 0};
    uint32_t len = sizeof pay;
    hdr[8] = (unsigned char)len;
    hdr[9] = (unsigned char)(len >> 8);
    uLong c = crc32(0L, Z_NULL, 0);
    c = crc32(c, hdr + 4, 8);
    c = crc32(c, pay, sizeof pay);
    for (int i = 0; i < 4; i++)
        hdr[12 + i] = (unsigned char)(c >> (8 * i));
    assert_int_equal(le32(hdr), 0x53495354u);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(hdr, 1, sizeof hdr, f), sizeof hdr);
    assert_int_equal(fwrite(pay, 1, sizeof pay, f), sizeof pay);
    fclose(f);

    tsi_ingest_config icfg = {.spool_dir = dir, .retry_min_ms = 50, .retry_max_ms = 500};
    tsi_ingest *in = NULL;
    tsi_error e = {0};
    if (tsi_ingest_open(&in, &icfg, &e) < 0)
        fail_msg("ingest open: %s %s", e.message, e.detail);
    assert_int_equal(tsi_ingest_sync(in, 20000), 0);
    tsi_ingest_stats st;
    tsi_ingest_get_stats(in, &st);
    assert_int_equal(st.spool_corrupt, 0);
    assert_int_equal(st.isects_written, 1);
    char *got = th_value(owner, "SELECT concat_ws('|', name, latitude, longitude, lane_count,"
                                " revision, metadata->>'source') FROM intersections WHERE"
                                " id = 4242");
    assert_string_equal(got, "Legacy Rd|45.5|-122.6|3|5|old");
    free(got);

    /* metadata of exactly the limit is taken; one byte more is refused */
    size_t big = TSI_ISECT_METADATA_MAX;
    char *m = malloc(big + 2);
    memset(m, ' ', big + 1);
    m[0] = '{';
    m[big - 1] = '}';
    m[big] = '\0';
    tsi_isect_row row;
    memset(&row, 0, sizeof row);
    row.id = 4243;
    snprintf(row.name, sizeof row.name, "Big");
    row.latitude = 45.6;
    row.longitude = -122.7;
    row.lane_count = row.revision = -1;
    row.metadata = m;
    assert_int_equal(tsi_ingest_add_isects(in, &row, 1, &e), 0);
    m[big] = ' ';
    m[big + 1] = '\0';
    assert_int_equal(tsi_ingest_add_isects(in, &row, 1, &e), TSI_E_TOO_BIG);
    assert_int_equal(tsi_ingest_sync(in, 20000), 0);
    tsi_ingest_get_stats(in, &st);
    assert_int_equal(st.isects_written, 2);
    assert_int_equal(th_int(owner, "SELECT count(*) FROM intersections WHERE id = 4243 AND"
                                   " metadata = '{}'::jsonb"),
                     1);
    free(m);
    tsi_ingest_close(in);
    th_sqlf(owner, "DELETE FROM intersections WHERE id IN (4242, 4243)");
}

/* ---- tsi seed: a four-leg junction per intersection --------------------------------- */
static void test_seed_lanes(void **state)
{
    (void)state;
    for (int id = 1; id <= SEED_N; id++) {
        /* lane_count vehicle lanes and 4 crosswalks */
        assert_int_equal(
            th_intf(owner,
                    "SELECT count(*) FILTER (WHERE l->>'type' = 'vehicle') - lane_count"
                    " + 100 * count(*) FILTER (WHERE l->>'type' = 'crosswalk') FROM"
                    " intersections, jsonb_array_elements(metadata->'lane_geometry') l"
                    " WHERE id = %d GROUP BY lane_count",
                    id),
            400);
        /* great-circle distances from the intersection (PostGIS, on its sphere of radius
         * 6371008.8 m as core/geo.h): vehicle lanes start at
         * hypot(8, 1.75) or hypot(8, 5.25) m and end at hypot(60, ...) m; crosswalk ends
         * are hypot(6, 10) m away and 20 m apart */
        const char *dist = "ST_Distance(i.geometry::geography, ST_SetSRID(ST_MakePoint("
                           "(l->'nodes'->%d->>1)::float8, (l->'nodes'->%d->>0)::float8),"
                           " 4326)::geography, false)";
        char q[1400], d0[300], d2[300];
        snprintf(d0, sizeof d0, dist, 0, 0);
        snprintf(d2, sizeof d2, dist, 2, 2);
        snprintf(q, sizeof q,
                 "SELECT count(*) FROM intersections i,"
                 " jsonb_array_elements(i.metadata->'lane_geometry') l WHERE i.id = %d AND"
                 " l->>'type' = 'vehicle' AND NOT ((abs(%s - sqrt(64 + 1.75 ^ 2)) < 0.05 OR"
                 " abs(%s - sqrt(64 + 5.25 ^ 2)) < 0.05) AND (abs(%s - sqrt(3600 + 1.75 ^ 2))"
                 " < 0.1 OR abs(%s - sqrt(3600 + 5.25 ^ 2)) < 0.1))",
                 id, d0, d0, d2, d2);
        assert_int_equal(th_int(owner, q), 0);
        snprintf(d2, sizeof d2, dist, 1, 1);
        snprintf(q, sizeof q,
                 "SELECT count(*) FROM intersections i,"
                 " jsonb_array_elements(i.metadata->'lane_geometry') l WHERE i.id = %d AND"
                 " l->>'type' = 'crosswalk' AND NOT (abs(%s - sqrt(136)) < 0.05 AND"
                 " abs(%s - sqrt(136)) < 0.05 AND abs(ST_Distance(ST_SetSRID(ST_MakePoint("
                 "(l->'nodes'->0->>1)::float8, (l->'nodes'->0->>0)::float8), 4326)::geography,"
                 " ST_SetSRID(ST_MakePoint((l->'nodes'->1->>1)::float8,"
                 " (l->'nodes'->1->>0)::float8), 4326)::geography, false) - 20) < 0.05)",
                 id, d0, d2);
        assert_int_equal(th_int(owner, q), 0);
    }
    /* the API returns every seeded lane of the bbox of all seeded intersections */
    double la0 = th_double(owner, "SELECT min(latitude) FROM intersections WHERE id <= 3");
    double la1 = th_double(owner, "SELECT max(latitude) FROM intersections WHERE id <= 3");
    double lo0 = th_double(owner, "SELECT min(longitude) FROM intersections WHERE id <= 3");
    double lo1 = th_double(owner, "SELECT max(longitude) FROM intersections WHERE id <= 3");
    char path[240];
    snprintf(path, sizeof path, "/api/v2/intersections/geometry?bbox=%.7f,%.7f,%.7f,%.7f",
             lo0 - 1e-4, la0 - 1e-4, lo1 + 1e-4, la1 + 1e-4);
    resp r;
    jdoc j;
    get_json(srv.port, path, &r, &j);
    long long want =
        th_intf(owner,
                "SELECT sum(jsonb_array_length(metadata->'lane_geometry')) FROM"
                " intersections WHERE latitude BETWEEN %.7f AND %.7f AND longitude"
                " BETWEEN %.7f AND %.7f",
                la0 - 1e-4 - 0.005, la1 + 1e-4 + 0.005, lo0 - 1e-4 - 0.005, lo1 + 1e-4 + 0.005);
    assert_true(want >= SEED_N * 8);
    assert_int_equal(jcount(&j, tsi_json_get(&j.d, 0, "features")), want);
    jfree(&j);
    resp_free(&r);
}

/* ---- the endpoint: shape, margin, limit, malformed geometry -------------------------- */
static void validate(const resp *r, const char *what)
{
    resp doc = get(srv.port, "/api/v2/openapi.json");
    jdoc d, v;
    jparse(&d, &doc);
    jparse(&v, r);
    char err[600];
    int s = oa_response_schema(&d.d, "/api/v2/intersections/geometry", "get", "200",
                               "application/geo+json", err, sizeof err);
    if (s < 0)
        fail_msg("%s", err);
    if (oa_validate_strict(&d.d, s, &v.d, 0, err, sizeof err) < 0)
        fail_msg("%s: %s", what, err);
    (void)oa_validate; /* the strict form is the one used here */
    jfree(&d);
    jfree(&v);
    resp_free(&doc);
}

static void test_geometry_endpoint(void **state)
{
    (void)state;
    /* bbox around OTHER only: OTHER (inside), BAD (0.004 deg east: in the margin), Text
     * (not an array: skipped); OUTSIDE (0.006 deg) is not */
    resp r = get(srv.port, "/api/v2/intersections/geometry?bbox=19.999,9.999,20.0001,10.001");
    assert_int_equal(r.status, 200);
    char h[128];
    assert_true(resp_header(&r, "Content-Type", h, sizeof h));
    assert_non_null(strstr(h, "application/geo+json"));
    validate(&r, "bbox around OTHER");
    jdoc j;
    jparse(&j, &r);
    int feats = tsi_json_get(&j.d, 0, "features");
    /* OTHER's 2 lanes, BAD's only well-formed lane (ids: "seven" → no lane_id), after
     * dropping the bad nodes: 2 nodes left */
    assert_int_equal(jcount(&j, feats), 3);
    assert_int_equal((long long)jnum(&j, 0, "intersections"), 2);
    assert_false(jbool(&j, 0, "truncated"));
    int bb = tsi_json_get(&j.d, 0, "bbox");
    double x;
    tsi_json_num(&j.d, jat(&j, bb, 0), &x);
    assert_near(x, 19.999, 1e-12, "bbox[0]");
    tsi_json_num(&j.d, jat(&j, bb, 3), &x);
    assert_near(x, 10.001, 1e-12, "bbox[3]");

    int f0 = jat(&j, feats, 0), p0 = tsi_json_get(&j.d, f0, "properties");
    assert_int_equal((long long)jnum(&j, p0, "intersection_id"), OTHER_ID);
    assert_int_equal((long long)jnum(&j, p0, "lane_id"), 5);
    assert_int_equal((long long)jnum(&j, p0, "ingress_approach"), 2);
    assert_true(tsi_json_get(&j.d, p0, "egress_approach") < 0);
    char t[32];
    jstr(&j, p0, "lane_type", t, sizeof t);
    assert_string_equal(t, "vehicle");
    int g0 = tsi_json_get(&j.d, f0, "geometry");
    jstr(&j, g0, "type", t, sizeof t);
    assert_string_equal(t, "LineString");
    int c0 = tsi_json_get(&j.d, g0, "coordinates");
    static const double want0[3][2] = {{20.0002, 10.0001}, {20.0004, 10.0003}, {20.0006, 10.0005}};
    assert_int_equal(jcount(&j, c0), 3);
    for (int k = 0; k < 3; k++) {
        int pt = jat(&j, c0, k);
        for (int m = 0; m < 2; m++) {
            tsi_json_num(&j.d, jat(&j, pt, m), &x);
            assert_near(x, want0[k][m], 1e-12, "OTHER lane 5");
        }
    }
    int p1 = tsi_json_get(&j.d, jat(&j, feats, 1), "properties");
    jstr(&j, p1, "lane_type", t, sizeof t);
    assert_string_equal(t, "crosswalk");
    int f2 = jat(&j, feats, 2), p2 = tsi_json_get(&j.d, f2, "properties");
    assert_int_equal((long long)jnum(&j, p2, "intersection_id"), BAD_ID);
    assert_true(tsi_json_get(&j.d, p2, "lane_id") < 0);   /* "seven" is no number */
    assert_true(tsi_json_get(&j.d, p2, "lane_type") < 0); /* 42 is no string */
    int c2 = tsi_json_get(&j.d, tsi_json_get(&j.d, f2, "geometry"), "coordinates");
    assert_int_equal(jcount(&j, c2), 2);
    jfree(&j);
    resp_free(&r);

    /* limit=1: the first intersection by id only, truncated */
    r = get(srv.port, "/api/v2/intersections/geometry?bbox=19.999,9.999,20.0001,10.001&limit=1");
    assert_int_equal(r.status, 200);
    validate(&r, "limit=1");
    jparse(&j, &r);
    assert_int_equal(jcount(&j, tsi_json_get(&j.d, 0, "features")), 2);
    assert_int_equal((long long)jnum(&j, 0, "intersections"), 1);
    assert_true(jbool(&j, 0, "truncated"));
    jfree(&j);
    resp_free(&r);

    /* wider: OUTSIDE comes in */
    r = get(srv.port, "/api/v2/intersections/geometry?bbox=19.999,9.999,20.002,10.001");
    jparse(&j, &r);
    assert_int_equal(jcount(&j, tsi_json_get(&j.d, 0, "features")), 4);
    jfree(&j);
    resp_free(&r);

    /* empty ocean: a valid empty collection */
    r = get(srv.port, "/api/v2/intersections/geometry?bbox=-30.5,-40.5,-30,-40");
    assert_int_equal(r.status, 200);
    validate(&r, "empty");
    jparse(&j, &r);
    assert_int_equal(jcount(&j, tsi_json_get(&j.d, 0, "features")), 0);
    assert_int_equal((long long)jnum(&j, 0, "intersections"), 0);
    jfree(&j);
    resp_free(&r);
}

/* ---- bad input: every one a 400 naming its field -------------------------------------- */
static void test_geometry_bad_input(void **state)
{
    (void)state;
    static const struct {
        const char *q;
        const char *field;
    } bad[] = {
        {"", "bbox"},
        {"?bbox=", "bbox"},
        {"?bbox=1,2,3", "bbox"},
        {"?bbox=1,2,3,4,5", "bbox"},
        {"?bbox=1,2,3,4,", "bbox"},
        {"?bbox=,1,2,3", "bbox"},
        {"?bbox=1,,3,4", "bbox"},
        {"?bbox=a,b,c,d", "bbox"},
        {"?bbox=1;2;3;4", "bbox"},
        {"?bbox=1%202,2,3,4", "bbox"},
        {"?bbox=nan,0,1,1", "bbox"},
        {"?bbox=inf,0,1,1", "bbox"},
        {"?bbox=0,0,1e999,1", "bbox"},
        {"?bbox=0x1,0,1,1", "bbox"},
        {"?bbox=-181,0,-180.5,1", "bbox"},
        {"?bbox=179.5,0,180.5,1", "bbox"},
        {"?bbox=0,-90.5,1,-90", "bbox"},
        {"?bbox=0,89.5,1,90.5", "bbox"},
        {"?bbox=2,0,1,1", "bbox"},   /* min_lon > max_lon */
        {"?bbox=0,1,1,0", "bbox"},   /* min_lat > max_lat */
        {"?bbox=0,0,0,1", "bbox"},   /* empty */
        {"?bbox=0,0,1.5,1", "bbox"}, /* too wide */
        {"?bbox=0,0,1,1.01", "bbox"},
        {"?bbox=%00,0,1,1", "bbox"},
        {"?bbox=%E2%80%8B1,0,1,1", "bbox"},
        {"?bbox='1;DROP%20TABLE%20intersections;--,0,1,1", "bbox"},
        {"?bbox=0,0,1,1&limit=0", "limit"},
        {"?bbox=0,0,1,1&limit=5001", "limit"},
        {"?bbox=0,0,1,1&limit=ten", "limit"},
        {"?bbox=0,0,1,1&limit=1.5", "limit"},
        {"?bbox=0,0,1,1&limit=99999999999999999999", "limit"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char path[300];
        snprintf(path, sizeof path, "/api/v2/intersections/geometry%s", bad[i].q);
        resp r = get(srv.port, path);
        if (r.status != 400)
            fail_msg("%s: status %ld, want 400: %s", path, r.status, r.body);
        jdoc j;
        jparse(&j, &r);
        char field[32], code[64];
        jstr(&j, 0, "field", field, sizeof field);
        jstr(&j, 0, "code", code, sizeof code);
        if (strcmp(field, bad[i].field) != 0)
            fail_msg("%s: field %s, want %s", path, field, bad[i].field);
        assert_true(strcmp(code, "invalid_parameter") == 0 ||
                    strcmp(code, "missing_parameter") == 0);
        jfree(&j);
        resp_free(&r);
    }
    /* a 10,000-character bbox */
    char *path = malloc(10100);
    strcpy(path, "/api/v2/intersections/geometry?bbox=");
    size_t n = strlen(path);
    memset(path + n, '9', 10000);
    path[n + 10000] = '\0';
    resp r = get(srv.port, path);
    assert_int_equal(r.status, 400);
    resp_free(&r);
    free(path);
    /* the table is still there, and the server still answers */
    assert_true(th_int(owner, "SELECT count(*) FROM intersections") >= SEED_N + 4);
    r = get(srv.port, "/health");
    assert_true(r.status == 200 || r.status == 503);
    resp_free(&r);
}

int main(void)
{
    th_require_cluster();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_collector_stores_lanes),
        cmocka_unit_test(test_spool_legacy_and_limit),
        cmocka_unit_test(test_seed_lanes),
        cmocka_unit_test(test_geometry_endpoint),
        cmocka_unit_test(test_geometry_bad_input),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
