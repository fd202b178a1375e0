/* test_supermask.c: the supermask trainer (src/train.h) on a tiny model
 * (L=2, H=16, V=50, no dropout):
 *   1. the nu gradient against central differences of the loss with mu held
 *      fixed (the same Philox sample): with ste=identity dL/dnu_i is dL/dm_i
 *      of the relaxation theta = theta~ ⊙ m at m = mu, checked on the entries
 *      of every masked tensor with the largest gradients and on entries whose
 *      sample is 0; with ste=sigmoid it is exactly that times
 *      sigmoid(nu)(1 - sigmoid(nu)), bit for bit;
 *   2. theta~ stays bit-identical through training steps, the head changes,
 *      nu changes;
 *   3. the initial ranking: exact counts of nu = -5, globally and per tensor,
 *      every -5 entry no larger in |theta~| than any +5 entry, and ties broken
 *      by tensor then element order;
 *   4. sampling: the same bits for 1 and 2 threads, different bits for
 *      another step, a sample fraction near sigmoid(nu); a batch split in two
 *      calls gives the gradient of the whole batch. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "fastmath.h"
#include "fm.h"
#include "model.h"
#include "rng.h"
#include "testutil.h"
#include "train.h"

enum { B = TU_B, T = TU_T };

static void tiny(fm_model *m) { tu_tiny_model(m, 2); }

static fm_batch batch(void) { return tu_tiny_batch(); }

static void sm_opts(fm_trainer_opts *o, fm_ste ste) {
    fm_trainer_opts_default(o);
    o->mode = FM_TRAIN_SUPERMASK;
    o->seed = 11;
    o->ste = ste;
    o->opt.lr = 1e-2f;
    o->opt.total_steps = 10;
    o->opt.warmup_steps = 0;
    o->mask_opt = o->opt;
    o->mask_opt.lr = 0.1f;
    o->mask_opt.weight_decay = 0;
}

/* nu ~ N(0, 1.5^2) on the masked entries, so sigmoid' is far from flat. */
static void spread_nu(fm_trainer *t) {
    for (int i = 0; i < t->m->lay.n; i++)
        if (t->masked_of[i] >= 0) {
            const fm_tensor *x = &t->m->lay.t[i];
            fm_rng_normals(99, FM_RNG_DATA, 0, (uint32_t)i, t->nu + x->offset, x->numel);
            for (size_t j = 0; j < x->numel; j++) t->nu[x->offset + j] *= 1.5f;
        }
}

/* Loss of a plain model whose masked weights are theta~ ⊙ m, m = mu except
 * entry (ti, j), which is mu + dm. */
static double relaxed_loss(const fm_model *src, const fm_trainer *t, fm_model *plain, fm_acts *a, int ti, size_t j,
                           double dm) {
    memcpy(plain->params, src->params, src->lay.numel * sizeof(float));
    for (int i = 0; i < src->lay.n; i++) {
        int k = t->masked_of[i];
        if (k < 0) continue;
        const fm_tensor *x = &src->lay.t[i];
        for (size_t e = 0; e < x->numel; e++) {
            double mu = fm_mask_get(&t->sample.t[k], e);
            if (i == ti && e == j) mu += dm;
            plain->params[x->offset + e] = (float)((double)src->params[x->offset + e] * mu);
        }
    }
    fm_batch b = batch();
    fm_pass p = {.seed = 11, .step = 3, .training = 1};
    return fm_model_forward(plain, a, &b, &p, NULL);
}

