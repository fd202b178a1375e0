/* pretrain.c: masked-language-model pre-training (see pretrain.h). */
#define _GNU_SOURCE
#include "pretrain.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blas.h"
#include "config.h"
#include "corpus.h"
#include "comm.h"
#include "dataset.h"
#include "engine.h"
#include "fileio.h"
#include "fm.h"
#include "hfconfig.h"
#include "maskfile.h"
#include "mlm.h"
#include "model.h"
#include "modeldir.h"
#include "optim.h"
#include "options.h"
#include "progress.h"
#include "ptstate.h"
#include "stopsig.h"
#include "trainloop.h"
#include "rng.h"
#include "runfiles.h"
#include "vocab.h"
#include "world.h"

/* The corruption key of evaluation rows: a step no training run reaches. */
#define FM_PT_EVAL_STEP UINT64_C(0xFFFFFFFFFFFF)

/* One pre-training on this rank: its inputs, engine and files. Every rank of
 * the world is a data-parallel replica (the engine's replicas strategy over
 * mpi/comm.h's world table; one process: no table). */
typedef struct {
    const fm_pt_opts *o;
    fm_pt_result *res;
    fm_world world;
    fm_mpi_comm mc;
    const fm_comm *comm; /* NULL: one process */
    int rank, size;
    fm_tokenizer tok;
    int tok_ok;
    fm_corpus cp;
    fm_hfextra x;
    fm_config c;
    fm_mlm_spec spec;
    fm_dataset d;
    fm_model m;
    int model_ok;
    int rows, heldout, ntrain, ev0, ev1;
    int64_t steps_per_epoch;
    fm_engine_cfg ec;
    fm_engine e;
    int e_ready;
    int32_t *labels;      /* (rows of a share, seq): the fill's MLM labels */
    int64_t examples0;    /* rows seen before this session */
    int eval;             /* the fill corrupts evaluation rows (their own key, no counts); 2: with
                           * each segment's tokens permuted (pt_shuffle_row) */
    int32_t *shuf;        /* (seq): pt_shuffle_row's copy of a row */
    fm_mlm_counts counts; /* this rank's corruption counts (rank 0: with the steps before a resume) */
    fm_pt_progress pr;
    int resumed, have_state, log_ok;
    fm_jsonl log;
    char *wpath, *state_path, *opts_json;
} pt_job;

/* The engine's configuration from the options (the one place that reads them for it). */
static void pt_config(pt_job *j, const fm_pt_opts *o) {
    fm_engine_cfg *c = &j->ec;
    fm_trainer_opts_default(&c->train);
    c->train.mode = FM_TRAIN_FULL;
    c->train.seed = o->seed;
    fm_adamw *opt = &c->train.opt;
    fm_adamw_default(opt);
    opt->lr = (float)o->lr;
    opt->eps = (float)o->adam_eps;
    opt->weight_decay = (float)o->weight_decay;
    opt->max_grad_norm = (float)o->max_grad_norm;
    opt->total_steps = o->steps;
    opt->warmup_steps = (int64_t)ceil(o->warmup * (double)o->steps);
    c->batch = o->batch;
    c->seq = o->seq;
    c->micro_batches = 1;
    c->scale = FM_SCALE_COUNT;
    c->comm = j->comm;
}

/* dst (T) = src with the tokens of each segment (a run between [CLS],
 * [SEP] and [PAD]) permuted, a permutation drawn from (seed, row): the same
 * tokens in an order that carries nothing. */
static void pt_shuffle_row(int32_t *dst, const int32_t *src, int T, const fm_mlm_spec *sp, uint64_t seed,
                           uint32_t row) {
    memcpy(dst, src, sizeof *dst * (size_t)T);
    uint64_t draw = 0;
    for (int a = 0; a < T;) {
        if (dst[a] == sp->cls_id || dst[a] == sp->sep_id || dst[a] == sp->pad_id) {
            a++;
            continue;
        }
        int b = a;
        while (b < T && dst[b] != sp->cls_id && dst[b] != sp->sep_id && dst[b] != sp->pad_id) b++;
        for (int i = b - 1; i > a; i--) { /* Fisher-Yates over [a, b) */
            int k = a + (int)fm_rng_below(seed, FM_RNG_EVAL_SHUFFLE, row, 0, draw++, (uint32_t)(i - a + 1));
            int32_t t = dst[i];
            dst[i] = dst[k];
            dst[k] = t;
        }
        a = b;
    }
}

