/* db/place.h — where the embedded database lives, read by everything that connects to it
 * or runs it: the data directory ($TSI_HOME/pg, or the directory it links to, e.g. under
 * /var/lib/tsi when the postgres user cannot reach $TSI_HOME), the server's socket
 * directory, the HA formation's directory (TSI_HA_DIR, default $TSI_HOME/ha) and its
 * `formation` file (ports and socket, written by db/ha.c).
 *
 * These facts sit below db/conn.c, which reads them to build a connection, and below
 * db/cluster.c and db/ha.c, which make the directories and use conn.c: so no two modules
 * of db/ include each other. The names keep the prefixes of the rooms whose facts they
 * are (tsi_cluster_*, tsi_ha_*); cluster.h and ha.h include this header. */
#ifndef TSI_DB_PLACE_H
#define TSI_DB_PLACE_H

#include <stddef.h>

#include "base/error.h"

/* The directory `link` points to (realpath), or `link` itself when it does not exist. */
void tsi_cluster_resolve(const char *link, char *buf, size_t len);

/* $TSI_HOME/pg: the data directory, or the link to it where the data lives elsewhere. */
void tsi_cluster_data_link(char *buf, size_t len);

/* The real data directory (the target of $TSI_HOME/pg when it is a link). */
void tsi_cluster_data_dir(char *buf, size_t len);

/* Directory of the server's Unix socket (the data directory, or /tmp when that path is
 * too long for a socket). Fails when the cluster was never initialised. */
int tsi_cluster_socket_dir(char *buf, size_t len, tsi_error *err);

#define TSI_HA_NODES 2

/* What conn.c needs to reach the formation (the `formation` file). */
typedef struct {
    int monitor_port;
    int node_port[TSI_HA_NODES];
    char socket_dir[256];
} tsi_ha_formation;

/* TSI_HA_DIR, else $TSI_HOME/ha (the link when the data lives in /var/lib/tsi). */
void tsi_ha_dir(char *buf, size_t len);
/* 1 and f filled when a formation exists (its `formation` file), 0 when not. */
int tsi_ha_formation_read(tsi_ha_formation *f);

#endif
