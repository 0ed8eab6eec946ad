/* archive/raw.c — see raw.h */
#include "archive/raw.h"

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "archive/pqfile.h"
#include "base/buf.h"
#include "base/log.h"
#include "base/options.h"

static const char *const kind_names[TSI_RAW__COUNT] = {"bsm", "psm", "mapdata", "spat"};

/* ---- the columns of each kind (docs/collector.md) ------------------------------------ */

enum { C_TS, C_I64, C_I32, C_DBL, C_STR };

typedef struct colspec {
    const char *name;
    int type;
} colspec;

static const colspec bsm_cols[] = {
    {"message_time", C_TS}, {"timestamp_ms", C_I64},  {"received_at", C_TS},
    {"rsu_name", C_STR},    {"location_name", C_STR}, {"id", C_I64},
    {"msg_cnt", C_I32},     {"sec_mark", C_I32},      {"lat", C_DBL},
    {"lon", C_DBL},         {"elev", C_DBL},          {"speed", C_DBL},
    {"heading", C_DBL},     {"accel_lon", C_DBL},     {"accel_lat", C_DBL},
    {"accel_vert", C_DBL},  {"accel_yaw", C_DBL},     {"width_m", C_DBL},
    {"length_m", C_DBL},    {"wheel_brakes", C_STR},  {"reject_reason", C_STR},
    {"json", C_STR}};
static const colspec psm_cols[] = {
    {"message_time", C_TS},   {"timestamp_ms", C_I64},  {"received_at", C_TS},
    {"rsu_name", C_STR},      {"location_name", C_STR}, {"id", C_I64},
    {"msg_cnt", C_I32},       {"sec_mark", C_I32},      {"lat", C_DBL},
    {"lon", C_DBL},           {"elev", C_DBL},          {"speed", C_DBL},
    {"heading", C_DBL},       {"accel_lon", C_DBL},     {"accel_lat", C_DBL},
    {"accel_vert", C_DBL},    {"accel_yaw", C_DBL},     {"basic_type", C_I32},
    {"reject_reason", C_STR}, {"json", C_STR}};
static const colspec mapdata_cols[] = {
    {"message_time", C_TS},   {"received_at", C_TS}, {"intersection_id", C_I64},
    {"revision", C_I32},      {"name", C_STR},       {"ref_lat", C_DBL},
    {"ref_lon", C_DBL},       {"lane_count", C_I32}, {"n_intersections", C_I32},
    {"reject_reason", C_STR}, {"json", C_STR}};
static const colspec spat_cols[] = {
    {"message_time", C_TS},     {"received_at", C_TS},    {"intersection_id", C_I64},
    {"revision", C_I32},        {"status", C_I32},        {"n_states", C_I32},
    {"n_intersections", C_I32}, {"reject_reason", C_STR}, {"json", C_STR}};

static const colspec *const kind_cols[TSI_RAW__COUNT] = {bsm_cols, psm_cols, mapdata_cols,
                                                         spat_cols};
static const int kind_ncols[TSI_RAW__COUNT] = {
    (int)(sizeof bsm_cols / sizeof *bsm_cols), (int)(sizeof psm_cols / sizeof *psm_cols),
    (int)(sizeof mapdata_cols / sizeof *mapdata_cols), (int)(sizeof spat_cols / sizeof *spat_cols)};

/* The rows of one kind waiting for their file, row by row: per row `stride` 8-byte cells
 * (the columns, then the hour) and a null mask; a string cell holds the offset of its
 * bytes in `heap`, which starts with their length (8 bytes). */
typedef struct rowbuf {
    const colspec *cols;
    int ncols, stride;
    long long n, cap;
    int64_t *cell;
    uint32_t *nulls;
    char *heap;
    size_t hlen, hcap;
    int col;            /* the next column of the row being written */
    size_t row_heap;    /* the heap's length when that row began */
    long long retry_at; /* after a failed automatic flush: no new try below this many rows */
} rowbuf;

/* What a scan (tsi_raw_<kind>()) reads: rows sel[0..nsel) of b, in order. Set only while
 * a file of that kind is written (one at a time: see the writer below). */
typedef struct scan_ctx {
    int kind;
    const struct rowbuf *b;
    const int64_t *sel;
    long long nsel;
} scan_ctx;

/* The background writer: one type's full buffer at a time, written on its own thread and
 * DuckDB connection while the pipeline fills a fresh buffer, so the pipeline does not
 * stop for a file's encoding and fsyncs. */
enum { JOB_IDLE, JOB_PENDING, JOB_DONE, JOB_QUIT };

