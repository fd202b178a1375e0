/* world.h: plain data parallelism over MPI_COMM_WORLD for commands that run one
 * job on every rank (pretrain): start MPI when a launcher started us, sum
 * gradients and loss counters over the ranks.
 *
 * When no launcher variables are set (OMPI_COMM_WORLD_SIZE, PMIX_RANK,
 * PMI_RANK, PMI_SIZE) MPI is not started at all and the world is one rank.
 * MPI is started at most once per process (MPI_Initialized is checked, so a
 * module that started it first is fine) and finalized at exit. */
#ifndef FM_MPI_WORLD_H
#define FM_MPI_WORLD_H

#include <stddef.h>

typedef struct {
    int rank, size;
    int mpi; /* MPI is running (under a launcher) */
} fm_world;

/* Join the world: rank and size (0 and 1 without a launcher). */
int fm_world_init(fm_world *d);
/* Sum n floats over the ranks in place (a no-op on one rank). Collective. */
void fm_world_sum_floats(const fm_world *d, float *buf, size_t n);
/* Sum n doubles over the ranks in place. Collective. */
void fm_world_sum_doubles(const fm_world *d, double *buf, int n);
/* 1 when every rank passed ok != 0 (a collective error check). */
int fm_world_all_ok(const fm_world *d, int ok);
void fm_world_barrier(const fm_world *d);

#endif
