/* test_forward_hand.c: one forward pass small enough to follow by hand.
 *
 * H = 2, one head (head size 2), one layer, I = 2, vocabulary 4, three
 * tokens of which the last is padding, two labels. layer_norm_eps is 1
 * on purpose: with H = 2 a LayerNorm input (a, b) has mean (a+b)/2 and
 * deviations +-d, d = (a-b)/2, so its output is g * (d, -d) / sqrt(d^2 + eps)
 * + beta; with eps = 1e-12 that would be +-g + beta whatever d is, and the
 * test would see only signs. The weights are chosen asymmetric, so a matrix
 * used transposed, a missing scale or a misplaced residual changes the
 * answer. The expected values are worked out below line by line in double,
 * with the numbers that come out round written as literals. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fm.h"
#include "model.h"
#include "testutil.h"

static void set2(float *p, float a, float b) {
    p[0] = a;
    p[1] = b;
}

/* LayerNorm of a 2-vector with eps 1 (see the top). */
static void ln2(const double in[2], const double g[2], const double b[2], double out[2]) {
    double d = (in[0] - in[1]) / 2, s = sqrt(d * d + 1.0);
    out[0] = g[0] * d / s + b[0];
    out[1] = g[1] * -d / s + b[1];
}

static double gelu(double x) { return 0.5 * x * (1 + erf(x / sqrt(2.0))); }