struct tsi_archive {
    char root[PATH_MAX];
    duckdb_database db;
    duckdb_connection con;
    rowbuf buf[TSI_RAW__COUNT];
    scan_ctx scan[TSI_RAW__COUNT];
    tsi_archive_limits lim;
    tsi_archive_stats auto_st; /* published at the bounds since the last flush */
    /* the writer thread and its job (guarded by mu) */
    pthread_t thread;
    int thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    duckdb_connection wcon;
    int job_state, job_kind, job_rc;
    rowbuf job;               /* the rows being written (owned by the writer while PENDING) */
    tsi_archive_stats job_st; /* what it published */
    tsi_error job_err;
};

const char *tsi_raw_kind_name(tsi_raw_kind k)
{
    return (k >= 0 && k < TSI_RAW__COUNT) ? kind_names[k] : "?";
}

void tsi_archive_root(char *buf, size_t len)
{
    const char *d = getenv("TSI_ARCHIVE_DIR");
    if (d && *d)
        snprintf(buf, len, "%s", d);
    else
        snprintf(buf, len, "%s/archive", tsi_home());
}

duckdb_connection tsi_archive_duck(tsi_archive *a)
{
    return a->con;
}

static void rowbuf_free(rowbuf *b)
{
    free(b->cell);
    free(b->nulls);
    free(b->heap);
    b->cell = NULL;
    b->nulls = NULL;
    b->heap = NULL;
    b->n = b->cap = 0;
    b->hlen = b->hcap = 0;
}

void tsi_archive_close(tsi_archive *a)
{
    if (!a)
        return;
    if (a->thread_started) {
        pthread_mutex_lock(&a->mu);
        while (a->job_state == JOB_PENDING)
            pthread_cond_wait(&a->cv, &a->mu);
        a->job_state = JOB_QUIT;
        pthread_cond_broadcast(&a->cv);
        pthread_mutex_unlock(&a->mu);
        pthread_join(a->thread, NULL);
    }
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    for (int k = 0; k < TSI_RAW__COUNT; k++)
        rowbuf_free(&a->buf[k]);
    rowbuf_free(&a->job);
    if (a->wcon)
        duckdb_disconnect(&a->wcon);
    if (a->con)
        duckdb_disconnect(&a->con);
    if (a->db)
        duckdb_close(&a->db);
    free(a);
}

/* ---- the scans DuckDB's COPY reads: tsi_raw_bsm(), tsi_raw_psm(), … ---------------------- */

static duckdb_type duck_type(int t)
{
    switch (t) {
    case C_TS:
        return DUCKDB_TYPE_TIMESTAMP_TZ;
    case C_I64:
        return DUCKDB_TYPE_BIGINT;
    case C_I32:
        return DUCKDB_TYPE_INTEGER;
    case C_DBL:
        return DUCKDB_TYPE_DOUBLE;
    default:
        return DUCKDB_TYPE_VARCHAR;
    }
}

static void scan_bind(duckdb_bind_info info)
{
    const scan_ctx *sc = duckdb_bind_get_extra_info(info);
    const colspec *cols = kind_cols[sc->kind];
    for (int c = 0; c < kind_ncols[sc->kind]; c++) {
        duckdb_logical_type t = duckdb_create_logical_type(duck_type(cols[c].type));
        duckdb_bind_add_result_column(info, cols[c].name, t);
        duckdb_destroy_logical_type(&t);
    }
}

static void scan_init(duckdb_init_info info)
{
    long long *pos = malloc(sizeof *pos);
    if (!pos) {
        duckdb_init_set_error(info, "out of memory");
        return;
    }
    *pos = 0;
    duckdb_init_set_init_data(info, pos, free);
    duckdb_init_set_max_threads(info, 1);
}

/* the next (up to) 2,048 selected rows, column by column */
static void scan_next(duckdb_function_info info, duckdb_data_chunk out)
{
    const scan_ctx *sc = duckdb_function_get_extra_info(info);
    long long *pos = duckdb_function_get_init_data(info);
    const rowbuf *b = sc->b;
    const colspec *cols = kind_cols[sc->kind];
    long long left = sc->nsel - *pos, vs = (long long)duckdb_vector_size();
    idx_t cnt = (idx_t)(left < vs ? left : vs);
    const int64_t *sel = sc->sel + *pos;
    for (int c = 0; c < b->ncols; c++) {
        duckdb_vector v = duckdb_data_chunk_get_vector(out, (idx_t)c);
        uint64_t *valid = NULL;
        uint32_t bit = 1u << c;
        void *data = duckdb_vector_get_data(v);
        int type = cols[c].type;
        for (idx_t r = 0; r < cnt; r++) {
            int64_t row = sel[r];
            if (b->nulls[row] & bit) {
                if (!valid) {
                    duckdb_vector_ensure_validity_writable(v);
                    valid = duckdb_vector_get_validity(v);
                }
                duckdb_validity_set_row_invalid(valid, r);
                continue;
            }
            int64_t x = b->cell[row * b->stride + c];
            if (type == C_STR) {
                uint64_t len;
                memcpy(&len, b->heap + x, sizeof len);
                duckdb_vector_assign_string_element_len(v, r, b->heap + x + sizeof len, (idx_t)len);
            } else if (type == C_I32) {
                ((int32_t *)data)[r] = (int32_t)x;
            } else { /* timestamps (µs), integers, a double's bits */
                ((int64_t *)data)[r] = x;
            }
        }
    }
    duckdb_data_chunk_set_size(out, cnt);
    *pos += (long long)cnt;
}

