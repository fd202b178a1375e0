/* cmd_init.c: `finemask init`: a freshly initialised BERT model directory. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "fileio.h"
#include "fm.h"
#include "hfconfig.h"
#include "model.h"
#include "modeldir.h"
#include "vocab.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: finemask init --config PRESET|FILE.json --out DIR [options]\n"
            "\n"
            "Write a BERT model directory (config.json, model.safetensors, vocab.txt)\n"
            "with BERT's initialisation: matrices and embeddings N(0, initializer_range^2),\n"
            "LayerNorm gains 1, biases 0.\n"
            "\n"
            "options:\n"
            "  --config NAME|FILE  tiny (L2/H128), mini (L4/H256), small (L4/H512),\n"
            "                      medium (L8/H512), base (L12/H768), large (L24/H1024),\n"
            "                      or a HuggingFace config.json\n"
            "  --seed N            random seed (default 0)\n"
            "  --out DIR           the model directory to write (created if needed)\n"
            "  --vocab FILE        copy this vocab.txt and set vocab_size to its line count\n"
            "  --num-labels N      add a task head with N labels (1: regression)\n"
            "  --mlm               add the masked-LM head (cls.predictions.*)\n"
            "  --force             overwrite an existing model.safetensors\n"
            "  -h, --help          this text\n");
}

static int parse_long(const char *opt, const char *s, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi)
        return fm_fail("%s: expected an integer in [%lld, %lld], found '%s'", opt, lo, hi, s);
    *out = v;
    return FM_OK;
}

/* init's command line. */
typedef struct {
    const char *config, *out, *vocab;
    long long seed, num_labels;
    int mlm, force;
} init_opts;

/* The command line into o, checked. Returns -1 to go on, else the exit status. */
static int init_parse(int argc, char **argv, init_opts *o) {
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"seed", required_argument, NULL, 's'},
        {"out", required_argument, NULL, 'o'},    {"vocab", required_argument, NULL, 'V'},
        {"num-labels", required_argument, NULL, 'n'}, {"mlm", no_argument, NULL, 'm'},
        {"force", no_argument, NULL, 'f'},        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *o = (init_opts){.num_labels = -1};
    optind = 0;
    opterr = 0;
    for (int ch; (ch = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
        switch (ch) {
        case 'c': o->config = optarg; break;
        case 'o': o->out = optarg; break;
        case 'V': o->vocab = optarg; break;
        case 's':
            if (parse_long("--seed", optarg, 0, INT64_MAX, &o->seed) != FM_OK) return fm_cli_fail();
            break;
        case 'n':
            if (parse_long("--num-labels", optarg, 0, 65536, &o->num_labels) != FM_OK) return fm_cli_fail();
            break;
        case 'm': o->mlm = 1; break;
        case 'f': o->force = 1; break;
        case 'h': usage(stdout); return 0;
        default:
            fprintf(stderr, "finemask: error: init: unknown option or missing argument '%s' (see finemask init --help)\n",
                    argv[optind - 1]);
            return 1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "finemask: error: init: unexpected argument '%s'\n", argv[optind]);
        return 1;
    }
    if (!o->config || !o->out) {
        fprintf(stderr, "finemask: error: init: --config and --out are required (see finemask init --help)\n");
        return 1;
    }
    return -1;
}

/* The configuration: a preset, else a HuggingFace config.json (its other
 * keys into x), with the options' changes, checked. */
static int init_config(const init_opts *o, fm_config *c, fm_hfextra *x) {
    if (fm_config_preset(o->config, c) != FM_OK) {
        if (!fm_file_exists(o->config))
            return fm_fail("--config: '%s' is neither a preset (tiny, mini, small, medium, base, large) nor a file",
                           o->config);
        if (fm_hfconfig_read(o->config, c, x) != FM_OK) return FM_ERR;
    }
    return FM_OK;
}

/* The freshly initialised model written to --out, and its line on standard
 * output. */
static int init_write(const init_opts *o, const fm_config *c, const fm_hfextra *x) {
    fm_model m;
    fm_model_alloc(&m, c);
    fm_model_init_weights(&m, (uint64_t)o->seed);
    fm_save_opts so = {.vocab = o->vocab, .extra = x, .meta = NULL, .nmeta = 0};
    char seedbuf[32];
    snprintf(seedbuf, sizeof seedbuf, "%lld", o->seed);
    fm_st_meta meta[] = {{"finemask.init_seed", seedbuf}};
    so.meta = meta;
    so.nmeta = 1;
    int saved = fm_modeldir_save(o->out, c, &m.lay, m.params, &so);
    if (saved == FM_OK) {
        size_t nparam = 0;
        for (int i = 0; i < m.lay.n; i++) nparam += m.lay.t[i].numel;
        printf("%s: BERT L=%d H=%d A=%d I=%d V=%d, %zu parameters%s%s, seed %lld, fingerprint %016" PRIx64 "\n",
               o->out, c->num_hidden_layers, c->hidden_size, c->num_attention_heads, c->intermediate_size,
               c->vocab_size, nparam, c->num_labels > 0 ? ", task head" : "", c->with_mlm ? ", MLM head" : "",
               o->seed, fm_params_fingerprint(&m.lay, m.params));
        if (!o->vocab) fm_log("no --vocab given: %s has no vocab.txt", o->out);
    }
    fm_model_free(&m);
    return saved;
}

int fm_cmd_init(int argc, char **argv) {
    init_opts o;
    int st = init_parse(argc, argv, &o);
    if (st >= 0) return st;
    fm_config c;
    fm_hfextra x;
    memset(&x, 0, sizeof x);
    if (init_config(&o, &c, &x) != FM_OK) return fm_cli_fail();
    int rc = FM_ERR;
    char *wpath = fm_path_join(o.out, FM_MODEL_WEIGHTS);
    if (o.num_labels >= 0) c.num_labels = (int)o.num_labels;
    c.with_mlm = o.mlm;
    if (o.vocab && fm_vocab_count(o.vocab, &c.vocab_size) != FM_OK) {
        /* the error is the vocabulary's */
    } else if (fm_config_check(&c) != FM_OK) {
        fm_fail_prefix("%s: ", o.config);
    } else if (!o.force && fm_file_exists(wpath)) {
        fm_fail("%s already exists (use --force to overwrite it)", wpath);
    } else {
        rc = init_write(&o, &c, &x);
    }
    free(wpath);
    fm_hfextra_free(&x);
    return rc == FM_OK ? 0 : fm_cli_fail();
}
