/* finetune.c: a single-process fine-tuning job on a GLUE task (see finetune.h). */
#define _GNU_SOURCE
#include "finetune.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <unistd.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "controls.h"
#include "engine.h"
#include "fileio.h"
#include "fm.h"
#include "gather.h"
#include "maskfile.h"
#include "modeldir.h"
#include "optim.h"
#include "options.h"
#include "progress.h"
#include "stopsig.h"
#include "rng.h"
#include "runfiles.h"
#include "train.h"
#include "trainstate.h"
#include "tokjson.h"
#include "trainloop.h"
#include "vocab.h"

static json_t *str_or_null(const char *s) { return s ? json_string(s) : json_null(); }
/* JSON has no NaN or infinity: such a value is written as null, never as a number. */
static json_t *num_or_null(double x) { return isfinite(x) ? json_real(x) : json_null(); }

void fm_ft_threads(int n) {
    omp_set_num_threads(n);
    fm_blas_set_threads(n);
}

int fm_ft_load(fm_ft_ctx *c, const char *model_dir, const char *task_name, uint64_t seed, double dropout) {
    return fm_ft_load_stage(c, model_dir, task_name, seed, dropout, 0, 1, 0, 1);
}

int fm_ft_load_stage(fm_ft_ctx *c, const char *model_dir, const char *task_name, uint64_t seed, double dropout,
                     int stage, int nstages, int tp, int ntp) {
    memset(c, 0, sizeof *c);
    c->task = fm_glue_task_find(task_name);
    if (!c->task) return FM_ERR;
    fm_load_opts lo;
    fm_load_opts_default(&lo);
    lo.num_labels = c->task->num_labels;
    lo.with_mlm = 0;
    lo.stage = stage;
    lo.nstages = nstages;
    lo.tp = tp;
    lo.ntp = ntp;
    fm_load_info info;
    if (fm_modeldir_load(model_dir, &lo, &c->model, &info) != FM_OK) return FM_ERR;
    c->head_loaded = info.head_present;
    fm_load_info_free(&info);
    if (dropout >= 0) {
        c->model.cfg.hidden_dropout_prob = (float)dropout;
        c->model.cfg.attention_probs_dropout_prob = (float)dropout;
    }
    if (!c->model.own && ntp <= 1) c->fingerprint = fm_params_fingerprint(&c->model.lay, c->model.params);
    const fm_tensor *w = fm_layout_find(&c->model.lay, "classifier.weight");
    if (!c->head_loaded) {
        /* A new task head: N(0, initializer_range^2) weights, zero bias, as
         * BertForSequenceClassification initialises it (by the stage that
         * holds it). */
        float *p = fm_model_holds(&c->model, (int)(w - c->model.lay.t)) ? c->model.params + w->offset : NULL;
        const fm_tensor *b = fm_layout_find(&c->model.lay, "classifier.bias");
        if (p) {
            fm_rng_normals(seed, FM_RNG_HEAD, 0, 0, p, w->numel);
            for (size_t i = 0; i < w->numel; i++) p[i] *= c->model.cfg.initializer_range;
            memset(c->model.params + b->offset, 0, b->numel * sizeof(float));
        }
        fm_log("%s: no task head with %d label(s) in the checkpoint; created one (seed %" PRIu64 ")", model_dir,
               c->task->num_labels, seed);
    }
    /* Label names for config.json: the task's. */
    c->extra.nlabels = c->task->num_labels;
    c->extra.labels_given = 1;
    c->extra.finetuning_task = fm_xstrdup(c->task->name);
    if (c->task->labels) {
        c->extra.id2label = fm_xcalloc((size_t)c->task->num_labels, sizeof(char *));
        for (int i = 0; i < c->task->num_labels; i++) c->extra.id2label[i] = fm_xstrdup(c->task->labels[i]);
    }
    c->vocab_path = fm_path_join(model_dir, FM_MODEL_VOCAB);
    c->model_dir = fm_xstrdup(model_dir);
    char *source = NULL;
    if (fm_tokenizer_load_dir(&c->tok, model_dir, NULL, -1, &source) != FM_OK) {
        fm_model_free(&c->model);
        fm_hfextra_free(&c->extra);
        free(c->vocab_path);
        free(c->model_dir);
        free(source);
        return FM_ERR;
    }
    if (c->tok.vocab.n > c->model.cfg.vocab_size) {
        /* Ids past vocab_size would index rows the word embeddings do not have. */
        fm_fail("%s has %d tokens but %s/config.json says vocab_size %d: tokens %d to %d have no word embedding; "
                "use the vocabulary the model was trained with",
                source, c->tok.vocab.n, model_dir, c->model.cfg.vocab_size, c->model.cfg.vocab_size,
                c->tok.vocab.n - 1);
        free(source);
        fm_ft_free(c);
        return FM_ERR;
    }
    if (c->tok.vocab.n < c->model.cfg.vocab_size)
        fm_log("warning: %s has %d tokens but config.json says vocab_size %d (the last %d embedding rows are unused)",
               source, c->tok.vocab.n, c->model.cfg.vocab_size, c->model.cfg.vocab_size - c->tok.vocab.n);
    free(source);
    return FM_OK;
}

void fm_ft_free(fm_ft_ctx *c) {
    fm_model_free(&c->model);
    fm_tokenizer_free(&c->tok);
    fm_hfextra_free(&c->extra);
    free(c->vocab_path);
    free(c->model_dir);
    memset(c, 0, sizeof *c);
}

int fm_ft_encode(fm_ft_ctx *c, const char *data_dir, fm_glue_split split, int max_seq_length, fm_glue_set *set,
                 fm_dataset *d) {
    return fm_ft_encode_first(c, data_dir, split, max_seq_length, -1, set, d);
}

int fm_ft_encode_first(fm_ft_ctx *c, const char *data_dir, fm_glue_split split, int max_seq_length, int64_t limit,
                       fm_glue_set *set, fm_dataset *d) {
    if (fm_glue_load(set, c->task, split, data_dir) != FM_OK) return FM_ERR;
    if (set->skipped)
        fm_log("%s/%s/%s: %zu row(s) with too few fields skipped, as GLUE's %s processor does", data_dir,
               c->task->name, fm_glue_split_file(c->task, split), set->skipped, c->task->name);
    if (max_seq_length > c->model.cfg.max_position_embeddings)
        return fm_fail("--max-seq-length %d exceeds the model's max_position_embeddings %d", max_seq_length,
                       c->model.cfg.max_position_embeddings);
    const int n = limit >= 0 && (size_t)limit < set->n ? (int)limit : (int)set->n;
    fm_dataset_alloc(d, n, max_seq_length, c->tok.pad_id);
    int bad = -1;
    char msg[512] = "";
#pragma omp parallel
    {
        int32_t *mask = fm_xmalloc(sizeof(int32_t) * (size_t)max_seq_length);
#pragma omp for schedule(dynamic, 64)
        for (int i = 0; i < n; i++) {
            const fm_glue_example *e = &set->ex[i];
            fm_encoding enc = {d->ids + (size_t)i * max_seq_length, d->types + (size_t)i * max_seq_length, mask, 0};
            int rc = fm_encode(&c->tok, e->text_a, strlen(e->text_a), e->text_b, e->text_b ? strlen(e->text_b) : 0,
                               max_seq_length, max_seq_length, &enc);
            if (rc != FM_OK) {
#pragma omp critical(fm_ft_encode_error)
                if (bad < 0 || i < bad) {
                    bad = i;
                    snprintf(msg, sizeof msg, "%s", fm_last_error());
                }
            }
            d->lengths[i] = enc.len;
            d->labels[i] = e->label;
            d->targets[i] = e->score;
        }
        free(mask);
    }
    /* Every id within the model's tables (the forward pass only asserts it). */
    if (bad < 0 && fm_dataset_check(d, &c->model.cfg, &bad) != FM_OK) snprintf(msg, sizeof msg, "%s", fm_last_error());
    if (bad >= 0)
        return fm_fail("%s/%s/%s:%d: %s", data_dir, c->task->name, fm_glue_split_file(c->task, split),
                       set->ex[bad].line, msg);
    return FM_OK;
}

