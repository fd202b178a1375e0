/* bench.h: `finemask bench`'s options, shared by the one-process benchmark
 * (cmd_bench.c) and the benchmark of a layout over MPI ranks (bench_layout.c). */
#ifndef FM_CLI_BENCH_H
#define FM_CLI_BENCH_H

#include <stddef.h>

#include "config.h"
#include "train.h"

typedef struct {
    const char *preset, *mode;
    int B, T, steps, threads, json, mode_v;
    int layers;          /* > 0: num_hidden_layers overridden */
    int stages;          /* pipeline stages (--stages) */
    int tensor_parallel; /* ranks per layer's matrices (--tensor-parallel) */
    int micro_batches;   /* per replica's share, under a pipeline */
    int eval_batch;      /* rows of the evaluation pass */
} fm_bench_opts;

/* Under an MPI launcher: every rank runs o's training steps in the layout
 * (ranks / (stages x tensor_parallel) replicas of `stages` stages), then
 * rank 0 prints every rank's peak resident memory beside the arithmetic of
 * what that rank's share needs. Collective; returns the exit status. */
int fm_bench_layout(const fm_bench_opts *o, const fm_config *cfg);

/* The median of v[0..n) (v is sorted in place). */
double fm_bench_median(double *v, int n);

/* One rank's share of a model's state, in bytes: what `finemask bench`
 * prints beside the measured peak. */
typedef struct {
    double params;  /* the parameters of the tensors it holds */
    double grads;   /* their gradients, for those that train or are masked */
    double moments; /* AdamW's two moments of what it updates */
    double nu;      /* supermask: the scores, one sample's bits, one piece's masked weights */
    double acts;    /* activations */
} fm_bench_share;

/* The share of stage `stage` of `stages` of m trained by tr (its mode and
 * masked tensors): on a tensor-parallel shard its shares; stages 0: the
 * whole model (whole tensors). acts is left 0. */
void fm_bench_share_of(const fm_model *m, const fm_trainer *tr, int stage, int stages, fm_bench_share *s);

#endif
