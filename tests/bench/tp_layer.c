/* tp_layer.c: time of one encoder layer's forward + backward, tensor-parallel
 * over the ranks of mpiexec (mpi/tp.c) against the one-rank layer
 * (fm_encoder_forward/backward), and the bytes it communicates.
 *
 * Usage: bench_tp_layer [H A I B T REPS ONE_PT]
 *        (default BERT-base: 768 12 3072 8 128 7 0)
 *
 * In one run, REPS rounds of, in turn:
 *   one-1t  rank 0 alone, 1 thread (the other ranks wait without spinning);
 *   one-Pt  rank 0 alone, P threads (the same cores as the P ranks), when
 *           ONE_PT is 1 (OpenMP's barriers spin: on a loaded machine this
 *           one can take many times longer than one thread);
 *   tp-ar   all P ranks, 1 thread each, sums by MPI_Allreduce;
 *   tp-pg   all P ranks, 1 thread each, W_D and W_O forward sums by psgemm_ +
 *           MPI_Bcast.
 * Prints each one's median and minimum (seconds), the ratios of the medians,
 * the layer's count of sums and their payload bytes, and the bytes each
 * rank sent through MPI during one tp-ar and one tp-pg step, counted by
 * wrappers of MPI's send and collective calls (below; psgemm_'s BLACS
 * messages included). Dropout on (training). Timing barriers and the
 * reduction of the timings are not counted. */
#define _POSIX_C_SOURCE 200809L
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mpi.h>

#include "blas.h"
#include "fm.h"
#include "model.h"
#include "rng.h"
#include "tp.h"

static int rank, size;

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* A barrier that sleeps instead of spinning, so a waiting rank leaves its
 * core to the rank that computes. */
static void quiet_barrier(void) {
    MPI_Request r;
    int done = 0;
    MPI_Ibarrier(MPI_COMM_WORLD, &r);
    while (!done) {
        MPI_Test(&r, &done, MPI_STATUS_IGNORE);
        if (!done) nanosleep(&(struct timespec){.tv_nsec = 200000}, NULL);
    }
}

static void threads(int n) {
    omp_set_num_threads(n);
    fm_blas_set_threads(n);
}

/* ---- bytes sent, counted through MPI's profiling interface ----------------
 * Every send this process makes (the BLACS messages inside psgemm_ and
 * psgemr2d_ included) passes through these wrappers. Point-to-point sends
 * count their bytes; a collective counts what this rank puts on the wire in
 * the usual algorithms for the payload n: a broadcast's root (P-1) n (a
 * binomial tree sends (P-1) n in all), a reduce's non-root ranks n, an
 * allreduce 2 (P-1)/P n per rank (ring; recursive doubling sends n at P = 2
 * too). */
static double sent;

static double nbytes(int count, MPI_Datatype t) {
    int sz = 0;
    PMPI_Type_size(t, &sz);
    return (double)count * sz;
}

int MPI_Send(const void *buf, int count, MPI_Datatype t, int dest, int tag, MPI_Comm comm) {
    sent += nbytes(count, t);
    return PMPI_Send(buf, count, t, dest, tag, comm);
}

int MPI_Isend(const void *buf, int count, MPI_Datatype t, int dest, int tag, MPI_Comm comm, MPI_Request *r) {
    sent += nbytes(count, t);
    return PMPI_Isend(buf, count, t, dest, tag, comm, r);
}

int MPI_Rsend(const void *buf, int count, MPI_Datatype t, int dest, int tag, MPI_Comm comm) {
    sent += nbytes(count, t);
    return PMPI_Rsend(buf, count, t, dest, tag, comm);
}

int MPI_Irsend(const void *buf, int count, MPI_Datatype t, int dest, int tag, MPI_Comm comm, MPI_Request *r) {
    sent += nbytes(count, t);
    return PMPI_Irsend(buf, count, t, dest, tag, comm, r);
}

int MPI_Sendrecv(const void *sb, int sc, MPI_Datatype st, int dest, int stag, void *rb, int rc, MPI_Datatype rt,
                 int src, int rtag, MPI_Comm comm, MPI_Status *status) {
    sent += nbytes(sc, st);
    return PMPI_Sendrecv(sb, sc, st, dest, stag, rb, rc, rt, src, rtag, comm, status);
}

int MPI_Bcast(void *buf, int count, MPI_Datatype t, int root, MPI_Comm comm) {
    int r, p;
    PMPI_Comm_rank(comm, &r);
    PMPI_Comm_size(comm, &p);
    if (r == root) sent += (p - 1) * nbytes(count, t);
    return PMPI_Bcast(buf, count, t, root, comm);
}

