/* api/server.h — `tsi serve`: the HTTP/JSON API, the dashboard's static files, /metrics.
 *
 * libmicrohttpd with a thread pool; each worker thread owns one PostgreSQL connection
 * (role tsi_reader, prepared statements) and one DuckDB connection for the Parquet
 * fallback. See docs/api.md. */
#ifndef TSI_API_SERVER_H
#define TSI_API_SERVER_H

#include "base/options.h"

/* Runs the server on options parsed with the table of cli/cmd_serve.c (--port, --bind,
 * --source, --threads, ...) until SIGTERM/SIGINT, then drains. Returns the exit status:
 * 0 after a clean stop, 1 when it cannot listen, 2 for a bad option value. */
int tsi_serve_run(const tsi_opts *o);

#endif
