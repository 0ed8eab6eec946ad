/* archive/parquet_read.c — see parquet_read.h */
#include "archive/parquet_read.h"
#include "core/index.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "archive/indices.h"
#include "base/log.h"

#define US_PER_DAY (86400LL * 1000000LL)

/* ---------------------------------------------------------------- DuckDB basics -- */

int tsi_pqr_open(tsi_pqr *p, tsi_error *err)
{
    memset(p, 0, sizeof *p);
    if (duckdb_open(NULL, &p->db) != DuckDBSuccess)
        return tsi_error_set(err, TSI_E_PARQUET, "cannot open an in-memory DuckDB database", NULL);
    if (duckdb_connect(p->db, &p->con) != DuckDBSuccess) {
        duckdb_close(&p->db);
        p->db = NULL;
        return tsi_error_set(err, TSI_E_PARQUET, "cannot connect to DuckDB", NULL);
    }
    /* naive timestamps are UTC; a TIMESTAMPTZ column converts to UTC, not local time */
    (void)tsi_pqr_exec(p, "SET TimeZone = 'UTC'", NULL);
    return 0;
}

void tsi_pqr_close(tsi_pqr *p)
{
    if (!p)
        return;
    if (p->con)
        duckdb_disconnect(&p->con);
    if (p->db)
        duckdb_close(&p->db);
    p->con = NULL;
    p->db = NULL;
}

int tsi_pqr_query(tsi_pqr *p, const char *sql, duckdb_result *res, tsi_error *err)
{
    if (duckdb_query(p->con, sql, res) != DuckDBSuccess) {
        const char *m = duckdb_result_error(res);
        return tsi_error_set(err, TSI_E_PARQUET, "DuckDB query failed", "%s", m ? m : "?");
    }
    return 0;
}

int tsi_pqr_exec(tsi_pqr *p, const char *sql, tsi_error *err)
{
    duckdb_result r;
    int rc = tsi_pqr_query(p, sql, &r, err);
    duckdb_destroy_result(&r);
    return rc;
}

bool tsi_pqr_cell_text(duckdb_data_chunk ch, duckdb_type t, idx_t col, idx_t row, tsi_buf *b)
{
    duckdb_vector v = duckdb_data_chunk_get_vector(ch, col);
    uint64_t *valid = duckdb_vector_get_validity(v);
    if (valid && !duckdb_validity_row_is_valid(valid, row))
        return false;
    void *d = duckdb_vector_get_data(v);
    switch (t) {
    case DUCKDB_TYPE_BIGINT:
        tsi_buf_printf(b, "%" PRId64, ((int64_t *)d)[row]);
        return true;
    case DUCKDB_TYPE_INTEGER:
        tsi_buf_printf(b, "%" PRId32, ((int32_t *)d)[row]);
        return true;
    case DUCKDB_TYPE_SMALLINT:
        tsi_buf_printf(b, "%d", ((int16_t *)d)[row]);
        return true;
    case DUCKDB_TYPE_HUGEINT: {
        duckdb_hugeint h = ((duckdb_hugeint *)d)[row];
        tsi_buf_printf(b, "%" PRId64, (int64_t)h.lower);
        return true;
    }
    case DUCKDB_TYPE_BOOLEAN:
        tsi_buf_puts(b, ((bool *)d)[row] ? "t" : "f");
        return true;
    case DUCKDB_TYPE_DOUBLE: {
        double x = ((double *)d)[row];
        if (isnan(x))
            tsi_buf_puts(b, "NaN");
        else if (isinf(x))
            tsi_buf_puts(b, x > 0 ? "Infinity" : "-Infinity");
        else
            tsi_buf_printf(b, "%.17g", x);
        return true;
    }
    case DUCKDB_TYPE_VARCHAR: {
        duckdb_string_t *s = &((duckdb_string_t *)d)[row];
        tsi_buf_append(b, duckdb_string_t_data(s), duckdb_string_t_length(*s));
        return true;
    }
    default:
        tsi_buf_puts(b, "?");
        return true;
    }
}

int tsi_pqr_int(tsi_pqr *p, const char *sql, int64_t dflt, int64_t *out, tsi_error *err)
{
    duckdb_result r;
    int rc = tsi_pqr_query(p, sql, &r, err);
    *out = dflt;
    if (rc == 0) {
        duckdb_data_chunk ch = duckdb_fetch_chunk(r);
        if (ch && duckdb_data_chunk_get_size(ch) > 0) {
            tsi_buf b = TSI_BUF_INIT;
            if (tsi_pqr_cell_text(ch, duckdb_column_type(&r, 0), 0, 0, &b))
                *out = strtoll(tsi_buf_cstr(&b), NULL, 10);
            tsi_buf_free(&b);
        }
        if (ch)
            duckdb_destroy_data_chunk(&ch);
    }
    duckdb_destroy_result(&r);
    return rc;
}

void tsi_pqr_quote(tsi_buf *b, const char *s)
{
    tsi_buf_putc(b, '\'');
    for (; *s; s++) {
        if (*s == '\'')
            tsi_buf_putc(b, '\'');
        tsi_buf_putc(b, *s);
    }
    tsi_buf_putc(b, '\'');
}

/* ------------------------------------------------------------------------ time -- */

