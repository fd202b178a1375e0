/* layers.c: BERT's building blocks, forward and backward (see layers.h). */
#include "layers.h"

#include <assert.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "fastmath.h"
#include "fm.h"
#include "rng.h"

#include <Random123/philox.h>

/* Column block for reductions over rows: each thread owns whole columns. */
#define FM_COLBLOCK 64

/* ---- fast vectorisable math ------------------------------------------------
 * libm's expf/erff are scalar calls (erff about 14 ns), far too slow for the
 * softmax and GELU of a BERT step; these (and fm_exp, fastmath.h) are
 * branch-free so the compiler vectorises the loops that call them.
 * Coefficients are Chebyshev fits made for this file (relative error about
 * 3e-9 before float rounding); the tests compare them with libm over a dense
 * grid. */


/* The standard normal CDF Phi(x) = 0.5 erfc(-x/sqrt2), accurate in relative
 * terms for negative x too (GELU's left tail). Also returns e^{-x^2/2}. */
static inline float fm_phi(float x, float *gauss) {
    float z = fabsf(x) * 0.70710678118654752f;
    float w = z * z;
    /* |z| < 1: erf(z) = z P(z^2). */
    float pe = 7.87587506269e-5f;
    pe = fmaf(pe, w, -0.000801686428717f);
    pe = fmaf(pe, w, 0.00518908742343f);
    pe = fmaf(pe, w, -0.0268542120106f);
    pe = fmaf(pe, w, 0.112835947152f);
    pe = fmaf(pe, w, -0.376126266667f);
    pe = fmaf(pe, w, 1.12837916585f);
    float e = z * pe;
    float small = 0.5f + 0.5f * (x < 0.0f ? -e : e);
    /* |z| >= 1: erfc(z) = t exp(-z^2 + S(t - 0.295)), t = 1 / (1 + z). */
    float t = 1.0f / (1.0f + z);
    float u = t - 0.295f;
    float s = -5.8321501994f;
    s = fmaf(s, u, 0.994421080355f);
    s = fmaf(s, u, 2.27989146798f);
    s = fmaf(s, u, -1.42686455408f);
    s = fmaf(s, u, -0.255685705697f);
    s = fmaf(s, u, 0.869733421432f);
    s = fmaf(s, u, -0.311129988909f);
    s = fmaf(s, u, -0.585861371024f);
    s = fmaf(s, u, 0.809542229343f);
    s = fmaf(s, u, -0.296484864889f);
    float c = t * fm_exp(s - w);
    float big = x < 0.0f ? 0.5f * c : 1.0f - 0.5f * c;
    if (gauss) *gauss = fm_exp(-w);
    return z < 1.0f ? small : big;
}

#define FM_SQRT_2_OVER_PI 0.79788456080286536f
#define FM_GELU_C 0.044715f
#define FM_INV_SQRT_2PI 0.39894228040143268f

static inline float gelu_fast(float x, fm_act act) {
    if (act == FM_GELU_TANH) {
        /* 0.5x(1+tanh(u)) = x sigmoid(2u), exact in the left tail too. */
        float u = FM_SQRT_2_OVER_PI * (x + FM_GELU_C * x * x * x);
        float s = 1.0f / (1.0f + fm_exp(-2.0f * u));
        return x * s;
    }
    return x * fm_phi(x, NULL);
}

/* gelu'(x), and gelu(x) in *val, sharing the exponentials. */
static inline float gelu_both_fast(float x, fm_act act, float *val) {
    if (act == FM_GELU_TANH) {
        float u = FM_SQRT_2_OVER_PI * (x + FM_GELU_C * x * x * x);
        float du = FM_SQRT_2_OVER_PI * (1.0f + 3.0f * FM_GELU_C * x * x);
        float s = 1.0f / (1.0f + fm_exp(-2.0f * u));
        *val = x * s;
        return s + 2.0f * x * s * (1.0f - s) * du;
    }
    float g;
    float ph = fm_phi(x, &g);
    *val = x * ph;
    return ph + x * FM_INV_SQRT_2PI * g;
}

static inline float gelu_grad_fast(float x, fm_act act) {
    if (act == FM_GELU_TANH) {
        float u = FM_SQRT_2_OVER_PI * (x + FM_GELU_C * x * x * x);
        float du = FM_SQRT_2_OVER_PI * (1.0f + 3.0f * FM_GELU_C * x * x);
        float s = 1.0f / (1.0f + fm_exp(-2.0f * u));
        return s + 2.0f * x * s * (1.0f - s) * du;
    }
    float g;
    float ph = fm_phi(x, &g);
    return ph + x * FM_INV_SQRT_2PI * g;
}

/* ---- dropout ----------------------------------------------------------------- */

