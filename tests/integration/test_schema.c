/* The schema (issue 9): migrations from empty, twice; every table, column, index and
 * constraint the requirement names; hostile rows refused; upserts; partitions ahead;
 * least privilege per role; a changed migration detected. Real PostgreSQL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/conn.h"
#include "db/migrate.h"
#include "core/index.h"
#include "harness.h"

static char out[1 << 15];

static void test_migrations_from_empty_twice(void **state)
{
    (void)state;
    th_require_cluster();
    /* an empty database: bootstrap (extensions) then migrate twice */
    PGconn *a = tsi_db_connect(TSI_ROLE_ADMIN, "postgres", NULL);
    assert_non_null(a);
    th_exec(a, "DROP DATABASE IF EXISTS t_empty_migrate WITH (FORCE)", NULL);
    PQfinish(a);
    const char *env[] = {"TSI_DB_NAME=t_empty_migrate", NULL};
    int rc = th_run_tsi((const char *[]){"db", "bootstrap", NULL}, env, out, sizeof out);
    if (rc != 0)
        fail_msg("bootstrap: %s", out);
    /* a client in another zone (here one with DST) still gets UTC-day partitions */
    const char *env_tz[] = {"TSI_DB_NAME=t_empty_migrate", "PGTZ=America/New_York", NULL};
    rc = th_run_tsi((const char *[]){"migrate", NULL}, env_tz, out, sizeof out);
    if (rc != 0)
        fail_msg("migrate: %s", out);
    char want[64];
    snprintf(want, sizeof want, "applied=%d", tsi_migrations_count);
    assert_non_null(strstr(out, want));
    rc = th_run_tsi((const char *[]){"migrate", NULL}, env, out, sizeof out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "applied=0"));
    rc = th_run_tsi((const char *[]){"migrate", "--status", NULL}, env, out, sizeof out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "001  schema"));
    assert_null(strstr(out, "pending"));

    setenv("TSI_DB_NAME", "t_empty_migrate", 1);
    PGconn *c = th_connect("tsi_owner");
    assert_int_equal(th_int(c, "SELECT count(*) FROM schema_migrations"), tsi_migrations_count);
    th_sqlf(c, "SET TimeZone = 'UTC'");
    assert_true(th_int(c, "SELECT count(*) FROM pg_inherits i JOIN pg_class p ON p.oid ="
                          " i.inhparent WHERE p.relname = 'safety_indices_realtime'") >= 3);
    assert_int_equal(th_int(c,
                            "SELECT count(*) FROM pg_inherits i JOIN pg_class p ON p.oid ="
                            " i.inhparent JOIN pg_class k ON k.oid = i.inhrelid WHERE p.relname ="
                            " 'safety_indices_realtime' AND pg_get_expr(k.relpartbound, k.oid)"
                            " !~ '^FOR VALUES FROM \\(''[0-9-]+ 00:00:00\\+00''\\) TO"
                            " \\(''[0-9-]+ 00:00:00\\+00''\\)$'"
                            " AND pg_get_expr(k.relpartbound, k.oid) <> 'DEFAULT'"),
                     0);
    assert_int_equal(th_int(c, "SELECT count(DISTINCT checksum) FROM schema_migrations WHERE "
                               "length(checksum) = 64"),
                     tsi_migrations_count);
    PQfinish(c);
    setenv("TSI_DB_NAME", th_db_name(), 1);
    a = tsi_db_connect(TSI_ROLE_ADMIN, "postgres", NULL);
    th_exec(a, "DROP DATABASE IF EXISTS t_empty_migrate WITH (FORCE)", NULL);
    PQfinish(a);
}

