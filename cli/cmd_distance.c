/* cmd_distance.c: `finemask distance MODEL_A MODEL_B`: how far apart two
 * models' weight matrices are, beside random initialisations (the paper's
 * Table 2 and Figure 2). */
#define _GNU_SOURCE
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis.h"
#include "analysisjson.h"
#include "cli.h"
#include "fm.h"
#include "modeldir.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: finemask distance MODEL_A MODEL_B [--json] [--tensors GLOB] [--seed N]\n"
            "\n"
            "For every weight matrix (embeddings, encoder, pooler; not biases, LayerNorm or\n"
            "the heads) of two model directories of the same shape, e.g. a pre-trained\n"
            "model and its fine-tuned or masked version:\n"
            "  l1        the L1 norm of the difference, sum |a - b| (the paper's Table 2)\n"
            "  l1_mean   l1 divided by the number of entries (comparable across matrices)\n"
            "  angular   arccos(cos(a, b)) / pi: 0 same direction, 0.5 orthogonal\n"
            "beside the same figures for two independent random initialisations R1, R2 of\n"
            "the matrix, uniform on [-1/sqrt(h), 1/sqrt(h)] and normal with standard\n"
            "deviation 1/sqrt(h) (h the matrix's fan-in: its number of columns, the hidden\n"
            "size except for output.dense, whose fan-in is the intermediate size), and for\n"
            "R1 against MODEL_A. The last row treats all listed matrices as one vector.\n"
            "Sums are accumulated in double; the random draws are Philox(seed).\n"
            "\n"
            "  --json          print {\"model_a\", \"model_b\", \"seed\", \"tensors\": [row...], \"all\": row},\n"
            "                  row {\"name\", \"layer\", \"shape\", \"entries\", \"fan_in\", \"ab\",\n"
            "                  \"uniform_pair\", \"normal_pair\", \"uniform_vs_a\", \"normal_vs_a\"},\n"
            "                  each {\"l1\", \"l1_mean\", \"cosine\", \"angular\"}\n"
            "  --tensors GLOB  only the matrices whose names match (comma-separated fnmatch globs,\n"
            "                  names without \"bert.\")\n"
            "  --seed N        seed of the random initialisations (default 0)\n");
}

/* distance's command line. */
typedef struct {
    int json;
    const char *glob, *files[2];
    long long seed;
} dist_opts;

/* The command line into o, checked. Returns -1 to go on, else the exit status. */
static int dist_parse(int argc, char **argv, dist_opts *o) {
    static const struct option opts[] = {
        {"json", no_argument, 0, 'j'}, {"tensors", required_argument, 0, 'g'},
        {"seed", required_argument, 0, 's'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
    };
    *o = (dist_opts){0};
    int nfiles = 0;
    optind = 0;
    opterr = 0;
    for (int ch; (ch = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
        switch (ch) {
        case 'j': o->json = 1; break;
        case 'g': o->glob = optarg; break;
        case 's':
            if (fm_opt_long("--seed", optarg, 0, INT64_MAX, &o->seed) != FM_OK) return fm_cli_fail();
            break;
        case 'h': usage(stdout); return 0;
        default:
            fm_fail("distance: unknown or incomplete option '%s' (see --help)", argv[optind - 1]);
            return fm_cli_fail();
        }
    }
    for (; optind < argc; optind++) {
        if (nfiles == 2) {
            fm_fail("distance: unexpected argument '%s' (two model directories expected)", argv[optind]);
            return fm_cli_fail();
        }
        o->files[nfiles++] = argv[optind];
    }
    if (nfiles != 2) {
        fm_fail("distance: expected two model directories (see --help)");
        return fm_cli_fail();
    }
    return -1;
}

/* --json: the report as one JSON object on standard output. */
static int dist_print_json(const dist_opts *o, const fm_distance_report *r) {
    json_t *j = json_object();
    json_object_set_new(j, "model_a", json_string(o->files[0]));
    json_object_set_new(j, "model_b", json_string(o->files[1]));
    json_t *d = fm_distance_json(r);
    json_object_update(j, d);
    json_decref(d);
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(j);
    if (!s) return fm_fail("out of memory writing JSON");
    printf("%s\n", s);
    free(s);
    return FM_OK;
}

/* The report as a table on standard output: a row per matrix and one for all. */
static void dist_print_table(const dist_opts *o, const fm_distance_report *r) {
    printf("A = %s\nB = %s\n", o->files[0], o->files[1]);
    printf("random references: R1, R2 uniform on +-1/sqrt(fan_in) (U) or normal, std 1/sqrt(fan_in) (N); seed "
           "%lld\n",
           o->seed);
    int w = 5;
    for (int i = 0; i < r->n; i++)
        if ((int)strlen(r->tensor[i].label) > w) w = (int)strlen(r->tensor[i].label);
    printf("\n%-*s  %12s  %14s  %10s  %10s | %21s | %21s | %21s | %21s\n", w, "", "", "A vs B", "", "",
           "U R1 vs U R2", "N R1 vs N R2", "U R1 vs A", "N R1 vs A");
    printf("%-*s  %12s  %14s  %10s  %10s | %10s  %9s | %10s  %9s | %10s  %9s | %10s  %9s\n", w, "matrix",
           "entries", "l1", "l1_mean", "angular", "l1_mean", "angular", "l1_mean", "angular", "l1_mean", "angular",
           "l1_mean", "angular");
    for (int i = 0; i <= r->n; i++) {
        const fm_distance_row *t = i < r->n ? &r->tensor[i] : &r->all;
        printf("%-*s  %12zu  %14.6g  %10.4g  %10.4g | %10.4g  %9.6f | %10.4g  %9.6f | %10.4g  %9.6f | %10.4g  "
               "%9.6f\n",
               w, t->label, t->numel, t->ab.l1, t->ab.l1_mean, t->ab.angular, t->uniform_pair.l1_mean,
               t->uniform_pair.angular, t->normal_pair.l1_mean, t->normal_pair.angular, t->uniform_vs_a.l1_mean,
               t->uniform_vs_a.angular, t->normal_vs_a.l1_mean, t->normal_vs_a.angular);
    }
}

int fm_cmd_distance(int argc, char **argv) {
    dist_opts opt;
    int st = dist_parse(argc, argv, &opt);
    if (st >= 0) return st;
    fm_load_opts o;
    fm_load_opts_default(&o);
    o.with_mlm = 0; /* heads are not compared; the task head loads as config.json says */
    fm_model a, b;
    if (fm_modeldir_load(opt.files[0], &o, &a, NULL) != FM_OK) return fm_cli_fail();
    if (fm_modeldir_load(opt.files[1], &o, &b, NULL) != FM_OK) {
        fm_model_free(&a);
        return fm_cli_fail();
    }
    fm_distance_report r;
    int rc = fm_distance_models(&r, &a.lay, a.params, &b.lay, b.params, opt.glob, (uint64_t)opt.seed);
    if (rc != FM_OK)
        fm_fail_prefix("%s and %s: ", opt.files[0], opt.files[1]);
    else if (opt.json)
        rc = dist_print_json(&opt, &r);
    else
        dist_print_table(&opt, &r);
    if (rc == FM_OK) fm_distance_report_free(&r);
    fm_model_free(&a);
    fm_model_free(&b);
    return rc == FM_OK ? 0 : fm_cli_fail();
}
