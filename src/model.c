/* model.c: BERT forward and backward over the pieces a pipeline stage runs
 * (see model.h), built from the layers in layers.c. */
#include "model.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "fm.h"
#include "layers.h"
#include "rng.h"

/* What one encoder layer saves for its backward. */
typedef struct {
    float *inp;            /* (B,T,H) layer input */
    float *q, *k, *v;      /* (B,T,H) */
    float *probs;          /* (B,A,T,T) attention probabilities (before dropout) */
    uint64_t *pbits;       /* (B,A,T,words(T)) their dropout keep-bits */
    float *ctx;            /* (B,T,H) attention context */
    float *res1;           /* (B,T,H) inp + dropout(ctx W_D^T + b_D): LayerNorm 1 input */
    float *mean1, *rstd1;  /* (B,T) */
    uint64_t *bits1;       /* (B,T,words(H)) */
    float *y1;             /* (B,T,H) LayerNorm 1 output */
    float *pre;            /* (B,T,I) intermediate pre-activation (GELU is recomputed) */
    float *res2;           /* (B,T,H) y1 + dropout(gelu W_O^T + b_O): LayerNorm 2 input */
    float *mean2, *rstd2;  /* (B,T) */
    uint64_t *bits2;       /* (B,T,words(H)) */
} layer_acts;

struct fm_acts {
    fm_config cfg;
    int B, T, l0, l1;
    int embed, head, mlm; /* which parts this set covers */
    int forward_only;     /* fm_acts_new_forward: no backward */
    int dry;              /* fm_acts_size: count the bytes, allocate no buffer */
    size_t bytes;
    void **allocs; /* every allocation, for fm_acts_free */
    int nallocs, capallocs;

    layer_acts *lay; /* [l1 - l0] */
    /* backward scratch of the encoder (d3 and gI are also the forward's) */
    float *d1, *d2, *d3, *dq, *dk, *dv; /* (B,T,H) */
    float *e0, *e1;                     /* (B,T,H) gradients between layers, at first use */
    float *dI, *gI;                     /* (B,T,I) gradient and recomputed GELU */

    /* embeddings */
    float *emb_sum, *emb_mean, *emb_rstd; /* (B,T,H), (B,T), (B,T) */
    uint64_t *emb_bits;
    float *emb_d; /* (B,T,H) scratch */

    /* task head */
    float *xfinal;                  /* (B,T,H) last hidden state in the whole-model call */
    float *cls, *pooled, *pdrop;    /* (B,H) */
    uint64_t *head_bits;            /* (B,words(H)) */
    float *logits, *hprobs;         /* (B,NL) */
    float *hd0, *hd1, *dlogits;     /* (B,H), (B,H), (B,NL) */
    int head_loss;                  /* the forward had labels/targets */

    /* MLM head (rows with a label only) */
    int32_t *mlm_rows, *mlm_lab; /* (B*T) */
    int mlm_n;
    float *mlm_x, *mlm_pre, *mlm_act, *mlm_out, *mlm_mean, *mlm_rstd; /* (n,H), (n) */
    float *mlm_d0, *mlm_d1;                                          /* (n,H) scratch */
    float *mlm_probs;                                                /* (n,V), grown on demand */
    size_t mlm_cap;                                                  /* floats in mlm_probs */

    /* whole-model gradients: dmlm with the MLM head, dtop and demb at the
     * first fm_model_backward */
    float *dtop, *dmlm, *demb; /* (B,T,H) */
};

/* ---- allocation --------------------------------------------------------------- */

static void *track(fm_acts *a, void *p, size_t bytes) {
    a->bytes += bytes;
    if (!p) return NULL;
    if (a->nallocs == a->capallocs) {
        a->capallocs = a->capallocs ? 2 * a->capallocs : 64;
        a->allocs = fm_xrealloc(a->allocs, (size_t)a->capallocs * sizeof *a->allocs);
    }
    a->allocs[a->nallocs++] = p;
    return p;
}

static float *falloc(fm_acts *a, size_t n) {
    return track(a, a->dry ? NULL : fm_xalloc_floats(n), n * sizeof(float));
}

static uint64_t *balloc(fm_acts *a, size_t rows, int n) {
    size_t words = rows * (size_t)fm_bits_words(n);
    /* fm_xalloc_floats gives aligned zeroed storage; two floats per word. */
    return track(a, a->dry ? NULL : fm_xalloc_floats(2 * words), words * sizeof(uint64_t));
}

/* One encoder layer's saved tensors, input included: A heads of Hl
 * features side by side and I intermediate features (a tensor-parallel
 * rank's shares, or the whole layer's). */
static void layer_alloc(fm_acts *a, layer_acts *la, size_t BT, int H, int Hl, int A, int I, int T) {
    const size_t BTH = BT * H, BTl = BT * Hl;
    la->inp = falloc(a, BTH);
    la->q = falloc(a, BTl);
    la->k = falloc(a, BTl);
    la->v = falloc(a, BTl);
    la->probs = falloc(a, BT * A * T);
    la->pbits = balloc(a, BT * A, T);
    la->ctx = falloc(a, BTl);
    la->res1 = falloc(a, BTH);
    la->mean1 = falloc(a, BT);
    la->rstd1 = falloc(a, BT);
    la->bits1 = balloc(a, BT, H);
    la->y1 = falloc(a, BTH);
    la->pre = falloc(a, BT * I);
    la->res2 = falloc(a, BTH);
    la->mean2 = falloc(a, BT);
    la->rstd2 = falloc(a, BT);
    la->bits2 = balloc(a, BT, H);
}

/* The encoder layers' part: for training every layer's saved tensors and the
 * backward scratch; forward-only one layer's tensors that every layer
 * reuses in turn, the inputs alternating between two buffers so that a
 * layer never writes its output over its own input. */
