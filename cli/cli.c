/* cli.c: subcommand dispatch and the top-level help. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

#include "fm.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} fm_command;

static const fm_command commands[] = {
    {"bench", fm_cmd_bench, "time a training step (forward, backward, optimiser) against BLIS's GEMM rate"},
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

int fm_cli_fail(void) {
    fm_print_error(fm_last_error());
    return 1;
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
    if (i == argc) {
        /* No subcommand: the default job. */
        char *def[] = {"bench", "--config", "base", NULL};
        return fm_cmd_bench(3, def);
    }
    for (size_t c = 0; c < NCOMMANDS; c++)
        if (!strcmp(argv[i], commands[c].name)) return commands[c].run(argc - i, argv + i);
    fprintf(stderr, "finemask: error: unknown command '%s' (see finemask --help)\n", argv[i]);
    return 1;
}
