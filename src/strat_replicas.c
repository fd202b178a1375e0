/* strat_replicas.c: data-parallel replicas (engine.h). Replica r of R
 * computes rows [nb*r/R, nb*(r+1)/R) of every step of nb rows, dropout keyed
 * by the row's index in the whole step, so that the summed gradients are one
 * process's. The backward runs layer by layer, and the gradients of each
 * layer (of every tensor that trains or has a gradient) are summed over the
 * replicas as soon as they are complete, in backward order, while the next
 * layer's backward runs (fm_comm.sum_start / progress / sum_wait).
 *
 * Tensor parallelism composes into this strategy rather than being one of
 * its own: a replica is then P ranks (fm_comm.ntp) that run the same rows
 * on a sharded model (fm_model_shard), whose layers sum their activations
 * over the P ranks inside model.c (the two kinds of sums never meet: the
 * replicas' gradient sums go over the ranks with the same shares, whose
 * gradient arrays have the same layout). What the P ranks must agree on is
 * done here: the signal flags, the global gradient norm and the
 * sparsities, summed over them with each whole tensor counted once; and a
 * check, every step, that the gradients of the tensors every rank holds
 * whole (embeddings, LayerNorms, b_D, b_O, pooler, head) are the same bits
 * on every rank, which the layers' identical summed inputs promise and
 * which lets their updates go unsummed. */
#include <stdlib.h>

#include "fm.h"
#include "strategy.h"

typedef struct {
    fm_strategy s;
    fm_acts *acts;
    fm_batch_buf bb;
    float *dx0, *dx1; /* (rows, T, H): the gradient of a layer's output and input */
    size_t dx_bytes;  /* of each */
} replicas;

/* The backward from the heads' gradient in r->dx0, layer by layer, each
 * layer's sums started at once. With no rows the gradients stay zero and only
 * the sums run, in the same order. */
static int backward(replicas *r, fm_engine *e, const fm_pass *pass, int rows) {
    fm_model *m = e->m;
    const fm_comm *cm = e->c.comm;
    const int L = m->cfg.num_hidden_layers;
    float *dx0 = r->dx0, *dx1 = r->dx1;
    if (fm_engine_sum_layer(e, L) != FM_OK) return FM_ERR;
    for (int l = L - 1; l >= 0; l--) {
        if (rows) {
            fm_encoder_backward(m, r->acts, &r->bb.b, pass, l, l + 1, dx0, dx1);
            float *t = dx0;
            dx0 = dx1;
            dx1 = t;
        }
        if (fm_engine_sum_layer(e, l) != FM_OK) return FM_ERR;
        if (cm->progress) cm->progress(cm->ctx);
    }
    if (rows) fm_embed_backward(m, r->acts, &r->bb.b, pass, dx0);
    return fm_engine_sum_layer(e, -1);
}

/* Fine-tuning: the scale 1/nb is known before the forward; the loss and the
 * signal flags are summed with the gradients (three floats, after them). */
static int step_rows(replicas *r, fm_engine *e, fm_step_out *out) {
    const fm_comm *cm = e->c.comm;
    const fm_batch *b = &r->bb.b;
    const fm_pass pass = fm_engine_pass(e);
    const float scale = (float)(1.0 / e->nb);
    float extra[3] = {0, (float)out->term, (float)out->usr1};
    extra[0] = b->B > 0 ? fm_model_forward(e->m, r->acts, b, &pass, NULL) : 0.0f;
    if (b->B > 0) fm_top_backward(e->m, r->acts, b, &pass, scale, r->dx0);
    if (backward(r, e, &pass, b->B > 0) != FM_OK) return FM_ERR;
    if (cm->sum_start(cm->ctx, extra, 3) != FM_OK) return FM_ERR;
    if (cm->sum_wait(cm->ctx) != FM_OK) return FM_ERR;
    out->loss = extra[0] / e->nb;
    out->term = extra[1];
    out->usr1 = extra[2];
    if (cm->ntp > 1) {
        /* the flags of the other shares' ranks (the loss is the same on each) */
        double fl[2] = {extra[1], extra[2]};
        if (cm->tp_sum_doubles(cm->ctx, fl, 2) != FM_OK) return FM_ERR;
        out->term = fl[0];
        out->usr1 = fl[1];
    }
    return FM_OK;
}

