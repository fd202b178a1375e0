/* trainstate.h: the training state a killed run resumes from
 * (RUN_DIR/state.safetensors), a safetensors file written atomically
 * (temporary file, fsync, rename: a crash leaves the previous state whole).
 *
 * Tensors (F32, each with its layout tensor's shape), for every tensor that
 * trains or is masked:
 *   "param.<name>"  the trained parameters (full/freeze; the head in supermask)
 *   "nu.<name>"     the supermask scores of a masked tensor
 *   "adam_m.<name>", "adam_v.<name>"  its AdamW moments
 * "__metadata__": format "finemask-state", version "1", step (updates done),
 * log_bytes (length of log.jsonl at that step), window_loss / last_loss (C99
 * hex floats, exact), window_n, examples, options: the run's options as
 * JSON text, which must equal the resuming run's, and crc32c: every tensor's
 * CRC-32C (fm_state_open checks them). The data position and every
 * random number follow from the step (Philox is keyed by it). */
#ifndef FM_TRAINSTATE_H
#define FM_TRAINSTATE_H

#include <stdint.h>

#include "safetensors.h"
#include "train.h"

#define FM_STATE_FILE "state.safetensors"

/* Where a run stood at a step boundary, beyond the trainer's arrays. */
typedef struct {
    int64_t step;         /* optimiser updates done */
    long long log_bytes;  /* bytes of log.jsonl written by then */
    double window_loss;   /* loss summed since the last log line */
    int64_t window_n;     /* steps in that sum */
    int64_t examples;     /* training examples seen */
    double last_loss;     /* loss of the last step (NaN before the first) */
} fm_train_progress;

/* Write t's state and p to path atomically. options is the run's options
 * JSON. With the environment variable FINEMASK_TEST_KILL_IN_CHECKPOINT=K
 * (tests only) the K-th call of this process writes half of the file to the
 * temporary file and kills the process with SIGKILL; with
 * FINEMASK_TEST_ENOSPC_IN_CHECKPOINT=K the K-th call writes half of it and
 * then fails as on a full disk ("write failed: No space left on device"),
 * removing the temporary file. */
int fm_trainstate_write(const char *path, const fm_trainer *t, const fm_train_progress *p, const char *options);
/* The tensors of t's state file in file order: *e (data pointing into t's
 * arrays, where t's model holds them), *names (each entry's name) and
 * *tensor (the layout tensor of each); returns their count. Free the three
 * with free(), and each names[i] too. */
int fm_trainstate_entries(const fm_trainer *t, fm_st_entry **e, char ***names, int **tensor);
/* fm_trainstate_write with entry i's bytes from fetch(ctx, i) (safetensors.h)
 * and its CRC-32C crc[i] given, for a trainer whose tensors lie on several
 * pipeline stages. */
int fm_trainstate_write_fetch(const char *path, const fm_trainer *t, const fm_train_progress *p,
                              const char *options, fm_st_fetch fetch, void *ctx, const uint32_t *crc);
/* Read path into t (set up with the same options) and p. FM_ERR naming the
 * file and tensor for a missing or misshapen tensor, or options that differ
 * from `options`. A pipeline stage's trainer (its model holds some tensors
 * only) reads its own tensors. */
int fm_trainstate_read(const char *path, fm_trainer *t, fm_train_progress *p, const char *options);

/* ---- shared by the state files (this one and ptstate.h) ---- */

/* Entry n of e (names[n] owns its name): tensor x's array `data` under the
 * name "KIND.<tensor name>", F32 in x's shape. Returns n + 1. */
int fm_state_add(fm_st_entry *e, char **names, int n, const char *kind, const fm_tensor *x, const float *data);
/* Write the n entries and meta to path atomically, then free e, names and
 * names[0..n). With FINEMASK_TEST_KILL_IN_CHECKPOINT=K (tests only) the K-th
 * state write of this process writes half the temporary file and kills the
 * process with SIGKILL; with FINEMASK_TEST_ENOSPC_IN_CHECKPOINT=K it fails
 * there with ENOSPC instead (the temporary file removed). */
int fm_state_write(const char *path, fm_st_entry *e, char **names, int n, const fm_st_meta *meta, int nmeta);
/* The same with entry i's bytes from fetch(ctx, i) and its CRC-32C crc[i]
 * (fetch NULL: from e[i].data, and crc computed). */
int fm_state_write_fetch(const char *path, fm_st_entry *e, char **names, int n, const fm_st_meta *meta, int nmeta,
                         fm_st_fetch fetch, void *ctx, const uint32_t *crc);
/* Open a state file and check it is whole: a valid safetensors file whose
 * every tensor has the CRC-32C fm_state_write recorded (metadata "crc32c": a
 * JSON object of tensor name -> 8 hex digits; a file without it, from an
 * older finemask, is read unchecked). FM_ERR naming the file and the first
 * damaged tensor (or what is wrong with the file), with what to do; f is
 * then left closed. */
int fm_state_open(fm_st_file *f, const char *path);
/* Metadata `key` of f as an integer / a number; FM_ERR naming file and key. */
int fm_state_meta_i64(const fm_st_file *f, const char *key, int64_t *out);
int fm_state_meta_f64(const fm_st_file *f, const char *key, double *out);
/* Tensor "KIND.<x's name>" of f into dst (x->numel floats; x of lay, and
 * on a tensor-parallel shard layout the rows or columns of its share, read
 * from the mapped whole tensor); FM_ERR naming the file and tensor when it
 * is missing or not F32 of x's whole size. */
int fm_state_load(const fm_st_file *f, const char *kind, const fm_layout *lay, const fm_tensor *x, float *dst);

#endif
