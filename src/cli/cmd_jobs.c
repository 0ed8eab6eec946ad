/* cli/cmd_jobs.c — `tsi jobs run|install|status`: the command line of jobs/jobs.h (the
 * option table, usage texts, parsing); the jobs module does the work on the parsed
 * options and returns the exit status. */
#include <stdio.h>

#include "base/options.h"
#include "cli/commands.h"
#include "jobs/jobs.h"

const tsi_option tsi_jobs_options[] = {
    {"at", TSI_OPT_STRING, NULL, NULL,
     "run: the job's clock instead of now (a timestamp; UTC unless it names a zone)", NULL},
    {"window-days", TSI_OPT_INT, "28", "TSI_CONSTANTS_WINDOW_DAYS",
     "constants: trailing window of 1-minute rows, in days", "1..366"},
    {"prior-k", TSI_OPT_DOUBLE, "50", "TSI_EB_K",
     "constants: Empirical Bayes strength k stored with the set", "0.000001..1000000"},
    {"prior-min-minutes", TSI_OPT_INT, "60", "TSI_PRIOR_MIN_MINUTES",
     "constants: minutes of history an intersection-hour needs for its own prior", "1..100000"},
    {"constants-min-minutes", TSI_OPT_INT, "60", "TSI_CONSTANTS_MIN_MINUTES",
     "constants: a set whose window holds fewer 1-minute rows is refused (previous set stays)",
     "1..100000000"},
    {"constants-max-jump", TSI_OPT_DOUBLE, "10", "TSI_CONSTANTS_MAX_JUMP",
     "constants: a set is refused when a maximum moves by more than this factor from the "
     "previous set",
     "1.000001..1000000"},
    {"features-retention-days", TSI_OPT_INT, "35", "TSI_FEATURES_RETENTION_DAYS",
     "constants: days of hourly features (safety_features_hourly) kept; at least --window-days",
     "1..3660"},
    {"constants-defaults", TSI_OPT_STRING, NULL, "TSI_CONSTANTS_DEFAULTS",
     "constants: JSON object of defaults for features with no data (e.g. {\"S_ref\":40})", NULL},
    {"realtime-retention-hours", TSI_OPT_INT, "48", "TSI_RETENTION_REALTIME_HOURS",
     "retention: hours of 1-minute rows kept", "1..87600"},
    {"hourly-retention-days", TSI_OPT_INT, "90", "TSI_RETENTION_HOURLY_DAYS",
     "retention: days of hourly rollups kept (daily rollups are kept forever)", "1..36500"},
    {"job-runs-retention-days", TSI_OPT_INT, "90", "TSI_RETENTION_JOB_RUNS_DAYS",
     "retention: days of job_runs kept", "1..36500"},
    {"data-quality-retention-days", TSI_OPT_INT, "90", "TSI_RETENTION_DATA_QUALITY_DAYS",
     "retention: days of data_quality_log rows kept (pruned in batches)", "1..36500"},
    {"lock-timeout-ms", TSI_OPT_INT, "50", "TSI_RETENTION_LOCK_TIMEOUT_MS",
     "retention: longest wait per attempt for the lock that drops a realtime partition "
     "(inserts queue behind it)",
     "1..60000"},
    {"lock-attempts", TSI_OPT_INT, "20", "TSI_RETENTION_LOCK_ATTEMPTS",
     "retention: attempts at that lock (an empty partition not dropped is dropped next run)",
     "1..1000"},
    {"no-vacuum", TSI_OPT_BOOL, NULL, NULL,
     "run: skip the VACUUM ANALYZE (as tsi_owner) after retention", NULL},
    {"schedule-hourly", TSI_OPT_STRING, "5 * * * *", "TSI_SCHEDULE_HOURLY",
     "install: cron schedule of the hourly rollup", NULL},
    {"schedule-daily", TSI_OPT_STRING, "5 0 * * *", "TSI_SCHEDULE_DAILY",
     "install: cron schedule of the daily rollup", NULL},
    {"schedule-retention", TSI_OPT_STRING, "0 2 * * *", "TSI_SCHEDULE_RETENTION",
     "install: cron schedule of retention", NULL},
    {"schedule-retention-drop", TSI_OPT_STRING, "15 2 * * *", "TSI_SCHEDULE_RETENTION_DROP",
     "install: cron schedule of the realtime partition drop and data_quality_log pruning "
     "(runs as tsi_owner)",
     NULL},
    {"schedule-partitions", TSI_OPT_STRING, "35 * * * *", "TSI_SCHEDULE_PARTITIONS",
     "install: cron schedule of partition maintenance", NULL},
    {"schedule-constants", TSI_OPT_STRING, "30 0 * * *", "TSI_SCHEDULE_CONSTANTS",
     "install: cron schedule of the normalisation constants", NULL},
    {"schedule-vacuum", TSI_OPT_STRING, "30 2 * * *", "TSI_SCHEDULE_VACUUM",
     "install: cron schedule of VACUUM ANALYZE of the rollup tables (runs as tsi_owner)", NULL},
    {"remove", TSI_OPT_BOOL, NULL, NULL, "install: remove tsi's pg_cron jobs instead", NULL},
    {"limit", TSI_OPT_INT, "10", NULL, "status: how many recent failures to list", "1..1000"},
    {NULL, 0, NULL, NULL, NULL, NULL},
};

