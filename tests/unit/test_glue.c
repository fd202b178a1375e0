/* test_glue.c: the GLUE task table and TSV readers: every task's real file
 * from the shared data (skipped when absent), and malformed files that must
 * be rejected with the file, the line and what was wrong. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "fileio.h"
#include "fm.h"
#include "glue.h"

static const fm_glue_task *task(const char *name) {
    const fm_glue_task *t = fm_glue_task_find(name);
    assert_non_null(t);
    return t;
}

/* ---------------------------------------------------------- task table */

static void test_task_table(void **state) {
    (void)state;
    size_t n;
    const fm_glue_task *all = fm_glue_tasks(&n);
    assert_int_equal(n, 9);
    const char *names[] = {"CoLA", "SST-2", "MRPC", "STS-B", "QQP", "MNLI", "QNLI", "RTE", "WNLI"};
    for (size_t i = 0; i < n; i++) assert_string_equal(all[i].name, names[i]);
    /* HF's get_labels() orders. */
    const fm_glue_task *m = task("MNLI");
    assert_int_equal(m->num_labels, 3);
    assert_string_equal(m->labels[0], "contradiction");
    assert_string_equal(m->labels[1], "entailment");
    assert_string_equal(m->labels[2], "neutral");
    assert_int_equal(fm_glue_label_index(m, "neutral"), 2);
    assert_int_equal(fm_glue_label_index(m, "Neutral"), -1);
    assert_string_equal(task("RTE")->labels[0], "entailment");
    assert_string_equal(task("QNLI")->labels[1], "not_entailment");
    assert_string_equal(task("CoLA")->labels[1], "1");
    const fm_glue_task *s = task("sts-b");
    assert_true(s->is_regression);
    assert_int_equal(s->num_labels, 1);
    assert_null(s->labels);
    assert_int_equal(s->metric, FM_METRIC_CORR);
    assert_int_equal(task("CoLA")->metric, FM_METRIC_MCC);
    assert_int_equal(task("MRPC")->metric, FM_METRIC_F1_ACC);
    assert_int_equal(task("QQP")->metric, FM_METRIC_F1_ACC);
    assert_int_equal(task("SST-2")->metric, FM_METRIC_ACC);
    assert_false(task("SST-2")->is_pair);
    assert_true(task("MRPC")->is_pair);
    /* Names without the hyphen, any case. */
    assert_ptr_equal(task("sst2"), task("SST-2"));
    assert_ptr_equal(task("STSB"), task("STS-B"));
    assert_null(fm_glue_task_find("SST"));
    tu_assert_contains(fm_last_error(), "unknown GLUE task 'SST'");
    /* File names of the splits. */
    assert_string_equal(fm_glue_split_file(m, FM_GLUE_DEV), "dev_matched.tsv");
    assert_string_equal(fm_glue_split_file(m, FM_GLUE_DEV_MISMATCHED), "dev_mismatched.tsv");
    assert_string_equal(fm_glue_split_file(m, FM_GLUE_TEST_MISMATCHED), "test_mismatched.tsv");
    assert_string_equal(fm_glue_split_file(task("RTE"), FM_GLUE_TEST), "test.tsv");
    assert_null(fm_glue_split_file(task("RTE"), FM_GLUE_DEV_MISMATCHED));
    tu_assert_contains(fm_last_error(), "RTE has no dev_mismatched split");
    fm_glue_split sp;
    assert_int_equal(fm_glue_split_parse("dev_mismatched", &sp), FM_OK);
    assert_int_equal(sp, FM_GLUE_DEV_MISMATCHED);
    assert_int_equal(fm_glue_split_parse("valid", &sp), FM_ERR);
}

/* ------------------------------------------------------- the real files */

typedef struct {
    const char *task, *file;
    fm_glue_split split;
    size_t rows;
    int count[3];        /* examples per label (classification) */
    const char *first_a; /* prefix of the first example's text_a */
    int first_line;
} real_case;

/* Row counts: the data README's, and what HF's processors give (csv rows
 * after the header, none skipped: no file here has a short row). Label
 * counts from the same csv read. */
