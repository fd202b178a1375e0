/* pipe.h: what the pipeline stages of a team exchange: the point-to-point
 * messages between neighbouring stages of one replica (activations forward,
 * their gradients backward), blocking MPI_Send/MPI_Recv, and MPI_Sendrecv
 * where a stage sends to the neighbour it next receives from (the schedules
 * of src/pipesched.h); the small sums a stage needs beyond its own gradient sum (the
 * loss and signal flags over the team, the per-tensor norm terms over the stages
 * of a replica); and the broadcasts that give every stage the tensors the
 * others own. Bytes and time are counted. Plugs into the engine's fm_comm table (comm.h). */
#ifndef FM_PIPE_H
#define FM_PIPE_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    MPI_Comm comm; /* the ranks of one replica, in stage order (fm_grid.replica) */
    MPI_Comm team; /* every rank of the team (fm_grid.team) */
    int stage, nstages;
    uint64_t bytes_sent;   /* p2p: bytes this rank sent */
    double seconds;        /* p2p: time in MPI_Send/MPI_Recv/MPI_Sendrecv */
    uint64_t sum_bytes;    /* payload bytes of this rank's sums (fm_pipe_team_sum, fm_pipe_stages_sum) */
    uint64_t sum_calls;
    double sum_seconds;
    uint64_t bcast_bytes;  /* payload bytes of the broadcasts this rank took part in (sent or received) */
    double bcast_seconds;
    uint64_t share_bytes;  /* fm_pipe_team_share: payload bytes this rank contributed */
    double share_seconds;
} fm_pipe;

void fm_pipe_init(fm_pipe *p, MPI_Comm comm, MPI_Comm team);
/* fm_comm.p2p: dir +1 the next stage, -1 the previous one. */
int fm_pipe_p2p(void *ctx, int dir, float *buf, size_t n, int send);
/* fm_comm.p2p_exchange: send sbuf[0..ns) to neighbour dir and receive
 * rbuf[0..nr) from it at once (MPI_Sendrecv), so that two neighbours
 * sending to each other never both wait in a send. */
int fm_pipe_p2p_exchange(void *ctx, int dir, const float *sbuf, size_t ns, float *rbuf, size_t nr);
/* fm_comm.p2p_stage: send (send = 1) or receive n bytes to or from stage
 * `peer` of this replica (a message of its own tag, apart from p2p's);
 * counted with the broadcasts (bcast_bytes, bcast_seconds) as the copies
 * that assemble a file from the stages' tensors. */
int fm_pipe_p2p_stage(void *ctx, int peer, void *buf, size_t n, int send);
/* fm_comm.team_sum: sum x[0..n) in place over the team (blocking). */
int fm_pipe_team_sum(void *ctx, float *x, size_t n);
/* Sum x[0..n) doubles in place over the team (blocking). */
int fm_pipe_team_sum_doubles(void *ctx, double *x, size_t n);
/* fm_comm.stages_sum: sum x[0..n) in place over the stages of this replica (blocking). */
int fm_pipe_stages_sum(void *ctx, double *x, size_t n);
/* fm_comm.bcast: copy x[0..n) from stage `root` of this replica to its other stages. */
int fm_pipe_bcast(void *ctx, float *x, size_t n, int root);
/* fm_comm.team_share: every rank of the team has filled x[begin, end)
 * of x[0..n); afterwards every rank holds all of x (the ranges of the team
 * cover [0, n) without overlap). Counted in share_bytes (this rank's part). */
int fm_pipe_team_share(void *ctx, float *x, size_t n, size_t begin, size_t end);
/* fm_comm.agree: collective over the team: FM_OK when every rank passes
 * ok != 0; else FM_ERR on every rank, with the message (fm_last_error) of
 * the lowest failing team rank recorded on the others too. */
int fm_pipe_team_agree(void *ctx, int ok);
/* fm_comm.decide: v[0..n) from team rank 0 to every rank of the team. */
int fm_pipe_team_decide(void *ctx, int *v, int n);
/* Gather x from every rank of the team into all[team size] on team rank 0
 * (all may be NULL elsewhere). Collective over the team. */
int fm_pipe_team_gather(const fm_pipe *p, uint64_t x, uint64_t *all);

#endif