uint32_t fm_dropout_stream(int layer, fm_drop_site site) { return (uint32_t)(layer + 1) * 16u + (uint32_t)site; }

/* Keep-nibbles of blocks [b0, b0 + nb) of a dropout stream: bit k of nib[i]
 * is word k of block b0 + i passing the threshold. The words are those of
 * fm_rng_block (rng.c) for purpose FM_RNG_DROPOUT: the same Philox4x32-10,
 * key and counter layout, inlined here so that the compiler vectorises over
 * blocks (fm_rng_block is one out-of-line call per block, several times
 * slower). fm_dropout_bits_ref goes through fm_rng_block and the tests hold
 * the two together. */
static void dropout_nibbles(uint8_t *restrict nib, uint64_t seed, uint64_t step, uint32_t stream, uint64_t b0, int nb,
                            uint32_t thr) {
    const uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    const uint32_t c2 = (uint32_t)step, c3 = (uint32_t)(step >> 32);
    const uint32_t tag = stream ^ ((uint32_t)FM_RNG_DROPOUT << 24);
#pragma omp simd
    for (int i = 0; i < nb; i++) {
        uint64_t blk = b0 + (uint64_t)i;
        philox4x32_key_t key = {{k0, k1}};
        philox4x32_ctr_t ctr = {{(uint32_t)blk, (uint32_t)(blk >> 32) * 0x9E3779B9u ^ tag, c2, c3}};
        philox4x32_ctr_t r = philox4x32(ctr, key);
        nib[i] = (uint8_t)(((r.v[0] >> 8) >= thr) | (((r.v[1] >> 8) >= thr) << 1) | (((r.v[2] >> 8) >= thr) << 2) |
                           (((r.v[3] >> 8) >= thr) << 3));
    }
}

FM_HOT void fm_dropout_bits(uint64_t *bits, uint64_t seed, uint64_t step, uint32_t stream, uint64_t first, int n, float p) {
    const int nw = fm_bits_words(n);
    memset(bits, 0, (size_t)nw * sizeof *bits);
    if (n <= 0) return;
    /* u >= p  <=>  (w >> 8) >= ceil(p 2^24), with u = (w >> 8) 2^-24 as in rng.c. */
    const uint32_t thr = (uint32_t)ceil((double)p * 16777216.0);
    /* The bit string S of blocks b0, b0+1, ... (4 bits each); bit j of the
     * result is bit j + skip of S. */
    const int skip = (int)(first & 3);
    const uint64_t b0 = first >> 2;
    const int nb = (skip + n + 3) / 4;
    enum { CH = 256 }; /* blocks per chunk: 16 words of S */
    uint8_t nib[CH];
    for (int c0 = 0; c0 < nb; c0 += CH) {
        int cn = nb - c0 < CH ? nb - c0 : CH;
        dropout_nibbles(nib, seed, step, stream, b0 + (uint64_t)c0, cn, thr);
        for (int w = 0; w * 16 < cn; w++) {
            uint64_t sw = 0;
            for (int i = 0; i < 16 && w * 16 + i < cn; i++) sw |= (uint64_t)nib[w * 16 + i] << (4 * i);
            int wg = c0 / 16 + w; /* S word index: result bits [64 wg - skip, 64 wg - skip + 64) */
            if (skip == 0) {
                if (wg < nw) bits[wg] |= sw;
            } else {
                if (wg - 1 >= 0 && wg - 1 < nw) bits[wg - 1] |= sw << (64 - skip);
                if (wg < nw) bits[wg] |= sw >> skip;
            }
        }
    }
    if (n & 63) bits[nw - 1] &= ((uint64_t)1 << (n & 63)) - 1;
}

void fm_dropout_bits_ref(uint64_t *bits, uint64_t seed, uint64_t step, uint32_t stream, uint64_t first, int n,
                         float p) {
    memset(bits, 0, (size_t)fm_bits_words(n) * sizeof *bits);
    for (int j = 0; j < n; j++)
        if (fm_rng_uniform(seed, FM_RNG_DROPOUT, step, stream, first + (uint64_t)j) >= p)
            bits[j >> 6] |= (uint64_t)1 << (j & 63);
}

FM_HOT void fm_dropout_residual_forward(float *out, uint64_t *bits, const float *x, const float *bias, const float *res,
                                 int R, int C, int T, int P, const fm_drop *d) {
    const int on = fm_drop_on(d);
    const int nw = fm_bits_words(C);
    const float scale = on ? 1.0f / (1.0f - d->p) : 1.0f;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < R; r++) {
        const float *xr = x + (size_t)r * C;
        const float *rr = res ? res + (size_t)r * C : NULL;
        float *o = out + (size_t)r * C;
        if (on) {
            uint64_t *br = bits + (size_t)r * nw;
            int b = r / T, t = r % T;
            uint64_t first = ((uint64_t)(d->example0 + b) * (uint64_t)P + (uint64_t)t) * (uint64_t)C;
            fm_dropout_bits(br, d->seed, d->step, d->stream, first, C, d->p);
            for (int j = 0; j < C; j++) {
                float v = fm_bit(br, j) ? (bias ? xr[j] + bias[j] : xr[j]) * scale : 0.0f;
                o[j] = rr ? v + rr[j] : v;
            }
        } else {
#pragma omp simd
            for (int j = 0; j < C; j++) {
                float v = bias ? xr[j] + bias[j] : xr[j];
                o[j] = rr ? v + rr[j] : v;
            }
        }
    }
}

