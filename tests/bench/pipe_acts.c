/* pipe_acts.c: the activation memory of each pipeline stage under GPipe and
 * 1F1B, from the pipeline strategy itself (src/strat_pipeline.c) without
 * MPI: for every stage s of S an engine is set up as that stage (a
 * communication table that only names the stage: the constructor sends
 * nothing), and fm_engine_acts_bytes gives the sets it allocated and their
 * bytes (fm_acts_bytes). BERT-base's shapes (its vocabulary cut to 2 words:
 * the activations do not depend on it, and the parameters then take 0.7 GB
 * less), a task head, fine-tuning in full mode, batch 32 x 128, one replica;
 * S = 2 and 4, M = 4 and 8.
 * Prints per stage both schedules' sets and MiB and 1F1B's bytes over
 * GPipe's beside the target S/M; exit status 1 when a stage misses it or
 * 1F1B holds more than S sets.
 * Usage: bench_pipe_acts [--config PRESET] [--batch B] [--seq T]. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "engine.h"
#include "fm.h"
#include "model.h"

static int stub(void *ctx) {
    (void)ctx;
    return FM_OK;
}
static int stub_sum(void *ctx, float *x, size_t n) { return (void)x, (void)n, stub(ctx); }
static int stub_p2p(void *ctx, int dir, float *buf, size_t n, int send) {
    return (void)dir, (void)buf, (void)n, (void)send, stub(ctx);
}
static int stub_xchg(void *ctx, int dir, const float *sb, size_t ns, float *rb, size_t nr) {
    return (void)dir, (void)sb, (void)ns, (void)rb, (void)nr, stub(ctx);
}
static int stub_dsum(void *ctx, double *x, size_t n) { return (void)x, (void)n, stub(ctx); }
static int stub_bcast(void *ctx, float *x, size_t n, int root) { return (void)x, (void)n, (void)root, stub(ctx); }

/* Stage s of S's activation sets and bytes under schedule sch. */
static int stage_acts(fm_model *m, int B, int T, int S, int s, int M, fm_pipe_schedule sch, int *sets, size_t *bytes) {
    fm_comm cm = {.nreplicas = 1, .nstages = S, .stage = s, .sum_start = stub_sum, .sum_wait = stub,
                  .p2p = stub_p2p, .p2p_exchange = stub_xchg, .team_sum = stub_sum, .stages_sum = stub_dsum,
                  .bcast = stub_bcast};
    fm_engine_cfg c = {.batch = B, .seq = T, .micro_batches = M, .schedule = sch, .scale = FM_SCALE_ROWS,
                       .comm = &cm};
    fm_trainer_opts_default(&c.train);
    c.train.mode = FM_TRAIN_FULL;
    fm_engine e;
    if (fm_engine_init(&e, m, &c) != FM_OK) return FM_ERR;
    *bytes = fm_engine_acts_bytes(&e, sets, NULL);
    fm_engine_free(&e);
    return FM_OK;
}

int main(int argc, char **argv) {
    const char *preset = "base";
    int B = 32, T = 128;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--config")) preset = argv[i + 1];
        else if (!strcmp(argv[i], "--batch")) B = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seq")) T = atoi(argv[i + 1]);
    }
    fm_config cfg;
    if (fm_config_preset(preset, &cfg) != FM_OK) {
        fm_print_error(fm_last_error());
        return 2;
    }
    cfg.vocab_size = 2;
    cfg.num_labels = 2;
    if (fm_config_check(&cfg) != FM_OK) {
        fm_print_error(fm_last_error());
        return 2;
    }
    fm_model m;
    fm_model_alloc(&m, &cfg);
    int bad = 0;
    printf("%s (L%d/H%d), batch %d x %d, one replica: activation sets and MiB per stage\n", preset,
           cfg.num_hidden_layers, cfg.hidden_size, B, T);
    printf("%2s %2s %5s %10s %10s %9s %9s %6s %5s\n", "S", "M", "stage", "GPipe sets", "GPipe MiB", "1F1B sets",
           "1F1B MiB", "ratio", "S/M");
    static const int Ss[] = {2, 4}, Ms[] = {4, 8};
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++) {
            const int S = Ss[a], M = Ms[b];
            for (int s = 0; s < S; s++) {
                int gs, fs;
                size_t gb, fb;
                if (stage_acts(&m, B, T, S, s, M, FM_PIPE_GPIPE, &gs, &gb) != FM_OK ||
                    stage_acts(&m, B, T, S, s, M, FM_PIPE_1F1B, &fs, &fb) != FM_OK) {
                    fm_print_error(fm_last_error());
                    return 2;
                }
                const double r = (double)fb / (double)gb;
                const int ok = r <= (double)S / M + 1e-12 && fs <= S && gs == M;
                bad |= !ok;
                printf("%2d %2d %5d %10d %10.1f %9d %9.1f %6.3f %5.3f%s\n", S, M, s, gs, (double)gb / 1048576.0, fs,
                       (double)fb / 1048576.0, r, (double)S / M, ok ? "" : "  FAIL");
                fflush(stdout);
            }
        }
    fm_model_free(&m);
    return bad;
}
