/* world.c: data parallelism over MPI_COMM_WORLD (see world.h). */
#include "world.h"

#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>

#include "coll.h"
#include "fm.h"

static int launched(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK") || getenv("PMI_SIZE");
}

int fm_world_init(fm_world *d) {
    d->rank = 0;
    d->size = 1;
    d->mpi = 0;
    int on = 0;
    MPI_Initialized(&on);
    if (!on) {
        if (!launched()) return FM_OK;
        if (fm_mpi_init(NULL, NULL) != FM_OK) return FM_ERR;
    }
    d->mpi = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->size);
    return FM_OK;
}

void fm_world_sum_floats(const fm_world *d, float *buf, size_t n) {
    if (!d->mpi || d->size == 1) return;
    /* in chunks below INT_MAX elements */
    const size_t chunk = (size_t)1 << 30;
    for (size_t i = 0; i < n; i += chunk) {
        size_t k = n - i < chunk ? n - i : chunk;
        MPI_Allreduce(MPI_IN_PLACE, buf + i, (int)k, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    }
}

void fm_world_sum_doubles(const fm_world *d, double *buf, int n) {
    if (!d->mpi || d->size == 1) return;
    MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}

int fm_world_all_ok(const fm_world *d, int ok) {
    if (!d->mpi || d->size == 1) return ok != 0;
    int v = ok != 0, all = 0;
    MPI_Allreduce(&v, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    return all;
}

void fm_world_barrier(const fm_world *d) {
    if (d->mpi && d->size > 1) MPI_Barrier(MPI_COMM_WORLD);
}
