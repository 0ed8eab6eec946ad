/* cli/cmd_status.c — `tsi status [--role ROLE] [--metrics]`: the command line of
 * db/status.h. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "base/buf.h"
#include "base/options.h"
#include "cli/commands.h"
#include "db/conn.h"
#include "db/status.h"

const tsi_option tsi_status_options[] = {
    {"role", TSI_OPT_ENUM, "tsi_reader", NULL, "role to read the facts as",
     "tsi_owner|tsi_writer|tsi_jobs|tsi_reader|postgres"},
    {"spool-dir", TSI_OPT_PATH, NULL, "TSI_SPOOL_DIR", "collector spool (default $TSI_HOME/spool)",
     NULL},
    {"metrics", TSI_OPT_BOOL, NULL, NULL, "print the Prometheus text format instead", NULL},
    {NULL, 0, NULL, NULL, NULL, NULL},
};

/* ---- the command ---------------------------------------------------------------------- */

int tsi_cmd_status(int argc, char **argv)
{
    tsi_opts o;
    int rc = tsi_opts_parse(&o, "tsi status",
                            "usage: tsi status [--role ROLE] [--metrics]\n\nThe database facts "
                            "an operator watches: sizes, rows, partitions ahead, slow "
                            "statements, connections, replication, archiving, jobs, spool.",
                            tsi_status_options, 0, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    static const char *const roles[] = {"tsi_owner", "tsi_writer", "tsi_jobs", "tsi_reader",
                                        "postgres"};
    tsi_db_role role = TSI_ROLE_READER;
    for (int i = 0; i < 5; i++)
        if (strcmp(roles[i], tsi_opts_str(&o, "role")) == 0)
            role = (tsi_db_role)i;
    char spool[PATH_MAX];
    if (tsi_opts_str(&o, "spool-dir"))
        snprintf(spool, sizeof spool, "%s", tsi_opts_str(&o, "spool-dir"));
    else
        snprintf(spool, sizeof spool, "%s/spool", tsi_home());
    tsi_error e = {0};
    char msg[900];
    PGconn *c = tsi_db_connect(role, NULL, &e);
    if (!c) {
        fprintf(stderr, "tsi status: %s\n", tsi_error_str(&e, msg, sizeof msg));
        tsi_opts_free(&o);
        return 1;
    }
    tsi_status s;
    rc = tsi_status_collect(c, spool, &s, &e);
    PQfinish(c);
    if (rc < 0) {
        fprintf(stderr, "tsi status: %s\n", tsi_error_str(&e, msg, sizeof msg));
        tsi_status_free(&s);
        tsi_opts_free(&o);
        return 1;
    }
    if (tsi_opts_bool(&o, "metrics")) {
        tsi_buf b = TSI_BUF_INIT;
        tsi_status_prometheus(&s, &b);
        fputs(tsi_buf_cstr(&b), stdout);
        tsi_buf_free(&b);
    } else {
        tsi_status_print(stdout, &s);
    }
    tsi_status_free(&s);
    tsi_opts_free(&o);
    return 0;
}
