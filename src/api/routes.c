/* api/routes.c — every endpoint of `tsi serve`, one row each (state.h: tsi_route_def).
 * The router (server.c) matches a path against these rows in order, so a literal segment
 * must come before a "{id}" at the same place (/intersections/nearby before
 * /intersections/{id}); /metrics reads the names (tsi_api_route_name). Rows without a pattern name
 * the pseudo-routes of the metrics (static files, CORS preflight, not found). */
#include <stddef.h>

#include "api/handlers.h"
#include "api/routes.h"

const tsi_route_def tsi_routes[] = {
    /* id            name            pattern                        versioned slash handler */
    {R_HEALTH, "health", "/health", false, false, tsi_h_health},
    {R_METRICS, "metrics", "/metrics", false, false, tsi_h_metrics},
    {R_HEALTH, "health", "/health", true, false, tsi_h_health},
    {R_OPENAPI, "openapi", "/openapi.json", true, false, tsi_h_openapi},
    {R_CONFIG, "config", "/config", true, false, tsi_h_config},
    {R_INDEX_ALL, "index_all", "/safety/index/", true, true, tsi_h_index_all},
    {R_INDEX_ONE, "index_one", "/safety/index/{id}", true, false, tsi_h_index_one},
    {R_HISTORY_ALL, "history_all", "/safety/history/", true, true, tsi_h_history_all},
    {R_HISTORY_ONE, "history", "/safety/history/{id}", true, false, tsi_h_history_one},
    {R_STATS, "stats", "/safety/history/{id}/stats", true, false, tsi_h_stats},
    {R_COMPARE, "compare", "/safety/compare", true, false, tsi_h_compare},
    {R_RANKING, "ranking", "/safety/ranking", true, false, tsi_h_ranking},
    {R_NEARBY, "nearby", "/intersections/nearby", true, false, tsi_h_nearby},
    {R_ROUTE, "route", "/intersections/route", true, false, tsi_h_route},
    {R_AREA, "area", "/intersections/area", true, false, tsi_h_area},
    {R_GEOMETRY, "geometry", "/intersections/geometry", true, false, tsi_h_geometry},
    {R_INTERSECTION, "intersection", "/intersections/{id}", true, false, tsi_h_intersection},
    {R_STATIC, "static", NULL, false, false, NULL},
    {R_OPTIONS, "options", NULL, false, false, NULL},
    {R_NOTFOUND, "not_found", NULL, false, false, NULL},
    {0, NULL, NULL, false, false, NULL},
};