/* One row through dropout: out[j] = in[j] * scale where bit j is set, else 0
 * (out may be in). */
static inline void drop_row(float *out, const float *in, const uint64_t *bits, int n, float scale) {
    for (int j = 0; j < n; j++) out[j] = fm_bit(bits, j) ? in[j] * scale : 0.0f;
}

FM_HOT void fm_dropout_backward(float *dx, const float *dout, const uint64_t *bits, int R, int C, const fm_drop *d) {
    const int on = fm_drop_on(d);
    const int nw = fm_bits_words(C);
    const float scale = on ? 1.0f / (1.0f - d->p) : 1.0f;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < R; r++) {
        const float *g = dout + (size_t)r * C;
        float *o = dx + (size_t)r * C;
        if (on) {
            drop_row(o, g, bits + (size_t)r * nw, C, scale);
        } else if (o != g) {
            memcpy(o, g, (size_t)C * sizeof *o);
        }
    }
}

/* ---- residual, GELU, tanh ------------------------------------------------------- */

FM_HOT void fm_residual_forward(float *out, const float *a, const float *b, size_t N) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < N; i++) out[i] = a[i] + b[i];
}

FM_HOT void fm_residual_backward(float *da, float *db, const float *dout, size_t N) {
    if (da) {
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < N; i++) da[i] += dout[i];
    }
    if (db) {
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < N; i++) db[i] += dout[i];
    }
}

FM_HOT void fm_gelu_forward(float *out, float *pre, const float *x, const float *bias, int R, int C, fm_act act) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < R; r++) {
        const float *xr = x + (size_t)r * C;
        float *pr = pre ? pre + (size_t)r * C : NULL;
        float *o = out + (size_t)r * C;
        if (act == FM_GELU_TANH) {
#pragma omp simd
            for (int j = 0; j < C; j++) {
                float v = bias ? xr[j] + bias[j] : xr[j];
                if (pr) pr[j] = v;
                o[j] = gelu_fast(v, FM_GELU_TANH);
            }
        } else {
#pragma omp simd
            for (int j = 0; j < C; j++) {
                float v = bias ? xr[j] + bias[j] : xr[j];
                if (pr) pr[j] = v;
                o[j] = gelu_fast(v, FM_GELU_ERF);
            }
        }
    }
}

FM_HOT void fm_gelu_backward(float *dx, float *out, const float *dout, const float *pre, size_t N, fm_act act) {
    if (act == FM_GELU_TANH && out) {
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < N; i++) dx[i] = dout[i] * gelu_both_fast(pre[i], FM_GELU_TANH, &out[i]);
    } else if (act == FM_GELU_TANH) {
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < N; i++) dx[i] = dout[i] * gelu_grad_fast(pre[i], FM_GELU_TANH);
    } else if (out) {
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < N; i++) dx[i] = dout[i] * gelu_both_fast(pre[i], FM_GELU_ERF, &out[i]);
    } else {
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < N; i++) dx[i] = dout[i] * gelu_grad_fast(pre[i], FM_GELU_ERF);
    }
}

void fm_gelu_forward_ref(float *out, const float *x, size_t N, fm_act act) {
    for (size_t i = 0; i < N; i++) {
        float v = x[i];
        if (act == FM_GELU_TANH)
            out[i] = 0.5f * v * (1.0f + tanhf(FM_SQRT_2_OVER_PI * (v + FM_GELU_C * v * v * v)));
        else
            out[i] = 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
    }
}

void fm_gelu_backward_ref(float *dx, const float *dout, const float *pre, size_t N, fm_act act) {
    for (size_t i = 0; i < N; i++) {
        float v = pre[i], g;
        if (act == FM_GELU_TANH) {
            float th = tanhf(FM_SQRT_2_OVER_PI * (v + FM_GELU_C * v * v * v));
            g = 0.5f * (1.0f + th) + 0.5f * v * (1.0f - th * th) * FM_SQRT_2_OVER_PI * (1.0f + 3.0f * FM_GELU_C * v * v);
        } else {
            g = 0.5f * (1.0f + erff(v * 0.70710678118654752f)) + v * FM_INV_SQRT_2PI * expf(-0.5f * v * v);
        }
        dx[i] = dout[i] * g;
    }
}