void fm_ft_logits(fm_ft_ctx *c, const fm_dataset *d, int batch_size, int row0, int row1, float *logits) {
    fm_model *m = &c->model;
    const int NL = m->cfg.num_labels;
    if (row1 <= row0) return;
    /* forward-only activations for the largest batch these rows make */
    const int cap = row1 - row0 < batch_size ? row1 - row0 : batch_size;
    fm_acts *acts = fm_acts_new_for(m, cap, d->max_len, 0, m->cfg.num_hidden_layers, 1);
    fm_batch_buf bb;
    fm_batch_buf_alloc(&bb, cap, d->max_len);
    int32_t *rows = fm_xmalloc(sizeof(int32_t) * (size_t)batch_size);
    fm_pass pass = {.seed = 0, .step = 0, .training = 0, .cls_only_last = 1};
    for (int i = row0; i < row1; i += batch_size) {
        int B = row1 - i < batch_size ? row1 - i : batch_size;
        for (int j = 0; j < B; j++) rows[j] = i + j;
        fm_batch_fill(&bb, d, rows, B, 1, 0);
        bb.b.labels = NULL;
        bb.b.targets = NULL;
        fm_model_forward(m, acts, &bb.b, &pass, logits + (size_t)i * NL);
    }
    free(rows);
    fm_batch_buf_free(&bb);
    fm_acts_free(acts);
}

void fm_ft_score(const fm_ft_ctx *c, const fm_dataset *d, const float *logits, fm_glue_report *r) {
    const int NL = c->model.cfg.num_labels;
    int *pred = fm_xmalloc(sizeof(int) * (size_t)(d->n ? d->n : 1));
    int *gold = fm_xmalloc(sizeof(int) * (size_t)(d->n ? d->n : 1));
    float *score = fm_xmalloc(sizeof(float) * (size_t)(d->n ? d->n : 1));
    for (int i = 0; i < d->n; i++) {
        const float *l = logits + (size_t)i * NL;
        int best = 0;
        for (int k = 1; k < NL; k++)
            if (l[k] > l[best]) best = k;
        pred[i] = best;
        gold[i] = d->labels[i];
        score[i] = l[0];
    }
    fm_glue_report_compute(r, c->task->metric, pred, gold, score, d->targets, (size_t)d->n);
    free(pred);
    free(gold);
    free(score);
}

void fm_ft_predict(fm_ft_ctx *c, const fm_dataset *d, int batch_size, float *logits, fm_glue_report *r) {
    fm_ft_logits(c, d, batch_size, 0, d->n, logits);
    if (r) fm_ft_score(c, d, logits, r);
}

/* {"acc": 0.91, ..., "main": "acc"} */
static json_t *report_json(const fm_glue_report *r, int n) {
    json_t *o = json_object();
    for (int i = 0; i < r->n; i++) json_object_set_new(o, r->m[i].name, json_real(r->m[i].value));
    json_object_set_new(o, "main", json_string(r->main_name));
    json_object_set_new(o, "examples", json_integer(n));
    return o;
}

static void log_report(const char *task, const char *split, const fm_glue_report *r) {
    char line[512];
    int k = snprintf(line, sizeof line, "%s %s:", task, split);
    for (int i = 0; i < r->n && k > 0 && (size_t)k < sizeof line; i++)
        k += snprintf(line + k, sizeof line - (size_t)k, " %s %.4f", r->m[i].name, r->m[i].value);
    fm_log("%s", line);
}

/* The path of MNLI's mismatched dev file (NULL for the other tasks; free with free()). */
static char *dev_mm_path(const fm_glue_task *t, const char *data_dir) {
    if (!t || !t->dev_mm_file) return NULL;
    char *dir = fm_path_join(data_dir, t->name);
    char *p = fm_path_join(dir, t->dev_mm_file);
    free(dir);
    return p;
}

/* Dev splits of a task: dev, and MNLI's mismatched set when its file exists
 * (have_mm: as the team's first rank saw it). */
static int dev_splits(const fm_glue_task *t, const char *data_dir, int have_mm, fm_glue_split *out) {
    int n = 0;
    out[n++] = FM_GLUE_DEV;
    char *p = dev_mm_path(t, data_dir);
    if (p && have_mm)
        out[n++] = FM_GLUE_DEV_MISMATCHED;
    else if (p)
        fm_log("%s: absent; scoring the matched dev set only", p);
    free(p);
    return n;
}

/* metrics.json's "hyperparameters": the options the table marks, and the step counts. */
static json_t *hyper_json(const fm_ft_opts *o, const fm_adamw *opt, int64_t steps) {
    json_t *h = fm_ft_hyper_json(o);
    json_object_set_new(h, "warmup_steps", json_integer(opt->warmup_steps));
    json_object_set_new(h, "total_steps", json_integer(steps));
    return h;
}

/* One fine-tuning job on this rank: what it reads, its engine, its files. */
typedef struct {
    const fm_ft_opts *o;
    fm_ft_hooks *hk;       /* NULL: one process, no result wanted */
    const fm_comm *comm;   /* NULL: one process */
    int writer;            /* team rank 0 writes the run directory */
    int weights;           /* fm_weights: 0 pretrained, 1 shuffled, 2 random */
    fm_engine_cfg ec;
    int seen[2];           /* team rank 0's decisions: a state to resume, MNLI's mismatched dev file */
    fm_ft_ctx c;
    int c_ready;
    size_t frozen;
    fm_glue_set train_set, dev_set[2];
    fm_dataset train, dev[2];
    fm_glue_split dsplit[2];
    int ndev;
    int64_t steps_per_epoch, total;
    fm_engine e;
    int e_ready;
    fm_jsonl log;
    char *state_path, *opts_json;
    fm_train_progress pr;
    float *logits;
    json_t *metrics;
} ft_job;

/* The engine's configuration from the options (its schedule, which needs the
 * training set's size, is set by ft_engine); FM_ERR on options that do not
 * go together. The one place that reads the mode, STE, ranking and weight
 * control as names. */
static int ft_config(ft_job *j, const fm_ft_opts *o) {
    const int supermask = o->mode == FM_TRAIN_SUPERMASK;
    if (fm_ft_opts_check(o) != FM_OK) return FM_ERR;
    j->weights = (int)o->weights;
    fm_engine_cfg *c = &j->ec;
    fm_trainer_opts *to = &c->train;
    fm_trainer_opts_default(to);
    to->mode = o->mode;
    to->seed = o->seed;
    fm_adamw *opt = &to->opt;
    opt->lr = (float)(supermask && o->head_lr >= 0 ? o->head_lr : o->lr);
    opt->beta1 = (float)o->adam_beta1;
    opt->beta2 = (float)o->adam_beta2;
    opt->eps = (float)o->adam_eps;
    opt->weight_decay = (float)o->weight_decay;
    opt->max_grad_norm = (float)o->max_grad_norm;
    to->ste = o->ste;
    to->mask_glob = o->mask_glob;
    to->mask_layers = o->mask_layers;
    to->init_sparsity = o->init_sparsity;
    to->nu_init = o->nu_init;
    to->init_rank = o->init_rank;
    c->batch = o->batch_size;
    c->seq = o->max_seq_length;
    c->micro_batches = j->hk ? j->hk->micro_batches : 1;
    c->schedule = j->hk ? j->hk->pipeline_schedule : FM_PIPE_GPIPE;
    c->cls_only_last = 1;
    c->scale = FM_SCALE_ROWS;
    c->comm = j->comm;
    return FM_OK;
}

