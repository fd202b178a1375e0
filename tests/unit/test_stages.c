/* test_stages.c: trainers that own a pipeline stage's tensors (src/train.h
 * fm_trainer_own) on a tiny model (L=3, H=16, no dropout):
 *   1. fm_layout_stage: the embeddings on stage 0, encoder layer l on the
 *      stage whose slice [L*s/S, L*(s+1)/S) holds it, pooler and head last;
 *   2. the norm from per-tensor terms equals fm_grad_norm bit for bit, also
 *      for tensors past the threaded size;
 *   3. for full fine-tuning and supermask, with S = 2 and 3: S trainers, each
 *      given the whole batch's gradient of its own tensors only, whose norm
 *      terms are summed, reach after every step the same norm, the same
 *      parameters, scores and AdamW moments of their own tensors as one
 *      trainer (bit for bit), leave every other tensor's parameters, scores,
 *      moments and sample as they were, draw the same training sample of
 *      their own tensors, and their summed sparsity terms give the one
 *      trainer's sparsities;
 *   4. the same with each stage's trainer over a stage's model
 *      (fm_model_alloc_stage, per-tensor initial ranking): it holds its own
 *      tensors only, and parameters, gradients, moments and scores of the
 *      others are address space without memory, where a read faults (checked
 *      in a child process);
 *   5. a tensor-parallel rank's model of a stage (fm_model_shard and
 *      fm_model_alloc_shard with the stage): the stage's tensors only, each
 *      split one holding its share's values (the rows or columns of the
 *      whole tensor), the other stages' tensors faulting. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fm.h"
#include "model.h"
#include "optim.h"
#include "rng.h"
#include "testutil.h"
#include "train.h"

enum { B = TU_B, T = TU_T, L = 3 };

static void tiny(fm_model *m) { tu_tiny_model(m, L); }

static void test_layout_stage(void **state) {
    (void)state;
    fm_model m;
    tiny(&m);
    for (int i = 0; i < m.lay.n; i++) {
        const fm_tensor *t = &m.lay.t[i];
        int head = !strncmp(t->name, "pooler.", 7) || !strncmp(t->name, "classifier.", 11);
        int emb = !strncmp(t->name, "embeddings.", 11);
        assert_true(head || emb || !strncmp(t->name, "encoder.layer.", 14));
        /* S = 2: [0, 1) and [1, 3) */
        assert_int_equal(fm_layout_stage(t, L, 2), emb ? 0 : head ? 1 : t->layer >= 1);
        assert_int_equal(fm_layout_stage(t, L, 3), emb ? 0 : head ? 2 : t->layer);
        assert_int_equal(fm_layout_stage(t, L, 1), 0);
    }
    fm_model_free(&m);
}

static void test_norm_parts(void **state) {
    (void)state;
    fm_layout lay;
    fm_config c;
    fm_config_default(&c); /* BERT-base: word embeddings far past 65536 entries */
    c.num_hidden_layers = 1;
    c.num_labels = 2;
    fm_layout_build(&lay, &c);
    float *g = fm_xalloc_floats(lay.numel);
    fm_rng_normals(5, FM_RNG_DATA, 0, 0, g, lay.numel);
    lay.t[3].trains = 0;
    double *sq = fm_xmalloc(sizeof(double) * (size_t)lay.n);
    fm_grad_sqnorms(sq, &lay, g);
    assert_true(sq[3] == 0.0 && sq[0] > 0);
    double a = fm_grad_norm(&lay, g), b = fm_grad_norm_sum(&lay, sq);
    assert_memory_equal(&a, &b, sizeof a);
    free(sq);
    fm_free_aligned(g);
    fm_layout_free(&lay);
}

static void opts(fm_trainer_opts *o, fm_train_mode mode) {
    fm_trainer_opts_default(o);
    o->mode = mode;
    o->seed = 11;
    o->opt.lr = 1e-2f;
    o->opt.total_steps = 10;
    o->opt.warmup_steps = 2;
    o->opt.max_grad_norm = 0.05f; /* clipping on: the norm matters */
    o->mask_opt = o->opt;
    o->mask_opt.lr = 0.5f;
    o->mask_opt.weight_decay = 0;
    o->init_sparsity = 0.3;
}

