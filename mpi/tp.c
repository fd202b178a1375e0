/* tp.c: a tensor-parallel encoder layer on BLACS grids, ScaLAPACK
 * descriptors, psgemr2d and psgemm (see tp.h). The local products are the
 * one-rank kernels of src/layers.c on a rank's share. */
#include "tp.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "fm.h"
#include "layers.h"

/* ---- grids ----------------------------------------------------------------------------- */

void fm_tp_grid_init(fm_tp_grid *g, MPI_Comm comm) {
    memset(g, 0, sizeof *g);
    g->comm = comm;
    MPI_Comm_rank(comm, &g->rank);
    MPI_Comm_size(comm, &g->size);
    g->sys = Csys2blacs_handle(comm);
    /* Each Cblacs_gridinit takes the system handle and turns it into a
     * context; ranks are laid out in comm's order in all three grids. */
    g->col = g->sys;
    Cblacs_gridinit(&g->col, "Row", 1, g->size);
    g->row = g->sys;
    Cblacs_gridinit(&g->row, "Col", g->size, 1);
    g->one = g->sys;
    Cblacs_gridinit(&g->one, "Row", 1, 1); /* -1 on every rank but 0 */
    int pr, pc, r, c;
    Cblacs_gridinfo(g->col, &pr, &pc, &r, &c);
    assert(pr == 1 && pc == g->size && c == g->rank);
    Cblacs_gridinfo(g->row, &pr, &pc, &r, &c);
    assert(pr == g->size && pc == 1 && r == g->rank);
    (void)pr, (void)pc, (void)r, (void)c;
}

void fm_tp_grid_free(fm_tp_grid *g) {
    if (g->one >= 0 && g->rank == 0) Cblacs_gridexit(g->one);
    Cblacs_gridexit(g->row);
    Cblacs_gridexit(g->col);
    Cfree_blacs_system_handle(g->sys);
    memset(g, 0, sizeof *g);
}

/* ---- descriptors ----------------------------------------------------------------------- */

static void desc_init(int *desc, int m, int n, int mb, int nb, int ctxt, int lld) {
    const int zero = 0;
    int info = 0;
    descinit_(desc, &m, &n, &mb, &nb, &zero, &zero, &ctxt, &lld, &info);
    assert(info == 0);
    (void)info;
}

/* The whole (in x out) matrix on rank 0's 1 x 1 grid; elsewhere CTXT -1. */
static void whole_init(fm_tp_dist *d, const fm_tp_grid *g) {
    memset(d->whole, 0, sizeof d->whole);
    if (g->rank == 0) {
        desc_init(d->whole, d->in, d->out, d->in, d->out, g->one, d->in);
    } else {
        d->whole[FM_DESC_DTYPE] = 1;
        d->whole[FM_DESC_CTXT] = -1;
        d->whole[FM_DESC_M] = d->in;
        d->whole[FM_DESC_N] = d->out;
    }
}

static int locnum(int n, int nb, int p, int P) {
    const int zero = 0;
    return numroc_(&n, &nb, &p, &zero, &P);
}

void fm_tp_dist_cols(fm_tp_dist *d, const fm_tp_grid *g, int in, int out, int nb) {
    memset(d, 0, sizeof *d);
    d->in = in;
    d->out = out;
    d->by_rows = 0;
    d->lr = in;
    d->lc = locnum(out, nb, g->rank, g->size);
    desc_init(d->desc, in, out, in, nb, g->col, in);
    whole_init(d, g);
}

void fm_tp_dist_rows(fm_tp_dist *d, const fm_tp_grid *g, int in, int out, int mb) {
    memset(d, 0, sizeof *d);
    d->in = in;
    d->out = out;
    d->by_rows = 1;
    d->lr = locnum(in, mb, g->rank, g->size);
    d->lc = out;
    desc_init(d->desc, in, out, mb, out, g->row, d->lr > 1 ? d->lr : 1);
    whole_init(d, g);
}

/* Global index of local index l of a dimension dealt in blocks of nb over P
 * processes from process 0 (ScaLAPACK's INDXL2G). */
