/* tests/integration/test_openapi.c — the two OpenAPI documents a real `tsi serve` serves are
 * kept true: /api/v2/openapi.json (tsi's conventions: 400 errors {detail, code, field}, UTC
 * instants with Z) and /api/v1/openapi.json (the original FastAPI system's contract: 422
 * validation errors, {detail} errors, naive datetimes, a Link to the /api/v2 successor on every
 * answer). For each version the whole case table is run: every route of the server on seeded
 * rows is called (valid parameters, and the error cases the document declares) and each
 * response body is validated against the schema the document itself (as served) gives for that
 * path, method, status and content type, and each header the response declares required (Link)
 * against its schema. A mismatch fails with the JSON pointer of the offending value. The error
 * statuses too: 413 and 414 on every path, 405 for other methods, 503 from servers whose
 * database is unreachable (--source postgres, auto and parquet), 500 from a refused query.
 * Also: the validator on hand-made schemas (it must reject what it should, with the right
 * pointer), coverage (every declared path/method/status of each document is exercised), and
 * GET /api/vN/config with --tile-url, TSI_TILE_URL and neither.
 *
 * /health (liveness) and /metrics are not versioned: both documents describe them alike (errors
 * {detail}, no Link); their 405 is checked in the v1 run. */
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
static char day_today[16], day_ago3[16];
/* servers a test starts besides srv: stopped by aux_teardown when the test fails midway */
static api_srv aux[3];

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

/* ---- the two versions and their case tables --------------------------------------------- */
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

/* The case table of both versions: the template and path under the version's prefix
 * ("/api/v1" or "/api/v2"; root rows as they are), and the status each version answers
 * (0: not asked of that version). v2 is tsi's conventions; v1 the original system's
 * contract (Ulrixon/cs6604-trafficsafety at 218052b): a value that fails validation
 * answers 422; start after end and ranges over the limit 400; no data in the window 404
 * (stats: no start/end check, no range limit). Paths: "%T" = today, "%A" = three days
 * ago. */
typedef struct {
    bool root;        /* unversioned (/health, /metrics) */
    const char *tmpl; /* path template as in the documents, after the prefix */
    const char *path; /* request path after the prefix */
    int v2, v1;       /* expected status per version */
    const char *accept_ct;
} oa_row;

static const oa_row rows[] = {
    {true, "/health", "/health", 200, 200, NULL},
    {true, "/metrics", "/metrics", 200, 200, "text/plain"},
    {false, "/health", "/health", 200, 200, NULL},
    {false, "/openapi.json", "/openapi.json", 200, 200, NULL},
    {false, "/config", "/config", 200, 200, NULL},
    {false, "/safety/index/", "/safety/index/", 200, 200, NULL},
    {false, "/safety/index/{intersection_id}", "/safety/index/101", 200, 200, NULL},
    {false, "/safety/index/{intersection_id}", "/safety/index/abc", 400, 422, NULL},
    {false, "/safety/index/{intersection_id}", "/safety/index/999", 404, 404, NULL},
    {false, "/safety/history/", "/safety/history/?days=1", 200, 200, NULL},
    {false, "/safety/history/", "/safety/history/?days=3&aggregation=1day", 200, 200, NULL},
    {false, "/safety/history/", "/safety/history/?aggregation=2min", 400, 422, NULL},
    {false, "/safety/history/{intersection_id}", "/safety/history/101?days=1&aggregation=1min", 200,
     200, NULL},
    {false, "/safety/history/{intersection_id}", "/safety/history/101?days=1", 200, 200, NULL},
    {false, "/safety/history/{intersection_id}", "/safety/history/101?days=30", 200, 200, NULL},
    {false, "/safety/history/{intersection_id}",
     "/safety/history/101?start_date=%A&end_date=%T&aggregation=1week", 200, 200, NULL},
    {false, "/safety/history/{intersection_id}", "/safety/history/101?days=365&aggregation=1month",
     200, 200, NULL},
    {false, "/safety/history/{intersection_id}", "/safety/history/103?days=2", 200, 404, NULL},
    {false, "/safety/history/{intersection_id}", "/safety/history/101?days=0", 400, 422, NULL},
    {false, "/safety/history/{intersection_id}", "/safety/history/999?days=1", 404, 404, NULL},
    {false, "/safety/history/{intersection_id}/stats", "/safety/history/101/stats?days=1", 200, 200,
     NULL},
    {false, "/safety/history/{intersection_id}/stats",
     "/safety/history/103/stats?start_date=%A&end_date=%T", 200, 404, NULL},
    {false, "/safety/history/{intersection_id}/stats", "/safety/history/101/stats?days=-3", 400,
     422, NULL},
    {false, "/safety/history/{intersection_id}/stats", "/safety/history/999/stats", 404, 404, NULL},
    {false, "/safety/compare", "/safety/compare?ids=101,102,103,999&days=1", 200, 200, NULL},
    {false, "/safety/compare", "/safety/compare?ids=1,a", 400, 422, NULL},
    {false, "/safety/ranking", "/safety/ranking?days=1", 200, 200, NULL},
    {false, "/safety/ranking", "/safety/ranking?metric=high_risk_percentage&order=asc", 200, 200,
     NULL},
    {false, "/safety/ranking", "/safety/ranking?metric=total_volume&min_index=0&limit=2", 200, 200,
     NULL},
    {false, "/safety/ranking", "/safety/ranking?metric=foo", 400, 422, NULL},
    {false, "/intersections/nearby", "/intersections/nearby?lat=38.87&lon=-77.27&radius=5000", 200,
     200, NULL},
    {false, "/intersections/nearby",
     "/intersections/nearby?lat=38.87&lon=-77.27&radius=5000&format=geojson", 200, 200,
     "application/geo+json"},
    {false, "/intersections/nearby", "/intersections/nearby?lat=91&lon=0", 400, 422, NULL},
    {false, "/intersections/route", "/intersections/route?waypoints=" WP "&buffer=500", 200, 200,
     NULL},
    {false, "/intersections/route",
     "/intersections/route?waypoints=" WP "&buffer=500&format=geojson", 200, 200,
     "application/geo+json"},
    {false, "/intersections/route", "/intersections/route?waypoints=%5B%5D", 400, 422, NULL},
    {false, "/intersections/area", "/intersections/area?polygon=" PG, 200, 200, NULL},
    {false, "/intersections/area", "/intersections/area?polygon=" PG "&format=geojson", 200, 200,
     "application/geo+json"},
    {false, "/intersections/area", "/intersections/area?polygon=x", 400, 422, NULL},
    {false, "/intersections/geometry", "/intersections/geometry?bbox=-77.3,38.8,-77.2,38.9", 200,
     200, "application/geo+json"},
    {false, "/intersections/geometry", "/intersections/geometry?bbox=1,2", 400, 422, NULL},
    {false, "/intersections/{intersection_id}", "/intersections/101", 200, 200, NULL},
    {false, "/intersections/{intersection_id}", "/intersections/103", 200, 200, NULL},
    {false, "/intersections/{intersection_id}", "/intersections/x1", 400, 422, NULL},
    {false, "/intersections/{intersection_id}", "/intersections/999", 404, 404, NULL},
    {false, "/safety/index/", "/safety/index/?include_rtsi=true&bin_minutes=15", 200, 200, NULL},
    {false, "/safety/history/", "/safety/history/?start_date=2020-01-01&end_date=2020-01-02", 200,
     200, NULL},
    {false, "/safety/history/", "/safety/history/?days=31", 400, 422, NULL},
    {false, "/safety/history/", "/safety/history/?start_date=2020-01-01", 200, 400, NULL},
    {false, "/safety/history/{intersection_id}", "/safety/history/101?days=7", 200, 200, NULL},
    {false, "/safety/history/{intersection_id}", "/safety/history/101?start_date=%A", 200, 200,
     NULL},
    {false, "/safety/history/{intersection_id}", "/safety/history/abc?days=1", 400, 404, NULL},
    {false, "/safety/history/{intersection_id}", "/safety/history/101?aggregation=2min", 400, 422,
     NULL},
    {false, "/safety/history/{intersection_id}", "/safety/history/101?start_date=%T&end_date=%A",
     400, 400, NULL},
    {false, "/safety/history/{intersection_id}",
     "/safety/history/101?start_date=2020-01-01&end_date=%T", 400, 400, NULL},
    {false, "/safety/history/{intersection_id}/stats",
     "/safety/history/101/stats?start_date=2020-01-01&end_date=%T", 400, 200, NULL},
    {false, "/safety/history/{intersection_id}/stats",
     "/safety/history/101/stats?start_date=%T&end_date=%A", 400, 404, NULL},
    {false, "/safety/compare", "/safety/compare", 400, 422, NULL},
    {false, "/safety/compare", "/safety/compare?ids=101&start_date=%T&end_date=%A", 400, 400, NULL},
    {false, "/safety/ranking", "/safety/ranking?limit=0", 400, 422, NULL},
    {false, "/safety/ranking", "/safety/ranking?start_date=%T&end_date=%A", 400, 400, NULL},
};