static void encoder_alloc(fm_acts *a, size_t BT, int H, int Hl, int A, int I, int T) {
    const int nl = a->l1 - a->l0;
    const size_t BTH = BT * H, BTI = BT * I, BTl = BT * Hl;
    a->lay = track(a, fm_xcalloc((size_t)(nl > 0 ? nl : 1), sizeof *a->lay), (size_t)nl * sizeof *a->lay);
    if (nl == 0) return;
    if (a->forward_only) {
        layer_alloc(a, &a->lay[0], BT, H, Hl, A, I, T);
        float *other = nl > 1 ? falloc(a, BTH) : NULL;
        for (int i = 1; i < nl; i++) {
            a->lay[i] = a->lay[0];
            if (i % 2) a->lay[i].inp = other;
        }
        a->d3 = falloc(a, BTH); /* the [CLS]-only layer's scratch */
        a->gI = falloc(a, BTI); /* the GELU output */
        return;
    }
    for (int i = 0; i < nl; i++) layer_alloc(a, &a->lay[i], BT, H, Hl, A, I, T);
    a->d1 = falloc(a, BTH);
    a->d2 = falloc(a, BTH);
    a->d3 = falloc(a, BTH); /* also a tensor-parallel layer's partial sums (B,T,H) */
    a->dq = falloc(a, BTl);
    a->dk = falloc(a, BTl);
    a->dv = falloc(a, BTl);
    a->dI = falloc(a, BTI);
    a->gI = falloc(a, BTI);
}

/* The task head's part (the pooler and classifier). */
static void head_alloc(fm_acts *a, int B, int H, size_t NL) {
    a->cls = falloc(a, (size_t)B * H);
    a->pooled = falloc(a, (size_t)B * H);
    a->pdrop = falloc(a, (size_t)B * H);
    a->head_bits = balloc(a, (size_t)B, H);
    a->logits = falloc(a, (size_t)B * NL);
    a->hprobs = falloc(a, (size_t)B * NL);
    if (a->forward_only) return;
    a->hd0 = falloc(a, (size_t)B * H);
    a->hd1 = falloc(a, (size_t)B * H);
    a->dlogits = falloc(a, (size_t)B * NL);
}

static fm_acts *acts_new(const fm_config *c, int B, int T, int l0, int l1, int forward_only, int dry, int heads,
                         int inter) {
    assert(B > 0 && T > 0 && T <= c->max_position_embeddings);
    assert(0 <= l0 && l0 <= l1 && l1 <= c->num_hidden_layers);
    fm_acts *a = fm_xcalloc(1, sizeof *a);
    a->cfg = *c;
    a->B = B;
    a->T = T;
    a->l0 = l0;
    a->l1 = l1;
    a->forward_only = forward_only;
    a->dry = dry;
    const int L = c->num_hidden_layers, H = c->hidden_size;
    const size_t BT = (size_t)B * T, BTH = BT * H;
    a->embed = l0 == 0;
    a->head = l1 == L;
    a->mlm = a->head && c->with_mlm;
    encoder_alloc(a, BT, H, H / c->num_attention_heads * heads, heads, inter, T);
    if (a->embed) {
        a->emb_sum = falloc(a, BTH);
        a->emb_mean = falloc(a, BT);
        a->emb_rstd = falloc(a, BT);
        a->emb_bits = balloc(a, BT, H);
        if (!forward_only) a->emb_d = falloc(a, BTH);
    }
    if (a->head) head_alloc(a, B, H, (size_t)(c->num_labels > 0 ? c->num_labels : 1));
    if (a->embed && a->head) a->xfinal = falloc(a, BTH); /* fm_model_forward's */
    if (a->mlm) {
        a->mlm_rows = track(a, dry ? NULL : fm_xcalloc(BT, sizeof(int32_t)), BT * sizeof(int32_t));
        a->mlm_lab = track(a, dry ? NULL : fm_xcalloc(BT, sizeof(int32_t)), BT * sizeof(int32_t));
        a->mlm_x = falloc(a, BTH);
        a->mlm_pre = falloc(a, BTH);
        a->mlm_act = falloc(a, BTH);
        a->mlm_out = falloc(a, BTH);
        a->mlm_mean = falloc(a, BT);
        a->mlm_rstd = falloc(a, BT);
        if (!forward_only) {
            a->mlm_d0 = falloc(a, BTH);
            a->mlm_d1 = falloc(a, BTH);
            a->dmlm = falloc(a, BTH);
        }
    }
    return a;
}

fm_acts *fm_acts_new(const fm_config *c, int B, int T, int l0, int l1) {
    return acts_new(c, B, T, l0, l1, 0, 0, c->num_attention_heads, c->intermediate_size);
}

fm_acts *fm_acts_new_forward(const fm_config *c, int B, int T, int l0, int l1) {
    return acts_new(c, B, T, l0, l1, 1, 0, c->num_attention_heads, c->intermediate_size);
}

size_t fm_acts_size(const fm_config *c, int B, int T, int l0, int l1, int forward_only) {
    fm_acts *a = acts_new(c, B, T, l0, l1, forward_only, 1, c->num_attention_heads, c->intermediate_size);
    size_t bytes = a->bytes;
    fm_acts_free(a);
    return bytes;
}

fm_acts *fm_acts_new_for(const fm_model *m, int B, int T, int l0, int l1, int forward_only) {
    int heads, inter;
    fm_layout_tp_shares(&m->lay, &m->cfg, &heads, &inter);
    return acts_new(&m->cfg, B, T, l0, l1, forward_only, 0, heads, inter);
}

size_t fm_acts_size_for(const fm_model *m, int B, int T, int l0, int l1, int forward_only) {
    int heads, inter;
    fm_layout_tp_shares(&m->lay, &m->cfg, &heads, &inter);
    fm_acts *a = acts_new(&m->cfg, B, T, l0, l1, forward_only, 1, heads, inter);
    size_t bytes = a->bytes;
    fm_acts_free(a);
    return bytes;
}

/* *slot, allocated (n floats) at its first use and held until fm_acts_free. */
static float *at_first_use(fm_acts *a, float **slot, size_t n) {
    if (!*slot) *slot = falloc(a, n);
    return *slot;
}

void fm_acts_free(fm_acts *a) {
    if (!a) return;
    /* lay and the MLM index arrays came from fm_xcalloc, the rest from fm_xalloc_floats. */
    for (int i = 0; i < a->nallocs; i++) {
        void *p = a->allocs[i];
        if (p == a->lay || p == a->mlm_rows || p == a->mlm_lab)
            free(p);
        else
            fm_free_aligned(p);
    }
    fm_free_aligned(a->mlm_probs);
    free(a->allocs);
    free(a);
}