static int l2g(int l, int nb, int p, int P) { return (l / nb * P + p) * nb + l % nb; }

int fm_tp_dist_grow(const fm_tp_dist *d, const fm_tp_grid *g, int li) {
    return d->by_rows ? l2g(li, d->desc[FM_DESC_MB], g->rank, g->size) : li;
}

int fm_tp_dist_gcol(const fm_tp_dist *d, const fm_tp_grid *g, int lj) {
    return d->by_rows ? lj : l2g(lj, d->desc[FM_DESC_NB], g->rank, g->size);
}

void fm_tp_scatter(const fm_tp_grid *g, const fm_tp_dist *d, const float *whole, float *local) {
    const int one = 1;
    float dummy = 0.0f;
    psgemr2d_(&d->in, &d->out, g->rank == 0 ? whole : &dummy, &one, &one, d->whole, local ? local : &dummy, &one,
              &one, d->desc, &g->col);
}

void fm_tp_gather(const fm_tp_grid *g, const fm_tp_dist *d, const float *local, float *whole) {
    const int one = 1;
    float dummy = 0.0f;
    psgemr2d_(&d->in, &d->out, local ? local : &dummy, &one, &one, d->desc, g->rank == 0 ? whole : &dummy, &one,
              &one, d->whole, &g->col);
}

/* ---- the layer ------------------------------------------------------------------------- */

struct fm_tp_layer {
    const fm_tp_grid *g;
    fm_config cfg;
    int B, T;          /* largest batch */
    int H, A, I, hs;   /* model sizes */
    int Hl, Al, Il;    /* local q/k/v columns, heads, intermediate features */
    fm_tp_sum how;
    /* descriptors: column-parallel weights and biases, row-parallel weights */
    fm_tp_dist dqkv, dbqkv, di, dbi, dd, dout_;
    float *params, *grads; /* one allocation each, in fm_tp_view's order */
    size_t numel;
    fm_tp_view w, gr;
    /* saved by the forward (local shares as commented) */
    float *inp;                /* (B,T,H) */
    float *q, *k, *v, *ctx;    /* (B,T,Hl) */
    float *probs;              /* (B,Al,T,T) */
    uint64_t *pbits;           /* (B,Al,T,words(T)) */
    float *res1, *y1, *res2;   /* (B,T,H) */
    float *mean1, *rstd1, *mean2, *rstd2; /* (B,T) */
    uint64_t *bits1, *bits2;   /* (B,T,words(H)) */
    float *pre;                /* (B,T,Il) */
    /* scratch */
    float *gI, *dI;            /* (B,T,Il) */
    float *d1, *d2, *part;     /* (B,T,H) */
    float *d3, *dq, *dk, *dv;  /* (B,T,Hl) */
    float *cwork;              /* (B,T,H) psgemm's C on rank 0 */
    size_t bytes;
    fm_tp_counters cnt;
};

static float *falloc(fm_tp_layer *L, size_t n) {
    L->bytes += n * sizeof(float);
    return fm_xalloc_floats(n > 0 ? n : 1);
}

static uint64_t *balloc(fm_tp_layer *L, size_t rows, int n) {
    size_t words = rows * (size_t)fm_bits_words(n);
    L->bytes += words * sizeof(uint64_t);
    return (uint64_t *)fm_xalloc_floats(2 * (words > 0 ? words : 1));
}

/* Point v's fields into base, in fm_tp_view's order; returns the floats used. */
static size_t bind(fm_tp_view *v, const fm_tp_layer *L, float *base) {
    const size_t H = (size_t)L->H, Hl = (size_t)L->Hl, Il = (size_t)L->Il;
    float *p = base;
#define TAKE(field, n)                                                                                               \
    do {                                                                                                             \
        if (v) v->field = p;                                                                                         \
        p += (n);                                                                                                    \
    } while (0)
    TAKE(wq, Hl * H);
    TAKE(bq, Hl);
    TAKE(wk, Hl * H);
    TAKE(bk, Hl);
    TAKE(wv, Hl * H);
    TAKE(bv, Hl);
    TAKE(wd, H * Hl);
    TAKE(bd, H);
    TAKE(ln1_g, H);
    TAKE(ln1_b, H);
    TAKE(wi, Il * H);
    TAKE(bi, Il);
    TAKE(wo, H * Il);
    TAKE(bo, H);
    TAKE(ln2_g, H);
    TAKE(ln2_b, H);
#undef TAKE
    return (size_t)(p - base);
}

