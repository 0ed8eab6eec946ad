/* Unit tests of src/base: options table, JSON writer, arena, error names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/arena.h"
#include "base/error.h"
#include "base/jsonw.h"
#include "base/options.h"
#include "base/tz.h"

#include <time.h>

static const tsi_option spec[] = {
    {"port", TSI_OPT_INT, "8080", "TSI_TEST_PORT", "port", "1..65535"},
    {"ratio", TSI_OPT_DOUBLE, "0.5", NULL, "ratio", "0..1"},
    {"source", TSI_OPT_ENUM, "auto", "TSI_TEST_SOURCE", "source", "auto|postgres|parquet"},
    {"verbose", TSI_OPT_BOOL, NULL, NULL, "verbose", NULL},
    {"name", TSI_OPT_STRING, NULL, NULL, "name", NULL},
    {NULL, 0, NULL, NULL, NULL, NULL},
};

static int parse(tsi_opts *o, int argc, const char **argv)
{
    return tsi_opts_parse(o, "tsi test", "usage: tsi test", spec, 1, argc, (char **)argv);
}

static void test_defaults_and_flags(void **state)
{
    (void)state;
    unsetenv("TSI_TEST_PORT");
    tsi_opts o;
    const char *a1[] = {"test"};
    assert_int_equal(parse(&o, 1, a1), 0);
    assert_int_equal(tsi_opts_int(&o, "port"), 8080);
    assert_string_equal(tsi_opts_str(&o, "source"), "auto");
    assert_false(tsi_opts_bool(&o, "verbose"));
    assert_null(tsi_opts_str(&o, "name"));
    tsi_opts_free(&o);

    const char *a2[] = {"test", "--port", "9000", "--verbose", "--source=parquet", "pos"};
    assert_int_equal(parse(&o, 6, a2), 0);
    assert_int_equal(tsi_opts_int(&o, "port"), 9000);
    assert_true(tsi_opts_bool(&o, "verbose"));
    assert_string_equal(tsi_opts_str(&o, "source"), "parquet");
    assert_int_equal(o.nargs, 1);
    assert_string_equal(o.args[0], "pos");
    tsi_opts_free(&o);
}

/* another command's table: its keys may stand in a shared configuration file */
static const tsi_option sibling[] = {
    {"other-command-key", TSI_OPT_INT, NULL, NULL, "a key of another command", NULL},
    {"lock-timeout-ms", TSI_OPT_INT, "50", NULL, "a key of another command", NULL},
    {NULL, 0, NULL, NULL, NULL, NULL},
};
static const tsi_option *const known[] = {spec, sibling, NULL};

static void test_precedence(void **state)
{
    (void)state;
    tsi_opts_set_known_tables(known);
    char path[] = "/tmp/tsi-opts-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "# comment\nport = 7000\nsource = \"postgres\"\nother-command-key = 1\n";
    assert_int_equal(write(fd, text, strlen(text)), (int)strlen(text));
    close(fd);
    tsi_opts o;
    /* config only */
    const char *a1[] = {"test", "--config", path};
    unsetenv("TSI_TEST_PORT");
    assert_int_equal(parse(&o, 3, a1), 0);
    assert_int_equal(tsi_opts_int(&o, "port"), 7000);
    assert_string_equal(tsi_opts_str(&o, "source"), "postgres");
    tsi_opts_free(&o);
    /* env beats config */
    setenv("TSI_TEST_PORT", "7100", 1);
    assert_int_equal(parse(&o, 3, a1), 0);
    assert_int_equal(tsi_opts_int(&o, "port"), 7100);
    tsi_opts_free(&o);
    /* flag beats env */
    const char *a2[] = {"test", "--config", path, "--port", "7200"};
    assert_int_equal(parse(&o, 5, a2), 0);
    assert_int_equal(tsi_opts_int(&o, "port"), 7200);
    tsi_opts_free(&o);
    unsetenv("TSI_TEST_PORT");
    unlink(path);
}

static const struct {
    const char *argv[4];
    int argc;
} bad[] = {
    {{"test", "--nope"}, 2},
    {{"test", "--port", "abc"}, 3},
    {{"test", "--port", "70000"}, 3},
    {{"test", "--port"}, 2},
    {{"test", "--ratio", "nan"}, 3},
    {{"test", "--ratio", "2"}, 3},
    {{"test", "--source", "mysql"}, 3},
    {{"test", "-x"}, 2},
    {{"test", "a", "b"}, 3},
};

