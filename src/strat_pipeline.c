/* strat_pipeline.c: pipeline stages (engine.h), each with replicas. This
 * rank is stage s of S of its replica and holds encoder layers
 * [L*s/S, L*(s+1)/S) (stage 0 also the embeddings, the last also the pooler
 * and heads; fm_layout_stage). Its replica's rows of a step are cut into M
 * micro-batches that go through a synchronous schedule (pipesched.h): GPipe
 * (every forward, then every backward in reverse) or 1F1B with flush
 * (warm-up forwards, then one forward and one backward in turn, then the
 * last backwards), then the update; activations and their gradients travel
 * with fm_comm.p2p, and with p2p_exchange where a stage sends to the
 * neighbour it next receives from. A stage allocates as many micro-batch
 * activation sets as its schedule keeps alive (GPipe M, 1F1B at most S-s)
 * and uses them as a ring. A stage owns the tensors it holds (and
 * their nu and moments): the gradient sums cover only those, over the
 * replicas of the stage, per layer as the last backward completes it; the
 * loss and signal flags are summed over the team; the update covers only the
 * owned tensors, with the global norm from per-tensor terms summed over the
 * stages (which also serve the sparsities).
 *
 * A stage's model normally holds its own tensors only (fm_model_alloc_stage:
 * parameters, gradients, and the trainer's nu, moments and sample are memory
 * for those tensors alone): then nothing is copied between the stages, an
 * evaluation runs pipelined (pipe_logits: each stage forwards its layers and
 * passes the activations on, the last computes the logits), and files are
 * assembled from the stages' tensors by the writer (cli/gather.h). Over a
 * whole model on every stage, fm_engine_sync copies every owned tensor from
 * its stage to the others before anything reads the whole model.
 *
 * With tensor parallelism (fm_comm.ntp > 1) a stage is P ranks, each over
 * its shares of the stage's tensors (fm_model_shard with the stage's
 * ownership); their layers sum over them inside model.c. fm_comm.p2p links
 * tensor-parallel rank t of a stage to rank t of its neighbours (a stage's
 * input and output are whole and the same bits on its P ranks); the loss
 * is counted from rank 0 of the last stage's P ranks; the norm and the
 * sparsities are summed over the stages and then the P ranks, after the
 * check that a stage's P ranks agree on the tensors they hold whole
 * (engine.c's fm_strategy_apply_parts). */
#include <stdlib.h>

#include "fm.h"
#include "pipesched.h"
#include "strategy.h"

typedef struct {
    fm_strategy s;
    int M, l0, l1;
    fm_pipe_schedule sch;
    int sets;          /* activation sets: the schedule's ring (fm_pipe_sched_sets) */
    fm_acts **acts;    /* [sets] micro-batch j's activations of this stage's layers in slot j % sets */
    fm_batch_buf *mbb; /* [sets] */
    float *x[2];       /* (micro-batch rows, T, H): an op's input and output, in turns */
    fm_pipe_op *ops;   /* [2M] this step's schedule */
    int *mk;           /* [M] the micro-batches with rows, in order */
    size_t x_bytes;    /* of each x */
} pipeline;

/* A stage's way through one step's ops: the output held back to go with
 * the next op's receive (pipesched.h), and the loss of the last stage. */
typedef struct {
    const float *pend;
    size_t pend_n;
    double loss;
} pipe_run;

/* Op o's input into in[0..n): received from its neighbour, in one exchange
 * with the held-back output when there is one; nothing when o makes its own. */
static int op_input(const fm_comm *cm, pipe_run *r, const fm_pipe_op *o, float *in, size_t n) {
    if (!o->recv) return FM_OK;
    const float *pend = r->pend;
    r->pend = NULL;
    if (pend) return cm->p2p_exchange(cm->ctx, o->recv, pend, r->pend_n, in, n);
    return cm->p2p(cm->ctx, o->recv, in, n, 0);
}

/* Op o's output out[0..n) to its neighbour, now or with the next receive. */
static int op_output(const fm_comm *cm, pipe_run *r, const fm_pipe_op *o, float *out, size_t n) {
    if (!o->send) return FM_OK;
    if (o->send_later) {
        r->pend = out;
        r->pend_n = n;
        return FM_OK;
    }
    return cm->p2p(cm->ctx, o->send, out, n, 1);
}

/* Rows [*a, *b) of this replica's nr rows are micro-batch k's. */
static void mb_rows(int nr, int M, int k, int *a, int *b) {
    *a = nr * k / M;
    *b = nr * (k + 1) / M;
}

