/* train.c: the training step for full, L0-close and supermask fine-tuning
 * (see train.h). */
#include "train.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fastmath.h"
#include "fm.h"
#include "rng.h"

#define CHUNK 4096 /* elements per parallel sampling chunk (a multiple of 8) */

void fm_trainer_opts_default(fm_trainer_opts *o) {
    memset(o, 0, sizeof *o);
    o->mode = FM_TRAIN_FULL;
    o->seed = 42;
    fm_adamw_default(&o->opt);
    o->mask_opt = o->opt;
    o->mask_opt.lr = 1e-2f;
    o->mask_opt.weight_decay = 0.0f;
    o->mask_opt.eps = 1e-12f;
    o->ste = FM_STE_SIGMOID;
    o->mask_glob = NULL;
    o->mask_layers = NULL;
    o->init_sparsity = 0.0;
    o->nu_init = 5.0;
    o->init_rank = FM_RANK_GLOBAL;
}

/* The address of the field of v that points at params + offset, or NULL. */
static float **view_field(fm_view *v, const float *p) {
#define TRY(f)                                                                                                        \
    if (v->f == p) return &v->f;
    TRY(word) TRY(pos) TRY(type) TRY(emb_ln_g) TRY(emb_ln_b) TRY(pool_w) TRY(pool_b) TRY(cls_w) TRY(cls_b)
    TRY(mlm_w) TRY(mlm_b) TRY(mlm_ln_g) TRY(mlm_ln_b) TRY(mlm_bias)
#undef TRY
    for (int l = 0; l < v->num_layers; l++) {
        fm_layer_view *w = &v->layer[l];
#define TRY(f)                                                                                                        \
    if (w->f == p) return &w->f;
        TRY(wq) TRY(bq) TRY(wk) TRY(bk) TRY(wv) TRY(bv) TRY(wd) TRY(bd) TRY(ln1_g) TRY(ln1_b) TRY(wi) TRY(bi)
        TRY(wo) TRY(bo) TRY(ln2_g) TRY(ln2_b)
#undef TRY
    }
    return NULL;
}

/* Piece of a tensor: -1 embeddings, 0..L-1 encoder layer, L the rest. */
static int piece_of(const fm_model *m, const fm_tensor *x) {
    const int L = m->cfg.num_hidden_layers;
    return x->layer < -1 ? -1 : (x->layer > L ? L : x->layer);
}

static void hook(void *ctx, fm_model *m, int piece) {
    (void)m;
    fm_trainer_materialise(ctx, piece);
}

static void layout_copy(fm_layout *dst, const fm_layout *src) {
    *dst = *src;
    dst->t = fm_xmalloc(sizeof *dst->t * (size_t)(src->n ? src->n : 1));
    memcpy(dst->t, src->t, sizeof *dst->t * (size_t)src->n);
}