static void test_bad_flags(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tsi_opts o;
        assert_int_equal(parse(&o, bad[i].argc, (const char **)bad[i].argv), TSI_E_INVALID);
        tsi_opts_free(&o);
    }
    /* a bad value in the environment is refused too */
    setenv("TSI_TEST_SOURCE", "oracle", 1);
    tsi_opts o;
    const char *a[] = {"test"};
    assert_int_equal(parse(&o, 1, a), TSI_E_INVALID);
    tsi_opts_free(&o);
    unsetenv("TSI_TEST_SOURCE");
}

/* A key known to no table is a typo: refused (exit 2 by the caller) with the nearest known
 * key, from this command's table, the global options or another command's table. */
static const struct {
    const char *text;
    int want;            /* parse status */
    const char *key;     /* the unknown key as read, or NULL */
    const char *nearest; /* tsi_opts_nearest_key of it */
} config_keys[] = {
    {"port = 1\n", 0, NULL, NULL},
    {"other-command-key = 3\nport = 2\n", 0, NULL, NULL}, /* another command's key */
    {"prot = 1\n", TSI_E_INVALID, "prot", "port"},        /* swapped letters */
    {"# c\n\nsoruce = auto\n", TSI_E_INVALID, "soruce", "source"},
    {"port = 1\nverbos = 1\n", TSI_E_INVALID, "verbos", "verbose"},
    {"log_level = warn\n", TSI_E_INVALID, "log_level", "log-level"}, /* a global option */
    {"lock-timout-ms = 5\n", TSI_E_INVALID, "lock-timout-ms", "lock-timeout-ms"}, /* sibling */
    {"Port = 1\n", TSI_E_INVALID, "Port", "port"},
    {"\x01\x02 = 1\n", TSI_E_INVALID, "\x01\x02", NULL},
    {"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
     "xxxxxxxxxxxxx = 1\n",
     TSI_E_INVALID, NULL, NULL},
};

static void test_config_unknown_key(void **state)
{
    (void)state;
    tsi_opts_set_known_tables(known);
    for (size_t i = 0; i < sizeof config_keys / sizeof config_keys[0]; i++) {
        char path[] = "/tmp/tsi-opts-XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        size_t len = strlen(config_keys[i].text);
        assert_int_equal(write(fd, config_keys[i].text, len), (int)len);
        close(fd);
        tsi_opts o;
        const char *a[] = {"test", "--config", path};
        int rc = parse(&o, 3, a);
        if (rc != config_keys[i].want)
            fail_msg("case %zu: parse returned %d, expected %d", i, rc, config_keys[i].want);
        tsi_opts_free(&o);
        unlink(path);
        if (config_keys[i].key && config_keys[i].nearest) {
            /* nearest is computed over the same tables the parse sees */
            tsi_opts p;
            const char *none[] = {"test"};
            unsetenv("TSI_TEST_PORT");
            assert_int_equal(parse(&p, 1, none), 0);
            const char *near = tsi_opts_nearest_key(&p, config_keys[i].key);
            if (!near || strcmp(near, config_keys[i].nearest) != 0)
                fail_msg("case %zu: nearest of '%s' is '%s', expected '%s'", i, config_keys[i].key,
                         near ? near : "(null)", config_keys[i].nearest);
            tsi_opts_free(&p);
        }
    }
    /* nothing registered: only this command's table and the global options are known */
    tsi_opts_set_known_tables(NULL);
    char path[] = "/tmp/tsi-opts-XXXXXX";
    int fd = mkstemp(path);
    const char *text = "other-command-key = 1\n";
    assert_int_equal(write(fd, text, strlen(text)), (int)strlen(text));
    close(fd);
    tsi_opts o;
    const char *a[] = {"test", "--config", path};
    assert_int_equal(parse(&o, 3, a), TSI_E_INVALID);
    tsi_opts_free(&o);
    unlink(path);
}

