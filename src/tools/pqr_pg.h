/* tools/pqr_pg.h — the PostgreSQL side of the indices Parquet reader (archive/parquet_read.h)
 * that backfill, validate and reprocess share: PostgreSQL rows into DuckDB tables, DuckDB
 * results streamed into PostgreSQL with COPY, the hourly rollup columns as
 * safety_indices_hourly stores them, the constants' features store.
 *
 * Ownership: the PGconn passed to any function is borrowed; tsi_pqr as in parquet_read.h. */
#ifndef TSI_TOOLS_PQR_PG_H
#define TSI_TOOLS_PQR_PG_H

#include <libpq-fe.h>
#include <stdint.h>

#include "archive/parquet_read.h"
#include "base/error.h"

/* Copies the result of a PostgreSQL query into a new DuckDB table `table` whose
 * columns are given as DDL ("id BIGINT, name VARCHAR"); values travel as text and are
 * cast by DuckDB. params are bound ($1..). Returns the row count or a negative code. */
int64_t tsi_pqr_from_pg(tsi_pqr *p, PGconn *c, const char *pg_sql, int nparams,
                        const char *const *params, const char *table, const char *ddl,
                        tsi_error *err);

/* Streams the result of a DuckDB query into PostgreSQL with `copy_sql` (COPY ... FROM
 * STDIN, text format). Result columns may be BIGINT/INTEGER/SMALLINT/DOUBLE/VARCHAR/
 * BOOLEAN; doubles are written with 17 significant digits (exact round trip).
 * Returns the row count or a negative code. */
int64_t tsi_pqr_copy_to_pg(tsi_pqr *p, const char *duck_sql, PGconn *c, const char *copy_sql,
                           tsi_pqr_progress cb, void *ud, tsi_error *err);

/* The hourly rollup columns of migration 060 (sub-indices and model provenance) as pq_hourly
 * has them and safety_indices_hourly stores them: the column list, the DDL of a staging
 * table holding them, the SET list of an upsert and its "changed" test (a mean counts as
 * changed beyond 1e-12 relative: DuckDB's parallel sums may differ in the last bit). */
#define TSI_PQR_SUB_COLS                                                                           \
    "avg_vru_index, n_vru_index, avg_vru_index_eb, n_vru_index_eb, avg_vru_si, min_vru_si, "       \
    "max_vru_si, n_vru_si, avg_vehicle_index, n_vehicle_index, avg_vehicle_index_eb, "             \
    "n_vehicle_index_eb, avg_vehicle_si, min_vehicle_si, max_vehicle_si, n_vehicle_si, "           \
    "constants_ids, algorithm_versions"
#define TSI_PQR_SUB_DDL                                                                            \
    ", avg_vru_index float8, n_vru_index integer, avg_vru_index_eb float8,"                        \
    " n_vru_index_eb integer, avg_vru_si float8, min_vru_si float8, max_vru_si float8,"            \
    " n_vru_si integer, avg_vehicle_index float8, n_vehicle_index integer,"                        \
    " avg_vehicle_index_eb float8, n_vehicle_index_eb integer, avg_vehicle_si float8,"             \
    " min_vehicle_si float8, max_vehicle_si float8, n_vehicle_si integer,"                         \
    " constants_ids bigint[], algorithm_versions smallint[]"
#define TSI_PQR_SUB_SET                                                                            \
    ", avg_vru_index = EXCLUDED.avg_vru_index, n_vru_index = EXCLUDED.n_vru_index,"                \
    " avg_vru_index_eb = EXCLUDED.avg_vru_index_eb, n_vru_index_eb = EXCLUDED.n_vru_index_eb,"     \
    " avg_vru_si = EXCLUDED.avg_vru_si, min_vru_si = EXCLUDED.min_vru_si,"                         \
    " max_vru_si = EXCLUDED.max_vru_si, n_vru_si = EXCLUDED.n_vru_si,"                             \
    " avg_vehicle_index = EXCLUDED.avg_vehicle_index, n_vehicle_index = EXCLUDED.n_vehicle_index," \
    " avg_vehicle_index_eb = EXCLUDED.avg_vehicle_index_eb,"                                       \
    " n_vehicle_index_eb = EXCLUDED.n_vehicle_index_eb, avg_vehicle_si = EXCLUDED.avg_vehicle_si," \
    " min_vehicle_si = EXCLUDED.min_vehicle_si, max_vehicle_si = EXCLUDED.max_vehicle_si,"         \
    " n_vehicle_si = EXCLUDED.n_vehicle_si, constants_ids = EXCLUDED.constants_ids,"               \
    " algorithm_versions = EXCLUDED.algorithm_versions"
#define TSI_PQR_SUB_MEAN_DIFFERS(col)                                                              \
    " OR (h." col " IS NULL) <> (EXCLUDED." col " IS NULL)"                                        \
    " OR abs(h." col " - EXCLUDED." col ") > 1e-12 * greatest(1, abs(h." col "))"
#define TSI_PQR_SUB_CHANGED                                                                        \
    " OR (h.n_vru_index, h.n_vru_index_eb, h.n_vru_si, h.min_vru_si, h.max_vru_si,"                \
    " h.n_vehicle_index, h.n_vehicle_index_eb, h.n_vehicle_si, h.min_vehicle_si,"                  \
    " h.max_vehicle_si, h.constants_ids, h.algorithm_versions) IS DISTINCT FROM"                   \
    " (EXCLUDED.n_vru_index, EXCLUDED.n_vru_index_eb, EXCLUDED.n_vru_si, EXCLUDED.min_vru_si,"     \
    " EXCLUDED.max_vru_si, EXCLUDED.n_vehicle_index, EXCLUDED.n_vehicle_index_eb,"                 \
    " EXCLUDED.n_vehicle_si, EXCLUDED.min_vehicle_si, EXCLUDED.max_vehicle_si,"                    \
    " EXCLUDED.constants_ids, EXCLUDED.algorithm_versions)" TSI_PQR_SUB_MEAN_DIFFERS(              \
        "avg_vru_index") TSI_PQR_SUB_MEAN_DIFFERS("avg_vru_index_eb")                              \
        TSI_PQR_SUB_MEAN_DIFFERS("avg_vru_si") TSI_PQR_SUB_MEAN_DIFFERS("avg_vehicle_index")       \
            TSI_PQR_SUB_MEAN_DIFFERS("avg_vehicle_index_eb")                                       \
                TSI_PQR_SUB_MEAN_DIFFERS("avg_vehicle_si")

/* Replaces, inside the caller's transaction on c (tsi_owner), the rows of the constants'
 * features store (safety_features_hourly, migration 060) of every (intersection, hour)
 * that pq_features holds in [lo_us, hi_us), from the 1-minute rows read. Returns the rows
 * written or a negative code. */
int64_t tsi_pqr_features_to_pg(tsi_pqr *p, PGconn *c, int64_t lo_us, int64_t hi_us, tsi_error *err);

/* tsi_pqr_read (archive/parquet_read.h) with the intersections of c as pq_known (c may be
 * NULL: then every numeric id is taken as known — used only by tests of the reader). */
int tsi_pqr_prepare(tsi_pqr *p, const char *dir, int64_t since_us, int64_t until_us, int64_t now_us,
                    int bin_minutes, PGconn *c, tsi_pqr_progress cb, void *ud, tsi_pqr_summary *sum,
                    tsi_error *err);

#endif
