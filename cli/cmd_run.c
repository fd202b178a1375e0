/* cmd_run.c: `finemask run JOBFILE`: a whole sweep over MPI ranks. Each team runs
 * the jobs the static longest-first assignment gives it (mpi/sched.h), replicas of a team split each
 * batch and sum gradients, failures are recorded and the run goes on, and at
 * the end every job's metrics and packed mask reach rank 0, which writes the
 * report. Every MPI call is in mpi/. */
#define _GNU_SOURCE
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis.h"
#include "analysisjson.h"
#include "cli.h"
#include "coll.h"
#include "comm.h"
#include "dp.h"
#include "fileio.h"
#include "finetune.h"
#include "fm.h"
#include "grid.h"
#include "jobfile.h"
#include "modeldir.h"
#include "options.h"
#include "pipe.h"
#include "report.h"
#include "runfiles.h"
#include "runjob.h"
#include "safetensors.h"
#include "sched.h"
#include "stopsig.h"
#include "trainstate.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: [mpiexec -n N] finemask run JOBFILE [options]\n"
            "\n"
            "Run every job of JOBFILE's sweep (tasks x modes x sparsities or freeze sets x\n"
            "weights x seeds). The ranks form teams of --team-size; before the first job the\n"
            "jobs, longest expected first (epochs x examples x sequence length), each go to\n"
            "the team with the least expected work so far, with no communication. The ranks\n"
            "of a team are data-parallel replicas that split every batch and sum their\n"
            "gradients. Jobs already complete in the output directory\n"
            "(metrics.json present) are skipped; a failed job is recorded with its error and\n"
            "the run goes on. Rank 0 gathers every job's metrics and mask statistics over MPI\n"
            "(and masks' bits within --gather-budget) and writes OUT/report/. The exit\n"
            "status is 1 when any job failed.\n"
            "\n"
            "  --out DIR          output directory (default: the job file's [run] out)\n"
            "  --model DIR        override [run] model\n"
            "  --data DIR         override [run] data\n"
            "  --team-size N      ranks per team (default: [layout] team_size, 1)\n"
            "  --stages S         pipeline stages per team (default: [layout] stages, 1): each stage\n"
            "                     holds a contiguous slice of encoder layers (the first also the\n"
            "                     embeddings, the last the pooler and head) and updates only those;\n"
            "                     its team-size/S replicas sum their gradients\n"
            "  --tensor-parallel P  ranks per stage that split each encoder layer's matrices\n"
            "                     (default: [layout] tensor_parallel, 1): Q, K, V and the\n"
            "                     intermediate dense by output feature (whole heads), the two\n"
            "                     output denses by input feature; each rank holds, trains and\n"
            "                     masks its shares only, and the P ranks sum four activations of\n"
            "                     batch x sequence x hidden floats per layer and step. P must\n"
            "                     divide the model's attention heads and the team size divide\n"
            "                     into stages x P; the team's replicas are team-size/(S x P)\n"
            "  --micro-batches M  micro-batches per replica's share of a batch in the pipeline\n"
            "                     (default: [layout] micro_batches, 1)\n"
            "  --pipeline-schedule gpipe|1f1b  the order of the micro-batches' forwards and\n"
            "                     backwards (default: [layout] pipeline_schedule, 1f1b): gpipe runs\n"
            "                     every forward, then every backward, keeping M micro-batches'\n"
            "                     activations per stage; 1f1b (with flush) alternates forwards and\n"
            "                     backwards after a warm-up, keeping at most S. Both update once per\n"
            "                     step and give the same results up to float rounding\n"
            "  --threads N        threads per rank (default: [layout] threads, else BLIS_NUM_THREADS...)\n"
            "  --max-train-examples N  override [train] max_train_examples for every job\n"
            "  --baseline DIR     a 1-rank run of the same sweep: report speedup and efficiency\n"
            "  --quiet-jobs       without the jobs' own progress lines (one line per job still ends it)\n"
            "  --list             run nothing: print each job (its run directory's name, task,\n"
            "                     mode, seed) and its status in the output directory: done,\n"
            "                     diverged, partial at step N (a state file to resume from) or\n"
            "                     not started\n"
            "  --gather-budget BYTES  the most bytes of packed mask bits the final gather brings to\n"
            "                     rank 0 (default 268435456, 256 MiB; at most 1 GiB), shared equally by\n"
            "                     the ranks; the masks beyond it stay in their run directories, and\n"
            "                     rank 0 reads them from there a family at a time for the overlaps.\n"
            "                     Either way the report is the same bytes\n");
}

void fm_job_variant(const fm_job *j, char *out, size_t cap) {
    if (!strcmp(j->mode, "freeze")) snprintf(out, cap, "%s", j->freeze);
    else if (!strcmp(j->mode, "supermask")) snprintf(out, cap, "s%.4g", 100 * j->sparsity);
    else snprintf(out, cap, "%s", "");
}

json_t *fm_job_record(const fm_job *j) {
    json_t *r = json_object();
    char var[300];
    fm_job_variant(j, var, sizeof var);
    json_object_set_new(r, "name", json_string(j->name));
    json_object_set_new(r, "index", json_integer(j->index));
    json_object_set_new(r, "task", json_string(j->task));
    json_object_set_new(r, "mode", json_string(j->mode));
    json_object_set_new(r, "variant", json_string(var));
    json_object_set_new(r, "weights", json_string(j->weights));
    json_object_set_new(r, "seed", json_integer((json_int_t)j->seed));
    json_object_set_new(r, "sparsity", json_real(j->sparsity));
    return r;
}

/* obj as the run directory's JSON files hold it (numbers to 10 significant
 * digits): what a later run reads back, so that a report from skipped jobs
 * has the same bits as one from jobs just run. Steals obj. */
static json_t *as_written(json_t *obj) {
    char *s = json_dumps(obj, JSON_COMPACT | JSON_REAL_PRECISION(10));
    json_decref(obj);
    json_t *r = s ? json_loads(s, 0, NULL) : NULL;
    free(s);
    return r ? r : json_object();
}

static const float *read_tensor(void *ctx, const fm_tensor *t) { return fm_modeldir_read(ctx, t); }

