/* Unit tests of core/geo: whether a ring is a simple polygon on the sphere (geodesic
 * edges, as PostGIS's geography reads them). Each case's answer is known by
 * construction: rings around a pole, across the antimeridian, bow-ties, spikes,
 * repeated and antipodal vertices. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/geo.h"

#define MAXV 8

static const struct {
    const char *what;
    int n;
    double ll[MAXV][2]; /* lat, lon */
    int want;           /* 1: not simple */
    int ea, eb;         /* the edges at fault, when not simple */
} rings[] = {
    {"a square in Virginia",
     4,
     {{38.86, -77.28}, {38.86, -77.24}, {38.90, -77.24}, {38.90, -77.28}},
     0,
     0,
     0},
    {"the same square as a bow-tie (edges 0 and 2 cross)",
     4,
     {{38.86, -77.28}, {38.90, -77.24}, {38.86, -77.24}, {38.90, -77.28}},
     1,
     0,
     2},
    {"a cap around the North Pole at 80°N (planar lon/lat calls it self-intersecting)",
     4,
     {{80, 0}, {80, 90}, {80, 180}, {80, -90}},
     0,
     0,
     0},
    {"a cap around the South Pole, clockwise",
     5,
     {{-75, 0}, {-75, -72}, {-75, -144}, {-75, 144}, {-75, 72}},
     0,
     0,
     0},
    {"a box across the antimeridian", 4, {{10, 170}, {10, -170}, {-10, -170}, {-10, 170}}, 0, 0, 0},
    {"a bow-tie across the antimeridian",
     4,
     {{10, 170}, {-10, -170}, {10, -170}, {-10, 170}},
     1,
     0,
     2},
    {"a triangle", 3, {{0, 0}, {0, 10}, {10, 5}}, 0, 0, 0},
    {"a repeated vertex (an edge of no length)", 4, {{0, 0}, {0, 10}, {0, 10}, {10, 5}}, 1, 1, 1},
    {"antipodal ends (no one geodesic)", 3, {{0, 0}, {0, 180}, {45, 90}}, 1, 0, 0},
    {"a spike: the third vertex doubles back along the second edge",
     4,
     {{0, 0}, {0, 10}, {0, 20}, {0, 15}},
     1,
     1,
     2},
    {"a pentagram (edges cross several times)",
     5,
     {{0, 1}, {0.588, -0.809}, {-0.951, 0.309}, {0.951, 0.309}, {-0.588, -0.809}},
     1,
     0,
     2},
    {"a convex pentagon",
     5,
     {{0, 1}, {0.951, 0.309}, {0.588, -0.809}, {-0.588, -0.809}, {-0.951, 0.309}},
     0,
     0,
     0},
    {"two vertices only", 2, {{0, 0}, {1, 1}}, 1, 0, 0},
    {"a ring touching itself at a vertex (edge 3 passes through vertex 1)",
     4,
     {{0, 0}, {0, 10}, {10, 10}, {0, 10.0}},
     1,
     1,
     2},
};

static void test_ring_simple(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rings / sizeof rings[0]; i++) {
        double lat[MAXV], lon[MAXV];
        for (int k = 0; k < rings[i].n; k++) {
            lat[k] = rings[i].ll[k][0];
            lon[k] = rings[i].ll[k][1];
        }
        int ea = -1, eb = -1;
        int got = tsi_geo_ring_self_intersects(lat, lon, rings[i].n, &ea, &eb);
        if (got != rings[i].want)
            fail_msg("%s: %s, want %s", rings[i].what, got ? "not simple" : "simple",
                     rings[i].want ? "not simple" : "simple");
        if (got && (ea != rings[i].ea || eb != rings[i].eb))
            fail_msg("%s: edges %d and %d, want %d and %d", rings[i].what, ea, eb, rings[i].ea,
                     rings[i].eb);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_simple),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
