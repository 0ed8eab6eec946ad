/* api/fallback.h — answers from the indices Parquet archive through DuckDB (FR-3's
 * graceful degradation, MR-1's --source parquet): the current index, a series and the
 * statistics of one intersection, as the PostgreSQL path gives them.
 *
 * Ownership: each worker thread's DuckDB connection (pool.h) is borrowed; points are
 * allocated from the request's arena; errors are answered on the request (503
 * archive_unavailable) before a negative return. */
#ifndef TSI_API_FALLBACK_H
#define TSI_API_FALLBACK_H

#include <stdint.h>

#include "api/req.h"
#include "base/jsonw.h"

typedef struct tsi_point {
    int64_t iid;
    int64_t ts;          /* epoch seconds: the bin's start */
    int64_t first;       /* the bin's first instant with data (hour_of_day, day_of_week) */
    double si, vru, veh; /* NaN: NULL (the columns' CHECKs keep NaN out) */
    int64_t vol;
    /* model provenance of the bin's minutes: comma-separated constants set ids and
     * algorithm versions ("" = none recorded), NULL = not known (the archive's answer
     * when a minute of the bin comes from a file older than the provenance columns) */
    const char *cids, *avers;
} tsi_point;
/* latest row per intersection (within the last 7 days of files) into r->body as the
 * /safety/index/ array; one == -1 for all. Returns HTTP status (200/404/503). */
int tsi_fb_index(tsi_req *r, int64_t one);
/* the archive's latest minute of each intersection (one >= 0: of that one), within the
 * last week of files, by id; rows in the arena; 0 (n may be 0) or -1 (answered 503) */
typedef struct tsi_fb_cur {
    int64_t iid;
    double ts;                                 /* epoch seconds */
    double comb, eb, vru, vru_eb, veh, veh_eb; /* NaN: NULL */
    int64_t vol, vru_count;
} tsi_fb_cur;
int tsi_fb_latest(tsi_req *r, int64_t one, tsi_fb_cur **out, int *n);
/* the fields of one current-index object of intersection iid from such a row, or with
 * nulls where c is NULL (no current row); the caller opens and closes the object */
void tsi_fb_write_item(tsi_jsonw *w, const tsi_dialect *dl, int64_t iid, const tsi_fb_cur *c,
                       const char *name, double lat, double lon);
/* series of one intersection (iid >= 0) or of all (iid = -1) in [t0, t1) at bucket
 * "1min|1hour|1day|1week|1month", in (intersection, time) order; points in the arena */
int tsi_fb_series(tsi_req *r, int64_t iid, int64_t t0, int64_t t1, const char *agg, tsi_point **out,
                  int *n);
/* stats over minutes: fills n, avg, min, max, std, vol, hr; returns 0 or <0 */
typedef struct tsi_stats {
    int64_t iid;
    double n, avg, min, max, std, vol, hr;
    double first, last; /* epoch seconds of the first and last minute with data (NaN: none) */
    /* the VRU and vehicle index (EB, else raw) over the minutes that have them, and the
     * model provenance as in tsi_point; has_sub false = not known */
    bool has_sub;
    double vru_avg, vru_min, vru_max, veh_avg, veh_min, veh_max;
    const char *cids, *avers;
} tsi_stats;
int tsi_fb_stats(tsi_req *r, int64_t iid, int64_t t0, int64_t t1, tsi_stats *s);
/* the same for one intersection (iid >= 0) or every one with minutes in the window (-1),
 * by id; rows in the arena; 0 rows when nothing is archived there */
int tsi_fb_stats_many(tsi_req *r, int64_t iid, int64_t t0, int64_t t1, tsi_stats **out, int *n);

#endif
