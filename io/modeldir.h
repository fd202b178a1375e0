/* modeldir.h: a HuggingFace model directory (config.json, model.safetensors,
 * vocab.txt) loaded into and saved from an fm_model.
 *
 * Names: the file may call a tensor "bert.encoder.layer.0...." (as
 * BertFor* save it) or "encoder.layer.0...." (as BertModel does); older
 * checkpoints' LayerNorm "gamma"/"beta" are read as "weight"/"bias".
 * Tensors this model has no place for are skipped: "position_ids",
 * "cls.seq_relationship.*", the tied "cls.predictions.decoder.*", the MLM
 * head "cls.predictions.*" unless the config has with_mlm, "classifier.*"
 * when it has no task head, and any other unknown name (with a warning).
 * A tensor of an encoder layer the config does not have is an error.
 * F16, BF16 and F64 are converted to float; other dtypes are errors.
 *
 * Saving writes the encoder, embeddings and pooler as "bert.*", the task
 * head as "classifier.*" and the MLM head as "cls.predictions.*", as
 * BertForSequenceClassification / BertForPreTraining name them, with the
 * metadata {"format": "pt"} transformers expects. */
#ifndef FM_MODELDIR_H
#define FM_MODELDIR_H

#include <stdint.h>

#include "hfconfig.h"
#include "model.h"
#include "params.h"
#include "safetensors.h"

#define FM_MODEL_CONFIG "config.json"
#define FM_MODEL_WEIGHTS "model.safetensors"
#define FM_MODEL_VOCAB "vocab.txt"

typedef struct {
    int num_labels; /* -1: as config.json says (or, when it says nothing, as the file's classifier.weight);
                       >= 0: this many (0: no task head) */
    int with_mlm;   /* -1: the MLM head when the file has one; 0: never; 1: required */
    int stage, nstages; /* nstages > 1: the model of pipeline stage `stage` (fm_model_alloc_stage), which
                           reads its own tensors only; every tensor of the file is checked all the same */
    int tp, ntp;        /* ntp > 1: tensor-parallel rank tp's shard (fm_model_alloc_shard), which copies the
                           rows or columns of its shares out of the mapped file, one tensor at a time */
} fm_load_opts;

/* num_labels = with_mlm = -1, one stage, no tensor parallelism. */
void fm_load_opts_default(fm_load_opts *o);

typedef struct {
    int head_present; /* the config has a task head and the file held it (else it is left zero) */
    int n_loaded;     /* tensors copied into the model */
    int n_converted;  /* of those, converted from F16 / BF16 / F64 */
    int n_skipped;    /* file tensors not used */
    fm_hfextra extra; /* label names and task from config.json (fm_modeldir_load only) */
} fm_load_info;

void fm_load_info_free(fm_load_info *info);

/* Copy the tensors of f into params (layout lay of config c), checking each
 * name, dtype and shape against the layout. params may be NULL to validate
 * only. Every tensor of the layout is required except the task head
 * (classifier.*), whose presence is reported in info->head_present (both
 * weight and bias, or neither). Errors name f's path, the tensor, what was
 * expected and what was found. */
int fm_load_tensors(const fm_st_file *f, const fm_config *c, const fm_layout *lay, float *params,
                    fm_load_info *info);

/* The config a load uses: c as read from config.json at cpath (with x, which
 * may be NULL), adjusted by o (NULL: defaults) and by what f holds, then
 * checked. *skip_head is set when the file's task head does not fit the
 * number of labels o asks for and must be ignored (fm_modeldir_load then
 * reports head_present = 0). */
int fm_modeldir_resolve(const char *cpath, fm_config *c, const fm_hfextra *x, const fm_st_file *f,
                        const fm_load_opts *o, int *skip_head);

/* Load directory dir into m (allocated here with fm_model_alloc; on FM_ERR
 * nothing is left allocated). info may be NULL; else free it with
 * fm_load_info_free. */
int fm_modeldir_load(const char *dir, const fm_load_opts *o, fm_model *m, fm_load_info *info);

/* A model directory read one tensor at a time: the weights file mapped and
 * every tensor checked as fm_modeldir_load checks them, none copied, so a
 * pass over the tensors holds one of them (as floats) in memory. */
