/* jobfile.h: job files: an INI file (read with inih) that describes a whole
 * sweep, and its expansion into a deterministic list of jobs.
 *
 *   [run]         model, data, out         paths, relative to the job file's directory
 *                 name                     the sweep's name (default: the file's base name)
 *   [sweep]       tasks                    comma-separated GLUE task names
 *                 modes                    comma-separated: full, freeze, supermask
 *                 seeds                    comma-separated integers (default 42)
 *                 weights                  comma-separated: pretrained, shuffled, random
 *   [supermask]   sparsities               initial sparsities in [0, 1), comma-separated (default 0)
 *                 ste                      sigmoid or identity
 *                 masked                   glob over tensor names (default: the standard set)
 *                 layers                   encoder layers to mask, e.g. "8-11" (default: all)
 *                 ranking                  global or tensor
 *                 samples                  Bernoulli samples for evaluation (10)
 *                 mask_lr                  peak learning rate of the scores nu (1e-2)
 *                 lr, epochs               override [train] for this mode
 *                 weights                  override [sweep] weights for this mode
 *   [freeze]      sets                     freeze sets separated by '|', each as `train --freeze`
 *                 lr, epochs, weights      override [train] / [sweep] for this mode
 *   [full]        lr, epochs, weights      override [train] / [sweep] for this mode
 *                 (e.g. full on pretrained only, supermask on all three)
 *   [train]       the option table's job keys (src/opts.h): lr batch_size epochs
 *                 max_steps max_seq_length warmup weight_decay adam_eps adam_beta1
 *                 adam_beta2 max_grad_norm dropout max_train_examples
 *                 eval_batch_size log_every shuffle
 *   [layout]      team_size stages micro_batches threads
 *                 tensor_parallel          ranks that split each layer's matrices (1)
 *                 pipeline_schedule        gpipe or 1f1b (default 1f1b)
 *
 * Every unknown section or key, repeated key and bad value is an error
 * naming the file and the line. */
#ifndef FM_JOBFILE_H
#define FM_JOBFILE_H

#include <stdint.h>

#include "opts.h"
#include "pipesched.h"

#define FM_JOB_MAX_LIST 64

/* Training options (as `finemask train` takes them): the job file's [train]
 * keys (the option table's job keys, src/opts.h) over the table's defaults. */
typedef fm_ft_opts fm_job_hyper;

/* One fine-tuning run. */
typedef struct {
    char name[320];      /* stable, unique: the run directory's name */
    int index;           /* position in the expanded list */
    char task[32];
    char mode[16];       /* full, freeze, supermask */
    char weights[16];    /* pretrained, shuffled, random */
    char freeze[256];    /* freeze set ("" unless mode freeze) */
    double sparsity;     /* initial sparsity (supermask), else 0 */
    uint64_t seed;
    fm_job_hyper h;
    double work;         /* expected cost: epochs x examples x sequence length (fm_jobs_estimate) */
} fm_job;

typedef struct {
    char *path;                /* the job file */
    char *name;                /* sweep name */
    char *model, *data, *out;  /* resolved against the job file's directory; NULL when absent */
    int ntasks, nmodes, nseeds, nweights, nsparsities, nfreeze;
    char tasks[FM_JOB_MAX_LIST][32];
    char modes[3][16];
    uint64_t seeds[FM_JOB_MAX_LIST];
    char weights[3][16];
    double sparsities[FM_JOB_MAX_LIST];
    char freeze[FM_JOB_MAX_LIST][256];
    /* supermask options */
    char ste[16], masked[256], layers[64], ranking[16];
    int samples;
    double mask_lr;            /* < 0: the trainer's default */
    fm_job_hyper train;        /* [train] */
    double mode_lr[3], mode_epochs[3]; /* per-mode overrides (< 0: unset), index as fm_job_mode_index */
    int mode_nweights[3];      /* per-mode weights override (0: [sweep] weights) */
    char mode_weights[3][3][16];
    /* layout */
    int team_size, stages, micro_batches, threads, tensor_parallel;
    fm_pipe_schedule pipeline_schedule;
} fm_jobfile;

/* Default hyperparameters: the table's, BERT's recipe (lr 2e-5, batch 32, 3 epochs, ...). */
void fm_job_hyper_default(fm_job_hyper *h);

/* Parse path into jf (freed with fm_jobfile_free). FM_ERR with
 * "path:line: ..." on any unknown section or key, repeated key or bad value,
 * and "path: ..." for a missing required key (model, data, tasks, modes). */
int fm_jobfile_read(fm_jobfile *jf, const char *path);
void fm_jobfile_free(fm_jobfile *jf);

/* Expand the sweep into *jobs (n in *njobs; free with free()): tasks x modes
 * x (sparsities for supermask | freeze sets for freeze | one for full) x
 * weights (the mode's own list when given) x seeds, in that nesting order, each with its stable name, e.g.
 * "SST-2.supermask.s0.30.pretrained.seed1". */
int fm_jobfile_expand(const fm_jobfile *jf, fm_job **jobs, int *njobs);

/* Fill each job's expected work: epochs x training examples (the lines of
 * data/TASK/train.tsv less its header, capped by max_train_examples) x
 * max_seq_length. A task whose file is missing gets work 0 (the job fails
 * later with a proper message). */
void fm_jobs_estimate(fm_job *jobs, int n, const char *data_dir);

/* order[0..n) = job indices sorted by work, largest first; ties by index. */
void fm_jobs_order(const fm_job *jobs, int n, int *order);

#endif
