/* tests/integration/test_openapi.c — GET /api/v1/openapi.json is kept true: every route of
 * a real `tsi serve` on seeded rows is called (valid parameters, and the 400 and 404 cases
 * the document declares) and each response body is validated against the schema the
 * document itself (as served) gives for that path, method, status and content type. A
 * mismatch fails with the JSON pointer of the offending value. The error statuses too:
 * 413 and 414 on every path, 405 for other methods, 503 from servers whose database is
 * unreachable (--source postgres, auto and parquet), 500 from a refused query. Also: the validator
 * on hand-made schemas (it must reject what it should, with the right pointer), coverage (every
 * declared path/method/200/400/404 is exercised), and GET /api/v1/config with
 * --tile-url, TSI_TILE_URL and neither. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "openapi_check.h"
#include "test_api_util.h"

static char db[64];
static api_srv srv;
static PGconn *owner;
static jdoc spec; /* the document served by srv */
static char day_today[16], day_ago3[16];
/* (template, status) pairs exercised outside cases[]; the coverage test counts them */
typedef struct {
    const char *tmpl;
    int status;
} oa_seen;
static oa_seen seen[512];
static int nseen;

static const char TILE_ENV[] = "https://tiles.example.org/{z}/{x}/{y}.png?k=\"q\"&l=\xc3\xbc";
static const char TILE_FLAG[] = "https://flag.example.org/{z}/{x}/{y}.png";

static const char SETUP_SQL[] =
    "SET TIME ZONE 'UTC';"
    "INSERT INTO intersections (id, name, latitude, longitude, geometry, lane_count, metadata)"
    " VALUES (101, 'Main & \"First\" — Ü', 38.87, -77.27,"
    "         ST_SetSRID(ST_MakePoint(-77.27, 38.87), 4326), 4, '{\"source\":\"test\"}'),"
    "        (102, 'Second & Elm', 38.88, -77.26, ST_SetSRID(ST_MakePoint(-77.26, 38.88), 4326),"
    "         2, '{}'),"
    "        (103, 'No data yet', 38.89, -77.25, ST_SetSRID(ST_MakePoint(-77.25, 38.89), 4326),"
    "         2, '{}');"
    /* 6 hours of minutes for 101 and 102, vru/vehicle null on some rows */
    "INSERT INTO safety_indices_realtime (intersection_id, \"timestamp\", combined_index,"
    " combined_index_eb, vru_index, vru_index_eb, vehicle_index, vehicle_index_eb, traffic_volume,"
    " vru_count, vehicle_event_count, vru_event_count, hour_of_day, day_of_week)"
    " SELECT i, t, si, si, CASE WHEN m % 5 = 0 THEN NULL ELSE si * 0.9 END, si * 0.8,"
    "  si * 0.7, si * 0.6, m % 13, m % 3, 0, 0, extract(hour FROM t), extract(isodow FROM t) - 1"
    " FROM (SELECT i, m, date_trunc('minute', now()) - interval '6 hours' + m * interval"
    "        '1 minute' AS t, (10 + (m * 7 + i) % 85)::float8 AS si"
    "       FROM generate_series(0, 6 * 60 - 2) m, (VALUES (101), (102)) v(i)) s;"
    "INSERT INTO safety_indices_hourly (intersection_id, hour_timestamp, avg_si, min_si, max_si,"
    " std_si, total_volume, avg_volume, high_risk_minutes, data_quality_score)"
    " SELECT intersection_id, date_trunc('hour', \"timestamp\"), avg(combined_index_eb),"
    "  min(combined_index_eb), max(combined_index_eb), stddev_samp(combined_index_eb),"
    "  sum(traffic_volume), avg(traffic_volume),"
    "  count(*) FILTER (WHERE combined_index_eb > 75), count(*) / 60.0"
    " FROM safety_indices_realtime GROUP BY 1, 2;"
    "INSERT INTO safety_indices_daily (intersection_id, date, avg_si, min_si, max_si, std_si,"
    " total_volume, avg_volume, high_risk_hours, peak_hour, peak_si)"
    " SELECT 101, (now() AT TIME ZONE 'UTC')::date - (11 - k), 20 + k, 10, 50 + k, 3,"
    "  1000 * k, 1000 * k / 1440.0, k % 3, 8, 40 + k FROM generate_series(1, 6) k;";

static void fetch_spec(void)
{
    resp r = get(srv.port, "/api/v1/openapi.json");
    if (r.status != 200)
        fail_msg("openapi.json: status %ld", r.status);
    jparse(&spec, &r);
    resp_free(&r);
}