int fm_trainer_init(fm_trainer *t, fm_model *m, const fm_trainer_opts *o) {
    memset(t, 0, sizeof *t);
    t->m = m;
    t->o = *o;
    const fm_layout *lay = &m->lay;
    if (o->mode == FM_TRAIN_SUPERMASK) {
        if (!(o->init_sparsity >= 0 && o->init_sparsity <= 1))
            return fm_fail("--init-sparsity %g: expected a fraction in [0, 1]", o->init_sparsity);
        const char *glob = o->mask_glob ? o->mask_glob : FM_MASK_DEFAULT_GLOB;
        if (fm_mask_create(&t->sample, lay, glob, o->mask_layers) != FM_OK) return FM_ERR;
        if (t->sample.n == 0) {
            fm_mask_free(&t->sample);
            return fm_fail("--mask %s%s%s: matches no tensor of the model", glob,
                           o->mask_layers ? " --mask-layers " : "", o->mask_layers ? o->mask_layers : "");
        }
        t->masked_of = fm_xmalloc(sizeof(int) * (size_t)lay->n);
        for (int i = 0; i < lay->n; i++) t->masked_of[i] = -1;
        t->fields = fm_xcalloc((size_t)lay->n, sizeof *t->fields);
        for (int k = 0; k < t->sample.n; k++) {
            const fm_tensor *x = fm_layout_find(lay, t->sample.t[k].name);
            assert(x);
            if (x->flags & (FM_T_HEAD | FM_T_MLM)) {
                int rc = fm_fail("--mask: %s is a head tensor; heads train normally and are never masked", x->name);
                fm_trainer_free(t);
                return rc;
            }
            t->masked_of[x - lay->t] = k;
            t->fields[x - lay->t] = view_field(&m->w, m->params + x->offset);
            assert(t->fields[x - lay->t]);
            t->masked_numel += x->whole_numel;
        }
        /* Only the task head trains; the masked tensors need their gradient. */
        size_t per_piece[4096] = {0};
        const int L = m->cfg.num_hidden_layers;
        assert(L + 2 <= 4096);
        for (int i = 0; i < lay->n; i++) {
            fm_tensor *x = &m->lay.t[i];
            int masked = t->masked_of[i] >= 0, head = (x->flags & FM_T_HEAD) != 0;
            x->trains = head;
            x->needs_grad = head || masked;
            /* the scratch of the largest piece this rank materialises (a stage: of its own) */
            if (masked && fm_model_holds(m, i)) per_piece[piece_of(m, x) + 1] += x->numel;
        }
        for (int p = 0; p < L + 2; p++)
            if (per_piece[p] > t->scratch_n) t->scratch_n = per_piece[p];
        t->scratch = fm_xalloc_floats(t->scratch_n);
        layout_copy(&t->nu_lay, lay);
        layout_copy(&t->head_lay, lay);
        for (int i = 0; i < lay->n; i++) {
            t->nu_lay.t[i].trains = t->masked_of[i] >= 0;
            t->head_lay.t[i].trains = (lay->t[i].flags & FM_T_HEAD) != 0;
        }
        /* a pipeline stage keeps the bits of its own tensors only */
        for (int i = 0; i < lay->n; i++)
            if (t->masked_of[i] >= 0 && !fm_model_holds(m, i)) {
                free(t->sample.t[t->masked_of[i]].bits);
                t->sample.t[t->masked_of[i]].bits = NULL;
            }
        t->nu = fm_model_alloc_floats(m);
        fm_trainer_init_nu(t, o->init_sparsity, o->init_rank);
        fm_trainer_sample(t, FM_SAMPLE_DET, 0);
        m->weights_fn = hook;
        m->weights_ctx = t;
    }
    t->mom1 = fm_model_alloc_floats(m);
    t->mom2 = fm_model_alloc_floats(m);
    if (m->own) fm_trainer_own(t, m->own);
    return FM_OK;
}

void fm_trainer_free(fm_trainer *t) {
    if (t->m && t->m->weights_fn == hook) {
        t->m->weights_fn = NULL;
        t->m->weights_ctx = NULL;
        fm_view_free(&t->m->w);
        fm_view_bind(&t->m->w, &t->m->lay, &t->m->cfg, t->m->params);
    }
    if (t->m) {
        fm_model_free_floats(t->m, t->mom1);
        fm_model_free_floats(t->m, t->mom2);
        if (t->nu) fm_model_free_floats(t->m, t->nu);
    }
    fm_free_aligned(t->scratch);
    fm_mask_free(&t->sample);
    free(t->masked_of);
    free(t->fields);
    free(t->nu_lay.t);
    free(t->head_lay.t);
    free(t->own);
    free(t->own_lay.t);
    free(t->nu_own.t);
    free(t->head_own.t);
    memset(t, 0, sizeof *t);
}

/* u[0..len) = the uniforms of entries [b, b + len) of tensor i's share:
 * those of their indices in the whole tensor. */
static void draw(const fm_trainer *t, uint32_t purpose, uint64_t key, int i, size_t b, float *u, size_t len) {
    const fm_layout *lay = &t->m->lay;
    const fm_tensor *x = &lay->t[i];
    if (x->split == FM_SPLIT_NONE) {
        fm_rng_uniforms(t->o.seed, purpose, key, (uint32_t)i, (uint64_t)b, u, (uint64_t)len);
        return;
    }
    for (size_t j = 0; j < len;) {
        size_t run, g = fm_tensor_whole_index(lay, x, b + j, &run);
        if (run > len - j) run = len - j;
        fm_rng_uniforms(t->o.seed, purpose, key, (uint32_t)i, (uint64_t)g, u + j, (uint64_t)run);
        j += run;
    }
}

