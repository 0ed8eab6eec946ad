/* tests/harness/ops_util.h — what the operations tests (issue 17) share: a private
 * embedded cluster of their own (the harness's th_private_cluster: tsi db start under a
 * temporary TSI_HOME on its own port), connections to it over its socket, and
 * starting/stopping a data directory with pg_ctl as the server user.
 * Compiled once in tests/harness (ops_util.c). */
#ifndef TSI_TEST_OPS_UTIL_H
#define TSI_TEST_OPS_UTIL_H

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/proc.h"
#include "cluster_helper.h"
#include "harness.h"

typedef th_cluster ops_cluster;

extern char ops_out[1 << 16];

/* the clusters a test made: on failure the teardown also stops the servers of their
 * restored and replica data directories (immediate mode) */
extern char ops_dirs[4][PATH_MAX];

int ops_pick_port(int base);

/* Makes the directory and environment of a private cluster (not started). */
void ops_cluster_init(ops_cluster *c, const char *tag, int port_base);

/* Runs `tsi args...` against the cluster; fails the test unless it exits `want`. */
void ops_tsi(ops_cluster *c, int want, const char *const *args);

/* The superuser's conninfo (Unix socket) of the cluster, from `tsi db url`. */
void ops_admin_conninfo(ops_cluster *c, char *buf, size_t len);

PGconn *ops_connect(const char *conninfo);

void ops_exec(PGconn *pc, const char *sql);

/* pg_ctl as the server user (root cannot run PostgreSQL). */
int ops_pg_ctl(const char *datadir, const char *action, int port);

/* cmocka teardown: stops any server left in a test's restored or replica directory,
 * then removes the test's clusters */
int ops_teardown(void **state);

#endif
