/* optim.c: AdamW, the linear schedule and clipping (see optim.h). */
#include "optim.h"

#include <math.h>

#include "fm.h"

void fm_adamw_default(fm_adamw *o) {
    o->lr = 2e-5f;
    o->beta1 = 0.9f;
    o->beta2 = 0.999f;
    o->eps = 1e-8f;
    o->weight_decay = 0.01f;
    o->max_grad_norm = 1.0f;
    o->total_steps = 1;
    o->warmup_steps = 0;
}

double fm_lr_factor(const fm_adamw *o, int64_t step) {
    if (step < o->warmup_steps) return (double)step / (double)(o->warmup_steps > 1 ? o->warmup_steps : 1);
    int64_t rest = o->total_steps - o->warmup_steps;
    double f = (double)(o->total_steps - step) / (double)(rest > 1 ? rest : 1);
    return f > 0 ? f : 0;
}

/* Sum of squares of x[0..n) (n <= 4096) in eight running sums, lane l taking
 * the entries j = l mod 8, combined pairwise at the end. One running sum
 * would be a chain of dependent additions (about 4 cycles per entry); eight
 * vectorize. The order is written out, so the bits do not depend on the
 * vector width the compiler picks. */
static double sqsum8(const float *x, long n) {
    double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    long j = 0;
    for (; j + 8 <= n; j += 8)
        for (int l = 0; l < 8; l++) s[l] += (double)x[j + l] * (double)x[j + l];
    for (int l = 0; j < n; j++, l++) s[l] += (double)x[j] * (double)x[j];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

/* Squared L2 norm of x[0..n): fixed chunks of 4096, summed in order, so the
 * same bits for any thread count. */
static double sqnorm(const float *x, long n) {
    const long nchunks = (n + 4095) / 4096;
    double acc = 0;
    double part[64];
    for (long c0 = 0; c0 < nchunks; c0 += 64) {
        long cn = nchunks - c0 < 64 ? nchunks - c0 : 64;
#pragma omp parallel for schedule(static) if (n > 65536)
        for (long c = 0; c < cn; c++) {
            long b = (c0 + c) * 4096, e = b + 4096 < n ? b + 4096 : n;
            part[c] = sqsum8(x + b, e - b);
        }
        for (long c = 0; c < cn; c++) acc += part[c];
    }
    return acc;
}

FM_HOT void fm_grad_sqnorms(double *sq, const fm_layout *lay, const float *g) {
    for (int i = 0; i < lay->n; i++) {
        const fm_tensor *t = &lay->t[i];
        sq[i] = t->trains ? sqnorm(g + t->offset, (long)t->numel) : 0.0;
    }
}

double fm_grad_norm_sum(const fm_layout *lay, const double *sq) {
    double total = 0;
    for (int i = 0; i < lay->n; i++)
        if (lay->t[i].trains) total += sq[i];
    return sqrt(total);
}

FM_HOT double fm_grad_norm(const fm_layout *lay, const float *g) {
    double total = 0;
    for (int i = 0; i < lay->n; i++)
        if (lay->t[i].trains) total += sqnorm(g + lay->t[i].offset, (long)lay->t[i].numel);
    return sqrt(total);
}

FM_HOT double fm_adamw_step(const fm_adamw *o, const fm_layout *lay, float *p, const float *g, float *m, float *v,
                     int64_t step, double norm, const float *lr_scale) {
    const double factor = fm_lr_factor(o, step);
    double clip = 1.0;
    if (o->max_grad_norm > 0 && norm > o->max_grad_norm) clip = o->max_grad_norm / (norm + 1e-6);
    const double bc1 = 1.0 - pow(o->beta1, (double)(step + 1));
    const double bc2 = 1.0 - pow(o->beta2, (double)(step + 1));
    const float b1 = o->beta1, b2 = o->beta2, eps = o->eps;
    const float fclip = (float)clip;
    const float sqrt_bc2 = (float)sqrt(bc2);
    for (int i = 0; i < lay->n; i++) {
        const fm_tensor *t = &lay->t[i];
        if (!t->trains) continue;
        const double lr_t = (double)o->lr * factor * (lr_scale ? (double)lr_scale[i] : 1.0);
        const float decay = (t->flags & FM_T_DECAY) ? (float)(1.0 - lr_t * o->weight_decay) : 1.0f;
        const float step_size = (float)(lr_t / bc1);
        float *pp = p + t->offset, *mm = m + t->offset, *vv = v + t->offset;
        const float *gg = g + t->offset;
        const long n = (long)t->numel;
#pragma omp parallel for schedule(static) if (n > 65536)
        for (long j = 0; j < n; j++) {
            float gj = gg[j] * fclip;
            float mj = b1 * mm[j] + (1.0f - b1) * gj;
            float vj = b2 * vv[j] + (1.0f - b2) * gj * gj;
            mm[j] = mj;
            vv[j] = vj;
            float pj = pp[j] * decay;
            pp[j] = pj - step_size * mj / (sqrtf(vj) / sqrt_bc2 + eps);
        }
    }
    return factor;
}
