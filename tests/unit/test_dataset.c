/* test_dataset.c: encoded data checked against the model's sizes
 * (fm_dataset_check), in every build: a token id past vocab_size, a type id
 * past type_vocab_size (pairs on a one-type model), rows wider than the
 * position table; each names the first bad row, the position and the limit. */
#include <stdio.h>
#include <string.h>

#include "testutil.h"

#include "dataset.h"
#include "fm.h"

static fm_config cfg(void) {
    fm_config c;
    fm_config_default(&c);
    c.vocab_size = 30;
    c.type_vocab_size = 2;
    c.max_position_embeddings = 16;
    return c;
}

/* 4 rows of 8: [CLS]=2 a b [SEP]=3 c [SEP] then padding; types 0 0 0 0 1 1. */
static void fill(fm_dataset *d) {
    fm_dataset_alloc(d, 4, 8, 0);
    for (int i = 0; i < 4; i++) {
        int32_t *ids = d->ids + i * 8, *ty = d->types + i * 8;
        const int32_t row[6] = {2, 10 + i, 11, 3, 12, 3};
        for (int t = 0; t < 6; t++) {
            ids[t] = row[t];
            ty[t] = t >= 4;
        }
        d->lengths[i] = 6;
    }
}

static void test_good(void **state) {
    (void)state;
    fm_config c = cfg();
    fm_dataset d;
    fill(&d);
    int row = 123;
    assert_int_equal(fm_dataset_check(&d, &c, &row), FM_OK);
    assert_int_equal(row, -1);
    /* exactly at the limits: the last id, the last type, all positions */
    d.ids[3 * 8 + 7] = 29;
    c.max_position_embeddings = 8;
    assert_int_equal(fm_dataset_check(&d, &c, &row), FM_OK);
    fm_dataset_free(&d);
}

static void test_token_id(void **state) {
    (void)state;
    fm_config c = cfg();
    fm_dataset d;
    fill(&d);
    d.ids[2 * 8 + 4] = 30; /* row 2, position 4: one past the vocabulary */
    d.ids[3 * 8 + 1] = 31; /* a later row: not the first */
    int row = -1;
    assert_int_equal(fm_dataset_check(&d, &c, &row), FM_ERR);
    assert_int_equal(row, 2);
    tu_assert_contains(fm_last_error(), "token 4 has id 30");
    tu_assert_contains(fm_last_error(), "vocab_size 30");
    d.ids[2 * 8 + 4] = -1;
    assert_int_equal(fm_dataset_check(&d, &c, &row), FM_ERR);
    assert_int_equal(row, 2);
    tu_assert_contains(fm_last_error(), "id -1");
    fm_dataset_free(&d);
}

static void test_type_id(void **state) {
    (void)state;
    fm_config c = cfg();
    c.type_vocab_size = 1;
    fm_dataset d;
    fill(&d);
    int row = -1;
    assert_int_equal(fm_dataset_check(&d, &c, &row), FM_ERR);
    assert_int_equal(row, 0);
    tu_assert_contains(fm_last_error(), "token 4 has type id 1");
    tu_assert_contains(fm_last_error(), "type_vocab_size 1");
    tu_assert_contains(fm_last_error(), "pairs");
    /* single sentences (type 0 only) are fine on one type */
    for (size_t i = 0; i < 4 * 8; i++) d.types[i] = 0;
    assert_int_equal(fm_dataset_check(&d, &c, &row), FM_OK);
    c.type_vocab_size = 2;
    d.types[1 * 8 + 5] = 2;
    assert_int_equal(fm_dataset_check(&d, &c, &row), FM_ERR);
    assert_int_equal(row, 1);
    tu_assert_contains(fm_last_error(), "type id 2");
    tu_assert_contains(fm_last_error(), "type_vocab_size 2");
    fm_dataset_free(&d);
}

static void test_positions(void **state) {
    (void)state;
    fm_config c = cfg();
    c.max_position_embeddings = 7;
    fm_dataset d;
    fill(&d);
    int row = -1;
    assert_int_equal(fm_dataset_check(&d, &c, &row), FM_ERR);
    tu_assert_contains(fm_last_error(), "rows of 8 tokens");
    tu_assert_contains(fm_last_error(), "max_position_embeddings 7");
    fm_dataset_free(&d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_token_id),
        cmocka_unit_test(test_type_id),
        cmocka_unit_test(test_positions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