FM_HOT void fm_trainer_sample(fm_trainer *t, fm_sample_kind kind, uint64_t key) {
    if (t->o.mode != FM_TRAIN_SUPERMASK) return;
    const fm_layout *lay = &t->m->lay;
    const uint32_t purpose = kind == FM_SAMPLE_EVAL ? FM_RNG_MASK_EVAL : FM_RNG_MASK;
    for (int i = 0; i < lay->n; i++) {
        int k = t->masked_of[i];
        if (k < 0 || (kind == FM_SAMPLE_TRAIN && t->own && !t->own[i]) || !fm_model_holds(t->m, i)) continue;
        fm_mask_tensor *mt = &t->sample.t[k];
        const float *nu = t->nu + lay->t[i].offset;
        const long n = (long)mt->numel, nchunks = (n + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static) if (n > 65536)
        for (long c = 0; c < nchunks; c++) {
            long b = c * CHUNK, e = b + CHUNK < n ? b + CHUNK : n;
            /* keep[j]: 1 when entry b + j is kept (one pass that vectorises),
             * then packed eight to a byte. */
            float u[CHUNK];
            uint8_t keep[CHUNK];
            const float *nb = nu + b;
            const long len = e - b;
            if (kind == FM_SAMPLE_DET) {
                for (long j = 0; j < len; j++) keep[j] = nb[j] > 0.0f;
            } else {
                draw(t, purpose, key, i, (size_t)b, u, (size_t)len);
                for (long j = 0; j < len; j++) keep[j] = u[j] < fm_sigmoid(nb[j]);
            }
            for (long j0 = 0; j0 < len; j0 += 8) {
                unsigned byte = 0;
                for (long j = j0; j < j0 + 8 && j < len; j++) byte |= (unsigned)keep[j] << (j - j0);
                mt->bits[(b + j0) >> 3] = (uint8_t)byte;
            }
        }
        fm_mask_count(mt);
    }
}

FM_HOT void fm_trainer_materialise(fm_trainer *t, int piece) {
    if (t->o.mode != FM_TRAIN_SUPERMASK) return;
    fm_model *m = t->m;
    const fm_layout *lay = &m->lay;
    size_t off = 0;
    for (int i = 0; i < lay->n; i++) {
        int k = t->masked_of[i];
        const fm_tensor *x = &lay->t[i];
        if (k < 0 || piece_of(m, x) != piece) continue;
        const float *src = m->params + x->offset;
        float *dst = t->scratch + off;
        const uint8_t *bits = t->sample.t[k].bits;
        const long n = (long)x->numel;
        /* dst = src where the bit is set, +0 elsewhere: the float's bits
         * ANDed with all ones or all zeros (which vectorises, where a
         * conditional load does not). */
        const long nbytes = n / 8;
#pragma omp parallel for schedule(static) if (n > 65536)
        for (long q = 0; q < nbytes; q++) {
            const uint32_t byte = bits[q];
            uint32_t w[8];
            memcpy(w, src + 8 * q, sizeof w);
            for (int l = 0; l < 8; l++) w[l] &= 0u - ((byte >> l) & 1u);
            memcpy(dst + 8 * q, w, sizeof w);
        }
        for (long j = 8 * nbytes; j < n; j++) dst[j] = ((bits[j >> 3] >> (j & 7)) & 1) ? src[j] : 0.0f;
        *t->fields[i] = dst;
        off += x->numel;
    }
    assert(off <= t->scratch_n);
}

void fm_trainer_begin_step(fm_trainer *t, int64_t step) {
    t->step = step;
    fm_model_zero_grads(t->m);
    fm_trainer_sample(t, FM_SAMPLE_TRAIN, (uint64_t)step);
}

double fm_trainer_grad(fm_trainer *t, fm_acts *acts, const fm_batch *b, double scale) {
    fm_pass pass = {.seed = t->o.seed, .step = (uint64_t)t->step, .training = 1, .cls_only_last = 1};
    double loss = fm_model_forward(t->m, acts, b, &pass, NULL);
    fm_model_backward(t->m, acts, b, &pass, (float)scale);
    return loss;
}

float *fm_trainer_grads(fm_trainer *t, size_t *n) {
    if (n) *n = t->m->lay.numel;
    return t->m->grads;
}