static void test_nu_gradient(void **state) {
    (void)state;
    fm_model m, plain;
    tiny(&m);
    tiny(&plain);
    fm_trainer t;
    fm_trainer_opts o;
    sm_opts(&o, FM_STE_IDENTITY);
    assert_int_equal(fm_trainer_init(&t, &m, &o), FM_OK);
    spread_nu(&t);
    fm_acts *a = fm_acts_new(&m.cfg, B, T, 0, 2);
    fm_acts *pa = fm_acts_new(&plain.cfg, B, T, 0, 2);
    fm_batch b = batch();
    fm_trainer_begin_step(&t, 3);
    fm_trainer_grad(&t, a, &b, 1.0);
    fm_trainer_nu_grads(&t);
    float *gid = fm_xalloc_floats(m.lay.numel);
    memcpy(gid, m.grads, m.lay.numel * sizeof(float));
    /* The same step with ste = sigmoid: the identity gradient times sigmoid'. */
    t.o.ste = FM_STE_SIGMOID;
    fm_trainer_begin_step(&t, 3);
    fm_trainer_grad(&t, a, &b, 1.0);
    fm_trainer_nu_grads(&t);
    int checked = 0, zeros = 0;
    double worst = 0;
    for (int i = 0; i < m.lay.n; i++) {
        int k = t.masked_of[i];
        if (k < 0) continue;
        const fm_tensor *x = &m.lay.t[i];
        for (size_t j = 0; j < x->numel; j++) {
            float s = fm_sigmoid(t.nu[x->offset + j]); /* the trainer's sigma (fastmath.h, tested in test_layers) */
            assert_true(m.grads[x->offset + j] == gid[x->offset + j] * (s * (1.0f - s)));
        }
        /* Central differences on the 3 largest identity gradients and on the
         * largest one whose sample is 0. */
        size_t pick[4];
        int np = 0;
        for (int r = 0; r < 4; r++) {
            double best = -1;
            size_t bj = 0;
            for (size_t j = 0; j < x->numel; j++) {
                int used = 0;
                for (int q = 0; q < np; q++) used |= pick[q] == j;
                if (used || (r == 3 && fm_mask_get(&t.sample.t[k], j))) continue;
                if (fabs(gid[x->offset + j]) > best) {
                    best = fabs(gid[x->offset + j]);
                    bj = j;
                }
            }
            if (best >= 0) pick[np++] = bj;
        }
        for (int q = 0; q < np; q++) {
            size_t j = pick[q];
            const double h = 2e-2;
            double fp = relaxed_loss(&m, &t, &plain, pa, i, j, h), fmn = relaxed_loss(&m, &t, &plain, pa, i, j, -h);
            double num = (fp - fmn) / (2 * h), ana = gid[x->offset + j];
            double err = fabs(ana - num);
            if (getenv("FM_TEST_VERBOSE"))
                printf("%s[%zu] mu=%d analytic %.6e numeric %.6e\n", x->name, j, fm_mask_get(&t.sample.t[k], j), ana,
                       num);
            assert_true(err <= 2e-2 * fabs(num) + 2e-5);
            if (fabs(num) > 1e-4 && err / fabs(num) > worst) worst = err / fabs(num);
            checked++;
            zeros += !fm_mask_get(&t.sample.t[k], j);
        }
    }
    printf("nu gradient: %d entries checked (%d with mu = 0), worst relative error %.2e\n", checked, zeros, worst);
    assert_true(checked >= 40 && zeros >= 10);
    fm_free_aligned(gid);
    fm_acts_free(a);
    fm_acts_free(pa);
    fm_trainer_free(&t);
    fm_model_free(&m);
    fm_model_free(&plain);
}

static void test_theta_frozen(void **state) {
    (void)state;
    fm_model m;
    tiny(&m);
    float *before = fm_xalloc_floats(m.lay.numel);
    memcpy(before, m.params, m.lay.numel * sizeof(float));
    fm_trainer t;
    fm_trainer_opts o;
    sm_opts(&o, FM_STE_SIGMOID);
    o.init_sparsity = 0.5;
    assert_int_equal(fm_trainer_init(&t, &m, &o), FM_OK);
    float *nu0 = fm_xalloc_floats(m.lay.numel);
    memcpy(nu0, t.nu, m.lay.numel * sizeof(float));
    fm_acts *a = fm_acts_new(&m.cfg, B, T, 0, 2);
    fm_batch b = batch();
    for (int s = 0; s < 4; s++) {
        fm_trainer_begin_step(&t, s);
        fm_trainer_grad(&t, a, &b, 1.0 / B);
        fm_trainer_apply(&t, NULL);
    }
    int head_changed = 0, nu_changed = 0;
    for (int i = 0; i < m.lay.n; i++) {
        const fm_tensor *x = &m.lay.t[i];
        int same = memcmp(before + x->offset, m.params + x->offset, x->numel * sizeof(float)) == 0;
        if (x->flags & FM_T_HEAD) head_changed |= !same;
        else assert_true(same); /* theta~ and every other pre-trained tensor: bit-identical */
        if (t.masked_of[i] >= 0) nu_changed |= memcmp(nu0 + x->offset, t.nu + x->offset, x->numel * 4) != 0;
    }
    assert_true(head_changed && nu_changed);
    assert_int_equal(t.step, 4);
    fm_acts_free(a);
    fm_free_aligned(before);
    fm_free_aligned(nu0);
    fm_trainer_free(&t);
    /* The views are back on the model's own parameters. */
    assert_ptr_equal(m.w.layer[0].wq, m.params + fm_layout_find(&m.lay, "encoder.layer.0.attention.self.query.weight")->offset);
    fm_model_free(&m);
}

