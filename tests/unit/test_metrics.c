/* test_metrics.c: GLUE metrics against values computed by hand (the
 * arithmetic is in the comments) and their degenerate cases. */
#include <math.h>
#include <stdio.h>

#include "testutil.h"

#include "metrics.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define NEAR(x, want) assert_true(fabs((x) - (want)) < 1e-9)

/* The running example: pred 1 0 1 1 0, gold 1 0 0 1 1.
 * tp = 2 (i=0,3), tn = 1 (i=1), fp = 1 (i=2), fn = 1 (i=4). */
static const int P[] = {1, 0, 1, 1, 0}, G[] = {1, 0, 0, 1, 1};

static void test_accuracy(void **state) {
    (void)state;
    NEAR(fm_accuracy(P, G, 5), 3.0 / 5.0); /* 3 of 5 agree */
    NEAR(fm_accuracy(P, P, 5), 1.0);
    int one = 1, zero = 0;
    NEAR(fm_accuracy(&one, &one, 1), 1.0); /* n = 1 */
    NEAR(fm_accuracy(&one, &zero, 1), 0.0);
    NEAR(fm_accuracy(P, G, 0), 0.0); /* n = 0: 0, not NaN */
}

static void test_f1(void **state) {
    (void)state;
    /* 2 tp / (2 tp + fp + fn) = 4 / (4 + 1 + 1) = 2/3. (Precision 2/3,
     * recall 2/3.) */
    NEAR(fm_f1(P, G, 5), 2.0 / 3.0);
    /* Class 1 is positive: swapping the classes changes F1. pred' 0 1 0 0 1,
     * gold' 0 1 1 0 0: tp = 1 (i=1), fp = 1 (i=4), fn = 1 (i=2): 2/4. */
    int P2[5], G2[5];
    for (int i = 0; i < 5; i++) P2[i] = 1 - P[i], G2[i] = 1 - G[i];
    NEAR(fm_f1(P2, G2, 5), 0.5);
    /* No positive anywhere: 0 (sklearn's zero_division), not NaN. */
    int z[4] = {0, 0, 0, 0};
    NEAR(fm_f1(z, z, 4), 0.0);
    /* Constant positive predictor on gold 1 0 0 1: tp 2, fp 2: 4/6. */
    int ones[4] = {1, 1, 1, 1}, g[4] = {1, 0, 0, 1};
    NEAR(fm_f1(ones, g, 4), 4.0 / 6.0);
    /* Constant negative predictor: tp 0, fn 2: 0. */
    NEAR(fm_f1(z, g, 4), 0.0);
    int one = 1;
    NEAR(fm_f1(&one, &one, 1), 1.0);
}

static void test_matthews(void **state) {
    (void)state;
    /* (tp tn - fp fn) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn))
     * = (2*1 - 1*1) / sqrt(3*3*2*2) = 1/6. */
    NEAR(fm_matthews(P, G, 5), 1.0 / 6.0);
    NEAR(fm_matthews(G, G, 5), 1.0);
    int inv[5];
    for (int i = 0; i < 5; i++) inv[i] = 1 - G[i];
    NEAR(fm_matthews(inv, G, 5), -1.0);
    /* A constant predictor: 0, not NaN (the denominator is 0). */
    int ones[5] = {1, 1, 1, 1, 1};
    assert_false(isnan(fm_matthews(ones, G, 5)));
    NEAR(fm_matthews(ones, G, 5), 0.0);
    /* All gold labels one class: 0. */
    NEAR(fm_matthews(P, ones, 5), 0.0);
    /* n = 1 and n = 0: 0. */
    NEAR(fm_matthews(P, G, 1), 0.0);
    NEAR(fm_matthews(P, G, 0), 0.0);
    /* Three classes (Gorodkin's R_K): pred 0 1 2 0, gold 0 1 1 2.
     * s = 4, c = 2 correct; predicted counts p = (2,1,1), true t = (1,2,1).
     * (c s - p.t) / sqrt((s^2 - p.p)(s^2 - t.t))
     * = (8 - (2+2+1)) / sqrt((16-6)(16-6)) = 3/10. */
    int p3[] = {0, 1, 2, 0}, g3[] = {0, 1, 1, 2};
    NEAR(fm_matthews(p3, g3, 4), 0.3);
}

static void test_pearson(void **state) {
    (void)state;
    /* x 1..5 (mean 3), y 2 4 5 4 5 (mean 4): dx -2 -1 0 1 2, dy -2 0 1 0 1;
     * sxy = 4 + 0 + 0 + 0 + 2 = 6, sxx = 10, syy = 6: r = 6/sqrt(60). */
    float x[] = {1, 2, 3, 4, 5}, y[] = {2, 4, 5, 4, 5};
    NEAR(fm_pearson(x, y, 5), 6.0 / sqrt(60.0));
    NEAR(fm_pearson(y, x, 5), 6.0 / sqrt(60.0));
    /* Exactly linear: +1 and -1 (y = 3 - 2x). */
    float lin[] = {1, -1, -3, -5, -7};
    NEAR(fm_pearson(x, x, 5), 1.0);
    NEAR(fm_pearson(x, lin, 5), -1.0);
    /* Constant targets or predictions: 0, not NaN. */
    float c[] = {2.5f, 2.5f, 2.5f, 2.5f, 2.5f};
    assert_false(isnan(fm_pearson(x, c, 5)));
    NEAR(fm_pearson(x, c, 5), 0.0);
    NEAR(fm_pearson(c, x, 5), 0.0);
    /* n = 1, n = 0: 0. */
    NEAR(fm_pearson(x, y, 1), 0.0);
    NEAR(fm_pearson(x, y, 0), 0.0);
}

