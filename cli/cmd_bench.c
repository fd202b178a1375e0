/* cmd_bench.c: placeholder until the benchmark lands in this session. */
#include "cli.h"
int fm_cmd_bench(int argc, char **argv) { (void)argc; (void)argv; return 0; }
