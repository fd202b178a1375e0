/* analysis.c: mask statistics, overlaps, random masks and weight distances
 * (see analysis.h). */
#define _GNU_SOURCE
#include "analysis.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fm.h"
#include "rng.h"

int fm_name_layer(const char *name) {
    if (strncmp(name, "bert.", 5) == 0) name += 5;
    if (strncmp(name, "embeddings.", 11) == 0) return -1;
    if (strncmp(name, "encoder.layer.", 14) == 0) {
        char *end;
        long l = strtol(name + 14, &end, 10);
        if (end != name + 14 && *end == '.' && l >= 0 && l < INT_MAX) return (int)l;
    }
    return -2;
}

const char *fm_name_kind(const char *name) {
    if (strncmp(name, "bert.", 5) == 0) name += 5;
    if (fm_name_layer(name) >= 0) return strchr(name + 14, '.') + 1;
    return name;
}

uint32_t fm_name_stream(const char *name) {
    if (strncmp(name, "bert.", 5) == 0) name += 5;
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) h = (h ^ *p) * 16777619u;
    return h;
}

static double ratio(double num, double den) { return den > 0 ? num / den : NAN; }

/* The layer group of a name: label and layer (see fm_mask_stats.layer). */
static void layer_label(const char *name, char label[96], int *layer) {
    if (strncmp(name, "bert.", 5) == 0) name += 5;
    *layer = fm_name_layer(name);
    if (*layer == -1) {
        snprintf(label, 96, "embeddings");
    } else if (*layer >= 0) {
        snprintf(label, 96, "%d", *layer);
    } else {
        const char *dot = strchr(name, '.');
        int n = dot ? (int)(dot - name) : (int)strlen(name);
        snprintf(label, 96, "%.*s", n > 95 ? 95 : n, name);
    }
}

static long layer_key(int layer) { return layer == -1 ? -1 : layer >= 0 ? layer : LONG_MAX; }

/* Index of the group labelled label in labels[0..*n) (each row_size bytes
 * apart, the label first), appending a zeroed row when absent. */
static int group_of(void **rows, int *n, size_t row_size, const char *label, int layer) {
    char *base = *rows;
    for (int i = 0; i < *n; i++)
        if (strcmp(base + (size_t)i * row_size, label) == 0) return i;
    *rows = fm_xrealloc(*rows, row_size * (size_t)(*n + 1));
    base = *rows;
    char *r = base + (size_t)*n * row_size;
    memset(r, 0, row_size);
    size_t len = strlen(label);
    if (len > 95) len = 95;
    memcpy(r, label, len);
    r[len] = '\0';
    (void)layer;
    return (*n)++;
}

/* Stable insertion sort of layer rows by layer_key; `layer_at` reads a row's layer. */
static void sort_layers(void *rows, int n, size_t row_size, int (*layer_at)(const void *)) {
    char *base = rows, *tmp = fm_xmalloc(row_size);
    for (int i = 1; i < n; i++) {
        memcpy(tmp, base + (size_t)i * row_size, row_size);
        long k = layer_key(layer_at(tmp));
        int j = i - 1;
        while (j >= 0 && layer_key(layer_at(base + (size_t)j * row_size)) > k) {
            memcpy(base + (size_t)(j + 1) * row_size, base + (size_t)j * row_size, row_size);
            j--;
        }
        memcpy(base + (size_t)(j + 1) * row_size, tmp, row_size);
    }
    free(tmp);
}

/* ---- stats ---- */

static int count_row_layer(const void *r) { return ((const fm_mask_count_row *)r)->layer; }

static void count_add(fm_mask_count_row *g, const fm_mask_count_row *t) {
    if (g->ntensors == 0) g->layer = t->layer;
    g->ntensors++;
    g->numel += t->numel;
    g->ones += t->ones;
    g->zeros += t->zeros;
    g->sparsity = ratio((double)g->zeros, (double)g->numel);
}

