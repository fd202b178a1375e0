/* main.c: the finemask command line: dispatches to the subcommands. */
#include <stdio.h>
#include <string.h>

#include "blas.h"
#include "cli.h"
#include "fm.h"

int main(int argc, char **argv) {
    fm_blas_init(argv);
    return fm_cli_main(argc, argv);
}
