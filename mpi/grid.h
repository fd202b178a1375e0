/* grid.h: the communicators of a run, all made here with MPI_Comm_split.
 *
 * The world is cut into teams of team_size consecutive ranks (the last ranks
 * that do not fill a team sit idle). Inside a team of S stages, P
 * tensor-parallel ranks per stage and R = team_size / (S P) replicas,
 *   team rank = (replica * S + stage) * P + tp
 * (tensor-parallel peers are neighbours: they sum activations four times a
 * layer, the most frequent messages, so they sit on one node when the
 * launcher fills nodes in rank order; with P = 1 it is replica * S + stage):
 *   team     every rank of the team (runs one job at a time);
 *   stage    the R ranks of the team that hold the same pipeline stage and
 *            the same tensor-parallel shares: the data-parallel replicas,
 *            which sum their gradients here;
 *   replica  the S ranks of one replica with the same tensor-parallel
 *            index: its pipeline;
 *   tp       the P ranks of one (replica, stage) that split its layers'
 *            matrices (mpi/tp.h's layout). */
#ifndef FM_GRID_H
#define FM_GRID_H

#include <mpi.h>

typedef struct {
    MPI_Comm world, team, stage, replica, tp; /* all but world MPI_COMM_NULL on an idle rank */
    int world_rank, world_size;
    int nteams, team_id;    /* team index, -1 on an idle rank */
    int team_size, team_rank;
    int nstages, stage_idx; /* this rank's pipeline stage */
    int nreplicas, replica_idx;
    int ntp, tp_idx;        /* tensor-parallel ranks per stage, and this rank's index among them */
} fm_grid;

/* Split MPI_COMM_WORLD into teams of team_size with `stages` stages of
 * `tp` tensor-parallel ranks each. FM_ERR (same message on every rank) when
 * team_size does not divide into stages x tp or exceeds the world. */
int fm_grid_init(fm_grid *g, int team_size, int stages, int tp);
void fm_grid_free(fm_grid *g);
/* Decisions that change the sequence of collectives (a file seen or not on a
 * shared file system) are taken by the team's first rank: v[0..n) from team
 * rank 0 to every rank of the team. Collective over the team. The team,
 * stage and replica communicators return MPI errors to the caller
 * (MPI_ERRORS_RETURN); MPI_COMM_WORLD keeps MPI's default (fatal). */
int fm_grid_team_decide(const fm_grid *g, int *v, int n);

#endif
