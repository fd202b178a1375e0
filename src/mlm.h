/* mlm.h: masked-language-model inputs: packing tokenized lines into
 * fixed-length rows, and BERT's 15% / 80-10-10 corruption of a row.
 *
 * Packing. Each unit (a non-empty corpus line, already tokenized; a unit
 * longer than the room of a row, T-3 tokens, is cut into pieces of T-3) is
 * kept whole. Units are taken in order and packed greedily into rows
 *     [CLS] A [SEP] B [SEP] [PAD]...
 * where segment A is one or more consecutive units holding about half of the
 * row's T-3 tokens of room and segment B the units that follow, as many as
 * still fit. A gets token type 0 (with [CLS] and its [SEP]), B type 1. A row
 * whose next unit does not fit in B ends early (padding); a row with only A
 * is [CLS] A [SEP]. Rows cross line and document boundaries freely (like
 * RoBERTa's FULL-SENTENCES packing, with BERT's two segments).
 *
 * Corruption. At optimiser step `step`, position t of dataset row `row`
 * takes one Philox block (key seed, purpose FM_RNG_MLM, stream = row, block
 * t): word 0 as a uniform u0 < prob chooses the position (never [CLS], [SEP]
 * or [PAD]); word 1 as u1 decides: [MASK] when u1 < 0.8, a random token id
 * floor(V * w23 / 2^64) (words 2 and 3 as one 64-bit number) when u1 < 0.9,
 * unchanged otherwise. The label of a chosen position is the original token;
 * every other label is -100. The result depends on (seed, step, row,
 * position) only, so
 * replicas that split a batch corrupt exactly what one process would. */
#ifndef FM_MLM_H
#define FM_MLM_H

#include <stdint.h>

#include "dataset.h"

typedef struct {
    int32_t cls_id, sep_id, pad_id, mask_id;
    int32_t vocab_size; /* V: random replacements are drawn from [0, V) */
    float prob;         /* 0.15: the chance a position is chosen */
    float p_mask;       /* 0.8: of the chosen, the share that becomes [MASK] */
    float p_random;     /* 0.1: of the chosen, the share that becomes a random token */
} fm_mlm_spec;

typedef struct {
    int64_t tokens;  /* positions that could be chosen (not [CLS]/[SEP]/[PAD]) */
    int64_t chosen;  /* positions with a label */
    int64_t masked;  /* of those, replaced by [MASK] */
    int64_t random;  /* replaced by a random token */
    int64_t kept;    /* left unchanged */
} fm_mlm_counts;

/* The spec with BERT's rates (0.15, 0.8, 0.1) for the given special ids. */
void fm_mlm_spec_default(fm_mlm_spec *s, int32_t cls_id, int32_t sep_id, int32_t pad_id, int32_t mask_id,
                         int32_t vocab_size);

/* Corrupt one row of T tokens: ids (T) is written from orig (T) and labels
 * (T) gets the original id at chosen positions and -100 elsewhere. counts
 * (may be NULL) is added to. */
void fm_mlm_corrupt_row(int32_t *ids, int32_t *labels, const int32_t *orig, int T, uint64_t seed, uint64_t step,
                        uint32_t row, const fm_mlm_spec *s, fm_mlm_counts *counts);

/* Pack units into rows of width T as described above, into d (allocated
 * here: ids, types and lengths; labels -1, targets NaN). units are n arrays
 * unit[i] of len[i] ids. Returns the number of rows (d->n). Units of length
 * 0 are skipped. T must be at least 5. */
int fm_mlm_pack(fm_dataset *d, const int32_t *const *unit, const int32_t *len, int64_t n, int T,
                const fm_mlm_spec *s);

#endif
