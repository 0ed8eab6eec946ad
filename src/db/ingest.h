/* db/ingest.h — the collector's database writer: batched upsert of realtime index rows,
 * intersections and data-quality entries, through a durable spool.
 *
 * Every record handed in is first appended to the spool ($TSI_HOME/spool/ingest.spool
 * unless configured): append-only, one fsync per call, each record framed by a magic,
 * its type, length and a CRC-32 of header and payload. A writer thread reads the spool in
 * order and writes it to PostgreSQL as role tsi_writer, batch by batch (a batch: up to
 * batch_rows consecutive records of one type): intersections by upsert and quality entries
 * by COPY, in one transaction on the primary connection. Realtime rows are split by
 * intersection_id % connections into disjoint parts written concurrently, each part in its
 * own transaction on its own connection (a key lives in one part only). A part goes by
 * binary COPY straight into safety_indices_realtime while its keys are new: the last
 * version of each key (in spool order) kept and the keys sorted here, rows of unknown
 * intersections left out after one query for the part's distinct ids. When the table
 * refuses that COPY (a key that exists, a value a CHECK refuses, an intersection deleted
 * meanwhile), the transaction is rolled back and written again staged: COPY into a
 * temporary table then INSERT … ON CONFLICT (intersection_id, "timestamp") DO UPDATE from
 * its DISTINCT ON (the last version in spool order wins), and the next 8 parts on that
 * connection go staged directly. Either way the table ends as the upsert leaves it. A batch
 * starts only when the one before it committed, so intersections are
 * committed before the rows after them in the spool are written. When every part of the
 * batch has committed the read position advances; if one part fails for a transient cause
 * the whole batch is written again later (the parts already committed are upserted again:
 * harmless). When everything is written the spool is truncated. So:
 *   - the caller never waits for the database (only for the spool's fsync);
 *   - while the database is unreachable, records accumulate and are replayed in order
 *     when it returns (reconnects back off exponentially, with jitter);
 *   - a crash (even kill -9 mid-append) loses nothing that was acknowledged: on open the
 *     spool is scanned, a torn tail record fails its checksum and is cut off, a corrupt
 *     record in the middle is skipped (resynchronising on the next valid frame), and the
 *     rest is replayed. Replays are idempotent (upserts).
 *   - a record the database refuses for its content (a CHECK, a missing partition) is
 *     retried alone (only the records of the refused part: the other parts committed), and
 *     if refused again logged and dropped: one bad row never blocks the spool. Rows of an
 *     intersection that does not exist are dropped and counted.
 *   - feature columns (avg_speed, speed_stddev, hard_braking_count) are written when the
 *     schema has them (checked at each connection, by each connection).
 *
 * Ownership: tsi_ingest owns its thread (and, during a batch of rows, one short-lived
 * thread per extra part), its connections and the spool file (locked with flock: one
 * process per spool). Records passed in are copied. The add functions are thread-safe;
 * open/close are not. */
#ifndef TSI_DB_INGEST_H
#define TSI_DB_INGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "core/rows.h"

typedef struct tsi_ingest tsi_ingest;

typedef struct tsi_ingest_config {
    const char *spool_dir; /* NULL = $TSI_HOME/spool */
    int batch_rows;        /* records per transaction; 0 = 20000 */
    int retry_min_ms;      /* first reconnect delay; 0 = 200 */
    int retry_max_ms;      /* cap of the backoff; 0 = 30000 */
    int connections;       /* writer connections (realtime rows split among them); 0 = 2,
                              at most 16 */
    bool start_paused;     /* tests: the writer thread waits for tsi_ingest_resume */
} tsi_ingest_config;

typedef struct tsi_ingest_stats {
    long long rows_written;   /* realtime rows upserted */
    long long isects_written; /* intersections upserted */
    long long dq_written;     /* data_quality_log rows inserted */
    long long rejected;       /* records the database refused and that were dropped */
    long long orphans;        /* rows of unknown intersections, dropped */
    long long spool_records;  /* records waiting in the spool */
    long long spool_bytes;    /* bytes waiting */
    long long spool_corrupt;  /* corrupt records skipped (torn tails included) */
    long long replayed;       /* records written that had waited for the database */
    long long db_errors;      /* failed connections and transactions */
    long long batches;        /* spool batches written (one transaction per part) */
    long long direct_tx;      /* row transactions committed by COPY straight into the table */
    long long staged_tx;      /* row transactions committed through the staging table */
    long long direct_refused; /* direct COPYs the table refused (a key that existed, a value a
                                 CHECK refuses, ...): rolled back and written staged */
    bool connected;           /* every writer connection is up */
    char last_error[256];
} tsi_ingest_stats;

int tsi_ingest_open(tsi_ingest **out, const tsi_ingest_config *cfg, tsi_error *err);
/* Stops the writer (after its current transaction); what is not written stays in the
 * spool for the next open. NULL-safe. */
void tsi_ingest_close(tsi_ingest *in);

/* Appends to the spool (durable on return) and wakes the writer. */
int tsi_ingest_add_rows(tsi_ingest *in, const tsi_rt_row *rows, size_t n, tsi_error *err);
int tsi_ingest_add_isects(tsi_ingest *in, const tsi_isect_row *rows, size_t n, tsi_error *err);
int tsi_ingest_add_dq(tsi_ingest *in, const tsi_dq_row *rows, size_t n, tsi_error *err);

/* Waits until the spool is empty or timeout_ms passes; returns the records still
 * waiting (0 = all written). */
long long tsi_ingest_sync(tsi_ingest *in, int timeout_ms);

void tsi_ingest_resume(tsi_ingest *in);
void tsi_ingest_get_stats(tsi_ingest *in, tsi_ingest_stats *st);

/* The spool file's path for a directory (NULL = default), into buf. */
void tsi_ingest_spool_path(const char *spool_dir, char *buf, size_t len);

#endif
