/* comm.c: fm_comm filled with MPI (see comm.h). */
#include "comm.h"

#include <limits.h>
#include <stdio.h>
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

static int tp_fail(int rc, const char *what, size_t n) {
    char e[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, e, &len) != MPI_SUCCESS) snprintf(e, sizeof e, "MPI error %d", rc);
    return fm_fail("tensor parallelism: %s of %zu values over the stage's ranks failed: %s", what, n, e);
}

/* MPI_Allreduce gives every rank the same bits (the tensor-parallel ranks
 * then run the same LayerNorms on them, which keeps their replicated
 * tensors' gradients identical). */
static int tp_sum(void *ctx, float *x, size_t n) {
    fm_mpi_tp *t = &((fm_mpi_comm *)ctx)->tp;
    if (n > INT_MAX) return fm_fail("tensor parallelism: %zu floats are too many for one sum", n);
    double t0 = MPI_Wtime();
    int rc = MPI_Allreduce(MPI_IN_PLACE, x, (int)n, MPI_FLOAT, MPI_SUM, t->comm);
    t->sum_seconds += MPI_Wtime() - t0;
    if (rc != MPI_SUCCESS) return tp_fail(rc, "a sum", n);
    t->sum_bytes += 4 * (uint64_t)n;
    t->sum_calls++;
    return FM_OK;
}

static int tp_sum_doubles(void *ctx, double *x, size_t n) {
    fm_mpi_tp *t = &((fm_mpi_comm *)ctx)->tp;
    if (n > INT_MAX) return fm_fail("tensor parallelism: %zu doubles are too many for one sum", n);
    double t0 = MPI_Wtime();
    int rc = MPI_Allreduce(MPI_IN_PLACE, x, (int)n, MPI_DOUBLE, MPI_SUM, t->comm);
    t->sum_seconds += MPI_Wtime() - t0;
    if (rc != MPI_SUCCESS) return tp_fail(rc, "a sum", n);
    t->small_bytes += 8 * (uint64_t)n;
    t->sum_calls++;
    return FM_OK;
}

/* psgemr2d from the shares' block-cyclic descriptor to the whole tensor on
 * rank 0 (tp.h's layout: the (out, in) row-major tensor is ScaLAPACK's
 * column-major in x out matrix; split 1 deals its columns, 2 its rows). */
static int tp_gather(void *ctx, int split, int nb, int64_t out, int64_t in, const float *local, float *whole) {
    fm_mpi_tp *t = &((fm_mpi_comm *)ctx)->tp;
    if (out > INT_MAX || in > INT_MAX) return fm_fail("tensor parallelism: a %lld x %lld tensor is too big to gather",
                                                      (long long)out, (long long)in);
    double t0 = MPI_Wtime();
    fm_tp_dist d;
    if (split == 2) fm_tp_dist_rows(&d, &t->grid, (int)in, (int)out, nb);
    else fm_tp_dist_cols(&d, &t->grid, (int)in, (int)out, nb);
    fm_tp_gather(&t->grid, &d, local, whole);
    t->gather_seconds += MPI_Wtime() - t0;
    t->gather_bytes += 4 * (uint64_t)fm_tp_dist_numel(&d);
    return FM_OK;
}

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
    if (c->tp.comm != MPI_COMM_NULL) {
        t->tp_sum = tp_sum;
        t->tp_sum_doubles = tp_sum_doubles;
        t->tp_gather = tp_gather;
    }
}

void fm_mpi_comm_team(fm_mpi_comm *c, const fm_grid *g) {
    memset(c, 0, sizeof *c);
    fm_dp_init(&c->dp, g->stage);
    fm_pipe_init(&c->pipe, g->replica, g->team);
    c->tp.comm = MPI_COMM_NULL;
    if (g->ntp > 1) {
        c->tp.comm = g->tp;
        fm_tp_grid_init(&c->tp.grid, g->tp);
    }
    fill(c);
    c->comm.tp = g->tp_idx;
    c->comm.ntp = g->ntp;
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
    c->tp.comm = MPI_COMM_NULL;
    fill(c);
    c->comm.replica = c->dp.rank;
    c->comm.nreplicas = c->dp.size;
    c->comm.stage = 0;
    c->comm.nstages = 1;
    c->comm.team_rank = c->dp.rank;
}

void fm_mpi_comm_free(fm_mpi_comm *c) {
    fm_dp_free(&c->dp);
    if (c->tp.comm != MPI_COMM_NULL) fm_tp_grid_free(&c->tp.grid);
    c->tp.comm = MPI_COMM_NULL;
}
