/* cli/cmd_archive.c — `tsi archive compact`: the command line of archive/compact.h. */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "archive/compact.h"
#include "archive/raw.h"
#include "base/options.h"
#include "cli/commands.h"

const tsi_option tsi_archive_compact_options[] = {
    {"archive-dir", TSI_OPT_PATH, NULL, "TSI_ARCHIVE_DIR",
     "the Parquet archive (default $TSI_HOME/archive)", NULL},
    {"kind", TSI_OPT_ENUM, "all", NULL, "which files to compact",
     "all|bsm|psm|mapdata|spat|indices"},
    {"min-age-hours", TSI_OPT_INT, "2", "TSI_COMPACT_MIN_AGE_HOURS",
     "only hours (days for indices) that ended at least this long ago", "0..100000"},
    {NULL, 0, NULL, NULL, NULL, NULL},
};

static int cmd_compact(int argc, char **argv)
{
    tsi_opts o;
    int rc = tsi_opts_parse(&o, "tsi archive compact",
                            "usage: tsi archive compact [--kind K] [--min-age-hours N]",
                            tsi_archive_compact_options, 0, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    char root[PATH_MAX];
    if (tsi_opts_str(&o, "archive-dir"))
        snprintf(root, sizeof root, "%s", tsi_opts_str(&o, "archive-dir"));
    else
        tsi_archive_root(root, sizeof root);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    tsi_compact_stats st;
    tsi_error e = {0};
    rc = tsi_archive_compact(root, tsi_opts_str(&o, "kind"), (int)tsi_opts_int(&o, "min-age-hours"),
                             (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, &st, &e);
    tsi_opts_free(&o);
    printf("compacted dirs=%lld files_in=%lld files_out=%lld rows=%lld recovered=%lld "
           "tmp_removed=%lld\n",
           st.dirs, st.files_in, st.files_out, st.rows, st.recovered, st.tmp_removed);
    if (rc < 0) {
        char buf[800];
        fprintf(stderr, "tsi archive compact: %s\n", tsi_error_str(&e, buf, sizeof buf));
        return 1;
    }
    return 0;
}

static const tsi_command archive_subs[] = {
    {"compact",
     "merge each closed hour's small Parquet files into one (counts and checksums "
     "checked)",
     cmd_compact},
    {NULL, NULL, NULL},
};

int tsi_cmd_archive(int argc, char **argv)
{
    return tsi_cli_dispatch("tsi archive", "the Parquet archive", archive_subs, argc, argv);
}
