/* api/queries.c — every SQL statement of the API, prepared once per connection.
 *
 * Parameters are always bound ($n); nothing from a request is ever part of SQL text.
 * Conventions of the parameters: $1 bigint[] of intersection ids (NULL = all),
 * $2/$3 the half-open time range [t0, t1) as timestamptz, $4 a date_trunc unit chosen
 * by the handler from a fixed list. Sessions run in TSI_TIMEZONE: date_trunc of a
 * timestamptz and timestamptz::date are local; hours are always UTC hours (the hourly
 * table's), and the daily table's dates are UTC days (see Q_SERIES_DAY_LOCAL).
 *
 * Smart routing (FR-3) in SQL: an hour comes from safety_indices_hourly when rolled up,
 * else from the 1-minute rows after the intersection's last rolled-up hour; a day comes
 * from safety_indices_daily when rolled up, else from those hours after its last
 * rolled-up day. The arithmetic is domain.md §5's (averages weighted by minutes, exact
 * pooled variance). Ownership: the statement names are the API's; see queries.h. */
#include <stdio.h>

#include "api/queries.h"
#include "core/index.h"

#define IDS "coalesce($1::bigint[], (SELECT array_agg(id) FROM intersections))"

#define LATEST_COLS                                                                                \
    " date_part('epoch', l.\"timestamp\") AS ts, l.combined_index, l.combined_index_eb,"           \
    " l.vru_index, l.vru_index_eb, l.vehicle_index, l.vehicle_index_eb, l.traffic_volume,"         \
    " l.vru_count"

static const char Q_INDEX_ALL[] =
    "SELECT i.id, i.name, i.latitude, i.longitude," LATEST_COLS
    " FROM intersections i JOIN safety_indices_latest l ON l.intersection_id = i.id"
    " ORDER BY i.id";

static const char Q_INDEX_ONE[] =
    "SELECT i.id, i.name, i.latitude, i.longitude," LATEST_COLS
    " FROM intersections i JOIN safety_indices_latest l ON l.intersection_id = i.id"
    " WHERE i.id = $1";

static const char Q_NAMES[] = "SELECT id, name, latitude, longitude FROM intersections"
                              " WHERE id = ANY(" IDS ") ORDER BY id";

/* minute series: no ORDER BY. For one intersection the per-day partitions are appended in
 * time order and each is read through its primary key, so the rows arrive sorted; the
 * server checks that and sorts only when they do not (a sort node here cost ~0.5 ms of
 * PostgreSQL's ~4 ms for 48 h of minutes). The series statements are run with binary
 * results (h_history.c): the timestamp goes out as it is stored (no date_part per row) and
 * the doubles without float8out. */
static const char Q_SERIES_MIN[] =
    "SELECT intersection_id AS iid, \"timestamp\" AS ts,"
    " coalesce(combined_index_eb, combined_index) AS si, coalesce(vru_index_eb, vru_index) AS vru,"
    " coalesce(vehicle_index_eb, vehicle_index) AS veh, traffic_volume::bigint AS vol,"
    " constants_id AS cids, algorithm_version::int4 AS avers"
    " FROM safety_indices_realtime"
    " WHERE intersection_id = ANY(" IDS ") AND \"timestamp\" >= $2 AND \"timestamp\" < $3";

/* one intersection's minutes (the streamed minute history, h_history.c): the id as a scalar
 * and no id column, one value less per row for PostgreSQL's binary output to send (its
 * send functions cost ~0.1 us a value: a third of the backend's time for 48 h of minutes) */
static const char Q_SERIES_MIN_ONE[] =
    "SELECT \"timestamp\" AS ts, coalesce(combined_index_eb, combined_index) AS si,"
    " coalesce(vru_index_eb, vru_index) AS vru, coalesce(vehicle_index_eb, vehicle_index) AS veh,"
    " traffic_volume::bigint AS vol, constants_id AS cids, algorithm_version::int4 AS avers"
    " FROM safety_indices_realtime"
    " WHERE intersection_id = $1::bigint AND \"timestamp\" >= $2 AND \"timestamp\" < $3";

