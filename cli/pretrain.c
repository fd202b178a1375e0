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
#include "dataset.h"
#include "world.h"
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
#include "rng.h"
#include "runfiles.h"
#include "vocab.h"

/* The corruption key of evaluation rows: a step no training run reaches. */
#define FM_PT_EVAL_STEP UINT64_C(0xFFFFFFFFFFFF)

/* Everything one step or evaluation needs on this rank. */
typedef struct {
    fm_model *m;
    fm_acts *acts;
    fm_batch_buf bb;
    int32_t *labels; /* (Bl, T) */
    int32_t *rows;   /* (Bl) */
    const fm_dataset *d;
    const fm_mlm_spec *spec;
    uint64_t seed;
} pt_work;

/* Fill, corrupt and forward rows rows[0..n) (global offset example0 in the
 * step); returns the summed loss and the chosen count in *npred. */
static double forward_rows(pt_work *w, int n, int64_t example0, uint64_t key_step, const fm_pass *pass,
                           int64_t *npred, fm_mlm_counts *cnt) {
    fm_batch_fill(&w->bb, w->d, w->rows, n, 1, example0);
    const int T = w->bb.b.T;
    fm_mlm_counts k = {0};
    for (int i = 0; i < n; i++) {
        const int32_t *orig = w->d->ids + (size_t)w->rows[i] * w->d->max_len;
        fm_mlm_corrupt_row(w->bb.ids + (size_t)i * T, w->labels + (size_t)i * T, orig, T, w->seed, key_step,
                           (uint32_t)w->rows[i], w->spec, &k);
    }
    w->bb.b.ids = w->bb.ids;
    w->bb.b.mlm_labels = w->labels;
    w->bb.b.labels = NULL;
    w->bb.b.targets = NULL;
    *npred = k.chosen;
    if (cnt) {
        cnt->tokens += k.tokens;
        cnt->chosen += k.chosen;
        cnt->masked += k.masked;
        cnt->random += k.random;
        cnt->kept += k.kept;
    }
    return fm_model_forward(w->m, w->acts, &w->bb.b, pass, NULL);
}

