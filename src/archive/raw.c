/* archive/raw.c — see raw.h */
#include "archive/raw.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "archive/pqfile.h"
#include "base/buf.h"
#include "base/log.h"
#include "base/options.h"

static const char *const kind_names[TSI_RAW__COUNT] = {"bsm", "psm", "mapdata", "spat"};

static const char *const kind_ddl[TSI_RAW__COUNT] = {
    "CREATE TABLE bsm (message_time TIMESTAMPTZ NOT NULL, timestamp_ms BIGINT, "
    "received_at TIMESTAMPTZ NOT NULL, rsu_name VARCHAR, location_name VARCHAR, id BIGINT, "
    "msg_cnt INTEGER, sec_mark INTEGER, lat DOUBLE, lon DOUBLE, elev DOUBLE, speed DOUBLE, "
    "heading DOUBLE, accel_lon DOUBLE, accel_lat DOUBLE, accel_vert DOUBLE, accel_yaw DOUBLE, "
    "width_m DOUBLE, length_m DOUBLE, wheel_brakes VARCHAR, reject_reason VARCHAR, "
    "json VARCHAR NOT NULL, hour_key BIGINT NOT NULL)",
    "CREATE TABLE psm (message_time TIMESTAMPTZ NOT NULL, timestamp_ms BIGINT, "
    "received_at TIMESTAMPTZ NOT NULL, rsu_name VARCHAR, location_name VARCHAR, id BIGINT, "
    "msg_cnt INTEGER, sec_mark INTEGER, lat DOUBLE, lon DOUBLE, elev DOUBLE, speed DOUBLE, "
    "heading DOUBLE, accel_lon DOUBLE, accel_lat DOUBLE, accel_vert DOUBLE, accel_yaw DOUBLE, "
    "basic_type INTEGER, reject_reason VARCHAR, json VARCHAR NOT NULL, hour_key BIGINT NOT NULL)",
    "CREATE TABLE mapdata (message_time TIMESTAMPTZ NOT NULL, received_at TIMESTAMPTZ NOT NULL, "
    "intersection_id BIGINT, revision INTEGER, name VARCHAR, ref_lat DOUBLE, ref_lon DOUBLE, "
    "lane_count INTEGER, n_intersections INTEGER, reject_reason VARCHAR, json VARCHAR NOT NULL, "
    "hour_key BIGINT NOT NULL)",
    "CREATE TABLE spat (message_time TIMESTAMPTZ NOT NULL, received_at TIMESTAMPTZ NOT NULL, "
    "intersection_id BIGINT, revision INTEGER, status INTEGER, n_states INTEGER, "
    "n_intersections INTEGER, reject_reason VARCHAR, json VARCHAR NOT NULL, "
    "hour_key BIGINT NOT NULL)",
};

struct tsi_archive {
    char root[PATH_MAX];
    duckdb_database db;
    duckdb_connection con;
    duckdb_appender app[TSI_RAW__COUNT];
    long long pending[TSI_RAW__COUNT];
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

void tsi_archive_close(tsi_archive *a)
{
    if (!a)
        return;
    for (int k = 0; k < TSI_RAW__COUNT; k++)
        if (a->app[k])
            duckdb_appender_destroy(&a->app[k]);
    if (a->con)
        duckdb_disconnect(&a->con);
    if (a->db)
        duckdb_close(&a->db);
    free(a);
}

static int app_error(tsi_archive *a, int k, const char *what, tsi_error *err)
{
    const char *m = a->app[k] ? duckdb_appender_error(a->app[k]) : NULL;
    return tsi_error_set(err, TSI_E_PARQUET, "DuckDB appender failed", "%s %s: %s", what,
                         kind_names[k], m ? m : "?");
}

static int make_appender(tsi_archive *a, int k, tsi_error *err)
{
    if (a->app[k])
        duckdb_appender_destroy(&a->app[k]);
    if (duckdb_appender_create(a->con, NULL, kind_names[k], &a->app[k]) == DuckDBError)
        return app_error(a, k, "create", err);
    return 0;
}

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
    duckdb_config cfg = NULL;
    char *open_err = NULL;
    duckdb_create_config(&cfg);
    duckdb_set_config(cfg, "threads", "2");
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
    for (int k = 0; k < TSI_RAW__COUNT; k++) {
        if ((rc = tsi_duck_exec(a->con, kind_ddl[k], NULL, err)) < 0 ||
            (rc = make_appender(a, k, err)) < 0) {
            tsi_archive_close(a);
            return rc;
        }
    }
    *out = a;
    return 0;
}