/* hour-level series: hourly rows + 1-minute rows after the last rolled-up hour; f is an
 * hour's first instant with data (its first minute where minutes were read, else the
 * hour's start: the rollup keeps no first minute). vru/veh are the means of the EB (else
 * raw) sub-indices over the nv/nh minutes that have them (migration 060; rollup rows from
 * before it have none: nv = nh = 0); cids/avers the constants sets and algorithm
 * versions of the bin's minutes (model provenance) */
#define HOURS_CTE                                                                                  \
    "ids AS (SELECT unnest(" IDS ") AS i),"                                                        \
    " h AS (SELECT intersection_id AS iid, hour_timestamp AS ts, avg_si AS si,"                    \
    "   avg_vru_si AS vru, avg_vehicle_si AS veh, total_volume::bigint AS vol,"                    \
    "   round(data_quality_score * 60)::float8 AS n, hour_timestamp AS f, true AS rolled,"         \
    "   n_vru_si::float8 AS nv, n_vehicle_si::float8 AS nh, constants_ids AS cids,"                \
    "   algorithm_versions AS avers"                                                               \
    "   FROM safety_indices_hourly WHERE intersection_id = ANY(" IDS ")"                           \
    "   AND hour_timestamp >= $2 AND hour_timestamp < $3),"                                        \
    " r AS (SELECT ids.i AS iid, date_trunc('hour', x.\"timestamp\", 'UTC') AS ts,"                \
    "   avg(coalesce(x.combined_index_eb, x.combined_index)) AS si,"                               \
    "   avg(coalesce(x.vru_index_eb, x.vru_index)) AS vru,"                                        \
    "   avg(coalesce(x.vehicle_index_eb, x.vehicle_index)) AS veh,"                                \
    "   sum(x.traffic_volume)::bigint AS vol, count(*)::float8 AS n, min(x.\"timestamp\") AS f,"   \
    "   false AS rolled, count(coalesce(x.vru_index_eb, x.vru_index))::float8 AS nv,"              \
    "   count(coalesce(x.vehicle_index_eb, x.vehicle_index))::float8 AS nh,"                       \
    "   coalesce(array_agg(DISTINCT x.constants_id) FILTER (WHERE x.constants_id IS NOT NULL),"    \
    "   '{}') AS cids, coalesce(array_agg(DISTINCT x.algorithm_version) FILTER (WHERE"             \
    "   x.algorithm_version IS NOT NULL), '{}') AS avers"                                          \
    "   FROM ids CROSS JOIN LATERAL (SELECT max(hour_timestamp) + interval '1 hour' AS c"          \
    "     FROM safety_indices_hourly WHERE intersection_id = ids.i"                                \
    "     AND hour_timestamp >= $2 AND hour_timestamp < $3) cut"                                   \
    "   JOIN safety_indices_realtime x ON x.intersection_id = ids.i"                               \
    "     AND x.\"timestamp\" >= greatest($2::timestamptz, coalesce(cut.c, $2::timestamptz))"      \
    "     AND x.\"timestamp\" < $3"                                                                \
    "   GROUP BY 1, 2),"                                                                           \
    " hf AS (SELECT * FROM h UNION ALL SELECT * FROM r)"

static const char Q_SERIES_HOUR[] =
    "WITH " HOURS_CTE " SELECT iid, date_part('epoch', ts)::bigint AS ts, si, vru, veh, vol, n,"
    " date_part('epoch', f)::bigint AS f, array_to_string(cids, ',') AS cids,"
    " array_to_string(avers, ',') AS avers FROM hf ORDER BY 1, 2";

/* the minutes of a daily row: total / average volume (the rollup keeps no count), a
 * whole day when it saw no traffic */
#define DAY_MINUTES                                                                                \
    "   (CASE WHEN avg_volume > 0 THEN round(total_volume / avg_volume)"                           \
    "    ELSE 1440 END)::float8 AS n, date::timestamptz AS f, true AS rolled,"                     \
    "   n_vru_si::float8 AS nv, n_vehicle_si::float8 AS nh, constants_ids AS cids,"                \
    "   algorithm_versions AS avers"

/* hour-level rows of one day into a day row, means weighted by minutes; each sub-index
 * by the minutes that have it (nv, nh: the rollups keep them since migration 060; NULL in
 * a row rolled before: then the bin has none, never a mean over part of it that would
 * pass for the bin's) */
