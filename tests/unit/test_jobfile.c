/* test_jobfile.c: job files: parsing every section, relative paths, the
 * expansion into named jobs and its order, the work estimate and the
 * longest-first order, and every error (file and line named). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "fm.h"
#include "jobfile.h"
#include "testutil.h"

static char *dir;

static int setup(void **state) {
    (void)state;
    dir = tu_mkdtemp();
    return 0;
}
static int teardown(void **state) {
    (void)state;
    tu_rmtree(dir);
    free(dir);
    return 0;
}

/* Write text to DIR/name and return the path (free it). */
static char *put(const char *name, const char *text) {
    char *p = fm_path_join(dir, name);
    assert_int_equal(tu_write_file(p, text, strlen(text)), 0);
    return p;
}

static const char *full_text =
    "; a whole sweep\n"
    "[run]\n"
    "model = models/tiny\n"
    "data = /abs/glue\n"
    "out = runs/x\n"
    "name = mysweep\n"
    "[sweep]\n"
    "tasks = MRPC, RTE\n"
    "modes = full, freeze, supermask\n"
    "seeds = 1, 2\n"
    "weights = pretrained, shuffled\n"
    "[freeze]\n"
    "sets = key | deepest:2,word_embeddings\n"
    "lr = 3e-5\n"
    "[supermask]\n"
    "sparsities = 0.3, 0.4\n"
    "ste = identity\n"
    "ranking = tensor\n"
    "masked = encoder.layer.*.attention.self.*.weight\n"
    "layers = 8-11\n"
    "samples = 5\n"
    "mask_lr = 0.05\n"
    "epochs = 10\n"
    "[train]\n"
    "lr = 2e-5\n"
    "batch_size = 8\n"
    "epochs = 2\n"
    "max_seq_length = 64\n"
    "warmup = 0.2\n"
    "weight_decay = 0\n"
    "adam_eps = 1e-6\n"
    "adam_beta1 = 0.8\n"
    "adam_beta2 = 0.99\n"
    "max_grad_norm = 0\n"
    "dropout = 0\n"
    "max_train_examples = 100\n"
    "eval_batch_size = 16\n"
    "log_every = 5\n"
    "shuffle = false\n"
    "max_steps = 40\n"
    "[layout]\n"
    "team_size = 4\n"
    "stages = 2\n"
    "micro_batches = 8\n"
    "pipeline_schedule = gpipe\n"
    "threads = 3\n";

