/* tools/features_cmd.c — `tsi features`: see features_cmd.h */
#include "tools/features_cmd.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "base/buf.h"
#include "base/jsonw.h"
#include "base/tz.h"
#include "core/engine.h"
#include "core/index.h"
#include "core/json.h"
#include "core/registry.h"
#include "vcc/decode.h"

/* ---- the run ---- */

typedef struct row {
    tsi_features f;
    int hour, dow;
    tsi_index x;
} row;

/* Clock sanity offline: each message is judged against the median timestamp of the
 * messages around it, SKEW_HALF before and SKEW_HALF after (core/engine.h), so a message
 * is pushed SKEW_HALF messages late. A wrong first message is caught too; a real jump of
 * the stream (traffic after a quiet spell) is followed once SKEW_HALF messages agree. */
enum { SKEW_HALF = 16, SKEW_WIN = 2 * SKEW_HALF + 1 };

typedef struct pending {
    tsi_msg m;
    long long line;
} pending;

typedef struct run {
    pending fifo[SKEW_WIN];
    int head, nf, ndec; /* ring of the last messages; the oldest ndec are pushed */
    int64_t skew_minute_shown;
    long long skew_lines_hidden;
    row *rows;
    size_t n, cap;
    FILE *conflicts;
    long long conflicts_written;
    tsi_engine *eng;
    long long line;
    bool frame; /* the current line is an array */
    long long lines, messages, decoded, rejected;
} run;

static void on_window(void *ud, const tsi_window_result *r)
{
    run *R = ud;
    if (R->n == R->cap) {
        R->cap = R->cap ? R->cap * 2 : 1024;
        R->rows = realloc(R->rows, R->cap * sizeof *R->rows);
        if (R->rows == NULL)
            abort();
    }
    row *w = &R->rows[R->n++];
    memset(w, 0, sizeof *w);
    w->f = r->features;
    tsi_tz_hour_dow(w->f.minute_ms / 1000, &w->hour, &w->dow);
    if (R->conflicts) {
        char ts[32];
        tsi_buf b = TSI_BUF_INIT;
        for (int i = 0; i < r->nconflicts; i++) {
            const tsi_conflict *c = &r->conflicts[i];
            tsi_buf_reset(&b);
            tsi_jsonw jw;
            tsi_jsonw_init(&jw, &b);
            tsi_jsonw_object(&jw);
            tsi_jsonw_kv_int(&jw, "intersection_id", c->intersection_id);
            tsi_tz_iso_utc(c->minute_ms, ts, sizeof ts);
            tsi_jsonw_kv_str(&jw, "timestamp", ts);
            tsi_jsonw_kv_str(&jw, "kind", c->kind == TSI_CONFLICT_VRU ? "vru" : "vehicle");
            tsi_jsonw_kv_int(&jw, "id_a", c->id_a);
            tsi_jsonw_kv_int(&jw, "id_b", c->id_b);
            tsi_jsonw_kv_double(&jw, "min_ttc_s", c->min_ttc_s);
            tsi_jsonw_kv_double(&jw, "min_distance_m", c->min_distance_m);
            tsi_jsonw_kv_int(&jw, "at_ms", c->at_ms);
            tsi_jsonw_end(&jw);
            tsi_buf_putc(&b, '\n');
            fwrite(b.data, 1, b.len, R->conflicts);
            R->conflicts_written++;
        }
        tsi_buf_free(&b);
    }
}

/* Pushes the oldest undecided message of the ring, judged against the ring's median. */
static void decide_one(run *R)
{
    int64_t ts[SKEW_WIN];
    for (int i = 0; i < R->nf; i++)
        ts[i] = R->fifo[(R->head + i) % SKEW_WIN].m.timestamp_ms;
    int64_t ref = tsi_median_ms(ts, R->nf);
    pending *p = &R->fifo[(R->head + R->ndec) % SKEW_WIN];
    R->ndec++;
    tsi_error err = {0};
    if (tsi_engine_push_ref(R->eng, &p->m, ref, NULL, &err) != TSI_E_CLOCK_SKEW)
        return;
    /* one line per minute of the stream's clock, the rest counted in the summary */
    if (tsi_minute_of(ref) == R->skew_minute_shown) {
        R->skew_lines_hidden++;
        return;
    }
    R->skew_minute_shown = tsi_minute_of(ref);
    fprintf(stderr, "line %lld: clock_skew: %s: %s\n", p->line, err.message, err.detail);
}

