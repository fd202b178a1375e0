/* maskfile.h: the mask file: one task's storage over a frozen pre-trained
 * model, as a safetensors file any safetensors reader opens.
 *
 * Tensors:
 *   - one U8 tensor per masked tensor, named as HuggingFace names the
 *     weight it masks ("bert.encoder.layer.0.attention.self.query.weight"),
 *     of shape [(numel + 7) / 8]: the packed bits, entry i of the (row-major)
 *     weight is bit i % 8 of byte i / 8 (numpy.unpackbits(..., bitorder=
 *     'little')), 1 = kept, 0 = zeroed; bits past numel are 0;
 *   - the task head beside them, when there is one: "classifier.weight"
 *     (num_labels, H) and "classifier.bias" (num_labels), F32.
 *
 * "__metadata__" (string values only, as safetensors requires):
 *   format             "finemask-mask"
 *   version            "1"
 *   tensors            a JSON object (as a string) mapping each mask tensor's
 *                      name, in file order, to {"shape": [out, in],
 *                      "ones": N, "crc32c": "8 hex digits"}: the weight's
 *                      real shape, its count of kept entries and the CRC-32C
 *                      (Castagnoli, as iSCSI; check value of "123456789" is
 *                      e3069283) of its packed bytes
 *   model_fingerprint  16 hex digits: fm_params_fingerprint of the
 *                      pre-trained model the mask was trained over
 *   task, mode, ste    strings ("" when not applicable)
 *   seed               decimal
 *   init_sparsity      decimal (%.17g; "nan" when not applicable)
 *   any other key      the caller's extra key/values, kept as they are
 *
 * Reading checks everything the file states: the format and version, that
 * every U8 tensor is described in "tensors" and every description has its
 * tensor, that the byte length fits the shape, the CRC-32C, that no bit past
 * numel is set, the count of ones, and the head's dtype and shapes. Every
 * message names the file and the tensor. */
#ifndef FM_MASKFILE_H
#define FM_MASKFILE_H

#include <stdint.h>

#include "mask.h"
#include "model.h"
#include "params.h"
#include "safetensors.h"

#define FM_MASKFILE_FORMAT "finemask-mask"
#define FM_MASKFILE_VERSION "1"

/* The job that made a mask, and the file it came from. */
typedef struct {
    char task[64];              /* GLUE task name, "" when none */
    char mode[32];              /* "supermask", "random", ... */
    char ste[32];               /* "sigmoid", "identity", "" */
    uint64_t seed;
    double init_sparsity;       /* NaN when not applicable */
    uint64_t model_fingerprint; /* fm_params_fingerprint of the pre-trained model */
    fm_st_meta *extra;          /* [nextra] further key/values, owned (fm_maskfile_meta_set) */
    int nextra;
    /* Set by fm_maskfile_read: */
    char *path;                 /* the file read (owned), for messages */
    int head_in;                /* columns of classifier.weight; 0 when the file has no head */
} fm_maskfile_meta;

/* Empty strings, seed 0, init_sparsity NaN, fingerprint 0, no extras. */
void fm_maskfile_meta_init(fm_maskfile_meta *meta);
void fm_maskfile_meta_free(fm_maskfile_meta *meta);
/* Add (or replace) an extra key/value (copied). FM_ERR for a key the format
 * itself uses (format, version, tensors, task, ...). */
int fm_maskfile_meta_set(fm_maskfile_meta *meta, const char *key, const char *value);
/* An extra value by key, or NULL. */
const char *fm_maskfile_meta_get(const fm_maskfile_meta *meta, const char *key);

/* The CRC-32C of n bytes (standard: initial and final inversion). */
uint32_t fm_crc32c(const void *data, size_t n);

/* The name a mask tensor has in a file: "bert." + name, except the heads
 * ("classifier.*", "cls.*"), which keep theirs. */
void fm_mask_hf_name(char out[128], const char *name);

/* Write mask m and meta to path atomically. When head_params is not NULL,
 * the task head (classifier.weight and classifier.bias of layout lay) is
 * read from it (a whole parameter array with layout lay) and stored too; lay
 * may be NULL only when head_params is. When lay is given, each mask tensor
 * must match the layout's tensor of that name in shape. FM_ERR (message
 * naming path and tensor) for a masked task head, a shape that disagrees, or
 * bits set past numel; nothing is written then. */
int fm_maskfile_write(const char *path, const fm_mask *m, const fm_maskfile_meta *meta, const fm_layout *lay,
                      const float *head_params);

/* Read and check path into m and meta (both initialised here; free with
 * fm_mask_free and fm_maskfile_meta_free). The head, when the file has one,
 * goes to *head_w (num_labels, meta->head_in) and *head_b (num_labels),
 * allocated with malloc; without one they are NULL and *num_labels is 0.
 * head_w, head_b and num_labels may each be NULL when not wanted. On FM_ERR
 * nothing is left allocated. */
int fm_maskfile_read(const char *path, fm_mask *m, fm_maskfile_meta *meta, float **head_w, float **head_b,
                     int *num_labels);
/* The same for len bytes at buf (a whole file in memory); name is used in
 * messages and as meta->path. */
int fm_maskfile_parse(const void *buf, size_t len, const char *name, fm_mask *m, fm_maskfile_meta *meta,
                      float **head_w, float **head_b, int *num_labels);

/* Check that a mask read from meta->path fits a model: the model's
 * fingerprint (fm_params_fingerprint of its pre-trained weights) equals the
 * one the mask was trained on, every mask tensor names a tensor of lay with
 * the same shape, and the head's width is the model's hidden size. */
int fm_maskfile_check_model(const fm_maskfile_meta *meta, uint64_t fingerprint, const fm_layout *lay,
                            const fm_mask *m);

/* Load model directory model_dir into model (with the mask file's task head
 * size when the file has a head), check the mask file against it, and make
 * the model the masked one: every masked weight multiplied by its bit, the
 * head from the file. mask and meta receive the file's contents when not
 * NULL (free them as fm_maskfile_read says). On FM_ERR nothing is left
 * allocated. */
int fm_maskfile_load_model(const char *model_dir, const char *mask_path, fm_model *model, fm_mask *mask,
                           fm_maskfile_meta *meta);

#endif
