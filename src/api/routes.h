/* api/routes.h — the route table of `tsi serve` (routes.c): every endpoint, one row
 * each (the row's type, tsi_route_def, is in state.h so that the access log and /metrics
 * read route names without depending on the handlers).
 *
 * Ownership: static constant data; the router (server.c) reads it and points the server
 * state at it (tsi_api.routes) at start. */
#ifndef TSI_API_ROUTES_H
#define TSI_API_ROUTES_H

#include "api/state.h"

extern const tsi_route_def tsi_routes[]; /* ends with pattern == NULL and name == NULL */

#endif
