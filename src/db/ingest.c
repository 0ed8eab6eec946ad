/* db/ingest.c — the collector's database writer (see ingest.h): the public API, the writer
 * thread with its reconnects and backoff, the parallel parts of a batch of realtime rows,
 * and the SQL of each write (direct COPY, staged upsert, intersections, quality log) with the
 * exactly-once bookkeeping (the read position advances only when every part committed; a
 * commit of unknown outcome redoes the batch). The spool's bytes are db/spool.c's, the
 * binary COPY encoding db/copybin.c's. */
#include "db/ingest.h"

#include <errno.h>
#include <libpq-fe.h>
#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/options.h"
#include "db/columns.h"
#include "db/conn.h"
#include "db/copybin.h"
#include "db/result.h"
#include "db/spool.h"

/* ---- the ingest object ---------------------------------------------------------------- */

#define MAX_CONNECTIONS 16

/* one writer connection and what was learned of the schema on it */
typedef struct wconn {
    PGconn *conn;
    bool has_feat[TSI_RT_NFEAT]; /* tsi_rt_feat_cols the table has (older schemas lack some) */
    int staged_next; /* parts of realtime rows to write staged before trying COPY straight
                        into the table again (after an attempt the table refused) */
    bool unsure;     /* the server warned that a commit waiting for synchronous
                        replication was cancelled (set by on_notice) */
} wconn;

struct tsi_ingest {
    tsi_ingest_config cfg;
    char path[PATH_MAX];
    int fd;
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* wakes the writer */
    pthread_cond_t drained; /* wakes tsi_ingest_sync */
    pthread_t thread;
    bool thread_started, stop, paused;
    off_t read_off, end; /* spool: [read_off, end) waits */
    off_t replay_end;    /* records before this offset waited for the database */
    tsi_ingest_stats st;
    /* writer-thread only (a batch's part threads each use their own wc[j]) */
    wconn *wc; /* wc[0] the primary connection: intersections, quality log, rows */
    int nconn; /* writer connections */
    int backoff_ms;
    unsigned rnd;
};

