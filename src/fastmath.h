/* fastmath.h: branch-free float math that vectorises (the loops that call it
 * need -fno-trapping-math, as layers.c and train.c have). The same bits on
 * every x86-64 CPU: only IEEE operations and fmaf, which is exact. */
#ifndef FM_FASTMATH_H
#define FM_FASTMATH_H

#include <math.h>
#include <stdint.h>

static inline float bits_to_float(uint32_t u) {
    union {
        uint32_t u;
        float f;
    } c = {.u = u};
    return c.f;
}

static inline uint32_t float_to_bits(float f) {
    union {
        float f;
        uint32_t u;
    } c = {.f = f};
    return c.u;
}

/* e^x, about 1 ulp; 0 below -87.3 (no subnormals), +inf above 88.7. */
static inline float fm_exp(float x) {
    const float lo = -87.33f, hi = 88.7f;
    float xc = x < lo ? lo : x;
    xc = xc > hi ? hi : xc;
    /* n = round(x / ln2) by the 1.5*2^23 trick; r = x - n ln2 in two parts. */
    const float shift = 12582912.0f;
    float kf = fmaf(xc, 1.44269504088896341f, shift);
    float n = kf - shift;
    int32_t ni = (int32_t)(float_to_bits(kf) - float_to_bits(shift));
    float r = fmaf(n, -0.693145751953125f, xc);
    r = fmaf(n, -1.428606765330187e-06f, r);
    float p = 0.0013941108434f;
    p = fmaf(p, r, 0.00837512639815f);
    p = fmaf(p, r, 0.0416663528968f);
    p = fmaf(p, r, 0.166664155147f);
    p = fmaf(p, r, 0.500000004712f);
    p = fmaf(p, r, 1.00000003772f);
    p = fmaf(p, r, 1.0f);
    /* 2^n split in two factors so that n = 128 (x near 88.7) stays finite. */
    int32_t n1 = ni >> 1, n2 = ni - n1;
    float s1 = bits_to_float((uint32_t)(n1 + 127) << 23);
    float s2 = bits_to_float((uint32_t)(n2 + 127) << 23);
    float y = p * s1 * s2;
    y = x < lo ? 0.0f : y;
    y = x > hi ? INFINITY : y;
    return y;
}

/* The logistic function 1 / (1 + e^-x) with fm_exp: 0 below -88.7, 1 above 87.3. */
static inline float fm_sigmoid(float x) { return 1.0f / (1.0f + fm_exp(-x)); }

#endif
