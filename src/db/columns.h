/* db/columns.h — the columns of the index tables as PostgreSQL stores them, one spelling
 * for every writer: the collector's ingest (db/ingest.c), backfill, reprocess and seed
 * (tools/). A column added to safety_indices_realtime (a new migration) is added here, and
 * the writers' staging tables and upserts follow; tests/integration/test_db_columns.c
 * checks these lists against the migrated tables.
 *
 * Realtime (safety_indices_realtime), besides its key (intersection_id, "timestamp"):
 *   TSI_RT_BASE_COLS  the indices, counts and calendar columns every writer has
 *   TSI_RT_FEAT_COLS  the features and provenance (migration 060) that older spools and
 *                     the earlier system's Parquet may lack
 *   TSI_RT_COLS       both, in table order: the column list of an INSERT or COPY
 *   TSI_RT_COLS_DDL   the same with their types: the body of a staging table
 *                     ("CREATE TEMP TABLE x (<key columns>, " TSI_RT_COLS_DDL ")")
 * Hourly (safety_indices_hourly), besides its key (intersection_id, hour_timestamp):
 *   TSI_HR_COLS, TSI_HR_COLS_DDL  as above (the rollup and the sub-indices)
 * and the sub-indices and model provenance of migration 060 alone:
 *   TSI_HR_SUB_COLS, TSI_HR_SUB_DDL (a leading ", "), TSI_HR_SUB_SET (the SET list of an
 *   upsert, leading ", ") and TSI_HR_SUB_CHANGED (its "changed" test, leading " OR": a mean
 *   counts as changed beyond 1e-12 relative, as DuckDB's parallel sums may differ in the
 *   last bit). */
#ifndef TSI_DB_COLUMNS_H
#define TSI_DB_COLUMNS_H

#define TSI_RT_BASE_COLS                                                                           \
    "combined_index, combined_index_eb, vru_index, vru_index_eb, vehicle_index, "                  \
    "vehicle_index_eb, traffic_volume, vru_count, vehicle_event_count, vru_event_count, "          \
    "hour_of_day, day_of_week"
#define TSI_RT_FEAT_COLS                                                                           \
    "avg_speed, speed_stddev, hard_braking_count, constants_id, algorithm_version"
#define TSI_RT_COLS TSI_RT_BASE_COLS ", " TSI_RT_FEAT_COLS
#define TSI_RT_COLS_DDL                                                                            \
    "combined_index float8, combined_index_eb float8, vru_index float8, vru_index_eb float8, "     \
    "vehicle_index float8, vehicle_index_eb float8, traffic_volume integer, vru_count integer, "   \
    "vehicle_event_count integer, vru_event_count integer, hour_of_day smallint, "                 \
    "day_of_week smallint, avg_speed float8, speed_stddev float8, hard_braking_count integer, "    \
    "constants_id bigint, algorithm_version smallint"

#define TSI_HR_SUB_COLS                                                                            \
    "avg_vru_index, n_vru_index, avg_vru_index_eb, n_vru_index_eb, avg_vru_si, min_vru_si, "       \
    "max_vru_si, n_vru_si, avg_vehicle_index, n_vehicle_index, avg_vehicle_index_eb, "             \
    "n_vehicle_index_eb, avg_vehicle_si, min_vehicle_si, max_vehicle_si, n_vehicle_si, "           \
    "constants_ids, algorithm_versions"
#define TSI_HR_SUB_DDL                                                                             \
    ", avg_vru_index float8, n_vru_index integer, avg_vru_index_eb float8,"                        \
    " n_vru_index_eb integer, avg_vru_si float8, min_vru_si float8, max_vru_si float8,"            \
    " n_vru_si integer, avg_vehicle_index float8, n_vehicle_index integer,"                        \
    " avg_vehicle_index_eb float8, n_vehicle_index_eb integer, avg_vehicle_si float8,"             \
    " min_vehicle_si float8, max_vehicle_si float8, n_vehicle_si integer,"                         \
    " constants_ids bigint[], algorithm_versions smallint[]"
