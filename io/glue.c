/* glue.c: the GLUE task table and TSV readers (see glue.h). */
#define _POSIX_C_SOURCE 200809L
#include "glue.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <utf8proc.h>

#include "fileio.h"
#include "fm.h"

static const char *const labels_01[] = {"0", "1"};
static const char *const labels_mnli[] = {"contradiction", "entailment", "neutral"};
static const char *const labels_ent[] = {"entailment", "not_entailment"};

/* Test files: an index column first, then the texts, no label. */
#define TEST_A(nf, a) {1, nf, nf, a, -1, -1, 0, 0}
#define TEST_AB(nf, a, b) {1, nf, nf, a, b, -1, 0, 0}

static const fm_glue_task tasks[] = {
    /* CoLA: source, label, original label, sentence; no header. */
    {"CoLA", 2, labels_01, 0, 0, FM_METRIC_MCC, "train.tsv", "dev.tsv", "test.tsv", NULL, NULL,
     {0, 4, 4, 3, -1, 1, -1, 0}, TEST_A(2, 1)},
    /* SST-2: sentence, label. */
    {"SST-2", 2, labels_01, 0, 0, FM_METRIC_ACC, "train.tsv", "dev.tsv", "test.tsv", NULL, NULL,
     {1, 2, 2, 0, -1, 1, -1, 0}, TEST_A(2, 1)},
    /* MRPC: Quality, #1 ID, #2 ID, #1 String, #2 String. */
    {"MRPC", 2, labels_01, 0, 1, FM_METRIC_F1_ACC, "train.tsv", "dev.tsv", "test.tsv", NULL, NULL,
     {1, 5, 5, 3, 4, 0, -1, 0}, TEST_AB(5, 3, 4)},
    /* STS-B: index genre filename year old_index source1 source2 sentence1
     * sentence2 score; the test file lacks the score. */
    {"STS-B", 1, NULL, 1, 1, FM_METRIC_CORR, "train.tsv", "dev.tsv", "test.tsv", NULL, NULL,
     {1, 10, 10, 7, 8, FM_GLUE_LAST, -1, 0}, TEST_AB(9, 7, 8)},
    /* QQP: id qid1 qid2 question1 question2 is_duplicate; test: id q1 q2.
     * Short rows are skipped, as the reference does. */
    {"QQP", 2, labels_01, 0, 1, FM_METRIC_F1_ACC, "train.tsv", "dev.tsv", "test.tsv", NULL, NULL,
     {1, 6, 6, 3, 4, 5, -1, 1}, {1, 3, 3, 1, 2, -1, 0, 1}},
    /* MNLI: index promptID pairID genre 4 parses sentence1 sentence2, then
     * label1 (train) or label1..label5 (dev), gold_label last. */
    {"MNLI", 3, labels_mnli, 0, 1, FM_METRIC_ACC, "train.tsv", "dev_matched.tsv", "test_matched.tsv",
     "dev_mismatched.tsv", "test_mismatched.tsv", {1, 11, 16, 8, 9, FM_GLUE_LAST, -1, 0}, TEST_AB(10, 8, 9)},
    /* QNLI, RTE, WNLI: index, sentence1, sentence2, label. */
    {"QNLI", 2, labels_ent, 0, 1, FM_METRIC_ACC, "train.tsv", "dev.tsv", "test.tsv", NULL, NULL,
     {1, 4, 4, 1, 2, FM_GLUE_LAST, -1, 0}, TEST_AB(3, 1, 2)},
    {"RTE", 2, labels_ent, 0, 1, FM_METRIC_ACC, "train.tsv", "dev.tsv", "test.tsv", NULL, NULL,
     {1, 4, 4, 1, 2, FM_GLUE_LAST, -1, 0}, TEST_AB(3, 1, 2)},
    {"WNLI", 2, labels_01, 0, 1, FM_METRIC_ACC, "train.tsv", "dev.tsv", "test.tsv", NULL, NULL,
     {1, 4, 4, 1, 2, FM_GLUE_LAST, -1, 0}, TEST_AB(3, 1, 2)},
};
#define NTASKS (sizeof tasks / sizeof tasks[0])

const fm_glue_task *fm_glue_tasks(size_t *n) {
    if (n) *n = NTASKS;
    return tasks;
}

const fm_glue_task *fm_glue_task_find(const char *name) {
    for (size_t i = 0; i < NTASKS; i++) {
        if (!strcasecmp(name, tasks[i].name)) return &tasks[i];
        /* "SST2", "STSB": the name without its hyphen. */
        const char *h = strchr(tasks[i].name, '-');
        if (h) {
            size_t k = (size_t)(h - tasks[i].name);
            if (strlen(name) == strlen(tasks[i].name) - 1 && !strncasecmp(name, tasks[i].name, k) &&
                !strcasecmp(name + k, h + 1))
                return &tasks[i];
        }
    }
    fm_fail("unknown GLUE task '%s' (expected one of CoLA, SST-2, MRPC, STS-B, QQP, MNLI, QNLI, RTE, WNLI)", name);
    return NULL;
}

