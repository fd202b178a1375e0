/* pipe.c: stage-to-stage messages, sums and broadcasts (see pipe.h). */
#include "pipe.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fm.h"

/* Largest count of one MPI call here (MPI counts are int). */
#define CHUNK ((size_t)1 << 30)

void fm_pipe_init(fm_pipe *p, MPI_Comm comm, MPI_Comm team) {
    memset(p, 0, sizeof *p);
    p->comm = comm;
    p->team = team;
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

int fm_pipe_p2p_exchange(void *ctx, int dir, const float *sbuf, size_t ns, float *rbuf, size_t nr) {
    fm_pipe *p = ctx;
    int peer = p->stage + dir;
    if (peer < 0 || peer >= p->nstages || ns > INT_MAX || nr > INT_MAX)
        return fm_fail("pipeline: stage %d has no stage %d to exchange %zu and %zu floats with", p->stage, peer, ns,
                       nr);
    double t0 = MPI_Wtime();
    int rc = MPI_Sendrecv(sbuf, (int)ns, MPI_FLOAT, peer, 0, rbuf, (int)nr, MPI_FLOAT, peer, 0, p->comm,
                          MPI_STATUS_IGNORE);
    p->seconds += MPI_Wtime() - t0;
    p->bytes_sent += 4 * (uint64_t)ns;
    if (rc != MPI_SUCCESS) return fm_fail("pipeline: exchange with stage %d failed (MPI error %d)", peer, rc);
    return FM_OK;
}

int fm_pipe_p2p_stage(void *ctx, int peer, void *buf, size_t n, int send) {
    fm_pipe *p = ctx;
    if (peer < 0 || peer >= p->nstages || peer == p->stage)
        return fm_fail("pipeline: stage %d has no stage %d to exchange %zu bytes with", p->stage, peer, n);
    double t0 = MPI_Wtime();
    for (size_t off = 0; off < n || off == 0; off += CHUNK) {
        size_t k = n - off < CHUNK ? n - off : CHUNK;
        int rc = send ? MPI_Send((char *)buf + off, (int)k, MPI_BYTE, peer, 1, p->comm)
                      : MPI_Recv((char *)buf + off, (int)k, MPI_BYTE, peer, 1, p->comm, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS)
            return fm_fail("pipeline: %zu bytes %s stage %d failed (MPI error %d)", k, send ? "to" : "from", peer, rc);
        p->bcast_bytes += (uint64_t)k;
        if (n == 0) break;
    }
    p->bcast_seconds += MPI_Wtime() - t0;
    return FM_OK;
}

/* Sum x[0..n) of `type` (of `size` bytes) over comm, in chunks. */
static int sum(fm_pipe *p, MPI_Comm comm, void *x, size_t n, MPI_Datatype type, size_t size, const char *what) {
    double t0 = MPI_Wtime();
    for (size_t off = 0; off < n; off += CHUNK) {
        size_t k = n - off < CHUNK ? n - off : CHUNK;
        int rc = MPI_Allreduce(MPI_IN_PLACE, (char *)x + off * size, (int)k, type, MPI_SUM, comm);
        if (rc != MPI_SUCCESS) return fm_fail("pipeline: sum of %zu %s failed (MPI error %d)", k, what, rc);
        p->sum_bytes += size * (uint64_t)k;
        p->sum_calls++;
    }
    p->sum_seconds += MPI_Wtime() - t0;
    return FM_OK;
}

int fm_pipe_team_sum(void *ctx, float *x, size_t n) {
    fm_pipe *p = ctx;
    return sum(p, p->team, x, n, MPI_FLOAT, sizeof(float), "floats over the team");
}

int fm_pipe_team_sum_doubles(void *ctx, double *x, size_t n) {
    fm_pipe *p = ctx;
    return sum(p, p->team, x, n, MPI_DOUBLE, sizeof(double), "doubles over the team");
}

int fm_pipe_stages_sum(void *ctx, double *x, size_t n) {
    fm_pipe *p = ctx;
    return sum(p, p->comm, x, n, MPI_DOUBLE, sizeof(double), "doubles over the stages");
}

int fm_pipe_bcast(void *ctx, float *x, size_t n, int root) {
    fm_pipe *p = ctx;
    if (root < 0 || root >= p->nstages)
        return fm_fail("pipeline: no stage %d of %d to broadcast %zu floats from", root, p->nstages, n);
    double t0 = MPI_Wtime();
    for (size_t off = 0; off < n; off += CHUNK) {
        size_t k = n - off < CHUNK ? n - off : CHUNK;
        int rc = MPI_Bcast(x + off, (int)k, MPI_FLOAT, root, p->comm);
        if (rc != MPI_SUCCESS)
            return fm_fail("pipeline: broadcast of %zu floats from stage %d failed (MPI error %d)", k, root, rc);
        p->bcast_bytes += 4 * (uint64_t)k;
    }
    p->bcast_seconds += MPI_Wtime() - t0;
    return FM_OK;
}

int fm_pipe_team_share(void *ctx, float *x, size_t n, size_t begin, size_t end) {
    fm_pipe *p = ctx;
    if (begin > end || end > n || n > INT_MAX)
        return fm_fail("pipeline: cannot share floats [%zu, %zu) of %zu over the team", begin, end, n);
    double t0 = MPI_Wtime();
    int size;
    MPI_Comm_size(p->team, &size);
    int mine[2] = {(int)begin, (int)(end - begin)};
    int *all = fm_xmalloc(sizeof(int) * 2 * (size_t)size);
    int *counts = fm_xmalloc(sizeof(int) * (size_t)size), *displs = fm_xmalloc(sizeof(int) * (size_t)size);
    int rc = MPI_Allgather(mine, 2, MPI_INT, all, 2, MPI_INT, p->team);
    if (rc == MPI_SUCCESS) {
        for (int r = 0; r < size; r++) {
            displs[r] = all[2 * r];
            counts[r] = all[2 * r + 1];
        }
        rc = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, x, counts, displs, MPI_FLOAT, p->team);
    }
    free(all);
    free(counts);
    free(displs);
    p->share_seconds += MPI_Wtime() - t0;
    if (rc != MPI_SUCCESS) return fm_fail("pipeline: sharing %zu floats over the team failed (MPI error %d)", n, rc);
    p->share_bytes += 4 * (uint64_t)(end - begin);
    return FM_OK;
}

