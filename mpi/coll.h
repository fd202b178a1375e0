/* coll.h: MPI start-up and the few collectives `finemask run` uses outside
 * the gradient sums: broadcasts, and the final gather of every job's packed
 * result to world rank 0. */
#ifndef FM_COLL_H
#define FM_COLL_H

#include <stddef.h>

#include "grid.h"

/* The one MPI start-up: MPI_Init_thread (funneled) unless MPI already runs,
 * with MPI_Finalize registered to run at exit; also when started without
 * mpiexec (one rank). FM_ERR when MPI cannot start or lacks the thread level. */
int fm_mpi_init(int *argc, char ***argv);
void fm_mpi_finalize(void);
int fm_mpi_world_rank(void);
int fm_mpi_world_size(void);
double fm_mpi_wtime(void);

/* Broadcast n doubles from world rank 0. */
void fm_bcast_doubles(double *x, int n);
/* 1 on every rank when any rank passes a non-zero flag. */
int fm_any(int flag);

/* Gather each rank's len bytes at buf to world rank 0, concatenated in rank
 * order into *all (malloc'd, *all_len bytes; NULL elsewhere). FM_ERR when the
 * total exceeds what one MPI_Gatherv can carry (2 GiB). */
int fm_gather_bytes(const void *buf, size_t len, unsigned char **all, size_t *all_len);
/* Gather k doubles from every rank to world rank 0 into all (world_size * k). */
void fm_gather_doubles(const double *x, int k, double *all);

#endif
