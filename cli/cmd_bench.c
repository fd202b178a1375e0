/* cmd_bench.c: `finemask bench`: time a fine-tuning step (forward, backward,
 * optimiser) on synthetic tokens, and BLIS's sgemm on the step's own GEMM
 * shapes in the same run, so the two rates can be compared; with the peak
 * resident memory beside the arithmetic of what the step holds. Under an MPI
 * launcher, a layout's steps and every rank's memory (bench_layout.c). */
#include <getopt.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "blas.h"
#include "cli.h"
#include "config.h"
#include "fm.h"
#include "fileio.h"
#include "hfconfig.h"
#include "model.h"
#include "optim.h"
#include "opts.h"
#include "rng.h"
#include "train.h"
#include "world.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double fm_bench_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void bench_usage(FILE *f) {
    fprintf(f,
            "usage: finemask bench [--config PRESET|FILE] [--layers N] [--batch B] [--seq T]\n"
            "                      [--mode full|freeze|supermask] [--steps N] [--threads N] [--json]\n"
            "       mpiexec -n RANKS finemask bench ... [--stages S] [--tensor-parallel P] [--micro-batches M]\n"
            "                      [--eval-batch E]\n"
            "\n"
            "Times training steps of a BERT model on synthetic tokens and prints, per phase,\n"
            "the median time, the achieved GEMM GFLOP/s of the step, and BLIS's sgemm GFLOP/s\n"
            "on the same GEMM shapes measured in the same run, plus the peak resident memory\n"
            "beside the bytes of parameters, gradients, AdamW moments, nu/masks and activations.\n"
            "Under mpiexec, the ranks run the steps in a layout (RANKS / (S x P) data-parallel\n"
            "replicas of S pipeline stages) and rank 0 prints every rank's peak resident memory\n"
            "beside the same arithmetic for that rank's share; no GEMM comparison then.\n"
            "\n"
            "  --config PRESET  tiny, mini, small, medium, base (default) or large, or a\n"
            "                   HuggingFace config.json\n"
            "  --layers N       N encoder layers instead of the config's (a model's width on a\n"
            "                   machine too small for its depth)\n"
            "  --batch B        sequences per step (default 8)\n"
            "  --seq T          tokens per sequence (default 128)\n"
            "  --mode MODE      full (default): every parameter trains;\n"
            "                   freeze: embeddings frozen (no gradient computed for them);\n"
            "                   supermask: scores nu over every default-masked matrix (50%% initial\n"
            "                   sparsity), a Bernoulli sample each step, head trained\n"
            "  --steps N        timed steps after one warm-up step (default 5; under mpiexec 0\n"
            "                   runs the warm-up step alone, which reaches the peak memory)\n"
            "  --threads N      threads for BLIS and the element-wise loops (default: BLIS_NUM_THREADS,\n"
            "                   else OMP_NUM_THREADS, else all cores)\n"
            "  --json           print one JSON object instead of the table\n"
            "  --stages S       pipeline stages (default 1; RANKS must be a multiple of S x P)\n"
            "  --tensor-parallel P  ranks that split each layer's matrices (default 1; P must divide\n"
            "                   the heads; alone or in each stage): each holds and trains its shares only\n"
            "  --micro-batches M  micro-batches of each replica's share under a pipeline (default 1)\n"
            "  --eval-batch E   rows of the evaluation pass whose forward-only activations are\n"
            "                   measured (default 32, as train's --eval-batch-size)\n");
}

/* Replay the recorded GEMM shapes with their call counts; returns seconds. */
static double replay_gemms(const fm_gemm_shape *shapes, int nshapes, float *a, float *b, float *c, int threads) {
    double t0 = fm_now();
    for (int s = 0; s < nshapes; s++) {
        const fm_gemm_shape *g = &shapes[s];
        if (g->single_thread) {
            /* The step runs these from a parallel loop, one per thread. */
            long count = g->count;
#pragma omp parallel for schedule(static) num_threads(threads)
            for (long r = 0; r < count; r++) {
                size_t off = (size_t)omp_get_thread_num() * (size_t)g->m * (size_t)g->n;
                fm_sgemm_1t(g->m, g->n, g->k, 1.0f, a, g->k, 1, b, g->n, 1, 0.0f, c + off, g->n, 1);
            }
        } else {
            for (long r = 0; r < g->count; r++)
                fm_sgemm(g->m, g->n, g->k, 1.0f, a, g->k, 1, b, g->n, 1, 0.0f, c, g->n, 1);
        }
    }
    return fm_now() - t0;
}

