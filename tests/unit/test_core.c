/* test_core.c: the parameter layout, the BLIS wrapper, the Philox streams and
 * AdamW with its schedule, each against known values or a plain reference. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "config.h"
#include "fm.h"
#include "optim.h"
#include "params.h"
#include "rng.h"
#include "testutil.h"

/* bert-base-uncased's BertModel (embeddings, 12 layers, pooler) has 109,482,240
 * parameters; BertForSequenceClassification with 2 labels adds 768*2 + 2. */
static void test_layout_base_counts(void **state) {
    (void)state;
    fm_config c;
    assert_int_equal(fm_config_preset("base", &c), FM_OK);
    fm_layout lay;
    fm_layout_build(&lay, &c);
    size_t total = 0;
    for (int i = 0; i < lay.n; i++) total += lay.t[i].numel;
    assert_int_equal(total, 109482240);
    assert_int_equal(lay.n, 5 + 12 * 16 + 2);
    fm_layout_free(&lay);
    c.num_labels = 2;
    fm_layout_build(&lay, &c);
    total = 0;
    for (int i = 0; i < lay.n; i++) total += lay.t[i].numel;
    assert_int_equal(total, 109482240 + 768 * 2 + 2);
    fm_layout_free(&lay);
}

static void test_layout_flags_and_ranges(void **state) {
    (void)state;
    fm_config c;
    fm_config_preset("tiny", &c);
    c.num_labels = 3;
    c.with_mlm = 1;
    fm_layout lay;
    fm_layout_build(&lay, &c);
    const fm_tensor *q = fm_layout_find(&lay, "bert.encoder.layer.1.attention.self.query.weight");
    assert_non_null(q);
    assert_int_equal(q->shape[0], 128);
    assert_int_equal(q->shape[1], 128);
    assert_int_equal(q->layer, 1);
    assert_true(q->flags & FM_T_DECAY);
    assert_true(q->flags & FM_T_MATRIX);
    const fm_tensor *qb = fm_layout_find(&lay, "encoder.layer.1.attention.self.query.bias");
    assert_false(qb->flags & FM_T_DECAY);
    const fm_tensor *ln = fm_layout_find(&lay, "encoder.layer.0.output.LayerNorm.weight");
    assert_true(ln->flags & FM_T_LN);
    assert_false(ln->flags & FM_T_DECAY);
    assert_non_null(fm_layout_find(&lay, "classifier.weight"));
    assert_non_null(fm_layout_find(&lay, "cls.predictions.bias"));
    assert_null(fm_layout_find(&lay, "encoder.layer.2.attention.self.query.weight"));
    /* Every tensor is 64-byte aligned and tensors do not overlap. */
    for (int i = 0; i < lay.n; i++) {
        assert_int_equal(lay.t[i].offset % 16, 0);
        if (i + 1 < lay.n) assert_true(lay.t[i].offset + lay.t[i].numel <= lay.t[i + 1].offset);
    }
    /* Layer 1's range holds exactly its 16 tensors. */
    size_t b, e;
    fm_layout_range(&lay, 1, 2, &b, &e);
    int inside = 0;
    for (int i = 0; i < lay.n; i++)
        if (lay.t[i].offset >= b && lay.t[i].offset < e) {
            assert_int_equal(lay.t[i].layer, 1);
            inside++;
        }
    assert_int_equal(inside, 16);
    fm_layout_free(&lay);
}

static void test_config_checks(void **state) {
    (void)state;
    fm_config c;
    assert_int_equal(fm_config_preset("huge", &c), FM_ERR);
    tu_assert_contains(fm_last_error(), "huge");
    fm_config_preset("mini", &c);
    c.num_attention_heads = 3;
    assert_int_equal(fm_config_check(&c), FM_ERR);
    tu_assert_contains(fm_last_error(), "num_attention_heads");
}

/* fm_sgemm with transposed and strided views agrees with the double reference. */
static void test_sgemm_strides(void **state) {
    (void)state;
    const int m = 37, n = 29, k = 53;
    float *a = malloc(sizeof(float) * m * k), *bt = malloc(sizeof(float) * n * k);
    float *c1 = malloc(sizeof(float) * m * n * 2), *c2 = malloc(sizeof(float) * m * n * 2);
    fm_rng_uniforms(1, FM_RNG_DATA, 0, 0, 0, a, (uint64_t)m * k);
    fm_rng_uniforms(1, FM_RNG_DATA, 0, 1, 0, bt, (uint64_t)n * k);
    for (int i = 0; i < m * n * 2; i++) c1[i] = c2[i] = (float)i * 0.01f;
    /* C (m x n, column stride 2) = 0.5 * A (m x k) * Bt^T + 0.25 C, with B given as (n x k). */
    fm_sgemm(m, n, k, 0.5f, a, k, 1, bt, 1, k, 0.25f, c1, 2 * n, 2);
    fm_sgemm_ref(m, n, k, 0.5f, a, k, 1, bt, 1, k, 0.25f, c2, 2 * n, 2);
    for (int i = 0; i < m * n * 2; i++) assert_float_equal(c1[i], c2[i], 1e-4 * (1 + fabsf(c2[i])));
    /* Untouched odd columns stay untouched. */
    assert_float_equal(c1[1], 0.01f, 0);
    fm_blas_reset_flops();
    fm_sgemm_1t(m, n, k, 1.0f, a, k, 1, bt, 1, k, 0.0f, c1, n, 1);
    assert_float_equal(fm_blas_flops(), 2.0 * m * n * k, 0);
    free(a);
    free(bt);
    free(c1);
    free(c2);
}