size_t fm_acts_bytes(const fm_acts *a) { return a->bytes + a->mlm_cap * sizeof(float); }

/* ---- the model ------------------------------------------------------------------ */

void fm_model_alloc(fm_model *m, const fm_config *c) { fm_model_alloc_stage(m, c, 0, 1); }

/* m->own and [own_begin, own_end) for pipeline stage `stage` of `nstages`
 * over m->lay (nothing owned apart: nstages <= 1). */
static void own_stage(fm_model *m, int stage, int nstages) {
    if (nstages <= 1) {
        m->own_end = m->lay.numel;
        return;
    }
    const int L = m->cfg.num_hidden_layers;
    m->own = fm_xcalloc((size_t)(m->lay.n ? m->lay.n : 1), 1);
    m->own_begin = m->lay.numel;
    for (int i = 0; i < m->lay.n; i++) {
        const fm_tensor *t = &m->lay.t[i];
        if (fm_layout_stage(t, L, nstages) != stage) continue;
        m->own[i] = 1;
        if (t->offset < m->own_begin) m->own_begin = t->offset;
        if (t->offset + t->numel > m->own_end) m->own_end = t->offset + t->numel;
    }
    if (m->own_end < m->own_begin) m->own_begin = m->own_end = 0;
}

/* params and grads (zeroed) over m's layout and ownership, and the views. */
static void alloc_arrays(fm_model *m) {
    m->params = fm_model_alloc_floats(m);
    m->grads = fm_model_alloc_floats(m);
    fm_view_bind(&m->w, &m->lay, &m->cfg, m->params);
    fm_view_bind(&m->g, &m->lay, &m->cfg, m->grads);
}

void fm_model_alloc_stage(fm_model *m, const fm_config *c, int stage, int nstages) {
    memset(m, 0, sizeof *m);
    m->cfg = *c;
    fm_layout_build(&m->lay, c);
    own_stage(m, stage, nstages);
    alloc_arrays(m);
}

float *fm_model_alloc_floats(const fm_model *m) {
    if (!m->own) return fm_xalloc_floats(m->lay.numel);
    return fm_xalloc_floats_part(m->lay.numel, m->own_begin, m->own_end);
}

void fm_model_free_floats(const fm_model *m, float *p) {
    if (m->own)
        fm_free_floats_part(p, m->lay.numel);
    else
        fm_free_aligned(p);
}

/* m's whole layout `whole` (taken) and rank `rank` of P's shard layout of
 * it, owned as stage `stage` of `nstages`, with arrays. */
static void alloc_shard(fm_model *m, fm_layout *whole, int rank, int P, int stage, int nstages) {
    m->whole = *whole;
    fm_layout_shard(&m->lay, &m->whole, &m->cfg, rank, P);
    own_stage(m, stage, nstages);
    alloc_arrays(m);
}

void fm_model_alloc_shard(fm_model *m, const fm_config *c, int rank, int P, int stage, int nstages) {
    memset(m, 0, sizeof *m);
    m->cfg = *c;
    fm_layout whole;
    fm_layout_build(&whole, c);
    alloc_shard(m, &whole, rank, P, stage, nstages);
}

void fm_model_shard(fm_model *dst, const fm_model *src, int rank, int P, int stage, int nstages) {
    assert(src->lay.tp_size <= 1);
    memset(dst, 0, sizeof *dst);
    dst->cfg = src->cfg;
    fm_layout whole = src->lay;
    whole.t = fm_xmalloc(sizeof *whole.t * (size_t)(src->lay.n ? src->lay.n : 1));
    memcpy(whole.t, src->lay.t, sizeof *whole.t * (size_t)src->lay.n);
    alloc_shard(dst, &whole, rank, P, stage, nstages);
    for (int i = 0; i < dst->lay.n; i++)
        if (fm_model_holds(dst, i))
            fm_tensor_slice(&dst->lay, &dst->lay.t[i], src->params + src->lay.t[i].offset,
                            dst->params + dst->lay.t[i].offset);
}

void fm_model_free(fm_model *m) {
    fm_layout_free(&m->whole);
    fm_view_free(&m->w);
    fm_view_free(&m->g);
    fm_model_free_floats(m, m->params);
    fm_model_free_floats(m, m->grads);
    free(m->own);
    fm_layout_free(&m->lay);
    memset(m, 0, sizeof *m);
}

static int model_ends_with(const char *s, const char *suffix) {
    size_t ls = strlen(s), lx = strlen(suffix);
    return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

void fm_model_init_weights(fm_model *m, uint64_t seed) { fm_model_init_tensors(m, seed, 0); }

void fm_model_init_tensors(fm_model *m, uint64_t seed, unsigned skip_flags) {
    const float std = m->cfg.initializer_range;
    for (int i = 0; i < m->lay.n; i++) {
        const fm_tensor *t = &m->lay.t[i];
        if ((t->flags & skip_flags) || !fm_model_holds(m, i)) continue;
        float *p = m->params + t->offset;
        if (t->flags & FM_T_MATRIX) {
            fm_rng_normals(seed, FM_RNG_INIT, 0, (uint32_t)i, p, t->numel);
            for (size_t j = 0; j < t->numel; j++) p[j] *= std;
            /* nn.Embedding(padding_idx): the pad token's row starts at zero. */
            if (!strcmp(t->name, "embeddings.word_embeddings.weight"))
                memset(p + (size_t)m->cfg.pad_token_id * m->cfg.hidden_size, 0,
                       (size_t)m->cfg.hidden_size * sizeof(float));
        } else {
            float v = (t->flags & FM_T_LN) && model_ends_with(t->name, ".weight") ? 1.0f : 0.0f;
            for (size_t j = 0; j < t->numel; j++) p[j] = v;
        }
    }
}

void fm_model_zero_grads(fm_model *m) {
    memset(m->grads + m->own_begin, 0, (m->own_end - m->own_begin) * sizeof *m->grads);
}

const fm_tensor *fm_model_tensor_at(const fm_model *m, const float *p) {
    size_t off;
    if (p >= m->params && p < m->params + m->lay.numel)
        off = (size_t)(p - m->params);
    else if (p >= m->grads && p < m->grads + m->lay.numel)
        off = (size_t)(p - m->grads);
    else
        return NULL;
    /* Tensors are in offset order: the last one starting at or before off. */
    int lo = 0, hi = m->lay.n - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (m->lay.t[mid].offset <= off)
            lo = mid;
        else
            hi = mid - 1;
    }
    const fm_tensor *t = &m->lay.t[lo];
    return off < t->offset + t->numel ? t : NULL;
}