/* Fill and corrupt rows rows[0..n) (global offset example0 in the step); the
 * number of tokens to predict. */
static int64_t pt_fill(void *ctx, fm_batch_buf *bb, const fm_dataset *d, const int32_t *rows, int n,
                       int64_t example0) {
    pt_job *j = ctx;
    fm_batch_fill(bb, d, rows, n, 1, example0);
    const int T = bb->b.T;
    const uint64_t key = j->eval ? FM_PT_EVAL_STEP : (uint64_t)j->e.tr.step;
    fm_mlm_counts k = {0};
    for (int i = 0; i < n; i++) {
        const int32_t *orig = d->ids + (size_t)rows[i] * d->max_len;
        if (j->eval == 2) {
            pt_shuffle_row(j->shuf, orig, T, &j->spec, j->o->seed, (uint32_t)rows[i]);
            orig = j->shuf;
        }
        fm_mlm_corrupt_row(bb->ids + (size_t)i * T, j->labels + (size_t)i * T, orig, T, j->o->seed, key,
                           (uint32_t)rows[i], &j->spec, &k);
    }
    bb->b.ids = bb->ids;
    bb->b.mlm_labels = j->labels;
    bb->b.labels = NULL;
    bb->b.targets = NULL;
    if (!j->eval) {
        j->counts.tokens += k.tokens;
        j->counts.chosen += k.chosen;
        j->counts.masked += k.masked;
        j->counts.random += k.random;
        j->counts.kept += k.kept;
    }
    return k.chosen;
}

/* Sum n doubles over the ranks (one process: as they are). */
static int pt_sum(const pt_job *j, double *x, size_t n) {
    return j->comm ? j->comm->team_sum_doubles(j->comm->ctx, x, n) : FM_OK;
}

/* Mean MLM loss over dataset rows [ev0, ev1), dropout off, split over the
 * ranks, on the engine's activations; shuffled: with each segment's tokens
 * permuted (pt_shuffle_row). */
static int pt_eval(pt_job *j, int shuffled, double *loss) {
    fm_batch_buf *bb = NULL;
    fm_acts *acts = fm_engine_acts(&j->e, &bb);
    const fm_pass pass = {.seed = j->o->seed, .step = 0, .training = 0};
    const int Bl = fm_engine_share_rows(&j->e), per = Bl * j->size;
    int32_t *rows = fm_xmalloc(sizeof(int32_t) * (size_t)Bl);
    double sum[2] = {0, 0};
    j->eval = shuffled ? 2 : 1;
    for (int s = j->ev0; s < j->ev1; s += per) {
        const int nb = j->ev1 - s < per ? j->ev1 - s : per;
        const int lo = (int)((int64_t)j->rank * nb / j->size), hi = (int)((int64_t)(j->rank + 1) * nb / j->size);
        if (hi <= lo) continue;
        for (int i = lo; i < hi; i++) rows[i - lo] = s + i;
        const int64_t np = pt_fill(j, bb, &j->d, rows, hi - lo, lo);
        sum[0] += fm_model_forward(&j->m, acts, &bb->b, &pass, NULL);
        sum[1] += (double)np;
    }
    j->eval = 0;
    free(rows);
    if (pt_sum(j, sum, 2) != FM_OK) return FM_ERR;
    *loss = sum[1] > 0 ? sum[0] / sum[1] : NAN;
    return FM_OK;
}

/* What to do with OUT, as rank 0 sees it; every rank follows. 0: a new run,
 * 1: resume the state, 2: nothing to do (complete), 3: refused. */