/* Distances between the pre-trained model and a job's fine-tuned one (every
 * weight matrix, beside random initialisations; analysis.h), as JSON. */
static int job_distance(const char *pretrained, const char *job_dir, uint64_t seed, json_t **out) {
    fm_load_opts o;
    fm_load_opts_default(&o);
    o.with_mlm = 0;
    char *fine = fm_path_join(job_dir, "model");
    /* Tensor by tensor: two models of BERT-large would be 2.7 GB here. */
    fm_modeldir_reader a, b;
    int rc = FM_ERR;
    if (fm_modeldir_open(&a, pretrained, &o) != FM_OK) goto out;
    if (fm_modeldir_open(&b, fine, &o) != FM_OK) {
        fm_modeldir_close(&a);
        goto out;
    }
    fm_distance_report r;
    rc = fm_distance_models_fetch(&r, &a.lay, read_tensor, &a, &b.lay, read_tensor, &b, NULL, seed);
    if (rc == FM_OK) {
        *out = fm_distance_json(&r);
        fm_distance_report_free(&r);
    }
    fm_modeldir_close(&a);
    fm_modeldir_close(&b);
out:
    free(fine);
    return rc;
}

/* One line per job a team ends: "[k/N] NAME: done, SCORE_NAME X (T s, team I)". */
static void log_job_end(const fm_job_result *r, int64_t k, int njobs, int team, double seconds) {
    const char *name = json_string_value(json_object_get(r->rec, "name"));
    const char *status = json_string_value(json_object_get(r->rec, "status"));
    json_t *met = json_object_get(r->rec, "metrics");
    const char *sname = json_string_value(json_object_get(met, "score_name"));
    json_t *score = json_object_get(met, "score");
    if (status && !strcmp(status, "done") && sname && json_is_number(score))
        fm_log("[%" PRId64 "/%d] %s: done, %s %.4f (%.1f s, team %d)", k + 1, njobs, name ? name : "?", sname,
               json_number_value(score), seconds, team);
    else
        fm_log("[%" PRId64 "/%d] %s: %s (%.1f s, team %d)", k + 1, njobs, name ? name : "?", status ? status : "?",
               seconds, team);
}

/* The training options of job j (as `train` would take them) into o: the
 * job file's [train] options (j->h, with the mode's overrides) and the job's
 * own. The names were checked when the job file was read. */
static void job_opts(fm_ft_opts *o, const fm_job *j, const fm_jobfile *jf, const char *dir, int threads) {
    *o = j->h;
    o->model_dir = jf->model;
    o->data_dir = jf->data;
    o->task = j->task;
    o->out_dir = dir;
    o->mode = (fm_train_mode)fm_opt_enum_value(fm_train_mode_names, 3, j->mode);
    o->freeze = o->mode == FM_TRAIN_FREEZE ? j->freeze : NULL;
    o->weights = (fm_weights)fm_opt_enum_value(fm_weights_names, 3, j->weights);
    o->seed = j->seed;
    o->threads = threads;
    if (o->mode == FM_TRAIN_SUPERMASK) {
        o->ste = (fm_ste)fm_opt_enum_value(fm_ste_names, 2, jf->ste);
        o->init_sparsity = j->sparsity;
        o->init_rank = (fm_init_rank)fm_opt_enum_value(fm_init_rank_names, 2, jf->ranking);
        if (jf->masked[0]) o->mask_glob = jf->masked;
        if (jf->layers[0]) o->mask_layers = jf->layers;
        if (jf->mask_lr >= 0) o->mask_lr = jf->mask_lr;
        o->samples = jf->samples;
    }
}

/* FM_OK when the finished job in dir ran with the options o would give it
 * (its options.json; the model and data paths aside, which may be spelled
 * differently, and the options that do not apply to its mode); else an
 * error naming the first option that differs. */
static int same_options(const char *dir, const fm_ft_opts *o) {
    char *want_s = fm_ft_opts_json(o), *path = fm_path_join(dir, "options.json");
    json_t *want = json_loads(want_s, 0, NULL), *have = NULL;
    static const char *const paths[] = {"model", "data", NULL};
    int rc = fm_json_read(path, &have);
    if (rc == FM_OK && want)
        rc = fm_options_compare(path, have, want, paths,
                                fm_ft_opts_unused(json_string_value(json_object_get(want, "mode"))),
                                FM_OPTS_FINISHED);
    json_decref(want);
    json_decref(have);
    free(want_s);
    free(path);
    return rc;
}

/* One job of the sweep on this team: its run directory and files. */
typedef struct {
    const fm_job *j;
    const fm_jobfile *jf;
    const fm_grid *g;
    char *dir, *mpath, *cpath, *dpath;
} job_files;

/* Figure 2's data: how far fine-tuning moved each weight matrix (team rank
 * 0, modes that change the weights), into distance.json and the record. */
static void job_distances(const job_files *p, fm_job_result *r) {
    json_t *dj = NULL;
    if (p->g->team_rank != 0 || !strcmp(p->j->mode, "supermask")) return;
    if (job_distance(p->jf->model, p->dir, p->j->seed, &dj) == FM_OK && fm_json_write(p->dpath, dj) == FM_OK) {
        json_object_set_new(r->rec, "distance", as_written(dj));
    } else {
        fm_log("%s: no distances: %s", p->j->name, fm_last_error());
        json_decref(dj);
    }
}

/* A job complete already: take its files (read by the rank that claims it),
 * when it ran with the options the job file gives now. Returns its
 * compute.json marked skipped, or NULL. */
