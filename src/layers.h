/* layers.h: BERT's building blocks as forward/backward pairs (after llm.c):
 * outputs first, then inputs, then sizes; gradient buffers are prefixed d.
 * Every backward WRITES the gradient of its activation input and ADDS into
 * weight gradients (a NULL weight-gradient pointer skips that gradient).
 * Matrices are row-major; a "row" is one token unless said otherwise.
 * Every loop over rows is OpenMP-parallel, and every reduction over rows
 * (bias and LayerNorm gradients) runs in a fixed order, so results do not
 * depend on the thread count. A plain _ref version stands beside a kernel
 * whose fast version differs non-trivially; the tests hold them together. */
#ifndef FM_LAYERS_H
#define FM_LAYERS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* ---- dropout keying -------------------------------------------------------
 * A dropout site draws element e's bit from fm_rng (purpose FM_RNG_DROPOUT,
 * step, stream = fm_dropout_stream(layer, site)) at counter
 *   ((example * rows_per_example + row) * row_stride + column),
 * where example is the GLOBAL example index (batch example0 + b). The strides
 * are fixed by the model (max_position_embeddings, hidden size, ...), never
 * by the padded length T or the batch size, so a batch split into
 * micro-batches or across replicas draws exactly the same bits. */
typedef enum {
    FM_SITE_EMBED = 0,     /* embeddings output */
    FM_SITE_ATTN_PROBS = 1, /* attention probabilities */
    FM_SITE_ATTN_OUT = 2,   /* attention output dense */
    FM_SITE_FFN_OUT = 3,    /* output dense (after the intermediate) */
    FM_SITE_HEAD = 4,       /* pooled output, before the classifier */
} fm_drop_site;

/* The stream of (layer, site): layer -1 is the embeddings, L the heads. */
uint32_t fm_dropout_stream(int layer, fm_drop_site site);

/* A dropout site's key. p == 0 (or a NULL key) means no dropout. */
typedef struct {
    float p;       /* drop probability */
    uint64_t seed; /* pass seed */
    uint64_t step; /* optimiser step */
    uint32_t stream;
    int64_t example0; /* global index of batch row 0 */
} fm_drop;

/* 1 when the key drops anything. */
static inline int fm_drop_on(const fm_drop *d) { return d && d->p > 0.0f; }

/* 64-bit words holding one row of n keep-bits (rows never share a word). */
static inline int fm_bits_words(int n) { return (n + 63) / 64; }
static inline int fm_bit(const uint64_t *bits, int j) { return (int)((bits[j >> 6] >> (j & 63)) & 1u); }

/* Keep-bits of n consecutive elements from counter `first`: bit j of bits
 * (fm_bits_words(n) words) is 1 when element first+j is kept, i.e. when its
 * uniform draw u (fm_rng_uniform) satisfies u >= p. */
void fm_dropout_bits(uint64_t *bits, uint64_t seed, uint64_t step, uint32_t stream, uint64_t first, int n, float p);
/* The same, element by element through fm_rng_uniform. */
void fm_dropout_bits_ref(uint64_t *bits, uint64_t seed, uint64_t step, uint32_t stream, uint64_t first, int n,
                         float p);

/* ---- elementwise ---------------------------------------------------------- */

/* out (R,C) = dropout(x + bias) + res (bias (C) and res (R,C) may each be
 * NULL). Row r is position t = r % T of example b = r / T; its counter base
 * is ((example0 + b) * P + t) * C. Writes the keep-bits (R, fm_bits_words(C))
 * when d is on. out may alias x or res. */
void fm_dropout_residual_forward(float *out, uint64_t *bits, const float *x, const float *bias, const float *res,
                                 int R, int C, int T, int P, const fm_drop *d);
/* dx (R,C) = dout * keep / (1 - p) (a copy when d is off); dx may alias dout. */
void fm_dropout_backward(float *dx, const float *dout, const uint64_t *bits, int R, int C, const fm_drop *d);

/* out (N) = a + b. */
void fm_residual_forward(float *out, const float *a, const float *b, size_t N);
/* da += dout and db += dout (either may be NULL). */
void fm_residual_backward(float *da, float *db, const float *dout, size_t N);

/* GELU of x (R,C) + bias (C) (bias may be NULL): pre = x + bias, out =
 * gelu(pre); pre may alias x, and pre NULL does not store it. act picks the
 * erf form 0.5x(1+erf(x/sqrt2)) or the tanh form
 * 0.5x(1+tanh(sqrt(2/pi)(x+0.044715x^3))). */