static int pt_plan(pt_job *j, int *plan) {
    const fm_pt_opts *o = j->o;
    int v = 0;
    j->have_state = fm_file_exists(j->state_path);
    if (j->rank == 0) {
        if (o->resume && !j->have_state && fm_file_exists(j->wpath)) {
            fm_log("pretrain: %s is complete (no %s to resume from); nothing to do", o->out, FM_PT_STATE_FILE);
            v = 2;
        } else if (!o->force && !o->resume && j->have_state) {
            fm_fail("%s exists: an interrupted pre-training; continue it with --resume, or start over with --force",
                    j->state_path);
            v = 3;
        } else if (!o->force && !(o->resume && j->have_state) && fm_file_exists(j->wpath)) {
            fm_fail("%s already exists (use --force to overwrite it)", j->wpath);
            v = 3;
        } else {
            v = o->resume && j->have_state;
        }
    }
    if (j->comm && j->comm->decide(j->comm->ctx, &v, 1) != FM_OK) return FM_ERR;
    *plan = v;
    if (v == 3 && j->rank != 0) return fm_fail("pretrain: rank 0 refused to write %s", o->out);
    return v == 3 ? FM_ERR : FM_OK;
}
/* Resolve the config: a preset or a config.json, with the vocabulary's size and the MLM head. */
static int make_config(fm_config *c, fm_hfextra *x, const fm_pt_opts *o, int vocab_size) {
    memset(x, 0, sizeof *x);
    if (fm_config_preset(o->config, c) != FM_OK) {
        if (!fm_file_exists(o->config))
            return fm_fail("--config: '%s' is neither a preset (tiny, mini, small, medium, base, large) nor a file",
                           o->config);
        if (fm_hfconfig_read(o->config, c, x) != FM_OK) return FM_ERR;
    }
    fm_clear_error();
    if (o->init && c->vocab_size != vocab_size)
        return fm_fail("--init %s: the model's vocab_size is %d, --vocab %s has %d tokens", o->init, c->vocab_size,
                       o->vocab, vocab_size);
    c->vocab_size = vocab_size;
    c->with_mlm = 1;
    c->num_labels = 0;
    c->with_pooler = 1;
    if (o->dropout >= 0) c->hidden_dropout_prob = c->attention_probs_dropout_prob = (float)o->dropout;
    if (fm_config_check(c) != FM_OK) return fm_fail_prefix("%s: ", o->config);
    if (o->seq > c->max_position_embeddings)
        return fm_fail("--seq %d exceeds the config's max_position_embeddings %d", o->seq, c->max_position_embeddings);
    return FM_OK;
}

/* Tokenize every corpus line (in parallel); units[i] is malloc'd. */
static int tokenize_corpus(const fm_corpus *cp, const fm_tokenizer *tok, const fm_pt_opts *o, int32_t **units,
                           int32_t *lens, int64_t *ntokens) {
    int64_t bad = -1, total = 0;
    char msg[512] = "";
#pragma omp parallel for schedule(dynamic, 256) reduction(+ : total)
    for (int64_t i = 0; i < cp->n; i++) {
        fm_ids ids = {0};
        if (fm_tokenize(tok, cp->line[i], strlen(cp->line[i]), &ids) != FM_OK) {
#pragma omp critical(fm_pt_tok_error)
            if (bad < 0 || i < bad) {
                bad = i;
                snprintf(msg, sizeof msg, "%s", fm_last_error());
            }
        }
        units[i] = ids.ids;
        lens[i] = (int32_t)ids.n;
        total += (int64_t)ids.n;
    }
    if (bad >= 0) return fm_fail("%s:%d: %s", o->corpus[cp->file[bad]], cp->lineno[bad], msg);
    *ntokens = total;
    return FM_OK;
}


/* The options a resumed run must share with the run that saved the state, as
 * compact JSON text (free with free()): the table's (io/options.h), and
 * corpus-content, the CRC-32C of the packed rows (ids and token types). */
static char *options_json(const fm_pt_opts *o, const fm_dataset *d) {
    size_t cells = (size_t)d->n * (size_t)d->max_len;
    char crc[80];
    snprintf(crc, sizeof crc, "%d rows, crc32c %08x %08x", d->n, fm_crc32c(d->ids, cells * sizeof(int32_t)),
             fm_crc32c(d->types, cells * sizeof(int32_t)));
    return fm_pt_opts_json(o, crc);
}

static json_t *counts_json(const fm_mlm_counts *k) {
    json_t *j = json_object();
    json_object_set_new(j, "tokens", json_integer(k->tokens));
    json_object_set_new(j, "chosen", json_integer(k->chosen));
    json_object_set_new(j, "masked", json_integer(k->masked));
    json_object_set_new(j, "random", json_integer(k->random));
    json_object_set_new(j, "kept", json_integer(k->kept));
    return j;
}

/* JSON has no NaN or infinity: such a value is written as null. */
static json_t *num_or_null(double x) { return isfinite(x) ? json_real(x) : json_null(); }

