/* sched.h: the job queue shared by the teams: a counter in an MPI window on
 * world rank 0, claimed with MPI_Fetch_and_op by each team's first rank and
 * broadcast to the rest of the team. Claim k is the k-th job of the order
 * given (longest expected first). */
#ifndef FM_SCHED_H
#define FM_SCHED_H

#include <mpi.h>
#include <stdint.h>

#include "grid.h"

typedef struct {
    MPI_Win win;
    int64_t *counter; /* on world rank 0 */
    const fm_grid *g;
    double idle_seconds; /* time this rank spent waiting at the end for the others */
} fm_sched;

/* Collective over the world. */
void fm_sched_init(fm_sched *s, const fm_grid *g);
/* The next claim number for this rank's team (collective over the team), or
 * -1 for every rank of the team when its first rank passes stop != 0 (the
 * team claims nothing more). */
int64_t fm_sched_next(fm_sched *s, int stop);
/* Collective over the world: wait for every team, timing the wait. */
void fm_sched_finish(fm_sched *s);
void fm_sched_free(fm_sched *s);

#endif
