/* trainstate.c: the resumable training state (see trainstate.h). */
#define _GNU_SOURCE
#include "trainstate.h"

#include <errno.h>

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "fm.h"
#include "maskfile.h"
#include "options.h"
#include "runfiles.h"
#include "safetensors.h"

/* The arrays of tensor i: its kind ("param" or "nu") and source, or 0 when
 * the state holds nothing for it. */
static int arrays_of(const fm_trainer *t, int i, const char **kind, float **src) {
    const fm_tensor *x = &t->m->lay.t[i];
    if (t->o.mode == FM_TRAIN_SUPERMASK && t->masked_of[i] >= 0) {
        *kind = "nu";
        *src = t->nu + x->offset;
        return 1;
    }
    if (x->trains) {
        *kind = "param";
        *src = t->m->params + x->offset;
        return 1;
    }
    return 0;
}

static int calls = 0; /* state writes of this process (the test hooks count them) */
static int kill_countdown(void) {
    const char *e = getenv("FINEMASK_TEST_KILL_IN_CHECKPOINT");
    return e && *e && atoi(e) == calls;
}
static int enospc_countdown(void) {
    const char *e = getenv("FINEMASK_TEST_ENOSPC_IN_CHECKPOINT");
    return e && *e && atoi(e) == calls;
}

int fm_state_add(fm_st_entry *e, char **names, int n, const char *kind, const fm_tensor *x, const float *data) {
    size_t len = strlen(kind) + strlen(x->name) + 2;
    names[n] = fm_xmalloc(len);
    snprintf(names[n], len, "%s.%s", kind, x->name);
    e[n].name = names[n];
    e[n].dtype = FM_ST_F32;
    e[n].ndim = x->ndim;
    /* a tensor-parallel share is written whole (gather.h) */
    e[n].shape[0] = x->whole_shape[0];
    e[n].shape[1] = x->whole_shape[1];
    e[n].data = data;
    return n + 1;
}

/* The metadata "crc32c": a JSON object of each tensor's name and the CRC-32C
 * of its bytes (8 hex digits), as compact text (free with free()). */
static size_t entry_bytes(const fm_st_entry *e) {
    size_t bytes = fm_st_dtype_size(e->dtype);
    for (int d = 0; d < e->ndim; d++) bytes *= (size_t)e->shape[d];
    return bytes;
}

