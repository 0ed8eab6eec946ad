/* pipeline/pipeline.c — see pipeline.h */
#include "pipeline/pipeline.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "archive/indices.h"
#include "archive/intersections.h"
#include "base/buf.h"
#include "base/jsonw.h"
#include "base/log.h"
#include "base/tz.h"
#include "vcc/lanejson.h"
#include "core/engine.h"
#include "core/json.h"
#include "core/registry.h"
#include "vcc/decode.h"

/* one data_quality_log row in the making: (minute, issue, intersection) → counts */
typedef struct dq_acc {
    int64_t minute_ms;
    int64_t intersection_id;
    int issue; /* 0 rejected, 1 unmatched, 2 late, 3 clock skew, 4 unreadable value */
    long long count;
    long long reasons[32];    /* rejected: per -code; unreadable: per TSI_BAD_* bit, then
                               * [TSI_BAD__COUNT] MapData */
    char example[160];        /* unreadable: the first field and value */
    char rsu[64];             /* clock skew: the messages' rsuName (printable, no quotes) */
    int64_t off_min, off_max; /* clock skew: timestamp − receipt, ms */
} dq_acc;

enum { DQ_REJECTED, DQ_UNMATCHED, DQ_LATE, DQ_SKEW, DQ_UNREADABLE };
static const char *const ISSUE[5] = {"rejected_message", "unmatched_message", "late_message",
                                     "clock_skew", "unreadable_value"};

struct tsi_pipeline {
    tsi_pipeline_config cfg;
    char root[4096];
    tsi_archive *archive;
    tsi_ingest *ingest;
    tsi_registry *reg;
    tsi_engine *engine;
    tsi_constants constants;
    tsi_priors *priors;
    /* rows of closed windows waiting for the next flush_rows */
    tsi_rt_row *rows;
    size_t nrows, caprows;
    tsi_conflict_row *conf;
    size_t nconf, capconf;
    dq_acc *dq;
    size_t ndq, capdq;
    tsi_collect_counters c;
    /* the frame parser's tokens, reused frame after frame: grown on demand (up to
     * TSI_FRAME_MAX_TOKENS), kept while frames need them, released after a run of small
     * frames (see frame_parse) */
    tsi_jtok *toks;
    int captoks;
    int small_run;      /* consecutive frames that used under a quarter of captoks */
    long long reparses; /* parses that ran out of tokens and were repeated */
    /* ids decoded from the MapData answer being read (tsi_pipeline_mapdata_full) */
    bool collect_ids;
    int unreadable; /* MapData elements or intersections of it that did not decode */
    int64_t *seen;
    size_t nseen, capseen;
};

static void *grow(void *p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return p;
    size_t n = *cap ? *cap * 2 : 64;
    while (n < need)
        n *= 2;
    void *q = realloc(p, n * size);
    if (!q)
        abort();
    *cap = n;
    return q;
}

static void on_window(void *ud, const tsi_window_result *r)
{
    tsi_pipeline *p = ud;
    const tsi_features *f = &r->features;
    tsi_index x;
    tsi_index_compute(f, &p->constants, &x);
    int hour, dow;
    tsi_tz_hour_dow(f->minute_ms / 1000, &hour, &dow); /* TSI_TIMEZONE (tsi_tz_init) */
    double prior[3];
    int src =
        p->priors ? tsi_priors_get(p->priors, f->intersection_id, hour, prior) : TSI_PRIOR_NONE;
    tsi_index_eb(&x, f, p->constants.k, src != TSI_PRIOR_NONE ? prior : NULL, src);
    p->rows = grow(p->rows, &p->caprows, p->nrows + 1, sizeof *p->rows);
    tsi_rt_row *row = &p->rows[p->nrows++];
    memset(row, 0, sizeof *row);
    row->intersection_id = f->intersection_id;
    row->minute_ms = f->minute_ms;
    row->combined_index = x.combined;
    row->combined_index_eb = x.combined_eb;
    row->vru_index = x.vru;
    row->vru_index_eb = x.vru_eb;
    row->vehicle_index = x.vehicle;
    row->vehicle_index_eb = x.vehicle_eb;
    row->traffic_volume = f->traffic_volume;
    row->vru_count = f->vru_count;
    row->vehicle_event_count = f->vehicle_event_count;
    row->vru_event_count = f->vru_event_count;
    row->hour_of_day = (int16_t)hour;
    row->day_of_week = (int16_t)dow;
    row->avg_speed = f->avg_speed;
    row->speed_stddev = f->speed_stddev;
    row->hard_braking_count = f->hard_braking_count;
    row->message_count = f->bsm_messages + f->psm_messages;
    row->constants_id = p->constants.set_id;
    row->algorithm_version = TSI_ALGORITHM_VERSION;
    for (int i = 0; i < r->nconflicts; i++) {
        const tsi_conflict *k = &r->conflicts[i];
        p->conf = grow(p->conf, &p->capconf, p->nconf + 1, sizeof *p->conf);
        tsi_conflict_row *cr = &p->conf[p->nconf++];
        cr->intersection_id = k->intersection_id;
        cr->minute_ms = k->minute_ms;
        cr->kind = k->kind == TSI_CONFLICT_VRU ? 2 : 1;
        cr->id_a = k->id_a;
        cr->id_b = k->id_b;
        cr->min_ttc_s = k->min_ttc_s;
        cr->min_distance_m = k->min_distance_m;
        cr->at_ms = k->at_ms;
    }
    p->c.windows++;
    p->c.rows_indexed++;
}

