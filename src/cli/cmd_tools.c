/* cli/cmd_tools.c — the command lines of the offline tools (tools/): `tsi backfill`,
 * `tsi validate`, `tsi reprocess`, `tsi seed`, `tsi features`, `tsi explain`: their option
 * tables, usage texts and parsing. Each hands the parsed options to the tool's
 * tsi_<tool>_run (tools/<tool>.h), which returns the exit status. */
#include <stdio.h>

#include "base/options.h"
#include "cli/commands.h"
#include "tools/backfill.h"
#include "tools/features_cmd.h"
#include "tools/reprocess.h"
#include "tools/seed.h"
#include "tools/validate.h"

const tsi_option tsi_backfill_options[] = {
    {"from", TSI_OPT_PATH, NULL, NULL,
     "directory holding indices/ (tsi layout YYYY/MM/DD/*.parquet or legacy "
     "indices_YYYY-MM-DD.parquet), required",
     NULL},
    {"since", TSI_OPT_STRING, NULL, NULL, "first UTC date loaded (YYYY-MM-DD); default: all", NULL},
    {"until", TSI_OPT_STRING, NULL, NULL, "last UTC date loaded (inclusive); default: all", NULL},
    {"dry-run", TSI_OPT_BOOL, NULL, NULL, "read, check and report; write nothing", NULL},
    {"realtime-hours", TSI_OPT_INT, "48", "TSI_REALTIME_HOURS",
     "hours of 1-minute rows the realtime table keeps", "1..8760"},
    {"hourly-days", TSI_OPT_INT, "90", "TSI_HOURLY_DAYS", "days of hourly rollups kept",
     "1..36500"},
    {"bin-minutes", TSI_OPT_ENUM, "auto", NULL,
     "bin length of legacy files (auto: 15 when every timestamp is on a quarter hour)",
     "auto|1|15"},
    {"report", TSI_OPT_PATH, NULL, NULL,
     "write every rejected row as CSV (file,row,reason) to this file", NULL},
    {"max-report", TSI_OPT_INT, "100", NULL,
     "rejected rows written to the log one per line (all are counted)", "0..100000000"},
    {"progress", TSI_OPT_ENUM, "auto", NULL, "auto: a bar on a terminal, log lines otherwise",
     "auto|bar|log|off"},
    {"no-validate", TSI_OPT_BOOL, NULL, NULL, "skip the validation at the end", NULL},
    {"sample", TSI_OPT_INT, "1000", NULL, "rows the final validation compares field by field",
     "0..1000000"},
    {"tolerance", TSI_OPT_DOUBLE, "1e-6", NULL, "relative tolerance of the final validation",
     "0..1"},
    {NULL, 0, NULL, NULL, NULL, NULL},
};

int tsi_cmd_backfill(int argc, char **argv)
{
    return tsi_cli_run(
        "tsi backfill",
        "usage: tsi backfill --from DIR [--since DATE] [--until DATE] [--dry-run]\n\n"
        "Loads indices Parquet (tsi's indices/YYYY/MM/DD/ layout and the earlier system's\n"
        "indices/indices_YYYY-MM-DD.parquet) into PostgreSQL: rows of the realtime window\n"
        "into safety_indices_realtime, hourly and daily rollups for the whole range, then\n"
        "validates. Rejected rows are reported with file and row. Re-running changes\n"
        "nothing. Exit status 0 when loaded and validated, 1 on failure or a validation\n"
        "difference, 2 on a usage error.",
        tsi_backfill_options, tsi_backfill_run, argc, argv);
}

const tsi_option tsi_validate_options[] = {
    {"since", TSI_OPT_STRING, NULL, NULL, "first UTC date compared (YYYY-MM-DD), required", NULL},
    {"until", TSI_OPT_STRING, NULL, NULL, "last UTC date compared (inclusive), required", NULL},
    {"from", TSI_OPT_PATH, NULL, "TSI_ARCHIVE_DIR",
     "archive directory holding indices/ in either layout (default $TSI_HOME/archive)", NULL},
    {"format", TSI_OPT_ENUM, "text", NULL, "report format", "text|json|html"},
    {"output", TSI_OPT_PATH, NULL, NULL, "write the report to this file instead of stdout", NULL},
    {"sample", TSI_OPT_INT, "1000", NULL, "realtime rows compared field by field", "0..1000000"},
    {"seed", TSI_OPT_INT, NULL, NULL, "seed of the random sample (default: from the clock)",
     "0..4294967295"},
    {"tolerance", TSI_OPT_DOUBLE, "1e-6", NULL,
     "relative tolerance of numeric comparisons: |a-b| <= tol*max(1,|a|,|b|)", "0..1"},
    {"max-issues", TSI_OPT_INT, "50", NULL, "differences listed in text and HTML (all counted)",
     "0..1000000"},
    {"realtime-hours", TSI_OPT_INT, "48", "TSI_REALTIME_HOURS",
     "hours of 1-minute rows the realtime table keeps", "1..8760"},
    {"hourly-days", TSI_OPT_INT, "90", "TSI_HOURLY_DAYS", "days of hourly rollups kept",
     "1..36500"},
    {"bin-minutes", TSI_OPT_ENUM, "auto", NULL,
     "bin length of legacy files (auto: 15 when every timestamp is on a quarter hour)",
     "auto|1|15"},
    {NULL, 0, NULL, NULL, NULL, NULL},
};

