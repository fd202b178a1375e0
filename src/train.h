/* train.h: the training step, shaped so that one process, data-parallel
 * replicas and pipeline stages run the same arithmetic.
 *
 * A trainer owns what training adds to a model: the AdamW moments, and in
 * supermask mode the scores nu, the per-step Bernoulli sample mu and a scratch
 * buffer of one model piece. One optimiser step is:
 *
 *   fm_trainer_begin_step(t, step)          zero the gradients; draw mu
 *   fm_trainer_grad(t, acts, batch, scale)  forward + backward of rows, ADDING
 *                                           scale * d(summed loss)/d(theta)
 *                                           into t->m->grads; any number of
 *                                           calls (micro-batches, a replica's
 *                                           share of the rows)
 *   -- the reduction point: the caller may sum t->m->grads (lay.numel floats,
 *      one contiguous array; fm_layout_range gives per-layer buckets) over
 *      replicas here. They hold d L / d theta for every tensor that trains or
 *      is masked; the nu gradients are derived from them in fm_trainer_apply,
 *      element-wise and linearly, so summing theta-gradients is summing
 *      nu-gradients. --
 *   fm_trainer_apply(t, &norm)              clip, AdamW on the parameters that
 *                                           train (full/freeze) or on nu and
 *                                           the task head (supermask); step++
 *
 * Randomness is keyed by global indices only: dropout by (seed, step, global
 * example index = batch.example0 + row), mu by (seed, FM_RNG_MASK, step,
 * tensor index, element index). A batch split over replicas or micro-batches,
 * with scale = 1 / (rows of the whole batch), gives the same gradient sum, and
 * no result depends on the thread count.
 *
 * Supermask: theta = theta~ ⊙ mu, mu_i ~ Bernoulli(sigmoid(nu_i)). theta~ stays
 * in t->m->params and is never written. A weights hook (model.h) materialises
 * theta~ ⊙ mu of one piece (the embeddings, one encoder layer, the pooler)
 * into a scratch buffer just before that piece's forward and again before its
 * backward, so the only full-size additions to the model are nu and its two
 * moments (the moments array also holds the head's). The straight-through
 * gradient: dL/dnu = dL/dtheta ⊙ theta~ ⊙ sigmoid'(nu) (FM_STE_SIGMOID) or
 * dL/dtheta ⊙ theta~ (FM_STE_IDENTITY). No weight decay on nu by default. */
#ifndef FM_TRAIN_H
#define FM_TRAIN_H

#include <stdint.h>

#include "mask.h"
#include "model.h"
#include "optim.h"

typedef enum { FM_TRAIN_FULL = 0, FM_TRAIN_FREEZE = 1, FM_TRAIN_SUPERMASK = 2 } fm_train_mode;
typedef enum { FM_STE_SIGMOID = 0, FM_STE_IDENTITY = 1 } fm_ste;
typedef enum { FM_RANK_GLOBAL = 0, FM_RANK_TENSOR = 1 } fm_init_rank;

/* Which sample fm_trainer_sample draws. */
typedef enum {
    FM_SAMPLE_TRAIN = 0, /* mu for training step `key` (purpose FM_RNG_MASK) */
    FM_SAMPLE_EVAL = 1,  /* evaluation sample number `key` (purpose FM_RNG_MASK_EVAL) */
    FM_SAMPLE_DET = 2,   /* the deterministic mask sigmoid(nu) > 0.5, i.e. nu > 0 */
} fm_sample_kind;

typedef struct {
    fm_train_mode mode;
    uint64_t seed;      /* dropout and mu */
    fm_adamw opt;       /* full/freeze: every parameter that trains; supermask: the task head */
    fm_adamw mask_opt;  /* supermask: nu (its weight_decay is 0 unless set) */
    fm_ste ste;
    const char *mask_glob;   /* supermask: the masked tensors (FM_MASK_DEFAULT_GLOB when NULL) */
    const char *mask_layers; /* supermask: "0-3,8" or NULL for all */
    double init_sparsity;    /* supermask: fraction of nu set to -nu_init */
    double nu_init;          /* supermask: magnitude of the initial nu (5) */
    fm_init_rank init_rank;
    /* A pipeline stage's trainer, whose model holds its own tensors only
     * (fm_model_alloc_stage): the initial ranking over every stage's
     * tensors needs sums over the stages: stages_sum(stages_ctx, x, n) sums
     * n doubles in place over them, and this is stage `stage` of `nstages`.
     * NULL for a whole model. */
    int (*stages_sum)(void *ctx, double *x, size_t n);
    void *stages_ctx;
    int stage, nstages;
    /* A tensor-parallel rank's trainer (its model a shard, fm_model_shard):
     * tp_sum(tp_ctx, x, n) sums n doubles over the ranks of the stage, for
     * the initial ranking. NULL otherwise. */
    int (*tp_sum)(void *ctx, double *x, size_t n);
    void *tp_ctx;
} fm_trainer_opts;

