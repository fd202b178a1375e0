/* test_progress.c: the progress line's speed and ETA (cli/progress.h) count
 * the work of this session only: after a resume at step 50 of 100, 10 steps
 * in 10 s leave 40 s, not the 6.7 s that counting the 50 earlier steps as
 * done in those 10 s would give; and the examples per second are this
 * session's examples over this session's time. */
#include <math.h>

#include "testutil.h"

#include "progress.h"

static void test_fresh(void **state) {
    (void)state;
    fm_progress p;
    fm_progress_start(&p, "train X", 0, 100);
    p.t_start = 1000.0; /* a fixed clock */
    double rate, eta;
    fm_progress_estimate(&p, 1010.0, 25, 800, &rate, &eta);
    assert_true(fabs(rate - 80.0) < 1e-12);
    assert_true(fabs(eta - 30.0) < 1e-12); /* 25 steps in 10 s, 75 to go */
    fm_progress_estimate(&p, 1000.0, 0, 0, &rate, &eta);
    assert_true(rate == 0.0 && eta == 0.0);
}

static void test_resumed(void **state) {
    (void)state;
    fm_progress p;
    fm_progress_start(&p, "train X", 50, 100);
    p.t_start = 1000.0;
    double rate, eta;
    /* 10 steps of 32 examples in this session's 10 s */
    fm_progress_estimate(&p, 1010.0, 60, 320, &rate, &eta);
    assert_true(fabs(rate - 32.0) < 1e-12);
    assert_true(fabs(eta - 40.0) < 1e-12);
    /* right at the resume: no step of this session yet, no estimate */
    fm_progress_estimate(&p, 1000.5, 50, 0, &rate, &eta);
    assert_true(rate == 0.0 && eta == 0.0);
    /* the last step */
    fm_progress_estimate(&p, 1050.0, 100, 1600, &rate, &eta);
    assert_true(fabs(rate - 32.0) < 1e-12 && eta == 0.0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fresh),
        cmocka_unit_test(test_resumed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
