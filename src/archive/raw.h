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
 * Rows accumulate in an in-memory DuckDB; tsi_archive_flush() writes one file per
 * (type, hour) present and forgets those rows only once their file is in place, so a
 * failed flush loses nothing and is retried by the next.
 *
 * The archive root is $TSI_ARCHIVE_DIR, else $TSI_HOME/archive (tsi_archive_root).
 *
 * Ownership: tsi_archive owns its DuckDB database; every text passed in is copied. Not
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
    long long files;                /* files published by the last flush */
    long long rows[TSI_RAW__COUNT]; /* rows written by the last flush, per type */
} tsi_archive_stats;

/* Opens a writer under root (created when missing). */
int tsi_archive_open(tsi_archive **out, const char *root, tsi_error *err);
void tsi_archive_close(tsi_archive *a); /* NULL-safe; unflushed rows are dropped */

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

/* Writes every pending row; stats (may be NULL) says what was written. On failure the
 * rows of the files that could not be written stay pending. */
int tsi_archive_flush(tsi_archive *a, tsi_archive_stats *stats, tsi_error *err);

/* The DuckDB connection of the writer (borrowed; for the indices writer and tests). */
duckdb_connection tsi_archive_duck(tsi_archive *a);

#endif