/* ---- typed appends: NAN and sentinels become NULL ------------------------------------ */

static void put_ts(duckdb_appender ap, int64_t ms)
{
    duckdb_timestamp t = {ms * 1000};
    duckdb_append_timestamp(ap, t);
}
static void put_dbl(duckdb_appender ap, double v)
{
    if (isfinite(v))
        duckdb_append_double(ap, v);
    else
        duckdb_append_null(ap);
}
static void put_i64(duckdb_appender ap, int64_t v, int null)
{
    if (null)
        duckdb_append_null(ap);
    else
        duckdb_append_int64(ap, v);
}
static void put_i32(duckdb_appender ap, int32_t v, int null)
{
    if (null)
        duckdb_append_null(ap);
    else
        duckdb_append_int32(ap, v);
}
static void put_str(duckdb_appender ap, const char *s, int empty_is_null)
{
    if (!s || (empty_is_null && !*s))
        duckdb_append_null(ap);
    else
        duckdb_append_varchar(ap, s);
}
static void put_text(duckdb_appender ap, const char *s, size_t n)
{
    duckdb_append_varchar_length(ap, s ? s : "", s ? n : 0);
}

static int64_t hour_of(int64_t ms)
{
    return ms >= 0 ? ms / 3600000 : (ms - 3599999) / 3600000;
}

static int end_row(tsi_archive *a, int k, tsi_error *err)
{
    if (duckdb_appender_end_row(a->app[k]) == DuckDBError) {
        int rc = app_error(a, k, "append to", err);
        /* an appender in error state is unusable: flush what it holds, start a new one */
        make_appender(a, k, NULL);
        return rc;
    }
    a->pending[k]++;
    return 0;
}

/* a valid UTF-8 check is DuckDB's job: it refuses invalid VARCHAR; we keep such input as
 * escaped text instead of losing the message */
static char *sanitize_utf8(const char *s, size_t n, size_t *outn)
{
    char *o = malloc(n * 4 + 1);
    if (!o)
        return NULL;
    size_t j = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        int ok = len > 0 && i + len <= n && c != 0;
        for (size_t t = 1; ok && t < len; t++)
            ok = ((unsigned char)s[i + t] >> 6) == 2;
        if (ok) {
            memcpy(o + j, s + i, len);
            j += len;
            i += len;
        } else {
            j += (size_t)sprintf(o + j, "\\x%02x", c);
            i++;
        }
    }
    o[j] = '\0';
    *outn = j;
    return o;
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
        unsigned char c = (unsigned char)s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (len == 0 || c == 0 || i + len > n)
            return 0;
        for (size_t t = 1; t < len; t++)
            if (((unsigned char)s[i + t] >> 6) != 2)
                return 0;
        i += len;
    }
    return 1;
}

