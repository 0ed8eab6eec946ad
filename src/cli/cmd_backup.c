/* cli/cmd_backup.c — `tsi backup setup|run|list|restore`: the command line of ops/backup.h
 * (options, schedules checked as cron expressions, exit statuses). */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/options.h"
#include "cli/commands.h"
#include "db/cluster.h"
#include "jobs/jobs.h"
#include "ops/backup.h"

const tsi_option tsi_backup_options[] = {
    {"backup-dir", TSI_OPT_PATH, NULL, "TSI_BACKUP_DIR",
     "pgBackRest repository (default $TSI_HOME/backup)", NULL},
    {"pg-port", TSI_OPT_INT, "55432", "TSI_PG_PORT", "TCP port of the embedded cluster",
     "1..65535"},
    {"pg-bin", TSI_OPT_PATH, "/usr/lib/postgresql/15/bin", "TSI_PG_BIN",
     "directory of the PostgreSQL server programs", NULL},
    {"retention-days", TSI_OPT_INT, "30", "TSI_BACKUP_RETENTION_DAYS",
     "days full backups (and their differentials) are kept; point-in-time recovery reaches "
     "back at least as far (7 or more)",
     "7..3650"},
    {"schedule-full", TSI_OPT_STRING, "30 1 * * 0", "TSI_BACKUP_SCHEDULE_FULL",
     "setup: pg_cron schedule (UTC) of the weekly full backup", NULL},
    {"schedule-diff", TSI_OPT_STRING, "30 1 * * 1-6", "TSI_BACKUP_SCHEDULE_DIFF",
     "setup: pg_cron schedule (UTC) of the daily differential backup", NULL},
    {"schedule-info", TSI_OPT_STRING, "*/5 * * * *", "TSI_BACKUP_SCHEDULE_INFO",
     "setup: pg_cron schedule of the refresh of tsi_ops.backup_info (what /metrics and tsi "
     "status show)",
     NULL},
    {"type", TSI_OPT_ENUM, "auto", NULL,
     "run: backup type (auto = full when the last full is 6.5+ days old, else diff)",
     "auto|full|diff|incr"},
    {"to", TSI_OPT_STRING, NULL, NULL,
     "restore: recovery target time, ISO 8601 (UTC when no offset); default: end of WAL", NULL},
    {"target-dir", TSI_OPT_PATH, NULL, NULL,
     "restore: fresh data directory (default $TSI_HOME/pg-restored-<time>)", NULL},
    {"in-place", TSI_OPT_BOOL, NULL, NULL,
     "restore: stop the cluster and restore over its data directory", NULL},
    {NULL, 0, NULL, NULL, NULL, NULL},
};

/* ---- the command ----------------------------------------------------------------------- */

static int parse(tsi_opts *o, const char *cmd, const char *usage, int argc, char **argv)
{
    int rc = tsi_opts_parse(o, cmd, usage, tsi_backup_options, 0, argc, argv);
    if (rc != 0)
        return rc;
    setenv("TSI_PG_PORT", tsi_opts_str(o, "pg-port"), 1);
    tsi_cluster_set_pg_bin(tsi_opts_str(o, "pg-bin"));
    if (tsi_opts_str(o, "backup-dir"))
        tsi_backup_set_repo_dir(tsi_opts_str(o, "backup-dir"));
    return 0;
}

