/* test_opts.c: the option tables (src/opts.h): their consistency, the
 * defaults, value parsing and its messages, options.json's exact bytes (as
 * the writer before the tables wrote them) and its round trip, the resume
 * check, pre-training's state options, and the job file's [train] keys. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "fm.h"
#include "jobfile.h"
#include "options.h"
#include "runfiles.h"
#include "opts.h"
#include "testutil.h"

static void check_table(const fm_opt *t, int n) {
    for (int i = 0; i < n; i++) {
        assert_non_null(t[i].help);
        assert_true(t[i].help[0] != 0);
        if (t[i].kind == FM_OPT_ENUM) {
            assert_non_null(t[i].names);
            assert_true(t[i].def >= 0 && t[i].def < t[i].nnames);
        }
        if (t[i].kind == FM_OPT_F64 || t[i].kind == FM_OPT_INT || t[i].kind == FM_OPT_I64 || t[i].kind == FM_OPT_U64)
            assert_true(t[i].lo <= t[i].hi);
        for (int k = 0; k < i; k++) {
            assert_string_not_equal(t[i].field, t[k].field);
            if (t[i].name && t[k].name) assert_string_not_equal(t[i].name, t[k].name);
            if (t[i].key && t[k].key) assert_string_not_equal(t[i].key, t[k].key);
            if (t[i].job && t[k].job) assert_string_not_equal(t[i].job, t[k].job);
            if (t[i].hyper && t[k].hyper) assert_string_not_equal(t[i].hyper, t[k].hyper);
        }
        /* an option in options.json is one a resume compares, and the other way round */
        assert_int_equal(t[i].key != NULL, (t[i].flags & FM_OPT_RESUME) != 0);
    }
}

static void test_tables(void **state) {
    (void)state;
    check_table(fm_ft_opt_table, fm_ft_opt_count);
    check_table(fm_pt_opt_table, fm_pt_opt_count);
    fm_ft_opts o;
    fm_ft_opts_default(&o);
    assert_true(o.lr == 2e-5);
    assert_int_equal(o.batch_size, 32);
    assert_int_equal(o.eval_batch_size, 32);
    assert_int_equal(o.max_seq_length, 128);
    assert_int_equal(o.mode, FM_TRAIN_FULL);
    assert_int_equal(o.weights, FM_WEIGHTS_PRETRAINED);
    assert_int_equal(o.shuffle, 1);
    assert_true(o.dropout < 0 && o.max_steps < 0 && o.head_lr < 0);
    assert_null(o.model_dir);
    fm_pt_opts p;
    fm_pt_opts_default(&p);
    assert_string_equal(p.config, "tiny");
    assert_int_equal(p.steps, 1000);
    assert_true(p.adam_eps == 1e-6);
}

static void test_parse(void **state) {
    (void)state;
    fm_ft_opts o;
    fm_ft_opts_default(&o);
    const fm_opt *m = fm_opt_find(fm_ft_opt_table, fm_ft_opt_count, "mode");
    assert_int_equal(fm_opt_parse(m, &o, "--mode", "supermask"), FM_OK);
    assert_int_equal(o.mode, FM_TRAIN_SUPERMASK);
    assert_int_equal(fm_opt_parse(m, &o, "--mode", "bert"), FM_ERR);
    assert_string_equal(fm_last_error(), "--mode: expected full, freeze or supermask, found 'bert'");
    const fm_opt *lr = fm_opt_find(fm_ft_opt_table, fm_ft_opt_count, "lr");
    assert_int_equal(fm_opt_parse(lr, &o, "--lr", "1e9"), FM_ERR);
    assert_string_equal(fm_last_error(), "--lr: expected a number in [0, 1e+06], found '1e9'");
    const fm_opt *seed = fm_opt_find(fm_ft_opt_table, fm_ft_opt_count, "seed");
    assert_int_equal(fm_opt_parse(seed, &o, "--seed", "4611686018427387903"), FM_OK);
    assert_true(o.seed == 4611686018427387903ULL); /* exactly: no trip through a double */
    const fm_opt *sh = fm_opt_find(fm_ft_opt_table, fm_ft_opt_count, "shuffle");
    assert_int_equal(fm_opt_parse(sh, &o, "shuffle", "no"), FM_OK);
    assert_int_equal(o.shuffle, 0);
    assert_int_equal(fm_opt_parse(sh, &o, "shuffle", "maybe"), FM_ERR);
    assert_string_equal(fm_last_error(), "shuffle: expected true or false, found 'maybe'");
    o.freeze = "key";
    o.mode = FM_TRAIN_FULL;
    assert_int_equal(fm_ft_opts_check(&o), FM_ERR);
    tu_assert_contains(fm_last_error(), "--freeze goes with --mode freeze");
}

