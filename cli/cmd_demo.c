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

int fm_cmd_demo(int argc, char **argv) {
    static const struct option opts[] = {
        {"dir", required_argument, 0, 'd'},   {"scale", required_argument, 0, 'x'},
        {"seed", required_argument, 0, 's'},  {"threads", required_argument, 0, 't'},
        {"only", required_argument, 0, 'o'}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *dir = getenv("FINEMASK_DEMO_DIR");
    if (!dir || !*dir) dir = "finemask-demo";
    double scale = 1;
    long long seed = 0, threads = 0;
    int stop = 3; /* the last phase to run: 1 data, 2 pre-training, 3 all */
    optind = 0;
    opterr = 0;
    for (int ch; (ch = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
        int rc = FM_OK;
        switch (ch) {
        case 'd': dir = optarg; break;
        case 'x': rc = fm_opt_double("--scale", optarg, 0.001, 100, &scale); break;
        case 's': rc = fm_opt_long("--seed", optarg, 0, 1LL << 62, &seed); break;
        case 't': rc = fm_opt_long("--threads", optarg, 1, 4096, &threads); break;
        case 'o':
            if (!strcmp(optarg, "data")) stop = 1;
            else if (!strcmp(optarg, "pretrain")) stop = 2;
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
    fm_world w;
    if (fm_world_init(&w) != FM_OK) return fm_cli_fail();
    if (threads > 0) {
        omp_set_num_threads((int)threads);
        fm_blas_set_threads((int)threads);
    } else if (w.size > 1 && !getenv("BLIS_NUM_THREADS") && !getenv("OMP_NUM_THREADS")) {
        const char *ls = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
        int local = ls ? atoi(ls) : w.size;
        int n = omp_get_num_procs() / (local > 0 ? local : 1);
        threads = n < 1 ? 1 : n;
        omp_set_num_threads((int)threads);
        fm_blas_set_threads((int)threads);
    }
    if (w.rank != 0 && fm_verbosity == 1) fm_verbosity = 0;
    const double t0 = fm_now();
    char *data = fm_path_join(dir, "data"), *model = fm_path_join(dir, "model"), *runs = fm_path_join(dir, "runs");
    char *corpus = fm_path_join(data, "corpus.txt"), *vocab = fm_path_join(data, "vocab.txt"),
         *glue = fm_path_join(data, "glue");
    int status = 1;

    /* 1. data */
    char dstamp[256];
    snprintf(dstamp, sizeof dstamp, "finemask demo data v%d seed %lld scale %.6g\n", FM_DEMO_VERSION, seed, scale);
    double t_data = fm_now();
    int reuse_data = stamp_matches(data, dstamp);
    int ok = 1;
    if (!reuse_data && w.rank == 0) {
        fm_log("demo: generating the data in %s", data);
        ok = fm_demo_write_data(data, (uint64_t)seed, scale) == FM_OK && stamp_write(data, dstamp) == FM_OK;
    }
    if (!fm_world_all_ok(&w, ok)) goto done;
    t_data = fm_now() - t_data;
    fm_log("demo: data %s (%.1f s)", reuse_data ? "reused" : "generated", t_data);
    if (stop == 1) {
        status = 0;
        goto done;
    }

    /* 2. pre-training */
    fm_pt_opts po;
    fm_pt_opts_default(&po);
    const char *cp[1] = {corpus};
    po.corpus = cp;
    po.ncorpus = 1;
    po.config = "tiny";
    po.vocab = vocab;
    po.out = model;
    po.seq = 32;
    po.batch = 64;
    po.steps = (int64_t)ceil(300 * scale);
    if (po.steps < 20) po.steps = 20;
    po.lr = 1e-3;
    po.warmup = 0.05;
    po.seed = (uint64_t)seed;
    po.log_every = 25;
    po.force = 1;
    po.threads = (int)threads;
    char mstamp[512];
    snprintf(mstamp, sizeof mstamp, "%sfinemask demo model v%d config %s seq %d batch %d steps %" PRId64 " lr %g\n",
             dstamp, FM_DEMO_VERSION, po.config, po.seq, po.batch, po.steps, po.lr);
    double t_pre = fm_now();
    int reuse_model = stamp_matches(model, mstamp);
    fm_world_barrier(&w);
    if (!reuse_model) {
        fm_log("demo: pre-training a tiny BERT for %" PRId64 " steps on %d rank(s)", po.steps, w.size);
        fm_pt_result res;
        if (fm_pretrain(&po, &res) != FM_OK) goto done;
        ok = w.rank != 0 || stamp_write(model, mstamp) == FM_OK;
        if (!fm_world_all_ok(&w, ok)) goto done;
    }
    t_pre = fm_now() - t_pre;
    fm_log("demo: pre-trained model %s (%.1f s)", reuse_model ? "reused" : "made", t_pre);
    if (stop == 2) {
        status = 0;
        goto done;
    }

    /* 3. fine-tuning: the demo's job file through `finemask run` (teams of one
     * rank claim the 16 jobs, longest first; jobs already complete are kept) */
    double t_ft = fm_now();
    char *ini = fm_path_join(dir, "demo.ini");
    fm_sbuf rstamp = {0};
    {
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
                     ini, seed);
        ok = w.rank != 0 || fm_write_file_atomic(ini, j.s, j.n) == FM_OK;
        /* the runs' stamp: the model's and the job file's sweep and settings */
        const char *sweep = strstr(j.s, "[sweep]");
        fm_sbuf_add(&rstamp, mstamp);
        fm_sbuf_add(&rstamp, sweep ? sweep : j.s);
        fm_sbuf_free(&j);
        if (!fm_world_all_ok(&w, ok)) {
            free(ini);
            fm_sbuf_free(&rstamp);
            goto done;
        }
    }
    /* finished jobs in DIR/runs are kept by `finemask run`: only when they
     * were made from this very model with these settings (else they move to
     * runs-stale-TIME) */
    ok = 1;
    if (w.rank == 0) {
        if (fm_file_exists(runs) && !stamp_matches(runs, rstamp.s)) {
            char stale[64];
            snprintf(stale, sizeof stale, "runs-stale-%lld", (long long)time(NULL));
            char *to = fm_path_join(dir, stale);
            if (rename(runs, to) != 0) ok = fm_fail("%s: cannot move it aside to %s: %s", runs, to, strerror(errno));
            else fm_log("demo: %s was made from another model or settings; moved to %s", runs, to);
            free(to);
        }
        ok = ok && fm_mkdirs(runs) == FM_OK && stamp_write(runs, rstamp.s) == FM_OK;
    }
    fm_sbuf_free(&rstamp);
    if (!fm_world_all_ok(&w, ok)) {
        free(ini);
        goto done;
    }
    if (w.rank == 0) fm_log("demo: fine-tuning: finemask run %s (16 jobs on %d rank(s))", ini, w.size);
    {
        char tbuf[32];
        snprintf(tbuf, sizeof tbuf, "%lld", threads);
        char *rargv[6] = {"run", ini};
        int rargc = 2;
        if (fm_verbosity < 2) rargv[rargc++] = "--quiet-jobs"; /* the jobs' own lines: with -v */
        if (threads > 0) rargv[rargc++] = "--threads", rargv[rargc++] = tbuf;
        rargv[rargc] = NULL;
        int rrc = fm_cmd_run(rargc, rargv); /* finalizes MPI */
        free(ini);
        if (rrc != 0) return rrc;
    }
    t_ft = fm_now() - t_ft;

    /* 4. the report's main table */
    if (w.rank == 0) {
        char *rep = fm_path_join(runs, "report"), *full = fm_path_join(rep, "report.md"), *table = NULL;
        if (fm_report_main_table(rep, &table) == FM_OK) {
            if (table) printf("\n%s\n", table);
        } else {
            fm_log("warning: %s", fm_last_error());
        }
        printf("full report: %s (runs in %s)\n", full, runs);
        free(table);
        free(rep);
        free(full);
        fm_log("demo: %.1f s in all: data %.1f s, pre-training %.1f s, fine-tuning %.1f s (%d rank(s))",
               fm_now() - t0, t_data, t_pre, t_ft, w.size);
    }
    status = 0;
done:
    if (status) status = fm_cli_fail();
    free(data);
    free(model);
    free(runs);
    free(corpus);
    free(vocab);
    free(glue);
    return status;
}
