/* strat_pipeline.c: pipeline stages (engine.h), each with replicas. This
 * rank is stage s of S of its replica and holds encoder layers
 * [L*s/S, L*(s+1)/S) (stage 0 also the embeddings, the last also the pooler
 * and heads; fm_layout_stage). Its replica's rows of a step are cut into M
 * micro-batches that go through a synchronous GPipe schedule: every forward,
 * then every backward in reverse, then the update; activations and their
 * gradients travel with fm_comm.p2p. A stage owns the tensors it holds (and
 * their nu and moments): the gradient sums cover only those, over the
 * replicas of the stage, per layer as the last backward completes it; the
 * loss and signal flags are summed over the team; the update covers only the
 * owned tensors, with the global norm from per-tensor terms summed over the
 * stages (which also serve the sparsities); and fm_engine_sync copies every
 * owned tensor from its stage to the others before anything reads the whole
 * model. Every stage still allocates the whole model's parameters; only the
 * activations are per stage. */
#include <stdlib.h>

#include "fm.h"
#include "strategy.h"

typedef struct {
    fm_strategy s;
    int M, l0, l1;
    fm_acts **acts;    /* [M] micro-batch k's activations of this stage's layers */
    fm_batch_buf *mbb; /* [M] */
    float *xa, *xb;    /* (micro-batch rows, T, H) */
    size_t x_bytes;    /* of each */
} pipeline;

/* This stage's share of the step for its replica's rows e->rows[0..nr)
 * (global indices e->lo.. within the step): the backward of the first
 * micro-batch with rows (the last one run) goes layer by layer, and the
 * gradients of each layer this stage holds are summed over the replicas of
 * the stage as soon as they are complete. */
static int pipe_step(fm_strategy *st, fm_engine *e, fm_step_out *out) {
    pipeline *p = (pipeline *)st;
    fm_model *m = e->m;
    const fm_comm *cm = e->c.comm;
    const int L = m->cfg.num_hidden_layers, S = cm->nstages, s = cm->stage, M = p->M;
    const int l0 = p->l0, l1 = p->l1, H = m->cfg.hidden_size, nr = e->nrows;
    const float scale = (float)(1.0 / e->nb);
    const fm_pass pass = fm_engine_pass(e);
    float *xa = p->xa, *xb = p->xb;
    double loss = 0;
    /* The first micro-batch with rows: the last of the backward. */
    int kfin = -1;
    for (int k = 0; k < M && kfin < 0; k++)
        if (nr * (k + 1) / M > nr * k / M) kfin = k;
    for (int k = 0; k < M; k++) {
        int a = nr * k / M, b = nr * (k + 1) / M;
        if (b == a) continue;
        fm_engine_fill(e, &p->mbb[k], e->rows + a, b - a, e->lo + a);
        fm_batch *bt = &p->mbb[k].b;
        size_t n = (size_t)bt->B * bt->T * H;
        if (s == 0) fm_embed_forward(m, p->acts[k], bt, &pass, xa);
        else if (cm->p2p(cm->ctx, -1, xa, n, 0) != FM_OK) return FM_ERR;
        fm_encoder_forward(m, p->acts[k], bt, &pass, l0, l1, xa, xb);
        if (s == S - 1) loss += fm_head_forward(m, p->acts[k], bt, &pass, xb, NULL);
        else if (cm->p2p(cm->ctx, +1, xb, n, 1) != FM_OK) return FM_ERR;
    }
    for (int k = M - 1; k >= 0; k--) {
        int a = nr * k / M, b = nr * (k + 1) / M;
        if (b == a) continue;
        const int fin = k == kfin;
        fm_batch *bt = &p->mbb[k].b;
        size_t n = (size_t)bt->B * bt->T * H;
        if (s == S - 1) {
            fm_head_backward(m, p->acts[k], bt, &pass, scale, xa);
            if (fin && fm_engine_sum_layer(e, L) != FM_OK) return FM_ERR;
        } else if (cm->p2p(cm->ctx, +1, xa, n, 0) != FM_OK) {
            return FM_ERR;
        }
        float *dx = xb;
        if (!fin) {
            fm_encoder_backward(m, p->acts[k], bt, &pass, l0, l1, xa, xb);
        } else {
            /* layer by layer (the same arithmetic), each layer's sum started at once */
            float *dout = xa, *din = xb;
            for (int l = l1 - 1; l >= l0; l--) {
                fm_encoder_backward(m, p->acts[k], bt, &pass, l, l + 1, dout, din);
                float *t = dout;
                dout = din;
                din = t;
                if (fm_engine_sum_layer(e, l) != FM_OK) return FM_ERR;
                if (cm->progress) cm->progress(cm->ctx);
            }
            dx = dout;
        }
        if (s == 0) {
            fm_embed_backward(m, p->acts[k], bt, &pass, dx);
            if (fin && fm_engine_sum_layer(e, -1) != FM_OK) return FM_ERR;
        } else if (cm->p2p(cm->ctx, -1, dx, n, 1) != FM_OK) {
            return FM_ERR;
        }
    }
    if (kfin < 0) {
        /* No rows on this replica: its zeros join the sums, in the same order. */
        if (s == S - 1 && fm_engine_sum_layer(e, L) != FM_OK) return FM_ERR;
        for (int l = l1 - 1; l >= l0; l--)
            if (fm_engine_sum_layer(e, l) != FM_OK) return FM_ERR;
        if (s == 0 && fm_engine_sum_layer(e, -1) != FM_OK) return FM_ERR;
    }
    if (cm->sum_wait(cm->ctx) != FM_OK) return FM_ERR;
    float extra[3] = {(float)loss, (float)out->term, (float)out->usr1};
    if (cm->team_sum(cm->ctx, extra, 3) != FM_OK) return FM_ERR;
    out->loss = extra[0] / e->nb;
    out->term = extra[1];
    out->usr1 = extra[2];
    return FM_OK;
}

