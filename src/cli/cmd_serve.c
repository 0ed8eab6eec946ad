/* cli/cmd_serve.c — `tsi serve`: the option table, usage and --print-sql of the API
 * server; api/server.h runs the server on the parsed options. */
#include <stdio.h>
#include <string.h>

#include "api/queries.h"
#include "api/server.h"
#include "base/options.h"
#include "cli/commands.h"

const tsi_option tsi_serve_options[] = {
    {"port", TSI_OPT_INT, "8080", "TSI_PORT", "HTTP port of tsi serve (0 = any free port)",
     "0..65535"},
    {"bind", TSI_OPT_STRING, "0.0.0.0", "TSI_BIND", "address to listen on", NULL},
    {"source", TSI_OPT_ENUM, "auto", "TSI_SOURCE",
     "where reads come from: auto (PostgreSQL, Parquet while it is down), postgres, parquet",
     "auto|postgres|parquet"},
    {"threads", TSI_OPT_INT, "4", "TSI_API_THREADS",
     "worker threads (each holds one PostgreSQL connection; the server adds a monitor and up to "
     "one helper per two cores)",
     "1..256"},
    {"web-dir", TSI_OPT_PATH, NULL, "TSI_WEB_DIR",
     "dashboard files served at / (default web/dist of the working or source directory)", NULL},
    {"max-query", TSI_OPT_INT, "65536", "TSI_API_MAX_QUERY", "largest query string, bytes",
     "256..1048576"},
    {"max-header", TSI_OPT_INT, "131072", "TSI_API_MAX_HEADER",
     "memory for a request's headers and query, bytes", "8192..4194304"},
    {"gzip-min", TSI_OPT_INT, "1024", "TSI_API_GZIP_MIN",
     "smallest body compressed when the client accepts gzip, bytes", "0..1073741824"},
    {"access-log", TSI_OPT_ENUM, "on", "TSI_ACCESS_LOG", "one log line per request", "on|off"},
    {"drain-seconds", TSI_OPT_INT, "10", "TSI_API_DRAIN",
     "on SIGTERM, how long in-flight requests may finish", "0..600"},
    {"statement-timeout-ms", TSI_OPT_INT, "30000", "TSI_API_STATEMENT_TIMEOUT_MS",
     "longest a query of the API may run before it is cancelled (then answered 503, or from "
     "Parquet in auto mode)",
     "100..3600000"},
    {"stale-seconds", TSI_OPT_INT, "300", "TSI_STALE_SECONDS",
     "age beyond which an intersection's current index is stale (v2: stale, age_seconds; the "
     "dashboard greys it; spatial risk filters skip it)",
     "1..604800"},
    {"tile-url", TSI_OPT_STRING, NULL, "TSI_TILE_URL",
     "map tile URL template for the dashboard, served by GET /api/v1/config (unset = null)", NULL},
    {"timezone", TSI_OPT_STRING, "UTC", "TSI_TIMEZONE",
     "IANA time zone of the API's dates, day/week/month buckets, hour_of_day and day_of_week",
     NULL},
    {"print-sql", TSI_OPT_STRING, NULL, NULL,
     "print the SQL of one named statement (or 'list') and exit: for EXPLAIN and pgbench", NULL},
    {NULL, 0, NULL, NULL, NULL, NULL},
};

/* --print-sql NAME|list: the SQL of a named statement (for EXPLAIN and pgbench), or the
 * server itself. */
static int serve(const tsi_opts *o)
{
    const char *ps = tsi_opts_str(o, "print-sql");
    if (ps) {
        int found = 0;
        for (const tsi_api_stmt *st = tsi_api_stmts; st->name; st++) {
            if (strcmp(ps, "list") == 0)
                printf("%s\n", st->name);
            else if (strcmp(ps, st->name) == 0) {
                printf("%s;\n", st->sql);
                found = 1;
            }
        }
        int bad = !found && strcmp(ps, "list") != 0;
        if (bad)
            fprintf(stderr, "tsi serve: no statement named '%s' (--print-sql list)\n", ps);
        return bad ? 2 : 0;
    }
    return tsi_serve_run(o);
}

int tsi_cmd_serve(int argc, char **argv)
{
    return tsi_cli_run("tsi serve",
                       "usage: tsi serve [--port P] [--source auto|postgres|parquet]\n\n"
                       "Serves the API (/api/v1/...), /health, /metrics and the dashboard.",
                       tsi_serve_options, serve, argc, argv);
}