int tsi_cmd_validate(int argc, char **argv)
{
    return tsi_cli_run(
        "tsi validate",
        "usage: tsi validate --since DATE --until DATE [--from DIR] [--format text|json|html]\n\n"
        "Compares the indices Parquet (both layouts) with PostgreSQL: row counts per day and\n"
        "intersection, mean/min/max per intersection, a random sample field by field, every\n"
        "hourly and daily rollup. Exit status 0 when everything matches, 1 on any\n"
        "difference or failure, 2 on a usage error.",
        tsi_validate_options, tsi_validate_check, argc, argv);
}

const tsi_option tsi_reprocess_options[] = {
    {"since", TSI_OPT_STRING, NULL, NULL, "start of the range, a whole UTC hour (required)", NULL},
    {"until", TSI_OPT_STRING, NULL, NULL, "end of the range (exclusive), a whole UTC hour", NULL},
    {"raw", TSI_OPT_PATH, NULL, NULL,
     "directory holding raw/ (tsi or legacy layout; default: the archive)", NULL},
    {"archive", TSI_OPT_PATH, NULL, "TSI_ARCHIVE_DIR",
     "archive whose indices/ get the new generation (default $TSI_HOME/archive)", NULL},
    {"realtime-hours", TSI_OPT_INT, "48", "TSI_REALTIME_HOURS",
     "hours of 1-minute rows the realtime table keeps", "1..8760"},
    {"statement-timeout-ms", TSI_OPT_INT, "60000", NULL,
     "statement timeout of every database statement", "100..3600000"},
    {"nice", TSI_OPT_INT, "10", NULL, "scheduling priority (nice value) of the process", "0..19"},
    {"dry-run", TSI_OPT_BOOL, NULL, NULL,
     "read, recompute and print the before/after table; change nothing", NULL},
    {"force", TSI_OPT_BOOL, NULL, NULL,
     "replace even a day whose raw input is empty, unreadable or shrinks too much", NULL},
    {"max-shrink", TSI_OPT_DOUBLE, "0.5", "TSI_REPROCESS_MAX_SHRINK",
     "refuse when an hour or an intersection-day loses more than this share of its rows", "0..1"},
    {"lock-timeout-ms", TSI_OPT_INT, "2000", NULL,
     "lock timeout of the replacing transaction (retried with back-off)", "10..600000"},
    {"lock-retries", TSI_OPT_INT, "5", NULL,
     "attempts of a day's transaction after a lock or statement timeout", "0..100"},
    {"recover", TSI_OPT_BOOL, NULL, NULL,
     "only finish or roll back a swap an earlier run left unfinished, then exit", NULL},
    {NULL, 0, NULL, NULL, NULL, NULL},
};

int tsi_cmd_reprocess(int argc, char **argv)
{
    return tsi_cli_run(
        "tsi reprocess",
        "usage: tsi reprocess --since TIME --until TIME [--raw DIR] [--dry-run] [--force]\n"
        "       tsi reprocess --recover\n\n"
        "Recomputes features and indices of [since, until) from the raw archive with\n"
        "today's algorithm and constants, and replaces that range, one UTC day at a time:\n"
        "a new indices Parquet generation, the realtime rows inside the 48 h window, the\n"
        "hourly and daily rollups. Times are whole UTC hours (YYYY-MM-DDTHH:00Z).\n"
        "Before replacing anything it prints raw messages and rows per hour before and\n"
        "after, and refuses (exit 3, nothing changed) when a day's raw input is empty or\n"
        "unreadable or rows shrink by more than --max-shrink, unless --force. A swap an\n"
        "earlier run left unfinished is finished or rolled back first (--recover: only that).",
        tsi_reprocess_options, tsi_reprocess_run, argc, argv);
}

const tsi_option tsi_seed_options[] = {
    {"intersections", TSI_OPT_INT, "100", NULL, "number of intersections (ids 1..N)", "1..100000"},
    {"days", TSI_OPT_INT, "7", NULL,
     "days of history: 1-minute rows for min(D,2), hourly for min(D,90), daily for D", "1..3650"},
    {"seed", TSI_OPT_INT, "1", NULL, "random seed (same seed, same data)", "0..2147483647"},
    {"no-parquet", TSI_OPT_BOOL, NULL, NULL, "do not write the indices Parquet", NULL},
    {NULL, 0, NULL, NULL, NULL, NULL},
};

