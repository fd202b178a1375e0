/* blas.c: the BLIS wrapper (see blas.h). */
#define _GNU_SOURCE
#include "blas.h"

#include <assert.h>
#include <blis.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fm.h"

static int blas_threads = 1;
static double flops_total;
static int recording;
static fm_gemm_shape shapes[256];
static int nshapes;

int fm_cpu_has_avx512(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
}

int fm_cpu_has_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

int fm_cpu_has_pclmul(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("pclmul");
#else
    return 1;
#endif
}

const char *fm_blas_arch(void) { return bli_arch_string(bli_arch_query_id()); }

int fm_blas_arch_id(void) { return (int)bli_arch_query_id(); }

static char choice[256];

const char *fm_blas_choice(void) { return choice; }

/* A kernel set that needs only AVX2 and FMA. */
static int is_avx2_set(arch_t id) {
    return id == BLIS_ARCH_HASWELL || id == BLIS_ARCH_ZEN || id == BLIS_ARCH_ZEN2 || id == BLIS_ARCH_ZEN3;
}

/* The rule (blas.h): skx wherever the CPU has the AVX-512 subsets skx's
 * kernels use; else BLIS's own AVX2 choice (haswell on Intel, zen* on AMD),
 * or haswell where BLIS fell back to generic on an AVX2 CPU. */
static arch_t wanted_arch(arch_t blis_choice) {
    if (fm_cpu_has_avx512()) return BLIS_ARCH_SKX;
    if (fm_cpu_has_avx2()) return is_avx2_set(blis_choice) ? blis_choice : BLIS_ARCH_HASWELL;
    return blis_choice;
}

void fm_blas_init(char **argv) {
    bli_init();
    const arch_t id = bli_arch_query_id();
    const char *cpu = fm_cpu_has_avx512() ? "AVX-512" : fm_cpu_has_avx2() ? "AVX2" : "no AVX2";
    const char *user = getenv("BLIS_ARCH_TYPE");
    const char *from = getenv("FINEMASK_BLIS_FROM"); /* set by the re-execution below */
    if (from && user) {
        snprintf(choice, sizeof choice, "kernel set %s (BLIS's own choice was %s; CPU with %s)", bli_arch_string(id),
                 from, cpu);
        unsetenv("FINEMASK_BLIS_FROM");
    } else if (user) {
        snprintf(choice, sizeof choice, "kernel set %s (BLIS_ARCH_TYPE=%s set by the user; CPU with %s)",
                 bli_arch_string(id), user, cpu);
    } else {
        const arch_t want = wanted_arch(id);
        if (want != id && getenv("FINEMASK_NO_BLIS_FIX") == NULL && argv && argv[0]) {
            char val[16];
            snprintf(val, sizeof val, "%d", (int)want);
            setenv("BLIS_ARCH_TYPE", val, 1);
            setenv("FINEMASK_BLIS_FROM", bli_arch_string(id), 1);
            execv("/proc/self/exe", argv);
            /* exec failed: go on with BLIS's choice, and say so. */
            unsetenv("BLIS_ARCH_TYPE");
            unsetenv("FINEMASK_BLIS_FROM");
        }
        if (want != id)
            fprintf(stderr,
                    "finemask: warning: BLIS runs its %s kernels on a CPU with %s; %s is faster: "
                    "set BLIS_ARCH_TYPE=%d\n",
                    bli_arch_string(id), cpu, bli_arch_string(want), (int)want);
        snprintf(choice, sizeof choice, "kernel set %s (BLIS's own choice; CPU with %s)", bli_arch_string(id), cpu);
    }
    const char *nt = getenv("BLIS_NUM_THREADS");
    if (nt && atoi(nt) > 0)
        blas_threads = atoi(nt);
    else
        blas_threads = omp_get_max_threads();
    fm_debug("BLIS %s, %s, %d thread(s)", bli_info_get_version_str(), choice, blas_threads);
}

void fm_blas_set_threads(int n) { blas_threads = n > 0 ? n : 1; }
int fm_blas_threads(void) { return blas_threads; }

static void note(int m, int n, int k, int single) {
    double f = 2.0 * m * n * k;
#pragma omp atomic
    flops_total += f;
    if (!recording) return;
#pragma omp critical(fm_blas_record)
    {
        int i;
        for (i = 0; i < nshapes; i++)
            if (shapes[i].m == m && shapes[i].n == n && shapes[i].k == k && shapes[i].single_thread == single) break;
        if (i < nshapes)
            shapes[i].count++;
        else if (nshapes < (int)(sizeof shapes / sizeof shapes[0]))
            shapes[nshapes++] = (fm_gemm_shape){m, n, k, single, 1};
    }
}

static void gemm(int nthreads, int m, int n, int k, float alpha, const float *a, ptrdiff_t rsa, ptrdiff_t csa,
                 const float *b, ptrdiff_t rsb, ptrdiff_t csb, float beta, float *c, ptrdiff_t rsc, ptrdiff_t csc) {
    if (m <= 0 || n <= 0) return;
    rntm_t rntm = BLIS_RNTM_INITIALIZER;
    bli_rntm_set_num_threads(nthreads, &rntm);
    bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, m, n, k, &alpha, (float *)a, rsa, csa, (float *)b, rsb, csb,
                 &beta, c, rsc, csc, NULL, &rntm);
}