static const real_case real_cases[] = {
    {"CoLA", "train.tsv", FM_GLUE_TRAIN, 8551, {2528, 6023}, "Our friends won't buy", 1},
    {"CoLA", "dev.tsv", FM_GLUE_DEV, 1043, {322, 721}, "The sailors rode", 1}, /* no final newline */
    {"SST-2", "train.tsv", FM_GLUE_TRAIN, 67349, {29780, 37569}, "hide new secretions", 2},
    {"SST-2", "dev.tsv", FM_GLUE_DEV, 872, {428, 444}, "it 's a charming", 2},
    {"SST-2", "test.tsv", FM_GLUE_TEST, 1821, {0, 0}, "uneasy mishmash", 2},
    {"MRPC", "train.tsv", FM_GLUE_TRAIN, 3668, {1194, 2474}, "Holden toured Northmoor", 2}, /* BOM */
    {"MRPC", "dev.tsv", FM_GLUE_DEV, 408, {129, 279}, "He said the foodservice", 2},      /* BOM */
    {"STS-B", "train.tsv", FM_GLUE_TRAIN, 5749, {0}, "A plane is taking off.", 2},
    {"STS-B", "dev.tsv", FM_GLUE_DEV, 1500, {0}, "A man with a hard hat", 2},
    {"QQP", "train.tsv", FM_GLUE_TRAIN, 32, {16, 16}, "Can I develope mobile apps", 2},
    {"QQP", "dev.tsv", FM_GLUE_DEV, 32, {16, 16}, "What, according to you", 2},
    {"MNLI", "train.tsv", FM_GLUE_TRAIN, 48, {16, 16, 16}, "Price caps may sound", 2},
    {"MNLI", "dev_matched.tsv", FM_GLUE_DEV, 48, {16, 16, 16}, "Did you \xe2\x80\x9dwhile", 2},
    {"QNLI", "train.tsv", FM_GLUE_TRAIN, 32, {16, 16}, "Sanskrit is the primary", 2},
    {"QNLI", "dev.tsv", FM_GLUE_DEV, 5463, {2702, 2761}, "What came into force", 2},
    {"RTE", "train.tsv", FM_GLUE_TRAIN, 2490, {1249, 1241}, "No Weapons of Mass", 2},
    {"RTE", "dev.tsv", FM_GLUE_DEV, 277, {146, 131}, "Dana Reeve, the widow", 2},
};

static void test_real_files(void **state) {
    (void)state;
    const char *d = tu_data_dir();
    if (!d) {
        fprintf(stderr, "skipped: no shared data\n");
        skip();
    }
    char glue[4096];
    snprintf(glue, sizeof glue, "%s/glue", d);
    for (size_t c = 0; c < sizeof real_cases / sizeof real_cases[0]; c++) {
        const real_case *rc = &real_cases[c];
        const fm_glue_task *t = task(rc->task);
        assert_string_equal(fm_glue_split_file(t, rc->split), rc->file);
        fm_glue_set set;
        if (fm_glue_load(&set, t, rc->split, glue) != FM_OK) {
            print_error("%s/%s: %s\n", rc->task, rc->file, fm_last_error());
            fail();
        }
        fprintf(stderr, "%-6s %-16s %6zu examples\n", rc->task, rc->file, set.n);
        assert_int_equal(set.n, rc->rows);
        assert_int_equal(set.skipped, 0);
        assert_ptr_equal(set.task, t);
        assert_true(!strncmp(set.ex[0].text_a, rc->first_a, strlen(rc->first_a)));
        assert_int_equal(set.ex[0].line, rc->first_line);
        assert_int_equal(set.ex[set.n - 1].line, (int)rc->rows + rc->first_line - 1);
        int count[3] = {0, 0, 0};
        double score_sum = 0;
        for (size_t i = 0; i < set.n; i++) {
            const fm_glue_example *e = &set.ex[i];
            assert_non_null(e->text_a);
            assert_true(t->is_pair ? e->text_b != NULL : e->text_b == NULL);
            if (rc->split == FM_GLUE_TEST) {
                assert_int_equal(e->label, -1);
                assert_true(isnan(e->score));
                assert_non_null(e->id);
            } else if (t->is_regression) {
                assert_int_equal(e->label, -1);
                assert_true(e->score >= 0.0f && e->score <= 5.0f);
                score_sum += e->score;
            } else {
                assert_true(e->label >= 0 && e->label < t->num_labels);
                count[e->label]++;
                assert_null(e->id);
            }
        }
        if (!t->is_regression && rc->split != FM_GLUE_TEST)
            for (int k = 0; k < t->num_labels; k++) assert_int_equal(count[k], rc->count[k]);
        if (rc->split == FM_GLUE_TEST) {
            /* SST-2 test: index 0..1820 in order. */
            assert_string_equal(set.ex[0].id, "0");
            assert_string_equal(set.ex[set.n - 1].id, "1820");
        }
        if (t->is_regression) {
            /* Sums of the score column, as Python's float() reads it. */
            double want = rc->split == FM_GLUE_TRAIN ? 15528.043 : 3545.861;
            assert_true(fabs(score_sum - want) < 0.01);
            assert_true(set.ex[0].score == 5.0f);
        }
        fm_glue_set_free(&set);
    }
}

