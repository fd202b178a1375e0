/* safetensors.c: the safetensors reader and writer (see safetensors.h). */
#include "safetensors.h"

#include <float.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fm.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data is little-endian; this code assumes the host is too");
_Static_assert(sizeof(float) == 4 && sizeof(double) == 8, "IEEE single and double expected");

static const struct {
    const char *name;
    size_t size;
} dtypes[FM_ST_NDTYPES] = {
    [FM_ST_BOOL] = {"BOOL", 1},       [FM_ST_U8] = {"U8", 1},     [FM_ST_I8] = {"I8", 1},
    [FM_ST_F8_E5M2] = {"F8_E5M2", 1}, [FM_ST_F8_E4M3] = {"F8_E4M3", 1}, [FM_ST_I16] = {"I16", 2},
    [FM_ST_U16] = {"U16", 2},         [FM_ST_F16] = {"F16", 2},   [FM_ST_BF16] = {"BF16", 2},
    [FM_ST_I32] = {"I32", 4},         [FM_ST_U32] = {"U32", 4},   [FM_ST_F32] = {"F32", 4},
    [FM_ST_F64] = {"F64", 8},         [FM_ST_I64] = {"I64", 8},   [FM_ST_U64] = {"U64", 8},
};

const char *fm_st_dtype_name(fm_st_dtype d) { return (unsigned)d < FM_ST_NDTYPES ? dtypes[d].name : "?"; }

size_t fm_st_dtype_size(fm_st_dtype d) { return (unsigned)d < FM_ST_NDTYPES ? dtypes[d].size : 0; }

int fm_st_dtype_parse(const char *s, fm_st_dtype *d) {
    for (int i = 0; i < FM_ST_NDTYPES; i++) {
        if (strcmp(s, dtypes[i].name) == 0) {
            *d = (fm_st_dtype)i;
            return FM_OK;
        }
    }
    return FM_ERR;
}

int fm_st_dtype_is_float(fm_st_dtype d) { return d == FM_ST_F32 || d == FM_ST_F16 || d == FM_ST_BF16 || d == FM_ST_F64; }

/* ---- scalar conversions ---- */

static uint32_t f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float u2f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float fm_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    if (exp == 0) {
        /* zero or subnormal: mant * 2^-24, exact in single precision */
        return u2f(sign | f2u((float)mant * 0x1p-24f));
    }
    if (exp == 31) return u2f(sign | 0x7f800000u | (mant << 13));
    return u2f(sign | ((exp + 112u) << 23) | (mant << 13));
}

float fm_bf16_to_f32(uint16_t b) { return u2f((uint32_t)b << 16); }

uint16_t fm_f32_to_f16(float f) {
    uint32_t x = f2u(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu)); /* NaN, quiet */
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520 rounds to infinity */
    if (ax >= 0x38800000u) {                                   /* normal half: >= 2^-14 */
        uint32_t h = ((ax >> 23) - 112u) << 10 | ((ax & 0x7fffffu) >> 13);
        uint32_t rem = ax & 0x1fffu;
        if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++; /* a carry moves into the exponent */
        return (uint16_t)(sign | h);
    }
    if (ax <= 0x33000000u) return sign; /* <= 2^-25: rounds (ties to even) to zero */
    /* subnormal half: value = m * 2^(e-150), in units of 2^-24 that is m >> (126 - e) */
    uint32_t e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u;
    uint32_t s = 126u - e; /* 14..24 */
    uint32_t h = m >> s, rem = m & ((1u << s) - 1u), half = 1u << (s - 1u);
    if (rem > half || (rem == half && (h & 1u))) h++;
    return (uint16_t)(sign | h);
}

uint16_t fm_f32_to_bf16(float f) {
    uint32_t x = f2u(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u); /* NaN, quiet */
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

static float f64_to_f32(double d) {
    if (isnan(d)) return (float)d;
    if (d > FLT_MAX) return d < 0x1.ffffffp127 ? FLT_MAX : INFINITY;
    if (d < -FLT_MAX) return d > -0x1.ffffffp127 ? -FLT_MAX : -INFINITY;
    return (float)d;
}

/* ---- reader ---- */

static const char *json_kind(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "real number";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    case JSON_NULL: return "null";
    }
    return "value";
}