void fm_mask_stats_compute(fm_mask_stats *s, const fm_mask *m) {
    memset(s, 0, sizeof *s);
    s->tensor = fm_xcalloc((size_t)(m->n ? m->n : 1), sizeof *s->tensor);
    s->n = m->n;
    snprintf(s->all.label, sizeof s->all.label, "all");
    s->all.layer = -2;
    for (int k = 0; k < m->n; k++) {
        fm_mask_tensor c = m->t[k];
        fm_mask_count_row *r = &s->tensor[k];
        snprintf(r->label, sizeof r->label, "%s", c.name);
        r->layer = fm_name_layer(c.name);
        r->ntensors = 1;
        r->numel = c.numel;
        r->ones = fm_mask_count(&c);
        r->zeros = c.numel - r->ones;
        r->sparsity = ratio((double)r->zeros, (double)r->numel);
        char label[96];
        int layer;
        layer_label(c.name, label, &layer);
        int g = group_of((void **)&s->layer, &s->nlayer, sizeof *s->layer, label, layer);
        count_add(&s->layer[g], r);
        g = group_of((void **)&s->kind, &s->nkind, sizeof *s->kind, fm_name_kind(c.name), layer);
        count_add(&s->kind[g], r);
        int keep = s->all.layer;
        count_add(&s->all, r);
        s->all.layer = keep;
    }
    sort_layers(s->layer, s->nlayer, sizeof *s->layer, count_row_layer);
}

void fm_mask_stats_free(fm_mask_stats *s) {
    free(s->tensor);
    free(s->layer);
    free(s->kind);
    memset(s, 0, sizeof *s);
}

/* ---- overlap ---- */

static int overlap_row_layer(const void *r) { return ((const fm_overlap_row *)r)->layer; }

static void overlap_finish(fm_overlap_row *r) {
    r->sparsity_a = ratio((double)r->zeros_a, (double)r->numel);
    r->sparsity_b = ratio((double)r->zeros_b, (double)r->numel);
    r->frac_a = ratio((double)r->common, (double)r->zeros_a);
    r->frac_b = ratio((double)r->common, (double)r->zeros_b);
    r->expect_a = ratio(r->exp_num_a, (double)r->zeros_a);
    r->expect_b = ratio(r->exp_num_b, (double)r->zeros_b);
    r->pooled_a = r->sparsity_b;
    r->pooled_b = r->sparsity_a;
}

static void overlap_add(fm_overlap_row *g, const fm_overlap_row *t) {
    if (g->ntensors == 0) g->layer = t->layer;
    g->ntensors++;
    g->numel += t->numel;
    g->zeros_a += t->zeros_a;
    g->zeros_b += t->zeros_b;
    g->common += t->common;
    g->exp_num_a += t->exp_num_a;
    g->exp_num_b += t->exp_num_b;
    overlap_finish(g);
}

