/* engine.h: the training engine that fine-tuning and MLM pre-training share.
 *
 * An engine owns a trainer (train.h: the moments, and in supermask mode the
 * scores nu and the sample mu) over a model it does not own, and a
 * distribution strategy: the object that decides which rows of a step this
 * process computes, runs their forward and backward, and sums what must be
 * summed. One optimiser step is
 *
 *   fm_engine_batch(e, step, rows, nb)   the step's rows (global, in order);
 *                                        this process keeps its share;
 *                                        zero the gradients, draw mu
 *   fm_engine_step(e, &out)              forward, backward, gradient sums:
 *                                        out has the step's mean loss and the
 *                                        signal flags summed over the team
 *   fm_engine_apply(e, &norm, &factor)   global norm, clip, AdamW
 *
 * and around the steps: fm_engine_sync (give every rank the whole model
 * before an evaluation, a checkpoint or the final files), fm_engine_sparsity,
 * fm_engine_save (a checkpoint: sync, the writer writes, the team agrees).
 *
 * Strategies (the fm_strategy objects of strategy.h; each owns its buffers:
 * activations, micro-batch buffers, gradient buckets, and talks to the other
 * ranks only through the fm_comm table below):
 *   one        one process: the whole batch, fm_trainer_grad (strat_one.c)
 *   replicas   data-parallel replicas: rows split by replica, the backward
 *              layer by layer with each layer's gradients summed as soon as
 *              they are complete (bucketed, overlapped; strat_replicas.c)
 *   pipeline   pipeline stages (and replicas of each stage): GPipe or 1F1B
 *              with flush over micro-batches (pipesched.h), activations
 *              passed with p2p (strat_pipeline.c)
 *
 * src/ calls no MPI: mpi/ fills an fm_comm with its functions (mpi/comm.h).
 * Results do not depend on the strategy beyond float summation order of the
 * replicas' sums (see train.h for how randomness is keyed). */
#ifndef FM_ENGINE_H
#define FM_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "dataset.h"
#include "model.h"
#include "pipesched.h"
#include "train.h"

/* The communication of one team (the ranks that run one job): replica
 * `replica` of `nreplicas`, stage `stage` of `nstages` of that replica,
 * tensor-parallel rank `tp` of `ntp` of that stage, team rank team_rank =
 * (replica * nstages + stage) * ntp + tp (0 writes the files). Every
 * function returns FM_OK or FM_ERR with a message; all take ctx first. */
typedef struct fm_comm {
    void *ctx;
    int replica, nreplicas, stage, nstages, team_rank;
    int tp, ntp; /* ntp 0 or 1: no tensor parallelism */
    /* Start summing x[0..n) in place over the replicas of this stage (may
     * return before it is done); progress lets started sums move; wait
     * completes every started sum. */
    int (*sum_start)(void *ctx, float *x, size_t n);
    void (*progress)(void *ctx);
    int (*sum_wait)(void *ctx);
    /* Sum n doubles in place over the whole team (blocking). */
    int (*team_sum_doubles)(void *ctx, double *x, size_t n);
    /* Pipeline: send (send = 1) or receive n floats to or from the
     * neighbouring stage (dir +1 the next, -1 the previous). */
    int (*p2p)(void *ctx, int dir, float *buf, size_t n, int send);
    /* Pipeline: send sbuf[0..ns) to the neighbouring stage dir and receive
     * rbuf[0..nr) from it, both at once (neither waits for the other). */
    int (*p2p_exchange)(void *ctx, int dir, const float *sbuf, size_t ns, float *rbuf, size_t nr);
    /* Send (send = 1) or receive n bytes to or from stage `peer` of this
     * replica (blocking; apart from p2p's messages). */
    int (*p2p_stage)(void *ctx, int peer, void *buf, size_t n, int send);
    /* Sum n floats in place over the whole team (blocking). */
    int (*team_sum)(void *ctx, float *x, size_t n);
    /* Sum n doubles in place over the stages of this replica (blocking). */
    int (*stages_sum)(void *ctx, double *x, size_t n);
    /* Copy n floats from stage `root` of this replica to its other stages. */
    int (*bcast)(void *ctx, float *x, size_t n, int root);
    /* Every rank filled x[begin, end) of x[0..n); afterwards all hold all of x. */
    int (*team_share)(void *ctx, float *x, size_t n, size_t begin, size_t end);
    /* FM_OK on every rank when every rank passes ok != 0, else FM_ERR on
     * every rank with the lowest failing rank's message. */
    int (*agree)(void *ctx, int ok);
    /* v[0..n) from team rank 0 to every rank. */
    int (*decide)(void *ctx, int *v, int n);
    /* Tensor parallelism (model.h's fm_tp): sum n floats (or doubles) in
     * place over the ntp ranks of this stage; the same bits on each. */
    int (*tp_sum)(void *ctx, float *x, size_t n);
    int (*tp_sum_doubles)(void *ctx, double *x, size_t n);
    /* Gather a tensor split over the ntp ranks (params.h's fm_tensor split,
     * nb; whole shape out x in) from each rank's share `local` into `whole`
     * on tp rank 0 (whole unused elsewhere). */
    int (*tp_gather)(void *ctx, int split, int nb, int64_t out, int64_t in, const float *local, float *whole);
} fm_comm;

