/* gather.c: files assembled from the stages' tensors and the tensor-parallel
 * shares (see gather.h). */
#include "gather.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "fm.h"
#include "maskfile.h"
#include "modeldir.h"

static size_t entry_bytes(const fm_st_entry *e) {
    size_t k = fm_st_dtype_size(e->dtype);
    for (int d = 0; d < e->ndim; d++) k *= (size_t)e->shape[d];
    return k;
}

/* A buffer of at least k bytes in *buf (of *cap). */
static void *grow(void **buf, size_t *cap, size_t k) {
    if (k > *cap) {
        free(*buf);
        *buf = fm_xmalloc(k ? k : 1);
        *cap = k;
    }
    return *buf;
}

/* Tensor t of a shard layout whole on this stage's tensor-parallel rank 0:
 * local itself when t is held whole, else gathered from the ranks' shares
 * local into *buf (collective over them; NULL elsewhere, *rc FM_ERR when
 * the gather failed). */
static const float *tp_whole(const fm_comm *cm, const fm_tensor *t, const float *local, void **buf, size_t *cap,
                             int *rc) {
    if (t->split == FM_SPLIT_NONE) return local;
    const int64_t in = t->ndim > 1 ? t->whole_shape[1] : 1;
    float *w = cm->tp == 0 ? grow(buf, cap, t->whole_numel * sizeof(float)) : NULL;
    if (cm->tp_gather(cm->ctx, t->split, t->nb, t->whole_shape[0], in, local, w) != FM_OK) *rc = FM_ERR;
    return *rc == FM_OK ? w : NULL;
}

void fm_gather_init(fm_gather *g, const fm_comm *cm, const fm_st_entry *e, const int *owner, int n,
                    const fm_layout *lay, const int *tensor) {
    memset(g, 0, sizeof *g);
    g->cm = cm;
    g->e = e;
    g->owner = owner;
    g->n = n;
    g->lay = lay && lay->tp_size > 1 ? lay : NULL;
    g->tensor = tensor;
}

/* Entry i (of this rank's stage) whole on tensor-parallel rank 0 (see tp_whole). */
static const void *entry_whole(fm_gather *g, int i, int *rc) {
    if (!g->lay) return g->e[i].data;
    const fm_tensor *t = &g->lay->t[g->tensor ? g->tensor[i] : i];
    return tp_whole(g->cm, t, g->e[i].data, &g->buf, &g->cap, rc);
}

const void *fm_gather_fetch(void *ctx, int i) {
    fm_gather *g = ctx;
    const fm_comm *cm = g->cm;
    assert(i == g->next && i < g->n);
    g->next = i + 1;
    int rc = FM_OK;
    if (g->owner[i] == cm->stage) return entry_whole(g, i, &rc);
    const size_t k = entry_bytes(&g->e[i]);
    void *b = grow(&g->buf, &g->cap, k);
    return cm->p2p_stage(cm->ctx, g->owner[i], b, k, 0) == FM_OK ? b : NULL;
}

int fm_gather_finish(fm_gather *g) {
    const fm_comm *cm = g->cm;
    if (cm->replica != 0) return FM_OK;
    if (cm->team_rank == 0) {
        while (g->next < g->n)
            if (!fm_gather_fetch(g, g->next) && entry_bytes(&g->e[g->next - 1]) > 0) return FM_ERR;
        return FM_OK;
    }
    int rc = FM_OK;
    for (int i = 0; i < g->n && rc == FM_OK; i++) {
        if (g->owner[i] != cm->stage) continue;
        const void *w = entry_whole(g, i, &rc);
        if (rc == FM_OK && cm->stage != 0 && cm->tp == 0)
            rc = cm->p2p_stage(cm->ctx, 0, (void *)w, entry_bytes(&g->e[i]), 1);
    }
    return rc;
}

void fm_gather_free(fm_gather *g) {
    free(g->buf);
    memset(g, 0, sizeof *g);
}