/* Mean MLM loss over dataset rows [r0, r1), dropout off, split over the ranks. */
static double eval_loss(pt_work *w, const fm_world *dp, int r0, int r1, int Bl) {
    fm_pass pass = {.seed = w->seed, .step = 0, .training = 0};
    double sum[2] = {0, 0};
    int per = Bl * dp->size;
    for (int s = r0; s < r1; s += per) {
        int nb = r1 - s < per ? r1 - s : per;
        int lo = (int)((int64_t)dp->rank * nb / dp->size), hi = (int)((int64_t)(dp->rank + 1) * nb / dp->size);
        if (hi <= lo) continue;
        for (int i = lo; i < hi; i++) w->rows[i - lo] = s + i;
        int64_t np;
        sum[0] += forward_rows(w, hi - lo, lo, FM_PT_EVAL_STEP, &pass, &np, NULL);
        sum[1] += (double)np;
    }
    fm_world_sum_doubles(dp, sum, 2);
    return sum[1] > 0 ? sum[0] / sum[1] : NAN;
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

int fm_pretrain(const fm_pt_opts *o, fm_pt_result *res) {
    fm_world dp;
    if (fm_world_init(&dp) != FM_OK) return FM_ERR;
    if (o->threads > 0) {
        omp_set_num_threads(o->threads);
        fm_blas_set_threads(o->threads);
    } else if (dp.size > 1 && !getenv("BLIS_NUM_THREADS") && !getenv("OMP_NUM_THREADS")) {
        /* ranks share the node's cores */
        const char *ls = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
        int local = ls ? atoi(ls) : dp.size;
        int n = omp_get_num_procs() / (local > 0 ? local : 1);
        if (n < 1) n = 1;
        omp_set_num_threads(n);
        fm_blas_set_threads(n);
    }
    if (dp.rank != 0 && fm_verbosity == 1) fm_verbosity = 0;
    const double t_start = fm_now();
    int rc = FM_ERR;
    fm_tokenizer tok;
    int tok_ok = 0;
    fm_corpus cp = {0};
    fm_hfextra x = {0};
    fm_config c;
    fm_dataset d = {0};
    fm_model m = {0};
    int model_ok = 0;
    pt_work w = {0};
    float *mom1 = NULL, *mom2 = NULL;
    uint32_t *perm = NULL;
    fm_jsonl log = {0};
    json_t *summary = NULL;
    char *path = NULL, *wpath = fm_path_join(o->out, FM_MODEL_WEIGHTS);
    char *state_path = fm_path_join(o->out, FM_PT_STATE_FILE), *opts_json = NULL;
    /* Signals are caught from the start: one that arrives while the corpus is
     * read and tokenized acts at the first step boundary (stopsig.h). */
    fm_stopsig stopsig = {0};
    if (o->signals) fm_stopsig_catch(&stopsig);
    const int have_state = fm_file_exists(state_path);

    /* What to do with OUT, as rank 0 sees it; every rank follows (the sum
     * of rank 0's code and the others' zeros). 0: a new run, 1: resume the
     * state, 2: nothing to do (complete), 3: refused. */
    double plan = 0;
    if (dp.rank == 0) {
        if (o->resume && !have_state && fm_file_exists(wpath)) {
            fm_log("pretrain: %s is complete (no %s to resume from); nothing to do", o->out, FM_PT_STATE_FILE);
            plan = 2;
        } else if (!o->force && !o->resume && have_state) {
            fm_fail("%s exists: an interrupted pre-training; continue it with --resume, or start over with --force",
                    state_path);
            plan = 3;
        } else if (!o->force && !(o->resume && have_state) && fm_file_exists(wpath)) {
            fm_fail("%s already exists (use --force to overwrite it)", wpath);
            plan = 3;
        } else {
            plan = o->resume && have_state;
        }
    }
    fm_world_sum_doubles(&dp, &plan, 1);
    if (plan == 3) {
        if (dp.rank != 0) fm_fail("pretrain: rank 0 refused to write %s", o->out);
        goto done;
    }
    if (plan == 2) {
        rc = FM_OK;
        goto done;
    }
    /* every rank reads the state: under MPI, OUT must be on a shared file system */
    const int resumed = plan == 1;
    fm_tokenizer_opts to = fm_tokenizer_default_opts();
    if (fm_tokenizer_load(&tok, o->vocab, &to) != FM_OK) goto done;
    tok_ok = 1;
    if (fm_vocab_find(&tok.vocab, "[MASK]", 6) < 0) {
        fm_fail("%s: no [MASK] token; masked-LM pre-training needs one", o->vocab);
        goto done;
    }
    if (make_config(&c, &x, o, tok.vocab.n) != FM_OK) goto done;
    if (fm_corpus_read(&cp, o->corpus, o->ncorpus) != FM_OK) goto done;

    /* tokenize and pack */
    fm_mlm_spec spec;
    fm_mlm_spec_default(&spec, tok.cls_id, tok.sep_id, tok.pad_id, tok.mask_id, c.vocab_size);
    spec.prob = (float)o->mlm_prob;
    {
        int32_t **units = fm_xcalloc((size_t)cp.n, sizeof(int32_t *));
        int32_t *lens = fm_xcalloc((size_t)cp.n, sizeof(int32_t));
        int64_t ntok = 0;
        int ok = tokenize_corpus(&cp, &tok, o, units, lens, &ntok) == FM_OK;
        if (ok) fm_mlm_pack(&d, (const int32_t *const *)units, lens, cp.n, o->seq, &spec);
        for (int64_t i = 0; i < cp.n; i++) free(units[i]);
        free(units);
        free(lens);
        if (!ok) goto done;
        if (res) res->tokens = ntok;
        if (d.n == 0) {
            fm_fail("%s: the corpus has no tokens", o->corpus[0]);
            goto done;
        }
        /* Rows are [CLS] A [SEP] B [SEP]: B has token type 1, which needs type_vocab_size 2. */
        int bad;
        if (fm_dataset_check(&d, &c, &bad) != FM_OK) {
            fm_fail_prefix("--config %s: packed row %d of the corpus: ", o->config, bad);
            goto done;
        }
    }
    const int rows = d.n;
    const int heldout = rows >= 40 ? (rows / 20 < 256 ? rows / 20 : 256) : 0;
    const int ntrain = rows - heldout;
    const int ev0 = heldout ? ntrain : 0, ev1 = heldout ? rows : (rows < 64 ? rows : 64);
    const int B = o->batch;
    const int Bl = (B + dp.size - 1) / dp.size;
    const int64_t steps_per_epoch = (ntrain + B - 1) / B;
    opts_json = options_json(o, &d);

    /* the model */
    fm_model_alloc(&m, &c);
    model_ok = 1;
    fm_model_init_weights(&m, o->seed);
    for (int i = 0; i < m.lay.n; i++)
        if (!strncmp(m.lay.t[i].name, "pooler.", 7)) m.lay.t[i].trains = m.lay.t[i].needs_grad = 0; /* no NSP */

    fm_adamw opt;
    fm_adamw_default(&opt);
    opt.lr = (float)o->lr;
    opt.eps = (float)o->adam_eps;
    opt.weight_decay = (float)o->weight_decay;
    opt.max_grad_norm = (float)o->max_grad_norm;
    opt.total_steps = o->steps;
    opt.warmup_steps = (int64_t)ceil(o->warmup * (double)o->steps);

    w.m = &m;
    w.d = &d;
    w.spec = &spec;
    w.seed = o->seed;
    w.acts = fm_acts_new(&c, Bl, o->seq, 0, c.num_hidden_layers);
    fm_batch_buf_alloc(&w.bb, Bl, o->seq);
    w.labels = fm_xmalloc(sizeof(int32_t) * (size_t)Bl * (size_t)o->seq);
    w.rows = fm_xmalloc(sizeof(int32_t) * (size_t)Bl);
    mom1 = fm_xalloc_floats(m.lay.numel);
    mom2 = fm_xalloc_floats(m.lay.numel);
    perm = fm_xmalloc(sizeof(uint32_t) * (size_t)(ntrain ? ntrain : 1));

    fm_log("pretrain: %" PRId64 " lines, %d rows of %d tokens (%d held out), BERT L=%d H=%d V=%d, %" PRId64
           " steps of %d rows (%.3g epochs), %d rank(s) x %d thread(s)",
           cp.n, rows, o->seq, heldout, c.num_hidden_layers, c.hidden_size, c.vocab_size, o->steps, B,
           (double)o->steps / (double)steps_per_epoch, dp.size, fm_blas_threads());

    /* The state of an interrupted run: every rank reads it (rank 0 alone writes it). */
    fm_pt_progress pr = {.ranks = dp.size};
    int ok = 1, log_ok = 1;
    if (resumed) {
        ok = fm_ptstate_read(state_path, &m.lay, m.params, mom1, mom2, &pr, opts_json) == FM_OK;
        if (!fm_world_all_ok(&dp, ok)) {
            if (ok) fm_fail("pretrain: another rank could not read %s", state_path);
            goto done;
        }
        if (pr.step > o->steps) {
            fm_fail("%s: expected a step of at most %" PRId64 ", found %" PRId64, state_path, o->steps, pr.step);
            goto done;
        }
        fm_log("pretrain: resuming %s at step %" PRId64 " of %" PRId64 " (state written by %d rank(s))", o->out,
               pr.step, o->steps, pr.ranks);
    }
    const double loss0 = resumed ? pr.loss_initial : eval_loss(&w, &dp, ev0, ev1, Bl);
    pr.loss_initial = loss0;
    if (dp.rank == 0) {
        path = fm_path_join(o->out, "pretrain_log.jsonl");
        ok = fm_mkdirs(o->out) == FM_OK;
        if (ok && o->resume) fm_remove_stale_temps(o->out);
        if (ok && !resumed && have_state && unlink(state_path) != 0)
            ok = fm_fail("%s: cannot remove: %s", state_path, strerror(errno)) == FM_OK;
        if (ok) ok = (resumed ? fm_jsonl_resume(&log, path, pr.log_bytes) : fm_jsonl_open(&log, path)) == FM_OK;
        free(path);
        path = NULL;
    }
    if (!fm_world_all_ok(&dp, ok)) {
        if (ok) fm_fail("pretrain: rank 0 could not create %s", o->out);
        goto done;
    }
    fm_progress prog;
    fm_progress_start(&prog, "pretrain", pr.step, o->steps);
    /* The counts of the steps before the state are rank 0's share of the sum. */
    fm_mlm_counts counts = {0};
    if (dp.rank == 0)
        counts = (fm_mlm_counts){pr.counts[0], pr.counts[1], pr.counts[2], pr.counts[3], pr.counts[4]};
    double window = pr.window_loss;
    int64_t window_n = pr.window_n, examples = pr.examples, cur_epoch = -1;
    const int64_t examples0 = examples;
    const double t_loop = fm_now();
    for (int64_t step = pr.step; step < o->steps; step++) {
        int64_t epoch = step / steps_per_epoch, pos = step % steps_per_epoch;
        /* The order of an epoch is a function of (seed, epoch) alone. */
        if (epoch != cur_epoch) {
            fm_rng_permutation(o->seed, FM_RNG_SHUFFLE, (uint64_t)epoch, 0, perm, (uint32_t)ntrain);
            cur_epoch = epoch;
        }
        int first = (int)(pos * B), nb = ntrain - first < B ? ntrain - first : B;
        int lo = (int)((int64_t)dp.rank * nb / dp.size), hi = (int)((int64_t)(dp.rank + 1) * nb / dp.size);
        fm_model_zero_grads(&m);
        fm_pass pass = {.seed = o->seed, .step = (uint64_t)step, .training = 1};
        /* loss, predictions, and this rank's SIGTERM and SIGUSR1 flags, each
         * summed over the ranks on its own (stopsig.h): a signal seen by any
         * rank acts on all at this step, SIGUSR1 on several ranks still as SIGUSR1. */
        double red[4] = {0, 0, (double)fm_stopsig_term(), (double)fm_stopsig_usr1()};
        int64_t np = 0;
        if (hi > lo) {
            for (int i = lo; i < hi; i++) w.rows[i - lo] = (int32_t)perm[first + i];
            red[0] = forward_rows(&w, hi - lo, lo, (uint64_t)step, &pass, &np, &counts);
            red[1] = (double)np;
        }
        fm_world_sum_doubles(&dp, red, 4);
        const int sig = fm_stopsig_combine(red[2], red[3]);
        double loss = red[1] > 0 ? red[0] / red[1] : 0;
        if (red[1] > 0 && hi > lo) fm_model_backward(&m, w.acts, &w.bb.b, &pass, (float)(1.0 / red[1]));
        fm_world_sum_floats(&dp, m.grads, m.lay.numel);
        double norm = fm_grad_norm(&m.lay, m.grads);
        if (!isfinite(loss) || !isfinite(norm)) {
            /* Diverged: stop before the update (every rank has the same sums). */
            fm_progress_end(&prog);
            pt_diverged(o, &log, dp.rank == 0 && log_ok, step + 1, loss, norm, opt.lr * fm_lr_factor(&opt, step));
            goto done;
        }
        double factor = fm_adamw_step(&opt, &m.lay, m.params, m.grads, mom1, mom2, step, norm, NULL);
        examples += nb;
        window += loss;
        window_n++;
        if (dp.rank == 0 && ((step + 1) % o->log_every == 0 || step + 1 == o->steps)) {
            json_t *l = json_object();
            json_object_set_new(l, "step", json_integer(step + 1));
            json_object_set_new(l, "epoch", json_real((double)(step + 1) / (double)steps_per_epoch));
            json_object_set_new(l, "loss", num_or_null(window / (double)window_n));
            json_object_set_new(l, "lr", json_real(opt.lr * factor));
            json_object_set_new(l, "grad_norm", num_or_null(norm));
            if (log_ok && fm_jsonl_append(&log, l) != FM_OK) log_ok = 0; /* reported at the end */
            json_decref(l);
            window = 0;
            window_n = 0;
        }
        fm_progress_update(&prog, step + 1, examples - examples0, loss, opt.lr * factor);
        int periodic = o->checkpoint_every > 0 && (step + 1) % o->checkpoint_every == 0 && step + 1 < o->steps;
        if (periodic || sig) {
            /* every rank takes this branch at the same step */
            double cd[5] = {(double)counts.tokens, (double)counts.chosen, (double)counts.masked,
                            (double)counts.random, (double)counts.kept};
            fm_world_sum_doubles(&dp, cd, 5);
            pr.step = step + 1;
            pr.window_loss = window;
            pr.window_n = window_n;
            pr.examples = examples;
            for (int k = 0; k < 5; k++) pr.counts[k] = (int64_t)cd[k];
            pr.ranks = dp.size;
            ok = 1;
            if (dp.rank == 0) {
                const double t0 = fm_now();
                if (!log_ok) fm_fail("%s/pretrain_log.jsonl: a write failed", o->out);
                ok = log_ok && fm_jsonl_sync(&log, &pr.log_bytes) == FM_OK &&
                     fm_ptstate_write(state_path, &m.lay, m.params, mom1, mom2, &pr, opts_json) == FM_OK;
                if (ok && sig)
                    fm_log("pretrain: %s: state at step %" PRId64 " written to %s (%.3f s)",
                           sig == SIGTERM ? "SIGTERM" : "SIGUSR1", step + 1, state_path, fm_now() - t0);
                else if (ok)
                    fm_debug("pretrain: state at step %" PRId64 " written to %s (%.3f s)", step + 1, state_path,
                             fm_now() - t0);
            }
            if (!fm_world_all_ok(&dp, ok)) {
                fm_progress_end(&prog);
                if (ok) fm_fail("pretrain: rank 0 could not write %s", state_path);
                goto done;
            }
            if (sig == SIGTERM) {
                fm_progress_end(&prog);
                fm_fail("interrupted by SIGTERM after step %" PRId64 " of %" PRId64
                        "; continue with the same command and --resume",
                        step + 1, o->steps);
                goto done;
            }
            fm_stopsig_served(); /* a SIGUSR1 is served by this save */
        }
        fm_stopsig_test_pause(step + 1);
    }
    fm_progress_end(&prog);
    const double t_train = fm_now() - t_loop;
    const double loss1 = eval_loss(&w, &dp, ev0, ev1, Bl);
    /* every rank corrupted its own rows: sum the counts for the summary */
    double cd[5] = {(double)counts.tokens, (double)counts.chosen, (double)counts.masked, (double)counts.random,
                    (double)counts.kept};
    fm_world_sum_doubles(&dp, cd, 5);
    counts = (fm_mlm_counts){(int64_t)cd[0], (int64_t)cd[1], (int64_t)cd[2], (int64_t)cd[3], (int64_t)cd[4]};
    fm_log("pretrain: held-out MLM loss %.4f -> %.4f in %.1f s (%.1f rows/s)", loss0, loss1, t_train,
           (double)(examples - examples0) / (t_train > 0 ? t_train : 1));
    if (res) {
        res->eval_loss_initial = loss0;
        res->eval_loss_final = loss1;
        res->rows = rows;
        res->heldout_rows = heldout;
    }
    if (!log_ok) {
        fm_fail("%s/pretrain_log.jsonl: a write failed", o->out);
        ok = 0;
    }
    if (dp.rank == 0 && ok) {
        char seedbuf[32], stepbuf[32];
        snprintf(seedbuf, sizeof seedbuf, "%" PRIu64, o->seed);
        snprintf(stepbuf, sizeof stepbuf, "%" PRId64, o->steps);
        fm_st_meta meta[] = {{"finemask.pretrain_seed", seedbuf}, {"finemask.pretrain_steps", stepbuf}};
        fm_save_opts so = {.vocab = o->vocab, .extra = &x, .meta = meta, .nmeta = 2};
        ok = fm_modeldir_save(o->out, &c, &m.lay, m.params, &so) == FM_OK;
        if (ok) {
            summary = json_object();
            json_object_set_new(summary, "steps", json_integer(o->steps));
            json_object_set_new(summary, "batch", json_integer(B));
            json_object_set_new(summary, "seq", json_integer(o->seq));
            json_object_set_new(summary, "lr", json_real(o->lr));
            json_object_set_new(summary, "warmup_steps", json_integer(opt.warmup_steps));
            json_object_set_new(summary, "seed", json_integer((json_int_t)o->seed));
            json_object_set_new(summary, "mlm_prob", json_real(o->mlm_prob));
            json_object_set_new(summary, "lines", json_integer(cp.n));
            json_object_set_new(summary, "rows", json_integer(rows));
            json_object_set_new(summary, "heldout_rows", json_integer(heldout));
            json_object_set_new(summary, "epochs", json_real((double)o->steps / (double)steps_per_epoch));
            json_object_set_new(summary, "eval_loss_initial", num_or_null(loss0));
            json_object_set_new(summary, "eval_loss_final", num_or_null(loss1));
            json_object_set_new(summary, "mlm_counts", counts_json(&counts));
            path = fm_path_join(o->out, "pretrain.json");
            ok = fm_json_write(path, summary) == FM_OK;
        }
        /* Finished: the state is no longer needed, and the directory holds the
         * same files whether or not the run was interrupted. */
        if (ok && fm_file_exists(state_path) && unlink(state_path) != 0)
            ok = fm_fail("%s: cannot remove: %s", state_path, strerror(errno)) == FM_OK;
        if (ok)
            fm_log("pretrain: done in %.1f s; model directory %s (fingerprint %016" PRIx64 ")", fm_now() - t_start,
                   o->out, fm_params_fingerprint(&m.lay, m.params));
    }
    if (!fm_world_all_ok(&dp, ok)) {
        if (ok) fm_fail("pretrain: rank 0 failed to write %s", o->out);
        goto done;
    }
    rc = FM_OK;
done:
    fm_stopsig_restore(&stopsig);
    free(path);
    free(wpath);
    free(state_path);
    free(opts_json);
    json_decref(summary);
    if (dp.rank == 0) fm_jsonl_close(&log);
    free(perm);
    fm_free_aligned(mom1);
    fm_free_aligned(mom2);
    free(w.labels);
    free(w.rows);
    fm_batch_buf_free(&w.bb);
    if (w.acts) fm_acts_free(w.acts);
    if (model_ok) fm_model_free(&m);
    fm_dataset_free(&d);
    fm_corpus_free(&cp);
    fm_hfextra_free(&x);
    if (tok_ok) fm_tokenizer_free(&tok);
    return rc;
}