static int register_scans(tsi_archive *a, tsi_error *err)
{
    for (int k = 0; k < TSI_RAW__COUNT; k++) {
        a->scan[k] = (scan_ctx){k, NULL, NULL, 0};
        char name[32];
        snprintf(name, sizeof name, "tsi_raw_%s", kind_names[k]);
        duckdb_table_function f = duckdb_create_table_function();
        duckdb_table_function_set_name(f, name);
        duckdb_table_function_set_extra_info(f, &a->scan[k], NULL);
        duckdb_table_function_set_bind(f, scan_bind);
        duckdb_table_function_set_init(f, scan_init);
        duckdb_table_function_set_function(f, scan_next);
        duckdb_state st = duckdb_register_table_function(a->con, f);
        duckdb_destroy_table_function(&f);
        if (st == DuckDBError)
            return tsi_error_set(err, TSI_E_PARQUET, "cannot register a DuckDB table function",
                                 "%s", name);
    }
    return 0;
}

void tsi_archive_set_limits(tsi_archive *a, const tsi_archive_limits *l)
{
    tsi_archive_limits d = {TSI_ARCHIVE_MAX_ROWS, TSI_ARCHIVE_MAX_BYTES,
                            TSI_ARCHIVE_ROW_GROUP_ROWS};
    if (l) {
        if (l->max_rows > 0)
            d.max_rows = l->max_rows;
        if (l->max_bytes > 0)
            d.max_bytes = l->max_bytes;
        if (l->row_group_rows > 0)
            d.row_group_rows = l->row_group_rows;
    }
    a->lim = d;
}

static void *writer_main(void *arg);

int tsi_archive_open(tsi_archive **out, const char *root, tsi_error *err)
{
    *out = NULL;
    int rc = tsi_mkdirs(root, err);
    if (rc < 0)
        return rc;
    tsi_archive *a = calloc(1, sizeof *a);
    if (!a)
        return tsi_error_set(err, TSI_E_NOMEM, "out of memory", NULL);
    snprintf(a->root, sizeof a->root, "%s", root);
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    tsi_archive_set_limits(a, NULL);
    for (int k = 0; k < TSI_RAW__COUNT; k++) {
        a->buf[k].cols = kind_cols[k];
        a->buf[k].ncols = kind_ncols[k];
        a->buf[k].stride = kind_ncols[k] + 1; /* + the hour */
    }
    duckdb_config cfg = NULL;
    char *open_err = NULL;
    duckdb_create_config(&cfg);
    /* one thread: the scans feeding COPY are single-threaded (scan_init), so a second
     * DuckDB thread only polled for tasks — its scheduling (ExecuteTask, the task queue,
     * mutexes) was ~8 % of the collector's CPU at rush hour (docs/collector.md, sixth pass) */
    duckdb_set_config(cfg, "threads", "1");
    /* DuckDB's allocator hands freed memory back after a query past this much: a written
     * file's buffers do not stay resident until the next one */
    duckdb_set_config(cfg, "allocator_flush_threshold", "16MB");
    if (duckdb_open_ext(NULL, &a->db, cfg, &open_err) == DuckDBError) {
        tsi_error_set(err, TSI_E_PARQUET, "cannot open DuckDB", "%s", open_err ? open_err : "?");
        duckdb_free(open_err);
        duckdb_destroy_config(&cfg);
        free(a);
        return TSI_E_PARQUET;
    }
    duckdb_destroy_config(&cfg);
    if (duckdb_connect(a->db, &a->con) == DuckDBError) {
        tsi_archive_close(a);
        return tsi_error_set(err, TSI_E_PARQUET, "cannot connect to DuckDB", NULL);
    }
    if ((rc = register_scans(a, err)) < 0) {
        tsi_archive_close(a);
        return rc;
    }
    if (duckdb_connect(a->db, &a->wcon) == DuckDBError) {
        tsi_archive_close(a);
        return tsi_error_set(err, TSI_E_PARQUET, "cannot connect to DuckDB", "writer");
    }
    if (pthread_create(&a->thread, NULL, writer_main, a) != 0) {
        tsi_archive_close(a);
        return tsi_error_set(err, TSI_E_IO, "cannot start the raw archive writer", NULL);
    }
    a->thread_started = 1;
    *out = a;
    return 0;
}

