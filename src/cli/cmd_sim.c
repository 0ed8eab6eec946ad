/* cli/cmd_sim.c — `tsi sim`: options, credentials from the environment, signals (the
 * simulator itself is sim/). */
#include <arpa/inet.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/options.h"
#include "cli/commands.h"
#include "sim/server.h"

const tsi_option tsi_sim_options[] = {
    {"intersections", TSI_OPT_INT, "10", "TSI_SIM_INTERSECTIONS",
     "number of simulated intersections (the first two on the Nutley St corridor)", "1..5000"},
    {"seed", TSI_OPT_INT, "1", "TSI_SIM_SEED", "random seed: the same seed gives the same traffic",
     "0..9223372036854775807"},
    {"port", TSI_OPT_INT, "8090", "TSI_SIM_PORT", "HTTP + WebSocket port (0: any free port)",
     "0..65535"},
    {"bind", TSI_OPT_STRING, "127.0.0.1", "TSI_SIM_BIND",
     "IPv4 or IPv6 address to listen on (0.0.0.0: every interface, as in a container)", NULL},
    {"port-file", TSI_OPT_PATH, NULL, NULL, "write the bound port to this file once listening",
     NULL},
    {"tls-cert", TSI_OPT_PATH, NULL, "TSI_SIM_TLS_CERT",
     "PEM certificate: serve HTTPS + WSS on the port (with --tls-key)", NULL},
    {"tls-key", TSI_OPT_PATH, NULL, "TSI_SIM_TLS_KEY", "PEM private key of --tls-cert", NULL},
    {"speed", TSI_OPT_DOUBLE, "1", "TSI_SIM_SPEED", "simulated seconds per wall-clock second",
     "0.01..100000"},
    {"start", TSI_OPT_STRING, "now", "TSI_SIM_START",
     "simulated clock at start: now, epoch ms, or ISO 8601 UTC (2026-11-25T07:00:00Z)", NULL},
    {"demand", TSI_OPT_DOUBLE, "1", "TSI_SIM_DEMAND", "multiplier of the daily traffic profile",
     "0..20"},
    {"vv-conflict-rate", TSI_OPT_DOUBLE, "2", "TSI_SIM_VV_CONFLICT_RATE",
     "injected vehicle-vehicle near misses per intersection-hour", "0..3600"},
    {"vru-conflict-rate", TSI_OPT_DOUBLE, "2", "TSI_SIM_VRU_CONFLICT_RATE",
     "injected vehicle-VRU near misses per intersection-hour", "0..3600"},
    {"hard-brake-rate", TSI_OPT_DOUBLE, "4", "TSI_SIM_HARD_BRAKE_RATE",
     "spontaneous hard-braking events per intersection-hour", "0..3600"},
    {"ped-rate", TSI_OPT_DOUBLE, "40", "TSI_SIM_PED_RATE",
     "pedestrians and cyclists per crosswalk-hour at the daily peak", "0..3600"},
    {"vcc-quirks", TSI_OPT_BOOL, "false", "TSI_SIM_VCC_QUIRKS",
     "traffic identified only by locationName (rsuName From_WebSocket), positions 300 m off the "
     "refPoint",
     NULL},
    {"encoding", TSI_OPT_ENUM, "document", "TSI_SIM_ENCODING",
     "document: the VCC v3.1 document's encodings (integer enums and bit fields, eight-key "
     "laneType objects, nulls present); legacy: the former string forms",
     "document|legacy"},
    {"tz-offset", TSI_OPT_INT, "-300", "TSI_SIM_TZ_OFFSET",
     "minutes east of UTC of the daily profile's local time", "-840..840"},
    {"auth-lifetime", TSI_OPT_INT, "3600", "TSI_SIM_AUTH_LIFETIME",
     "access token lifetime, seconds (expires_in)", "1..864000"},
    {"refresh-lifetime", TSI_OPT_INT, "36000", "TSI_SIM_REFRESH_LIFETIME",
     "refresh token lifetime, seconds", "1..8640000"},
    {"key-lifetime", TSI_OPT_INT, "60", "TSI_SIM_KEY_LIFETIME",
     "lifetime of a one-time stream key, seconds", "1..86400"},
    {"current-seconds", TSI_OPT_INT, "2", "TSI_SIM_CURRENT_SECONDS",
     "simulated seconds of traffic that /api/{bsm,psm}/current returns", "1..60"},
    {"truth-minutes", TSI_OPT_INT, "240", "TSI_SIM_TRUTH_MINUTES",
     "minutes of ground truth kept per intersection", "1..10080"},
    {"warmup", TSI_OPT_INT, "120", "TSI_SIM_WARMUP",
     "simulated seconds run before start so traffic is present at once", "0..3600"},
    {"turn-share", TSI_OPT_STRING, "0.15,0.15", "TSI_SIM_TURN_SHARE",
     "shares of vehicles turning left and right, L,R (each 0..1, L + R <= 1)", NULL},
    {"backpressure", TSI_OPT_ENUM, "on", "TSI_SIM_BACKPRESSURE",
     "on: the clock waits for a stream reader more than 3 frames behind (one stuck 10 s is "
     "left behind); off: slow readers lose their oldest frames",
     "on|off"},
    {"http-error-rate", TSI_OPT_DOUBLE, "0", NULL, "fault: share of /api requests answered 500/503",
     "0..1"},
    {"slow-ms", TSI_OPT_INT, "0", NULL, "fault: delay added to /api responses, ms", "0..600000"},
    {"slow-rate", TSI_OPT_DOUBLE, "1", NULL, "fault: share of /api responses delayed by slow-ms",
     "0..1"},
    {"drop-rate", TSI_OPT_DOUBLE, "0", NULL,
     "fault: per stream frame, chance the server then closes the socket", "0..1"},
    {"duplicate-rate", TSI_OPT_DOUBLE, "0", NULL, "fault: share of messages sent twice", "0..1"},
    {"malformed-rate", TSI_OPT_DOUBLE, "0", NULL,
     "fault: share of messages followed by a malformed one", "0..1"},
    {"short-token-lifetime", TSI_OPT_INT, "0", NULL,
     "fault: access tokens live this many seconds (0: auth-lifetime)", "0..864000"},
    {NULL, 0, NULL, NULL, NULL, NULL},
};

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static const char *env_or(const char *a, const char *b, const char *def, bool *is_default)
{
    const char *v = getenv(a);
    if (!v || !*v)
        v = getenv(b);
    if (v && *v) {
        *is_default = false;
        return v;
    }
    *is_default = true;
    return def;
}