static const struct {
    const char *table, *column, *type;
} columns[] = {
    {"intersections", "id", "bigint"},
    {"intersections", "name", "text"},
    {"intersections", "latitude", "double precision"},
    {"intersections", "longitude", "double precision"},
    {"intersections", "geometry", "USER-DEFINED"},
    {"intersections", "lane_count", "integer"},
    {"intersections", "revision", "integer"},
    {"intersections", "metadata", "jsonb"},
    {"intersections", "created_at", "timestamp with time zone"},
    {"intersections", "updated_at", "timestamp with time zone"},
    {"safety_indices_realtime", "id", "bigint"},
    {"safety_indices_realtime", "intersection_id", "bigint"},
    {"safety_indices_realtime", "timestamp", "timestamp with time zone"},
    {"safety_indices_realtime", "combined_index", "double precision"},
    {"safety_indices_realtime", "combined_index_eb", "double precision"},
    {"safety_indices_realtime", "vru_index", "double precision"},
    {"safety_indices_realtime", "vru_index_eb", "double precision"},
    {"safety_indices_realtime", "vehicle_index", "double precision"},
    {"safety_indices_realtime", "vehicle_index_eb", "double precision"},
    {"safety_indices_realtime", "traffic_volume", "integer"},
    {"safety_indices_realtime", "vru_count", "integer"},
    {"safety_indices_realtime", "vehicle_event_count", "integer"},
    {"safety_indices_realtime", "vru_event_count", "integer"},
    {"safety_indices_realtime", "hour_of_day", "smallint"},
    {"safety_indices_realtime", "day_of_week", "smallint"},
    {"safety_indices_hourly", "id", "bigint"},
    {"safety_indices_hourly", "intersection_id", "bigint"},
    {"safety_indices_hourly", "hour_timestamp", "timestamp with time zone"},
    {"safety_indices_hourly", "avg_si", "double precision"},
    {"safety_indices_hourly", "min_si", "double precision"},
    {"safety_indices_hourly", "max_si", "double precision"},
    {"safety_indices_hourly", "std_si", "double precision"},
    {"safety_indices_hourly", "total_volume", "bigint"},
    {"safety_indices_hourly", "avg_volume", "double precision"},
    {"safety_indices_hourly", "high_risk_minutes", "integer"},
    {"safety_indices_hourly", "data_quality_score", "double precision"},
    {"safety_indices_daily", "id", "bigint"},
    {"safety_indices_daily", "intersection_id", "bigint"},
    {"safety_indices_daily", "date", "date"},
    {"safety_indices_daily", "avg_si", "double precision"},
    {"safety_indices_daily", "min_si", "double precision"},
    {"safety_indices_daily", "max_si", "double precision"},
    {"safety_indices_daily", "std_si", "double precision"},
    {"safety_indices_daily", "total_volume", "bigint"},
    {"safety_indices_daily", "avg_volume", "double precision"},
    {"safety_indices_daily", "high_risk_hours", "integer"},
    {"safety_indices_daily", "peak_hour", "smallint"},
    {"safety_indices_daily", "peak_si", "double precision"},
    {"normalization_constants", "id", "bigint"},
    {"normalization_constants", "computed_at", "timestamp with time zone"},
    {"normalization_constants", "constants", "jsonb"},
    {"normalization_constants", "valid_from", "timestamp with time zone"},
    {"normalization_constants", "valid_until", "timestamp with time zone"},
    {"data_quality_log", "id", "bigint"},
    {"data_quality_log", "timestamp", "timestamp with time zone"},
    {"data_quality_log", "intersection_id", "bigint"},
    {"data_quality_log", "issue_type", "text"},
    {"data_quality_log", "severity", "text"},
    {"data_quality_log", "message", "text"},
    {"data_quality_log", "metadata", "jsonb"},
    /* issue 26 (migration 060): provenance, sub-indices, the constants' features store */
    {"safety_indices_realtime", "constants_id", "bigint"},
    {"safety_indices_realtime", "algorithm_version", "smallint"},
    {"safety_indices_hourly", "avg_vru_index", "double precision"},
    {"safety_indices_hourly", "n_vru_index", "integer"},
    {"safety_indices_hourly", "avg_vru_index_eb", "double precision"},
    {"safety_indices_hourly", "n_vru_index_eb", "integer"},
    {"safety_indices_hourly", "avg_vru_si", "double precision"},
    {"safety_indices_hourly", "min_vru_si", "double precision"},
    {"safety_indices_hourly", "max_vru_si", "double precision"},
    {"safety_indices_hourly", "n_vru_si", "integer"},
    {"safety_indices_hourly", "avg_vehicle_index", "double precision"},
    {"safety_indices_hourly", "n_vehicle_index", "integer"},
    {"safety_indices_hourly", "avg_vehicle_index_eb", "double precision"},
    {"safety_indices_hourly", "n_vehicle_index_eb", "integer"},
    {"safety_indices_hourly", "avg_vehicle_si", "double precision"},
    {"safety_indices_hourly", "min_vehicle_si", "double precision"},
    {"safety_indices_hourly", "max_vehicle_si", "double precision"},
    {"safety_indices_hourly", "n_vehicle_si", "integer"},
    {"safety_indices_hourly", "constants_ids", "ARRAY"},
    {"safety_indices_hourly", "algorithm_versions", "ARRAY"},
    {"safety_indices_daily", "avg_vru_index", "double precision"},
    {"safety_indices_daily", "n_vru_index", "integer"},
    {"safety_indices_daily", "avg_vru_index_eb", "double precision"},
    {"safety_indices_daily", "n_vru_index_eb", "integer"},
    {"safety_indices_daily", "avg_vru_si", "double precision"},
    {"safety_indices_daily", "min_vru_si", "double precision"},
    {"safety_indices_daily", "max_vru_si", "double precision"},
    {"safety_indices_daily", "n_vru_si", "integer"},
    {"safety_indices_daily", "avg_vehicle_index", "double precision"},
    {"safety_indices_daily", "n_vehicle_index", "integer"},
    {"safety_indices_daily", "avg_vehicle_index_eb", "double precision"},
    {"safety_indices_daily", "n_vehicle_index_eb", "integer"},
    {"safety_indices_daily", "avg_vehicle_si", "double precision"},
    {"safety_indices_daily", "min_vehicle_si", "double precision"},
    {"safety_indices_daily", "max_vehicle_si", "double precision"},
    {"safety_indices_daily", "n_vehicle_si", "integer"},
    {"safety_indices_daily", "constants_ids", "ARRAY"},
    {"safety_indices_daily", "algorithm_versions", "ARRAY"},
    {"safety_features_hourly", "intersection_id", "bigint"},
    {"safety_features_hourly", "hour_timestamp", "timestamp with time zone"},
    {"safety_features_hourly", "hour_of_day", "smallint"},
    {"safety_features_hourly", "minutes", "integer"},
    {"safety_features_hourly", "max_vru_events", "integer"},
    {"safety_features_hourly", "max_vehicle_events", "integer"},
    {"safety_features_hourly", "max_volume", "integer"},
    {"safety_features_hourly", "max_speed_stddev", "double precision"},
    {"safety_features_hourly", "max_hard_braking", "integer"},
    {"safety_features_hourly", "speeds", "ARRAY"},
    {"safety_features_hourly", "n_vru", "integer"},
    {"safety_features_hourly", "sum_vru", "double precision"},
    {"safety_features_hourly", "n_vehicle", "integer"},
    {"safety_features_hourly", "sum_vehicle", "double precision"},
    {"safety_features_hourly", "n_combined", "integer"},
    {"safety_features_hourly", "sum_combined", "double precision"},
};