static void test_parse_all_keys(void **state) {
    (void)state;
    char *p = put("all.ini", full_text);
    fm_jobfile jf;
    assert_int_equal(fm_jobfile_read(&jf, p), FM_OK);
    char *want = fm_path_join(dir, "models/tiny");
    assert_string_equal(jf.model, want);
    free(want);
    assert_string_equal(jf.data, "/abs/glue");
    want = fm_path_join(dir, "runs/x");
    assert_string_equal(jf.out, want);
    free(want);
    assert_string_equal(jf.name, "mysweep");
    assert_int_equal(jf.ntasks, 2);
    assert_string_equal(jf.tasks[1], "RTE");
    assert_int_equal(jf.nmodes, 3);
    assert_int_equal(jf.nseeds, 2);
    assert_int_equal(jf.seeds[1], 2);
    assert_int_equal(jf.nweights, 2);
    assert_int_equal(jf.nfreeze, 2);
    assert_string_equal(jf.freeze[1], "deepest:2,word_embeddings");
    assert_int_equal(jf.nsparsities, 2);
    assert_true(jf.sparsities[1] == 0.4);
    assert_string_equal(jf.ste, "identity");
    assert_string_equal(jf.ranking, "tensor");
    assert_string_equal(jf.layers, "8-11");
    assert_int_equal(jf.samples, 5);
    assert_true(jf.mask_lr == 0.05);
    assert_true(jf.train.lr == 2e-5);
    assert_int_equal(jf.train.batch_size, 8);
    assert_int_equal(jf.train.max_seq_length, 64);
    assert_true(jf.train.warmup == 0.2);
    assert_true(jf.train.adam_eps == 1e-6);
    assert_true(jf.train.adam_beta2 == 0.99);
    assert_true(jf.train.dropout == 0);
    assert_int_equal(jf.train.max_train_examples, 100);
    assert_int_equal(jf.train.shuffle, 0);
    assert_int_equal(jf.train.max_steps, 40);
    assert_int_equal(jf.train.log_every, 5);
    assert_int_equal(jf.team_size, 4);
    assert_int_equal(jf.stages, 2);
    assert_int_equal(jf.micro_batches, 8);
    assert_int_equal(jf.pipeline_schedule, FM_PIPE_GPIPE);
    assert_int_equal(jf.threads, 3);

    fm_job *jobs;
    int n;
    assert_int_equal(fm_jobfile_expand(&jf, &jobs, &n), FM_OK);
    /* per task: full 1 + freeze 2 + supermask 2 variants, x 2 weights x 2 seeds */
    assert_int_equal(n, 2 * (1 + 2 + 2) * 2 * 2);
    assert_string_equal(jobs[0].name, "MRPC.full.seed1");
    assert_string_equal(jobs[1].name, "MRPC.full.seed2");
    assert_string_equal(jobs[2].name, "MRPC.full.shuffled.seed1");
    assert_string_equal(jobs[4].name, "MRPC.freeze.key.seed1");
    assert_string_equal(jobs[8].name, "MRPC.freeze.deepest_2_word_embeddings.seed1");
    assert_string_equal(jobs[8].freeze, "deepest:2,word_embeddings");
    assert_true(jobs[4].h.lr == 3e-5);  /* [freeze] lr */
    assert_true(jobs[0].h.lr == 2e-5);
    assert_string_equal(jobs[12].name, "MRPC.supermask.s30.seed1");
    assert_true(jobs[12].sparsity == 0.3);
    assert_true(jobs[12].h.epochs == 10); /* [supermask] epochs */
    assert_string_equal(jobs[16].name, "MRPC.supermask.s40.seed1");
    assert_string_equal(jobs[20].name, "RTE.full.seed1");
    for (int i = 0; i < n; i++) {
        assert_int_equal(jobs[i].index, i);
        for (int k = 0; k < i; k++) assert_string_not_equal(jobs[i].name, jobs[k].name);
    }
    free(jobs);
    fm_jobfile_free(&jf);
    free(p);
}

static void test_defaults_and_name(void **state) {
    (void)state;
    char *p = put("table9.ini", "[run]\nmodel=m\ndata=d\n[sweep]\ntasks=SST-2\nmodes=supermask\n");
    fm_jobfile jf;
    assert_int_equal(fm_jobfile_read(&jf, p), FM_OK);
    assert_string_equal(jf.name, "table9");
    assert_null(jf.out);
    assert_int_equal(jf.nseeds, 1);
    assert_int_equal(jf.seeds[0], 42);
    assert_string_equal(jf.weights[0], "pretrained");
    assert_true(jf.sparsities[0] == 0);
    assert_int_equal(jf.team_size, 1);
    assert_int_equal(jf.stages, 1);
    assert_int_equal(jf.micro_batches, 1);
    assert_int_equal(jf.pipeline_schedule, FM_PIPE_1F1B);
    assert_true(jf.train.lr == 2e-5);
    assert_int_equal(jf.train.batch_size, 32);
    assert_true(jf.train.epochs == 3);
    fm_job *jobs;
    int n;
    assert_int_equal(fm_jobfile_expand(&jf, &jobs, &n), FM_OK);
    assert_int_equal(n, 1);
    assert_string_equal(jobs[0].name, "SST-2.supermask.s0.seed42");
    free(jobs);
    fm_jobfile_free(&jf);
    free(p);
}