/* Each stage's per-tensor norm terms summed over the stages give every rank
 * the global norm (one process's bits), then AdamW on the owned tensors. */
static int pipe_apply(fm_strategy *st, fm_engine *e, double *norm, double *factor) {
    (void)st;
    const fm_comm *cm = e->c.comm;
    const int n = e->m->lay.n;
    double *sq = fm_xmalloc(sizeof(double) * (size_t)(n ? n : 1));
    fm_trainer_norm_parts(&e->tr, sq);
    int rc = cm->stages_sum(cm->ctx, sq, (size_t)n);
    if (rc == FM_OK) *factor = fm_trainer_apply_parts(&e->tr, sq, norm);
    free(sq);
    return rc;
}

/* Each stage holds the current scores and sample of its own tensors only. */
static int pipe_sparsity(fm_strategy *st, fm_engine *e, fm_sparsity *sp) {
    (void)st;
    const fm_comm *cm = e->c.comm;
    const int n = e->m->lay.n;
    double *parts = fm_xmalloc(sizeof(double) * 3 * (size_t)(n ? n : 1));
    fm_trainer_sparsity_parts(&e->tr, parts);
    int rc = cm->stages_sum(cm->ctx, parts, 3 * (size_t)n);
    if (rc == FM_OK) fm_trainer_sparsity_sum(&e->tr, parts, sp);
    free(parts);
    return rc;
}

/* Copy array x (with m's layout) of the tensors i with sel[i] from the stage
 * that owns them to the other stages of this replica: per stage, one
 * broadcast of the span from its first such tensor to the end of its last
 * (a stage's tensors are contiguous; the unselected ones inside the span do
 * not change in training and are the same on every stage). */
static int bcast_owned(const fm_engine *e, const unsigned char *sel, float *x) {
    const fm_comm *cm = e->c.comm;
    const fm_model *m = e->m;
    const fm_layout *lay = &m->lay;
    for (int st = 0; st < cm->nstages; st++) {
        size_t begin = lay->numel, end = 0;
        for (int i = 0; i < lay->n; i++) {
            const fm_tensor *t = &lay->t[i];
            if (!sel[i] || fm_layout_stage(t, m->cfg.num_hidden_layers, cm->nstages) != st) continue;
            if (t->offset < begin) begin = t->offset;
            if (t->offset + t->numel > end) end = t->offset + t->numel;
        }
        if (end > begin && cm->bcast(cm->ctx, x + begin, end - begin, st) != FM_OK) return FM_ERR;
    }
    return FM_OK;
}

/* Every stage gets the parameters that train, the scores nu (supermask) and
 * for a checkpoint the AdamW moments of both; or the gradients. */