/* Block size of n features in units of `unit` dealt over P ranks in one
 * round: ceil(n / unit / P) units. */
static int block_of(int n, int unit, int P) {
    int units = (n + unit - 1) / unit;
    return (units + P - 1) / P * unit;
}

fm_tp_layer *fm_tp_layer_new(const fm_tp_grid *g, const fm_config *c, int B, int T) {
    if (c->num_attention_heads < g->size) {
        fm_fail("tensor parallelism over %d ranks: the model has %d attention heads, fewer than the ranks",
                g->size, c->num_attention_heads);
        return NULL;
    }
    fm_tp_layer *L = fm_xcalloc(1, sizeof *L);
    L->g = g;
    L->cfg = *c;
    L->B = B;
    L->T = T;
    L->H = c->hidden_size;
    L->A = c->num_attention_heads;
    L->I = c->intermediate_size;
    L->hs = L->H / L->A;
    const int P = g->size, H = L->H, I = L->I, hs = L->hs;
    /* heads: blocks of one head, round-robin */
    fm_tp_dist_cols(&L->dqkv, g, H, H, hs);
    fm_tp_dist_cols(&L->dbqkv, g, 1, H, hs);
    fm_tp_dist_rows(&L->dd, g, H, H, hs);
    /* intermediate: one contiguous block per rank */
    const int nbi = block_of(I, 1, P);
    fm_tp_dist_cols(&L->di, g, H, I, nbi);
    fm_tp_dist_cols(&L->dbi, g, 1, I, nbi);
    fm_tp_dist_rows(&L->dout_, g, I, H, nbi);
    L->Hl = L->dqkv.lc;
    L->Al = L->Hl / hs;
    L->Il = L->di.lc;
    assert(L->dd.lr == L->Hl && L->dout_.lr == L->Il);
    L->numel = bind(NULL, L, NULL);
    L->params = falloc(L, L->numel);
    L->grads = falloc(L, L->numel);
    bind(&L->w, L, L->params);
    bind(&L->gr, L, L->grads);

    const size_t BT = (size_t)B * T, BTH = BT * H, BTl = BT * L->Hl, BTI = BT * L->Il;
    L->inp = falloc(L, BTH);
    L->q = falloc(L, BTl);
    L->k = falloc(L, BTl);
    L->v = falloc(L, BTl);
    L->ctx = falloc(L, BTl);
    L->probs = falloc(L, BT * L->Al * T);
    L->pbits = balloc(L, BT * L->Al, T);
    L->res1 = falloc(L, BTH);
    L->y1 = falloc(L, BTH);
    L->res2 = falloc(L, BTH);
    L->mean1 = falloc(L, BT);
    L->rstd1 = falloc(L, BT);
    L->mean2 = falloc(L, BT);
    L->rstd2 = falloc(L, BT);
    L->bits1 = balloc(L, BT, H);
    L->bits2 = balloc(L, BT, H);
    L->pre = falloc(L, BTI);
    L->gI = falloc(L, BTI);
    L->dI = falloc(L, BTI);
    L->d1 = falloc(L, BTH);
    L->d2 = falloc(L, BTH);
    L->part = falloc(L, BTH);
    L->d3 = falloc(L, BTl);
    L->dq = falloc(L, BTl);
    L->dk = falloc(L, BTl);
    L->dv = falloc(L, BTl);
    return L;
}

void fm_tp_layer_free(fm_tp_layer *L) {
    if (!L) return;
    float *fs[] = {L->params, L->grads, L->inp, L->q, L->k, L->v, L->ctx, L->probs, L->res1, L->y1, L->res2,
                   L->mean1, L->rstd1, L->mean2, L->rstd2, L->pre, L->gI, L->dI, L->d1, L->d2, L->part, L->d3,
                   L->dq, L->dk, L->dv, L->cwork};
    for (size_t i = 0; i < sizeof fs / sizeof *fs; i++) fm_free_aligned(fs[i]);
    fm_free_aligned(L->pbits);
    fm_free_aligned(L->bits1);
    fm_free_aligned(L->bits2);
    free(L);
}

