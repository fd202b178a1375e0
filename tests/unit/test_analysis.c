/* test_analysis.c: the analyses of src/analysis.h with hand-computed values:
 * L1 and angular distances of tiny vectors, the random-initialisation
 * references against their closed forms, mask counts grouped by layer and
 * kind, overlaps of hand-made masks, random masks, and the JSON forms. */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "analysis.h"
#include "analysisjson.h"
#include "fm.h"
#include "mask.h"
#include "params.h"

static void test_names(void **state) {
    (void)state;
    assert_int_equal(fm_name_layer("embeddings.word_embeddings.weight"), -1);
    assert_int_equal(fm_name_layer("bert.encoder.layer.11.output.dense.weight"), 11);
    assert_int_equal(fm_name_layer("encoder.layer.x.output.dense.weight"), -2);
    assert_int_equal(fm_name_layer("pooler.dense.weight"), -2);
    assert_string_equal(fm_name_kind("encoder.layer.3.attention.self.key.weight"), "attention.self.key.weight");
    assert_string_equal(fm_name_kind("bert.pooler.dense.weight"), "pooler.dense.weight");
    assert_int_equal(fm_name_stream("bert.a"), fm_name_stream("a"));
    assert_int_equal(fm_name_stream(""), 2166136261u); /* FNV-1a's offset basis */
    assert_int_equal(fm_name_stream("a"), 0xe40c292cu); /* FNV-1a 32 of "a" */
}

/* ---- distances ---- */

static void test_distance_hand(void **state) {
    (void)state;
    fm_dist d;
    const float a1[2] = {1, 0}, b1[2] = {0, 1};
    fm_distance(&d, a1, b1, 2);
    assert_true(d.l1 == 2.0 && d.l1_mean == 1.0 && d.cosine == 0.0 && d.angular == 0.5);
    assert_int_equal(d.n, 2);
    const float a2[3] = {1, 2, 3}, b2[3] = {-1, -2, -3};
    fm_distance(&d, a2, b2, 3);
    assert_true(d.l1 == 12.0 && d.l1_mean == 4.0 && d.cosine == -1.0 && d.angular == 1.0);
    fm_distance(&d, a2, a2, 3);
    assert_true(d.l1 == 0.0 && d.cosine == 1.0 && d.angular == 0.0);
    const float a3[2] = {1, 0}, b3[2] = {1, 1}; /* 45 degrees */
    fm_distance(&d, a3, b3, 2);
    assert_true(d.l1 == 1.0 && d.l1_mean == 0.5);
    assert_true(fabs(d.angular - 0.25) < 1e-15);
    const float a4[4] = {1, 1, 0, 0}, b4[4] = {1, 0, 1, 0}; /* cos 1/2: 60 degrees */
    fm_distance(&d, a4, b4, 4);
    assert_true(d.l1 == 2.0 && d.l1_mean == 0.5 && fabs(d.cosine - 0.5) < 1e-15);
    assert_true(fabs(d.angular - 1.0 / 3.0) < 1e-15);
    const float a5[2] = {3, 4}, b5[2] = {4, 3}; /* cos 24/25 */
    fm_distance(&d, a5, b5, 2);
    assert_true(d.l1 == 2.0 && fabs(d.cosine - 0.96) < 1e-15);
    assert_true(fabs(d.angular - acos(0.96) / M_PI) < 1e-15);
    /* a zero vector has no direction */
    const float z[2] = {0, 0};
    fm_distance(&d, a3, z, 2);
    assert_true(d.l1 == 1.0 && isnan(d.cosine) && isnan(d.angular));
    /* accumulation in pieces equals one pass, and sums are in double:
     * 2^24 + 1 is not a float but the sum of |a - b| over these is exact */
    fm_dist_acc acc = {0};
    fm_dist_acc_add(&acc, a4, b4, 2);
    fm_dist_acc_add(&acc, a4 + 2, b4 + 2, 2);
    fm_dist d2;
    fm_dist_finish(&d2, &acc);
    fm_distance(&d, a4, b4, 4);
    assert_memory_equal(&d, &d2, sizeof d);
    float big[3] = {16777216.0f, 1.0f, 0.0f}, zero3[3] = {0, 0, 0};
    fm_distance(&d, big, zero3, 3);
    assert_true(d.l1 == 16777217.0);
}

