/* cmd_train.c: `finemask train`: fine-tune a model on one GLUE task. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "finetune.h"
#include "fm.h"

#include <jansson.h>
#include <stdlib.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: finemask train --model DIR --task TASK --data GLUE_DIR --out RUN_DIR [options]\n"
            "\n"
            "Fine-tune a BERT model directory on one GLUE task with BERT's recipe, score it\n"
            "on the dev set, and write RUN_DIR/metrics.json, RUN_DIR/log.jsonl,\n"
            "and the fine-tuned model in RUN_DIR/model. The same command gives the same bytes.\n"
            "\n"
            "  --model DIR            HuggingFace model directory (config.json, model.safetensors,\n"
            "                         tokenizer.json or vocab.txt [+ tokenizer_config.json])\n"
            "  --task TASK            CoLA, SST-2, MRPC, STS-B, QQP, MNLI, QNLI, RTE or WNLI\n"
            "  --data GLUE_DIR        directory with GLUE_DIR/TASK/{train,dev}.tsv\n"
            "  --out RUN_DIR          run directory (created)\n"
            "  --mode full            every parameter trains (default)\n"
            "  --mode supermask       learn a binary mask over the frozen weights (see below)\n"
            "  --mode freeze --freeze SET\n"
            "                         L0-close: the tensors in SET keep their pre-trained values;\n"
            "                         SET is a comma-separated list of key (W_K of every layer),\n"
            "                         deepest:N (the last N layers), word_embeddings, or globs over\n"
            "                         tensor names (encoder.layer.*.attention.self.query.weight)\n"
            "  --weights W            pretrained (default); controls: shuffled (each tensor permuted,\n"
            "                         norm kept) or random (BERT's initialisation from --seed)\n"
            "  --lr X                 peak learning rate (2e-5)\n"
            "  --batch-size N         examples per step (32)\n"
            "  --epochs X             passes over the training set (3; may be fractional)\n"
            "  --max-steps N          stop after N steps (overrides --epochs)\n"
            "  --max-seq-length N     tokens per example after truncation (128)\n"
            "  --warmup X             fraction of the steps with linear warm-up (0.1)\n"
            "  --weight-decay X       AdamW weight decay, not on biases or LayerNorm (0.01)\n"
            "  --adam-eps X           AdamW epsilon (1e-8; original BERT: 1e-6)\n"
            "  --adam-beta1 X, --adam-beta2 X   (0.9, 0.999)\n"
            "  --max-grad-norm X      global gradient-norm clipping, 0 to disable (1.0)\n"
            "  --dropout P            hidden and attention dropout (default: as config.json)\n"
            "  --seed N               data order, dropout and new task head (42)\n"
            "  --no-shuffle           take the training examples in file order\n"
            "  --max-train-examples N use only the first N training examples\n"
            "  --eval-every N         also score the dev set every N steps\n"
            "  --log-every N          a log.jsonl line every N steps (50)\n"
            "  --eval-batch-size N    examples per evaluation batch (32)\n"
            "  --dump-grads FILE      write the first batch's gradients (safetensors, parameter names)\n"
            "  --threads N            threads (default: BLIS_NUM_THREADS, OMP_NUM_THREADS or all cores)\n"
            "\n"
            "Supermask (--mode supermask): the pre-trained weights stay frozen; a binary mask\n"
            "mu ~ Bernoulli(sigmoid(nu)) over them is learned (theta = theta~ * mu, a fresh\n"
            "sample every step) beside a normally trained task head. RUN_DIR gets\n"
            "mask.safetensors (the deterministic mask sigmoid(nu) > 0.5 and the head)\n"
            "instead of a model directory.\n"
            "  --ste sigmoid|identity straight-through gradient to nu: dL/dtheta*theta~*sigmoid'(nu)\n"
            "                         (sigmoid, default) or dL/dtheta*theta~ (identity)\n"
            "  --init-sparsity S      nu = -5 for the fraction S of entries with the smallest |theta~|,\n"
            "                         +5 for the rest (0)\n"
            "  --init-rank R          global (default: one ranking over every masked entry) or tensor\n"
            "  --mask GLOB            masked tensors, comma-separated globs over tensor names\n"
            "                         (default: every weight matrix of the embeddings, encoder, pooler)\n"
            "  --mask-layers LIST     mask only these encoder layers, e.g. 0-3,8\n"
            "  --mask-lr X            peak learning rate of nu (1e-2; AdamW without weight decay)\n"
            "  --head-lr X            peak learning rate of the task head (default --lr)\n"
            "  --samples N            score N independent mask samples on dev at the end (10)\n"
            "\n"
            "Resume:\n"
            "  --checkpoint-every N   write RUN_DIR/state.safetensors every N steps (default: only\n"
            "                         on SIGTERM, which then stops the run, or SIGUSR1, which continues)\n"
            "  --resume RUN_DIR       continue a killed run from its state with the options in\n"
            "                         RUN_DIR/options.json (other options given must equal them); the\n"
            "                         finished run directory is byte-identical to an uninterrupted one\n");
}

int fm_cmd_train(int argc, char **argv) {
    static const struct option opts[] = {
        {"model", required_argument, 0, 'M'},        {"task", required_argument, 0, 'T'},
        {"data", required_argument, 0, 'D'},         {"out", required_argument, 0, 'o'},
        {"mode", required_argument, 0, 'm'},         {"lr", required_argument, 0, 'l'},
        {"batch-size", required_argument, 0, 'b'},   {"epochs", required_argument, 0, 'e'},
        {"max-steps", required_argument, 0, 'S'},    {"max-seq-length", required_argument, 0, 'L'},
        {"warmup", required_argument, 0, 'w'},       {"weight-decay", required_argument, 0, 'W'},
        {"adam-eps", required_argument, 0, 'E'},     {"adam-beta1", required_argument, 0, '1'},
        {"adam-beta2", required_argument, 0, '2'},   {"max-grad-norm", required_argument, 0, 'g'},
        {"dropout", required_argument, 0, 'd'},      {"seed", required_argument, 0, 's'},
        {"no-shuffle", no_argument, 0, 'n'},         {"max-train-examples", required_argument, 0, 'x'},
        {"eval-every", required_argument, 0, 'v'},   {"log-every", required_argument, 0, 'G'},
        {"eval-batch-size", required_argument, 0, 'B'}, {"dump-grads", required_argument, 0, 'u'},
        {"threads", required_argument, 0, 't'},      {"help", no_argument, 0, 'h'},
        {"freeze", required_argument, 0, 'F'},       {"weights", required_argument, 0, 'X'},
        {"ste", required_argument, 0, 1001},         {"init-sparsity", required_argument, 0, 1002},
        {"init-rank", required_argument, 0, 1003},   {"mask", required_argument, 0, 1004},
        {"mask-layers", required_argument, 0, 1005}, {"mask-lr", required_argument, 0, 1006},
        {"head-lr", required_argument, 0, 1007},     {"samples", required_argument, 0, 1008},
        {"checkpoint-every", required_argument, 0, 1009}, {"resume", required_argument, 0, 1010},
        {0, 0, 0, 0},
    };
    fm_ft_opts o;
    fm_ft_opts_default(&o);
    optind = 0;
    opterr = 0;
    long long iv;
    double dv;
    const char *resume = NULL;
    int result_opts = 0; /* options given that decide the results */
    for (int ch; (ch = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
        int rc = FM_OK;
        if (ch != 't' && ch != 'o' && ch != 1009 && ch != 1010 && ch != 'h') result_opts++;
        switch (ch) {
        case 1001: o.ste = optarg; break;
        case 1003: o.init_rank = optarg; break;
        case 1004: o.mask_glob = optarg; break;
        case 1005: o.mask_layers = optarg; break;
        case 1010: resume = optarg; break;
        case 'M': o.model_dir = optarg; break;
        case 'T': o.task = optarg; break;
        case 'D': o.data_dir = optarg; break;
        case 'o': o.out_dir = optarg; break;
        case 'm': o.mode = optarg; break;
        case 'u': o.dump_grads = optarg; break;
        case 'n': o.shuffle = 0; break;
        case 'F': o.freeze = optarg; break;
        case 'X': o.weights = optarg; break;
#define DBL(c, field, name, lo, hi) \
    case c: rc = fm_opt_double(name, optarg, lo, hi, &dv); o.field = dv; break;
#define INT(c, field, name, lo, hi) \
    case c: rc = fm_opt_long(name, optarg, lo, hi, &iv); o.field = iv; break;
        DBL('l', lr, "--lr", 0, 1e6)
        DBL('e', epochs, "--epochs", 0, 1e6)
        DBL('w', warmup, "--warmup", 0, 1)
        DBL('W', weight_decay, "--weight-decay", 0, 1)
        DBL('E', adam_eps, "--adam-eps", 0, 1)
        DBL('1', adam_beta1, "--adam-beta1", 0, 0.999999)
        DBL('2', adam_beta2, "--adam-beta2", 0, 0.999999999)
        DBL('g', max_grad_norm, "--max-grad-norm", 0, 1e30)
        DBL('d', dropout, "--dropout", 0, 0.99)
        INT('b', batch_size, "--batch-size", 1, 1 << 20)
        INT('S', max_steps, "--max-steps", 0, 1LL << 40)
        INT('L', max_seq_length, "--max-seq-length", 3, 1 << 16)
        INT('s', seed, "--seed", 0, 1LL << 62)
        INT('x', max_train_examples, "--max-train-examples", 0, 1LL << 40)
        INT('v', eval_every, "--eval-every", 0, 1LL << 40)
        INT('G', log_every, "--log-every", 1, 1LL << 40)
        INT('B', eval_batch_size, "--eval-batch-size", 1, 1 << 20)
        INT('t', threads, "--threads", 1, 4096)
        DBL(1002, init_sparsity, "--init-sparsity", 0, 1)
        DBL(1006, mask_lr, "--mask-lr", 0, 1e6)
        DBL(1007, head_lr, "--head-lr", 0, 1e6)
        INT(1008, samples, "--samples", 0, 1000000)
        INT(1009, checkpoint_every, "--checkpoint-every", 0, 1LL << 40)
#undef DBL
#undef INT
        case 'h': usage(stdout); return 0;
        default:
            fm_fail("train: unknown or incomplete option '%s' (see finemask train --help)", argv[optind - 1]);
            return fm_cli_fail();
        }
        if (rc != FM_OK) return fm_cli_fail();
    }
    if (optind < argc) {
        fm_fail("train: unexpected argument '%s'", argv[optind]);
        return fm_cli_fail();
    }
    if (resume) {
        /* The saved options; options given beside --resume must equal them. */
        if (o.out_dir && strcmp(o.out_dir, resume) != 0) {
            fm_fail("train: --out %s disagrees with --resume %s", o.out_dir, resume);
            return fm_cli_fail();
        }
        fm_ft_opts saved;
        void *keep = NULL;
        if (fm_ft_opts_load(resume, &saved, &keep) != FM_OK) return fm_cli_fail();
        if (result_opts > 0) {
            o.out_dir = resume;
            char *a = fm_ft_opts_json(&o), *b = fm_ft_opts_json(&saved);
            int same = strcmp(a, b) == 0;
            if (!same)
                fm_fail("train --resume %s: the options given differ from the run's (%s/options.json):\n  given: %s\n  saved: "
                        "%s\nresume with --resume RUN_DIR alone to use the saved ones",
                        resume, resume, a, b);
            free(a);
            free(b);
            if (!same) {
                json_decref(keep);
                return fm_cli_fail();
            }
        }
        saved.threads = o.threads;
        saved.checkpoint_every = o.checkpoint_every;
        saved.dump_grads = NULL;
        saved.resume = 1;
        int rc = fm_finetune(&saved);
        json_decref(keep);
        return rc == FM_OK ? 0 : fm_cli_fail();
    }
    if (!o.model_dir || !o.task || !o.data_dir || !o.out_dir) {
        fm_fail("train: --model, --task, --data and --out are required (see finemask train --help)");
        return fm_cli_fail();
    }
    if (fm_finetune(&o) != FM_OK) return fm_cli_fail();
    return 0;
}
