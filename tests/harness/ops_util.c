/* tests/harness/ops_util.c — see ops_util.h */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ops_util.h"

char ops_out[1 << 16];
char ops_dirs[4][PATH_MAX];
int ops_pick_port(int base)
{
    return th_port_near(base);
}

void ops_cluster_init(ops_cluster *c, const char *tag, int port_base)
{
    th_private_cluster_init(c, tag, port_base);
    c->env[3] = "TSI_LOG_LEVEL=warn";
    for (int i = 0; i < 4; i++)
        if (!ops_dirs[i][0]) {
            snprintf(ops_dirs[i], sizeof ops_dirs[i], "%s", c->dir);
            break;
        }
}

void ops_tsi(ops_cluster *c, int want, const char *const *args)
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

void ops_admin_conninfo(ops_cluster *c, char *buf, size_t len)
{
    ops_tsi(c, 0, (const char *[]){"db", "url", "--role", "postgres", NULL});
    snprintf(buf, len, "%s", ops_out);
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        buf[--n] = '\0';
}

PGconn *ops_connect(const char *conninfo)
{
    PGconn *pc = PQconnectdb(conninfo);
    if (PQstatus(pc) != CONNECTION_OK)
        fail_msg("cannot connect (%s): %s", conninfo, PQerrorMessage(pc));
    PQclear(PQexec(pc, "SET client_min_messages = warning"));
    return pc;
}

void ops_exec(PGconn *pc, const char *sql)
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

int ops_pg_ctl(const char *datadir, const char *action, int port)
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

int ops_teardown(void **state)
{
    (void)state;
    static const char *const subs[] = {"restored", "replica"};
    if (getenv("OPS_KEEP")) /* keep the directories (and servers) to look at them */
        return 0;
    for (int i = 0; i < 4; i++) {
        if (!ops_dirs[i][0])
            continue;
        for (int k = 0; k < 2; k++) {
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
        ops_dirs[i][0] = '\0';
    }
    th_private_cluster_remove_all();
    return 0;
}