static void test_forward_by_hand(void **state) {
    (void)state;
    fm_config c;
    fm_config_default(&c);
    c.vocab_size = 4;
    c.hidden_size = 2;
    c.num_hidden_layers = 1;
    c.num_attention_heads = 1;
    c.intermediate_size = 2;
    c.max_position_embeddings = 4;
    c.type_vocab_size = 2;
    c.layer_norm_eps = 1.0f;
    c.num_labels = 2;
    c.hidden_act = FM_GELU_ERF;
    fm_model m;
    fm_model_alloc(&m, &c); /* all zero */
    fm_view *w = &m.w;
    fm_layer_view *l = &w->layer[0];
    /* embeddings: word rows 1, 2, 3; positions 0, 1; token type 1 */
    set2(w->word + 2, 1, 0);
    set2(w->word + 4, 0, 1);
    set2(w->word + 6, 5, -5);
    set2(w->pos + 0, 0.5f, 0);
    set2(w->pos + 2, 0, 0.5f);
    set2(w->type + 2, 1, -1);
    set2(w->emb_ln_g, 1, 1);
    /* attention: Wq = [[1,2],[0,1]], Wk = [[1,0],[0,-1]], Wv = [[2,0],[0,1]],
     * bv = (0,1); output dense = identity with bias (0.1,-0.1) */
    set2(l->wq, 1, 2);
    set2(l->wq + 2, 0, 1);
    set2(l->wk, 1, 0);
    set2(l->wk + 2, 0, -1);
    set2(l->wv, 2, 0);
    set2(l->wv + 2, 0, 1);
    set2(l->bv, 0, 1);
    set2(l->wd, 1, 0);
    set2(l->wd + 2, 0, 1);
    set2(l->bd, 0.1f, -0.1f);
    set2(l->ln1_g, 1, 2);
    set2(l->ln1_b, 0, 0.5f);
    /* feed-forward: Wi = [[1,0],[1,1]], bi = (0,-0.5); Wo = [[1,0],[0,-1]] */
    set2(l->wi, 1, 0);
    set2(l->wi + 2, 1, 1);
    set2(l->bi, 0, -0.5f);
    set2(l->wo, 1, 0);
    set2(l->wo + 2, 0, -1);
    set2(l->ln2_g, 1, 1);
    /* pooler Wp = [[1,1],[0,2]], bp = (0,0.1); classifier identity, bias (0.2,0) */
    set2(w->pool_w, 1, 1);
    set2(w->pool_w + 2, 0, 2);
    set2(w->pool_b, 0, 0.1f);
    set2(w->cls_w, 1, 0);
    set2(w->cls_w + 2, 0, 1);
    set2(w->cls_b, 0.2f, 0);

    const int32_t ids[3] = {1, 2, 3}, types[3] = {0, 1, 0}, label[1] = {1};
    const float mask[3] = {1, 1, 0};
    fm_batch b = {.B = 1, .T = 3, .ids = ids, .type_ids = types, .attn_mask = mask, .labels = label};
    fm_pass p = {.seed = 1, .step = 0, .training = 0};
    fm_acts *a = fm_acts_new(&c, 1, 3, 0, 1);
    float x[6], h[6], logits[2];

    /* Embeddings. Token 0: word (1,0) + pos (0.5,0) = (1.5,0): d = 0.75,
     * sqrt(0.5625 + 1) = 1.25, so (0.6, -0.6). Token 1: (0,1) + (0,0.5) +
     * type (1,-1) = (1,0.5): d = 0.25, a1 = 0.25/sqrt(1.0625). Token 2:
     * (5,-5): d = 5, a2 = 5/sqrt(26). Every x_i = (a_i, -a_i). */
    fm_embed_forward(&m, a, &b, &p, x);
    double av[3] = {0.6, 0.25 / sqrt(1.0625), 5 / sqrt(26.0)};
    assert_float_equal(x[0], 0.6, 1e-7);
    assert_float_equal(x[1], -0.6, 1e-7);
    for (int i = 0; i < 3; i++) {
        assert_float_equal(x[2 * i], av[i], 1e-7);
        assert_float_equal(x[2 * i + 1], -av[i], 1e-7);
    }

    /* Attention. q_i = Wq x_i = (a - 2a, -a) = (-a_i, -a_i) (with Wq^T it
     * would be (a_i, a_i)); k_j = Wk x_j = (a_j, a_j); score s_ij = q.k / sqrt2
     * = -sqrt2 a_i a_j; key 2 is padding, so p_i2 = 0 and
     * p_i0 = 1 / (1 + e^{s_i1 - s_i0}). v_j = (2a_j, 1 - a_j). */
    double expect[6];
    double r1[3][2];
    for (int i = 0; i < 3; i++) {
        double s0 = -sqrt(2.0) * av[i] * av[0], s1 = -sqrt(2.0) * av[i] * av[1];
        double p0 = 1 / (1 + exp(s1 - s0)), p1 = 1 - p0;
        double ctx[2] = {p0 * 2 * av[0] + p1 * 2 * av[1], p0 * (1 - av[0]) + p1 * (1 - av[1])};
        /* output dense (identity + bias), residual */
        r1[i][0] = av[i] + ctx[0] + 0.1;
        r1[i][1] = -av[i] + ctx[1] - 0.1;
    }
    for (int i = 0; i < 3; i++) {
        /* LayerNorm 1 with gain (1,2), bias (0,0.5) */
        double y1[2], g1[2] = {1, 2}, b1[2] = {0, 0.5};
        ln2(r1[i], g1, b1, y1);
        /* intermediate: (y0, y0 + y1 - 0.5), GELU; output: (g0, -g1); residual */
        double f0 = gelu(y1[0]), f1 = gelu(y1[0] + y1[1] - 0.5);
        double r2[2] = {y1[0] + f0, y1[1] - f1}, one[2] = {1, 1}, zero[2] = {0, 0};
        ln2(r2, one, zero, expect + 2 * i);
    }
    fm_encoder_forward(&m, a, &b, &p, 0, 1, x, h);
    for (int i = 0; i < 6; i++) assert_float_equal(h[i], expect[i], 2e-6);

    /* Pooler on token 0 = (o, -o): Wp h0 + bp = (o - o, -2o + 0.1), tanh;
     * logits = (0.2 + tanh 0, tanh(0.1 - 2o)); loss = log(e^l0 + e^l1) - l1. */
    double o = expect[0];
    double l0 = 0.2, l1 = tanh(0.1 - 2 * o);
    double loss = log(exp(l0) + exp(l1)) - l1;
    float got = fm_head_forward(&m, a, &b, &p, h, logits);
    assert_float_equal(logits[0], l0, 1e-7);
    assert_float_equal(logits[1], l1, 2e-6);
    assert_float_equal(got, loss, 2e-6);

    /* The whole-model call agrees bit for bit with the pieces. */
    float logits2[2];
    float got2 = fm_model_forward(&m, a, &b, &p, logits2);
    assert_true(got2 == got);
    assert_memory_equal(logits2, logits, sizeof logits);

    /* And the padding is what HF's mask makes it: the padded token's own
     * embedding (5,-5) never reaches the other tokens. Changing it changes
     * only token 2's output. */
    set2(w->word + 6, -3, 7);
    float h2[6];
    fm_embed_forward(&m, a, &b, &p, x);
    fm_encoder_forward(&m, a, &b, &p, 0, 1, x, h2);
    assert_memory_equal(h2, h, 4 * sizeof(float));
    assert_true(h2[4] != h[4]);
    fm_acts_free(a);
    fm_model_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_by_hand),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
