/* vcc/lanejson.h — MapData lane polylines as the compact JSON stored in
 * intersections.metadata.lane_geometry (docs/dashboard.md, issue 16).
 *
 *   [{"id":1,"type":"vehicle","ingress":1,"egress":2,"directional_use":["ingressPath"],
 *     "shared_with":[],"maneuvers":["maneuverStraightAllowed",...],
 *     "connects_to":[{"lane":6,"maneuver":["maneuverLeftAllowed"],"signal_group":6}],
 *     "nodes":[[lat,lon],...]}, ...]
 *
 * type is vehicle, crosswalk, bike, sidewalk, median, striping, tracked_vehicle, parking
 * or other; ingress/egress (the approach ids) and the decoded bit fields (J2735 names,
 * vcc/decode.h tsi_bits_json) are left out when absent; nodes are absolute WGS-84 degrees (refPoint
 * + the offsets, as core/messages.h decodes them) rounded to 1e-7 deg. Lanes of fewer than two
 * finite nodes are skipped. Used by the collector (MapData → intersections row) and `tsi seed`. */
#ifndef TSI_VCC_LANEJSON_H
#define TSI_VCC_LANEJSON_H

#include "base/jsonw.h"
#include "core/messages.h"

const char *tsi_lane_type_name(tsi_lane_type t);

/* writes the array value (the caller writes the key) */
void tsi_lanes_json(tsi_jsonw *w, const tsi_lane *lanes, int n);

#endif