int tsi_pipeline_new(tsi_pipeline **out, const tsi_pipeline_config *cfg, tsi_ingest *ingest,
                     tsi_error *err)
{
    *out = NULL;
    tsi_pipeline *p = calloc(1, sizeof *p);
    if (!p)
        return tsi_error_set(err, TSI_E_NOMEM, "out of memory", NULL);
    p->cfg = *cfg;
    snprintf(p->root, sizeof p->root, "%s", cfg->archive_root);
    p->cfg.archive_root = p->root;
    p->ingest = ingest;
    p->constants = tsi_constants_default;
    int rc = tsi_archive_open(&p->archive, p->root, err);
    if (rc < 0) {
        free(p);
        return rc;
    }
    p->reg = tsi_registry_new(cfg->radius_m);
    tsi_feature_config fc;
    tsi_feature_config_default(&fc);
    if (cfg->grace_ms > 0)
        fc.grace_ms = cfg->grace_ms;
    if (cfg->max_skew_ms != 0)
        fc.max_skew_ms = cfg->max_skew_ms;
    p->engine = tsi_engine_new(&fc, p->reg, on_window, p);
    if (!p->reg || !p->engine) {
        tsi_pipeline_free(p, false);
        return tsi_error_set(err, TSI_E_NOMEM, "cannot create the domain engine", NULL);
    }
    *out = p;
    return 0;
}

void tsi_pipeline_finish(tsi_pipeline *p)
{
    tsi_engine_flush(p->engine);
    tsi_pipeline_flush_rows(p, true);
    tsi_error e = {0};
    if (tsi_pipeline_flush_raw(p, &e) < 0)
        tsi_err("collect", "final archive flush failed err=%s detail=%s", tsi_error_name(e.code),
                e.detail);
}

void tsi_pipeline_free(tsi_pipeline *p, bool final)
{
    if (!p)
        return;
    if (final && p->engine)
        tsi_pipeline_finish(p);
    tsi_engine_free(p->engine);
    tsi_registry_free(p->reg);
    tsi_archive_close(p->archive);
    tsi_priors_free(p->priors);
    free(p->rows);
    free(p->conf);
    free(p->dq);
    free(p->toks);
    free(p->seen);
    free(p);
}

/* The accumulator of (issue, minute, intersection, rsu), made when missing. */
static dq_acc *dq_get(tsi_pipeline *p, int issue, int64_t minute_ms, int64_t isect, const char *rsu)
{
    for (size_t i = p->ndq; i-- > 0;) {
        if (p->dq[i].issue == issue && p->dq[i].minute_ms == minute_ms &&
            p->dq[i].intersection_id == isect && strcmp(p->dq[i].rsu, rsu) == 0)
            return &p->dq[i];
    }
    p->dq = grow(p->dq, &p->capdq, p->ndq + 1, sizeof *p->dq);
    dq_acc *a = &p->dq[p->ndq++];
    memset(a, 0, sizeof *a);
    a->issue = issue;
    a->minute_ms = minute_ms;
    a->intersection_id = isect;
    snprintf(a->rsu, sizeof a->rsu, "%s", rsu);
    return a;
}

static void dq_count(tsi_pipeline *p, int issue, int64_t minute_ms, int64_t isect, int code)
{
    dq_acc *a = dq_get(p, issue, minute_ms, isect, "");
    a->count++;
    if (code < 0 && -code < 32)
        a->reasons[-code]++;
}

