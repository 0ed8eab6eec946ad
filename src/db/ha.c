/* db/ha.c — see ha.h */
#include "db/ha.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/options.h"
#include "base/proc.h"
#include "db/cluster.h"
#include "db/conn.h"
#include "db/result.h"
#include "db/migrate.h"

/* pg_autoctl's roles log in with the tsi_ha certificate: pg_ident maps its CN to them */
static const char HA_HBA[] =
    "# pg_auto_failover's roles (written by `tsi db ha`): TLS and the tsi_ha certificate\n"
    "hostssl all          autoctl_node,pgautofailover_monitor  127.0.0.1/32  cert map=tsi_ha\n"
    "hostssl replication  pgautofailover_replicator            127.0.0.1/32  cert map=tsi_ha\n"
    "hostssl all          pgautofailover_replicator            127.0.0.1/32  cert map=tsi_ha\n";
static const char HA_IDENT[] = "# written by `tsi db ha`\n"
                               "tsi_ha  tsi_ha  autoctl_node\n"
                               "tsi_ha  tsi_ha  pgautofailover_monitor\n"
                               "tsi_ha  tsi_ha  pgautofailover_replicator\n";

/* pg_autoctl sizes memory from the machine's RAM (GBs on a large host): ours win */
static const char NODE_EXTRA[] = "# pg_autoctl's computed tuning, overridden\n"
                                 "work_mem = '16MB'\n"
                                 "maintenance_work_mem = '128MB'\n"
                                 "effective_cache_size = '1GB'\n"
                                 "wal_keep_size = '512MB'\n"
                                 "max_replication_slots = 12\n"
                                 "wal_log_hints = on\n";
static const char MONITOR_EXTRA[] = "shared_buffers = '64MB'\n"
                                    "work_mem = '4MB'\n"
                                    "maintenance_work_mem = '64MB'\n"
                                    "effective_cache_size = '256MB'\n"
                                    "timezone = 'UTC'\n";
/* TSI_HA_TIMEOUTS=tight: a dead primary is noticed in ~3 s (defaults: 5 s checks, 2
 * retries 2 s apart, unhealthy after 20 s, demote after 30 s) */
static const char MONITOR_TIGHT[] = "# TSI_HA_TIMEOUTS=tight\n"
                                    "pgautofailover.health_check_period = 1000\n"
                                    "pgautofailover.health_check_timeout = 1000\n"
                                    "pgautofailover.health_check_max_retries = 1\n"
                                    "pgautofailover.health_check_retry_delay = 500\n"
                                    "pgautofailover.node_considered_unhealthy_timeout = 2000\n"
                                    "pgautofailover.primary_demote_timeout = 3000\n"
                                    "pgautofailover.startup_grace_period = 10000\n";

static int base_port(void)
{
    const char *p = tsi_env("TSI_HA_PORT");
    int port = p ? atoi(p) : 55440;
    return (port > 0 && port < 65534) ? port : 55440;
}

static bool tight(void)
{
    const char *t = tsi_env("TSI_HA_TIMEOUTS");
    return t && strcmp(t, "tight") == 0;
}

/* the real directory (following a link into /var/lib/tsi) */
static void real_dir(char *buf, size_t len)
{
    char link[PATH_MAX];
    tsi_ha_dir(link, sizeof link);
    tsi_cluster_resolve(link, buf, len);
}

static void sub(char *buf, size_t len, const char *name)
{
    char d[PATH_MAX];
    real_dir(d, sizeof d);
    snprintf(buf, len, "%s/%s", d, name);
}

static bool exists(const char *path)
{
    return access(path, F_OK) == 0;
}

/* pg_autoctl finds its state through XDG_*; its connections (to the monitor, replication,
 * the monitor's health checks) present the tsi_ha certificate through PGSSLCERT/KEY, which
 * the keepers and their servers inherit. tsi's own connections name their certificate. */