static int parse(tsi_opts *o, const char *cmd, const char *usage, int max_args, int argc,
                 char **argv)
{
    int rc = tsi_opts_parse(o, cmd, usage, tsi_jobs_options, max_args, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    return -1; /* go on */
}

static int cmd_run(int argc, char **argv)
{
    tsi_opts o;
    int rc = parse(&o, "tsi jobs run",
                   "usage: tsi jobs run hourly|daily|retention|partitions|constants|all "
                   "[--at TIME] [options]\n\nRuns jobs now (as tsi_jobs), records each in "
                   "job_runs; exit 1 when one failed.",
                   1, argc, argv);
    if (rc >= 0)
        return rc;
    rc = tsi_jobs_run_now(&o);
    tsi_opts_free(&o);
    return rc;
}

static int cmd_install(int argc, char **argv)
{
    tsi_opts o;
    int rc = parse(&o, "tsi jobs install",
                   "usage: tsi jobs install [--schedule-JOB 'M H D M W' ...] [--remove]\n\n"
                   "Schedules the jobs with pg_cron (in the database named by "
                   "cron.database_name): the jobs as tsi_jobs, VACUUM as tsi_owner. "
                   "Idempotent.",
                   0, argc, argv);
    if (rc >= 0)
        return rc;
    rc = tsi_jobs_install(&o);
    tsi_opts_free(&o);
    return rc;
}

static int cmd_status(int argc, char **argv)
{
    tsi_opts o;
    int rc = parse(&o, "tsi jobs status",
                   "usage: tsi jobs status [--limit N]\n\nThe last run of every job, recent "
                   "failures (job_runs) and the pg_cron schedule with its last run "
                   "(cron.job_run_details). Exit 1 when the last run of a job failed.",
                   0, argc, argv);
    if (rc >= 0)
        return rc;
    rc = tsi_jobs_status(&o);
    tsi_opts_free(&o);
    return rc;
}

static const tsi_command jobs_commands[] = {
    {"run", "run a job now: hourly|daily|retention|partitions|constants|all [--at TIME]", cmd_run},
    {"install", "schedule the jobs with pg_cron (times configurable; --remove)", cmd_install},
    {"status", "last runs, failures and the pg_cron schedule", cmd_status},
    {NULL, NULL, NULL},
};

int tsi_cmd_jobs(int argc, char **argv)
{
    return tsi_cli_dispatch("tsi jobs",
                            "Rollups (hourly, daily), retention, partition maintenance and "
                            "normalisation constants; pg_cron runs them on schedule.",
                            jobs_commands, argc, argv);
}