/* One clock-skewed message: a row per minute of receipt, intersection and RSU. */
static void dq_skew(tsi_pipeline *p, int64_t received_ms, int64_t isect, const char *rsu_name,
                    int64_t off)
{
    char rsu[64];
    size_t n = 0;
    for (const char *c = rsu_name; *c && n < sizeof rsu - 1; c++) /* nothing to escape */
        rsu[n++] = (*c >= 0x20 && *c < 0x7f && *c != '"' && *c != '\\') ? *c : '?';
    rsu[n] = '\0';
    dq_acc *a = dq_get(p, DQ_SKEW, tsi_minute_of(received_ms), isect, rsu);
    if (a->count == 0 || off < a->off_min)
        a->off_min = off;
    if (a->count == 0 || off > a->off_max)
        a->off_max = off;
    a->count++;
}

/* Values present but unreadable (the message or MapData is kept): one row per minute of
 * receipt. field: a TSI_BAD_* bit, or TSI_BAD__COUNT for MapData. */
static void dq_unreadable(tsi_pipeline *p, int64_t received_ms, int field, long long n,
                          const char *example)
{
    dq_acc *a = dq_get(p, DQ_UNREADABLE, tsi_minute_of(received_ms), -1, "");
    a->count += n;
    a->reasons[field] += n;
    if (!a->example[0]) {
        size_t k = 0;
        for (const char *c = example; *c && k < sizeof a->example - 1; c++)
            a->example[k++] = (*c >= 0x20 && *c < 0x7f) ? *c : '?';
        a->example[k] = '\0';
    }
    p->c.unreadable += n;
}

static void count_forms(long long *counters, int forms)
{
    for (int k = 0; k < TSI_FORM__COUNT; k++)
        if (forms & (1 << k))
            counters[k]++;
}

static void archive_msg(tsi_pipeline *p, tsi_raw_kind kind, const tsi_msg *m, const char *reason,
                        const char *js, size_t len, int64_t received_ms)
{
    tsi_error e = {0};
    if (tsi_archive_add_msg(p->archive, kind, m, reason, js, len, received_ms, &e) < 0) {
        p->c.archive_errors++;
        tsi_warn("collect", "cannot archive a message err=%s detail=%s", tsi_error_name(e.code),
                 e.detail);
    }
}

static void element(tsi_pipeline *p, tsi_raw_kind kind, const tsi_json *d, int el,
                    int64_t received_ms)
{
    const char *txt = d->js + d->tok[el].start;
    size_t n = (size_t)(d->tok[el].end - d->tok[el].start);
    if (d->tok[el].type == TSI_JSON_STRING) { /* keep the quotes of a string element */
        txt--;
        n += 2;
    }
    p->c.messages_in++;
    tsi_msg m;
    tsi_error e = {0};
    int want = kind == TSI_RAW_BSM ? TSI_MSG_BSM : TSI_MSG_PSM;
    int rc = tsi_msg_from_json(d, el, want, &m, &e);
    if (rc < 0) {
        p->c.rejected++;
        dq_count(p, 0, tsi_minute_of(received_ms), -1, rc);
        archive_msg(p, kind, NULL, tsi_error_name(rc), txt, n, received_ms);
        return;
    }
    tsi_push_info info = {-1, 0, 0};
    rc = tsi_engine_push_ref(p->engine, &m, received_ms, &info, &e);
    if (rc == TSI_E_DUPLICATE) {
        p->c.deduped++;
        return;
    }
    /* counted once per message (a duplicate is not seen again) */
    count_forms(p->c.bsm_forms, m.forms);
    for (int k = 0; k < TSI_BAD__COUNT; k++)
        if (m.unreadable & (1 << k)) {
            const char *nm = tsi_bad_field_name(k), *dot = strchr(nm, '.');
            int t = dot ? tsi_json_path(d, el, "bsmJson", "coreData", "brakes", dot + 1, NULL)
                        : tsi_json_path(d, el, "bsmJson", "coreData", nm, NULL);
            size_t vn = 0;
            const char *raw = t >= 0 ? tsi_json_raw(d, t, &vn) : "";
            char ex[160];
            snprintf(ex, sizeof ex, "%s = %.*s (id %lld)", nm, (int)(vn > 60 ? 60 : vn), raw,
                     (long long)m.id);
            dq_unreadable(p, received_ms, k, 1, ex);
        }
    if (rc == TSI_E_CLOCK_SKEW) {
        p->c.skewed++;
        dq_skew(p, received_ms, info.intersection_id, m.rsu_name, info.offset_ms);
    } else if (rc == TSI_E_UNMATCHED) {
        p->c.unmatched++;
        dq_count(p, 1, tsi_minute_of(m.timestamp_ms), -1, 0);
    } else if (rc == TSI_E_LATE) {
        p->c.late++;
        dq_count(p, 2, tsi_minute_of(m.timestamp_ms), info.intersection_id, 0);
    } else if (rc < 0) {
        p->c.rejected++;
        dq_count(p, 0, tsi_minute_of(received_ms), -1, rc);
        archive_msg(p, kind, NULL, tsi_error_name(rc), txt, n, received_ms);
        return;
    } else {
        p->c.accepted++;
    }
    archive_msg(p, kind, &m, NULL, txt, n, received_ms);
}

