/* archive/compact.h — merge the small files of a closed hour (raw) or day (indices) into
 * one, without losing or duplicating a row (its command line, `tsi archive compact`, is
 * cli/cmd_archive.c).
 *
 * Per directory and file prefix: the inputs' row count and an order-independent checksum
 * (sum of DuckDB's hash of each whole row) are computed; the merged file is written to a
 * temporary name and read back; only when its count and checksum equal the inputs' is a
 * manifest written (final name, inputs, count, checksum), the merged file renamed into
 * place, the inputs removed, and the manifest removed. A crash at any point is repaired by
 * the next run: a manifest whose merged file exists (and matches) finishes the removal,
 * one whose merged file does not exist is dropped. Stale temporary files of dead
 * processes are removed. Readers may see an hour's rows twice only between the rename
 * and the removal of the inputs (milliseconds).
 *
 * Ownership: nothing is retained. */
#ifndef TSI_ARCHIVE_COMPACT_H
#define TSI_ARCHIVE_COMPACT_H

#include <stdint.h>

#include "base/error.h"

typedef struct tsi_compact_stats {
    long long dirs;      /* directories merged */
    long long files_in;  /* small files removed */
    long long files_out; /* merged files written */
    long long rows;      /* rows in the merged files */
    long long recovered; /* interrupted compactions finished or dropped */
    long long tmp_removed;
} tsi_compact_stats;

/* Compacts every closed directory under root (the archive root). kind: NULL or "all",
 * or one of bsm|psm|mapdata|spat|indices. A directory is closed when its hour (day for
 * indices) ended at least min_age_hours before now_ms. */
int tsi_archive_compact(const char *root, const char *kind, int min_age_hours, int64_t now_ms,
                        tsi_compact_stats *stats, tsi_error *err);

#endif