static void test_ranks(void **state) {
    (void)state;
    /* 10 10 10 take ranks 1 2 3 -> 2 each; 20 20 take 4 5 -> 4.5; 30 -> 6. */
    float x[] = {10, 20, 10, 30, 20, 10};
    double r[6], want[] = {2, 4.5, 2, 6, 4.5, 2};
    fm_average_ranks(r, x, 6);
    for (int i = 0; i < 6; i++) NEAR(r[i], want[i]);
}

static void test_spearman(void **state) {
    (void)state;
    /* x 1..5 ranks 1..5; y 2 4 5 4 5 ranks 1 2.5 4.5 2.5 4.5 (ties
     * averaged), mean 3: dy -2 -0.5 1.5 -0.5 1.5; sxy = 4 + 0.5 + 0 - 0.5 + 3
     * = 7, sxx = 10, syy = 4 + 0.25 + 2.25 + 0.25 + 2.25 = 9: 7/sqrt(90). */
    float x[] = {1, 2, 3, 4, 5}, y[] = {2, 4, 5, 4, 5};
    NEAR(fm_spearman(x, y, 5), 7.0 / sqrt(90.0));
    /* Monotone but not linear: 1 (Pearson is below 1). */
    float sq[] = {1, 4, 9, 16, 25};
    NEAR(fm_spearman(x, sq, 5), 1.0);
    assert_true(fm_pearson(x, sq, 5) < 0.99);
    /* Decreasing: -1. */
    float dec[] = {5, 4, 3, 2, 1};
    NEAR(fm_spearman(x, dec, 5), -1.0);
    /* All tied: every rank 3: constant, 0. */
    float c[] = {1, 1, 1, 1, 1};
    NEAR(fm_spearman(x, c, 5), 0.0);
    NEAR(fm_spearman(x, y, 1), 0.0);
}

static void test_glue_report(void **state) {
    (void)state;
    fm_glue_report r;
    /* MRPC/QQP: acc 3/5, f1 2/3, acc_and_f1 (0.6 + 0.6667)/2; main F1. */
    fm_glue_report_compute(&r, FM_METRIC_F1_ACC, P, G, NULL, NULL, 5);
    assert_int_equal(r.n, 3);
    assert_string_equal(r.m[0].name, "acc");
    NEAR(fm_glue_report_get(&r, "acc"), 0.6);
    NEAR(fm_glue_report_get(&r, "f1"), 2.0 / 3.0);
    NEAR(fm_glue_report_get(&r, "acc_and_f1"), (0.6 + 2.0 / 3.0) / 2);
    assert_string_equal(r.main_name, "f1");
    NEAR(r.main, 2.0 / 3.0);
    assert_true(isnan(fm_glue_report_get(&r, "mcc")));
    /* CoLA: MCC 1/6. */
    fm_glue_report_compute(&r, FM_METRIC_MCC, P, G, NULL, NULL, 5);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.main_name, "mcc");
    NEAR(r.main, 1.0 / 6.0);
    /* SST-2 and friends: accuracy. */
    fm_glue_report_compute(&r, FM_METRIC_ACC, P, G, NULL, NULL, 5);
    assert_string_equal(r.main_name, "acc");
    NEAR(r.main, 0.6);
    /* STS-B: Pearson 6/sqrt(60), Spearman 7/sqrt(90), their mean; main
     * Spearman. */
    float x[] = {1, 2, 3, 4, 5}, y[] = {2, 4, 5, 4, 5};
    fm_glue_report_compute(&r, FM_METRIC_CORR, NULL, NULL, x, y, 5);
    assert_int_equal(r.n, 3);
    NEAR(fm_glue_report_get(&r, "pearson"), 6.0 / sqrt(60.0));
    NEAR(fm_glue_report_get(&r, "spearmanr"), 7.0 / sqrt(90.0));
    NEAR(fm_glue_report_get(&r, "corr"), (6.0 / sqrt(60.0) + 7.0 / sqrt(90.0)) / 2);
    assert_string_equal(r.main_name, "spearmanr");
    /* Degenerate STS-B predictions (a constant): 0 everywhere, no NaN. */
    float c[] = {3, 3, 3, 3, 3};
    fm_glue_report_compute(&r, FM_METRIC_CORR, NULL, NULL, c, y, 5);
    for (int i = 0; i < r.n; i++) NEAR(r.m[i].value, 0.0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accuracy), cmocka_unit_test(test_f1),       cmocka_unit_test(test_matthews),
        cmocka_unit_test(test_pearson),  cmocka_unit_test(test_ranks),    cmocka_unit_test(test_spearman),
        cmocka_unit_test(test_glue_report),
    };
    return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