/* ---- rows: NAN and sentinels become NULL ------------------------------------------------ */

/* room for one more row (no null yet) */
static int row_begin(rowbuf *b)
{
    if (b->n == b->cap) {
        long long nc = b->cap ? b->cap * 2 : 1024;
        int64_t *cell = realloc(b->cell, sizeof(int64_t) * (size_t)b->stride * (size_t)nc);
        if (!cell)
            return TSI_E_NOMEM;
        b->cell = cell;
        uint32_t *nulls = realloc(b->nulls, sizeof(uint32_t) * (size_t)nc);
        if (!nulls)
            return TSI_E_NOMEM;
        b->nulls = nulls;
        b->cap = nc;
    }
    b->nulls[b->n] = 0;
    b->col = 0;
    b->row_heap = b->hlen;
    return 0;
}

static void put_raw(rowbuf *b, int64_t v)
{
    b->cell[b->n * b->stride + b->col++] = v;
}
static void put_null(rowbuf *b)
{
    b->nulls[b->n] |= 1u << b->col;
    put_raw(b, 0);
}
static void put_ts(rowbuf *b, int64_t ms)
{
    put_raw(b, ms * 1000);
}
static void put_dbl(rowbuf *b, double v)
{
    if (isfinite(v)) {
        int64_t bits;
        memcpy(&bits, &v, sizeof bits);
        put_raw(b, bits);
    } else {
        put_null(b);
    }
}
static void put_i64(rowbuf *b, int64_t v, int null)
{
    if (null)
        put_null(b);
    else
        put_raw(b, v);
}
static void put_i32(rowbuf *b, int32_t v, int null)
{
    if (null)
        put_null(b);
    else
        put_raw(b, v);
}

/* the length of the UTF-8 sequence s[i..] starts, 0 when it is not one (or a NUL) */
static size_t utf8_seq(const char *s, size_t i, size_t n)
{
    unsigned char c = (unsigned char)s[i];
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || c == 0 || i + len > n)
        return 0;
    for (size_t t = 1; t < len; t++)
        if (((unsigned char)s[i + t] >> 6) != 2)
            return 0;
    return len;
}

/* true when s[0..n) is valid UTF-8 without NUL: DuckDB takes it as it is */
static int utf8_clean(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        /* ASCII eight bytes at a time */
        if (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            /* no high bit and no zero byte in the word */
            if (!(w & 0x8080808080808080ULL) &&
                !((w - 0x0101010101010101ULL) & ~w & 0x8080808080808080ULL)) {
                i += 8;
                continue;
            }
        }
        size_t len = utf8_seq(s, i, n);
        if (len == 0)
            return 0;
        i += len;
    }
    return 1;
}

/* Copies s[0..n) into the heap as a string cell. DuckDB wants valid UTF-8: bytes that are
 * not (and NUL) are kept as escaped text "\xNN" instead of losing the message. */
static int put_text(rowbuf *b, const char *s, size_t n)
{
    if (!s) {
        s = "";
        n = 0;
    }
    int clean = utf8_clean(s, n);
    size_t room = sizeof(uint64_t) + (clean ? n : n * 4);
    if (b->hlen + room > b->hcap) {
        size_t nc = b->hcap ? b->hcap : 65536;
        while (nc < b->hlen + room)
            nc *= 2;
        char *h = realloc(b->heap, nc);
        if (!h) {
            put_null(b);
            return TSI_E_NOMEM;
        }
        b->heap = h;
        b->hcap = nc;
    }
    size_t at = b->hlen;
    char *o = b->heap + at + sizeof(uint64_t);
    uint64_t len = 0;
    if (clean) {
        if (n)
            memcpy(o, s, n);
        len = n;
    } else {
        static const char hex[] = "0123456789abcdef";
        for (size_t i = 0; i < n;) {
            size_t l = utf8_seq(s, i, n);
            if (l) {
                memcpy(o + len, s + i, l);
                len += l;
                i += l;
            } else {
                unsigned char c = (unsigned char)s[i++];
                o[len++] = '\\';
                o[len++] = 'x';
                o[len++] = hex[c >> 4];
                o[len++] = hex[c & 15];
            }
        }
    }
    memcpy(b->heap + at, &len, sizeof len);
    b->hlen = at + sizeof(uint64_t) + (size_t)len;
    put_raw(b, (int64_t)at);
    return 0;
}
static int put_str(rowbuf *b, const char *s, int empty_is_null)
{
    if (!s || (empty_is_null && !*s)) {
        put_null(b);
        return 0;
    }
    return put_text(b, s, strlen(s));
}

