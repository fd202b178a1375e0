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
/* Put back the handlers fm_stopsig_catch replaced (nothing when it was not called). */
void fm_stopsig_restore(fm_stopsig *s);

#endif