static int setup(void **state)
{
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    unsetenv("TSI_TILE_URL");
    th_db_create(db);
    owner = th_connect("tsi_owner");
    char st[8];
    if (th_exec(owner, SETUP_SQL, st) != PGRES_COMMAND_OK)
        fail_msg("setup SQL failed (%s): %s", st, PQerrorMessage(owner));
    long long today = th_int(owner, "SELECT (now() AT TIME ZONE 'UTC')::date - date '1970-01-01'");
    time_t t = (time_t)(today * 86400);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(day_today, sizeof day_today, "%Y-%m-%d", &tm);
    t -= 3 * 86400;
    gmtime_r(&t, &tm);
    strftime(day_ago3, sizeof day_ago3, "%Y-%m-%d", &tm);
    static char e1[600];
    snprintf(e1, sizeof e1, "TSI_TILE_URL=%s", TILE_ENV);
    const char *env[] = {e1, "TSI_WEB_DIR=/nonexistent-tsi-web", NULL};
    srv_start(&srv, NULL, env);
    fetch_spec();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    srv_stop_clean(&srv);
    jfree(&spec);
    if (owner)
        PQfinish(owner);
    th_db_drop(db);
    curl_global_cleanup();
    return 0;
}

/* ---- the validator itself -------------------------------------------------------------- */
/* validates value text against schema text (the schema document may hold components) and
 * returns the error ("" when it passes) */
static bool strict_mode;
static const char *check_text(const char *schema_doc, const char *schema_ptr, const char *value)
{
    static char err[700];
    tsi_json sd, vd;
    tsi_error e = {0};
    if (tsi_json_parse_alloc(&sd, schema_doc, strlen(schema_doc), 4096, &e) < 0)
        fail_msg("bad schema text: %s", e.message);
    /* wrapped in [ ]: the reader wants a delimiter after a top-level number */
    static char wrapped[4096];
    snprintf(wrapped, sizeof wrapped, "[%s]", value);
    if (tsi_json_parse_alloc(&vd, wrapped, strlen(wrapped), 4096, &e) < 0)
        fail_msg("bad value text: %s", e.message);
    int s = oa_resolve(&sd, schema_ptr);
    assert_true(s >= 0);
    if (strict_mode)
        oa_validate_strict(&sd, s, &vd, tsi_json_first(&vd, 0), err, sizeof err);
    else
        oa_validate(&sd, s, &vd, tsi_json_first(&vd, 0), err, sizeof err);
    tsi_json_free(&sd);
    tsi_json_free(&vd);
    return err;
}

static void expect_fail(const char *sdoc, const char *sptr, const char *value, const char *prefix)
{
    const char *e = check_text(sdoc, sptr, value);
    if (strncmp(e, prefix, strlen(prefix)) != 0)
        fail_msg("value %s: expected an error starting \"%s\", got \"%s\"", value, prefix, e);
}

static void expect_pass(const char *sdoc, const char *sptr, const char *value)
{
    const char *e = check_text(sdoc, sptr, value);
    if (e[0])
        fail_msg("value %s: expected to pass, got \"%s\"", value, e);
}

