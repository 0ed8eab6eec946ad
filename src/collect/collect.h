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

extern const tsi_option tsi_collect_options[];

int tsi_cmd_collect(int argc, char **argv);

#endif
