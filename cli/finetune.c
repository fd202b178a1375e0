/* finetune.c: a single-process fine-tuning job on a GLUE task (see finetune.h). */
#define _GNU_SOURCE
#include "finetune.h"

#include <inttypes.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "controls.h"
#include "fileio.h"
#include "fm.h"
#include "modeldir.h"
#include "optim.h"
#include "progress.h"
#include "rng.h"
#include "runfiles.h"
#include "vocab.h"

void fm_ft_opts_default(fm_ft_opts *o) {
    memset(o, 0, sizeof *o);
    o->mode = "full";
    o->lr = 2e-5;
    o->batch_size = 32;
    o->epochs = 3;
    o->max_seq_length = 128;
    o->warmup = 0.1;
    o->weight_decay = 0.01;
    o->adam_eps = 1e-8;
    o->adam_beta1 = 0.9;
    o->adam_beta2 = 0.999;
    o->max_grad_norm = 1.0;
    o->seed = 42;
    o->dropout = -1;
    o->max_steps = -1;
    o->shuffle = 1;
    o->eval_every = 0;
    o->log_every = 50;
    o->max_train_examples = -1;
    o->eval_batch_size = 32;
    o->freeze = NULL;
    o->weights = "pretrained";
}

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
    fm_tokenizer_opts to = fm_tokenizer_default_opts();
    if (fm_tokenizer_load(&c->tok, c->vocab_path, &to) != FM_OK) {
        fm_model_free(&c->model);
        fm_hfextra_free(&c->extra);
        free(c->vocab_path);
        return FM_ERR;
    }
    if (c->tok.vocab.n != c->model.cfg.vocab_size)
        fm_log("warning: %s has %d tokens but config.json says vocab_size %d", c->vocab_path, c->tok.vocab.n,
               c->model.cfg.vocab_size);
    return FM_OK;
}

void fm_ft_free(fm_ft_ctx *c) {
    fm_model_free(&c->model);
    fm_tokenizer_free(&c->tok);
    fm_hfextra_free(&c->extra);
    free(c->vocab_path);
    memset(c, 0, sizeof *c);
}

int fm_ft_encode(fm_ft_ctx *c, const char *data_dir, fm_glue_split split, int max_seq_length, fm_glue_set *set,
                 fm_dataset *d) {
    if (fm_glue_load(set, c->task, split, data_dir) != FM_OK) return FM_ERR;
    if (max_seq_length > c->model.cfg.max_position_embeddings)
        return fm_fail("--max-seq-length %d exceeds the model's max_position_embeddings %d", max_seq_length,
                       c->model.cfg.max_position_embeddings);
    const int n = (int)set->n;
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
    if (bad >= 0)
        return fm_fail("%s/%s/%s:%d: %s", data_dir, c->task->name, fm_glue_split_file(c->task, split),
                       set->ex[bad].line, msg);
    return FM_OK;
}

