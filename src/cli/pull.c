/* pull.c - `axserve pull REPO [--dir DIR] [--include PATTERN]...`:
 * downloads a model repository from the Hugging Face hub (hub/hub.c).
 * AXSERVE_HUB_URL overrides the hub (default https://huggingface.co);
 * HF_TOKEN is sent as a bearer token. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "hub/hub.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: axserve pull REPO [--dir DIR] [--include PATTERN]...\n"
               "  REPO       e.g. Qwen/Qwen3-0.6B or AXERA-TECH/Qwen3-4B\n"
               "  --dir      destination (default: models/NAME)\n"
               "  --include  only files matching this shell pattern (repeatable),\n"
               "             e.g. --include '*.json' --include 'qwen3_tokenizer/*'\n"
               "Environment: AXSERVE_HUB_URL (default https://huggingface.co), HF_TOKEN.\n"
               "Resumes partial downloads (*.part) and skips files already complete.\n");
}

int cli_pull(int argc, char **argv)
{
    struct hub_opts o = {0};
    char dir[1024];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            o.dir = argv[++i];
        else if (!strcmp(argv[i], "--include") && i + 1 < argc) {
            if (o.n_include >= HUB_MAX_INCLUDE) {
                fprintf(stderr, "pull: at most %d --include patterns\n", HUB_MAX_INCLUDE);
                return 2;
            }
            o.include[o.n_include++] = argv[++i];
        } else if (argv[i][0] != '-' && !o.repo)
            o.repo = argv[i];
        else {
            usage(stderr);
            return 2;
        }
    }
    if (!o.repo) {
        usage(stderr);
        return 2;
    }
    if (!o.dir) {
        const char *name = strrchr(o.repo, '/');
        snprintf(dir, sizeof dir, "models/%s", name ? name + 1 : o.repo);
        o.dir = dir;
    }
    o.base_url = getenv("AXSERVE_HUB_URL");
    if (!o.base_url || !*o.base_url)
        o.base_url = "https://huggingface.co";
    o.token = getenv("HF_TOKEN");
    o.retries = 5;
    o.log = stdout;
    char err[AX_ERRLEN] = "";
    if (o.dir == dir) {
        /* default dir: make sure "models/" exists */
        char parent[1024];
        snprintf(parent, sizeof parent, "%s", dir);
        char *s = strrchr(parent, '/');
        if (s) {
            *s = '\0';
            mkdir(parent, 0755);
        }
    }
    enum ax_err rc = hub_pull(&o, err);
    if (rc) {
        fprintf(stderr, "pull: %s\n", err);
        return 1;
    }
    printf("done: %s\n", o.dir);
    return 0;
}
