/* cmd_demo.c: `finemask demo` (and `finemask` with no arguments): the whole
 * pipeline at small scale with no download: synthetic data, masked-LM
 * pre-training of a tiny BERT, then supermask and full fine-tuning on the
 * eight GLUE tasks, and a table of the dev scores. */
#define _GNU_SOURCE
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "cli.h"
#include "demodata.h"
#include "fileio.h"
#include "finetune.h"
#include "fm.h"
#include "pretrain.h"
#include "runfiles.h"
#include "synth.h"
#include "world.h"

/* Bump when the generator or the demo's recipe changes: stale caches are redone. */
#define FM_DEMO_VERSION 1

static void usage(FILE *f) {
    fprintf(f,
            "usage: finemask demo [--dir DIR] [--scale X] [--seed N] [--threads N]\n"
            "\n"
            "The whole method at small scale, with nothing to download. In DIR (default\n"
            "$FINEMASK_DEMO_DIR, else ./finemask-demo) it\n"
            "  1. generates, from a seeded generator (the same bytes every run), a synthetic\n"
            "     English-like corpus, its WordPiece vocabulary and the eight GLUE tasks in\n"
            "     GLUE's file layouts (DIR/data: corpus.txt, vocab.txt, glue/<TASK>/*.tsv);\n"
            "  2. pre-trains a tiny BERT (L=2, H=128) on the corpus with the masked-LM\n"
            "     objective (DIR/model);\n"
            "  3. fine-tunes it on every task twice, supermask and full fine-tuning\n"
            "     (DIR/runs/<TASK>-<mode>), spreading the jobs over the MPI ranks;\n"
            "  4. prints the dev scores and writes DIR/report.md and DIR/report.json.\n"
            "Data and model already in DIR (with a matching stamp) are reused.\n"
            "\n"
            "  --dir DIR      cache and output directory\n"
            "  --scale X      data set and training sizes relative to the default (1; e.g. 0.1\n"
            "                 for a quick check)\n"
            "  --seed N       generator, pre-training and fine-tuning seed (0)\n"
            "  --threads N    threads per rank\n"
            "  --only PHASE   stop after phase data or pretrain\n");
}

typedef struct {
    int task; /* index into fm_synth_task_names */
    int supermask;
    double work; /* expected cost, for longest-first order */
} demo_job;