/* Two models with one encoder layer: A's matrices hold i-dependent values, B
 * equals A but for query.weight (+0.5 everywhere) and key.weight (negated). */
static void test_distance_models(void **state) {
    (void)state;
    fm_config c;
    fm_config_default(&c);
    c.vocab_size = 1000;
    c.hidden_size = 64;
    c.num_attention_heads = 2;
    c.intermediate_size = 128;
    c.num_hidden_layers = 1;
    c.max_position_embeddings = 8;
    c.type_vocab_size = 2;
    c.num_labels = 2;
    fm_layout lay;
    fm_layout_build(&lay, &c);
    float *pa = fm_xalloc_floats(lay.numel), *pb = fm_xalloc_floats(lay.numel);
    for (size_t i = 0; i < lay.numel; i++) pa[i] = (float)((int)(i % 17) - 8) / 16.0f;
    memcpy(pb, pa, sizeof(float) * lay.numel);
    const fm_tensor *q = fm_layout_find(&lay, "encoder.layer.0.attention.self.query.weight"),
                    *k = fm_layout_find(&lay, "encoder.layer.0.attention.self.key.weight"),
                    *w = fm_layout_find(&lay, "embeddings.word_embeddings.weight");
    for (size_t i = 0; i < q->numel; i++) pb[q->offset + i] += 0.5f;
    double knorm1 = 0;
    for (size_t i = 0; i < k->numel; i++) {
        knorm1 += fabs(2.0 * pa[k->offset + i]);
        pb[k->offset + i] = -pa[k->offset + i];
    }
    /* the task head differs too but is never compared */
    pb[fm_layout_find(&lay, "classifier.weight")->offset] = 100;
    /* zero the word embeddings of A to see E|U| and E|N| against a zero matrix */
    memset(pa + w->offset, 0, sizeof(float) * w->numel);
    memset(pb + w->offset, 0, sizeof(float) * w->numel);

    fm_distance_report r;
    assert_int_equal(fm_distance_models(&r, &lay, pa, &lay, pb, NULL, 7), FM_OK);
    /* every matrix but the heads: 3 embeddings, 6 per layer, pooler */
    assert_int_equal(r.n, 10);
    assert_string_equal(r.tensor[0].label, "embeddings.word_embeddings.weight");
    assert_string_equal(r.tensor[9].label, "pooler.dense.weight");
    double l1_all = 0;
    for (int i = 0; i < r.n; i++) {
        const fm_distance_row *t = &r.tensor[i];
        if (!strcmp(t->label, q->name)) {
            assert_true(t->ab.l1 == 0.5 * 64 * 64);
            assert_true(t->ab.l1_mean == 0.5);
            assert_true(t->ab.angular > 0 && t->ab.angular < 0.5);
        } else if (!strcmp(t->label, k->name)) {
            assert_true(t->ab.l1 == knorm1);
            assert_true(t->ab.angular == 1.0);
        } else if (!strcmp(t->label, w->name)) {
            assert_true(t->ab.l1 == 0.0 && isnan(t->ab.angular));
        } else {
            assert_true(t->ab.l1 == 0.0 && t->ab.angular == 0.0);
        }
        l1_all += t->ab.l1;
        /* the references against their closed forms, c = 1/sqrt(fan_in):
         * E|U1 - U2| = 2c/3, E|N1 - N2| = 2c/sqrt(pi), angles near 1/2 */
        int64_t fan_in = strstr(t->label, "layer.0.output.dense") ? 128 : 64;
        assert_int_equal(t->fan_in, fan_in);
        /* about 5 standard deviations: relative 0.71/sqrt(n) and 0.76/sqrt(n)
         * for the L1 means, 1/(pi sqrt(n)) for the angles */
        double cc = 1 / sqrt((double)fan_in), sq = sqrt((double)t->numel);
        assert_true(fabs(t->uniform_pair.l1_mean / (2 * cc / 3) - 1) < 4 / sq);
        assert_true(fabs(t->normal_pair.l1_mean / (2 * cc / sqrt(M_PI)) - 1) < 4 / sq);
        assert_true(fabs(t->uniform_pair.angular - 0.5) < 1.6 / sq);
        assert_true(fabs(t->normal_pair.angular - 0.5) < 1.6 / sq);
    }
    const fm_distance_row *wr = &r.tensor[0];
    /* against a zero matrix: E|U| = c/2, E|N| = c sqrt(2/pi) */
    assert_true(fabs(wr->uniform_vs_a.l1_mean / (0.125 / 2) - 1) < 0.01);
    assert_true(fabs(wr->normal_vs_a.l1_mean / (0.125 * sqrt(2 / M_PI)) - 1) < 0.01);
    assert_true(isnan(wr->uniform_vs_a.angular));
    assert_true(r.all.ab.l1 == l1_all);
    assert_int_equal(r.all.numel, 64000 + 512 + 128 + 4 * 4096 + 2 * 8192 + 4096);
    /* the references are a function of the seed alone */
    fm_distance_report r2;
    assert_int_equal(fm_distance_models(&r2, &lay, pa, &lay, pa, "encoder.*", 7), FM_OK);
    assert_int_equal(r2.n, 6);
    assert_memory_equal(&r2.tensor[0].uniform_pair, &r.tensor[3].uniform_pair, sizeof(fm_dist));
    assert_memory_equal(&r2.tensor[0].normal_vs_a, &r.tensor[3].normal_vs_a, sizeof(fm_dist));
    fm_distance_report_free(&r2);
    assert_int_equal(fm_distance_models(&r2, &lay, pa, &lay, pa, "encoder.*", 8), FM_OK);
    assert_true(r2.tensor[0].uniform_pair.l1 != r.tensor[3].uniform_pair.l1);
    fm_distance_report_free(&r2);

    /* JSON */
    json_t *j = fm_distance_json(&r);
    json_t *t0 = json_array_get(json_object_get(j, "tensors"), 0);
    assert_string_equal(json_string_value(json_object_get(t0, "name")), "embeddings.word_embeddings.weight");
    assert_int_equal(json_integer_value(json_object_get(t0, "layer")), -1);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(t0, "shape"), 0)), 1000);
    assert_true(json_is_null(json_object_get(json_object_get(t0, "ab"), "angular")));
    assert_true(json_real_value(json_object_get(json_object_get(t0, "ab"), "l1")) == 0.0);
    assert_int_equal(json_integer_value(json_object_get(j, "seed")), 7);
    json_decref(j);
    fm_distance_report_free(&r);

    /* errors: another shape, a missing tensor, nothing matched */
    fm_config c2 = c;
    c2.intermediate_size = 64;
    fm_layout lay2;
    fm_layout_build(&lay2, &c2);
    float *p2 = fm_xalloc_floats(lay2.numel);
    assert_int_equal(fm_distance_models(&r, &lay, pa, &lay2, p2, NULL, 0), FM_ERR);
    tu_assert_contains(fm_last_error(),
                       "tensor 'encoder.layer.0.intermediate.dense.weight': shape [128, 64] in the first model, "
                       "[64, 64] in the second");
    assert_null(r.tensor);
    fm_free_aligned(p2);
    fm_layout_free(&lay2);
    c2 = c;
    c2.num_hidden_layers = 2;
    fm_layout_build(&lay2, &c2);
    p2 = fm_xalloc_floats(lay2.numel);
    assert_int_equal(fm_distance_models(&r, &lay2, p2, &lay, pa, NULL, 0), FM_ERR);
    tu_assert_contains(fm_last_error(), "tensor 'encoder.layer.1.attention.self.query.weight': the second model has no");
    assert_int_equal(fm_distance_models(&r, &lay, pa, &lay, pa, "nothing*", 0), FM_ERR);
    tu_assert_contains(fm_last_error(), "matches 'nothing*'");
    fm_free_aligned(p2);
    fm_layout_free(&lay2);
    fm_free_aligned(pa);
    fm_free_aligned(pb);
    fm_layout_free(&lay);
}

