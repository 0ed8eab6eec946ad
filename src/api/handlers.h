/* api/handlers.h — the endpoints of `tsi serve` (domain.md §6, issue 13), one function
 * each, by resource family: the current index (h_index.c), history and statistics
 * (h_history.c), comparison and ranking (h_rank.c), spatial (h_spatial.c), intersections
 * (h_intersections.c), the service endpoints (h_service.c). What several families share is
 * in h_common.h.
 *
 * Every handler validates each parameter strictly (wrong type, out of range, unknown
 * value → 400 {"detail","code","field"}, v1: FastAPI's 422), then reads through prepared
 * statements (queries.c) or, while PostgreSQL is away, the Parquet archive (fallback.h).
 * Ownership: a handler borrows the request (req.h) and writes its body, status and
 * response fields, answering its own errors; it returns 0 and keeps no pointer into the
 * request. The route table (routes.c) names them. */
#ifndef TSI_API_HANDLERS_H
#define TSI_API_HANDLERS_H

#include "api/req.h"

int tsi_h_index_all(tsi_req *r);
int tsi_h_index_one(tsi_req *r);
int tsi_h_history_one(tsi_req *r);
int tsi_h_history_all(tsi_req *r);
int tsi_h_stats(tsi_req *r);
int tsi_h_compare(tsi_req *r);
int tsi_h_ranking(tsi_req *r);
int tsi_h_nearby(tsi_req *r);
int tsi_h_route(tsi_req *r);
int tsi_h_area(tsi_req *r);
int tsi_h_intersection(tsi_req *r);
int tsi_h_geometry(tsi_req *r); /* GET /intersections/geometry?bbox= (lane polylines) */
int tsi_h_health(tsi_req *r);
int tsi_h_metrics(tsi_req *r);
int tsi_h_openapi(tsi_req *r);
int tsi_h_config(tsi_req *r);

#endif
