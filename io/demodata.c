/* demodata.c: the demo's data files (see demodata.h). */
#define _GNU_SOURCE
#include "demodata.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "fm.h"
#include "synth.h"

/* train, dev, test at scale 1, in the order of fm_synth_task_names */
static const int sizes[FM_SYNTH_NTASKS][3] = {
    {1500, 400, 200}, /* CoLA */
    {1500, 400, 200}, /* SST-2 */
    {1200, 400, 200}, /* MRPC */
    {1200, 400, 200}, /* STS-B */
    {1500, 400, 200}, /* QQP */
    {2400, 400, 200}, /* MNLI (dev and test: each of matched, mismatched) */
    {1500, 400, 200}, /* QNLI */
    {1000, 300, 200}, /* RTE */
};

static int scaled(int n, double scale) {
    int k = (int)ceil(n * scale);
    return k < 8 ? 8 : k;
}

void fm_demo_sizes(int task, double scale, int *ntrain, int *ndev, int *ntest) {
    *ntrain = scaled(sizes[task][0], scale);
    *ndev = scaled(sizes[task][1], scale);
    *ntest = scaled(sizes[task][2], scale);
}

int64_t fm_demo_corpus_lines(double scale) {
    int64_t n = (int64_t)ceil(24000 * scale);
    return n < 64 ? 64 : n;
}

static const char *const genres_m[] = {"fiction", "government", "travel"};
static const char *const genres_mm[] = {"letters", "verbatim", "oup"};
static const char *const mnli_labels[] = {"contradiction", "entailment", "neutral"};
static const char *const ent_labels[] = {"entailment", "not_entailment"};

/* One line of task t's file for split (0 train, 1 dev, 2 test; +mm for MNLI's mismatched). */
static void line(fm_sbuf *f, int t, int split, int mm, int i, const fm_synth_example *e) {
    const int test = split == 2;
    const char *a = e->a.s, *b = e->b.s;
    switch (t) {
    case 0: /* CoLA */
        if (test) fm_sbuf_addf(f, "%d\t%s\n", i, a);
        else fm_sbuf_addf(f, "syn%02d\t%d\t%s\t%s\n", i % 17, e->label, e->label ? "" : "*", a);
        break;
    case 1: /* SST-2 */
        if (test) fm_sbuf_addf(f, "%d\t%s\n", i, a);
        else fm_sbuf_addf(f, "%s \t%d\n", a, e->label);
        break;
    case 2: /* MRPC */
        fm_sbuf_addf(f, "%d\t%d\t%d\t", test ? i : e->label, 100000 + 2 * i, 100001 + 2 * i);
        fm_sbuf_add(f, a);
        fm_sbuf_add(f, "\t");
        fm_sbuf_add(f, b);
        fm_sbuf_add(f, "\n");
        break;
    case 3: /* STS-B */
        fm_sbuf_addf(f, "%d\tmain-synthetic\tdemo\t2026\t%04d\tnone\tnone\t", i, i);
        fm_sbuf_add(f, a);
        fm_sbuf_add(f, "\t");
        fm_sbuf_add(f, b);
        if (!test) fm_sbuf_addf(f, "\t%.3f", e->score);
        fm_sbuf_add(f, "\n");
        break;
    case 4: /* QQP */
        if (test) fm_sbuf_addf(f, "%d\t", i);
        else fm_sbuf_addf(f, "%d\t%d\t%d\t", i, 2 * i + 1, 2 * i + 2);
        fm_sbuf_add(f, a);
        fm_sbuf_add(f, "\t");
        fm_sbuf_add(f, b);
        if (!test) fm_sbuf_addf(f, "\t%d", e->label);
        fm_sbuf_add(f, "\n");
        break;
    case 5: { /* MNLI */
        const char *genre = mm ? genres_mm[i % 3] : genres_m[i % 3];
        fm_sbuf_addf(f, "%d\t%d\t%d%c\t%s\t( %s )\t( %s )\t(ROOT (S %s))\t(ROOT (S %s))\t", i, 50000 + i, 50000 + i,
                     test ? 'x' : mnli_labels[e->label][0], genre, a, b, a, b);
        fm_sbuf_add(f, a);
        fm_sbuf_add(f, "\t");
        fm_sbuf_add(f, b);
        if (!test) fm_sbuf_addf(f, "\t%s\t%s", mnli_labels[e->label], mnli_labels[e->label]);
        fm_sbuf_add(f, "\n");
        break;
    }
    default: /* QNLI, RTE */
        fm_sbuf_addf(f, "%d\t", i);
        fm_sbuf_add(f, a);
        fm_sbuf_add(f, "\t");
        fm_sbuf_add(f, b);
        if (!test) fm_sbuf_addf(f, "\t%s", ent_labels[e->label]);
        fm_sbuf_add(f, "\n");
    }
}