/* The schedule (warm-up from the step count) and the engine. */
static int ft_engine(ft_job *j) {
    const fm_ft_opts *o = j->o;
    const int B = o->batch_size;
    j->steps_per_epoch = (j->train.n + B - 1) / B;
    j->total = o->max_steps >= 0 ? o->max_steps : (int64_t)ceil(o->epochs * (double)j->steps_per_epoch);
    fm_trainer_opts *to = &j->ec.train;
    to->opt.total_steps = j->total;
    to->opt.warmup_steps = (int64_t)ceil(o->warmup * (double)j->total);
    to->mask_opt = to->opt;
    to->mask_opt.lr = (float)o->mask_lr;
    to->mask_opt.weight_decay = 0.0f; /* no decay on nu: it would pull every score towards p = 0.5 */
    /* nu's gradients carry the factors theta~ (~1e-2) and sigmoid'(nu) (~7e-3
     * at |nu| = 5): ~1e4 below a weight's, where an epsilon of 1e-8 would
     * swamp Adam's normalisation. */
    to->mask_opt.eps = 1e-12f;
    j->ec.data = &j->train;
    j->ec.fill_ctx = (void *)j->c.task;
    if (fm_engine_init(&j->e, &j->c.model, &j->ec) != FM_OK) return FM_ERR;
    j->e_ready = 1;
    if (j->hk) j->hk->acts_bytes = fm_engine_acts_bytes(&j->e, &j->hk->acts_sets, NULL);
    const fm_model *m = &j->c.model;
    const int supermask = to->mode == FM_TRAIN_SUPERMASK;
    fm_log("%s: %d training examples, %" PRId64 " steps of %d (%.3g epochs), %zu parameters train%s, %d thread(s)",
           j->c.task->name, j->train.n, j->total, B, (double)j->total / (double)j->steps_per_epoch,
           fm_layout_trainable(&m->lay), supermask ? " beside the scores of the masked ones" : "", fm_blas_threads());
    if (supermask)
        fm_log("supermask: %zu masked entries in %d tensors, init sparsity %g (%s ranking), ste %s, nu lr %g",
               j->e.tr.masked_numel, j->e.tr.sample.n, o->init_sparsity, fm_init_rank_names[o->init_rank],
               fm_ste_names[o->ste], o->mask_lr);
    return FM_OK;
}

/* A training batch of a GLUE task: labels, or targets for a regression. */
static int64_t ft_fill(void *ctx, fm_batch_buf *bb, const fm_dataset *d, const int32_t *rows, int n,
                       int64_t example0) {
    const fm_glue_task *task = ctx;
    fm_batch_fill(bb, d, rows, n, 1, example0);
    if (task->is_regression) bb->b.labels = NULL;
    else bb->b.targets = NULL;
    return n;
}

/* Decisions that change the sequence of collectives, taken by the team's
 * first rank (a shared file system may show the ranks different things):
 * resume from a state file, and score MNLI's mismatched dev set. */
static int ft_decide(ft_job *j) {
    const fm_ft_opts *o = j->o;
    if (j->writer) {
        char *sp = fm_path_join(o->out_dir, FM_STATE_FILE), *mm = dev_mm_path(fm_glue_task_find(o->task), o->data_dir);
        j->seen[0] = o->resume && fm_file_exists(sp);
        j->seen[1] = mm && fm_file_exists(mm);
        free(sp);
        free(mm);
    }
    if (j->comm && j->comm->decide) return j->comm->decide(j->comm->ctx, j->seen, 2);
    return FM_OK;
}

/* A tensor-parallel rank keeps its shares of its stage's tensors
 * (fm_model_shard): the model as read (a stage's tensors), frozen and
 * controlled as on one process, is replaced by them (it is freed before
 * anything else is allocated; a whole model's fingerprint is kept). */
static void tp_shard(ft_job *j) {
    const fm_comm *cm = j->comm;
    fm_model whole = j->c.model;
    fm_model_shard(&j->c.model, &whole, cm->tp, cm->ntp, cm->stage, cm->nstages);
    fm_model_free(&whole);
}

/* FM_ERR unless the tensor-parallel ranks divide the model's heads. */
static int tp_check_heads(const ft_job *j) {
    const int A = j->c.model.cfg.num_attention_heads, P = j->comm->ntp;
    if (A % P)
        return fm_fail("--tensor-parallel %d: %s has %d attention heads; expected a divisor of them (a rank holds "
                       "whole heads)",
                       P, j->o->model_dir, A);
    return FM_OK;
}

/* The controls, after the pre-trained model's fingerprint: its weights
 * permuted within each tensor, or random; on a tensor-parallel rank the
 * whole tensors read for them are then replaced by its shares. */
static void ft_controls(ft_job *j) {
    if (j->weights == 1) fm_weights_shuffle(&j->c.model, j->o->seed);
    if (j->weights == 2) fm_weights_randomize(&j->c.model, j->o->seed);
    if (j->comm && j->comm->ntp > 1 && j->c.model.lay.tp_size <= 1) tp_shard(j);
}

/* The model (with its frozen set) and the encoded task. */
static int ft_load(ft_job *j) {
    const fm_ft_opts *o = j->o;
    /* A pipeline stage loads its own tensors only, a tensor-parallel rank
     * its shares of them (straight from the file), unless a control needs
     * the whole tensors first (ft_controls). */
    const fm_comm *cm = j->comm;
    const int ntp = cm && cm->ntp > 1 ? cm->ntp : 1, shards = ntp > 1 && j->weights == 0;
    if (fm_ft_load_stage(&j->c, o->model_dir, o->task, o->seed, o->dropout, cm ? cm->stage : 0,
                         cm ? cm->nstages : 1, shards ? cm->tp : 0, shards ? ntp : 1) != FM_OK)
        return FM_ERR;
    j->c_ready = 1;
    if (ntp > 1 && !shards && tp_check_heads(j) != FM_OK) return FM_ERR;
    fm_model *m = &j->c.model;
    const fm_glue_task *task = j->c.task;
    if (j->ec.train.mode == FM_TRAIN_FREEZE && fm_freeze(&m->lay, m->cfg.num_hidden_layers, o->freeze, &j->frozen) != FM_OK)
        return FM_ERR;
    j->ndev = dev_splits(task, o->data_dir, j->seen[1], j->dsplit);
    /* Only the examples that train are tokenized (--max-train-examples). */
    if (fm_ft_encode_first(&j->c, o->data_dir, FM_GLUE_TRAIN, o->max_seq_length, o->max_train_examples,
                           &j->train_set, &j->train) != FM_OK)
        return FM_ERR;
    for (int s = 0; s < j->ndev; s++)
        if (fm_ft_encode(&j->c, o->data_dir, j->dsplit[s], o->max_seq_length, &j->dev_set[s], &j->dev[s]) != FM_OK)
            return FM_ERR;
    if (o->max_train_examples >= 0 && o->max_train_examples < j->train.n) j->train.n = (int)o->max_train_examples;
    if (j->train.n == 0) return fm_fail("%s: no training examples", task->name);
    if (j->writer && fm_mkdirs(o->out_dir) != FM_OK) return FM_ERR;
    return FM_OK;
}