int fm_gather_crcs(fm_gather *g, uint32_t *crc) {
    const fm_comm *cm = g->cm;
    double *x = fm_xcalloc((size_t)(g->n ? g->n : 1), sizeof *x);
    int rc = FM_OK;
    for (int i = 0; i < g->n && rc == FM_OK; i++) {
        if (g->owner[i] != cm->stage) continue;
        const void *w = entry_whole(g, i, &rc);
        if (w) x[i] = (double)fm_crc32c(w, entry_bytes(&g->e[i]));
    }
    if (rc == FM_OK) rc = cm->stages_sum(cm->ctx, x, (size_t)g->n);
    for (int i = 0; i < g->n; i++) crc[i] = (uint32_t)x[i];
    free(x);
    return rc;
}

const fm_layout *fm_gather_file_layout(const fm_model *m) { return m->lay.tp_size > 1 ? &m->whole : &m->lay; }

/* This stage's part of the fingerprint, continued from crc (right on its
 * tensor-parallel rank 0). */
static int fingerprint_part(const fm_comm *cm, const fm_model *m, const float *x, uint64_t *crc) {
    const fm_layout *lay = &m->lay, *file = fm_gather_file_layout(m);
    void *buf = NULL;
    size_t cap = 0;
    int rc = FM_OK;
    for (int i = 0; i < lay->n && rc == FM_OK; i++) {
        if (!fm_model_holds(m, i) || (lay->t[i].flags & (FM_T_HEAD | FM_T_MLM))) continue;
        const float *w = tp_whole(cm, &lay->t[i], x + lay->t[i].offset, &buf, &cap, &rc);
        if (w) *crc = fm_params_fingerprint_tensor(*crc, &file->t[i], w);
    }
    free(buf);
    return rc;
}

int fm_gather_fingerprint(const fm_comm *cm, const fm_model *m, const float *x, uint64_t *fp) {
    const int S = cm->nstages, s = cm->stage;
    uint64_t crc = 0;
    /* the running CRC from stage to stage, then the last stage's to every other */
    if (s > 0 && cm->p2p_stage(cm->ctx, s - 1, &crc, sizeof crc, 0) != FM_OK) return FM_ERR;
    if (fingerprint_part(cm, m, x, &crc) != FM_OK) return FM_ERR;
    if (s < S - 1 && cm->p2p_stage(cm->ctx, s + 1, &crc, sizeof crc, 1) != FM_OK) return FM_ERR;
    if (s == S - 1) {
        for (int t = 0; t < S - 1; t++)
            if (cm->p2p_stage(cm->ctx, t, &crc, sizeof crc, 1) != FM_OK) return FM_ERR;
    } else if (cm->p2p_stage(cm->ctx, S - 1, &crc, sizeof crc, 0) != FM_OK) {
        return FM_ERR;
    }
    if (m->lay.tp_size > 1) {
        /* tensor-parallel rank 0's value to the others: two 32-bit halves, exact in doubles */
        double h[2] = {0, 0};
        if (cm->tp == 0) h[0] = (double)(crc >> 32), h[1] = (double)(crc & 0xffffffffu);
        if (cm->tp_sum_doubles(cm->ctx, h, 2) != FM_OK) return FM_ERR;
        crc = (uint64_t)h[0] << 32 | (uint64_t)h[1];
    }
    *fp = crc;
    return FM_OK;
}

/* The bits of sample tensor mt (tensor t of m's layout) whole on the
 * writer's buffer bits (whole->numel bits; the writer's, NULL elsewhere):
 * on t's stage, a split tensor's bits made whole on its tensor-parallel
 * rank 0 (unpacked to floats, gathered from the shares, packed), then sent
 * to the writer. */