#define HOURS_TO_DAY                                                                               \
    "   sum(hf.n * hf.si) / nullif(sum(hf.n), 0) AS si,"                                           \
    "   CASE WHEN bool_and(hf.nv IS NOT NULL) THEN sum(hf.nv * hf.vru)"                            \
    "     FILTER (WHERE hf.nv > 0) / nullif(sum(hf.nv), 0) END AS vru,"                            \
    "   CASE WHEN bool_and(hf.nh IS NOT NULL) THEN sum(hf.nh * hf.veh)"                            \
    "     FILTER (WHERE hf.nh > 0) / nullif(sum(hf.nh), 0) END AS veh,"                            \
    "   sum(hf.vol)::bigint AS vol, sum(hf.n) AS n, min(hf.f) AS f, bool_or(hf.rolled) AS rolled," \
    "   CASE WHEN bool_and(hf.nv IS NOT NULL) THEN sum(hf.nv) END AS nv,"                          \
    "   CASE WHEN bool_and(hf.nh IS NOT NULL) THEN sum(hf.nh) END AS nh,"                          \
    "   tsi_union(hf.cids) AS cids, tsi_union(hf.avers) AS avers"

/* day rows into $4 bins (day, week from Monday, month): the bin's start, its means
 * weighted by minutes (the mean of its minutes, as pandas' resample computed it), the
 * volume, the number of days and the first day with data (hour_of_day/day_of_week of
 * the bin are that day's), the provenance of its minutes */
#define DAYS_TO_BINS                                                                               \
    "iid, date_part('epoch', date_trunc($4, ts))::bigint AS ts,"                                   \
    " sum(n * si) / nullif(sum(n) FILTER (WHERE si IS NOT NULL), 0) AS si,"                        \
    " CASE WHEN bool_and(nv IS NOT NULL) THEN sum(nv * vru) FILTER (WHERE nv > 0)"                 \
    "   / nullif(sum(nv), 0) END AS vru,"                                                          \
    " CASE WHEN bool_and(nh IS NOT NULL) THEN sum(nh * veh) FILTER (WHERE nh > 0)"                 \
    "   / nullif(sum(nh), 0) END AS veh,"                                                          \
    " sum(vol)::bigint AS vol, count(*)::float8 AS n, date_part('epoch', min(f))::bigint AS f,"    \
    " array_to_string(tsi_union(cids), ',') AS cids,"                                              \
    " array_to_string(tsi_union(avers), ',') AS avers"

/* day-level: daily rows + days after the last rolled-up day from the hours; $4 groups
 * them into days, weeks (Monday) or months */
static const char Q_SERIES_DAY[] =
    "WITH " HOURS_CTE ","
    " d AS (SELECT intersection_id AS iid, date::timestamptz AS ts, avg_si AS si,"
    "   avg_vru_si AS vru, avg_vehicle_si AS veh, total_volume::bigint AS vol," DAY_MINUTES
    "   FROM safety_indices_daily WHERE intersection_id = ANY(" IDS ")"
    "   AND date >= ($2::timestamptz)::date AND date < ($3::timestamptz)::date),"
    " dcut AS (SELECT iid, max(ts) + interval '1 day' AS c FROM d GROUP BY iid),"
    " dh AS (SELECT hf.iid, date_trunc('day', hf.ts) AS ts," HOURS_TO_DAY
    "   FROM hf LEFT JOIN dcut ON dcut.iid = hf.iid"
    "   WHERE hf.ts >= coalesce(dcut.c, '-infinity'::timestamptz) GROUP BY 1, 2),"
    " u AS (SELECT * FROM d UNION ALL SELECT * FROM dh)"
    " SELECT " DAYS_TO_BINS " FROM u GROUP BY 1, 2 ORDER BY 1, 2";

/* day-level in a zone other than UTC (TSI_TIMEZONE; the session's zone): the daily table
 * holds UTC days, so local days (23, 24 or 25 hours) are summed from the hour-level series
 * (hourly rows, and minutes after the last rolled-up hour); daily rows serve only the
 * dates before the local date of an intersection's first hour-level row (beyond the
 * hourly retention), each UTC day labelled by its date's local midnight. */
