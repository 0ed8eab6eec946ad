/* `tsi features` and `tsi explain` run as the binary (TSI_BIN): a hand-built capture
 * with known answers (a rear-end conflict, a PSM-only minute, a duplicate, a late and an
 * unmatched message), a hostile-input table of lines each rejected with its reason code
 * on stderr, the closing summary, both output formats, time zones, and the explain
 * vectors of domain.md §4. Needs no database. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/geo.h"
#include "core/json.h"
#include "harness.h"

#define T0      1764066600000LL /* 2025-11-25T10:30:00Z, a Tuesday */
#define REF_LAT 38.86
#define REF_LON -77.26
#define ISECT   (1 * 65536 + 4101)

static char dir[256];

static void path_of(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", dir, name);
}

static void write_file(const char *name, const char *text)
{
    char p[512];
    path_of(p, sizeof p, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static char *read_text(const char *name)
{
    char p[512];
    path_of(p, sizeof p, name);
    FILE *f = fopen(p, "r");
    if (!f)
        return NULL;
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return strdup(buf);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/tsi-features-XXXXXX");
    assert_non_null(mkdtemp(dir));
    write_file("mapdata.json",
               "[{\"msgIssueRevision\":1,\"intersections\":[{\"name\":\"US-29 & Nutley\","
               "\"id\":{\"region\":1,\"id\":4101},\"revision\":1,\"refPoint\":{\"lat\":38.86,"
               "\"lon\":-77.26},\"laneSet\":[{\"laneID\":1,\"laneAttributes\":{\"laneType\":"
               "\"vehicle\"},\"nodesList\":{\"nodes\":[{\"delta\":{\"lat\":38.86,\"lon\":-77.2602}"
               "},{\"delta\":{\"lat\":38.86,\"lon\":-77.263}}]}}]}]}]\n");
    write_file("constants.json", "{\"I_vru_max\":8,\"I_veh_max\":8,\"V_max\":200,"
                                 "\"sigma_max\":20,\"S_ref\":40,\"HB_max\":15}\n");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A BSM/PSM JSON object at local (x, y) metres around the intersection. */
static void msg_json(char *out, size_t n, bool psm, long long id, long long ts, double x, double y,
                     double speed, double heading, int cnt)
{
    tsi_ltp ltp;
    tsi_ltp_init(&ltp, REF_LAT, REF_LON);
    double lat, lon;
    tsi_ltp_to_ll(&ltp, x, y, &lat, &lon);
    if (psm)
        snprintf(out, n,
                 "{\"timestamp\":%lld,\"rsuName\":\"r1\",\"psmJson\":{\"basicType\":1,\"id\":%lld,"
                 "\"msgCnt\":%d,\"secMark\":%lld,\"position\":{\"lat\":%.12f,\"lon\":%.12f},"
                 "\"speed\":%g,\"heading\":%g}}",
                 ts, id, cnt % 128, ts % 60000, lat, lon, speed, heading);
    else
        snprintf(out, n,
                 "{\"timestamp\":%lld,\"rsuName\":\"r1\",\"bsmJson\":{\"coreData\":{\"msgCnt\":%d,"
                 "\"id\":%lld,\"secMark\":%lld,\"lat\":%.12f,\"lon\":%.12f,\"speed\":%g,"
                 "\"heading\":%g,\"accelSet\":{\"lon\":0},\"size\":{\"width\":190,\"length\":480}"
                 "}}}",
                 ts, cnt % 128, id, ts % 60000, lat, lon, speed, heading);
}

/* Finds the JSON-lines record of a minute; returns its parsed doc in d (caller frees). */
static bool find_record(const char *text, long long minute_iso_ts, tsi_json *d, char *line)
{
    char want[64];
    time_t t = (time_t)(minute_iso_ts / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(want, sizeof want, "\"timestamp\":\"%Y-%m-%dT%H:%M:%SZ\"", &tm);
    const char *p = text;
    while (p && *p) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        memcpy(line, p, n);
        line[n] = '\0';
        if (strstr(line, want)) {
            tsi_error err;
            assert_true(tsi_json_parse_alloc(d, line, n, 0, &err) > 0);
            return true;
        }
        p = e ? e + 1 : NULL;
    }
    return false;
}

static double num(tsi_json *d, const char *key)
{
    double v = NAN;
    if (tsi_json_num(d, tsi_json_get(d, 0, key), &v) != 0)
        fail_msg("record has no number %s", key);
    return v;
}

static void test_capture_and_hostile_lines(void **state)
{
    (void)state;
    static char text[1 << 20];
    size_t o = 0;
    char a[1024], b[1024];
    int line = 0;
    /* lines 1..4: a rear-end approach as stream frames (gaps 30, 25, 20, 15 m) */
    for (int k = 0; k < 4; k++) {
        msg_json(a, sizeof a, false, 1, T0 + 5000 + 500 * k, 0, -40 + 7.5 * k, 15, 0, k);
        msg_json(b, sizeof b, false, 2, T0 + 5000 + 500 * k, 0, -10 + 2.5 * k, 5, 0, k);
        o += (size_t)snprintf(text + o, sizeof text - o, "[%s,%s]\n", a, b);
        line++;
    }
    /* line 5: the last leader message again, alone (a duplicate) */
    o += (size_t)snprintf(text + o, sizeof text - o, "%s\n", b);
    line++;
    /* lines 6..: the hostile table, each with the reason code stderr must name */
    static const struct {
        const char *text, *code;
    } bad[] = {
        {"{\"timestamp\":1764066610000,\"bsmJson\":{\"coreData\":{\"id\":5,\"lat\":91,"
         "\"lon\":0}}}",
         "range"},
        {"{\"timestamp\":1764066610000,\"bsmJson\":{\"coreData\":{\"id\":5,\"lat\":1,"
         "\"lon\":1,\"speed\":-3}}}",
         "range"},
        {"{\"timestamp\":1764066610000,\"bsmJson\":{\"coreData\":{\"id\":5,\"lat\":NaN,"
         "\"lon\":0}}}",
         "json"},
        {"{\"timestamp\":1764066610000,\"bsmJson\":{\"coreData\":{\"lat\":1,\"lon\":1}}}",
         "missing"},
        {"{\"bsmJson\":{\"coreData\":{\"id\":5,\"lat\":1,\"lon\":1}}}", "missing"},
        {"{\"timestamp\":1764066610000,\"spatJson\":{}}", "unknown_type"},
        {"{\"timestamp\":1764066610000,\"bsmJson\":{\"coreData\":", "json_truncated"},
        {"this is not json", "json"},
        {"{\"timestamp\":1764066610000,\"bsmJson\":{}} trailing", "json"},
        {"\"a string\"", "not_object"},
        {"[17]", "not_object"},
    };
    int first_bad = line + 1;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        o += (size_t)snprintf(text + o, sizeof text - o, "%s\n", bad[i].text);
        line++;
    }
    /* a blank line is skipped, not rejected */
    o += (size_t)snprintf(text + o, sizeof text - o, "\n");
    line++;
    /* minute 1 (10:31): PSM only, two pedestrians */
    msg_json(a, sizeof a, true, 7001, T0 + 61000, 5, 5, 1.2, 90, 1);
    msg_json(b, sizeof b, true, 7002, T0 + 61000, -5, 5, 1.4, 270, 1);
    o += (size_t)snprintf(text + o, sizeof text - o, "[%s,%s]\n", a, b);
    line++;
    /* an unmatched message 2 km away */
    msg_json(a, sizeof a, false, 9, T0 + 62000, 2000, 0, 10, 0, 1);
    o += (size_t)snprintf(text + o, sizeof text - o, "%s\n", a);
    line++;
    /* the clock passes 10:31:10: minute 10:30 closes; then a late message for it (121 s,
     * not more: 120 s past the median time of the messages around it would be clock_skew) */
    msg_json(a, sizeof a, false, 3, T0 + 121000, 0, 0, 10, 0, 1);
    o += (size_t)snprintf(text + o, sizeof text - o, "%s\n", a);
    msg_json(a, sizeof a, false, 4, T0 + 30000, 0, 0, 10, 0, 2);
    o += (size_t)snprintf(text + o, sizeof text - o, "%s\n", a);
    line += 2;
    write_file("capture.jsonl", text);

    char mp[512], cp[512], mm[512], op[512], cf[512];
    path_of(mp, sizeof mp, "mapdata.json");
    path_of(cp, sizeof cp, "constants.json");
    path_of(mm, sizeof mm, "capture.jsonl");
    path_of(op, sizeof op, "out.jsonl");
    path_of(cf, sizeof cf, "conflicts.jsonl");
    static char out[1 << 16];
    const char *args[] = {"features", "--mapdata", mp,     "--messages", mm, "--constants",
                          cp,         "--priors",  "none", "--output",   op, "--conflicts",
                          cf,         NULL};
    int rc = th_run_tsi(args, NULL, out, sizeof out);
    if (rc != 0)
        fail_msg("tsi features exited %d: %s", rc, out);

    /* stderr: each hostile line by number and reason code */
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char want[128];
        if (strcmp(bad[i].code, "not_object") == 0 && bad[i].text[0] == '[')
            snprintf(want, sizeof want, "line %d: element 0: %s: ", first_bad + (int)i,
                     bad[i].code);
        else
            snprintf(want, sizeof want, "line %d: %s: ", first_bad + (int)i, bad[i].code);
        if (!strstr(out, want))
            fail_msg("stderr lacks '%s':\n%s", want, out);
    }
    /* the closing summary: 11 rejected, one duplicate, one late, one unmatched */
    assert_non_null(strstr(out, "rejected=11 "));
    assert_non_null(strstr(out, "duplicates=1 "));
    assert_non_null(strstr(out, "late=1 "));
    assert_non_null(strstr(out, "unmatched=1 "));
    assert_non_null(strstr(out, "windows=3 "));
    /* decoded: 8 rear-end + 1 duplicate + 2 PSM + unmatched + 2 = 14; accepted = 14 − dup −
     * late − unmatched = 11 */
    assert_non_null(strstr(out, "decoded=14 "));
    assert_non_null(strstr(out, "accepted=11 "));

    char *res = read_text("out.jsonl");
    assert_non_null(res);
    tsi_json d;
    static char ln[8192];
    assert_true(find_record(res, T0, &d, ln));
    assert_true(num(&d, "intersection_id") == ISECT);
    assert_true(num(&d, "traffic_volume") == 2);
    assert_true(num(&d, "vru_count") == 0);
    assert_true(num(&d, "vehicle_event_count") == 1);
    assert_true(num(&d, "vru_event_count") == 0);
    assert_true(num(&d, "hard_braking_count") == 0);
    assert_true(fabs(num(&d, "avg_speed") - 10) < 1e-9); /* (15 + 5) / 2 */
    /* sample sd of 15,15,15,15,5,5,5,5 (the duplicate is dropped): sqrt(8·25/7) */
    assert_true(fabs(num(&d, "speed_stddev") - sqrt(200.0 / 7)) < 1e-9);
    assert_true(num(&d, "hour_of_day") == 10 && num(&d, "day_of_week") == 1);
    /* the index by the formula of §4 with the given constants */
    double sd = sqrt(200.0 / 7);
    double vru = 100 * (0.4 * 0 / 8 + 0.2 * 2 / 200.0 + 0.2 * 10 / 40 + 0.2 * sd / 20);
    double veh = 100 * (0.3 * 1 / 8 + 0.3 * 2 / 200.0 + 0.2 * sd / 20 + 0.2 * 0 / 15);
    assert_true(fabs(num(&d, "vru_index") - vru) < 1e-6);
    assert_true(fabs(num(&d, "vehicle_index") - veh) < 1e-6);
    assert_true(fabs(num(&d, "combined_index") - (0.6 * vru + 0.4 * veh)) < 1e-6);
    /* --priors none: EB equals raw */
    assert_true(fabs(num(&d, "combined_index_eb") - num(&d, "combined_index")) < 1e-9);
    assert_true(fabs(num(&d, "vru_index_eb") - vru) < 1e-6);
    tsi_json_free(&d);

    assert_true(find_record(res, T0 + 60000, &d, ln));
    assert_true(num(&d, "traffic_volume") == 0); /* PSM-only minute: kept */
    assert_true(num(&d, "vru_count") == 2);
    assert_true(num(&d, "avg_speed") == 0);
    tsi_json_free(&d);
    assert_true(find_record(res, T0 + 120000, &d, ln));
    assert_true(num(&d, "traffic_volume") == 1);
    tsi_json_free(&d);
    free(res);

    /* the conflict audit record: ids 1 and 2, min TTC (15 − 4.8)/10 (positions went through
     * JSON text with 12 decimals of a degree, ~1e-7 m: a 1e-5 tolerance) */
    char *conf = read_text("conflicts.jsonl");
    assert_non_null(conf);
    assert_true(tsi_json_parse_alloc(&d, conf, strcspn(conf, "\n"), 0, NULL) > 0);
    assert_true(num(&d, "id_a") == 1 && num(&d, "id_b") == 2);
    assert_true(fabs(num(&d, "min_ttc_s") - 1.02) < 1e-5);
    assert_true(fabs(num(&d, "min_distance_m") - 15) < 1e-5);
    tsi_json_free(&d);
    free(conf);

    /* CSV: a header and one row per minute, same numbers */
    const char *cargs[] = {"features", "--mapdata", mp,    "--messages", mm, "--constants",
                           cp,         "--format",  "csv", "--output",   op, "--priors",
                           "none",     NULL};
    assert_int_equal(th_run_tsi(cargs, NULL, out, sizeof out), 0);
    res = read_text("out.jsonl");
    assert_true(strncmp(res,
                        "intersection_id,timestamp,hour_of_day,day_of_week,traffic_volume,"
                        "vru_count,avg_speed,speed_stddev,hard_braking_count,vru_event_count,"
                        "vehicle_event_count,combined_index,combined_index_eb,vru_index,"
                        "vru_index_eb,vehicle_index,vehicle_index_eb\n",
                        228) == 0);
    int rows = 0;
    for (const char *p = res; *p; p++)
        rows += *p == '\n';
    assert_int_equal(rows, 4);
    char want[64];
    snprintf(want, sizeof want, "\n%d,2025-11-25T10:30:00Z,10,1,2,0,10.000000,", ISECT);
    assert_non_null(strstr(res, want));
    free(res);

    /* time zone: 10:30 UTC is 05:30 in New York (EST) */
    const char *targs[] = {"features",   "--mapdata",        mp,         "--messages", mm,
                           "--timezone", "America/New_York", "--output", op,           NULL};
    assert_int_equal(th_run_tsi(targs, NULL, out, sizeof out), 0);
    res = read_text("out.jsonl");
    assert_true(find_record(res, T0, &d, ln));
    assert_true(num(&d, "hour_of_day") == 5 && num(&d, "day_of_week") == 1);
    tsi_json_free(&d);
    free(res);
    /* without --constants: computed from the input, named in the summary */
    assert_non_null(strstr(out, "constants=computed from 3 minutes"));
}

/* Clock sanity offline: the real capture with one message dated a day ahead and one an
 * hour behind inserted among its lines gives the same records as the capture alone, the
 * two counted as clock_skew; with the check off (today's behaviour) the day-ahead message
 * makes the real ones late. Then the location map (locationName wins over geometry). */
static void test_clock_skew_and_location_map(void **state)
{
    (void)state;
    char mp[512], mm[512], sk[512], op[512], lm[512];
    const char *root = getenv("TSI_SOURCE_DIR");
    snprintf(mp, sizeof mp, "%s/tests/fixtures/mapdata/corridor.json", root);
    snprintf(mm, sizeof mm, "%s/tests/fixtures/messages/capture.jsonl", root);
    path_of(sk, sizeof sk, "skewed.jsonl");
    path_of(op, sizeof op, "out.jsonl");
    path_of(lm, sizeof lm, "locations.json");
    static char out[1 << 16];
    const char *base[] = {"features", "--mapdata", mp,         "--messages", mm,
                          "--priors", "none",      "--output", op,           NULL};
    assert_int_equal(th_run_tsi(base, NULL, out, sizeof out), 0);
    assert_non_null(strstr(out, "clock_skew=0 "));
    assert_non_null(strstr(out, "late=0 "));
    char *want = read_text("out.jsonl");
    assert_non_null(want);
    assert_non_null(strstr(want, "\"timestamp\":\"2025-11-25T10:31:00Z\""));

    /* the capture with two lines inserted after line 10 and line 30: a copy of a real
     * in-radius message (the capture's first) dated a day ahead, and one an hour behind */
    FILE *f = fopen(mm, "r");
    assert_non_null(f);
    static char text[1 << 20], first[8192];
    size_t o = 0;
    char line[1 << 14];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        n++;
        if (n == 1) { /* "[{...},": the first element of the first frame */
            char *end = strstr(line, "},{\"timestamp\"");
            assert_non_null(end);
            snprintf(first, sizeof first, "%.*s}", (int)(end - line - 1), line + 1);
        }
        o += (size_t)snprintf(text + o, sizeof text - o, "%s", line);
        if (n == 10 || n == 30) {
            long long ts = 0;
            char *p = strstr(first, "\"timestamp\":");
            assert_non_null(p);
            ts = atoll(p + 12);
            long long moved = n == 10 ? ts + 86400000LL : ts - 3600000LL;
            o += (size_t)snprintf(text + o, sizeof text - o, "{\"timestamp\":%lld,%s\n", moved,
                                  strchr(first, ',') + 1);
        }
    }
    fclose(f);
    write_file("skewed.jsonl", text);
    const char *args[] = {"features", "--mapdata", mp,         "--messages", sk,
                          "--priors", "none",      "--output", op,           NULL};
    assert_int_equal(th_run_tsi(args, NULL, out, sizeof out), 0);
    if (!strstr(out, "clock_skew=2 ") || !strstr(out, "late=0 "))
        fail_msg("summary:\n%s", out);
    assert_non_null(strstr(out, ": clock_skew: "));
    char *got = read_text("out.jsonl");
    assert_string_equal(got, want);
    free(got);

    /* the check off: the message from tomorrow moves the clock, the real ones are late */
    const char *off[] = {"features", "--mapdata", mp, "--messages",         sk,  "--priors",
                         "none",     "--output",  op, "--max-skew-seconds", "0", NULL};
    assert_int_equal(th_run_tsi(off, NULL, out, sizeof out), 0);
    assert_non_null(strstr(out, "clock_skew=0 "));
    assert_null(strstr(out, "late=0 "));
    got = read_text("out.jsonl");
    assert_true(strcmp(got, want) != 0);
    free(got);

    /* the location map: the capture's locationName sent to the other intersection (1/4102)
     * although its messages lie at 1/4101 */
    write_file("locations.json", "{\"US-29 & Nutley\": 69638}");
    const char *lmap[] = {"features", "--mapdata", mp, "--messages",     mm, "--priors",
                          "none",     "--output",  op, "--location-map", lm, NULL};
    assert_int_equal(th_run_tsi(lmap, NULL, out, sizeof out), 0);
    got = read_text("out.jsonl");
    assert_non_null(strstr(got, "\"intersection_id\":69638"));
    free(got);
    write_file("locations.json", "{\"US-29 & Nutley\": -4}");
    assert_int_equal(th_run_tsi(lmap, NULL, out, sizeof out), 1);
    assert_non_null(strstr(out, "US-29 & Nutley"));
    free(want);
}

