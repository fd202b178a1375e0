/* maskfile.c: mask files (see maskfile.h). */
#include "maskfile.h"

#include <errno.h>
#include <inttypes.h>
#include <isa-l/crc.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "fm.h"
#include "modeldir.h"

/* Keys the format itself writes; fm_maskfile_meta_set refuses them. */
static const char *const reserved_keys[] = {"format", "version", "tensors", "model_fingerprint", "task",
                                            "mode",   "ste",     "seed",    "init_sparsity"};
#define NRESERVED ((int)(sizeof reserved_keys / sizeof reserved_keys[0]))

static int is_reserved(const char *key) {
    for (int i = 0; i < NRESERVED; i++)
        if (strcmp(key, reserved_keys[i]) == 0) return 1;
    return 0;
}

static int starts_with(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

void fm_maskfile_meta_init(fm_maskfile_meta *meta) {
    memset(meta, 0, sizeof *meta);
    meta->init_sparsity = NAN;
}

void fm_maskfile_meta_free(fm_maskfile_meta *meta) {
    for (int i = 0; i < meta->nextra; i++) {
        free(meta->extra[i].key);
        free(meta->extra[i].value);
    }
    free(meta->extra);
    free(meta->path);
    fm_maskfile_meta_init(meta);
}

int fm_maskfile_meta_set(fm_maskfile_meta *meta, const char *key, const char *value) {
    if (is_reserved(key)) return fm_fail("mask metadata: key '%s' is reserved by the mask file format", key);
    for (int i = 0; i < meta->nextra; i++) {
        if (strcmp(meta->extra[i].key, key) == 0) {
            free(meta->extra[i].value);
            meta->extra[i].value = fm_xstrdup(value);
            return FM_OK;
        }
    }
    meta->extra = fm_xrealloc(meta->extra, sizeof *meta->extra * (size_t)(meta->nextra + 1));
    meta->extra[meta->nextra].key = fm_xstrdup(key);
    meta->extra[meta->nextra].value = fm_xstrdup(value);
    meta->nextra++;
    return FM_OK;
}

const char *fm_maskfile_meta_get(const fm_maskfile_meta *meta, const char *key) {
    for (int i = 0; i < meta->nextra; i++)
        if (strcmp(meta->extra[i].key, key) == 0) return meta->extra[i].value;
    return NULL;
}

uint32_t fm_crc32c(const void *data, size_t n) {
    /* ISA-L's crc32_iscsi neither inverts the seed nor the result: seeding
     * with all ones and inverting at the end gives the standard CRC-32C. Its
     * length is an int, so long buffers go in pieces. */
    const unsigned char *p = data;
    unsigned int crc = 0xffffffffu;
    const int clmul = fm_cpu_has_pclmul(); /* ISA-L's fast code needs PCLMULQDQ */
    while (n > 0) {
        int len = n > (size_t)(1 << 30) ? (1 << 30) : (int)n;
        crc = clmul ? crc32_iscsi((unsigned char *)p, len, crc) : crc32_iscsi_base((unsigned char *)p, len, crc);
        p += len;
        n -= (size_t)len;
    }
    return ~crc;
}

void fm_mask_hf_name(char out[128], const char *name) {
    int head = starts_with(name, "classifier.") || starts_with(name, "cls.");
    snprintf(out, 128, "%s%s", head ? "" : "bert.", name);
}

/* Entries kept in t (popcount of its packed bytes), without touching t. */
static size_t count_ones(const fm_mask_tensor *t) {
    fm_mask_tensor c = *t;
    return fm_mask_count(&c);
}

static size_t packed_bytes(size_t numel) { return (numel + 7) / 8; }

/* "[768, 3072]" for a mask tensor. */
static char *mshape(char *buf, size_t n, const fm_mask_tensor *t) { return fm_st_shape_str(buf, n, t->ndim, t->shape); }

int fm_maskfile_write(const char *path, const fm_mask *m, const fm_maskfile_meta *meta, const fm_layout *lay,
                      const float *head_params) {
    const fm_tensor *hw = NULL, *hb = NULL;
    if (head_params) {
        if (!lay) return fm_fail("%s: a task head needs the model's layout (internal error)", path);
        hw = fm_layout_find(lay, "classifier.weight");
        hb = fm_layout_find(lay, "classifier.bias");
        if (!hw || !hb) return fm_fail("%s: the model has no task head (classifier.*) to store", path);
    }
    /* Check every mask tensor before anything is written. */
    for (int k = 0; k < m->n; k++) {
        const fm_mask_tensor *t = &m->t[k];
        char s1[64], s2[64];
        if (starts_with(t->name, "classifier."))
            return fm_fail("%s: tensor '%s': the task head cannot be masked (it trains and travels beside the mask)",
                           path, t->name);
        if (t->ndim < 1 || t->ndim > 2 || t->shape[0] < 0 || (t->ndim == 2 && t->shape[1] < 0) ||
            (size_t)t->shape[0] * (size_t)(t->ndim == 2 ? t->shape[1] : 1) != t->numel)
            return fm_fail("%s: tensor '%s': shape %s does not hold %zu entries", path, t->name,
                           mshape(s1, sizeof s1, t), t->numel);
        if (lay) {
            const fm_tensor *lt = fm_layout_find(lay, t->name);
            if (!lt) return fm_fail("%s: tensor '%s': the model has no such tensor", path, t->name);
            if (lt->ndim != t->ndim || lt->shape[0] != t->shape[0] || (t->ndim == 2 && lt->shape[1] != t->shape[1]))
                return fm_fail("%s: tensor '%s': mask shape %s, but the model's tensor is %s", path, t->name,
                               mshape(s1, sizeof s1, t), fm_st_shape_str(s2, sizeof s2, lt->ndim, lt->shape));
        }
        if (fm_mask_stray_bits(t))
            return fm_fail("%s: tensor '%s': bits are set past its %zu entries (a malformed mask)", path, t->name,
                           t->numel);
        for (int j = 0; j < k; j++)
            if (strcmp(m->t[j].name, t->name) == 0)
                return fm_fail("%s: tensor '%s' appears twice in the mask", path, t->name);
    }

    const int nt = m->n + (head_params ? 2 : 0);
    fm_st_entry *e = fm_xcalloc((size_t)(nt ? nt : 1), sizeof *e);
    char(*names)[128] = fm_xcalloc((size_t)(m->n ? m->n : 1), sizeof *names);
    json_t *desc = json_object();
    for (int k = 0; k < m->n; k++) {
        const fm_mask_tensor *t = &m->t[k];
        size_t nb = packed_bytes(t->numel);
        fm_mask_hf_name(names[k], t->name);
        e[k].name = names[k];
        e[k].dtype = FM_ST_U8;
        e[k].ndim = 1;
        e[k].shape[0] = (int64_t)nb;
        e[k].data = t->bits;
        json_t *d = json_object(), *shape = json_array();
        for (int i = 0; i < t->ndim; i++) json_array_append_new(shape, json_integer(t->shape[i]));
        json_object_set_new(d, "shape", shape);
        json_object_set_new(d, "ones", json_integer((json_int_t)count_ones(t)));
        char crc[16];
        snprintf(crc, sizeof crc, "%08" PRIx32, fm_crc32c(t->bits, nb));
        json_object_set_new(d, "crc32c", json_string(crc));
        json_object_set_new(desc, names[k], d);
    }
    if (head_params) {
        fm_st_entry *w = &e[m->n], *b = &e[m->n + 1];
        w->name = "classifier.weight";
        w->dtype = FM_ST_F32;
        w->ndim = 2;
        w->shape[0] = hw->shape[0];
        w->shape[1] = hw->shape[1];
        w->data = head_params + hw->offset;
        b->name = "classifier.bias";
        b->dtype = FM_ST_F32;
        b->ndim = 1;
        b->shape[0] = hb->shape[0];
        b->data = head_params + hb->offset;
    }
    char *tensors = json_dumps(desc, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(desc);
    if (!tensors) fm_fail("%s: out of memory building the metadata", path);

    char fp[32], seed[32], isp[40];
    snprintf(fp, sizeof fp, "%016" PRIx64, meta->model_fingerprint);
    snprintf(seed, sizeof seed, "%" PRIu64, meta->seed);
    if (isnan(meta->init_sparsity))
        snprintf(isp, sizeof isp, "nan");
    else
        snprintf(isp, sizeof isp, "%.17g", meta->init_sparsity);
    fm_st_meta *md = fm_xcalloc((size_t)(NRESERVED + meta->nextra), sizeof *md);
    int nmd = 0;
    md[nmd++] = (fm_st_meta){"format", FM_MASKFILE_FORMAT};
    md[nmd++] = (fm_st_meta){"version", FM_MASKFILE_VERSION};
    md[nmd++] = (fm_st_meta){"tensors", tensors};
    md[nmd++] = (fm_st_meta){"model_fingerprint", fp};
    md[nmd++] = (fm_st_meta){"task", (char *)meta->task};
    md[nmd++] = (fm_st_meta){"mode", (char *)meta->mode};
    md[nmd++] = (fm_st_meta){"ste", (char *)meta->ste};
    md[nmd++] = (fm_st_meta){"seed", seed};
    md[nmd++] = (fm_st_meta){"init_sparsity", isp};
    for (int i = 0; i < meta->nextra; i++) md[nmd++] = meta->extra[i];
    int rc = tensors ? fm_st_write(path, e, nt, md, nmd) : FM_ERR;
    free(md);
    free(tensors);
    free(names);
    free(e);
    return rc;
}

/* Parse exactly `digits` hex digits of s into *out. */
static int parse_hex(const char *s, int digits, uint64_t *out) {
    if ((int)strlen(s) != digits) return FM_ERR;
    uint64_t v = 0;
    for (int i = 0; i < digits; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return FM_ERR;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return FM_OK;
}

/* Copy a metadata string into a fixed field; FM_ERR when it does not fit. */
static int copy_field(char *dst, size_t n, const fm_st_file *f, const char *key) {
    const char *v = fm_st_meta_get(f, key);
    if (!v) v = "";
    if (strlen(v) >= n)
        return fm_fail("%s: metadata '%s': expected at most %zu characters, found %zu", f->path, key, n - 1,
                       strlen(v));
    snprintf(dst, n, "%s", v);
    return FM_OK;
}

/* The job metadata of f into meta (path already set). */
static int read_meta(const fm_st_file *f, fm_maskfile_meta *meta) {
    const char *fmt = fm_st_meta_get(f, "format"), *ver = fm_st_meta_get(f, "version");
    if (!fmt || strcmp(fmt, FM_MASKFILE_FORMAT) != 0)
        return fm_fail("%s: metadata 'format': expected \"%s\", found %s%s%s (not a finemask mask file)", f->path,
                       FM_MASKFILE_FORMAT, fmt ? "\"" : "", fmt ? fmt : "nothing", fmt ? "\"" : "");
    if (!ver || strcmp(ver, FM_MASKFILE_VERSION) != 0)
        return fm_fail("%s: metadata 'version': expected \"%s\", found %s%s%s", f->path, FM_MASKFILE_VERSION,
                       ver ? "\"" : "", ver ? ver : "nothing", ver ? "\"" : "");
    const char *fp = fm_st_meta_get(f, "model_fingerprint");
    if (!fp || parse_hex(fp, 16, &meta->model_fingerprint) != FM_OK)
        return fm_fail("%s: metadata 'model_fingerprint': expected 16 hex digits, found %s%s%s", f->path,
                       fp ? "\"" : "", fp ? fp : "nothing", fp ? "\"" : "");
    if (copy_field(meta->task, sizeof meta->task, f, "task") != FM_OK ||
        copy_field(meta->mode, sizeof meta->mode, f, "mode") != FM_OK ||
        copy_field(meta->ste, sizeof meta->ste, f, "ste") != FM_OK)
        return FM_ERR;
    const char *seed = fm_st_meta_get(f, "seed");
    if (seed) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(seed, &end, 10);
        if (!*seed || *end || errno || seed[0] == '-')
            return fm_fail("%s: metadata 'seed': expected a decimal integer, found \"%s\"", f->path, seed);
        meta->seed = (uint64_t)v;
    }
    const char *isp = fm_st_meta_get(f, "init_sparsity");
    if (isp && strcmp(isp, "nan") != 0) {
        char *end;
        errno = 0;
        double v = strtod(isp, &end);
        if (!*isp || *end || errno || !(v >= 0 && v <= 1))
            return fm_fail("%s: metadata 'init_sparsity': expected \"nan\" or a number in [0, 1], found \"%s\"",
                           f->path, isp);
        meta->init_sparsity = v;
    }
    for (int i = 0; i < f->nmeta; i++)
        if (!is_reserved(f->meta[i].key)) fm_maskfile_meta_set(meta, f->meta[i].key, f->meta[i].value);
    return FM_OK;
}

/* Check one description of "tensors" against its U8 tensor and fill mt. */
static int read_tensor(const fm_st_file *f, const char *hfname, json_t *d, fm_mask_tensor *mt) {
    const char *p = f->path;
    if (!json_is_object(d))
        return fm_fail("%s: tensor '%s': its description in metadata 'tensors' is not a JSON object", p, hfname);
    const char *name = starts_with(hfname, "bert.") ? hfname + 5 : hfname;
    if (strlen(name) >= sizeof mt->name) return fm_fail("%s: tensor '%s': name too long", p, hfname);
    if (starts_with(name, "classifier."))
        return fm_fail("%s: tensor '%s': the task head cannot be a mask tensor", p, hfname);
    json_t *shape = json_object_get(d, "shape"), *ones = json_object_get(d, "ones"),
           *crc = json_object_get(d, "crc32c");
    if (!json_is_array(shape) || json_array_size(shape) < 1 || json_array_size(shape) > 2)
        return fm_fail("%s: tensor '%s': metadata 'shape': expected a list of 1 or 2 sizes", p, hfname);
    mt->ndim = (int)json_array_size(shape);
    size_t numel = 1;
    for (int i = 0; i < mt->ndim; i++) {
        json_t *s = json_array_get(shape, (size_t)i);
        if (!json_is_integer(s) || json_integer_value(s) < 0 || json_integer_value(s) > (json_int_t)1 << 40)
            return fm_fail("%s: tensor '%s': metadata 'shape': expected non-negative integer sizes", p, hfname);
        mt->shape[i] = json_integer_value(s);
        if (mt->shape[i] > 0 && numel > ((size_t)1 << 46) / (size_t)mt->shape[i])
            return fm_fail("%s: tensor '%s': metadata 'shape' is implausibly large", p, hfname);
        numel *= (size_t)mt->shape[i];
    }
    if (mt->ndim == 1) mt->shape[1] = 0;
    mt->numel = numel;
    if (!json_is_integer(ones) || json_integer_value(ones) < 0)
        return fm_fail("%s: tensor '%s': metadata 'ones': expected a non-negative integer", p, hfname);
    uint64_t want_crc;
    if (!json_is_string(crc) || parse_hex(json_string_value(crc), 8, &want_crc) != FM_OK)
        return fm_fail("%s: tensor '%s': metadata 'crc32c': expected 8 hex digits", p, hfname);
    snprintf(mt->name, sizeof mt->name, "%s", name);

    const fm_st_tensor *t = fm_st_find(f, hfname);
    if (!t) return fm_fail("%s: tensor '%s': described in metadata 'tensors' but missing from the file", p, hfname);
    char s1[64], s2[64];
    size_t nb = packed_bytes(numel);
    if (t->dtype != FM_ST_U8 || t->ndim != 1 || (uint64_t)t->shape[0] != nb)
        return fm_fail("%s: tensor '%s': expected U8 [%zu] (the packed bits of shape %s), found %s %s", p, hfname,
                       nb, fm_st_shape_str(s1, sizeof s1, mt->ndim, mt->shape), fm_st_dtype_name(t->dtype),
                       fm_st_shape_str(s2, sizeof s2, t->ndim, t->shape));
    uint32_t got_crc = fm_crc32c(t->data, nb);
    if (got_crc != (uint32_t)want_crc)
        return fm_fail("%s: tensor '%s': CRC-32C mismatch: metadata says %08" PRIx32 ", the bytes give %08" PRIx32
                       " (the file is corrupt)",
                       p, hfname, (uint32_t)want_crc, got_crc);
    mt->bits = fm_try_malloc(nb ? nb : 1);
    if (!mt->bits) return fm_fail_prefix("%s: tensor '%s': ", p, hfname);
    if (nb) memcpy(mt->bits, t->data, nb);
    if (fm_mask_stray_bits(mt))
        return fm_fail("%s: tensor '%s': bits are set past its %zu entries (shape %s)", p, hfname, numel,
                       fm_st_shape_str(s1, sizeof s1, mt->ndim, mt->shape));
    fm_mask_count(mt);
    if ((json_int_t)mt->ones != json_integer_value(ones))
        return fm_fail("%s: tensor '%s': metadata 'ones' says %lld kept entries, the bits hold %zu", p, hfname,
                       (long long)json_integer_value(ones), mt->ones);
    return FM_OK;
}

/* The task head of f (both or neither of classifier.weight / .bias, F32). */
static int read_head(const fm_st_file *f, fm_maskfile_meta *meta, float **head_w, float **head_b, int *num_labels) {
    const fm_st_tensor *w = fm_st_find(f, "classifier.weight"), *b = fm_st_find(f, "classifier.bias");
    char s1[64], s2[64];
    if (!w && !b) return FM_OK;
    if (!w || !b)
        return fm_fail("%s: tensor '%s': the task head needs both classifier.weight and classifier.bias", f->path,
                       w ? "classifier.bias" : "classifier.weight");
    if (w->dtype != FM_ST_F32 || w->ndim != 2 || w->shape[0] < 1 || w->shape[1] < 1 || w->shape[0] > 65536)
        return fm_fail("%s: tensor 'classifier.weight': expected F32 (num_labels, hidden), found %s %s", f->path,
                       fm_st_dtype_name(w->dtype), fm_st_shape_str(s1, sizeof s1, w->ndim, w->shape));
    if (b->dtype != FM_ST_F32 || b->ndim != 1 || b->shape[0] != w->shape[0])
        return fm_fail("%s: tensor 'classifier.bias': expected F32 [%lld], found %s %s", f->path,
                       (long long)w->shape[0], fm_st_dtype_name(b->dtype),
                       fm_st_shape_str(s2, sizeof s2, b->ndim, b->shape));
    if (w->shape[1] > INT_MAX) return fm_fail("%s: tensor 'classifier.weight': implausible width", f->path);
    meta->head_in = (int)w->shape[1];
    if (num_labels) *num_labels = (int)w->shape[0];
    if (head_w) {
        *head_w = fm_xmalloc(sizeof(float) * (size_t)w->numel);
        memcpy(*head_w, w->data, sizeof(float) * (size_t)w->numel);
    }
    if (head_b) {
        *head_b = fm_xmalloc(sizeof(float) * (size_t)b->numel);
        memcpy(*head_b, b->data, sizeof(float) * (size_t)b->numel);
    }
    return FM_OK;
}

/* Check the opened file f into m, meta, and the head (see fm_maskfile_read);
 * closes f. */
static int read_file(fm_st_file *f, const char *path, fm_mask *m, fm_maskfile_meta *meta, float **head_w,
                     float **head_b, int *num_labels) {
    meta->path = fm_xstrdup(path);
    json_t *desc = NULL;
    int rc = read_meta(f, meta);
    if (rc == FM_OK) {
        const char *s = fm_st_meta_get(f, "tensors");
        json_error_t err;
        if (!s) {
            rc = fm_fail("%s: metadata 'tensors' is missing", path);
        } else if (!(desc = json_loads(s, JSON_REJECT_DUPLICATES, &err)) || !json_is_object(desc)) {
            rc = fm_fail("%s: metadata 'tensors': expected a JSON object, found %s", path,
                         desc ? "another JSON value" : err.text);
        }
    }
    /* Every tensor of the file is either described or the head. */
    for (int i = 0; rc == FM_OK && i < f->n; i++) {
        const char *n = f->t[i].name;
        if (strcmp(n, "classifier.weight") == 0 || strcmp(n, "classifier.bias") == 0) continue;
        if (!json_object_get(desc, n))
            rc = fm_fail("%s: tensor '%s' (%s) is not described in metadata 'tensors'", path, n,
                         fm_st_dtype_name(f->t[i].dtype));
    }
    if (rc == FM_OK) {
        m->t = fm_xcalloc(json_object_size(desc) ? json_object_size(desc) : 1, sizeof *m->t);
        const char *key;
        json_t *d;
        json_object_foreach(desc, key, d) {
            fm_mask_tensor *mt = &m->t[m->n++];
            rc = read_tensor(f, key, d, mt);
            if (rc == FM_OK && fm_mask_find(m, mt->name) != mt)
                rc = fm_fail("%s: tensor '%s' is stored twice (with and without \"bert.\")", path, key);
            if (rc != FM_OK) break;
        }
    }
    if (rc == FM_OK) rc = read_head(f, meta, head_w, head_b, num_labels);
    json_decref(desc);
    fm_st_close(f);
    if (rc != FM_OK) {
        fm_mask_free(m);
        fm_maskfile_meta_free(meta);
        if (head_w) {
            free(*head_w);
            *head_w = NULL;
        }
        if (head_b) {
            free(*head_b);
            *head_b = NULL;
        }
        if (num_labels) *num_labels = 0;
    }
    return rc;
}

static void read_init(fm_mask *m, fm_maskfile_meta *meta, float **head_w, float **head_b, int *num_labels) {
    memset(m, 0, sizeof *m);
    fm_maskfile_meta_init(meta);
    if (head_w) *head_w = NULL;
    if (head_b) *head_b = NULL;
    if (num_labels) *num_labels = 0;
}

int fm_maskfile_read(const char *path, fm_mask *m, fm_maskfile_meta *meta, float **head_w, float **head_b,
                     int *num_labels) {
    read_init(m, meta, head_w, head_b, num_labels);
    fm_st_file f;
    if (fm_st_open(&f, path) != FM_OK) return FM_ERR;
    return read_file(&f, path, m, meta, head_w, head_b, num_labels);
}

int fm_maskfile_parse(const void *buf, size_t len, const char *name, fm_mask *m, fm_maskfile_meta *meta,
                      float **head_w, float **head_b, int *num_labels) {
    read_init(m, meta, head_w, head_b, num_labels);
    fm_st_file f;
    if (fm_st_parse(&f, buf, len, name) != FM_OK) return FM_ERR;
    return read_file(&f, name, m, meta, head_w, head_b, num_labels);
}

int fm_maskfile_check_model(const fm_maskfile_meta *meta, uint64_t fingerprint, const fm_layout *lay,
                            const fm_mask *m) {
    const char *p = meta->path ? meta->path : "mask";
    if (meta->model_fingerprint != fingerprint)
        return fm_fail("%s: the mask was trained over a model with fingerprint %016" PRIx64
                       ", but this model's is %016" PRIx64 " (a different pre-trained model)",
                       p, meta->model_fingerprint, fingerprint);
    for (int k = 0; k < m->n; k++) {
        const fm_mask_tensor *t = &m->t[k];
        const fm_tensor *lt = fm_layout_find(lay, t->name);
        char s1[64], s2[64];
        if (!lt) return fm_fail("%s: tensor '%s': the model has no such tensor", p, t->name);
        if (lt->ndim != t->ndim || lt->shape[0] != t->shape[0] || (t->ndim == 2 && lt->shape[1] != t->shape[1]))
            return fm_fail("%s: tensor '%s': mask shape %s, but the model's tensor is %s", p, t->name,
                           mshape(s1, sizeof s1, t), fm_st_shape_str(s2, sizeof s2, lt->ndim, lt->shape));
        if (lt->flags & FM_T_HEAD) return fm_fail("%s: tensor '%s': the task head cannot be masked", p, t->name);
    }
    if (meta->head_in) {
        const fm_tensor *ln = fm_layout_find(lay, "embeddings.LayerNorm.weight");
        if (ln && (size_t)meta->head_in != ln->numel)
            return fm_fail("%s: tensor 'classifier.weight': expected width %zu (the model's hidden size), found %d",
                           p, ln->numel, meta->head_in);
    }
    return FM_OK;
}

int fm_maskfile_load_model(const char *model_dir, const char *mask_path, fm_model *model, fm_mask *mask,
                           fm_maskfile_meta *meta) {
    fm_mask lm;
    fm_maskfile_meta lmeta;
    float *hw = NULL, *hb = NULL;
    int nl = 0;
    memset(model, 0, sizeof *model);
    if (fm_maskfile_read(mask_path, &lm, &lmeta, &hw, &hb, &nl) != FM_OK) return FM_ERR;
    fm_load_opts o;
    fm_load_opts_default(&o);
    if (nl > 0) o.num_labels = nl;
    int rc = fm_modeldir_load(model_dir, &o, model, NULL);
    int loaded = rc == FM_OK;
    if (rc == FM_OK)
        rc = fm_maskfile_check_model(&lmeta, fm_params_fingerprint(&model->lay, model->params), &model->lay, &lm);
    if (rc == FM_OK) {
        fm_mask_apply(&lm, &model->lay, model->params);
        if (nl > 0) {
            const fm_tensor *w = fm_layout_find(&model->lay, "classifier.weight"),
                            *b = fm_layout_find(&model->lay, "classifier.bias");
            /* The load asked for nl labels, so the head is there and of this size. */
            memcpy(model->params + w->offset, hw, sizeof(float) * w->numel);
            memcpy(model->params + b->offset, hb, sizeof(float) * b->numel);
        }
    }
    free(hw);
    free(hb);
    if (rc != FM_OK) {
        if (loaded) fm_model_free(model);
        memset(model, 0, sizeof *model);
        fm_mask_free(&lm);
        fm_maskfile_meta_free(&lmeta);
        return FM_ERR;
    }
    if (mask)
        *mask = lm;
    else
        fm_mask_free(&lm);
    if (meta)
        *meta = lmeta;
    else
        fm_maskfile_meta_free(&lmeta);
    return FM_OK;
}
