/* sched.c: the static longest-first assignment of jobs to teams (see sched.h). */
#include "sched.h"

#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "fm.h"

void fm_sched_assign(const double *work, int njobs, int nteams, int *team_of) {
    double *load = fm_xcalloc((size_t)(nteams > 0 ? nteams : 1), sizeof(double));
    for (int k = 0; k < njobs; k++) {
        int best = 0;
        for (int t = 1; t < nteams; t++)
            if (load[t] < load[best]) best = t;
        team_of[k] = best;
        load[best] += work[k] > 0 ? work[k] : 0;
    }
    free(load);
}

void fm_sched_init(fm_sched *s, const fm_grid *g, const double *work, int njobs) {
    memset(s, 0, sizeof *s);
    s->g = g;
    s->mine = fm_xmalloc(sizeof(int64_t) * (size_t)(njobs > 0 ? njobs : 1));
    if (g->team_id < 0 || g->nteams < 1) return;
    int *team_of = fm_xmalloc(sizeof(int) * (size_t)(njobs > 0 ? njobs : 1));
    fm_sched_assign(work, njobs, g->nteams, team_of);
    for (int k = 0; k < njobs; k++)
        if (team_of[k] == g->team_id) s->mine[s->nmine++] = k;
    free(team_of);
}

int64_t fm_sched_next(fm_sched *s, int stop) {
    int64_t k = -1;
    if (s->g->team_rank == 0 && !stop && s->next < s->nmine) k = s->mine[s->next];
    /* the team follows its first rank (a SIGTERM there stops the whole team) */
    MPI_Bcast(&k, 1, MPI_INT64_T, 0, s->g->team);
    if (k >= 0) s->next++;
    return k;
}

void fm_sched_finish(fm_sched *s) {
    double t0 = MPI_Wtime();
    MPI_Barrier(s->g->world);
    s->idle_seconds = MPI_Wtime() - t0;
}

void fm_sched_free(fm_sched *s) {
    free(s->mine);
    s->mine = NULL;
}