void fm_sgemm(int m, int n, int k, float alpha, const float *a, ptrdiff_t rsa, ptrdiff_t csa, const float *b,
              ptrdiff_t rsb, ptrdiff_t csb, float beta, float *c, ptrdiff_t rsc, ptrdiff_t csc) {
    note(m, n, k, 0);
    gemm(blas_threads, m, n, k, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc);
}

void fm_sgemm_1t(int m, int n, int k, float alpha, const float *a, ptrdiff_t rsa, ptrdiff_t csa, const float *b,
                 ptrdiff_t rsb, ptrdiff_t csb, float beta, float *c, ptrdiff_t rsc, ptrdiff_t csc) {
    note(m, n, k, 1);
    gemm(1, m, n, k, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc);
}

/* 1 when BLIS runs a call of these sizes through its small-matrix path. */
static int uses_sup(int m, int n, int k) {
    return bli_cntx_l3_sup_thresh_is_met(BLIS_FLOAT, m, n, k, bli_gks_query_cntx()) ? 1 : 0;
}

int fm_sgemm_small_path(int m, int n, int k) { return uses_sup(m, n, k); }

static void gemm_path(int sup, int m, int n, int k, float alpha, const float *a, ptrdiff_t rsa, ptrdiff_t csa,
                      const float *b, ptrdiff_t rsb, ptrdiff_t csb, float beta, float *c, ptrdiff_t rsc,
                      ptrdiff_t csc) {
    if (m <= 0 || n <= 0) return;
    rntm_t rntm = BLIS_RNTM_INITIALIZER;
    bli_rntm_set_num_threads(blas_threads, &rntm);
    if (sup)
        bli_rntm_enable_l3_sup(&rntm);
    else
        bli_rntm_disable_l3_sup(&rntm);
    bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, m, n, k, &alpha, (float *)a, rsa, csa, (float *)b, rsb, csb,
                 &beta, c, rsc, csc, NULL, &rntm);
}

void fm_sgemm_rows_of(int m_like, int m, int n, int k, float alpha, const float *a, ptrdiff_t rsa, ptrdiff_t csa,
                      const float *b, ptrdiff_t rsb, ptrdiff_t csb, float beta, float *c, ptrdiff_t rsc,
                      ptrdiff_t csc) {
    note(m, n, k, 0);
    gemm_path(uses_sup(m_like, n, k), m, n, k, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc);
}

void fm_sgemm_sparse_k(int m, int n, int K, const int *kidx, int nk, float alpha, const float *a, ptrdiff_t rsa,
                       ptrdiff_t csa, const float *b, ptrdiff_t rsb, ptrdiff_t csb, float beta, float *c,
                       ptrdiff_t rsc, ptrdiff_t csc) {
    note(m, n, nk, 0);
    if (m <= 0 || n <= 0) return;
    if (uses_sup(m, n, K)) {
        gemm_path(1, m, n, nk, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc);
        return;
    }
    /* The conventional path splits k as bli_determine_blocksize_f_sub does:
     * blocks of KC, the last one up to KC_max long; C gets beta on the first
     * block and each block's sum in turn. */
    cntx_t *cx = bli_gks_query_cntx();
    const int kc = (int)bli_cntx_get_blksz_def_dt(BLIS_FLOAT, BLIS_KC, cx);
    const int kmax = (int)bli_cntx_get_blksz_max_dt(BLIS_FLOAT, BLIS_KC, cx);
    int j = 0;
    for (int i = 0; i < K;) {
        int len = K - i <= kmax ? K - i : kc, j1 = j;
        while (j1 < nk && kidx[j1] < i + len) j1++;
        if (j1 > j) {
            gemm_path(0, m, n, j1 - j, alpha, a + (ptrdiff_t)j * csa, rsa, csa, b + (ptrdiff_t)j * rsb, rsb, csb,
                      beta, c, rsc, csc);
        } else if (beta != 1.0f) {
            for (int r = 0; r < m; r++)
                for (int q = 0; q < n; q++) {
                    float *cij = &c[r * rsc + q * csc];
                    *cij = beta == 0.0f ? 0.0f : beta * *cij;
                }
        }
        beta = 1.0f;
        j = j1;
        i += len;
    }
    assert(j == nk);
}

void fm_sgemm_ref(int m, int n, int k, float alpha, const float *a, ptrdiff_t rsa, ptrdiff_t csa, const float *b,
                  ptrdiff_t rsb, ptrdiff_t csb, float beta, float *c, ptrdiff_t rsc, ptrdiff_t csc) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int p = 0; p < k; p++) s += (double)a[i * rsa + p * csa] * (double)b[p * rsb + j * csb];
            float *cij = &c[i * rsc + j * csc];
            *cij = (float)(alpha * s + (beta == 0.0f ? 0.0 : (double)beta * (double)*cij));
        }
}

double fm_blas_flops(void) { return flops_total; }
void fm_blas_reset_flops(void) { flops_total = 0; }

void fm_blas_record(int on) {
    if (on) nshapes = 0;
    recording = on;
}

const fm_gemm_shape *fm_blas_shapes(int *n) {
    *n = nshapes;
    return shapes;
}