static int mpi_fail(int rc, const char *what) {
    char e[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, e, &len) != MPI_SUCCESS) snprintf(e, sizeof e, "MPI error %d", rc);
    return fm_fail("%s failed: %s", what, e);
}

int fm_pipe_team_gather(const fm_pipe *p, uint64_t x, uint64_t *all) {
    int rc = MPI_Gather(&x, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, 0, p->team);
    return rc == MPI_SUCCESS ? FM_OK : mpi_fail(rc, "team gather");
}

int fm_pipe_team_decide(void *ctx, int *v, int n) {
    fm_pipe *p = ctx;
    int rc = MPI_Bcast(v, n, MPI_INT, 0, p->team);
    return rc == MPI_SUCCESS ? FM_OK : mpi_fail(rc, "broadcast of the team's first rank's decision");
}

int fm_pipe_team_agree(void *ctx, int ok) {
    fm_pipe *p = ctx;
    int me, first = INT_MAX;
    MPI_Comm_rank(p->team, &me);
    int mine = ok ? INT_MAX : me;
    int rc = MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, p->team);
    if (rc != MPI_SUCCESS) {
        if (!ok) return FM_ERR; /* keep this rank's own message */
        return mpi_fail(rc, "the team's agreement");
    }
    if (first == INT_MAX) return FM_OK;
    /* the first failing rank's message, so that every rank fails with it */
    char msg[2048] = "";
    if (me == first) snprintf(msg, sizeof msg, "%s", fm_last_error());
    rc = MPI_Bcast(msg, (int)sizeof msg, MPI_CHAR, first, p->team);
    if (rc != MPI_SUCCESS && me != first) return mpi_fail(rc, "the team's agreement");
    if (me != first) fm_fail("%s", msg);
    return FM_ERR;
}
