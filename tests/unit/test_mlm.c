/* test_mlm.c: masked-LM corruption (exact counts on a fixed seed, the
 * 80/10/10 rule re-derived from the Philox words, no special token ever
 * chosen, independence of the row width) and the packing of lines into
 * [CLS] A [SEP] B [SEP] rows. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fm.h"
#include "mlm.h"
#include "rng.h"
#include "testutil.h"

enum { PAD = 0, UNK = 100, CLS = 101, SEP = 102, MASK = 103, V = 30522 };
/* chosen, [MASK], random, unchanged for seed 42, step 7, rows 0..63 of known_row(.., 128, 100) */
enum { MLM_CHOSEN = 872, MLM_MASKED = 703, MLM_RANDOM = 85, MLM_KEPT = 84 };

/* A row of T tokens: [CLS] 1000.. [SEP] 2000.. [SEP] then padding from `len`. */
static void known_row(int32_t *row, int T, int len) {
    for (int t = 0; t < T; t++) row[t] = t < len ? 1000 + t : PAD;
    row[0] = CLS;
    row[len / 2] = SEP;
    row[len - 1] = SEP;
}

static void test_counts_exact(void **state) {
    (void)state;
    fm_mlm_spec s;
    fm_mlm_spec_default(&s, CLS, SEP, PAD, MASK, V);
    enum { T = 128, ROWS = 64 };
    int32_t orig[T], ids[T], lab[T];
    fm_mlm_counts k = {0};
    for (int r = 0; r < ROWS; r++) {
        known_row(orig, T, 100);
        fm_mlm_corrupt_row(ids, lab, orig, T, 42, 7, (uint32_t)r, &s, &k);
        for (int t = 0; t < T; t++) {
            /* re-derive the decision from the Philox block of (seed, step, row, position) */
            uint32_t w[4];
            fm_rng_block(42, FM_RNG_MLM, 7, (uint32_t)r, (uint64_t)t, w);
            float u0 = (float)(w[0] >> 8) / 16777216.0f, u1 = (float)(w[1] >> 8) / 16777216.0f;
            int special = orig[t] == CLS || orig[t] == SEP || orig[t] == PAD;
            int chosen = !special && u0 < 0.15f;
            if (!chosen) {
                assert_int_equal(lab[t], -100);
                assert_int_equal(ids[t], orig[t]);
                continue;
            }
            assert_int_equal(lab[t], orig[t]);
            if (u1 < 0.8f) assert_int_equal(ids[t], MASK);
            else if (u1 < 0.9f) {
                uint64_t x = ((uint64_t)w[2] << 32) | w[3];
                assert_int_equal(ids[t], (int32_t)(((unsigned __int128)x * V) >> 64));
            } else
                assert_int_equal(ids[t], orig[t]);
        }
    }
    /* 64 rows x 97 candidates (100 tokens minus [CLS] and two [SEP]) */
    assert_int_equal(k.tokens, 64 * 97);
    assert_int_equal(k.chosen, k.masked + k.random + k.kept);
    /* the exact figures for seed 42, step 7, rows 0..63 (a change of the keying changes them) */
    print_message("chosen %lld masked %lld random %lld kept %lld of %lld\n", (long long)k.chosen,
                  (long long)k.masked, (long long)k.random, (long long)k.kept, (long long)k.tokens);
    assert_int_equal(k.chosen, MLM_CHOSEN);
    assert_int_equal(k.masked, MLM_MASKED);
    assert_int_equal(k.random, MLM_RANDOM);
    assert_int_equal(k.kept, MLM_KEPT);
}