static const char *const split_names[] = {"train", "dev", "test", "dev_mismatched", "test_mismatched"};

const char *fm_glue_split_name(fm_glue_split split) {
    return (unsigned)split < 5 ? split_names[split] : "?";
}

int fm_glue_split_parse(const char *name, fm_glue_split *split) {
    for (int i = 0; i < 5; i++)
        if (!strcmp(name, split_names[i])) {
            *split = (fm_glue_split)i;
            return FM_OK;
        }
    if (!strcmp(name, "dev_matched") || !strcmp(name, "test_matched")) {
        *split = name[0] == 'd' ? FM_GLUE_DEV : FM_GLUE_TEST;
        return FM_OK;
    }
    return fm_fail("unknown split '%s' (expected train, dev, test, dev_mismatched or test_mismatched)", name);
}

const char *fm_glue_split_file(const fm_glue_task *task, fm_glue_split split) {
    const char *f = NULL;
    switch (split) {
    case FM_GLUE_TRAIN: f = task->train_file; break;
    case FM_GLUE_DEV: f = task->dev_file; break;
    case FM_GLUE_TEST: f = task->test_file; break;
    case FM_GLUE_DEV_MISMATCHED: f = task->dev_mm_file; break;
    case FM_GLUE_TEST_MISMATCHED: f = task->test_mm_file; break;
    }
    if (!f) fm_fail("%s has no %s split (only MNLI has mismatched sets)", task->name, fm_glue_split_name(split));
    return f;
}

const fm_glue_layout *fm_glue_split_layout(const fm_glue_task *task, fm_glue_split split) {
    return split == FM_GLUE_TEST || split == FM_GLUE_TEST_MISMATCHED ? &task->test : &task->labelled;
}

int fm_glue_label_index(const fm_glue_task *task, const char *label) {
    for (int i = 0; task->labels && i < task->num_labels; i++)
        if (!strcmp(label, task->labels[i])) return i;
    return -1;
}

void fm_glue_set_free(fm_glue_set *set) {
    free(set->ex);
    free(set->buf);
    memset(set, 0, sizeof *set);
}

/* "a, b or c" for error messages. */
static void label_list(const fm_glue_task *task, char *out, size_t cap) {
    size_t k = 0;
    out[0] = '\0';
    for (int i = 0; i < task->num_labels && k < cap; i++) {
        const char *sep = i == 0 ? "" : i == task->num_labels - 1 ? " or " : ", ";
        int w = snprintf(out + k, cap - k, "%s'%s'", sep, task->labels[i]);
        if (w < 0) break;
        k += (size_t)w;
    }
}

static void fields_expected(const fm_glue_layout *L, char *out, size_t cap) {
    if (L->min_fields == L->max_fields)
        snprintf(out, cap, "%d", L->min_fields);
    else
        snprintf(out, cap, "%d to %d", L->min_fields, L->max_fields);
}

/* Parse a similarity score as Python's float() would, finite only, also once
 * rounded to a float (5e79 is a double but not a float). */
static int parse_score(const char *s, float *out) {
    if (strpbrk(s, "xX")) return FM_ERR; /* strtod's hex floats; Python has none */
    char *end;
    double v = strtod(s, &end);
    if (end == s) return FM_ERR;
    while (*end == ' ' || *end == '\t') end++;
    if (*end || !isfinite(v) || !isfinite((float)v)) return FM_ERR;
    *out = (float)v;
    return FM_OK;
}

