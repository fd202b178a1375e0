/* tp.h: tensor parallelism of an encoder layer over the P ranks of a
 * communicator, on BLACS grids and ScaLAPACK block-cyclic descriptors.
 *
 * The split is Megatron's. Every weight matrix is PyTorch's row-major (out,
 * in) tensor, which ScaLAPACK reads as the column-major (in x out) matrix, so
 * a descriptor describes the very bytes of a safetensors file:
 *   - column-parallel (Q, K, V, W_I and their biases): split by output
 *     feature, the columns of (in x out), over a 1 x P grid. Q, K and V in
 *     blocks of one head (nb = H/A), dealt round-robin: rank p holds heads
 *     p, p+P, p+2P, ...; W_I in P contiguous blocks of ceil(I/P) columns.
 *     A rank's share is whole rows of the PyTorch tensor.
 *   - row-parallel (W_D, W_O): split by input feature, the rows of (in x
 *     out), over a P x 1 grid, with the block size of the matrix that feeds
 *     it (W_D a head, W_O W_I's), so a rank holds the columns of the PyTorch
 *     tensor that its own heads' context, or its own GELU outputs, multiply.
 *   - whole on every rank: b_D, b_O and both LayerNorms.
 * The layer input x (B,T,H) is whole on every rank. A rank computes its
 * heads' q, k, v, its attention, its share of the GELU, and partial sums of
 * x_D = ctx W_D^T and of x_O = gelu W_O^T; one sum over the ranks (an
 * allreduce of B*T*H floats) completes each, and the dropout, residual and
 * LayerNorm that follow run whole on every rank. The backward mirrors it:
 * the gradients of y1 (through W_I) and of x (through Q, K, V) are the two
 * sums. Every weight gradient is local. Four sums of B*T*H floats per layer
 * and step, nothing else. */
#ifndef FM_TP_H
#define FM_TP_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "model.h"
#include "params.h"
#include "scalapack.h"

/* The BLACS grids over one communicator (same process order in each). */
typedef struct {
    MPI_Comm comm;
    int rank, size; /* P = size */
    int sys;        /* BLACS system handle of comm */
    int col;        /* context of the 1 x P grid (column-parallel matrices) */
    int row;        /* context of the P x 1 grid (row-parallel matrices) */
    int one;        /* context of the 1 x 1 grid on rank 0; -1 on the others */
} fm_tp_grid;

/* Make the grids over comm (collective over comm). */
void fm_tp_grid_init(fm_tp_grid *g, MPI_Comm comm);
void fm_tp_grid_free(fm_tp_grid *g);

/* One distributed (in x out) matrix: its descriptor, the descriptor of the
 * whole matrix on rank 0 (for scatter and gather), and the local shape. */
typedef struct {
    int desc[FM_DESC_LEN];
    int whole[FM_DESC_LEN]; /* CTXT -1 off rank 0 */
    int in, out;            /* global: rows and columns as ScaLAPACK sees them */
    int lr, lc;             /* local rows and columns (column-major, lld = max(1, lr)) */
    int by_rows;            /* 1: row-parallel (P x 1), 0: column-parallel (1 x P) */
} fm_tp_dist;

/* The (in x out) column-major matrix split by columns in blocks of nb over
 * g's 1 x P grid. A vector of n (a bias) is in = 1, out = n. */
void fm_tp_dist_cols(fm_tp_dist *d, const fm_tp_grid *g, int in, int out, int nb);
/* The same split by rows in blocks of mb over g's P x 1 grid. */
void fm_tp_dist_rows(fm_tp_dist *d, const fm_tp_grid *g, int in, int out, int mb);
/* Floats of the local share. */
static inline size_t fm_tp_dist_numel(const fm_tp_dist *d) { return (size_t)d->lr * (size_t)d->lc; }
/* Global 0-based index of this rank's local row li (column lj) of d. */
int fm_tp_dist_grow(const fm_tp_dist *d, const fm_tp_grid *g, int li);
int fm_tp_dist_gcol(const fm_tp_dist *d, const fm_tp_grid *g, int lj);

/* Scatter the whole matrix (read on rank 0 only, PyTorch's layout) into each
 * rank's local share, by psgemr2d. Collective over g. */
