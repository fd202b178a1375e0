/* dp.c: bucketed, non-blocking gradient sums (see dp.h). */
#include "dp.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "fm.h"

void fm_dp_init(fm_dp *d, MPI_Comm comm) {
    memset(d, 0, sizeof *d);
    d->comm = comm;
    MPI_Comm_rank(comm, &d->rank);
    MPI_Comm_size(comm, &d->size);
    d->bucket_floats = (size_t)4 << 20;
}

void fm_dp_free(fm_dp *d) {
    free(d->req);
    d->req = NULL;
    d->nreq = d->capreq = 0;
}

/* FINEMASK_TEST_MPI_ERROR=K (tests only): the K-th step's first gradient
 * sum of this process is started with an invalid count. */
static int test_mpi_error(void) {
    static long calls;
    const char *e = getenv("FINEMASK_TEST_MPI_ERROR");
    if (!e || !*e) return 0;
    return ++calls == atol(e);
}

int fm_dp_sum_start(void *ctx, float *x, size_t n) {
    fm_dp *d = ctx;
    if (d->size == 1) return FM_OK; /* one replica: the sum is x itself, nothing to send */
    double t0 = MPI_Wtime();
    for (size_t off = 0; off < n;) {
        size_t k = n - off < d->bucket_floats ? n - off : d->bucket_floats;
        if (d->nreq == d->capreq) {
            d->capreq = d->capreq ? 2 * d->capreq : 64;
            d->req = fm_xrealloc(d->req, sizeof(MPI_Request) * (size_t)d->capreq);
        }
        int count = (int)k;
        if (!d->nreq && test_mpi_error()) count = -1; /* test hook: an MPI error (an invalid count) */
        int rc = MPI_Iallreduce(MPI_IN_PLACE, x + off, count, MPI_FLOAT, MPI_SUM, d->comm, &d->req[d->nreq]);
        if (rc != MPI_SUCCESS) {
            char e[MPI_MAX_ERROR_STRING];
            int len = 0;
            MPI_Error_string(rc, e, &len);
            return fm_fail("gradient allreduce of %zu floats failed: %s", k, e);
        }
        d->nreq++;
        d->calls++;
        d->bytes += 4 * (uint64_t)k;
        off += k;
    }
    d->seconds += MPI_Wtime() - t0;
    return FM_OK;
}

void fm_dp_progress(void *ctx) {
    fm_dp *d = ctx;
    if (!d->nreq) return;
    double t0 = MPI_Wtime();
    int flag;
    MPI_Testall(d->nreq, d->req, &flag, MPI_STATUSES_IGNORE);
    d->seconds += MPI_Wtime() - t0;
}

int fm_dp_sum_wait(void *ctx) {
    fm_dp *d = ctx;
    double t0 = MPI_Wtime();
    int rc = MPI_Waitall(d->nreq, d->req, MPI_STATUSES_IGNORE);
    d->nreq = 0;
    d->seconds += MPI_Wtime() - t0;
    if (rc != MPI_SUCCESS) {
        char e[MPI_MAX_ERROR_STRING];
        int len = 0;
        MPI_Error_string(rc, e, &len);
        return fm_fail("gradient allreduce failed: %s", e);
    }
    return FM_OK;
}