/* Every rank reads the tensors it holds (a tensor-parallel rank its shares)
 * straight from the state file. */
static int ft_read_state(void *ctx, fm_trainer *tr) {
    ft_job *j = ctx;
    return fm_trainstate_read(j->state_path, tr, &j->pr, j->opts_json);
}

/* The options (RUN_DIR/options.json), the state to resume from, the log. */
static int ft_files(ft_job *j) {
    const fm_ft_opts *o = j->o;
    j->opts_json = fm_ft_opts_json(o);
    j->state_path = fm_path_join(o->out_dir, FM_STATE_FILE);
    j->pr = (fm_train_progress){.step = 0, .log_bytes = 0, .window_loss = 0, .window_n = 0, .examples = 0,
                                .last_loss = NAN};
    char *path = fm_path_join(o->out_dir, "log.jsonl");
    int rc = FM_OK, resume = o->resume && j->seen[0];
    if (o->resume && j->writer) fm_remove_stale_temps(o->out_dir);
    if (resume) {
        rc = fm_engine_load(&j->e, ft_read_state, j);
        if (rc == FM_OK) fm_log("resuming %s at step %" PRId64 " of %" PRId64, o->out_dir, j->pr.step, j->total);
    } else if (o->resume) {
        fm_log("%s: no %s; starting from step 0", o->out_dir, FM_STATE_FILE);
    }
    if (rc == FM_OK && j->writer) {
        rc = fm_test_fail_write("log", path);
        if (rc == FM_OK) rc = resume ? fm_jsonl_resume(&j->log, path, j->pr.log_bytes) : fm_jsonl_open(&j->log, path);
    }
    free(path);
    path = fm_path_join(o->out_dir, "options.json");
    if (rc == FM_OK && j->writer) rc = fm_write_file_atomic(path, j->opts_json, strlen(j->opts_json));
    free(path);
    return rc;
}

/* The entries of array x (m's layout, in layout order, as modeldir.h saves
 * them, with the files' whole shapes) and the stage that holds each, for a
 * gather. */
static void layout_entries(const fm_model *m, const float *x, int nstages, fm_st_entry **ep, int **ownerp) {
    const fm_layout *lay = &m->lay, *file = fm_gather_file_layout(m);
    fm_st_entry *e = fm_xcalloc((size_t)(lay->n ? lay->n : 1), sizeof *e);
    int *owner = fm_xcalloc((size_t)(lay->n ? lay->n : 1), sizeof *owner);
    for (int i = 0; i < lay->n; i++) {
        const fm_tensor *t = &lay->t[i];
        e[i].name = t->name;
        e[i].dtype = FM_ST_F32;
        e[i].ndim = t->ndim;
        for (int d = 0; d < t->ndim; d++) e[i].shape[d] = file->t[i].shape[d];
        e[i].data = x + t->offset;
        owner[i] = fm_layout_stage(t, m->cfg.num_hidden_layers, nstages);
    }
    *ep = e;
    *ownerp = owner;
}

/* Evaluation on pipeline stages that hold their own tensors only: replica
 * r forwards its share of whole batches through its stages
 * (fm_engine_logits), its last stage shares the logits with the team, and
 * every rank computes the same report. Each rank counts the dev examples
 * that went through its layers. */
static int predict_stages(ft_job *j, const fm_dataset *d, float *logits, fm_glue_report *r) {
    const fm_comm *cm = j->comm;
    const int R = cm->nreplicas, batch = j->o->eval_batch_size;
    const int64_t nb = (d->n + batch - 1) / batch;
    const int64_t b0 = nb * cm->replica / R, b1 = nb * (cm->replica + 1) / R;
    const int row0 = (int)(b0 * batch), row1 = (int)(b1 * batch < d->n ? b1 * batch : d->n);
    const size_t NL = (size_t)j->c.model.cfg.num_labels;
    if (fm_engine_logits(&j->e, d, batch, row0, row1, logits) != FM_OK) return FM_ERR;
    if (j->hk) j->hk->eval_examples += row1 > row0 ? row1 - row0 : 0;
    /* the last stage's tensor-parallel ranks have the same logits: rank 0 shares them */
    const int last = cm->stage == cm->nstages - 1 && cm->tp == 0 && row1 > row0;
    if (cm->team_share(cm->ctx, logits, (size_t)d->n * NL, last ? (size_t)row0 * NL : 0, last ? (size_t)row1 * NL : 0) !=
        FM_OK)
        return FM_ERR;
    fm_ft_score(&j->c, d, logits, r);
    return FM_OK;
}

/* fm_ft_predict over the team (fm_comm.team_share): this rank forwards its
 * share of whole batches, and every rank gets every logit, so every rank
 * computes the same report. */
static int predict(ft_job *j, const fm_dataset *d, float *logits, fm_glue_report *r) {
    const fm_comm *cm = j->comm;
    /* Tensor-parallel ranks forward the same rows together (their layers
     * sum over them), and rank 0 of them shares the logits. */
    const int ntp = cm && cm->ntp > 1 ? cm->ntp : 1, tp0 = !cm || ntp == 1 || cm->tp == 0;
    const int size = cm ? cm->nreplicas * cm->nstages : 1, batch = j->o->eval_batch_size;
    const int me = cm ? cm->team_rank / ntp : 0;
    fm_ft_ctx *c = &j->c;
    if (!fm_engine_whole(&j->e)) return predict_stages(j, d, logits, r);
    if (size <= 1 || !cm->team_share) {
        fm_ft_predict(c, d, batch, logits, r);
        if (j->hk) j->hk->eval_examples += d->n;
        return FM_OK;
    }
    const int64_t nb = (d->n + batch - 1) / batch;
    const int64_t b0 = nb * me / size, b1 = nb * (me + 1) / size;
    const int row0 = (int)(b0 * batch), row1 = (int)(b1 * batch < d->n ? b1 * batch : d->n);
    const size_t NL = (size_t)c->model.cfg.num_labels;
    fm_ft_logits(c, d, batch, row0, row1, logits);
    j->hk->eval_examples += row1 - row0;
    if (cm->team_share(cm->ctx, logits, (size_t)d->n * NL, tp0 ? (size_t)row0 * NL : 0, tp0 ? (size_t)row1 * NL : 0) !=
        FM_OK)
        return FM_ERR;
    fm_ft_score(c, d, logits, r);
    return FM_OK;
}

/* Dev set s's report with the current weights (supermask: the current sample). */
static int ft_eval(ft_job *j, int s, fm_glue_report *r) {
    const int NL = j->c.model.cfg.num_labels;
    j->logits = fm_xrealloc(j->logits, sizeof(float) * (size_t)(j->dev[s].n ? j->dev[s].n : 1) * NL);
    return predict(j, &j->dev[s], j->logits, r);
}

