/* core/geo.h — distances and local metric frames on the WGS84 sphere approximation.
 *
 * Pure functions, no allocation. Distances in metres, angles in degrees. The local
 * tangent plane (east/north metres around an origin) is accurate to well under 0.1 %
 * within a few kilometres, which is what intersection-scale geometry needs. */
#ifndef TSI_CORE_GEO_H
#define TSI_CORE_GEO_H

#include <stdbool.h>

#define TSI_EARTH_RADIUS_M 6371008.8

typedef struct tsi_ltp {
    double lat0, lon0; /* origin, degrees */
    double m_per_deg_lat, m_per_deg_lon;
} tsi_ltp;

/* Great-circle distance (haversine), metres. */
double tsi_geo_haversine_m(double lat1, double lon1, double lat2, double lon2);

/* Initial bearing from point 1 to point 2, degrees clockwise from north in [0, 360). */
double tsi_geo_bearing_deg(double lat1, double lon1, double lat2, double lon2);

/* The point reached from (lat, lon) after dist_m along bearing_deg. */
void tsi_geo_destination(double lat, double lon, double bearing_deg, double dist_m, double *out_lat,
                         double *out_lon);

/* Local tangent plane around an origin: degrees <-> east/north metres. */
void tsi_ltp_init(tsi_ltp *p, double lat0, double lon0);
void tsi_ltp_to_xy(const tsi_ltp *p, double lat, double lon, double *x_east, double *y_north);
void tsi_ltp_to_ll(const tsi_ltp *p, double x_east, double y_north, double *lat, double *lon);

/* Velocity components (east, north) in m/s from speed (m/s) and heading (degrees,
 * 0 = north, clockwise). */
void tsi_geo_velocity(double speed, double heading_deg, double *vx_east, double *vy_north);

/* Distance in metres from point (x, y) to the segment (ax, ay)-(bx, by) in a plane. */
double tsi_geo_point_segment_m(double x, double y, double ax, double ay, double bx, double by);

/* Whether a ring of n >= 3 vertices (degrees; closed implicitly: the last vertex joins the
 * first) is a simple polygon on the sphere, its edges geodesics (great-circle arcs, as
 * PostGIS's geography reads them): no edge of coincident or antipodal ends, no edge
 * doubling back over the one before it, no two other edges crossing or touching. A ring
 * around a pole or across the antimeridian is simple when its arcs are (a planar check on
 * lon/lat refuses both). Returns 0 when simple, else 1 with the 0-based edges at fault in
 * *ea <= *eb (edge k runs from vertex k to vertex k+1 mod n). Pure; O(n²). */
int tsi_geo_ring_self_intersects(const double *lat, const double *lon, int n, int *ea, int *eb);

/* Great-circle distance in metres from a point to a polyline of n >= 1 vertices whose
 * edges are geodesics (the nearest point of any edge, its ends included). */
double tsi_geo_point_polyline_m(double lat, double lon, const double *plat, const double *plon,
                                int n);

/* Whether a simple ring (as above; n >= 3) covers a point, its edges geodesics. Of the two
 * regions a ring bounds on the sphere the polygon is the one PostGIS's geography takes:
 * the side away from a point outside the ring's bounding box (the smaller, compact side;
 * a cap around a pole, not the rest of the Earth). A point on an edge is covered. */
bool tsi_geo_ring_covers(const double *lat, const double *lon, int n, double plat, double plon);

#endif