FM_HOT void fm_tanh_forward(float *out, const float *x, const float *bias, int R, int C) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < R; r++)
        for (int j = 0; j < C; j++) {
            size_t i = (size_t)r * C + j;
            out[i] = tanhf(bias ? x[i] + bias[j] : x[i]);
        }
}

FM_HOT void fm_tanh_backward(float *dx, const float *dout, const float *out, size_t N) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < N; i++) dx[i] = dout[i] * (1.0f - out[i] * out[i]);
}

/* ---- embeddings ---------------------------------------------------------------- */

FM_HOT void fm_embed_sum_forward(float *out, const int32_t *ids, const int32_t *type_ids, const float *word,
                          const float *pos, const float *type, int B, int T, int H) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < B * T; r++) {
        int t = r % T;
        int tt = type_ids ? type_ids[r] : 0;
        const float *we = word + (size_t)ids[r] * H, *pe = pos + (size_t)t * H, *te = type + (size_t)tt * H;
        float *o = out + (size_t)r * H;
#pragma omp simd
        for (int j = 0; j < H; j++) o[j] = we[j] + pe[j] + te[j];
    }
}

FM_HOT void fm_embed_sum_backward(float *dword, float *dpos, float *dtype, const float *dout, const int32_t *ids,
                           const int32_t *type_ids, int pad_id, int B, int T, int H) {
    const int nblk = (H + FM_COLBLOCK - 1) / FM_COLBLOCK;
    /* Each thread owns a block of columns of all three tables: fixed order. */
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblk; blk++) {
        int c0 = blk * FM_COLBLOCK, c1 = c0 + FM_COLBLOCK < H ? c0 + FM_COLBLOCK : H;
        for (int r = 0; r < B * T; r++) {
            const float *g = dout + (size_t)r * H;
            if (dword && ids[r] != pad_id) {
                float *d = dword + (size_t)ids[r] * H;
                for (int j = c0; j < c1; j++) d[j] += g[j];
            }
            if (dpos) {
                float *d = dpos + (size_t)(r % T) * H;
                for (int j = c0; j < c1; j++) d[j] += g[j];
            }
            if (dtype) {
                float *d = dtype + (size_t)(type_ids ? type_ids[r] : 0) * H;
                for (int j = c0; j < c1; j++) d[j] += g[j];
            }
        }
    }
}

/* ---- LayerNorm -------------------------------------------------------------------- */

FM_HOT void fm_layernorm_forward(float *out, float *mean, float *rstd, const float *x, const float *g, const float *b, int N,
                          int C, float eps) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *xr = x + (size_t)n * C;
        float *o = out + (size_t)n * C;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int j = 0; j < C; j++) s += xr[j];
        float m = s / (float)C;
        float v = 0.0f;
#pragma omp simd reduction(+ : v)
        for (int j = 0; j < C; j++) {
            float d = xr[j] - m;
            v += d * d;
        }
        float rs = 1.0f / sqrtf(v / (float)C + eps);
#pragma omp simd
        for (int j = 0; j < C; j++) o[j] = (xr[j] - m) * rs * g[j] + b[j];
        mean[n] = m;
        rstd[n] = rs;
    }
}

void fm_layernorm_forward_ref(float *out, float *mean, float *rstd, const float *x, const float *g, const float *b,
                              int N, int C, float eps) {
    for (int n = 0; n < N; n++) {
        const float *xr = x + (size_t)n * C;
        double s = 0, v = 0;
        for (int j = 0; j < C; j++) s += xr[j];
        double m = s / C;
        for (int j = 0; j < C; j++) v += (xr[j] - m) * (xr[j] - m);
        double rs = 1.0 / sqrt(v / C + eps);
        for (int j = 0; j < C; j++) out[(size_t)n * C + j] = (float)((xr[j] - m) * rs * g[j] + b[j]);
        mean[n] = (float)m;
        rstd[n] = (float)rs;
    }
}

