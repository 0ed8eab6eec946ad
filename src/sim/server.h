/* sim/server.h — `tsi sim`: a VCC Public API v3.1 look-alike (domain.md §1) on one port,
 * HTTP and WebSocket served by libwebsockets, driven by the traffic model (sim/model.h).
 *
 * REST: POST /api/auth/client (400 on bad credentials); GET /api/{bsm,psm}/current,
 * /api/{bsm,psm}/key, /api/mapdata/decoded, /api/mapdata/{id}/decoded, /api/mapdata,
 * /api/mapdata/{id} (base64 summaries), /api/spat, /api/spat/{id|all} (format UPER by
 * default, JSON, JSON_METADATA, JSON_COMPLETE); POST /api/{bsm,psm}/json (reply {msgCnt,
 * id}). Messages in the document's encodings, or the former string forms with
 * tsi_sim_cfg.legacy (sim/msg.h). Streams: /ws/bsm, /ws/psm, /ws/spat.
 * Control (no token): GET /sim/status, GET /sim/truth, GET|POST /sim/faults, GET /healthz.
 * docs/simulator.md describes every endpoint, the clock and the faults.
 *
 * Threading: one thread runs the lws event loop, the model ticks and the fan-out.
 * Ownership: tsi_sim_server_run borrows cfg for its whole run. */
#ifndef TSI_SIM_SERVER_H
#define TSI_SIM_SERVER_H

#include <signal.h>

#include "base/error.h"
#include "sim/model.h"

typedef struct tsi_sim_faults {
    double http_error_rate; /* 0..1: REST requests under /api answered 500 or 503 */
    int slow_ms;            /* delay added to REST responses under /api */
    double slow_rate;       /* 0..1: share of requests delayed (when slow_ms > 0) */
    double drop_rate;       /* 0..1 per stream frame: the server closes the socket after it */
    double duplicate_rate;  /* 0..1 per message: sent twice in the same frame */
    double malformed_rate;  /* 0..1 per message: a malformed message added beside it */
    int token_lifetime_s;   /* > 0: access tokens issued now live this long */
    int mapdata_withdrawn;  /* k > 0: the k-th intersection's MapData is no longer received
                             * (left out of /api/mapdata/decoded, its own answer 404), as
                             * when an RSU is taken out of service; its traffic goes on */
} tsi_sim_faults;

typedef struct tsi_sim_server_cfg {
    tsi_sim_cfg model;
    const char *bind; /* address to listen on */
    int port;         /* 0: any free port */
    double speed;     /* simulated seconds per wall second */
    const char *client_id, *client_secret;
    int auth_lifetime_s, refresh_lifetime_s, key_lifetime_s;
    int current_seconds; /* window of /api/{bsm,psm}/current */
    bool backpressure;   /* the model waits for stream readers more than 3 frames behind */
    tsi_sim_faults faults;
    const char *port_file; /* when set, the bound port is written there once listening */
    const char *tls_cert;  /* PEM certificate (chain): HTTPS + WSS on the port instead of */
    const char *tls_key;   /* HTTP + WS; both set or both NULL */
} tsi_sim_server_cfg;

/* Runs until *stop becomes non-zero (a signal handler sets it). Returns 0, or a
 * negative TSI_E_* with err set when the server could not start. */
int tsi_sim_server_run(const tsi_sim_server_cfg *cfg, volatile sig_atomic_t *stop, tsi_error *err);

/* Parses a fault set from a JSON object (keys as the struct fields, e.g.
 * {"http_error_rate":0.5,"slow_ms":200}); keys absent keep their value in f.
 * Returns 0, or TSI_E_JSON / TSI_E_INVALID / TSI_E_RANGE with err set. */
int tsi_sim_faults_parse(const char *js, size_t len, tsi_sim_faults *f, tsi_error *err);

/* Parses --start: "now" (the current minute), epoch milliseconds, or ISO 8601 UTC
 * "YYYY-MM-DDTHH:MM:SS[.fff]Z". Returns 0 or TSI_E_INVALID. */
int tsi_sim_parse_time(const char *s, int64_t *out_ms);

#endif
