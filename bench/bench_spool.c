/* bench/bench_spool.c — the collector's database writer (issue 12): rows spooled while
 * the writer waits (append + fsync), then replayed into PostgreSQL (binary COPY straight
 * into the table while the keys are new, else COPY into a temporary table + INSERT ... ON
 * CONFLICT; each run prints how many transactions went each way), once per number of
 * writer connections asked
 * (the same rows each time, into an emptied table); beside it, in the same run and
 * database, a bare INSERT ... SELECT of as many rows into an unlogged copy of the table:
 * what the database alone costs. Needs the database of TSI_HOME / TSI_PG_PORT
 * (bench/collect.sh).
 *   bench_spool --rows 200000 --intersections 1000 --spool DIR --connections 1,2,3
 *               [--repeat N]   (N rounds over the list; the median per count is reported) */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

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

static double rusage_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* CPU seconds (user + system) the writer's backends have used since they started: they
 * are new at each replay (the cluster is local: bench/collect.sh's) */
static double backends_cpu_s(PGconn *own)
{
    PGresult *r = PQexec(own, "SELECT pid FROM pg_stat_activity WHERE usename = 'tsi_writer' "
                              "AND datname = current_database()");
    double total = 0;
    long hz = sysconf(_SC_CLK_TCK);
    for (int i = 0; PQresultStatus(r) == PGRES_TUPLES_OK && i < PQntuples(r); i++) {
        char path[64], line[1024];
        snprintf(path, sizeof path, "/proc/%s/stat", PQgetvalue(r, i, 0));
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t got = fread(line, 1, sizeof line - 1, f);
        fclose(f);
        line[got] = '\0';
        char *p = strrchr(line, ')');
        unsigned long long ut = 0, st = 0;
        /* after the command: state, then fields 4..13, then utime (14) and stime (15) */
        if (p &&
            sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) == 2)
            total += (double)(ut + st) / (double)hz;
    }
    PQclear(r);
    return total;
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* one replay of rows rows at k connections into the emptied table (over_existing: into the
 * table as it is, which holds the same keys: every row an update): rows/s, or -1 */
static double replay_once(PGconn *own, const char *spool, int k, long rows, long nis, int64_t base,
                          bool over_existing, double *append_rate, double *cpu_us)
{
    /* an empty table, as in a replay of rows the database never saw */
    if (!over_existing &&
        exec(own, "TRUNCATE safety_indices_realtime, safety_indices_latest") < 0 &&
        (exec(own, "DELETE FROM safety_indices_realtime") < 0 ||
         exec(own, "DELETE FROM safety_indices_latest") < 0))
        return -1;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/k%d", spool, k);
    tsi_ingest_config cfg = {.spool_dir = dir, .start_paused = true, .connections = k};
    tsi_ingest *in = NULL;
    tsi_error e = {0};
    if (tsi_ingest_open(&in, &cfg, &e) < 0) {
        fprintf(stderr, "bench_spool: %s %s\n", e.message, e.detail);
        return -1;
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
            free(batch);
            tsi_ingest_close(in);
            return -1;
        }
        done += n;
    }
    free(batch);
    *append_rate = rows / (now_s() - t0);
    t0 = now_s();
    double c0 = rusage_s();
    tsi_ingest_resume(in);
    long long left = tsi_ingest_sync(in, 600000);
    double t_replay = now_s() - t0;
    double client_s = rusage_s() - c0, server_s = backends_cpu_s(own);
    tsi_ingest_stats st;
    tsi_ingest_get_stats(in, &st);
    tsi_ingest_close(in);
    cpu_us[0] = 1e6 * client_s / rows;
    cpu_us[1] = 1e6 * server_s / rows;
    PGresult *r = PQexec(own, "SELECT count(*) FROM safety_indices_realtime");
    long long in_table = PQresultStatus(r) == PGRES_TUPLES_OK ? atoll(PQgetvalue(r, 0, 0)) : -1;
    PQclear(r);
    printf("replay_run %sconnections=%d rows_per_s=%.0f cpu_us_per_row client=%.1f "
           "backends=%.1f left=%lld rows_written=%lld rows_in_table=%lld batches=%lld "
           "db_errors=%lld tx_direct=%lld tx_staged=%lld direct_refused=%lld\n",
           over_existing ? "over_existing_rows " : "", k, rows / t_replay, cpu_us[0], cpu_us[1],
           left, st.rows_written, in_table, st.batches, st.db_errors, st.direct_tx, st.staged_tx,
           st.direct_refused);
    fflush(stdout);
    if (left != 0 || st.rows_written != rows || in_table != rows)
        return -1;
    return rows / t_replay;
}

