/* archive/indices.c — see indices.h */
#include "archive/indices.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "archive/pqfile.h"
#include "base/log.h"

const char TSI_INDICES_COLUMNS[] =
    "intersection_id, \"timestamp\", combined_index, combined_index_eb, vru_index, vru_index_eb, "
    "vehicle_index, vehicle_index_eb, traffic_volume, vru_count, vehicle_event_count, "
    "vru_event_count, hour_of_day, day_of_week";

static const char DDL_ROWS[] =
    "CREATE TABLE IF NOT EXISTS tsi_idx_buf (intersection_id BIGINT NOT NULL, "
    "\"timestamp\" TIMESTAMPTZ NOT NULL, combined_index DOUBLE NOT NULL, combined_index_eb DOUBLE, "
    "vru_index DOUBLE, vru_index_eb DOUBLE, vehicle_index DOUBLE, vehicle_index_eb DOUBLE, "
    "traffic_volume INTEGER NOT NULL, vru_count INTEGER NOT NULL, "
    "vehicle_event_count INTEGER NOT NULL, vru_event_count INTEGER NOT NULL, "
    "hour_of_day SMALLINT NOT NULL, day_of_week SMALLINT NOT NULL, avg_speed DOUBLE, "
    "speed_stddev DOUBLE, hard_braking_count INTEGER, message_count INTEGER, "
    "constants_id BIGINT, algorithm_version SMALLINT, day_key BIGINT NOT NULL)";

static const char DDL_CONF[] =
    "CREATE TABLE IF NOT EXISTS tsi_conf_buf (intersection_id BIGINT NOT NULL, "
    "\"timestamp\" TIMESTAMPTZ NOT NULL, kind VARCHAR NOT NULL, id_a BIGINT NOT NULL, "
    "id_b BIGINT NOT NULL, min_ttc_s DOUBLE, min_distance_m DOUBLE, at_time TIMESTAMPTZ, "
    "day_key BIGINT NOT NULL)";

static int64_t day_of(int64_t ms)
{
    return ms >= 0 ? ms / 86400000 : (ms - 86399999) / 86400000;
}

static void dbl(duckdb_appender ap, double v)
{
    if (isfinite(v))
        duckdb_append_double(ap, v);
    else
        duckdb_append_null(ap);
}

static int append_rows(duckdb_connection con, const tsi_rt_row *rows, size_t n,
                       const tsi_conflict_row *conf, size_t nconf, tsi_error *err)
{
    duckdb_appender ap = NULL;
    int rc = 0;
    if (n > 0) {
        if (duckdb_appender_create(con, NULL, "tsi_idx_buf", &ap) == DuckDBError)
            goto fail;
        for (size_t i = 0; i < n; i++) {
            const tsi_rt_row *r = &rows[i];
            duckdb_append_int64(ap, r->intersection_id);
            duckdb_append_timestamp(ap, (duckdb_timestamp){r->minute_ms * 1000});
            duckdb_append_double(ap, r->combined_index);
            dbl(ap, r->combined_index_eb);
            dbl(ap, r->vru_index);
            dbl(ap, r->vru_index_eb);
            dbl(ap, r->vehicle_index);
            dbl(ap, r->vehicle_index_eb);
            duckdb_append_int32(ap, r->traffic_volume);
            duckdb_append_int32(ap, r->vru_count);
            duckdb_append_int32(ap, r->vehicle_event_count);
            duckdb_append_int32(ap, r->vru_event_count);
            duckdb_append_int16(ap, r->hour_of_day);
            duckdb_append_int16(ap, r->day_of_week);
            dbl(ap, r->avg_speed);
            dbl(ap, r->speed_stddev);
            duckdb_append_int32(ap, r->hard_braking_count);
            duckdb_append_int32(ap, r->message_count);
            if (r->constants_id > 0)
                duckdb_append_int64(ap, r->constants_id);
            else
                duckdb_append_null(ap);
            if (r->algorithm_version > 0 && r->algorithm_version <= INT16_MAX)
                duckdb_append_int16(ap, (int16_t)r->algorithm_version);
            else
                duckdb_append_null(ap);
            duckdb_append_int64(ap, day_of(r->minute_ms));
            if (duckdb_appender_end_row(ap) == DuckDBError)
                goto fail;
        }
        if (duckdb_appender_close(ap) == DuckDBError)
            goto fail;
        duckdb_appender_destroy(&ap);
    }
    if (nconf > 0) {
        if (duckdb_appender_create(con, NULL, "tsi_conf_buf", &ap) == DuckDBError)
            goto fail;
        for (size_t i = 0; i < nconf; i++) {
            const tsi_conflict_row *c = &conf[i];
            duckdb_append_int64(ap, c->intersection_id);
            duckdb_append_timestamp(ap, (duckdb_timestamp){c->minute_ms * 1000});
            duckdb_append_varchar(ap, c->kind == 2 ? "vru_vehicle" : "vehicle_vehicle");
            duckdb_append_int64(ap, c->id_a);
            duckdb_append_int64(ap, c->id_b);
            dbl(ap, c->min_ttc_s);
            dbl(ap, c->min_distance_m);
            duckdb_append_timestamp(ap, (duckdb_timestamp){c->at_ms * 1000});
            duckdb_append_int64(ap, day_of(c->minute_ms));
            if (duckdb_appender_end_row(ap) == DuckDBError)
                goto fail;
        }
        if (duckdb_appender_close(ap) == DuckDBError)
            goto fail;
        duckdb_appender_destroy(&ap);
    }
    return 0;
fail:
    rc = tsi_error_set(err, TSI_E_PARQUET, "cannot buffer index rows in DuckDB", "%s",
                       ap && duckdb_appender_error(ap) ? duckdb_appender_error(ap) : "?");
    if (ap)
        duckdb_appender_destroy(&ap);
    return rc;
}

