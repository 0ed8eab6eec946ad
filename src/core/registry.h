/* core/registry.h — the intersections known from MapData, and message → intersection
 * assignment in metres (domain.md §2).
 *
 * Identity: id = region·65536 + id.id. Position: refPoint. lane_count: vehicle lanes.
 * A newer revision replaces the stored geometry (revisions are 0..127 and wrap: newer
 * means 1..63 steps ahead modulo 128).
 *
 * Assignment of a message (first rule that matches):
 *   1. its locationName is mapped by configuration to an intersection id that the
 *      registry knows → that intersection;
 *   2. among intersections whose lane footprint (the vehicle lanes' centre lines from MapData) is
 *      within half a lane width of the message (lane width from MapData, 3.6 m when
 *      absent), or whose refPoint is within the radius (default 150 m), the one whose
 *      footprint holds the message, nearest refPoint first; then the nearest refPoint;
 *   3. otherwise TSI_E_UNMATCHED (never a fake intersection 0).
 * Distances are true metres in each intersection's local tangent plane. Candidates come
 * from a uniform grid, so assignment costs O(1) in the number of intersections.
 *
 * Ownership: the registry copies everything it is given; the tsi_isect pointers it
 * returns stay valid until the next upsert. Not thread-safe; assignment after an upsert
 * rebuilds the grid once. */
#ifndef TSI_CORE_REGISTRY_H
#define TSI_CORE_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"
#include "core/geo.h"
#include "core/messages.h"

#define TSI_DEFAULT_RADIUS_M     150.0
#define TSI_DEFAULT_LANE_WIDTH_M 3.6

typedef struct tsi_isect {
    int64_t id;
    char name[128];
    double ref_lat, ref_lon;
    int lane_count; /* vehicle lanes */
    int revision;
    double speed_limit;  /* m/s, NAN when unknown */
    double lane_width_m; /* as given, else TSI_DEFAULT_LANE_WIDTH_M */
    int nlanes;          /* all lanes */
    tsi_ltp ltp;         /* local frame around refPoint: features use it */
    int nseg;            /* lane centre-line segments, local metres */
    double *seg;         /* 4 per segment: ax, ay, bx, by */
    double reach_m;      /* farthest footprint point from refPoint, + half lane width */
} tsi_isect;

typedef struct tsi_registry tsi_registry;

tsi_registry *tsi_registry_new(double radius_m); /* radius <= 0 → default 150 m */
void tsi_registry_free(tsi_registry *r);         /* NULL-safe */

/* Adds or replaces (when the revision is newer) an intersection. Returns 1 when stored,
 * 0 when the stored revision is the same or newer. */
int tsi_registry_upsert(tsi_registry *r, const tsi_map_intersection *x);
/* Every intersection of a decoded MapData; returns how many were stored. */
int tsi_registry_upsert_all(tsi_registry *r, const tsi_mapdata *m);

/* Forgets an intersection (gone from MapData): messages are no longer assigned to it.
 * Returns 1 when it was known, 0 otherwise. Pointers from tsi_registry_at/find are
 * invalidated, as by an upsert. */
int tsi_registry_remove(tsi_registry *r, int64_t id);

int tsi_registry_count(const tsi_registry *r);
const tsi_isect *tsi_registry_at(const tsi_registry *r, int i); /* 0 <= i < count */
const tsi_isect *tsi_registry_find(const tsi_registry *r, int64_t id);

/* Configured locationName → intersection id (copies the name; replaces an earlier
 * mapping of the same name). */
void tsi_registry_map_location(tsi_registry *r, const char *location_name, int64_t id);
/* A location map as JSON text, one object {"<locationName>": <intersection id>, ...}
 * (`--location-map` of tsi features and tsi collect). Every entry is checked before any
 * is applied: a bad map (not an object, a name over 127 bytes, an id that is not an
 * integer >= 0) changes nothing and returns TSI_E_* with err naming the entry. Returns
 * the number of names mapped. js is borrowed. */
int tsi_registry_map_locations_json(tsi_registry *r, const char *js, size_t len, tsi_error *err);

/* Assigns a message. Returns 0 with *out set, or TSI_E_UNMATCHED with err saying how far
 * the nearest intersection was. */
int tsi_registry_assign(tsi_registry *r, const tsi_msg *m, const tsi_isect **out, tsi_error *err);

#endif
