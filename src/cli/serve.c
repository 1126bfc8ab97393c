/* serve.c - `axserve serve`. Not written yet. */
#include <stdio.h>

#include "cli/cli.h"

int cli_serve(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "axserve serve: not implemented yet\n");
    return 2;
}
