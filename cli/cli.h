/* cli.h: the subcommands of the finemask program. Each takes the argv that
 * follows the subcommand name (argv[0] is the subcommand) and returns the
 * process exit status: 0 success, 1 a user error (already printed), 2 an
 * internal failure. */
#ifndef FM_CLI_H
#define FM_CLI_H

int fm_cli_main(int argc, char **argv);

int fm_cmd_bench(int argc, char **argv);
int fm_cmd_train(int argc, char **argv);
int fm_cmd_eval(int argc, char **argv);
int fm_cmd_predict(int argc, char **argv);
int fm_cmd_init(int argc, char **argv);
int fm_cmd_inspect(int argc, char **argv);
int fm_cmd_tokenize(int argc, char **argv);
int fm_cmd_pretrain(int argc, char **argv);
int fm_cmd_demo(int argc, char **argv);
int fm_cmd_run(int argc, char **argv);
int fm_cmd_report(int argc, char **argv);
int fm_cmd_mask(int argc, char **argv);
int fm_cmd_distance(int argc, char **argv);

/* Parse option values strictly: the whole string, within [lo, hi]; FM_ERR
 * naming the option and the value otherwise. */
int fm_opt_long(const char *opt, const char *s, long long lo, long long hi, long long *out);
int fm_opt_double(const char *opt, const char *s, double lo, double hi, double *out);

/* Print the recorded error (fm_last_error) and return exit status 1. */
int fm_cli_fail(void);
/* This process's rank as the MPI launcher gave it (OMPI_COMM_WORLD_RANK,
 * PMIX_RANK, PMI_RANK or SLURM_PROCID), before MPI starts; 0 outside MPI. */
int fm_cli_launcher_rank(void);

#endif