int main(int argc, char **argv)
{
    long rows = 200000, nis = 1000;
    int repeat = 1;
    const char *spool = "/tmp/tsi-bench-spool", *list = "1,2,3";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--rows"))
            rows = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--intersections"))
            nis = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--spool"))
            spool = argv[i + 1];
        else if (!strcmp(argv[i], "--connections"))
            list = argv[i + 1];
        else if (!strcmp(argv[i], "--repeat"))
            repeat = atoi(argv[i + 1]);
    }
    int ks[16], nk = 0;
    for (const char *p = list; *p && nk < 16;) {
        char *end;
        long k = strtol(p, &end, 10);
        if (end == p || k < 1 || k > 16) {
            fprintf(stderr, "bench_spool: --connections wants a list of 1..16, e.g. 1,2,3\n");
            return 2;
        }
        ks[nk++] = (int)k;
        p = *end == ',' ? end + 1 : end;
    }
    if (rows < 1 || nis < 1 || repeat < 1 || repeat > 20) {
        fprintf(stderr, "bench_spool: --rows, --intersections >= 1, --repeat 1..20\n");
        return 2;
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
    if (exec(own, sql) < 0)
        return 1;
    int64_t base = ((int64_t)time(NULL) / 60) * 60000 - 36 * 3600000LL; /* inside partitions */
    double rate[16][20], cpu[16][20], append_sum = 0;
    int failed = 0;
    for (int rep = 0; rep < repeat; rep++)
        for (int j = 0; j < nk; j++) {
            double app = 0, cu[2] = {0, 0};
            rate[j][rep] = replay_once(own, spool, ks[j], rows, nis, base, false, &app, cu);
            cpu[j][rep] = cu[0] + cu[1];
            append_sum += app;
            if (rate[j][rep] < 0)
                failed = 1;
        }
    /* the same rows once more over the table the last run left (the same keys: every row
     * an update, the staged upsert's case) at the default count when it was measured */
    int kx = ks[0];
    for (int j = 0; j < nk; j++)
        if (ks[j] == 2)
            kx = 2;
    double over = -1, app_x = 0, cu_x[2] = {0, 0};
    if (!failed)
        over = replay_once(own, spool, kx, rows, nis, base, true, &app_x, cu_x);
    if (over < 0)
        failed = 1;
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
    double t0 = now_s();
    exec(own, sql);
    double t_ref = now_s() - t0;
    exec(own, "DROP TABLE bench_ref");
    printf("rows=%ld\n", rows);
    printf("spool_append_rows_per_s=%.0f\n", append_sum / (repeat * nk));
    double def = -1;
    for (int j = 0; j < nk; j++) {
        qsort(rate[j], (size_t)repeat, sizeof rate[j][0], cmp_dbl);
        qsort(cpu[j], (size_t)repeat, sizeof cpu[j][0], cmp_dbl);
        double med = rate[j][repeat / 2];
        printf("replay_rows_per_s_%d=%.0f\n", ks[j], med);
        /* client + backends: what a row costs whatever the load; 2 idle cores bound the
         * rate near 2e6 / this */
        printf("replay_cpu_us_per_row_%d=%.1f\n", ks[j], cpu[j][repeat / 2]);
        if (ks[j] == 2 || def < 0)
            def = med;
    }
    printf("replay_rows_per_s=%.0f\n", def); /* at the default (2 connections) when measured */
    printf("replay_over_existing_rows_per_s_%d=%.0f\n", kx, over);
    printf("reference_insert_select_rows_per_s=%.0f\n", rows / t_ref);
    PQfinish(own);
    return failed;
}
