/* trainloop.h: the one training loop of fine-tuning and pre-training, over
 * the engine (src/engine.h). Per step: the epoch's order (a permutation keyed
 * by (seed, epoch), or the identity), the step's rows, the engine's batch,
 * step and update; a loss or gradient norm that is not finite stops the run
 * (every rank sees the same summed values, so all stop together); then the
 * caller's log line, the progress line, the caller's evaluation, a
 * checkpoint when due or asked for by a signal (stopsig.h: SIGUSR1 saves and
 * goes on, SIGTERM saves and stops). */
#ifndef FM_TRAINLOOP_H
#define FM_TRAINLOOP_H

#include <stdint.h>

#include "engine.h"

typedef struct {
    fm_engine *e;
    const char *what;          /* the progress line's label */
    int64_t first, total;      /* steps [first, total) */
    int64_t steps_per_epoch;
    int n;                     /* training rows */
    int batch;                 /* rows per step */
    uint64_t seed;
    int shuffle;
    int64_t checkpoint_every;  /* also save every N steps but the last (0: on signals only) */
    int64_t examples0;         /* examples counted before `first` (progress speed) */
    /* 1: apply the update also when the loss is not finite, to report its
     * gradient norm (pre-training; nothing is written after a divergence);
     * 0: the norm of such a step is NaN. */
    int norm_on_bad_loss;
    void *ctx;
    /* After the gradients of a step, before its update (NULL: none). */
    int (*grads)(void *ctx, int64_t step);
    /* Step `step` (0-based) diverged on `what` ("loss" or "gradient norm"):
     * record it; returns FM_ERR with the message. */
    int (*diverged)(void *ctx, int64_t step, const char *what, double loss, double norm, double lr);
    /* After the update of step `step` (0-based) of nb rows: the log. */
    int (*logged)(void *ctx, int64_t step, int nb, double loss, double norm, double lr);
    /* After the progress line: an evaluation (NULL: none). */
    int (*evaluate)(void *ctx, int64_t step);
    /* A checkpoint after step `step` (0-based), for signal sig (0: periodic). Collective. */
    int (*save)(void *ctx, int64_t step, int sig);
    /* The message's advice after a SIGTERM: how to continue. */
    const char *resume_hint;
    /* Outputs: */
    double seconds;     /* in the loop */
    int interrupted;    /* stopped by SIGTERM after saving */
    int ended;          /* (the progress line was ended) */
} fm_loop;

/* Run the steps; FM_ERR with a message on a failure, a divergence or a SIGTERM. */
int fm_loop_run(fm_loop *l);

#endif
