/* archive/intersections.c — see intersections.h */
#include "archive/intersections.h"

#include <duckdb.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "archive/pqfile.h"

int tsi_archive_intersections_write(const char *archive_root, const tsi_archive_isect *rows, int n,
                                    tsi_error *err)
{
    int rc = TSI_E_PARQUET;
    duckdb_database db = NULL;
    duckdb_connection con = NULL;
    duckdb_appender ap = NULL;
    char dir[PATH_MAX], tmp[PATH_MAX] = "", final[PATH_MAX + 32];
    if (snprintf(dir, sizeof dir, "%s/%s", archive_root, TSI_ARCHIVE_ISECT_DIR) >= (int)sizeof dir)
        return tsi_error_set(err, TSI_E_INVALID, "archive path too long", "%s", archive_root);
    if ((rc = tsi_mkdirs(dir, err)) < 0)
        return rc;
    rc = TSI_E_PARQUET;
    if (duckdb_open(NULL, &db) == DuckDBError || duckdb_connect(db, &con) == DuckDBError) {
        tsi_error_set(err, TSI_E_PARQUET, "cannot open DuckDB", NULL);
        goto done;
    }
    if ((rc = tsi_duck_exec(con,
                            "CREATE TABLE ints (id BIGINT, name VARCHAR, latitude DOUBLE,"
                            " longitude DOUBLE, lane_count INTEGER)",
                            NULL, err)) < 0)
        goto done;
    if (duckdb_appender_create(con, NULL, "ints", &ap) == DuckDBError) {
        rc = tsi_error_set(err, TSI_E_PARQUET, "cannot create a DuckDB appender", NULL);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        duckdb_append_int64(ap, rows[i].id);
        duckdb_append_varchar(ap, rows[i].name ? rows[i].name : "");
        duckdb_append_double(ap, round(rows[i].latitude * 1e7) / 1e7);
        duckdb_append_double(ap, round(rows[i].longitude * 1e7) / 1e7);
        if (rows[i].lane_count < 0)
            duckdb_append_null(ap);
        else
            duckdb_append_int32(ap, rows[i].lane_count);
        if (duckdb_appender_end_row(ap) == DuckDBError) {
            rc = tsi_error_set(err, TSI_E_PARQUET, "cannot append an intersection", "%s",
                               duckdb_appender_error(ap));
            goto done;
        }
    }
    duckdb_appender_destroy(&ap);
    ap = NULL;
    long long w = tsi_pq_write_tmp(con, "SELECT * FROM ints ORDER BY id", dir, "intersections", tmp,
                                   sizeof tmp, err);
    if (w < 0) {
        rc = (int)w;
        goto done;
    }
    snprintf(final, sizeof final, "%s/%s", dir, TSI_ARCHIVE_ISECT_FILE);
    if (rename(tmp, final) < 0) { /* replaces the previous file atomically */
        rc = tsi_error_set(err, TSI_E_IO, "cannot publish the intersections file", "%s: %s", final,
                           strerror(errno));
        goto done;
    }
    tmp[0] = '\0';
    rc = tsi_fsync_dir(dir, err);
done:
    if (ap)
        duckdb_appender_destroy(&ap);
    if (tmp[0])
        unlink(tmp);
    if (con)
        duckdb_disconnect(&con);
    if (db)
        duckdb_close(&db);
    return rc < 0 ? rc : 0;
}
