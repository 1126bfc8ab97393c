/* chat.c - `axserve chat`. Not written yet. */
#include <stdio.h>

#include "cli/cli.h"

int cli_chat(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "axserve chat: not implemented yet\n");
    return 2;
}
