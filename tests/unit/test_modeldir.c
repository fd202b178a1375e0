/* test_modeldir.c: config.json, loading and saving model directories, the
 * fingerprint, and the init / inspect commands. */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "cli.h"
#include "fileio.h"
#include "fm.h"
#include "hfconfig.h"
#include "model.h"
#include "modeldir.h"
#include "params.h"
#include "safetensors.h"

typedef struct {
    char *dir;
    char st[4096];   /* dir/model.safetensors */
    char json[4096]; /* dir/config.json */
    fm_config c;     /* a small BERT with a 3-label head */
    fm_layout lay;
    float *p;        /* params with a fixed pattern, every value exact in F16 and BF16 */
} fixture;

static void small_config(fm_config *c) {
    fm_config_default(c);
    c->vocab_size = 32;
    c->hidden_size = 8;
    c->num_attention_heads = 2;
    c->intermediate_size = 16;
    c->num_hidden_layers = 2;
    c->max_position_embeddings = 16;
    c->type_vocab_size = 2;
    c->num_labels = 3;
}

static void fill_pattern(const fm_layout *lay, float *p, int salt) {
    for (size_t i = 0; i < lay->numel; i++) p[i] = (float)((int)((i * 37 + (size_t)salt) % 61) - 30) / 64.0f;
}

static int setup(void **state) {
    fixture *fx = calloc(1, sizeof *fx);
    fx->dir = tu_mkdtemp();
    snprintf(fx->st, sizeof fx->st, "%s/model.safetensors", fx->dir);
    snprintf(fx->json, sizeof fx->json, "%s/config.json", fx->dir);
    small_config(&fx->c);
    fm_layout_build(&fx->lay, &fx->c);
    fx->p = fm_xalloc_floats(fx->lay.numel);
    fill_pattern(&fx->lay, fx->p, 0);
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fixture *fx = *state;
    tu_rmtree(fx->dir);
    free(fx->dir);
    fm_free_aligned(fx->p);
    fm_layout_free(&fx->lay);
    free(fx);
    return 0;
}

/* Entries for every layout tensor with HF names, as given dtype (F32 data
 * points into p; F16/BF16 data is converted into bufs, freed by the caller). */
typedef struct {
    fm_st_entry e[128];
    char names[128][160];
    void *bufs[128];
    int n;
} entries;

static void make_entries(entries *es, const fm_layout *lay, const float *p, fm_st_dtype dt) {
    memset(es, 0, sizeof *es);
    for (int i = 0; i < lay->n; i++) {
        const fm_tensor *t = &lay->t[i];
        fm_st_entry *e = &es->e[es->n];
        char hf[128];
        fm_hf_name(hf, t);
        snprintf(es->names[es->n], sizeof es->names[0], "%s", hf);
        e->name = es->names[es->n];
        e->dtype = dt;
        e->ndim = t->ndim;
        e->shape[0] = t->shape[0];
        e->shape[1] = t->shape[1];
        if (dt == FM_ST_F32) {
            e->data = p + t->offset;
        } else {
            uint16_t *b = malloc(t->numel * 2 + 2);
            for (size_t k = 0; k < t->numel; k++)
                b[k] = dt == FM_ST_F16 ? fm_f32_to_f16(p[t->offset + k]) : fm_f32_to_bf16(p[t->offset + k]);
            es->bufs[es->n] = b;
            e->data = b;
        }
        es->n++;
    }
}

static void free_entries(entries *es) {
    for (int i = 0; i < es->n; i++) free(es->bufs[i]);
}

static fm_st_entry *find_entry(entries *es, const char *name) {
    for (int i = 0; i < es->n; i++)
        if (strcmp(es->e[i].name, name) == 0) return &es->e[i];
    fail_msg("no entry %s", name);
    return NULL;
}

static void remove_entry(entries *es, const char *name) {
    fm_st_entry *e = find_entry(es, name);
    int i = (int)(e - es->e);
    free(es->bufs[i]);
    memmove(&es->e[i], &es->e[i + 1], (size_t)(es->n - i - 1) * sizeof es->e[0]);
    memmove(&es->bufs[i], &es->bufs[i + 1], (size_t)(es->n - i - 1) * sizeof es->bufs[0]);
    memmove(&es->names[i], &es->names[i + 1], (size_t)(es->n - i - 1) * sizeof es->names[0]);
    /* names moved: repoint */
    for (int k = 0; k < es->n - 1; k++) es->e[k].name = es->names[k];
    es->n--;
}

static void add_entry(entries *es, const char *name, fm_st_dtype dt, int ndim, int64_t d0, int64_t d1) {
    fm_st_entry *e = &es->e[es->n];
    snprintf(es->names[es->n], sizeof es->names[0], "%s", name);
    e->name = es->names[es->n];
    e->dtype = dt;
    e->ndim = ndim;
    e->shape[0] = d0;
    e->shape[1] = d1;
    size_t numel = (size_t)(ndim > 0 ? d0 : 1) * (size_t)(ndim > 1 ? d1 : 1);
    es->bufs[es->n] = calloc(numel + 1, fm_st_dtype_size(dt));
    e->data = es->bufs[es->n];
    es->n++;
}