static int same(const float *a, const float *b, const fm_tensor *x) {
    return memcmp(a + x->offset, b + x->offset, x->numel * sizeof(float)) == 0;
}

/* 1 when reading p in a child process kills it with SIGSEGV. */
static int faults(const float *p) {
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGSEGV, SIG_DFL); /* not cmocka's handler */
        volatile float x = *(volatile const float *)p;
        (void)x;
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV;
}

/* staged: each stage's model holds its own tensors only (fm_model_alloc_stage). */
static void run_stages(fm_train_mode mode, int S, int staged) {
    fm_model m0, ms[3], init;
    fm_trainer t0, ts[3];
    fm_trainer_opts o;
    opts(&o, mode);
    /* without a stages_sum, a stage's model ranks its own tensors alone: per tensor, as one process */
    if (staged) o.init_rank = FM_RANK_TENSOR;
    const int sm = mode == FM_TRAIN_SUPERMASK;
    tiny(&m0);
    tiny(&init);
    assert_int_equal(fm_trainer_init(&t0, &m0, &o), FM_OK);
    const int n = m0.lay.n;
    unsigned char *own = fm_xmalloc((size_t)n);
    for (int s = 0; s < S; s++) {
        for (int i = 0; i < n; i++) own[i] = fm_layout_stage(&m0.lay.t[i], L, S) == s;
        if (staged) {
            fm_model_alloc_stage(&ms[s], &init.cfg, s, S);
            assert_non_null(ms[s].own);
            for (int i = 0; i < n; i++) {
                const fm_tensor *x = &init.lay.t[i];
                assert_int_equal(ms[s].own[i], own[i]);
                if (own[i]) memcpy(ms[s].params + x->offset, init.params + x->offset, x->numel * sizeof(float));
            }
        } else {
            tiny(&ms[s]);
        }
        assert_int_equal(fm_trainer_init(&ts[s], &ms[s], &o), FM_OK);
        fm_trainer_own(&ts[s], own);
    }
    if (staged) {
        /* the other stages' tensors have no memory: a read far enough from
         * the stage's own range (whole pages away) faults */
        const size_t page = (size_t)sysconf(_SC_PAGESIZE) / sizeof(float);
        int checked = 0;
        for (int s = 0; s < S; s++) {
            const fm_model *m = &ms[s];
            for (int i = 0; i < n; i++) {
                const fm_tensor *x = &m->lay.t[i];
                const size_t mid = x->offset + x->numel / 2;
                if (m->own[i] || (mid + page >= m->own_begin && mid < m->own_end + page)) continue;
                assert_true(faults(m->params + mid));
                assert_true(faults(m->grads + mid));
                assert_true(faults(ts[s].mom1 + mid) && faults(ts[s].mom2 + mid));
                if (sm) assert_true(faults(ts[s].nu + mid));
                if (sm && ts[s].masked_of[i] >= 0) assert_null(ts[s].sample.t[ts[s].masked_of[i]].bits);
                checked++;
            }
        }
        assert_true(checked > 0);
    }
    float *nu0 = sm ? fm_xalloc_floats(m0.lay.numel) : NULL;
    if (sm) memcpy(nu0, t0.nu, m0.lay.numel * sizeof(float));
    /* the initial sample (the deterministic mask of the initial scores) */
    uint8_t **bits0 = sm ? fm_xcalloc((size_t)t0.sample.n, sizeof *bits0) : NULL;
    for (int k = 0; sm && k < t0.sample.n; k++) {
        size_t nb = (t0.sample.t[k].numel + 7) / 8;
        bits0[k] = fm_xmalloc(nb);
        memcpy(bits0[k], t0.sample.t[k].bits, nb);
    }
    fm_acts *a = fm_acts_new(&m0.cfg, B, T, 0, L);
    fm_batch b = tu_tiny_batch();
    float *g = fm_xalloc_floats(m0.lay.numel);
    double *sq = fm_xmalloc(sizeof(double) * (size_t)n), *sum = fm_xmalloc(sizeof(double) * (size_t)n);
    double *parts = fm_xmalloc(sizeof(double) * 3 * (size_t)n), *psum = fm_xmalloc(sizeof(double) * 3 * (size_t)n);
    int clipped = 0;
    for (int step = 0; step < 5; step++) {
        double norm0, norm;
        fm_trainer_begin_step(&t0, step);
        fm_trainer_grad(&t0, a, &b, 1.0 / B);
        memcpy(g, m0.grads, m0.lay.numel * sizeof(float));
        fm_trainer_apply(&t0, &norm0);
        clipped |= norm0 > o.opt.max_grad_norm;
        memset(sum, 0, sizeof(double) * (size_t)n);
        for (int s = 0; s < S; s++) {
            fm_trainer_begin_step(&ts[s], step);
            /* a stage has the (summed) gradients of its own tensors only */
            for (int i = 0; i < n; i++)
                if (ts[s].own[i]) {
                    const fm_tensor *x = &m0.lay.t[i];
                    memcpy(ms[s].grads + x->offset, g + x->offset, x->numel * sizeof(float));
                }
            fm_trainer_norm_parts(&ts[s], sq);
            for (int i = 0; i < n; i++) {
                if (!ts[s].own[i]) assert_true(sq[i] == 0.0);
                sum[i] += sq[i];
            }
        }
        memset(psum, 0, sizeof(double) * 3 * (size_t)n);
        for (int s = 0; s < S; s++) {
            fm_trainer_sparsity_parts(&ts[s], parts);
            for (int i = 0; i < 3 * n; i++) psum[i] += parts[i];
            fm_trainer_apply_parts(&ts[s], sum, &norm);
            assert_memory_equal(&norm, &norm0, sizeof norm);
            assert_int_equal(ts[s].step, t0.step);
        }
        if (sm) {
            /* the sampled sparsity of this step's sample (t0's nu has moved on since) */
            fm_sparsity a1;
            fm_trainer_sparsity_sum(&t0, psum, &a1);
            assert_true(a1.numel == t0.masked_numel);
            double ones = 0;
            for (int k = 0; k < t0.sample.n; k++) ones += (double)fm_mask_count(&t0.sample.t[k]);
            assert_true(a1.sampled == ((double)t0.masked_numel - ones) / (double)t0.masked_numel);
        }
        for (int s = 0; s < S; s++)
            for (int i = 0; i < n; i++) {
                const fm_tensor *x = &m0.lay.t[i];
                if (ts[s].own[i]) {
                    assert_true(same(ms[s].params, m0.params, x));
                    assert_true(same(ts[s].mom1, t0.mom1, x) && same(ts[s].mom2, t0.mom2, x));
                    if (sm) assert_true(same(ts[s].nu, t0.nu, x));
                } else if (!staged) {
                    /* untouched: the initial parameters, scores and sample, zero moments */
                    assert_true(same(ms[s].params, init.params, x));
                    for (size_t j = 0; j < x->numel; j++)
                        assert_true(ts[s].mom1[x->offset + j] == 0 && ts[s].mom2[x->offset + j] == 0);
                    if (sm) assert_true(same(ts[s].nu, nu0, x));
                }
                int k = sm ? t0.masked_of[i] : -1;
                if (k >= 0 && (!staged || ts[s].own[i])) {
                    const uint8_t *want = ts[s].own[i] ? t0.sample.t[k].bits : bits0[k];
                    assert_memory_equal(ts[s].sample.t[k].bits, want, (t0.sample.t[k].numel + 7) / 8);
                }
            }
    }
    assert_true(clipped);
    if (sm) {
        /* the sparsities of the current scores and sample, from every stage's terms */
        fm_sparsity w, got;
        fm_trainer_sparsity(&t0, &w);
        memset(psum, 0, sizeof(double) * 3 * (size_t)n);
        for (int s = 0; s < S; s++) {
            fm_trainer_sparsity_parts(&ts[s], parts);
            for (int i = 0; i < 3 * n; i++) psum[i] += parts[i];
        }
        fm_trainer_sparsity_sum(&ts[0], psum, &got);
        assert_memory_equal(&got.expected, &w.expected, sizeof w.expected);
        assert_memory_equal(&got.sampled, &w.sampled, sizeof w.sampled);
        assert_memory_equal(&got.deterministic, &w.deterministic, sizeof w.deterministic);
        assert_true(w.deterministic > 0.05 && w.expected > 0.05);
        for (int k = 0; k < t0.sample.n; k++) free(bits0[k]);
        free(bits0);
    }
    free(sq);
    free(sum);
    free(parts);
    free(psum);
    free(own);
    fm_free_aligned(g);
    fm_free_aligned(nu0);
    fm_acts_free(a);
    for (int s = 0; s < S; s++) {
        fm_trainer_free(&ts[s]);
        fm_model_free(&ms[s]);
    }
    fm_trainer_free(&t0);
    fm_model_free(&m0);
    fm_model_free(&init);
}

