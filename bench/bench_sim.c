/* bench/bench_sim.c — a load client for `tsi sim` (run by bench/sim.sh): takes a token
 * and a key, subscribes to /ws/bsm with vcc/ws_client, and for --seconds reports the
 * frames, messages and bytes served, the simulator process's CPU share (from
 * /proc/PID/stat) and its simulated-time rate (from /sim/status). As the reference
 * measured in the same run, every frame is also decoded with the collector's decoder
 * (vcc/decode.h) and that CPU time is reported per message.
 *   bench_sim --url http://127.0.0.1:8090 --pid 1234 --seconds 20 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vcc/decode.h"
#include "vcc/ws_client.h"

typedef struct ctx {
    char base[256], ws[256], key[64];
    bool key_used;
    uint64_t frames, msgs, bytes;
    double decode_cpu_s;
    tsi_decoder dec;
} ctx;

static double now_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t sink(void *d, size_t sz, size_t n, void *ud)
{
    char *b = ud;
    size_t l = strlen(b), k = sz * n;
    if (l + k < 4095) {
        memcpy(b + l, d, k);
        b[l + k] = '\0';
    }
    return sz * n;
}

static int http(const char *url, const char *post, const char *auth, char *out)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    char hb[2048];
    out[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, url);
    if (post)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
    if (auth) {
        snprintf(hb, sizeof hb, "Authorization: Bearer %s", auth);
        h = curl_slist_append(h, hb);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    long st = -1;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return (int)st;
}

static long long json_int(const char *js, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *p = strstr(js, k);
    return p ? atoll(p + strlen(k)) : -1;
}

static int get_url(void *ud, char *url, size_t len)
{
    ctx *c = ud;
    if (c->key_used)
        return TSI_E_UNAVAILABLE;
    c->key_used = true;
    snprintf(url, len, "%s/ws/bsm?key=%s", c->ws, c->key);
    return 0;
}

static void count_cb(void *ud, int index, const tsi_msg *m, int rc, const tsi_error *err)
{
    (void)index;
    (void)m;
    (void)err;
    ctx *c = ud;
    if (rc >= 0)
        c->msgs++;
}

static void on_frame(void *ud, const char *data, size_t len)
{
    ctx *c = ud;
    c->frames++;
    c->bytes += len;
    double t0 = now_s(CLOCK_THREAD_CPUTIME_ID);
    tsi_error e = {0};
    tsi_frame_decode(&c->dec, data, len, count_cb, c, &e);
    c->decode_cpu_s += now_s(CLOCK_THREAD_CPUTIME_ID) - t0;
}

static double proc_cpu_s(int pid)
{
    char p[64], buf[1024];
    snprintf(p, sizeof p, "/proc/%d/stat", pid);
    FILE *f = fopen(p, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *s = strrchr(buf, ')');
    if (!s)
        return -1;
    unsigned long ut = 0, st = 0;
    /* fields after ")": state(3) ... utime(14) stime(15) */
    if (sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

int main(int argc, char **argv)
{
    const char *url = "http://127.0.0.1:8090";
    int pid = 0, seconds = 20;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--url") == 0)
            url = argv[i + 1];
        else if (strcmp(argv[i], "--pid") == 0)
            pid = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--seconds") == 0)
            seconds = atoi(argv[i + 1]);
    }
    static ctx c;
    snprintf(c.base, sizeof c.base, "%s", url);
    snprintf(c.ws, sizeof c.ws, "ws://%s", strstr(url, "://") ? strstr(url, "://") + 3 : url);
    tsi_decoder_init(&c.dec);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char u[512], out[4096], tok[1024] = "";
    snprintf(u, sizeof u, "%s/api/auth/client", url);
    if (http(u, "client_id=tsi-sim&client_secret=tsi-sim-secret", NULL, out) != 200) {
        fprintf(stderr, "bench_sim: auth failed: %s\n", out);
        return 1;
    }
    const char *a = strstr(out, "\"access_token\":\"");
    if (!a)
        return 1;
    a += 16;
    snprintf(tok, sizeof tok, "%.*s", (int)(strchr(a, '"') - a), a);
    snprintf(u, sizeof u, "%s/api/bsm/key", url);
    if (http(u, NULL, tok, out) != 200)
        return 1;
    snprintf(c.key, sizeof c.key, "%s", out);
    snprintf(u, sizeof u, "%s/sim/status", url);

    tsi_ws_client_cfg cfg = {0};
    cfg.get_url = get_url;
    cfg.on_frame = on_frame;
    cfg.ud = &c;
    tsi_ws_client *wc;
    tsi_error e = {0};
    if (tsi_ws_client_new(&wc, &cfg, &e) < 0)
        return 1;
    /* one second to settle, then the measured interval */
    tsi_ws_client_run(wc, 1000);
    uint64_t f0 = c.frames, m0 = c.msgs, b0 = c.bytes;
    double d0 = c.decode_cpu_s;
    http(u, NULL, NULL, out);
    long long sim0 = json_int(out, "now");
    double cpu0 = pid ? proc_cpu_s(pid) : 0, w0 = now_s(CLOCK_MONOTONIC);
    tsi_ws_client_run(wc, seconds * 1000);
    double wall = now_s(CLOCK_MONOTONIC) - w0, cpu1 = pid ? proc_cpu_s(pid) : 0;
    http(u, NULL, NULL, out);
    long long sim1 = json_int(out, "now"), lag = json_int(out, "lag_ms");
    uint64_t msgs = c.msgs - m0;
    printf("wall_s=%.2f\n", wall);
    printf("frames_per_s=%.1f\n", (double)(c.frames - f0) / wall);
    printf("msgs_per_s=%.0f\n", (double)msgs / wall);
    printf("mbytes_per_s=%.2f\n", (double)(c.bytes - b0) / wall / 1e6);
    printf("sim_cpu_share=%.3f\n", pid ? (cpu1 - cpu0) / wall : -1.0);
    printf("sim_speed=%.2f\n", (double)(sim1 - sim0) / 1000.0 / wall);
    printf("sim_lag_ms=%lld\n", lag);
    printf("decode_us_per_msg=%.3f\n", msgs ? (c.decode_cpu_s - d0) / (double)msgs * 1e6 : -1);
    tsi_ws_client_free(wc);
    tsi_decoder_free(&c.dec);
    curl_global_cleanup();
    return 0;
}
