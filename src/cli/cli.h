/* cli.h - one function per `axserve COMMAND`, each in src/cli/NAME.c.
 * Each returns the process exit status: 0 success, 1 failure, 2 usage. */
#ifndef AX_CLI_CLI_H
#define AX_CLI_CLI_H

int cli_serve(int argc, char **argv);
int cli_chat(int argc, char **argv);
int cli_tokenize(int argc, char **argv);
int cli_detokenize(int argc, char **argv);
int cli_template(int argc, char **argv);
int cli_generate(int argc, char **argv);
int cli_make_test_model(int argc, char **argv);
int cli_emu_compile(int argc, char **argv);
int cli_doctor(int argc, char **argv);
int cli_pull(int argc, char **argv);

#endif
