/* engine.c: the training engine (see engine.h) and its one-process strategy. */
#include "engine.h"

#include <stdlib.h>
#include <string.h>

#include "fm.h"
#include "strategy.h"

/* Tensor parallelism runs on the replicas strategy (strat_replicas.c) or
 * inside each stage of the pipeline strategy (strat_pipeline.c) over a
 * model sharded for this rank (fm_model_shard); what it cannot do (MLM
 * pre-training's loss) is refused here, naming the option. */
static int tp_check(const fm_model *m, const fm_engine_cfg *c) {
    const fm_comm *cm = c->comm;
    const int P = cm->ntp, A = m->cfg.num_attention_heads;
    if (A % P)
        return fm_fail("--tensor-parallel %d: the model has %d attention heads; expected a divisor of them (a rank "
                       "holds whole heads)",
                       P, A);
    if (c->scale != FM_SCALE_ROWS)
        return fm_fail("--tensor-parallel %d: only fine-tuning (a task head's loss) runs tensor-parallel", P);
    if (!cm->tp_sum || !cm->tp_sum_doubles || !cm->tp_gather)
        return fm_fail("--tensor-parallel %d: the caller gave no tensor-parallel sums", P);
    if (m->lay.tp_size != P || m->lay.tp_rank != cm->tp)
        return fm_fail("--tensor-parallel %d: the model is not this rank's shard (rank %d of %d)", P, cm->tp, P);
    return FM_OK;
}

int fm_engine_init(fm_engine *e, fm_model *m, const fm_engine_cfg *c) {
    memset(e, 0, sizeof *e);
    e->c = *c;
    e->m = m;
    const fm_comm *cm = c->comm;
    if (cm && cm->ntp > 1 && tp_check(m, c) != FM_OK) return FM_ERR;
    fm_trainer_opts to = c->train;
    if (m->own && cm && cm->nstages > 1) {
        /* a stage's model: the initial ranking's sums over the stages */
        to.stages_sum = cm->stages_sum;
        to.stages_ctx = cm->ctx;
        to.stage = cm->stage;
        to.nstages = cm->nstages;
    }
    if (cm && cm->ntp > 1) {
        /* the layers' sums, and the initial ranking's over the ranks of a stage */
        m->tp_sum = cm->tp_sum;
        m->tp_ctx = cm->ctx;
        to.tp_sum = cm->tp_sum_doubles;
        to.tp_ctx = cm->ctx;
    }
    if (fm_trainer_init(&e->tr, m, &to) != FM_OK) return FM_ERR;
    e->tr_ready = 1;
    if (cm && cm->nstages > 1) e->s = fm_strategy_pipeline(e);
    else if (cm && (cm->nreplicas > 1 || cm->ntp > 1)) e->s = fm_strategy_replicas(e);
    else e->s = fm_strategy_one(e);
    if (!e->s) {
        fm_engine_free(e);
        return FM_ERR;
    }
    e->rows = fm_xmalloc(sizeof(int32_t) * (size_t)(c->batch > 0 ? c->batch : 1));
    return FM_OK;
}

void fm_engine_free(fm_engine *e) {
    if (e->s) e->s->destroy(e->s);
    e->s = NULL;
    if (e->tr_ready) fm_trainer_free(&e->tr);
    e->tr_ready = 0;
    free(e->rows);
    e->rows = NULL;
}

const char *fm_engine_strategy(const fm_engine *e) { return e->s ? e->s->name : "none"; }

fm_acts *fm_engine_acts(fm_engine *e, fm_batch_buf **bb) {
    if (bb) *bb = e->s->bb;
    return e->s->acts;
}

size_t fm_engine_acts_bytes(const fm_engine *e, int *sets, size_t *buffers) {
    const fm_strategy *s = e->s;
    size_t b = 0, n = s->bytes ? s->bytes(s, &b) : 0;
    if (sets) *sets = s->acts_sets > 0 ? s->acts_sets : s->acts != NULL;
    if (buffers) *buffers = b;
    return n;
}

int fm_engine_share_rows(const fm_engine *e) {
    const int R = e->c.comm ? e->c.comm->nreplicas : 1;
    return (e->c.batch + R - 1) / R;
}

void fm_engine_batch(fm_engine *e, int64_t step, const int32_t *rows, int nb) {
    const fm_comm *cm = e->c.comm;
    const int R = e->s->split ? cm->nreplicas : 1;
    const int r = R > 1 ? cm->replica : 0;
    const int lo = (int)((int64_t)nb * r / R), hi = (int)((int64_t)nb * (r + 1) / R);
    for (int j = lo; j < hi; j++) e->rows[j - lo] = rows[j];
    e->lo = lo;
    e->nrows = hi - lo;
    e->nb = nb;
    fm_trainer_begin_step(&e->tr, step);
}

