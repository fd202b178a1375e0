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

static volatile sig_atomic_t term = 0;     /* a SIGTERM arrived: sticky until the run stops */
static volatile sig_atomic_t usr1 = 0;     /* SIGUSR1s caught so far */
static volatile sig_atomic_t arrivals = 0; /* signals caught so far (the test hook waits for one more) */
static sig_atomic_t usr1_seen = 0;         /* usr1 when last looked at */
static sig_atomic_t usr1_served = 0;       /* usr1 when last served */
static int depth = 0;                      /* nesting of fm_stopsig_catch */

static void on_signal(int sig) {
    if (sig == SIGTERM) term = 1;
    else usr1++;
    arrivals++;
}

void fm_stopsig_catch(fm_stopsig *s) {
    s->caught = 0;
    if (depth++ > 0) return; /* nested: the outer catch is in place, pending signals stay */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    term = 0;
    usr1_seen = usr1_served = usr1;
    sigaction(SIGTERM, &sa, &s->old_term);
    sigaction(SIGUSR1, &sa, &s->old_usr1);
    s->caught = 1;
}

int fm_stopsig_term(void) { return term ? 1 : 0; }

int fm_stopsig_usr1(void) {
    if (term) return 0;
    usr1_seen = usr1;
    return usr1_seen != usr1_served;
}

int fm_stopsig_pending(void) {
    if (term) return SIGTERM;
    return fm_stopsig_usr1() ? SIGUSR1 : 0;
}

int fm_stopsig_combine(double term_sum, double usr1_sum) {
    return term_sum > 0 ? SIGTERM : usr1_sum > 0 ? SIGUSR1 : 0;
}

void fm_stopsig_served(void) { usr1_served = usr1_seen; }

void fm_stopsig_restore(fm_stopsig *s) {
    if (depth > 0) depth--;
    if (!s->caught) return;
    sigaction(SIGTERM, &s->old_term, NULL);
    sigaction(SIGUSR1, &s->old_usr1, NULL);
    s->caught = 0;
}

/* 1 when this process may pause (FINEMASK_TEST_PAUSE_RANK, _ONCE with the
 * file PREFIX.TAG.R, or PREFIX.R without a tag). */
static int may_pause(int rank, const char *tag) {
    const char *r = getenv("FINEMASK_TEST_PAUSE_RANK");
    if (r && *r && atoi(r) != rank) return 0;
    const char *once = getenv("FINEMASK_TEST_PAUSE_ONCE");
    if (once && *once) {
        char path[4096];
        if (tag) snprintf(path, sizeof path, "%s.%s.%d", once, tag, rank);
        else snprintf(path, sizeof path, "%s.%d", once, rank);
        int fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0644);
        if (fd < 0 && errno == EEXIST) return 0;
        if (fd >= 0) close(fd);
    }
    return 1;
}

/* Wait until a signal arrives after `seen` arrivals. Polled rather than
 * sigsuspend: under MPI the signal may be delivered to another thread of the
 * process. */
static void wait_signal(sig_atomic_t seen) {
    const struct timespec tick = {0, 5000000};
    while (arrivals == seen) nanosleep(&tick, NULL);
}

static int listed(const char *list, long long n) {
    for (const char *p = list; *p;) {
        char *end;
        long long k = strtoll(p, &end, 10);
        if (end == p) break;
        if (k == n) return 1;
        p = *end == ',' ? end + 1 : end;
    }
    return 0;
}

void fm_stopsig_test_pause(long long step) {
    static long long count = 0; /* steps this process has run */
    const char *list = getenv("FINEMASK_TEST_PAUSE_AFTER_STEP");
    if (!list || !depth) return;
    count++;
    const int rank = fm_cli_launcher_rank();
    if (!listed(list, count) || !may_pause(rank, NULL)) return;
    const sig_atomic_t seen = arrivals;
    fprintf(stderr, "finemask: test hook: paused after step %lld (step %lld of this process, rank %d, pid %d)\n",
            step, count, rank, (int)getpid());
    fflush(stderr);
    wait_signal(seen);
}

void fm_stopsig_test_pause_at(const char *point) {
    static long long jobs = 0; /* "load" points this process has reached */
    const char *list = getenv("FINEMASK_TEST_PAUSE_AT");
    if (!list || !depth) return;
    if (!strcmp(point, "load")) jobs++;
    int found = 0;
    const size_t n = strlen(point);
    for (const char *p = list; *p && !found;) {
        const char *e = strchr(p, ',');
        size_t k = e ? (size_t)(e - p) : strlen(p);
        found = k == n && !strncmp(p, point, n);
        p = e ? e + 1 : p + k;
    }
    const char *j = getenv("FINEMASK_TEST_PAUSE_AT_JOB");
    if (!found || (j && *j && atoll(j) != jobs)) return;
    const int rank = fm_cli_launcher_rank();
    if (!may_pause(rank, point)) return;
    const sig_atomic_t seen = arrivals;
    fprintf(stderr, "finemask: test hook: paused at %s (job %lld of this process, rank %d, pid %d)\n", point, jobs,
            rank, (int)getpid());
    fflush(stderr);
    wait_signal(seen);
}