int fm_mask_overlap(fm_overlap *o, const fm_mask *a, const fm_mask *b) {
    memset(o, 0, sizeof *o);
    char s1[64], s2[64];
    for (int k = 0; k < a->n; k++) {
        const fm_mask_tensor *ta = &a->t[k], *tb = fm_mask_find(b, ta->name);
        if (!tb) return fm_fail("tensor '%s' is masked in the first mask but not in the second", ta->name);
        if (ta->ndim != tb->ndim || ta->shape[0] != tb->shape[0] || (ta->ndim == 2 && ta->shape[1] != tb->shape[1]) ||
            ta->numel != tb->numel) {
            snprintf(s1, sizeof s1, ta->ndim == 2 ? "[%lld, %lld]" : "[%lld]", (long long)ta->shape[0],
                     (long long)ta->shape[1]);
            snprintf(s2, sizeof s2, tb->ndim == 2 ? "[%lld, %lld]" : "[%lld]", (long long)tb->shape[0],
                     (long long)tb->shape[1]);
            return fm_fail("tensor '%s': shape %s in the first mask, %s in the second", ta->name, s1, s2);
        }
    }
    for (int k = 0; k < b->n; k++)
        if (!fm_mask_find(a, b->t[k].name))
            return fm_fail("tensor '%s' is masked in the second mask but not in the first", b->t[k].name);
    o->tensor = fm_xcalloc((size_t)(a->n ? a->n : 1), sizeof *o->tensor);
    o->n = a->n;
    snprintf(o->all.label, sizeof o->all.label, "all");
    for (int k = 0; k < a->n; k++) {
        fm_mask_tensor ta = a->t[k], tb = *fm_mask_find(b, ta.name);
        fm_overlap_row *r = &o->tensor[k];
        snprintf(r->label, sizeof r->label, "%s", ta.name);
        r->layer = fm_name_layer(ta.name);
        r->ntensors = 1;
        r->numel = ta.numel;
        r->zeros_a = ta.numel - fm_mask_count(&ta);
        r->zeros_b = tb.numel - fm_mask_count(&tb);
        r->common = fm_mask_common_zeros(&ta, &tb);
        double sa = ratio((double)r->zeros_a, (double)r->numel), sb = ratio((double)r->zeros_b, (double)r->numel);
        r->exp_num_a = r->zeros_a ? (double)r->zeros_a * sb : 0.0;
        r->exp_num_b = r->zeros_b ? (double)r->zeros_b * sa : 0.0;
        overlap_finish(r);
        char label[96];
        int layer;
        layer_label(ta.name, label, &layer);
        int g = group_of((void **)&o->layer, &o->nlayer, sizeof *o->layer, label, layer);
        overlap_add(&o->layer[g], r);
        g = group_of((void **)&o->kind, &o->nkind, sizeof *o->kind, fm_name_kind(ta.name), layer);
        overlap_add(&o->kind[g], r);
        overlap_add(&o->all, r);
    }
    o->all.layer = -2;
    sort_layers(o->layer, o->nlayer, sizeof *o->layer, overlap_row_layer);
    return FM_OK;
}

void fm_overlap_free(fm_overlap *o) {
    free(o->tensor);
    free(o->layer);
    free(o->kind);
    memset(o, 0, sizeof *o);
}

/* ---- random masks ---- */

#define CHUNK 65536

void fm_mask_random(fm_mask *m, double sparsity, uint64_t seed) {
    float *u = fm_xmalloc(sizeof(float) * CHUNK);
    for (int k = 0; k < m->n; k++) {
        fm_mask_tensor *t = &m->t[k];
        uint32_t stream = fm_name_stream(t->name);
        memset(t->bits, 0, (t->numel + 7) / 8);
        for (size_t i0 = 0; i0 < t->numel; i0 += CHUNK) {
            size_t n = t->numel - i0 < CHUNK ? t->numel - i0 : CHUNK;
            fm_rng_uniforms(seed, FM_RNG_RANDOM_MASK, 0, stream, i0, u, n);
            for (size_t j = 0; j < n; j++)
                if ((double)u[j] >= sparsity) t->bits[(i0 + j) >> 3] |= (uint8_t)(1u << ((i0 + j) & 7));
        }
        fm_mask_count(t);
    }
    free(u);
}

/* ---- distances ---- */

void fm_dist_acc_add(fm_dist_acc *acc, const float *a, const float *b, size_t n) {
    double l1 = 0, ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < n; i++) {
        double x = a[i], y = b[i];
        l1 += fabs(x - y);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    acc->l1 += l1;
    acc->ab += ab;
    acc->aa += aa;
    acc->bb += bb;
    acc->n += n;
}

void fm_dist_finish(fm_dist *out, const fm_dist_acc *acc) {
    out->n = acc->n;
    out->l1 = acc->l1;
    out->l1_mean = acc->n ? acc->l1 / (double)acc->n : NAN;
    if (acc->aa > 0 && acc->bb > 0) {
        /* sqrt(x * x) is exactly x in IEEE arithmetic, so equal vectors give cosine 1 exactly. */
        double c = acc->ab / sqrt(acc->aa * acc->bb);
        if (c > 1) c = 1;
        if (c < -1) c = -1;
        out->cosine = c;
        out->angular = acos(c) / M_PI;
    } else {
        out->cosine = out->angular = NAN;
    }
}

