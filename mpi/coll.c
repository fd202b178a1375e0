/* coll.c: start-up, broadcasts and the final gather (see coll.h). */
#include "coll.h"

#include <limits.h>
#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>

#include "fm.h"

void fm_mpi_finalize(void) {
    int on = 0, done = 0;
    MPI_Initialized(&on);
    MPI_Finalized(&done);
    if (on && !done) MPI_Finalize();
}

int fm_mpi_init(int *argc, char ***argv) {
    int provided, on = 0;
    MPI_Initialized(&on); /* `finemask demo` starts MPI for pre-training first */
    if (on) return FM_OK;
    int rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) return fm_fail("MPI_Init_thread failed (MPI error %d)", rc);
    if (provided < MPI_THREAD_FUNNELED)
        return fm_fail("MPI provides thread level %d; finemask needs MPI_THREAD_FUNNELED", provided);
    atexit(fm_mpi_finalize); /* an early error exit still finalizes */
    return FM_OK;
}

int fm_mpi_world_rank(void) {
    int r;
    MPI_Comm_rank(MPI_COMM_WORLD, &r);
    return r;
}

int fm_mpi_world_size(void) {
    int r;
    MPI_Comm_size(MPI_COMM_WORLD, &r);
    return r;
}

double fm_mpi_wtime(void) { return MPI_Wtime(); }

void fm_bcast_doubles(double *x, int n) { MPI_Bcast(x, n, MPI_DOUBLE, 0, MPI_COMM_WORLD); }

int fm_any(int flag) {
    int out = 0;
    MPI_Allreduce(&flag, &out, 1, MPI_INT, MPI_LOR, MPI_COMM_WORLD);
    return out;
}

int fm_gather_bytes(const void *buf, size_t len, unsigned char **all, size_t *all_len) {
    int rank = fm_mpi_world_rank(), size = fm_mpi_world_size();
    long long mine = (long long)len;
    long long *lens = rank == 0 ? fm_xmalloc(sizeof(long long) * (size_t)size) : NULL;
    MPI_Gather(&mine, 1, MPI_LONG_LONG, lens, 1, MPI_LONG_LONG, 0, MPI_COMM_WORLD);
    int *counts = NULL, *displs = NULL, ok = 1;
    long long total = 0;
    if (rank == 0) {
        counts = fm_xmalloc(sizeof(int) * (size_t)size);
        displs = fm_xmalloc(sizeof(int) * (size_t)size);
        for (int i = 0; i < size; i++) {
            displs[i] = (int)total;
            counts[i] = (int)lens[i];
            total += lens[i];
        }
        ok = total <= INT_MAX;
    }
    MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (!ok) {
        free(lens);
        free(counts);
        free(displs);
        return fm_fail("final gather: %lld bytes of results exceed one MPI_Gatherv", total);
    }
    unsigned char *out = rank == 0 ? fm_xmalloc((size_t)total + 1) : NULL;
    MPI_Gatherv(buf, (int)len, MPI_BYTE, out, counts, displs, MPI_BYTE, 0, MPI_COMM_WORLD);
    free(lens);
    free(counts);
    free(displs);
    *all = out;
    *all_len = (size_t)total;
    return FM_OK;
}

void fm_gather_doubles(const double *x, int k, double *all) {
    MPI_Gather(x, k, MPI_DOUBLE, all, k, MPI_DOUBLE, 0, MPI_COMM_WORLD);
}
