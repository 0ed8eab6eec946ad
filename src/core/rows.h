/* core/rows.h — what the collector (and reprocess) produce per (intersection, minute):
 * the realtime index row with its features, the conflict audit rows, and quality counts
 * (domain types, so in core/ where every writer can reach them). Shared by the
 * indices Parquet writer (archive/indices.h), the database writer (db/ingest.h) and the
 * pipeline (pipeline/pipeline.h).
 *
 * All plain values (no pointers): copy freely. NAN in a double means SQL NULL. */
#ifndef TSI_CORE_ROWS_H
#define TSI_CORE_ROWS_H

#include <stdint.h>

/* One row of safety_indices_realtime plus the features that produced it. */
typedef struct tsi_rt_row {
    int64_t intersection_id;
    int64_t minute_ms;     /* window start, epoch ms, a multiple of 60000 ("timestamp") */
    double combined_index; /* required, 0..100 */
    double combined_index_eb, vru_index, vru_index_eb, vehicle_index, vehicle_index_eb;
    int32_t traffic_volume, vru_count, vehicle_event_count, vru_event_count;
    int16_t hour_of_day, day_of_week; /* configured time zone; 0 = Monday */
    /* features (written to the database only where the schema has the columns) */
    double avg_speed, speed_stddev; /* m/s; NAN when no vehicle */
    int32_t hard_braking_count;
    int32_t message_count; /* BSM + PSM messages of the window after dedupe */
    /* model provenance (migration 060), 0 = none (SQL NULL): the normalisation constants
     * set and the algorithm version (TSI_ALGORITHM_VERSION) that computed the indices.
     * Last in the struct: a spool record written before they existed is this struct's
     * prefix (db/spool.c reads it with both 0). */
    int64_t constants_id;
    int32_t algorithm_version;
    int32_t reserved; /* 0 */
} tsi_rt_row;

/* One conflict kept for audit (domain.md §3). */
typedef struct tsi_conflict_row {
    int64_t intersection_id;
    int64_t minute_ms;
    int kind;           /* 1 = vehicle-vehicle, 2 = VRU-vehicle */
    int64_t id_a, id_b; /* the two temporary ids */
    double min_ttc_s;   /* NAN when only the distance rule fired */
    double min_distance_m;
    int64_t at_ms; /* time of the sample that fired */
} tsi_conflict_row;

/* A data_quality_log entry (counted per minute, not one per message). */
typedef struct tsi_dq_row {
    int64_t minute_ms;
    int64_t intersection_id; /* -1 = none (NULL) */
    char issue_type[48];     /* unmatched_message, rejected_message, late_message, ... */
    char severity[12];       /* info | warning | error | critical */
    char message[200];
    char metadata[512]; /* a JSON object, "{}" when nothing */
} tsi_dq_row;

/* An intersection to upsert (from MapData). */
typedef struct tsi_isect_row {
    int64_t id;
    char name[128];
    double latitude, longitude;
    int lane_count; /* -1 = NULL */
    int revision;   /* -1 = NULL */
    /* JSON object (NULL or "" = "{}"), of any length up to TSI_ISECT_METADATA_MAX: the
     * MapData scalars and the lane polylines (docs/dashboard.md). Borrowed: it must stay
     * valid until tsi_ingest_add_isects returns (which copies it into the spool). */
    const char *metadata;
} tsi_isect_row;

#define TSI_ISECT_METADATA_MAX (1 << 20) /* bytes; a larger one is refused (TSI_E_TOO_BIG) */

#endif