/* The forward of o's micro-batch (the j-th with rows) in ring slot j % sets. */
static int pipe_forward(pipeline *p, fm_engine *e, pipe_run *r, const fm_pipe_op *o, float *in, float *out) {
    fm_model *m = e->m;
    const fm_comm *cm = e->c.comm;
    const int S = cm->nstages, s = cm->stage, slot = o->k % p->sets;
    const fm_pass pass = fm_engine_pass(e);
    int a, b;
    mb_rows(e->nrows, p->M, p->mk[o->k], &a, &b);
    fm_engine_fill(e, &p->mbb[slot], e->rows + a, b - a, e->lo + a);
    fm_batch *bt = &p->mbb[slot].b;
    const size_t n = (size_t)bt->B * bt->T * m->cfg.hidden_size;
    if (s == 0) fm_embed_forward(m, p->acts[slot], bt, &pass, in);
    else if (op_input(cm, r, o, in, n) != FM_OK) return FM_ERR;
    fm_encoder_forward(m, p->acts[slot], bt, &pass, p->l0, p->l1, in, out);
    if (s == S - 1) r->loss += fm_head_forward(m, p->acts[slot], bt, &pass, out, NULL);
    else if (op_output(cm, r, o, out, n) != FM_OK) return FM_ERR;
    return FM_OK;
}

/* The backward of o's micro-batch. The last one of the step (fin) goes
 * layer by layer (the same arithmetic), and the gradients of each layer
 * this stage holds are summed over the replicas of the stage as soon as
 * they are complete. */
static int pipe_backward(pipeline *p, fm_engine *e, pipe_run *r, const fm_pipe_op *o, int fin, float *in,
                         float *out) {
    fm_model *m = e->m;
    const fm_comm *cm = e->c.comm;
    const int L = m->cfg.num_hidden_layers, S = cm->nstages, s = cm->stage, slot = o->k % p->sets;
    const fm_pass pass = fm_engine_pass(e);
    fm_acts *ac = p->acts[slot];
    fm_batch *bt = &p->mbb[slot].b;
    const size_t n = (size_t)bt->B * bt->T * m->cfg.hidden_size;
    if (s == S - 1) {
        fm_head_backward(m, ac, bt, &pass, (float)(1.0 / e->nb), in);
        if (fin && fm_engine_sum_layer(e, L) != FM_OK) return FM_ERR;
    } else if (op_input(cm, r, o, in, n) != FM_OK) {
        return FM_ERR;
    }
    float *dx = out;
    if (!fin) {
        fm_encoder_backward(m, ac, bt, &pass, p->l0, p->l1, in, out);
    } else {
        float *dout = in, *din = out;
        for (int l = p->l1 - 1; l >= p->l0; l--) {
            fm_encoder_backward(m, ac, bt, &pass, l, l + 1, dout, din);
            float *t = dout;
            dout = din;
            din = t;
            if (fm_engine_sum_layer(e, l) != FM_OK) return FM_ERR;
            if (cm->progress) cm->progress(cm->ctx);
        }
        dx = dout;
    }
    if (s == 0) {
        fm_embed_backward(m, ac, bt, &pass, dx);
        if (fin && fm_engine_sum_layer(e, -1) != FM_OK) return FM_ERR;
        return FM_OK;
    }
    return op_output(cm, r, o, dx, n);
}

/* This stage's share of the step for its replica's rows e->rows[0..nr)
 * (global indices e->lo.. within the step): the micro-batches with rows go
 * through the schedule's ops (pipesched.h), each op taking its input in one
 * of two buffers and leaving its output in the other; the gradients of each
 * layer are summed over the replicas as the step's last backward completes
 * them. */
