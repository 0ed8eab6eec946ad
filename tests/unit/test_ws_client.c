/* Unit tests of src/vcc/ws_client.h that need no server: URL parsing (hostile input
 * included), configuration checks, and a failing connection reported with backoff.
 * The client against a live server is tested in tests/integration/test_sim*.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "vcc/ws_client.h"

static void test_parse_url(void **state)
{
    (void)state;
    static const struct {
        const char *url;
        int rc;
        bool tls;
        const char *host;
        int port;
        const char *path;
    } cases[] = {
        {"ws://127.0.0.1:8090/ws/bsm?key=abc", 0, false, "127.0.0.1", 8090, "/ws/bsm?key=abc"},
        {"wss://vcc.vtti.vt.edu/ws/psm?key=k&rsu=x", 0, true, "vcc.vtti.vt.edu", 443,
         "/ws/psm?key=k&rsu=x"},
        {"ws://host", 0, false, "host", 80, "/"},
        {"ws://host?key=1", 0, false, "host", 80, "/?key=1"},
        {"http://host/ws", TSI_E_INVALID, false, "", 0, ""},
        {"ws://", TSI_E_INVALID, false, "", 0, ""},
        {"ws://:80/x", TSI_E_INVALID, false, "", 0, ""},
        {"ws://host:0/x", TSI_E_INVALID, false, "", 0, ""},
        {"ws://host:65536/x", TSI_E_INVALID, false, "", 0, ""},
        {"ws://host:12ab/x", TSI_E_INVALID, false, "", 0, ""},
        {"ws://host/a b", TSI_E_INVALID, false, "", 0, ""},
        {"ws://host/a\nb", TSI_E_INVALID, false, "", 0, ""},
        {"ws://host#frag", TSI_E_INVALID, false, "", 0, ""},
        {"", TSI_E_INVALID, false, "", 0, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bool tls = false;
        char host[64] = "", path[128] = "";
        int port = 0;
        int rc = tsi_ws_parse_url(cases[i].url, &tls, host, sizeof host, &port, path, sizeof path);
        assert_int_equal(rc, cases[i].rc);
        if (rc == 0) {
            assert_int_equal(tls, cases[i].tls);
            assert_string_equal(host, cases[i].host);
            assert_int_equal(port, cases[i].port);
            assert_string_equal(path, cases[i].path);
        }
    }
    /* a host name longer than the buffer is refused, not truncated */
    char longhost[300] = "ws://";
    memset(longhost + 5, 'h', 200);
    longhost[205] = '\0';
    bool tls;
    char host[64], path[64];
    int port;
    assert_int_equal(tsi_ws_parse_url(longhost, &tls, host, sizeof host, &port, path, sizeof path),
                     TSI_E_INVALID);
}

static int no_url(void *ud, char *url, size_t len)
{
    (void)ud;
    (void)url;
    (void)len;
    return TSI_E_UNAVAILABLE;
}

static int closed_port(void *ud, char *url, size_t len)
{
    int *calls = ud;
    (*calls)++;
    strncpy(url, "ws://127.0.0.1:1/ws/bsm?key=x", len);
    return 0;
}

static void on_frame(void *ud, const char *d, size_t n)
{
    (void)ud;
    (void)d;
    (void)n;
    fail_msg("no frame expected");
}

static void test_config_and_failures(void **state)
{
    (void)state;
    tsi_ws_client *c = NULL;
    tsi_error e = {0};
    tsi_ws_client_cfg cfg = {0};
    assert_int_equal(tsi_ws_client_new(&c, &cfg, &e), TSI_E_INVALID);
    assert_null(c);
    tsi_ws_client_free(NULL);
    /* no URL: nothing connects, the run ends at its deadline */
    cfg.get_url = no_url;
    cfg.on_frame = on_frame;
    cfg.reconnect = true;
    cfg.backoff_min_ms = 20;
    cfg.backoff_max_ms = 40;
    assert_int_equal(tsi_ws_client_new(&c, &cfg, &e), 0);
    assert_int_equal(tsi_ws_client_run(c, 300), 0);
    assert_false(tsi_ws_client_connected(c));
    tsi_ws_stats st;
    tsi_ws_client_stats(c, &st);
    assert_int_equal(st.connects, 0);
    assert_true(st.failures >= 3); /* retried with backoff */
    tsi_ws_client_free(c);
    /* a refused connection: retried, a fresh URL asked each time */
    int calls = 0;
    cfg.get_url = closed_port;
    cfg.ud = &calls;
    assert_int_equal(tsi_ws_client_new(&c, &cfg, &e), 0);
    assert_int_equal(tsi_ws_client_run(c, 400), 0);
    tsi_ws_client_stats(c, &st);
    assert_int_equal(st.connects, 0);
    assert_true(st.failures >= 2);
    assert_true(calls >= 2);
    tsi_ws_client_free(c);
    /* without reconnect the run ends with the first failure */
    calls = 0;
    cfg.reconnect = false;
    assert_int_equal(tsi_ws_client_new(&c, &cfg, &e), 0);
    assert_int_equal(tsi_ws_client_run(c, 10000), 0);
    assert_int_equal(calls, 1);
    tsi_ws_client_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_url),
        cmocka_unit_test(test_config_and_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