/* Random123's published known-answer vector for Philox4x32-10 with a zero
 * key and counter: 6627e8d5 e169c58d bc57ac4c 9b00dbd8. Seed 0, purpose 0,
 * step 0, stream 0, block 0 maps to exactly that key and counter. */
static void test_philox_known_answer(void **state) {
    (void)state;
    uint32_t w[4];
    fm_rng_block(0, 0, 0, 0, 0, w);
    assert_int_equal(w[0], 0x6627e8d5u);
    assert_int_equal(w[1], 0xe169c58du);
    assert_int_equal(w[2], 0xbc57ac4cu);
    assert_int_equal(w[3], 0x9b00dbd8u);
}

static void test_rng_streams(void **state) {
    (void)state;
    /* A run of uniforms is the single draws, bit for bit, whatever its start
     * and length: inside one block, across blocks, from a block boundary, and
     * past 2^34 where the block index has high bits. */
    float buf[103];
    const struct {
        uint64_t first;
        int n;
    } runs[] = {{5, 103}, {0, 103}, {8, 64}, {1, 2}, {3, 1}, {2, 7}, {((uint64_t)1 << 34) + 6, 97}, {0, 0}};
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        fm_rng_uniforms(42, FM_RNG_DROPOUT, 7, 3, runs[r].first, buf, (uint64_t)runs[r].n);
        for (int i = 0; i < runs[r].n; i++) {
            float one = fm_rng_uniform(42, FM_RNG_DROPOUT, 7, 3, runs[r].first + (uint64_t)i);
            assert_memory_equal(&buf[i], &one, sizeof one);
            assert_true(buf[i] >= 0.0f && buf[i] < 1.0f);
        }
    }
    assert_true(fm_rng_uniform(42, FM_RNG_DROPOUT, 7, 3, ((uint64_t)1 << 34) + 6) !=
                fm_rng_uniform(42, FM_RNG_DROPOUT, 7, 3, 6));
    /* Different purpose, step or stream: different bits. */
    assert_true(fm_rng_uniform(42, FM_RNG_DROPOUT, 7, 3, 5) != fm_rng_uniform(42, FM_RNG_MASK, 7, 3, 5));
    assert_true(fm_rng_uniform(42, FM_RNG_DROPOUT, 7, 3, 5) != fm_rng_uniform(42, FM_RNG_DROPOUT, 8, 3, 5));
    assert_true(fm_rng_uniform(42, FM_RNG_DROPOUT, 7, 3, 5) != fm_rng_uniform(42, FM_RNG_DROPOUT, 7, 4, 5));
    /* Normals: mean ~0 and variance ~1 over 200k draws (5 sigma bounds). */
    const int n = 200000;
    float *z = malloc(sizeof(float) * n);
    fm_rng_normals(3, FM_RNG_INIT, 0, 0, z, n);
    double s = 0, s2 = 0;
    for (int i = 0; i < n; i++) s += z[i], s2 += (double)z[i] * z[i];
    assert_true(fabs(s / n) < 5.0 / sqrt(n));
    assert_true(fabs(s2 / n - 1.0) < 5.0 * sqrt(2.0 / n));
    free(z);
    /* A permutation holds every index once. */
    uint32_t perm[1000];
    int seen[1000] = {0};
    fm_rng_permutation(9, FM_RNG_SHUFFLE, 0, 0, perm, 1000);
    for (int i = 0; i < 1000; i++) seen[perm[i]]++;
    for (int i = 0; i < 1000; i++) assert_int_equal(seen[i], 1);
}

static void test_lr_schedule(void **state) {
    (void)state;
    fm_adamw o;
    fm_adamw_default(&o);
    o.total_steps = 10;
    o.warmup_steps = 2;
    /* HF's get_linear_schedule_with_warmup: 0, 0.5, then (10-s)/8. */
    const double want[] = {0, 0.5, 1.0, 7.0 / 8, 6.0 / 8, 5.0 / 8, 4.0 / 8, 3.0 / 8, 2.0 / 8, 1.0 / 8, 0, 0};
    for (int s = 0; s < 12; s++) assert_float_equal(fm_lr_factor(&o, s), want[s], 1e-15);
    o.warmup_steps = 0;
    assert_float_equal(fm_lr_factor(&o, 0), 1.0, 0);
}