void fm_distance(fm_dist *out, const float *a, const float *b, size_t n) {
    fm_dist_acc acc = {0};
    fm_dist_acc_add(&acc, a, b, n);
    fm_dist_finish(out, &acc);
}

enum { REF_U1, REF_U2, REF_N1, REF_N2, NREF };

/* The five sums of one chunk of tensor t: A vs B and the references, drawn
 * into ref (4 buffers of CHUNK floats). */
static void distance_chunk(fm_dist_acc acc[5], float *ref[NREF], const float *a, const float *b, size_t i0, size_t n,
                           uint64_t chunk, double c, uint32_t stream, uint64_t seed) {
    /* Uniforms are indexed by position; normals come a chunk per step. */
    fm_rng_uniforms(seed, FM_RNG_REFERENCE, REF_U1, stream, i0, ref[REF_U1], n);
    fm_rng_uniforms(seed, FM_RNG_REFERENCE, REF_U2, stream, i0, ref[REF_U2], n);
    fm_rng_normals(seed, FM_RNG_REFERENCE, ((uint64_t)REF_N1 << 48) | chunk, stream, ref[REF_N1], n);
    fm_rng_normals(seed, FM_RNG_REFERENCE, ((uint64_t)REF_N2 << 48) | chunk, stream, ref[REF_N2], n);
    for (size_t j = 0; j < n; j++) {
        ref[REF_U1][j] = (float)(c * (2.0 * ref[REF_U1][j] - 1.0));
        ref[REF_U2][j] = (float)(c * (2.0 * ref[REF_U2][j] - 1.0));
        ref[REF_N1][j] = (float)(c * ref[REF_N1][j]);
        ref[REF_N2][j] = (float)(c * ref[REF_N2][j]);
    }
    memset(acc, 0, 5 * sizeof *acc);
    fm_dist_acc_add(&acc[0], a + i0, b + i0, n);
    fm_dist_acc_add(&acc[1], ref[REF_U1], ref[REF_U2], n);
    fm_dist_acc_add(&acc[2], ref[REF_N1], ref[REF_N2], n);
    fm_dist_acc_add(&acc[3], ref[REF_U1], a + i0, n);
    fm_dist_acc_add(&acc[4], ref[REF_N1], a + i0, n);
}

static void acc_merge(fm_dist_acc *dst, const fm_dist_acc *src) {
    dst->l1 += src->l1;
    dst->ab += src->ab;
    dst->aa += src->aa;
    dst->bb += src->bb;
    dst->n += src->n;
}

/* A whole model's params array as a fetch: the tensor at its offset. */
static const float *fetch_array(void *ctx, const fm_tensor *t) { return (const float *)ctx + t->offset; }

int fm_distance_models(fm_distance_report *r, const fm_layout *la, const float *pa, const fm_layout *lb,
                       const float *pb, const char *glob, uint64_t seed) {
    return fm_distance_models_fetch(r, la, fetch_array, (void *)pa, lb, fetch_array, (void *)pb, glob, seed);
}