typedef fm_bench_opts bench_opts;

/* The command line into o, checked. Returns -1 to go on, else the exit status. */
static int bench_parse(int argc, char **argv, bench_opts *o) {
    *o = (bench_opts){.preset = "base", .mode = "full", .B = 8, .T = 128, .steps = 5, .stages = 1,
                      .tensor_parallel = 1, .micro_batches = 1, .eval_batch = 32};
    static const struct option opts[] = {
        {"config", required_argument, 0, 'c'},          {"batch", required_argument, 0, 'b'},
        {"seq", required_argument, 0, 's'},             {"mode", required_argument, 0, 'm'},
        {"steps", required_argument, 0, 'n'},           {"threads", required_argument, 0, 't'},
        {"json", no_argument, 0, 'j'},                  {"help", no_argument, 0, 'h'},
        {"layers", required_argument, 0, 'L'},          {"stages", required_argument, 0, 'S'},
        {"tensor-parallel", required_argument, 0, 'P'}, {"micro-batches", required_argument, 0, 'M'},
        {"eval-batch", required_argument, 0, 'E'},      {0, 0, 0, 0},
    };
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 'c': o->preset = optarg; break;
        case 'b': o->B = atoi(optarg); break;
        case 's': o->T = atoi(optarg); break;
        case 'm': o->mode = optarg; break;
        case 'n': o->steps = atoi(optarg); break;
        case 't': o->threads = atoi(optarg); break;
        case 'j': o->json = 1; break;
        case 'L': o->layers = atoi(optarg); break;
        case 'S': o->stages = atoi(optarg); break;
        case 'P': o->tensor_parallel = atoi(optarg); break;
        case 'M': o->micro_batches = atoi(optarg); break;
        case 'E': o->eval_batch = atoi(optarg); break;
        case 'h': bench_usage(stdout); return 0;
        default: bench_usage(stderr); return 1;
        }
    }
    if (optind < argc) {
        fm_fail("bench: unexpected argument '%s'", argv[optind]);
        return fm_cli_fail();
    }
    if (o->B <= 0 || o->T <= 1 || o->steps < 0) {
        fm_fail("bench: --batch must be positive, --steps at least 0 and --seq at least 2");
        return fm_cli_fail();
    }
    if (o->stages < 1 || o->tensor_parallel < 1 || o->micro_batches < 1 || o->eval_batch < 1 || o->layers < 0) {
        fm_fail("bench: --stages, --tensor-parallel, --micro-batches, --eval-batch and --layers must be positive");
        return fm_cli_fail();
    }
    o->mode_v = fm_opt_enum_value(fm_train_mode_names, 3, o->mode);
    if (o->mode_v < 0) {
        fm_fail("bench: --mode must be full, freeze or supermask, found '%s'", o->mode);
        return fm_cli_fail();
    }
    return -1;
}

/* One benchmark: the model, its trainer, activations and synthetic batch,
 * and what the timed steps measured. */
typedef struct {
    bench_opts o;
    fm_config cfg;
    fm_model m;
    fm_trainer tr;
    fm_acts *acts;
    int32_t *ids, *types, *labels;
    float *mask;
    fm_batch batch;
    double mf, mb, mo, ms, step_flops; /* medians: forward, backward, optimiser, step; GEMM flops of a step */
    size_t rss;
} bench_job;

/* The model (random weights), its trainer in o's mode, the activations and
 * a synthetic batch. FM_ERR (nothing held) when the trainer fails. */
