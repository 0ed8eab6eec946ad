/* db/copybin.h — PostgreSQL's binary COPY format for realtime index rows: the stream's
 * signature and trailer, and one safety_indices_realtime row as a tuple (field count, then
 * each field's length and bytes in network order). No text formatting here and no parsing
 * in the server. Used by the collector's writer (db/ingest.c) for both its direct COPY into
 * the table and its staging table.
 *
 * Field order: an optional seq (bigint), intersection_id, "timestamp", then the columns of
 * TSI_RT_BASE_COLS and the feature columns tsi_rt_feat_cols[] (db/columns.h's
 * TSI_RT_FEAT_COLS, in that order) where feat[] says so. A double that is not finite goes as
 * NULL (as in the text form); constants_id <= 0 and an algorithm_version outside 1..32767 go
 * as NULL; a timestamp beyond what timestamptz holds goes as a value the server refuses as out
 * of range (not its infinity).
 *
 * Ownership: pure functions appending to the caller's tsi_buf; no state, thread-safe. */
#ifndef TSI_DB_COPYBIN_H
#define TSI_DB_COPYBIN_H

#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"
#include "core/rows.h"

/* the optional columns of safety_indices_realtime, written where the table has them */
#define TSI_RT_NFEAT 5
extern const char *const tsi_rt_feat_cols[TSI_RT_NFEAT];

/* the stream's signature, flags and (empty) header extension */
void tsi_copybin_begin(tsi_buf *b);
/* the trailer: a field count of -1 */
void tsi_copybin_end(tsi_buf *b);
/* one realtime row: seq (when seq >= 0), then the table's columns in the staging table's
 * order, the feature columns where feat[] says (all of them when feat is NULL) */
void tsi_copybin_rt_row(tsi_buf *d, const tsi_rt_row *r, int64_t seq, const bool *feat);

#endif
