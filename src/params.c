/* params.c: the parameter layout and its typed views (see params.h). */
#include "params.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fm.h"

static void add(fm_layout *lay, int *cap, const char *name, int64_t d0, int64_t d1, int layer, unsigned flags) {
    if (lay->n == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        lay->t = fm_xrealloc(lay->t, (size_t)*cap * sizeof *lay->t);
    }
    fm_tensor *t = &lay->t[lay->n++];
    memset(t, 0, sizeof *t);
    int r = snprintf(t->name, sizeof t->name, "%s", name);
    assert(r > 0 && r < (int)sizeof t->name);
    (void)r;
    t->ndim = d1 > 0 ? 2 : 1;
    t->shape[0] = d0;
    t->shape[1] = d1 > 0 ? d1 : 0;
    t->numel = (size_t)d0 * (size_t)(d1 > 0 ? d1 : 1);
    t->offset = lay->numel;
    /* Keep every tensor 16-float (64-byte) aligned. */
    lay->numel += (t->numel + 15) & ~(size_t)15;
    t->layer = layer;
    t->flags = flags;
    t->trains = 1;
    t->needs_grad = 1;
}

/* out = a + b; names are far shorter than the buffer. */
static void join_name(char out[96], const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    assert(la + lb < 96);
    memcpy(out, a, la);
    memcpy(out + la, b, lb + 1);
}

/* A dense layer: weight (out, in) with decay, bias (out) without. */
static void add_dense(fm_layout *lay, int *cap, const char *prefix, int64_t out, int64_t in, int layer, unsigned extra) {
    char name[96];
    join_name(name, prefix, ".weight");
    add(lay, cap, name, out, in, layer, FM_T_DECAY | FM_T_MATRIX | extra);
    join_name(name, prefix, ".bias");
    add(lay, cap, name, out, 0, layer, extra);
}

static void add_ln(fm_layout *lay, int *cap, const char *prefix, int64_t h, int layer, unsigned extra) {
    char name[96];
    join_name(name, prefix, ".weight");
    add(lay, cap, name, h, 0, layer, FM_T_LN | extra);
    join_name(name, prefix, ".bias");
    add(lay, cap, name, h, 0, layer, FM_T_LN | extra);
}

void fm_layout_build(fm_layout *lay, const fm_config *c) {
    assert(fm_config_check(c) == FM_OK);
    memset(lay, 0, sizeof *lay);
    int cap = 0;
    const int64_t H = c->hidden_size, I = c->intermediate_size;
    const int L = c->num_hidden_layers;
    add(lay, &cap, "embeddings.word_embeddings.weight", c->vocab_size, H, -1, FM_T_DECAY | FM_T_MATRIX);
    add(lay, &cap, "embeddings.position_embeddings.weight", c->max_position_embeddings, H, -1,
        FM_T_DECAY | FM_T_MATRIX);
    add(lay, &cap, "embeddings.token_type_embeddings.weight", c->type_vocab_size, H, -1, FM_T_DECAY | FM_T_MATRIX);
    add_ln(lay, &cap, "embeddings.LayerNorm", H, -1, 0);
    for (int l = 0; l < L; l++) {
        char p[96];
#define P(s) (snprintf(p, sizeof p, "encoder.layer.%d.%s", l, s), p)
        add_dense(lay, &cap, P("attention.self.query"), H, H, l, 0);
        add_dense(lay, &cap, P("attention.self.key"), H, H, l, 0);
        add_dense(lay, &cap, P("attention.self.value"), H, H, l, 0);
        add_dense(lay, &cap, P("attention.output.dense"), H, H, l, 0);
        add_ln(lay, &cap, P("attention.output.LayerNorm"), H, l, 0);
        add_dense(lay, &cap, P("intermediate.dense"), I, H, l, 0);
        add_dense(lay, &cap, P("output.dense"), H, I, l, 0);
        add_ln(lay, &cap, P("output.LayerNorm"), H, l, 0);
#undef P
    }
    if (c->with_pooler) add_dense(lay, &cap, "pooler.dense", H, H, L, 0);
    if (c->num_labels > 0) add_dense(lay, &cap, "classifier", c->num_labels, H, L, FM_T_HEAD);
    if (c->with_mlm) {
        add_dense(lay, &cap, "cls.predictions.transform.dense", H, H, L, FM_T_MLM);
        add_ln(lay, &cap, "cls.predictions.transform.LayerNorm", H, L, FM_T_MLM);
        add(lay, &cap, "cls.predictions.bias", c->vocab_size, 0, L, FM_T_MLM);
    }
}