/* The first batch's gradients to --dump-grads. */
static int ft_dump_grads(void *ctx, int64_t step) {
    ft_job *j = ctx;
    const fm_ft_opts *o = j->o;
    if (step != 0 || !o->dump_grads) return FM_OK;
    if (j->c.model.lay.tp_size > 1) return fm_fail("--dump-grads: not written from tensor-parallel shares");
    if (fm_engine_sync(&j->e, FM_SYNC_GRADS) != FM_OK) return FM_ERR;
    const fm_model *m = &j->c.model;
    int ok;
    if (!fm_engine_whole(&j->e)) {
        /* assembled from the stages' gradients (gather.h) */
        const fm_comm *cm = j->comm;
        uint64_t fp = 0;
        ok = cm->replica != 0 || fm_gather_fingerprint(cm, m, m->grads, &fp) == FM_OK;
        if (ok && cm->replica == 0) {
            fm_st_entry *e;
            int *owner;
            layout_entries(m, m->grads, cm->nstages, &e, &owner);
            fm_gather g;
            fm_gather_init(&g, cm, e, owner, m->lay.n, NULL, NULL);
            ok = !j->writer || fm_save_tensors_fetch(o->dump_grads, &m->lay, fm_gather_fetch, &g, fp) == FM_OK;
            if (fm_gather_finish(&g) != FM_OK) ok = 0;
            fm_gather_free(&g);
            free(e);
            free(owner);
        }
    } else {
        ok = !j->writer || fm_save_tensors(o->dump_grads, &m->lay, m->grads, NULL, 0) == FM_OK;
    }
    if (fm_engine_agree(&j->e, ok) != FM_OK) return FM_ERR;
    if (j->writer) fm_log("first batch's gradients written to %s", o->dump_grads);
    return FM_OK;
}

/* Training diverged at step `step` (0-based) of `total`: its loss, or its
 * gradient norm, is not finite (`what` says which). The job stops here: the
 * parameters keep the previous step's values (fm_trainer_apply skips such an
 * update), the log gets this step's line marked "diverged" (a value that is
 * not finite as null), and metrics.json says "status": "diverged" with the
 * step; nothing already written is removed. Returns FM_ERR with the message. */
static int ft_diverged(void *ctx, int64_t step0, const char *what, double loss, double norm, double lr) {
    ft_job *j = ctx;
    const fm_ft_opts *o = j->o;
    const int64_t step = step0 + 1, total = j->total;
    json_t *l = json_object();
    json_object_set_new(l, "step", json_integer(step));
    json_object_set_new(l, "epoch", json_real((double)step / (double)j->steps_per_epoch));
    json_object_set_new(l, "loss", num_or_null(loss));
    json_object_set_new(l, "lr", num_or_null(lr));
    json_object_set_new(l, "grad_norm", num_or_null(norm));
    json_object_set_new(l, "diverged", json_true());
    int rc = j->writer ? fm_jsonl_append(&j->log, l) : FM_OK;
    json_decref(l);
    json_t *met = json_object();
    char fp[32];
    snprintf(fp, sizeof fp, "%016" PRIx64, j->c.fingerprint);
    json_object_set_new(met, "task", json_string(j->c.task->name));
    json_object_set_new(met, "mode", json_string(fm_train_mode_names[o->mode]));
    json_object_set_new(met, "model", json_string(o->model_dir));
    json_object_set_new(met, "model_fingerprint", json_string(fp));
    json_object_set_new(met, "status", json_string("diverged"));
    json_object_set_new(met, "diverged_at_step", json_integer(step));
    json_object_set_new(met, "diverged_on", json_string(what));
    json_object_set_new(met, "loss", num_or_null(loss));
    json_object_set_new(met, "grad_norm", num_or_null(norm));
    json_object_set_new(met, "train_examples", json_integer(j->train.n));
    json_object_set_new(met, "steps", json_integer(total));
    json_object_set_new(met, "weights", json_string(fm_weights_names[o->weights]));
    if (o->freeze) json_object_set_new(met, "freeze", json_string(o->freeze));
    json_object_set_new(met, "hyperparameters", hyper_json(o, &j->ec.train.opt, total));
    char *path = fm_path_join(o->out_dir, "metrics.json");
    if (j->writer && rc == FM_OK) rc = fm_json_write(path, met);
    free(path);
    if (j->hk) {
        j->hk->diverged = 1;
        j->hk->metrics = json_incref(met);
    }
    json_decref(met);
    const double v = !strcmp(what, "loss") ? loss : norm;
    if (rc != FM_OK)
        return fm_fail_prefix("%s: training diverged at step %" PRId64 " (the %s is not finite), and recording it "
                              "failed: ",
                              j->c.task->name, step, what);
    return fm_fail("%s: training diverged at step %" PRId64 " of %" PRId64 ": the %s is %s; %s/metrics.json records "
                   "it (\"status\": \"diverged\") and log.jsonl holds the steps before; try a lower learning rate",
                   j->c.task->name, step, total, what, isnan(v) ? "NaN" : v > 0 ? "+infinity" : "-infinity",
                   o->out_dir);
}

/* After step `step0` (0-based): the progress, and every --log-every steps a log line. */
static int ft_logged(void *ctx, int64_t step0, int nb, double loss, double norm, double lr) {
    ft_job *j = ctx;
    const int64_t step = step0 + 1;
    fm_train_progress *pr = &j->pr;
    pr->step = step;
    pr->examples += nb;
    pr->window_loss += loss;
    pr->window_n++;
    pr->last_loss = loss;
    if (step % j->o->log_every != 0 && step != j->total) return FM_OK;
    json_t *l = json_object();
    json_object_set_new(l, "step", json_integer(step));
    json_object_set_new(l, "epoch", json_real((double)step / (double)j->steps_per_epoch));
    json_object_set_new(l, "loss", num_or_null(pr->window_loss / (double)pr->window_n));
    json_object_set_new(l, "lr", json_real(lr));
    json_object_set_new(l, "grad_norm", num_or_null(norm));
    if (j->ec.train.mode == FM_TRAIN_SUPERMASK) {
        fm_sparsity sp;
        if (fm_engine_sparsity(&j->e, &sp) != FM_OK) {
            json_decref(l);
            return FM_ERR;
        }
        json_object_set_new(l, "sparsity_expected", json_real(sp.expected));
        json_object_set_new(l, "sparsity_sampled", json_real(sp.sampled));
    }
    int wr = j->writer ? fm_jsonl_append(&j->log, l) : FM_OK;
    json_decref(l);
    if (fm_engine_agree(&j->e, wr == FM_OK) != FM_OK) return FM_ERR;
    pr->window_loss = 0;
    pr->window_n = 0;
    return FM_OK;
}

/* Adds sign x the running totals of the tensor-parallel sums (fm_ft_hooks)
 * to hk->tp_train_bytes and _seconds: +1 after a stretch of training, -1 before it (and
 * the other way round around an evaluation inside it). */
static void tp_bytes_count(ft_job *j, int sign) {
    fm_ft_hooks *hk = j->hk;
    for (int k = 0; k < 2 && hk; k++)
        if (hk->tp_bytes[k]) hk->tp_train_bytes[k] += sign > 0 ? *hk->tp_bytes[k] : -*hk->tp_bytes[k];
    if (hk && hk->tp_seconds) hk->tp_train_seconds += sign * *hk->tp_seconds;
}

/* Every --eval-every steps but the last: the dev score (supermask: of the
 * deterministic mask) into the log. */