/* The gradient buffer gp when its tensor needs a gradient, else NULL. */
static float *G(const fm_model *m, float *gp) {
    if (!gp) return NULL;
    const fm_tensor *t = fm_model_tensor_at(m, gp);
    return (!t || t->needs_grad) ? gp : NULL;
}

fm_drop fm_pass_drop(const fm_batch *b, const fm_pass *p, int layer, fm_drop_site site, float prob) {
    fm_drop d;
    memset(&d, 0, sizeof d);
    d.p = (p && p->training) ? prob : 0.0f;
    d.seed = p ? p->seed : 0;
    d.step = p ? p->step : 0;
    d.stream = fm_dropout_stream(layer, site);
    d.example0 = b->example0;
    return d;
}

/* Let the weights hook (if any) point piece's views where it wants. */
static void weights_for(fm_model *m, int piece) {
    if (m->weights_fn) m->weights_fn(m->weights_ctx, m, piece);
}

static void check_batch(const fm_acts *a, const fm_batch *b) {
    assert(b->B > 0 && b->B <= a->B && b->T > 0 && b->T <= a->T);
    (void)a;
    (void)b;
}

/* ---- embeddings -------------------------------------------------------------------- */

void fm_embed_forward(fm_model *m, fm_acts *a, const fm_batch *b, const fm_pass *p, float *x) {
    const fm_config *c = &m->cfg;
    assert(a->embed);
    check_batch(a, b);
    const int B = b->B, T = b->T, H = c->hidden_size, BT = B * T;
#ifndef NDEBUG
    for (int i = 0; i < BT; i++) {
        assert(b->ids[i] >= 0 && b->ids[i] < c->vocab_size);
        assert(!b->type_ids || (b->type_ids[i] >= 0 && b->type_ids[i] < c->type_vocab_size));
    }
#endif
    weights_for(m, -1);
    fm_embed_sum_forward(a->emb_sum, b->ids, b->type_ids, m->w.word, m->w.pos, m->w.type, B, T, H);
    fm_layernorm_forward(x, a->emb_mean, a->emb_rstd, a->emb_sum, m->w.emb_ln_g, m->w.emb_ln_b, BT, H,
                         c->layer_norm_eps);
    fm_drop d = fm_pass_drop(b, p, -1, FM_SITE_EMBED, c->hidden_dropout_prob);
    fm_dropout_residual_forward(x, a->emb_bits, x, NULL, NULL, BT, H, T, c->max_position_embeddings, &d);
}

void fm_embed_backward(fm_model *m, fm_acts *a, const fm_batch *b, const fm_pass *p, const float *dx) {
    const fm_config *c = &m->cfg;
    assert(a->embed && !a->forward_only);
    const int B = b->B, T = b->T, H = c->hidden_size, BT = B * T;
    weights_for(m, -1);
    fm_drop d = fm_pass_drop(b, p, -1, FM_SITE_EMBED, c->hidden_dropout_prob);
    fm_dropout_backward(a->emb_d, dx, a->emb_bits, BT, H, &d);
    fm_layernorm_backward(a->emb_d, G(m, m->g.emb_ln_g), G(m, m->g.emb_ln_b), a->emb_d, a->emb_sum, a->emb_mean,
                          a->emb_rstd, m->w.emb_ln_g, BT, H);
    fm_embed_sum_backward(G(m, m->g.word), G(m, m->g.pos), G(m, m->g.type), a->emb_d, b->ids, b->type_ids,
                          c->pad_token_id, B, T, H);
}

/* ---- encoder ------------------------------------------------------------------------ */

/* 1 when layer l runs at the [CLS] positions only (see fm_pass.cls_only_last). */
static int cls_only(const fm_model *m, const fm_pass *p, int l) {
    const fm_config *c = &m->cfg;
    return p && p->cls_only_last && l == c->num_hidden_layers - 1 && c->num_labels > 0 && !c->with_mlm &&
           m->lay.tp_size <= 1;
}

/* Tensor parallelism: x (n floats) summed over the ranks of the stage. A
 * failed sum is the communication's to report (its next call fails too);
 * the layer goes on with what it has. */
static void tp_sum(const fm_model *m, float *x, size_t n) {
    if (m->lay.tp_size > 1) (void)m->tp_sum(m->tp_ctx, x, n);
}

/* dst (B,H) = the position-0 rows of src (B,T,H). */
static void gather_cls(float *dst, const float *src, int B, int T, int H) {
    for (int i = 0; i < B; i++) memcpy(dst + (size_t)i * H, src + (size_t)i * T * H, (size_t)H * sizeof *dst);
}

/* dst (B,T,H) = src (B,H) at position 0 and zero elsewhere. */
static void scatter_cls(float *dst, const float *src, int B, int T, int H) {
    memset(dst, 0, (size_t)B * T * H * sizeof *dst);
    for (int i = 0; i < B; i++) memcpy(dst + (size_t)i * T * H, src + (size_t)i * H, (size_t)H * sizeof *dst);
}

/* layer_forward at position 0 only: the saved q, ctx, res1, y1, pre, res2,
 * their statistics and dropout bits hold B rows (the attention's probs
 * (B,A,T)); k and v every position. a->d3 is scratch. */