static int pipe_step(fm_strategy *st, fm_engine *e, fm_step_out *out) {
    pipeline *p = (pipeline *)st;
    const fm_comm *cm = e->c.comm;
    const int L = e->m->cfg.num_hidden_layers, S = cm->nstages, s = cm->stage;
    int nk = 0;
    for (int k = 0; k < p->M; k++) {
        int a, b;
        mb_rows(e->nrows, p->M, k, &a, &b);
        if (b > a) p->mk[nk++] = k;
    }
    pipe_run r = {0};
    if (nk > 0) {
        fm_pipe_sched_ops(p->sch, S, s, nk, p->ops);
        for (int i = 0; i < 2 * nk; i++) {
            const fm_pipe_op *o = &p->ops[i];
            /* the input goes where the held-back output is not */
            float *in = r.pend == p->x[0] ? p->x[1] : p->x[0], *o_out = in == p->x[0] ? p->x[1] : p->x[0];
            int rc = o->backward ? pipe_backward(p, e, &r, o, i == 2 * nk - 1, in, o_out)
                                 : pipe_forward(p, e, &r, o, in, o_out);
            if (rc != FM_OK) return FM_ERR;
        }
    } else {
        /* No rows on this replica: its zeros join the sums, in the same order. */
        if (s == S - 1 && fm_engine_sum_layer(e, L) != FM_OK) return FM_ERR;
        for (int l = p->l1 - 1; l >= p->l0; l--)
            if (fm_engine_sum_layer(e, l) != FM_OK) return FM_ERR;
        if (s == 0 && fm_engine_sum_layer(e, -1) != FM_OK) return FM_ERR;
    }
    if (cm->sum_wait(cm->ctx) != FM_OK) return FM_ERR;
    /* the last stage's tensor-parallel ranks have the same loss: rank 0's counts */
    const float loss = cm->ntp > 1 && cm->tp != 0 ? 0.0f : (float)r.loss;
    float extra[3] = {loss, (float)out->term, (float)out->usr1};
    if (cm->team_sum(cm->ctx, extra, 3) != FM_OK) return FM_ERR;
    out->loss = extra[0] / e->nb;
    out->term = extra[1];
    out->usr1 = extra[2];
    return FM_OK;
}

/* Each stage's per-tensor norm terms summed over the stages (and the
 * tensor-parallel ranks) give every rank the global norm (one process's
 * bits), then AdamW on the owned tensors. */
static int pipe_apply(fm_strategy *st, fm_engine *e, double *norm, double *factor) {
    (void)st;
    return fm_strategy_apply_parts(e, 1, norm, factor);
}