static const char Q_SERIES_DAY_LOCAL[] =
    "WITH " HOURS_CTE ","
    " hmin AS (SELECT iid, min(ts) AS first FROM hf GROUP BY iid),"
    " d AS (SELECT dd.intersection_id AS iid, dd.date::timestamptz AS ts, dd.avg_si AS si,"
    "   dd.avg_vru_si AS vru, dd.avg_vehicle_si AS veh, dd.total_volume::bigint AS vol,"
    "   (CASE WHEN dd.avg_volume > 0 THEN round(dd.total_volume / dd.avg_volume)"
    "    ELSE 1440 END)::float8 AS n, dd.date::timestamptz AS f, true AS rolled,"
    "   dd.n_vru_si::float8 AS nv, dd.n_vehicle_si::float8 AS nh, dd.constants_ids AS cids,"
    "   dd.algorithm_versions AS avers"
    "   FROM safety_indices_daily dd LEFT JOIN hmin ON hmin.iid = dd.intersection_id"
    "   WHERE dd.intersection_id = ANY(" IDS ")"
    "   AND dd.date >= ($2::timestamptz)::date AND dd.date < ($3::timestamptz)::date"
    "   AND dd.date < coalesce((hmin.first)::date, 'infinity'::date)),"
    " dh AS (SELECT hf.iid, date_trunc('day', hf.ts) AS ts," HOURS_TO_DAY
    "   FROM hf GROUP BY 1, 2),"
    " u AS (SELECT * FROM d UNION ALL SELECT * FROM dh)"
    " SELECT " DAYS_TO_BINS " FROM u GROUP BY 1, 2 ORDER BY 1, 2";

/* statistics over minutes, from the coarsest table that answers exactly: hourly rows
 * (n = data_quality_score * 60 minutes, mean, sample sd), 1-minute rows after the last
 * rolled-up hour, and daily rows only for days before any hour-level data (there the
 * minutes are total_volume / avg_volume and high-risk minutes 60 per high-risk hour).
 * The columns f and l are the first and last minute with data: the 1-minute rows' own
 * (min and max through the primary key) wherever they still hold them; before them (past
 * the realtime retention) an hourly row counts from its hour's start for its minutes and
 * a daily row covers its day (the rollups keep no first and last minute). */
/* the sub-index columns of a rollup row in the stats' layout: minutes, mean, min, max of
 * the VRU and vehicle index (EB, else raw), then the provenance arrays */
#define SUB_HOURLY                                                                                 \
    " n_vru_si::float8 AS nv, avg_vru_si AS vm, min_vru_si AS vmn, max_vru_si AS vmx,"             \
    " n_vehicle_si::float8 AS nh, avg_vehicle_si AS hm, min_vehicle_si AS hmn,"                    \
    " max_vehicle_si AS hmx, constants_ids AS cids, algorithm_versions AS avers"