/* Write the entries to fx->st, open it and load it into a fresh array. */
static int load_entries(fixture *fx, entries *es, float *out, fm_load_info *info) {
    assert_int_equal(fm_st_write(fx->st, es->e, es->n, NULL, 0), FM_OK);
    fm_st_file f;
    assert_int_equal(fm_st_open(&f, fx->st), FM_OK);
    int rc = fm_load_tensors(&f, &fx->c, &fx->lay, out, info);
    fm_st_close(&f);
    return rc;
}

static void assert_params_equal(const fm_layout *lay, const float *a, const float *b) {
    for (int i = 0; i < lay->n; i++)
        assert_memory_equal(a + lay->t[i].offset, b + lay->t[i].offset, lay->t[i].numel * sizeof(float));
}

/* ---- config.json ---- */

static void test_config_roundtrip(void **state) {
    fixture *fx = *state;
    fm_config c = fx->c, r;
    c.hidden_act = FM_GELU_TANH;
    c.layer_norm_eps = 1e-5f;
    c.hidden_dropout_prob = 0.2f;
    c.attention_probs_dropout_prob = 0.0f;
    c.initializer_range = 0.03f;
    c.pad_token_id = 1;
    char *names[3] = {"entailment", "neutral", "contradiction"};
    fm_hfextra x = {.id2label = names, .nlabels = 3, .labels_given = 1, .finetuning_task = "mnli"}, y;
    assert_int_equal(fm_hfconfig_write(fx->json, &c, &x), FM_OK);
    assert_int_equal(fm_hfconfig_read(fx->json, &r, &y), FM_OK);
    assert_int_equal(r.vocab_size, c.vocab_size);
    assert_int_equal(r.hidden_size, c.hidden_size);
    assert_int_equal(r.num_hidden_layers, c.num_hidden_layers);
    assert_int_equal(r.num_attention_heads, c.num_attention_heads);
    assert_int_equal(r.intermediate_size, c.intermediate_size);
    assert_int_equal(r.max_position_embeddings, c.max_position_embeddings);
    assert_int_equal(r.type_vocab_size, c.type_vocab_size);
    assert_int_equal(r.hidden_act, FM_GELU_TANH);
    assert_true(r.layer_norm_eps == c.layer_norm_eps);
    assert_true(r.hidden_dropout_prob == c.hidden_dropout_prob);
    assert_true(r.attention_probs_dropout_prob == c.attention_probs_dropout_prob);
    assert_true(r.initializer_range == c.initializer_range);
    assert_int_equal(r.pad_token_id, 1);
    assert_int_equal(r.num_labels, 3);
    assert_int_equal(y.nlabels, 3);
    assert_true(y.labels_given);
    for (int i = 0; i < 3; i++) assert_string_equal(y.id2label[i], names[i]);
    assert_string_equal(y.finetuning_task, "mnli");
    fm_hfextra_free(&y);

    /* what transformers needs, with floats written as short decimals */
    char *text;
    assert_int_equal(fm_read_file(fx->json, &text, NULL), FM_OK);
    tu_assert_contains(text, "\"model_type\": \"bert\"");
    tu_assert_contains(text, "\"BertForSequenceClassification\"");
    tu_assert_contains(text, "\"hidden_dropout_prob\": 0.2,");
    tu_assert_contains(text, "\"layer_norm_eps\": 1e-5,");
    tu_assert_contains(text, "\"hidden_act\": \"gelu_new\"");
    tu_assert_contains(text, "\"0\": \"entailment\"");
    tu_assert_contains(text, "\"contradiction\": 2");
    free(text);

    /* no labels: no head, BertModel */
    c.num_labels = 0;
    assert_int_equal(fm_hfconfig_write(fx->json, &c, NULL), FM_OK);
    assert_int_equal(fm_hfconfig_read(fx->json, &r, &y), FM_OK);
    assert_int_equal(r.num_labels, 0);
    assert_false(y.labels_given);
    assert_null(y.id2label);
    fm_hfextra_free(&y);
    /* a 2-label head without names gets HF's LABEL_i */
    c.num_labels = 2;
    assert_int_equal(fm_hfconfig_write(fx->json, &c, NULL), FM_OK);
    assert_int_equal(fm_hfconfig_read(fx->json, &r, &y), FM_OK);
    assert_int_equal(r.num_labels, 2);
    assert_string_equal(y.id2label[1], "LABEL_1");
    fm_hfextra_free(&y);
}