static void test_config_secret_refused(void **state)
{
    (void)state;
    char path[] = "/tmp/tsi-opts-XXXXXX";
    int fd = mkstemp(path);
    const char *text = "port = 1\nvcc_client_secret = hunter2\n";
    assert_int_equal(write(fd, text, strlen(text)), (int)strlen(text));
    close(fd);
    tsi_opts o;
    const char *a[] = {"test", "--config", path};
    assert_int_equal(parse(&o, 3, a), TSI_E_INVALID);
    tsi_opts_free(&o);
    unlink(path);
}

static void check_json(void (*build)(tsi_jsonw *), const char *want)
{
    tsi_buf b = TSI_BUF_INIT;
    tsi_jsonw w;
    tsi_jsonw_init(&w, &b);
    build(&w);
    assert_string_equal(tsi_buf_cstr(&b), want);
    tsi_buf_free(&b);
}

static void build_nested(tsi_jsonw *w)
{
    tsi_jsonw_object(w);
    tsi_jsonw_kv_int(w, "id", 7);
    tsi_jsonw_kv_str(w, "name", "US-29 & \"Nutley\"\n");
    tsi_jsonw_key(w, "xs");
    tsi_jsonw_array(w);
    tsi_jsonw_double(w, 1.5);
    tsi_jsonw_double(w, NAN);
    tsi_jsonw_double(w, INFINITY);
    tsi_jsonw_null(w);
    tsi_jsonw_object(w);
    tsi_jsonw_end(w);
    tsi_jsonw_end(w);
    tsi_jsonw_kv_bool(w, "ok", true);
    tsi_jsonw_end(w);
}

static void build_utf8(tsi_jsonw *w)
{
    tsi_jsonw_array(w);
    tsi_jsonw_str(w, "caf\xc3\xa9");      /* valid 2-byte */
    tsi_jsonw_str(w, "bad\xff");          /* invalid byte */
    tsi_jsonw_str(w, "\xc0\xaf");         /* overlong '/' */
    tsi_jsonw_str(w, "\xed\xa0\x80");     /* surrogate */
    tsi_jsonw_str(w, "\x01\x7f");         /* control characters */
    tsi_jsonw_str(w, "\xf0\x9f\x9a\xa6"); /* U+1F6A6 */
    tsi_jsonw_str(w, "\xe2\x82");         /* truncated */
    tsi_jsonw_end(w);
}

static void build_fixed(tsi_jsonw *w)
{
    tsi_jsonw_array(w);
    tsi_jsonw_double_fixed(w, 64.2666666, 2);
    tsi_jsonw_double_fixed(w, 3.0, 2);
    tsi_jsonw_double_fixed(w, -0.0001, 2);
    tsi_jsonw_end(w);
}

/* literal keys: the same text as tsi_jsonw_key, separators included */
static void build_literal_keys(tsi_jsonw *w)
{
    tsi_jsonw_array(w);
    for (int i = 0; i < 2; i++) {
        tsi_jsonw_object(w);
        TSI_JSONW_KEY(w, "timestamp");
        tsi_jsonw_raw(w, "\"2026-11-25T00:00:00Z\"", 22);
        TSI_JSONW_KEY(w, "traffic_volume");
        tsi_jsonw_int(w, i);
        tsi_jsonw_key(w, "x");
        tsi_jsonw_null(w);
        tsi_jsonw_end(w);
    }
    tsi_jsonw_end(w);
}

static void test_json_writer(void **state)
{
    (void)state;
    check_json(build_nested,
               "{\"id\":7,\"name\":\"US-29 & \\\"Nutley\\\"\\n\",\"xs\":[1.5,null,null,null,{}],"
               "\"ok\":true}");
    check_json(build_utf8, "[\"caf\xc3\xa9\",\"bad\xef\xbf\xbd\",\"\xef\xbf\xbd\xef\xbf\xbd\","
                           "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\",\"\\u0001\\u007f\","
                           "\"\xf0\x9f\x9a\xa6\",\"\xef\xbf\xbd\xef\xbf\xbd\"]");
    check_json(build_fixed, "[64.27,3.0,0.0]");
    check_json(build_literal_keys,
               "[{\"timestamp\":\"2026-11-25T00:00:00Z\",\"traffic_volume\":0,\"x\":null},"
               "{\"timestamp\":\"2026-11-25T00:00:00Z\",\"traffic_volume\":1,\"x\":null}]");
}