char *fm_st_shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t k = 0;
    if (n == 0) return buf;
    buf[0] = '\0';
    k += (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%" PRId64, i ? ", " : "", shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

void fm_st_close(fm_st_file *f) {
    for (int i = 0; i < f->n; i++) free(f->t[i].name);
    free(f->t);
    for (int i = 0; i < f->nmeta; i++) {
        free(f->meta[i].key);
        free(f->meta[i].value);
    }
    free(f->meta);
    free(f->path);
    fm_mmap_close(&f->map);
    memset(f, 0, sizeof *f);
}

/* Parse one tensor entry (name -> v) into t. */
static int parse_entry(const char *path, const char *name, json_t *v, uint64_t data_len, fm_st_tensor *t) {
    if (!json_is_object(v))
        return fm_fail("%s: tensor '%s': entry is a JSON %s, expected an object with dtype, shape and data_offsets",
                       path, name, json_kind(v));
    json_t *dt = json_object_get(v, "dtype"), *sh = json_object_get(v, "shape"),
           *off = json_object_get(v, "data_offsets");
    if (!dt) return fm_fail("%s: tensor '%s': no \"dtype\"", path, name);
    if (!json_is_string(dt))
        return fm_fail("%s: tensor '%s': dtype is a JSON %s, expected a string", path, name, json_kind(dt));
    if (fm_st_dtype_parse(json_string_value(dt), &t->dtype) != FM_OK)
        return fm_fail("%s: tensor '%s': unknown dtype '%s' (expected F64, F32, F16, BF16, I64, I32, I16, I8, U64, "
                       "U32, U16, U8, BOOL, F8_E5M2 or F8_E4M3)",
                       path, name, json_string_value(dt));
    if (!sh) return fm_fail("%s: tensor '%s': no \"shape\"", path, name);
    if (!json_is_array(sh))
        return fm_fail("%s: tensor '%s': shape is a JSON %s, expected a list of non-negative integers", path, name,
                       json_kind(sh));
    size_t nd = json_array_size(sh);
    if (nd > FM_ST_MAX_NDIM)
        return fm_fail("%s: tensor '%s': shape has %zu dimensions, at most %d are supported", path, name, nd,
                       FM_ST_MAX_NDIM);
    t->ndim = (int)nd;
    uint64_t numel = 1;
    int overflow = 0;
    for (size_t i = 0; i < nd; i++) {
        json_t *d = json_array_get(sh, i);
        if (!json_is_integer(d))
            return fm_fail("%s: tensor '%s': shape[%zu] is a JSON %s, expected a non-negative integer", path, name, i,
                           json_kind(d));
        json_int_t x = json_integer_value(d);
        if (x < 0)
            return fm_fail("%s: tensor '%s': shape[%zu] is %lld, expected a non-negative integer", path, name, i,
                           (long long)x);
        t->shape[i] = (int64_t)x;
        if (__builtin_mul_overflow(numel, (uint64_t)x, &numel)) overflow = 1;
    }
    t->numel = numel;
    if (!off) return fm_fail("%s: tensor '%s': no \"data_offsets\"", path, name);
    if (!json_is_array(off) || json_array_size(off) != 2)
        return fm_fail("%s: tensor '%s': data_offsets must be a list [begin, end], found a JSON %s%s", path, name,
                       json_kind(off), json_is_array(off) ? " of another length" : "");
    json_int_t be[2];
    for (int i = 0; i < 2; i++) {
        json_t *d = json_array_get(off, (size_t)i);
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return fm_fail("%s: tensor '%s': data_offsets[%d] must be a non-negative integer, found a JSON %s", path,
                           name, i, json_kind(d));
        be[i] = json_integer_value(d);
    }
    if (be[0] > be[1])
        return fm_fail("%s: tensor '%s': data_offsets [%lld, %lld] has begin > end", path, name, (long long)be[0],
                       (long long)be[1]);
    t->begin = (uint64_t)be[0];
    t->end = (uint64_t)be[1];
    uint64_t bytes;
    char sbuf[256];
    if (overflow || __builtin_mul_overflow(numel, (uint64_t)fm_st_dtype_size(t->dtype), &bytes))
        return fm_fail("%s: tensor '%s': shape %s is too large", path, name,
                       fm_st_shape_str(sbuf, sizeof sbuf, t->ndim, t->shape));
    if (t->end - t->begin != bytes)
        return fm_fail("%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] hold %" PRIu64
                       " bytes, but %s %s needs %" PRIu64,
                       path, name, t->begin, t->end, t->end - t->begin, fm_st_dtype_name(t->dtype),
                       fm_st_shape_str(sbuf, sizeof sbuf, t->ndim, t->shape), bytes);
    if (t->end > data_len)
        return fm_fail("%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                       "] run past the end of the data section (%" PRIu64 " bytes)",
                       path, name, t->begin, t->end, data_len);
    return FM_OK;
}

