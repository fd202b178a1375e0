/* progress.h: progress lines on stderr for long work: step, loss, examples/s
 * and ETA; a self-updating line on a terminal, plain lines otherwise. */
#ifndef FM_PROGRESS_H
#define FM_PROGRESS_H

#include <stdint.h>

typedef struct {
    const char *what;   /* "train SST-2" */
    int64_t total;      /* steps in all */
    int64_t first;      /* the step this session started at (> 0 after a resume) */
    double t_start, t_last;
    double interval;    /* seconds between plain lines */
    int tty;
    int64_t examples;   /* examples done in this session so far */
} fm_progress;

/* Start timing a session that runs steps [first, total) (first > 0 when it
 * resumes an interrupted run: the speed and ETA count this session's work
 * only, never the steps done before it). */
void fm_progress_start(fm_progress *p, const char *what, int64_t first, int64_t total);
/* Report that `step` of total is done (counted from 0, as total is), with
 * `examples` examples done in this session, the current loss and learning
 * rate; prints at most every interval seconds (always the last step). */
void fm_progress_update(fm_progress *p, int64_t step, int64_t examples, double loss, double lr);
/* The speed (examples per second) and the time left (seconds) at time `now`
 * (fm_now's clock) after `step`, with `examples` done in this session: from
 * this session's steps and time alone. */
void fm_progress_estimate(const fm_progress *p, double now, int64_t step, int64_t examples, double *rate,
                          double *eta);
void fm_progress_end(fm_progress *p);

#endif
