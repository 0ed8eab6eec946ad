/* cli/cmd_db.c — `tsi db start|stop|status|url|psql|bootstrap` (and `ha`, cmd_db_ha.c): the command
 * line of the embedded cluster (db/cluster.h does the work; this file knows argv, options and exit
 * statuses). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/options.h"
#include "cli/commands.h"
#include "db/cluster.h"
#include "db/conn.h"
#include "db/ha.h"

const tsi_option tsi_db_options[] = {
    {"pg-port", TSI_OPT_INT, "55432", "TSI_PG_PORT", "TCP port of the embedded cluster (127.0.0.1)",
     "1..65535"},
    {"pg-bin", TSI_OPT_PATH, "/usr/lib/postgresql/15/bin", "TSI_PG_BIN",
     "directory of the PostgreSQL server programs", NULL},
    {"db-name", TSI_OPT_STRING, "tsi", "TSI_DB_NAME", "database name in the embedded cluster",
     NULL},
    {"pg-listen", TSI_OPT_STRING, "127.0.0.1", "TSI_PG_LISTEN",
     "addresses the embedded cluster listens on (listen_addresses; * in a container whose "
     "clients connect by name: then the four tsi roles may log in with their certificate from "
     "any address, the superuser still only on the socket)",
     NULL},
    {"pg-hostname", TSI_OPT_STRING, "", "TSI_PG_HOSTNAME",
     "one more DNS name in the server certificate, the name clients connect to (e.g. db in "
     "Compose); read when the certificates are made, at the first start",
     NULL},
    {"role", TSI_OPT_ENUM, "tsi_owner", NULL, "role for `url` and `psql`",
     "tsi_owner|tsi_writer|tsi_jobs|tsi_reader|postgres|tsi_replication"},
    {NULL, 0, NULL, NULL, NULL, NULL},
};

/* ---- the `tsi db` command ------------------------------------------------------------ */

static int role_of(const char *name)
{
    for (int i = 0; i < TSI_ROLE__COUNT; i++)
        if (strcmp(tsi_db_role_name((tsi_db_role)i), name) == 0)
            return i;
    return TSI_ROLE_OWNER;
}

/* parses the options shared by every `tsi db` subcommand and exports them */
static int db_opts(tsi_opts *o, const char *cmd, const char *usage, int max_args, int argc,
                   char **argv)
{
    int rc = tsi_opts_parse(o, cmd, usage, tsi_db_options, max_args, argc, argv);
    if (rc != 0)
        return rc;
    setenv("TSI_PG_PORT", tsi_opts_str(o, "pg-port"), 1);
    setenv("TSI_DB_NAME", tsi_opts_str(o, "db-name"), 1);
    tsi_cluster_set_pg_bin(tsi_opts_str(o, "pg-bin"));
    /* both go into configuration files; they travel in the environment like TSI_PG_PORT,
     * so a command that restarts the cluster (backup setup) writes the same configuration */
    const char *l = tsi_opts_str(o, "pg-listen"), *h = tsi_opts_str(o, "pg-hostname");
    if (!tsi_cluster_listen_ok(l)) {
        fprintf(stderr, "%s: --pg-listen: IP addresses or *, separated by commas: '%s'\n", cmd,
                l ? l : "");
        tsi_opts_free(o);
        return -1;
    }
    if (!tsi_cluster_hostname_ok(h)) {
        fprintf(stderr, "%s: --pg-hostname: a DNS name (letters, digits, '-', '.'): '%s'\n", cmd,
                h ? h : "");
        tsi_opts_free(o);
        return -1;
    }
    setenv("TSI_PG_LISTEN", l, 1);
    setenv("TSI_PG_HOSTNAME", h, 1);
    return 0;
}

static void print_url(tsi_db_role role)
{
    char ci[8192];
    tsi_error e = {0};
    if (tsi_db_conninfo(role, NULL, ci, sizeof ci, &e) == 0)
        printf("%s\n", ci);
}

