/* tools/backfill.h — `tsi backfill`: indices Parquet (both layouts) into PostgreSQL, with
 * rollups for the whole range and a validation at the end (FR-6). docs/backfill.md. */
#ifndef TSI_TOOLS_BACKFILL_H
#define TSI_TOOLS_BACKFILL_H

#include "base/options.h"

extern const tsi_option tsi_backfill_options[];

#endif
