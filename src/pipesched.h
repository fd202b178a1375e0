/* pipesched.h: the order in which a pipeline stage runs the forwards and
 * backwards of a step's micro-batches, and what it exchanges with its
 * neighbours around each; pure arithmetic, no MPI (strat_pipeline.c runs
 * it, tests/unit/test_pipesched.c checks it).
 *
 * Two schedules, both synchronous (every micro-batch's backward ends before
 * the update, so the scores nu never go stale), with the same arithmetic per
 * micro-batch:
 *   gpipe  every forward (0, 1, ..., M-1), then every backward in reverse
 *          (M-1, ..., 0): a stage keeps all M micro-batches' activations;
 *   1f1b   stage s of S runs w = min(S-s-1, M) warm-up forwards, then
 *          alternates one forward and one backward (backwards in the order
 *          0, 1, ...), then the remaining backwards: it keeps at most
 *          min(S-s, M) micro-batches' activations, whatever M is.
 *
 * Micro-batch k's activations live in ring slot k % fm_pipe_sched_sets().
 *
 * Communication: a forward receives its input from the previous stage (none
 * on stage 0) and sends its output to the next (none on the last stage); a
 * backward receives its gradient from the next stage and sends the input's
 * gradient to the previous one. When an op's output goes to the neighbour
 * the next op receives from (a forward followed by a backward, or a
 * backward followed by a forward), the send is held back and made together
 * with that receive, as one exchange: a stage sending its activations on
 * while its neighbour sends a gradient back then never has both blocked in
 * a send. test_pipesched.c runs every stage's exchanges against each other
 * with sends that complete only when received, for many S and M. */
#ifndef FM_PIPESCHED_H
#define FM_PIPESCHED_H

typedef enum { FM_PIPE_GPIPE = 0, FM_PIPE_1F1B = 1 } fm_pipe_schedule;

/* One step of a stage's schedule. */
typedef struct {
    int backward; /* 0: the forward of micro-batch k; 1: its backward */
    int k;        /* micro-batch, 0..M-1 */
    int recv;     /* the input comes from neighbour -1 (previous) or +1 (next); 0: made here */
    int send;     /* the output goes to neighbour -1 or +1; 0: used here */
    int send_later; /* 1: the send is made with the next op's receive (same neighbour), as one exchange */
} fm_pipe_op;

/* The 2*M ops of stage s of S over M micro-batches, in the order the stage
 * runs them, into ops[0..2M). S >= 1, 0 <= s < S, M >= 1. */
void fm_pipe_sched_ops(fm_pipe_schedule sch, int S, int s, int M, fm_pipe_op *ops);
/* The most micro-batches whose activations stage s holds at once: M under
 * gpipe, min(S-s, M) under 1f1b (the ring's slots). */
int fm_pipe_sched_sets(fm_pipe_schedule sch, int S, int s, int M);

#endif
