/* test_layers.c: every layer of layers.c against an independent plain
 * double-precision forward written here, and every backward against central
 * finite differences of that double forward.
 *
 * How the gradient checks work: the float layer runs forward and backward
 * with dout = R (a fixed random matrix), so its input gradients are those of
 * the scalar loss sum(R * out). The same loss is evaluated in double by the
 * reference forward on the same (float-valued) inputs, and each input entry
 * is moved by +-h (h = 1e-5) for a central difference. In double the
 * difference is exact to about 1e-10 relative (truncation h^2 f''' plus
 * roundoff 1e-16/h), so what is left is the float kernel's own rounding:
 * about 1e-6 of the gradient's scale after a few accumulations. The check is
 *   |analytic - numeric| <= RTOL |numeric| + ATOL max|numeric|
 * with RTOL = 1e-4 and ATOL = 1e-5: some 10-100x above the float noise
 * measured here (reported on failure), and orders of magnitude below the
 * O(1) relative error of any real mistake (a wrong sign, index or factor). */
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "fastmath.h"
#include "fm.h"
#include "layers.h"
#include "rng.h"
#include "testutil.h"

#define FD_H 1e-5
#define RTOL 1e-4
#define ATOL 1e-5

/* ---- helpers ---------------------------------------------------------------- */

static uint64_t lcg_state = 12345;
static double urand(void) { /* uniform in [-1, 1) */
    lcg_state = lcg_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(lcg_state >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}
static void fill(float *x, size_t n, double lo, double hi) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(lo + (hi - lo) * 0.5 * (urand() + 1.0));
}
static double *to_double(const float *x, size_t n) {
    double *d = malloc((n ? n : 1) * sizeof *d);
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

/* Compare analytic float gradients with numeric double ones (see the top). */
static void check_grad(const char *what, const float *a, const double *num, size_t n) {
    double scale = 0, worst = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(num[i]));
    size_t bad = n;
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)a[i] - num[i]);
        double tol = RTOL * fabs(num[i]) + ATOL * scale;
        if (scale > 0) worst = fmax(worst, err / scale);
        if (err > tol && bad == n) bad = i;
    }
    if (bad < n) {
        print_error("%s: entry %zu analytic %.9g numeric %.9g (scale %.3g, worst err/scale %.3g)\n", what, bad,
                    (double)a[bad], num[bad], scale, worst);
        fail();
    }
    if (getenv("FM_TEST_VERBOSE")) print_message("%s: n=%zu scale %.3g worst err/scale %.3g\n", what, n, scale, worst);
}

/* Numeric gradient of loss() with respect to every entry of p (n entries). */
typedef double (*loss_fn)(void *ctx);
static double *numeric_grad(double *p, size_t n, loss_fn loss, void *ctx) {
    double *g = malloc((n ? n : 1) * sizeof *g);
    for (size_t i = 0; i < n; i++) {
        double s = p[i];
        p[i] = s + FD_H;
        double lp = loss(ctx);
        p[i] = s - FD_H;
        double lm = loss(ctx);
        p[i] = s;
        g[i] = (lp - lm) / (2 * FD_H);
    }
    return g;
}

static void assert_close_rel(const char *what, const float *a, const double *e, size_t n, double rtol, double atol) {
    for (size_t i = 0; i < n; i++) {
        if (!(fabs((double)a[i] - e[i]) <= rtol * fabs(e[i]) + atol)) {
            print_error("%s: entry %zu got %.9g expected %.9g\n", what, i, (double)a[i], e[i]);
            fail();
        }
    }
}

/* ---- LayerNorm ---------------------------------------------------------------- */

typedef struct {
    double *x, *g, *b, *R;
    int N, C;
    double eps;
} ln_ctx;

static double ln_loss(void *vc) {
    ln_ctx *c = vc;
    double L = 0;
    for (int n = 0; n < c->N; n++) {
        const double *x = c->x + (size_t)n * c->C;
        double m = 0, v = 0;
        for (int j = 0; j < c->C; j++) m += x[j];
        m /= c->C;
        for (int j = 0; j < c->C; j++) v += (x[j] - m) * (x[j] - m);
        v /= c->C;
        for (int j = 0; j < c->C; j++)
            L += c->R[(size_t)n * c->C + j] * ((x[j] - m) / sqrt(v + c->eps) * c->g[j] + c->b[j]);
    }
    return L;
}

static void test_layernorm(void **state) {
    (void)state;
    const int N = 5, C = 7;
    const float eps = 1e-5f;
    float x[35], g[7], b[7], R[35], y[35], mean[5], rstd[5], yr[35], mr[5], rr[5], dx[35], dg[7], db[7];
    fill(x, 35, -2, 3);
    for (int n = 0; n < N; n++) x[n * C] += (float)n; /* rows with different means */
    fill(g, 7, 0.5, 1.5);
    fill(b, 7, -0.5, 0.5);
    fill(R, 35, -1, 1);
    fm_layernorm_forward(y, mean, rstd, x, g, b, N, C, eps);
    fm_layernorm_forward_ref(yr, mr, rr, x, g, b, N, C, eps);
    double yd[35];
    for (int i = 0; i < 35; i++) yd[i] = yr[i];
    assert_close_rel("layernorm fast vs ref", y, yd, 35, 1e-5, 1e-6);
    /* dg, db accumulate: start from 1 and take it off again. */
    for (int j = 0; j < C; j++) dg[j] = db[j] = 1.0f;
    fm_layernorm_backward(dx, dg, db, R, x, mean, rstd, g, N, C);
    for (int j = 0; j < C; j++) {
        dg[j] -= 1.0f;
        db[j] -= 1.0f;
    }
    ln_ctx c = {to_double(x, 35), to_double(g, 7), to_double(b, 7), to_double(R, 35), N, C, eps};
    double *ng = numeric_grad(c.x, 35, ln_loss, &c);
    check_grad("layernorm dx", dx, ng, 35);
    free(ng);
    ng = numeric_grad(c.g, 7, ln_loss, &c);
    check_grad("layernorm dg", dg, ng, 7);
    free(ng);
    ng = numeric_grad(c.b, 7, ln_loss, &c);
    check_grad("layernorm db", db, ng, 7);
    free(ng);
    free(c.x), free(c.g), free(c.b), free(c.R);
}

