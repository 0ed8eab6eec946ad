/* db/spool.h — the collector's spool file: its on-disk format, appending to it, reading it
 * back and recovering it after a crash. The writer (db/ingest.c) decides what goes in and
 * when the database has it; this module only knows the bytes.
 *
 * Format: append-only, each record one frame: a 16-byte header (magic "TSIS" as a
 * little-endian uint32, the record's type, the format version 1, two zero bytes, the
 * payload's length as uint32, a CRC-32 of header bytes 4..11 and the payload) then the
 * payload: a tsi_rt_row (or the shorter prefix written before migration 060's provenance
 * fields), a tsi_dq_row, or an intersection (a fixed part, then its metadata JSON without
 * the NUL, at most TSI_ISECT_METADATA_MAX bytes). Byte order and struct layout are the
 * host's: a spool is read back by the build that wrote it (or an older one).
 *
 * Recovery: tsi_spool_scan counts the valid frames from the start, skips a corrupt one in
 * the middle (resynchronising on the next valid frame; a run of garbage counts once) and
 * cuts a torn or corrupt tail, so an append cut short (kill -9) loses nothing that was
 * acknowledged. tsi_spool_read skips corrupt frames the same way.
 *
 * Ownership: the caller owns the file descriptor (tsi_spool_open locks the file with flock:
 * one process per spool; close releases it) and the records tsi_spool_read fills (an
 * intersection's metadata is malloc'ed: tsi_spool_recs_free). No state here; the caller
 * serialises appends. */
#ifndef TSI_DB_SPOOL_H
#define TSI_DB_SPOOL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/buf.h"
#include "base/error.h"
#include "core/rows.h"

/* record types (a frame's type byte) */
enum { TSI_SPOOL_ROW = 1, TSI_SPOOL_ISECT = 2, TSI_SPOOL_DQ = 3 };

/* one record read back */
typedef struct tsi_spool_rec {
    int type;
    off_t off; /* where the frame starts */
    union {
        tsi_rt_row row;
        tsi_isect_row isect;
        tsi_dq_row dq;
    } u;
} tsi_spool_rec;

/* Creates the spool's directory, opens (creates) the file for appending and locks it;
 * *fd = -1 on failure (TSI_E_IO; TSI_E_EXISTS when another process holds it). */
int tsi_spool_open(const char *path, int *fd, tsi_error *err);

/* Scans the spool from the start: counts valid records and corrupt runs, cuts a torn tail
 * (*size is the size after the cut). path is for messages. */
int tsi_spool_scan(int fd, const char *path, off_t *size, long long *records, long long *corrupt,
                   tsi_error *err);

/* One frame of type around payload[0..len), appended to b. */
void tsi_spool_frame(tsi_buf *b, int type, const void *payload, uint32_t len);
/* An intersection's payload (its fixed part, zero-padded, then its metadata; NULL or "" =
 * "{}"), appended to b; the caller checks the metadata's size first. */
void tsi_spool_isect_payload(tsi_buf *b, const tsi_isect_row *row);

/* Appends data[0..len) and fdatasyncs; on failure cuts the file back to end (where the
 * frames before it end) so the next append starts on a frame boundary. */
int tsi_spool_write(int fd, const char *path, const void *data, size_t len, off_t end,
                    tsi_error *err);
/* Truncates the spool to nothing (everything in it was written) and fdatasyncs. */
int tsi_spool_empty(int fd, const char *path, tsi_error *err);

/* Reads up to max records of one type starting at off (< end); returns the count and the
 * offset after them in *next; skipped corrupt frames are added to *corrupt. */
size_t tsi_spool_read(int fd, off_t off, off_t end, tsi_spool_rec *v, size_t max, off_t *next,
                      long long *corrupt);
/* Frees what tsi_spool_read allocated in v[0..n) (intersections' metadata). */
void tsi_spool_recs_free(tsi_spool_rec *v, size_t n);

#endif