static void test_validator(void **state)
{
    (void)state;
    static const char doc[] =
        "{\"components\":{\"schemas\":{"
        "\"P\":{\"type\":\"object\",\"required\":[\"id\",\"v\"],\"properties\":{"
        "  \"id\":{\"type\":\"integer\",\"minimum\":1},"
        "  \"v\":{\"type\":[\"number\",\"null\"],\"minimum\":0,\"maximum\":100},"
        "  \"lvl\":{\"type\":[\"string\",\"null\"],\"enum\":[\"Low\",\"High\",null]},"
        "  \"a/b~c\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/components/schemas/Q\"}}}},"
        "\"Q\":{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{"
        "  \"x\":{\"type\":\"boolean\"}}},"
        "\"O\":{\"oneOf\":[{\"$ref\":\"#/components/schemas/P\"},{\"type\":\"null\"}]},"
        "\"N\":{\"oneOf\":[{\"type\":\"number\"},{\"type\":\"integer\"}]},"
        "\"A\":{\"allOf\":[{\"$ref\":\"#/components/schemas/P\"}],\"properties\":{"
        "  \"d\":{\"type\":\"number\",\"exclusiveMinimum\":0}}},"
        "\"Y\":{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"integer\"}]},"
        "\"U\":{\"type\":\"string\",\"pattern\":\"^a\"},"
        "\"R\":{\"$ref\":\"#/components/schemas/Missing\"}}}}";
    const char *P = "#/components/schemas/P";
    expect_pass(doc, P, "{\"id\":1,\"v\":null,\"lvl\":null,\"a/b~c\":[{\"x\":true},{}]}");
    expect_pass(doc, P, "{\"id\":7,\"v\":100,\"lvl\":\"High\",\"extra\":\"ok\"}");
    expect_pass(doc, P, "{\"id\":2.0,\"v\":0}"); /* 2.0 is an integer in JSON Schema */
    expect_fail(doc, P, "[]", "(root): is array");
    expect_fail(doc, P, "{\"id\":1}", "(root): required property \"v\" is missing");
    expect_fail(doc, P, "{\"id\":1.5,\"v\":1}", "/id: is number");
    expect_fail(doc, P, "{\"id\":0,\"v\":1}", "/id: 0 is below the minimum 1");
    expect_fail(doc, P, "{\"id\":1,\"v\":100.5}", "/v: 100.5 is above the maximum 100");
    expect_fail(doc, P, "{\"id\":1,\"v\":\"5\"}", "/v: is string");
    expect_fail(doc, P, "{\"id\":1,\"v\":1,\"lvl\":\"low\"}", "/lvl: value \"low\" is not in");
    expect_fail(doc, P, "{\"id\":1,\"v\":1,\"lvl\":true}", "/lvl: is boolean");
    /* pointer escaping (RFC 6901): a/b~c -> a~1b~0c; array index; additionalProperties */
    expect_fail(doc, P, "{\"id\":1,\"v\":1,\"a/b~c\":[{},{\"x\":1}]}", "/a~1b~0c/1/x: is number");
    expect_fail(doc, P, "{\"id\":1,\"v\":1,\"a/b~c\":[{\"y\":1}]}",
                "/a~1b~0c/0/y: property not allowed");
    const char *O = "#/components/schemas/O";
    expect_pass(doc, O, "null");
    expect_pass(doc, O, "{\"id\":3,\"v\":4}");
    expect_fail(doc, O, "{\"id\":3}", "(root): matches no alternative of oneOf");
    expect_fail(doc, "#/components/schemas/N", "3", "(root): matches 2 alternatives of oneOf");
    expect_pass(doc, "#/components/schemas/N", "3.5");
    const char *A = "#/components/schemas/A";
    expect_pass(doc, A, "{\"id\":3,\"v\":4,\"d\":0.1}");
    expect_fail(doc, A, "{\"id\":3,\"v\":4,\"d\":0}", "/d: 0 is not above the exclusive minimum");
    expect_fail(doc, A, "{\"v\":4,\"d\":1}", "(root): required property \"id\"");
    expect_pass(doc, "#/components/schemas/Y", "\"s\"");
    expect_fail(doc, "#/components/schemas/Y", "1.5", "(root): matches no alternative of anyOf");
    /* a keyword the validator does not implement is an error, never silently passed */
    expect_fail(doc, "#/components/schemas/U", "\"abc\"", "(root): unsupported schema keyword");
    expect_fail(doc, "#/components/schemas/R", "1", "(root): $ref #/components/schemas/Missing");
    /* strict: a property no schema declares is refused (through $ref, allOf, oneOf) */
    strict_mode = true;
    expect_pass(doc, A, "{\"id\":3,\"v\":4,\"d\":1}");
    expect_fail(doc, A, "{\"id\":3,\"v\":4,\"d\":1,\"zz\":1}",
                "/zz: property not declared by the schema");
    expect_fail(doc, P, "{\"id\":7,\"v\":100,\"extra\":\"ok\"}",
                "/extra: property not declared by the schema");
    expect_fail(doc, O, "{\"id\":3,\"v\":4,\"w\":0}", "/w: property not declared");
    expect_fail(doc, P, "{\"id\":1,\"v\":1,\"a/b~c\":[{\"x\":true,\"q\":1}]}",
                "/a~1b~0c/0/q: property not allowed");
    strict_mode = false;
}

/* ---- every route against the served document ------------------------------------------- */
typedef struct oa_case {
    const char *tmpl; /* path template as in the document */
    const char *path; /* request path; "%T" = today, "%A" = three days ago */
    int status;
    const char *accept_ct; /* expected media type; NULL = application/json */
} oa_case;

#define WP                                                                                         \
    "%5B%7B%22lat%22%3A38.87%2C%22lon%22%3A-77.27%7D%2C%7B%22lat%22%3A38.89%2C%22lon%22%3A-77.25%" \
    "7D%5D"
#define PG                                                                                         \
    "%5B%7B%22lat%22%3A38.86%2C%22lon%22%3A-77.28%7D%2C%7B%22lat%22%3A38.86%2C%22lon%22%3A-77.24%" \
    "7D%2C%7B%22lat%22%3A38.90%2C%22lon%22%3A-77.24%7D%2C%7B%22lat%22%3A38.90%2C%22lon%22%3A-77."  \
    "28%"                                                                                          \
    "7D%5D"

