/* stopsig.h: SIGTERM (save the state and stop) and SIGUSR1 (save the state
 * and go on) for the training loops of train and pretrain, which check for
 * them at step boundaries. */
#ifndef FM_STOPSIG_H
#define FM_STOPSIG_H

#include <signal.h>

typedef struct {
    struct sigaction old_term, old_usr1;
    int caught;
} fm_stopsig;

/* Catch both signals from now on, with none pending. */
void fm_stopsig_catch(fm_stopsig *s);
/* The pending signal: SIGTERM, SIGUSR1 or 0. A SIGTERM stays pending until
 * the run stops: a later SIGUSR1 does not replace it. */
int fm_stopsig_pending(void);
/* A save has served the pending SIGUSR1 (a pending SIGTERM stays). */
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
/* Put back the handlers fm_stopsig_catch replaced (nothing when it was not called). */
void fm_stopsig_restore(fm_stopsig *s);

#endif