/* Pre-training diverged at step `step` (1-based): the loss or the gradient
 * norm is not finite. The log gets that step's line marked "diverged" (values
 * that are not finite as null) and pretrain.json says "status": "diverged"
 * (writer only); no model is written and nothing already written is removed.
 * Records the message and returns FM_ERR. */
static int pt_diverged(const fm_pt_opts *o, fm_jsonl *log, int writer, int64_t step, double loss, double norm,
                       double lr) {
    const char *what = isfinite(loss) ? "gradient norm" : "loss";
    const double v = isfinite(loss) ? norm : loss;
    int rc = FM_OK;
    if (writer) {
        json_t *l = json_object();
        json_object_set_new(l, "step", json_integer(step));
        json_object_set_new(l, "loss", num_or_null(loss));
        json_object_set_new(l, "lr", num_or_null(lr));
        json_object_set_new(l, "grad_norm", num_or_null(norm));
        json_object_set_new(l, "diverged", json_true());
        rc = fm_jsonl_append(log, l);
        json_decref(l);
        json_t *j = json_object();
        json_object_set_new(j, "status", json_string("diverged"));
        json_object_set_new(j, "diverged_at_step", json_integer(step));
        json_object_set_new(j, "diverged_on", json_string(what));
        json_object_set_new(j, "loss", num_or_null(loss));
        json_object_set_new(j, "grad_norm", num_or_null(norm));
        json_object_set_new(j, "steps", json_integer(o->steps));
        json_object_set_new(j, "lr", json_real(o->lr));
        char *path = fm_path_join(o->out, "pretrain.json");
        if (rc == FM_OK) rc = fm_json_write(path, j);
        free(path);
        json_decref(j);
    }
    if (rc != FM_OK)
        return fm_fail_prefix("pretrain: diverged at step %" PRId64 " (the %s is not finite), and recording it "
                              "failed: ",
                              step, what);
    return fm_fail("pretrain: diverged at step %" PRId64 " of %" PRId64 ": the %s is %s; %s/pretrain.json records "
                   "it (\"status\": \"diverged\") and pretrain_log.jsonl holds the steps before; no model was "
                   "written; try a lower --lr",
                   step, o->steps, what, isnan(v) ? "NaN" : v > 0 ? "+infinity" : "-infinity", o->out);
}


/* The vocabulary, the config, the corpus tokenized and packed into rows. */
static int pt_data(pt_job *j) {
    const fm_pt_opts *o = j->o;
    fm_tokenizer_opts to = fm_tokenizer_default_opts();
    if (fm_tokenizer_load(&j->tok, o->vocab, &to) != FM_OK) return FM_ERR;
    j->tok_ok = 1;
    if (fm_vocab_find(&j->tok.vocab, "[MASK]", 6) < 0)
        return fm_fail("%s: no [MASK] token; masked-LM pre-training needs one", o->vocab);
    if (make_config(&j->c, &j->x, o, j->tok.vocab.n) != FM_OK) return FM_ERR;
    if (fm_corpus_read(&j->cp, o->corpus, o->ncorpus) != FM_OK) return FM_ERR;
    fm_mlm_spec_default(&j->spec, j->tok.cls_id, j->tok.sep_id, j->tok.pad_id, j->tok.mask_id, j->c.vocab_size);
    j->spec.prob = (float)o->mlm_prob;
    const fm_corpus *cp = &j->cp;
    int32_t **units = fm_xcalloc((size_t)cp->n, sizeof(int32_t *));
    int32_t *lens = fm_xcalloc((size_t)cp->n, sizeof(int32_t));
    int64_t ntok = 0;
    int ok = tokenize_corpus(cp, &j->tok, o, units, lens, &ntok) == FM_OK;
    if (ok) fm_mlm_pack(&j->d, (const int32_t *const *)units, lens, cp->n, o->seq, &j->spec);
    for (int64_t i = 0; i < cp->n; i++) free(units[i]);
    free(units);
    free(lens);
    if (!ok) return FM_ERR;
    if (j->res) j->res->tokens = ntok;
    if (j->d.n == 0) return fm_fail("%s: the corpus has no tokens", o->corpus[0]);
    /* Rows are [CLS] A [SEP] B [SEP]: B has token type 1, which needs type_vocab_size 2. */
    int bad;
    if (fm_dataset_check(&j->d, &j->c, &bad) != FM_OK)
        return fm_fail_prefix("--config %s: packed row %d of the corpus: ", o->config, bad);
    j->rows = j->d.n;
    j->heldout = j->rows >= 40 ? (j->rows / 20 < 256 ? j->rows / 20 : 256) : 0;
    j->ntrain = j->rows - j->heldout;
    j->ev0 = j->heldout ? j->ntrain : 0;
    j->ev1 = j->heldout ? j->rows : (j->rows < 64 ? j->rows : 64);
    j->steps_per_epoch = (j->ntrain + o->batch - 1) / o->batch;
    j->opts_json = options_json(o, &j->d);
    return FM_OK;
}

