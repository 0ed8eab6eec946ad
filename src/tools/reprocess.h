/* tools/reprocess.h — `tsi reprocess`: recompute a range from the raw archive with today's
 * algorithm and constants, and replace it atomically per day (US-6). docs/backfill.md. */
#ifndef TSI_TOOLS_REPROCESS_H
#define TSI_TOOLS_REPROCESS_H

#include "base/options.h"

extern const tsi_option tsi_reprocess_options[];

#endif
