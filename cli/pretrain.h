/* pretrain.h: masked-language-model pre-training of a BERT from plain text,
 * on one process or data-parallel over the MPI ranks (the training engine,
 * src/engine.h, with the replicas strategy over mpi/comm.h's world table). */
#ifndef FM_PRETRAIN_H
#define FM_PRETRAIN_H

#include <stdint.h>

/* fm_pt_opts, a run's options, and fm_pt_opts_default are generated from
 * the option table (src/opts.h). */
#include "opts.h"

/* Summary of a finished run (may be passed as NULL). */
typedef struct {
    double eval_loss_initial, eval_loss_final; /* MLM loss on the held-out rows, before and after */
    double eval_loss_final_shuffled;           /* after, with each segment's tokens permuted */
    int64_t rows, heldout_rows, tokens;
} fm_pt_result;

/* Pre-train and write o->out (rank 0 writes; every rank returns the same code).
 * A run stopped by SIGTERM (o->signals) saves its state and returns FM_ERR
 * with an "interrupted" message; resumed (o->resume) it ends with the same
 * model directory, byte for byte, as an uninterrupted run. */
int fm_pretrain(const fm_pt_opts *o, fm_pt_result *res);

#endif