static void test_full_stages(void **state) {
    (void)state;
    run_stages(FM_TRAIN_FULL, 2, 0);
    run_stages(FM_TRAIN_FULL, 3, 0);
}

static void test_supermask_stages(void **state) {
    (void)state;
    run_stages(FM_TRAIN_SUPERMASK, 2, 0);
    run_stages(FM_TRAIN_SUPERMASK, 3, 0);
}

static void test_full_stage_models(void **state) {
    (void)state;
    run_stages(FM_TRAIN_FULL, 2, 1);
    run_stages(FM_TRAIN_FULL, 3, 1);
}

static void test_supermask_stage_models(void **state) {
    (void)state;
    run_stages(FM_TRAIN_SUPERMASK, 2, 1);
    run_stages(FM_TRAIN_SUPERMASK, 3, 1);
}

/* 5: stage s, tensor-parallel rank t of 2 stages x 2 ranks. */
static void test_stage_shards(void **state) {
    (void)state;
    enum { S = 2, P = 2 };
    fm_model whole;
    tiny(&whole);
    for (int i = 0; i < whole.lay.n; i++) {
        const fm_tensor *x = &whole.lay.t[i];
        for (size_t j = 0; j < x->numel; j++) whole.params[x->offset + j] = (float)(i * 1000 + (int)j);
    }
    for (int s = 0; s < S; s++) {
        fm_model st;
        fm_model_alloc_stage(&st, &whole.cfg, s, S);
        for (int i = 0; i < whole.lay.n; i++)
            if (st.own[i])
                memcpy(st.params + st.lay.t[i].offset, whole.params + whole.lay.t[i].offset,
                       whole.lay.t[i].numel * sizeof(float));
        for (int t = 0; t < P; t++) {
            fm_model sh, al;
            fm_model_shard(&sh, &st, t, P, s, S);
            fm_model_alloc_shard(&al, &whole.cfg, t, P, s, S);
            assert_int_equal(sh.lay.tp_size, P);
            assert_int_equal(sh.lay.tp_rank, t);
            assert_int_equal(al.lay.numel, sh.lay.numel);
            assert_int_equal(al.own_begin, sh.own_begin);
            assert_int_equal(al.own_end, sh.own_end);
            int split = 0, faulted = 0;
            for (int i = 0; i < sh.lay.n; i++) {
                const fm_tensor *x = &sh.lay.t[i];
                assert_int_equal(sh.own[i], fm_layout_stage(x, L, S) == s);
                assert_int_equal(al.own[i], sh.own[i]);
                assert_int_equal(al.lay.t[i].offset, x->offset);
                if (!sh.own[i]) {
                    /* a page away from the stage's range: no memory there */
                    const size_t mid = x->offset + x->numel / 2, page = (size_t)sysconf(_SC_PAGESIZE) / sizeof(float);
                    if (mid + page < sh.own_begin || mid >= sh.own_end + page) {
                        assert_true(faults(sh.params + mid) && faults(sh.grads + mid));
                        faulted++;
                    }
                    continue;
                }
                float *want = fm_xmalloc(sizeof(float) * (x->numel ? x->numel : 1));
                fm_tensor_slice(&sh.lay, x, whole.params + whole.lay.t[i].offset, want);
                assert_memory_equal(sh.params + x->offset, want, x->numel * sizeof(float));
                free(want);
                if (x->split != FM_SPLIT_NONE) {
                    split++;
                    assert_int_equal(x->numel * P, x->whole_numel);
                }
            }
            assert_true(split > 0);
            assert_true(faulted);
            fm_model_free(&al);
            fm_model_free(&sh);
        }
        fm_model_free(&st);
    }
    fm_model_free(&whole);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_stage),
        cmocka_unit_test(test_norm_parts),
        cmocka_unit_test(test_full_stages),
        cmocka_unit_test(test_supermask_stages),
        cmocka_unit_test(test_full_stage_models),
        cmocka_unit_test(test_supermask_stage_models),
        cmocka_unit_test(test_stage_shards),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
