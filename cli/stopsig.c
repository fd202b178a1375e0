/* stopsig.c: the training loops' signal flag (see stopsig.h). */
#define _GNU_SOURCE
#include "stopsig.h"

#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t pending = 0;
static volatile sig_atomic_t arrivals = 0; /* signals caught so far (the test hook waits for one more) */
static int catching = 0;

static void on_signal(int sig) {
    if (pending != SIGTERM) pending = sig;
    arrivals++;
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
    catching = 1;
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
    catching = 0;
}

void fm_stopsig_test_pause(long long step) {
    static long long count = 0; /* steps this process has run */
    const char *list = getenv("FINEMASK_TEST_PAUSE_AFTER_STEP");
    if (!list || !catching) return;
    count++;
    const char *r = getenv("FINEMASK_TEST_PAUSE_RANK");
    const int rank = fm_cli_launcher_rank();
    if (r && *r && atoi(r) != rank) return;
    int listed = 0;
    for (const char *p = list; *p;) {
        char *end;
        long long n = strtoll(p, &end, 10);
        if (end == p) break;
        if (n == count) listed = 1;
        p = *end == ',' ? end + 1 : end;
    }
    if (!listed) return;
    const char *once = getenv("FINEMASK_TEST_PAUSE_ONCE");
    if (once && *once) {
        char path[4096];
        snprintf(path, sizeof path, "%s.%d", once, rank);
        int fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0644);
        if (fd < 0 && errno == EEXIST) return;
        if (fd >= 0) close(fd);
    }
    const sig_atomic_t seen = arrivals;
    fprintf(stderr, "finemask: test hook: paused after step %lld (step %lld of this process, rank %d, pid %d)\n",
            step, count, rank, (int)getpid());
    fflush(stderr);
    /* Polled rather than sigsuspend: under MPI the signal may be delivered to
     * another thread of the process. */
    const struct timespec tick = {0, 5000000};
    while (arrivals == seen) nanosleep(&tick, NULL);
}
