/* pipe.h: the point-to-point messages between neighbouring pipeline stages
 * of one replica (activations forward, their gradients backward), blocking
 * MPI_Send/MPI_Recv in the synchronous GPipe order, with bytes and time
 * counted. Plugs into fm_ft_hooks.p2p (cli/finetune.h). */
#ifndef FM_PIPE_H
#define FM_PIPE_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    MPI_Comm comm; /* the ranks of one replica, in stage order (fm_grid.replica) */
    int stage, nstages;
    uint64_t bytes_sent;
    double seconds;
} fm_pipe;

void fm_pipe_init(fm_pipe *p, MPI_Comm comm);
/* fm_ft_hooks.p2p: dir +1 the next stage, -1 the previous one. */
int fm_pipe_p2p(void *ctx, int dir, float *buf, size_t n, int send);

#endif