static int ft_evaluate(void *ctx, int64_t step0) {
    ft_job *j = ctx;
    const int64_t step = step0 + 1;
    if (!(j->o->eval_every > 0 && step % j->o->eval_every == 0 && step < j->total)) return FM_OK;
    fm_glue_report r;
    if (fm_engine_sync(&j->e, FM_SYNC_EVAL) != FM_OK) return FM_ERR;
    fm_trainer_sample(&j->e.tr, FM_SAMPLE_DET, 0);
    tp_bytes_count(j, 1); /* the evaluation's sums are not the training's */
    int rc = ft_eval(j, 0, &r);
    tp_bytes_count(j, -1);
    if (rc != FM_OK) return FM_ERR;
    json_t *l = json_object();
    json_object_set_new(l, "step", json_integer(step));
    json_object_set_new(l, "dev", report_json(&r, j->dev[0].n));
    int wr = j->writer ? fm_jsonl_append(&j->log, l) : FM_OK;
    json_decref(l);
    if (fm_engine_agree(&j->e, wr == FM_OK) != FM_OK) return FM_ERR;
    log_report(j->c.task->name, "dev", &r);
    return FM_OK;
}

/* A checkpoint from pipeline stages that hold their own tensors only or
 * from tensor-parallel shares: every rank of replica 0 takes part
 * (gather.h), the writer writes. */
static int ft_write_state_stages(ft_job *j, const fm_trainer *tr) {
    const fm_comm *cm = j->comm;
    const fm_model *m = tr->m;
    if (cm->replica != 0) return FM_OK;
    fm_st_entry *e;
    char **names;
    int *tensor;
    const int n = fm_trainstate_entries(tr, &e, &names, &tensor);
    int *owner = fm_xcalloc((size_t)(n ? n : 1), sizeof *owner);
    uint32_t *crc = fm_xcalloc((size_t)(n ? n : 1), sizeof *crc);
    for (int k = 0; k < n; k++) owner[k] = fm_layout_stage(&m->lay.t[tensor[k]], m->cfg.num_hidden_layers, cm->nstages);
    fm_gather g;
    fm_gather_init(&g, cm, e, owner, n, &m->lay, tensor);
    int rc = fm_gather_crcs(&g, crc);
    if (rc == FM_OK) {
        if (j->writer) {
            rc = fm_jsonl_sync(&j->log, &j->pr.log_bytes);
            if (rc == FM_OK)
                rc = fm_trainstate_write_fetch(j->state_path, tr, &j->pr, j->opts_json, fm_gather_fetch, &g, crc);
        }
        if (fm_gather_finish(&g) != FM_OK) rc = FM_ERR;
    }
    fm_gather_free(&g);
    for (int k = 0; k < n; k++) free(names[k]);
    free(names);
    free(e);
    free(tensor);
    free(owner);
    free(crc);
    return rc;
}

static int ft_write_state(void *ctx, const fm_trainer *tr) {
    ft_job *j = ctx;
    if (!fm_engine_whole(&j->e) || j->c.model.lay.tp_size > 1) return ft_write_state_stages(j, tr);
    if (fm_jsonl_sync(&j->log, &j->pr.log_bytes) != FM_OK) return FM_ERR;
    return fm_trainstate_write(j->state_path, tr, &j->pr, j->opts_json);
}

/* A checkpoint: the writer saves; the team learns whether it could (a full
 * disk fails the job on every rank, with the writer's message). */
static int ft_save(void *ctx, int64_t step0, int sig) {
    ft_job *j = ctx;
    if (fm_engine_save(&j->e, ft_write_state, j) != FM_OK) return FM_ERR;
    if (sig && j->writer)
        fm_log("%s: state at step %" PRId64 " written to %s", sig == SIGTERM ? "SIGTERM" : "SIGUSR1", step0 + 1,
               j->state_path);
    return FM_OK;
}

/* The training steps; *seconds their time. */
static int ft_train(ft_job *j, double *seconds) {
    const fm_ft_opts *o = j->o;
    char what[64], hint[1100];
    snprintf(what, sizeof what, "train %s", j->c.task->name);
    snprintf(hint, sizeof hint, "continue with: finemask train --resume %s", o->out_dir);
    fm_loop l = {.e = &j->e, .what = what, .first = j->pr.step, .total = j->total,
                 .steps_per_epoch = j->steps_per_epoch, .n = j->train.n, .batch = o->batch_size, .seed = o->seed,
                 .shuffle = o->shuffle, .checkpoint_every = o->checkpoint_every, .examples0 = j->pr.examples,
                 .ctx = j, .grads = ft_dump_grads, .diverged = ft_diverged, .logged = ft_logged,
                 .evaluate = ft_evaluate, .save = ft_save, .resume_hint = hint};
    tp_bytes_count(j, -1);
    int rc = fm_loop_run(&l);
    tp_bytes_count(j, 1);
    *seconds = l.seconds;
    if (l.interrupted && j->hk) j->hk->interrupted = 1;
    return rc;
}

/* metrics.json's fields that every mode has. */
static json_t *ft_metrics(ft_job *j) {
    const fm_ft_opts *o = j->o;
    const fm_model *m = &j->c.model;
    const fm_glue_task *task = j->c.task;
    json_t *met = json_object();
    json_object_set_new(met, "task", json_string(task->name));
    json_object_set_new(met, "mode", json_string(fm_train_mode_names[o->mode]));
    json_object_set_new(met, "model", json_string(o->model_dir));
    char fp[32];
    snprintf(fp, sizeof fp, "%016" PRIx64, j->c.fingerprint);
    json_object_set_new(met, "model_fingerprint", json_string(fp));
    json_object_set_new(met, "head_from_checkpoint", json_boolean(j->c.head_loaded));
    json_object_set_new(met, "train_examples", json_integer(j->train.n));
    if (fm_glue_split_layout(task, FM_GLUE_TRAIN)->skip_short) {
        /* QQP: rows with too few fields are skipped, as GLUE's processor does; their count, per file read */
        json_t *sk = json_object();
        json_object_set_new(sk, fm_glue_split_name(FM_GLUE_TRAIN), json_integer((json_int_t)j->train_set.skipped));
        for (int s = 0; s < j->ndev; s++)
            json_object_set_new(sk, fm_glue_split_name(j->dsplit[s]), json_integer((json_int_t)j->dev_set[s].skipped));
        json_object_set_new(met, "skipped_rows", sk);
    }
    json_object_set_new(met, "steps", json_integer(j->total));
    json_object_set_new(met, "final_loss", num_or_null(j->pr.last_loss)); /* null: no step ran */
    json_object_set_new(met, "weights", json_string(fm_weights_names[o->weights]));
    if (j->ec.train.mode == FM_TRAIN_FREEZE) json_object_set_new(met, "freeze", json_string(o->freeze));
    json_object_set_new(met, "trained_parameters", json_integer((json_int_t)fm_layout_trainable(&m->lay)));
    json_object_set_new(met, "frozen_parameters", json_integer((json_int_t)j->frozen));
    json_t *hyper = hyper_json(o, &j->ec.train.opt, j->total);
    const int supermask = j->ec.train.mode == FM_TRAIN_SUPERMASK;
    if (supermask) {
        json_object_set_new(hyper, "mask_lr", json_real(o->mask_lr));
        json_object_set_new(hyper, "head_lr", json_real(j->ec.train.opt.lr));
        json_object_set_new(hyper, "mask_weight_decay", json_real(0.0));
        json_object_set_new(hyper, "mask_adam_eps", json_real(j->ec.train.mask_opt.eps));
    }
    json_object_set_new(met, "hyperparameters", hyper);
    /* Table 3's task-specific storage: what must be kept per task beyond
     * the shared pre-trained model, the trained parameters as float32
     * (supermask: the mask's bits and the head, ft_mask_metrics). */
    if (!supermask)
        json_object_set_new(met, "task_storage_bytes", json_integer((json_int_t)(4 * fm_layout_trainable(&m->lay))));
    return met;
}

