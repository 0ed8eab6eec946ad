/* archive/pqfile.h — the one way tsi publishes a Parquet file: DuckDB writes it under a
 * hidden temporary name in the target directory (zstd), the file and the directory are
 * fsync'd, and the file is renamed to `<prefix>_<start>_<seq>.parquet` with
 * RENAME_NOREPLACE (link + unlink where the filesystem lacks it): a crash never leaves a
 * torn file under an archive name, and an existing file is never overwritten (the
 * sequence number moves on instead).
 *
 * Ownership: the DuckDB connection is borrowed; paths are copied. */
#ifndef TSI_ARCHIVE_PQFILE_H
#define TSI_ARCHIVE_PQFILE_H

#include <duckdb.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/error.h"
#include "base/fs.h" /* tsi_mkdirs, tsi_fsync_dir: most writers of files use both */

/* Temporary files start with this prefix (and end in ".tmp"); readers never match them
 * with *.parquet and `tsi archive compact` removes stale ones. */
#define TSI_PQ_TMP_PREFIX ".tsi-tmp-"

/* Appends s as a SQL string literal ('…', quotes doubled) to b. */
void tsi_sql_quote(tsi_buf *b, const char *s);

/* Runs a statement; on failure returns TSI_E_PARQUET with DuckDB's message. When res is
 * not NULL the caller owns the result (duckdb_destroy_result) on success; on failure it
 * is already destroyed. */
int tsi_duck_exec(duckdb_connection con, const char *sql, duckdb_result *res, tsi_error *err);

/* The compact UTC time of epoch ms t, "YYYYMMDDTHHMMSSZ", into buf (>= 17 bytes). */
void tsi_pq_stamp(int64_t t_ms, char *buf, size_t len);

/* Writes the rows of `select_sql` into dir (created if needed) as
 * <prefix>_<start>_<seq>.parquet (seq from 0, the first free one) and puts the final path
 * into out (may be NULL). Returns the number of rows written (>= 0) or a negative code;
 * on failure nothing is left under a .parquet name. */
long long tsi_pq_write(duckdb_connection con, const char *select_sql, const char *dir,
                       const char *prefix, const char *start, char *out, size_t outlen,
                       tsi_error *err);

/* tsi_pq_write with more options for DuckDB's COPY after the format and the compression
 * (e.g. "ROW_GROUP_SIZE 65536"; NULL or "" for none). */
long long tsi_pq_write_opts(duckdb_connection con, const char *select_sql, const char *copy_options,
                            const char *dir, const char *prefix, const char *start, char *out,
                            size_t outlen, tsi_error *err);

/* The two halves of tsi_pq_write, for callers that check a file before publishing it
 * (compaction): write into a temporary file in dir (its path into tmp, >= PATH_MAX),
 * fsync'd; then move it to the first free <prefix>_<start>_<seq>.parquet. */
long long tsi_pq_write_tmp(duckdb_connection con, const char *select_sql, const char *dir,
                           const char *prefix, char *tmp, size_t tmplen, tsi_error *err);
int tsi_pq_publish(const char *tmp, const char *dir, const char *prefix, const char *start,
                   char *out, size_t outlen, tsi_error *err);

/* Removes this directory's temporary files left by dead processes (older than
 * min_age_s seconds). Returns how many were removed. */
int tsi_pq_clean_tmp(const char *dir, int min_age_s);

#endif
