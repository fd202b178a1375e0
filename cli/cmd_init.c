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

int fm_cmd_init(int argc, char **argv) {
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"seed", required_argument, NULL, 's'},
        {"out", required_argument, NULL, 'o'},    {"vocab", required_argument, NULL, 'V'},
        {"num-labels", required_argument, NULL, 'n'}, {"mlm", no_argument, NULL, 'm'},
        {"force", no_argument, NULL, 'f'},        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL, *out = NULL, *vocab = NULL;
    long long seed = 0, num_labels = -1;
    int mlm = 0, force = 0;
    optind = 0;
    opterr = 0;
    for (int ch; (ch = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
        switch (ch) {
        case 'c': config = optarg; break;
        case 'o': out = optarg; break;
        case 'V': vocab = optarg; break;
        case 's':
            if (parse_long("--seed", optarg, 0, INT64_MAX, &seed) != FM_OK) return fm_cli_fail();
            break;
        case 'n':
            if (parse_long("--num-labels", optarg, 0, 65536, &num_labels) != FM_OK) return fm_cli_fail();
            break;
        case 'm': mlm = 1; break;
        case 'f': force = 1; break;
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
    if (!config || !out) {
        fprintf(stderr, "finemask: error: init: --config and --out are required (see finemask init --help)\n");
        return 1;
    }

    fm_config c;
    fm_hfextra x;
    memset(&x, 0, sizeof x);
    if (fm_config_preset(config, &c) != FM_OK) {
        if (!fm_file_exists(config)) {
            fm_fail("--config: '%s' is neither a preset (tiny, mini, small, medium, base, large) nor a file", config);
            return fm_cli_fail();
        }
        if (fm_hfconfig_read(config, &c, &x) != FM_OK) return fm_cli_fail();
    }
    int rc = 1;
    char *wpath = fm_path_join(out, FM_MODEL_WEIGHTS);
    if (num_labels >= 0) c.num_labels = (int)num_labels;
    c.with_mlm = mlm;
    if (vocab && fm_vocab_count(vocab, &c.vocab_size) != FM_OK) goto fail;
    if (fm_config_check(&c) != FM_OK) {
        fm_fail_prefix("%s: ", config);
        goto fail;
    }
    if (!force && fm_file_exists(wpath)) {
        fm_fail("%s already exists (use --force to overwrite it)", wpath);
        goto fail;
    }
    fm_model m;
    fm_model_alloc(&m, &c);
    fm_model_init_weights(&m, (uint64_t)seed);
    fm_save_opts so = {.vocab = vocab, .extra = &x, .meta = NULL, .nmeta = 0};
    char seedbuf[32];
    snprintf(seedbuf, sizeof seedbuf, "%lld", seed);
    fm_st_meta meta[] = {{"finemask.init_seed", seedbuf}};
    so.meta = meta;
    so.nmeta = 1;
    int saved = fm_modeldir_save(out, &c, &m.lay, m.params, &so);
    if (saved == FM_OK) {
        size_t nparam = 0;
        for (int i = 0; i < m.lay.n; i++) nparam += m.lay.t[i].numel;
        printf("%s: BERT L=%d H=%d A=%d I=%d V=%d, %zu parameters%s%s, seed %lld, fingerprint %016" PRIx64 "\n", out,
               c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.intermediate_size, c.vocab_size, nparam,
               c.num_labels > 0 ? ", task head" : "", c.with_mlm ? ", MLM head" : "", seed,
               fm_params_fingerprint(&m.lay, m.params));
        if (!vocab) fm_log("no --vocab given: %s has no vocab.txt", out);
        rc = 0;
    }
    fm_model_free(&m);
    if (saved != FM_OK) goto fail;
    free(wpath);
    fm_hfextra_free(&x);
    return rc;
fail:
    free(wpath);
    fm_hfextra_free(&x);
    return fm_cli_fail();
}