FM_HOT void fm_layernorm_backward(float *dx, float *dg, float *db, const float *dout, const float *x, const float *mean,
                           const float *rstd, const float *g, int N, int C) {
    /* The gain and bias gradients first (column blocks, rows in order), so
     * that dx may overwrite dout afterwards. */
    if (dg || db) {
        const int nblk = (C + FM_COLBLOCK - 1) / FM_COLBLOCK;
#pragma omp parallel for schedule(static)
        for (int blk = 0; blk < nblk; blk++) {
            int c0 = blk * FM_COLBLOCK, c1 = c0 + FM_COLBLOCK < C ? c0 + FM_COLBLOCK : C, w = c1 - c0;
            float ag[FM_COLBLOCK] = {0}, ab[FM_COLBLOCK] = {0};
            for (int n = 0; n < N; n++) {
                const float *xr = x + (size_t)n * C + c0, *dr = dout + (size_t)n * C + c0;
                const float m = mean[n], rs = rstd[n];
#pragma omp simd
                for (int j = 0; j < w; j++) {
                    ag[j] += dr[j] * ((xr[j] - m) * rs);
                    ab[j] += dr[j];
                }
            }
            for (int j = 0; j < w; j++) {
                if (dg) dg[c0 + j] += ag[j];
                if (db) db[c0 + j] += ab[j];
            }
        }
    }
    const float invC = 1.0f / (float)C;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *xr = x + (size_t)n * C, *dr = dout + (size_t)n * C;
        float *o = dx + (size_t)n * C;
        const float m = mean[n], rs = rstd[n];
        float s1 = 0.0f, s2 = 0.0f;
#pragma omp simd reduction(+ : s1, s2)
        for (int j = 0; j < C; j++) {
            float xh = (xr[j] - m) * rs;
            float dxh = dr[j] * g[j];
            s1 += dxh;
            s2 += dxh * xh;
        }
        s1 *= invC;
        s2 *= invC;
#pragma omp simd
        for (int j = 0; j < C; j++) {
            float xh = (xr[j] - m) * rs;
            o[j] = rs * (dr[j] * g[j] - s1 - xh * s2);
        }
    }
}

/* ---- linear ------------------------------------------------------------------------- */

void fm_linear_forward(float *out, const float *x, ptrdiff_t ldx, const float *w, const float *b, int M, int K,
                       int N) {
    if (b) {
#pragma omp parallel for schedule(static)
        for (int i = 0; i < M; i++) memcpy(out + (size_t)i * N, b, (size_t)N * sizeof *out);
    }
    fm_sgemm(M, N, K, 1.0f, x, ldx, 1, w, 1, K, b ? 1.0f : 0.0f, out, N, 1);
}

void fm_linear_forward_ref(float *out, const float *x, ptrdiff_t ldx, const float *w, const float *b, int M, int K,
                           int N) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = b ? b[j] : 0.0;
            for (int p = 0; p < K; p++) s += (double)x[(size_t)i * ldx + p] * (double)w[(size_t)j * K + p];
            out[(size_t)i * N + j] = (float)s;
        }
}

FM_HOT void fm_bias_backward(float *db, const float *dout, int M, int N) {
    const int nblk = (N + FM_COLBLOCK - 1) / FM_COLBLOCK;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblk; blk++) {
        int c0 = blk * FM_COLBLOCK, c1 = c0 + FM_COLBLOCK < N ? c0 + FM_COLBLOCK : N, w = c1 - c0;
        float acc[FM_COLBLOCK] = {0};
        for (int i = 0; i < M; i++) {
            const float *d = dout + (size_t)i * N + c0;
#pragma omp simd
            for (int j = 0; j < w; j++) acc[j] += d[j];
        }
        for (int j = 0; j < w; j++) db[c0 + j] += acc[j];
    }
}

void fm_linear_backward(float *dx, int accumulate, float *dw, float *db, const float *dout, const float *x,
                        ptrdiff_t ldx, const float *w, int M, int K, int N) {
    if (dx) fm_sgemm(M, K, N, 1.0f, dout, N, 1, w, K, 1, accumulate ? 1.0f : 0.0f, dx, K, 1);
    if (dw) fm_sgemm(N, K, M, 1.0f, dout, 1, N, x, ldx, 1, 1.0f, dw, K, 1);
    if (db) fm_bias_backward(db, dout, M, N);
}

void fm_linear_forward_cls(float *out, const float *x, ptrdiff_t ldx, const float *w, const float *b, int B, int T,
                           int K, int N) {
    if (b)
        for (int i = 0; i < B; i++) memcpy(out + (size_t)i * N, b, (size_t)N * sizeof *out);
    fm_sgemm_rows_of(B * T, B, N, K, 1.0f, x, ldx, 1, w, 1, K, b ? 1.0f : 0.0f, out, N, 1);
}

void fm_linear_backward_cls(float *dx, int accumulate, float *dw, float *db, const float *dout, const float *x,
                            ptrdiff_t ldx, const float *w, int B, int T, int K, int N) {
    if (dx) fm_sgemm_rows_of(B * T, B, K, N, 1.0f, dout, N, 1, w, K, 1, accumulate ? 1.0f : 0.0f, dx, K, 1);
    if (dw) {
        int *kidx = fm_xmalloc((size_t)B * sizeof *kidx);
        for (int i = 0; i < B; i++) kidx[i] = i * T;
        fm_sgemm_sparse_k(N, K, B * T, kidx, B, 1.0f, dout, 1, N, x, ldx, 1, 1.0f, dw, K, 1);
        free(kidx);
    }
    if (db) fm_bias_backward(db, dout, B, N);
}

