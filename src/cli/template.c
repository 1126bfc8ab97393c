/* template.c - `axserve template`. Not written yet. */
#include <stdio.h>

#include "cli/cli.h"

int cli_template(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "axserve template: not implemented yet\n");
    return 2;
}
