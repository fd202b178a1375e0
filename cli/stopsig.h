/* stopsig.h: SIGTERM (save the state and stop) and SIGUSR1 (save the state
 * and go on) for the training loops of train and pretrain, which check for
 * them at step boundaries, and for `finemask run`, which catches both for the
 * whole sweep so that a signal arriving while a job loads or tokenizes (or
 * between jobs) stays pending until the job's loop can act on it, instead of
 * being dropped or killing the rank.
 *
 * Ranks that train together combine what each saw as flags, never as a sum
 * of codes: each rank contributes fm_stopsig_term() and fm_stopsig_usr1()
 * (0 or 1) to two separate slots of a sum, and fm_stopsig_combine() reads the
 * two sums back: SIGTERM when any rank saw SIGTERM, else SIGUSR1 when any rank
 * saw SIGUSR1 (so SIGUSR1 on every rank of a team is still SIGUSR1). */
#ifndef FM_STOPSIG_H
#define FM_STOPSIG_H

#include <signal.h>

typedef struct {
    struct sigaction old_term, old_usr1;
    int caught;
} fm_stopsig;

/* Catch both signals from now on. The outermost catch starts with none
 * pending; a nested one (fm_finetune inside `finemask run`) keeps what is
 * pending and installs nothing. */
void fm_stopsig_catch(fm_stopsig *s);
/* The pending signal: SIGTERM, SIGUSR1 or 0. A SIGTERM stays pending until
 * the run stops: a later SIGUSR1 does not replace it. */
int fm_stopsig_pending(void);
/* This rank's flags for a team's sum (see above): 1 when a SIGTERM, or a
 * SIGUSR1 (and no SIGTERM), is pending. */
int fm_stopsig_term(void);
int fm_stopsig_usr1(void);
/* The team's signal from the two summed flags. */
int fm_stopsig_combine(double term_sum, double usr1_sum);
/* A save has served the SIGUSR1s that were pending at the last
 * fm_stopsig_pending/fm_stopsig_usr1 call (a pending SIGTERM stays; a
 * SIGUSR1 that arrived since stays pending for the next step). */
void fm_stopsig_served(void);
/* Test hook, for tests that must signal a run at a known point whatever the
 * machine's speed. The training loops call this after every step they run;
 * with FINEMASK_TEST_PAUSE_AFTER_STEP=N[,N...] in the environment, after the
 * N-th step this process has run (counted over every job it runs, so in a
 * single fresh run the loop's step N) it prints "finemask: test hook: paused
 * after step STEP (step N of this process, rank R, pid P)" to stderr and
 * waits until SIGTERM or SIGUSR1 arrives, which then acts at the next step as
 * it would have anyway. With FINEMASK_TEST_PAUSE_RANK=R only the process of
 * MPI world rank R pauses (the others wait in their next collective). With
 * FINEMASK_TEST_PAUSE_ONCE=PREFIX a process pauses only if the file
 * PREFIX.R (R its rank) does not exist yet, and makes it as it pauses: a
 * requeued or resubmitted run goes through. Nothing happens without the variable, or while the signals are not
 * caught. */
void fm_stopsig_test_pause(long long step);
/* The same hook at a named point outside the step loop: with
 * FINEMASK_TEST_PAUSE_AT=POINT[,POINT...] a process reaching one of those
 * points prints "finemask: test hook: paused at POINT (job J of this process,
 * rank R, pid P)" and waits for SIGTERM or SIGUSR1 (FINEMASK_TEST_PAUSE_RANK
 * and _ONCE apply as above; the file is PREFIX.POINT.R). Points: "load"
 * (fm_finetune: the model is loaded and the data tokenized, the training loop
 * not started; J counts the jobs this process has loaded) and "written"
 * (finemask run: a job's metrics.json and model or mask are written, its
 * distances and compute.json not yet). With
 * FINEMASK_TEST_PAUSE_AT_JOB=J only the J-th such job pauses. */
void fm_stopsig_test_pause_at(const char *point);
/* Put back the handlers fm_stopsig_catch replaced (the outermost only;
 * nothing when it was not called). */
void fm_stopsig_restore(fm_stopsig *s);

#endif
