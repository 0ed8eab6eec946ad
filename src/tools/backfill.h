/* tools/backfill.h — `tsi backfill`: indices Parquet (both layouts) into PostgreSQL, with
 * rollups for the whole range and a validation at the end (FR-6). docs/backfill.md. */
#ifndef TSI_TOOLS_BACKFILL_H
#define TSI_TOOLS_BACKFILL_H

#include "base/options.h"

/* `tsi backfill` on options parsed with the table of cli/cmd_tools.c (--from, --since,
 * --until, --dry-run, ...). Returns the exit status: 0 loaded and validated, 1 failure or
 * a validation difference, 2 a bad option value. */
int tsi_backfill_run(const tsi_opts *o);

#endif
