/* modeldir.c: HuggingFace model directories (see modeldir.h). */
#include "modeldir.h"

#include <inttypes.h>
#include <isa-l/crc64.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "blas.h"
#include "fileio.h"
#include "fm.h"

void fm_load_opts_default(fm_load_opts *o) {
    o->num_labels = -1;
    o->with_mlm = -1;
    o->stage = 0;
    o->nstages = 1;
    o->tp = 0;
    o->ntp = 1;
}

void fm_load_info_free(fm_load_info *info) {
    if (!info) return;
    fm_hfextra_free(&info->extra);
    memset(info, 0, sizeof *info);
}

static int starts_with(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

static int ends_with(const char *s, const char *p) {
    size_t ls = strlen(s), lp = strlen(p);
    return ls >= lp && strcmp(s + ls - lp, p) == 0;
}

void fm_hf_name(char out[128], const fm_tensor *t) {
    int heads = (t->flags & (FM_T_HEAD | FM_T_MLM)) != 0;
    snprintf(out, 128, "%s%s", heads ? "" : "bert.", t->name);
}

/* The layout name a file name stands for: "bert." stripped, LayerNorm
 * gamma/beta renamed, the tied decoder bias read as cls.predictions.bias
 * (when the file lacks that). canon gets the result (truncated names simply
 * match nothing). */
static void canonical(const fm_st_file *f, const char *name, char canon[160]) {
    if (starts_with(name, "bert.")) name += 5;
    snprintf(canon, 160, "%s", name);
    size_t n = strlen(canon);
    if (strstr(canon, "LayerNorm.") && ends_with(canon, ".gamma"))
        snprintf(canon + n - 6, 160 - (n - 6), ".weight");
    else if (strstr(canon, "LayerNorm.") && ends_with(canon, ".beta"))
        snprintf(canon + n - 5, 160 - (n - 5), ".bias");
    else if (strcmp(canon, "cls.predictions.decoder.bias") == 0 && !fm_st_find(f, "cls.predictions.bias"))
        snprintf(canon, 160, "cls.predictions.bias");
}

/* For a file tensor that has no place in the layout: 0 to skip it quietly,
 * 1 to skip it with a warning, FM_ERR (message recorded) when it shows that
 * the file and the config disagree. */
static int classify_extra(const fm_st_file *f, const char *name, const char *canon, const fm_config *c) {
    if (strcmp(canon, "embeddings.position_ids") == 0) return 0;
    if (starts_with(canon, "cls.")) return 0;        /* MLM / NSP heads the config does not ask for */
    if (starts_with(canon, "classifier.")) return 0; /* a task head the config does not have */
    if (starts_with(canon, "pooler.") && !c->with_pooler) return 0;
    if (starts_with(canon, "encoder.layer.")) {
        char *end;
        long l = strtol(canon + 14, &end, 10);
        if (end != canon + 14 && *end == '.' && l >= c->num_hidden_layers)
            return fm_fail("%s: tensor '%s' belongs to encoder layer %ld, but the config has num_hidden_layers = %d",
                           f->path, name, l, c->num_hidden_layers);
    }
    return 1;
}

/* fm_load_tensors; skip_head: the file's classifier.* is ignored (a caller
 * asked for a different number of labels than the file's head has). */
/* File tensor st into tensor x of layout sh: whole, or on a tensor-parallel
 * shard layout the rows or columns of x's share, copied from the mapping
 * (other dtypes converted one tensor at a time first). Its pages are then
 * dropped from the mapping. */
static int load_one(const fm_st_file *f, const fm_st_tensor *st, const fm_layout *sh, const fm_tensor *x, float *dst) {
    int rc = FM_OK;
    if (x->split == FM_SPLIT_NONE) {
        rc = fm_st_to_float(f, st, dst);
    } else if (st->dtype == FM_ST_F32) {
        fm_tensor_slice(sh, x, (const float *)st->data, dst);
    } else {
        float *whole = fm_xalloc_floats(x->whole_numel);
        rc = fm_st_to_float(f, st, whole);
        if (rc == FM_OK) fm_tensor_slice(sh, x, whole, dst);
        fm_free_aligned(whole);
    }
    fm_mmap_drop(&f->map, st->data, (size_t)(st->end - st->begin));
    return rc;
}

/* keep: NULL, or the caller's [lay->n] array that receives each layout
 * tensor's file tensor (NULL for an absent task head). sh: NULL, or the
 * shard layout of lay that params has (lay is then the whole one). */
static int load_tensors(const fm_st_file *f, const fm_config *c, const fm_layout *lay, const fm_layout *sh,
                        float *params, const unsigned char *own, fm_load_info *info, int skip_head,
                        const fm_st_tensor **keep) {
    fm_load_info local;
    if (!info) info = &local;
    info->head_present = 0;
    info->n_loaded = info->n_converted = info->n_skipped = 0;
    const fm_st_tensor **src = keep ? keep : fm_xcalloc((size_t)(lay->n ? lay->n : 1), sizeof *src);
    int rc = FM_OK, warned = 0;
    char canon[160], want[256], got[256], hf[128];

    for (int i = 0; i < f->n && rc == FM_OK; i++) {
        const fm_st_tensor *st = &f->t[i];
        canonical(f, st->name, canon);
        const fm_tensor *t = fm_layout_find(lay, canon);
        if (t && skip_head && (t->flags & FM_T_HEAD)) t = NULL;
        if (!t) {
            int k = classify_extra(f, st->name, canon, c);
            if (k == FM_ERR) {
                rc = FM_ERR;
                break;
            }
            if (k == 1 && warned++ < 5) fm_log("%s: skipping tensor '%s' (not part of this model)", f->path, st->name);
            info->n_skipped++;
            continue;
        }
        int ti = (int)(t - lay->t);
        if (src[ti]) {
            rc = fm_fail("%s: tensors '%s' and '%s' are both '%s'", f->path, src[ti]->name, st->name, canon);
            break;
        }
        if (!fm_st_dtype_is_float(st->dtype)) {
            rc = fm_fail("%s: tensor '%s': dtype %s, expected F32 (or F16, BF16, F64)", f->path, st->name,
                         fm_st_dtype_name(st->dtype));
            break;
        }
        int same = st->ndim == t->ndim;
        for (int d = 0; same && d < t->ndim; d++) same = st->shape[d] == t->shape[d];
        if (!same) {
            rc = fm_fail("%s: tensor '%s': expected shape %s (from the config), found %s", f->path, st->name,
                         fm_st_shape_str(want, sizeof want, t->ndim, t->shape),
                         fm_st_shape_str(got, sizeof got, st->ndim, st->shape));
            break;
        }
        src[ti] = st;
        const fm_tensor *x = sh ? &sh->t[ti] : t;
        if (params && (!own || own[ti]) && (rc = load_one(f, st, sh ? sh : lay, x, params + x->offset)) != FM_OK)
            break;
        info->n_loaded++;
        if (st->dtype != FM_ST_F32) info->n_converted++;
    }
    if (warned > 5) fm_log("%s: skipped %d more tensors that are not part of this model", f->path, warned - 5);

    /* Every tensor is required except the task head, which is all or nothing. */
    int head_have = 0, head_total = 0;
    for (int i = 0; i < lay->n && rc == FM_OK; i++) {
        const fm_tensor *t = &lay->t[i];
        if (t->flags & FM_T_HEAD) {
            head_total++;
            head_have += src[i] != NULL;
            continue;
        }
        if (!src[i]) {
            fm_hf_name(hf, t);
            rc = fm_fail("%s: missing tensor '%s' (shape %s), required by the config", f->path, hf,
                         fm_st_shape_str(want, sizeof want, t->ndim, t->shape));
        }
    }
    if (rc == FM_OK && head_have && head_have != head_total) {
        for (int i = 0; i < lay->n; i++) {
            if ((lay->t[i].flags & FM_T_HEAD) && !src[i]) {
                rc = fm_fail("%s: missing tensor '%s': the task head must be complete or absent", f->path,
                             lay->t[i].name);
                break;
            }
        }
    }
    info->head_present = rc == FM_OK && head_total > 0 && head_have == head_total;
    if (!keep) free(src);
    return rc;
}

int fm_load_tensors(const fm_st_file *f, const fm_config *c, const fm_layout *lay, float *params,
                    fm_load_info *info) {
    return load_tensors(f, c, lay, NULL, params, NULL, info, 0, NULL);
}

static int file_has_prefix(const fm_st_file *f, const char *prefix) {
    for (int i = 0; i < f->n; i++)
        if (starts_with(f->t[i].name, prefix)) return 1;
    return 0;
}

int fm_modeldir_resolve(const char *cpath, fm_config *c, const fm_hfextra *x, const fm_st_file *f,
                        const fm_load_opts *o, int *skip_head) {
    fm_load_opts def;
    if (!o) {
        fm_load_opts_default(&def);
        o = &def;
    }
    *skip_head = 0;
    if (o->num_labels >= 0) {
        c->num_labels = o->num_labels;
        const fm_st_tensor *w = fm_st_find(f, "classifier.weight");
        if (w && w->ndim >= 1 && w->shape[0] != o->num_labels) {
            fm_log("%s: ignoring the file's task head (%" PRId64 " labels; %d asked for)", f->path, w->shape[0],
                   o->num_labels);
            *skip_head = 1;
        }
    } else if (!x || !x->labels_given) {
        /* config.json says nothing: a classifier in the file decides */
        const fm_st_tensor *w = fm_st_find(f, "classifier.weight");
        if (w && w->ndim == 2 && w->shape[0] >= 1 && w->shape[0] <= 65536) c->num_labels = (int)w->shape[0];
    }
    c->with_mlm = o->with_mlm >= 0 ? o->with_mlm
                                   : file_has_prefix(f, "cls.predictions.bias") ||
                                         file_has_prefix(f, "cls.predictions.transform.");
    if (fm_config_check(c) != FM_OK) return fm_fail_prefix("%s: ", cpath);
    return FM_OK;
}

int fm_modeldir_load(const char *dir, const fm_load_opts *o, fm_model *m, fm_load_info *info) {
    fm_load_opts def;
    if (!o) {
        fm_load_opts_default(&def);
        o = &def;
    }
    fm_load_info local;
    if (!info) info = &local;
    memset(info, 0, sizeof *info);
    memset(m, 0, sizeof *m);
    char *cpath = fm_path_join(dir, FM_MODEL_CONFIG), *wpath = fm_path_join(dir, FM_MODEL_WEIGHTS);
    fm_config c;
    fm_hfextra x;
    fm_st_file f;
    memset(&f, 0, sizeof f);
    memset(&x, 0, sizeof x);
    int rc = fm_hfconfig_read(cpath, &c, &x);
    if (rc == FM_OK) rc = fm_st_open(&f, wpath);
    int skip_head = 0;
    if (rc == FM_OK) rc = fm_modeldir_resolve(cpath, &c, &x, &f, o, &skip_head);
    if (rc == FM_OK && o->ntp > 1 && c.num_attention_heads % o->ntp)
        rc = fm_fail("--tensor-parallel %d: %s has %d attention heads; expected a divisor of them (a rank holds "
                     "whole heads)",
                     o->ntp, dir, c.num_attention_heads);
    if (rc == FM_OK) {
        if (o->ntp > 1) {
            fm_model_alloc_shard(m, &c, o->tp, o->ntp, o->stage, o->nstages);
            rc = load_tensors(&f, &c, &m->whole, &m->lay, m->params, m->own, info, skip_head, NULL);
        } else {
            fm_model_alloc_stage(m, &c, o->stage, o->nstages);
            rc = load_tensors(&f, &c, &m->lay, NULL, m->params, m->own, info, skip_head, NULL);
        }
        if (rc != FM_OK) {
            fm_model_free(m);
            memset(m, 0, sizeof *m);
        }
    }
    fm_st_close(&f);
    if (rc == FM_OK && info != &local) {
        info->extra = x;
    } else {
        fm_hfextra_free(&x);
    }
    free(cpath);
    free(wpath);
    return rc;
}

int fm_modeldir_open(fm_modeldir_reader *r, const char *dir, const fm_load_opts *o) {
    fm_load_opts def;
    if (!o) {
        fm_load_opts_default(&def);
        o = &def;
    }
    memset(r, 0, sizeof *r);
    char *cpath = fm_path_join(dir, FM_MODEL_CONFIG), *wpath = fm_path_join(dir, FM_MODEL_WEIGHTS);
    fm_hfextra x;
    memset(&x, 0, sizeof x);
    int skip_head = 0, rc = fm_hfconfig_read(cpath, &r->c, &x);
    if (rc == FM_OK) rc = fm_st_open(&r->f, wpath);
    if (rc == FM_OK) rc = fm_modeldir_resolve(cpath, &r->c, &x, &r->f, o, &skip_head);
    if (rc == FM_OK) {
        fm_layout_build(&r->lay, &r->c);
        r->src = fm_xcalloc((size_t)(r->lay.n ? r->lay.n : 1), sizeof *r->src);
        /* every tensor checked now, none read */
        rc = load_tensors(&r->f, &r->c, &r->lay, NULL, NULL, NULL, NULL, skip_head, r->src);
    }
    fm_hfextra_free(&x);
    free(cpath);
    free(wpath);
    if (rc != FM_OK) fm_modeldir_close(r);
    return rc;
}

const float *fm_modeldir_read(fm_modeldir_reader *r, const fm_tensor *t) {
    const int i = (int)(t - r->lay.t);
    if (i < 0 || i >= r->lay.n || !r->src[i]) {
        fm_fail("%s: no tensor '%s' in this model", r->f.path, t->name);
        return NULL;
    }
    if (t->numel > r->cap) {
        fm_free_aligned(r->buf);
        r->buf = fm_xalloc_floats(t->numel);
        r->cap = t->numel;
    }
    return fm_st_to_float(&r->f, r->src[i], r->buf) == FM_OK ? r->buf : NULL;
}

void fm_modeldir_close(fm_modeldir_reader *r) {
    if (r->src) fm_layout_free(&r->lay);
    free(r->src);
    fm_free_aligned(r->buf);
    fm_st_close(&r->f);
    memset(r, 0, sizeof *r);
}

/* ISA-L's generic code where its dispatcher would pick code the CPU lacks
 * (fm_cpu_has_pclmul). */
static uint64_t crc64(uint64_t crc, const unsigned char *p, uint64_t n) {
    return fm_cpu_has_pclmul() ? crc64_ecma_refl(crc, p, n) : crc64_ecma_refl_base(crc, p, n);
}

uint64_t fm_params_fingerprint(const fm_layout *lay, const float *params) {
    return fm_params_fingerprint_part(0, lay, params, NULL);
}

uint64_t fm_params_fingerprint_tensor(uint64_t crc, const fm_tensor *t, const float *data) {
    if (t->flags & (FM_T_HEAD | FM_T_MLM)) return crc;
    crc = crc64(crc, (const unsigned char *)t->name, strlen(t->name) + 1);
    unsigned char shape[16];
    for (int d = 0; d < t->ndim; d++)
        for (int b = 0; b < 8; b++) shape[8 * d + b] = (unsigned char)((uint64_t)t->shape[d] >> (8 * b));
    crc = crc64(crc, shape, (uint64_t)(8 * t->ndim));
    return crc64(crc, (const unsigned char *)data, (uint64_t)t->numel * sizeof(float));
}

uint64_t fm_params_fingerprint_part(uint64_t crc, const fm_layout *lay, const float *params,
                                    const unsigned char *own) {
    for (int i = 0; i < lay->n; i++)
        if (!own || own[i]) crc = fm_params_fingerprint_tensor(crc, &lay->t[i], params + lay->t[i].offset);
    return crc;
}

/* fm_save_tensors, with the data from fetch when it is given. */
static int save_tensors(const char *path, const fm_layout *lay, const float *params, const fm_st_meta *meta, int nmeta,
                        const fm_save_opts *o) {
    fm_st_entry *e = fm_xcalloc((size_t)(lay->n ? lay->n : 1), sizeof *e);
    char(*names)[128] = fm_xcalloc((size_t)(lay->n ? lay->n : 1), sizeof *names);
    for (int i = 0; i < lay->n; i++) {
        const fm_tensor *t = &lay->t[i];
        fm_hf_name(names[i], t);
        e[i].name = names[i];
        e[i].dtype = FM_ST_F32;
        e[i].ndim = t->ndim;
        for (int d = 0; d < t->ndim; d++) e[i].shape[d] = t->shape[d];
        e[i].data = o && o->fetch ? NULL : params + t->offset;
    }
    fm_st_meta *all = fm_xcalloc((size_t)nmeta + 2, sizeof *all);
    char fp[32];
    snprintf(fp, sizeof fp, "%016" PRIx64, o && o->fetch ? o->fingerprint : fm_params_fingerprint(lay, params));
    all[0].key = "format";
    all[0].value = "pt";
    all[1].key = "finemask.fingerprint";
    all[1].value = fp;
    for (int i = 0; i < nmeta; i++) all[2 + i] = meta[i];
    int rc = o && o->fetch ? fm_st_write_fetch(path, e, lay->n, all, nmeta + 2, o->fetch, o->fetch_ctx)
                           : fm_st_write(path, e, lay->n, all, nmeta + 2);
    free(all);
    free(names);
    free(e);
    return rc;
}

int fm_save_tensors(const char *path, const fm_layout *lay, const float *params, const fm_st_meta *meta, int nmeta) {
    return save_tensors(path, lay, params, meta, nmeta, NULL);
}

int fm_save_tensors_fetch(const char *path, const fm_layout *lay, fm_st_fetch fetch, void *ctx,
                          uint64_t fingerprint) {
    fm_save_opts so = {.fetch = fetch, .fetch_ctx = ctx, .fingerprint = fingerprint};
    return save_tensors(path, lay, NULL, NULL, 0, &so);
}

static int copy_file(const char *from, const char *to) {
    struct stat a, b;
    if (stat(from, &a) == 0 && stat(to, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino) return FM_OK;
    char *data;
    size_t len;
    if (fm_read_file(from, &data, &len) != FM_OK) return FM_ERR;
    int rc = fm_write_file_atomic(to, data, len);
    free(data);
    return rc;
}

int fm_modeldir_save(const char *dir, const fm_config *c, const fm_layout *lay, const float *params,
                     const fm_save_opts *o) {
    if (fm_mkdirs(dir) != FM_OK) return FM_ERR;
    char *cpath = fm_path_join(dir, FM_MODEL_CONFIG), *wpath = fm_path_join(dir, FM_MODEL_WEIGHTS);
    int rc = save_tensors(wpath, lay, params, o ? o->meta : NULL, o ? o->nmeta : 0, o);
    if (rc == FM_OK) rc = fm_hfconfig_write(cpath, c, o ? o->extra : NULL);
    if (rc == FM_OK && o && o->vocab) {
        char *vpath = fm_path_join(dir, FM_MODEL_VOCAB);
        rc = copy_file(o->vocab, vpath);
        free(vpath);
    }
    static const char *const tokfiles[] = {"tokenizer.json", "tokenizer_config.json"};
    for (int k = 0; rc == FM_OK && o && o->tokenizer_from && k < 2; k++) {
        char *from = fm_path_join(o->tokenizer_from, tokfiles[k]), *to = fm_path_join(dir, tokfiles[k]);
        if (fm_file_exists(from)) rc = copy_file(from, to);
        free(from);
        free(to);
    }
    free(cpath);
    free(wpath);
    return rc;
}
