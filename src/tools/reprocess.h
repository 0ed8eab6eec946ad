/* tools/reprocess.h — `tsi reprocess`: recompute a range from the raw archive with today's
 * algorithm and constants, and replace it atomically per day (US-6). docs/backfill.md. */
#ifndef TSI_TOOLS_REPROCESS_H
#define TSI_TOOLS_REPROCESS_H

#include "base/options.h"

/* `tsi reprocess` on options parsed with the table of cli/cmd_tools.c. Returns the exit
 * status: 0 done, 1 failure, 2 a bad option value, 3 refused (nothing changed). */
int tsi_reprocess_run(const tsi_opts *o);

#endif
