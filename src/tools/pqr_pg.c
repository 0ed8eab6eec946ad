/* tools/pqr_pg.c — see pqr_pg.h */
#include "tools/pqr_pg.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "base/buf.h"
#include "db/conn.h"

int64_t tsi_pqr_from_pg(tsi_pqr *p, PGconn *c, const char *pg_sql, int nparams,
                        const char *const *params, const char *table, const char *ddl,
                        tsi_error *err)
{
    int64_t rows = 0;
    int rc;
    tsi_buf sql = TSI_BUF_INIT;
    duckdb_appender app = NULL;
    PGresult *r = PQexecParams(c, pg_sql, nparams, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = tsi_db_result_error(r, "cannot read from PostgreSQL", err);
        goto done;
    }
    tsi_buf_printf(&sql, "CREATE OR REPLACE TABLE %s (%s)", table, ddl);
    if ((rc = tsi_pqr_exec(p, tsi_buf_cstr(&sql), err)) < 0)
        goto done;
    if (duckdb_appender_create(p->con, NULL, table, &app) != DuckDBSuccess) {
        rc = tsi_error_set(err, TSI_E_PARQUET, "cannot append to a DuckDB table", "%s: %s", table,
                           app ? duckdb_appender_error(app) : "?");
        goto done;
    }
    int nf = PQnfields(r), nt = PQntuples(r);
    for (int i = 0; i < nt; i++) {
        for (int j = 0; j < nf; j++) {
            duckdb_state s = PQgetisnull(r, i, j)
                                 ? duckdb_append_null(app)
                                 : duckdb_append_varchar_length(app, PQgetvalue(r, i, j),
                                                                (idx_t)PQgetlength(r, i, j));
            if (s != DuckDBSuccess) {
                rc = tsi_error_set(err, TSI_E_PARQUET, "cannot append a value to DuckDB",
                                   "%s row %d column %d: %s", table, i, j,
                                   duckdb_appender_error(app));
                goto done;
            }
        }
        if (duckdb_appender_end_row(app) != DuckDBSuccess) {
            rc = tsi_error_set(err, TSI_E_PARQUET, "cannot append a row to DuckDB", "%s: %s", table,
                               duckdb_appender_error(app));
            goto done;
        }
        rows++;
    }
    if (duckdb_appender_flush(app) != DuckDBSuccess) {
        rc = tsi_error_set(err, TSI_E_PARQUET, "cannot append rows to DuckDB", "%s: %s", table,
                           duckdb_appender_error(app));
        goto done;
    }
    rc = 0;
done:
    if (app)
        duckdb_appender_destroy(&app);
    PQclear(r);
    tsi_buf_free(&sql);
    return rc < 0 ? rc : rows;
}

int64_t tsi_pqr_copy_to_pg(tsi_pqr *p, const char *duck_sql, PGconn *c, const char *copy_sql,
                           tsi_pqr_progress cb, void *ud, tsi_error *err)
{
    duckdb_result res;
    int64_t rows = 0;
    int rc = tsi_pqr_query(p, duck_sql, &res, err);
    tsi_buf line = TSI_BUF_INIT, val = TSI_BUF_INIT;
    bool copying = false;
    if (rc < 0)
        goto done;
    idx_t ncol = duckdb_column_count(&res);
    duckdb_type types[64];
    if (ncol > 64) {
        rc = tsi_error_set(err, TSI_E_INTERNAL, "too many columns to copy", "%zu", (size_t)ncol);
        goto done;
    }
    for (idx_t j = 0; j < ncol; j++)
        types[j] = duckdb_column_type(&res, j);
    PGresult *pr = PQexec(c, copy_sql);
    if (PQresultStatus(pr) != PGRES_COPY_IN) {
        rc = tsi_db_result_error(pr, "COPY into PostgreSQL failed", err);
        PQclear(pr);
        goto done;
    }
    PQclear(pr);
    copying = true;
    duckdb_data_chunk ch;
    while ((ch = duckdb_fetch_chunk(res)) != NULL) {
        idx_t n = duckdb_data_chunk_get_size(ch);
        if (n == 0) {
            duckdb_destroy_data_chunk(&ch);
            break;
        }
        for (idx_t i = 0; i < n; i++) {
            for (idx_t j = 0; j < ncol; j++) {
                if (j)
                    tsi_buf_putc(&line, '\t');
                tsi_buf_reset(&val);
                if (!tsi_pqr_cell_text(ch, types[j], j, i, &val)) {
                    tsi_buf_puts(&line, "\\N");
                    continue;
                }
                if (types[j] == DUCKDB_TYPE_VARCHAR) {
                    for (size_t k = 0; k < val.len; k++) {
                        char ch2 = val.data[k];
                        if (ch2 == '\\' || ch2 == '\t' || ch2 == '\n' || ch2 == '\r') {
                            tsi_buf_putc(&line, '\\');
                            ch2 = ch2 == '\t' ? 't' : ch2 == '\n' ? 'n' : ch2 == '\r' ? 'r' : ch2;
                        }
                        tsi_buf_putc(&line, ch2);
                    }
                } else {
                    tsi_buf_append(&line, val.data, val.len);
                }
            }
            tsi_buf_putc(&line, '\n');
            rows++;
        }
        duckdb_destroy_data_chunk(&ch);
        if (line.len > (1u << 20)) {
            if (PQputCopyData(c, line.data, (int)line.len) != 1) {
                rc = tsi_error_set(err, TSI_E_DB, "COPY failed", "%s", PQerrorMessage(c));
                goto done;
            }
            tsi_buf_reset(&line);
            if (cb)
                cb(ud, "copy", rows, -1, rows);
        }
    }
    if (line.len && PQputCopyData(c, line.data, (int)line.len) != 1) {
        rc = tsi_error_set(err, TSI_E_DB, "COPY failed", "%s", PQerrorMessage(c));
        goto done;
    }
    copying = false;
    if (PQputCopyEnd(c, NULL) != 1) {
        rc = tsi_error_set(err, TSI_E_DB, "COPY failed", "%s", PQerrorMessage(c));
        goto done;
    }
    pr = PQgetResult(c);
    if (PQresultStatus(pr) != PGRES_COMMAND_OK)
        rc = tsi_db_result_error(pr, "COPY into PostgreSQL failed", err);
    PQclear(pr);
    while ((pr = PQgetResult(c)) != NULL)
        PQclear(pr);
    if (cb)
        cb(ud, "copy", rows, rows, rows);
done:
    if (copying) {
        PQputCopyEnd(c, "tsi: aborted");
        PGresult *pr2;
        while ((pr2 = PQgetResult(c)) != NULL)
            PQclear(pr2);
    }
    duckdb_destroy_result(&res);
    tsi_buf_free(&line);
    tsi_buf_free(&val);
    return rc < 0 ? rc : rows;
}