static int cmp_job(const void *a, const void *b) {
    const demo_job *x = a, *y = b;
    if (x->work != y->work) return x->work < y->work ? 1 : -1;
    if (x->task != y->task) return x->task - y->task;
    return x->supermask - y->supermask;
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

static double dget(json_t *o, const char *k) {
    json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : NAN;
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
    const int verbosity = fm_verbosity;
    if (w.rank != 0 && fm_verbosity == 1) fm_verbosity = 0;
    const double t0 = fm_now();
    char *data = fm_path_join(dir, "data"), *model = fm_path_join(dir, "model"), *runs = fm_path_join(dir, "runs");
    char *corpus = fm_path_join(data, "corpus.txt"), *vocab = fm_path_join(data, "vocab.txt"),
         *glue = fm_path_join(data, "glue");
    int status = 1;
    json_t *report = NULL;
    fm_sbuf md = {0};

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
    po.seq = 64;
    po.batch = 32;
    po.steps = (int64_t)ceil(600 * scale);
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

    /* 3. fine-tuning: 16 jobs, longest first, dealt round-robin to the ranks */
    demo_job jobs[2 * FM_SYNTH_NTASKS];
    int nj = 0;
    for (int t = 0; t < FM_SYNTH_NTASKS; t++)
        for (int sm = 1; sm >= 0; sm--) {
            int ntr, ndev, nte;
            fm_demo_sizes(t, scale, &ntr, &ndev, &nte);
            const fm_glue_task *gt = fm_glue_task_find(fm_synth_task_names[t]);
            jobs[nj++] = (demo_job){t, sm, (double)ntr * (gt->is_pair ? 2 : 1) * (sm ? 1.5 : 1)};
        }
    qsort(jobs, (size_t)nj, sizeof jobs[0], cmp_job);
    double t_ft = fm_now();
    if (w.rank == 0) fm_log("demo: fine-tuning %d jobs (supermask and full on 8 tasks) on %d rank(s)", nj, w.size);
    ok = 1;
    for (int j = w.rank; j < nj && ok; j += w.size) {
        const char *task = fm_synth_task_names[jobs[j].task];
        char name[64];
        snprintf(name, sizeof name, "%s-%s", task, jobs[j].supermask ? "supermask" : "full");
        char *out = fm_path_join(runs, name);
        fm_ft_opts o;
        fm_ft_opts_default(&o);
        o.model_dir = model;
        o.task = task;
        o.data_dir = glue;
        o.out_dir = out;
        o.mode = jobs[j].supermask ? "supermask" : "full";
        o.max_seq_length = 64;
        o.batch_size = 32;
        o.epochs = 3;
        o.seed = (uint64_t)seed;
        o.lr = jobs[j].supermask ? 1e-3 : 3e-4; /* supermask: the task head's rate */
        o.mask_lr = 0.3;
        o.samples = 3;
        o.log_every = 20;
        o.threads = (int)threads;
        double tj = fm_now();
        int v = fm_verbosity;
        fm_verbosity = verbosity >= 2 ? 2 : 0;
        ok = fm_finetune(&o) == FM_OK;
        fm_verbosity = v;
        if (ok) fm_log("demo: %s done (%.1f s, rank %d)", name, fm_now() - tj, w.rank);
        else fm_fail_prefix("demo: %s: ", name);
        free(out);
    }
    if (!fm_world_all_ok(&w, ok)) {
        if (ok) fm_fail("demo: a fine-tuning job failed on another rank");
        goto done;
    }
    t_ft = fm_now() - t_ft;

    /* 4. the table */
    if (w.rank == 0) {
        report = json_object();
        json_t *rows = json_array();
        fm_sbuf_add(&md, "# finemask demo\n\n");
        fm_sbuf_addf(&md,
                     "Synthetic GLUE (seed %lld, scale %g), tiny BERT (L=2, H=128) pre-trained with masked LM for "
                     "%" PRId64 " steps.\nDev scores; supermask: the deterministic mask sigma(nu) > 0.5.\n\n",
                     seed, scale, po.steps);
        fm_sbuf_add(&md, "| task | metric | full fine-tuning | supermask | supermask sparsity |\n"
                         "|---|---|---|---|---|\n");
        printf("\n%-6s %-9s %8s %10s %9s\n", "task", "metric", "full", "supermask", "sparsity");
        double sum_full = 0, sum_sm = 0;
        for (int t = 0; t < FM_SYNTH_NTASKS; t++) {
            json_t *m[2] = {NULL, NULL};
            for (int sm = 0; sm < 2; sm++) {
                char name[64];
                snprintf(name, sizeof name, "%s/%s-%s/metrics.json", runs, fm_synth_task_names[t],
                         sm ? "supermask" : "full");
                if (fm_json_read(name, &m[sm]) != FM_OK) goto done;
            }
            const char *metric = json_string_value(json_object_get(m[0], "score_name"));
            double full = dget(m[0], "score"), sup = dget(m[1], "score"), sp = dget(m[1], "sparsity_deterministic");
            sum_full += full;
            sum_sm += sup;
            printf("%-6s %-9s %8.3f %10.3f %8.1f%%\n", fm_synth_task_names[t], metric ? metric : "?", full, sup,
                   100 * sp);
            fm_sbuf_addf(&md, "| %s | %s | %.3f | %.3f | %.1f%% |\n", fm_synth_task_names[t], metric ? metric : "?",
                         full, sup, 100 * sp);
            json_t *r = json_object();
            json_object_set_new(r, "task", json_string(fm_synth_task_names[t]));
            json_object_set_new(r, "metric", json_string(metric ? metric : ""));
            json_object_set_new(r, "full", json_real(full));
            json_object_set_new(r, "supermask", json_real(sup));
            json_object_set_new(r, "supermask_sparsity", json_real(sp));
            json_array_append_new(rows, r);
            json_decref(m[0]);
            json_decref(m[1]);
        }
        printf("%-6s %-9s %8.3f %10.3f\n", "mean", "", sum_full / FM_SYNTH_NTASKS, sum_sm / FM_SYNTH_NTASKS);
        fm_sbuf_addf(&md, "| mean | | %.3f | %.3f | |\n", sum_full / FM_SYNTH_NTASKS, sum_sm / FM_SYNTH_NTASKS);
        json_object_set_new(report, "tasks", rows);
        json_object_set_new(report, "seed", json_integer(seed));
        json_object_set_new(report, "scale", json_real(scale));
        json_object_set_new(report, "pretrain_steps", json_integer(po.steps));
        char *p = fm_path_join(dir, "report.json");
        int wr = fm_json_write(p, report);
        free(p);
        p = fm_path_join(dir, "report.md");
        if (wr == FM_OK) wr = fm_write_file_atomic(p, md.s, md.n);
        if (wr != FM_OK) {
            free(p);
            goto done;
        }
        printf("\nfull report: %s; runs in %s\n", p, runs);
        free(p);
        fm_log("demo: %.1f s in all: data %.1f s, pre-training %.1f s, fine-tuning %.1f s (%d rank(s))",
               fm_now() - t0, t_data, t_pre, t_ft, w.size);
    }
    status = 0;
done:
    if (status) status = fm_cli_fail();
    json_decref(report);
    fm_sbuf_free(&md);
    free(data);
    free(model);
    free(runs);
    free(corpus);
    free(vocab);
    free(glue);
    return status;
}
