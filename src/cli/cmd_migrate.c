/* cli/cmd_migrate.c — `tsi migrate [--status]`: the command line of db/migrate.h. */
#include <stdio.h>

#include "base/log.h"
#include "base/options.h"
#include "cli/commands.h"
#include "db/conn.h"
#include "db/migrate.h"

const tsi_option tsi_migrate_options[] = {
    {"status", TSI_OPT_BOOL, NULL, NULL, "list migrations and whether each is applied", NULL},
    {NULL, 0, NULL, NULL, NULL, NULL},
};

int tsi_cmd_migrate(int argc, char **argv)
{
    tsi_opts o;
    int rc = tsi_opts_parse(&o, "tsi migrate",
                            "usage: tsi migrate [--status]\n\nApplies the embedded SQL "
                            "migrations as tsi_owner.",
                            tsi_migrate_options, 0, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    tsi_error e = {0};
    char buf[900];
    PGconn *c = tsi_db_connect(TSI_ROLE_OWNER, NULL, &e);
    if (!c) {
        fprintf(stderr, "tsi migrate: %s\n", tsi_error_str(&e, buf, sizeof buf));
        tsi_opts_free(&o);
        return 1;
    }
    if (tsi_opts_bool(&o, "status")) {
        rc = tsi_migrate_print_status(c);
    } else {
        rc = tsi_migrate_apply(c, &e);
        if (rc >= 0)
            tsi_info("migrate", "schema up to date applied=%d total=%d", rc, tsi_migrations_count);
        else
            fprintf(stderr, "tsi migrate: %s\n", tsi_error_str(&e, buf, sizeof buf));
    }
    PQfinish(c);
    tsi_opts_free(&o);
    return rc < 0 ? 1 : 0;
}
