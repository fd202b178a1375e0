/* pretrain.h: masked-language-model pre-training of a BERT from plain text,
 * on one process or data-parallel over the MPI ranks (the training engine,
 * src/engine.h, with the replicas strategy over mpi/comm.h's world table). */
#ifndef FM_PRETRAIN_H
#define FM_PRETRAIN_H

#include <stdint.h>

typedef struct {
    const char *const *corpus; /* text files */
    int ncorpus;
    const char *config;        /* preset name or config.json */
    const char *vocab;         /* vocab.txt */
    const char *out;           /* model directory to write */
    int64_t steps;             /* optimiser steps (1000) */
    int batch;                 /* rows per step over all ranks (32) */
    int seq;                   /* row length in tokens (128) */
    double lr;                 /* peak learning rate (1e-4) */
    double warmup;             /* fraction of the steps with linear warm-up (0.1) */
    double weight_decay;       /* 0.01 */
    double adam_eps;           /* 1e-6, as BERT pre-training */
    double max_grad_norm;      /* 1.0 */
    double mlm_prob;           /* 0.15 */
    double dropout;            /* < 0: as the config says */
    uint64_t seed;             /* initialisation, data order, corruption, dropout (0) */
    int64_t log_every;         /* a log.jsonl line every N steps (50) */
    int threads;               /* 0: default */
    int force;                 /* overwrite an existing model (and discard a saved state) */
    /* Interruption (all off by default; `finemask pretrain` turns signals on): */
    int signals;               /* SIGTERM saves OUT/state.safetensors and stops, SIGUSR1 saves and goes on */
    int64_t checkpoint_every;  /* also save the state every N steps (0: only on a signal) */
    int resume;                /* continue from OUT/state.safetensors when it exists */
} fm_pt_opts;

void fm_pt_opts_default(fm_pt_opts *o);

/* Summary of a finished run (may be passed as NULL). */
typedef struct {
    double eval_loss_initial, eval_loss_final; /* MLM loss on the held-out rows, before and after */
    int64_t rows, heldout_rows, tokens;
} fm_pt_result;

/* Pre-train and write o->out (rank 0 writes; every rank returns the same code).
 * A run stopped by SIGTERM (o->signals) saves its state and returns FM_ERR
 * with an "interrupted" message; resumed (o->resume) it ends with the same
 * model directory, byte for byte, as an uninterrupted run. */
int fm_pretrain(const fm_pt_opts *o, fm_pt_result *res);

#endif
