/* analysis.h: the paper's analyses as numbers (no files, no printing):
 * mask sparsity per tensor, per layer and per matrix kind (Figure 4); the
 * overlap of two masks' zeros beside what independent random masks of the
 * same sparsities give (Figure 6); random masks (Figure 6's baseline); L1 and
 * angular distances between two models' weight matrices beside random
 * initialisations (Table 2, Figure 2). io/analysisjson.h turns the results
 * into JSON. Every sum is accumulated in double; counts come from popcount. */
#ifndef FM_ANALYSIS_H
#define FM_ANALYSIS_H

#include <stddef.h>
#include <stdint.h>

#include "mask.h"
#include "params.h"

/* Philox purposes beyond rng.h's list (the purpose is part of the counter). */
#define FM_RNG_RANDOM_MASK 32u /* fm_mask_random (stream: fm_name_stream of the tensor) */
#define FM_RNG_REFERENCE 33u   /* the random initialisations of fm_distance_models */

/* The group a tensor name belongs to: -1 for "embeddings.*", N for
 * "encoder.layer.N.*", -2 for anything else (pooler, heads). */
int fm_name_layer(const char *name);
/* The matrix kind: the name without "encoder.layer.N." for encoder tensors
 * ("attention.self.query.weight"), else the whole name. */
const char *fm_name_kind(const char *name);
/* A stable 32-bit stream number for a tensor name (FNV-1a), so a tensor's
 * random draws do not depend on which other tensors are present. */
uint32_t fm_name_stream(const char *name);

/* ---- mask statistics (Figure 4) ---- */

/* Counts over one tensor or a group of tensors. sparsity = zeros / numel
 * (NaN when numel is 0). */
typedef struct {
    char label[96]; /* tensor name, layer label ("embeddings", "0", "pooler", ...) or kind */
    int layer;      /* fm_name_layer of the (first) tensor */
    int ntensors;
    size_t numel, ones, zeros;
    double sparsity;
} fm_mask_count_row;

typedef struct {
    fm_mask_count_row *tensor; /* [n] one per mask tensor, in the mask's order */
    int n;
    fm_mask_count_row *layer;  /* [nlayer] "embeddings", encoder layers ascending, then the
                                  rest by first name component ("pooler", ...) */
    int nlayer;
    fm_mask_count_row *kind;   /* [nkind] per matrix kind across layers, first-seen order */
    int nkind;
    fm_mask_count_row all;
} fm_mask_stats;

/* Count m (ones by popcount of the packed bits). */
void fm_mask_stats_compute(fm_mask_stats *s, const fm_mask *m);
void fm_mask_stats_free(fm_mask_stats *s);

/* ---- overlap of two masks' zeros (Figure 6) ---- */

/* For masks A and B over the same tensors:
 *   common       entries zero in both (numel - popcount(a | b))
 *   frac_a       common / zeros_a: the fraction of A's zeros that are also B's
 *   expect_a     what frac_a is in expectation when A and B are independent
 *                random masks with the same per-tensor sparsities: sparsity of
 *                B for one tensor; for a group, the zeros_a-weighted mean of
 *                its tensors' B sparsities, sum_t zeros_a,t * s_b,t / sum_t zeros_a,t
 *   pooled_a     zeros_b / numel over the group (the expectation when only the
 *                group's overall sparsity is matched; equals expect_a for one tensor)
 *   and the same with A and B swapped. Fractions are NaN when the denominator is 0. */
typedef struct {
    char label[96];
    int layer;
    int ntensors;
    size_t numel, zeros_a, zeros_b, common;
    double sparsity_a, sparsity_b;
    double frac_a, expect_a, pooled_a;
    double frac_b, expect_b, pooled_b;
    double exp_num_a, exp_num_b; /* sum_t zeros_a,t * s_b,t (and swapped): expect_a's numerator */
} fm_overlap_row;

typedef struct {
    fm_overlap_row *tensor; /* [n] in A's order */
    int n;
    fm_overlap_row *layer;  /* [nlayer] grouped as fm_mask_stats */
    int nlayer;
    fm_overlap_row *kind;   /* [nkind] */
    int nkind;
    fm_overlap_row all;
} fm_overlap;

