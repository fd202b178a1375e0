/* test_model_grad.c: the whole model on a tiny config (L=2, H=16, A=2, I=32,
 * V=50, T=7, B=3, padded examples) against a plain double-precision BERT
 * forward written here from HuggingFace's definition, independently of
 * model.c and layers.c. It checks
 *   1. the float forward (hidden states, logits, loss) against the double
 *      forward, to 2e-5 (float rounding through two layers is ~1e-6);
 *   2. every tensor's analytic gradient (all entries of small tensors, a
 *      sample of big ones, always including the rows the batch touches)
 *      against central differences of the DOUBLE loss, step h = 1e-5:
 *      |analytic - numeric| <= 1e-3 |numeric| + 1e-4 max|numeric of that
 *      tensor| (+1e-7 for tensors whose gradient is zero). The difference
 *      itself is exact to ~1e-10 in double, the float gradient to ~1e-6 of
 *      its scale (measured: worst err/scale is printed with
 *      FM_TEST_VERBOSE=1); a real mistake is off by O(1);
 * for the classification head with the erf GELU, the regression head with
 * the tanh GELU, the MLM head (tied decoder) beside a classifier, and one
 * run with dropout on, where the keep-bits are a pure function of the pass
 * (seed, step) so every evaluation sees the same masks.
 * Then: pieces (embeddings, layers [0,1), layers [1,2), heads, on separate
 * activation sets as pipeline stages hold them) give the same bits as the
 * whole-model call; frozen tensors get exactly zero gradient and the rest
 * the same bits; 1 and 2 threads give the same bits; a batch run as two
 * micro-batches draws the same dropout masks. With fm_pass.cls_only_last
 * (the last layer at [CLS] only) the gradients pass the same central
 * differences, and the [CLS] output, logits, loss and gradients equal the
 * full computation's bit for bit (whole model and two stages, dropout on).
 * Forward-only activations (fm_acts_new_forward) give the training set's
 * logits and loss bit for bit, in fewer bytes. */
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "fm.h"
#include "layers.h"
#include "model.h"
#include "rng.h"
#include "testutil.h"

#define FD_H 1e-5
#define FMIN32 (-3.4028234663852886e38) /* torch.finfo(torch.float32).min */

/* ---- the tiny problem -------------------------------------------------------- */

enum { B = TU_B, T = TU_T };

static void tiny_config(fm_config *c, fm_act act, int num_labels, int mlm) {
    fm_config_default(c);
    c->vocab_size = 50;
    c->hidden_size = 16;
    c->num_hidden_layers = 2;
    c->num_attention_heads = 2;
    c->intermediate_size = 32;
    c->max_position_embeddings = 16;
    c->type_vocab_size = 2;
    c->hidden_act = act;
    c->num_labels = num_labels;
    c->with_mlm = mlm;
    c->hidden_dropout_prob = 0.1f;
    c->attention_probs_dropout_prob = 0.1f;
}

/* tu_tiny_batch's tokens (testutil.h), with 3-class labels beside its
 * 2-class ones, regression targets and MLM labels. */
static const int32_t labels[B] = {2, 0, 1}; /* for 3 classes */
static const float targets[B] = {0.7f, -1.2f, 2.5f};
static const int32_t mlm_labels[B * T] = {-100, 17, -100, 12, -100, -100, -100, -100, 0,    44, -100,
                                          -100, -100, -100, -100, 26, -100, -100, -100, -100, -100};

static fm_batch tiny_batch(int num_labels) {
    fm_batch b = tu_tiny_batch();
    if (num_labels != 2) b.labels = labels;
    b.targets = targets;
    b.mlm_labels = mlm_labels;
    return b;
}

/* Weights: BERT's init but with std 0.2 (so that the layers do real work)
 * and non-trivial LayerNorm gains and biases. */
static void tiny_model(fm_model *m, const fm_config *c, uint64_t seed) {
    fm_model_alloc(m, c);
    m->cfg.initializer_range = 0.2f;
    fm_model_init_weights(m, seed);
    for (int i = 0; i < m->lay.n; i++) {
        const fm_tensor *t = &m->lay.t[i];
        if (!(t->flags & FM_T_MATRIX)) {
            float *p = m->params + t->offset;
            float tmp[64];
            fm_rng_normals(seed + 1, FM_RNG_DATA, 0, (uint32_t)i, tmp, 64);
            for (size_t j = 0; j < t->numel; j++) p[j] += 0.1f * tmp[j % 64] + (j >= 64 ? 0.01f * (float)(j % 7) : 0);
        }
    }
}

/* ---- the double reference ------------------------------------------------------ */

typedef struct {
    const fm_model *m;
    double *P; /* the parameters in double, same layout */
    const fm_batch *b;
    const fm_pass *pass; /* NULL or training == 0: no dropout */
    double *hidden;      /* (B,T,H) output, or NULL */
    double *logits;      /* (B,NL) output, or NULL */
} ref_t;

static const double *W(const ref_t *r, const char *fmt, ...) {
    char name[96];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    const fm_tensor *t = fm_layout_find(&r->m->lay, name);
    if (!t) {
        print_error("no tensor %s\n", name);
        fail();
    }
    return r->P + t->offset;
}

/* y (M,N) = x (M,K) w^T + b */
static void d_linear(double *y, const double *x, const double *w, const double *b, int M, int K, int N) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = b ? b[j] : 0;
            for (int p = 0; p < K; p++) s += x[i * K + p] * w[j * K + p];
            y[i * N + j] = s;
        }
}