void tsi_ingest_spool_path(const char *spool_dir, char *buf, size_t len)
{
    if (spool_dir && *spool_dir)
        snprintf(buf, len, "%s/ingest.spool", spool_dir);
    else
        snprintf(buf, len, "%s/spool/ingest.spool", tsi_home());
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void set_last_error(tsi_ingest *in, const char *fmt, const char *a, const char *b)
{
    pthread_mutex_lock(&in->mu);
    snprintf(in->st.last_error, sizeof in->st.last_error, fmt, a ? a : "", b ? b : "");
    in->st.db_errors++;
    pthread_mutex_unlock(&in->mu);
}

static void *writer_main(void *arg);

int tsi_ingest_open(tsi_ingest **out, const tsi_ingest_config *cfg, tsi_error *err)
{
    *out = NULL;
    tsi_ingest *in = calloc(1, sizeof *in);
    if (!in)
        return tsi_error_set(err, TSI_E_NOMEM, "out of memory", NULL);
    if (cfg)
        in->cfg = *cfg;
    if (in->cfg.batch_rows <= 0)
        in->cfg.batch_rows = 20000;
    if (in->cfg.retry_min_ms <= 0)
        in->cfg.retry_min_ms = 200;
    if (in->cfg.retry_max_ms <= 0)
        in->cfg.retry_max_ms = 30000;
    if (in->cfg.connections <= 0)
        in->cfg.connections = 2;
    if (in->cfg.connections > MAX_CONNECTIONS)
        in->cfg.connections = MAX_CONNECTIONS;
    in->nconn = in->cfg.connections;
    in->wc = calloc((size_t)in->nconn, sizeof *in->wc);
    if (!in->wc) {
        free(in);
        return tsi_error_set(err, TSI_E_NOMEM, "out of memory", NULL);
    }
    in->cfg.spool_dir = NULL; /* not kept: borrowed */
    in->paused = cfg && cfg->start_paused;
    in->fd = -1;
    in->rnd = (unsigned)getpid() ^ (unsigned)now_ms();
    tsi_ingest_spool_path(cfg ? cfg->spool_dir : NULL, in->path, sizeof in->path);
    int rc = tsi_spool_open(in->path, &in->fd, err);
    if (rc < 0) {
        free(in->wc);
        free(in);
        return rc;
    }
    off_t size = 0;
    long long records = 0, corrupt = 0;
    if ((rc = tsi_spool_scan(in->fd, in->path, &size, &records, &corrupt, err)) < 0) {
        close(in->fd);
        free(in->wc);
        free(in);
        return rc;
    }
    in->read_off = 0;
    in->end = size;
    in->replay_end = size;
    in->st.spool_records = records;
    in->st.spool_bytes = size;
    in->st.spool_corrupt = corrupt;
    pthread_mutex_init(&in->mu, NULL);
    pthread_cond_init(&in->cv, NULL);
    pthread_cond_init(&in->drained, NULL);
    if (pthread_create(&in->thread, NULL, writer_main, in) != 0) {
        rc = tsi_error_set(err, TSI_E_INTERNAL, "cannot start the database writer thread", NULL);
        tsi_ingest_close(in);
        return rc;
    }
    in->thread_started = true;
    *out = in;
    return 0;
}

void tsi_ingest_close(tsi_ingest *in)
{
    if (!in)
        return;
    if (in->thread_started) {
        pthread_mutex_lock(&in->mu);
        in->stop = true;
        pthread_cond_broadcast(&in->cv);
        pthread_mutex_unlock(&in->mu);
        pthread_join(in->thread, NULL);
    }
    for (int j = 0; j < in->nconn; j++)
        if (in->wc[j].conn)
            PQfinish(in->wc[j].conn);
    free(in->wc);
    if (in->fd >= 0)
        close(in->fd); /* releases the flock */
    pthread_mutex_destroy(&in->mu);
    pthread_cond_destroy(&in->cv);
    pthread_cond_destroy(&in->drained);
    free(in);
}

static int append(tsi_ingest *in, int type, const void *items, size_t n, size_t size,
                  tsi_error *err)
{
    if (n == 0)
        return 0;
    tsi_buf b = TSI_BUF_INIT;
    for (size_t i = 0; i < n; i++)
        tsi_spool_frame(&b, type, (const char *)items + i * size, (uint32_t)size);
    pthread_mutex_lock(&in->mu);
    int rc = tsi_spool_write(in->fd, in->path, b.data, b.len, in->end, err);
    if (rc == 0) {
        in->end += (off_t)b.len;
        in->st.spool_records += (long long)n;
        in->st.spool_bytes = in->end - in->read_off;
        pthread_cond_signal(&in->cv);
    }
    pthread_mutex_unlock(&in->mu);
    tsi_buf_free(&b);
    return rc;
}

int tsi_ingest_add_rows(tsi_ingest *in, const tsi_rt_row *rows, size_t n, tsi_error *err)
{
    /* copies with zeroed padding: the checksum covers every byte */
    tsi_rt_row *c = calloc(n ? n : 1, sizeof *c);
    if (!c)
        return tsi_error_set(err, TSI_E_NOMEM, "out of memory", NULL);
    for (size_t i = 0; i < n; i++) {
        c[i].intersection_id = rows[i].intersection_id;
        c[i].minute_ms = rows[i].minute_ms;
        c[i].combined_index = rows[i].combined_index;
        c[i].combined_index_eb = rows[i].combined_index_eb;
        c[i].vru_index = rows[i].vru_index;
        c[i].vru_index_eb = rows[i].vru_index_eb;
        c[i].vehicle_index = rows[i].vehicle_index;
        c[i].vehicle_index_eb = rows[i].vehicle_index_eb;
        c[i].traffic_volume = rows[i].traffic_volume;
        c[i].vru_count = rows[i].vru_count;
        c[i].vehicle_event_count = rows[i].vehicle_event_count;
        c[i].vru_event_count = rows[i].vru_event_count;
        c[i].hour_of_day = rows[i].hour_of_day;
        c[i].day_of_week = rows[i].day_of_week;
        c[i].avg_speed = rows[i].avg_speed;
        c[i].speed_stddev = rows[i].speed_stddev;
        c[i].hard_braking_count = rows[i].hard_braking_count;
        c[i].message_count = rows[i].message_count;
        c[i].constants_id = rows[i].constants_id;
        c[i].algorithm_version = rows[i].algorithm_version;
    }
    int rc = append(in, TSI_SPOOL_ROW, c, n, sizeof *c, err);
    free(c);
    return rc;
}

int tsi_ingest_add_isects(tsi_ingest *in, const tsi_isect_row *rows, size_t n, tsi_error *err)
{
    for (size_t i = 0; i < n; i++) {
        const char *md = rows[i].metadata && rows[i].metadata[0] ? rows[i].metadata : "{}";
        size_t ml = strlen(md);
        if (ml > TSI_ISECT_METADATA_MAX)
            return tsi_error_set(err, TSI_E_TOO_BIG, "intersection metadata too large",
                                 "id=%lld bytes=%zu max=%d", (long long)rows[i].id, ml,
                                 TSI_ISECT_METADATA_MAX);
    }
    int rc = 0;
    tsi_buf b = TSI_BUF_INIT;
    for (size_t i = 0; i < n && rc == 0; i++) {
        tsi_buf_reset(&b);
        tsi_spool_isect_payload(&b, &rows[i]);
        rc = append(in, TSI_SPOOL_ISECT, b.data, 1, b.len, err);
    }
    tsi_buf_free(&b);
    return rc;
}

int tsi_ingest_add_dq(tsi_ingest *in, const tsi_dq_row *rows, size_t n, tsi_error *err)
{
    tsi_dq_row *c = calloc(n ? n : 1, sizeof *c);
    if (!c)
        return tsi_error_set(err, TSI_E_NOMEM, "out of memory", NULL);
    for (size_t i = 0; i < n; i++) {
        c[i].minute_ms = rows[i].minute_ms;
        c[i].intersection_id = rows[i].intersection_id;
        snprintf(c[i].issue_type, sizeof c[i].issue_type, "%s", rows[i].issue_type);
        snprintf(c[i].severity, sizeof c[i].severity, "%s", rows[i].severity);
        snprintf(c[i].message, sizeof c[i].message, "%s", rows[i].message);
        snprintf(c[i].metadata, sizeof c[i].metadata, "%s",
                 rows[i].metadata[0] ? rows[i].metadata : "{}");
    }
    int rc = append(in, TSI_SPOOL_DQ, c, n, sizeof *c, err);
    free(c);
    return rc;
}

long long tsi_ingest_sync(tsi_ingest *in, int timeout_ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&in->mu);
    while (in->st.spool_records > 0) {
        if (pthread_cond_timedwait(&in->drained, &in->mu, &dl) == ETIMEDOUT)
            break;
    }
    long long left = in->st.spool_records;
    pthread_mutex_unlock(&in->mu);
    return left;
}