static int64_t hour_of(int64_t ms)
{
    return ms >= 0 ? ms / 3600000 : (ms - 3599999) / 3600000;
}

static void collect_job(tsi_archive *a, int wait);
static void start_job(tsi_archive *a, int k);

static long long buf_bytes(const rowbuf *b)
{
    return b->n * (long long)(b->stride * 8 + 4) + (long long)b->hlen;
}

/* Ends the row (its hour last) or, when a string could not be copied (out of memory),
 * drops it whole. A kind whose rows pass a bound is written out now: a file per hour
 * present, so memory is bounded by the bound, not by the flush interval. */
static int end_row(tsi_archive *a, int k, int64_t hour, int rc, tsi_error *err)
{
    rowbuf *b = &a->buf[k];
    if (rc < 0) {
        b->hlen = b->row_heap;
        return tsi_error_set(err, TSI_E_NOMEM, "out of memory", "raw %s row", kind_names[k]);
    }
    put_raw(b, hour);
    b->n++;
    /* the rows bound is per type; the bytes bound is for all types together, and then the
     * largest type is written */
    int due = b->n >= a->lim.max_rows && b->n >= b->retry_at;
    if (!due) {
        long long total = 0, most = 0;
        for (int j = 0; j < TSI_RAW__COUNT; j++) {
            long long x = buf_bytes(&a->buf[j]);
            total += x;
            if (x > most && a->buf[j].n > 0 && a->buf[j].n >= a->buf[j].retry_at) {
                most = x;
                k = j;
            }
        }
        due = total >= a->lim.max_bytes && most > 0;
        b = &a->buf[k];
    }
    if (due) {
        collect_job(a, 1); /* one file at a time: wait for the one being written */
        b = &a->buf[k];
        if (b->n > 0 && b->n >= b->retry_at)
            start_job(a, k);
    }
    return 0;
}

int tsi_archive_add_msg(tsi_archive *a, tsi_raw_kind kind, const tsi_msg *m,
                        const char *reject_reason, const char *json, size_t len,
                        int64_t received_ms, tsi_error *err)
{
    if (kind != TSI_RAW_BSM && kind != TSI_RAW_PSM)
        return tsi_error_set(err, TSI_E_INVALID, "not a BSM/PSM archive kind", "%d", (int)kind);
    if (m && ((kind == TSI_RAW_BSM) != (m->type == TSI_MSG_BSM)))
        return tsi_error_set(err, TSI_E_INVALID, "message type does not match the archive kind",
                             "%s", kind_names[kind]);
    rowbuf *b = &a->buf[kind];
    if (row_begin(b) < 0)
        return tsi_error_set(err, TSI_E_NOMEM, "out of memory", NULL);
    int64_t t = m ? m->timestamp_ms : received_ms;
    int rc = 0;
    put_ts(b, t);
    put_i64(b, m ? m->timestamp_ms : 0, !m);
    put_ts(b, received_ms);
    rc |= put_str(b, m ? m->rsu_name : NULL, 1);
    rc |= put_str(b, m ? m->location_name : NULL, 1);
    put_i64(b, m ? m->id : 0, !m);
    put_i32(b, m ? m->msg_cnt : 0, !m || m->msg_cnt < 0);
    put_i32(b, m ? m->sec_mark : 0, !m || m->sec_mark == TSI_SECMARK_UNAVAILABLE);
    put_dbl(b, m ? m->lat : NAN);
    put_dbl(b, m ? m->lon : NAN);
    put_dbl(b, m ? m->elev : NAN);
    put_dbl(b, m ? m->speed : NAN);
    put_dbl(b, m ? m->heading : NAN);
    put_dbl(b, m ? m->accel_lon : NAN);
    put_dbl(b, m ? m->accel_lat : NAN);
    put_dbl(b, m ? m->accel_vert : NAN);
    put_dbl(b, m ? m->accel_yaw : NAN);
    if (kind == TSI_RAW_BSM) {
        put_dbl(b, m ? m->width_m : NAN);
        put_dbl(b, m ? m->length_m : NAN);
        rc |= put_str(b, m ? m->wheel_brakes : NULL, 1);
    } else {
        put_i32(b, m ? m->basic_type : 0, !m || m->basic_type < 0);
    }
    rc |= put_str(b, m ? NULL : (reject_reason ? reject_reason : "rejected"), 1);
    rc |= put_text(b, json, len);
    return end_row(a, kind, hour_of(t), rc, err);
}

