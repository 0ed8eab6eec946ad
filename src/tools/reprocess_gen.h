/* tools/reprocess_gen.h — the crash-safe swap of one day's indices Parquet for
 * `tsi reprocess` (issue 24). A generation is decided by the database, not by the disk:
 *
 *   stage    archive/indices/.staging/g<N>.<YYYY-MM-DD>/ is built beside the archive:
 *            a hard link of every live file of the day that holds no row of the range
 *            (kept as is), one rewritten file per kind (`indices`, `conflicts`) holding
 *            the replaced files' rows outside the range plus the recomputed rows, named
 *            <kind>_<day>T000000Z-g<N>_<seq>.parquet (a name the collector never uses),
 *            and a `.tsi-generation` marker ("generation N"). Nothing live changes.
 *   commit   the caller inserts the reprocess_generations row N (tsi_rpgen_record_sql)
 *            in the same transaction that replaces the day's rows (migration 050).
 *   finish   the staging directory and indices/YYYY/MM/DD are exchanged with one
 *            renameat2(RENAME_EXCHANGE) (a reader sees the old set or the new one); the
 *            files the collector published in the old directory after the staging (any
 *            name not in the superseded list) are moved into the live one; what remains
 *            (the superseded files only) goes to indices/.superseded/<day>.g<N>/, and
 *            swapped_at is set.
 *   recover  for every staging directory: committed (a row N exists) -> finish it;
 *            not committed -> remove it (its hard links never were the live files).
 *            Every step is idempotent: a crash anywhere is healed by running it again.
 * The caller holds the reprocess advisory lock (TSI_RPGEN_LOCK_SQL) for the whole run,
 * so no staging directory of a running reprocess is ever taken for an abandoned one.
 *
 * Ownership: paths and connections are borrowed; tsi_rpgen owns its name lists
 * (tsi_rpgen_free). Not thread-safe. */
#ifndef TSI_TOOLS_REPROCESS_GEN_H
#define TSI_TOOLS_REPROCESS_GEN_H

#include <libpq-fe.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/error.h"
#include "archive/parquet_read.h"

/* Session-level advisory lock of `tsi reprocess` (one run at a time per database). */
#define TSI_RPGEN_LOCK_SQL   "SELECT pg_try_advisory_lock(hashtext('tsi_reprocess')) AS locked"
#define TSI_RPGEN_MARKER     ".tsi-generation"
#define TSI_RPGEN_STAGING    ".staging"
#define TSI_RPGEN_SUPERSEDED ".superseded"

typedef struct tsi_rpgen_names {
    char **v;
    size_t n, cap;
} tsi_rpgen_names;

void tsi_rpgen_names_add(tsi_rpgen_names *l, const char *s); /* copies s */
bool tsi_rpgen_names_has(const tsi_rpgen_names *l, const char *s);
void tsi_rpgen_names_free(tsi_rpgen_names *l);

typedef struct tsi_rpgen {
    int64_t generation;
    int64_t day_us;         /* UTC midnight of the day, epoch µs */
    char day[16];           /* YYYY-MM-DD */
    char live[PATH_MAX];    /* archive/indices/YYYY/MM/DD */
    char staging[PATH_MAX]; /* archive/indices/.staging/g<N>.YYYY-MM-DD */
    tsi_rpgen_names live_files, superseded_files;
    int64_t rows_written; /* rows of the rewritten files */
} tsi_rpgen;

/* Builds the staging directory of generation `generation` for the day starting at day_us:
 * the live files of archive/indices/<day>/ with rows in [lo, hi) are replaced by their
 * rows outside [lo, hi) plus the rows of scratch/indices/<day>/ in [lo, hi). Fills g.
 * Returns 0 or a negative code (an unreadable live file is an error: nothing is staged). */
int tsi_rpgen_stage(tsi_pqr *p, const char *archive, const char *scratch, int64_t generation,
                    int64_t day_us, int64_t lo, int64_t hi, tsi_rpgen *g, tsi_error *err);

/* Appends to sql an INSERT of g's reprocess_generations row (values as literals built from
 * validated names and numbers). */
void tsi_rpgen_record_sql(tsi_buf *sql, const tsi_rpgen *g, int64_t lo, int64_t hi,
                          int64_t raw_messages, int64_t rows_before, int64_t rows_after,
                          bool forced);

/* Finishes committed generation N of archive (see above). Returns 0 or a negative code. */
int tsi_rpgen_finish(PGconn *c, const char *archive, int64_t generation, tsi_error *err);

/* Heals every staging directory of archive (see above); counts what it did. With
 * dry_run, only counts and logs what it would do. Returns 0 or a negative code. */
int tsi_rpgen_recover(PGconn *c, const char *archive, bool dry_run, int *finished, int *rolled_back,
                      tsi_error *err);

/* Removes g's staging directory (a generation given up before its commit). */
void tsi_rpgen_discard(tsi_rpgen *g);
void tsi_rpgen_free(tsi_rpgen *g); /* NULL-safe */

#endif
