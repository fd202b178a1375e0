/* glue.h: the GLUE tasks and readers for their TSV files, column for column
 * as GLUE distributes them and HuggingFace's GLUE processors read them.
 *
 * The files are plain tab-separated lines, NOT quoted CSV (the reference
 * reads them with csv quoting off): a quote is an ordinary character. A
 * UTF-8 byte-order mark at the start is skipped (MRPC has one), a \r before
 * each \n is dropped (CRLF files), the last line needs no \n. Every other
 * departure from the layout is an error naming the file and line: a wrong
 * number of fields, an unknown label, a score that is not a number, invalid
 * UTF-8, a NUL byte, an empty file. The one exception is QQP, whose
 * processor skips rows with too few fields: those are skipped and counted.
 *
 * Labels are indices into the task's label list, in HF's get_labels() order:
 * MNLI contradiction/entailment/neutral, QNLI and RTE
 * entailment/not_entailment, CoLA SST-2 MRPC QQP WNLI "0"/"1". STS-B is a
 * regression: its score is the float in the last column. */
#ifndef FM_IO_GLUE_H
#define FM_IO_GLUE_H

#include <stddef.h>

#include "metrics.h"

#define FM_GLUE_LAST (-2) /* a column index meaning "the last field" */

/* Where things are in one kind of file of a task. */
typedef struct {
    int header;                 /* the first line is a header, skipped */
    int min_fields, max_fields; /* fields per line */
    int col_a, col_b;           /* the texts (col_b -1: single sentence) */
    int col_label;              /* the label (-1: none, FM_GLUE_LAST: last field) */
    int col_id;                 /* the index column of test files (-1: none) */
    int skip_short;             /* rows with too few fields are skipped (QQP) */
} fm_glue_layout;

typedef struct {
    const char *name;           /* as GLUE spells it: "CoLA", "SST-2", ... (also the directory name) */
    int num_labels;             /* 1 for STS-B */
    const char *const *labels;  /* (num_labels) label names; NULL for STS-B */
    int is_regression;          /* STS-B */
    int is_pair;                /* two texts per example */
    fm_metric_kind metric;
    const char *train_file, *dev_file, *test_file;
    const char *dev_mm_file, *test_mm_file; /* MNLI's mismatched sets, NULL elsewhere */
    fm_glue_layout labelled;    /* train and dev files */
    fm_glue_layout test;        /* test files: index first, no label */
} fm_glue_task;

typedef enum {
    FM_GLUE_TRAIN,
    FM_GLUE_DEV,             /* MNLI: dev_matched.tsv */
    FM_GLUE_TEST,            /* MNLI: test_matched.tsv */
    FM_GLUE_DEV_MISMATCHED,  /* MNLI only */
    FM_GLUE_TEST_MISMATCHED, /* MNLI only */
} fm_glue_split;

typedef struct {
    const char *text_a; /* UTF-8, NUL-terminated */
    const char *text_b; /* NULL for single-sentence tasks */
    const char *id;     /* test files: the index column; NULL otherwise */
    int label;          /* index into task->labels; -1 unlabelled or STS-B */
    float score;        /* STS-B's similarity; NaN when unlabelled or not STS-B */
    int line;           /* 1-based line in the file */
} fm_glue_example;

typedef struct {
    const fm_glue_task *task;
    fm_glue_split split;
    fm_glue_example *ex; /* (n) */
    size_t n;
    size_t skipped;      /* rows skipped as the reference does (QQP's short rows) */
    char *buf;           /* the file's text, which the examples point into */
} fm_glue_set;

/* The tasks: CoLA, SST-2, MRPC, STS-B, QQP, MNLI, QNLI, RTE, WNLI. */
const fm_glue_task *fm_glue_tasks(size_t *n);
/* A task by name (case-insensitive, "SST2"/"STSB" accepted too); NULL and a
 * recorded error listing the names otherwise. */
const fm_glue_task *fm_glue_task_find(const char *name);
/* The file name of a split ("dev_matched.tsv"), NULL and a recorded error
 * when the task has no such split. */
const char *fm_glue_split_file(const fm_glue_task *task, fm_glue_split split);
/* "train", "dev", "test", "dev_mismatched", "test_mismatched". */
const char *fm_glue_split_name(fm_glue_split split);
int fm_glue_split_parse(const char *name, fm_glue_split *split);
/* The layout that split's files use. */
const fm_glue_layout *fm_glue_split_layout(const fm_glue_task *task, fm_glue_split split);

/* The index of a label name, or -1. */
int fm_glue_label_index(const fm_glue_task *task, const char *label);

/* Read GLUE_DIR/<task name>/<split file>. */
int fm_glue_load(fm_glue_set *set, const fm_glue_task *task, fm_glue_split split, const char *glue_dir);
/* Read the file at path as the given task and split. */
int fm_glue_read_file(fm_glue_set *set, const fm_glue_task *task, fm_glue_split split, const char *path);
/* Parse len bytes of TSV text (copied); `name` prefixes error messages. */
int fm_glue_parse(fm_glue_set *set, const fm_glue_task *task, fm_glue_split split, const char *name,
                  const char *data, size_t len);
void fm_glue_set_free(fm_glue_set *set);

#endif
