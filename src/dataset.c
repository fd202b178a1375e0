/* dataset.c: encoded examples and padded batches (see dataset.h). */
#include "dataset.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fm.h"

void fm_dataset_alloc(fm_dataset *d, int n, int max_len, int32_t pad_id) {
    memset(d, 0, sizeof *d);
    d->n = n;
    d->max_len = max_len;
    d->pad_id = pad_id;
    size_t cells = (size_t)n * (size_t)max_len;
    d->ids = fm_xmalloc(sizeof(int32_t) * (cells ? cells : 1));
    for (size_t i = 0; i < cells; i++) d->ids[i] = pad_id;
    d->types = fm_xcalloc(cells ? cells : 1, sizeof(int32_t));
    d->lengths = fm_xcalloc((size_t)n, sizeof(int32_t));
    d->labels = fm_xmalloc(sizeof(int32_t) * (size_t)(n ? n : 1));
    d->targets = fm_xmalloc(sizeof(float) * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) {
        d->labels[i] = -1;
        d->targets[i] = NAN;
    }
}

void fm_dataset_free(fm_dataset *d) {
    free(d->ids);
    free(d->types);
    free(d->lengths);
    free(d->labels);
    free(d->targets);
    memset(d, 0, sizeof *d);
}

int fm_dataset_check(const fm_dataset *d, const fm_config *c, int *row) {
    *row = -1;
    if (d->max_len > c->max_position_embeddings) {
        *row = 0;
        return fm_fail("rows of %d tokens, more than the model's max_position_embeddings %d", d->max_len,
                       c->max_position_embeddings);
    }
    for (int i = 0; i < d->n; i++) {
        const int32_t *ids = d->ids + (size_t)i * d->max_len, *types = d->types + (size_t)i * d->max_len;
        for (int t = 0; t < d->max_len; t++) {
            if (ids[t] < 0 || ids[t] >= c->vocab_size) {
                *row = i;
                return fm_fail("token %d has id %d, outside the model's vocabulary (config.json vocab_size %d)", t,
                               ids[t], c->vocab_size);
            }
            if (types[t] < 0 || types[t] >= c->type_vocab_size) {
                *row = i;
                if (types[t] == 1 && c->type_vocab_size == 1)
                    return fm_fail("token %d has type id 1 (the second text of a pair), but the model has one "
                                   "token type only (config.json type_vocab_size 1): it cannot take sentence pairs",
                                   t);
                return fm_fail("token %d has type id %d, outside the model's token types (config.json "
                               "type_vocab_size %d)",
                               t, types[t], c->type_vocab_size);
            }
        }
    }
    return FM_OK;
}

void fm_batch_buf_alloc(fm_batch_buf *bb, int B, int max_len) {
    memset(bb, 0, sizeof *bb);
    bb->cap_B = B;
    bb->max_len = max_len;
    size_t cells = (size_t)B * (size_t)max_len;
    bb->ids = fm_xmalloc(sizeof(int32_t) * cells);
    bb->types = fm_xmalloc(sizeof(int32_t) * cells);
    bb->mask = fm_xmalloc(sizeof(float) * cells);
    bb->labels = fm_xmalloc(sizeof(int32_t) * (size_t)B);
    bb->targets = fm_xmalloc(sizeof(float) * (size_t)B);
    bb->rows = fm_xmalloc(sizeof(int32_t) * (size_t)B);
}

void fm_batch_buf_free(fm_batch_buf *bb) {
    free(bb->ids);
    free(bb->types);
    free(bb->mask);
    free(bb->labels);
    free(bb->targets);
    free(bb->rows);
    memset(bb, 0, sizeof *bb);
}

void fm_batch_fill(fm_batch_buf *bb, const fm_dataset *d, const int32_t *rows, int B, int align, int64_t example0) {
    int T = 1;
    for (int i = 0; i < B; i++)
        if (d->lengths[rows[i]] > T) T = d->lengths[rows[i]];
    if (align > 1) T = (T + align - 1) / align * align;
    if (T > d->max_len) T = d->max_len;
    for (int i = 0; i < B; i++) {
        int r = rows[i];
        bb->rows[i] = r;
        memcpy(bb->ids + (size_t)i * T, d->ids + (size_t)r * d->max_len, sizeof(int32_t) * (size_t)T);
        memcpy(bb->types + (size_t)i * T, d->types + (size_t)r * d->max_len, sizeof(int32_t) * (size_t)T);
        for (int t = 0; t < T; t++) bb->mask[(size_t)i * T + t] = t < d->lengths[r] ? 1.0f : 0.0f;
        bb->labels[i] = d->labels[r];
        bb->targets[i] = d->targets[r];
    }
    memset(&bb->b, 0, sizeof bb->b);
    bb->b.B = B;
    bb->b.T = T;
    bb->b.ids = bb->ids;
    bb->b.type_ids = bb->types;
    bb->b.attn_mask = bb->mask;
    bb->b.labels = bb->labels;
    bb->b.targets = bb->targets;
    bb->b.example0 = example0;
}