static void layer_forward_cls(fm_model *m, fm_acts *a, const fm_batch *b, const fm_pass *p, int l, float *out) {
    const fm_config *c = &m->cfg;
    const int B = b->B, T = b->T, H = c->hidden_size, I = c->intermediate_size, A = c->num_attention_heads;
    const int BT = B * T, P = c->max_position_embeddings;
    const fm_layer_view *w = &m->w.layer[l];
    layer_acts *la = &a->lay[l - a->l0];
    fm_drop dp = fm_pass_drop(b, p, l, FM_SITE_ATTN_PROBS, c->attention_probs_dropout_prob);
    fm_drop d1 = fm_pass_drop(b, p, l, FM_SITE_ATTN_OUT, c->hidden_dropout_prob);
    fm_drop d2 = fm_pass_drop(b, p, l, FM_SITE_FFN_OUT, c->hidden_dropout_prob);
    float *xc = a->d3;

    fm_linear_forward_cls(la->q, la->inp, (ptrdiff_t)T * H, w->wq, w->bq, B, T, H, H);
    fm_linear_forward(la->k, la->inp, H, w->wk, w->bk, BT, H, H);
    fm_linear_forward(la->v, la->inp, H, w->wv, w->bv, BT, H, H);
    fm_attention_cls_forward(la->ctx, la->probs, la->pbits, la->q, la->k, la->v, b->attn_mask, B, T, H, A, P, &dp);
    fm_linear_forward_cls(la->res1, la->ctx, H, w->wd, NULL, B, T, H, H);
    /* one row per example: "T = 1" keys the dropout at position 0 */
    gather_cls(xc, la->inp, B, T, H);
    fm_dropout_residual_forward(la->res1, la->bits1, la->res1, w->bd, xc, B, H, 1, P, &d1);
    fm_layernorm_forward(la->y1, la->mean1, la->rstd1, la->res1, w->ln1_g, w->ln1_b, B, H, c->layer_norm_eps);
    fm_linear_forward_cls(la->pre, la->y1, H, w->wi, NULL, B, T, H, I);
    fm_gelu_forward(a->gI, la->pre, la->pre, w->bi, B, I, c->hidden_act);
    fm_linear_forward_cls(la->res2, a->gI, I, w->wo, NULL, B, T, I, H);
    fm_dropout_residual_forward(la->res2, la->bits2, la->res2, w->bo, la->y1, B, H, 1, P, &d2);
    fm_layernorm_forward(xc, la->mean2, la->rstd2, la->res2, w->ln2_g, w->ln2_b, B, H, c->layer_norm_eps);
    scatter_cls(out, xc, B, T, H);
}

/* layer_backward at position 0 only (after layer_forward_cls): dout is read
 * at position 0 only. a->d3 is scratch. */
static void layer_backward_cls(fm_model *m, fm_acts *a, const fm_batch *b, const fm_pass *p, int l,
                               const float *dout, float *dinp) {
    const fm_config *c = &m->cfg;
    const int B = b->B, T = b->T, H = c->hidden_size, I = c->intermediate_size, A = c->num_attention_heads;
    const int BT = B * T;
    const fm_layer_view *w = &m->w.layer[l];
    const fm_layer_view *g = &m->g.layer[l];
    layer_acts *la = &a->lay[l - a->l0];
    fm_drop dp = fm_pass_drop(b, p, l, FM_SITE_ATTN_PROBS, c->attention_probs_dropout_prob);
    fm_drop d1 = fm_pass_drop(b, p, l, FM_SITE_ATTN_OUT, c->hidden_dropout_prob);
    fm_drop d2 = fm_pass_drop(b, p, l, FM_SITE_FFN_OUT, c->hidden_dropout_prob);
    float *dc = a->d3;

    gather_cls(dc, dout, B, T, H);
    fm_layernorm_backward(a->d1, G(m, g->ln2_g), G(m, g->ln2_b), dc, la->res2, la->mean2, la->rstd2, w->ln2_g, B, H);
    fm_dropout_backward(a->d2, a->d1, la->bits2, B, H, &d2);
    float *gwo = G(m, g->wo);
    fm_linear_backward_cls(a->dI, 0, NULL, NULL, a->d2, NULL, I, w->wo, B, T, I, H);
    fm_gelu_backward(a->dI, gwo ? a->gI : NULL, a->dI, la->pre, (size_t)B * I, c->hidden_act);
    fm_linear_backward_cls(NULL, 0, gwo, G(m, g->bo), a->d2, a->gI, I, w->wo, B, T, I, H);
    fm_linear_backward_cls(a->d1, 1, G(m, g->wi), G(m, g->bi), a->dI, la->y1, H, w->wi, B, T, H, I);
    /* dc = d res1 at [CLS] */
    fm_layernorm_backward(dc, G(m, g->ln1_g), G(m, g->ln1_b), a->d1, la->res1, la->mean1, la->rstd1, w->ln1_g, B, H);
    fm_dropout_backward(a->d2, dc, la->bits1, B, H, &d1);
    /* d1 = d ctx */
    fm_linear_backward_cls(a->d1, 0, G(m, g->wd), G(m, g->bd), a->d2, la->ctx, H, w->wd, B, T, H, H);
    fm_attention_cls_backward(a->dq, a->dk, a->dv, a->d1, la->probs, la->pbits, la->q, la->k, la->v, B, T, H, A,
                              &dp);
    /* the [CLS] rows of dinp: residual share, then the query path */
    fm_linear_backward_cls(dc, 1, G(m, g->wq), G(m, g->bq), a->dq, la->inp, (ptrdiff_t)T * H, w->wq, B, T, H, H);
    scatter_cls(dinp, dc, B, T, H);
    fm_linear_backward(dinp, 1, G(m, g->wk), G(m, g->bk), a->dk, la->inp, H, w->wk, BT, H, H);
    fm_linear_backward(dinp, 1, G(m, g->wv), G(m, g->bv), a->dv, la->inp, H, w->wv, BT, H, H);
}

/* Where the input gradient of a row-parallel product goes (the gradients
 * of y1 through W_I and of the layer input through Q, K, V): on one rank
 * straight into dst, the products accumulating there (beta 1); under tensor
 * parallelism into scratch (beta 0 for the first product), which
 * dx_sum_finish then sums over the ranks and adds to dst. *beta is the
 * first product's. */
static float *dx_sum_target(const fm_model *m, float *dst, float *scratch, int *beta) {
    *beta = m->lay.tp_size > 1 ? 0 : 1;
    return m->lay.tp_size > 1 ? scratch : dst;
}

static void dx_sum_finish(const fm_model *m, float *dst, float *scratch, size_t n) {
    if (m->lay.tp_size <= 1) return;
    tp_sum(m, scratch, n);
    fm_residual_backward(dst, NULL, scratch, n);
}

