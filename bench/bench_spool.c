/* bench/bench_spool.c — the collector's database writer (issue 12): rows spooled while
 * the writer waits (append + fsync), then replayed into PostgreSQL (COPY into a
 * temporary table + INSERT ... ON CONFLICT); beside it, in the same run and database, a
 * bare INSERT ... SELECT of as many rows into an unlogged copy of the table: what the
 * database alone costs. Needs the database of TSI_HOME / TSI_PG_PORT (bench/collect.sh).
 *   bench_spool --rows 200000 --intersections 1000 --spool DIR */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db/conn.h"
#include "db/ingest.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int exec(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(stderr, "bench_spool: %s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
    long rows = 200000, nis = 1000;
    const char *spool = "/tmp/tsi-bench-spool";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--rows"))
            rows = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--intersections"))
            nis = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--spool"))
            spool = argv[i + 1];
    }
    tsi_error e = {0};
    PGconn *own = tsi_db_connect(TSI_ROLE_OWNER, NULL, &e);
    if (!own) {
        fprintf(stderr, "bench_spool: %s %s\n", e.message, e.detail);
        return 1;
    }
    char sql[512];
    snprintf(sql, sizeof sql,
             "INSERT INTO intersections (id, name, latitude, longitude, geometry) SELECT g, "
             "'b' || g, 38.8, -77.3, ST_SetSRID(ST_MakePoint(-77.3, 38.8), 4326) FROM "
             "generate_series(1, %ld) g ON CONFLICT DO NOTHING",
             nis);
    if (exec(own, sql) < 0 || exec(own, "DELETE FROM safety_indices_realtime") < 0)
        return 1;
    int64_t base = ((int64_t)time(NULL) / 60) * 60000 - 36 * 3600000LL; /* inside partitions */
    tsi_ingest_config cfg = {.spool_dir = spool, .start_paused = true};
    tsi_ingest *in = NULL;
    if (tsi_ingest_open(&in, &cfg, &e) < 0) {
        fprintf(stderr, "bench_spool: %s %s\n", e.message, e.detail);
        return 1;
    }
    tsi_rt_row *batch = calloc((size_t)nis, sizeof *batch);
    double t0 = now_s();
    long done = 0;
    for (long m = 0; done < rows; m++) {
        long n = rows - done < nis ? rows - done : nis;
        for (long i = 0; i < n; i++) {
            tsi_rt_row *r = &batch[i];
            memset(r, 0, sizeof *r);
            r->intersection_id = i + 1;
            r->minute_ms = base + m * 60000;
            r->combined_index = (double)((i * 7 + m) % 100);
            r->combined_index_eb = r->vru_index = r->vru_index_eb = r->vehicle_index =
                r->vehicle_index_eb = r->combined_index;
            r->traffic_volume = (int)(i % 50);
            r->avg_speed = 10;
            r->speed_stddev = 2;
        }
        if (tsi_ingest_add_rows(in, batch, (size_t)n, &e) < 0) {
            fprintf(stderr, "bench_spool: %s %s\n", e.message, e.detail);
            return 1;
        }
        done += n;
    }
    double t_spool = now_s() - t0;
    t0 = now_s();
    tsi_ingest_resume(in);
    long long left = tsi_ingest_sync(in, 600000);
    double t_replay = now_s() - t0;
    tsi_ingest_stats st;
    tsi_ingest_get_stats(in, &st);
    tsi_ingest_close(in);
    /* reference: the same number of rows by a bare INSERT ... SELECT into an unlogged copy */
    exec(own, "DROP TABLE IF EXISTS bench_ref");
    exec(own,
         "CREATE UNLOGGED TABLE bench_ref AS SELECT * FROM safety_indices_realtime WITH NO DATA");
    snprintf(sql, sizeof sql,
             "INSERT INTO bench_ref (intersection_id, \"timestamp\", combined_index, "
             "traffic_volume, vru_count, vehicle_event_count, vru_event_count, hour_of_day, "
             "day_of_week) SELECT g %% %ld + 1, now(), 1, 1, 0, 0, 0, 0, 0 FROM "
             "generate_series(1, %ld) g",
             nis, rows);
    t0 = now_s();
    exec(own, sql);
    double t_ref = now_s() - t0;
    exec(own, "DROP TABLE bench_ref");
    printf("rows=%ld\n", rows);
    printf("spool_append_rows_per_s=%.0f\n", rows / t_spool);
    printf("replay_rows_per_s=%.0f\n", rows / t_replay);
    printf("replay_left=%lld rows_written=%lld batches=%lld\n", left, st.rows_written, st.batches);
    printf("reference_insert_select_rows_per_s=%.0f\n", rows / t_ref);
    PQfinish(own);
    free(batch);
    return left == 0 && st.rows_written == rows ? 0 : 1;
}