static int put_json(tsi_archive *a, int k, const char *json, size_t len)
{
    (void)a;
    (void)k;
    if (!json)
        len = 0;
    if (utf8_clean(json ? json : "", len)) { /* the usual case: no copy */
        put_text(a->app[k], json ? json : "", len);
        return 0;
    }
    size_t n2;
    char *clean = sanitize_utf8(json ? json : "", json ? len : 0, &n2);
    if (!clean)
        return TSI_E_NOMEM;
    put_text(a->app[k], clean, n2);
    free(clean);
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
    duckdb_appender ap = a->app[kind];
    int64_t t = m ? m->timestamp_ms : received_ms;
    put_ts(ap, t);
    put_i64(ap, m ? m->timestamp_ms : 0, !m);
    put_ts(ap, received_ms);
    put_str(ap, m ? m->rsu_name : NULL, 1);
    put_str(ap, m ? m->location_name : NULL, 1);
    put_i64(ap, m ? m->id : 0, !m);
    put_i32(ap, m ? m->msg_cnt : 0, !m || m->msg_cnt < 0);
    put_i32(ap, m ? m->sec_mark : 0, !m || m->sec_mark == TSI_SECMARK_UNAVAILABLE);
    put_dbl(ap, m ? m->lat : NAN);
    put_dbl(ap, m ? m->lon : NAN);
    put_dbl(ap, m ? m->elev : NAN);
    put_dbl(ap, m ? m->speed : NAN);
    put_dbl(ap, m ? m->heading : NAN);
    put_dbl(ap, m ? m->accel_lon : NAN);
    put_dbl(ap, m ? m->accel_lat : NAN);
    put_dbl(ap, m ? m->accel_vert : NAN);
    put_dbl(ap, m ? m->accel_yaw : NAN);
    if (kind == TSI_RAW_BSM) {
        put_dbl(ap, m ? m->width_m : NAN);
        put_dbl(ap, m ? m->length_m : NAN);
        put_str(ap, m ? m->wheel_brakes : NULL, 1);
    } else {
        put_i32(ap, m ? m->basic_type : 0, !m || m->basic_type < 0);
    }
    put_str(ap, m ? NULL : (reject_reason ? reject_reason : "rejected"), 1);
    if (put_json(a, kind, json, len) < 0)
        return tsi_error_set(err, TSI_E_NOMEM, "out of memory", NULL);
    duckdb_append_int64(ap, hour_of(t));
    return end_row(a, kind, err);
}

int tsi_archive_add_mapdata(tsi_archive *a, const tsi_mapdata *md, const char *reject_reason,
                            const char *json, size_t len, int64_t received_ms, tsi_error *err)
{
    duckdb_appender ap = a->app[TSI_RAW_MAPDATA];
    const tsi_map_intersection *mi = (md && md->n > 0) ? &md->items[0] : NULL;
    put_ts(ap, received_ms);
    put_ts(ap, received_ms);
    put_i64(ap, mi ? mi->id : 0, !mi);
    put_i32(ap, mi ? mi->revision : 0, !mi);
    put_str(ap, mi ? mi->name : NULL, 1);
    put_dbl(ap, mi ? mi->ref_lat : NAN);
    put_dbl(ap, mi ? mi->ref_lon : NAN);
    put_i32(ap, mi ? mi->vehicle_lanes : 0, !mi);
    put_i32(ap, md ? md->n : 0, !md);
    put_str(ap, md ? NULL : (reject_reason ? reject_reason : "rejected"), 1);
    if (put_json(a, TSI_RAW_MAPDATA, json, len) < 0)
        return tsi_error_set(err, TSI_E_NOMEM, "out of memory", NULL);
    duckdb_append_int64(ap, hour_of(received_ms));
    return end_row(a, TSI_RAW_MAPDATA, err);
}

int tsi_archive_add_spat(tsi_archive *a, const tsi_spat *sp, const char *reject_reason,
                         const char *json, size_t len, int64_t received_ms, tsi_error *err)
{
    duckdb_appender ap = a->app[TSI_RAW_SPAT];
    const tsi_spat_intersection *si = (sp && sp->n > 0) ? &sp->items[0] : NULL;
    put_ts(ap, received_ms);
    put_ts(ap, received_ms);
    put_i64(ap, si ? si->id : 0, !si);
    put_i32(ap, si ? si->revision : 0, !si);
    put_i32(ap, si ? si->status : 0, !si || si->status < 0);
    put_i32(ap, si ? si->nstates : 0, !si);
    put_i32(ap, sp ? sp->n : 0, !sp);
    put_str(ap, sp ? NULL : (reject_reason ? reject_reason : "rejected"), 1);
    if (put_json(a, TSI_RAW_SPAT, json, len) < 0)
        return tsi_error_set(err, TSI_E_NOMEM, "out of memory", NULL);
    duckdb_append_int64(ap, hour_of(received_ms));
    return end_row(a, TSI_RAW_SPAT, err);
}