/* One encoder layer, out (B,T,H) from its saved input. On a tensor-parallel
 * rank (mpi/tp.h's layout) it computes its shares, Al heads and Il
 * intermediate features (fm_layout_tp_shares; on one rank A and I), with a
 * sum after each row-parallel product; everything from the sums on (bias,
 * dropout, residual, LayerNorm) is whole and the same on every rank. */
static void layer_forward(fm_model *m, fm_acts *a, const fm_batch *b, const fm_pass *p, int l, float *out) {
    const fm_config *c = &m->cfg;
    const int B = b->B, T = b->T, H = c->hidden_size, A = c->num_attention_heads, BT = B * T;
    const int P = c->max_position_embeddings, hs = H / A;
    weights_for(m, l);
    if (cls_only(m, p, l)) {
        layer_forward_cls(m, a, b, p, l, out);
        return;
    }
    int Al, Il;
    fm_layout_tp_shares(&m->lay, c, &Al, &Il);
    const int Hl = Al * hs, tp = m->lay.tp_size > 1;
    const fm_layer_view *w = &m->w.layer[l];
    layer_acts *la = &a->lay[l - a->l0];
    fm_drop dp = fm_pass_drop(b, p, l, FM_SITE_ATTN_PROBS, c->attention_probs_dropout_prob);
    fm_drop d1 = fm_pass_drop(b, p, l, FM_SITE_ATTN_OUT, c->hidden_dropout_prob);
    fm_drop d2 = fm_pass_drop(b, p, l, FM_SITE_FFN_OUT, c->hidden_dropout_prob);

    fm_linear_forward(la->q, la->inp, H, w->wq, w->bq, BT, H, Hl);
    fm_linear_forward(la->k, la->inp, H, w->wk, w->bk, BT, H, Hl);
    fm_linear_forward(la->v, la->inp, H, w->wv, w->bv, BT, H, Hl);
    fm_attention_forward_heads(la->ctx, la->probs, la->pbits, la->q, la->k, la->v, b->attn_mask, B, T, Hl, Al, A,
                               tp ? m->lay.tp_rank : 0, tp ? m->lay.tp_size : 1, P, &dp);
    fm_linear_forward(la->res1, la->ctx, Hl, w->wd, NULL, BT, Hl, H); /* bias added with the dropout */
    tp_sum(m, la->res1, (size_t)BT * H);
    fm_dropout_residual_forward(la->res1, la->bits1, la->res1, w->bd, la->inp, BT, H, T, P, &d1);
    fm_layernorm_forward(la->y1, la->mean1, la->rstd1, la->res1, w->ln1_g, w->ln1_b, BT, H, c->layer_norm_eps);
    /* intermediate: bias added with the GELU; the GELU output goes to scratch */
    fm_linear_forward(la->pre, la->y1, H, w->wi, NULL, BT, H, Il);
    fm_gelu_forward(a->gI, la->pre, la->pre, w->bi, BT, Il, c->hidden_act);
    fm_linear_forward(la->res2, a->gI, Il, w->wo, NULL, BT, Il, H);
    tp_sum(m, la->res2, (size_t)BT * H);
    fm_dropout_residual_forward(la->res2, la->bits2, la->res2, w->bo, la->y1, BT, H, T, P, &d2);
    fm_layernorm_forward(out, la->mean2, la->rstd2, la->res2, w->ln2_g, w->ln2_b, BT, H, c->layer_norm_eps);
}

/* dinp (B,T,H) from dout (B,T,H); dinp must not be scratch of a. On a
 * tensor-parallel rank the gradients of y1 (through W_I) and of the layer
 * input (through Q, K, V) are the two sums; every weight gradient is local,
 * and those of the whole tensors (b_D, b_O, LayerNorms) are the same on
 * every rank, computed from the same summed data. */
static void layer_backward(fm_model *m, fm_acts *a, const fm_batch *b, const fm_pass *p, int l, const float *dout,
                           float *dinp) {
    const fm_config *c = &m->cfg;
    const int B = b->B, T = b->T, H = c->hidden_size, A = c->num_attention_heads, BT = B * T, hs = H / A;
    const size_t BTH = (size_t)BT * H;
    weights_for(m, l);
    if (cls_only(m, p, l)) {
        layer_backward_cls(m, a, b, p, l, dout, dinp);
        return;
    }
    int Al, Il, beta;
    fm_layout_tp_shares(&m->lay, c, &Al, &Il);
    const int Hl = Al * hs;
    const fm_layer_view *w = &m->w.layer[l];
    const fm_layer_view *g = &m->g.layer[l];
    layer_acts *la = &a->lay[l - a->l0];
    fm_drop dp = fm_pass_drop(b, p, l, FM_SITE_ATTN_PROBS, c->attention_probs_dropout_prob);
    fm_drop d1 = fm_pass_drop(b, p, l, FM_SITE_ATTN_OUT, c->hidden_dropout_prob);
    fm_drop d2 = fm_pass_drop(b, p, l, FM_SITE_FFN_OUT, c->hidden_dropout_prob);

    /* LayerNorm 2: d1 = d res2 */
    fm_layernorm_backward(a->d1, G(m, g->ln2_g), G(m, g->ln2_b), dout, la->res2, la->mean2, la->rstd2, w->ln2_g, BT,
                          H);
    /* dropout: d2 = d (output dense) */
    fm_dropout_backward(a->d2, a->d1, la->bits2, BT, H, &d2);
    /* output dense: dI = d gelu; then through the GELU, recomputing its
     * output for the weight gradient of the output dense */
    float *gwo = G(m, g->wo);
    fm_linear_backward(a->dI, 0, NULL, NULL, a->d2, NULL, Il, w->wo, BT, Il, H);
    fm_gelu_backward(a->dI, gwo ? a->gI : NULL, a->dI, la->pre, (size_t)BT * Il, c->hidden_act);
    fm_linear_backward(NULL, 0, gwo, G(m, g->bo), a->d2, a->gI, Il, w->wo, BT, Il, H);
    /* intermediate dense: d1 = d y1 (residual path + through W_I) */
    float *dx = dx_sum_target(m, a->d1, a->d3, &beta);
    fm_linear_backward(dx, beta, G(m, g->wi), G(m, g->bi), a->dI, la->y1, H, w->wi, BT, H, Il);
    dx_sum_finish(m, a->d1, a->d3, BTH);
    /* LayerNorm 1: dinp = d res1 (its residual share; the rest is added below) */
    fm_layernorm_backward(dinp, G(m, g->ln1_g), G(m, g->ln1_b), a->d1, la->res1, la->mean1, la->rstd1, w->ln1_g, BT,
                          H);
    /* dropout: d2 = d (attention dense) */
    fm_dropout_backward(a->d2, dinp, la->bits1, BT, H, &d1);
    /* attention dense: d3 = d ctx */
    fm_linear_backward(a->d3, 0, G(m, g->wd), G(m, g->bd), a->d2, la->ctx, Hl, w->wd, BT, Hl, H);
    fm_attention_backward(a->dq, a->dk, a->dv, a->d3, la->probs, la->pbits, la->q, la->k, la->v, B, T, Hl, Al, &dp);
    /* Q, K, V: dinp += d x */
    dx = dx_sum_target(m, dinp, a->d1, &beta);
    fm_linear_backward(dx, beta, G(m, g->wq), G(m, g->bq), a->dq, la->inp, H, w->wq, BT, H, Hl);
    fm_linear_backward(dx, 1, G(m, g->wk), G(m, g->bk), a->dk, la->inp, H, w->wk, BT, H, Hl);
    fm_linear_backward(dx, 1, G(m, g->wv), G(m, g->bv), a->dv, la->inp, H, w->wv, BT, H, Hl);
    dx_sum_finish(m, dinp, a->d1, BTH);
}

