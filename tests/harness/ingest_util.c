/* tests/harness/ingest_util.c — see ingest_util.h */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ingest_util.h"

void iu_reset(const char *spool, const char *delete_sql)
{
    PGconn *c = th_connect("tsi_owner");
    th_sqlf(c, "%s", delete_sql);
    PQfinish(c);
    char path[PATH_MAX + 32];
    tsi_ingest_spool_path(spool, path, sizeof path);
    unlink(path);
}

void iu_teardown(const char *spool, const char *dbname)
{
    char *argv[] = {"rm", "-rf", (char *)spool, NULL};
    tsi_proc_run(argv, NULL, NULL, 0, NULL);
    th_db_drop(dbname);
}

tsi_rt_row iu_row(int64_t base_ms, int64_t isect, int minute, double ci, int volume)
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