long long tsi_archive_pending(const tsi_archive *a)
{
    long long n = 0;
    for (int k = 0; k < TSI_RAW__COUNT; k++)
        n += a->pending[k];
    return n;
}

static int flush_kind(tsi_archive *a, int k, tsi_archive_stats *st, tsi_error *err)
{
    if (a->pending[k] == 0)
        return 0;
    if (duckdb_appender_flush(a->app[k]) == DuckDBError) {
        int rc = app_error(a, k, "flush", err);
        make_appender(a, k, NULL);
        return rc;
    }
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT hour_key, epoch_ms(min(message_time)) FROM %s GROUP BY hour_key ORDER BY 1",
             kind_names[k]);
    duckdb_result res;
    int rc = tsi_duck_exec(a->con, sql, &res, err);
    if (rc < 0)
        return rc;
    idx_t n = duckdb_row_count(&res);
    int first_rc = 0;
    for (idx_t i = 0; i < n; i++) {
        int64_t hk = duckdb_value_int64(&res, 0, i);
        int64_t tmin = duckdb_value_int64(&res, 1, i);
        time_t hs = (time_t)(hk * 3600);
        struct tm tm;
        gmtime_r(&hs, &tm);
        char dir[PATH_MAX], start[32];
        snprintf(dir, sizeof dir, "%s/raw/%s/%04d/%02d/%02d/%02d", a->root, kind_names[k],
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour);
        tsi_pq_stamp(tmin, start, sizeof start);
        snprintf(sql, sizeof sql,
                 "SELECT * EXCLUDE (hour_key) FROM %s WHERE hour_key = %lld ORDER BY message_time",
                 kind_names[k], (long long)hk);
        char path[PATH_MAX];
        tsi_error e = {0};
        long long rows =
            tsi_pq_write(a->con, sql, dir, kind_names[k], start, path, sizeof path, &e);
        if (rows < 0) {
            tsi_warn("archive", "raw flush failed kind=%s hour=%lld err=%s detail=%s",
                     kind_names[k], (long long)hk, tsi_error_name(e.code), e.detail);
            if (!first_rc) {
                first_rc = (int)rows;
                if (err)
                    *err = e;
            }
            continue;
        }
        snprintf(sql, sizeof sql, "DELETE FROM %s WHERE hour_key = %lld", kind_names[k],
                 (long long)hk);
        if ((rc = tsi_duck_exec(a->con, sql, NULL, err)) < 0) {
            /* cannot forget rows already published: stop here rather than duplicate */
            duckdb_destroy_result(&res);
            return rc;
        }
        a->pending[k] -= rows;
        if (st) {
            st->files++;
            st->rows[k] += rows;
        }
        tsi_debug("archive", "wrote %s rows=%lld", path, rows);
    }
    duckdb_destroy_result(&res);
    if (a->pending[k] < 0)
        a->pending[k] = 0;
    return first_rc;
}

int tsi_archive_flush(tsi_archive *a, tsi_archive_stats *stats, tsi_error *err)
{
    if (stats)
        memset(stats, 0, sizeof *stats);
    int first = 0;
    for (int k = 0; k < TSI_RAW__COUNT; k++) {
        tsi_error e = {0};
        int rc = flush_kind(a, k, stats, &e);
        if (rc < 0 && !first) {
            first = rc;
            if (err)
                *err = e;
        }
    }
    return first;
}
