/* test_controls.c: L0-close freeze sets (frozen tensors keep every bit through
 * training steps), and the shuffled / random weight controls. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "controls.h"
#include "fm.h"
#include "model.h"
#include "optim.h"
#include "rng.h"
#include "testutil.h"

static void tiny(fm_model *m) {
    fm_config c;
    fm_config_preset("tiny", &c);
    c.vocab_size = 100;
    c.hidden_size = 32;
    c.num_attention_heads = 2;
    c.intermediate_size = 64;
    c.num_hidden_layers = 3;
    c.max_position_embeddings = 16;
    c.num_labels = 2;
    fm_model_alloc(m, &c);
    fm_model_init_weights(m, 7);
}

/* Three AdamW steps on random batches. */
static void train_steps(fm_model *m) {
    const int B = 4, T = 10;
    int32_t ids[40], types[40], labels[4];
    float mask[40];
    for (int i = 0; i < B * T; i++) {
        ids[i] = (int32_t)fm_rng_below(3, FM_RNG_DATA, 0, 0, (uint64_t)i, 100);
        types[i] = (i % T) >= 5;
        mask[i] = (i % T) < 8 + (i / T) % 3 ? 1.0f : 0.0f;
    }
    for (int b = 0; b < B; b++) labels[b] = b % 2;
    fm_batch batch = {.B = B, .T = T, .ids = ids, .type_ids = types, .attn_mask = mask, .labels = labels};
    fm_acts *a = fm_acts_new(&m->cfg, B, T, 0, m->cfg.num_hidden_layers);
    float *m1 = fm_xalloc_floats(m->lay.numel), *m2 = fm_xalloc_floats(m->lay.numel);
    fm_adamw opt;
    fm_adamw_default(&opt);
    opt.lr = 1e-2f;
    opt.total_steps = 3;
    for (int s = 0; s < 3; s++) {
        fm_pass p = {.seed = 1, .step = (uint64_t)s, .training = 1};
        fm_model_zero_grads(m);
        fm_model_forward(m, a, &batch, &p, NULL);
        fm_model_backward(m, a, &batch, &p, 1.0f / B);
        fm_adamw_step(&opt, &m->lay, m->params, m->grads, m1, m2, s, fm_grad_norm(&m->lay, m->grads), NULL);
    }
    fm_free_aligned(m1);
    fm_free_aligned(m2);
    fm_acts_free(a);
}

static void test_freeze_bit_for_bit(void **state) {
    (void)state;
    fm_model m;
    tiny(&m);
    size_t frozen;
    assert_int_equal(fm_freeze(&m.lay, 3, "key,deepest:1,word_embeddings,pooler.*", &frozen), FM_OK);
    /* 3 keys (32x32) + layer 2 (4*(32*32+32) + 2*32*64 + 64 + 32 + 4*32, its key counted once)
     * + word embeddings 100x32 + pooler 32x32+32. */
    const size_t layer = 4 * (32 * 32 + 32) + 2 * 32 * 64 + 64 + 32 + 4 * 32;
    assert_int_equal(frozen, 2 * 32 * 32 + layer + 100 * 32 + 32 * 32 + 32);
    float *before = malloc(m.lay.numel * sizeof(float));
    memcpy(before, m.params, m.lay.numel * sizeof(float));
    train_steps(&m);
    int changed = 0, kept = 0;
    for (int i = 0; i < m.lay.n; i++) {
        const fm_tensor *t = &m.lay.t[i];
        int same = memcmp(before + t->offset, m.params + t->offset, t->numel * sizeof(float)) == 0;
        if (!t->trains) {
            if (!same) fail_msg("frozen tensor %s changed", t->name);
            kept++;
        } else if (!same) {
            changed++;
        }
    }
    assert_int_equal(kept, 2 + 16 + 1 + 2); /* keys of layers 0-1, layer 2, word embeddings, pooler */
    /* Everything that trains and gets a gradient moved (LayerNorm gains included). */
    assert_true(changed >= m.lay.n - kept - 3);
    free(before);
    fm_model_free(&m);
}

/* "all": every pre-trained tensor keeps its bits, only the task head trains
 * and moves (the head-only baseline). */