void tsi_ingest_resume(tsi_ingest *in)
{
    pthread_mutex_lock(&in->mu);
    in->paused = false;
    pthread_cond_broadcast(&in->cv);
    pthread_mutex_unlock(&in->mu);
}

void tsi_ingest_get_stats(tsi_ingest *in, tsi_ingest_stats *st)
{
    pthread_mutex_lock(&in->mu);
    *st = in->st;
    pthread_mutex_unlock(&in->mu);
}

/* ---- the writer thread ----------------------------------------------------------------- */

static void ts_text(tsi_buf *b, int64_t ms)
{
    time_t s = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    int frac = (int)(ms - (int64_t)s * 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    tsi_buf_printf(b, "%04d-%02d-%02d %02d:%02d:%02d.%03d+00", tm.tm_year + 1900, tm.tm_mon + 1,
                   tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}
static void copy_text(tsi_buf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '\\':
            tsi_buf_puts(b, "\\\\");
            break;
        case '\t':
            tsi_buf_puts(b, "\\t");
            break;
        case '\n':
            tsi_buf_puts(b, "\\n");
            break;
        case '\r':
            tsi_buf_puts(b, "\\r");
            break;
        default:
            tsi_buf_putc(b, *s);
        }
    }
}

static const char SQL_STAGE[] =
    "CREATE TEMP TABLE IF NOT EXISTS tsi_ingest_rows (seq bigint NOT NULL, intersection_id bigint, "
    "\"timestamp\" timestamptz, " TSI_RT_COLS_DDL ") "
    "ON COMMIT DELETE ROWS;"
    "CREATE TEMP TABLE IF NOT EXISTS tsi_ingest_dq (seq bigint NOT NULL, \"timestamp\" "
    "timestamptz, intersection_id bigint, issue_type text, severity text, message text, "
    "metadata jsonb) ON COMMIT DELETE ROWS;"
    "SET statement_timeout = '120s'";

static const char SQL_ISECT[] =
    "INSERT INTO intersections AS i (id, name, latitude, longitude, geometry, lane_count, "
    "revision, metadata) VALUES ($1, $2, $3, $4, ST_SetSRID(ST_MakePoint($4, $3), 4326), $5, $6, "
    "$7::jsonb) ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, latitude = "
    "EXCLUDED.latitude, longitude = EXCLUDED.longitude, lane_count = EXCLUDED.lane_count, "
    "revision = EXCLUDED.revision, metadata = i.metadata || EXCLUDED.metadata "
    "WHERE i.revision IS NULL OR EXCLUDED.revision IS NULL OR EXCLUDED.revision >= i.revision";

static const char SQL_DQ[] =
    "INSERT INTO data_quality_log (\"timestamp\", intersection_id, issue_type, severity, "
    "message, metadata) SELECT d.\"timestamp\", CASE WHEN EXISTS (SELECT 1 FROM intersections i "
    "WHERE i.id = d.intersection_id) THEN d.intersection_id END, d.issue_type, d.severity, "
    "d.message, d.metadata FROM tsi_ingest_dq d ORDER BY d.seq";

static bool conn_lost(PGconn *c, const PGresult *r)
{
    if (PQstatus(c) != CONNECTION_OK)
        return true;
    const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (!st)
        return r == NULL || PQresultStatus(r) == PGRES_FATAL_ERROR ? PQstatus(c) != CONNECTION_OK
                                                                   : false;
    /* connection, shutdown, resources, serialization: try the whole batch again later */
    return strncmp(st, "08", 2) == 0 || strncmp(st, "57", 2) == 0 || strncmp(st, "53", 2) == 0 ||
           strncmp(st, "40", 2) == 0;
}

/* How a database write ends, in base/error.h's codes (every write function below returns
 * one of them):
 *   0                  done (the statement, or the transaction, succeeded)
 *   TSI_E_UNAVAILABLE  transient: the connection was lost, the server shuts down, is out of
 *                      resources, a serialization failure, or a commit's outcome is unknown;
 *                      the whole batch is written again later, on fresh connections
 *   TSI_E_DB           the database refused the content (a CHECK, a missing partition, ...):
 *                      the records are written again one by one, a refused one dropped
 *   TSI_E_EXISTS       write_rows_direct only: the table refused the direct COPY (mostly a
 *                      key that exists): the transaction is written again staged
 * check: 0 ok; TSI_E_UNAVAILABLE transient (connection: retry later); TSI_E_DB content
 * refused (retry record by record) */
static int check(tsi_ingest *in, wconn *w, PGresult *r, ExecStatusType want, const char *what)
{
    if (r && PQresultStatus(r) == want) {
        PQclear(r);
        return 0;
    }
    int kind = conn_lost(w->conn, r) ? TSI_E_UNAVAILABLE : TSI_E_DB;
    const char *msg = r ? PQresultErrorMessage(r) : PQerrorMessage(w->conn);
    char line[200];
    snprintf(line, sizeof line, "%s", msg ? msg : "?");
    line[strcspn(line, "\n")] = '\0';
    const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    tsi_warn("ingest", "database write failed step=%s sqlstate=%s err=%s conn=%d", what,
             st ? st : "-", line, (int)(w - in->wc));
    set_last_error(in, "%s: %s", what, line);
    PQclear(r);
    return kind;
}

static int exec_simple(tsi_ingest *in, wconn *w, const char *sql, ExecStatusType want,
                       const char *what)
{
    return check(in, w, PQexec(w->conn, sql), want, what);
}