void fm_encoder_forward(fm_model *m, fm_acts *a, const fm_batch *b, const fm_pass *p, int l0, int l1,
                        const float *x_in, float *x_out) {
    assert(a->l0 <= l0 && l0 <= l1 && l1 <= a->l1);
    check_batch(a, b);
    const size_t BTH = (size_t)b->B * b->T * m->cfg.hidden_size;
    if (l0 == l1) {
        if (x_out != x_in) memcpy(x_out, x_in, BTH * sizeof *x_out);
        return;
    }
    layer_acts *first = &a->lay[l0 - a->l0];
    if (x_in != first->inp) memcpy(first->inp, x_in, BTH * sizeof *x_in);
    for (int l = l0; l < l1; l++) {
        float *out = l + 1 < l1 ? a->lay[l + 1 - a->l0].inp : x_out;
        layer_forward(m, a, b, p, l, out);
    }
}

void fm_encoder_backward(fm_model *m, fm_acts *a, const fm_batch *b, const fm_pass *p, int l0, int l1,
                         const float *dx_out, float *dx_in) {
    assert(a->l0 <= l0 && l0 <= l1 && l1 <= a->l1 && !a->forward_only);
    const size_t BTH = (size_t)b->B * b->T * m->cfg.hidden_size;
    if (l0 == l1) {
        if (dx_in != dx_out) memcpy(dx_in, dx_out, BTH * sizeof *dx_in);
        return;
    }
    const float *dout = dx_out;
    for (int l = l1 - 1; l >= l0; l--) {
        float *din = l == l0 ? dx_in : at_first_use(a, (l1 - 1 - l) % 2 == 0 ? &a->e0 : &a->e1,
                                                              (size_t)a->B * a->T * m->cfg.hidden_size);
        layer_backward(m, a, b, p, l, dout, din);
        dout = din;
    }
}

/* ---- task head -------------------------------------------------------------------------- */

float fm_head_forward(fm_model *m, fm_acts *a, const fm_batch *b, const fm_pass *p, const float *x, float *logits) {
    const fm_config *c = &m->cfg;
    assert(a->head && m->w.pool_w);
    check_batch(a, b);
    const int B = b->B, T = b->T, H = c->hidden_size, NL = c->num_labels;
    weights_for(m, c->num_hidden_layers);
    for (int i = 0; i < B; i++) memcpy(a->cls + (size_t)i * H, x + (size_t)i * T * H, (size_t)H * sizeof(float));
    fm_linear_forward(a->pooled, a->cls, H, m->w.pool_w, m->w.pool_b, B, H, H);
    fm_tanh_forward(a->pooled, a->pooled, NULL, B, H);
    a->head_loss = 0;
    if (NL <= 0) return 0.0f;
    fm_drop d = fm_pass_drop(b, p, c->num_hidden_layers, FM_SITE_HEAD, c->hidden_dropout_prob);
    fm_dropout_residual_forward(a->pdrop, a->head_bits, a->pooled, NULL, NULL, B, H, 1, 1, &d);
    fm_linear_forward(a->logits, a->pdrop, H, m->w.cls_w, m->w.cls_b, B, H, NL);
    if (logits) memcpy(logits, a->logits, (size_t)B * NL * sizeof *logits);
    if (NL >= 2 && b->labels) {
        a->head_loss = 1;
        return fm_crossentropy_forward(a->hprobs, a->logits, b->labels, B, NL);
    }
    if (NL == 1 && b->targets) {
        a->head_loss = 1;
        return fm_mse_forward(a->logits, b->targets, B);
    }
    return 0.0f;
}

void fm_head_backward(fm_model *m, fm_acts *a, const fm_batch *b, const fm_pass *p, float scale, float *dx) {
    const fm_config *c = &m->cfg;
    assert(a->head && !a->forward_only);
    const int B = b->B, T = b->T, H = c->hidden_size, NL = c->num_labels;
    memset(dx, 0, (size_t)B * T * H * sizeof *dx);
    if (NL <= 0 || !a->head_loss) return;
    weights_for(m, c->num_hidden_layers);
    if (NL >= 2)
        fm_crossentropy_backward(a->dlogits, a->hprobs, b->labels, scale, B, NL);
    else
        fm_mse_backward(a->dlogits, a->logits, b->targets, scale, B);
    fm_drop d = fm_pass_drop(b, p, c->num_hidden_layers, FM_SITE_HEAD, c->hidden_dropout_prob);
    fm_linear_backward(a->hd0, 0, G(m, m->g.cls_w), G(m, m->g.cls_b), a->dlogits, a->pdrop, H, m->w.cls_w, B, H, NL);
    fm_dropout_backward(a->hd0, a->hd0, a->head_bits, B, H, &d);
    fm_tanh_backward(a->hd0, a->hd0, a->pooled, (size_t)B * H);
    fm_linear_backward(a->hd1, 0, G(m, m->g.pool_w), G(m, m->g.pool_b), a->hd0, a->cls, H, m->w.pool_w, B, H, H);
    for (int i = 0; i < B; i++) memcpy(dx + (size_t)i * T * H, a->hd1 + (size_t)i * H, (size_t)H * sizeof *dx);
}