static void test_arena(void **state)
{
    (void)state;
    tsi_arena *a = tsi_arena_new(256);
    char *first = tsi_arena_strdup(a, "hello");
    size_t total = 0;
    for (int i = 0; i < 1000; i++) {
        char *p = tsi_arena_printf(a, "item %d", i);
        char want[32];
        snprintf(want, sizeof want, "item %d", i);
        assert_string_equal(p, want);
        assert_int_equal(((uintptr_t)p) % 16, 0);
        total += strlen(p) + 1;
    }
    char *big = tsi_arena_alloc(a, 100000);
    memset(big, 1, 100000);
    assert_string_equal(first, "hello");
    assert_true(tsi_arena_used(a) >= total + 100000);
    tsi_arena_reset(a);
    assert_int_equal(tsi_arena_used(a), 0);
    tsi_arena_free(a);
}

static void test_error_names(void **state)
{
    (void)state;
    assert_string_equal(tsi_error_name(TSI_E_JSON_TRUNCATED), "json_truncated");
    assert_string_equal(tsi_error_name(TSI_E_INTERNAL), "internal");
    assert_string_equal(tsi_error_name(-999), "unknown");
    assert_string_equal(tsi_error_name(1), "unknown");
    tsi_error e;
    assert_int_equal(tsi_error_set(&e, TSI_E_RANGE, "lat out of range", "lat=%d", 91), TSI_E_RANGE);
    char buf[128];
    assert_string_equal(tsi_error_str(&e, buf, sizeof buf), "lat out of range: lat=91");
    assert_int_equal(tsi_error_set(NULL, TSI_E_IO, "x", NULL), TSI_E_IO);
}

/* the local hour and weekday of base/tz.h against glibc's localtime_r, every 15 minutes over
 * two years (both DST changes of each year), in zones with DST, a 30-minute DST shift and
 * a 45-minute offset, and in UTC whatever the process's TZ */
static void test_tz_hour_dow(void **state)
{
    (void)state;
    const char *zones[] = {"America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu",
                           "Europe/London"};
    for (size_t z = 0; z < sizeof zones / sizeof zones[0]; z++) {
        tsi_error e = {0};
        assert_int_equal(tsi_tz_init(zones[z], &e), 0);
        for (int64_t t = 1767225600; t < 1767225600 + 2 * 366 * 86400LL; t += 900) {
            time_t tt = (time_t)t;
            struct tm tm;
            assert_non_null(localtime_r(&tt, &tm));
            int hour, dow;
            tsi_tz_hour_dow(t, &hour, &dow);
            if (hour != tm.tm_hour || dow != (tm.tm_wday + 6) % 7)
                fail_msg("%s at %lld: %d/%d, libc %d/%d", zones[z], (long long)t, hour, dow,
                         tm.tm_hour, (tm.tm_wday + 6) % 7);
        }
    }
    tsi_error e = {0};
    assert_int_equal(tsi_tz_init("UTC", &e), 0);
    int hour, dow;
    tsi_tz_hour_dow(1796263200, &hour, &dow); /* 2026-12-03 02:00 UTC, a Thursday */
    assert_int_equal(hour, 2);
    assert_int_equal(dow, 3);
    tsi_tz_hour_dow(-1, &hour, &dow); /* 1969-12-31 23:59:59, a Wednesday */
    assert_int_equal(hour, 23);
    assert_int_equal(dow, 2);
    /* hostile names are refused and change nothing */
    const char *hostile[] = {"Mars/Olympus", "../../etc/passwd", "/etc/localtime", "America",
                             "America/New_York/../../../etc/passwd"};
    assert_int_equal(tsi_tz_init("America/New_York", &e), 0);
    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++)
        assert_int_equal(tsi_tz_init(hostile[i], &e), TSI_E_INVALID);
    assert_string_equal(tsi_tz_name(), "America/New_York");
    tsi_tz_hour_dow(1796263200, &hour, &dow); /* 21:00 the day before in New York */
    assert_int_equal(hour, 21);
    assert_int_equal(dow, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_flags),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_bad_flags),
        cmocka_unit_test(test_config_secret_refused),
        cmocka_unit_test(test_config_unknown_key),
        cmocka_unit_test(test_json_writer),
        cmocka_unit_test(test_arena),
        cmocka_unit_test(test_error_names),
        cmocka_unit_test(test_tz_hour_dow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
