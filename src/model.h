/* model.h: BERT as HuggingFace's BertModel computes it, forward and backward,
 * in pieces a pipeline stage can run: the embeddings, any contiguous range of
 * encoder layers, the task head, the MLM head.
 *
 * Conventions (after llm.c): outputs first, then inputs; gradient buffers are
 * prefixed d; every backward ADDS into the model's gradient array (so
 * micro-batches accumulate) for tensors with needs_grad, and writes (not adds)
 * the gradient of its input. The forward reads weights only through m->w, so
 * a caller may point a view at other storage (a supermask's effective weights).
 * Results do not depend on the thread count: reductions run in a fixed order.
 * Dropout bits come from rng.h keyed by (seed, step, layer and site, global
 * example index, position within the example), so a batch split across
 * replicas or micro-batches draws the same bits as the whole batch. */
#ifndef FM_MODEL_H
#define FM_MODEL_H

#include <stdint.h>

#include "config.h"
#include "layers.h"
#include "params.h"

typedef struct fm_model fm_model;

/* A hook called just before a piece of the model reads its weights, in the
 * forward and again in the backward: piece -1 is the embeddings, 0..L-1 an
 * encoder layer, L the pooler and task head. It may repoint the piece's
 * fields of m->w at other storage (a supermask materialises theta~ ⊙ mu of
 * one piece at a time into a scratch buffer this way). */
typedef void (*fm_weights_fn)(void *ctx, fm_model *m, int piece);

struct fm_model {
    fm_config cfg;
    fm_layout lay;
    float *params; /* (lay.numel) */
    float *grads;  /* (lay.numel) */
    /* A pipeline stage's model (fm_model_alloc_stage) holds its own tensors
     * only: own[i] says whether it holds tensor i, and params, grads (and a
     * trainer's nu and moments) are memory over [own_begin, own_end) only,
     * the elements of its tensors, and address space without access
     * elsewhere (fm_xalloc_floats_part): the views of the other tensors
     * point where a read faults. own is NULL when the model is whole. */
    unsigned char *own; /* [lay.n] or NULL */
    size_t own_begin, own_end;
    fm_view w;     /* views into params: what the forward reads */
    fm_view g;     /* views into grads */
    fm_weights_fn weights_fn; /* NULL: none (fm_model_alloc) */
    void *weights_ctx;
    /* Tensor parallelism (fm_model_shard): lay is rank lay.tp_rank's shard
     * layout of lay.tp_size, whole the whole model's layout (for files;
     * n == 0 on a model that is not split), and each encoder layer sums its
     * row-parallel products and its input gradients over the ranks with
     * tp_sum (four sums of B*T*H floats per layer, forward and backward;
     * see mpi/tp.h for the math). */
    fm_layout whole;
    int (*tp_sum)(void *ctx, float *x, size_t n);
    void *tp_ctx;
};

/* One batch of B sequences of T tokens (T is the padded length). */
typedef struct {
    int B, T;
    const int32_t *ids;        /* (B, T) token ids */
    const int32_t *type_ids;   /* (B, T) token type ids, or NULL for all 0 */
    const float *attn_mask;    /* (B, T) 1 for real tokens, 0 for padding; NULL for all 1 */
    const int32_t *labels;     /* (B) class index, for num_labels >= 2 */
    const float *targets;      /* (B) regression target, for num_labels == 1 */
    const int32_t *mlm_labels; /* (B, T) token id to predict, -100 where none */
    int64_t example0;          /* global index (within the step) of row 0, for dropout */
} fm_batch;