static int copy_in(tsi_ingest *in, wconn *w, const char *sql, tsi_buf *data, const char *what)
{
    int k = check(in, w, PQexec(w->conn, sql), PGRES_COPY_IN, what);
    if (k)
        return k;
    if (PQputCopyData(w->conn, data->data ? data->data : "", (int)data->len) != 1 ||
        PQputCopyEnd(w->conn, NULL) != 1)
        return check(in, w, NULL, PGRES_COMMAND_OK, what);
    PGresult *r;
    int worst = 0;
    while ((r = PQgetResult(w->conn)) != NULL) {
        int kk = check(in, w, r, PGRES_COMMAND_OK, what);
        if (kk == TSI_E_DB || (kk && !worst)) /* a refusal outweighs a transient failure */
            worst = kk;
    }
    return worst;
}

static const char *const ROW_BASE_COLS = "intersection_id, \"timestamp\", " TSI_RT_BASE_COLS;

/* parts of realtime rows written staged on a connection after a direct COPY the table
 * refused there (keys that exist tend to come in runs: a batch redone, a re-replay) */
#define STAGED_AFTER_REFUSAL 8

typedef struct rkey {
    int64_t id, ts;
    uint32_t pos; /* position in the transaction (spool order) */
} rkey;

static int rkey_cmp(const void *a, const void *b)
{
    const rkey *x = a, *y = b;
    if (x->id != y->id)
        return x->id < y->id ? -1 : 1;
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* The direct path: the rows COPYed straight into safety_indices_realtime, for a transaction
 * whose keys are all new (the common case: a replay of minutes the database never saw, a
 * collector writing the minute that just closed): none of the staging table, its scan and
 * sort, and the upsert's speculative insertion; about 35 % less of the database's CPU a
 * row. The last version of each key (in spool order) is
 * kept and the keys sorted here (as the staged path's DISTINCT ON does); rows of
 * intersections that do not exist are counted as orphans and left out (one query for the
 * distinct ids). When the table refuses the COPY for its content (a key that exists:
 * 23505; an intersection deleted meanwhile: 23503; a CHECK), nothing of it stays (the
 * caller rolls the transaction back) and returns TSI_E_EXISTS: the transaction is written
 * again by the staged upsert, which gives every one of those cases its usual outcome. 0
 * written, TSI_E_UNAVAILABLE transient failure, TSI_E_EXISTS refused (TSI_E_DB when the
 * COPY's data could not be sent on a connection still up, as copy_in). */
static int write_rows_direct(tsi_ingest *in, wconn *w, tsi_spool_rec *const *v, size_t n,
                             long long *orphans)
{
    int k = TSI_E_UNAVAILABLE;
    rkey *key = malloc((n ? n : 1) * sizeof *key);
    int64_t *known = NULL;
    size_t nknown = 0;
    tsi_buf ids = TSI_BUF_INIT, d = TSI_BUF_INIT, sql = TSI_BUF_INIT;
    PGresult *r = NULL;
    if (!key) {
        tsi_err("ingest", "out of memory sorting a transaction's rows rows=%zu", n);
        return TSI_E_EXISTS; /* the staged path needs no such memory */
    }
    for (size_t i = 0; i < n; i++)
        key[i] = (rkey){v[i]->u.row.intersection_id, v[i]->u.row.minute_ms, (uint32_t)i};
    qsort(key, n, sizeof *key, rkey_cmp);
    /* which of the distinct ids exist */
    tsi_buf_putc(&ids, '{');
    for (size_t i = 0; i < n; i++)
        if (i == 0 || key[i].id != key[i - 1].id)
            tsi_buf_printf(&ids, "%s%lld", i ? "," : "", (long long)key[i].id);
    tsi_buf_putc(&ids, '}');
    const char *param = tsi_buf_cstr(&ids);
    r = PQexecParams(w->conn,
                     "SELECT id FROM intersections WHERE id = ANY ($1::bigint[]) ORDER BY id", 1,
                     NULL, &param, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        k = check(in, w, r, PGRES_TUPLES_OK, "known intersections");
        r = NULL;
        if (k == TSI_E_DB)
            k = TSI_E_EXISTS; /* the staged path does without this query */
        goto done;
    }
    nknown = (size_t)PQntuples(r);
    known = malloc((nknown ? nknown : 1) * sizeof *known);
    if (!known) {
        k = TSI_E_EXISTS;
        goto done;
    }
    for (size_t j = 0; j < nknown; j++)
        known[j] = atoll(PQgetvalue(r, (int)j, 0));
    PQclear(r);
    r = NULL;
    /* the rows: the last version of each key of a known intersection, in key order */
    tsi_buf_reserve(&d, 19 + n * 180 + 2);
    tsi_copybin_begin(&d);
    long long orph = 0;
    size_t kj = 0;
    for (size_t i = 0; i < n; i++) {
        while (kj < nknown && known[kj] < key[i].id)
            kj++;
        if (kj >= nknown || known[kj] != key[i].id) {
            orph++; /* every record of an unknown intersection, as the staged path counts */
            continue;
        }
        if (i + 1 < n && key[i + 1].id == key[i].id && key[i + 1].ts == key[i].ts)
            continue; /* a later version of this key follows */
        tsi_copybin_rt_row(&d, &v[key[i].pos]->u.row, -1, w->has_feat);
    }
    tsi_copybin_end(&d);
    tsi_buf_printf(&sql, "COPY safety_indices_realtime (%s", ROW_BASE_COLS);
    for (int f = 0; f < TSI_RT_NFEAT; f++)
        if (w->has_feat[f])
            tsi_buf_printf(&sql, ", %s", tsi_rt_feat_cols[f]);
    tsi_buf_puts(&sql, ") FROM STDIN (FORMAT binary)");
    r = PQexec(w->conn, tsi_buf_cstr(&sql));
    if (PQresultStatus(r) != PGRES_COPY_IN) {
        k = check(in, w, r, PGRES_COPY_IN, "copy rows into the table");
        r = NULL;
        if (k == TSI_E_DB)
            k = TSI_E_EXISTS;
        goto done;
    }
    PQclear(r);
    r = NULL;
    if (PQputCopyData(w->conn, d.data, (int)d.len) != 1 || PQputCopyEnd(w->conn, NULL) != 1) {
        k = check(in, w, NULL, PGRES_COMMAND_OK, "copy rows into the table");
        goto done;
    }
    k = 0;
    while ((r = PQgetResult(w->conn)) != NULL) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK && k == 0) {
            if (conn_lost(w->conn, r)) {
                k = check(in, w, r, PGRES_COMMAND_OK, "copy rows into the table");
                r = NULL;
                continue;
            }
            /* refused for its content: not an error of the writer, the staged path follows */
            const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
            tsi_debug("ingest", "direct copy refused, writing staged sqlstate=%s conn=%d rows=%zu",
                      st ? st : "-", (int)(w - in->wc), n);
            k = TSI_E_EXISTS;
        }
        PQclear(r);
    }
    r = NULL;
    if (k == 0)
        *orphans += orph;
done:
    PQclear(r);
    free(key);
    free(known);
    tsi_buf_free(&ids);
    tsi_buf_free(&d);
    tsi_buf_free(&sql);
    return k;
}

/* v: the records of this transaction, in spool order (seq = their position here, so the
 * last version of a key wins) */
static int write_rows(tsi_ingest *in, wconn *w, tsi_spool_rec *const *v, size_t n,
                      long long *orphans)
{
    tsi_buf d = TSI_BUF_INIT, sql = TSI_BUF_INIT;
    /* binary COPY: the signature, flags, no header extension; per row the field count,
     * then each field's length and bytes (network order), in SQL_STAGE's column order and
     * types; -1 as the end */
    tsi_buf_reserve(&d, 19 + n * 190 + 2);
    tsi_copybin_begin(&d);
    for (size_t i = 0; i < n; i++)
        tsi_copybin_rt_row(&d, &v[i]->u.row, (int64_t)i, NULL);
    tsi_copybin_end(&d);
    int k = copy_in(in, w, "COPY tsi_ingest_rows FROM STDIN (FORMAT binary)", &d, "copy rows");
    tsi_buf_free(&d);
    if (k)
        return k;
    tsi_buf cols = TSI_BUF_INIT, set = TSI_BUF_INIT;
    tsi_buf_puts(&cols, ROW_BASE_COLS);
    for (int f = 0; f < TSI_RT_NFEAT; f++)
        if (w->has_feat[f])
            tsi_buf_printf(&cols, ", %s", tsi_rt_feat_cols[f]);
    const char *names[] = {"combined_index",  "combined_index_eb", "vru_index",
                           "vru_index_eb",    "vehicle_index",     "vehicle_index_eb",
                           "traffic_volume",  "vru_count",         "vehicle_event_count",
                           "vru_event_count", "hour_of_day",       "day_of_week"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        tsi_buf_printf(&set, "%s%s = EXCLUDED.%s", i ? ", " : "", names[i], names[i]);
    for (int f = 0; f < TSI_RT_NFEAT; f++)
        if (w->has_feat[f])
            tsi_buf_printf(&set, ", %s = EXCLUDED.%s", tsi_rt_feat_cols[f], tsi_rt_feat_cols[f]);
    tsi_buf_printf(&sql,
                   "INSERT INTO safety_indices_realtime AS r (%s) SELECT DISTINCT ON "
                   "(intersection_id, \"timestamp\") %s FROM tsi_ingest_rows s WHERE EXISTS "
                   "(SELECT 1 FROM intersections i WHERE i.id = s.intersection_id) ORDER BY "
                   "intersection_id, \"timestamp\", seq DESC ON CONFLICT (intersection_id, "
                   "\"timestamp\") DO UPDATE SET %s",
                   tsi_buf_cstr(&cols), tsi_buf_cstr(&cols), tsi_buf_cstr(&set));
    k = check(in, w, PQexec(w->conn, tsi_buf_cstr(&sql)), PGRES_COMMAND_OK, "upsert rows");
    if (!k) {
        /* rows whose intersection is unknown were not written */
        PGresult *r =
            PQexec(w->conn, "SELECT count(*) AS orphans FROM tsi_ingest_rows s WHERE NOT EXISTS "
                            "(SELECT 1 FROM intersections i WHERE i.id = "
                            "s.intersection_id)");
        if (PQresultStatus(r) == PGRES_TUPLES_OK)
            *orphans += atoll(tsi_pq_get(r, 0, "orphans"));
        k = check(in, w, r, PGRES_TUPLES_OK, "count orphans");
    }
    tsi_buf_free(&cols);
    tsi_buf_free(&set);
    tsi_buf_free(&sql);
    return k;
}

static int write_isects(tsi_ingest *in, wconn *w, tsi_spool_rec *const *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const tsi_isect_row *x = &v[i]->u.isect;
        char id[32], lat[40], lon[40], lanes[16], rev[16];
        snprintf(id, sizeof id, "%lld", (long long)x->id);
        snprintf(lat, sizeof lat, "%.17g", x->latitude);
        snprintf(lon, sizeof lon, "%.17g", x->longitude);
        snprintf(lanes, sizeof lanes, "%d", x->lane_count);
        snprintf(rev, sizeof rev, "%d", x->revision);
        const char *p[7] = {id,
                            x->name,
                            lat,
                            lon,
                            x->lane_count >= 0 ? lanes : NULL,
                            x->revision >= 0 ? rev : NULL,
                            x->metadata && x->metadata[0] ? x->metadata : "{}"};
        int k = check(in, w, PQexecParams(w->conn, SQL_ISECT, 7, NULL, p, NULL, NULL, 0),
                      PGRES_COMMAND_OK, "upsert intersection");
        if (k)
            return k;
    }
    return 0;
}

static int write_dq(tsi_ingest *in, wconn *w, tsi_spool_rec *const *v, size_t n)
{
    tsi_buf d = TSI_BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        const tsi_dq_row *q = &v[i]->u.dq;
        tsi_buf_printf(&d, "%zu\t", i);
        ts_text(&d, q->minute_ms);
        if (q->intersection_id >= 0)
            tsi_buf_printf(&d, "\t%lld\t", (long long)q->intersection_id);
        else
            tsi_buf_puts(&d, "\t\\N\t");
        copy_text(&d, q->issue_type);
        tsi_buf_putc(&d, '\t');
        copy_text(&d, q->severity);
        tsi_buf_putc(&d, '\t');
        copy_text(&d, q->message);
        tsi_buf_putc(&d, '\t');
        copy_text(&d, q->metadata[0] ? q->metadata : "{}");
        tsi_buf_putc(&d, '\n');
    }
    int k = copy_in(in, w, "COPY tsi_ingest_dq FROM STDIN", &d, "copy quality log");
    tsi_buf_free(&d);
    if (k)
        return k;
    return exec_simple(in, w, SQL_DQ, PGRES_COMMAND_OK, "insert quality log");
}

