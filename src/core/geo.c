/* core/geo.c — see geo.h */
#include "core/geo.h"

#include <math.h>
#include <stdbool.h>

#define DEG2RAD (M_PI / 180.0)

double tsi_geo_haversine_m(double lat1, double lon1, double lat2, double lon2)
{
    double p1 = lat1 * DEG2RAD, p2 = lat2 * DEG2RAD;
    double dp = (lat2 - lat1) * DEG2RAD, dl = (lon2 - lon1) * DEG2RAD;
    double a = sin(dp / 2) * sin(dp / 2) + cos(p1) * cos(p2) * sin(dl / 2) * sin(dl / 2);
    if (a > 1)
        a = 1;
    return 2 * TSI_EARTH_RADIUS_M * atan2(sqrt(a), sqrt(1 - a));
}

double tsi_geo_bearing_deg(double lat1, double lon1, double lat2, double lon2)
{
    double p1 = lat1 * DEG2RAD, p2 = lat2 * DEG2RAD, dl = (lon2 - lon1) * DEG2RAD;
    double y = sin(dl) * cos(p2);
    double x = cos(p1) * sin(p2) - sin(p1) * cos(p2) * cos(dl);
    double b = atan2(y, x) / DEG2RAD;
    b = fmod(b + 360.0, 360.0);
    return b >= 360.0 ? 0.0 : b;
}

void tsi_geo_destination(double lat, double lon, double bearing_deg, double dist_m, double *out_lat,
                         double *out_lon)
{
    double d = dist_m / TSI_EARTH_RADIUS_M, b = bearing_deg * DEG2RAD;
    double p1 = lat * DEG2RAD, l1 = lon * DEG2RAD;
    double p2 = asin(sin(p1) * cos(d) + cos(p1) * sin(d) * cos(b));
    double l2 = l1 + atan2(sin(b) * sin(d) * cos(p1), cos(d) - sin(p1) * sin(p2));
    *out_lat = p2 / DEG2RAD;
    double lo = fmod(l2 / DEG2RAD + 540.0, 360.0) - 180.0;
    *out_lon = lo;
}

void tsi_ltp_init(tsi_ltp *p, double lat0, double lon0)
{
    double phi = lat0 * DEG2RAD;
    p->lat0 = lat0;
    p->lon0 = lon0;
    /* WGS84 meridional and normal radii of curvature */
    const double a = 6378137.0, e2 = 6.69437999014e-3;
    double s = sin(phi), w = sqrt(1 - e2 * s * s);
    double m = a * (1 - e2) / (w * w * w), n = a / w;
    p->m_per_deg_lat = m * DEG2RAD;
    p->m_per_deg_lon = n * cos(phi) * DEG2RAD;
}

void tsi_ltp_to_xy(const tsi_ltp *p, double lat, double lon, double *x_east, double *y_north)
{
    double dlon = lon - p->lon0;
    if (dlon > 180)
        dlon -= 360;
    else if (dlon < -180)
        dlon += 360;
    *x_east = dlon * p->m_per_deg_lon;
    *y_north = (lat - p->lat0) * p->m_per_deg_lat;
}

void tsi_ltp_to_ll(const tsi_ltp *p, double x_east, double y_north, double *lat, double *lon)
{
    *lat = p->lat0 + y_north / p->m_per_deg_lat;
    double lo = p->lon0 + (p->m_per_deg_lon > 0 ? x_east / p->m_per_deg_lon : 0);
    if (lo > 180)
        lo -= 360;
    else if (lo < -180)
        lo += 360;
    *lon = lo;
}

void tsi_geo_velocity(double speed, double heading_deg, double *vx_east, double *vy_north)
{
    double h = heading_deg * DEG2RAD;
    *vx_east = speed * sin(h);
    *vy_north = speed * cos(h);
}

/* ---- the sphere as unit vectors (geodesic rings) ---- */
typedef struct {
    double x, y, z;
} vec3;

static vec3 unit_of(double lat, double lon)
{
    double la = lat * M_PI / 180, lo = lon * M_PI / 180;
    return (vec3){cos(la) * cos(lo), cos(la) * sin(lo), sin(la)};
}

static vec3 cross3(vec3 a, vec3 b)
{
    return (vec3){a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x};
}

static double dot3(vec3 a, vec3 b)
{
    return a.x * b.x + a.y * b.y + a.z * b.z;
}