int fm_distance_models_fetch(fm_distance_report *r, const fm_layout *la, fm_tensor_fetch fa, void *ca,
                             const fm_layout *lb, fm_tensor_fetch fb, void *cb, const char *glob, uint64_t seed) {
    memset(r, 0, sizeof *r);
    r->seed = seed;
    /* Check everything first: which tensors, and that B has them. */
    int *src = fm_xcalloc((size_t)(la->n ? la->n : 1), sizeof *src), nsrc = 0;
    for (int i = 0; i < la->n; i++) {
        const fm_tensor *ta = &la->t[i];
        if (!(ta->flags & FM_T_MATRIX) || (ta->flags & (FM_T_HEAD | FM_T_MLM)) || !fm_glob_match_any(glob, ta->name)) continue;
        const fm_tensor *tb = fm_layout_find(lb, ta->name);
        if (!tb) {
            free(src);
            return fm_fail("tensor '%s': the second model has no such tensor", ta->name);
        }
        if (tb->ndim != ta->ndim || tb->shape[0] != ta->shape[0] || tb->shape[1] != ta->shape[1]) {
            free(src);
            return fm_fail("tensor '%s': shape [%lld, %lld] in the first model, [%lld, %lld] in the second", ta->name,
                           (long long)ta->shape[0], (long long)ta->shape[1], (long long)tb->shape[0],
                           (long long)tb->shape[1]);
        }
        src[nsrc++] = i;
    }
    if (nsrc == 0) {
        free(src);
        return fm_fail("no weight matrix of the model matches '%s'", glob ? glob : "*");
    }
    r->tensor = fm_xcalloc((size_t)nsrc, sizeof *r->tensor);
    fm_dist_acc all[5] = {{0}};
    for (int s = 0; s < nsrc; s++) {
        const fm_tensor *ta = &la->t[src[s]], *tb = fm_layout_find(lb, ta->name);
        fm_distance_row *row = &r->tensor[r->n++];
        snprintf(row->label, sizeof row->label, "%s", ta->name);
        row->layer = fm_name_layer(ta->name);
        row->ndim = ta->ndim;
        row->shape[0] = ta->shape[0];
        row->shape[1] = ta->shape[1];
        row->numel = ta->numel;
        row->fan_in = ta->ndim == 2 ? ta->shape[1] : ta->shape[0];
        const double c = 1.0 / sqrt((double)row->fan_in);
        const uint32_t stream = fm_name_stream(ta->name);
        const float *a = fa(ca, ta), *b = a ? fb(cb, tb) : NULL;
        if (!a || !b) {
            free(src);
            fm_distance_report_free(r);
            return FM_ERR;
        }
        /* Chunks in parallel, each with its own sums, added in chunk order:
         * the result does not depend on the thread count. */
        const size_t nchunk = (ta->numel + CHUNK - 1) / CHUNK;
        fm_dist_acc(*part)[5] = fm_xcalloc(nchunk ? nchunk : 1, sizeof *part);
#pragma omp parallel
        {
            float *ref[NREF];
            for (int q = 0; q < NREF; q++) ref[q] = fm_xmalloc(sizeof(float) * CHUNK);
#pragma omp for schedule(static)
            for (size_t k = 0; k < nchunk; k++) {
                size_t i0 = k * CHUNK, n = ta->numel - i0 < CHUNK ? ta->numel - i0 : CHUNK;
                distance_chunk(part[k], ref, a, b, i0, n, k, c, stream, seed);
            }
            for (int q = 0; q < NREF; q++) free(ref[q]);
        }
        fm_dist_acc acc[5] = {{0}};
        for (size_t k = 0; k < nchunk; k++)
            for (int q = 0; q < 5; q++) acc_merge(&acc[q], &part[k][q]);
        free(part);
        fm_dist *out[5] = {&row->ab, &row->uniform_pair, &row->normal_pair, &row->uniform_vs_a, &row->normal_vs_a};
        for (int q = 0; q < 5; q++) {
            fm_dist_finish(out[q], &acc[q]);
            acc_merge(&all[q], &acc[q]);
        }
        r->all.numel += ta->numel;
    }
    free(src);
    snprintf(r->all.label, sizeof r->all.label, "all");
    r->all.layer = -2;
    fm_dist *out[5] = {&r->all.ab, &r->all.uniform_pair, &r->all.normal_pair, &r->all.uniform_vs_a,
                       &r->all.normal_vs_a};
    for (int q = 0; q < 5; q++) fm_dist_finish(out[q], &all[q]);
    return FM_OK;
}

void fm_distance_report_free(fm_distance_report *r) {
    free(r->tensor);
    memset(r, 0, sizeof *r);
}
