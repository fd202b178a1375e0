/* cmd_mask.c: `finemask mask stats|overlap|apply|export|random`: what a mask
 * file holds, how two masks' zeros overlap, a sparsified model directory, an
 * unpacked copy for PyTorch users, and random masks (the paper's baseline). */
#define _GNU_SOURCE
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis.h"
#include "analysisjson.h"
#include "cli.h"
#include "fileio.h"
#include "fm.h"
#include "glue.h"
#include "mask.h"
#include "maskfile.h"
#include "modeldir.h"
#include "safetensors.h"

static void mask_usage(FILE *f) {
    fprintf(f,
            "usage: finemask mask stats FILE [--json]\n"
            "       finemask mask overlap A B [C ...] [--json]\n"
            "       finemask mask apply --model DIR --mask FILE --out DIR [--force]\n"
            "       finemask mask export FILE --out FILE.safetensors [--dtype u8|bool|f32]\n"
            "       finemask mask random --model DIR --sparsity S --seed N --out FILE\n"
            "                            [--mask GLOB] [--mask-layers LIST]\n"
            "\n"
            "  stats    sparsity (fraction of zeros) per masked matrix, per layer, per matrix\n"
            "           kind across layers, and overall, with the counts\n"
            "  overlap  for each pair of masks, the fraction of one mask's zeros that are also\n"
            "           zeros in the other, per matrix, per layer and overall, beside what\n"
            "           independent random masks of the same sparsities give\n"
            "  apply    write a HuggingFace model directory whose weights are the model's\n"
            "           times the mask, with the mask file's task head\n"
            "  export   the masks unpacked (one 0/1 per weight, the weights' shapes) as safetensors\n"
            "  random   a mask whose every entry is zeroed with probability S (Philox, seed N)\n"
            "\n"
            "finemask mask SUBCOMMAND --help describes each.\n");
}

/* Parse the common "--json" / "--help" flags and collect positional files. */
typedef struct {
    const char *files[64];
    int nfiles;
    int json;
    const char *model, *mask, *out, *dtype, *layers; /* --mask: a file (apply) or a glob (random) */
    double sparsity;
    long long seed;
    int have_sparsity, have_seed, force;
} mask_args;