static void test_config_defaults(void **state) {
    (void)state;
    fm_config c, d;
    fm_config_default(&d);
    assert_int_equal(fm_hfconfig_parse("{}", 2, "c.json", &c, NULL), FM_OK);
    assert_memory_equal(&c, &d, sizeof c);
    /* bert-base-uncased's config.json as published */
    const char *base = "{\n  \"architectures\": [\"BertForMaskedLM\"],\n  \"attention_probs_dropout_prob\": 0.1,\n"
                       "  \"gradient_checkpointing\": false,\n  \"hidden_act\": \"gelu\",\n"
                       "  \"hidden_dropout_prob\": 0.1,\n  \"hidden_size\": 768,\n  \"initializer_range\": 0.02,\n"
                       "  \"intermediate_size\": 3072,\n  \"layer_norm_eps\": 1e-12,\n"
                       "  \"max_position_embeddings\": 512,\n  \"model_type\": \"bert\",\n"
                       "  \"num_attention_heads\": 12,\n  \"num_hidden_layers\": 12,\n  \"pad_token_id\": 0,\n"
                       "  \"position_embedding_type\": \"absolute\",\n  \"transformers_version\": \"4.6.0.dev0\",\n"
                       "  \"type_vocab_size\": 2,\n  \"use_cache\": true,\n  \"vocab_size\": 30522\n}\n";
    fm_hfextra x;
    assert_int_equal(fm_hfconfig_parse(base, strlen(base), "config.json", &c, &x), FM_OK);
    assert_memory_equal(&c, &d, sizeof c);
    assert_false(x.labels_given);
    fm_hfextra_free(&x);
    /* gelu_pytorch_tanh is the tanh form; integers are numbers too */
    const char *t = "{\"hidden_act\": \"gelu_pytorch_tanh\", \"hidden_dropout_prob\": 0, \"num_labels\": 1,"
                    " \"pad_token_id\": null, \"finetuning_task\": \"sts-b\"}";
    assert_int_equal(fm_hfconfig_parse(t, strlen(t), "c.json", &c, &x), FM_OK);
    assert_int_equal(c.hidden_act, FM_GELU_TANH);
    assert_true(c.hidden_dropout_prob == 0.0f);
    assert_int_equal(c.num_labels, 1);
    assert_int_equal(c.pad_token_id, 0);
    assert_string_equal(x.finetuning_task, "sts-b");
    fm_hfextra_free(&x);
}

static void expect_config_error(const char *json, const char *needle1, const char *needle2) {
    fm_config c;
    fm_hfextra x;
    fm_clear_error();
    assert_int_equal(fm_hfconfig_parse(json, strlen(json), "dir/config.json", &c, &x), FM_ERR);
    tu_assert_contains(fm_last_error(), "dir/config.json");
    tu_assert_contains(fm_last_error(), needle1);
    if (needle2) tu_assert_contains(fm_last_error(), needle2);
    assert_null(x.id2label);
}

static void reject_config_errors(void **state) {
    (void)state;
    expect_config_error("{\"hidden_size\": \"768\"}", "\"hidden_size\"", "expected an integer");
    expect_config_error("{\"hidden_size\": 768.0}", "\"hidden_size\"", "a real number");
    expect_config_error("{\"hidden_size\": -1}", "\"hidden_size\"", "-1");
    expect_config_error("{\"vocab_size\": 4000000000}", "\"vocab_size\"", NULL);
    expect_config_error("{\"hidden_dropout_prob\": \"0.1\"}", "\"hidden_dropout_prob\"", "expected a number");
    expect_config_error("{\"hidden_dropout_prob\": 1.5}", "hidden_dropout_prob", NULL);
    expect_config_error("{\"layer_norm_eps\": 0}", "layer_norm_eps", NULL);
    expect_config_error("{\"hidden_act\": \"relu\"}", "\"hidden_act\"", "\"relu\"");
    expect_config_error("{\"hidden_act\": 1}", "\"hidden_act\"", "expected a string");
    expect_config_error("{\"model_type\": \"roberta\"}", "\"model_type\"", "\"roberta\"");
    expect_config_error("{\"position_embedding_type\": \"relative_key\"}", "\"position_embedding_type\"", NULL);
    expect_config_error("{\"hidden_size\": 100}", "hidden_size 100", "num_attention_heads 12");
    expect_config_error("{\"num_labels\": 2.5}", "\"num_labels\"", NULL);
    expect_config_error("{\"id2label\": [\"a\", \"b\"]}", "\"id2label\"", "a list");
    expect_config_error("{\"id2label\": {\"0\": \"a\", \"2\": \"b\"}}", "\"id2label\"", "\"2\"");
    expect_config_error("{\"id2label\": {\"0\": \"a\", \"1\": 5}}", "\"id2label\"", "label 1");
    expect_config_error("{\"id2label\": {\"0\": \"a\", \"1\": \"b\"}, \"num_labels\": 3}", "\"num_labels\" is 3",
                        "2 labels");
    expect_config_error("{\"hidden_size\": 768,}", "invalid JSON", NULL);
    expect_config_error("{\"a\": 1, \"a\": 2}", "duplicate", NULL);
    expect_config_error("[]", "expected a JSON object", NULL);
    expect_config_error("{\"pad_token_id\": 40000}", "pad_token_id", NULL);
}

/* ---- loading tensors ---- */

