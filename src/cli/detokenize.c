/* detokenize.c - `axserve detokenize`. Not written yet. */
#include <stdio.h>

#include "cli/cli.h"

int cli_detokenize(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "axserve detokenize: not implemented yet\n");
    return 2;
}
