/* tests/integration/ops_util.h — what the operations tests (issue 17) share: a private
 * embedded cluster of their own (tsi db start under a temporary TSI_HOME on its own
 * port, reachable by the postgres user), connections to it over its socket, and
 * starting/stopping a data directory with pg_ctl as the server user.
 * Header-only (static functions): each test executable includes it once. */
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
#include "harness.h"

typedef struct ops_cluster {
    char dir[PATH_MAX];  /* temporary directory (0755) */
    char home[PATH_MAX]; /* dir/home = TSI_HOME */
    int port;
    char e_home[PATH_MAX + 16], e_port[32];
    const char *env[8];
} ops_cluster;

static char ops_out[1 << 16];

/* the clusters a test made: on failure the teardown stops every server under their
 * directories (immediate mode) and removes them, so a failed run leaves nothing behind */
static char ops_dirs[4][PATH_MAX];

static int ops_port_free(int port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0)
        return 0;
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = bind(s, (struct sockaddr *)&a, sizeof a) == 0;
    close(s);
    return ok;
}

/* a free port in [base, base+400) starting at a pid-dependent offset */
static int ops_pick_port(int base)
{
    for (int i = 0; i < 400; i++) {
        int p = base + (int)((getpid() + i) % 400);
        if (ops_port_free(p))
            return p;
    }
    fail_msg("no free port near %d", base);
    return -1;
}

static void ops_rm_rf(const char *path)
{
    char *argv[] = {"rm", "-rf", (char *)path, NULL};
    tsi_proc_run(argv, NULL, NULL, 0, NULL);
}

/* Makes the directory and environment of a private cluster (not started). */
static void ops_cluster_init(ops_cluster *c, const char *tag, int port_base)
{
    memset(c, 0, sizeof *c);
    snprintf(c->dir, sizeof c->dir, "/tmp/tsi-%s-XXXXXX", tag);
    if (!mkdtemp(c->dir))
        fail_msg("mkdtemp: %s", strerror(errno));
    chmod(c->dir, 0755);
    for (int i = 0; i < 4; i++)
        if (!ops_dirs[i][0]) {
            snprintf(ops_dirs[i], sizeof ops_dirs[i], "%s", c->dir);
            break;
        }
    snprintf(c->home, sizeof c->home, "%s/home", c->dir);
    const char *base = getenv("TSI_PG_PORT");
    c->port = ops_pick_port((base ? atoi(base) : 30000) + port_base);
    snprintf(c->e_home, sizeof c->e_home, "TSI_HOME=%s", c->home);
    snprintf(c->e_port, sizeof c->e_port, "TSI_PG_PORT=%d", c->port);
    c->env[0] = c->e_home;
    c->env[1] = c->e_port;
    c->env[2] = "TSI_DB_NAME=tsi";
    c->env[3] = "TSI_LOG_LEVEL=warn";
    c->env[4] = NULL;
}

/* Runs `tsi args...` against the cluster; fails the test unless it exits `want`. */
static void ops_tsi(ops_cluster *c, int want, const char *const *args)
{
    int rc = th_run_tsi(args, c->env, ops_out, sizeof ops_out);
    if (rc != want) {
        char cmd[512] = "";
        for (const char *const *a = args; *a; a++) {
            strncat(cmd, *a, sizeof cmd - strlen(cmd) - 2);
            strncat(cmd, " ", sizeof cmd - strlen(cmd) - 1);
        }
        fail_msg("tsi %s exited %d (want %d):\n%s", cmd, rc, want, ops_out);
    }
}

/* The superuser's conninfo (Unix socket) of the cluster, from `tsi db url`. */
static void ops_admin_conninfo(ops_cluster *c, char *buf, size_t len)
{
    ops_tsi(c, 0, (const char *[]){"db", "url", "--role", "postgres", NULL});
    snprintf(buf, len, "%s", ops_out);
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        buf[--n] = '\0';
}

static PGconn *ops_connect(const char *conninfo)
{
    PGconn *pc = PQconnectdb(conninfo);
    if (PQstatus(pc) != CONNECTION_OK)
        fail_msg("cannot connect (%s): %s", conninfo, PQerrorMessage(pc));
    PQclear(PQexec(pc, "SET client_min_messages = warning"));
    return pc;
}

static void ops_exec(PGconn *pc, const char *sql)
{
    PGresult *r = PQexec(pc, sql);
    int st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(r));
        PQclear(r);
        fail_msg("%s\n%s", sql, msg);
    }
    PQclear(r);
}

/* pg_ctl as the server user (root cannot run PostgreSQL). */
static int ops_pg_ctl(const char *datadir, const char *action, int port)
{
    char opts[PATH_MAX + 64], log[PATH_MAX + 32];
    snprintf(opts, sizeof opts, "-p %d -k %s", port, datadir);
    snprintf(log, sizeof log, "%s/ops-test.log", datadir);
    char *start[] = {"/usr/lib/postgresql/15/bin/pg_ctl",
                     "-D",
                     (char *)datadir,
                     "-o",
                     opts,
                     "-l",
                     log,
                     "-w",
                     "-t",
                     "120",
                     "start",
                     NULL};
    char *stop[] = {"/usr/lib/postgresql/15/bin/pg_ctl",
                    "-D",
                    (char *)datadir,
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    "120",
                    "stop",
                    NULL};
    char out[4096];
    int rc = tsi_proc_run(strcmp(action, "start") == 0 ? start : stop,
                          geteuid() == 0 ? "postgres" : NULL, out, sizeof out, NULL);
    if (rc != 0)
        fprintf(stderr, "pg_ctl %s %s: rc=%d %s\n", action, datadir, rc, out);
    return rc;
}

/* cmocka teardown: stops any server left in a test's directories, removes them */
static int ops_teardown(void **state)
{
    (void)state;
    static const char *const subs[] = {"home/pg", "restored", "replica"};
    if (getenv("OPS_KEEP")) /* keep the directories (and servers) to look at them */
        return 0;
    for (int i = 0; i < 4; i++) {
        if (!ops_dirs[i][0])
            continue;
        for (int k = 0; k < 3; k++) {
            char d[PATH_MAX + 16], pid[PATH_MAX + 32];
            snprintf(d, sizeof d, "%s/%s", ops_dirs[i], subs[k]);
            snprintf(pid, sizeof pid, "%s/postmaster.pid", d);
            if (access(pid, F_OK) != 0)
                continue;
            char *argv[] = {"/usr/lib/postgresql/15/bin/pg_ctl",
                            "-D",
                            d,
                            "-m",
                            "immediate",
                            "-w",
                            "stop",
                            NULL};
            tsi_proc_run(argv, geteuid() == 0 ? "postgres" : NULL, NULL, 0, NULL);
        }
        ops_rm_rf(ops_dirs[i]);
        ops_dirs[i][0] = '\0';
    }
    return 0;
}

#endif