fm_tp_view *fm_tp_layer_params(fm_tp_layer *L) { return &L->w; }
fm_tp_view *fm_tp_layer_grads(fm_tp_layer *L) { return &L->gr; }

void fm_tp_layer_shares(const fm_tp_layer *L, int *Al, int *Il) {
    if (Al) *Al = L->Al;
    if (Il) *Il = L->Il;
}

void fm_tp_layer_set_sum(fm_tp_layer *L, fm_tp_sum how) {
    L->how = how;
    if (how == FM_TP_PSGEMM && !L->cwork && L->g->rank == 0) L->cwork = falloc(L, (size_t)L->B * L->T * L->H);
}

size_t fm_tp_layer_bytes(const fm_tp_layer *L) { return L->bytes; }

void fm_tp_layer_counters(const fm_tp_layer *L, fm_tp_counters *c) { *c = L->cnt; }

void fm_tp_layer_zero_grads(fm_tp_layer *L) { memset(L->grads, 0, L->numel * sizeof *L->grads); }

/* The split tensors of a layer: descriptor, whole view field, local field. */
#define FM_TP_SPLIT(X)                                                                                               \
    X(dqkv, wq) X(dbqkv, bq) X(dqkv, wk) X(dbqkv, bk) X(dqkv, wv) X(dbqkv, bv) X(dd, wd) X(di, wi) X(dbi, bi)         \
        X(dout_, wo)
#define FM_TP_WHOLE(X) X(bd) X(ln1_g) X(ln1_b) X(bo) X(ln2_g) X(ln2_b)

void fm_tp_layer_scatter(fm_tp_layer *L, const fm_layer_view *whole) {
    const int root = L->g->rank == 0;
#define SCATTER(d, f) fm_tp_scatter(L->g, &L->d, root ? whole->f : NULL, L->w.f);
    FM_TP_SPLIT(SCATTER)
#undef SCATTER
#define BCAST(f)                                                                                                     \
    if (root) memcpy(L->w.f, whole->f, (size_t)L->H * sizeof(float));                                               \
    MPI_Bcast(L->w.f, L->H, MPI_FLOAT, 0, L->g->comm);
    FM_TP_WHOLE(BCAST)
#undef BCAST
}

void fm_tp_layer_gather(const fm_tp_layer *L, int grads, fm_layer_view *whole) {
    const int root = L->g->rank == 0;
    const fm_tp_view *v = grads ? &L->gr : &L->w;
#define GATHER(d, f) fm_tp_gather(L->g, &L->d, v->f, root ? whole->f : NULL);
    FM_TP_SPLIT(GATHER)
#undef GATHER
#define COPY(f)                                                                                                      \
    if (root) memcpy(whole->f, v->f, (size_t)L->H * sizeof(float));
    FM_TP_WHOLE(COPY)
#undef COPY
}

/* ---- forward and backward -------------------------------------------------------------- */

static fm_drop mkdrop(const fm_batch *b, const fm_pass *p, int layer, fm_drop_site site, float prob) {
    fm_drop d;
    memset(&d, 0, sizeof d);
    d.p = (p && p->training) ? prob : 0.0f;
    d.seed = p ? p->seed : 0;
    d.step = p ? p->step : 0;
    d.stream = fm_dropout_stream(layer, site);
    d.example0 = b->example0;
    return d;
}

/* x (n floats) = its sum over the ranks, whole on every rank. */
static void sum_all(fm_tp_layer *L, float *x, size_t n) {
    if (L->g->size == 1) return;
    double t0 = MPI_Wtime();
    MPI_Allreduce(MPI_IN_PLACE, x, (int)n, MPI_FLOAT, MPI_SUM, L->g->comm);
    L->cnt.seconds += MPI_Wtime() - t0;
    L->cnt.sums++;
    L->cnt.sum_bytes += n * sizeof(float);
}