/* --init's weights into j->m: every tensor of the layout, the MLM head too. */
static int pt_init_weights(pt_job *j) {
    char *path = fm_path_join(j->o->init, FM_MODEL_WEIGHTS);
    fm_st_file f;
    int rc = fm_st_open(&f, path);
    if (rc == FM_OK) {
        fm_load_info info = {0};
        rc = fm_load_tensors(&f, &j->c, &j->m.lay, j->m.params, &info);
        if (rc == FM_OK)
            fm_log("pretrain: continuing from %s (%d tensors, %d of them converted to float)", path, info.n_loaded,
                   info.n_converted);
        fm_load_info_free(&info);
        fm_st_close(&f);
    }
    if (rc != FM_OK) fm_fail_prefix("--init: ");
    free(path);
    return rc;
}

/* The model, freshly initialised or from --init, and its engine. */
static int pt_model(pt_job *j) {
    const fm_pt_opts *o = j->o;
    fm_model_alloc(&j->m, &j->c);
    j->model_ok = 1;
    fm_model_init_weights(&j->m, o->seed);
    if (o->init && pt_init_weights(j) != FM_OK) return FM_ERR;
    for (int i = 0; i < j->m.lay.n; i++)
        if (!strncmp(j->m.lay.t[i].name, "pooler.", 7)) j->m.lay.t[i].trains = j->m.lay.t[i].needs_grad = 0; /* no NSP */
    j->ec.data = &j->d;
    j->ec.fill = pt_fill;
    j->ec.fill_ctx = j;
    if (fm_engine_init(&j->e, &j->m, &j->ec) != FM_OK) return FM_ERR;
    j->e_ready = 1;
    j->labels = fm_xmalloc(sizeof(int32_t) * (size_t)fm_engine_share_rows(&j->e) * (size_t)o->seq);
    j->shuf = fm_xmalloc(sizeof(int32_t) * (size_t)o->seq);
    fm_log("pretrain: %" PRId64 " lines, %d rows of %d tokens (%d held out), BERT L=%d H=%d V=%d, %" PRId64
           " steps of %d rows (%.3g epochs), %d rank(s) x %d thread(s)",
           j->cp.n, j->rows, o->seq, j->heldout, j->c.num_hidden_layers, j->c.hidden_size, j->c.vocab_size,
           o->steps, o->batch, (double)o->steps / (double)j->steps_per_epoch, j->size, fm_blas_threads());
    return FM_OK;
}

static int pt_read_state(void *ctx, fm_trainer *tr) {
    pt_job *j = ctx;
    return fm_ptstate_read(j->state_path, &j->m.lay, j->m.params, tr->mom1, tr->mom2, &j->pr, j->opts_json);
}

/* The state of an interrupted run (every rank reads it; rank 0 alone writes
 * it), the held-out loss before the first step, OUT and its log. */
