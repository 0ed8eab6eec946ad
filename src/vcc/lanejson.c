/* vcc/lanejson.c — see lanejson.h */
#include "vcc/lanejson.h"

#include <math.h>

#include "vcc/decode.h"

const char *tsi_lane_type_name(tsi_lane_type t)
{
    switch (t) {
    case TSI_LANE_VEHICLE:
        return "vehicle";
    case TSI_LANE_CROSSWALK:
        return "crosswalk";
    case TSI_LANE_BIKE:
        return "bike";
    case TSI_LANE_SIDEWALK:
        return "sidewalk";
    case TSI_LANE_MEDIAN:
        return "median";
    case TSI_LANE_STRIPING:
        return "striping";
    case TSI_LANE_TRACKED:
        return "tracked_vehicle";
    case TSI_LANE_PARKING:
        return "parking";
    default:
        return "other";
    }
}

static bool node_ok(const tsi_lane *l, int k)
{
    return isfinite(l->lat[k]) && isfinite(l->lon[k]) && fabs(l->lat[k]) <= 90 &&
           fabs(l->lon[k]) <= 180;
}

void tsi_lanes_json(tsi_jsonw *w, const tsi_lane *lanes, int n)
{
    tsi_jsonw_array(w);
    for (int i = 0; i < n; i++) {
        const tsi_lane *l = &lanes[i];
        int good = 0;
        for (int k = 0; k < l->nnodes; k++)
            good += node_ok(l, k);
        if (good < 2)
            continue;
        tsi_jsonw_object(w);
        tsi_jsonw_kv_int(w, "id", l->lane_id);
        tsi_jsonw_kv_str(w, "type", tsi_lane_type_name(l->type));
        if (l->ingress_approach >= 0)
            tsi_jsonw_kv_int(w, "ingress", l->ingress_approach);
        if (l->egress_approach >= 0)
            tsi_jsonw_kv_int(w, "egress", l->egress_approach);
        /* the decoded bit fields (J2735 names), where the MapData gave them */
        if (l->directional_use >= 0) {
            tsi_jsonw_key(w, "directional_use");
            tsi_bits_json(w, TSI_BITS_DIRECTION, l->directional_use);
        }
        if (l->shared_with >= 0) {
            tsi_jsonw_key(w, "shared_with");
            tsi_bits_json(w, TSI_BITS_SHARING, l->shared_with);
        }
        if (l->maneuvers >= 0) {
            tsi_jsonw_key(w, "maneuvers");
            tsi_bits_json(w, TSI_BITS_MANEUVERS, l->maneuvers);
        }
        if (l->nconnects > 0) {
            tsi_jsonw_key(w, "connects_to");
            tsi_jsonw_array(w);
            for (int c = 0; c < l->nconnects; c++) {
                const tsi_connection *cn = &l->connects[c];
                tsi_jsonw_object(w);
                if (cn->lane >= 0)
                    tsi_jsonw_kv_int(w, "lane", cn->lane);
                if (cn->maneuver >= 0) {
                    tsi_jsonw_key(w, "maneuver");
                    tsi_bits_json(w, TSI_BITS_MANEUVERS, cn->maneuver);
                }
                if (cn->signal_group >= 0)
                    tsi_jsonw_kv_int(w, "signal_group", cn->signal_group);
                tsi_jsonw_end(w);
            }
            tsi_jsonw_end(w);
        }
        tsi_jsonw_key(w, "nodes");
        tsi_jsonw_array(w);
        for (int k = 0; k < l->nnodes; k++) {
            if (!node_ok(l, k))
                continue;
            tsi_jsonw_array(w);
            tsi_jsonw_double_fixed(w, l->lat[k], 7);
            tsi_jsonw_double_fixed(w, l->lon[k], 7);
            tsi_jsonw_end(w);
        }
        tsi_jsonw_end(w);
        tsi_jsonw_end(w);
    }
    tsi_jsonw_end(w);
}