static int parse_metadata(fm_st_file *f, json_t *m) {
    if (!json_is_object(m))
        return fm_fail("%s: __metadata__ is a JSON %s, expected an object of strings", f->path, json_kind(m));
    size_t nm = json_object_size(m);
    f->meta = fm_xcalloc(nm ? nm : 1, sizeof *f->meta);
    const char *k;
    json_t *v;
    json_object_foreach(m, k, v) {
        if (!json_is_string(v))
            return fm_fail("%s: __metadata__ entry '%s' is a JSON %s, expected a string", f->path, k, json_kind(v));
        f->meta[f->nmeta].key = fm_xstrdup(k);
        f->meta[f->nmeta].value = fm_xstrdup(json_string_value(v));
        f->nmeta++;
    }
    return FM_OK;
}

static int by_offset(const void *a, const void *b) {
    const fm_st_tensor *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int parse_header(fm_st_file *f, const unsigned char *buf, size_t len) {
    if (len < 8)
        return fm_fail("%s: file is %zu bytes, too short for the 8-byte header length of a safetensors file", f->path,
                       len);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | buf[i];
    if (n > FM_ST_MAX_HEADER)
        return fm_fail("%s: header length %" PRIu64 " exceeds the limit of %llu bytes (not a safetensors file?)",
                       f->path, n, FM_ST_MAX_HEADER);
    if (n > len - 8)
        return fm_fail("%s: header length %" PRIu64 " runs past the end of the file (%zu bytes)", f->path, n, len);
    f->header_len = n;
    f->data = buf + 8 + n;
    f->data_len = len - 8 - n;

    json_error_t err;
    json_t *root = json_loadb((const char *)buf + 8, (size_t)n, JSON_REJECT_DUPLICATES, &err);
    if (!root)
        return fm_fail("%s: header is not valid JSON: %s (header line %d, column %d)", f->path, err.text, err.line,
                       err.column);
    int rc = FM_OK;
    if (!json_is_object(root)) {
        rc = fm_fail("%s: header is a JSON %s, expected an object", f->path, json_kind(root));
        goto done;
    }
    size_t cap = json_object_size(root);
    f->t = fm_xcalloc(cap ? cap : 1, sizeof *f->t);
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "__metadata__") == 0) {
            if ((rc = parse_metadata(f, v)) != FM_OK) goto done;
            continue;
        }
        fm_st_tensor *t = &f->t[f->n];
        memset(t, 0, sizeof *t);
        if ((rc = parse_entry(f->path, key, v, f->data_len, t)) != FM_OK) goto done;
        t->name = fm_xstrdup(key);
        t->data = f->data + t->begin;
        f->n++;
    }
    /* Every byte of the data section belongs to exactly one tensor. */
    qsort(f->t, (size_t)f->n, sizeof *f->t, by_offset);
    uint64_t pos = 0;
    for (int i = 0; i < f->n; i++) {
        const fm_st_tensor *t = &f->t[i];
        if (t->begin < pos) {
            rc = fm_fail("%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] overlap tensor '%s' (ends at %" PRIu64
                         ")",
                         f->path, t->name, t->begin, t->end, f->t[i - 1].name, pos);
            goto done;
        }
        if (t->begin > pos) {
            rc = fm_fail("%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] leave a hole of %" PRIu64
                         " unused bytes after %s%s%s (tensors must cover the data section without gaps)",
                         f->path, t->name, t->begin, t->end, t->begin - pos, i ? "tensor '" : "the start",
                         i ? f->t[i - 1].name : "", i ? "'" : "");
            goto done;
        }
        pos = t->end;
    }
    if (pos != f->data_len) {
        if (f->n)
            rc = fm_fail("%s: %" PRIu64 " unused bytes at the end of the data section after the last tensor '%s' "
                         "(tensors must cover the data section without gaps)",
                         f->path, f->data_len - pos, f->t[f->n - 1].name);
        else
            rc = fm_fail("%s: %" PRIu64 " bytes of data but no tensors in the header", f->path, f->data_len);
        goto done;
    }
