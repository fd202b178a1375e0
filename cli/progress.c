/* progress.c: progress lines on stderr (see progress.h). */
#define _POSIX_C_SOURCE 200809L
#include "progress.h"

#include <stdio.h>
#include <unistd.h>

#include "fm.h"

void fm_progress_start(fm_progress *p, const char *what, int64_t first, int64_t total) {
    p->what = what;
    p->total = total;
    p->first = first;
    p->t_start = p->t_last = fm_now();
    p->tty = isatty(fileno(stderr));
    p->interval = p->tty ? 0.2 : 10.0;
    p->examples = 0;
}

static void fmt_duration(char *buf, size_t n, double s) {
    if (s < 0) s = 0;
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
    else
        snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
}

void fm_progress_update(fm_progress *p, int64_t step, int64_t examples, double loss, double lr) {
    if (fm_verbosity < 1) return;
    double now = fm_now();
    if (step < p->total && now - p->t_last < p->interval) return;
    p->t_last = now;
    p->examples = examples;
    double el = now - p->t_start, rate, eta;
    fm_progress_estimate(p, now, step, examples, &rate, &eta);
    char e1[32], e2[32];
    fmt_duration(e1, sizeof e1, el);
    fmt_duration(e2, sizeof e2, eta);
    if (p->tty) {
        fprintf(stderr, "\rfinemask: %s%s: step %lld/%lld  loss %.4f  lr %.2e  %.1f ex/s  elapsed %s  ETA %s\033[K",
                fm_log_prefix(), p->what, (long long)step, (long long)p->total, loss, lr, rate, e1, e2);
    } else {
        fprintf(stderr, "finemask: %s%s: step %lld/%lld loss %.4f lr %.2e %.1f ex/s elapsed %s ETA %s\n",
                fm_log_prefix(), p->what, (long long)step, (long long)p->total, loss, lr, rate, e1, e2);
    }
    fflush(stderr);
}

void fm_progress_estimate(const fm_progress *p, double now, int64_t step, int64_t examples, double *rate,
                          double *eta) {
    const double el = now - p->t_start;
    const int64_t done = step - p->first; /* steps of this session */
    *rate = el > 0 ? (double)examples / el : 0;
    *eta = done > 0 ? el * (double)(p->total - step) / (double)done : 0;
}

void fm_progress_end(fm_progress *p) {
    if (p->tty && fm_verbosity >= 1) fprintf(stderr, "\n");
}
