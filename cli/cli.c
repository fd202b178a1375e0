/* cli.c: subcommand dispatch and the top-level help. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "fm.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} fm_command;

static const fm_command commands[] = {
    {"bench", fm_cmd_bench, "time a training step (forward, backward, optimiser) against BLIS's GEMM rate"},
    {"init", fm_cmd_init, "write a freshly initialised BERT model directory"},
    {"inspect", fm_cmd_inspect, "list a model's tensors, config and fingerprint, and check that it loads"},
    {"train", fm_cmd_train, "fine-tune a model on a GLUE task and score it on the dev set"},
    {"eval", fm_cmd_eval, "score a fine-tuned model on a GLUE dev set"},
    {"predict", fm_cmd_predict, "write GLUE submission files and raw scores"},
    {"demo", fm_cmd_demo, "the whole method at small scale on generated data (also: finemask with no arguments)"},
    {"pretrain", fm_cmd_pretrain, "pre-train a BERT with the masked-language-model objective on text files"},
    {"mask", fm_cmd_mask, "mask files: stats, overlap, apply to a model, export unpacked, random masks"},
    {"distance", fm_cmd_distance, "L1 and angular distances between two models' weight matrices"},
    {"tokenize", fm_cmd_tokenize, "BERT WordPiece token ids of the lines on stdin"},
    {"run", fm_cmd_run, "run a job file's whole sweep over MPI ranks (teams, data parallelism, report)"},
    {"report", fm_cmd_report, "rebuild a run directory's report/ from its files"},
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f) {
    fprintf(f,
            "finemask: fine-tune BERT on GLUE with supermasks, L0-close and full fine-tuning\n"
            "\n"
            "usage: finemask [-v|-q] COMMAND [OPTIONS]\n"
            "       finemask COMMAND --help\n"
            "\n"
            "commands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++) fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f,
            "\n"
            "global options:\n"
            "  -v, --verbose   more log lines (debug)\n"
            "  -q, --quiet     errors only\n"
            "  --version       print the version\n");
}

int fm_opt_long(const char *opt, const char *s, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi)
        return fm_fail("%s: expected an integer in [%lld, %lld], found '%s'", opt, lo, hi, s);
    *out = v;
    return FM_OK;
}

int fm_opt_double(const char *opt, const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !(v >= lo && v <= hi))
        return fm_fail("%s: expected a number in [%g, %g], found '%s'", opt, lo, hi, s);
    *out = v;
    return FM_OK;
}

int fm_cli_fail(void) {
    fm_print_error(fm_last_error());
    return 1;
}

int fm_cli_launcher_rank(void) {
    const char *names[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *v = getenv(names[i]);
        if (v && *v) return atoi(v);
    }
    return 0;
}

/* The commands that train or time, which log BLIS's kernel set once. */
static int computes(const char *cmd) {
    const char *names[] = {"demo", "train", "pretrain", "run", "bench", "eval", "predict"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(cmd, names[i])) return 1;
    return 0;
}

int fm_cli_main(int argc, char **argv) {
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose")) {
            fm_verbosity = 2;
        } else if (!strcmp(argv[i], "-q") || !strcmp(argv[i], "--quiet")) {
            fm_verbosity = 0;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--version")) {
            printf("finemask %s\n", FM_VERSION);
            return 0;
        } else {
            fprintf(stderr, "finemask: error: unknown option '%s' (see finemask --help)\n", argv[i]);
            return 1;
        }
    }
    if ((i == argc || computes(argv[i])) && fm_cli_launcher_rank() == 0) fm_log("BLIS: %s", fm_blas_choice());
    if (i == argc) {
        /* No subcommand: the demo. */
        char *def[] = {"demo", NULL};
        return fm_cmd_demo(1, def);
    }
    for (size_t c = 0; c < NCOMMANDS; c++)
        if (!strcmp(argv[i], commands[c].name)) return commands[c].run(argc - i, argv + i);
    fprintf(stderr, "finemask: error: unknown command '%s' (see finemask --help)\n", argv[i]);
    return 1;
}
