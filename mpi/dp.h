/* dp.h: the data-parallel gradient sum: MPI_Iallreduce (sum, float32) per
 * bucket over the replicas of one stage, started as the backward finishes
 * each layer, with the bytes and the time spent in MPI counted. Plugs into
 * the engine's fm_comm table (comm.h). */
#ifndef FM_DP_H
#define FM_DP_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    MPI_Comm comm;        /* the replicas (fm_grid.stage) */
    int rank, size;
    MPI_Request *req;     /* pending buckets */
    int nreq, capreq;
    size_t bucket_floats; /* largest single Iallreduce (default 4 Mi floats) */
    /* Counters since fm_dp_init: */
    uint64_t bytes;       /* float32 bytes handed to allreduce (per replica; 0 on a one-rank comm, where no call is made) */
    uint64_t calls;       /* Iallreduce calls */
    double seconds;       /* wall time inside the MPI calls of this module */
} fm_dp;

void fm_dp_init(fm_dp *d, MPI_Comm comm);
void fm_dp_free(fm_dp *d);

/* fm_comm's sum_start, progress and sum_wait (ctx is an fm_dp *). */
int fm_dp_sum_start(void *ctx, float *x, size_t n);
void fm_dp_progress(void *ctx);
int fm_dp_sum_wait(void *ctx);

#endif