/* ---- masks ---- */

/* A mask tensor `name` of n entries with the given zeroed positions. */
static void mk(fm_mask_tensor *t, const char *name, int rows, int cols, const int *zeros, int nz) {
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = 2;
    t->shape[0] = rows;
    t->shape[1] = cols;
    t->numel = (size_t)rows * (size_t)cols;
    t->bits = calloc((t->numel + 7) / 8 + 1, 1);
    for (size_t i = 0; i < t->numel; i++) fm_mask_set(t, i, 1);
    for (int i = 0; i < nz; i++) fm_mask_set(t, (size_t)zeros[i], 0);
    fm_mask_count(t);
}

static void test_stats(void **state) {
    (void)state;
    fm_mask m = {.t = calloc(5, sizeof(fm_mask_tensor)), .n = 5};
    const int z1[] = {0, 1, 2}, z2[] = {5}, z3[] = {0, 3, 6, 9}, z4[] = {1, 2};
    mk(&m.t[0], "pooler.dense.weight", 2, 5, z1, 3);                        /* 10 entries, 3 zeros */
    mk(&m.t[1], "encoder.layer.1.attention.self.query.weight", 3, 3, z2, 1); /* 9, 1 */
    mk(&m.t[2], "embeddings.word_embeddings.weight", 4, 4, z3, 4);          /* 16, 4 */
    mk(&m.t[3], "encoder.layer.0.attention.self.query.weight", 3, 3, z4, 2); /* 9, 2 */
    mk(&m.t[4], "encoder.layer.0.output.dense.weight", 2, 2, NULL, 0);       /* 4, 0 */
    fm_mask_stats s;
    fm_mask_stats_compute(&s, &m);
    assert_int_equal(s.n, 5);
    assert_string_equal(s.tensor[0].label, "pooler.dense.weight");
    assert_int_equal(s.tensor[0].zeros, 3);
    assert_int_equal(s.tensor[0].ones, 7);
    assert_true(s.tensor[0].sparsity == 0.3);
    assert_int_equal(s.tensor[4].zeros, 0);
    assert_true(s.tensor[4].sparsity == 0.0);
    /* layers sorted: embeddings, 0, 1, then the rest */
    assert_int_equal(s.nlayer, 4);
    const char *labels[] = {"embeddings", "0", "1", "pooler"};
    const size_t numel[] = {16, 13, 9, 10}, zeros[] = {4, 2, 1, 3};
    const int layer[] = {-1, 0, 1, -2}, nt[] = {1, 2, 1, 1};
    for (int i = 0; i < 4; i++) {
        assert_string_equal(s.layer[i].label, labels[i]);
        assert_int_equal(s.layer[i].numel, numel[i]);
        assert_int_equal(s.layer[i].zeros, zeros[i]);
        assert_int_equal(s.layer[i].ones, numel[i] - zeros[i]);
        assert_int_equal(s.layer[i].layer, layer[i]);
        assert_int_equal(s.layer[i].ntensors, nt[i]);
        assert_true(s.layer[i].sparsity == (double)zeros[i] / (double)numel[i]);
    }
    /* kinds in first-seen order; the two query matrices together */
    assert_int_equal(s.nkind, 4);
    assert_string_equal(s.kind[1].label, "attention.self.query.weight");
    assert_int_equal(s.kind[1].numel, 18);
    assert_int_equal(s.kind[1].zeros, 3);
    assert_int_equal(s.kind[1].ntensors, 2);
    assert_int_equal(s.all.numel, 48);
    assert_int_equal(s.all.zeros, 10);
    assert_int_equal(s.all.ones, 38);
    assert_true(s.all.sparsity == 10.0 / 48.0);

    json_t *j = fm_mask_stats_json(&s);
    json_t *l = json_array_get(json_object_get(j, "layers"), 3);
    assert_string_equal(json_string_value(json_object_get(l, "name")), "pooler");
    assert_true(json_is_null(json_object_get(l, "layer")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "all"), "zeros")), 10);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "all"), "entries")), 48);
    json_decref(j);
    fm_mask_stats_free(&s);
    fm_mask_free(&m);
}