void fm_gelu_forward(float *out, float *pre, const float *x, const float *bias, int R, int C, fm_act act);
/* dx (N) = dout * gelu'(pre); dx may alias dout. When out != NULL it also
 * writes out (N) = gelu(pre) again (the backward of the layer after needs
 * it; recomputing is cheaper than keeping it). */
void fm_gelu_backward(float *dx, float *out, const float *dout, const float *pre, size_t N, fm_act act);
/* Plain libm versions of the same (scalar erff / tanhf). */
void fm_gelu_forward_ref(float *out, const float *x, size_t N, fm_act act);
void fm_gelu_backward_ref(float *dx, const float *dout, const float *pre, size_t N, fm_act act);

/* out (N) = tanh(x + bias) over (R,C) with bias (C) or NULL. */
void fm_tanh_forward(float *out, const float *x, const float *bias, int R, int C);
/* dx (N) = dout * (1 - out^2); dx may alias dout. */
void fm_tanh_backward(float *dx, const float *dout, const float *out, size_t N);

/* ---- embeddings ----------------------------------------------------------- */

/* out (B,T,H) = word[ids] + pos[t] + type[type_ids] (type_ids NULL: all 0). */
void fm_embed_sum_forward(float *out, const int32_t *ids, const int32_t *type_ids, const float *word,
                          const float *pos, const float *type, int B, int T, int H);
/* dword (V,H) += scatter of dout at ids, skipping pad_id (PyTorch's
 * padding_idx: that row gets no gradient from the lookup); dpos (P,H) +=;
 * dtype (TV,H) +=. NULL skips a table. Deterministic: parallel over columns. */
void fm_embed_sum_backward(float *dword, float *dpos, float *dtype, const float *dout, const int32_t *ids,
                           const int32_t *type_ids, int pad_id, int B, int T, int H);

/* ---- LayerNorm ------------------------------------------------------------ */

/* out (N,C) = (x - mean) * rstd * g + b per row; saves mean (N), rstd (N)
 * (rstd = 1/sqrt(biased var + eps)). out may alias x only when mean/rstd are
 * kept and x is not needed later. */
void fm_layernorm_forward(float *out, float *mean, float *rstd, const float *x, const float *g, const float *b, int N,
                          int C, float eps);
/* dx (N,C) from dout; dg (C) += sum dout*xhat; db (C) += sum dout (NULL skips).
 * x, mean, rstd are what the forward saw and saved. dx may alias dout. */
void fm_layernorm_backward(float *dx, float *dg, float *db, const float *dout, const float *x, const float *mean,
                           const float *rstd, const float *g, int N, int C);
void fm_layernorm_forward_ref(float *out, float *mean, float *rstd, const float *x, const float *g, const float *b,
                              int N, int C, float eps);

/* ---- linear ---------------------------------------------------------------
 * y = x W^T + b with W stored (N, K) as PyTorch does. x's rows are ldx apart
 * (K for a dense matrix; T*H picks the [CLS] rows of a (B,T,H) tensor). */

/* out (M,N) = x (M,K) W^T + b (b may be NULL). */
void fm_linear_forward(float *out, const float *x, ptrdiff_t ldx, const float *w, const float *b, int M, int K,
                       int N);
/* dx (M,K) = dout W (+= when accumulate, dx == NULL skips); dw (N,K) +=
 * dout^T x; db (N) += column sums of dout (NULL skips each). */
void fm_linear_backward(float *dx, int accumulate, float *dw, float *db, const float *dout, const float *x,
                        ptrdiff_t ldx, const float *w, int M, int K, int N);
void fm_linear_forward_ref(float *out, const float *x, ptrdiff_t ldx, const float *w, const float *b, int M, int K,
                           int N);

/* fm_linear_forward for the B position-0 rows of a (B,T) batch: out (B,N)
 * from x (B rows ldx apart), each row with the bits the call over all B*T
 * rows gives it on BLIS's conventional path (fm_sgemm_rows_of). */
void fm_linear_forward_cls(float *out, const float *x, ptrdiff_t ldx, const float *w, const float *b, int B, int T,
                           int K, int N);
