/* emu-compile.c - `axserve emu-compile`. Not written yet. */
#include <stdio.h>

#include "cli/cli.h"

int cli_emu_compile(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "axserve emu-compile: not implemented yet\n");
    return 2;
}