static size_t count_low(const fm_trainer *t, const fm_tensor *x) {
    size_t n = 0;
    for (size_t j = 0; j < x->numel; j++) n += t->nu[x->offset + j] == -5.0f;
    return n;
}

static void test_init_rank(void **state) {
    (void)state;
    fm_model m;
    tiny(&m);
    fm_trainer t;
    fm_trainer_opts o;
    sm_opts(&o, FM_STE_SIGMOID);
    o.init_sparsity = 0.3;
    assert_int_equal(fm_trainer_init(&t, &m, &o), FM_OK);
    /* Global: exactly round(0.3 N) low, and a clean magnitude split. */
    size_t low = 0;
    float max_low = 0, min_high = INFINITY;
    for (int i = 0; i < m.lay.n; i++) {
        if (t.masked_of[i] < 0) continue;
        const fm_tensor *x = &m.lay.t[i];
        low += count_low(&t, x);
        for (size_t j = 0; j < x->numel; j++) {
            float a = fabsf(m.params[x->offset + j]), nu = t.nu[x->offset + j];
            assert_true(nu == -5.0f || nu == 5.0f);
            if (nu < 0 && a > max_low) max_low = a;
            if (nu > 0 && a < min_high) min_high = a;
        }
    }
    assert_int_equal(low, (size_t)llround(0.3 * (double)t.masked_numel));
    assert_true(max_low <= min_high);
    /* Per tensor: round(0.3 n) in each. */
    fm_trainer_init_nu(&t, 0.3, FM_RANK_TENSOR);
    for (int i = 0; i < m.lay.n; i++)
        if (t.masked_of[i] >= 0)
            assert_int_equal(count_low(&t, &m.lay.t[i]), (size_t)llround(0.3 * (double)m.lay.t[i].numel));
    /* Ties: every |theta~| equal -> the first k entries in layout order are low. */
    for (int i = 0; i < m.lay.n; i++)
        if (t.masked_of[i] >= 0)
            for (size_t j = 0; j < m.lay.t[i].numel; j++)
                m.params[m.lay.t[i].offset + j] = (j & 1) ? 0.5f : -0.5f;
    fm_trainer_init_nu(&t, 0.5, FM_RANK_GLOBAL);
    size_t k = (size_t)llround(0.5 * (double)t.masked_numel), seen = 0;
    for (int i = 0; i < m.lay.n; i++) {
        if (t.masked_of[i] < 0) continue;
        const fm_tensor *x = &m.lay.t[i];
        for (size_t j = 0; j < x->numel; j++, seen++) assert_true(t.nu[x->offset + j] == (seen < k ? -5.0f : 5.0f));
    }
    /* The edges: 0 and 1. */
    fm_trainer_init_nu(&t, 0.0, FM_RANK_GLOBAL);
    fm_trainer_init_nu(&t, 1.0, FM_RANK_TENSOR);
    for (int i = 0; i < m.lay.n; i++)
        if (t.masked_of[i] >= 0) assert_int_equal(count_low(&t, &m.lay.t[i]), m.lay.t[i].numel);
    /* Another magnitude (--nu-init): the same split at +-1.5. */
    t.o.nu_init = 1.5;
    fm_trainer_init_nu(&t, 0.5, FM_RANK_GLOBAL);
    seen = 0;
    for (int i = 0; i < m.lay.n; i++) {
        if (t.masked_of[i] < 0) continue;
        const fm_tensor *x = &m.lay.t[i];
        for (size_t j = 0; j < x->numel; j++, seen++) assert_true(t.nu[x->offset + j] == (seen < k ? -1.5f : 1.5f));
    }
    fm_trainer_free(&t);
    fm_model_free(&m);
}