/* one version's cases, made from rows[] at setup */
static oa_case cases_v2[sizeof rows / sizeof rows[0]], cases_v1[sizeof rows / sizeof rows[0]];
static char case_text[2][sizeof rows / sizeof rows[0]][2][2048];

typedef struct api_ver {
    const char *name;   /* "v1", "v2" */
    const char *prefix; /* "/api/v1" */
    bool original;      /* the original's contract: 422, {detail} errors, Link */
    const oa_case *cases;
    size_t ncases;
    jdoc spec; /* the document as served at <prefix>/openapi.json */
    bool loaded;
    char load_err[400]; /* why it is not */
} api_ver;

static api_ver ver_v2 = {
    .name = "v2", .prefix = "/api/v2", .original = false, .cases = cases_v2, .ncases = 0};
static api_ver ver_v1 = {
    .name = "v1", .prefix = "/api/v1", .original = true, .cases = cases_v1, .ncases = 0};

/* (version, template, status) exercised outside the case tables; the coverage test counts them */
typedef struct {
    const api_ver *v;
    char tmpl[128];
    int status;
} oa_seen;
static oa_seen seen[1024];
static int nseen;

/* paths both documents share, answered alike whatever the version */
static bool unversioned(const char *tmpl)
{
    return strcmp(tmpl, "/health") == 0 || strcmp(tmpl, "/metrics") == 0;
}

/* GET <prefix>/openapi.json; a version whose document is not served (or is not its own) is
 * recorded, and each of its tests fails saying so */
/* V's cases from rows[]: its prefix before each versioned template and path */
static void make_cases(api_ver *V, oa_case *out, int which)
{
    size_t n = 0;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        int st = which == 1 ? rows[i].v1 : rows[i].v2;
        if (!st)
            continue;
        const char *pre = rows[i].root ? "" : V->prefix;
        char *t = case_text[which - 1][n][0], *p = case_text[which - 1][n][1];
        snprintf(t, 2048, "%s%s", pre, rows[i].tmpl);
        snprintf(p, 2048, "%s%s", pre, rows[i].path);
        out[n++] = (oa_case){t, p, st, rows[i].accept_ct};
    }
    V->cases = out;
    V->ncases = n;
}