/* The MRPC dev file keeps its second text and the label in column 0; the
 * byte-order mark does not end up in the header or the data. */
static void test_real_mrpc_columns(void **state) {
    (void)state;
    const char *d = tu_data_dir();
    if (!d) skip();
    char glue[4096];
    snprintf(glue, sizeof glue, "%s/glue", d);
    fm_glue_set set;
    assert_int_equal(fm_glue_load(&set, task("MRPC"), FM_GLUE_DEV, glue), FM_OK);
    assert_int_equal(set.ex[0].label, 1);
    assert_true(!strncmp(set.ex[0].text_b, "\" The foodservice pie business", 30)); /* a quote is text */
    assert_int_equal(set.ex[1].label, 0);
    fm_glue_set_free(&set);
}

/* ------------------------------------------ files made for the tests */

static char *tmpdir;
static int setup_tmp(void **state) {
    (void)state;
    tmpdir = tu_mkdtemp();
    return 0;
}
static int teardown_tmp(void **state) {
    (void)state;
    tu_rmtree(tmpdir);
    free(tmpdir);
    return 0;
}

/* Write bytes to TMP/name and read them as the task's split. */
static int read_bytes(fm_glue_set *set, const char *tname, fm_glue_split split, const char *name, const char *data,
                      size_t len) {
    char *path = fm_path_join(tmpdir, name);
    assert_int_equal(tu_write_file(path, data, len), 0);
    int rc = fm_glue_read_file(set, task(tname), split, path);
    free(path);
    return rc;
}
#define READ(set, t, split, name, lit) read_bytes(set, t, split, name, lit, sizeof(lit) - 1)

static void expect_error(const char *tname, fm_glue_split split, const char *data, size_t len, const char *msg) {
    fm_glue_set set;
    if (read_bytes(&set, tname, split, "dev.tsv", data, len) != FM_ERR) {
        print_error("%s: expected an error containing \"%s\"\n", tname, msg);
        fail();
    }
    tu_assert_contains(fm_last_error(), msg);
    assert_int_equal(set.n, 0);
    assert_null(set.ex);
}
#define EXPECT_ERROR(t, split, lit, msg) expect_error(t, split, lit, sizeof(lit) - 1, msg)