FM_HOT void fm_trainer_nu_grads(fm_trainer *t) {
    const fm_layout *lay = &t->m->lay;
    const int sig = t->o.ste == FM_STE_SIGMOID;
    for (int i = 0; i < lay->n; i++) {
        if (t->masked_of[i] < 0 || (t->own && !t->own[i])) continue;
        const fm_tensor *x = &lay->t[i];
        float *g = t->m->grads + x->offset;
        const float *w = t->m->params + x->offset, *nu = t->nu + x->offset;
        const long n = (long)x->numel;
#pragma omp parallel for schedule(static) if (n > 65536)
        for (long j = 0; j < n; j++) {
            float d = g[j] * w[j];
            if (sig) {
                float s = fm_sigmoid(nu[j]);
                d *= s * (1.0f - s);
            }
            g[j] = d;
        }
    }
}

/* A copy of src with trains cleared where own is 0. */
static void layout_owned(fm_layout *dst, const fm_layout *src, const unsigned char *own) {
    layout_copy(dst, src);
    for (int i = 0; i < src->n; i++)
        if (!own[i]) dst->t[i].trains = 0;
}

void fm_trainer_own(fm_trainer *t, const unsigned char *own) {
    const fm_layout *lay = &t->m->lay;
    free(t->own);
    free(t->own_lay.t);
    free(t->nu_own.t);
    free(t->head_own.t);
    t->own = NULL;
    memset(&t->own_lay, 0, sizeof t->own_lay);
    memset(&t->nu_own, 0, sizeof t->nu_own);
    memset(&t->head_own, 0, sizeof t->head_own);
    if (!own) return;
    t->own = fm_xmalloc((size_t)(lay->n ? lay->n : 1));
    memcpy(t->own, own, (size_t)lay->n);
    if (t->o.mode == FM_TRAIN_SUPERMASK) {
        layout_owned(&t->nu_own, &t->nu_lay, own);
        layout_owned(&t->head_own, &t->head_lay, own);
    } else {
        layout_owned(&t->own_lay, lay, own);
    }
}

void fm_trainer_norm_parts(fm_trainer *t, double *sq) {
    fm_model *m = t->m;
    if (t->o.mode == FM_TRAIN_SUPERMASK) {
        fm_trainer_nu_grads(t);
        /* nu's tensors (masked) and the head's are disjoint: one array holds both. */
        const fm_layout *nl = t->own ? &t->nu_own : &t->nu_lay, *hl = t->own ? &t->head_own : &t->head_lay;
        double *tmp = fm_xmalloc(sizeof(double) * (size_t)(m->lay.n ? m->lay.n : 1));
        fm_grad_sqnorms(sq, nl, m->grads);
        fm_grad_sqnorms(tmp, hl, m->grads);
        for (int i = 0; i < m->lay.n; i++)
            if (hl->t[i].trains) sq[i] = tmp[i];
        free(tmp);
    } else {
        fm_grad_sqnorms(sq, t->own ? &t->own_lay : &m->lay, m->grads);
    }
}

double fm_trainer_apply_parts(fm_trainer *t, const double *sq, double *norm_out) {
    fm_model *m = t->m;
    double factor, norm;
    if (t->o.mode == FM_TRAIN_SUPERMASK) {
        double a = fm_grad_norm_sum(&t->nu_lay, sq), b = fm_grad_norm_sum(&t->head_lay, sq);
        norm = sqrt(a * a + b * b);
    } else {
        norm = fm_grad_norm_sum(&m->lay, sq);
    }
    if (norm_out) *norm_out = norm;
    /* A NaN norm passes every clipping test: never let it into the parameters. */
    if (!isfinite(norm)) return fm_lr_factor(&t->o.opt, t->step);
    if (t->o.mode == FM_TRAIN_SUPERMASK) {
        const fm_layout *nl = t->own ? &t->nu_own : &t->nu_lay, *hl = t->own ? &t->head_own : &t->head_lay;
        factor = fm_adamw_step(&t->o.mask_opt, nl, t->nu, m->grads, t->mom1, t->mom2, t->step, norm, NULL);
        fm_adamw_step(&t->o.opt, hl, m->params, m->grads, t->mom1, t->mom2, t->step, norm, NULL);
    } else {
        factor = fm_adamw_step(&t->o.opt, t->own ? &t->own_lay : &m->lay, m->params, m->grads, t->mom1, t->mom2,
                               t->step, norm, NULL);
    }
    t->step++;
    return factor;
}

