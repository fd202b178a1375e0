/* stopsig.c: the training loops' signal flag (see stopsig.h). */
#define _GNU_SOURCE
#include "stopsig.h"

#include <string.h>

static volatile sig_atomic_t pending = 0;

static void on_signal(int sig) {
    if (pending != SIGTERM) pending = sig;
}

void fm_stopsig_catch(fm_stopsig *s) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    pending = 0;
    sigaction(SIGTERM, &sa, &s->old_term);
    sigaction(SIGUSR1, &sa, &s->old_usr1);
    s->caught = 1;
}

int fm_stopsig_pending(void) { return pending; }

void fm_stopsig_served(void) {
    if (pending != SIGTERM) pending = 0;
}

void fm_stopsig_restore(fm_stopsig *s) {
    if (!s->caught) return;
    sigaction(SIGTERM, &s->old_term, NULL);
    sigaction(SIGUSR1, &s->old_usr1, NULL);
    s->caught = 0;
}