static void skew_add(run *R, const tsi_msg *m)
{
    if (R->nf == SKEW_WIN) { /* the oldest was pushed long ago */
        R->head = (R->head + 1) % SKEW_WIN;
        R->nf--;
        R->ndec--;
    }
    pending *p = &R->fifo[(R->head + R->nf) % SKEW_WIN];
    p->m = *m;
    p->line = R->line;
    R->nf++;
    while (R->ndec < R->nf - SKEW_HALF)
        decide_one(R);
}

static void skew_drain(run *R)
{
    while (R->ndec < R->nf)
        decide_one(R);
}

static void on_msg(void *ud, int index, const tsi_msg *m, int rc, const tsi_error *err)
{
    run *R = ud;
    R->messages++;
    if (rc < 0) {
        R->rejected++;
        if (R->frame)
            fprintf(stderr, "line %lld: element %d: %s: %s: %s\n", R->line, index,
                    tsi_error_name(rc), err->message, err->detail);
        else
            fprintf(stderr, "line %lld: %s: %s: %s\n", R->line, tsi_error_name(rc), err->message,
                    err->detail);
        return;
    }
    R->decoded++;
    skew_add(R, m);
}

static int load_location_map(tsi_registry *reg, const char *path, tsi_error *err)
{
    size_t len;
    char *js = tsi_read_file(path, &len, 16u << 20, err);
    if (js == NULL)
        return err->code;
    int rc = tsi_registry_map_locations_json(reg, js, len, err);
    if (rc < 0) {
        char d[sizeof err->detail];
        snprintf(d, sizeof d, "%s: %s", path, err->detail);
        snprintf(err->detail, sizeof err->detail, "%s", d);
    }
    free(js);
    return rc < 0 ? rc : 0;
}

static void write_row(FILE *out, const row *w, bool csv, tsi_buf *b)
{
    char ts[32];
    tsi_tz_iso_utc(w->f.minute_ms, ts, sizeof ts);
    tsi_buf_reset(b);
    if (csv) {
        tsi_buf_printf(b, "%lld,%s,%d,%d,%d,%d,%.6f,%.6f,%d,%d,%d,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f\n",
                       (long long)w->f.intersection_id, ts, w->hour, w->dow, w->f.traffic_volume,
                       w->f.vru_count, w->f.avg_speed, w->f.speed_stddev, w->f.hard_braking_count,
                       w->f.vru_event_count, w->f.vehicle_event_count, w->x.combined,
                       w->x.combined_eb, w->x.vru, w->x.vru_eb, w->x.vehicle, w->x.vehicle_eb);
    } else {
        tsi_jsonw j;
        tsi_jsonw_init(&j, b);
        tsi_jsonw_object(&j);
        tsi_jsonw_kv_int(&j, "intersection_id", w->f.intersection_id);
        tsi_jsonw_kv_str(&j, "timestamp", ts);
        tsi_jsonw_kv_int(&j, "hour_of_day", w->hour);
        tsi_jsonw_kv_int(&j, "day_of_week", w->dow);
        tsi_jsonw_kv_int(&j, "traffic_volume", w->f.traffic_volume);
        tsi_jsonw_kv_int(&j, "vru_count", w->f.vru_count);
        tsi_jsonw_kv_double(&j, "avg_speed", w->f.avg_speed);
        tsi_jsonw_kv_double(&j, "speed_stddev", w->f.speed_stddev);
        tsi_jsonw_kv_int(&j, "hard_braking_count", w->f.hard_braking_count);
        tsi_jsonw_kv_int(&j, "vru_event_count", w->f.vru_event_count);
        tsi_jsonw_kv_int(&j, "vehicle_event_count", w->f.vehicle_event_count);
        tsi_jsonw_kv_double(&j, "combined_index", w->x.combined);
        tsi_jsonw_kv_double(&j, "combined_index_eb", w->x.combined_eb);
        tsi_jsonw_kv_double(&j, "vru_index", w->x.vru);
        tsi_jsonw_kv_double(&j, "vru_index_eb", w->x.vru_eb);
        tsi_jsonw_kv_double(&j, "vehicle_index", w->x.vehicle);
        tsi_jsonw_kv_double(&j, "vehicle_index_eb", w->x.vehicle_eb);
        tsi_jsonw_kv_int(&j, "bsm_messages", w->f.bsm_messages);
        tsi_jsonw_kv_int(&j, "psm_messages", w->f.psm_messages);
        tsi_jsonw_end(&j);
        tsi_buf_putc(b, '\n');
    }
    fwrite(b->data, 1, b->len, out);
}