static int cmd_setup(int argc, char **argv)
{
    tsi_opts o;
    int rc = parse(&o, "tsi backup setup",
                   "usage: tsi backup setup [options]\n\nTurns WAL archiving on into a "
                   "pgBackRest repository and creates the stanza (restarts the cluster once).",
                   argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    const char *full = tsi_opts_str(&o, "schedule-full"), *diff = tsi_opts_str(&o, "schedule-diff");
    const char *sinfo = tsi_opts_str(&o, "schedule-info");
    if (!tsi_jobs_schedule_valid(full) || !tsi_jobs_schedule_valid(diff) ||
        !tsi_jobs_schedule_valid(sinfo)) {
        fprintf(stderr,
                "tsi backup setup: '%s' is not a 5-field cron schedule (minute hour day "
                "month weekday)\n",
                !tsi_jobs_schedule_valid(full)   ? full
                : !tsi_jobs_schedule_valid(diff) ? diff
                                                 : sinfo);
        tsi_opts_free(&o);
        return 2;
    }
    tsi_error e = {0};
    rc = tsi_backup_setup((int)tsi_opts_int(&o, "retention-days"), full, diff, sinfo, &e);
    tsi_opts_free(&o);
    if (rc < 0)
        return tsi_error_report("tsi backup setup", &e);
    char repo[PATH_MAX];
    tsi_backup_repo_dir(repo, sizeof repo);
    printf("backups: repository %s, stanza " TSI_BACKUP_STANZA ", WAL archiving on\n", repo);
    return 0;
}

static int cmd_run(int argc, char **argv)
{
    tsi_opts o;
    int rc = parse(&o, "tsi backup run",
                   "usage: tsi backup run [--type auto|full|diff|incr]\n\nTakes a backup "
                   "(and expires those past retention).",
                   argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    tsi_error e = {0};
    rc = tsi_backup_run(tsi_opts_str(&o, "type"), &e);
    tsi_opts_free(&o);
    return rc < 0 ? tsi_error_report("tsi backup run", &e) : 0;
}

static int cmd_list(int argc, char **argv)
{
    tsi_opts o;
    int rc = parse(&o, "tsi backup list",
                   "usage: tsi backup list\n\nLists the backups and the point-in-time window.",
                   argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    tsi_error e = {0};
    rc = tsi_backup_list(&e);
    tsi_opts_free(&o);
    return rc < 0 ? tsi_error_report("tsi backup list", &e) : rc;
}

static int cmd_restore(int argc, char **argv)
{
    tsi_opts o;
    int rc = parse(&o, "tsi backup restore",
                   "usage: tsi backup restore [--to TIME] [--target-dir DIR | --in-place]\n\n"
                   "Point-in-time restore. By default into a fresh data directory (the running "
                   "cluster is untouched); --in-place stops the cluster, restores over it and "
                   "starts it.",
                   argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    tsi_error e = {0};
    char dir[PATH_MAX];
    bool in_place = tsi_opts_bool(&o, "in-place");
    /* a bad time is a usage error: check it before touching anything */
    char norm[48];
    if (tsi_opts_str(&o, "to") &&
        tsi_backup_parse_time(tsi_opts_str(&o, "to"), norm, sizeof norm, &e) < 0) {
        tsi_opts_free(&o);
        tsi_error_report("tsi backup restore", &e);
        return 2;
    }
    rc = tsi_backup_restore(tsi_opts_str(&o, "to"), tsi_opts_str(&o, "target-dir"), in_place, dir,
                            sizeof dir, &e);
    tsi_opts_free(&o);
    if (rc < 0)
        return tsi_error_report("tsi backup restore", &e);
    if (in_place) {
        printf("restored in place: %s (running)\n", dir);
    } else {
        printf("restored into %s\n"
               "start it on a free port (recovery runs first, then it is promoted):\n"
               "  %s%s/pg_ctl -D %s -o \"-p PORT -k %s\" -l %s/restore.log start\n",
               dir, geteuid() == 0 ? "runuser -u postgres -- " : "", tsi_cluster_pg_bin(), dir, dir,
               dir);
    }
    return 0;
}

static const tsi_command backup_commands[] = {
    {"setup", "turn WAL archiving on and create the pgBackRest stanza", cmd_setup},
    {"run", "take a backup (auto: weekly full, else differential)", cmd_run},
    {"list", "list backups and the point-in-time window", cmd_list},
    {"restore", "restore to a point in time (fresh directory, or --in-place)", cmd_restore},
    {NULL, NULL, NULL},
};

int tsi_cmd_backup(int argc, char **argv)
{
    return tsi_cli_dispatch("tsi backup",
                            "Backups of the embedded cluster with pgBackRest: WAL archiving, "
                            "full and differential backups, point-in-time restore.",
                            backup_commands, argc, argv);
}