static void test_load_roundtrip(void **state) {
    fixture *fx = *state;
    fm_st_meta meta[] = {{"task", "RTE"}};
    assert_int_equal(fm_save_tensors(fx->st, &fx->lay, fx->p, meta, 1), FM_OK);
    fm_st_file f;
    assert_int_equal(fm_st_open(&f, fx->st), FM_OK);
    /* HF's names: bert.-prefixed encoder, unprefixed head */
    assert_non_null(fm_st_find(&f, "bert.encoder.layer.1.attention.self.query.weight"));
    assert_non_null(fm_st_find(&f, "bert.embeddings.LayerNorm.weight"));
    assert_non_null(fm_st_find(&f, "bert.pooler.dense.bias"));
    assert_non_null(fm_st_find(&f, "classifier.weight"));
    assert_null(fm_st_find(&f, "bert.classifier.weight"));
    assert_string_equal(fm_st_meta_get(&f, "format"), "pt");
    assert_string_equal(fm_st_meta_get(&f, "task"), "RTE");
    char fp[32];
    snprintf(fp, sizeof fp, "%016llx", (unsigned long long)fm_params_fingerprint(&fx->lay, fx->p));
    assert_string_equal(fm_st_meta_get(&f, "finemask.fingerprint"), fp);
    float *q = fm_xalloc_floats(fx->lay.numel);
    fm_load_info info;
    assert_int_equal(fm_load_tensors(&f, &fx->c, &fx->lay, q, &info), FM_OK);
    assert_params_equal(&fx->lay, fx->p, q);
    assert_int_equal(info.n_loaded, fx->lay.n);
    assert_int_equal(info.n_converted, 0);
    assert_int_equal(info.n_skipped, 0);
    assert_true(info.head_present);
    /* validation only */
    assert_int_equal(fm_load_tensors(&f, &fx->c, &fx->lay, NULL, &info), FM_OK);
    fm_st_close(&f);
    fm_free_aligned(q);
}

static void test_load_unprefixed_gamma_beta(void **state) {
    fixture *fx = *state;
    entries es;
    make_entries(&es, &fx->lay, fx->p, FM_ST_F32);
    /* BertModel-style names without "bert.", and old LayerNorm gamma/beta */
    int renamed = 0;
    for (int i = 0; i < es.n; i++) {
        char *s = es.names[i];
        if (strncmp(s, "bert.", 5) == 0) memmove(s, s + 5, strlen(s + 5) + 1);
        size_t n = strlen(s);
        if (strstr(s, "LayerNorm.weight")) {
            strcpy(s + n - 6, "gamma");
            renamed++;
        } else if (strstr(s, "LayerNorm.bias")) {
            strcpy(s + n - 4, "beta");
            renamed++;
        }
    }
    assert_int_equal(renamed, 2 * (1 + 2 * fx->c.num_hidden_layers));
    float *q = fm_xalloc_floats(fx->lay.numel);
    fm_load_info info;
    assert_int_equal(load_entries(fx, &es, q, &info), FM_OK);
    assert_params_equal(&fx->lay, fx->p, q);
    assert_int_equal(info.n_loaded, fx->lay.n);
    free_entries(&es);
    fm_free_aligned(q);
}

static void test_load_skips_extras(void **state) {
    fixture *fx = *state;
    entries es;
    make_entries(&es, &fx->lay, fx->p, FM_ST_F32);
    add_entry(&es, "bert.embeddings.position_ids", FM_ST_I64, 2, 1, 16);
    add_entry(&es, "cls.seq_relationship.weight", FM_ST_F32, 2, 2, 8);
    add_entry(&es, "cls.seq_relationship.bias", FM_ST_F32, 1, 2, 0);
    add_entry(&es, "cls.predictions.bias", FM_ST_F32, 1, 32, 0);
    add_entry(&es, "cls.predictions.transform.dense.weight", FM_ST_F32, 2, 8, 8);
    add_entry(&es, "cls.predictions.decoder.weight", FM_ST_F32, 2, 32, 8);
    add_entry(&es, "something.else", FM_ST_U8, 1, 3, 0);
    float *q = fm_xalloc_floats(fx->lay.numel);
    fm_load_info info;
    int verbosity = fm_verbosity;
    fm_verbosity = 0;
    assert_int_equal(load_entries(fx, &es, q, &info), FM_OK);
    fm_verbosity = verbosity;
    assert_params_equal(&fx->lay, fx->p, q);
    assert_int_equal(info.n_skipped, 7);
    assert_int_equal(info.n_loaded, fx->lay.n);
    free_entries(&es);
    fm_free_aligned(q);
}