/* Token storage: a rush-hour /ws/bsm frame (~15,500 BSMs, ~11 MB) needs ~1.2 M tokens;
 * freeing them after every such frame made each frame start again small and parse up to
 * four times (TOO_BIG at each size) into fresh, page-faulting memory. */
enum {
    TOKS_INITIAL = 1 << 16, /* first allocation (1.3 MB) */
    TOKS_SMALL_RUN = 64,    /* frames using < 1/4 of the buffer before it is released */
};

static int toks_resize(tsi_pipeline *p, size_t cap)
{
    if (cap > TSI_FRAME_MAX_TOKENS)
        cap = TSI_FRAME_MAX_TOKENS;
    tsi_jtok *t = realloc(p->toks, cap * sizeof *t);
    if (!t)
        return -1;
    p->toks = t;
    p->captoks = (int)cap;
    return 0;
}

/* Parses a frame into p->toks. A parse that runs out of tokens is repeated once with
 * room for the whole frame, estimated from how far the first attempt got (tokens per
 * byte so far, with a margin), and again only if that estimate was short. */
static int frame_parse(tsi_pipeline *p, tsi_json *d, const char *js, size_t len, tsi_error *e)
{
    if (!p->toks && toks_resize(p, TOKS_INITIAL) < 0) {
        p->captoks = 0;
        return tsi_json_parse_alloc(d, js, len, TSI_FRAME_MAX_TOKENS, e);
    }
    int rc;
    for (;;) {
        rc = tsi_json_parse(d, js, len, p->toks, p->captoks, e);
        if (rc != TSI_E_TOO_BIG || p->captoks >= TSI_FRAME_MAX_TOKENS)
            break;
        p->reparses++;
        /* jsmn stopped at the token that did not fit: the last one stored starts about
         * where it stopped */
        double reached = (double)p->toks[p->captoks - 1].start;
        double est = reached > 0 ? (double)p->captoks * ((double)len / reached) * 1.125 : 0;
        size_t cap = (size_t)p->captoks * 2;
        if (est > (double)cap)
            cap = est < (double)TSI_FRAME_MAX_TOKENS ? (size_t)est : TSI_FRAME_MAX_TOKENS;
        if (toks_resize(p, cap) < 0)
            return tsi_error_set(e, TSI_E_NOMEM, "out of memory parsing a frame", NULL);
    }
    /* a run of frames that use under a quarter of a grown buffer: tsi_pipeline_frame
     * shrinks it once the frame is done with its tokens */
    if (p->captoks > TOKS_INITIAL && (rc < 0 || rc < p->captoks / 4))
        p->small_run++;
    else
        p->small_run = 0;
    return rc;
}

void tsi_pipeline_frame(tsi_pipeline *p, tsi_raw_kind kind, const char *js, size_t len,
                        int64_t received_ms)
{
    p->c.frames++;
    tsi_json d;
    tsi_error e = {0};
    int rc = frame_parse(p, &d, js, len, &e);
    if (rc >= 0 && !tsi_json_is_array(&d, 0) && !tsi_json_is_object(&d, 0))
        rc = tsi_error_set(&e, TSI_E_NOT_OBJECT, "a frame must be a JSON array or object", NULL);
    if (rc < 0) {
        /* unusable as a whole: archived as one rejected row, counted once */
        p->c.frames_rejected++;
        p->c.rejected++;
        dq_count(p, 0, tsi_minute_of(received_ms), -1, rc);
        archive_msg(p, kind, NULL, tsi_error_name(rc), js, len, received_ms);
    } else if (tsi_json_is_object(&d, 0)) {
        element(p, kind, &d, 0, received_ms);
    } else {
        for (int i = tsi_json_first(&d, 0); i >= 0; i = tsi_json_next(&d, 0, i))
            element(p, kind, &d, i, received_ms);
    }
    tsi_json_free(&d);
    /* storage frames no longer need goes back to the initial size (a single giant frame
     * is not kept for good); a failed shrink keeps the larger buffer */
    if (p->small_run >= TOKS_SMALL_RUN) {
        p->small_run = 0;
        (void)toks_resize(p, TOKS_INITIAL);
    }
}

