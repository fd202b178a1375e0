/* cmd_eval.c: `finemask eval` (dev-set scores of a fine-tuned model) and
 * `finemask predict` (GLUE submission files and raw scores). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "fileio.h"
#include "finetune.h"
#include "fm.h"
#include "runfiles.h"
#include "controls.h"
#include "maskfile.h"

typedef struct {
    const char *model, *task, *data, *out, *split, *mask;
    long long samples;
    long long max_seq, batch, threads;
    int any_task; /* --any-task: score a mask trained on another task */
} eval_args;

static int parse(int argc, char **argv, eval_args *a, void (*usage)(FILE *), int *exit_now) {
    static const struct option opts[] = {
        {"model", required_argument, 0, 'M'},   {"task", required_argument, 0, 'T'},
        {"data", required_argument, 0, 'D'},    {"out", required_argument, 0, 'o'},
        {"split", required_argument, 0, 'p'},   {"max-seq-length", required_argument, 0, 'L'},
        {"batch-size", required_argument, 0, 'b'}, {"threads", required_argument, 0, 't'},
        {"mask", required_argument, 0, 'K'},    {"samples", required_argument, 0, 'S'},
        {"any-task", no_argument, 0, 'A'},      {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    *exit_now = 0;
    a->max_seq = 128;
    a->batch = 32;
    a->threads = 0;
    optind = 0;
    opterr = 0;
    for (int ch; (ch = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
        switch (ch) {
        case 'M': a->model = optarg; break;
        case 'T': a->task = optarg; break;
        case 'D': a->data = optarg; break;
        case 'o': a->out = optarg; break;
        case 'p': a->split = optarg; break;
        case 'K': a->mask = optarg; break;
        case 'A': a->any_task = 1; break;
        case 'S':
            if (fm_opt_long("--samples", optarg, 0, 1000000, &a->samples) != FM_OK) return FM_ERR;
            break;
        case 'L':
            if (fm_opt_long("--max-seq-length", optarg, 3, 1 << 16, &a->max_seq) != FM_OK) return FM_ERR;
            break;
        case 'b':
            if (fm_opt_long("--batch-size", optarg, 1, 1 << 20, &a->batch) != FM_OK) return FM_ERR;
            break;
        case 't':
            if (fm_opt_long("--threads", optarg, 1, 4096, &a->threads) != FM_OK) return FM_ERR;
            break;
        case 'h': usage(stdout); *exit_now = 1; return FM_OK;
        default: return fm_fail("%s: unknown or incomplete option '%s' (see --help)", argv[0], argv[optind - 1]);
        }
    }
    if (optind < argc) return fm_fail("%s: unexpected argument '%s'", argv[0], argv[optind]);
    if (!a->model || !a->task || !a->data) return fm_fail("%s: --model, --task and --data are required", argv[0]);
    if (a->any_task && !a->mask) return fm_fail("%s: --any-task goes with --mask", argv[0]);
    if (a->threads > 0) fm_ft_threads((int)a->threads);
    return FM_OK;
}

/* Make c's model the masked one: read and check the mask file against the
 * model's pre-trained fingerprint and against the task (a mask of another
 * task is refused unless any_task), redo the weights control the mask was
 * trained over (shuffled or random, from the file's seed), zero the masked
 * entries, take the file's task head. The sparsity goes to *sparsity. */
static int apply_mask(fm_ft_ctx *c, const char *path, int any_task, double *sparsity) {
    fm_mask mk;
    fm_maskfile_meta meta;
    float *hw = NULL, *hb = NULL;
    int nl = 0;
    if (fm_maskfile_read(path, &mk, &meta, &hw, &hb, &nl) != FM_OK) return FM_ERR;
    int rc = fm_maskfile_check_model(&meta, c->fingerprint, &c->model.lay, &mk);
    if (rc == FM_OK && meta.task[0] && fm_glue_task_find(meta.task) != c->task) {
        /* A mask (and its head) of another task: refused unless asked for. */
        if (!any_task)
            rc = fm_fail("%s: the mask was trained on %s, not %s; give --any-task to score it on %s anyway "
                         "(a cross-task study)",
                         path, meta.task, c->task->name, c->task->name);
        else
            fm_log("--any-task: scoring %s's mask %s (and its task head) on %s", meta.task, path, c->task->name);
    }
    if (rc == FM_OK && nl == 0 && !c->head_loaded)
        rc = fm_fail("%s: no task head, and %s has none either", path, c->vocab_path);
    if (rc == FM_OK && nl > 0 && nl != c->model.cfg.num_labels)
        rc = fm_fail("%s: the task head has %d labels; %s has %d", path, nl, c->task->name, c->model.cfg.num_labels);
    if (rc == FM_OK) {
        const int w = fm_opt_enum_value(fm_weights_names, 3, fm_maskfile_meta_get(&meta, "weights"));
        if (w == FM_WEIGHTS_SHUFFLED) fm_weights_shuffle(&c->model, meta.seed);
        else if (w == FM_WEIGHTS_RANDOM) fm_weights_randomize(&c->model, meta.seed);
        fm_mask_apply(&mk, &c->model.lay, c->model.params);
        if (nl > 0) {
            memcpy(c->model.w.cls_w, hw, sizeof(float) * (size_t)nl * (size_t)c->model.cfg.hidden_size);
            memcpy(c->model.w.cls_b, hb, sizeof(float) * (size_t)nl);
        }
        size_t n = 0, ones = 0;
        for (int k = 0; k < mk.n; k++) {
            n += mk.t[k].numel;
            ones += mk.t[k].ones;
        }
        *sparsity = n ? (double)(n - ones) / (double)n : 0.0;
    }
    free(hw);
    free(hb);
    fm_mask_free(&mk);
    fm_maskfile_meta_free(&meta);
    return rc;
}

static void eval_usage(FILE *f) {
    fprintf(f,
            "usage: finemask eval --model DIR [--mask FILE] --task TASK --data GLUE_DIR [options]\n"
            "\n"
            "Score a fine-tuned model directory (with its task head) on a GLUE split,\n"
            "print the task's metrics and write them as JSON.\n"
            "\n"
            "  --split S           dev (default), dev_mismatched (MNLI) or train\n"
            "  --mask FILE         a supermask (RUN_DIR/mask.safetensors of train --mode supermask) over\n"
            "                      MODEL_DIR, the pre-trained model it was trained on: scores the\n"
            "                      deterministic mask sigmoid(nu) > 0.5 with the file's task head and\n"
            "                      reports its sparsity. The mean and standard deviation over Bernoulli\n"
            "                      samples need nu, which the file does not hold: train --samples N\n"
            "                      records them in RUN_DIR/metrics.json. The mask's task must be TASK\n"
            "                      (and its model MODEL_DIR's pre-trained weights)\n"
            "  --any-task          score a mask trained on another task (a cross-task study)\n"
            "  --out FILE          where to write the JSON (default ./eval_<TASK>_<split>.json in the\n"
            "                      current directory; - for standard output, without the table)\n"
            "  --max-seq-length N  (128)\n"
            "  --batch-size N      (32)\n"
            "  --threads N\n");
}

/* eval's options beyond parse's: the split, which must have labels, and no
 * --samples. */
static int eval_check(const eval_args *a, fm_glue_split *split) {
    *split = FM_GLUE_DEV;
    if (a->split && fm_glue_split_parse(a->split, split) != FM_OK) return FM_ERR;
    if (*split == FM_GLUE_TEST || *split == FM_GLUE_TEST_MISMATCHED)
        return fm_fail("eval: test splits have no labels; use finemask predict");
    if (a->samples > 0)
        return fm_fail("eval: --samples needs the scores nu, which a mask file does not hold; train --mode supermask "
                       "--samples N scores N samples and records their mean and std in RUN_DIR/metrics.json");
    return FM_OK;
}

/* The model with its task head, or under the mask (its sparsity into
 * *mask_sparsity). On FM_ERR nothing is held. */
static int eval_load(fm_ft_ctx *c, const eval_args *a, double *mask_sparsity) {
    if (fm_ft_load(c, a->model, a->task, 0, -1) != FM_OK) return FM_ERR;
    *mask_sparsity = -1;
    if (a->mask && apply_mask(c, a->mask, a->any_task, mask_sparsity) != FM_OK) {
        fm_ft_free(c);
        return FM_ERR;
    }
    if (!c->head_loaded && !a->mask) {
        fm_ft_free(c);
        return fm_fail("eval: %s has no task head for %s; fine-tune it first (finemask train)", a->model, a->task);
    }
    return FM_OK;
}

/* The metrics r of the n examples of split as JSON, and as a table on
 * standard output unless to_stdout (--out -: the JSON goes there). */
static json_t *eval_json(const fm_ft_ctx *c, const eval_args *a, fm_glue_split split, const fm_glue_set *set, int n,
                         const fm_glue_report *r, double mask_sparsity, int to_stdout) {
    if (!to_stdout) printf("%s %s (%d examples)\n", c->task->name, fm_glue_split_name(split), n);
    json_t *j = json_object();
    json_object_set_new(j, "task", json_string(c->task->name));
    json_object_set_new(j, "split", json_string(fm_glue_split_name(split)));
    json_object_set_new(j, "model", json_string(a->model));
    json_object_set_new(j, "examples", json_integer(n));
    if (fm_glue_split_layout(c->task, split)->skip_short)
        json_object_set_new(j, "skipped_rows", json_integer((json_int_t)set->skipped)); /* QQP's short rows */
    for (int i = 0; i < r->n; i++) {
        if (!to_stdout) printf("  %-10s %.4f\n", r->m[i].name, r->m[i].value);
        json_object_set_new(j, r->m[i].name, json_real(r->m[i].value));
    }
    json_object_set_new(j, "main", json_string(r->main_name));
    if (a->mask) {
        json_object_set_new(j, "mask", json_string(a->mask));
        json_object_set_new(j, "sparsity_deterministic", json_real(mask_sparsity));
        if (!to_stdout) printf("  %-10s %.4f\n", "sparsity", mask_sparsity);
    }
    return j;
}

/* j to standard output (to_stdout), else to --out, else to
 * ./eval_<TASK>_<split>.json: never the model directory (shared, maybe
 * read-only). */
static int eval_write(const json_t *j, const eval_args *a, const fm_ft_ctx *c, fm_glue_split split, int to_stdout) {
    if (to_stdout) {
        char *text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(10));
        int ok = text && printf("%s\n", text) >= 0 && fflush(stdout) == 0;
        free(text);
        return ok ? FM_OK : fm_fail("eval: cannot write to standard output");
    }
    char *path;
    if (a->out) {
        path = fm_xstrdup(a->out);
    } else {
        path = fm_xmalloc(128);
        snprintf(path, 128, "eval_%s_%s.json", c->task->name, fm_glue_split_name(split));
    }
    int rc = fm_json_write(path, j);
    if (rc == FM_OK) fm_log("metrics written to %s", path);
    free(path);
    return rc;
}

int fm_cmd_eval(int argc, char **argv) {
    eval_args a = {0};
    int exit_now;
    if (parse(argc, argv, &a, eval_usage, &exit_now) != FM_OK) return fm_cli_fail();
    if (exit_now) return 0;
    fm_glue_split split;
    if (eval_check(&a, &split) != FM_OK) return fm_cli_fail();
    fm_ft_ctx c;
    double mask_sparsity;
    if (eval_load(&c, &a, &mask_sparsity) != FM_OK) return fm_cli_fail();
    fm_glue_set set = {0};
    fm_dataset d = {0};
    int rc = 1;
    float *logits = NULL;
    json_t *j = NULL;
    if (fm_ft_encode(&c, a.data, split, (int)a.max_seq, &set, &d) == FM_OK) {
        logits = fm_xmalloc(sizeof(float) * (size_t)(d.n ? d.n : 1) * (size_t)c.model.cfg.num_labels);
        fm_glue_report r;
        fm_ft_predict(&c, &d, (int)a.batch, logits, &r);
        /* --out -: the JSON on standard output, and no table */
        const int to_stdout = a.out && !strcmp(a.out, "-");
        j = eval_json(&c, &a, split, &set, d.n, &r, mask_sparsity, to_stdout);
        if (eval_write(j, &a, &c, split, to_stdout) == FM_OK) rc = 0;
    }
    if (rc) fm_cli_fail();
    json_decref(j);
    free(logits);
    fm_dataset_free(&d);
    fm_glue_set_free(&set);
    fm_ft_free(&c);
    return rc;
}

static void predict_usage(FILE *f) {
    fprintf(f,
            "usage: finemask predict --model DIR [--mask FILE] --task TASK --data GLUE_DIR --out DIR [options]\n"
            "\n"
            "Write the GLUE submission file OUT/<TASK>.tsv (\"index<TAB>prediction\", labels as\n"
            "GLUE spells them, STS-B to 3 decimals; MNLI as MNLI-m.tsv and MNLI-mm.tsv) and\n"
            "OUT/<TASK>.logits.tsv with every example's raw scores at full float precision.\n"
            "\n"
            "  --split S           test (default) or dev\n"
            "  --mask FILE         a supermask over MODEL_DIR (as for eval); its task must be TASK\n"
            "  --any-task          predict with a mask trained on another task\n"
            "  --max-seq-length N  (128)\n"
            "  --batch-size N      (32)\n"
            "  --threads N\n");
}

/* Predict one split into OUT/<name>.tsv and OUT/<name>.logits.tsv. */
static int predict_split(fm_ft_ctx *c, const eval_args *a, fm_glue_split split, const char *name) {
    fm_glue_set set = {0};
    fm_dataset d = {0};
    int rc = FM_ERR;
    float *logits = NULL, *scores = NULL;
    const char **ids = NULL, **labels = NULL;
    char *path = NULL;
    if (fm_ft_encode(c, a->data, split, (int)a->max_seq, &set, &d) != FM_OK) goto done;
    const int NL = c->model.cfg.num_labels;
    logits = fm_xmalloc(sizeof(float) * (size_t)(d.n ? d.n : 1) * (size_t)NL);
    fm_ft_predict(c, &d, (int)a->batch, logits, NULL);
    ids = fm_xcalloc((size_t)(d.n ? d.n : 1), sizeof *ids);
    char *numbers = fm_xmalloc((size_t)(d.n ? d.n : 1) * 16);
    for (int i = 0; i < d.n; i++) {
        if (set.ex[i].id) {
            ids[i] = set.ex[i].id;
        } else {
            snprintf(numbers + (size_t)i * 16, 16, "%d", i);
            ids[i] = numbers + (size_t)i * 16;
        }
    }
    char file[160];
    snprintf(file, sizeof file, "%s.tsv", name);
    path = fm_path_join(a->out, file);
    if (c->task->is_regression) {
        scores = fm_xmalloc(sizeof(float) * (size_t)(d.n ? d.n : 1));
        for (int i = 0; i < d.n; i++) scores[i] = logits[i];
        rc = fm_write_submission(path, ids, NULL, scores, (size_t)d.n);
    } else {
        labels = fm_xcalloc((size_t)(d.n ? d.n : 1), sizeof *labels);
        for (int i = 0; i < d.n; i++) {
            const float *l = logits + (size_t)i * NL;
            int best = 0;
            for (int k = 1; k < NL; k++)
                if (l[k] > l[best]) best = k;
            labels[i] = c->task->labels[best];
        }
        rc = fm_write_submission(path, ids, labels, NULL, (size_t)d.n);
    }
    if (rc == FM_OK) {
        free(path);
        snprintf(file, sizeof file, "%s.logits.tsv", name);
        path = fm_path_join(a->out, file);
        const char *reg[] = {"score"};
        rc = fm_write_logits(path, ids, c->task->is_regression ? reg : (const char *const *)c->task->labels, logits,
                             (size_t)d.n, NL);
    }
    if (rc == FM_OK) fm_log("%s: %d predictions written to %s/%s.tsv", c->task->name, d.n, a->out, name);
    free(numbers);
done:
    free(path);
    free(ids);
    free(labels);
    free(scores);
    free(logits);
    fm_dataset_free(&d);
    fm_glue_set_free(&set);
    return rc;
}

int fm_cmd_predict(int argc, char **argv) {
    eval_args a = {0};
    int exit_now;
    if (parse(argc, argv, &a, predict_usage, &exit_now) != FM_OK) return fm_cli_fail();
    if (exit_now) return 0;
    if (!a.out) {
        fm_fail("predict: --out DIR is required");
        return fm_cli_fail();
    }
    int dev = 0;
    if (a.split) {
        if (!strcmp(a.split, "dev")) {
            dev = 1;
        } else if (strcmp(a.split, "test") != 0) {
            fm_fail("predict: --split must be test or dev, found '%s'", a.split);
            return fm_cli_fail();
        }
    }
    if (a.samples > 0) {
        fm_fail("predict: --samples goes with eval only");
        return fm_cli_fail();
    }
    fm_ft_ctx c;
    if (fm_ft_load(&c, a.model, a.task, 0, -1) != FM_OK) return fm_cli_fail();
    int rc = FM_ERR;
    double sp;
    if (a.mask && apply_mask(&c, a.mask, a.any_task, &sp) != FM_OK) {
        /* the message is recorded */
    } else if (!c.head_loaded && !a.mask) {
        fm_fail("predict: %s has no task head for %s; fine-tune it first (finemask train)", a.model, a.task);
    } else if (fm_mkdirs(a.out) == FM_OK) {
        if (c.task->dev_mm_file) {
            /* MNLI: the matched and mismatched sets, as GLUE names the files. */
            fm_glue_split mm = dev ? FM_GLUE_DEV_MISMATCHED : FM_GLUE_TEST_MISMATCHED;
            char *dir = fm_path_join(a.data, c.task->name);
            char *mm_path = fm_path_join(dir, fm_glue_split_file(c.task, mm));
            int have_mm = fm_file_exists(mm_path);
            rc = predict_split(&c, &a, dev ? FM_GLUE_DEV : FM_GLUE_TEST, "MNLI-m");
            if (rc == FM_OK && have_mm)
                rc = predict_split(&c, &a, mm, "MNLI-mm");
            else if (rc == FM_OK)
                fm_log("%s: absent; wrote MNLI-m only", mm_path);
            free(mm_path);
            free(dir);
        } else {
            rc = predict_split(&c, &a, dev ? FM_GLUE_DEV : FM_GLUE_TEST, c.task->name);
        }
    }
    fm_ft_free(&c);
    return rc == FM_OK ? 0 : fm_cli_fail();
}
