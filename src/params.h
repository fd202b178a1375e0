/* params.h: the parameter layout. All of a model's parameters live in one
 * float allocation; gradients, supermask scores (nu) and AdamW moments are
 * separate allocations with the same layout, so an optimiser is one loop and
 * a pipeline stage or a gradient bucket is a contiguous range.
 *
 * Order: embeddings, encoder layers 0..L-1 (each contiguous), pooler, task
 * head ("classifier"), MLM head ("cls.predictions"). Names are HuggingFace's
 * without the "bert." prefix (the io layer adds or strips it). */
#ifndef FM_PARAMS_H
#define FM_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

enum {
    FM_T_DECAY = 1u << 0,  /* AdamW weight decay applies (not biases, not LayerNorm) */
    FM_T_MATRIX = 1u << 1, /* a weight matrix (or embedding table): maskable by default */
    FM_T_LN = 1u << 2,     /* a LayerNorm gain or bias */
    FM_T_HEAD = 1u << 3,   /* the task head (classifier.*) */
    FM_T_MLM = 1u << 4,    /* the MLM head (cls.predictions.*) */
};

/* How a tensor of a tensor-parallel shard layout (fm_layout_shard) is split
 * over the P ranks of a stage (mpi/tp.h's layout). */
enum {
    FM_SPLIT_NONE = 0, /* whole on every rank */
    FM_SPLIT_OUT = 1,  /* by output feature: rows of (out, in), in blocks of nb dealt round-robin */
    FM_SPLIT_IN = 2,   /* by input feature: columns of (out, in), blocks of nb round-robin */
};

typedef struct {
    char name[96];    /* "encoder.layer.3.attention.self.query.weight" */
    int ndim;         /* 1 or 2 */
    int64_t shape[2]; /* (out, in) for matrices, as PyTorch stores them */
    size_t offset;    /* first element in the set's float array */
    size_t numel;
    int layer;        /* encoder layer, -1 embeddings, L pooler/heads */
    unsigned flags;   /* FM_T_* */
    int trains;       /* the optimiser updates it (1) or it stays frozen (0) */
    int needs_grad;   /* backward computes its gradient (trains, or masked) */
    /* A shard layout's: shape and numel above are this rank's share of the
     * whole tensor of whole_shape (whole_numel elements), split as split
     * says in blocks of nb. A whole layout: split FM_SPLIT_NONE, whole_* =
     * shape, numel. */
    int split, nb;
    int64_t whole_shape[2];
    size_t whole_numel;
} fm_tensor;

typedef struct {
    fm_tensor *t; /* [n] */
    int n;
    size_t numel; /* total floats */
    int tp_rank, tp_size; /* a shard layout: rank tp_rank's shares of tp_size; tp_size 1 otherwise */
} fm_layout;

/* Build the layout for config c (encoder, plus pooler / head / MLM head as c
 * asks). Every tensor starts as trains = needs_grad = 1. Aborts only on an
 * invalid config (check it first with fm_config_check). */
void fm_layout_build(fm_layout *lay, const fm_config *c);
void fm_layout_free(fm_layout *lay);

/* The tensor with this name (with or without "bert."), or NULL. */
fm_tensor *fm_layout_find(const fm_layout *lay, const char *name);

/* The element range [begin, end) of the tensors that belong to encoder layers
 * [l0, l1) (l0 = -1 includes the embeddings, l1 = L+1 the pooler and heads). */
void fm_layout_range(const fm_layout *lay, int l0, int l1, size_t *begin, size_t *end);

/* The pipeline stage of `stages` that holds tensor t of an L-layer model:
 * stage s holds encoder layers [L*s/stages, L*(s+1)/stages), stage 0 also
 * the embeddings, the last stage also the pooler and the heads. */
int fm_layout_stage(const fm_tensor *t, int L, int stages);

/* The shard layout of tensor-parallel rank `rank` of P (P divides c's
 * heads) from the whole layout `whole` (its trains and needs_grad kept):
 * the same tensors in the same order (indices, names, flags), each encoder
 * layer's Q, K, V and their biases split by output in blocks of one head
 * (rank r holds heads r, r+P, ...), the intermediate dense and its bias by
 * output in blocks of ceil(I/P), the attention output and output denses by
 * input with the block of the matrix that feeds them; every other tensor
 * whole. A share is stored row-major at its tensor's offset, packed. */
void fm_layout_shard(fm_layout *dst, const fm_layout *whole, const fm_config *c, int rank, int P);
/* This rank's heads and intermediate features under lay (whole: all). */
void fm_layout_tp_shares(const fm_layout *lay, const fm_config *c, int *heads, int *inter);
/* The index in the whole tensor of element j of t's share (t of lay), and
 * in *run how many elements from j on are consecutive there too. */
size_t fm_tensor_whole_index(const fm_layout *lay, const fm_tensor *t, size_t j, size_t *run);
/* share (t->numel) = this rank's part of whole (t->whole_numel), t of lay. */
void fm_tensor_slice(const fm_layout *lay, const fm_tensor *t, const float *whole, float *share);

/* Number of elements whose tensors have trains = 1 (whole tensors' on a
 * shard layout: the model's count). */
size_t fm_layout_trainable(const fm_layout *lay);

/* Typed views into one float array with the layout above. Every pointer is
 * into the same allocation; NULL where the config has no such tensor. */
typedef struct {
    float *wq, *bq;       /* (H, H), (H)  attention.self.query */
    float *wk, *bk;       /* (H, H), (H)  attention.self.key */
    float *wv, *bv;       /* (H, H), (H)  attention.self.value */
    float *wd, *bd;       /* (H, H), (H)  attention.output.dense */
    float *ln1_g, *ln1_b; /* (H), (H)     attention.output.LayerNorm */
    float *wi, *bi;       /* (I, H), (I)  intermediate.dense */
    float *wo, *bo;       /* (H, I), (H)  output.dense */
    float *ln2_g, *ln2_b; /* (H), (H)     output.LayerNorm */
} fm_layer_view;

typedef struct {
    float *word;              /* (V, H)  embeddings.word_embeddings */
    float *pos;               /* (P, H)  embeddings.position_embeddings */
    float *type;              /* (TV, H) embeddings.token_type_embeddings */
    float *emb_ln_g, *emb_ln_b; /* (H)   embeddings.LayerNorm */
    fm_layer_view *layer;     /* [L] */
    int num_layers;
    float *pool_w, *pool_b;   /* (H, H), (H)  pooler.dense */
    float *cls_w, *cls_b;     /* (NL, H), (NL) classifier */
    float *mlm_w, *mlm_b;     /* (H, H), (H)  cls.predictions.transform.dense */
    float *mlm_ln_g, *mlm_ln_b; /* (H)       cls.predictions.transform.LayerNorm */
    float *mlm_bias;          /* (V)          cls.predictions.bias; decoder = word */
} fm_view;

/* Point v's fields into base (an array with layout lay). */
void fm_view_bind(fm_view *v, const fm_layout *lay, const fm_config *c, float *base);
void fm_view_free(fm_view *v);

#endif
