/* Unit tests of core/geo: whether a ring is a simple polygon on the sphere (geodesic
 * edges, as PostGIS's geography reads them). Each case's answer is known by
 * construction: rings around a pole, across the antimeridian, bow-ties, spikes,
 * repeated and antipodal vertices. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>

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

/* point in ring: the answers PostGIS's geography gives (checked by hand with ST_Covers on
 * the same rings: the cap at 80°N covers 89°N and 83.5°N at lon 45 — above the geodesic
 * edge, which passes 82.93°N there — and not 82°N) */
static const struct {
    const char *what;
    int n;
    double ll[MAXV][2];
    double p[2];
    bool want;
} covers[] = {
    {"cap 80N: near the pole", 4, {{80, 0}, {80, 90}, {80, 180}, {80, -90}}, {89, 45}, true},
    {"cap 80N: above the edge at lon 45",
     4,
     {{80, 0}, {80, 90}, {80, 180}, {80, -90}},
     {83.5, 45},
     true},
    {"cap 80N: below the edge at lon 45",
     4,
     {{80, 0}, {80, 90}, {80, 180}, {80, -90}},
     {82, 45},
     false},
    {"cap 80N, reversed: near the pole",
     4,
     {{80, 0}, {80, -90}, {80, 180}, {80, 90}},
     {89, -135},
     true},
    {"cap 80N: the equator", 4, {{80, 0}, {80, 90}, {80, 180}, {80, -90}}, {0, 0}, false},
    {"south cap: the pole side",
     5,
     {{-75, 0}, {-75, -72}, {-75, -144}, {-75, 144}, {-75, 72}},
     {-89, 10},
     true},
    {"south cap: north of it",
     5,
     {{-75, 0}, {-75, -72}, {-75, -144}, {-75, 144}, {-75, 72}},
     {-60, 10},
     false},
    {"antimeridian box: east of it",
     4,
     {{10, 170}, {10, -170}, {-10, -170}, {-10, 170}},
     {0, 179},
     true},
    {"antimeridian box: west of it",
     4,
     {{10, 170}, {10, -170}, {-10, -170}, {-10, 170}},
     {0, -179},
     true},
    {"antimeridian box: Greenwich",
     4,
     {{10, 170}, {10, -170}, {-10, -170}, {-10, 170}},
     {0, 0},
     false},
    {"antimeridian box: beyond it",
     4,
     {{10, 170}, {10, -170}, {-10, -170}, {-10, 170}},
     {0, 160},
     false},
    {"Virginia square: inside",
     4,
     {{38.86, -77.28}, {38.86, -77.24}, {38.90, -77.24}, {38.90, -77.28}},
     {38.88, -77.26},
     true},
    {"Virginia square: outside",
     4,
     {{38.86, -77.28}, {38.86, -77.24}, {38.90, -77.24}, {38.90, -77.28}},
     {38.91, -77.26},
     false},
    {"Virginia square: a vertex",
     4,
     {{38.86, -77.28}, {38.86, -77.24}, {38.90, -77.24}, {38.90, -77.28}},
     {38.86, -77.28},
     true},
};

static void test_ring_covers(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof covers / sizeof covers[0]; i++) {
        double lat[MAXV], lon[MAXV];
        for (int k = 0; k < covers[i].n; k++) {
            lat[k] = covers[i].ll[k][0];
            lon[k] = covers[i].ll[k][1];
        }
        bool got = tsi_geo_ring_covers(lat, lon, covers[i].n, covers[i].p[0], covers[i].p[1]);
        if (got != covers[i].want)
            fail_msg("%s: %s", covers[i].what, got ? "covered" : "not covered");
    }
}

/* distance to a geodesic polyline, against arcs computed by hand: 1° of a great circle is
 * R·π/180 = 111195.08 m */
static void test_polyline_distance(void **state)
{
    (void)state;
    const double deg = TSI_EARTH_RADIUS_M * M_PI / 180;
    const double la[] = {0, 0}, lo[] = {0, 2};
    assert_true(tsi_geo_point_polyline_m(0, 1, la, lo, 2) < 1e-6);             /* on it */
    assert_true(fabs(tsi_geo_point_polyline_m(1, 1, la, lo, 2) - deg) < 1e-6); /* abeam */
    assert_true(fabs(tsi_geo_point_polyline_m(0, 3, la, lo, 2) - deg) < 1e-6); /* past its end */
    assert_true(fabs(tsi_geo_point_polyline_m(-2, 1, la, lo, 2) - 2 * deg) < 1e-6);
    /* across the antimeridian: an equator polyline 179E → 179W passes 180° */
    const double lb[] = {0, 0}, ob[] = {179, -179};
    assert_true(fabs(tsi_geo_point_polyline_m(0.5, 180, lb, ob, 2) - 0.5 * deg) < 1e-6);
    /* one vertex: the distance to it (haversine) */
    assert_true(fabs(tsi_geo_point_polyline_m(38.87, -77.27, la, lo, 1) -
                     tsi_geo_haversine_m(38.87, -77.27, 0, 0)) < 1e-3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_simple),
        cmocka_unit_test(test_ring_covers),
        cmocka_unit_test(test_polyline_distance),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