static int64_t days_from_civil(int y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static bool valid_date(int y, int m, int d)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1970 || y > 2200 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
        return false;
    if (m == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return false;
    return true;
}

int tsi_pqr_parse_time(const char *s, int64_t *us, tsi_error *err)
{
    int y, mo, d, h = 0, mi = 0, se = 0, n = 0;
    if (!s || sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10 || !valid_date(y, mo, d))
        goto bad;
    const char *r = s + n;
    if (*r == 'T' || *r == ' ') {
        int m2 = 0;
        if (sscanf(r + 1, "%2d:%2d%n", &h, &mi, &m2) != 2 || m2 != 5)
            goto bad;
        r += 1 + m2;
        if (*r == ':') {
            if (sscanf(r + 1, "%2d%n", &se, &m2) != 1 || m2 != 2)
                goto bad;
            r += 3;
        }
        if (*r == 'Z')
            r++;
        else if (strcmp(r, "+00:00") == 0 || strcmp(r, "+00") == 0)
            r += strlen(r);
        if (h > 23 || mi > 59 || se > 59)
            goto bad;
    }
    if (*r != '\0')
        goto bad;
    *us = (days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400LL + h * 3600LL + mi * 60LL + se) *
          1000000LL;
    return 0;
bad:
    return tsi_error_set(err, TSI_E_INVALID, "not a UTC date or time",
                         "'%s': expected YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][Z]", s ? s : "");
}

const char *tsi_pqr_fmt_time(int64_t us, char *buf, size_t len)
{
    time_t t = (time_t)(us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000));
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
    return buf;
}

/* ----------------------------------------------------------------- discovery -- */

static int add_file(tsi_pqr_files *f, const char *path, tsi_pqr_layout layout, int64_t day_us)
{
    if (f->n == f->cap) {
        size_t nc = f->cap ? f->cap * 2 : 64;
        tsi_pqr_file *nv = realloc(f->v, nc * sizeof *nv);
        if (!nv)
            return TSI_E_NOMEM;
        f->v = nv;
        f->cap = nc;
    }
    f->v[f->n].path = strdup(path);
    if (!f->v[f->n].path)
        return TSI_E_NOMEM;
    f->v[f->n].layout = layout;
    f->v[f->n].day_us = day_us;
    f->n++;
    return 0;
}

static bool is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* a number of exactly `digits` digits */
static bool num_name(const char *s, int digits, int *v)
{
    if ((int)strlen(s) != digits)
        return false;
    for (int i = 0; i < digits; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    *v = atoi(s);
    return true;
}

static int cmp_file(const void *a, const void *b)
{
    const tsi_pqr_file *x = a, *y = b;
    if (x->day_us != y->day_us)
        return x->day_us < y->day_us ? -1 : 1;
    return strcmp(x->path, y->path);
}

static int list_dir(const char *dir, char ***names, size_t *n)
{
    DIR *d = opendir(dir);
    *names = NULL;
    *n = 0;
    if (!d)
        return errno == ENOENT ? 0 : TSI_E_IO;
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 32;
            char **nn = realloc(*names, cap * sizeof *nn);
            if (!nn) {
                closedir(d);
                return TSI_E_NOMEM;
            }
            *names = nn;
        }
        (*names)[(*n)++] = strdup(e->d_name);
    }
    closedir(d);
    return 0;
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

int tsi_pqr_find(const char *dir, int64_t since_us, int64_t until_us, tsi_pqr_files *out,
                 tsi_error *err)
{
    memset(out, 0, sizeof *out);
    char base[PATH_MAX];
    snprintf(base, sizeof base, "%s/indices", dir);
    if (!is_dir(base))
        snprintf(base, sizeof base, "%s", dir);
    if (!is_dir(base))
        return tsi_error_set(err, TSI_E_NOTFOUND, "the indices directory does not exist", "%s",
                             dir);
    int64_t lo = since_us == INT64_MIN ? INT64_MIN : since_us - US_PER_DAY;
    int64_t hi = until_us == INT64_MAX ? INT64_MAX : until_us + US_PER_DAY;
    char **top;
    size_t ntop;
    int rc = list_dir(base, &top, &ntop);
    if (rc < 0)
        return tsi_error_set(err, rc, "cannot list the indices directory", "%s: %s", base,
                             strerror(errno));
    for (size_t i = 0; i < ntop && rc == 0; i++) {
        char p[PATH_MAX];
        int y, m, d;
        snprintf(p, sizeof p, "%s/%s", base, top[i]);
        /* legacy: indices_YYYY-MM-DD.parquet */
        if (strncmp(top[i], "indices_", 8) == 0 && ends_with(top[i], ".parquet") &&
            strlen(top[i]) == 8 + 10 + 8 && sscanf(top[i] + 8, "%4d-%2d-%2d", &y, &m, &d) == 3 &&
            valid_date(y, m, d)) {
            int64_t day = days_from_civil(y, (unsigned)m, (unsigned)d) * US_PER_DAY;
            if (day >= lo && day <= hi)
                rc = add_file(out, p, TSI_PQR_LEGACY, day);
            continue;
        }
        if (!num_name(top[i], 4, &y) || !is_dir(p))
            continue;
        char **ms;
        size_t nm;
        if ((rc = list_dir(p, &ms, &nm)) < 0)
            break;
        for (size_t j = 0; j < nm && rc == 0; j++) {
            char pm[PATH_MAX];
            snprintf(pm, sizeof pm, "%s/%s", p, ms[j]);
            if (!num_name(ms[j], 2, &m) || !is_dir(pm))
                continue;
            char **ds;
            size_t nd;
            if ((rc = list_dir(pm, &ds, &nd)) < 0)
                break;
            for (size_t k = 0; k < nd && rc == 0; k++) {
                char pd[PATH_MAX];
                snprintf(pd, sizeof pd, "%s/%s", pm, ds[k]);
                if (!num_name(ds[k], 2, &d) || !valid_date(y, m, d) || !is_dir(pd))
                    continue;
                int64_t day = days_from_civil(y, (unsigned)m, (unsigned)d) * US_PER_DAY;
                if (day < lo || day > hi)
                    continue;
                char **fs;
                size_t nf;
                if ((rc = list_dir(pd, &fs, &nf)) < 0)
                    break;
                for (size_t q = 0; q < nf && rc == 0; q++) {
                    /* temporary names of files being written end otherwise; the
                     * conflict audit files (conflicts_*) are not index rows */
                    if (!tsi_indices_rows_file(fs[q]))
                        continue;
                    char pf[PATH_MAX];
                    snprintf(pf, sizeof pf, "%s/%s", pd, fs[q]);
                    rc = add_file(out, pf, TSI_PQR_TSI, day);
                }
                free_names(fs, nf);
            }
            free_names(ds, nd);
        }
        free_names(ms, nm);
    }
    free_names(top, ntop);
    if (rc < 0) {
        tsi_pqr_files_free(out);
        return tsi_error_set(err, rc, "cannot list the indices archive", "%s", base);
    }
    if (out->n > 1)
        qsort(out->v, out->n, sizeof *out->v, cmp_file);
    return 0;
}