int64_t fm_engine_fill(fm_engine *e, fm_batch_buf *bb, const int32_t *rows, int n, int64_t example0) {
    return e->c.fill(e->c.fill_ctx, bb, e->c.data, rows, n, example0);
}

fm_pass fm_engine_pass(const fm_engine *e) {
    fm_pass p = {.seed = e->tr.o.seed, .step = (uint64_t)e->tr.step, .training = 1,
                 .cls_only_last = e->c.cls_only_last};
    return p;
}

int fm_engine_sum_layer(const fm_engine *e, int l) {
    const fm_comm *cm = e->c.comm;
    const fm_model *m = e->m;
    const fm_layout *lay = &m->lay;
    size_t begin = 0, end = 0;
    for (int i = 0; i < lay->n; i++) {
        const fm_tensor *t = &lay->t[i];
        if (t->layer != l || !(t->trains || t->needs_grad)) continue;
        if (end == t->offset && end > begin) {
            end += t->numel;
            continue;
        }
        if (end > begin && cm->sum_start(cm->ctx, m->grads + begin, end - begin) != FM_OK) return FM_ERR;
        begin = t->offset;
        end = begin + t->numel;
    }
    if (end > begin && cm->sum_start(cm->ctx, m->grads + begin, end - begin) != FM_OK) return FM_ERR;
    return FM_OK;
}

int fm_engine_step(fm_engine *e, fm_step_out *out) {
    out->count = 0;
    return e->s->step(e->s, e, out);
}

int fm_engine_apply(fm_engine *e, double *norm, double *factor) { return e->s->apply(e->s, e, norm, factor); }

int fm_engine_whole(const fm_engine *e) { return !e->m->own; }

int fm_engine_logits(fm_engine *e, const fm_dataset *d, int batch, int row0, int row1, float *logits) {
    if (!e->s->logits) return fm_fail("%s: every rank holds the whole model; evaluate it there", e->s->name);
    return e->s->logits(e->s, e, d, batch, row0, row1, logits);
}

int fm_engine_sync(fm_engine *e, fm_sync_what what) { return e->s->sync ? e->s->sync(e->s, e, what) : FM_OK; }

int fm_engine_sparsity(fm_engine *e, fm_sparsity *sp) {
    if (e->s->sparsity) return e->s->sparsity(e->s, e, sp);
    fm_trainer_sparsity(&e->tr, sp);
    return FM_OK;
}

int fm_comm_agree(const fm_comm *comm, int ok) {
    if (comm && comm->agree) return comm->agree(comm->ctx, ok);
    return ok ? FM_OK : FM_ERR;
}

int fm_engine_agree(const fm_engine *e, int ok) { return fm_comm_agree(e->c.comm, ok); }

int fm_engine_writer(const fm_engine *e) { return !e->c.comm || e->c.comm->team_rank == 0; }

int fm_engine_save(fm_engine *e, int (*write)(void *ctx, const fm_trainer *tr), void *ctx) {
    if (fm_engine_sync(e, FM_SYNC_STATE) != FM_OK) return FM_ERR;
    /* stages and tensor-parallel shares: every rank takes part in the writer's gathers */
    const int all = !fm_engine_whole(e) || (e->c.comm && e->c.comm->ntp > 1);
    int ok = (!fm_engine_writer(e) && !all) || write(ctx, &e->tr) == FM_OK;
    return fm_engine_agree(e, ok);
}

int fm_engine_load(fm_engine *e, int (*read)(void *ctx, fm_trainer *tr), void *ctx) { return read(ctx, &e->tr); }

/* ---- what tensor-parallel ranks and pipeline stages agree on ---- */

/* A hash of the gradients of the tensors m holds whole that have one. */
static uint64_t whole_grads_hash(const fm_model *m) {
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < m->lay.n; i++) {
        const fm_tensor *t = &m->lay.t[i];
        if (t->split != FM_SPLIT_NONE || !(t->trains || t->needs_grad) || !fm_model_holds(m, i)) continue;
        const float *g = m->grads + t->offset;
        for (size_t j = 0; j < t->numel; j++) {
            uint32_t u;
            memcpy(&u, &g[j], sizeof u);
            h = (h ^ u) * 1099511628211ull;
        }
    }
    return h;
}

/* FM_OK when every tensor-parallel rank of the stage has the same
 * gradients of the tensors held whole: the layers' identical summed inputs
 * promise it, and it lets their updates go unsummed. */