static void fetch_spec(api_ver *V)
{
    char path[64];
    snprintf(path, sizeof path, "%s/openapi.json", V->prefix);
    resp r = get(srv.port, path);
    V->loaded = false;
    if (r.status != 200) {
        snprintf(V->load_err, sizeof V->load_err, "GET %s: status %ld: %.200s", path, r.status,
                 r.body);
        resp_free(&r);
        return;
    }
    jparse(&V->spec, &r);
    resp_free(&r);
    const tsi_json *d = &V->spec.d;
    int paths = tsi_json_get(d, 0, "paths");
    char pre[16];
    snprintf(pre, sizeof pre, "%s/", V->prefix);
    for (int pk = tsi_json_first_key(d, paths); pk >= 0; pk = tsi_json_next_key(d, paths, pk)) {
        char t[256];
        if (tsi_json_str(d, pk, t, sizeof t) < 0 ||
            (!unversioned(t) && strncmp(t, pre, strlen(pre)) != 0)) {
            snprintf(V->load_err, sizeof V->load_err,
                     "the document served at %s is not the %s document: it has path %s", path,
                     V->name, t);
            return;
        }
    }
    V->loaded = true;
}

static api_ver *ver_of(void **state)
{
    api_ver *V = *state;
    if (!V->loaded)
        fail_msg("%s: %s", V->name, V->load_err);
    return V;
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
    make_cases(&ver_v2, cases_v2, 2);
    make_cases(&ver_v1, cases_v1, 1);
    fetch_spec(&ver_v2);
    fetch_spec(&ver_v1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    srv_stop_clean(&srv);
    if (ver_v1.spec.text)
        jfree(&ver_v1.spec);
    if (ver_v2.spec.text)
        jfree(&ver_v2.spec);
    if (owner)
        PQfinish(owner);
    th_db_drop(db);
    curl_global_cleanup();
    return 0;
}

/* after each test that starts servers or changes grants: whatever a failure left behind */
static int aux_teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof aux / sizeof aux[0]; i++)
        if (aux[i].pid > 0)
            srv_stop(&aux[i]);
    th_sqlf(owner, "GRANT SELECT ON intersections TO tsi_reader");
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