/* Each bad file must fail with this message. */
static void expect_error(const char *text, const char *needle) {
    char *p = put("bad.ini", text);
    fm_jobfile jf;
    fm_clear_error();
    int rc = fm_jobfile_read(&jf, p);
    if (rc == FM_OK) fail_msg("accepted: %s", text);
    tu_assert_contains(fm_last_error(), p);
    tu_assert_contains(fm_last_error(), needle);
    free(p);
}

#define HEAD "[run]\nmodel=m\ndata=d\n[sweep]\ntasks=MRPC\nmodes=full\n"

static void test_errors(void **state) {
    (void)state;
    expect_error(HEAD "[bogus]\nx=1\n", ":8: unknown section [bogus]");
    expect_error(HEAD "[train]\nlearning_rate=1\n", ":8: unknown key 'learning_rate' in section [train]");
    expect_error("[run]\nmodel=m\nmodel=n\n", ":3: key 'model' given twice");
    expect_error("[run]\nmodel=m\nwhere=x\n", ":3: unknown key 'where' in section [run]");
    expect_error("[run]\nmodel=m\ndata=d\n[sweep]\ntasks=MRPC, SST2\n", ":5: tasks: expected CoLA");
    expect_error("[run]\nmodel=m\ndata=d\n[sweep]\ntasks=MRPC,,RTE\n", ":5: tasks: empty item");
    expect_error("[run]\nmodel=m\ndata=d\n[sweep]\ntasks=MRPC,MRPC\n", ":5: tasks: 'MRPC' given twice");
    expect_error("[run]\nmodel=m\ndata=d\n[sweep]\nmodes=full,bert\n", ":5: modes: expected full, freeze or supermask");
    expect_error("[sweep]\nseeds=1,x\n", ":2: seeds: expected an integer >= 0, found 'x'");
    expect_error("[sweep]\nseeds=-1\n", ":2: seeds: expected an integer");
    expect_error("[sweep]\nweights=pretrained,noise\n", ":2: weights: expected pretrained, shuffled or random");
    expect_error(HEAD "[supermask]\nsparsities=0.3,1.5\n", ":8: sparsities: expected a number in [0, 1)");
    expect_error(HEAD "[supermask]\nste=tanh\n", ":8: ste: expected sigmoid or identity");
    expect_error(HEAD "[supermask]\nranking=local\n", ":8: ranking: expected global or tensor");
    expect_error(HEAD "[supermask]\nsamples=0\n", ":8: samples: expected an integer in [1, 10000]");
    expect_error(HEAD "[supermask]\nsets=key\n", ":8: unknown key 'sets' in section [supermask]");
    expect_error(HEAD "[full]\nsparsities=0.1\n", ":8: unknown key 'sparsities' in section [full]");
    expect_error(HEAD "[freeze]\nsets=key||deepest:1\n", ":8: sets: empty item");
    expect_error(HEAD "[train]\nlr=fast\n", ":8: lr: expected a number in [0, 1e+06], found 'fast'");
    expect_error(HEAD "[train]\nbatch_size=0\n", ":8: batch_size: expected an integer in [1, 1048576]");
    expect_error(HEAD "[train]\nbatch_size=32x\n", ":8: batch_size: expected an integer");
    expect_error(HEAD "[train]\nwarmup=1.5\n", ":8: warmup: expected a number in [0, 1]");
    expect_error(HEAD "[train]\nshuffle=maybe\n", ":8: shuffle: expected true or false");
    expect_error(HEAD "[train]\nmax_seq_length=2\n", ":8: max_seq_length: expected an integer in [3, 65536]");
    expect_error(HEAD "[train]\nepochs=\n", ":8: epochs: empty value");
    expect_error(HEAD "[layout]\nteam_size=0\n", ":8: team_size: expected an integer >= 1");
    expect_error(HEAD "[layout]\nnodes=2\n", ":8: unknown key 'nodes' in section [layout]");
    expect_error(HEAD "[layout]\npipeline_schedule=1F1B\n", ":8: pipeline_schedule: expected gpipe or 1f1b, found '1F1B'");
    expect_error(HEAD "[layout]\npipeline_schedule=1f1b\npipeline_schedule=gpipe\n",
                 ":9: key 'pipeline_schedule' given twice");
    expect_error(HEAD "[layout\nthreads=2\n", ":7: expected [section], key = value or a comment");
    expect_error(HEAD "this is not a key\n", ":7: expected [section], key = value or a comment");
    {
        char longl[400];
        memset(longl, 'x', sizeof longl);
        memcpy(longl, "[train]\nlr=", 11);
        memcpy(longl + sizeof longl - 2, "\n", 2);
        char text[600];
        snprintf(text, sizeof text, "%s%s", HEAD, longl);
        expect_error(text, ":8: line longer than 198 characters");
    }
    expect_error("[sweep]\ntasks=MRPC\nmodes=full\n", "[run] model is required");
    expect_error("[run]\nmodel=m\n[sweep]\ntasks=MRPC\nmodes=full\n", "[run] data is required");
    expect_error("[run]\nmodel=m\ndata=d\n[sweep]\nmodes=full\n", "[sweep] tasks is required");
    expect_error("[run]\nmodel=m\ndata=d\n[sweep]\ntasks=RTE\n", "[sweep] modes is required");
    expect_error("[run]\nmodel=m\ndata=d\n[sweep]\ntasks=RTE\nmodes=freeze\n", "mode freeze needs [freeze] sets");
    expect_error(HEAD "[freeze]\nsets=key\n", "[freeze] sets given but freeze is not among [sweep] modes");
}

