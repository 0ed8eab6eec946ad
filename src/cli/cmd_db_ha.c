/* cli/cmd_db_ha.c — `tsi db ha create|start|stop|status|switchover`: the command line of
 * the high-availability formation (db/ha.h does the work; this file knows argv, options
 * and exit statuses: 0 ok, 1 failure, 2 usage, 3 `status` without a primary). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>

#include "base/options.h"
#include "base/tz.h"
#include "cli/commands.h"
#include "db/cluster.h"
#include "db/ha.h"

const tsi_option tsi_db_ha_options[] = {
    {"ha-dir", TSI_OPT_STRING, "", "TSI_HA_DIR",
     "directory of the HA formation (monitor, node1, node2, sockets, keeper logs); empty: "
     "$TSI_HOME/ha",
     NULL},
    {"ha-port", TSI_OPT_INT, "55440", "TSI_HA_PORT",
     "TCP port of the HA monitor on 127.0.0.1; the data nodes take the next two", "1..65533"},
    {"ha-timeouts", TSI_OPT_ENUM, "production", "TSI_HA_TIMEOUTS",
     "the monitor's failure detection: production (pg_auto_failover's defaults: a failover "
     "after ~30-50 s) or tight (1 s health checks, unhealthy after 2 s: tests, development)",
     "production|tight"},
    {"pg-bin", TSI_OPT_PATH, "/usr/lib/postgresql/15/bin", "TSI_PG_BIN",
     "directory of the PostgreSQL server programs", NULL},
    {"db-name", TSI_OPT_STRING, "tsi", "TSI_DB_NAME", "database name in the formation", NULL},
    {"timeout", TSI_OPT_INT, "120", NULL, "seconds `switchover` waits for the new primary",
     "1..3600"},
    {NULL, 0, NULL, NULL, NULL, NULL},
};

static int ha_opts(tsi_opts *o, const char *cmd, const char *usage, int argc, char **argv)
{
    int rc = tsi_opts_parse(o, cmd, usage, tsi_db_ha_options, 0, argc, argv);
    if (rc != 0)
        return rc;
    /* they travel in the environment: conn.c and every pg_autoctl child read them */
    const char *d = tsi_opts_str(o, "ha-dir");
    if (d && *d)
        setenv("TSI_HA_DIR", d, 1);
    setenv("TSI_HA_PORT", tsi_opts_str(o, "ha-port"), 1);
    setenv("TSI_HA_TIMEOUTS", tsi_opts_str(o, "ha-timeouts"), 1);
    setenv("TSI_DB_NAME", tsi_opts_str(o, "db-name"), 1);
    tsi_cluster_set_pg_bin(tsi_opts_str(o, "pg-bin"));
    return 0;
}

#define HA_CMD(fn, name, usage, call)                                                              \
    static int fn(int argc, char **argv)                                                           \
    {                                                                                              \
        tsi_opts o;                                                                                \
        int rc = ha_opts(&o, "tsi db ha " name, usage, argc, argv);                                \
        if (rc != 0)                                                                               \
            return rc > 0 ? 0 : 2;                                                                 \
        tsi_error e = {0};                                                                         \
        rc = (call);                                                                               \
        tsi_opts_free(&o);                                                                         \
        return rc < 0 ? tsi_error_report("tsi db ha " name, &e) : 0;                               \
    }

HA_CMD(cmd_create, "create",
       "usage: tsi db ha create [options]\n\nMake (what is missing of) a monitor and two data "
       "nodes of the embedded cluster\nunder --ha-dir, bootstrap and migrate the primary, start "
       "everything.",
       tsi_ha_create(&e))
HA_CMD(cmd_start, "start",
       "usage: tsi db ha start [options]\n\nStart the keepers of the formation; wait for a "
       "primary.",
       tsi_ha_start(&e))
HA_CMD(cmd_stop, "stop", "usage: tsi db ha stop [options]\n\nStop the nodes, then the monitor.",
       tsi_ha_stop(&e))
HA_CMD(cmd_switchover, "switchover",
       "usage: tsi db ha switchover [--timeout S]\n\nHand the primary role to the secondary "
       "and wait until the old primary follows it.",
       tsi_ha_switchover((int)tsi_opts_int(&o, "timeout"), &e))

static int cmd_status(int argc, char **argv)
{
    tsi_opts o;
    int rc = ha_opts(&o, "tsi db ha status",
                     "usage: tsi db ha status [options]\n\nThe formation as its monitor sees "
                     "it; exit 3 when there is no primary.",
                     argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    tsi_opts_free(&o);
    tsi_ha_state s;
    tsi_error e = {0};
    if (tsi_ha_state_read(&s, &e) < 0)
        return tsi_error_report("tsi db ha status", &e);
    printf("%-8s %6s %-14s %-14s %-8s %s\n", "node", "port", "reported", "assigned", "health",
           "lag_bytes");
    for (int i = 0; i < s.nnodes; i++)
        printf("%-8s %6d %-14s %-14s %-8s %lld\n", s.nodes[i].name, s.nodes[i].port,
               s.nodes[i].reported, s.nodes[i].assigned, s.nodes[i].healthy ? "ok" : "bad",
               s.nodes[i].lag_bytes);
    printf("primary: %s\n", s.primary >= 0 ? s.nodes[s.primary].name : "(none)");
    if (s.last_failover > 0) {
        char when[40];
        tsi_tz_iso_utc((int64_t)(s.last_failover * 1000), when, sizeof when);
        printf("promotions: %d, last at %s\n", s.failovers, when);
    } else {
        printf("promotions: 0\n");
    }
    return s.primary >= 0 ? 0 : 3;
}

static const tsi_command ha_commands[] = {
    {"create", "make and start a monitor and two data nodes (idempotent)", cmd_create},
    {"start", "start the formation's keepers", cmd_start},
    {"stop", "stop the formation", cmd_stop},
    {"status", "the nodes, their states and the primary (exit 3 without one)", cmd_status},
    {"switchover", "hand the primary role to the secondary", cmd_switchover},
    {NULL, NULL, NULL},
};

int tsi_cmd_db_ha(int argc, char **argv)
{
    return tsi_cli_dispatch("tsi db ha",
                            "High availability on pg_auto_failover: a monitor and two data "
                            "nodes (see docs/operations.md).",
                            ha_commands, argc, argv);
}