static const char Q_STATS[] =
    "WITH ids AS (SELECT unnest(" IDS ") AS i),"
    " h AS (SELECT intersection_id AS iid, hour_timestamp AS ts,"
    "   round(data_quality_score * 60)::float8 AS n, avg_si AS m,"
    "   coalesce(std_si * std_si, 0) AS v, min_si AS mn, max_si AS mx,"
    "   total_volume::float8 AS vol, high_risk_minutes::float8 AS hr,"
    "   hour_timestamp AS f, hour_timestamp + (greatest(round(data_quality_score * 60), 1) - 1)"
    "   * interval '1 minute' AS l," SUB_HOURLY
    "   FROM safety_indices_hourly WHERE intersection_id = ANY(" IDS ")"
    "   AND hour_timestamp >= $2 AND hour_timestamp < $3),"
    " r AS (SELECT ids.i AS iid, date_trunc('hour', x.ts, 'UTC') AS ts, count(*)::float8 AS n,"
    "   avg(x.si) AS m, coalesce(var_samp(x.si), 0) AS v, min(x.si) AS mn, max(x.si) AS mx,"
    "   sum(x.vol)::float8 AS vol, (count(*) FILTER (WHERE x.si > " TSI_RISK_HIGH_SQL
    "))::float8 AS hr,"
    "   min(x.ts) AS f, max(x.ts) AS l,"
    "   count(x.vru)::float8, avg(x.vru), min(x.vru), max(x.vru),"
    "   count(x.veh)::float8, avg(x.veh), min(x.veh), max(x.veh),"
    "   coalesce(array_agg(DISTINCT x.cid) FILTER (WHERE x.cid IS NOT NULL), '{}'),"
    "   coalesce(array_agg(DISTINCT x.ver) FILTER (WHERE x.ver IS NOT NULL), '{}')"
    "   FROM ids CROSS JOIN LATERAL (SELECT max(hour_timestamp) + interval '1 hour' AS c"
    "     FROM safety_indices_hourly WHERE intersection_id = ids.i"
    "     AND hour_timestamp >= $2 AND hour_timestamp < $3) cut"
    "   CROSS JOIN LATERAL (SELECT \"timestamp\" AS ts,"
    "     coalesce(combined_index_eb, combined_index) AS si, traffic_volume AS vol,"
    "     coalesce(vru_index_eb, vru_index) AS vru, coalesce(vehicle_index_eb, vehicle_index)"
    "     AS veh, constants_id AS cid, algorithm_version AS ver"
    "     FROM safety_indices_realtime WHERE intersection_id = ids.i"
    "     AND \"timestamp\" >= greatest($2::timestamptz, coalesce(cut.c, $2::timestamptz))"
    "     AND \"timestamp\" < $3) x"
    "   GROUP BY 1, 2),"
    " hf AS (SELECT * FROM h UNION ALL SELECT * FROM r),"
    " hmin AS (SELECT iid, min(ts) AS first FROM hf GROUP BY iid),"
    " d AS (SELECT dd.intersection_id AS iid, dd.date::timestamptz AS ts,"
    "   (CASE WHEN dd.avg_volume > 0 THEN round(dd.total_volume / dd.avg_volume)"
    "    ELSE 1440 END)::float8 AS n, dd.avg_si AS m, coalesce(dd.std_si * dd.std_si, 0) AS v,"
    "   dd.min_si AS mn, dd.max_si AS mx, dd.total_volume::float8 AS vol,"
    "   dd.high_risk_hours * 60.0 AS hr, dd.date::timestamptz AS f,"
    "   dd.date::timestamptz + interval '1 day' - interval '1 minute' AS l,"
    "   dd.n_vru_si::float8, dd.avg_vru_si, dd.min_vru_si, dd.max_vru_si,"
    "   dd.n_vehicle_si::float8, dd.avg_vehicle_si, dd.min_vehicle_si, dd.max_vehicle_si,"
    "   dd.constants_ids, dd.algorithm_versions"
    "   FROM safety_indices_daily dd LEFT JOIN hmin ON hmin.iid = dd.intersection_id"
    "   WHERE dd.intersection_id = ANY(" IDS ")"
    "   AND dd.date >= ($2::timestamptz)::date AND dd.date < ($3::timestamptz)::date"
    "   AND (dd.date + 1)::timestamp AT TIME ZONE 'UTC' <= coalesce(hmin.first, 'infinity')),"
    " a AS (SELECT * FROM hf UNION ALL SELECT * FROM d),"
    " agg AS (SELECT iid, sum(n) AS n, sum(n * m) / sum(n) AS avg, min(mn) AS mn, max(mx) AS mx,"
    "   sqrt(greatest(0, (sum((n - 1) * v + n * m * m) - sum(n * m) ^ 2 / sum(n))"
    "     / nullif(sum(n) - 1, 0))) AS sd, sum(vol) AS vol, sum(hr) AS hr,"
    "   min(f) AS f, max(l) AS l,"
    "   CASE WHEN bool_and(nv IS NOT NULL) THEN sum(nv * vm) FILTER (WHERE nv > 0)"
    "     / nullif(sum(nv), 0) END AS vm,"
    "   CASE WHEN bool_and(nv IS NOT NULL) THEN min(vmn) END AS vmn,"
    "   CASE WHEN bool_and(nv IS NOT NULL) THEN max(vmx) END AS vmx,"
    "   CASE WHEN bool_and(nh IS NOT NULL) THEN sum(nh * hm) FILTER (WHERE nh > 0)"
    "     / nullif(sum(nh), 0) END AS hm,"
    "   CASE WHEN bool_and(nh IS NOT NULL) THEN min(hmn) END AS hmn,"
    "   CASE WHEN bool_and(nh IS NOT NULL) THEN max(hmx) END AS hmx,"
    "   tsi_union(cids) AS cids, tsi_union(avers) AS avers"
    "   FROM a WHERE n > 0 GROUP BY iid)"
    " SELECT ids.i AS id, it.name, coalesce(agg.n, 0) AS n, agg.avg, agg.mn, agg.mx, agg.sd,"
    " coalesce(agg.vol, 0) AS vol, coalesce(agg.hr, 0) AS hr, it.latitude, it.longitude,"
    " date_part('epoch', CASE WHEN rt.f IS NULL OR agg.f < date_trunc('hour', rt.f, 'UTC')"
    "   THEN agg.f ELSE rt.f END) AS f,"
    " date_part('epoch', CASE WHEN rt.l IS NULL OR agg.l >= date_trunc('hour', rt.l, 'UTC')"
    "   + interval '1 hour' THEN agg.l ELSE rt.l END) AS l,"
    " agg.vm, agg.vmn, agg.vmx, agg.hm, agg.hmn, agg.hmx,"
    " array_to_string(agg.cids, ',') AS cids, array_to_string(agg.avers, ',') AS avers"
    " FROM ids JOIN intersections it ON it.id = ids.i LEFT JOIN agg ON agg.iid = ids.i"
    " CROSS JOIN LATERAL (SELECT min(\"timestamp\") AS f, max(\"timestamp\") AS l"
    "   FROM safety_indices_realtime WHERE intersection_id = ids.i"
    "   AND \"timestamp\" >= $2 AND \"timestamp\" < $3) rt"
    " ORDER BY ids.i";

