/* sched.c: the shared job counter (see sched.h). */
#include "sched.h"

#include <string.h>

void fm_sched_init(fm_sched *s, const fm_grid *g) {
    memset(s, 0, sizeof *s);
    s->g = g;
    MPI_Aint size = g->world_rank == 0 ? (MPI_Aint)sizeof(int64_t) : 0;
    MPI_Win_allocate(size, sizeof(int64_t), MPI_INFO_NULL, g->world, &s->counter, &s->win);
    if (g->world_rank == 0) {
        MPI_Win_lock(MPI_LOCK_EXCLUSIVE, 0, 0, s->win);
        *s->counter = 0;
        MPI_Win_unlock(0, s->win);
    }
    MPI_Barrier(g->world);
}

int64_t fm_sched_next(fm_sched *s, int stop) {
    int64_t k = -1;
    if (s->g->team_rank == 0 && !stop) {
        const int64_t one = 1;
        MPI_Win_lock(MPI_LOCK_SHARED, 0, 0, s->win);
        MPI_Fetch_and_op(&one, &k, MPI_INT64_T, 0, 0, MPI_SUM, s->win);
        MPI_Win_unlock(0, s->win);
    }
    MPI_Bcast(&k, 1, MPI_INT64_T, 0, s->g->team);
    return k;
}

void fm_sched_finish(fm_sched *s) {
    double t0 = MPI_Wtime();
    MPI_Barrier(s->g->world);
    s->idle_seconds = MPI_Wtime() - t0;
}

void fm_sched_free(fm_sched *s) { MPI_Win_free(&s->win); }