/* a header value (not JSON) against a schema: the error, "" when it passes */
static const char *check_header(const char *schema_doc, const char *schema_ptr, const char *text)
{
    static char err[700];
    tsi_json sd;
    tsi_error e = {0};
    if (tsi_json_parse_alloc(&sd, schema_doc, strlen(schema_doc), 4096, &e) < 0)
        fail_msg("bad schema text: %s", e.message);
    int s = oa_resolve(&sd, schema_ptr);
    assert_true(s >= 0);
    oa_validate_text(&sd, s, text, err, sizeof err);
    tsi_json_free(&sd);
    return err;
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
        "\"U\":{\"type\":\"string\",\"uniqueItems\":true},"
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

/* pattern: the v1 datetime and Link patterns, what lies outside the supported subset */
static void test_validator_pattern(void **state)
{
    (void)state;
    /* JSON text in C: \\\\. is the JSON string \\. is the regex \. */
    static const char doc[] =
        "{\"components\":{\"schemas\":{"
        "\"D\":{\"type\":\"string\",\"format\":\"date-time\",\"pattern\":"
        "  \"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\\\.[0-9]{6})?$\"},"
        "\"DN\":{\"anyOf\":[{\"$ref\":\"#/components/schemas/D\"},{\"type\":\"null\"}]},"
        "\"T\":{\"type\":\"object\",\"properties\":{\"ts\":{\"$ref\":\"#/components/schemas/D\"}}},"
        "\"E\":{\"type\":\"string\",\"pattern\":\"^[0-9]{4}-[0-9]{2}-[0-9]{2}T23:59:59\\\\.999999$"
        "\"},"
        "\"L\":{\"type\":\"string\","
        "  \"pattern\":\"^</api/v2/[^>]*>; rel=\\\"successor-version\\\"$\"},"
        "\"S\":{\"pattern\":\"^a+$\"},"
        "\"X1\":{\"type\":\"string\",\"pattern\":\"^\\\\d+$\"},"
        "\"X2\":{\"type\":\"string\",\"pattern\":\"^(?=a)a$\"},"
        "\"X3\":{\"type\":\"string\",\"pattern\":\"^[\\\\.]$\"},"
        "\"X4\":{\"type\":\"string\",\"pattern\":\"^a+?$\"},"
        "\"X5\":{\"type\":\"string\",\"pattern\":\"^(a$\"},"
        "\"X6\":{\"type\":\"string\",\"pattern\":\"^[[:digit:]]$\"},"
        "\"X7\":{\"type\":\"string\",\"pattern\":5}}}}";
    const char *D = "#/components/schemas/D";
    expect_pass(doc, D, "\"2025-11-20T14:00:00\"");
    expect_pass(doc, D, "\"2025-11-20T14:00:00.123456\"");
    /* the Z of a UTC instant breaks the original frontend (Python 3.9 fromisoformat) */
    expect_fail(doc, D, "\"2025-11-20T14:00:00Z\"",
                "(root): \"2025-11-20T14:00:00Z\" does not match the pattern ^[0-9]{4}");
    expect_fail(doc, D, "\"2025-11-20T14:00:00+00:00\"", "(root): \"2025-11-20T14:00:00+00:00\"");
    expect_fail(doc, D, "\"2025-11-20T14:00:00.123\"", "(root): \"2025-11-20T14:00:00.123\" does");
    expect_fail(doc, D, "\"2025-11-20 14:00:00\"", "(root): \"2025-11-20 14:00:00\" does not");
    expect_fail(doc, D, "\"2025-11-20\"", "(root): \"2025-11-20\" does not match");
    expect_fail(doc, D, "\"x2025-11-20T14:00:00\"", "(root): \"x2025-11-20T14:00:00\" does not");
    /* \. is a dot, not any character */
    expect_fail(doc, D, "\"2025-11-20T14:00:00x123456\"", "(root): \"2025-11-20T14:00:00x123456\"");
    expect_fail(doc, D, "\"2025-11-20T14:00:00\\u0000\"", "(root): string cannot be matched");
    expect_fail(doc, D, "null", "(root): is null");
    expect_pass(doc, "#/components/schemas/DN", "null");
    expect_fail(doc, "#/components/schemas/DN", "\"2025-11-20T14:00:00Z\"",
                "(root): matches no alternative of anyOf (first: (root): \"2025-11-20T14:00:00Z\"");
    expect_fail(doc, "#/components/schemas/T", "{\"ts\":\"2025-11-20T14:00:00.000000Z\"}",
                "/ts: \"2025-11-20T14:00:00.000000Z\" does not match");
    expect_pass(doc, "#/components/schemas/E", "\"2025-11-20T23:59:59.999999\"");
    expect_fail(doc, "#/components/schemas/E", "\"2025-11-20T23:59:59\"", "(root): \"2025-11-20T");
    /* pattern constrains strings only */
    expect_pass(doc, "#/components/schemas/S", "5");
    expect_pass(doc, "#/components/schemas/S", "\"aaa\"");
    expect_fail(doc, "#/components/schemas/S", "\"aab\"", "(root): \"aab\" does not match");
    /* outside the subset, or broken: the schema fails whatever the value */
    expect_fail(doc, "#/components/schemas/X1", "\"12\"",
                "(root): pattern ^\\d+$: an escape other than of a punctuation character is "
                "outside the supported subset");
    expect_fail(doc, "#/components/schemas/X2", "\"a\"", "(root): pattern ^(?=a)a$: a (? group");
    expect_fail(doc, "#/components/schemas/X3", "\".\"",
                "(root): pattern ^[\\.]$: a backslash inside brackets");
    expect_fail(doc, "#/components/schemas/X4", "\"a\"", "(root): pattern ^a+?$: a lazy");
    expect_fail(doc, "#/components/schemas/X5", "\"a\"", "(root): pattern ^(a$ does not compile");
    expect_fail(doc, "#/components/schemas/X6", "\"1\"", "(root): pattern ^[[:digit:]]$: a POSIX");
    expect_fail(doc, "#/components/schemas/X7", "\"1\"", "(root): schema keyword pattern is not");
    /* header values (not JSON): the Link of a v1 answer */
    const char *L = "#/components/schemas/L";
    const char *e = check_header(doc, L, "</api/v2/safety/index/101>; rel=\"successor-version\"");
    if (e[0])
        fail_msg("Link: expected to pass, got \"%s\"", e);
    e = check_header(doc, L, "</api/v2/safety/history/?days=1>; rel=\"successor-version\"");
    if (e[0])
        fail_msg("Link with a query: expected to pass, got \"%s\"", e);
    static const char *const bad[] = {
        "</api/v1/safety/index/101>; rel=\"successor-version\"",
        "</api/v2/safety/index/101>; rel=\"successor-version\", <x>; rel=\"x\"",
        "</api/v2/a>b>; rel=\"successor-version\"",
        "</api/v2/safety/index/101>; rel=successor-version",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        e = check_header(doc, L, bad[i]);
        if (!strstr(e, "does not match the pattern"))
            fail_msg("Link %s: expected a pattern mismatch, got \"%s\"", bad[i], e);
    }
}

/* ---- every route against the served document ------------------------------------------- */
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

/* "why" of a failed check: returns -1 */
static int why_fail(char *why, size_t wl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int why_fail(char *why, size_t wl, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, wl, fmt, ap);
    va_end(ap);
    return -1;
}

/* the headers the document declares required for this response are present and match their
 * schema; in v1, every answer under /api/v1/ declares and carries Link to its /api/v2/
 * successor (the same path under /api/v2/). 0, or -1 with why set. */
static int verify_headers(const api_ver *V, const char *tmpl, const resp *r, const char *path,
                          char *why, size_t wl)
{
    const tsi_json *d = &V->spec.d;
    char status[8], err[800];
    snprintf(status, sizeof status, "%ld", r->status);
    int ro = oa_response(d, tmpl, "get", status, err, sizeof err);
    if (ro < 0)
        return why_fail(why, wl, "GET %.200s: %s", path, err);
    int hs = tsi_json_get(d, ro, "headers");
    bool link_declared = false;
    for (int hk = tsi_json_first_key(d, hs); hk >= 0; hk = tsi_json_next_key(d, hs, hk)) {
        char name[64];
        if (tsi_json_str(d, hk, name, sizeof name) < 0)
            return why_fail(why, wl, "bad header name");
        int h = oa_deref(d, hk + 1);
        bool req = false;
        tsi_json_bool(d, tsi_json_get(d, h, "required"), &req);
        if (strcasecmp(name, "Link") == 0)
            link_declared = req;
        if (!req)
            continue;
        char val[1024];
        if (!resp_header(r, name, val, sizeof val))
            return why_fail(why, wl,
                            "GET %.200s (%s): no %s header, which the document declares required",
                            path, status, name);
        if (oa_validate_text(d, tsi_json_get(d, h, "schema"), val, err, sizeof err) < 0)
            return why_fail(why, wl, "GET %.200s (%s): header %s does not match the document at %s",
                            path, status, name, err);
    }
    char pre[16];
    snprintf(pre, sizeof pre, "%s/", V->prefix);
    if (!V->original || strncmp(path, pre, strlen(pre)) != 0)
        return 0;
    if (!link_declared)
        return why_fail(why, wl, "GET %s %s: the v1 document does not declare a required Link",
                        tmpl, status);
    /* </api/v2/REST>: REST up to ? or > is the request path after /api/v1/, up to ? */
    char link[1024];
    resp_header(r, "Link", link, sizeof link);
    const char *want = path + strlen(pre);
    size_t wn = strcspn(want, "?");
    const char *got = link + strlen("</api/v2/");
    size_t gn = strcspn(got, "?>");
    if (gn != wn || memcmp(got, want, wn) != 0)
        return why_fail(why, wl, "GET %.200s: Link %s does not name /api/v2/%.*s", path, link,
                        (int)wn, want);
    return 0;
}

/* validates one response against the served document: the number of values seen in the body
 * (tokens), so a test can tell that a body was not trivially empty; -1 with why set */
static int verify_response(const api_ver *V, const oa_case *k, const resp *r, const char *path,
                           char *why, size_t wl)
{
    char ct[128] = "";
    if (!resp_header(r, "Content-Type", ct, sizeof ct))
        return why_fail(why, wl, "GET %.200s (%ld): no Content-Type", path, r->status);
    ct[strcspn(ct, "; ")] = '\0';
    const char *want_ct = k->accept_ct ? k->accept_ct : "application/json";
    if (strcmp(ct, want_ct) != 0)
        return why_fail(why, wl, "GET %.200s (%ld): Content-Type %s, want %s", path, r->status, ct,
                        want_ct);
    char status[8], err[800];
    snprintf(status, sizeof status, "%ld", r->status);
    int s = oa_response_schema(&V->spec.d, k->tmpl, "get", status, ct, err, sizeof err);
    if (s < 0)
        return why_fail(why, wl, "GET %.200s: %s", path, err);
    if (verify_headers(V, k->tmpl, r, path, why, wl) < 0)
        return -1;
    if (strcmp(ct, "text/plain") == 0) {
        /* not JSON: the document must say it is a string, and it must be non-empty */
        char t[32];
        if (tsi_json_str(&V->spec.d, tsi_json_get(&V->spec.d, s, "type"), t, sizeof t) < 0 ||
            strcmp(t, "string") != 0)
            return why_fail(why, wl, "%.200s: text/plain schema is not {type: string}", path);
        if (r->len == 0)
            return why_fail(why, wl, "GET %.200s: empty text/plain body", path);
        return 1;
    }
    tsi_json body;
    tsi_error e = {0};
    if (tsi_json_parse_alloc(&body, r->body, r->len, 8 * 1024 * 1024, &e) < 0)
        return why_fail(why, wl, "GET %.200s (%s): body is not JSON (%s): %.300s", path, status,
                        e.message, r->body);
    int rc = oa_validate_strict(&V->spec.d, s, &body, 0, err, sizeof err);
    int n = body.ntok;
    tsi_json_free(&body);
    if (rc < 0)
        return why_fail(why, wl,
                        "GET %.200s (%s %s): body does not match the %s document at %s\n"
                        "  body: %.400s",
                        path, status, ct, V->name, err, r->body);
    return n;
}

static int check_response(const api_ver *V, const oa_case *k, const resp *r, const char *path)
{
    char why[1600];
    int n = verify_response(V, k, r, path, why, sizeof why);
    if (n < 0)
        fail_msg("%s", why);
    return n;
}

/* every case of the table, each failure printed; the test fails after the last */
static void test_routes_match_document(void **state)
{
    api_ver *V = ver_of(state);
    int bad = 0;
    for (size_t i = 0; i < V->ncases; i++) {
        char path[2048], why[1600];
        expand(path, sizeof path, V->cases[i].path);
        resp r = get(srv.port, path);
        int n = 0;
        if (r.status != V->cases[i].status)
            n = why_fail(why, sizeof why, "GET %s: status %ld, want %d: %.300s", path, r.status,
                         V->cases[i].status, r.body);
        else if ((n = verify_response(V, &V->cases[i], &r, path, why, sizeof why)) == 0)
            n = why_fail(why, sizeof why, "GET %s: no body", path);
        if (n < 0) {
            print_message("%s: %s\n", V->name, why);
            bad++;
        }
        resp_free(&r);
    }
    /* the 200 bodies that carry data really carried rows (a schema check of [] proves little) */
    static const char *const nonempty[] = {"/safety/index/",
                                           "/intersections/nearby?lat=38.87&lon=-77.27"
                                           "&radius=5000"};
    for (size_t i = 0; i < 2; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s%s", V->prefix, nonempty[i]);
        resp r = get(srv.port, path);
        tsi_json j;
        tsi_error e = {0};
        /* 101 and 102 have data; nearby also finds 103 (1.4 km from 101) */
        if (tsi_json_parse_alloc(&j, r.body, r.len, 8 * 1024 * 1024, &e) < 0) {
            print_message("%s: GET %s: not JSON\n", V->name, path);
            bad++;
        } else {
            int cnt = 0;
            for (int k = tsi_json_first(&j, 0); k >= 0; k = tsi_json_next(&j, 0, k))
                cnt++;
            if (cnt < 2) {
                print_message("%s: GET %s: fewer than 2 items: %.300s\n", V->name, path, r.body);
                bad++;
            }
            tsi_json_free(&j);
        }
        resp_free(&r);
    }
    if (bad)
        fail_msg("%s: %d of %zu requests do not match the document (listed above)", V->name, bad,
                 V->ncases + 2);
}

/* inserts ins into text at offset pre; malloc'd */
static char *splice_at(const char *text, size_t pre, const char *ins)
{
    size_t n = strlen(text), k = strlen(ins);
    char *m = malloc(n + k + 1);
    memcpy(m, text, pre);
    memcpy(m + pre, ins, k);
    memcpy(m + pre + k, text + pre, n - pre + 1);
    return m;
}

/* a real body, broken in one place, fails with the pointer of that place */
static void test_mutated_body_fails(void **state)
{
    api_ver *V = ver_of(state);
    char path[128], tmpl[128];
    snprintf(path, sizeof path, "%s/safety/history/101?days=1&aggregation=1min", V->prefix);
    snprintf(tmpl, sizeof tmpl, "%s/safety/history/{intersection_id}", V->prefix);
    resp r = get(srv.port, path);
    if (r.status != 200)
        fail_msg("GET %s: status %ld: %.300s", path, r.status, r.body);
    char err[800];
    int s = oa_response_schema(&V->spec.d, tmpl, "get", "200", "application/json", err, sizeof err);
    assert_true(s >= 0);
    /* the first traffic_volume of the body is data_points[0]'s */
    const char *k = "\"traffic_volume\":";
    char *at = strstr(r.body, k);
    assert_non_null(at);
    char *mut = splice_at(r.body, (size_t)(at - r.body) + strlen(k), "-1,\"_x\":");
    tsi_json md;
    tsi_error e = {0};
    assert_true(tsi_json_parse_alloc(&md, mut, strlen(mut), 8 * 1024 * 1024, &e) > 0);
    assert_int_equal(oa_validate(&V->spec.d, s, &md, 0, err, sizeof err), -1);
    const char *want = "/data_points/0/traffic_volume: -1 is below the minimum 0";
    if (strcmp(err, want) != 0)
        fail_msg("got \"%s\", want \"%s\"", err, want);
    tsi_json_free(&md);
    free(mut);
    if (V->original) {
        /* v1: a timestamp with the Z of a UTC instant is refused */
        k = "\"timestamp\":\"";
        at = strstr(r.body, k);
        assert_non_null(at);
        char *q = strchr(at + strlen(k), '"');
        assert_non_null(q);
        mut = splice_at(r.body, (size_t)(q - r.body), "Z");
        assert_true(tsi_json_parse_alloc(&md, mut, strlen(mut), 8 * 1024 * 1024, &e) > 0);
        assert_int_equal(oa_validate(&V->spec.d, s, &md, 0, err, sizeof err), -1);
        if (strncmp(err, "/data_points/0/timestamp: \"", 27) != 0 ||
            !strstr(err, "Z\" does not match the pattern"))
            fail_msg("a timestamp with Z: got \"%s\"", err);
        tsi_json_free(&md);
        free(mut);
    }
    /* the intact body passes; the same body against the error schema does not */
    jdoc j;
    jparse(&j, &r);
    assert_int_equal(oa_validate(&V->spec.d, s, &j.d, 0, err, sizeof err), 0);
    int es =
        oa_response_schema(&V->spec.d, tmpl, "get", "404", "application/json", err, sizeof err);
    assert_true(es >= 0);
    assert_int_equal(oa_validate(&V->spec.d, es, &j.d, 0, err, sizeof err), -1);
    assert_string_equal(err, "(root): required property \"detail\" is missing");
    jfree(&j);
    resp_free(&r);
}

/* every path, method and status the document declares is exercised (by the case table, and
 * 413/414/500/503 by the error-status tests of the same version, which run before this one) */
static void test_document_coverage(void **state)
{
    api_ver *V = ver_of(state);
    const tsi_json *d = &V->spec.d;
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
                for (size_t i = 0; i < V->ncases && !hit; i++)
                    hit = strcmp(V->cases[i].tmpl, tmpl) == 0 && V->cases[i].status == atoi(st);
                for (int i = 0; i < nseen && !hit; i++)
                    hit = seen[i].v == V && strcmp(seen[i].tmpl, tmpl) == 0 &&
                          seen[i].status == atoi(st);
                if (!hit)
                    fail_msg("the %s document declares GET %s %s but no case exercises it", V->name,
                             tmpl, st);
            }
        }
    }
    /* every case's template is in the document (checked again per response) */
    for (size_t i = 0; i < V->ncases; i++)
        if (tsi_json_get(d, paths, V->cases[i].tmpl) < 0)
            fail_msg("the %s document has no path %s", V->name, V->cases[i].tmpl);
    assert_int_equal(npaths, 17);
}