/* Supermask: --samples independent Bernoulli samples scored on the dev set:
 * their scores, mean and spread, and the sampled sparsity. */
static int ft_samples(ft_job *j, json_t *arr, double *mean, double *sd, double *sampled_sp) {
    const int n = j->o->samples;
    fm_trainer *tr = &j->e.tr;
    fm_sparsity sp;
    if (fm_engine_sparsity(&j->e, &sp) != FM_OK) return FM_ERR;
    *sampled_sp = n > 0 ? 0 : sp.sampled; /* the last training step's sample when --samples 0 */
    double *score = fm_xcalloc((size_t)(n ? n : 1), sizeof(double)), m = 0, var = 0;
    int rc = FM_OK;
    for (int k = 0; k < n && rc == FM_OK; k++) {
        fm_trainer_sample(tr, FM_SAMPLE_EVAL, (uint64_t)k);
        fm_glue_report r;
        rc = ft_eval(j, 0, &r);
        if (rc == FM_OK) rc = fm_engine_sparsity(&j->e, &sp);
        if (rc != FM_OK) break;
        score[k] = r.main;
        *sampled_sp += sp.sampled / n;
        m += score[k] / n;
        json_array_append_new(arr, json_real(score[k]));
    }
    for (int k = 0; k < n; k++) var += (score[k] - m) * (score[k] - m);
    *mean = m;
    *sd = n > 1 ? sqrt(var / (n - 1)) : 0.0;
    free(score);
    return rc;
}

/* Supermask: the samples, then the deterministic mask (what the final dev
 * scores and mask.safetensors use), into metrics. */
static int ft_mask_metrics(ft_job *j, json_t *met) {
    const fm_ft_opts *o = j->o;
    fm_trainer *tr = &j->e.tr;
    const fm_layout *lay = &j->c.model.lay;
    double mean = 0, sd = 0, sampled_sp = 0;
    json_t *arr = json_array();
    fm_sparsity sp;
    if (ft_samples(j, arr, &mean, &sd, &sampled_sp) != FM_OK) {
        json_decref(arr);
        return FM_ERR;
    }
    fm_trainer_sample(tr, FM_SAMPLE_DET, 0);
    if (fm_engine_sparsity(&j->e, &sp) != FM_OK) {
        json_decref(arr);
        return FM_ERR;
    }
    size_t bits_bytes = 0;
    for (int k = 0; k < tr->sample.n; k++) /* the whole tensors' (a tensor-parallel rank samples its shares) */
        bits_bytes += (fm_layout_find(lay, tr->sample.t[k].name)->whole_numel + 7) / 8;
    const fm_tensor *hw = fm_layout_find(lay, "classifier.weight"), *hb = fm_layout_find(lay, "classifier.bias");
    json_object_set_new(met, "samples", json_integer(o->samples));
    json_object_set_new(met, "score_samples", arr);
    /* no samples: no mean; one sample: no spread (null, not 0) */
    json_object_set_new(met, "score_samples_mean", o->samples > 0 ? json_real(mean) : json_null());
    json_object_set_new(met, "score_samples_std", o->samples > 1 ? json_real(sd) : json_null());
    json_object_set_new(met, "sparsity_expected", json_real(sp.expected));
    json_object_set_new(met, "sparsity_sampled", json_real(sampled_sp));
    json_object_set_new(met, "sparsity_deterministic", json_real(sp.deterministic));
    json_object_set_new(met, "masked_parameters", json_integer((json_int_t)tr->masked_numel));
    json_object_set_new(met, "masked_tensors", json_integer(tr->sample.n));
    json_object_set_new(met, "mask_bytes", json_integer((json_int_t)bits_bytes));
    json_object_set_new(met, "task_storage_bytes", json_integer((json_int_t)(bits_bytes + 4 * (hw->numel + hb->numel))));
    json_object_set_new(met, "init_sparsity", json_real(o->init_sparsity));
    json_object_set_new(met, "init_rank", json_string(fm_init_rank_names[o->init_rank]));
    json_object_set_new(met, "ste", json_string(fm_ste_names[o->ste]));
    json_object_set_new(met, "mask", json_string(o->mask_glob ? o->mask_glob : FM_MASK_DEFAULT_GLOB));
    json_object_set_new(met, "mask_layers", str_or_null(o->mask_layers));
    char ms[64] = "";
    const char *task = j->c.task->name;
    if (o->samples > 1) snprintf(ms, sizeof ms, ": %s %.4f ± %.4f", task, mean, sd);
    else if (o->samples == 1) snprintf(ms, sizeof ms, ": %s %.4f (n=1)", task, mean);
    fm_log("%s: %d sample(s)%s; sparsity expected %.4f, sampled %.4f, deterministic %.4f", task, o->samples, ms,
           sp.expected, sampled_sp, sp.deterministic);
    return FM_OK;
}

/* Dev scores with the trained weights (supermask: the deterministic mask). */
static int ft_dev_scores(ft_job *j, json_t *met) {
    for (int s = 0; s < j->ndev; s++) {
        fm_glue_report r;
        if (ft_eval(j, s, &r) != FM_OK) return FM_ERR;
        json_object_set_new(met, fm_glue_split_name(j->dsplit[s]), report_json(&r, j->dev[s].n));
        log_report(j->c.task->name, fm_glue_split_name(j->dsplit[s]), &r);
        if (s == 0) {
            json_object_set_new(met, "score", json_real(r.main));
            json_object_set_new(met, "score_name", json_string(r.main_name));
        }
    }
    return FM_OK;
}

/* The writer's mask.safetensors (supermask: sample over the file layout
 * lay) or model/ (the other modes). From pipeline stages or tensor-parallel
 * shares (ft_write_stages): head holds the task head (an array of lay), and
 * g fetches every tensor of the model whose fingerprint is fp; else (NULL)
 * the writer's model holds them all. */
static int ft_write_weights(ft_job *j, const fm_layout *lay, const fm_mask *sample, const float *head, fm_gather *g,
                            uint64_t fp) {
    const fm_ft_opts *o = j->o;
    const fm_model *m = &j->c.model;
    int rc;
    if (j->ec.train.mode == FM_TRAIN_SUPERMASK) {
        char *path = fm_path_join(o->out_dir, "mask.safetensors");
        fm_maskfile_meta meta;
        fm_maskfile_meta_init(&meta);
        snprintf(meta.task, sizeof meta.task, "%s", j->c.task->name);
        snprintf(meta.mode, sizeof meta.mode, "supermask");
        snprintf(meta.ste, sizeof meta.ste, "%s", fm_ste_names[o->ste]);
        meta.seed = o->seed;
        meta.init_sparsity = o->init_sparsity;
        meta.model_fingerprint = j->c.fingerprint;
        rc = fm_maskfile_meta_set(&meta, "weights", fm_weights_names[o->weights]);
        if (rc == FM_OK) rc = fm_test_fail_write("mask", path);
        if (rc == FM_OK) rc = fm_maskfile_write(path, sample, &meta, lay, head ? head : m->params);
        fm_maskfile_meta_free(&meta);
        free(path);
        return rc;
    }
    char *path = fm_path_join(o->out_dir, "model");
    fm_save_opts so = {.vocab = fm_file_exists(j->c.vocab_path) ? j->c.vocab_path : NULL,
                       .tokenizer_from = j->c.model_dir,
                       .extra = &j->c.extra,
                       .fetch = g ? fm_gather_fetch : NULL,
                       .fetch_ctx = g,
                       .fingerprint = fp};
    rc = fm_test_fail_write("model", path);
    if (rc == FM_OK) rc = fm_modeldir_save(path, &m->cfg, lay, m->params, &so);
    free(path);
    return rc;
}