/* index expectations: table, and the ordered key columns of some index on it */
static const struct {
    const char *table, *keys, *method;
} indexes[] = {
    {"intersections", "geometry", "gist"},
    {"intersections", "id", "btree"},
    {"safety_indices_realtime", "intersection_id, \"timestamp\"", "btree"},
    {"safety_indices_realtime", "\"timestamp\"", "btree"},
    {"safety_indices_realtime", "combined_index_eb", "btree"},
    {"safety_indices_hourly", "intersection_id, hour_timestamp", "btree"},
    {"safety_indices_hourly", "hour_timestamp", "btree"},
    {"safety_indices_daily", "intersection_id, date", "btree"},
    {"safety_indices_daily", "date", "btree"},
    {"normalization_constants", "computed_at", "btree"},
    {"normalization_constants", "valid_from, valid_until", "btree"},
    {"data_quality_log", "\"timestamp\"", "btree"},
    {"data_quality_log", "intersection_id, \"timestamp\"", "btree"},
    {"safety_features_hourly", "intersection_id, hour_timestamp, hour_of_day", "btree"},
    {"safety_features_hourly", "hour_timestamp", "btree"},
};

static void test_tables_columns_indexes(void **state)
{
    (void)state;
    PGconn *c = th_connect("tsi_owner");
    char sql[1024];
    for (size_t i = 0; i < sizeof columns / sizeof columns[0]; i++) {
        snprintf(sql, sizeof sql,
                 "SELECT data_type FROM information_schema.columns WHERE table_schema='public' "
                 "AND table_name='%s' AND column_name='%s'",
                 columns[i].table, columns[i].column);
        PGresult *r = PQexec(c, sql);
        if (PQntuples(r) != 1)
            fail_msg("missing column %s.%s", columns[i].table, columns[i].column);
        assert_string_equal(PQgetvalue(r, 0, 0), columns[i].type);
        PQclear(r);
    }
    for (size_t i = 0; i < sizeof indexes / sizeof indexes[0]; i++) {
        /* the key list as pg_get_indexdef renders it, whatever the index name */
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid "
                 "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_am am ON am.oid = i.relam "
                 "WHERE t.relname = '%s' AND am.amname = '%s' AND "
                 "pg_get_indexdef(x.indexrelid) LIKE '%%(%s)%%'",
                 indexes[i].table, indexes[i].method, indexes[i].keys);
        if (th_int(c, sql) < 1)
            fail_msg("missing %s index on %s (%s)", indexes[i].method, indexes[i].table,
                     indexes[i].keys);
    }
    /* PostGIS enabled, geometry is a 4326 point */
    assert_int_equal(th_int(c, "SELECT count(*) FROM pg_extension WHERE extname IN ('postgis', "
                               "'pg_partman', 'pg_stat_statements')"),
                     3);
    char *t = th_value(c, "SELECT type || ':' || srid FROM geometry_columns WHERE "
                          "f_table_name='intersections'");
    assert_string_equal(t, "POINT:4326");
    free(t);
    /* realtime and hourly are range-partitioned, by day and by month */
    assert_int_equal(th_int(c, "SELECT count(*) FROM pg_partitioned_table p JOIN pg_class c ON "
                               "c.oid = p.partrelid WHERE c.relname IN "
                               "('safety_indices_realtime','safety_indices_hourly') AND "
                               "p.partstrat = 'r'"),
                     2);
    assert_int_equal(th_int(c, "SELECT count(*) FROM partman.part_config WHERE "
                               "(parent_table, partition_interval) IN "
                               "(('public.safety_indices_realtime', '1 day'), "
                               "('public.safety_indices_hourly', '1 mon'))"),
                     2);
    /* the rollups count high-risk minutes and hours with core/index.h's threshold */
    assert_int_equal(th_int(c, "SELECT count(*) FROM pg_proc WHERE proname = 'tsi_rollup_hours'"
                               " AND prosrc LIKE '%count(*) FILTER (WHERE si > " TSI_RISK_HIGH_SQL
                               ")%'"),
                     1);
    assert_int_equal(
        th_int(c, "SELECT count(*) FROM pg_proc WHERE proname = 'tsi_rollup_days'"
                  " AND prosrc LIKE '%count(*) FILTER (WHERE avg_si > " TSI_RISK_HIGH_SQL ")%'"),
        1);
    PQfinish(c);
}