/* one transaction on w: 0 committed, TSI_E_UNAVAILABLE transient failure, TSI_E_DB content
 * refused (rolled back);
 * the orphans of the transaction are added only when it commits */
static int write_tx(tsi_ingest *in, wconn *w, tsi_spool_rec *const *v, size_t n, long long *orphans,
                    bool direct)
{
    direct = direct && v[0]->type == TSI_SPOOL_ROW;
again:;
    int k = exec_simple(in, w, "BEGIN", PGRES_COMMAND_OK, "begin");
    if (k)
        return k;
    long long orph = 0;
    switch (v[0]->type) {
    case TSI_SPOOL_ROW:
        if (direct) {
            k = write_rows_direct(in, w, v, n, &orph);
            if (k ==
                TSI_E_EXISTS) { /* refused for its content: the same transaction again, staged */
                PQclear(PQexec(w->conn, "ROLLBACK"));
                w->staged_next = STAGED_AFTER_REFUSAL;
                direct = false;
                pthread_mutex_lock(&in->mu);
                in->st.direct_refused++;
                pthread_mutex_unlock(&in->mu);
                goto again;
            }
        } else
            k = write_rows(in, w, v, n, &orph);
        break;
    case TSI_SPOOL_ISECT:
        k = write_isects(in, w, v, n);
        break;
    default:
        k = write_dq(in, w, v, n);
        break;
    }
    if (k) {
        if (k == TSI_E_DB)
            PQclear(PQexec(w->conn, "ROLLBACK"));
        return k;
    }
    w->unsure = false;
    k = exec_simple(in, w, "COMMIT", PGRES_COMMAND_OK, "commit");
    if (k == 0 && w->unsure) {
        /* outcome unknown: the batch again, on fresh connections (the new primary) */
        tsi_warn("ingest",
                 "commit outcome unknown (synchronous replication cancelled): the "
                 "batch is written again conn=%d",
                 (int)(w - in->wc));
        set_last_error(in, "%s: %s", "commit",
                       "outcome unknown (synchronous replication cancelled)");
        return TSI_E_UNAVAILABLE; /* the caller drops every connection and redoes the batch */
    }
    if (k == 0) {
        *orphans += orph;
        if (v[0]->type == TSI_SPOOL_ROW) {
            pthread_mutex_lock(&in->mu);
            if (direct)
                in->st.direct_tx++;
            else
                in->st.staged_tx++;
            pthread_mutex_unlock(&in->mu);
        }
    }
    return k;
}