static void test_load_mlm_head(void **state) {
    fixture *fx = *state;
    /* a config with the MLM head requires it, and reads the tied decoder bias */
    fm_config c = fx->c;
    c.with_mlm = 1;
    fm_layout lay;
    fm_layout_build(&lay, &c);
    float *p = fm_xalloc_floats(lay.numel), *q = fm_xalloc_floats(lay.numel);
    fill_pattern(&lay, p, 5);
    entries es;
    make_entries(&es, &lay, p, FM_ST_F32);
    assert_non_null(find_entry(&es, "cls.predictions.transform.LayerNorm.weight"));
    strcpy(es.names[find_entry(&es, "cls.predictions.bias") - es.e], "cls.predictions.decoder.bias");
    assert_int_equal(fm_st_write(fx->st, es.e, es.n, NULL, 0), FM_OK);
    fm_st_file f;
    assert_int_equal(fm_st_open(&f, fx->st), FM_OK);
    assert_int_equal(fm_load_tensors(&f, &c, &lay, q, NULL), FM_OK);
    assert_params_equal(&lay, p, q);
    fm_st_close(&f);
    /* without it: an error naming the missing tensor */
    remove_entry(&es, "cls.predictions.transform.dense.bias");
    assert_int_equal(fm_st_write(fx->st, es.e, es.n, NULL, 0), FM_OK);
    assert_int_equal(fm_st_open(&f, fx->st), FM_OK);
    assert_int_equal(fm_load_tensors(&f, &c, &lay, q, NULL), FM_ERR);
    tu_assert_contains(fm_last_error(), fx->st);
    tu_assert_contains(fm_last_error(), "'cls.predictions.transform.dense.bias'");
    fm_st_close(&f);
    free_entries(&es);
    fm_free_aligned(p);
    fm_free_aligned(q);
    fm_layout_free(&lay);
}

static void test_load_converts_f16_bf16(void **state) {
    fixture *fx = *state;
    float *q = fm_xalloc_floats(fx->lay.numel);
    fm_load_info info;
    for (int k = 0; k < 2; k++) {
        entries es;
        make_entries(&es, &fx->lay, fx->p, k ? FM_ST_BF16 : FM_ST_F16);
        memset(q, 0, fx->lay.numel * sizeof *q);
        assert_int_equal(load_entries(fx, &es, q, &info), FM_OK);
        assert_params_equal(&fx->lay, fx->p, q); /* the pattern is exact in both */
        assert_int_equal(info.n_converted, fx->lay.n);
        assert_int_equal(fm_params_fingerprint(&fx->lay, q), fm_params_fingerprint(&fx->lay, fx->p));
        free_entries(&es);
    }
    fm_free_aligned(q);
}

static void test_load_head_optional(void **state) {
    fixture *fx = *state;
    entries es;
    make_entries(&es, &fx->lay, fx->p, FM_ST_F32);
    remove_entry(&es, "classifier.weight");
    remove_entry(&es, "classifier.bias");
    float *q = fm_xalloc_floats(fx->lay.numel);
    fm_load_info info;
    assert_int_equal(load_entries(fx, &es, q, &info), FM_OK);
    assert_false(info.head_present);
    assert_int_equal(info.n_loaded, fx->lay.n - 2);
    /* half a head is an error */
    add_entry(&es, "classifier.weight", FM_ST_F32, 2, 3, 8);
    assert_int_equal(load_entries(fx, &es, q, &info), FM_ERR);
    tu_assert_contains(fm_last_error(), fx->st);
    tu_assert_contains(fm_last_error(), "'classifier.bias'");
    free_entries(&es);
    fm_free_aligned(q);
}

static void reject_shape_mismatch(void **state) {
    fixture *fx = *state;
    entries es;
    make_entries(&es, &fx->lay, fx->p, FM_ST_F32);
    fm_st_entry *e = find_entry(&es, "bert.encoder.layer.1.attention.self.query.weight");
    e->shape[1] = 4;
    float *q = fm_xalloc_floats(fx->lay.numel);
    assert_int_equal(load_entries(fx, &es, q, NULL), FM_ERR);
    tu_assert_contains(fm_last_error(), fx->st);
    tu_assert_contains(fm_last_error(), "'bert.encoder.layer.1.attention.self.query.weight'");
    tu_assert_contains(fm_last_error(), "expected shape [8, 8]");
    tu_assert_contains(fm_last_error(), "found [8, 4]");
    /* a head of the wrong size too */
    e->shape[1] = 8;
    e = find_entry(&es, "classifier.weight");
    e->shape[0] = 2;
    assert_int_equal(load_entries(fx, &es, q, NULL), FM_ERR);
    tu_assert_contains(fm_last_error(), "'classifier.weight'");
    tu_assert_contains(fm_last_error(), "expected shape [3, 8]");
    /* a 1-D tensor stored as 2-D */
    e->shape[0] = 3;
    e = find_entry(&es, "bert.pooler.dense.bias");
    e->ndim = 2;
    e->shape[0] = 1;
    e->shape[1] = 8;
    assert_int_equal(load_entries(fx, &es, q, NULL), FM_ERR);
    tu_assert_contains(fm_last_error(), "'bert.pooler.dense.bias'");
    tu_assert_contains(fm_last_error(), "expected shape [8] (from the config), found [1, 8]");
    free_entries(&es);
    fm_free_aligned(q);
}