/* ---- linear --------------------------------------------------------------------- */

typedef struct {
    double *x, *w, *b, *R;
    int M, K, N, ldx;
} lin_ctx;

static double lin_loss(void *vc) {
    lin_ctx *c = vc;
    double L = 0;
    for (int i = 0; i < c->M; i++)
        for (int j = 0; j < c->N; j++) {
            double s = c->b[j];
            for (int p = 0; p < c->K; p++) s += c->x[(size_t)i * c->ldx + p] * c->w[(size_t)j * c->K + p];
            L += c->R[(size_t)i * c->N + j] * s;
        }
    return L;
}

static void test_linear(void **state) {
    (void)state;
    enum { M = 6, K = 5, N = 4, LDX = 7 };
    float x[M * LDX], w[N * K], b[N], R[M * N], y[M * N], yr[M * N], dx[M * K], dw[N * K], db[N];
    fill(x, M * LDX, -1, 1);
    fill(w, N * K, -1, 1);
    fill(b, N, -1, 1);
    fill(R, M * N, -1, 1);
    fm_linear_forward(y, x, LDX, w, b, M, K, N);
    fm_linear_forward_ref(yr, x, LDX, w, b, M, K, N);
    double yd[M * N];
    for (int i = 0; i < M * N; i++) yd[i] = yr[i];
    assert_close_rel("linear fast vs ref", y, yd, M * N, 1e-5, 1e-6);
    /* dx written, then accumulated: the second call must double it. */
    memset(dw, 0, sizeof dw);
    memset(db, 0, sizeof db);
    fm_linear_backward(dx, 0, dw, db, R, x, LDX, w, M, K, N);
    float dx2[M * K];
    memcpy(dx2, dx, sizeof dx);
    fm_linear_backward(dx2, 1, NULL, NULL, R, x, LDX, w, M, K, N);
    for (int i = 0; i < M * K; i++) assert_float_equal(dx2[i], 2 * dx[i], 1e-6 * (1 + fabsf(dx[i])));
    lin_ctx c = {to_double(x, M * LDX), to_double(w, N * K), to_double(b, N), to_double(R, M * N), M, K, N, LDX};
    double *ng = numeric_grad(c.x, M * LDX, lin_loss, &c);
    /* the gradient of x's strided rows; the padding columns get none */
    float dxs[M * LDX];
    for (int i = 0; i < M; i++)
        for (int p = 0; p < LDX; p++) dxs[i * LDX + p] = p < K ? dx[i * K + p] : 0.0f;
    check_grad("linear dx", dxs, ng, M * LDX);
    free(ng);
    ng = numeric_grad(c.w, N * K, lin_loss, &c);
    check_grad("linear dw", dw, ng, N * K);
    free(ng);
    ng = numeric_grad(c.b, N, lin_loss, &c);
    check_grad("linear db", db, ng, N);
    free(ng);
    free(c.x), free(c.w), free(c.b), free(c.R);
}

/* ---- GELU and tanh ------------------------------------------------------------------ */

/* GELU in double, written so that the left tail keeps its digits:
 * 0.5x(1+erf(x/sqrt2)) = 0.5x erfc(-x/sqrt2), 0.5x(1+tanh u) = x/(1+e^{-2u}). */
static double gelu_d(double x, fm_act act) {
    if (act == FM_GELU_TANH)
        return x / (1 + exp(-2 * sqrt(2 / 3.14159265358979323846) * (x + 0.044715 * x * x * x)));
    return 0.5 * x * erfc(-x / sqrt(2.0));
}

/* fm_exp and fm_sigmoid (the supermask's sampling probability and STE)
 * against double precision over a dense grid of [-100, 100] and at the edges:
 * e^x within 2 float ulps (relative) on [-87, 88]; sigma(x) within 4 ulps of
 * its value where it is above 1e-37 (below, 0 or that small), exactly 1 past
 * 87.3 and exactly 0 past -88.7, and never outside [0, 1]. */
static void test_fast_exp_sigmoid(void **state) {
    (void)state;
    enum { N = 400001 };
    for (int i = 0; i < N; i++) {
        const float x = (float)(-100.0 + 200.0 * i / (N - 1));
        const double e = exp((double)x), sd = 1.0 / (1.0 + exp(-(double)x));
        const float fe = fm_exp(x), fs = fm_sigmoid(x);
        if (x >= -87.0f && x <= 88.0f && !(fabs(fe - e) <= 2 * FLT_EPSILON * e)) {
            print_error("fm_exp(%.9g) = %.9g, expected %.9g\n", (double)x, (double)fe, e);
            fail();
        }
        const int ok = sd > 1e-37 ? fabs(fs - sd) <= 4 * FLT_EPSILON * sd : fs <= 1e-37;
        if (!ok || fs < 0.0f || fs > 1.0f) {
            print_error("fm_sigmoid(%.9g) = %.9g, expected %.9g\n", (double)x, (double)fs, sd);
            fail();
        }
    }
    assert_true(fm_sigmoid(87.5f) == 1.0f);
    assert_true(fm_sigmoid(-89.0f) == 0.0f);
    assert_true(fm_sigmoid(-INFINITY) == 0.0f);
    assert_true(fm_sigmoid(INFINITY) == 1.0f);
    assert_true(fm_sigmoid(0.0f) == 0.5f);
    assert_true(fm_exp(0.0f) == 1.0f);
}

