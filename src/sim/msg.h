/* sim/msg.h — the simulator's messages as the VCC Public API writes them (domain.md §1):
 * BsmWithMetadata / PsmWithMetadata JSON, MapData (decoded), SPaT (JSON_COMPLETE).
 *
 * Ownership: every function appends to the caller's tsi_buf; nothing is retained. Numbers
 * are written with the precision the model rounded them to (lat/lon 1e-7 degrees,
 * speed and accelerations 0.01, heading 0.0125 degrees, elevation 0.1 m); NAN is null. */
#ifndef TSI_SIM_MSG_H
#define TSI_SIM_MSG_H

#include "base/buf.h"
#include "sim/model.h"

/* One BSM or PSM (by s->kind), as a JSON object. */
void tsi_sim_msg_write(tsi_buf *b, const tsi_sim_model *m, const tsi_sim_sample *s);

/* A malformed message beside s: valid JSON, wrong content. `variant` picks the defect
 * (mod 4): 0 coreData/psmJson missing, 1 latitude 91.5, 2 speed as a string,
 * 3 timestamp missing. */
void tsi_sim_msg_malformed(tsi_buf *b, const tsi_sim_model *m, const tsi_sim_sample *s,
                           unsigned variant);

/* The MapData of intersection i at t_ms, decoded form: {timeStamp, msgIssueRevision,
 * intersections:[...]} (one intersection), in the model's encoding (document or legacy,
 * tsi_sim_cfg.legacy). */
void tsi_sim_mapdata_write(tsi_buf *b, const tsi_sim_model *m, int i, int64_t t_ms);

/* The SPaT of intersection i at t_ms (JSON_COMPLETE text, an object). */
void tsi_sim_spat_write(tsi_buf *b, const tsi_sim_model *m, int i, int64_t t_ms);

/* The SPaT formats of /api/spat[/{id|all}]?format=… (UPER when absent: the document's
 * default). JSON and JSON_COMPLETE are the same object here (docs/simulator.md). */
enum {
    TSI_SIM_SPAT_UPER,
    TSI_SIM_SPAT_JSON,
    TSI_SIM_SPAT_JSON_METADATA,
    TSI_SIM_SPAT_JSON_COMPLETE,
    TSI_SIM_SPAT__COUNT
};
/* The format named s (NULL: UPER), or -1 when unknown. */
int tsi_sim_spat_format_parse(const char *s);
/* SPaT of intersection i in a format: UPER the base64 text (no quotes); JSON and
 * JSON_COMPLETE the object of tsi_sim_spat_write; JSON_METADATA {timestamp, rsuName,
 * format, spatJ2735, spatJson}. */
void tsi_sim_spat_write_format(tsi_buf *b, const tsi_sim_model *m, int i, int64_t t_ms, int format);

/* GET /api/mapdata[/{id}]: {id, revision, msg} with msg the base64 J2735 MapData of
 * intersection i (a plausible packed record, not UPER). */
void tsi_sim_mapdata_summary(tsi_buf *b, const tsi_sim_model *m, int i, int64_t t_ms);

/* Formats v rounded to `decimals` (0..9) into out (>= 32 bytes); returns the length. */
int tsi_sim_fmt_fixed(char *out, double v, int decimals);

#endif