int tsi_cmd_sim(int argc, char **argv)
{
    tsi_opts o;
    int rc = tsi_opts_parse(&o, "tsi sim",
                            "usage: tsi sim [--intersections N] [--seed S] [--port P] "
                            "[--speed X] [--start TIME] [options]\n\n"
                            "A VCC Public API v3.1 look-alike with deterministic traffic and "
                            "ground truth (docs/simulator.md).\n"
                            "Credentials: TSI_SIM_CLIENT_ID / TSI_SIM_CLIENT_SECRET (else "
                            "VCC_CLIENT_ID / VCC_CLIENT_SECRET, else tsi-sim / tsi-sim-secret).",
                            tsi_sim_options, 0, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    tsi_sim_server_cfg c;
    memset(&c, 0, sizeof c);
    tsi_sim_cfg_defaults(&c.model);
    c.model.n_intersections = (int)tsi_opts_int(&o, "intersections");
    c.model.seed = (uint64_t)tsi_opts_int(&o, "seed");
    if (tsi_sim_parse_time(tsi_opts_str(&o, "start"), &c.model.start_ms) < 0) {
        fprintf(stderr, "tsi sim: --start: not now, epoch ms or ISO 8601 UTC: '%s'\n",
                tsi_opts_str(&o, "start"));
        tsi_opts_free(&o);
        return 2;
    }
    c.model.demand = tsi_opts_double(&o, "demand");
    c.model.vv_rate = tsi_opts_double(&o, "vv-conflict-rate");
    c.model.vru_rate = tsi_opts_double(&o, "vru-conflict-rate");
    c.model.hard_brake_rate = tsi_opts_double(&o, "hard-brake-rate");
    c.model.ped_rate = tsi_opts_double(&o, "ped-rate");
    c.model.quirks = tsi_opts_bool(&o, "vcc-quirks");
    c.model.legacy = strcmp(tsi_opts_str(&o, "encoding"), "legacy") == 0;
    c.model.tz_offset_min = (int)tsi_opts_int(&o, "tz-offset");
    c.model.truth_minutes = (int)tsi_opts_int(&o, "truth-minutes");
    c.model.warmup_s = (int)tsi_opts_int(&o, "warmup");
    {
        const char *ts = tsi_opts_str(&o, "turn-share");
        char *end1 = NULL, *end2 = NULL;
        double tl = ts ? strtod(ts, &end1) : NAN, tr = NAN;
        if (end1 && end1 != ts && *end1 == ',')
            tr = strtod(end1 + 1, &end2);
        if (!end2 || end2 == end1 + 1 || *end2 || !(tl >= 0 && tl <= 1) || !(tr >= 0 && tr <= 1) ||
            tl + tr > 1) {
            fprintf(stderr, "tsi sim: --turn-share: L,R with shares 0..1 and L + R <= 1: '%s'\n",
                    ts ? ts : "");
            tsi_opts_free(&o);
            return 2;
        }
        c.model.turn_left = tl;
        c.model.turn_right = tr;
    }
    c.bind = tsi_opts_str(&o, "bind");
    {
        /* a numeric address only: libwebsockets would take any other word for the name of
         * a network interface and, finding none, listen nowhere while the sim runs on */
        unsigned char a[sizeof(struct in6_addr)];
        if (!c.bind ||
            (inet_pton(AF_INET, c.bind, a) != 1 && inet_pton(AF_INET6, c.bind, a) != 1)) {
            fprintf(stderr, "tsi sim: --bind must be an IPv4 or IPv6 address: '%s'\n",
                    c.bind ? c.bind : "");
            tsi_opts_free(&o);
            return 2;
        }
    }
    c.port = (int)tsi_opts_int(&o, "port");
    c.port_file = tsi_opts_str(&o, "port-file");
    c.tls_cert = tsi_opts_str(&o, "tls-cert");
    c.tls_key = tsi_opts_str(&o, "tls-key");
    if (c.tls_cert && !*c.tls_cert)
        c.tls_cert = NULL;
    if (c.tls_key && !*c.tls_key)
        c.tls_key = NULL;
    if (!c.tls_cert != !c.tls_key) {
        fprintf(stderr, "tsi sim: --tls-cert and --tls-key go together\n");
        tsi_opts_free(&o);
        return 2;
    }
    c.speed = tsi_opts_double(&o, "speed");
    c.auth_lifetime_s = (int)tsi_opts_int(&o, "auth-lifetime");
    c.refresh_lifetime_s = (int)tsi_opts_int(&o, "refresh-lifetime");
    c.key_lifetime_s = (int)tsi_opts_int(&o, "key-lifetime");
    c.current_seconds = (int)tsi_opts_int(&o, "current-seconds");
    c.backpressure = strcmp(tsi_opts_str(&o, "backpressure"), "on") == 0;
    c.faults.http_error_rate = tsi_opts_double(&o, "http-error-rate");
    c.faults.slow_ms = (int)tsi_opts_int(&o, "slow-ms");
    c.faults.slow_rate = tsi_opts_double(&o, "slow-rate");
    c.faults.drop_rate = tsi_opts_double(&o, "drop-rate");
    c.faults.duplicate_rate = tsi_opts_double(&o, "duplicate-rate");
    c.faults.malformed_rate = tsi_opts_double(&o, "malformed-rate");
    c.faults.token_lifetime_s = (int)tsi_opts_int(&o, "short-token-lifetime");
    bool def_id, def_secret;
    c.client_id = env_or("TSI_SIM_CLIENT_ID", "VCC_CLIENT_ID", "tsi-sim", &def_id);
    c.client_secret =
        env_or("TSI_SIM_CLIENT_SECRET", "VCC_CLIENT_SECRET", "tsi-sim-secret", &def_secret);
    if (def_secret)
        tsi_info("sim",
                 "credentials client_id=%s client_secret=tsi-sim-secret (the default: "
                 "set TSI_SIM_CLIENT_SECRET to change it)",
                 c.client_id);
    else
        tsi_info("sim", "credentials client_id=%s client_secret=(from the environment)",
                 c.client_id);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    tsi_error e = {0};
    rc = tsi_sim_server_run(&c, &stop_flag, &e);
    if (rc < 0) {
        char b[800];
        fprintf(stderr, "tsi sim: %s\n", tsi_error_str(&e, b, sizeof b));
    }
    tsi_opts_free(&o);
    return rc < 0 ? 1 : 0;
}
