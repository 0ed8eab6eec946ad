/* archive/raw.h — the raw message archive (domain.md §7): Parquet through DuckDB.
 *
 *   <root>/raw/{bsm|psm|mapdata|spat}/YYYY/MM/DD/HH/<type>_<start>_<seq>.parquet
 *
 * One row per message: typed columns for the fields the features use, the original
 * message as JSON text (`json`) and `received_at` (when tsi received it). Files are dated
 * by message time (BSM/PSM `timestamp`; MapData and SPaT carry no reliable absolute
 * time and are dated by received time). A message that could not be decoded is archived
 * too, typed columns NULL and `reject_reason` set (the decoder's reason code name).
 * zstd; written to a temporary name and renamed (archive/pqfile.h); never overwritten.
 *
 * Rows accumulate in our own buffers (a row of 8-byte cells per message, its strings in
 * one heap), never in a DuckDB table; tsi_archive_flush() hands them to DuckDB's COPY
 * through a table function (tsi_raw_bsm(), …) and writes one file per (type, hour)
 * present, rows in message-time order, in row groups of `row_group_rows`, and forgets
 * those rows only once their file is in place, so a failed flush loses nothing and is
 * retried by the next. A type whose buffer passes `max_rows` rows, or the largest one
 * when all together pass `max_bytes`, is written out at once, between flushes (more files per hour:
 * the layout allows it), so memory is bounded by those limits, not by the flush interval.
 *
 * The archive root is $TSI_ARCHIVE_DIR, else $TSI_HOME/archive (tsi_archive_root).
 *
 * Ownership: tsi_archive owns its buffers and its DuckDB database; every text passed in is
 * copied. Not
 * thread-safe: one archive per pipeline thread. */
#ifndef TSI_ARCHIVE_RAW_H
#define TSI_ARCHIVE_RAW_H

#include <duckdb.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "core/messages.h"

typedef enum {
    TSI_RAW_BSM = 0,
    TSI_RAW_PSM,
    TSI_RAW_MAPDATA,
    TSI_RAW_SPAT,
    TSI_RAW__COUNT
} tsi_raw_kind;

const char *tsi_raw_kind_name(tsi_raw_kind k); /* "bsm", ... */

/* The archive root: TSI_ARCHIVE_DIR, else <tsi_home()>/archive. */
void tsi_archive_root(char *buf, size_t len);

typedef struct tsi_archive tsi_archive;

typedef struct tsi_archive_stats {
    long long files;                /* files published since the previous flush */
    long long rows[TSI_RAW__COUNT]; /* rows written since the previous flush, per type */
    long long flush_errors;         /* bound-triggered writes that failed since then */
} tsi_archive_stats;

/* Defaults of the buffer bounds and the row group size. At the simulator's rush hour
 * (1,000 intersections, ~31,000 messages a second, ~860 bytes a buffered BSM row) a BSM
 * file is published every ~3 s. */
#define TSI_ARCHIVE_MAX_ROWS       400000LL
#define TSI_ARCHIVE_MAX_BYTES      (96LL << 20)
#define TSI_ARCHIVE_ROW_GROUP_ROWS 32768LL

typedef struct tsi_archive_limits {
    long long max_rows;       /* a type's rows are written once this many of it wait */
    long long max_bytes;      /* the largest type's, once all types take this much memory */
    long long row_group_rows; /* rows per Parquet row group */
} tsi_archive_limits;

/* Opens a writer under root (created when missing). */
int tsi_archive_open(tsi_archive **out, const char *root, tsi_error *err);
void tsi_archive_close(tsi_archive *a); /* NULL-safe; unflushed rows are dropped */

/* Sets the bounds (a field <= 0, or l NULL: its default). */
void tsi_archive_set_limits(tsi_archive *a, const tsi_archive_limits *l);

/* A BSM (kind TSI_RAW_BSM) or PSM (TSI_RAW_PSM). m is the decoded message, or NULL when
 * it was rejected (reject_reason then names why, e.g. "range"); json is the message's
 * original text. received_ms dates rejected messages. */
int tsi_archive_add_msg(tsi_archive *a, tsi_raw_kind kind, const tsi_msg *m,
                        const char *reject_reason, const char *json, size_t len,
                        int64_t received_ms, tsi_error *err);

/* One MapData message (md: its decoded form, NULL when rejected). */
int tsi_archive_add_mapdata(tsi_archive *a, const tsi_mapdata *md, const char *reject_reason,
                            const char *json, size_t len, int64_t received_ms, tsi_error *err);

/* One SPaT message (sp: decoded, NULL when rejected). */
int tsi_archive_add_spat(tsi_archive *a, const tsi_spat *sp, const char *reject_reason,
                         const char *json, size_t len, int64_t received_ms, tsi_error *err);

/* Rows waiting for the next flush. */
long long tsi_archive_pending(const tsi_archive *a);

/* Writes every pending row; stats (may be NULL) says what was written since the previous
 * flush, the files published when a bound was reached included. On failure the rows of
 * the files that could not be written stay pending. */
int tsi_archive_flush(tsi_archive *a, tsi_archive_stats *stats, tsi_error *err);

/* The DuckDB connection of the writer (borrowed; for the indices writer and tests). It
 * holds no table of raw rows. */
duckdb_connection tsi_archive_duck(tsi_archive *a);

#endif