/* writes every day of one buffer table; returns rows written or a negative code */
static long long write_table(duckdb_connection con, const char *root, const char *table,
                             const char *prefix, long long *files, tsi_error *err)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT day_key, epoch_ms(min(\"timestamp\")) FROM %s GROUP BY 1 ORDER BY 1", table);
    duckdb_result res;
    int rc = tsi_duck_exec(con, sql, &res, err);
    if (rc < 0)
        return rc;
    long long total = 0;
    int first_rc = 0;
    for (idx_t i = 0; i < duckdb_row_count(&res); i++) {
        int64_t dk = duckdb_value_int64(&res, 0, i);
        int64_t tmin = duckdb_value_int64(&res, 1, i);
        time_t ds = (time_t)(dk * 86400);
        char dir[PATH_MAX], start[32];
        tsi_indices_day_dir(dir, sizeof dir, root, (int64_t)ds);
        tsi_pq_stamp(tmin, start, sizeof start);
        snprintf(sql, sizeof sql,
                 "SELECT * EXCLUDE (day_key) FROM %s WHERE day_key = %lld "
                 "ORDER BY \"timestamp\", intersection_id",
                 table, (long long)dk);
        tsi_error e = {0};
        long long rows = tsi_pq_write(con, sql, dir, prefix, start, NULL, 0, &e);
        if (rows < 0) {
            tsi_warn("archive", "indices write failed file=%s day=%lld err=%s detail=%s", prefix,
                     (long long)dk, tsi_error_name(e.code), e.detail);
            if (!first_rc) {
                first_rc = (int)rows;
                if (err)
                    *err = e;
            }
            continue;
        }
        snprintf(sql, sizeof sql, "DELETE FROM %s WHERE day_key = %lld", table, (long long)dk);
        if ((rc = tsi_duck_exec(con, sql, NULL, err)) < 0) {
            duckdb_destroy_result(&res);
            return rc;
        }
        total += rows;
        (*files)++;
    }
    duckdb_destroy_result(&res);
    return first_rc < 0 ? first_rc : total;
}

int tsi_indices_write(duckdb_connection con, const char *root, const tsi_rt_row *rows, size_t n,
                      const tsi_conflict_row *conf, size_t nconf, tsi_indices_stats *stats,
                      tsi_error *err)
{
    tsi_indices_stats st = {0};
    int rc;
    if ((rc = tsi_duck_exec(con, DDL_ROWS, NULL, err)) < 0 ||
        (rc = tsi_duck_exec(con, DDL_CONF, NULL, err)) < 0)
        return rc;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(rows[i].combined_index))
            return tsi_error_set(err, TSI_E_INVALID, "index row without a combined index",
                                 "intersection=%lld minute_ms=%lld",
                                 (long long)rows[i].intersection_id, (long long)rows[i].minute_ms);
    if ((rc = append_rows(con, rows, n, conf, nconf, err)) < 0)
        return rc;
    long long r1 = write_table(con, root, "tsi_idx_buf", "indices", &st.files, err);
    tsi_error e2 = {0};
    long long r2 = write_table(con, root, "tsi_conf_buf", "conflicts", &st.files, &e2);
    if (r1 >= 0)
        st.rows = r1;
    if (r2 >= 0)
        st.conflicts = r2;
    if (stats)
        *stats = st;
    if (r1 < 0)
        return (int)r1;
    if (r2 < 0) {
        if (err)
            *err = e2;
        return (int)r2;
    }
    return 0;
}

void tsi_indices_day_dir(char *buf, size_t len, const char *root, int64_t day_start)
{
    time_t t = (time_t)day_start;
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(buf, len, "%s/indices/%04d/%02d/%02d", root, tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday);
}

bool tsi_indices_rows_file(const char *name)
{
    size_t n = strlen(name);
    return n > 8 && strcmp(name + n - 8, ".parquet") == 0 && name[0] != '.' &&
           strncmp(name, "conflicts", 9) != 0;
}
