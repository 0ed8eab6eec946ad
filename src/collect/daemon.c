/* collect/daemon.c — `tsi collect`: see collect.h */
#include "collect/collect.h"

#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "archive/pqfile.h"
#include "archive/raw.h"
#include "base/buf.h"
#include "base/jsonw.h"
#include "base/log.h"
#include "base/tz.h"
#include "pipeline/pipeline.h"
#include "core/index.h"
#include "db/conn.h"
#include "db/constants.h"
#include "db/ingest.h"
#include "vcc/client.h"
#include "vcc/ws_client.h"

/* ---- settings (reloadable ones are re-read on SIGHUP) ----------------------------------- */

typedef struct settings {
    char vcc_url[512];
    bool poll_only;
    int flush_s, grace_s, max_skew_s, poll_ms, mapdata_s, mapdata_full_s, spat_s, constants_s,
        min_gap_ms, timeout_ms, status_s, duration_s, db_writers;
    double radius_m;
    bool tls_insecure, no_db;
    char archive[PATH_MAX], spool[PATH_MAX], tz[128], ca_file[PATH_MAX], location_map[PATH_MAX];
} settings;

static void load_settings(settings *s, const tsi_opts *o)
{
    memset(s, 0, sizeof *s);
    snprintf(s->vcc_url, sizeof s->vcc_url, "%s",
             tsi_opts_str(o, "vcc-url") ? tsi_opts_str(o, "vcc-url") : "");
    s->poll_only = strcmp(tsi_opts_str(o, "source"), "poll") == 0;
    s->flush_s = (int)tsi_opts_int(o, "flush-seconds");
    s->grace_s = (int)tsi_opts_int(o, "grace-seconds");
    s->radius_m = tsi_opts_double(o, "radius-m");
    s->max_skew_s = (int)tsi_opts_int(o, "max-skew-seconds");
    snprintf(s->location_map, sizeof s->location_map, "%s",
             tsi_opts_str(o, "location-map") ? tsi_opts_str(o, "location-map") : "");
    s->poll_ms = (int)tsi_opts_int(o, "poll-ms");
    s->mapdata_s = (int)tsi_opts_int(o, "mapdata-seconds");
    s->mapdata_full_s = (int)tsi_opts_int(o, "mapdata-full-seconds");
    s->spat_s = (int)tsi_opts_int(o, "spat-seconds");
    s->constants_s = (int)tsi_opts_int(o, "constants-seconds");
    s->min_gap_ms = (int)tsi_opts_int(o, "min-gap-ms");
    s->timeout_ms = (int)tsi_opts_int(o, "timeout-ms");
    s->tls_insecure = tsi_opts_bool(o, "tls-insecure");
    snprintf(s->ca_file, sizeof s->ca_file, "%s",
             tsi_opts_str(o, "vcc-ca-file") ? tsi_opts_str(o, "vcc-ca-file") : "");
    s->no_db = tsi_opts_bool(o, "no-db");
    s->status_s = (int)tsi_opts_int(o, "status-seconds");
    s->duration_s = (int)tsi_opts_int(o, "duration-seconds");
    s->db_writers = (int)tsi_opts_int(o, "db-writers");
    if (tsi_opts_str(o, "archive-dir"))
        snprintf(s->archive, sizeof s->archive, "%s", tsi_opts_str(o, "archive-dir"));
    else
        tsi_archive_root(s->archive, sizeof s->archive);
    if (tsi_opts_str(o, "spool-dir"))
        snprintf(s->spool, sizeof s->spool, "%s", tsi_opts_str(o, "spool-dir"));
    else
        snprintf(s->spool, sizeof s->spool, "%s/spool", tsi_home());
    snprintf(s->tz, sizeof s->tz, "%s", tsi_opts_str(o, "timezone"));
}

/* SIGHUP: the options read again through the command line's reload (tsi_collect_reload_fn) */
static int reload_settings(settings *s, tsi_collect_reload_fn reload, void *ud)
{
    tsi_opts o;
    if (!reload || reload(ud, &o) != 0)
        return -1;
    load_settings(s, &o);
    tsi_opts_free(&o);
    return 0;
}

/* ---- the queue between the network threads and the pipeline ----------------------------- */

enum { Q_BSM, Q_PSM, Q_MAPDATA, Q_MAPDATA_FULL, Q_SPAT };