/* One part of a batch, written on one connection: all its records in one transaction, or,
 * when the database refuses that for its content, each record alone (the refused ones
 * dropped and counted). k = TSI_E_UNAVAILABLE when the connection failed: the caller redoes
 * the batch. */
typedef struct part {
    tsi_ingest *in;
    wconn *w;
    tsi_spool_rec **v;
    size_t n;
    int k;
    long long ok, rejected, orphans;
    pthread_t thread;
    bool threaded;
} part;

static void write_part(part *p)
{
    p->ok = p->rejected = p->orphans = 0;
    /* realtime rows: COPY straight into the table first, unless a recent attempt on this
     * connection was refused (then the next STAGED_AFTER_REFUSAL parts go staged) */
    bool direct = p->v[0]->type == TSI_SPOOL_ROW && p->w->staged_next == 0;
    if (p->v[0]->type == TSI_SPOOL_ROW && !direct)
        p->w->staged_next--;
    int k = write_tx(p->in, p->w, p->v, p->n, &p->orphans, direct);
    if (k == TSI_E_DB) {
        /* the part was refused for its content: each record alone (staged), drop the bad
         * ones */
        for (size_t i = 0; i < p->n && k != TSI_E_UNAVAILABLE; i++) {
            k = write_tx(p->in, p->w, &p->v[i], 1, &p->orphans, false);
            if (k == 0)
                p->ok++;
            else if (k == TSI_E_DB) {
                p->rejected++;
                tsi_err("ingest",
                        "record refused by the database, dropped type=%d spool_offset=%lld",
                        p->v[i]->type, (long long)p->v[i]->off);
            }
        }
        k = k == TSI_E_UNAVAILABLE ? TSI_E_UNAVAILABLE : 0;
    } else if (k == 0)
        p->ok = (long long)p->n;
    p->k = k;
}