static double norm3(vec3 a)
{
    return sqrt(dot3(a, a));
}

#define RING_EPS 1e-12 /* ~6 µm on the Earth: the tolerance of "on an arc" */

/* whether unit vector p lies on the minor arc a→b whose pole (a × b) is n */
static bool on_arc(vec3 p, vec3 a, vec3 b, vec3 n)
{
    return dot3(cross3(a, p), n) >= -RING_EPS && dot3(cross3(p, b), n) >= -RING_EPS &&
           dot3(p, a) + dot3(p, b) > 0; /* not the antipode of the arc's points */
}

/* whether the arcs a1→a2 and b1→b2 (poles na, nb, both non-degenerate) share a point */
static bool arcs_meet(vec3 a1, vec3 a2, vec3 na, vec3 b1, vec3 b2, vec3 nb)
{
    vec3 d = cross3(na, nb);
    double l = norm3(d);
    if (l < RING_EPS * norm3(na) * norm3(nb)) /* one great circle: do they overlap? */
        return on_arc(b1, a1, a2, na) || on_arc(b2, a1, a2, na) || on_arc(a1, b1, b2, nb) ||
               on_arc(a2, b1, b2, nb);
    vec3 p = {d.x / l, d.y / l, d.z / l}, q = {-p.x, -p.y, -p.z};
    return (on_arc(p, a1, a2, na) && on_arc(p, b1, b2, nb)) ||
           (on_arc(q, a1, a2, na) && on_arc(q, b1, b2, nb));
}

int tsi_geo_ring_self_intersects(const double *lat, const double *lon, int n, int *ea, int *eb)
{
    *ea = *eb = 0;
    if (n < 3)
        return 1;
    for (int i = 0; i < n; i++) {
        int i1 = (i + 1) % n, i2 = (i + 2) % n;
        vec3 a = unit_of(lat[i], lon[i]), b = unit_of(lat[i1], lon[i1]);
        vec3 na = cross3(a, b);
        if (norm3(na) < 1e-9) { /* coincident or antipodal ends: no one geodesic */
            *ea = *eb = i;
            return 1;
        }
        /* the next edge doubling back along the same great circle */
        vec3 c = unit_of(lat[i2], lon[i2]);
        vec3 nb = cross3(b, c);
        if (norm3(nb) >= 1e-9 && norm3(cross3(na, nb)) < 1e-9 * norm3(na) * norm3(nb) &&
            dot3(na, nb) < 0) {
            *ea = i;
            *eb = i1;
            if (*ea > *eb) {
                *ea = i1;
                *eb = i;
            }
            return 1;
        }
    }
    for (int i = 0; i < n; i++) {
        vec3 a1 = unit_of(lat[i], lon[i]), a2 = unit_of(lat[(i + 1) % n], lon[(i + 1) % n]);
        vec3 na = cross3(a1, a2);
        for (int j = i + 2; j < n; j++) {
            if (i == 0 && j == n - 1) /* adjacent through the closing vertex */
                continue;
            vec3 b1 = unit_of(lat[j], lon[j]), b2 = unit_of(lat[(j + 1) % n], lon[(j + 1) % n]);
            if (arcs_meet(a1, a2, na, b1, b2, cross3(b1, b2))) {
                *ea = i;
                *eb = j;
                return 1;
            }
        }
    }
    return 0;
}

static double angle3(vec3 u, vec3 v)
{
    return atan2(norm3(cross3(u, v)), dot3(u, v));
}

static vec3 scale3(vec3 a, double k)
{
    return (vec3){a.x * k, a.y * k, a.z * k};
}

/* angle from p to the minor arc a→b (the nearest point of it) */
static double angle_to_arc(vec3 p, vec3 a, vec3 b)
{
    vec3 n = cross3(a, b);
    double ln = norm3(n);
    double ends = fmin(angle3(p, a), angle3(p, b));
    if (ln < 1e-15)
        return ends;
    n = scale3(n, 1 / ln);
    double d = dot3(p, n);
    vec3 c = {p.x - d * n.x, p.y - d * n.y, p.z - d * n.z}; /* p's foot on the great circle */
    double lc = norm3(c);
    if (lc < 1e-15) /* p is a pole of the circle: every point of the arc is 90° away */
        return M_PI / 2;
    c = scale3(c, 1 / lc);
    if (on_arc(c, a, b, n))
        return fabs(asin(fmax(-1, fmin(1, d))));
    return ends;
}