typedef struct qitem {
    struct qitem *next;
    int what;
    int64_t received_ms;
    size_t len;
    char data[];
} qitem;

/* The queue's bound, a safety net: a network thread that would push it past this many
 * bytes waits for the pipeline. Unbounded, a source persistently faster than the
 * pipeline grew the collector's memory without limit (5 GB in ten minutes in
 * bench/soak.sh with the simulator run faster than the collector could follow). It must
 * stay large: a stream thread that waits falls behind the other stream (BSM and PSM are
 * two connections feeding one stream clock), and once it is behind by more than the
 * grace period its messages are late; a bound of 128 MiB (seconds at the soak's rate)
 * made most of a soak's messages late, and 256 bodies lost a test's frames (the
 * simulator leaves a reader stuck for 10 s behind). 1 GiB holds minutes of traffic at
 * 1,000 intersections, far beyond a raw flush's stall. */
#define QUEUE_MAX_BYTES (1LL << 30)

typedef struct daemon {
    settings s;
    pthread_mutex_t mu;
    pthread_cond_t cv, cv_room;
    qitem *head, *tail;
    long long qlen, qmax, qbytes, qwaits;
    /* first come, first served among the network threads that wait for room: without it a
     * small PSM frame always fit the room a dequeue made before a large BSM frame did, and
     * the BSM stream starved (the simulator then left it behind: its messages late) */
    unsigned long long ticket_next, ticket_serving;
    atomic_bool stop;
    volatile int cancel; /* aborts VCC requests in flight at shutdown */
    atomic_bool stream_up[2];
    atomic_llong reconnects, stream_frames, poll_errors, vcc_errors;
    atomic_bool mapdata_now, have_mapdata;
    tsi_ws_client *ws[2];
    pthread_mutex_t ws_mu;
} daemon_t;

