/* collect/collect.h — `tsi collect`, the collector daemon.
 *
 * Threads: one per WebSocket stream (BSM, PSM: a fresh key per connection, reconnect
 * with backoff and jitter), one poller (MapData every --mapdata-seconds, SPaT every
 * --spat-seconds, and REST /current polling of a stream that is down), the pipeline
 * thread (main: decode, archive, windows, indices, spool) and the database writer
 * (db/ingest.h). Bodies travel from the network threads to the pipeline through a queue.
 *
 * Signals: SIGTERM/SIGINT stop cleanly (streams closed, every open window closed and
 * written, the archive flushed, the spool fsync'd: rows not yet in the database stay in
 * the spool for the next start); SIGHUP reloads the configuration (intervals, log level)
 * and refetches MapData and the constants. A status line is logged every
 * --status-seconds and the counters are written as JSON to $TSI_HOME/run/collect.json
 * (temporary name, then rename) for the metrics endpoint. */
#ifndef TSI_COLLECT_COLLECT_H
#define TSI_COLLECT_COLLECT_H

#include "base/options.h"

/* Fills *o with the options read again (the same command line; the environment and the
 * configuration files may have changed); returns 0, non-zero when they are now invalid
 * (the daemon keeps the old ones). */
typedef int (*tsi_collect_reload_fn)(void *ud, tsi_opts *o);

/* Runs the daemon on options parsed with the table of cli/cmd_collect.c until SIGTERM/
 * SIGINT or --duration-seconds; on SIGHUP, reload(ud, ...) gives the new options (reload
 * may be NULL: the configuration is then kept). Returns the exit status: 0 after a clean
 * stop, 1 on failure, 2 for a bad option value (no VCC, a bad --timezone). */
int tsi_collect_run(const tsi_opts *o, tsi_collect_reload_fn reload, void *ud);

#endif
