/* `tsi sim --tls-cert F --tls-key F` (issue 11): HTTPS and WSS on one port, so the
 * collector's https:// and wss:// paths are tested against a real peer.
 *
 * Each run makes a throwaway CA and a server certificate for localhost / 127.0.0.1 with
 * the openssl command line, and a second, unrelated CA. Checked:
 *  - the VCC REST client (vcc/client.h) with --vcc-ca-file's CA: auth, MapData, a key;
 *  - the WebSocket client (vcc/ws_client.h) on wss:// with that CA: frames of BSMs;
 *  - `tsi collect --no-db --vcc-ca-file CA` against https://: both streams connect and
 *    messages are accepted;
 *  - the wrong CA, and the system store, are refused with an error that names the
 *    certificate, and no frame arrives;
 *  - hostile inputs: --tls-cert without --tls-key (exit 2), a certificate file that is
 *    not PEM (the simulator exits non-zero saying why). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/proc.h"
#include "core/json.h"
#include "harness.h"
#include "proc_helper.h"
#include "vcc/client.h"
#include "vcc/decode.h"
#include "vcc/ws_client.h"

static char dir[512], ca[600], ca2[600], cert[600], key[600], supp[600];

/* libwebsockets 4.1 does not free the OpenSSL store of a wss:// client context (it loads
 * the system CA bundle into it, whatever the CA file): LeakSanitizer would fail every
 * process that opened a wss:// stream, this test and the collector it starts. Those
 * allocations are OpenSSL's, made for libwebsockets; tsi never calls OpenSSL itself. */
#define LSAN_SUPP "leak:libcrypto.so\nleak:libssl.so\n"
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return LSAN_SUPP;
}

static void run_ok(const char *const *argv)
{
    char out[4096] = "";
    tsi_error e = {0};
    int rc = tsi_proc_run((char *const *)argv, NULL, out, sizeof out, &e);
    if (rc != 0)
        fail_msg("%s failed (%d %s): %s", argv[0], rc, e.message, out);
}

static void write_text(const char *path, const char *s)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(s, f);
    assert_int_equal(fclose(f), 0);
}

/* a CA (key + self-signed certificate) in dir/<name>.key, dir/<name>.pem */
static void make_ca(const char *name, char *pem, size_t len)
{
    char k[600], subj[64];
    snprintf(k, sizeof k, "%s/%s.key", dir, name);
    snprintf(pem, len, "%s/%s.pem", dir, name);
    snprintf(subj, sizeof subj, "/CN=tsi test %s", name);
    const char *argv[] = {
        "openssl", "req",     "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes",  "-keyout", k,       "-out",    pem,  "-days",    "2",
        "-subj",   subj,      NULL};
    run_ok(argv);
}