int64_t tsi_pqr_features_to_pg(tsi_pqr *p, PGconn *c, int64_t lo_us, int64_t hi_us, tsi_error *err)
{
    int rc;
    if ((rc = tsi_db_exec(c,
                          "CREATE TEMP TABLE IF NOT EXISTS tsi_pq_feat (intersection_id bigint,"
                          " hour_us bigint, hour_of_day smallint, minutes integer,"
                          " max_vru_events integer, max_vehicle_events integer,"
                          " max_volume integer, max_speed_stddev float8, max_hard_braking integer,"
                          " speeds float8[], n_vru integer, sum_vru float8, n_vehicle integer,"
                          " sum_vehicle float8, n_combined integer, sum_combined float8)"
                          " ON COMMIT DROP; TRUNCATE tsi_pq_feat",
                          err)) < 0)
        return rc;
    char q[512];
    snprintf(q, sizeof q,
             "SELECT * FROM pq_features WHERE hour_us >= %" PRId64 " AND hour_us < %" PRId64
             " ORDER BY iid, hour_us, hour_of_day",
             lo_us, hi_us);
    int64_t n = tsi_pqr_copy_to_pg(p, q, c, "COPY tsi_pq_feat FROM STDIN", NULL, NULL, err);
    if (n < 0)
        return n;
    if ((rc = tsi_db_exec(
             c,
             "DELETE FROM safety_features_hourly f USING (SELECT DISTINCT intersection_id,"
             " timestamptz 'epoch' + hour_us * interval '1 microsecond' AS h FROM tsi_pq_feat) s"
             " WHERE f.intersection_id = s.intersection_id AND f.hour_timestamp = s.h;"
             " INSERT INTO safety_features_hourly SELECT intersection_id,"
             " timestamptz 'epoch' + hour_us * interval '1 microsecond', hour_of_day, minutes,"
             " max_vru_events, max_vehicle_events, max_volume, max_speed_stddev,"
             " max_hard_braking, coalesce(speeds, '{}'), n_vru, sum_vru, n_vehicle, sum_vehicle,"
             " n_combined, sum_combined FROM tsi_pq_feat",
             err)) < 0)
        return rc;
    return n;
}

int tsi_pqr_prepare(tsi_pqr *p, const char *dir, int64_t since_us, int64_t until_us, int64_t now_us,
                    int bin_minutes, PGconn *c, tsi_pqr_progress cb, void *ud, tsi_pqr_summary *sum,
                    tsi_error *err)
{
    if (c) {
        int64_t n = tsi_pqr_from_pg(p, c, "SELECT id, name FROM intersections", 0, NULL, "pq_known",
                                    "id BIGINT, name VARCHAR", err);
        if (n < 0) {
            memset(sum, 0, sizeof *sum);
            return (int)n;
        }
    }
    return tsi_pqr_read(p, dir, since_us, until_us, now_us, bin_minutes, cb, ud, sum, err);
}