static void test_missing_file(void **state) {
    (void)state;
    fm_jobfile jf;
    char *p = fm_path_join(dir, "absent.ini");
    assert_int_equal(fm_jobfile_read(&jf, p), FM_ERR);
    tu_assert_contains(fm_last_error(), "absent.ini: cannot open");
    free(p);
}

static void test_name_clash(void **state) {
    (void)state;
    char *p = put("clash.ini", "[run]\nmodel=m\ndata=d\n[sweep]\ntasks=RTE\nmodes=freeze\n[freeze]\nsets=a:b | a,b\n");
    fm_jobfile jf;
    assert_int_equal(fm_jobfile_read(&jf, p), FM_OK);
    fm_job *jobs;
    int n;
    assert_int_equal(fm_jobfile_expand(&jf, &jobs, &n), FM_ERR);
    tu_assert_contains(fm_last_error(), "'RTE.freeze.a_b.seed42'");
    fm_jobfile_free(&jf);
    free(p);
}

/* Work = epochs x examples x seq length; order longest first, ties by index. */
static void test_estimate_and_order(void **state) {
    (void)state;
    char *glue = fm_path_join(dir, "glue");
    char *t1 = fm_path_join(glue, "RTE"), *t2 = fm_path_join(glue, "MRPC");
    assert_int_equal(fm_mkdirs(t1), FM_OK);
    assert_int_equal(fm_mkdirs(t2), FM_OK);
    char *f1 = fm_path_join(t1, "train.tsv"), *f2 = fm_path_join(t2, "train.tsv");
    assert_int_equal(tu_write_file(f1, "h\na\nb\nc\n", 8), 0);     /* 3 examples */
    assert_int_equal(tu_write_file(f2, "h\na\nb\nc\nd\ne", 11), 0); /* 5, no final newline */
    fm_job j[4];
    memset(j, 0, sizeof j);
    for (int i = 0; i < 4; i++) {
        fm_job_hyper_default(&j[i].h);
        j[i].index = i;
    }
    snprintf(j[0].task, sizeof j[0].task, "RTE");
    snprintf(j[1].task, sizeof j[1].task, "MRPC");
    snprintf(j[2].task, sizeof j[2].task, "MRPC");
    j[2].h.max_train_examples = 3;
    snprintf(j[3].task, sizeof j[3].task, "QQP"); /* absent: 0 */
    j[0].h.max_seq_length = 100;
    j[0].h.epochs = 5;
    fm_jobs_estimate(j, 4, glue);
    assert_true(j[0].work == 5.0 * 3 * 100);
    assert_true(j[1].work == 3.0 * 5 * 128);
    assert_true(j[2].work == 3.0 * 3 * 128);
    assert_true(j[3].work == 0);
    int order[4];
    fm_jobs_order(j, 4, order);
    assert_int_equal(order[0], 1);
    assert_int_equal(order[1], 0);
    assert_int_equal(order[2], 2);
    assert_int_equal(order[3], 3);
    /* ties keep the expansion order */
    j[0].work = j[1].work;
    fm_jobs_order(j, 4, order);
    assert_int_equal(order[0], 0);
    assert_int_equal(order[1], 1);
    free(f1);
    free(f2);
    free(t1);
    free(t2);
    free(glue);
}

