/* make-test-model.c - `axserve make-test-model`. Not written yet. */
#include <stdio.h>

#include "cli/cli.h"

int cli_make_test_model(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "axserve make-test-model: not implemented yet\n");
    return 2;
}