static void reject_wrong_dtype(void **state) {
    fixture *fx = *state;
    entries es;
    make_entries(&es, &fx->lay, fx->p, FM_ST_F32);
    /* same byte size, integer dtype */
    find_entry(&es, "bert.encoder.layer.0.output.dense.weight")->dtype = FM_ST_I32;
    float *q = fm_xalloc_floats(fx->lay.numel);
    assert_int_equal(load_entries(fx, &es, q, NULL), FM_ERR);
    tu_assert_contains(fm_last_error(), fx->st);
    tu_assert_contains(fm_last_error(), "'bert.encoder.layer.0.output.dense.weight'");
    tu_assert_contains(fm_last_error(), "dtype I32, expected F32");
    /* an I64 weight (as position_ids are stored) */
    find_entry(&es, "bert.encoder.layer.0.output.dense.weight")->dtype = FM_ST_F32;
    remove_entry(&es, "bert.pooler.dense.weight");
    add_entry(&es, "bert.pooler.dense.weight", FM_ST_I64, 2, 8, 8);
    assert_int_equal(load_entries(fx, &es, q, NULL), FM_ERR);
    tu_assert_contains(fm_last_error(), fx->st);
    tu_assert_contains(fm_last_error(), "'bert.pooler.dense.weight': dtype I64, expected F32");
    free_entries(&es);
    fm_free_aligned(q);
}

static void reject_missing_tensor(void **state) {
    fixture *fx = *state;
    entries es;
    make_entries(&es, &fx->lay, fx->p, FM_ST_F32);
    remove_entry(&es, "bert.encoder.layer.1.output.LayerNorm.bias");
    float *q = fm_xalloc_floats(fx->lay.numel);
    assert_int_equal(load_entries(fx, &es, q, NULL), FM_ERR);
    tu_assert_contains(fm_last_error(), fx->st);
    tu_assert_contains(fm_last_error(), "missing tensor 'bert.encoder.layer.1.output.LayerNorm.bias'");
    free_entries(&es);
    fm_free_aligned(q);
}

static void reject_extra_layer(void **state) {
    fixture *fx = *state;
    entries es;
    make_entries(&es, &fx->lay, fx->p, FM_ST_F32);
    add_entry(&es, "bert.encoder.layer.2.attention.self.key.bias", FM_ST_F32, 1, 8, 0);
    float *q = fm_xalloc_floats(fx->lay.numel);
    assert_int_equal(load_entries(fx, &es, q, NULL), FM_ERR);
    tu_assert_contains(fm_last_error(), fx->st);
    tu_assert_contains(fm_last_error(), "'bert.encoder.layer.2.attention.self.key.bias'");
    tu_assert_contains(fm_last_error(), "num_hidden_layers = 2");
    free_entries(&es);
    fm_free_aligned(q);
}

static void reject_duplicate_alias(void **state) {
    fixture *fx = *state;
    entries es;
    make_entries(&es, &fx->lay, fx->p, FM_ST_F32);
    add_entry(&es, "embeddings.LayerNorm.gamma", FM_ST_F32, 1, 8, 0);
    float *q = fm_xalloc_floats(fx->lay.numel);
    assert_int_equal(load_entries(fx, &es, q, NULL), FM_ERR);
    tu_assert_contains(fm_last_error(), fx->st);
    tu_assert_contains(fm_last_error(), "'bert.embeddings.LayerNorm.weight'");
    tu_assert_contains(fm_last_error(), "'embeddings.LayerNorm.gamma'");
    free_entries(&es);
    fm_free_aligned(q);
}

static void test_fingerprint(void **state) {
    fixture *fx = *state;
    uint64_t a = fm_params_fingerprint(&fx->lay, fx->p);
    /* a fixed value (checked against an independent CRC-64/XZ of the same bytes):
     * the fingerprint must not change between versions */
    assert_int_equal(a, 0xf671351147392900ull);
    /* the task head does not count */
    fx->p[fm_layout_find(&fx->lay, "classifier.weight")->offset] += 1.0f;
    assert_int_equal(fm_params_fingerprint(&fx->lay, fx->p), a);
    /* any bit of the encoder does */
    float *w = fx->p + fm_layout_find(&fx->lay, "encoder.layer.1.output.dense.weight")->offset + 5;
    uint32_t bits;
    memcpy(&bits, w, 4);
    bits ^= 1;
    memcpy(w, &bits, 4);
    assert_int_not_equal(fm_params_fingerprint(&fx->lay, fx->p), a);
}

/* ---- directories and the commands (these need fm_model_alloc) ---- */

/* A reader gives each tensor as a load does, one at a time, and refuses
 * what a load refuses. */
