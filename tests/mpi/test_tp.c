/* test_tp.c: the tensor-parallel encoder layer (mpi/tp.c) against the
 * one-rank layer, under mpiexec -n P (P >= 1, ctest runs 2).
 *
 * A one-layer model of a small config (H 64, 4 heads, I 256, batch 3 x 11
 * with padded keys, dropout on, erf GELU) gets random weights, biases and
 * LayerNorm parameters, the same on every rank. Every rank runs the one-rank
 * fm_encoder_forward/backward on a random input and output gradient; rank 0's
 * copy of the weights is then scattered over the ranks (psgemr2d), and the
 * tensor-parallel layer runs the same pass. It checks, for both ways of
 * summing the row-parallel products (allreduce; psgemm + broadcast):
 *   1. the output and the input gradient on every rank, and every weight,
 *      bias and LayerNorm gradient gathered to rank 0, against the one-rank
 *      ones: max |tp - ref| <= 1e-5 max |ref| per tensor (b_K, whose exact
 *      gradient is 0, within 1e-7 absolute);
 *   2. that the gathered parameters are the original bytes (memcmp), and
 *      each rank's local share holds, element by element, the entries of
 *      the whole tensor that the block-cyclic map assigns it;
 *   3. a second pass (gradients accumulate) doubles them, within 1e-5.
 * A mismatch prints the tensor and the error and fails. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "fm.h"
#include "model.h"
#include "rng.h"
#include "tp.h"

static int rank, failures;

/* max |got - want| <= tol max |want| + floor (floor 0 but for tensors whose
 * exact value is 0, where only rounding remains). */
static void check(const char *what, const float *got, const float *want, size_t n, double tol, double floor) {
    double err = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - (double)want[i]), s = fabs((double)want[i]);
        if (!(e <= err)) err = e; /* NaN counts */
        if (s > scale) scale = s;
    }
    double rel = scale > 0 ? err / scale : err;
    int ok = floor > 0 ? err <= tol * scale + floor : (rel <= tol && scale > 0);
    if (!ok) failures++;
    if (!ok || getenv("FM_TEST_VERBOSE"))
        printf("rank %d %-28s max|err| %.3g  max|ref| %.3g  rel %.3g  %s\n", rank, what, err, scale, rel,
               ok ? "ok" : "FAILED");
}

static void fill(float *x, size_t n, uint32_t stream, float scale, float shift) {
    fm_rng_normals(1234, FM_RNG_DATA, 0, stream, x, n);
    for (size_t i = 0; i < n; i++) x[i] = shift + scale * x[i];
}

/* The tensors of a layer: name, field of fm_layer_view, numel in units
 * (1: H, 2: H*H, 3: I, 4: I*H). */
static const struct {
    const char *name;
    size_t off;
    int size;
} tensors[] = {
#define T_(f, sz) {#f, offsetof(fm_layer_view, f), sz}
    T_(wq, 2),    T_(bq, 1),    T_(wk, 2), T_(bk, 1), T_(wv, 2),    T_(bv, 1),    T_(wd, 2),    T_(bd, 1),
    T_(ln1_g, 1), T_(ln1_b, 1), T_(wi, 4), T_(bi, 3), T_(wo, 4),    T_(bo, 1),    T_(ln2_g, 1), T_(ln2_b, 1),
#undef T_
};
enum { NTENSORS = sizeof tensors / sizeof *tensors };

static float *field(const fm_layer_view *v, int i) { return *(float *const *)((const char *)v + tensors[i].off); }

static size_t numel(const fm_config *c, int i) {
    const size_t H = (size_t)c->hidden_size, I = (size_t)c->intermediate_size;
    const size_t n[] = {0, H, H * H, I, I * H};
    return n[tensors[i].size];
}

/* The local share of tensor `whole` (PyTorch (out, in)) under d, built
 * from the block-cyclic map, independently of psgemr2d. */
