/* metrics.c: GLUE metrics (see metrics.h). Sums run in double. */
#include "metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fm.h"

double fm_accuracy(const int *pred, const int *gold, size_t n) {
    if (n == 0) return 0.0;
    size_t ok = 0;
    for (size_t i = 0; i < n; i++) ok += pred[i] == gold[i];
    return (double)ok / (double)n;
}

double fm_f1(const int *pred, const int *gold, size_t n) {
    size_t tp = 0, fp = 0, fn = 0;
    for (size_t i = 0; i < n; i++) {
        int p = pred[i] == 1, g = gold[i] == 1;
        tp += p && g;
        fp += p && !g;
        fn += !p && g;
    }
    if (tp + fp + fn == 0) return 0.0; /* sklearn's zero_division result */
    return 2.0 * (double)tp / (double)(2 * tp + fp + fn);
}

double fm_matthews(const int *pred, const int *gold, size_t n) {
    if (n == 0) return 0.0;
    int k = 0;
    for (size_t i = 0; i < n; i++) {
        if (pred[i] + 1 > k) k = pred[i] + 1;
        if (gold[i] + 1 > k) k = gold[i] + 1;
    }
    /* t_c: times class c occurs, p_c: times predicted; c: correct; s: n. */
    double *t = fm_xcalloc((size_t)k, sizeof *t), *p = fm_xcalloc((size_t)k, sizeof *p);
    double c = 0, s = (double)n;
    for (size_t i = 0; i < n; i++) {
        if (pred[i] >= 0) p[pred[i]] += 1;
        if (gold[i] >= 0) t[gold[i]] += 1;
        c += pred[i] == gold[i];
    }
    double pt = 0, pp = 0, tt = 0;
    for (int j = 0; j < k; j++) {
        pt += p[j] * t[j];
        pp += p[j] * p[j];
        tt += t[j] * t[j];
    }
    free(t);
    free(p);
    double den = sqrt((s * s - pp) * (s * s - tt));
    if (!(den > 0)) return 0.0; /* a constant predictor or constant gold labels */
    return (c * s - pt) / den;
}

static double pearson_d(const double *x, const double *y, size_t n) {
    if (n < 2) return 0.0;
    double mx = 0, my = 0;
    for (size_t i = 0; i < n; i++) {
        mx += x[i];
        my += y[i];
    }
    mx /= (double)n;
    my /= (double)n;
    double sxy = 0, sxx = 0, syy = 0;
    for (size_t i = 0; i < n; i++) {
        double dx = x[i] - mx, dy = y[i] - my;
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    double den = sqrt(sxx * syy);
    if (!(den > 0)) return 0.0; /* constant x or y */
    double r = sxy / den;
    return r > 1.0 ? 1.0 : r < -1.0 ? -1.0 : r;
}

double fm_pearson(const float *x, const float *y, size_t n) {
    double *a = fm_xmalloc((n ? n : 1) * sizeof *a), *b = fm_xmalloc((n ? n : 1) * sizeof *b);
    for (size_t i = 0; i < n; i++) {
        a[i] = x[i];
        b[i] = y[i];
    }
    double r = pearson_d(a, b, n);
    free(a);
    free(b);
    return r;
}

typedef struct {
    float v;
    size_t i;
} ranked;

/* By value (NaN last), then by position, so the order is total. */
static int ranked_cmp(const void *pa, const void *pb) {
    const ranked *a = pa, *b = pb;
    int na = isnan(a->v), nb = isnan(b->v);
    if (na != nb) return na - nb;
    if (!na && a->v != b->v) return a->v < b->v ? -1 : 1;
    return a->i < b->i ? -1 : a->i > b->i;
}

void fm_average_ranks(double *r, const float *x, size_t n) {
    ranked *s = fm_xmalloc((n ? n : 1) * sizeof *s);
    for (size_t i = 0; i < n; i++) {
        s[i].v = x[i];
        s[i].i = i;
    }
    qsort(s, n, sizeof *s, ranked_cmp);
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && s[j].v == s[i].v) j++;
        /* sorted positions i..j-1 hold ranks i+1..j: each gets their mean */
        double avg = 0.5 * (double)(i + 1 + j);
        for (size_t q = i; q < j; q++) r[s[q].i] = avg;
        i = j;
    }
    free(s);
}

double fm_spearman(const float *x, const float *y, size_t n) {
    double *a = fm_xmalloc((n ? n : 1) * sizeof *a), *b = fm_xmalloc((n ? n : 1) * sizeof *b);
    fm_average_ranks(a, x, n);
    fm_average_ranks(b, y, n);
    double r = pearson_d(a, b, n);
    free(a);
    free(b);
    return r;
}

static void put(fm_glue_report *r, const char *name, double v) {
    r->m[r->n].name = name;
    r->m[r->n].value = v;
    r->n++;
}

void fm_glue_report_compute(fm_glue_report *r, fm_metric_kind kind, const int *pred, const int *gold,
                            const float *score_pred, const float *score_gold, size_t n) {
    memset(r, 0, sizeof *r);
    switch (kind) {
    case FM_METRIC_ACC:
        put(r, "acc", fm_accuracy(pred, gold, n));
        r->main_name = "acc";
        break;
    case FM_METRIC_F1_ACC: {
        double acc = fm_accuracy(pred, gold, n), f1 = fm_f1(pred, gold, n);
        put(r, "acc", acc);
        put(r, "f1", f1);
        put(r, "acc_and_f1", 0.5 * (acc + f1));
        r->main_name = "f1";
        break;
    }
    case FM_METRIC_MCC:
        put(r, "mcc", fm_matthews(pred, gold, n));
        r->main_name = "mcc";
        break;
    case FM_METRIC_CORR: {
        double p = fm_pearson(score_pred, score_gold, n), s = fm_spearman(score_pred, score_gold, n);
        put(r, "pearson", p);
        put(r, "spearmanr", s);
        put(r, "corr", 0.5 * (p + s));
        r->main_name = "spearmanr";
        break;
    }
    }
    r->main = fm_glue_report_get(r, r->main_name);
}

double fm_glue_report_get(const fm_glue_report *r, const char *name) {
    for (int i = 0; i < r->n; i++)
        if (!strcmp(r->m[i].name, name)) return r->m[i].value;
    return NAN;
}
