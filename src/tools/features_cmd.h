/* tools/features_cmd.h — `tsi features` and `tsi explain`: the domain core on files.
 *
 * tsi features --mapdata FILE --messages FILE [--constants FILE] [--format jsonl|csv]
 *   The whole domain pipeline offline: MapData (what /api/mapdata/decoded returns) →
 *   registry; JSON lines of messages (each a BsmWithMetadata / PsmWithMetadata object
 *   or a stream frame, an array of them) → decode → assign → 1-minute windows →
 *   features; at end of input every open window closes. One output record per
 *   intersection-minute: intersection_id, timestamp (ISO 8601 UTC, the minute's start),
 *   hour_of_day, day_of_week, the seven features of domain.md §3, and combined_index,
 *   vru_index, vehicle_index with their _eb forms. Rejected lines go to stderr as
 *   `line N[: element K]: <reason_code>: <message>: <detail>`; a closing summary line
 *   on stderr counts everything. Constants: --constants FILE, else computed from the
 *   input's own 1-minute features (the daily job's rule), else the defaults. EB priors:
 *   the input's own history (--priors input, the hierarchy of §4) or none.
 *
 * tsi explain --features FILE.json [--constants FILE.json] [--format text|json]
 *   The index of one minute's features and each term's contribution.
 *
 * tsi explain --intersection ID --at TIME [--archive DIR] [--format text|json]
 *   A stored minute recomputed (issue 26): its features from the indices Parquet of its day,
 *   the constants set the row records (constants_id; with its EB priors, loaded as the
 *   collector loads them; none recorded: the built-in defaults, no prior), the index
 *   computed by this build, side by side with the stored values (Parquet, and the
 *   database's row while realtime keeps it). Exit 0 when every value matches to 1e-9, 1
 *   when one differs or the minute, the set or the archive cannot be read, 2 on bad flags. */
#ifndef TSI_TOOLS_FEATURES_CMD_H
#define TSI_TOOLS_FEATURES_CMD_H

#include "base/options.h"

/* `tsi features` and `tsi explain` on options parsed with the tables of cli/cmd_tools.c.
 * Each returns the exit status: 0 ok, 1 failure (explain: stored and recomputed differ),
 * 2 a bad option value. */
int tsi_features_run(const tsi_opts *o);
int tsi_explain_run(const tsi_opts *o);

#endif
