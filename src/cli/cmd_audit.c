/* cli/cmd_audit.c — `tsi audit [--since 7d] [--limit 50] [--db NAME] [--json]`: the command
 * line of ops/audit.h. */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/buf.h"
#include "base/jsonw.h"
#include "base/options.h"
#include "cli/commands.h"
#include "db/cluster.h"
#include "db/conn.h"
#include "ops/audit.h"

const tsi_option tsi_audit_options[] = {
    {"since", TSI_OPT_STRING, "7d", NULL, "how far back: N followed by m, h or d", NULL},
    {"limit", TSI_OPT_INT, "50", NULL, "at most this many changes (the newest)", "1..100000"},
    {"db", TSI_OPT_STRING, NULL, NULL, "only changes in this database", NULL},
    {"log-dir", TSI_OPT_PATH, NULL, "TSI_AUDIT_LOG_DIR",
     "the server's log directory (default: the embedded cluster's <data>/log)", NULL},
    {"json", TSI_OPT_BOOL, NULL, NULL, "one JSON object per line instead of a table", NULL},
    {NULL, 0, NULL, NULL, NULL, NULL},
};

static void one_line(char *s)
{
    for (; *s; s++)
        if (*s == '\n' || *s == '\r' || *s == '\t')
            *s = ' ';
}

int tsi_cmd_audit(int argc, char **argv)
{
    tsi_opts o;
    int rc = tsi_opts_parse(&o, "tsi audit",
                            "usage: tsi audit [--since 7d] [--limit 50] [--db NAME] [--json]\n\n"
                            "Recent schema changes (DDL) from pgaudit's log: time, role, "
                            "database, command, object, statement.",
                            tsi_audit_options, 0, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    long window = tsi_audit_parse_since(tsi_opts_str(&o, "since"));
    if (window < 0) {
        fprintf(stderr, "tsi audit: --since '%s': expected N followed by m, h or d (e.g. 7d)\n",
                tsi_opts_str(&o, "since"));
        tsi_opts_free(&o);
        return 2;
    }
    char dir[PATH_MAX];
    if (tsi_opts_str(&o, "log-dir")) {
        snprintf(dir, sizeof dir, "%s", tsi_opts_str(&o, "log-dir"));
    } else if (tsi_db_external()) {
        fprintf(stderr, "tsi audit: with an external database (DATABASE_URL/PG*), pgaudit "
                        "writes to that server's log: give its directory with --log-dir\n");
        tsi_opts_free(&o);
        return 1;
    } else {
        char data[PATH_MAX];
        tsi_cluster_data_dir(data, sizeof data);
        snprintf(dir, sizeof dir, "%s/log", data);
    }
    tsi_audit_list es;
    tsi_error err = {0};
    if (tsi_audit_read(dir, time(NULL) - window, tsi_opts_str(&o, "db"), &es, &err) < 0) {
        tsi_opts_free(&o);
        return tsi_error_report("tsi audit", &err);
    }
    int files = es.files;
    size_t limit = (size_t)tsi_opts_int(&o, "limit");
    size_t first = es.n > limit ? es.n - limit : 0;
    bool json = tsi_opts_bool(&o, "json");
    if (!json)
        printf("%-27s %-12s %-14s %-24s %-32s %s\n", "time", "role", "database", "command",
               "object", "statement");
    for (size_t i = first; i < es.n; i++) {
        tsi_audit_entry *e = &es.v[i];
        if (json) {
            tsi_buf b = TSI_BUF_INIT;
            tsi_jsonw w;
            tsi_jsonw_init(&w, &b);
            tsi_jsonw_object(&w);
            tsi_jsonw_kv_str(&w, "time", e->time);
            tsi_jsonw_kv_str(&w, "role", e->role);
            tsi_jsonw_kv_str(&w, "database", e->database);
            tsi_jsonw_kv_str(&w, "class", e->audit_class);
            tsi_jsonw_kv_str(&w, "command", e->command);
            tsi_jsonw_kv_str(&w, "object_type", e->object_type);
            tsi_jsonw_kv_str(&w, "object", e->object);
            tsi_jsonw_kv_str(&w, "statement", e->statement);
            tsi_jsonw_end(&w);
            printf("%s\n", tsi_buf_cstr(&b));
            tsi_buf_free(&b);
        } else {
            one_line(e->statement);
            printf("%-27s %-12s %-14s %-24s %-32s %.100s\n", e->time, e->role, e->database,
                   e->command, e->object[0] ? e->object : "-", e->statement);
        }
    }
    if (!json)
        fprintf(stderr, "tsi audit: %zu schema change(s) in %d log file(s) of %s\n", es.n - first,
                files, dir);
    free(es.v);
    tsi_opts_free(&o);
    return 0;
}
