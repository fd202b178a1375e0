/* finetune.h: one single-process fine-tuning job on a GLUE task, and the
 * evaluation and prediction that go with it: reading the model directory
 * and the GLUE files, encoding, training, scoring, writing the run files. */
#ifndef FM_FINETUNE_H
#define FM_FINETUNE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "dataset.h"
#include "glue.h"
#include "hfconfig.h"
#include "metrics.h"
#include "model.h"
#include "opts.h"
#include "tokenizer.h"

/* Data parallelism and results, supplied by a caller that runs the job on
 * several replicas (`finemask run`; the MPI calls live in mpi/). This process
 * is replica `rank` of `nranks`: it trains on rows [B*rank/nranks,
 * B*(rank+1)/nranks) of every batch of B, with dropout keyed by the row's
 * index in the whole batch, so that summed gradients equal one process's.
 * Gradients (of every tensor that trains or is masked) are summed in
 * backward order, one bucket per encoder layer, each started as soon as the
 * backward of that layer is done; the step's loss and two signal flags (a
 * SIGTERM, a SIGUSR1 seen by this rank; stopsig.h) are summed with them, so
 * every replica checkpoints (and, on SIGTERM, stops) at the same step. Only replica 0 writes the run
 * directory; the others read its state file on --resume. */
typedef struct fm_ft_hooks {
    int rank, nranks;
    void *ctx;
    /* Start summing x[0..n) in place across the replicas (may return before it is done). */
    int (*sum_start)(void *ctx, float *x, size_t n);
    /* Let the started sums progress (called between layers of the backward). */
    void (*progress)(void *ctx);
    /* Wait until every started sum is done. */
    int (*sum_wait)(void *ctx);
    /* Pipeline: this rank is stage `stage` of `nstages` of its replica and
     * holds encoder layers [L*stage/nstages, L*(stage+1)/nstages) (stage 0
     * also the embeddings, the last also the pooler and head;
     * fm_layout_stage). Each replica's rows are cut into `micro_batches`
     * micro-batches that go through a synchronous GPipe schedule (every
     * forward, then every backward, then the update), activations and their
     * gradients passed with p2p. With nstages > 1 a stage owns the tensors it
     * holds (and their nu and moments): sum_start then sums only those, over
     * the replicas of the stage, per layer as the last backward completes
     * it; the loss and stop flag go through team_sum; the update covers only
     * the owned tensors, with the global gradient norm from per-tensor terms
     * summed over the stages (stages_sum, which also serves the sparsity
     * statistics); and before anything reads the whole model (an evaluation,
     * a checkpoint, the final files) bcast copies every owned tensor from its
     * stage to the others. */
    int stage, nstages, micro_batches;
    int team_rank; /* 0 writes the run directory */
    void *pctx;
    /* Send (send = 1) or receive n floats to or from the neighbouring stage
     * (dir +1: the next stage, -1: the previous one). */
    int (*p2p)(void *pctx, int dir, float *buf, size_t n, int send);
    /* Sum n floats in place over the whole team (blocking). */
    int (*team_sum)(void *pctx, float *x, size_t n);
    /* Sum n doubles in place over the stages of this replica (blocking). */
    int (*stages_sum)(void *pctx, double *x, size_t n);
    /* Copy n floats from stage `root` of this replica to its other stages. */
    int (*bcast)(void *pctx, float *x, size_t n, int root);
    /* Evaluations are split over the team: rank team_rank of the
     * nranks * nstages ranks forwards its share of whole batches of the dev
     * set (every rank holds the whole model by then) into x[begin, end) of
     * the logits x[0..n); team_share then gives every rank all of x. NULL:
     * every rank evaluates everything. */
    int (*team_share)(void *pctx, float *x, size_t n, size_t begin, size_t end);
    /* Collective over the team after a step that only some ranks take (the
     * writer's checkpoint): FM_OK when every rank passes ok != 0, else FM_ERR
     * on every rank with the failing rank's message, so the job fails on the
     * whole team together instead of leaving the others in the next sum.
     * NULL: one process. */
    int (*agree)(void *pctx, int ok);
    /* Collective over the team: v[0..n) from team rank 0 to every rank.
     * Decisions that change the sequence of collectives (a state file to
     * resume from, MNLI's mismatched dev file) are taken by team rank 0 and
     * passed on with it, so that ranks that see a shared file system
     * differently still run the same steps. NULL: one process. */
    int (*decide)(void *pctx, int *v, int n);
    int64_t eval_examples; /* output: dev examples this rank forwarded, all evaluations together */
    /* Outputs: metrics.json's object (a new reference, the caller decrefs),
     * the training loop's seconds and examples in this session, not counting
     * the steps done before a resume (all replicas together). */
    json_t *metrics;
    double train_seconds;
    int64_t examples;
    int interrupted; /* stopped by SIGTERM after writing its state (resume continues it) */
    int term_seen;   /* a SIGTERM arrived while the job ran (interrupted or not) */
    int diverged;    /* stopped at a step whose loss or gradient norm was not finite (metrics says so) */
} fm_ft_hooks;

/* fm_ft_opts, the options of a job, is generated from the option table
 * (src/opts.h); options.json is io/options.h. */

/* Everything a job reads: the model, its tokenizer, the task. */
typedef struct {
    fm_model model;
    fm_tokenizer tok;
    const fm_glue_task *task;
    char *vocab_path;    /* model_dir/vocab.txt (it may be absent when tokenizer.json is there) */
    char *model_dir;
    int head_loaded;     /* the task head came from the checkpoint */
    uint64_t fingerprint; /* of the pre-trained weights, before training */
    fm_hfextra extra;
} fm_ft_ctx;

/* Load model_dir for task_name (a task head with the task's label count, created
 * from seed when the checkpoint has none), and its vocab.txt. */
int fm_ft_load(fm_ft_ctx *c, const char *model_dir, const char *task_name, uint64_t seed, double dropout);
void fm_ft_free(fm_ft_ctx *c);

/* Read and encode one split of the task; the glue set is kept in *set (the
 * caller frees it) for ids and texts. */
int fm_ft_encode(fm_ft_ctx *c, const char *data_dir, fm_glue_split split, int max_seq_length, fm_glue_set *set,
                 fm_dataset *d);

/* The same for only the first `limit` examples of the split (all when limit < 0). */
int fm_ft_encode_first(fm_ft_ctx *c, const char *data_dir, fm_glue_split split, int max_seq_length, int64_t limit,
                       fm_glue_set *set, fm_dataset *d);

/* Forward the model over d in eval mode; writes logits (n, num_labels) and
 * scores the labelled rows into *r (when r is not NULL). */
void fm_ft_predict(fm_ft_ctx *c, const fm_dataset *d, int batch_size, float *logits, fm_glue_report *r);
/* Its two halves: the logits of rows [row0, row1) of d (row0 a multiple of
 * batch_size, in batches of batch_size from row0: any such split of the rows
 * gives the same bits), written at logits + row * num_labels; and the report
 * on all n rows' logits. */
void fm_ft_logits(fm_ft_ctx *c, const fm_dataset *d, int batch_size, int row0, int row1, float *logits);
void fm_ft_score(const fm_ft_ctx *c, const fm_dataset *d, const float *logits, fm_glue_report *r);

/* Use n threads for BLIS and the element-wise loops. */
void fm_ft_threads(int n);

/* The whole training job (train, dev evaluation, run directory). */
int fm_finetune(const fm_ft_opts *o);

#endif