static void d_layernorm(double *x, const double *g, const double *b, int N, int C, double eps) {
    for (int n = 0; n < N; n++) {
        double *r = x + n * C, m = 0, v = 0;
        for (int j = 0; j < C; j++) m += r[j];
        m /= C;
        for (int j = 0; j < C; j++) v += (r[j] - m) * (r[j] - m);
        v /= C;
        for (int j = 0; j < C; j++) r[j] = (r[j] - m) / sqrt(v + eps) * g[j] + b[j];
    }
}

static double d_gelu(double x, fm_act act) {
    if (act == FM_GELU_TANH) return 0.5 * x * (1 + tanh(sqrt(2 / 3.14159265358979323846) * (x + 0.044715 * x * x * x)));
    return 0.5 * x * (1 + erf(x / sqrt(2.0)));
}

/* Dropout of rows (example b = r / rows_per_ex, slot r % rows_per_ex) with
 * counter ((example0 + b) * slots + slot) * C: the keying of model.h. */
static void d_dropout(const ref_t *r, double *x, int R, int C, int rows_per_ex, int slots, int layer,
                      fm_drop_site site, float p) {
    if (!r->pass || !r->pass->training || p <= 0) return;
    uint64_t bits[64];
    for (int i = 0; i < R; i++) {
        int b = i / rows_per_ex, s = i % rows_per_ex;
        fm_dropout_bits(bits, r->pass->seed, r->pass->step, fm_dropout_stream(layer, site),
                        ((uint64_t)(r->b->example0 + b) * slots + s) * C, C, p);
        for (int j = 0; j < C; j++) x[i * C + j] = fm_bit(bits, j) ? x[i * C + j] / (1.0 - p) : 0.0;
    }
}