static void test_must_fail(void **state) {
    (void)state;
    /* Too few and too many fields. */
    EXPECT_ERROR("RTE", FM_GLUE_DEV, "index\ts1\ts2\tlabel\n0\ta\tb\tentailment\n1\ta\tnot_entailment\n",
                 "dev.tsv:3: expected 4 tab-separated fields, found 3");
    EXPECT_ERROR("SST-2", FM_GLUE_DEV, "sentence\tlabel\ngood\t1\nbad\t0\textra\n",
                 "dev.tsv:3: expected 2 tab-separated fields, found 3");
    EXPECT_ERROR("CoLA", FM_GLUE_TRAIN, "gj04\t1\t\tok .\n\n", "dev.tsv:2: expected 4 tab-separated fields, found an empty line");
    EXPECT_ERROR("MNLI", FM_GLUE_DEV, "h\n", "dev.tsv:1: expected a MNLI header of 11 to 16 tab-separated fields, found 1");
    /* Unknown labels name the label and the choices. */
    EXPECT_ERROR("RTE", FM_GLUE_DEV, "index\ts1\ts2\tlabel\n0\ta\tb\tentails\n",
                 "dev.tsv:2: unknown label 'entails' (expected 'entailment' or 'not_entailment')");
    EXPECT_ERROR("CoLA", FM_GLUE_DEV, "gj04\t1\t\tok .\ngj04\t2\t*\tbad .\n", "dev.tsv:2: unknown label '2' (expected '0' or '1')");
    EXPECT_ERROR("SST-2", FM_GLUE_DEV, "sentence\tlabel\ngood\t1.0\n", "dev.tsv:2: unknown label '1.0'");
    /* STS-B: the score must be a finite number. */
    EXPECT_ERROR("STS-B", FM_GLUE_DEV, "i\tg\tf\ty\to\ts1\ts2\ta\tb\tscore\n0\tg\tf\ty\to\ts\ts\ta\tb\tfive\n",
                 "dev.tsv:2: expected a similarity score (a number), found 'five'");
    EXPECT_ERROR("STS-B", FM_GLUE_DEV, "i\tg\tf\ty\to\ts1\ts2\ta\tb\tscore\n0\tg\tf\ty\to\ts\ts\ta\tb\t\n",
                 "dev.tsv:2: expected a similarity score (a number), found ''");
    EXPECT_ERROR("STS-B", FM_GLUE_DEV, "i\tg\tf\ty\to\ts1\ts2\ta\tb\tscore\n0\tg\tf\ty\to\ts\ts\ta\tb\tnan\n",
                 "found 'nan'");
    EXPECT_ERROR("STS-B", FM_GLUE_DEV, "i\tg\tf\ty\to\ts1\ts2\ta\tb\tscore\n0\tg\tf\ty\to\ts\ts\ta\tb\t3.5x\n",
                 "found '3.5x'");
    /* A double that is no float (found by fuzz_glue_tsv). */
    EXPECT_ERROR("STS-B", FM_GLUE_DEV, "i\tg\tf\ty\to\ts1\ts2\ta\tb\tscore\n0\tg\tf\ty\to\ts\ts\ta\tb\t5e79\n",
                 "found '5e79'");
    /* Invalid UTF-8, NUL bytes. */
    EXPECT_ERROR("SST-2", FM_GLUE_DEV, "sentence\tlabel\ngood\t1\nba\xff" "d\t0\n", "dev.tsv:3: invalid UTF-8 at byte 3");
    EXPECT_ERROR("SST-2", FM_GLUE_DEV, "sentence\tlabel\ngo\xc3\t1\n", "dev.tsv:2: invalid UTF-8 at byte 3");
    EXPECT_ERROR("SST-2", FM_GLUE_DEV, "sentence\tlabel\ngo\0od\t1\n", "dev.tsv:2: unexpected NUL byte at byte 3");
    /* Empty files, a header and nothing else. */
    EXPECT_ERROR("SST-2", FM_GLUE_DEV, "", "dev.tsv: empty file");
    EXPECT_ERROR("MRPC", FM_GLUE_DEV, "\xEF\xBB\xBF", "dev.tsv: empty file");
    EXPECT_ERROR("SST-2", FM_GLUE_DEV, "sentence\tlabel\n", "dev.tsv: no examples after the header");
    /* A missing file names the path. */
    fm_glue_set set;
    char *dir = fm_path_join(tmpdir, "nowhere");
    assert_int_equal(fm_glue_load(&set, task("CoLA"), FM_GLUE_DEV, dir), FM_ERR);
    tu_assert_contains(fm_last_error(), "nowhere/CoLA/dev.tsv: No such file or directory");
    free(dir);
}