static int pt_start(pt_job *j) {
    const fm_pt_opts *o = j->o;
    j->pr = (fm_pt_progress){.ranks = j->size};
    if (j->resumed) {
        if (fm_engine_agree(&j->e, fm_engine_load(&j->e, pt_read_state, j) == FM_OK) != FM_OK) return FM_ERR;
        if (j->pr.step > o->steps)
            return fm_fail("%s: expected a step of at most %" PRId64 ", found %" PRId64, j->state_path, o->steps,
                           j->pr.step);
        fm_log("pretrain: resuming %s at step %" PRId64 " of %" PRId64 " (state written by %d rank(s))", o->out,
               j->pr.step, o->steps, j->pr.ranks);
    }
    if (!j->resumed && pt_eval(j, 0, &j->pr.loss_initial) != FM_OK) return FM_ERR;
    int ok = 1;
    if (j->rank == 0) {
        char *path = fm_path_join(o->out, "pretrain_log.jsonl");
        ok = fm_mkdirs(o->out) == FM_OK;
        if (ok && o->resume) fm_remove_stale_temps(o->out);
        if (ok && !j->resumed && j->have_state && unlink(j->state_path) != 0)
            ok = fm_fail("%s: cannot remove: %s", j->state_path, strerror(errno)) == FM_OK;
        if (ok) ok = (j->resumed ? fm_jsonl_resume(&j->log, path, j->pr.log_bytes) : fm_jsonl_open(&j->log, path)) == FM_OK;
        free(path);
    }
    /* The counts of the steps before the state are rank 0's share of the sum. */
    if (j->rank == 0)
        j->counts = (fm_mlm_counts){j->pr.counts[0], j->pr.counts[1], j->pr.counts[2], j->pr.counts[3],
                                    j->pr.counts[4]};
    return fm_engine_agree(&j->e, ok);
}

static int pt_diverged_at(void *ctx, int64_t step, const char *what, double loss, double norm, double lr) {
    pt_job *j = ctx;
    (void)what;
    return pt_diverged(j->o, &j->log, j->rank == 0 && j->log_ok, step + 1, loss, norm, lr);
}

/* After step `step` (0-based): the progress, and rank 0's log line every --log-every steps. */
static int pt_logged(void *ctx, int64_t step, int nb, double loss, double norm, double lr) {
    pt_job *j = ctx;
    fm_pt_progress *pr = &j->pr;
    pr->step = step + 1;
    pr->examples += nb;
    pr->window_loss += loss;
    pr->window_n++;
    if (j->rank == 0 && ((step + 1) % j->o->log_every == 0 || step + 1 == j->o->steps)) {
        json_t *l = json_object();
        json_object_set_new(l, "step", json_integer(step + 1));
        json_object_set_new(l, "epoch", json_real((double)(step + 1) / (double)j->steps_per_epoch));
        json_object_set_new(l, "loss", num_or_null(pr->window_loss / (double)pr->window_n));
        json_object_set_new(l, "lr", json_real(lr));
        json_object_set_new(l, "grad_norm", num_or_null(norm));
        if (j->log_ok && fm_jsonl_append(&j->log, l) != FM_OK) j->log_ok = 0; /* reported at the end */
        json_decref(l);
        pr->window_loss = 0;
        pr->window_n = 0;
    }
    return FM_OK;
}

/* Every rank's corruption counts summed (collective). */
static int pt_counts(pt_job *j, fm_mlm_counts *k) {
    double cd[5] = {(double)j->counts.tokens, (double)j->counts.chosen, (double)j->counts.masked,
                    (double)j->counts.random, (double)j->counts.kept};
    if (pt_sum(j, cd, 5) != FM_OK) return FM_ERR;
    *k = (fm_mlm_counts){(int64_t)cd[0], (int64_t)cd[1], (int64_t)cd[2], (int64_t)cd[3], (int64_t)cd[4]};
    return FM_OK;
}

static int pt_write_state(void *ctx, const fm_trainer *tr) {
    pt_job *j = ctx;
    if (!j->log_ok) return fm_fail("%s/pretrain_log.jsonl: a write failed", j->o->out);
    if (fm_jsonl_sync(&j->log, &j->pr.log_bytes) != FM_OK) return FM_ERR;
    return fm_ptstate_write(j->state_path, &j->m.lay, j->m.params, tr->mom1, tr->mom2, &j->pr, j->opts_json);
}

/* A checkpoint after step `step`: every rank takes it at the same step. */
static int pt_save(void *ctx, int64_t step, int sig) {
    pt_job *j = ctx;
    fm_mlm_counts k;
    if (pt_counts(j, &k) != FM_OK) return FM_ERR;
    const int64_t c[5] = {k.tokens, k.chosen, k.masked, k.random, k.kept};
    for (int i = 0; i < 5; i++) j->pr.counts[i] = c[i];
    j->pr.ranks = j->size;
    const double t0 = fm_now();
    if (fm_engine_save(&j->e, pt_write_state, j) != FM_OK) return FM_ERR;
    if (j->rank == 0 && sig)
        fm_log("pretrain: %s: state at step %" PRId64 " written to %s (%.3f s)", sig == SIGTERM ? "SIGTERM" : "SIGUSR1",
               step + 1, j->state_path, fm_now() - t0);
    else if (j->rank == 0)
        fm_debug("pretrain: state at step %" PRId64 " written to %s (%.3f s)", step + 1, j->state_path, fm_now() - t0);
    return FM_OK;
}