static double ref_forward(ref_t *r) {
    const fm_config *c = &r->m->cfg;
    const fm_batch *bt = r->b;
    const int H = c->hidden_size, A = c->num_attention_heads, hs = H / A, I = c->intermediate_size;
    const int L = c->num_hidden_layers, P = c->max_position_embeddings, V = c->vocab_size, N = bt->B * bt->T;
    const double eps = c->layer_norm_eps;
    double *x = calloc((size_t)N * H, sizeof *x), *q = calloc((size_t)N * H, sizeof *q);
    double *k = calloc((size_t)N * H, sizeof *k), *v = calloc((size_t)N * H, sizeof *v);
    double *ctx = calloc((size_t)N * H, sizeof *ctx), *t1 = calloc((size_t)N * H, sizeof *t1);
    double *mid = calloc((size_t)N * I, sizeof *mid);
    /* embeddings */
    const double *we = W(r, "embeddings.word_embeddings.weight"), *pe = W(r, "embeddings.position_embeddings.weight");
    const double *te = W(r, "embeddings.token_type_embeddings.weight");
    for (int i = 0; i < N; i++)
        for (int j = 0; j < H; j++)
            x[i * H + j] = we[bt->ids[i] * H + j] + pe[(i % bt->T) * H + j] +
                           te[(bt->type_ids ? bt->type_ids[i] : 0) * H + j];
    d_layernorm(x, W(r, "embeddings.LayerNorm.weight"), W(r, "embeddings.LayerNorm.bias"), N, H, eps);
    d_dropout(r, x, N, H, bt->T, P, -1, FM_SITE_EMBED, c->hidden_dropout_prob);
    /* encoder, post-LN */
    for (int l = 0; l < L; l++) {
#define LW(s) W(r, "encoder.layer.%d.%s", l, s)
        d_linear(q, x, LW("attention.self.query.weight"), LW("attention.self.query.bias"), N, H, H);
        d_linear(k, x, LW("attention.self.key.weight"), LW("attention.self.key.bias"), N, H, H);
        d_linear(v, x, LW("attention.self.value.weight"), LW("attention.self.value.bias"), N, H, H);
        for (int b = 0; b < bt->B; b++)
            for (int h = 0; h < A; h++) {
                double pr[T * T];
                for (int i = 0; i < bt->T; i++) {
                    double mx = -INFINITY, s = 0;
                    for (int j = 0; j < bt->T; j++) {
                        double acc = 0;
                        for (int e = 0; e < hs; e++)
                            acc += q[(b * bt->T + i) * H + h * hs + e] * k[(b * bt->T + j) * H + h * hs + e];
                        acc /= sqrt((double)hs);
                        if (bt->attn_mask) acc += (1.0 - bt->attn_mask[b * bt->T + j]) * FMIN32;
                        pr[i * bt->T + j] = acc;
                        mx = fmax(mx, acc);
                    }
                    for (int j = 0; j < bt->T; j++) s += (pr[i * bt->T + j] = exp(pr[i * bt->T + j] - mx));
                    for (int j = 0; j < bt->T; j++) pr[i * bt->T + j] /= s;
                }
                /* dropout on the probabilities: row (b, h, i), slots A*P, stride P */
                if (r->pass && r->pass->training && c->attention_probs_dropout_prob > 0) {
                    uint64_t bits[4];
                    for (int i = 0; i < bt->T; i++) {
                        uint64_t first = (((uint64_t)(bt->example0 + b) * A + h) * P + i) * P;
                        fm_dropout_bits(bits, r->pass->seed, r->pass->step, fm_dropout_stream(l, FM_SITE_ATTN_PROBS),
                                        first, bt->T, c->attention_probs_dropout_prob);
                        for (int j = 0; j < bt->T; j++)
                            pr[i * bt->T + j] =
                                fm_bit(bits, j) ? pr[i * bt->T + j] / (1.0 - c->attention_probs_dropout_prob) : 0;
                    }
                }
                for (int i = 0; i < bt->T; i++)
                    for (int e = 0; e < hs; e++) {
                        double acc = 0;
                        for (int j = 0; j < bt->T; j++) acc += pr[i * bt->T + j] * v[(b * bt->T + j) * H + h * hs + e];
                        ctx[(b * bt->T + i) * H + h * hs + e] = acc;
                    }
            }
        d_linear(t1, ctx, LW("attention.output.dense.weight"), LW("attention.output.dense.bias"), N, H, H);
        d_dropout(r, t1, N, H, bt->T, P, l, FM_SITE_ATTN_OUT, c->hidden_dropout_prob);
        for (int i = 0; i < N * H; i++) x[i] += t1[i];
        d_layernorm(x, LW("attention.output.LayerNorm.weight"), LW("attention.output.LayerNorm.bias"), N, H, eps);
        d_linear(mid, x, LW("intermediate.dense.weight"), LW("intermediate.dense.bias"), N, H, I);
        for (int i = 0; i < N * I; i++) mid[i] = d_gelu(mid[i], c->hidden_act);
        d_linear(t1, mid, LW("output.dense.weight"), LW("output.dense.bias"), N, I, H);
        d_dropout(r, t1, N, H, bt->T, P, l, FM_SITE_FFN_OUT, c->hidden_dropout_prob);
        for (int i = 0; i < N * H; i++) x[i] += t1[i];
        d_layernorm(x, LW("output.LayerNorm.weight"), LW("output.LayerNorm.bias"), N, H, eps);
#undef LW
    }
    if (r->hidden) memcpy(r->hidden, x, (size_t)N * H * sizeof *x);
    double loss = 0;
    /* pooler on token 0, dropout, classifier */
    if (c->num_labels > 0) {
        const int NL = c->num_labels;
        double cls[B * 16], pooled[B * 16], lg[B * 4];
        for (int b = 0; b < bt->B; b++)
            for (int j = 0; j < H; j++) cls[b * H + j] = x[(b * bt->T) * H + j];
        d_linear(pooled, cls, W(r, "pooler.dense.weight"), W(r, "pooler.dense.bias"), bt->B, H, H);
        for (int i = 0; i < bt->B * H; i++) pooled[i] = tanh(pooled[i]);
        d_dropout(r, pooled, bt->B, H, 1, 1, L, FM_SITE_HEAD, c->hidden_dropout_prob);
        d_linear(lg, pooled, W(r, "classifier.weight"), W(r, "classifier.bias"), bt->B, H, NL);
        if (r->logits) memcpy(r->logits, lg, (size_t)bt->B * NL * sizeof *lg);
        for (int b = 0; b < bt->B; b++) {
            if (NL == 1) {
                double e = lg[b] - bt->targets[b];
                loss += e * e;
            } else {
                double mx = -INFINITY, s = 0;
                for (int j = 0; j < NL; j++) mx = fmax(mx, lg[b * NL + j]);
                for (int j = 0; j < NL; j++) s += exp(lg[b * NL + j] - mx);
                loss += mx + log(s) - lg[b * NL + bt->labels[b]];
            }
        }
    }
    /* MLM: transform (dense, GELU, LayerNorm), decoder = word embeddings, bias */
    if (c->with_mlm && bt->mlm_labels) {
        const double *dw = W(r, "cls.predictions.transform.dense.weight");
        const double *db = W(r, "cls.predictions.transform.dense.bias");
        const double *bias = W(r, "cls.predictions.bias");
        double *lg = malloc((size_t)V * sizeof *lg);
        for (int i = 0; i < N; i++) {
            int y = bt->mlm_labels[i];
            if (y < 0) continue;
            double tt[16];
            d_linear(tt, x + i * H, dw, db, 1, H, H);
            for (int j = 0; j < H; j++) tt[j] = d_gelu(tt[j], c->hidden_act);
            d_layernorm(tt, W(r, "cls.predictions.transform.LayerNorm.weight"),
                        W(r, "cls.predictions.transform.LayerNorm.bias"), 1, H, eps);
            d_linear(lg, tt, we, bias, 1, H, V);
            double mx = -INFINITY, s = 0;
            for (int j = 0; j < V; j++) mx = fmax(mx, lg[j]);
            for (int j = 0; j < V; j++) s += exp(lg[j] - mx);
            loss += mx + log(s) - lg[y];
        }
        free(lg);
    }
    free(x), free(q), free(k), free(v), free(ctx), free(t1), free(mid);
    return loss;
}

/* ---- checks ------------------------------------------------------------------------ */

static uint64_t pick_state = 99;
static size_t pick(size_t n) {
    pick_state = pick_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (size_t)((pick_state >> 33) % n);
}

