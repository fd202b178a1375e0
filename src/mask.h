/* mask.h: binary masks over a model's tensors, packed 8 entries a byte: entry
 * i of a tensor is bit i%8 of byte i/8 (little-endian bit order, as numpy's
 * unpackbits(..., bitorder='little') reads it); 1 = kept, 0 = zeroed.
 * Sparsity is the fraction of zeros. Overlaps are counted on the packed bits
 * (AND + popcount), never on floats. */
#ifndef FM_MASK_H
#define FM_MASK_H

#include <stddef.h>
#include <stdint.h>

#include "params.h"

/* The tensors masked by default: every weight matrix of the embeddings, the
 * encoder and the pooler (not biases, LayerNorm or the heads). */
#define FM_MASK_DEFAULT_GLOB                                                                                          \
    "embeddings.*_embeddings.weight,encoder.layer.*.attention.self.*.weight,encoder.layer.*.dense.weight,"            \
    "pooler.dense.weight"

/* 1 when name matches one of the comma-separated fnmatch globs (every name
 * matches a NULL list). */
int fm_glob_match_any(const char *globs, const char *name);

typedef struct {
    char name[96];     /* the layout's tensor name (no "bert." prefix) */
    int ndim;
    int64_t shape[2];
    size_t numel;
    uint8_t *bits;     /* (numel + 7) / 8 bytes; bits past numel are 0 */
    size_t ones;       /* kept entries */
} fm_mask_tensor;

typedef struct {
    fm_mask_tensor *t; /* [n] */
    int n;
} fm_mask;

/* A mask with one all-zero tensor per layout tensor whose name matches
 * `glob` (fnmatch; a comma-separated list of globs), restricted to encoder
 * layers in `layers` (NULL: all; else a list "0-3,8" of layer numbers;
 * tensors outside the encoder are kept only when layers is NULL). */
int fm_mask_create(fm_mask *m, const fm_layout *lay, const char *glob, const char *layers);
void fm_mask_free(fm_mask *m);
fm_mask_tensor *fm_mask_find(const fm_mask *m, const char *name);

static inline int fm_mask_get(const fm_mask_tensor *t, size_t i) { return (t->bits[i >> 3] >> (i & 7)) & 1; }
static inline void fm_mask_set(fm_mask_tensor *t, size_t i, int v) {
    if (v)
        t->bits[i >> 3] |= (uint8_t)(1u << (i & 7));
    else
        t->bits[i >> 3] &= (uint8_t)~(1u << (i & 7));
}
/* Recount t->ones with popcount. */
size_t fm_mask_count(fm_mask_tensor *t);
/* Entries that are zero in both a and b (same shape), by popcount of ~a & ~b. */
size_t fm_mask_common_zeros(const fm_mask_tensor *a, const fm_mask_tensor *b);
/* 1 when some bit past numel is set in t's last byte (a malformed mask). */
int fm_mask_stray_bits(const fm_mask_tensor *t);

/* Zero every entry of params (layout lay) whose mask bit is 0: the weights
 * become theta ⊙ mask. Every mask tensor must name a layout tensor of the
 * same size (fm_maskfile_check_model checks a mask read from a file). */
void fm_mask_apply(const fm_mask *m, const fm_layout *lay, float *params);

#endif