/* Fill the batch buffer bb with dataset rows rows[0..n), whose first row has
 * global index example0 within the step (the dropout key), for training:
 * fine-tuning keeps labels or targets, pre-training corrupts the ids and sets
 * mlm_labels. Returns the number of predictions the rows carry (pre-training:
 * the chosen tokens; fine-tuning: n). */
typedef int64_t (*fm_fill_fn)(void *ctx, fm_batch_buf *bb, const fm_dataset *d, const int32_t *rows, int n,
                              int64_t example0);

/* How the loss is scaled into the gradient. */
typedef enum {
    FM_SCALE_ROWS = 0,  /* 1 / (rows of the whole step); the loss is the mean over the rows (fine-tuning) */
    FM_SCALE_COUNT = 1, /* 1 / (predictions of the whole step, summed over the team after the forward;
                           pre-training's masked tokens) */
} fm_scale;

typedef struct {
    fm_trainer_opts train;  /* mode, seed, optimisers, supermask settings */
    int batch;              /* rows of a whole step (every replica together) */
    int seq;                /* tokens per row at most */
    int micro_batches;      /* pipeline: micro-batches per replica's share */
    fm_pipe_schedule schedule; /* pipeline: their order (pipesched.h) */
    int cls_only_last;      /* fm_pass.cls_only_last of training passes */
    fm_scale scale;
    /* The training data and how rows become a batch. */
    const fm_dataset *data;
    fm_fill_fn fill;
    void *fill_ctx;
    /* NULL: one process. Otherwise the team's communication, which picks
     * the strategy: pipeline with nstages > 1, else replicas with
     * nreplicas > 1, else one. */
    const fm_comm *comm;
} fm_engine_cfg;

/* What fm_engine_step returns: the step's loss (summed loss / rows or
 * predictions of the whole step), and the SIGTERM and SIGUSR1 flags summed
 * over the team (term and usr1 are this rank's, in; one process: as they
 * came in). */
typedef struct {
    double loss;
    double term, usr1;
    double count;        /* FM_SCALE_COUNT: predictions of the whole step */
} fm_step_out;

typedef struct fm_strategy fm_strategy;

typedef struct {
    fm_engine_cfg c;
    fm_model *m;
    fm_trainer tr;
    int tr_ready;
    fm_strategy *s;
    /* the current step: its rows (this process's share) */
    int32_t *rows;      /* (batch) */
    int nrows, lo, nb;  /* this share is [lo, lo + nrows) of the step's nb rows */
} fm_engine;

/* Set up an engine over m (whose layout says what trains) with c: the
 * trainer, and the strategy c->comm asks for (FM_ERR with a message when its
 * settings cannot work: more stages than layers, micro-batches). c is
 * copied; c->comm and c->data must outlive the engine. */
int fm_engine_init(fm_engine *e, fm_model *m, const fm_engine_cfg *c);
void fm_engine_free(fm_engine *e);
/* The strategy's name: "one", "replicas" or "pipeline". */
const char *fm_engine_strategy(const fm_engine *e);

