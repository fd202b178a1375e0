/* optim.h: AdamW as BERT fine-tuning uses it (torch.optim.AdamW's update),
 * the linear warm-up / linear decay schedule, and global-norm clipping.
 * Parameters, gradients and both moments share one layout (params.h), so a
 * step is one loop over the tensors that train. */
#ifndef FM_OPTIM_H
#define FM_OPTIM_H

#include <stdint.h>

#include "params.h"

typedef struct {
    float lr;           /* peak learning rate */
    float beta1, beta2; /* 0.9, 0.999 */
    float eps;          /* 1e-8 (torch/HF default) or 1e-6 (original BERT) */
    float weight_decay; /* 0.01, not applied to biases or LayerNorm (tensors without FM_T_DECAY) */
    float max_grad_norm; /* global L2 clipping threshold; <= 0 disables */
    int64_t total_steps;  /* schedule length */
    int64_t warmup_steps; /* linear warm-up length (BERT: 10% of total_steps) */
} fm_adamw;

/* BERT's fine-tuning defaults: lr 2e-5, betas 0.9/0.999, eps 1e-8, wd 0.01, clip 1.0. */
void fm_adamw_default(fm_adamw *o);

/* The schedule factor for update number `step` (0-based), as HuggingFace's
 * get_linear_schedule_with_warmup applies it: step/warmup during warm-up,
 * then (total-step)/(total-warmup), never below 0. The first update of a
 * schedule with warm-up therefore has factor 0, exactly as in HF. */
double fm_lr_factor(const fm_adamw *o, int64_t step);

/* Global L2 norm of g over the tensors with trains = 1 (double accumulation,
 * fixed order: independent of the thread count). Equals
 * fm_grad_norm_sum(lay, sq) after fm_grad_sqnorms(sq, lay, g), bit for bit. */
double fm_grad_norm(const fm_layout *lay, const float *g);

/* The squared L2 norm of each tensor i of g with trains = 1 into sq[i] (0 for
 * the others; sq has lay->n entries): the per-tensor terms of fm_grad_norm. */
void fm_grad_sqnorms(double *sq, const fm_layout *lay, const float *g);

/* The global norm from per-tensor terms: sqrt of sq[i] summed in tensor order
 * over the tensors with trains = 1. Pipeline stages compute the terms of the
 * tensors they hold, sum the arrays across the stages (each entry has one
 * non-zero contributor, so the sum is exact) and get fm_grad_norm's bits. */
double fm_grad_norm_sum(const fm_layout *lay, const double *sq);

/* One AdamW update number `step` (0-based) of every tensor with trains = 1:
 *   g' = g * min(1, max_grad_norm / (norm + 1e-6))   (when clipping is on)
 *   m = b1 m + (1-b1) g';  v = b2 v + (1-b2) g'^2
 *   p = p * (1 - lr_t wd)              (tensors with FM_T_DECAY)
 *   p = p - lr_t / bc1 * m / (sqrt(v) / sqrt(bc2) + eps)
 * with lr_t = lr_scale[tensor] * lr * fm_lr_factor(step) (lr_scale NULL: 1),
 * bc1 = 1 - b1^(step+1), bc2 = 1 - b2^(step+1). `norm` is the global gradient
 * norm (from fm_grad_norm, or the norm after an allreduce). Returns the
 * learning rate factor used. */
double fm_adamw_step(const fm_adamw *o, const fm_layout *lay, float *p, const float *g, float *m, float *v,
                     int64_t step, double norm, const float *lr_scale);

#endif