/* Each stage holds the current scores and sample of its own tensors only. */
static int pipe_sparsity(fm_strategy *st, fm_engine *e, fm_sparsity *sp) {
    (void)st;
    return fm_strategy_sparsity_parts(e, 1, sp);
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
    if (m->own) return FM_OK; /* each stage holds its own tensors only: nothing to copy */
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

/* Evaluation through the stages of this replica (fm_engine_logits): per
 * batch, stage 0 embeds, every stage forwards its layers and passes the
 * hidden states on, the last stage's head writes the logits. Blocking
 * messages let stage s forward batch k + 1 while stage s + 1 forwards k. */
static int pipe_logits(fm_strategy *st, fm_engine *e, const fm_dataset *d, int batch, int row0, int row1,
                       float *logits) {
    pipeline *p = (pipeline *)st;
    fm_model *m = e->m;
    const fm_comm *cm = e->c.comm;
    const int S = cm->nstages, s = cm->stage, H = m->cfg.hidden_size, NL = m->cfg.num_labels;
    if (row1 <= row0) return FM_OK;
    fm_acts *a = fm_acts_new_for(m, batch, d->max_len, p->l0, p->l1, 1);
    fm_batch_buf bb;
    fm_batch_buf_alloc(&bb, batch, d->max_len);
    int32_t *rows = fm_xmalloc(sizeof(int32_t) * (size_t)batch);
    float *xa = fm_xalloc_floats((size_t)batch * d->max_len * H);
    float *xb = fm_xalloc_floats((size_t)batch * d->max_len * H);
    const fm_pass pass = {.seed = 0, .step = 0, .training = 0, .cls_only_last = 1};
    int rc = FM_OK;
    for (int i = row0; i < row1 && rc == FM_OK; i += batch) {
        const int B = row1 - i < batch ? row1 - i : batch;
        for (int j = 0; j < B; j++) rows[j] = i + j;
        fm_batch_fill(&bb, d, rows, B, 1, 0);
        bb.b.labels = NULL;
        bb.b.targets = NULL;
        const size_t n = (size_t)bb.b.B * bb.b.T * H;
        if (s == 0) fm_embed_forward(m, a, &bb.b, &pass, xa);
        else if ((rc = cm->p2p(cm->ctx, -1, xa, n, 0)) != FM_OK) break;
        fm_encoder_forward(m, a, &bb.b, &pass, p->l0, p->l1, xa, xb);
        if (s == S - 1) fm_head_forward(m, a, &bb.b, &pass, xb, logits + (size_t)i * NL);
        else rc = cm->p2p(cm->ctx, +1, xb, n, 1);
    }
    fm_free_aligned(xa);
    fm_free_aligned(xb);
    free(rows);
    fm_batch_buf_free(&bb);
    fm_acts_free(a);
    return rc;
}

/* The activation sets of this stage's layers; the two x the buffers. */
static size_t pipe_bytes(const fm_strategy *st, size_t *buffers) {
    const pipeline *p = (const pipeline *)st;
    size_t n = 0;
    *buffers = 2 * p->x_bytes;
    for (int k = 0; k < p->sets; k++) n += fm_acts_bytes(p->acts[k]);
    return n;
}

static void pipe_destroy(fm_strategy *st) {
    pipeline *p = (pipeline *)st;
    for (int k = 0; k < p->sets; k++) {
        if (p->acts[k]) fm_acts_free(p->acts[k]);
        fm_batch_buf_free(&p->mbb[k]);
    }
    free(p->acts);
    free(p->mbb);
    free(p->ops);
    free(p->mk);
    fm_free_aligned(p->x[0]);
    fm_free_aligned(p->x[1]);
    free(p);
}

/* The schedule's buffers: as many activation and batch sets as it keeps
 * micro-batches alive (GPipe M, 1F1B at most S - s), each for the largest
 * micro-batch of a replica's share over this stage's layers, and the two
 * buffers the ops pass between them. */
static void pipe_alloc(pipeline *p, const fm_engine *e) {
    const fm_comm *cm = e->c.comm;
    const fm_config *cfg = &e->m->cfg;
    const int M = p->M, mb = (fm_engine_share_rows(e) + M - 1) / M;
    p->sets = fm_pipe_sched_sets(p->sch, cm->nstages, cm->stage, M);
    p->acts = fm_xcalloc((size_t)p->sets, sizeof *p->acts);
    p->mbb = fm_xcalloc((size_t)p->sets, sizeof *p->mbb);
    p->s.acts_sets = p->sets;
    for (int k = 0; k < p->sets; k++) {
        p->acts[k] = fm_acts_new_for(e->m, mb, e->c.seq, p->l0, p->l1, 0);
        fm_batch_buf_alloc(&p->mbb[k], mb, e->c.seq);
    }
    p->x_bytes = (size_t)mb * e->c.seq * cfg->hidden_size * sizeof(float);
    for (int i = 0; i < 2; i++) p->x[i] = fm_xalloc_floats((size_t)mb * e->c.seq * cfg->hidden_size);
    p->ops = fm_xcalloc(2 * (size_t)M, sizeof *p->ops);
    p->mk = fm_xcalloc((size_t)M, sizeof *p->mk);
    size_t buffers;
    const size_t bytes = pipe_bytes(&p->s, &buffers);
    fm_debug("pipeline stage %d of %d: %s over %d micro-batches of up to %d rows: %d activation sets, %zu bytes",
             cm->stage, cm->nstages, p->sch == FM_PIPE_1F1B ? "1F1B" : "GPipe", M, mb, p->sets, bytes);
}

fm_strategy *fm_strategy_pipeline(fm_engine *e) {
    const fm_comm *cm = e->c.comm;
    fm_model *m = e->m;
    const int L = m->cfg.num_hidden_layers, S = cm->nstages, M = e->c.micro_batches;
    if (!cm->sum_start || !cm->sum_wait || !cm->p2p || !cm->p2p_exchange || !cm->team_sum || !cm->stages_sum ||
        !cm->bcast) {
        fm_fail("pipeline stages: the caller gave no p2p, p2p_exchange, team_sum, stages_sum or bcast");
        return NULL;
    }
    if (M < 1 || M > e->c.batch) {
        fm_fail("micro_batches %d: expected 1 to the batch size %d", M, e->c.batch);
        return NULL;
    }
    if (e->c.schedule != FM_PIPE_GPIPE && e->c.schedule != FM_PIPE_1F1B) {
        fm_fail("pipeline schedule %d: expected GPipe or 1F1B", (int)e->c.schedule);
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
    if (m->own) p->s.logits = pipe_logits;
    p->s.bytes = pipe_bytes;
    p->s.destroy = pipe_destroy;
    p->M = M;
    p->sch = e->c.schedule;
    p->l0 = L * cm->stage / S;
    p->l1 = L * (cm->stage + 1) / S;
    pipe_alloc(p, e);
    return &p->s;
}