/* out (BT,H) = x (BT,Kl) w^T summed over the ranks, w the local (H, Kl)
 * share of the row-parallel matrix d (row stride Kl). */
static void rowpar_forward(fm_tp_layer *L, float *out, const float *x, const float *w, const fm_tp_dist *d, int BT,
                           int Kl) {
    const int H = L->H;
    if (L->how == FM_TP_ALLREDUCE || L->g->size == 1) {
        fm_linear_forward(out, x, Kl, w, NULL, BT, Kl, H);
        sum_all(L, out, (size_t)BT * H);
        return;
    }
    /* ScaLAPACK sees out as the column-major (H x BT) matrix out^T =
     * (in x H)^T (in x BT): A is d itself, B the local (Kl x BT) share of
     * x^T dealt like d's rows, C one block on rank 0's process row. */
    double t0 = MPI_Wtime();
    int descx[FM_DESC_LEN], descc[FM_DESC_LEN], info = 0, zero = 0;
    const int in = d->in, mb = d->desc[FM_DESC_MB], lldx = Kl > 1 ? Kl : 1;
    const int lldc = L->g->rank == 0 ? H : 1;
    descinit_(descx, &in, &BT, &mb, &BT, &zero, &zero, &L->g->row, &lldx, &info);
    assert(info == 0);
    descinit_(descc, &H, &BT, &H, &BT, &zero, &zero, &L->g->row, &lldc, &info);
    assert(info == 0);
    const float one = 1.0f, beta = 0.0f;
    const int i1 = 1;
    float *c = L->g->rank == 0 ? L->cwork : out;
    psgemm_("T", "N", &H, &BT, &in, &one, w, &i1, &i1, d->desc, x, &i1, &i1, descx, &beta, c, &i1, &i1, descc);
    if (L->g->rank == 0) memcpy(out, c, (size_t)BT * H * sizeof *out);
    MPI_Bcast(out, BT * H, MPI_FLOAT, 0, L->g->comm);
    L->cnt.seconds += MPI_Wtime() - t0;
    L->cnt.sums++;
    L->cnt.sum_bytes += (size_t)BT * H * sizeof(float);
}

void fm_tp_layer_forward(fm_tp_layer *L, const fm_batch *b, const fm_pass *p, int layer, const float *x_in,
                         float *x_out) {
    const fm_config *c = &L->cfg;
    const int B = b->B, T = b->T, H = L->H, Hl = L->Hl, Il = L->Il, BT = B * T;
    const int Pp = c->max_position_embeddings;
    assert(B <= L->B && T <= L->T && x_out != x_in);
    const fm_tp_view *w = &L->w;
    fm_drop dp = mkdrop(b, p, layer, FM_SITE_ATTN_PROBS, c->attention_probs_dropout_prob);
    fm_drop d1 = mkdrop(b, p, layer, FM_SITE_ATTN_OUT, c->hidden_dropout_prob);
    fm_drop d2 = mkdrop(b, p, layer, FM_SITE_FFN_OUT, c->hidden_dropout_prob);

    memcpy(L->inp, x_in, (size_t)BT * H * sizeof *x_in);
    /* column-parallel: this rank's heads */
    fm_linear_forward(L->q, L->inp, H, w->wq, w->bq, BT, H, Hl);
    fm_linear_forward(L->k, L->inp, H, w->wk, w->bk, BT, H, Hl);
    fm_linear_forward(L->v, L->inp, H, w->wv, w->bv, BT, H, Hl);
    fm_attention_forward_heads(L->ctx, L->probs, L->pbits, L->q, L->k, L->v, b->attn_mask, B, T, Hl, L->Al, L->A,
                               L->g->rank, L->g->size, Pp, &dp);
    /* row-parallel W_D: one sum, then everything whole */
    rowpar_forward(L, L->res1, L->ctx, w->wd, &L->dd, BT, Hl);
    fm_dropout_residual_forward(L->res1, L->bits1, L->res1, w->bd, L->inp, BT, H, T, Pp, &d1);
    fm_layernorm_forward(L->y1, L->mean1, L->rstd1, L->res1, w->ln1_g, w->ln1_b, BT, H, c->layer_norm_eps);
    /* column-parallel W_I, local GELU, row-parallel W_O: one sum */
    fm_linear_forward(L->pre, L->y1, H, w->wi, NULL, BT, H, Il);
    fm_gelu_forward(L->gI, L->pre, L->pre, w->bi, BT, Il, c->hidden_act);
    rowpar_forward(L, L->res2, L->gI, w->wo, &L->dout_, BT, Il);
    fm_dropout_residual_forward(L->res2, L->bits2, L->res2, w->bo, L->y1, BT, H, T, Pp, &d2);
    fm_layernorm_forward(x_out, L->mean2, L->rstd2, L->res2, w->ln2_g, w->ln2_b, BT, H, c->layer_norm_eps);
}