static void test_usage_errors(void **state)
{
    (void)state;
    static char out[1 << 14];
    char mp[512], cp[512], mm[512];
    path_of(mp, sizeof mp, "mapdata.json");
    path_of(cp, sizeof cp, "empty.json");
    path_of(mm, sizeof mm, "none.jsonl");
    write_file("empty.json", "{}");
    write_file("one.jsonl", "\n");
    char one[512];
    path_of(one, sizeof one, "one.jsonl");
    const char *a1[] = {"features", "--messages", one, NULL};
    assert_int_equal(th_run_tsi(a1, NULL, out, sizeof out), 2);
    const char *a2[] = {"features", "--mapdata", mp, "--messages", mm, NULL};
    assert_int_equal(th_run_tsi(a2, NULL, out, sizeof out), 1);
    assert_non_null(strstr(out, "cannot open"));
    /* an empty constants file is an error, never a silent index of 0 */
    const char *a3[] = {"features", "--mapdata", mp, "--messages", one, "--constants", cp, NULL};
    assert_int_equal(th_run_tsi(a3, NULL, out, sizeof out), 1);
    assert_non_null(strstr(out, "I_vru_max"));
    const char *a4[] = {"features",   "--mapdata",    mp,  "--messages", one,
                        "--timezone", "Mars/Olympus", NULL};
    assert_int_equal(th_run_tsi(a4, NULL, out, sizeof out), 2);
    const char *a5[] = {"features", "--mapdata", one, "--messages", one, NULL};
    assert_int_equal(th_run_tsi(a5, NULL, out, sizeof out), 1);
    const char *a6[] = {"features", "--mapdata", mp, "--messages", one, "--format", "xml", NULL};
    assert_int_equal(th_run_tsi(a6, NULL, out, sizeof out), 2);
    /* an empty input: no records, a summary */
    const char *a7[] = {"features", "--mapdata", mp, "--messages", one, NULL};
    assert_int_equal(th_run_tsi(a7, NULL, out, sizeof out), 0);
    assert_non_null(strstr(out, "summary: lines=0 "));
    assert_non_null(strstr(out, "constants=defaults"));
}