static int bench_setup(bench_job *b) {
    const int B = b->o.B, T = b->o.T;
    fm_model_alloc(&b->m, &b->cfg);
    fm_model_init_weights(&b->m, 1);
    if (b->o.mode_v == FM_TRAIN_FREEZE)
        for (int i = 0; i < b->m.lay.n; i++)
            if (b->m.lay.t[i].layer < 0) b->m.lay.t[i].trains = b->m.lay.t[i].needs_grad = 0;
    fm_trainer_opts tro;
    fm_trainer_opts_default(&tro);
    tro.mode = (fm_train_mode)b->o.mode_v;
    tro.seed = 1;
    tro.init_sparsity = 0.5;
    tro.opt.total_steps = b->o.steps + 1;
    tro.mask_opt.total_steps = b->o.steps + 1;
    if (fm_trainer_init(&b->tr, &b->m, &tro) != FM_OK) {
        fm_model_free(&b->m);
        return FM_ERR;
    }
    b->acts = fm_acts_new(&b->cfg, B, T, 0, b->cfg.num_hidden_layers);

    /* Synthetic batch: random word pieces, two segments, no padding. */
    b->ids = fm_xmalloc(sizeof(int32_t) * (size_t)B * T), b->types = fm_xmalloc(sizeof(int32_t) * (size_t)B * T);
    b->labels = fm_xmalloc(sizeof(int32_t) * (size_t)B);
    b->mask = fm_xmalloc(sizeof(float) * (size_t)B * T);
    for (int i = 0; i < B * T; i++) {
        b->ids[i] = (int32_t)fm_rng_below(1, FM_RNG_DATA, 0, 0, (uint64_t)i, (uint32_t)b->cfg.vocab_size);
        b->types[i] = (i % T) >= T / 2;
        b->mask[i] = 1.0f;
    }
    for (int k = 0; k < B; k++) b->labels[k] = k % 2;
    b->batch = (fm_batch){.B = B, .T = T, .ids = b->ids, .type_ids = b->types, .attn_mask = b->mask,
                          .labels = b->labels};
    return FM_OK;
}

/* One warm-up step and the timed ones: the medians of each phase, the GEMM
 * flops of a step (counted on the first timed one), the peak memory. */
static void bench_steps(bench_job *b) {
    const int steps = b->o.steps, B = b->o.B;
    double *tf = fm_xcalloc((size_t)steps, sizeof(double)), *tb = fm_xcalloc((size_t)steps, sizeof(double));
    double *to = fm_xcalloc((size_t)steps, sizeof(double)), *ts = fm_xcalloc((size_t)steps, sizeof(double));
    double loss = 0;
    b->step_flops = 0;
    if (!b->o.json)
        fm_log("bench: %s, batch %d x %d tokens, mode %s, %d thread(s), BLIS kernels %s", b->o.preset, B, b->o.T,
               b->o.mode, b->o.threads, fm_blas_arch());
    for (int s = -1; s < steps; s++) {
        fm_pass pass = {.seed = 1, .step = (uint64_t)(s + 1), .training = 1, .cls_only_last = 1};
        if (s == 0) {
            fm_blas_reset_flops();
            fm_blas_record(1);
        }
        double t0 = fm_now();
        /* begin_step (zeroing, the supermask sample) counts as forward time. */
        fm_trainer_begin_step(&b->tr, s + 1);
        loss = fm_model_forward(&b->m, b->acts, &b->batch, &pass, NULL);
        double t1 = fm_now();
        fm_model_backward(&b->m, b->acts, &b->batch, &pass, 1.0f / (float)B);
        double t2 = fm_now();
        fm_trainer_apply(&b->tr, NULL);
        double t3 = fm_now();
        if (s == 0) {
            fm_blas_record(0);
            b->step_flops = fm_blas_flops();
        }
        if (s >= 0) {
            tf[s] = t1 - t0;
            tb[s] = t2 - t1;
            to[s] = t3 - t2;
            ts[s] = t3 - t0;
        }
        if (!b->o.json) fm_log("bench: step %d/%d: %.3f s (loss %.4f)", s + 1, steps, t3 - t0, loss / B);
    }
    b->mf = fm_bench_median(tf, steps), b->mb = fm_bench_median(tb, steps), b->mo = fm_bench_median(to, steps), b->ms = fm_bench_median(ts, steps);
    b->rss = fm_peak_rss(); /* of the training steps, before the GEMM replay's buffers */
    free(tf);
    free(tb);
    free(to);
    free(ts);
}

