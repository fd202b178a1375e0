/* cmd_train.c: `finemask train`: fine-tune a model on one GLUE task. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "finetune.h"
#include "fm.h"
#include "optparse.h"
#include "options.h"


static void usage(FILE *f) {
    const fm_opt *t = fm_ft_opt_table;
    const int n = fm_ft_opt_count;
    fprintf(f,
            "usage: finemask train --model DIR --task TASK --data GLUE_DIR --out RUN_DIR [options]\n"
            "\n"
            "Fine-tune a BERT model directory on one GLUE task with BERT's recipe, score it\n"
            "on the dev set, and write RUN_DIR/metrics.json, RUN_DIR/log.jsonl,\n"
            "and the fine-tuned model in RUN_DIR/model. The same command gives the same bytes.\n"
            "\n");
    fm_optparse_usage(f, t, n, 0, 22);
    fprintf(f,
            "\n"
            "Supermask (--mode supermask): the pre-trained weights stay frozen; a binary mask\n"
            "mu ~ Bernoulli(sigmoid(nu)) over them is learned (theta = theta~ * mu, a fresh\n"
            "sample every step) beside a normally trained task head. RUN_DIR gets\n"
            "mask.safetensors (the deterministic mask sigmoid(nu) > 0.5 and the head)\n"
            "instead of a model directory.\n");
    fm_optparse_usage(f, t, n, FM_OPT_G_MASK, 22);
    fprintf(f, "\nResume:\n");
    fm_optparse_usage(f, t, n, FM_OPT_G_RESUME, 22);
}

/* --resume RUN_DIR: the run's saved options; options given beside it that
 * decide the results must equal them. */
static int resume_run(const fm_ft_opts *o, const char *resume, const unsigned char *given) {
    if (o->out_dir && strcmp(o->out_dir, resume) != 0) {
        fm_fail("train: --out %s disagrees with --resume %s", o->out_dir, resume);
        return fm_cli_fail();
    }
    fm_ft_opts saved;
    void *keep = NULL;
    if (fm_ft_opts_load(resume, &saved, &keep) != FM_OK) return fm_cli_fail();
    const fm_opt *d = fm_ft_opts_first_difference(o, &saved, given);
    if (d) {
        char *a = fm_opt_value_text(d, o), *b = fm_opt_value_text(d, &saved);
        fm_fail("train --resume %s: the options given differ from the run's (%s/options.json): --%s %s, the run "
                "has %s; resume with --resume RUN_DIR alone to use the saved ones",
                resume, resume, d->name, a, b);
        free(a);
        free(b);
        json_decref(keep);
        return fm_cli_fail();
    }
    saved.threads = o->threads;
    saved.checkpoint_every = o->checkpoint_every;
    saved.dump_grads = NULL;
    saved.resume = 1;
    int rc = fm_finetune(&saved);
    json_decref(keep);
    return rc == FM_OK ? 0 : fm_cli_fail();
}

int fm_cmd_train(int argc, char **argv) {
    fm_ft_opts o;
    fm_ft_opts_default(&o);
    const int n = fm_ft_opt_count;
    unsigned char *given = fm_xcalloc((size_t)n, 1);
    const char **value = fm_xcalloc((size_t)n, sizeof *value);
    fm_optparse_out po = {.given = given, .value = value};
    int status = 0;
    if (fm_optparse("train", fm_ft_opt_table, n, &o, argc, argv, &po) != FM_OK) {
        status = fm_cli_fail();
    } else if (po.help) {
        usage(stdout);
    } else if (po.next < argc) {
        fm_fail("train: unexpected argument '%s'", argv[po.next]);
        status = fm_cli_fail();
    } else if (o.resume) {
        status = resume_run(&o, value[fm_opt_find(fm_ft_opt_table, n, "resume") - fm_ft_opt_table], given);
    } else if (fm_optparse_required("train", fm_ft_opt_table, n, &o) != FM_OK || fm_ft_opts_check(&o) != FM_OK ||
               fm_finetune(&o) != FM_OK) {
        status = fm_cli_fail();
    }
    free(given);
    free(value);
    return status;
}
