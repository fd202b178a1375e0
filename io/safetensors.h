/* safetensors.h: the safetensors format, read and written.
 *
 * A file is an 8-byte little-endian header length N, N bytes of JSON, then
 * the data section. The JSON maps each tensor name to {"dtype", "shape",
 * "data_offsets": [begin, end]} (byte offsets into the data section) and may
 * hold "__metadata__", a map of strings to strings.
 *
 * Reader policy (as HuggingFace's reference reader): the header is at most
 * 100,000,000 bytes; every byte of the data section belongs to exactly one
 * tensor, so overlaps, holes between tensors and trailing bytes are errors;
 * duplicate names are errors. Unknown keys inside an entry are ignored.
 * Every error message names the file and, where there is one, the tensor.
 *
 * Writer policy: tensors go into the file in the order the caller gives
 * them (the header lists them in that order after "__metadata__"), packed
 * without gaps; the header is padded with spaces so the data section starts
 * at a multiple of 8 bytes. Files are written atomically (fileio.h). */
#ifndef FM_SAFETENSORS_H
#define FM_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "fileio.h"

/* Largest header accepted, in bytes (HuggingFace's limit). */
#define FM_ST_MAX_HEADER 100000000ull
/* Largest tensor rank accepted. */
#define FM_ST_MAX_NDIM 8

typedef enum {
    FM_ST_BOOL,
    FM_ST_U8,
    FM_ST_I8,
    FM_ST_F8_E5M2,
    FM_ST_F8_E4M3,
    FM_ST_I16,
    FM_ST_U16,
    FM_ST_F16,
    FM_ST_BF16,
    FM_ST_I32,
    FM_ST_U32,
    FM_ST_F32,
    FM_ST_F64,
    FM_ST_I64,
    FM_ST_U64,
    FM_ST_NDTYPES
} fm_st_dtype;

/* "F32", "BF16", ... */
const char *fm_st_dtype_name(fm_st_dtype d);
/* Bytes per element. */
size_t fm_st_dtype_size(fm_st_dtype d);
/* The dtype named s; FM_ERR (no message) when s names none. */
int fm_st_dtype_parse(const char *s, fm_st_dtype *d);
/* F32, F16, BF16 or F64: fm_st_to_float converts it. */
int fm_st_dtype_is_float(fm_st_dtype d);

typedef struct {
    char *name;
    fm_st_dtype dtype;
    int ndim;                       /* 0 for a scalar */
    int64_t shape[FM_ST_MAX_NDIM];
    uint64_t numel;                 /* product of shape (1 for a scalar) */
    uint64_t begin, end;            /* byte range within the data section */
    const unsigned char *data;      /* begin of the bytes (not aligned in general) */
} fm_st_tensor;

typedef struct {
    char *key, *value;
} fm_st_meta;

/* An opened file. Tensors are listed in data order (by begin offset). */
typedef struct {
    char *path;                     /* the name messages use */
    fm_st_tensor *t;                /* [n] */
    int n;
    fm_st_meta *meta;               /* [nmeta] the "__metadata__" map, in file order */
    int nmeta;
    uint64_t header_len;            /* N */
    const unsigned char *data;      /* the data section */
    uint64_t data_len;
    fm_mmap map;                    /* when opened from a file */
} fm_st_file;

/* Map and validate path. On FM_ERR f is left empty (fm_st_close is harmless). */
int fm_st_open(fm_st_file *f, const char *path);
/* Validate len bytes at buf (which must outlive f) as a safetensors file;
 * name is used in messages. On FM_ERR f is left empty. */
int fm_st_parse(fm_st_file *f, const void *buf, size_t len, const char *name);
void fm_st_close(fm_st_file *f);

/* The tensor with this exact name, or NULL. */
const fm_st_tensor *fm_st_find(const fm_st_file *f, const char *name);
/* The metadata value for key, or NULL. */
const char *fm_st_meta_get(const fm_st_file *f, const char *key);
/* "[768, 3072]" into buf (truncated to n bytes); returns buf. */
char *fm_st_shape_str(char *buf, size_t n, int ndim, const int64_t *shape);

/* Convert tensor t (F32, F16, BF16 or F64) into out[0..t->numel). FM_ERR
 * naming the file and tensor for any other dtype. */
int fm_st_to_float(const fm_st_file *f, const fm_st_tensor *t, float *out);

/* Scalar conversions. Half and bfloat16 widen exactly; the narrowing ones
 * round to nearest, ties to even (overflow gives infinity; NaN stays NaN). */
float fm_f16_to_f32(uint16_t h);
float fm_bf16_to_f32(uint16_t b);
uint16_t fm_f32_to_f16(float f);
uint16_t fm_f32_to_bf16(float f);

/* One tensor to write: numel(shape) * dtype size bytes at data. */
typedef struct {
    const char *name;
    fm_st_dtype dtype;
    int ndim;
    int64_t shape[FM_ST_MAX_NDIM];
    const void *data;
} fm_st_entry;

/* Write n tensors in the given order and nmeta metadata pairs (may be 0) to
 * path atomically. FM_ERR for a duplicate or reserved name ("__metadata__"),
 * a bad shape, or an I/O failure. */
int fm_st_write(const char *path, const fm_st_entry *t, int n, const fm_st_meta *meta, int nmeta);

/* The bytes of entry i of a file being written (fm_st_write_fetch calls it
 * for i = 0, 1, ... in turn, once each, and stops at the first failure);
 * valid until the next call. NULL: the data could not be had (the write
 * fails; the callback records why). */
typedef const void *(*fm_st_fetch)(void *ctx, int i);
/* fm_st_write with entry i's data from fetch(ctx, i) instead of t[i].data,
 * so that the tensors need not all be in memory at once. */
int fm_st_write_fetch(const char *path, const fm_st_entry *t, int n, const fm_st_meta *meta, int nmeta,
                      fm_st_fetch fetch, void *ctx);

/* The same file built in memory (free *out with free()); for tests and fuzz seeds. */
int fm_st_serialize(const fm_st_entry *t, int n, const fm_st_meta *meta, int nmeta, unsigned char **out,
                    size_t *len);

#endif