/* BLIS alone on the same shapes, same counts, same thread use: the median
 * of five replays of a step's GEMMs. */
static double bench_sgemm(int threads) {
    int nshapes;
    const fm_gemm_shape *shapes = fm_blas_shapes(&nshapes);
    size_t amax = 1, bmax = 1, cmax = 1;
    for (int i = 0; i < nshapes; i++) {
        size_t a = (size_t)shapes[i].m * shapes[i].k, b = (size_t)shapes[i].k * shapes[i].n,
               c = (size_t)shapes[i].m * shapes[i].n * (size_t)threads;
        if (a > amax) amax = a;
        if (b > bmax) bmax = b;
        if (c > cmax) cmax = c;
    }
    float *ga = fm_xalloc_floats(amax), *gb = fm_xalloc_floats(bmax), *gc = fm_xalloc_floats(cmax);
    fm_rng_uniforms(2, FM_RNG_DATA, 0, 0, 0, ga, amax);
    fm_rng_uniforms(2, FM_RNG_DATA, 0, 1, 0, gb, bmax);
    double tg[5];
    for (int r = 0; r < 5; r++) tg[r] = replay_gemms(shapes, nshapes, ga, gb, gc, threads);
    fm_free_aligned(ga);
    fm_free_aligned(gb);
    fm_free_aligned(gc);
    return fm_bench_median(tg, 5);
}

/* The figures on standard output: one JSON object, or the table. */
static void bench_print(const bench_job *b, double mg) {
    const bench_opts *o = &b->o;
    const double step_gflops = b->step_flops / b->ms / 1e9, gemm_gflops = b->step_flops / mg / 1e9;
    const double rss_mib = (double)b->rss / 1048576.0, acts_mib = (double)fm_acts_bytes(b->acts) / 1048576.0;
    const int L = b->cfg.num_hidden_layers;
    fm_bench_share w;
    fm_bench_share_of(&b->m, &b->tr, 0, 0, &w);
    w.acts = (double)fm_acts_bytes(b->acts);
    const double mib = 1048576.0, share = w.params + w.grads + w.moments + w.nu + w.acts;
    const double ev_f = (double)fm_acts_size(&b->cfg, o->eval_batch, o->T, 0, L, 1) / mib,
                 ev_t = (double)fm_acts_size(&b->cfg, o->eval_batch, o->T, 0, L, 0) / mib;
    if (o->json) {
        printf("{\"config\": \"%s\", \"batch\": %d, \"seq\": %d, \"mode\": \"%s\", \"threads\": %d, "
               "\"blis_arch\": \"%s\", \"blis_arch_id\": %d, \"steps\": %d, \"forward_s\": %.6f, \"backward_s\": %.6f, "
               "\"optimizer_s\": %.6f, \"step_s\": %.6f, \"gemm_gflop_per_step\": %.3f, \"step_gflops\": %.2f, "
               "\"sgemm_only_s\": %.6f, \"sgemm_gflops\": %.2f, \"fraction_of_sgemm\": %.4f, "
               "\"peak_rss_mib\": %.1f, \"acts_mib\": %.1f, \"layers\": %d, \"params_mib\": %.1f, \"grads_mib\": %.1f, "
               "\"moments_mib\": %.1f, \"nu_masks_mib\": %.1f, \"share_mib\": %.1f, \"eval_batch\": %d, "
               "\"eval_acts_forward_only_mib\": %.1f, \"eval_acts_training_kind_mib\": %.1f}\n",
               o->preset, o->B, o->T, o->mode, o->threads, fm_blas_arch(), fm_blas_arch_id(), o->steps, b->mf, b->mb,
               b->mo, b->ms, b->step_flops / 1e9, step_gflops, mg, gemm_gflops, step_gflops / gemm_gflops, rss_mib,
               acts_mib, L, w.params / mib, w.grads / mib, w.moments / mib, w.nu / mib, share / mib, o->eval_batch, ev_f,
               ev_t);
        return;
    }
    printf("finemask bench: BERT-%s, batch %d x %d tokens, mode %s, %d thread(s), BLIS kernels %s\n", o->preset, o->B,
           o->T, o->mode, o->threads, fm_blas_arch());
    printf("  median of %d steps\n", o->steps);
    printf("  forward     %9.3f s\n", b->mf);
    printf("  backward    %9.3f s\n", b->mb);
    printf("  optimiser   %9.3f s\n", b->mo);
    printf("  step        %9.3f s   %.1f GFLOP of GEMM, %.1f GFLOP/s\n", b->ms, b->step_flops / 1e9, step_gflops);
    printf("  sgemm only  %9.3f s   same shapes, %.1f GFLOP/s (BLIS alone)\n", mg, gemm_gflops);
    printf("  step rate / sgemm rate: %.1f%%\n", 100.0 * step_gflops / gemm_gflops);
    printf("  peak resident memory: %.1f MiB (activations %.1f MiB)\n", rss_mib, acts_mib);
    printf("  arithmetic: params %.1f + grads %.1f + AdamW moments %.1f + nu/masks %.1f + activations %.1f = %.1f MiB\n",
           w.params / mib, w.grads / mib, w.moments / mib, w.nu / mib, acts_mib, share / mib);
    printf("  an evaluation's activations at %d x %d: %.1f MiB forward-only, %.1f MiB as a training set\n",
           o->eval_batch, o->T, ev_f, ev_t);
}

