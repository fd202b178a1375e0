/* cmd_pretrain.c: `finemask pretrain`: masked-LM pre-training from text files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "fileio.h"
#include "fm.h"
#include "optparse.h"
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
            "\n");
    fm_optparse_usage(f, fm_pt_opt_table, fm_pt_opt_count, 0, 20);
    fprintf(f,
            "\n"
            "Interruption (state in MODEL_DIR/state.safetensors: parameters, AdamW moments, step,\n"
            "log position, and the options, which a resumed run must repeat):\n"
            "  SIGTERM              save the state at the end of the current step and stop (exit 1);\n"
            "                       under mpirun/srun a signal to any rank acts on all of them\n"
            "  SIGUSR1              save the state at the end of the current step and go on\n");
    fm_optparse_usage(f, fm_pt_opt_table, fm_pt_opt_count, FM_OPT_G_RESUME, 20);
}

int fm_cmd_pretrain(int argc, char **argv) {
    fm_pt_opts o;
    fm_pt_opts_default(&o);
    const char **corpus = fm_xcalloc((size_t)argc + 1, sizeof(char *));
    o.corpus = corpus;
    unsigned char *given = fm_xcalloc((size_t)fm_pt_opt_count, 1);
    fm_optparse_out po = {.given = given};
    char *init_config = NULL;
    int status = 1;
    if (fm_optparse("pretrain", fm_pt_opt_table, fm_pt_opt_count, &o, argc, argv, &po) != FM_OK) {
        status = fm_cli_fail();
        goto out;
    }
    if (po.help) {
        usage(stdout);
        status = 0;
        goto out;
    }
    for (int i = po.next; i < argc; i++) corpus[o.ncorpus++] = argv[i];
    if (fm_optparse_required("pretrain", fm_pt_opt_table, fm_pt_opt_count, &o) != FM_OK) {
        status = fm_cli_fail();
        goto out;
    }
    if (o.init) {
        /* continued pre-training: the config is the model's own */
        for (int i = 0; i < fm_pt_opt_count; i++)
            if (given[i] && fm_pt_opt_table[i].name && !strcmp(fm_pt_opt_table[i].name, "config")) {
                fm_fail("pretrain: --config and --init %s: the config is the model's (%s/config.json); give one of them",
                        o.init, o.init);
                status = fm_cli_fail();
                goto out;
            }
        o.config = init_config = fm_path_join(o.init, "config.json");
    }
    o.signals = 1;
    status = fm_pretrain(&o, NULL) == FM_OK ? 0 : fm_cli_fail();
out:
    free(init_config);
    free(given);
    free(corpus);
    return status;
}