done:
    json_decref(root);
    return rc;
}

int fm_st_parse(fm_st_file *f, const void *buf, size_t len, const char *name) {
    memset(f, 0, sizeof *f);
    f->path = fm_xstrdup(name);
    if (parse_header(f, buf, len) != FM_OK) {
        fm_st_close(f);
        return FM_ERR;
    }
    return FM_OK;
}

int fm_st_open(fm_st_file *f, const char *path) {
    fm_mmap map;
    memset(f, 0, sizeof *f);
    if (fm_mmap_open(&map, path) != FM_OK) return FM_ERR;
    if (fm_st_parse(f, map.data, map.len, path) != FM_OK) {
        fm_mmap_close(&map);
        return FM_ERR;
    }
    f->map = map;
    return FM_OK;
}

const fm_st_tensor *fm_st_find(const fm_st_file *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->t[i].name, name) == 0) return &f->t[i];
    return NULL;
}

const char *fm_st_meta_get(const fm_st_file *f, const char *key) {
    for (int i = 0; i < f->nmeta; i++)
        if (strcmp(f->meta[i].key, key) == 0) return f->meta[i].value;
    return NULL;
}

int fm_st_to_float(const fm_st_file *f, const fm_st_tensor *t, float *out) {
    const unsigned char *p = t->data;
    uint64_t n = t->numel;
    switch (t->dtype) {
    case FM_ST_F32:
        if (n) memcpy(out, p, n * 4);
        return FM_OK;
    case FM_ST_F16:
        for (uint64_t i = 0; i < n; i++) out[i] = fm_f16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        return FM_OK;
    case FM_ST_BF16:
        for (uint64_t i = 0; i < n; i++) out[i] = fm_bf16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        return FM_OK;
    case FM_ST_F64:
        for (uint64_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, p + 8 * i, 8);
            out[i] = f64_to_f32(d);
        }
        return FM_OK;
    default:
        return fm_fail("%s: tensor '%s': dtype %s cannot be converted to float (expected F32, F16, BF16 or F64)",
                       f->path ? f->path : "?", t->name, fm_st_dtype_name(t->dtype));
    }
}

/* ---- writer ---- */

/* The padded header text (without the length prefix) and the data size. */
static int build_header(const fm_st_entry *t, int n, const fm_st_meta *meta, int nmeta, char **text, size_t *hlen,
                        uint64_t *data_len, const char *path) {
    json_t *root = json_object();
    int rc = FM_OK;
    if (nmeta > 0) {
        json_t *m = json_object();
        for (int i = 0; i < nmeta && rc == FM_OK; i++) {
            if (json_object_get(m, meta[i].key)) {
                rc = fm_fail("%s: metadata key '%s' is used twice", path, meta[i].key);
                break;
            }
            json_t *v = json_string(meta[i].value);
            if (!v || json_object_set_new(m, meta[i].key, v) != 0)
                rc = fm_fail("%s: metadata key '%s': key or value is not valid UTF-8", path, meta[i].key);
        }
        json_object_set_new(root, "__metadata__", m);
    }
    uint64_t pos = 0;
    for (int i = 0; i < n && rc == FM_OK; i++) {
        const fm_st_entry *e = &t[i];
        if ((unsigned)e->dtype >= FM_ST_NDTYPES) {
            rc = fm_fail("%s: tensor '%s': invalid dtype %d", path, e->name, (int)e->dtype);
            break;
        }
        if (strcmp(e->name, "__metadata__") == 0 || json_object_get(root, e->name)) {
            rc = fm_fail("%s: tensor '%s': name is %s", path, e->name,
                         strcmp(e->name, "__metadata__") == 0 ? "reserved" : "used twice");
            break;
        }
        if (e->ndim < 0 || e->ndim > FM_ST_MAX_NDIM) {
            rc = fm_fail("%s: tensor '%s': %d dimensions (0..%d supported)", path, e->name, e->ndim, FM_ST_MAX_NDIM);
            break;
        }
        uint64_t numel = 1;
        json_t *shape = json_array();
        for (int d = 0; d < e->ndim; d++) {
            if (e->shape[d] < 0 || __builtin_mul_overflow(numel, (uint64_t)e->shape[d], &numel)) {
                rc = fm_fail("%s: tensor '%s': invalid shape", path, e->name);
                break;
            }
            json_array_append_new(shape, json_integer((json_int_t)e->shape[d]));
        }
        uint64_t bytes = 0;
        if (rc == FM_OK && (__builtin_mul_overflow(numel, (uint64_t)fm_st_dtype_size(e->dtype), &bytes) ||
                            bytes > (uint64_t)INT64_MAX - pos))
            rc = fm_fail("%s: tensor '%s': too large", path, e->name);
        if (rc != FM_OK) {
            json_decref(shape);
            break;
        }
        json_t *o = json_object();
        json_object_set_new(o, "dtype", json_string(fm_st_dtype_name(e->dtype)));
        json_object_set_new(o, "shape", shape);
        json_t *off = json_array();
        json_array_append_new(off, json_integer((json_int_t)pos));
        json_array_append_new(off, json_integer((json_int_t)(pos + bytes)));
        json_object_set_new(o, "data_offsets", off);
        if (json_object_set_new(root, e->name, o) != 0) {
            rc = fm_fail("%s: tensor '%s': name is not valid UTF-8", path, e->name);
            break;
        }
        pos += bytes;
    }
    if (rc == FM_OK) {
        char *s = json_dumps(root, JSON_COMPACT);
        if (!s) {
            rc = fm_fail("%s: cannot encode the header (tensor names must be UTF-8)", path);
        } else {
            size_t l = strlen(s), padded = (l + 7) & ~(size_t)7;
            *text = fm_xmalloc(padded + 1);
            memcpy(*text, s, l);
            memset(*text + l, ' ', padded - l);
            (*text)[padded] = '\0';
            *hlen = padded;
            *data_len = pos;
            free(s);
        }
    }
    json_decref(root);
    return rc;
}

