/* world.c: the world of commands that run one job on every rank (see world.h). */
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

int fm_world_all_ok(const fm_world *d, int ok) {
    if (!d->mpi || d->size == 1) return ok != 0;
    int v = ok != 0, all = 0;
    MPI_Allreduce(&v, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    return all;
}

void fm_world_barrier(const fm_world *d) {
    if (d->mpi && d->size > 1) MPI_Barrier(MPI_COMM_WORLD);
}