static void test_freeze_all_trains_only_the_head(void **state) {
    (void)state;
    fm_model m;
    tiny(&m);
    size_t frozen;
    assert_int_equal(fm_freeze(&m.lay, 3, "all", &frozen), FM_OK);
    size_t head = 0, rest = 0;
    for (int i = 0; i < m.lay.n; i++) {
        const fm_tensor *t = &m.lay.t[i];
        *(t->flags & FM_T_HEAD ? &head : &rest) += t->numel;
        assert_int_equal(t->trains, (t->flags & FM_T_HEAD) != 0);
    }
    assert_int_equal(head, 32 * 2 + 2); /* the classifier: 32x2 and its bias */
    assert_int_equal(frozen, rest);
    float *before = malloc(m.lay.numel * sizeof(float));
    memcpy(before, m.params, m.lay.numel * sizeof(float));
    train_steps(&m);
    for (int i = 0; i < m.lay.n; i++) {
        const fm_tensor *t = &m.lay.t[i];
        int same = memcmp(before + t->offset, m.params + t->offset, t->numel * sizeof(float)) == 0;
        if (t->trains && same) fail_msg("head tensor %s did not move", t->name);
        if (!t->trains && !same) fail_msg("frozen tensor %s changed", t->name);
    }
    free(before);
    fm_model_free(&m);
}

static void test_freeze_bad_specs(void **state) {
    (void)state;
    fm_model m;
    tiny(&m);
    size_t frozen;
    assert_int_equal(fm_freeze(&m.lay, 3, "deepest:4", &frozen), FM_ERR);
    tu_assert_contains(fm_last_error(), "deepest:4");
    assert_int_equal(fm_freeze(&m.lay, 3, "deepest:x", &frozen), FM_ERR);
    assert_int_equal(fm_freeze(&m.lay, 3, "encoder.layer.9.*", &frozen), FM_ERR);
    tu_assert_contains(fm_last_error(), "matches no tensor");
    /* The bert. prefix is accepted in globs. */
    assert_int_equal(fm_freeze(&m.lay, 3, "bert.encoder.layer.0.output.dense.weight", &frozen), FM_OK);
    assert_int_equal(frozen, 32 * 64);
    fm_model_free(&m);
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static void test_shuffle_keeps_values(void **state) {
    (void)state;
    fm_model m;
    tiny(&m);
    float *before = malloc(m.lay.numel * sizeof(float));
    memcpy(before, m.params, m.lay.numel * sizeof(float));
    fm_weights_shuffle(&m, 5);
    for (int i = 0; i < m.lay.n; i++) {
        const fm_tensor *t = &m.lay.t[i];
        float *a = malloc(t->numel * sizeof(float)), *b = malloc(t->numel * sizeof(float));
        memcpy(a, before + t->offset, t->numel * sizeof(float));
        memcpy(b, m.params + t->offset, t->numel * sizeof(float));
        int moved = memcmp(a, b, t->numel * sizeof(float)) != 0;
        qsort(a, t->numel, sizeof(float), cmp_float);
        qsort(b, t->numel, sizeof(float), cmp_float);
        assert_memory_equal(a, b, t->numel * sizeof(float)); /* the same values: norm kept */
        if (t->flags & FM_T_HEAD) assert_false(moved);          /* the task head is not touched */
        else if (t->flags & FM_T_MATRIX) assert_true(moved);   /* matrices are permuted */
        free(a);
        free(b);
    }
    free(before);
    fm_model_free(&m);
}

static void test_randomize(void **state) {
    (void)state;
    fm_model m, r;
    tiny(&m);
    tiny(&r);
    fm_weights_randomize(&m, 99);
    fm_model_init_weights(&r, 99);
    for (int i = 0; i < m.lay.n; i++) {
        const fm_tensor *t = &m.lay.t[i];
        if (t->flags & FM_T_HEAD) continue;
        /* The pre-trained part is exactly a fresh initialisation from that seed. */
        assert_memory_equal(m.params + t->offset, r.params + t->offset, t->numel * sizeof(float));
    }
    fm_model_free(&m);
    fm_model_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_freeze_bit_for_bit),
        cmocka_unit_test(test_freeze_all_trains_only_the_head),
        cmocka_unit_test(test_freeze_bad_specs),
        cmocka_unit_test(test_shuffle_keeps_values),
        cmocka_unit_test(test_randomize),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
