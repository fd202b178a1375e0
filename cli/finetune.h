/* finetune.h: one single-process fine-tuning job on a GLUE task, and the
 * evaluation and prediction that go with it: reading the model directory
 * and the GLUE files, encoding, training, scoring, writing the run files. */
#ifndef FM_FINETUNE_H
#define FM_FINETUNE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "dataset.h"
#include "engine.h"
#include "glue.h"
#include "hfconfig.h"
#include "metrics.h"
#include "model.h"
#include "opts.h"
#include "tokenizer.h"

/* What a caller that runs the job on a team of ranks (`finemask run`; the MPI
 * calls live in mpi/) gives and gets back. The team's communication table
 * (src/engine.h; mpi/comm.h fills it) picks the engine's strategy: pipeline
 * stages when it has more than one stage, data-parallel replicas when more
 * than one replica, else one process. Only team rank 0 writes the run
 * directory; the others read its state file on --resume. Decisions that
 * change the sequence of collectives (a state file to resume from, MNLI's
 * mismatched dev file) are taken by team rank 0 and passed on (decide), so
 * that ranks that see a shared file system differently still run the same
 * steps; a failure on one rank fails the job on the whole team (agree).
 * Evaluations are split over the team (team_share). */
typedef struct fm_ft_hooks {
    const fm_comm *comm; /* NULL: one process */
    int micro_batches;   /* pipeline: micro-batches per replica's rows of a step */
    fm_pipe_schedule pipeline_schedule; /* pipeline: GPipe or 1F1B (src/pipesched.h) */
    /* output: the training activations this rank held (fm_engine_acts_bytes) */
    size_t acts_bytes;
    int acts_sets;
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
    size_t peak_rss; /* this process's peak resident memory when the job's files were written, in bytes */
    /* Tensor parallelism: tp_bytes[0] and [1] point at running totals of
     * this rank's sums over the tensor-parallel ranks (the activations' floats
     * and the small sums' doubles, in bytes; NULL: none), tp_seconds at their
     * time; tp_train_bytes and tp_train_seconds get their part in this
     * session's training steps (not the evaluations). */
    const uint64_t *tp_bytes[2];
    const double *tp_seconds;
    uint64_t tp_train_bytes[2];
    double tp_train_seconds;
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
/* The same for pipeline stage `stage` of `nstages` (nstages > 1): the model
 * holds that stage's tensors only (fm_model_alloc_stage); and with ntp > 1
 * tensor-parallel rank tp's shares of them only (fm_model_alloc_shard, read
 * from the file share by share). fingerprint is left 0 on a stage or a
 * shard (it needs the whole tensors: gather.h's fm_gather_fingerprint). */
int fm_ft_load_stage(fm_ft_ctx *c, const char *model_dir, const char *task_name, uint64_t seed, double dropout,
                     int stage, int nstages, int tp, int ntp);
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
