/* rng.h: counter-based random numbers (Random123's Philox4x32-10). A draw is
 * a pure function of (seed, purpose, step, index): the same bits whatever
 * the thread count, the rank layout or the order of the calls. */
#ifndef FM_RNG_H
#define FM_RNG_H

#include <stdint.h>

/* What a stream of draws is for; part of the counter, so streams never overlap. */
typedef enum {
    FM_RNG_INIT = 1,       /* weight initialisation (index: tensor id) */
    FM_RNG_DROPOUT = 2,    /* dropout masks (index: layer and site) */
    FM_RNG_SHUFFLE = 3,    /* data order (index: epoch) */
    FM_RNG_MASK = 4,       /* supermask Bernoulli samples */
    FM_RNG_MLM = 5,        /* masked-LM token choice */
    FM_RNG_PERMUTE = 6,    /* shuffled-weights control */
    FM_RNG_DATA = 7,       /* synthetic data */
    FM_RNG_HEAD = 8,       /* task head initialisation */
    FM_RNG_MASK_EVAL = 9,  /* supermask samples for evaluation (step: sample number) */
    FM_RNG_EVAL_SHUFFLE = 10, /* pre-training's word-order check (step: row) */
} fm_rng_purpose;

/* Four 32-bit words for block `block` of the stream (seed, purpose, step, stream). */
void fm_rng_block(uint64_t seed, uint32_t purpose, uint64_t step, uint32_t stream, uint64_t block, uint32_t out[4]);

/* Element i of the stream as a uniform float in [0, 1) (24 random bits). */
float fm_rng_uniform(uint64_t seed, uint32_t purpose, uint64_t step, uint32_t stream, uint64_t i);
/* Fill out[0..n) with uniforms in [0, 1): element j is fm_rng_uniform(..., first + j). */
void fm_rng_uniforms(uint64_t seed, uint32_t purpose, uint64_t step, uint32_t stream, uint64_t first, float *out,
                     uint64_t n);
/* Fill out[0..n) with standard normals (Box-Muller over pairs of uniforms). */
void fm_rng_normals(uint64_t seed, uint32_t purpose, uint64_t step, uint32_t stream, float *out, uint64_t n);
/* A uniform integer in [0, n), element i of the stream (unbiased for n < 2^32). */
uint32_t fm_rng_below(uint64_t seed, uint32_t purpose, uint64_t step, uint32_t stream, uint64_t i, uint32_t n);
/* Fisher-Yates permutation of 0..n-1 into perm, drawn from the stream. */
void fm_rng_permutation(uint64_t seed, uint32_t purpose, uint64_t step, uint32_t stream, uint32_t *perm, uint32_t n);

#endif