static void test_overlap(void **state) {
    (void)state;
    fm_mask a = {.t = calloc(2, sizeof(fm_mask_tensor)), .n = 2}, b = {.t = calloc(2, sizeof(fm_mask_tensor)), .n = 2};
    const int za1[] = {0, 1, 2, 3}, zb1[] = {2, 3, 4, 5, 6}, za2[] = {0, 1};
    mk(&a.t[0], "encoder.layer.0.attention.self.key.weight", 2, 5, za1, 4);
    mk(&a.t[1], "pooler.dense.weight", 2, 2, za2, 2);
    /* b lists the tensors in the other order */
    mk(&b.t[0], "pooler.dense.weight", 2, 2, NULL, 0);
    mk(&b.t[1], "encoder.layer.0.attention.self.key.weight", 2, 5, zb1, 5);
    fm_overlap o;
    assert_int_equal(fm_mask_overlap(&o, &a, &b), FM_OK);
    assert_int_equal(o.n, 2);
    const fm_overlap_row *k = &o.tensor[0], *p = &o.tensor[1];
    assert_string_equal(k->label, "encoder.layer.0.attention.self.key.weight");
    assert_int_equal(k->common, 2);
    assert_int_equal(k->zeros_a, 4);
    assert_int_equal(k->zeros_b, 5);
    assert_true(k->frac_a == 0.5 && k->expect_a == 0.5 && k->pooled_a == 0.5);
    assert_true(k->frac_b == 0.4 && k->expect_b == 0.4 && k->pooled_b == 0.4);
    assert_int_equal(p->common, 0);
    assert_true(p->frac_a == 0.0 && p->expect_a == 0.0);
    assert_true(isnan(p->frac_b) && isnan(p->expect_b));
    /* overall: A's zeros 6, B's 5, common 2; expected for A's zeros
     * (4 * 0.5 + 2 * 0) / 6, for B's (5 * 0.4) / 5 */
    assert_int_equal(o.all.common, 2);
    assert_true(o.all.frac_a == 2.0 / 6.0);
    assert_true(fabs(o.all.expect_a - 1.0 / 3.0) < 1e-15);
    assert_true(o.all.pooled_a == 5.0 / 14.0);
    assert_true(o.all.frac_b == 0.4);
    assert_true(fabs(o.all.expect_b - 0.4) < 1e-15);
    assert_true(o.all.pooled_b == 6.0 / 14.0);
    assert_int_equal(o.nlayer, 2);
    assert_string_equal(o.layer[0].label, "0");
    assert_string_equal(o.layer[1].label, "pooler");
    json_t *j = fm_overlap_json(&o);
    json_t *pj = json_array_get(json_object_get(j, "tensors"), 1);
    assert_true(json_is_null(json_object_get(pj, "shared_b")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "all"), "common_zeros")), 2);
    assert_true(json_real_value(json_object_get(json_object_get(j, "all"), "shared_b")) == 0.4);
    json_decref(j);
    fm_overlap_free(&o);

    /* a mask with itself: every zero is shared */
    assert_int_equal(fm_mask_overlap(&o, &a, &a), FM_OK);
    assert_true(o.all.frac_a == 1.0 && o.all.common == 6);
    fm_overlap_free(&o);

    /* other tensors, other shapes */
    snprintf(b.t[0].name, sizeof b.t[0].name, "pooler.other.weight");
    assert_int_equal(fm_mask_overlap(&o, &a, &b), FM_ERR);
    tu_assert_contains(fm_last_error(), "tensor 'pooler.dense.weight' is masked in the first mask but not in the second");
    assert_null(o.tensor);
    snprintf(b.t[0].name, sizeof b.t[0].name, "pooler.dense.weight");
    b.t[1].shape[0] = 5;
    b.t[1].shape[1] = 2;
    assert_int_equal(fm_mask_overlap(&o, &a, &b), FM_ERR);
    tu_assert_contains(fm_last_error(), "tensor 'encoder.layer.0.attention.self.key.weight': shape [2, 5] in the "
                                        "first mask, [5, 2] in the second");
    b.n = 1;
    assert_int_equal(fm_mask_overlap(&o, &b, &a), FM_ERR);
    tu_assert_contains(fm_last_error(), "masked in the second mask but not in the first");
    b.n = 2;
    fm_mask_free(&a);
    fm_mask_free(&b);
}