static void test_modeldir_reader(void **state) {
    fixture *fx = *state;
    char out[4096];
    snprintf(out, sizeof out, "%s/model-r", fx->dir);
    fm_save_opts so = {0};
    assert_int_equal(fm_modeldir_save(out, &fx->c, &fx->lay, fx->p, &so), FM_OK);
    fm_model m;
    assert_int_equal(fm_modeldir_load(out, NULL, &m, NULL), FM_OK);
    fm_modeldir_reader r;
    assert_int_equal(fm_modeldir_open(&r, out, NULL), FM_OK);
    assert_int_equal(r.lay.n, m.lay.n);
    assert_int_equal(r.lay.numel, m.lay.numel);
    size_t most = 0;
    for (int i = 0; i < r.lay.n; i++) {
        const fm_tensor *t = &r.lay.t[i];
        const float *v = fm_modeldir_read(&r, t);
        assert_non_null(v);
        assert_memory_equal(v, m.params + m.lay.t[i].offset, t->numel * sizeof(float));
        if (t->numel > most) most = t->numel;
    }
    assert_int_equal(r.cap, most); /* one tensor's room, not the model's */
    fm_modeldir_close(&r);
    fm_model_free(&m);
    /* a missing weights file is refused, naming it, and nothing stays open */
    char w[4200];
    snprintf(w, sizeof w, "%s/model.safetensors", out);
    assert_int_equal(remove(w), 0);
    assert_int_equal(fm_modeldir_open(&r, out, NULL), FM_ERR);
    tu_assert_contains(fm_last_error(), "model.safetensors");
    assert_null(r.src);
}

static void test_modeldir_roundtrip(void **state) {
    fixture *fx = *state;
    char vocab[4096], out[4096];
    snprintf(vocab, sizeof vocab, "%s/vocab-src.txt", fx->dir);
    snprintf(out, sizeof out, "%s/model", fx->dir);
    assert_int_equal(tu_write_file(vocab, "[PAD]\n[UNK]\nhello\n", 18), 0);
    char *names[3] = {"a", "b", "c"};
    fm_hfextra x = {.id2label = names, .nlabels = 3, .labels_given = 1, .finetuning_task = "x"};
    fm_save_opts so = {.vocab = vocab, .extra = &x};
    assert_int_equal(fm_modeldir_save(out, &fx->c, &fx->lay, fx->p, &so), FM_OK);
    char vpath[4200];
    snprintf(vpath, sizeof vpath, "%s/vocab.txt", out);
    char *v;
    assert_int_equal(fm_read_file(vpath, &v, NULL), FM_OK);
    assert_string_equal(v, "[PAD]\n[UNK]\nhello\n");
    free(v);
    /* The tokenizer files of tokenizer_from come along when they exist:
     * tokenizer.json here, no tokenizer_config.json. */
    char tj[4200], out2[4100], tpath[4300];
    snprintf(tj, sizeof tj, "%s/tokenizer.json", fx->dir);
    snprintf(out2, sizeof out2, "%s/model2", fx->dir);
    assert_int_equal(tu_write_file(tj, "{}", 2), 0);
    so.tokenizer_from = fx->dir;
    assert_int_equal(fm_modeldir_save(out2, &fx->c, &fx->lay, fx->p, &so), FM_OK);
    snprintf(tpath, sizeof tpath, "%s/tokenizer.json", out2);
    assert_int_equal(fm_read_file(tpath, &v, NULL), FM_OK);
    assert_string_equal(v, "{}");
    free(v);
    snprintf(tpath, sizeof tpath, "%s/tokenizer_config.json", out2);
    assert_false(fm_file_exists(tpath));

    fm_model m;
    fm_load_info info;
    assert_int_equal(fm_modeldir_load(out, NULL, &m, &info), FM_OK);
    assert_int_equal(m.cfg.num_labels, 3);
    assert_int_equal(m.cfg.with_mlm, 0);
    assert_int_equal(m.lay.numel, fx->lay.numel);
    assert_params_equal(&fx->lay, fx->p, m.params);
    assert_true(info.head_present);
    assert_string_equal(info.extra.id2label[2], "c");
    assert_string_equal(info.extra.finetuning_task, "x");
    fm_load_info_free(&info);
    fm_model_free(&m);

    /* a caller asking for another number of labels gets no head */
    fm_load_opts o;
    fm_load_opts_default(&o);
    o.num_labels = 2;
    int verbosity = fm_verbosity;
    fm_verbosity = 0;
    assert_int_equal(fm_modeldir_load(out, &o, &m, &info), FM_OK);
    fm_verbosity = verbosity;
    assert_int_equal(m.cfg.num_labels, 2);
    assert_false(info.head_present);
    fm_load_info_free(&info);
    fm_model_free(&m);

    /* a config.json that does not match the tensors */
    fm_config c = fx->c;
    c.intermediate_size = 32;
    char cpath[4200];
    snprintf(cpath, sizeof cpath, "%s/config.json", out);
    assert_int_equal(fm_hfconfig_write(cpath, &c, NULL), FM_OK);
    assert_int_equal(fm_modeldir_load(out, NULL, &m, NULL), FM_ERR);
    tu_assert_contains(fm_last_error(), "model.safetensors");
    tu_assert_contains(fm_last_error(), "'bert.encoder.layer.0.intermediate.dense.weight'");
    tu_assert_contains(fm_last_error(), "expected shape [32, 8]");
    assert_null(m.params);
}