void fm_tp_layer_backward(fm_tp_layer *L, const fm_batch *b, const fm_pass *p, int layer, const float *dx_out,
                          float *dx_in) {
    const fm_config *c = &L->cfg;
    const int B = b->B, T = b->T, H = L->H, Hl = L->Hl, Il = L->Il, BT = B * T;
    const size_t BTH = (size_t)BT * H;
    const fm_tp_view *w = &L->w, *g = &L->gr;
    fm_drop dp = mkdrop(b, p, layer, FM_SITE_ATTN_PROBS, c->attention_probs_dropout_prob);
    fm_drop d1 = mkdrop(b, p, layer, FM_SITE_ATTN_OUT, c->hidden_dropout_prob);
    fm_drop d2 = mkdrop(b, p, layer, FM_SITE_FFN_OUT, c->hidden_dropout_prob);

    /* LayerNorm 2 and dropout, whole */
    fm_layernorm_backward(L->d1, g->ln2_g, g->ln2_b, dx_out, L->res2, L->mean2, L->rstd2, w->ln2_g, BT, H);
    fm_dropout_backward(L->d2, L->d1, L->bits2, BT, H, &d2);
    /* W_O (row-parallel): local dI and weight gradient; b_O whole */
    fm_linear_backward(L->dI, 0, NULL, NULL, L->d2, NULL, Il, w->wo, BT, Il, H);
    fm_gelu_backward(L->dI, L->gI, L->dI, L->pre, (size_t)BT * Il, c->hidden_act);
    fm_linear_backward(NULL, 0, g->wo, g->bo, L->d2, L->gI, Il, w->wo, BT, Il, H);
    /* W_I (column-parallel): local weight gradient, partial d y1: one sum */
    fm_linear_backward(L->part, 0, g->wi, g->bi, L->dI, L->y1, H, w->wi, BT, H, Il);
    sum_all(L, L->part, BTH);
    fm_residual_backward(L->d1, NULL, L->part, BTH);
    /* LayerNorm 1 and dropout, whole */
    fm_layernorm_backward(dx_in, g->ln1_g, g->ln1_b, L->d1, L->res1, L->mean1, L->rstd1, w->ln1_g, BT, H);
    fm_dropout_backward(L->d2, dx_in, L->bits1, BT, H, &d1);
    /* W_D (row-parallel): local d ctx and weight gradient; b_D whole */
    fm_linear_backward(L->d3, 0, g->wd, g->bd, L->d2, L->ctx, Hl, w->wd, BT, Hl, H);
    fm_attention_backward(L->dq, L->dk, L->dv, L->d3, L->probs, L->pbits, L->q, L->k, L->v, B, T, Hl, L->Al, &dp);
    /* Q, K, V (column-parallel): partial dx: one sum */
    fm_linear_backward(L->part, 0, g->wq, g->bq, L->dq, L->inp, H, w->wq, BT, H, Hl);
    fm_linear_backward(L->part, 1, g->wk, g->bk, L->dk, L->inp, H, w->wk, BT, H, Hl);
    fm_linear_backward(L->part, 1, g->wv, g->bv, L->dv, L->inp, H, w->wv, BT, H, Hl);
    sum_all(L, L->part, BTH);
    fm_residual_backward(dx_in, NULL, L->part, BTH);
}