/* Full fine-tuning with BERT's AdamW defaults; supermask defaults: ste
 * sigmoid, init sparsity 0, global ranking, mask_opt = opt with lr 1e-2, no
 * weight decay and eps 1e-12 (nu's gradients are ~1e4 smaller than a
 * weight's, so eps 1e-8 would dominate them). */
void fm_trainer_opts_default(fm_trainer_opts *o);

typedef struct {
    fm_model *m;       /* the model (not owned; outlives the trainer) */
    fm_trainer_opts o;
    int64_t step;      /* updates applied so far */
    /* Full-size arrays (lay.numel), memory only where the model holds its
     * tensors (fm_model_alloc_floats): */
    float *mom1, *mom2; /* (lay.numel) AdamW moments: of the params, or of nu and the head */
    /* supermask only: */
    float *nu;         /* (lay.numel) scores; used where a tensor is masked */
    fm_mask sample;    /* mu of the current step (or an evaluation sample), packed bits (bits NULL
                          for the tensors a pipeline stage's model does not hold) */
    int *masked_of;    /* [lay.n] index into sample.t, or -1 */
    float ***fields;   /* [lay.n] the m->w field that points at a masked tensor */
    fm_layout nu_lay;  /* copy of m->lay: trains = masked */
    fm_layout head_lay; /* copy of m->lay: trains = task head */
    float *scratch;    /* one piece's materialised weights */
    size_t scratch_n;
    size_t masked_numel;
    /* fm_trainer_own: */
    unsigned char *own; /* [lay.n] the tensors this trainer updates, or NULL for all */
    fm_layout own_lay, nu_own, head_own; /* m->lay, nu_lay, head_lay with trains &= own */
} fm_trainer;

/* Set up training of m (whose layout already says which tensors train: see
 * fm_freeze) with o. When m holds some tensors only (a pipeline stage), the
 * trainer owns those (fm_trainer_own with m->own) and allocates nothing for
 * the others. Supermask: mask the tensors o->mask_glob and
 * o->mask_layers name (FM_ERR with a message when they name none), make
 * every other tensor but the task head frozen, initialise nu from
 * o->init_sparsity and install the weights hook. */
int fm_trainer_init(fm_trainer *t, fm_model *m, const fm_trainer_opts *o);
/* Remove the hook and free what the trainer allocated. */
void fm_trainer_free(fm_trainer *t);

/* Start optimiser step `step`: zero the gradients and (supermask) draw mu. */
void fm_trainer_begin_step(fm_trainer *t, int64_t step);
/* Forward and backward of batch b (its rows are global examples b->example0
 * ...), adding scale * gradient of the summed loss to t->m->grads. Returns
 * the summed loss of these rows. acts covers the whole model for b's size. */
double fm_trainer_grad(fm_trainer *t, fm_acts *acts, const fm_batch *b, double scale);
/* The array the caller may sum across replicas between fm_trainer_grad and
 * fm_trainer_apply, and its length. */
float *fm_trainer_grads(fm_trainer *t, size_t *n);
/* The update: derive the nu gradients (supermask), compute the global
 * gradient norm over everything that trains (written to *norm when not NULL),
 * clip and apply AdamW number t->step; then t->step++. Returns the learning
 * rate factor of the schedule. When the norm is not finite (a NaN or an
 * infinity in some gradient) nothing is updated and t->step stays: the
 * caller sees it in *norm and stops (the training has diverged). */
double fm_trainer_apply(fm_trainer *t, double *norm);

