/* test_ptstate.c: the pre-training state file (io/ptstate.h): an exact round
 * trip of arrays and progress, frozen tensors left out, options compared key
 * by key with the first difference named, damaged files refused. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "config.h"
#include "fileio.h"
#include "fm.h"
#include "params.h"
#include "ptstate.h"
#include "safetensors.h"

#define OPTS "{\"corpus\":[\"a.txt\"],\"steps\":40,\"lr\":0.002,\"seed\":5}"

typedef struct {
    char *dir;
    char path[4096];
    fm_config c;
    fm_layout lay;
    float *p, *m, *v;
    fm_pt_progress pr;
} fixture;

static int setup(void **state) {
    fixture *fx = calloc(1, sizeof *fx);
    fx->dir = tu_mkdtemp();
    snprintf(fx->path, sizeof fx->path, "%s/state.safetensors", fx->dir);
    fm_config_default(&fx->c);
    fx->c.vocab_size = 32;
    fx->c.hidden_size = 8;
    fx->c.num_attention_heads = 2;
    fx->c.intermediate_size = 16;
    fx->c.num_hidden_layers = 2;
    fx->c.max_position_embeddings = 16;
    fx->c.with_mlm = 1;
    fm_layout_build(&fx->lay, &fx->c);
    for (int i = 0; i < fx->lay.n; i++)
        if (!strncmp(fx->lay.t[i].name, "pooler.", 7)) fx->lay.t[i].trains = 0;
    fx->p = fm_xalloc_floats(fx->lay.numel);
    fx->m = fm_xalloc_floats(fx->lay.numel);
    fx->v = fm_xalloc_floats(fx->lay.numel);
    for (size_t i = 0; i < fx->lay.numel; i++) {
        fx->p[i] = (float)sin((double)i) / 3.0f; /* not exact in any short decimal */
        fx->m[i] = -(float)i * 1e-7f;
        fx->v[i] = (float)i * 1e-9f + 1e-30f;
    }
    fx->pr = (fm_pt_progress){.step = 12, .log_bytes = 1234, .window_loss = 0.1 + 0.2, .window_n = 3,
                              .examples = 192, .loss_initial = 5.7332123456789, .counts = {100, 15, 12, 2, 1},
                              .ranks = 2};
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fixture *fx = *state;
    tu_rmtree(fx->dir);
    free(fx->dir);
    fm_free_aligned(fx->p);
    fm_free_aligned(fx->m);
    fm_free_aligned(fx->v);
    fm_layout_free(&fx->lay);
    free(fx);
    return 0;
}

/* Everything that trains comes back bit for bit; frozen tensors are not touched. */
static void test_round_trip(void **state) {
    fixture *fx = *state;
    assert_int_equal(fm_ptstate_write(fx->path, &fx->lay, fx->p, fx->m, fx->v, &fx->pr, OPTS), FM_OK);
    float *p = fm_xalloc_floats(fx->lay.numel), *m = fm_xalloc_floats(fx->lay.numel),
          *v = fm_xalloc_floats(fx->lay.numel);
    for (size_t i = 0; i < fx->lay.numel; i++) p[i] = m[i] = v[i] = 42.0f;
    fm_pt_progress pr;
    memset(&pr, 0, sizeof pr);
    assert_int_equal(fm_ptstate_read(fx->path, &fx->lay, p, m, v, &pr, OPTS), FM_OK);
    int pooler = 0;
    for (int i = 0; i < fx->lay.n; i++) {
        const fm_tensor *t = &fx->lay.t[i];
        for (size_t k = t->offset; k < t->offset + t->numel; k++) {
            if (t->trains) {
                assert_memory_equal(&p[k], &fx->p[k], sizeof(float));
                assert_memory_equal(&m[k], &fx->m[k], sizeof(float));
                assert_memory_equal(&v[k], &fx->v[k], sizeof(float));
            } else {
                assert_true(p[k] == 42.0f && m[k] == 42.0f && v[k] == 42.0f);
            }
        }
        pooler += !t->trains;
    }
    assert_int_equal(pooler, 2);
    assert_int_equal(pr.step, 12);
    assert_int_equal(pr.log_bytes, 1234);
    assert_true(pr.window_loss == 0.1 + 0.2); /* hex float: exact */
    assert_int_equal(pr.window_n, 3);
    assert_int_equal(pr.examples, 192);
    assert_true(pr.loss_initial == 5.7332123456789);
    int64_t want[5] = {100, 15, 12, 2, 1};
    assert_memory_equal(pr.counts, want, sizeof want);
    assert_int_equal(pr.ranks, 2);
    /* three tensors (param, adam_m, adam_v) for each tensor that trains */
    fm_st_file f;
    assert_int_equal(fm_st_open(&f, fx->path), FM_OK);
    assert_int_equal(f.n, 3 * (fx->lay.n - 2));
    assert_non_null(fm_st_find(&f, "adam_v.encoder.layer.1.output.dense.weight"));
    assert_null(fm_st_find(&f, "param.pooler.dense.weight"));
    assert_string_equal(fm_st_meta_get(&f, "format"), "finemask-pretrain-state");
    fm_st_close(&f);
    fm_free_aligned(p);
    fm_free_aligned(m);
    fm_free_aligned(v);
}