static void check_forward(fm_model *m, const fm_batch *b, const fm_pass *p) {
    const fm_config *c = &m->cfg;
    const int H = c->hidden_size, NL = c->num_labels > 0 ? c->num_labels : 1;
    fm_acts *a = fm_acts_new(c, B, T, 0, c->num_hidden_layers);
    float *x0 = fm_xalloc_floats(B * T * H), *x1 = fm_xalloc_floats(B * T * H), lg[B * 4];
    fm_embed_forward(m, a, b, p, x0);
    fm_encoder_forward(m, a, b, p, 0, c->num_hidden_layers, x0, x1);
    double loss = 0;
    if (c->num_labels > 0) loss += fm_head_forward(m, a, b, p, x1, lg);
    if (c->with_mlm) loss += fm_mlm_forward(m, a, b, x1, NULL);
    ref_t r = {m, NULL, b, p, malloc(B * T * H * sizeof(double)), malloc(B * 4 * sizeof(double))};
    r.P = malloc(m->lay.numel * sizeof *r.P);
    for (size_t i = 0; i < m->lay.numel; i++) r.P[i] = m->params[i];
    double dl = ref_forward(&r);
    /* with cls_only_last the last layer's output is the [CLS] rows, 0 elsewhere */
    const int cls = p->cls_only_last && c->num_labels > 0 && !c->with_mlm;
    for (int i = 0; i < B * T * H; i++)
        if (cls && (i / H) % T != 0) {
            assert_true(x1[i] == 0.0f);
        } else if (!(fabs(x1[i] - r.hidden[i]) <= 2e-5 * fmax(1, fabs(r.hidden[i])))) {
            print_error("hidden %d: float %.9g double %.9g\n", i, (double)x1[i], r.hidden[i]);
            fail();
        }
    if (c->num_labels > 0)
        for (int i = 0; i < B * NL; i++)
            if (!(fabs(lg[i] - r.logits[i]) <= 2e-5 * fmax(1, fabs(r.logits[i])))) {
                print_error("logit %d: float %.9g double %.9g\n", i, (double)lg[i], r.logits[i]);
                fail();
            }
    if (!(fabs(loss - dl) <= 2e-5 * fmax(1, fabs(dl)))) {
        print_error("loss: float %.9g double %.9g\n", loss, dl);
        fail();
    }
    free(r.P), free(r.hidden), free(r.logits);
    fm_free_aligned(x0), fm_free_aligned(x1);
    fm_acts_free(a);
}

/* Analytic gradients from the whole-model call against central differences
 * of the double loss (tolerances at the top of the file). */
static void check_grads(fm_model *m, const fm_batch *b, const fm_pass *p) {
    const fm_config *c = &m->cfg;
    fm_acts *a = fm_acts_new(c, B, T, 0, c->num_hidden_layers);
    fm_model_zero_grads(m);
    fm_model_forward(m, a, b, p, NULL);
    fm_model_backward(m, a, b, p, 1.0f);
    ref_t r = {m, NULL, b, p, NULL, NULL};
    r.P = malloc(m->lay.numel * sizeof *r.P);
    for (size_t i = 0; i < m->lay.numel; i++) r.P[i] = m->params[i];
    const int H = c->hidden_size;
    double worst_all = 0;
    for (int ti = 0; ti < m->lay.n; ti++) {
        const fm_tensor *t = &m->lay.t[ti];
        enum { MAXS = 48 };
        size_t idx[MAXS];
        int ns = 0;
        if (t->numel <= MAXS) {
            for (size_t i = 0; i < t->numel; i++) idx[ns++] = i;
        } else if (strcmp(t->name, "embeddings.word_embeddings.weight") == 0) {
            /* rows the batch uses (the pad row among them), and a few others */
            for (; ns < 40; ns++) idx[ns] = (size_t)tu_tiny_batch().ids[pick(B * T)] * H + pick((size_t)H);
            for (; ns < MAXS; ns++) idx[ns] = pick(t->numel);
        } else if (strcmp(t->name, "embeddings.position_embeddings.weight") == 0) {
            for (; ns < MAXS; ns++) idx[ns] = pick((size_t)T * H);
        } else {
            for (; ns < MAXS; ns++) idx[ns] = pick(t->numel);
        }
        double num[MAXS], scale = 0;
        for (int s = 0; s < ns; s++) {
            double *w = &r.P[t->offset + idx[s]], save = *w;
            *w = save + FD_H;
            double lp = ref_forward(&r);
            *w = save - FD_H;
            double lm = ref_forward(&r);
            *w = save;
            num[s] = (lp - lm) / (2 * FD_H);
            scale = fmax(scale, fabs(num[s]));
        }
        double worst = 0;
        for (int s = 0; s < ns; s++) {
            double an = m->grads[t->offset + idx[s]], err = fabs(an - num[s]);
            double tol = 1e-3 * fabs(num[s]) + 1e-4 * scale + 1e-7;
            if (scale > 1e-6) worst = fmax(worst, err / scale); /* not for a zero gradient (key bias) */
            if (!(err <= tol)) {
                print_error("%s[%zu]: analytic %.9g numeric %.9g (tensor scale %.3g)\n", t->name, idx[s], an, num[s],
                            scale);
                fail();
            }
        }
        worst_all = fmax(worst_all, worst);
        if (getenv("FM_TEST_VERBOSE"))
            print_message("%-55s n=%2d scale %.3g worst err/scale %.3g\n", t->name, ns, scale, worst);
    }
    if (getenv("FM_TEST_VERBOSE")) print_message("worst err/scale over all tensors: %.3g\n", worst_all);
    free(r.P);
    fm_acts_free(a);
}

static void run_case_cls(fm_act act, int num_labels, int mlm, int training, int cls_only) {
    fm_config c;
    tiny_config(&c, act, num_labels, mlm);
    fm_model m;
    tiny_model(&m, &c, 42 + (uint64_t)num_labels);
    fm_batch b = tiny_batch(c.num_labels);
    fm_pass p = {.seed = 1234, .step = 5, .training = training, .cls_only_last = cls_only};
    check_forward(&m, &b, &p);
    check_grads(&m, &b, &p);
    fm_model_free(&m);
}

