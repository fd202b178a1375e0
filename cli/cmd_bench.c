/* cmd_bench.c: `finemask bench`: time a fine-tuning step (forward, backward,
 * optimiser) on synthetic tokens, and BLIS's sgemm on the step's own GEMM
 * shapes in the same run, so the two rates can be compared. */
#include <getopt.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "cli.h"
#include "config.h"
#include "fm.h"
#include "model.h"
#include "optim.h"
#include "opts.h"
#include "rng.h"
#include "train.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void bench_usage(FILE *f) {
    fprintf(f,
            "usage: finemask bench [--config PRESET] [--batch B] [--seq T] [--mode full|freeze|supermask] [--steps N]\n"
            "                      [--threads N] [--json]\n"
            "\n"
            "Times training steps of a BERT model on synthetic tokens and prints, per phase,\n"
            "the median time, the achieved GEMM GFLOP/s of the step, and BLIS's sgemm GFLOP/s\n"
            "on the same GEMM shapes measured in the same run, plus the peak resident memory.\n"
            "\n"
            "  --config PRESET  tiny, mini, small, medium, base (default) or large\n"
            "  --batch B        sequences per step (default 8)\n"
            "  --seq T          tokens per sequence (default 128)\n"
            "  --mode MODE      full (default): every parameter trains;\n"
            "                   freeze: embeddings frozen (no gradient computed for them);\n"
            "                   supermask: scores nu over every default-masked matrix (50%% initial\n"
            "                   sparsity), a Bernoulli sample each step, head trained\n"
            "  --steps N        timed steps after one warm-up step (default 5)\n"
            "  --threads N      threads for BLIS and the element-wise loops (default: BLIS_NUM_THREADS,\n"
            "                   else OMP_NUM_THREADS, else all cores)\n"
            "  --json           print one JSON object instead of the table\n");
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