int tsi_features_run(const tsi_opts *o)
{
    int rc;
    int status = 1;
    tsi_error err = {0};
    char *mapjs = NULL, *line = NULL;
    FILE *in = NULL, *out = stdout;
    tsi_mapdata md = {0};
    tsi_registry *reg = NULL;
    tsi_decoder dec;
    tsi_decoder_init(&dec);
    run R = {0};
    tsi_priors *priors = NULL;
    tsi_buf ob = TSI_BUF_INIT;
    const char *mapdata = tsi_opts_str(o, "mapdata"), *messages = tsi_opts_str(o, "messages");
    if (mapdata == NULL || messages == NULL) {
        fprintf(stderr, "tsi features: --mapdata and --messages are required\n");
        status = 2;
        goto done;
    }
    if (tsi_tz_init(tsi_opts_str(o, "timezone"), &err) < 0) {
        fprintf(stderr, "tsi features: %s: %s\n", err.message, err.detail);
        status = 2;
        goto done;
    }
    tsi_constants consts = tsi_constants_default;
    const char *cpath = tsi_opts_str(o, "constants");
    char csource[600];
    snprintf(csource, sizeof csource, "defaults");
    if (cpath) {
        size_t clen;
        char *cjs = tsi_read_file(cpath, &clen, 1u << 20, &err);
        if (cjs == NULL || tsi_constants_from_json(cjs, clen, &consts, &err) < 0) {
            fprintf(stderr, "tsi features: %s: %s: %s\n", cpath, err.message, err.detail);
            free(cjs);
            goto done;
        }
        free(cjs);
        snprintf(csource, sizeof csource, "%s", cpath);
    }

    size_t maplen;
    mapjs = tsi_read_file(mapdata, &maplen, 1u << 30, &err);
    if (mapjs == NULL || tsi_mapdata_decode(mapjs, maplen, &md, &err) < 0) {
        fprintf(stderr, "tsi features: %s: %s: %s: %s\n", mapdata, tsi_error_name(err.code),
                err.message, err.detail);
        goto done;
    }
    if (md.nrejected)
        fprintf(stderr, "tsi features: %s: %d intersection(s) skipped, first: %s: %s: %s\n",
                mapdata, md.nrejected, tsi_error_name(md.first_error.code), md.first_error.message,
                md.first_error.detail);
    reg = tsi_registry_new(tsi_opts_double(o, "radius"));
    tsi_registry_upsert_all(reg, &md);
    if (tsi_registry_count(reg) == 0) {
        fprintf(stderr, "tsi features: %s: no usable intersection\n", mapdata);
        goto done;
    }
    const char *lmap = tsi_opts_str(o, "location-map");
    if (lmap && load_location_map(reg, lmap, &err) < 0) {
        fprintf(stderr, "tsi features: %s: %s\n", err.message, err.detail);
        goto done;
    }
    const char *opath = tsi_opts_str(o, "output");
    if (opath && strcmp(opath, "-") != 0 && (out = fopen(opath, "w")) == NULL) {
        out = stdout;
        fprintf(stderr, "tsi features: cannot create %s: %s\n", opath, strerror(errno));
        goto done;
    }
    const char *cfpath = tsi_opts_str(o, "conflicts");
    if (cfpath && (R.conflicts = fopen(cfpath, "w")) == NULL) {
        fprintf(stderr, "tsi features: cannot create %s: %s\n", cfpath, strerror(errno));
        goto done;
    }

    tsi_feature_config fc;
    tsi_feature_config_default(&fc);
    fc.grace_ms = tsi_opts_int(o, "grace-seconds") * 1000;
    fc.max_skew_ms = tsi_opts_int(o, "max-skew-seconds") * 1000;
    R.skew_minute_shown = INT64_MIN;
    R.eng = tsi_engine_new(&fc, reg, on_window, &R);

    in = strcmp(messages, "-") == 0 ? stdin : fopen(messages, "rb");
    if (in == NULL) {
        fprintf(stderr, "tsi features: cannot open %s: %s\n", messages, strerror(errno));
        goto done;
    }
    size_t lcap = 0;
    ssize_t len;
    while ((len = getline(&line, &lcap, in)) >= 0) {
        R.line++;
        size_t n = (size_t)len;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            n--;
        size_t sp = 0;
        while (sp < n && (line[sp] == ' ' || line[sp] == '\t'))
            sp++;
        if (sp == n)
            continue; /* blank line */
        R.lines++;
        memset(&err, 0, sizeof err);
        R.frame = line[sp] == '[';
        rc = tsi_frame_decode(&dec, line, n, on_msg, &R, &err);
        if (rc < 0) {
            R.rejected++;
            fprintf(stderr, "line %lld: %s: %s: %s\n", R.line, tsi_error_name(rc), err.message,
                    err.detail);
        }
    }
    if (ferror(in)) {
        fprintf(stderr, "tsi features: error reading %s\n", messages);
        goto done;
    }
    skew_drain(&R);
    tsi_engine_flush(R.eng);

    /* raw indices with the constants; then EB with priors */
    if (!cpath) {
        tsi_constants_acc acc;
        tsi_constants_acc_init(&acc);
        for (size_t i = 0; i < R.n; i++)
            tsi_constants_acc_add(&acc, &R.rows[i].f);
        if (tsi_constants_acc_finish(&acc, tsi_constants_default.k, &consts) == 0)
            snprintf(csource, sizeof csource, "computed from %zu minutes of the input", R.n);
        tsi_constants_acc_free(&acc);
    }
    bool use_priors = strcmp(tsi_opts_str(o, "priors"), "input") == 0;
    priors = tsi_priors_new();
    for (size_t i = 0; i < R.n; i++) {
        row *w = &R.rows[i];
        tsi_index_compute(&w->f, &consts, &w->x);
        double raw[3] = {w->x.vru, w->x.vehicle, w->x.combined};
        tsi_priors_add(priors, w->f.intersection_id, w->hour, raw);
    }
    bool csv = strcmp(tsi_opts_str(o, "format"), "csv") == 0;
    if (csv)
        fputs("intersection_id,timestamp,hour_of_day,day_of_week,traffic_volume,vru_count,"
              "avg_speed,speed_stddev,hard_braking_count,vru_event_count,vehicle_event_count,"
              "combined_index,combined_index_eb,vru_index,vru_index_eb,vehicle_index,"
              "vehicle_index_eb\n",
              out);
    for (size_t i = 0; i < R.n; i++) {
        row *w = &R.rows[i];
        double p[3];
        int src =
            use_priors ? tsi_priors_get(priors, w->f.intersection_id, w->hour, p) : TSI_PRIOR_NONE;
        tsi_index_eb(&w->x, &w->f, consts.k, src == TSI_PRIOR_NONE ? NULL : p, src);
        write_row(out, w, csv, &ob);
    }
    if (fflush(out) != 0 || ferror(out)) {
        fprintf(stderr, "tsi features: error writing the output\n");
        goto done;
    }

    tsi_engine_stats st;
    tsi_engine_get_stats(R.eng, &st);
    fprintf(stderr,
            "summary: lines=%lld messages=%lld decoded=%lld rejected=%lld accepted=%lld "
            "duplicates=%lld late=%lld unmatched=%lld clock_skew=%lld windows=%zu "
            "conflicts=%lld intersections=%d constants=%s\n",
            R.lines, R.messages, R.decoded, R.rejected, st.accepted, st.duplicates, st.late,
            st.unmatched, st.skewed, R.n, R.conflicts_written, tsi_registry_count(reg), csource);
    status = 0;
done:
    if (in && in != stdin)
        fclose(in);
    if (out != stdout && fclose(out) != 0 && status == 0) {
        fprintf(stderr, "tsi features: error writing the output\n");
        status = 1;
    }
    if (R.conflicts && fclose(R.conflicts) != 0 && status == 0) {
        fprintf(stderr, "tsi features: error writing the conflicts file\n");
        status = 1;
    }
    free(line);
    free(mapjs);
    tsi_mapdata_free(&md);
    tsi_engine_free(R.eng);
    tsi_registry_free(reg);
    tsi_decoder_free(&dec);
    tsi_priors_free(priors);
    free(R.rows);
    tsi_buf_free(&ob);
    return status;
}
