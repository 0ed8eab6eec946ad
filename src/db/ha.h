/* db/ha.h — the high-availability formation on pg_auto_failover (issue 30): a monitor and
 * two data nodes of the embedded cluster, each run by its own `pg_autoctl run` keeper,
 * under one directory (TSI_HA_DIR, default $TSI_HOME/ha), on loopback ports TSI_HA_PORT
 * (monitor), +1 (node1), +2 (node2). Its command line, `tsi db ha`, is
 * cli/cmd_db_ha.c.
 *
 * The nodes carry the embedded cluster's configuration, written by cluster.c's functions
 * (tsi.conf, pg_hba.conf, certificates, initdb): TLS verify-full with the role
 * certificates of tsi_db_certs_dir(), PostGIS, pg_cron with background workers,
 * pg_partman, pgaudit; pg_autoctl's own settings come first in postgresql.conf and tsi.conf
 * last, so ours win (memory, which pg_autoctl sizes from the machine's RAM). pg_autoctl's
 * roles (autoctl_node, pgautofailover_monitor, pgautofailover_replicator) log in with
 * the client certificate `tsi_ha` (pg_ident.conf maps its CN to them): no password exists.
 * As root the servers and keepers run as the postgres user; the directory moves to
 * /var/lib/tsi when that user cannot reach it (as $TSI_HOME/pg does).
 *
 * Layout: monitor/, node1/, node2/ (data directories), run/ (sockets, keeper pid files),
 * certs/ (copies the postgres user reads), cfg/ and data/ (pg_autoctl's state), *.log
 * (keeper output), formation (ports and socket: what conn.c reads to connect).
 *
 * The monitor's timeouts: production keeps pg_auto_failover's defaults (a failover
 * after ~30-50 s); TSI_HA_TIMEOUTS=tight (tests, development) detects a dead primary in
 * a few seconds. */
#ifndef TSI_DB_HA_H
#define TSI_DB_HA_H

#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"
#include "db/place.h"

/* One data node as the monitor sees it. */
typedef struct {
    char name[64];
    int port;
    char reported[32];   /* reportedstate: primary, secondary, single, catchingup, ... */
    char assigned[32];   /* goalstate */
    bool healthy;        /* the monitor's last health check succeeded */
    bool primary;        /* reported and assigned primary/single/wait_primary */
    long long lag_bytes; /* the primary's reported LSN minus this node's (0 on the primary) */
} tsi_ha_node;

typedef struct {
    tsi_ha_node nodes[8];
    int nnodes;
    int primary;          /* index into nodes, -1 when there is none */
    double last_failover; /* epoch seconds of the last promotion, 0 when none */
    int failovers;        /* promotions since the formation was made */
} tsi_ha_state;

/* Makes what is missing (monitor, node1 as primary with the bootstrap and migrations,
 * node2 as its secondary), then starts everything. Idempotent. */
int tsi_ha_create(tsi_error *err);
/* Starts the keepers that do not run; waits until a primary is serving. */
int tsi_ha_start(tsi_error *err);
/* Stops the keepers (nodes, then the monitor). Idempotent. */
int tsi_ha_stop(tsi_error *err);
/* Asks the monitor for a switchover and waits (up to timeout_s) for the other node to
 * become primary and the old one secondary again. */
int tsi_ha_switchover(int timeout_s, tsi_error *err);
/* The formation as the monitor sees it. */
int tsi_ha_state_read(tsi_ha_state *s, tsi_error *err);
/* Waits up to timeout_s for a primary and, when want_secondary, a secondary. */
int tsi_ha_wait(bool want_secondary, int timeout_s, tsi_error *err);
/* The pid of a node's keeper (`pg_autoctl run`, a process group leader), 0 if none. */
int tsi_ha_keeper_pid(const char *node);

#endif