void fm_ft_predict(fm_ft_ctx *c, const fm_dataset *d, int batch_size, float *logits, fm_glue_report *r) {
    fm_model *m = &c->model;
    const int NL = m->cfg.num_labels;
    fm_acts *acts = fm_acts_new(&m->cfg, batch_size, d->max_len, 0, m->cfg.num_hidden_layers);
    fm_batch_buf bb;
    fm_batch_buf_alloc(&bb, batch_size, d->max_len);
    int32_t *rows = fm_xmalloc(sizeof(int32_t) * (size_t)batch_size);
    fm_pass pass = {.seed = 0, .step = 0, .training = 0};
    for (int i = 0; i < d->n; i += batch_size) {
        int B = d->n - i < batch_size ? d->n - i : batch_size;
        for (int j = 0; j < B; j++) rows[j] = i + j;
        fm_batch_fill(&bb, d, rows, B, 1, 0);
        bb.b.labels = NULL;
        bb.b.targets = NULL;
        fm_model_forward(m, acts, &bb.b, &pass, logits + (size_t)i * NL);
    }
    if (r) {
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
    free(rows);
    fm_batch_buf_free(&bb);
    fm_acts_free(acts);
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

/* Dev splits of a task: dev, and MNLI's mismatched set when its file exists. */
static int dev_splits(const fm_glue_task *t, const char *data_dir, fm_glue_split *out) {
    int n = 0;
    out[n++] = FM_GLUE_DEV;
    if (t->dev_mm_file) {
        char *dir = fm_path_join(data_dir, t->name);
        char *p = fm_path_join(dir, t->dev_mm_file);
        if (fm_file_exists(p))
            out[n++] = FM_GLUE_DEV_MISMATCHED;
        else
            fm_log("%s: absent; scoring the matched dev set only", p);
        free(p);
        free(dir);
    }
    return n;
}

static json_t *hyper_json(const fm_ft_opts *o, const fm_adamw *opt, int64_t steps) {
    json_t *h = json_object();
    json_object_set_new(h, "lr", json_real(o->lr));
    json_object_set_new(h, "batch_size", json_integer(o->batch_size));
    json_object_set_new(h, "epochs", json_real(o->epochs));
    json_object_set_new(h, "max_seq_length", json_integer(o->max_seq_length));
    json_object_set_new(h, "warmup_ratio", json_real(o->warmup));
    json_object_set_new(h, "warmup_steps", json_integer(opt->warmup_steps));
    json_object_set_new(h, "total_steps", json_integer(steps));
    json_object_set_new(h, "weight_decay", json_real(o->weight_decay));
    json_object_set_new(h, "adam_eps", json_real(o->adam_eps));
    json_object_set_new(h, "adam_beta1", json_real(o->adam_beta1));
    json_object_set_new(h, "adam_beta2", json_real(o->adam_beta2));
    json_object_set_new(h, "max_grad_norm", json_real(o->max_grad_norm));
    json_object_set_new(h, "seed", json_integer((json_int_t)o->seed));
    json_object_set_new(h, "shuffle", json_boolean(o->shuffle));
    return h;
}

/* Start the sums of the gradients of the trainable tensors of encoder layer l
 * (-1: embeddings, L: pooler and heads), adjacent tensors as one range. */
static int sum_layer(fm_ft_hooks *h, const fm_model *m, int l) {
    const fm_layout *lay = &m->lay;
    size_t begin = 0, end = 0;
    for (int i = 0; i < lay->n; i++) {
        const fm_tensor *t = &lay->t[i];
        if (t->layer != l || !t->trains) continue;
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

/* The backward of scale * (summed loss) of this replica's rows, layer by layer,
 * summing each layer's gradients across the replicas as soon as they are
 * complete. dx0 and dx1 have room for (B, T, H). With no rows (B == 0) the
 * gradients are zero and only the sums run. */
static int backward_replicated(fm_ft_hooks *h, fm_model *m, fm_acts *a, const fm_batch *b, const fm_pass *p,
                               float scale, float *dx0, float *dx1) {
    const int L = m->cfg.num_hidden_layers;
    if (b->B > 0) fm_head_backward(m, a, b, p, scale, dx0);
    if (sum_layer(h, m, L) != FM_OK) return FM_ERR;
    for (int l = L - 1; l >= 0; l--) {
        if (b->B > 0) {
            fm_encoder_backward(m, a, b, p, l, l + 1, dx0, dx1);
            float *t = dx0;
            dx0 = dx1;
            dx1 = t;
        }
        if (sum_layer(h, m, l) != FM_OK) return FM_ERR;
        if (h->progress) h->progress(h->ctx);
    }
    if (b->B > 0) fm_embed_backward(m, a, b, p, dx0);
    if (sum_layer(h, m, -1) != FM_OK) return FM_ERR;
    return h->sum_wait(h->ctx);
}

int fm_finetune(const fm_ft_opts *o) {
    const int freeze = !strcmp(o->mode, "freeze");
    if (strcmp(o->mode, "full") != 0 && !freeze)
        return fm_fail("--mode %s: expected full or freeze", o->mode);
    if (freeze != (o->freeze != NULL))
        return fm_fail(freeze ? "--mode freeze needs --freeze SET (e.g. key,deepest:2,word_embeddings)"
                              : "--freeze goes with --mode freeze");
    if (strcmp(o->weights, "pretrained") && strcmp(o->weights, "shuffled") && strcmp(o->weights, "random"))
        return fm_fail("--weights %s: expected pretrained, shuffled or random", o->weights);
    if (o->threads > 0) fm_ft_threads(o->threads);
    fm_ft_hooks *hk = o->hooks;
    const int replicated = hk && hk->sum_start;
    const int writer = !hk || hk->rank == 0;
    double t_start = fm_now();
    fm_ft_ctx c;
    if (fm_ft_load(&c, o->model_dir, o->task, o->seed, o->dropout) != FM_OK) return FM_ERR;
    fm_model *m = &c.model;
    const fm_glue_task *task = c.task;
    size_t frozen = 0;
    if (freeze && fm_freeze(&m->lay, m->cfg.num_hidden_layers, o->freeze, &frozen) != FM_OK) {
        fm_ft_free(&c);
        return FM_ERR;
    }
    /* The controls: the pre-trained weights permuted within each tensor, or random. */
    if (!strcmp(o->weights, "shuffled")) fm_weights_shuffle(m, o->seed);
    if (!strcmp(o->weights, "random")) fm_weights_randomize(m, o->seed);
    int rc = FM_ERR;
    fm_glue_set train_set = {0}, dev_set[2] = {{0}};
    fm_dataset train = {0}, dev[2] = {{0}};
    fm_glue_split dsplit[2];
    int ndev = dev_splits(task, o->data_dir, dsplit);
    float *mom1 = NULL, *mom2 = NULL, *logits = NULL, *dx0 = NULL, *dx1 = NULL;
    fm_acts *acts = NULL;
    fm_batch_buf bb = {0};
    uint32_t *perm = NULL;
    fm_jsonl log = {0};
    json_t *metrics = NULL;
    char *path = NULL;

    if (fm_ft_encode(&c, o->data_dir, FM_GLUE_TRAIN, o->max_seq_length, &train_set, &train) != FM_OK) goto done;
    for (int s = 0; s < ndev; s++)
        if (fm_ft_encode(&c, o->data_dir, dsplit[s], o->max_seq_length, &dev_set[s], &dev[s]) != FM_OK) goto done;
    if (o->max_train_examples >= 0 && o->max_train_examples < train.n) train.n = (int)o->max_train_examples;
    if (train.n == 0) {
        fm_fail("%s: no training examples", task->name);
        goto done;
    }
    if (writer && fm_mkdirs(o->out_dir) != FM_OK) goto done;

    const int B = o->batch_size;
    const int64_t steps_per_epoch = (train.n + B - 1) / B;
    const int64_t total = o->max_steps >= 0 ? o->max_steps : (int64_t)ceil(o->epochs * (double)steps_per_epoch);
    fm_adamw opt;
    fm_adamw_default(&opt);
    opt.lr = (float)o->lr;
    opt.beta1 = (float)o->adam_beta1;
    opt.beta2 = (float)o->adam_beta2;
    opt.eps = (float)o->adam_eps;
    opt.weight_decay = (float)o->weight_decay;
    opt.max_grad_norm = (float)o->max_grad_norm;
    opt.total_steps = total;
    opt.warmup_steps = (int64_t)ceil(o->warmup * (double)total);

    fm_log("%s: %d training examples, %" PRId64 " steps of %d (%.3g epochs), %zu parameters train, %d thread(s)",
           task->name, train.n, total, B, (double)total / (double)steps_per_epoch, fm_layout_trainable(&m->lay),
           fm_blas_threads());
    mom1 = fm_xalloc_floats(m->lay.numel);
    mom2 = fm_xalloc_floats(m->lay.numel);
    acts = fm_acts_new(&m->cfg, B, o->max_seq_length, 0, m->cfg.num_hidden_layers);
    fm_batch_buf_alloc(&bb, B, o->max_seq_length);
    perm = fm_xmalloc(sizeof(uint32_t) * (size_t)train.n);
    if (replicated) {
        dx0 = fm_xalloc_floats((size_t)B * o->max_seq_length * m->cfg.hidden_size);
        dx1 = fm_xalloc_floats((size_t)B * o->max_seq_length * m->cfg.hidden_size);
    }
    path = fm_path_join(o->out_dir, "log.jsonl");
    if (writer && fm_jsonl_open(&log, path) != FM_OK) goto done;
    free(path);
    path = NULL;

    char what[64];
    snprintf(what, sizeof what, "train %s", task->name);
    fm_progress prog;
    fm_progress_start(&prog, what, total);
    const double t_loop = fm_now();
    double window_loss = 0, last_loss = NAN;
    int64_t window_n = 0, examples = 0;
    int32_t *rows = fm_xmalloc(sizeof(int32_t) * (size_t)B);
    for (int64_t step = 0; step < total; step++) {
        int64_t epoch = step / steps_per_epoch, pos = step % steps_per_epoch;
        if (pos == 0) {
            if (o->shuffle)
                fm_rng_permutation(o->seed, FM_RNG_SHUFFLE, (uint64_t)epoch, 0, perm, (uint32_t)train.n);
            else
                for (int i = 0; i < train.n; i++) perm[i] = (uint32_t)i;
        }
        int first = (int)(pos * B), nb = train.n - first < B ? train.n - first : B;
        /* This replica's rows of the batch: [lo, hi). */
        int lo = replicated ? (int)((int64_t)nb * hk->rank / hk->nranks) : 0;
        int hi = replicated ? (int)((int64_t)nb * (hk->rank + 1) / hk->nranks) : nb;
        for (int j = lo; j < hi; j++) rows[j - lo] = (int32_t)perm[first + j];
        fm_batch_fill(&bb, &train, rows, hi - lo, 1, lo);
        if (task->is_regression) bb.b.labels = NULL;
        else bb.b.targets = NULL;
        fm_pass pass = {.seed = o->seed, .step = (uint64_t)step, .training = 1};
        fm_model_zero_grads(m);
        double loss;
        if (replicated) {
            float lsum = hi > lo ? fm_model_forward(m, acts, &bb.b, &pass, NULL) : 0.0f;
            if (backward_replicated(hk, m, acts, &bb.b, &pass, 1.0f / (float)nb, dx0, dx1) != FM_OK ||
                hk->sum_start(hk->ctx, &lsum, 1) != FM_OK || hk->sum_wait(hk->ctx) != FM_OK) {
                free(rows);
                goto done;
            }
            loss = lsum / nb;
        } else {
            loss = fm_model_forward(m, acts, &bb.b, &pass, NULL) / nb;
            fm_model_backward(m, acts, &bb.b, &pass, 1.0f / (float)nb);
        }
        if (step == 0 && o->dump_grads && writer) {
            if (fm_save_tensors(o->dump_grads, &m->lay, m->grads, NULL, 0) != FM_OK) {
                free(rows);
                goto done;
            }
            fm_log("first batch's gradients written to %s", o->dump_grads);
        }
        double norm = fm_grad_norm(&m->lay, m->grads);
        double factor = fm_adamw_step(&opt, &m->lay, m->params, m->grads, mom1, mom2, step, norm, NULL);
        examples += nb;
        window_loss += loss;
        window_n++;
        last_loss = loss;
        if ((step + 1) % o->log_every == 0 || step + 1 == total) {
            json_t *l = json_object();
            json_object_set_new(l, "step", json_integer(step + 1));
            json_object_set_new(l, "epoch", json_real((double)(step + 1) / (double)steps_per_epoch));
            json_object_set_new(l, "loss", json_real(window_loss / (double)window_n));
            json_object_set_new(l, "lr", json_real(opt.lr * factor));
            json_object_set_new(l, "grad_norm", json_real(norm));
            int wr = writer ? fm_jsonl_append(&log, l) : FM_OK;
            json_decref(l);
            if (wr != FM_OK) {
                free(rows);
                goto done;
            }
            window_loss = 0;
            window_n = 0;
        }
        fm_progress_update(&prog, step + 1, examples, loss, opt.lr * factor);
        if (o->eval_every > 0 && (step + 1) % o->eval_every == 0 && step + 1 < total) {
            logits = fm_xrealloc(logits, sizeof(float) * (size_t)(dev[0].n ? dev[0].n : 1) * m->cfg.num_labels);
            fm_glue_report r;
            fm_ft_predict(&c, &dev[0], o->eval_batch_size, logits, &r);
            json_t *l = json_object();
            json_object_set_new(l, "step", json_integer(step + 1));
            json_object_set_new(l, "dev", report_json(&r, dev[0].n));
            if (writer) fm_jsonl_append(&log, l);
            json_decref(l);
            log_report(task->name, "dev", &r);
        }
    }
    free(rows);
    fm_progress_end(&prog);
    double t_train = fm_now() - t_loop;

    /* The run directory: metrics.json, the model. */
    metrics = json_object();
    json_object_set_new(metrics, "task", json_string(task->name));
    json_object_set_new(metrics, "mode", json_string(o->mode));
    json_object_set_new(metrics, "model", json_string(o->model_dir));
    char fp[32];
    snprintf(fp, sizeof fp, "%016" PRIx64, c.fingerprint);
    json_object_set_new(metrics, "model_fingerprint", json_string(fp));
    json_object_set_new(metrics, "head_from_checkpoint", json_boolean(c.head_loaded));
    json_object_set_new(metrics, "train_examples", json_integer(train.n));
    json_object_set_new(metrics, "steps", json_integer(total));
    json_object_set_new(metrics, "final_loss", json_real(isnan(last_loss) ? 0.0 : last_loss));
    json_object_set_new(metrics, "weights", json_string(o->weights));
    if (freeze) json_object_set_new(metrics, "freeze", json_string(o->freeze));
    json_object_set_new(metrics, "trained_parameters", json_integer((json_int_t)fm_layout_trainable(&m->lay)));
    json_object_set_new(metrics, "frozen_parameters", json_integer((json_int_t)frozen));
    /* Table 3's task-specific storage: what must be kept per task beyond the
     * shared pre-trained model, the trained parameters as float32. */
    json_object_set_new(metrics, "task_storage_bytes", json_integer((json_int_t)(4 * fm_layout_trainable(&m->lay))));
    json_object_set_new(metrics, "hyperparameters", hyper_json(o, &opt, total));
    for (int s = 0; s < ndev; s++) {
        logits = fm_xrealloc(logits, sizeof(float) * (size_t)(dev[s].n ? dev[s].n : 1) * m->cfg.num_labels);
        fm_glue_report r;
        fm_ft_predict(&c, &dev[s], o->eval_batch_size, logits, &r);
        json_object_set_new(metrics, fm_glue_split_name(dsplit[s]), report_json(&r, dev[s].n));
        log_report(task->name, fm_glue_split_name(dsplit[s]), &r);
        if (s == 0) {
            json_object_set_new(metrics, "score", json_real(r.main));
            json_object_set_new(metrics, "score_name", json_string(r.main_name));
        }
    }
    if (writer) {
        path = fm_path_join(o->out_dir, "model");
        fm_save_opts so = {.vocab = c.vocab_path, .extra = &c.extra};
        if (fm_modeldir_save(path, &m->cfg, &m->lay, m->params, &so) != FM_OK) goto done;
        free(path);
        path = fm_path_join(o->out_dir, "metrics.json");
        if (fm_json_write(path, metrics) != FM_OK) goto done;
    }
    if (hk) {
        hk->metrics = json_incref(metrics);
        hk->train_seconds = t_train;
        hk->examples = examples;
    }
    double t_all = fm_now() - t_start;
    /* Times go to the log only, so that the run directory is the same bits on every run. */
    fm_log("%s: done in %.1f s, training %.1f s (%.1f examples/s, %d thread(s), BLIS %s); run directory %s",
           task->name, t_all, t_train, (double)examples / t_train, fm_blas_threads(), fm_blas_arch(), o->out_dir);
    rc = FM_OK;
done:
    free(path);
    fm_free_aligned(dx0);
    fm_free_aligned(dx1);
    json_decref(metrics);
    if (log.fp) fm_jsonl_close(&log);
    free(perm);
    free(logits);
    fm_batch_buf_free(&bb);
    if (acts) fm_acts_free(acts);
    fm_free_aligned(mom1);
    fm_free_aligned(mom2);
    fm_dataset_free(&train);
    fm_glue_set_free(&train_set);
    for (int s = 0; s < 2; s++) {
        fm_dataset_free(&dev[s]);
        fm_glue_set_free(&dev_set[s]);
    }
    fm_ft_free(&c);
    return rc;
}
