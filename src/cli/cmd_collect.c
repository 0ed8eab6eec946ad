/* cli/cmd_collect.c — `tsi collect`: the collector's option table and usage; the daemon
 * (collect/collect.h) runs on the parsed options and reads them again, through
 * reload_options, on SIGHUP. */
#include <stdio.h>

#include "base/options.h"
#include "cli/commands.h"
#include "collect/collect.h"

const tsi_option tsi_collect_options[] = {
    {"vcc-url", TSI_OPT_STRING, NULL, "VCC_BASE_URL",
     "VCC base URL (scripts/run points it at tsi sim)", NULL},
    {"source", TSI_OPT_ENUM, "auto", "TSI_COLLECT_SOURCE",
     "auto: streams, REST polling while a stream is down; poll: REST only", "auto|poll"},
    {"flush-seconds", TSI_OPT_INT, "60", "TSI_FLUSH_SECONDS",
     "raw archive flush interval (a new Parquet file per type and hour each time)", "1..3600"},
    {"grace-seconds", TSI_OPT_INT, "10", "TSI_GRACE_SECONDS",
     "seconds a minute window waits for late messages", "0..600"},
    {"radius-m", TSI_OPT_DOUBLE, "150", "TSI_RADIUS_M",
     "assignment radius around an intersection's reference point", "1..5000"},
    {"location-map", TSI_OPT_PATH, NULL, "TSI_LOCATION_MAP",
     "JSON object mapping locationName to intersection id (wins over geometry)", NULL},
    {"max-skew-seconds", TSI_OPT_INT, "120", "TSI_MAX_SKEW_SECONDS",
     "a message dated this far ahead of this machine's clock is counted as clock_skew, not "
     "indexed (0: off, e.g. for a simulator run faster than real time)",
     "0..31536000"},
    {"poll-ms", TSI_OPT_INT, "1000", "TSI_POLL_MS",
     "REST polling interval of a stream that is down", "100..600000"},
    {"mapdata-seconds", TSI_OPT_INT, "300", "TSI_MAPDATA_SECONDS", "MapData refresh interval",
     "5..86400"},
    {"mapdata-full-seconds", TSI_OPT_INT, "3600", "TSI_MAPDATA_FULL_SECONDS",
     "how often the MapData refresh asks for the full set (every MapData the VCC received in "
     "its window, a day by default) instead of the changes: an intersection absent from it is "
     "retired, leaving current but not history (0: never)",
     "0..604800"},
    {"spat-seconds", TSI_OPT_INT, "10", "TSI_SPAT_SECONDS",
     "SPaT polling interval for the archive (0: off)", "0..86400"},
    {"constants-seconds", TSI_OPT_INT, "600", "TSI_CONSTANTS_SECONDS",
     "how often the normalisation constants and EB priors are reloaded", "10..86400"},
    {"min-gap-ms", TSI_OPT_INT, "100", "VCC_MIN_GAP_MS", "polite minimum gap between VCC requests",
     "0..60000"},
    {"timeout-ms", TSI_OPT_INT, "15000", "VCC_TIMEOUT_MS", "timeout of one VCC request",
     "100..600000"},
    {"vcc-ca-file", TSI_OPT_PATH, NULL, "TSI_VCC_CA_FILE",
     "PEM CA bundle the VCC's https:// and wss:// certificates must chain to (default: the "
     "system's)",
     NULL},
    {"tls-insecure", TSI_OPT_BOOL, "false", "VCC_TLS_INSECURE",
     "accept any certificate on wss:// (tests only)", NULL},
    {"archive-dir", TSI_OPT_PATH, NULL, "TSI_ARCHIVE_DIR",
     "the Parquet archive (default $TSI_HOME/archive)", NULL},
    {"spool-dir", TSI_OPT_PATH, NULL, "TSI_SPOOL_DIR",
     "the database spool (default $TSI_HOME/spool)", NULL},
    {"db-writers", TSI_OPT_INT, "2", "TSI_DB_WRITERS",
     "database writer connections; realtime rows are split among them by intersection "
     "(read at start, not on SIGHUP)",
     "1..16"},
    {"timezone", TSI_OPT_STRING, "UTC", "TSI_TIMEZONE",
     "IANA time zone of hour_of_day and day_of_week", NULL},
    {"no-db", TSI_OPT_BOOL, "false", "TSI_COLLECT_NO_DB",
     "archive only: no database writes (the indices Parquet is still written)", NULL},
    {"status-seconds", TSI_OPT_INT, "30", "TSI_STATUS_SECONDS", "status line interval", "1..3600"},
    {"duration-seconds", TSI_OPT_INT, "0", NULL, "stop after this long (0: run until SIGTERM)",
     "0..100000000"},
    {NULL, 0, NULL, NULL, NULL, NULL},
};

static const char USAGE[] = "usage: tsi collect [options]   (VCC_CLIENT_ID / VCC_CLIENT_SECRET "
                            "from the environment)";

/* the command line kept for SIGHUP: the options parsed again (environment and
 * configuration files may have changed) */
typedef struct {
    int argc;
    char **argv;
} command_line;

static int reload_options(void *ud, tsi_opts *o)
{
    const command_line *cl = ud;
    return tsi_opts_parse(o, "tsi collect", USAGE, tsi_collect_options, 0, cl->argc, cl->argv);
}

int tsi_cmd_collect(int argc, char **argv)
{
    tsi_opts o;
    int rc = tsi_opts_parse(&o, "tsi collect", USAGE, tsi_collect_options, 0, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    command_line cl = {argc, argv};
    rc = tsi_collect_run(&o, reload_options, &cl);
    tsi_opts_free(&o);
    return rc;
}
