/* main.c - `axserve COMMAND [ARGS]`: dispatches to src/cli/. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
};

static const struct command commands[] = {
    {"serve", cli_serve, "OpenAI-compatible HTTP server"},
    {"chat", cli_chat, "chat in the terminal"},
    {"tokenize", cli_tokenize, "text on stdin -> JSON array of token ids"},
    {"detokenize", cli_detokenize, "JSON array of ids on stdin -> text"},
    {"template", cli_template, "chat request JSON on stdin -> rendered prompt"},
    {"generate", cli_generate, "run the model on a prompt, print tokens and logprobs"},
    {"make-test-model", cli_make_test_model, "write a synthetic Qwen3 checkpoint"},
    {"emu-compile", cli_emu_compile, "HF checkpoint -> AXCL-emulator model directory"},
    {"doctor", cli_doctor, "check the AXCL runtime, devices and a model directory"},
    {"pull", cli_pull, "download a model from the Hugging Face hub"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: axserve COMMAND [ARGS]   (axserve COMMAND --help for details)\n\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-16s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "axserve: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
