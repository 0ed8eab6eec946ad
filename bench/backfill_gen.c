/* bench/backfill_gen.c — data and references for bench/backfill.sh (issue 15).
 *
 *   backfill_gen gen DIR DAYS INTERSECTIONS   legacy indices files, 1-minute rows, the
 *                                             DAYS days before today (UTC), ids as floats
 *   backfill_gen scan DIR                     DuckDB's own read rate of those files (the
 *                                             reference): prints "rows seconds"
 *   backfill_gen csv DIR OUT                  the same rows, in realtime-table columns, as
 *                                             CSV for the psql COPY reference
 *   backfill_gen raw DIR START_US MIN N V     tsi raw BSM archive: N intersections, V
 *                                             vehicles, one message per vehicle-second
 *   backfill_gen rawscan DIR                  DuckDB's read of the raw JSON column
 * Built by bench/backfill.sh against libduckdb; not part of tsi. */
#include <duckdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static duckdb_connection con;

static void q(const char *sql)
{
    duckdb_result r;
    if (duckdb_query(con, sql, &r) != DuckDBSuccess) {
        fprintf(stderr, "backfill_gen: %s\n%s\n", duckdb_result_error(&r), sql);
        exit(1);
    }
    duckdb_destroy_result(&r);
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    duckdb_database db;
    if (argc < 3 || duckdb_open(NULL, &db) != DuckDBSuccess ||
        duckdb_connect(db, &con) != DuckDBSuccess) {
        fprintf(stderr, "usage: backfill_gen gen DIR DAYS N | scan DIR | csv DIR OUT\n");
        return 2;
    }
    q("SET TimeZone = 'UTC'");
    char sql[8192];
    if (strcmp(argv[1], "gen") == 0 && argc == 5) {
        int days = atoi(argv[3]), n = atoi(argv[4]);
        char d[4096];
        snprintf(d, sizeof d, "%s/indices", argv[2]);
        mkdir(argv[2], 0755);
        mkdir(d, 0755);
        time_t today = time(NULL) / 86400 * 86400;
        for (int k = days; k >= 1; k--) {
            time_t day = today - (time_t)k * 86400;
            struct tm tm;
            gmtime_r(&day, &tm);
            char name[64];
            strftime(name, sizeof name, "indices_%Y-%m-%d.parquet", &tm);
            /* deterministic pseudo-random values from a hash of (intersection, minute) */
            snprintf(sql, sizeof sql,
                     "COPY (SELECT CAST(i AS DOUBLE) AS intersection, ts AS time_15min,"
                     " least(100.0, (h %% 10000) / 100.0) AS Combined_Index,"
                     " CASE WHEN h %% 7 = 0 THEN NULL ELSE least(100.0, (h %% 9000) / 100.0) END"
                     " AS Combined_Index_EB,"
                     " (h // 7 %% 10000) / 100.0 AS VRU_Index, (h // 11 %% 10000) / 100.0 AS "
                     "Vehicle_Index,"
                     " CAST(h // 13 %% 60 AS BIGINT) AS vehicle_count, CAST(h // 17 %% 5 AS "
                     "BIGINT) AS psm_vru_count,"
                     " CAST(h // 19 %% 3 AS BIGINT) AS vru_event_count, CAST(h // 23 %% 4 AS "
                     "BIGINT) AS vehicle_event_count,"
                     " hour(ts) AS hour_of_day, isodow(ts) - 1 AS day_of_week"
                     " FROM (SELECT i, ts, hash(i, m) %% 1000000007 AS h,"
                     "        m FROM range(1, %d + 1) a(i), range(0, 1440) b(m),"
                     "        LATERAL (SELECT make_timestamp(%lld + m * 60000000) AS ts))"
                     " ORDER BY ts, i) TO '%s/%s' (FORMAT parquet, COMPRESSION zstd)",
                     n, (long long)day * 1000000LL, d, name);
            q(sql);
        }
        return 0;
    }
    if (strcmp(argv[1], "raw") == 0 && argc == 7) {
        /* raw DIR START_US MINUTES INTERSECTIONS VEHICLES: tsi raw layout, one BSM per
         * vehicle per second near intersection i (38.8 + i * 0.001, -77.2) */
        long long start = atoll(argv[3]);
        int minutes = atoi(argv[4]), n = atoi(argv[5]), veh = atoi(argv[6]);
        for (int h = 0; h * 60 < minutes; h++) {
            time_t t = (time_t)(start / 1000000 + h * 3600);
            struct tm tm;
            gmtime_r(&t, &tm);
            char d[4096];
            snprintf(d, sizeof d, "mkdir -p %s/raw/bsm/%04d/%02d/%02d/%02d", argv[2],
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour);
            if (system(d) != 0)
                return 1;
            int m0 = h * 60, m1 = minutes < m0 + 60 ? minutes : m0 + 60;
            snprintf(
                sql, sizeof sql,
                "COPY (SELECT ts AS timestamp_ms, CAST(NULL AS VARCHAR) AS reject_reason,"
                " CAST(json_object('timestamp', ts, 'rsuName', 'rsu-' || i, 'bsmJson',"
                " json_object('coreData', json_object('msgCnt', s %% 128, 'id', i * 100 + v,"
                " 'secMark', (s %% 60) * 1000, 'lat', 38.8 + i * 0.001 + v * 0.00005"
                " + s * 0.000002, 'lon', -77.2 + v * 0.00003, 'elev', 100.0,"
                " 'speed', 8.0 + v, 'heading', 0.0, 'accelSet', json_object('lon', -0.5 * (v %% 3),"
                " 'lat', 0.0, 'vert', 0.0, 'yaw', 0.0), 'size', json_object('width', 180,"
                " 'length', 480)))) AS VARCHAR) AS json"
                " FROM (SELECT i, v, s, %lld // 1000 + s * 1000 + v * 37 AS ts"
                "  FROM range(1, %d + 1) a(i), range(0, %d) b(v), range(%d, %d) c(s))"
                " ORDER BY ts) TO '%s/raw/bsm/%04d/%02d/%02d/%02d/bsm_bench_1.parquet'"
                " (FORMAT parquet, COMPRESSION zstd)",
                start, n, veh, m0 * 60, m1 * 60, argv[2], tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour);
            q(sql);
        }
        return 0;
    }
    if (strcmp(argv[1], "rawscan") == 0) {
        double t0 = now();
        duckdb_result r;
        snprintf(
            sql, sizeof sql,
            "SELECT count(*), sum(length(json)) FROM read_parquet('%s/raw/bsm/*/*/*/*/*.parquet')",
            argv[2]);
        if (duckdb_query(con, sql, &r) != DuckDBSuccess) {
            fprintf(stderr, "%s\n", duckdb_result_error(&r));
            return 1;
        }
        duckdb_data_chunk ch = duckdb_fetch_chunk(r);
        long long rows =
            ((int64_t *)duckdb_vector_get_data(duckdb_data_chunk_get_vector(ch, 0)))[0];
        printf("%lld %.3f\n", rows, now() - t0);
        duckdb_destroy_data_chunk(&ch);
        duckdb_destroy_result(&r);
        return 0;
    }
    if (strcmp(argv[1], "scan") == 0) {
        double t0 = now();
        duckdb_result r;
        snprintf(sql, sizeof sql,
                 "SELECT count(*), sum(Combined_Index), count(DISTINCT intersection)"
                 " FROM read_parquet('%s/indices/indices_*.parquet')",
                 argv[2]);
        if (duckdb_query(con, sql, &r) != DuckDBSuccess) {
            fprintf(stderr, "%s\n", duckdb_result_error(&r));
            return 1;
        }
        duckdb_data_chunk ch = duckdb_fetch_chunk(r);
        long long rows =
            ((int64_t *)duckdb_vector_get_data(duckdb_data_chunk_get_vector(ch, 0)))[0];
        printf("%lld %.3f\n", rows, now() - t0);
        duckdb_destroy_data_chunk(&ch);
        duckdb_destroy_result(&r);
        return 0;
    }
    if (strcmp(argv[1], "csv") == 0 && argc == 4) {
        snprintf(sql, sizeof sql,
                 "COPY (SELECT CAST(intersection AS BIGINT), time_15min, Combined_Index,"
                 " Combined_Index_EB, VRU_Index, Vehicle_Index, vehicle_count, psm_vru_count,"
                 " vehicle_event_count, vru_event_count, hour_of_day, day_of_week"
                 " FROM read_parquet('%s/indices/indices_*.parquet'))"
                 " TO '%s' (FORMAT csv, HEADER false)",
                 argv[2], argv[3]);
        q(sql);
        return 0;
    }
    fprintf(stderr, "usage: backfill_gen gen DIR DAYS N | scan DIR | csv DIR OUT\n");
    return 2;
}
