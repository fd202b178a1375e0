/* test_maskcmd.c: the `finemask mask` and `finemask distance` commands on a
 * small model: mask apply gives exactly the model a masked load gives (what
 * eval with a mask scores), export unpacks the exact bits, random masks are
 * reproducible, and every bad input is refused with nothing overwritten. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "cli.h"
#include "fileio.h"
#include "fm.h"
#include "mask.h"
#include "maskfile.h"
#include "model.h"
#include "modeldir.h"
#include "safetensors.h"

typedef struct {
    char *dir;
    char model[4096], model2[4096], m1[4096], m2[4096], m3[4096], out[4096];
} fixture;

static void small_config(fm_config *c, int num_labels) {
    fm_config_default(c);
    c->vocab_size = 40;
    c->hidden_size = 16;
    c->num_attention_heads = 2;
    c->intermediate_size = 24;
    c->num_hidden_layers = 2;
    c->max_position_embeddings = 16;
    c->type_vocab_size = 2;
    c->num_labels = num_labels;
}

static void save_model(const char *dir, uint64_t seed, int num_labels) {
    fm_config c;
    small_config(&c, num_labels);
    fm_model m;
    fm_model_alloc(&m, &c);
    fm_model_init_weights(&m, seed);
    assert_int_equal(fm_modeldir_save(dir, &c, &m.lay, m.params, NULL), FM_OK);
    fm_model_free(&m);
}

static int run(int (*cmd)(int, char **), const char *const *argv) {
    int argc = 0;
    while (argv[argc]) argc++;
    fflush(stdout);
    return cmd(argc, (char **)argv);
}

static int setup(void **state) {
    fixture *fx = calloc(1, sizeof *fx);
    fx->dir = tu_mkdtemp();
    snprintf(fx->model, sizeof fx->model, "%s/model", fx->dir);
    snprintf(fx->model2, sizeof fx->model2, "%s/model2", fx->dir);
    snprintf(fx->m1, sizeof fx->m1, "%s/m1.safetensors", fx->dir);
    snprintf(fx->m2, sizeof fx->m2, "%s/m2.safetensors", fx->dir);
    snprintf(fx->m3, sizeof fx->m3, "%s/m3.safetensors", fx->dir);
    snprintf(fx->out, sizeof fx->out, "%s/out", fx->dir);
    save_model(fx->model, 1, 3);
    save_model(fx->model2, 2, 3);
    assert_int_equal(run(fm_cmd_mask, (const char *const[]){"mask", "random", "--model", fx->model, "--sparsity", "0.4",
                                                             "--seed", "9", "--out", fx->m1, NULL}),
                     0);
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fixture *fx = *state;
    tu_rmtree(fx->dir);
    free(fx->dir);
    free(fx);
    return 0;
}

static void test_random_file(void **state) {
    fixture *fx = *state;
    fm_mask m, m2;
    fm_maskfile_meta meta, meta2;
    int nl;
    assert_int_equal(fm_maskfile_read(fx->m1, &m, &meta, NULL, NULL, &nl), FM_OK);
    assert_string_equal(meta.mode, "random");
    assert_int_equal(meta.seed, 9);
    assert_string_equal(fm_maskfile_meta_get(&meta, "sparsity"), "0.40000000000000002");
    assert_int_equal(nl, 3); /* the model's head travels with it */
    assert_int_equal(m.n, 16);
    /* the same command again gives the same bytes */
    assert_int_equal(run(fm_cmd_mask, (const char *const[]){"mask", "random", "--model", fx->model, "--sparsity",
                                                             "0.4", "--seed", "9", "--out", fx->m2, NULL}),
                     0);
    assert_int_equal(fm_maskfile_read(fx->m2, &m2, &meta2, NULL, NULL, NULL), FM_OK);
    for (int k = 0; k < m.n; k++) assert_memory_equal(m.t[k].bits, m2.t[k].bits, (m.t[k].numel + 7) / 8);
    fm_mask_free(&m2);
    fm_maskfile_meta_free(&meta2);
    /* restricted to a glob and layers */
    assert_int_equal(run(fm_cmd_mask, (const char *const[]){"mask", "random", "--model", fx->model, "--sparsity",
                                                             "0.5", "--seed", "1", "--mask", "encoder.*.weight",
                                                             "--mask-layers", "1", "--out", fx->m2, NULL}),
                     0);
    assert_int_equal(fm_maskfile_read(fx->m2, &m2, &meta2, NULL, NULL, NULL), FM_OK);
    assert_int_equal(m2.n, 8); /* 6 matrices and 2 LayerNorm gains */
    assert_non_null(fm_mask_find(&m2, "encoder.layer.1.output.dense.weight"));
    fm_mask_free(&m2);
    fm_maskfile_meta_free(&meta2);
    fm_mask_free(&m);
    fm_maskfile_meta_free(&meta);
    /* bad options */
    assert_int_equal(run(fm_cmd_mask, (const char *const[]){"mask", "random", "--model", fx->model, "--sparsity",
                                                             "1.5", "--seed", "1", "--out", fx->m3, NULL}),
                     1);
    tu_assert_contains(fm_last_error(), "--sparsity");
    assert_int_equal(run(fm_cmd_mask, (const char *const[]){"mask", "random", "--model", fx->model, "--out", fx->m3,
                                                             NULL}),
                     1);
    assert_false(fm_file_exists(fx->m3));
    assert_int_equal(run(fm_cmd_mask, (const char *const[]){"mask", "nope", NULL}), 1);
}