/* Start step `step` with its rows rows[0..nb) (dataset indices, in step
 * order): this process keeps its share, the gradients are zeroed and
 * (supermask) mu is drawn. */
void fm_engine_batch(fm_engine *e, int64_t step, const int32_t *rows, int nb);
/* Forward, backward and the gradient sums of the prepared batch; out->term and
 * out->usr1 carry this rank's signal flags in and the team's sums out. */
int fm_engine_step(fm_engine *e, fm_step_out *out);
/* The update (train.h's fm_trainer_apply over the strategy): *norm the global
 * gradient norm (not finite: nothing was updated), *factor the schedule's. */
int fm_engine_apply(fm_engine *e, double *norm, double *factor);

/* What fm_engine_sync copies to every rank. */
typedef enum {
    FM_SYNC_EVAL = 0,  /* the parameters that train and nu: for an evaluation or the final files */
    FM_SYNC_STATE = 1, /* those and the AdamW moments: for a checkpoint */
    FM_SYNC_GRADS = 2, /* the gradients of every tensor that has one (a gradient dump) */
} fm_sync_what;
int fm_engine_sync(fm_engine *e, fm_sync_what what);
/* The trainer's sparsities, from every rank's terms where they are split. */
int fm_engine_sparsity(fm_engine *e, fm_sparsity *sp);

/* 1 when every rank holds the whole model (one process, replicas, or
 * pipeline stages over a whole model); 0 on pipeline stages whose models
 * hold their own tensors only (fm_model_alloc_stage): nothing is copied
 * between them, an evaluation runs through the stages (fm_engine_logits)
 * and files are assembled from the stages' tensors. */
int fm_engine_whole(const fm_engine *e);
/* Pipelined evaluation (fm_engine_whole 0), collective over the stages of
 * this replica: rows [row0, row1) of d, in batches of up to `batch` rows,
 * forwarded without dropout through every stage's layers (activations
 * passed on with fm_comm.p2p), the last stage's task head writing their
 * logits to logits + row0 * num_labels (the other stages write nothing).
 * The same logits as the whole model's forward on one process. */
int fm_engine_logits(fm_engine *e, const fm_dataset *d, int batch, int row0, int row1, float *logits);

/* The strategy's activations and batch buffer over the whole model, for
 * this process's rows of a step (fm_engine_share_rows), for a caller's own
 * forward passes between steps (an evaluation); NULL on a pipeline stage. */
fm_acts *fm_engine_acts(fm_engine *e, fm_batch_buf **bb);
/* Bytes of the training activations the strategy holds on this process (a
 * batch's over the whole model, or a pipeline stage's micro-batch sets:
 * fm_acts_bytes); in *sets how many activation sets, and in *buffers the
 * bytes of the buffers of a layer's input or output it keeps beside them
 * (either may be NULL). */
size_t fm_engine_acts_bytes(const fm_engine *e, int *sets, size_t *buffers);
/* The most rows of a step one replica computes. */
int fm_engine_share_rows(const fm_engine *e);

/* Collective: FM_OK when every rank of the team passes ok != 0 (one process: ok). */
int fm_engine_agree(const fm_engine *e, int ok);
/* Team rank 0 writes the files. */
int fm_engine_writer(const fm_engine *e);

/* A checkpoint: every rank gets the whole state (fm_engine_sync), the writer
 * calls write(ctx, &e->tr) and the team agrees on its result. On pipeline
 * stages whose models hold their own tensors only (fm_engine_whole 0) every
 * rank calls write: the writer assembles the file from the stages' tensors
 * and the others send theirs (cli/gather.h). */
int fm_engine_save(fm_engine *e, int (*write)(void *ctx, const fm_trainer *tr), void *ctx);
/* Loading is every rank's: read(ctx, &e->tr) fills the trainer's state (on a
 * pipeline every stage reads it all and keeps using its own tensors). */
int fm_engine_load(fm_engine *e, int (*read)(void *ctx, fm_trainer *tr), void *ctx);

/* The same over a team, for calls made outside an engine (before it
 * exists): comm may be NULL (one process). */
int fm_comm_agree(const fm_comm *comm, int ok);

#endif