int tsi_cmd_seed(int argc, char **argv)
{
    return tsi_cli_run("tsi seed",
                       "usage: tsi seed [--intersections N] [--days D] [--seed S]\n\n"
                       "Writes realistic synthetic history (intersections, 1-minute rows,\n"
                       "hourly and daily rollups, indices Parquet) as tsi_owner.",
                       tsi_seed_options, tsi_seed_run, argc, argv);
}

const tsi_option tsi_features_options[] = {
    {"mapdata", TSI_OPT_PATH, NULL, NULL,
     "MapData JSON (an array of MapData, as /api/mapdata/decoded returns, or one)", NULL},
    {"messages", TSI_OPT_PATH, NULL, NULL,
     "JSON lines: each a BsmWithMetadata/PsmWithMetadata object or an array of them ('-' = "
     "stdin)",
     NULL},
    {"constants", TSI_OPT_PATH, NULL, NULL,
     "normalisation constants JSON (default: computed from the input's 1-minute features)", NULL},
    {"format", TSI_OPT_ENUM, "jsonl", NULL, "output format", "jsonl|csv"},
    {"output", TSI_OPT_PATH, "-", NULL, "where the records go ('-' = stdout)", NULL},
    {"priors", TSI_OPT_ENUM, "input", NULL,
     "Empirical Bayes priors: the input's own history (hierarchy of domain.md §4) or none",
     "input|none"},
    {"location-map", TSI_OPT_PATH, NULL, "TSI_LOCATION_MAP",
     "JSON object mapping locationName to intersection id (wins over geometry)", NULL},
    {"conflicts", TSI_OPT_PATH, NULL, NULL,
     "also write the conflict audit records (JSON lines) to this file", NULL},
    {"radius", TSI_OPT_DOUBLE, "150", "TSI_ASSIGN_RADIUS_M",
     "assignment radius around an intersection's refPoint, metres", "1..100000"},
    {"grace-seconds", TSI_OPT_INT, "10", "TSI_GRACE_SECONDS",
     "seconds a minute window waits for late messages", "0..3600"},
    {"timezone", TSI_OPT_STRING, "UTC", "TSI_TIMEZONE",
     "IANA time zone of hour_of_day and day_of_week", NULL},
    {"max-skew-seconds", TSI_OPT_INT, "120", "TSI_MAX_SKEW_SECONDS",
     "a message dated this far ahead of the receiver's clock is counted as clock_skew, not "
     "indexed (0: off)",
     "0..31536000"},
    {NULL, 0, NULL, NULL, NULL, NULL},
};

int tsi_cmd_features(int argc, char **argv)
{
    return tsi_cli_run("tsi features",
                       "usage: tsi features --mapdata FILE --messages FILE [--constants FILE] "
                       "[--format jsonl|csv]",
                       tsi_features_options, tsi_features_run, argc, argv);
}

const tsi_option tsi_explain_options[] = {
    {"features", TSI_OPT_PATH, NULL, NULL,
     "one minute's features as a JSON object (keys of domain.md §3; a `tsi features` record "
     "works)",
     NULL},
    {"constants", TSI_OPT_PATH, NULL, NULL,
     "normalisation constants JSON (I_vru_max, I_veh_max, V_max, sigma_max, S_ref, HB_max, "
     "k); default: the configured defaults",
     NULL},
    {"format", TSI_OPT_ENUM, "text", NULL, "output format", "text|json"},
    {"intersection", TSI_OPT_INT, NULL, NULL,
     "with --at: recompute that intersection's stored minute from the indices Parquet "
     "features with the constants set it records",
     "0..9007199254740991"},
    {"at", TSI_OPT_STRING, NULL, NULL,
     "with --intersection: the minute (YYYY-MM-DDTHH:MM[:SS][Z], UTC; seconds are dropped)", NULL},
    {"archive", TSI_OPT_PATH, NULL, "TSI_ARCHIVE_DIR",
     "with --intersection: the archive holding indices/ (default $TSI_HOME/archive)", NULL},
    {NULL, 0, NULL, NULL, NULL, NULL},
};

int tsi_cmd_explain(int argc, char **argv)
{
    return tsi_cli_run("tsi explain",
                       "usage: tsi explain --features FILE.json [--constants FILE.json] "
                       "[--format text|json]\n"
                       "       tsi explain --intersection ID --at TIME [--archive DIR] "
                       "[--format text|json]\n\n"
                       "The second form recomputes a stored minute from the features in "
                       "the indices Parquet with the constants set the row records (and its "
                       "EB priors) and shows the stored and recomputed indices side by side; "
                       "exit 1 when they differ by more than 1e-9.",
                       tsi_explain_options, tsi_explain_run, argc, argv);
}
