/* db/constants.h — the normalisation constants and EB priors valid at a time, read from
 * normalization_constants (through the jobs' tsi_constants_at(), migration 010).
 *
 * Used by the collector (at start, on SIGHUP and each day) and by `tsi reprocess`.
 * Ownership: the connection is borrowed; *priors is a new tsi_priors owned by the caller
 * (tsi_priors_free), NULL when the set carries none. */
#ifndef TSI_DB_CONSTANTS_H
#define TSI_DB_CONSTANTS_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"
#include "core/index.h"

/* Loads the set valid now. Returns 1 when a set was found, 0 when none exists yet (k is
 * then tsi_constants_default and *priors NULL), or a negative TSI_E_* when the query
 * failed (TSI_E_DB) or the stored set is unusable (k is left at the defaults). */
int tsi_db_constants_now(PGconn *c, tsi_constants *k, tsi_priors **priors, tsi_error *err);

/* Loads the set with normalization_constants.id = id (what an index row records in
 * constants_id), with its priors: `tsi explain`. Same returns (0 = no such set). k->set_id
 * is the set's id whenever one was loaded. */
int tsi_db_constants_by_id(PGconn *c, int64_t id, tsi_constants *k, tsi_priors **priors,
                           tsi_error *err);

#endif