static void run_case(fm_act act, int num_labels, int mlm, int training) {
    run_case_cls(act, num_labels, mlm, training, 0);
}

static void test_grad_classifier_erf(void **state) {
    (void)state;
    run_case(FM_GELU_ERF, 3, 0, 0);
}

static void test_grad_regression_tanh(void **state) {
    (void)state;
    run_case(FM_GELU_TANH, 1, 0, 0);
}

static void test_grad_mlm(void **state) {
    (void)state;
    run_case(FM_GELU_ERF, 2, 1, 0);
    run_case(FM_GELU_TANH, 0, 1, 0);
}

static void test_grad_dropout(void **state) {
    (void)state;
    run_case(FM_GELU_ERF, 3, 1, 1);
}

/* The last layer at [CLS] only (fm_pass.cls_only_last) against central
 * differences: both heads, both GELU forms, dropout off and on. */
static void test_grad_cls_only(void **state) {
    (void)state;
    run_case_cls(FM_GELU_ERF, 3, 0, 0, 1);
    run_case_cls(FM_GELU_TANH, 1, 0, 0, 1);
    run_case_cls(FM_GELU_ERF, 2, 0, 1, 1);
    run_case_cls(FM_GELU_TANH, 3, 0, 1, 1);
}

/* ---- bit-identity properties ------------------------------------------------------ */

typedef struct {
    float loss, logits[B * 3];
    float *grads;
} result;

static result whole(fm_model *m, const fm_batch *b, const fm_pass *p) {
    result r;
    memset(&r, 0, sizeof r);
    fm_acts *a = fm_acts_new(&m->cfg, B, T, 0, m->cfg.num_hidden_layers);
    fm_model_zero_grads(m);
    r.loss = fm_model_forward(m, a, b, p, r.logits);
    fm_model_backward(m, a, b, p, 0.5f);
    r.grads = malloc(m->lay.numel * sizeof(float));
    memcpy(r.grads, m->grads, m->lay.numel * sizeof(float));
    fm_acts_free(a);
    return r;
}

/* Two pipeline stages: embeddings + layer 0, then layer 1 + heads. */
static void test_pieces_match_whole(void **state) {
    (void)state;
    fm_config c;
    tiny_config(&c, FM_GELU_ERF, 3, 1);
    fm_model m;
    tiny_model(&m, &c, 7);
    fm_batch b = tiny_batch(c.num_labels);
    fm_pass p = {.seed = 3, .step = 11, .training = 1};
    result w = whole(&m, &b, &p);

    const int H = c.hidden_size;
    fm_acts *s0 = fm_acts_new(&c, B, T, 0, 1), *s1 = fm_acts_new(&c, B, T, 1, 2);
    float *x0 = fm_xalloc_floats(B * T * H), *x1 = fm_xalloc_floats(B * T * H), *x2 = fm_xalloc_floats(B * T * H);
    float *d2 = fm_xalloc_floats(B * T * H), *dm = fm_xalloc_floats(B * T * H), *d1 = fm_xalloc_floats(B * T * H);
    float *d0 = fm_xalloc_floats(B * T * H), logits[B * 3];
    fm_model_zero_grads(&m);
    fm_embed_forward(&m, s0, &b, &p, x0);
    fm_encoder_forward(&m, s0, &b, &p, 0, 1, x0, x1);
    fm_encoder_forward(&m, s1, &b, &p, 1, 2, x1, x2);
    float loss = fm_head_forward(&m, s1, &b, &p, x2, logits);
    int npred = 0;
    loss = (float)((double)loss + fm_mlm_forward(&m, s1, &b, x2, &npred));
    assert_int_equal(npred, 5);
    fm_head_backward(&m, s1, &b, &p, 0.5f, d2);
    fm_mlm_backward(&m, s1, &b, 0.5f, dm);
    for (int i = 0; i < B * T * H; i++) d2[i] += dm[i];
    fm_encoder_backward(&m, s1, &b, &p, 1, 2, d2, d1);
    fm_encoder_backward(&m, s0, &b, &p, 0, 1, d1, d0);
    fm_embed_backward(&m, s0, &b, &p, d0);
    assert_true(loss == w.loss);
    assert_memory_equal(logits, w.logits, sizeof logits);
    assert_memory_equal(m.grads, w.grads, m.lay.numel * sizeof(float));
    free(w.grads);
    fm_free_aligned(x0), fm_free_aligned(x1), fm_free_aligned(x2), fm_free_aligned(d2), fm_free_aligned(dm);
    fm_free_aligned(d1), fm_free_aligned(d0);
    fm_acts_free(s0);
    fm_acts_free(s1);
    fm_model_free(&m);
}

