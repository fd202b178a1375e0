/* sched.h: which team runs which job of a sweep.
 *
 * The assignment is static and computed alike on every rank, with no
 * communication: the jobs, longest expected first, each go to the team with
 * the least expected work so far (ties: the lowest team; Graham's LPT rule,
 * at most 4/3 of the best makespan when the estimates hold). A team runs its
 * jobs in that order.
 *
 * Why not a shared queue: the queue this replaces was a counter in an MPI
 * window on world rank 0, claimed with MPI_Fetch_and_op. A passive-target
 * operation on Open MPI's osc/pt2pt (which slurm/lib.sh selects where the
 * default one-sided component fails) completes only when the target enters
 * MPI, so while rank 0 computed a long job in a team of 1 (minutes to hours
 * of BLIS between MPI calls, or loading and tokenizing MNLI) every other team
 * stalled at its next claim. A progress thread on rank 0 would need
 * MPI_THREAD_MULTIPLE, which osc/pt2pt does not support, and a rank given
 * over to serving the queue wastes a node's share of the machine. A static
 * rule needs nothing from any other rank, so no team ever waits for another
 * before its last job. What it gives up is rebalancing when the estimates are
 * wrong (a job that fails at once leaves its team's later jobs where they
 * are); the estimates are the ones the queue ordered by (epochs x examples x
 * sequence length), and `finemask run` sets the work of jobs already complete
 * in the output directory to 0 (rank 0 looks and broadcasts), so a resumed
 * sweep is balanced over the work that is left. */
#ifndef FM_SCHED_H
#define FM_SCHED_H

#include <stdint.h>

#include "grid.h"

typedef struct {
    const fm_grid *g;
    int64_t *mine; /* this team's claims: positions in the order, in running order */
    int nmine, next;
    double idle_seconds; /* time this rank spent waiting at the end for the others */
} fm_sched;

/* The team of each position k of the order: work[k] is the expected work of
 * the k-th job of the order (longest first); team_of[k] in [0, nteams). */
void fm_sched_assign(const double *work, int njobs, int nteams, int *team_of);
/* This rank's share of the assignment (no communication). */
void fm_sched_init(fm_sched *s, const fm_grid *g, const double *work, int njobs);
/* The next claim (a position in the order) for this rank's team, collective
 * over the team only: -1 for every rank of the team when its jobs are done
 * or its first rank passes stop != 0 (the team claims nothing more). */
int64_t fm_sched_next(fm_sched *s, int stop);
/* Collective over the world: wait for every team, timing the wait. */
void fm_sched_finish(fm_sched *s);
void fm_sched_free(fm_sched *s);

#endif