#define SPATIAL_COLS "SELECT i.id, i.name, i.latitude, i.longitude," LATEST_COLS ","

static const char Q_NEARBY[] = SPATIAL_COLS
    " ST_Distance(i.geometry::geography, p.g) AS d"
    " FROM (SELECT ST_SetSRID(ST_MakePoint($2::float8, $1::float8), 4326)::geography AS g) p"
    " JOIN intersections i ON ST_DWithin(i.geometry::geography, p.g, $3::float8)"
    " LEFT JOIN safety_indices_latest l ON l.intersection_id = i.id"
    " ORDER BY d, i.id";

#define POINTS                                                                                     \
    "ARRAY(SELECT ST_SetSRID(ST_MakePoint(t.lon, t.lat), 4326)"                                    \
    " FROM unnest($1::float8[], $2::float8[]) WITH ORDINALITY AS t(lat, lon, k) ORDER BY t.k)"

static const char Q_ROUTE[] =
    "WITH line AS (SELECT ST_MakeLine(" POINTS ")::geography AS g) " SPATIAL_COLS
    " ST_Distance(i.geometry::geography, line.g) AS d"
    " FROM line JOIN intersections i ON ST_DWithin(i.geometry::geography, line.g, $3::float8)"
    " LEFT JOIN safety_indices_latest l ON l.intersection_id = i.id"
    " ORDER BY d, i.id";

#define RING                                                                                       \
    "ST_MakePolygon(ST_AddPoint(ST_MakeLine(" POINTS                                               \
    "), ST_SetSRID(ST_MakePoint(($2::float8[])[1], ($1::float8[])[1]), 4326)))"

static const char Q_AREA[] =
    "WITH poly AS (SELECT " RING "::geography AS g) " SPATIAL_COLS
    " ST_Distance(i.geometry::geography, ST_Centroid(poly.g)) AS d"
    " FROM poly JOIN intersections i ON ST_Covers(poly.g, i.geometry::geography)"
    " LEFT JOIN safety_indices_latest l ON l.intersection_id = i.id"
    " ORDER BY i.id";

static const char Q_INTERSECTION[] =
    "SELECT i.id, i.name, i.latitude, i.longitude, i.lane_count, i.revision,"
    " i.metadata::text AS metadata,"
    " to_char(i.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US') AS created_at,"
    " to_char(i.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US') AS updated_at,"
    " ST_AsText(i.geometry) AS geometry," LATEST_COLS
    " FROM intersections i LEFT JOIN safety_indices_latest l ON l.intersection_id = i.id"
    " WHERE i.id = $1";