static json_t *job_skipped(const job_files *p, const fm_ft_opts *o, fm_job_result *r) {
    const fm_job *j = p->j;
    json_t *met = NULL, *compute = NULL;
    int ok = same_options(p->dir, o) == FM_OK && fm_json_read(p->mpath, &met) == FM_OK;
    const char *ms = ok ? json_string_value(json_object_get(met, "status")) : NULL;
    const int div = ms && !strcmp(ms, "diverged");
    if (ok && !div) ok = fm_run_mask_read(p->dir, &r->mask) == FM_OK;
    if (div) {
        /* Diverged, as a rerun with the same options would again. */
        const char *on = json_string_value(json_object_get(met, "diverged_on"));
        fm_fail("%s: diverged at step %" JSON_INTEGER_FORMAT " (the %s was not finite); run it with other settings "
                "in another --out, or remove the directory",
                p->mpath, json_integer_value(json_object_get(met, "diverged_at_step")), on ? on : "loss");
        json_decref(met);
        ok = 0;
        json_object_set_new(r->rec, "status", json_string("diverged"));
        json_object_set_new(r->rec, "error", json_string(fm_last_error()));
        if (p->g->team_rank == 0) fm_log("%s: DIVERGED: %s", j->name, fm_last_error());
    } else if (ok) {
        json_object_set_new(r->rec, "status", json_string("done"));
        json_object_set_new(r->rec, "metrics", met);
        if (fm_file_exists(p->cpath) && fm_json_read(p->cpath, &compute) == FM_OK)
            json_object_set_new(compute, "skipped", json_true());
        json_t *dj = NULL;
        if (fm_file_exists(p->dpath) && fm_json_read(p->dpath, &dj) == FM_OK)
            json_object_set_new(r->rec, "distance", dj);
        else
            job_distances(p, r); /* the run that finished it stopped before its distances (killed) */
    } else {
        json_decref(met);
        json_object_set_new(r->rec, "status", json_string("failed"));
        json_object_set_new(r->rec, "error", json_string(fm_last_error()));
        if (p->g->team_rank == 0) fm_log("%s: FAILED: %s", j->name, fm_last_error());
    }
    if (p->g->team_rank == 0 && ok) fm_log("%s: complete in %s; skipped", j->name, p->dir);
    return compute;
}

/* Every rank's x, in team rank order ((replica x stages + stage) x tp + tp rank), divided by
 * div, as a JSON array on team rank 0 (NULL elsewhere or on a failure). */
static json_t *gather_by_rank(const job_files *p, const fm_pipe *pp, uint64_t x, uint64_t div) {
    const fm_grid *g = p->g;
    uint64_t *all = g->team_rank == 0 ? fm_xcalloc((size_t)g->team_size, sizeof(uint64_t)) : NULL;
    json_t *by = NULL;
    if (fm_pipe_team_gather(pp, x, all) != FM_OK) fm_log("%s: compute figures: %s", p->j->name, fm_last_error());
    if (all && div > 0) {
        by = json_array();
        for (int k = 0; k < g->team_size; k++) json_array_append_new(by, json_integer((json_int_t)(all[k] / div)));
    }
    free(all);
    return by;
}

/* compute.json of a job this team ran: times, and this rank's communication
 * (compute.json is team rank 0's: stage 0 of replica 0). comm_bytes: the
 * payload of every allreduce of the training steps (the gradient sums,
 * grad_bytes, and the small sums: loss and signal flags, and on a pipeline
 * the norm and sparsity terms; under tensor parallelism also the sums over
 * the tensor-parallel ranks, tp_sum_bytes: four of B*T*H floats a layer a
 * step, and tp_small_sum_bytes: doubles, the flags, the check of the whole
 * tensors' gradients, the norm and sparsity terms); sync_bytes: the
 * pipeline's broadcasts of owned tensors (over whole models) or the copies
 * that assemble the files from the stages' tensors (checkpoints, the end);
 * p2p_bytes_sent: activations and their gradients. Collective over the team. */
static json_t *job_compute(const job_files *p, const fm_mpi_comm *mc, const fm_ft_hooks *hk, const fm_job_result *r,
                           double wall) {
    const fm_dp *dp = &mc->dp;
    const fm_pipe *pp = &mc->pipe;
    const fm_grid *g = p->g;
    json_t *c = json_object();
    json_object_set_new(c, "wall_seconds", json_real(wall));
    json_object_set_new(c, "train_seconds", json_real(hk->train_seconds));
    json_object_set_new(c, "examples", json_integer(hk->examples));
    json_object_set_new(c, "examples_per_second",
                        json_real(hk->train_seconds > 0 ? (double)hk->examples / hk->train_seconds : 0));
    const uint64_t tp_bytes = hk->tp_train_bytes[0], tp_small = hk->tp_train_bytes[1];
    const uint64_t comm_bytes = dp->bytes + pp->sum_bytes + tp_bytes + tp_small;
    const double tp_seconds = hk->tp_train_seconds;
    json_object_set_new(c, "comm_seconds",
                        json_real(dp->seconds + pp->sum_seconds + tp_seconds + pp->seconds + pp->bcast_seconds));
    json_object_set_new(c, "allreduce_seconds", json_real(dp->seconds + pp->sum_seconds + tp_seconds));
    json_object_set_new(c, "p2p_seconds", json_real(pp->seconds));
    json_object_set_new(c, "p2p_bytes_sent", json_integer((json_int_t)pp->bytes_sent));
    json_object_set_new(c, "sync_seconds", json_real(pp->bcast_seconds));
    json_object_set_new(c, "sync_bytes", json_integer((json_int_t)pp->bcast_bytes));
    json_object_set_new(c, "grad_bytes", json_integer((json_int_t)dp->bytes));
    json_object_set_new(c, "comm_bytes", json_integer((json_int_t)comm_bytes));
    json_object_set_new(c, "comm_calls", json_integer((json_int_t)(dp->calls + pp->sum_calls)));
    int64_t steps = json_integer_value(json_object_get(json_object_get(r->rec, "metrics"), "steps"));
    if (steps > 0)
        json_object_set_new(c, "comm_bytes_per_step", json_integer((json_int_t)(comm_bytes / (uint64_t)steps)));
    /* Every rank's: the stages differ. */
    json_t *by = gather_by_rank(p, pp, comm_bytes, steps > 0 ? (uint64_t)steps : 0);
    if (by) json_object_set_new(c, "comm_bytes_per_step_by_rank", by);
    if (g->ntp > 1) {
        json_object_set_new(c, "tp_sum_bytes", json_integer((json_int_t)tp_bytes));
        json_object_set_new(c, "tp_small_sum_bytes", json_integer((json_int_t)tp_small));
        json_object_set_new(c, "tp_sum_seconds", json_real(tp_seconds));
        if (steps > 0)
            json_object_set_new(c, "tp_sum_bytes_per_step", json_integer((json_int_t)(tp_bytes / (uint64_t)steps)));
        by = gather_by_rank(p, pp, tp_bytes, steps > 0 ? (uint64_t)steps : 0);
        if (by) json_object_set_new(c, "tp_sum_bytes_per_step_by_rank", by);
    }
    /* The evaluations are split over the team: each rank's dev examples. */
    by = gather_by_rank(p, pp, (uint64_t)hk->eval_examples, 1);
    if (by) json_object_set_new(c, "eval_examples_by_rank", by);
    /* The training activations each rank held: a pipeline stage's
     * micro-batch sets (GPipe M, 1F1B at most S - s) and their bytes. */
    by = gather_by_rank(p, pp, (uint64_t)hk->acts_sets, 1);
    if (by) json_object_set_new(c, "acts_sets_by_rank", by);
    by = gather_by_rank(p, pp, (uint64_t)hk->acts_bytes, 1);
    if (by) json_object_set_new(c, "acts_bytes_by_rank", by);
    /* Each rank's peak resident memory when the job had written its files
     * (this job's or an earlier one's peak; before the run's own analyses of
     * the job, such as the distances, which rank 0 computes), in bytes. */
    by = gather_by_rank(p, pp, (uint64_t)hk->peak_rss, 1);
    if (by) json_object_set_new(c, "peak_rss_bytes_by_rank", by);
    json_object_set_new(c, "eval_share_bytes", json_integer((json_int_t)pp->share_bytes));
    json_object_set_new(c, "eval_share_seconds", json_real(pp->share_seconds));
    json_object_set_new(c, "replicas", json_integer(g->nreplicas));
    json_object_set_new(c, "stages", json_integer(g->nstages));
    if (g->ntp > 1) json_object_set_new(c, "tensor_parallel", json_integer(g->ntp));
    if (g->nstages > 1)
        json_object_set_new(c, "pipeline_schedule", json_string(fm_pipe_schedule_names[p->jf->pipeline_schedule]));
    json_object_set_new(c, "team", json_integer(g->team_id));
    return c;
}