static void test_sampling(void **state) {
    (void)state;
    fm_model m;
    tiny(&m);
    fm_trainer t;
    fm_trainer_opts o;
    sm_opts(&o, FM_STE_SIGMOID);
    assert_int_equal(fm_trainer_init(&t, &m, &o), FM_OK);
    spread_nu(&t);
    size_t bytes = 0;
    for (int k = 0; k < t.sample.n; k++) bytes += (t.sample.t[k].numel + 7) / 8;
    uint8_t *one = malloc(bytes), *two = malloc(bytes);
    omp_set_num_threads(1);
    fm_trainer_sample(&t, FM_SAMPLE_TRAIN, 5);
    for (int k = 0, off = 0; k < t.sample.n; off += (int)((t.sample.t[k].numel + 7) / 8), k++)
        memcpy(one + off, t.sample.t[k].bits, (t.sample.t[k].numel + 7) / 8);
    omp_set_num_threads(2);
    fm_trainer_sample(&t, FM_SAMPLE_TRAIN, 6);
    fm_trainer_sample(&t, FM_SAMPLE_TRAIN, 5);
    for (int k = 0, off = 0; k < t.sample.n; off += (int)((t.sample.t[k].numel + 7) / 8), k++)
        memcpy(two + off, t.sample.t[k].bits, (t.sample.t[k].numel + 7) / 8);
    assert_memory_equal(one, two, bytes);
    /* Every bit is the documented function of (seed, purpose, step, tensor, element). */
    double expect = 0;
    size_t ones = 0;
    for (int i = 0; i < m.lay.n; i++) {
        int k = t.masked_of[i];
        if (k < 0) continue;
        const fm_tensor *x = &m.lay.t[i];
        for (size_t j = 0; j < x->numel; j++) {
            float p = 1.0f / (1.0f + expf(-t.nu[x->offset + j]));
            int bit = fm_rng_uniform(11, FM_RNG_MASK, 5, (uint32_t)i, j) < p;
            assert_int_equal(fm_mask_get(&t.sample.t[k], j), bit);
            expect += p;
            ones += (size_t)bit;
        }
    }
    double n = (double)t.masked_numel, sd = sqrt(n * 0.25);
    assert_true(fabs((double)ones - expect) < 5 * sd);
    fm_trainer_sample(&t, FM_SAMPLE_TRAIN, 6);
    for (int k = 0, off = 0; k < t.sample.n; off += (int)((t.sample.t[k].numel + 7) / 8), k++)
        memcpy(two + off, t.sample.t[k].bits, (t.sample.t[k].numel + 7) / 8);
    assert_true(memcmp(one, two, bytes) != 0);
    /* Deterministic: nu > 0. */
    fm_trainer_sample(&t, FM_SAMPLE_DET, 0);
    fm_sparsity sp;
    fm_trainer_sparsity(&t, &sp);
    size_t zeros = 0;
    for (int i = 0; i < m.lay.n; i++)
        if (t.masked_of[i] >= 0)
            for (size_t j = 0; j < m.lay.t[i].numel; j++) zeros += !(t.nu[m.lay.t[i].offset + j] > 0);
    assert_true(sp.deterministic == (double)zeros / n && sp.sampled == sp.deterministic);
    /* A batch split in two calls (global example indices) gives the same gradient. */
    fm_acts *a = fm_acts_new(&m.cfg, B, T, 0, 2);
    fm_batch b = batch();
    fm_trainer_begin_step(&t, 2);
    fm_trainer_grad(&t, a, &b, 1.0 / B);
    float *whole = fm_xalloc_floats(m.lay.numel);
    memcpy(whole, m.grads, m.lay.numel * sizeof(float));
    fm_trainer_begin_step(&t, 2);
    fm_batch b1 = b, b2 = b;
    b1.B = 1;
    b2.B = 2;
    b2.ids += T;
    b2.type_ids += T;
    b2.attn_mask += T;
    b2.labels += 1;
    b2.example0 = 1;
    fm_trainer_grad(&t, a, &b1, 1.0 / B);
    fm_trainer_grad(&t, a, &b2, 1.0 / B);
    double scale = 0;
    for (size_t j = 0; j < m.lay.numel; j++) scale = fmax(scale, fabs(whole[j]));
    for (size_t j = 0; j < m.lay.numel; j++) assert_true(fabs(whole[j] - m.grads[j]) <= 1e-5 * scale);
    fm_free_aligned(whole);
    fm_acts_free(a);
    free(one);
    free(two);
    fm_trainer_free(&t);
    fm_model_free(&m);
}

