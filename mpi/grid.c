/* grid.c: teams, stages and replicas (see grid.h). */
#include "grid.h"

#include <string.h>

#include "fm.h"

int fm_grid_init(fm_grid *g, int team_size, int stages, int tp) {
    memset(g, 0, sizeof *g);
    g->world = MPI_COMM_WORLD;
    g->team = g->stage = g->replica = g->tp = MPI_COMM_NULL;
    MPI_Comm_rank(g->world, &g->world_rank);
    MPI_Comm_size(g->world, &g->world_size);
    if (team_size < 1 || team_size > g->world_size)
        return fm_fail("--team-size %d: expected 1 to the %d rank(s) of the run", team_size, g->world_size);
    if (stages < 1 || team_size % stages)
        return fm_fail("--stages %d: expected a divisor of the team size %d", stages, team_size);
    if (tp < 1 || team_size % (stages * tp))
        return fm_fail("--tensor-parallel %d: a team of %d rank(s) with %d stage(s) does not split into stages of %d "
                       "tensor-parallel rank(s); expected the team size to be a multiple of stages x tensor-parallel",
                       tp, team_size, stages, tp);
    g->team_size = team_size;
    g->nteams = g->world_size / team_size;
    g->nstages = stages;
    g->ntp = tp;
    g->nreplicas = team_size / (stages * tp);
    int t = g->world_rank / team_size;
    int idle = t >= g->nteams;
    MPI_Comm_split(g->world, idle ? MPI_UNDEFINED : t, g->world_rank, &g->team);
    g->team_id = idle ? -1 : t;
    if (idle) {
        g->team_rank = -1;
        g->stage_idx = g->replica_idx = g->tp_idx = -1;
        MPI_Comm_split(g->world, MPI_UNDEFINED, 0, &g->stage);
        MPI_Comm_split(g->world, MPI_UNDEFINED, 0, &g->replica);
        MPI_Comm_split(g->world, MPI_UNDEFINED, 0, &g->tp);
        return FM_OK;
    }
    MPI_Comm_rank(g->team, &g->team_rank);
    g->tp_idx = g->team_rank % tp;
    g->stage_idx = g->team_rank / tp % stages;
    g->replica_idx = g->team_rank / (tp * stages);
    /* Colours unique across the world: the (stage, tp) pair, the (replica,
     * tp) pair and the (replica, stage) pair, each within team t. */
    MPI_Comm_split(g->world, (t * stages + g->stage_idx) * tp + g->tp_idx, g->world_rank, &g->stage);
    MPI_Comm_split(g->world, (t * g->nreplicas + g->replica_idx) * tp + g->tp_idx, g->world_rank, &g->replica);
    MPI_Comm_split(g->world, (t * g->nreplicas + g->replica_idx) * stages + g->stage_idx, g->world_rank, &g->tp);
    /* Errors on these communicators come back as return codes (checked in
     * mpi/ and turned into a failed job) instead of aborting the world. */
    MPI_Comm_set_errhandler(g->team, MPI_ERRORS_RETURN);
    MPI_Comm_set_errhandler(g->stage, MPI_ERRORS_RETURN);
    MPI_Comm_set_errhandler(g->replica, MPI_ERRORS_RETURN);
    MPI_Comm_set_errhandler(g->tp, MPI_ERRORS_RETURN);
    return FM_OK;
}

int fm_grid_team_decide(const fm_grid *g, int *v, int n) {
    int rc = MPI_Bcast(v, n, MPI_INT, 0, g->team);
    if (rc != MPI_SUCCESS) {
        char e[MPI_MAX_ERROR_STRING];
        int len = 0;
        MPI_Error_string(rc, e, &len);
        return fm_fail("team %d: broadcast of its first rank's decision failed: %s", g->team_id, e);
    }
    return FM_OK;
}

void fm_grid_free(fm_grid *g) {
    if (g->team != MPI_COMM_NULL) MPI_Comm_free(&g->team);
    if (g->stage != MPI_COMM_NULL) MPI_Comm_free(&g->stage);
    if (g->replica != MPI_COMM_NULL) MPI_Comm_free(&g->replica);
    if (g->tp != MPI_COMM_NULL) MPI_Comm_free(&g->tp);
}