/* The job's outcome into r's record: done (with its metrics as metrics.json
 * holds them, the mask read back, the distances), or interrupted, diverged
 * or failed with the error (*rc becomes FM_ERR when the mask cannot be read
 * back). Returns 1 when interrupted. */
static int job_outcome(const job_files *p, fm_mpi_comm *mc, fm_ft_hooks *hk, int *rcp, fm_job_result *r) {
    int rc = *rcp;
    const fm_job *j = p->j;
    const fm_grid *g = p->g;
    if (rc == FM_OK) {
        /* The metrics as metrics.json holds them (numbers at its printed
         * precision, as_written), so that the report is the same whether
         * the job ran in this run or is read back by a later, resumed one. */
        json_object_set_new(r->rec, "status", json_string("done"));
        json_object_set_new(r->rec, "metrics", as_written(hk->metrics));
        hk->metrics = NULL;
        /* The writer reads the mask back for the report; the team learns
         * whether it could (the job fails on every rank with its message). */
        int mok = g->team_rank != 0 || fm_run_mask_read(p->dir, &r->mask) == FM_OK;
        if (fm_pipe_team_agree(&mc->pipe, mok) != FM_OK) rc = FM_ERR; /* failed, below */
    }
    *rcp = rc;
    if (rc == FM_OK) {
        fm_stopsig_test_pause_at("written");
        job_distances(p, r);
        return 0;
    }
    const int interrupted = hk->interrupted;
    const char *st = interrupted ? "interrupted" : hk->diverged ? "diverged" : "failed";
    json_object_set_new(r->rec, "status", json_string(st));
    json_object_set_new(r->rec, "error", json_string(fm_last_error()));
    const char *what = interrupted ? "interrupted" : hk->diverged ? "DIVERGED" : "FAILED";
    if (g->team_rank == 0)
        fm_log("%s: %s: %s", j->name, what, fm_last_error());
    else
        fm_debug("%s: %s on team rank %d too: %s", j->name, what, g->team_rank, fm_last_error());
    return interrupted;
}

/* Run (or continue, from its state file; none: from step 0) job p on this
 * team; its compute.json into *compute. Returns 1 when it was interrupted by
 * SIGTERM, or when a SIGTERM arrived while it ran. */
static int job_train(const job_files *p, fm_ft_opts *o, int quiet_jobs, double t0, fm_job_result *r,
                     json_t **compute) {
    const fm_job *j = p->j;
    const fm_grid *g = p->g;
    o->resume = 1;
    /* The replicas of a stage sum the gradients of the tensors the stage
     * holds, per layer; the stages of a replica exchange activations,
     * norm terms and, before evaluations and writes, their tensors. */
    fm_mpi_comm mc;
    fm_mpi_comm_team(&mc, g);
    fm_ft_hooks hk = {.comm = &mc.comm,
                      .micro_batches = p->jf->micro_batches,
                      .pipeline_schedule = p->jf->pipeline_schedule,
                      .tp_bytes = {&mc.tp.sum_bytes, &mc.tp.small_bytes},
                      .tp_seconds = &mc.tp.sum_seconds};
    o->hooks = &hk;
    fm_clear_error();
    if (g->team_rank == 0 && !quiet_jobs) fm_log("%s: start (team %d)", j->name, g->team_id);
    int v = fm_verbosity;
    if (quiet_jobs && v == 1) fm_verbosity = 0; /* the job's own lines; errors still print */
    int rc = fm_finetune(o);
    fm_verbosity = v;
    int interrupted = job_outcome(p, &mc, &hk, &rc, r);
    json_decref(hk.metrics);
    interrupted |= hk.term_seen;
    *compute = job_compute(p, &mc, &hk, r, fm_mpi_wtime() - t0);
    fm_mpi_comm_free(&mc);
    /* compute.json is the run's timing, not its science: a failure to
     * write it is reported and the job stays done (as the distances). */
    if (g->team_rank == 0 && rc == FM_OK &&
        (fm_test_fail_write("compute", p->cpath) != FM_OK || fm_json_write(p->cpath, *compute) != FM_OK))
        fm_log("%s: warning: no compute.json: %s", j->name, fm_last_error());
    return interrupted;
}