/* A mode's own weights list replaces the sweep's for that mode only. */
static void test_mode_weights(void **state) {
    (void)state;
    char *p = put("mw.ini", "[run]\nmodel=m\ndata=d\n[sweep]\ntasks=RTE\nmodes=full,supermask\n"
                            "weights=pretrained,shuffled,random\n[full]\nweights=pretrained\n");
    fm_jobfile jf;
    assert_int_equal(fm_jobfile_read(&jf, p), FM_OK);
    fm_job *jobs;
    int n;
    assert_int_equal(fm_jobfile_expand(&jf, &jobs, &n), FM_OK);
    assert_int_equal(n, 4);
    assert_string_equal(jobs[0].name, "RTE.full.seed42");
    assert_string_equal(jobs[1].name, "RTE.supermask.s0.seed42");
    assert_string_equal(jobs[2].name, "RTE.supermask.s0.shuffled.seed42");
    assert_string_equal(jobs[3].name, "RTE.supermask.s0.random.seed42");
    assert_string_equal(jobs[3].weights, "random");
    free(jobs);
    fm_jobfile_free(&jf);
    free(p);
    p = put("mw2.ini", "[run]\nmodel=m\ndata=d\n[sweep]\ntasks=RTE\nmodes=full\n[full]\nweights=random,noise\n");
    assert_int_equal(fm_jobfile_read(&jf, p), FM_ERR);
    assert_non_null(strstr(fm_last_error(), ":8: weights: expected pretrained, shuffled or random, found 'noise'"));
    free(p);
}

/* The job files shipped in jobs/ all parse and expand. */
static void test_shipped_jobs(void **state) {
    (void)state;
    const char *names[] = {"table4.ini", "figure3.ini", "table3.ini", "demo.ini", "scaling.ini", "real-small.ini",
                           "real-full.ini"};
    const int counts[] = {16, 0, 0, 0, 0, 20, 20};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char *jd = fm_path_join(FM_SOURCE_DIR, "jobs");
        char *p = fm_path_join(jd, names[i]);
        fm_jobfile jf;
        if (fm_jobfile_read(&jf, p) != FM_OK) fail_msg("%s", fm_last_error());
        fm_job *jobs;
        int n;
        assert_int_equal(fm_jobfile_expand(&jf, &jobs, &n), FM_OK);
        assert_true(n > 0);
        if (counts[i]) assert_int_equal(n, counts[i]);
        free(jobs);
        fm_jobfile_free(&jf);
        free(p);
        free(jd);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_all_keys), cmocka_unit_test(test_defaults_and_name),
        cmocka_unit_test(test_errors),         cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_name_clash),     cmocka_unit_test(test_estimate_and_order),
        cmocka_unit_test(test_shipped_jobs),   cmocka_unit_test(test_mode_weights),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
