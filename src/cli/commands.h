/* cli/commands.h — the registry of tsi's subcommands and their option tables.
 *
 * Each room exports `int tsi_cmd_<name>(int argc, char **argv)` (argv[0] is the command
 * name; returns the process exit status: 0 ok, 1 failure, 2 usage error) and its option
 * tables. The registry drives `tsi --help` and `tsi config --markdown` (the README's
 * configuration section). To add a command: one line in each table of commands.c. */
#ifndef TSI_COMMANDS_H
#define TSI_COMMANDS_H

#include "base/options.h"

typedef struct tsi_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} tsi_command;

typedef struct tsi_option_doc {
    const char *command; /* "db start" */
    const tsi_option *spec;
} tsi_option_doc;

extern const tsi_command tsi_commands[];       /* terminated by name == NULL */
extern const tsi_option_doc tsi_option_docs[]; /* terminated by command == NULL */

int tsi_cmd_db(int argc, char **argv);         /* cli/cmd_db.c */
extern const tsi_option tsi_db_options[];      /* cli/cmd_db.c */
int tsi_cmd_db_ha(int argc, char **argv);      /* cli/cmd_db_ha.c */
extern const tsi_option tsi_db_ha_options[];   /* cli/cmd_db_ha.c */
int tsi_cmd_migrate(int argc, char **argv);    /* cli/cmd_migrate.c */
extern const tsi_option tsi_migrate_options[]; /* cli/cmd_migrate.c */
int tsi_cmd_config(int argc, char **argv);
int tsi_cmd_archive(int argc, char **argv);            /* cli/cmd_archive.c */
extern const tsi_option tsi_archive_compact_options[]; /* cli/cmd_archive.c */
int tsi_cmd_collect(int argc, char **argv);            /* cli/cmd_collect.c */
extern const tsi_option tsi_collect_options[];         /* cli/cmd_collect.c */
int tsi_cmd_backup(int argc, char **argv);             /* cli/cmd_backup.c */
extern const tsi_option tsi_backup_options[];          /* cli/cmd_backup.c */
int tsi_cmd_audit(int argc, char **argv);              /* cli/cmd_audit.c */
extern const tsi_option tsi_audit_options[];           /* cli/cmd_audit.c */
int tsi_cmd_status(int argc, char **argv);             /* cli/cmd_status.c */
extern const tsi_option tsi_status_options[];          /* cli/cmd_status.c */
int tsi_cmd_seed(int argc, char **argv);               /* cli/cmd_tools.c */
extern const tsi_option tsi_seed_options[];            /* cli/cmd_tools.c */
int tsi_cmd_serve(int argc, char **argv);              /* cli/cmd_serve.c */
extern const tsi_option tsi_serve_options[];           /* cli/cmd_serve.c */
int tsi_cmd_jobs(int argc, char **argv);               /* cli/cmd_jobs.c */
extern const tsi_option tsi_jobs_options[];            /* cli/cmd_jobs.c */
int tsi_cmd_backfill(int argc, char **argv);           /* cli/cmd_tools.c */
extern const tsi_option tsi_backfill_options[];        /* cli/cmd_tools.c */
int tsi_cmd_validate(int argc, char **argv);           /* cli/cmd_tools.c */
extern const tsi_option tsi_validate_options[];        /* cli/cmd_tools.c */
int tsi_cmd_reprocess(int argc, char **argv);          /* cli/cmd_tools.c */
extern const tsi_option tsi_reprocess_options[];       /* cli/cmd_tools.c */
int tsi_cmd_features(int argc, char **argv);           /* cli/cmd_tools.c */
extern const tsi_option tsi_features_options[];        /* cli/cmd_tools.c */
int tsi_cmd_explain(int argc, char **argv);            /* cli/cmd_tools.c */
extern const tsi_option tsi_explain_options[];         /* cli/cmd_tools.c */
int tsi_cmd_sim(int argc, char **argv);                /* cli/cmd_sim.c */
extern const tsi_option tsi_sim_options[];             /* cli/cmd_sim.c */

/* Runs a subcommand from `subs` (argv[1]); prints the list on --help or when missing.
 * `prefix` is "tsi db". Returns the exit status. */
int tsi_cli_dispatch(const char *prefix, const char *summary, const tsi_command *subs, int argc,
                     char **argv);

/* Parses argv with `spec` (`command` is "tsi seed", `usage` its usage text) and runs
 * `run` on the options: `run`'s return value is the exit status. --help exits 0, a bad
 * flag 2 (with tsi_opts_parse's message). */
int tsi_cli_run(const char *command, const char *usage, const tsi_option *spec,
                int (*run)(const tsi_opts *o), int argc, char **argv);

#endif
