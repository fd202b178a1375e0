/* gather.c: files assembled from the pipeline stages' tensors (see gather.h). */
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

void fm_gather_init(fm_gather *g, const fm_comm *cm, const fm_st_entry *e, const int *owner, int n) {
    memset(g, 0, sizeof *g);
    g->cm = cm;
    g->e = e;
    g->owner = owner;
    g->n = n;
}

const void *fm_gather_fetch(void *ctx, int i) {
    fm_gather *g = ctx;
    const fm_comm *cm = g->cm;
    assert(i == g->next && i < g->n);
    g->next = i + 1;
    if (g->owner[i] == cm->stage) return g->e[i].data;
    const size_t k = entry_bytes(&g->e[i]);
    if (k > g->cap) {
        free(g->buf);
        g->buf = fm_xmalloc(k);
        g->cap = k;
    }
    return cm->p2p_stage(cm->ctx, g->owner[i], g->buf, k, 0) == FM_OK ? g->buf : NULL;
}

int fm_gather_finish(fm_gather *g) {
    const fm_comm *cm = g->cm;
    if (cm->replica != 0) return FM_OK;
    if (cm->stage == 0) {
        while (g->next < g->n)
            if (!fm_gather_fetch(g, g->next) && entry_bytes(&g->e[g->next - 1]) > 0) return FM_ERR;
        return FM_OK;
    }
    for (int i = 0; i < g->n; i++)
        if (g->owner[i] == cm->stage &&
            cm->p2p_stage(cm->ctx, 0, (void *)g->e[i].data, entry_bytes(&g->e[i]), 1) != FM_OK)
            return FM_ERR;
    return FM_OK;
}

void fm_gather_free(fm_gather *g) {
    free(g->buf);
    memset(g, 0, sizeof *g);
}

int fm_gather_crcs(const fm_comm *cm, const fm_st_entry *e, const int *owner, int n, uint32_t *crc) {
    double *x = fm_xcalloc((size_t)(n ? n : 1), sizeof *x);
    for (int i = 0; i < n; i++)
        if (owner[i] == cm->stage) x[i] = (double)fm_crc32c(e[i].data, entry_bytes(&e[i]));
    int rc = cm->stages_sum(cm->ctx, x, (size_t)n);
    for (int i = 0; i < n; i++) crc[i] = (uint32_t)x[i];
    free(x);
    return rc;
}

int fm_gather_fingerprint(const fm_comm *cm, const fm_model *m, const float *x, uint64_t *fp) {
    const int S = cm->nstages, s = cm->stage;
    uint64_t crc = 0;
    /* the running CRC from stage to stage, then the last stage's to every other */
    if (s > 0 && cm->p2p_stage(cm->ctx, s - 1, &crc, sizeof crc, 0) != FM_OK) return FM_ERR;
    crc = fm_params_fingerprint_part(crc, &m->lay, x, m->own);
    if (s < S - 1 && cm->p2p_stage(cm->ctx, s + 1, &crc, sizeof crc, 1) != FM_OK) return FM_ERR;
    if (s == S - 1) {
        for (int t = 0; t < S - 1; t++)
            if (cm->p2p_stage(cm->ctx, t, &crc, sizeof crc, 1) != FM_OK) return FM_ERR;
    } else if (cm->p2p_stage(cm->ctx, S - 1, &crc, sizeof crc, 0) != FM_OK) {
        return FM_ERR;
    }
    *fp = crc;
    return FM_OK;
}

int fm_gather_mask(const fm_comm *cm, const fm_model *m, fm_mask *sample, float **head) {
    const fm_layout *lay = &m->lay;
    const int L = m->cfg.num_hidden_layers, S = cm->nstages, s = cm->stage;
    *head = NULL;
    if (cm->replica != 0) return FM_OK;
    for (int k = 0; k < sample->n; k++) {
        fm_mask_tensor *mt = &sample->t[k];
        const fm_tensor *x = fm_layout_find(lay, mt->name);
        const int from = fm_layout_stage(x, L, S);
        const size_t bytes = (mt->numel + 7) / 8;
        if (from == 0) continue;
        if (s == 0) {
            mt->bits = fm_xcalloc(bytes ? bytes : 1, 1);
            if (cm->p2p_stage(cm->ctx, from, mt->bits, bytes, 0) != FM_OK) return FM_ERR;
        } else if (s == from && cm->p2p_stage(cm->ctx, 0, mt->bits, bytes, 1) != FM_OK) {
            return FM_ERR;
        }
    }
    const fm_tensor *hw = fm_layout_find(lay, "classifier.weight"), *hb = fm_layout_find(lay, "classifier.bias");
    if (!hw || !hb) return FM_OK;
    if (s == 0) {
        *head = fm_xalloc_floats_part(lay->numel, hw->offset, hb->offset + hb->numel);
        if (cm->p2p_stage(cm->ctx, S - 1, *head + hw->offset, hw->numel * sizeof(float), 0) != FM_OK ||
            cm->p2p_stage(cm->ctx, S - 1, *head + hb->offset, hb->numel * sizeof(float), 0) != FM_OK)
            return FM_ERR;
    } else if (s == S - 1) {
        if (cm->p2p_stage(cm->ctx, 0, m->params + hw->offset, hw->numel * sizeof(float), 1) != FM_OK ||
            cm->p2p_stage(cm->ctx, 0, m->params + hb->offset, hb->numel * sizeof(float), 1) != FM_OK)
            return FM_ERR;
    }
    return FM_OK;
}

void fm_gather_mask_done(const fm_comm *cm, const fm_model *m, fm_mask *sample, float *head) {
    if (cm->replica != 0 || cm->stage != 0) return;
    for (int k = 0; k < sample->n; k++) {
        const fm_tensor *x = fm_layout_find(&m->lay, sample->t[k].name);
        if (!fm_model_holds(m, (int)(x - m->lay.t))) {
            free(sample->t[k].bits);
            sample->t[k].bits = NULL;
        }
    }
    if (head) fm_free_floats_part(head, m->lay.numel);
}
