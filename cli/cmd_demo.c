/* cmd_demo.c: `finemask demo` (and `finemask` with no arguments): the whole
 * pipeline at small scale with no download: synthetic data, masked-LM
 * pre-training of a tiny BERT, then supermask and full fine-tuning on the
 * eight GLUE tasks, and a table of the dev scores. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blas.h"
#include "cli.h"
#include "demodata.h"
#include "fileio.h"
#include "finetune.h"
#include "fm.h"
#include "pretrain.h"
#include "report.h"
#include "runfiles.h"
#include "synth.h"
#include "world.h"

/* Bump when the generator or the demo's recipe changes: stale caches are redone. */
#define FM_DEMO_VERSION 3

static void usage(FILE *f) {
    fprintf(f,
            "usage: [mpiexec -n N] finemask demo [--dir DIR] [--scale X] [--seed N] [--threads N]\n"
            "\n"
            "The whole method at small scale, with nothing to download. In DIR (default\n"
            "$FINEMASK_DEMO_DIR, else ./finemask-demo) it\n"
            "  1. generates, from a seeded generator (the same bytes every run), a synthetic\n"
            "     English-like corpus, its WordPiece vocabulary and the eight GLUE tasks in\n"
            "     GLUE's file layouts (DIR/data: corpus.txt, vocab.txt, glue/<TASK>/*.tsv);\n"
            "  2. pre-trains a tiny BERT (L=2, H=128) on the corpus with the masked-LM\n"
            "     objective, data-parallel over the MPI ranks (DIR/model);\n"
            "  3. writes the job file DIR/demo.ini (supermask and full fine-tuning on every\n"
            "     task) and runs it as `finemask run` does, the ranks sharing the 16 jobs\n"
            "     (DIR/runs/<job>/);\n"
            "  4. prints the report's main table; the full report is DIR/runs/report/.\n"
            "Data, model and finished jobs already in DIR (with matching stamps) are reused.\n"
            "\n"
            "  --dir DIR      cache and output directory\n"
            "  --scale X      data set and training sizes relative to the default (1; e.g. 0.1\n"
            "                 for a quick check)\n"
            "  --seed N       generator, pre-training and fine-tuning seed (0)\n"
            "  --threads N    threads per rank\n"
            "  --only PHASE   stop after phase data or pretrain\n");
}

/* The stamp file says what a cached directory was made from. */
static int stamp_matches(const char *dir, const char *want) {
    char *p = fm_path_join(dir, "demo-stamp.txt"), *have = NULL;
    size_t len;
    int ok = fm_file_exists(p) && fm_read_file(p, &have, &len) == FM_OK && !strcmp(have, want);
    fm_clear_error();
    free(have);
    free(p);
    return ok;
}

static int stamp_write(const char *dir, const char *s) {
    char *p = fm_path_join(dir, "demo-stamp.txt");
    int rc = fm_write_file_atomic(p, s, strlen(s));
    free(p);
    return rc;
}

/* demo's command line. */
typedef struct {
    const char *dir;
    double scale;
    long long seed, threads;
    int stop; /* the last phase to run: 1 data, 2 pre-training, 3 all */
} demo_opts;

