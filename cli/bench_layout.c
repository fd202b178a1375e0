/* bench_layout.c: `finemask bench` under an MPI launcher: the training steps
 * of a layout (replicas x pipeline stages x tensor-parallel ranks) through
 * the training engine, and every rank's peak resident memory beside the
 * arithmetic of what its share of the model and of the batch needs. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "cli.h"
#include "blas.h"
#include "coll.h"
#include "comm.h"
#include "dataset.h"
#include "engine.h"
#include "fm.h"
#include "grid.h"
#include "model.h"
#include "opts.h"
#include "rng.h"

void fm_bench_share_of(const fm_model *m, const fm_trainer *tr, int stage, int stages, fm_bench_share *s) {
    /* stages 0: the whole model's (whole tensors even on a tensor-parallel shard) */
    const int whole = stages == 0;
    const int L = m->cfg.num_hidden_layers, sm = tr->o.mode == FM_TRAIN_SUPERMASK;
    double piece[4096] = {0}; /* masked floats of each piece: embeddings, layers, heads */
    memset(s, 0, sizeof *s);
    for (int i = 0; i < m->lay.n; i++) {
        const fm_tensor *t = &m->lay.t[i];
        if (stages > 1 && fm_layout_stage(t, L, stages) != stage) continue;
        const double n = (double)(whole ? t->whole_numel : t->numel), f = sizeof(float);
        const int masked = sm && tr->masked_of[i] >= 0;
        s->params += n * f;
        if (t->trains || t->needs_grad) s->grads += n * f;
        if (t->trains || masked) s->moments += 2 * n * f;
        if (masked) {
            s->nu += n * f + ceil(n / 8);
            if (t->layer + 1 >= 0 && t->layer + 1 < 4096) piece[t->layer + 1] += n;
        }
    }
    double most = 0;
    for (int p = 0; p < L + 2 && p < 4096; p++)
        if (piece[p] > most) most = piece[p];
    s->nu += most * sizeof(float);
}

/* The synthetic data: rows of random word pieces in two segments, no padding. */
static void synth_rows(fm_dataset *d, const fm_config *c, int n, int T) {
    fm_dataset_alloc(d, n, T, 0);
    for (int i = 0; i < n * T; i++) {
        d->ids[i] = (int32_t)fm_rng_below(1, FM_RNG_DATA, 0, 0, (uint64_t)i, (uint32_t)c->vocab_size);
        d->types[i] = (i % T) >= T / 2;
    }
    for (int r = 0; r < n; r++) {
        d->lengths[r] = T;
        d->labels[r] = r % 2;
        d->targets[r] = NAN;
    }
}

static int64_t synth_fill(void *ctx, fm_batch_buf *bb, const fm_dataset *d, const int32_t *rows, int n,
                          int64_t example0) {
    (void)ctx;
    fm_batch_fill(bb, d, rows, n, 1, example0);
    bb->b.targets = NULL;
    return n;
}

/* One rank's figures, gathered to rank 0 in this order. */
enum { F_STAGE, F_REPLICA, F_TP, F_RSS, F_RSS_EVAL, F_PARAMS, F_GRADS, F_MOM, F_NU, F_ACTS, F_STEP, F_OPT,
       F_TP_BYTES, F_TP_SECONDS, F_N };

typedef struct {
    const fm_bench_opts *o;
    fm_config cfg;
    fm_grid g;
    fm_mpi_comm mc;
    fm_model m;
    fm_dataset d;
    fm_engine e;
    int have_grid, have_comm, have_model, have_data, have_engine;
    double f[F_N];
    double eval_fwd, eval_train; /* bytes of an evaluation's activations: forward-only, training-kind */
} lay_job;