static void test_random_mask(void **state) {
    (void)state;
    fm_config c;
    fm_config_default(&c);
    c.vocab_size = 1000;
    c.hidden_size = 100;
    c.num_attention_heads = 2;
    c.intermediate_size = 200;
    c.num_hidden_layers = 1;
    c.max_position_embeddings = 10;
    c.type_vocab_size = 2;
    fm_layout lay;
    fm_layout_build(&lay, &c);
    fm_mask m, m2, one;
    assert_int_equal(fm_mask_create(&m, &lay, FM_MASK_DEFAULT_GLOB, NULL), FM_OK);
    assert_int_equal(fm_mask_create(&m2, &lay, FM_MASK_DEFAULT_GLOB, NULL), FM_OK);
    assert_int_equal(fm_mask_create(&one, &lay, "encoder.layer.0.intermediate.dense.weight", NULL), FM_OK);
    fm_mask_random(&m, 0.3, 11);
    fm_mask_stats s;
    fm_mask_stats_compute(&s, &m);
    assert_true(fabs(s.tensor[0].sparsity - 0.3) < 0.01); /* 100,000 entries */
    assert_true(fabs(s.all.sparsity - 0.3) < 0.01);
    for (int k = 0; k < m.n; k++) assert_false(fm_mask_stray_bits(&m.t[k]));
    fm_mask_stats_free(&s);
    /* a tensor's bits depend on the seed and its name, not on the other tensors */
    fm_mask_random(&one, 0.3, 11);
    const fm_mask_tensor *t = fm_mask_find(&m, "encoder.layer.0.intermediate.dense.weight");
    assert_memory_equal(one.t[0].bits, t->bits, t->numel / 8);
    fm_mask_random(&m2, 0.3, 12);
    assert_memory_not_equal(m2.t[0].bits, m.t[0].bits, m.t[0].numel / 8);
    /* independent masks overlap as expected */
    fm_overlap o;
    assert_int_equal(fm_mask_overlap(&o, &m, &m2), FM_OK);
    assert_true(fabs(o.all.frac_a - o.all.expect_a) < 0.01);
    fm_overlap_free(&o);
    /* the extremes */
    fm_mask_random(&m2, 0.0, 1);
    for (int k = 0; k < m2.n; k++) assert_int_equal(m2.t[k].ones, m2.t[k].numel);
    fm_mask_random(&m2, 1.0, 1);
    for (int k = 0; k < m2.n; k++) assert_int_equal(m2.t[k].ones, 0);
    fm_mask_free(&m);
    fm_mask_free(&m2);
    fm_mask_free(&one);
    fm_layout_free(&lay);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),          cmocka_unit_test(test_distance_hand),
        cmocka_unit_test(test_distance_models), cmocka_unit_test(test_stats),
        cmocka_unit_test(test_overlap),        cmocka_unit_test(test_random_mask),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