static void test_line_ends_bom_quotes(void **state) {
    (void)state;
    fm_glue_set set;
    /* CRLF: the \r is not part of the label (or the text); no newline at
     * the end of the file. */
    assert_int_equal(READ(&set, "SST-2", FM_GLUE_TRAIN, "crlf.tsv", "sentence\tlabel\r\ngood film \t1\r\nbad\t0"), FM_OK);
    assert_int_equal(set.n, 2);
    assert_string_equal(set.ex[0].text_a, "good film ");
    assert_int_equal(set.ex[0].label, 1);
    assert_string_equal(set.ex[1].text_a, "bad");
    assert_int_equal(set.ex[1].label, 0);
    assert_int_equal(set.ex[1].line, 3);
    fm_glue_set_free(&set);
    /* BOM before the header (MRPC), quotes are ordinary characters: a field
     * starting with a quote does not swallow the tab after it. */
    assert_int_equal(READ(&set, "MRPC", FM_GLUE_DEV, "bom.tsv",
                          "\xEF\xBB\xBFQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
                          "1\t1\t2\t\"He said\t\" so .\n0\t3\t4\tx \"\ty\n"),
                     FM_OK);
    assert_int_equal(set.n, 2);
    assert_string_equal(set.ex[0].text_a, "\"He said");
    assert_string_equal(set.ex[0].text_b, "\" so .");
    assert_int_equal(set.ex[0].label, 1);
    assert_string_equal(set.ex[1].text_a, "x \"");
    fm_glue_set_free(&set);
    /* A BOM on a header-less CoLA file is skipped too. */
    assert_int_equal(READ(&set, "CoLA", FM_GLUE_TRAIN, "cola.tsv", "\xEF\xBB\xBFgj04\t0\t*\tBad .\n"), FM_OK);
    assert_int_equal(set.ex[0].label, 0);
    assert_string_equal(set.ex[0].text_a, "Bad .");
    fm_glue_set_free(&set);
}