/* Options differing in a value, a missing key or an extra key are refused,
 * naming the key and both values. */
static void test_options_differ(void **state) {
    fixture *fx = *state;
    assert_int_equal(fm_ptstate_write(fx->path, &fx->lay, fx->p, fx->m, fx->v, &fx->pr, OPTS), FM_OK);
    fm_pt_progress pr;
    assert_int_equal(fm_ptstate_read(fx->path, &fx->lay, fx->p, fx->m, fx->v, &pr,
                                     "{\"corpus\":[\"a.txt\"],\"steps\":40,\"lr\":0.001,\"seed\":5}"),
                     FM_ERR);
    tu_assert_contains(fm_last_error(), "option lr differs: the state was written with 0.002, this run has 0.001");
    assert_int_equal(fm_ptstate_read(fx->path, &fx->lay, fx->p, fx->m, fx->v, &pr,
                                     "{\"corpus\":[\"b.txt\"],\"steps\":40,\"lr\":0.002,\"seed\":5}"),
                     FM_ERR);
    tu_assert_contains(fm_last_error(), "option corpus differs: the state was written with [\"a.txt\"]");
    assert_int_equal(fm_ptstate_read(fx->path, &fx->lay, fx->p, fx->m, fx->v, &pr,
                                     "{\"corpus\":[\"a.txt\"],\"steps\":40,\"lr\":0.002,\"seed\":5,\"batch\":8}"),
                     FM_ERR);
    tu_assert_contains(fm_last_error(), "option batch differs: the state was written with (none), this run has 8");
    assert_int_equal(fm_ptstate_read(fx->path, &fx->lay, fx->p, fx->m, fx->v, &pr,
                                     "{\"corpus\":[\"a.txt\"],\"lr\":0.002,\"seed\":5}"),
                     FM_ERR);
    tu_assert_contains(fm_last_error(), "option steps differs");
}

/* Path options compare as files: another spelling of the same corpus file
 * resumes; another file of the same content does not. */
static void test_options_paths(void **state) {
    fixture *fx = *state;
    char a[4200], a2[4300], b[4200], saved[8600], cur[8700];
    snprintf(a, sizeof a, "%s/a.txt", fx->dir);
    snprintf(a2, sizeof a2, "%s/./../%s/a.txt", fx->dir, strrchr(fx->dir, '/') + 1);
    snprintf(b, sizeof b, "%s/b.txt", fx->dir);
    assert_int_equal(fm_write_file_atomic(a, "x\n", 2), FM_OK);
    assert_int_equal(fm_write_file_atomic(b, "x\n", 2), FM_OK);
    snprintf(saved, sizeof saved, "{\"corpus\":[\"%s\"],\"vocab\":\"%s\",\"lr\":0.002}", a, a);
    assert_int_equal(fm_ptstate_write(fx->path, &fx->lay, fx->p, fx->m, fx->v, &fx->pr, saved), FM_OK);
    fm_pt_progress pr;
    snprintf(cur, sizeof cur, "{\"corpus\":[\"%s\"],\"vocab\":\"%s\",\"lr\":0.002}", a2, a2);
    assert_int_equal(fm_ptstate_read(fx->path, &fx->lay, fx->p, fx->m, fx->v, &pr, cur), FM_OK);
    snprintf(cur, sizeof cur, "{\"corpus\":[\"%s\"],\"vocab\":\"%s\",\"lr\":0.002}", b, a2);
    assert_int_equal(fm_ptstate_read(fx->path, &fx->lay, fx->p, fx->m, fx->v, &pr, cur), FM_ERR);
    tu_assert_contains(fm_last_error(), "option corpus differs");
    snprintf(cur, sizeof cur, "{\"corpus\":[\"%s\"],\"vocab\":\"%s\",\"lr\":0.003}", a2, a2);
    assert_int_equal(fm_ptstate_read(fx->path, &fx->lay, fx->p, fx->m, fx->v, &pr, cur), FM_ERR);
    tu_assert_contains(fm_last_error(), "option lr differs: the state was written with 0.002, this run has 0.003");
}