#define TSI_HR_SUB_SET                                                                             \
    ", avg_vru_index = EXCLUDED.avg_vru_index, n_vru_index = EXCLUDED.n_vru_index,"                \
    " avg_vru_index_eb = EXCLUDED.avg_vru_index_eb, n_vru_index_eb = EXCLUDED.n_vru_index_eb,"     \
    " avg_vru_si = EXCLUDED.avg_vru_si, min_vru_si = EXCLUDED.min_vru_si,"                         \
    " max_vru_si = EXCLUDED.max_vru_si, n_vru_si = EXCLUDED.n_vru_si,"                             \
    " avg_vehicle_index = EXCLUDED.avg_vehicle_index, n_vehicle_index = EXCLUDED.n_vehicle_index," \
    " avg_vehicle_index_eb = EXCLUDED.avg_vehicle_index_eb,"                                       \
    " n_vehicle_index_eb = EXCLUDED.n_vehicle_index_eb, avg_vehicle_si = EXCLUDED.avg_vehicle_si," \
    " min_vehicle_si = EXCLUDED.min_vehicle_si, max_vehicle_si = EXCLUDED.max_vehicle_si,"         \
    " n_vehicle_si = EXCLUDED.n_vehicle_si, constants_ids = EXCLUDED.constants_ids,"               \
    " algorithm_versions = EXCLUDED.algorithm_versions"
#define TSI_HR_SUB_MEAN_DIFFERS(col)                                                               \
    " OR (h." col " IS NULL) <> (EXCLUDED." col " IS NULL)"                                        \
    " OR abs(h." col " - EXCLUDED." col ") > 1e-12 * greatest(1, abs(h." col "))"
#define TSI_HR_SUB_CHANGED                                                                         \
    " OR (h.n_vru_index, h.n_vru_index_eb, h.n_vru_si, h.min_vru_si, h.max_vru_si,"                \
    " h.n_vehicle_index, h.n_vehicle_index_eb, h.n_vehicle_si, h.min_vehicle_si,"                  \
    " h.max_vehicle_si, h.constants_ids, h.algorithm_versions) IS DISTINCT FROM"                   \
    " (EXCLUDED.n_vru_index, EXCLUDED.n_vru_index_eb, EXCLUDED.n_vru_si, EXCLUDED.min_vru_si,"     \
    " EXCLUDED.max_vru_si, EXCLUDED.n_vehicle_index, EXCLUDED.n_vehicle_index_eb,"                 \
    " EXCLUDED.n_vehicle_si, EXCLUDED.min_vehicle_si, EXCLUDED.max_vehicle_si,"                    \
    " EXCLUDED.constants_ids, EXCLUDED.algorithm_versions)" TSI_HR_SUB_MEAN_DIFFERS(               \
        "avg_vru_index") TSI_HR_SUB_MEAN_DIFFERS("avg_vru_index_eb")                               \
        TSI_HR_SUB_MEAN_DIFFERS("avg_vru_si") TSI_HR_SUB_MEAN_DIFFERS("avg_vehicle_index")         \
            TSI_HR_SUB_MEAN_DIFFERS("avg_vehicle_index_eb")                                        \
                TSI_HR_SUB_MEAN_DIFFERS("avg_vehicle_si")

#define TSI_HR_COLS                                                                                \
    "avg_si, min_si, max_si, std_si, total_volume, avg_volume, high_risk_minutes, "                \
    "data_quality_score, " TSI_HR_SUB_COLS
#define TSI_HR_COLS_DDL                                                                            \
    "avg_si float8, min_si float8, max_si float8, std_si float8, total_volume bigint, "            \
    "avg_volume float8, high_risk_minutes integer, data_quality_score float8" TSI_HR_SUB_DDL

#endif