/* options.json as the binary before the tables wrote it for these options
 * (the keys it had then). */
static const char *const sm_json =
    "{\"adam_beta1\":0.90000000000000002,\"adam_beta2\":0.999,\"adam_eps\":1e-8,\"batch_size\":8,\"data\":\"g\","
    "\"dropout\":-1.0,\"epochs\":3.0,\"eval_batch_size\":32,\"eval_every\":0,\"freeze\":null,\"head_lr\":0.001,"
    "\"init_rank\":\"tensor\",\"init_sparsity\":0.20000000000000001,\"log_every\":50,\"lr\":2.0000000000000002e-5,"
    "\"mask\":null,\"mask_layers\":\"0\",\"mask_lr\":0.5,\"max_grad_norm\":1.0,\"max_seq_length\":24,\"max_steps\":5,"
    "\"max_train_examples\":-1,\"mode\":\"supermask\",\"model\":\"m\",\"samples\":2,\"seed\":42,\"shuffle\":true,"
    "\"ste\":\"identity\",\"task\":\"SST-2\",\"warmup\":0.10000000000000001,\"weight_decay\":0.01,\"weights\":"
    "\"shuffled\"}";

static void sm_opts(fm_ft_opts *o) {
    fm_ft_opts_default(o);
    o->model_dir = "m";
    o->data_dir = "g";
    o->task = "SST-2";
    o->mode = FM_TRAIN_SUPERMASK;
    o->max_steps = 5;
    o->batch_size = 8;
    o->max_seq_length = 24;
    o->init_sparsity = 0.2;
    o->init_rank = FM_RANK_TENSOR;
    o->ste = FM_STE_IDENTITY;
    o->samples = 2;
    o->mask_lr = 0.5;
    o->head_lr = 1e-3;
    o->weights = FM_WEIGHTS_SHUFFLED;
    o->mask_layers = "0";
}