/* Run job j on this team; fills r (the team's first rank only keeps it).
 * Returns 1 when the job was interrupted by SIGTERM (its state is saved). */
static int run_job(const fm_job *j, const fm_jobfile *jf, const char *out, const fm_grid *g, int threads,
                   int quiet_jobs, fm_job_result *r, double *busy) {
    double t0 = fm_mpi_wtime();
    int interrupted = 0;
    memset(r, 0, sizeof *r);
    r->rec = fm_job_record(j);
    job_files p = {.j = j, .jf = jf, .g = g, .dir = fm_path_join(out, j->name)};
    p.mpath = fm_path_join(p.dir, "metrics.json");
    p.cpath = fm_path_join(p.dir, "compute.json");
    p.dpath = fm_path_join(p.dir, "distance.json");
    json_t *compute = NULL;
    fm_ft_opts o;
    job_opts(&o, j, jf, p.dir, threads);
    /* Complete already? The team's first rank decides for the team (a
     * shared file system may show the ranks different things, and the two
     * branches make different collectives). */
    int complete = g->team_rank == 0 && fm_file_exists(p.mpath);
    if (fm_grid_team_decide(g, &complete, 1) != FM_OK) {
        json_object_set_new(r->rec, "status", json_string("failed"));
        json_object_set_new(r->rec, "error", json_string(fm_last_error()));
        if (g->team_rank == 0) fm_log("%s: FAILED: %s", j->name, fm_last_error());
    } else if (complete) {
        compute = job_skipped(&p, &o, r);
    } else {
        interrupted = job_train(&p, &o, quiet_jobs, t0, r, &compute);
    }
    if (!compute) compute = json_object();
    json_object_set_new(compute, "team", json_integer(g->team_id));
    json_object_set_new(r->rec, "compute", compute);
    *busy += fm_mpi_wtime() - t0;
    free(p.dir);
    free(p.mpath);
    free(p.cpath);
    free(p.dpath);
    return interrupted;
}

/* run's command line: its own options (the job file's overrides). */
typedef struct {
    const char *out, *model, *data, *baseline;
    int schedule; /* -1: the job file's */
    long long team_size, stages, tp, threads, maxex, micro, budget;
    int quiet_jobs, list;
} run_opts;