/* needs_grad = 0: that gradient stays exactly 0, every other is unchanged. */
static void test_frozen_tensors(void **state) {
    (void)state;
    fm_config c;
    tiny_config(&c, FM_GELU_TANH, 2, 1);
    fm_model m;
    tiny_model(&m, &c, 8);
    fm_batch b = tiny_batch(c.num_labels);
    fm_pass p = {.seed = 3, .step = 1, .training = 1};
    result all = whole(&m, &b, &p);
    const char *frozen[] = {"embeddings.word_embeddings.weight", "encoder.layer.0.attention.self.key.weight",
                            "encoder.layer.1.intermediate.dense.bias", "encoder.layer.1.output.LayerNorm.weight",
                            "encoder.layer.0.output.dense.weight", "pooler.dense.weight",
                            "cls.predictions.transform.dense.weight"};
    for (size_t i = 0; i < sizeof frozen / sizeof *frozen; i++) fm_layout_find(&m.lay, frozen[i])->needs_grad = 0;
    result some = whole(&m, &b, &p);
    assert_true(some.loss == all.loss);
    for (int i = 0; i < m.lay.n; i++) {
        const fm_tensor *t = &m.lay.t[i];
        for (size_t j = 0; j < t->numel; j++) {
            float want = t->needs_grad ? all.grads[t->offset + j] : 0.0f;
            if (memcmp(&some.grads[t->offset + j], &want, sizeof want) != 0) {
                print_error("%s[%zu]: %g, want %g\n", t->name, j, (double)some.grads[t->offset + j], (double)want);
                fail();
            }
        }
    }
    /* the frozen ones had real gradients before */
    const fm_tensor *k = fm_layout_find(&m.lay, frozen[1]);
    double s = 0;
    for (size_t j = 0; j < k->numel; j++) s += fabs(all.grads[k->offset + j]);
    assert_true(s > 0);
    free(all.grads);
    free(some.grads);
    fm_model_free(&m);
}

static void test_threads_same_bits(void **state) {
    (void)state;
    fm_config c;
    tiny_config(&c, FM_GELU_ERF, 3, 1);
    fm_model m;
    tiny_model(&m, &c, 9);
    fm_batch b = tiny_batch(c.num_labels);
    fm_pass p = {.seed = 77, .step = 2, .training = 1};
    omp_set_num_threads(1);
    fm_blas_set_threads(1);
    result one = whole(&m, &b, &p);
    omp_set_num_threads(2);
    fm_blas_set_threads(2);
    result two = whole(&m, &b, &p);
    omp_set_num_threads(1);
    fm_blas_set_threads(1);
    assert_true(one.loss == two.loss);
    assert_memory_equal(one.logits, two.logits, sizeof one.logits);
    assert_memory_equal(one.grads, two.grads, m.lay.numel * sizeof(float));
    free(one.grads);
    free(two.grads);
    fm_model_free(&m);
}

/* A batch as two micro-batches (examples [0,2) with example0 0, then [2,3)
 * with example0 2) accumulates the same loss and gradients as the whole
 * batch up to float summation order; with wrong dropout keys they would
 * differ by a whole dropout mask. */
static void test_microbatches_same_masks(void **state) {
    (void)state;
    fm_config c;
    tiny_config(&c, FM_GELU_ERF, 3, 1);
    c.hidden_dropout_prob = 0.3f;
    c.attention_probs_dropout_prob = 0.3f;
    fm_model m;
    tiny_model(&m, &c, 10);
    fm_batch b = tiny_batch(c.num_labels);
    fm_pass p = {.seed = 5, .step = 3, .training = 1};
    result w = whole(&m, &b, &p);
    fm_model_zero_grads(&m);
    fm_acts *a = fm_acts_new(&c, B, T, 0, c.num_hidden_layers);
    double loss = 0;
    for (int half = 0; half < 2; half++) {
        int e0 = half ? 2 : 0, nb = half ? 1 : 2;
        fm_batch mb = {.B = nb, .T = T, .ids = b.ids + e0 * T, .type_ids = b.type_ids + e0 * T,
                       .attn_mask = b.attn_mask + e0 * T, .labels = b.labels + e0, .targets = targets + e0,
                       .mlm_labels = mlm_labels + e0 * T, .example0 = e0};
        loss += fm_model_forward(&m, a, &mb, &p, NULL);
        fm_model_backward(&m, a, &mb, &p, 0.5f);
    }
    assert_float_equal(loss, w.loss, 1e-5 * fabs(w.loss));
    double scale = 0;
    for (size_t i = 0; i < m.lay.numel; i++) scale = fmax(scale, fabs(w.grads[i]));
    for (size_t i = 0; i < m.lay.numel; i++)
        if (!(fabs(m.grads[i] - w.grads[i]) <= 1e-5 * scale)) {
            print_error("grad %zu: micro-batches %.9g whole %.9g\n", i, (double)m.grads[i], (double)w.grads[i]);
            fail();
        }
    fm_acts_free(a);
    free(w.grads);
    fm_model_free(&m);
}

/* The last layer's output at [CLS], the logits, the loss and every gradient
 * with cls_only_last against the full computation, bit for bit, with
 * dropout on (high rates, a batch whose global example index starts at 5 so
 * the dropout keys are not trivially those of row 0), on padded sequences:
 * whole-model calls and a two-stage split (the second stage's acts hold
 * layer 1 and the heads), for the classifier (erf GELU) and the regression
 * head (tanh GELU). The other positions of the last layer's output are 0.
 * With an MLM head the flag changes nothing. */
