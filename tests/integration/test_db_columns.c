/* db/columns.h against the migrated schema (issue 28): the column lists and staging DDL
 * every writer of safety_indices_realtime and safety_indices_hourly shares name every
 * column of the table besides its key, in table order, with the table's types; the hourly
 * upsert fragments are valid SQL against the table. Real PostgreSQL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/columns.h"
#include "harness.h"

/* "name type, ..." of a table's columns in attnum order, without the key columns */
static char *shape(PGconn *c, const char *table, const char *key)
{
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', '"
             " ORDER BY attnum) FROM pg_attribute WHERE attrelid = '%s'::regclass"
             " AND attnum > 0 AND NOT attisdropped AND attname <> ALL ('{%s}')",
             table, key);
    return th_value(c, sql);
}

/* "name, ..." of a table's columns in attnum order */
static char *names(PGconn *c, const char *table)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT string_agg(attname, ', ' ORDER BY attnum) FROM pg_attribute"
             " WHERE attrelid = '%s'::regclass AND attnum > 0 AND NOT attisdropped",
             table);
    return th_value(c, sql);
}

static void check(PGconn *c, const char *table, const char *key, const char *cols, const char *ddl)
{
    th_sqlf(c, "CREATE TEMP TABLE shape_of (%s)", ddl);
    char *want = shape(c, table, key), *got = shape(c, "pg_temp.shape_of", "");
    if (strcmp(want, got) != 0)
        fail_msg("%s: the table has\n  %s\nthe staging DDL of db/columns.h\n  %s", table, want,
                 got);
    char *listed = names(c, "pg_temp.shape_of");
    if (strcmp(listed, cols) != 0)
        fail_msg("%s: the column list of db/columns.h\n  %s\nits DDL\n  %s", table, cols, listed);
    th_sqlf(c, "DROP TABLE shape_of");
    free(want);
    free(got);
    free(listed);
}

static void test_realtime_columns(void **state)
{
    (void)state;
    th_require_cluster();
    PGconn *c = th_connect("tsi_owner");
    check(c, "safety_indices_realtime", "id,intersection_id,timestamp", TSI_RT_COLS,
          TSI_RT_COLS_DDL);
    /* the base and feature lists together are the whole list */
    assert_string_equal(TSI_RT_BASE_COLS ", " TSI_RT_FEAT_COLS, TSI_RT_COLS);
    PQfinish(c);
}

/* the count the upsert returns; its error in full when it fails */
static long long written(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("the upsert of db/columns.h failed: %s", PQresultErrorMessage(r));
    long long n = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return n;
}

static void test_hourly_columns_and_upsert(void **state)
{
    (void)state;
    th_require_cluster();
    PGconn *c = th_connect("tsi_owner");
    check(c, "safety_indices_hourly", "id,intersection_id,hour_timestamp", TSI_HR_COLS,
          TSI_HR_COLS_DDL);
    /* the upsert fragments parse and name real columns: a staged row written, then the
     * same row again (unchanged: no update), then a changed sub-index (updated) */
    th_sqlf(c, "INSERT INTO intersections (id, name, latitude, longitude) VALUES"
               " (1, 'a', 33.7, -84.4)");
    th_sqlf(c, "CREATE TEMP TABLE st (intersection_id bigint, hour_timestamp timestamptz, %s)",
            TSI_HR_COLS_DDL);
    th_sqlf(c, "INSERT INTO st (intersection_id, hour_timestamp, avg_si, total_volume,"
               " high_risk_minutes, data_quality_score, avg_vru_index, n_vru_index,"
               " constants_ids, algorithm_versions)"
               " VALUES (1, date_trunc('hour', now()), 40, 10, 0, 1, 30, 60, '{}', '{1}')");
    const char *upsert = "WITH up AS (INSERT INTO safety_indices_hourly AS h (intersection_id, "
                         "hour_timestamp, " TSI_HR_COLS
                         ") SELECT intersection_id, hour_timestamp, " TSI_HR_COLS " FROM st"
                         " ON CONFLICT (intersection_id, hour_timestamp) DO UPDATE SET avg_si = "
                         "EXCLUDED.avg_si" TSI_HR_SUB_SET " WHERE false" TSI_HR_SUB_CHANGED
                         " RETURNING 1) SELECT count(*) FROM up";
    assert_int_equal(written(c, upsert), 1);
    assert_int_equal(written(c, upsert), 0);
    th_sqlf(c, "UPDATE st SET avg_vru_index = 31");
    assert_int_equal(written(c, upsert), 1);
    assert_int_equal(th_int(c, "SELECT avg_vru_index FROM safety_indices_hourly"), 31);
    PQfinish(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_realtime_columns, th_db_setup, th_db_teardown),
        cmocka_unit_test_setup_teardown(test_hourly_columns_and_upsert, th_db_setup,
                                        th_db_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