static int mask_tensor(const fm_comm *cm, const fm_tensor *t, const fm_mask_tensor *mt,
                       int from, uint8_t *bits, size_t bytes) {
    const int writer = cm->team_rank == 0;
    if (cm->stage != from) return writer ? cm->p2p_stage(cm->ctx, from, bits, bytes, 0) : FM_OK;
    const uint8_t *src = mt->bits;
    uint8_t *packed = NULL;
    int rc = FM_OK;
    if (t->split != FM_SPLIT_NONE) {
        float *share = fm_xalloc_floats(t->numel ? t->numel : 1);
        for (size_t j = 0; j < t->numel; j++) share[j] = (float)fm_mask_get(mt, j);
        void *buf = NULL;
        size_t cap = 0;
        const float *w = tp_whole(cm, t, share, &buf, &cap, &rc);
        if (w) {
            packed = fm_xcalloc(bytes ? bytes : 1, 1);
            for (size_t j = 0; j < t->whole_numel; j++)
                if (w[j] != 0.0f) packed[j >> 3] |= (uint8_t)(1u << (j & 7));
        }
        free(buf);
        fm_free_aligned(share);
        src = packed;
    }
    if (rc == FM_OK && cm->tp == 0) {
        if (writer) memcpy(bits, src, bytes);
        else rc = cm->p2p_stage(cm->ctx, 0, (void *)src, bytes, 1);
    }
    free(packed);
    return rc;
}

int fm_gather_mask(const fm_comm *cm, const fm_model *m, const fm_mask *sample, fm_mask *whole, float **head) {
    const fm_layout *lay = &m->lay, *file = fm_gather_file_layout(m);
    const int L = m->cfg.num_hidden_layers, S = cm->nstages, writer = cm->team_rank == 0;
    memset(whole, 0, sizeof *whole);
    *head = NULL;
    if (cm->replica != 0) return FM_OK;
    if (writer) whole->t = fm_xcalloc((size_t)(sample->n ? sample->n : 1), sizeof *whole->t);
    for (int k = 0; k < sample->n; k++) {
        const fm_mask_tensor *mt = &sample->t[k];
        const fm_tensor *x = fm_layout_find(lay, mt->name), *f = &file->t[x - lay->t];
        const size_t bytes = (f->numel + 7) / 8;
        fm_mask_tensor *wt = NULL;
        if (writer) {
            wt = &whole->t[whole->n++];
            memcpy(wt->name, mt->name, sizeof wt->name);
            wt->ndim = f->ndim;
            wt->shape[0] = f->shape[0];
            wt->shape[1] = f->shape[1];
            wt->numel = f->numel;
            wt->bits = fm_xcalloc(bytes ? bytes : 1, 1);
        }
        if (mask_tensor(cm, x, mt, fm_layout_stage(x, L, S), wt ? wt->bits : NULL, bytes) != FM_OK) return FM_ERR;
        if (wt) fm_mask_count(wt);
    }
    const fm_tensor *hw = fm_layout_find(lay, "classifier.weight"), *hb = fm_layout_find(lay, "classifier.bias");
    if (!hw || !hb) return FM_OK;
    /* the head is whole on every tensor-parallel rank of the last stage */
    const fm_tensor *fw = &file->t[hw - lay->t], *fb = &file->t[hb - lay->t];
    if (writer) {
        *head = fm_xalloc_floats_part(file->numel, fw->offset, fb->offset + fb->numel);
        if (S == 1) {
            memcpy(*head + fw->offset, m->params + hw->offset, hw->numel * sizeof(float));
            memcpy(*head + fb->offset, m->params + hb->offset, hb->numel * sizeof(float));
        } else if (cm->p2p_stage(cm->ctx, S - 1, *head + fw->offset, fw->numel * sizeof(float), 0) != FM_OK ||
                   cm->p2p_stage(cm->ctx, S - 1, *head + fb->offset, fb->numel * sizeof(float), 0) != FM_OK) {
            return FM_ERR;
        }
    } else if (S > 1 && cm->stage == S - 1 && cm->tp == 0) {
        if (cm->p2p_stage(cm->ctx, 0, m->params + hw->offset, hw->numel * sizeof(float), 1) != FM_OK ||
            cm->p2p_stage(cm->ctx, 0, m->params + hb->offset, hb->numel * sizeof(float), 1) != FM_OK)
            return FM_ERR;
    }
    return FM_OK;
}

void fm_gather_mask_done(const fm_model *m, fm_mask *whole, float *head) {
    if (whole->t) fm_mask_free(whole);
    memset(whole, 0, sizeof *whole);
    if (head) fm_free_floats_part(head, fm_gather_file_layout(m)->numel);
}