void tsi_pipeline_token_stats(const tsi_pipeline *p, int *capacity, long long *reparses)
{
    *capacity = p->captoks;
    *reparses = p->reparses;
}

/* r->metadata points into *md (the caller frees md) */
static void isect_row(const tsi_map_intersection *x, tsi_isect_row *r, tsi_buf *md)
{
    memset(r, 0, sizeof *r);
    r->id = x->id;
    if (x->name[0])
        snprintf(r->name, sizeof r->name, "%s", x->name);
    else
        snprintf(r->name, sizeof r->name, "Intersection %lld", (long long)x->id);
    r->latitude = x->ref_lat;
    r->longitude = x->ref_lon;
    r->lane_count = x->vehicle_lanes;
    r->revision = x->revision;
    for (int pass = 0; pass < 2; pass++) {
        tsi_buf_reset(md);
        tsi_jsonw w;
        tsi_jsonw_init(&w, md);
        tsi_jsonw_object(&w);
        tsi_jsonw_kv_str(&w, "source", "mapdata");
        tsi_jsonw_kv_int(&w, "region", x->region);
        tsi_jsonw_kv_int(&w, "local_id", x->local_id);
        tsi_jsonw_kv_int(&w, "lanes", x->nlanes);
        if (isfinite(x->speed_limit))
            tsi_jsonw_kv_double(&w, "speed_limit_mps", x->speed_limit);
        if (isfinite(x->lane_width_m))
            tsi_jsonw_kv_double(&w, "lane_width_m", x->lane_width_m);
        if (pass == 0) { /* the lane polylines, unless they do not fit (then pass 1) */
            tsi_jsonw_key(&w, "lane_geometry");
            tsi_lanes_json(&w, x->lanes, x->nlanes);
        }
        tsi_jsonw_kv_null(&w, "retired_at"); /* in MapData again: current again */
        tsi_jsonw_end(&w);
        if (md->len <= TSI_ISECT_METADATA_MAX)
            break;
        tsi_warn("collect", "lane geometry too large to store, left out id=%lld bytes=%zu",
                 (long long)x->id, md->len);
    }
    r->metadata = tsi_buf_cstr(md);
}

static int mapdata_element(tsi_pipeline *p, const char *txt, size_t n, int64_t received_ms)
{
    tsi_mapdata md;
    tsi_error e = {0};
    int stored = 0;
    int rc = tsi_mapdata_decode(txt, n, &md, &e);
    p->c.mapdata_in++;
    tsi_error ae = {0};
    if (tsi_archive_add_mapdata(p->archive, rc < 0 ? NULL : &md, rc < 0 ? tsi_error_name(rc) : NULL,
                                txt, n, received_ms, &ae) < 0)
        p->c.archive_errors++;
    if (rc < 0) {
        p->c.rejected++;
        p->unreadable++;
        dq_count(p, 0, tsi_minute_of(received_ms), -1, rc);
        tsi_warn("collect", "MapData rejected err=%s detail=%s", tsi_error_name(rc), e.detail);
        tsi_mapdata_free(&md);
        return 0;
    }
    count_forms(p->c.map_forms, md.forms);
    if (md.unreadable > 0) {
        dq_unreadable(p, received_ms, TSI_BAD__COUNT, md.unreadable, md.first_unreadable.detail);
        tsi_warn("collect", "MapData values unreadable count=%d first=%s", md.unreadable,
                 md.first_unreadable.detail);
    }
    for (int i = 0; i < md.n; i++) {
        if (p->collect_ids) {
            p->seen = grow(p->seen, &p->capseen, p->nseen + 1, sizeof *p->seen);
            p->seen[p->nseen++] = md.items[i].id;
        }
        if (tsi_registry_upsert(p->reg, &md.items[i]) == 1) {
            stored++;
            p->c.intersections_new++;
            tsi_info("collect", "intersection known id=%lld revision=%d name=%s",
                     (long long)md.items[i].id, md.items[i].revision, md.items[i].name);
            if (p->ingest) {
                tsi_isect_row r;
                tsi_buf mb = TSI_BUF_INIT;
                isect_row(&md.items[i], &r, &mb);
                tsi_error ie = {0};
                if (tsi_ingest_add_isects(p->ingest, &r, 1, &ie) < 0)
                    tsi_err("collect", "cannot spool an intersection err=%s detail=%s",
                            tsi_error_name(ie.code), ie.detail);
                tsi_buf_free(&mb);
            }
        }
    }
    p->unreadable += md.nrejected;
    if (md.nrejected > 0)
        tsi_warn("collect", "MapData intersections rejected count=%d first=%s", md.nrejected,
                 md.first_error.detail);
    tsi_mapdata_free(&md);
    return stored;
}

