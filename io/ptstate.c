/* ptstate.c: the resumable pre-training state (see ptstate.h). */
#define _GNU_SOURCE
#include "ptstate.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "fm.h"
#include "runfiles.h"
#include "safetensors.h"
#include "trainstate.h"

static const char *const kinds[3] = {"param", "adam_m", "adam_v"};

int fm_ptstate_write(const char *path, const fm_layout *lay, const float *params, const float *mom1,
                     const float *mom2, const fm_pt_progress *p, const char *options) {
    fm_st_entry *e = fm_xcalloc((size_t)lay->n * 3 + 1, sizeof *e);
    char **names = fm_xcalloc((size_t)lay->n * 3 + 1, sizeof *names);
    int n = 0;
    for (int i = 0; i < lay->n; i++) {
        const fm_tensor *x = &lay->t[i];
        if (!x->trains) continue;
        const float *data[3] = {params + x->offset, mom1 + x->offset, mom2 + x->offset};
        for (int k = 0; k < 3; k++) n = fm_state_add(e, names, n, kinds[k], x, data[k]);
    }
    char step[32], logb[32], wl[64], wn[32], ex[32], l0[64], cnt[128], rk[16];
    snprintf(step, sizeof step, "%" PRId64, p->step);
    snprintf(logb, sizeof logb, "%lld", p->log_bytes);
    snprintf(wl, sizeof wl, "%a", p->window_loss);
    snprintf(wn, sizeof wn, "%" PRId64, p->window_n);
    snprintf(ex, sizeof ex, "%" PRId64, p->examples);
    snprintf(l0, sizeof l0, "%a", p->loss_initial);
    snprintf(cnt, sizeof cnt, "%" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64, p->counts[0], p->counts[1],
             p->counts[2], p->counts[3], p->counts[4]);
    snprintf(rk, sizeof rk, "%d", p->ranks);
    fm_st_meta meta[] = {
        {"format", "finemask-pretrain-state"},
        {"version", "1"},
        {"step", step},
        {"log_bytes", logb},
        {"window_loss", wl},
        {"window_n", wn},
        {"examples", ex},
        {"loss_initial", l0},
        {"counts", cnt},
        {"ranks", rk},
        {"options", (char *)options},
    };
    return fm_state_write(path, e, names, n, meta, (int)(sizeof meta / sizeof *meta));
}

static int meta_counts(const fm_st_file *f, int64_t *c) {
    const char *v = fm_st_meta_get(f, "counts");
    if (!v) return fm_fail("%s: expected metadata \"counts\", found none", f->path);
    const char *s = v;
    for (int k = 0; k < 5; k++) {
        char *end;
        long long x = strtoll(s, &end, 10);
        if (end == s || x < 0)
            return fm_fail("%s: metadata \"counts\": expected 5 counts, found \"%s\"", f->path, v);
        c[k] = x;
        s = end;
    }
    if (*s) return fm_fail("%s: metadata \"counts\": expected 5 counts, found \"%s\"", f->path, v);
    return FM_OK;
}

int fm_ptstate_read(const char *path, const fm_layout *lay, float *params, float *mom1, float *mom2,
                    fm_pt_progress *p, const char *options) {
    fm_st_file f;
    if (fm_state_open(&f, path) != FM_OK) return FM_ERR;
    int rc = FM_ERR;
    const char *fmt = fm_st_meta_get(&f, "format");
    if (!fmt || strcmp(fmt, "finemask-pretrain-state") != 0) {
        fm_fail("%s: expected format \"finemask-pretrain-state\", found \"%s\"", path, fmt ? fmt : "");
        goto done;
    }
    static const char *const paths[] = {"corpus", "vocab", "init", NULL};
    if (fm_options_agree(path, fm_st_meta_get(&f, "options"), options, paths, NULL) != FM_OK) goto done;
    int64_t lb = 0, ranks = 0;
    if (fm_state_meta_i64(&f, "step", &p->step) || fm_state_meta_i64(&f, "log_bytes", &lb) ||
        fm_state_meta_f64(&f, "window_loss", &p->window_loss) || fm_state_meta_i64(&f, "window_n", &p->window_n) ||
        fm_state_meta_i64(&f, "examples", &p->examples) || fm_state_meta_f64(&f, "loss_initial", &p->loss_initial) ||
        meta_counts(&f, p->counts) || fm_state_meta_i64(&f, "ranks", &ranks))
        goto done;
    p->log_bytes = lb;
    p->ranks = (int)ranks;
    float *dst[3] = {params, mom1, mom2};
    for (int i = 0; i < lay->n; i++) {
        const fm_tensor *x = &lay->t[i];
        if (!x->trains) continue;
        for (int k = 0; k < 3; k++)
            if (fm_state_load(&f, kinds[k], lay, x, dst[k] + x->offset) != FM_OK) goto done;
    }
    rc = FM_OK;
done:
    fm_st_close(&f);
    return rc;
}