double tsi_geo_point_polyline_m(double lat, double lon, const double *plat, const double *plon,
                                int n)
{
    vec3 p = unit_of(lat, lon);
    double best = INFINITY;
    for (int i = 0; i < n; i++) {
        vec3 a = unit_of(plat[i], plon[i]);
        double d = i + 1 < n ? angle_to_arc(p, a, unit_of(plat[i + 1], plon[i + 1])) : angle3(p, a);
        best = fmin(best, d);
    }
    return best * TSI_EARTH_RADIUS_M;
}

/* whether the minor arcs p→q and a→b cross (an end exactly on the other arc counts half:
 * the parity stays right when the ray passes through a vertex, as it meets two edges) */
static double arc_crossing(vec3 p, vec3 q, vec3 a, vec3 b)
{
    vec3 n1 = cross3(p, q), n2 = cross3(a, b);
    vec3 d = cross3(n1, n2);
    double l = norm3(d);
    if (l < 1e-15)
        return 0; /* one great circle: no proper crossing */
    d = scale3(d, 1 / l);
    for (int s = 0; s < 2; s++, d = scale3(d, -1))
        if (on_arc(d, p, q, n1) && on_arc(d, a, b, n2)) {
            bool at_end = angle3(d, a) < 1e-12 || angle3(d, b) < 1e-12;
            return at_end ? 0.5 : 1;
        }
    return 0;
}

/* the crossings of the ring by the minor arc p→q */
static double ring_crossings(const double *lat, const double *lon, int n, vec3 p, vec3 q)
{
    double c = 0;
    for (int i = 0; i < n; i++)
        c += arc_crossing(p, q, unit_of(lat[i], lon[i]),
                          unit_of(lat[(i + 1) % n], lon[(i + 1) % n]));
    return c;
}

bool tsi_geo_ring_covers(const double *lat, const double *lon, int n, double plat, double plon)
{
    if (n < 3)
        return false;
    vec3 p = unit_of(plat, plon);
    /* the ring's centre (the mean of its edges, sampled): its antipode lies outside the
     * polygon, which PostGIS takes as the side of the ring away from the outside */
    vec3 g = {0, 0, 0};
    for (int i = 0; i < n; i++) {
        vec3 a = unit_of(lat[i], lon[i]), b = unit_of(lat[(i + 1) % n], lon[(i + 1) % n]);
        if (angle_to_arc(p, a, b) < 1e-12)
            return true; /* on an edge */
        for (int k = 0; k < 16; k++) {
            double t = k / 16.0;
            vec3 m = {a.x + (b.x - a.x) * t, a.y + (b.y - a.y) * t, a.z + (b.z - a.z) * t};
            double lm = norm3(m);
            if (lm > 1e-12)
                g = (vec3){g.x + m.x / lm, g.y + m.y / lm, g.z + m.z / lm};
        }
    }
    double lg = norm3(g);
    if (lg < 1e-9) /* a ring around a great circle: no side is smaller */
        return false;
    vec3 q = scale3(g, -1 / lg);
    double c;
    if (dot3(p, q) > -0.99) {
        c = ring_crossings(lat, lon, n, p, q);
    } else { /* p near the centre: the arc to q is nearly a half circle; go round by m */
        vec3 axis = fabs(p.z) < 0.9 ? (vec3){0, 0, 1} : (vec3){1, 0, 0};
        vec3 m = cross3(p, axis);
        m = scale3(m, 1 / norm3(m));
        c = ring_crossings(lat, lon, n, p, m) + ring_crossings(lat, lon, n, m, q);
    }
    return ((long)llround(c)) % 2 == 1;
}

double tsi_geo_point_segment_m(double x, double y, double ax, double ay, double bx, double by)
{
    double dx = bx - ax, dy = by - ay;
    double len2 = dx * dx + dy * dy;
    double t = len2 > 0 ? ((x - ax) * dx + (y - ay) * dy) / len2 : 0;
    if (t < 0)
        t = 0;
    else if (t > 1)
        t = 1;
    double px = ax + t * dx - x, py = ay + t * dy - y;
    return sqrt(px * px + py * py);
}
