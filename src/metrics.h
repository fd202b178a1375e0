/* metrics.h: the GLUE metrics (as scikit-learn / scipy compute them for
 * HuggingFace's glue_compute_metrics) and a per-task report.
 *
 * Degenerate inputs give 0, never NaN: n = 0, a constant predictor or
 * constant targets (MCC, Pearson, Spearman), no positives at all (F1). */
#ifndef FM_METRICS_H
#define FM_METRICS_H

#include <stddef.h>

/* Fraction of i with pred[i] == gold[i]. */
double fm_accuracy(const int *pred, const int *gold, size_t n);
/* F1 of class 1 (the positive class): 2 tp / (2 tp + fp + fn). */
double fm_f1(const int *pred, const int *gold, size_t n);
/* Matthews correlation coefficient, in its multi-class form (Gorodkin's
 * R_K, as sklearn's matthews_corrcoef; the usual formula for two classes).
 * Labels are small non-negative ints. */
double fm_matthews(const int *pred, const int *gold, size_t n);
/* Pearson correlation of x and y. */
double fm_pearson(const float *x, const float *y, size_t n);
/* Spearman rank correlation: Pearson of the ranks, ties given their
 * average rank. */
double fm_spearman(const float *x, const float *y, size_t n);
/* The ranks (1-based, ties averaged) of x into r. */
void fm_average_ranks(double *r, const float *x, size_t n);

/* What a task is scored by. */
typedef enum {
    FM_METRIC_ACC,    /* accuracy (SST-2, MNLI, QNLI, RTE, WNLI) */
    FM_METRIC_F1_ACC, /* F1 and accuracy (MRPC, QQP) */
    FM_METRIC_MCC,    /* Matthews correlation (CoLA) */
    FM_METRIC_CORR,   /* Pearson and Spearman correlation (STS-B) */
} fm_metric_kind;

#define FM_REPORT_MAX 4
typedef struct {
    const char *name; /* HF's names: "acc", "f1", "acc_and_f1", "mcc", "pearson", "spearmanr", "corr" */
    double value;
} fm_metric;

/* A task's scores: the named metrics and the main one, as the BERT paper
 * reports GLUE dev results: F1 for MRPC and QQP, Spearman for STS-B, MCC
 * for CoLA, accuracy for the rest. (MNLI: call once per dev set.) */
typedef struct {
    fm_metric m[FM_REPORT_MAX];
    int n;
    const char *main_name;
    double main;
} fm_glue_report;

/* Score n predictions: classification tasks read pred/gold, STS-B (kind
 * FM_METRIC_CORR) reads score_pred/score_gold; the other pair may be NULL. */
void fm_glue_report_compute(fm_glue_report *r, fm_metric_kind kind, const int *pred, const int *gold,
                            const float *score_pred, const float *score_gold, size_t n);
/* The value of the metric named `name`, or NaN when the report has none. */
double fm_glue_report_get(const fm_glue_report *r, const char *name);

#endif