static int setup(void **state)
{
    (void)state;
    const char *tmp = getenv("TSI_TEST_TMP");
    snprintf(dir, sizeof dir, "%s/sim-tls-%d", tmp && *tmp ? tmp : "/tmp", (int)getpid());
    const char *mk[] = {"mkdir", "-p", dir, NULL};
    run_ok(mk);
    snprintf(supp, sizeof supp, "%s/lsan.supp", dir);
    write_text(supp, LSAN_SUPP);
    make_ca("ca", ca, sizeof ca);
    make_ca("other-ca", ca2, sizeof ca2);
    char csr[600], ext[600], cakey[600], serial[600];
    snprintf(key, sizeof key, "%s/server.key", dir);
    snprintf(cert, sizeof cert, "%s/server.pem", dir);
    snprintf(csr, sizeof csr, "%s/server.csr", dir);
    snprintf(ext, sizeof ext, "%s/server.ext", dir);
    snprintf(cakey, sizeof cakey, "%s/ca.key", dir);
    snprintf(serial, sizeof serial, "%s/ca.srl", dir);
    const char *req[] = {
        "openssl",       "req",     "-newkey", "ec",   "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes",        "-keyout", key,       "-out", csr,        "-subj",
        "/CN=localhost", NULL};
    run_ok(req);
    write_text(ext, "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                    "extendedKeyUsage=serverAuth\n");
    const char *sign[] = {"openssl", "x509",   "-req",  "-in",       csr,        "-CA",
                          ca,        "-CAkey", cakey,   "-CAserial", serial,     "-CAcreateserial",
                          "-out",    cert,     "-days", "2",         "-extfile", ext,
                          NULL};
    run_ok(sign);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    const char *rm[] = {"rm", "-rf", dir, NULL};
    run_ok(rm);
    return 0;
}

typedef struct tls_sim {
    th_proc proc;
    int port;
    char base[64], ws[64];
} tls_sim;

static tsi_vcc *vcc_new(const tls_sim *s, const char *ca_file)
{
    tsi_vcc_config vc = {.base_url = s->base,
                         .client_id = "tsi-sim",
                         .client_secret = "tsi-sim-secret",
                         .timeout_ms = 5000,
                         .min_gap_ms = 0,
                         .ca_file = ca_file};
    tsi_vcc *c = NULL;
    tsi_error e = {0};
    if (tsi_vcc_new(&c, &vc, &e) < 0)
        fail_msg("vcc client: %s %s", e.message, e.detail);
    return c;
}

/* Starts the simulator with TLS and waits until an authenticated HTTPS request works. */
static void tls_start(tls_sim *s)
{
    memset(s, 0, sizeof *s);
    s->port = th_free_port();
    char port[16];
    snprintf(port, sizeof port, "%d", s->port);
    snprintf(s->base, sizeof s->base, "https://127.0.0.1:%d", s->port);
    snprintf(s->ws, sizeof s->ws, "wss://127.0.0.1:%d", s->port);
    const char *args[] = {"sim",       "--port",      port,      "--tls-cert", cert,
                          "--tls-key", key,           "--speed", "10",         "--intersections",
                          "3",         "--log-level", "info",    NULL};
    th_proc_start(&s->proc, args, NULL);
    tsi_vcc *c = vcc_new(s, ca);
    tsi_error e = {0};
    int rc = -1;
    for (int i = 0; i < 600 && rc < 0 && th_proc_alive(&s->proc); i++) {
        rc = tsi_vcc_auth(c, &e);
        if (rc < 0)
            usleep(50000);
    }
    tsi_vcc_free(c);
    if (rc < 0) {
        char *log = th_proc_log(&s->proc);
        fail_msg("the TLS simulator did not answer: %s %s\n%s", e.message, e.detail, log);
    }
}

typedef struct wss_cap {
    char url[256];
    bool used;
    int frames, bsm, connected, failed;
    char why[256];
} wss_cap;

static int wss_url(void *ud, char *url, size_t len)
{
    wss_cap *w = ud;
    if (w->used)
        return TSI_E_UNAVAILABLE;
    w->used = true;
    snprintf(url, len, "%s", w->url);
    return 0;
}

static void wss_msg(void *ud, int index, const tsi_msg *m, int rc, const tsi_error *err)
{
    (void)index;
    (void)err;
    wss_cap *w = ud;
    if (rc >= 0 && m->type == TSI_MSG_BSM)
        w->bsm++;
}

static void wss_frame(void *ud, const char *data, size_t len)
{
    wss_cap *w = ud;
    w->frames++;
    tsi_decoder dec;
    tsi_decoder_init(&dec);
    tsi_error e = {0};
    assert_true(tsi_frame_decode(&dec, data, len, wss_msg, w, &e) >= 0);
    tsi_decoder_free(&dec);
}

static void wss_event(void *ud, int ev, const char *detail)
{
    wss_cap *w = ud;
    if (ev == TSI_WS_CONNECTED)
        w->connected++;
    if (ev == TSI_WS_FAILED) {
        w->failed++;
        snprintf(w->why, sizeof w->why, "%s", detail ? detail : "");
    }
}

/* A one-time BSM key over HTTPS, then wss:// with ca_file for ms milliseconds. */
static void wss_capture(const tls_sim *s, const char *ca_file, int ms, wss_cap *w)
{
    memset(w, 0, sizeof *w);
    tsi_vcc *c = vcc_new(s, ca);
    char k[128];
    tsi_error e = {0};
    assert_int_equal(tsi_vcc_stream_key(c, "bsm", k, sizeof k, &e), 0);
    tsi_vcc_free(c);
    snprintf(w->url, sizeof w->url, "%s/ws/bsm?key=%s", s->ws, k);
    tsi_ws_client_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.get_url = wss_url;
    cfg.on_frame = wss_frame;
    cfg.on_event = wss_event;
    cfg.ud = w;
    cfg.ca_file = ca_file;
    tsi_ws_client *wc = NULL;
    assert_int_equal(tsi_ws_client_new(&wc, &cfg, &e), 0);
    tsi_ws_client_run(wc, ms);
    tsi_ws_client_free(wc);
}

static void test_https_wss_with_ca(void **state)
{
    (void)state;
    tls_sim s;
    tls_start(&s);
    /* REST over HTTPS: MapData of the 3 intersections, a stream key */
    tsi_vcc *c = vcc_new(&s, ca);
    tsi_buf b = TSI_BUF_INIT;
    tsi_error e = {0};
    if (tsi_vcc_mapdata(c, 0, &b, &e) != 0)
        fail_msg("MapData over HTTPS: %s %s", e.message, e.detail);
    tsi_json d;
    assert_true(tsi_json_parse_alloc(&d, b.data, b.len, 1 << 20, &e) >= 0);
    assert_true(tsi_json_is_array(&d, 0));
    int n = 0;
    for (int i = tsi_json_first(&d, 0); i >= 0; i = tsi_json_next(&d, 0, i))
        n++;
    assert_int_equal(n, 3);
    tsi_json_free(&d);
    tsi_buf_free(&b);
    tsi_vcc_free(c);
    /* WSS: frames of BSMs at 2 Hz of simulated time (--speed 10: 20 a second) */
    wss_cap w;
    wss_capture(&s, ca, 2000, &w);
    print_message("wss: %d frames, %d BSMs\n", w.frames, w.bsm);
    assert_int_equal(w.connected, 1);
    assert_true(w.frames >= 10);
    assert_true(w.bsm > 0);
    assert_int_equal(th_proc_stop(&s.proc), 0);
}

static void test_wrong_ca_refused(void **state)
{
    (void)state;
    tls_sim s;
    tls_start(&s);
    const char *cas[] = {ca2, NULL}; /* an unrelated CA; NULL: the system store */
    for (int k = 0; k < 2; k++) {
        tsi_vcc *c = vcc_new(&s, cas[k]);
        tsi_error e = {0};
        int rc = tsi_vcc_auth(c, &e);
        print_message("REST with %s: %s %s\n", cas[k] ? "another CA" : "the system store",
                      e.message, e.detail);
        assert_int_equal(rc, TSI_E_UNAVAILABLE);
        assert_non_null(strstr(e.detail, "certificate"));
        tsi_vcc_free(c);
        wss_cap w;
        wss_capture(&s, cas[k], 1500, &w);
        print_message("wss with %s: failed=%d (%s)\n", cas[k] ? "another CA" : "the system store",
                      w.failed, w.why);
        assert_int_equal(w.connected, 0);
        assert_int_equal(w.frames, 0);
        assert_true(w.failed >= 1);
    }
    assert_int_equal(th_proc_stop(&s.proc), 0);
}

/* `tsi collect` over https:// and wss:// with --vcc-ca-file; with the wrong CA it says why
 * and collects nothing */
static void test_collect_over_tls(void **state)
{
    (void)state;
    tls_sim s;
    tls_start(&s);
    for (int k = 0; k < 2; k++) {
        char url[96], arch[700], spool[700];
        snprintf(url, sizeof url, "VCC_BASE_URL=%s", s.base);
        snprintf(arch, sizeof arch, "TSI_ARCHIVE_DIR=%s/archive%d", dir, k);
        snprintf(spool, sizeof spool, "TSI_SPOOL_DIR=%s/spool%d", dir, k);
        char lsan[700];
        snprintf(lsan, sizeof lsan, "LSAN_OPTIONS=suppressions=%s", supp);
        const char *env[] = {url,
                             arch,
                             spool,
                             "VCC_CLIENT_ID=tsi-sim",
                             "VCC_CLIENT_SECRET=tsi-sim-secret",
                             lsan,
                             "TSI_MAX_SKEW_SECONDS=0",
                             NULL};
        const char *args[] = {"collect",
                              "--no-db",
                              "--vcc-ca-file",
                              k == 0 ? ca : ca2,
                              "--duration-seconds",
                              "15",
                              "--status-seconds",
                              "1",
                              "--spat-seconds",
                              "0",
                              NULL};
        th_proc col;
        th_proc_start(&col, args, env);
        /* it stops by itself after --duration-seconds: wait for its last line */
        char *log = th_proc_log(&col);
        for (int i = 0; i < 400 && !strstr(log, "collect  stopped"); i++) {
            usleep(100000);
            free(log);
            log = th_proc_log(&col);
        }
        assert_int_equal(th_proc_stop(&col), 0);
        long long accepted = -1;
        for (const char *p = log; (p = strstr(p, " accepted=")) != NULL; p++)
            accepted = atoll(p + 10);
        if (k == 0) {
            if (!strstr(log, "stream connected stream=bsm") ||
                !strstr(log, "stream connected stream=psm") || accepted <= 0) {
                fprintf(stderr, "---- the collector's log ----\n%s\n----\n", log);
                fail_msg("collect over TLS: no streams or no messages (log above)");
            }
            print_message("collect over https/wss: %lld messages accepted\n", accepted);
        } else {
            if (strstr(log, "stream connected") || accepted > 0 || !strstr(log, "certificate")) {
                fprintf(stderr, "---- the collector's log ----\n%s\n----\n", log);
                fail_msg("collect with the wrong CA: not refused clearly (log above)");
            }
        }
        free(log);
    }
    assert_int_equal(th_proc_stop(&s.proc), 0);
}

static void test_bad_tls_options(void **state)
{
    (void)state;
    char notpem[600], out[4096];
    snprintf(notpem, sizeof notpem, "%s/not-a-cert.pem", dir);
    write_text(notpem, "this is not a certificate\n");
    const char *half[] = {"sim", "--port", "0", "--tls-cert", cert, NULL};
    assert_int_equal(th_run_tsi(half, NULL, out, sizeof out), 2);
    assert_non_null(strstr(out, "--tls-key"));
    const char *bad[] = {"sim", "--port", "0", "--tls-cert", notpem, "--tls-key", key, NULL};
    int rc = th_run_tsi(bad, NULL, out, sizeof out);
    assert_true(rc != 0);
    if (!strstr(out, "TLS"))
        fail_msg("no clear error for a non-PEM certificate: %s", out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_https_wss_with_ca),
        cmocka_unit_test(test_wrong_ca_refused),
        cmocka_unit_test(test_collect_over_tls),
        cmocka_unit_test(test_bad_tls_options),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