/* The update: over tensor-parallel shares from every rank's terms. */
static int rep_apply(fm_strategy *s, fm_engine *e, double *norm, double *factor) {
    if (e->c.comm->ntp <= 1) return fm_strategy_apply_whole(s, e, norm, factor);
    return fm_strategy_apply_parts(e, 0, norm, factor);
}

/* The sparsities from every tensor-parallel rank's terms. */
static int rep_sparsity(fm_strategy *s, fm_engine *e, fm_sparsity *sp) {
    (void)s;
    return fm_strategy_sparsity_parts(e, 0, sp);
}

/* Pre-training: the scale is 1 / (predictions of the whole step), summed
 * with the loss and the signal flags over the team after the forward. */
static int step_count(replicas *r, fm_engine *e, int64_t np, fm_step_out *out) {
    const fm_comm *cm = e->c.comm;
    const fm_batch *b = &r->bb.b;
    const fm_pass pass = fm_engine_pass(e);
    double red[4] = {0, 0, out->term, out->usr1};
    if (b->B > 0) {
        red[0] = fm_model_forward(e->m, r->acts, b, &pass, NULL);
        red[1] = (double)np;
    }
    if (cm->team_sum_doubles(cm->ctx, red, 4) != FM_OK) return FM_ERR;
    out->count = red[1];
    out->loss = red[1] > 0 ? red[0] / red[1] : 0;
    out->term = red[2];
    out->usr1 = red[3];
    const int rows = red[1] > 0 && b->B > 0;
    if (rows) fm_top_backward(e->m, r->acts, b, &pass, (float)(1.0 / red[1]), r->dx0);
    if (backward(r, e, &pass, rows) != FM_OK) return FM_ERR;
    return cm->sum_wait(cm->ctx);
}

static int rep_step(fm_strategy *s, fm_engine *e, fm_step_out *out) {
    replicas *r = (replicas *)s;
    const int64_t np = fm_engine_fill(e, &r->bb, e->rows, e->nrows, e->lo);
    return e->c.scale == FM_SCALE_ROWS ? step_rows(r, e, out) : step_count(r, e, np, out);
}

/* The whole model's activations for this replica's rows; dx0, dx1 the buffers. */
static size_t rep_bytes(const fm_strategy *s, size_t *buffers) {
    const replicas *r = (const replicas *)s;
    *buffers = 2 * r->dx_bytes;
    return fm_acts_bytes(r->acts);
}

static void rep_destroy(fm_strategy *s) {
    replicas *r = (replicas *)s;
    if (r->acts) fm_acts_free(r->acts);
    fm_batch_buf_free(&r->bb);
    fm_free_aligned(r->dx0);
    fm_free_aligned(r->dx1);
    free(r);
}

fm_strategy *fm_strategy_replicas(fm_engine *e) {
    const fm_comm *cm = e->c.comm;
    if (!cm->sum_start || !cm->sum_wait || (e->c.scale == FM_SCALE_COUNT && !cm->team_sum_doubles)) {
        fm_fail("data-parallel replicas: the caller gave no gradient sum");
        return NULL;
    }
    replicas *r = fm_xcalloc(1, sizeof *r);
    const fm_config *c = &e->m->cfg;
    const int rows = fm_engine_share_rows(e);
    r->s.name = "replicas";
    r->s.split = 1;
    r->s.step = rep_step;
    r->s.apply = rep_apply;
    if (cm->ntp > 1) r->s.sparsity = rep_sparsity;
    r->s.bytes = rep_bytes;
    r->s.destroy = rep_destroy;
    r->acts = fm_acts_new_for(e->m, rows, e->c.seq, 0, c->num_hidden_layers, 0);
    fm_batch_buf_alloc(&r->bb, rows, e->c.seq);
    r->dx0 = fm_xalloc_floats((size_t)rows * e->c.seq * c->hidden_size);
    r->dx1 = fm_xalloc_floats((size_t)rows * e->c.seq * c->hidden_size);
    r->dx_bytes = (size_t)rows * e->c.seq * c->hidden_size * sizeof(float);
    r->s.acts = r->acts;
    r->s.bb = &r->bb;
    return &r->s;
}
