/* vcc/decode.h — JSON decoding of VCC messages (domain.md §1) into core/messages.h.
 *
 * Every decoder checks types and ranges of the fields the features use, and returns 0
 * or a negative TSI_E_* reason code with err filled with a sentence and the field and
 * value seen (fit for data_quality_log). Hostile input never crashes, never reads out
 * of bounds and never leaks; token counts are bounded (TSI_E_TOO_BIG beyond).
 *
 * Reason codes: TSI_E_JSON (malformed), TSI_E_JSON_TRUNCATED, TSI_E_NOT_OBJECT (a
 * message that is not a JSON object), TSI_E_UNKNOWN_TYPE (neither bsmJson nor psmJson,
 * or a PSM basicType outside 0..4), TSI_E_MISSING (a required field absent or null:
 * timestamp, id, lat, lon, coreData/position), TSI_E_TYPE (a field of the wrong JSON
 * kind), TSI_E_RANGE (lat 91, negative speed, a timestamp outside 2000..2100 in ms, …),
 * TSI_E_TOO_BIG (too many tokens or an over-long name).
 *
 * Encodings (domain.md §1): BSM brakes.wheelBrakes and the BSM enums (traction, abs, scs,
 * brakeBoost, auxBrakes, transmission) are read as the document's integers, as bit
 * strings ("01000"), as objects of booleans (USDOT ODE) and as names ("forwardGears",
 * case-insensitive), all to the same typed values (core/messages.h); the forms seen are
 * in tsi_msg.forms. A brake or transmission value that is present but unreadable does not
 * reject the message: its field is -1 and its bit is in tsi_msg.unreadable. MapData
 * laneType is read by its non-null key (the eight-key object with nulls), from a one-key
 * object or a string; directionalUse, sharedWith, maneuvers and connectingLane.maneuver
 * in the same forms as wheelBrakes (plus short maneuver names: "straight", "left", …);
 * speedLimits[].type as an integer or a name. Unreadable MapData values are counted in
 * tsi_mapdata.unreadable (the first one described in first_unreadable).
 *
 * Ownership: tsi_decoder owns a growable token buffer reused across calls (one per
 * thread); the text passed in is borrowed for the call only. tsi_msg outputs are values.
 * tsi_mapdata / tsi_spat outputs own an arena: free with tsi_mapdata_free/tsi_spat_free
 * (also on error: they are left empty and safe to free). */
#ifndef TSI_VCC_DECODE_H
#define TSI_VCC_DECODE_H

#include <stddef.h>

#include "base/error.h"
#include "base/jsonw.h"
#include "core/json.h"
#include "core/messages.h"

#define TSI_MSG_MAX_TOKENS   4096      /* one BSM/PSM: ~100 in practice */
#define TSI_FRAME_MAX_TOKENS (1 << 22) /* one stream frame or --messages line */

typedef struct tsi_decoder {
    tsi_jtok *tok;
    int cap;
} tsi_decoder;

void tsi_decoder_init(tsi_decoder *dec);
void tsi_decoder_free(tsi_decoder *dec); /* NULL-safe */

/* One message object; the type is recognised by bsmJson / psmJson. */
int tsi_msg_decode(const char *js, size_t len, tsi_msg *out, tsi_error *err);
/* One message of a required type (TSI_E_UNKNOWN_TYPE for the other type). */
int tsi_bsm_decode(const char *js, size_t len, tsi_bsm *out, tsi_error *err);
int tsi_psm_decode(const char *js, size_t len, tsi_psm *out, tsi_error *err);
/* From an already parsed document: the object at token obj. want = 0 (any) or a
 * tsi_msg_type. */
int tsi_msg_from_json(const tsi_json *d, int obj, int want, tsi_msg *out, tsi_error *err);

/* Called once per message of a frame: index is the element's position (0 for a single
 * object); m is NULL when rc < 0 (err says why). */
typedef void (*tsi_frame_cb)(void *ud, int index, const tsi_msg *m, int rc, const tsi_error *err);

/* A stream frame (JSON array of messages; `[]` is a keepalive) or a single message
 * object. Each element is decoded independently: one bad element does not reject the
 * others. Returns the element count (>= 0), or a negative code when the frame itself is
 * unusable (malformed JSON, not an object or array). */
int tsi_frame_decode(tsi_decoder *dec, const char *js, size_t len, tsi_frame_cb cb, void *ud,
                     tsi_error *err);

/* MapData: one MapData object, or a JSON array of them (what /api/mapdata/decoded
 * returns). Invalid intersections are skipped and counted (out->nrejected, with the
 * first reason in out->first_error); the call fails only when the text is unusable. */
int tsi_mapdata_decode(const char *js, size_t len, tsi_mapdata *out, tsi_error *err);

/* SPaT JSON_COMPLETE: an object {intersections:[…]}, a JSON string holding one (the
 * list-of-strings form is parsed twice), or an array of either. */
int tsi_spat_decode(const char *js, size_t len, tsi_spat *out, tsi_error *err);

/* The J2735 bit strings the decoder reads (bit k of an n-bit field = 1 << (n-1-k)). */
typedef enum {
    TSI_BITS_WHEEL,     /* BrakeAppliedStatus, 5 bits */
    TSI_BITS_DIRECTION, /* LaneDirection, 2 bits */
    TSI_BITS_SHARING,   /* LaneSharing, 10 bits */
    TSI_BITS_MANEUVERS, /* AllowedManeuvers, 12 bits */
} tsi_bitfield;

int tsi_bits_nbits(tsi_bitfield f);
/* Writes the J2735 names of the bits set in value as a JSON array (value < 0: []). */
void tsi_bits_json(tsi_jsonw *w, tsi_bitfield f, int value);

#endif