/* The parser proper: buf (len bytes, buf[len] writable) is taken over. */
static int parse_owned(fm_glue_set *set, const fm_glue_task *task, fm_glue_split split, const char *name, char *buf,
                       size_t len) {
    memset(set, 0, sizeof *set);
    set->task = task;
    set->split = split;
    set->buf = buf;
    buf[len] = '\0';
    const fm_glue_layout *L = fm_glue_split_layout(task, split);
    int is_test = split == FM_GLUE_TEST || split == FM_GLUE_TEST_MISMATCHED;
    char want[32];
    fields_expected(L, want, sizeof want);
    char *p = buf, *end = buf + len;
    if (len >= 3 && !memcmp(p, "\xEF\xBB\xBF", 3)) p += 3;
    if (p == end)
        return fm_fail("%s: empty file (expected %s%s lines of %s tab-separated fields)", name,
                       L->header ? "a header and " : "", task->name, want);
    size_t cap = 0;
    char *f[32];
    for (int line = 1; p < end; line++) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *lend = nl ? nl : end, *next = nl ? nl + 1 : end;
        if (lend > p && lend[-1] == '\r') lend--;
        *lend = '\0';
        size_t n = (size_t)(lend - p);
        char *nul = memchr(p, '\0', n);
        if (nul) return fm_fail("%s:%d: unexpected NUL byte at byte %zu of the line (expected text)", name, line,
                                (size_t)(nul - p) + 1);
        for (size_t i = 0; i < n;) {
            if ((unsigned char)p[i] < 0x80) {
                i++;
                continue;
            }
            utf8proc_int32_t cp;
            utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)p + i, (utf8proc_ssize_t)(n - i), &cp);
            if (k < 0) return fm_fail("%s:%d: invalid UTF-8 at byte %zu of the line (expected UTF-8 text)", name,
                                      line, i + 1);
            i += (size_t)k;
        }
        /* Split into fields in place. */
        int nf = 0;
        if (n > 0) {
            f[nf++] = p;
            for (char *q = p; (q = memchr(q, '\t', (size_t)(lend - q))) != NULL; q++) {
                *q = '\0';
                if (nf < 32) f[nf] = q + 1;
                nf++;
            }
        }
        p = next;
        if (line == 1 && L->header) {
            if (nf < L->min_fields || nf > L->max_fields)
                return fm_fail("%s:1: expected a %s header of %s tab-separated fields, found %d (is this the %s %s "
                               "file?)",
                               name, task->name, want, nf, task->name, fm_glue_split_name(split));
            continue;
        }
        if (nf < L->min_fields || nf > L->max_fields) {
            if (nf < L->min_fields && L->skip_short) {
                set->skipped++;
                continue;
            }
            if (nf == 0) return fm_fail("%s:%d: expected %s tab-separated fields, found an empty line", name, line, want);
            return fm_fail("%s:%d: expected %s tab-separated fields, found %d", name, line, want, nf);
        }
        if (set->n == cap) {
            cap = cap ? 2 * cap : 1024;
            set->ex = fm_xrealloc(set->ex, cap * sizeof *set->ex);
        }
        fm_glue_example *e = &set->ex[set->n];
        e->text_a = f[L->col_a];
        e->text_b = L->col_b >= 0 ? f[L->col_b] : NULL;
        e->id = L->col_id >= 0 ? f[L->col_id] : NULL;
        e->label = -1;
        e->score = NAN;
        e->line = line;
        if (!is_test && L->col_label != -1) {
            const char *lab = f[L->col_label == FM_GLUE_LAST ? nf - 1 : L->col_label];
            if (task->is_regression) {
                if (parse_score(lab, &e->score) != FM_OK)
                    return fm_fail("%s:%d: expected a similarity score (a number), found '%.40s'", name, line, lab);
            } else {
                e->label = fm_glue_label_index(task, lab);
                if (e->label < 0) {
                    char list[128];
                    label_list(task, list, sizeof list);
                    return fm_fail("%s:%d: unknown label '%.40s' (expected %s)", name, line, lab, list);
                }
            }
        }
        set->n++;
    }
    if (set->n == 0)
        return fm_fail("%s: no examples%s (expected %s lines of %s tab-separated fields)", name,
                       L->header ? " after the header" : "", task->name, want);
    return FM_OK;
}

int fm_glue_parse(fm_glue_set *set, const fm_glue_task *task, fm_glue_split split, const char *name,
                  const char *data, size_t len) {
    char *buf = fm_xmalloc(len + 1);
    memcpy(buf, data, len);
    int rc = parse_owned(set, task, split, name, buf, len);
    if (rc != FM_OK) fm_glue_set_free(set);
    return rc;
}

int fm_glue_read_file(fm_glue_set *set, const fm_glue_task *task, fm_glue_split split, const char *path) {
    char *buf;
    size_t len;
    memset(set, 0, sizeof *set);
    if (fm_read_file(path, &buf, &len) != FM_OK) return FM_ERR;
    int rc = parse_owned(set, task, split, path, buf, len);
    if (rc != FM_OK) fm_glue_set_free(set);
    return rc;
}

int fm_glue_load(fm_glue_set *set, const fm_glue_task *task, fm_glue_split split, const char *glue_dir) {
    memset(set, 0, sizeof *set);
    const char *file = fm_glue_split_file(task, split);
    if (!file) return FM_ERR;
    char *dir = fm_path_join(glue_dir, task->name);
    char *path = fm_path_join(dir, file);
    free(dir);
    int rc = fm_glue_read_file(set, task, split, path);
    free(path);
    return rc;
}