int tsi_archive_add_mapdata(tsi_archive *a, const tsi_mapdata *md, const char *reject_reason,
                            const char *json, size_t len, int64_t received_ms, tsi_error *err)
{
    rowbuf *b = &a->buf[TSI_RAW_MAPDATA];
    if (row_begin(b) < 0)
        return tsi_error_set(err, TSI_E_NOMEM, "out of memory", NULL);
    const tsi_map_intersection *mi = (md && md->n > 0) ? &md->items[0] : NULL;
    int rc = 0;
    put_ts(b, received_ms);
    put_ts(b, received_ms);
    put_i64(b, mi ? mi->id : 0, !mi);
    put_i32(b, mi ? mi->revision : 0, !mi);
    rc |= put_str(b, mi ? mi->name : NULL, 1);
    put_dbl(b, mi ? mi->ref_lat : NAN);
    put_dbl(b, mi ? mi->ref_lon : NAN);
    put_i32(b, mi ? mi->vehicle_lanes : 0, !mi);
    put_i32(b, md ? md->n : 0, !md);
    rc |= put_str(b, md ? NULL : (reject_reason ? reject_reason : "rejected"), 1);
    rc |= put_text(b, json, len);
    return end_row(a, TSI_RAW_MAPDATA, hour_of(received_ms), rc, err);
}

int tsi_archive_add_spat(tsi_archive *a, const tsi_spat *sp, const char *reject_reason,
                         const char *json, size_t len, int64_t received_ms, tsi_error *err)
{
    rowbuf *b = &a->buf[TSI_RAW_SPAT];
    if (row_begin(b) < 0)
        return tsi_error_set(err, TSI_E_NOMEM, "out of memory", NULL);
    const tsi_spat_intersection *si = (sp && sp->n > 0) ? &sp->items[0] : NULL;
    int rc = 0;
    put_ts(b, received_ms);
    put_ts(b, received_ms);
    put_i64(b, si ? si->id : 0, !si);
    put_i32(b, si ? si->revision : 0, !si);
    put_i32(b, si ? si->status : 0, !si || si->status < 0);
    put_i32(b, si ? si->nstates : 0, !si);
    put_i32(b, sp ? sp->n : 0, !sp);
    rc |= put_str(b, sp ? NULL : (reject_reason ? reject_reason : "rejected"), 1);
    rc |= put_text(b, json, len);
    return end_row(a, TSI_RAW_SPAT, hour_of(received_ms), rc, err);
}

long long tsi_archive_pending(const tsi_archive *a)
{
    long long n = 0;
    for (int k = 0; k < TSI_RAW__COUNT; k++)
        n += a->buf[k].n;
    pthread_mutex_t *mu = (pthread_mutex_t *)&a->mu;
    pthread_mutex_lock(mu);
    if (a->job_state == JOB_PENDING || a->job_state == JOB_DONE)
        n += a->job.n; /* being written, or left by a failed write */
    pthread_mutex_unlock(mu);
    return n;
}

/* ---- flush: a file per hour present, its rows in message-time order ---------------------- */

typedef struct sortkey {
    int64_t t, row;
} sortkey;

static int cmp_key(const void *x, const void *y)
{
    const sortkey *p = x, *q = y;
    if (p->t != q->t)
        return p->t < q->t ? -1 : 1;
    return (p->row > q->row) - (p->row < q->row);
}

static int in_set(const int64_t *set, int n, int64_t v)
{
    for (int i = 0; i < n; i++)
        if (set[i] == v)
            return 1;
    return 0;
}

/* Keeps the rows whose hour is in keep[0..nkeep), in order. Strings were appended in row
 * and column order, so moving each kept one down never overwrites one still to move. */
static void keep_rows(rowbuf *b, const int64_t *keep, int nkeep)
{
    long long w = 0;
    size_t hw = 0;
    for (long long r = 0; r < b->n; r++) {
        int64_t *cell = b->cell + r * b->stride;
        if (!in_set(keep, nkeep, cell[b->ncols]))
            continue;
        int64_t *dst = b->cell + w * b->stride;
        if (dst != cell)
            memmove(dst, cell, sizeof(int64_t) * (size_t)b->stride);
        b->nulls[w] = b->nulls[r];
        for (int c = 0; c < b->ncols; c++) {
            if (b->cols[c].type != C_STR || ((b->nulls[w] >> c) & 1u))
                continue;
            uint64_t len;
            memcpy(&len, b->heap + dst[c], sizeof len);
            size_t sz = sizeof len + (size_t)len;
            if ((size_t)dst[c] != hw)
                memmove(b->heap + hw, b->heap + dst[c], sz);
            dst[c] = (int64_t)hw;
            hw += sz;
        }
        w++;
    }
    b->n = w;
    b->hlen = hw;
}