static void *part_main(void *arg)
{
    write_part(arg);
    return NULL;
}

/* Writes one batch (records of one type, in spool order, pv[0..n)). Intersections and
 * quality entries go on the primary connection in one transaction. Realtime rows are split
 * by intersection_id % nconn, each part keeping the batch order of its rows, and the parts
 * are written concurrently, each in its own transaction on its own connection: ordering
 * only matters per (intersection_id, timestamp), and a key lives in one part only, so the
 * last version of every row still wins. Batches are written one after the other, so the
 * intersections of an earlier batch are committed before any row that follows them in the
 * spool is written. Returns 0 when every part committed (add[] filled), TSI_E_UNAVAILABLE
 * when one of them failed for a transient cause: the whole batch is then redone later; the parts
 * that had committed are applied again, which is harmless (upserts of the same versions; the read
 * position and the counters only advance once, after every part committed). pp: scratch,
 * n pointers. */
static int write_batch(tsi_ingest *in, tsi_spool_rec **pv, tsi_spool_rec **pp, size_t n,
                       long long add[5])
{
    part parts[MAX_CONNECTIONS];
    size_t np = 0;
    int kc = pv[0]->type == TSI_SPOOL_ROW ? in->nconn : 1;
    if (kc == 1) {
        parts[np++] = (part){.in = in, .w = &in->wc[0], .v = pv, .n = n};
    } else {
        size_t count[MAX_CONNECTIONS] = {0}, at[MAX_CONNECTIONS];
        for (size_t i = 0; i < n; i++)
            count[(uint64_t)pv[i]->u.row.intersection_id % (uint64_t)kc]++;
        size_t start = 0;
        for (int j = 0; j < kc; j++) {
            at[j] = start;
            if (count[j] > 0)
                parts[np++] = (part){.in = in, .w = &in->wc[j], .v = pp + start, .n = count[j]};
            start += count[j];
        }
        for (size_t i = 0; i < n; i++) /* stable: each part keeps the batch order */
            pp[at[(uint64_t)pv[i]->u.row.intersection_id % (uint64_t)kc]++] = pv[i];
    }
    for (size_t j = 1; j < np; j++)
        parts[j].threaded = pthread_create(&parts[j].thread, NULL, part_main, &parts[j]) == 0;
    write_part(&parts[0]);
    for (size_t j = 1; j < np; j++) {
        if (parts[j].threaded)
            pthread_join(parts[j].thread, NULL);
        else
            write_part(&parts[j]); /* no thread to be had: in turn */
    }
    long long ok = 0;
    int k = 0;
    for (size_t j = 0; j < np; j++) {
        if (parts[j].k)
            k = TSI_E_UNAVAILABLE;
        ok += parts[j].ok;
        add[3] += parts[j].rejected;
        add[4] += parts[j].orphans;
    }
    if (k)
        return k;
    switch (pv[0]->type) {
    case TSI_SPOOL_ROW:
        add[0] = ok - add[4];
        break;
    case TSI_SPOOL_ISECT:
        add[1] = ok;
        break;
    default:
        add[2] = ok;
        break;
    }
    return 0;
}

/* During a failover (the HA formation, db/ha.h) a primary whose synchronous standby is
 * gone may cancel a COMMIT's wait: "canceling wait for synchronous replication ... The
 * transaction has already committed locally, but might not have been replicated to the
 * standby." COMMIT then answers OK (or the connection ends), yet the transaction may
 * vanish when that node is rewound to follow the new primary. Its outcome is unknown: the
 * batch is written again (upserts make that harmless), never counted as done. */
static void on_notice(void *arg, const PGresult *r)
{
    wconn *w = arg;
    const char *sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    const char *det = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL);
    if (sev && strcmp(sev, "WARNING") == 0 &&
        ((msg && strstr(msg, "synchronous replication")) ||
         (det && strstr(det, "committed locally"))))
        w->unsure = true;
}

static int connect_one(tsi_ingest *in, wconn *w)
{
    tsi_error e = {0};
    w->conn = tsi_db_connect(TSI_ROLE_WRITER, NULL, &e);
    if (!w->conn) {
        set_last_error(in, "connect: %s %s", e.message, e.detail);
        return TSI_E_UNAVAILABLE;
    }
    w->unsure = false;
    PQsetNoticeReceiver(w->conn, on_notice, w);
    PQclear(PQexec(w->conn, "SET client_min_messages = warning"));
    if (exec_simple(in, w, SQL_STAGE, PGRES_COMMAND_OK, "prepare") != 0)
        goto fail;
    PGresult *r = PQexec(w->conn, "SELECT column_name FROM information_schema.columns WHERE "
                                  "table_schema = 'public' AND table_name = "
                                  "'safety_indices_realtime'");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        check(in, w, r, PGRES_TUPLES_OK, "schema");
        goto fail;
    }
    int name_col = tsi_pq_col(r, "column_name");
    for (int f = 0; f < TSI_RT_NFEAT; f++) {
        w->has_feat[f] = false;
        for (int i = 0; i < PQntuples(r); i++)
            if (strcmp(tsi_pq_at(r, i, name_col), tsi_rt_feat_cols[f]) == 0)
                w->has_feat[f] = true;
    }
    PQclear(r);
    tsi_info("ingest", "connected to the database conn=%d of=%d features=%d", (int)(w - in->wc),
             in->nconn,
             w->has_feat[0] + w->has_feat[1] + w->has_feat[2] + w->has_feat[3] + w->has_feat[4]);
    return 0;
