/* pull.c - `axserve pull`. Not written yet. */
#include <stdio.h>

#include "cli/cli.h"

int cli_pull(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "axserve pull: not implemented yet\n");
    return 2;
}