static void ha_env(void)
{
    char p[PATH_MAX];
    sub(p, sizeof p, "cfg");
    setenv("XDG_CONFIG_HOME", p, 1);
    sub(p, sizeof p, "data");
    setenv("XDG_DATA_HOME", p, 1);
    sub(p, sizeof p, "run");
    setenv("XDG_RUNTIME_DIR", p, 1);
    sub(p, sizeof p, "certs/tsi_ha.crt");
    setenv("PGSSLCERT", p, 1);
    sub(p, sizeof p, "certs/tsi_ha.key");
    setenv("PGSSLKEY", p, 1);
    /* the clusters' superuser is postgres whatever the OS user (initdb -U postgres):
     * pg_autoctl's local connections would otherwise log in as the OS user's name, which
     * is postgres only when root runs tsi (a normal user got 'role "<user>" does not
     * exist' and pg_autoctl create gave up) */
    setenv("PGUSER", "postgres", 1);
}

static int run_server(char *const argv[], tsi_error *err)
{
    return tsi_cluster_run(argv, true, err);
}

static int mkdir_server(const char *path, tsi_error *err)
{
    if (mkdir(path, 0700) < 0 && errno != EEXIST)
        return tsi_error_set(err, TSI_E_IO, "cannot create a directory", "%s: %s", path,
                             strerror(errno));
    const char *u = tsi_cluster_server_user();
    if (u) {
        uid_t uid;
        gid_t gid;
        if (tsi_proc_user(u, &uid, &gid) < 0 || chown(path, uid, gid) < 0)
            return tsi_error_set(err, TSI_E_IO, "cannot give a directory to the server user", "%s",
                                 path);
    }
    return 0;
}

/* ---- the monitor, read as the superuser through the socket ---------------------------- */

static PGconn *monitor_connect(tsi_error *err)
{
    tsi_ha_formation f;
    if (!tsi_ha_formation_read(&f)) {
        tsi_error_set(err, TSI_E_NOTFOUND, "no HA formation: run `tsi db ha create`", NULL);
        return NULL;
    }
    char port[16];
    snprintf(port, sizeof port, "%d", f.monitor_port);
    const char *const keys[] = {"host", "port", "dbname", "user", "connect_timeout", NULL};
    const char *const vals[] = {f.socket_dir, port, "pg_auto_failover", "postgres", "3", NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 0);
    if (!c || PQstatus(c) != CONNECTION_OK) {
        tsi_error_set(err, TSI_E_UNAVAILABLE, "cannot connect to the HA monitor", "%s",
                      c ? PQerrorMessage(c) : "out of memory");
        PQfinish(c);
        return NULL;
    }
    return c;
}

static const char SQL_NODES[] =
    "SELECT n.nodename, n.nodeport, n.reportedstate::text AS reported,\n"
    "       n.goalstate::text AS assigned, n.health = 1 AS healthy,\n"
    "       coalesce((SELECT max(p.reportedlsn) FROM pgautofailover.node p\n"
    "                  WHERE p.reportedstate IN ('primary','single','wait_primary'))\n"
    "                - n.reportedlsn, 0)::bigint AS lag_bytes\n"
    "  FROM pgautofailover.node n ORDER BY n.nodeid";
static const char SQL_FAILOVERS[] =
    "SELECT count(*) AS failovers,\n"
    "       coalesce(extract(epoch FROM max(eventtime)), 0)::float8 AS last_failover\n"
    "  FROM pgautofailover.event\n"
    " WHERE goalstate = 'prepare_promotion' AND reportedstate <> 'prepare_promotion'";

