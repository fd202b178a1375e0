/* comm.c: fm_comm filled with MPI (see comm.h). */
#include "comm.h"

#include <string.h>

#include "fm.h"

static int sum_start(void *ctx, float *x, size_t n) { return fm_dp_sum_start(&((fm_mpi_comm *)ctx)->dp, x, n); }
static void progress(void *ctx) { fm_dp_progress(&((fm_mpi_comm *)ctx)->dp); }
static int sum_wait(void *ctx) { return fm_dp_sum_wait(&((fm_mpi_comm *)ctx)->dp); }
static int team_sum_doubles(void *ctx, double *x, size_t n) {
    return fm_pipe_team_sum_doubles(&((fm_mpi_comm *)ctx)->pipe, x, n);
}
static int p2p(void *ctx, int dir, float *buf, size_t n, int send) {
    return fm_pipe_p2p(&((fm_mpi_comm *)ctx)->pipe, dir, buf, n, send);
}
static int p2p_exchange(void *ctx, int dir, const float *sbuf, size_t ns, float *rbuf, size_t nr) {
    return fm_pipe_p2p_exchange(&((fm_mpi_comm *)ctx)->pipe, dir, sbuf, ns, rbuf, nr);
}
static int p2p_stage(void *ctx, int peer, void *buf, size_t n, int send) {
    return fm_pipe_p2p_stage(&((fm_mpi_comm *)ctx)->pipe, peer, buf, n, send);
}
static int team_sum(void *ctx, float *x, size_t n) { return fm_pipe_team_sum(&((fm_mpi_comm *)ctx)->pipe, x, n); }
static int stages_sum(void *ctx, double *x, size_t n) {
    return fm_pipe_stages_sum(&((fm_mpi_comm *)ctx)->pipe, x, n);
}
static int bcast(void *ctx, float *x, size_t n, int root) {
    return fm_pipe_bcast(&((fm_mpi_comm *)ctx)->pipe, x, n, root);
}
static int team_share(void *ctx, float *x, size_t n, size_t begin, size_t end) {
    return fm_pipe_team_share(&((fm_mpi_comm *)ctx)->pipe, x, n, begin, end);
}
static int agree(void *ctx, int ok) { return fm_pipe_team_agree(&((fm_mpi_comm *)ctx)->pipe, ok); }
static int decide(void *ctx, int *v, int n) { return fm_pipe_team_decide(&((fm_mpi_comm *)ctx)->pipe, v, n); }

static void fill(fm_mpi_comm *c) {
    fm_comm *t = &c->comm;
    t->ctx = c;
    t->sum_start = sum_start;
    t->progress = progress;
    t->sum_wait = sum_wait;
    t->team_sum_doubles = team_sum_doubles;
    t->p2p = p2p;
    t->p2p_exchange = p2p_exchange;
    t->p2p_stage = p2p_stage;
    t->team_sum = team_sum;
    t->stages_sum = stages_sum;
    t->bcast = bcast;
    t->team_share = team_share;
    t->agree = agree;
    t->decide = decide;
}

void fm_mpi_comm_team(fm_mpi_comm *c, const fm_grid *g) {
    memset(c, 0, sizeof *c);
    fm_dp_init(&c->dp, g->stage);
    fm_pipe_init(&c->pipe, g->replica, g->team);
    fill(c);
    c->comm.replica = g->replica_idx;
    c->comm.nreplicas = g->nreplicas;
    c->comm.stage = g->stage_idx;
    c->comm.nstages = g->nstages;
    c->comm.team_rank = g->team_rank;
}

void fm_mpi_comm_world(fm_mpi_comm *c) {
    memset(c, 0, sizeof *c);
    fm_dp_init(&c->dp, MPI_COMM_WORLD);
    fm_pipe_init(&c->pipe, MPI_COMM_SELF, MPI_COMM_WORLD);
    fill(c);
    c->comm.replica = c->dp.rank;
    c->comm.nreplicas = c->dp.size;
    c->comm.stage = 0;
    c->comm.nstages = 1;
    c->comm.team_rank = c->dp.rank;
}

void fm_mpi_comm_free(fm_mpi_comm *c) { fm_dp_free(&c->dp); }
