/* doctor.c - `axserve doctor`. Not written yet. */
#include <stdio.h>

#include "cli/cli.h"

int cli_doctor(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "axserve doctor: not implemented yet\n");
    return 2;
}