static void cls_case(fm_act act, int num_labels, int mlm) {
    fm_config c;
    tiny_config(&c, act, num_labels, mlm);
    c.hidden_dropout_prob = 0.3f;
    c.attention_probs_dropout_prob = 0.3f;
    fm_model m;
    tiny_model(&m, &c, 31 + (uint64_t)num_labels);
    fm_batch b = tiny_batch(c.num_labels);
    b.example0 = 5;
    fm_pass pf = {.seed = 19, .step = 4, .training = 1}, pc = pf;
    pc.cls_only_last = 1;
    result full = whole(&m, &b, &pf), part = whole(&m, &b, &pc);
    assert_true(full.loss == part.loss);
    assert_memory_equal(full.logits, part.logits, sizeof full.logits);
    size_t ndiff = 0;
    for (int i = 0; i < m.lay.n; i++) {
        const fm_tensor *t = &m.lay.t[i];
        for (size_t j = 0; j < t->numel; j++)
            if (memcmp(&full.grads[t->offset + j], &part.grads[t->offset + j], sizeof(float)) != 0 && ndiff++ < 5)
                print_error("%s[%zu]: full %.9g cls-only %.9g\n", t->name, j, (double)full.grads[t->offset + j],
                            (double)part.grads[t->offset + j]);
    }
    assert_int_equal(ndiff, 0);
    /* the last layer's key and query weights get real gradients */
    const fm_tensor *kw = fm_layout_find(&m.lay, "encoder.layer.1.attention.self.key.weight");
    const fm_tensor *qw = fm_layout_find(&m.lay, "encoder.layer.1.attention.self.query.weight");
    double sk = 0, sq = 0;
    for (size_t j = 0; j < kw->numel; j++) sk += fabs(part.grads[kw->offset + j]);
    for (size_t j = 0; j < qw->numel; j++) sq += fabs(part.grads[qw->offset + j]);
    assert_true(sk > 0 && sq > 0);

    /* two stages; the output of layer 1 at [CLS] */
    const int H = c.hidden_size, BTH = B * T * H;
    fm_acts *s0 = fm_acts_new(&c, B, T, 0, 1), *s1 = fm_acts_new(&c, B, T, 1, 2);
    float *x0 = fm_xalloc_floats(BTH), *x1 = fm_xalloc_floats(BTH), *x2 = fm_xalloc_floats(BTH);
    float *y2 = fm_xalloc_floats(BTH), *d2 = fm_xalloc_floats(BTH), *d1 = fm_xalloc_floats(BTH);
    float *d0 = fm_xalloc_floats(BTH), logits[B * 3] = {0};
    fm_embed_forward(&m, s0, &b, &pf, x0);
    fm_encoder_forward(&m, s0, &b, &pf, 0, 1, x0, x1);
    fm_encoder_forward(&m, s1, &b, &pf, 1, 2, x1, y2); /* full */
    fm_model_zero_grads(&m);
    fm_embed_forward(&m, s0, &b, &pc, x0);
    fm_encoder_forward(&m, s0, &b, &pc, 0, 1, x0, x1);
    for (int i = 0; i < BTH; i++) x2[i] = 7.0f; /* every position gets written */
    fm_encoder_forward(&m, s1, &b, &pc, 1, 2, x1, x2);
    for (int i = 0; i < BTH; i++) {
        if ((i / H) % T == 0 || mlm)
            assert_memory_equal(&x2[i], &y2[i], sizeof(float));
        else
            assert_true(x2[i] == 0.0f);
    }
    float loss = fm_head_forward(&m, s1, &b, &pc, x2, logits);
    if (mlm) loss = (float)((double)loss + fm_mlm_forward(&m, s1, &b, x2, NULL));
    assert_true(loss == full.loss);
    assert_memory_equal(logits, full.logits, sizeof logits);
    fm_head_backward(&m, s1, &b, &pc, 0.5f, d2);
    if (mlm) {
        fm_mlm_backward(&m, s1, &b, 0.5f, d0);
        for (int i = 0; i < BTH; i++) d2[i] += d0[i];
    }
    fm_encoder_backward(&m, s1, &b, &pc, 1, 2, d2, d1);
    fm_encoder_backward(&m, s0, &b, &pc, 0, 1, d1, d0);
    fm_embed_backward(&m, s0, &b, &pc, d0);
    assert_memory_equal(m.grads, full.grads, m.lay.numel * sizeof(float));
    fm_free_aligned(x0), fm_free_aligned(x1), fm_free_aligned(x2), fm_free_aligned(y2), fm_free_aligned(d2);
    fm_free_aligned(d1), fm_free_aligned(d0);
    fm_acts_free(s0);
    fm_acts_free(s1);
    free(full.grads);
    free(part.grads);
    fm_model_free(&m);
}

static void test_cls_only_same_bits(void **state) {
    (void)state;
    cls_case(FM_GELU_ERF, 3, 0);
    cls_case(FM_GELU_TANH, 1, 0);
    cls_case(FM_GELU_ERF, 2, 1); /* MLM: the flag is ignored */
}

/* ---- init and bookkeeping ------------------------------------------------------------ */

static void test_init_weights(void **state) {
    (void)state;
    fm_config c;
    fm_config_preset("tiny", &c);
    c.num_labels = 2;
    c.with_mlm = 1;
    fm_model m, m2;
    fm_model_alloc(&m, &c);
    fm_model_alloc(&m2, &c);
    fm_model_init_weights(&m, 5);
    fm_model_init_weights(&m2, 5);
    assert_memory_equal(m.params, m2.params, m.lay.numel * sizeof(float));
    fm_model_init_weights(&m2, 6);
    assert_memory_not_equal(m.params, m2.params, m.lay.numel * sizeof(float));
    for (int i = 0; i < m.lay.n; i++) {
        const fm_tensor *t = &m.lay.t[i];
        const float *p = m.params + t->offset;
        if (t->flags & FM_T_MATRIX) {
            double s = 0, s2 = 0;
            for (size_t j = 0; j < t->numel; j++) s += p[j], s2 += (double)p[j] * p[j];
            double mean = s / t->numel, sd = sqrt(s2 / t->numel - mean * mean);
            if (t->numel >= 4096) {
                assert_true(fabs(mean) < 0.002);
                assert_true(fabs(sd - 0.02) < 0.001);
            }
        } else {
            int gain = (t->flags & FM_T_LN) && strstr(t->name, ".weight");
            for (size_t j = 0; j < t->numel; j++) assert_true(p[j] == (gain ? 1.0f : 0.0f));
        }
    }
    /* the pad row of the word embeddings is zero, its neighbour is not */
    for (int j = 0; j < c.hidden_size; j++) assert_true(m.w.word[(size_t)c.pad_token_id * c.hidden_size + j] == 0.0f);
    assert_true(m.w.word[(size_t)(c.pad_token_id + 1) * c.hidden_size] != 0.0f);
    /* fm_model_tensor_at */
    assert_ptr_equal(fm_model_tensor_at(&m, m.w.layer[1].wk + 5), fm_layout_find(&m.lay, "encoder.layer.1.attention.self.key.weight"));
    assert_ptr_equal(fm_model_tensor_at(&m, m.g.mlm_bias), fm_layout_find(&m.lay, "cls.predictions.bias"));
    float outside = 0;
    assert_null(fm_model_tensor_at(&m, &outside));
    fm_model_free(&m);
    fm_model_free(&m2);
}