static char *crc_json(const fm_st_entry *e, int n, const uint32_t *given) {
    json_t *o = json_object();
    for (int i = 0; i < n; i++) {
        char crc[16];
        snprintf(crc, sizeof crc, "%08" PRIx32, given ? given[i] : fm_crc32c(e[i].data, entry_bytes(&e[i])));
        json_object_set_new(o, e[i].name, json_string(crc));
    }
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

int fm_state_write(const char *path, fm_st_entry *e, char **names, int n, const fm_st_meta *meta_in, int nmeta_in) {
    return fm_state_write_fetch(path, e, names, n, meta_in, nmeta_in, NULL, NULL, NULL);
}

int fm_state_write_fetch(const char *path, fm_st_entry *e, char **names, int n, const fm_st_meta *meta_in,
                         int nmeta_in, fm_st_fetch fetch, void *ctx, const uint32_t *crc) {
    /* the caller's metadata, and every tensor's CRC-32C (checked by fm_state_open) */
    char *crcs = crc_json(e, n, fetch ? crc : NULL);
    fm_st_meta *meta = fm_xcalloc((size_t)nmeta_in + 1, sizeof *meta);
    memcpy(meta, meta_in, sizeof *meta * (size_t)nmeta_in);
    meta[nmeta_in] = (fm_st_meta){"crc32c", crcs};
    const int nmeta = nmeta_in + 1;
    calls++;
    unsigned char **held = NULL;
    if (fetch && (enospc_countdown() || kill_countdown())) {
        /* The test hooks below cut a file built in memory: every entry's
         * bytes fetched first (tests only; a state's size at most). */
        held = fm_xcalloc((size_t)(n ? n : 1), sizeof *held);
        for (int i = 0; i < n; i++) {
            const size_t k = entry_bytes(&e[i]);
            const void *d = fetch(ctx, i);
            held[i] = fm_xmalloc(k ? k : 1);
            if (d && k) memcpy(held[i], d, k);
            e[i].data = held[i];
        }
        fetch = NULL;
    }
    int rc = FM_ERR, done = 0;
    if (enospc_countdown()) {
        /* Test hook: the disk fills up half-way through the temporary file;
         * the write fails as fm_st_write's would (the temporary file removed,
         * the previous state left as it was). */
        unsigned char *buf = NULL;
        size_t len;
        fm_atomic_file f;
        if (fm_st_serialize(e, n, meta, nmeta, &buf, &len) == FM_OK && fm_atomic_open(&f, path) == FM_OK) {
            fm_atomic_write(&f, buf, len / 2);
            f.failed = ENOSPC;
            fm_log("FINEMASK_TEST_ENOSPC_IN_CHECKPOINT: the disk is full while writing %s", path);
            rc = fm_atomic_commit(&f);
            done = 1;
        }
        free(buf);
    }
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
    if (!done) rc = fetch ? fm_st_write_fetch(path, e, n, meta, nmeta, fetch, ctx) : fm_st_write(path, e, n, meta, nmeta);
    for (int i = 0; held && i < n; i++) free(held[i]);
    free(held);
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    free(e);
    free(meta);
    free(crcs);
    return rc;
}

/* Add what to do to the recorded message about a damaged state file. */
static int damaged(void) {
    char msg[1536];
    snprintf(msg, sizeof msg, "%s", fm_last_error());
    return fm_fail("%s; the state file is damaged: restore a good copy, or remove it to start the run over from "
                   "step 0",
                   msg);
}

int fm_state_open(fm_st_file *f, const char *path) {
    if (fm_st_open(f, path) != FM_OK) return damaged();
    const char *v = fm_st_meta_get(f, "crc32c");
    if (!v) {
        fm_log("%s: no CRC-32C recorded (written by an older finemask); its data is not checked", path);
        return FM_OK;
    }
    json_t *o = json_loads(v, 0, NULL);
    int rc = FM_OK;
    if (!json_is_object(o)) {
        rc = fm_fail("%s: metadata \"crc32c\": expected a JSON object, found \"%.60s\"", path, v);
    } else if (json_object_size(o) != (size_t)f->n) {
        rc = fm_fail("%s: metadata \"crc32c\" lists %zu tensors, the file holds %d", path, json_object_size(o), f->n);
    }
    for (int i = 0; i < f->n && rc == FM_OK; i++) {
        const fm_st_tensor *t = &f->t[i];
        const char *want = json_string_value(json_object_get(o, t->name));
        char have[16];
        snprintf(have, sizeof have, "%08" PRIx32, fm_crc32c(t->data, (size_t)(t->end - t->begin)));
        /* checked: not kept resident (a pipeline stage reads its own tensors only, later) */
        fm_mmap_drop(&f->map, t->data, (size_t)(t->end - t->begin));
        if (!want)
            rc = fm_fail("%s: tensor %s has no CRC-32C in the metadata", path, t->name);
        else if (strcmp(want, have) != 0)
            rc = fm_fail("%s: tensor %s: CRC-32C of its bytes is %s, the file recorded %s", path, t->name, have, want);
    }
    json_decref(o);
    if (rc != FM_OK) {
        damaged();
        fm_st_close(f);
    }
    return rc;
}

int fm_state_meta_i64(const fm_st_file *f, const char *key, int64_t *out) {
    const char *v = fm_st_meta_get(f, key);
    char *end;
    if (!v || !*v) return fm_fail("%s: expected metadata \"%s\", found none", f->path, key);
    long long x = strtoll(v, &end, 10);
    if (*end) return fm_fail("%s: metadata \"%s\": expected an integer, found \"%s\"", f->path, key, v);
    *out = x;
    return FM_OK;
}

int fm_state_meta_f64(const fm_st_file *f, const char *key, double *out) {
    const char *v = fm_st_meta_get(f, key);
    char *end;
    if (!v || !*v) return fm_fail("%s: expected metadata \"%s\", found none", f->path, key);
    *out = strtod(v, &end);
    if (*end) return fm_fail("%s: metadata \"%s\": expected a number, found \"%s\"", f->path, key, v);
    return FM_OK;
}

int fm_state_load(const fm_st_file *f, const char *kind, const fm_layout *lay, const fm_tensor *x, float *dst) {
    char name[160];
    snprintf(name, sizeof name, "%s.%s", kind, x->name);
    const fm_st_tensor *s = fm_st_find(f, name);
    if (!s) return fm_fail("%s: expected tensor %s, found none", f->path, name);
    if (s->dtype != FM_ST_F32 || s->numel != x->whole_numel || s->ndim != x->ndim)
        return fm_fail("%s: %s: expected F32 of %zu elements, found %s of %" PRIu64, f->path, name, x->whole_numel,
                       fm_st_dtype_name(s->dtype), s->numel);
    /* a tensor-parallel share: its rows or columns of the mapped tensor;
     * the tensor's pages are then dropped from the mapping */
    fm_tensor_slice(lay, x, (const float *)s->data, dst);
    fm_mmap_drop(&f->map, s->data, (size_t)(s->end - s->begin));
    return FM_OK;
}

int fm_trainstate_entries(const fm_trainer *t, fm_st_entry **ep, char ***namesp, int **tensorp) {
    const fm_layout *lay = &t->m->lay;
    fm_st_entry *e = fm_xcalloc((size_t)lay->n * 3 + 1, sizeof *e);
    char **names = fm_xcalloc((size_t)lay->n * 3 + 1, sizeof *names);
    int *tensor = fm_xcalloc((size_t)lay->n * 3 + 1, sizeof *tensor);
    int n = 0;
    for (int i = 0; i < lay->n; i++) {
        const char *kind;
        float *src;
        if (!arrays_of(t, i, &kind, &src)) continue;
        const fm_tensor *x = &lay->t[i];
        const char *kinds[3] = {kind, "adam_m", "adam_v"};
        const float *data[3] = {src, t->mom1 + x->offset, t->mom2 + x->offset};
        for (int k = 0; k < 3; k++) {
            tensor[n] = i;
            n = fm_state_add(e, names, n, kinds[k], x, data[k]);
        }
    }
    *ep = e;
    *namesp = names;
    *tensorp = tensor;
    return n;
}

int fm_trainstate_write(const char *path, const fm_trainer *t, const fm_train_progress *p, const char *options) {
    return fm_trainstate_write_fetch(path, t, p, options, NULL, NULL, NULL);
}

int fm_trainstate_write_fetch(const char *path, const fm_trainer *t, const fm_train_progress *p,
                              const char *options, fm_st_fetch fetch, void *ctx, const uint32_t *crc) {
    fm_st_entry *e;
    char **names;
    int *tensor;
    const int n = fm_trainstate_entries(t, &e, &names, &tensor);
    free(tensor);
    char step[32], logb[32], wl[64], wn[32], ex[32], ll[64];
    snprintf(step, sizeof step, "%" PRId64, p->step);
    snprintf(logb, sizeof logb, "%lld", p->log_bytes);
    snprintf(wl, sizeof wl, "%a", p->window_loss);
    snprintf(wn, sizeof wn, "%" PRId64, p->window_n);
    snprintf(ex, sizeof ex, "%" PRId64, p->examples);
    snprintf(ll, sizeof ll, "%a", p->last_loss);
    fm_st_meta meta[] = {
        {"format", "finemask-state"}, {"version", "1"},     {"step", step},
        {"log_bytes", logb},          {"window_loss", wl}, {"window_n", wn},
        {"examples", ex},             {"last_loss", ll},   {"options", (char *)options},
    };
    return fm_state_write_fetch(path, e, names, n, meta, (int)(sizeof meta / sizeof *meta), fetch, ctx, crc);
}

int fm_trainstate_read(const char *path, fm_trainer *t, fm_train_progress *p, const char *options) {
    fm_st_file f;
    if (fm_state_open(&f, path) != FM_OK) return FM_ERR;
    int rc = FM_ERR;
    const char *fmt = fm_st_meta_get(&f, "format"), *opts = fm_st_meta_get(&f, "options");
    if (!fmt || strcmp(fmt, "finemask-state") != 0) {
        fm_fail("%s: expected format \"finemask-state\", found \"%s\"", path, fmt ? fmt : "");
        goto done;
    }
    static const char *const paths[] = {"model", "data", NULL};
    json_t *cur = json_loads(options, 0, NULL);
    const char *const *unused = fm_ft_opts_unused(json_string_value(json_object_get(cur, "mode")));
    const int agree = fm_options_agree(path, opts, options, paths, unused) == FM_OK;
    json_decref(cur);
    if (!agree) goto done;
    int64_t lb = 0;
    if (fm_state_meta_i64(&f, "step", &p->step) || fm_state_meta_i64(&f, "log_bytes", &lb) || fm_state_meta_f64(&f, "window_loss", &p->window_loss) ||
        fm_state_meta_i64(&f, "window_n", &p->window_n) || fm_state_meta_i64(&f, "examples", &p->examples) ||
        fm_state_meta_f64(&f, "last_loss", &p->last_loss))
        goto done;
    p->log_bytes = lb;
    const fm_layout *lay = &t->m->lay;
    for (int i = 0; i < lay->n; i++) {
        const char *kind;
        float *dst;
        if (!arrays_of(t, i, &kind, &dst) || !fm_model_holds(t->m, i)) continue;
        const fm_tensor *x = &lay->t[i];
        if (fm_state_load(&f, kind, lay, x, dst) || fm_state_load(&f, "adam_m", lay, x, t->mom1 + x->offset) ||
            fm_state_load(&f, "adam_v", lay, x, t->mom2 + x->offset))
            goto done;
    }
    t->step = p->step;
    rc = FM_OK;
done:
    fm_st_close(&f);
    return rc;
}
