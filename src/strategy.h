/* strategy.h: the distribution strategies behind the engine (engine.h).
 * Each is an object made by its constructor: a table of operations and the
 * buffers it owns (activations, batch buffers, gradient buffers). */
#ifndef FM_STRATEGY_H
#define FM_STRATEGY_H

#include "engine.h"

struct fm_strategy {
    const char *name;
    int split;  /* 1: the step's rows are split over the replicas (fm_engine_batch) */
    /* forward, backward and sums of e's prepared rows */
    int (*step)(fm_strategy *s, fm_engine *e, fm_step_out *out);
    /* the update: *norm, *factor */
    int (*apply)(fm_strategy *s, fm_engine *e, double *norm, double *factor);
    /* give every rank what `what` names (NULL: nothing to do) */
    int (*sync)(fm_strategy *s, fm_engine *e, fm_sync_what what);
    /* fm_engine_logits (NULL: every rank holds the whole model) */
    int (*logits)(fm_strategy *s, fm_engine *e, const fm_dataset *d, int batch, int row0, int row1, float *logits);
    /* the trainer's sparsities (NULL: fm_trainer_sparsity) */
    int (*sparsity)(fm_strategy *s, fm_engine *e, fm_sparsity *sp);
    /* activations and a batch buffer over the whole model for up to this
     * process's rows of a step, or NULL (a pipeline stage) */
    fm_acts *acts;
    fm_batch_buf *bb;
    /* a pipeline stage's activation sets for training (0: just acts above) */
    int acts_sets;
    /* bytes of the activation sets it holds, and in *buffers those of the
     * activation-sized buffers of a layer's input or output beside them */
    size_t (*bytes)(const fm_strategy *s, size_t *buffers);
    void (*destroy)(fm_strategy *s);
};

/* The constructors: NULL with a message when the settings cannot work. */
fm_strategy *fm_strategy_one(fm_engine *e);
fm_strategy *fm_strategy_replicas(fm_engine *e);
fm_strategy *fm_strategy_pipeline(fm_engine *e);
/* The apply of a strategy whose every rank holds the whole model and its
 * summed gradients (one process, replicas): fm_trainer_apply. */
int fm_strategy_apply_whole(fm_strategy *s, fm_engine *e, double *norm, double *factor);

/* The apply and the sparsities of a strategy whose ranks hold parts of the
 * model: per-tensor terms summed over the stages (stages != 0) and over
 * the tensor-parallel ranks (the tensors each holds whole counted once;
 * before the update, a check that their gradients are the same bits on
 * every tensor-parallel rank of the stage, which lets their updates go
 * unsummed), then AdamW on this rank's tensors and shares. */
int fm_strategy_apply_parts(fm_engine *e, int stages, double *norm, double *factor);
int fm_strategy_sparsity_parts(fm_engine *e, int stages, fm_sparsity *sp);

/* Shared by the strategies. */
/* Fill bb with rows[0..n) (global example0) through the engine's fill. */
int64_t fm_engine_fill(fm_engine *e, fm_batch_buf *bb, const int32_t *rows, int n, int64_t example0);
/* The training pass of the current step. */
fm_pass fm_engine_pass(const fm_engine *e);
/* Start the sums of the gradients of layer l's tensors (-1 embeddings, L
 * pooler and heads) that have gradients, adjacent ones as one range. */
int fm_engine_sum_layer(const fm_engine *e, int l);

#endif