/* ---- attention ------------------------------------------------------------------------ */

/* Back through one row's dropout (when bits is not NULL) and softmax p, in
 * place: r = dL/d(dropped p) in, dS = p (dP - p.dP) out. */
static inline void softmax_drop_row_backward(float *r, const float *p, const uint64_t *bits, int n, float scale) {
    if (bits) drop_row(r, r, bits, n, scale);
    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
    for (int j = 0; j < n; j++) dot += p[j] * r[j];
#pragma omp simd
    for (int j = 0; j < n; j++) r[j] = p[j] * (r[j] - dot);
}

/* Softmax of one row in place, in float with the max subtracted. */
static void softmax_row(float *row, int n) {
    float mx = -INFINITY;
    for (int j = 0; j < n; j++) mx = row[j] > mx ? row[j] : mx;
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int j = 0; j < n; j++) {
        float e = fm_exp(row[j] - mx);
        row[j] = e;
        s += e;
    }
    float inv = 1.0f / s;
#pragma omp simd
    for (int j = 0; j < n; j++) row[j] *= inv;
}

static inline uint64_t attn_counter(const fm_drop *d, int b, int h, int i, int A, int P) {
    return (((uint64_t)(d->example0 + b) * (uint64_t)A + (uint64_t)h) * (uint64_t)P + (uint64_t)i) * (uint64_t)P;
}

void fm_attention_forward(float *ctx, float *probs, uint64_t *bits, const float *q, const float *k, const float *v,
                          const float *mask, int B, int T, int H, int A, int P, const fm_drop *d) {
    fm_attention_forward_heads(ctx, probs, bits, q, k, v, mask, B, T, H, A, A, 0, 1, P, d);
}

FM_HOT void fm_attention_forward_heads(float *ctx, float *probs, uint64_t *bits, const float *q, const float *k,
                                       const float *v, const float *mask, int B, int T, int H, int A, int Aall,
                                       int h0, int hstep, int P, const fm_drop *d) {
    const int hs = H / A, nw = fm_bits_words(T), on = fm_drop_on(d);
    const float alpha = 1.0f / sqrtf((float)hs), scale = on ? 1.0f / (1.0f - d->p) : 1.0f;
#pragma omp parallel
    {
        float *pd = on ? fm_xalloc_floats((size_t)T * T) : NULL;
        float *madd = fm_xalloc_floats((size_t)T);
#pragma omp for schedule(static)
        for (int bh = 0; bh < B * A; bh++) {
            const int b = bh / A, h = bh % A;
            const size_t off = (size_t)b * T * H + (size_t)h * hs;
            float *S = probs + (size_t)bh * T * T;
            fm_sgemm_1t(T, T, hs, alpha, q + off, H, 1, k + off, 1, H, 0.0f, S, T, 1);
            if (mask)
                for (int j = 0; j < T; j++) madd[j] = (1.0f - mask[(size_t)b * T + j]) * -FLT_MAX;
            for (int i = 0; i < T; i++) {
                float *row = S + (size_t)i * T;
                if (mask)
                    for (int j = 0; j < T; j++) row[j] += madd[j];
                softmax_row(row, T);
                if (on) {
                    uint64_t *br = bits + ((size_t)bh * T + i) * nw;
                    fm_dropout_bits(br, d->seed, d->step, d->stream, attn_counter(d, b, h0 + h * hstep, i, Aall, P),
                                    T, d->p);
                    drop_row(pd + (size_t)i * T, row, br, T, scale);
                }
            }
            fm_sgemm_1t(T, hs, T, 1.0f, on ? pd : S, T, 1, v + off, H, 1, 0.0f, ctx + off, H, 1);
        }
        fm_free_aligned(pd);
        fm_free_aligned(madd);
    }
}