/* The fast GELU against the double formula over a dense grid of [-12, 12].
 * Values: within 16 float ulps (relative) for x > -3 and 64 ulps on
 * [-8, -3], where e^{-x^2/2} of a float argument carries the argument's
 * rounding (about x^2/2 ulps). PyTorch's own float 0.5x(1+erf(x/sqrt2)) is
 * far looser there (1 + erf rounds to eps/2 absolute: ~190 ulps of Phi at
 * x = -3). Below -8, |gelu| < 1e-14 and an absolute 1e-20 is asked.
 * Derivative: against central differences of the double formula to 2e-6 of
 * max(1, |g'|) (h = 1e-4 in double: difference error ~1e-9). */
static void check_gelu(fm_act act) {
    enum { N = 24001 };
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y), *pre = malloc(N * sizeof *pre);
    float *ones = malloc(N * sizeof *ones), *dy = malloc(N * sizeof *dy), *yref = malloc(N * sizeof *yref);
    float *dyref = malloc(N * sizeof *dyref);
    for (int i = 0; i < N; i++) {
        x[i] = (float)(-12.0 + 24.0 * i / (N - 1));
        ones[i] = 1.0f;
    }
    fm_gelu_forward(y, pre, x, NULL, 1, N, act);
    fm_gelu_backward(dy, NULL, ones, pre, N, act);
    float *y2 = malloc(N * sizeof *y2), *dy2 = malloc(N * sizeof *dy2);
    fm_gelu_backward(dy2, y2, ones, pre, N, act); /* with the output recomputed: same bits */
    assert_memory_equal(dy2, dy, N * sizeof *dy);
    assert_memory_equal(y2, y, N * sizeof *y);
    free(y2), free(dy2);
    fm_gelu_forward_ref(yref, x, N, act);
    fm_gelu_backward_ref(dyref, ones, x, N, act);
    for (int i = 0; i < N; i++) {
        double e = gelu_d(x[i], act);
        double ulps = x[i] > -3 ? 16 : 64, atol = x[i] < -8 ? 1e-20 : 1e-37;
        if (!(fabs(y[i] - e) <= ulps * FLT_EPSILON * fabs(e) + atol)) {
            print_error("gelu(%s) at %.7g: got %.9g expected %.9g\n", fm_act_name(act), (double)x[i], (double)y[i], e);
            fail();
        }
        /* the libm reference is exact to float rounding where 1 + erf keeps digits */
        if (!(fabs(yref[i] - e) <= 1e-6 * fabs(x[i]) + 1e-7)) {
            print_error("gelu_ref(%s) at %.7g: got %.9g expected %.9g\n", fm_act_name(act), (double)x[i],
                        (double)yref[i], e);
            fail();
        }
        double h = 1e-4, nd = (gelu_d(x[i] + h, act) - gelu_d(x[i] - h, act)) / (2 * h);
        if (!(fabs(dy[i] - nd) <= 2e-6 * fmax(1.0, fabs(nd))) || !(fabs(dyref[i] - nd) <= 2e-6 * fmax(1.0, fabs(nd)))) {
            print_error("gelu'(%s) at %.7g: got %.9g / ref %.9g, numeric %.9g\n", fm_act_name(act), (double)x[i],
                        (double)dy[i], (double)dyref[i], nd);
            fail();
        }
    }
    /* With a bias and rows: pre = x + bias. */
    float xb[6] = {1, 2, 3, -1, -2, -3}, bias[3] = {0.5f, -0.5f, 0}, pb[6], ob[6];
    fm_gelu_forward(ob, pb, xb, bias, 2, 3, act);
    for (int i = 0; i < 6; i++) {
        assert_true(pb[i] == xb[i] + bias[i % 3]);
        assert_float_equal(ob[i], gelu_d(pb[i], act), 4e-7 * (1 + fabs(gelu_d(pb[i], act))));
    }
    free(x), free(y), free(pre), free(ones), free(dy), free(yref), free(dyref);
}

static void test_gelu_erf(void **state) {
    (void)state;
    check_gelu(FM_GELU_ERF);
    /* a few known values: gelu(1) = Phi(1) = 0.841344746..., gelu(-1) = -0.158655254 */
    float x[2] = {1, -1}, y[2], pre[2];
    fm_gelu_forward(y, pre, x, NULL, 1, 2, FM_GELU_ERF);
    assert_float_equal(y[0], 0.8413447460685429, 1e-7);
    assert_float_equal(y[1], -0.15865525393145707, 1e-7);
}

static void test_gelu_tanh(void **state) {
    (void)state;
    check_gelu(FM_GELU_TANH);
    float x[1] = {1}, y[1], pre[1];
    fm_gelu_forward(y, pre, x, NULL, 1, 1, FM_GELU_TANH);
    /* 0.5 (1 + tanh(sqrt(2/pi) * 1.044715)) = 0.841191990... */
    assert_float_equal(y[0], 0.8411919906082768, 1e-7);
}

static void test_tanh(void **state) {
    (void)state;
    float x[6] = {-3, -0.5f, 0, 0.25f, 1, 4}, bias[3] = {0.1f, -0.2f, 0.3f}, y[6], dx[6], R[6] = {1, -2, 3, 0.5f, -1, 2};
    fm_tanh_forward(y, x, bias, 2, 3);
    fm_tanh_backward(dx, R, y, 6);
    for (int i = 0; i < 6; i++) {
        double v = (double)x[i] + bias[i % 3];
        assert_float_equal(y[i], tanh(v), 2e-7);
        double nd = R[i] * (tanh(v + 1e-5) - tanh(v - 1e-5)) / 2e-5;
        assert_float_equal(dx[i], nd, 1e-5 * fabs(nd) + 1e-6);
    }
}

/* ---- attention --------------------------------------------------------------------------- */