int tsi_ha_state_read(tsi_ha_state *s, tsi_error *err)
{
    memset(s, 0, sizeof *s);
    s->primary = -1;
    PGconn *c = monitor_connect(err);
    if (!c)
        return err ? err->code : TSI_E_UNAVAILABLE;
    int rc = 0;
    PGresult *r = PQexec(c, SQL_NODES);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = tsi_db_result_error(r, "cannot read the formation from the monitor", err);
        goto done;
    }
    int cname = tsi_pq_col(r, "nodename"), cport = tsi_pq_col(r, "nodeport");
    int crep = tsi_pq_col(r, "reported"), casg = tsi_pq_col(r, "assigned");
    int chealthy = tsi_pq_col(r, "healthy"), clag = tsi_pq_col(r, "lag_bytes");
    for (int i = 0; i < PQntuples(r) && s->nnodes < 8; i++) {
        tsi_ha_node *n = &s->nodes[s->nnodes++];
        snprintf(n->name, sizeof n->name, "%s", tsi_pq_at(r, i, cname));
        n->port = atoi(tsi_pq_at(r, i, cport));
        snprintf(n->reported, sizeof n->reported, "%s", tsi_pq_at(r, i, crep));
        snprintf(n->assigned, sizeof n->assigned, "%s", tsi_pq_at(r, i, casg));
        n->healthy = strcmp(tsi_pq_at(r, i, chealthy), "t") == 0;
        n->lag_bytes = atoll(tsi_pq_at(r, i, clag));
        static const char *const serving[] = {"primary", "single", "wait_primary"};
        bool rep = false, asg = false;
        for (int k = 0; k < 3; k++) {
            rep |= strcmp(n->reported, serving[k]) == 0;
            asg |= strcmp(n->assigned, serving[k]) == 0;
        }
        n->primary = rep && asg;
        if (n->primary && s->primary < 0)
            s->primary = s->nnodes - 1;
    }
    PQclear(r);
    r = PQexec(c, SQL_FAILOVERS);
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        s->failovers = atoi(tsi_pq_get(r, 0, "failovers"));
        s->last_failover = atof(tsi_pq_get(r, 0, "last_failover"));
    }
done:
    PQclear(r);
    PQfinish(c);
    return rc;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static bool has_state(const tsi_ha_state *s, const char *state)
{
    for (int i = 0; i < s->nnodes; i++)
        if (strcmp(s->nodes[i].reported, state) == 0 && strcmp(s->nodes[i].assigned, state) == 0)
            return true;
    return false;
}

int tsi_ha_wait(bool want_secondary, int timeout_s, tsi_error *err)
{
    double t0 = now_s();
    tsi_ha_state s;
    tsi_error e = {0};
    char seen[512] = "no answer from the monitor";
    while (now_s() - t0 < timeout_s) {
        if (tsi_ha_state_read(&s, &e) == 0) {
            /* with a secondary, the pair is settled: primary and secondary both ways */
            bool ok = s.primary >= 0 &&
                      (!want_secondary || (has_state(&s, "primary") && has_state(&s, "secondary")));
            /* the monitor's view may predate a restart: the primary must also answer */
            PGconn *c = ok ? tsi_db_connect(TSI_ROLE_ADMIN, "postgres", &e) : NULL;
            PQfinish(c);
            if (c)
                return 0;
            seen[0] = '\0';
            for (int i = 0; i < s.nnodes; i++) {
                size_t n = strlen(seen);
                snprintf(seen + n, sizeof seen - n, "%s%s %s/%s", i ? ", " : "", s.nodes[i].name,
                         s.nodes[i].reported, s.nodes[i].assigned);
            }
        } else {
            snprintf(seen, sizeof seen, "%s: %s", e.message, e.detail);
        }
        usleep(200 * 1000);
    }
    return tsi_error_set(err, TSI_E_UNAVAILABLE, "the HA formation did not become ready",
                         "after %d s: %s", timeout_s, seen);
}

/* ---- keepers ------------------------------------------------------------------------- */

int tsi_ha_keeper_pid(const char *node)
{
    char path[PATH_MAX], name[96];
    snprintf(name, sizeof name, "run/%s.pid", node);
    sub(path, sizeof path, name);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int pid = 0;
    if (fscanf(f, "%d", &pid) != 1)
        pid = 0;
    fclose(f);
    if (pid <= 0 || kill(pid, 0) != 0)
        return 0;
    /* a pid file outlives its keeper (kill -9): the pid may be another process's now */
    char proc[64], cmd[256] = "";
    snprintf(proc, sizeof proc, "/proc/%d/cmdline", pid);
    FILE *c = fopen(proc, "r");
    size_t n = c ? fread(cmd, 1, sizeof cmd - 1, c) : 0;
    if (c)
        fclose(c);
    cmd[n] = '\0';
    return strstr(cmd, "pg_autoctl") ? pid : 0;
}

