/* tools/seed.h — `tsi seed`: realistic synthetic history (see seed.c for what it writes).
 *
 * Ownership: nothing is shared; the command opens and closes its own connection (as
 * tsi_owner) and its own in-memory DuckDB. */
#ifndef TSI_TOOLS_SEED_H
#define TSI_TOOLS_SEED_H

#include <stdint.h>

#include "base/options.h"

/* The time plan of a seed run at wall clock `now` (epoch seconds), into out:
 * [0] last complete minute, [1] first 1-minute row (hour aligned, min(days,2) days back),
 * [2] the hour in progress (not rolled up), [3] today 00:00 UTC (not rolled up),
 * [4] first hourly row (day aligned, min(days,90) days back), [5] first daily row. */
int tsi_seed_plan(int n, int days, int64_t now, int64_t out[6]);

/* `tsi seed` on options parsed with the table of cli/cmd_tools.c. Returns the exit
 * status (0 or 1). */
int tsi_seed_run(const tsi_opts *o);

#endif