/* The steps. */
static int pt_train(pt_job *j, double *seconds) {
    const fm_pt_opts *o = j->o;
    fm_loop l = {.e = &j->e, .what = "pretrain", .first = j->pr.step, .total = o->steps,
                 .steps_per_epoch = j->steps_per_epoch, .n = j->ntrain, .batch = o->batch, .seed = o->seed,
                 .shuffle = 1, .checkpoint_every = o->checkpoint_every, .examples0 = j->pr.examples,
                 .norm_on_bad_loss = 1, .ctx = j, .diverged = pt_diverged_at, .logged = pt_logged, .save = pt_save,
                 .resume_hint = "continue with the same command and --resume"};
    int rc = fm_loop_run(&l);
    *seconds = l.seconds;
    return rc;
}

/* pretrain.json's object. */
static json_t *pt_summary(const pt_job *j, const double loss1[2], const fm_mlm_counts *k) {
    const fm_pt_opts *o = j->o;
    json_t *s = json_object();
    json_object_set_new(s, "steps", json_integer(o->steps));
    json_object_set_new(s, "batch", json_integer(o->batch));
    json_object_set_new(s, "seq", json_integer(o->seq));
    json_object_set_new(s, "lr", json_real(o->lr));
    if (o->init) json_object_set_new(s, "init", json_string(o->init));
    json_object_set_new(s, "warmup_steps", json_integer(j->ec.train.opt.warmup_steps));
    json_object_set_new(s, "seed", json_integer((json_int_t)o->seed));
    json_object_set_new(s, "mlm_prob", json_real(o->mlm_prob));
    json_object_set_new(s, "lines", json_integer(j->cp.n));
    json_object_set_new(s, "rows", json_integer(j->rows));
    json_object_set_new(s, "heldout_rows", json_integer(j->heldout));
    json_object_set_new(s, "epochs", json_real((double)o->steps / (double)j->steps_per_epoch));
    json_object_set_new(s, "eval_loss_initial", num_or_null(j->pr.loss_initial));
    json_object_set_new(s, "eval_loss_final", num_or_null(loss1[0]));
    json_object_set_new(s, "eval_loss_final_shuffled", num_or_null(loss1[1]));
    json_object_set_new(s, "mlm_counts", counts_json(k));
    return s;
}

/* Rank 0's files: the model directory and pretrain.json; then the state is
 * no longer needed, and the directory holds the same files whether or not
 * the run was interrupted. */
static int pt_write(pt_job *j, const double loss1[2], const fm_mlm_counts *k) {
    const fm_pt_opts *o = j->o;
    char seedbuf[32], stepbuf[32];
    snprintf(seedbuf, sizeof seedbuf, "%" PRIu64, o->seed);
    snprintf(stepbuf, sizeof stepbuf, "%" PRId64, o->steps);
    fm_st_meta meta[] = {{"finemask.pretrain_seed", seedbuf}, {"finemask.pretrain_steps", stepbuf}};
    fm_save_opts so = {.vocab = o->vocab, .extra = &j->x, .meta = meta, .nmeta = 2};
    if (fm_modeldir_save(o->out, &j->c, &j->m.lay, j->m.params, &so) != FM_OK) return FM_ERR;
    json_t *summary = pt_summary(j, loss1, k);
    char *path = fm_path_join(o->out, "pretrain.json");
    int rc = fm_json_write(path, summary);
    free(path);
    json_decref(summary);
    if (rc == FM_OK && fm_file_exists(j->state_path) && unlink(j->state_path) != 0)
        rc = fm_fail("%s: cannot remove: %s", j->state_path, strerror(errno));
    return rc;
}

