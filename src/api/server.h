/* api/server.h — `tsi serve`: the HTTP/JSON API, the dashboard's static files, /metrics.
 *
 * libmicrohttpd with a thread pool; each worker thread owns one PostgreSQL connection
 * (role tsi_reader, prepared statements) and one DuckDB connection for the Parquet
 * fallback. See docs/api.md. */
#ifndef TSI_API_SERVER_H
#define TSI_API_SERVER_H

#include "base/options.h"

extern const tsi_option tsi_serve_options[];

int tsi_cmd_serve(int argc, char **argv);

#endif