/* Over many rows the rates are BERT's (binomial: within 4 standard deviations). */
static void test_rates(void **state) {
    (void)state;
    fm_mlm_spec s;
    fm_mlm_spec_default(&s, CLS, SEP, PAD, MASK, V);
    enum { T = 128 };
    int32_t orig[T], ids[T], lab[T];
    fm_mlm_counts k = {0};
    for (int r = 0; r < 2000; r++) {
        known_row(orig, T, T);
        fm_mlm_corrupt_row(ids, lab, orig, T, 3, 1, (uint32_t)r, &s, &k);
    }
    double n = (double)k.tokens, c = (double)k.chosen;
    assert_true(fabs(c / n - 0.15) < 4 * sqrt(0.15 * 0.85 / n));
    assert_true(fabs(k.masked / c - 0.8) < 4 * sqrt(0.8 * 0.2 / c));
    assert_true(fabs(k.random / c - 0.1) < 4 * sqrt(0.1 * 0.9 / c));
    assert_true(fabs(k.kept / c - 0.1) < 4 * sqrt(0.1 * 0.9 / c));
}

/* A row corrupts the same whatever width its batch was padded to, and
 * differently at another step or seed. */
static void test_width_and_keys(void **state) {
    (void)state;
    fm_mlm_spec s;
    fm_mlm_spec_default(&s, CLS, SEP, PAD, MASK, V);
    int32_t orig[128], a[128], la[128], b[64], lb[64], c[128], lc[128];
    known_row(orig, 128, 60);
    fm_mlm_corrupt_row(a, la, orig, 128, 5, 9, 11, &s, NULL);
    fm_mlm_corrupt_row(b, lb, orig, 64, 5, 9, 11, &s, NULL);
    assert_memory_equal(a, b, sizeof b);
    assert_memory_equal(la, lb, sizeof lb);
    fm_mlm_corrupt_row(c, lc, orig, 128, 5, 10, 11, &s, NULL);
    assert_memory_not_equal(la, lc, sizeof la);
    fm_mlm_corrupt_row(c, lc, orig, 128, 6, 9, 11, &s, NULL);
    assert_memory_not_equal(la, lc, sizeof la);
}

/* Packing: whole units, A about half of the room, B what still fits, long units cut. */
static void test_pack(void **state) {
    (void)state;
    fm_mlm_spec s;
    fm_mlm_spec_default(&s, CLS, SEP, PAD, MASK, V);
    /* T = 12: room 9, half 4 */
    int32_t u0[] = {1, 2, 3}, u1[] = {4, 5}, u2[] = {6, 7, 8, 9}, u3[] = {10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20},
            u4[] = {21};
    const int32_t *units[] = {u0, u1, NULL, u2, u3, u4};
    int32_t lens[] = {3, 2, 0, 4, 11, 1};
    fm_dataset d;
    int n = fm_mlm_pack(&d, units, lens, 6, 12, &s);
    const int32_t want[][12] = {
        /* A = u0 (3; u1 would make 5 > 4), B = u1 u2 (6 more: 9 in all) */
        {CLS, 1, 2, 3, SEP, 4, 5, 6, 7, 8, 9, SEP},
        /* u3 is cut into 9 + 2: A = the first 9 tokens, no room for B */
        {CLS, 10, 11, 12, 13, 14, 15, 16, 17, 18, SEP, PAD},
        /* A = the last 2 of u3 and u4 (3 <= 4), nothing left for B */
        {CLS, 19, 20, 21, SEP, PAD, PAD, PAD, PAD, PAD, PAD, PAD},
    };
    const int32_t want_types[][12] = {
        {0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1},
        {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
        {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    };
    const int want_len[] = {12, 11, 5};
    assert_int_equal(n, 3);
    assert_int_equal(d.n, 3);
    for (int r = 0; r < 3; r++) {
        assert_memory_equal(d.ids + r * 12, want[r], sizeof want[r]);
        assert_memory_equal(d.types + r * 12, want_types[r], sizeof want_types[r]);
        assert_int_equal(d.lengths[r], want_len[r]);
    }
    fm_dataset_free(&d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_exact),
        cmocka_unit_test(test_rates),
        cmocka_unit_test(test_width_and_keys),
        cmocka_unit_test(test_pack),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
