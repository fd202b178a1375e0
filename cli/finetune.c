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
#include "fileio.h"
#include "fm.h"
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
#include "vocab.h"

static json_t *str_or_null(const char *s) { return s ? json_string(s) : json_null(); }
/* JSON has no NaN or infinity: such a value is written as null, never as a number. */
static json_t *num_or_null(double x) { return isfinite(x) ? json_real(x) : json_null(); }

void fm_ft_threads(int n) {
    omp_set_num_threads(n);
    fm_blas_set_threads(n);
}

int fm_ft_load(fm_ft_ctx *c, const char *model_dir, const char *task_name, uint64_t seed, double dropout) {
    memset(c, 0, sizeof *c);
    c->task = fm_glue_task_find(task_name);
    if (!c->task) return FM_ERR;
    fm_load_opts lo;
    fm_load_opts_default(&lo);
    lo.num_labels = c->task->num_labels;
    lo.with_mlm = 0;
    fm_load_info info;
    if (fm_modeldir_load(model_dir, &lo, &c->model, &info) != FM_OK) return FM_ERR;
    c->head_loaded = info.head_present;
    fm_load_info_free(&info);
    if (dropout >= 0) {
        c->model.cfg.hidden_dropout_prob = (float)dropout;
        c->model.cfg.attention_probs_dropout_prob = (float)dropout;
    }
    c->fingerprint = fm_params_fingerprint(&c->model.lay, c->model.params);
    if (!c->head_loaded) {
        /* A new task head: N(0, initializer_range^2) weights, zero bias, as
         * BertForSequenceClassification initialises it. */
        const fm_tensor *w = fm_layout_find(&c->model.lay, "classifier.weight");
        float *p = c->model.params + w->offset;
        fm_rng_normals(seed, FM_RNG_HEAD, 0, 0, p, w->numel);
        for (size_t i = 0; i < w->numel; i++) p[i] *= c->model.cfg.initializer_range;
        const fm_tensor *b = fm_layout_find(&c->model.lay, "classifier.bias");
        memset(c->model.params + b->offset, 0, b->numel * sizeof(float));
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
    fm_acts *acts = fm_acts_new(&m->cfg, batch_size, d->max_len, 0, m->cfg.num_hidden_layers);
    fm_batch_buf bb;
    fm_batch_buf_alloc(&bb, batch_size, d->max_len);
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

/* Every rank of the team passes here with ok: FM_OK when every rank is ok,
 * else FM_ERR on every rank with the first failing rank's message
 * (fm_ft_hooks.agree), so a failure that only one rank sees (the writer's
 * file, a file one rank cannot read) fails the job on the whole team. */
static int team_ok(const fm_ft_hooks *hk, int ok) {
    if (hk && hk->agree) return hk->agree(hk->pctx, ok);
    return ok ? FM_OK : FM_ERR;
}

/* metrics.json's "hyperparameters": the options the table marks, and the step counts. */
static json_t *hyper_json(const fm_ft_opts *o, const fm_adamw *opt, int64_t steps) {
    json_t *h = fm_ft_hyper_json(o);
    json_object_set_new(h, "warmup_steps", json_integer(opt->warmup_steps));
    json_object_set_new(h, "total_steps", json_integer(steps));
    return h;
}

/* fm_ft_predict over the team (fm_ft_hooks.team_share): this rank forwards
 * its share of whole batches, and every rank gets every logit, so every
 * rank computes the same report. */
static int predict(fm_ft_hooks *h, fm_ft_ctx *c, const fm_dataset *d, int batch, float *logits, fm_glue_report *r) {
    const int size = h ? h->nranks * h->nstages : 1;
    if (size <= 1 || !h->team_share) {
        fm_ft_predict(c, d, batch, logits, r);
        if (h) h->eval_examples += d->n;
        return FM_OK;
    }
    const int64_t nb = (d->n + batch - 1) / batch;
    const int64_t b0 = nb * h->team_rank / size, b1 = nb * (h->team_rank + 1) / size;
    const int row0 = (int)(b0 * batch), row1 = (int)(b1 * batch < d->n ? b1 * batch : d->n);
    const size_t NL = (size_t)c->model.cfg.num_labels;
    fm_ft_logits(c, d, batch, row0, row1, logits);
    h->eval_examples += row1 - row0;
    if (h->team_share(h->pctx, logits, (size_t)d->n * NL, (size_t)row0 * NL, (size_t)row1 * NL) != FM_OK)
        return FM_ERR;
    fm_ft_score(c, d, logits, r);
    return FM_OK;
}

/* Start the sums of the gradients of the tensors of encoder layer l (-1:
 * embeddings, L: pooler and heads) that have gradients, adjacent ones as one range. */
static int sum_layer(fm_ft_hooks *h, const fm_model *m, int l) {
    const fm_layout *lay = &m->lay;
    size_t begin = 0, end = 0;
    for (int i = 0; i < lay->n; i++) {
        const fm_tensor *t = &lay->t[i];
        if (t->layer != l || !(t->trains || t->needs_grad)) continue;
        if (end == t->offset && end > begin) {
            end += t->numel;
            continue;
        }
        if (end > begin && h->sum_start(h->ctx, m->grads + begin, end - begin) != FM_OK) return FM_ERR;
        begin = t->offset;
        end = begin + t->numel;
    }
    if (end > begin && h->sum_start(h->ctx, m->grads + begin, end - begin) != FM_OK) return FM_ERR;
    return FM_OK;
}

/* The trainer's gradient step (fm_trainer_grad) for this replica's rows, with
 * the backward run layer by layer and each layer's gradients summed across
 * the replicas as soon as they are complete. extra[0..3) (the loss and the
 * SIGTERM and SIGUSR1 flags) are summed too. dx0 and dx1 have room for (B, T, H). With no
 * rows (B == 0) the gradients stay zero and only the sums run. */
static int grad_replicated(fm_ft_hooks *h, fm_trainer *tr, fm_acts *a, const fm_batch *b, float scale,
                           float *dx0, float *dx1, float *extra) {
    fm_model *m = tr->m;
    const int L = m->cfg.num_hidden_layers;
    fm_pass pass = {.seed = tr->o.seed, .step = (uint64_t)tr->step, .training = 1, .cls_only_last = 1};
    extra[0] = b->B > 0 ? fm_model_forward(m, a, b, &pass, NULL) : 0.0f;
    if (b->B > 0) fm_head_backward(m, a, b, &pass, scale, dx0);
    if (sum_layer(h, m, L) != FM_OK) return FM_ERR;
    for (int l = L - 1; l >= 0; l--) {
        if (b->B > 0) {
            fm_encoder_backward(m, a, b, &pass, l, l + 1, dx0, dx1);
            float *t = dx0;
            dx0 = dx1;
            dx1 = t;
        }
        if (sum_layer(h, m, l) != FM_OK) return FM_ERR;
        if (h->progress) h->progress(h->ctx);
    }
    if (b->B > 0) fm_embed_backward(m, a, b, &pass, dx0);
    if (sum_layer(h, m, -1) != FM_OK) return FM_ERR;
    if (h->sum_start(h->ctx, extra, 3) != FM_OK) return FM_ERR;
    return h->sum_wait(h->ctx);
}

/* The pipeline: one stage's share of the trainer's gradient step for this
 * replica's rows[0..nr) (global indices lo.. within the batch), as GPipe: the
 * forwards of every micro-batch, then their backwards in reverse. The
 * backward of the last one runs layer by layer, and the gradients of each
 * layer this stage holds are summed over the replicas of the stage as soon as
 * they are complete (the other stages' tensors stay zero here and are not
 * sent). Then extra[0..3) (the loss, on the last stage, and the SIGTERM and
 * SIGUSR1 flags) are summed over the team. acts[k] and mbb[k] serve micro-batch k; xa and
 * xb hold (B, T, H). */
static int grad_pipelined(fm_ft_hooks *h, fm_trainer *tr, fm_acts **acts, fm_batch_buf *mbb, const fm_dataset *train,
                          const int32_t *rows, int nr, int lo, int is_regression, float scale, float *xa, float *xb,
                          float *extra) {
    fm_model *m = tr->m;
    const int L = m->cfg.num_hidden_layers, S = h->nstages, s = h->stage, M = h->micro_batches;
    const int l0 = L * s / S, l1 = L * (s + 1) / S, H = m->cfg.hidden_size;
    fm_pass pass = {.seed = tr->o.seed, .step = (uint64_t)tr->step, .training = 1, .cls_only_last = 1};
    double loss = 0;
    /* The first micro-batch with rows: the last of the backward. */
    int kfin = -1;
    for (int k = 0; k < M && kfin < 0; k++)
        if (nr * (k + 1) / M > nr * k / M) kfin = k;
    for (int k = 0; k < M; k++) {
        int a = nr * k / M, b = nr * (k + 1) / M;
        if (b == a) continue;
        fm_batch_fill(&mbb[k], train, rows + a, b - a, 1, lo + a);
        fm_batch *bt = &mbb[k].b;
        if (is_regression) bt->labels = NULL;
        else bt->targets = NULL;
        size_t n = (size_t)bt->B * bt->T * H;
        if (s == 0) fm_embed_forward(m, acts[k], bt, &pass, xa);
        else if (h->p2p(h->pctx, -1, xa, n, 0) != FM_OK) return FM_ERR;
        fm_encoder_forward(m, acts[k], bt, &pass, l0, l1, xa, xb);
        if (s == S - 1) loss += fm_head_forward(m, acts[k], bt, &pass, xb, NULL);
        else if (h->p2p(h->pctx, +1, xb, n, 1) != FM_OK) return FM_ERR;
    }
    for (int k = M - 1; k >= 0; k--) {
        int a = nr * k / M, b = nr * (k + 1) / M;
        if (b == a) continue;
        const int fin = k == kfin;
        fm_batch *bt = &mbb[k].b;
        size_t n = (size_t)bt->B * bt->T * H;
        if (s == S - 1) {
            fm_head_backward(m, acts[k], bt, &pass, scale, xa);
            if (fin && sum_layer(h, m, L) != FM_OK) return FM_ERR;
        } else if (h->p2p(h->pctx, +1, xa, n, 0) != FM_OK) {
            return FM_ERR;
        }
        float *dx = xb;
        if (!fin) {
            fm_encoder_backward(m, acts[k], bt, &pass, l0, l1, xa, xb);
        } else {
            /* layer by layer (the same arithmetic), each layer's sum started at once */
            float *dout = xa, *din = xb;
            for (int l = l1 - 1; l >= l0; l--) {
                fm_encoder_backward(m, acts[k], bt, &pass, l, l + 1, dout, din);
                float *t = dout;
                dout = din;
                din = t;
                if (sum_layer(h, m, l) != FM_OK) return FM_ERR;
                if (h->progress) h->progress(h->ctx);
            }
            dx = dout;
        }
        if (s == 0) {
            fm_embed_backward(m, acts[k], bt, &pass, dx);
            if (fin && sum_layer(h, m, -1) != FM_OK) return FM_ERR;
        } else if (h->p2p(h->pctx, -1, dx, n, 1) != FM_OK) {
            return FM_ERR;
        }
    }
    if (kfin < 0) {
        /* No rows on this replica: its zeros join the sums, in the same order. */
        if (s == S - 1 && sum_layer(h, m, L) != FM_OK) return FM_ERR;
        for (int l = l1 - 1; l >= l0; l--)
            if (sum_layer(h, m, l) != FM_OK) return FM_ERR;
        if (s == 0 && sum_layer(h, m, -1) != FM_OK) return FM_ERR;
    }
    if (h->sum_wait(h->ctx) != FM_OK) return FM_ERR;
    extra[0] = (float)loss;
    return h->team_sum(h->pctx, extra, 3);
}

/* The pipeline's update: each stage's per-tensor norm terms summed over the
 * stages give every rank the global norm (the bits of one process's), then
 * AdamW on the tensors this stage owns. */
static int apply_pipelined(fm_ft_hooks *h, fm_trainer *tr, double *norm, double *factor) {
    const int n = tr->m->lay.n;
    double *sq = fm_xmalloc(sizeof(double) * (size_t)(n ? n : 1));
    fm_trainer_norm_parts(tr, sq);
    int rc = h->stages_sum(h->pctx, sq, (size_t)n);
    if (rc == FM_OK) *factor = fm_trainer_apply_parts(tr, sq, norm);
    free(sq);
    return rc;
}

/* The trainer's sparsities; on a pipeline stage, from the terms of every
 * stage (each holds the current scores and sample of its own tensors only). */
static int sparsity(fm_ft_hooks *h, int pipelined, fm_trainer *tr, fm_sparsity *sp) {
    if (!pipelined) {
        fm_trainer_sparsity(tr, sp);
        return FM_OK;
    }
    const int n = tr->m->lay.n;
    double *parts = fm_xmalloc(sizeof(double) * 3 * (size_t)(n ? n : 1));
    fm_trainer_sparsity_parts(tr, parts);
    int rc = h->stages_sum(h->pctx, parts, 3 * (size_t)n);
    if (rc == FM_OK) fm_trainer_sparsity_sum(tr, parts, sp);
    free(parts);
    return rc;
}

/* Copy array x (with m's layout) of the tensors i with sel[i] from the stage
 * that owns them to the other stages of this replica: per stage, one
 * broadcast of the span from its first such tensor to the end of its last
 * (a stage's tensors are contiguous; the unselected ones inside the span do
 * not change in training and are the same on every stage). */
static int bcast_owned(fm_ft_hooks *h, const fm_model *m, const unsigned char *sel, float *x) {
    const fm_layout *lay = &m->lay;
    for (int st = 0; st < h->nstages; st++) {
        size_t begin = lay->numel, end = 0;
        for (int i = 0; i < lay->n; i++) {
            const fm_tensor *t = &lay->t[i];
            if (!sel[i] || fm_layout_stage(t, m->cfg.num_hidden_layers, h->nstages) != st) continue;
            if (t->offset < begin) begin = t->offset;
            if (t->offset + t->numel > end) end = t->offset + t->numel;
        }
        if (end > begin && h->bcast(h->pctx, x + begin, end - begin, st) != FM_OK) return FM_ERR;
    }
    return FM_OK;
}

/* Give every stage the whole trained state, before anything reads the whole
 * model: the parameters that train, the scores nu (supermask) and, with
 * moments != 0 (a checkpoint), the AdamW moments of both. */
static int sync_stages(fm_ft_hooks *h, fm_trainer *tr, int moments) {
    const fm_model *m = tr->m;
    const int n = m->lay.n, sm = tr->o.mode == FM_TRAIN_SUPERMASK;
    unsigned char *sel = fm_xmalloc((size_t)(n ? n : 1));
    int rc = FM_OK;
    for (int i = 0; i < n; i++) sel[i] = (unsigned char)(m->lay.t[i].trains != 0);
    rc = bcast_owned(h, m, sel, m->params);
    if (rc == FM_OK && sm) {
        for (int i = 0; i < n; i++) sel[i] = tr->masked_of[i] >= 0;
        rc = bcast_owned(h, m, sel, tr->nu);
    }
    if (rc == FM_OK && moments) {
        for (int i = 0; i < n; i++) sel[i] = m->lay.t[i].trains || (sm && tr->masked_of[i] >= 0);
        rc = bcast_owned(h, m, sel, tr->mom1);
        if (rc == FM_OK) rc = bcast_owned(h, m, sel, tr->mom2);
    }
    free(sel);
    return rc;
}

/* Training diverged at step `step` (1-based) of `total`: its loss, or its
 * gradient norm, is not finite (`what` says which). The job stops here: the
 * parameters keep the previous step's values (fm_trainer_apply skips such an
 * update), the log gets this step's line marked "diverged" (a value that is
 * not finite as null), and metrics.json says "status": "diverged" with the
 * step; nothing already written is removed. Returns FM_ERR with the message. */
static int diverged(const fm_ft_opts *o, const fm_ft_ctx *c, fm_jsonl *log, int writer, const char *what,
                    int64_t step, int64_t total, int64_t steps_per_epoch, double loss, double norm, double lr,
                    json_t *hyper, int train_n) {
    json_t *l = json_object();
    json_object_set_new(l, "step", json_integer(step));
    json_object_set_new(l, "epoch", json_real((double)step / (double)steps_per_epoch));
    json_object_set_new(l, "loss", num_or_null(loss));
    json_object_set_new(l, "lr", num_or_null(lr));
    json_object_set_new(l, "grad_norm", num_or_null(norm));
    json_object_set_new(l, "diverged", json_true());
    int rc = writer ? fm_jsonl_append(log, l) : FM_OK;
    json_decref(l);
    json_t *met = json_object();
    char fp[32];
    snprintf(fp, sizeof fp, "%016" PRIx64, c->fingerprint);
    json_object_set_new(met, "task", json_string(c->task->name));
    json_object_set_new(met, "mode", json_string(fm_train_mode_names[o->mode]));
    json_object_set_new(met, "model", json_string(o->model_dir));
    json_object_set_new(met, "model_fingerprint", json_string(fp));
    json_object_set_new(met, "status", json_string("diverged"));
    json_object_set_new(met, "diverged_at_step", json_integer(step));
    json_object_set_new(met, "diverged_on", json_string(what));
    json_object_set_new(met, "loss", num_or_null(loss));
    json_object_set_new(met, "grad_norm", num_or_null(norm));
    json_object_set_new(met, "train_examples", json_integer(train_n));
    json_object_set_new(met, "steps", json_integer(total));
    json_object_set_new(met, "weights", json_string(fm_weights_names[o->weights]));
    if (o->freeze) json_object_set_new(met, "freeze", json_string(o->freeze));
    json_object_set_new(met, "hyperparameters", hyper);
    char *path = fm_path_join(o->out_dir, "metrics.json");
    if (writer && rc == FM_OK) rc = fm_json_write(path, met);
    if (o->hooks) {
        o->hooks->diverged = 1;
        o->hooks->metrics = json_incref(met);
    }
    json_decref(met);
    const double v = !strcmp(what, "loss") ? loss : norm;
    if (rc == FM_OK)
        fm_fail("%s: training diverged at step %" PRId64 " of %" PRId64 ": the %s is %s; %s/metrics.json records it "
                "(\"status\": \"diverged\") and log.jsonl holds the steps before; try a lower learning rate",
                c->task->name, step, total, what, isnan(v) ? "NaN" : v > 0 ? "+infinity" : "-infinity", o->out_dir);
    else
        fm_fail_prefix("%s: training diverged at step %" PRId64 " (the %s is not finite), and recording it failed: ",
                       c->task->name, step, what);
    free(path);
    return FM_ERR;
}

int fm_finetune(const fm_ft_opts *o) {
    const int freeze = o->mode == FM_TRAIN_FREEZE, supermask = o->mode == FM_TRAIN_SUPERMASK;
    if (fm_ft_opts_check(o) != FM_OK) return FM_ERR;
    if (o->threads > 0) fm_ft_threads(o->threads);
    fm_ft_hooks *hk = o->hooks;
    const int replicated = hk && hk->sum_start;
    const int pipelined = replicated && hk->nstages > 1;
    const int writer = !hk || hk->team_rank == 0;
    fm_acts **pacts = NULL;
    fm_batch_buf *pbb = NULL;
    if (pipelined && (!hk->p2p || !hk->team_sum || !hk->stages_sum || !hk->bcast))
        return fm_fail("pipeline stages: the caller gave no p2p, team_sum, stages_sum or bcast");
    if (pipelined && (hk->micro_batches < 1 || hk->micro_batches > o->batch_size))
        return fm_fail("micro_batches %d: expected 1 to the batch size %d", hk->micro_batches, o->batch_size);
    /* Decisions that change the sequence of collectives, taken by the team's
     * first rank (a shared file system may show the ranks different things):
     * resume from a state file, and score MNLI's mismatched dev set. */
    int seen[2] = {0, 0};
    if (writer) {
        char *sp = fm_path_join(o->out_dir, FM_STATE_FILE), *mm = dev_mm_path(fm_glue_task_find(o->task), o->data_dir);
        seen[0] = o->resume && fm_file_exists(sp);
        seen[1] = mm && fm_file_exists(mm);
        free(sp);
        free(mm);
    }
    if (hk && hk->decide && hk->decide(hk->pctx, seen, 2) != FM_OK) return FM_ERR;
    double t_start = fm_now();
    /* Signals are caught from the start, so that one arriving while the job
     * loads and tokenizes acts at the first step boundary (stopsig.h). */
    fm_stopsig stopsig = {0};
    fm_stopsig_catch(&stopsig);
    fm_ft_ctx c;
    if (fm_ft_load(&c, o->model_dir, o->task, o->seed, o->dropout) != FM_OK) {
        team_ok(hk, 0);
        fm_stopsig_restore(&stopsig);
        return FM_ERR;
    }
    fm_model *m = &c.model;
    const fm_glue_task *task = c.task;
    size_t frozen = 0;
    if (freeze && fm_freeze(&m->lay, m->cfg.num_hidden_layers, o->freeze, &frozen) != FM_OK) {
        team_ok(hk, 0);
        fm_ft_free(&c);
        fm_stopsig_restore(&stopsig);
        return FM_ERR;
    }
    /* The controls: the pre-trained weights permuted within each tensor, or random. */
    if (o->weights == FM_WEIGHTS_SHUFFLED) fm_weights_shuffle(m, o->seed);
    if (o->weights == FM_WEIGHTS_RANDOM) fm_weights_randomize(m, o->seed);
    int rc = FM_ERR;
    fm_glue_set train_set = {0}, dev_set[2] = {{0}};
    fm_dataset train = {0}, dev[2] = {{0}};
    fm_glue_split dsplit[2];
    int ndev = dev_splits(task, o->data_dir, seen[1], dsplit);
    float *logits = NULL, *dx0 = NULL, *dx1 = NULL;
    fm_acts *acts = NULL;
    fm_batch_buf bb = {0};
    uint32_t *perm = NULL;
    int32_t *rows = NULL;
    fm_jsonl log = {0};
    json_t *metrics = NULL;
    char *path = NULL, *state_path = NULL, *opts_json = NULL;
    double *sample_scores = NULL;
    fm_trainer tr;
    int tr_ready = 0;

    /* Only the examples that train are tokenized (--max-train-examples). */
    if (fm_ft_encode_first(&c, o->data_dir, FM_GLUE_TRAIN, o->max_seq_length, o->max_train_examples, &train_set,
                           &train) != FM_OK)
        goto setup_fail;
    for (int s = 0; s < ndev; s++)
        if (fm_ft_encode(&c, o->data_dir, dsplit[s], o->max_seq_length, &dev_set[s], &dev[s]) != FM_OK) goto setup_fail;
    if (o->max_train_examples >= 0 && o->max_train_examples < train.n) train.n = (int)o->max_train_examples;
    if (train.n == 0) {
        fm_fail("%s: no training examples", task->name);
        goto setup_fail;
    }
    if (writer && fm_mkdirs(o->out_dir) != FM_OK) goto setup_fail;

    const int B = o->batch_size;
    const int64_t steps_per_epoch = (train.n + B - 1) / B;
    const int64_t total = o->max_steps >= 0 ? o->max_steps : (int64_t)ceil(o->epochs * (double)steps_per_epoch);
    fm_trainer_opts to;
    fm_trainer_opts_default(&to);
    to.mode = o->mode;
    to.seed = o->seed;
    fm_adamw *opt = &to.opt;
    opt->lr = (float)(supermask && o->head_lr >= 0 ? o->head_lr : o->lr);
    opt->beta1 = (float)o->adam_beta1;
    opt->beta2 = (float)o->adam_beta2;
    opt->eps = (float)o->adam_eps;
    opt->weight_decay = (float)o->weight_decay;
    opt->max_grad_norm = (float)o->max_grad_norm;
    opt->total_steps = total;
    opt->warmup_steps = (int64_t)ceil(o->warmup * (double)total);
    to.mask_opt = *opt;
    to.mask_opt.lr = (float)o->mask_lr;
    to.mask_opt.weight_decay = 0.0f; /* no decay on nu: it would pull every score towards p = 0.5 */
    /* nu's gradients carry the factors theta~ (~1e-2) and sigmoid'(nu) (~7e-3
     * at |nu| = 5): ~1e4 below a weight's, where an epsilon of 1e-8 would
     * swamp Adam's normalisation. */
    to.mask_opt.eps = 1e-12f;
    to.ste = o->ste;
    to.mask_glob = o->mask_glob;
    to.mask_layers = o->mask_layers;
    to.init_sparsity = o->init_sparsity;
    to.init_rank = o->init_rank;
    if (fm_trainer_init(&tr, m, &to) != FM_OK) goto setup_fail;
    tr_ready = 1;
    if (pipelined) {
        /* This stage updates only the tensors it holds. */
        const int L = m->cfg.num_hidden_layers, S = hk->nstages;
        if (S > L) {
            fm_fail("%d pipeline stages for %d encoder layers: expected at most one stage per layer", S, L);
            goto setup_fail;
        }
        unsigned char *own = fm_xmalloc((size_t)m->lay.n);
        for (int i = 0; i < m->lay.n; i++) own[i] = fm_layout_stage(&m->lay.t[i], L, S) == hk->stage;
        fm_trainer_own(&tr, own);
        free(own);
    }

    fm_log("%s: %d training examples, %" PRId64 " steps of %d (%.3g epochs), %zu parameters train%s, %d thread(s)",
           task->name, train.n, total, B, (double)total / (double)steps_per_epoch, fm_layout_trainable(&m->lay),
           supermask ? " beside the scores of the masked ones" : "", fm_blas_threads());
    if (supermask)
        fm_log("supermask: %zu masked entries in %d tensors, init sparsity %g (%s ranking), ste %s, nu lr %g",
               tr.masked_numel, tr.sample.n, o->init_sparsity, fm_init_rank_names[o->init_rank], fm_ste_names[o->ste],
               o->mask_lr);
    acts = fm_acts_new(&m->cfg, B, o->max_seq_length, 0, m->cfg.num_hidden_layers);
    fm_batch_buf_alloc(&bb, B, o->max_seq_length);
    perm = fm_xmalloc(sizeof(uint32_t) * (size_t)train.n);
    rows = fm_xmalloc(sizeof(int32_t) * (size_t)B);
    if (replicated) {
        dx0 = fm_xalloc_floats((size_t)B * o->max_seq_length * m->cfg.hidden_size);
        dx1 = fm_xalloc_floats((size_t)B * o->max_seq_length * m->cfg.hidden_size);
    }
    if (pipelined) {
        const int L = m->cfg.num_hidden_layers, S = hk->nstages, st = hk->stage, M = hk->micro_batches;
        /* the largest micro-batch of a replica's share */
        int mb = ((B + hk->nranks - 1) / hk->nranks + M - 1) / M;
        pacts = fm_xcalloc((size_t)M, sizeof *pacts);
        pbb = fm_xcalloc((size_t)M, sizeof *pbb);
        for (int k = 0; k < M; k++) {
            pacts[k] = fm_acts_new(&m->cfg, mb, o->max_seq_length, L * st / S, L * (st + 1) / S);
            fm_batch_buf_alloc(&pbb[k], mb, o->max_seq_length);
        }
    }

    /* The options (RUN_DIR/options.json), the state, the log. */
    opts_json = fm_ft_opts_json(o);
    state_path = fm_path_join(o->out_dir, FM_STATE_FILE);
    path = fm_path_join(o->out_dir, "log.jsonl");
    fm_train_progress pr = {.step = 0, .log_bytes = 0, .window_loss = 0, .window_n = 0, .examples = 0,
                            .last_loss = NAN};
    if (o->resume) {
        if (writer) fm_remove_stale_temps(o->out_dir);
        if (seen[0]) {
            if (fm_trainstate_read(state_path, &tr, &pr, opts_json) != FM_OK) goto setup_fail;
            fm_log("resuming %s at step %" PRId64 " of %" PRId64, o->out_dir, pr.step, total);
            if (writer && (fm_test_fail_write("log", path) != FM_OK || fm_jsonl_resume(&log, path, pr.log_bytes) != FM_OK))
                goto setup_fail;
        } else {
            fm_log("%s: no %s; starting from step 0", o->out_dir, FM_STATE_FILE);
            if (writer && (fm_test_fail_write("log", path) != FM_OK || fm_jsonl_open(&log, path) != FM_OK)) goto setup_fail;
        }
    } else {
        if (writer && (fm_test_fail_write("log", path) != FM_OK || fm_jsonl_open(&log, path) != FM_OK)) goto setup_fail;
    }
    free(path);
    path = fm_path_join(o->out_dir, "options.json");
    if (writer && fm_write_file_atomic(path, opts_json, strlen(opts_json)) != FM_OK) goto setup_fail;
    free(path);
    path = NULL;
    /* The team starts the loop only when every rank could set the job up. */
    if (team_ok(hk, 1) != FM_OK) goto done;

    fm_stopsig_test_pause_at("load");

    char what[64];
    snprintf(what, sizeof what, "train %s", task->name);
    fm_progress prog;
    fm_progress_start(&prog, what, pr.step, total);
    const double t_loop = fm_now();
    /* Where this session starts: speed and ETA count its own work only. */
    const int64_t first_step = pr.step, examples0 = pr.examples;
    int64_t cur_epoch = -1;
    for (int64_t step = pr.step; step < total; step++) {
        int64_t epoch = step / steps_per_epoch, pos = step % steps_per_epoch;
        if (epoch != cur_epoch) {
            if (o->shuffle)
                fm_rng_permutation(o->seed, FM_RNG_SHUFFLE, (uint64_t)epoch, 0, perm, (uint32_t)train.n);
            else
                for (int i = 0; i < train.n; i++) perm[i] = (uint32_t)i;
            cur_epoch = epoch;
        }
        int first = (int)(pos * B), nb = train.n - first < B ? train.n - first : B;
        /* This replica's rows of the batch: [lo, hi). */
        int lo = replicated ? (int)((int64_t)nb * hk->rank / hk->nranks) : 0;
        int hi = replicated ? (int)((int64_t)nb * (hk->rank + 1) / hk->nranks) : nb;
        for (int j = lo; j < hi; j++) rows[j - lo] = (int32_t)perm[first + j];
        fm_batch_fill(&bb, &train, rows, hi - lo, 1, lo);
        if (task->is_regression) bb.b.labels = NULL;
        else bb.b.targets = NULL;
        fm_trainer_begin_step(&tr, step);
        double loss;
        int sig = fm_stopsig_pending();
        if (replicated) {
            /* the loss, then this rank's SIGTERM and SIGUSR1 flags, each summed on its own */
            float extra[3] = {0, (float)fm_stopsig_term(), (float)fm_stopsig_usr1()};
            int grc = pipelined ? grad_pipelined(hk, &tr, pacts, pbb, &train, rows, hi - lo, lo, task->is_regression,
                                                 (float)(1.0 / nb), dx0, dx1, extra)
                                : grad_replicated(hk, &tr, acts, &bb.b, (float)(1.0 / nb), dx0, dx1, extra);
            if (grc != FM_OK) goto done;
            loss = extra[0] / nb;
            /* Any rank's SIGTERM stops them all; any signal checkpoints. */
            sig = fm_stopsig_combine(extra[1], extra[2]);
        } else {
            loss = fm_trainer_grad(&tr, acts, &bb.b, 1.0 / nb) / nb;
        }
        if (step == 0 && o->dump_grads) {
            if (pipelined) {
                unsigned char *sel = fm_xmalloc((size_t)m->lay.n);
                for (int i = 0; i < m->lay.n; i++) sel[i] = m->lay.t[i].trains || m->lay.t[i].needs_grad;
                int brc = bcast_owned(hk, m, sel, m->grads);
                free(sel);
                if (brc != FM_OK) goto done;
            }
            int dok = !writer || fm_save_tensors(o->dump_grads, &m->lay, m->grads, NULL, 0) == FM_OK;
            if (team_ok(hk, dok) != FM_OK) goto done;
            if (writer) fm_log("first batch's gradients written to %s", o->dump_grads);
        }
        /* A loss or gradient norm that is not finite stops the job (every
         * rank of a team sees the same summed values, so all stop together). */
        double norm = NAN, factor = fm_lr_factor(&tr.o.opt, step);
        const char *bad = isfinite(loss) ? NULL : "loss";
        if (bad) {
            /* no update */
        } else if (!pipelined) {
            factor = fm_trainer_apply(&tr, &norm);
        } else if (apply_pipelined(hk, &tr, &norm, &factor) != FM_OK) {
            goto done;
        }
        if (!bad && !isfinite(norm)) bad = "gradient norm";
        if (bad) {
            fm_progress_end(&prog);
            diverged(o, &c, &log, writer, bad, step + 1, total, steps_per_epoch, loss, norm, opt->lr * factor,
                     hyper_json(o, opt, total), train.n);
            goto done;
        }
        pr.step = step + 1;
        pr.examples += nb;
        pr.window_loss += loss;
        pr.window_n++;
        pr.last_loss = loss;
        if ((step + 1) % o->log_every == 0 || step + 1 == total) {
            json_t *l = json_object();
            json_object_set_new(l, "step", json_integer(step + 1));
            json_object_set_new(l, "epoch", json_real((double)(step + 1) / (double)steps_per_epoch));
            json_object_set_new(l, "loss", num_or_null(pr.window_loss / (double)pr.window_n));
            json_object_set_new(l, "lr", json_real(opt->lr * factor));
            json_object_set_new(l, "grad_norm", num_or_null(norm));
            if (supermask) {
                fm_sparsity sp;
                if (sparsity(hk, pipelined, &tr, &sp) != FM_OK) {
                    json_decref(l);
                    goto done;
                }
                json_object_set_new(l, "sparsity_expected", json_real(sp.expected));
                json_object_set_new(l, "sparsity_sampled", json_real(sp.sampled));
            }
            int wr = writer ? fm_jsonl_append(&log, l) : FM_OK;
            json_decref(l);
            if (team_ok(hk, wr == FM_OK) != FM_OK) goto done;
            pr.window_loss = 0;
            pr.window_n = 0;
        }
        fm_progress_update(&prog, step + 1, pr.examples - examples0, loss, opt->lr * factor);
        if (o->eval_every > 0 && (step + 1) % o->eval_every == 0 && step + 1 < total) {
            logits = fm_xrealloc(logits, sizeof(float) * (size_t)(dev[0].n ? dev[0].n : 1) * m->cfg.num_labels);
            fm_glue_report r;
            if (pipelined && sync_stages(hk, &tr, 0) != FM_OK) goto done;
            fm_trainer_sample(&tr, FM_SAMPLE_DET, 0);
            if (predict(hk, &c, &dev[0], o->eval_batch_size, logits, &r) != FM_OK) goto done;
            json_t *l = json_object();
            json_object_set_new(l, "step", json_integer(step + 1));
            json_object_set_new(l, "dev", report_json(&r, dev[0].n));
            int wr = writer ? fm_jsonl_append(&log, l) : FM_OK;
            json_decref(l);
            if (team_ok(hk, wr == FM_OK) != FM_OK) goto done;
            log_report(task->name, "dev", &r);
        }
        int periodic = o->checkpoint_every > 0 && (step + 1) % o->checkpoint_every == 0 && step + 1 < total;
        if ((periodic || sig) && pipelined && sync_stages(hk, &tr, 1) != FM_OK) goto done;
        if (periodic || sig) {
            /* The writer saves; the team learns whether it could (a full disk
             * fails the job on every rank, with the writer's message). */
            int wok = !writer || (fm_jsonl_sync(&log, &pr.log_bytes) == FM_OK &&
                                  fm_trainstate_write(state_path, &tr, &pr, opts_json) == FM_OK);
            if (hk && hk->agree && hk->agree(hk->pctx, wok) != FM_OK) goto done;
            if (!wok) goto done;
            if (sig && writer)
                fm_log("%s: state at step %" PRId64 " written to %s", sig == SIGTERM ? "SIGTERM" : "SIGUSR1", step + 1,
                       state_path);
        }
        if (sig == SIGTERM) {
            fm_progress_end(&prog);
            if (hk) hk->interrupted = 1;
            fm_fail("interrupted by SIGTERM after step %" PRId64 " of %" PRId64
                    "; continue with: finemask train --resume %s",
                    step + 1, total, o->out_dir);
            goto done;
        }
        if (sig) fm_stopsig_served();
        fm_stopsig_test_pause(step + 1);
    }
    fm_progress_end(&prog);
    double t_train = fm_now() - t_loop;
    /* Every stage gets the whole model for the evaluation and the files. */
    if (pipelined && sync_stages(hk, &tr, 0) != FM_OK) goto done;

    /* The run directory: metrics.json, the model or the mask. */
    metrics = json_object();
    json_object_set_new(metrics, "task", json_string(task->name));
    json_object_set_new(metrics, "mode", json_string(fm_train_mode_names[o->mode]));
    json_object_set_new(metrics, "model", json_string(o->model_dir));
    char fp[32];
    snprintf(fp, sizeof fp, "%016" PRIx64, c.fingerprint);
    json_object_set_new(metrics, "model_fingerprint", json_string(fp));
    json_object_set_new(metrics, "head_from_checkpoint", json_boolean(c.head_loaded));
    json_object_set_new(metrics, "train_examples", json_integer(train.n));
    if (fm_glue_split_layout(task, FM_GLUE_TRAIN)->skip_short) {
        /* QQP: rows with too few fields are skipped, as GLUE's processor does; their count, per file read */
        json_t *sk = json_object();
        json_object_set_new(sk, fm_glue_split_name(FM_GLUE_TRAIN), json_integer((json_int_t)train_set.skipped));
        for (int s = 0; s < ndev; s++)
            json_object_set_new(sk, fm_glue_split_name(dsplit[s]), json_integer((json_int_t)dev_set[s].skipped));
        json_object_set_new(metrics, "skipped_rows", sk);
    }
    json_object_set_new(metrics, "steps", json_integer(total));
    json_object_set_new(metrics, "final_loss", num_or_null(pr.last_loss)); /* null: no step ran */
    json_object_set_new(metrics, "weights", json_string(fm_weights_names[o->weights]));
    if (freeze) json_object_set_new(metrics, "freeze", json_string(o->freeze));
    json_object_set_new(metrics, "trained_parameters", json_integer((json_int_t)fm_layout_trainable(&m->lay)));
    json_object_set_new(metrics, "frozen_parameters", json_integer((json_int_t)frozen));
    json_t *hyper = hyper_json(o, opt, total);
    if (supermask) {
        json_object_set_new(hyper, "mask_lr", json_real(o->mask_lr));
        json_object_set_new(hyper, "head_lr", json_real(opt->lr));
        json_object_set_new(hyper, "mask_weight_decay", json_real(0.0));
        json_object_set_new(hyper, "mask_adam_eps", json_real(to.mask_opt.eps));
    }
    json_object_set_new(metrics, "hyperparameters", hyper);
    if (!supermask) {
        /* Table 3's task-specific storage: what must be kept per task beyond
         * the shared pre-trained model, the trained parameters as float32. */
        json_object_set_new(metrics, "task_storage_bytes",
                            json_integer((json_int_t)(4 * fm_layout_trainable(&m->lay))));
    } else {
        /* Supermask: N independent Bernoulli samples, then the deterministic mask. */
        logits = fm_xrealloc(logits, sizeof(float) * (size_t)(dev[0].n ? dev[0].n : 1) * m->cfg.num_labels);
        sample_scores = fm_xcalloc((size_t)(o->samples ? o->samples : 1), sizeof(double));
        double mean = 0, sampled_sp = 0;
        json_t *arr = json_array();
        fm_sparsity sp;
        if (sparsity(hk, pipelined, &tr, &sp) != FM_OK) {
            json_decref(arr);
            goto done;
        }
        sampled_sp = sp.sampled; /* the last training step's sample when --samples 0 */
        if (o->samples > 0) sampled_sp = 0;
        for (int k = 0; k < o->samples; k++) {
            fm_trainer_sample(&tr, FM_SAMPLE_EVAL, (uint64_t)k);
            fm_glue_report r;
            if (predict(hk, &c, &dev[0], o->eval_batch_size, logits, &r) != FM_OK) {
                json_decref(arr);
                goto done;
            }
            sample_scores[k] = r.main;
            if (sparsity(hk, pipelined, &tr, &sp) != FM_OK) {
                json_decref(arr);
                goto done;
            }
            sampled_sp += sp.sampled / o->samples;
            mean += sample_scores[k] / o->samples;
            json_array_append_new(arr, json_real(sample_scores[k]));
        }
        double var = 0;
        for (int k = 0; k < o->samples; k++) var += (sample_scores[k] - mean) * (sample_scores[k] - mean);
        double sd = o->samples > 1 ? sqrt(var / (o->samples - 1)) : 0.0;
        fm_trainer_sample(&tr, FM_SAMPLE_DET, 0);
        if (sparsity(hk, pipelined, &tr, &sp) != FM_OK) {
            json_decref(arr);
            goto done;
        }
        size_t bits_bytes = 0;
        for (int k = 0; k < tr.sample.n; k++) bits_bytes += (tr.sample.t[k].numel + 7) / 8;
        const fm_tensor *hw = fm_layout_find(&m->lay, "classifier.weight");
        const fm_tensor *hb = fm_layout_find(&m->lay, "classifier.bias");
        json_object_set_new(metrics, "samples", json_integer(o->samples));
        json_object_set_new(metrics, "score_samples", arr);
        /* no samples: no mean; one sample: no spread (null, not 0) */
        json_object_set_new(metrics, "score_samples_mean", o->samples > 0 ? json_real(mean) : json_null());
        json_object_set_new(metrics, "score_samples_std", o->samples > 1 ? json_real(sd) : json_null());
        json_object_set_new(metrics, "sparsity_expected", json_real(sp.expected));
        json_object_set_new(metrics, "sparsity_sampled", json_real(sampled_sp));
        json_object_set_new(metrics, "sparsity_deterministic", json_real(sp.deterministic));
        json_object_set_new(metrics, "masked_parameters", json_integer((json_int_t)tr.masked_numel));
        json_object_set_new(metrics, "masked_tensors", json_integer(tr.sample.n));
        json_object_set_new(metrics, "mask_bytes", json_integer((json_int_t)bits_bytes));
        json_object_set_new(metrics, "task_storage_bytes",
                            json_integer((json_int_t)(bits_bytes + 4 * (hw->numel + hb->numel))));
        json_object_set_new(metrics, "init_sparsity", json_real(o->init_sparsity));
        json_object_set_new(metrics, "init_rank", json_string(fm_init_rank_names[o->init_rank]));
        json_object_set_new(metrics, "ste", json_string(fm_ste_names[o->ste]));
        json_object_set_new(metrics, "mask", json_string(o->mask_glob ? o->mask_glob : FM_MASK_DEFAULT_GLOB));
        json_object_set_new(metrics, "mask_layers", str_or_null(o->mask_layers));
        char ms[64] = "";
        if (o->samples > 1) snprintf(ms, sizeof ms, ": %s %.4f ± %.4f", task->name, mean, sd);
        else if (o->samples == 1) snprintf(ms, sizeof ms, ": %s %.4f (n=1)", task->name, mean);
        fm_log("%s: %d sample(s)%s; sparsity expected %.4f, sampled %.4f, deterministic %.4f", task->name,
               o->samples, ms, sp.expected, sampled_sp, sp.deterministic);
    }
    /* Dev scores with the trained weights (supermask: the deterministic mask). */
    for (int s = 0; s < ndev; s++) {
        logits = fm_xrealloc(logits, sizeof(float) * (size_t)(dev[s].n ? dev[s].n : 1) * m->cfg.num_labels);
        fm_glue_report r;
        if (predict(hk, &c, &dev[s], o->eval_batch_size, logits, &r) != FM_OK) goto done;
        json_object_set_new(metrics, fm_glue_split_name(dsplit[s]), report_json(&r, dev[s].n));
        log_report(task->name, fm_glue_split_name(dsplit[s]), &r);
        if (s == 0) {
            json_object_set_new(metrics, "score", json_real(r.main));
            json_object_set_new(metrics, "score_name", json_string(r.main_name));
        }
    }
    /* The writer writes the final files; the team learns whether it could. */
    int wok = 1;
    if (!writer) {
        /* replica 0 writes the run directory */
    } else if (supermask) {
        path = fm_path_join(o->out_dir, "mask.safetensors");
        fm_maskfile_meta meta;
        fm_maskfile_meta_init(&meta);
        snprintf(meta.task, sizeof meta.task, "%s", task->name);
        snprintf(meta.mode, sizeof meta.mode, "supermask");
        snprintf(meta.ste, sizeof meta.ste, "%s", fm_ste_names[o->ste]);
        meta.seed = o->seed;
        meta.init_sparsity = o->init_sparsity;
        meta.model_fingerprint = c.fingerprint;
        int wr = fm_maskfile_meta_set(&meta, "weights", fm_weights_names[o->weights]);
        if (wr == FM_OK) wr = fm_test_fail_write("mask", path);
        if (wr == FM_OK) wr = fm_maskfile_write(path, &tr.sample, &meta, &m->lay, m->params);
        fm_maskfile_meta_free(&meta);
        wok = wr == FM_OK;
    } else {
        path = fm_path_join(o->out_dir, "model");
        fm_save_opts so = {.vocab = fm_file_exists(c.vocab_path) ? c.vocab_path : NULL,
                           .tokenizer_from = c.model_dir,
                           .extra = &c.extra};
        wok = fm_test_fail_write("model", path) == FM_OK &&
              fm_modeldir_save(path, &m->cfg, &m->lay, m->params, &so) == FM_OK;
    }
    free(path);
    path = NULL;
    if (writer && wok) {
        path = fm_path_join(o->out_dir, "metrics.json");
        wok = fm_test_fail_write("metrics", path) == FM_OK && fm_json_write(path, metrics) == FM_OK;
    }
    /* Finished: the state is no longer needed, and the run directory holds
     * the same files whether or not the run was interrupted. */
    if (writer && wok && fm_file_exists(state_path) && unlink(state_path) != 0) {
        fm_fail("%s: cannot remove: %s", state_path, strerror(errno));
        wok = 0;
    }
    if (team_ok(hk, wok) != FM_OK) goto done;
    if (hk) {
        hk->metrics = json_incref(metrics);
        hk->train_seconds = t_train;
        hk->examples = pr.examples - examples0; /* this session's, as train_seconds */
    }
    double t_all = fm_now() - t_start;
    /* Times go to the log only, so that the run directory is the same bits on every run. */
    fm_log("%s: done in %.1f s, training %.1f s (%.1f examples/s: %" PRId64 " examples in %" PRId64
           " steps this session, %d thread(s), BLIS %s); run directory %s",
           task->name, t_all, t_train, t_train > 0 ? (double)(pr.examples - examples0) / t_train : 0.0,
           pr.examples - examples0, total - first_step, fm_blas_threads(), fm_blas_arch(), o->out_dir);
    rc = FM_OK;
    goto done;
setup_fail:
    team_ok(hk, 0); /* the others learn that this rank could not set the job up */
done:
    if (stopsig.caught) {
        /* A SIGTERM after the last step (the final evaluation): the job is
         * complete, but the caller should stop. */
        if (hk && fm_stopsig_pending() == SIGTERM) hk->term_seen = 1;
        fm_stopsig_restore(&stopsig);
    }
    free(path);
    free(state_path);
    free(opts_json);
    free(sample_scores);
    fm_free_aligned(dx0);
    fm_free_aligned(dx1);
    if (pacts)
        for (int k = 0; k < hk->micro_batches; k++) {
            fm_acts_free(pacts[k]);
            fm_batch_buf_free(&pbb[k]);
        }
    free(pacts);
    free(pbb);
    json_decref(metrics);
    if (log.fp) fm_jsonl_close(&log);
    free(perm);
    free(rows);
    free(logits);
    fm_batch_buf_free(&bb);
    if (acts) fm_acts_free(acts);
    if (tr_ready) fm_trainer_free(&tr);
    fm_dataset_free(&train);
    fm_glue_set_free(&train_set);
    for (int s = 0; s < 2; s++) {
        fm_dataset_free(&dev[s]);
        fm_glue_set_free(&dev_set[s]);
    }
    fm_ft_free(&c);
    return rc;
}