/* fm_linear_backward over B*T rows whose dout is zero except at position 0,
 * given those rows only: dout (B,N), x (B rows ldx apart), dx (B,K). The
 * weight gradient sums the terms in the blocks the full call would
 * (fm_sgemm_sparse_k), so on BLIS's conventional path every output has the
 * full call's bits. */
void fm_linear_backward_cls(float *dx, int accumulate, float *dw, float *db, const float *dout, const float *x,
                            ptrdiff_t ldx, const float *w, int B, int T, int K, int N);

/* db (N) += column sums of dout (M,N), fixed order. */
void fm_bias_backward(float *db, const float *dout, int M, int N);

/* ---- attention ------------------------------------------------------------
 * Per example b and head h (head size hs = H/A, head h is columns
 * [h*hs, (h+1)*hs) of q, k, v):
 *   S = Q K^T / sqrt(hs) + (1 - mask[b, key]) * (-FLT_MAX)   (HF's finfo.min)
 *   probs = softmax_rows(S)
 *   ctx = dropout(probs) V
 * Dropout element (b, h, i, j): counter ((example0+b)*A + h)*P + i)*P + j. */

/* ctx (B,T,H); probs (B,A,T,T) saved; bits (B,A,T,fm_bits_words(T)) saved
 * when d is on. mask (B,T) or NULL for all ones. */
void fm_attention_forward(float *ctx, float *probs, uint64_t *bits, const float *q, const float *k, const float *v,
                          const float *mask, int B, int T, int H, int A, int P, const fm_drop *d);
/* The same over A of a model's Aall heads (a tensor-parallel rank's share):
 * q, k, v, ctx (B,T,H) hold those A heads of size H/A side by side, local
 * head h being the model's head h0 + h*hstep, whose dropout counters it
 * draws. fm_attention_forward is this with Aall = A, h0 = 0, hstep = 1. */
void fm_attention_forward_heads(float *ctx, float *probs, uint64_t *bits, const float *q, const float *k,
                                const float *v, const float *mask, int B, int T, int H, int A, int Aall, int h0,
                                int hstep, int P, const fm_drop *d);
/* dq, dk, dv (B,T,H) from dctx (B,T,H) and what the forward saved. */
void fm_attention_backward(float *dq, float *dk, float *dv, const float *dctx, const float *probs,
                           const uint64_t *bits, const float *q, const float *k, const float *v, int B, int T, int H,
                           int A, const fm_drop *d);
/* The same for the query at position 0 ([CLS]) of each example only, with
 * keys and values at every position: q (B,H) and ctx (B,H) hold one row per
 * example; probs (B,A,T) and bits (B,A,fm_bits_words(T)) are saved. Row 0 of
 * the full computation, with the same dropout counters. */
void fm_attention_cls_forward(float *ctx, float *probs, uint64_t *bits, const float *q, const float *k,
                              const float *v, const float *mask, int B, int T, int H, int A, int P,
                              const fm_drop *d);
/* Its backward: dq (B,H), dk and dv (B,T,H) from dctx (B,H), as the full
 * backward gives when dctx is zero at every position but 0. */
void fm_attention_cls_backward(float *dq, float *dk, float *dv, const float *dctx, const float *probs,
                               const uint64_t *bits, const float *q, const float *k, const float *v, int B, int T,
                               int H, int A, const fm_drop *d);
/* Plain loops, double accumulation, same dropout bits (recomputed from d). */
void fm_attention_forward_ref(float *ctx, float *probs, const float *q, const float *k, const float *v,
                              const float *mask, int B, int T, int H, int A, int P, const fm_drop *d);

/* ---- losses ---------------------------------------------------------------- */

/* Softmax cross-entropy over logits (N,C) with labels (N): returns the SUM of
 * -log softmax[label] over rows whose label is in [0, C) (others, e.g. -100,
 * are ignored); writes probs (N,C) (softmax) when probs != NULL (probs may
 * alias logits). */
float fm_crossentropy_forward(float *probs, const float *logits, const int32_t *labels, int N, int C);
/* dlogits (N,C) = scale * (softmax - onehot(label)) on counted rows, 0 elsewhere. */
void fm_crossentropy_backward(float *dlogits, const float *probs, const int32_t *labels, float scale, int N, int C);

/* Sum over n of (pred - target)^2. */
float fm_mse_forward(const float *pred, const float *target, int N);
/* dpred (N) = scale * 2 (pred - target). */
void fm_mse_backward(float *dpred, const float *pred, const float *target, float scale, int N);

#endif
