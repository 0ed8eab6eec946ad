/* tests/harness/cluster_helper.h — a PostgreSQL cluster of a test's own, for the tests
 * that must stop PostgreSQL (the run's shared cluster cannot be stopped): `tsi db
 * start|stop` under a temporary TSI_HOME on a port of its own, and its removal.
 *
 * The directory is /tmp/tsi-<tag>-XXXXXX (mode 0755, so the server user can reach it),
 * TSI_HOME is <dir>/home; the harness remembers every cluster it made, so a teardown can
 * remove them all (th_private_cluster_remove_all) even after a failed assertion: each is
 * stopped (`tsi db stop`, then pg_ctl -m immediate if a server is still there), the data
 * directory behind a /var/lib/tsi/pg-* link is removed, then the temporary directory. */
#ifndef TSI_TEST_CLUSTER_HELPER_H
#define TSI_TEST_CLUSTER_HELPER_H

#include <limits.h>
#include <stddef.h>

typedef struct th_cluster {
    char dir[PATH_MAX];      /* the temporary directory */
    char home[PATH_MAX + 8]; /* dir/home = TSI_HOME */
    int port;                /* TSI_PG_PORT */
    char e_home[PATH_MAX + 24], e_port[32];
    /* "TSI_HOME=…", "TSI_PG_PORT=…", "TSI_DB_NAME=tsi", then NULL: a test may put up to
     * 4 entries of its own at env[3..6] (env[7] stays NULL) */
    const char *env[8];
} th_cluster;

/* Makes the directory and the environment of a cluster (not started). The port is the
 * first free one from TSI_PG_PORT + port_offset (+ a pid-dependent step, within 400).
 * Fails the test on error. */
void th_private_cluster_init(th_cluster *c, const char *tag, int port_offset);
/* The first free TCP port on 127.0.0.1 in [from, from + 400), searched from a
 * pid-dependent step (parallel tests start apart); fails the test when there is none. */
int th_port_near(int from);
/* Sets TSI_HOME, TSI_PG_PORT and TSI_DB_NAME in this process's environment (for tests
 * that connect in-process or run tsi with the inherited environment). */
void th_private_cluster_export(const th_cluster *c);
/* `tsi db start` (and `tsi migrate` when migrate) / `tsi db stop`; fail the test unless
 * they succeed. */
void th_private_cluster_start(th_cluster *c, int migrate);
void th_private_cluster_stop(th_cluster *c);
/* Stops the cluster whatever its state and removes its directories (errors ignored). */
void th_private_cluster_remove(const th_cluster *c);
/* th_private_cluster_remove for every cluster made by this process and not removed yet;
 * usable as (part of) a cmocka teardown. Keeps everything when TH_KEEP_CLUSTERS is set. */
void th_private_cluster_remove_all(void);

#endif
