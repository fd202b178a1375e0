/* cmd_pretrain.c: `finemask pretrain`: masked-LM pre-training from text files. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "fm.h"
#include "pretrain.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: finemask pretrain --corpus FILE [--corpus FILE...] --vocab VOCAB --out MODEL_DIR [options]\n"
            "\n"
            "Pre-train a BERT with the masked-language-model objective on plain UTF-8 text\n"
            "(one sentence or document per line), and write a HuggingFace model directory\n"
            "(config.json, model.safetensors with the MLM head cls.predictions.*, vocab.txt)\n"
            "that train, eval and predict read, plus pretrain.json (the summary) and\n"
            "pretrain_log.jsonl (the loss every --log-every steps).\n"
            "\n"
            "Lines are tokenized and packed in order into rows [CLS] A [SEP] B [SEP] of --seq\n"
            "tokens (whole lines; a line longer than a row is cut). Of the other tokens 15%%\n"
            "are chosen (80%% become [MASK], 10%% a random token, 10%% stay), each position's draw\n"
            "a function of (seed, step, row, position); the loss is the cross-entropy at the\n"
            "chosen positions only. The last 5%% of the rows (at most 256) are held out and\n"
            "their MLM loss is reported before and after. AdamW with linear warm-up and decay.\n"
            "Under mpirun/srun the ranks split each batch's rows and sum the gradients:\n"
            "the result is the same as on one process up to float rounding.\n"
            "\n"
            "  --corpus FILE        a text file (repeat for more, or list files after the options)\n"
            "  --vocab FILE         vocab.txt with [PAD] [UNK] [CLS] [SEP] [MASK]\n"
            "  --out DIR            the model directory to write\n"
            "  --config NAME|FILE   tiny (default), mini, small, medium, base, large, or a config.json;\n"
            "                       vocab_size is taken from --vocab\n"
            "  --steps N            optimiser steps (1000)\n"
            "  --batch B            rows per step, over all ranks (32)\n"
            "  --seq T              tokens per row (128)\n"
            "  --lr X               peak learning rate (1e-4)\n"
            "  --warmup X           fraction of the steps with linear warm-up (0.1), then linear decay\n"
            "  --weight-decay X     (0.01)   --adam-eps X (1e-6)   --max-grad-norm X (1.0)\n"
            "  --mlm-prob X         share of tokens chosen (0.15)\n"
            "  --dropout P          hidden and attention dropout (default: the config's)\n"
            "  --seed N             initialisation, data order, masking and dropout (0)\n"
            "  --log-every N        a pretrain_log.jsonl line every N steps (50)\n"
            "  --threads N          threads per rank\n"
            "  --force              overwrite an existing model (and discard a saved state)\n"
            "\n"
            "Interruption (state in MODEL_DIR/state.safetensors: parameters, AdamW moments, step,\n"
            "log position, and the options, which a resumed run must repeat):\n"
            "  SIGTERM              save the state at the end of the current step and stop (exit 1);\n"
            "                       under mpirun/srun a signal to any rank acts on all of them\n"
            "  SIGUSR1              save the state at the end of the current step and go on\n"
            "  --checkpoint-every N also save the state every N steps (default: only on a signal)\n"
            "  --resume             continue from MODEL_DIR/state.safetensors when it exists (from\n"
            "                       step 0 when it does not; nothing to do when the model is complete);\n"
            "                       give the same options: a run with other --steps, --batch, --seq,\n"
            "                       --lr, corpus, vocab, config... is refused, naming the option.\n"
            "                       The finished model directory is byte-identical to an\n"
            "                       uninterrupted run's; the state is removed once the model is written\n");
}

int fm_cmd_pretrain(int argc, char **argv) {
    static const struct option opts[] = {
        {"corpus", required_argument, 0, 'c'},     {"vocab", required_argument, 0, 'V'},
        {"out", required_argument, 0, 'o'},        {"config", required_argument, 0, 'C'},
        {"steps", required_argument, 0, 'S'},      {"batch", required_argument, 0, 'b'},
        {"seq", required_argument, 0, 'T'},        {"lr", required_argument, 0, 'l'},
        {"warmup", required_argument, 0, 'w'},     {"weight-decay", required_argument, 0, 'W'},
        {"adam-eps", required_argument, 0, 'E'},   {"max-grad-norm", required_argument, 0, 'g'},
        {"mlm-prob", required_argument, 0, 'p'},   {"dropout", required_argument, 0, 'd'},
        {"seed", required_argument, 0, 's'},       {"log-every", required_argument, 0, 'G'},
        {"threads", required_argument, 0, 't'},    {"force", no_argument, 0, 'f'},
        {"checkpoint-every", required_argument, 0, 'K'}, {"resume", no_argument, 0, 'R'},
        {"help", no_argument, 0, 'h'},             {0, 0, 0, 0},
    };
    fm_pt_opts o;
    fm_pt_opts_default(&o);
    const char **corpus = fm_xcalloc((size_t)argc + 1, sizeof(char *));
    int ncorpus = 0;
    optind = 0;
    opterr = 0;
    long long iv;
    double dv;
    int status = 1;
    for (int ch; (ch = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
        int rc = FM_OK;
        switch (ch) {
        case 'c': corpus[ncorpus++] = optarg; break;
        case 'V': o.vocab = optarg; break;
        case 'o': o.out = optarg; break;
        case 'C': o.config = optarg; break;
        case 'f': o.force = 1; break;
        case 'R': o.resume = 1; break;
#define DBL(c, field, name, lo, hi) \
    case c: rc = fm_opt_double(name, optarg, lo, hi, &dv); o.field = dv; break;
#define INT(c, field, name, lo, hi) \
    case c: rc = fm_opt_long(name, optarg, lo, hi, &iv); o.field = iv; break;
        DBL('l', lr, "--lr", 0, 1e6)
        DBL('w', warmup, "--warmup", 0, 1)
        DBL('W', weight_decay, "--weight-decay", 0, 1)
        DBL('E', adam_eps, "--adam-eps", 0, 1)
        DBL('g', max_grad_norm, "--max-grad-norm", 0, 1e30)
        DBL('p', mlm_prob, "--mlm-prob", 0.001, 1)
        DBL('d', dropout, "--dropout", 0, 0.99)
        INT('S', steps, "--steps", 1, 1LL << 40)
        INT('b', batch, "--batch", 1, 1 << 20)
        INT('T', seq, "--seq", 8, 1 << 16)
        INT('s', seed, "--seed", 0, 1LL << 62)
        INT('G', log_every, "--log-every", 1, 1LL << 40)
        INT('t', threads, "--threads", 1, 4096)
        INT('K', checkpoint_every, "--checkpoint-every", 0, 1LL << 40)
#undef DBL
#undef INT
        case 'h': usage(stdout); status = 0; goto out;
        default:
            fm_fail("pretrain: unknown or incomplete option '%s' (see finemask pretrain --help)", argv[optind - 1]);
            status = fm_cli_fail();
            goto out;
        }
        if (rc != FM_OK) {
            status = fm_cli_fail();
            goto out;
        }
    }
    for (int i = optind; i < argc; i++) corpus[ncorpus++] = argv[i];
    if (!ncorpus || !o.vocab || !o.out) {
        fm_fail("pretrain: --corpus, --vocab and --out are required (see finemask pretrain --help)");
        status = fm_cli_fail();
        goto out;
    }
    o.corpus = corpus;
    o.ncorpus = ncorpus;
    o.signals = 1;
    status = fm_pretrain(&o, NULL) == FM_OK ? 0 : fm_cli_fail();
out:
    free(corpus);
    return status;
}