static int pipe_sync(fm_strategy *st, fm_engine *e, fm_sync_what what) {
    (void)st;
    const fm_trainer *tr = &e->tr;
    const fm_model *m = e->m;
    const int n = m->lay.n, sm = tr->o.mode == FM_TRAIN_SUPERMASK;
    unsigned char *sel = fm_xmalloc((size_t)(n ? n : 1));
    int rc = FM_OK;
    if (what == FM_SYNC_GRADS) {
        for (int i = 0; i < n; i++) sel[i] = m->lay.t[i].trains || m->lay.t[i].needs_grad;
        rc = bcast_owned(e, sel, m->grads);
        free(sel);
        return rc;
    }
    for (int i = 0; i < n; i++) sel[i] = (unsigned char)(m->lay.t[i].trains != 0);
    rc = bcast_owned(e, sel, m->params);
    if (rc == FM_OK && sm) {
        for (int i = 0; i < n; i++) sel[i] = tr->masked_of[i] >= 0;
        rc = bcast_owned(e, sel, tr->nu);
    }
    if (rc == FM_OK && what == FM_SYNC_STATE) {
        for (int i = 0; i < n; i++) sel[i] = m->lay.t[i].trains || (sm && tr->masked_of[i] >= 0);
        rc = bcast_owned(e, sel, tr->mom1);
        if (rc == FM_OK) rc = bcast_owned(e, sel, tr->mom2);
    }
    free(sel);
    return rc;
}

/* Every micro-batch's activations of this stage's layers, and xa, xb. */
static size_t pipe_bytes(const fm_strategy *st) {
    const pipeline *p = (const pipeline *)st;
    size_t n = 2 * p->x_bytes;
    for (int k = 0; k < p->M; k++) n += fm_acts_bytes(p->acts[k]);
    return n;
}

static void pipe_destroy(fm_strategy *st) {
    pipeline *p = (pipeline *)st;
    for (int k = 0; k < p->M; k++) {
        if (p->acts[k]) fm_acts_free(p->acts[k]);
        fm_batch_buf_free(&p->mbb[k]);
    }
    free(p->acts);
    free(p->mbb);
    fm_free_aligned(p->xa);
    fm_free_aligned(p->xb);
    free(p);
}

fm_strategy *fm_strategy_pipeline(fm_engine *e) {
    const fm_comm *cm = e->c.comm;
    fm_model *m = e->m;
    const int L = m->cfg.num_hidden_layers, S = cm->nstages, M = e->c.micro_batches;
    if (!cm->sum_start || !cm->sum_wait || !cm->p2p || !cm->team_sum || !cm->stages_sum || !cm->bcast) {
        fm_fail("pipeline stages: the caller gave no p2p, team_sum, stages_sum or bcast");
        return NULL;
    }
    if (M < 1 || M > e->c.batch) {
        fm_fail("micro_batches %d: expected 1 to the batch size %d", M, e->c.batch);
        return NULL;
    }
    if (e->c.scale != FM_SCALE_ROWS) {
        fm_fail("pipeline stages: only a task head's loss (fine-tuning) runs on a pipeline");
        return NULL;
    }
    if (S > L) {
        fm_fail("%d pipeline stages for %d encoder layers: expected at most one stage per layer", S, L);
        return NULL;
    }
    /* This stage updates only the tensors it holds. */
    unsigned char *own = fm_xmalloc((size_t)(m->lay.n ? m->lay.n : 1));
    for (int i = 0; i < m->lay.n; i++) own[i] = fm_layout_stage(&m->lay.t[i], L, S) == cm->stage;
    fm_trainer_own(&e->tr, own);
    free(own);
    pipeline *p = fm_xcalloc(1, sizeof *p);
    p->s.name = "pipeline";
    p->s.split = 1;
    p->s.step = pipe_step;
    p->s.apply = pipe_apply;
    p->s.sync = pipe_sync;
    p->s.sparsity = pipe_sparsity;
    p->s.bytes = pipe_bytes;
    p->s.destroy = pipe_destroy;
    p->M = M;
    p->l0 = L * cm->stage / S;
    p->l1 = L * (cm->stage + 1) / S;
    /* the largest micro-batch of a replica's share */
    const int mb = (fm_engine_share_rows(e) + M - 1) / M;
    p->acts = fm_xcalloc((size_t)M, sizeof *p->acts);
    p->mbb = fm_xcalloc((size_t)M, sizeof *p->mbb);
    for (int k = 0; k < M; k++) {
        p->acts[k] = fm_acts_new(&m->cfg, mb, e->c.seq, p->l0, p->l1);
        fm_batch_buf_alloc(&p->mbb[k], mb, e->c.seq);
    }
    p->xa = fm_xalloc_floats((size_t)mb * e->c.seq * m->cfg.hidden_size);
    p->xb = fm_xalloc_floats((size_t)mb * e->c.seq * m->cfg.hidden_size);
    p->x_bytes = (size_t)mb * e->c.seq * m->cfg.hidden_size * sizeof(float);
    return &p->s;
}