static int mapdata_all(tsi_pipeline *p, const char *js, size_t len, int64_t received_ms);

/* archive/intersections/: every known intersection, so that a server started while
 * PostgreSQL is away names and places them */
static void write_intersections(tsi_pipeline *p)
{
    int n = tsi_registry_count(p->reg);
    tsi_archive_isect *rows = calloc((size_t)(n ? n : 1), sizeof *rows);
    if (!rows) {
        p->c.archive_errors++;
        return;
    }
    for (int i = 0; i < n; i++) {
        const tsi_isect *x = tsi_registry_at(p->reg, i);
        rows[i] = (tsi_archive_isect){x->id, x->name, x->ref_lat, x->ref_lon, x->lane_count};
    }
    tsi_error e = {0};
    if (tsi_archive_intersections_write(p->root, rows, n, &e) < 0) {
        p->c.archive_errors++;
        tsi_err("collect", "cannot write the intersections file err=%s detail=%s",
                tsi_error_name(e.code), e.detail);
    } else {
        p->c.isect_files++;
    }
    free(rows);
}

int tsi_pipeline_mapdata(tsi_pipeline *p, const char *js, size_t len, int64_t received_ms)
{
    int stored = mapdata_all(p, js, len, received_ms);
    if (stored > 0 && p->cfg.write_intersections)
        write_intersections(p);
    return stored;
}