/* Writes every row of b (kind k) through con: a file per hour, published (pqfile.h) before
 * its rows are forgotten; the rows of an hour whose file failed stay in b. */
static int flush_buf(tsi_archive *a, duckdb_connection con, rowbuf *b, int k, tsi_archive_stats *st,
                     tsi_error *err)
{
    if (b->n == 0)
        return 0;
    /* the hours present, in order (few: usually one, two around the hour) */
    int nh = 0, caph = 8;
    int64_t *hours = malloc(sizeof *hours * (size_t)caph), *failed = NULL;
    sortkey *keys = malloc(sizeof *keys * (size_t)b->n);
    int64_t *sel = malloc(sizeof *sel * (size_t)b->n);
    int nfailed = 0, first_rc = 0;
    if (!hours || !keys || !sel)
        goto nomem;
    int64_t last = 0;
    for (long long r = 0; r < b->n; r++) {
        int64_t h = b->cell[r * b->stride + b->ncols];
        if ((nh > 0 && h == last) || in_set(hours, nh, h)) {
            last = h;
            continue;
        }
        if (nh == caph) {
            int64_t *nhours = realloc(hours, sizeof *hours * (size_t)(caph *= 2));
            if (!nhours)
                goto nomem;
            hours = nhours;
        }
        hours[nh++] = last = h;
    }
    failed = malloc(sizeof *failed * (size_t)nh);
    if (!failed)
        goto nomem;
    for (int i = 1; i < nh; i++) /* insertion sort: few hours */
        for (int j = i; j > 0 && hours[j - 1] > hours[j]; j--) {
            int64_t t = hours[j];
            hours[j] = hours[j - 1];
            hours[j - 1] = t;
        }
    char opts[64];
    snprintf(opts, sizeof opts, "ROW_GROUP_SIZE %lld, COMPRESSION_LEVEL 1", a->lim.row_group_rows);
    char sql[64];
    snprintf(sql, sizeof sql, "SELECT * FROM tsi_raw_%s()", kind_names[k]);
    for (int i = 0; i < nh; i++) {
        long long n = 0;
        for (long long r = 0; r < b->n; r++)
            if (b->cell[r * b->stride + b->ncols] == hours[i])
                keys[n++] = (sortkey){b->cell[r * b->stride], r};
        qsort(keys, (size_t)n, sizeof *keys, cmp_key);
        for (long long j = 0; j < n; j++)
            sel[j] = keys[j].row;
        time_t hs = (time_t)(hours[i] * 3600);
        struct tm tm;
        gmtime_r(&hs, &tm);
        char dir[PATH_MAX], start[32], path[PATH_MAX];
        snprintf(dir, sizeof dir, "%s/raw/%s/%04d/%02d/%02d/%02d", a->root, kind_names[k],
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour);
        tsi_pq_stamp(keys[0].t / 1000, start, sizeof start);
        a->scan[k].b = b;
        a->scan[k].sel = sel;
        a->scan[k].nsel = n;
        tsi_error e = {0};
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        long long rows =
            tsi_pq_write_opts(con, sql, opts, dir, kind_names[k], start, path, sizeof path, &e);
        a->scan[k].b = NULL;
        a->scan[k].sel = NULL;
        a->scan[k].nsel = 0;
        if (rows >= 0 && rows != n) {
            /* cannot be: the file holds other than the rows handed over; keep them */
            tsi_error_set(&e, TSI_E_PARQUET, "raw file row count differs", "%s: %lld of %lld", path,
                          rows, n);
            rows = TSI_E_PARQUET;
        }
        if (rows < 0) {
            tsi_warn("archive", "raw flush failed kind=%s hour=%lld err=%s detail=%s",
                     kind_names[k], (long long)hours[i], tsi_error_name(e.code), e.detail);
            failed[nfailed++] = hours[i];
            if (!first_rc) {
                first_rc = (int)rows;
                if (err)
                    *err = e;
            }
            continue;
        }
        if (st) {
            st->files++;
            st->rows[k] += rows;
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        tsi_debug("archive", "wrote %s rows=%lld ms=%.0f", path, rows,
                  (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
    }
    keep_rows(b, failed, nfailed);
    free(hours);
    free(failed);
    free(keys);
    free(sel);
    return first_rc;
nomem:
    free(hours);
    free(failed);
    free(keys);
    free(sel);
    return tsi_error_set(err, TSI_E_NOMEM, "out of memory", "raw %s flush", kind_names[k]);
}

/* ---- the writer thread ------------------------------------------------------------------ */

static void *writer_main(void *arg)
{
    tsi_archive *a = arg;
    pthread_mutex_lock(&a->mu);
    for (;;) {
        while (a->job_state != JOB_PENDING && a->job_state != JOB_QUIT)
            pthread_cond_wait(&a->cv, &a->mu);
        if (a->job_state == JOB_QUIT)
            break;
        int k = a->job_kind;
        pthread_mutex_unlock(&a->mu);
        tsi_archive_stats st = {0};
        tsi_error e = {0};
        int rc = flush_buf(a, a->wcon, &a->job, k, &st, &e);
        pthread_mutex_lock(&a->mu);
        a->job_rc = rc;
        a->job_st = st;
        a->job_err = e;
        a->job_state = JOB_DONE;
        pthread_cond_broadcast(&a->cv);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

/* Appends every row of src to dst (the same kind). */
static int append_rows(rowbuf *dst, const rowbuf *src)
{
    for (long long r = 0; r < src->n; r++) {
        if (row_begin(dst) < 0)
            return TSI_E_NOMEM;
        const int64_t *cell = src->cell + r * src->stride;
        uint32_t nulls = src->nulls[r];
        for (int c = 0; c < src->ncols; c++) {
            if ((nulls >> c) & 1u) {
                put_null(dst);
            } else if (src->cols[c].type == C_STR) {
                uint64_t len;
                memcpy(&len, src->heap + cell[c], sizeof len);
                if (put_text(dst, src->heap + cell[c] + sizeof len, (size_t)len) < 0) {
                    dst->hlen = dst->row_heap;
                    return TSI_E_NOMEM;
                }
            } else {
                put_raw(dst, cell[c]);
            }
        }
        put_raw(dst, cell[src->ncols]);
        dst->n++;
    }
    return 0;
}

/* Takes the writer's result when it is done (waits for it when `wait`): its files are
 * counted; the rows of a failed file go back to their buffer, tried again at the next
 * flush (or once the buffer has grown by half). */
static void collect_job(tsi_archive *a, int wait)
{
    pthread_mutex_lock(&a->mu);
    while (wait && a->job_state == JOB_PENDING)
        pthread_cond_wait(&a->cv, &a->mu);
    if (a->job_state != JOB_DONE) {
        pthread_mutex_unlock(&a->mu);
        return;
    }
    int k = a->job_kind, rc = a->job_rc;
    tsi_archive_stats st = a->job_st;
    tsi_error e = a->job_err;
    a->job_state = JOB_IDLE;
    pthread_mutex_unlock(&a->mu);
    a->auto_st.files += st.files;
    for (int j = 0; j < TSI_RAW__COUNT; j++)
        a->auto_st.rows[j] += st.rows[j];
    if (rc < 0) {
        rowbuf *b = &a->buf[k];
        a->auto_st.flush_errors++;
        long long kept = a->job.n;
        if (append_rows(b, &a->job) < 0)
            tsi_err("archive", "raw rows lost: out of memory kind=%s rows=%lld", kind_names[k],
                    kept);
        a->job.n = 0;
        a->job.hlen = 0;
        b->retry_at = b->n + (b->n / 2 > 1024 ? b->n / 2 : 1024);
        tsi_warn("archive",
                 "raw file not written, rows kept for the next flush kind=%s rows=%lld err=%s "
                 "detail=%s",
                 kind_names[k], kept, tsi_error_name(e.code), e.detail);
    }
}

/* Hands buffer k to the writer (idle: collect_job first) and gives k the writer's empty
 * buffer, whose memory is reused when it held the same kind. */
static void start_job(tsi_archive *a, int k)
{
    if (a->job.cols != kind_cols[k]) {
        rowbuf_free(&a->job);
        a->job.cols = kind_cols[k];
        a->job.ncols = kind_ncols[k];
        a->job.stride = kind_ncols[k] + 1;
    }
    rowbuf empty = a->job;
    empty.n = 0;
    empty.hlen = 0;
    empty.retry_at = 0;
    pthread_mutex_lock(&a->mu);
    a->job = a->buf[k];
    a->job_kind = k;
    a->job_state = JOB_PENDING;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    a->buf[k] = empty;
}

int tsi_archive_flush(tsi_archive *a, tsi_archive_stats *stats, tsi_error *err)
{
    collect_job(a, 1);
    tsi_archive_stats st = a->auto_st;
    memset(&a->auto_st, 0, sizeof a->auto_st);
    int first = 0;
    for (int k = 0; k < TSI_RAW__COUNT; k++) {
        tsi_error e = {0};
        int rc = flush_buf(a, a->con, &a->buf[k], k, &st, &e);
        if (rc < 0 && !first) {
            first = rc;
            if (err)
                *err = e;
        }
        if (rc == 0)
            a->buf[k].retry_at = 0;
    }
    if (stats)
        *stats = st;
    return first;
}