static void test_layouts(void **state) {
    (void)state;
    fm_glue_set set;
    /* QQP: short rows (a question broken over two lines) are skipped and
     * counted, as the reference's IndexError handler does. */
    assert_int_equal(READ(&set, "QQP", FM_GLUE_TRAIN, "qqp.tsv",
                          "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
                          "1\t2\t3\tWhy?\tHow?\t0\n"
                          "4\t5\t6\tWhat is\n"
                          "a cat?\tA cat?\t1\n"
                          "\n"
                          "7\t8\t9\tWho?\tWhom?\t1\n"),
                     FM_OK);
    assert_int_equal(set.n, 2);
    assert_int_equal(set.skipped, 3);
    assert_string_equal(set.ex[1].text_b, "Whom?");
    assert_int_equal(set.ex[1].label, 1);
    assert_int_equal(set.ex[1].line, 6);
    fm_glue_set_free(&set);
    /* QQP test: id, question1, question2. */
    assert_int_equal(READ(&set, "QQP", FM_GLUE_TEST, "qqpt.tsv", "id\tquestion1\tquestion2\n0\tA?\tB?\n"), FM_OK);
    assert_string_equal(set.ex[0].id, "0");
    assert_string_equal(set.ex[0].text_a, "A?");
    assert_string_equal(set.ex[0].text_b, "B?");
    fm_glue_set_free(&set);
    /* MNLI dev in GLUE's own 16 columns (label1..label5, gold_label last)
     * and the 12-column train layout. */
    const char *hdr16 = "index\tpromptID\tpairID\tgenre\tb1\tb2\tp1\tp2\tsentence1\tsentence2\t"
                        "label1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label\n";
    char buf[1024];
    snprintf(buf, sizeof buf, "%s0\t1\t1e\tfiction\t(\t(\t(\t(\tPremise .\tHypothesis .\t"
                              "neutral\tneutral\tentailment\tneutral\tneutral\tneutral\n", hdr16);
    assert_int_equal(read_bytes(&set, "MNLI", FM_GLUE_DEV_MISMATCHED, "mm.tsv", buf, strlen(buf)), FM_OK);
    assert_string_equal(set.ex[0].text_a, "Premise .");
    assert_string_equal(set.ex[0].text_b, "Hypothesis .");
    assert_int_equal(set.ex[0].label, 2); /* neutral */
    fm_glue_set_free(&set);
    assert_int_equal(READ(&set, "MNLI", FM_GLUE_TRAIN, "mt.tsv",
                          "index\tpromptID\tpairID\tgenre\tb1\tb2\tp1\tp2\tsentence1\tsentence2\tlabel1\tgold_label\n"
                          "0\t1\t1c\tslate\t(\t(\t(\t(\tP\tH\tcontradiction\tcontradiction\n"),
                     FM_OK);
    assert_int_equal(set.ex[0].label, 0);
    fm_glue_set_free(&set);
    /* MNLI test: 10 columns, index first. */
    assert_int_equal(READ(&set, "MNLI", FM_GLUE_TEST, "mtest.tsv",
                          "index\tpromptID\tpairID\tgenre\tb1\tb2\tp1\tp2\tsentence1\tsentence2\n"
                          "17\t1\t1\tslate\t(\t(\t(\t(\tP\tH\n"),
                     FM_OK);
    assert_string_equal(set.ex[0].id, "17");
    assert_int_equal(set.ex[0].label, -1);
    fm_glue_set_free(&set);
    /* STS-B test (9 columns) and CoLA test (index, sentence). */
    assert_int_equal(READ(&set, "STS-B", FM_GLUE_TEST, "st.tsv",
                          "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\n"
                          "0\tg\tf\t2012\t1\tn\tn\tA dog.\tA cat.\n"),
                     FM_OK);
    assert_string_equal(set.ex[0].text_b, "A cat.");
    assert_true(isnan(set.ex[0].score));
    fm_glue_set_free(&set);
    assert_int_equal(READ(&set, "CoLA", FM_GLUE_TEST, "ct.tsv", "index\tsentence\n0\tA test .\n"), FM_OK);
    assert_string_equal(set.ex[0].text_a, "A test .");
    fm_glue_set_free(&set);
    /* WNLI: labels "0"/"1" in the last of 4 columns. */
    assert_int_equal(READ(&set, "WNLI", FM_GLUE_TRAIN, "w.tsv", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\t1\n"),
                     FM_OK);
    assert_int_equal(set.ex[0].label, 1);
    fm_glue_set_free(&set);
    /* STS-B scores as Python's float() reads them. */
    assert_int_equal(READ(&set, "STS-B", FM_GLUE_TRAIN, "s.tsv",
                          "i\tg\tf\ty\to\ts1\ts2\ta\tb\tscore\n0\tg\tf\ty\to\ts\ts\ta\tb\t3.800\n"
                          "1\tg\tf\ty\to\ts\ts\ta\tb\t4\n2\tg\tf\ty\to\ts\ts\ta\tb\t .5 \n"),
                     FM_OK);
    assert_true(set.ex[0].score == 3.8f);
    assert_true(set.ex[1].score == 4.0f);
    assert_true(set.ex[2].score == 0.5f);
    fm_glue_set_free(&set);
}

/* The in-memory entry point the fuzz target uses. */
static void test_parse_memory(void **state) {
    (void)state;
    fm_glue_set set;
    const char txt[] = "sentence\tlabel\nfine\t1\n";
    assert_int_equal(fm_glue_parse(&set, task("SST-2"), FM_GLUE_DEV, "mem", txt, sizeof txt - 1), FM_OK);
    assert_int_equal(set.n, 1);
    assert_string_equal(set.ex[0].text_a, "fine");
    fm_glue_set_free(&set);
    assert_int_equal(fm_glue_parse(&set, task("SST-2"), FM_GLUE_DEV, "mem", txt, 18), FM_ERR);
    tu_assert_contains(fm_last_error(), "mem:2: expected 2 tab-separated fields, found 1");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_task_table),          cmocka_unit_test(test_real_files),
        cmocka_unit_test(test_real_mrpc_columns),   cmocka_unit_test(test_must_fail),
        cmocka_unit_test(test_line_ends_bom_quotes), cmocka_unit_test(test_layouts),
        cmocka_unit_test(test_parse_memory),
    };
    return cmocka_run_group_tests_name("glue", tests, setup_tmp, teardown_tmp);
}
