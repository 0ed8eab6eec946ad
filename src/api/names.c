/* api/names.c — the server's cache of intersection names and positions (names.h): a
 * sorted array replaced whole on each refresh, read by binary search under a mutex. The
 * Parquet source is $archive/intersections/<file>.parquet, used when PostgreSQL was never
 * reached; only paths found by listing our own archive go into DuckDB's SQL text
 * (quoted). */
#include "api/names.h"

#include <glob.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/state.h"
#include "archive/pqfile.h"
#include "base/buf.h"
#include "base/log.h"
#include "db/result.h"

/* ---- intersections cache ------------------------------------------------------------ */
typedef tsi_api_int_rec int_info;

static pthread_mutex_t int_mu = PTHREAD_MUTEX_INITIALIZER;
static int_info *ints;
static int nints;

static int cmp_info(const void *a, const void *b)
{
    const int_info *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

void tsi_api_int_refresh(PGconn *c)
{
    PGresult *res =
        PQexec(c, "SELECT id, name, latitude, longitude FROM intersections ORDER BY id");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        return;
    }
    int id = tsi_pq_col(res, "id"), name = tsi_pq_col(res, "name");
    int lat = tsi_pq_col(res, "latitude"), lon = tsi_pq_col(res, "longitude");
    int n = PQntuples(res);
    int_info *v = calloc((size_t)(n ? n : 1), sizeof *v);
    if (!v) {
        PQclear(res);
        return;
    }
    for (int i = 0; i < n; i++) {
        v[i].id = strtoll(tsi_pq_at(res, i, id), NULL, 10);
        snprintf(v[i].name, sizeof v[i].name, "%s", tsi_pq_at(res, i, name));
        v[i].lat = strtod(tsi_pq_at(res, i, lat), NULL);
        v[i].lon = strtod(tsi_pq_at(res, i, lon), NULL);
    }
    PQclear(res);
    pthread_mutex_lock(&int_mu);
    free(ints);
    ints = v;
    nints = n;
    pthread_mutex_unlock(&int_mu);
}

tsi_api_int_rec *tsi_api_int_all(int *n)
{
    tsi_api_int_rec *out = NULL;
    pthread_mutex_lock(&int_mu);
    *n = 0;
    if (ints && nints > 0 && (out = malloc(sizeof *out * (size_t)nints)) != NULL) {
        memcpy(out, ints, sizeof *out * (size_t)nints);
        *n = nints;
    }
    pthread_mutex_unlock(&int_mu);
    return out;
}

bool tsi_api_int_info(int64_t id, char *name, size_t len, double *lat, double *lon)
{
    bool found = false;
    pthread_mutex_lock(&int_mu);
    int_info key = {.id = id};
    int_info *p = ints ? bsearch(&key, ints, (size_t)nints, sizeof *ints, cmp_info) : NULL;
    if (p) {
        snprintf(name, len, "%s", p->name);
        *lat = p->lat;
        *lon = p->lon;
        found = true;
    }
    pthread_mutex_unlock(&int_mu);
    return found;
}

void tsi_api_int_load_parquet(void)
{
    tsi_api *a = tsi_api_g;
    if (!a->duck_ok)
        return;
    char pat[4200];
    snprintf(pat, sizeof pat, "%s/intersections/*.parquet", a->archive_dir);
    glob_t g;
    if (glob(pat, 0, NULL, &g) != 0) {
        return;
    }
    duckdb_connection con;
    if (duckdb_connect(a->duck, &con) == DuckDBError) {
        globfree(&g);
        return;
    }
    tsi_buf sql = TSI_BUF_INIT;
    tsi_buf_puts(&sql, "SELECT id, name, latitude, longitude FROM read_parquet([");
    for (size_t i = 0; i < g.gl_pathc; i++) {
        if (i)
            tsi_buf_putc(&sql, ',');
        tsi_sql_quote(&sql, g.gl_pathv[i]);
    }
    tsi_buf_puts(&sql, "], union_by_name = true) ORDER BY id");
    globfree(&g);
    duckdb_result res;
    if (duckdb_query(con, sql.data, &res) == DuckDBSuccess) {
        idx_t n = duckdb_row_count(&res);
        int_info *v = calloc((size_t)(n ? n : 1), sizeof *v);
        if (v) {
            for (idx_t i = 0; i < n; i++) {
                v[i].id = duckdb_value_int64(&res, 0, i);
                char *s = duckdb_value_varchar(&res, 1, i);
                snprintf(v[i].name, sizeof v[i].name, "%s", s ? s : "");
                duckdb_free(s);
                v[i].lat = duckdb_value_double(&res, 2, i);
                v[i].lon = duckdb_value_double(&res, 3, i);
            }
            pthread_mutex_lock(&int_mu);
            if (!ints) { /* PostgreSQL's view wins when it exists */
                ints = v;
                nints = (int)n;
                v = NULL;
            }
            pthread_mutex_unlock(&int_mu);
            free(v);
        }
    } else {
        tsi_warn("api", "cannot read intersections Parquet: %s", duckdb_result_error(&res));
    }
    duckdb_destroy_result(&res);
    tsi_buf_free(&sql);
    duckdb_disconnect(&con);
}