/* ---- the error statuses: 413, 414, 500, 503 on every path that declares them, 405 ------ */

/* a request path that answers 200 for a template: the first such case */
static void ok_path(const api_ver *V, const char *tmpl, char *out, size_t len)
{
    for (size_t i = 0; i < V->ncases; i++)
        if (strcmp(V->cases[i].tmpl, tmpl) == 0 && V->cases[i].status == 200) {
            expand(out, len, V->cases[i].path);
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
        fail_msg("%s %.200s: %s", method, path, curl_easy_strerror(rc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_easy_cleanup(c);
    free(url);
    if (!r.body)
        r.body = calloc(1, 1);
    return r;
}

/* validates an answer of status `want` against what the document declares for tmpl, and
 * records it. `codes` ("|"-separated) is the tsi error code expected: checked where the body
 * is tsi's Error (paths under /api/v2); v1 and the unversioned paths answer {detail} only. */
static void check_error(const api_ver *V, const char *tmpl, const char *path, const resp *r,
                        int want, const char *codes)
{
    if (r->status != want)
        fail_msg("GET %.200s: status %ld, want %d: %.300s", path, r->status, want, r->body);
    oa_case k = {tmpl, path, want, NULL};
    check_response(V, &k, r, path);
    if (codes && !V->original && !unversioned(tmpl)) {
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
            fail_msg("GET %.200s: 503 without Retry-After", path);
    }
    if (nseen < (int)(sizeof seen / sizeof seen[0])) {
        seen[nseen].v = V;
        snprintf(seen[nseen].tmpl, sizeof seen[nseen].tmpl, "%s", tmpl);
        seen[nseen++].status = want;
    }
}

static bool declares(const api_ver *V, const char *tmpl, const char *status)
{
    char err[300];
    return oa_response_schema(&V->spec.d, tmpl, "get", status, "application/json", err,
                              sizeof err) >= 0;
}

/* the path templates of the document */
static int templates(const api_ver *V, char (*out)[256], int max)
{
    const tsi_json *d = &V->spec.d;
    int paths = tsi_json_get(d, 0, "paths"), n = 0;
    for (int pk = tsi_json_first_key(d, paths); pk >= 0 && n < max;
         pk = tsi_json_next_key(d, paths, pk)) {
        if (tsi_json_str(d, pk, out[n], sizeof out[n]) < 0)
            fail_msg("bad path key");
        n++;
    }
    return n;
}

static void test_limits_and_methods(void **state)
{
    api_ver *V = ver_of(state);
    static char t[64][256];
    int n = templates(V, t, 64);
    /* static: a failure (longjmp) leaks nothing */
    static char pad[70001]; /* over --max-query (65536) */
    static char longp[sizeof pad + 2048 + 16];
    memset(pad, 'a', sizeof pad - 1);
    char body[2049];
    memset(body, 'b', sizeof body - 1);
    body[sizeof body - 1] = '\0';
    for (int i = 0; i < n; i++) {
        char path[2048];
        ok_path(V, t[i], path, sizeof path);
        if (!declares(V, t[i], "414") || !declares(V, t[i], "413"))
            fail_msg("%s does not declare 413 and 414, which every path can answer", t[i]);
        snprintf(longp, sizeof longp, "%s%cpad=%s", path, strchr(path, '?') ? '&' : '?', pad);
        resp r = get(srv.port, longp);
        check_error(V, t[i], longp, &r, 414, "query_too_long");
        resp_free(&r);
        r = req_body(srv.port, "GET", path, body);
        check_error(V, t[i], path, &r, 413, "body_too_large");
        resp_free(&r);
        if (!V->original && unversioned(t[i]))
            continue; /* answered as in v1 ({detail}), checked there */
        /* other methods: 405 with Allow, body per components/responses/MethodNotAllowed */
        static const char *const methods[] = {"POST", "PUT", "DELETE", "PATCH"};
        r = req_body(srv.port, methods[i % 4], path, "{}");
        if (r.status != 405)
            fail_msg("%s %s: status %ld, want 405: %.300s", methods[i % 4], path, r.status, r.body);
        char allow[64], err[800];
        assert_true(resp_header(&r, "Allow", allow, sizeof allow));
        assert_string_equal(allow, "GET, HEAD, OPTIONS");
        const tsi_json *d = &V->spec.d;
        int mna = oa_resolve(d, "#/components/responses/MethodNotAllowed");
        int s = oa_resolve(d, "#/components/responses/MethodNotAllowed/content/application~1json/"
                              "schema");
        assert_true(mna >= 0 && s >= 0);
        jdoc j;
        jparse(&j, &r);
        if (oa_validate_strict(d, s, &j.d, 0, err, sizeof err) < 0)
            fail_msg("%s %s: 405 body does not match the %s document at %s: %s", methods[i % 4],
                     path, V->name, err, r.body);
        jfree(&j);
        if (V->original && !unversioned(t[i])) {
            /* the Link the 405 response declares */
            int ls = tsi_json_path(d, mna, "headers", "Link", NULL);
            ls = oa_deref(d, ls);
            char link[1024];
            if (!resp_header(&r, "Link", link, sizeof link))
                fail_msg("%s %s: 405 without Link", methods[i % 4], path);
            if (oa_validate_text(d, tsi_json_get(d, ls, "schema"), link, err, sizeof err) < 0)
                fail_msg("%s %s: 405 Link does not match the document at %s", methods[i % 4], path,
                         err);
        }
        resp_free(&r);
    }
}

static bool is_health(const char *tmpl)
{
    size_t n = strlen(tmpl);
    return n >= 7 && strcmp(tmpl + n - 7, "/health") == 0;
}

/* a health answer's status and state */
static void expect_health(const resp *r, const char *status, const char *state)
{
    jdoc j;
    jparse(&j, r);
    char got[32];
    jstr(&j, 0, "status", got, sizeof got);
    if (strcmp(got, status) != 0)
        fail_msg("health: status %s, want %s: %.300s", got, status, r->body);
    jstr(&j, 0, "state", got, sizeof got);
    if (strcmp(got, state) != 0)
        fail_msg("health: state %s, want %s: %.300s", got, state, r->body);
    jfree(&j);
}

/* 503: a server whose PostgreSQL is unreachable (a closed port), with --source postgres
 * (everything that reads data), --source auto (spatial and all-intersection endpoints
 * while the database is down; a corrupt archive file for the Parquet answers) and
 * --source parquet (spatial) */
static void test_unavailable(void **state)
{
    api_ver *V = ver_of(state);
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
    static char t[64][256];
    int n = templates(V, t, 64);

    /* --source postgres: every declared 503 */
    const char *a_pg[] = {"--source", "postgres", NULL};
    srv_start(&aux[0], a_pg, env);
    int n503 = 0;
    for (int i = 0; i < n; i++) {
        if (!declares(V, t[i], "503"))
            continue;
        char path[2048];
        ok_path(V, t[i], path, sizeof path);
        resp r = get(aux[0].port, path);
        bool health = is_health(t[i]);
        check_error(V, t[i], path, &r, 503,
                    health ? NULL
                           : "database_unavailable|spatial_unavailable|geometry_unavailable");
        if (health)
            expect_health(&r, "unavailable", "unavailable");
        n503++;
        resp_free(&r);
    }
    assert_true(n503 >= 12);
    /* liveness (/health, and /api/v1/health) answers 200 ok, the state beside it */
    for (int i = 0; i < n; i++) {
        if (!is_health(t[i]) || declares(V, t[i], "503"))
            continue;
        resp r = get(aux[0].port, t[i]);
        check_error(V, t[i], t[i], &r, 200, NULL);
        expect_health(&r, "ok", "unavailable");
        resp_free(&r);
    }
    assert_int_equal(srv_stop_clean(&aux[0]), 0);

    /* --source auto, database down and no intersection known (no intersections file in the
     * archive): spatial 503 spatial_unavailable; the current index,
     * the history of all intersections, compare and ranking from a corrupt archive:
     * archive_unavailable */
    srv_start(&aux[1], NULL, env);
    static const struct {
        const char *rest, *codes;
    } auto_cases[] = {
        {"/intersections/nearby", "spatial_unavailable"},
        {"/intersections/route", "spatial_unavailable"},
        {"/intersections/area", "spatial_unavailable"},
        {"/safety/history/", "archive_unavailable"},
        {"/safety/compare", "archive_unavailable"},
        {"/safety/ranking", "archive_unavailable"},
        {"/safety/index/", "archive_unavailable"},
    };
    for (size_t i = 0; i < sizeof auto_cases / sizeof auto_cases[0]; i++) {
        char tmpl[128], path[2048];
        snprintf(tmpl, sizeof tmpl, "%s%s", V->prefix, auto_cases[i].rest);
        ok_path(V, tmpl, path, sizeof path);
        resp r = get(aux[1].port, path);
        check_error(V, tmpl, path, &r, 503, auto_cases[i].codes);
        resp_free(&r);
    }
    /* degraded: readiness (/api/v2/health) says so in status, liveness only in state */
    for (int i = 0; i < n; i++) {
        if (!is_health(t[i]))
            continue;
        resp h = get(aux[1].port, t[i]);
        check_error(V, t[i], t[i], &h, 200, NULL);
        expect_health(&h, declares(V, t[i], "503") ? "degraded" : "ok", "degraded");
        resp_free(&h);
    }
    assert_int_equal(srv_stop_clean(&aux[1]), 0);

    /* --source parquet with an archive that names no intersection: spatial has nothing to
     * search (503 spatial_unavailable) */
    const char *a_pq[] = {"--source", "parquet", NULL};
    srv_start(&aux[2], a_pq, env + 1);
    char tmpl[128], path[2048];
    snprintf(tmpl, sizeof tmpl, "%s/intersections/nearby", V->prefix);
    ok_path(V, tmpl, path, sizeof path);
    resp r = get(aux[2].port, path);
    check_error(V, tmpl, path, &r, 503, "spatial_unavailable");
    resp_free(&r);
    assert_int_equal(srv_stop_clean(&aux[2]), 0);
    snprintf(cmd, sizeof cmd, "rm -rf %s", arch);
    assert_int_equal(system(cmd), 0);
}

/* 500: a query refused for another reason than a lost connection (the reader may no
 * longer read intersections), on every path that declares 500; restored afterwards (also by
 * aux_teardown when this fails midway) */
static void test_internal_error(void **state)
{
    api_ver *V = ver_of(state);
    th_sqlf(owner, "REVOKE SELECT ON intersections FROM tsi_reader");
    const char *env[] = {"TSI_WEB_DIR=/nonexistent-tsi-web", NULL};
    srv_start(&aux[0], NULL, env);
    static char t[64][256];
    int n = templates(V, t, 64), n500 = 0;
    for (int i = 0; i < n; i++) {
        if (!declares(V, t[i], "500"))
            continue;
        char path[2048];
        ok_path(V, t[i], path, sizeof path);
        resp r = get(aux[0].port, path);
        check_error(V, t[i], path, &r, 500, "internal");
        resp_free(&r);
        n500++;
    }
    assert_int_equal(srv_stop_clean(&aux[0]), 0);
    th_sqlf(owner, "GRANT SELECT ON intersections TO tsi_reader");
    assert_true(n500 >= 12);
}

/* ---- GET /api/vN/config ---------------------------------------------------------------- */
static void config_of(const api_ver *V, int port, char *out, size_t len, bool *is_null)
{
    char path[64];
    snprintf(path, sizeof path, "%s/config", V->prefix);
    resp r = get(port, path);
    assert_int_equal(r.status, 200);
    oa_case k = {path, path, 200, NULL};
    check_response(V, &k, &r, path);
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
    api_ver *V = ver_of(state);
    char v[1024];
    bool is_null;
    /* env TSI_TILE_URL (with a quote, & and a non-ASCII letter: escaped, decoded back) */
    config_of(V, srv.port, v, sizeof v, &is_null);
    assert_false(is_null);
    assert_string_equal(v, TILE_ENV);

    /* unset: null */
    const char *env2[] = {"TSI_WEB_DIR=/nonexistent-tsi-web", NULL};
    srv_start(&aux[1], NULL, env2);
    config_of(V, aux[1].port, v, sizeof v, &is_null);
    assert_true(is_null);
    assert_int_equal(srv_stop_clean(&aux[1]), 0);

    /* the flag wins over the environment */
    static char e3[600];
    snprintf(e3, sizeof e3, "TSI_TILE_URL=%s", TILE_ENV);
    const char *env3[] = {e3, "TSI_WEB_DIR=/nonexistent-tsi-web", NULL};
    const char *args3[] = {"--tile-url", TILE_FLAG, NULL};
    srv_start(&aux[2], args3, env3);
    config_of(V, aux[2].port, v, sizeof v, &is_null);
    assert_false(is_null);
    assert_string_equal(v, TILE_FLAG);
    assert_int_equal(srv_stop_clean(&aux[2]), 0);
    if (V->original)
        return; /* the start-up check below is not per version */

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

/* a test of one version: "test_x(v2)", with aux_teardown */
#define VTEST(f, v)                                                                                \
    {                                                                                              \
#f "(" #v ")", f, NULL, aux_teardown, &ver_##v                                             \
    }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validator),
        cmocka_unit_test(test_validator_pattern),
        /* coverage after the error-status tests of its version, which record what they saw */
        VTEST(test_routes_match_document, v2),
        VTEST(test_mutated_body_fails, v2),
        VTEST(test_limits_and_methods, v2),
        VTEST(test_unavailable, v2),
        VTEST(test_internal_error, v2),
        VTEST(test_document_coverage, v2),
        VTEST(test_config, v2),
        VTEST(test_routes_match_document, v1),
        VTEST(test_mutated_body_fails, v1),
        VTEST(test_limits_and_methods, v1),
        VTEST(test_unavailable, v1),
        VTEST(test_internal_error, v1),
        VTEST(test_document_coverage, v1),
        VTEST(test_config, v1),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