static const oa_case cases[] = {
    {"/health", "/health", 200, NULL},
    {"/metrics", "/metrics", 200, "text/plain"},
    {"/api/v1/openapi.json", "/api/v1/openapi.json", 200, NULL},
    {"/api/v1/config", "/api/v1/config", 200, NULL},
    {"/api/v1/safety/index/", "/api/v1/safety/index/", 200, NULL},
    {"/api/v1/safety/index/{intersection_id}", "/api/v1/safety/index/101", 200, NULL},
    {"/api/v1/safety/index/{intersection_id}", "/api/v1/safety/index/abc", 400, NULL},
    {"/api/v1/safety/index/{intersection_id}", "/api/v1/safety/index/999", 404, NULL},
    {"/api/v1/safety/history/", "/api/v1/safety/history/?days=1", 200, NULL},
    {"/api/v1/safety/history/", "/api/v1/safety/history/?days=3&aggregation=1day", 200, NULL},
    {"/api/v1/safety/history/", "/api/v1/safety/history/?aggregation=2min", 400, NULL},
    {"/api/v1/safety/history/{intersection_id}",
     "/api/v1/safety/history/101?days=1&aggregation=1min", 200, NULL},
    {"/api/v1/safety/history/{intersection_id}", "/api/v1/safety/history/101?days=1", 200, NULL},
    {"/api/v1/safety/history/{intersection_id}", "/api/v1/safety/history/101?days=30", 200, NULL},
    {"/api/v1/safety/history/{intersection_id}",
     "/api/v1/safety/history/101?start_date=%A&end_date=%T&aggregation=1week", 200, NULL},
    {"/api/v1/safety/history/{intersection_id}",
     "/api/v1/safety/history/101?days=365&aggregation=1month", 200, NULL},
    {"/api/v1/safety/history/{intersection_id}", "/api/v1/safety/history/103?days=2", 200, NULL},
    {"/api/v1/safety/history/{intersection_id}", "/api/v1/safety/history/101?days=0", 400, NULL},
    {"/api/v1/safety/history/{intersection_id}", "/api/v1/safety/history/999?days=1", 404, NULL},
    {"/api/v1/safety/history/{intersection_id}/stats", "/api/v1/safety/history/101/stats?days=1",
     200, NULL},
    {"/api/v1/safety/history/{intersection_id}/stats",
     "/api/v1/safety/history/103/stats?start_date=%A&end_date=%T", 200, NULL},
    {"/api/v1/safety/history/{intersection_id}/stats", "/api/v1/safety/history/101/stats?days=-3",
     400, NULL},
    {"/api/v1/safety/history/{intersection_id}/stats", "/api/v1/safety/history/999/stats", 404,
     NULL},
    {"/api/v1/safety/compare", "/api/v1/safety/compare?ids=101,102,103,999&days=1", 200, NULL},
    {"/api/v1/safety/compare", "/api/v1/safety/compare?ids=1,a", 400, NULL},
    {"/api/v1/safety/ranking", "/api/v1/safety/ranking?days=1", 200, NULL},
    {"/api/v1/safety/ranking", "/api/v1/safety/ranking?metric=high_risk_percentage&order=asc", 200,
     NULL},
    {"/api/v1/safety/ranking", "/api/v1/safety/ranking?metric=total_volume&min_index=0&limit=2",
     200, NULL},
    {"/api/v1/safety/ranking", "/api/v1/safety/ranking?metric=foo", 400, NULL},
    {"/api/v1/intersections/nearby",
     "/api/v1/intersections/nearby?lat=38.87&lon=-77.27&radius=5000", 200, NULL},
    {"/api/v1/intersections/nearby",
     "/api/v1/intersections/nearby?lat=38.87&lon=-77.27&radius=5000&format=geojson", 200,
     "application/geo+json"},
    {"/api/v1/intersections/nearby", "/api/v1/intersections/nearby?lat=91&lon=0", 400, NULL},
    {"/api/v1/intersections/route", "/api/v1/intersections/route?waypoints=" WP "&buffer=500", 200,
     NULL},
    {"/api/v1/intersections/route",
     "/api/v1/intersections/route?waypoints=" WP "&buffer=500&format=geojson", 200,
     "application/geo+json"},
    {"/api/v1/intersections/route", "/api/v1/intersections/route?waypoints=%5B%5D", 400, NULL},
    {"/api/v1/intersections/area", "/api/v1/intersections/area?polygon=" PG, 200, NULL},
    {"/api/v1/intersections/area", "/api/v1/intersections/area?polygon=" PG "&format=geojson", 200,
     "application/geo+json"},
    {"/api/v1/intersections/area", "/api/v1/intersections/area?polygon=x", 400, NULL},
    {"/api/v1/intersections/geometry", "/api/v1/intersections/geometry?bbox=-77.3,38.8,-77.2,38.9",
     200, "application/geo+json"},
    {"/api/v1/intersections/geometry", "/api/v1/intersections/geometry?bbox=1,2", 400, NULL},
    {"/api/v1/intersections/{intersection_id}", "/api/v1/intersections/101", 200, NULL},
    {"/api/v1/intersections/{intersection_id}", "/api/v1/intersections/103", 200, NULL},
    {"/api/v1/intersections/{intersection_id}", "/api/v1/intersections/x1", 400, NULL},
    {"/api/v1/intersections/{intersection_id}", "/api/v1/intersections/999", 404, NULL},
};

static void expand(char *out, size_t len, const char *p)
{
    size_t j = 0;
    for (; *p && j + 12 < len; p++) {
        if (p[0] == '%' && (p[1] == 'T' || p[1] == 'A')) {
            j += (size_t)snprintf(out + j, len - j, "%s", p[1] == 'T' ? day_today : day_ago3);
            p++;
        } else
            out[j++] = *p;
    }
    out[j] = '\0';
}

/* validates one response against the served document; returns the number of values seen
 * in the body (tokens), so a test can tell that a body was not trivially empty */
