/* tests/integration/ingest_util.h — what the ingest tests (test_ingest*.c) share: a fresh
 * start between tests (tables emptied, spool file removed), the teardown of a test file
 * (spool directory and test database removed) and a realtime row to start from.
 * Header-only (static functions). */
#ifndef TSI_TEST_INGEST_UTIL_H
#define TSI_TEST_INGEST_UTIL_H

#include <limits.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "base/proc.h"
#include "db/ingest.h"
#include "harness.h"

/* runs delete_sql as tsi_owner (fails the test on error) and removes the spool file */
__attribute__((unused)) static void iu_reset(const char *spool, const char *delete_sql)
{
    PGconn *c = th_connect("tsi_owner");
    th_sqlf(c, "%s", delete_sql);
    PQfinish(c);
    char path[PATH_MAX + 32];
    tsi_ingest_spool_path(spool, path, sizeof path);
    unlink(path);
}

/* removes the spool directory and drops the test database */
__attribute__((unused)) static void iu_teardown(const char *spool, const char *dbname)
{
    char *argv[] = {"rm", "-rf", (char *)spool, NULL};
    tsi_proc_run(argv, NULL, NULL, 0, NULL);
    th_db_drop(dbname);
}

/* a realtime row of intersection isect at minute `minute` after base_ms: combined index
 * ci, volume; every other index and the speeds NULL (NaN), counts and hour 0; each test
 * sets what it looks at */
__attribute__((unused)) static tsi_rt_row iu_row(int64_t base_ms, int64_t isect, int minute,
                                                 double ci, int volume)
{
    tsi_rt_row r;
    memset(&r, 0, sizeof r);
    r.intersection_id = isect;
    r.minute_ms = base_ms + minute * 60000LL;
    r.combined_index = ci;
    r.combined_index_eb = NAN;
    r.vru_index = r.vru_index_eb = r.vehicle_index = r.vehicle_index_eb = NAN;
    r.traffic_volume = volume;
    r.avg_speed = r.speed_stddev = NAN;
    return r;
}

#endif
