/* comm.h: the engine's communication table (src/engine.h's fm_comm) filled
 * with MPI: the bucketed gradient sums of dp.h over the replicas of a stage,
 * and pipe.h's messages, sums, broadcasts and agreements over the stages of
 * a replica and the whole team. */
#ifndef FM_MPI_COMM_H
#define FM_MPI_COMM_H

#include "dp.h"
#include "engine.h"
#include "grid.h"
#include "pipe.h"
#include "tp.h"

/* The sums and gathers over the tensor-parallel ranks of a stage. */
typedef struct {
    MPI_Comm comm;        /* MPI_COMM_NULL: no tensor parallelism */
    fm_tp_grid grid;      /* BLACS grids over comm, for psgemr2d's gathers */
    uint64_t sum_bytes;   /* float bytes of the activation sums (per rank) */
    uint64_t small_bytes; /* double bytes of the small sums (signal flags, checks, norm and sparsity terms) */
    uint64_t sum_calls;   /* both kinds of sum */
    double sum_seconds;
    uint64_t gather_bytes; /* bytes of shares gathered into whole tensors */
    double gather_seconds;
} fm_mpi_tp;

typedef struct {
    fm_dp dp;     /* gradient sums (counters: bytes, calls, seconds) */
    fm_pipe pipe; /* everything else (its counters) */
    fm_mpi_tp tp; /* tensor parallelism (its counters) */
    fm_comm comm; /* the table; comm.ctx points at this struct */
} fm_mpi_comm;

/* The team of g as one job's communication: replica g->replica_idx of
 * g->nreplicas, stage g->stage_idx of g->nstages, tensor-parallel rank
 * g->tp_idx of g->ntp (its BLACS grids made here: collective over g->tp). */
void fm_mpi_comm_team(fm_mpi_comm *c, const fm_grid *g);
/* Every rank of MPI_COMM_WORLD as one team of data-parallel replicas (no
 * stages): for commands that run one job on every rank (pretrain). MPI must
 * run (world.h). */
void fm_mpi_comm_world(fm_mpi_comm *c);
void fm_mpi_comm_free(fm_mpi_comm *c);

#endif