double fm_trainer_apply(fm_trainer *t, double *norm_out) {
    double *sq = fm_xmalloc(sizeof(double) * (size_t)(t->m->lay.n ? t->m->lay.n : 1));
    fm_trainer_norm_parts(t, sq);
    double factor = fm_trainer_apply_parts(t, sq, norm_out);
    free(sq);
    return factor;
}

/* The ranking key of |x|: the bits of fabsf(x), monotone in |x| (NaN last). */
static inline uint32_t absbits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u & 0x7fffffffu;
}

/* A set of float ranges ranked together. */
typedef struct {
    const float *p;
    float *nu;
    size_t n;
} seg;

/* nu over s: -v for entries below thr and for the first *ties entries equal
 * to it (counted down), +v for the rest; +v everywhere when k is 0. */
static void seg_assign(const seg *s, size_t k, uint32_t thr, size_t *ties, float v) {
    for (size_t j = 0; j < s->n; j++) {
        const uint32_t a = absbits(s->p[j]);
        int low = 0;
        if (k > 0) {
            if (a < thr) low = 1;
            else if (a == thr && *ties > 0) {
                low = 1;
                (*ties)--;
            }
        }
        s->nu[j] = low ? -v : v;
    }
}

/* Sum a histogram over the stages of o (nothing to do without them). */
static void hist_sum(const fm_trainer_opts *o, size_t *hist, size_t n) {
    if (!o || !o->stages_sum) return;
    double *x = fm_xmalloc(sizeof(double) * n);
    for (size_t i = 0; i < n; i++) x[i] = (double)hist[i];
    /* a failed sum is the communication's to report: the next collective fails too */
    if (o->stages_sum(o->stages_ctx, x, n) == FM_OK)
        for (size_t i = 0; i < n; i++) hist[i] = (size_t)x[i];
    free(x);
}

/* Set nu over segs: -v for the k smallest |x| (ties: earlier segment, then
 * earlier element, first), +v for the rest. Radix selection on the bits of
 * |x|: two 16-bit histogram passes find the k-th key, a third assigns. With
 * o's stages_sum the segments are this stage's part of a ranking over every
 * stage's (the histograms and the ties of earlier stages summed over them;
 * o NULL: these segments alone). */
static void rank_assign(const seg *s, int ns, size_t k, float v, const fm_trainer_opts *o) {
    size_t *hist = fm_xcalloc(65536, sizeof(size_t));
    uint32_t thr = 0;
    size_t less = 0;
    if (k > 0) {
        for (int q = 0; q < ns; q++)
            for (size_t j = 0; j < s[q].n; j++) hist[absbits(s[q].p[j]) >> 16]++;
        hist_sum(o, hist, 65536);
        uint32_t hi = 0;
        for (; hi < 65536; hi++) {
            if (less + hist[hi] >= k) break;
            less += hist[hi];
        }
        memset(hist, 0, 65536 * sizeof(size_t));
        for (int q = 0; q < ns; q++)
            for (size_t j = 0; j < s[q].n; j++) {
                uint32_t a = absbits(s[q].p[j]);
                if ((a >> 16) == hi) hist[a & 0xffff]++;
            }
        hist_sum(o, hist, 65536);
        uint32_t lo = 0;
        for (; lo < 65536; lo++) {
            if (less + hist[lo] >= k) break;
            less += hist[lo];
        }
        thr = (hi << 16) | lo;
    }
    /* k - less entries equal to thr go to -v, in order (the earlier stages' first). */
    size_t ties = k > 0 ? k - less : 0;
    if (k > 0 && o && o->stages_sum) {
        size_t *eq = fm_xcalloc((size_t)o->nstages, sizeof(size_t)), before = 0;
        for (int q = 0; q < ns; q++)
            for (size_t j = 0; j < s[q].n; j++) eq[o->stage] += absbits(s[q].p[j]) == thr;
        hist_sum(o, eq, (size_t)o->nstages);
        for (int st = 0; st < o->stage; st++) before += eq[st];
        ties = ties > before ? ties - before : 0;
        free(eq);
    }
    for (int q = 0; q < ns; q++) seg_assign(&s[q], k, thr, &ties, v);
    free(hist);
}