/* A pipeline stage's trainer: update only the tensors i with own[i] != 0
 * (lay.n entries, copied; NULL: every tensor, the default). The training
 * sample (fm_trainer_begin_step), the nu gradients, the AdamW step and the
 * parts below then cover only those tensors; the others keep what they hold
 * (stale values, until the caller copies them from the stage that owns them).
 * Call after fm_trainer_init (and fm_trainstate_read may come later). The
 * global gradient norm needs every stage's terms: use fm_trainer_norm_parts,
 * sum the arrays over the stages, then fm_trainer_apply_parts. */
void fm_trainer_own(fm_trainer *t, const unsigned char *own);
/* The first half of fm_trainer_apply: derive the nu gradients (supermask) and
 * write into sq[0..lay.n) the squared gradient norm of every owned tensor
 * that the update covers (0 for the others). */
void fm_trainer_norm_parts(fm_trainer *t, double *sq);
/* The second half: the global norm from the terms sq of every tensor (written
 * to *norm when not NULL), clip and apply AdamW number t->step to the owned
 * tensors; t->step++ (neither when the norm is not finite, as
 * fm_trainer_apply). Returns the learning rate factor. With sq from
 * fm_trainer_norm_parts of every stage summed, the same bits as
 * fm_trainer_apply on one process. */
double fm_trainer_apply_parts(fm_trainer *t, const double *sq, double *norm);

/* Supermask: turn t->m->grads of every masked tensor from dL/dtheta into
 * dL/dnu in place (fm_trainer_apply calls it; exposed for tests). */
void fm_trainer_nu_grads(fm_trainer *t);

/* Supermask: set the current sample (what the forward uses) to `kind`. */
void fm_trainer_sample(fm_trainer *t, fm_sample_kind kind, uint64_t key);
/* Make m->w of one piece (-1 embeddings, 0..L-1 an encoder layer, L pooler and
 * head) read theta~ ⊙ mu of the current sample, in the one-piece scratch
 * buffer (overwriting the piece materialised before). The weights hook calls
 * it before every piece's forward and backward, so a pipeline stage running
 * layers [l0, l1) through model.h gets each of its layers materialised in
 * turn without calling it. No-op outside supermask. */
void fm_trainer_materialise(fm_trainer *t, int piece);

/* Supermask: initialise nu: -t->o.nu_init for the k = round(s * N) entries
 * with the smallest |theta~| (N = masked entries overall for FM_RANK_GLOBAL,
 * or per tensor for FM_RANK_TENSOR), +t->o.nu_init for the rest. Ties in |theta~| go by tensor
 * index, then element index (the earlier one is counted smaller). */
void fm_trainer_init_nu(fm_trainer *t, double s, fm_init_rank rank);

/* Supermask sparsities (fraction of zeros over all masked entries):
 * expected = mean of 1 - sigmoid(nu), of the current sample, deterministic. */
typedef struct {
    double expected, sampled, deterministic;
    size_t numel;
} fm_sparsity;
void fm_trainer_sparsity(fm_trainer *t, fm_sparsity *s);
/* On a tensor-parallel shard (fm_model_shard) the sample of a split tensor
 * is the whole tensor's split: entry j of a share draws the uniform of its
 * index in the whole tensor, and masked_numel counts whole tensors. Its
 * sparsities and norm need the parts of every rank: sum the parts below
 * over the ranks, each whole tensor's counted once (fm_trainer_tp_parts). */
/* Its per-tensor terms, for owned masked tensors (0 elsewhere): parts[3i] the
 * sum of 1 - sigmoid(nu), parts[3i+1] the ones of the current sample,
 * parts[3i+2] the entries with nu <= 0 (lay.n x 3 doubles). */
void fm_trainer_sparsity_parts(fm_trainer *t, double *parts);
/* The sparsities from the terms of every masked tensor (summed over the
 * stages): fm_trainer_sparsity's bits. */
void fm_trainer_sparsity_sum(const fm_trainer *t, const double *parts, fm_sparsity *s);
/* On tensor-parallel rank r > 0: zero the per-tensor terms x[i*k .. i*k+k)
 * of the tensors every rank holds whole, so that a sum over the ranks counts
 * them once (r = 0 and whole models: nothing to do). */
void fm_trainer_tp_parts(const fm_trainer *t, double *x, int k);

#endif