static int spawn_keeper(const char *node, tsi_error *err)
{
    if (tsi_ha_keeper_pid(node) > 0)
        return 0;
    char pgdata[PATH_MAX], log[PATH_MAX], pidf[PATH_MAX], name[96];
    sub(pgdata, sizeof pgdata, node);
    snprintf(name, sizeof name, "%s.log", node);
    sub(log, sizeof log, name);
    char *argv[] = {"pg_autoctl", "run", "--pgdata", pgdata, NULL};
    pid_t pid;
    int rc = tsi_proc_spawn(argv, tsi_cluster_server_user(), log, &pid, err);
    if (rc < 0)
        return rc;
    snprintf(name, sizeof name, "run/%s.pid", node);
    sub(pidf, sizeof pidf, name);
    FILE *f = fopen(pidf, "w");
    if (!f)
        return tsi_error_set(err, TSI_E_IO, "cannot write the keeper's pid", "%s", pidf);
    fprintf(f, "%d\n", (int)pid);
    fclose(f);
    tsi_info("db", "started the %s keeper pid=%d log=%s", node, (int)pid, log);
    return 0;
}

/* pg_autoctl stop, then waits for the keeper to be gone */
static int stop_keeper(const char *node, tsi_error *err)
{
    int pid = tsi_ha_keeper_pid(node);
    if (pid <= 0)
        return 0;
    char pgdata[PATH_MAX];
    sub(pgdata, sizeof pgdata, node);
    char *argv[] = {"pg_autoctl", "stop", "--pgdata", pgdata, NULL};
    int rc = run_server(argv, err);
    if (rc < 0)
        kill(pid, SIGTERM);
    for (int i = 0; i < 600 && kill(pid, 0) == 0; i++)
        usleep(100 * 1000);
    return kill(pid, 0) == 0
               ? tsi_error_set(err, TSI_E_PROC, "the keeper did not stop", "%s pid=%d", node, pid)
               : 0;
}

/* ---- configuration (rewritten at every start, as `tsi db start` does) ----------------- */

static int configure(const char *node, bool monitor, tsi_error *err)
{
    char pgdata[PATH_MAX], sock[PATH_MAX];
    sub(pgdata, sizeof pgdata, node);
    sub(sock, sizeof sock, "run");
    char extra[2048];
    if (monitor)
        snprintf(extra, sizeof extra, "%s%s", MONITOR_EXTRA, tight() ? MONITOR_TIGHT : "");
    else
        snprintf(extra, sizeof extra, "%s", NODE_EXTRA);
    int rc = tsi_cluster_write_managed_conf(pgdata, sock, !monitor, extra, err);
    if (rc == 0)
        rc = tsi_cluster_write_hba(pgdata, HA_HBA, HA_IDENT, err);
    return rc;
}

static int write_formation(tsi_error *err)
{
    char path[PATH_MAX], tmp[PATH_MAX + 8], sock[PATH_MAX];
    sub(path, sizeof path, "formation");
    sub(sock, sizeof sock, "run");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return tsi_error_set(err, TSI_E_IO, "cannot write", "%s: %s", tmp, strerror(errno));
    int p = base_port();
    fprintf(f,
            "# written by `tsi db ha create`: how tsi processes reach the formation\n"
            "monitor_port=%d\nnode1_port=%d\nnode2_port=%d\nsocket=%s\n",
            p, p + 1, p + 2, sock);
    if (fclose(f) != 0 || rename(tmp, path) < 0)
        return tsi_error_set(err, TSI_E_IO, "cannot write", "%s", path);
    return 0;
}

static void monitor_uri(char *buf, size_t len)
{
    char ca[PATH_MAX];
    sub(ca, sizeof ca, "certs/ca.crt");
    snprintf(buf, len,
             "postgres://autoctl_node@127.0.0.1:%d/pg_auto_failover?sslmode=verify-full"
             "&sslrootcert=%s",
             base_port(), ca);
}

/* `pg_autoctl create monitor|postgres` on a data directory we initialised (node1, the
 * monitor) or on none (node2: pg_autoctl copies node1 with pg_basebackup). TLS with our
 * CA and server certificate, verify-full; pg_hba.conf is ours (--skip-pg-hba). */