/* Compare a and b. FM_ERR (message naming the tensor) unless they mask the
 * same tensors (same names, in any order) with the same shapes. */
int fm_mask_overlap(fm_overlap *o, const fm_mask *a, const fm_mask *b);
void fm_overlap_free(fm_overlap *o);

/* ---- random masks ---- */

/* Set every bit of every tensor of m independently: entry i of tensor t is
 * kept when fm_rng_uniform(seed, FM_RNG_RANDOM_MASK, 0, fm_name_stream(t),
 * i) >= sparsity, i.e. zeroed with probability sparsity (to 2^-24). Counts
 * are updated. */
void fm_mask_random(fm_mask *m, double sparsity, uint64_t seed);

/* ---- distances between weights (Table 2, Figure 2) ---- */

/* Sums over pairs of vectors, in double. */
typedef struct {
    double l1;     /* sum |a - b| */
    double ab, aa, bb;
    size_t n;
} fm_dist_acc;

/* A distance. l1 is the L1 norm of the difference, sum_i |a_i - b_i| (as
 * the paper's Table 2); l1_mean is l1 / n; cosine = a.b / (|a| |b|);
 * angular = arccos(cosine) / pi in [0, 1] (0 same direction, 0.5
 * orthogonal). cosine and angular are NaN when either vector is zero.
 * Equal vectors give angular 0 exactly; as acos goes, angles below about
 * 1e-7 are resolved only to about 1e-8. */
typedef struct {
    double l1, l1_mean, cosine, angular;
    size_t n;
} fm_dist;

void fm_dist_acc_add(fm_dist_acc *acc, const float *a, const float *b, size_t n);
void fm_dist_finish(fm_dist *out, const fm_dist_acc *acc);
/* fm_dist of a[0..n) and b[0..n). */
void fm_distance(fm_dist *out, const float *a, const float *b, size_t n);

/* One weight matrix of two models, with the reference figures: two
 * independent random initialisations R1, R2 of the same shape, uniform on
 * [-1/sqrt(h), 1/sqrt(h)] and normal with standard deviation 1/sqrt(h), h the
 * matrix's fan-in (columns: the hidden size, the intermediate size for
 * output.dense), each against the other and R1 against model A. */
typedef struct {
    char label[96];
    int layer;
    int ndim;
    int64_t shape[2];
    size_t numel;
    int64_t fan_in;
    fm_dist ab;              /* model A against model B */
    fm_dist uniform_pair;    /* uniform R1 against uniform R2 */
    fm_dist normal_pair;     /* normal R1 against normal R2 */
    fm_dist uniform_vs_a;    /* uniform R1 against A */
    fm_dist normal_vs_a;     /* normal R1 against A */
} fm_distance_row;

typedef struct {
    fm_distance_row *tensor; /* [n] in A's layout order */
    int n;
    fm_distance_row all;     /* every listed matrix as one vector (l1 summed; cosine over the concatenation) */
    uint64_t seed;
} fm_distance_report;

/* Distances between models A (layout la, params pa) and B for every weight
 * matrix of A (FM_T_MATRIX, not the task or MLM heads) whose name matches
 * glob (fnmatch, comma-separated; NULL for all). The reference draws come
 * from Philox (seed, FM_RNG_REFERENCE). FM_ERR (naming the tensor) when B
 * lacks a tensor or has another shape, or nothing matches. */
int fm_distance_models(fm_distance_report *r, const fm_layout *la, const float *pa, const fm_layout *lb,
                       const float *pb, const char *glob, uint64_t seed);
/* Tensor t's values (t->numel floats), valid until the next call with the
 * same ctx; NULL with the error recorded. */
typedef const float *(*fm_tensor_fetch)(void *ctx, const fm_tensor *t);
/* The same, with each model's tensors fetched one at a time (fa(ca, t) for
 * A's tensor t, fb(cb, t) for B's), so that neither model need be in memory
 * whole: the same report, bit for bit. */
int fm_distance_models_fetch(fm_distance_report *r, const fm_layout *la, fm_tensor_fetch fa, void *ca,
                             const fm_layout *lb, fm_tensor_fetch fb, void *cb, const char *glob, uint64_t seed);
void fm_distance_report_free(fm_distance_report *r);

#endif