static const char *header(int t, int test) {
    switch (t) {
    case 0: return test ? "index\tsentence\n" : NULL;
    case 1: return test ? "index\tsentence\n" : "sentence\tlabel\n";
    case 2: return test ? "\xEF\xBB\xBFindex\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
                        : "\xEF\xBB\xBFQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n";
    case 3: return test ? "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\n"
                        : "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n";
    case 4: return test ? "id\tquestion1\tquestion2\n" : "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n";
    case 5:
        return test ? "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
                      "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\n"
                    : "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
                      "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label\n";
    case 6: return test ? "index\tquestion\tsentence\n" : "index\tquestion\tsentence\tlabel\n";
    default: return test ? "index\tsentence1\tsentence2\n" : "index\tsentence1\tsentence2\tlabel\n";
    }
}

static int write_sbuf(const char *dir, const char *name, const fm_sbuf *b) {
    char *p = fm_path_join(dir, name);
    int rc = fm_write_file_atomic(p, b->s ? b->s : "", b->n);
    free(p);
    return rc;
}

static int write_task(const char *glue, int t, uint64_t seed, double scale) {
    char *dir = fm_path_join(glue, fm_synth_task_names[t]);
    int rc = fm_mkdirs(dir);
    int n[3];
    fm_demo_sizes(t, scale, &n[0], &n[1], &n[2]);
    static const char *const files[3] = {"train.tsv", "dev.tsv", "test.tsv"};
    static const char *const mnli_files[2][3] = {{"train.tsv", "dev_matched.tsv", "test_matched.tsv"},
                                                 {NULL, "dev_mismatched.tsv", "test_mismatched.tsv"}};
    for (int mm = 0; mm < (t == 5 ? 2 : 1) && rc == FM_OK; mm++)
        for (int split = mm; split < 3 && rc == FM_OK; split++) {
            fm_sbuf f = {0};
            fm_sbuf_add(&f, "");
            const char *h = header(t, split == 2);
            if (h) fm_sbuf_add(&f, h);
            for (int i = 0; i < n[split]; i++) {
                fm_synth_example e;
                fm_synth_example_make(&e, seed, t, split + (mm ? 2 : 0), (uint64_t)i);
                line(&f, t, split, mm, i, &e);
                fm_synth_example_free(&e);
            }
            rc = write_sbuf(dir, t == 5 ? mnli_files[mm][split] : files[split], &f);
            fm_sbuf_free(&f);
        }
    free(dir);
    return rc;
}

int fm_demo_write_data(const char *dir, uint64_t seed, double scale) {
    if (fm_mkdirs(dir) != FM_OK) return FM_ERR;
    fm_sbuf b = {0};
    fm_synth_vocab(&b);
    int rc = write_sbuf(dir, "vocab.txt", &b);
    b.n = 0;
    fm_sbuf line_buf = {0};
    const int64_t nlines = fm_demo_corpus_lines(scale);
    for (int64_t i = 0; i < nlines && rc == FM_OK; i++) {
        fm_synth_corpus_line(&line_buf, seed, (uint64_t)i);
        fm_sbuf_add(&b, line_buf.s);
        fm_sbuf_add(&b, "\n");
    }
    fm_sbuf_free(&line_buf);
    if (rc == FM_OK) rc = write_sbuf(dir, "corpus.txt", &b);
    fm_sbuf_free(&b);
    char *glue = fm_path_join(dir, "glue");
    for (int t = 0; t < FM_SYNTH_NTASKS && rc == FM_OK; t++) rc = write_task(glue, t, seed, scale);
    free(glue);
    return rc;
}