static int create_node(const char *node, int port, bool monitor, tsi_error *err)
{
    char pgdata[PATH_MAX], ca[PATH_MAX], crt[PATH_MAX], key[PATH_MAX], sock[PATH_MAX], ports[16],
        mon[PATH_MAX + 128], pgctl[PATH_MAX];
    sub(pgdata, sizeof pgdata, node);
    sub(ca, sizeof ca, "certs/ca.crt");
    sub(crt, sizeof crt, "certs/server.crt");
    sub(key, sizeof key, "certs/server.key");
    sub(sock, sizeof sock, "run");
    snprintf(ports, sizeof ports, "%d", port);
    snprintf(pgctl, sizeof pgctl, "%s/pg_ctl", tsi_cluster_pg_bin());
    monitor_uri(mon, sizeof mon);
    char *argv[48];
    int n = 0;
    argv[n++] = "pg_autoctl";
    argv[n++] = "create";
    argv[n++] = monitor ? "monitor" : "postgres";
    char *common[] = {"--pgctl",
                      pgctl,
                      "--pgdata",
                      pgdata,
                      "--pgport",
                      ports,
                      "--hostname",
                      "127.0.0.1",
                      "--skip-pg-hba",
                      "--ssl-mode",
                      "verify-full",
                      "--ssl-ca-file",
                      ca,
                      "--server-cert",
                      crt,
                      "--server-key",
                      key};
    for (size_t i = 0; i < sizeof common / sizeof common[0]; i++)
        argv[n++] = common[i];
    if (!monitor) {
        char *more[] = {"--pghost",  sock,         "--listen",    "127.0.0.1",
                        "--name",    (char *)node, "--dbname",    (char *)tsi_db_name(),
                        "--monitor", mon,          "--formation", "default"};
        for (size_t i = 0; i < sizeof more / sizeof more[0]; i++)
            argv[n++] = more[i];
    }
    argv[n] = NULL;
    tsi_info("db", "creating the HA %s on 127.0.0.1:%d", node, port);
    int rc = run_server(argv, err);
    if (rc < 0 || !monitor)
        return rc;
    /* the monitor's keeper: loopback only, and its own socket directory */
    char *set1[] = {"pg_autoctl", "config", "set",
                    "--pgdata",   pgdata,   "postgresql.listen_addresses",
                    "127.0.0.1",  NULL};
    char *set2[] = {"pg_autoctl", "config",          "set", "--pgdata",
                    pgdata,       "postgresql.host", sock,  NULL};
    if ((rc = run_server(set1, err)) < 0)
        return rc;
    return run_server(set2, err);
}

static int prepare(tsi_error *err)
{
    char link[PATH_MAX], real[PATH_MAX], p[PATH_MAX];
    int rc;
    tsi_ha_dir(link, sizeof link);
    if ((rc = tsi_cluster_prepare_dir(link, "ha", real, sizeof real, err)) < 0)
        return rc;
    static const char *const dirs[] = {"run", "certs", "cfg", "data"};
    for (int i = 0; i < 4; i++) {
        sub(p, sizeof p, dirs[i]);
        if ((rc = mkdir_server(p, err)) < 0)
            return rc;
    }
    /* the postgres user reads its own copies (the certificates directory may be root's) */
    static const char *const tsi_ha_role[] = {"tsi_ha", NULL};
    if ((rc = tsi_cluster_make_certs(tsi_ha_role, err)) < 0)
        return rc;
    char certs[PATH_MAX];
    tsi_db_certs_dir(certs, sizeof certs);
    static const char *const files[] = {"ca.crt", "server.crt", "server.key", "tsi_ha.crt",
                                        "tsi_ha.key"};
    for (int i = 0; i < 5; i++) {
        char from[PATH_MAX + 64], to[PATH_MAX + 64];
        snprintf(from, sizeof from, "%s/%s", certs, files[i]);
        snprintf(to, sizeof to, "%s/certs/%s", real, files[i]);
        if ((rc = tsi_cluster_copy_file(from, to, 0600, err)) < 0)
            return rc;
    }
    ha_env();
    return write_formation(err);
}

/* `pg_autoctl create` finished for this node: its configuration file exists */
static bool initialised(const char *node)
{
    char p[PATH_MAX], name[96];
    snprintf(name, sizeof name, "%s/PG_VERSION", node);
    sub(p, sizeof p, name);
    if (!exists(p))
        return false;
    char cfg[PATH_MAX * 2], pgdata[PATH_MAX];
    sub(pgdata, sizeof pgdata, node);
    sub(p, sizeof p, "cfg/pg_autoctl");
    snprintf(cfg, sizeof cfg, "%s%s/pg_autoctl.cfg", p, pgdata);
    return exists(cfg);
}