/* The grid, the model (random weights), the data and the engine. */
static int lay_setup(lay_job *j) {
    const fm_bench_opts *o = j->o;
    if (fm_grid_init(&j->g, fm_mpi_world_size(), o->stages, o->tensor_parallel) != FM_OK) return FM_ERR;
    j->have_grid = 1;
    fm_mpi_comm_team(&j->mc, &j->g);
    j->have_comm = 1;
    /* a tensor-parallel rank allocates its stage's shares only (random weights: the values do not matter here) */
    if (j->g.ntp > 1) fm_model_alloc_shard(&j->m, &j->cfg, j->g.tp_idx, j->g.ntp, j->g.stage_idx, j->g.nstages);
    else fm_model_alloc_stage(&j->m, &j->cfg, j->g.stage_idx, j->g.nstages);
    j->have_model = 1;
    fm_model_init_weights(&j->m, 1);
    if (o->mode_v == FM_TRAIN_FREEZE)
        for (int i = 0; i < j->m.lay.n; i++)
            if (j->m.lay.t[i].layer < 0) j->m.lay.t[i].trains = j->m.lay.t[i].needs_grad = 0;
    synth_rows(&j->d, &j->cfg, o->B > o->eval_batch ? o->B : o->eval_batch, o->T);
    j->have_data = 1;
    fm_engine_cfg ec;
    memset(&ec, 0, sizeof ec);
    fm_trainer_opts_default(&ec.train);
    ec.train.mode = (fm_train_mode)o->mode_v;
    ec.train.seed = 1;
    ec.train.init_sparsity = 0.5;
    ec.train.opt.total_steps = ec.train.mask_opt.total_steps = o->steps + 1;
    ec.batch = o->B;
    ec.seq = o->T;
    ec.micro_batches = o->micro_batches;
    ec.cls_only_last = 1;
    ec.scale = FM_SCALE_ROWS;
    ec.data = &j->d;
    ec.fill = synth_fill;
    ec.comm = &j->mc.comm;
    int ok = fm_engine_init(&j->e, &j->m, &ec) == FM_OK;
    j->have_engine = ok;
    return fm_comm_agree(&j->mc.comm, ok);
}

/* One warm-up step and o->steps timed ones: the medians of a step and of its
 * update, and the peak resident memory after them. */
static int lay_steps(lay_job *j) {
    const int steps = j->o->steps, B = j->o->B;
    double *ts = fm_xcalloc((size_t)steps + 1, sizeof(double)), *to = fm_xcalloc((size_t)steps + 1, sizeof(double));
    int32_t *rows = fm_xmalloc(sizeof(int32_t) * (size_t)B);
    for (int i = 0; i < B; i++) rows[i] = i;
    int rc = FM_OK;
    for (int s = -1; s < steps && rc == FM_OK; s++) {
        double t0 = fm_mpi_wtime(), norm = 0, factor = 0;
        fm_engine_batch(&j->e, j->e.tr.step, rows, B);
        fm_step_out out = {0};
        rc = fm_engine_step(&j->e, &out);
        double t1 = fm_mpi_wtime();
        if (rc == FM_OK) rc = fm_engine_apply(&j->e, &norm, &factor);
        double t2 = fm_mpi_wtime();
        if (s >= 0) ts[s] = t2 - t0, to[s] = t2 - t1;
        if (rc == FM_OK && !j->o->json && j->g.world_rank == 0)
            fm_log("bench: step %d/%d: %.3f s (loss %.4f)", s + 1, steps, t2 - t0, out.loss);
    }
    j->f[F_TP_BYTES] = (double)j->mc.tp.sum_bytes / (steps + 1); /* per step, the warm-up's too */
    j->f[F_TP_SECONDS] = j->mc.tp.sum_seconds / (steps + 1);
    j->f[F_STEP] = steps ? fm_bench_median(ts, steps) : 0;
    j->f[F_OPT] = steps ? fm_bench_median(to, steps) : 0;
    j->f[F_RSS] = (double)fm_peak_rss();
    free(ts);
    free(to);
    free(rows);
    return rc;
}

/* An evaluation pass as `finemask train` runs one on every rank that holds
 * the whole model: forward-only activations over the whole model for
 * eval_batch rows, dropout off; the peak resident memory after it. On a
 * pipeline stage (which does not run the whole model) only the sizes. */
static void lay_eval(lay_job *j) {
    const fm_bench_opts *o = j->o;
    const int E = o->eval_batch, L = j->cfg.num_hidden_layers;
    j->eval_fwd = (double)fm_acts_size_for(&j->m, E, o->T, 0, L, 1);
    j->eval_train = (double)fm_acts_size_for(&j->m, E, o->T, 0, L, 0);
    j->f[F_RSS_EVAL] = -1;
    if (o->stages > 1) return;
    fm_acts *a = fm_acts_new_for(&j->m, E, o->T, 0, L, 1);
    fm_batch_buf bb;
    fm_batch_buf_alloc(&bb, E, o->T);
    int32_t *rows = fm_xmalloc(sizeof(int32_t) * (size_t)E);
    for (int i = 0; i < E; i++) rows[i] = i;
    fm_batch_fill(&bb, &j->d, rows, E, 1, 0);
    const fm_pass pass = {.seed = 1, .step = 0, .training = 0, .cls_only_last = 1};
    fm_model_forward(&j->m, a, &bb.b, &pass, NULL);
    j->f[F_RSS_EVAL] = (double)fm_peak_rss();
    free(rows);
    fm_batch_buf_free(&bb);
    fm_acts_free(a);
}