static void test_options_json(void **state) {
    (void)state;
    fm_ft_opts o;
    sm_opts(&o);
    char *s = fm_ft_opts_json(&o);
    {
        /* the same bytes for these keys (an option added later adds its own key) */
        json_t *have = json_loads(s, 0, NULL), *want = json_loads(sm_json, 0, NULL);
        assert_non_null(have);
        char *again = json_dumps(have, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
        assert_string_equal(again, s); /* sorted keys, compact, 17 digits */
        free(again);
        const char *key;
        json_t *v;
        void *tmp;
        json_object_foreach_safe(have, tmp, key, v) {
            if (!json_object_get(want, key)) json_object_del(have, key);
        }
        char *cut = json_dumps(have, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
        assert_string_equal(cut, sm_json);
        free(cut);
        json_decref(have);
        json_decref(want);
    }
    char *dir = tu_mkdtemp(), *path = fm_path_join(dir, "options.json");
    assert_int_equal(tu_write_file(path, s, strlen(s)), 0);
    fm_ft_opts back;
    void *keep = NULL;
    assert_int_equal(fm_ft_opts_load(dir, &back, &keep), FM_OK);
    char *s2 = fm_ft_opts_json(&back);
    assert_string_equal(s, s2);
    assert_null(fm_ft_opts_first_difference(&o, &back, NULL));
    back.lr = 1e-3;
    const fm_opt *d = fm_ft_opts_first_difference(&o, &back, NULL);
    assert_non_null(d);
    assert_string_equal(d->name, "lr");
    unsigned char given[128] = {0};
    assert_null(fm_ft_opts_first_difference(&o, &back, given)); /* lr not given: not compared */
    free(s2);
    free(s);
    json_decref(keep);
    /* options.json of a run made before an option existed (sm_json has no
     * nu_init): the option keeps its default, and the run resumes as it was */
    assert_int_equal(tu_write_file(path, sm_json, strlen(sm_json)), 0);
    assert_int_equal(fm_ft_opts_load(dir, &back, &keep), FM_OK);
    assert_true(back.nu_init == 5.0);
    assert_null(fm_ft_opts_first_difference(&o, &back, NULL));
    json_decref(keep);
    /* ... but a required option must be there */
    json_t *cut = json_loads(sm_json, 0, NULL);
    json_object_del(cut, "task");
    char *cuts = json_dumps(cut, JSON_COMPACT);
    assert_int_equal(tu_write_file(path, cuts, strlen(cuts)), 0);
    assert_int_equal(fm_ft_opts_load(dir, &back, &keep), FM_ERR);
    tu_assert_contains(fm_last_error(), "no key \"task\"");
    free(cuts);
    json_decref(cut);
    /* a key too many, a value of the wrong type */
    const char *bad = "{\"lr\": \"fast\"}";
    assert_int_equal(tu_write_file(path, bad, strlen(bad)), 0);
    assert_int_equal(fm_ft_opts_load(dir, &back, &keep), FM_ERR);
    tu_assert_contains(fm_last_error(), "options.json: expected the options of a finemask train run");
    tu_rmtree(dir);
    free(path);
    free(dir);
}

/* Pre-training's state options as the writer before the tables built them
 * (key by key, in this order), against the table's. */
static char *pt_json_before(const fm_pt_opts *o, const char *crc) {
    json_t *j = json_object(), *cp = json_array();
    for (int i = 0; i < o->ncorpus; i++) json_array_append_new(cp, json_string(o->corpus[i]));
    json_object_set_new(j, "corpus", cp);
    json_object_set_new(j, "corpus-content", json_string(crc));
    json_object_set_new(j, "vocab", json_string(o->vocab));
    json_object_set_new(j, "config", json_string(o->config));
    json_object_set_new(j, "steps", json_integer(o->steps));
    json_object_set_new(j, "batch", json_integer(o->batch));
    json_object_set_new(j, "seq", json_integer(o->seq));
    json_object_set_new(j, "lr", json_real(o->lr));
    json_object_set_new(j, "warmup", json_real(o->warmup));
    json_object_set_new(j, "weight-decay", json_real(o->weight_decay));
    json_object_set_new(j, "adam-eps", json_real(o->adam_eps));
    json_object_set_new(j, "max-grad-norm", json_real(o->max_grad_norm));
    json_object_set_new(j, "mlm-prob", json_real(o->mlm_prob));
    json_object_set_new(j, "dropout", json_real(o->dropout));
    json_object_set_new(j, "seed", json_integer((json_int_t)o->seed));
    json_object_set_new(j, "log-every", json_integer(o->log_every));
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s;
}

static void test_pt_options_json(void **state) {
    (void)state;
    fm_pt_opts o;
    fm_pt_opts_default(&o);
    const char *files[] = {"a.txt", "b.txt"};
    o.corpus = files;
    o.ncorpus = 2;
    o.vocab = "v.txt";
    o.out = "out";
    o.steps = 7;
    o.lr = 3e-4;
    o.seed = 5;
    const char *crc = "3 rows, crc32c 01234567 89abcdef";
    char *want = pt_json_before(&o, crc), *have = fm_pt_opts_json(&o, crc);
    assert_string_equal(have, want);
    free(want);
    free(have);
}

/* Every job key of the table is a [train] key of a job file. */
static void test_jobfile_keys(void **state) {
    (void)state;
    char *dir = tu_mkdtemp(), *path = fm_path_join(dir, "j.ini");
    const char *text = "[run]\nmodel=m\ndata=d\n[sweep]\ntasks=RTE\nmodes=full\n[train]\nlog_every=7\n"
                       "eval_batch_size=4\nshuffle=no\n";
    assert_int_equal(tu_write_file(path, text, strlen(text)), 0);
    fm_jobfile jf;
    assert_int_equal(fm_jobfile_read(&jf, path), FM_OK);
    assert_int_equal(jf.train.log_every, 7);
    assert_int_equal(jf.train.eval_batch_size, 4);
    assert_int_equal(jf.train.shuffle, 0);
    fm_jobfile_free(&jf);
    tu_rmtree(dir);
    free(path);
    free(dir);
}

/* The supermask's options do not apply to full fine-tuning or freezing: a
 * state or finished job that differs in them only still agrees, while a
 * supermask run's does not, and neither does a full run's other options. */
static void test_unused_options(void **state) {
    (void)state;
    const char *const *u = fm_ft_opts_unused("full");
    int has_mask_lr = 0, has_ste = 0, has_lr = 0;
    for (int i = 0; u[i]; i++) {
        has_mask_lr |= !strcmp(u[i], "mask_lr");
        has_ste |= !strcmp(u[i], "ste");
        has_lr |= !strcmp(u[i], "lr");
    }
    assert_true(has_mask_lr && has_ste && !has_lr);
    assert_null(fm_ft_opts_unused("supermask")[0]);
    assert_null(fm_ft_opts_unused(NULL)[0]);
    const char *saved = "{\"mode\":\"full\",\"lr\":0.0001,\"mask_lr\":0.01,\"ste\":\"sigmoid\"}";
    assert_int_equal(fm_options_agree("s", saved, "{\"mode\":\"full\",\"lr\":0.0001,\"mask_lr\":0.3,\"ste\":\"identity\"}",
                                      NULL, fm_ft_opts_unused("full")),
                     FM_OK);
    assert_int_equal(fm_options_agree("s", saved, "{\"mode\":\"full\",\"lr\":0.0002,\"mask_lr\":0.01,\"ste\":\"sigmoid\"}",
                                      NULL, fm_ft_opts_unused("full")),
                     FM_ERR);
    tu_assert_contains(fm_last_error(), "s: option lr differs: the state was written with 0.0001, this run has 0.0002");
    const char *sm = "{\"mode\":\"supermask\",\"lr\":0.0001,\"mask_lr\":0.01}";
    assert_int_equal(fm_options_agree("s", sm, "{\"mode\":\"supermask\",\"lr\":0.0001,\"mask_lr\":0.3}", NULL,
                                      fm_ft_opts_unused("supermask")),
                     FM_ERR);
    tu_assert_contains(fm_last_error(), "option mask_lr differs");
}

/* One comparison for both cases: resuming resolves the path keys as files
 * (two spellings of one directory agree, two directories do not); a
 * finished job leaves them out. Either message names the first option that
 * differs, with both values, in its own words. */
static void test_options_compare(void **state) {
    (void)state;
    char *dir = tu_mkdtemp(), *other = tu_mkdtemp();
    char *spelled = malloc(strlen(dir) + 3); /* dir/. : another spelling of dir */
    sprintf(spelled, "%s/.", dir);
    json_t *saved = json_pack("{s:s, s:f, s:s}", "model", dir, "lr", 1e-4, "ste", "sigmoid");
    json_t *same_dir = json_pack("{s:s, s:f, s:s}", "model", spelled, "lr", 1e-4, "ste", "sigmoid");
    json_t *moved = json_pack("{s:s, s:f, s:s}", "model", other, "lr", 1e-4, "ste", "sigmoid");
    json_t *lr = json_pack("{s:s, s:f, s:s}", "model", other, "lr", 2e-4, "ste", "sigmoid");
    json_t *no_ste = json_pack("{s:s, s:f}", "model", dir, "lr", 1e-4);
    static const char *const paths[] = {"model", NULL}, *const skip_ste[] = {"ste", NULL};
    assert_int_equal(fm_options_compare("s", saved, same_dir, paths, NULL, FM_OPTS_RESUME), FM_OK);
    assert_int_equal(fm_options_compare("s", saved, moved, paths, NULL, FM_OPTS_RESUME), FM_ERR);
    tu_assert_contains(fm_last_error(), "s: option model differs: the state was written with \"");
    assert_int_equal(fm_options_compare("j/options.json", saved, moved, paths, NULL, FM_OPTS_FINISHED), FM_OK);
    assert_int_equal(fm_options_compare("j/options.json", saved, lr, paths, NULL, FM_OPTS_FINISHED), FM_ERR);
    tu_assert_contains(fm_last_error(), "j/options.json: option lr differs: the job finished with 0.0001, the job "
                                        "file now says 0.0002; remove the directory to run the job again");
    assert_int_equal(fm_options_compare("j/options.json", saved, no_ste, paths, NULL, FM_OPTS_FINISHED), FM_ERR);
    tu_assert_contains(fm_last_error(), "option ste differs: the job finished with \"sigmoid\", the job file now "
                                        "says (none)");
    /* values equal to 10 digits are shown in full */
    json_t *close = json_pack("{s:s, s:f, s:s}", "model", dir, "lr", 1e-4 * (1 + 1e-12), "ste", "sigmoid");
    assert_int_equal(fm_options_compare("s", saved, close, paths, NULL, FM_OPTS_RESUME), FM_ERR);
    tu_assert_contains(fm_last_error(), "s: option lr differs: the state was written with 0.0001, this run has "
                                        "0.000100000000000");
    json_decref(close);
    assert_int_equal(fm_options_compare("s", saved, no_ste, paths, skip_ste, FM_OPTS_RESUME), FM_OK);
    assert_int_equal(fm_options_compare("s", no_ste, saved, paths, NULL, FM_OPTS_RESUME), FM_ERR);
    tu_assert_contains(fm_last_error(), "s: option ste differs: the state was written with (none), this run has "
                                        "\"sigmoid\"");
    json_decref(saved);
    json_decref(same_dir);
    json_decref(moved);
    json_decref(lr);
    json_decref(no_ste);
    tu_rmtree(dir);
    tu_rmtree(other);
    free(spelled);
    free(dir);
    free(other);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tables),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_options_json),
        cmocka_unit_test(test_pt_options_json),
        cmocka_unit_test(test_jobfile_keys),
        cmocka_unit_test(test_unused_options),
        cmocka_unit_test(test_options_compare),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