/* The command line into o. Returns -1 to go on, else the exit status. */
static int demo_parse(int argc, char **argv, demo_opts *o) {
    static const struct option opts[] = {
        {"dir", required_argument, 0, 'd'},   {"scale", required_argument, 0, 'x'},
        {"seed", required_argument, 0, 's'},  {"threads", required_argument, 0, 't'},
        {"only", required_argument, 0, 'o'}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    *o = (demo_opts){.dir = getenv("FINEMASK_DEMO_DIR"), .scale = 1, .stop = 3};
    if (!o->dir || !*o->dir) o->dir = "finemask-demo";
    optind = 0;
    opterr = 0;
    for (int ch; (ch = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
        int rc = FM_OK;
        switch (ch) {
        case 'd': o->dir = optarg; break;
        case 'x': rc = fm_opt_double("--scale", optarg, 0.001, 100, &o->scale); break;
        case 's': rc = fm_opt_long("--seed", optarg, 0, 1LL << 62, &o->seed); break;
        case 't': rc = fm_opt_long("--threads", optarg, 1, 4096, &o->threads); break;
        case 'o':
            if (!strcmp(optarg, "data")) o->stop = 1;
            else if (!strcmp(optarg, "pretrain")) o->stop = 2;
            else rc = fm_fail("--only %s: expected data or pretrain", optarg);
            break;
        case 'h': usage(stdout); return 0;
        default:
            fm_fail("demo: unknown or incomplete option '%s' (see finemask demo --help)", argv[optind - 1]);
            return fm_cli_fail();
        }
        if (rc != FM_OK) return fm_cli_fail();
    }
    if (optind < argc) {
        fm_fail("demo: unexpected argument '%s'", argv[optind]);
        return fm_cli_fail();
    }
    return -1;
}

/* One demo: its options, the ranks, its paths, stamps and phase times. */
typedef struct {
    demo_opts o;
    fm_world w;
    char *data, *model, *runs, *corpus, *vocab, *glue;
    char dstamp[256], mstamp[512];
    double t0, t_data, t_pre, t_ft;
} demo_ctx;

/* Threads per rank: --threads, else with several ranks and no
 * BLIS_NUM_THREADS or OMP_NUM_THREADS, the cores shared by the node's ranks. */
static void demo_threads(demo_ctx *c) {
    long long *threads = &c->o.threads;
    if (*threads > 0) {
        omp_set_num_threads((int)*threads);
        fm_blas_set_threads((int)*threads);
    } else if (c->w.size > 1 && !getenv("BLIS_NUM_THREADS") && !getenv("OMP_NUM_THREADS")) {
        const char *ls = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
        int local = ls ? atoi(ls) : c->w.size;
        int n = omp_get_num_procs() / (local > 0 ? local : 1);
        *threads = n < 1 ? 1 : n;
        omp_set_num_threads((int)*threads);
        fm_blas_set_threads((int)*threads);
    }
}

/* 1. data: generated by rank 0 unless DIR/data's stamp matches. */
static int demo_data(demo_ctx *c) {
    snprintf(c->dstamp, sizeof c->dstamp, "finemask demo data v%d seed %lld scale %.6g\n", FM_DEMO_VERSION,
             c->o.seed, c->o.scale);
    c->t_data = fm_now();
    int reuse_data = stamp_matches(c->data, c->dstamp);
    int ok = 1;
    if (!reuse_data && c->w.rank == 0) {
        fm_log("demo: generating the data in %s", c->data);
        ok = fm_demo_write_data(c->data, (uint64_t)c->o.seed, c->o.scale) == FM_OK &&
             stamp_write(c->data, c->dstamp) == FM_OK;
    }
    if (!fm_world_all_ok(&c->w, ok)) return FM_ERR;
    c->t_data = fm_now() - c->t_data;
    fm_log("demo: data %s (%.1f s)", reuse_data ? "reused" : "generated", c->t_data);
    return FM_OK;
}

/* 2. pre-training, over the ranks, unless DIR/model's stamp matches. */
static int demo_pretrain(demo_ctx *c) {
    fm_pt_opts po;
    fm_pt_opts_default(&po);
    const char *cp[1] = {c->corpus};
    po.corpus = cp;
    po.ncorpus = 1;
    po.config = "tiny";
    po.vocab = c->vocab;
    po.out = c->model;
    po.seq = 32;
    po.batch = 64;
    po.steps = (int64_t)ceil(300 * c->o.scale);
    if (po.steps < 20) po.steps = 20;
    po.lr = 1e-3;
    po.warmup = 0.05;
    po.seed = (uint64_t)c->o.seed;
    po.log_every = 25;
    po.force = 1;
    po.threads = (int)c->o.threads;
    snprintf(c->mstamp, sizeof c->mstamp,
             "%sfinemask demo model v%d config %s seq %d batch %d steps %" PRId64 " lr %g\n", c->dstamp,
             FM_DEMO_VERSION, po.config, po.seq, po.batch, po.steps, po.lr);
    c->t_pre = fm_now();
    int reuse_model = stamp_matches(c->model, c->mstamp);
    fm_world_barrier(&c->w);
    if (!reuse_model) {
        fm_log("demo: pre-training a tiny BERT for %" PRId64 " steps on %d rank(s)", po.steps, c->w.size);
        fm_pt_result res;
        if (fm_pretrain(&po, &res) != FM_OK) return FM_ERR;
        int ok = c->w.rank != 0 || stamp_write(c->model, c->mstamp) == FM_OK;
        if (!fm_world_all_ok(&c->w, ok)) return FM_ERR;
    }
    c->t_pre = fm_now() - c->t_pre;
    fm_log("demo: pre-trained model %s (%.1f s)", reuse_model ? "reused" : "made", c->t_pre);
    return FM_OK;
}

/* The demo's job file ini, written by rank 0; the runs' stamp (the model's
 * and the job file's sweep and settings) into rstamp. */
static int demo_jobfile(const demo_ctx *c, const char *ini, fm_sbuf *rstamp) {
    fm_sbuf j = {0};
    fm_sbuf_addf(&j,
                 "; written by finemask demo: supermask and full fine-tuning of the tiny\n"
                 "; pre-trained BERT on the eight synthetic GLUE tasks. Paths are relative to\n"
                 "; this file. Run it again with: finemask run %s\n"
                 "[run]\nname = demo\nmodel = model\ndata = data/glue\nout = runs\n\n"
                 "[sweep]\ntasks = CoLA, SST-2, MRPC, STS-B, QQP, MNLI, QNLI, RTE\nmodes = supermask, full\n"
                 "seeds = %lld\n\n"
                 "[supermask]\nsparsities = 0\nsamples = 3\nmask_lr = 0.3\nlr = 1e-3\n\n"
                 "[full]\nlr = 1e-3\n\n"
                 "[train]\nbatch_size = 32\nepochs = 4\nmax_seq_length = 32\nlog_every = 20\n\n"
                 "[layout]\nteam_size = 1\n",
                 ini, c->o.seed);
    int ok = c->w.rank != 0 || fm_write_file_atomic(ini, j.s, j.n) == FM_OK;
    const char *sweep = strstr(j.s, "[sweep]");
    fm_sbuf_add(rstamp, c->mstamp);
    fm_sbuf_add(rstamp, sweep ? sweep : j.s);
    fm_sbuf_free(&j);
    return fm_world_all_ok(&c->w, ok) ? FM_OK : FM_ERR;
}

/* finished jobs in DIR/runs are kept by `finemask run`: only when they
 * were made from this very model with these settings (else they move to
 * runs-stale-TIME) */
static int demo_runs_dir(const demo_ctx *c, const char *rstamp) {
    int ok = 1;
    if (c->w.rank == 0) {
        if (fm_file_exists(c->runs) && !stamp_matches(c->runs, rstamp)) {
            char stale[64];
            snprintf(stale, sizeof stale, "runs-stale-%lld", (long long)time(NULL));
            char *to = fm_path_join(c->o.dir, stale);
            if (rename(c->runs, to) != 0)
                ok = fm_fail("%s: cannot move it aside to %s: %s", c->runs, to, strerror(errno));
            else
                fm_log("demo: %s was made from another model or settings; moved to %s", c->runs, to);
            free(to);
        }
        ok = ok && fm_mkdirs(c->runs) == FM_OK && stamp_write(c->runs, rstamp) == FM_OK;
    }
    return fm_world_all_ok(&c->w, ok) ? FM_OK : FM_ERR;
}

/* 3. fine-tuning: the demo's job file through `finemask run` (teams of one
 * rank claim the 16 jobs, longest first; jobs already complete are kept).
 * Returns -1 on a failure before the run, else run's exit status. */
static int demo_finetune(demo_ctx *c) {
    c->t_ft = fm_now();
    char *ini = fm_path_join(c->o.dir, "demo.ini");
    fm_sbuf rstamp = {0};
    if (demo_jobfile(c, ini, &rstamp) != FM_OK) {
        free(ini);
        fm_sbuf_free(&rstamp);
        return -1;
    }
    int rc = demo_runs_dir(c, rstamp.s);
    fm_sbuf_free(&rstamp);
    if (rc != FM_OK) {
        free(ini);
        return -1;
    }
    if (c->w.rank == 0) fm_log("demo: fine-tuning: finemask run %s (16 jobs on %d rank(s))", ini, c->w.size);
    char tbuf[32];
    snprintf(tbuf, sizeof tbuf, "%lld", c->o.threads);
    char *rargv[6] = {"run", ini};
    int rargc = 2;
    if (fm_verbosity < 2) rargv[rargc++] = "--quiet-jobs"; /* the jobs' own lines: with -v */
    if (c->o.threads > 0) rargv[rargc++] = "--threads", rargv[rargc++] = tbuf;
    rargv[rargc] = NULL;
    int rrc = fm_cmd_run(rargc, rargv); /* finalizes MPI */
    free(ini);
    if (rrc != 0) return rrc;
    c->t_ft = fm_now() - c->t_ft;
    return 0;
}

/* 4. the report's main table (rank 0). */
static void demo_table(const demo_ctx *c) {
    if (c->w.rank != 0) return;
    char *rep = fm_path_join(c->runs, "report"), *full = fm_path_join(rep, "report.md"), *table = NULL;
    if (fm_report_main_table(rep, &table) == FM_OK) {
        if (table) printf("\n%s\n", table);
    } else {
        fm_log("warning: %s", fm_last_error());
    }
    printf("full report: %s (runs in %s)\n", full, c->runs);
    free(table);
    free(rep);
    free(full);
    fm_log("demo: %.1f s in all: data %.1f s, pre-training %.1f s, fine-tuning %.1f s (%d rank(s))",
           fm_now() - c->t0, c->t_data, c->t_pre, c->t_ft, c->w.size);
}

/* The phases up to --only's. Returns 0 when they ran, 1 on a failure (to be
 * reported), or -1 - run's status when the run failed (reported already). */
static int demo_phases(demo_ctx *c) {
    if (demo_data(c) != FM_OK) return 1;
    if (c->o.stop == 1) return 0;
    if (demo_pretrain(c) != FM_OK) return 1;
    if (c->o.stop == 2) return 0;
    int rrc = demo_finetune(c);
    if (rrc < 0) return 1;
    if (rrc != 0) return -1 - rrc;
    demo_table(c);
    return 0;
}

int fm_cmd_demo(int argc, char **argv) {
    demo_ctx c = {0};
    int rc = demo_parse(argc, argv, &c.o);
    if (rc >= 0) return rc;
    if (fm_world_init(&c.w) != FM_OK) return fm_cli_fail();
    demo_threads(&c);
    if (c.w.rank != 0 && fm_verbosity == 1) fm_verbosity = 0;
    c.t0 = fm_now();
    const char *dir = c.o.dir;
    c.data = fm_path_join(dir, "data");
    c.model = fm_path_join(dir, "model");
    c.runs = fm_path_join(dir, "runs");
    c.corpus = fm_path_join(c.data, "corpus.txt");
    c.vocab = fm_path_join(c.data, "vocab.txt");
    c.glue = fm_path_join(c.data, "glue");
    int status = demo_phases(&c);
    if (status < 0) status = -1 - status; /* run's own status: no second message */
    else if (status) status = fm_cli_fail();
    free(c.data);
    free(c.model);
    free(c.runs);
    free(c.corpus);
    free(c.vocab);
    free(c.glue);
    return status;
}