/* After the steps: the held-out loss, the counts, the files. */
static int pt_finish(pt_job *j, double t_train, double t_start) {
    const fm_pt_opts *o = j->o;
    double loss1[2];
    fm_mlm_counts k;
    if (pt_eval(j, 0, &loss1[0]) != FM_OK || pt_eval(j, 1, &loss1[1]) != FM_OK || pt_counts(j, &k) != FM_OK)
        return FM_ERR;
    fm_log("pretrain: held-out MLM loss %.4f -> %.4f in %.1f s (%.1f rows/s); %.4f with each segment's tokens "
           "shuffled",
           j->pr.loss_initial, loss1[0], t_train, (double)(j->pr.examples - j->examples0) / (t_train > 0 ? t_train : 1),
           loss1[1]);
    if (j->res) {
        j->res->eval_loss_initial = j->pr.loss_initial;
        j->res->eval_loss_final = loss1[0];
        j->res->eval_loss_final_shuffled = loss1[1];
        j->res->rows = j->rows;
        j->res->heldout_rows = j->heldout;
    }
    int ok = j->log_ok || fm_fail("%s/pretrain_log.jsonl: a write failed", o->out) == FM_OK;
    if (j->rank == 0 && ok) {
        ok = pt_write(j, loss1, &k) == FM_OK;
        if (ok)
            fm_log("pretrain: done in %.1f s; model directory %s (fingerprint %016" PRIx64 ")", fm_now() - t_start,
                   o->out, fm_params_fingerprint(&j->m.lay, j->m.params));
    }
    return fm_engine_agree(&j->e, ok);
}

static void pt_free(pt_job *j) {
    free(j->wpath);
    free(j->state_path);
    free(j->opts_json);
    if (j->rank == 0) fm_jsonl_close(&j->log);
    free(j->labels);
    free(j->shuf);
    if (j->e_ready) fm_engine_free(&j->e);
    if (j->model_ok) fm_model_free(&j->m);
    fm_dataset_free(&j->d);
    fm_corpus_free(&j->cp);
    fm_hfextra_free(&j->x);
    if (j->tok_ok) fm_tokenizer_free(&j->tok);
    if (j->comm) fm_mpi_comm_free(&j->mc);
}

/* The world: every rank a replica; its threads share the node's cores. */
static int pt_world(pt_job *j) {
    const fm_pt_opts *o = j->o;
    if (fm_world_init(&j->world) != FM_OK) return FM_ERR;
    j->rank = j->world.rank;
    j->size = j->world.size;
    if (j->world.mpi) {
        fm_mpi_comm_world(&j->mc);
        j->comm = &j->mc.comm;
    }
    if (o->threads > 0) {
        omp_set_num_threads(o->threads);
        fm_blas_set_threads(o->threads);
    } else if (j->size > 1 && !getenv("BLIS_NUM_THREADS") && !getenv("OMP_NUM_THREADS")) {
        /* ranks share the node's cores */
        const char *ls = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
        int local = ls ? atoi(ls) : j->size;
        int n = omp_get_num_procs() / (local > 0 ? local : 1);
        if (n < 1) n = 1;
        omp_set_num_threads(n);
        fm_blas_set_threads(n);
    }
    if (j->rank != 0 && fm_verbosity == 1) fm_verbosity = 0;
    return FM_OK;
}

int fm_pretrain(const fm_pt_opts *o, fm_pt_result *res) {
    pt_job j = {.o = o, .res = res, .log_ok = 1};
    if (pt_world(&j) != FM_OK) return FM_ERR;
    const double t_start = fm_now();
    j.wpath = fm_path_join(o->out, FM_MODEL_WEIGHTS);
    j.state_path = fm_path_join(o->out, FM_PT_STATE_FILE);
    /* Signals are caught from the start: one that arrives while the corpus is
     * read and tokenized acts at the first step boundary (stopsig.h). */
    fm_stopsig stopsig = {0};
    if (o->signals) fm_stopsig_catch(&stopsig);
    int plan = 0, rc = pt_plan(&j, &plan);
    j.resumed = plan == 1;
    double t_train = 0;
    /* every rank reads the state: under MPI, OUT must be on a shared file system */
    if (rc == FM_OK && plan != 2) {
        pt_config(&j, o);
        rc = pt_data(&j);
        if (rc == FM_OK) rc = pt_model(&j);
        if (rc == FM_OK) rc = pt_start(&j);
        j.examples0 = j.pr.examples;
        if (rc == FM_OK) rc = pt_train(&j, &t_train);
        if (rc == FM_OK) rc = pt_finish(&j, t_train, t_start);
    }
    fm_stopsig_restore(&stopsig);
    pt_free(&j);
    return rc;
}
