/* trainloop.c: the training loop (see trainloop.h). */
#include "trainloop.h"

#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>

#include "fm.h"
#include "progress.h"
#include "rng.h"
#include "stopsig.h"

/* One step: rows, gradients, update. *sig gets the team's signal. */
static int one_step(fm_loop *l, fm_progress *prog, int64_t step, const uint32_t *perm, int32_t *rows, int *sig,
                    int *nb_out, double *loss_out, double *lr_out) {
    fm_engine *e = l->e;
    const int64_t pos = step % l->steps_per_epoch;
    const int first = (int)(pos * l->batch), nb = l->n - first < l->batch ? l->n - first : l->batch;
    for (int j = 0; j < nb; j++) rows[j] = (int32_t)perm[first + j];
    fm_engine_batch(e, step, rows, nb);
    /* this rank's SIGTERM and SIGUSR1 flags, each summed on its own: any
     * rank's SIGTERM stops them all, any signal checkpoints */
    fm_step_out out = {.term = fm_stopsig_term(), .usr1 = fm_stopsig_usr1()};
    if (fm_engine_step(e, &out) != FM_OK) return FM_ERR;
    *sig = fm_stopsig_combine(out.term, out.usr1);
    *nb_out = nb;
    if (l->grads && l->grads(l->ctx, step) != FM_OK) return FM_ERR;
    double norm = NAN, factor = fm_lr_factor(&e->tr.o.opt, step);
    const char *bad = isfinite(out.loss) ? NULL : "loss";
    if ((!bad || l->norm_on_bad_loss) && fm_engine_apply(e, &norm, &factor) != FM_OK) return FM_ERR;
    if (!bad && !isfinite(norm)) bad = "gradient norm";
    const double lr = e->tr.o.opt.lr * factor;
    if (bad) {
        fm_progress_end(prog);
        l->ended = 1;
        return l->diverged(l->ctx, step, bad, out.loss, norm, lr);
    }
    *loss_out = out.loss;
    *lr_out = lr;
    return l->logged(l->ctx, step, nb, out.loss, norm, lr);
}

int fm_loop_run(fm_loop *l) {
    uint32_t *perm = fm_xmalloc(sizeof(uint32_t) * (size_t)(l->n ? l->n : 1));
    int32_t *rows = fm_xmalloc(sizeof(int32_t) * (size_t)(l->batch ? l->batch : 1));
    fm_progress prog;
    fm_progress_start(&prog, l->what, l->first, l->total);
    const double t0 = fm_now();
    int64_t examples = l->examples0, cur_epoch = -1;
    int rc = FM_OK;
    for (int64_t step = l->first; step < l->total && rc == FM_OK; step++) {
        const int64_t epoch = step / l->steps_per_epoch;
        if (epoch != cur_epoch) {
            if (l->shuffle)
                fm_rng_permutation(l->seed, FM_RNG_SHUFFLE, (uint64_t)epoch, 0, perm, (uint32_t)l->n);
            else
                for (int i = 0; i < l->n; i++) perm[i] = (uint32_t)i;
            cur_epoch = epoch;
        }
        int sig = 0, nb = 0;
        double loss = 0, lr = 0;
        if ((rc = one_step(l, &prog, step, perm, rows, &sig, &nb, &loss, &lr)) != FM_OK) break;
        examples += nb;
        fm_progress_update(&prog, step + 1, examples - l->examples0, loss, lr);
        if (l->evaluate && (rc = l->evaluate(l->ctx, step)) != FM_OK) break;
        const int periodic = l->checkpoint_every > 0 && (step + 1) % l->checkpoint_every == 0 && step + 1 < l->total;
        if ((periodic || sig) && (rc = l->save(l->ctx, step, sig)) != FM_OK) break;
        if (sig == SIGTERM) {
            l->interrupted = 1;
            fm_progress_end(&prog);
            l->ended = 1;
            rc = fm_fail("interrupted by SIGTERM after step %" PRId64 " of %" PRId64 "; %s", step + 1, l->total,
                         l->resume_hint);
            break;
        }
        if (sig) fm_stopsig_served();
        fm_stopsig_test_pause(step + 1);
    }
    if (!l->ended) fm_progress_end(&prog);
    l->seconds = fm_now() - t0;
    free(perm);
    free(rows);
    return rc;
}