int fm_cmd_bench(int argc, char **argv) {
    const char *preset = "base", *mode = "full";
    int B = 8, T = 128, steps = 5, threads = 0, json = 0;
    static const struct option opts[] = {
        {"config", required_argument, 0, 'c'}, {"batch", required_argument, 0, 'b'},
        {"seq", required_argument, 0, 's'},    {"mode", required_argument, 0, 'm'},
        {"steps", required_argument, 0, 'n'},  {"threads", required_argument, 0, 't'},
        {"json", no_argument, 0, 'j'},         {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    optind = 1;
    int o;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'c': preset = optarg; break;
        case 'b': B = atoi(optarg); break;
        case 's': T = atoi(optarg); break;
        case 'm': mode = optarg; break;
        case 'n': steps = atoi(optarg); break;
        case 't': threads = atoi(optarg); break;
        case 'j': json = 1; break;
        case 'h': bench_usage(stdout); return 0;
        default: bench_usage(stderr); return 1;
        }
    }
    if (optind < argc) {
        fm_fail("bench: unexpected argument '%s'", argv[optind]);
        return fm_cli_fail();
    }
    if (B <= 0 || T <= 1 || steps <= 0) {
        fm_fail("bench: --batch and --steps must be positive and --seq at least 2");
        return fm_cli_fail();
    }
    const int mode_v = fm_opt_enum_value(fm_train_mode_names, 3, mode);
    if (mode_v < 0) {
        fm_fail("bench: --mode must be full, freeze or supermask, found '%s'", mode);
        return fm_cli_fail();
    }
    fm_config cfg;
    if (fm_config_preset(preset, &cfg) != FM_OK) return fm_cli_fail();
    cfg.num_labels = 2;
    if (T > cfg.max_position_embeddings) {
        fm_fail("bench: --seq %d exceeds max_position_embeddings %d", T, cfg.max_position_embeddings);
        return fm_cli_fail();
    }
    if (threads > 0) {
        omp_set_num_threads(threads);
        fm_blas_set_threads(threads);
    }
    threads = fm_blas_threads();
    omp_set_num_threads(threads);

    fm_model m;
    fm_model_alloc(&m, &cfg);
    fm_model_init_weights(&m, 1);
    if (mode_v == FM_TRAIN_FREEZE)
        for (int i = 0; i < m.lay.n; i++)
            if (m.lay.t[i].layer < 0) m.lay.t[i].trains = m.lay.t[i].needs_grad = 0;
    fm_trainer_opts tro;
    fm_trainer_opts_default(&tro);
    tro.mode = (fm_train_mode)mode_v;
    tro.seed = 1;
    tro.init_sparsity = 0.5;
    tro.opt.total_steps = steps + 1;
    tro.mask_opt.total_steps = steps + 1;
    fm_trainer tr;
    if (fm_trainer_init(&tr, &m, &tro) != FM_OK) {
        fm_model_free(&m);
        return fm_cli_fail();
    }
    fm_acts *acts = fm_acts_new(&cfg, B, T, 0, cfg.num_hidden_layers);

    /* Synthetic batch: random word pieces, two segments, no padding. */
    int32_t *ids = fm_xmalloc(sizeof(int32_t) * (size_t)B * T), *types = fm_xmalloc(sizeof(int32_t) * (size_t)B * T);
    int32_t *labels = fm_xmalloc(sizeof(int32_t) * (size_t)B);
    float *mask = fm_xmalloc(sizeof(float) * (size_t)B * T);
    for (int i = 0; i < B * T; i++) {
        ids[i] = (int32_t)fm_rng_below(1, FM_RNG_DATA, 0, 0, (uint64_t)i, (uint32_t)cfg.vocab_size);
        types[i] = (i % T) >= T / 2;
        mask[i] = 1.0f;
    }
    for (int b = 0; b < B; b++) labels[b] = b % 2;
    fm_batch batch = {.B = B, .T = T, .ids = ids, .type_ids = types, .attn_mask = mask, .labels = labels};

    double *tf = fm_xcalloc((size_t)steps, sizeof(double)), *tb = fm_xcalloc((size_t)steps, sizeof(double));
    double *to = fm_xcalloc((size_t)steps, sizeof(double)), *ts = fm_xcalloc((size_t)steps, sizeof(double));
    double step_flops = 0, loss = 0;
    if (!json)
        fm_log("bench: %s, batch %d x %d tokens, mode %s, %d thread(s), BLIS kernels %s", preset, B, T, mode, threads,
               fm_blas_arch());
    for (int s = -1; s < steps; s++) {
        fm_pass pass = {.seed = 1, .step = (uint64_t)(s + 1), .training = 1, .cls_only_last = 1};
        if (s == 0) {
            fm_blas_reset_flops();
            fm_blas_record(1);
        }
        double t0 = fm_now();
        /* begin_step (zeroing, the supermask sample) counts as forward time. */
        fm_trainer_begin_step(&tr, s + 1);
        loss = fm_model_forward(&m, acts, &batch, &pass, NULL);
        double t1 = fm_now();
        fm_model_backward(&m, acts, &batch, &pass, 1.0f / (float)B);
        double t2 = fm_now();
        fm_trainer_apply(&tr, NULL);
        double t3 = fm_now();
        if (s == 0) {
            fm_blas_record(0);
            step_flops = fm_blas_flops();
        }
        if (s >= 0) {
            tf[s] = t1 - t0;
            tb[s] = t2 - t1;
            to[s] = t3 - t2;
            ts[s] = t3 - t0;
        }
        if (!json) fm_log("bench: step %d/%d: %.3f s (loss %.4f)", s + 1, steps, t3 - t0, loss / B);
    }
    double mf = median(tf, steps), mb = median(tb, steps), mo = median(to, steps), ms = median(ts, steps);
    size_t rss = fm_peak_rss(); /* of the training steps, before the GEMM replay's buffers */

    /* BLIS alone on the same shapes, same counts, same thread use. */
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
    double mg = median(tg, 5);
    double step_gflops = step_flops / ms / 1e9, gemm_gflops = step_flops / mg / 1e9;

    if (json) {
        printf("{\"config\": \"%s\", \"batch\": %d, \"seq\": %d, \"mode\": \"%s\", \"threads\": %d, "
               "\"blis_arch\": \"%s\", \"blis_arch_id\": %d, \"steps\": %d, \"forward_s\": %.6f, \"backward_s\": %.6f, "
               "\"optimizer_s\": %.6f, \"step_s\": %.6f, \"gemm_gflop_per_step\": %.3f, \"step_gflops\": %.2f, "
               "\"sgemm_only_s\": %.6f, \"sgemm_gflops\": %.2f, \"fraction_of_sgemm\": %.4f, "
               "\"peak_rss_mib\": %.1f, \"acts_mib\": %.1f}\n",
               preset, B, T, mode, threads, fm_blas_arch(), fm_blas_arch_id(), steps, mf, mb, mo, ms, step_flops / 1e9, step_gflops, mg,
               gemm_gflops, step_gflops / gemm_gflops, (double)rss / 1048576.0,
               (double)fm_acts_bytes(acts) / 1048576.0);
    } else {
        printf("finemask bench: BERT-%s, batch %d x %d tokens, mode %s, %d thread(s), BLIS kernels %s\n", preset, B,
               T, mode, threads, fm_blas_arch());
        printf("  median of %d steps\n", steps);
        printf("  forward     %9.3f s\n", mf);
        printf("  backward    %9.3f s\n", mb);
        printf("  optimiser   %9.3f s\n", mo);
        printf("  step        %9.3f s   %.1f GFLOP of GEMM, %.1f GFLOP/s\n", ms, step_flops / 1e9, step_gflops);
        printf("  sgemm only  %9.3f s   same shapes, %.1f GFLOP/s (BLIS alone)\n", mg, gemm_gflops);
        printf("  step rate / sgemm rate: %.1f%%\n", 100.0 * step_gflops / gemm_gflops);
        printf("  peak resident memory: %.1f MiB (activations %.1f MiB)\n", (double)rss / 1048576.0,
               (double)fm_acts_bytes(acts) / 1048576.0);
    }
    fm_free_aligned(ga);
    fm_free_aligned(gb);
    fm_free_aligned(gc);
    free(tf);
    free(tb);
    free(to);
    free(ts);
    free(ids);
    free(types);
    free(labels);
    free(mask);
    fm_trainer_free(&tr);
    fm_acts_free(acts);
    fm_model_free(&m);
    return 0;
}
