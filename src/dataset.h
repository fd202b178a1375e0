/* dataset.h: encoded examples (token ids, token types, lengths, labels) and
 * the batches cut from them, padded to the longest sequence of the batch. */
#ifndef FM_DATASET_H
#define FM_DATASET_H

#include <stdint.h>

#include "model.h"

typedef struct {
    int n;            /* examples */
    int max_len;      /* row width of ids/types: the max_seq_length used to encode */
    int32_t *ids;     /* (n, max_len), padded with pad_id */
    int32_t *types;   /* (n, max_len) */
    int32_t *lengths; /* (n) real tokens in each row */
    int32_t *labels;  /* (n) class index, or -1 when unlabelled */
    float *targets;   /* (n) regression target (STS-B), NAN when unlabelled */
    int32_t pad_id;
} fm_dataset;

/* Allocate room for n examples of width max_len (ids filled with pad_id). */
void fm_dataset_alloc(fm_dataset *d, int n, int max_len, int32_t pad_id);
void fm_dataset_free(fm_dataset *d);

/* Check d against the model's sizes, in every build (the forward pass only
 * asserts them): each row no wider than max_position_embeddings, every token
 * id in [0, vocab_size) and every type id in [0, type_vocab_size). FM_OK, or
 * FM_ERR with *row the first row that breaks one and a recorded message
 * naming the position, what was found and the limit (the caller adds the file
 * and line). */
int fm_dataset_check(const fm_dataset *d, const fm_config *c, int *row);

/* Room for one batch of up to B examples of width max_len. */
typedef struct {
    fm_batch b; /* views into the arrays below */
    int cap_B, max_len;
    int32_t *ids, *types, *labels, *rows;
    float *mask, *targets;
} fm_batch_buf;

void fm_batch_buf_alloc(fm_batch_buf *bb, int B, int max_len);
void fm_batch_buf_free(fm_batch_buf *bb);

/* Fill bb with examples rows[0..B) of d, padded to the longest of them
 * (rounded up to a multiple of `align`, at most max_len). example0 is the
 * global index of the first row within the step (for dropout keys). */
void fm_batch_fill(fm_batch_buf *bb, const fm_dataset *d, const int32_t *rows, int B, int align, int64_t example0);

#endif