static void insert_intersection(PGconn *c)
{
    assert_int_equal(th_exec(c,
                             "INSERT INTO intersections (id, name, latitude, longitude, "
                             "lane_count, revision) VALUES (65537, 'US-29 & Nutley', 38.8735, "
                             "-77.271, 8, 3)",
                             NULL),
                     PGRES_COMMAND_OK);
}

#define ROW(ts, ci, vol, hour, iid)                                                                \
    "INSERT INTO safety_indices_realtime (intersection_id, \"timestamp\", combined_index, "        \
    "combined_index_eb, vru_index, vehicle_index, traffic_volume, vru_count, "                     \
    "vehicle_event_count, vru_event_count, hour_of_day, day_of_week) VALUES (" iid ", " ts ", " ci \
    ", 50, 40, 30, " vol ", 2, 0, 0, " hour ", 2)"

static void test_hostile_rows_refused(void **state)
{
    (void)state;
    PGconn *c = th_connect("tsi_owner");
    insert_intersection(c);
    /* geometry follows lat/lon; updated_at maintained */
    assert_int_equal(th_int(c, "SELECT count(*) FROM intersections WHERE ST_X(geometry) = "
                               "-77.271 AND ST_Y(geometry) = 38.8735"),
                     1);
    assert_int_equal(th_exec(c, "UPDATE intersections SET latitude = 38.9 WHERE id = 65537", NULL),
                     PGRES_COMMAND_OK);
    assert_int_equal(th_int(c, "SELECT count(*) FROM intersections WHERE ST_Y(geometry) = 38.9"),
                     1);
    static const struct {
        const char *sql, *state;
    } bad[] = {
        {ROW("now()", "100.1", "5", "3", "65537"), "23514"},
        {ROW("now()", "-1", "5", "3", "65537"), "23514"},
        {ROW("now()", "NULL", "5", "3", "65537"), "23502"},
        {ROW("now()", "'NaN'", "5", "3", "65537"), "23514"},
        {ROW("now()", "50", "-1", "3", "65537"), "23514"},
        {ROW("now()", "50", "5", "24", "65537"), "23514"},
        {ROW("now()", "50", "5", "-1", "65537"), "23514"},
        {ROW("now()", "50", "5", "3", "99"), "23503"},
        {"INSERT INTO intersections (id, name, latitude, longitude) VALUES (1, 'x', 91, 0)",
         "23514"},
        {"INSERT INTO intersections (id, name, latitude, longitude) VALUES (2, 'x', 0, -180.5)",
         "23514"},
        {"INSERT INTO data_quality_log (issue_type, severity, message) VALUES ('x', 'fatal', 'm')",
         "23514"},
        {"INSERT INTO safety_indices_hourly (intersection_id, hour_timestamp, avg_si, "
         "total_volume, high_risk_minutes, data_quality_score) VALUES (65537, "
         "'2026-11-25 10:30+00', 50, 1, 0, 0.5)",
         "23514"},
        {"INSERT INTO normalization_constants (constants, valid_from) VALUES ('[1]', now())",
         "23514"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char st[8];
        int s = th_exec(c, bad[i].sql, st);
        if (s == PGRES_COMMAND_OK || strcmp(st, bad[i].state) != 0)
            fail_msg("case %zu accepted or wrong SQLSTATE %s (want %s): %s", i, st, bad[i].state,
                     bad[i].sql);
    }
    /* validity periods never overlap */
    assert_int_equal(th_exec(c,
                             "INSERT INTO normalization_constants (constants, valid_from, "
                             "valid_until) VALUES ('{}', '2026-01-01', '2026-01-02')",
                             NULL),
                     PGRES_COMMAND_OK);
    char st[8];
    assert_int_not_equal(th_exec(c,
                                 "INSERT INTO normalization_constants (constants, valid_from) "
                                 "VALUES ('{}', '2026-01-01 12:00')",
                                 st),
                         PGRES_COMMAND_OK);
    assert_string_equal(st, "23P01");
    PQfinish(c);
}

static void test_upsert_and_partitions_ahead(void **state)
{
    (void)state;
    PGconn *c = th_connect("tsi_writer");
    PGconn *o = th_connect("tsi_owner");
    insert_intersection(o);
    const char *up = " ON CONFLICT (intersection_id, \"timestamp\") DO UPDATE SET "
                     "combined_index = EXCLUDED.combined_index";
    char sql[1024];
    snprintf(sql, sizeof sql, "%s%s", ROW("date_trunc('minute', now())", "40", "5", "3", "65537"),
             up);
    assert_int_equal(th_exec(c, sql, NULL), PGRES_COMMAND_OK);
    snprintf(sql, sizeof sql, "%s%s", ROW("date_trunc('minute', now())", "45", "5", "3", "65537"),
             up);
    assert_int_equal(th_exec(c, sql, NULL), PGRES_COMMAND_OK);
    assert_int_equal(th_int(c, "SELECT count(*) FROM safety_indices_realtime"), 1);
    assert_int_equal(th_int(c, "SELECT combined_index FROM safety_indices_realtime"), 45);
    /* a plain duplicate without ON CONFLICT is refused */
    char st[8];
    assert_int_not_equal(
        th_exec(c, ROW("date_trunc('minute', now())", "45", "5", "3", "65537"), st),
        PGRES_COMMAND_OK);
    assert_string_equal(st, "23505");
    /* today + 3 days lands in a real partition, not the default one */
    assert_int_equal(
        th_exec(c, ROW("date_trunc('minute', now()) + interval '3 days'", "20", "5", "3", "65537"),
                NULL),
        PGRES_COMMAND_OK);
    assert_int_equal(th_int(o, "SELECT count(*) FROM ONLY safety_indices_realtime_default"), 0);
    assert_int_equal(th_int(o, "SELECT count(*) FROM pg_inherits i JOIN pg_class p ON p.oid = "
                               "i.inhparent WHERE p.relname = 'safety_indices_realtime'") >= 10,
                     1);
    PQfinish(c);
    PQfinish(o);
}

static void test_least_privilege(void **state)
{
    (void)state;
    PGconn *o = th_connect("tsi_owner");
    insert_intersection(o);
    assert_int_equal(th_exec(o, ROW("now()", "40", "5", "3", "65537"), NULL), PGRES_COMMAND_OK);
    assert_int_equal(th_exec(o,
                             "INSERT INTO safety_indices_daily (intersection_id, date, avg_si, "
                             "total_volume, high_risk_hours) VALUES (65537, current_date, 40, 5, "
                             "0)",
                             NULL),
                     PGRES_COMMAND_OK);
    PQfinish(o);
    static const struct {
        const char *role, *sql;
        int allowed;
    } cases[] = {
        {"tsi_reader", "SELECT count(*) FROM safety_indices_realtime", 1},
        {"tsi_reader", "SELECT count(*) FROM intersections", 1},
        {"tsi_reader", "SELECT count(*) FROM safety_indices_daily", 1},
        {"tsi_reader", ROW("now() - interval '1 minute'", "40", "5", "3", "65537"), 0},
        {"tsi_reader", "UPDATE intersections SET name = 'x'", 0},
        {"tsi_reader", "DELETE FROM safety_indices_realtime", 0},
        {"tsi_reader",
         "INSERT INTO data_quality_log (issue_type, severity, message) VALUES "
         "('x','info','m')",
         0},
        {"tsi_writer", ROW("now() - interval '2 minutes'", "40", "5", "3", "65537"), 1},
        {"tsi_writer", "UPDATE intersections SET name = 'renamed' WHERE id = 65537", 1},
        {"tsi_writer",
         "INSERT INTO data_quality_log (issue_type, severity, message) VALUES "
         "('unmatched_message','info','m')",
         1},
        {"tsi_writer", "DELETE FROM safety_indices_daily", 0},
        {"tsi_writer", "DELETE FROM safety_indices_hourly", 0},
        {"tsi_writer", "DELETE FROM safety_indices_realtime", 0},
        {"tsi_writer", "UPDATE safety_indices_daily SET avg_si = 1", 0},
        {"tsi_writer", "DROP TABLE safety_indices_daily", 0},
        {"tsi_writer", "DROP TABLE intersections CASCADE", 0},
        {"tsi_writer", "CREATE TABLE sneaky (x int)", 0},
        {"tsi_jobs",
         "DELETE FROM safety_indices_realtime WHERE \"timestamp\" < now() - "
         "interval '48 hours'",
         1},
        {"tsi_jobs", "UPDATE safety_indices_daily SET avg_si = avg_si", 1},
        {"tsi_jobs",
         "INSERT INTO intersections (id, name, latitude, longitude) VALUES (5, "
         "'x', 1, 1)",
         0},
        {"tsi_jobs", "DROP TABLE safety_indices_daily", 0},
        {"tsi_jobs", "ALTER TABLE intersections ADD COLUMN x int", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        PGconn *c = th_connect(cases[i].role);
        char st[8];
        int s = th_exec(c, cases[i].sql, st);
        int ok = s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
        if (ok != cases[i].allowed)
            fail_msg("%s: %s was %s (SQLSTATE %s)", cases[i].role, cases[i].sql,
                     ok ? "allowed" : "refused", st);
        if (!ok)
            assert_true(strcmp(st, "42501") == 0); /* insufficient_privilege, nothing else */
        PQfinish(c);
    }
    /* every connection is TLS-encrypted and authenticated as its own role */
    PGconn *c = th_connect("tsi_reader");
    assert_int_equal(PQsslInUse(c), 1);
    char *who = th_value(c, "SELECT current_user");
    assert_string_equal(who, "tsi_reader");
    free(who);
    PQfinish(c);
}

static void test_changed_migration_detected(void **state)
{
    (void)state;
    PGconn *c = th_connect("tsi_owner");
    tsi_migration changed[64];
    int n = tsi_migrations_count < 64 ? tsi_migrations_count : 64;
    memcpy(changed, tsi_migrations, sizeof changed[0] * (size_t)n);
    /* the same applied version with different text */
    changed[0].sql = "-- edited after it was applied\nSELECT 1;";
    changed[0].len = strlen(changed[0].sql);
    tsi_error e = {0};
    assert_int_equal(tsi_migrate_apply_list(c, changed, n, &e), TSI_E_CHECKSUM);
    assert_non_null(strstr(e.detail, "001_schema.sql"));
    /* unchanged list: nothing to do */
    assert_int_equal(tsi_migrate_apply(c, &e), 0);
    PQfinish(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_migrations_from_empty_twice),
        cmocka_unit_test_setup_teardown(test_tables_columns_indexes, th_db_setup, th_db_teardown),
        cmocka_unit_test_setup_teardown(test_hostile_rows_refused, th_db_setup, th_db_teardown),
        cmocka_unit_test_setup_teardown(test_upsert_and_partitions_ahead, th_db_setup,
                                        th_db_teardown),
        cmocka_unit_test_setup_teardown(test_least_privilege, th_db_setup, th_db_teardown),
        cmocka_unit_test_setup_teardown(test_changed_migration_detected, th_db_setup,
                                        th_db_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
