/* archive/parquet_read.h — indices Parquet (both layouts) read through DuckDB, for
 * backfill, validate and reprocess (their PostgreSQL side: tools/pqr_pg.h).
 *
 * Layouts (docs/backfill.md):
 *   legacy  DIR/indices/indices_YYYY-MM-DD.parquet (the earlier system): columns
 *           intersection (float or string id), time_15min (naive UTC timestamp, 1- or
 *           15-minute bins), Combined_Index, optional Combined_Index_EB, VRU_Index,
 *           Vehicle_Index, vehicle_count, psm_vru_count, vru_event_count,
 *           vehicle_event_count, hour_of_day, day_of_week.
 *   tsi     DIR/indices/YYYY/MM/DD/indices_*.parquet: every safety_indices_realtime column by
 *           its own name (intersection_id, timestamp, combined_index, ...) plus features.
 * DIR may also be the indices directory itself.
 *
 * tsi_pqr_read() turns the files into DuckDB tables of one in-memory database:
 *   pq_files(file_id, path, layout, bin_minutes, nrows, error)
 *   pq_rows(file_id, row_no (1 = first data row), id_raw, ts, <realtime columns>)
 *   pq_known(id, name)               the known intersections: the caller's table (PostgreSQL's,
 *                                    tools/pqr_pg.h), else every numeric id read
 *   pq_class = pq_rows in [since, until) + iid (the intersection id), bin_minutes, path,
 *              reason (NULL = valid; else why the row cannot be loaded, with the value)
 *   pq_valid   view: the valid rows, with si = coalesce(combined_index_eb, combined_index)
 *   pq_hourly  table: hourly rollups of pq_valid with the arithmetic of domain.md §5,
 *              each row weighted by its bin length in minutes (identical to the jobs'
 *              formulas for 1-minute rows), with the sub-indices and the model
 *              provenance (TSI_HR_SUB_COLS)
 *   pq_features table: the constants' features store of the 1-minute rows, per
 *              intersection, hour and hour_of_day (safety_features_hourly)
 * Timestamps are naive UTC TIMESTAMPs in DuckDB; they cross to PostgreSQL as epoch
 * microseconds.
 *
 * Ownership: tsi_pqr owns its DuckDB database and connection (tsi_pqr_close). Not
 * thread-safe. */
#ifndef TSI_ARCHIVE_PARQUET_READ_H
#define TSI_ARCHIVE_PARQUET_READ_H

#include <duckdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/error.h"

typedef enum { TSI_PQR_LEGACY = 1, TSI_PQR_TSI = 2 } tsi_pqr_layout;

typedef struct tsi_pqr_file {
    char *path;
    tsi_pqr_layout layout;
    int64_t day_us; /* midnight UTC of the date in the path, epoch microseconds */
} tsi_pqr_file;

typedef struct tsi_pqr_files {
    tsi_pqr_file *v;
    size_t n, cap;
} tsi_pqr_files;

typedef struct tsi_pqr {
    duckdb_database db;
    duckdb_connection con;
} tsi_pqr;

/* Progress of a long step: done of total units (files or rows), rows so far. */
typedef void (*tsi_pqr_progress)(void *ud, const char *phase, int64_t done, int64_t total,
                                 int64_t rows);

int tsi_pqr_open(tsi_pqr *p, tsi_error *err);
void tsi_pqr_close(tsi_pqr *p); /* NULL-safe, idempotent */

/* Runs SQL text built by the program (paths quoted with tsi_pqr_quote). */
int tsi_pqr_exec(tsi_pqr *p, const char *sql, tsi_error *err);
/* Runs a query; the caller destroys res (also on error it is safe to destroy). */
int tsi_pqr_query(tsi_pqr *p, const char *sql, duckdb_result *res, tsi_error *err);
/* One BIGINT (or castable) value of the first row; dflt for NULL or no row. */
int tsi_pqr_int(tsi_pqr *p, const char *sql, int64_t dflt, int64_t *out, tsi_error *err);
/* Appends s as a SQL string literal ('...' with quotes doubled). */
void tsi_pqr_quote(tsi_buf *b, const char *s);

/* Parses "YYYY-MM-DD" (UTC midnight) or "YYYY-MM-DD[T ]HH:MM[:SS][Z]" into epoch µs. */
int tsi_pqr_parse_time(const char *s, int64_t *us, tsi_error *err);
/* Formats epoch µs as "YYYY-MM-DD HH:MM:SS" (UTC) into buf (>= 32 bytes). */
const char *tsi_pqr_fmt_time(int64_t us, char *buf, size_t len);

/* Lists the indices files of both layouts under dir whose path date lies within
 * [since - 1 day, until + 1 day] (rows are filtered by timestamp later), sorted by
 * path. since_us/until_us may be INT64_MIN/INT64_MAX. No file is an error. */
int tsi_pqr_find(const char *dir, int64_t since_us, int64_t until_us, tsi_pqr_files *out,
                 tsi_error *err);
void tsi_pqr_files_free(tsi_pqr_files *f);

/* Everything backfill and validate share: finds the files under dir, reads them into
 * pq_files/pq_rows and classifies the rows in [since_us, until_us) into pq_class/
 * pq_valid/pq_hourly, against pq_known (the caller may fill it first, from PostgreSQL:
 * tools/pqr_pg.h's tsi_pqr_prepare; when it does not exist every numeric id counts as
 * known — used only by tests of the reader).
 * bin_minutes: 0 = detect per file (legacy: 15 when every timestamp is on a quarter
 * hour and distinct timestamps are >= 15 min apart, else 1; tsi layout: 1). Rows more
 * than 5 minutes after now_us (the database's clock) are bad ("in the future"). */
typedef struct tsi_pqr_summary {
    int64_t files, files_bad, rows_read, rows_outside, rows_valid, rows_bad;
} tsi_pqr_summary;

int tsi_pqr_read(tsi_pqr *p, const char *dir, int64_t since_us, int64_t until_us, int64_t now_us,
                 int bin_minutes, tsi_pqr_progress cb, void *ud, tsi_pqr_summary *sum,
                 tsi_error *err);

/* The value at (col, row) of a result chunk of column type t as text into b (empty, and
 * false, for NULL). */
bool tsi_pqr_cell_text(duckdb_data_chunk ch, duckdb_type t, idx_t col, idx_t row, tsi_buf *b);

#endif