static int tp_same_whole_grads(const fm_engine *e) {
    const fm_comm *cm = e->c.comm;
    double *x = fm_xcalloc((size_t)cm->ntp, sizeof *x);
    x[cm->tp] = (double)(whole_grads_hash(e->m) >> 11); /* 53 bits: exact in a double */
    int rc = cm->tp_sum_doubles(cm->ctx, x, (size_t)cm->ntp);
    for (int r = 1; r < cm->ntp && rc == FM_OK; r++)
        if (x[r] != x[0])
            rc = fm_fail("tensor parallelism: at step %lld the gradients of the tensors every rank holds whole "
                         "differ between tensor-parallel ranks 0 and %d of stage %d; they must be the same bits",
                         (long long)e->tr.step, r, cm->stage);
    free(x);
    return rc;
}

/* x[0..k*n) of per-tensor terms (k each) summed over the stages (with
 * stages) and the tensor-parallel ranks, each tensor held whole counted
 * once. */
static int parts_sum(const fm_engine *e, int stages, double *x, int k) {
    const fm_comm *cm = e->c.comm;
    const size_t n = (size_t)k * (size_t)e->m->lay.n;
    if (cm->ntp > 1) fm_trainer_tp_parts(&e->tr, x, k);
    if (stages && cm->stages_sum(cm->ctx, x, n) != FM_OK) return FM_ERR;
    return cm->ntp > 1 ? cm->tp_sum_doubles(cm->ctx, x, n) : FM_OK;
}

int fm_strategy_apply_parts(fm_engine *e, int stages, double *norm, double *factor) {
    if (e->c.comm->ntp > 1 && tp_same_whole_grads(e) != FM_OK) return FM_ERR;
    const int n = e->m->lay.n;
    double *sq = fm_xmalloc(sizeof(double) * (size_t)(n ? n : 1));
    fm_trainer_norm_parts(&e->tr, sq);
    int rc = parts_sum(e, stages, sq, 1);
    if (rc == FM_OK) *factor = fm_trainer_apply_parts(&e->tr, sq, norm);
    free(sq);
    return rc;
}

int fm_strategy_sparsity_parts(fm_engine *e, int stages, fm_sparsity *sp) {
    const int n = e->m->lay.n;
    double *parts = fm_xmalloc(sizeof(double) * 3 * (size_t)(n ? n : 1));
    fm_trainer_sparsity_parts(&e->tr, parts);
    int rc = parts_sum(e, stages, parts, 3);
    if (rc == FM_OK) fm_trainer_sparsity_sum(&e->tr, parts, sp);
    free(parts);
    return rc;
}

/* ---- one process: the whole batch, the whole model ---- */

typedef struct {
    fm_strategy s;
    fm_acts *acts;
    fm_batch_buf bb;
} one_strategy;

static int one_step(fm_strategy *s, fm_engine *e, fm_step_out *out) {
    one_strategy *o = (one_strategy *)s;
    const int64_t np = fm_engine_fill(e, &o->bb, e->rows, e->nrows, e->lo);
    if (e->c.scale == FM_SCALE_ROWS) {
        out->loss = fm_trainer_grad(&e->tr, o->acts, &o->bb.b, 1.0 / e->nb) / e->nb;
        return FM_OK;
    }
    /* one process: the predictions of the step are this process's */
    const fm_pass pass = fm_engine_pass(e);
    const double sum = e->nrows > 0 ? fm_model_forward(e->m, o->acts, &o->bb.b, &pass, NULL) : 0;
    out->count = (double)np;
    out->loss = out->count > 0 ? sum / out->count : 0;
    if (out->count > 0 && e->nrows > 0) fm_model_backward(e->m, o->acts, &o->bb.b, &pass, (float)(1.0 / out->count));
    return FM_OK;
}

int fm_strategy_apply_whole(fm_strategy *s, fm_engine *e, double *norm, double *factor) {
    (void)s;
    *factor = fm_trainer_apply(&e->tr, norm);
    return FM_OK;
}

static size_t one_bytes(const fm_strategy *s, size_t *buffers) {
    *buffers = 0;
    return fm_acts_bytes(((const one_strategy *)s)->acts);
}

static void one_destroy(fm_strategy *s) {
    one_strategy *o = (one_strategy *)s;
    if (o->acts) fm_acts_free(o->acts);
    fm_batch_buf_free(&o->bb);
    free(o);
}

fm_strategy *fm_strategy_one(fm_engine *e) {
    one_strategy *o = fm_xcalloc(1, sizeof *o);
    const fm_config *c = &e->m->cfg;
    o->s.name = "one";
    o->s.step = one_step;
    o->s.apply = fm_strategy_apply_whole;
    o->s.bytes = one_bytes;
    o->s.destroy = one_destroy;
    o->acts = fm_acts_new(c, e->c.batch, e->c.seq, 0, c->num_hidden_layers);
    fm_batch_buf_alloc(&o->bb, e->c.batch, e->c.seq);
    o->s.acts = o->acts;
    o->s.bb = &o->bb;
    return &o->s;
}