/* mask apply: the directory loads, as any model, into exactly the weights a
 * masked load (fm_maskfile_load_model, what scoring a mask uses) gives. */
static void test_apply(void **state) {
    fixture *fx = *state;
    assert_int_equal(
        run(fm_cmd_mask, (const char *const[]){"mask", "apply", "--model", fx->model, "--mask", fx->m1, "--out", fx->out,
                                                NULL}),
        0);
    fm_model a, b, orig;
    fm_load_info info;
    assert_int_equal(fm_modeldir_load(fx->out, NULL, &a, &info), FM_OK);
    assert_true(info.head_present);
    assert_int_equal(a.cfg.num_labels, 3);
    fm_load_info_free(&info);
    fm_mask m;
    assert_int_equal(fm_maskfile_load_model(fx->model, fx->m1, &b, &m, NULL), FM_OK);
    assert_int_equal(a.lay.numel, b.lay.numel);
    assert_memory_equal(a.params, b.params, sizeof(float) * a.lay.numel);
    /* and those are the original weights times the mask */
    assert_int_equal(fm_modeldir_load(fx->model, NULL, &orig, NULL), FM_OK);
    size_t zeroed = 0;
    for (int k = 0; k < m.n; k++) {
        const fm_tensor *t = fm_layout_find(&orig.lay, m.t[k].name);
        for (size_t i = 0; i < t->numel; i++) {
            float want = fm_mask_get(&m.t[k], i) ? orig.params[t->offset + i] : 0.0f;
            zeroed += !fm_mask_get(&m.t[k], i);
            assert_true(a.params[t->offset + i] == want);
        }
    }
    assert_true(zeroed > 0);
    fm_mask_free(&m);
    fm_model_free(&orig);
    fm_model_free(&a);
    fm_model_free(&b);

    /* an existing output is kept without --force */
    char wpath[4200];
    snprintf(wpath, sizeof wpath, "%s/model.safetensors", fx->out);
    char *before;
    size_t nbefore;
    assert_int_equal(fm_read_file(wpath, &before, &nbefore), FM_OK);
    assert_int_equal(run(fm_cmd_mask, (const char *const[]){"mask", "apply", "--model", fx->model, "--mask", fx->m1,
                                                             "--out", fx->out, NULL}),
                     1);
    tu_assert_contains(fm_last_error(), "already exists");
    /* a mask over another model is refused, and the output stays */
    assert_int_equal(run(fm_cmd_mask, (const char *const[]){"mask", "apply", "--model", fx->model2, "--mask", fx->m1,
                                                             "--out", fx->out, "--force", NULL}),
                     1);
    tu_assert_contains(fm_last_error(), fx->m1);
    tu_assert_contains(fm_last_error(), "fingerprint");
    /* nor is the pre-trained model overwritten */
    assert_int_equal(run(fm_cmd_mask, (const char *const[]){"mask", "apply", "--model", fx->model, "--mask", fx->m1,
                                                             "--out", fx->model, "--force", NULL}),
                     1);
    tu_assert_contains(fm_last_error(), "is the model directory itself");
    char *after;
    size_t nafter;
    assert_int_equal(fm_read_file(wpath, &after, &nafter), FM_OK);
    assert_int_equal(nbefore, nafter);
    assert_memory_equal(before, after, nbefore);
    free(before);
    free(after);
}