fail:
    PQfinish(w->conn);
    w->conn = NULL;
    return TSI_E_UNAVAILABLE;
}

/* every writer connection, or TSI_E_UNAVAILABLE */
static int connect_db(tsi_ingest *in)
{
    for (int j = 0; j < in->nconn; j++)
        if (!in->wc[j].conn && connect_one(in, &in->wc[j]) < 0)
            return TSI_E_UNAVAILABLE;
    pthread_mutex_lock(&in->mu);
    in->st.connected = true;
    pthread_mutex_unlock(&in->mu);
    return 0;
}

static void drop_conn(tsi_ingest *in)
{
    for (int j = 0; j < in->nconn; j++) {
        if (in->wc[j].conn)
            PQfinish(in->wc[j].conn);
        in->wc[j].conn = NULL;
    }
    pthread_mutex_lock(&in->mu);
    in->st.connected = false;
    in->replay_end = in->end; /* everything queued now waited for the database */
    pthread_mutex_unlock(&in->mu);
}
static void advance(tsi_ingest *in, off_t next, size_t n, off_t first_off, long long corrupt,
                    const long long add[5])
{
    pthread_mutex_lock(&in->mu);
    in->read_off = next;
    in->st.spool_records -= (long long)n;
    in->st.spool_corrupt += corrupt;
    in->st.rows_written += add[0];
    in->st.isects_written += add[1];
    in->st.dq_written += add[2];
    in->st.rejected += add[3];
    in->st.orphans += add[4];
    if (first_off < in->replay_end)
        in->st.replayed += (long long)n;
    in->st.batches++;
    if (in->read_off >= in->end) {
        /* everything written: start the spool afresh */
        if (tsi_spool_empty(in->fd, in->path, NULL) == 0) {
            in->read_off = in->end = in->replay_end = 0;
        }
        in->st.spool_records = 0;
        pthread_cond_broadcast(&in->drained);
    }
    in->st.spool_bytes = in->end - in->read_off;
    pthread_mutex_unlock(&in->mu);
}

static void backoff_wait(tsi_ingest *in)
{
    int ms = in->backoff_ms ? in->backoff_ms * 2 : in->cfg.retry_min_ms;
    if (ms > in->cfg.retry_max_ms)
        ms = in->cfg.retry_max_ms;
    in->backoff_ms = ms;
    int jitter = (int)(rand_r(&in->rnd) % (unsigned)(ms / 4 + 1));
    ms = ms - ms / 8 + jitter; /* ±12.5 % */
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += ms / 1000;
    dl.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&in->mu);
    while (!in->stop && pthread_cond_timedwait(&in->cv, &in->mu, &dl) != ETIMEDOUT) {
    }
    pthread_mutex_unlock(&in->mu);
}

static void *writer_main(void *arg)
{
    tsi_ingest *in = arg;
    size_t cap = (size_t)in->cfg.batch_rows;
    tsi_spool_rec *v = malloc(cap * sizeof *v);
    tsi_spool_rec **pv = malloc(cap * sizeof *pv); /* the batch in spool order */
    tsi_spool_rec **pp = malloc(cap * sizeof *pp); /* the same, grouped by part */
    if (!v || !pv || !pp) {
        tsi_err("ingest", "out of memory for the writer's batch rows=%zu", cap);
        free(v);
        free(pv);
        free(pp);
        return NULL;
    }
    for (size_t i = 0; i < cap; i++)
        pv[i] = &v[i];
    size_t held = 0; /* records of v whose intersection metadata is still allocated */
    for (;;) {
        pthread_mutex_lock(&in->mu);
        while (!in->stop && (in->paused || in->read_off >= in->end))
            pthread_cond_wait(&in->cv, &in->mu);
        bool stop = in->stop;
        off_t off = in->read_off, end = in->end;
        pthread_mutex_unlock(&in->mu);
        if (stop)
            break;
        if (connect_db(in) < 0) {
            drop_conn(in);
            backoff_wait(in);
            continue;
        }
        long long corrupt = 0;
        off_t next;
        tsi_spool_recs_free(v, held);
        size_t n = tsi_spool_read(in->fd, off, end, v, cap, &next, &corrupt);
        held = n;
        long long add[5] = {0};
        if (n == 0) {
            advance(in, next, 0, off, corrupt, add); /* only garbage was left */
            continue;
        }
        if (write_batch(in, pv, pp, n, add) != 0) {
            /* a connection failed: redo the whole batch later (upserts make the records
             * already written harmless) */
            drop_conn(in);
            backoff_wait(in);
            continue;
        }
        if (add[4] > 0)
            tsi_warn("ingest", "rows of unknown intersections dropped count=%lld", add[4]);
        in->backoff_ms = 0;
        advance(in, next, n, off, corrupt, add);
    }
    tsi_spool_recs_free(v, held);
    free(v);
    free(pv);
    free(pp);
    return NULL;
}