static int check_response(const oa_case *k, const resp *r, const char *path)
{
    char ct[128] = "";
    if (!resp_header(r, "Content-Type", ct, sizeof ct))
        fail_msg("%s: no Content-Type", path);
    ct[strcspn(ct, "; ")] = '\0';
    const char *want_ct = k->accept_ct ? k->accept_ct : "application/json";
    if (strcmp(ct, want_ct) != 0)
        fail_msg("%s: Content-Type %s, want %s", path, ct, want_ct);
    char status[8], err[800];
    snprintf(status, sizeof status, "%ld", r->status);
    int s = oa_response_schema(&spec.d, k->tmpl, "get", status, ct, err, sizeof err);
    if (s < 0)
        fail_msg("%s: %s", path, err);
    if (strcmp(ct, "text/plain") == 0) {
        /* not JSON: the document must say it is a string, and it must be non-empty */
        char t[32];
        if (tsi_json_str(&spec.d, tsi_json_get(&spec.d, s, "type"), t, sizeof t) < 0 ||
            strcmp(t, "string") != 0)
            fail_msg("%s: text/plain schema is not {type: string}", path);
        assert_true(r->len > 0);
        return 1;
    }
    jdoc body;
    jparse(&body, r);
    if (oa_validate_strict(&spec.d, s, &body.d, 0, err, sizeof err) < 0)
        fail_msg("GET %s (%s %s): body does not match the document at %s\nbody: %.400s", path,
                 status, ct, err, r->body);
    int n = body.d.ntok;
    jfree(&body);
    return n;
}

static void test_routes_match_document(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[2048];
        expand(path, sizeof path, cases[i].path);
        resp r = get(srv.port, path);
        if (r.status != cases[i].status)
            fail_msg("GET %s: status %ld, want %d: %.300s", path, r.status, cases[i].status,
                     r.body);
        int n = check_response(&cases[i], &r, path);
        assert_true(n >= 1);
        resp_free(&r);
    }
    /* the 200 bodies that carry data really carried rows (a schema check of [] proves little) */
    static const char *const nonempty[] = {"/api/v1/safety/index/",
                                           "/api/v1/intersections/nearby?lat=38.87&lon=-77.27"
                                           "&radius=5000"};
    for (size_t i = 0; i < 2; i++) {
        resp r = get(srv.port, nonempty[i]);
        jdoc j;
        jparse(&j, &r);
        /* 101 and 102 have data; nearby also finds 103 (1.4 km from 101) */
        assert_true(jcount(&j, 0) >= 2);
        jfree(&j);
        resp_free(&r);
    }
}

/* a real body, broken in one place, fails with the pointer of that place */
static void test_mutated_body_fails(void **state)
{
    (void)state;
    const char *path = "/api/v1/safety/history/101?days=1&aggregation=1min";
    resp r = get(srv.port, path);
    assert_int_equal(r.status, 200);
    char err[800];
    int s = oa_response_schema(&spec.d, "/api/v1/safety/history/{intersection_id}", "get", "200",
                               "application/json", err, sizeof err);
    assert_true(s >= 0);
    /* the first traffic_volume of the body is data_points[0]'s */
    const char *k = "\"traffic_volume\":";
    char *at = strstr(r.body, k);
    assert_non_null(at);
    size_t pre = (size_t)(at - r.body) + strlen(k);
    const char *ins = "-1,\"_x\":";
    char *mut = malloc(r.len + strlen(ins) + 1);
    memcpy(mut, r.body, pre);
    strcpy(mut + pre, ins);
    strcat(mut, r.body + pre);
    tsi_json md;
    tsi_error e = {0};
    assert_true(tsi_json_parse_alloc(&md, mut, strlen(mut), 8 * 1024 * 1024, &e) > 0);
    assert_int_equal(oa_validate(&spec.d, s, &md, 0, err, sizeof err), -1);
    const char *want = "/data_points/0/traffic_volume: -1 is below the minimum 0";
    if (strcmp(err, want) != 0)
        fail_msg("got \"%s\", want \"%s\"", err, want);
    tsi_json_free(&md);
    /* the intact body passes; the same body against the Error schema does not */
    jdoc j;
    jparse(&j, &r);
    assert_int_equal(oa_validate(&spec.d, s, &j.d, 0, err, sizeof err), 0);
    int es = oa_response_schema(&spec.d, "/api/v1/safety/history/{intersection_id}", "get", "404",
                                "application/json", err, sizeof err);
    assert_true(es >= 0);
    assert_int_equal(oa_validate(&spec.d, es, &j.d, 0, err, sizeof err), -1);
    assert_string_equal(err, "(root): required property \"detail\" is missing");
    jfree(&j);
    free(mut);
    resp_free(&r);
}

/* every path, method and status the document declares is exercised above (200/400/404 by
 * cases[], 413/414/500/503 by the error-status tests, which run before this one) */