/* ---- MLM head ------------------------------------------------------------------------------ */

float fm_mlm_forward(fm_model *m, fm_acts *a, const fm_batch *b, const float *x, int *npred) {
    const fm_config *c = &m->cfg;
    assert(a->mlm);
    check_batch(a, b);
    const int BT = b->B * b->T, H = c->hidden_size, V = c->vocab_size;
    int n = 0;
    if (b->mlm_labels)
        for (int r = 0; r < BT; r++) {
            int y = b->mlm_labels[r];
            if (y >= 0 && y < V) {
                a->mlm_rows[n] = r;
                a->mlm_lab[n] = y;
                n++;
            }
        }
    a->mlm_n = n;
    if (npred) *npred = n;
    if (n == 0) return 0.0f;
    weights_for(m, -1); /* the decoder is tied to the word embeddings */
    for (int i = 0; i < n; i++)
        memcpy(a->mlm_x + (size_t)i * H, x + (size_t)a->mlm_rows[i] * H, (size_t)H * sizeof(float));
    fm_linear_forward(a->mlm_pre, a->mlm_x, H, m->w.mlm_w, NULL, n, H, H);
    fm_gelu_forward(a->mlm_act, a->mlm_pre, a->mlm_pre, m->w.mlm_b, n, H, c->hidden_act);
    fm_layernorm_forward(a->mlm_out, a->mlm_mean, a->mlm_rstd, a->mlm_act, m->w.mlm_ln_g, m->w.mlm_ln_b, n, H,
                         c->layer_norm_eps);
    size_t need = (size_t)n * V;
    if (need > a->mlm_cap) {
        fm_free_aligned(a->mlm_probs);
        a->mlm_probs = fm_xalloc_floats(need);
        a->mlm_cap = need;
    }
    /* decoder tied to the word embeddings */
    fm_linear_forward(a->mlm_probs, a->mlm_out, H, m->w.word, m->w.mlm_bias, n, H, V);
    return fm_crossentropy_forward(a->mlm_probs, a->mlm_probs, a->mlm_lab, n, V);
}

void fm_mlm_backward(fm_model *m, fm_acts *a, const fm_batch *b, float scale, float *dx) {
    const fm_config *c = &m->cfg;
    assert(a->mlm && !a->forward_only);
    const int BT = b->B * b->T, H = c->hidden_size, V = c->vocab_size, n = a->mlm_n;
    memset(dx, 0, (size_t)BT * H * sizeof *dx);
    if (n == 0) return;
    weights_for(m, -1);
    fm_crossentropy_backward(a->mlm_probs, a->mlm_probs, a->mlm_lab, scale, n, V);
    fm_linear_backward(a->mlm_d0, 0, G(m, m->g.word), G(m, m->g.mlm_bias), a->mlm_probs, a->mlm_out, H, m->w.word, n,
                       H, V);
    fm_layernorm_backward(a->mlm_d1, G(m, m->g.mlm_ln_g), G(m, m->g.mlm_ln_b), a->mlm_d0, a->mlm_act, a->mlm_mean,
                          a->mlm_rstd, m->w.mlm_ln_g, n, H);
    fm_gelu_backward(a->mlm_d1, NULL, a->mlm_d1, a->mlm_pre, (size_t)n * H, c->hidden_act);
    fm_linear_backward(a->mlm_d0, 0, G(m, m->g.mlm_w), G(m, m->g.mlm_b), a->mlm_d1, a->mlm_x, H, m->w.mlm_w, n, H, H);
    for (int i = 0; i < n; i++)
        memcpy(dx + (size_t)a->mlm_rows[i] * H, a->mlm_d0 + (size_t)i * H, (size_t)H * sizeof *dx);
}

/* ---- whole model ------------------------------------------------------------------------------ */

float fm_model_forward(fm_model *m, fm_acts *a, const fm_batch *b, const fm_pass *p, float *logits) {
    const fm_config *c = &m->cfg;
    const int L = c->num_hidden_layers;
    assert(a->l0 == 0 && a->l1 == L);
    float *xfinal = a->xfinal;
    float *x0 = L > 0 ? a->lay[0].inp : xfinal;
    fm_embed_forward(m, a, b, p, x0);
    fm_encoder_forward(m, a, b, p, 0, L, x0, xfinal);
    double loss = 0;
    if (c->num_labels > 0) loss += fm_head_forward(m, a, b, p, xfinal, logits);
    if (a->mlm) loss += fm_mlm_forward(m, a, b, xfinal, NULL);
    return (float)loss;
}

void fm_top_backward(fm_model *m, fm_acts *a, const fm_batch *b, const fm_pass *p, float scale, float *dx) {
    const fm_config *c = &m->cfg;
    const size_t BTH = (size_t)b->B * b->T * c->hidden_size;
    if (c->num_labels > 0)
        fm_head_backward(m, a, b, p, scale, dx);
    else
        memset(dx, 0, BTH * sizeof(float));
    if (a->mlm) {
        fm_mlm_backward(m, a, b, scale, a->dmlm);
        fm_residual_backward(dx, NULL, a->dmlm, BTH);
    }
}

void fm_model_backward(fm_model *m, fm_acts *a, const fm_batch *b, const fm_pass *p, float scale) {
    const int L = m->cfg.num_hidden_layers;
    assert(a->l0 == 0 && a->l1 == L && !a->forward_only);
    const size_t BTH = (size_t)a->B * a->T * m->cfg.hidden_size;
    float *dtop = at_first_use(a, &a->dtop, BTH), *demb = at_first_use(a, &a->demb, BTH);
    fm_top_backward(m, a, b, p, scale, dtop);
    fm_encoder_backward(m, a, b, p, 0, L, dtop, demb);
    fm_embed_backward(m, a, b, p, demb);
}