/* Three AdamW updates against a double-precision transcription of
 * torch.optim.AdamW's update, with clipping, decay on the matrix only and a
 * frozen tensor that must not change by a single bit. */
static void test_adamw_against_reference(void **state) {
    (void)state;
    fm_config c;
    fm_config_preset("tiny", &c);
    c.num_hidden_layers = 1;
    c.vocab_size = 10;
    c.max_position_embeddings = 8;
    fm_layout lay;
    fm_layout_build(&lay, &c);
    fm_tensor *frozen = fm_layout_find(&lay, "encoder.layer.0.attention.self.key.weight");
    frozen->trains = 0;
    size_t n = lay.numel;
    float *p = fm_xalloc_floats(n), *g = fm_xalloc_floats(n), *m = fm_xalloc_floats(n), *v = fm_xalloc_floats(n);
    double *rp = calloc(n, sizeof(double)), *rm = calloc(n, sizeof(double)), *rv = calloc(n, sizeof(double));
    fm_rng_normals(5, FM_RNG_INIT, 0, 0, p, n);
    for (size_t i = 0; i < n; i++) rp[i] = p[i];
    float *frozen_before = malloc(frozen->numel * sizeof(float));
    memcpy(frozen_before, p + frozen->offset, frozen->numel * sizeof(float));
    fm_adamw o;
    fm_adamw_default(&o);
    o.lr = 1e-2f;
    o.total_steps = 5;
    o.warmup_steps = 1;
    o.eps = 1e-6f;
    for (int step = 0; step < 3; step++) {
        fm_rng_normals(6, FM_RNG_DATA, (uint64_t)step, 0, g, n);
        for (size_t i = 0; i < n; i++) g[i] *= 0.1f;
        double norm = fm_grad_norm(&lay, g);
        double rnorm = 0;
        for (int t = 0; t < lay.n; t++)
            if (lay.t[t].trains)
                for (size_t j = 0; j < lay.t[t].numel; j++) {
                    double x = g[lay.t[t].offset + j];
                    rnorm += x * x;
                }
        rnorm = sqrt(rnorm);
        assert_float_equal(norm, rnorm, 1e-9 * rnorm);
        assert_true(norm > 1.0); /* so clipping is exercised */
        fm_adamw_step(&o, &lay, p, g, m, v, step, norm, NULL);
        double lr = o.lr * fm_lr_factor(&o, step), clip = 1.0 / (rnorm + 1e-6);
        double bc1 = 1 - pow(0.9, step + 1), bc2 = 1 - pow(0.999, step + 1);
        for (int t = 0; t < lay.n; t++) {
            if (!lay.t[t].trains) continue;
            for (size_t j = 0; j < lay.t[t].numel; j++) {
                size_t i = lay.t[t].offset + j;
                double gi = (double)g[i] * clip;
                rm[i] = 0.9 * rm[i] + 0.1 * gi;
                rv[i] = 0.999 * rv[i] + 0.001 * gi * gi;
                if (lay.t[t].flags & FM_T_DECAY) rp[i] *= 1 - lr * 0.01;
                rp[i] -= lr / bc1 * rm[i] / (sqrt(rv[i]) / sqrt(bc2) + 1e-6);
            }
        }
    }
    for (size_t i = 0; i < n; i++) assert_float_equal(p[i], rp[i], 2e-6 * (1 + fabs(rp[i])));
    assert_memory_equal(frozen_before, p + frozen->offset, frozen->numel * sizeof(float));
    free(frozen_before);
    free(rp);
    free(rm);
    free(rv);
    fm_free_aligned(p);
    fm_free_aligned(g);
    fm_free_aligned(m);
    fm_free_aligned(v);
    fm_layout_free(&lay);
}

/* The gradient norm is the same bits on 1 and 2 threads. */
static void test_grad_norm_thread_invariant(void **state) {
    (void)state;
    fm_config c;
    fm_config_preset("mini", &c);
    fm_layout lay;
    fm_layout_build(&lay, &c);
    float *g = fm_xalloc_floats(lay.numel);
    fm_rng_normals(1, FM_RNG_DATA, 0, 0, g, lay.numel);
    omp_set_num_threads(1);
    double a = fm_grad_norm(&lay, g);
    omp_set_num_threads(2);
    double b = fm_grad_norm(&lay, g);
    assert_memory_equal(&a, &b, sizeof a);
    fm_free_aligned(g);
    fm_layout_free(&lay);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_base_counts),     cmocka_unit_test(test_layout_flags_and_ranges),
        cmocka_unit_test(test_config_checks),          cmocka_unit_test(test_sgemm_strides),
        cmocka_unit_test(test_philox_known_answer),    cmocka_unit_test(test_rng_streams),
        cmocka_unit_test(test_lr_schedule),            cmocka_unit_test(test_adamw_against_reference),
        cmocka_unit_test(test_grad_norm_thread_invariant),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