static void test_document_coverage(void **state)
{
    (void)state;
    const tsi_json *d = &spec.d;
    int paths = tsi_json_get(d, 0, "paths");
    assert_true(tsi_json_is_object(d, paths));
    int npaths = 0;
    for (int pk = tsi_json_first_key(d, paths); pk >= 0; pk = tsi_json_next_key(d, paths, pk)) {
        npaths++;
        char tmpl[256];
        if (tsi_json_str(d, pk, tmpl, sizeof tmpl) < 0)
            fail_msg("bad path key");
        for (int mk = tsi_json_first_key(d, pk + 1); mk >= 0;
             mk = tsi_json_next_key(d, pk + 1, mk)) {
            if (!tsi_json_key_is(d, mk, "get"))
                fail_msg("%s: method other than get declared; this test calls only GET", tmpl);
            int rs = tsi_json_get(d, mk + 1, "responses");
            for (int sk = tsi_json_first_key(d, rs); sk >= 0; sk = tsi_json_next_key(d, rs, sk)) {
                char st[8];
                if (tsi_json_str(d, sk, st, sizeof st) < 0)
                    fail_msg("bad status key");
                bool hit = false;
                for (size_t i = 0; i < sizeof cases / sizeof cases[0] && !hit; i++)
                    hit = strcmp(cases[i].tmpl, tmpl) == 0 && cases[i].status == atoi(st);
                for (int i = 0; i < nseen && !hit; i++)
                    hit = strcmp(seen[i].tmpl, tmpl) == 0 && seen[i].status == atoi(st);
                if (!hit)
                    fail_msg("document declares GET %s %s but no case exercises it", tmpl, st);
            }
        }
    }
    /* every case's template is in the document (checked again per response) */
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_true(tsi_json_get(d, paths, cases[i].tmpl) >= 0);
    assert_int_equal(npaths, 16);
}

/* ---- the error statuses: 413, 414, 500, 503 on every path that declares them, 405 ------ */

/* a request path that answers 200 for a template: the first such case, else a literal */
static void ok_path(const char *tmpl, char *out, size_t len)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (strcmp(cases[i].tmpl, tmpl) == 0 && cases[i].status == 200) {
            expand(out, len, cases[i].path);
            return;
        }
    static const char *const extra[][2] = {
        {"/api/v1/intersections/geometry",
         "/api/v1/intersections/geometry?bbox=-77.3,38.8,-77.2,38.9"},
    };
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++)
        if (strcmp(extra[i][0], tmpl) == 0) {
            snprintf(out, len, "%s", extra[i][1]);
            return;
        }
    fail_msg("no request path known for %s", tmpl);
}

