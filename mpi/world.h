/* world.h: the world of commands that run one job on every rank (pretrain,
 * demo): start MPI when a launcher started us; rank, size, and the few
 * collectives the demo needs between its phases. A training's sums go
 * through the engine's communication table (comm.h's fm_mpi_comm_world).
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
/* 1 when every rank passed ok != 0 (a collective error check). */
int fm_world_all_ok(const fm_world *d, int ok);
void fm_world_barrier(const fm_world *d);

#endif