void fm_tp_scatter(const fm_tp_grid *g, const fm_tp_dist *d, const float *whole, float *local);
/* Gather every rank's share into the whole matrix on rank 0 (whole may be
 * NULL elsewhere), by psgemr2d. Collective over g. */
void fm_tp_gather(const fm_tp_grid *g, const fm_tp_dist *d, const float *local, float *whole);

/* One rank's share of an encoder layer's tensors (fm_layer_view's names). */
typedef struct {
    float *wq, *bq, *wk, *bk, *wv, *bv; /* (Hl, H), (Hl): rows of the local heads */
    float *wd, *bd;                     /* (H, Hl) row stride Hl: columns of the local heads; (H) */
    float *ln1_g, *ln1_b;               /* (H), (H) */
    float *wi, *bi;                     /* (Il, H), (Il): rows of the local intermediate features */
    float *wo, *bo;                     /* (H, Il) row stride Il; (H) */
    float *ln2_g, *ln2_b;               /* (H), (H) */
} fm_tp_view;

/* How the row-parallel products of the forward are summed. */
typedef enum {
    FM_TP_ALLREDUCE = 0, /* local sgemm, then MPI_Allreduce of (B,T,H) */
    FM_TP_PSGEMM = 1,    /* psgemm_ (K split over the P x 1 grid, C on rank 0), then MPI_Bcast */
} fm_tp_sum;

typedef struct fm_tp_layer fm_tp_layer;

/* A tensor-parallel encoder layer of config c over g, for batches up to
 * (B, T): parameters and gradients (zeroed) of its share, activations.
 * NULL with a message (fm_last_error) when g has more ranks than c heads. */
fm_tp_layer *fm_tp_layer_new(const fm_tp_grid *g, const fm_config *c, int B, int T);
void fm_tp_layer_free(fm_tp_layer *L);
/* Its parameters and gradients (pointers into the layer). */
fm_tp_view *fm_tp_layer_params(fm_tp_layer *L);
fm_tp_view *fm_tp_layer_grads(fm_tp_layer *L);
/* Local heads Al (model heads rank, rank+P, ...), local intermediate Il. */
void fm_tp_layer_shares(const fm_tp_layer *L, int *Al, int *Il);
void fm_tp_layer_set_sum(fm_tp_layer *L, fm_tp_sum how);
/* Bytes of parameters, gradients and activations this rank holds. */
size_t fm_tp_layer_bytes(const fm_tp_layer *L);

/* Distribute a whole layer's parameters (read on rank 0 only) over the
 * ranks: psgemr2d for the split tensors, a broadcast for the others. */
void fm_tp_layer_scatter(fm_tp_layer *L, const fm_layer_view *whole);
/* Gather the parameters (grads = 0) or the gradients (grads = 1) into the
 * whole layer on rank 0 (whole is ignored elsewhere). Tensors every rank
 * holds whole are the same on every rank; rank 0's are taken. */
void fm_tp_layer_gather(const fm_tp_layer *L, int grads, fm_layer_view *whole);
void fm_tp_layer_zero_grads(fm_tp_layer *L);

/* Forward of encoder layer `layer` (its index keys the dropout): x_out
 * (B,T,H) from x_in (B,T,H), both whole on every rank; x_out may not alias
 * x_in. The same as fm_encoder_forward over that one layer. Collective. */
void fm_tp_layer_forward(fm_tp_layer *L, const fm_batch *b, const fm_pass *p, int layer, const float *x_in,
                         float *x_out);
/* Backward: dx_in (B,T,H) written from dx_out; adds into the gradients of
 * this rank's share. Collective. */
void fm_tp_layer_backward(fm_tp_layer *L, const fm_batch *b, const fm_pass *p, int layer, const float *dx_out,
                          float *dx_in);

/* Communication counters since fm_tp_layer_new. */
typedef struct {
    uint64_t sums;         /* sums of a (B,T,H) tensor over the ranks */
    uint64_t sum_bytes;    /* float bytes of those tensors (per rank) */
    double seconds;        /* wall time in the sums (including psgemm_ when it sums) */
} fm_tp_counters;
void fm_tp_layer_counters(const fm_tp_layer *L, fm_tp_counters *c);

#endif
