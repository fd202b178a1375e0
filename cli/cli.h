/* cli.h: the subcommands of the finemask program. Each takes the argv that
 * follows the subcommand name (argv[0] is the subcommand) and returns the
 * process exit status: 0 success, 1 a user error (already printed), 2 an
 * internal failure. */
#ifndef FM_CLI_H
#define FM_CLI_H

int fm_cli_main(int argc, char **argv);

int fm_cmd_bench(int argc, char **argv);

/* Print the recorded error (fm_last_error) and return exit status 1. */
int fm_cli_fail(void);

#endif