typedef struct {
    double *q, *k, *v, *R;
    const float *mask;
    int B, T, H, A, P;
    const fm_drop *d;
} att_ctx;

/* The double reference: scores, HF's additive mask (finfo(float32).min),
 * softmax, dropout with the keep-bits of the contract, context. */
static double att_forward_d(att_ctx *c, double *ctx, double *probs) {
    const int B = c->B, T = c->T, H = c->H, A = c->A, hs = H / A;
    double L = 0;
    double row[64];
    uint64_t bits[4];
    for (int b = 0; b < B; b++)
        for (int h = 0; h < A; h++)
            for (int i = 0; i < T; i++) {
                double mx = -INFINITY, s = 0;
                for (int j = 0; j < T; j++) {
                    double acc = 0;
                    for (int e = 0; e < hs; e++)
                        acc += c->q[((size_t)b * T + i) * H + h * hs + e] * c->k[((size_t)b * T + j) * H + h * hs + e];
                    acc /= sqrt((double)hs);
                    if (c->mask) acc += (1.0 - c->mask[b * T + j]) * -3.4028234663852886e38;
                    row[j] = acc;
                    mx = fmax(mx, acc);
                }
                for (int j = 0; j < T; j++) s += (row[j] = exp(row[j] - mx));
                for (int j = 0; j < T; j++) {
                    row[j] /= s;
                    if (probs) probs[(((size_t)b * A + h) * T + i) * T + j] = row[j];
                }
                if (fm_drop_on(c->d)) {
                    uint64_t first = ((((uint64_t)(c->d->example0 + b) * A + h) * c->P + i) * c->P);
                    fm_dropout_bits(bits, c->d->seed, c->d->step, c->d->stream, first, T, c->d->p);
                    for (int j = 0; j < T; j++) row[j] = fm_bit(bits, j) ? row[j] / (1.0 - (double)c->d->p) : 0.0;
                }
                for (int e = 0; e < hs; e++) {
                    double acc = 0;
                    for (int j = 0; j < T; j++) acc += row[j] * c->v[((size_t)b * T + j) * H + h * hs + e];
                    size_t o = ((size_t)b * T + i) * H + h * hs + e;
                    if (ctx) ctx[o] = acc;
                    L += c->R[o] * acc;
                }
            }
    return L;
}

static double att_loss(void *vc) { return att_forward_d(vc, NULL, NULL); }

static void check_attention(const fm_drop *d) {
    enum { B = 3, T = 5, H = 6, A = 2, P = 8, N = B * T * H };
    /* example 0: no padding; 1: last two keys padded; 2: fully padded (HF
     * then attends uniformly, as every score is finfo.min). */
    const float mask[B * T] = {1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0};
    float q[N], k[N], v[N], R[N], ctx[N], probs[B * A * T * T], ctxr[N], probsr[B * A * T * T];
    float dq[N], dk[N], dv[N];
    uint64_t bits[B * A * T * 1];
    fill(q, N, -1.5, 1.5);
    fill(k, N, -1.5, 1.5);
    fill(v, N, -1, 1);
    fill(R, N, -1, 1);
    fm_attention_forward(ctx, probs, bits, q, k, v, mask, B, T, H, A, P, d);
    fm_attention_forward_ref(ctxr, probsr, q, k, v, mask, B, T, H, A, P, d);
    att_ctx c = {to_double(q, N), to_double(k, N), to_double(v, N), to_double(R, N), mask, B, T, H, A, P, d};
    double ctxd[N], probsd[B * A * T * T];
    att_forward_d(&c, ctxd, probsd);
    assert_close_rel("attention ctx vs double", ctx, ctxd, N, 1e-5, 1e-6);
    assert_close_rel("attention ctx_ref vs double", ctxr, ctxd, N, 1e-6, 1e-7);
    assert_close_rel("attention probs vs double", probs, probsd, B * A * T * T, 1e-5, 1e-7);
    for (int h = 0; h < A; h++)
        for (int i = 0; i < T; i++) {
            const float *p1 = probs + (((size_t)1 * A + h) * T + i) * T, *p2 = probs + (((size_t)2 * A + h) * T + i) * T;
            assert_true(p1[3] == 0.0f && p1[4] == 0.0f); /* padded keys get exactly 0 */
            for (int j = 0; j < T; j++) assert_float_equal(p2[j], 0.2f, 1e-7);
        }
    fm_attention_backward(dq, dk, dv, R, probs, bits, q, k, v, B, T, H, A, d);
    /* Examples 0 and 1 against finite differences. In example 2 every score
     * is finfo.min + s, which rounds to finfo.min in float and double alike:
     * a finite difference sees no dependence on q and k, while the analytic
     * gradient (PyTorch's too) is the softmax Jacobian at the uniform P. */
    const int N01 = 2 * T * H;
    double *ng = numeric_grad(c.q, N01, att_loss, &c);
    check_grad("attention dq", dq, ng, N01);
    free(ng);
    ng = numeric_grad(c.k, N01, att_loss, &c);
    check_grad("attention dk", dk, ng, N01);
    free(ng);
    if (!fm_drop_on(d)) {
        /* example 2 by the formula: dS = (dP - mean_j dP) / T, dP = R V^T */
        const int hs = H / A;
        double eq[T * H] = {0}, ek[T * H] = {0};
        for (int h = 0; h < A; h++) {
            double dS[T][T];
            for (int i = 0; i < T; i++) {
                double dP[T], mean = 0;
                for (int j = 0; j < T; j++) {
                    dP[j] = 0;
                    for (int e = 0; e < hs; e++) dP[j] += c.R[(2 * T + i) * H + h * hs + e] * c.v[(2 * T + j) * H + h * hs + e];
                    mean += dP[j] / T;
                }
                for (int j = 0; j < T; j++) dS[i][j] = (dP[j] - mean) / T / sqrt((double)hs);
            }
            for (int i = 0; i < T; i++)
                for (int e = 0; e < hs; e++)
                    for (int j = 0; j < T; j++) {
                        eq[i * H + h * hs + e] += dS[i][j] * c.k[(2 * T + j) * H + h * hs + e];
                        ek[j * H + h * hs + e] += dS[i][j] * c.q[(2 * T + i) * H + h * hs + e];
                    }
        }
        assert_close_rel("attention dq (fully padded)", dq + N01, eq, T * H, 1e-4, 1e-6);
        assert_close_rel("attention dk (fully padded)", dk + N01, ek, T * H, 1e-4, 1e-6);
    }
    ng = numeric_grad(c.v, N, att_loss, &c);
    check_grad("attention dv", dv, ng, N);
    free(ng);
    free(c.q), free(c.k), free(c.v), free(c.R);
}

