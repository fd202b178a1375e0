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
    t->whole_shape[0] = t->shape[0];
    t->whole_shape[1] = t->shape[1];
    t->whole_numel = t->numel;
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
    lay->tp_size = 1;
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

/* Elements of n dealt in blocks of nb round-robin over P ranks that rank p
 * holds (ScaLAPACK's NUMROC), and the whole index of its local index l
 * (INDXL2G). */
static int64_t numroc(int64_t n, int64_t nb, int p, int P) {
    const int64_t blocks = n / nb, extra = n % nb;
    int64_t k = blocks / P * nb;
    if (p < blocks % P) k += nb;
    else if (p == blocks % P) k += extra;
    return k;
}

static int64_t l2g(int64_t l, int64_t nb, int p, int P) { return (l / nb * P + p) * nb + l % nb; }

static int ends_with(const char *s, const char *suffix) {
    size_t ls = strlen(s), lx = strlen(suffix);
    return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

/* How an encoder tensor is split (FM_SPLIT_*) and its block. */
static int split_of(const fm_tensor *t, const fm_config *c, int P, int *nb) {
    const int hs = c->hidden_size / c->num_attention_heads;
    const int nbi = (c->intermediate_size + P - 1) / P;
    if (t->layer < 0 || t->layer >= c->num_hidden_layers) return FM_SPLIT_NONE;
    static const char *const heads_out[] = {"attention.self.query.weight", "attention.self.query.bias",
                                            "attention.self.key.weight",   "attention.self.key.bias",
                                            "attention.self.value.weight", "attention.self.value.bias"};
    for (size_t k = 0; k < sizeof heads_out / sizeof *heads_out; k++)
        if (ends_with(t->name, heads_out[k])) return *nb = hs, FM_SPLIT_OUT;
    if (ends_with(t->name, "attention.output.dense.weight")) return *nb = hs, FM_SPLIT_IN;
    if (ends_with(t->name, "intermediate.dense.weight") || ends_with(t->name, "intermediate.dense.bias"))
        return *nb = nbi, FM_SPLIT_OUT;
    if (ends_with(t->name, "output.dense.weight") && !ends_with(t->name, "attention.output.dense.weight"))
        return *nb = nbi, FM_SPLIT_IN;
    return FM_SPLIT_NONE;
}

void fm_layout_shard(fm_layout *dst, const fm_layout *whole, const fm_config *c, int rank, int P) {
    assert(P >= 1 && c->num_attention_heads % P == 0 && 0 <= rank && rank < P);
    *dst = *whole;
    dst->t = fm_xmalloc(sizeof *dst->t * (size_t)(whole->n ? whole->n : 1));
    memcpy(dst->t, whole->t, sizeof *dst->t * (size_t)whole->n);
    dst->tp_rank = rank;
    dst->tp_size = P;
    dst->numel = 0;
    for (int i = 0; i < dst->n; i++) {
        fm_tensor *t = &dst->t[i];
        int nb = 0;
        t->split = P > 1 ? split_of(t, c, P, &nb) : FM_SPLIT_NONE;
        t->nb = nb;
        if (t->split == FM_SPLIT_OUT) t->shape[0] = numroc(t->whole_shape[0], nb, rank, P);
        if (t->split == FM_SPLIT_IN) t->shape[1] = numroc(t->whole_shape[1], nb, rank, P);
        t->numel = (size_t)t->shape[0] * (size_t)(t->ndim > 1 ? t->shape[1] : 1);
        t->offset = dst->numel;
        dst->numel += (t->numel + 15) & ~(size_t)15;
    }
}

void fm_layout_tp_shares(const fm_layout *lay, const fm_config *c, int *heads, int *inter) {
    const int P = lay->tp_size > 1 ? lay->tp_size : 1, nbi = (c->intermediate_size + P - 1) / P;
    *heads = c->num_attention_heads / P;
    *inter = (int)numroc(c->intermediate_size, nbi, lay->tp_size > 1 ? lay->tp_rank : 0, P);
}

size_t fm_tensor_whole_index(const fm_layout *lay, const fm_tensor *t, size_t j, size_t *run) {
    const int p = lay->tp_rank, P = lay->tp_size;
    if (t->split == FM_SPLIT_NONE) {
        *run = t->numel - j;
        return j;
    }
    const size_t cols = t->ndim > 1 ? (size_t)t->shape[1] : 1, r = j / cols, c = j % cols;
    const size_t nb = (size_t)t->nb;
    if (t->split == FM_SPLIT_OUT) {
        /* whole rows: the rest of this row's block of rows is consecutive */
        size_t rows = nb - r % nb, left = (size_t)t->shape[0] - r;
        *run = (rows < left ? rows : left) * cols - c;
        return (size_t)l2g((int64_t)r, (int64_t)nb, p, P) * cols + c;
    }
    size_t in_block = nb - c % nb, left = cols - c;
    *run = in_block < left ? in_block : left;
    return r * (size_t)t->whole_shape[1] + (size_t)l2g((int64_t)c, (int64_t)nb, p, P);
}

void fm_tensor_slice(const fm_layout *lay, const fm_tensor *t, const float *whole, float *share) {
    for (size_t j = 0; j < t->numel;) {
        size_t run, g = fm_tensor_whole_index(lay, t, j, &run);
        memcpy(share + j, whole + g, run * sizeof *share);
        j += run;
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
        if (lay->t[i].trains) n += lay->t[i].whole_numel;
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