static size_t entry_bytes(const fm_st_entry *e) {
    size_t numel = 1;
    for (int d = 0; d < e->ndim; d++) numel *= (size_t)e->shape[d];
    return numel * fm_st_dtype_size(e->dtype);
}

static const void *own_data(void *ctx, int i) { return ((const fm_st_entry *)ctx)[i].data; }

int fm_st_write(const char *path, const fm_st_entry *t, int n, const fm_st_meta *meta, int nmeta) {
    return fm_st_write_fetch(path, t, n, meta, nmeta, own_data, (void *)t);
}

int fm_st_write_fetch(const char *path, const fm_st_entry *t, int n, const fm_st_meta *meta, int nmeta,
                      fm_st_fetch fetch, void *ctx) {
    char *text;
    size_t hlen;
    uint64_t dlen;
    if (build_header(t, n, meta, nmeta, &text, &hlen, &dlen, path) != FM_OK) return FM_ERR;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    fm_atomic_file f;
    if (fm_atomic_open(&f, path) != FM_OK) {
        free(text);
        return FM_ERR;
    }
    int rc = fm_atomic_write(&f, len8, 8);
    if (rc == FM_OK) rc = fm_atomic_write(&f, text, hlen);
    for (int i = 0; i < n && rc == FM_OK; i++) {
        const size_t k = entry_bytes(&t[i]);
        const void *d = fetch(ctx, i);
        rc = d || !k ? fm_atomic_write(&f, d, k) : FM_ERR;
    }
    free(text);
    if (rc != FM_OK) {
        fm_atomic_abort(&f);
        return FM_ERR;
    }
    return fm_atomic_commit(&f);
}

int fm_st_serialize(const fm_st_entry *t, int n, const fm_st_meta *meta, int nmeta, unsigned char **out,
                    size_t *len) {
    char *text;
    size_t hlen;
    uint64_t dlen;
    if (build_header(t, n, meta, nmeta, &text, &hlen, &dlen, "(memory)") != FM_OK) return FM_ERR;
    if (dlen > SIZE_MAX - 8 - hlen) {
        free(text);
        return fm_fail("(memory): tensors too large");
    }
    size_t total = 8 + hlen + (size_t)dlen;
    unsigned char *b = fm_try_malloc(total);
    if (!b) {
        free(text);
        return FM_ERR;
    }
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    memcpy(b + 8, text, hlen);
    size_t pos = 8 + hlen;
    for (int i = 0; i < n; i++) {
        size_t k = entry_bytes(&t[i]);
        if (k) memcpy(b + pos, t[i].data, k);
        pos += k;
    }
    free(text);
    *out = b;
    *len = total;
    return FM_OK;
}