static int cmd_start(int argc, char **argv)
{
    tsi_opts o;
    int rc = db_opts(&o, "tsi db start",
                     "usage: tsi db start [options]\n\nInitialise (first time) "
                     "and start the embedded cluster; prints how to connect.",
                     0, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    tsi_error e = {0};
    if (tsi_db_external()) {
        fprintf(stderr, "tsi db start: DATABASE_URL or PG* is set: tsi uses that database\n");
        tsi_opts_free(&o);
        return 0;
    }
    tsi_ha_formation f;
    if (tsi_ha_formation_read(&f)) {
        /* every connection goes to the formation then: start that instead */
        char d[4096];
        tsi_ha_dir(d, sizeof d);
        fprintf(stderr, "tsi db start: an HA formation exists (%s): use `tsi db ha start`\n", d);
        tsi_opts_free(&o);
        return 1;
    }
    rc = tsi_cluster_start(&e);
    tsi_opts_free(&o);
    if (rc < 0)
        return tsi_error_report("tsi db start", &e);
    print_url(TSI_ROLE_OWNER);
    return 0;
}

static int cmd_stop(int argc, char **argv)
{
    tsi_opts o;
    int rc = db_opts(&o, "tsi db stop", "usage: tsi db stop [options]", 0, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    tsi_error e = {0};
    rc = tsi_cluster_stop(&e);
    tsi_opts_free(&o);
    return rc < 0 ? tsi_error_report("tsi db stop", &e) : 0;
}

static int cmd_status(int argc, char **argv)
{
    tsi_opts o;
    int rc = db_opts(&o, "tsi db status",
                     "usage: tsi db status [options]\n\nExit 0 when the "
                     "embedded cluster runs, 3 when it does not.",
                     0, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    char dir[PATH_MAX];
    tsi_cluster_data_dir(dir, sizeof dir);
    int up = tsi_cluster_running();
    printf("embedded cluster: %s\ndata directory: %s\nport: %d\ndatabase: %s\n",
           up ? "running" : "stopped", dir, tsi_db_port(), tsi_db_name());
    tsi_opts_free(&o);
    return up ? 0 : 3;
}

static int cmd_url(int argc, char **argv)
{
    tsi_opts o;
    int rc = db_opts(&o, "tsi db url",
                     "usage: tsi db url [--role ROLE]\n\nPrints the libpq "
                     "connection string of a role.",
                     0, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    print_url((tsi_db_role)role_of(tsi_opts_str(&o, "role")));
    tsi_opts_free(&o);
    return 0;
}

static int cmd_psql(int argc, char **argv)
{
    tsi_opts o;
    int rc = db_opts(&o, "tsi db psql", "usage: tsi db psql [--role ROLE] [-- psql arguments]",
                     TSI_ARGS_MAX, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    char ci[8192];
    tsi_error e = {0};
    if (tsi_db_conninfo((tsi_db_role)role_of(tsi_opts_str(&o, "role")), NULL, ci, sizeof ci, &e) <
        0)
        return tsi_error_report("tsi db psql", &e);
    char *args[TSI_ARGS_MAX + 4];
    int n = 0;
    args[n++] = "psql";
    args[n++] = ci;
    for (int i = 0; i < o.nargs; i++)
        args[n++] = o.args[i];
    args[n] = NULL;
    /* the psql of the server's own version (--pg-bin); the one on PATH only when that
     * directory has none: Debian's /usr/bin/psql is a Perl wrapper that the db image
     * (deploy/Dockerfile) does not carry */
    char exe[PATH_MAX];
    snprintf(exe, sizeof exe, "%s/psql", tsi_cluster_pg_bin());
    if (access(exe, X_OK) == 0) {
        args[0] = exe; /* psql finds its own files from argv[0], which must then be a path */
        execv(exe, args);
        args[0] = "psql";
    }
    execvp("psql", args);
    fprintf(stderr, "tsi db psql: cannot run psql (%s, nor psql on PATH): %s\n", exe,
            strerror(errno));
    return 1;
}

static int cmd_bootstrap(int argc, char **argv)
{
    tsi_opts o;
    int rc = db_opts(&o, "tsi db bootstrap",
                     "usage: tsi db bootstrap\n\nCreates the roles, the database and the "
                     "extensions as the superuser (DATABASE_ADMIN_URL for an external server).",
                     0, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    tsi_error e = {0};
    rc = tsi_cluster_bootstrap(&e);
    tsi_opts_free(&o);
    return rc < 0 ? tsi_error_report("tsi db bootstrap", &e) : 0;
}

static const tsi_command db_commands[] = {
    {"start", "initialise (first time) and start the embedded cluster", cmd_start},
    {"stop", "stop the embedded cluster", cmd_stop},
    {"status", "say whether the embedded cluster runs (exit 3 when not)", cmd_status},
    {"url", "print the connection string of a role", cmd_url},
    {"psql", "open psql as a role", cmd_psql},
    {"bootstrap", "create roles, database and extensions (superuser)", cmd_bootstrap},
    {"ha", "the high-availability formation (create|start|stop|status|switchover)", tsi_cmd_db_ha},
    {NULL, NULL, NULL},
};

int tsi_cmd_db(int argc, char **argv)
{
    return tsi_cli_dispatch("tsi db", "The embedded PostgreSQL cluster under $TSI_HOME/pg.",
                            db_commands, argc, argv);
}
