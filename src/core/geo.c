/* core/geo.c — see geo.h */
#include "core/geo.h"

#include <math.h>

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