/* Sum n counts over the tensor-parallel ranks of o, and with `stages` over
 * o's stages too (every rank of a replica). */
static void tp_counts_sum(const fm_trainer_opts *o, double *x, size_t n, int stages) {
    /* a failed sum is the communication's to report: the next collective fails too */
    (void)o->tp_sum(o->tp_ctx, x, n);
    if (stages && o->stages_sum) (void)o->stages_sum(o->stages_ctx, x, n);
}

/* rank_assign over the segments of a tensor-parallel shard (rank of P):
 * segment q is a part of layout tensor id[q] (of nid), the histograms and
 * the ties at the threshold summed over the ranks (with `stages` over the
 * stages too, whose segments are the other tensors), a segment every rank
 * holds whole (rep[q]) counted by rank 0 only and assigned the same on
 * every rank. Ties go in tensor order, and inside a split tensor rank by
 * rank: this differs from one process's order only when equal |x|
 * straddle the threshold inside a split tensor. */
static void rank_assign_tp(const seg *s, const unsigned char *rep, const int *id, int ns, int nid, size_t k, float v,
                           const fm_trainer_opts *o, int rank, int P, int stages) {
    double *hist = fm_xcalloc(65536, sizeof(double));
    uint32_t thr = 0;
    size_t less = 0;
    if (k > 0) {
        for (int q = 0; q < ns; q++)
            if (!rep[q] || rank == 0)
                for (size_t j = 0; j < s[q].n; j++) hist[absbits(s[q].p[j]) >> 16] += 1;
        tp_counts_sum(o, hist, 65536, stages);
        uint32_t hi = 0;
        for (; hi < 65536; hi++) {
            if (less + (size_t)hist[hi] >= k) break;
            less += (size_t)hist[hi];
        }
        memset(hist, 0, 65536 * sizeof(double));
        for (int q = 0; q < ns; q++)
            if (!rep[q] || rank == 0)
                for (size_t j = 0; j < s[q].n; j++) {
                    uint32_t a = absbits(s[q].p[j]);
                    if ((a >> 16) == hi) hist[a & 0xffff] += 1;
                }
        tp_counts_sum(o, hist, 65536, stages);
        uint32_t lo = 0;
        for (; lo < 65536; lo++) {
            if (less + (size_t)hist[lo] >= k) break;
            less += (size_t)hist[lo];
        }
        thr = (hi << 16) | lo;
    }
    /* eq[x * P + r]: entries equal to thr in rank r's part of tensor x */
    double *eq = fm_xcalloc((size_t)(nid ? nid : 1) * (size_t)P, sizeof(double));
    if (k > 0) {
        for (int q = 0; q < ns; q++)
            if (!rep[q] || rank == 0)
                for (size_t j = 0; j < s[q].n; j++)
                    eq[(size_t)id[q] * P + (rep[q] ? 0 : rank)] += absbits(s[q].p[j]) == thr;
        tp_counts_sum(o, eq, (size_t)nid * P, stages);
    }
    const size_t left = k > 0 ? k - less : 0; /* ties to send to -v, in order */
    for (int q = 0; q < ns; q++) {
        size_t before = 0;
        for (size_t x = 0; x < (size_t)id[q] * P + (size_t)(rep[q] ? 0 : rank); x++) before += (size_t)eq[x];
        size_t ties = left > before ? left - before : 0;
        seg_assign(&s[q], k, thr, &ties, v);
    }
    free(eq);
    free(hist);
}