static int cmp_id(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* the intersection that left MapData, upserted with retired_at (merged into its metadata) */
static void spool_retired(tsi_pipeline *p, const tsi_isect *x, int64_t received_ms)
{
    if (!p->ingest)
        return;
    tsi_isect_row r;
    memset(&r, 0, sizeof r);
    r.id = x->id;
    snprintf(r.name, sizeof r.name, "%s", x->name);
    r.latitude = x->ref_lat;
    r.longitude = x->ref_lon;
    r.lane_count = x->lane_count;
    r.revision = x->revision;
    char at[32], md[160];
    tsi_tz_iso_utc(received_ms, at, sizeof at);
    snprintf(md, sizeof md,
             "{\"retired_at\":\"%s\",\"retired_reason\":\"absent from a full MapData answer\"}",
             at);
    r.metadata = md;
    tsi_error ie = {0};
    if (tsi_ingest_add_isects(p->ingest, &r, 1, &ie) < 0)
        tsi_err("collect", "cannot spool a retired intersection id=%lld err=%s detail=%s",
                (long long)x->id, tsi_error_name(ie.code), ie.detail);
}

int tsi_pipeline_mapdata_full(tsi_pipeline *p, const char *js, size_t len, int64_t received_ms)
{
    p->nseen = 0;
    p->unreadable = 0;
    p->collect_ids = true;
    int stored = mapdata_all(p, js, len, received_ms);
    p->collect_ids = false;
    int retired = 0;
    if (p->unreadable > 0)
        tsi_warn("collect", "full MapData answer with %d unreadable part(s): nothing retired",
                 p->unreadable);
    else if (p->nseen > 0) {
        qsort(p->seen, p->nseen, sizeof *p->seen, cmp_id);
        for (int i = tsi_registry_count(p->reg) - 1; i >= 0; i--) {
            const tsi_isect *x = tsi_registry_at(p->reg, i);
            if (bsearch(&x->id, p->seen, p->nseen, sizeof *p->seen, cmp_id))
                continue;
            tsi_info("collect",
                     "intersection retired id=%lld name=%s reason=absent from a full MapData "
                     "answer of %zu",
                     (long long)x->id, x->name, p->nseen);
            spool_retired(p, x, received_ms);
            tsi_registry_remove(p->reg, x->id); /* x is invalid from here */
            retired++;
        }
    }
    p->c.intersections_retired += retired;
    if ((stored > 0 || retired > 0) && p->cfg.write_intersections)
        write_intersections(p);
    return retired;
}

static int mapdata_all(tsi_pipeline *p, const char *js, size_t len, int64_t received_ms)
{
    tsi_json d;
    tsi_error e = {0};
    int stored = 0;
    if (tsi_json_parse_alloc(&d, js, len, TSI_FRAME_MAX_TOKENS, &e) < 0 ||
        !tsi_json_is_array(&d, 0)) {
        tsi_json_free(&d);
        return mapdata_element(p, js, len, received_ms); /* one object, or rejected whole */
    }
    for (int i = tsi_json_first(&d, 0); i >= 0; i = tsi_json_next(&d, 0, i))
        stored += mapdata_element(p, d.js + d.tok[i].start, (size_t)(d.tok[i].end - d.tok[i].start),
                                  received_ms);
    tsi_json_free(&d);
    return stored;
}

static void spat_element(tsi_pipeline *p, const char *txt, size_t n, int64_t received_ms)
{
    tsi_spat sp;
    tsi_error e = {0};
    int rc = tsi_spat_decode(txt, n, &sp, &e);
    p->c.spat_in++;
    tsi_error ae = {0};
    if (tsi_archive_add_spat(p->archive, rc < 0 ? NULL : &sp, rc < 0 ? tsi_error_name(rc) : NULL,
                             txt, n, received_ms, &ae) < 0)
        p->c.archive_errors++;
    if (rc < 0) {
        p->c.rejected++;
        dq_count(p, 0, tsi_minute_of(received_ms), -1, rc);
    }
    tsi_spat_free(&sp);
}

void tsi_pipeline_spat(tsi_pipeline *p, const char *js, size_t len, int64_t received_ms)
{
    tsi_json d;
    tsi_error e = {0};
    if (tsi_json_parse_alloc(&d, js, len, TSI_FRAME_MAX_TOKENS, &e) < 0 ||
        !tsi_json_is_array(&d, 0)) {
        tsi_json_free(&d);
        spat_element(p, js, len, received_ms);
        return;
    }
    for (int i = tsi_json_first(&d, 0); i >= 0; i = tsi_json_next(&d, 0, i)) {
        const char *txt = d.js + d.tok[i].start;
        size_t n = (size_t)(d.tok[i].end - d.tok[i].start);
        if (d.tok[i].type == TSI_JSON_STRING) {
            txt--;
            n += 2;
        }
        spat_element(p, txt, n, received_ms);
    }
    tsi_json_free(&d);
}

void tsi_pipeline_advance(tsi_pipeline *p, int64_t clock_ms)
{
    tsi_engine_advance(p->engine, clock_ms);
}

int64_t tsi_pipeline_clock(const tsi_pipeline *p)
{
    tsi_engine_stats st;
    tsi_engine_get_stats(p->engine, &st);
    return st.clock_ms;
}

static void dq_row(const dq_acc *a, tsi_dq_row *r)
{
    memset(r, 0, sizeof *r);
    r->minute_ms = a->minute_ms;
    r->intersection_id = a->intersection_id;
    snprintf(r->issue_type, sizeof r->issue_type, "%s", ISSUE[a->issue]);
    snprintf(r->severity, sizeof r->severity, "%s",
             a->issue == DQ_REJECTED || a->issue == DQ_SKEW || a->issue == DQ_UNREADABLE ? "warning"
                                                                                         : "info");
    static const char *const what[4] = {
        "rejected by the decoder", "matched no intersection", "arrived after their window closed",
        "were dated too far from the receiver's clock (archived, not indexed)"};
    if (a->issue == DQ_UNREADABLE)
        snprintf(r->message, sizeof r->message,
                 "%lld values received in this minute were present but unreadable (the "
                 "messages were kept)",
                 a->count);
    else
        snprintf(r->message, sizeof r->message, "%lld messages of this minute %s", a->count,
                 what[a->issue]);
    tsi_buf b = TSI_BUF_INIT;
    tsi_jsonw w;
    tsi_jsonw_init(&w, &b);
    tsi_jsonw_object(&w);
    tsi_jsonw_kv_int(&w, "count", a->count);
    if (a->issue == DQ_SKEW) {
        tsi_jsonw_kv_str(&w, "rsu", a->rsu);
        tsi_jsonw_kv_int(&w, "offset_ms_min", a->off_min);
        tsi_jsonw_kv_int(&w, "offset_ms_max", a->off_max);
    }
    if (a->issue == DQ_UNREADABLE) {
        tsi_jsonw_key(&w, "fields");
        tsi_jsonw_object(&w);
        for (int i = 0; i <= TSI_BAD__COUNT; i++)
            if (a->reasons[i])
                tsi_jsonw_kv_int(&w, i < TSI_BAD__COUNT ? tsi_bad_field_name(i) : "mapdata",
                                 a->reasons[i]);
        tsi_jsonw_end(&w);
        tsi_jsonw_kv_str(&w, "example", a->example);
    }
    if (a->issue == 0) {
        tsi_jsonw_key(&w, "reasons");
        tsi_jsonw_object(&w);
        for (int i = 1; i < 32; i++)
            if (a->reasons[i])
                tsi_jsonw_kv_int(&w, tsi_error_name(-i), a->reasons[i]);
        tsi_jsonw_end(&w);
    }
    tsi_jsonw_end(&w);
    snprintf(r->metadata, sizeof r->metadata, "%s", tsi_buf_cstr(&b));
    tsi_buf_free(&b);
}

long long tsi_pipeline_flush_rows(tsi_pipeline *p, bool all_quality)
{
    long long handed = 0;
    if (p->nrows > 0 || p->nconf > 0) {
        tsi_indices_stats st;
        tsi_error e = {0};
        if (tsi_indices_write(tsi_archive_duck(p->archive), p->root, p->rows, p->nrows, p->conf,
                              p->nconf, &st, &e) < 0) {
            p->c.archive_errors++;
            tsi_err("collect",
                    "indices Parquet write failed (rows kept for the next flush) "
                    "err=%s detail=%s",
                    tsi_error_name(e.code), e.detail);
        }
        p->c.index_files += st.files;
        /* a failed write keeps its rows buffered in DuckDB (archive/indices.h): they go out
         * with the next call, so the pipeline's own buffer is free to reuse either way.
         * The database write never waits for, nor depends on, the Parquet write */
        if (p->ingest && p->nrows > 0) {
            tsi_error ie = {0};
            if (tsi_ingest_add_rows(p->ingest, p->rows, p->nrows, &ie) < 0)
                tsi_err("collect", "cannot spool index rows err=%s detail=%s",
                        tsi_error_name(ie.code), ie.detail);
        }
        handed = (long long)p->nrows;
        p->nrows = 0;
        p->nconf = 0;
    }
    /* quality rows of minutes that can no longer change */
    int64_t clock = tsi_pipeline_clock(p);
    int64_t grace = p->cfg.grace_ms > 0 ? p->cfg.grace_ms : 10000;
    size_t keep = 0;
    tsi_dq_row *out = NULL;
    size_t nout = 0;
    if (p->ndq)
        out = calloc(p->ndq, sizeof *out);
    for (size_t i = 0; i < p->ndq; i++) {
        bool done = all_quality || p->dq[i].minute_ms + 60000 + grace < clock ||
                    p->dq[i].issue == DQ_REJECTED ||
                    p->dq[i].issue == DQ_UNREADABLE; /* dated by receipt: write them now */
        if (done && out)
            dq_row(&p->dq[i], &out[nout++]);
        else
            p->dq[keep++] = p->dq[i];
    }
    p->ndq = keep;
    if (nout && p->ingest) {
        tsi_error ie = {0};
        if (tsi_ingest_add_dq(p->ingest, out, nout, &ie) < 0)
            tsi_err("collect", "cannot spool quality rows err=%s detail=%s",
                    tsi_error_name(ie.code), ie.detail);
    }
    p->c.dq_rows += (long long)nout;
    free(out);
    return handed;
}

int tsi_pipeline_flush_raw(tsi_pipeline *p, tsi_error *err)
{
    tsi_archive_stats st;
    int rc = tsi_archive_flush(p->archive, &st, err);
    p->c.raw_files += st.files;
    for (int k = 0; k < TSI_RAW__COUNT; k++)
        p->c.raw_rows += st.rows[k];
    p->c.archive_errors += st.flush_errors; /* files due at a buffer bound, not written */
    if (rc < 0)
        p->c.archive_errors++;
    return rc;
}

void tsi_pipeline_set_constants(tsi_pipeline *p, const tsi_constants *c, tsi_priors *priors)
{
    p->constants = c ? *c : tsi_constants_default;
    tsi_priors_free(p->priors);
    p->priors = priors;
}

void tsi_pipeline_counters(const tsi_pipeline *p, tsi_collect_counters *out)
{
    *out = p->c;
}

int tsi_pipeline_map_locations(tsi_pipeline *p, const char *js, size_t len, tsi_error *err)
{
    return tsi_registry_map_locations_json(p->reg, js, len, err);
}

int tsi_pipeline_intersections(const tsi_pipeline *p)
{
    return tsi_registry_count(p->reg);
}