static void lay_free(lay_job *j) {
    if (j->have_engine) fm_engine_free(&j->e);
    if (j->have_data) fm_dataset_free(&j->d);
    if (j->have_model) fm_model_free(&j->m);
    if (j->have_comm) fm_mpi_comm_free(&j->mc);
    if (j->have_grid) fm_grid_free(&j->g);
}

#define MIB(x) ((x) / 1048576.0)

/* Rank 0's JSON: the inputs, the layout, the whole model's share, and one
 * object per rank. */
static void lay_print_json(const lay_job *j, const double *all, int n, const fm_bench_share *w) {
    const fm_bench_opts *o = j->o;
    printf("{\"config\": \"%s\", \"layers\": %d, \"batch\": %d, \"seq\": %d, \"mode\": \"%s\", \"ranks\": %d, "
           "\"stages\": %d, \"replicas\": %d, \"tensor_parallel\": %d, \"micro_batches\": %d, \"strategy\": \"%s\", "
           "\"threads\": %d, \"blis_arch\": \"%s\", \"steps\": %d, \"step_s\": %.6f, \"optimizer_s\": %.6f, "
           "\"whole_model_mib\": {\"params\": %.1f, \"grads\": %.1f, \"moments\": %.1f, \"nu_masks\": %.1f}, "
           "\"eval_batch\": %d, \"eval_acts_forward_only_mib\": %.1f, \"eval_acts_training_kind_mib\": %.1f, "
           "\"per_rank\": [",
           o->preset, j->cfg.num_hidden_layers, o->B, o->T, o->mode, n, o->stages, j->g.nreplicas, o->tensor_parallel,
           o->micro_batches, fm_engine_strategy(&j->e), o->threads, fm_blas_arch(), o->steps, all[F_STEP],
           all[F_OPT], MIB(w->params), MIB(w->grads), MIB(w->moments), MIB(w->nu), o->eval_batch, MIB(j->eval_fwd),
           MIB(j->eval_train));
    for (int r = 0; r < n; r++) {
        const double *f = all + (size_t)r * F_N;
        const double sum = f[F_PARAMS] + f[F_GRADS] + f[F_MOM] + f[F_NU] + f[F_ACTS];
        printf("%s{\"rank\": %d, \"stage\": %d, \"replica\": %d, \"tp\": %d, \"peak_rss_mib\": %.1f, "
               "\"tp_sum_bytes_per_step\": %.0f, \"tp_sum_s_per_step\": %.6f, ",
               r ? ", " : "", r, (int)f[F_STAGE], (int)f[F_REPLICA], (int)f[F_TP], MIB(f[F_RSS]), f[F_TP_BYTES],
               f[F_TP_SECONDS]);
        if (f[F_RSS_EVAL] >= 0) printf("\"peak_rss_eval_mib\": %.1f, ", MIB(f[F_RSS_EVAL]));
        printf("\"params_mib\": %.1f, \"grads_mib\": %.1f, \"moments_mib\": %.1f, \"nu_masks_mib\": %.1f, "
               "\"acts_mib\": %.1f, \"share_mib\": %.1f, \"step_s\": %.6f}",
               MIB(f[F_PARAMS]), MIB(f[F_GRADS]), MIB(f[F_MOM]), MIB(f[F_NU]), MIB(f[F_ACTS]), MIB(sum), f[F_STEP]);
    }
    printf("]}\n");
}