static volatile sig_atomic_t g_term, g_hup;
static void on_term(int sig)
{
    (void)sig;
    g_term = 1;
}
static void on_hup(int sig)
{
    (void)sig;
    g_hup = 1;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void enqueue(daemon_t *d, int what, const char *data, size_t len)
{
    qitem *it = malloc(sizeof *it + len + 1);
    if (!it)
        return;
    it->next = NULL;
    it->what = what;
    it->received_ms = wall_ms();
    it->len = len;
    memcpy(it->data, data, len);
    it->data[len] = '\0';
    pthread_mutex_lock(&d->mu);
    if (d->ticket_next != d->ticket_serving ||
        (d->qlen > 0 && d->qbytes + (long long)len > QUEUE_MAX_BYTES)) {
        unsigned long long mine = d->ticket_next++;
        if (d->qwaits++ % 1000 == 0)
            tsi_warn("collect",
                     "queue full: the pipeline is behind its source, the network waits "
                     "bytes=%lld bodies=%lld waits=%lld",
                     d->qbytes, d->qlen, d->qwaits);
        while ((mine != d->ticket_serving ||
                (d->qlen > 0 && d->qbytes + (long long)len > QUEUE_MAX_BYTES)) &&
               !atomic_load(&d->stop))
            pthread_cond_wait(&d->cv_room, &d->mu);
        if (mine == d->ticket_serving)
            d->ticket_serving++;
        pthread_cond_broadcast(&d->cv_room); /* the next ticket may fit too */
    }
    if (d->tail)
        d->tail->next = it;
    else
        d->head = it;
    d->tail = it;
    d->qlen++;
    d->qbytes += (long long)len;
    if (d->qlen > d->qmax)
        d->qmax = d->qlen;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

static qitem *dequeue(daemon_t *d, int timeout_ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_nsec += (long)timeout_ms * 1000000L;
    dl.tv_sec += dl.tv_nsec / 1000000000L;
    dl.tv_nsec %= 1000000000L;
    pthread_mutex_lock(&d->mu);
    while (!d->head && !atomic_load(&d->stop))
        if (pthread_cond_timedwait(&d->cv, &d->mu, &dl) == ETIMEDOUT)
            break;
    qitem *it = d->head;
    if (it) {
        d->head = it->next;
        if (!d->head)
            d->tail = NULL;
        d->qlen--;
        d->qbytes -= (long long)it->len;
        pthread_cond_broadcast(&d->cv_room);
    }
    pthread_mutex_unlock(&d->mu);
    return it;
}

static tsi_vcc *make_client(daemon_t *d, tsi_error *err)
{
    tsi_vcc_config vc = {.base_url = d->s.vcc_url,
                         .timeout_ms = d->s.timeout_ms,
                         .min_gap_ms = d->s.min_gap_ms,
                         .cancel = &d->cancel,
                         .ca_file = d->s.ca_file};
    tsi_vcc *c = NULL;
    if (tsi_vcc_new(&c, &vc, err) < 0)
        return NULL;
    return c;
}

/* ---- stream threads --------------------------------------------------------------------- */

typedef struct stream_ctx {
    daemon_t *d;
    int kind; /* 0 bsm, 1 psm */
    tsi_vcc *vcc;
} stream_ctx;

static int stream_url(void *ud, char *url, size_t len)
{
    stream_ctx *sc = ud;
    const char *name = sc->kind == 0 ? "bsm" : "psm";
    char key[512], path[640];
    tsi_error e = {0};
    if (tsi_vcc_stream_key(sc->vcc, name, key, sizeof key, &e) < 0) {
        atomic_fetch_add(&sc->d->vcc_errors, 1);
        tsi_warn("collect", "cannot get a stream key stream=%s err=%s detail=%s", name,
                 tsi_error_name(e.code), e.detail);
        return e.code ? e.code : TSI_E_UNAVAILABLE;
    }
    snprintf(path, sizeof path, "/ws/%s?key=%s", name, key);
    return tsi_vcc_ws_url(sc->vcc, path, url, len, &e);
}

static void stream_frame(void *ud, const char *data, size_t len)
{
    stream_ctx *sc = ud;
    atomic_fetch_add(&sc->d->stream_frames, 1);
    if (len == 2 && data[0] == '[' && data[1] == ']')
        return; /* keepalive */
    enqueue(sc->d, sc->kind == 0 ? Q_BSM : Q_PSM, data, len);
}

static void stream_event(void *ud, int ev, const char *detail)
{
    stream_ctx *sc = ud;
    const char *name = sc->kind == 0 ? "bsm" : "psm";
    if (ev == TSI_WS_CONNECTED) {
        atomic_store(&sc->d->stream_up[sc->kind], true);
        tsi_info("collect", "stream connected stream=%s", name);
    } else {
        bool was_up = atomic_exchange(&sc->d->stream_up[sc->kind], false);
        if (atomic_load(&sc->d->stop))
            return; /* our own shutdown */
        if (was_up || ev == TSI_WS_CLOSED)
            atomic_fetch_add(&sc->d->reconnects, 1);
        tsi_warn("collect", "stream %s stream=%s cause=%s (REST polling meanwhile)",
                 ev == TSI_WS_CLOSED ? "closed" : "failed", name, detail ? detail : "?");
    }
}

static void *stream_main(void *arg)
{
    stream_ctx *sc = arg;
    daemon_t *d = sc->d;
    /* wait for MapData first: messages without intersections would all be unmatched */
    for (int i = 0; i < 300 && !atomic_load(&d->have_mapdata) && !atomic_load(&d->stop); i++)
        usleep(100000);
    tsi_ws_client_cfg cfg = {.get_url = stream_url,
                             .on_frame = stream_frame,
                             .on_event = stream_event,
                             .ud = sc,
                             .reconnect = true,
                             .backoff_min_ms = 500,
                             .backoff_max_ms = 30000,
                             .idle_timeout_s = 30,
                             .tls_insecure = d->s.tls_insecure,
                             .ca_file = d->s.ca_file};
    tsi_ws_client *c = NULL;
    tsi_error e = {0};
    if (tsi_ws_client_new(&c, &cfg, &e) < 0) {
        tsi_err("collect", "cannot create a stream client err=%s detail=%s", tsi_error_name(e.code),
                e.detail);
        return NULL;
    }
    pthread_mutex_lock(&d->ws_mu);
    d->ws[sc->kind] = c;
    bool stopping = atomic_load(&d->stop);
    pthread_mutex_unlock(&d->ws_mu);
    if (!stopping)
        tsi_ws_client_run(c, -1);
    pthread_mutex_lock(&d->ws_mu);
    d->ws[sc->kind] = NULL;
    pthread_mutex_unlock(&d->ws_mu);
    atomic_store(&d->stream_up[sc->kind], false);
    tsi_ws_client_free(c);
    return NULL;
}

/* ---- the poller ------------------------------------------------------------------------- */

static void *poll_main(void *arg)
{
    daemon_t *d = arg;
    tsi_error e = {0};
    tsi_vcc *vcc = make_client(d, &e);
    if (!vcc)
        return NULL;
    int64_t next_map = 0, next_spat = 0, next_poll = 0, changed_since = 0, last_full = 0;
    int map_backoff = 1000;
    tsi_buf b = TSI_BUF_INIT;
    while (!atomic_load(&d->stop)) {
        int64_t now = mono_ms();
        if (atomic_exchange(&d->mapdata_now, false))
            next_map = now;
        if (now >= next_map) {
            tsi_buf_reset(&b);
            int64_t asked = wall_ms();
            /* the first answer, and one every mapdata_full_s, is the full set */
            bool full = changed_since == 0 || (d->s.mapdata_full_s > 0 &&
                                               now - last_full >= d->s.mapdata_full_s * 1000LL);
            if (tsi_vcc_mapdata(vcc, full ? 0 : changed_since, &b, &e) == 0) {
                enqueue(d, full && d->s.mapdata_full_s > 0 ? Q_MAPDATA_FULL : Q_MAPDATA,
                        b.data ? b.data : "[]", b.len);
                if (full)
                    last_full = now;
                changed_since = asked - 60000; /* overlap: a change is never missed */
                atomic_store(&d->have_mapdata, true);
                next_map = now + (int64_t)d->s.mapdata_s * 1000;
                map_backoff = 1000;
            } else {
                atomic_fetch_add(&d->vcc_errors, 1);
                tsi_warn("collect", "MapData fetch failed err=%s detail=%s", tsi_error_name(e.code),
                         e.detail);
                next_map = now + map_backoff;
                map_backoff = map_backoff * 2 > 60000 ? 60000 : map_backoff * 2;
            }
        }
        if (d->s.spat_s > 0 && now >= next_spat && atomic_load(&d->have_mapdata)) {
            tsi_buf_reset(&b);
            if (tsi_vcc_spat(vcc, &b, &e) == 0)
                enqueue(d, Q_SPAT, b.data ? b.data : "[]", b.len);
            else {
                atomic_fetch_add(&d->vcc_errors, 1);
                tsi_warn("collect", "SPaT fetch failed err=%s detail=%s", tsi_error_name(e.code),
                         e.detail);
            }
            next_spat = now + (int64_t)d->s.spat_s * 1000;
        }
        if (now >= next_poll && atomic_load(&d->have_mapdata)) {
            for (int k = 0; k < 2; k++) {
                if (!d->s.poll_only && atomic_load(&d->stream_up[k]))
                    continue;
                tsi_buf_reset(&b);
                int rc =
                    k == 0 ? tsi_vcc_bsm_current(vcc, &b, &e) : tsi_vcc_psm_current(vcc, &b, &e);
                if (rc == 0)
                    enqueue(d, k == 0 ? Q_BSM : Q_PSM, b.data ? b.data : "[]", b.len);
                else {
                    atomic_fetch_add(&d->poll_errors, 1);
                    tsi_warn("collect", "poll failed stream=%s err=%s detail=%s",
                             k == 0 ? "bsm" : "psm", tsi_error_name(e.code), e.detail);
                }
            }
            next_poll = now + d->s.poll_ms;
        }
        usleep(20000);
    }
    tsi_buf_free(&b);
    tsi_vcc_free(vcc);
    return NULL;
}

/* ---- constants and priors ----------------------------------------------------------------- */

static void load_constants(tsi_pipeline *p)
{
    tsi_error e = {0};
    PGconn *c = tsi_db_connect(TSI_ROLE_WRITER, NULL, &e);
    if (!c) {
        tsi_warn("collect",
                 "constants not loaded (database unreachable): keeping the current set "
                 "detail=%s",
                 e.detail);
        return;
    }
    tsi_constants k;
    tsi_priors *pri = NULL;
    int rc = tsi_db_constants_now(c, &k, &pri, &e);
    if (rc > 0)
        tsi_info("collect", "constants loaded source=database k=%g priors=%s", k.k,
                 pri ? "yes" : "no");
    else if (rc == 0)
        tsi_info("collect", "no normalisation constants yet: configured defaults apply");
    else
        tsi_warn("collect", "constants not usable: defaults apply err=%s detail=%s",
                 tsi_error_name(e.code), e.detail);
    PQfinish(c);
    tsi_pipeline_set_constants(p, &k, pri);
}

/* ---- status -------------------------------------------------------------------------------- */

/* a "Vm…:" line of /proc/self/status in kB (-1 when unreadable) */
static long long self_vm_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    long long v = -1;
    size_t n = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, n) == 0) {
            v = strtoll(line + n, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

static void write_status(daemon_t *d, tsi_pipeline *p, tsi_ingest *in, bool log)
{
    tsi_collect_counters c;
    tsi_pipeline_counters(p, &c);
    tsi_ingest_stats is = {0};
    if (in)
        tsi_ingest_get_stats(in, &is);
    pthread_mutex_lock(&d->mu);
    long long qlen = d->qlen, qbytes = d->qbytes, qmax = d->qmax, qwaits = d->qwaits;
    pthread_mutex_unlock(&d->mu);
    /* the encodings seen (domain.md §1): "bsm=integer:N,... map=lanetype_nulls:N,..." */
    char forms[512];
    size_t fo = 0;
    for (int kind = 0; kind < 2; kind++) {
        const long long *fc = kind ? c.map_forms : c.bsm_forms;
        fo += (size_t)snprintf(forms + fo, sizeof forms - fo, "%s%s=", kind ? " " : "",
                               kind ? "map" : "bsm");
        bool any = false;
        for (int k = 0; k < TSI_FORM__COUNT && fo < sizeof forms; k++)
            if (fc[k]) {
                fo += (size_t)snprintf(forms + fo, sizeof forms - fo, "%s%s:%lld", any ? "," : "",
                                       tsi_form_name(k), fc[k]);
                any = true;
            }
        if (!any && fo < sizeof forms)
            fo += (size_t)snprintf(forms + fo, sizeof forms - fo, "-");
        if (fo >= sizeof forms)
            fo = sizeof forms - 1;
    }
    if (log)
        tsi_info("collect",
                 "status intersections=%d messages=%lld accepted=%lld deduped=%lld "
                 "unmatched=%lld late=%lld clock_skew=%lld rejected=%lld rows=%lld "
                 "rows_written=%lld spool=%lld db_errors=%lld reconnects=%lld streams=%s%s "
                 "queue=%lld unreadable=%lld encodings %s",
                 tsi_pipeline_intersections(p), c.messages_in, c.accepted, c.deduped, c.unmatched,
                 c.late, c.skewed, c.rejected, c.rows_indexed, is.rows_written, is.spool_records,
                 is.db_errors, (long long)atomic_load(&d->reconnects),
                 atomic_load(&d->stream_up[0]) ? "B" : "b",
                 atomic_load(&d->stream_up[1]) ? "P" : "p", qlen, c.unreadable, forms);
    tsi_buf b = TSI_BUF_INIT;
    tsi_jsonw w;
    tsi_jsonw_init(&w, &b);
    tsi_jsonw_object(&w);
    tsi_jsonw_kv_int(&w, "time_ms", wall_ms());
    tsi_jsonw_kv_int(&w, "pid", getpid());
    tsi_jsonw_kv_int(&w, "intersections", tsi_pipeline_intersections(p));
    tsi_jsonw_kv_int(&w, "messages_in", c.messages_in);
    tsi_jsonw_kv_int(&w, "accepted", c.accepted);
    tsi_jsonw_kv_int(&w, "deduped", c.deduped);
    tsi_jsonw_kv_int(&w, "unmatched", c.unmatched);
    tsi_jsonw_kv_int(&w, "late", c.late);
    tsi_jsonw_kv_int(&w, "clock_skew", c.skewed);
    tsi_jsonw_kv_int(&w, "rejected", c.rejected);
    tsi_jsonw_kv_int(&w, "frames", c.frames);
    tsi_jsonw_kv_int(&w, "mapdata_in", c.mapdata_in);
    tsi_jsonw_kv_int(&w, "intersections_retired", c.intersections_retired);
    tsi_jsonw_kv_int(&w, "spat_in", c.spat_in);
    tsi_jsonw_kv_int(&w, "windows", c.windows);
    tsi_jsonw_kv_int(&w, "rows_indexed", c.rows_indexed);
    tsi_jsonw_kv_int(&w, "raw_rows_archived", c.raw_rows);
    tsi_jsonw_kv_int(&w, "raw_files", c.raw_files);
    tsi_jsonw_kv_int(&w, "index_files", c.index_files);
    tsi_jsonw_kv_int(&w, "archive_errors", c.archive_errors);
    tsi_jsonw_kv_int(&w, "dq_rows", c.dq_rows);
    tsi_jsonw_kv_int(&w, "unreadable_values", c.unreadable);
    for (int kind = 0; kind < 2; kind++)
        for (int k = 0; k < TSI_FORM__COUNT; k++) {
            char key[48];
            snprintf(key, sizeof key, "%s_form_%s", kind ? "mapdata" : "bsm", tsi_form_name(k));
            tsi_jsonw_kv_int(&w, key, kind ? c.map_forms[k] : c.bsm_forms[k]);
        }
    tsi_jsonw_kv_int(&w, "rows_written", is.rows_written);
    tsi_jsonw_kv_int(&w, "rows_rejected_by_db", is.rejected);
    tsi_jsonw_kv_int(&w, "spool_depth", is.spool_records);
    tsi_jsonw_kv_int(&w, "spool_bytes", is.spool_bytes);
    tsi_jsonw_kv_int(&w, "spool_replayed", is.replayed);
    tsi_jsonw_kv_int(&w, "db_errors", is.db_errors);
    tsi_jsonw_kv_bool(&w, "db_connected", is.connected);
    tsi_jsonw_kv_int(&w, "stream_reconnects", atomic_load(&d->reconnects));
    tsi_jsonw_kv_int(&w, "stream_frames", atomic_load(&d->stream_frames));
    tsi_jsonw_kv_bool(&w, "bsm_stream_up", atomic_load(&d->stream_up[0]));
    tsi_jsonw_kv_bool(&w, "psm_stream_up", atomic_load(&d->stream_up[1]));
    tsi_jsonw_kv_int(&w, "poll_errors", atomic_load(&d->poll_errors));
    tsi_jsonw_kv_int(&w, "vcc_errors", atomic_load(&d->vcc_errors));
    tsi_jsonw_kv_int(&w, "queue", qlen);
    tsi_jsonw_kv_int(&w, "queue_bytes", qbytes);
    tsi_jsonw_kv_int(&w, "queue_max", qmax);
    tsi_jsonw_kv_int(&w, "queue_full_waits", qwaits);
    tsi_jsonw_kv_int(&w, "rss_kb", self_vm_kb("VmRSS:"));
    tsi_jsonw_kv_int(&w, "rss_peak_kb", self_vm_kb("VmHWM:"));
    tsi_jsonw_end(&w);
    char dir[PATH_MAX], path[PATH_MAX + 32], tmp[PATH_MAX + 48];
    snprintf(dir, sizeof dir, "%s/run", tsi_home());
    snprintf(path, sizeof path, "%s/collect.json", dir);
    snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, (int)getpid());
    if (tsi_mkdirs(dir, NULL) == 0) {
        FILE *f = fopen(tmp, "w");
        if (f) {
            fputs(tsi_buf_cstr(&b), f);
            fputc('\n', f);
            if (fclose(f) == 0)
                rename(tmp, path);
            else
                unlink(tmp);
        }
    }
    tsi_buf_free(&b);
}

/* ---- the command ------------------------------------------------------------------------- */

int tsi_collect_run(const tsi_opts *o, tsi_collect_reload_fn reload, void *ud)
{
    daemon_t *d = calloc(1, sizeof *d);
    if (!d)
        return 1;
    load_settings(&d->s, o);
    int status = 1;
    tsi_ingest *in = NULL;
    tsi_pipeline *p = NULL;
    pthread_t poller, streams[2];
    stream_ctx sctx[2];
    bool poller_started = false, stream_started[2] = {false, false};
    tsi_error e = {0};
    char buf[900];

    if (!d->s.vcc_url[0]) {
        fprintf(stderr, "tsi collect: no VCC configured: set VCC_BASE_URL (or --vcc-url); "
                        "scripts/run points it at tsi sim\n");
        free(d);
        return 2;
    }
    if (tsi_tz_init(d->s.tz, &e) < 0) {
        fprintf(stderr, "tsi collect: --timezone: %s\n", tsi_error_str(&e, buf, sizeof buf));
        free(d);
        return 2;
    }
    /* frames reach megabytes: served from the heap and kept there, not mmap'd and
     * page-faulted in afresh for each frame (a tenth of the collector's CPU otherwise) */
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 128 << 20);
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    pthread_cond_init(&d->cv_room, NULL);
    pthread_mutex_init(&d->ws_mu, NULL);
    {
        /* the credentials are checked before anything starts */
        tsi_vcc *probe = make_client(d, &e);
        if (!probe) {
            fprintf(stderr, "tsi collect: %s\n", tsi_error_str(&e, buf, sizeof buf));
            goto out;
        }
        tsi_vcc_free(probe);
    }
    if (!d->s.no_db) {
        tsi_ingest_config ic = {.spool_dir = d->s.spool, .connections = d->s.db_writers};
        if (tsi_ingest_open(&in, &ic, &e) < 0) {
            fprintf(stderr, "tsi collect: %s\n", tsi_error_str(&e, buf, sizeof buf));
            goto out;
        }
    }
    tsi_pipeline_config pc = {.archive_root = d->s.archive,
                              .write_intersections = true,
                              .grace_ms = (int64_t)d->s.grace_s * 1000,
                              .radius_m = d->s.radius_m,
                              .max_skew_ms =
                                  d->s.max_skew_s > 0 ? (int64_t)d->s.max_skew_s * 1000 : -1};
    if (tsi_pipeline_new(&p, &pc, in, &e) < 0) {
        fprintf(stderr, "tsi collect: %s\n", tsi_error_str(&e, buf, sizeof buf));
        goto out;
    }
    if (d->s.location_map[0]) {
        size_t len;
        char *js = tsi_read_file(d->s.location_map, &len, 16u << 20, &e);
        int n = js ? tsi_pipeline_map_locations(p, js, len, &e) : e.code;
        free(js);
        if (n < 0) {
            fprintf(stderr, "tsi collect: --location-map %s: %s\n", d->s.location_map,
                    tsi_error_str(&e, buf, sizeof buf));
            goto out;
        }
        tsi_info("collect", "location map loaded names=%d file=%s", n, d->s.location_map);
    }
    if (in)
        load_constants(p);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    atomic_store(&d->mapdata_now, true);
    if (pthread_create(&poller, NULL, poll_main, d) == 0)
        poller_started = true;
    if (!d->s.poll_only) {
        for (int k = 0; k < 2; k++) {
            sctx[k].d = d;
            sctx[k].kind = k;
            sctx[k].vcc = make_client(d, &e);
            if (sctx[k].vcc && pthread_create(&streams[k], NULL, stream_main, &sctx[k]) == 0)
                stream_started[k] = true;
        }
    }
    tsi_info("collect", "collecting vcc=%s archive=%s database=%s source=%s", d->s.vcc_url,
             d->s.archive, in ? "yes" : "no", d->s.poll_only ? "poll" : "streams+poll");

    int64_t start = mono_ms(), last_flush = start, last_status = start, last_const = start,
            last_rows = start, last_msg_wall = 0, last_clock = 0;
    while (!g_term) {
        if (d->s.duration_s > 0 && mono_ms() - start >= (int64_t)d->s.duration_s * 1000)
            break;
        if (g_hup) {
            g_hup = 0;
            settings ns;
            if (reload_settings(&ns, reload, ud) == 0) {
                d->s.flush_s = ns.flush_s;
                d->s.poll_ms = ns.poll_ms;
                d->s.mapdata_s = ns.mapdata_s;
                d->s.mapdata_full_s = ns.mapdata_full_s;
                d->s.spat_s = ns.spat_s;
                d->s.constants_s = ns.constants_s;
                d->s.status_s = ns.status_s;
                tsi_info("collect",
                         "configuration reloaded (SIGHUP) flush_s=%d poll_ms=%d "
                         "mapdata_s=%d",
                         ns.flush_s, ns.poll_ms, ns.mapdata_s);
            } else {
                tsi_warn("collect", "SIGHUP: the new configuration is invalid, keeping the old");
            }
            atomic_store(&d->mapdata_now, true);
            last_const = 0;
        }
        qitem *it = dequeue(d, 200);
        while (it) {
            switch (it->what) {
            case Q_BSM:
            case Q_PSM:
                tsi_pipeline_frame(p, it->what == Q_BSM ? TSI_RAW_BSM : TSI_RAW_PSM, it->data,
                                   it->len, it->received_ms);
                last_msg_wall = mono_ms();
                break;
            case Q_MAPDATA:
                tsi_pipeline_mapdata(p, it->data, it->len, it->received_ms);
                break;
            case Q_MAPDATA_FULL:
                tsi_pipeline_mapdata_full(p, it->data, it->len, it->received_ms);
                break;
            default:
                tsi_pipeline_spat(p, it->data, it->len, it->received_ms);
                break;
            }
            free(it);
            it = NULL;
            /* rows are flushed at least once a second: stop before taking the next item
             * (taking one and then leaving the loop dropped a whole frame, issue 11) */
            if (g_term || mono_ms() - last_rows > 1000)
                break;
            it = dequeue(d, 0);
        }
        if (it)
            free(it);
        int64_t now = mono_ms();
        /* quiet source: let the stream clock follow the wall clock so windows still close */
        int64_t clock = tsi_pipeline_clock(p);
        if (clock != last_clock) {
            last_clock = clock;
        } else if (last_msg_wall && now - last_msg_wall > 2000 && clock > 0) {
            tsi_pipeline_advance(p, clock + (now - last_msg_wall));
            last_msg_wall = now;
            last_clock = tsi_pipeline_clock(p);
        }
        if (now - last_rows >= 1000) {
            tsi_pipeline_flush_rows(p, false);
            last_rows = now;
        }
        if (now - last_flush >= (int64_t)d->s.flush_s * 1000) {
            if (tsi_pipeline_flush_raw(p, &e) < 0)
                tsi_err("collect",
                        "archive flush failed (rows kept for the next) err=%s "
                        "detail=%s",
                        tsi_error_name(e.code), e.detail);
            last_flush = now;
        }
        if (in && now - last_const >= (int64_t)d->s.constants_s * 1000) {
            load_constants(p);
            last_const = now;
        }
        if (now - last_status >= (int64_t)d->s.status_s * 1000) {
            write_status(d, p, in, true);
            last_status = now;
        }
    }
    tsi_info("collect", "stopping: closing streams, flushing windows, archive and spool");
    status = 0;
out:
    atomic_store(&d->stop, true);
    d->cancel = 1;
    pthread_mutex_lock(&d->ws_mu);
    for (int k = 0; k < 2; k++)
        if (d->ws[k])
            tsi_ws_client_stop(d->ws[k]);
    pthread_mutex_unlock(&d->ws_mu);
    pthread_mutex_lock(&d->mu);
    pthread_cond_broadcast(&d->cv);
    pthread_cond_broadcast(&d->cv_room);
    pthread_mutex_unlock(&d->mu);
    for (int k = 0; k < 2; k++) {
        if (stream_started[k]) {
            /* the client may have been created after the first stop: ask until it ends */
            void *ret;
            for (;;) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_sec += 1;
                if (pthread_timedjoin_np(streams[k], &ret, &ts) == 0)
                    break;
                pthread_mutex_lock(&d->ws_mu);
                if (d->ws[k])
                    tsi_ws_client_stop(d->ws[k]);
                pthread_mutex_unlock(&d->ws_mu);
            }
        }
        if (sctx[k].vcc && stream_started[k])
            tsi_vcc_free(sctx[k].vcc);
    }
    if (poller_started)
        pthread_join(poller, NULL);
    /* what the network delivered before the stop is processed, then everything flushed */
    if (p) {
        qitem *it;
        while ((it = dequeue(d, 0)) != NULL) {
            if (it->what == Q_BSM || it->what == Q_PSM)
                tsi_pipeline_frame(p, it->what == Q_BSM ? TSI_RAW_BSM : TSI_RAW_PSM, it->data,
                                   it->len, it->received_ms);
            else if (it->what == Q_MAPDATA)
                tsi_pipeline_mapdata(p, it->data, it->len, it->received_ms);
            else if (it->what == Q_MAPDATA_FULL)
                tsi_pipeline_mapdata_full(p, it->data, it->len, it->received_ms);
            else
                tsi_pipeline_spat(p, it->data, it->len, it->received_ms);
            free(it);
        }
        if (status == 0)
            tsi_pipeline_finish(p);
        if (in) {
            long long left = tsi_ingest_sync(in, 5000);
            if (left > 0)
                tsi_warn("collect",
                         "database not reached before exit: rows wait in the spool "
                         "records=%lld",
                         left);
        }
        write_status(d, p, in, true);
        tsi_pipeline_free(p, false);
        p = NULL;
    }
    if (in)
        tsi_ingest_close(in);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    pthread_cond_destroy(&d->cv_room);
    pthread_mutex_destroy(&d->ws_mu);
    free(d);
    if (status == 0)
        tsi_info("collect", "stopped");
    return status;
}