static int run_cmd(int (*cmd)(int, char **), int argc, const char **argv) {
    return cmd(argc, (char **)argv);
}

static void test_cmd_init_inspect(void **state) {
    fixture *fx = *state;
    char out[4096], vocab[4096], cfg[4096];
    snprintf(out, sizeof out, "%s/init", fx->dir);
    snprintf(vocab, sizeof vocab, "%s/v.txt", fx->dir);
    snprintf(cfg, sizeof cfg, "%s/small.json", fx->dir);
    assert_int_equal(tu_write_file(vocab, "[PAD]\n[UNK]\n[CLS]\n[SEP]\na\nb\nc", 29), 0);
    fm_config c = fx->c;
    c.num_labels = 0;
    assert_int_equal(fm_hfconfig_write(cfg, &c, NULL), FM_OK);

    const char *init[] = {"init", "--config", cfg, "--seed", "7", "--out", out, "--vocab", vocab, "--num-labels", "2"};
    assert_int_equal(run_cmd(fm_cmd_init, 11, init), 0);
    fm_model m;
    fm_load_info info;
    assert_int_equal(fm_modeldir_load(out, NULL, &m, &info), FM_OK);
    assert_int_equal(m.cfg.vocab_size, 7); /* the vocabulary's line count */
    assert_int_equal(m.cfg.num_labels, 2);
    assert_true(info.head_present);
    uint64_t fp = fm_params_fingerprint(&m.lay, m.params);
    fm_load_info_free(&info);
    fm_model_free(&m);

    /* no overwrite without --force; the same seed gives the same model */
    int verbosity = fm_verbosity;
    fm_verbosity = 0;
    assert_int_equal(run_cmd(fm_cmd_init, 11, init), 1);
    tu_assert_contains(fm_last_error(), "--force");
    const char *force[] = {"init", "--config", cfg,   "--seed",       "7", "--out",
                           out,    "--vocab",  vocab, "--num-labels", "2", "--force"};
    assert_int_equal(run_cmd(fm_cmd_init, 12, force), 0);
    assert_int_equal(fm_modeldir_load(out, NULL, &m, NULL), FM_OK);
    assert_int_equal(fm_params_fingerprint(&m.lay, m.params), fp);
    fm_model_free(&m);

    const char *inspect[] = {"inspect", out};
    assert_int_equal(run_cmd(fm_cmd_inspect, 2, inspect), 0);
    char st[4200];
    snprintf(st, sizeof st, "%s/model.safetensors", out);
    const char *inspect_file[] = {"inspect", st};
    assert_int_equal(run_cmd(fm_cmd_inspect, 2, inspect_file), 0);
    const char *help[] = {"init", "--help"};
    assert_int_equal(run_cmd(fm_cmd_init, 2, help), 0);

    /* bad input: a clean error and status 1 */
    const char *bad[] = {"init", "--config", "huge", "--out", out};
    assert_int_equal(run_cmd(fm_cmd_init, 5, bad), 1);
    tu_assert_contains(fm_last_error(), "huge");
    const char *missing[] = {"inspect", fx->dir};
    assert_int_equal(run_cmd(fm_cmd_inspect, 2, missing), 1);
    tu_assert_contains(fm_last_error(), "model.safetensors");
    fm_verbosity = verbosity;
}

int main(void) {
    const struct CMUnitTest config_tests[] = {
        cmocka_unit_test_setup_teardown(test_config_roundtrip, setup, teardown),
        cmocka_unit_test(test_config_defaults),
        cmocka_unit_test(reject_config_errors),
    };
    const struct CMUnitTest load_tests[] = {
        cmocka_unit_test_setup_teardown(test_load_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_unprefixed_gamma_beta, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_skips_extras, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_mlm_head, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_converts_f16_bf16, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_head_optional, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fingerprint, setup, teardown),
    };
    /* Tests that must fail: a model file that disagrees with its config is rejected. */
    const struct CMUnitTest must_fail[] = {
        cmocka_unit_test_setup_teardown(reject_shape_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(reject_wrong_dtype, setup, teardown),
        cmocka_unit_test_setup_teardown(reject_missing_tensor, setup, teardown),
        cmocka_unit_test_setup_teardown(reject_extra_layer, setup, teardown),
        cmocka_unit_test_setup_teardown(reject_duplicate_alias, setup, teardown),
    };
    const struct CMUnitTest dir_tests[] = {
        cmocka_unit_test_setup_teardown(test_modeldir_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_modeldir_reader, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cmd_init_inspect, setup, teardown),
    };
    int failed = cmocka_run_group_tests_name("hfconfig", config_tests, NULL, NULL);
    failed += cmocka_run_group_tests_name("modeldir_load", load_tests, NULL, NULL);
    failed += cmocka_run_group_tests_name("modeldir_must_fail", must_fail, NULL, NULL);
    failed += cmocka_run_group_tests_name("modeldir_dir", dir_tests, NULL, NULL);
    return failed;
}
