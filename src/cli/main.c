/* cli/main.c — `tsi`: dispatch to a subcommand of the registry (commands.c). */
#include <signal.h>
#include <stdio.h>
#include <stddef.h>
#include <string.h>

#include "cli/commands.h"

/* every command's option table: a configuration file key in none of them is refused */
static const tsi_option *known_tables[64];

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    size_t n = 0;
    for (const tsi_option_doc *d = tsi_option_docs; d->command && n + 1 < 64; d++)
        known_tables[n++] = d->spec;
    known_tables[n] = NULL;
    tsi_opts_set_known_tables(known_tables);
    if (argc > 1 && (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0)) {
        printf("tsi %s\n", TSI_VERSION);
        return 0;
    }
    return tsi_cli_dispatch("tsi",
                            "tsi — traffic safety index: collect V2X messages, compute "
                            "per-intersection safety indices, serve them.",
                            tsi_commands, argc, argv);
}