FM_HOT void fm_attention_backward(float *dq, float *dk, float *dv, const float *dctx, const float *probs,
                           const uint64_t *bits, const float *q, const float *k, const float *v, int B, int T, int H,
                           int A, const fm_drop *d) {
    const int hs = H / A, nw = fm_bits_words(T), on = fm_drop_on(d);
    const float alpha = 1.0f / sqrtf((float)hs), scale = on ? 1.0f / (1.0f - d->p) : 1.0f;
#pragma omp parallel
    {
        float *dp = fm_xalloc_floats((size_t)T * T);
        float *pd = on ? fm_xalloc_floats((size_t)T * T) : NULL;
#pragma omp for schedule(static)
        for (int bh = 0; bh < B * A; bh++) {
            const int b = bh / A, h = bh % A;
            const size_t off = (size_t)b * T * H + (size_t)h * hs;
            const float *Pm = probs + (size_t)bh * T * T;
            const uint64_t *bb = on ? bits + (size_t)bh * T * nw : NULL;
            /* d(dropped probs) = dctx V^T */
            fm_sgemm_1t(T, T, hs, 1.0f, dctx + off, H, 1, v + off, 1, H, 0.0f, dp, T, 1);
            /* dV = dropped_probs^T dctx */
            if (on)
                for (int i = 0; i < T; i++) drop_row(pd + (size_t)i * T, Pm + (size_t)i * T, bb + (size_t)i * nw, T, scale);
            fm_sgemm_1t(T, hs, T, 1.0f, on ? pd : Pm, 1, T, dctx + off, H, 1, 0.0f, dv + off, H, 1);
            /* through dropout and softmax: dS = P (dP - rowsum(P dP)) */
            for (int i = 0; i < T; i++)
                softmax_drop_row_backward(dp + (size_t)i * T, Pm + (size_t)i * T, on ? bb + (size_t)i * nw : NULL, T,
                                          scale);
            /* S = alpha Q K^T: dQ = alpha dS K, dK = alpha dS^T Q */
            fm_sgemm_1t(T, hs, T, alpha, dp, T, 1, k + off, H, 1, 0.0f, dq + off, H, 1);
            fm_sgemm_1t(T, hs, T, alpha, dp, 1, T, q + off, H, 1, 0.0f, dk + off, H, 1);
        }
        fm_free_aligned(dp);
        fm_free_aligned(pd);
    }
}

FM_HOT void fm_attention_cls_forward(float *ctx, float *probs, uint64_t *bits, const float *q, const float *k,
                              const float *v, const float *mask, int B, int T, int H, int A, int P,
                              const fm_drop *d) {
    const int hs = H / A, nw = fm_bits_words(T), on = fm_drop_on(d);
    const float alpha = 1.0f / sqrtf((float)hs), scale = on ? 1.0f / (1.0f - d->p) : 1.0f;
#pragma omp parallel
    {
        float *pd = on ? fm_xalloc_floats((size_t)T) : NULL;
#pragma omp for schedule(static)
        for (int bh = 0; bh < B * A; bh++) {
            const int b = bh / A, h = bh % A;
            const size_t off = (size_t)b * T * H + (size_t)h * hs, qoff = (size_t)b * H + (size_t)h * hs;
            float *row = probs + (size_t)bh * T;
            fm_sgemm_1t(1, T, hs, alpha, q + qoff, H, 1, k + off, 1, H, 0.0f, row, T, 1);
            if (mask)
                for (int j = 0; j < T; j++) row[j] += (1.0f - mask[(size_t)b * T + j]) * -FLT_MAX;
            softmax_row(row, T);
            if (on) {
                uint64_t *br = bits + (size_t)bh * nw;
                fm_dropout_bits(br, d->seed, d->step, d->stream, attn_counter(d, b, h, 0, A, P), T, d->p);
                drop_row(pd, row, br, T, scale);
            }
            fm_sgemm_1t(1, hs, T, 1.0f, on ? pd : row, T, 1, v + off, H, 1, 0.0f, ctx + qoff, H, 1);
        }
        fm_free_aligned(pd);
    }
}

FM_HOT void fm_attention_cls_backward(float *dq, float *dk, float *dv, const float *dctx, const float *probs,
                               const uint64_t *bits, const float *q, const float *k, const float *v, int B, int T,
                               int H, int A, const fm_drop *d) {
    const int hs = H / A, nw = fm_bits_words(T), on = fm_drop_on(d);
    const float alpha = 1.0f / sqrtf((float)hs), scale = on ? 1.0f / (1.0f - d->p) : 1.0f;
#pragma omp parallel
    {
        float *dp = fm_xalloc_floats((size_t)T);
        float *pd = on ? fm_xalloc_floats((size_t)T) : NULL;
#pragma omp for schedule(static)
        for (int bh = 0; bh < B * A; bh++) {
            const int b = bh / A, h = bh % A;
            const size_t off = (size_t)b * T * H + (size_t)h * hs, qoff = (size_t)b * H + (size_t)h * hs;
            const float *pr = probs + (size_t)bh * T;
            const uint64_t *br = on ? bits + (size_t)bh * nw : NULL;
            /* d(dropped probs) = dctx V^T (one row) */
            fm_sgemm_1t(1, T, hs, 1.0f, dctx + qoff, H, 1, v + off, 1, H, 0.0f, dp, T, 1);
            /* dV = dropped_probs^T dctx: an outer product */
            if (on) drop_row(pd, pr, br, T, scale);
            fm_sgemm_1t(T, hs, 1, 1.0f, on ? pd : pr, 1, T, dctx + qoff, H, 1, 0.0f, dv + off, H, 1);
            /* through dropout and softmax: dS = P (dP - P.dP) */
            softmax_drop_row_backward(dp, pr, br, T, scale);
            /* dQ = alpha dS K (one row), dK = alpha dS^T Q (an outer product) */
            fm_sgemm_1t(1, hs, T, alpha, dp, T, 1, k + off, H, 1, 0.0f, dq + qoff, H, 1);
            fm_sgemm_1t(T, hs, 1, alpha, dp, 1, T, q + qoff, H, 1, 0.0f, dk + off, H, 1);
        }
        fm_free_aligned(dp);
        fm_free_aligned(pd);
    }
}