int MPI_Reduce(const void *sb, void *rb, int count, MPI_Datatype t, MPI_Op op, int root, MPI_Comm comm) {
    int r;
    PMPI_Comm_rank(comm, &r);
    if (r != root) sent += nbytes(count, t);
    return PMPI_Reduce(sb, rb, count, t, op, root, comm);
}

int MPI_Allreduce(const void *sb, void *rb, int count, MPI_Datatype t, MPI_Op op, MPI_Comm comm) {
    int p;
    PMPI_Comm_size(comm, &p);
    sent += 2.0 * (p - 1) / p * nbytes(count, t);
    return PMPI_Allreduce(sb, rb, count, t, op, comm);
}

int main(int argc, char **argv) {
    fm_blas_init(argv);
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int H = argc > 1 ? atoi(argv[1]) : 768, A = argc > 2 ? atoi(argv[2]) : 12;
    int I = argc > 3 ? atoi(argv[3]) : 3072, B = argc > 4 ? atoi(argv[4]) : 8;
    int T = argc > 5 ? atoi(argv[5]) : 128, reps = argc > 6 ? atoi(argv[6]) : 7;
    if (reps < 1 || reps > 100) reps = 7;
    const int one_pt = argc > 7 ? atoi(argv[7]) : 0;

    fm_config c;
    fm_config_default(&c);
    c.vocab_size = 8; /* only the layer is run */
    c.hidden_size = H;
    c.num_attention_heads = A;
    c.intermediate_size = I;
    c.num_hidden_layers = 1;
    c.max_position_embeddings = T > 512 ? T : 512;
    const size_t BTH = (size_t)B * T * H;
    fm_batch batch = {.B = B, .T = T, .example0 = 0};
    fm_pass pass = {.seed = 1, .step = 1, .training = 1};

    float *x = fm_xalloc_floats(BTH), *dy = fm_xalloc_floats(BTH);
    float *y = fm_xalloc_floats(BTH), *dx = fm_xalloc_floats(BTH);
    fm_rng_normals(5, FM_RNG_DATA, 0, 1, x, BTH);
    fm_rng_normals(5, FM_RNG_DATA, 0, 2, dy, BTH);

    fm_model m;
    fm_acts *a = NULL;
    fm_model_alloc(&m, &c);
    fm_model_init_weights(&m, 3);
    if (rank == 0) a = fm_acts_new(&c, B, T, 0, 1);

    fm_tp_grid g;
    fm_tp_grid_init(&g, MPI_COMM_WORLD);
    fm_tp_layer *L = fm_tp_layer_new(&g, &c, B, T);
    if (!L) {
        if (rank == 0) fprintf(stderr, "bench_tp_layer: %s\n", fm_last_error());
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    fm_tp_layer_scatter(L, &m.w.layer[0]);
    fm_tp_layer_set_sum(L, FM_TP_PSGEMM); /* allocates psgemm's buffer; set per round below */

    double *t1 = calloc((size_t)reps, sizeof *t1), *tP = calloc((size_t)reps, sizeof *tP);
    double *tar = calloc((size_t)reps, sizeof *tar), *tpg = calloc((size_t)reps, sizeof *tpg);
    double sent_ar = 0, sent_pg = 0;
    double *sar = calloc((size_t)reps, sizeof *sar), *spg = calloc((size_t)reps, sizeof *spg);
    fm_tp_counters c0, c1;
    fm_tp_layer_counters(L, &c0);
    for (int r = -1; r < reps; r++) { /* round -1 warms up */
        for (int nt = 1; nt <= 1 + one_pt; nt++) {
            int n = nt == 1 ? 1 : size;
            if (rank == 0) {
                threads(n);
                double t0 = MPI_Wtime();
                fm_encoder_forward(&m, a, &batch, &pass, 0, 1, x, y);
                fm_encoder_backward(&m, a, &batch, &pass, 0, 1, dy, dx);
                if (r >= 0) (nt == 1 ? t1 : tP)[r] = MPI_Wtime() - t0;
            }
            quiet_barrier();
        }
        threads(1);
        for (int how = 0; how < 2; how++) {
            fm_tp_layer_set_sum(L, how ? FM_TP_PSGEMM : FM_TP_ALLREDUCE);
            MPI_Barrier(MPI_COMM_WORLD);
            fm_tp_counters k0, k1;
            fm_tp_layer_counters(L, &k0);
            double s0 = sent, t0 = MPI_Wtime();
            fm_tp_layer_forward(L, &batch, &pass, 0, x, y);
            fm_tp_layer_backward(L, &batch, &pass, 0, dy, dx);
            double t = MPI_Wtime() - t0, s = sent - s0;
            PMPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
            fm_tp_layer_counters(L, &k1);
            double ts = k1.seconds - k0.seconds; /* rank 0's time in the sums */
            if (r >= 0) (how ? tpg : tar)[r] = t;
            if (r >= 0) (how ? spg : sar)[r] = ts;
            if (r == 0) *(how ? &sent_pg : &sent_ar) = s;
            if (r == -1 && how == 0) fm_tp_layer_counters(L, &c1);
        }
    }
    double sent_ar_max = sent_ar, sent_pg_max = sent_pg, sent_ar_min = sent_ar, sent_pg_min = sent_pg;
    PMPI_Allreduce(MPI_IN_PLACE, &sent_ar_max, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    PMPI_Allreduce(MPI_IN_PLACE, &sent_pg_max, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    PMPI_Allreduce(MPI_IN_PLACE, &sent_ar_min, 1, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
    PMPI_Allreduce(MPI_IN_PLACE, &sent_pg_min, 1, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
    size_t tp_bytes = fm_tp_layer_bytes(L), tp_bytes_max = tp_bytes;
    PMPI_Allreduce(MPI_IN_PLACE, &tp_bytes_max, 1, MPI_UNSIGNED_LONG, MPI_MAX, MPI_COMM_WORLD);
    if (rank == 0) {
        double m1 = median(t1, reps), mP = median(tP, reps), mar = median(tar, reps), mpg = median(tpg, reps);
        int Al, Il;
        fm_tp_layer_shares(L, &Al, &Il);
        printf("encoder layer H %d, %d heads, I %d, batch %d x %d, forward + backward, dropout on\n", H, A, I, B, T);
        printf("ranks %d; rank 0 holds %d heads and %d intermediate features; %d rounds, medians (min)\n", size, Al,
               Il, reps);
        printf("  one rank, 1 thread     %8.4f s  (%.4f)\n", m1, t1[0]);
        if (one_pt) printf("  one rank, %d threads    %8.4f s  (%.4f)\n", size, mP, tP[0]);
        printf("  tp %d, allreduce        %8.4f s  (%.4f)\n", size, mar, tar[0]);
        printf("  tp %d, psgemm + bcast   %8.4f s  (%.4f)\n", size, mpg, tpg[0]);
        printf("rank 0's time inside the sums, medians: allreduce %.4f s, psgemm + bcast %.4f s\n", median(sar, reps),
               median(spg, reps));
        printf("ratios of medians: tp-allreduce / one-1t %.3f; tp-psgemm / tp-allreduce %.3f\n", mar / m1, mpg / mar);
        if (one_pt) printf("ratio of medians: tp-allreduce / one-%dt %.3f\n", size, mar / mP);
        printf("sums per layer step: %llu of %llu bytes each (payload %.2f MiB per rank)\n",
               (unsigned long long)(c1.sums - c0.sums),
               (unsigned long long)((c1.sum_bytes - c0.sum_bytes) / (c1.sums - c0.sums ? c1.sums - c0.sums : 1)),
               (double)(c1.sum_bytes - c0.sum_bytes) / 1048576.0);
        printf("ring allreduce sends 2(P-1)/P of the payload per rank: %.2f MiB per rank per layer step\n",
               2.0 * (size - 1) / size * (double)(c1.sum_bytes - c0.sum_bytes) / 1048576.0);
        printf("bytes sent through MPI in one layer step, min-max over ranks: allreduce %.2f-%.2f MiB, psgemm "
               "%.2f-%.2f MiB\n",
               sent_ar_min / 1048576.0, sent_ar_max / 1048576.0, sent_pg_min / 1048576.0, sent_pg_max / 1048576.0);
        /* the one-rank layer: its parameters and gradients, and the
         * activations fm_acts_new holds for one layer (with the small
         * embeddings' share: V = 8) */
        const double layer_floats = 4.0 * H * H + 2.0 * H * I + 9.0 * H + I;
        printf("memory per rank: tp layer (parameters, gradients, activations, scratch) %.1f MiB (max over ranks); "
               "one-rank layer %.1f MiB (%.1f of parameters and gradients)\n",
               (double)tp_bytes_max / 1048576.0, (2 * 4 * layer_floats + (double)fm_acts_bytes(a)) / 1048576.0,
               2 * 4 * layer_floats / 1048576.0);
    }
    free(t1);
    free(tP);
    free(tar);
    free(tpg);
    free(sar);
    free(spg);
    fm_tp_layer_free(L);
    fm_tp_grid_free(&g);
    if (a) fm_acts_free(a);
    fm_model_free(&m);
    fm_free_aligned(x);
    fm_free_aligned(dy);
    fm_free_aligned(y);
    fm_free_aligned(dx);
    MPI_Finalize();
    return 0;
}
