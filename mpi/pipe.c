/* pipe.c: stage-to-stage messages (see pipe.h). */
#include "pipe.h"

#include <limits.h>
#include <string.h>

#include "fm.h"

void fm_pipe_init(fm_pipe *p, MPI_Comm comm) {
    memset(p, 0, sizeof *p);
    p->comm = comm;
    MPI_Comm_rank(comm, &p->stage);
    MPI_Comm_size(comm, &p->nstages);
}

int fm_pipe_p2p(void *ctx, int dir, float *buf, size_t n, int send) {
    fm_pipe *p = ctx;
    int peer = p->stage + dir;
    if (peer < 0 || peer >= p->nstages || n > INT_MAX)
        return fm_fail("pipeline: stage %d has no stage %d to exchange %zu floats with", p->stage, peer, n);
    double t0 = MPI_Wtime();
    int rc = send ? MPI_Send(buf, (int)n, MPI_FLOAT, peer, 0, p->comm)
                  : MPI_Recv(buf, (int)n, MPI_FLOAT, peer, 0, p->comm, MPI_STATUS_IGNORE);
    p->seconds += MPI_Wtime() - t0;
    if (send) p->bytes_sent += 4 * (uint64_t)n;
    if (rc != MPI_SUCCESS) return fm_fail("pipeline: message to or from stage %d failed (MPI error %d)", peer, rc);
    return FM_OK;
}