static void test_attention(void **state) {
    (void)state;
    check_attention(NULL);
}

/* With dropout on attention probabilities: the keep-bits are a pure function
 * of the key, so every finite-difference evaluation sees the same mask and
 * the check stays valid. */
static void test_attention_dropout(void **state) {
    (void)state;
    fm_drop d = {.p = 0.3f, .seed = 7, .step = 3, .stream = fm_dropout_stream(1, FM_SITE_ATTN_PROBS), .example0 = 5};
    check_attention(&d);
}

/* A case small enough to do by hand: one head of size 2, q = k rows
 * (1,-1) and (-1,1), so the scores are +-2/sqrt2 = +-sqrt2 and row 0 puts
 * p = 1/(1+e^{-2 sqrt2}) on key 0; with v = q, ctx row 0 = (2p-1)(1,-1).
 * Masking key 1 leaves p = 1 exactly. */
static void test_attention_hand(void **state) {
    (void)state;
    float q[4] = {1, -1, -1, 1}, ctx[4], probs[4];
    uint64_t bits[2];
    fm_attention_forward(ctx, probs, bits, q, q, q, NULL, 1, 2, 2, 1, 2, NULL);
    double p = 1 / (1 + exp(-2 * sqrt(2.0)));
    assert_float_equal(probs[0], p, 1e-7);
    assert_float_equal(probs[1], 1 - p, 1e-7);
    assert_float_equal(ctx[0], 2 * p - 1, 1e-6);
    assert_float_equal(ctx[1], 1 - 2 * p, 1e-6);
    assert_float_equal(ctx[2], 1 - 2 * p, 1e-6);
    const float mask[2] = {1, 0};
    fm_attention_forward(ctx, probs, bits, q, q, q, mask, 1, 2, 2, 1, 2, NULL);
    assert_true(probs[0] == 1.0f && probs[1] == 0.0f && probs[2] == 1.0f && probs[3] == 0.0f);
    assert_true(ctx[0] == 1.0f && ctx[1] == -1.0f && ctx[2] == 1.0f && ctx[3] == -1.0f);
}

/* ---- losses -------------------------------------------------------------------------------- */

typedef struct {
    double *x;
    const int32_t *y;
    int N, C;
} ce_ctx;

static double ce_loss(void *vc) {
    ce_ctx *c = vc;
    double L = 0;
    for (int n = 0; n < c->N; n++) {
        if (c->y[n] < 0) continue;
        const double *x = c->x + (size_t)n * c->C;
        double mx = -INFINITY, s = 0;
        for (int j = 0; j < c->C; j++) mx = fmax(mx, x[j]);
        for (int j = 0; j < c->C; j++) s += exp(x[j] - mx);
        L += mx + log(s) - x[c->y[n]];
    }
    return L;
}

static void test_crossentropy(void **state) {
    (void)state;
    enum { N = 4, C = 5 };
    const int32_t y[N] = {2, -100, 0, 4};
    float x[N * C], probs[N * C], dx[N * C];
    fill(x, N * C, -3, 3);
    x[3 * C + 1] = 40.0f; /* a large logit: the max must be subtracted */
    float L = fm_crossentropy_forward(probs, x, y, N, C);
    ce_ctx c = {to_double(x, N * C), y, N, C};
    assert_float_equal(L, ce_loss(&c), 1e-5 * fabs(ce_loss(&c)));
    fm_crossentropy_backward(dx, probs, y, 0.5f, N, C);
    double *ng = numeric_grad(c.x, N * C, ce_loss, &c);
    for (int i = 0; i < N * C; i++) ng[i] *= 0.5;
    check_grad("crossentropy dlogits", dx, ng, N * C);
    for (int j = 0; j < C; j++) assert_true(dx[1 * C + j] == 0.0f); /* ignored row */
    /* in place, as the MLM head uses it */
    float xi[N * C];
    memcpy(xi, x, sizeof x);
    float L2 = fm_crossentropy_forward(xi, xi, y, N, C);
    assert_true(L2 == L);
    assert_memory_equal(xi, probs, sizeof probs);
    free(ng);
    free(c.x);
}

static void test_mse(void **state) {
    (void)state;
    float p[3] = {1.5f, -2, 0.25f}, t[3] = {1, 1, 0}, d[3];
    assert_float_equal(fm_mse_forward(p, t, 3), 0.25 + 9 + 0.0625, 1e-6);
    fm_mse_backward(d, p, t, 0.5f, 3);
    /* d/dp of 0.5 * sum (p - t)^2 = p - t */
    assert_float_equal(d[0], 0.5, 1e-7);
    assert_float_equal(d[1], -3, 1e-7);
    assert_float_equal(d[2], 0.25, 1e-7);
}

/* ---- embeddings ------------------------------------------------------------------------------ */

