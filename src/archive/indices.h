/* archive/indices.h — the indices half of the dual write (domain.md §7):
 *
 *   <root>/indices/YYYY/MM/DD/indices_<start>_<seq>.parquet    one row per realtime row
 *   <root>/indices/YYYY/MM/DD/conflicts_<start>_<seq>.parquet  the conflict audit rows
 *
 * A new file per flush and per UTC day (by the row's minute), with every column of
 * safety_indices_realtime (same names) plus the features; zstd, temporary name then
 * rename, never overwritten (archive/pqfile.h). Independent of the database: this write
 * happens whether or not PostgreSQL is reachable.
 *
 * Ownership: the DuckDB connection is borrowed (the raw archive's: tsi_archive_duck);
 * rows are copied. Rows whose file could not be written stay buffered in the connection
 * and go out with the next call. */
#ifndef TSI_ARCHIVE_INDICES_H
#define TSI_ARCHIVE_INDICES_H

#include <duckdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "core/rows.h"

typedef struct tsi_indices_stats {
    long long files, rows, conflicts;
} tsi_indices_stats;

/* Writes rows and conflicts (either may be empty) under root/indices. Returns 0 or a
 * negative code; stats (may be NULL) counts what was published. */
int tsi_indices_write(duckdb_connection con, const char *root, const tsi_rt_row *rows, size_t n,
                      const tsi_conflict_row *conf, size_t nconf, tsi_indices_stats *stats,
                      tsi_error *err);

/* The layout, in one place (the collector, seed, reprocess, the API's fallback, backfill
 * and validate use these): the directory of the UTC day that starts at day_start (epoch
 * seconds), root/indices/YYYY/MM/DD, into buf; and whether a file name in it holds index
 * rows — a published *.parquet that is not a conflicts_* audit file (the collector's
 * indices_*, tsi seed's seed_*, reprocess's generations). Temporary files (pqfile.h) and
 * reprocess's .staging/ and .superseded/ are never matched. */
void tsi_indices_day_dir(char *buf, size_t len, const char *root, int64_t day_start);
bool tsi_indices_rows_file(const char *name);

/* The SELECT list that reads indices Parquet back with realtime column names, for
 * readers that compare with PostgreSQL: "intersection_id, timestamp, ...". */
extern const char TSI_INDICES_COLUMNS[];

#endif
