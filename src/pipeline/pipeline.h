/* pipeline/pipeline.h — the collector's processing, without the network (used by `tsi
 * collect` and `tsi reprocess`): VCC bodies in,
 * raw archive + indices Parquet + database rows out.
 *
 *   BSM/PSM frame ─► decode each element ─► engine (assign, dedupe, 1-minute windows)
 *        │                                     │ window closed
 *        │ (every element but a duplicate)     ▼
 *        └──► raw archive                 features ─► index (constants, EB priors)
 *                                              ─► indices Parquet, then the DB spool
 *   MapData ─► registry (+ intersections upserted on a new revision) and raw archive
 *   SPaT    ─► raw archive
 *
 * Rejected messages (decoder reason codes), unmatched and late ones are archived raw and
 * counted per minute into data_quality_log rows (issue types rejected_message,
 * unmatched_message, late_message), never one row per message. A BSM brake/transmission
 * value or a MapData laneType/bit field that is present but unreadable (vcc/decode.h)
 * keeps its message and is counted per minute of receipt into `unreadable_value` rows
 * (metadata: count, the fields, one example). The encodings seen are counted
 * (bsm_forms / map_forms, by TSI_FORM_* bit: core/messages.h).
 *
 * Clock sanity: each BSM/PSM is judged against received_ms, the receiver's clock (the
 * collector: the wall clock when the body arrived; reprocessing: the archived
 * received_at). One dated more than max_skew_ms ahead of it (or far behind it, see
 * core/engine.h) is archived raw, never enters a window nor moves the stream clock, and
 * is counted into one data_quality_log row `clock_skew` per (minute of receipt,
 * intersection, rsuName) with its count and smallest/largest offset. Duplicates (the same
 * message delivered twice, by stream and poll or by the source) are counted and dropped
 * before the archive.
 *
 * Ownership: the pipeline owns its archive writer, engine and registry; it borrows the
 * ingest (may be NULL: no database) for its lifetime. Bodies are borrowed per call. Not
 * thread-safe: one thread drives it. */
#ifndef TSI_PIPELINE_PIPELINE_H
#define TSI_PIPELINE_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "archive/raw.h"
#include "base/error.h"
#include "core/index.h"
#include "db/ingest.h"

typedef struct tsi_pipeline_config {
    const char *archive_root; /* required */
    int64_t grace_ms;         /* window grace; <= 0: 10000 */
    double radius_m;          /* assignment radius; <= 0: 150 */
    int64_t max_skew_ms;      /* clock sanity: 0: 120000; < 0: off */
    /* keep archive_root/intersections/ current: rewritten whole after each MapData that
     * adds or changes an intersection (the collector; not a scratch pipeline) */
    bool write_intersections;
} tsi_pipeline_config;

typedef struct tsi_collect_counters {
    long long frames, frames_rejected; /* BSM/PSM bodies, and those unusable as a whole */
    long long messages_in;             /* BSM + PSM elements seen */
    long long accepted, deduped, unmatched, late, rejected, skewed;
    long long mapdata_in, spat_in, intersections_new;
    long long intersections_retired; /* known, then absent from a full MapData answer */
    long long windows, rows_indexed; /* closed windows, rows produced */
    long long raw_rows, raw_files, index_files, archive_errors;
    long long dq_rows;
    long long unreadable;                 /* values present but unreadable */
    long long bsm_forms[TSI_FORM__COUNT]; /* BSMs with a brakes field in form k */
    long long map_forms[TSI_FORM__COUNT]; /* MapData bodies with a field in form k */
    long long isect_files;                /* intersections files written */
} tsi_collect_counters;

typedef struct tsi_pipeline tsi_pipeline;

int tsi_pipeline_new(tsi_pipeline **out, const tsi_pipeline_config *cfg, tsi_ingest *ingest,
                     tsi_error *err);
/* Closes every open window and flushes everything (archive, indices, spool). */
void tsi_pipeline_finish(tsi_pipeline *p);
/* final: tsi_pipeline_finish first. */
void tsi_pipeline_free(tsi_pipeline *p, bool final);

/* kind TSI_RAW_BSM or TSI_RAW_PSM: a stream frame (array; "[]" is a keepalive) or one
 * message object, or a REST /current body. */
void tsi_pipeline_frame(tsi_pipeline *p, tsi_raw_kind kind, const char *js, size_t len,
                        int64_t received_ms);
/* /api/mapdata/decoded body (array or one object). Returns intersections stored. */
int tsi_pipeline_mapdata(tsi_pipeline *p, const char *js, size_t len, int64_t received_ms);
/* A full /api/mapdata/decoded answer (no changedSince: every MapData received in the
 * VCC's window, a day by default): as tsi_pipeline_mapdata, then every intersection known
 * from MapData but absent from it is retired: forgotten by the registry (its messages are
 * no longer assigned) and upserted with metadata.retired_at, which takes it out of
 * "current" (safety_indices_latest; its history stays). An answer with no decodable
 * intersection retires nothing (a VCC that lost its MapData is not a corridor that lost its
 * RSUs). An intersection that comes back is stored again with retired_at null. Returns the
 * number retired. */
int tsi_pipeline_mapdata_full(tsi_pipeline *p, const char *js, size_t len, int64_t received_ms);
/* /api/spat body (array of JSON strings or objects, or one). */
void tsi_pipeline_spat(tsi_pipeline *p, const char *js, size_t len, int64_t received_ms);

/* Advances the stream clock (never backwards): closes windows that are due. */
void tsi_pipeline_advance(tsi_pipeline *p, int64_t clock_ms);
/* The stream clock (largest message time seen, or advanced to). */
int64_t tsi_pipeline_clock(const tsi_pipeline *p);

/* Writes the rows of closed windows: indices Parquet first, then the database spool;
 * with the quality entries of minutes that closed. Returns rows handed over. */
long long tsi_pipeline_flush_rows(tsi_pipeline *p, bool all_quality);
/* Writes the raw archive's pending rows. */
int tsi_pipeline_flush_raw(tsi_pipeline *p, tsi_error *err);

/* Adds a locationName → intersection id map (core/registry.h
 * tsi_registry_map_locations_json): the JSON object text is borrowed. Returns the number
 * of names mapped, or an error (a bad map changes nothing). */
int tsi_pipeline_map_locations(tsi_pipeline *p, const char *js, size_t len, tsi_error *err);

/* Replaces the normalisation constants and EB priors (priors: taken, may be NULL). */
void tsi_pipeline_set_constants(tsi_pipeline *p, const tsi_constants *c, tsi_priors *priors);

void tsi_pipeline_counters(const tsi_pipeline *p, tsi_collect_counters *out);
int tsi_pipeline_intersections(const tsi_pipeline *p);
/* The frame parser's token storage: its capacity now (0 when released) and how many
 * frame parses ran out of tokens and were repeated (tests, benchmarks). */
void tsi_pipeline_token_stats(const tsi_pipeline *p, int *capacity, long long *reparses);

#endif