/* The command line into o. Returns -1 to go on, else the exit status. */
static int run_parse(int argc, char **argv, run_opts *o) {
    static const struct option opts[] = {
        {"out", required_argument, 0, 'o'},        {"model", required_argument, 0, 'M'},
        {"data", required_argument, 0, 'D'},       {"team-size", required_argument, 0, 'T'},
        {"stages", required_argument, 0, 'S'},     {"threads", required_argument, 0, 't'},
        {"baseline", required_argument, 0, 'b'},   {"max-train-examples", required_argument, 0, 'x'},
        {"micro-batches", required_argument, 0, 'm'}, {"quiet-jobs", no_argument, 0, 'q'},
        {"gather-budget", required_argument, 0, 'B'}, {"pipeline-schedule", required_argument, 0, 'P'},
        {"tensor-parallel", required_argument, 0, 'p'}, {"list", no_argument, 0, 'l'},
        {"help", no_argument, 0, 'h'},                 {0, 0, 0, 0},
    };
    *o = (run_opts){.maxex = -1, .budget = 256LL << 20, .schedule = -1};
    optind = 0;
    opterr = 0;
    for (int ch; (ch = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
        int rc = FM_OK;
        switch (ch) {
        case 'o': o->out = optarg; break;
        case 'M': o->model = optarg; break;
        case 'D': o->data = optarg; break;
        case 'b': o->baseline = optarg; break;
        case 'q': o->quiet_jobs = 1; break;
        case 'l': o->list = 1; break;
        case 'T': rc = fm_opt_long("--team-size", optarg, 1, 1 << 20, &o->team_size); break;
        case 'S': rc = fm_opt_long("--stages", optarg, 1, 1 << 20, &o->stages); break;
        case 'p': rc = fm_opt_long("--tensor-parallel", optarg, 1, 1 << 20, &o->tp); break;
        case 'm': rc = fm_opt_long("--micro-batches", optarg, 1, 1 << 20, &o->micro); break;
        case 't': rc = fm_opt_long("--threads", optarg, 1, 4096, &o->threads); break;
        case 'x': rc = fm_opt_long("--max-train-examples", optarg, 0, 1LL << 40, &o->maxex); break;
        case 'B': rc = fm_opt_long("--gather-budget", optarg, 0, 1LL << 30, &o->budget); break;
        case 'P':
            o->schedule = fm_opt_enum_value(fm_pipe_schedule_names, 2, optarg);
            if (o->schedule < 0) rc = fm_fail("--pipeline-schedule: expected gpipe or 1f1b, found '%s'", optarg);
            break;
        case 'h': usage(stdout); return 0;
        default:
            fm_fail("run: unknown or incomplete option '%s' (see finemask run --help)", argv[optind - 1]);
            return fm_cli_fail();
        }
        if (rc != FM_OK) return fm_cli_fail();
    }
    if (optind != argc - 1) {
        fm_fail("run: expected one JOBFILE (see finemask run --help)");
        return fm_cli_fail();
    }
    return -1;
}

/* One `run`: the job file with the command line's overrides, the layout,
 * the jobs in their order, and run.json as it grows. */
typedef struct {
    run_opts opt;
    fm_jobfile jf;
    fm_job *jobs;
    int njobs, *order;
    fm_grid g;
    int have_grid;
    int rank, verbosity;
    double t_start;
    char team_prefix[32];
    json_t *run;
} run_ctx;

/* The command line's overrides into the job file. FM_ERR without an
 * output directory. */
static int run_overrides(run_ctx *c) {
    fm_jobfile *jf = &c->jf;
    const run_opts *o = &c->opt;
    if (o->out) free(jf->out), jf->out = fm_xstrdup(o->out);
    if (o->model) free(jf->model), jf->model = fm_xstrdup(o->model);
    if (o->data) free(jf->data), jf->data = fm_xstrdup(o->data);
    if (o->team_size) jf->team_size = (int)o->team_size;
    if (o->stages) jf->stages = (int)o->stages;
    if (o->tp) jf->tensor_parallel = (int)o->tp;
    if (o->micro) jf->micro_batches = (int)o->micro;
    if (o->schedule >= 0) jf->pipeline_schedule = (fm_pipe_schedule)o->schedule;
    if (o->threads) jf->threads = (int)o->threads;
    if (o->maxex >= 0) jf->train.max_train_examples = o->maxex;
    if (!jf->out) return fm_fail("%s: no output directory: give [run] out or --out", jf->path);
    return FM_OK;
}

/* The command line's overrides into the job file, the grid of teams, and
 * the jobs. FM_ERR on a failure (the caller fails on every rank). */
static int run_setup(run_ctx *c) {
    fm_jobfile *jf = &c->jf;
    if (run_overrides(c) != FM_OK) return FM_ERR;
    if (fm_grid_init(&c->g, jf->team_size, jf->stages, jf->tensor_parallel) != FM_OK) return FM_ERR;
    c->have_grid = 1;
    /* Each team's first rank speaks for its jobs (their lines, and the line
     * that ends each), named "[team N]" when there are several teams. */
    if (c->g.team_id >= 0 && c->g.team_rank == 0) fm_verbosity = c->verbosity;
    if (c->g.nteams > 1 && c->g.team_id >= 0)
        snprintf(c->team_prefix, sizeof c->team_prefix, "[team %d] ", c->g.team_id);
    return fm_jobfile_expand(jf, &c->jobs, &c->njobs);
}

/* Rank 0 estimates the work (reads the training files; a job already
 * complete in the output directory has none left) and everyone gets it:
 * the assignment of jobs to teams follows from it (sched.h). */
static void run_order(run_ctx *c) {
    fm_job *jobs = c->jobs;
    const int njobs = c->njobs;
    double *work = fm_xcalloc((size_t)njobs + 1, sizeof(double));
    if (c->rank == 0) {
        fm_jobs_estimate(jobs, njobs, c->jf.data);
        for (int i = 0; i < njobs; i++) {
            char *jd = fm_path_join(c->jf.out, jobs[i].name), *mp = fm_path_join(jd, "metrics.json");
            work[i] = fm_file_exists(mp) ? 0 : jobs[i].work;
            free(jd);
            free(mp);
        }
    }
    fm_bcast_doubles(work, njobs);
    for (int i = 0; i < njobs; i++) jobs[i].work = work[i];
    free(work);
    c->order = fm_xmalloc(sizeof(int) * ((size_t)njobs + 1));
    fm_jobs_order(jobs, njobs, c->order);
}

/* run.json as it is before the sweep: the name, the layout, the jobs and
 * their order. */
static json_t *run_json(const run_ctx *c) {
    const fm_grid *g = &c->g;
    json_t *run = json_object();
    json_object_set_new(run, "name", json_string(c->jf.name));
    json_object_set_new(run, "jobfile", json_string(c->jf.path));
    json_t *layout = json_object();
    json_object_set_new(layout, "world_size", json_integer(g->world_size));
    json_object_set_new(layout, "team_size", json_integer(g->team_size));
    json_object_set_new(layout, "teams", json_integer(g->nteams));
    json_object_set_new(layout, "stages", json_integer(g->nstages));
    json_object_set_new(layout, "replicas", json_integer(g->nreplicas));
    json_object_set_new(layout, "tensor_parallel", json_integer(g->ntp));
    json_object_set_new(layout, "threads", json_integer(c->jf.threads));
    json_object_set_new(layout, "micro_batches", json_integer(c->jf.micro_batches));
    json_object_set_new(layout, "pipeline_schedule", json_string(fm_pipe_schedule_names[c->jf.pipeline_schedule]));
    json_object_set_new(run, "layout", layout);
    json_t *jl = json_array(), *ol = json_array();
    for (int i = 0; i < c->njobs; i++) {
        json_t *r = fm_job_record(&c->jobs[i]);
        json_object_set_new(r, "work", json_real(c->jobs[i].work));
        json_array_append_new(jl, r);
        json_array_append_new(ol, json_integer(c->order[i]));
    }
    json_object_set_new(run, "jobs", jl);
    json_object_set_new(run, "order", ol);
    return run;
}

/* Rank 0 writes run.json and announces the run. Collective: FM_ERR on
 * every rank when rank 0 could not write. */
static int run_announce(const run_ctx *c) {
    const fm_grid *g = &c->g;
    int bad = 0;
    if (c->rank == 0) {
        char *p = fm_path_join(c->jf.out, "run.json");
        bad = fm_mkdirs(c->jf.out) != FM_OK || fm_json_write(p, c->run) != FM_OK;
        free(p);
        fm_log("%s: %d job(s) over %d team(s) of %d rank(s) (%d stage(s) x %d replica(s) x %d tensor-parallel); "
               "output %s",
               c->jf.name, c->njobs, g->nteams, g->team_size, g->nstages, g->nreplicas, g->ntp, c->jf.out);
        if (g->world_size % g->team_size)
            fm_log("warning: %d rank(s) do not make a whole team of %d and stay idle", g->world_size % g->team_size,
                   g->team_size);
    }
    return fm_any(bad) ? FM_ERR : FM_OK;
}

/* What this rank sends to rank 0 at the end: each job's record with its
 * mask's statistics, and the mask's bits while they fit in this rank's
 * share of --gather-budget (the others stay in the run directory, where
 * rank 0 reads them when it counts overlaps: report.h). So the gather,
 * and what any rank holds, is bounded whatever the sweep's size. */
typedef struct {
    unsigned char *mine;
    size_t mine_len;
    double stats[3]; /* busy seconds, idle seconds, jobs */
} run_share;

/* The sweep: this rank's team runs the jobs the schedule gives it. */
static void run_sweep(const run_ctx *c, run_share *sh) {
    const fm_grid *g = &c->g;
    const int njobs = c->njobs;
    fm_sched s;
    {
        double *ow = fm_xcalloc((size_t)njobs + 1, sizeof(double));
        for (int k = 0; k < njobs; k++) ow[k] = c->jobs[c->order[k]].work;
        fm_sched_init(&s, g, ow, njobs);
        free(ow);
    }
    size_t bits_sent = 0;
    const size_t bits_share = (size_t)c->opt.budget / (size_t)g->world_size;
    double busy = 0, njob_team = 0;
    int stopped = 0;
    if (g->team_id >= 0)
        for (;;) {
            int64_t k = fm_sched_next(&s, fm_stopsig_term() || stopped);
            if (k < 0 || k >= njobs) break;
            fm_job_result r;
            double tj = fm_mpi_wtime();
            fm_log_set_prefix(c->team_prefix);
            stopped |= run_job(&c->jobs[c->order[k]], &c->jf, c->jf.out, g, c->jf.threads, c->opt.quiet_jobs, &r,
                               &busy);
            fm_log_set_prefix(NULL);
            njob_team++;
            if (g->team_rank == 0) log_job_end(&r, k, njobs, g->team_id, fm_mpi_wtime() - tj);
            if (g->team_rank == 0) {
                const size_t nb = fm_result_bits_bytes(&r);
                const int with_bits = nb > 0 && bits_sent + nb <= bits_share;
                if (with_bits) bits_sent += nb;
                fm_result_pack(&r, with_bits, &sh->mine, &sh->mine_len);
            }
            fm_result_free(&r);
        }
    if (c->rank != 0 && fm_verbosity == 1) fm_verbosity = 0; /* the jobs are over: rank 0 speaks again */
    stopped |= fm_stopsig_term();
    fm_sched_finish(&s);
    sh->stats[0] = busy;
    sh->stats[1] = s.idle_seconds;
    sh->stats[2] = njob_team;
    fm_sched_free(&s);
}

/* Rank 0: the results packed in all (the final gather) into res; their
 * number into *n. FM_ERR when one cannot be unpacked (those before it stay). */
static int run_unpack(const run_ctx *c, const unsigned char *all, size_t all_len, fm_job_result *res, int *n) {
    int rc = FM_OK;
    *n = 0;
    for (size_t pos = 0; pos < all_len && *n < c->njobs;) {
        size_t used;
        if (fm_result_unpack(&res[*n], all + pos, all_len - pos, &used) != FM_OK) {
            rc = FM_ERR;
            break;
        }
        pos += used;
        (*n)++;
    }
    int with = 0, without = 0;
    for (int i = 0; i < *n; i++)
        if (res[i].mask.n) {
            if (res[i].mask.t[0].bits) with++;
            else without++;
        }
    fm_log("final gather: %zu bytes; %d mask(s) came with their bits, %d stay in the run directory "
           "(--gather-budget %lld)",
           all_len, with, without, c->opt.budget);
    return rc;
}

/* Rank 0: a "not run" record for each job no team claimed (the run was
 * stopped by SIGTERM), appended to res (while grc is FM_OK). */
static void run_not_run(const run_ctx *c, int grc, fm_job_result *res, int *n) {
    char *got = fm_xcalloc((size_t)c->njobs + 1, 1);
    for (int i = 0; i < *n; i++) {
        json_int_t ix = json_integer_value(json_object_get(res[i].rec, "index"));
        if (ix >= 0 && ix < c->njobs) got[ix] = 1;
    }
    for (int i = 0; i < c->njobs && grc == FM_OK; i++)
        if (!got[i]) {
            res[*n].rec = fm_job_record(&c->jobs[i]);
            json_object_set_new(res[*n].rec, "status", json_string("not run"));
            json_object_set_new(res[*n].rec, "error",
                                json_string("not run: the run was stopped by SIGTERM; run it again to continue"));
            (*n)++;
        }
    free(got);
}

/* Rank 0: the teams' figures (every rank's three, allstats), the wall time
 * and the baseline's into run.json. Returns the wall time. */
static double run_timing(run_ctx *c, const double *allstats) {
    json_t *teams = json_array();
    for (int t = 0; t < c->g.nteams; t++) {
        const double *st = allstats + 3 * (size_t)t * c->g.team_size;
        json_t *o = json_object();
        json_object_set_new(o, "busy_seconds", json_real(st[0]));
        json_object_set_new(o, "idle_seconds", json_real(st[1]));
        json_object_set_new(o, "jobs", json_integer((json_int_t)st[2]));
        json_array_append_new(teams, o);
    }
    json_object_set_new(c->run, "teams", teams);
    double wall = fm_mpi_wtime() - c->t_start;
    json_object_set_new(c->run, "wall_seconds", json_real(wall));
    const char *baseline = c->opt.baseline;
    if (baseline) {
        char *bp = fm_path_join(baseline, "run.json");
        json_t *b = NULL;
        if (fm_json_read(bp, &b) == FM_OK && json_is_number(json_object_get(b, "wall_seconds")))
            json_object_set_new(c->run, "baseline_wall_seconds", json_real(json_number_value(json_object_get(b, "wall_seconds"))));
        else
            fm_log("--baseline %s: no run.json with wall_seconds; no speedup reported", baseline);
        json_decref(b);
        free(bp);
    }
    return wall;
}

/* Rank 0: the failures into run.json, run.json and the report written, the
 * last lines. Returns the exit status. */
static int run_report(run_ctx *c, int grc, fm_job_result *res, int n, double wall) {
    json_t *fails = json_object();
    int nfail = 0;
    for (int i = 0; i < n; i++)
        if (strcmp(json_string_value(json_object_get(res[i].rec, "status")), "done")) {
            nfail++;
            json_object_set(fails, json_string_value(json_object_get(res[i].rec, "name")),
                            json_object_get(res[i].rec, "error"));
        }
    json_object_set_new(c->run, "failures", fails);
    char *p = fm_path_join(c->jf.out, "run.json");
    int wrc = fm_json_write(p, c->run);
    free(p);
    if (grc == FM_OK && n != c->njobs) {
        fm_fail("final gather: %d of %d job results reached rank 0", n, c->njobs);
        grc = FM_ERR;
    }
    if (grc == FM_OK && wrc == FM_OK && fm_report_write(c->jf.out, res, n, c->run) == FM_OK) {
        fm_log("%s: %d job(s), %d failed, %.1f s; report in %s/report", c->jf.name, n, nfail, wall, c->jf.out);
        for (int i = 0; i < n; i++)
            if (strcmp(json_string_value(json_object_get(res[i].rec, "status")), "done"))
                fprintf(stderr, "finemask: failed: %s: %s\n", json_string_value(json_object_get(res[i].rec, "name")),
                        json_string_value(json_object_get(res[i].rec, "error")));
        return nfail ? 1 : 0;
    }
    fm_cli_fail();
    return 1;
}

/* The final gather of every rank's share and, on rank 0, run.json and the
 * report. Returns rank 0's exit status (1 elsewhere). */
static int run_finish(run_ctx *c, run_share *sh) {
    const int rank = c->rank;
    int status = 1;
    unsigned char *all = NULL;
    size_t all_len = 0;
    double *allstats = rank == 0 ? fm_xmalloc(sizeof(double) * 3 * (size_t)c->g.world_size) : NULL;
    fm_gather_doubles(sh->stats, 3, allstats);
    int grc = fm_gather_bytes(sh->mine, sh->mine_len, &all, &all_len);
    free(sh->mine);
    if (rank == 0 && grc == FM_OK) {
        fm_job_result *res = fm_xcalloc((size_t)c->njobs + 1, sizeof *res);
        int n = 0;
        grc = run_unpack(c, all, all_len, res, &n);
        run_not_run(c, grc, res, &n);
        double wall = run_timing(c, allstats);
        status = run_report(c, grc, res, n, wall);
        for (int i = 0; i < n; i++) fm_result_free(&res[i]);
        free(res);
    } else if (rank == 0) {
        fm_cli_fail();
    }
    free(all);
    free(allstats);
    return status;
}

/* Everything after MPI is up: the sweep and its report. Returns the exit
 * status (everyone's is rank 0's) or -1 on a failure before the sweep
 * (rank 0 reports it). */
static int run_sweep_and_report(run_ctx *c) {
    if (run_setup(c) != FM_OK) return -1;
    run_order(c);
    c->run = run_json(c);
    if (run_announce(c) != FM_OK) {
        json_decref(c->run);
        return -1;
    }
    run_share sh = {0};
    run_sweep(c, &sh);
    int status = run_finish(c, &sh);
    json_decref(c->run);
    /* Everyone exits with rank 0's verdict. */
    double st = status;
    fm_bcast_doubles(&st, 1);
    return (int)st;
}

/* A job's status in its run directory dir, as --list prints it: done or
 * diverged (metrics.json), partial at the step of its state file (read
 * from the file's header only), or not started. */
static void job_status(const char *dir, char *out, size_t cap) {
    char *mp = fm_path_join(dir, "metrics.json"), *sp = fm_path_join(dir, FM_STATE_FILE);
    json_t *met = NULL;
    fm_st_file f;
    if (fm_file_exists(mp)) {
        const char *st = fm_json_read(mp, &met) == FM_OK ? json_string_value(json_object_get(met, "status")) : NULL;
        snprintf(out, cap, "%s", st && !strcmp(st, "diverged") ? "diverged" : "done");
        json_decref(met);
    } else if (fm_file_exists(sp) && fm_st_open(&f, sp) == FM_OK) {
        const char *step = fm_st_meta_get(&f, "step");
        if (step) snprintf(out, cap, "partial at step %s", step);
        else snprintf(out, cap, "partial");
        fm_st_close(&f);
    } else {
        snprintf(out, cap, "%s", fm_file_exists(sp) ? "partial" : "not started");
    }
    fm_clear_error();
    free(mp);
    free(sp);
}

/* run --list: every job of the job file, in its order, with its status in
 * the output directory; nothing runs and MPI does not start. */
static int run_list(run_ctx *c) {
    fm_job *jobs = NULL;
    int n = 0;
    if (run_overrides(c) != FM_OK || fm_jobfile_expand(&c->jf, &jobs, &n) != FM_OK) return fm_cli_fail();
    printf("job\ttask\tmode\tseed\tstatus\n");
    for (int i = 0; i < n; i++) {
        char st[64], *dir = fm_path_join(c->jf.out, jobs[i].name);
        job_status(dir, st, sizeof st);
        printf("%s\t%s\t%s\t%" PRIu64 "\t%s\n", jobs[i].name, jobs[i].task, jobs[i].mode, jobs[i].seed, st);
        free(dir);
    }
    free(jobs);
    return 0;
}

int fm_cmd_run(int argc, char **argv) {
    run_ctx c = {0};
    int rc = run_parse(argc, argv, &c.opt);
    if (rc >= 0) return rc;
    if (c.opt.list) {
        if (fm_jobfile_read(&c.jf, argv[optind]) != FM_OK) return fm_cli_fail();
        rc = run_list(&c);
        fm_jobfile_free(&c.jf);
        return rc;
    }
    if (fm_mpi_init(&argc, &argv) != FM_OK) return fm_cli_fail();
    /* SIGTERM and SIGUSR1 are caught for the whole command (stopsig.h): one
     * that arrives while a job loads or tokenizes, or between jobs, stays
     * pending until the job's training loop saves its state at the next step
     * (and stops, for SIGTERM; a team whose rank saw SIGTERM claims no more
     * jobs). Neither kills a rank, whenever it arrives. */
    fm_stopsig stopsig = {0};
    fm_stopsig_catch(&stopsig);
    c.rank = fm_mpi_world_rank();
    c.verbosity = fm_verbosity;
    if (c.rank != 0 && fm_verbosity == 1) fm_verbosity = 0; /* rank 0 speaks for the run, others only errors */
    c.t_start = fm_mpi_wtime();
    int status = 1;
    if (fm_jobfile_read(&c.jf, argv[optind]) != FM_OK) {
        if (c.rank == 0) fm_cli_fail();
    } else {
        status = run_sweep_and_report(&c);
        if (status < 0) {
            status = 1;
            if (c.rank == 0) fm_cli_fail();
        }
        free(c.order);
        free(c.jobs);
        if (c.have_grid) fm_grid_free(&c.g);
        fm_jobfile_free(&c.jf);
    }
    fm_mpi_finalize();
    fm_stopsig_restore(&stopsig);
    return status;
}