void fm_attention_forward_ref(float *ctx, float *probs, const float *q, const float *k, const float *v,
                              const float *mask, int B, int T, int H, int A, int P, const fm_drop *d) {
    const int hs = H / A, on = fm_drop_on(d);
    const double alpha = 1.0 / sqrt((double)hs);
    uint64_t *br = fm_xmalloc((size_t)fm_bits_words(T) * sizeof *br);
    double *row = fm_xmalloc((size_t)T * sizeof *row);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < A; h++)
            for (int i = 0; i < T; i++) {
                const float *qi = q + ((size_t)b * T + i) * H + (size_t)h * hs;
                double mx = -INFINITY, s = 0;
                for (int j = 0; j < T; j++) {
                    const float *kj = k + ((size_t)b * T + j) * H + (size_t)h * hs;
                    double acc = 0;
                    for (int c = 0; c < hs; c++) acc += (double)qi[c] * kj[c];
                    acc *= alpha;
                    if (mask) acc += (1.0 - mask[(size_t)b * T + j]) * -(double)FLT_MAX;
                    row[j] = acc;
                    if (acc > mx) mx = acc;
                }
                for (int j = 0; j < T; j++) s += (row[j] = exp(row[j] - mx));
                float *pr = probs + (((size_t)b * A + h) * T + i) * T;
                for (int j = 0; j < T; j++) pr[j] = (float)(row[j] /= s);
                if (on) {
                    fm_dropout_bits(br, d->seed, d->step, d->stream, attn_counter(d, b, h, i, A, P), T, d->p);
                    for (int j = 0; j < T; j++) row[j] = fm_bit(br, j) ? row[j] / (1.0 - d->p) : 0.0;
                }
                float *ci = ctx + ((size_t)b * T + i) * H + (size_t)h * hs;
                for (int c = 0; c < hs; c++) {
                    double acc = 0;
                    for (int j = 0; j < T; j++) acc += row[j] * v[((size_t)b * T + j) * H + (size_t)h * hs + c];
                    ci[c] = (float)acc;
                }
            }
    free(br);
    free(row);
}

/* ---- losses -------------------------------------------------------------------------------- */

FM_HOT float fm_crossentropy_forward(float *probs, const float *logits, const int32_t *labels, int N, int C) {
    float *rowloss = fm_xmalloc((size_t)(N > 0 ? N : 1) * sizeof *rowloss);
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = logits + (size_t)n * C;
        float mx = -INFINITY;
        for (int j = 0; j < C; j++) mx = x[j] > mx ? x[j] : mx;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int j = 0; j < C; j++) s += fm_exp(x[j] - mx);
        int y = labels[n];
        rowloss[n] = (y >= 0 && y < C) ? (mx + logf(s)) - x[y] : 0.0f;
        if (probs) { /* after the loss: probs may alias logits */
            float inv = 1.0f / s;
            float *p = probs + (size_t)n * C;
#pragma omp simd
            for (int j = 0; j < C; j++) p[j] = fm_exp(x[j] - mx) * inv;
        }
    }
    double total = 0;
    for (int n = 0; n < N; n++) total += rowloss[n];
    free(rowloss);
    return (float)total;
}

FM_HOT void fm_crossentropy_backward(float *dlogits, const float *probs, const int32_t *labels, float scale, int N, int C) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *d = dlogits + (size_t)n * C;
        const float *p = probs + (size_t)n * C;
        int y = labels[n];
        if (y < 0 || y >= C) {
            memset(d, 0, (size_t)C * sizeof *d);
            continue;
        }
#pragma omp simd
        for (int j = 0; j < C; j++) d[j] = scale * p[j];
        d[y] = scale * (p[y] - 1.0f);
    }
}

float fm_mse_forward(const float *pred, const float *target, int N) {
    double s = 0;
    for (int n = 0; n < N; n++) {
        double e = (double)pred[n] - (double)target[n];
        s += e * e;
    }
    return (float)s;
}

void fm_mse_backward(float *dpred, const float *pred, const float *target, float scale, int N) {
    for (int n = 0; n < N; n++) dpred[n] = scale * 2.0f * (pred[n] - target[n]);
}
