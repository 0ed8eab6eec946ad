/* cli/commands.c — the registry: see commands.h */
#include "cli/commands.h"

#include <stdio.h>
#include <string.h>

#include "db/cluster.h"
#include "db/migrate.h"
#include "archive/compact.h"
#include "ops/audit.h"
#include "ops/backup.h"
#include "db/status.h"

const tsi_command tsi_commands[] = {
    {"db", "manage the embedded PostgreSQL cluster (start|stop|status|url|psql|bootstrap|ha)",
     tsi_cmd_db},
    {"migrate", "apply the embedded SQL migrations (or --status)", tsi_cmd_migrate},
    {"config", "print the configuration table (--markdown for the README)", tsi_cmd_config},
    {"archive", "the Parquet archive: compact (merge an hour's small files)", tsi_cmd_archive},
    {"collect", "the collector daemon: VCC -> raw Parquet + indices -> PostgreSQL",
     tsi_cmd_collect},
    {"seed", "write realistic synthetic history (intersections, indices, rollups, Parquet)",
     tsi_cmd_seed},
    {"serve", "the API server (HTTP/JSON, dashboard, /metrics)", tsi_cmd_serve},
    {"backup", "backups with pgBackRest: setup|run|list|restore --to TIME", tsi_cmd_backup},
    {"audit", "recent schema changes (DDL) from pgaudit's log", tsi_cmd_audit},
    {"status", "database facts: sizes, rows, partitions, slow queries, replication, jobs",
     tsi_cmd_status},
    {"jobs", "rollups, retention, partitions, constants: run|install|status", tsi_cmd_jobs},
    {"backfill", "load indices Parquet (tsi and legacy layouts) into PostgreSQL, then validate",
     tsi_cmd_backfill},
    {"validate", "compare indices Parquet with PostgreSQL (counts, stats, sample, rollups)",
     tsi_cmd_validate},
    {"reprocess", "recompute a range from the raw archive with today's constants, replace it",
     tsi_cmd_reprocess},
    {"sim", "the VCC simulator: OAuth2, REST, WebSocket streams, traffic with ground truth",
     tsi_cmd_sim},
    {"features",
     "the domain pipeline offline: MapData + message lines -> per-minute features and indices",
     tsi_cmd_features},
    {"explain", "the safety index of one minute's features, term by term", tsi_cmd_explain},
    {NULL, NULL, NULL},
};

const tsi_option_doc tsi_option_docs[] = {
    {"(every command)", tsi_global_options},
    {"db", tsi_db_options},
    {"db ha", tsi_db_ha_options},
    {"migrate", tsi_migrate_options},
    {"archive compact", tsi_archive_compact_options},
    {"collect", tsi_collect_options},
    {"seed", tsi_seed_options},
    {"serve", tsi_serve_options},
    {"backup", tsi_backup_options},
    {"audit", tsi_audit_options},
    {"status", tsi_status_options},
    {"jobs", tsi_jobs_options},
    {"backfill", tsi_backfill_options},
    {"validate", tsi_validate_options},
    {"reprocess", tsi_reprocess_options},
    {"sim", tsi_sim_options},
    {"features", tsi_features_options},
    {"explain", tsi_explain_options},
    {NULL, NULL},
};

int tsi_cli_dispatch(const char *prefix, const char *summary, const tsi_command *subs, int argc,
                     char **argv)
{
    const char *sub = argc > 1 ? argv[1] : NULL;
    if (sub == NULL || strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 ||
        strcmp(sub, "help") == 0) {
        FILE *out = sub ? stdout : stderr;
        fprintf(out, "usage: %s <command> [options]\n\n%s\n\nCommands:\n", prefix, summary);
        for (const tsi_command *c = subs; c->name; c++)
            fprintf(out, "  %-12s %s\n", c->name, c->summary);
        fprintf(out, "\nRun '%s <command> --help' for the options of each.\n", prefix);
        return sub ? 0 : 2;
    }
    for (const tsi_command *c = subs; c->name; c++)
        if (strcmp(c->name, sub) == 0)
            return c->run(argc - 1, argv + 1);
    fprintf(stderr, "%s: unknown command '%s' (see %s --help)\n", prefix, sub, prefix);
    return 2;
}

int tsi_cli_run(const char *command, const char *usage, const tsi_option *spec,
                int (*run)(const tsi_opts *o), int argc, char **argv)
{
    tsi_opts o;
    int rc = tsi_opts_parse(&o, command, usage, spec, 0, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    rc = run(&o);
    tsi_opts_free(&o);
    return rc;
}

static const char *type_name(tsi_opt_type t)
{
    switch (t) {
    case TSI_OPT_STRING:
        return "string";
    case TSI_OPT_PATH:
        return "path";
    case TSI_OPT_INT:
        return "integer";
    case TSI_OPT_DOUBLE:
        return "number";
    case TSI_OPT_BOOL:
        return "boolean";
    case TSI_OPT_ENUM:
        return "enum";
    }
    return "?";
}

static const tsi_option config_options[] = {
    {"markdown", TSI_OPT_BOOL, NULL, NULL, "print the table as Markdown (the README section)",
     NULL},
    {NULL, 0, NULL, NULL, NULL, NULL},
};

int tsi_cmd_config(int argc, char **argv)
{
    tsi_opts o;
    int rc = tsi_opts_parse(&o, "tsi config", "usage: tsi config [--markdown]", config_options, 0,
                            argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    bool md = tsi_opts_bool(&o, "markdown");
    if (md) {
        printf("| command | option | env | type | default | description |\n");
        printf("|---|---|---|---|---|---|\n");
    }
    for (const tsi_option_doc *d = tsi_option_docs; d->command; d++) {
        for (const tsi_option *p = d->spec; p->name; p++) {
            char ty[128];
            if (p->choices)
                snprintf(ty, sizeof ty, "%s (%s)", type_name(p->type), p->choices);
            else
                snprintf(ty, sizeof ty, "%s", type_name(p->type));
            if (md) {
                char esc[128];
                size_t j = 0;
                for (const char *c = ty; *c && j < sizeof esc - 2; c++) {
                    if (*c == '|')
                        esc[j++] = '\\';
                    esc[j++] = *c;
                }
                esc[j] = '\0';
                printf("| %s | `--%s` | %s | %s | %s | %s |\n", d->command, p->name,
                       p->env ? p->env : "", esc, p->def ? p->def : "", p->help);
            } else {
                printf("%-16s --%-22s %-20s %s\n", d->command, p->name, p->env ? p->env : "-",
                       p->help);
            }
        }
    }
    tsi_opts_free(&o);
    return 0;
}