/* bootstrap (roles, database, extensions) and migrations, on the primary */
static int bootstrap_primary(tsi_error *err)
{
    /* the monitor may report the node before its keeper has (re)started the server */
    PGconn *w = NULL;
    for (int i = 0; i < 600 && !(w = tsi_db_connect(TSI_ROLE_ADMIN, "postgres", err)); i++)
        usleep(100 * 1000);
    if (!w)
        return TSI_E_UNAVAILABLE;
    PQfinish(w);
    int rc = tsi_cluster_bootstrap(err);
    if (rc < 0)
        return rc;
    PGconn *c = tsi_db_connect(TSI_ROLE_ADMIN, NULL, err);
    if (!c)
        return TSI_E_UNAVAILABLE;
    /* pg_autoctl made the database (--dbname) as postgres: the schema owner owns it */
    char sql[256];
    char *ident = PQescapeIdentifier(c, tsi_db_name(), strlen(tsi_db_name()));
    snprintf(sql, sizeof sql, "ALTER DATABASE %s OWNER TO tsi_owner", ident ? ident : "tsi");
    PQfreemem(ident);
    rc = tsi_db_exec(c, sql, err);
    PQfinish(c);
    if (rc < 0)
        return rc;
    c = tsi_db_connect(TSI_ROLE_OWNER, NULL, err);
    if (!c)
        return TSI_E_UNAVAILABLE;
    rc = tsi_migrate_apply(c, err);
    PQfinish(c);
    if (rc < 0)
        return rc;
    /* pg_autoctl copies the primary with pg_basebackup, whose checkpoint is spread: after
     * the migrations' writes it took minutes; an immediate one now leaves it nothing */
    if (!(c = tsi_db_connect(TSI_ROLE_ADMIN, NULL, err)))
        return TSI_E_UNAVAILABLE;
    rc = tsi_db_exec(c, "CHECKPOINT", err);
    PQfinish(c);
    return rc;
}

int tsi_ha_create(tsi_error *err)
{
    int rc;
    if ((rc = prepare(err)) < 0)
        return rc;
    int port = base_port();
    char pgdata[PATH_MAX];
    /* the monitor */
    if (!initialised("monitor")) {
        sub(pgdata, sizeof pgdata, "monitor");
        char v[PATH_MAX + 16];
        snprintf(v, sizeof v, "%s/PG_VERSION", pgdata);
        if (!exists(v) && (rc = tsi_cluster_initdb(pgdata, err)) < 0)
            return rc;
        if ((rc = configure("monitor", true, err)) < 0 ||
            (rc = create_node("monitor", port, true, err)) < 0)
            return rc;
    }
    if ((rc = configure("monitor", true, err)) < 0 || (rc = spawn_keeper("monitor", err)) < 0)
        return rc;
    /* node1: initialised by us (tsi.conf included), then registered: it becomes `single` */
    if (!initialised("node1")) {
        sub(pgdata, sizeof pgdata, "node1");
        char v[PATH_MAX + 16];
        snprintf(v, sizeof v, "%s/PG_VERSION", pgdata);
        if (!exists(v) && (rc = tsi_cluster_initdb(pgdata, err)) < 0)
            return rc;
        if ((rc = configure("node1", false, err)) < 0)
            return rc;
        /* the monitor must answer before a node registers */
        PGconn *m = NULL;
        for (int i = 0; i < 300 && !(m = monitor_connect(NULL)); i++)
            usleep(100 * 1000);
        if (!m)
            return tsi_error_set(err, TSI_E_UNAVAILABLE, "the HA monitor did not start",
                                 "see monitor.log in the HA directory");
        PQfinish(m);
        if ((rc = create_node("node1", port + 1, false, err)) < 0)
            return rc;
    }
    if ((rc = configure("node1", false, err)) < 0 || (rc = spawn_keeper("node1", err)) < 0)
        return rc;
    if ((rc = tsi_ha_wait(false, 120, err)) < 0)
        return rc;
    if ((rc = bootstrap_primary(err)) < 0)
        return rc;
    /* node2: pg_autoctl copies the primary (pg_basebackup), then follows it */
    if (!initialised("node2")) {
        if ((rc = create_node("node2", port + 2, false, err)) < 0)
            return rc;
    }
    if ((rc = configure("node2", false, err)) < 0 || (rc = spawn_keeper("node2", err)) < 0)
        return rc;
    return tsi_ha_wait(true, 180, err);
}

