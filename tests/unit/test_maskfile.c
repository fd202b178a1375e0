/* test_maskfile.c: mask files: CRC-32C known answers, an exact round trip of
 * bits, head and metadata, loading a model through a mask, and a rejection
 * test for every malformed file the reader knows (each message must name the
 * file and the tensor). */
#define _GNU_SOURCE
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

#include "fileio.h"
#include "fm.h"
#include "mask.h"
#include "maskfile.h"
#include "model.h"
#include "modeldir.h"
#include "params.h"
#include "safetensors.h"

typedef struct {
    char *dir;
    char path[4096];  /* dir/m.safetensors */
    char model[4096]; /* dir/model */
    fm_config c;      /* a small BERT with a 3-label head */
    fm_layout lay;
    float *p;
    fm_mask m;        /* default glob, pseudo-random bits */
} fixture;

static void small_config(fm_config *c) {
    fm_config_default(c);
    c->vocab_size = 30;
    c->hidden_size = 8;
    c->num_attention_heads = 2;
    c->intermediate_size = 16;
    c->num_hidden_layers = 2;
    c->max_position_embeddings = 16;
    c->type_vocab_size = 2;
    c->num_labels = 3;
}

static uint64_t lcg(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

static int setup(void **state) {
    fixture *fx = calloc(1, sizeof *fx);
    fx->dir = tu_mkdtemp();
    snprintf(fx->path, sizeof fx->path, "%s/m.safetensors", fx->dir);
    snprintf(fx->model, sizeof fx->model, "%s/model", fx->dir);
    small_config(&fx->c);
    fm_layout_build(&fx->lay, &fx->c);
    fx->p = fm_xalloc_floats(fx->lay.numel);
    for (size_t i = 0; i < fx->lay.numel; i++) fx->p[i] = (float)((int)((i * 37) % 61) - 30) / 64.0f + 1.0f / 1024;
    assert_int_equal(fm_mask_create(&fx->m, &fx->lay, FM_MASK_DEFAULT_GLOB, NULL), FM_OK);
    uint64_t s = 7;
    for (int k = 0; k < fx->m.n; k++) {
        for (size_t i = 0; i < fx->m.t[k].numel; i++) fm_mask_set(&fx->m.t[k], i, lcg(&s) % 3 != 0);
        fm_mask_count(&fx->m.t[k]);
    }
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fixture *fx = *state;
    tu_rmtree(fx->dir);
    free(fx->dir);
    fm_mask_free(&fx->m);
    fm_free_aligned(fx->p);
    fm_layout_free(&fx->lay);
    free(fx);
    return 0;
}

static void meta_fill(fm_maskfile_meta *meta, uint64_t fp) {
    fm_maskfile_meta_init(meta);
    snprintf(meta->task, sizeof meta->task, "SST-2");
    snprintf(meta->mode, sizeof meta->mode, "supermask");
    snprintf(meta->ste, sizeof meta->ste, "sigmoid");
    meta->seed = 18446744073709551615ull;
    meta->init_sparsity = 0.1;
    meta->model_fingerprint = fp;
    assert_int_equal(fm_maskfile_meta_set(meta, "job", "sst2-s0.1"), FM_OK);
    assert_int_equal(fm_maskfile_meta_set(meta, "note", "h\xc3\xa9 \"q\""), FM_OK);
    assert_int_equal(fm_maskfile_meta_set(meta, "job", "sst2-s0.10"), FM_OK); /* replaces */
}

/* ---- CRC-32C ---- */

static void test_crc32c_known_answers(void **state) {
    (void)state;
    assert_int_equal(fm_crc32c("123456789", 9), 0xe3069283u);
    assert_int_equal(fm_crc32c("", 0), 0u);
    /* RFC 3720 B.4's iSCSI vectors (the CRC's value, not its wire bytes) */
    unsigned char b[32];
    memset(b, 0, sizeof b);
    assert_int_equal(fm_crc32c(b, 32), 0x8a9136aau);
    memset(b, 0xff, sizeof b);
    assert_int_equal(fm_crc32c(b, 32), 0x62a8ab43u);
    for (int i = 0; i < 32; i++) b[i] = (unsigned char)i;
    assert_int_equal(fm_crc32c(b, 32), 0x46dd794eu);
    for (int i = 0; i < 32; i++) b[i] = (unsigned char)(31 - i);
    assert_int_equal(fm_crc32c(b, 32), 0x113fdb5cu);
}

static void test_hf_name(void **state) {
    (void)state;
    char out[128];
    fm_mask_hf_name(out, "encoder.layer.0.attention.self.query.weight");
    assert_string_equal(out, "bert.encoder.layer.0.attention.self.query.weight");
    fm_mask_hf_name(out, "cls.predictions.transform.dense.weight");
    assert_string_equal(out, "cls.predictions.transform.dense.weight");
}

static void test_meta_reserved(void **state) {
    (void)state;
    fm_maskfile_meta meta;
    fm_maskfile_meta_init(&meta);
    assert_true(isnan(meta.init_sparsity));
    assert_int_equal(fm_maskfile_meta_set(&meta, "tensors", "x"), FM_ERR);
    tu_assert_contains(fm_last_error(), "'tensors'");
    assert_int_equal(fm_maskfile_meta_set(&meta, "seed", "1"), FM_ERR);
    assert_null(fm_maskfile_meta_get(&meta, "seed"));
    fm_maskfile_meta_free(&meta);
}

/* ---- round trip ---- */

static void test_roundtrip(void **state) {
    fixture *fx = *state;
    fm_maskfile_meta meta;
    meta_fill(&meta, 0x0123456789abcdefull);
    assert_int_equal(fm_maskfile_write(fx->path, &fx->m, &meta, &fx->lay, fx->p), FM_OK);
    fm_maskfile_meta_free(&meta);

    fm_mask r;
    float *hw, *hb;
    int nl;
    assert_int_equal(fm_maskfile_read(fx->path, &r, &meta, &hw, &hb, &nl), FM_OK);
    assert_int_equal(r.n, fx->m.n);
    for (int k = 0; k < r.n; k++) {
        const fm_mask_tensor *a = &fx->m.t[k], *b = &r.t[k]; /* same order */
        assert_string_equal(a->name, b->name);
        assert_int_equal(a->ndim, b->ndim);
        assert_int_equal(a->shape[0], b->shape[0]);
        if (a->ndim == 2) assert_int_equal(a->shape[1], b->shape[1]);
        assert_int_equal(a->numel, b->numel);
        assert_int_equal(a->ones, b->ones);
        assert_memory_equal(a->bits, b->bits, (a->numel + 7) / 8);
    }
    assert_int_equal(nl, 3);
    assert_int_equal(meta.head_in, 8);
    const fm_tensor *w = fm_layout_find(&fx->lay, "classifier.weight"), *b = fm_layout_find(&fx->lay, "classifier.bias");
    assert_memory_equal(hw, fx->p + w->offset, sizeof(float) * 24);
    assert_memory_equal(hb, fx->p + b->offset, sizeof(float) * 3);
    assert_string_equal(meta.task, "SST-2");
    assert_string_equal(meta.mode, "supermask");
    assert_string_equal(meta.ste, "sigmoid");
    assert_int_equal(meta.seed, 18446744073709551615ull);
    assert_true(meta.init_sparsity == 0.1);
    assert_int_equal(meta.model_fingerprint, 0x0123456789abcdefull);
    assert_string_equal(meta.path, fx->path);
    assert_int_equal(meta.nextra, 2);
    assert_string_equal(fm_maskfile_meta_get(&meta, "job"), "sst2-s0.10");
    assert_string_equal(fm_maskfile_meta_get(&meta, "note"), "h\xc3\xa9 \"q\"");
    free(hw);
    free(hb);
    fm_mask_free(&r);
    fm_maskfile_meta_free(&meta);

    /* the same bytes parsed from memory; cut short, refused */
    char *buf;
    size_t len;
    assert_int_equal(fm_read_file(fx->path, &buf, &len), FM_OK);
    assert_int_equal(fm_maskfile_parse(buf, len, "mem", &r, &meta, NULL, NULL, &nl), FM_OK);
    assert_int_equal(r.n, fx->m.n);
    assert_memory_equal(r.t[r.n - 1].bits, fx->m.t[r.n - 1].bits, (fx->m.t[r.n - 1].numel + 7) / 8);
    assert_string_equal(meta.path, "mem");
    assert_int_equal(nl, 3);
    fm_mask_free(&r);
    fm_maskfile_meta_free(&meta);
    assert_int_equal(fm_maskfile_parse(buf, len - 1, "mem", &r, &meta, NULL, NULL, &nl), FM_ERR);
    tu_assert_contains(fm_last_error(), "mem");
    assert_null(r.t);
    free(buf);

    /* what a plain safetensors reader sees */
    fm_st_file f;
    assert_int_equal(fm_st_open(&f, fx->path), FM_OK);
    assert_int_equal(f.n, fx->m.n + 2);
    const fm_st_tensor *q = fm_st_find(&f, "bert.encoder.layer.1.attention.self.query.weight");
    assert_non_null(q);
    assert_int_equal(q->dtype, FM_ST_U8);
    assert_int_equal(q->ndim, 1);
    assert_int_equal(q->shape[0], 8);
    assert_string_equal(fm_st_meta_get(&f, "format"), "finemask-mask");
    assert_string_equal(fm_st_meta_get(&f, "model_fingerprint"), "0123456789abcdef");
    assert_string_equal(fm_st_meta_get(&f, "init_sparsity"), "0.10000000000000001");
    assert_string_equal(fm_st_meta_get(&f, "seed"), "18446744073709551615");
    const fm_mask_tensor *qm = fm_mask_find(&fx->m, "encoder.layer.1.attention.self.query.weight");
    char want[160];
    snprintf(want, sizeof want,
             "\"bert.encoder.layer.1.attention.self.query.weight\":{\"shape\":[8,8],\"ones\":%zu,\"crc32c\":\"%08" PRIx32
             "\"}",
             qm->ones, fm_crc32c(qm->bits, 8));
    tu_assert_contains(fm_st_meta_get(&f, "tensors"), want);
    fm_st_close(&f);
}

static void test_roundtrip_no_head_odd_shape(void **state) {
    fixture *fx = *state;
    /* a mask without a layout or head, with sizes that are not multiples of 8 */
    fm_mask m = {.t = calloc(2, sizeof(fm_mask_tensor)), .n = 2};
    snprintf(m.t[0].name, sizeof m.t[0].name, "a.weight");
    m.t[0].ndim = 2;
    m.t[0].shape[0] = 3;
    m.t[0].shape[1] = 5;
    m.t[0].numel = 15;
    m.t[0].bits = calloc(2, 1);
    m.t[0].bits[0] = 0xa5;
    m.t[0].bits[1] = 0x41;
    snprintf(m.t[1].name, sizeof m.t[1].name, "empty");
    m.t[1].ndim = 1;
    m.t[1].numel = 0;
    m.t[1].bits = calloc(1, 1);
    fm_maskfile_meta meta;
    fm_maskfile_meta_init(&meta);
    assert_int_equal(fm_maskfile_write(fx->path, &m, &meta, NULL, NULL), FM_OK);
    fm_mask r;
    float *hw = (float *)1, *hb = (float *)1;
    int nl = -1;
    assert_int_equal(fm_maskfile_read(fx->path, &r, &meta, &hw, &hb, &nl), FM_OK);
    assert_null(hw);
    assert_null(hb);
    assert_int_equal(nl, 0);
    assert_int_equal(meta.head_in, 0);
    assert_true(isnan(meta.init_sparsity));
    assert_string_equal(meta.task, "");
    assert_int_equal(r.n, 2);
    assert_int_equal(r.t[0].ones, 6);
    assert_int_equal(r.t[0].bits[0], 0xa5);
    assert_int_equal(r.t[0].bits[1], 0x41);
    assert_int_equal(r.t[1].numel, 0);
    assert_int_equal(r.t[1].ones, 0);
    fm_mask_free(&r);
    fm_maskfile_meta_free(&meta);
    /* a stray bit is refused by the writer too, and nothing is written */
    m.t[0].bits[1] |= 0x80;
    char other[4200];
    snprintf(other, sizeof other, "%s/other.safetensors", fx->dir);
    assert_int_equal(fm_maskfile_write(other, &m, &meta, NULL, NULL), FM_ERR);
    tu_assert_contains(fm_last_error(), other);
    tu_assert_contains(fm_last_error(), "'a.weight'");
    tu_assert_contains(fm_last_error(), "past its 15 entries");
    assert_false(fm_file_exists(other));
    fm_mask_free(&m);
}

static void reject_write(void **state) {
    fixture *fx = *state;
    fm_maskfile_meta meta;
    fm_maskfile_meta_init(&meta);
    /* a shape that disagrees with the layout */
    fx->m.t[0].shape[0] = fx->m.t[0].shape[1];
    fx->m.t[0].shape[1] = (int64_t)fx->m.t[0].numel / fx->m.t[0].shape[0];
    assert_int_equal(fm_maskfile_write(fx->path, &fx->m, &meta, &fx->lay, NULL), FM_ERR);
    tu_assert_contains(fm_last_error(), fx->path);
    tu_assert_contains(fm_last_error(), fx->m.t[0].name);
    tu_assert_contains(fm_last_error(), "but the model's tensor is");
    assert_false(fm_file_exists(fx->path));
    /* a masked task head */
    fm_mask h;
    assert_int_equal(fm_mask_create(&h, &fx->lay, "classifier.weight", NULL), FM_OK);
    assert_int_equal(fm_maskfile_write(fx->path, &h, &meta, &fx->lay, fx->p), FM_ERR);
    tu_assert_contains(fm_last_error(), "'classifier.weight'");
    tu_assert_contains(fm_last_error(), "cannot be masked");
    assert_false(fm_file_exists(fx->path));
    fm_mask_free(&h);
}

/* ---- loading a model through a mask ---- */

static void test_load_model(void **state) {
    fixture *fx = *state;
    assert_int_equal(fm_modeldir_save(fx->model, &fx->c, &fx->lay, fx->p, NULL), FM_OK);
    /* the mask's head differs from the directory's */
    float *head = fm_xalloc_floats(fx->lay.numel);
    memcpy(head, fx->p, sizeof(float) * fx->lay.numel);
    const fm_tensor *w = fm_layout_find(&fx->lay, "classifier.weight"), *b = fm_layout_find(&fx->lay, "classifier.bias");
    for (size_t i = 0; i < w->numel; i++) head[w->offset + i] = 0.25f * (float)i;
    for (size_t i = 0; i < b->numel; i++) head[b->offset + i] = -1.5f * (float)i;
    fm_maskfile_meta meta;
    meta_fill(&meta, fm_params_fingerprint(&fx->lay, fx->p));
    assert_int_equal(fm_maskfile_write(fx->path, &fx->m, &meta, &fx->lay, head), FM_OK);
    fm_maskfile_meta_free(&meta);

    fm_model model;
    fm_mask r;
    assert_int_equal(fm_maskfile_load_model(fx->model, fx->path, &model, &r, &meta), FM_OK);
    assert_int_equal(model.cfg.num_labels, 3);
    assert_string_equal(meta.task, "SST-2");
    size_t zeroed = 0;
    for (int i = 0; i < fx->lay.n; i++) {
        const fm_tensor *t = &fx->lay.t[i];
        const fm_mask_tensor *mt = fm_mask_find(&r, t->name);
        for (size_t j = 0; j < t->numel; j++) {
            float want = (t->flags & FM_T_HEAD) ? head[t->offset + j]
                         : mt && !fm_mask_get(mt, j) ? 0.0f
                                                     : fx->p[t->offset + j];
            if (mt && !fm_mask_get(mt, j)) zeroed++;
            assert_true(model.params[t->offset + j] == want);
        }
    }
    assert_true(zeroed > 100);
    fm_mask_free(&r);
    fm_maskfile_meta_free(&meta);
    fm_model_free(&model);

    /* a foreign model */
    fx->p[fm_layout_find(&fx->lay, "encoder.layer.0.output.dense.bias")->offset] += 1.0f;
    assert_int_equal(fm_modeldir_save(fx->model, &fx->c, &fx->lay, fx->p, NULL), FM_OK);
    assert_int_equal(fm_maskfile_load_model(fx->model, fx->path, &model, NULL, NULL), FM_ERR);
    tu_assert_contains(fm_last_error(), fx->path);
    tu_assert_contains(fm_last_error(), "fingerprint");
    assert_null(model.params);
    fm_free_aligned(head);
}

static void reject_check_model(void **state) {
    fixture *fx = *state;
    fm_maskfile_meta meta;
    meta_fill(&meta, 42);
    meta.path = fm_xstrdup("x.safetensors");
    assert_int_equal(fm_maskfile_check_model(&meta, 42, &fx->lay, &fx->m), FM_OK);
    assert_int_equal(fm_maskfile_check_model(&meta, 43, &fx->lay, &fx->m), FM_ERR);
    tu_assert_contains(fm_last_error(), "x.safetensors: the mask was trained over a model with fingerprint "
                                        "000000000000002a, but this model's is 000000000000002b");
    /* another model size */
    fm_config c = fx->c;
    c.intermediate_size = 32;
    fm_layout lay;
    fm_layout_build(&lay, &c);
    assert_int_equal(fm_maskfile_check_model(&meta, 42, &lay, &fx->m), FM_ERR);
    tu_assert_contains(fm_last_error(), "x.safetensors: tensor 'encoder.layer.0.intermediate.dense.weight': mask "
                                        "shape [16, 8], but the model's tensor is [32, 8]");
    fm_layout_free(&lay);
    /* fewer layers */
    c = fx->c;
    c.num_hidden_layers = 1;
    fm_layout_build(&lay, &c);
    assert_int_equal(fm_maskfile_check_model(&meta, 42, &lay, &fx->m), FM_ERR);
    tu_assert_contains(fm_last_error(), "tensor 'encoder.layer.1.");
    tu_assert_contains(fm_last_error(), "the model has no such tensor");
    fm_layout_free(&lay);
    /* a head of the wrong width */
    meta.head_in = 16;
    assert_int_equal(fm_maskfile_check_model(&meta, 42, &fx->lay, &fx->m), FM_ERR);
    tu_assert_contains(fm_last_error(), "'classifier.weight': expected width 8");
    fm_maskfile_meta_free(&meta);
}

/* ---- malformed files, written by hand ---- */

/* Write path with tensors t[0..n) and the metadata a valid file has, with the
 * given "tensors" description and fingerprint; `drop` names a metadata key to
 * leave out and `over` (key=value) one to replace. */
static void write_raw(const char *path, const fm_st_entry *t, int n, const char *tensors, const char *drop,
                      const char *okey, const char *oval) {
    fm_st_meta md[8] = {
        {"format", "finemask-mask"}, {"version", "1"},  {"tensors", (char *)tensors},
        {"model_fingerprint", "00000000000000ff"}, {"task", "RTE"}, {"seed", "3"},
    };
    int nm = 6, out = 0;
    for (int i = 0; i < nm; i++) {
        if (drop && strcmp(md[i].key, drop) == 0) continue;
        if (okey && strcmp(md[i].key, okey) == 0) md[i].value = (char *)oval;
        md[out++] = md[i];
    }
    if (okey && !strcmp(okey, "init_sparsity")) md[out++] = (fm_st_meta){"init_sparsity", (char *)oval};
    assert_int_equal(fm_st_write(path, t, n, md, out), FM_OK);
}

/* The description of one packed tensor of the given shape. */
static char *describe(const char *name, const char *shape, long long ones, uint32_t crc) {
    static char buf[4][512];
    static int k;
    char *b = buf[k++ % 4];
    snprintf(b, 512, "\"%s\":{\"shape\":%s,\"ones\":%lld,\"crc32c\":\"%08" PRIx32 "\"}", name, shape, ones, crc);
    return b;
}

/* Expect reading path to fail with a message holding path and each needle. */
static void expect_reject(const char *path, const char *n1, const char *n2) {
    fm_mask m;
    fm_maskfile_meta meta;
    float *hw = (float *)1, *hb = (float *)1;
    int nl = -1;
    assert_int_equal(fm_maskfile_read(path, &m, &meta, &hw, &hb, &nl), FM_ERR);
    tu_assert_contains(fm_last_error(), path);
    if (n1) tu_assert_contains(fm_last_error(), n1);
    if (n2) tu_assert_contains(fm_last_error(), n2);
    assert_null(m.t);
    assert_null(meta.path);
    assert_null(hw);
    assert_null(hb);
}

static void reject_malformed(void **state) {
    fixture *fx = *state;
    const char *p = fx->path;
    uint8_t a[2] = {0xa5, 0x41}; /* 15 entries [3, 5], 6 ones */
    uint32_t crc = fm_crc32c(a, 2);
    fm_st_entry e[4] = {{"bert.a.weight", FM_ST_U8, 1, {2}, a}};
    char tens[2048];

    /* the valid file first: the cases below each break one thing */
    snprintf(tens, sizeof tens, "{%s}", describe("bert.a.weight", "[3,5]", 6, crc));
    write_raw(p, e, 1, tens, NULL, NULL, NULL);
    fm_mask m;
    fm_maskfile_meta meta;
    assert_int_equal(fm_maskfile_read(p, &m, &meta, NULL, NULL, NULL), FM_OK);
    assert_string_equal(m.t[0].name, "a.weight");
    assert_int_equal(meta.model_fingerprint, 0xff);
    assert_int_equal(meta.seed, 3);
    assert_string_equal(meta.task, "RTE");
    fm_mask_free(&m);
    fm_maskfile_meta_free(&meta);

    /* wrong CRC */
    snprintf(tens, sizeof tens, "{%s}", describe("bert.a.weight", "[3,5]", 6, crc ^ 4));
    write_raw(p, e, 1, tens, NULL, NULL, NULL);
    expect_reject(p, "tensor 'bert.a.weight': CRC-32C mismatch", NULL);
    /* a flipped data bit (with the count adjusted) */
    uint8_t flip[2] = {0xa4, 0x41};
    fm_st_entry ef = {"bert.a.weight", FM_ST_U8, 1, {2}, flip};
    snprintf(tens, sizeof tens, "{%s}", describe("bert.a.weight", "[3,5]", 5, crc));
    write_raw(p, &ef, 1, tens, NULL, NULL, NULL);
    expect_reject(p, "tensor 'bert.a.weight': CRC-32C mismatch", NULL);
    /* wrong shape: more bytes than the shape needs */
    snprintf(tens, sizeof tens, "{%s}", describe("bert.a.weight", "[2,4]", 6, crc));
    write_raw(p, e, 1, tens, NULL, NULL, NULL);
    expect_reject(p, "tensor 'bert.a.weight': expected U8 [1]", "found U8 [2]");
    /* the packed tensor stored with another dtype */
    fm_st_entry e16 = {"bert.a.weight", FM_ST_I16, 1, {1}, a};
    snprintf(tens, sizeof tens, "{%s}", describe("bert.a.weight", "[3,5]", 6, crc));
    write_raw(p, &e16, 1, tens, NULL, NULL, NULL);
    expect_reject(p, "tensor 'bert.a.weight': expected U8 [2]", "found I16 [1]");
    /* bad shape descriptions */
    snprintf(tens, sizeof tens, "{%s}", describe("bert.a.weight", "[3,-5]", 6, crc));
    write_raw(p, e, 1, tens, NULL, NULL, NULL);
    expect_reject(p, "tensor 'bert.a.weight': metadata 'shape'", NULL);
    snprintf(tens, sizeof tens, "{%s}", describe("bert.a.weight", "[1,3,5]", 6, crc));
    write_raw(p, e, 1, tens, NULL, NULL, NULL);
    expect_reject(p, "tensor 'bert.a.weight': metadata 'shape'", NULL);
    /* stray bits past numel (CRC and count consistent with them) */
    uint8_t stray[2] = {0xa5, 0xc1};
    fm_st_entry es = {"bert.a.weight", FM_ST_U8, 1, {2}, stray};
    snprintf(tens, sizeof tens, "{%s}", describe("bert.a.weight", "[3,5]", 7, fm_crc32c(stray, 2)));
    write_raw(p, &es, 1, tens, NULL, NULL, NULL);
    expect_reject(p, "tensor 'bert.a.weight': bits are set past its 15 entries", NULL);
    /* wrong count of ones */
    snprintf(tens, sizeof tens, "{%s}", describe("bert.a.weight", "[3,5]", 7, crc));
    write_raw(p, e, 1, tens, NULL, NULL, NULL);
    expect_reject(p, "tensor 'bert.a.weight': metadata 'ones' says 7 kept entries, the bits hold 6", NULL);
    snprintf(tens, sizeof tens, "{\"bert.a.weight\":{\"shape\":[3,5],\"ones\":\"6\",\"crc32c\":\"%08" PRIx32 "\"}}",
             crc);
    write_raw(p, e, 1, tens, NULL, NULL, NULL);
    expect_reject(p, "tensor 'bert.a.weight': metadata 'ones'", NULL);
    snprintf(tens, sizeof tens, "{\"bert.a.weight\":{\"shape\":[3,5],\"ones\":6,\"crc32c\":\"%07" PRIx32 "\"}}",
             crc & 0xfffffff);
    write_raw(p, e, 1, tens, NULL, NULL, NULL);
    expect_reject(p, "tensor 'bert.a.weight': metadata 'crc32c'", NULL);
    /* an unknown tensor */
    uint8_t u[1] = {1};
    fm_st_entry e2[2] = {e[0], {"bert.b.weight", FM_ST_U8, 1, {1}, u}};
    snprintf(tens, sizeof tens, "{%s}", describe("bert.a.weight", "[3,5]", 6, crc));
    write_raw(p, e2, 2, tens, NULL, NULL, NULL);
    expect_reject(p, "tensor 'bert.b.weight' (U8) is not described", NULL);
    float junk[2] = {1, 2};
    fm_st_entry e3[2] = {e[0], {"bert.pooler.dense.bias", FM_ST_F32, 1, {2}, junk}};
    write_raw(p, e3, 2, tens, NULL, NULL, NULL);
    expect_reject(p, "tensor 'bert.pooler.dense.bias' (F32) is not described", NULL);
    /* a described tensor missing */
    snprintf(tens, sizeof tens, "{%s,%s}", describe("bert.a.weight", "[3,5]", 6, crc),
             describe("bert.c.weight", "[4]", 1, fm_crc32c(u, 1)));
    write_raw(p, e, 1, tens, NULL, NULL, NULL);
    expect_reject(p, "tensor 'bert.c.weight': described in metadata 'tensors' but missing", NULL);
    /* the same tensor with and without "bert." */
    fm_st_entry e4[2] = {e[0], {"a.weight", FM_ST_U8, 1, {2}, a}};
    snprintf(tens, sizeof tens, "{%s,%s}", describe("bert.a.weight", "[3,5]", 6, crc),
             describe("a.weight", "[3,5]", 6, crc));
    write_raw(p, e4, 2, tens, NULL, NULL, NULL);
    expect_reject(p, "tensor 'a.weight' is stored twice", NULL);
    /* metadata */
    snprintf(tens, sizeof tens, "{%s}", describe("bert.a.weight", "[3,5]", 6, crc));
    write_raw(p, e, 1, tens, "format", NULL, NULL);
    expect_reject(p, "metadata 'format': expected \"finemask-mask\", found nothing", NULL);
    write_raw(p, e, 1, tens, NULL, "version", "2");
    expect_reject(p, "metadata 'version': expected \"1\", found \"2\"", NULL);
    write_raw(p, e, 1, tens, "model_fingerprint", NULL, NULL);
    expect_reject(p, "metadata 'model_fingerprint': expected 16 hex digits", NULL);
    write_raw(p, e, 1, tens, NULL, "model_fingerprint", "00000000000000fg");
    expect_reject(p, "metadata 'model_fingerprint': expected 16 hex digits", NULL);
    write_raw(p, e, 1, tens, NULL, "seed", "-1");
    expect_reject(p, "metadata 'seed'", NULL);
    write_raw(p, e, 1, tens, NULL, "init_sparsity", "1.5");
    expect_reject(p, "metadata 'init_sparsity'", NULL);
    write_raw(p, e, 1, "[1]", NULL, NULL, NULL);
    expect_reject(p, "metadata 'tensors': expected a JSON object", NULL);
    write_raw(p, e, 1, "{\"bert.a.weight\": 1", NULL, NULL, NULL);
    expect_reject(p, "metadata 'tensors': expected a JSON object", NULL);
    write_raw(p, e, 1, tens, "tensors", NULL, NULL);
    expect_reject(p, "metadata 'tensors' is missing", NULL);
    /* the head: half of it, or the wrong dtype or shape */
    float hw[6] = {1, 2, 3, 4, 5, 6}, hb[3] = {7, 8, 9};
    uint16_t h16[6] = {0};
    fm_st_entry eh[3] = {e[0], {"classifier.weight", FM_ST_F32, 2, {3, 2}, hw}, {"classifier.bias", FM_ST_F32, 1, {3}, hb}};
    write_raw(p, eh, 2, tens, NULL, NULL, NULL);
    expect_reject(p, "tensor 'classifier.bias': the task head needs both", NULL);
    eh[2].shape[0] = 2;
    write_raw(p, eh, 3, tens, NULL, NULL, NULL);
    expect_reject(p, "tensor 'classifier.bias': expected F32 [3], found F32 [2]", NULL);
    eh[2].shape[0] = 3;
    eh[1].dtype = FM_ST_F16;
    eh[1].data = h16;
    write_raw(p, eh, 3, tens, NULL, NULL, NULL);
    expect_reject(p, "tensor 'classifier.weight': expected F32 (num_labels, hidden), found F16 [3, 2]", NULL);
    /* and the good head reads */
    eh[1].dtype = FM_ST_F32;
    eh[1].data = hw;
    write_raw(p, eh, 3, tens, NULL, NULL, NULL);
    float *rw, *rb;
    int nl;
    assert_int_equal(fm_maskfile_read(p, &m, &meta, &rw, &rb, &nl), FM_OK);
    assert_int_equal(nl, 3);
    assert_int_equal(meta.head_in, 2);
    assert_memory_equal(rw, hw, sizeof hw);
    assert_memory_equal(rb, hb, sizeof hb);
    free(rw);
    free(rb);
    fm_mask_free(&m);
    fm_maskfile_meta_free(&meta);
    /* not a safetensors file at all, or missing */
    assert_int_equal(tu_write_file(p, "hello", 5), 0);
    expect_reject(p, NULL, NULL);
    unlink(p);
    expect_reject(p, NULL, NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_known_answers),
        cmocka_unit_test(test_hf_name),
        cmocka_unit_test(test_meta_reserved),
        cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roundtrip_no_head_odd_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(reject_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_model, setup, teardown),
        cmocka_unit_test_setup_teardown(reject_check_model, setup, teardown),
        cmocka_unit_test_setup_teardown(reject_malformed, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
