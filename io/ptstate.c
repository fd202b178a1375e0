/* ptstate.c: the resumable pre-training state (see ptstate.h). */
#define _GNU_SOURCE
#include "ptstate.h"

#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "fm.h"
#include "safetensors.h"

static const char *const kinds[3] = {"param", "adam_m", "adam_v"};

static int kill_countdown(void) {
    static int calls = 0;
    const char *e = getenv("FINEMASK_TEST_KILL_IN_CHECKPOINT");
    return e && *e && atoi(e) == ++calls;
}

int fm_ptstate_write(const char *path, const fm_layout *lay, const float *params, const float *mom1,
                     const float *mom2, const fm_pt_progress *p, const char *options) {
    fm_st_entry *e = fm_xcalloc((size_t)lay->n * 3 + 1, sizeof *e);
    char **names = fm_xcalloc((size_t)lay->n * 3 + 1, sizeof *names);
    int n = 0;
    for (int i = 0; i < lay->n; i++) {
        const fm_tensor *x = &lay->t[i];
        if (!x->trains) continue;
        const float *data[3] = {params + x->offset, mom1 + x->offset, mom2 + x->offset};
        for (int k = 0; k < 3; k++) {
            size_t len = strlen(kinds[k]) + strlen(x->name) + 2;
            names[n] = fm_xmalloc(len);
            snprintf(names[n], len, "%s.%s", kinds[k], x->name);
            e[n].name = names[n];
            e[n].dtype = FM_ST_F32;
            e[n].ndim = x->ndim;
            e[n].shape[0] = x->shape[0];
            e[n].shape[1] = x->shape[1];
            e[n].data = data[k];
            n++;
        }
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
    const int nmeta = (int)(sizeof meta / sizeof *meta);
    if (kill_countdown()) {
        /* Test hook: die half-way through the temporary file. */
        unsigned char *buf = NULL;
        size_t len;
        fm_atomic_file f;
        if (fm_st_serialize(e, n, meta, nmeta, &buf, &len) == FM_OK && fm_atomic_open(&f, path) == FM_OK) {
            fm_atomic_write(&f, buf, len / 2);
            fflush((FILE *)f.fp);
            fm_log("FINEMASK_TEST_KILL_IN_CHECKPOINT: killed while writing %s", path);
            raise(SIGKILL);
        }
        free(buf);
    }
    int rc = fm_st_write(path, e, n, meta, nmeta);
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    free(e);
    return rc;
}

static int meta_i64(const fm_st_file *f, const char *key, int64_t *out) {
    const char *v = fm_st_meta_get(f, key);
    char *end;
    if (!v || !*v) return fm_fail("%s: expected metadata \"%s\", found none", f->path, key);
    long long x = strtoll(v, &end, 10);
    if (*end) return fm_fail("%s: metadata \"%s\": expected an integer, found \"%s\"", f->path, key, v);
    *out = x;
    return FM_OK;
}

static int meta_f64(const fm_st_file *f, const char *key, double *out) {
    const char *v = fm_st_meta_get(f, key);
    char *end;
    if (!v || !*v) return fm_fail("%s: expected metadata \"%s\", found none", f->path, key);
    *out = strtod(v, &end);
    if (*end) return fm_fail("%s: metadata \"%s\": expected a number, found \"%s\"", f->path, key, v);
    return FM_OK;
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

/* FM_OK when the option objects `saved` (from path) and `cur` hold the same
 * keys and values; otherwise an error naming the first difference. */
static int compare_options(const char *path, const char *saved, const char *cur) {
    json_error_t err;
    json_t *a = json_loads(saved ? saved : "", 0, &err), *b = json_loads(cur, 0, &err);
    int rc = FM_OK;
    if (!json_is_object(a) || !json_is_object(b)) {
        rc = fm_fail("%s: metadata \"options\": expected a JSON object, found \"%s\"", path, saved ? saved : "");
        goto done;
    }
    const char *key;
    json_t *vb;
    json_object_foreach(b, key, vb) {
        json_t *va = json_object_get(a, key);
        if (va && json_equal(va, vb)) continue;
        char *sa = va ? json_dumps(va, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
        char *sb = json_dumps(vb, JSON_ENCODE_ANY | JSON_COMPACT);
        rc = fm_fail("%s: option %s differs: the state was written with %s, this run has %s; resume with the same "
                     "options (or start over with --force instead of --resume)",
                     path, key, sa ? sa : "(none)", sb ? sb : "?");
        free(sa);
        free(sb);
        goto done;
    }
    json_t *va;
    json_object_foreach(a, key, va) {
        if (json_object_get(b, key)) continue;
        rc = fm_fail("%s: option %s differs: the state was written with it, this run has none", path, key);
        goto done;
    }
done:
    json_decref(a);
    json_decref(b);
    return rc;
}

static int load(const fm_st_file *f, const char *kind, const fm_tensor *x, float *dst) {
    char name[160];
    snprintf(name, sizeof name, "%s.%s", kind, x->name);
    const fm_st_tensor *s = fm_st_find(f, name);
    if (!s) return fm_fail("%s: expected tensor %s, found none", f->path, name);
    if (s->dtype != FM_ST_F32 || s->numel != x->numel || s->ndim != x->ndim)
        return fm_fail("%s: %s: expected F32 of %zu elements, found %s of %" PRIu64, f->path, name, x->numel,
                       fm_st_dtype_name(s->dtype), s->numel);
    memcpy(dst, s->data, x->numel * sizeof(float));
    return FM_OK;
}

int fm_ptstate_read(const char *path, const fm_layout *lay, float *params, float *mom1, float *mom2,
                    fm_pt_progress *p, const char *options) {
    fm_st_file f;
    if (fm_st_open(&f, path) != FM_OK) return FM_ERR;
    int rc = FM_ERR;
    const char *fmt = fm_st_meta_get(&f, "format");
    if (!fmt || strcmp(fmt, "finemask-pretrain-state") != 0) {
        fm_fail("%s: expected format \"finemask-pretrain-state\", found \"%s\"", path, fmt ? fmt : "");
        goto done;
    }
    if (compare_options(path, fm_st_meta_get(&f, "options"), options) != FM_OK) goto done;
    int64_t lb = 0, ranks = 0;
    if (meta_i64(&f, "step", &p->step) || meta_i64(&f, "log_bytes", &lb) ||
        meta_f64(&f, "window_loss", &p->window_loss) || meta_i64(&f, "window_n", &p->window_n) ||
        meta_i64(&f, "examples", &p->examples) || meta_f64(&f, "loss_initial", &p->loss_initial) ||
        meta_counts(&f, p->counts) || meta_i64(&f, "ranks", &ranks))
        goto done;
    p->log_bytes = lb;
    p->ranks = (int)ranks;
    float *dst[3] = {params, mom1, mom2};
    for (int i = 0; i < lay->n; i++) {
        const fm_tensor *x = &lay->t[i];
        if (!x->trains) continue;
        for (int k = 0; k < 3; k++)
            if (load(&f, kinds[k], x, dst[k] + x->offset) != FM_OK) goto done;
    }
    rc = FM_OK;
done:
    fm_st_close(&f);
    return rc;
}