/* A truncated file, or a tensor of another shape, is refused naming the file. */
static void test_damaged(void **state) {
    fixture *fx = *state;
    assert_int_equal(fm_ptstate_write(fx->path, &fx->lay, fx->p, fx->m, fx->v, &fx->pr, OPTS), FM_OK);
    char *data;
    size_t len;
    assert_int_equal(fm_read_file(fx->path, &data, &len), FM_OK);
    assert_int_equal(tu_write_file(fx->path, data, len / 2), 0);
    free(data);
    fm_pt_progress pr;
    assert_int_equal(fm_ptstate_read(fx->path, &fx->lay, fx->p, fx->m, fx->v, &pr, OPTS), FM_ERR);
    tu_assert_contains(fm_last_error(), fx->path);
    /* a state of a wider model */
    fm_config c2 = fx->c;
    c2.intermediate_size = 32;
    fm_layout l2;
    fm_layout_build(&l2, &c2);
    float *p2 = fm_xalloc_floats(l2.numel);
    assert_int_equal(fm_ptstate_write(fx->path, &l2, p2, p2, p2, &fx->pr, OPTS), FM_OK);
    assert_int_equal(fm_ptstate_read(fx->path, &fx->lay, fx->p, fx->m, fx->v, &pr, OPTS), FM_ERR);
    tu_assert_contains(fm_last_error(), "param.encoder.layer.0.intermediate.dense.weight: expected F32 of 128 elements");
    fm_free_aligned(p2);
    fm_layout_free(&l2);
}

/* A byte changed inside a tensor's data (the file still parses, every shape
 * fits) is refused by its CRC-32C, naming the file and the tensor, and saying
 * the file is damaged; put back, the file reads again. */
static void test_corrupt_data(void **state) {
    fixture *fx = *state;
    assert_int_equal(fm_ptstate_write(fx->path, &fx->lay, fx->p, fx->m, fx->v, &fx->pr, OPTS), FM_OK);
    fm_st_file f;
    assert_int_equal(fm_st_open(&f, fx->path), FM_OK);
    const fm_st_tensor *t = fm_st_find(&f, "adam_m.encoder.layer.1.attention.self.key.weight");
    assert_non_null(t);
    const size_t at = 8 + (size_t)f.header_len + (size_t)t->begin + 5;
    fm_st_close(&f);
    char *data;
    size_t len;
    assert_int_equal(fm_read_file(fx->path, &data, &len), FM_OK);
    data[at] ^= 0x40;
    assert_int_equal(tu_write_file(fx->path, data, len), 0);
    fm_pt_progress pr;
    float *p = fm_xalloc_floats(fx->lay.numel);
    assert_int_equal(fm_ptstate_read(fx->path, &fx->lay, p, p, p, &pr, OPTS), FM_ERR);
    tu_assert_contains(fm_last_error(), fx->path);
    tu_assert_contains(fm_last_error(), "tensor adam_m.encoder.layer.1.attention.self.key.weight: CRC-32C");
    tu_assert_contains(fm_last_error(), "damaged");
    data[at] ^= 0x40; /* whole again */
    assert_int_equal(tu_write_file(fx->path, data, len), 0);
    assert_int_equal(fm_ptstate_read(fx->path, &fx->lay, p, p, p, &pr, OPTS), FM_OK);
    free(data);
    fm_free_aligned(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_corrupt_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_options_differ, setup, teardown),
        cmocka_unit_test_setup_teardown(test_options_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