/* What one pass is: training (dropout on) or not, and the dropout counters. */
typedef struct {
    uint64_t seed; /* dropout seed */
    uint64_t step; /* optimiser step */
    int training;  /* 1: dropout as configured; 0: no dropout */
    /* 1: the caller reads only the [CLS] rows of the last hidden state (the
     * sequence-classification/regression head). The model's final layer
     * (num_hidden_layers - 1) then computes keys and values at every
     * position but everything after them (queries, attention, output dense,
     * FFN, LayerNorms) at position 0 only, forward and backward; its output
     * is zero at the other positions. The loss, logits and gradients are the
     * full computation's: the same dropout keys, row-wise kernels, and
     * GEMMs made to take BLIS's path and k blocks of the full-size calls,
     * so bit for bit whenever BLIS runs those through its conventional path
     * (B*T >= 512 rows at BERT's sizes); on its small-matrix path (tiny
     * models, short batches) they differ by float rounding. Ignored when the
     * config has an MLM head or no task head. 0 (the default): every
     * position. */
    int cls_only_last;
} fm_pass;

/* The dropout of site `site` of layer `layer` (-1: the embeddings) in pass
 * p over batch b, at rate prob while training (0 otherwise, and with p NULL):
 * keyed by p's seed and step, the site's stream and b's example0. */
fm_drop fm_pass_drop(const fm_batch *b, const fm_pass *p, int layer, fm_drop_site site, float prob);

/* Activations saved by the forward for the backward, for batches up to
 * (B, T), covering the embeddings (when l0 == 0), encoder layers [l0, l1)
 * and the heads (when l1 == L). */
typedef struct fm_acts fm_acts;

/* For training: every layer's saved tensors and the backward's scratch. The
 * gradient buffers of fm_model_backward and those between the layers of a
 * multi-layer fm_encoder_backward are allocated at their first use, so a
 * caller that runs the backward in pieces (layer by layer) does not hold
 * them. */
fm_acts *fm_acts_new(const fm_config *c, int B, int T, int l0, int l1);
/* For evaluation: forward passes only (no backward may use it). One layer's
 * tensors serve every layer in turn, and there is no backward scratch and no
 * gradient buffer: about (1 + 1/L') of one layer's share instead of L' layers'
 * (L' = l1 - l0). The forward computes the same bits as with fm_acts_new. */
fm_acts *fm_acts_new_forward(const fm_config *c, int B, int T, int l0, int l1);
void fm_acts_free(fm_acts *a);
/* fm_acts_new (forward_only 0) or fm_acts_new_forward (1) for the layers
 * as m holds them: on a tensor-parallel shard (fm_model_shard) q, k, v, the
 * context and the attention probabilities of its heads, and the
 * intermediate features of its share, only. */
fm_acts *fm_acts_new_for(const fm_model *m, int B, int T, int l0, int l1, int forward_only);
size_t fm_acts_size_for(const fm_model *m, int B, int T, int l0, int l1, int forward_only);
/* Bytes held by a (those allocated at first use once they are). */
size_t fm_acts_bytes(const fm_acts *a);
/* What fm_acts_bytes of a new set (fm_acts_new, or fm_acts_new_forward when
 * forward_only) is, without allocating it. */
size_t fm_acts_size(const fm_config *c, int B, int T, int l0, int l1, int forward_only);

/* Allocate params and grads (zeroed) for config c and bind the views. */
void fm_model_alloc(fm_model *m, const fm_config *c);
/* The same for pipeline stage `stage` of `nstages` (fm_layout_stage): only
 * its tensors' elements are memory. nstages <= 1 is fm_model_alloc. */
void fm_model_alloc_stage(fm_model *m, const fm_config *c, int stage, int nstages);
void fm_model_free(fm_model *m);
/* dst = tensor-parallel rank `rank` of P's shares of src (fm_layout_shard;
 * params copied, grads zeroed; tp_sum unset: the engine sets it), holding
 * the tensors of pipeline stage `stage` of `nstages` only (as
 * fm_model_alloc_stage; nstages 1: all). src holds at least those tensors
 * whole (a whole model, or that stage's). P must divide the heads. */
void fm_model_shard(fm_model *dst, const fm_model *src, int rank, int P, int stage, int nstages);
/* Allocate that shard of config c directly (zeroed, as fm_model_alloc; no
 * whole tensor of a split one is ever allocated). */