static int share_ok(const fm_tp_grid *g, const fm_tp_dist *d, const float *whole, const float *local) {
    for (int j = 0; j < d->lc; j++)
        for (int i = 0; i < d->lr; i++) {
            int gi = fm_tp_dist_grow(d, g, i), gj = fm_tp_dist_gcol(d, g, j);
            /* column-major (in x out): element (gi, gj) is whole[gj * in + gi] */
            if (local[(size_t)j * (d->lr > 1 ? d->lr : 1) + i] != whole[(size_t)gj * d->in + gi]) return 0;
        }
    return 1;
}

static void run(fm_tp_sum how, const fm_config *c, fm_model *m, const fm_tp_grid *g) {
    const int B = 3, T = 11, H = c->hidden_size, BT = B * T;
    const size_t BTH = (size_t)BT * H;
    float mask[3 * 11];
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) mask[b * T + t] = t < T - 3 * b ? 1.0f : 0.0f;
    fm_batch batch = {.B = B, .T = T, .attn_mask = mask, .example0 = 5};
    fm_pass pass = {.seed = 77, .step = 3, .training = 1};

    float *x = fm_xalloc_floats(BTH), *dy = fm_xalloc_floats(BTH);
    float *y_ref = fm_xalloc_floats(BTH), *dx_ref = fm_xalloc_floats(BTH);
    float *y = fm_xalloc_floats(BTH), *dx = fm_xalloc_floats(BTH);
    fill(x, BTH, 100, 1.0f, 0.0f);
    fill(dy, BTH, 101, 1.0f, 0.0f);

    /* one rank */
    fm_model_zero_grads(m);
    fm_acts *a = fm_acts_new(c, B, T, 0, 1);
    fm_encoder_forward(m, a, &batch, &pass, 0, 1, x, y_ref);
    fm_encoder_backward(m, a, &batch, &pass, 0, 1, dy, dx_ref);
    fm_acts_free(a);

    /* P ranks */
    fm_tp_layer *L = fm_tp_layer_new(g, c, B, T);
    if (!L) {
        printf("rank %d: %s\n", rank, fm_last_error());
        failures++;
        return;
    }
    fm_tp_layer_set_sum(L, how);
    fm_tp_layer_scatter(L, &m->w.layer[0]);
    const char *tag = how == FM_TP_PSGEMM ? "psgemm" : "allreduce";
    char name[64];

    /* 2. the shares and the gathered parameters */
    fm_model back;
    fm_model_alloc(&back, c);
    fm_tp_layer_gather(L, 0, &back.w.layer[0]);
    if (rank == 0)
        for (int i = 0; i < NTENSORS; i++)
            if (memcmp(field(&m->w.layer[0], i), field(&back.w.layer[0], i), numel(c, i) * sizeof(float))) {
                printf("rank 0 %s: gathered %s differs from the original\n", tag, tensors[i].name);
                failures++;
            }
    fm_model_free(&back);
    {
        fm_tp_view *lv = fm_tp_layer_params(L);
        const fm_layer_view *w0 = &m->w.layer[0];
        fm_tp_dist dq, dbq, dd, di, dbi, dout;
        int hs = H / c->num_attention_heads, I = c->intermediate_size;
        int nbi = (I + g->size - 1) / g->size;
        fm_tp_dist_cols(&dq, g, H, H, hs);
        fm_tp_dist_cols(&dbq, g, 1, H, hs);
        fm_tp_dist_rows(&dd, g, H, H, hs);
        fm_tp_dist_cols(&di, g, H, I, nbi);
        fm_tp_dist_cols(&dbi, g, 1, I, nbi);
        fm_tp_dist_rows(&dout, g, I, H, nbi);
        struct {
            const char *n;
            const fm_tp_dist *d;
            const float *w, *l;
        } t[] = {{"wq", &dq, w0->wq, lv->wq}, {"bq", &dbq, w0->bq, lv->bq}, {"wk", &dq, w0->wk, lv->wk},
                 {"bk", &dbq, w0->bk, lv->bk}, {"wv", &dq, w0->wv, lv->wv}, {"bv", &dbq, w0->bv, lv->bv},
                 {"wd", &dd, w0->wd, lv->wd}, {"wi", &di, w0->wi, lv->wi}, {"bi", &dbi, w0->bi, lv->bi},
                 {"wo", &dout, w0->wo, lv->wo}};
        for (size_t i = 0; i < sizeof t / sizeof *t; i++)
            if (!share_ok(g, t[i].d, t[i].w, t[i].l)) {
                printf("rank %d %s: local share of %s is not its block-cyclic part\n", rank, tag, t[i].n);
                failures++;
            }
    }

    /* 1. output, input gradient, parameter gradients; 3. accumulation */
    fm_model gm;
    fm_model_alloc(&gm, c);
    for (int pass_no = 1; pass_no <= 2; pass_no++) {
        fm_tp_layer_forward(L, &batch, &pass, 0, x, y);
        fm_tp_layer_backward(L, &batch, &pass, 0, dy, dx);
        snprintf(name, sizeof name, "%s output", tag);
        check(name, y, y_ref, BTH, 1e-5, 0);
        snprintf(name, sizeof name, "%s d input", tag);
        check(name, dx, dx_ref, BTH, 1e-5, 0);
        fm_tp_layer_gather(L, 1, &gm.w.layer[0]);
        if (rank == 0) {
            float *want = fm_xalloc_floats((size_t)c->intermediate_size * H);
            for (int t = 0; t < NTENSORS; t++) {
                const float *ref = field(&m->g.layer[0], t);
                size_t n = numel(c, t);
                for (size_t i = 0; i < n; i++) want[i] = (float)pass_no * ref[i];
                snprintf(name, sizeof name, "%s pass %d d%s", tag, pass_no, tensors[t].name);
                /* b_K's gradient is exactly 0 (softmax ignores a shift
                 * shared by all keys): rounding, compared absolutely */
                check(name, field(&gm.w.layer[0], t), want, n, 1e-5, strcmp(tensors[t].name, "bk") ? 0 : 1e-7);
            }
            fm_free_aligned(want);
        }
    }
    fm_tp_counters cnt;
    fm_tp_layer_counters(L, &cnt);
    if (g->size > 1 && cnt.sums != 8) {
        printf("rank %d %s: %llu sums in two passes, expected 8\n", rank, tag, (unsigned long long)cnt.sums);
        failures++;
    }
    fm_model_free(&gm);
    fm_tp_layer_free(L);
    fm_free_aligned(x);
    fm_free_aligned(dy);
    fm_free_aligned(y_ref);
    fm_free_aligned(dx_ref);
    fm_free_aligned(y);
    fm_free_aligned(dx);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    fm_config c;
    fm_config_default(&c);
    c.vocab_size = 30;
    c.hidden_size = 64;
    c.num_hidden_layers = 1;
    c.num_attention_heads = 4;
    c.intermediate_size = 256;
    c.max_position_embeddings = 16;
    c.type_vocab_size = 2;
    c.hidden_dropout_prob = 0.1f;
    c.attention_probs_dropout_prob = 0.1f;
    fm_model m;
    fm_model_alloc(&m, &c);
    fm_model_init_weights(&m, 9);
    /* biases and LayerNorms away from 0 and 1, so their gradients matter */
    fm_layer_view *w = &m.w.layer[0];
    float *vecs[] = {w->bq, w->bk, w->bv, w->bd, w->ln1_b, w->bo, w->ln2_b};
    for (size_t i = 0; i < sizeof vecs / sizeof *vecs; i++) fill(vecs[i], (size_t)c.hidden_size, 10 + (uint32_t)i, 0.1f, 0.0f);
    fill(w->ln1_g, (size_t)c.hidden_size, 20, 0.1f, 1.0f);
    fill(w->ln2_g, (size_t)c.hidden_size, 21, 0.1f, 1.0f);
    fill(w->bi, (size_t)c.intermediate_size, 22, 0.1f, 0.0f);

    fm_tp_grid g;
    fm_tp_grid_init(&g, MPI_COMM_WORLD);
    run(FM_TP_ALLREDUCE, &c, &m, &g);
    run(FM_TP_PSGEMM, &c, &m, &g);
    fm_tp_grid_free(&g);
    fm_model_free(&m);

    int all = 0;
    MPI_Allreduce(&failures, &all, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    int size = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (rank == 0) printf("test_tp: %d ranks: %s (%d failures)\n", size, all ? "FAILED" : "PASSED", all);
    MPI_Finalize();
    return all ? 1 : 0;
}
