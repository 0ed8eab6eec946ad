/* archive/intersections.h — the intersections file of the archive:
 * $archive/intersections/intersections.parquet (id, name, latitude, longitude,
 * lane_count), one row per intersection, replaced whole and atomically (written beside it,
 * fsync'd, renamed over it). It lets any `tsi serve` start without PostgreSQL and still
 * name and place every intersection (api/names.c reads it). `tsi seed` and the collector
 * (on each MapData that adds or changes an intersection) write it.
 *
 * Ownership: rows are borrowed for the call; it opens and closes its own in-memory
 * DuckDB. Not for concurrent writers of one archive (each replaces the file whole: the
 * last wins, never a torn file). */
#ifndef TSI_ARCHIVE_INTERSECTIONS_H
#define TSI_ARCHIVE_INTERSECTIONS_H

#include <stdint.h>

#include "base/error.h"

typedef struct tsi_archive_isect {
    int64_t id;
    const char *name;
    double latitude, longitude; /* degrees, kept to 1e-7 (about 1 cm) */
    int lane_count;             /* < 0: NULL */
} tsi_archive_isect;

#define TSI_ARCHIVE_ISECT_DIR  "intersections"
#define TSI_ARCHIVE_ISECT_FILE "intersections.parquet"

/* Replaces archive_root/intersections/intersections.parquet with rows[0..n). 0 or a
 * negative code (err set); on failure the previous file stays as it was. */
int tsi_archive_intersections_write(const char *archive_root, const tsi_archive_isect *rows, int n,
                                    tsi_error *err);

#endif
