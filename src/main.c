/* main.c — `tsi`: dispatch to a subcommand of the registry (commands.c). */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc > 1 && (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0)) {
        printf("tsi %s\n", TSI_VERSION);
        return 0;
    }
    return tsi_cli_dispatch("tsi",
                            "tsi — traffic safety index: collect V2X messages, compute "
                            "per-intersection safety indices, serve them.",
                            tsi_commands, argc, argv);
}
