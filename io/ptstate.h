/* ptstate.h: the state a killed `finemask pretrain` resumes from
 * (OUT/state.safetensors), a safetensors file written atomically (temporary
 * file, fsync, rename: a crash leaves the previous state whole), with the
 * conventions of the fine-tuning state (trainstate.h).
 *
 * Tensors (F32, each with its layout tensor's shape), for every tensor that
 * trains:
 *   "param.<name>"                    the parameters
 *   "adam_m.<name>", "adam_v.<name>"  their AdamW moments
 * "__metadata__": format "finemask-pretrain-state", version "1", step
 * (updates done), log_bytes (length of pretrain_log.jsonl at that step),
 * window_loss (C99 hex float, exact), window_n, examples, loss_initial (hex
 * float: the held-out loss before training, for pretrain.json), counts (the
 * MLM counts of every rank so far: "tokens chosen masked random kept"),
 * ranks (the world size that wrote it; informational), and options: the
 * run's options as JSON text (an object), which must equal the resuming
 * run's key by key. The data position and every random number follow from
 * the step (Philox is keyed by it). */
#ifndef FM_PTSTATE_H
#define FM_PTSTATE_H

#include <stdint.h>

#include "params.h"

#define FM_PT_STATE_FILE "state.safetensors"

/* Where a pre-training stood at a step boundary, beyond its arrays. */
typedef struct {
    int64_t step;          /* optimiser updates done */
    long long log_bytes;   /* bytes of pretrain_log.jsonl written by then */
    double window_loss;    /* loss summed since the last log line */
    int64_t window_n;      /* steps in that sum */
    int64_t examples;      /* training rows seen */
    double loss_initial;   /* held-out MLM loss before the first step */
    int64_t counts[5];     /* MLM tokens, chosen, masked, random, kept (all ranks) */
    int ranks;             /* world size of the run that wrote it */
} fm_pt_progress;

/* Write params and moments of the tensors of lay that train, p and options
 * (JSON object text) to path atomically, through fm_state_write (with its
 * test hook FINEMASK_TEST_KILL_IN_CHECKPOINT). */
int fm_ptstate_write(const char *path, const fm_layout *lay, const float *params, const float *mom1,
                     const float *mom2, const fm_pt_progress *p, const char *options);

/* Read path into params, mom1, mom2 (for the tensors of lay that train) and
 * p. FM_ERR naming the file and tensor for a missing or misshapen tensor, or
 * naming the first option whose value differs from `options` (JSON object
 * text) with both values. */
int fm_ptstate_read(const char *path, const fm_layout *lay, float *params, float *mom1, float *mom2,
                    fm_pt_progress *p, const char *options);

#endif