typedef struct {
    fm_config c;     /* as fm_modeldir_load resolves it */
    fm_layout lay;   /* c's */
    fm_st_file f;
    const fm_st_tensor **src; /* [lay.n] each layout tensor's in f (NULL: an absent task head) */
    float *buf;      /* the last tensor read */
    size_t cap;      /* floats in buf */
} fm_modeldir_reader;
/* FM_ERR (nothing left open) with the errors fm_modeldir_load gives. */
int fm_modeldir_open(fm_modeldir_reader *r, const char *dir, const fm_load_opts *o);
/* Layout tensor t (of r->lay) as floats, converted as a load converts; valid
 * until the next read. NULL with the error recorded (t absent). */
const float *fm_modeldir_read(fm_modeldir_reader *r, const fm_tensor *t);
void fm_modeldir_close(fm_modeldir_reader *r);

/* The name a layout tensor has in a saved file ("bert." + name for the
 * encoder, embeddings and pooler; unchanged for the heads) into out. */
void fm_hf_name(char out[128], const fm_tensor *t);

/* Write params (layout lay) to a safetensors file at path with HF names, plus
 * nmeta extra metadata pairs (format = pt and the fingerprint are added). */
int fm_save_tensors(const char *path, const fm_layout *lay, const float *params, const fm_st_meta *meta, int nmeta);

/* The same with tensor i's bytes from fetch(ctx, i) (safetensors.h), for
 * an array whose tensors lie on several pipeline stages; fingerprint is the
 * array's (fm_params_fingerprint_part over the stages). */
int fm_save_tensors_fetch(const char *path, const fm_layout *lay, fm_st_fetch fetch, void *ctx,
                          uint64_t fingerprint);

typedef struct {
    const char *vocab;        /* vocab.txt to copy into the directory, or NULL */
    const char *tokenizer_from; /* a model directory whose tokenizer.json and tokenizer_config.json
                                   are copied when present, or NULL */
    const fm_hfextra *extra;  /* label names / task for config.json, or NULL */
    const fm_st_meta *meta;   /* extra safetensors metadata, or NULL */
    int nmeta;
    /* A model whose tensors lie elsewhere (pipeline stages): fetch gives the
     * bytes of layout tensor i in turn (safetensors.h), and fingerprint is
     * the model's (fm_params_fingerprint_part over the stages); params is
     * then not read. NULL: params holds every tensor. */
    fm_st_fetch fetch;
    void *fetch_ctx;
    uint64_t fingerprint;
} fm_save_opts;

/* Create dir if needed and write config.json and model.safetensors (each
 * atomically) and copy vocab.txt when o->vocab is given, and the tokenizer
 * files of o->tokenizer_from that exist. o may be NULL. */
int fm_modeldir_save(const char *dir, const fm_config *c, const fm_layout *lay, const float *params,
                     const fm_save_opts *o);

/* A stable 64-bit fingerprint of the pre-trained part of a model (every
 * tensor but the task and MLM heads): CRC-64/XZ (ISA-L's crc64_ecma_refl)
 * over, for each tensor in layout order, its name without "bert." and a NUL,
 * its shape as little-endian int64s, and its values as little-endian
 * float32. Equal weights give equal fingerprints whatever the file's dtype or
 * name prefix; used to tie a mask to the model it was trained on. */
uint64_t fm_params_fingerprint(const fm_layout *lay, const float *params);
/* The same computation continued from crc over the tensors i with own[i]
 * only: the fingerprint of a model whose tensors lie on pipeline stages is
 * each stage's part in stage order, each continuing from the previous
 * stage's value (a stage's tensors are contiguous in the layout). */
uint64_t fm_params_fingerprint_part(uint64_t crc, const fm_layout *lay, const float *params,
                                    const unsigned char *own);
/* One tensor's step of fm_params_fingerprint_part: crc continued over the
 * whole tensor t (its name, shape and data; heads add nothing). */
uint64_t fm_params_fingerprint_tensor(uint64_t crc, const fm_tensor *t, const float *data);

#endif
