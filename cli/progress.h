/* progress.h: progress lines on stderr for long work: step, loss, examples/s
 * and ETA; a self-updating line on a terminal, plain lines otherwise. */
#ifndef FM_PROGRESS_H
#define FM_PROGRESS_H

#include <stdint.h>

typedef struct {
    const char *what;   /* "train SST-2" */
    int64_t total;      /* steps in all */
    double t_start, t_last;
    double interval;    /* seconds between plain lines */
    int tty;
    int64_t examples;   /* examples done so far */
} fm_progress;

void fm_progress_start(fm_progress *p, const char *what, int64_t total);
/* Report that `step` of total is done, `examples` examples so far, with the
 * current loss and learning rate; prints at most every interval seconds
 * (always the last step). */
void fm_progress_update(fm_progress *p, int64_t step, int64_t examples, double loss, double lr);
void fm_progress_end(fm_progress *p);

#endif
