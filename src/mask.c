/* mask.c: packed binary masks (see mask.h). */
#define _GNU_SOURCE
#include "mask.h"

#include <assert.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "fm.h"

int fm_glob_match_any(const char *globs, const char *name) {
    if (!globs) return 1;
    const char *p = globs;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        char g[256];
        if (n > 0 && n < sizeof g) {
            memcpy(g, p, n);
            g[n] = '\0';
            if (fnmatch(g, name, 0) == 0) return 1;
        }
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

/* Parse "0-3,8" into want[0..L); FM_ERR naming the bad part. */
static int parse_layers(const char *spec, int L, unsigned char *want) {
    memset(want, 0, (size_t)L);
    const char *p = spec;
    while (*p) {
        char *end;
        long a = strtol(p, &end, 10), b = a;
        if (end == p) return fm_fail("--mask-layers: expected layer numbers like 0-3,8, found '%s'", p);
        if (*end == '-') {
            const char *q = end + 1;
            b = strtol(q, &end, 10);
            if (end == q) return fm_fail("--mask-layers: expected a number after '-' in '%s'", spec);
        }
        if (a < 0 || b >= L || a > b)
            return fm_fail("--mask-layers: range %ld-%ld is outside the model's layers 0-%d", a, b, L - 1);
        for (long l = a; l <= b; l++) want[l] = 1;
        if (*end == ',') end++;
        else if (*end) return fm_fail("--mask-layers: unexpected '%c' in '%s'", *end, spec);
        p = end;
    }
    return FM_OK;
}

int fm_mask_create(fm_mask *m, const fm_layout *lay, const char *glob, const char *layers) {
    memset(m, 0, sizeof *m);
    int L = 0;
    for (int i = 0; i < lay->n; i++)
        if (lay->t[i].layer + 1 > L && strncmp(lay->t[i].name, "encoder.layer.", 14) == 0) L = lay->t[i].layer + 1;
    unsigned char *want = NULL;
    if (layers) {
        want = fm_xcalloc((size_t)(L ? L : 1), 1);
        if (parse_layers(layers, L, want) != FM_OK) {
            free(want);
            return FM_ERR;
        }
    }
    m->t = fm_xcalloc((size_t)lay->n, sizeof *m->t);
    for (int i = 0; i < lay->n; i++) {
        const fm_tensor *t = &lay->t[i];
        if (!fm_glob_match_any(glob, t->name)) continue;
        int in_encoder = strncmp(t->name, "encoder.layer.", 14) == 0;
        if (want && (!in_encoder || !want[t->layer])) continue;
        fm_mask_tensor *mt = &m->t[m->n++];
        memcpy(mt->name, t->name, sizeof mt->name);
        mt->ndim = t->ndim;
        mt->shape[0] = t->shape[0];
        mt->shape[1] = t->shape[1];
        mt->numel = t->numel;
        mt->bits = fm_xcalloc((t->numel + 7) / 8, 1);
        mt->ones = 0;
    }
    free(want);
    if (m->n == 0) {
        fm_mask_free(m);
        return fm_fail("--mask '%s'%s%s matches no tensor of the model", glob, layers ? " with --mask-layers " : "",
                       layers ? layers : "");
    }
    return FM_OK;
}

void fm_mask_free(fm_mask *m) {
    for (int i = 0; i < m->n; i++) free(m->t[i].bits);
    free(m->t);
    memset(m, 0, sizeof *m);
}

fm_mask_tensor *fm_mask_find(const fm_mask *m, const char *name) {
    if (strncmp(name, "bert.", 5) == 0) name += 5;
    for (int i = 0; i < m->n; i++)
        if (strcmp(m->t[i].name, name) == 0) return &m->t[i];
    return NULL;
}

size_t fm_mask_count(fm_mask_tensor *t) {
    size_t n = 0, bytes = (t->numel + 7) / 8, i = 0;
    for (; i + 8 <= bytes; i += 8) {
        uint64_t w;
        memcpy(&w, t->bits + i, 8);
        n += (size_t)__builtin_popcountll(w);
    }
    for (; i < bytes; i++) n += (size_t)__builtin_popcount(t->bits[i]);
    t->ones = n;
    return n;
}

size_t fm_mask_common_zeros(const fm_mask_tensor *a, const fm_mask_tensor *b) {
    size_t bytes = (a->numel + 7) / 8, ones_either = 0, i = 0;
    for (; i + 8 <= bytes; i += 8) {
        uint64_t x, y;
        memcpy(&x, a->bits + i, 8);
        memcpy(&y, b->bits + i, 8);
        ones_either += (size_t)__builtin_popcountll(x | y);
    }
    for (; i < bytes; i++) ones_either += (size_t)__builtin_popcount(a->bits[i] | b->bits[i]);
    /* Zeros in both = entries minus entries kept in either (padding bits are 0 in both and not counted). */
    return a->numel - ones_either;
}

int fm_mask_stray_bits(const fm_mask_tensor *t) {
    if (t->numel % 8 == 0) return 0;
    uint8_t last = t->bits[t->numel / 8];
    return (last >> (t->numel % 8)) != 0;
}

void fm_mask_apply(const fm_mask *m, const fm_layout *lay, float *params) {
    for (int k = 0; k < m->n; k++) {
        const fm_mask_tensor *mt = &m->t[k];
        const fm_tensor *t = fm_layout_find(lay, mt->name);
        assert(t && t->numel == mt->numel);
        float *w = params + t->offset;
        for (size_t i = 0; i < mt->numel; i++)
            if (!fm_mask_get(mt, i)) w[i] = 0.0f;
    }
}
