/* api/state.c — the server state's globals (state.h): the running server, the latency
 * buckets of the metrics, the monotonic clock and route names. */
#include "api/state.h"

#include <time.h>

tsi_api *tsi_api_g;

const double tsi_api_buckets[TSI_API_NBUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                  0.1,    0.25,  0.5,    1,     2.5,  5,     1e300};

double tsi_api_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec / 1e9;
}

const char *tsi_api_route_name(int id)
{
    if (!tsi_api_g || !tsi_api_g->routes)
        return "not_found";
    for (const tsi_route_def *d = tsi_api_g->routes; d->name; d++)
        if (d->id == id)
            return d->name;
    return "not_found";
}
