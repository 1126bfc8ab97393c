/* generate.c - `axserve generate`. Not written yet. */
#include <stdio.h>

#include "cli/cli.h"

int cli_generate(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "axserve generate: not implemented yet\n");
    return 2;
}