static void bench_free(bench_job *b) {
    free(b->ids);
    free(b->types);
    free(b->labels);
    free(b->mask);
    fm_trainer_free(&b->tr);
    fm_acts_free(b->acts);
    fm_model_free(&b->m);
}

/* The model's configuration: a preset or a config.json, --layers, two labels. */
static int bench_config(const bench_opts *o, fm_config *c) {
    if (fm_config_preset(o->preset, c) != FM_OK) {
        if (!fm_file_exists(o->preset))
            return fm_fail("bench: --config: '%s' is neither a preset (tiny, mini, small, medium, base, large) nor a "
                           "file",
                           o->preset);
        if (fm_hfconfig_read(o->preset, c, NULL) != FM_OK) return FM_ERR;
    }
    if (o->layers > 0) c->num_hidden_layers = o->layers;
    c->num_labels = 2;
    if (o->T > c->max_position_embeddings)
        return fm_fail("bench: --seq %d exceeds max_position_embeddings %d", o->T, c->max_position_embeddings);
    if (o->stages > c->num_hidden_layers)
        return fm_fail("bench: --stages %d for %d encoder layers: expected at most one stage per layer", o->stages,
                       c->num_hidden_layers);
    return FM_OK;
}

int fm_cmd_bench(int argc, char **argv) {
    bench_job b = {0};
    int rc = bench_parse(argc, argv, &b.o);
    if (rc >= 0) return rc;
    if (bench_config(&b.o, &b.cfg) != FM_OK) return fm_cli_fail();
    if (b.o.threads > 0) {
        omp_set_num_threads(b.o.threads);
        fm_blas_set_threads(b.o.threads);
    }
    b.o.threads = fm_blas_threads();
    omp_set_num_threads(b.o.threads);
    fm_world w;
    if (fm_world_init(&w) != FM_OK) return fm_cli_fail();
    if (w.mpi) return fm_bench_layout(&b.o, &b.cfg);
    if (b.o.stages > 1 || b.o.tensor_parallel > 1) {
        fm_fail("bench: --stages and --tensor-parallel need the ranks of an MPI launcher (mpiexec -n RANKS)");
        return fm_cli_fail();
    }
    if (b.o.steps == 0) {
        fm_fail("bench: --steps 0 (the warm-up step alone, for memory) needs an MPI launcher (mpiexec -n RANKS)");
        return fm_cli_fail();
    }
    if (bench_setup(&b) != FM_OK) return fm_cli_fail();
    bench_steps(&b);
    double mg = bench_sgemm(b.o.threads);
    bench_print(&b, mg);
    bench_free(&b);
    return 0;
}