/* a request with an optional body (any method) */
static resp req_body(int port, const char *method, const char *path, const char *body)
{
    CURL *c = curl_easy_init();
    resp r;
    memset(&r, 0, sizeof r);
    size_t ul = strlen(path) + 64;
    char *url = malloc(ul);
    snprintf(url, ul, "http://127.0.0.1:%d%s", port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK)
        fail_msg("%s %s: %s", method, path, curl_easy_strerror(rc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_easy_cleanup(c);
    free(url);
    if (!r.body)
        r.body = calloc(1, 1);
    return r;
}

/* validates an answer of status `want` (with error code in `codes`, "|"-separated, when
 * the body is an Error) against what the document declares for tmpl; records it */
static void check_error(const char *tmpl, const char *path, const resp *r, int want,
                        const char *codes)
{
    if (r->status != want)
        fail_msg("GET %.200s: status %ld, want %d: %.300s", path, r->status, want, r->body);
    oa_case k = {tmpl, path, want, NULL};
    check_response(&k, r, path);
    if (codes) {
        jdoc j;
        jparse(&j, r);
        char code[64], bar[80];
        jstr(&j, 0, "code", code, sizeof code);
        snprintf(bar, sizeof bar, "|%s|", code);
        char all[200];
        snprintf(all, sizeof all, "|%s|", codes);
        if (!strstr(all, bar))
            fail_msg("GET %.200s: code %s, want one of %s", path, code, codes);
        jfree(&j);
    }
    if (want == 503) {
        char ra[16];
        if (!resp_header(r, "Retry-After", ra, sizeof ra) || atoi(ra) <= 0)
            fail_msg("GET %s: 503 without Retry-After", path);
    }
    if (nseen < (int)(sizeof seen / sizeof seen[0]))
        seen[nseen++] = (oa_seen){tmpl, want};
}

/* calls fn(template, status declared?) for every path of the document */
static bool declares(const char *tmpl, const char *status)
{
    char err[300];
    return oa_response_schema(&spec.d, tmpl, "get", status, "application/json", err, sizeof err) >=
           0;
}

static int templates(const char **out, int max)
{
    const tsi_json *d = &spec.d;
    int paths = tsi_json_get(d, 0, "paths"), n = 0;
    static char names[64][256];
    for (int pk = tsi_json_first_key(d, paths); pk >= 0 && n < max && n < 64;
         pk = tsi_json_next_key(d, paths, pk)) {
        if (tsi_json_str(d, pk, names[n], sizeof names[n]) < 0)
            fail_msg("bad path key");
        out[n] = names[n];
        n++;
    }
    return n;
}

static void test_limits_and_methods(void **state)
{
    (void)state;
    const char *t[64];
    int n = templates(t, 64);
    size_t padn = 70000; /* over --max-query (65536) */
    char *pad = malloc(padn + 1);
    memset(pad, 'a', padn);
    pad[padn] = '\0';
    char body[2049];
    memset(body, 'b', sizeof body - 1);
    body[sizeof body - 1] = '\0';
    for (int i = 0; i < n; i++) {
        char path[2048];
        ok_path(t[i], path, sizeof path);
        if (!declares(t[i], "414") || !declares(t[i], "413"))
            fail_msg("%s does not declare 413 and 414, which every path can answer", t[i]);
        size_t ll = strlen(path) + padn + 16;
        char *longp = malloc(ll);
        snprintf(longp, ll, "%s%cpad=%s", path, strchr(path, '?') ? '&' : '?', pad);
        resp r = get(srv.port, longp);
        check_error(t[i], "(long query)", &r, 414, "query_too_long");
        resp_free(&r);
        free(longp);
        r = req_body(srv.port, "GET", path, body);
        check_error(t[i], path, &r, 413, "body_too_large");
        resp_free(&r);
        /* other methods: 405 with Allow, body per components/responses/MethodNotAllowed */
        static const char *const methods[] = {"POST", "PUT", "DELETE", "PATCH"};
        r = req_body(srv.port, methods[i % 4], path, "{}");
        assert_int_equal(r.status, 405);
        char allow[64], err[800];
        assert_true(resp_header(&r, "Allow", allow, sizeof allow));
        assert_string_equal(allow, "GET, HEAD, OPTIONS");
        int s = oa_resolve(
            &spec.d, "#/components/responses/MethodNotAllowed/content/application~1json/schema");
        assert_true(s >= 0);
        jdoc j;
        jparse(&j, &r);
        if (oa_validate_strict(&spec.d, s, &j.d, 0, err, sizeof err) < 0)
            fail_msg("%s %s: 405 body does not match the document at %s: %s", methods[i % 4], path,
                     err, r.body);
        jfree(&j);
        resp_free(&r);
    }
    free(pad);
}

/* 503: a server whose PostgreSQL is unreachable (a closed port), with --source postgres
 * (everything that reads data), --source auto (spatial and all-intersection endpoints
 * while the database is down; a corrupt archive file for the Parquet answers) and
 * --source parquet (spatial) */
static void test_unavailable(void **state)
{
    (void)state;
    static char arch[256], e_arch[300];
    snprintf(arch, sizeof arch, "/tmp/tsi-openapi-arch-%d", (int)getpid());
    snprintf(e_arch, sizeof e_arch, "TSI_ARCHIVE_DIR=%s", arch);
    char cmd[600];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s/indices/%04d/%02d/%02d && printf 'not parquet' > "
             "%s/indices/%04d/%02d/%02d/broken.parquet",
             arch, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, arch, tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday);
    assert_int_equal(system(cmd), 0);
    const char *env[] = {
        "DATABASE_READ_URL=postgresql://tsi_reader@127.0.0.1:1/tsi?connect_timeout=2",
        "TSI_WEB_DIR=/nonexistent-tsi-web", e_arch, NULL};
    const char *t[64];
    int n = templates(t, 64);

    /* --source postgres: every declared 503 */
    const char *a_pg[] = {"--source", "postgres", NULL};
    api_srv s1 = {0};
    srv_start(&s1, a_pg, env);
    int n503 = 0;
    for (int i = 0; i < n; i++) {
        char st[8] = "503";
        char err[300];
        if (oa_response_schema(&spec.d, t[i], "get", st, "application/json", err, sizeof err) < 0)
            continue;
        char path[2048];
        ok_path(t[i], path, sizeof path);
        resp r = get(s1.port, path);
        check_error(t[i], path, &r, 503,
                    strcmp(t[i], "/health") == 0
                        ? NULL
                        : "database_unavailable|spatial_unavailable|geometry_unavailable");
        if (strcmp(t[i], "/health") == 0) {
            jdoc j;
            jparse(&j, &r);
            char stt[32];
            jstr(&j, 0, "status", stt, sizeof stt);
            assert_string_equal(stt, "unavailable");
            jfree(&j);
        }
        n503++;
        resp_free(&r);
    }
    assert_true(n503 >= 12);
    assert_int_equal(srv_stop_clean(&s1), 0);

    /* --source auto, database down: spatial 503 spatial_unavailable, the others the
     * database; the current index from a corrupt archive: archive_unavailable */
    api_srv s2 = {0};
    srv_start(&s2, NULL, env);
    static const struct {
        const char *tmpl, *codes;
    } auto_cases[] = {
        {"/api/v1/intersections/nearby", "spatial_unavailable"},
        {"/api/v1/intersections/route", "spatial_unavailable"},
        {"/api/v1/intersections/area", "spatial_unavailable"},
        {"/api/v1/safety/history/", "database_unavailable"},
        {"/api/v1/safety/compare", "database_unavailable"},
        {"/api/v1/safety/ranking", "database_unavailable"},
        {"/api/v1/safety/index/", "archive_unavailable"},
    };
    for (size_t i = 0; i < sizeof auto_cases / sizeof auto_cases[0]; i++) {
        char path[2048];
        ok_path(auto_cases[i].tmpl, path, sizeof path);
        resp r = get(s2.port, path);
        check_error(auto_cases[i].tmpl, path, &r, 503, auto_cases[i].codes);
        resp_free(&r);
    }
    resp h = get(s2.port, "/health");
    assert_int_equal(h.status, 200);
    assert_non_null(strstr(h.body, "\"status\":\"degraded\""));
    resp_free(&h);
    assert_int_equal(srv_stop_clean(&s2), 0);

    /* --source parquet: spatial needs PostGIS even while it is up */
    const char *a_pq[] = {"--source", "parquet", NULL};
    api_srv s3 = {0};
    srv_start(&s3, a_pq, env + 1);
    char path[2048];
    ok_path("/api/v1/intersections/nearby", path, sizeof path);
    resp r = get(s3.port, path);
    check_error("/api/v1/intersections/nearby", path, &r, 503, "spatial_unavailable");
    resp_free(&r);
    assert_int_equal(srv_stop_clean(&s3), 0);
    snprintf(cmd, sizeof cmd, "rm -rf %s", arch);
    assert_int_equal(system(cmd), 0);
}

/* 500: a query refused for another reason than a lost connection (the reader may no
 * longer read intersections), on every path that declares 500; restored afterwards */
static void test_internal_error(void **state)
{
    (void)state;
    th_sqlf(owner, "REVOKE SELECT ON intersections FROM tsi_reader");
    const char *env[] = {"TSI_WEB_DIR=/nonexistent-tsi-web", NULL};
    api_srv s = {0};
    srv_start(&s, NULL, env);
    const char *t[64];
    int n = templates(t, 64), n500 = 0;
    for (int i = 0; i < n; i++) {
        if (!declares(t[i], "500"))
            continue;
        char path[2048];
        ok_path(t[i], path, sizeof path);
        resp r = get(s.port, path);
        check_error(t[i], path, &r, 500, "internal");
        resp_free(&r);
        n500++;
    }
    assert_int_equal(srv_stop_clean(&s), 0);
    th_sqlf(owner, "GRANT SELECT ON intersections TO tsi_reader");
    assert_true(n500 >= 12);
}

/* ---- GET /api/v1/config ---------------------------------------------------------------- */
static void config_of(int port, char *out, size_t len, bool *is_null)
{
    resp r = get(port, "/api/v1/config");
    assert_int_equal(r.status, 200);
    oa_case k = {"/api/v1/config", "/api/v1/config", 200, NULL};
    check_response(&k, &r, "/api/v1/config");
    jdoc j;
    jparse(&j, &r);
    int t = tsi_json_get(&j.d, 0, "tile_url");
    assert_true(t >= 0);
    *is_null = tsi_json_is_null(&j.d, t);
    out[0] = '\0';
    if (!*is_null && tsi_json_str(&j.d, t, out, len) < 0)
        fail_msg("tile_url is not a string: %s", r.body);
    jfree(&j);
    resp_free(&r);
}

static void test_config(void **state)
{
    (void)state;
    char v[1024];
    bool is_null;
    /* env TSI_TILE_URL (with a quote, & and a non-ASCII letter: escaped, decoded back) */
    config_of(srv.port, v, sizeof v, &is_null);
    assert_false(is_null);
    assert_string_equal(v, TILE_ENV);

    /* unset: null */
    api_srv s2 = {0};
    const char *env2[] = {"TSI_WEB_DIR=/nonexistent-tsi-web", NULL};
    srv_start(&s2, NULL, env2);
    config_of(s2.port, v, sizeof v, &is_null);
    assert_true(is_null);
    assert_int_equal(srv_stop_clean(&s2), 0);

    /* the flag wins over the environment */
    api_srv s3 = {0};
    static char e3[600];
    snprintf(e3, sizeof e3, "TSI_TILE_URL=%s", TILE_ENV);
    const char *env3[] = {e3, "TSI_WEB_DIR=/nonexistent-tsi-web", NULL};
    const char *args3[] = {"--tile-url", TILE_FLAG, NULL};
    srv_start(&s3, args3, env3);
    config_of(s3.port, v, sizeof v, &is_null);
    assert_false(is_null);
    assert_string_equal(v, TILE_FLAG);
    assert_int_equal(srv_stop_clean(&s3), 0);

    /* hostile: a tile URL longer than the server keeps is refused at start (exit 2) */
    size_t big = 5000;
    char *longurl = malloc(big + 1);
    memset(longurl, 'a', big);
    longurl[big] = '\0';
    const char *argv[] = {th_tsi_bin(), "serve", "--port", "0", "--tile-url", longurl, NULL};
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    free(longurl);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validator),          cmocka_unit_test(test_routes_match_document),
        cmocka_unit_test(test_mutated_body_fails), cmocka_unit_test(test_limits_and_methods),
        cmocka_unit_test(test_unavailable),        cmocka_unit_test(test_internal_error),
        cmocka_unit_test(test_document_coverage),  cmocka_unit_test(test_config),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
