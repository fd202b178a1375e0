/* blas.h: the one BLIS wrapper. No other file calls BLIS. Matrices are
 * pointer + row stride + column stride (a transpose is a swap of strides). */
#ifndef FM_BLAS_H
#define FM_BLAS_H

#include <stddef.h>

/* Initialise BLIS and choose its kernel set. BLIS 0.9 picks by CPU model
 * and not always its best set (generic on AMD Zen 5, haswell on Intel
 * Sapphire Rapids). The rule: skx (AVX-512) on a CPU with AVX-512 F, DQ, BW
 * and VL; otherwise BLIS's own AVX2 set (haswell, zen, zen2, zen3) on a CPU
 * with AVX2 and FMA, or haswell when BLIS chose generic there; otherwise
 * BLIS's choice. A rule rather than a timing at start-up, so that a machine
 * always runs the same kernels and a run gives the same bits every time.
 * When BLIS's choice differs and BLIS_ARCH_TYPE is unset, the program
 * re-executes itself (argv) with BLIS_ARCH_TYPE naming the set; a
 * BLIS_ARCH_TYPE the user set is honoured; with FINEMASK_NO_BLIS_FIX set it
 * only warns. Call first thing in main, before MPI_Init. */
void fm_blas_init(char **argv);
/* Name of the kernel set BLIS runs ("skx", "zen3", "generic"). */
const char *fm_blas_arch(void);
/* Its number, as BLIS_ARCH_TYPE takes it (0 = skx, 3 = haswell, 6 = zen3 in
 * Debian's BLIS 0.9), to give another program using BLIS the same set. */
int fm_blas_arch_id(void);
/* One line on the kernel set and why it was chosen, for the log. */
const char *fm_blas_choice(void);
/* 1 when the CPU has AVX-512F / AVX2+FMA (what the kernels could use). */
int fm_cpu_has_avx512(void);
int fm_cpu_has_avx2(void);
/* 1 unless an x86-64 CPU lacks PCLMULQDQ (Nehalem, inside the portable
 * build's x86-64-v2 baseline): ISA-L's dispatcher runs its carry-less
 * multiply CRC code on any SSE4.1 CPU, so the CRC callers (io/modeldir.c,
 * io/maskfile.c) pick ISA-L's generic code themselves there; it gives the
 * same CRC. */
int fm_cpu_has_pclmul(void);

/* Threads BLIS uses for one fm_sgemm call. */
void fm_blas_set_threads(int n);
int fm_blas_threads(void);

/* C (m x n) = alpha * A (m x k) * B (k x n) + beta * C, all single precision,
 * each matrix given by pointer, row stride and column stride. Uses the
 * configured thread count. */
void fm_sgemm(int m, int n, int k, float alpha, const float *a, ptrdiff_t rsa, ptrdiff_t csa, const float *b,
              ptrdiff_t rsb, ptrdiff_t csb, float beta, float *c, ptrdiff_t rsc, ptrdiff_t csc);
/* The same on one thread: for calls made from inside a parallel loop. */
void fm_sgemm_1t(int m, int n, int k, float alpha, const float *a, ptrdiff_t rsa, ptrdiff_t csa, const float *b,
                 ptrdiff_t rsb, ptrdiff_t csb, float beta, float *c, ptrdiff_t rsc, ptrdiff_t csc);
/* 1 when BLIS runs an (m x k) by (k x n) product through its small-matrix
 * ("sup") path, 0 for its conventional path. */
int fm_sgemm_small_path(int m, int n, int k);
/* fm_sgemm for m rows that stand for rows of a call of m_like >= m rows:
 * BLIS takes the path (small-matrix "sup" or conventional) it would take
 * for m_like rows, so that on the conventional path each row of C gets the
 * bits it gets in the bigger call (its kernels do not depend on m there). */
void fm_sgemm_rows_of(int m_like, int m, int n, int k, float alpha, const float *a, ptrdiff_t rsa, ptrdiff_t csa,
                      const float *b, ptrdiff_t rsb, ptrdiff_t csb, float beta, float *c, ptrdiff_t rsc,
                      ptrdiff_t csc);
/* C (m x n) = alpha A B + beta C for a reduction of length K whose terms are
 * zero except at the nk ascending indices kidx: a holds those nk columns of
 * A, b those nk rows of B (strides as fm_sgemm). On BLIS's conventional path
 * for (m, n, K) the result has the bits of fm_sgemm over the zero-filled
 * (m x K) and (K x n) operands: the terms are summed in the same k blocks. */
void fm_sgemm_sparse_k(int m, int n, int K, const int *kidx, int nk, float alpha, const float *a, ptrdiff_t rsa,
                       ptrdiff_t csa, const float *b, ptrdiff_t rsb, ptrdiff_t csb, float beta, float *c,
                       ptrdiff_t rsc, ptrdiff_t csc);
/* Plain triple loop in double accumulation: the reference beside the fast one. */
void fm_sgemm_ref(int m, int n, int k, float alpha, const float *a, ptrdiff_t rsa, ptrdiff_t csa, const float *b,
                  ptrdiff_t rsb, ptrdiff_t csb, float beta, float *c, ptrdiff_t rsc, ptrdiff_t csc);

/* Flop accounting and shape recording, for the benchmark. */
typedef struct {
    int m, n, k;
    int single_thread; /* called through fm_sgemm_1t */
    long count;        /* calls with this shape */
} fm_gemm_shape;

/* Total flops (2mnk per call) since the last reset. */
double fm_blas_flops(void);
void fm_blas_reset_flops(void);
/* Start or stop recording the distinct shapes of fm_sgemm / fm_sgemm_1t calls. */
void fm_blas_record(int on);
/* The recorded shapes (valid until the next fm_blas_record(1)). */
const fm_gemm_shape *fm_blas_shapes(int *n);

#endif