static void test_bad_opts(void **state) {
    (void)state;
    fm_model m;
    tiny(&m);
    fm_trainer t;
    fm_trainer_opts o;
    sm_opts(&o, FM_STE_SIGMOID);
    o.mask_glob = "no.such.*";
    assert_int_equal(fm_trainer_init(&t, &m, &o), FM_ERR);
    tu_assert_contains(fm_last_error(), "matches no tensor");
    o.mask_glob = "classifier.weight";
    assert_int_equal(fm_trainer_init(&t, &m, &o), FM_ERR);
    tu_assert_contains(fm_last_error(), "head");
    o.mask_glob = NULL;
    o.mask_layers = "1";
    assert_int_equal(fm_trainer_init(&t, &m, &o), FM_OK);
    for (int i = 0; i < m.lay.n; i++)
        assert_int_equal(t.masked_of[i] >= 0, m.lay.t[i].layer == 1 && (m.lay.t[i].flags & FM_T_MATRIX) != 0);
    fm_trainer_free(&t);
    fm_model_free(&m);
}

/* A gradient with a NaN or an infinity (a diverged step) reports a norm that
 * is not finite and changes nothing: the parameters, nu, the moments and the
 * step stay as they were (a NaN norm passes every clipping test, so it used to
 * reach the parameters). Full and supermask modes. */
static void test_nonfinite_update(void **state) {
    (void)state;
    const float bad[3] = {NAN, INFINITY, -INFINITY};
    for (int mode = 0; mode < 2; mode++)
        for (int k = 0; k < 3; k++) {
            fm_model m;
            tiny(&m);
            fm_trainer t;
            fm_trainer_opts o;
            sm_opts(&o, FM_STE_SIGMOID);
            if (mode == 0) o.mode = FM_TRAIN_FULL;
            assert_int_equal(fm_trainer_init(&t, &m, &o), FM_OK);
            fm_acts *a = fm_acts_new(&m.cfg, B, T, 0, 2);
            fm_batch b = batch();
            fm_trainer_begin_step(&t, 0);
            fm_trainer_grad(&t, a, &b, 1.0 / B);
            double norm = 0;
            fm_trainer_apply(&t, &norm); /* one good step, so the moments are not all zero */
            assert_true(isfinite(norm));
            const size_t n = m.lay.numel;
            float *p0 = fm_xalloc_floats(n), *nu0 = fm_xalloc_floats(n), *m0 = fm_xalloc_floats(n),
                  *v0 = fm_xalloc_floats(n);
            memcpy(p0, m.params, n * sizeof(float));
            if (t.nu) memcpy(nu0, t.nu, n * sizeof(float));
            memcpy(m0, t.mom1, n * sizeof(float));
            memcpy(v0, t.mom2, n * sizeof(float));
            fm_trainer_begin_step(&t, 1);
            fm_trainer_grad(&t, a, &b, 1.0 / B);
            /* one entry of the classifier's gradient (it trains in both modes) */
            m.grads[fm_layout_find(&m.lay, "classifier.weight")->offset + 3] = bad[k];
            fm_trainer_apply(&t, &norm);
            assert_false(isfinite(norm));
            assert_int_equal(t.step, 1);
            assert_memory_equal(p0, m.params, n * sizeof(float));
            if (t.nu) assert_memory_equal(nu0, t.nu, n * sizeof(float));
            assert_memory_equal(m0, t.mom1, n * sizeof(float));
            assert_memory_equal(v0, t.mom2, n * sizeof(float));
            fm_free_aligned(p0);
            fm_free_aligned(nu0);
            fm_free_aligned(m0);
            fm_free_aligned(v0);
            fm_acts_free(a);
            fm_trainer_free(&t);
            fm_model_free(&m);
        }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nu_gradient), cmocka_unit_test(test_theta_frozen), cmocka_unit_test(test_init_rank),
        cmocka_unit_test(test_sampling),    cmocka_unit_test(test_bad_opts),   cmocka_unit_test(test_nonfinite_update),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