void fm_layout_free(fm_layout *lay) {
    free(lay->t);
    memset(lay, 0, sizeof *lay);
}

fm_tensor *fm_layout_find(const fm_layout *lay, const char *name) {
    if (strncmp(name, "bert.", 5) == 0) name += 5;
    for (int i = 0; i < lay->n; i++)
        if (strcmp(lay->t[i].name, name) == 0) return &lay->t[i];
    return NULL;
}

void fm_layout_range(const fm_layout *lay, int l0, int l1, size_t *begin, size_t *end) {
    *begin = lay->numel;
    *end = 0;
    for (int i = 0; i < lay->n; i++) {
        const fm_tensor *t = &lay->t[i];
        if (t->layer >= l0 && t->layer < l1) {
            if (t->offset < *begin) *begin = t->offset;
            size_t e = t->offset + ((t->numel + 15) & ~(size_t)15);
            if (e > *end) *end = e;
        }
    }
    if (*end < *begin) *begin = *end = 0;
}

int fm_layout_stage(const fm_tensor *t, int L, int stages) {
    if (t->layer < 0) return 0;
    if (t->layer >= L) return stages - 1;
    int s = 0;
    while (s + 1 < stages && (int64_t)L * (s + 1) / stages <= t->layer) s++;
    return s;
}

size_t fm_layout_trainable(const fm_layout *lay) {
    size_t n = 0;
    for (int i = 0; i < lay->n; i++)
        if (lay->t[i].trains) n += lay->t[i].numel;
    return n;
}

static float *ptr(const fm_layout *lay, float *base, const char *name) {
    const fm_tensor *t = fm_layout_find(lay, name);
    return t ? base + t->offset : NULL;
}

void fm_view_bind(fm_view *v, const fm_layout *lay, const fm_config *c, float *base) {
    memset(v, 0, sizeof *v);
    v->word = ptr(lay, base, "embeddings.word_embeddings.weight");
    v->pos = ptr(lay, base, "embeddings.position_embeddings.weight");
    v->type = ptr(lay, base, "embeddings.token_type_embeddings.weight");
    v->emb_ln_g = ptr(lay, base, "embeddings.LayerNorm.weight");
    v->emb_ln_b = ptr(lay, base, "embeddings.LayerNorm.bias");
    v->num_layers = c->num_hidden_layers;
    v->layer = fm_xcalloc((size_t)c->num_hidden_layers, sizeof *v->layer);
    for (int l = 0; l < c->num_hidden_layers; l++) {
        fm_layer_view *x = &v->layer[l];
        char n[96];
#define Q(field, s) (snprintf(n, sizeof n, "encoder.layer.%d.%s", l, s), x->field = ptr(lay, base, n))
        Q(wq, "attention.self.query.weight");
        Q(bq, "attention.self.query.bias");
        Q(wk, "attention.self.key.weight");
        Q(bk, "attention.self.key.bias");
        Q(wv, "attention.self.value.weight");
        Q(bv, "attention.self.value.bias");
        Q(wd, "attention.output.dense.weight");
        Q(bd, "attention.output.dense.bias");
        Q(ln1_g, "attention.output.LayerNorm.weight");
        Q(ln1_b, "attention.output.LayerNorm.bias");
        Q(wi, "intermediate.dense.weight");
        Q(bi, "intermediate.dense.bias");
        Q(wo, "output.dense.weight");
        Q(bo, "output.dense.bias");
        Q(ln2_g, "output.LayerNorm.weight");
        Q(ln2_b, "output.LayerNorm.bias");
#undef Q
    }
    v->pool_w = ptr(lay, base, "pooler.dense.weight");
    v->pool_b = ptr(lay, base, "pooler.dense.bias");
    v->cls_w = ptr(lay, base, "classifier.weight");
    v->cls_b = ptr(lay, base, "classifier.bias");
    v->mlm_w = ptr(lay, base, "cls.predictions.transform.dense.weight");
    v->mlm_b = ptr(lay, base, "cls.predictions.transform.dense.bias");
    v->mlm_ln_g = ptr(lay, base, "cls.predictions.transform.LayerNorm.weight");
    v->mlm_ln_b = ptr(lay, base, "cls.predictions.transform.LayerNorm.bias");
    v->mlm_bias = ptr(lay, base, "cls.predictions.bias");
}

void fm_view_free(fm_view *v) {
    free(v->layer);
    v->layer = NULL;
}