static void test_embeddings(void **state) {
    (void)state;
    enum { V = 6, P = 5, TV = 2, B = 2, T = 3, H = 4 };
    float word[V * H], pos[P * H], type[TV * H], out[B * T * H], dout[B * T * H];
    float dword[V * H] = {0}, dpos[P * H] = {0}, dtype[TV * H] = {0};
    const int32_t ids[B * T] = {3, 0, 3, 5, 1, 0}, tt[B * T] = {0, 1, 1, 0, 0, 1};
    fill(word, V * H, -1, 1);
    fill(pos, P * H, -1, 1);
    fill(type, TV * H, -1, 1);
    fill(dout, B * T * H, -1, 1);
    fm_embed_sum_forward(out, ids, tt, word, pos, type, B, T, H);
    for (int r = 0; r < B * T; r++)
        for (int j = 0; j < H; j++)
            assert_true(out[r * H + j] == word[ids[r] * H + j] + pos[(r % T) * H + j] + type[tt[r] * H + j]);
    fm_embed_sum_backward(dword, dpos, dtype, dout, ids, tt, 0, B, T, H);
    for (int j = 0; j < H; j++) {
        /* id 3 twice (rows 0 and 2), 5 once, 1 once; pad id 0 gets nothing */
        assert_float_equal(dword[3 * H + j], dout[0 * H + j] + dout[2 * H + j], 1e-6);
        assert_true(dword[5 * H + j] == dout[3 * H + j]);
        assert_true(dword[1 * H + j] == dout[4 * H + j]);
        assert_true(dword[0 * H + j] == 0.0f && dword[2 * H + j] == 0.0f && dword[4 * H + j] == 0.0f);
        for (int t = 0; t < T; t++) assert_float_equal(dpos[t * H + j], dout[t * H + j] + dout[(T + t) * H + j], 1e-6);
        assert_true(dpos[3 * H + j] == 0.0f);
        assert_float_equal(dtype[0 * H + j], dout[0 * H + j] + dout[3 * H + j] + dout[4 * H + j], 1e-6);
        assert_float_equal(dtype[1 * H + j], dout[1 * H + j] + dout[2 * H + j] + dout[5 * H + j], 1e-6);
    }
    /* NULL type ids: all type 0 */
    fm_embed_sum_forward(out, ids, NULL, word, pos, type, B, T, H);
    assert_true(out[5 * H + 1] == word[0 * H + 1] + pos[2 * H + 1] + type[0 * H + 1]);
}

/* ---- dropout ----------------------------------------------------------------------------------- */

/* The bits are fm_rng_uniform(...) >= p, element by element. */
static void test_dropout_bits_contract(void **state) {
    (void)state;
    uint64_t bits[3];
    const int n = 150;
    fm_dropout_bits(bits, 11, 4, 33, 1001, n, 0.25f);
    int kept = 0;
    for (int j = 0; j < n; j++) {
        int want = fm_rng_uniform(11, FM_RNG_DROPOUT, 4, 33, 1001 + (uint64_t)j) >= 0.25f;
        assert_int_equal(fm_bit(bits, j), want);
        kept += want;
    }
    assert_int_equal(bits[2] >> (n - 128), 0); /* no stray bits past n */
    /* About 75% kept: 112.5 expected, standard deviation 5.3. */
    assert_true(kept > 85 && kept < 140);
    /* the fast path against the reference for every alignment of first and
     * lengths around the 64-bit words and the 1024-element chunks */
    const int lens[] = {1, 3, 4, 5, 63, 64, 65, 127, 128, 129, 1023, 1024, 1025, 1030, 3000};
    uint64_t fb[48], rb[48];
    for (size_t li = 0; li < sizeof lens / sizeof *lens; li++)
        for (uint64_t f = (uint64_t)1 << 35; f < ((uint64_t)1 << 35) + 9; f++) { /* block >> 32 != 0 */
            fm_dropout_bits(fb, 0x123456789ULL, ((uint64_t)1 << 40) + 1, 77, f, lens[li], 0.37f);
            fm_dropout_bits_ref(rb, 0x123456789ULL, ((uint64_t)1 << 40) + 1, 77, f, lens[li], 0.37f);
            assert_memory_equal(fb, rb, fm_bits_words(lens[li]) * sizeof *fb);
        }
    /* a larger sample keeps close to 1 - p */
    enum { M = 100000 };
    uint64_t *big = calloc(fm_bits_words(M), sizeof *big);
    fm_dropout_bits(big, 1, 2, 3, 0, M, 0.1f);
    long cnt = 0;
    for (int w = 0; w < fm_bits_words(M); w++) cnt += __builtin_popcountll(big[w]);
    assert_true(fabs(cnt / (double)M - 0.9) < 0.005);
    free(big);
}

static void test_dropout_forward_backward(void **state) {
    (void)state;
    enum { R = 6, C = 70, T = 3, P = 4 };
    float x[R * C], bias[C], res[R * C], out[R * C], dout[R * C], dx[R * C];
    uint64_t bits[R * 2];
    fill(x, R * C, -1, 1);
    fill(bias, C, -1, 1);
    fill(res, R * C, -1, 1);
    fill(dout, R * C, -1, 1);
    fm_drop d = {.p = 0.4f, .seed = 99, .step = 1, .stream = fm_dropout_stream(0, FM_SITE_ATTN_OUT), .example0 = 2};
    fm_dropout_residual_forward(out, bits, x, bias, res, R, C, T, P, &d);
    fm_dropout_backward(dx, dout, bits, R, C, &d);
    const float scale = 1.0f / (1.0f - 0.4f);
    uint64_t want[2];
    for (int r = 0; r < R; r++) {
        /* row r is position r % T of global example 2 + r / T */
        fm_dropout_bits(want, 99, 1, d.stream, ((uint64_t)(2 + r / T) * P + r % T) * C, C, 0.4f);
        assert_memory_equal(want, bits + r * 2, sizeof want);
        for (int j = 0; j < C; j++) {
            int keep = fm_bit(want, j);
            assert_true(out[r * C + j] == (keep ? (x[r * C + j] + bias[j]) * scale : 0.0f) + res[r * C + j]);
            assert_true(dx[r * C + j] == (keep ? dout[r * C + j] * scale : 0.0f));
        }
    }
    /* off: a plain residual add and a copy */
    fm_drop off = d;
    off.p = 0;
    fm_dropout_residual_forward(out, bits, x, NULL, res, R, C, T, P, &off);
    fm_dropout_backward(dx, dout, bits, R, C, NULL);
    for (int i = 0; i < R * C; i++) {
        assert_true(out[i] == x[i] + res[i]);
        assert_true(dx[i] == dout[i]);
    }
}