void fm_trainer_init_nu(fm_trainer *t, double s, fm_init_rank rank) {
    const fm_layout *lay = &t->m->lay;
    seg *sg = fm_xmalloc(sizeof(seg) * (size_t)lay->n);
    unsigned char *rep = fm_xcalloc((size_t)(lay->n ? lay->n : 1), 1);
    size_t *whole_n = fm_xcalloc((size_t)(lay->n ? lay->n : 1), sizeof *whole_n);
    int *id = fm_xcalloc((size_t)(lay->n ? lay->n : 1), sizeof *id);
    int ns = 0;
    for (int i = 0; i < lay->n; i++) {
        if (t->masked_of[i] < 0 || !fm_model_holds(t->m, i)) continue;
        const fm_tensor *x = &lay->t[i];
        rep[ns] = x->split == FM_SPLIT_NONE;
        whole_n[ns] = x->whole_numel;
        id[ns] = i;
        sg[ns++] = (seg){t->m->params + x->offset, t->nu + x->offset, x->numel};
    }
    if (lay->tp_size > 1 && t->o.tp_sum) {
        const int P = lay->tp_size, r = lay->tp_rank;
        if (rank == FM_RANK_GLOBAL) {
            /* a stage's model: the ranking over every stage's tensors too */
            rank_assign_tp(sg, rep, id, ns, lay->n, (size_t)llround(s * (double)t->masked_numel),
                           (float)t->o.nu_init, &t->o, r, P, t->m->own != NULL);
        } else {
            /* the ranks of a stage go through the same segments: the split ones' sums line up */
            for (int q = 0; q < ns; q++) {
                const size_t k = (size_t)llround(s * (double)whole_n[q]);
                if (rep[q]) rank_assign(&sg[q], 1, k, (float)t->o.nu_init, NULL);
                else rank_assign_tp(&sg[q], &rep[q], &id[q], 1, lay->n, k, (float)t->o.nu_init, &t->o, r, P, 0);
            }
        }
        free(sg);
        free(rep);
        free(whole_n);
        free(id);
        return;
    }
    free(rep);
    free(whole_n);
    free(id);
    if (rank == FM_RANK_GLOBAL) {
        rank_assign(sg, ns, (size_t)llround(s * (double)t->masked_numel), (float)t->o.nu_init,
                    t->m->own ? &t->o : NULL);
    } else {
        for (int q = 0; q < ns; q++)
            rank_assign(&sg[q], 1, (size_t)llround(s * (double)sg[q].n), (float)t->o.nu_init, NULL);
    }
    free(sg);
}

FM_HOT void fm_trainer_sparsity_parts(fm_trainer *t, double *parts) {
    const fm_layout *lay = &t->m->lay;
    memset(parts, 0, sizeof(double) * 3 * (size_t)lay->n);
    if (t->o.mode != FM_TRAIN_SUPERMASK) return;
    for (int i = 0; i < lay->n; i++) {
        int k = t->masked_of[i];
        if (k < 0 || (t->own && !t->own[i])) continue;
        const fm_tensor *x = &lay->t[i];
        const float *nu = t->nu + x->offset;
        double e = 0;
        size_t det_zero = 0;
        for (size_t j = 0; j < x->numel; j++) {
            e += 1.0 - (double)fm_sigmoid(nu[j]);
            det_zero += !(nu[j] > 0.0f);
        }
        parts[3 * i] = e;
        parts[3 * i + 1] = (double)fm_mask_count(&t->sample.t[k]);
        parts[3 * i + 2] = (double)det_zero;
    }
}

void fm_trainer_sparsity_sum(const fm_trainer *t, const double *parts, fm_sparsity *sp) {
    memset(sp, 0, sizeof *sp);
    if (t->o.mode != FM_TRAIN_SUPERMASK) return;
    const fm_layout *lay = &t->m->lay;
    double expected = 0;
    size_t ones = 0, det_zero = 0;
    for (int i = 0; i < lay->n; i++) {
        if (t->masked_of[i] < 0) continue;
        expected += parts[3 * i];
        ones += (size_t)parts[3 * i + 1];
        det_zero += (size_t)parts[3 * i + 2];
    }
    const double n = (double)t->masked_numel;
    sp->numel = t->masked_numel;
    sp->expected = expected / n;
    sp->sampled = (n - (double)ones) / n;
    sp->deterministic = (double)det_zero / n;
}

void fm_trainer_tp_parts(const fm_trainer *t, double *x, int k) {
    const fm_layout *lay = &t->m->lay;
    if (lay->tp_size <= 1 || lay->tp_rank == 0) return;
    for (int i = 0; i < lay->n; i++)
        if (lay->t[i].split == FM_SPLIT_NONE)
            for (int q = 0; q < k; q++) x[(size_t)i * k + q] = 0;
}

void fm_trainer_sparsity(fm_trainer *t, fm_sparsity *sp) {
    const fm_layout *lay = &t->m->lay;
    double *parts = fm_xmalloc(sizeof(double) * 3 * (size_t)(lay->n ? lay->n : 1));
    fm_trainer_sparsity_parts(t, parts);
    fm_trainer_sparsity_sum(t, parts, sp);
    free(parts);
}