/* Rank 0's table. */
static void lay_print_table(const lay_job *j, const double *all, int n, const fm_bench_share *w) {
    const fm_bench_opts *o = j->o;
    printf("finemask bench: BERT-%s (%d layers), batch %d x %d tokens, mode %s\n", o->preset,
           j->cfg.num_hidden_layers, o->B, o->T, o->mode);
    printf("  layout: %d rank(s) = %d replica(s) x %d stage(s) x %d tensor-parallel, %d micro-batch(es), "
           "strategy %s, %d thread(s) per rank, BLIS kernels %s\n",
           n, j->g.nreplicas, o->stages, o->tensor_parallel, o->micro_batches, fm_engine_strategy(&j->e), o->threads,
           fm_blas_arch());
    if (o->steps)
        printf("  median of %d step(s) after a warm-up, rank 0: step %.3f s, optimiser %.3f s\n", o->steps, all[F_STEP],
               all[F_OPT]);
    else
        printf("  the warm-up step alone (--steps 0): no timing\n");
    printf("  memory per rank, MiB: measured peak resident (after the steps; after an evaluation too) beside\n"
           "  the arithmetic of this rank's share (parameters, their gradients, AdamW moments, nu/masks, activations)\n");
    printf("  %4s %5s %7s %3s %9s %9s | %9s %9s %9s %9s %9s %9s\n", "rank", "stage", "replica", "tp", "peak",
           "peak+eval", "params", "grads", "moments", "nu/masks", "acts", "share");
    for (int r = 0; r < n; r++) {
        const double *f = all + (size_t)r * F_N;
        const double sum = f[F_PARAMS] + f[F_GRADS] + f[F_MOM] + f[F_NU] + f[F_ACTS];
        char ev[32] = "-";
        if (f[F_RSS_EVAL] >= 0) snprintf(ev, sizeof ev, "%.1f", MIB(f[F_RSS_EVAL]));
        printf("  %4d %5d %7d %3d %9.1f %9s | %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f\n", r, (int)f[F_STAGE],
               (int)f[F_REPLICA], (int)f[F_TP], MIB(f[F_RSS]), ev, MIB(f[F_PARAMS]), MIB(f[F_GRADS]), MIB(f[F_MOM]), MIB(f[F_NU]),
               MIB(f[F_ACTS]), MIB(sum));
    }
    printf("  the whole model, for comparison: params %.1f, grads %.1f, moments %.1f, "
           "nu/masks %.1f MiB\n",
           MIB(w->params), MIB(w->grads), MIB(w->moments), MIB(w->nu));
    if (o->tensor_parallel > 1) {
        const double per_layer = all[F_TP_BYTES] / j->cfg.num_hidden_layers;
        printf("  tensor-parallel sums, rank 0: %.2f MiB per step (%.2f MiB per layer: 4 sums of batch x seq x "
               "hidden floats = %.2f MiB), %.3f s per step in them\n",
               MIB(all[F_TP_BYTES]), MIB(per_layer), MIB(4.0 * o->B * o->T * j->cfg.hidden_size * sizeof(float)),
               all[F_TP_SECONDS]);
    }
    printf("  an evaluation's activations at %d x %d: %.1f MiB forward-only, %.1f MiB as a training set "
           "(%.1f MiB saved)\n",
           o->eval_batch, o->T, MIB(j->eval_fwd), MIB(j->eval_train), MIB(j->eval_train - j->eval_fwd));
}

/* This rank's figures to rank 0, which prints them. */
static void lay_report(lay_job *j) {
    const int n = j->g.world_size;
    fm_bench_share s, w;
    fm_bench_share_of(&j->m, &j->e.tr, j->g.stage_idx, j->o->stages, &s);
    fm_bench_share_of(&j->m, &j->e.tr, 0, 0, &w);
    j->f[F_STAGE] = j->g.stage_idx;
    j->f[F_REPLICA] = j->g.replica_idx;
    j->f[F_TP] = j->g.tp_idx;
    j->f[F_PARAMS] = s.params;
    j->f[F_GRADS] = s.grads;
    j->f[F_MOM] = s.moments;
    j->f[F_NU] = s.nu;
    size_t buffers = 0;
    j->f[F_ACTS] = (double)fm_engine_acts_bytes(&j->e, NULL, &buffers);
    j->f[F_ACTS] += (double)buffers;
    double *all = fm_xcalloc((size_t)n * F_N, sizeof(double));
    fm_gather_doubles(j->f, F_N, all);
    if (j->g.world_rank == 0) {
        if (j->o->json) lay_print_json(j, all, n, &w);
        else lay_print_table(j, all, n, &w);
        fflush(stdout);
    }
    free(all);
}

int fm_bench_layout(const fm_bench_opts *o, const fm_config *cfg) {
    lay_job j;
    memset(&j, 0, sizeof j);
    j.o = o;
    j.cfg = *cfg;
    const int size = fm_mpi_world_size();
    if (o->tensor_parallel > 1 && cfg->num_attention_heads % o->tensor_parallel) {
        fm_fail("bench: --tensor-parallel %d: BERT-%s has %d attention heads; expected a divisor of them",
                o->tensor_parallel, o->preset, cfg->num_attention_heads);
        return fm_cli_fail();
    }
    if (size % (o->stages * o->tensor_parallel) != 0) {
        fm_fail("bench: %d rank(s) do not split into replicas of %d stage(s) x %d tensor-parallel rank(s)", size,
                o->stages, o->tensor_parallel);
        return fm_cli_fail();
    }
    int rc = lay_setup(&j);
    if (rc == FM_OK) {
        if (!o->json && j.g.world_rank == 0)
            fm_log("bench: %s, %d layers, batch %d x %d, mode %s, %d rank(s), %d stage(s), %d thread(s) per rank",
                   o->preset, cfg->num_hidden_layers, o->B, o->T, o->mode, size, o->stages, o->threads);
        rc = lay_steps(&j);
    }
    if (rc == FM_OK) {
        lay_eval(&j);
        lay_report(&j);
    }
    lay_free(&j);
    return rc == FM_OK ? 0 : fm_cli_fail();
}
