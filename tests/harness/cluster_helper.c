/* tests/harness/cluster_helper.c — see cluster_helper.h */
#include "cluster_helper.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/proc.h"
#include "harness.h"

#define PG_CTL       "/usr/lib/postgresql/15/bin/pg_ctl"
#define MAX_CLUSTERS 8

/* what removal needs of each cluster made (copies: a test's th_cluster may be gone) */
static struct {
    char dir[PATH_MAX];
    int port;
} made[MAX_CLUSTERS];

static int port_free(int port)
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

int th_port_near(int from)
{
    for (int i = 0; i < 400; i++) {
        int p = from + (int)((getpid() + i) % 400);
        if (p > 1024 && p < 65536 && port_free(p))
            return p;
    }
    fail_msg("no free port near %d", from);
    return -1;
}

static void set_env(th_cluster *c)
{
    snprintf(c->home, sizeof c->home, "%s/home", c->dir);
    snprintf(c->e_home, sizeof c->e_home, "TSI_HOME=%s", c->home);
    snprintf(c->e_port, sizeof c->e_port, "TSI_PG_PORT=%d", c->port);
    memset(c->env, 0, sizeof c->env);
    c->env[0] = c->e_home;
    c->env[1] = c->e_port;
    c->env[2] = "TSI_DB_NAME=tsi";
}

void th_private_cluster_init(th_cluster *c, const char *tag, int port_offset)
{
    memset(c, 0, sizeof *c);
    snprintf(c->dir, sizeof c->dir, "/tmp/tsi-%s-XXXXXX", tag);
    if (!mkdtemp(c->dir))
        fail_msg("mkdtemp: %s", strerror(errno));
    chmod(c->dir, 0755);
    const char *base = getenv("TSI_PG_PORT");
    c->port = th_port_near((base ? atoi(base) : 30000) + port_offset);
    set_env(c);
    for (int i = 0; i < MAX_CLUSTERS; i++)
        if (!made[i].dir[0]) {
            snprintf(made[i].dir, sizeof made[i].dir, "%s", c->dir);
            made[i].port = c->port;
            return;
        }
    fail_msg("more than %d private clusters in one test", MAX_CLUSTERS);
}

void th_private_cluster_export(const th_cluster *c)
{
    char p[16];
    snprintf(p, sizeof p, "%d", c->port);
    setenv("TSI_HOME", c->home, 1);
    setenv("TSI_PG_PORT", p, 1);
    setenv("TSI_DB_NAME", "tsi", 1);
}

static void tsi_must(th_cluster *c, const char *a, const char *b)
{
    static char out[1 << 15];
    int rc =
        th_run_tsi((const char *[]){a, b, "--log-level", "warn", NULL}, c->env, out, sizeof out);
    if (rc != 0)
        fail_msg("tsi %s %s (TSI_HOME=%s port %d) exited %d:\n%s", a, b ? b : "", c->home, c->port,
                 rc, out);
}

void th_private_cluster_start(th_cluster *c, int migrate)
{
    tsi_must(c, "db", "start");
    if (migrate) {
        static char out[1 << 15];
        int rc = th_run_tsi((const char *[]){"migrate", "--log-level", "warn", NULL}, c->env, out,
                            sizeof out);
        if (rc != 0)
            fail_msg("tsi migrate (TSI_HOME=%s) exited %d:\n%s", c->home, rc, out);
    }
}

void th_private_cluster_stop(th_cluster *c)
{
    tsi_must(c, "db", "stop");
}

static void rm_rf(const char *path)
{
    char *argv[] = {"rm", "-rf", (char *)path, NULL};
    tsi_proc_run(argv, NULL, NULL, 0, NULL);
}

void th_private_cluster_remove(const th_cluster *c)
{
    if (!c->dir[0])
        return;
    th_cluster t;
    memset(&t, 0, sizeof t);
    snprintf(t.dir, sizeof t.dir, "%s", c->dir);
    t.port = c->port;
    set_env(&t);
    char out[4096];
    th_run_tsi((const char *[]){"db", "stop", "--log-level", "error", NULL}, t.env, out,
               sizeof out);
    char link[PATH_MAX + 16], real[PATH_MAX] = "", pid[PATH_MAX + 32];
    snprintf(link, sizeof link, "%s/pg", t.home);
    if (!realpath(link, real))
        real[0] = '\0';
    /* a server `tsi db stop` could not stop (a test that failed half-way) */
    snprintf(pid, sizeof pid, "%s/postmaster.pid", real[0] ? real : link);
    if (access(pid, F_OK) == 0) {
        char *argv[] = {PG_CTL, "-D", real[0] ? real : link, "-m", "immediate", "-w", "stop", NULL};
        tsi_proc_run(argv, geteuid() == 0 ? "postgres" : NULL, NULL, 0, NULL);
    }
    if (strncmp(real, "/var/lib/tsi/pg-", 16) == 0)
        rm_rf(real);
    rm_rf(t.dir);
    for (int i = 0; i < MAX_CLUSTERS; i++)
        if (strcmp(made[i].dir, t.dir) == 0)
            made[i].dir[0] = '\0';
}

void th_private_cluster_remove_all(void)
{
    if (getenv("TH_KEEP_CLUSTERS"))
        return;
    for (int i = 0; i < MAX_CLUSTERS; i++)
        if (made[i].dir[0]) {
            th_cluster t;
            memset(&t, 0, sizeof t);
            snprintf(t.dir, sizeof t.dir, "%s", made[i].dir);
            t.port = made[i].port;
            th_private_cluster_remove(&t);
        }
}
