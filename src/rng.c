/* rng.c: Philox4x32-10 streams (see rng.h). */
#include "rng.h"

#include <Random123/philox.h>
#include <math.h>

#include "fm.h"

void fm_rng_block(uint64_t seed, uint32_t purpose, uint64_t step, uint32_t stream, uint64_t block, uint32_t out[4]) {
    philox4x32_key_t key = {{(uint32_t)seed, (uint32_t)(seed >> 32)}};
    /* The counter: block index (low 32 bits), stream ^ (block high bits << 16), step (2 words). */
    philox4x32_ctr_t ctr = {{(uint32_t)block, (uint32_t)(block >> 32) * 0x9E3779B9u ^ stream ^ (purpose << 24),
                             (uint32_t)step, (uint32_t)(step >> 32)}};
    philox4x32_ctr_t r = philox4x32(ctr, key);
    out[0] = r.v[0];
    out[1] = r.v[1];
    out[2] = r.v[2];
    out[3] = r.v[3];
}

static inline float u32_to_unit(uint32_t x) { return (float)(x >> 8) * (1.0f / 16777216.0f); }

float fm_rng_uniform(uint64_t seed, uint32_t purpose, uint64_t step, uint32_t stream, uint64_t i) {
    uint32_t w[4];
    fm_rng_block(seed, purpose, step, stream, i >> 2, w);
    return u32_to_unit(w[i & 3]);
}

FM_HOT void fm_rng_uniforms(uint64_t seed, uint32_t purpose, uint64_t step, uint32_t stream, uint64_t first, float *out,
                     uint64_t n) {
    uint64_t j = 0;
    /* Up to the first whole block, and after the last one: one entry at a time. */
    while (j < n && ((first + j) & 3)) {
        out[j] = fm_rng_uniform(seed, purpose, step, stream, first + j);
        j++;
    }
    /* Whole blocks: the counter and Philox written out in the loop, so that
     * the compiler runs several blocks side by side in vector registers
     * (the same words as fm_rng_block). */
    const philox4x32_key_t key = {{(uint32_t)seed, (uint32_t)(seed >> 32)}};
    const uint64_t b0 = (first + j) >> 2, nb = (n - j) / 4;
    float *o = out + j;
    for (uint64_t k = 0; k < nb; k++) {
        const uint64_t block = b0 + k;
        philox4x32_ctr_t ctr = {{(uint32_t)block, (uint32_t)(block >> 32) * 0x9E3779B9u ^ stream ^ (purpose << 24),
                                 (uint32_t)step, (uint32_t)(step >> 32)}};
        philox4x32_ctr_t r = philox4x32(ctr, key);
        for (int q = 0; q < 4; q++) o[4 * k + (uint64_t)q] = u32_to_unit(r.v[q]);
    }
    for (j += 4 * nb; j < n; j++) out[j] = fm_rng_uniform(seed, purpose, step, stream, first + j);
}

FM_HOT void fm_rng_normals(uint64_t seed, uint32_t purpose, uint64_t step, uint32_t stream, float *out, uint64_t n) {
    for (uint64_t i = 0; i < n; i += 2) {
        uint32_t w[4];
        fm_rng_block(seed, purpose, step, stream, i >> 1, w);
        /* 53-bit-ish uniforms in (0, 1] from two words each. */
        double u1 = ((double)w[0] * 4294967296.0 + (double)w[1] + 1.0) / 18446744073709551616.0;
        double u2 = ((double)w[2] * 4294967296.0 + (double)w[3]) / 18446744073709551616.0;
        double r = sqrt(-2.0 * log(u1)), th = 6.283185307179586 * u2;
        out[i] = (float)(r * cos(th));
        if (i + 1 < n) out[i + 1] = (float)(r * sin(th));
    }
}

uint32_t fm_rng_below(uint64_t seed, uint32_t purpose, uint64_t step, uint32_t stream, uint64_t i, uint32_t n) {
    uint32_t w[4];
    fm_rng_block(seed, purpose, step, stream, i, w);
    /* 64-bit product over two words: bias below 2^-32 for any n. */
    uint64_t x = ((uint64_t)w[0] << 32) | w[1];
    return (uint32_t)(((unsigned __int128)x * n) >> 64);
}

void fm_rng_permutation(uint64_t seed, uint32_t purpose, uint64_t step, uint32_t stream, uint32_t *perm, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) perm[i] = i;
    for (uint32_t i = n; i > 1; i--) {
        uint32_t j = fm_rng_below(seed, purpose, step, stream, i, i);
        uint32_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
}
