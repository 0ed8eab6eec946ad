/* commands.h — the registry of tsi's subcommands and their option tables.
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

int tsi_cmd_db(int argc, char **argv);
int tsi_cmd_migrate(int argc, char **argv);
int tsi_cmd_config(int argc, char **argv);

/* Runs a subcommand from `subs` (argv[1]); prints the list on --help or when missing.
 * `prefix` is "tsi db". Returns the exit status. */
int tsi_cli_dispatch(const char *prefix, const char *summary, const tsi_command *subs, int argc,
                     char **argv);

#endif