/* The weights from pipeline stages that hold their own tensors only or from
 * tensor-parallel shares: every rank of replica 0 takes part (gather.h),
 * the writer writes, tensor by tensor. The writer's result is returned on
 * the writer; the others return whether their part of the collectives went
 * through. */
static int ft_write_stages(ft_job *j) {
    const fm_comm *cm = j->comm;
    fm_model *m = &j->c.model;
    const fm_layout *file = fm_gather_file_layout(m);
    if (cm->replica != 0) return FM_OK;
    if (j->ec.train.mode == FM_TRAIN_SUPERMASK) {
        float *head = NULL;
        fm_mask whole;
        int rc = fm_gather_mask(cm, m, &j->e.tr.sample, &whole, &head);
        if (rc == FM_OK && j->writer) rc = ft_write_weights(j, file, &whole, head, NULL, 0);
        fm_gather_mask_done(m, &whole, head);
        return rc;
    }
    uint64_t fp = 0;
    if (fm_gather_fingerprint(cm, m, m->params, &fp) != FM_OK) return FM_ERR;
    fm_st_entry *e;
    int *owner;
    layout_entries(m, m->params, cm->nstages, &e, &owner);
    fm_gather g;
    fm_gather_init(&g, cm, e, owner, m->lay.n, &m->lay, NULL);
    int rc = j->writer ? ft_write_weights(j, file, NULL, NULL, &g, fp) : FM_OK;
    if (fm_gather_finish(&g) != FM_OK) rc = FM_ERR;
    fm_gather_free(&g);
    free(e);
    free(owner);
    return rc;
}

/* The final files (the writer's), then the state is no longer needed: the
 * run directory holds the same files whether or not the run was interrupted.
 * The team learns whether the writer could. */
static int ft_write(ft_job *j) {
    int ok = 1;
    if (!fm_engine_whole(&j->e) || j->c.model.lay.tp_size > 1) {
        ok = ft_write_stages(j) == FM_OK;
    } else if (j->writer) {
        ok = ft_write_weights(j, &j->c.model.lay, &j->e.tr.sample, NULL, NULL, 0) == FM_OK;
    }
    if (j->writer) {
        char *path = fm_path_join(j->o->out_dir, "metrics.json");
        ok = ok && fm_test_fail_write("metrics", path) == FM_OK && fm_json_write(path, j->metrics) == FM_OK;
        free(path);
        if (ok && fm_file_exists(j->state_path) && unlink(j->state_path) != 0)
            ok = fm_fail("%s: cannot remove: %s", j->state_path, strerror(errno)) == FM_OK;
    }
    return fm_engine_agree(&j->e, ok);
}

/* After the steps: every rank gets the whole model, the dev scores, the files. */
static int ft_finish(ft_job *j) {
    if (fm_engine_sync(&j->e, FM_SYNC_EVAL) != FM_OK) return FM_ERR;
    j->metrics = ft_metrics(j);
    if (j->ec.train.mode == FM_TRAIN_SUPERMASK && ft_mask_metrics(j, j->metrics) != FM_OK) return FM_ERR;
    if (ft_dev_scores(j, j->metrics) != FM_OK) return FM_ERR;
    return ft_write(j);
}

static void ft_free(ft_job *j) {
    free(j->state_path);
    free(j->opts_json);
    json_decref(j->metrics);
    if (j->log.fp) fm_jsonl_close(&j->log);
    free(j->logits);
    if (j->e_ready) fm_engine_free(&j->e);
    fm_dataset_free(&j->train);
    fm_glue_set_free(&j->train_set);
    for (int s = 0; s < 2; s++) {
        fm_dataset_free(&j->dev[s]);
        fm_glue_set_free(&j->dev_set[s]);
    }
    if (j->c_ready) fm_ft_free(&j->c);
}

/* Set the job up on every rank; the team starts the loop only when every
 * rank could (the others learn that this rank could not). */
static int ft_setup(ft_job *j) {
    if (fm_comm_agree(j->comm, ft_load(j) == FM_OK) != FM_OK) return FM_ERR;
    /* Every rank has its model: collectives may follow (a stage's part of
     * the fingerprint, of the initial ranking). The fingerprint is the
     * pre-trained model's, before any control, as on one process. */
    const fm_model *m = &j->c.model;
    if ((m->own || (m->lay.tp_size > 1 && !j->c.fingerprint)) &&
        fm_gather_fingerprint(j->comm, m, m->params, &j->c.fingerprint) != FM_OK)
        return FM_ERR;
    ft_controls(j);
    int ok = ft_engine(j) == FM_OK && ft_files(j) == FM_OK;
    return fm_comm_agree(j->comm, ok);
}

int fm_finetune(const fm_ft_opts *o) {
    ft_job j = {.o = o, .hk = o->hooks, .comm = o->hooks ? o->hooks->comm : NULL};
    j.writer = !j.comm || j.comm->team_rank == 0;
    j.ec.fill = ft_fill;
    if (ft_config(&j, o) != FM_OK) return FM_ERR;
    if (o->threads > 0) fm_ft_threads(o->threads);
    if (ft_decide(&j) != FM_OK) return FM_ERR;
    const double t_start = fm_now();
    /* Signals are caught from the start, so that one arriving while the job
     * loads and tokenizes acts at the first step boundary (stopsig.h). */
    fm_stopsig stopsig = {0};
    fm_stopsig_catch(&stopsig);
    double t_train = 0;
    int rc = ft_setup(&j);
    if (rc == FM_OK) fm_stopsig_test_pause_at("load");
    const int64_t first_step = j.pr.step, examples0 = j.pr.examples;
    if (rc == FM_OK) rc = ft_train(&j, &t_train);
    if (rc == FM_OK) rc = ft_finish(&j);
    if (rc == FM_OK && j.hk) {
        j.hk->metrics = json_incref(j.metrics);
        j.hk->train_seconds = t_train;
        j.hk->examples = j.pr.examples - examples0; /* this session's, as train_seconds */
        j.hk->peak_rss = fm_peak_rss();
    }
    /* Times go to the log only, so that the run directory is the same bits on every run. */
    if (rc == FM_OK)
        fm_log("%s: done in %.1f s, training %.1f s (%.1f examples/s: %" PRId64 " examples in %" PRId64
               " steps this session, %d thread(s), BLIS %s); run directory %s",
               j.c.task->name, fm_now() - t_start, t_train,
               t_train > 0 ? (double)(j.pr.examples - examples0) / t_train : 0.0, j.pr.examples - examples0,
               j.total - first_step, fm_blas_threads(), fm_blas_arch(), o->out_dir);
    /* A SIGTERM after the last step (the final evaluation): the job is
     * complete, but the caller should stop. */
    if (stopsig.caught) {
        if (j.hk && fm_stopsig_pending() == SIGTERM) j.hk->term_seen = 1;
        fm_stopsig_restore(&stopsig);
    }
    ft_free(&j);
    return rc;
}