static void test_acts_bytes(void **state) {
    (void)state;
    fm_config c;
    tiny_config(&c, FM_GELU_ERF, 2, 0);
    fm_acts *all = fm_acts_new(&c, B, T, 0, 2), *s0 = fm_acts_new(&c, B, T, 0, 1), *s1 = fm_acts_new(&c, B, T, 1, 2);
    assert_true(fm_acts_bytes(all) > 0);
    /* a stage holds less than the whole, the two stages about the whole */
    assert_true(fm_acts_bytes(s0) < fm_acts_bytes(all) && fm_acts_bytes(s1) < fm_acts_bytes(all));
    fm_acts_free(all);
    fm_acts_free(s0);
    fm_acts_free(s1);
}

/* Evaluation on forward-only activations (fm_acts_new_forward): the same
 * logits and loss, bit for bit, as on training activations, for both heads,
 * the MLM head, 1 to 4 layers, with and without [CLS]-only last layer and
 * dropout, on a second batch through the same set too; and fewer bytes than
 * the training set (under half from 4 layers on). */
static void forward_only_case(int L, int num_labels, int mlm, int cls_only, int training) {
    fm_config c;
    tiny_config(&c, FM_GELU_ERF, num_labels, mlm);
    c.num_hidden_layers = L;
    fm_model m;
    tiny_model(&m, &c, 5 + (uint64_t)L);
    fm_batch b = tiny_batch(num_labels);
    fm_pass p = {.seed = 3, .step = 2, .training = training, .cls_only_last = cls_only};
    fm_acts *tr = fm_acts_new(&c, B, T, 0, L), *fw = fm_acts_new_forward(&c, B, T, 0, L);
    /* the sizes without allocating are the new sets' own */
    assert_int_equal(fm_acts_size(&c, B, T, 0, L, 0), fm_acts_bytes(tr));
    assert_int_equal(fm_acts_size(&c, B, T, 0, L, 1), fm_acts_bytes(fw));
    float lt[B * 3], lf[B * 3], lf2[B * 3];
    memset(lt, 0, sizeof lt);
    memset(lf, 0xff, sizeof lf);
    memset(lf2, 0xff, sizeof lf2);
    const float losst = fm_model_forward(&m, tr, &b, &p, lt);
    const float lossf = fm_model_forward(&m, fw, &b, &p, lf);
    assert_memory_equal(&losst, &lossf, sizeof losst);
    assert_memory_equal(lt, lf, (size_t)B * num_labels * sizeof(float));
    /* the set reused: a shorter batch, then the first again */
    fm_batch b2 = b;
    b2.B = B - 1;
    fm_model_forward(&m, fw, &b2, &p, lf2);
    const float lossf2 = fm_model_forward(&m, fw, &b, &p, lf2);
    assert_memory_equal(&lossf2, &lossf, sizeof lossf);
    assert_memory_equal(lt, lf2, (size_t)B * num_labels * sizeof(float));
    const size_t bt = fm_acts_bytes(tr), bf = fm_acts_bytes(fw);
    if (getenv("FM_TEST_VERBOSE")) print_message("L=%d: training activations %zu bytes, forward-only %zu\n", L, bt, bf);
    assert_true(bf < bt);
    if (L >= 4) assert_true(2 * bf < bt);
    fm_acts_free(tr);
    fm_acts_free(fw);
    fm_model_free(&m);
}

static void test_acts_forward_only(void **state) {
    (void)state;
    for (int L = 1; L <= 4; L++) {
        forward_only_case(L, 3, 0, 0, 0);
        forward_only_case(L, 2, 0, 1, 0);
        forward_only_case(L, 1, 0, 1, 1);
        forward_only_case(L, 3, 1, 0, 1);
    }
}

int main(void) {
    omp_set_num_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grad_classifier_erf),
        cmocka_unit_test(test_grad_regression_tanh),
        cmocka_unit_test(test_grad_mlm),
        cmocka_unit_test(test_grad_dropout),
        cmocka_unit_test(test_grad_cls_only),
        cmocka_unit_test(test_cls_only_same_bits),
        cmocka_unit_test(test_pieces_match_whole),
        cmocka_unit_test(test_frozen_tensors),
        cmocka_unit_test(test_threads_same_bits),
        cmocka_unit_test(test_microbatches_same_masks),
        cmocka_unit_test(test_init_weights),
        cmocka_unit_test(test_acts_bytes),
        cmocka_unit_test(test_acts_forward_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