static void test_export(void **state) {
    fixture *fx = *state;
    fm_mask m;
    fm_maskfile_meta meta;
    float *hw, *hb;
    int nl;
    assert_int_equal(fm_maskfile_read(fx->m1, &m, &meta, &hw, &hb, &nl), FM_OK);
    const char *dts[] = {"u8", "f32", "bool"};
    const fm_st_dtype want[] = {FM_ST_U8, FM_ST_F32, FM_ST_BOOL};
    for (int d = 0; d < 3; d++) {
        assert_int_equal(run(fm_cmd_mask, (const char *const[]){"mask", "export", fx->m1, "--out", fx->m2, "--dtype",
                                                                 dts[d], NULL}),
                         0);
        fm_st_file f;
        assert_int_equal(fm_st_open(&f, fx->m2), FM_OK);
        assert_int_equal(f.n, m.n + 2);
        assert_string_equal(fm_st_meta_get(&f, "mode"), "random");
        for (int k = 0; k < m.n; k++) {
            char name[128];
            fm_mask_hf_name(name, m.t[k].name);
            const fm_st_tensor *t = fm_st_find(&f, name);
            assert_non_null(t);
            assert_int_equal(t->dtype, want[d]);
            assert_int_equal(t->ndim, 2);
            assert_int_equal(t->shape[0], m.t[k].shape[0]);
            assert_int_equal(t->shape[1], m.t[k].shape[1]);
            for (size_t i = 0; i < m.t[k].numel; i++) {
                int v;
                if (want[d] == FM_ST_F32) {
                    float x;
                    memcpy(&x, t->data + 4 * i, 4);
                    assert_true(x == 0.0f || x == 1.0f);
                    v = x == 1.0f;
                } else {
                    assert_true(t->data[i] <= 1);
                    v = t->data[i];
                }
                assert_int_equal(v, fm_mask_get(&m.t[k], i));
            }
        }
        const fm_st_tensor *w = fm_st_find(&f, "classifier.weight");
        assert_non_null(w);
        assert_memory_equal(w->data, hw, sizeof(float) * 3 * 16);
        fm_st_close(&f);
    }
    assert_int_equal(run(fm_cmd_mask, (const char *const[]){"mask", "export", fx->m1, "--out", fx->m3, "--dtype",
                                                             "f16", NULL}),
                     1);
    tu_assert_contains(fm_last_error(), "--dtype");
    assert_false(fm_file_exists(fx->m3));
    free(hw);
    free(hb);
    fm_mask_free(&m);
    fm_maskfile_meta_free(&meta);
}

static void test_stats_overlap_distance(void **state) {
    fixture *fx = *state;
    assert_int_equal(run(fm_cmd_mask, (const char *const[]){"mask", "stats", fx->m1, NULL}), 0);
    assert_int_equal(run(fm_cmd_mask, (const char *const[]){"mask", "stats", fx->m1, "--json", NULL}), 0);
    assert_int_equal(run(fm_cmd_mask, (const char *const[]){"mask", "stats", NULL}), 1);
    assert_int_equal(run(fm_cmd_mask, (const char *const[]){"mask", "random", "--model", fx->model, "--sparsity",
                                                             "0.7", "--seed", "3", "--out", fx->m2, NULL}),
                     0);
    assert_int_equal(run(fm_cmd_mask, (const char *const[]){"mask", "overlap", fx->m1, fx->m2, fx->m1, NULL}), 0);
    assert_int_equal(run(fm_cmd_mask, (const char *const[]){"mask", "overlap", fx->m1, fx->m2, "--json", NULL}), 0);
    assert_int_equal(run(fm_cmd_mask, (const char *const[]){"mask", "overlap", fx->m1, NULL}), 1);
    /* masks over another model */
    assert_int_equal(run(fm_cmd_mask, (const char *const[]){"mask", "random", "--model", fx->model2, "--sparsity",
                                                             "0.7", "--seed", "3", "--out", fx->m3, NULL}),
                     0);
    assert_int_equal(run(fm_cmd_mask, (const char *const[]){"mask", "overlap", fx->m1, fx->m3, NULL}), 1);
    tu_assert_contains(fm_last_error(), "are masks over different pre-trained models");
    /* over other tensors of the same model */
    assert_int_equal(run(fm_cmd_mask, (const char *const[]){"mask", "random", "--model", fx->model, "--sparsity",
                                                             "0.7", "--seed", "3", "--mask", "encoder.*.weight",
                                                             "--out", fx->m3, NULL}),
                     0);
    assert_int_equal(run(fm_cmd_mask, (const char *const[]){"mask", "overlap", fx->m1, fx->m3, NULL}), 1);
    tu_assert_contains(fm_last_error(), "(first) and");
    tu_assert_contains(fm_last_error(), "tensor 'embeddings.word_embeddings.weight' is masked in the first mask");
    /* distance */
    assert_int_equal(run(fm_cmd_distance, (const char *const[]){"distance", fx->model, fx->model2, NULL}), 0);
    assert_int_equal(
        run(fm_cmd_distance, (const char *const[]){"distance", fx->model, fx->model2, "--json", "--seed", "4", NULL}),
        0);
    assert_int_equal(run(fm_cmd_distance, (const char *const[]){"distance", fx->model, NULL}), 1);
    assert_int_equal(run(fm_cmd_distance, (const char *const[]){"distance", fx->model, fx->m1, NULL}), 1);
    assert_int_equal(
        run(fm_cmd_distance, (const char *const[]){"distance", fx->model, fx->model2, "--tensors", "x*", NULL}), 1);
    tu_assert_contains(fm_last_error(), "matches 'x*'");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_random_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_export, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats_overlap_distance, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