void tsi_pqr_files_free(tsi_pqr_files *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n; i++)
        free(f->v[i].path);
    free(f->v);
    memset(f, 0, sizeof *f);
}

/* -------------------------------------------------------------- reading files -- */

typedef struct colmap {
    const char *out;     /* pq_rows column */
    const char *legacy;  /* legacy name, NULL = absent (NULL value) */
    const char *tsi;     /* tsi layout name */
    bool legacy_req;     /* required in the legacy layout */
    bool tsi_req;        /* required in the tsi layout */
    const char *cast_to; /* DuckDB type of pq_rows */
} colmap;

static const colmap COLS[] = {
    {"id_raw", "intersection", "intersection_id", true, true, "VARCHAR"},
    {"ts", "time_15min", "timestamp", true, true, "TIMESTAMP"},
    {"combined_index", "Combined_Index", "combined_index", true, true, "DOUBLE"},
    {"combined_index_eb", "Combined_Index_EB", "combined_index_eb", false, false, "DOUBLE"},
    {"vru_index", "VRU_Index", "vru_index", true, false, "DOUBLE"},
    {"vru_index_eb", NULL, "vru_index_eb", false, false, "DOUBLE"},
    {"vehicle_index", "Vehicle_Index", "vehicle_index", true, false, "DOUBLE"},
    {"vehicle_index_eb", NULL, "vehicle_index_eb", false, false, "DOUBLE"},
    {"traffic_volume", "vehicle_count", "traffic_volume", true, true, "DOUBLE"},
    {"vru_count", "psm_vru_count", "vru_count", true, true, "DOUBLE"},
    {"vehicle_event_count", "vehicle_event_count", "vehicle_event_count", true, true, "DOUBLE"},
    {"vru_event_count", "vru_event_count", "vru_event_count", true, true, "DOUBLE"},
    {"hour_of_day", "hour_of_day", "hour_of_day", true, true, "DOUBLE"},
    {"day_of_week", "day_of_week", "day_of_week", true, true, "DOUBLE"},
    /* the features the normalisation constants need (tsi layout only; migration 010) */
    {"avg_speed", NULL, "avg_speed", false, false, "DOUBLE"},
    {"speed_stddev", NULL, "speed_stddev", false, false, "DOUBLE"},
    {"hard_braking_count", NULL, "hard_braking_count", false, false, "DOUBLE"},
    /* model provenance (tsi layout only; migration 060) */
    {"constants_id", NULL, "constants_id", false, false, "DOUBLE"},
    {"algorithm_version", NULL, "algorithm_version", false, false, "DOUBLE"},
};
#define NCOLS (sizeof COLS / sizeof COLS[0])

static const char PQ_ROWS_DDL[] =
    "CREATE OR REPLACE TABLE pq_files (file_id INTEGER, path VARCHAR, layout VARCHAR,"
    " bin_minutes INTEGER, nrows BIGINT, error VARCHAR);\n"
    "CREATE OR REPLACE TABLE pq_rows (file_id INTEGER, row_no BIGINT, id_raw VARCHAR,"
    " ts TIMESTAMP, combined_index DOUBLE, combined_index_eb DOUBLE, vru_index DOUBLE,"
    " vru_index_eb DOUBLE, vehicle_index DOUBLE, vehicle_index_eb DOUBLE,"
    " traffic_volume DOUBLE, vru_count DOUBLE, vehicle_event_count DOUBLE,"
    " vru_event_count DOUBLE, hour_of_day DOUBLE, day_of_week DOUBLE, avg_speed DOUBLE,"
    " speed_stddev DOUBLE, hard_braking_count DOUBLE, constants_id DOUBLE,"
    " algorithm_version DOUBLE)";

/* The column names (lower case) of a Parquet source expression; n = count. */
static int describe(tsi_pqr *p, const char *src, char ***names, size_t *n, tsi_error *err)
{
    tsi_buf sql = TSI_BUF_INIT;
    tsi_buf_printf(&sql, "SELECT lower(column_name) FROM (DESCRIBE SELECT * FROM %s)", src);
    duckdb_result r;
    int rc = tsi_pqr_query(p, tsi_buf_cstr(&sql), &r, err);
    tsi_buf_free(&sql);
    *names = NULL;
    *n = 0;
    if (rc == 0) {
        size_t cap = 0;
        duckdb_data_chunk ch;
        while ((ch = duckdb_fetch_chunk(r)) != NULL) {
            idx_t m = duckdb_data_chunk_get_size(ch);
            for (idx_t i = 0; i < m; i++) {
                tsi_buf b = TSI_BUF_INIT;
                tsi_pqr_cell_text(ch, DUCKDB_TYPE_VARCHAR, 0, i, &b);
                if (*n == cap) {
                    cap = cap ? cap * 2 : 32;
                    *names = realloc(*names, cap * sizeof **names);
                }
                (*names)[(*n)++] = tsi_buf_take(&b);
            }
            duckdb_destroy_data_chunk(&ch);
        }
    }
    duckdb_destroy_result(&r);
    return rc;
}

static bool has_col(char **names, size_t n, const char *want)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(names[i], want) == 0)
            return true;
    return false;
}

/* Appends the SELECT list mapping a source's columns to pq_rows, or returns the name of
 * the first missing required column. */