/* Same key, same bits: with 1 or 2 threads, and for a batch run whole or as
 * two halves (example0 = 0 and example0 = B/2). Also the results of every
 * row-parallel kernel and every fixed-order reduction, bit for bit. */
static void test_determinism_threads_and_split(void **state) {
    (void)state;
    enum { B = 4, T = 6, H = 8, A = 2, P = 8, N = B * T * H, W = 1 };
    float q[N], k[N], v[N], x[N], dout[N], g[H];
    fill(q, N, -2, 2);
    fill(k, N, -2, 2);
    fill(v, N, -1, 1);
    fill(x, N, -1, 1);
    fill(dout, N, -1, 1);
    fill(g, H, 0.5, 1.5);
    float mask[B * T];
    for (int i = 0; i < B * T; i++) mask[i] = (i % T) < T - (i / T) ? 1.0f : 0.0f;
    fm_drop da = {.p = 0.2f, .seed = 5, .step = 9, .stream = fm_dropout_stream(0, FM_SITE_ATTN_PROBS), .example0 = 0};
    fm_drop dh = {.p = 0.2f, .seed = 5, .step = 9, .stream = fm_dropout_stream(0, FM_SITE_FFN_OUT), .example0 = 0};
    float ctx[2][N], probs[2][B * A * T * T], hid[2][N], dq[2][N], dk[2][N], dv[2][N];
    float lnx[2][N], mean[2][B * T], rstd[2][B * T], dgg[2][H], dbb[2][H], dbias[2][H];
    uint64_t pb[2][B * A * T * W], hb[2][B * T * W];
    for (int run = 0; run < 2; run++) {
        omp_set_num_threads(run + 1);
        fm_blas_set_threads(run + 1);
        fm_attention_forward(ctx[run], probs[run], pb[run], q, k, v, mask, B, T, H, A, P, &da);
        fm_attention_backward(dq[run], dk[run], dv[run], dout, probs[run], pb[run], q, k, v, B, T, H, A, &da);
        fm_dropout_residual_forward(hid[run], hb[run], x, g, q, B * T, H, T, P, &dh);
        fm_layernorm_forward(lnx[run], mean[run], rstd[run], x, g, g, B * T, H, 1e-12f);
        memset(dgg[run], 0, sizeof dgg[run]);
        memset(dbb[run], 0, sizeof dbb[run]);
        memset(dbias[run], 0, sizeof dbias[run]);
        fm_layernorm_backward(lnx[run], dgg[run], dbb[run], dout, x, mean[run], rstd[run], g, B * T, H);
        fm_bias_backward(dbias[run], dout, B * T, H);
    }
    omp_set_num_threads(1);
    fm_blas_set_threads(1);
    assert_memory_equal(ctx[0], ctx[1], sizeof ctx[0]);
    assert_memory_equal(probs[0], probs[1], sizeof probs[0]);
    assert_memory_equal(pb[0], pb[1], sizeof pb[0]);
    assert_memory_equal(dq[0], dq[1], sizeof dq[0]);
    assert_memory_equal(dk[0], dk[1], sizeof dk[0]);
    assert_memory_equal(dv[0], dv[1], sizeof dv[0]);
    assert_memory_equal(hid[0], hid[1], sizeof hid[0]);
    assert_memory_equal(hb[0], hb[1], sizeof hb[0]);
    assert_memory_equal(lnx[0], lnx[1], sizeof lnx[0]);
    assert_memory_equal(dgg[0], dgg[1], sizeof dgg[0]);
    assert_memory_equal(dbb[0], dbb[1], sizeof dbb[0]);
    assert_memory_equal(dbias[0], dbias[1], sizeof dbias[0]);

    /* split: examples [0, B/2) with example0 = 0, then [B/2, B) with example0 = B/2 */
    float sctx[N], sprobs[B * A * T * T], shid[N];
    uint64_t spb[B * A * T * W], shb[B * T * W];
    const int hb2 = B / 2;
    for (int half = 0; half < 2; half++) {
        fm_drop a2 = da, h2 = dh;
        a2.example0 = h2.example0 = half * hb2;
        size_t o = (size_t)half * hb2 * T * H;
        fm_attention_forward(sctx + o, sprobs + (size_t)half * hb2 * A * T * T, spb + (size_t)half * hb2 * A * T * W,
                             q + o, k + o, v + o, mask + half * hb2 * T, hb2, T, H, A, P, &a2);
        fm_dropout_residual_forward(shid + o, shb + (size_t)half * hb2 * T * W, x + o, g, q + o, hb2 * T, H, T, P, &h2);
    }
    assert_memory_equal(spb, pb[0], sizeof spb);
    assert_memory_equal(shb, hb[0], sizeof shb);
    assert_memory_equal(sprobs, probs[0], sizeof sprobs);
    assert_memory_equal(shid, hid[0], sizeof shid);
    /* ctx goes through a GEMM per (example, head) of the same shape: equal too */
    assert_memory_equal(sctx, ctx[0], sizeof sctx);
    /* and the bits do not depend on the padded length: T + 2 columns of
     * position slots give the same bits for the first T keys of row 0 */
    uint64_t wide[1];
    fm_dropout_bits(wide, da.seed, da.step, da.stream, 0, T + 2, da.p);
    assert_int_equal(wide[0] & ((1u << T) - 1), pb[0][0]);
}