static void test_explain(void **state)
{
    (void)state;
    static char out[1 << 14];
    char fp[512], cp[512];
    path_of(fp, sizeof fp, "features.json");
    path_of(cp, sizeof cp, "constants.json");
    write_file("features.json", "{\"vru_event_count\":5,\"vehicle_event_count\":3,"
                                "\"traffic_volume\":150,\"vru_count\":0,\"avg_speed\":35,"
                                "\"speed_stddev\":12,\"hard_braking_count\":8}");
    const char *a1[] = {"explain", "--features", fp, "--constants", cp, "--format", "json", NULL};
    assert_int_equal(th_run_tsi(a1, NULL, out, sizeof out), 0);
    tsi_json d;
    assert_true(tsi_json_parse_alloc(&d, out, strcspn(out, "\n"), 0, NULL) > 0);
    /* domain.md §4's worked vector */
    assert_true(fabs(num(&d, "vru_index") - 69.5) < 1e-6);
    assert_true(fabs(num(&d, "vehicle_index") - 56.416667) < 1e-6);
    assert_true(fabs(num(&d, "combined_index") - 64.266667) < 1e-6);
    double t;
    assert_int_equal(
        tsi_json_num(&d, tsi_json_path(&d, 0, "vru_terms", "vru_event_count", NULL), &t), 0);
    assert_true(fabs(t - 25) < 1e-9);
    assert_int_equal(
        tsi_json_num(&d, tsi_json_path(&d, 0, "vehicle_terms", "hard_braking_count", NULL), &t), 0);
    assert_true(fabs(t - 100 * 0.2 * 8 / 15) < 1e-9);
    tsi_json_free(&d);

    /* the EB vector: N = 29 (20 + 9), k = 50, P = 20 → combined_eb 36.249789 */
    write_file("features.json", "{\"vru_event_count\":5,\"vehicle_event_count\":3,"
                                "\"traffic_volume\":20,\"vru_count\":9,\"avg_speed\":35,"
                                "\"speed_stddev\":12,\"hard_braking_count\":8,"
                                "\"prior_vru\":20,\"prior_vehicle\":20,\"prior_combined\":20}");
    /* V = 20 changes the raw index: VRU = 100·(0.25 + 0.2·20/200 + 0.175 + 0.12) etc. */
    assert_int_equal(th_run_tsi(a1, NULL, out, sizeof out), 0);
    assert_true(tsi_json_parse_alloc(&d, out, strcspn(out, "\n"), 0, NULL) > 0);
    double vru = 100 * (0.4 * 5 / 8 + 0.2 * 20 / 200.0 + 0.2 * 35 / 40 + 0.2 * 12 / 20);
    double veh = 100 * (0.3 * 3 / 8 + 0.3 * 20 / 200.0 + 0.2 * 12 / 20 + 0.2 * 8 / 15);
    double comb = 0.6 * vru + 0.4 * veh, lam = 29.0 / 79.0;
    assert_true(fabs(num(&d, "lambda") - lam) < 1e-12);
    assert_true(fabs(num(&d, "combined_index_eb") - (20 + lam * (comb - 20))) < 1e-6);
    tsi_json_free(&d);

    /* text form, defaults without --constants */
    const char *a2[] = {"explain", "--features", fp, NULL};
    assert_int_equal(th_run_tsi(a2, NULL, out, sizeof out), 0);
    assert_non_null(strstr(out, "constants (configured defaults)"));
    assert_non_null(strstr(out, "Combined index = "));
    assert_non_null(strstr(out, "prior P: vru 20.000000"));

    /* a missing feature and a bad constants file are errors naming the key */
    write_file("features.json", "{\"vru_event_count\":5}");
    assert_int_equal(th_run_tsi(a2, NULL, out, sizeof out), 1);
    assert_non_null(strstr(out, "feature missing"));
    write_file("features.json", "{\"vru_event_count\":5,\"vehicle_event_count\":3,"
                                "\"traffic_volume\":-1,\"vru_count\":0,\"avg_speed\":35,"
                                "\"speed_stddev\":12,\"hard_braking_count\":8}");
    assert_int_equal(th_run_tsi(a2, NULL, out, sizeof out), 1);
    write_file("features.json", "[1,2");
    assert_int_equal(th_run_tsi(a2, NULL, out, sizeof out), 1);
    assert_non_null(strstr(out, "json_truncated"));
    write_file("c2.json", "{\"I_vru_max\":8}");
    char c2[512];
    path_of(c2, sizeof c2, "c2.json");
    const char *a3[] = {"explain", "--features", fp, "--constants", c2, NULL};
    assert_int_equal(th_run_tsi(a3, NULL, out, sizeof out), 1);
    assert_non_null(strstr(out, "I_veh_max"));
    const char *a4[] = {"explain", NULL};
    assert_int_equal(th_run_tsi(a4, NULL, out, sizeof out), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_capture_and_hostile_lines),
        cmocka_unit_test(test_clock_skew_and_location_map),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_explain),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