static const char *select_list(tsi_buf *b, tsi_pqr_layout layout, char **names, size_t n)
{
    for (size_t i = 0; i < NCOLS; i++) {
        const colmap *c = &COLS[i];
        const char *src = layout == TSI_PQR_LEGACY ? c->legacy : c->tsi;
        bool req = layout == TSI_PQR_LEGACY ? c->legacy_req : c->tsi_req;
        bool have = src && has_col(names, n, src);
        if (!have && req)
            return src;
        tsi_buf_puts(b, ", ");
        if (!have)
            tsi_buf_printf(b, "CAST(NULL AS %s)", c->cast_to);
        else if (strcmp(c->cast_to, "VARCHAR") == 0)
            tsi_buf_printf(b, "trim(CAST(\"%s\" AS VARCHAR))", src);
        else
            tsi_buf_printf(b, "TRY_CAST(\"%s\" AS %s)", src, c->cast_to);
    }
    return NULL;
}

static void free_strs(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* Registers file i in pq_files with an error (its rows count as bad). */
static int file_error(tsi_pqr *p, int fid, const tsi_pqr_file *f, const char *why_in,
                      tsi_error *err)
{
    char why[512]; /* one line: DuckDB's messages span several */
    snprintf(why, sizeof why, "%s", why_in);
    for (char *w = why; *w; w++)
        if (*w == '\n' || *w == '\r' || *w == '\t')
            *w = ' ';
    char *cut = strstr(why, "  LINE 1:");
    if (cut)
        *cut = '\0';
    tsi_buf sql = TSI_BUF_INIT, src = TSI_BUF_INIT;
    tsi_pqr_quote(&src, f->path);
    int64_t nrows = -1;
    tsi_buf_printf(&sql, "SELECT sum(num_rows) FROM parquet_file_metadata(%s)", tsi_buf_cstr(&src));
    if (tsi_pqr_int(p, tsi_buf_cstr(&sql), -1, &nrows, NULL) < 0)
        nrows = -1;
    tsi_buf_reset(&sql);
    tsi_buf_printf(&sql, "INSERT INTO pq_files VALUES (%d, %s, '%s', 1, %" PRId64 ", ", fid,
                   tsi_buf_cstr(&src), f->layout == TSI_PQR_LEGACY ? "legacy" : "tsi", nrows);
    tsi_pqr_quote(&sql, why);
    tsi_buf_puts(&sql, ")");
    int rc = tsi_pqr_exec(p, tsi_buf_cstr(&sql), err);
    tsi_warn("backfill", "unreadable file file=%s rows=%" PRId64 " reason=\"%s\"", f->path, nrows,
             why);
    tsi_buf_free(&sql);
    tsi_buf_free(&src);
    return rc;
}

static int load_one(tsi_pqr *p, int fid, const tsi_pqr_file *f, tsi_error *err)
{
    tsi_buf src = TSI_BUF_INIT, sql = TSI_BUF_INIT;
    char **names = NULL;
    size_t n = 0;
    tsi_error e2 = {0};
    int rc = 0;
    tsi_buf_puts(&src, "read_parquet(");
    tsi_pqr_quote(&src, f->path);
    tsi_buf_puts(&src, ", file_row_number = true)");
    if (describe(p, tsi_buf_cstr(&src), &names, &n, &e2) < 0) {
        rc = file_error(p, fid, f, e2.detail, err);
        goto done;
    }
    tsi_buf_printf(&sql, "INSERT INTO pq_rows SELECT %d, file_row_number + 1", fid);
    const char *missing = select_list(&sql, f->layout, names, n);
    if (missing) {
        char why[256];
        snprintf(why, sizeof why, "required column %s is missing", missing);
        rc = file_error(p, fid, f, why, err);
        goto done;
    }
    tsi_buf_printf(&sql, " FROM %s", tsi_buf_cstr(&src));
    if (tsi_pqr_exec(p, tsi_buf_cstr(&sql), &e2) < 0) {
        rc = file_error(p, fid, f, e2.detail, err);
        goto done;
    }
    tsi_buf_reset(&sql);
    tsi_buf_printf(&sql, "INSERT INTO pq_files SELECT %d, ", fid);
    tsi_pqr_quote(&sql, f->path);
    tsi_buf_printf(&sql, ", '%s', 1, (SELECT count(*) FROM pq_rows WHERE file_id = %d), NULL",
                   f->layout == TSI_PQR_LEGACY ? "legacy" : "tsi", fid);
    rc = tsi_pqr_exec(p, tsi_buf_cstr(&sql), err);
done:
    free_strs(names, n);
    tsi_buf_free(&src);
    tsi_buf_free(&sql);
    return rc;
}

/* Loads several files of one layout with one read_parquet (DuckDB reads them in
 * parallel); falls back to one file at a time when the group cannot be read as one, so
 * that the file at fault is named. fids[i] is the file id of fs[i]. */
static int load_group(tsi_pqr *p, const int *fids, const tsi_pqr_file *const *fs, size_t nf,
                      tsi_pqr_layout layout, tsi_error *err)
{
    tsi_buf list = TSI_BUF_INIT, sql = TSI_BUF_INIT, src = TSI_BUF_INIT;
    char **names = NULL;
    size_t n = 0;
    int rc = 0;
    if (nf == 0)
        return 0;
    tsi_buf_puts(&list, "[");
    for (size_t i = 0; i < nf; i++) {
        if (i)
            tsi_buf_puts(&list, ", ");
        tsi_pqr_quote(&list, fs[i]->path);
    }
    tsi_buf_puts(&list, "]");
    tsi_buf_printf(&sql, "CREATE OR REPLACE TEMP TABLE pq_group AS SELECT * FROM (VALUES ");
    for (size_t i = 0; i < nf; i++) {
        tsi_buf_printf(&sql, "%s(%d, ", i ? ", " : "", fids[i]);
        tsi_pqr_quote(&sql, fs[i]->path);
        tsi_buf_puts(&sql, ")");
    }
    tsi_buf_puts(&sql, ") AS g(file_id, path)");
    if ((rc = tsi_pqr_exec(p, tsi_buf_cstr(&sql), err)) < 0)
        goto done;
    tsi_buf_printf(&src,
                   "read_parquet(%s, union_by_name = true, filename = true,"
                   " file_row_number = true)",
                   tsi_buf_cstr(&list));
    tsi_error e2 = {0};
    if (describe(p, tsi_buf_cstr(&src), &names, &n, &e2) == 0) {
        tsi_buf_reset(&sql);
        tsi_buf_puts(&sql, "INSERT INTO pq_rows SELECT g.file_id, s.file_row_number + 1");
        const char *missing = select_list(&sql, layout, names, n);
        tsi_buf_printf(&sql, " FROM %s s JOIN pq_group g ON g.path = s.filename",
                       tsi_buf_cstr(&src));
        if (!missing && tsi_pqr_exec(p, tsi_buf_cstr(&sql), &e2) == 0) {
            tsi_buf_reset(&sql);
            tsi_buf_printf(&sql,
                           "INSERT INTO pq_files SELECT g.file_id, g.path, '%s', 1,"
                           " coalesce(c.n, 0), NULL FROM pq_group g LEFT JOIN"
                           " (SELECT file_id, count(*) AS n FROM pq_rows"
                           "   WHERE file_id BETWEEN %d AND %d GROUP BY file_id) c"
                           " ON c.file_id = g.file_id ORDER BY g.file_id",
                           layout == TSI_PQR_LEGACY ? "legacy" : "tsi", fids[0], fids[nf - 1]);
            rc = tsi_pqr_exec(p, tsi_buf_cstr(&sql), err);
            goto done;
        }
    }
    /* one at a time, to say which file is at fault */
    for (size_t i = 0; i < nf && rc == 0; i++) {
        char del[64];
        snprintf(del, sizeof del, "DELETE FROM pq_rows WHERE file_id = %d", fids[i]);
        if ((rc = tsi_pqr_exec(p, del, err)) == 0)
            rc = load_one(p, fids[i], fs[i], err);
    }
done:
    free_strs(names, n);
    tsi_buf_free(&list);
    tsi_buf_free(&sql);
    tsi_buf_free(&src);
    return rc;
}

/* A legacy file whose own schema lacks a required column, or that cannot be read, is
 * reported as a whole (its rows counted); returns 1 when it is fit for a group. */
static int legacy_check(tsi_pqr *p, int fid, const tsi_pqr_file *f, tsi_error *err)
{
    tsi_buf src = TSI_BUF_INIT, sel = TSI_BUF_INIT;
    char **names = NULL;
    size_t n = 0;
    tsi_error e2 = {0};
    int rc = 1;
    tsi_buf_puts(&src, "read_parquet(");
    tsi_pqr_quote(&src, f->path);
    tsi_buf_puts(&src, ")");
    if (describe(p, tsi_buf_cstr(&src), &names, &n, &e2) < 0) {
        rc = file_error(p, fid, f, e2.detail, err);
    } else {
        const char *missing = select_list(&sel, TSI_PQR_LEGACY, names, n);
        if (missing) {
            char why[256];
            snprintf(why, sizeof why, "required column %s is missing", missing);
            rc = file_error(p, fid, f, why, err);
        }
    }
    free_strs(names, n);
    tsi_buf_free(&src);
    tsi_buf_free(&sel);
    return rc;
}

#define GROUP_MAX 8 /* files per read_parquet: progress granularity vs parallelism */

/* Bin length of legacy files: 15 when every distinct timestamp is on a quarter hour and
 * consecutive distinct timestamps are >= 15 minutes apart, else 1 (the default set on
 * insert). The gaps are only looked at in files whose timestamps are all quarter hours. */
static const char SQL_BINS[] =
    "UPDATE pq_files SET bin_minutes = 15 WHERE file_id IN (\n"
    "  WITH q AS (SELECT r.file_id FROM pq_rows r JOIN pq_files f ON f.file_id = r.file_id\n"
    "              WHERE f.layout = 'legacy' AND r.ts IS NOT NULL GROUP BY r.file_id\n"
    "             HAVING bool_and(epoch_us(r.ts) % 900000000 = 0)),\n"
    "       g AS (SELECT file_id, ts - lag(ts) OVER (PARTITION BY file_id ORDER BY ts) AS gap\n"
    "               FROM (SELECT DISTINCT file_id, ts FROM pq_rows\n"
    "                      WHERE ts IS NOT NULL AND file_id IN (SELECT file_id FROM q)))\n"
    "  SELECT file_id FROM q\n"
    "   WHERE file_id NOT IN (SELECT file_id FROM g WHERE gap < INTERVAL 15 MINUTE))";

/* Classification: the reason a row cannot be loaded, or NULL. %s = since, until (µs). */
#define RANGE_CHECK(col, lo, hi)                                                                   \
    "    WHEN m." col " IS NOT NULL AND NOT (m." col " BETWEEN " lo " AND " hi ") THEN '" col      \
    " ' || CAST(m." col " AS VARCHAR) || ' outside " lo ".." hi "'\n"
#define COUNT_CHECK(col)                                                                           \
    "    WHEN m." col " IS NULL THEN '" col " missing'\n"                                          \
    "    WHEN NOT (m." col " BETWEEN 0 AND 2147483647 AND m." col " = floor(m." col                \
    ")) THEN '" col " ' || CAST(m." col " AS VARCHAR) || ' is not a count'\n"
#define INT_CHECK(col, lo, hi)                                                                     \
    "    WHEN m." col " IS NULL THEN '" col " missing'\n"                                          \
    "    WHEN NOT (m." col " BETWEEN " lo " AND " hi " AND m." col " = floor(m." col               \
    ")) THEN '" col " ' || CAST(m." col " AS VARCHAR) || ' outside " lo ".." hi "'\n"

static const char SQL_CLASSIFY[] =
    "CREATE OR REPLACE TABLE pq_class AS\n"
    "WITH r AS (\n"
    "  SELECT r.*, f.bin_minutes, TRY_CAST(r.id_raw AS DOUBLE) AS id_num\n"
    "    FROM pq_rows r JOIN pq_files f USING (file_id)\n"
    "   WHERE r.ts IS NULL OR (r.ts >= make_timestamp(%" PRId64
    ") AND r.ts < make_timestamp(%" PRId64 "))\n"
    "), m AS (\n"
    "  SELECT r.*, CASE WHEN r.id_num IS NOT NULL THEN\n"
    "           CASE WHEN isfinite(r.id_num) AND r.id_num >= 0 AND r.id_num < 9.0e15\n"
    "                 AND r.id_num = floor(r.id_num) THEN CAST(r.id_num AS BIGINT) END\n"
    "         ELSE kn.id END AS iid\n"
    "    FROM r LEFT JOIN (SELECT name, min(id) AS id FROM pq_known GROUP BY name\n"
    "                       HAVING count(*) = 1) kn ON r.id_num IS NULL AND kn.name = r.id_raw\n"
    "), c AS (\n"
    "  SELECT m.* EXCLUDE (id_num), CASE\n"
    "    WHEN m.id_raw IS NULL OR m.id_raw = '' THEN 'intersection id missing'\n"
    "    WHEN m.iid IS NULL THEN 'intersection id ''' || m.id_raw || ''' is neither a "
    "non-negative integer nor a known name'\n"
    "    WHEN k.id IS NULL THEN 'unknown intersection ' || CAST(m.iid AS VARCHAR)\n"
    "    WHEN m.ts IS NULL THEN 'timestamp missing or unreadable'\n"
    "    WHEN m.ts > make_timestamp(%" PRId64 ") THEN 'timestamp ' || CAST(m.ts AS VARCHAR) || "
    "' is in the future'\n"
    "    WHEN m.ts <> date_trunc('minute', m.ts) THEN 'timestamp ' || CAST(m.ts AS VARCHAR) || "
    "' is not on a minute boundary'\n"
    "    WHEN m.combined_index IS NULL THEN 'combined_index missing'\n" RANGE_CHECK(
        "combined_index", "0", "100") RANGE_CHECK("combined_index_eb", "0", "100")
        RANGE_CHECK("vru_index", "0", "100") RANGE_CHECK("vru_index_eb", "0", "100") RANGE_CHECK(
            "vehicle_index", "0", "100") RANGE_CHECK("vehicle_index_eb", "0",
                                                     "100") COUNT_CHECK("traffic_volume")
            COUNT_CHECK("vru_count") COUNT_CHECK("vehicle_event_count") COUNT_CHECK(
                "vru_event_count") INT_CHECK("hour_of_day", "0", "23") INT_CHECK("day_of_week", "0",
                                                                                 "6")
                RANGE_CHECK("avg_speed", "0", "1000") RANGE_CHECK(
                    "speed_stddev", "0",
                    "1000") "    WHEN m.hard_braking_count IS NOT NULL AND NOT "
                            "(m.hard_braking_count BETWEEN 0 AND "
                            "2147483647 AND m.hard_braking_count = floor(m.hard_braking_count)) "
                            "THEN "
                            "'hard_braking_count ' || CAST(m.hard_braking_count AS VARCHAR) || ' "
                            "is not a count'\n"
                            "    ELSE NULL END AS reason\n"
                            "    FROM m LEFT JOIN pq_known k ON k.id = m.iid\n"
                            /* duplicates among the valid rows: the first (by file, row) stays, the
                             * others are reported with the place of the first; only duplicated keys
                             * are ranked */
                            "), d AS (\n"
                            "  SELECT iid, ts FROM c WHERE reason IS NULL GROUP BY iid, ts HAVING "
                            "count(*) > 1\n"
                            "), f AS (\n"
                            "  SELECT c.iid, c.ts, c.file_id, c.row_no,\n"
                            "         row_number() OVER (PARTITION BY c.iid, c.ts ORDER BY "
                            "c.file_id, c.row_no) AS rn\n"
                            "    FROM c JOIN d ON d.iid = c.iid AND d.ts = c.ts WHERE c.reason IS "
                            "NULL\n"
                            ")\n"
                            "SELECT c.* EXCLUDE (reason),\n"
                            "       CASE WHEN c.reason IS NULL AND f.rn > 1\n"
                            "            THEN 'duplicate of ' || pf.path || ' row ' || "
                            "CAST(f1.row_no AS VARCHAR)\n"
                            "            ELSE c.reason END AS reason\n"
                            "  FROM c LEFT JOIN f ON f.file_id = c.file_id AND f.row_no = "
                            "c.row_no\n"
                            "  LEFT JOIN f f1 ON f1.iid = f.iid AND f1.ts = f.ts AND f1.rn = 1\n"
                            "  LEFT JOIN pq_files pf ON pf.file_id = f1.file_id";

static const char SQL_VIEWS[] =
    "CREATE OR REPLACE VIEW pq_valid AS\n"
    "SELECT iid, ts, epoch_us(ts) AS ts_us, combined_index, combined_index_eb, vru_index,\n"
    "       vru_index_eb, vehicle_index, vehicle_index_eb,\n"
    "       CAST(traffic_volume AS INTEGER) AS traffic_volume,\n"
    "       CAST(vru_count AS INTEGER) AS vru_count,\n"
    "       CAST(vehicle_event_count AS INTEGER) AS vehicle_event_count,\n"
    "       CAST(vru_event_count AS INTEGER) AS vru_event_count,\n"
    "       CAST(hour_of_day AS SMALLINT) AS hour_of_day,\n"
    "       CAST(day_of_week AS SMALLINT) AS day_of_week,\n"
    "       avg_speed, speed_stddev, CAST(hard_braking_count AS INTEGER) AS hard_braking_count,\n"
    /* provenance that is not a positive integer in range is not known (NULL), never a reason
     * to refuse the row */
    "       CASE WHEN constants_id >= 1 AND constants_id < 9.0e15\n"
    "             AND constants_id = floor(constants_id)\n"
    "            THEN CAST(constants_id AS BIGINT) END AS constants_id,\n"
    "       CASE WHEN algorithm_version BETWEEN 1 AND 32767\n"
    "             AND algorithm_version = floor(algorithm_version)\n"
    "            THEN CAST(algorithm_version AS SMALLINT) END AS algorithm_version,\n"
    "       bin_minutes, coalesce(combined_index_eb, combined_index) AS si,\n"
    "       coalesce(vru_index_eb, vru_index) AS vru_si,\n"
    "       coalesce(vehicle_index_eb, vehicle_index) AS vehicle_si, file_id, row_no\n"
    "  FROM pq_class WHERE reason IS NULL;\n"
    /* domain.md §5 per hour; a row stands for bin_minutes minutes (1 for tsi's rows). DuckDB
     * aggregates in parallel: the last bit of a sum may differ between runs, so writers
     * compare with a relative tolerance of 1e-12 (backfill.c). */
    "CREATE OR REPLACE TABLE pq_hourly AS\n"
    "SELECT iid, epoch_us(date_trunc('hour', ts)) AS hour_us,\n"
    "       sum(si * bin_minutes) / sum(bin_minutes) AS avg_si,\n"
    "       min(si) AS min_si, max(si) AS max_si,\n"
    "       stddev_samp(si) AS std_si,\n"
    "       CAST(sum(traffic_volume) AS BIGINT) AS total_volume,\n"
    "       CAST(sum(traffic_volume) AS DOUBLE) / sum(bin_minutes) AS avg_volume,\n"
    "       CAST(least(sum(CASE WHEN si > " TSI_RISK_HIGH_SQL
    " THEN bin_minutes ELSE 0 END), 60) AS INTEGER)\n"
    "           AS high_risk_minutes,\n"
    "       least(sum(bin_minutes), 60) / 60.0 AS data_quality_score,\n"
    "       CAST(sum(bin_minutes) AS BIGINT) AS minutes, count(*) AS nrows,\n"
    /* the sub-indices (migration 060): each mean over the minutes that have it */
    "       sum(vru_index * bin_minutes) / sum(bin_minutes) FILTER (WHERE vru_index IS NOT NULL)\n"
    "           AS avg_vru_index,\n"
    "       CAST(coalesce(sum(bin_minutes) FILTER (WHERE vru_index IS NOT NULL), 0) AS INTEGER)\n"
    "           AS n_vru_index,\n"
    "       sum(vru_index_eb * bin_minutes) / sum(bin_minutes) FILTER (WHERE vru_index_eb IS NOT "
    "NULL)\n"
    "           AS avg_vru_index_eb,\n"
    "       CAST(coalesce(sum(bin_minutes) FILTER (WHERE vru_index_eb IS NOT NULL), 0) AS "
    "INTEGER)\n"
    "           AS n_vru_index_eb,\n"
    "       sum(vru_si * bin_minutes) / sum(bin_minutes) FILTER (WHERE vru_si IS NOT NULL)\n"
    "           AS avg_vru_si,\n"
    "       CAST(coalesce(sum(bin_minutes) FILTER (WHERE vru_si IS NOT NULL), 0) AS INTEGER)\n"
    "           AS n_vru_si,\n"
    "       min(vru_si) AS min_vru_si, max(vru_si) AS max_vru_si,\n"
    "       sum(vehicle_index * bin_minutes) / sum(bin_minutes) FILTER (WHERE vehicle_index IS NOT "
    "NULL)\n"
    "           AS avg_vehicle_index,\n"
    "       CAST(coalesce(sum(bin_minutes) FILTER (WHERE vehicle_index IS NOT NULL), 0) AS "
    "INTEGER)\n"
    "           AS n_vehicle_index,\n"
    "       sum(vehicle_index_eb * bin_minutes) / sum(bin_minutes) FILTER (WHERE vehicle_index_eb "
    "IS NOT NULL)\n"
    "           AS avg_vehicle_index_eb,\n"
    "       CAST(coalesce(sum(bin_minutes) FILTER (WHERE vehicle_index_eb IS NOT NULL), 0) AS "
    "INTEGER)\n"
    "           AS n_vehicle_index_eb,\n"
    "       sum(vehicle_si * bin_minutes) / sum(bin_minutes) FILTER (WHERE vehicle_si IS NOT "
    "NULL)\n"
    "           AS avg_vehicle_si,\n"
    "       CAST(coalesce(sum(bin_minutes) FILTER (WHERE vehicle_si IS NOT NULL), 0) AS INTEGER)\n"
    "           AS n_vehicle_si,\n"
    "       min(vehicle_si) AS min_vehicle_si, max(vehicle_si) AS max_vehicle_si,\n"
    /* the model provenance as PostgreSQL array text */
    "       '{' || coalesce(array_to_string(list_sort(list_distinct(list(constants_id))), ','),\n"
    "           '') || '}' AS constants_ids,\n"
    "       '{' || coalesce(array_to_string(list_sort(list_distinct(list(algorithm_version))),\n"
    "           ','), '') || '}' AS algorithm_versions\n"
    "  FROM pq_valid GROUP BY iid, date_trunc('hour', ts);\n"
    /* the constants' features store of the 1-minute rows (safety_features_hourly) */
    "CREATE OR REPLACE TABLE pq_features AS\n"
    "SELECT iid, epoch_us(date_trunc('hour', ts)) AS hour_us, hour_of_day,\n"
    "       CAST(count(*) AS INTEGER) AS minutes, max(vru_event_count) AS max_vru_events,\n"
    "       max(vehicle_event_count) AS max_vehicle_events, max(traffic_volume) AS max_volume,\n"
    "       max(speed_stddev) AS max_speed_stddev, max(hard_braking_count) AS max_hard_braking,\n"
    "       '{' || coalesce(array_to_string(list_transform(list_sort(list(avg_speed)\n"
    "           FILTER (WHERE avg_speed > 0)), x -> printf('%.17g', x)), ','), '') || '}'\n"
    "           AS speeds,\n"
    "       CAST(count(vru_index) AS INTEGER) AS n_vru, sum(vru_index) AS sum_vru,\n"
    "       CAST(count(vehicle_index) AS INTEGER) AS n_vehicle, sum(vehicle_index) AS "
    "sum_vehicle,\n"
    "       CAST(count(combined_index) AS INTEGER) AS n_combined,\n"
    "       sum(combined_index) AS sum_combined\n"
    "  FROM pq_valid WHERE bin_minutes = 1\n"
    " GROUP BY iid, date_trunc('hour', ts), hour_of_day";

static void step(const char *what, struct timespec *t)
{
    struct timespec n;
    clock_gettime(CLOCK_MONOTONIC, &n);
    tsi_debug("parquet", "step=%s seconds=%.3f", what,
              (double)(n.tv_sec - t->tv_sec) + (double)(n.tv_nsec - t->tv_nsec) / 1e9);
    *t = n;
}

int tsi_pqr_read(tsi_pqr *p, const char *dir, int64_t since_us, int64_t until_us, int64_t now_us,
                 int bin_minutes, tsi_pqr_progress cb, void *ud, tsi_pqr_summary *sum,
                 tsi_error *err)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    tsi_pqr_files files;
    memset(sum, 0, sizeof *sum);
    int rc = tsi_pqr_find(dir, since_us, until_us, &files, err);
    if (rc < 0)
        return rc;
    char sql[4096];
    if ((rc = tsi_pqr_exec(p, PQ_ROWS_DDL, err)) < 0)
        goto done;
    /* files in groups: tsi by day (one schema), legacy after a per-file schema check */
    int fids[GROUP_MAX];
    const tsi_pqr_file *fs[GROUP_MAX];
    for (size_t i = 0; i < files.n && rc == 0;) {
        tsi_pqr_layout lay = files.v[i].layout;
        size_t ng = 0, j = i;
        for (; j < files.n && ng < GROUP_MAX && files.v[j].layout == lay; j++) {
            if (lay == TSI_PQR_TSI && files.v[j].day_us != files.v[i].day_us)
                break;
            if (lay == TSI_PQR_LEGACY) {
                int ok = legacy_check(p, (int)j, &files.v[j], err);
                if (ok < 0) {
                    rc = ok;
                    break;
                }
                if (ok == 0)
                    continue;
            }
            fids[ng] = (int)j;
            fs[ng++] = &files.v[j];
        }
        if (rc == 0)
            rc = load_group(p, fids, fs, ng, lay, err);
        i = j;
        if (cb && rc == 0) {
            int64_t rows = 0;
            tsi_pqr_int(p, "SELECT count(*) FROM pq_rows", 0, &rows, NULL);
            cb(ud, "read", (int64_t)i, (int64_t)files.n, rows);
        }
    }
    if (rc < 0)
        goto done;
    step("read", &t);
    if (bin_minutes > 0) {
        snprintf(sql, sizeof sql, "UPDATE pq_files SET bin_minutes = %d", bin_minutes);
        rc = tsi_pqr_exec(p, sql, err);
    } else {
        rc = tsi_pqr_exec(p, SQL_BINS, err);
    }
    if (rc < 0)
        goto done;
    step("bins", &t);
    /* known intersections: the caller's pq_known (tools/pqr_pg.h: PostgreSQL's), else
     * every numeric id */
    if ((rc = tsi_pqr_exec(p,
                           "CREATE TABLE IF NOT EXISTS pq_known AS SELECT DISTINCT"
                           " TRY_CAST(TRY_CAST(id_raw AS DOUBLE) AS BIGINT) AS id,"
                           " CAST(NULL AS VARCHAR) AS name FROM pq_rows",
                           err)) < 0) {
        goto done;
    }
    {
        size_t need = sizeof SQL_CLASSIFY + 64;
        char *q = malloc(need);
        if (!q) {
            rc = tsi_error_set(err, TSI_E_NOMEM, "out of memory", NULL);
            goto done;
        }
        snprintf(q, need, SQL_CLASSIFY, since_us, until_us,
                 (int64_t)(now_us + 300 * INT64_C(1000000)));
        rc = tsi_pqr_exec(p, q, err);
        free(q);
        if (rc < 0)
            goto done;
    }
    step("classify", &t);
    if ((rc = tsi_pqr_exec(p, SQL_VIEWS, err)) < 0)
        goto done;
    step("hourly", &t);
    sum->files = (int64_t)files.n;
    tsi_pqr_int(p, "SELECT count(*) FROM pq_files WHERE error IS NOT NULL", 0, &sum->files_bad,
                NULL);
    tsi_pqr_int(p, "SELECT count(*) FROM pq_rows", 0, &sum->rows_read, NULL);
    tsi_pqr_int(p, "SELECT count(*) FILTER (WHERE reason IS NULL) FROM pq_class", 0,
                &sum->rows_valid, NULL);
    tsi_pqr_int(p, "SELECT count(*) FILTER (WHERE reason IS NOT NULL) FROM pq_class", 0,
                &sum->rows_bad, NULL);
    int64_t unreadable = 0;
    tsi_pqr_int(p,
                "SELECT coalesce(sum(greatest(nrows, 0)), 0) FROM pq_files"
                " WHERE error IS NOT NULL",
                0, &unreadable, NULL);
    sum->rows_bad += unreadable;
    sum->rows_outside = sum->rows_read - sum->rows_valid - (sum->rows_bad - unreadable);
    step("summary", &t);
done:
    tsi_pqr_files_free(&files);
    return rc;
}