/* The [CLS]-row linear layer against the full one over B*T rows whose
 * other rows' output gradient is zero: forward rows, dx rows, dW and db.
 * On BLIS's conventional path (sizes as BERT's at B*T >= 512) bit for bit;
 * on its small-matrix path (tiny sizes) to float rounding. */
static void cls_linear_case(int Bn, int Tn, int K, int N) {
    const int M = Bn * Tn;
    float *x = fm_xalloc_floats((size_t)M * K), *w = fm_xalloc_floats((size_t)N * K), *bias = fm_xalloc_floats(N);
    float *dout = fm_xalloc_floats((size_t)M * N), *dc = fm_xalloc_floats((size_t)Bn * N);
    float *of = fm_xalloc_floats((size_t)M * N), *oc = fm_xalloc_floats((size_t)Bn * N);
    float *dxf = fm_xalloc_floats((size_t)M * K), *dxc = fm_xalloc_floats((size_t)Bn * K);
    float *dwf = fm_xalloc_floats((size_t)N * K), *dwc = fm_xalloc_floats((size_t)N * K);
    float *dbf = fm_xalloc_floats(N), *dbc = fm_xalloc_floats(N);
    fm_rng_normals(1, FM_RNG_INIT, 0, 1, x, (size_t)M * K);
    fm_rng_normals(1, FM_RNG_INIT, 0, 2, w, (size_t)N * K);
    fm_rng_normals(1, FM_RNG_INIT, 0, 3, bias, (size_t)N);
    fm_rng_normals(1, FM_RNG_INIT, 0, 4, dc, (size_t)Bn * N);
    fm_rng_normals(1, FM_RNG_INIT, 0, 5, dwf, (size_t)N * K); /* gradients accumulate into earlier values */
    memcpy(dwc, dwf, (size_t)N * K * sizeof *dwc);
    for (int b = 0; b < Bn; b++) memcpy(dout + (size_t)b * Tn * N, dc + (size_t)b * N, (size_t)N * sizeof *dc);
    for (int b = 0; b < Bn; b++) { /* dx accumulates too */
        fm_rng_normals(1, FM_RNG_INIT, 1, (uint32_t)b, dxc + (size_t)b * K, (size_t)K);
        memcpy(dxf + (size_t)b * Tn * K, dxc + (size_t)b * K, (size_t)K * sizeof *dxc);
    }
    fm_linear_forward(of, x, K, w, bias, M, K, N);
    fm_linear_forward_cls(oc, x, (ptrdiff_t)Tn * K, w, bias, Bn, Tn, K, N);
    fm_linear_backward(dxf, 1, dwf, dbf, dout, x, K, w, M, K, N);
    fm_linear_backward_cls(dxc, 1, dwc, dbc, dc, x, (ptrdiff_t)Tn * K, w, Bn, Tn, K, N);
    const int exact = !fm_sgemm_small_path(M, N, K) && !fm_sgemm_small_path(M, K, N) && !fm_sgemm_small_path(N, K, M);
    double worst = 0;
#define CLS_CMP(full, cls, n)                                                                                       \
    for (size_t i = 0; i < (size_t)(n); i++) {                                                                      \
        double d = fabs((double)(full) - (double)(cls)) / fmax(1.0, fabs((double)(full)));                          \
        worst = fmax(worst, d);                                                                                     \
        if (exact && memcmp(&(full), &(cls), sizeof(float)) != 0) {                                                 \
            print_error("%s %zu: full %.9g cls %.9g\n", #full, i, (double)(full), (double)(cls));                   \
            fail();                                                                                                 \
        }                                                                                                           \
    }
    CLS_CMP(of[(i / N) * Tn * N + i % N], oc[i], (size_t)Bn * N)
    CLS_CMP(dxf[(i / K) * Tn * K + i % K], dxc[i], (size_t)Bn * K)
    CLS_CMP(dwf[i], dwc[i], (size_t)N * K)
    CLS_CMP(dbf[i], dbc[i], N)
#undef CLS_CMP
    assert_true(worst <= 1e-5);
    if (getenv("FM_TEST_VERBOSE")) print_message("cls linear %dx%d %dx%d: exact %d worst %.3g\n", Bn, Tn, K, N, exact, worst);
    fm_free_aligned(x), fm_free_aligned(w), fm_free_aligned(bias), fm_free_aligned(dout), fm_free_aligned(dc);
    fm_free_aligned(of), fm_free_aligned(oc), fm_free_aligned(dxf), fm_free_aligned(dxc);
    fm_free_aligned(dwf), fm_free_aligned(dwc), fm_free_aligned(dbf), fm_free_aligned(dbc);
}

static void test_linear_cls(void **state) {
    (void)state;
    cls_linear_case(3, 7, 16, 32);
    cls_linear_case(4, 128, 512, 512);
    cls_linear_case(5, 120, 512, 1024); /* K blocks that do not align with the examples */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layernorm),
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_linear_cls),
        cmocka_unit_test(test_fast_exp_sigmoid),
        cmocka_unit_test(test_gelu_erf),
        cmocka_unit_test(test_gelu_tanh),
        cmocka_unit_test(test_tanh),
        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_attention_dropout),
        cmocka_unit_test(test_attention_hand),
        cmocka_unit_test(test_crossentropy),
        cmocka_unit_test(test_mse),
        cmocka_unit_test(test_embeddings),
        cmocka_unit_test(test_dropout_bits_contract),
        cmocka_unit_test(test_dropout_forward_backward),
        cmocka_unit_test(test_determinism_threads_and_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
