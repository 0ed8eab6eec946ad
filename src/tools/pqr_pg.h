/* tools/pqr_pg.h — the PostgreSQL side of the indices Parquet reader (archive/parquet_read.h)
 * that backfill, validate and reprocess share: PostgreSQL rows into DuckDB tables, DuckDB
 * results streamed into PostgreSQL with COPY, the constants' features store.
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