/* lane polylines (metadata.lane_geometry, vcc/lanejson.h) of the intersections whose
 * point lies in the bbox $1..$4 (min lon, min lat, max lon, max lat) grown by 0.005 deg,
 * the first $5 + 1 of them by id: (id, GeoJSON Feature text), one row per lane of >= 2
 * well-formed nodes, by id then lane order. Nodes are [lat, lon]; GeoJSON is [lon, lat]. */
static const char Q_GEOMETRY[] =
    "WITH x AS (SELECT i.id, i.metadata->'lane_geometry' AS lg FROM intersections i"
    " WHERE i.geometry && ST_MakeEnvelope($1::float8 - 0.005, $2::float8 - 0.005,"
    " $3::float8 + 0.005, $4::float8 + 0.005, 4326)"
    " AND jsonb_typeof(i.metadata->'lane_geometry') = 'array' ORDER BY i.id LIMIT $5::int + 1)"
    " SELECT x.id, jsonb_build_object('type', 'Feature', 'geometry', jsonb_build_object('type',"
    " 'LineString', 'coordinates', c.coords), 'properties', jsonb_strip_nulls(jsonb_build_object("
    "'intersection_id', x.id, 'lane_id', CASE WHEN jsonb_typeof(l.v->'id') = 'number' THEN"
    " l.v->'id' END, 'lane_type', CASE WHEN jsonb_typeof(l.v->'type') = 'string' THEN"
    " l.v->'type' END, 'ingress_approach', CASE WHEN jsonb_typeof(l.v->'ingress') = 'number'"
    " THEN l.v->'ingress' END, 'egress_approach', CASE WHEN jsonb_typeof(l.v->'egress') ="
    " 'number' THEN l.v->'egress' END)))::text AS feature"
    " FROM x CROSS JOIN LATERAL jsonb_array_elements(x.lg) WITH ORDINALITY AS l(v, o)"
    " CROSS JOIN LATERAL (SELECT jsonb_agg(jsonb_build_array(q.n->1, q.n->0) ORDER BY q.k)"
    " AS coords, count(*) AS nn FROM jsonb_array_elements(CASE WHEN jsonb_typeof(l.v->'nodes')"
    " = 'array' THEN l.v->'nodes' ELSE '[]'::jsonb END) WITH ORDINALITY AS q(n, k)"
    " WHERE CASE WHEN jsonb_typeof(q.n) = 'array' AND jsonb_typeof(q.n->0) = 'number'"
    " AND jsonb_typeof(q.n->1) = 'number' THEN abs((q.n->>0)::numeric) <= 90"
    " AND abs((q.n->>1)::numeric) <= 180 ELSE false END) c"
    " WHERE c.nn >= 2 ORDER BY x.id, l.o";

/* intersections with a current index, and those of them older than $1 seconds (stale) */
static const char Q_CURRENT_AGE[] =
    "SELECT count(*) AS current, count(*) FILTER (WHERE \"timestamp\" < now() -"
    " make_interval(secs => $1::float8)) AS stale FROM safety_indices_latest";

static const char Q_INTERSECTIONS_ALL[] =
    "SELECT id, name, latitude, longitude FROM intersections ORDER BY id";

const tsi_api_stmt tsi_api_stmts[] = {
    {"index_all", Q_INDEX_ALL},
    {"index_one", Q_INDEX_ONE},
    {"names", Q_NAMES},
    {"series_min", Q_SERIES_MIN},
    {"series_min_one", Q_SERIES_MIN_ONE},
    {"series_hour", Q_SERIES_HOUR},
    {"series_day", Q_SERIES_DAY},
    {"series_day_local", Q_SERIES_DAY_LOCAL},
    {"stats", Q_STATS},
    {"nearby", Q_NEARBY},
    {"route", Q_ROUTE},
    {"area", Q_AREA},
    {"intersection", Q_INTERSECTION},
    {"intersections_all", Q_INTERSECTIONS_ALL},
    {"current_age", Q_CURRENT_AGE},
    {"geometry", Q_GEOMETRY},
    {NULL, NULL},
};

int tsi_api_prepare(PGconn *c)
{
    for (const tsi_api_stmt *s = tsi_api_stmts; s->name; s++) {
        PGresult *r = PQprepare(c, s->name, s->sql, 0, NULL);
        int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
        if (!ok)
            return -1;
    }
    return 0;
}