void fm_model_alloc_shard(fm_model *m, const fm_config *c, int rank, int P, int stage, int nstages);
/* 1 when m holds tensor i (always, for a whole model). */
static inline int fm_model_holds(const fm_model *m, int i) { return !m->own || m->own[i]; }
/* A float array of m's layout, memory where m holds its tensors (zeroed);
 * free with fm_model_free_floats. */
float *fm_model_alloc_floats(const fm_model *m);
void fm_model_free_floats(const fm_model *m, float *p);
/* BERT's initialisation: matrices and embeddings N(0, initializer_range^2)
 * from rng.h (purpose FM_RNG_INIT, stream = tensor index), LayerNorm gains
 * 1, every bias 0. Deterministic in seed. */
void fm_model_init_weights(fm_model *m, uint64_t seed);
/* The same for every tensor without any of skip_flags (FM_T_*): each tensor's
 * values depend only on seed and its index in the layout. */
void fm_model_init_tensors(fm_model *m, uint64_t seed, unsigned skip_flags);
void fm_model_zero_grads(fm_model *m);
/* The tensor that holds the float at p (inside params or grads), or NULL. */
const fm_tensor *fm_model_tensor_at(const fm_model *m, const float *p);

/* Embeddings: x (B,T,H) = dropout(LayerNorm(word[ids] + pos[t] + type[type_ids])). */
void fm_embed_forward(fm_model *m, fm_acts *a, const fm_batch *b, const fm_pass *p, float *x);
void fm_embed_backward(fm_model *m, fm_acts *a, const fm_batch *b, const fm_pass *p, const float *dx);

/* Encoder layers [l0, l1): x_out (B,T,H) from x_in (B,T,H). x_out may not alias x_in. */
void fm_encoder_forward(fm_model *m, fm_acts *a, const fm_batch *b, const fm_pass *p, int l0, int l1,
                        const float *x_in, float *x_out);
/* dx_in (B,T,H) from dx_out (B,T,H); accumulates the weight gradients. */
void fm_encoder_backward(fm_model *m, fm_acts *a, const fm_batch *b, const fm_pass *p, int l0, int l1,
                         const float *dx_out, float *dx_in);

/* Task head on the last hidden state x (B,T,H): pooler tanh(W_p h_CLS + b_p),
 * dropout, classifier. Writes logits (B, num_labels) and returns the SUM over
 * the batch of the per-example loss (cross-entropy, or squared error for
 * num_labels == 1); returns 0 when the batch has no labels/targets. */
float fm_head_forward(fm_model *m, fm_acts *a, const fm_batch *b, const fm_pass *p, const float *x, float *logits);
/* Backward of (scale * that sum): dx (B,T,H) (zero except at [CLS]). */
void fm_head_backward(fm_model *m, fm_acts *a, const fm_batch *b, const fm_pass *p, float scale, float *dx);

/* MLM head: dense + GELU + LayerNorm, decoder tied to the word embeddings,
 * plus bias. Returns the SUM of cross-entropy over positions with
 * mlm_labels != -100, and their count in *npred. */
float fm_mlm_forward(fm_model *m, fm_acts *a, const fm_batch *b, const float *x, int *npred);
void fm_mlm_backward(fm_model *m, fm_acts *a, const fm_batch *b, float scale, float *dx);

/* Backward of scale * (summed loss) through the heads the config has (the
 * task head, the MLM head, both summed): dx (B,T,H), the gradient of the
 * last hidden state, written. a must cover the heads (l1 == L). */
void fm_top_backward(fm_model *m, fm_acts *a, const fm_batch *b, const fm_pass *p, float scale, float *dx);

/* The whole model on one process: embeddings, all layers, task head.
 * Returns the summed loss; logits may be NULL. */
float fm_model_forward(fm_model *m, fm_acts *a, const fm_batch *b, const fm_pass *p, float *logits);
/* Backward of scale * (summed loss) through the whole model. */
void fm_model_backward(fm_model *m, fm_acts *a, const fm_batch *b, const fm_pass *p, float scale);

#endif
