/* controls.c: freeze sets and weight controls (see controls.h). */
#define _GNU_SOURCE
#include "controls.h"

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "fm.h"
#include "rng.h"

static size_t freeze_if(fm_layout *lay, int (*pick)(const fm_tensor *, const void *), const void *arg) {
    size_t n = 0;
    for (int i = 0; i < lay->n; i++) {
        fm_tensor *t = &lay->t[i];
        if (pick(t, arg)) {
            if (t->trains) n += t->numel;
            t->trains = 0;
            t->needs_grad = 0;
        }
    }
    return n;
}

static int is_key(const fm_tensor *t, const void *arg) {
    (void)arg;
    static const char suffix[] = ".attention.self.key.weight";
    size_t n = strlen(t->name), k = sizeof suffix - 1;
    return n > k && strcmp(t->name + n - k, suffix) == 0 && strncmp(t->name, "encoder.layer.", 14) == 0;
}

static int is_deep(const fm_tensor *t, const void *arg) {
    int first = *(const int *)arg;
    return strncmp(t->name, "encoder.layer.", 14) == 0 && t->layer >= first;
}

static int is_glob(const fm_tensor *t, const void *arg) { return fnmatch((const char *)arg, t->name, 0) == 0; }
/* Every pre-trained tensor: embeddings, encoder, pooler (not the heads). */
static int is_pretrained(const fm_tensor *t, const void *arg) {
    (void)arg;
    return !(t->flags & (FM_T_HEAD | FM_T_MLM));
}

int fm_freeze(fm_layout *lay, int num_layers, const char *spec, size_t *frozen) {
    *frozen = 0;
    char *copy = fm_xstrdup(spec);
    int rc = FM_OK;
    for (char *save = NULL, *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        size_t n = 0;
        if (!strcmp(item, "key")) {
            n = freeze_if(lay, is_key, NULL);
        } else if (!strcmp(item, "all")) {
            n = freeze_if(lay, is_pretrained, NULL);
        } else if (!strncmp(item, "deepest:", 8)) {
            char *end;
            long k = strtol(item + 8, &end, 10);
            if (end == item + 8 || *end || k < 1 || k > num_layers) {
                rc = fm_fail("--freeze %s: expected deepest:N with N in 1..%d", item, num_layers);
                break;
            }
            int first = num_layers - (int)k;
            n = freeze_if(lay, is_deep, &first);
        } else if (!strcmp(item, "word_embeddings")) {
            n = freeze_if(lay, is_glob, "embeddings.word_embeddings.weight");
        } else {
            const char *g = strncmp(item, "bert.", 5) == 0 ? item + 5 : item;
            int any = 0;
            for (int i = 0; i < lay->n; i++) any |= fnmatch(g, lay->t[i].name, 0) == 0;
            if (!any) {
                rc = fm_fail("--freeze %s: matches no tensor (names look like encoder.layer.0.attention.self.key.weight)",
                             item);
                break;
            }
            n = freeze_if(lay, is_glob, g);
        }
        *frozen += n;
    }
    free(copy);
    return rc;
}

static int pretrained(const fm_tensor *t) { return !(t->flags & (FM_T_HEAD | FM_T_MLM)); }

void fm_weights_shuffle(fm_model *m, uint64_t seed) {
    size_t cap = 0;
    uint32_t *perm = NULL;
    float *tmp = NULL;
    for (int i = 0; i < m->lay.n; i++) {
        const fm_tensor *t = &m->lay.t[i];
        if (!pretrained(t) || !fm_model_holds(m, i)) continue;
        if (t->numel > cap) {
            cap = t->numel;
            perm = fm_xrealloc(perm, cap * sizeof *perm);
            tmp = fm_xrealloc(tmp, cap * sizeof *tmp);
        }
        float *p = m->params + t->offset;
        fm_rng_permutation(seed, FM_RNG_PERMUTE, 0, (uint32_t)i, perm, (uint32_t)t->numel);
        for (size_t j = 0; j < t->numel; j++) tmp[j] = p[perm[j]];
        memcpy(p, tmp, t->numel * sizeof *p);
    }
    free(perm);
    free(tmp);
}

void fm_weights_randomize(fm_model *m, uint64_t seed) { fm_model_init_tensors(m, seed, FM_T_HEAD | FM_T_MLM); }