static int parse(int argc, char **argv, mask_args *a, void (*usage)(FILE *), int *exit_now) {
    static const struct option opts[] = {
        {"json", no_argument, 0, 'j'},          {"model", required_argument, 0, 'M'},
        {"mask", required_argument, 0, 'k'},    {"out", required_argument, 0, 'o'},
        {"dtype", required_argument, 0, 'd'},   {"sparsity", required_argument, 0, 's'},
        {"seed", required_argument, 0, 'S'},    {"mask-layers", required_argument, 0, 'l'},
        {"force", no_argument, 0, 'f'},         {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    memset(a, 0, sizeof *a);
    *exit_now = 0;
    optind = 0;
    opterr = 0;
    for (int ch; (ch = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
        switch (ch) {
        case 'j': a->json = 1; break;
        case 'M': a->model = optarg; break;
        case 'k': a->mask = optarg; break;
        case 'o': a->out = optarg; break;
        case 'd': a->dtype = optarg; break;
        case 'l': a->layers = optarg; break;
        case 'f': a->force = 1; break;
        case 's':
            if (fm_opt_double("--sparsity", optarg, 0, 1, &a->sparsity) != FM_OK) return FM_ERR;
            a->have_sparsity = 1;
            break;
        case 'S':
            if (fm_opt_long("--seed", optarg, 0, INT64_MAX, &a->seed) != FM_OK) return FM_ERR;
            a->have_seed = 1;
            break;
        case 'h': usage(stdout); *exit_now = 1; return FM_OK;
        default: return fm_fail("mask %s: unknown or incomplete option '%s' (see --help)", argv[0], argv[optind - 1]);
        }
    }
    for (; optind < argc; optind++) {
        if (a->nfiles == (int)(sizeof a->files / sizeof a->files[0]))
            return fm_fail("mask %s: at most %d files", argv[0], a->nfiles);
        a->files[a->nfiles++] = argv[optind];
    }
    return FM_OK;
}

static int print_json(json_t *j) {
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(j);
    if (!s) return fm_fail("out of memory writing JSON");
    fputs(s, stdout);
    fputc('\n', stdout);
    free(s);
    return FM_OK;
}

/* The job metadata as JSON. */
static json_t *meta_json(const fm_maskfile_meta *m, int num_labels) {
    json_t *j = json_object();
    char fp[32];
    snprintf(fp, sizeof fp, "%016" PRIx64, m->model_fingerprint);
    json_object_set_new(j, "task", json_string(m->task));
    json_object_set_new(j, "mode", json_string(m->mode));
    json_object_set_new(j, "ste", json_string(m->ste));
    json_object_set_new(j, "seed", json_integer((json_int_t)m->seed));
    json_object_set_new(j, "init_sparsity", isnan(m->init_sparsity) ? json_null() : json_real(m->init_sparsity));
    json_object_set_new(j, "model_fingerprint", json_string(fp));
    json_object_set_new(j, "head_labels", json_integer(num_labels));
    json_t *x = json_object();
    for (int i = 0; i < m->nextra; i++) json_object_set_new(x, m->extra[i].key, json_string(m->extra[i].value));
    json_object_set_new(j, "extra", x);
    return j;
}

static void meta_line(const fm_maskfile_meta *m, const fm_mask *mask, int num_labels) {
    printf("%s: %d masked tensors; task %s, mode %s%s%s, seed %" PRIu64, m->path, mask->n, *m->task ? m->task : "-",
           *m->mode ? m->mode : "-", *m->ste ? ", ste " : "", m->ste, m->seed);
    if (!isnan(m->init_sparsity)) printf(", init sparsity %g", m->init_sparsity);
    printf("; model %016" PRIx64 "; head: %s", m->model_fingerprint, num_labels ? "" : "none");
    if (num_labels) printf("%d label%s", num_labels, num_labels == 1 ? " (regression)" : "s");
    printf("\n");
}

/* ---- stats ---- */

static void stats_usage(FILE *f) {
    fprintf(f,
            "usage: finemask mask stats FILE [--json]\n"
            "\n"
            "Print a mask file's job metadata and its sparsity (fraction of zeroed entries)\n"
            "with the counts: per masked matrix, per layer (embeddings, encoder layers,\n"
            "pooler), per matrix kind across the encoder layers (query, key, ...), a table\n"
            "of encoder layer by matrix kind (the paper's Figure 4), and overall. Counts\n"
            "are popcounts of the packed bits.\n"
            "\n"
            "  --json   print {\"file\", \"meta\", \"tensors\", \"layers\", \"kinds\", \"all\"} instead;\n"
            "           each row {\"name\", \"layer\", \"tensors\", \"entries\", \"ones\", \"zeros\",\n"
            "           \"sparsity\"}\n");
}

static void count_table(const char *title, const fm_mask_count_row *r, int n, int w) {
    printf("\n%-*s  %14s  %14s  %14s  %9s\n", w, title, "entries", "kept", "zeroed", "sparsity");
    for (int i = 0; i < n; i++)
        printf("%-*s  %14zu  %14zu  %14zu  %9.6f\n", w, r[i].label, r[i].numel, r[i].ones, r[i].zeros, r[i].sparsity);
}

/* Encoder layer by matrix kind: each cell the sparsity of that matrix. */
static void pivot_table(const fm_mask_stats *s) {
    const fm_mask_count_row *kinds[16];
    int nk = 0;
    for (int k = 0; k < s->nkind && nk < 16; k++)
        if (s->kind[k].layer >= 0) kinds[nk++] = &s->kind[k];
    if (nk == 0) return;
    printf("\nsparsity by encoder layer and matrix\n%-5s", "layer");
    for (int k = 0; k < nk; k++) {
        char h[96];
        snprintf(h, sizeof h, "%s", kinds[k]->label);
        char *dot = strstr(h, ".weight");
        if (dot) *dot = '\0';
        const char *shortname = strrchr(h, '.') && strncmp(h, "attention.output", 16) ? strrchr(h, '.') + 1 : h;
        if (!strcmp(h, "attention.output.dense")) shortname = "attn.out";
        if (!strcmp(h, "intermediate.dense")) shortname = "intermediate";
        if (!strcmp(h, "output.dense")) shortname = "output";
        printf("  %12.12s", shortname);
    }
    printf("\n");
    for (int l = 0; l < s->nlayer; l++) {
        if (s->layer[l].layer < 0) continue;
        printf("%-5s", s->layer[l].label);
        for (int k = 0; k < nk; k++) {
            const fm_mask_count_row *cell = NULL;
            for (int t = 0; t < s->n; t++)
                if (s->tensor[t].layer == s->layer[l].layer && !strcmp(fm_name_kind(s->tensor[t].label), kinds[k]->label))
                    cell = &s->tensor[t];
            if (cell)
                printf("  %12.6f", cell->sparsity);
            else
                printf("  %12s", "-");
        }
        printf("\n");
    }
}

static int cmd_stats(int argc, char **argv) {
    mask_args a;
    int exit_now;
    if (parse(argc, argv, &a, stats_usage, &exit_now) != FM_OK) return fm_cli_fail();
    if (exit_now) return 0;
    if (a.nfiles != 1) {
        fm_fail("mask stats: expected one mask file, found %d (see --help)", a.nfiles);
        return fm_cli_fail();
    }
    fm_mask m;
    fm_maskfile_meta meta;
    int nl;
    if (fm_maskfile_read(a.files[0], &m, &meta, NULL, NULL, &nl) != FM_OK) return fm_cli_fail();
    fm_mask_stats s;
    fm_mask_stats_compute(&s, &m);
    int rc = FM_OK;
    if (a.json) {
        json_t *j = json_object();
        json_object_set_new(j, "file", json_string(a.files[0]));
        json_object_set_new(j, "meta", meta_json(&meta, nl));
        json_t *st = fm_mask_stats_json(&s);
        json_object_update(j, st);
        json_decref(st);
        rc = print_json(j);
    } else {
        meta_line(&meta, &m, nl);
        int w = 10;
        for (int i = 0; i < s.n; i++)
            if ((int)strlen(s.tensor[i].label) > w) w = (int)strlen(s.tensor[i].label);
        count_table("tensor", s.tensor, s.n, w);
        count_table("layer", s.layer, s.nlayer, w);
        count_table("matrix (all layers)", s.kind, s.nkind, w);
        pivot_table(&s);
        printf("\noverall: %zu entries, %zu kept, %zu zeroed, sparsity %.6f\n", s.all.numel, s.all.ones, s.all.zeros,
               s.all.sparsity);
    }
    fm_mask_stats_free(&s);
    fm_mask_free(&m);
    fm_maskfile_meta_free(&meta);
    return rc == FM_OK ? 0 : fm_cli_fail();
}

/* ---- overlap ---- */

static void overlap_usage(FILE *f) {
    fprintf(f,
            "usage: finemask mask overlap A B [C ...] [--json]\n"
            "\n"
            "For each pair of mask files (A, B): per masked matrix, per layer, per matrix\n"
            "kind and overall, the fraction of A's zeros that are also zeros in B\n"
            "(shared_a = common / zeros_a) and of B's zeros that are also in A (shared_b),\n"
            "beside what two independent random masks with the same per-matrix sparsities\n"
            "give (expected_a = the sparsity of B for one matrix; for a group, the mean of\n"
            "its matrices' B sparsities weighted by A's zeros). Counted with popcount on\n"
            "the packed bits. The masks must be over the same pre-trained model (model\n"
            "fingerprint) and the same tensors.\n"
            "\n"
            "  --json   print {\"files\": [...], \"pairs\": [{\"a\", \"b\", \"tensors\", \"layers\",\n"
            "           \"kinds\", \"all\"}]}; each row {\"name\", \"layer\", \"tensors\", \"entries\",\n"
            "           \"zeros_a\", \"zeros_b\", \"common_zeros\", \"sparsity_a\", \"sparsity_b\",\n"
            "           \"shared_a\", \"expected_a\", \"pooled_a\", \"shared_b\", \"expected_b\",\n"
            "           \"pooled_b\"} (pooled_*: the expectation from the group's overall\n"
            "           sparsity alone; null where a mask has no zeros)\n");
}

static void overlap_table(const char *title, const fm_overlap_row *r, int n, int w) {
    printf("\n%-*s  %14s  %9s  %9s  %14s  %9s  %9s  %9s  %9s\n", w, title, "entries", "sparse_a", "sparse_b",
           "common_zeros", "shared_a", "expect_a", "shared_b", "expect_b");
    for (int i = 0; i < n; i++)
        printf("%-*s  %14zu  %9.6f  %9.6f  %14zu  %9.6f  %9.6f  %9.6f  %9.6f\n", w, r[i].label, r[i].numel,
               r[i].sparsity_a, r[i].sparsity_b, r[i].common, r[i].frac_a, r[i].expect_a, r[i].frac_b, r[i].expect_b);
}

static int cmd_overlap(int argc, char **argv) {
    mask_args a;
    int exit_now;
    if (parse(argc, argv, &a, overlap_usage, &exit_now) != FM_OK) return fm_cli_fail();
    if (exit_now) return 0;
    if (a.nfiles < 2) {
        fm_fail("mask overlap: expected at least two mask files, found %d (see --help)", a.nfiles);
        return fm_cli_fail();
    }
    fm_mask *m = fm_xcalloc((size_t)a.nfiles, sizeof *m);
    fm_maskfile_meta *meta = fm_xcalloc((size_t)a.nfiles, sizeof *meta);
    int nread = 0, rc = FM_OK;
    for (; nread < a.nfiles && rc == FM_OK; nread++) {
        rc = fm_maskfile_read(a.files[nread], &m[nread], &meta[nread], NULL, NULL, NULL);
        if (rc != FM_OK) break;
        if (meta[nread].model_fingerprint != meta[0].model_fingerprint)
            rc = fm_fail("%s and %s are masks over different pre-trained models (fingerprints %016" PRIx64
                         " and %016" PRIx64 "): their overlap means nothing",
                         a.files[0], a.files[nread], meta[0].model_fingerprint, meta[nread].model_fingerprint);
    }
    json_t *pairs = json_array();
    for (int i = 0; rc == FM_OK && i < a.nfiles; i++) {
        for (int j = i + 1; rc == FM_OK && j < a.nfiles; j++) {
            fm_overlap o;
            if (fm_mask_overlap(&o, &m[i], &m[j]) != FM_OK) {
                rc = fm_fail_prefix("%s (first) and %s (second): ", a.files[i], a.files[j]);
                break;
            }
            if (a.json) {
                json_t *p = json_object();
                json_object_set_new(p, "a", json_string(a.files[i]));
                json_object_set_new(p, "b", json_string(a.files[j]));
                json_t *oj = fm_overlap_json(&o);
                json_object_update(p, oj);
                json_decref(oj);
                json_array_append_new(pairs, p);
            } else {
                printf("%sA = %s (task %s)\nB = %s (task %s)\n", i + j > 1 ? "\n" : "", a.files[i],
                       *meta[i].task ? meta[i].task : "-", a.files[j], *meta[j].task ? meta[j].task : "-");
                int w = 10;
                for (int t = 0; t < o.n; t++)
                    if ((int)strlen(o.tensor[t].label) > w) w = (int)strlen(o.tensor[t].label);
                overlap_table("tensor", o.tensor, o.n, w);
                overlap_table("layer", o.layer, o.nlayer, w);
                overlap_table("matrix (all layers)", o.kind, o.nkind, w);
                printf("\noverall: %zu of A's %zu zeros are zeros in B: shared %.6f (random masks: %.6f); "
                       "%zu of B's %zu: shared %.6f (random: %.6f)\n",
                       o.all.common, o.all.zeros_a, o.all.frac_a, o.all.expect_a, o.all.common, o.all.zeros_b,
                       o.all.frac_b, o.all.expect_b);
            }
            fm_overlap_free(&o);
        }
    }
    if (rc == FM_OK && a.json) {
        json_t *j = json_object(), *files = json_array();
        for (int i = 0; i < a.nfiles; i++) json_array_append_new(files, json_string(a.files[i]));
        json_object_set_new(j, "files", files);
        json_object_set_new(j, "pairs", json_incref(pairs));
        rc = print_json(j);
    }
    json_decref(pairs);
    for (int i = 0; i < nread && i < a.nfiles; i++) {
        fm_mask_free(&m[i]);
        fm_maskfile_meta_free(&meta[i]);
    }
    free(m);
    free(meta);
    return rc == FM_OK ? 0 : fm_cli_fail();
}

/* ---- apply ---- */

static void apply_usage(FILE *f) {
    fprintf(f,
            "usage: finemask mask apply --model DIR --mask FILE --out DIR [--force]\n"
            "\n"
            "Write a HuggingFace BERT directory (config.json, model.safetensors, and the\n"
            "model's vocab.txt, tokenizer.json and tokenizer_config.json when it has them)\n"
            "whose weights are the model's times the mask (zeroed where the mask is 0) and\n"
            "whose task head (classifier.*, config num_labels and the task's label names)\n"
            "is the mask file's. finemask eval/predict, transformers'\n"
            "BertForSequenceClassification and any BERT loader run it. The mask must have\n"
            "been trained over this model (fingerprint and shapes are checked).\n"
            "\n"
            "  --force   overwrite an existing OUT/model.safetensors\n");
}

static int cmd_apply(int argc, char **argv) {
    mask_args a;
    int exit_now;
    if (parse(argc, argv, &a, apply_usage, &exit_now) != FM_OK) return fm_cli_fail();
    if (exit_now) return 0;
    if (a.nfiles) {
        fm_fail("mask apply: unexpected argument '%s'", a.files[0]);
        return fm_cli_fail();
    }
    if (!a.model || !a.mask || !a.out) {
        fm_fail("mask apply: --model, --mask and --out are required (see --help)");
        return fm_cli_fail();
    }
    char *wpath = fm_path_join(a.out, FM_MODEL_WEIGHTS), *vocab = fm_path_join(a.model, FM_MODEL_VOCAB);
    fm_model model;
    fm_mask m;
    fm_maskfile_meta meta;
    int rc = FM_ERR;
    if (!a.force && fm_file_exists(wpath)) {
        fm_fail("%s already exists (use --force to overwrite it)", wpath);
        goto out;
    }
    char *rm = realpath(a.model, NULL), *ro = realpath(a.out, NULL);
    int same = rm && ro && !strcmp(rm, ro);
    free(rm);
    free(ro);
    if (same) {
        fm_fail("mask apply: --out %s is the model directory itself; the pre-trained model would be lost", a.out);
        goto out;
    }
    if (fm_maskfile_load_model(a.model, a.mask, &model, &m, &meta) != FM_OK) goto out;
    fm_hfextra x;
    memset(&x, 0, sizeof x);
    const fm_glue_task *task = *meta.task ? fm_glue_task_find(meta.task) : NULL;
    if (task && task->labels && task->num_labels == model.cfg.num_labels) {
        x.id2label = (char **)task->labels;
        x.nlabels = task->num_labels;
        x.labels_given = 1;
    }
    if (*meta.task) x.finetuning_task = meta.task;
    char fp[32];
    snprintf(fp, sizeof fp, "%016" PRIx64, meta.model_fingerprint);
    fm_st_meta md[] = {{"finemask.masked_from", fp}, {"finemask.mask_task", meta.task},
                       {"finemask.mask_mode", meta.mode}};
    fm_save_opts so = {
        .vocab = fm_file_exists(vocab) ? vocab : NULL, .tokenizer_from = a.model, .extra = &x, .meta = md, .nmeta = 3};
    rc = fm_modeldir_save(a.out, &model.cfg, &model.lay, model.params, &so);
    if (rc == FM_OK) {
        fm_mask_stats s;
        fm_mask_stats_compute(&s, &m);
        printf("%s: %s with mask %s: %zu of %zu masked weights zeroed (sparsity %.6f); head: %d label%s\n", a.out,
               a.model, a.mask, s.all.zeros, s.all.numel, s.all.sparsity, model.cfg.num_labels,
               model.cfg.num_labels == 1 ? "" : "s");
        if (!so.vocab) fm_log("%s has no vocab.txt: %s has none either", a.out, a.model);
        fm_mask_stats_free(&s);
    }
    fm_model_free(&model);
    fm_mask_free(&m);
    fm_maskfile_meta_free(&meta);
out:
    free(wpath);
    free(vocab);
    return rc == FM_OK ? 0 : fm_cli_fail();
}

/* ---- export ---- */

static void export_usage(FILE *f) {
    fprintf(f,
            "usage: finemask mask export FILE --out OUT.safetensors [--dtype u8|bool|f32]\n"
            "\n"
            "Write the masks unpacked, for PyTorch users: one tensor per masked weight,\n"
            "named as the weight (\"bert.encoder.layer.0.attention.self.query.weight\"),\n"
            "with the weight's shape, 1 = kept and 0 = zeroed; the task head\n"
            "(classifier.weight, classifier.bias, F32) beside them when the file has one.\n"
            "The metadata repeats the job's (task, mode, seed, model_fingerprint, ...).\n"
            "In PyTorch: m = safetensors.torch.load_file(OUT); w.mul_(m[name]).\n"
            "\n"
            "  --dtype u8|bool|f32   element type of the masks (default u8: 1 byte each)\n");
}

/* --dtype: u8 (the default), bool or f32. */
static int export_dtype(const char *s, fm_st_dtype *dt) {
    *dt = FM_ST_U8;
    if (s && !strcmp(s, "bool"))
        *dt = FM_ST_BOOL;
    else if (s && !strcmp(s, "f32"))
        *dt = FM_ST_F32;
    else if (s && strcmp(s, "u8"))
        return fm_fail("--dtype: expected u8, bool or f32, found '%s'", s);
    return FM_OK;
}

/* The entries of mask m unpacked as dt (names[k] and bufs[k] theirs), then
 * the task head's (hw, hb with nl labels) when there is one. FM_ERR when a
 * buffer cannot be had (the entries from there on stay empty). */
static int export_entries(const fm_mask *m, fm_st_dtype dt, char (*names)[128], void **bufs, fm_st_entry *e,
                          const fm_maskfile_meta *meta, float *hw, float *hb, int nl) {
    int rc = FM_OK;
    for (int k = 0; k < m->n && rc == FM_OK; k++) {
        const fm_mask_tensor *t = &m->t[k];
        bufs[k] = fm_try_malloc(t->numel * fm_st_dtype_size(dt) + 1);
        if (!bufs[k]) {
            rc = FM_ERR;
            break;
        }
        if (dt == FM_ST_F32) {
            float *f = bufs[k];
            for (size_t i = 0; i < t->numel; i++) f[i] = (float)fm_mask_get(t, i);
        } else {
            uint8_t *u = bufs[k];
            for (size_t i = 0; i < t->numel; i++) u[i] = (uint8_t)fm_mask_get(t, i);
        }
        fm_mask_hf_name(names[k], t->name);
        e[k] = (fm_st_entry){.name = names[k], .dtype = dt, .ndim = t->ndim, .data = bufs[k]};
        e[k].shape[0] = t->shape[0];
        e[k].shape[1] = t->shape[1];
    }
    if (nl) {
        e[m->n] = (fm_st_entry){.name = "classifier.weight", .dtype = FM_ST_F32, .ndim = 2, .data = hw};
        e[m->n].shape[0] = nl;
        e[m->n].shape[1] = meta->head_in;
        e[m->n + 1] = (fm_st_entry){.name = "classifier.bias", .dtype = FM_ST_F32, .ndim = 1, .data = hb};
        e[m->n + 1].shape[0] = nl;
    }
    return rc;
}

/* The metadata's own strings (the rest point into the mask file's). */
typedef struct {
    char fp[32], seed[32], isp[40];
} export_strs;

/* The exported file's metadata: the job's, as the mask file holds it; their
 * number into *nmd. */
static fm_st_meta *export_meta(fm_maskfile_meta *meta, export_strs *s, int *nmd) {
    snprintf(s->fp, sizeof s->fp, "%016" PRIx64, meta->model_fingerprint);
    snprintf(s->seed, sizeof s->seed, "%" PRIu64, meta->seed);
    snprintf(s->isp, sizeof s->isp, isnan(meta->init_sparsity) ? "nan" : "%.17g", meta->init_sparsity);
    fm_st_meta *md = fm_xcalloc((size_t)meta->nextra + 8, sizeof *md);
    int n = 0;
    md[n++] = (fm_st_meta){"format", "pt"};
    md[n++] = (fm_st_meta){"finemask.content", "unpacked mask: 1 = kept, 0 = zeroed"};
    md[n++] = (fm_st_meta){"model_fingerprint", s->fp};
    md[n++] = (fm_st_meta){"task", meta->task};
    md[n++] = (fm_st_meta){"mode", meta->mode};
    md[n++] = (fm_st_meta){"ste", meta->ste};
    md[n++] = (fm_st_meta){"seed", s->seed};
    md[n++] = (fm_st_meta){"init_sparsity", s->isp};
    for (int i = 0; i < meta->nextra; i++)
        if (strcmp(meta->extra[i].key, "format")) md[n++] = meta->extra[i];
    *nmd = n;
    return md;
}

static int cmd_export(int argc, char **argv) {
    mask_args a;
    int exit_now;
    if (parse(argc, argv, &a, export_usage, &exit_now) != FM_OK) return fm_cli_fail();
    if (exit_now) return 0;
    if (a.nfiles != 1 || !a.out) {
        fm_fail("mask export: expected one mask file and --out (see --help)");
        return fm_cli_fail();
    }
    fm_st_dtype dt;
    if (export_dtype(a.dtype, &dt) != FM_OK) return fm_cli_fail();
    fm_mask m;
    fm_maskfile_meta meta;
    float *hw = NULL, *hb = NULL;
    int nl;
    if (fm_maskfile_read(a.files[0], &m, &meta, &hw, &hb, &nl) != FM_OK) return fm_cli_fail();
    int n = m.n + (nl ? 2 : 0);
    fm_st_entry *e = fm_xcalloc((size_t)(n ? n : 1), sizeof *e);
    char(*names)[128] = fm_xcalloc((size_t)(m.n ? m.n : 1), sizeof *names);
    void **bufs = fm_xcalloc((size_t)(m.n ? m.n : 1), sizeof *bufs);
    int rc = export_entries(&m, dt, names, bufs, e, &meta, hw, hb, nl);
    export_strs s;
    int nmd;
    fm_st_meta *md = export_meta(&meta, &s, &nmd);
    if (rc == FM_OK) rc = fm_st_write(a.out, e, n, md, nmd);
    if (rc == FM_OK)
        printf("%s: %d masks unpacked as %s%s\n", a.out, m.n, fm_st_dtype_name(dt), nl ? ", with the task head" : "");
    for (int k = 0; k < m.n; k++) free(bufs[k]);
    free(bufs);
    free(names);
    free(e);
    free(md);
    free(hw);
    free(hb);
    fm_mask_free(&m);
    fm_maskfile_meta_free(&meta);
    return rc == FM_OK ? 0 : fm_cli_fail();
}

/* ---- random ---- */

static void random_usage(FILE *f) {
    fprintf(f,
            "usage: finemask mask random --model DIR --sparsity S --seed N --out FILE\n"
            "                            [--mask GLOB] [--mask-layers LIST]\n"
            "\n"
            "Write a mask file over the model's weights in which every entry is zeroed\n"
            "independently with probability S (kept when a Philox uniform keyed by seed,\n"
            "tensor name and position is >= S): the random masks of the paper's Figure 6.\n"
            "The model's task head, when it has one, is stored beside the mask. Metadata:\n"
            "mode \"random\", the seed, and \"sparsity\" = S.\n"
            "\n"
            "  --mask GLOB          the masked tensors (default: every weight matrix of the\n"
            "                       embeddings, encoder and pooler)\n"
            "  --mask-layers LIST   only these encoder layers, e.g. 0-3,8\n");
}

static int cmd_random(int argc, char **argv) {
    mask_args a;
    int exit_now;
    if (parse(argc, argv, &a, random_usage, &exit_now) != FM_OK) return fm_cli_fail();
    if (exit_now) return 0;
    if (a.nfiles) {
        fm_fail("mask random: unexpected argument '%s'", a.files[0]);
        return fm_cli_fail();
    }
    if (!a.model || !a.out || !a.have_sparsity || !a.have_seed) {
        fm_fail("mask random: --model, --sparsity, --seed and --out are required (see --help)");
        return fm_cli_fail();
    }
    fm_model model;
    fm_load_info info;
    if (fm_modeldir_load(a.model, NULL, &model, &info) != FM_OK) return fm_cli_fail();
    fm_mask m;
    int rc = fm_mask_create(&m, &model.lay, a.mask ? a.mask : FM_MASK_DEFAULT_GLOB, a.layers);
    if (rc == FM_OK) {
        fm_mask_random(&m, a.sparsity, (uint64_t)a.seed);
        fm_maskfile_meta meta;
        fm_maskfile_meta_init(&meta);
        snprintf(meta.mode, sizeof meta.mode, "random");
        meta.seed = (uint64_t)a.seed;
        meta.model_fingerprint = fm_params_fingerprint(&model.lay, model.params);
        if (info.extra.finetuning_task) snprintf(meta.task, sizeof meta.task, "%s", info.extra.finetuning_task);
        char s[40];
        snprintf(s, sizeof s, "%.17g", a.sparsity);
        fm_maskfile_meta_set(&meta, "sparsity", s);
        int head = info.head_present && model.cfg.num_labels > 0;
        rc = fm_maskfile_write(a.out, &m, &meta, &model.lay, head ? model.params : NULL);
        if (rc == FM_OK) {
            fm_mask_stats st;
            fm_mask_stats_compute(&st, &m);
            printf("%s: random mask over %d tensors of %s, %zu of %zu entries zeroed (sparsity %.6f)%s\n", a.out, m.n,
                   a.model, st.all.zeros, st.all.numel, st.all.sparsity, head ? ", with the model's task head" : "");
            fm_mask_stats_free(&st);
        }
        fm_maskfile_meta_free(&meta);
        fm_mask_free(&m);
    }
    fm_load_info_free(&info);
    fm_model_free(&model);
    return rc == FM_OK ? 0 : fm_cli_fail();
}

int fm_cmd_mask(int argc, char **argv) {
    static const struct {
        const char *name;
        int (*run)(int, char **);
    } sub[] = {{"stats", cmd_stats}, {"overlap", cmd_overlap}, {"apply", cmd_apply},
               {"export", cmd_export}, {"random", cmd_random}};
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        mask_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 1 : 0;
    }
    for (size_t i = 0; i < sizeof sub / sizeof sub[0]; i++)
        if (!strcmp(argv[1], sub[i].name)) return sub[i].run(argc - 1, argv + 1);
    fprintf(stderr, "finemask: error: mask: unknown subcommand '%s' (stats, overlap, apply, export, random)\n", argv[1]);
    return 1;
}