/* waits until both nodes' servers accept connections (their keepers start them) */
static int wait_servers(const tsi_ha_formation *f, tsi_error *err)
{
    for (int n = 0; n < TSI_HA_NODES; n++) {
        char port[16];
        snprintf(port, sizeof port, "%d", f->node_port[n]);
        const char *const keys[] = {"host", "port", "dbname", "user", NULL};
        const char *const vals[] = {f->socket_dir, port, "postgres", "postgres", NULL};
        int i = 0;
        while (PQpingParams(keys, vals, 0) != PQPING_OK && i++ < 600)
            usleep(100 * 1000);
        if (i > 600)
            return tsi_error_set(err, TSI_E_UNAVAILABLE, "a node's server did not start",
                                 "port %s: see node%d.log in the HA directory", port, n + 1);
    }
    return 0;
}

int tsi_ha_start(tsi_error *err)
{
    tsi_ha_formation f;
    if (!tsi_ha_formation_read(&f))
        return tsi_error_set(err, TSI_E_NOTFOUND, "no HA formation: run `tsi db ha create`", NULL);
    int rc;
    ha_env();
    /* the monitor first (a keeper exits when it cannot reach it); it promotes nobody in
     * its startup grace period (10 s, tight timeouts too), while the nodes start */
    static const char *const all[] = {"monitor", "node1", "node2"};
    for (int i = 0; i < 3; i++) {
        if (!initialised(all[i]))
            return tsi_error_set(err, TSI_E_NOTFOUND, "the HA formation is incomplete",
                                 "%s was never created: run `tsi db ha create`", all[i]);
        if ((rc = configure(all[i], i == 0, err)) < 0 || (rc = spawn_keeper(all[i], err)) < 0)
            return rc;
    }
    if ((rc = wait_servers(&f, err)) < 0)
        return rc;
    return tsi_ha_wait(false, 120, err);
}

int tsi_ha_stop(tsi_error *err)
{
    ha_env();
    int rc = 0;
    /* the monitor first: without it nobody promotes, so stopping the primary is not taken
     * for a failure; then the secondary, then the primary */
    const char *all[] = {"monitor", "node2", "node1"};
    tsi_ha_state s;
    if (tsi_ha_state_read(&s, NULL) == 0 && s.primary >= 0 &&
        strcmp(s.nodes[s.primary].name, "node2") == 0) {
        all[1] = "node1";
        all[2] = "node2";
    }
    for (int i = 0; i < 3; i++) {
        tsi_error e = {0};
        if (stop_keeper(all[i], &e) < 0 && rc == 0) {
            rc = e.code;
            if (err)
                *err = e;
        }
    }
    return rc;
}

int tsi_ha_switchover(int timeout_s, tsi_error *err)
{
    tsi_ha_state s;
    /* the monitor takes a switchover only from a settled pair (primary and secondary) */
    tsi_error we = {0};
    if (tsi_ha_wait(true, timeout_s, &we) < 0)
        return tsi_error_set(err, TSI_E_UNAVAILABLE, "a switchover needs a primary and a secondary",
                             "%s", we.detail);
    int rc = tsi_ha_state_read(&s, err);
    if (rc < 0)
        return rc;
    char old[64];
    snprintf(old, sizeof old, "%s", s.nodes[s.primary].name);
    PGconn *c = monitor_connect(err);
    if (!c)
        return TSI_E_UNAVAILABLE;
    rc = tsi_db_exec(c, "SELECT pgautofailover.perform_failover('default', 0)", err);
    PQfinish(c);
    if (rc < 0)
        return rc;
    tsi_info("db", "switchover asked: %s hands over", old);
    double t0 = now_s();
    while (now_s() - t0 < timeout_s) {
        tsi_error e = {0};
        if (tsi_ha_state_read(&s, &e) == 0 && s.primary >= 0 &&
            strcmp(s.nodes[s.primary].name, old) != 0 && has_state(&s, "secondary"))
            return 0;
        usleep(200 * 1000);
    }
    return tsi_error_set(err, TSI_E_UNAVAILABLE, "the switchover did not finish", "after %d s",
                         timeout_s);
}
